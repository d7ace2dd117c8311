//! `uses: test`: the app's checks, on the host or in containers.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::with::TypedSpec;

/// Where the steps run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TestRunner {
    /// As processes on the host, like `run` stages.
    #[default]
    Host,
    /// Each step in a fresh container of `image`, the app bind-mounted at `workdir`.
    Container,
}

/// One step: a shell command.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TestStep {
    /// A name for the summary (default: the command).
    #[serde(default)]
    pub name: Option<String>,
    /// The command, run by `sh -c` (with `-e`).
    pub run: String,
    /// A time limit for this step (`90s`, `10m`): on the host the step and every process it started are stopped; in a container the container is killed and removed.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// `uses: test`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TestWith {
    /// The app's folder, relative to the pipeline's folder.
    #[serde(default = "default_app")]
    pub app: String,
    #[serde(default)]
    pub runner: TestRunner,
    /// The image of `runner: container` (required there).
    #[serde(default)]
    pub image: Option<String>,
    /// Where the app is mounted in the container.
    #[serde(default = "default_workdir")]
    pub workdir: String,
    /// The steps, in order; the first failure stops the stage.
    pub steps: Vec<TestStep>,
    /// Variables for every step (besides the stage's `env`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Folders of the app kept between runs (`node_modules`, `.yarn/cache`).
    #[serde(default)]
    pub cache: Vec<String>,
    /// Files whose content keys the caches (`yarn.lock`): a change starts a fresh cache.
    #[serde(default)]
    pub key: Vec<String>,
    /// For `runner: host`: the folder caches are kept in (default `.uplift/cache` in the
    /// pipeline's folder). `runner: container` keeps them in named volumes.
    #[serde(default)]
    pub cache_dir: Option<String>,
    /// A glob of JUnit XML reports the steps write, relative to the app (`**/junit.xml`).
    #[serde(default)]
    pub reports: Option<String>,
}

fn default_app() -> String {
    String::from(".")
}

fn default_workdir() -> String {
    String::from("/work")
}

/// The spec of `uses: test`.
pub const TEST_SPEC: TypedSpec<TestWith> = TypedSpec::new(
    "test",
    "run the app's checks on the host or in containers",
    &["passed", "steps", "tests", "failures", "errors", "skipped"],
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::with::{StageSpec, parse_with};

    #[test]
    fn parses_a_container_test_stage_with_defaults() {
        let yaml: serde_yaml::Value = serde_yaml::from_str(
            "runner: container\nimage: node:20\nsteps:\n  - run: yarn install\n  - name: unit\n    run: yarn test\n    timeout: 10m\ncache: [node_modules]\nkey: [yarn.lock]\nreports: '**/junit.xml'\n",
        )
        .unwrap();
        let w: TestWith = parse_with(&yaml).unwrap();
        assert_eq!(w.runner, TestRunner::Container);
        assert_eq!(w.app, ".");
        assert_eq!(w.workdir, "/work");
        assert_eq!(w.steps.len(), 2);
        assert_eq!(w.steps[1].timeout.as_deref(), Some("10m"));
        assert_eq!(w.key, vec!["yarn.lock"]);
    }

    #[test]
    fn unknown_fields_are_reported_at_their_key() {
        let yaml: serde_yaml::Value = serde_yaml::from_str("steps: []\nrunnr: host\n").unwrap();
        let err = TEST_SPEC.check_with(&yaml).unwrap_err();
        assert!(err.at_key, "{err:?}");
        assert!(err.message.contains("runnr"), "{err:?}");
    }
}
