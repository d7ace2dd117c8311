//! Release records, kept in the labels of the containers that serve a release: each container
//! carries its release id and the history (newest first, the last [`KEEP`] records), so a
//! rollback needs nothing but the Docker host.

use serde::{Deserialize, Serialize};

use super::spec::DockerDeploySpec;

/// Label: the target a container belongs to.
pub const TARGET_LABEL: &str = "dev.uplift.deploy.target";
/// Label: the release id a container runs.
pub const RELEASE_LABEL: &str = "dev.uplift.deploy.release";
/// Label: the release history as JSON (newest first).
pub const HISTORY_LABEL: &str = "dev.uplift.deploy.history";
/// Label on everything Uplift creates.
pub const MANAGED_LABEL: &str = "dev.uplift.managed";

/// How many records are kept.
pub const KEEP: usize = 10;

/// One deploy of a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    pub id: u64,
    pub target: String,
    /// The image as asked for.
    pub image: String,
    /// The image id (`sha256:...`) that ran: a rollback runs exactly this.
    pub image_id: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// The settings (secret values are not part of them).
    pub settings: DockerDeploySpec,
    pub previous: Option<u64>,
    /// Set when this release was a rollback to an earlier one.
    #[serde(default)]
    pub rollback_of: Option<u64>,
    /// Where the database dump taken before this release is, if any.
    #[serde(default)]
    pub backup: Option<String>,
}

/// Parses the history label.
pub fn parse_history(label: &str) -> Result<Vec<ReleaseRecord>, serde_json::Error> {
    serde_json::from_str(label)
}
