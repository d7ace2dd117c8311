//! `uplift cleanup RUN_ID`: removes the containers, volumes and networks a run left behind
//! (a crashed or killed run whose guards could not run). Cache volumes are kept.

use crate::GlobalArgs;
use crate::exit::{CliError, CliResult, Exit};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run's id (the name of its folder in `.uplift/runs/`).
    run_id: String,
}

pub fn run(args: Args, global: &GlobalArgs) -> CliResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::from_error(Exit::Environment, &e))?;
    let removed = runtime
        .block_on(uplift_stages::test_stage::cleanup_run(&args.run_id))
        .map_err(|e| {
            CliError::from_error(Exit::Environment, &e)
                .with_hint("is the Docker engine running and reachable (DOCKER_HOST)?")
        })?;
    if !global.quiet {
        errln!(
            "removed {} container(s), {} volume(s), {} network(s) of run {}",
            removed.containers,
            removed.volumes,
            removed.networks,
            args.run_id
        );
    }
    Ok(Exit::Success)
}
