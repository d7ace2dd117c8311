//! Progress of long work through `uplift run`, on the real Docker engine and the open registry
//! on 127.0.0.1:5000 (started by `scripts/services.sh`): `--events json` carries
//! `stage-progress` events for the build's steps and each pushed layer, every task ending with
//! one `done` event whose `current` equals its `total`; the text output (stderr not a terminal)
//! has one line per finished task and none per tick. With `CI=true`, a missing engine fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{stderr, stdout};
use uplift_testkit::docker::{self, TargetCleanup, build_deploy_fixture};
use uplift_testkit::{per_process, unique};

/// A work folder with the busybox image context; `app/` holds data unique to this run, so at
/// least one layer is new to the registry and its bytes are really sent.
fn workspace(unique: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web");
    docker::image_context_in("busybox", &web);
    std::fs::write(web.join("app/message.txt"), format!("run {unique}\n")).unwrap();
    // 512 kB that no earlier run pushed: a layer of real size.
    let blob: Vec<u8> = (0..512_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 ^ unique.len() as u8)
        .chain(unique.bytes())
        .collect();
    std::fs::write(web.join("app/blob.bin"), blob).unwrap();
    dir
}

fn pipeline(dir: &Path, repository: &str) -> PathBuf {
    common::image_pipeline(dir, "progress", repository, &[])
}

fn run(dir: &Path, pipeline: &Path, extra: &[&str]) -> std::process::Output {
    common::uplift()
        .args(["run", "-p"])
        .arg(pipeline)
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn push_reports_each_layer_and_the_text_output_one_line_per_finished_task() {
    if !docker::available() {
        return;
    }
    let id = unique("run");
    let dir = workspace(&id);
    let repository = format!("127.0.0.1:5000/uplift-it/progress-{id}");
    let file = pipeline(dir.path(), &repository);

    let out = run(dir.path(), &file, &["--events", "json"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let events: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let progress: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "stage-progress")
        .collect();
    assert!(
        !progress.is_empty(),
        "no stage-progress event in {events:?}"
    );

    // Events by task, in order.
    let mut tasks: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
    for e in &progress {
        assert_eq!(e["stage"], "image");
        tasks
            .entry(e["task"].as_str().unwrap().to_owned())
            .or_default()
            .push(e);
    }
    let push_prefix = format!("push {repository}:1.0.0 layer ");
    let layers: Vec<&String> = tasks
        .keys()
        .filter(|t| t.starts_with(&push_prefix))
        .collect();
    // busybox, the installed applets, the app: three layers at least.
    assert!(layers.len() >= 3, "layer tasks: {:?}", tasks.keys());
    for (task, events) in &tasks {
        let last = events.last().unwrap();
        assert_eq!(
            last["done"], true,
            "{task} ends with a done event: {events:?}"
        );
        assert_eq!(
            events.iter().filter(|e| e["done"] == true).count(),
            1,
            "{task}: one done event"
        );
        assert_eq!(last["current"], last["total"], "{task}: {last}");
    }
    // The layer holding the new data was sent: its final count is its size.
    let pushed: Vec<u64> = layers
        .iter()
        .map(|t| tasks[*t].last().unwrap())
        .filter(|e| e["message"] == "pushed")
        .map(|e| e["current"].as_u64().unwrap())
        .collect();
    assert!(
        pushed.iter().any(|bytes| *bytes >= 512_000),
        "a pushed layer of the 512 kB blob: {pushed:?}"
    );
    for task in &layers {
        assert!(tasks[*task].iter().all(|e| e["unit"] == "bytes"), "{task}");
    }
    let build = &tasks[&format!("build {repository}")];
    let last = build.last().unwrap();
    assert_eq!(last["unit"], "steps");
    assert!(last["total"].as_u64().unwrap() >= 3, "{last}");
    // The run folder's events.jsonl has them too.
    let run_dir = events[0]["dir"].as_str().unwrap();
    let recorded = std::fs::read_to_string(Path::new(run_dir).join("events.jsonl")).unwrap();
    assert!(recorded.contains("\"event\":\"stage-progress\""));

    // Text output, stderr not a terminal: one line per finished task, none while it runs.
    let id = unique("run");
    let repository = format!("127.0.0.1:5000/uplift-it/progress-{id}");
    std::fs::write(
        dir.path().join("web/app/message.txt"),
        format!("run {id}\n"),
    )
    .unwrap();
    let file = pipeline(dir.path(), &repository);
    let out = run(dir.path(), &file, &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{}{err}", stdout(&out));
    let layer_lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains(&format!("push {repository}:1.0.0 layer ")))
        .collect();
    assert!(layer_lines.len() >= 3, "{err}");
    let mut seen = std::collections::BTreeSet::new();
    for line in &layer_lines {
        assert!(line.starts_with("image | push "), "{line}");
        let layer = line
            .split(" layer ")
            .nth(1)
            .unwrap()
            .split(':')
            .next()
            .unwrap();
        assert!(seen.insert(layer.to_owned()), "one line per layer: {err}");
        assert!(!line.contains("pushing"), "no line per tick: {line}");
    }
    assert!(
        layer_lines
            .iter()
            .any(|l| l.ends_with(" kB)") || l.ends_with(" MB)")),
        "a pushed layer's size: {layer_lines:?}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with(&format!("image | build {repository}: built ("))),
        "{err}"
    );
    assert!(!err.contains('\u{1b}'), "no escape sequence off a terminal");

    // GitHub Actions: the same lines, inside the stage's log group (the group names the stage).
    let out = run(dir.path(), &file, &["--github"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{}{err}", stdout(&out));
    let group = err
        .split("::group::image (image, success")
        .nth(1)
        .and_then(|g| g.split("::endgroup::").next())
        .unwrap_or_else(|| panic!("no group for the stage: {err}"));
    let layer_lines: Vec<&str> = group
        .lines()
        .filter(|l| l.starts_with(&format!("push {repository}:1.0.0 layer ")))
        .collect();
    assert!(layer_lines.len() >= 3, "{group}");
    assert!(
        layer_lines
            .iter()
            .all(|l| l.ends_with(": layer already exists")),
        "pushed already, by the text run: {layer_lines:?}"
    );
}

#[test]
fn a_docker_rollout_reports_replicas_serving_until_all_are() {
    if !docker::available() {
        return;
    }
    build_deploy_fixture("v1", "Dockerfile");
    let target = per_process("upt-progress");
    let _cleanup = TargetCleanup::new(&target, &target);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deploy.yml");
    std::fs::write(
        &file,
        format!(
            "name: rollout\n\
             stages:\n\
             \x20 deploy:\n\
             \x20   uses: deploy\n\
             \x20   with:\n\
             \x20     name: {target}\n\
             \x20     image: uplift-deploy-fixture:v1\n\
             \x20     replicas: 2\n\
             \x20     health: {{ image: true, timeout: 8 }}\n\
             \x20     drain-ms: 100\n"
        ),
    )
    .unwrap();
    let out = common::uplift()
        .args(["run", "-p"])
        .arg(&file)
        .arg("--dir")
        .arg(dir.path())
        .args(["--events", "json"])
        .env("XDG_RUNTIME_DIR", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let rollout: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "stage-progress")
        .collect();
    assert!(!rollout.is_empty(), "{}", stdout(&out));
    for e in &rollout {
        assert_eq!(e["task"], format!("rollout {target}"));
        assert_eq!(e["unit"], "replicas");
        assert_eq!(e["total"], 2);
    }
    let serving: Vec<u64> = rollout
        .iter()
        .map(|e| e["current"].as_u64().unwrap())
        .collect();
    assert!(
        serving.windows(2).all(|w| w[0] <= w[1]),
        "replicas serving only grow: {serving:?}"
    );
    let last = rollout.last().unwrap();
    assert_eq!(last["done"], true, "{rollout:?}");
    assert_eq!(last["current"], 2, "{last}");
    assert_eq!(last["message"], "release 1: 2 replicas serving");
    assert_eq!(rollout.iter().filter(|e| e["done"] == true).count(), 1);
}
