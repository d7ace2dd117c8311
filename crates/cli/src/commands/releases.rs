//! `uplift releases`: the upstream's releases, the app's current one and the latest marked.

use std::path::PathBuf;

use crate::GlobalArgs;
use crate::commands::upstream::{MarkerArgs, UpstreamArgs, upgrade_error};
use crate::exit::{CliResult, Exit};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    upstream: UpstreamArgs,
    #[command(flatten)]
    marker: MarkerArgs,
    /// The app, to mark its current release.
    #[arg(long)]
    app: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, _global: &GlobalArgs) -> CliResult {
    let upstream = args
        .upstream
        .open_in(args.app.as_deref().unwrap_or(std::path::Path::new(".")))?;
    let releases = upstream.releases();
    let latest = releases.latest().ok().map(|r| r.version.clone());
    let current = match &args.app {
        Some(app) => Some(args.marker.marker().read(app).map_err(upgrade_error)?),
        None => None,
    };
    let is_current = |version: &semver::Version| {
        current
            .as_deref()
            .and_then(|c| c.trim_start_matches('v').parse::<semver::Version>().ok())
            .as_ref()
            == Some(version)
    };
    if args.json {
        let list: Vec<_> = releases
            .all()
            .iter()
            .map(|r| {
                serde_json::json!({
                    "version": r.version.to_string(),
                    "name": r.name,
                    "latest": latest.as_ref() == Some(&r.version),
                    "current": is_current(&r.version),
                })
            })
            .collect();
        let doc = serde_json::json!({ "source": upstream.describe(), "current": current, "releases": list });
        crate::output::write_json(&serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(Exit::Success);
    }
    for release in releases.all() {
        let mut marks = Vec::new();
        if is_current(&release.version) {
            marks.push("current");
        }
        if latest.as_ref() == Some(&release.version) {
            marks.push("latest");
        }
        match marks.is_empty() {
            true => outln!("{}", release.version),
            false => outln!("{}  ({})", release.version, marks.join(", ")),
        }
    }
    Ok(Exit::Success)
}
