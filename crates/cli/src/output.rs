//! Terminal conventions: tracing to stderr, colour only on a terminal and never with `NO_COLOR`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;

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
pub fn init_tracing(global: &GlobalArgs) {
    QUIET.store(global.quiet, Ordering::Relaxed);
    let default = if global.quiet {
        "error"
    } else if global.verbose {
        "info"
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_env("UPLIFT_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let colour = std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .without_time()
        .with_target(false)
        .init();
}
