use crate::GlobalArgs;
use crate::exit::{CliError, CliResult, Exit};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args, _global: &GlobalArgs) -> CliResult {
    Err(CliError::new(Exit::BadInput, "not implemented yet"))
}
