//! PostgreSQL for real (Debian's postgresql, started by scripts/services.sh on 127.0.0.1:5432):
//! backup before a release, a "migration", `rollback --with-data` brings the rows back; a wrong
//! password is a clear error and nothing is deployed. With `CI=true`, a missing PostgreSQL or
//! Docker engine fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use tokio_util::sync::CancellationToken;
use uplift_docker::deploy::{Deployer, DockerDeploySpec, HealthCheck};
use uplift_stages::deploy::{DeployStageError, deploy_docker, rollback_docker};
use uplift_stages::deploy_postgres::{self, PgError};
use uplift_testkit::docker::{self, TargetCleanup, build_deploy_fixture};
use uplift_testkit::per_process;
use uplift_testkit::postgres::{self, MIGRATION, PASSWORD};

mod common;
use common::{Target, items_db};

#[tokio::test]
async fn backup_migration_restore_brings_the_rows_back() {
    let Some(db) = items_db("uplift_restore") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let backup = deploy_postgres::backup(&db.target(PASSWORD), dir.path(), "release-1", &cancel)
        .await
        .unwrap();
    assert_eq!(backup.path, dir.path().join("release-1.dump"));
    assert!(backup.bytes > 100);
    assert_eq!(
        &std::fs::read(&backup.path).unwrap()[..5],
        b"PGDMP",
        "custom format"
    );

    db.exec(MIGRATION);
    assert_eq!(db.rows(), "1:ONE,3:three,4:four");
    deploy_postgres::restore(&db.target(PASSWORD), &backup.path, &cancel)
        .await
        .unwrap();
    assert_eq!(db.rows(), "1:one,2:two,3:three");
    let columns = postgres::admin(
        "select count(*) from information_schema.columns where table_name = 'items'",
        &db.0,
    )
    .unwrap();
    assert_eq!(columns, "2", "the migration's column is gone");
}

#[tokio::test]
async fn wrong_password_is_a_clear_error_that_does_not_show_the_password() {
    let Some(db) = items_db("uplift_auth") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wrong = "not-the-password-4711";
    let error = deploy_postgres::backup(
        &db.target(wrong),
        dir.path(),
        "r",
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, PgError::Auth { .. }), "{error:?}");
    let message = error.to_string();
    assert_eq!(
        message,
        format!(
            "log in to PostgreSQL as postgres@127.0.0.1:5432/{}: the password was refused",
            db.0
        )
    );
    assert!(!format!("{message} {error:?} {:?}", db.target(wrong)).contains(wrong));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no partial dump left"
    );
    let restore = deploy_postgres::restore(
        &db.target(PASSWORD),
        &dir.path().join("missing.dump"),
        &CancellationToken::new(),
    )
    .await;
    assert!(matches!(restore, Err(PgError::Io { .. })));
}

fn spec(target: &str, tag: &str) -> DockerDeploySpec {
    let mut spec = DockerDeploySpec::new(
        target,
        format!("uplift-deploy-fixture:{tag}"),
        format!("{target}-net"),
    );
    spec.replicas = 1;
    spec.alias = Some("svc".into());
    spec.health = HealthCheck::Image;
    spec.health_timeout_secs = 20;
    spec.drain_ms = 200;
    spec.stop_timeout_secs = 1;
    spec
}

fn container_count(target: &str) -> usize {
    docker::target_containers(target, true, "{{.ID}}").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_backs_up_first_and_rollback_with_data_restores() {
    let Some(db) = items_db("uplift_deploy") else {
        return;
    };
    if !docker::available() {
        return;
    }
    build_deploy_fixture("v1", "Dockerfile");
    build_deploy_fixture("v2", "Dockerfile");
    let target = per_process("upt-data");
    let _cleanup = TargetCleanup::new(&target, format!("{target}-net"));
    let locks = tempfile::tempdir().unwrap();
    let runs = tempfile::tempdir().unwrap();
    let deployer = Deployer::connect()
        .await
        .unwrap()
        .with_lock_dir(locks.path());
    let cancel = CancellationToken::new();
    let none = Default::default();

    // A wrong password: a clear error, and nothing is deployed.
    let error = deploy_docker(
        &deployer,
        &spec(&target, "v1"),
        &none,
        Some((&db.target("wrong"), runs.path())),
        &cancel,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, DeployStageError::Backup(PgError::Auth { .. })),
        "{error:?}"
    );
    assert_eq!(container_count(&target), 0);

    let first = deploy_docker(
        &deployer,
        &spec(&target, "v1"),
        &none,
        Some((&db.target(PASSWORD), runs.path())),
        &cancel,
    )
    .await
    .unwrap();
    assert!(first.record.backup.is_some());
    let dir2 = runs.path().join("2");
    let second = deploy_docker(
        &deployer,
        &spec(&target, "v2"),
        &none,
        Some((&db.target(PASSWORD), &dir2)),
        &cancel,
    )
    .await
    .unwrap();
    let dump = second.record.backup.clone().unwrap();
    assert!(dump.starts_with(&dir2.display().to_string()), "{dump}");

    // v2's "migration" changes the data; rolling back with data restores the dump taken
    // before v2 was deployed, then starts v1.
    db.exec(MIGRATION);
    let back = rollback_docker(
        &deployer,
        &target,
        &format!("{target}-net"),
        "svc",
        None,
        Some(&db.target(PASSWORD)),
        &cancel,
    )
    .await
    .unwrap();
    assert_eq!(back.record.rollback_of, Some(1));
    assert_eq!(db.rows(), "1:one,2:two,3:three");
    assert_eq!(container_count(&target), 1);
    let id = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=dev.uplift.deploy.target={target}"),
        ])
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&id.stdout).trim().to_owned();
    let image = Command::new("docker")
        .args(["inspect", "-f", "{{.Image}}", &id])
        .output()
        .unwrap();
    let v1_id = Command::new("docker")
        .args([
            "image",
            "inspect",
            "-f",
            "{{.Id}}",
            "uplift-deploy-fixture:v1",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&image.stdout).trim(),
        String::from_utf8_lossy(&v1_id.stdout).trim()
    );
}

/// The versions answered through the alias `svc` (6 requests from a one-shot container).
fn versions(target: &str) -> Vec<String> {
    docker::fetch_from(&format!("{target}-net"), "http://svc:8080/version", 6)
}

/// `name state release` of the target's replicas, by name.
fn replicas(target: &str) -> Vec<String> {
    docker::target_containers(
        target,
        true,
        "{{.Names}} {{.State}} {{.Label \"dev.uplift.deploy.release\"}}",
    )
}

/// Every way a restore can fail, on the real Docker Engine and PostgreSQL, under a load loop
/// through the alias: a truncated dump and a refused password are found before anything is
/// stopped (0 failed requests); a restore that fails once it runs, or is cancelled while it
/// waits on a lock, starts the release that served again, on its unchanged data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_with_data_that_cannot_restore_leaves_the_serving_release() {
    let Some(db) = items_db("uplift_norestore") else {
        return;
    };
    if !docker::available() {
        return;
    }
    build_deploy_fixture("v1", "Dockerfile");
    build_deploy_fixture("v2", "Dockerfile");
    let target = per_process("upt-norestore");
    let network = format!("{target}-net");
    let _cleanup = TargetCleanup::new(&target, &network);
    let locks = tempfile::tempdir().unwrap();
    let runs = tempfile::tempdir().unwrap();
    let deployer = Deployer::connect()
        .await
        .unwrap()
        .with_lock_dir(locks.path());
    let cancel = CancellationToken::new();
    let none = Default::default();
    let mut two = spec(&target, "v1");
    two.replicas = 2;
    deploy_docker(
        &deployer,
        &two,
        &none,
        Some((&db.target(PASSWORD), runs.path())),
        &cancel,
    )
    .await
    .unwrap();
    two.image = "uplift-deploy-fixture:v2".into();
    let second = deploy_docker(
        &deployer,
        &two,
        &none,
        Some((&db.target(PASSWORD), &runs.path().join("2"))),
        &cancel,
    )
    .await
    .unwrap();
    db.exec(MIGRATION);
    let serving = [
        format!("{target}-2-0 running 2"),
        format!("{target}-2-1 running 2"),
    ];
    assert_eq!(replicas(&target), serving);
    let rollback = |password: &'static str, cancel: CancellationToken| {
        let deployer = &deployer;
        let target = &target;
        let network = &network;
        let database = db.target(password);
        async move {
            rollback_docker(
                deployer,
                target,
                network,
                "svc",
                None,
                Some(&database),
                &cancel,
            )
            .await
        }
    };

    // Under load: a truncated dump, then a refused password.
    let load = docker::LoadLoop::start(&target, &network, "http://svc:8080/version", 4000, 90);
    let dump = std::path::PathBuf::from(second.record.backup.clone().unwrap());
    let whole = std::fs::read(&dump).unwrap();
    std::fs::write(&dump, &whole[..whole.len() - 30]).unwrap();
    let error = rollback(PASSWORD, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(error, DeployStageError::Restore(PgError::Incomplete { .. })),
        "{error:?}"
    );
    assert!(error.to_string().contains("nothing was stopped"), "{error}");
    std::fs::write(&dump, &whole).unwrap();
    let started = std::time::Instant::now();
    let error = rollback("not-the-password", CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(error, DeployStageError::Restore(PgError::Auth { .. })),
        "{error:?}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "a refused password is found at once, not after the stop: {:?}",
        started.elapsed()
    );
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let result = load.stop();
    println!(
        "rollback --with-data refused (truncated dump, wrong password) under load: {}",
        result.line
    );
    assert_eq!(result.fail, 0, "{result:?}");
    assert!(result.ok > 10 && result.v2 == result.ok, "{result:?}");
    assert_eq!(replicas(&target), serving);
    assert_eq!(db.rows(), "1:ONE,3:three,4:four");

    // A restore that fails once it runs (a view the dump does not know depends on `items`):
    // release 2 is stopped, then started again on its data.
    db.exec("create view items_seen as select id from items");
    let error = rollback(PASSWORD, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(error, DeployStageError::RestoreFailed { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .ends_with("the database is unchanged and release 2 serves again"),
        "{error}"
    );
    assert_eq!(replicas(&target), serving);
    assert!(versions(&target).iter().all(|v| v == "v2"));
    assert_eq!(db.rows(), "1:ONE,3:three,4:four");
    db.exec("drop view items_seen");

    // Cancelled while pg_restore waits on a lock another session holds.
    let holder = postgres::LockHolder::hold(&db.0, "items");
    let token = CancellationToken::new();
    let trigger = async {
        while !postgres::pg_restore_waits_on_a_lock() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(
            replicas(&target).iter().all(|c| c.contains(" exited ")),
            "stopped while it restores: {:?}",
            replicas(&target)
        );
        token.cancel();
    };
    let (result, ()) = tokio::join!(rollback(PASSWORD, token.clone()), trigger);
    drop(holder);
    let error = result.unwrap_err();
    assert_eq!(
        error.to_string(),
        "cancelled; the restore was rolled back, the database is unchanged; release 2 serves again"
    );
    assert_eq!(replicas(&target), serving);
    assert!(versions(&target).iter().all(|v| v == "v2"));
    assert_eq!(db.rows(), "1:ONE,3:three,4:four");
}
