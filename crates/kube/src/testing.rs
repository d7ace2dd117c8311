//! A [`ClusterApi`] that replays recorded API responses and records what was asked and
//! applied, for tests (feature `testing`; here and in `uplift-stages`). The recorded answers
//! are in `tests/it/recorded/` of this crate (see its README for how they were written).

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use serde_json::Value;

use crate::api::{ApiError, ClusterApi, Items};

/// The folder of the recorded answers.
pub fn recorded_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/recorded")
}

/// A recorded answer, decoded.
pub fn recorded<T: serde::de::DeserializeOwned>(name: &str) -> Result<T, ApiError> {
    let path = recorded_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ApiError::Other(format!("read {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|source| ApiError::Decode {
        command: format!("read {name}"),
        source,
    })
}

/// The pods of a recorded pod list.
pub fn recorded_pods(name: &str) -> Result<Vec<Pod>, ApiError> {
    Ok(recorded::<Items<Pod>>(name)?.items)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A label selector with its terms sorted, so that term order does not matter.
pub fn normal_selector(selector: &str) -> String {
    let mut terms: Vec<&str> = selector.split(',').map(str::trim).collect();
    terms.sort_unstable();
    terms.join(",")
}

/// Pops the next answer of a script; the last one repeats.
fn next<T: Clone>(queue: &mut VecDeque<T>) -> Option<T> {
    if queue.len() > 1 {
        queue.pop_front()
    } else {
        queue.front().cloned()
    }
}

/// A cluster of scripted answers.
#[derive(Debug, Default)]
pub struct FakeCluster {
    /// Deployment answers per name, in order; the last one repeats.
    pub deployments: Mutex<BTreeMap<String, VecDeque<Deployment>>>,
    /// Every object applied, in order.
    pub applied: Mutex<Vec<Value>>,
    /// ConfigMaps by name (applied ones are stored here).
    pub config_maps: Mutex<BTreeMap<String, ConfigMap>>,
    /// Pod answers per label selector, in order; the last one repeats.
    pub pod_scripts: Mutex<BTreeMap<String, VecDeque<Vec<Pod>>>>,
    /// The pods of any selector without a script.
    pub pods: Vec<Pod>,
    pub events: BTreeMap<String, Vec<Event>>,
    pub logs: BTreeMap<String, String>,
    /// How many times a Deployment was read.
    pub polls: Mutex<u32>,
    /// Every call, in order: `apply Kind/name`, `deployment NAME`, `pods SELECTOR: N`, ...
    pub journal: Mutex<Vec<String>>,
}

impl FakeCluster {
    /// Scripts the answers for Deployment `name` from recorded files.
    pub fn script(&self, name: &str, files: &[&str]) -> Result<(), ApiError> {
        let answers = files
            .iter()
            .map(|f| recorded::<Deployment>(f))
            .collect::<Result<_, _>>()?;
        lock(&self.deployments).insert(name.to_owned(), answers);
        Ok(())
    }

    /// Scripts the pods listed for `selector` (`k=v,k=v`, in any order).
    pub fn script_pods(&self, selector: &str, answers: Vec<Vec<Pod>>) {
        lock(&self.pod_scripts).insert(normal_selector(selector), answers.into());
    }

    /// Failing pods of `backstage` (CrashLoopBackOff, ImagePullBackOff), their events and logs.
    pub fn with_failing_pods(mut self) -> Result<Self, ApiError> {
        self.pods = recorded::<Items<Pod>>("pods-failing.json")?.items;
        self.events.insert(
            "backstage-5f6a7b-crash".into(),
            recorded::<Items<Event>>("events-crash.json")?.items,
        );
        self.events.insert(
            "backstage-5f6a7b-pull".into(),
            recorded::<Items<Event>>("events-pull.json")?.items,
        );
        self.logs.insert(
            "backstage-5f6a7b-crash".into(),
            "Loaded config from app-config.yaml\nError: connect ECONNREFUSED 127.0.0.1:5432\n"
                .into(),
        );
        Ok(self)
    }

    /// The images of the Deployments applied, in order.
    pub fn applied_images(&self) -> Vec<String> {
        lock(&self.applied)
            .iter()
            .filter(|v| v["kind"] == "Deployment")
            .map(|v| {
                v.pointer("/spec/template/spec/containers/0/image")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned()
            })
            .collect()
    }

    /// `Kind/name` of each object applied, in order.
    pub fn applied_kinds(&self) -> Vec<String> {
        lock(&self.applied)
            .iter()
            .map(|v| {
                format!(
                    "{}/{}",
                    v["kind"].as_str().unwrap_or("?"),
                    v["metadata"]["name"].as_str().unwrap_or("?")
                )
            })
            .collect()
    }

    /// The calls made so far.
    pub fn journal(&self) -> Vec<String> {
        lock(&self.journal).clone()
    }

    fn note(&self, line: String) {
        lock(&self.journal).push(line);
    }
}

impl ClusterApi for FakeCluster {
    async fn delete(&self, kind: &str, _namespace: &str, name: &str) -> Result<(), ApiError> {
        self.note(format!("delete {kind}/{name}"));
        Ok(())
    }

    async fn apply(&self, object: &Value) -> Result<(), ApiError> {
        let mut line = format!(
            "apply {}/{}",
            object["kind"].as_str().unwrap_or("?"),
            object["metadata"]["name"].as_str().unwrap_or("?")
        );
        if object["kind"] == "Deployment" {
            line.push_str(&format!(
                " replicas={} image={}",
                object["spec"]["replicas"],
                object
                    .pointer("/spec/template/spec/containers/0/image")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            ));
        }
        self.note(line);
        if object["kind"] == "ConfigMap" {
            let map: ConfigMap =
                serde_json::from_value(object.clone()).map_err(|source| ApiError::Decode {
                    command: "apply ConfigMap".to_owned(),
                    source,
                })?;
            let name = map.metadata.name.clone().unwrap_or_default();
            lock(&self.config_maps).insert(name, map);
        }
        lock(&self.applied).push(object.clone());
        Ok(())
    }

    async fn deployment(
        &self,
        _namespace: &str,
        name: &str,
    ) -> Result<Option<Deployment>, ApiError> {
        *lock(&self.polls) += 1;
        self.note(format!("deployment {name}"));
        Ok(lock(&self.deployments).get_mut(name).and_then(next))
    }

    async fn pods(&self, _namespace: &str, selector: &str) -> Result<Vec<Pod>, ApiError> {
        let pods = match lock(&self.pod_scripts).get_mut(&normal_selector(selector)) {
            Some(queue) => next(queue).unwrap_or_default(),
            None => self.pods.clone(),
        };
        self.note(format!(
            "pods {}: {}",
            normal_selector(selector),
            pods.len()
        ));
        Ok(pods)
    }

    async fn events(&self, _namespace: &str, name: &str) -> Result<Vec<Event>, ApiError> {
        Ok(self.events.get(name).cloned().unwrap_or_default())
    }

    async fn logs(&self, _namespace: &str, pod: &str, _tail: u32) -> Result<String, ApiError> {
        Ok(self.logs.get(pod).cloned().unwrap_or_default())
    }

    async fn config_map(
        &self,
        _namespace: &str,
        name: &str,
    ) -> Result<Option<ConfigMap>, ApiError> {
        self.note(format!("configmap {name}"));
        Ok(lock(&self.config_maps).get(name).cloned())
    }
}
