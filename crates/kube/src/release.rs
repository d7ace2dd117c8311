//! Release records: the manifests of each release, kept in the cluster in a ConfigMap
//! `<app>-uplift-releases` (key `current` names the live release, `release-<id>` holds each
//! record as JSON; the last [`KEEP`] are kept). Rolling back re-applies a record's manifests.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
use crate::api::ClusterApi;
use crate::render::{MANAGED_BY_LABEL, NAME_LABEL};

/// How many release records are kept.
pub const KEEP: usize = 10;

/// One release: what was applied, and what came before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// A sequence number as text: `1`, `2`, ...
    pub id: String,
    pub app: String,
    pub image: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// The objects applied, in order.
    pub manifests: Vec<Value>,
    pub previous: Option<String>,
    /// Where the database dump taken before this release is, if any.
    #[serde(default)]
    pub backup: Option<String>,
}

/// The name of the ConfigMap holding an app's records.
pub fn store_name(app: &str) -> String {
    format!("{app}-uplift-releases")
}

/// An app's release history as stored in the cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub current: Option<String>,
    pub records: BTreeMap<u64, ReleaseRecord>,
}

impl History {
    pub fn current(&self) -> Option<&ReleaseRecord> {
        let id = self.current.as_ref()?;
        self.get(id)
    }

    pub fn get(&self, id: &str) -> Option<&ReleaseRecord> {
        id.parse::<u64>().ok().and_then(|n| self.records.get(&n))
    }

    /// The id the next release gets.
    pub fn next_id(&self) -> String {
        (self.records.keys().next_back().copied().unwrap_or(0) + 1).to_string()
    }
}

/// Reads the history of `app` from the cluster.
pub async fn load<A: ClusterApi>(api: &A, namespace: &str, app: &str) -> Result<History, Error> {
    let Some(map) = api
        .config_map(namespace, &store_name(app))
        .await
        .map_err(Error::Api)?
    else {
        return Ok(History::default());
    };
    let mut history = History::default();
    for (key, value) in map.data.unwrap_or_default() {
        if key == "current" {
            history.current = Some(value);
        } else if let Some(id) = key.strip_prefix("release-") {
            let record: ReleaseRecord =
                serde_json::from_str(&value).map_err(|source| Error::BadRecord {
                    key: key.clone(),
                    source,
                })?;
            if let Ok(n) = id.parse::<u64>() {
                history.records.insert(n, record);
            }
        }
    }
    Ok(history)
}

/// Writes the history (the last [`KEEP`] records) with `current` pointing at `current`.
pub async fn save<A: ClusterApi>(
    api: &A,
    namespace: &str,
    app: &str,
    history: &History,
) -> Result<(), Error> {
    let mut data = BTreeMap::new();
    if let Some(current) = &history.current {
        data.insert("current".to_owned(), current.clone());
    }
    let skip = history.records.len().saturating_sub(KEEP);
    for (id, record) in history.records.iter().skip(skip) {
        data.insert(
            format!("release-{id}"),
            serde_json::to_string(record).map_err(Error::Serialize)?,
        );
    }
    let map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(store_name(app)),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([
                (NAME_LABEL.to_owned(), app.to_owned()),
                (MANAGED_BY_LABEL.to_owned(), "uplift".to_owned()),
            ])),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    };
    let value = serde_json::to_value(&map).map_err(Error::Serialize)?;
    api.apply(&value).await.map_err(Error::Api)
}
