use std::path::{Path, PathBuf};

use bollard::Docker;

use crate::error::{Error, Result};

/// A connection to a Docker engine, with the API version negotiated and the engine's abilities.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    api_version: String,
    server_version: String,
    buildkit: bool,
    /// The socket bollard talks to, for the one request made beside it (a push's stream).
    socket: PathBuf,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("api_version", &self.api_version)
            .field("server_version", &self.server_version)
            .field("buildkit", &self.buildkit)
            .finish()
    }
}

/// The first API version where the engine builds with BuildKit (`version=2` on `/build`) outside
/// experimental mode (Docker 18.09).
const BUILDKIT_MIN_API: (u32, u32) = (1, 39);

impl Engine {
    /// Connects with the local defaults (`DOCKER_HOST` or the local socket), negotiates the API
    /// version down to the engine's, and asks the engine what it is.
    pub async fn connect() -> Result<Self> {
        let docker = Docker::connect_with_local_defaults().map_err(Error::Connect)?;
        let docker = docker.negotiate_version().await.map_err(Error::Connect)?;
        let version = docker.version().await.map_err(Error::Connect)?;
        let api_version = version.api_version.unwrap_or_default();
        let server_version = version.version.unwrap_or_default();
        let linux = version.os.as_deref().is_none_or(|os| os == "linux");
        let buildkit = linux && parse_api(&api_version).is_some_and(|v| v >= BUILDKIT_MIN_API);
        tracing::debug!(%api_version, %server_version, buildkit, "connected to the Docker engine");
        Ok(Engine {
            docker,
            api_version,
            server_version,
            buildkit,
            socket: local_socket(std::env::var("DOCKER_HOST").ok().as_deref()),
        })
    }

    /// The underlying bollard client.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The negotiated API version, e.g. `1.41`.
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// The engine's version, e.g. `20.10.24+dfsg1`.
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// The engine's Unix socket.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// Whether the engine builds with BuildKit through the API.
    pub fn supports_buildkit(&self) -> bool {
        self.buildkit
    }
}

/// The socket `Docker::connect_with_local_defaults` uses: `DOCKER_HOST` when it is a
/// `unix://` address, else the default socket.
fn local_socket(docker_host: Option<&str>) -> PathBuf {
    let address = docker_host
        .filter(|h| h.starts_with("unix://"))
        .unwrap_or("unix:///var/run/docker.sock");
    PathBuf::from(address.trim_start_matches("unix://"))
}

fn parse_api(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::{local_socket, parse_api};
    use std::path::Path;

    #[test]
    fn the_socket_is_bollards() {
        assert_eq!(local_socket(None), Path::new("/var/run/docker.sock"));
        assert_eq!(
            local_socket(Some("unix:///run/user/1000/docker.sock")),
            Path::new("/run/user/1000/docker.sock")
        );
        // bollard's local defaults ignore a TCP host too.
        assert_eq!(
            local_socket(Some("tcp://127.0.0.1:2375")),
            Path::new("/var/run/docker.sock")
        );
    }

    #[test]
    fn api_versions_compare_numerically() {
        assert_eq!(parse_api("1.41"), Some((1, 41)));
        assert!(parse_api("1.9").is_some_and(|v| v < (1, 39)));
        assert!(parse_api("1.100").is_some_and(|v| v > (1, 39)));
        assert_eq!(parse_api("garbage"), None);
    }
}
