//! Rollout status the way `kubectl rollout status` computes it, and the diagnostics printed
//! when a rollout fails.

use std::fmt;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;

use crate::api::{ApiError, ClusterApi};

/// Where a Deployment's rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutStatus {
    Done,
    Waiting(String),
    Failed(String),
}

/// The status of `deployment`, as kubectl's `DeploymentStatusViewer` computes it: the spec
/// generation observed, no `ProgressDeadlineExceeded`, all replicas updated, no old replica
/// left, all updated replicas available.
pub fn status(deployment: &Deployment) -> RolloutStatus {
    let name = deployment.metadata.name.as_deref().unwrap_or("?");
    let generation = deployment.metadata.generation.unwrap_or(0);
    let Some(status) = &deployment.status else {
        return RolloutStatus::Waiting(
            "waiting for deployment spec update to be observed".to_owned(),
        );
    };
    if generation > status.observed_generation.unwrap_or(0) {
        return RolloutStatus::Waiting(
            "waiting for deployment spec update to be observed".to_owned(),
        );
    }
    let progressing = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Progressing");
    if let Some(condition) = progressing
        && condition.reason.as_deref() == Some("ProgressDeadlineExceeded")
    {
        return RolloutStatus::Failed(format!(
            "deployment {name:?} exceeded its progress deadline"
        ));
    }
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < wanted {
        return RolloutStatus::Waiting(format!(
            "{updated} out of {wanted} new replicas of {name:?} have been updated"
        ));
    }
    if replicas > updated {
        return RolloutStatus::Waiting(format!(
            "{} old replicas of {name:?} are pending termination",
            replicas - updated
        ));
    }
    if available < updated {
        return RolloutStatus::Waiting(format!(
            "{available} of {updated} updated replicas of {name:?} are available"
        ));
    }
    RolloutStatus::Done
}

/// Where a Deployment's rollout stands, reported at every poll: `ready` is the number of new
/// replicas that are updated and available (never more than `wanted`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutProgress {
    pub deployment: String,
    pub ready: u64,
    pub wanted: u64,
    /// kubectl's words for the state (`2 of 3 updated replicas are available`, `done`).
    pub message: String,
    /// The last report of this wait (done, failed, missing or timed out).
    pub done: bool,
}

/// Receives [`RolloutProgress`] reports (a progress bar, a log line).
pub type ProgressFn = std::sync::Arc<dyn Fn(RolloutProgress) + Send + Sync>;

fn ready_replicas(deployment: &Deployment) -> (u64, u64) {
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let generation = deployment.metadata.generation.unwrap_or(0);
    // Until the new spec is observed, the counts are the previous rollout's.
    let (updated, available) = deployment
        .status
        .as_ref()
        .filter(|s| s.observed_generation.unwrap_or(0) >= generation)
        .map_or((0, 0), |s| {
            (
                s.updated_replicas.unwrap_or(0),
                s.available_replicas.unwrap_or(0),
            )
        });
    let ready = updated.min(available).min(wanted).max(0);
    (
        u64::try_from(ready).unwrap_or(0),
        u64::try_from(wanted.max(0)).unwrap_or(0),
    )
}

/// Why waiting for a rollout stopped without success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitFailure {
    /// The cluster reported a failure (progress deadline exceeded).
    Failed(String),
    /// Our own deadline passed; the last waiting message.
    TimedOut(String),
    /// The Deployment does not exist.
    Missing,
}

impl fmt::Display for WaitFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitFailure::Failed(reason) => write!(f, "{reason}"),
            WaitFailure::TimedOut(last) => write!(f, "timed out waiting for the rollout ({last})"),
            WaitFailure::Missing => write!(f, "the deployment does not exist"),
        }
    }
}

/// Polls the Deployment until its rollout is done, failed, or `timeout` passed. The number of
/// polls is bounded by `timeout / poll + 1`.
pub async fn wait<A: ClusterApi>(
    api: &A,
    namespace: &str,
    name: &str,
    timeout: Duration,
    poll: Duration,
) -> Result<Result<(), WaitFailure>, ApiError> {
    wait_reporting(api, namespace, name, timeout, poll, None).await
}

/// [`wait`], reporting each poll to `progress`; the last report has `done` set.
pub async fn wait_reporting<A: ClusterApi>(
    api: &A,
    namespace: &str,
    name: &str,
    timeout: Duration,
    poll: Duration,
    progress: Option<&ProgressFn>,
) -> Result<Result<(), WaitFailure>, ApiError> {
    let report = |ready: u64, wanted: u64, message: &str, done: bool| {
        if let Some(progress) = progress {
            progress(RolloutProgress {
                deployment: name.to_owned(),
                ready,
                wanted,
                message: message.to_owned(),
                done,
            });
        }
    };
    let started = tokio::time::Instant::now();
    let max_polls = timeout.as_millis() / poll.as_millis().max(1) + 1;
    let mut last = String::from("not polled");
    let mut counts = (0, 0);
    for _ in 0..max_polls {
        let Some(deployment) = api.deployment(namespace, name).await? else {
            report(0, 0, "the deployment does not exist", true);
            return Ok(Err(WaitFailure::Missing));
        };
        counts = ready_replicas(&deployment);
        match status(&deployment) {
            RolloutStatus::Done => {
                tracing::info!(deployment = name, "rollout done");
                report(counts.1, counts.1, "done", true);
                return Ok(Ok(()));
            }
            RolloutStatus::Failed(reason) => {
                report(counts.0, counts.1, &reason, true);
                return Ok(Err(WaitFailure::Failed(reason)));
            }
            RolloutStatus::Waiting(message) => {
                tracing::info!(deployment = name, %message, "waiting for rollout");
                report(counts.0, counts.1, &message, false);
                last = message;
            }
        }
        if started.elapsed() >= timeout {
            break;
        }
        tokio::time::sleep(poll).await;
    }
    report(counts.0, counts.1, &format!("timed out ({last})"), true);
    Ok(Err(WaitFailure::TimedOut(last)))
}

/// What is known about one pod of a failed rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodDiagnostic {
    pub pod: String,
    pub phase: String,
    /// Container states that explain a failure: waiting reasons (`ImagePullBackOff`,
    /// `CrashLoopBackOff`, ...) with their message, last termination exit codes, restarts.
    pub containers: Vec<String>,
    /// `reason: message` of the pod's events (warnings first).
    pub events: Vec<String>,
    /// The last lines of its logs.
    pub logs: String,
}

/// The diagnostics of a failed rollout.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics {
    pub pods: Vec<PodDiagnostic>,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pods.is_empty() {
            return writeln!(f, "no pod found");
        }
        for pod in &self.pods {
            writeln!(f, "pod {} ({})", pod.pod, pod.phase)?;
            for container in &pod.containers {
                writeln!(f, "  container {container}")?;
            }
            for event in &pod.events {
                writeln!(f, "  event {event}")?;
            }
            if !pod.logs.trim().is_empty() {
                writeln!(f, "  last logs:")?;
                for line in pod.logs.lines() {
                    writeln!(f, "    {line}")?;
                }
            }
        }
        Ok(())
    }
}

fn container_lines(pod: &Pod) -> Vec<String> {
    let mut lines = Vec::new();
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref());
    for status in statuses.into_iter().flatten() {
        let mut line = format!(
            "{}: ready={} restarts={}",
            status.name, status.ready, status.restart_count
        );
        if let Some(waiting) = status.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            line.push_str(&format!(
                ", waiting: {} {}",
                waiting.reason.as_deref().unwrap_or("?"),
                waiting.message.as_deref().unwrap_or("")
            ));
        }
        if let Some(terminated) = status
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
        {
            line.push_str(&format!(
                ", last terminated: exit {} {}",
                terminated.exit_code,
                terminated.reason.as_deref().unwrap_or("")
            ));
        }
        lines.push(line.trim_end().to_owned());
    }
    lines
}

/// Gathers pods (not ready ones only, when some are ready), their events and last logs.
pub async fn diagnose<A: ClusterApi>(
    api: &A,
    namespace: &str,
    selector: &str,
    log_lines: u32,
) -> Result<Diagnostics, ApiError> {
    let pods = api.pods(namespace, selector).await?;
    let mut out = Diagnostics::default();
    for pod in pods.iter().take(10) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|c| !c.is_empty() && c.iter().all(|c| c.ready));
        if ready {
            continue;
        }
        let mut events: Vec<_> = api.events(namespace, &name).await?;
        events.sort_by_key(|e| e.type_.as_deref() != Some("Warning"));
        let events = events
            .iter()
            .map(|e| {
                format!(
                    "{} {}: {}",
                    e.type_.as_deref().unwrap_or("Normal"),
                    e.reason.as_deref().unwrap_or("?"),
                    e.message.as_deref().unwrap_or("")
                )
            })
            .collect();
        let logs = api.logs(namespace, &name, log_lines).await?;
        out.pods.push(PodDiagnostic {
            phase: pod
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Unknown".to_owned()),
            containers: container_lines(pod),
            events,
            logs,
            pod: name,
        });
    }
    Ok(out)
}
