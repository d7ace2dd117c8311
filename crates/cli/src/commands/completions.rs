use clap::CommandFactory;
use clap_complete::Shell;

use crate::Cli;
use crate::exit::{CliResult, Exit};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to generate completions for.
    shell: Shell,
}

pub fn run(args: Args) -> CliResult {
    // Into memory first: clap_complete panics on a write error, the central writer does not.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "uplift", &mut script);
    crate::output::write_stdout_bytes(&script);
    Ok(Exit::Success)
}
