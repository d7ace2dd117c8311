//! File trees for Uplift: validated relative paths, file contents with modes, safe reads from an
//! app folder and all-or-nothing writes back to it.
//!
//! - [`RelPath`]: a relative path that cannot escape its root.
//! - [`FileEntry`]: bytes plus a [`FileMode`] (regular, executable, symlink).
//! - [`Tree`]: an ordered map of paths to entries (a rendered template, a set of app files).
//! - [`read_entry`] / [`read_dir`]: read from disk, refusing symlinks that leave the root.
//! - [`apply`]: write a list of [`Change`]s so that either all of them land or none does, never
//!   through a symlink; [`Transaction`] for callers with more to do before the apply counts
//!   (a git commit), and [`recover`] for the next command after an interrupted apply.
//! - [`link_stays_inside`]: whether a symlink's target stays inside the root.

mod apply;
mod entry;
mod journal;
mod link;
mod path;
mod read;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use apply::{ApplyControl, Change, Transaction, apply, apply_with};
pub use entry::{FileEntry, FileMode};
pub use journal::{DIR_NAME as APPLY_DIR, Recovered, RecoveryOutcome, recover};
pub use link::link_stays_inside;
pub use path::RelPath;
pub use read::{read_dir, read_entry};

/// Errors of this crate. Messages read after "failed to …" in the binary's output.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("path {path} escapes {root} through a symlink")]
    EscapesRoot { path: String, root: PathBuf },
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{cause}; restoring the tree also failed for: {}", failures.join(", "))]
    UndoFailed {
        cause: Box<Error>,
        failures: Vec<String>,
    },
    #[error("{path} is not a regular file, a symlink or a folder")]
    Unsupported { path: PathBuf },
    #[error("change {path}: {link} is a symlink, and Uplift never writes or deletes through one")]
    ThroughSymlink { path: String, link: String },
    #[error("write the symlink {path}: its target {target:?} points outside the app")]
    LinkEscapes { path: String, target: String },
    #[error("change {path}: {reason}")]
    Blocked { path: String, reason: String },
    #[error("apply the changes: interrupted, and every change was undone")]
    Cancelled,
    #[error("apply in {root}: another Uplift process is applying there now")]
    ApplyInProgress { root: PathBuf },
    #[error(
        "recover the interrupted apply in {root}: could not put back {}",
        failures.join(", ")
    )]
    RecoveryFailed {
        root: PathBuf,
        failures: Vec<String>,
    },
}

/// An ordered map of paths to file entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    entries: BTreeMap<RelPath, FileEntry>,
}

impl Tree {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, path: RelPath, entry: FileEntry) -> Option<FileEntry> {
        self.entries.insert(path, entry)
    }

    pub fn remove(&mut self, path: &RelPath) -> Option<FileEntry> {
        self.entries.remove(path)
    }

    pub fn get(&self, path: &RelPath) -> Option<&FileEntry> {
        self.entries.get(path)
    }

    pub fn contains(&self, path: &RelPath) -> bool {
        self.entries.contains_key(path)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&RelPath, &FileEntry)> {
        self.entries.iter()
    }

    pub fn paths(&self) -> impl Iterator<Item = &RelPath> {
        self.entries.keys()
    }

    /// The sub-tree below `prefix`, with paths made relative to it.
    pub fn subtree(&self, prefix: &RelPath) -> Tree {
        self.entries
            .iter()
            .filter_map(|(path, entry)| Some((path.strip_prefix(prefix)?, entry.clone())))
            .collect()
    }
}

impl FromIterator<(RelPath, FileEntry)> for Tree {
    fn from_iter<I: IntoIterator<Item = (RelPath, FileEntry)>>(iter: I) -> Self {
        Self {
            entries: iter.into_iter().collect(),
        }
    }
}

impl IntoIterator for Tree {
    type Item = (RelPath, FileEntry);
    type IntoIter = std::collections::btree_map::IntoIter<RelPath, FileEntry>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}
