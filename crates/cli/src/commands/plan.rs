//! `uplift plan`: what an upgrade would do, file by file, without changing anything.

use std::path::PathBuf;

use uplift_upgrade::report::{self, Colour};
use uplift_upgrade::{Prepared, UpgradeRequest};

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
}

/// Options of `plan` and `apply`.
#[derive(Debug, clap::Args)]
pub struct UpgradeArgs {
    /// The app to upgrade.
    #[arg(long, default_value_os_t = default_app())]
    pub app: PathBuf,
    #[command(flatten)]
    pub upstream: UpstreamArgs,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
    Patch,
}

impl UpgradeArgs {
    /// Opens the upstream and prepares the upgrade (reads only).
    pub fn prepare(&self) -> Result<Prepared, CliError> {
        let upstream = self.upstream.open()?;
        let request = UpgradeRequest {
            app: self.app.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            marker: self.marker.marker(),
            merge: self.merge.options(),
        };
        uplift_upgrade::prepare(&upstream, &request).map_err(upgrade_error)
    }
}

/// Prints the plan in `format` to stdout.
pub fn print(prepared: &Prepared, format: Format) {
    let colour = if crate::output::stdout_colour() {
        Colour::Always
    } else {
        Colour::Never
    };
    match format {
        Format::Text => print!("{}", report::text(&prepared.plan, colour)),
        Format::Json => println!("{}", report::json(&prepared.plan)),
        Format::Markdown => print!("{}", report::markdown(&prepared.plan)),
        Format::Patch => print!("{}", report::patch(prepared)),
    }
}

pub fn run(args: Args, _global: &GlobalArgs) -> CliResult {
    let prepared = args.upgrade.prepare()?;
    print(&prepared, args.format);
    Ok(Exit::Success)
}
