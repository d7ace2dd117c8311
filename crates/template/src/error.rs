use std::path::PathBuf;

/// Errors of release sources and rendering.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown source {spec:?}: expected `git:PATH_OR_URL` or `dir:PATH`")]
    UnknownSourceKind { spec: String },
    #[error("open git repository {location}")]
    OpenRepo {
        location: String,
        #[source]
        source: git2::Error,
    },
    #[error("read git repository {location}")]
    Git {
        location: String,
        #[source]
        source: git2::Error,
    },
    #[error("mirror {location} into {cache}: {detail}")]
    Mirror {
        location: String,
        cache: PathBuf,
        detail: String,
    },
    #[error("read release folder {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tree(#[from] uplift_tree::Error),
    #[error("invalid tag pattern {pattern:?}: it must contain `{{version}}` exactly once")]
    TagPattern { pattern: String },
    #[error("unknown release {wanted:?} in {source_name}{}", nearby_hint(.nearby))]
    UnknownRelease {
        wanted: String,
        source_name: String,
        nearby: Vec<String>,
        /// Whether `wanted` names a pre-release (listed only with `--pre` or on the `next` line).
        pre_release: bool,
    },
    #[error("release {wanted:?} of {source_name} is a pre-release, not a target on the main line")]
    HiddenPreRelease { wanted: String, source_name: String },
    #[error("{source_name} has no release on the {line} line")]
    NoReleases {
        source_name: String,
        line: crate::ReleaseLine,
    },
    #[error("release {release} has no template folder `{subdir}` (it has: {available})")]
    NoSuchTemplate {
        release: String,
        subdir: String,
        available: String,
    },
    #[error("invalid template lineage entry {entry:?}: expected SUBDIR or VERSION=SUBDIR")]
    Lineage { entry: String },
    #[error("{path}:{line}:{column}: {message}")]
    Render {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    RenderNoPosition { path: String, message: String },
    /// Several template files failed: each is listed, so one run shows every fix to make.
    #[error("{} template files could not be rendered:{}", errors.len(), list(errors))]
    RenderMany { errors: Vec<Error> },
    #[error("versions map {path}: {message}")]
    VersionsMap { path: String, message: String },
    /// A link the app would get pointing outside it: absolute, or climbing above with `..`.
    #[error("template symlink {path} points outside the app ({target})")]
    LinkOutside { path: String, target: String },
    #[error("{path} and {path}.hbs are both in the template")]
    Collision { path: String },
    /// An error of a source implemented in another crate (e.g. `uplift-npm`), shown as itself.
    #[error(transparent)]
    Source(ForeignError),
}

/// An error of another crate's [`ReleaseSource`](crate::ReleaseSource): displays as itself and
/// continues with its own cause (no level is repeated in a cause chain).
#[derive(Debug)]
pub struct ForeignError(pub Box<dyn std::error::Error + Send + Sync + 'static>);

impl std::fmt::Display for ForeignError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ForeignError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

fn nearby_hint(nearby: &[String]) -> String {
    if nearby.is_empty() {
        String::new()
    } else {
        format!(" (releases nearby: {})", nearby.join(", "))
    }
}

fn list(errors: &[Error]) -> String {
    errors.iter().map(|e| format!("\n  {e}")).collect()
}
