//! The engine on real data: Backstage's `create-app` templates from `../shared/corpus/`.
//!
//! The bundle is not part of this repository. Outside CI a missing bundle skips these tests (with
//! a message); in CI (`CI=true`) it is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::{run, snapshot_tree, stderr, stdout, uplift};

fn bundle() -> Option<PathBuf> {
    let path = common::root().join("../shared/corpus/backstage-create-app-early.bundle");
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the corpus bundle is missing at {}",
        path.display()
    );
    eprintln!("skipped: no corpus bundle at {}", path.display());
    None
}

const VALUES: &[&str] = &[
    "--template",
    "default-app",
    "--set",
    "name=backstage",
    "--set",
    "defaultBranch=main",
];

#[test]
fn an_untouched_app_from_1_41_upgraded_to_1_46_equals_a_fresh_render() {
    let Some(bundle) = bundle() else { return };
    let source = format!("git:{}", bundle.display());
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (app, fresh) = (work.path().join("app"), work.path().join("fresh"));
    for (release, out) in [("1.41.0", &app), ("1.46.0", &fresh)] {
        let output = run(uplift()
            .env("UPLIFT_CACHE_DIR", cache.path())
            .args(["render", "--upstream", &source])
            .args(VALUES)
            .args(["--release", release, "--out"])
            .arg(out));
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let releases = run(uplift().env("UPLIFT_CACHE_DIR", cache.path()).args([
        "releases",
        "--upstream",
        &source,
    ]));
    assert_eq!(
        stdout(&releases).lines().count(),
        7,
        "{}",
        stdout(&releases)
    );

    let plan = run(uplift()
        .env("UPLIFT_CACHE_DIR", cache.path())
        .args(["plan", "--upstream", &source])
        .args(VALUES)
        .arg("--app")
        .arg(&app)
        .args(["--to", "1.46.0", "--format", "json"]));
    assert!(plan.status.success(), "{}", stderr(&plan));
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(plan["summary"]["conflict"], 0, "{plan:#}");
    assert!(
        plan["summary"]["files"].as_u64().unwrap() > 5,
        "the releases differ: {plan:#}"
    );

    let output = run(uplift()
        .env("UPLIFT_CACHE_DIR", cache.path())
        .args(["apply", "--upstream", &source])
        .args(VALUES)
        .arg("--app")
        .arg(&app)
        .args(["--to", "1.46.0", "-q"]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        snapshot_tree(&app) == snapshot_tree(&fresh),
        "the upgraded app differs from a fresh render"
    );
}

/// Every text file (UTF-8, no NUL, no CR yet) rewritten with CRLF line endings.
fn convert_to_crlf(dir: &std::path::Path) {
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.unwrap();
        if !entry.file_type().is_file() {
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        if text.contains(['\0', '\r']) {
            continue;
        }
        std::fs::write(entry.path(), text.replace('\n', "\r\n")).unwrap();
    }
}

/// Line endings (issue 10, item 9): an app checked out with CRLF against the LF templates
/// upgrades without a conflict and ends as a fresh render would be checked out.
#[test]
fn a_crlf_app_from_1_41_upgraded_to_1_46_equals_a_crlf_fresh_render() {
    let Some(bundle) = bundle() else { return };
    let source = format!("git:{}", bundle.display());
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (app, fresh) = (work.path().join("app"), work.path().join("fresh"));
    for (release, out) in [("1.41.0", &app), ("1.46.0", &fresh)] {
        let output = run(uplift()
            .env("UPLIFT_CACHE_DIR", cache.path())
            .args(["render", "--upstream", &source])
            .args(VALUES)
            .args(["--release", release, "--out"])
            .arg(out));
        assert!(output.status.success(), "{}", stderr(&output));
        convert_to_crlf(out);
    }
    let plan = run(uplift()
        .env("UPLIFT_CACHE_DIR", cache.path())
        .args(["plan", "--upstream", &source])
        .args(VALUES)
        .arg("--app")
        .arg(&app)
        .args(["--to", "1.46.0", "--format", "json"]));
    assert!(plan.status.success(), "{}", stderr(&plan));
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(plan["summary"]["conflict"], 0, "{plan:#}");
    assert!(plan["summary"]["update"].as_u64().unwrap() > 5, "{plan:#}");

    let output = run(uplift()
        .env("UPLIFT_CACHE_DIR", cache.path())
        .args(["apply", "--upstream", &source])
        .args(VALUES)
        .arg("--app")
        .arg(&app)
        .args(["--to", "1.46.0", "-q"]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        snapshot_tree(&app) == snapshot_tree(&fresh),
        "the upgraded CRLF app differs from a fresh render in CRLF"
    );
}
