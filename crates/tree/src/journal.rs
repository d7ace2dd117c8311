//! The journal of an apply, and recovery from an interrupted one.
//!
//! Layout, inside the root: `.uplift-apply/` holds `lock` (flocked by the applying process),
//! `new/N` (staged contents of step N), `old/N` (what step N moved aside), `journal` (JSON,
//! written to `journal.tmp`, fsynced, then renamed: it exists whole or not at all) and, once
//! every rename is done, `committed`.
//!
//! Every step can be undone by looking at the disk alone: a write was placed when `new/N` is
//! gone, an original was moved aside when `old/N` exists. So undoing is idempotent, and a
//! recovery interrupted in turn is finished by the next one. The journal file is removed before
//! the rest of the folder, so a half-removed folder is never read as a live journal.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, RelPath};

/// The folder, inside the root, where an apply stages its files and keeps its journal.
pub const DIR_NAME: &str = ".uplift-apply";
const JOURNAL: &str = "journal";
const COMMITTED: &str = "committed";
const LOCK: &str = "lock";

/// One file the apply writes or deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    pub path: RelPath,
    /// A new entry is placed at `path` (staged as `new/N`).
    pub write: bool,
    /// Something is at `path` now and is moved aside first (to `old/N`).
    pub existing: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Journal {
    pub steps: Vec<Step>,
    /// Folders removed (deepest first) because a file or link replaces them.
    pub removed_dirs: Vec<RelPath>,
    /// Folders created (top first) for new files.
    pub created_dirs: Vec<RelPath>,
    /// The caller's own record (e.g. the git commit to make), returned by [`recover`].
    pub note: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct JournalFile {
    version: u32,
    /// `[path, "write"|"delete", existing]` per step.
    steps: Vec<(String, String, bool)>,
    removed_dirs: Vec<String>,
    created_dirs: Vec<String>,
    note: Option<String>,
}

pub(crate) fn staged(dir: &Path, index: usize) -> PathBuf {
    dir.join("new").join(index.to_string())
}

fn backup(dir: &Path, index: usize) -> PathBuf {
    dir.join("old").join(index.to_string())
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    fs::File::open(dir)
        .and_then(|file| file.sync_all())
        .map_err(io_error(dir))
}

/// Creates `.uplift-apply/` (with `new/`, `old/`) and takes its lock.
pub(crate) fn create_dir(root: &Path) -> Result<(PathBuf, fs::File), Error> {
    let dir = root.join(DIR_NAME);
    fs::create_dir(&dir).map_err(io_error(&dir))?;
    let lock_path = dir.join(LOCK);
    let lock = fs::File::create(&lock_path).map_err(io_error(&lock_path))?;
    lock.lock().map_err(io_error(&lock_path))?;
    for sub in ["new", "old"] {
        fs::create_dir(dir.join(sub)).map_err(io_error(&dir))?;
    }
    Ok((dir, lock))
}

/// Writes the journal whole (temporary name, fsync, rename, fsync of the folders).
pub(crate) fn write(dir: &Path, journal: &Journal) -> Result<(), Error> {
    let file = JournalFile {
        version: 1,
        steps: journal
            .steps
            .iter()
            .map(|step| {
                let kind = if step.write { "write" } else { "delete" };
                (step.path.to_string(), kind.to_string(), step.existing)
            })
            .collect(),
        removed_dirs: journal
            .removed_dirs
            .iter()
            .map(RelPath::to_string)
            .collect(),
        created_dirs: journal
            .created_dirs
            .iter()
            .map(RelPath::to_string)
            .collect(),
        note: journal.note.clone(),
    };
    let text = serde_json::to_vec(&file).map_err(|error| Error::Write {
        path: dir.join(JOURNAL),
        source: std::io::Error::other(error),
    })?;
    let temporary = dir.join("journal.tmp");
    let mut out = fs::File::create(&temporary).map_err(io_error(&temporary))?;
    out.write_all(&text).map_err(io_error(&temporary))?;
    out.sync_all().map_err(io_error(&temporary))?;
    fs::rename(&temporary, dir.join(JOURNAL)).map_err(io_error(dir))?;
    for folder in [dir.join("new"), dir.to_path_buf()] {
        sync_dir(&folder)?;
    }
    if let Some(root) = dir.parent() {
        sync_dir(root)?;
    }
    Ok(())
}

fn read(dir: &Path) -> Result<Option<Journal>, Error> {
    let path = dir.join(JOURNAL);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::Read { path, source }),
    };
    let corrupt = |reason: String| Error::Read {
        path: path.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, reason),
    };
    let file: JournalFile =
        serde_json::from_slice(&bytes).map_err(|error| corrupt(error.to_string()))?;
    if file.version != 1 {
        return Err(corrupt(format!("unknown journal version {}", file.version)));
    }
    let paths = |list: Vec<String>| {
        list.into_iter()
            .map(RelPath::new)
            .collect::<Result<Vec<_>, _>>()
    };
    let steps = file
        .steps
        .into_iter()
        .map(|(path, kind, existing)| {
            Ok(Step {
                path: RelPath::new(path)?,
                write: kind == "write",
                existing,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(Some(Journal {
        steps,
        removed_dirs: paths(file.removed_dirs)?,
        created_dirs: paths(file.created_dirs)?,
        note: file.note,
    }))
}

/// Makes every step, calling `before_rename` before each rename (it may stop the apply).
pub(crate) fn run_forward(
    root: &Path,
    dir: &Path,
    journal: &Journal,
    before_rename: &mut dyn FnMut() -> Result<(), Error>,
) -> Result<(), Error> {
    for (index, step) in journal.steps.iter().enumerate() {
        if step.existing {
            before_rename()?;
            let target = step.path.to_native(root);
            fs::rename(&target, backup(dir, index)).map_err(io_error(&target))?;
        }
    }
    for removed in &journal.removed_dirs {
        let native = removed.to_native(root);
        fs::remove_dir(&native).map_err(io_error(&native))?;
    }
    for created in &journal.created_dirs {
        let native = created.to_native(root);
        fs::create_dir(&native).map_err(io_error(&native))?;
    }
    for (index, step) in journal.steps.iter().enumerate() {
        if step.write {
            before_rename()?;
            let target = step.path.to_native(root);
            fs::rename(staged(dir, index), &target).map_err(io_error(&target))?;
        }
    }
    Ok(())
}

/// Records that every rename is done: from here on, recovery finishes instead of undoing.
pub(crate) fn mark_committed(dir: &Path) -> Result<(), Error> {
    let path = dir.join(COMMITTED);
    fs::File::create(&path)
        .and_then(|file| file.sync_all())
        .map_err(io_error(&path))?;
    sync_dir(dir)
}

fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Undoes whatever part of the journal was done; returns what could not be put back.
pub(crate) fn roll_back(root: &Path, dir: &Path, journal: &Journal) -> Vec<String> {
    let mut failures = Vec::new();
    let mut check = |result: std::io::Result<()>, path: &Path| {
        if let Err(error) = result {
            failures.push(format!("{}: {error}", path.display()));
        }
    };
    // Undone first, so that a crash while undoing is undone again, not finished.
    let committed = dir.join(COMMITTED);
    if exists(&committed) {
        let result = fs::remove_file(&committed);
        check(result, &committed);
        let _ = sync_dir(dir);
    }
    for (index, step) in journal.steps.iter().enumerate().rev() {
        let target = step.path.to_native(root);
        let staged = staged(dir, index);
        if step.write && !exists(&staged) && exists(&target) {
            check(fs::rename(&target, &staged), &target);
        }
    }
    for created in journal.created_dirs.iter().rev() {
        let native = created.to_native(root);
        // Only a real folder is ours: a link still there is the original it replaces.
        if fs::symlink_metadata(&native).is_ok_and(|metadata| metadata.is_dir()) {
            check(fs::remove_dir(&native), &native);
        }
    }
    for removed in journal.removed_dirs.iter().rev() {
        let native = removed.to_native(root);
        if !exists(&native) {
            check(fs::create_dir(&native), &native);
        }
    }
    for (index, step) in journal.steps.iter().enumerate().rev() {
        let backup = backup(dir, index);
        if step.existing && exists(&backup) {
            let target = step.path.to_native(root);
            if exists(&target) {
                check(
                    Err(std::io::Error::other("something else is there now")),
                    &target,
                );
            } else {
                check(fs::rename(&backup, &target), &target);
            }
        }
    }
    if failures.is_empty() {
        // Keep the journal (and the backups) when something could not be put back.
        let _ = remove(dir);
    }
    failures
}

/// After a commit: removes the folders that deletions emptied (git keeps no empty folder),
/// then the journal's folder.
pub(crate) fn finish(root: &Path, dir: &Path, journal: &Journal) -> Result<(), Error> {
    for step in journal.steps.iter().filter(|step| !step.write) {
        let mut parent = step.path.parent();
        while let Some(folder) = parent {
            if fs::remove_dir(folder.to_native(root)).is_err() {
                break;
            }
            parent = folder.parent();
        }
    }
    remove(dir)
}

fn remove(dir: &Path) -> Result<(), Error> {
    let journal = dir.join(JOURNAL);
    match fs::remove_file(&journal) {
        Ok(()) => sync_dir(dir)?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(Error::Write {
                path: journal,
                source,
            });
        }
    }
    fs::remove_dir_all(dir).map_err(io_error(dir))
}

/// What [`recover`] did with an interrupted apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryOutcome {
    /// It was interrupted before its first rename: only its staging folder was removed.
    Discarded,
    /// It was interrupted while renaming: every step was undone, the tree is as before.
    RolledBack,
    /// Every rename was done: only the clean-up was left, and is done now.
    Finished,
}

/// An interrupted apply found in a folder and dealt with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub outcome: RecoveryOutcome,
    /// How many files the apply wrote or deleted.
    pub steps: usize,
    /// The note its caller left in the journal.
    pub note: Option<String>,
}

/// Finds an interrupted apply below `root` (its `.uplift-apply/` folder) and puts the tree in
/// the state of either the whole apply or none of it: finished when every rename was done,
/// undone otherwise. `Ok(None)` when there is none. Refuses while another process applies.
pub fn recover(root: &Path) -> Result<Option<Recovered>, Error> {
    let dir = root.join(DIR_NAME);
    match fs::symlink_metadata(&dir) {
        Ok(metadata) if metadata.is_dir() => {}
        Ok(_) => {
            return Err(Error::Blocked {
                path: DIR_NAME.to_string(),
                reason: "Uplift keeps an apply's journal there, and it is not a folder".to_string(),
            });
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::Read { path: dir, source }),
    }
    let lock_path = dir.join(LOCK);
    let _lock = match fs::File::open(&lock_path) {
        Ok(lock) => match lock.try_lock() {
            Ok(()) => Some(lock),
            Err(fs::TryLockError::WouldBlock) => {
                return Err(Error::ApplyInProgress {
                    root: root.to_path_buf(),
                });
            }
            Err(fs::TryLockError::Error(source)) => {
                return Err(Error::Read {
                    path: lock_path,
                    source,
                });
            }
        },
        Err(_) => None,
    };
    let Some(journal) = read(&dir)? else {
        remove(&dir)?;
        return Ok(Some(Recovered {
            outcome: RecoveryOutcome::Discarded,
            steps: 0,
            note: None,
        }));
    };
    let steps = journal.steps.len();
    let note = journal.note.clone();
    if exists(&dir.join(COMMITTED)) {
        finish(root, &dir, &journal)?;
        return Ok(Some(Recovered {
            outcome: RecoveryOutcome::Finished,
            steps,
            note,
        }));
    }
    let failures = roll_back(root, &dir, &journal);
    if !failures.is_empty() {
        return Err(Error::RecoveryFailed {
            root: root.to_path_buf(),
            failures,
        });
    }
    Ok(Some(Recovered {
        outcome: RecoveryOutcome::RolledBack,
        steps,
        note,
    }))
}
