//! Options shared by the commands that read an upstream (`releases`, `diff`, `plan`, `apply`),
//! and the mapping of upgrade errors to exit codes and hints.

use std::path::{Path, PathBuf};

use uplift_merge::{ConflictStyle, MergeOptions, TextOptions};
use uplift_template::Lineage;
use uplift_upgrade::{
    DownloadProgress, DownloadProgressFn, Error, Marker, Upstream, UpstreamConfig, preset,
};

use crate::exit::{CliError, Exit};
use crate::progress_bars::{StandaloneView, Update};

/// Where the template releases come from and how to render them.
#[derive(Debug, Clone, clap::Args)]
pub struct UpstreamArgs {
    /// The release source: `git:PATH_OR_URL` (tags are releases), `dir:PATH` (a folder per
    /// release) or `npm:PACKAGE` (a package of each Backstage release, from the npm registry).
    #[arg(long, short = 'u', env = "UPLIFT_UPSTREAM", value_name = "SOURCE")]
    pub upstream: Option<String>,
    /// Infer the upstream from the app: `backstage` (source `npm:@backstage/create-app`, the
    /// template its frontend system follows, `name` and `defaultBranch`); flags override it.
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// The template folder inside a release; repeat as VERSION=SUBDIR to switch from that release on.
    #[arg(long = "template", value_name = "SUBDIR|VERSION=SUBDIR")]
    pub template: Vec<String>,
    /// How tags name releases, e.g. `release-{version}` (default: `v1.2.3` and `1.2.3`).
    #[arg(long, value_name = "PATTERN")]
    pub tag_pattern: Option<String>,
    /// Include pre-releases.
    #[arg(long)]
    pub pre: bool,
    /// A value for the templates, e.g. `--set name=my-portal`.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub set: Vec<(String, String)>,
    /// The versions map read by the `version` helper, relative to the release root.
    #[arg(long, default_value = "versions.json", value_name = "PATH")]
    pub versions_file: String,
}

/// Where the app records its release.
#[derive(Debug, Clone, clap::Args)]
pub struct MarkerArgs {
    /// The JSON file recording the app's release.
    #[arg(long = "marker", default_value = "backstage.json", value_name = "FILE")]
    pub marker_file: String,
    /// The field of the marker file holding the release.
    #[arg(long, default_value = "version", value_name = "FIELD")]
    pub marker_field: String,
}

impl MarkerArgs {
    pub fn marker(&self) -> Marker {
        Marker {
            file: self.marker_file.clone(),
            field: self.marker_field.clone(),
        }
    }
}

/// How files are merged.
#[derive(Debug, Clone, clap::Args)]
pub struct MergeArgs {
    /// Conflict markers: `merge` (ours, theirs) or `diff3` (with the common ancestor).
    #[arg(long, value_enum, default_value_t = StyleArg::Merge)]
    pub conflict_style: StyleArg,
    /// Report lines inserted next to lines the other side changed as conflicts, like git does.
    #[arg(long)]
    pub no_insertion_placement: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StyleArg {
    Merge,
    Diff3,
}

impl MergeArgs {
    pub fn options(&self) -> MergeOptions {
        let style = match self.conflict_style {
            StyleArg::Merge => ConflictStyle::Merge,
            StyleArg::Diff3 => ConflictStyle::Diff3,
        };
        MergeOptions {
            text: TextOptions {
                style,
                no_adjacent_insertions: self.no_insertion_placement,
                ..TextOptions::default()
            },
            ..MergeOptions::default()
        }
    }
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

impl UpstreamArgs {
    /// The upstream settings; a preset reads the app in the current folder.
    pub fn config(&self) -> Result<UpstreamConfig, CliError> {
        self.config_in(Path::new("."))
    }

    /// The upstream settings; a preset reads the app in `app`, and flags override it.
    pub fn config_in(&self, app: &Path) -> Result<UpstreamConfig, CliError> {
        let mut config = match (&self.preset, &self.upstream) {
            (Some(preset), _) => preset::preset_config(preset, app).map_err(upgrade_error)?,
            (None, Some(source)) => UpstreamConfig::new(source.clone()),
            (None, None) => {
                return Err(CliError::new(Exit::BadInput, "no upstream given").with_hint(
                    "pass --upstream git:PATH_OR_URL, dir:PATH or npm:PACKAGE, or --preset backstage",
                ));
            }
        };
        if let (Some(_), Some(source)) = (&self.preset, &self.upstream) {
            config.source = source.clone();
        }
        if self.preset.is_none() || !self.template.is_empty() {
            config.lineage = Lineage::parse(&self.template).map_err(|e| upgrade_error(e.into()))?;
        }
        config.tag_pattern = self.tag_pattern.clone();
        config.include_pre = self.pre;
        config.versions_file = self.versions_file.clone();
        for (key, value) in &self.set {
            config
                .values
                .insert(key.clone(), serde_json::Value::String(value.clone()));
        }
        config.download_progress = Some(download_view());
        check_source(&config.source)?;
        Ok(config)
    }

    pub fn open(&self) -> Result<Upstream, CliError> {
        Upstream::open(self.config()?).map_err(upgrade_error)
    }

    /// Opens the upstream; a preset reads the app in `app`.
    pub fn open_in(&self, app: &Path) -> Result<Upstream, CliError> {
        Upstream::open(self.config_in(app)?).map_err(upgrade_error)
    }
}

/// Shows the downloads of an `npm:` upstream as the rollouts of `rollback` are shown: a bar in
/// bytes per download on a terminal, one line when a download ends elsewhere
/// (`upstream | download @backstage/create-app 0.9.0: downloaded (1.20 MB)`), nothing with
/// `--quiet`.
pub fn download_view() -> DownloadProgressFn {
    let view = StandaloneView::new(crate::output::quiet());
    std::sync::Arc::new(move |progress: DownloadProgress| {
        let task = format!("download {}", progress.what);
        let message = match (progress.done, progress.failed) {
            (false, _) => "",
            (true, false) => "downloaded",
            (true, true) => "failed",
        };
        view.show(&Update {
            stage: "upstream",
            task: &task,
            current: progress.current,
            total: progress.total,
            unit: uplift_exec::ProgressUnit::Bytes,
            message,
            done: progress.done,
        });
    })
}

/// The source kinds, as every message names them.
pub const SOURCE_KINDS: &str = "`git:PATH_OR_URL`, `dir:PATH` or `npm:PACKAGE`";

/// Errors a source spec can be told apart by before it is opened, in the user's words rather
/// than libgit2's (`git:/no/such/dir` is not an "unsupported URL protocol").
pub fn check_source(source: &str) -> Result<(), CliError> {
    if let Some(path) = source.strip_prefix("git:") {
        // URLs (`https://…`, `ssh://…`, `file://…`) and scp-like `host:path` go to git.
        let url = path.contains("://") || path.split('/').next().is_some_and(|s| s.contains(':'));
        if !url && !Path::new(path).exists() {
            return Err(CliError::new(
                Exit::Environment,
                format!("git source {path}: no such repository, bundle or folder (the path does not exist)"),
            )
            .with_hint(
                "`git:` takes a local repository, a bundle file or a URL; a relative path is read from the current folder",
            ));
        }
        return Ok(());
    }
    if let Some(path) = source.strip_prefix("dir:") {
        if !Path::new(path).is_dir() {
            return Err(CliError::new(
                Exit::Environment,
                format!("dir source {path}: no such folder"),
            )
            .with_hint(
                "`dir:PATH` names a folder holding one sub-folder per release (`PATH/1.2.0/…`); a relative path is read from the current folder",
            ));
        }
        return Ok(());
    }
    if source.starts_with("npm:") {
        return Ok(());
    }
    Err(CliError::new(
        Exit::BadInput,
        format!("unknown source {source:?}: expected {SOURCE_KINDS}"),
    )
    .with_hint("or --preset backstage in a Backstage app"))
}

/// The app folder argument, shared by `plan`, `apply` and `releases`.
pub fn default_app() -> PathBuf {
    PathBuf::from(".")
}

/// Maps an upgrade error to its exit code and a hint.
pub fn upgrade_error(error: Error) -> CliError {
    use uplift_template::Error as T;
    use uplift_tree::Error as F;
    let exit = match &error {
        Error::Template(T::OpenRepo { .. } | T::Git { .. } | T::Mirror { .. } | T::Io { .. })
        | Error::Tree(
            F::Read { .. } | F::Write { .. } | F::UndoFailed { .. } | F::Unsupported { .. },
        )
        | Error::Git { .. } => Exit::Environment,
        other if preset::is_environment_error(other) => Exit::Environment,
        _ => Exit::BadInput,
    };
    let hint = match &error {
        Error::Template(T::UnknownRelease { .. }) => {
            Some("`uplift releases --upstream SOURCE` lists the releases")
        }
        Error::Template(T::Render { .. } | T::RenderNoPosition { .. }) => {
            Some("values come from --set KEY=VALUE; versions from the release's versions map")
        }
        Error::NoMarker { .. } => Some("or point --marker at the file that records the release"),
        Error::UnknownPreset { .. } => Some("presets set the source, template and values"),
        other if preset::is_environment_error(other) => Some(
            "the registry comes from UPLIFT_NPM_REGISTRY or `registry=` in .npmrc, the release \
             manifests from UPLIFT_BACKSTAGE_VERSIONS_URL",
        ),
        Error::Dirty { .. } => Some(
            "the apply is all or nothing, but your own uncommitted work would be mixed with it",
        ),
        Error::Tree(F::EscapesRoot { .. }) => {
            Some("Uplift never reads or writes outside the app folder")
        }
        _ => None,
    };
    let mut cli = CliError::from_error(exit, &error);
    if let Some(hint) = hint {
        cli = cli.with_hint(hint);
    }
    cli
}
