//! `uses: image`: build the app's image with the engine API, tag it, push it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::with::TypedSpec;

/// Which builder to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ImageBuilder {
    /// BuildKit when the engine supports it, the classic builder otherwise.
    #[default]
    Auto,
    Classic,
    Buildkit,
}

/// The timestamps written in the build context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ContextTimestamps {
    /// One fixed time for every file: the same files give the same context (reproducible
    /// builds, a warm build cache); files copied into the image carry that time.
    #[default]
    Fixed,
    /// Each file's modification time, to the second, as `docker build` sends it.
    Source,
}

/// Registry credentials given in the file (usually from secrets: `${{ secrets.REGISTRY_PASSWORD }}`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ImageCredentials {
    pub username: String,
    pub password: String,
}

/// `uses: image`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ImageWith {
    /// The repository, with its registry: `127.0.0.1:5000/team/app`.
    pub repository: String,
    /// The build context, relative to the pipeline's folder.
    #[serde(default = "default_context")]
    pub context: String,
    /// The Dockerfile, relative to the context.
    #[serde(default = "default_dockerfile")]
    pub dockerfile: String,
    /// The stage of a multi-stage Dockerfile to build.
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    /// Extra labels; the OCI revision, version and created labels are always added.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The upstream release, tagged as is (usually `${{ stages.upgrade.outputs.to }}`).
    #[serde(default)]
    pub release: Option<String>,
    /// The commit to tag (default: HEAD of the context's git repository, with `-dirty` when the
    /// tree has changes).
    #[serde(default)]
    pub commit: Option<String>,
    /// Further tags.
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub builder: ImageBuilder,
    /// The timestamps of the files sent in the build context.
    #[serde(default)]
    pub context_timestamps: ContextTimestamps,
    /// Push every tag and output the reference pinned by the registry's digest.
    #[serde(default)]
    pub push: bool,
    /// The Docker config file to read credentials from (default `~/.docker/config.json`).
    #[serde(default)]
    pub docker_config: Option<String>,
    /// Credentials that override the config file.
    #[serde(default)]
    pub credentials: Option<ImageCredentials>,
    /// Attempts for transient registry errors.
    #[serde(default = "default_attempts")]
    pub push_attempts: u32,
}

fn default_context() -> String {
    String::from(".")
}

fn default_dockerfile() -> String {
    String::from("Dockerfile")
}

fn default_attempts() -> u32 {
    4
}

/// The spec of `uses: image`.
pub const IMAGE_SPEC: TypedSpec<ImageWith> = TypedSpec::new(
    "image",
    "build the app's image, tag it and push it",
    &["image", "image-id", "digest", "tags"],
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::with::parse_with;

    #[test]
    fn parses_an_image_stage_with_defaults() {
        let yaml: serde_yaml::Value = serde_yaml::from_str(
            "repository: 127.0.0.1:5000/team/app\nrelease: 1.2.3\npush: true\nbuild-args: {NODE_ENV: production}\nbuilder: buildkit\n",
        )
        .unwrap();
        let w: ImageWith = parse_with(&yaml).unwrap();
        assert_eq!(w.context, ".");
        assert_eq!(w.dockerfile, "Dockerfile");
        assert_eq!(w.builder, ImageBuilder::Buildkit);
        assert_eq!(w.push_attempts, 4);
        assert_eq!(w.build_args["NODE_ENV"], "production");
        assert!(parse_with::<ImageWith>(&serde_yaml::from_str("push: true").unwrap()).is_err());
    }
}
