//! Unpacking a package tarball (`.tgz`) into a folder, refusing any entry that could write
//! outside it.
//!
//! npm tarballs hold one top folder (`package/`), which is dropped, as npm does. Every entry's
//! path is checked component by component: a `..`, an absolute path, or a non-UTF-8 name is
//! refused, and so is any link (symbolic or hard) and any special file. The target must be a
//! fresh folder: since nothing here ever creates a link, no write can be redirected.

use std::io::Read;
use std::path::{Component, Path};

use tar::EntryType;

use crate::Error;

/// Most entries one tarball may hold.
const MAX_ENTRIES: usize = 100_000;

/// What [`extract`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extracted {
    pub files: usize,
    pub bytes: u64,
}

/// Unpacks the gzip-compressed tarball read from `reader` into `target` (created if missing),
/// writing at most `max_bytes` of file content.
pub fn extract(reader: impl Read, target: &Path, max_bytes: u64) -> Result<Extracted, Error> {
    let archive_error = |e: std::io::Error| Error::Archive {
        message: e.to_string(),
    };
    std::fs::create_dir_all(target).map_err(Error::io("create", target))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(reader));
    let mut done = Extracted::default();
    for (index, entry) in archive.entries().map_err(archive_error)?.enumerate() {
        if index >= MAX_ENTRIES {
            return Err(Error::Archive {
                message: format!("more than {MAX_ENTRIES} entries"),
            });
        }
        let mut entry = entry.map_err(archive_error)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let unsafe_entry = |reason| Error::UnsafeEntry {
            entry: name.clone(),
            reason,
        };
        let kind = entry.header().entry_type();
        match kind {
            EntryType::Symlink | EntryType::Link => return Err(unsafe_entry("is a link")),
            EntryType::Regular | EntryType::Continuous | EntryType::Directory => {}
            // Metadata entries that `tar` did not already fold into the next entry.
            EntryType::XGlobalHeader | EntryType::XHeader => continue,
            _ => return Err(unsafe_entry("is not a regular file or a folder")),
        }
        let path = entry.path().map_err(archive_error)?.into_owned();
        let Some(relative) = checked_relative(&path).map_err(unsafe_entry)? else {
            continue; // the top folder itself
        };
        let destination = target.join(&relative);
        if kind == EntryType::Directory {
            std::fs::create_dir_all(&destination).map_err(Error::io("create", &destination))?;
            continue;
        }
        if let Some(parent) = destination.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
        }
        let executable = entry
            .header()
            .mode()
            .map(|m| m & 0o111 != 0)
            .unwrap_or(false);
        let mut file =
            std::fs::File::create(&destination).map_err(Error::io("write", &destination))?;
        let budget = max_bytes.saturating_sub(done.bytes);
        let copied = std::io::copy(&mut (&mut entry).take(budget.saturating_add(1)), &mut file)
            .map_err(Error::io("write", &destination))?;
        if copied > budget {
            return Err(Error::Archive {
                message: format!("more than {max_bytes} bytes of content"),
            });
        }
        set_mode(&destination, executable)?;
        done.files += 1;
        done.bytes += copied;
    }
    Ok(done)
}

/// The entry's path below the tarball's top folder; `Ok(None)` for the top folder itself.
fn checked_relative(path: &Path) -> Result<Option<String>, &'static str> {
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str().ok_or("has a non-UTF-8 name")?),
            Component::CurDir => {}
            Component::ParentDir => return Err("climbs out of the target through `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("has an absolute path"),
        }
    }
    if parts.len() < 2 {
        return Ok(None);
    }
    let relative = parts[1..].join("/");
    // The tree's own check, once more: no empty, `.` or `..` component.
    uplift_tree::RelPath::new(relative.clone()).map_err(|_| "has an invalid path")?;
    Ok(Some(relative))
}

#[cfg(unix)]
fn set_mode(path: &Path, executable: bool) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if executable { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(Error::io("set the mode of", path))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _executable: bool) -> Result<(), Error> {
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// A header whose name is written byte by byte, so that `..` and absolute paths (which
    /// `tar`'s own `set_path` refuses) can be forged.
    fn header(name: &str, kind: EntryType, size: u64) -> tar::Header {
        let mut header = tar::Header::new_ustar();
        let bytes = name.as_bytes();
        header.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        header.set_entry_type(kind);
        header.set_size(size);
        header.set_mode(0o644);
        header
    }

    fn tgz(entries: &[(&str, EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut builder = tar::Builder::new(encoder);
        for (name, kind, data, link) in entries {
            let mut header = header(name, *kind, data.len() as u64);
            if let Some(link) = link {
                let bytes = link.as_bytes();
                header.as_old_mut().linkname[..bytes.len()].copy_from_slice(bytes);
            }
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    fn files_under(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push(path.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn extracts_files_below_the_top_folder() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        let data = tgz(&[
            ("package/", EntryType::Directory, b"", None),
            ("package/package.json", EntryType::Regular, b"{}", None),
            (
                "package/templates/a/b.txt",
                EntryType::Regular,
                b"hello",
                None,
            ),
        ]);
        let done = extract(&data[..], &target, 1024).unwrap();
        assert_eq!(done, Extracted { files: 2, bytes: 7 });
        assert_eq!(files_under(&target), ["package.json", "templates/a/b.txt"]);
        assert_eq!(
            std::fs::read(target.join("templates/a/b.txt")).unwrap(),
            b"hello"
        );
    }

    fn refused(entries: &[(&str, EntryType, &[u8], Option<&str>)]) -> (String, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        let data = tgz(entries);
        let error = extract(&data[..], &target, 1024).unwrap_err().to_string();
        // Nothing was written next to the target either.
        let mut outside = files_under(dir.path());
        outside.retain(|p| !p.starts_with("out/"));
        (error, outside)
    }

    #[test]
    fn refuses_parent_components() {
        let (error, outside) =
            refused(&[("package/../../evil.txt", EntryType::Regular, b"x", None)]);
        assert_eq!(
            error,
            "extract the package tarball: entry \"package/../../evil.txt\" climbs out of the target through `..`"
        );
        assert!(outside.is_empty(), "{outside:?}");
    }

    #[test]
    fn refuses_absolute_paths() {
        let (error, outside) = refused(&[("/tmp/evil.txt", EntryType::Regular, b"x", None)]);
        assert_eq!(
            error,
            "extract the package tarball: entry \"/tmp/evil.txt\" has an absolute path"
        );
        assert!(outside.is_empty(), "{outside:?}");
    }

    #[test]
    fn refuses_symlinks() {
        let (error, outside) = refused(&[
            ("package/link", EntryType::Symlink, b"", Some("/etc")),
            ("package/link/passwd", EntryType::Regular, b"x", None),
        ]);
        assert_eq!(
            error,
            "extract the package tarball: entry \"package/link\" is a link"
        );
        assert!(outside.is_empty(), "{outside:?}");
    }

    #[test]
    fn refuses_hard_links() {
        let (error, _) = refused(&[
            ("package/a", EntryType::Regular, b"x", None),
            ("package/b", EntryType::Link, b"", Some("../../etc/passwd")),
        ]);
        assert_eq!(
            error,
            "extract the package tarball: entry \"package/b\" is a link"
        );
    }

    #[test]
    fn refuses_special_files_and_oversized_content() {
        let (error, _) = refused(&[("package/fifo", EntryType::Fifo, b"", None)]);
        assert!(
            error.ends_with("is not a regular file or a folder"),
            "{error}"
        );
        let dir = tempfile::tempdir().unwrap();
        let data = tgz(&[("package/big", EntryType::Regular, &[b'x'; 2000], None)]);
        let error = extract(&data[..], dir.path(), 1000)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "extract the package tarball: more than 1000 bytes of content"
        );
    }

    #[test]
    fn keeps_the_executable_bit() {
        use std::os::unix::fs::PermissionsExt;
        let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut builder = tar::Builder::new(encoder);
        let mut header = header("package/run.sh", EntryType::Regular, 2);
        header.set_mode(0o755);
        header.set_cksum();
        builder.append(&header, &b"ok"[..]).unwrap();
        let data = builder.into_inner().unwrap().finish().unwrap();
        let dir = tempfile::tempdir().unwrap();
        extract(&data[..], dir.path(), 100).unwrap();
        let mode = std::fs::metadata(dir.path().join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
    }
}
