//! `action.yml` and the example workflows agree with the binary: every `uplift` command they
//! run parses (same flags), every output the action declares is one uplift writes, and the
//! weekly check opens its PR with the body `apply --pr-body` writes. (Their schemas are checked
//! by `check-jsonschema` in scripts/test.sh.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;

use common::*;

fn yaml(path: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&fs::read_to_string(root().join(path)).unwrap())
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `${{ ... }}` replaced by a plausible value.
fn fill(command: &str) -> String {
    let mut out = String::new();
    let mut rest = command;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").unwrap() + start + 2;
        let expr = &rest[start..end];
        out.push_str(if expr.contains("target") {
            "2.0.0"
        } else if expr.contains("within") {
            "minor"
        } else if expr.contains("runner.temp") {
            "/tmp"
        } else {
            "uplift/2.0.0"
        });
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Every `command:` given to this action in a workflow.
fn action_commands(workflow: &serde_yaml::Value) -> Vec<String> {
    let mut commands = Vec::new();
    for (_, job) in workflow["jobs"].as_mapping().unwrap() {
        for step in job["steps"].as_sequence().unwrap() {
            let uses = step["uses"].as_str().unwrap_or_default();
            if uses.contains("/uplift@") {
                commands.push(step["with"]["command"].as_str().unwrap().to_string());
            }
            // `uplift ...` lines of shell steps (the action put it on the PATH).
            for line in step["run"].as_str().unwrap_or_default().lines() {
                if let Some(command) = line.trim().strip_prefix("uplift ") {
                    commands.push(command.to_string());
                }
            }
        }
    }
    commands
}

#[test]
fn workflow_commands_parse_with_the_binary() {
    let mut checked = 0;
    for file in [
        "pipelines/github/upgrade-check.yml",
        "pipelines/github/release.yml",
    ] {
        for command in action_commands(&yaml(file)) {
            let filled = fill(&command);
            // Split as action.yml does (`read -r -a`), then ask clap: --help after valid flags
            // exits 0, an unknown flag or a bad value exits 2.
            let args: Vec<&str> = filled.split_whitespace().collect();
            let output = run(uplift().args(&args).arg("--help"));
            assert_eq!(
                output.status.code(),
                Some(0),
                "{file}: `uplift {filled}` does not parse: {}",
                stderr(&output)
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 4);
    // The check itself can fail: a misspelt flag is refused.
    let bad = run(uplift().args(["check", "--whithin", "minor", "--help"]));
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn action_outputs_are_ones_uplift_writes() {
    let action = yaml("action.yml");
    assert_eq!(action["runs"]["using"], "composite");
    let written = [
        // check
        "upgrade-available",
        "current",
        "target",
        "latest",
        "conflicts",
        "conflicting-files",
        "conflict-regions",
        "result",
        // run
        "image",
        "digest",
        "run-id",
        "stage-outputs",
        // the action's own step
        "exit-code",
    ];
    let outputs = action["outputs"].as_mapping().unwrap();
    for (name, spec) in outputs {
        let name = name.as_str().unwrap();
        assert!(
            written.contains(&name),
            "action output {name} is never written"
        );
        assert_eq!(
            spec["value"].as_str().unwrap(),
            format!("${{{{ steps.uplift.outputs.{name} }}}}")
        );
    }
    for name in [
        "upgrade-available",
        "current",
        "target",
        "conflicts",
        "image",
        "digest",
        "result",
        "run-id",
        "stage-outputs",
    ] {
        assert!(outputs.contains_key(name), "action.yml lacks output {name}");
    }
    // Install and resolve go through the one script (tested in tests/install_script.rs), the
    // cache is keyed by the resolved commit, and nothing uses the empty-in-composite
    // `github.action_repository`/`github.action_ref`.
    let text = fs::read_to_string(root().join("action.yml")).unwrap();
    assert!(text.contains("bash \"$GITHUB_ACTION_PATH/scripts/install-uplift.sh\" resolve"));
    assert!(text.contains("bash \"$GITHUB_ACTION_PATH/scripts/install-uplift.sh\" install"));
    assert!(text.contains("${{ steps.resolve.outputs.commit }}"));
    assert!(!text.contains("github.action_repository }}"));
    assert!(!text.contains("github.action_ref }}"));
    let script = fs::read_to_string(root().join("scripts/install-uplift.sh")).unwrap();
    assert!(script.contains("cargo install --locked --path \"$action_path\""));
}

#[test]
fn weekly_check_opens_the_pr_with_the_pr_body_apply_writes() {
    let text = fs::read_to_string(root().join("pipelines/github/upgrade-check.yml")).unwrap();
    let workflow = yaml("pipelines/github/upgrade-check.yml");
    assert!(workflow["on"]["schedule"][0]["cron"].as_str().is_some());
    let commands = action_commands(&workflow);
    let apply = commands.iter().find(|c| c.starts_with("apply")).unwrap();
    let apply = fill(apply);
    let body = apply
        .split("--pr-body ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    assert!(
        text.contains(&format!(
            "--body-file \"$RUNNER_TEMP/{}\"",
            body.rsplit('/').next().unwrap()
        )),
        "{body}"
    );
    assert!(apply.contains("--branch") && apply.contains("--allow-conflicts"));
}
