//! Release lines end to end (`--line main|next`, pre-releases), on the acme fixture releases
//! (`dir:`), whose 2.1.0-next.0 is a pre-release above the stable 2.0.0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ACME, fixture_app, run, stderr, stdout, uplift};

/// The fixture app, with its marker set to `release`.
fn app_at(release: &str) -> tempfile::TempDir {
    let app = fixture_app();
    std::fs::write(
        app.path().join("backstage.json"),
        format!("{{\n  \"version\": \"{release}\"\n}}\n"),
    )
    .unwrap();
    app
}

fn json(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout(output))
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", stdout(output), stderr(output)))
}

#[test]
fn an_app_on_a_pre_release_plans_without_pre_and_is_told_about_the_next_line() {
    let app = app_at("2.1.0-next.0");
    // Once refused ("unknown release"), now: the app's own release always resolves. Main's
    // latest (2.0.0) is older, so nothing is planned, and the plan says why and what to pass.
    let output = run(uplift().arg("plan").arg("--app").arg(app.path()).args(ACME));
    assert!(output.status.success(), "{}", stderr(&output));
    insta::assert_snapshot!("release_lines_pre_release_app_on_main", stdout(&output));

    let plan = json(&run(uplift()
        .arg("plan")
        .arg("--app")
        .arg(app.path())
        .args(ACME)
        .args(["--line", "next", "--format", "json"])));
    assert_eq!(plan["from"], "2.1.0-next.0");
    assert_eq!(plan["to"], "2.1.0-next.0");
    assert_eq!(plan["line"], "next");
    assert_eq!(plan["notes"], serde_json::json!([]));

    // `check` says the same, with the line in its outputs.
    let check = json(&run(uplift()
        .arg("check")
        .arg("--app")
        .arg(app.path())
        .args(ACME)
        .args(["--format", "json"])));
    assert_eq!(check["current"], "2.1.0-next.0");
    assert_eq!(check["latest"], "2.0.0");
    assert_eq!(check["line"], "main");
    assert_eq!(check["upgrade_available"], false);
    assert!(
        check["notes"][0].as_str().unwrap().contains("--line next"),
        "{check:#}"
    );
}

#[test]
fn the_next_line_targets_pre_releases_and_main_does_not() {
    let app = app_at("1.2.0");
    let target = |line: &str| {
        let doc = json(&run(uplift()
            .arg("check")
            .arg("--app")
            .arg(app.path())
            .args(ACME)
            .args(["--line", line, "--format", "json"])));
        (doc["target"].clone(), doc["latest"].clone())
    };
    assert_eq!(
        target("main"),
        (serde_json::json!("2.0.0"), serde_json::json!("2.0.0"))
    );
    assert_eq!(
        target("next"),
        (
            serde_json::json!("2.1.0-next.0"),
            serde_json::json!("2.1.0-next.0")
        )
    );
    let plan = json(&run(uplift()
        .arg("plan")
        .arg("--app")
        .arg(app.path())
        .args(ACME)
        .args(["--line", "next", "--format", "json"])));
    assert_eq!(plan["to"], "2.1.0-next.0");
    // An app on a stable release gets no note on the default line.
    let plan = json(&run(uplift()
        .arg("plan")
        .arg("--app")
        .arg(app.path())
        .args(ACME)
        .args(["--format", "json"])));
    assert_eq!(plan["to"], "2.0.0");
    assert_eq!(plan["notes"], serde_json::json!([]));
}

#[test]
fn releases_name_the_line_of_each_release() {
    let output = run(uplift().arg("releases").args(ACME).args(["--line", "next"]));
    assert!(output.status.success(), "{}", stderr(&output));
    insta::assert_snapshot!(stdout(&output), @r"
    1.0.0         main
    1.1.0         main
    1.2.0         main
    2.0.0         main  (latest main)
    2.1.0-next.0  next  (latest next)
    ");
    let doc = json(&run(uplift()
        .arg("releases")
        .args(ACME)
        .args(["--line", "next", "--json"])));
    assert_eq!(doc["line"], "next");
    assert_eq!(doc["latest"]["main"], "2.0.0");
    assert_eq!(doc["latest"]["next"], "2.1.0-next.0");
    let last = doc["releases"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["line"], "next");
    assert_eq!(last["latest"], true);
}

#[test]
fn an_unknown_or_hidden_pre_release_suggests_pre_and_line() {
    let app = app_at("1.0.0");
    // Hidden: it exists, but a target pre-release needs `--pre` or `--line next`.
    let hidden = run(uplift()
        .arg("plan")
        .arg("--app")
        .arg(app.path())
        .args(ACME)
        .args(["--to", "2.1.0-next.0"]));
    assert_eq!(hidden.status.code(), Some(2));
    insta::assert_snapshot!("release_lines_hidden_pre_release", stderr(&hidden));
    assert!(
        run(uplift()
            .arg("plan")
            .arg("--app")
            .arg(app.path())
            .args(ACME)
            .args(["--to", "2.1.0-next.0", "--pre"]))
        .status
        .success()
    );
    // Unknown anywhere: same hint, and the pre-releases nearby are named.
    let unknown = run(uplift()
        .arg("plan")
        .arg("--app")
        .arg(app.path())
        .args(ACME)
        .args(["--from", "2.1.0-next.7"]));
    assert_eq!(unknown.status.code(), Some(2));
    let message = stderr(&unknown);
    assert!(
        message.contains("releases nearby: 2.0.0, 2.1.0-next.0"),
        "{message}"
    );
    assert!(message.contains("--line next"), "{message}");
    // A stable name keeps the plain hint.
    let stable = run(uplift()
        .arg("plan")
        .arg("--app")
        .arg(app.path())
        .args(ACME)
        .args(["--to", "1.9.0"]));
    assert!(
        stderr(&stable).contains("`uplift releases --upstream SOURCE` lists the releases"),
        "{}",
        stderr(&stable)
    );
}

#[test]
fn the_pr_body_names_the_line_and_the_notes() {
    let app = app_at("2.0.0");
    let body = app.path().join("body.md");
    let output = run(uplift()
        .arg("apply")
        .arg("--app")
        .arg(app.path())
        .args(ACME)
        .args(["--line", "next", "--allow-conflicts", "--pr-body"])
        .arg(&body));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = std::fs::read_to_string(&body).unwrap();
    assert!(text.contains("to **2.1.0-next.0**"), "{text}");
    assert!(text.contains("(release line `next`)"), "{text}");
}
