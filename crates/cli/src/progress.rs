//! Progress for long work: a spinner on stderr only when stderr is a terminal (and not
//! `--quiet`, not in GitHub Actions); otherwise one plain line with `--verbose`, else nothing.
//! Colour follows `NO_COLOR`.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::GlobalArgs;

/// A running step; finish it with [`Progress::done`] (dropping it clears the spinner).
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn start(global: &GlobalArgs, message: &str) -> Self {
        let actions = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
        let tty = std::io::stderr().is_terminal();
        if global.quiet || actions || !tty {
            if global.verbose && !global.quiet {
                errln!("{message}");
            }
            return Self { bar: None };
        }
        let colour = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        let template = if colour {
            "{spinner:.cyan} {msg} {elapsed:.dim}"
        } else {
            "{spinner} {msg} {elapsed}"
        };
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        Self { bar: Some(bar) }
    }

    /// Clears the spinner; with `--verbose` the final message stays as a line.
    pub fn done(self, message: &str, global: &GlobalArgs) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
            if global.verbose {
                errln!("{message}");
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar
            && !bar.is_finished()
        {
            bar.finish_and_clear();
        }
    }
}
