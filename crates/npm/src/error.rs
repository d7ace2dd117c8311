use std::path::PathBuf;

/// Errors of the npm release source and the Backstage preset. Messages read after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "invalid npm source {spec:?}: expected `npm:PACKAGE`, e.g. `npm:@backstage/create-app`"
    )]
    Spec { spec: String },
    #[error("list the release tags of {location}: {detail}")]
    ReleaseTags { location: String, detail: String },
    #[error("fetch {url}")]
    Http {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("fetch {url}: the server answered {status}{}", auth_hint(*.status))]
    Status { url: String, status: u16 },
    #[error("read {what} from {url}: {message}")]
    Document {
        what: &'static str,
        url: String,
        message: String,
    },
    #[error("find {package}@{version} in the registry at {registry}")]
    NoSuchVersion {
        package: String,
        version: String,
        registry: String,
    },
    #[error("release {release} of Backstage does not list {package} in its manifest")]
    NotInManifest { release: String, package: String },
    #[error("check the integrity of {url}: expected {expected}, got {actual}")]
    Integrity {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("extract the package tarball: entry {entry:?} {reason}")]
    UnsafeEntry { entry: String, reason: &'static str },
    #[error("extract the package tarball: {message}")]
    Archive { message: String },
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("read {path}: {message}")]
    AppFile { path: PathBuf, message: String },
    #[error(transparent)]
    Tree(#[from] uplift_tree::Error),
}

fn auth_hint(status: u16) -> &'static str {
    match status {
        401 | 403 => " (check the token: UPLIFT_NPM_TOKEN or `//HOST/:_authToken=` in .npmrc)",
        _ => "",
    }
}

impl Error {
    /// Whether the cause is outside the input: network, registry, disk.
    pub fn is_environment(&self) -> bool {
        matches!(
            self,
            Error::Http { .. }
                | Error::Status { .. }
                | Error::Io { .. }
                | Error::ReleaseTags { .. }
        )
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}
