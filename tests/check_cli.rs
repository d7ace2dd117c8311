//! End-to-end tests of `uplift check`: exit codes, ranges, formats, `--plan`, and GitHub mode.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::Path;

use common::*;

fn check(app: &Path, extra: &[&str]) -> std::process::Output {
    let mut command = uplift();
    command
        .arg("check")
        .args(ACME)
        .arg("--app")
        .arg(app)
        .args(extra);
    run(&mut command)
}

fn json(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(output), stderr(output)))
}

/// The fixture app with customizations that collide with upstream's changes.
fn conflicting_app() -> tempfile::TempDir {
    let app = fixture_app();
    let path = app.path();
    let readme = fs::read_to_string(path.join("README.md")).unwrap();
    fs::write(
        path.join("README.md"),
        readme.replace("Good luck!", "Maintained by the platform team."),
    )
    .unwrap();
    fs::write(path.join("plugins/README.md"), "# Our plugins\n").unwrap();
    app
}

#[test]
fn exit_code_up_to_date_is_0() {
    let app = fixture_app();
    let output = check(
        app.path(),
        &["--from", "2.0.0", "--exit-code", "--format", "json"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let doc = json(&output);
    assert_eq!(doc["upgrade_available"], false);
    assert_eq!(doc["result"], "up-to-date");
    assert_eq!(doc["target"], serde_json::Value::Null);
    assert_eq!(doc["latest"], "2.0.0");
}

#[test]
fn exit_code_upgrade_available_is_1_and_0_without_the_flag() {
    let app = fixture_app();
    let output = check(app.path(), &["--exit-code", "--format", "json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let doc = json(&output);
    assert_eq!(doc["current"], "1.0.0");
    assert_eq!(doc["target"], "2.0.0");
    assert_eq!(doc["upgrade_available"], true);
    let plain = check(app.path(), &[]);
    assert_eq!(plain.status.code(), Some(0));
    assert_eq!(
        stdout(&plain),
        "upgrade available: 1.0.0 -> 2.0.0 (latest 2.0.0, within major)\n"
    );
}

#[test]
fn exit_code_unreachable_upstream_is_3() {
    let app = fixture_app();
    // A closed port on loopback: the connection is refused at once.
    for source in [
        "git:http://127.0.0.1:9/backstage.git",
        "dir:/nonexistent/uplift-releases",
    ] {
        let output = run(uplift()
            .args(["check", "--exit-code", "--upstream", source, "--app"])
            .arg(app.path()));
        assert_eq!(
            output.status.code(),
            Some(3),
            "{source}: {}",
            stderr(&output)
        );
        let err = stderr(&output);
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains("hint: "), "{err}");
        assert!(stdout(&output).is_empty());
    }
}

#[test]
fn exit_code_bad_input_is_2() {
    let app = fixture_app();
    let unknown = check(app.path(), &["--from", "9.9.9", "--exit-code"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
    let no_upstream = run(uplift()
        .env_remove("UPLIFT_UPSTREAM")
        .args(["check", "--exit-code", "--app"])
        .arg(app.path()));
    assert_eq!(no_upstream.status.code(), Some(2));
}

#[test]
fn within_limits_the_target() {
    let app = fixture_app();
    let target = |within: &str| {
        json(&check(
            app.path(),
            &["--within", within, "--format", "json"],
        ))["target"]
            .clone()
    };
    assert_eq!(target("major"), "2.0.0");
    assert_eq!(target("minor"), "1.2.0");
    assert_eq!(target("patch"), serde_json::Value::Null);
    // --pre lets the pre-release count; --to caps the range.
    let pre = json(&check(app.path(), &["--pre", "--format", "json"]));
    assert_eq!(pre["target"], "2.1.0-next.0");
    let capped = json(&check(app.path(), &["--to", "1.1.0", "--format", "json"]));
    assert_eq!(capped["target"], "1.1.0");
}

#[test]
fn plan_reports_conflicts_with_reasons() {
    let app = conflicting_app();
    let output = check(app.path(), &["--plan", "--exit-code", "--format", "json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let doc = json(&output);
    assert_eq!(doc["merges_cleanly"], false);
    assert_eq!(doc["result"], "conflicts");
    let conflicts = doc["conflicts"].as_array().unwrap();
    let paths: Vec<&str> = conflicts
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"README.md"), "{paths:?}");
    assert!(paths.contains(&"plugins/README.md"), "{paths:?}");
    assert!(
        conflicts
            .iter()
            .all(|c| c["reason"].as_str().is_some_and(|r| !r.is_empty()))
    );
    // Clean app: merges cleanly.
    let clean = fixture_app();
    let doc = json(&check(clean.path(), &["--plan", "--format", "json"]));
    assert_eq!(doc["merges_cleanly"], true);
    assert_eq!(doc["conflicts"].as_array().unwrap().len(), 0);
}

#[test]
fn check_never_writes_to_the_app() {
    let app = conflicting_app();
    let before = snapshot_tree(app.path());
    let output = check(app.path(), &["--plan", "--format", "markdown"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).contains("### Conflicts to resolve"));
    assert_eq!(before, snapshot_tree(app.path()));
}

/// Runs `uplift ARGS` under a pseudo-terminal (util-linux `script`), returning what the
/// terminal showed.
fn on_a_terminal(args: &str, no_color: bool) -> String {
    let mut command = std::process::Command::new("script");
    command
        .args([
            "-qec",
            &format!("{} {args}", env!("CARGO_BIN_EXE_uplift")),
            "/dev/null",
        ])
        .current_dir(root())
        .env_remove("GITHUB_ACTIONS")
        .env_remove("NO_COLOR");
    if no_color {
        command.env("NO_COLOR", "1");
    }
    let output = command
        .output()
        .expect("util-linux `script` (see scripts/services.sh)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn spinner_and_colour_only_on_a_terminal_and_never_with_no_color() {
    let args = format!("check {} --app fixtures/apps/acme-portal", ACME.join(" "));
    let tty = on_a_terminal(&args, false);
    assert!(tty.contains("reading the upstream's releases"), "{tty:?}");
    assert!(tty.contains("\x1b[36m"), "colour on a terminal: {tty:?}");
    assert!(tty.contains("upgrade available: 1.0.0 -> 2.0.0"));
    let plain_tty = on_a_terminal(&args, true);
    assert!(plain_tty.contains("reading the upstream's releases"));
    assert!(
        !plain_tty.contains("\x1b[36m") && !plain_tty.contains("\x1b[2m"),
        "NO_COLOR: {plain_tty:?}"
    );
    let quiet = on_a_terminal(&format!("{args} --quiet --exit-code"), false);
    assert!(!quiet.contains("reading"), "{quiet:?}");
    // Not a terminal: no spinner, no escape codes at all.
    let piped = run(uplift()
        .args(["check"])
        .args(ACME)
        .args(["--app", "fixtures/apps/acme-portal"]));
    let all = format!("{}{}", stdout(&piped), stderr(&piped));
    assert!(!all.contains('\x1b') && !all.contains("reading"), "{all:?}");
}

#[test]
fn check_reads_the_upstream_from_a_pipeline_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("uplift.yml");
    fs::write(
        &file,
        format!(
            "name: weekly\nupstream:\n  source: dir:{}\n  template: default-app\n  values:\n    name: acme-portal\n    defaultBranch: main\nstages:\n  check:\n    uses: upgrade\n    with:\n      app: .\n      check: true\n",
            root().join("fixtures/templates/acme").display()
        ),
    )
    .unwrap();
    let output = run(uplift()
        .args([
            "check", "--plan", "--format", "json", "--within", "minor", "-p",
        ])
        .arg(&file)
        .args(["--app", "fixtures/apps/acme-portal"]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let doc = json(&output);
    assert_eq!(doc["target"], "1.2.0");
    assert_eq!(doc["merges_cleanly"], true);
    // A pipeline without an upstream block is bad input.
    fs::write(
        &file,
        "name: x\nstages:\n  a:\n    uses: run\n    with:\n      run: 'true'\n",
    )
    .unwrap();
    let output = run(uplift().args(["check", "-p"]).arg(&file));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}
