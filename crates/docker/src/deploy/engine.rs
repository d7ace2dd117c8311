//! The rolling replacement itself (see the module docs of [`super`]).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointIpamConfig, EndpointSettings,
    HealthConfig, HealthStatusEnum, HostConfig, Ipam, NetworkConnectRequest, NetworkCreateRequest,
    NetworkDisconnectRequest, NetworkingConfig, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::DeployError;
use super::lock::{self, TargetLock};
use super::record::{
    self, HISTORY_LABEL, KEEP, MANAGED_LABEL, RELEASE_LABEL, ReleaseRecord, TARGET_LABEL,
};
use super::spec::{DockerDeploySpec, HealthCheck, OnFailure};

/// Why a new container was judged unhealthy, with what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The release serving now.
    pub current: ReleaseRecord,
    /// The release to return to.
    pub record: ReleaseRecord,
    history: Vec<ReleaseRecord>,
    secrets: BTreeMap<String, String>,
    serving: Vec<ServingContainer>,
    _lock: TargetLock,
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

/// A container of a target as found on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct ServingContainer {
    pub id: String,
    pub name: String,
    pub release: u64,
    pub running: bool,
    /// Whether it is on the target's network under the alias.
    pub in_alias: bool,
    pub history: Vec<ReleaseRecord>,
    pub env: Vec<String>,
}

fn docker_err(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> DeployError {
    let action = action.into();
    move |source| DeployError::Docker { action, source }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// How far a rollout is: replicas of the new release serving, out of those wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutProgress {
    pub target: String,
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

/// Deploys to, and rolls back on, one Docker host.
#[derive(Debug, Clone)]
pub struct Deployer {
    docker: Docker,
    lock_dir: PathBuf,
    progress: Option<ProgressReporter>,
}

impl Deployer {
    /// A deployer over `docker` (already connected, version negotiated), with locks in the
    /// default folder.
    pub fn new(docker: Docker) -> Self {
        Self {
            docker,
            lock_dir: lock::default_dir(),
            progress: None,
        }
    }

    /// Connects to the local Docker Engine and negotiates the API version (20.10 speaks 1.41).
    pub async fn connect() -> Result<Self, DeployError> {
        let docker =
            Docker::connect_with_local_defaults().map_err(docker_err("connect to Docker"))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(docker_err("negotiate the Docker API version"))?;
        Ok(Self::new(docker))
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

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The containers of `target` (running or not), with their labels read.
    pub async fn containers(
        &self,
        target: &str,
        network: &str,
        alias: &str,
    ) -> Result<Vec<ServingContainer>, DeployError> {
        let filters =
            HashMap::from([("label".to_owned(), vec![format!("{TARGET_LABEL}={target}")])]);
        let list = self
            .docker
            .list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(docker_err(format!("list the containers of {target}")))?;
        let mut out = Vec::new();
        for summary in list {
            let Some(id) = summary.id else { continue };
            let inspect = match self
                .docker
                .inspect_container(&id, None::<InspectContainerOptions>)
                .await
            {
                Ok(i) => i,
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(docker_err(format!("inspect container {id}"))(e)),
            };
            out.push(serving(&inspect, &id, network, alias)?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The release history of `target`, newest first, from its serving containers.
    pub async fn history(
        &self,
        spec: &DockerDeploySpec,
    ) -> Result<Vec<ReleaseRecord>, DeployError> {
        let containers = self
            .containers(&spec.name, &spec.network, spec.alias())
            .await?;
        Ok(current_history(&containers))
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
        let image = self.docker.inspect_image(&spec.image).await.map_err(|e| {
            if is_not_found(&e) {
                DeployError::ImageMissing(spec.image.clone())
            } else {
                docker_err("inspect the image")(e)
            }
        })?;
        let image_id = image.id.unwrap_or_else(|| spec.image.clone());
        if spec.health == HealthCheck::Image
            && image
                .config
                .as_ref()
                .and_then(|c| c.healthcheck.as_ref())
                .and_then(|h| h.test.as_ref())
                .is_none()
        {
            return Err(DeployError::InvalidSetting(format!(
                "health: image, but {} has no HEALTHCHECK",
                spec.image
            )));
        }
        self.roll(spec, secrets, image_id, backup, None, None, cancel)
            .await
    }

    /// Rolls `target` back to release `to`, or to the one before the current release. The
    /// recorded settings and image id are used; secret values are taken from `secrets`, else
    /// from the containers serving now.
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
    /// and the secret values. [`Deployer::stop_serving`] may come next (a rollback with data
    /// stops the new version before restoring the database), then [`Deployer::apply_rollback`].
    pub async fn plan_rollback(
        &self,
        target: &str,
        network: &str,
        alias: &str,
        to: Option<u64>,
        secrets: &BTreeMap<String, String>,
    ) -> Result<RollbackPlan, DeployError> {
        let lock = TargetLock::acquire(&self.lock_dir, target)?;
        let containers = self.containers(target, network, alias).await?;
        let history = current_history(&containers);
        let current = history
            .first()
            .cloned()
            .ok_or_else(|| DeployError::NoRelease(format!("no release of {target} is serving")))?;
        let Some(wanted) = to.or(current.previous) else {
            return Err(DeployError::NoRelease(format!(
                "release {} of {target} has no previous release",
                current.id
            )));
        };
        let record = history
            .iter()
            .find(|r| r.id == wanted)
            .cloned()
            .ok_or_else(|| {
                DeployError::NoRelease(format!(
                    "no record of release {wanted} of {target} (kept: the last {KEEP})"
                ))
            })?;
        let serving: Vec<ServingContainer> = containers
            .into_iter()
            .filter(|c| c.running && c.in_alias)
            .collect();
        let mut values = secrets.clone();
        let serving_env = serving.first().map(|c| c.env.clone()).unwrap_or_default();
        for key in &record.settings.secret_env {
            if values.contains_key(key) {
                continue;
            }
            let prefix = format!("{key}=");
            match serving_env.iter().find_map(|e| e.strip_prefix(&prefix)) {
                Some(value) => {
                    values.insert(key.clone(), value.to_owned());
                }
                None => return Err(DeployError::MissingSecret(key.clone())),
            }
        }
        Ok(RollbackPlan {
            current,
            record,
            history,
            secrets: values,
            serving,
            _lock: lock,
        })
    }

    /// Stops every container serving the current release (their requests fail from now on:
    /// used before restoring a database, when the new version must not write any more).
    pub async fn stop_serving(&self, plan: &RollbackPlan) -> Result<(), DeployError> {
        for c in &plan.serving {
            tracing::info!(container = %c.name, "stopping the current release");
            self.stop(&c.id, plan.record.settings.stop_timeout_secs)
                .await?;
        }
        Ok(())
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
        let report = self
            .roll(
                &spec,
                &plan.secrets,
                plan.record.image_id.clone(),
                plan.record.backup.clone(),
                Some(plan.record.id),
                Some(plan.history.clone()),
                cancel,
            )
            .await;
        drop(plan);
        report
    }

    #[allow(clippy::too_many_arguments)]
    async fn roll(
        &self,
        spec: &DockerDeploySpec,
        secrets: &BTreeMap<String, String>,
        image_id: String,
        backup: Option<String>,
        rollback_of: Option<u64>,
        history: Option<Vec<ReleaseRecord>>,
        cancel: &CancellationToken,
    ) -> Result<DeployReport, DeployError> {
        let alias = spec.alias().to_owned();
        self.ensure_network(&spec.network).await?;
        let containers = self.containers(&spec.name, &spec.network, &alias).await?;
        // Leftovers of a killed run: stopped containers, and running ones outside the alias.
        let mut recovered = Vec::new();
        let mut old = Vec::new();
        for c in &containers {
            if c.running && c.in_alias {
                old.push(c.clone());
            } else {
                tracing::warn!(container = %c.name, "removing a leftover of an interrupted deploy");
                self.remove(&c.id).await?;
                recovered.push(c.name.clone());
            }
        }
        let history = history.unwrap_or_else(|| current_history(&old));
        let previous = history.first().map(|r| r.id);
        let id = containers
            .iter()
            .map(|c| c.release)
            .chain(history.iter().map(|r| r.id))
            .max()
            .unwrap_or(0)
            + 1;
        let mut settings = spec.clone();
        if rollback_of.is_none() {
            settings.image = spec.image.clone();
        }
        let record = ReleaseRecord {
            id,
            target: spec.name.clone(),
            image: spec.image.clone(),
            image_id: image_id.clone(),
            created: now(),
            settings,
            previous,
            rollback_of,
            backup,
        };
        let mut new_history = vec![record.clone()];
        new_history.extend(history.into_iter().filter(|r| r.id != id).take(KEEP - 1));
        let history_json = serde_json::to_string(&new_history).map_err(DeployError::WriteRecord)?;
        tracing::info!(target = %spec.name, release = id, image = %image_id, replicas = spec.replicas, old = old.len(), "rolling deploy");

        let mut progress = Progress::default();
        let outcome = self
            .replace_all(
                spec,
                secrets,
                &image_id,
                id,
                &history_json,
                &alias,
                &mut old,
                &mut progress,
                cancel,
            )
            .await;
        match outcome {
            Ok(()) => {
                let mut removed = Vec::new();
                for c in &progress.stopped_old {
                    self.remove(&c.id).await?;
                    removed.push(c.name.clone());
                }
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
                let message = if revert.is_ok() {
                    format!("release {id} failed; the old release serves")
                } else {
                    format!("release {id} failed, and so did reverting it")
                };
                self.report(spec, id, 0, message, true);
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

    #[allow(clippy::too_many_arguments)]
    async fn replace_all(
        &self,
        spec: &DockerDeploySpec,
        secrets: &BTreeMap<String, String>,
        image_id: &str,
        release: u64,
        history_json: &str,
        alias: &str,
        old: &mut Vec<ServingContainer>,
        progress: &mut Progress,
        cancel: &CancellationToken,
    ) -> Result<(), DeployError> {
        let cancelled = || DeployError::Cancelled("the old release keeps serving".to_owned());
        let replicas = spec.replicas;
        for index in 0..spec.replicas {
            if cancel.is_cancelled() {
                return Err(cancelled());
            }
            let serving = u64::from(index);
            let nth = index + 1;
            self.report(
                spec,
                release,
                serving,
                format!("replica {nth}/{replicas}: starting"),
                false,
            );
            let name = format!("{}-{release}-{index}", spec.name);
            let id = self
                .create(spec, secrets, image_id, release, history_json, &name)
                .await?;
            progress.new.push(NewContainer {
                id: id.clone(),
                name: name.clone(),
                in_alias: false,
            });
            self.docker
                .start_container(&id, None)
                .await
                .map_err(docker_err(format!("start {name}")))?;
            tracing::info!(container = %name, "started, waiting until healthy");
            self.report(
                spec,
                release,
                serving,
                format!("replica {nth}/{replicas}: waiting for health"),
                false,
            );
            self.wait_healthy(
                &id,
                &name,
                Duration::from_secs(spec.health_timeout_secs),
                cancel,
            )
            .await?;
            self.join_alias(&id, &spec.network, alias).await?;
            if let Some(last) = progress.new.last_mut() {
                last.in_alias = true;
            }
            tracing::info!(container = %name, "healthy, serving under the alias");
            self.report(
                spec,
                release,
                serving + 1,
                format!("replica {nth}/{replicas} serving"),
                false,
            );
            if let Some(victim) = old.pop() {
                self.drain_and_stop(spec, &victim, cancel).await?;
                progress.stopped_old.push(victim);
            }
        }
        while let Some(victim) = old.pop() {
            self.drain_and_stop(spec, &victim, cancel).await?;
            progress.stopped_old.push(victim);
        }
        Ok(())
    }

    /// Undoes a partial roll: old containers back first (capacity), then new ones out.
    async fn revert(
        &self,
        spec: &DockerDeploySpec,
        alias: &str,
        progress: &mut Progress,
        keep_failed: bool,
    ) -> Result<(), DeployError> {
        tracing::warn!(target = %spec.name, "reverting to the old release");
        let never = CancellationToken::new();
        for c in progress.stopped_old.drain(..).rev() {
            self.docker
                .start_container(&c.id, None)
                .await
                .map_err(docker_err(format!("restart {}", c.name)))?;
            if let Err(error) = self
                .wait_healthy(
                    &c.id,
                    &c.name,
                    Duration::from_secs(spec.health_timeout_secs),
                    &never,
                )
                .await
            {
                tracing::error!(container = %c.name, %error, "old container did not get healthy again");
            }
            self.connect_to(&c.id, &spec.network, Some(alias)).await?;
        }
        let last = progress.new.len().saturating_sub(1);
        for (i, c) in progress.new.drain(..).enumerate() {
            if c.in_alias {
                self.drain(&c.id, &c.name, spec).await?;
            }
            if keep_failed && i == last {
                self.stop(&c.id, spec.stop_timeout_secs).await?;
            } else {
                self.remove(&c.id).await?;
            }
        }
        Ok(())
    }

    async fn drain_and_stop(
        &self,
        spec: &DockerDeploySpec,
        victim: &ServingContainer,
        cancel: &CancellationToken,
    ) -> Result<(), DeployError> {
        // The drain is not cut short by a cancel: the victim leaves the alias first anyway.
        let _ = cancel;
        self.drain(&victim.id, &victim.name, spec).await?;
        self.stop(&victim.id, spec.stop_timeout_secs).await?;
        // Stopped, it keeps no address that a restart (a revert) could find taken.
        self.disconnect(&victim.id, &spec.network).await
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
        let ip = self.address_on(id, &spec.network).await;
        tracing::info!(container = %name, ip = ip.as_deref().unwrap_or("?"), drain_ms = spec.drain_ms, "draining");
        self.disconnect(id, &spec.network).await?;
        if let Some(ip) = ip {
            let request = NetworkConnectRequest {
                container: id.to_owned(),
                endpoint_config: Some(EndpointSettings {
                    ipam_config: Some(EndpointIpamConfig {
                        ipv4_address: Some(ip),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            };
            if let Err(error) = self.docker.connect_network(&spec.network, request).await {
                // A network without a configured subnet refuses fixed addresses: the drain
                // then only waits, and requests already sent to the container may fail.
                tracing::warn!(container = %name, %error, "cannot keep the address while draining");
            }
        }
        tokio::time::sleep(Duration::from_millis(spec.drain_ms)).await;
        Ok(())
    }

    async fn address_on(&self, id: &str, network: &str) -> Option<String> {
        let inspect = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .ok()?;
        let ip = inspect
            .network_settings?
            .networks?
            .get(network)?
            .ip_address
            .clone()?;
        if ip.is_empty() { None } else { Some(ip) }
    }

    /// Creates the network when missing, with an explicit subnet (the one Docker picks), so
    /// that draining can keep a container's address (Docker only allows fixed addresses on
    /// networks with a configured subnet).
    async fn ensure_network(&self, network: &str) -> Result<(), DeployError> {
        match self.docker.inspect_network(network, None).await {
            Ok(_) => return Ok(()),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(docker_err(format!("inspect network {network}"))(e)),
        }
        let labels = HashMap::from([(MANAGED_LABEL.to_owned(), "true".to_owned())]);
        let request = |ipam: Option<Ipam>| NetworkCreateRequest {
            name: network.to_owned(),
            driver: Some("bridge".to_owned()),
            labels: Some(labels.clone()),
            ipam,
            ..Default::default()
        };
        match self.docker.create_network(request(None)).await {
            Ok(_) => {}
            // Created meanwhile by someone else.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => return Ok(()),
            Err(e) => return Err(docker_err(format!("create network {network}"))(e)),
        }
        let picked = self
            .docker
            .inspect_network(network, None)
            .await
            .ok()
            .and_then(|n| n.ipam)
            .and_then(|i| i.config)
            .and_then(|c| {
                c.into_iter()
                    .find(|c| c.subnet.as_deref().is_some_and(|s| s.contains('.')))
            });
        let Some(config) = picked else { return Ok(()) };
        self.docker
            .remove_network(network)
            .await
            .map_err(docker_err(format!("recreate network {network}")))?;
        let ipam = Ipam {
            config: Some(vec![config]),
            ..Default::default()
        };
        self.docker
            .create_network(request(Some(ipam)))
            .await
            .map_err(docker_err(format!("create network {network}")))?;
        Ok(())
    }

    async fn create(
        &self,
        spec: &DockerDeploySpec,
        secrets: &BTreeMap<String, String>,
        image_id: &str,
        release: u64,
        history_json: &str,
        name: &str,
    ) -> Result<String, DeployError> {
        let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for key in &spec.secret_env {
            let value = secrets
                .get(key)
                .ok_or_else(|| DeployError::MissingSecret(key.clone()))?;
            env.push(format!("{key}={value}"));
        }
        let labels = HashMap::from([
            (TARGET_LABEL.to_owned(), spec.name.clone()),
            (RELEASE_LABEL.to_owned(), release.to_string()),
            (HISTORY_LABEL.to_owned(), history_json.to_owned()),
            (MANAGED_LABEL.to_owned(), "true".to_owned()),
        ]);
        let port_bindings: HashMap<String, Option<Vec<PortBinding>>> = spec
            .ports
            .iter()
            .map(|p| {
                (
                    format!("{p}/tcp"),
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".to_owned()),
                        host_port: Some(String::new()),
                    }]),
                )
            })
            .collect();
        let host_config = HostConfig {
            binds: if spec.volumes.is_empty() {
                None
            } else {
                Some(spec.volumes.clone())
            },
            memory: spec
                .memory_mb
                .map(|mb| (mb.min(i64::MAX as u64 / 1_048_576) * 1_048_576) as i64),
            nano_cpus: spec.cpus.map(|c| (c * 1e9) as i64),
            port_bindings: if port_bindings.is_empty() {
                None
            } else {
                Some(port_bindings)
            },
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(image_id.to_owned()),
            env: Some(env),
            cmd: spec.command.clone(),
            labels: Some(labels),
            exposed_ports: if spec.ports.is_empty() {
                None
            } else {
                Some(spec.ports.iter().map(|p| format!("{p}/tcp")).collect())
            },
            healthcheck: health_config(spec),
            stop_timeout: Some(i64::from(spec.stop_timeout_secs)),
            host_config: Some(host_config),
            // On the network from the start (to reach a database), but not under the alias.
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    spec.network.clone(),
                    EndpointSettings::default(),
                )])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(docker_err(format!("create container {name}")))?;
        Ok(created.id)
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
        for _ in 0..max_polls {
            let inspect = self
                .docker
                .inspect_container(id, None::<InspectContainerOptions>)
                .await
                .map_err(docker_err(format!("inspect {name}")))?;
            let state = inspect.state.clone().unwrap_or_default();
            let health = state.health.as_ref().and_then(|h| h.status);
            if state.running != Some(true) {
                let reason = format!("it exited with code {}", state.exit_code.unwrap_or(-1));
                return Err(self.unhealthy(id, name, reason, &inspect).await);
            }
            match health {
                Some(HealthStatusEnum::HEALTHY) => return Ok(()),
                Some(HealthStatusEnum::UNHEALTHY) => {
                    return Err(self
                        .unhealthy(id, name, "Docker reports it unhealthy".to_owned(), &inspect)
                        .await);
                }
                Some(HealthStatusEnum::NONE) | None
                    if inspect
                        .config
                        .as_ref()
                        .and_then(|c| c.healthcheck.as_ref())
                        .is_none() =>
                {
                    return Err(self
                        .unhealthy(id, name, "it has no health check".to_owned(), &inspect)
                        .await);
                }
                _ => {}
            }
            if started.elapsed() >= timeout {
                return Err(self
                    .unhealthy(
                        id,
                        name,
                        format!("not healthy within {}s", timeout.as_secs()),
                        &inspect,
                    )
                    .await);
            }
            tokio::select! {
                _ = cancel.cancelled() => return Err(DeployError::Cancelled("the old release keeps serving".to_owned())),
                _ = tokio::time::sleep(poll) => {}
            }
        }
        Err(DeployError::Unhealthy(Box::new(Unhealthy {
            container: name.to_owned(),
            reason: "health polling limit reached".to_owned(),
            health_output: Vec::new(),
            logs: String::new(),
        })))
    }

    async fn unhealthy(
        &self,
        id: &str,
        name: &str,
        reason: String,
        inspect: &ContainerInspectResponse,
    ) -> DeployError {
        let health_output = inspect
            .state
            .as_ref()
            .and_then(|s| s.health.as_ref())
            .and_then(|h| h.log.as_ref())
            .map(|log| {
                log.iter()
                    .rev()
                    .take(3)
                    .rev()
                    .map(|r| {
                        format!(
                            "exit {}: {}",
                            r.exit_code.unwrap_or(-1),
                            r.output.as_deref().unwrap_or("").trim()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let logs = self.logs(id, 20).await;
        DeployError::Unhealthy(Box::new(Unhealthy {
            container: name.to_owned(),
            reason,
            health_output,
            logs,
        }))
    }

    /// The last `lines` lines of a container's output (empty when they cannot be read).
    pub async fn logs(&self, id: &str, lines: u32) -> String {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let mut stream = self.docker.logs(id, Some(options));
        let mut out = String::new();
        let mut chunks = 0;
        while let Some(Ok(chunk)) = stream.next().await {
            out.push_str(&chunk.to_string());
            chunks += 1;
            if chunks > 10_000 {
                break;
            }
        }
        out
    }

    async fn join_alias(&self, id: &str, network: &str, alias: &str) -> Result<(), DeployError> {
        self.disconnect(id, network).await?;
        self.connect_to(id, network, Some(alias)).await
    }

    async fn connect_to(
        &self,
        id: &str,
        network: &str,
        alias: Option<&str>,
    ) -> Result<(), DeployError> {
        let request = NetworkConnectRequest {
            container: id.to_owned(),
            endpoint_config: Some(EndpointSettings {
                aliases: alias.map(|a| vec![a.to_owned()]),
                ..Default::default()
            }),
        };
        self.docker
            .connect_network(network, request)
            .await
            .map_err(docker_err(format!("connect {id} to {network}")))
    }

    async fn disconnect(&self, id: &str, network: &str) -> Result<(), DeployError> {
        let request = NetworkDisconnectRequest {
            container: id.to_owned(),
            force: Some(true),
        };
        match self.docker.disconnect_network(network, request).await {
            Ok(()) => Ok(()),
            // Not connected (already drained by an interrupted run).
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 403 | 404,
                ..
            }) => Ok(()),
            Err(e) => Err(docker_err(format!("disconnect {id} from {network}"))(e)),
        }
    }

    async fn stop(&self, id: &str, timeout_secs: u32) -> Result<(), DeployError> {
        let options = StopContainerOptionsBuilder::default()
            .t(i32::try_from(timeout_secs).unwrap_or(10))
            .build();
        match self.docker.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304 | 404,
                ..
            }) => Ok(()),
            Err(e) => Err(docker_err(format!("stop {id}"))(e)),
        }
    }

    async fn remove(&self, id: &str) -> Result<(), DeployError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(false)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(docker_err(format!("remove {id}"))(e)),
        }
    }
}

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

fn health_config(spec: &DockerDeploySpec) -> Option<HealthConfig> {
    let test = match &spec.health {
        HealthCheck::Image => return None,
        HealthCheck::Http { port, path } => {
            let path = if path.starts_with('/') {
                path.clone()
            } else {
                format!("/{path}")
            };
            let url = format!("http://127.0.0.1:{port}{path}");
            // Whichever HTTP client the image has; the URL is built from numbers and a path
            // that is quoted for the shell.
            let quoted = format!("'{}'", url.replace('\'', r"'\''"));
            let script = format!(
                "if command -v wget >/dev/null 2>&1; then wget -q -O /dev/null {quoted}; \
                 elif command -v curl >/dev/null 2>&1; then curl -fsS -o /dev/null {quoted}; \
                 else node -e \"fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))\" {quoted}; fi"
            );
            vec!["CMD-SHELL".to_owned(), script]
        }
        HealthCheck::Command(cmd) => std::iter::once("CMD".to_owned())
            .chain(cmd.iter().cloned())
            .collect(),
    };
    let interval =
        i64::try_from(spec.health_interval_ms.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
    Some(HealthConfig {
        test: Some(test),
        interval: Some(interval),
        timeout: Some(interval.max(1_000_000_000)),
        retries: Some(3),
        // Failures while starting do not count; our own deadline bounds the wait.
        start_period: Some(
            i64::try_from(spec.health_timeout_secs.saturating_mul(1_000_000_000))
                .unwrap_or(i64::MAX),
        ),
        ..Default::default()
    })
}

fn serving(
    inspect: &ContainerInspectResponse,
    id: &str,
    network: &str,
    alias: &str,
) -> Result<ServingContainer, DeployError> {
    let name = inspect
        .name
        .clone()
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_owned();
    let labels = inspect
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default();
    let release = labels
        .get(RELEASE_LABEL)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let history = match labels.get(HISTORY_LABEL) {
        Some(json) => record::parse_history(json).map_err(|source| DeployError::Record {
            container: name.clone(),
            source,
        })?,
        None => Vec::new(),
    };
    let in_alias = inspect
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .and_then(|n| n.get(network))
        .and_then(|e| e.aliases.as_ref())
        .is_some_and(|a| a.iter().any(|a| a == alias));
    Ok(ServingContainer {
        id: id.to_owned(),
        name,
        release,
        running: inspect
            .state
            .as_ref()
            .and_then(|s| s.running)
            .unwrap_or(false),
        in_alias,
        history,
        env: inspect
            .config
            .as_ref()
            .and_then(|c| c.env.clone())
            .unwrap_or_default(),
    })
}

/// The history carried by the newest serving container.
fn current_history(containers: &[ServingContainer]) -> Vec<ReleaseRecord> {
    containers
        .iter()
        .filter(|c| c.running && c.in_alias)
        .max_by_key(|c| c.release)
        .map(|c| c.history.clone())
        .unwrap_or_default()
}
