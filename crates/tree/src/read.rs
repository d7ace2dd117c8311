//! Reading from disk without leaving the root through a symlink.

use std::fs;
use std::path::{Path, PathBuf};

use crate::{Error, FileEntry, FileMode, RelPath, Tree};

/// Reads one path below `root`; `Ok(None)` when nothing is there.
///
/// A symlink at `path` itself is returned as a [`FileMode::Symlink`] entry (not followed). A
/// symlink on the way to `path` is followed only when it resolves inside `root`.
pub fn read_entry(root: &Path, path: &RelPath) -> Result<Option<FileEntry>, Error> {
    if !ancestors_inside_root(root, path)? {
        return Ok(None);
    }
    let native = path.to_native(root);
    let metadata = match fs::symlink_metadata(&native) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Read {
                path: native,
                source,
            });
        }
    };
    read_with_metadata(&native, &metadata)
        .map(Some)
        .or_else(|error| match error {
            // A folder where the template has a file reads as "no file here".
            Error::Unsupported { .. } if metadata.is_dir() => Ok(None),
            other => Err(other),
        })
}

/// Checks every parent folder of `path`: each must be a folder (or a symlink resolving to a
/// folder inside `root`). Returns `false` when one is missing or is not a folder.
pub(crate) fn ancestors_inside_root(root: &Path, path: &RelPath) -> Result<bool, Error> {
    let Some(parent) = path.parent() else {
        return Ok(true);
    };
    let mut canonical_root: Option<PathBuf> = None;
    for ancestor in parent.ancestors_from_top() {
        let native = root.join(ancestor);
        let metadata = match fs::symlink_metadata(&native) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(Error::Read {
                    path: native,
                    source,
                });
            }
        };
        if metadata.file_type().is_symlink() {
            let root_real = match &canonical_root {
                Some(real) => real.clone(),
                None => {
                    let real = fs::canonicalize(root).map_err(|source| Error::Read {
                        path: root.to_path_buf(),
                        source,
                    })?;
                    canonical_root = Some(real.clone());
                    real
                }
            };
            let target = match fs::canonicalize(&native) {
                Ok(target) => target,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Err(source) => {
                    return Err(Error::Read {
                        path: native,
                        source,
                    });
                }
            };
            if !target.starts_with(&root_real) {
                return Err(Error::EscapesRoot {
                    path: path.to_string(),
                    root: root.to_path_buf(),
                });
            }
            if !target.is_dir() {
                return Ok(false);
            }
        } else if !metadata.is_dir() {
            return Ok(false);
        }
    }
    Ok(true)
}

fn read_with_metadata(native: &Path, metadata: &fs::Metadata) -> Result<FileEntry, Error> {
    let file_type = metadata.file_type();
    if file_type.is_symlink() {
        let target = fs::read_link(native).map_err(|source| Error::Read {
            path: native.to_path_buf(),
            source,
        })?;
        let target = target.to_string_lossy().into_owned();
        return Ok(FileEntry::new(FileMode::Symlink, target.into_bytes()));
    }
    if !file_type.is_file() {
        return Err(Error::Unsupported {
            path: native.to_path_buf(),
        });
    }
    let content = fs::read(native).map_err(|source| Error::Read {
        path: native.to_path_buf(),
        source,
    })?;
    Ok(FileEntry::new(mode_of(metadata), content))
}

#[cfg(unix)]
fn mode_of(metadata: &fs::Metadata) -> FileMode {
    use std::os::unix::fs::PermissionsExt;
    if metadata.permissions().mode() & 0o111 != 0 {
        FileMode::Executable
    } else {
        FileMode::Regular
    }
}

#[cfg(not(unix))]
fn mode_of(_metadata: &fs::Metadata) -> FileMode {
    FileMode::Regular
}

/// Reads every file below `root`, skipping folders named in `skip_dirs` (e.g. `.git`) at any depth.
pub fn read_dir(root: &Path, skip_dirs: &[&str]) -> Result<Tree, Error> {
    let mut tree = Tree::new();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name();
    let walker = walker.into_iter().filter_entry(|entry| {
        entry.depth() == 0
            || !(entry.file_type().is_dir()
                && entry
                    .file_name()
                    .to_str()
                    .is_some_and(|name| skip_dirs.contains(&name)))
    });
    for entry in walker {
        let entry = entry.map_err(|error| {
            let path = error.path().unwrap_or(root).to_path_buf();
            Error::Read {
                path,
                source: error.into(),
            }
        })?;
        if entry.file_type().is_dir() {
            continue;
        }
        let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
        let path = RelPath::from_native(relative)?;
        let metadata = entry
            .path()
            .symlink_metadata()
            .map_err(|source| Error::Read {
                path: entry.path().to_path_buf(),
                source,
            })?;
        tree.insert(path, read_with_metadata(entry.path(), &metadata)?);
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn refuses_a_symlinked_folder_that_leaves_the_root() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "x").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
        let error = read_entry(root.path(), &RelPath::new("link/secret").unwrap()).unwrap_err();
        assert!(matches!(error, Error::EscapesRoot { .. }), "{error}");
    }

    #[test]
    fn follows_a_symlinked_folder_inside_the_root_and_keeps_modes() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("real")).unwrap();
        fs::write(root.path().join("real/run.sh"), "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(
            root.path().join("real/run.sh"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("real", root.path().join("alias")).unwrap();
        let entry = read_entry(root.path(), &RelPath::new("alias/run.sh").unwrap()).unwrap();
        assert_eq!(entry.unwrap().mode, FileMode::Executable);
        let link = read_entry(root.path(), &RelPath::new("alias").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(
            (link.mode, &*link.content),
            (FileMode::Symlink, &b"real"[..])
        );
        assert_eq!(
            read_entry(root.path(), &RelPath::new("real/none").unwrap()).unwrap(),
            None
        );
        assert_eq!(
            read_entry(root.path(), &RelPath::new("real/run.sh/x").unwrap()).unwrap(),
            None
        );
    }

    #[test]
    fn reads_a_whole_folder_skipping_named_dirs() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join(".git/objects")).unwrap();
        fs::write(root.path().join(".git/HEAD"), "ref").unwrap();
        fs::create_dir_all(root.path().join("a/b")).unwrap();
        fs::write(root.path().join("a/b/c.txt"), "c").unwrap();
        fs::write(root.path().join("top"), "t").unwrap();
        let tree = read_dir(root.path(), &[".git"]).unwrap();
        let paths: Vec<_> = tree.paths().map(RelPath::as_str).collect();
        assert_eq!(paths, ["a/b/c.txt", "top"]);
    }
}
