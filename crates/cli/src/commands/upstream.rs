//! Options shared by the commands that read an upstream (`releases`, `diff`, `plan`, `apply`),
//! and the mapping of upgrade errors to exit codes and hints.

use std::path::{Path, PathBuf};

use uplift_merge::{ConflictStyle, MergeOptions, TextOptions};
use uplift_template::{Lineage, ReleaseLine};
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
    /// Include pre-releases as targets (the app's own release counts whatever this says).
    #[arg(long)]
    pub pre: bool,
    /// The release line `latest` follows: `main` (stable releases, the default) or `next`
    /// (pre-releases too); with the Backstage preset, the versions site's `v1/tags/<line>`.
    #[arg(long, value_enum, value_name = "LINE")]
    pub line: Option<LineArg>,
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

/// A release line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LineArg {
    Main,
    Next,
}

impl LineArg {
    pub fn line(self) -> ReleaseLine {
        match self {
            LineArg::Main => ReleaseLine::Main,
            LineArg::Next => ReleaseLine::Next,
        }
    }
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
            config.template_choice = None;
        }
        config.tag_pattern = self.tag_pattern.clone();
        config.include_pre = self.pre;
        if let Some(line) = self.line {
            config.line = Some(line.line());
        }
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
    let mut cli = CliError::classified(&error);
    if let Some(hint) = upgrade_hint(&error) {
        cli = cli.with_hint(hint);
    }
    cli
}

/// The `hint:` line of an upgrade error: what to do next.
fn upgrade_hint(error: &Error) -> Option<String> {
    use uplift_template::Error as T;
    use uplift_tree::Error as F;
    let hint = match error {
        Error::Template(
            T::UnknownRelease {
                pre_release: true, ..
            }
            | T::HiddenPreRelease { .. },
        ) => {
            "pre-releases are targets with --pre, or on the next line with --line next \
             (`uplift releases --upstream SOURCE --line next` lists them)"
        }
        Error::Template(T::UnknownRelease { .. }) => {
            "`uplift releases --upstream SOURCE` lists the releases"
        }
        Error::Template(T::RenderNoPosition { message, .. }) if message.contains("UTF-8") => {
            "only text templates end in `.hbs`: rename a binary file without the suffix"
        }
        Error::Template(T::Render { .. } | T::RenderNoPosition { .. } | T::RenderMany { .. }) => {
            "values come from --set KEY=VALUE; versions from the release's versions map"
        }
        Error::Template(T::LinkOutside { .. }) => {
            "Uplift never writes outside the app: make the template's link relative, inside it"
        }
        Error::Template(T::Git { .. } | T::OpenRepo { .. }) => {
            "a `git:` source is a repository (path, bundle or URL) whose tags are releases; \
             `git tag` in it lists them"
        }
        Error::Template(T::Tree(F::InvalidPath { reason, .. }))
        | Error::Tree(F::InvalidPath { reason, .. })
            if reason.contains("UTF-8") =>
        {
            "Uplift handles UTF-8 file names only: rename the file"
        }
        Error::NoMarker { .. } => "or point --marker at the file that records the release",
        Error::Marker { .. } | Error::MarkerSyntax { .. } => {
            "the marker is a JSON file whose top-level field (--marker-field, default `version`) \
             holds the release, e.g. {\"version\": \"1.2.0\"}; or pass --from VERSION"
        }
        Error::UnknownPreset { .. } => "presets set the source, template and values",
        other if preset::is_environment_error(other) => {
            "the registry comes from UPLIFT_NPM_REGISTRY, `npmRegistryServer` in .yarnrc.yml or \
             `registry=` in .npmrc, the release manifests from UPLIFT_BACKSTAGE_VERSIONS_URL, \
             the release tags from UPLIFT_BACKSTAGE_RELEASES_GIT"
        }
        Error::Dirty { .. } => {
            "the apply is all or nothing, but your own uncommitted work would be mixed with it"
        }
        Error::Tree(F::EscapesRoot { .. } | F::ThroughSymlink { .. } | F::LinkEscapes { .. }) => {
            "Uplift never reads or writes outside the app folder, nor through a symlink: \
             nothing was changed; replace the link by a folder (or remove it) and run again"
        }
        Error::Tree(F::Blocked { .. }) => {
            "nothing was changed: move that file or folder aside (or resolve it by hand) and run again"
        }
        Error::Tree(F::Cancelled) => "nothing was changed; run the command again to apply",
        Error::Tree(F::ApplyInProgress { .. }) => {
            "wait for it to end; if no Uplift process runs there, the next command finishes or \
             undoes it"
        }
        Error::Tree(F::RecoveryFailed { .. } | F::UndoFailed { .. }) => {
            "the moved files and the journal are kept in .uplift-apply/ (old/N is what step N \
             moved aside); fix the cause and run any uplift command on the app again"
        }
        Error::InvalidBranch { .. } => {
            "branch names follow git's rules (`git check-ref-format --branch NAME` checks one)"
        }
        Error::BranchExists { .. } => "pick another --branch, or delete the old branch",
        Error::IndexLocked { path } => {
            return Some(format!(
                "if no git process is running in the repository, remove {}",
                path.display()
            ));
        }
        Error::RepositoryBusy { .. } => {
            "finish or abort it first (`git status` says how), then run again"
        }
        Error::NoCommit { .. } => "commit the app first (`git add -A && git commit`)",
        Error::NotARepository { .. } => "run `git init` and commit the app, or drop --branch",
        Error::Git { .. } => {
            "`git status` in the app shows the repository's state; nothing was changed"
        }
        _ => return None,
    };
    Some(hint.to_string())
}
