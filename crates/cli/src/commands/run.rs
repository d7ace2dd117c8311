//! `uplift run`: run a pipeline file's DAG, streaming each stage's output, then a summary.
//! Also the pipeline plan (`uplift run --plan`, and `uplift plan -p FILE` through
//! [`plan_pipeline_file`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use uplift_exec::{
    Cancel, Event, ExecError, PlanFormat, PlanOptions, RunOptions, RunReport, RunResult,
    StageResult, StageSummary,
};

use crate::GlobalArgs;
use crate::commands::validate::{load_pipeline, pipeline_path};
use crate::exit::{CliError, CliResult, Exit};
use crate::progress_bars::{ProgressView, Update};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline file (default: `uplift.yml`, else `pipelines/uplift.yml`).
    #[arg(long, short = 'p', value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// Most stages running at once (default: the number of cores).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// Run only this stage (repeatable); the stages it needs are taken as done.
    #[arg(long, value_name = "ID")]
    pub only: Vec<String>,
    /// Run this stage and every stage that depends on it.
    #[arg(long, value_name = "ID")]
    pub from: Option<String>,
    /// How events are printed: `text` (live prefixed output, then a summary) or `json` (JSON lines on stdout).
    #[arg(long, value_enum, default_value_t = EventsFormat::Text)]
    pub events: EventsFormat,
    /// A file of `NAME=VALUE` secrets (besides `UPLIFT_SECRET_NAME` variables).
    #[arg(long, value_name = "FILE")]
    pub secrets_file: Option<PathBuf>,
    /// Seconds between SIGTERM and SIGKILL when a stage is stopped (10; inside GitHub Actions 5
    /// unless given, since the runner's own SIGKILL follows its SIGINT by about 7.5 s).
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub grace: f64,
    /// The folder stages run in (default: the current folder); its `.uplift/` holds the lock and runs.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print the plan (what would run, resolved and masked) instead of running anything.
    #[arg(long)]
    pub plan: bool,
    /// The plan's format (with --plan).
    #[arg(long, value_enum, default_value_t = PlanFormatArg::Text)]
    pub format: PlanFormatArg,
    /// Speak GitHub Actions even outside it (on when `GITHUB_ACTIONS=true`): masks first, a log
    /// group per stage, annotations, outputs to `$GITHUB_OUTPUT`, the step summary.
    #[arg(long)]
    pub github: bool,
    /// Most bytes of step summary this run writes (at most GitHub's 1 MiB for the whole file,
    /// less what earlier steps wrote). The weekly workflow gives its test run the room
    /// `apply --pr-body-reserve` keeps in the pull-request body.
    #[arg(long, value_name = "BYTES", default_value_t = uplift_github::SUMMARY_LIMIT)]
    pub summary_limit: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EventsFormat {
    Text,
    Json,
}

/// Formats of the pipeline plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormatArg {
    Text,
    Json,
    Markdown,
}

impl From<PlanFormatArg> for PlanFormat {
    fn from(f: PlanFormatArg) -> Self {
        match f {
            PlanFormatArg::Text => PlanFormat::Text,
            PlanFormatArg::Json => PlanFormat::Json,
            PlanFormatArg::Markdown => PlanFormat::Markdown,
        }
    }
}

fn exec_error(error: ExecError) -> CliError {
    let cli = CliError::classified(&error);
    match &error {
        ExecError::Lock(uplift_exec::LockError::Held { path, .. }) => cli.with_hint(format!(
            "wait for it to finish; if it crashed on another host, remove {}",
            path.display()
        )),
        ExecError::Lock(uplift_exec::LockError::Io { .. })
        | ExecError::Io { .. }
        | ExecError::UnknownStage(_)
        | ExecError::UnknownType(_) => cli,
    }
}

fn work_dir(dir: Option<&Path>) -> Result<PathBuf, CliError> {
    let dir = match dir {
        Some(d) => d.to_owned(),
        None => std::env::current_dir().map_err(|e| CliError::from_error(Exit::Environment, &e))?,
    };
    std::path::absolute(&dir).map_err(|e| CliError::from_error(Exit::Environment, &e))
}

/// Prints the plan of a pipeline file (used by `uplift run --plan` and `uplift plan -p FILE`).
/// Runs nothing and writes nothing outside a temp folder. Exit: 0 when every stage could be
/// planned, 1 when some stage's plan failed, 2 for an invalid file.
pub fn plan_pipeline_file(
    file: &Path,
    format: PlanFormat,
    only: &[String],
    from: Option<&str>,
    secrets_file: Option<&Path>,
) -> CliResult {
    let pipeline = load_pipeline(file, false)?;
    let secrets = uplift_exec::load_secrets(secrets_file).map_err(exec_error)?;
    let options = PlanOptions {
        work_dir: work_dir(None)?,
        only: only.to_vec(),
        from: from.map(str::to_owned),
        base_env: uplift_exec::base_env_from_process(),
        secrets,
    };
    let plan = uplift_exec::plan_pipeline(&pipeline, &uplift_stages::registry(), &options)
        .map_err(exec_error)?;
    let text = uplift_exec::render_plan(&plan, format);
    match format {
        PlanFormat::Json => crate::output::write_json(text.trim_end()),
        _ => out!("{text}"),
    }
    Ok(if plan.is_clean() {
        Exit::Success
    } else {
        Exit::Negative
    })
}

pub fn run(args: Args, global: &GlobalArgs) -> CliResult {
    let path = pipeline_path(args.pipeline.as_deref())?;
    if args.plan {
        return plan_pipeline_file(
            &path,
            args.format.into(),
            &args.only,
            args.from.as_deref(),
            args.secrets_file.as_deref(),
        );
    }
    let pipeline = load_pipeline(&path, false)?;
    let secrets = uplift_exec::load_secrets(args.secrets_file.as_deref()).map_err(exec_error)?;
    let gha = crate::gha::Gha::detect(args.github);
    // Before anything else is printed: GitHub must know every secret (and derived form).
    gha.commands(crate::gha::mask_commands(secrets.values()));
    let work_dir = work_dir(args.dir.as_deref())?;
    if !(args.grace.is_finite() && args.grace >= 0.0) {
        return Err(CliError::new(
            Exit::BadInput,
            format!("invalid grace period {}", args.grace),
        ));
    }
    let mut options = RunOptions::new(&work_dir);
    if let Some(jobs) = args.jobs {
        options.jobs = jobs.max(1);
    }
    options.only = args.only.clone();
    options.from = args.from.clone();
    options.grace = Duration::from_secs_f64(args.grace);
    // GitHub sends SIGTERM ~7.5 s after SIGINT: unless --grace was given, stages that ignore
    // SIGTERM are killed by Uplift itself well before that.
    let grace_given = std::env::args_os().any(|a| {
        a.to_str()
            .is_some_and(|a| a == "--grace" || a.starts_with("--grace="))
    });
    if gha.on && !grace_given && options.grace > crate::gha::ACTIONS_GRACE {
        options.grace = crate::gha::ACTIONS_GRACE;
    }
    options.base_env = uplift_exec::base_env_from_process();
    options.secrets = secrets;
    let json = args.events == EventsFormat::Json;
    let quiet = global.quiet;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::from_error(Exit::Environment, &e))?;
    let registry = uplift_stages::registry();
    let report: Result<RunReport, ExecError> = runtime.block_on(async {
        let cancel = Cancel::default();
        // Listen before any stage starts, so an early signal cannot kill us unhandled.
        use tokio::signal::unix::{SignalKind, signal};
        let streams = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        );
        let signals = tokio::spawn(watch_signals(cancel.clone(), streams));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let ids: Vec<&str> = pipeline
            .stages
            .keys()
            .chain(pipeline.finally.keys())
            .map(String::as_str)
            .collect();
        let width = ids.iter().map(|s| s.len()).max().unwrap_or(0);
        let printer = tokio::spawn(print_events(rx, json, quiet, width, gha.on));
        let report = uplift_exec::run_pipeline(&pipeline, &registry, &options, cancel, tx).await;
        let _ = printer.await;
        signals.abort();
        report
    });
    let report = report.map_err(exec_error)?;
    scrub_stage_outputs(&report, &options.secrets);
    if !json {
        print_summary(&report);
    }
    if gha.on {
        // Where each upgrade and test stage's app is, to annotate conflicts and failed tests
        // at the right path and line.
        let apps: std::collections::BTreeMap<String, PathBuf> = pipeline
            .stages
            .values()
            .filter(|s| s.uses == "upgrade" || s.uses == "test")
            .map(|s| {
                let app = s.with.get("app").and_then(|v| v.as_str()).unwrap_or(".");
                (s.id.clone(), work_dir.join(app))
            })
            .collect();
        crate::gha::finish_run(&gha, &report, &options.secrets, &apps, args.summary_limit)?;
    }
    Ok(match report.result {
        RunResult::Success => Exit::Success,
        RunResult::Failure => Exit::Negative,
        RunResult::Cancelled => Exit::Cancelled,
    })
}

/// Masks the raw `$UPLIFT_OUTPUT` files the stages wrote in the run folder (the executor reads
/// them and masks what it reports, but the files themselves still hold what the stage wrote),
/// so no secret stays in the run folder.
fn scrub_stage_outputs(report: &RunReport, secrets: &std::collections::BTreeMap<String, String>) {
    let masker = uplift_exec::Masker::new(secrets.values());
    if masker.is_empty() {
        return;
    }
    for stage in &report.stages {
        let path = report.dir.join(&stage.stage).join("outputs");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let masked = masker.mask(&text);
        if masked != text
            && let Err(error) = std::fs::write(&path, masked.as_bytes())
        {
            tracing::warn!(path = %path.display(), %error, "cannot mask a stage's outputs file");
        }
    }
}

/// First SIGINT/SIGTERM: graceful cancel; second: force.
type SignalStreams = (
    std::io::Result<tokio::signal::unix::Signal>,
    std::io::Result<tokio::signal::unix::Signal>,
);

async fn watch_signals(cancel: Cancel, streams: SignalStreams) {
    let (Ok(mut int), Ok(mut term)) = streams else {
        tracing::warn!("cannot listen for signals");
        return;
    };
    for n in 0..2 {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        if n == 0 {
            cancel.graceful.cancel();
        } else {
            cancel.force.cancel();
            cancel.graceful.cancel();
        }
    }
}

fn seconds(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

async fn print_events(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>,
    json: bool,
    quiet: bool,
    width: usize,
    github: bool,
) {
    // In GitHub mode each stage's lines are held and printed as one `::group::` when it ends,
    // so parallel stages do not interleave inside a group.
    let mut held: std::collections::HashMap<String, Vec<String>> = Default::default();
    let mut progress = ProgressView::new(
        crate::progress_bars::bars_wanted(quiet, github, json),
        crate::progress_bars::colour_allowed(),
        width,
    );
    while let Some(event) = rx.recv().await {
        if github && !json {
            match &event {
                Event::StageStarted { .. } => continue,
                Event::StageProgress { stage, .. } => {
                    if let Some(text) = progress_update(&event)
                        .as_ref()
                        .and_then(crate::progress_bars::finished_text)
                    {
                        held.entry(stage.clone()).or_default().push(text);
                    }
                    continue;
                }
                Event::StageOutput { stage, line, .. } => {
                    held.entry(stage.clone()).or_default().push(line.clone());
                    continue;
                }
                Event::StageFinished(s) => {
                    let lines = held.remove(&s.stage).unwrap_or_default();
                    let mut text = uplift_github::group(&format!(
                        "{} ({}, {} in {})",
                        s.stage,
                        s.uses,
                        s.result.as_str(),
                        seconds(s.duration_ms)
                    ));
                    text.push('\n');
                    // The stage's own lines are untrusted: inside a stop-commands block, so
                    // they can neither forge commands nor close the group.
                    text.push_str(&shielded(&lines.join("\n")));
                    text.push_str(&uplift_github::end_group());
                    text.push('\n');
                    let mut err = std::io::stderr().lock();
                    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
                }
                _ => {}
            }
        }
        if json {
            if let Ok(line) = serde_json::to_string(&event) {
                // A run goes on whoever reads its events: a closed stdout is ignored.
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", crate::output::json_safe(&line));
                let _ = out.flush();
            }
            continue;
        }
        if let Some(update) = progress_update(&event) {
            if !quiet && let Some(line) = progress.update(&update) {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
            continue;
        }
        if matches!(event, Event::StageFinished(_) | Event::RunFinished { .. }) {
            // A failed or cancelled stage's tasks never finish: their bars go with it.
            progress.clear_stage(match &event {
                Event::StageFinished(s) => Some(s.stage.as_str()),
                _ => None,
            });
        }
        if let Some(text) = text_event(&event, quiet, width) {
            // Reasons and messages may quote a stage's output: shielded inside Actions.
            let text = if github { shielded(&text) } else { text };
            progress.suspend(|| {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
            });
        }
    }
    progress.clear_stage(None);
}

/// The progress part of a `StageProgress` event.
fn progress_update(event: &Event) -> Option<Update<'_>> {
    match event {
        Event::StageProgress {
            stage,
            task,
            current,
            total,
            unit,
            message,
            done,
        } => Some(Update {
            stage,
            task,
            current: *current,
            total: *total,
            unit: *unit,
            message,
            done: *done,
        }),
        _ => None,
    }
}

/// Untrusted text for the Actions runner's log: inside a fresh `::stop-commands::` block.
fn shielded(text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    match uplift_github::StopCommands::new() {
        Ok(block) => block.wrap(text),
        Err(error) => format!("uplift: output withheld (no random token: {error})\n"),
    }
}

/// The text of one event in the text format (for stderr), if it shows.
fn text_event(event: &Event, quiet: bool, width: usize) -> Option<String> {
    let mut err = String::new();
    use std::fmt::Write as _;
    let _ = match event {
        Event::RunStarted {
            run_id,
            pipeline,
            dir,
            ..
        } if !quiet => {
            writeln!(
                err,
                "uplift: running pipeline `{pipeline}` (run {run_id}, logs in {dir})"
            )
        }
        Event::StageStarted { stage, attempt } if !quiet => {
            if *attempt > 1 {
                writeln!(err, "{stage:>width$} | started (attempt {attempt})")
            } else {
                writeln!(err, "{stage:>width$} | started")
            }
        }
        Event::StageOutput { stage, line, .. } if !quiet => {
            writeln!(err, "{stage:>width$} | {line}")
        }
        Event::StageRetrying {
            stage,
            attempt,
            delay_ms,
            reason,
        } if !quiet => {
            writeln!(
                err,
                "{stage:>width$} | {reason}; retrying in {} (attempt {attempt})",
                seconds(*delay_ms)
            )
        }
        Event::StageFinished(s) if !quiet || s.result == StageResult::Failure => {
            let reason = s
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            writeln!(
                err,
                "{:>width$} | {} in {}{reason}",
                s.stage,
                s.result.as_str(),
                seconds(s.duration_ms)
            )
        }
        Event::Cancelling { .. } => {
            writeln!(
                err,
                "uplift: cancelling: no new stage starts, running ones are stopped (signal again to force)"
            )
        }
        _ => return None,
    };
    Some(err)
}

fn result_text(s: &StageSummary) -> String {
    if s.allowed_failure {
        String::from("failure (allowed)")
    } else {
        s.result.as_str().to_owned()
    }
}

fn print_summary(report: &RunReport) {
    let rows: Vec<(String, String, String, String)> = report
        .stages
        .iter()
        .map(|s| {
            let name = if s.finally {
                format!("{} (finally)", s.stage)
            } else {
                s.stage.clone()
            };
            let attempts = if s.attempts > 1 {
                format!(" ({} attempts)", s.attempts)
            } else {
                String::new()
            };
            (
                name,
                format!("{}{attempts}", result_text(s)),
                seconds(s.duration_ms),
                s.reason.clone().unwrap_or_default(),
            )
        })
        .collect();
    let w0 = rows.iter().map(|r| r.0.len()).chain([5]).max().unwrap_or(5);
    let w1 = rows.iter().map(|r| r.1.len()).chain([6]).max().unwrap_or(6);
    let w2 = rows.iter().map(|r| r.2.len()).chain([8]).max().unwrap_or(8);
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<w0$}  {:<w1$}  {:>w2$}  note",
        "stage", "result", "duration"
    );
    for (a, b, c, d) in &rows {
        let _ = writeln!(out, "{a:<w0$}  {b:<w1$}  {c:>w2$}  {d}");
    }
    let result = match report.result {
        RunResult::Success => "success",
        RunResult::Failure => "failure",
        RunResult::Cancelled => "cancelled",
    };
    let _ = writeln!(
        out,
        "pipeline {result} in {} (run {})",
        seconds(report.duration.as_millis() as u64),
        report.run_id
    );
    // Stage reasons may quote stage output: shielded inside Actions; a closed stdout is ignored.
    crate::output::write_stdout_lossy(out);
}
