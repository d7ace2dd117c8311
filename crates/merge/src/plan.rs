//! What happens to each file: the data behind every plan format.

use serde::Serialize;
use uplift_tree::RelPath;

/// The action taken for one path. Paths that upstream did not change are not listed: the app's
/// version is kept as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Upstream added the file; the app had none. Takes upstream's.
    Add,
    /// The app's file was as the old template had it; takes upstream's new version.
    Update,
    /// The app's file was as the old template had it; upstream deleted it. Deletes it.
    Delete,
    /// Upstream renamed (and maybe changed) a file the app had not changed. Moves it.
    Rename,
    /// Both sides changed the file; the changes merged without conflict.
    Merge,
    /// A person must decide; `reason` says why.
    Conflict,
    /// A lockfile: never merged; the package manager must regenerate it.
    Regenerate,
    /// The app already has upstream's new version.
    UpToDate,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Rename => "rename",
            Action::Merge => "merge",
            Action::Conflict => "conflict",
            Action::Regenerate => "regenerate",
            Action::UpToDate => "up-to-date",
        }
    }

    /// Whether the app's tree changes for this action.
    pub fn writes(self) -> bool {
        matches!(
            self,
            Action::Add | Action::Update | Action::Delete | Action::Rename | Action::Merge
        )
    }
}

/// The decision for one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilePlan {
    pub path: RelPath,
    pub action: Action,
    /// Conflicting regions left in the file (or 1 for a whole-file conflict).
    pub conflicts: usize,
    /// The path upstream renamed this file from.
    pub renamed_from: Option<RelPath>,
    /// Why a person must look, or what a structured merge decided.
    pub reason: Option<String>,
    /// Upstream's version written beside the app's (binary conflicts).
    pub upstream_copy: Option<RelPath>,
    /// The file's mode changes (e.g. `regular -> executable`).
    pub mode_change: Option<String>,
}

impl FilePlan {
    pub fn new(path: RelPath, action: Action) -> Self {
        Self {
            path,
            action,
            conflicts: 0,
            renamed_from: None,
            reason: None,
            upstream_copy: None,
            mode_change: None,
        }
    }

    pub fn conflict(path: RelPath, conflicts: usize, reason: impl Into<String>) -> Self {
        Self {
            conflicts,
            reason: Some(reason.into()),
            ..Self::new(path, Action::Conflict)
        }
    }

    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

/// Counts per action, and the total of conflicting regions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub files: usize,
    pub add: usize,
    pub update: usize,
    pub delete: usize,
    pub rename: usize,
    pub merge: usize,
    pub conflict: usize,
    pub regenerate: usize,
    pub up_to_date: usize,
    /// Conflicting regions over all files.
    pub conflicts: usize,
}

impl Summary {
    pub fn of(files: &[FilePlan]) -> Self {
        let mut summary = Summary {
            files: files.len(),
            ..Summary::default()
        };
        for file in files {
            summary.conflicts += file.conflicts;
            *match file.action {
                Action::Add => &mut summary.add,
                Action::Update => &mut summary.update,
                Action::Delete => &mut summary.delete,
                Action::Rename => &mut summary.rename,
                Action::Merge => &mut summary.merge,
                Action::Conflict => &mut summary.conflict,
                Action::Regenerate => &mut summary.regenerate,
                Action::UpToDate => &mut summary.up_to_date,
            } += 1;
        }
        summary
    }
}
