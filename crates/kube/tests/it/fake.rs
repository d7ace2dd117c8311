//! A [`ClusterApi`] that replays recorded API responses and records what was applied.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Mutex;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use serde_json::Value;
use uplift_kube::api::Items;
use uplift_kube::{ApiError, ClusterApi};

pub fn recorded<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/recorded")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[derive(Default)]
pub struct FakeCluster {
    /// Deployment answers per name, in order; the last one repeats.
    pub deployments: Mutex<BTreeMap<String, VecDeque<Deployment>>>,
    pub applied: Mutex<Vec<Value>>,
    pub config_maps: Mutex<BTreeMap<String, ConfigMap>>,
    pub pods: Vec<Pod>,
    pub events: BTreeMap<String, Vec<Event>>,
    pub logs: BTreeMap<String, String>,
    pub polls: Mutex<u32>,
}

impl FakeCluster {
    pub fn script(&self, name: &str, files: &[&str]) {
        let answers = files.iter().map(|f| recorded::<Deployment>(f)).collect();
        self.deployments
            .lock()
            .unwrap()
            .insert(name.to_owned(), answers);
    }

    pub fn with_failing_pods(mut self) -> Self {
        self.pods = recorded::<Items<Pod>>("pods-failing.json").items;
        self.events.insert(
            "backstage-5f6a7b-crash".into(),
            recorded::<Items<Event>>("events-crash.json").items,
        );
        self.events.insert(
            "backstage-5f6a7b-pull".into(),
            recorded::<Items<Event>>("events-pull.json").items,
        );
        self.logs.insert(
            "backstage-5f6a7b-crash".into(),
            "Loaded config from app-config.yaml\nError: connect ECONNREFUSED 127.0.0.1:5432\n"
                .into(),
        );
        self
    }

    /// The images of the Deployments applied, in order.
    pub fn applied_images(&self) -> Vec<String> {
        self.applied
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v["kind"] == "Deployment")
            .map(|v| {
                v.pointer("/spec/template/spec/containers/0/image")
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    pub fn applied_kinds(&self) -> Vec<String> {
        self.applied
            .lock()
            .unwrap()
            .iter()
            .map(|v| {
                format!(
                    "{}/{}",
                    v["kind"].as_str().unwrap(),
                    v["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    }
}

impl ClusterApi for FakeCluster {
    async fn apply(&self, object: &Value) -> Result<(), ApiError> {
        if object["kind"] == "ConfigMap" {
            let map: ConfigMap = serde_json::from_value(object.clone()).unwrap();
            let name = map.metadata.name.clone().unwrap();
            self.config_maps.lock().unwrap().insert(name, map);
        }
        self.applied.lock().unwrap().push(object.clone());
        Ok(())
    }

    async fn deployment(
        &self,
        _namespace: &str,
        name: &str,
    ) -> Result<Option<Deployment>, ApiError> {
        *self.polls.lock().unwrap() += 1;
        let mut all = self.deployments.lock().unwrap();
        let Some(queue) = all.get_mut(name) else {
            return Ok(None);
        };
        let answer = if queue.len() > 1 {
            queue.pop_front()
        } else {
            queue.front().cloned()
        };
        Ok(answer)
    }

    async fn pods(&self, _namespace: &str, selector: &str) -> Result<Vec<Pod>, ApiError> {
        assert!(
            selector.contains("app.kubernetes.io/name=backstage"),
            "{selector}"
        );
        Ok(self.pods.clone())
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
        Ok(self.config_maps.lock().unwrap().get(name).cloned())
    }
}
