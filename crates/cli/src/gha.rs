//! GitHub Actions glue for the binary: when to speak Actions, and the upgrade-specific
//! annotations, outputs and summaries (the formats themselves live in `uplift-github`).
//!
//! Workflow commands (`::add-mask::`, `::group::`, `::error`) go to **stderr**: the runner reads
//! commands from both streams, and stdout stays pure data (`--format json` can be piped).

use std::io::Write;

use uplift_github::{Annotation, Annotations, Environment, Level, Outputs, StepSummary};
use uplift_merge::Action;
use uplift_upgrade::Prepared;

use crate::exit::{CliError, Exit};

/// Whether (and where) to write GitHub's files and commands.
#[derive(Debug, Clone)]
pub struct Gha {
    pub env: Environment,
    /// Workflow commands and files are on: `GITHUB_ACTIONS=true` or `--github`.
    pub on: bool,
}

impl Gha {
    /// Detects Actions from the environment; `forced` (the `--github` flag) turns it on anywhere.
    pub fn detect(forced: bool) -> Self {
        let env = Environment::from_process();
        let on = forced || env.actions;
        Self { env, on }
    }

    /// Prints workflow command lines (to stderr), when on.
    pub fn commands<I: IntoIterator<Item = String>>(&self, lines: I) {
        if !self.on {
            return;
        }
        let mut err = std::io::stderr().lock();
        for line in lines {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    /// Appends outputs to `$GITHUB_OUTPUT` (when on and set).
    pub fn outputs(&self, outputs: &Outputs) -> Result<(), CliError> {
        match (&self.env.output, self.on) {
            (Some(path), true) => outputs
                .write(path)
                .map_err(|e| CliError::from_error(Exit::Environment, &e)),
            _ => Ok(()),
        }
    }

    /// Appends the summary to `$GITHUB_STEP_SUMMARY` (when on and set).
    pub fn summary(&self, summary: &StepSummary) -> Result<(), CliError> {
        match (&self.env.step_summary, self.on) {
            (Some(path), true) => summary
                .write(path)
                .map_err(|e| CliError::from_error(Exit::Environment, &e)),
            _ => Ok(()),
        }
    }
}

/// The 1-based line of the first conflict marker in a file the upgrade writes, if any.
pub fn first_marker_line(prepared: &Prepared, path: &uplift_tree::RelPath) -> Option<u64> {
    let entry = prepared.changes.iter().find_map(|c| match c {
        uplift_tree::Change::Write { path: p, entry } if p == path => Some(entry),
        _ => None,
    })?;
    let text = std::str::from_utf8(&entry.content).ok()?;
    text.lines()
        .position(|l| l.starts_with("<<<<<<<"))
        .map(|i| i as u64 + 1)
}

/// One `::warning` per conflicting file (at its first marker), capped by `Annotations`.
pub fn conflict_annotations(prepared: &Prepared, level: Level) -> Annotations {
    let mut list = Annotations::new();
    for file in prepared
        .plan
        .files
        .iter()
        .filter(|f| f.action == Action::Conflict)
    {
        let reason = file
            .reason
            .clone()
            .unwrap_or_else(|| "conflict".to_string());
        let line = first_marker_line(prepared, &file.path);
        list.push(
            Annotation::new(level, reason)
                .file(file.path.to_string(), line)
                .title(format!(
                    "upgrade conflict {} -> {}",
                    prepared.plan.from, prepared.plan.to
                )),
        );
    }
    list
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn forced_turns_it_on() {
        assert!(Gha::detect(true).on);
    }
}
