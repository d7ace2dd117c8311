//! Terminal conventions: tracing to stderr, colour only on a terminal and never with `NO_COLOR`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

use crate::GlobalArgs;

/// Whether stdout may carry colour.
pub fn stdout_colour() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// `--quiet`, for the views made far from the command's arguments (downloads of an upstream).
static QUIET: AtomicBool = AtomicBool::new(false);

/// Whether `--quiet` was given (as recorded by [`init_tracing`]).
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Sends tracing to stderr at the level `--quiet`/`--verbose` ask for, and records `--quiet`.
/// With `timings`, the phase spans are also added up there (see [`crate::timings`]).
pub fn init_tracing(global: &GlobalArgs, timings: Option<&crate::timings::Timings>) {
    QUIET.store(global.quiet, Ordering::Relaxed);
    let default = if global.quiet {
        "error"
    } else if global.verbose {
        "info"
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_env("UPLIFT_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // Phase spans are for `--timings` only: they never prefix the log lines.
    let filter = match format!("{}=off", uplift_upgrade::TIMINGS_TARGET).parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let colour = std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal();
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .without_time()
        .with_target(false)
        .with_filter(filter);
    let phases = timings.cloned().map(|timings| {
        timings.with_filter(Targets::new().with_target(uplift_upgrade::TIMINGS_TARGET, Level::INFO))
    });
    tracing_subscriber::registry().with(log).with(phases).init();
}
