//! Exit codes and the rendering of errors for people.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success: clean plan or apply, pipeline passed, up to date |
//! | 1 | the command worked and the answer is "no": conflicts remain, a stage failed, an upgrade is available (`check --exit-code`) |
//! | 2 | bad input: usage, an invalid pipeline file, an unknown release, a malformed template or marker |
//! | 3 | the environment failed: I/O, git, Docker, an unreachable upstream |
//! | 130 | cancelled by a signal |
//!
//! Library errors get their code from their kind ([`crate::error_kind`]): one map,
//! `Kind::exit`, and [`CliError::classified`] to build an error from it.

use std::fmt::Display;
use std::process::ExitCode;

use crate::GlobalArgs;
use crate::error_kind::Classify;

/// The documented exit codes (see the module docs and the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    Negative = 1,
    BadInput = 2,
    Environment = 3,
    Cancelled = 130,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// An error ready to be shown: one line, an optional hint, and the cause chain for `--verbose`.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
    pub hint: Option<String>,
    pub causes: Vec<String>,
    /// Pre-rendered diagnostics (e.g. miette reports) printed instead of the one-liner.
    pub rendered: Option<String>,
}

impl CliError {
    pub fn new(exit: Exit, message: impl Display) -> Self {
        Self {
            exit,
            message: message.to_string(),
            hint: None,
            causes: Vec::new(),
            rendered: None,
        }
    }

    /// Builds an error from any error type, keeping its `source()` chain for `--verbose`.
    pub fn from_error(exit: Exit, error: &(dyn std::error::Error + 'static)) -> Self {
        let mut causes = Vec::new();
        let mut source = error.source();
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        Self {
            exit,
            message: error.to_string(),
            hint: None,
            causes,
            rendered: None,
        }
    }

    /// Builds an error whose exit code comes from its kind ([`Classify`]).
    pub fn classified<E: Classify + std::error::Error + 'static>(error: &E) -> Self {
        Self::from_error(error.kind().exit(), error)
    }

    pub fn with_hint(mut self, hint: impl Display) -> Self {
        self.hint = Some(hint.to_string());
        self
    }

    pub fn exit_code(&self) -> Exit {
        self.exit
    }

    pub fn report(&self, global: &GlobalArgs) {
        if let Some(rendered) = &self.rendered {
            err!("{rendered}");
            return;
        }
        // The first cause often carries the useful detail (a file and line): show it inline.
        match self.causes.first() {
            Some(cause) if !global.verbose && !self.message.contains(cause.as_str()) => {
                errln!("error: {}: {cause}", self.message)
            }
            _ => errln!("error: {}", self.message),
        }
        if global.verbose {
            for cause in &self.causes {
                errln!("  caused by: {cause}");
            }
        }
        if let Some(hint) = &self.hint {
            errln!("hint: {hint}");
        }
    }
}

pub type CliResult = Result<Exit, CliError>;
