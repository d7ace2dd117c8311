//! The [`Stage`] trait every stage type implements, and the contexts it is given.
//!
//! A stage type provides the parsing/checking of its typed `with` (its [`StageSpec`]), a
//! side-effect-free [`Stage::plan`] given a [`PlanContext`] (no process spawner, only a temp
//! folder to write in), and an async [`Stage::run`] given a [`RunContext`] (cancellation,
//! env, masker, output sink, run folder and the [`Spawner`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use uplift_pipeline::{Catalog, StageSpec, Upstream};

use crate::mask::Masker;
use crate::process::{ProcessError, Spawner};
pub use crate::sink::OutputSink;

/// Outputs of a stage: name → value.
pub type Outputs = BTreeMap<String, String>;

/// A boxed future, for object-safe async trait methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A stage with every expression resolved, ready to plan or run.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedStage {
    pub id: String,
    pub uses: String,
    /// `with` with expressions replaced by their values.
    pub with: serde_yaml::Value,
    /// The complete environment of the stage's processes.
    pub env: BTreeMap<String, String>,
    /// Only the variables the pipeline sets (top-level and stage `env`), for plans.
    pub declared_env: BTreeMap<String, String>,
    pub description: Option<String>,
}

/// What a stage would do, as the plan shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StagePlan {
    /// One line: what the stage would do.
    pub summary: String,
    /// The concrete actions (commands, files, tags, targets), one per line.
    pub actions: Vec<String>,
    /// Stage-specific structured detail (e.g. an upgrade's merge plan).
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

/// The failures of a stage.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("invalid settings: {0}")]
    Settings(String),
    #[error("{message}")]
    Failed {
        message: String,
        /// The last lines of output.
        tail: Vec<String>,
    },
    #[error("stopped")]
    Stopped,
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// Everything a stage may use while it runs.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub stage_id: String,
    /// Fires on cancellation or timeout.
    pub cancel: CancellationToken,
    pub masker: Masker,
    pub output: OutputSink,
    /// The pipeline's folder (relative paths in settings are relative to it).
    pub work_dir: PathBuf,
    /// This stage's folder in the run folder (`.uplift/runs/<id>/<stage>/`).
    pub stage_dir: PathBuf,
    /// The file named by `$UPLIFT_OUTPUT`.
    pub output_file: PathBuf,
    /// The pipeline's `upstream:` block.
    pub upstream: Option<Upstream>,
    /// Starts processes (in their own process group, killed on cancel).
    pub spawner: Spawner,
}

/// Everything a stage may use while it plans: no spawner, and only a temp folder to write in.
#[derive(Debug)]
pub struct PlanContext<'a> {
    pub stage_id: &'a str,
    pub masker: &'a Masker,
    /// The pipeline's folder, to read from (never to write to).
    pub work_dir: &'a Path,
    /// A folder removed after the plan, the only place a plan may write.
    pub temp_dir: &'a Path,
    pub upstream: Option<&'a Upstream>,
}

/// A stage type.
pub trait Stage: Send + Sync {
    /// Its name, `with` checking and schema, and typed outputs.
    fn spec(&self) -> Arc<dyn StageSpec>;

    /// What the stage would do, without side effects.
    fn plan(&self, ctx: &PlanContext<'_>, stage: &ResolvedStage) -> Result<StagePlan, StageError>;

    /// Runs the stage; returns its typed outputs (declared `$UPLIFT_OUTPUT` ones are added by the executor).
    fn run<'a>(
        &'a self,
        ctx: RunContext,
        stage: &'a ResolvedStage,
    ) -> BoxFuture<'a, Result<Outputs, StageError>>;
}

/// The stage types available to a run, by name.
#[derive(Clone, Default)]
pub struct Registry {
    stages: BTreeMap<&'static str, Arc<dyn Stage>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.stages.keys()).finish()
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a stage type.
    pub fn register(&mut self, stage: Arc<dyn Stage>) {
        let name = stage.spec().name();
        self.stages.insert(name, stage);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Stage>> {
        self.stages.get(name)
    }

    /// The catalog validation checks files against.
    pub fn catalog(&self) -> Catalog {
        let mut catalog = Catalog::new();
        for stage in self.stages.values() {
            catalog.add(stage.spec());
        }
        catalog
    }
}
