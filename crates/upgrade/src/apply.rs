//! Writing a prepared upgrade into the app, optionally as one commit on a new branch.

use std::path::Path;

use git2::StatusOptions;
use uplift_tree::{ApplyControl, Recovered, RecoveryOutcome, Transaction};

use crate::branch::{self, BranchNote, open_repo};
use crate::{Error, Prepared};

/// How to apply.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Create this branch from HEAD and commit the upgrade on it.
    pub branch: Option<String>,
    /// Apply even when the app has uncommitted changes.
    pub allow_dirty: bool,
    /// The branch exists and is checked out already (later steps of a stepwise upgrade):
    /// commit on it instead of creating it.
    pub continue_branch: bool,
}

/// What the apply did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOutcome {
    pub files_changed: usize,
    /// The commit made on the branch, when one was asked for.
    pub commit: Option<String>,
}

/// The app's uncommitted changes to tracked files (`None` when it is not in a git repository).
pub fn is_dirty(app: &Path) -> Result<Option<Vec<String>>, Error> {
    let Some((repo, prefix)) = open_repo(app)? else {
        return Ok(None);
    };
    let mut options = StatusOptions::new();
    options.include_untracked(false).include_ignored(false);
    if !prefix.as_os_str().is_empty() {
        options.pathspec(&prefix);
    }
    let statuses = repo
        .statuses(Some(&mut options))
        .map_err(|source| Error::Git {
            action: "read the status",
            path: app.to_path_buf(),
            source,
        })?;
    Ok(Some(
        statuses
            .iter()
            .filter_map(|s| s.path().ok().map(str::to_string))
            .collect(),
    ))
}

/// Writes the prepared changes, all or nothing.
pub fn apply(prepared: &Prepared, options: &ApplyOptions) -> Result<ApplyOutcome, Error> {
    apply_with(prepared, options, &ApplyControl::default())
}

/// [`apply`], stoppable through `control` (a signal handler's flag): a stop before the last
/// rename undoes everything and returns the tree crate's `Cancelled` error.
///
/// Everything that can be refused is refused before the first write: a dirty tree, a path
/// through a symlink or a link leaving the app, a bad or existing branch name, a locked index.
/// With a branch, the commit is made first and the branch and HEAD move only after every file
/// is in place; a failure after that puts the files, the branch and HEAD back.
pub fn apply_with(
    prepared: &Prepared,
    options: &ApplyOptions,
    control: &ApplyControl,
) -> Result<ApplyOutcome, Error> {
    let app = prepared.app.as_path();
    recover(app)?;
    let dirty = if options.allow_dirty {
        None
    } else {
        is_dirty(app)?
    };
    if let Some(dirty) = dirty.filter(|d| !d.is_empty()) {
        let mut files = dirty.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        if dirty.len() > 5 {
            files.push_str(&format!(" and {} more", dirty.len() - 5));
        }
        return Err(Error::Dirty { files });
    }
    let git = match &options.branch {
        Some(name) => {
            let (repo, prefix) = open_repo(app)?.ok_or_else(|| Error::NotARepository {
                path: app.to_path_buf(),
            })?;
            branch::check(&repo, app, name, options.continue_branch)?;
            let note =
                branch::make_commit(&repo, &prefix, name, !options.continue_branch, prepared)?;
            Some((repo, note))
        }
        None => None,
    };
    let note_text = match &git {
        Some((_, note)) => Some(serde_json::to_string(note).map_err(|error| Error::Git {
            action: "record the commit in the journal",
            path: app.to_path_buf(),
            source: git2::Error::from_str(&error.to_string()),
        })?),
        None => None,
    };
    let mut transaction = Transaction::begin(app, &prepared.changes, note_text, control)?;
    transaction.commit(control)?;
    let commit = match &git {
        Some((repo, note)) => {
            if let Err(error) = note.finish(repo, app) {
                if let Err(undo) = note.undo(repo, app) {
                    tracing::error!("{undo}");
                }
                if let Err(undo) = transaction.rollback() {
                    tracing::error!("{error}");
                    return Err(undo.into());
                }
                return Err(error);
            }
            Some(note.commit.clone())
        }
        None => None,
    };
    if let Err(error) = transaction.finish() {
        // Every file is in place: only the clean-up failed, and the next command redoes it.
        tracing::warn!("the apply is complete, but its clean-up failed: {error}");
    }
    Ok(ApplyOutcome {
        files_changed: prepared.changes.len(),
        commit,
    })
}

/// Finds an apply of this app that was interrupted (killed, or the machine stopped) and
/// brings the app to the whole apply (when every file was in place: the commit and branch
/// of `--branch` are finished too) or to none of it. Every upgrade command calls it first.
pub fn recover(app: &Path) -> Result<Option<Recovered>, Error> {
    let Some(recovered) = uplift_tree::recover(app)? else {
        return Ok(None);
    };
    if recovered.outcome == RecoveryOutcome::Finished
        && let Some(text) = &recovered.note
    {
        let note: BranchNote = serde_json::from_str(text).map_err(|error| Error::Git {
            action: "read the journal's commit",
            path: app.to_path_buf(),
            source: git2::Error::from_str(&error.to_string()),
        })?;
        let (repo, _) = open_repo(app)?.ok_or_else(|| Error::NotARepository {
            path: app.to_path_buf(),
        })?;
        note.finish(&repo, app)?;
    }
    let what = match recovered.outcome {
        RecoveryOutcome::Discarded => "discarded its staged files (nothing had changed)",
        RecoveryOutcome::RolledBack => "undid it: the app is as it was before",
        RecoveryOutcome::Finished => "finished it: the app is fully upgraded",
    };
    tracing::warn!(
        "found an interrupted apply in {} ({} files); {what}",
        app.display(),
        recovered.steps
    );
    Ok(Some(recovered))
}
