//! `uplift plan`: what an upgrade would do, file by file, without changing anything.

use std::path::PathBuf;

use uplift_upgrade::report::{self, Colour};
use uplift_upgrade::{Marker, Prepared, UpgradeRequest, Upstream, UpstreamConfig};

use crate::GlobalArgs;
use crate::commands::upstream::{MarkerArgs, MergeArgs, UpstreamArgs, default_app, upgrade_error};
use crate::exit::{CliError, CliResult, Exit};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub upgrade: UpgradeArgs,
    /// The output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Print to stderr where the plan spent its time, per phase (open source, list releases,
    /// render base and target, read app, merge, report).
    #[arg(long)]
    pub timings: bool,
}

/// Options of `plan` and `apply`.
#[derive(Debug, clap::Args)]
pub struct UpgradeArgs {
    /// The app to upgrade.
    #[arg(long, default_value_os_t = default_app())]
    pub app: PathBuf,
    #[command(flatten)]
    pub upstream: UpstreamArgs,
    /// A pipeline file. `plan -p FILE` plans the whole pipeline (every stage, resolved and
    /// masked); `apply -p FILE` reads the upstream (source, template, values, marker) from
    /// its `upstream:` block instead of flags.
    #[arg(long, short = 'p', value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// The app's release (default: read from the marker file).
    #[arg(long)]
    pub from: Option<String>,
    /// The target release, or `latest`.
    #[arg(long, default_value = "latest")]
    pub to: String,
    #[command(flatten)]
    pub marker: MarkerArgs,
    #[command(flatten)]
    pub merge: MergeArgs,
    /// Upgrade release by release (one commit each with `--branch`), stopping at the first
    /// step with conflicts.
    #[arg(long)]
    pub stepwise: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
    Patch,
}

impl UpgradeArgs {
    /// The upstream and the marker, from flags or from the pipeline file.
    pub fn open_upstream(&self) -> Result<(Upstream, Marker), CliError> {
        let (config, marker) = match (&self.pipeline, &self.upstream.upstream) {
            (Some(file), None) => {
                let (mut config, marker) = upstream_from_pipeline(file, &self.app)?;
                config.download_progress = Some(crate::commands::upstream::download_view());
                (config, marker)
            }
            _ => (self.upstream.config_in(&self.app)?, self.marker.marker()),
        };
        Ok((Upstream::open(config).map_err(upgrade_error)?, marker))
    }

    /// Opens the upstream and prepares the upgrade (reads only).
    pub fn prepare(&self) -> Result<Prepared, CliError> {
        let (upstream, marker) = self.open_upstream()?;
        let request = UpgradeRequest {
            app: self.app.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            marker,
            merge: self.merge.options(),
        };
        let mut prepared = uplift_upgrade::prepare(&upstream, &request).map_err(upgrade_error)?;
        uplift_upgrade::preset::add_follow_ups(&upstream, &mut prepared);
        Ok(prepared)
    }
}

/// The upstream block of a pipeline file, with local paths relative to the file's folder; a
/// preset reads `app`.
fn upstream_from_pipeline(
    file: &std::path::Path,
    app: &std::path::Path,
) -> Result<(UpstreamConfig, Marker), CliError> {
    let pipeline = crate::commands::validate::load_pipeline(file, false)?;
    let spec = pipeline.upstream.as_ref().ok_or_else(|| {
        CliError::new(
            Exit::BadInput,
            format!("{} has no `upstream:` block", file.display()),
        )
    })?;
    let dir = std::env::current_dir().map_err(|e| CliError::from_error(Exit::Environment, &e))?;
    uplift_stages::upgrade::upstream_config_for_app(spec, &dir, &dir.join(app))
        .map_err(|e| CliError::from_error(Exit::BadInput, &e))
}

/// Prints the plan in `format` to stdout.
pub fn print(prepared: &Prepared, format: Format) {
    let colour = if crate::output::stdout_colour() {
        Colour::Always
    } else {
        Colour::Never
    };
    match format {
        Format::Text => out!("{}", report::text(&prepared.plan, colour)),
        Format::Json => crate::output::write_json(&report::json(&prepared.plan)),
        Format::Markdown => out!("{}", report::markdown(&prepared.plan)),
        Format::Patch => out!("{}", report::patch(prepared)),
    }
}

pub fn run(args: Args, _global: &GlobalArgs) -> CliResult {
    if let Some(file) = &args.upgrade.pipeline {
        use uplift_exec::PlanFormat;
        let format = match args.format {
            Format::Text => PlanFormat::Text,
            Format::Json => PlanFormat::Json,
            Format::Markdown => PlanFormat::Markdown,
            Format::Patch => {
                return Err(
                    CliError::new(Exit::BadInput, "a pipeline plan has no patch format")
                        .with_hint("use --format text, json or markdown"),
                );
            }
        };
        return crate::commands::run::plan_pipeline_file(file, format, &[], None, None);
    }
    if args.upgrade.stepwise {
        return crate::commands::stepwise::plan(&args.upgrade, args.format);
    }
    let prepared = args.upgrade.prepare()?;
    uplift_upgrade::phase("report", || print(&prepared, args.format));
    Ok(Exit::Success)
}
