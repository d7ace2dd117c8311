use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use walkdir::WalkDir;

use crate::error::{Error, Result};
use crate::ignore::DockerIgnore;

/// What a build context holds, counted without packing it (for `plan`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContextSummary {
    /// Regular files and symlinks sent.
    pub files: usize,
    /// Their size in bytes.
    pub bytes: u64,
}

/// A build context packed as an uncompressed tar, honouring `.dockerignore`.
///
/// Headers are deterministic (owner 0:0, fixed mtime, mode kept) so the same files give the
/// same archive whatever their checkout time, which keeps the engine's build cache warm.
/// Symlinks are stored as links, never followed. The Dockerfile and `.dockerignore` are always
/// sent, as the Docker CLI does, even when `.dockerignore` names them.
#[derive(Debug, Clone)]
pub struct BuildContext {
    pub tar: Vec<u8>,
    pub summary: ContextSummary,
}

struct Entry {
    abs: PathBuf,
    rel: String,
    is_dir: bool,
    len: u64,
}

fn walk(dir: &Path, dockerfile: &str) -> Result<Vec<Entry>> {
    let ignore = DockerIgnore::load(dir)?;
    let keep_always = [dockerfile.trim_start_matches("./"), ".dockerignore"];
    let descend_excluded = ignore.has_negations();
    let mut out = Vec::new();
    let mut it = WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1)
        .into_iter();
    while let Some(entry) = it.next() {
        let entry = entry.map_err(|e| {
            let path = e
                .path()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| dir.into());
            Error::Context {
                path,
                source: e.into(),
            }
        })?;
        let Ok(rel) = entry.path().strip_prefix(dir) else {
            continue;
        };
        let rel = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let is_dir = entry.file_type().is_dir();
        if ignore.is_excluded(&rel) && !keep_always.contains(&rel.as_str()) {
            if is_dir && !descend_excluded {
                it.skip_current_dir();
            }
            continue;
        }
        let len = if is_dir {
            0
        } else {
            entry
                .metadata()
                .map_err(|e| Error::Context {
                    path: entry.path().into(),
                    source: e.into(),
                })?
                .len()
        };
        out.push(Entry {
            abs: entry.path().into(),
            rel,
            is_dir,
            len,
        });
    }
    Ok(out)
}

impl BuildContext {
    /// Counts what would be sent from `dir` for `dockerfile` (a path relative to `dir`).
    pub fn summarize(dir: &Path, dockerfile: &str) -> Result<ContextSummary> {
        let entries = walk(dir, dockerfile)?;
        Ok(summary_of(&entries))
    }

    /// Packs `dir` into memory (blocking: call it through `spawn_blocking` from async code).
    pub fn pack(dir: &Path, dockerfile: &str) -> Result<Self> {
        let entries = walk(dir, dockerfile)?;
        let summary = summary_of(&entries);
        let buf = Vec::with_capacity(usize::try_from(summary.bytes).unwrap_or(0) + 4096);
        let tar = write_tar(&entries, dir, buf)?;
        Ok(BuildContext { tar, summary })
    }
}

fn write_tar<W: Write>(entries: &[Entry], dir: &Path, out: W) -> Result<W> {
    let mut builder = tar::Builder::new(out);
    builder.mode(tar::HeaderMode::Deterministic);
    builder.follow_symlinks(false);
    for e in entries {
        let res = if e.is_dir {
            builder.append_dir(&e.rel, &e.abs)
        } else {
            builder.append_path_with_name(&e.abs, &e.rel)
        };
        res.map_err(|source| Error::Context {
            path: e.abs.clone(),
            source,
        })?;
    }
    builder.into_inner().map_err(|source| Error::Context {
        path: dir.into(),
        source,
    })
}

/// Size of the chunks a streamed context is sent in.
const CHUNK: usize = 256 * 1024;

/// A `Write` that sends full chunks to an async receiver (from a blocking thread).
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(chunk).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the engine stopped reading the context",
            )
        })
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// A build context being packed on a blocking thread while it is sent: the tar's chunks, and
/// the packer's result (an unreadable file, or the engine that stopped reading).
pub(crate) struct ContextStream {
    pub summary: ContextSummary,
    pub chunks: tokio::sync::mpsc::Receiver<Bytes>,
    pub packer: tokio::task::JoinHandle<Result<()>>,
}

/// Walks `dir` (on a blocking thread), then packs it on another while the caller sends it.
pub(crate) async fn stream(dir: PathBuf, dockerfile: String) -> Result<ContextStream> {
    let walk_dir = dir.clone();
    let entries = tokio::task::spawn_blocking(move || walk(&walk_dir, &dockerfile))
        .await
        .map_err(|e| Error::Context {
            path: dir.clone(),
            source: std::io::Error::other(e.to_string()),
        })??;
    let summary = summary_of(&entries);
    let (tx, chunks) = tokio::sync::mpsc::channel(8);
    let packer = tokio::task::spawn_blocking(move || {
        let writer = ChunkWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        let mut writer = write_tar(&entries, &dir, writer)?;
        writer
            .flush()
            .map_err(|source| Error::Context { path: dir, source })
    });
    Ok(ContextStream {
        summary,
        chunks,
        packer,
    })
}

fn summary_of(entries: &[Entry]) -> ContextSummary {
    let mut s = ContextSummary::default();
    for e in entries.iter().filter(|e| !e.is_dir) {
        s.files += 1;
        s.bytes += e.len;
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn names(tar: &[u8]) -> Vec<String> {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn honours_dockerignore_and_keeps_dockerfile() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::create_dir_all(p.join("node_modules/x")).unwrap();
        std::fs::create_dir_all(p.join("src")).unwrap();
        std::fs::write(p.join("node_modules/x/i.js"), "x").unwrap();
        std::fs::write(p.join("src/a.ts"), "abc").unwrap();
        std::fs::write(p.join("notes.md"), "n").unwrap();
        std::fs::write(p.join("README.md"), "r").unwrap();
        std::fs::write(p.join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(
            p.join(".dockerignore"),
            "node_modules\n*.md\n!README.md\nDockerfile\n.dockerignore\n",
        )
        .unwrap();
        let ctx = BuildContext::pack(p, "Dockerfile").unwrap();
        let got = names(&ctx.tar);
        assert_eq!(
            got,
            vec![
                ".dockerignore",
                "Dockerfile",
                "README.md",
                "src",
                "src/a.ts"
            ]
        );
        assert_eq!(ctx.summary.files, 4);
        assert_eq!(
            BuildContext::summarize(p, "Dockerfile").unwrap(),
            ctx.summary
        );
        // Deterministic: the same tree packs to the same bytes.
        let again = BuildContext::pack(p, "Dockerfile").unwrap();
        assert_eq!(ctx.tar, again.tar);
    }

    #[tokio::test]
    async fn streamed_context_equals_packed_context() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::create_dir_all(p.join("src")).unwrap();
        for i in 0..200 {
            std::fs::write(p.join(format!("src/f{i}.txt")), vec![b'x'; 3000 + i]).unwrap();
        }
        std::fs::write(p.join("Dockerfile"), "FROM scratch\n").unwrap();
        let packed = BuildContext::pack(p, "Dockerfile").unwrap();
        let mut s = stream(p.into(), "Dockerfile".into()).await.unwrap();
        let mut streamed = Vec::new();
        let mut chunks = 0;
        while let Some(c) = s.chunks.recv().await {
            streamed.extend_from_slice(&c);
            chunks += 1;
        }
        s.packer.await.unwrap().unwrap();
        assert!(chunks > 1, "sent in chunks");
        assert_eq!(s.summary, packed.summary);
        assert_eq!(streamed, packed.tar);
    }

    #[test]
    fn symlinks_are_stored_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::os::unix::fs::symlink("/etc/hostname", p.join("link")).unwrap();
        let ctx = BuildContext::pack(p, "Dockerfile").unwrap();
        let mut a = tar::Archive::new(&ctx.tar[..]);
        let e = a.entries().unwrap().next().unwrap().unwrap();
        assert!(e.header().entry_type().is_symlink());
    }
}
