//! A [`ContainerApi`] held in memory, for tests of the rollout (feature `testing`; here and in
//! `uplift-stages`): containers with labels, networks and aliases, health by image, scripted
//! failures, and a journal of every call.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::DeployError;
use super::api::{ContainerApi, ContainerInfo, Endpoint, Health, HealthStatus, ImageInfo, Replica};

/// One container of the fake host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeContainer {
    pub info: ContainerInfo,
    pub image_id: String,
    /// A record container (never started).
    pub record: bool,
}

/// The fake host's state.
#[derive(Debug, Default)]
pub struct FakeState {
    /// Images by reference and by id.
    pub images: BTreeMap<String, ImageInfo>,
    /// Image ids whose containers never get healthy (Docker says `unhealthy`).
    pub never_healthy: BTreeSet<String>,
    /// Image ids whose containers stay `starting` (until the health timeout).
    pub slow: BTreeSet<String>,
    pub networks: BTreeSet<String>,
    /// By id.
    pub containers: BTreeMap<String, FakeContainer>,
    /// Every call, in order: `create NAME`, `start NAME`, `connect NAME alias`, ...
    pub journal: Vec<String>,
    /// Calls that fail once, by the start of their journal entry (`stop portal-1-2`).
    pub fail: Vec<String>,
    /// The call (by the start of its journal entry) that never returns: a run killed there.
    pub hang: Option<String>,
    next: u64,
}

/// A Docker host in memory.
#[derive(Debug, Default)]
pub struct FakeEngine {
    pub state: Mutex<FakeState>,
}

fn fake_error(what: &str) -> DeployError {
    DeployError::Docker {
        action: what.to_owned(),
        source: bollard::errors::Error::DockerResponseServerError {
            status_code: 500,
            message: "the fake engine was told to fail".to_owned(),
        },
    }
}

impl FakeEngine {
    /// A host holding `images` (`reference`, each with a `HEALTHCHECK`; id `sha256:<reference>`).
    pub fn with_images(images: &[&str]) -> Self {
        let engine = Self::default();
        {
            let mut state = engine.lock();
            for reference in images {
                let info = ImageInfo {
                    id: format!("sha256:{reference}"),
                    has_healthcheck: true,
                };
                state.images.insert(info.id.clone(), info.clone());
                state.images.insert((*reference).to_owned(), info);
            }
        }
        engine
    }

    pub fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The journal so far.
    pub fn journal(&self) -> Vec<String> {
        self.lock().journal.clone()
    }

    /// `name` of each replica running under `alias` on `network`, sorted.
    pub fn serving(&self, network: &str, alias: &str) -> Vec<String> {
        let state = self.lock();
        let mut names: Vec<String> = state
            .containers
            .values()
            .filter(|c| {
                c.info.running
                    && c.info
                        .networks
                        .get(network)
                        .is_some_and(|a| a.iter().any(|a| a == alias))
            })
            .map(|c| c.info.name.clone())
            .collect();
        names.sort();
        names
    }

    /// `name state` of every container (`running`, `stopped`, `record`), sorted by name.
    pub fn containers(&self) -> Vec<String> {
        let state = self.lock();
        let mut lines: Vec<String> = state
            .containers
            .values()
            .map(|c| {
                let what = match (c.record, c.info.running) {
                    (true, _) => "record",
                    (false, true) => "running",
                    (false, false) => "stopped",
                };
                format!("{} {what}", c.info.name)
            })
            .collect();
        lines.sort();
        lines
    }

    /// Stops every replica (an outage, or a host restart).
    pub fn stop_all(&self) {
        for c in self.lock().containers.values_mut() {
            c.info.running = false;
        }
    }

    /// Removes every replica, keeping the record containers.
    pub fn remove_replicas(&self) {
        self.lock().containers.retain(|_, c| c.record);
    }

    /// Journals `entry`; fails when it is scripted to, hangs when it is the `hang` call.
    fn call(&self, entry: String) -> impl Future<Output = Result<(), DeployError>> + Send {
        let outcome = {
            let mut state = self.lock();
            state.journal.push(entry.clone());
            if state.hang.as_deref().is_some_and(|h| entry.starts_with(h)) {
                None
            } else if let Some(at) = state
                .fail
                .iter()
                .position(|f| entry.starts_with(f.as_str()))
            {
                state.fail.remove(at);
                Some(Err(fake_error(&entry)))
            } else {
                Some(Ok(()))
            }
        };
        async move {
            match outcome {
                Some(result) => result,
                None => std::future::pending().await,
            }
        }
    }

    fn name_of(&self, id: &str) -> String {
        self.lock()
            .containers
            .get(id)
            .map_or_else(|| id.to_owned(), |c| c.info.name.clone())
    }

    fn insert(&self, name: &str, container: FakeContainer) -> Result<String, DeployError> {
        let mut state = self.lock();
        if state.containers.values().any(|c| c.info.name == name) {
            return Err(DeployError::Docker {
                action: format!("create container {name}"),
                source: bollard::errors::Error::DockerResponseServerError {
                    status_code: 409,
                    message: format!("the name {name} is in use"),
                },
            });
        }
        state.next += 1;
        let id = format!("id{}", state.next);
        let mut container = container;
        container.info.id = id.clone();
        state.containers.insert(id.clone(), container);
        Ok(id)
    }

    fn with_container(&self, id: &str, change: impl FnOnce(&mut FakeContainer)) {
        if let Some(c) = self.lock().containers.get_mut(id) {
            change(c);
        }
    }
}

impl ContainerApi for FakeEngine {
    async fn image(&self, reference: &str) -> Result<ImageInfo, DeployError> {
        self.call(format!("image {reference}")).await?;
        self.lock()
            .images
            .get(reference)
            .cloned()
            .ok_or_else(|| DeployError::ImageMissing(reference.to_owned()))
    }

    async fn ensure_network(&self, network: &str) -> Result<(), DeployError> {
        self.call(format!("network {network}")).await?;
        self.lock().networks.insert(network.to_owned());
        Ok(())
    }

    async fn containers(
        &self,
        label: &str,
        value: &str,
    ) -> Result<Vec<ContainerInfo>, DeployError> {
        self.call("list".to_owned()).await?;
        Ok(self
            .lock()
            .containers
            .values()
            .filter(|c| c.info.labels.get(label).is_some_and(|v| v == value))
            .map(|c| c.info.clone())
            .collect())
    }

    async fn create(&self, replica: Replica<'_>) -> Result<String, DeployError> {
        self.call(format!("create {}", replica.name)).await?;
        let info = ContainerInfo {
            id: String::new(),
            name: replica.name.to_owned(),
            labels: replica.labels.clone(),
            running: false,
            networks: HashMap::from([(replica.spec.network.clone(), Vec::new())]),
            env: replica.env.to_vec(),
        };
        let container = FakeContainer {
            info,
            image_id: replica.image_id.to_owned(),
            record: false,
        };
        self.insert(replica.name, container)
    }

    async fn create_record(
        &self,
        name: &str,
        image_id: &str,
        labels: &HashMap<String, String>,
    ) -> Result<(), DeployError> {
        self.call(format!("record {name}")).await?;
        if !self.lock().images.contains_key(image_id) {
            return Err(DeployError::ImageMissing(image_id.to_owned()));
        }
        let info = ContainerInfo {
            name: name.to_owned(),
            labels: labels.clone(),
            ..ContainerInfo::default()
        };
        let container = FakeContainer {
            info,
            image_id: image_id.to_owned(),
            record: true,
        };
        self.insert(name, container).map(|_| ())
    }

    async fn start(&self, id: &str) -> Result<(), DeployError> {
        self.call(format!("start {}", self.name_of(id))).await?;
        self.with_container(id, |c| c.info.running = true);
        Ok(())
    }

    async fn health(&self, id: &str) -> Result<Health, DeployError> {
        self.call(format!("health {}", self.name_of(id))).await?;
        let state = self.lock();
        let Some(c) = state.containers.get(id) else {
            return Err(fake_error(&format!("inspect {id}: no such container")));
        };
        let status = if state.never_healthy.contains(&c.image_id) {
            HealthStatus::Unhealthy
        } else if state.slow.contains(&c.image_id) {
            HealthStatus::Starting
        } else {
            HealthStatus::Healthy
        };
        Ok(Health {
            running: c.info.running,
            exit_code: if c.info.running { 0 } else { 137 },
            status,
            probes: vec!["exit 1: connection refused".to_owned()],
        })
    }

    async fn logs(&self, id: &str, _lines: u32) -> String {
        format!("logs of {}", self.name_of(id))
    }

    async fn address(&self, id: &str, network: &str) -> Option<String> {
        let state = self.lock();
        let c = state.containers.get(id)?;
        c.info
            .networks
            .contains_key(network)
            .then(|| format!("10.0.0.{}", id.trim_start_matches("id")))
    }

    async fn connect(
        &self,
        id: &str,
        network: &str,
        endpoint: Endpoint,
    ) -> Result<(), DeployError> {
        let how = match &endpoint {
            Endpoint::Alias(alias) => format!("alias {alias}"),
            Endpoint::Address(_) => "address".to_owned(),
        };
        self.call(format!("connect {} {how}", self.name_of(id)))
            .await?;
        let aliases = match endpoint {
            Endpoint::Alias(alias) => vec![alias],
            Endpoint::Address(_) => Vec::new(),
        };
        self.with_container(id, |c| {
            c.info.networks.insert(network.to_owned(), aliases);
        });
        Ok(())
    }

    async fn disconnect(&self, id: &str, network: &str) -> Result<(), DeployError> {
        self.call(format!("disconnect {}", self.name_of(id)))
            .await?;
        self.with_container(id, |c| {
            c.info.networks.remove(network);
        });
        Ok(())
    }

    async fn stop(&self, id: &str, _timeout_secs: u32) -> Result<(), DeployError> {
        self.call(format!("stop {}", self.name_of(id))).await?;
        self.with_container(id, |c| c.info.running = false);
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), DeployError> {
        self.call(format!("remove {}", self.name_of(id))).await?;
        self.lock().containers.remove(id);
        Ok(())
    }
}
