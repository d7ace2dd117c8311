use std::path::PathBuf;

/// Errors of the upgrade use case.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Template(#[from] uplift_template::Error),
    #[error(transparent)]
    Tree(#[from] uplift_tree::Error),
    #[error("read the app's release from {path}: {message}")]
    Marker { path: PathBuf, message: String },
    #[error("the app's release is unknown: {path} does not exist; pass --from VERSION")]
    NoMarker { path: PathBuf },
    #[error("{path}:{line}:{column}: {message}")]
    MarkerSyntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("the app folder {path} does not exist")]
    NoApp { path: PathBuf },
    #[error("the target release {to} is older than the app's release {from}")]
    Downgrade { from: String, to: String },
    #[error(
        "the app has uncommitted changes ({files}); commit or stash them, or pass --allow-dirty"
    )]
    Dirty { files: String },
    #[error("{action} in the git repository of {path}")]
    Git {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("--branch needs the app to be in a git repository: {path} is not")]
    NotARepository { path: PathBuf },
    #[error("branch {name} already exists")]
    BranchExists { name: String },
    #[error("use {name:?} as a branch name: git does not allow it")]
    InvalidBranch { name: String },
    #[error("write the git index: {path} exists (another git process is running, or one crashed)")]
    IndexLocked { path: PathBuf },
    #[error("commit on a branch: the repository is in the middle of a {state}")]
    RepositoryBusy { state: String },
    #[error("--branch needs a commit to branch from: the repository of {path} has none yet")]
    NoCommit { path: PathBuf },
    #[error(transparent)]
    Npm(#[from] uplift_npm::Error),
    #[error("unknown preset {name:?} (known: {known})")]
    UnknownPreset { name: String, known: String },
}
