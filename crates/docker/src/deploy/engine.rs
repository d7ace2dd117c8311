//! The rolling replacement itself (see the module docs of [`super`]), over any
//! [`ContainerApi`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use super::DeployError;
use super::api::{ContainerApi, ContainerInfo, Endpoint, HealthStatus, Replica};
use super::docker_engine::DockerEngine;
use super::lock::{self, TargetLock};
use super::record::{
    self, HISTORY_LABEL, KEEP, RECORD_LABEL, RELEASE_LABEL, ReleaseRecord, TARGET_LABEL,
};
use super::spec::{DockerDeploySpec, HealthCheck, OnFailure};

/// Why a new container was judged unhealthy, with what it said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unhealthy {
    pub container: String,
    pub reason: String,
    /// The last health probe results (`exit <code>: <output>`).
    pub health_output: Vec<String>,
    /// The last lines of the container's logs.
    pub logs: String,
}

/// A rollback decided but not done yet; holds the target's lock.
#[derive(Debug)]
pub struct RollbackPlan {
    /// The release serving now (the newest record).
    pub current: ReleaseRecord,
    /// The release to return to.
    pub record: ReleaseRecord,
    secrets: BTreeMap<String, String>,
    /// The replicas serving now (running, under the alias).
    serving: Vec<ServingContainer>,
    _lock: TargetLock,
}

impl RollbackPlan {
    /// The names of the replicas serving now, which [`Deployer::stop_serving`] stops.
    pub fn serving(&self) -> Vec<String> {
        self.serving.iter().map(|c| c.name.clone()).collect()
    }
}

/// What a successful deploy or rollback did.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployReport {
    pub record: ReleaseRecord,
    /// The new containers, now serving.
    pub started: Vec<String>,
    /// The old containers removed.
    pub removed: Vec<String>,
    /// Leftovers of an interrupted run removed before starting.
    pub recovered: Vec<String>,
}

/// A replica of a target as found on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct ServingContainer {
    pub id: String,
    pub name: String,
    pub release: u64,
    pub running: bool,
    /// Whether it is on the target's network under the alias.
    pub in_alias: bool,
    pub env: Vec<String>,
}

impl ServingContainer {
    fn serves(&self) -> bool {
        self.running && self.in_alias
    }
}

/// A target as found on the host: its replicas and its release records.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetState {
    pub replicas: Vec<ServingContainer>,
    /// Newest first.
    pub history: Vec<ReleaseRecord>,
    /// The record containers: release id and container id.
    records: Vec<(u64, String)>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// How far a rollout is: replicas of `release` serving, out of those wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutProgress {
    pub target: String,
    /// The release the counts are of: the new one while it rolls; when a roll failed, the
    /// release serving again (0 when there is none).
    pub release: u64,
    pub serving: u64,
    pub replicas: u64,
    /// What happens now: `replica 2/3: waiting for health`, `replica 2/3 serving`.
    pub message: String,
    /// The last report of this rollout (succeeded, or failed and reverted).
    pub done: bool,
}

/// The caller's progress callback (the library never prints).
#[derive(Clone)]
struct ProgressReporter(Arc<dyn Fn(RolloutProgress) + Send + Sync>);

impl std::fmt::Debug for ProgressReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressReporter")
    }
}

/// Deploys to, and rolls back on, one Docker host (the Docker Engine, or a fake in tests).
#[derive(Debug, Clone)]
pub struct Deployer<A = DockerEngine> {
    api: A,
    lock_dir: PathBuf,
    progress: Option<ProgressReporter>,
}

impl Deployer<DockerEngine> {
    /// A deployer over `docker` (already connected, version negotiated), with locks in the
    /// default folder.
    pub fn new(docker: bollard::Docker) -> Self {
        Self::with_api(DockerEngine::new(docker))
    }

    /// Connects to the local Docker Engine and negotiates the API version (20.10 speaks 1.41).
    pub async fn connect() -> Result<Self, DeployError> {
        Ok(Self::with_api(DockerEngine::connect().await?))
    }

    pub fn docker(&self) -> &bollard::Docker {
        self.api.docker()
    }
}

/// The `old` replicas, the progress of the new ones, what a roll works on.
#[derive(Debug, Default)]
struct Progress {
    new: Vec<NewContainer>,
    stopped_old: Vec<ServingContainer>,
}

#[derive(Debug)]
struct NewContainer {
    id: String,
    name: String,
    in_alias: bool,
}

/// What a roll makes: one release of one spec.
struct Release<'a> {
    spec: &'a DockerDeploySpec,
    secrets: &'a BTreeMap<String, String>,
    image_id: String,
    backup: Option<String>,
    rollback_of: Option<u64>,
}

impl<A: ContainerApi> Deployer<A> {
    /// A deployer over any [`ContainerApi`], with locks in the default folder.
    pub fn with_api(api: A) -> Self {
        Self {
            api,
            lock_dir: lock::default_dir(),
            progress: None,
        }
    }

    pub fn api(&self) -> &A {
        &self.api
    }

    pub fn with_lock_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.lock_dir = dir.into();
        self
    }

    /// Reports each rollout's progress (replica started, healthy, serving; done) to `report`.
    pub fn with_progress(
        mut self,
        report: impl Fn(RolloutProgress) + Send + Sync + 'static,
    ) -> Self {
        self.progress = Some(ProgressReporter(Arc::new(report)));
        self
    }

    fn report(
        &self,
        spec: &DockerDeploySpec,
        release: u64,
        serving: u64,
        message: String,
        done: bool,
    ) {
        if let Some(ProgressReporter(report)) = &self.progress {
            report(RolloutProgress {
                target: spec.name.clone(),
                release,
                serving,
                replicas: u64::from(spec.replicas),
                message,
                done,
            });
        }
    }

    /// The replicas (running or not) and the release records of `target`.
    pub async fn target_state(
        &self,
        target: &str,
        network: &str,
        alias: &str,
    ) -> Result<TargetState, DeployError> {
        let mut replicas = Vec::new();
        let mut records = Vec::new();
        let mut history = Vec::new();
        // Replicas deployed before record containers existed carry the history themselves.
        let mut legacy: Option<(u64, Vec<ReleaseRecord>)> = None;
        for c in self.api.containers(TARGET_LABEL, target).await? {
            let parse_error = |source| DeployError::Record {
                container: c.name.clone(),
                source,
            };
            if let Some(json) = c.labels.get(RECORD_LABEL) {
                let record: ReleaseRecord = serde_json::from_str(json).map_err(parse_error)?;
                records.push((record.id, c.id.clone()));
                history.push(record);
                continue;
            }
            let replica = serving(&c, network, alias);
            if let Some(json) = c.labels.get(HISTORY_LABEL)
                && legacy.as_ref().is_none_or(|(id, _)| *id < replica.release)
            {
                legacy = Some((
                    replica.release,
                    record::parse_history(json).map_err(parse_error)?,
                ));
            }
            replicas.push(replica);
        }
        if history.is_empty()
            && let Some((_, records)) = legacy
        {
            history = records;
        }
        history.sort_by_key(|r| std::cmp::Reverse(r.id));
        history.dedup_by_key(|r| r.id);
        replicas.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(TargetState {
            replicas,
            history,
            records,
        })
    }

    /// The replicas of `target` (running or not).
    pub async fn containers(
        &self,
        target: &str,
        network: &str,
        alias: &str,
    ) -> Result<Vec<ServingContainer>, DeployError> {
        Ok(self.target_state(target, network, alias).await?.replicas)
    }

    /// The release history of `target`, newest first, from its release records.
    pub async fn history(
        &self,
        spec: &DockerDeploySpec,
    ) -> Result<Vec<ReleaseRecord>, DeployError> {
        Ok(self
            .target_state(&spec.name, &spec.network, spec.alias())
            .await?
            .history)
    }

    /// Deploys `spec` with `secrets` (values of `spec.secret_env`).
    pub async fn deploy(
        &self,
        spec: &DockerDeploySpec,
        secrets: &BTreeMap<String, String>,
        backup: Option<String>,
        cancel: &CancellationToken,
    ) -> Result<DeployReport, DeployError> {
        spec.validate().map_err(DeployError::InvalidSetting)?;
        for key in &spec.secret_env {
            if !secrets.contains_key(key) {
                return Err(DeployError::MissingSecret(key.clone()));
            }
        }
        let _lock = TargetLock::acquire(&self.lock_dir, &spec.name)?;
        let image = self.api.image(&spec.image).await?;
        if spec.health == HealthCheck::Image && !image.has_healthcheck {
            return Err(DeployError::InvalidSetting(format!(
                "health: image, but {} has no HEALTHCHECK",
                spec.image
            )));
        }
        let release = Release {
            spec,
            secrets,
            image_id: image.id,
            backup,
            rollback_of: None,
        };
        self.roll(release, cancel).await
    }

    /// Rolls `target` back to release `to`, or to the one before the current release. The
    /// recorded settings and image id are used; secret values are taken from `secrets`, else
    /// from the containers of the current release.
    pub async fn rollback(
        &self,
        target: &str,
        network: &str,
        alias: &str,
        to: Option<u64>,
        secrets: &BTreeMap<String, String>,
        cancel: &CancellationToken,
    ) -> Result<DeployReport, DeployError> {
        let plan = self
            .plan_rollback(target, network, alias, to, secrets)
            .await?;
        self.apply_rollback(plan, cancel).await
    }

    /// The first half of a rollback: takes the target's lock, finds the record to return to
    /// (from the release records: whatever state the replicas are in) and the secret values.
    /// [`Deployer::stop_serving`] may come next (a rollback with data stops the current
    /// version before restoring the database), then [`Deployer::apply_rollback`], or
    /// [`Deployer::restart_serving`] when the rollback is given up.
    pub async fn plan_rollback(
        &self,
        target: &str,
        network: &str,
        alias: &str,
        to: Option<u64>,
        secrets: &BTreeMap<String, String>,
    ) -> Result<RollbackPlan, DeployError> {
        let lock = TargetLock::acquire(&self.lock_dir, target)?;
        let state = self.target_state(target, network, alias).await?;
        let current =
            state.history.first().cloned().ok_or_else(|| {
                DeployError::NoRelease(format!("no release of {target} is recorded"))
            })?;
        let Some(wanted) = to.or(current.previous) else {
            return Err(DeployError::NoRelease(format!(
                "release {} of {target} has no previous release",
                current.id
            )));
        };
        let record = state
            .history
            .iter()
            .find(|r| r.id == wanted)
            .cloned()
            .ok_or_else(|| {
                DeployError::NoRelease(format!(
                    "no record of release {wanted} of {target} (kept: the last {KEEP})"
                ))
            })?;
        // Secret values: from the replicas of the current release first, running or not.
        let mut sources: Vec<&ServingContainer> = state.replicas.iter().collect();
        sources.sort_by_key(|c| (c.release != current.id, !c.running));
        let mut values = secrets.clone();
        for key in &record.settings.secret_env {
            if values.contains_key(key) {
                continue;
            }
            let prefix = format!("{key}=");
            let found = sources
                .iter()
                .find_map(|c| c.env.iter().find_map(|e| e.strip_prefix(&prefix)));
            match found {
                Some(value) => {
                    values.insert(key.clone(), value.to_owned());
                }
                None => return Err(DeployError::MissingSecret(key.clone())),
            }
        }
        Ok(RollbackPlan {
            current,
            record,
            secrets: values,
            serving: state.replicas.into_iter().filter(|c| c.serves()).collect(),
            _lock: lock,
        })
    }

    /// Stops every container serving the current release (their requests fail from now on:
    /// used before restoring a database, when the current version must not write any more).
    /// Stopped containers keep their place under the alias, so
    /// [`Deployer::restart_serving`] only has to start them.
    pub async fn stop_serving(&self, plan: &RollbackPlan) -> Result<(), DeployError> {
        for c in &plan.serving {
            tracing::info!(container = %c.name, "stopping the current release");
            self.api
                .stop(&c.id, plan.current.settings.stop_timeout_secs)
                .await?;
        }
        Ok(())
    }

    /// Starts again what [`Deployer::stop_serving`] stopped, and waits until each is healthy
    /// (not cancellable: this is the way back). Every container is tried; the first error is
    /// returned.
    pub async fn restart_serving(&self, plan: &RollbackPlan) -> Result<(), DeployError> {
        let spec = &plan.current.settings;
        let never = CancellationToken::new();
        let mut first_error = None;
        for c in &plan.serving {
            tracing::info!(container = %c.name, "starting the current release again");
            let started = match self.api.start(&c.id).await {
                Ok(()) => {
                    self.wait_healthy(&c.id, &c.name, health_timeout(spec), &never)
                        .await
                }
                Err(error) => Err(error),
            };
            if let Err(error) = started {
                first_error.get_or_insert(error);
            }
        }
        // The alias survives a stop; a container that lost it gets it back.
        let state = self
            .target_state(&spec.name, &spec.network, spec.alias())
            .await?;
        for c in &plan.serving {
            let lost = state
                .replicas
                .iter()
                .any(|now| now.id == c.id && now.running && !now.in_alias);
            if lost && let Err(error) = self.join_alias(&c.id, &spec.network, spec.alias()).await {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The second half of a rollback: rolls to the planned record (a new release whose
    /// `rollback_of` names it).
    pub async fn apply_rollback(
        &self,
        plan: RollbackPlan,
        cancel: &CancellationToken,
    ) -> Result<DeployReport, DeployError> {
        let mut spec = plan.record.settings.clone();
        spec.image = plan.record.image_id.clone();
        let release = Release {
            spec: &spec,
            secrets: &plan.secrets,
            image_id: plan.record.image_id.clone(),
            backup: plan.record.backup.clone(),
            rollback_of: Some(plan.record.id),
        };
        let report = self.roll(release, cancel).await;
        drop(plan);
        report
    }

    async fn roll(
        &self,
        release: Release<'_>,
        cancel: &CancellationToken,
    ) -> Result<DeployReport, DeployError> {
        let spec = release.spec;
        let alias = spec.alias().to_owned();
        self.api.ensure_network(&spec.network).await?;
        let state = self.target_state(&spec.name, &spec.network, &alias).await?;
        // Leftovers of a killed run: stopped containers, and running ones outside the alias.
        let mut recovered = Vec::new();
        let mut old = Vec::new();
        for c in &state.replicas {
            if c.serves() {
                old.push(c.clone());
            } else {
                tracing::info!(container = %c.name, "removing a leftover of an interrupted deploy");
                self.api.remove(&c.id).await?;
                recovered.push(c.name.clone());
            }
        }
        let previous = state.history.first().map(|r| r.id);
        // Past every id ever used, a killed roll's included, so no name is taken.
        let id = state
            .replicas
            .iter()
            .map(|c| c.release)
            .chain(state.history.iter().map(|r| r.id))
            .chain(state.records.iter().map(|(id, _)| *id))
            .max()
            .unwrap_or(0)
            + 1;
        let record = ReleaseRecord {
            id,
            target: spec.name.clone(),
            image: spec.image.clone(),
            image_id: release.image_id.clone(),
            created: now(),
            settings: spec.clone(),
            previous,
            rollback_of: release.rollback_of,
            backup: release.backup.clone(),
        };
        let old_serving = old.len();
        tracing::info!(target = %spec.name, release = id, image = %release.image_id, replicas = spec.replicas, old = old_serving, "rolling deploy");

        let mut progress = Progress::default();
        let mut outcome = self
            .replace_all(&release, id, &alias, &mut old, &mut progress, cancel)
            .await;
        if outcome.is_ok() {
            // It served: only now is it a release.
            outcome = self.write_record(&record, &state).await;
        }
        match outcome {
            Ok(()) => {
                let mut removed = Vec::new();
                for c in &progress.stopped_old {
                    self.api.remove(&c.id).await?;
                    removed.push(c.name.clone());
                }
                self.prune_records(&spec.name, &spec.network, &alias)
                    .await?;
                let replicas = u64::from(spec.replicas);
                self.report(
                    spec,
                    id,
                    replicas,
                    format!("release {id}: {replicas} replicas serving"),
                    true,
                );
                Ok(DeployReport {
                    record,
                    started: progress.new.iter().map(|n| n.name.clone()).collect(),
                    removed,
                    recovered,
                })
            }
            Err(error) => {
                let keep_failed = spec.on_failure == OnFailure::Keep;
                let revert = self.revert(spec, &alias, &mut progress, keep_failed).await;
                let (back, serving) = match previous {
                    Some(previous) => (format!("release {previous} serves"), old_serving),
                    None => ("no release was serving before".to_owned(), 0),
                };
                let message = if revert.is_ok() {
                    format!("release {id} failed; {back}")
                } else {
                    format!("release {id} failed, and so did reverting it")
                };
                let serving = if revert.is_ok() { serving } else { 0 };
                self.report(spec, previous.unwrap_or(0), serving as u64, message, true);
                match (error, revert) {
                    (error, Ok(())) => Err(error),
                    (DeployError::Cancelled(_), Err(revert)) => Err(DeployError::Cancelled(
                        format!("reverting failed: {revert}"),
                    )),
                    (_, Err(revert)) => Err(revert),
                }
            }
        }
    }

    /// Writes the record container of `record`; records that only older replicas carried
    /// (a target deployed before record containers) are written too, where their image is
    /// still on the host.
    async fn write_record(
        &self,
        record: &ReleaseRecord,
        state: &TargetState,
    ) -> Result<(), DeployError> {
        let labels = record::record_labels(record).map_err(DeployError::WriteRecord)?;
        self.api
            .create_record(
                &record::record_name(&record.target, record.id),
                &record.image_id,
                &labels,
            )
            .await?;
        let stored: BTreeSet<u64> = state.records.iter().map(|(id, _)| *id).collect();
        for older in state.history.iter().filter(|r| !stored.contains(&r.id)) {
            let labels = record::record_labels(older).map_err(DeployError::WriteRecord)?;
            let name = record::record_name(&older.target, older.id);
            match self
                .api
                .create_record(&name, &older.image_id, &labels)
                .await
            {
                Ok(()) => {}
                Err(DeployError::ImageMissing(image)) => {
                    tracing::info!(release = older.id, %image, "the image of an old release is gone; its record is dropped");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Removes the record containers past the newest [`KEEP`].
    async fn prune_records(
        &self,
        target: &str,
        network: &str,
        alias: &str,
    ) -> Result<(), DeployError> {
        let mut records = self.target_state(target, network, alias).await?.records;
        records.sort_by_key(|r| std::cmp::Reverse(r.0));
        for (id, container) in records.iter().skip(KEEP) {
            tracing::info!(target, release = id, "dropping an old release record");
            self.api.remove(container).await?;
        }
        Ok(())
    }

    async fn replace_all(
        &self,
        release: &Release<'_>,
        id: u64,
        alias: &str,
        old: &mut Vec<ServingContainer>,
        progress: &mut Progress,
        cancel: &CancellationToken,
    ) -> Result<(), DeployError> {
        let spec = release.spec;
        let cancelled = || DeployError::Cancelled("the old release keeps serving".to_owned());
        let replicas = spec.replicas;
        let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for key in &spec.secret_env {
            let value = release
                .secrets
                .get(key)
                .ok_or_else(|| DeployError::MissingSecret(key.clone()))?;
            env.push(format!("{key}={value}"));
        }
        let labels = record::replica_labels(&spec.name, id);
        for index in 0..spec.replicas {
            if cancel.is_cancelled() {
                return Err(cancelled());
            }
            let serving = u64::from(index);
            let nth = index + 1;
            self.report(
                spec,
                id,
                serving,
                format!("replica {nth}/{replicas}: starting"),
                false,
            );
            let name = format!("{}-{id}-{index}", spec.name);
            let container = self
                .api
                .create(Replica {
                    name: &name,
                    spec,
                    image_id: &release.image_id,
                    env: &env,
                    labels: &labels,
                })
                .await?;
            progress.new.push(NewContainer {
                id: container.clone(),
                name: name.clone(),
                in_alias: false,
            });
            self.api.start(&container).await?;
            tracing::info!(container = %name, "started, waiting until healthy");
            self.report(
                spec,
                id,
                serving,
                format!("replica {nth}/{replicas}: waiting for health"),
                false,
            );
            self.wait_healthy(&container, &name, health_timeout(spec), cancel)
                .await?;
            self.join_alias(&container, &spec.network, alias).await?;
            if let Some(last) = progress.new.last_mut() {
                last.in_alias = true;
            }
            tracing::info!(container = %name, "healthy, serving under the alias");
            self.report(
                spec,
                id,
                serving + 1,
                format!("replica {nth}/{replicas} serving"),
                false,
            );
            if let Some(victim) = old.pop() {
                // Stopped or not, it goes back on a revert.
                progress.stopped_old.push(victim.clone());
                self.drain_and_stop(spec, &victim).await?;
            }
        }
        while let Some(victim) = old.pop() {
            progress.stopped_old.push(victim.clone());
            self.drain_and_stop(spec, &victim).await?;
        }
        Ok(())
    }

    /// Undoes a partial roll: old containers back first (capacity), then new ones out. Every
    /// step is tried even when one fails (as much of the old release as possible serves); the
    /// first error is returned.
    async fn revert(
        &self,
        spec: &DockerDeploySpec,
        alias: &str,
        progress: &mut Progress,
        keep_failed: bool,
    ) -> Result<(), DeployError> {
        tracing::info!(target = %spec.name, "reverting to the old release");
        let never = CancellationToken::new();
        let mut first_error = None;
        for c in progress.stopped_old.drain(..).rev() {
            let back = async {
                self.api.start(&c.id).await?;
                if let Err(error) = self
                    .wait_healthy(&c.id, &c.name, health_timeout(spec), &never)
                    .await
                {
                    tracing::error!(container = %c.name, %error, "old container did not get healthy again");
                }
                // Whether it left the network or only the alias, it comes back under it.
                self.join_alias(&c.id, &spec.network, alias).await
            };
            if let Err(error) = back.await {
                first_error.get_or_insert(error);
            }
        }
        let last = progress.new.len().saturating_sub(1);
        for (i, c) in progress.new.drain(..).enumerate() {
            let out = async {
                if c.in_alias {
                    self.drain(&c.id, &c.name, spec).await?;
                }
                if keep_failed && i == last {
                    self.api.stop(&c.id, spec.stop_timeout_secs).await
                } else {
                    self.api.remove(&c.id).await
                }
            };
            if let Err(error) = out.await {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn drain_and_stop(
        &self,
        spec: &DockerDeploySpec,
        victim: &ServingContainer,
    ) -> Result<(), DeployError> {
        // The drain is not cut short by a cancel: the victim leaves the alias first anyway.
        self.drain(&victim.id, &victim.name, spec).await?;
        self.api.stop(&victim.id, spec.stop_timeout_secs).await?;
        // Stopped, it keeps no address that a restart (a revert) could find taken.
        self.api.disconnect(&victim.id, &spec.network).await
    }

    /// Takes a container out of the alias without taking its address away: disconnect (Docker's
    /// DNS stops returning it), reconnect at once with the same IPv4 address and no alias, so
    /// that clients which resolved the alias just before still reach it (a SYN lost in the
    /// ~50 ms gap is retransmitted), then wait `drain_ms` for their requests to finish.
    async fn drain(
        &self,
        id: &str,
        name: &str,
        spec: &DockerDeploySpec,
    ) -> Result<(), DeployError> {
        let ip = self.api.address(id, &spec.network).await;
        tracing::info!(container = %name, ip = ip.as_deref().unwrap_or("?"), drain_ms = spec.drain_ms, "draining");
        self.api.disconnect(id, &spec.network).await?;
        if let Some(ip) = ip
            && let Err(error) = self
                .api
                .connect(id, &spec.network, Endpoint::Address(ip))
                .await
        {
            // A network without a configured subnet refuses fixed addresses: the drain
            // then only waits, and requests already sent to the container may fail.
            tracing::info!(container = %name, %error, "cannot keep the address while draining");
        }
        tokio::time::sleep(Duration::from_millis(spec.drain_ms)).await;
        Ok(())
    }

    async fn join_alias(&self, id: &str, network: &str, alias: &str) -> Result<(), DeployError> {
        self.api.disconnect(id, network).await?;
        self.api
            .connect(id, network, Endpoint::Alias(alias.to_owned()))
            .await
    }

    async fn wait_healthy(
        &self,
        id: &str,
        name: &str,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<(), DeployError> {
        let started = tokio::time::Instant::now();
        let poll = Duration::from_millis(250);
        let max_polls = timeout.as_millis() / poll.as_millis() + 2;
        let mut last = None;
        for _ in 0..max_polls {
            let health = self.api.health(id).await?;
            if !health.running {
                let reason = format!("it exited with code {}", health.exit_code);
                return Err(self.unhealthy(id, name, reason, &health.probes).await);
            }
            match health.status {
                HealthStatus::Healthy => return Ok(()),
                HealthStatus::Unhealthy => {
                    let reason = "Docker reports it unhealthy".to_owned();
                    return Err(self.unhealthy(id, name, reason, &health.probes).await);
                }
                HealthStatus::NoCheck => {
                    let reason = "it has no health check".to_owned();
                    return Err(self.unhealthy(id, name, reason, &health.probes).await);
                }
                HealthStatus::Starting => {}
            }
            if started.elapsed() >= timeout {
                let reason = format!("not healthy within {}s", timeout.as_secs());
                return Err(self.unhealthy(id, name, reason, &health.probes).await);
            }
            last = Some(health);
            tokio::select! {
                _ = cancel.cancelled() => return Err(DeployError::Cancelled("the old release keeps serving".to_owned())),
                _ = tokio::time::sleep(poll) => {}
            }
        }
        let probes = last.map(|h| h.probes).unwrap_or_default();
        let reason = "health polling limit reached".to_owned();
        Err(self.unhealthy(id, name, reason, &probes).await)
    }

    async fn unhealthy(
        &self,
        id: &str,
        name: &str,
        reason: String,
        probes: &[String],
    ) -> DeployError {
        DeployError::Unhealthy(Box::new(Unhealthy {
            container: name.to_owned(),
            reason,
            health_output: probes.to_vec(),
            logs: self.api.logs(id, 20).await,
        }))
    }
}

fn health_timeout(spec: &DockerDeploySpec) -> Duration {
    Duration::from_secs(spec.health_timeout_secs)
}

fn serving(c: &ContainerInfo, network: &str, alias: &str) -> ServingContainer {
    ServingContainer {
        id: c.id.clone(),
        name: c.name.clone(),
        release: c
            .labels
            .get(RELEASE_LABEL)
            .and_then(|r| r.parse().ok())
            .unwrap_or(0),
        running: c.running,
        in_alias: c
            .networks
            .get(network)
            .is_some_and(|aliases| aliases.iter().any(|a| a == alias)),
        env: c.env.clone(),
    }
}

#[cfg(test)]
mod tests;
