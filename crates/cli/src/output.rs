//! Terminal conventions: tracing to stderr, colour only on a terminal and never with `NO_COLOR`,
//! and the one way the binary writes to stdout and stderr.
//!
//! Every byte of data goes through [`write_stdout`] (the `out!`/`outln!` macros). A closed
//! stdout (`uplift plan … | head -1`) ends the process at once, quietly, with exit 0: Rust
//! ignores SIGPIPE, so without this `println!` panics (exit 101). Exit 0 is ripgrep's choice
//! (git and cargo die of the signal, 141 in a shell); either way the reader already has what it
//! wanted and no message is printed. `uplift run` does not use it for its live output: a run
//! goes on to the end (its logs are in the run folder) and exits with the pipeline's code.
//! Messages to stderr go through [`write_stderr`] (`err!`/`errln!`), which drops what a closed
//! stderr cannot take instead of panicking.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

use crate::GlobalArgs;

/// Prints to stdout through [`write_stdout`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write_stdout(format_args!($($arg)*)) };
}

/// Prints a line to stdout through [`write_stdout`].
macro_rules! outln {
    () => { $crate::output::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints to stderr through [`write_stderr`].
macro_rules! err {
    ($($arg:tt)*) => { $crate::output::write_stderr(format_args!($($arg)*)) };
}

/// Prints a line to stderr through [`write_stderr`].
macro_rules! errln {
    ($($arg:tt)*) => { $crate::output::write_stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

/// The exit code of a process whose reader closed stdout early (ripgrep's convention).
pub const CLOSED_STDOUT_EXIT: i32 = 0;

/// Whether the process speaks GitHub Actions (`GITHUB_ACTIONS=true`, or `--github`).
static GITHUB: AtomicBool = AtomicBool::new(false);

/// Records whether the process speaks GitHub Actions: from then on, the data written to a
/// stdout the runner may read goes inside a `::stop-commands::` block (see [`shield`]).
pub fn set_github(on: bool) {
    GITHUB.store(on, Ordering::Relaxed);
}

/// `text` as it may be written where the Actions runner reads it. Inside Actions, data comes
/// from the app and the upstream (file names, file contents, stage output) and could hold a
/// workflow command; it goes between `::stop-commands::TOKEN` and `::TOKEN::` (a fresh random
/// token each time). Unchanged outside Actions, and when stdout is a regular file (`> plan.md`:
/// the runner does not read it, and the file stays exactly the data).
pub fn shield(text: String) -> String {
    if !GITHUB.load(Ordering::Relaxed) || text.is_empty() || stdout_is_file() {
        return text;
    }
    match uplift_github::StopCommands::new() {
        Ok(block) => block.wrap(&text),
        // Without randomness there is no safe token: print nothing rather than raw data.
        Err(error) => format!("uplift: output withheld inside GitHub Actions: {error}\n"),
    }
}

fn stdout_is_file() -> bool {
    use std::os::fd::AsFd;
    std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|file| file.metadata())
        .is_ok_and(|meta| meta.is_file())
}

/// JSON made safe for a runner's log without changing its meaning: the runner takes `##[NAME`
/// anywhere in a line as a legacy command, and in JSON those bytes can only sit inside a string,
/// where `\u0023` is the same `#`. (A JSON line never starts with `::`.)
pub fn json_safe(json: &str) -> String {
    json.replace("##[", "#\\u0023[")
}

/// Writes to stdout (through [`shield`]) and flushes. A closed pipe exits the process quietly
/// with [`CLOSED_STDOUT_EXIT`]; another write error is reported once on stderr and exits 3 (the
/// environment failed), never a panic.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    write_stdout_bytes(shield(args.to_string()).as_bytes());
}

/// Writes a JSON document and a newline to stdout, made safe by [`json_safe`] instead of
/// shielded (so `uplift … --format json | jq` keeps working inside Actions).
pub fn write_json(json: &str) {
    write_stdout_bytes(format!("{}\n", json_safe(json)).as_bytes());
}

/// Writes raw bytes to stdout, as [`write_stdout`] (without the shield: callers pass text that
/// went through [`shield`], or data that is not text).
pub fn write_stdout_bytes(bytes: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    let result = stdout.write_all(bytes).and_then(|()| stdout.flush());
    if let Err(error) = result {
        closed_or_failed(&error);
    }
}

/// Writes to stdout through [`shield`], ignoring a closed stdout: for `uplift run`, which goes on
/// to the end of its pipeline whoever reads.
pub fn write_stdout_lossy(text: String) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(shield(text).as_bytes())
        .and_then(|()| stdout.flush());
}

fn closed_or_failed(error: &std::io::Error) -> ! {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(CLOSED_STDOUT_EXIT);
    }
    write_stderr(format_args!("error: write to stdout: {error}\n"));
    std::process::exit(crate::exit::Exit::Environment as i32);
}

/// Writes to stderr; what a closed or failing stderr cannot take is dropped (stderr is where
/// errors would be reported, so there is nowhere left to say it).
pub fn write_stderr(args: std::fmt::Arguments<'_>) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_fmt(args).and_then(|()| stderr.flush());
}

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
