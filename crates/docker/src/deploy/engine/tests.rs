//! `roll`, `replace_all` and `revert` against the fake engine: every failure a rollout can
//! meet, with what serves afterwards and what is recorded. Time is paused: health polls and
//! drains take no real time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::deploy::testing::FakeEngine;

const NET: &str = "portal-net";

fn spec(image: &str) -> DockerDeploySpec {
    let mut spec = DockerDeploySpec::new("portal", image, NET);
    spec.replicas = 3;
    spec.health = HealthCheck::Image;
    spec.health_timeout_secs = 5;
    spec.drain_ms = 100;
    spec
}

struct Fixture {
    deployer: Deployer<FakeEngine>,
    progress: Arc<Mutex<Vec<RolloutProgress>>>,
    _locks: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let locks = tempfile::tempdir().unwrap();
    let progress = Arc::new(Mutex::new(Vec::new()));
    let sink = progress.clone();
    let deployer = Deployer::with_api(FakeEngine::with_images(&["app:1", "app:2", "app:3"]))
        .with_lock_dir(locks.path())
        .with_progress(move |p| sink.lock().unwrap().push(p));
    Fixture {
        deployer,
        progress,
        _locks: locks,
    }
}

impl Fixture {
    fn fake(&self) -> &FakeEngine {
        self.deployer.api()
    }

    async fn deploy(&self, image: &str) -> Result<DeployReport, DeployError> {
        self.deploy_with(image, Some(format!("dump-before-{image}")))
            .await
    }

    async fn deploy_with(
        &self,
        image: &str,
        backup: Option<String>,
    ) -> Result<DeployReport, DeployError> {
        let none = BTreeMap::new();
        self.deployer
            .deploy(&spec(image), &none, backup, &CancellationToken::new())
            .await
    }

    async fn rollback(&self, to: Option<u64>) -> Result<DeployReport, DeployError> {
        self.deployer
            .rollback(
                "portal",
                NET,
                "portal",
                to,
                &BTreeMap::new(),
                &CancellationToken::new(),
            )
            .await
    }

    fn serving(&self) -> Vec<String> {
        self.fake().serving(NET, "portal")
    }

    async fn history(&self) -> Vec<u64> {
        let history = self.deployer.history(&spec("app:1")).await.unwrap();
        history.iter().map(|r| r.id).collect()
    }

    fn last_progress(&self) -> RolloutProgress {
        self.progress.lock().unwrap().last().cloned().unwrap()
    }
}

fn names(release: u64) -> Vec<String> {
    (0..3).map(|i| format!("portal-{release}-{i}")).collect()
}

#[tokio::test(start_paused = true)]
async fn a_roll_replaces_every_replica_and_records_the_release_once_it_served() {
    let f = fixture();
    let first = f.deploy("app:1").await.unwrap();
    assert_eq!(first.record.id, 1);
    assert_eq!(f.serving(), names(1));
    let second = f.deploy("app:2").await.unwrap();
    assert_eq!(second.record.previous, Some(1));
    assert_eq!(second.removed.len(), 3);
    assert_eq!(f.serving(), names(2));
    assert_eq!(f.history().await, [2, 1]);
    // The record is written after the last replica joined the alias, before the old ones go.
    let journal = f.fake().journal();
    let recorded = journal
        .iter()
        .position(|e| e == "record portal-release-2")
        .unwrap();
    let joined = journal
        .iter()
        .position(|e| e == "connect portal-2-2 alias portal")
        .unwrap();
    let removed = journal
        .iter()
        .position(|e| e == "remove portal-1-0")
        .unwrap();
    assert!(joined < recorded && recorded < removed, "{journal:#?}");
    let done = f.last_progress();
    assert!(
        done.done && done.serving == 3 && done.release == 2,
        "{done:?}"
    );
}

/// Every call of a roll that can fail, failing in turn: the old release serves 3 replicas
/// afterwards, nothing of the new one is left, and it is not recorded.
#[tokio::test(start_paused = true)]
async fn any_failure_during_a_roll_puts_the_old_release_back() {
    let failures = [
        "create portal-2-0",
        "create portal-2-1",
        "start portal-2-1",
        "health portal-2-2",
        "disconnect portal-2-1",
        "connect portal-2-1 alias",
        "disconnect portal-1-2",
        "stop portal-1-1",
        "disconnect portal-1-0",
        "record portal-release-2",
    ];
    for failure in failures {
        let f = fixture();
        f.deploy("app:1").await.unwrap();
        f.fake().lock().fail.push(failure.to_owned());
        let error = f.deploy("app:2").await.unwrap_err();
        assert!(
            matches!(error, DeployError::Docker { .. }),
            "{failure}: {error:?}"
        );
        assert_eq!(f.serving(), names(1), "{failure}");
        let left = f.fake().containers();
        assert_eq!(
            left,
            [
                "portal-1-0 running",
                "portal-1-1 running",
                "portal-1-2 running",
                "portal-release-1 record"
            ],
            "{failure}"
        );
        assert_eq!(f.history().await, [1], "{failure}");
        // The progress line counts the replicas that serve: the old release's 3.
        let done = f.last_progress();
        assert_eq!(
            (
                done.release,
                done.serving,
                done.replicas,
                done.message.as_str()
            ),
            (1, 3, 3, "release 2 failed; release 1 serves"),
            "{failure}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_never_healthy_release_is_reverted_with_its_diagnostics() {
    let f = fixture();
    f.deploy("app:1").await.unwrap();
    f.fake().lock().never_healthy.insert("sha256:app:2".into());
    let error = f.deploy("app:2").await.unwrap_err();
    let DeployError::Unhealthy(unhealthy) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(unhealthy.container, "portal-2-0");
    assert_eq!(unhealthy.logs, "logs of portal-2-0");
    assert_eq!(f.serving(), names(1));
    assert_eq!(f.history().await, [1]);

    // Too slow: the deadline counts, and the same revert follows.
    f.fake().lock().slow.insert("sha256:app:3".into());
    let error = f.deploy("app:3").await.unwrap_err();
    assert!(
        error.to_string().contains("not healthy within 5s"),
        "{error}"
    );
    assert_eq!(f.serving(), names(1));
}

#[tokio::test(start_paused = true)]
async fn a_failed_first_deploy_says_nothing_served_before() {
    let f = fixture();
    f.fake().lock().fail.push("start portal-1-1".into());
    f.deploy("app:1").await.unwrap_err();
    assert!(f.serving().is_empty());
    assert!(
        f.fake().containers().is_empty(),
        "{:?}",
        f.fake().containers()
    );
    let done = f.last_progress();
    assert_eq!(
        (done.serving, done.message.as_str()),
        (0, "release 1 failed; no release was serving before")
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancel_mid_roll_puts_the_old_release_back() {
    let f = fixture();
    f.deploy("app:1").await.unwrap();
    f.fake().lock().slow.insert("sha256:app:2".into());
    let cancel = CancellationToken::new();
    let none = BTreeMap::new();
    let spec2 = spec("app:2");
    let roll = f.deployer.deploy(&spec2, &none, None, &cancel);
    let canceller = async {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        cancel.cancel();
    };
    let (result, ()) = tokio::join!(roll, canceller);
    assert!(
        matches!(result, Err(DeployError::Cancelled(_))),
        "{result:?}"
    );
    assert_eq!(f.serving(), names(1));
    assert_eq!(f.history().await, [1]);
}

#[tokio::test(start_paused = true)]
async fn a_revert_that_fails_on_one_container_still_brings_back_the_others() {
    let f = fixture();
    f.deploy("app:1").await.unwrap();
    {
        let mut state = f.fake().lock();
        // Fails after two old replicas were stopped; bringing the first back fails too.
        state.fail.push("create portal-2-2".into());
        state.fail.push("start portal-1-2".into());
    }
    let error = f.deploy("app:2").await.unwrap_err();
    assert!(error.to_string().contains("start portal-1-2"), "{error}");
    assert_eq!(f.serving(), ["portal-1-0", "portal-1-1"]);
    assert_eq!(
        f.last_progress().message,
        "release 2 failed, and so did reverting it"
    );
    // The next deploy recovers: the stopped one is a leftover.
    let next = f.deploy("app:2").await.unwrap();
    assert_eq!(next.recovered, ["portal-1-2"]);
    assert_eq!(
        next.record.id, 2,
        "a release that never served leaves no id behind"
    );
    assert_eq!(f.serving(), names(2));
}

/// A run killed mid-roll (the future dropped where a call never returns): nothing records
/// the partial release; the recovery deploy removes its leftovers, follows release 1, and a
/// plain rollback returns to 1.
#[tokio::test(start_paused = true)]
async fn a_killed_roll_is_not_a_release() {
    let f = fixture();
    f.deploy("app:1").await.unwrap();
    f.fake().lock().hang = Some("health portal-2-1".into());
    let killed = tokio::time::timeout(Duration::from_secs(60), f.deploy("app:2")).await;
    assert!(killed.is_err(), "the roll was to hang: {killed:?}");
    f.fake().lock().hang = None;
    assert_eq!(f.history().await, [1]);
    // Half-rolled: one new replica serves beside two old ones, one old one is stopped.
    assert_eq!(f.serving(), ["portal-1-0", "portal-1-1", "portal-2-0"]);

    let recovery = f.deploy("app:2").await.unwrap();
    assert_eq!(recovery.record.id, 3);
    assert_eq!(recovery.record.previous, Some(1));
    assert_eq!(recovery.recovered, ["portal-1-2", "portal-2-1"]);
    assert_eq!(f.serving(), names(3));
    assert_eq!(f.history().await, [3, 1]);

    let back = f.rollback(None).await.unwrap();
    assert_eq!(back.record.rollback_of, Some(1));
    assert_eq!(f.serving(), names(4));
    assert_eq!(f.history().await, [4, 3, 1]);
}

/// Replicas stopped (an outage), or gone: the history is intact, a rollback works, and a new
/// deploy keeps releases 1-2 with their dumps.
#[tokio::test(start_paused = true)]
async fn the_history_survives_any_state_of_the_replicas() {
    let f = fixture();
    f.deploy("app:1").await.unwrap();
    f.deploy("app:2").await.unwrap();
    f.fake().stop_all();
    assert!(f.serving().is_empty());
    assert_eq!(f.history().await, [2, 1]);
    let back = f.rollback(None).await.unwrap();
    assert_eq!(back.record.rollback_of, Some(1));
    assert_eq!(back.recovered, names(2));
    assert_eq!(f.serving(), names(3));

    f.fake().remove_replicas();
    let next = f.deploy("app:2").await.unwrap();
    assert_eq!(next.record.id, 4);
    assert_eq!(next.record.previous, Some(3));
    let history = f.deployer.history(&spec("app:1")).await.unwrap();
    let summary: Vec<(u64, Option<&str>)> = history
        .iter()
        .map(|r| (r.id, r.backup.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            (4, Some("dump-before-app:2")),
            (3, Some("dump-before-app:1")),
            (2, Some("dump-before-app:2")),
            (1, Some("dump-before-app:1")),
        ]
    );
    // Back to 2 by number, with nothing serving at all.
    f.fake().remove_replicas();
    let to_two = f.rollback(Some(2)).await.unwrap();
    assert_eq!(to_two.record.image_id, "sha256:app:2");
}

#[tokio::test(start_paused = true)]
async fn only_the_last_records_are_kept() {
    let f = fixture();
    for n in 0..(KEEP + 2) {
        let image = if n % 2 == 0 { "app:1" } else { "app:2" };
        f.deploy_with(image, None).await.unwrap();
    }
    let history = f.history().await;
    assert_eq!(history.len(), KEEP);
    assert_eq!(history.first(), Some(&(KEEP as u64 + 2)));
    let error = f.rollback(Some(1)).await.unwrap_err();
    assert!(
        error.to_string().contains("no record of release 1"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn stop_serving_then_restart_serving_puts_the_same_replicas_back() {
    let f = fixture();
    f.deploy("app:1").await.unwrap();
    f.deploy("app:2").await.unwrap();
    let plan = f
        .deployer
        .plan_rollback("portal", NET, "portal", None, &BTreeMap::new())
        .await
        .unwrap();
    assert_eq!((plan.current.id, plan.record.id), (2, 1));
    assert_eq!(plan.serving(), names(2));
    f.deployer.stop_serving(&plan).await.unwrap();
    assert!(f.serving().is_empty());
    f.deployer.restart_serving(&plan).await.unwrap();
    assert_eq!(f.serving(), names(2));
    // The plan held the lock; the next deploy may go on once it is dropped.
    drop(plan);
    assert_eq!(f.history().await, [2, 1]);
}

#[tokio::test(start_paused = true)]
async fn replicas_of_older_versions_still_give_their_history() {
    let f = fixture();
    let old = |id: u64, previous: Option<u64>| ReleaseRecord {
        id,
        target: "portal".into(),
        image: format!("app:{id}"),
        image_id: format!("sha256:app:{id}"),
        created: 0,
        settings: spec(&format!("app:{id}")),
        previous,
        rollback_of: None,
        backup: None,
    };
    let history = serde_json::to_string(&[old(2, Some(1)), old(1, None)]).unwrap();
    {
        let mut state = f.fake().lock();
        let labels = std::collections::HashMap::from([
            (TARGET_LABEL.to_owned(), "portal".to_owned()),
            (RELEASE_LABEL.to_owned(), "2".to_owned()),
            (HISTORY_LABEL.to_owned(), history),
        ]);
        let info = ContainerInfo {
            id: "legacy".into(),
            name: "portal-2-0".into(),
            labels,
            running: true,
            networks: std::collections::HashMap::from([(
                NET.to_owned(),
                vec!["portal".to_owned()],
            )]),
            env: Vec::new(),
        };
        state.containers.insert(
            "legacy".into(),
            crate::deploy::testing::FakeContainer {
                info,
                image_id: "sha256:app:2".into(),
                record: false,
            },
        );
    }
    assert_eq!(f.history().await, [2, 1]);
    let back = f.rollback(None).await.unwrap();
    assert_eq!(back.record.rollback_of, Some(1));
    // The older records were written as record containers on the way.
    assert_eq!(f.history().await, [3, 2, 1]);
    assert!(
        f.fake()
            .containers()
            .contains(&"portal-release-1 record".to_owned())
    );
}
