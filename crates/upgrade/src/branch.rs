//! The git side of `apply --branch`: checks before anything is written, the commit built from
//! the changes (not from the work tree), and moving the branch, HEAD and index to it.
//!
//! The order makes every interruption recoverable: the commit object is made first (an
//! unreferenced object is harmless), its id goes into the apply's journal as a [`BranchNote`],
//! the files are renamed, and only then do the branch, HEAD and the index move. Moving them is
//! idempotent ([`BranchNote::finish`]), so recovery after a crash past the renames finishes it;
//! before that point nothing of git was touched.

use std::path::{Path, PathBuf};

use git2::{BranchType, ErrorCode, FileMode as GitMode, Oid, Repository, RepositoryState};
use uplift_tree::{Change, FileMode};

use crate::{Error, Prepared};

/// What an apply on a branch does to git, kept in the journal.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct BranchNote {
    pub branch: String,
    /// The branch is created (else it exists and is HEAD already: a later stepwise step).
    pub create: bool,
    /// HEAD's commit before the apply, and what HEAD named then (`None`: detached).
    pub parent: String,
    pub head_before: Option<String>,
    pub commit: String,
    /// Repository-relative paths the commit writes (`true`) or deletes (`false`).
    pub paths: Vec<(String, bool)>,
}

fn git<'a>(action: &'static str, app: &'a Path) -> impl Fn(git2::Error) -> Error + 'a {
    move |source| Error::Git {
        action,
        path: app.to_path_buf(),
        source,
    }
}

/// Refuses what would fail later, before anything is written: a bad branch name, an existing
/// branch, a locked index, an operation in progress, no commit to branch from.
pub(crate) fn check(
    repo: &Repository,
    app: &Path,
    name: &str,
    continue_branch: bool,
) -> Result<(), Error> {
    if !git2::Branch::name_is_valid(name).unwrap_or(false) {
        return Err(Error::InvalidBranch {
            name: name.to_string(),
        });
    }
    if !continue_branch && repo.find_branch(name, BranchType::Local).is_ok() {
        return Err(Error::BranchExists {
            name: name.to_string(),
        });
    }
    let lock = repo.path().join("index.lock");
    if lock.exists() {
        return Err(Error::IndexLocked { path: lock });
    }
    if repo.state() != RepositoryState::Clean {
        return Err(Error::RepositoryBusy {
            state: format!("{:?}", repo.state()).to_lowercase(),
        });
    }
    match repo.head() {
        Ok(head) => {
            if continue_branch && head.shorthand().ok() != Some(name) {
                return Err(Error::Git {
                    action: "continue on the branch",
                    path: app.to_path_buf(),
                    source: git2::Error::from_str(&format!("HEAD is not on {name}")),
                });
            }
            Ok(())
        }
        Err(error) if error.code() == ErrorCode::UnbornBranch => Err(Error::NoCommit {
            path: app.to_path_buf(),
        }),
        Err(source) => Err(Error::Git {
            action: "read HEAD",
            path: app.to_path_buf(),
            source,
        }),
    }
}

/// Writes the upgrade's commit (HEAD's tree plus the changes) without moving any reference.
pub(crate) fn make_commit(
    repo: &Repository,
    prefix: &Path,
    name: &str,
    create: bool,
    prepared: &Prepared,
) -> Result<BranchNote, Error> {
    let app = prepared.app.as_path();
    let head_ref = repo.head().map_err(git("read HEAD", app))?;
    let head_before = head_ref
        .is_branch()
        .then(|| head_ref.name().ok().map(str::to_string))
        .flatten();
    let head = head_ref.peel_to_commit().map_err(git("read HEAD", app))?;
    let base_tree = head.tree().map_err(git("read HEAD's tree", app))?;
    let mut update = git2::build::TreeUpdateBuilder::new();
    let mut paths = Vec::new();
    for change in &prepared.changes {
        let path = repo_path(prefix, change.path().as_str());
        match change {
            Change::Write { entry, .. } => {
                let blob = repo
                    .blob(&entry.content)
                    .map_err(git("write a blob", app))?;
                let mode = match entry.mode {
                    FileMode::Regular => GitMode::Blob,
                    FileMode::Executable => GitMode::BlobExecutable,
                    FileMode::Symlink => GitMode::Link,
                };
                update.upsert(&path, blob, mode);
                paths.push((path, true));
            }
            Change::Delete { .. } => {
                update.remove(&path);
                paths.push((path, false));
            }
        }
    }
    let tree_id = update
        .create_updated(repo, &base_tree)
        .map_err(git("write the tree", app))?;
    let tree = repo.find_tree(tree_id).map_err(git("read the tree", app))?;
    let signature = repo
        .signature()
        .or_else(|_| git2::Signature::now("uplift", "uplift@localhost"))
        .map_err(git("make a signature", app))?;
    let commit = repo
        .commit(
            None,
            &signature,
            &signature,
            &commit_message(prepared),
            &tree,
            &[&head],
        )
        .map_err(git("commit", app))?;
    Ok(BranchNote {
        branch: name.to_string(),
        create,
        parent: head.id().to_string(),
        head_before,
        commit: commit.to_string(),
        paths,
    })
}

fn repo_path(prefix: &Path, path: &str) -> String {
    let prefix = prefix.to_string_lossy();
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        path.to_string()
    } else {
        format!("{prefix}/{path}")
    }
}

fn oid(text: &str, app: &Path) -> Result<Oid, Error> {
    Oid::from_str(text).map_err(git("read the journal's commit", app))
}

impl BranchNote {
    /// Points the branch at the commit, HEAD at the branch, and the index at the new files.
    /// Idempotent: recovery calls it again after a crash at any point of it.
    pub(crate) fn finish(&self, repo: &Repository, app: &Path) -> Result<(), Error> {
        let commit_id = oid(&self.commit, app)?;
        let parent = oid(&self.parent, app)?;
        let commit = repo
            .find_commit(commit_id)
            .map_err(git("read the commit", app))?;
        let refname = format!("refs/heads/{}", self.branch);
        match repo.find_reference(&refname) {
            Ok(mut reference) => match reference.target() {
                Some(target) if target == commit_id => {}
                Some(target) if target == parent => {
                    reference
                        .set_target(commit_id, "uplift: upgrade")
                        .map_err(git("move the branch", app))?;
                }
                _ => {
                    return Err(Error::Git {
                        action: "move the branch",
                        path: app.to_path_buf(),
                        source: git2::Error::from_str(&format!(
                            "{} moved while the upgrade was applied",
                            self.branch
                        )),
                    });
                }
            },
            Err(_) => {
                repo.branch(&self.branch, &commit, false)
                    .map_err(git("create the branch", app))?;
            }
        }
        repo.set_head(&refname)
            .map_err(git("switch to the branch", app))?;
        let mut index = repo.index().map_err(git("read the index", app))?;
        for (path, write) in &self.paths {
            let path = Path::new(path);
            if *write {
                index.add_path(path).map_err(git("stage a file", app))?;
            } else {
                index
                    .remove_path(path)
                    .map_err(git("stage a deletion", app))?;
            }
        }
        index.write().map_err(git("write the index", app))
    }

    /// Puts the branch and HEAD back as they were (the index is written last, so a failure
    /// left it untouched).
    pub(crate) fn undo(&self, repo: &Repository, app: &Path) -> Result<(), Error> {
        let commit_id = oid(&self.commit, app)?;
        let parent = oid(&self.parent, app)?;
        match &self.head_before {
            Some(name) => repo.set_head(name),
            None => repo.set_head_detached(parent),
        }
        .map_err(git("put HEAD back", app))?;
        let refname = format!("refs/heads/{}", self.branch);
        if let Ok(mut reference) = repo.find_reference(&refname)
            && reference.target() == Some(commit_id)
        {
            if self.create {
                reference.delete().map_err(git("delete the branch", app))?;
            } else {
                reference
                    .set_target(parent, "uplift: upgrade undone")
                    .map_err(git("put the branch back", app))?;
            }
        }
        Ok(())
    }
}

/// The repository holding `app`, and the app's folder relative to its work tree.
pub(crate) fn open_repo(app: &Path) -> Result<Option<(Repository, PathBuf)>, Error> {
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
