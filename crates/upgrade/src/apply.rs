//! Writing a prepared upgrade into the app, optionally as one commit on a new branch.

use std::path::{Path, PathBuf};

use git2::{BranchType, Repository, Signature, StatusOptions};
use uplift_tree::Change;

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
    let app = prepared.app.as_path();
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
    let repo = match &options.branch {
        Some(name) => {
            let (repo, prefix) = open_repo(app)?.ok_or_else(|| Error::NotARepository {
                path: app.to_path_buf(),
            })?;
            if !options.continue_branch && repo.find_branch(name, BranchType::Local).is_ok() {
                return Err(Error::BranchExists { name: name.clone() });
            }
            Some((repo, prefix, name))
        }
        None => None,
    };
    uplift_tree::apply(app, &prepared.changes)?;
    let commit = match repo {
        Some((repo, prefix, name)) => Some(commit_on_branch(
            &repo,
            &prefix,
            name,
            !options.continue_branch,
            prepared,
        )?),
        None => None,
    };
    Ok(ApplyOutcome {
        files_changed: prepared.changes.len(),
        commit,
    })
}

/// The repository holding `app`, and the app's folder relative to its work tree.
fn open_repo(app: &Path) -> Result<Option<(Repository, PathBuf)>, Error> {
    let repo = match Repository::discover(app) {
        Ok(repo) => repo,
        Err(error) if error.code() == git2::ErrorCode::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Git {
                action: "open the repository",
                path: app.to_path_buf(),
                source,
            });
        }
    };
    let Some(workdir) = repo.workdir() else {
        return Ok(None);
    };
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let prefix = canonical(app)
        .strip_prefix(canonical(workdir))
        .map(Path::to_path_buf)
        .unwrap_or_default();
    Ok(Some((repo, prefix)))
}

fn commit_on_branch(
    repo: &Repository,
    prefix: &Path,
    name: &str,
    create: bool,
    prepared: &Prepared,
) -> Result<String, Error> {
    let app = prepared.app.clone();
    let git = |action: &'static str| {
        let app = app.clone();
        move |source| Error::Git {
            action,
            path: app,
            source,
        }
    };
    let head = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .map_err(git("read HEAD"))?;
    if create {
        repo.branch(name, &head, false)
            .map_err(git("create the branch"))?;
        // HEAD moves to the new branch; it points at the same commit, so the work tree is untouched.
        repo.set_head(&format!("refs/heads/{name}"))
            .map_err(git("switch to the branch"))?;
    }
    let mut index = repo.index().map_err(git("read the index"))?;
    for change in &prepared.changes {
        let path = prefix.join(change.path().to_native(Path::new("")));
        match change {
            Change::Write { .. } => index.add_path(&path).map_err(git("stage a file"))?,
            Change::Delete { .. } => index.remove_path(&path).map_err(git("stage a deletion"))?,
        }
    }
    index.write().map_err(git("write the index"))?;
    let tree_id = index.write_tree().map_err(git("write the tree"))?;
    let tree = repo.find_tree(tree_id).map_err(git("read the tree"))?;
    let signature = repo
        .signature()
        .or_else(|_| Signature::now("uplift", "uplift@localhost"))
        .map_err(git("make a signature"))?;
    let message = commit_message(prepared);
    let oid = repo
        .commit(
            Some("HEAD"),
            &signature,
            &signature,
            &message,
            &tree,
            &[&head],
        )
        .map_err(git("commit"))?;
    Ok(oid.to_string())
}

fn commit_message(prepared: &Prepared) -> String {
    let plan = &prepared.plan;
    let mut message = format!(
        "Upgrade from {} to {}\n\nUpstream: {}\n",
        plan.from, plan.to, plan.source
    );
    let summary = &plan.summary;
    message.push_str(&format!(
        "Files: {} ({} merged, {} conflicting)\n",
        summary.files, summary.merge, summary.conflict
    ));
    for file in plan
        .files
        .iter()
        .filter(|f| f.action == uplift_merge::Action::Conflict)
    {
        message.push_str(&format!("Conflict: {}\n", file.path));
    }
    message
}
