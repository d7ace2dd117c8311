//! The typed `with` settings of the stage types this crate models (`run`, `upgrade`), and the
//! [`Catalog`] of stage types a pipeline is checked against.

use std::marker::PhantomData;
use std::sync::Arc;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::span::YamlPath;

/// `uses: run`: a shell command on the host.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RunWith {
    /// The script, run by the shell; its exit code is the stage's result.
    pub run: String,
    /// The shell (default `sh`); `sh`, `bash`, `dash` and `zsh` run with `-e`.
    #[serde(default)]
    pub shell: Option<String>,
    /// The folder the script runs in, relative to the pipeline's folder (default: that folder).
    #[serde(default)]
    pub working_directory: Option<String>,
}

/// How conflicts are written into files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictStyle {
    #[default]
    Merge,
    Diff3,
}

/// `uses: upgrade`: merge an upstream release into the app (the `upstream:` block says from where).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UpgradeWith {
    /// The app's folder, relative to the pipeline's folder.
    #[serde(default = "default_app")]
    pub app: String,
    /// The target release, or `latest`.
    #[serde(default = "default_to")]
    pub to: String,
    /// Apply on a new git branch with one commit (e.g. `uplift/upgrade-${{ ... }}`).
    #[serde(default)]
    pub branch: Option<String>,
    /// Apply even when conflicts remain (they are written with markers).
    #[serde(default)]
    pub allow_conflicts: bool,
    /// How conflicts are written.
    #[serde(default)]
    pub conflict_style: ConflictStyle,
    /// Only check whether an upgrade is available (outputs `current`, `latest`, `line`, `available`); change nothing.
    #[serde(default)]
    pub check: bool,
}

fn default_app() -> String {
    String::from(".")
}

fn default_to() -> String {
    String::from("latest")
}

/// A `with` that does not match its stage type; `path` is relative to the `with` block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct WithError {
    pub path: YamlPath,
    pub message: String,
    /// The problem is the key at `path` (an unknown field) rather than its value.
    pub at_key: bool,
}

/// Deserializes a `with` block into its typed settings (a missing block is an empty map).
pub fn parse_with<T: DeserializeOwned>(with: &serde_yaml::Value) -> Result<T, WithError> {
    let value = match with {
        serde_yaml::Value::Null => serde_yaml::Value::Mapping(serde_yaml::Mapping::new()),
        other => other.clone(),
    };
    serde_path_to_error::deserialize(value).map_err(|error| {
        let message = error.inner().to_string();
        WithError {
            path: YamlPath::root().join_serde(error.path()),
            at_key: message.starts_with("unknown field"),
            message,
        }
    })
}

/// What validation and the schema need to know of a stage type.
pub trait StageSpec: Send + Sync {
    /// The `uses:` name.
    fn name(&self) -> &'static str;
    /// One line for `--help`-like listings.
    fn summary(&self) -> &'static str;
    /// Checks the `with` block.
    fn check_with(&self, with: &serde_yaml::Value) -> Result<(), WithError>;
    /// The JSON Schema of the `with` block.
    fn with_schema(&self, generator: &mut SchemaGenerator) -> Schema;
    /// The typed outputs the stage type always returns (besides the declared `outputs`).
    fn outputs(&self) -> &'static [&'static str];
}

/// A [`StageSpec`] from a typed `with` struct.
pub struct TypedSpec<T> {
    name: &'static str,
    summary: &'static str,
    outputs: &'static [&'static str],
    marker: PhantomData<fn() -> T>,
}

impl<T> TypedSpec<T> {
    pub const fn new(
        name: &'static str,
        summary: &'static str,
        outputs: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            summary,
            outputs,
            marker: PhantomData,
        }
    }
}

impl<T: DeserializeOwned + JsonSchema> StageSpec for TypedSpec<T> {
    fn name(&self) -> &'static str {
        self.name
    }
    fn summary(&self) -> &'static str {
        self.summary
    }
    fn check_with(&self, with: &serde_yaml::Value) -> Result<(), WithError> {
        parse_with::<T>(with).map(|_| ())
    }
    fn with_schema(&self, generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<T>()
    }
    fn outputs(&self) -> &'static [&'static str] {
        self.outputs
    }
}

/// The spec of `uses: run`.
pub const RUN_SPEC: TypedSpec<RunWith> =
    TypedSpec::new("run", "run a shell command on the host", &["exit-code"]);
/// The spec of `uses: upgrade`.
pub const UPGRADE_SPEC: TypedSpec<UpgradeWith> = TypedSpec::new(
    "upgrade",
    "merge an upstream release into the app",
    &[
        "from",
        "to",
        "files",
        "conflicts",
        "conflicting-files",
        "changed",
        "commit",
        "branch",
        "available",
        "current",
        "latest",
        "line",
        "notes",
    ],
);

/// The stage types a pipeline may use.
#[derive(Clone, Default)]
pub struct Catalog {
    specs: Vec<Arc<dyn StageSpec>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Catalog {
    pub fn new() -> Self {
        Self::default()
    }

    /// The stage types modelled in this crate: `run` and `upgrade`.
    pub fn basic() -> Self {
        let mut catalog = Self::new();
        catalog.add(Arc::new(RUN_SPEC));
        catalog.add(Arc::new(UPGRADE_SPEC));
        catalog
    }

    /// Adds (or replaces) a stage type.
    pub fn add(&mut self, spec: Arc<dyn StageSpec>) {
        self.specs.retain(|s| s.name() != spec.name());
        self.specs.push(spec);
    }

    pub fn get(&self, name: &str) -> Option<&dyn StageSpec> {
        self.specs
            .iter()
            .find(|s| s.name() == name)
            .map(|s| s.as_ref())
    }

    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.specs.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        names
    }

    pub fn specs(&self) -> impl Iterator<Item = &dyn StageSpec> {
        self.specs.iter().map(|s| s.as_ref())
    }
}
