//! GitHub Actions glue for the binary: when to speak Actions, and the upgrade-specific
//! annotations, outputs and summaries (the formats themselves live in `uplift-github`).
//!
//! Workflow commands (`::add-mask::`, `::group::`, `::error`) go to **stderr**: the runner reads
//! commands from both streams, and stdout stays pure data (`--format json` can be piped).

use std::io::Write;

use uplift_github::{Annotation, Annotations, Environment, Level, Outputs, StepSummary};
use uplift_merge::Action;
use uplift_upgrade::Prepared;

use crate::exit::{CliError, Exit};

/// The default SIGTERM-to-SIGKILL grace of stages inside Actions, where the runner's own
/// SIGTERM follows its SIGINT by about 7.5 s.
pub const ACTIONS_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether (and where) to write GitHub's files and commands.
#[derive(Debug, Clone)]
pub struct Gha {
    pub env: Environment,
    /// Workflow commands and files are on: `GITHUB_ACTIONS=true` or `--github`.
    pub on: bool,
}

impl Gha {
    /// Detects Actions from the environment; `forced` (the `--github` flag) turns it on anywhere.
    pub fn detect(forced: bool) -> Self {
        let env = Environment::from_process();
        let on = forced || env.actions;
        // Data printed from here on is shielded from the runner's command parsing.
        crate::output::set_github(on);
        Self { env, on }
    }

    /// Prints workflow command lines (to stderr), when on.
    pub fn commands<I: IntoIterator<Item = String>>(&self, lines: I) {
        if !self.on {
            return;
        }
        let mut err = std::io::stderr().lock();
        for line in lines {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    /// Appends outputs to `$GITHUB_OUTPUT` (when on and set).
    pub fn outputs(&self, outputs: &Outputs) -> Result<(), CliError> {
        match (&self.env.output, self.on) {
            (Some(path), true) => outputs
                .write(path)
                .map_err(|e| CliError::from_error(Exit::Environment, &e)),
            _ => Ok(()),
        }
    }

    /// Appends the summary to `$GITHUB_STEP_SUMMARY` (when on and set).
    pub fn summary(&self, summary: &StepSummary) -> Result<(), CliError> {
        match (&self.env.step_summary, self.on) {
            (Some(path), true) => summary
                .write(path)
                .map_err(|e| CliError::from_error(Exit::Environment, &e)),
            _ => Ok(()),
        }
    }
}

/// The 1-based line of the first conflict marker in a file the upgrade writes, if any.
pub fn first_marker_line(prepared: &Prepared, path: &uplift_tree::RelPath) -> Option<u64> {
    let entry = prepared.changes.iter().find_map(|c| match c {
        uplift_tree::Change::Write { path: p, entry } if p == path => Some(entry),
        _ => None,
    })?;
    let text = std::str::from_utf8(&entry.content).ok()?;
    text.lines()
        .position(|l| l.starts_with("<<<<<<<"))
        .map(|i| i as u64 + 1)
}

/// A file's path as GitHub wants it in an annotation: relative to the repository root
/// (`$GITHUB_WORKSPACE`, else the current folder). Plan paths are relative to the app, which may
/// be a subfolder; an app outside the workspace keeps the plan path.
pub fn workspace_path(app: &std::path::Path, rel: &str) -> String {
    let base = std::env::var_os("GITHUB_WORKSPACE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::current_dir().ok());
    let app = std::path::absolute(app).unwrap_or_else(|_| app.to_path_buf());
    let inside = base.as_deref().and_then(|b| {
        let b = std::path::absolute(b).unwrap_or_else(|_| b.to_path_buf());
        app.strip_prefix(&b).ok().map(std::path::Path::to_path_buf)
    });
    match inside {
        Some(prefix) => {
            let mut parts: Vec<String> = prefix
                .components()
                .filter(|c| !matches!(c, std::path::Component::CurDir))
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            parts.push(rel.to_string());
            parts.join("/")
        }
        None => rel.to_string(),
    }
}

/// One `::warning` per conflicting file (at its first marker), capped by `Annotations`.
pub fn conflict_annotations(prepared: &Prepared, level: Level) -> Annotations {
    let mut list = Annotations::new();
    for file in prepared
        .plan
        .files
        .iter()
        .filter(|f| f.action == Action::Conflict)
    {
        let reason = file
            .reason
            .clone()
            .unwrap_or_else(|| "conflict".to_string());
        let line = first_marker_line(prepared, &file.path);
        list.push(
            Annotation::new(level, reason)
                .file(workspace_path(&prepared.app, file.path.as_str()), line)
                .title(format!(
                    "upgrade conflict {} -> {}",
                    prepared.plan.from, prepared.plan.to
                )),
        );
    }
    list
}

/// GitHub refuses a pull-request body over 65,536 characters.
pub const PR_BODY_LIMIT: usize = 65_536;

/// Room `apply --pr-body` leaves by default for what a workflow appends to the body (the weekly
/// workflow appends its test run's summary, made with `run --summary-limit` of the same size).
pub const PR_BODY_RESERVE: usize = 16_384;

/// Whether the upstream is Backstage's create-app (its marker file or its repository).
pub fn is_backstage(source: &str, marker_file: &str) -> bool {
    marker_file == "backstage.json" || source.contains("backstage/backstage")
}

/// Markdown cell text: no pipe or newline can break the table.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// A CommonMark code span that shows `text` exactly (the plan reports' own rule).
pub fn code(text: &str) -> String {
    uplift_upgrade::report::code_span(text)
}

/// The pull-request body of an upgrade, at most `limit` bytes (so at most `limit` characters):
/// from and to, the conflicts first (each with its file, first marker line and reason; those
/// that do not fit are counted, with where the full list is), links to Backstage's changelog
/// and upgrade helper, the commands to run after, a test section, and the plan's files. It
/// ends with a blank line, so what a workflow appends starts a new markdown block.
pub fn pr_body(prepared: &Prepared, backstage: bool, branch: Option<&str>, limit: usize) -> String {
    use std::fmt::Write as _;
    let plan = &prepared.plan;
    let mut head = String::new();
    let _ = writeln!(head, "## Upgrade {} → {}\n", plan.from, plan.to);
    let _ = writeln!(
        head,
        "From **{}** to **{}**, upstream {} (release line {}){}. {}.\n",
        plan.from,
        plan.to,
        code(&plan.source),
        code(&plan.line),
        branch
            .map(|b| format!(", branch {}", code(b)))
            .unwrap_or_default(),
        uplift_upgrade::report::summary_line(plan)
    );
    for note in &plan.notes {
        let _ = writeln!(head, "> [!NOTE]\n> {}\n", note.replace(['\n', '\r'], " "));
    }
    let conflicts: Vec<_> = plan
        .files
        .iter()
        .filter(|f| f.action == Action::Conflict)
        .collect();
    let mut tail = String::new();
    if backstage {
        let _ = writeln!(tail, "### Release notes\n");
        let _ = writeln!(
            tail,
            "- [Backstage v{to} changelog](https://github.com/backstage/backstage/blob/master/docs/releases/v{to}-changelog.md)",
            to = plan.to
        );
        let _ = writeln!(
            tail,
            "- [Upgrade helper {from} → {to}](https://backstage.github.io/upgrade-helper/?from={from}&to={to})\n",
            from = plan.from,
            to = plan.to
        );
    }
    if !plan.follow_up.is_empty() {
        let _ = writeln!(tail, "### Then run\n");
        for f in &plan.follow_up {
            let _ = writeln!(
                tail,
                "- {}: {}",
                code(&f.command),
                f.reason.replace('\n', " ")
            );
        }
        tail.push('\n');
    }
    let _ = writeln!(tail, "### Tests\n");
    let _ = writeln!(
        tail,
        "`uplift apply` runs no tests. The weekly workflow runs the pipeline's `test` stage on this branch and appends its summary (stages, totals, failed tests) at the end of this body, whatever token opened it. Checks of the repository's own workflows run on this pull request only when it was opened with a GitHub App or personal token (a pull request opened with the default `GITHUB_TOKEN` starts no workflow).\n"
    );
    // What the table needs at least (header, cut note, closing tag), so it always closes.
    let table_note = "\n_The table was cut to fit GitHub's pull-request body limit; `uplift plan --format json` lists every file._\n";
    let table_close = "\n</details>\n\n";
    let table_head = format!(
        "### Files\n\n<details><summary>{} file(s)</summary>\n\n| File | Action | Notes |\n|---|---|---|\n",
        plan.files.len()
    );
    let table_min = table_head.len() + table_note.len() + table_close.len();

    let mut out = head;
    if !conflicts.is_empty() {
        let _ = writeln!(
            out,
            "> [!WARNING]\n> {} file(s) have conflicts. This branch contains the conflict markers: resolve each file below, then push.\n",
            conflicts.len()
        );
        let _ = writeln!(out, "### Conflicts to resolve\n");
        let more_room = 400;
        let room = limit.saturating_sub(out.len() + tail.len() + table_min + more_room + 1);
        let mut list = String::new();
        let mut listed = 0;
        for file in &conflicts {
            let line = first_marker_line(prepared, &file.path)
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default();
            let reason = file.reason.as_deref().unwrap_or("conflict");
            let item = format!(
                "- [ ] {}{line}: {}\n",
                code(file.path.as_str()),
                reason.replace(['\n', '\r'], " ")
            );
            if list.len() + item.len() > room {
                break;
            }
            list.push_str(&item);
            listed += 1;
        }
        out.push_str(&list);
        if listed < conflicts.len() {
            let _ = writeln!(
                out,
                "- … and {} more conflicting file(s), not listed to stay under GitHub's body limit. The full list: `uplift check --plan --format json` (or `uplift plan --format json`) on the base branch, or the step summary of the workflow run that opened this pull request.",
                conflicts.len() - listed
            );
        }
        out.push('\n');
    }
    out.push_str(&tail);
    if !plan.files.is_empty() {
        let room = limit.saturating_sub(out.len() + table_min);
        let mut rows = String::new();
        let mut cut = false;
        for file in &plan.files {
            let mut notes = Vec::new();
            if let Some(mode) = &file.mode_change {
                notes.push(format!("mode {mode}"));
            }
            if let Some(reason) = &file.reason {
                notes.push(cell(reason));
            }
            let row = format!(
                "| {} | {} | {} |\n",
                cell(&code(file.path.as_str())),
                file.action.as_str(),
                notes.join("; ")
            );
            if rows.len() + row.len() > room {
                cut = true;
                break;
            }
            rows.push_str(&row);
        }
        if out.len() + table_min <= limit {
            out.push_str(&table_head);
            out.push_str(&rows);
            if cut {
                out.push_str(table_note);
            }
            out.push_str(table_close);
        }
    }
    out
}

/// The `::add-mask::` lines for every secret and the forms derived from it that tools print
/// (`uplift_exec::mask::secret_forms`: base64 and URL-safe base64, as in basic-auth headers
/// and Docker configs; JSON-escaped; each line of a multi-line value). The run's own masker
/// hides the same forms in every channel (logs, events, run folder).
pub fn mask_commands<'a, I: IntoIterator<Item = &'a String>>(secrets: I) -> Vec<String> {
    let mut lines = Vec::new();
    for secret in secrets {
        for form in uplift_exec::mask::secret_forms(secret) {
            for line in uplift_github::add_mask(&form) {
                if !lines.contains(&line) {
                    lines.push(line);
                }
            }
        }
    }
    lines
}

/// The stages of a run by type, for the summary and the outputs.
fn stages_of<'a>(
    report: &'a uplift_exec::RunReport,
    uses: &'a str,
) -> impl Iterator<Item = &'a uplift_exec::StageSummary> {
    report.stages.iter().filter(move |s| s.uses == uses)
}

/// Lines of a stage's log in the run folder (already masked by the executor).
fn stage_log(report: &uplift_exec::RunReport, stage: &str) -> Vec<String> {
    std::fs::read_to_string(report.dir.join(stage).join("log"))
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// `  conflict   PATH  REASON` lines of an upgrade stage's text plan.
fn conflicts_in_log(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|line| {
            // Stage messages are logged as `! MESSAGE`.
            let line = line.strip_prefix("! ").unwrap_or(line);
            let rest = line.trim_start().strip_prefix("conflict ")?.trim_start();
            let (path, reason) = rest.split_once("  ").unwrap_or((rest, "conflict"));
            Some((path.trim().to_string(), reason.trim().to_string()))
        })
        .collect()
}

/// The end of a run in GitHub mode: annotations (failed stages, conflicts, failed tests),
/// outputs and the step summary. Everything written comes from the masked report, logs and
/// failed-test files, and is masked once more with the run's secrets.
pub fn finish_run(
    gha: &Gha,
    report: &uplift_exec::RunReport,
    secrets: &std::collections::BTreeMap<String, String>,
    apps: &std::collections::BTreeMap<String, std::path::PathBuf>,
    summary_limit: usize,
) -> Result<(), CliError> {
    use std::fmt::Write as _;
    let masker = uplift_exec::Masker::new(secrets.values());
    let result = match report.result {
        uplift_exec::RunResult::Success => "success",
        uplift_exec::RunResult::Failure => "failure",
        uplift_exec::RunResult::Cancelled => "cancelled",
    };
    let mut annotations = Annotations::new();
    // Sections are masked as they are added, so the size limit holds for what is written.
    let mut sections: Vec<(String, String)> = Vec::new();

    // Stages table.
    let mut table = format!(
        "## Pipeline {result}\n\nRun `{}` in {:.1}s.\n\n| Stage | Type | Result | Duration | Note |\n|---|---|---|---|---|\n",
        report.run_id,
        report.duration.as_secs_f64()
    );
    for s in &report.stages {
        let shown = if s.allowed_failure {
            "failure (allowed)".to_string()
        } else {
            s.result.as_str().to_string()
        };
        let icon = match s.result {
            uplift_exec::StageResult::Success => "✅",
            uplift_exec::StageResult::Failure if s.allowed_failure => "⚠️",
            uplift_exec::StageResult::Failure => "❌",
            _ => "⏭️",
        };
        let _ = writeln!(
            table,
            "| `{}`{} | {} | {icon} {shown} | {:.1}s | {} |",
            s.stage,
            if s.finally { " (finally)" } else { "" },
            s.uses,
            s.duration_ms as f64 / 1000.0,
            cell(s.reason.as_deref().unwrap_or(""))
        );
        if s.result == uplift_exec::StageResult::Failure {
            let level = if s.allowed_failure {
                Level::Warning
            } else {
                Level::Error
            };
            annotations.push(
                Annotation::new(level, s.reason.clone().unwrap_or_else(|| "failed".into()))
                    .title(format!("stage {} ({}) failed", s.stage, s.uses)),
            );
        }
    }
    sections.push(("Stages".into(), table));

    let out_err = |e: uplift_github::Error| CliError::from_error(Exit::Environment, &e);
    let mut outputs = Outputs::new();
    // The upgrade: outputs, the plan as the stage printed it, conflicts annotated.
    for s in stages_of(report, "upgrade") {
        let get = |k: &str| s.outputs.get(k).cloned().unwrap_or_default();
        if let Some(available) = s.outputs.get("available") {
            outputs
                .set("upgrade-available", available.as_str())
                .map_err(out_err)?;
            outputs.set("current", get("current")).map_err(out_err)?;
            outputs.set("target", get("latest")).map_err(out_err)?;
        } else if s.outputs.contains_key("to") {
            outputs.set("current", get("from")).map_err(out_err)?;
            outputs.set("target", get("to")).map_err(out_err)?;
            for name in ["conflicts", "conflicting-files", "conflict-regions"] {
                outputs.set(name, get(name)).map_err(out_err)?;
            }
        }
        let log = stage_log(report, &s.stage);
        let conflicts = conflicts_in_log(&log);
        if !conflicts.is_empty() {
            // Conflicts first, before the plan, so a cut summary still lists them.
            let mut list = format!(
                "## Conflicts to resolve (`{}`)\n\n{} file(s):\n\n",
                s.stage,
                conflicts.len()
            );
            for (path, reason) in &conflicts {
                let _ = writeln!(list, "- [ ] {}: {}", code(path), reason.replace('\n', " "));
            }
            sections.push((format!("Conflicts ({})", s.stage), list));
        }
        for (path, reason) in conflicts {
            // The app as the run left it: conflict markers are written in the file.
            let (file, line) = match apps.get(&s.stage) {
                Some(app) => (
                    workspace_path(app, &path),
                    std::fs::read_to_string(app.join(&path)).ok().and_then(|t| {
                        t.lines()
                            .position(|l| l.starts_with("<<<<<<<"))
                            .map(|i| i as u64 + 1)
                    }),
                ),
                None => (path, None),
            };
            annotations.push(
                Annotation::new(Level::Warning, reason)
                    .file(file, line)
                    .title(format!("upgrade conflict (stage {})", s.stage)),
            );
        }
        if !log.is_empty() {
            sections.push((
                format!("Upgrade plan ({})", s.stage),
                format!(
                    "## Upgrade plan (`{}`)\n\n```text\n{}\n```\n",
                    s.stage,
                    log.iter()
                        .map(|l| l.strip_prefix("! ").unwrap_or(l))
                        .collect::<Vec<_>>()
                        .join("\n")
                        .replace("```", "` ` `")
                ),
            ));
        }
    }
    // Test totals, and each failed test annotated at its file and line.
    let mut tests = String::new();
    let mut failed_tests = String::new();
    for s in stages_of(report, "test") {
        let recorded = uplift_stages::test_stage::read_failed_tests(&report.dir.join(&s.stage));
        if let Some(failed) = &recorded {
            let level = if s.allowed_failure {
                Level::Warning
            } else {
                Level::Error
            };
            for case in &failed.cases {
                // Recorded relative to the app; GitHub wants them from the repository's root.
                let file = case.file.as_ref().map(|file| match apps.get(&s.stage) {
                    Some(app) => workspace_path(app, file),
                    None => file.clone(),
                });
                let mut annotation =
                    Annotation::new(level, case.message.clone()).title(case.title());
                if let Some(file) = &file {
                    annotation = annotation.file(file.clone(), case.line);
                }
                annotations.push(annotation);
                let at = match (&file, case.line) {
                    (Some(file), Some(line)) => code(&format!("{file}:{line}")),
                    (Some(file), None) => code(file),
                    _ => String::new(),
                };
                let _ = writeln!(
                    failed_tests,
                    "| `{}` | {} | {at} | {} |",
                    s.stage,
                    cell(&case.title()),
                    cell(&case.message)
                );
            }
            let total = failed.failures + failed.errors;
            let listed = failed.cases.len() as u64;
            if total > listed {
                let _ = writeln!(
                    failed_tests,
                    "| `{}` | {} more not listed: see the JUnit reports | | |",
                    s.stage,
                    total - listed
                );
            }
        }
        // A failed stage has no outputs: its totals come from what it recorded.
        let get = |k: &str| {
            s.outputs.get(k).cloned().unwrap_or_else(|| {
                let total = recorded.as_ref().map(|r| match k {
                    "tests" => r.tests,
                    "failures" => r.failures,
                    "errors" => r.errors,
                    _ => r.skipped,
                });
                total.map_or_else(|| "-".into(), |n| n.to_string())
            })
        };
        let _ = writeln!(
            tests,
            "| `{}` | {} | {} | {} | {} | {} |",
            s.stage,
            s.result.as_str(),
            get("tests"),
            get("failures"),
            get("errors"),
            get("skipped")
        );
    }
    if !tests.is_empty() {
        sections.push((
            "Tests".into(),
            format!(
                "## Tests\n\n| Stage | Result | Tests | Failures | Errors | Skipped |\n|---|---|---|---|---|---|\n{tests}"
            ),
        ));
    }
    if !failed_tests.is_empty() {
        sections.push((
            "Failed tests".into(),
            format!(
                "## Failed tests\n\n| Stage | Test | Where | Message |\n|---|---|---|---|\n{failed_tests}"
            ),
        ));
    }
    // The image and where it went.
    let mut images = String::new();
    for s in stages_of(report, "image") {
        if let Some(image) = s.outputs.get("image") {
            outputs.set("image", image.as_str()).map_err(out_err)?;
            let _ = writeln!(images, "- `{}`: `{image}`", s.stage);
        }
        if let Some(digest) = s.outputs.get("digest") {
            outputs.set("digest", digest.as_str()).map_err(out_err)?;
        }
    }
    if !images.is_empty() {
        sections.push(("Image".into(), format!("## Image\n\n{images}")));
    }
    outputs.set("result", result).map_err(out_err)?;
    outputs
        .set("run-id", report.run_id.as_str())
        .map_err(out_err)?;
    let all: std::collections::BTreeMap<&str, &std::collections::BTreeMap<String, String>> = report
        .stages
        .iter()
        .map(|s| (s.stage.as_str(), &s.outputs))
        .collect();
    outputs
        .set(
            "stage-outputs",
            serde_json::to_string_pretty(&all).unwrap_or_default(),
        )
        .map_err(out_err)?;

    // Mask once more: nothing GitHub keeps may carry a secret.
    let mut masked = Outputs::new();
    for (k, v) in outputs.iter() {
        masked
            .set(k, masker.mask(v).into_owned())
            .map_err(out_err)?;
    }
    gha.commands(
        annotations
            .render()
            .into_iter()
            .map(|l| masker.mask(&l).into_owned()),
    );
    gha.outputs(&masked)?;
    // Masked before the cut, so the limit holds for what is written; cut against the room
    // the step summary file has left (earlier steps count too).
    let mut summary = StepSummary::with_limit(summary_limit);
    for (title, body) in sections {
        summary.section(title, masker.mask(&body).into_owned());
    }
    gha.summary(&summary)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn code_spans_show_backticks_in_file_names() {
        use pulldown_cmark::{Event, Parser};
        for name in [
            "a`b.ts", "x``y", "`lead.ts", "trail`", "` both `", "plain.ts", " sp",
        ] {
            let spans: Vec<String> = Parser::new(&format!("- {}", code(name)))
                .filter_map(|e| match e {
                    Event::Code(c) => Some(c.to_string()),
                    _ => None,
                })
                .collect();
            assert_eq!(spans, vec![name.to_string()], "{}", code(name));
        }
    }

    #[test]
    fn forced_turns_it_on() {
        assert!(Gha::detect(true).on);
    }

    fn stage(id: &str, uses: &str, outputs: &[(&str, &str)]) -> uplift_exec::StageSummary {
        uplift_exec::StageSummary {
            stage: id.into(),
            uses: uses.into(),
            finally: false,
            result: uplift_exec::StageResult::Success,
            allowed_failure: false,
            attempts: 1,
            duration_ms: 1500,
            reason: None,
            outputs: outputs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn finish_run_reports_tests_and_the_image_and_masks_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let gha = Gha {
            env: Environment {
                actions: true,
                output: Some(dir.path().join("out")),
                step_summary: Some(dir.path().join("summary")),
            },
            on: true,
        };
        let image = "127.0.0.1:5000/portal@sha256:abc";
        let report = uplift_exec::RunReport {
            run_id: "r1".into(),
            dir: dir.path().join("run"),
            result: uplift_exec::RunResult::Success,
            stages: vec![
                stage(
                    "unit",
                    "test",
                    &[
                        ("tests", "42"),
                        ("failures", "0"),
                        ("errors", "0"),
                        ("skipped", "2"),
                    ],
                ),
                stage(
                    "image",
                    "image",
                    &[
                        ("image", image),
                        ("digest", "sha256:abc"),
                        ("note", "pw=hunter2"),
                    ],
                ),
            ],
            duration: std::time::Duration::from_secs(3),
        };
        let secrets = [("PW".to_string(), "hunter2".to_string())].into();
        finish_run(
            &gha,
            &report,
            &secrets,
            &Default::default(),
            uplift_github::SUMMARY_LIMIT,
        )
        .unwrap();
        let summary = std::fs::read_to_string(dir.path().join("summary")).unwrap();
        assert!(
            summary.contains("| `unit` | success | 42 | 0 | 0 | 2 |"),
            "{summary}"
        );
        assert!(
            summary.contains(&format!("- `image`: `{image}`")),
            "{summary}"
        );
        let outputs: std::collections::BTreeMap<String, String> =
            uplift_github::parse_outputs(&std::fs::read_to_string(dir.path().join("out")).unwrap())
                .unwrap()
                .into_iter()
                .collect();
        assert_eq!(outputs["image"], image);
        assert_eq!(outputs["digest"], "sha256:abc");
        assert_eq!(outputs["result"], "success");
        assert!(outputs["stage-outputs"].contains("pw=***"));
        assert!(!outputs["stage-outputs"].contains("hunter2"));
    }
}
