//! The binary inside GitHub Actions (`GITHUB_ACTIONS=true`, temp `GITHUB_OUTPUT` and
//! `GITHUB_STEP_SUMMARY`), read back as the runner reads them: outputs (multi-line too), the
//! summary under 1 MiB for a 5,000-file plan, the annotation caps, log groups, and no secret
//! anywhere but the `::add-mask::` lines GitHub consumes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Output;

use common::*;

/// The runner's reading of `$GITHUB_OUTPUT`: `k=v` lines and `k<<DELIM` heredocs.
fn parse_github_output(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.split('\n');
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let heredoc = line.find("<<");
        match line.find('=') {
            Some(eq) if heredoc.is_none_or(|h| eq < h) => {
                out.insert(line[..eq].to_string(), line[eq + 1..].to_string());
            }
            _ => {
                let h = heredoc.unwrap_or_else(|| panic!("invalid output line {line:?}"));
                let (name, delimiter) = (&line[..h], &line[h + 2..]);
                assert!(delimiter.len() >= 16, "weak delimiter {delimiter:?}");
                let mut value = Vec::new();
                loop {
                    let next = lines
                        .next()
                        .unwrap_or_else(|| panic!("{name}: no closing {delimiter}"));
                    if next == delimiter {
                        break;
                    }
                    value.push(next);
                }
                out.insert(name.to_string(), value.join("\n"));
            }
        }
    }
    out
}

struct Files {
    _dir: tempfile::TempDir,
    output: std::path::PathBuf,
    summary: std::path::PathBuf,
}

fn github_files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("github_output");
    let summary = dir.path().join("step_summary");
    fs::write(&output, "").unwrap();
    fs::write(&summary, "").unwrap();
    Files {
        _dir: dir,
        output,
        summary,
    }
}

fn in_actions(command: &mut std::process::Command, files: &Files) -> Output {
    command
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &files.output)
        .env("GITHUB_STEP_SUMMARY", &files.summary);
    for (k, _) in std::env::vars() {
        if k.starts_with("UPLIFT_SECRET_") {
            command.env_remove(k);
        }
    }
    run(command)
}

fn every_file_below(dir: &Path) -> String {
    let mut all = String::new();
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            all.push_str(&String::from_utf8_lossy(&fs::read(entry.path()).unwrap()));
        }
    }
    all
}

const SECRET: &str = "gh-s3cret-Zq9-value";

fn run_pipeline() -> String {
    let mut text = String::from(
        r#"name: gha
stages:
  build:
    uses: run
    outputs: [notes, token]
    env:
      TOKEN: ${{ secrets.API_TOKEN }}
    with:
      run: |
        echo "building with $TOKEN"
        echo "token=$TOKEN" >> "$UPLIFT_OUTPUT"
        printf 'notes<<EOF\nline one\nline two\nEOF\n' >> "$UPLIFT_OUTPUT"
  broken:
    uses: run
    needs: build
    with:
      run: echo "failing with ${{ secrets.API_TOKEN }}"; exit 3
"#,
    );
    for i in 0..12 {
        text.push_str(&format!(
            "  flaky-{i:02}:\n    uses: run\n    continue-on-error: true\n    with:\n      run: echo flaky {i}; exit 1\n"
        ));
    }
    text
}

#[test]
fn run_in_actions_masks_first_groups_stages_caps_annotations_and_writes_outputs() {
    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("p.yml"), run_pipeline()).unwrap();
    let files = github_files();
    let output = in_actions(
        uplift()
            .current_dir(work.path())
            .args(["run", "-p", "p.yml", "--jobs", "2"])
            .env("UPLIFT_SECRET_API_TOKEN", SECRET),
        &files,
    );
    let (out, err) = (stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(1), "{err}");

    // Masks come first, before anything else is printed on either stream.
    let first_other = err
        .lines()
        .position(|l| !l.starts_with("::add-mask::"))
        .unwrap();
    assert!(first_other >= 1, "{err}");
    let masks: Vec<&str> = err.lines().take(first_other).collect();
    assert!(
        masks.contains(&format!("::add-mask::{SECRET}").as_str()),
        "{masks:?}"
    );
    // A derived form (base64) is masked too.
    assert!(
        masks.contains(&"::add-mask::Z2gtczNjcmV0LVpxOS12YWx1ZQ=="),
        "{masks:?}"
    );
    // The secret appears nowhere but on those lines (GitHub consumes them).
    for line in err.lines().skip(first_other) {
        assert!(!line.contains(SECRET), "leaked on stderr: {line}");
    }
    assert!(!out.contains(SECRET), "leaked on stdout");

    // One group per stage, holding that stage's lines.
    let build_group = err.find("::group::build (run, success in").expect(&err);
    let build_end = build_group + err[build_group..].find("::endgroup::").unwrap();
    assert!(
        err[build_group..build_end].contains("building with ***"),
        "{err}"
    );
    assert_eq!(err.matches("::group::").count(), 14, "{err}");
    assert_eq!(err.matches("::endgroup::").count(), 14);

    // Annotations: 1 error (broken), 12 allowed failures capped at 10 warnings + one line.
    let errors = err.lines().filter(|l| l.starts_with("::error")).count();
    let warnings = err.lines().filter(|l| l.starts_with("::warning")).count();
    assert_eq!((errors, warnings), (1, 10), "{err}");
    assert!(
        err.contains("uplift: 2 more warnings not annotated"),
        "{err}"
    );
    assert!(
        err.contains("::error title=stage broken (run) failed::"),
        "{err}"
    );

    // Outputs, as the runner reads them.
    let outputs = parse_github_output(&fs::read_to_string(&files.output).unwrap());
    assert_eq!(outputs["result"], "failure");
    let stages: serde_json::Value = serde_json::from_str(&outputs["stage-outputs"]).unwrap();
    assert_eq!(stages["build"]["notes"], "line one\nline two");
    assert_eq!(stages["build"]["token"], "***");
    assert!(outputs["stage-outputs"].contains('\n'), "multi-line value");

    // The summary: the stage table, no secret, under the limit.
    let summary = fs::read_to_string(&files.summary).unwrap();
    assert!(summary.contains("## Pipeline failure"), "{summary}");
    assert!(
        summary.contains("| `build` | run | ✅ success |"),
        "{summary}"
    );
    assert!(
        summary.contains("| `broken` | run | ❌ failure |"),
        "{summary}"
    );
    assert!(summary.contains("⚠️ failure (allowed)"), "{summary}");
    assert!(summary.len() < 1024 * 1024);

    // Nothing GitHub or the run folder keeps has the secret.
    for (what, text) in [
        ("outputs", fs::read_to_string(&files.output).unwrap()),
        ("summary", summary),
        ("run folder", every_file_below(&work.path().join(".uplift"))),
    ] {
        assert!(!text.contains(SECRET), "secret in {what}");
        assert!(
            !text.contains("Z2gtczNjcmV0LVpxOS12YWx1ZQ"),
            "base64 secret in {what}"
        );
    }
}

#[test]
fn outside_actions_nothing_github_is_written() {
    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("p.yml"), run_pipeline()).unwrap();
    let files = github_files();
    let output = run(uplift()
        .current_dir(work.path())
        .args(["run", "-p", "p.yml"])
        .env("GITHUB_OUTPUT", &files.output)
        .env("GITHUB_STEP_SUMMARY", &files.summary)
        .env("UPLIFT_SECRET_API_TOKEN", SECRET));
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(!err.contains("::"), "{err}");
    assert!(!err.contains(SECRET));
    assert_eq!(fs::read_to_string(&files.output).unwrap(), "");
    assert_eq!(fs::read_to_string(&files.summary).unwrap(), "");
}

/// A template whose 2.0.0 adds 5,000 files with long paths (a plan table well over 1 MiB) and
/// changes 15 files the app also changed (15 conflicts), and the app at 1.0.0.
fn huge_upgrade() -> (tempfile::TempDir, tempfile::TempDir) {
    let template = tempfile::tempdir().unwrap();
    let v1 = template.path().join("1.0.0");
    let v2 = template.path().join("2.0.0");
    let app = tempfile::tempdir().unwrap();
    for dir in [&v1, &v2] {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("backstage.json"), "{\"version\": \"x\"}\n").unwrap();
    }
    fs::write(
        app.path().join("backstage.json"),
        "{\"version\": \"1.0.0\"}\n",
    )
    .unwrap();
    for i in 0..15 {
        let name = format!("conflict-{i:02}.txt");
        fs::write(v1.join(&name), "one\ntwo\nthree\n").unwrap();
        fs::write(v2.join(&name), "one\nTWO upstream\nthree\n").unwrap();
        fs::write(app.path().join(&name), "one\ntwo, ours\nthree\n").unwrap();
    }
    let deep = "packages/a-rather-long-folder-name-for-a-generated-plugin-package/src/components/another-rather-long-folder-name-for-nested-components/and-yet-another-level-of-nesting-to-make-paths-long";
    let base = v2.join(deep);
    fs::create_dir_all(&base).unwrap();
    for i in 0..5000 {
        fs::write(
            base.join(format!("generated-component-file-number-{i:05}.tsx")),
            format!("export const n = {i};\n"),
        )
        .unwrap();
    }
    (template, app)
}

#[test]
fn check_in_actions_caps_a_huge_summary_and_the_conflict_annotations() {
    let (template, app) = huge_upgrade();
    let files = github_files();
    let source = format!("dir:{}", template.path().display());
    // Annotation paths are relative to the repository root (the app's parent here).
    let workspace = app.path().parent().unwrap();
    let app_name = app
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let output = in_actions(
        uplift()
            .args([
                "check",
                "--plan",
                "--exit-code",
                "--upstream",
                &source,
                "--app",
            ])
            .arg(app.path())
            .env("GITHUB_WORKSPACE", workspace),
        &files,
    );
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    // Data read from the app and the upstream comes inside a stop-commands block.
    let out = stdout(&output);
    let mut lines = out.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("::stop-commands::uplift-")
    );
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("upgrade available: 1.0.0 -> 2.0.0")
    );

    // 15 conflicts: 10 annotations at the first marker line, then one line for the rest.
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("::warning")).collect();
    assert_eq!(warnings.len(), 10, "{err}");
    assert!(
        warnings[0].starts_with(&format!(
            "::warning file={app_name}/conflict-00.txt,line=2,title="
        )),
        "{}",
        warnings[0]
    );
    assert!(
        err.contains("uplift: 5 more warnings not annotated"),
        "{err}"
    );

    let outputs = parse_github_output(&fs::read_to_string(&files.output).unwrap());
    assert_eq!(outputs["upgrade-available"], "true");
    assert_eq!(outputs["current"], "1.0.0");
    assert_eq!(outputs["target"], "2.0.0");
    assert_eq!(outputs["conflicts"], "15");
    assert_eq!(outputs["result"], "conflicts");
    let conflicting: Vec<&str> = outputs["conflicting-files"].lines().collect();
    assert_eq!(conflicting.len(), 15);
    assert_eq!(conflicting[14], "conflict-14.txt");

    let summary = fs::read(&files.summary).unwrap();
    assert!(summary.len() <= 1024 * 1024, "{} bytes", summary.len());
    assert!(
        summary.len() > 900 * 1024,
        "the room is used: {} bytes",
        summary.len()
    );
    let summary = String::from_utf8(summary).unwrap();
    assert!(summary.contains("Upgrade available: 1.0.0 -> 2.0.0"));
    // Conflicts come before the file table, so all 15 survive the cut.
    for i in 0..15 {
        assert!(
            summary.contains(&format!("- [ ] `conflict-{i:02}.txt`")),
            "conflict {i}"
        );
    }
    assert!(
        summary.contains("This summary was cut to stay under GitHub's 1 MiB"),
        "no note"
    );
    assert!(summary.contains("line(s)") && summary.contains("left out"));
    let rows = summary
        .lines()
        .filter(|l| l.starts_with("| `packages/"))
        .count();
    assert!(rows > 1000 && rows < 5000, "{rows} rows");
}

#[test]
fn run_with_an_upgrade_stage_annotates_conflicts_and_sets_outputs() {
    let app = fixture_app();
    let path = app.path();
    let readme = fs::read_to_string(path.join("README.md")).unwrap();
    fs::write(
        path.join("README.md"),
        readme.replace("Good luck!", "Ours."),
    )
    .unwrap();
    fs::write(path.join("plugins/README.md"), "# Our plugins\n").unwrap();
    let template = root().join("fixtures/templates/acme");
    fs::write(
        path.join("uplift.yml"),
        format!(
            "name: up\nupstream:\n  source: dir:{}\n  template: default-app\n  values:\n    name: acme-portal\n    defaultBranch: main\nstages:\n  upgrade:\n    uses: upgrade\n    with:\n      app: .\n      to: 2.0.0\n      allow-conflicts: true\n",
            template.display()
        ),
    )
    .unwrap();
    git_commit_all(path);
    let files = github_files();
    let output = in_actions(
        uplift().current_dir(path).args(["run", "-p", "uplift.yml"]),
        &files,
    );
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{err}");
    let readme = fs::read_to_string(path.join("README.md")).unwrap();
    let readme_line = readme
        .lines()
        .position(|l| l.starts_with("<<<<<<<"))
        .unwrap()
        + 1;
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("::warning")).collect();
    assert_eq!(warnings.len(), 2, "{err}");
    assert!(
        warnings[0].starts_with(
            &format!("::warning file=README.md,line={readme_line},title=upgrade conflict (stage upgrade)::1 conflicting region")
        ),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[1].starts_with("::warning file=plugins/README.md,"),
        "{}",
        warnings[1]
    );
    let outputs = parse_github_output(&fs::read_to_string(&files.output).unwrap());
    assert_eq!(outputs["current"], "1.0.0");
    assert_eq!(outputs["target"], "2.0.0");
    // The same meanings as `uplift check`: files counted, files listed, regions counted.
    assert_eq!(outputs["conflicts"], "2");
    assert_eq!(outputs["conflicting-files"], "README.md\nplugins/README.md");
    assert_eq!(outputs["conflict-regions"], "2");
    assert_eq!(outputs["result"], "success");
    let summary = fs::read_to_string(&files.summary).unwrap();
    assert!(summary.contains("## Upgrade plan (`upgrade`)"), "{summary}");
    assert!(summary.contains("\n  conflict   README.md "), "{summary}");
}

/// A JUnit report of 12 failed cases: file and line attributes (as some reporters write), file
/// only with the line in a stack trace (jest-junit), no file at all, and a secret in a message.
fn twelve_failures() -> String {
    let mut cases = String::new();
    for i in 0..12 {
        let case = match i % 4 {
            0 => format!(
                r#"<testcase name="case {i}" file="src/a.test.ts" line="{}"><failure message="expected {i}&#10;second line">trace</failure></testcase>"#,
                10 + i
            ),
            1 => format!(
                r#"<testcase name="case {i}" file="src/b.test.ts"><failure message="">Error: b {i}
    at Object.&lt;anonymous&gt; ($APP/src/b.test.ts:{}:7)</failure></testcase>"#,
                20 + i
            ),
            2 => format!(r#"<testcase name="case {i}"><error message="crashed {i}"/></testcase>"#),
            _ => format!(
                r#"<testcase name="case {i}" file="src/a.test.ts" line="3"><failure message="token $TOKEN leaked {i}"/></testcase>"#
            ),
        };
        cases.push_str(&case);
    }
    format!(
        r#"<testsuites><testsuite name="unit">{cases}<testcase name="passes"/></testsuite></testsuites>"#
    )
}

#[test]
fn run_in_actions_annotates_failed_tests_at_their_file_and_line_capped() {
    let work = tempfile::tempdir().unwrap();
    fs::create_dir_all(work.path().join("web/src")).unwrap();
    fs::write(work.path().join("web/src/a.test.ts"), "").unwrap();
    fs::write(work.path().join("web/src/b.test.ts"), "").unwrap();
    // The step writes the report with the shell, so `$APP` (absolute paths in traces) and the
    // secret are filled in at run time.
    let report = twelve_failures().replace('\n', "\n            ");
    fs::write(
        work.path().join("p.yml"),
        format!(
            r#"name: tests
stages:
  unit:
    uses: test
    env:
      TOKEN: ${{{{ secrets.API_TOKEN }}}}
    with:
      app: web
      reports: "reports/*.xml"
      steps:
        - run: |
            mkdir -p reports
            APP=$(pwd)
            cat > reports/junit.xml <<EOF
            {report}
            EOF
"#
        ),
    )
    .unwrap();
    let files = github_files();
    let output = in_actions(
        uplift()
            .current_dir(work.path())
            .args(["run", "-p", "p.yml"])
            .env_remove("GITHUB_WORKSPACE")
            .env("UPLIFT_SECRET_API_TOKEN", SECRET),
        &files,
    );
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("::error")).collect();
    // GitHub shows 10 errors per step: the stage's own, then the first 9 failed tests, and one
    // line for the 3 left out.
    assert_eq!(errors.len(), 10, "{err}");
    assert!(
        errors[0].starts_with("::error title=stage unit (test) failed::"),
        "{}",
        errors[0]
    );
    assert!(err.contains("uplift: 3 more errors not annotated"), "{err}");
    let tests = &errors[1..];
    assert_eq!(
        tests[0],
        "::error file=web/src/a.test.ts,line=10,title=unit › case 0::expected 0"
    );
    assert_eq!(
        tests[1],
        "::error file=web/src/b.test.ts,line=21,title=unit › case 1::Error: b 1"
    );
    assert_eq!(tests[2], "::error title=unit › case 2::crashed 2");
    assert_eq!(
        tests[3],
        "::error file=web/src/a.test.ts,line=3,title=unit › case 3::token *** leaked 3"
    );
    assert_eq!(
        tests[8],
        "::error file=web/src/a.test.ts,line=18,title=unit › case 8::expected 8"
    );
    assert!(!err.contains("case 9::"), "{err}");
    for line in err.lines().filter(|l| !l.starts_with("::add-mask::")) {
        assert!(!line.contains(SECRET), "leaked on stderr: {line}");
    }

    // The summary lists every failed test, the ones not annotated too.
    let summary = fs::read_to_string(&files.summary).unwrap();
    assert!(summary.contains("## Failed tests"), "{summary}");
    assert!(
        summary
            .contains("| `unit` | unit › case 11 | `web/src/a.test.ts:3` | token *** leaked 11 |"),
        "{summary}"
    );
    assert!(
        summary.contains("| `unit` | failure | 13 | 9 | 3 | 0 |"),
        "{summary}"
    );
    assert!(!summary.contains(SECRET));
    // The run folder's list is masked as well.
    assert!(!every_file_below(&work.path().join(".uplift")).contains(SECRET));
}
