//! The types of the pipeline file, as written (serde + JSON Schema from the same types).

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A pipeline file: one pipeline of stages.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(title = "Uplift pipeline")]
pub struct PipelineFile {
    /// The pipeline's name (defaults to the file name without extension).
    #[serde(default)]
    pub name: Option<String>,
    /// What the pipeline is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Environment variables for every stage (values may use `${{ }}`).
    #[serde(default)]
    pub env: IndexMap<String, Scalar>,
    /// Where the app's upstream releases come from (used by `upgrade` stages, `uplift plan`, `uplift apply`).
    #[serde(default)]
    pub upstream: Option<Upstream>,
    /// The stages, by id. They run as a DAG along their `needs`.
    #[serde(default)]
    pub stages: IndexMap<String, StageFile>,
    /// Stages that run after all others, whatever happened (cleanup, notifications).
    #[serde(default)]
    pub finally: IndexMap<String, StageFile>,
}

/// A scalar written as a string, number or boolean; always used as its text.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged, expecting = "expected a string, number or boolean")]
pub enum Scalar {
    String(String),
    Bool(bool),
    Int(i64),
    Float(f64),
}

impl Scalar {
    pub fn as_text(&self) -> String {
        match self {
            Scalar::String(s) => s.clone(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
        }
    }
}

/// The upstream release source of the app (the diff engine's settings).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Upstream {
    /// The release source: `git:PATH_OR_URL` (one tag per release), `dir:PATH` (one folder per release) or `npm:PACKAGE` (a package of each Backstage release); may be left out with a `preset`.
    #[serde(default)]
    pub source: String,
    /// The template folder inside a release: one path, or a list of `SUBDIR` / `VERSION=SUBDIR`
    /// entries (a template that moved: `VERSION=SUBDIR` applies from release VERSION on).
    #[serde(default)]
    pub template: Option<TemplateSpec>,
    /// Values given to the template when it is rendered (e.g. `name: my-app`).
    #[serde(default)]
    pub values: IndexMap<String, serde_json::Value>,
    /// Where the app records the upstream release it is at.
    #[serde(default)]
    pub marker: Option<MarkerSpec>,
    /// A named preset of these settings, inferred from the app: `backstage` (source, template lineage, `name`, `defaultBranch`); the settings given here override it.
    #[serde(default)]
    pub preset: Option<String>,
    /// The release line `latest` follows: `main` (stable releases, the default) or `next` (pre-releases too; Backstage's weekly `next` line).
    #[serde(default)]
    pub line: Option<ReleaseLineSpec>,
}

/// A release line of the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseLineSpec {
    Main,
    Next,
}

/// `template:` as one path or a list of `SUBDIR` / `VERSION=SUBDIR` entries.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "expected a template folder, or a list of `SUBDIR` / `VERSION=SUBDIR` entries"
)]
pub enum TemplateSpec {
    Path(String),
    PerRelease(Vec<String>),
}

/// The marker file and the field in it that holds the app's upstream release.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkerSpec {
    /// The file, relative to the app (e.g. `backstage.json`).
    pub file: String,
    /// The field holding the version (e.g. `version`).
    pub field: String,
}

/// Retries: a count, or a count with a backoff.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "expected a retry count, or `{count, backoff, max-backoff}`"
)]
pub enum RetriesSpec {
    Count(u32),
    Detailed(RetriesDetailed),
}

/// A retry count with an exponential backoff.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RetriesDetailed {
    /// How many times a failed stage is run again.
    pub count: u32,
    /// The wait before the first retry (e.g. `1s`), doubled at each further retry.
    #[serde(default)]
    pub backoff: Option<String>,
    /// The longest wait between two attempts (e.g. `30s`).
    #[serde(default)]
    pub max_backoff: Option<String>,
}

/// A stage as written.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StageFile {
    /// The built-in stage type (`upgrade`, `run`, ...).
    pub uses: String,
    /// The stage type's settings (strings may use `${{ }}`).
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub with: Option<serde_yaml::Value>,
    /// Stages that must finish before this one starts.
    #[serde(default)]
    pub needs: Needs,
    /// A condition (`${{ }}` optional); without a status function, `success() &&` is implied.
    #[serde(default, rename = "if")]
    pub if_: Option<String>,
    /// Environment variables for this stage (values may use `${{ }}`).
    #[serde(default)]
    pub env: IndexMap<String, Scalar>,
    /// The longest the stage may run (e.g. `30s`, `10m`); its process group is then killed.
    #[serde(default)]
    pub timeout: Option<String>,
    /// How often a failed stage is run again.
    #[serde(default)]
    pub retries: Option<RetriesSpec>,
    /// A failure of this stage does not fail the pipeline nor block its dependents.
    #[serde(default)]
    pub continue_on_error: bool,
    /// The outputs the stage writes to `$UPLIFT_OUTPUT` (`KEY=VALUE` lines) that others may read.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// What the stage does, for plans and summaries.
    #[serde(default)]
    pub description: Option<String>,
}

/// `needs:` as one id or a list.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged, expecting = "expected a stage id or a list of stage ids")]
pub enum Needs {
    #[default]
    #[schemars(skip)]
    None,
    One(String),
    Many(Vec<String>),
}

impl Needs {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Needs::None => Vec::new(),
            Needs::One(s) => vec![s.clone()],
            Needs::Many(v) => v.clone(),
        }
    }
}
