//! Release records, kept on the Docker host itself so that a rollback needs nothing else: one
//! *record container* per release (`<target>-release-<id>`), created from the release's image
//! and never started, whose labels hold the [`ReleaseRecord`]. A record is written only once
//! its release served (every replica healthy under the alias), so a roll that was killed
//! half-way is never a release; and it does not depend on the replicas, so the history
//! survives them being stopped, removed or half-rolled. A record container also keeps its
//! release's image on the host (`docker image prune` leaves images that containers use), which
//! is what a rollback runs. The last [`KEEP`] records are kept.
//!
//! Replicas carry their release id in [`RELEASE_LABEL`]. Releases deployed before record
//! containers existed carried the history in [`HISTORY_LABEL`] of each replica: it is still
//! read when a target has no record container yet.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::spec::DockerDeploySpec;

/// Label: the target a container belongs to (replicas and record containers).
pub const TARGET_LABEL: &str = "dev.uplift.deploy.target";
/// Label: the release id a replica runs, or a record container records.
pub const RELEASE_LABEL: &str = "dev.uplift.deploy.release";
/// Label of a record container: the [`ReleaseRecord`] as JSON.
pub const RECORD_LABEL: &str = "dev.uplift.deploy.record";
/// Label of replicas deployed before record containers existed: the history as JSON (newest
/// first). Read, never written.
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

/// Parses the history label of an older replica.
pub fn parse_history(label: &str) -> Result<Vec<ReleaseRecord>, serde_json::Error> {
    serde_json::from_str(label)
}

/// The name of the record container of release `id` of `target`.
pub fn record_name(target: &str, id: u64) -> String {
    format!("{target}-release-{id}")
}

/// The labels of the record container of `record`.
pub fn record_labels(record: &ReleaseRecord) -> Result<HashMap<String, String>, serde_json::Error> {
    Ok(HashMap::from([
        (TARGET_LABEL.to_owned(), record.target.clone()),
        (RELEASE_LABEL.to_owned(), record.id.to_string()),
        (RECORD_LABEL.to_owned(), serde_json::to_string(record)?),
        (MANAGED_LABEL.to_owned(), "true".to_owned()),
    ]))
}

/// The labels of a replica of release `id` of `target`.
pub fn replica_labels(target: &str, id: u64) -> HashMap<String, String> {
    HashMap::from([
        (TARGET_LABEL.to_owned(), target.to_owned()),
        (RELEASE_LABEL.to_owned(), id.to_string()),
        (MANAGED_LABEL.to_owned(), "true".to_owned()),
    ])
}
