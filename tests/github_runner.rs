//! The binary's output read as the Actions runner reads it (`uplift_github::runner`, written from
//! actions/runner's `ActionCommandManager`): untrusted text (stage output, file names and
//! contents from the app or the upstream) never becomes a workflow command; Uplift's own
//! commands (masks, groups, annotations) still do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::process::Output;

use common::*;
use uplift_github::runner::Runner;

/// Runs `command` as a step inside Actions (temp output and summary files).
fn in_actions(command: &mut std::process::Command, dir: &std::path::Path) -> Output {
    let output = dir.join("github_output");
    let summary = dir.join("step_summary");
    if !output.exists() {
        fs::write(&output, "").unwrap();
    }
    if !summary.exists() {
        fs::write(&summary, "").unwrap();
    }
    run(command
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_STEP_SUMMARY", &summary))
}

/// What the runner makes of a step's two streams (stderr first: Uplift prints its commands
/// and logs there, and its data on stdout after them).
fn runner_reads(output: &Output) -> Runner {
    Runner::read(&format!("{}{}", stderr(output), stdout(output)))
}

const HOSTILE: &str = r#"name: hostile
stages:
  evil:
    uses: run
    with:
      run: |
        echo '::set-output name=image::evil'
        echo '::error title=forged::pwned'
        echo '::endgroup::'
        echo '::stop-commands::attacker'
        echo '::attacker::'
        echo '  ##[set-output name=legacy;]y'
        echo '::add-mask::evil'
        echo '::stop-commands::forever'
        echo 'plain line'
  after:
    uses: run
    needs: evil
    with:
      run: "echo '::warning file=x.ts::forged too'; exit 1"
"#;

#[test]
fn a_stage_cannot_issue_workflow_commands() {
    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("p.yml"), HOSTILE).unwrap();
    let output = in_actions(
        uplift()
            .current_dir(work.path())
            .args(["run", "-p", "p.yml", "--jobs", "1"]),
        work.path(),
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let runner = runner_reads(&output);
    let names: Vec<&str> = runner.commands.iter().map(|c| c.name.as_str()).collect();
    assert!(!runner.stopped, "commands left switched off: {names:?}");
    assert_eq!(runner.named("set-output").count(), 0, "{names:?}");
    assert_eq!(runner.named("add-mask").count(), 0, "{names:?}");
    // Every annotation processed is Uplift's own (titled after the failed stage).
    let annotations: Vec<_> = runner
        .commands
        .iter()
        .filter(|c| ["error", "warning", "notice"].contains(&c.name.as_str()))
        .collect();
    assert_eq!(annotations.len(), 1, "{annotations:?}");
    assert_eq!(
        annotations[0].properties,
        vec![("title".to_string(), "stage after (run) failed".to_string())]
    );
    // Groups stay balanced: one per stage, each closed by Uplift, not by the stage.
    assert_eq!(runner.named("group").count(), 2, "{names:?}");
    assert_eq!(runner.named("endgroup").count(), 2, "{names:?}");
    // The stage's lines are still in the log, as text.
    let err = stderr(&output);
    assert!(err.contains("\nplain line\n"), "{err}");
    assert!(err.contains("::set-output name=image::evil"), "{err}");
}

/// An upstream whose 2.0.0 adds a file named like a legacy command, holding command lines.
fn hostile_upstream() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for release in ["1.0.0", "2.0.0"] {
        let root = dir.path().join("upstream").join(release);
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("README.md"), format!("release {release}\n")).unwrap();
    }
    fs::write(
        dir.path().join("upstream/2.0.0/##[error]forged.txt"),
        " ::error::from a file's content\n::set-output name=x::y\n",
    )
    .unwrap();
    let app = dir.path().join("app");
    fs::create_dir_all(&app).unwrap();
    fs::write(app.join("README.md"), "release 1.0.0\n").unwrap();
    fs::write(app.join("backstage.json"), "{\"version\": \"1.0.0\"}\n").unwrap();
    dir
}

#[test]
fn plans_of_hostile_files_forge_nothing_and_json_keeps_its_meaning() {
    let dir = hostile_upstream();
    let upstream = format!("dir:{}", dir.path().join("upstream").display());
    let app = dir.path().join("app");
    for format in ["text", "patch", "markdown", "json"] {
        let output = in_actions(
            uplift().args([
                "plan",
                "--upstream",
                &upstream,
                "--app",
                app.to_str().unwrap(),
                "--format",
                format,
            ]),
            dir.path(),
        );
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let runner = runner_reads(&output);
        let forged: Vec<_> = runner
            .commands
            .iter()
            .filter(|c| !["stop-commands", "resume"].contains(&c.name.as_str()))
            .collect();
        assert!(
            forged.is_empty(),
            "{format}: {forged:?}\n{}",
            stdout(&output)
        );
        assert!(!runner.stopped, "{format}");
        if format == "json" {
            // Not wrapped (it stays one JSON document for `| jq`), and the same data.
            let plan: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
            let paths: Vec<&str> = plan["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["path"].as_str().unwrap())
                .collect();
            assert!(paths.contains(&"##[error]forged.txt"), "{paths:?}");
        } else {
            assert!(
                stdout(&output).contains("##[error]forged.txt"),
                "{format}: the file is still named"
            );
        }
    }
    // Written to a regular file, the data is exactly the data (no block lines).
    let file = fs::File::create(dir.path().join("plan.md")).unwrap();
    let output = in_actions(
        uplift()
            .args([
                "plan",
                "--upstream",
                &upstream,
                "--app",
                app.to_str().unwrap(),
                "--format",
                "markdown",
            ])
            .stdout(file),
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(0));
    let written = fs::read_to_string(dir.path().join("plan.md")).unwrap();
    assert!(!written.contains("::stop-commands::"), "{written}");
}

/// A step summary file already holding 910 KB from earlier steps: Uplift's summary of 3,000
/// conflicts is cut to the room left under GitHub's 1 MiB, lists conflicts first, and stays
/// valid markdown (no code fence left open), with the note saying what was cut.
#[test]
fn summary_is_cut_to_the_room_earlier_steps_left() {
    let dir = many_conflicts(3_000);
    let upstream = format!("dir:{}", dir.path().join("upstream").display());
    let line = "log line of an earlier step .........................................\n";
    let earlier = format!(
        "## Earlier step\n\n```text\n{}```\n",
        line.repeat(910_000 / 70)
    );
    assert!(earlier.len() >= 910_000, "{}", earlier.len());
    fs::write(dir.path().join("step_summary"), &earlier).unwrap();
    let output = in_actions(
        uplift()
            .args(["check", "--plan", "--upstream", &upstream, "--app"])
            .arg(dir.path().join("app")),
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let summary = fs::read_to_string(dir.path().join("step_summary")).unwrap();
    assert!(summary.len() <= 1024 * 1024, "{} bytes", summary.len());
    let ours = &summary[earlier.len()..];
    assert!(ours.len() > 100_000, "the room is used: {}", ours.len());
    assert!(
        ours.contains("This summary was cut"),
        "{}",
        &ours[ours.len() - 500..]
    );
    // Conflicts first: the first file Uplift names is a conflicting one.
    let first_item = ours.lines().find(|l| l.contains("module-")).unwrap();
    assert!(first_item.contains("conflict"), "{first_item}");
    let fences = ours
        .lines()
        .filter(|l| l.trim_start().starts_with("```"))
        .count();
    assert_eq!(fences % 2, 0, "an open code fence in {ours}");
}

/// Every form of a secret Uplift registers with `::add-mask::` (base64, URL-safe base64,
/// JSON-escaped) is masked in every channel: live output, `--events json`, the run folder's
/// logs and `events.jsonl`.
#[test]
fn derived_secret_forms_are_masked_in_every_channel() {
    let secret = r#"pa"ss\w?>rd-Zq"#;
    let work = tempfile::tempdir().unwrap();
    fs::write(
        work.path().join("p.yml"),
        r#"name: forms
stages:
  leak:
    uses: run
    env:
      S: ${{ secrets.TOKEN }}
    with:
      run: |
        printf '%s' "$S" | base64
        printf '%s' "$S" | base64 | tr '+/' '-_'
        printf '%s' "$S" | base64 | tr '+/' '-_' | tr -d '='
        printf '{"token": "%s"}\n' "$(printf '%s' "$S" | sed 's/[\\"]/\\&/g')"
"#,
    )
    .unwrap();
    let forms = uplift_exec::mask::secret_forms(secret);
    assert_eq!(forms.len(), 5, "{forms:?}");
    for events in ["text", "json"] {
        let output = in_actions(
            uplift()
                .current_dir(work.path())
                .args(["run", "-p", "p.yml", "--events", events])
                .env("UPLIFT_SECRET_TOKEN", secret),
            work.path(),
        );
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let err = stderr(&output);
        // Every form is registered with the runner, first.
        for form in &forms {
            assert!(
                err.lines()
                    .any(|l| l.starts_with("::add-mask::") && l.ends_with(form.as_str())),
                "{form} not registered"
            );
        }
        let channels = [
            ("stdout", stdout(&output)),
            (
                "stderr",
                err.lines()
                    .filter(|l| !l.starts_with("::add-mask::"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            ("run folder", every_file(&work.path().join(".uplift"))),
        ];
        for (channel, text) in &channels {
            for form in &forms {
                assert!(
                    !text.contains(form.as_str()),
                    "{events}: {form} in {channel}:\n{text}"
                );
            }
        }
        assert!(
            channels[2].1.contains("***"),
            "the log holds the masked lines"
        );
    }
}

/// The text of every file below `dir`.
fn every_file(dir: &std::path::Path) -> String {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| String::from_utf8_lossy(&fs::read(e.path()).unwrap()).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}
