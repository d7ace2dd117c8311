//! Apply, wait, and roll back by re-applying the previous release's manifests (never
//! `rollout undo`, which later applies would fight).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::Error;
use crate::api::ClusterApi;
use crate::release::{self, History, ReleaseRecord};
use crate::render::{Manifests, to_yaml};
use crate::rollout::{self, Diagnostics, ProgressFn, WaitFailure};

/// How long and how often to poll, how many log lines to show, and who hears of the rollouts.
#[derive(Clone)]
pub struct DeployOptions {
    pub timeout: Duration,
    pub poll: Duration,
    pub log_lines: u32,
    /// Receives every rollout poll (new release and rollback alike).
    pub progress: Option<ProgressFn>,
}

impl Default for DeployOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(660),
            poll: Duration::from_secs(2),
            log_lines: 30,
            progress: None,
        }
    }
}

impl std::fmt::Debug for DeployOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployOptions")
            .field("timeout", &self.timeout)
            .field("poll", &self.poll)
            .field("log_lines", &self.log_lines)
            .field("progress", &self.progress.is_some())
            .finish()
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

/// `(kind, name)` of every object in `values`.
fn object_keys(values: &[Value]) -> Vec<(String, String)> {
    values
        .iter()
        .filter_map(|v| {
            let kind = v.get("kind")?.as_str()?.to_owned();
            let name = v.pointer("/metadata/name")?.as_str()?.to_owned();
            Some((kind, name))
        })
        .collect()
}

/// Deletes the objects of `newer` that `older` does not have (a split backend's Deployment and
/// Service a newer release added), once `older` serves again: re-applying alone would leave
/// them running beside it. Returns `Kind/name` of each deleted object.
async fn prune_added<A: ClusterApi>(
    api: &A,
    namespace: &str,
    newer: &[Value],
    older: &[Value],
) -> Result<Vec<String>, Error> {
    let keep = object_keys(older);
    let mut deleted = Vec::new();
    for (kind, name) in object_keys(newer) {
        if keep.contains(&(kind.clone(), name.clone())) {
            continue;
        }
        tracing::info!(kind, name, "delete an object the rolled-back release added");
        api.delete(&kind, namespace, &name)
            .await
            .map_err(Error::Api)?;
        deleted.push(format!("{kind}/{name}"));
    }
    Ok(deleted)
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
        if let Err(failure) = rollout::wait_reporting(
            api,
            namespace,
            &name,
            options.timeout,
            options.poll,
            options.progress.as_ref(),
        )
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
                None => {
                    prune_added(api, namespace, &values, &previous.manifests).await?;
                    rolled_back_to = Some(previous.id.clone());
                }
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

/// A rollback decided but not done yet: the record to return to, and the current one (whose
/// backup a rollback with data restores).
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackPlan {
    pub app: String,
    pub namespace: String,
    pub current: Option<ReleaseRecord>,
    pub target: ReleaseRecord,
    history: History,
}

/// Reads the records and picks the release to return to: `to`, or the one before the current.
pub async fn plan_rollback<A: ClusterApi>(
    api: &A,
    namespace: &str,
    app: &str,
    to: Option<&str>,
) -> Result<RollbackPlan, Error> {
    let history: History = release::load(api, namespace, app).await?;
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
    Ok(RollbackPlan {
        app: app.to_owned(),
        namespace: namespace.to_owned(),
        current: history.current().cloned(),
        target,
        history,
    })
}

/// Re-applies the plan's target release, waits for its rollouts, and makes it current.
pub async fn apply_rollback<A: ClusterApi>(
    api: &A,
    plan: RollbackPlan,
    options: &DeployOptions,
) -> Result<ReleaseRecord, Error> {
    let RollbackPlan {
        app,
        namespace,
        current,
        target,
        mut history,
    } = plan;
    reapply(api, &namespace, &target, options).await?;
    if let Some(current) = &current {
        prune_added(api, &namespace, &current.manifests, &target.manifests).await?;
    }
    history.current = Some(target.id.clone());
    release::save(api, &namespace, &app, &history).await?;
    Ok(target)
}

/// Applies a recorded release's manifests and waits for its rollouts; the records are not
/// changed.
pub async fn reapply<A: ClusterApi>(
    api: &A,
    namespace: &str,
    record: &ReleaseRecord,
    options: &DeployOptions,
) -> Result<(), Error> {
    apply_all(api, &record.manifests).await?;
    if let Some((deployment, selector, failure)) =
        wait_all(api, namespace, &record.manifests, options).await?
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
    Ok(())
}

/// Re-applies a stored release (`to`, or the one before the current) and makes it current.
pub async fn rollback<A: ClusterApi>(
    api: &A,
    namespace: &str,
    app: &str,
    to: Option<&str>,
    options: &DeployOptions,
) -> Result<ReleaseRecord, Error> {
    let plan = plan_rollback(api, namespace, app, to).await?;
    apply_rollback(api, plan, options).await
}

/// Stops a release: every Deployment of `manifests` is re-applied whole with 0 replicas
/// (a partial apply would drop the fields it leaves out), then waits until none of their pods
/// is left, terminating ones included, so nothing of that release still runs. Bounded by
/// `options.timeout`.
pub async fn stop<A: ClusterApi>(
    api: &A,
    namespace: &str,
    manifests: &[Value],
    options: &DeployOptions,
) -> Result<(), Error> {
    let deployments: Vec<Value> = manifests
        .iter()
        .filter(|v| v.get("kind").and_then(Value::as_str) == Some("Deployment"))
        .map(|v| {
            let mut scaled = v.clone();
            if let Some(spec) = scaled.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("replicas".to_owned(), Value::from(0));
            }
            scaled
        })
        .collect();
    apply_all(api, &deployments).await?;
    let started = tokio::time::Instant::now();
    let max_polls = options.timeout.as_millis() / options.poll.as_millis().max(1) + 1;
    for (name, selector) in deployment_names(&deployments) {
        let mut left = usize::MAX;
        for _ in 0..max_polls {
            left = api
                .pods(namespace, &selector)
                .await
                .map_err(Error::Api)?
                .len();
            if left == 0 || started.elapsed() >= options.timeout {
                break;
            }
            tracing::info!(deployment = %name, pods = left, "waiting for the pods to stop");
            tokio::time::sleep(options.poll).await;
        }
        if left != 0 {
            return Err(Error::NotStopped {
                deployment: name,
                pods: left,
            });
        }
    }
    Ok(())
}

/// What a plan knows of the release before the one planned.
#[derive(Debug, Clone, PartialEq)]
pub enum PreviousRelease {
    /// The release records could not be read (the cluster did not answer, or a record is
    /// unreadable): why. The plan then shows the manifests without a diff.
    Unknown(String),
    /// No release is recorded: every object is new.
    Nothing,
    /// The current release.
    Current(Box<ReleaseRecord>),
}

/// The plan of a Kubernetes deploy: the manifests, and how they differ from the current
/// release record.
#[derive(Debug, Clone, PartialEq)]
pub struct KubePlan {
    /// The objects to apply, as multi-document YAML.
    pub manifests: String,
    pub previous: PreviousRelease,
    /// A unified diff against the current release's manifests (`None` when there is no
    /// record to compare with, or nothing changed).
    pub diff: Option<String>,
}

impl KubePlan {
    /// One line on what the plan is compared with.
    pub fn comparison(&self) -> String {
        match (&self.previous, &self.diff) {
            (PreviousRelease::Unknown(reason), _) => format!(
                "previous release unknown, no diff shown: the release records could not be read ({reason})"
            ),
            (PreviousRelease::Nothing, _) => {
                "no release recorded yet: every object is new".to_owned()
            }
            (PreviousRelease::Current(record), None) => {
                format!("no change against release {} (current)", record.id)
            }
            (PreviousRelease::Current(record), Some(_)) => {
                format!("diff against release {} (current):", record.id)
            }
        }
    }
}

/// What `plan` shows: the manifests, and a unified diff against the current release record.
/// It only reads; a cluster that cannot be asked makes [`PreviousRelease::Unknown`], never an
/// error (errors are only for manifests that cannot be serialized).
pub async fn plan<A: ClusterApi>(
    api: &A,
    app: &str,
    manifests: &Manifests,
) -> Result<KubePlan, Error> {
    let new = to_yaml(&manifests.to_values()?)?;
    let previous = match release::load(api, &manifests.namespace, app).await {
        Ok(history) => match history.current() {
            Some(record) => PreviousRelease::Current(Box::new(record.clone())),
            None => PreviousRelease::Nothing,
        },
        Err(error) => PreviousRelease::Unknown(short_reason(&error)),
    };
    let diff = match &previous {
        PreviousRelease::Current(record) => diff_text(record, &new)?,
        _ => None,
    };
    Ok(KubePlan {
        manifests: new,
        previous,
        diff,
    })
}

/// The last line of what kubectl said, or of the error's deepest cause: the line saying
/// what went wrong.
fn short_reason(error: &Error) -> String {
    let mut text = error.to_string();
    if let Error::Api(crate::ApiError::Failed { stderr, .. }) = error {
        text = stderr.clone();
    } else {
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text = cause.to_string();
            source = cause.source();
        }
    }
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no answer")
        .trim()
        .to_owned()
}

/// The unified diff of `new` (multi-document YAML) against `previous`, `None` when equal.
pub fn diff_text(previous: &ReleaseRecord, new: &str) -> Result<Option<String>, Error> {
    let old = to_yaml(&previous.manifests)?;
    if old == new {
        return Ok(None);
    }
    let diff = similar::TextDiff::from_lines(&old, new);
    Ok(Some(
        diff.unified_diff()
            .context_radius(3)
            .header(&format!("release {}", previous.id), "planned")
            .to_string(),
    ))
}
