//! End-to-end tests of the upgrade commands: `releases`, `diff`, `render`, `plan`, `apply`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;

use common::{
    ACME, conflicting_app, fixture_app, git_commit_all, run, snapshot_tree, stderr, stdout, uplift,
};

fn plan(app: &std::path::Path, to: &str, format: &str) -> std::process::Output {
    run(uplift()
        .arg("plan")
        .arg("--app")
        .arg(app)
        .args(ACME)
        .args(["--to", to, "--format", format]))
}

#[test]
fn releases_are_ordered_and_marked() {
    let output = run(uplift()
        .arg("releases")
        .args(ACME)
        .args(["--app", "fixtures/apps/acme-portal"]));
    assert!(output.status.success(), "{}", stderr(&output));
    insta::assert_snapshot!(stdout(&output), @r"
    1.0.0  main  (current)
    1.1.0  main
    1.2.0  main
    2.0.0  main  (latest main)
    ");
    let with_pre = run(uplift().arg("releases").args(ACME).arg("--pre"));
    assert!(
        stdout(&with_pre).contains("2.1.0-next.0"),
        "{}",
        stdout(&with_pre)
    );
    assert!(
        stdout(&with_pre).contains("2.0.0         main  (latest main)"),
        "pre-releases are never main's latest: {}",
        stdout(&with_pre)
    );
}

#[test]
fn diff_shows_the_upstream_change_alone() {
    let output = run(uplift()
        .arg("diff")
        .args(ACME)
        .args(["--from", "1.1.0", "--to", "1.2.0", "--stat"]));
    assert!(output.status.success(), "{}", stderr(&output));
    insta::assert_snapshot!(stdout(&output), @r"
    M backstage.json
    M package.json
    M packages/app/public/favicon.ico
    D packages/app/src/App.tsx
    A packages/app/src/app/App.tsx
    M packages/backend/package.json
    M packages/backend/start.sh
    D plugins/README.md
    A scripts/check.sh
    M yarn.lock
    ");
    let patch = run(uplift()
        .arg("diff")
        .args(ACME)
        .args(["--from", "1.0.0", "--to", "1.1.0"]));
    insta::assert_snapshot!("diff_1.0.0_1.1.0", stdout(&patch));
}

#[test]
fn plan_formats() {
    let app = common::root().join("fixtures/apps/acme-portal");
    for format in ["text", "json", "markdown", "patch"] {
        let output = plan(&app, "2.0.0", format);
        assert!(output.status.success(), "{format}: {}", stderr(&output));
        insta::assert_snapshot!(format!("plan_clean_{format}"), stdout(&output));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&plan(&app, "latest", "json").stdout).unwrap();
    assert_eq!(json["schema"], 1);
    assert_eq!(
        (json["from"].as_str(), json["to"].as_str()),
        (Some("1.0.0"), Some("2.0.0"))
    );
    let renamed = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["renamed_from"] == "packages/app/src/App.tsx")
        .expect("the rename is in the plan");
    assert_eq!(renamed["path"], "packages/app/src/app/App.tsx");
    assert_eq!(renamed["action"], "merge");
}

#[test]
fn plan_has_no_side_effects() {
    let app = fixture_app();
    let before = snapshot_tree(app.path());
    let output = plan(app.path(), "2.0.0", "patch");
    assert!(output.status.success());
    assert_eq!(before, snapshot_tree(app.path()));
}

#[test]
fn conflicts_are_planned_with_reasons() {
    let app = conflicting_app();
    let json: serde_json::Value =
        serde_json::from_slice(&plan(app.path(), "2.0.0", "json").stdout).unwrap();
    let conflicts: Vec<(String, String)> = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["action"] == "conflict")
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    insta::assert_debug_snapshot!(conflicts);
    assert_eq!(json["summary"]["conflict"], 4);
    let markdown = stdout(&plan(app.path(), "2.0.0", "markdown"));
    insta::assert_snapshot!("plan_conflicts_markdown", markdown);
}

#[test]
fn apply_writes_everything_and_commits_on_a_branch() {
    let app = fixture_app();
    let repo = git_commit_all(app.path());
    let output = run(uplift()
        .arg("apply")
        .arg("--app")
        .arg(app.path())
        .args(ACME)
        .args(["--to", "2.0.0", "--branch", "uplift/2.0.0"]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let head = repo.head().unwrap();
    assert_eq!(head.shorthand().ok(), Some("uplift/2.0.0"));
    let commit = head.peel_to_commit().unwrap();
    assert!(
        commit
            .message()
            .unwrap()
            .starts_with("Upgrade from 1.0.0 to 2.0.0")
    );
    // The work tree is clean: everything the apply wrote is in the commit.
    let statuses = repo.statuses(None).unwrap();
    assert_eq!(
        statuses.iter().filter(|s| !s.status().is_wt_new()).count(),
        0
    );
    let marker = fs::read_to_string(app.path().join("backstage.json")).unwrap();
    assert!(marker.contains("\"2.0.0\""), "{marker}");
    // Customizations survived; upstream's changes arrived.
    let index = fs::read_to_string(app.path().join("packages/backend/src/index.ts")).unwrap();
    assert!(
        index.contains("./plugins/my-plugin") && index.contains("featureFlags()"),
        "{index}"
    );
    let app_tsx = fs::read_to_string(app.path().join("packages/app/src/app/App.tsx")).unwrap();
    assert!(
        app_tsx.contains("DocsPage") && app_tsx.contains("'../apis'"),
        "{app_tsx}"
    );
    assert!(!app.path().join("packages/app/src/App.tsx").exists());
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(app.path().join("packages/backend/start.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_ne!(mode & 0o111, 0, "start.sh became executable");
}

#[test]
fn apply_refuses_a_dirty_tree_and_exits_1_on_conflicts() {
    let app = conflicting_app();
    git_commit_all(app.path());
    fs::write(app.path().join("app-config.yaml"), "uncommitted: true\n").unwrap();
    let args = |extra: &[&str]| {
        let mut command = uplift();
        command
            .arg("apply")
            .arg("--app")
            .arg(app.path())
            .args(ACME)
            .args(["--to", "2.0.0"])
            .args(extra);
        command
    };
    let before = snapshot_tree(app.path());
    let dirty = run(&mut args(&[]));
    assert_eq!(dirty.status.code(), Some(2));
    assert!(
        stderr(&dirty).contains("uncommitted changes (app-config.yaml)"),
        "{}",
        stderr(&dirty)
    );
    assert_eq!(
        before,
        snapshot_tree(app.path()),
        "a refused apply writes nothing"
    );

    let conflicted = run(&mut args(&["--allow-dirty"]));
    assert_eq!(conflicted.status.code(), Some(1), "{}", stderr(&conflicted));
    let readme = fs::read_to_string(app.path().join("README.md")).unwrap();
    assert!(
        readme.contains("<<<<<<< app\n") && readme.contains(">>>>>>> upstream 2.0.0\n"),
        "{readme}"
    );
    assert!(
        app.path()
            .join("packages/app/public/favicon.ico.upstream")
            .exists()
    );
    assert_eq!(
        fs::read(app.path().join("packages/app/public/favicon.ico")).unwrap(),
        b"\0\x01custom icon\0"
    );
    assert!(
        !app.path().join("scripts/setup.sh").exists(),
        "a file the app deleted stays deleted"
    );
    assert_eq!(
        fs::read_to_string(app.path().join("plugins/README.md")).unwrap(),
        "# Our plugins\n"
    );
}

#[test]
fn allow_conflicts_exits_0_and_diff3_shows_the_base() {
    let app = conflicting_app();
    let output = run(uplift()
        .arg("apply")
        .arg("--app")
        .arg(app.path())
        .args(ACME)
        .args([
            "--to",
            "2.0.0",
            "--allow-conflicts",
            "--conflict-style",
            "diff3",
            "-q",
        ]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let readme = fs::read_to_string(app.path().join("README.md")).unwrap();
    assert!(
        readme.contains(
            "||||||| upstream 1.0.0\nThis is your newly scaffolded Acme app. Good luck!\n"
        ),
        "{readme}"
    );
}

/// An app rendered from the first release and never touched, upgraded to the last, is byte for
/// byte a fresh render of the last: through a `git:` source this time.
#[test]
fn an_untouched_app_upgrades_to_a_fresh_render_from_a_git_source() {
    let repo = common::fixture_template_repo();
    let source = format!("git:{}", repo.path().display());
    let options = [
        "--template",
        "default-app",
        "--set",
        "name=x",
        "--set",
        "defaultBranch=main",
    ];
    let work = tempfile::tempdir().unwrap();
    let (old, fresh) = (work.path().join("old"), work.path().join("fresh"));
    for (release, out) in [("1.0.0", &old), ("2.0.0", &fresh)] {
        let output = run(uplift()
            .args(["render", "--upstream", &source])
            .args(options)
            .args(["--release", release, "--out"])
            .arg(out));
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let output = run(uplift()
        .args(["apply", "--upstream", &source])
        .args(options)
        .arg("--app")
        .arg(&old)
        .args(["--to", "latest", "-q"]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let (upgraded, fresh) = (snapshot_tree(&old), snapshot_tree(&fresh));
    // Byte for byte, modes included; the untouched lockfile took upstream's.
    assert_eq!(upgraded, fresh);
}

#[test]
fn bad_input_gets_one_clear_line_and_exit_2() {
    let app = common::root().join("fixtures/apps/acme-portal");
    let unknown = plan(&app, "9.9.9", "text");
    assert_eq!(unknown.status.code(), Some(2));
    insta::assert_snapshot!(stderr(&unknown), @r#"
    error: unknown release "9.9.9" in dir:fixtures/templates/acme (releases nearby: 1.2.0, 2.0.0)
    hint: `uplift releases --upstream SOURCE` lists the releases
    "#);

    // A broken marker file names its line and column.
    let broken = fixture_app();
    fs::write(
        broken.path().join("backstage.json"),
        "{\n  \"version\": 1.0.0\n}\n",
    )
    .unwrap();
    let output = plan(broken.path(), "2.0.0", "text");
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.starts_with("error: ") && message.contains("backstage.json:2:"),
        "{message}"
    );

    // A malformed template names the template file and line.
    let templates = tempfile::tempdir().unwrap();
    common::copy_dir(
        &common::root().join("fixtures/templates/acme"),
        templates.path(),
    );
    fs::write(
        templates.path().join("2.0.0/default-app/README.md.hbs"),
        "# {{name}}\n{{#if}}\n",
    )
    .unwrap();
    let output = run(uplift()
        .arg("plan")
        .arg("--app")
        .arg(&app)
        .arg("--upstream")
        .arg(format!("dir:{}", templates.path().display()))
        .args([
            "--template",
            "default-app",
            "--set",
            "name=x",
            "--set",
            "defaultBranch=main",
        ]));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("README.md.hbs:3:1: invalid handlebars syntax"),
        "{}",
        stderr(&output)
    );

    // An unknown variable names the variable and how to set it.
    let output = run(uplift().arg("plan").arg("--app").arg(&app).args([
        "-u",
        "dir:fixtures/templates/acme",
        "--template",
        "default-app",
    ]));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains(".gitignore.hbs:24:19: unknown variable `defaultBranch` (set it with --set defaultBranch=VALUE)"),
        "{}",
        stderr(&output)
    );

    // A path that escapes the app through a symlink.
    let escaping = fixture_app();
    let outside = tempfile::tempdir().unwrap();
    fs::create_dir_all(outside.path().join("src")).unwrap();
    fs::remove_dir_all(escaping.path().join("packages/app")).unwrap();
    std::os::unix::fs::symlink(outside.path(), escaping.path().join("packages/app")).unwrap();
    let output = plan(escaping.path(), "2.0.0", "text");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("escapes"), "{}", stderr(&output));
    let output = run(uplift()
        .arg("apply")
        .arg("--app")
        .arg(escaping.path())
        .args(ACME)
        .arg("--allow-dirty"));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        fs::read_dir(outside.path().join("src"))
            .unwrap()
            .next()
            .is_none(),
        "nothing written outside"
    );

    // No upstream at all.
    let output = run(uplift().arg("plan").env_remove("UPLIFT_UPSTREAM"));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("hint: pass --upstream"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn stepwise_commits_each_release_and_stops_at_the_first_conflict() {
    let app = fixture_app();
    // Conflicts only with 2.0.0 (which rewrites this README line).
    let readme = fs::read_to_string(app.path().join("README.md")).unwrap();
    fs::write(
        app.path().join("README.md"),
        readme.replace("Good luck!", "Maintained by us."),
    )
    .unwrap();
    let repo = git_commit_all(app.path());
    let plan = run(uplift()
        .arg("plan")
        .arg("--app")
        .arg(app.path())
        .args(ACME)
        .args(["--stepwise", "--format", "json"]));
    assert!(plan.status.success(), "{}", stderr(&plan));
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let steps: Vec<String> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}->{}:{}",
                s["from"].as_str().unwrap(),
                s["to"].as_str().unwrap(),
                s["summary"]["conflict"]
            )
        })
        .collect();
    assert_eq!(
        steps,
        ["1.0.0->1.1.0:0", "1.1.0->1.2.0:0", "1.2.0->2.0.0:1"]
    );
    assert_eq!(plan["stopped_at"], "2.0.0");

    let output = run(uplift()
        .arg("apply")
        .arg("--app")
        .arg(app.path())
        .args(ACME)
        .args(["--stepwise", "--branch", "uplift/steps"]));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("stopped before 1.2.0 -> 2.0.0"),
        "{}",
        stderr(&output)
    );
    let mut walk = repo.revwalk().unwrap();
    walk.push_head().unwrap();
    let messages: Vec<String> = walk
        .map(|oid| {
            let commit = repo.find_commit(oid.unwrap()).unwrap();
            String::from_utf8_lossy(commit.summary_bytes().unwrap_or_default()).into_owned()
        })
        .collect();
    assert_eq!(
        messages,
        [
            "Upgrade from 1.1.0 to 1.2.0",
            "Upgrade from 1.0.0 to 1.1.0",
            "initial"
        ]
    );
    let marker = fs::read_to_string(app.path().join("backstage.json")).unwrap();
    assert!(marker.contains("\"1.2.0\""), "{marker}");
    assert!(
        !fs::read_to_string(app.path().join("README.md"))
            .unwrap()
            .contains("<<<<<<<")
    );
}
