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
    clap_complete::generate(
        args.shell,
        &mut Cli::command(),
        "uplift",
        &mut std::io::stdout(),
    );
    Ok(Exit::Success)
}
