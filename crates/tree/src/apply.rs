//! All-or-nothing writes into a folder.
//!
//! Every new file is first written into a staging folder inside the root (so renames stay on one
//! filesystem and are atomic); only then are the originals moved aside and the staged files
//! renamed into place. If anything fails, what was already moved is put back, so the folder is
//! as it was. The slow part (writing contents) happens before anything in the tree changes.

use std::fs;
use std::path::{Path, PathBuf};

use crate::read::ancestors_inside_root;
use crate::{Error, FileEntry, FileMode, RelPath};

/// One change to a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Create or replace the file at `path`.
    Write { path: RelPath, entry: FileEntry },
    /// Remove the file at `path` (nothing happens when it is already gone).
    Delete { path: RelPath },
}

impl Change {
    pub fn path(&self) -> &RelPath {
        match self {
            Change::Write { path, .. } | Change::Delete { path } => path,
        }
    }
}

/// What was done to the tree, so that it can be undone.
enum Done {
    /// A folder that did not exist and was created.
    CreatedDir(PathBuf),
    /// `original` was moved to `backup`.
    MovedAside { original: PathBuf, backup: PathBuf },
    /// A new file was placed at `path` (nothing was there before).
    Placed(PathBuf),
}

/// Applies `changes` below `root`: all of them, or (on error) none.
pub fn apply(root: &Path, changes: &[Change]) -> Result<(), Error> {
    if changes.is_empty() {
        return Ok(());
    }
    for change in changes {
        check_target(root, change.path())?;
    }
    let staging = tempfile::Builder::new()
        .prefix(".uplift-staging-")
        .tempdir_in(root)
        .map_err(|source| Error::Write {
            path: root.to_path_buf(),
            source,
        })?;
    let staged = stage(staging.path(), changes)?;
    let mut done = Vec::new();
    match commit(root, staging.path(), changes, &staged, &mut done) {
        Ok(()) => {
            remove_emptied_dirs(root, changes);
            Ok(())
        }
        Err(error) => match undo(done) {
            failures if failures.is_empty() => Err(error),
            failures => Err(Error::UndoFailed {
                cause: Box::new(error),
                failures,
            }),
        },
    }
}

/// Refuses a target reached through a symlink that leaves the root.
fn check_target(root: &Path, path: &RelPath) -> Result<(), Error> {
    ancestors_inside_root(root, path).map(|_| ())
}

/// Writes every new file into the staging folder; returns each change's staged file.
fn stage(staging: &Path, changes: &[Change]) -> Result<Vec<Option<PathBuf>>, Error> {
    changes
        .iter()
        .enumerate()
        .map(|(index, change)| match change {
            Change::Write { entry, .. } => {
                let staged = staging.join(format!("new-{index}"));
                write_entry(&staged, entry)?;
                Ok(Some(staged))
            }
            Change::Delete { .. } => Ok(None),
        })
        .collect()
}

fn write_entry(target: &Path, entry: &FileEntry) -> Result<(), Error> {
    let error = |source| Error::Write {
        path: target.to_path_buf(),
        source,
    };
    match entry.mode {
        FileMode::Symlink => {
            let link = String::from_utf8_lossy(&entry.content).into_owned();
            std::os::unix::fs::symlink(link, target).map_err(error)
        }
        FileMode::Regular | FileMode::Executable => {
            fs::write(target, &entry.content).map_err(error)?;
            set_executable(target, entry.mode == FileMode::Executable).map_err(error)
        }
    }
}

#[cfg(unix)]
fn set_executable(path: &Path, executable: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if executable { 0o755 } else { 0o644 };
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

fn commit(
    root: &Path,
    staging: &Path,
    changes: &[Change],
    staged: &[Option<PathBuf>],
    done: &mut Vec<Done>,
) -> Result<(), Error> {
    for (index, (change, staged)) in changes.iter().zip(staged).enumerate() {
        let target = change.path().to_native(root);
        let exists = fs::symlink_metadata(&target).is_ok();
        if exists {
            let backup = staging.join(format!("old-{index}"));
            fs::rename(&target, &backup).map_err(|source| Error::Write {
                path: target.clone(),
                source,
            })?;
            done.push(Done::MovedAside {
                original: target.clone(),
                backup,
            });
        }
        if let Some(staged) = staged {
            create_parents(root, change.path(), done)?;
            fs::rename(staged, &target).map_err(|source| Error::Write {
                path: target.clone(),
                source,
            })?;
            if !exists {
                done.push(Done::Placed(target));
            }
        }
    }
    Ok(())
}

fn create_parents(root: &Path, path: &RelPath, done: &mut Vec<Done>) -> Result<(), Error> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    for ancestor in parent.ancestors_from_top() {
        let dir = root.join(ancestor);
        match fs::symlink_metadata(&dir) {
            Ok(metadata) if metadata.is_dir() || metadata.file_type().is_symlink() => continue,
            Ok(_) => {
                return Err(Error::Write {
                    path: dir,
                    source: std::io::Error::other("a file stands where a folder is needed"),
                });
            }
            Err(_) => {
                fs::create_dir(&dir).map_err(|source| Error::Write {
                    path: dir.clone(),
                    source,
                })?;
                done.push(Done::CreatedDir(dir));
            }
        }
    }
    Ok(())
}

/// Puts everything back, newest first; returns what could not be put back.
fn undo(done: Vec<Done>) -> Vec<String> {
    let mut failures = Vec::new();
    for step in done.into_iter().rev() {
        let result = match &step {
            Done::Placed(path) => fs::remove_file(path),
            Done::CreatedDir(dir) => fs::remove_dir(dir),
            Done::MovedAside { original, backup } => {
                let _ = fs::remove_file(original);
                fs::rename(backup, original)
            }
        };
        if let Err(error) = result {
            let path = match &step {
                Done::Placed(path) | Done::CreatedDir(path) => path,
                Done::MovedAside { original, .. } => original,
            };
            failures.push(format!("{}: {error}", path.display()));
        }
    }
    failures
}

/// After deletions, removes parent folders left empty (git does not keep empty folders).
fn remove_emptied_dirs(root: &Path, changes: &[Change]) {
    for change in changes {
        if let Change::Delete { path } = change {
            let mut parent = path.parent();
            while let Some(dir) = parent {
                if fs::remove_dir(dir.to_native(root)).is_err() {
                    break;
                }
                parent = dir.parent();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::read_dir;

    fn path(p: &str) -> RelPath {
        RelPath::new(p).unwrap()
    }

    #[test]
    fn writes_replaces_deletes_and_sets_modes() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("old.txt"), "old").unwrap();
        fs::create_dir(root.path().join("gone")).unwrap();
        fs::write(root.path().join("gone/x"), "x").unwrap();
        let changes = vec![
            Change::Write {
                path: path("old.txt"),
                entry: FileEntry::regular(&b"new"[..]),
            },
            Change::Write {
                path: path("bin/run"),
                entry: FileEntry::executable(&b"#!"[..]),
            },
            Change::Delete {
                path: path("gone/x"),
            },
        ];
        apply(root.path(), &changes).unwrap();
        let tree = read_dir(root.path(), &[]).unwrap();
        assert_eq!(tree.len(), 2);
        assert_eq!(&*tree.get(&path("old.txt")).unwrap().content, b"new");
        assert_eq!(
            tree.get(&path("bin/run")).unwrap().mode,
            FileMode::Executable
        );
        assert!(!root.path().join("gone").exists(), "emptied folder removed");
    }

    #[test]
    fn a_failure_midway_leaves_the_tree_as_it_was() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("a.txt"), "a").unwrap();
        fs::write(root.path().join("blocker"), "a file, not a folder").unwrap();
        let before = read_dir(root.path(), &[]).unwrap();
        let changes = vec![
            Change::Write {
                path: path("a.txt"),
                entry: FileEntry::regular(&b"changed"[..]),
            },
            Change::Write {
                path: path("new/dir/file"),
                entry: FileEntry::regular(&b"n"[..]),
            },
            Change::Delete {
                path: path("blocker"),
            },
            Change::Write {
                path: path("blocker/inside"),
                entry: FileEntry::regular(&b"x"[..]),
            },
            Change::Write {
                path: path("a.txt/impossible"),
                entry: FileEntry::regular(&b"x"[..]),
            },
        ];
        assert!(apply(root.path(), &changes).is_err());
        let after = read_dir(root.path(), &[]).unwrap();
        assert_eq!(before, after);
    }

    #[test]
    fn refuses_to_write_through_a_symlink_out_of_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("out")).unwrap();
        let changes = vec![Change::Write {
            path: path("out/pwned"),
            entry: FileEntry::regular(&b"x"[..]),
        }];
        assert!(matches!(
            apply(root.path(), &changes),
            Err(Error::EscapesRoot { .. })
        ));
        assert!(!outside.path().join("pwned").exists());
    }
}
