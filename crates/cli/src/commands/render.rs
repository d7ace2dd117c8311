//! `uplift render`: writes the template of one release, rendered, into a new folder (what
//! `create-app` does), e.g. to start an app or to compare an app against a fresh render.

use std::path::PathBuf;

use uplift_tree::Change;

use crate::GlobalArgs;
use crate::commands::upstream::{UpstreamArgs, upgrade_error};
use crate::exit::{CliError, CliResult, Exit};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    upstream: UpstreamArgs,
    /// The release to render, or `latest`.
    #[arg(long, default_value = "latest")]
    release: String,
    /// The folder to create (it must not exist or be empty).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args, global: &GlobalArgs) -> CliResult {
    let upstream = args.upstream.open()?;
    let release = upstream
        .releases()
        .resolve(&args.release)
        .map_err(|e| upgrade_error(e.into()))?;
    let tree = upstream.render(release).map_err(upgrade_error)?;
    let occupied = std::fs::read_dir(&args.out)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if occupied {
        return Err(CliError::new(
            Exit::BadInput,
            format!("{} is not empty", args.out.display()),
        )
        .with_hint("render into a new folder; `uplift apply` upgrades an existing app"));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| {
        CliError::new(
            Exit::Environment,
            format!("create {}: {e}", args.out.display()),
        )
    })?;
    let changes: Vec<Change> = tree
        .into_iter()
        .map(|(path, entry)| Change::Write { path, entry })
        .collect();
    uplift_tree::apply(&args.out, &changes).map_err(|e| upgrade_error(e.into()))?;
    if !global.quiet {
        errln!(
            "rendered release {release}: {} files in {}",
            changes.len(),
            args.out.display()
        );
    }
    Ok(Exit::Success)
}
