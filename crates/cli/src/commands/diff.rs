//! `uplift diff`: the upstream change alone between two releases (what an upgrade helper shows).

use crate::GlobalArgs;
use crate::commands::upstream::{UpstreamArgs, upgrade_error};
use crate::exit::{CliResult, Exit};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    upstream: UpstreamArgs,
    /// The older release.
    #[arg(long)]
    from: String,
    /// The newer release (or `latest`).
    #[arg(long, default_value = "latest")]
    to: String,
    /// Only list the changed paths.
    #[arg(long)]
    stat: bool,
}

pub fn run(args: Args, _global: &GlobalArgs) -> CliResult {
    let upstream = args.upstream.open()?;
    let releases = upstream.releases();
    // `--from` is where an app is: any release, a hidden pre-release too.
    let from = releases
        .resolve_current(&args.from)
        .map_err(|e| upgrade_error(e.into()))?;
    let to = releases
        .resolve(&args.to)
        .map_err(|e| upgrade_error(e.into()))?;
    let old = upstream.render(from).map_err(upgrade_error)?;
    let new = upstream.render(to).map_err(upgrade_error)?;
    if args.stat {
        for path in uplift_merge::paths_to_read(&old, &new) {
            let status = match (old.contains(&path), new.contains(&path)) {
                (false, _) => "A",
                (_, false) => "D",
                _ => "M",
            };
            outln!("{status} {path}");
        }
    } else {
        out!("{}", uplift_upgrade::report::tree_diff(&old, &new));
    }
    Ok(Exit::Success)
}
