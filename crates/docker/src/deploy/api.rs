//! The container calls a rollout makes, behind one narrow trait: [`ContainerApi`]. The Docker
//! Engine implements it ([`super::DockerEngine`]); tests drive the rollout against a fake
//! (`uplift_docker::deploy::testing`, feature `testing`), as `uplift_kube::ClusterApi` does for
//! Kubernetes.

use std::collections::HashMap;
use std::future::Future;

use super::DeployError;
use super::spec::DockerDeploySpec;

/// A container of a target as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerInfo {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub labels: HashMap<String, String>,
    pub running: bool,
    /// The aliases of each network it is attached to.
    pub networks: HashMap<String, Vec<String>>,
    /// `KEY=value`.
    pub env: Vec<String>,
}

/// An image on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// `sha256:...`.
    pub id: String,
    /// Whether the image declares a `HEALTHCHECK`.
    pub has_healthcheck: bool,
}

/// What Docker says of a container's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthStatus {
    /// Still within its start period, or no probe ran yet.
    Starting,
    Healthy,
    Unhealthy,
    /// The container has no health check at all.
    NoCheck,
}

/// A container's state as a health poll sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub running: bool,
    pub exit_code: i64,
    pub status: HealthStatus,
    /// The last probe results (`exit <code>: <output>`), oldest first.
    pub probes: Vec<String>,
}

/// How a container joins a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// Under the service's alias: it takes traffic.
    Alias(String),
    /// At a fixed IPv4 address and without the alias (draining: old clients still reach it).
    Address(String),
}

/// A container to create for one replica of a release.
#[derive(Debug, Clone, Copy)]
pub struct Replica<'a> {
    pub name: &'a str,
    pub spec: &'a DockerDeploySpec,
    /// The image id to run.
    pub image_id: &'a str,
    /// `KEY=value`, secrets included.
    pub env: &'a [String],
    pub labels: &'a HashMap<String, String>,
}

/// The container calls of a rollout. Every error is a [`DeployError`] already naming what was
/// attempted; absent objects are not errors where the rollout does not care (stop, remove,
/// disconnect of what is gone).
pub trait ContainerApi: Send + Sync {
    /// The image `reference`, or [`DeployError::ImageMissing`].
    fn image(&self, reference: &str)
    -> impl Future<Output = Result<ImageInfo, DeployError>> + Send;
    /// Creates the user-defined network when missing.
    fn ensure_network(&self, network: &str)
    -> impl Future<Output = Result<(), DeployError>> + Send;
    /// The containers carrying `label=value`, running or not.
    fn containers(
        &self,
        label: &str,
        value: &str,
    ) -> impl Future<Output = Result<Vec<ContainerInfo>, DeployError>> + Send;
    /// Creates a replica on its network without the alias; its id.
    fn create(
        &self,
        replica: Replica<'_>,
    ) -> impl Future<Output = Result<String, DeployError>> + Send;
    /// Creates a container that is never started, only kept for its labels (a release record);
    /// it also keeps `image_id` on the host.
    fn create_record(
        &self,
        name: &str,
        image_id: &str,
        labels: &HashMap<String, String>,
    ) -> impl Future<Output = Result<(), DeployError>> + Send;
    fn start(&self, id: &str) -> impl Future<Output = Result<(), DeployError>> + Send;
    fn health(&self, id: &str) -> impl Future<Output = Result<Health, DeployError>> + Send;
    /// The last `lines` lines of a container's output (empty when they cannot be read).
    fn logs(&self, id: &str, lines: u32) -> impl Future<Output = String> + Send;
    /// The container's IPv4 address on `network`, if it has one.
    fn address(&self, id: &str, network: &str) -> impl Future<Output = Option<String>> + Send;
    fn connect(
        &self,
        id: &str,
        network: &str,
        endpoint: Endpoint,
    ) -> impl Future<Output = Result<(), DeployError>> + Send;
    /// Not being connected is not an error.
    fn disconnect(
        &self,
        id: &str,
        network: &str,
    ) -> impl Future<Output = Result<(), DeployError>> + Send;
    /// Not running, or gone, is not an error.
    fn stop(
        &self,
        id: &str,
        timeout_secs: u32,
    ) -> impl Future<Output = Result<(), DeployError>> + Send;
    /// Gone already is not an error.
    fn remove(&self, id: &str) -> impl Future<Output = Result<(), DeployError>> + Send;
}
