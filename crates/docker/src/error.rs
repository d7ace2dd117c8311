use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to the engine or a registry. Messages are lowercase
/// fragments that read after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No engine answered on the local socket (or `DOCKER_HOST`).
    #[error("connect to the Docker engine")]
    Connect(#[source] bollard::errors::Error),

    /// The engine answered a request with an error.
    #[error("{action}")]
    Engine {
        /// What was being done, e.g. `create container for alpine`.
        action: String,
        #[source]
        source: bollard::errors::Error,
    },

    /// A file of the build context could not be read.
    #[error("read {path} for the build context")]
    Context {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An ignore file (`.dockerignore`, `<Dockerfile>.dockerignore`) is refused, as the Docker
    /// CLI refuses it.
    #[error("read ignore file {path}")]
    IgnoreFile {
        path: PathBuf,
        #[source]
        source: crate::ignore::IgnoreError,
    },

    /// The Dockerfile is not where the request says.
    #[error("locate the Dockerfile {path}")]
    Dockerfile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The Dockerfile uses a BuildKit-only feature but BuildKit cannot be used.
    #[error("build {dockerfile}: line {line} uses {feature}, which needs BuildKit, but {reason}")]
    BuildKitRequired {
        dockerfile: String,
        line: usize,
        feature: String,
        reason: String,
    },

    /// The build itself failed (a step failed, a file was missing, ...).
    #[error("build image from {dockerfile}: {message}")]
    Build { dockerfile: String, message: String },

    /// An image reference could not be parsed.
    #[error("parse image reference {0:?}")]
    Reference(String),

    /// The registry refused the credentials (or had none and requires some).
    #[error("authenticate to registry {registry}: {message}")]
    RegistryAuth { registry: String, message: String },

    /// The registry did not answer, after retries.
    #[error("reach registry {registry} after {attempts} attempts: {message}")]
    RegistryUnavailable {
        registry: String,
        attempts: u32,
        message: String,
    },

    /// A push failed for another reason.
    #[error("push {reference}: {message}")]
    Push { reference: String, message: String },

    /// The Docker config file or a credential helper could not give credentials.
    #[error("read credentials for {registry} from {source_name}: {message}")]
    Credentials {
        registry: String,
        source_name: String,
        message: String,
    },

    /// The container could not be run (not the command's own failure: that is an outcome).
    #[error("run container from {image}: {message}")]
    Run { image: String, message: String },
}

impl Error {
    pub(crate) fn engine(action: impl Into<String>, source: bollard::errors::Error) -> Self {
        Error::Engine {
            action: action.into(),
            source,
        }
    }
}
