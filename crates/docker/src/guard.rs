use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
};

use crate::engine::Engine;
use crate::error::{Error, Result};

/// The label every container, network and volume created for a run carries.
pub const LABEL_RUN_ID: &str = "dev.uplift.run-id";

/// The label of cache volumes: they outlive runs on purpose, so they carry this label (with the
/// cache key) instead of [`LABEL_RUN_ID`].
pub const LABEL_CACHE: &str = "dev.uplift.cache";

/// The identifier of one pipeline run, used as the value of [`LABEL_RUN_ID`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunId(String);

impl RunId {
    /// A run id from a string chosen by the executor.
    pub fn new(id: impl Into<String>) -> Self {
        RunId(id.into())
    }

    /// A fresh run id from the clock and the process id.
    pub fn generate() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        RunId(format!("{:x}-{:x}", nanos, std::process::id()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Default)]
struct Tracked {
    containers: Vec<String>,
    volumes: Vec<String>,
    networks: Vec<String>,
}

impl Tracked {
    fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.volumes.is_empty() && self.networks.is_empty()
    }
}

/// Tracks the engine resources created for one run and removes them: explicitly with
/// [`ResourceGuard::cleanup`], or, if the guard is dropped first (an error, a panic, a cancelled
/// future), from a task spawned on the current tokio runtime.
#[derive(Debug)]
pub struct ResourceGuard {
    engine: Engine,
    run_id: RunId,
    tracked: Arc<Mutex<Tracked>>,
}

/// What a cleanup removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RemovedResources {
    pub containers: usize,
    pub volumes: usize,
    pub networks: usize,
}

impl ResourceGuard {
    /// A guard for `run_id`.
    pub fn new(engine: Engine, run_id: RunId) -> Self {
        ResourceGuard {
            engine,
            run_id,
            tracked: Arc::default(),
        }
    }

    /// The run this guard belongs to.
    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The labels to put on every resource of this run.
    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([(LABEL_RUN_ID.to_owned(), self.run_id.0.clone())])
    }

    /// Starts tracking a container.
    pub fn track_container(&self, id: &str) {
        self.with(|t| t.containers.push(id.to_owned()));
    }

    /// Stops tracking a container (it was removed).
    pub fn forget_container(&self, id: &str) {
        self.with(|t| t.containers.retain(|c| c != id));
    }

    /// Starts tracking a volume.
    pub fn track_volume(&self, name: &str) {
        self.with(|t| t.volumes.push(name.to_owned()));
    }

    /// Starts tracking a network.
    pub fn track_network(&self, id: &str) {
        self.with(|t| t.networks.push(id.to_owned()));
    }

    fn with(&self, f: impl FnOnce(&mut Tracked)) {
        // A poisoned lock only means another thread panicked while pushing to a Vec: the data
        // is still usable.
        let mut guard = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard);
    }

    /// Removes everything tracked now.
    pub async fn cleanup(&self) -> RemovedResources {
        let tracked = {
            let mut guard = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *guard)
        };
        remove_tracked(&self.engine, tracked).await
    }
}

impl Drop for ResourceGuard {
    fn drop(&mut self) {
        let tracked = {
            let mut guard = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *guard)
        };
        if tracked.is_empty() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let engine = self.engine.clone();
                tracing::debug!(run_id = %self.run_id, "guard dropped: removing run resources");
                handle.spawn(async move {
                    remove_tracked(&engine, tracked).await;
                });
            }
            Err(_) => tracing::warn!(
                run_id = %self.run_id,
                containers = tracked.containers.len(),
                "guard dropped outside a tokio runtime: resources left for `cleanup`"
            ),
        }
    }
}

async fn remove_tracked(engine: &Engine, tracked: Tracked) -> RemovedResources {
    let docker = engine.docker();
    let mut removed = RemovedResources::default();
    for id in tracked.containers {
        let opts = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match docker.remove_container(&id, Some(opts)).await {
            Ok(()) => removed.containers += 1,
            Err(e) => tracing::debug!(container = %id, error = %e, "remove container"),
        }
    }
    for name in tracked.volumes {
        let opts = RemoveVolumeOptionsBuilder::new().force(true).build();
        match docker.remove_volume(&name, Some(opts)).await {
            Ok(()) => removed.volumes += 1,
            Err(e) => tracing::debug!(volume = %name, error = %e, "remove volume"),
        }
    }
    for id in tracked.networks {
        match docker.remove_network(&id).await {
            Ok(()) => removed.networks += 1,
            Err(e) => tracing::debug!(network = %id, error = %e, "remove network"),
        }
    }
    removed
}

/// Removes every container, volume and network labelled with `run_id` (the `cleanup` path for a
/// run that crashed before its guards ran).
pub async fn remove_run_resources(engine: &Engine, run_id: &RunId) -> Result<RemovedResources> {
    let docker = engine.docker();
    let label = format!("{LABEL_RUN_ID}={}", run_id.0);
    let filters = HashMap::from([("label", vec![label.as_str()])]);
    let mut tracked = Tracked::default();

    let opts = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let containers = docker
        .list_containers(Some(opts))
        .await
        .map_err(|e| Error::engine("list containers of the run", e))?;
    tracked.containers = containers.into_iter().filter_map(|c| c.id).collect();

    let opts = ListVolumesOptionsBuilder::new().filters(&filters).build();
    let volumes = docker
        .list_volumes(Some(opts))
        .await
        .map_err(|e| Error::engine("list volumes of the run", e))?;
    tracked.volumes = volumes
        .volumes
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.name)
        .collect();

    let opts = ListNetworksOptionsBuilder::new().filters(&filters).build();
    let networks = docker
        .list_networks(Some(opts))
        .await
        .map_err(|e| Error::engine("list networks of the run", e))?;
    tracked.networks = networks.into_iter().filter_map(|n| n.id).collect();

    Ok(remove_tracked(engine, tracked).await)
}
