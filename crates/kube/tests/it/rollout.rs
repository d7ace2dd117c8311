//! Apply, wait and rollback against recorded API responses.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use uplift_kube::rollout::{self, RolloutStatus};
use uplift_kube::{DeployOptions, Error, deploy, plan, render, rollback};

use crate::render::single;
use uplift_kube::testing::{FakeCluster, recorded};

const IMAGE_V3: &str = "registry.local/backstage@sha256:3333333333333333333333333333333333333333333333333333333333333333";

fn options() -> DeployOptions {
    DeployOptions {
        timeout: Duration::from_secs(5),
        poll: Duration::from_millis(1),
        log_lines: 20,
        progress: None,
    }
}

fn spec3() -> uplift_kube::KubeSpec {
    let mut spec = single();
    spec.replicas = 3;
    spec
}

#[test]
fn status_follows_kubectl_rollout_status() {
    let status = |f: &str| rollout::status(&recorded::<Deployment>(f).unwrap());
    assert_eq!(
        status("deployment-observing.json"),
        RolloutStatus::Waiting("waiting for deployment spec update to be observed".into())
    );
    assert_eq!(
        status("deployment-updating.json"),
        RolloutStatus::Waiting("1 out of 3 new replicas of \"backstage\" have been updated".into())
    );
    assert_eq!(
        status("deployment-old-terminating.json"),
        RolloutStatus::Waiting("1 old replicas of \"backstage\" are pending termination".into())
    );
    assert_eq!(status("deployment-complete.json"), RolloutStatus::Done);
    assert_eq!(
        status("deployment-deadline.json"),
        RolloutStatus::Failed("deployment \"backstage\" exceeded its progress deadline".into())
    );
}

#[tokio::test]
async fn first_deploy_applies_waits_and_records() {
    let cluster = FakeCluster::default();
    cluster
        .script(
            "backstage",
            &[
                "deployment-observing.json",
                "deployment-updating.json",
                "deployment-old-terminating.json",
                "deployment-complete.json",
            ],
        )
        .unwrap();
    let manifests = render(&spec3()).unwrap();
    let record = deploy(
        &cluster,
        "backstage",
        &spec3().image,
        &manifests,
        Some("/runs/1/db.dump".into()),
        &options(),
    )
    .await
    .unwrap();
    assert_eq!(record.id, "1");
    assert_eq!(record.previous, None);
    assert_eq!(*cluster.polls.lock().unwrap(), 4);
    assert_eq!(
        cluster.applied_kinds(),
        vec![
            "Service/backstage",
            "Deployment/backstage",
            "PodDisruptionBudget/backstage",
            "ConfigMap/backstage-uplift-releases"
        ]
    );
    let store = cluster.config_maps.lock().unwrap()["backstage-uplift-releases"].clone();
    let data = store.data.unwrap();
    assert_eq!(data["current"], "1");
    assert!(data["release-1"].contains("/runs/1/db.dump"));
}

#[tokio::test]
async fn failed_rollout_prints_diagnostics_and_reapplies_the_previous_release() {
    let cluster = FakeCluster::default().with_failing_pods().unwrap();
    cluster
        .script("backstage", &["deployment-complete.json"])
        .unwrap();
    let v2 = render(&spec3()).unwrap();
    deploy(&cluster, "backstage", &spec3().image, &v2, None, &options())
        .await
        .unwrap();

    // Release 2 (v3 image) never progresses; after re-applying release 1 the rollout completes.
    let mut spec = spec3();
    spec.image = IMAGE_V3.into();
    let v3 = render(&spec).unwrap();
    cluster
        .script(
            "backstage",
            &[
                "deployment-updating.json",
                "deployment-deadline.json",
                "deployment-complete.json",
            ],
        )
        .unwrap();
    let error = deploy(&cluster, "backstage", IMAGE_V3, &v3, None, &options())
        .await
        .unwrap_err();
    let Error::Rollout(failure) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(failure.rolled_back_to.as_deref(), Some("1"));
    assert_eq!(failure.rollback_error, None);
    assert_eq!(
        error.to_string(),
        "roll out backstage: deployment \"backstage\" exceeded its progress deadline"
    );
    insta::assert_snapshot!("diagnostics", failure.diagnostics.to_string());
    // Re-applied the previous manifest (never `rollout undo`): v2, then v3, then v2 again.
    let images = cluster.applied_images();
    assert_eq!(
        images,
        vec![spec3().image, IMAGE_V3.to_owned(), spec3().image]
    );
    // The failed release is not recorded; release 1 stays current.
    let data = cluster.config_maps.lock().unwrap()["backstage-uplift-releases"]
        .data
        .clone()
        .unwrap();
    assert_eq!(data["current"], "1");
    assert!(!data.contains_key("release-2"));
}

/// Every rollout report as `(deployment, ready, wanted, done)`.
type Reports = std::sync::Arc<std::sync::Mutex<Vec<(String, u64, u64, bool)>>>;

/// A progress receiver that records every report.
fn recording() -> (uplift_kube::ProgressFn, Reports) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let progress: uplift_kube::ProgressFn = std::sync::Arc::new(move |p| {
        sink.lock()
            .unwrap()
            .push((p.deployment, p.ready, p.wanted, p.done));
    });
    (progress, seen)
}

#[tokio::test]
async fn rollouts_report_ready_replicas_at_every_poll_and_end_with_one_done() {
    let cluster = FakeCluster::default().with_failing_pods().unwrap();
    cluster
        .script(
            "backstage",
            &[
                "deployment-observing.json",
                "deployment-updating.json",
                "deployment-old-terminating.json",
                "deployment-complete.json",
            ],
        )
        .unwrap();
    let (progress, seen) = recording();
    let options = DeployOptions {
        progress: Some(progress),
        ..options()
    };
    let v2 = render(&spec3()).unwrap();
    deploy(&cluster, "backstage", &spec3().image, &v2, None, &options)
        .await
        .unwrap();
    let b = |ready, done| ("backstage".to_owned(), ready, 3, done);
    // Not observed yet counts as none ready, whatever the old status says.
    assert_eq!(
        *seen.lock().unwrap(),
        vec![b(0, false), b(1, false), b(3, false), b(3, true)]
    );

    // A failed rollout ends its own report, then the rollback's rollout reports its own end.
    seen.lock().unwrap().clear();
    let mut spec = spec3();
    spec.image = IMAGE_V3.into();
    cluster
        .script(
            "backstage",
            &[
                "deployment-updating.json",
                "deployment-deadline.json",
                "deployment-complete.json",
            ],
        )
        .unwrap();
    deploy(
        &cluster,
        "backstage",
        IMAGE_V3,
        &render(&spec).unwrap(),
        None,
        &options,
    )
    .await
    .unwrap_err();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![b(1, false), b(1, true), b(3, true)]
    );
}

#[tokio::test]
async fn failed_first_deploy_has_nothing_to_roll_back_to() {
    let cluster = FakeCluster::default().with_failing_pods().unwrap();
    cluster
        .script("backstage", &["deployment-deadline.json"])
        .unwrap();
    let error = deploy(
        &cluster,
        "backstage",
        &spec3().image,
        &render(&spec3()).unwrap(),
        None,
        &options(),
    )
    .await
    .unwrap_err();
    let Error::Rollout(failure) = error else {
        panic!()
    };
    assert_eq!(failure.rolled_back_to, None);
    assert_eq!(
        failure.diagnostics.pods.len(),
        2,
        "the ready pod is left out"
    );
}

#[tokio::test]
async fn wait_is_bounded_by_its_timeout() {
    let cluster = FakeCluster::default();
    cluster
        .script("backstage", &["deployment-updating.json"])
        .unwrap();
    let options = DeployOptions {
        timeout: Duration::from_millis(30),
        poll: Duration::from_millis(5),
        log_lines: 5,
        progress: None,
    };
    let result = rollout::wait(
        &cluster,
        "default",
        "backstage",
        options.timeout,
        options.poll,
    )
    .await
    .unwrap();
    let failure = result.unwrap_err();
    assert!(
        failure
            .to_string()
            .starts_with("timed out waiting for the rollout"),
        "{failure}"
    );
    let polls = *cluster.polls.lock().unwrap();
    assert!((2..=8).contains(&polls), "{polls} polls");
}

#[tokio::test]
async fn rollback_and_plan_use_the_release_records() {
    let cluster = FakeCluster::default();
    cluster
        .script("backstage", &["deployment-complete.json"])
        .unwrap();
    let v2 = render(&spec3()).unwrap();
    deploy(&cluster, "backstage", &spec3().image, &v2, None, &options())
        .await
        .unwrap();
    let mut spec = spec3();
    spec.image = IMAGE_V3.into();
    spec.replicas = 4;
    let v3 = render(&spec).unwrap();

    let planned = plan(&cluster, "backstage", &v3).await.unwrap();
    assert_eq!(planned.comparison(), "diff against release 1 (current):");
    insta::assert_snapshot!("plan_diff", planned.diff.unwrap());
    assert_eq!(
        planned.manifests,
        uplift_kube::to_yaml(&v3.to_values().unwrap()).unwrap()
    );
    let same = plan(&cluster, "backstage", &v2).await.unwrap();
    assert_eq!(same.diff, None);
    assert_eq!(same.comparison(), "no change against release 1 (current)");

    let second = deploy(&cluster, "backstage", IMAGE_V3, &v3, None, &options())
        .await
        .unwrap();
    assert_eq!(second.previous.as_deref(), Some("1"));
    let back = rollback(&cluster, "default", "backstage", None, &options())
        .await
        .unwrap();
    assert_eq!(back.id, "1");
    assert_eq!(cluster.applied_images().last().unwrap(), &spec3().image);
    let data = cluster.config_maps.lock().unwrap()["backstage-uplift-releases"]
        .data
        .clone()
        .unwrap();
    assert_eq!(data["current"], "1");
    // Forward again by name.
    let again = rollback(&cluster, "default", "backstage", Some("2"), &options())
        .await
        .unwrap();
    assert_eq!(again.image, IMAGE_V3);
    let missing = rollback(&cluster, "default", "backstage", Some("9"), &options())
        .await
        .unwrap_err();
    assert_eq!(missing.to_string(), "no release record 9 for backstage");
}

#[tokio::test]
async fn stop_scales_every_deployment_to_zero_and_waits_until_no_pod_is_left() {
    let cluster = FakeCluster::default();
    let pods =
        recorded::<uplift_kube::api::Items<k8s_openapi::api::core::v1::Pod>>("pods-failing.json")
            .unwrap()
            .items;
    let selector = uplift_kube::testing::normal_selector(&uplift_kube::render::pod_selector(
        "backstage",
        "backend",
    ));
    cluster.script_pods(
        &selector,
        vec![pods.clone(), pods[..1].to_vec(), Vec::new()],
    );
    let values = render(&spec3()).unwrap().to_values().unwrap();
    uplift_kube::stop(&cluster, "default", &values, &options())
        .await
        .unwrap();
    let applied = cluster.applied.lock().unwrap().clone();
    assert_eq!(applied.len(), 1, "only the Deployment is re-applied");
    assert_eq!(applied[0]["spec"]["replicas"], 0);
    // The rest of the object is kept (a partial server-side apply would drop it).
    let mut expected = values
        .iter()
        .find(|v| v["kind"] == "Deployment")
        .unwrap()
        .clone();
    expected["spec"]["replicas"] = 0.into();
    assert_eq!(applied[0], expected);
    assert_eq!(
        cluster.journal()[1..],
        [
            format!("pods {selector}: 3"),
            format!("pods {selector}: 1"),
            format!("pods {selector}: 0"),
        ]
    );

    // Pods that never go away: a bounded wait and an error naming the Deployment.
    let stuck = FakeCluster::default();
    stuck.script_pods(&selector, vec![pods]);
    let options = DeployOptions {
        timeout: Duration::from_millis(30),
        poll: Duration::from_millis(5),
        log_lines: 5,
        progress: None,
    };
    let error = uplift_kube::stop(&stuck, "default", &values, &options)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "stop backstage: 3 pod(s) still there when the wait ended"
    );
    let polls = stuck
        .journal()
        .iter()
        .filter(|l| l.starts_with("pods"))
        .count();
    assert!((2..=8).contains(&polls), "{polls} polls");
}

/// A cluster that cannot be reached, as kubectl reports it.
struct Unreachable;

impl uplift_kube::ClusterApi for Unreachable {
    async fn apply(&self, _: &serde_json::Value) -> Result<(), uplift_kube::ApiError> {
        panic!("a plan never applies")
    }
    async fn deployment(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Option<Deployment>, uplift_kube::ApiError> {
        panic!("a plan reads no Deployment")
    }
    async fn pods(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Vec<k8s_openapi::api::core::v1::Pod>, uplift_kube::ApiError> {
        panic!("a plan reads no pod")
    }
    async fn events(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Vec<k8s_openapi::api::core::v1::Event>, uplift_kube::ApiError> {
        panic!("a plan reads no event")
    }
    async fn logs(&self, _: &str, _: &str, _: u32) -> Result<String, uplift_kube::ApiError> {
        panic!("a plan reads no log")
    }
    async fn config_map(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Option<k8s_openapi::api::core::v1::ConfigMap>, uplift_kube::ApiError> {
        Err(uplift_kube::ApiError::Failed {
            command: "kubectl get configmap".into(),
            status: "exit status: 1".into(),
            stderr: "E1128 memcache.go:265 couldn't get current server API group list\nThe connection to the server localhost:8080 was refused - did you specify the right host or port?".into(),
        })
    }
}

#[tokio::test]
async fn plan_without_a_cluster_shows_the_manifests_and_says_why_there_is_no_diff() {
    let manifests = render(&spec3()).unwrap();
    let planned = plan(&Unreachable, "backstage", &manifests).await.unwrap();
    assert_eq!(planned.diff, None);
    assert_eq!(
        planned.manifests,
        uplift_kube::to_yaml(&manifests.to_values().unwrap()).unwrap()
    );
    assert_eq!(
        planned.comparison(),
        "previous release unknown, no diff shown: the release records could not be read \
         (The connection to the server localhost:8080 was refused - did you specify the right host or port?)"
    );
    // A cluster with no record: everything is new.
    let empty = plan(&FakeCluster::default(), "backstage", &manifests)
        .await
        .unwrap();
    assert_eq!(
        empty.comparison(),
        "no release recorded yet: every object is new"
    );
}

#[tokio::test]
async fn rolling_back_from_split_backends_deletes_the_objects_only_the_newer_release_has() {
    let cluster = FakeCluster::default();
    let single_manifests = render(&single()).unwrap();
    let split_spec = crate::render::split();
    let split_manifests = render(&split_spec).unwrap();
    let deployments = |m: &uplift_kube::Manifests| -> Vec<String> {
        m.to_values()
            .unwrap()
            .iter()
            .filter(|v| v["kind"] == "Deployment")
            .map(|v| v["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    for name in deployments(&single_manifests)
        .into_iter()
        .chain(deployments(&split_manifests))
    {
        cluster
            .script(&name, &["deployment-complete.json"])
            .unwrap();
    }
    deploy(
        &cluster,
        "backstage",
        &single().image,
        &single_manifests,
        None,
        &options(),
    )
    .await
    .unwrap();
    deploy(
        &cluster,
        "backstage",
        &split_spec.image,
        &split_manifests,
        None,
        &options(),
    )
    .await
    .unwrap();
    let before = cluster.journal().len();

    let record = rollback(&cluster, "default", "backstage", None, &options())
        .await
        .unwrap();
    assert_eq!(record.id, "1");
    let journal = cluster.journal();
    let deleted: Vec<&String> = journal[before..]
        .iter()
        .filter(|l| l.starts_with("delete "))
        .collect();
    insta::assert_debug_snapshot!("split_rollback_deletes", deleted);
    // Nothing the older release has is deleted, and the deletions come after it serves again.
    for line in &deleted {
        let object = line.trim_start_matches("delete ");
        assert!(
            !journal[before..]
                .iter()
                .any(|l| l.starts_with(&format!("apply {object}"))),
            "{object} belongs to the older release"
        );
    }
    let last_apply = journal[before..]
        .iter()
        .rposition(|l| l.starts_with("apply Deployment/"))
        .unwrap();
    let first_delete = journal[before..]
        .iter()
        .position(|l| l.starts_with("delete "))
        .unwrap();
    assert!(first_delete > last_apply, "{journal:#?}");
}

#[tokio::test]
async fn kubectl_deletes_one_object_and_forgives_its_absence() {
    use std::os::unix::fs::PermissionsExt;
    use uplift_kube::{ClusterApi, Kubectl};
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    let script = dir.path().join("kubectl");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> '{}'\n", calls.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let api = Kubectl {
        binary: Some(script),
        ..Kubectl::default()
    };
    api.delete("Deployment", "portal", "backstage-catalog")
        .await
        .unwrap();
    let line = std::fs::read_to_string(&calls).unwrap();
    assert!(
        line.trim_end().ends_with(
            "delete deployment/backstage-catalog --namespace portal --ignore-not-found --wait=false"
        ),
        "{line}"
    );
}
