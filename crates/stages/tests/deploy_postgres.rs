//! PostgreSQL for real (Debian's postgresql, started by scripts/services.sh on 127.0.0.1:5432):
//! backup before a release, a "migration", `rollback --with-data` brings the rows back; a wrong
//! password is a clear error and nothing is deployed. With `CI=true`, a missing PostgreSQL or
//! Docker engine fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use tokio_util::sync::CancellationToken;
use uplift_docker::deploy::{Deployer, DockerDeploySpec, HealthCheck};
use uplift_stages::deploy::{DeployStageError, deploy_docker, rollback_docker};
use uplift_stages::deploy_postgres::{self, PgError, PgTarget};

const PASSWORD: &str = "uplift-pg-test";

fn admin(sql: &str, database: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            "5432",
            "-U",
            "postgres",
            "-tA",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            database,
            "-c",
            sql,
        ])
        .env("PGPASSWORD", PASSWORD)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

/// A fresh database for one test, dropped at the end.
struct Db(String);

impl Db {
    fn create(test: &str) -> Option<Db> {
        if let Err(e) = admin("select 1", "postgres") {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true and PostgreSQL is not reachable: {e}"
            );
            eprintln!(
                "skipping: PostgreSQL is not reachable on 127.0.0.1:5432 ({e}); run scripts/services.sh"
            );
            return None;
        }
        let name = format!("uplift_{test}_{}", std::process::id());
        let _ = admin(&format!("drop database if exists {name}"), "postgres");
        admin(&format!("create database {name}"), "postgres").unwrap();
        admin("create table items (id int primary key, name text not null); insert into items values (1, 'one'), (2, 'two'), (3, 'three')", &name).unwrap();
        Some(Db(name))
    }

    fn target(&self, password: &str) -> PgTarget {
        PgTarget {
            host: "127.0.0.1".into(),
            port: 5432,
            user: "postgres".into(),
            database: self.0.clone(),
            password: password.into(),
        }
    }

    fn rows(&self) -> String {
        admin(
            "select string_agg(id || ':' || name, ',' order by id) from items",
            &self.0,
        )
        .unwrap()
    }

    fn migrate(&self) {
        admin("alter table items add column owner text; delete from items where id = 2; update items set name = 'ONE' where id = 1; insert into items values (4, 'four', 'x')", &self.0).unwrap();
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = admin(
            &format!("drop database if exists {} with (force)", self.0),
            "postgres",
        );
    }
}

#[tokio::test]
async fn backup_migration_restore_brings_the_rows_back() {
    let Some(db) = Db::create("restore") else {
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

    db.migrate();
    assert_eq!(db.rows(), "1:ONE,3:three,4:four");
    deploy_postgres::restore(&db.target(PASSWORD), &backup.path, &cancel)
        .await
        .unwrap();
    assert_eq!(db.rows(), "1:one,2:two,3:three");
    let columns = admin(
        "select count(*) from information_schema.columns where table_name = 'items'",
        &db.0,
    )
    .unwrap();
    assert_eq!(columns, "2", "the migration's column is gone");
}

#[tokio::test]
async fn wrong_password_is_a_clear_error_that_does_not_show_the_password() {
    let Some(db) = Db::create("auth") else { return };
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

fn docker_available() -> bool {
    let ok = Command::new("docker")
        .args(["version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and no Docker engine"
        );
        eprintln!("skipping: no Docker engine");
    }
    ok
}

fn build_fixture(tag: &str) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/deploy");
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy("/bin/busybox", ctx.path().join("busybox")).unwrap();
    std::fs::create_dir(ctx.path().join("www")).unwrap();
    std::fs::write(ctx.path().join("www/health"), "ok\n").unwrap();
    std::fs::write(ctx.path().join("www/version"), format!("{tag}\n")).unwrap();
    let out = Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args([
            "build",
            "-q",
            "-t",
            &format!("uplift-deploy-fixture:{tag}"),
            "-f",
        ])
        .arg(fixture.join("Dockerfile"))
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Target(String);

impl Drop for Target {
    fn drop(&mut self) {
        let out = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=dev.uplift.deploy.target={}", self.0),
            ])
            .output()
            .unwrap();
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("docker").args(["rm", "-f", id]).output();
        }
        let _ = Command::new("docker")
            .args(["network", "rm", &format!("{}-net", self.0)])
            .output();
    }
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
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=dev.uplift.deploy.target={target}"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_backs_up_first_and_rollback_with_data_restores() {
    let Some(db) = Db::create("deploy") else {
        return;
    };
    if !docker_available() {
        return;
    }
    build_fixture("v1");
    build_fixture("v2");
    let target = Target(format!("upt-data-{}", std::process::id()));
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
        &spec(&target.0, "v1"),
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
    assert_eq!(container_count(&target.0), 0);

    let first = deploy_docker(
        &deployer,
        &spec(&target.0, "v1"),
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
        &spec(&target.0, "v2"),
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
    db.migrate();
    let back = rollback_docker(
        &deployer,
        &target.0,
        &format!("{}-net", target.0),
        "svc",
        None,
        Some(&db.target(PASSWORD)),
        &cancel,
    )
    .await
    .unwrap();
    assert_eq!(back.record.rollback_of, Some(1));
    assert_eq!(db.rows(), "1:one,2:two,3:three");
    assert_eq!(container_count(&target.0), 1);
    let id = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=dev.uplift.deploy.target={}", target.0),
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
