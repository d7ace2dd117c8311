//! The pipeline file: model, validation with source positions, expressions, DAG checks.
//!
//! - [`parse`] / [`load`] turn a YAML file into a checked [`Pipeline`], or [`Diagnostics`]
//!   listing every problem at once with file, line, column and a snippet.
//! - [`model`] holds the file's types as written ([`model::PipelineFile`]); [`schema`] derives
//!   the JSON Schema from them.
//! - [`expr`] parses and evaluates `${{ ... }}` expressions (a PEG grammar, pest).
//! - [`with`] holds the typed `with` settings of `run` and `upgrade` and the [`Catalog`] of
//!   stage types a file is checked against (other crates add theirs).
//! - [`dag`] finds cycles and orders stages.
//!
//! Positions: `serde_yaml` reports positions only for syntax errors, so a [`span::SpanIndex`]
//! built from `saphyr-parser` events gives the position of every key and value.

pub mod dag;
pub mod diag;
pub mod expr;
mod load;
pub mod model;
pub mod schema;
pub mod span;
pub mod stages;
pub mod suggest;
pub mod with;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;

pub use diag::{Diagnostics, Problem};
pub use expr::{Expr, Template};
pub use load::{MAX_FILE_BYTES, parse};
pub use model::Upstream;
pub use with::{Catalog, StageSpec};

/// The failures of [`load`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("read pipeline file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} has {} error(s)", .0.file, .0.problems.len())]
    Invalid(Box<Diagnostics>),
}

/// Reads and checks a pipeline file.
///
/// At most [`MAX_FILE_BYTES`] + 1 bytes are read, so `/dev/zero` or an endless pipe is refused
/// as too large instead of filling memory.
pub fn load(path: &Path, catalog: &Catalog) -> Result<Pipeline, Error> {
    use std::io::Read;
    let file = path.display().to_string();
    let read_error = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES as u64 + 1).read_to_end(&mut bytes))
        .map_err(read_error)?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(Error::Invalid(Box::new(load::too_large(&file))));
    }
    let text = String::from_utf8(bytes)
        .map_err(|error| read_error(std::io::Error::new(std::io::ErrorKind::InvalidData, error)))?;
    parse(&file, &text, catalog).map_err(|d| Error::Invalid(Box::new(d)))
}

/// A checked pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub description: Option<String>,
    /// The file name as given (for messages and `pipeline.file`).
    pub file: String,
    /// Top-level env (values are templates).
    pub env: IndexMap<String, String>,
    pub upstream: Option<Upstream>,
    /// The main stages, in file order.
    pub stages: IndexMap<String, Stage>,
    /// The `finally` stages, in file order.
    pub finally: IndexMap<String, Stage>,
}

impl Pipeline {
    /// Every stage `id` needs, directly or not (within its section).
    pub fn ancestors(&self, id: &str) -> HashSet<String> {
        if self.finally.contains_key(id) {
            dag::ancestors(&self.finally, id)
        } else {
            dag::ancestors(&self.stages, id)
        }
    }

    /// Whether stage `id` needs `target`, directly or not (within its section).
    pub fn needs_transitively(&self, id: &str, target: &str) -> bool {
        if self.finally.contains_key(id) {
            dag::needs_transitively(&self.finally, id, target)
        } else {
            dag::needs_transitively(&self.stages, id, target)
        }
    }

    /// The main stages in dependency layers, then the `finally` stages' layers.
    pub fn layers(&self) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
        (dag::layers(&self.stages), dag::layers(&self.finally))
    }

    pub fn stage(&self, id: &str) -> Option<&Stage> {
        self.stages.get(id).or_else(|| self.finally.get(id))
    }
}

/// How often a failed stage is run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retries {
    pub count: u32,
    /// Wait before the first retry; doubled each time.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Retries {
    /// The wait before retry number `retry` (1-based).
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// A checked stage.
#[derive(Debug, Clone)]
pub struct Stage {
    pub id: String,
    pub uses: String,
    /// The raw `with` block (strings may hold `${{ }}`; resolved when the stage runs).
    pub with: serde_yaml::Value,
    pub needs: Vec<String>,
    /// The `if` as written, and parsed.
    pub condition: Option<(String, Expr)>,
    pub env: IndexMap<String, String>,
    pub timeout: Option<Duration>,
    pub retries: Retries,
    pub continue_on_error: bool,
    pub outputs: Vec<String>,
    pub description: Option<String>,
    /// Whether the stage is in `finally`.
    pub finally: bool,
}
