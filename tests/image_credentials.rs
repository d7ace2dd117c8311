//! `uses: image` pushing to the password-protected registry (127.0.0.1:5001, started by
//! `scripts/services.sh`) with credentials from a Docker credential helper named in the Docker
//! config file's `credHelpers`, as `docker login` with a helper leaves it. The helper is a small
//! script on PATH speaking the helper protocol (`get`, server on stdin, JSON on stdout).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{stderr, stdout};
use uplift_testkit::docker;

const AUTH_REGISTRY: &str = "127.0.0.1:5001";

/// A work folder with the busybox image context, a Docker config naming the helper `uplifttest`
/// for the registry, and the helper on a bin folder answering with `secret`.
fn workspace(secret: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web");
    docker::image_context_in("busybox", &web);
    std::fs::write(
        dir.path().join("docker-config.json"),
        format!(r#"{{"credHelpers":{{"{AUTH_REGISTRY}":"uplifttest"}}}}"#),
    )
    .unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-uplifttest");
    let log = dir.path().join("helper.log");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n\
             read server\n\
             echo \"$1 $server\" >> '{}'\n\
             [ \"$1\" = get ] || exit 1\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"uplift\",\"Secret\":\"{secret}\"}}\\n' \"$server\"\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, bin)
}

fn pipeline(dir: &Path, repository: &str) -> PathBuf {
    common::image_pipeline(
        dir,
        "credentials",
        repository,
        &["docker-config: docker-config.json"],
    )
}

fn run_with_path(dir: &Path, bin: &Path, pipeline: &Path) -> Output {
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    common::uplift()
        .current_dir(dir)
        .env("PATH", path)
        .env("XDG_RUNTIME_DIR", dir)
        .env_remove("DOCKER_CONFIG")
        .args(["run", "--events", "json", "-p"])
        .arg(pipeline)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap()
}

#[test]
fn a_credential_helper_supplies_the_password_and_a_wrong_one_is_refused_clearly() {
    if !docker::available() {
        return;
    }
    let repository = format!(
        "{AUTH_REGISTRY}/uplift-it/credhelper-{}",
        std::process::id()
    );

    let (dir, bin) = workspace("uplift-secret");
    let pushed = run_with_path(dir.path(), &bin, &pipeline(dir.path(), &repository));
    let (out, err) = (stdout(&pushed), stderr(&pushed));
    assert!(pushed.status.success(), "{out}{err}");
    let image = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "stage-finished")
        .map(|e| {
            e["outputs"]["image"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_default();
    assert!(image.starts_with(&format!("{repository}@sha256:")), "{out}");
    let log = std::fs::read_to_string(dir.path().join("helper.log")).unwrap();
    assert!(
        log.lines().any(|l| l == format!("get {AUTH_REGISTRY}")),
        "{log}"
    );
    assert!(!out.contains("uplift-secret") && !err.contains("uplift-secret"));

    let (dir, bin) = workspace("not-the-password");
    let refused = run_with_path(dir.path(), &bin, &pipeline(dir.path(), &repository));
    let (out, err) = (stdout(&refused), stderr(&refused));
    assert!(!refused.status.success(), "{out}{err}");
    let both = format!("{out}{err}");
    assert!(both.contains(AUTH_REGISTRY), "{both}");
    assert!(
        both.to_lowercase().contains("unauthorized") || both.contains("credentials"),
        "{both}"
    );
    assert!(!both.contains("not-the-password"), "{both}");
}

#[test]
fn a_missing_credential_helper_is_a_clear_error_naming_the_registry() {
    if !docker::available() {
        return;
    }
    let (dir, _bin) = workspace("unused");
    let empty = dir.path().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let repository = format!("{AUTH_REGISTRY}/uplift-it/nohelper-{}", std::process::id());
    let failed = run_with_path(dir.path(), &empty, &pipeline(dir.path(), &repository));
    let both = format!("{}{}", stdout(&failed), stderr(&failed));
    assert!(!failed.status.success(), "{both}");
    assert!(both.contains(AUTH_REGISTRY), "{both}");
    assert!(both.contains("docker-config.json"), "{both}");
    assert!(both.contains("docker-credential-uplifttest"), "{both}");
}
