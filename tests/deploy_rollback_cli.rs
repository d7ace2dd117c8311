//! `uplift rollback` on a real Docker target: returns to the previous release; SIGINT in the
//! middle leaves the release that was serving, under load, with no stray container. With
//! `CI=true`, a missing Docker engine fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use uplift_stages::deploy::docker::{Deployer, DockerDeploySpec, HealthCheck};
use uplift_testkit::docker::{self, LoadLoop, TargetCleanup, build_deploy_fixture, fetch_from};
use uplift_testkit::per_process;

fn spec(target: &str, tag: &str) -> DockerDeploySpec {
    // The network is named after the target, as `uplift rollback` assumes by default.
    let mut spec = DockerDeploySpec::new(target, format!("uplift-deploy-fixture:{tag}"), target);
    spec.replicas = 3;
    spec.health = HealthCheck::Image;
    spec.health_timeout_secs = 20;
    spec.drain_ms = 1000;
    spec.stop_timeout_secs = 2;
    spec
}

/// `name state release` of the target's containers.
fn containers(target: &str) -> Vec<String> {
    docker::target_containers(
        target,
        true,
        "{{.Names}} {{.State}} {{.Label \"dev.uplift.deploy.release\"}}",
    )
}

fn versions(target: &str) -> Vec<String> {
    fetch_from(target, &format!("http://{target}:8080/version"), 9)
}

fn uplift(lock_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_uplift"));
    cmd.env("XDG_RUNTIME_DIR", lock_dir);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_returns_to_the_previous_release_and_sigint_keeps_what_served() {
    if !docker::available() {
        return;
    }
    build_deploy_fixture("v1", "Dockerfile");
    build_deploy_fixture("v2", "Dockerfile");
    let target = per_process("upt-cli");
    let _cleanup = TargetCleanup::new(&target, &target);
    let runtime_dir = tempfile::tempdir().unwrap();
    let locks = runtime_dir.path().join("uplift/locks");
    let deployer = Deployer::connect().await.unwrap().with_lock_dir(&locks);
    let cancel = CancellationToken::new();
    let none = Default::default();
    deployer
        .deploy(&spec(&target, "v1"), &none, None, &cancel)
        .await
        .unwrap();
    deployer
        .deploy(&spec(&target, "v2"), &none, None, &cancel)
        .await
        .unwrap();
    assert!(versions(&target).iter().all(|v| v == "v2"));

    // Load through the alias while the rollback is interrupted by SIGINT.
    let load = LoadLoop::start(
        &target,
        &target,
        &format!("http://{target}:8080/version"),
        4000,
        90,
    );
    let started = Instant::now();
    let child = uplift(runtime_dir.path())
        .args(["rollback", &target])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Mid-roll: the first v1 container is healthy and one v2 container is draining.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "stderr: {stderr}");
    assert!(stderr.contains("cancelled"), "{stderr}");
    // The reverted rollout's last line counts the replicas that serve: release 2's.
    assert!(
        stderr.contains(&format!(
            "rollback | rollout {target}: release 3 failed; release 2 serves (3/3 replicas)"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("WARN"), "no library log line: {stderr}");
    let summary = load.stop();
    println!(
        "SIGINT during `uplift rollback` after {:?}: load {}",
        started.elapsed(),
        summary.line
    );
    let now = containers(&target);
    assert_eq!(now.len(), 3, "no stray containers: {now:?}");
    assert!(
        now.iter().all(|c| c.ends_with("running 2")),
        "release 2 still serves: {now:?}"
    );
    assert!(versions(&target).iter().all(|v| v == "v2"));

    // A full rollback: release 1's image and settings, from the labels alone.
    let out = uplift(runtime_dir.path())
        .args(["rollback", &target])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&format!(
            "rolled back {target} to release 1 (now release 3, image sha256:"
        )),
        "{stdout}"
    );
    assert!(versions(&target).iter().all(|v| v == "v1"));
    // The rollout's progress, off a terminal: one line when it ends.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "rollback | rollout {target}: release 3: 3 replicas serving (3/3 replicas)"
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("waiting for health"),
        "no line per step: {stderr}"
    );
    let now = containers(&target);
    assert!(
        now.len() == 3 && now.iter().all(|c| c.ends_with("running 3")),
        "{now:?}"
    );

    // A named release that was never recorded: bad input.
    let out = uplift(runtime_dir.path())
        .args(["rollback", &target, "--to", "42"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no record of release 42"));
}

/// `uplift rollback --with-data` interrupted by SIGINT while `pg_restore` waits on a lock: the
/// restore is rolled back, the release that served is started again, exit 130.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_during_the_restore_puts_the_serving_release_back_and_exits_130() {
    use uplift_testkit::postgres::{self, Db, ITEMS, MIGRATION, PASSWORD};
    let Some(db) = Db::create(format!("uplift_cli_restore_{}", std::process::id()), ITEMS) else {
        return;
    };
    if !docker::available() {
        return;
    }
    build_deploy_fixture("v1", "Dockerfile");
    build_deploy_fixture("v2", "Dockerfile");
    let target = per_process("upt-clidata");
    let _cleanup = TargetCleanup::new(&target, &target);
    let runtime_dir = tempfile::tempdir().unwrap();
    let runs = tempfile::tempdir().unwrap();
    let deployer = Deployer::connect()
        .await
        .unwrap()
        .with_lock_dir(runtime_dir.path().join("uplift/locks"));
    let cancel = CancellationToken::new();
    let none = Default::default();
    let database = uplift_stages::deploy_postgres::PgTarget {
        host: postgres::HOST.into(),
        port: postgres::PORT,
        user: postgres::USER.into(),
        database: db.0.clone(),
        password: PASSWORD.into(),
    };
    for (tag, dir) in [("v1", runs.path().join("1")), ("v2", runs.path().join("2"))] {
        let mut spec = spec(&target, tag);
        spec.replicas = 2;
        uplift_stages::deploy::deploy_docker(
            &deployer,
            &spec,
            &none,
            Some((&database, &dir)),
            &cancel,
        )
        .await
        .unwrap();
    }
    db.exec(MIGRATION);

    // Another session holds a lock on `items`: pg_restore waits for it.
    let holder = postgres::LockHolder::hold(&db.0, "items");
    let child = uplift(runtime_dir.path())
        .args(["rollback", &target, "--with-data", "--pg-database", &db.0])
        .env("PGPASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !postgres::pg_restore_waits_on_a_lock() {
        assert!(
            Instant::now() < deadline,
            "pg_restore never waited on the lock"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stopped = containers(&target);
    assert!(
        stopped.iter().all(|c| c.contains(" exited ")),
        "stopped during the restore: {stopped:?}"
    );
    let sigint = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sigint.success());
    let out = child.wait_with_output().unwrap();
    drop(holder);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "stderr: {stderr}");
    assert!(
        stderr.contains(
            "error: cancelled; the restore was rolled back, the database is unchanged; release 2 serves again"
        ),
        "{stderr}"
    );
    let now = containers(&target);
    assert!(
        now.len() == 2 && now.iter().all(|c| c.ends_with("running 2")),
        "release 2 serves again: {now:?}"
    );
    assert!(versions(&target).iter().all(|v| v == "v2"));
    assert_eq!(db.rows(), "1:ONE,3:three,4:four");
}
