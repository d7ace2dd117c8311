//! All-or-nothing writes into a folder, decided against the final tree.
//!
//! An apply runs in three phases, like a database's write-ahead log:
//! 1. **Check** every change against the tree as it will be when all changes are made: no write
//!    or delete may pass through a symlink (one already in the folder, or one this apply
//!    creates), a new symlink must point inside the root, a folder is replaced only when the
//!    same apply empties it. Nothing is touched when a check fails.
//! 2. **Stage** every new file in `.uplift-apply/` inside the root (so renames stay on one
//!    filesystem), then write and fsync the [`journal`](crate::journal) listing every step.
//! 3. **Commit**: move the originals aside, swap folders, rename the staged files into place,
//!    then mark the journal committed. On any error (or a cancel) the steps done so far are
//!    undone from the journal; after a crash, [`recover`](crate::recover) does the same (or,
//!    when the journal is committed, finishes the clean-up).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::journal::{self, Journal, Step};
use crate::{Error, FileEntry, FileMode, RelPath, link_stays_inside};

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

/// How an apply can be stopped from outside.
#[derive(Debug, Clone, Default)]
pub struct ApplyControl {
    /// Set (by a SIGINT/SIGTERM handler, say) to stop: an apply that sees it before its last
    /// rename undoes what it did and returns [`Error::Cancelled`].
    pub cancel: Option<Arc<AtomicBool>>,
    /// Test hook: abort the process right after this many renames of the commit phase, to
    /// check that recovery puts the tree back (`UPLIFT_TEST_CRASH_AFTER_RENAMES` in the CLI).
    pub abort_after_renames: Option<usize>,
}

impl ApplyControl {
    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::SeqCst))
    }
}

/// Applies `changes` below `root`: all of them, or (on error) none.
pub fn apply(root: &Path, changes: &[Change]) -> Result<(), Error> {
    apply_with(root, changes, &ApplyControl::default())
}

/// [`apply`], stoppable through `control`.
pub fn apply_with(root: &Path, changes: &[Change], control: &ApplyControl) -> Result<(), Error> {
    let mut transaction = Transaction::begin(root, changes, None, control)?;
    transaction.commit(control)?;
    transaction.finish()
}

/// An apply in progress: checked and staged ([`Transaction::begin`]), then committed, then
/// finished (clean-up) or rolled back. A caller with more to do after the files (a git commit)
/// does it between [`commit`](Transaction::commit) and [`finish`](Transaction::finish), and
/// rolls back when that fails; its `note` travels in the journal so that its own recovery can
/// finish or undo its part too.
#[derive(Debug)]
pub struct Transaction {
    root: PathBuf,
    dir: PathBuf,
    journal: Journal,
    /// Finished or rolled back: nothing left for `Drop` to undo.
    done: bool,
    /// Held for the transaction's life: a recovery never touches a live apply.
    _lock: fs::File,
}

impl Transaction {
    /// Checks every change against the final tree, stages the new contents and writes the
    /// journal. The tree itself is not touched yet.
    pub fn begin(
        root: &Path,
        changes: &[Change],
        note: Option<String>,
        control: &ApplyControl,
    ) -> Result<Self, Error> {
        journal::recover(root)?;
        let mut steps = decide(root, changes)?;
        let (dir, lock) = journal::create_dir(root)?;
        let staged = stage(&dir, changes, &mut steps.steps, control);
        if let Err(error) = staged {
            let _ = fs::remove_dir_all(&dir);
            return Err(error);
        }
        let journal = Journal {
            steps: steps.steps,
            removed_dirs: steps.removed_dirs,
            created_dirs: steps.created_dirs,
            note,
        };
        if let Err(error) = journal::write(&dir, &journal) {
            let _ = fs::remove_dir_all(&dir);
            return Err(error);
        }
        Ok(Self {
            root: root.to_path_buf(),
            dir,
            journal,
            done: false,
            _lock: lock,
        })
    }

    /// How many files the apply writes or deletes.
    pub fn len(&self) -> usize {
        self.journal.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.journal.steps.is_empty()
    }

    /// Makes every change. On error (or a cancel) undoes what was done and returns the error.
    pub fn commit(&mut self, control: &ApplyControl) -> Result<(), Error> {
        let mut renames = 0;
        let result = journal::run_forward(&self.root, &self.dir, &self.journal, &mut || {
            if control.abort_after_renames == Some(renames) {
                std::process::abort();
            }
            renames += 1;
            if control.cancelled() {
                return Err(Error::Cancelled);
            }
            Ok(())
        });
        match result {
            Ok(()) => match journal::mark_committed(&self.dir) {
                Ok(()) => {
                    // The test hook's last point: every rename done, the caller's part not yet.
                    if control.abort_after_renames == Some(renames) {
                        std::process::abort();
                    }
                    Ok(())
                }
                Err(error) => Err(self.undo(error)),
            },
            Err(error) => Err(self.undo(error)),
        }
    }

    /// Undoes a committed (or partly committed) transaction, when what the caller does after
    /// the files (a git commit) failed.
    pub fn rollback(mut self) -> Result<(), Error> {
        self.done = true;
        let failures = journal::roll_back(&self.root, &self.dir, &self.journal);
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Error::RecoveryFailed {
                root: self.root.clone(),
                failures,
            })
        }
    }

    fn undo(&mut self, cause: Error) -> Error {
        let failures = journal::roll_back(&self.root, &self.dir, &self.journal);
        self.done = true;
        if failures.is_empty() {
            cause
        } else {
            Error::UndoFailed {
                cause: Box::new(cause),
                failures,
            }
        }
    }

    /// After a commit: removes folders the deletions emptied and the journal's folder.
    pub fn finish(mut self) -> Result<(), Error> {
        self.done = true;
        journal::finish(&self.root, &self.dir, &self.journal)
    }
}

#[cfg(test)]
impl Transaction {
    /// Stops after `renames` renames and lets go as a killed process would (lock released,
    /// nothing undone).
    pub(crate) fn crash_after(mut self, renames: usize) {
        let mut count = 0;
        let result = journal::run_forward(&self.root, &self.dir, &self.journal, &mut || {
            count += 1;
            if count > renames {
                Err(Error::Cancelled)
            } else {
                Ok(())
            }
        });
        if result.is_ok() {
            let _ = journal::mark_committed(&self.dir);
        }
        self.done = true;
    }
}

impl Drop for Transaction {
    /// A transaction given up half-way (its caller failed) is undone.
    fn drop(&mut self) {
        if !self.done {
            let _ = journal::roll_back(&self.root, &self.dir, &self.journal);
        }
    }
}

/// The steps of an apply and the folders it removes and creates, decided before anything moves.
struct Decided {
    steps: Vec<Step>,
    removed_dirs: Vec<RelPath>,
    created_dirs: Vec<RelPath>,
}

/// What is at a path on disk, without following a symlink at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnDisk {
    Missing,
    Dir,
    Symlink,
    File,
}

fn on_disk(root: &Path, path: &str) -> Result<OnDisk, Error> {
    let native = root.join(path);
    match fs::symlink_metadata(&native) {
        Ok(metadata) if metadata.file_type().is_symlink() => Ok(OnDisk::Symlink),
        Ok(metadata) if metadata.is_dir() => Ok(OnDisk::Dir),
        Ok(_) => Ok(OnDisk::File),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(OnDisk::Missing),
        Err(source) => Err(Error::Read {
            path: native,
            source,
        }),
    }
}

/// Decides every step against the final tree (see the module docs). Nothing is written.
fn decide(root: &Path, changes: &[Change]) -> Result<Decided, Error> {
    let mut targets: BTreeMap<&RelPath, &Change> = BTreeMap::new();
    for change in changes {
        let path = change.path();
        if path.as_str().split('/').next() == Some(journal::DIR_NAME) {
            return Err(Error::Blocked {
                path: path.to_string(),
                reason: format!("{} is where Uplift stages an apply", journal::DIR_NAME),
            });
        }
        if targets.insert(path, change).is_some() {
            return Err(Error::Blocked {
                path: path.to_string(),
                reason: "it is changed twice by the same apply".to_string(),
            });
        }
        if let Change::Write { entry, .. } = change
            && entry.mode == FileMode::Symlink
            && !link_stays_inside(path, &entry.content)
        {
            return Err(Error::LinkEscapes {
                path: path.to_string(),
                target: String::from_utf8_lossy(&entry.content).into_owned(),
            });
        }
    }
    let mut decided = Decided {
        steps: Vec::new(),
        removed_dirs: Vec::new(),
        created_dirs: Vec::new(),
    };
    let mut created: std::collections::BTreeSet<RelPath> = Default::default();
    for change in changes {
        let path = change.path();
        let write = matches!(change, Change::Write { .. });
        // Walk the parents from the top: each must be a real folder, or be made one by this apply.
        let mut reachable = true;
        if let Some(parent) = path.parent() {
            for ancestor in parent.ancestors_from_top() {
                let ancestor_path = RelPath::new(ancestor)?;
                let replaced = match targets.get(&ancestor_path) {
                    Some(Change::Write { .. }) if write => {
                        return Err(Error::Blocked {
                            path: path.to_string(),
                            reason: format!("the same apply writes {ancestor} as a file"),
                        });
                    }
                    Some(Change::Delete { .. }) => true,
                    _ => false,
                };
                let state = if reachable {
                    on_disk(root, ancestor)?
                } else {
                    OnDisk::Missing
                };
                match state {
                    OnDisk::Dir => {}
                    OnDisk::Symlink if replaced => {
                        // The link itself is deleted first; below it there is nothing to delete.
                        reachable = false;
                        if write && created.insert(ancestor_path.clone()) {
                            decided.created_dirs.push(ancestor_path);
                        }
                    }
                    OnDisk::Symlink => {
                        return Err(Error::ThroughSymlink {
                            path: path.to_string(),
                            link: ancestor.to_string(),
                        });
                    }
                    OnDisk::File | OnDisk::Missing => {
                        if state == OnDisk::File && write && !replaced {
                            return Err(Error::Blocked {
                                path: path.to_string(),
                                reason: format!("{ancestor} is a file, not a folder"),
                            });
                        }
                        reachable = false;
                        if write && created.insert(ancestor_path.clone()) {
                            decided.created_dirs.push(ancestor_path);
                        }
                    }
                }
            }
        }
        let state = if reachable {
            on_disk(root, path.as_str())?
        } else {
            OnDisk::Missing
        };
        match (change, state) {
            (Change::Delete { .. }, OnDisk::Missing) => {}
            (Change::Delete { .. }, OnDisk::Dir) => {
                return Err(Error::Blocked {
                    path: path.to_string(),
                    reason: "a folder stands where the apply deletes a file".to_string(),
                });
            }
            (Change::Delete { .. }, _) => decided.steps.push(Step {
                path: path.clone(),
                write: false,
                existing: true,
            }),
            (Change::Write { .. }, OnDisk::Dir) => {
                let emptied = emptied_dirs(root, path, &targets)?;
                decided.removed_dirs.extend(emptied);
                decided.steps.push(Step {
                    path: path.clone(),
                    write: true,
                    existing: false,
                });
            }
            (Change::Write { .. }, state) => decided.steps.push(Step {
                path: path.clone(),
                write: true,
                existing: state != OnDisk::Missing,
            }),
        }
    }
    Ok(decided)
}

/// The folder `dir` and its sub-folders (deepest first), when the apply deletes every file in
/// them; refuses otherwise (the app's own files there would be lost).
fn emptied_dirs(
    root: &Path,
    dir: &RelPath,
    targets: &BTreeMap<&RelPath, &Change>,
) -> Result<Vec<RelPath>, Error> {
    let native = dir.to_native(root);
    let mut dirs = Vec::new();
    for entry in walkdir::WalkDir::new(&native)
        .follow_links(false)
        .contents_first(true)
    {
        let entry = entry.map_err(|error| Error::Read {
            path: native.clone(),
            source: error.into(),
        })?;
        let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
        let path = RelPath::from_native(relative)?;
        if entry.file_type().is_dir() {
            dirs.push(path);
        } else if !matches!(targets.get(&path), Some(Change::Delete { .. })) {
            return Err(Error::Blocked {
                path: dir.to_string(),
                reason: format!("it is a folder holding {path}, which the apply does not delete"),
            });
        }
    }
    Ok(dirs)
}

/// Writes every new file into `dir/new/`; numbers follow the steps.
fn stage(
    dir: &Path,
    changes: &[Change],
    steps: &mut [Step],
    control: &ApplyControl,
) -> Result<(), Error> {
    let entries: BTreeMap<&RelPath, &FileEntry> = changes
        .iter()
        .filter_map(|change| match change {
            Change::Write { path, entry } => Some((path, entry)),
            Change::Delete { .. } => None,
        })
        .collect();
    for (index, step) in steps.iter().enumerate().filter(|(_, step)| step.write) {
        if control.cancelled() {
            return Err(Error::Cancelled);
        }
        let Some(entry) = entries.get(&step.path) else {
            continue;
        };
        write_entry(&journal::staged(dir, index), entry)?;
    }
    Ok(())
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
            use std::io::Write;
            let mut file = fs::File::create(target).map_err(error)?;
            file.write_all(&entry.content).map_err(error)?;
            // Not fsynced one by one (as git's checkout does not): the journal guards against
            // the process dying; an fsync per file would make a 2,000-file apply take seconds.
            set_executable(&file, entry.mode == FileMode::Executable).map_err(error)
        }
    }
}

#[cfg(unix)]
fn set_executable(file: &fs::File, executable: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if executable { 0o755 } else { 0o644 };
    file.set_permissions(fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{read_dir, recover};

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
        assert!(
            !root.path().join(journal::DIR_NAME).exists(),
            "no leftovers"
        );
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
    fn a_cancel_undoes_every_rename() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("a.txt"), "a").unwrap();
        let before = read_dir(root.path(), &[]).unwrap();
        let changes = vec![
            Change::Write {
                path: path("a.txt"),
                entry: FileEntry::regular(&b"changed"[..]),
            },
            Change::Write {
                path: path("n/b.txt"),
                entry: FileEntry::regular(&b"b"[..]),
            },
        ];
        let flag = Arc::new(AtomicBool::new(false));
        let control = ApplyControl {
            cancel: Some(flag.clone()),
            ..Default::default()
        };
        let mut transaction = Transaction::begin(root.path(), &changes, None, &control).unwrap();
        flag.store(true, Ordering::SeqCst);
        assert!(matches!(
            transaction.commit(&control),
            Err(Error::Cancelled)
        ));
        drop(transaction);
        assert_eq!(before, read_dir(root.path(), &[]).unwrap());
    }

    /// A tree touched in every way an apply can: replaced, deleted, new in a new folder, a
    /// folder replaced by a link, a link replaced by a folder.
    fn every_kind_of_step(root: &Path) -> Vec<Change> {
        fs::write(root.join("a.txt"), "a").unwrap();
        fs::write(root.join("gone.txt"), "gone").unwrap();
        fs::create_dir_all(root.join("d/sub")).unwrap();
        fs::write(root.join("d/x"), "x").unwrap();
        fs::write(root.join("d/sub/y"), "y").unwrap();
        fs::create_dir(root.join("keep")).unwrap();
        fs::write(root.join("keep/k"), "k").unwrap();
        std::os::unix::fs::symlink("keep", root.join("l")).unwrap();
        vec![
            Change::Write {
                path: path("a.txt"),
                entry: FileEntry::executable(&b"A"[..]),
            },
            Change::Delete {
                path: path("gone.txt"),
            },
            Change::Write {
                path: path("n/e/w.txt"),
                entry: FileEntry::regular(&b"new"[..]),
            },
            Change::Write {
                path: path("d"),
                entry: FileEntry::new(FileMode::Symlink, &b"keep"[..]),
            },
            Change::Delete { path: path("d/x") },
            Change::Delete {
                path: path("d/sub/y"),
            },
            Change::Delete { path: path("l") },
            Change::Write {
                path: path("l/inside"),
                entry: FileEntry::regular(&b"i"[..]),
            },
        ]
    }

    fn snapshot(root: &Path) -> Vec<(String, String)> {
        walkdir::WalkDir::new(root)
            .sort_by_file_name()
            .into_iter()
            .map(|e| e.unwrap())
            .map(|e| {
                let meta = e.path().symlink_metadata().unwrap();
                use std::os::unix::fs::PermissionsExt;
                let what = if meta.file_type().is_symlink() {
                    format!("link {}", fs::read_link(e.path()).unwrap().display())
                } else if meta.is_dir() {
                    "dir".to_string()
                } else {
                    format!(
                        "{:o} {}",
                        meta.permissions().mode() & 0o777,
                        String::from_utf8_lossy(&fs::read(e.path()).unwrap())
                    )
                };
                (
                    e.path().strip_prefix(root).unwrap().display().to_string(),
                    what,
                )
            })
            .collect()
    }

    #[test]
    fn a_crash_after_any_rename_is_recovered_to_all_or_nothing() {
        let reference = tempfile::tempdir().unwrap();
        let changes = every_kind_of_step(reference.path());
        let before = snapshot(reference.path());
        apply(reference.path(), &changes).unwrap();
        let after = snapshot(reference.path());
        assert_ne!(before, after);
        // 5 originals moved aside + 4 placed: one more than that means "all done".
        for renames in 0..=10 {
            let root = tempfile::tempdir().unwrap();
            let changes = every_kind_of_step(root.path());
            let transaction =
                Transaction::begin(root.path(), &changes, None, &ApplyControl::default()).unwrap();
            transaction.crash_after(renames);
            let recovered = recover(root.path()).unwrap().unwrap();
            let expected = if recovered.outcome == crate::RecoveryOutcome::Finished {
                &after
            } else {
                &before
            };
            assert_eq!(&snapshot(root.path()), expected, "after {renames} renames");
            assert_eq!(
                recovered.outcome == crate::RecoveryOutcome::Finished,
                renames >= 9,
                "after {renames} renames"
            );
            assert_eq!(recover(root.path()).unwrap(), None);
        }
    }

    #[test]
    fn an_apply_refuses_while_another_holds_the_journal() {
        let root = tempfile::tempdir().unwrap();
        let changes = vec![Change::Write {
            path: path("a"),
            entry: FileEntry::regular(&b"a"[..]),
        }];
        let transaction =
            Transaction::begin(root.path(), &changes, None, &ApplyControl::default()).unwrap();
        assert!(matches!(
            recover(root.path()),
            Err(Error::ApplyInProgress { .. })
        ));
        drop(transaction);
        assert_eq!(recover(root.path()).unwrap(), None);
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);
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
            Err(Error::ThroughSymlink { .. })
        ));
        assert!(!outside.path().join("pwned").exists());
    }

    #[test]
    fn a_folder_replaced_by_a_link_is_emptied_first_never_through_the_link() {
        // Upstream turns folder `d/` into a link: the deletion of `d/x` must happen in the
        // folder, before the link exists (issue 10, item 1).
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("x"), "outside").unwrap();
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("d")).unwrap();
        fs::write(root.path().join("d/x"), "inside").unwrap();
        fs::create_dir(root.path().join("e")).unwrap();
        let changes = vec![
            Change::Write {
                path: path("d"),
                entry: FileEntry::new(FileMode::Symlink, &b"e"[..]),
            },
            Change::Delete { path: path("d/x") },
        ];
        apply(root.path(), &changes).unwrap();
        assert_eq!(
            fs::read_link(root.path().join("d")).unwrap(),
            Path::new("e")
        );
        assert_eq!(fs::read(outside.path().join("x")).unwrap(), b"outside");
    }

    #[test]
    fn a_folder_with_the_apps_own_files_is_never_replaced() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("d")).unwrap();
        fs::write(root.path().join("d/x"), "template's").unwrap();
        fs::write(root.path().join("d/mine"), "app's").unwrap();
        let changes = vec![
            Change::Write {
                path: path("d"),
                entry: FileEntry::new(FileMode::Symlink, &b"e"[..]),
            },
            Change::Delete { path: path("d/x") },
        ];
        let error = apply(root.path(), &changes).unwrap_err();
        assert!(matches!(error, Error::Blocked { .. }), "{error}");
        assert_eq!(fs::read(root.path().join("d/mine")).unwrap(), b"app's");
        assert_eq!(fs::read(root.path().join("d/x")).unwrap(), b"template's");
    }

    #[test]
    fn links_pointing_outside_are_refused() {
        let root = tempfile::tempdir().unwrap();
        for target in ["/etc/passwd", "../../outside", "a/../../../x"] {
            let changes = vec![Change::Write {
                path: path("sub/link"),
                entry: FileEntry::new(FileMode::Symlink, target.as_bytes()),
            }];
            let error = apply(root.path(), &changes).unwrap_err();
            assert!(
                matches!(error, Error::LinkEscapes { .. }),
                "{target}: {error}"
            );
        }
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_link_created_by_the_same_apply_is_never_written_through() {
        let root = tempfile::tempdir().unwrap();
        let changes = vec![
            Change::Write {
                path: path("l"),
                entry: FileEntry::new(FileMode::Symlink, &b"e"[..]),
            },
            Change::Write {
                path: path("l/x"),
                entry: FileEntry::regular(&b"x"[..]),
            },
        ];
        let error = apply(root.path(), &changes).unwrap_err();
        assert!(matches!(error, Error::Blocked { .. }), "{error}");
    }

    #[test]
    fn a_deleted_link_becomes_a_real_folder() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("d")).unwrap();
        let changes = vec![
            Change::Delete { path: path("d") },
            Change::Write {
                path: path("d/x"),
                entry: FileEntry::regular(&b"x"[..]),
            },
        ];
        apply(root.path(), &changes).unwrap();
        assert!(root.path().join("d").symlink_metadata().unwrap().is_dir());
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
