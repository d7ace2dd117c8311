//! Rolling deploys to one Docker host (`uses: deploy`, `target: docker`).
//!
//! [`Deployer::deploy`] runs [`DockerDeploySpec::replicas`] containers of an image on a
//! user-defined network under one network alias, replacing the old ones one at a time:
//!
//! 1. start a new container on the network *without* the alias, so nobody is sent to it yet;
//! 2. wait until Docker reports it healthy ([`HealthCheck`], run inside the container);
//! 3. give it the alias (disconnect, reconnect with the alias): it now takes traffic;
//! 4. drain one old container: disconnect it from the network (Docker's DNS stops returning
//!    it), wait [`DockerDeploySpec::drain_ms`], stop it (kept until the end for a revert);
//! 5. when all replicas are replaced, remove the stopped old containers.
//!
//! If a new container never gets healthy, the deploy is cancelled, or any container call
//! fails, the deploy is reverted: stopped old containers are started and rejoin the alias, new
//! ones are drained and removed. Only a release that served is recorded: its
//! [`ReleaseRecord`] is kept in a record container of its own ([`record`]), which is what
//! [`Deployer::rollback`] reads, whatever state the replicas are in. A [`TargetLock`] per
//! target keeps two deploys apart.
//!
//! Every container call goes through [`ContainerApi`]: [`DockerEngine`] on a Docker host, a
//! fake in tests ([`testing`], feature `testing`).

pub mod api;
mod docker_engine;
mod engine;
pub mod lock;
pub mod record;
pub mod spec;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::path::PathBuf;

pub use api::ContainerApi;
pub use docker_engine::DockerEngine;
pub use engine::{
    DeployReport, Deployer, RollbackPlan, RolloutProgress, ServingContainer, TargetState, Unhealthy,
};
pub use lock::TargetLock;
pub use record::ReleaseRecord;
pub use spec::{DockerDeploySpec, HealthCheck, OnFailure};

/// An error of a Docker deploy.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{action}")]
    Docker {
        action: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("deploy {target}: another deploy holds the lock {} ({holder})", path.display())]
    Locked {
        target: String,
        holder: String,
        path: PathBuf,
    },
    #[error("use the lock file {}", path.display())]
    LockIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid deploy settings: {0}")]
    InvalidSetting(String),
    #[error("image {0} is not on the Docker host (build or pull it first)")]
    ImageMissing(String),
    #[error("secret {0} has no value")]
    MissingSecret(String),
    #[error("new container {} never got healthy: {}; the old release keeps serving", .0.container, .0.reason)]
    Unhealthy(Box<Unhealthy>),
    #[error("deploy cancelled; {0}")]
    Cancelled(String),
    #[error("{0}")]
    NoRelease(String),
    #[error("read the release record of {container}")]
    Record {
        container: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("write a release record")]
    WriteRecord(#[source] serde_json::Error),
}
