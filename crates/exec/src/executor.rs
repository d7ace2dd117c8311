//! The DAG executor: runs a checked pipeline's stages on tokio.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uplift_pipeline::{Pipeline, Stage as StageDef};

pub use crate::attempt::parse_output_file;
use crate::attempt::{Job, run_stage};
use crate::events::{Event, RunResult, StageResult, StageSummary};
use crate::lock::{LockError, RunLock};
use crate::mask::Masker;
use crate::scope::{EvalScope, PipelineInfo, Status, render_env, resolve_yaml};
use crate::stage::{Outputs, Registry, ResolvedStage};

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The pipeline's folder: stages run there, relative paths start there.
    pub work_dir: PathBuf,
    /// The state folder (`.uplift`): lock and run folders.
    pub state_dir: PathBuf,
    /// Most stages running at once.
    pub jobs: usize,
    /// Run only these stages (their needs are taken as done).
    pub only: Vec<String>,
    /// Run this stage and every stage that depends on it.
    pub from: Option<String>,
    /// Time between SIGTERM and SIGKILL when a stage is stopped.
    pub grace: Duration,
    /// The environment stages start from (the caller removes what must not leak).
    pub base_env: BTreeMap<String, String>,
    /// Secret values by name (`secrets.NAME`); every value is masked everywhere.
    pub secrets: BTreeMap<String, String>,
}

impl RunOptions {
    pub fn new(work_dir: impl Into<PathBuf>) -> Self {
        let work_dir = work_dir.into();
        Self {
            state_dir: work_dir.join(".uplift"),
            work_dir,
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            only: Vec::new(),
            from: None,
            grace: Duration::from_secs(10),
            base_env: BTreeMap::new(),
            secrets: BTreeMap::new(),
        }
    }

    pub fn masker(&self) -> Masker {
        Masker::new(self.secrets.values())
    }
}

/// Cancellation of a run: the first signal cancels `graceful` (no new stage starts, running
/// ones get SIGTERM then SIGKILL after the grace period, `finally` still runs); the second
/// cancels `force` too (SIGKILL now, `finally` stages not yet started are skipped).
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    pub graceful: CancellationToken,
    pub force: CancellationToken,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub run_id: String,
    pub dir: PathBuf,
    pub result: RunResult,
    pub stages: Vec<StageSummary>,
    pub duration: Duration,
}

/// The failures that prevent a run (a failing stage is a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no stage `{0}` in the pipeline")]
    UnknownStage(String),
    #[error("stage type `{0}` is not available in this build")]
    UnknownType(String),
}

fn io_err<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> ExecError + 'p {
    move |source| ExecError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// A run id: UTC time and pid, sortable (`20261128T180000Z-1234`).
pub fn new_run_id() -> String {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let compact: String = stamp.chars().filter(|c| *c != '-' && *c != ':').collect();
    format!("{compact}-{}", std::process::id())
}

/// Which main stages run (the rest count as done), from `--only` and `--from`.
pub fn selection(
    pipeline: &Pipeline,
    only: &[String],
    from: Option<&str>,
) -> Result<Option<HashSet<String>>, ExecError> {
    for id in only.iter().map(String::as_str).chain(from) {
        if !pipeline.stages.contains_key(id) {
            return Err(ExecError::UnknownStage(id.to_owned()));
        }
    }
    if only.is_empty() && from.is_none() {
        return Ok(None);
    }
    let mut selected: HashSet<String> = only.iter().cloned().collect();
    if let Some(from) = from {
        selected.insert(from.to_owned());
        selected.extend(uplift_pipeline::dag::dependents(&pipeline.stages, from));
    }
    Ok(Some(selected))
}

#[derive(Debug, Clone)]
struct Done {
    result: StageResult,
    allowed_failure: bool,
    /// Skipped because not selected: counts as success for its dependents.
    not_selected: bool,
}

impl Done {
    fn ok(&self) -> bool {
        self.result == StageResult::Success || self.not_selected || self.allowed_failure
    }
    fn failed(&self) -> bool {
        self.result == StageResult::Failure && !self.allowed_failure
    }
}

/// See [`Executor::lineage`].
#[derive(Debug, Clone, Copy)]
struct Lineage {
    all_ok: bool,
    any_failed: bool,
}

pub(crate) struct Outcome {
    pub(crate) id: String,
    pub(crate) result: StageResult,
    pub(crate) attempts: u32,
    pub(crate) duration: Duration,
    pub(crate) outputs: Outputs,
    pub(crate) reason: Option<String>,
}

struct Executor<'a> {
    pipeline: &'a Pipeline,
    registry: &'a Registry,
    options: &'a RunOptions,
    masker: Masker,
    events: UnboundedSender<Event>,
    info: PipelineInfo,
    run_dir: PathBuf,
    /// Tags this run's processes (see [`crate::tracking`]).
    run_tag: Arc<str>,
    pipeline_env: BTreeMap<String, String>,
    done: HashMap<String, Done>,
    /// Per finished stage: whether every stage it needs (directly or not, within its section)
    /// is ok, and whether any failed. A stage's status is then read from its direct needs
    /// alone, instead of walking all its ancestors (quadratic on long chains).
    lineage: HashMap<String, Lineage>,
    /// Main stages that failed (for the status of `finally` stages).
    main_failures: usize,
    results: HashMap<String, StageResult>,
    outputs: HashMap<String, Outputs>,
    summaries: HashMap<String, StageSummary>,
    cancelled: bool,
}

/// Runs a checked pipeline. Events (masked) go to `events` as they happen; they are also
/// written to the run folder's `events.jsonl`.
pub async fn run_pipeline(
    pipeline: &Pipeline,
    registry: &Registry,
    options: &RunOptions,
    cancel: Cancel,
    events: UnboundedSender<Event>,
) -> Result<RunReport, ExecError> {
    let started = Instant::now();
    for stage in pipeline.stages.values().chain(pipeline.finally.values()) {
        if registry.get(&stage.uses).is_none() {
            return Err(ExecError::UnknownType(stage.uses.clone()));
        }
    }
    let selected = selection(pipeline, &options.only, options.from.as_deref())?;
    let _lock = RunLock::acquire(&options.state_dir, &pipeline.name)?;
    crate::tracking::become_subreaper();
    // A run that was killed (SIGKILL, a crash) left its id here: its processes go first.
    let active_path = options.state_dir.join("active-run");
    if let Ok(previous) = std::fs::read_to_string(&active_path) {
        let killed = crate::tracking::kill_run_leftovers(previous.trim());
        if killed > 0 {
            tracing::warn!(
                run = previous.trim(),
                killed,
                "killed processes left by a run that did not finish"
            );
        }
    }
    let run_id = new_run_id();
    // What tags this run's processes: unique even between runs of one process in one second.
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run_tag = format!(
        "{run_id}.{}",
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    std::fs::write(&active_path, &run_tag).map_err(io_err("write", &active_path))?;
    let run_dir = options.state_dir.join("runs").join(&run_id);
    std::fs::create_dir_all(&run_dir).map_err(io_err("create run folder", &run_dir))?;

    // Every event goes to events.jsonl and to the caller.
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let events_path = run_dir.join("events.jsonl");
    let mut events_file = std::io::BufWriter::new(
        std::fs::File::create(&events_path).map_err(io_err("create", &events_path))?,
    );
    let forward = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            if let Ok(line) = serde_json::to_string(&event) {
                let _ = writeln!(events_file, "{line}");
            }
            let _ = events.send(event);
            // Flush whenever the queue is drained: batched under load, current when idle.
            if rx.is_empty() {
                let _ = events_file.flush();
            }
        }
        let _ = events_file.flush();
    });

    let masker = options.masker();
    let info = PipelineInfo {
        name: pipeline.name.clone(),
        run_id: run_id.clone(),
        file: pipeline.file.clone(),
        dir: options.work_dir.display().to_string(),
    };
    let _ = tx.send(Event::RunStarted {
        run_id: run_id.clone(),
        pipeline: pipeline.name.clone(),
        dir: run_dir.display().to_string(),
        stages: pipeline.stages.len() + pipeline.finally.len(),
    });
    let mut exec = Executor {
        pipeline,
        registry,
        options,
        masker,
        events: tx.clone(),
        info,
        run_dir: run_dir.clone(),
        run_tag: Arc::from(run_tag.as_str()),
        pipeline_env: BTreeMap::new(),
        done: HashMap::new(),
        lineage: HashMap::new(),
        main_failures: 0,
        results: HashMap::new(),
        outputs: HashMap::new(),
        summaries: HashMap::new(),
        cancelled: false,
    };
    let env_result = {
        let empty_outputs = HashMap::new();
        let empty_results = HashMap::new();
        let scope = EvalScope {
            env: &options.base_env,
            secrets: &options.secrets,
            outputs: &empty_outputs,
            results: &empty_results,
            pipeline: &exec.info,
            status: Status {
                success: true,
                failure: false,
                cancelled: false,
            },
            plan: false,
        };
        render_env(&pipeline.env, &scope)
    };
    let env_error = match env_result {
        Ok(env) => {
            exec.pipeline_env = env;
            None
        }
        Err(error) => Some(error.message),
    };

    // Main stages: cancelled by the first signal.
    let main_token = cancel.graceful.child_token();
    if let Some(message) = &env_error {
        for stage in pipeline.stages.values() {
            exec.finish_without_running(
                stage,
                StageResult::Failure,
                format!("pipeline env: {message}"),
                false,
            );
        }
    } else {
        exec.phase(&pipeline.stages, selected.as_ref(), &main_token, &cancel)
            .await;
    }
    exec.cancelled |= cancel.graceful.is_cancelled();

    // `finally` stages: run whatever happened, stopped only by a forced cancel.
    let finally_token = CancellationToken::new();
    let watcher = {
        let force = cancel.force.clone();
        let token = finally_token.clone();
        tokio::spawn(async move {
            force.cancelled().await;
            token.cancel();
        })
    };
    exec.phase(&pipeline.finally, None, &finally_token, &cancel)
        .await;
    watcher.abort();

    let stages: Vec<StageSummary> = pipeline
        .stages
        .keys()
        .chain(pipeline.finally.keys())
        .filter_map(|id| exec.summaries.get(id).cloned())
        .collect();
    let result = if exec.cancelled {
        RunResult::Cancelled
    } else if exec.done.values().any(Done::failed) {
        RunResult::Failure
    } else {
        RunResult::Success
    };
    let duration = started.elapsed();
    let summary_path = run_dir.join("summary.json");
    let summary = serde_json::json!({ "run_id": run_id, "pipeline": pipeline.name, "result": result, "duration_ms": duration.as_millis() as u64, "stages": stages });
    let _ = std::fs::write(
        &summary_path,
        serde_json::to_string_pretty(&summary).unwrap_or_default(),
    );
    let _ = tx.send(Event::RunFinished {
        run_id: run_id.clone(),
        result,
        duration_ms: duration.as_millis() as u64,
        stages: stages.clone(),
    });
    drop(tx);
    drop(exec);
    let _ = forward.await;
    // Anything of this run still alive (a stage future dropped before its process ended).
    let leftovers = crate::tracking::kill_run_leftovers(&run_tag);
    if leftovers > 0 {
        tracing::warn!(leftovers, "killed processes that outlived their stage");
    }
    let _ = std::fs::remove_file(&active_path);
    Ok(RunReport {
        run_id,
        dir: run_dir,
        result,
        stages,
        duration,
    })
}

impl Executor<'_> {
    fn record(&mut self, stage: &StageDef, outcome: Outcome, not_selected: bool) {
        let allowed_failure = outcome.result == StageResult::Failure && stage.continue_on_error;
        let summary = StageSummary {
            stage: outcome.id.clone(),
            uses: stage.uses.clone(),
            finally: stage.finally,
            result: outcome.result,
            allowed_failure,
            attempts: outcome.attempts,
            duration_ms: outcome.duration.as_millis() as u64,
            reason: outcome.reason.map(|r| self.masker.mask(&r).into_owned()),
            outputs: outcome
                .outputs
                .iter()
                .map(|(k, v)| (k.clone(), self.masker.mask(v).into_owned()))
                .collect(),
        };
        let _ = self.events.send(Event::StageFinished(summary.clone()));
        let lineage = self.needs_lineage(stage);
        self.lineage.insert(outcome.id.clone(), lineage);
        if !stage.finally && outcome.result == StageResult::Failure && !allowed_failure {
            self.main_failures += 1;
        }
        self.summaries.insert(outcome.id.clone(), summary);
        self.results.insert(outcome.id.clone(), outcome.result);
        self.outputs.insert(outcome.id.clone(), outcome.outputs);
        self.done.insert(
            outcome.id,
            Done {
                result: outcome.result,
                allowed_failure,
                not_selected,
            },
        );
    }

    fn finish_without_running(
        &mut self,
        stage: &StageDef,
        result: StageResult,
        reason: String,
        not_selected: bool,
    ) {
        let outcome = Outcome {
            id: stage.id.clone(),
            result,
            attempts: 0,
            duration: Duration::ZERO,
            outputs: Outputs::new(),
            reason: Some(reason),
        };
        self.record(stage, outcome, not_selected);
    }

    /// Whether every stage `stage` needs (directly or not, within its section) is done and ok,
    /// and whether any failed; from its direct needs and their recorded [`Lineage`].
    fn needs_lineage(&self, stage: &StageDef) -> Lineage {
        let section = if stage.finally {
            &self.pipeline.finally
        } else {
            &self.pipeline.stages
        };
        let mut lineage = Lineage {
            all_ok: true,
            any_failed: false,
        };
        for need in &stage.needs {
            let done = self.done.get(need);
            lineage.all_ok &= done.is_some_and(Done::ok);
            lineage.any_failed |= done.is_some_and(Done::failed);
            // A need outside the section (a `finally` stage naming a main stage) counts alone.
            if section.contains_key(need) {
                match self.lineage.get(need) {
                    Some(of_need) => {
                        lineage.all_ok &= of_need.all_ok;
                        lineage.any_failed |= of_need.any_failed;
                    }
                    None => lineage.all_ok = false,
                }
            }
        }
        lineage
    }

    fn status_for(&self, stage: &StageDef) -> Status {
        let Lineage {
            all_ok: mut success,
            any_failed: mut failure,
        } = self.needs_lineage(stage);
        if stage.finally {
            let main_failed = self.main_failures > 0;
            success = success && !main_failed && !self.cancelled;
            failure = failure || main_failed;
        }
        Status {
            success,
            failure,
            cancelled: self.cancelled,
        }
    }

    fn scope<'s>(&'s self, env: &'s BTreeMap<String, String>, status: Status) -> EvalScope<'s> {
        EvalScope {
            env,
            secrets: &self.options.secrets,
            outputs: &self.outputs,
            results: &self.results,
            pipeline: &self.info,
            status,
            plan: false,
        }
    }

    /// Whether the stage's `if` holds (default `success()`, `always()` in `finally`).
    fn condition(&self, stage: &StageDef, env: &BTreeMap<String, String>) -> Result<bool, String> {
        let status = self.status_for(stage);
        let scope = self.scope(env, status);
        match &stage.condition {
            None => Ok(stage.finally || status.success),
            Some((_, expr)) => {
                let value = expr.eval(&scope).map_err(|e| e.message)?.truthy();
                Ok(if expr.has_status_fn() || stage.finally {
                    value
                } else {
                    status.success && value
                })
            }
        }
    }

    fn resolve(&self, stage: &StageDef) -> Result<ResolvedStage, String> {
        let mut env = self.options.base_env.clone();
        env.extend(self.pipeline_env.clone());
        let status = self.status_for(stage);
        let stage_env = render_env(&stage.env, &self.scope(&env, status)).map_err(|e| e.message)?;
        let mut declared = self.pipeline_env.clone();
        declared.extend(stage_env.clone());
        env.extend(stage_env);
        let with = resolve_yaml(&stage.with, &self.scope(&env, status))
            .map_err(|e| format!("with: {}", e.message))?;
        Ok(ResolvedStage {
            id: stage.id.clone(),
            uses: stage.uses.clone(),
            with,
            env,
            declared_env: declared,
            description: stage.description.clone(),
        })
    }

    /// Runs one section's stages. Each stage waits on a count of unfinished needs; a finished
    /// stage counts down its dependents and those reaching zero join a ready queue in file
    /// order, so scheduling costs stays linear in stages and needs.
    async fn phase(
        &mut self,
        stages: &indexmap::IndexMap<String, StageDef>,
        selected: Option<&HashSet<String>>,
        token: &CancellationToken,
        cancel: &Cancel,
    ) {
        let count = stages.len();
        let mut waiting_on = vec![0usize; count];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); count];
        for (index, stage) in stages.values().enumerate() {
            for need in &stage.needs {
                if let Some(need_index) = stages.get_index_of(need.as_str()) {
                    waiting_on[index] += 1;
                    dependents[need_index].push(index);
                }
            }
        }
        // Stages not started yet, and those of them whose needs are all finished.
        let mut unstarted = vec![true; count];
        let mut ready: BTreeSet<usize> = (0..count).filter(|&i| waiting_on[i] == 0).collect();
        // Ready stages whose condition holds, waiting for a free job.
        let mut startable: BTreeSet<usize> = BTreeSet::new();
        let mut running: JoinSet<Outcome> = JoinSet::new();
        let jobs = self.options.jobs.max(1);
        let is_finally = stages.values().any(|s| s.finally);
        let env = {
            let mut env = self.options.base_env.clone();
            env.extend(self.pipeline_env.clone());
            env
        };
        // Records a stage that finished (ran or not) and readies its dependents.
        fn finished(
            index: usize,
            waiting_on: &mut [usize],
            dependents: &[Vec<usize>],
            ready: &mut BTreeSet<usize>,
        ) {
            for &dependent in &dependents[index] {
                waiting_on[dependent] = waiting_on[dependent].saturating_sub(1);
                if waiting_on[dependent] == 0 {
                    ready.insert(dependent);
                }
            }
        }
        loop {
            if token.is_cancelled() {
                let reason = if is_finally {
                    "forced stop"
                } else {
                    "run cancelled"
                };
                for (index, waiting) in unstarted.iter_mut().enumerate() {
                    if std::mem::take(waiting)
                        && let Some((_, stage)) = stages.get_index(index)
                    {
                        self.finish_without_running(
                            stage,
                            StageResult::Cancelled,
                            reason.to_owned(),
                            false,
                        );
                    }
                }
                ready.clear();
                startable.clear();
            }
            // Decide every ready stage, in file order: skipped, failed, or startable.
            while let Some(index) = ready.pop_first() {
                let Some((_, stage)) = stages.get_index(index) else {
                    continue;
                };
                if selected.is_some_and(|s| !s.contains(&stage.id)) {
                    unstarted[index] = false;
                    self.finish_without_running(
                        stage,
                        StageResult::Skipped,
                        String::from("not selected"),
                        true,
                    );
                    finished(index, &mut waiting_on, &dependents, &mut ready);
                    continue;
                }
                match self.condition(stage, &env) {
                    Ok(true) => {
                        startable.insert(index);
                    }
                    Ok(false) => {
                        unstarted[index] = false;
                        let reason = match &stage.condition {
                            Some((text, _)) => format!("condition `{text}` is false"),
                            None => String::from("a needed stage did not succeed"),
                        };
                        self.finish_without_running(stage, StageResult::Skipped, reason, false);
                        finished(index, &mut waiting_on, &dependents, &mut ready);
                    }
                    Err(message) => {
                        unstarted[index] = false;
                        self.finish_without_running(
                            stage,
                            StageResult::Failure,
                            format!("if: {message}"),
                            false,
                        );
                        finished(index, &mut waiting_on, &dependents, &mut ready);
                    }
                }
            }
            // Start startable stages, in file order, up to `jobs`.
            while running.len() < jobs
                && let Some(index) = startable.pop_first()
            {
                let Some((_, stage)) = stages.get_index(index) else {
                    continue;
                };
                unstarted[index] = false;
                let started = match self.resolve(stage) {
                    Err(message) => Err(message),
                    Ok(resolved) => match self.registry.get(&stage.uses) {
                        None => Err(format!("unknown stage type `{}`", stage.uses)),
                        Some(imp) => Ok(Job {
                            def: stage.clone(),
                            resolved,
                            imp: imp.clone(),
                            token: token.child_token(),
                            force: cancel.force.clone(),
                            grace: self.options.grace,
                            events: self.events.clone(),
                            masker: self.masker.clone(),
                            work_dir: self.options.work_dir.clone(),
                            stage_dir: self.run_dir.join(&stage.id),
                            upstream: self.pipeline.upstream.clone(),
                            run_tag: self.run_tag.clone(),
                        }),
                    },
                };
                match started {
                    Ok(job) => {
                        running.spawn(run_stage(job));
                    }
                    Err(message) => {
                        self.finish_without_running(stage, StageResult::Failure, message, false);
                        finished(index, &mut waiting_on, &dependents, &mut ready);
                    }
                }
            }
            if !ready.is_empty() {
                continue;
            }
            if running.is_empty() {
                if startable.is_empty() {
                    // Nothing runs and nothing is ready: the rest wait on stages outside the DAG.
                    for (index, waiting) in unstarted.iter_mut().enumerate() {
                        if std::mem::take(waiting)
                            && let Some((_, stage)) = stages.get_index(index)
                        {
                            self.finish_without_running(
                                stage,
                                StageResult::Skipped,
                                String::from("needs never finished"),
                                false,
                            );
                        }
                    }
                    return;
                }
                continue;
            }
            tokio::select! {
                joined = running.join_next() => {
                    if let Some(joined) = joined {
                        match joined {
                            Ok(outcome) => {
                                if let Some((index, _, def)) = stages.get_full(&outcome.id) {
                                    self.record(def, outcome, false);
                                    finished(index, &mut waiting_on, &dependents, &mut ready);
                                }
                            }
                            Err(error) => tracing::error!(%error, "stage task failed"),
                        }
                    }
                }
                () = token.cancelled(), if !self.cancelled && !is_finally => {
                    self.cancelled = true;
                    let _ = self.events.send(Event::Cancelling { forced: cancel.force.is_cancelled() });
                }
            }
        }
    }
}
