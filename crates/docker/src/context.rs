//! The build context, as the Docker CLI (`docker build`, classic builder) sends it.
//!
//! What is sent (`ValidateContextDirectory`, `TrimBuildFilesFromExcludes` and go-archive's
//! `TarWithOptions` in docker CLI 28):
//! - The folder is walked in byte order of names without following symlinks; `.dockerignore`
//!   decides with [`DockerIgnore::matches_using_parent_results`]; an excluded folder is not
//!   entered unless a `!` exception starts with it (`dist` then `!**/keep.txt` sends nothing of
//!   `dist/`).
//! - The Dockerfile and `.dockerignore` are always sent: when `.dockerignore` names them (by the
//!   CLI's older matcher), `!<dockerfile>` and `!.dockerignore` are appended to its patterns,
//!   so a Dockerfile in an excluded folder is sent alone, without the folder's entry.
//! - A Dockerfile outside the folder is added as `.dockerfile.<20 hex digits>` (mode 0600), and
//!   that name is appended to `.dockerignore` (created as `.dockerignore` plus the name when
//!   missing), so the engine drops it from what `COPY` sees. Uplift derives the name from the
//!   Dockerfile's content instead of drawing it at random, so the context stays reproducible.
//! - Entries: modes kept (permission, setuid, setgid, sticky bits), owner 0:0 with no names,
//!   hard links as hard-link entries to the first name sent, symlinks as links, fifos and device
//!   nodes as such, sparse files as regular files of their full size, unix sockets left out.
//!   Names are the file system's bytes: USTAR when they fit and are ASCII, else a PAX `path`
//!   (`linkpath`) record, as Go's `archive/tar` writes them.
//! - Timestamps: [`ContextTimestamps::Fixed`] (Uplift's default: one fixed time, so the same
//!   files give the same bytes) or [`ContextTimestamps::Source`] (the CLI's: each file's mtime,
//!   truncated to the second).
//!
//! Deliberate differences from the CLI: a folder `.dockerignore` excludes is never read, so an
//! unreadable excluded folder does not fail the build (the CLI's check walks into it and fails);
//! file capabilities (`security.capability`) are not carried over; the outside Dockerfile's
//! name is stable (see above).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use walkdir::WalkDir;

use crate::error::{Error, Result};
use crate::ignore::{DockerIgnore, MatchInfo, read_ignore_file};

/// What a build context holds, counted without packing it (for `plan`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContextSummary {
    /// Entries other than folders: files, links, fifos.
    pub files: usize,
    /// The size of the regular files' contents, in bytes.
    pub bytes: u64,
}

/// The timestamps written in the context's entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ContextTimestamps {
    /// One fixed time for every entry: the same files give the same archive whatever their
    /// checkout time (reproducible contexts, a warm build cache). Files copied into the image
    /// carry this time.
    #[default]
    Fixed,
    /// Each file's modification time, truncated to the second: what the Docker CLI sends.
    Source,
}

impl ContextTimestamps {
    /// `fixed` or `source`, as the plan shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            ContextTimestamps::Fixed => "fixed",
            ContextTimestamps::Source => "source",
        }
    }
}

/// The time [`ContextTimestamps::Fixed`] writes (the `tar` crate's deterministic time,
/// 2006-07-24).
const FIXED_MTIME: u64 = 1_153_704_088;

/// How to build a context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContextOptions {
    /// The Dockerfile, relative to the context folder or absolute (`Dockerfile` when empty,
    /// or `dockerfile` when only that exists, as the CLI does). It may lie outside the context.
    pub dockerfile: String,
    pub timestamps: ContextTimestamps,
    /// BuildKit's rules instead of the classic builder's: `<Dockerfile>.dockerignore` next to
    /// the Dockerfile, when it exists, replaces the context's `.dockerignore`, and
    /// `.dockerignore` is not forced into the context (the Dockerfile still is: BuildKit reads
    /// it from the uploaded context).
    pub buildkit: bool,
}

impl ContextOptions {
    /// The options for `dockerfile` with the defaults (classic builder, fixed timestamps).
    pub fn for_dockerfile(dockerfile: &str) -> Self {
        ContextOptions {
            dockerfile: dockerfile.to_owned(),
            ..Default::default()
        }
    }
}

/// A build context packed as an uncompressed tar.
#[derive(Debug, Clone)]
pub struct BuildContext {
    pub tar: Vec<u8>,
    pub summary: ContextSummary,
    /// The Dockerfile's name in the context: what the engine is told to build.
    pub dockerfile: String,
}

/// One entry to send.
struct Entry {
    abs: PathBuf,
    /// The name in the archive (without a folder's trailing `/`).
    name: Vec<u8>,
    meta: std::fs::Metadata,
}

/// A walked context, ready to pack.
pub(crate) struct Walked {
    root: PathBuf,
    entries: Vec<Entry>,
    /// The Dockerfile's name in the context.
    pub dockerfile: String,
    /// A Dockerfile from outside the folder: its name in the context and its content.
    outside: Option<(String, Vec<u8>)>,
    timestamps: ContextTimestamps,
    /// BuildKit ignores `.dockerignore` in an uploaded context: no need to name the outside
    /// Dockerfile in it.
    buildkit: bool,
    pub summary: ContextSummary,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Context {
        path: path.into(),
        source,
    }
}

/// The Dockerfile's absolute path, symlinks resolved (`getDockerfileRelPath`).
fn locate_dockerfile(root: &Path, dockerfile: &str) -> Result<PathBuf> {
    let given = if dockerfile.is_empty() {
        let upper = root.join("Dockerfile");
        let lower = root.join("dockerfile");
        if upper.symlink_metadata().is_err() && lower.symlink_metadata().is_ok() {
            lower
        } else {
            upper
        }
    } else {
        root.join(dockerfile)
    };
    std::fs::canonicalize(&given).map_err(|source| Error::Dockerfile {
        path: given,
        source,
    })
}

/// `name` with `/` separators as bytes.
fn rel_bytes(path: &Path) -> Vec<u8> {
    path.as_os_str().as_bytes().to_vec()
}

/// Walks `dir` as the CLI does, deciding what is sent.
pub(crate) fn walk(dir: &Path, opts: &ContextOptions) -> Result<Walked> {
    let root = std::fs::canonicalize(dir).map_err(io_error(dir))?;
    let dockerfile_abs = locate_dockerfile(&root, &opts.dockerfile)?;
    let inside = dockerfile_abs
        .strip_prefix(&root)
        .ok()
        .filter(|rel| !rel.as_os_str().is_empty())
        .map(rel_bytes);

    let root_ignore = root.join(".dockerignore");
    let mut ignore_path = root_ignore.clone();
    let mut patterns = read_ignore_file(&root_ignore)?;
    if opts.buildkit {
        // The path as given, not its symlink's target: BuildKit looks next to the name it got.
        let given = if opts.dockerfile.is_empty() {
            "Dockerfile"
        } else {
            opts.dockerfile.as_str()
        };
        let mut specific = root.join(given).into_os_string();
        specific.push(".dockerignore");
        let specific = PathBuf::from(specific);
        if let Some(own) = read_ignore_file(&specific)? {
            patterns = Some(own);
            ignore_path = specific;
        }
    }
    let mut excludes = patterns.unwrap_or_default();
    let ignore_error = |source| Error::IgnoreFile {
        path: ignore_path.clone(),
        source,
    };
    // The CLI refuses a bad file before anything else (`ValidateContextDirectory`).
    DockerIgnore::from_patterns(&excludes).map_err(ignore_error)?;
    // `TrimBuildFilesFromExcludes`, with the CLI's older matcher.
    if !opts.buildkit
        && DockerIgnore::from_patterns(&excludes)
            .and_then(|m| m.matches_deprecated(b".dockerignore"))
            .unwrap_or(false)
    {
        excludes.push(b"!.dockerignore".to_vec());
    }
    if let Some(rel) = &inside
        && DockerIgnore::from_patterns(&excludes)
            .and_then(|m| m.matches_deprecated(rel))
            .unwrap_or(false)
    {
        let mut keep = b"!".to_vec();
        keep.extend_from_slice(rel);
        excludes.push(keep);
    }
    let matcher = DockerIgnore::from_patterns(&excludes).map_err(ignore_error)?;

    let mut entries = Vec::new();
    let mut parents: Vec<(Vec<u8>, MatchInfo)> = Vec::new();
    let no_info = MatchInfo::default();
    let mut it = WalkDir::new(&root)
        .follow_links(false)
        .sort_by(|a, b| a.file_name().as_bytes().cmp(b.file_name().as_bytes()))
        .min_depth(1)
        .into_iter();
    while let Some(entry) = it.next() {
        let entry = entry.map_err(|e| {
            let path = e
                .path()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| root.clone());
            Error::Context {
                path,
                source: e.into(),
            }
        })?;
        let Ok(rel) = entry.path().strip_prefix(&root) else {
            continue;
        };
        let rel = rel_bytes(rel);
        while let Some((dir, _)) = parents.last() {
            if rel.len() > dir.len() && rel.starts_with(dir) && rel[dir.len()] == b'/' {
                break;
            }
            parents.pop();
        }
        let parent_info = parents.last().map_or(&no_info, |(_, info)| info);
        let (skip, info) = matcher
            .matches_using_parent_results(&rel, parent_info)
            .map_err(ignore_error)?;
        let is_dir = entry.file_type().is_dir();
        if is_dir {
            parents.push((rel.clone(), info));
        }
        if skip {
            if is_dir && !exception_inside(&matcher, &rel) {
                it.skip_current_dir();
            }
            continue;
        }
        let meta = entry.metadata().map_err(|e| Error::Context {
            path: entry.path().into(),
            source: e.into(),
        })?;
        // Go's archive/tar has no header for a socket: the CLI leaves it out.
        if meta.file_type().is_socket() {
            continue;
        }
        entries.push(Entry {
            abs: entry.into_path(),
            name: rel,
            meta,
        });
    }

    let mut dockerfile = inside
        .as_deref()
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .unwrap_or_default();
    let mut outside = None;
    if inside.is_none() {
        let content = std::fs::read(&dockerfile_abs).map_err(io_error(&dockerfile_abs))?;
        dockerfile = format!(".dockerfile.{}", content_name(&content));
        outside = Some((dockerfile.clone(), content));
    }
    let mut summary = ContextSummary::default();
    for e in entries.iter().filter(|e| !e.meta.is_dir()) {
        summary.files += 1;
        if e.meta.is_file() {
            summary.bytes += e.meta.len();
        }
    }
    if let Some((_, content)) = &outside {
        summary.files += 1;
        summary.bytes += content.len() as u64;
        if !opts.buildkit && !entries.iter().any(|e| e.name == b".dockerignore") {
            summary.files += 1;
        }
    }
    Ok(Walked {
        root,
        entries,
        dockerfile,
        outside,
        timestamps: opts.timestamps,
        buildkit: opts.buildkit,
        summary,
    })
}

/// Whether a `!` exception starts with the excluded folder `dir` (then the walk goes in).
fn exception_inside(matcher: &DockerIgnore, dir: &[u8]) -> bool {
    if !matcher.has_exclusions() {
        return false;
    }
    let mut dir_slash = dir.to_vec();
    dir_slash.push(b'/');
    matcher.patterns().iter().any(|p| {
        if !p.is_exclusion() {
            return false;
        }
        let mut text = p.text().to_vec();
        text.push(b'/');
        text.starts_with(&dir_slash)
    })
}

/// 20 hex digits derived from the content: the outside Dockerfile's stable name.
fn content_name(content: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    let mut a = std::collections::hash_map::DefaultHasher::new();
    content.hash(&mut a);
    let mut b = std::collections::hash_map::DefaultHasher::new();
    (content.len(), content).hash(&mut b);
    let hex = format!("{:016x}{:016x}", a.finish(), b.finish());
    hex[..20].to_owned()
}

impl BuildContext {
    /// Counts what would be sent from `dir` for `dockerfile` (relative to `dir`).
    pub fn summarize(dir: &Path, dockerfile: &str) -> Result<ContextSummary> {
        Self::summarize_with(dir, &ContextOptions::for_dockerfile(dockerfile))
    }

    /// Counts what would be sent from `dir`.
    pub fn summarize_with(dir: &Path, opts: &ContextOptions) -> Result<ContextSummary> {
        Ok(walk(dir, opts)?.summary)
    }

    /// Packs `dir` into memory (blocking: call it through `spawn_blocking` from async code).
    pub fn pack(dir: &Path, dockerfile: &str) -> Result<Self> {
        Self::pack_with(dir, &ContextOptions::for_dockerfile(dockerfile))
    }

    /// Packs `dir` into memory with `opts`.
    pub fn pack_with(dir: &Path, opts: &ContextOptions) -> Result<Self> {
        let walked = walk(dir, opts)?;
        let buf = Vec::with_capacity(usize::try_from(walked.summary.bytes).unwrap_or(0) + 4096);
        let tar = write_tar(&walked, buf)?;
        Ok(BuildContext {
            tar,
            summary: walked.summary,
            dockerfile: walked.dockerfile,
        })
    }
}

/// Go's `splitUSTARPath`: a name of more than 100 bytes split at a `/` into a prefix of at
/// most 155 bytes and a name of at most 100.
fn split_ustar(name: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut length = name.len();
    if length <= 100 || !name.is_ascii() {
        return None;
    }
    if length > 156 {
        length = 156;
    } else if name[length - 1] == b'/' {
        length -= 1;
    }
    let i = name[..length].iter().rposition(|b| *b == b'/')?;
    let suffix = name.len() - i - 1;
    if i == 0 || suffix > 100 || suffix == 0 || i > 155 {
        return None;
    }
    Some((&name[..i], &name[i + 1..]))
}

/// A PAX record `"<len> key=value\n"` (the length counts itself).
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Writes tar entries the way Go's `archive/tar` does for the CLI.
struct TarWriter<W: Write> {
    builder: tar::Builder<W>,
    mtime_fixed: bool,
}

impl<W: Write> TarWriter<W> {
    /// Appends one entry: `name` and `link` as bytes, PAX records where USTAR cannot hold them.
    fn append(
        &mut self,
        mut header: tar::Header,
        name: &[u8],
        link: Option<&[u8]>,
        data: impl Read,
    ) -> std::io::Result<()> {
        let mut pax = Vec::new();
        let fits = |s: &[u8], len: usize| s.len() <= len && s.is_ascii();
        {
            let ustar = header
                .as_ustar_mut()
                .ok_or_else(|| std::io::Error::other("not a ustar header"))?;
            if fits(name, 100) {
                ustar.name[..name.len()].copy_from_slice(name);
            } else if let Some((prefix, rest)) = split_ustar(name) {
                ustar.prefix[..prefix.len()].copy_from_slice(prefix);
                ustar.name[..rest.len()].copy_from_slice(rest);
            } else {
                pax_record(&mut pax, "path", name);
                let shown: Vec<u8> = name
                    .iter()
                    .map(|b| if b.is_ascii() { *b } else { b'_' })
                    .collect();
                let n = shown.len().min(100);
                ustar.name[..n].copy_from_slice(&shown[..n]);
            }
            if let Some(link) = link {
                if fits(link, 100) {
                    ustar.linkname[..link.len()].copy_from_slice(link);
                } else {
                    pax_record(&mut pax, "linkpath", link);
                }
            }
        }
        if !pax.is_empty() {
            let mut ext = tar::Header::new_ustar();
            ext.set_entry_type(tar::EntryType::XHeader);
            let ext_name = b"PaxHeaders.0/entry";
            if let Some(ustar) = ext.as_ustar_mut() {
                ustar.name[..ext_name.len()].copy_from_slice(ext_name);
            }
            ext.set_size(pax.len() as u64);
            ext.set_mode(0o644);
            ext.set_mtime(if self.mtime_fixed {
                FIXED_MTIME
            } else {
                header.mtime().unwrap_or(0)
            });
            ext.set_uid(0);
            ext.set_gid(0);
            ext.set_cksum();
            self.builder.append(&ext, &pax[..])?;
        }
        header.set_cksum();
        self.builder.append(&header, data)
    }
}

fn base_header(kind: tar::EntryType, mode: u32, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(0);
    h.set_mtime(mtime);
    h
}

fn write_tar<W: Write>(walked: &Walked, out: W) -> Result<W> {
    let mut w = TarWriter {
        builder: tar::Builder::new(out),
        mtime_fixed: walked.timestamps == ContextTimestamps::Fixed,
    };
    // Hard links: the first name sent for each (device, inode).
    let mut seen: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let mut ignore_written = false;
    for e in &walked.entries {
        let res = match &walked.outside {
            Some((name, _))
                if !walked.buildkit && e.name == b".dockerignore" && e.meta.is_file() =>
            {
                ignore_written = true;
                write_ignore_naming(&mut w, walked, Some(e), name)
            }
            _ => write_entry(&mut w, e, &mut seen, walked),
        };
        res.map_err(|source| Error::Context {
            path: e.abs.clone(),
            source,
        })?;
    }
    if let Some((name, content)) = &walked.outside {
        let mut add = || {
            let mut h = base_header(tar::EntryType::Regular, 0o600, outside_mtime(walked));
            h.set_size(content.len() as u64);
            w.append(h, name.as_bytes(), None, &content[..])?;
            if !ignore_written && !walked.buildkit {
                write_ignore_naming(&mut w, walked, None, name)?;
            }
            Ok(())
        };
        add().map_err(|source| Error::Context {
            path: walked.root.clone(),
            source,
        })?;
    }
    w.builder.into_inner().map_err(|source| Error::Context {
        path: walked.root.clone(),
        source,
    })
}

fn mtime_of(walked: &Walked, meta: &std::fs::Metadata) -> u64 {
    match walked.timestamps {
        ContextTimestamps::Fixed => FIXED_MTIME,
        ContextTimestamps::Source => u64::try_from(meta.mtime()).unwrap_or(0),
    }
}

fn write_entry<W: Write>(
    w: &mut TarWriter<W>,
    e: &Entry,
    seen: &mut HashMap<(u64, u64), Vec<u8>>,
    walked: &Walked,
) -> std::io::Result<()> {
    let meta = &e.meta;
    let mode = meta.mode() & 0o7777;
    let mtime = mtime_of(walked, meta);
    let ft = meta.file_type();
    if ft.is_dir() {
        let mut name = e.name.clone();
        name.push(b'/');
        let h = base_header(tar::EntryType::Directory, mode, mtime);
        return w.append(h, &name, None, std::io::empty());
    }
    if meta.nlink() > 1 {
        let key = (meta.dev(), meta.ino());
        if let Some(first) = seen.get(&key) {
            let h = base_header(tar::EntryType::Link, mode, mtime);
            return w.append(h, &e.name, Some(first), std::io::empty());
        }
        seen.insert(key, e.name.clone());
    }
    if ft.is_file() {
        let file = std::fs::File::open(&e.abs)?;
        let mut h = base_header(tar::EntryType::Regular, mode, mtime);
        h.set_size(meta.len());
        // Exactly the size in the header, even if the file changes while it is read.
        let data = file.take(meta.len());
        let mut data = PadTo {
            inner: data,
            left: meta.len(),
        };
        return w.append(h, &e.name, None, &mut data);
    }
    if ft.is_symlink() {
        let target = std::fs::read_link(&e.abs)?;
        let h = base_header(tar::EntryType::Symlink, mode, mtime);
        return w.append(
            h,
            &e.name,
            Some(target.as_os_str().as_bytes()),
            std::io::empty(),
        );
    }
    let kind = if ft.is_fifo() {
        tar::EntryType::Fifo
    } else if ft.is_char_device() {
        tar::EntryType::Char
    } else if ft.is_block_device() {
        tar::EntryType::Block
    } else {
        return Ok(());
    };
    let mut h = base_header(kind, mode, mtime);
    if kind != tar::EntryType::Fifo {
        let rdev = meta.rdev();
        // Linux's encoding of major and minor numbers in st_rdev.
        let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
        let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
        h.set_device_major(u32::try_from(major).unwrap_or(0))?;
        h.set_device_minor(u32::try_from(minor).unwrap_or(0))?;
    }
    w.append(h, &e.name, None, std::io::empty())
}

/// Reads `inner`, then zeros up to `left` bytes: a file that shrank while being read still
/// fills the size its header announced.
struct PadTo<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for PadTo<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let mut n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            buf[..max].fill(0);
            n = max;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The time of the entries the CLI adds for an outside Dockerfile (it uses the current time).
fn outside_mtime(walked: &Walked) -> u64 {
    match walked.timestamps {
        ContextTimestamps::Fixed => FIXED_MTIME,
        ContextTimestamps::Source => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    }
}

/// `AddDockerfileToBuildContext`'s `.dockerignore`: the file's own content (or `.dockerignore`
/// when there is none), then a line with the outside Dockerfile's name, so that the engine
/// leaves it out of what `COPY` sees.
fn write_ignore_naming<W: Write>(
    w: &mut TarWriter<W>,
    walked: &Walked,
    existing: Option<&Entry>,
    name: &str,
) -> std::io::Result<()> {
    let (mut content, mode, mtime) = match existing {
        Some(e) => (
            std::fs::read(&e.abs)?,
            e.meta.mode() & 0o7777,
            mtime_of(walked, &e.meta),
        ),
        None => (b".dockerignore".to_vec(), 0o600, outside_mtime(walked)),
    };
    content.extend_from_slice(format!("\n{name}\n").as_bytes());
    let mut h = base_header(tar::EntryType::Regular, mode, mtime);
    h.set_size(content.len() as u64);
    w.append(h, b".dockerignore", None, &content[..])
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
    /// The Dockerfile's name in the context.
    pub dockerfile: String,
    pub chunks: tokio::sync::mpsc::Receiver<Bytes>,
    pub packer: tokio::task::JoinHandle<Result<()>>,
}

/// Walks `dir` (on a blocking thread), then packs it on another while the caller sends it.
pub(crate) async fn stream(dir: PathBuf, opts: ContextOptions) -> Result<ContextStream> {
    let walk_dir = dir.clone();
    let walked = tokio::task::spawn_blocking(move || walk(&walk_dir, &opts))
        .await
        .map_err(|e| Error::Context {
            path: dir.clone(),
            source: std::io::Error::other(e.to_string()),
        })??;
    let summary = walked.summary;
    let dockerfile = walked.dockerfile.clone();
    let (tx, chunks) = tokio::sync::mpsc::channel(8);
    let packer = tokio::task::spawn_blocking(move || {
        let writer = ChunkWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        let mut writer = write_tar(&walked, writer)?;
        writer.flush().map_err(|source| Error::Context {
            path: walked.root.clone(),
            source,
        })
    });
    Ok(ContextStream {
        summary,
        dockerfile,
        chunks,
        packer,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    struct Seen {
        name: Vec<u8>,
        kind: tar::EntryType,
        mode: u32,
        uid: u64,
        link: Vec<u8>,
        mtime: u64,
        data: Vec<u8>,
    }

    fn entries(tar: &[u8]) -> Vec<Seen> {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                let h = e.header();
                Seen {
                    name: e.path_bytes().into_owned(),
                    kind: h.entry_type(),
                    mode: h.mode().unwrap(),
                    uid: h.uid().unwrap() + h.gid().unwrap(),
                    link: e
                        .link_name_bytes()
                        .map(|l| l.into_owned())
                        .unwrap_or_default(),
                    mtime: h.mtime().unwrap(),
                    data,
                }
            })
            .collect()
    }

    fn names(tar: &[u8]) -> Vec<String> {
        entries(tar)
            .iter()
            .map(|e| String::from_utf8_lossy(&e.name).into_owned())
            .collect()
    }

    fn find<'a>(all: &'a [Seen], name: &str) -> &'a Seen {
        all.iter()
            .find(|e| e.name == name.as_bytes())
            .unwrap_or_else(|| panic!("{name} not sent"))
    }

    fn write(p: &Path, rel: &str, text: &str) {
        let path = p.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn honours_dockerignore_and_keeps_dockerfile() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        write(p, "node_modules/x/i.js", "x");
        write(p, "src/a.ts", "abc");
        write(p, "notes.md", "n");
        write(p, "README.md", "r");
        write(p, "Dockerfile", "FROM scratch\n");
        write(
            p,
            ".dockerignore",
            "node_modules\n*.md\n!README.md\nDockerfile\n.dockerignore\n",
        );
        let ctx = BuildContext::pack(p, "Dockerfile").unwrap();
        assert_eq!(
            names(&ctx.tar),
            [
                ".dockerignore",
                "Dockerfile",
                "README.md",
                "src/",
                "src/a.ts"
            ]
        );
        assert_eq!(ctx.summary.files, 4);
        assert_eq!(ctx.dockerfile, "Dockerfile");
        assert_eq!(
            BuildContext::summarize(p, "Dockerfile").unwrap(),
            ctx.summary
        );
        // Deterministic: the same tree packs to the same bytes.
        assert_eq!(ctx.tar, BuildContext::pack(p, "Dockerfile").unwrap().tar);
    }

    #[test]
    fn entries_keep_modes_links_and_special_files_as_the_cli_writes_them() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        write(p, "Dockerfile", "FROM scratch\n");
        write(p, "key", "k");
        std::fs::set_permissions(p.join("key"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::create_dir(p.join("sticky")).unwrap();
        std::fs::set_permissions(p.join("sticky"), std::fs::Permissions::from_mode(0o1777))
            .unwrap();
        std::fs::hard_link(p.join("key"), p.join("key2")).unwrap();
        let sparse = std::fs::File::create(p.join("sparse")).unwrap();
        sparse.set_len(1 << 20).unwrap();
        assert!(
            std::process::Command::new("mkfifo")
                .arg(p.join("pipe"))
                .status()
                .unwrap()
                .success()
        );
        let _socket = std::os::unix::net::UnixListener::bind(p.join("sock")).unwrap();
        let latin1 = std::ffi::OsStr::from_bytes(b"caf\xE9");
        std::fs::write(p.join(latin1), "l").unwrap();
        let long = "l".repeat(130);
        write(p, &long, "long");

        let ctx = BuildContext::pack(p, "").unwrap();
        let all = entries(&ctx.tar);
        assert_eq!(find(&all, "key").mode, 0o600);
        assert_eq!(find(&all, "sticky/").mode, 0o1777);
        assert!(all.iter().all(|e| e.uid == 0), "owner 0:0");
        let link = find(&all, "key2");
        assert_eq!(link.kind, tar::EntryType::Link);
        assert_eq!(link.link, b"key");
        let sparse = find(&all, "sparse");
        assert_eq!(sparse.kind, tar::EntryType::Regular, "no GNU sparse entry");
        assert_eq!(sparse.data.len(), 1 << 20);
        assert_eq!(find(&all, "pipe").kind, tar::EntryType::Fifo);
        assert!(
            !all.iter().any(|e| e.name == b"sock"),
            "sockets are left out"
        );
        assert!(
            all.iter().any(|e| e.name == b"caf\xE9"),
            "the name's bytes are kept"
        );
        assert_eq!(find(&all, &long).data, b"long");
        // The raw archive holds that name as a PAX record, as Go writes it.
        assert!(ctx.tar.windows(10).any(|w| w == b"path=caf\xE9\n"));
    }

    #[test]
    fn dockerfile_in_an_excluded_folder_is_sent_alone() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        write(p, "build/Dockerfile", "FROM scratch\n");
        write(p, "build/other", "o");
        write(p, "a", "a");
        write(p, ".dockerignore", "build\n");
        let ctx = BuildContext::pack(p, "build/Dockerfile").unwrap();
        assert_eq!(names(&ctx.tar), [".dockerignore", "a", "build/Dockerfile"]);
    }

    #[test]
    fn dockerfile_outside_is_added_and_named_in_dockerignore() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ctx");
        write(&p, "a", "a");
        write(d.path(), "Dockerfile.x", "FROM scratch\n");
        let ctx = BuildContext::pack(&p, "../Dockerfile.x").unwrap();
        assert!(
            ctx.dockerfile.starts_with(".dockerfile."),
            "{}",
            ctx.dockerfile
        );
        assert_eq!(ctx.dockerfile.len(), ".dockerfile.".len() + 20);
        let all = entries(&ctx.tar);
        let added = find(&all, &ctx.dockerfile);
        assert_eq!(
            (added.mode, &added.data[..]),
            (0o600, &b"FROM scratch\n"[..])
        );
        let ignore = find(&all, ".dockerignore");
        assert_eq!(
            ignore.data,
            format!(".dockerignore\n{}\n", ctx.dockerfile).as_bytes()
        );
        assert_eq!(ctx.summary.files, 3);

        // An existing .dockerignore gets the name appended.
        write(&p, ".dockerignore", "b");
        let ctx = BuildContext::pack(&p, "../Dockerfile.x").unwrap();
        let ignore = entries(&ctx.tar);
        let ignore = find(&ignore, ".dockerignore");
        assert_eq!(ignore.data, format!("b\n{}\n", ctx.dockerfile).as_bytes());
        // The name comes from the content: stable from one run to the next.
        assert_eq!(
            ctx.dockerfile,
            BuildContext::pack(&p, "../Dockerfile.x")
                .unwrap()
                .dockerfile
        );
    }

    #[test]
    fn buildkit_reads_the_dockerfiles_own_ignore_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        write(p, "build/App.Dockerfile", "FROM scratch\n");
        write(
            p,
            "build/App.Dockerfile.dockerignore",
            "other.txt\n.dockerignore\n",
        );
        write(p, ".dockerignore", "secret.txt\n");
        write(p, "secret.txt", "s");
        write(p, "other.txt", "o");
        let opts = ContextOptions {
            dockerfile: "build/App.Dockerfile".into(),
            buildkit: true,
            ..Default::default()
        };
        let sent = names(&BuildContext::pack_with(p, &opts).unwrap().tar);
        assert!(sent.contains(&"secret.txt".to_owned()), "{sent:?}");
        assert!(!sent.contains(&"other.txt".to_owned()), "{sent:?}");
        assert!(!sent.contains(&".dockerignore".to_owned()), "{sent:?}");
        // The classic builder knows only .dockerignore.
        let classic = names(&BuildContext::pack(p, "build/App.Dockerfile").unwrap().tar);
        assert!(classic.contains(&"other.txt".to_owned()), "{classic:?}");
        assert!(!classic.contains(&"secret.txt".to_owned()), "{classic:?}");
    }

    #[test]
    fn source_timestamps_are_the_files_own() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        write(p, "Dockerfile", "FROM scratch\n");
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_600_000_000_700);
        std::fs::File::options()
            .write(true)
            .open(p.join("Dockerfile"))
            .unwrap()
            .set_modified(when)
            .unwrap();
        let opts = ContextOptions {
            timestamps: ContextTimestamps::Source,
            ..Default::default()
        };
        let all = entries(&BuildContext::pack_with(p, &opts).unwrap().tar);
        assert_eq!(
            find(&all, "Dockerfile").mtime,
            1_600_000_000,
            "truncated to the second"
        );
        let all = entries(&BuildContext::pack(p, "").unwrap().tar);
        assert_eq!(find(&all, "Dockerfile").mtime, FIXED_MTIME);
    }

    /// The deliberate difference: a folder `.dockerignore` excludes is never read, so an
    /// unreadable one builds (the CLI's pre-check fails); an unreadable folder that is sent
    /// fails. Root reads everything, so as root the check re-runs this test as `nobody`.
    #[test]
    fn an_unreadable_excluded_folder_is_not_read() {
        let check = |root: &Path| {
            let excluded = BuildContext::pack(&root.join("excluded"), "");
            assert!(excluded.is_ok(), "{:?}", excluded.err());
            let sent = BuildContext::pack(&root.join("sent"), "").unwrap_err();
            assert!(sent.to_string().contains("db-data"), "{sent}");
        };
        if let Ok(dir) = std::env::var("UPLIFT_UNREADABLE_CONTEXT") {
            return check(Path::new(&dir));
        }
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for ctx in ["excluded", "sent"] {
            write(root, &format!("{ctx}/Dockerfile"), "FROM scratch\n");
            write(root, &format!("{ctx}/db-data/pg_control"), "x");
            std::fs::set_permissions(
                root.join(ctx).join("db-data"),
                std::fs::Permissions::from_mode(0o000),
            )
            .unwrap();
        }
        write(root, "excluded/.dockerignore", "db-data\n");
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let root_user = std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        if !root_user {
            return check(root);
        }
        use std::os::unix::process::CommandExt;
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "context::tests::an_unreadable_excluded_folder_is_not_read",
            ])
            .env("UPLIFT_UNREADABLE_CONTEXT", root)
            .uid(65534)
            .gid(65534)
            .status()
            .unwrap();
        assert!(status.success(), "the check as nobody failed");
    }

    #[test]
    fn a_missing_dockerfile_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let err = BuildContext::pack(d.path(), "nope/Dockerfile").unwrap_err();
        assert!(err.to_string().contains("nope/Dockerfile"), "{err}");
    }

    #[tokio::test]
    async fn streamed_context_equals_packed_context() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        for i in 0..200 {
            write(p, &format!("src/f{i}.txt"), &"x".repeat(3000 + i));
        }
        write(p, "Dockerfile", "FROM scratch\n");
        let packed = BuildContext::pack(p, "Dockerfile").unwrap();
        let mut s = stream(p.into(), ContextOptions::for_dockerfile("Dockerfile"))
            .await
            .unwrap();
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
        write(p, "Dockerfile", "FROM scratch\n");
        std::os::unix::fs::symlink("/etc/hostname", p.join("link")).unwrap();
        let all = entries(&BuildContext::pack(p, "").unwrap().tar);
        let link = find(&all, "link");
        assert_eq!(link.kind, tar::EntryType::Symlink);
        assert_eq!(link.link, b"/etc/hostname");
    }
}
