//! Apply, wait, and roll back by re-applying the previous release's manifests (never
//! `rollout undo`, which later applies would fight).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::Error;
use crate::api::ClusterApi;
use crate::release::{self, History, ReleaseRecord};
use crate::render::{Manifests, to_yaml};
use crate::rollout::{self, Diagnostics, WaitFailure};

/// How long and how often to poll, and how many log lines to show.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub timeout: Duration,
    pub poll: Duration,
    pub log_lines: u32,
}

impl Default for DeployOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(660),
            poll: Duration::from_secs(2),
            log_lines: 30,
        }
    }
}

/// A failed rollout: why, what the pods said, and what was done about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutFailure {
    pub deployment: String,
    pub reason: String,
    pub diagnostics: Diagnostics,
    /// The release re-applied, when there was one and its rollout completed.
    pub rolled_back_to: Option<String>,
    /// Why rolling back did not complete, if it was tried and failed.
    pub rollback_error: Option<String>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn deployment_names(values: &[Value]) -> Vec<(String, String)> {
    values
        .iter()
        .filter(|v| v.get("kind").and_then(Value::as_str) == Some("Deployment"))
        .filter_map(|v| {
            let name = v.pointer("/metadata/name")?.as_str()?.to_owned();
            let labels = v.pointer("/spec/selector/matchLabels")?.as_object()?;
            let selector = labels
                .iter()
                .filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)))
                .collect::<Vec<_>>()
                .join(",");
            Some((name, selector))
        })
        .collect()
}

async fn apply_all<A: ClusterApi>(api: &A, values: &[Value]) -> Result<(), Error> {
    for value in values {
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or("?");
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?");
        tracing::info!(kind, name, "server-side apply");
        api.apply(value).await.map_err(Error::Api)?;
    }
    Ok(())
}

/// Waits for every Deployment in `values`; the first failure with its selector.
async fn wait_all<A: ClusterApi>(
    api: &A,
    namespace: &str,
    values: &[Value],
    options: &DeployOptions,
) -> Result<Option<(String, String, WaitFailure)>, Error> {
    for (name, selector) in deployment_names(values) {
        if let Err(failure) = rollout::wait(api, namespace, &name, options.timeout, options.poll)
            .await
            .map_err(Error::Api)?
        {
            return Ok(Some((name, selector, failure)));
        }
    }
    Ok(None)
}

/// Deploys `manifests` of `app` running `image`: applies them, waits for each rollout, and
/// on failure prints diagnostics (as data) and re-applies the previous release. On success the
/// new release record (with `backup`, if given) becomes current.
pub async fn deploy<A: ClusterApi>(
    api: &A,
    app: &str,
    image: &str,
    manifests: &Manifests,
    backup: Option<String>,
    options: &DeployOptions,
) -> Result<ReleaseRecord, Error> {
    let namespace = manifests.namespace.as_str();
    let values = manifests.to_values()?;
    let mut history = release::load(api, namespace, app).await?;
    let previous = history.current().cloned();
    apply_all(api, &values).await?;
    if let Some((deployment, selector, failure)) =
        wait_all(api, namespace, &values, options).await?
    {
        let diagnostics = rollout::diagnose(api, namespace, &selector, options.log_lines)
            .await
            .map_err(Error::Api)?;
        let mut rolled_back_to = None;
        let mut rollback_error = None;
        if let Some(previous) = &previous {
            tracing::warn!(release = %previous.id, "rolling back by re-applying the previous release");
            apply_all(api, &previous.manifests).await?;
            match wait_all(api, namespace, &previous.manifests, options).await? {
                None => rolled_back_to = Some(previous.id.clone()),
                Some((name, _, failure)) => rollback_error = Some(format!("{name}: {failure}")),
            }
        }
        return Err(Error::Rollout(Box::new(RolloutFailure {
            deployment,
            reason: failure.to_string(),
            diagnostics,
            rolled_back_to,
            rollback_error,
        })));
    }
    let record = ReleaseRecord {
        id: history.next_id(),
        app: app.to_owned(),
        image: image.to_owned(),
        created: now(),
        manifests: values,
        previous: previous.map(|p| p.id),
        backup,
    };
    let n = record.id.parse::<u64>().unwrap_or(0);
    history.records.insert(n, record.clone());
    history.current = Some(record.id.clone());
    release::save(api, namespace, app, &history).await?;
    Ok(record)
}

/// Re-applies a stored release (`to`, or the one before the current) and makes it current.
pub async fn rollback<A: ClusterApi>(
    api: &A,
    namespace: &str,
    app: &str,
    to: Option<&str>,
    options: &DeployOptions,
) -> Result<ReleaseRecord, Error> {
    let mut history: History = release::load(api, namespace, app).await?;
    let target_id = match to {
        Some(id) => id.to_owned(),
        None => history
            .current()
            .and_then(|c| c.previous.clone())
            .ok_or_else(|| Error::NoRelease("no previous release to roll back to".to_owned()))?,
    };
    let target = history
        .get(&target_id)
        .cloned()
        .ok_or_else(|| Error::NoRelease(format!("no release record {target_id} for {app}")))?;
    apply_all(api, &target.manifests).await?;
    if let Some((deployment, selector, failure)) =
        wait_all(api, namespace, &target.manifests, options).await?
    {
        let diagnostics = rollout::diagnose(api, namespace, &selector, options.log_lines)
            .await
            .map_err(Error::Api)?;
        return Err(Error::Rollout(Box::new(RolloutFailure {
            deployment,
            reason: failure.to_string(),
            diagnostics,
            rolled_back_to: None,
            rollback_error: None,
        })));
    }
    history.current = Some(target.id.clone());
    release::save(api, namespace, app, &history).await?;
    Ok(target)
}

/// What `plan` shows: the manifests, and a unified diff against the current release record.
pub async fn plan<A: ClusterApi>(
    api: &A,
    app: &str,
    manifests: &Manifests,
) -> Result<String, Error> {
    let history = release::load(api, &manifests.namespace, app).await?;
    let new = to_yaml(&manifests.to_values()?)?;
    plan_text(history.current(), &new)
}

/// The plan text for `new` (multi-document YAML) against `previous`.
pub fn plan_text(previous: Option<&ReleaseRecord>, new: &str) -> Result<String, Error> {
    let mut out = String::new();
    match previous {
        None => {
            out.push_str("# no previous release: every object is new\n");
            out.push_str(new);
        }
        Some(previous) => {
            let old = to_yaml(&previous.manifests)?;
            if old == new {
                out.push_str(&format!("# no change against release {}\n", previous.id));
            } else {
                let diff = similar::TextDiff::from_lines(&old, new);
                out.push_str(
                    &diff
                        .unified_diff()
                        .context_radius(3)
                        .header(&format!("release {}", previous.id), "planned")
                        .to_string(),
                );
            }
        }
    }
    Ok(out)
}
