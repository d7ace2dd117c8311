//! `rollback --with-data` for the Kubernetes target: the cluster is the recorded-API fake of
//! `uplift-kube` (feature `testing`), the database the real PostgreSQL on 127.0.0.1:5432
//! (scripts/services.sh). Every cluster call is journalled with the rows the database held at
//! that moment, which shows the order: no pod of the current release exists once the restore
//! has begun, and the older release starts only on restored data. With `CI=true`, a missing
//! PostgreSQL fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uplift_kube::k8s_openapi::api::apps::v1::Deployment;
use uplift_kube::k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use uplift_kube::testing::{FakeCluster, normal_selector, recorded_pods};
use uplift_kube::{ApiError, ClusterApi, DeployOptions, KubeSpec, render};
use uplift_stages::deploy::{DeployStageError, rollback_kubernetes};
use uplift_stages::deploy_postgres::{self, PgError};
use uplift_testkit::postgres::{Db, MIGRATION, PASSWORD, rows};

mod common;
use common::{Target, items_db};

const IMAGE_V1: &str = "registry.local/backstage@sha256:1111111111111111111111111111111111111111111111111111111111111111";
const IMAGE_V2: &str = "registry.local/backstage@sha256:2222222222222222222222222222222222222222222222222222222222222222";
const ORIGINAL: &str = "1:one,2:two,3:three";
const MIGRATED: &str = "1:ONE,3:three,4:four";

/// The fake cluster, each call journalled with the database's rows at that moment.
struct Watched {
    cluster: FakeCluster,
    database: String,
    journal: Mutex<Vec<(String, String)>>,
}

impl Watched {
    fn note(&self, call: String) {
        let rows = rows(&self.database);
        self.journal.lock().unwrap().push((call, rows));
    }

    fn journal(&self) -> Vec<(String, String)> {
        self.journal.lock().unwrap().clone()
    }
}

fn describe(object: &Value) -> String {
    let mut line = format!(
        "apply {}/{}",
        object["kind"].as_str().unwrap(),
        object["metadata"]["name"].as_str().unwrap()
    );
    if object["kind"] == "Deployment" {
        let image = object
            .pointer("/spec/template/spec/containers/0/image")
            .unwrap()
            .as_str()
            .unwrap();
        let version = if image == IMAGE_V1 { "v1" } else { "v2" };
        line.push_str(&format!(" {version} x{}", object["spec"]["replicas"]));
    }
    line
}

impl ClusterApi for Watched {
    async fn apply(&self, object: &Value) -> Result<(), ApiError> {
        self.note(describe(object));
        self.cluster.apply(object).await
    }
    async fn deployment(&self, ns: &str, name: &str) -> Result<Option<Deployment>, ApiError> {
        self.cluster.deployment(ns, name).await
    }
    async fn pods(&self, ns: &str, selector: &str) -> Result<Vec<Pod>, ApiError> {
        let pods = self.cluster.pods(ns, selector).await?;
        self.note(format!("pods: {}", pods.len()));
        Ok(pods)
    }
    async fn events(&self, ns: &str, name: &str) -> Result<Vec<Event>, ApiError> {
        self.cluster.events(ns, name).await
    }
    async fn logs(&self, ns: &str, pod: &str, tail: u32) -> Result<String, ApiError> {
        self.cluster.logs(ns, pod, tail).await
    }
    async fn config_map(&self, ns: &str, name: &str) -> Result<Option<ConfigMap>, ApiError> {
        self.cluster.config_map(ns, name).await
    }
}

fn options() -> DeployOptions {
    DeployOptions {
        timeout: Duration::from_secs(5),
        poll: Duration::from_millis(1),
        log_lines: 5,
        progress: None,
    }
}

fn spec(image: &str) -> KubeSpec {
    let mut spec = KubeSpec::new("backstage", image);
    spec.replicas = 3;
    spec
}

/// Releases 1 (v1) and 2 (v2) deployed through `uplift_kube::deploy`, release 2 with the dump
/// taken before it; then v2's "migration" changes the data.
async fn two_releases(db: &Db, dir: &std::path::Path) -> Watched {
    let cluster = FakeCluster::default();
    cluster
        .script("backstage", &["deployment-complete.json"])
        .unwrap();
    let cancel = CancellationToken::new();
    let before_v1 = deploy_postgres::backup(&db.target(PASSWORD), dir, "before-1", &cancel)
        .await
        .unwrap();
    uplift_kube::deploy(
        &cluster,
        "backstage",
        IMAGE_V1,
        &render(&spec(IMAGE_V1)).unwrap(),
        Some(before_v1.path.display().to_string()),
        &options(),
    )
    .await
    .unwrap();
    let before_v2 = deploy_postgres::backup(&db.target(PASSWORD), dir, "before-2", &cancel)
        .await
        .unwrap();
    let second = uplift_kube::deploy(
        &cluster,
        "backstage",
        IMAGE_V2,
        &render(&spec(IMAGE_V2)).unwrap(),
        Some(before_v2.path.display().to_string()),
        &options(),
    )
    .await
    .unwrap();
    assert_eq!(
        second.backup.as_deref(),
        Some(before_v2.path.display().to_string().as_str()),
        "the release record carries its backup"
    );
    db.exec(MIGRATION);
    assert_eq!(rows(&db.0), MIGRATED);
    // v2's 3 pods, then 1 terminating, then none.
    let pods = recorded_pods("pods-failing.json").unwrap();
    let selector = normal_selector(&uplift_kube::render::pod_selector("backstage", "backend"));
    cluster.script_pods(
        &selector,
        vec![pods.clone(), pods[..1].to_vec(), Vec::new()],
    );
    Watched {
        cluster,
        database: db.0.clone(),
        journal: Mutex::new(Vec::new()),
    }
}

fn current(api: &Watched) -> String {
    api.cluster.config_maps.lock().unwrap()["backstage-uplift-releases"]
        .data
        .as_ref()
        .unwrap()["current"]
        .clone()
}

#[tokio::test]
async fn rollback_with_data_stops_the_new_release_before_restoring_its_data() {
    let Some(db) = items_db("uplift_k8s_order") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let api = two_releases(&db, dir.path()).await;
    let cancel = CancellationToken::new();
    let back = rollback_kubernetes(
        &api,
        "default",
        "backstage",
        None,
        Some(&db.target(PASSWORD)),
        &options(),
        &cancel,
    )
    .await
    .unwrap();
    assert_eq!(back.id, "1");
    assert_eq!(back.image, IMAGE_V1);
    assert_eq!(
        rows(&db.0),
        ORIGINAL,
        "the dump taken before v2 is restored"
    );
    assert_eq!(current(&api), "1");

    let journal = api.journal();
    let calls: Vec<&str> = journal.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        calls,
        [
            "apply Deployment/backstage v2 x0",
            "pods: 3",
            "pods: 1",
            "pods: 0",
            "apply Service/backstage",
            "apply Deployment/backstage v1 x3",
            "apply PodDisruptionBudget/backstage",
            "apply ConfigMap/backstage-uplift-releases",
        ]
    );
    // While any pod of v2 was reported, the data was v2's: the restore began only after the
    // last one was gone, and v1 started on restored data.
    for (call, rows) in &journal[..4] {
        assert_eq!(rows, MIGRATED, "{call}");
    }
    for (call, rows) in &journal[4..] {
        assert_eq!(rows, ORIGINAL, "{call}");
    }
}

#[tokio::test]
async fn a_failed_restore_starts_the_current_release_again_and_a_missing_dump_touches_nothing() {
    let Some(db) = items_db("uplift_k8s_failed") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let api = two_releases(&db, dir.path()).await;
    let cancel = CancellationToken::new();

    // A refused password: found before anything is stopped.
    let error = rollback_kubernetes(
        &api,
        "default",
        "backstage",
        None,
        Some(&db.target("wrong")),
        &options(),
        &cancel,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, DeployStageError::Restore(PgError::Auth { .. })),
        "{error:?}"
    );
    assert_eq!(api.journal(), Vec::new(), "no cluster call was made");

    // A restore that fails once it runs (a view the dump does not know depends on `items`,
    // so its DROP fails): v2 is stopped, the restore is rolled back, v2 is started again on
    // its untouched data, and release 2 stays current.
    db.exec("create view items_seen as select id from items");
    let error = rollback_kubernetes(
        &api,
        "default",
        "backstage",
        None,
        Some(&db.target(PASSWORD)),
        &options(),
        &cancel,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            error,
            DeployStageError::RestoreFailed {
                source: PgError::Failed { .. },
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .ends_with("the database is unchanged and release 2 was started again"),
        "{error}"
    );
    let calls: Vec<String> = api.journal().into_iter().map(|(c, _)| c).collect();
    assert_eq!(calls.first().unwrap(), "apply Deployment/backstage v2 x0");
    assert_eq!(
        calls[calls.len() - 3..],
        [
            "apply Service/backstage",
            "apply Deployment/backstage v2 x3",
            "apply PodDisruptionBudget/backstage"
        ]
    );
    assert_eq!(rows(&db.0), MIGRATED);
    assert_eq!(current(&api), "2");
    db.exec("drop view items_seen");

    // The dump is gone: refused before anything is stopped.
    api.journal.lock().unwrap().clear();
    std::fs::remove_file(dir.path().join("before-2.dump")).unwrap();
    let error = rollback_kubernetes(
        &api,
        "default",
        "backstage",
        None,
        Some(&db.target(PASSWORD)),
        &options(),
        &cancel,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, DeployStageError::Restore(PgError::Io { .. })),
        "{error:?}"
    );
    assert_eq!(api.journal(), Vec::new(), "no cluster call was made");
    assert_eq!(rows(&db.0), MIGRATED);
}

#[tokio::test]
async fn a_cancel_while_the_pods_stop_starts_the_current_release_again() {
    let Some(db) = items_db("uplift_k8s_cancel") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let api = two_releases(&db, dir.path()).await;
    // v2's pods never go away.
    let pods = recorded_pods("pods-failing.json").unwrap();
    let selector = normal_selector(&uplift_kube::render::pod_selector("backstage", "backend"));
    api.cluster.script_pods(&selector, vec![pods]);
    let cancel = CancellationToken::new();
    let cancelled_at = std::sync::OnceLock::new();
    // Cancelled once the stop has begun (the checks before it are done by then).
    let trigger = async {
        while !api
            .journal()
            .iter()
            .any(|(call, _)| call == "apply Deployment/backstage v2 x0")
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        cancelled_at.get_or_init(std::time::Instant::now);
        cancel.cancel();
    };
    let (database, options) = (db.target(PASSWORD), options());
    let rollback = rollback_kubernetes(
        &api,
        "default",
        "backstage",
        None,
        Some(&database),
        &options,
        &cancel,
    );
    let (error, ()) = tokio::join!(rollback, trigger);
    let error = error.unwrap_err();
    assert!(
        cancelled_at.get().unwrap().elapsed() < Duration::from_secs(3),
        "the cancel ended the wait"
    );
    assert_eq!(
        error.to_string(),
        "cancelled; the database was not touched; release 2 was started again"
    );
    let calls: Vec<String> = api.journal().into_iter().map(|(c, _)| c).collect();
    assert_eq!(calls.first().unwrap(), "apply Deployment/backstage v2 x0");
    assert_eq!(
        calls[calls.len() - 2..],
        [
            "apply Deployment/backstage v2 x3",
            "apply PodDisruptionBudget/backstage"
        ]
    );
    assert_eq!(rows(&db.0), MIGRATED);
    assert_eq!(current(&api), "2");
}
