//! The pipeline executor: DAG scheduling on tokio, processes in process groups, cancellation,
//! run folders, the run lock, events, secret masking and the side-effect-free plan.
//!
//! - [`Stage`] is the trait every stage type implements; [`Registry`] holds them by name.
//! - [`run_pipeline`] runs a checked [`Pipeline`](uplift_pipeline::Pipeline) and streams
//!   [`Event`]s; [`plan_pipeline`] plans it without running anything.
//! - [`Masker`] masks secrets in every output channel; [`Spawner`] is the only way a stage
//!   starts a process (a plan never gets one); [`RunLock`] keeps two runs apart.

mod attempt;
pub mod events;
pub mod executor;
pub mod lock;
pub mod mask;
pub mod plan;
pub mod process;
pub mod scope;
pub mod sink;
pub mod stage;
pub mod tracking;

pub use events::{
    Event, Progress, ProgressThrottle, ProgressUnit, RunResult, StageResult, StageSummary, Stream,
};
pub use executor::{Cancel, ExecError, RunOptions, RunReport, run_pipeline};
pub use lock::{LockError, LockOwner, RunLock};
pub use mask::Masker;
pub use plan::{PipelinePlan, PlanFormat, PlanOptions, PlannedStage, plan_pipeline, render_plan};
pub use process::{ProcessExit, ProcessSpec, Spawner};
pub use stage::{
    BoxFuture, OutputSink, Outputs, PlanContext, Registry, ResolvedStage, RunContext, Stage,
    StageError, StagePlan,
};

/// The environment a run starts from: this process's, without `UPLIFT_SECRET_*` (secrets reach
/// a stage only through `${{ secrets.X }}`). A variable whose name or value is not UTF-8 cannot
/// be read by an expression nor passed through the stage's (UTF-8) environment: it is left out
/// with a warning, never a panic.
pub fn base_env_from_process() -> std::collections::BTreeMap<String, String> {
    utf8_vars()
        .filter(|(k, _)| !k.starts_with(SECRET_ENV_PREFIX))
        .collect()
}

/// This process's environment variables that are UTF-8 (`std::env::vars` panics on the others).
fn utf8_vars() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(name, value)| match (name.into_string(), value.into_string()) {
        (Ok(name), Ok(value)) => Some((name, value)),
        (name, _) => {
            let name = match name {
                Ok(name) => name,
                Err(raw) => raw.to_string_lossy().into_owned(),
            };
            tracing::warn!(variable = %name, "environment variable is not UTF-8: left out of the run");
            None
        }
    })
}

/// Environment variables holding secrets: `UPLIFT_SECRET_TOKEN` is `secrets.TOKEN`.
pub const SECRET_ENV_PREFIX: &str = "UPLIFT_SECRET_";

/// Reads secrets from the environment (`UPLIFT_SECRET_*`) and, when given, a file of
/// `KEY=VALUE` lines (`#` comments; the file wins).
pub fn load_secrets(
    file: Option<&std::path::Path>,
) -> Result<std::collections::BTreeMap<String, String>, ExecError> {
    let mut secrets: std::collections::BTreeMap<String, String> = utf8_vars()
        .filter_map(|(k, v)| {
            k.strip_prefix(SECRET_ENV_PREFIX)
                .map(|name| (name.to_owned(), v))
        })
        .collect();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ExecError::Io {
            what: "read secrets file",
            path: path.to_owned(),
            source,
        })?;
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                secrets.insert(k.trim().to_owned(), v.to_owned());
            }
        }
    }
    Ok(secrets)
}
