//! The Docker engine of this machine: whether it answers, the fixture images (built FROM scratch
//! with Debian's static busybox, since nothing can be pulled), deploy targets' clean-up, load
//! loops, and small queries through the `docker` CLI or a bollard handle.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use crate::{fixture, fs::copy_dir, missing};

/// The repository of the deploy fixture images (`fixtures/deploy`).
pub const DEPLOY_FIXTURE: &str = "uplift-deploy-fixture";

/// Whether a Docker engine answers the CLI; with `CI=true` a missing engine fails the test.
#[track_caller]
pub fn available() -> bool {
    let ok = try_docker(&["version", "--format", "{{.Server.Version}}"]).is_some();
    if !ok {
        missing("no Docker engine");
    }
    ok
}

/// The engine handle of a connection attempt (`Engine::connect().await`); `None` when it
/// failed and the test is skipped, a failure with `CI=true`.
#[track_caller]
pub fn connected<T, E: std::fmt::Display>(connection: Result<T, E>) -> Option<T> {
    match connection {
        Ok(engine) => Some(engine),
        Err(e) => {
            missing(&format!("no Docker engine ({e})"));
            None
        }
    }
}

/// Runs `docker ARGS`, asserting success; its trimmed stdout.
#[track_caller]
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs `docker ARGS`; its trimmed stdout, or `None` when it could not run or failed.
pub fn try_docker(args: &[&str]) -> Option<String> {
    let out = Command::new("docker").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Runs `docker ARGS` for its effect alone (clean-up of what may not exist).
pub fn docker_quiet(args: &[&str]) {
    let _ = Command::new("docker").args(args).output();
}

/// Builds `uplift-deploy-fixture:TAG` from `fixtures/deploy/DOCKERFILE` (busybox httpd serving
/// `health` and `version`, the latter answering `TAG`), with the classic builder.
#[track_caller]
pub fn build_deploy_fixture(tag: &str, dockerfile: &str) {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy("/bin/busybox", ctx.path().join("busybox")).unwrap();
    std::fs::create_dir(ctx.path().join("www")).unwrap();
    std::fs::write(ctx.path().join("www/health"), "ok\n").unwrap();
    std::fs::write(ctx.path().join("www/version"), format!("{tag}\n")).unwrap();
    build_classic(
        &format!("{DEPLOY_FIXTURE}:{tag}"),
        ctx.path(),
        Some(&fixture("deploy").join(dockerfile)),
    );
}

/// Builds image `TAG` from `CONTEXT` (from its `Dockerfile`, or `DOCKERFILE` when given) with
/// the classic builder, asserting success.
#[track_caller]
pub fn build_classic(tag: &str, context: &Path, dockerfile: Option<&Path>) {
    let mut command = Command::new("docker");
    command
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", tag]);
    if let Some(dockerfile) = dockerfile {
        command.arg("-f").arg(dockerfile);
    }
    let out = command.arg(context).output().unwrap();
    assert!(
        out.status.success(),
        "build {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Fills `dir` with the build context of `fixtures/images/NAME` plus Debian's static busybox.
pub fn image_context_in(name: &str, dir: &Path) {
    copy_dir(&fixture("images").join(name), dir);
    std::fs::copy("/bin/busybox", dir.join("busybox")).unwrap();
}

/// A temp folder holding the build context of `fixtures/images/NAME` plus busybox.
pub fn image_context(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    image_context_in(name, dir.path());
    dir
}

/// Removes a deploy target's containers (by their `dev.uplift.deploy.target` label), its
/// load-loop container (`TARGET-load`) and its network when dropped.
pub struct TargetCleanup {
    pub target: String,
    pub network: String,
}

impl TargetCleanup {
    /// Clean-up of `target` on `network`, after removing what an earlier run of the same name
    /// left behind.
    pub fn new(target: impl Into<String>, network: impl Into<String>) -> Self {
        let cleanup = TargetCleanup {
            target: target.into(),
            network: network.into(),
        };
        cleanup.remove();
        cleanup
    }

    fn remove(&self) {
        let ids = try_docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=dev.uplift.deploy.target={}", self.target),
        ])
        .unwrap_or_default();
        for id in ids.split_whitespace() {
            docker_quiet(&["rm", "-f", id]);
        }
        docker_quiet(&["rm", "-f", &format!("{}-load", self.target)]);
        docker_quiet(&["network", "rm", &self.network]);
    }
}

impl Drop for TargetCleanup {
    fn drop(&mut self) {
        self.remove();
    }
}

/// One line per replica of a deploy target, in `docker ps` `FORMAT`, sorted; stopped ones too
/// when `all`. The target's release records (containers that are never started) are not
/// replicas: [`target_records`] lists them.
pub fn target_containers(target: &str, all: bool, format: &str) -> Vec<String> {
    let mut lines: Vec<String> = target_lines(target, all, format)
        .into_iter()
        .filter_map(|(record, line)| (!record).then_some(line))
        .collect();
    lines.sort();
    lines
}

/// The release ids of a deploy target's record containers, newest first.
pub fn target_records(target: &str) -> Vec<u64> {
    let mut ids: Vec<u64> = target_lines(target, true, "{{.Label \"dev.uplift.deploy.release\"}}")
        .into_iter()
        .filter(|(record, _)| *record)
        .filter_map(|(_, id)| id.parse().ok())
        .collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids
}

/// `(is a record container, line in FORMAT)` of each container of a target.
fn target_lines(target: &str, all: bool, format: &str) -> Vec<(bool, String)> {
    let filter = format!("label=dev.uplift.deploy.target={target}");
    let format =
        format!("{{{{if .Label \"dev.uplift.deploy.record\"}}}}record{{{{end}}}}|{format}");
    let mut args = vec!["ps"];
    if all {
        args.push("-a");
    }
    args.extend(["--filter", &filter, "--format", &format]);
    docker(&args)
        .lines()
        .filter_map(|line| line.split_once('|'))
        .map(|(record, line)| (record == "record", line.to_owned()))
        .collect()
}

/// The body of `COUNT` GETs of `URL` (5 s each, `FAIL` for a failed one) from a one-shot
/// container of the deploy fixture on `NETWORK`, one line each.
pub fn fetch_from(network: &str, url: &str, count: u32) -> Vec<String> {
    let rounds: Vec<String> = (1..=count).map(|i| i.to_string()).collect();
    let script = format!(
        "for i in {}; do timeout 5 wget -q -O - {url} || echo FAIL; done",
        rounds.join(" ")
    );
    docker(&[
        "run",
        "--rm",
        "--network",
        network,
        "--entrypoint",
        "/bin/sh",
        &format!("{DEPLOY_FIXTURE}:v1"),
        "-c",
        &script,
    ])
    .lines()
    .map(str::to_owned)
    .collect()
}

/// `fixtures/deploy/load.sh` running in container `TARGET-load` on `NETWORK`: GETs of `URL`,
/// bounded by a request count and a time limit, counted by outcome and version.
pub struct LoadLoop {
    pub name: String,
}

/// What a load loop counted (its last line, with its stderr if any).
#[derive(Debug)]
pub struct LoadResult {
    pub ok: u64,
    pub fail: u64,
    pub v1: u64,
    pub v2: u64,
    pub line: String,
}

impl LoadLoop {
    /// Starts the loop (at most `max` requests, `secs` seconds).
    pub fn start(target: &str, network: &str, url: &str, max: u32, secs: u32) -> LoadLoop {
        let script = std::fs::read_to_string(fixture("deploy/load.sh")).unwrap();
        let name = format!("{target}-load");
        docker_quiet(&["rm", "-f", &name]);
        docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            network,
            "--label",
            &format!("dev.uplift.deploy.test={target}"),
            "--entrypoint",
            "/bin/sh",
            &format!("{DEPLOY_FIXTURE}:v1"),
            "-c",
            &script,
            "load",
            url,
            &max.to_string(),
            &secs.to_string(),
        ]);
        LoadLoop { name }
    }

    /// Asks the loop to stop, waits for it and reads its counts.
    pub fn stop(&self) -> LoadResult {
        docker_quiet(&["exec", &self.name, "/bin/busybox", "touch", "/tmp/stop"]);
        docker(&["wait", &self.name]);
        let out = Command::new("docker")
            .args(["logs", &self.name])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let mut line = stdout.lines().last().unwrap_or_default().to_owned();
        if !stderr.trim().is_empty() {
            line.push_str(&format!(" [{}]", stderr.trim().replace('\n', "; ")));
        }
        let field = |key: &str| -> u64 {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        LoadResult {
            ok: field("ok"),
            fail: field("fail"),
            v1: field("v1"),
            v2: field("v2"),
            line,
        }
    }
}

/// How many containers, running or not, match the engine filter `KEY=VALUE` (e.g. `label`,
/// `name`).
pub async fn count_containers(docker: &bollard::Docker, key: &str, value: &str) -> usize {
    let filters = HashMap::from([(key, vec![value])]);
    let options = bollard::query_parameters::ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    docker.list_containers(Some(options)).await.unwrap().len()
}

/// Removes a volume, asserting it went.
pub async fn remove_volume(docker: &bollard::Docker, name: &str) {
    docker
        .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
        .await
        .unwrap();
}

/// Removes an image by force if it is there.
pub async fn remove_image(docker: &bollard::Docker, reference: &str) {
    let options = bollard::query_parameters::RemoveImageOptionsBuilder::new()
        .force(true)
        .build();
    let _ = docker.remove_image(reference, Some(options), None).await;
}
