//! The `uplift` command line: argument parsing, terminal output and exit codes.
//!
//! Every library crate returns typed errors; this binary is the one place that turns them into
//! a one-line message, a `hint:` and a documented exit code (see [`exit`]).

#[macro_use]
mod output;
mod commands;
mod error_kind;
mod exit;
mod gha;
mod interrupt;
mod progress;
mod progress_bars;
mod timings;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Keep a customized app up to date with its upstream release templates, and ship it.
#[derive(Debug, Parser)]
#[command(name = "uplift", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every command accepts.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Print only errors.
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more detail, and the full cause chain of errors.
    #[arg(long, short, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the upstream releases, marking the app's current one and the latest.
    Releases(commands::releases::Args),
    /// Show the upstream change between two releases, rendered with the app's values.
    Diff(commands::diff::Args),
    /// Show what an upgrade (or a whole pipeline) would do, without changing anything.
    Plan(commands::plan::Args),
    /// Merge the upstream change into the app, all or nothing.
    Apply(commands::apply::Args),
    /// Render the template of one release into a new folder (start an app, or compare with one).
    Render(commands::render::Args),
    /// Check a pipeline file and report every error at once.
    Validate(commands::validate::Args),
    /// Run a pipeline file.
    Run(commands::run::Args),
    /// Return a deploy target to its previous release (or `--to` one), optionally with its data.
    Rollback(commands::rollback::Args),
    /// Is a newer upstream release out (and does it merge cleanly)? For scheduled jobs.
    Check(commands::check::Args),
    /// Remove the containers, volumes and networks a crashed run left behind.
    Cleanup(commands::cleanup::Args),
    /// Print a shell completion script.
    Completions(commands::completions::Args),
}

fn main() -> ExitCode {
    let started = std::time::Instant::now();
    let cli = Cli::parse();
    let timings =
        matches!(&cli.command, Command::Plan(args) if args.timings).then(timings::Timings::default);
    output::init_tracing(&cli.global, timings.as_ref());
    // Inside Actions, data on stdout is shielded from the runner's command parsing (`--github`
    // turns it on for `run` and `check` too).
    output::set_github(std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true"));
    let result = match cli.command {
        Command::Releases(args) => commands::releases::run(args, &cli.global),
        Command::Diff(args) => commands::diff::run(args, &cli.global),
        Command::Plan(args) => commands::plan::run(args, &cli.global),
        Command::Apply(args) => commands::apply::run(args, &cli.global),
        Command::Render(args) => commands::render::run(args, &cli.global),
        Command::Validate(args) => commands::validate::run(args, &cli.global),
        Command::Run(args) => commands::run::run(args, &cli.global),
        Command::Rollback(args) => commands::rollback::run(args, &cli.global),
        Command::Check(args) => commands::check::run(args, &cli.global),
        Command::Cleanup(args) => commands::cleanup::run(args, &cli.global),
        Command::Completions(args) => commands::completions::run(args),
    };
    if let Some(timings) = &timings {
        eprint!("{}", timings.render(started));
    }
    match result {
        Ok(code) => code.into(),
        Err(error) => {
            error.report(&cli.global);
            error.exit_code().into()
        }
    }
}
