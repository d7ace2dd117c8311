//! `uplift releases`: the upstream's releases with the line each belongs to (`main`, `next`),
//! the app's current one and the newest of each line marked.

use std::path::PathBuf;

use uplift_template::{Release, ReleaseLine};

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
    let latest_of = |line| releases.latest_of(line).ok().map(|r| r.version.clone());
    let latest = [
        (ReleaseLine::Main, latest_of(ReleaseLine::Main)),
        (ReleaseLine::Next, latest_of(ReleaseLine::Next)),
    ];
    let current = match &args.app {
        Some(app) => Some(args.marker.marker().read(app).map_err(upgrade_error)?),
        None => None,
    };
    let current_version = current
        .as_deref()
        .and_then(|c| c.trim_start_matches('v').parse::<semver::Version>().ok());
    let is_current = |version: &semver::Version| current_version.as_ref() == Some(version);
    // The listed releases, plus the app's own even when a hidden pre-release.
    let mut shown: Vec<&Release> = releases.all().iter().collect();
    if let Some(release) = current
        .as_deref()
        .and_then(|c| releases.resolve_current(c).ok())
        .filter(|r| !shown.iter().any(|s| s.version == r.version))
    {
        let at = shown.partition_point(|r| r.version < release.version);
        shown.insert(at, release);
    }
    // `latest main`, `latest next`: the newest release of each line (one release can be both).
    let latest_marks = |version: &semver::Version| -> Vec<String> {
        latest
            .iter()
            .filter(|(_, l)| l.as_ref() == Some(version))
            .map(|(line, _)| format!("latest {line}"))
            .collect()
    };
    if args.json {
        let list: Vec<_> = shown
            .iter()
            .map(|r| {
                serde_json::json!({
                    "version": r.version.to_string(),
                    "name": r.name,
                    "line": ReleaseLine::of(&r.version).as_str(),
                    "latest": releases.latest().is_ok_and(|l| l.version == r.version),
                    "latest_of": latest
                        .iter()
                        .filter(|(_, l)| l.as_ref() == Some(&r.version))
                        .map(|(line, _)| line.as_str())
                        .collect::<Vec<_>>(),
                    "current": is_current(&r.version),
                })
            })
            .collect();
        let doc = serde_json::json!({
            "source": upstream.describe(),
            "line": releases.line().as_str(),
            "latest": {
                "main": latest[0].1.as_ref().map(|v| v.to_string()),
                "next": latest[1].1.as_ref().map(|v| v.to_string()),
            },
            "current": current,
            "releases": list,
        });
        crate::output::write_json(&serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(Exit::Success);
    }
    let width = shown
        .iter()
        .map(|r| r.version.to_string().len())
        .max()
        .unwrap_or(0);
    for release in shown {
        let mut marks = Vec::new();
        if is_current(&release.version) {
            marks.push("current".to_string());
        }
        marks.extend(latest_marks(&release.version));
        let version = release.version.to_string();
        let line = ReleaseLine::of(&release.version);
        let text = match marks.is_empty() {
            true => format!("{version:<width$}  {line}"),
            false => format!("{version:<width$}  {line}  ({})", marks.join(", ")),
        };
        outln!("{text}");
    }
    Ok(Exit::Success)
}
