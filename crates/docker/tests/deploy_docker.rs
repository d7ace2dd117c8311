//! Real Docker tests of the rolling deploy (`uplift_docker::deploy`): a fixture service built
//! FROM scratch (busybox-static's httpd), 3 replicas, load sent through the network alias from
//! a container on the test's own network. When `CI=true`, a missing Docker engine fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uplift_docker::deploy::{DeployError, Deployer, DockerDeploySpec, HealthCheck};
use uplift_testkit::docker::{
    self, LoadLoop, TargetCleanup, build_deploy_fixture, docker, fetch_from,
};
use uplift_testkit::per_process;

/// Builds `uplift-deploy-fixture:{v1,v2,broken}` once per test binary.
fn images() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        build_deploy_fixture("v1", "Dockerfile");
        build_deploy_fixture("v2", "Dockerfile");
        build_deploy_fixture("broken", "Dockerfile.broken");
    });
}

fn setup(test: &str) -> (String, TargetCleanup, tempfile::TempDir) {
    images();
    let target = per_process(&format!("upt-{test}"));
    // Removes the leftovers of an earlier run with the same pid first.
    let cleanup = TargetCleanup::new(&target, format!("{target}-net"));
    (target, cleanup, tempfile::tempdir().unwrap())
}

fn spec(target: &str, tag: &str) -> DockerDeploySpec {
    let mut spec = DockerDeploySpec::new(
        target,
        format!("uplift-deploy-fixture:{tag}"),
        format!("{target}-net"),
    );
    spec.replicas = 3;
    spec.alias = Some("svc".to_owned());
    spec.health = HealthCheck::Http {
        port: 8080,
        path: "/health".to_owned(),
    };
    spec.health_interval_ms = 500;
    spec.health_timeout_secs = 20;
    spec.drain_ms = 1000;
    spec.stop_timeout_secs = 2;
    spec
}

async fn deployer(locks: &Path) -> Deployer {
    Deployer::connect().await.unwrap().with_lock_dir(locks)
}

/// Starts the load loop (bounded: `max` requests, `secs` seconds) against `http://svc:8080/version`.
fn start_load(target: &str, max: u32, secs: u32) -> LoadLoop {
    LoadLoop::start(
        target,
        &format!("{target}-net"),
        "http://svc:8080/version",
        max,
        secs,
    )
}

/// The versions answered through the alias (12 requests from a one-shot container).
fn versions_via_alias(target: &str) -> Vec<String> {
    fetch_from(&format!("{target}-net"), "http://svc:8080/version", 12)
}

fn target_containers(target: &str) -> Vec<String> {
    docker::target_containers(target, true, "{{.Names}} {{.State}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_upgrade_broken_upgrade_and_rollback_keep_serving() {
    if !docker::available() {
        return;
    }
    let (target, _cleanup, locks) = setup("roll");
    let deployer = deployer(locks.path()).await;
    let none = BTreeMap::new();
    let cancel = CancellationToken::new();

    let first = deployer
        .deploy(&spec(&target, "v1"), &none, None, &cancel)
        .await
        .unwrap();
    assert_eq!(first.record.id, 1);
    assert_eq!(first.started.len(), 3);
    let versions = versions_via_alias(&target);
    assert!(versions.iter().all(|v| v == "v1"), "{versions:?}");

    // Upgrade v1 -> v2 under load.
    let load = start_load(&target, 4000, 90);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second = deployer
        .deploy(&spec(&target, "v2"), &none, None, &cancel)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let result = load.stop();
    println!(
        "uplift rolling upgrade v1 -> v2 (3 replicas): {} requests ok, {} failed ({})",
        result.ok, result.fail, result.line
    );
    assert_eq!(
        result.fail, 0,
        "failed requests during the rolling upgrade: {result:?}"
    );
    assert!(
        result.ok > 50 && result.v1 > 0 && result.v2 > 0,
        "load did not span the upgrade: {result:?}"
    );
    assert_eq!(second.record.previous, Some(1));
    assert_eq!(second.removed.len(), 3);
    let versions = versions_via_alias(&target);
    assert!(versions.iter().all(|v| v == "v2"), "{versions:?}");

    // Upgrade to a broken image under load: the old version keeps serving.
    let load = start_load(&target, 4000, 90);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut broken = spec(&target, "broken");
    broken.health_timeout_secs = 6;
    let error = deployer
        .deploy(&broken, &none, None, &cancel)
        .await
        .unwrap_err();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let result = load.stop();
    println!(
        "uplift upgrade to a broken image: {} requests ok, {} failed ({})",
        result.ok, result.fail, result.line
    );
    assert_eq!(
        result.fail, 0,
        "failed requests during the broken upgrade: {result:?}"
    );
    assert_eq!(result.v1, 0);
    let DeployError::Unhealthy(unhealthy) = &error else {
        panic!("expected Unhealthy, got {error:?}")
    };
    assert!(
        unhealthy.logs.contains("migration 0042 failed"),
        "{unhealthy:?}"
    );
    assert!(!unhealthy.health_output.is_empty(), "{unhealthy:?}");
    println!(
        "diagnostics: {error}\n  health: {:?}\n  logs: {}",
        unhealthy.health_output,
        unhealthy.logs.trim()
    );
    let containers = target_containers(&target);
    assert_eq!(containers.len(), 3, "stray containers: {containers:?}");
    assert!(
        containers
            .iter()
            .all(|c| c.starts_with(&format!("{target}-2-")) && c.ends_with("running")),
        "{containers:?}"
    );

    // Roll back to release 1 (v1) without the spec: from the labels alone.
    let back = deployer
        .rollback(
            &target,
            &format!("{target}-net"),
            "svc",
            None,
            &none,
            &cancel,
        )
        .await
        .unwrap();
    assert_eq!(back.record.rollback_of, Some(1));
    assert_eq!(back.record.id, 3);
    let versions = versions_via_alias(&target);
    assert!(versions.iter().all(|v| v == "v1"), "{versions:?}");
    let history = deployer.history(&spec(&target, "v1")).await.unwrap();
    assert_eq!(
        history.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![3, 2, 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_deploy_is_refused_and_killed_lock_holder_is_recovered() {
    if !docker::available() {
        return;
    }
    let (target, _cleanup, locks) = setup("lock");
    let deployer = deployer(locks.path()).await;
    let none = BTreeMap::new();
    let cancel = CancellationToken::new();
    let mut one = spec(&target, "v1");
    one.replicas = 1;
    let (a, b) = tokio::join!(deployer.deploy(&one, &none, None, &cancel), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        deployer.deploy(&one, &none, None, &cancel).await
    });
    assert!(a.is_ok(), "{a:?}");
    assert!(matches!(b, Err(DeployError::Locked { .. })), "{b:?}");

    // A run killed while holding the lock: the kernel drops its flock.
    let lock_file = locks.path().join(format!("docker-{target}.lock"));
    let mut holder = Command::new("flock")
        .arg("-o")
        .arg(&lock_file)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = deployer.deploy(&one, &none, None, &cancel).await;
    assert!(
        matches!(refused, Err(DeployError::Locked { .. })),
        "{refused:?}"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    let after = deployer
        .deploy(&spec(&target, "v2"), &none, None, &cancel)
        .await
        .unwrap();
    assert_eq!(after.record.previous, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_deploy_leaves_the_old_release_and_no_strays() {
    if !docker::available() {
        return;
    }
    let (target, _cleanup, locks) = setup("cancel");
    let deployer = deployer(locks.path()).await;
    let none = BTreeMap::new();
    let cancel = CancellationToken::new();
    deployer
        .deploy(&spec(&target, "v1"), &none, None, &cancel)
        .await
        .unwrap();

    let load = start_load(&target, 4000, 90);
    let token = CancellationToken::new();
    let canceller = token.clone();
    tokio::spawn(async move {
        // Mid-roll: after the first new container replaced an old one.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        canceller.cancel();
    });
    let result = deployer
        .deploy(&spec(&target, "v2"), &none, None, &token)
        .await;
    assert!(
        matches!(result, Err(DeployError::Cancelled(_))),
        "{result:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let load = load.stop();
    println!(
        "uplift cancelled upgrade: {} requests ok, {} failed ({})",
        load.ok, load.fail, load.line
    );
    // Reverting drains the new container out of the alias like a forward step does; the bar
    // here is "the old release serves and nothing is left behind", so the count is reported.
    assert!(load.ok > 0, "{load:?}");
    let containers = target_containers(&target);
    assert_eq!(containers.len(), 3, "{containers:?}");
    assert!(
        containers
            .iter()
            .all(|c| c.starts_with(&format!("{target}-1-")) && c.ends_with("running")),
        "{containers:?}"
    );
    let versions = versions_via_alias(&target);
    assert!(versions.iter().all(|v| v == "v1"), "{versions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_secrets_ports_volumes_and_limits_reach_the_container() {
    if !docker::available() {
        return;
    }
    let (target, _cleanup, locks) = setup("limits");
    let deployer = deployer(locks.path()).await;
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("note"), "mounted\n").unwrap();
    let mut one = spec(&target, "v1");
    one.replicas = 1;
    one.env = BTreeMap::from([("MODE".to_owned(), "test".to_owned())]);
    one.secret_env = vec!["API_TOKEN".to_owned()];
    one.ports = vec![8080];
    one.volumes = vec![format!("{}:/data:ro", data.path().display())];
    one.memory_mb = Some(64);
    one.cpus = Some(0.5);
    let missing = deployer
        .deploy(&one, &BTreeMap::new(), None, &CancellationToken::new())
        .await;
    assert!(
        matches!(missing, Err(DeployError::MissingSecret(ref k)) if k == "API_TOKEN"),
        "{missing:?}"
    );
    let secrets = BTreeMap::from([("API_TOKEN".to_owned(), "tok-123".to_owned())]);
    let report = deployer
        .deploy(&one, &secrets, None, &CancellationToken::new())
        .await
        .unwrap();
    let name = &report.started[0];
    let inspect = |format: &str| docker(&["inspect", "-f", format, name]);
    assert_eq!(
        inspect("{{.HostConfig.Memory}}"),
        (64 * 1024 * 1024).to_string()
    );
    assert_eq!(inspect("{{.HostConfig.NanoCpus}}"), "500000000");
    let env = inspect("{{json .Config.Env}}");
    assert!(
        env.contains("MODE=test") && env.contains("API_TOKEN=tok-123"),
        "{env}"
    );
    assert!(
        !inspect("{{json .Config.Labels}}").contains("tok-123"),
        "no secret in the record"
    );
    let port = docker(&["port", name, "8080/tcp"]);
    assert!(
        port.starts_with("127.0.0.1:"),
        "published on loopback only: {port}"
    );
    let note = docker(&["exec", name, "/bin/busybox", "cat", "/data/note"]);
    assert_eq!(note, "mounted");
}

/// The release history survives every state of the replicas, and a killed roll is not a
/// release: all replicas stopped (an outage) → rollback works; all removed → a new deploy
/// keeps the earlier releases and their dumps; a roll dropped half-way (the run killed) →
/// the recovery deploy follows the last release that served, and so does a plain rollback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_survives_stopped_missing_and_half_rolled_replicas() {
    if !docker::available() {
        return;
    }
    let (target, _cleanup, locks) = setup("history");
    let deployer = deployer(locks.path()).await;
    let none = BTreeMap::new();
    let cancel = CancellationToken::new();
    let mut two = spec(&target, "v1");
    two.replicas = 2;
    two.drain_ms = 200;
    let deploy = |tag: &str| {
        let mut spec = two.clone();
        spec.image = format!("uplift-deploy-fixture:{tag}");
        spec
    };
    let network = format!("{target}-net");
    let rollback = || deployer.rollback(&target, &network, "svc", None, &none, &cancel);
    deployer
        .deploy(&deploy("v1"), &none, Some("dump-1".into()), &cancel)
        .await
        .unwrap();
    deployer
        .deploy(&deploy("v2"), &none, Some("dump-2".into()), &cancel)
        .await
        .unwrap();
    assert_eq!(docker::target_records(&target), [2, 1]);

    // An outage: every replica stopped. The rollback still knows releases 2 and 1.
    for name in target_containers(&target) {
        let name = name.split_whitespace().next().unwrap().to_owned();
        docker(&["stop", "-t", "1", &name]);
    }
    let back = rollback().await.unwrap();
    assert_eq!((back.record.id, back.record.rollback_of), (3, Some(1)));
    assert!(versions_via_alias(&target).iter().all(|v| v == "v1"));

    // Every replica gone: a new deploy keeps 1-3 and their dumps.
    for name in target_containers(&target) {
        let name = name.split_whitespace().next().unwrap().to_owned();
        docker(&["rm", "-f", &name]);
    }
    let fourth = deployer
        .deploy(&deploy("v2"), &none, Some("dump-4".into()), &cancel)
        .await
        .unwrap();
    assert_eq!(fourth.record.previous, Some(3));
    let history = deployer.history(&two).await.unwrap();
    let summary: Vec<(u64, Option<&str>)> = history
        .iter()
        .map(|r| (r.id, r.backup.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            (4, Some("dump-4")),
            (3, Some("dump-1")),
            (2, Some("dump-2")),
            (1, Some("dump-1"))
        ]
    );

    // A roll killed half-way: the future is dropped once the second new replica exists (the
    // first one serves by then, and an old one is stopped).
    let second_replica = format!("{target}-5-1 ");
    let cut = async {
        while !target_containers(&target)
            .iter()
            .any(|c| c.starts_with(&second_replica))
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let v1 = deploy("v1");
    tokio::select! {
        done = deployer.deploy(&v1, &none, None, &cancel) => panic!("the roll was to be cut: {done:?}"),
        () = cut => {}
    }
    assert_eq!(docker::target_records(&target), [4, 3, 2, 1]);
    let recovery = deployer
        .deploy(&deploy("v1"), &none, None, &cancel)
        .await
        .unwrap();
    assert_eq!(recovery.record.id, 6);
    assert_eq!(
        recovery.record.previous,
        Some(4),
        "the killed roll is no release"
    );
    assert_eq!(
        recovery.recovered.len(),
        2,
        "the stopped old replica and the new one outside the alias: {:?}",
        recovery.recovered
    );
    let ids: Vec<u64> = deployer
        .history(&two)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, [6, 4, 3, 2, 1]);
    let back = rollback().await.unwrap();
    assert_eq!(back.record.rollback_of, Some(4));
    assert!(versions_via_alias(&target).iter().all(|v| v == "v2"));
    let replicas = target_containers(&target);
    assert_eq!(replicas.len(), 2, "{replicas:?}");
}
