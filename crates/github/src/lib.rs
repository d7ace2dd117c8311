//! GitHub Actions conventions, as plain data and text (this crate never prints).
//!
//! - [`Outputs`]: `name=value` pairs written to `$GITHUB_OUTPUT` as heredocs with a random
//!   delimiter (regenerated if a value happens to contain it), so any value, multi-line
//!   included, reads back exactly.
//! - [`StepSummary`]: markdown sections for `$GITHUB_STEP_SUMMARY`, cut to stay under
//!   GitHub's 1 MiB limit ([`SUMMARY_LIMIT`]) with a closing note of what was cut.
//! - [`Annotations`]: `::error`/`::warning`/`::notice` workflow commands, at most
//!   [`ANNOTATION_CAP`] of each kind (GitHub shows no more per step), then one plain line
//!   saying how many were left out.
//! - [`group`], [`end_group`], [`add_mask`]: the log commands, escaped as the runner expects.
//! - [`Environment`]: whether we run inside Actions and where its files are.
//! - [`StopCommands`]: a block of untrusted text (stage logs, test output, anything read from
//!   the app) that the runner reads without processing workflow commands.
//! - [`runner`]: the runner's rules for reading commands from a log, so tests can check what
//!   a real runner would do with Uplift's output.
//!
//! Every function returns the text to print; the binary decides where it goes.

mod commands;
mod outputs;
pub mod runner;
mod stop;
mod summary;

pub use commands::{
    ANNOTATION_CAP, Annotation, Annotations, Level, add_mask, derived_forms, end_group,
    escape_data, escape_property, group,
};
pub use outputs::{Outputs, parse_outputs, random_delimiter};
pub use stop::StopCommands;
pub use summary::{SUMMARY_LIMIT, StepSummary};

use std::path::PathBuf;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("get random bytes for a heredoc delimiter: {0}")]
    Random(String),
    #[error("output name {0:?} is empty or has a character outside [A-Za-z0-9_-]")]
    OutputName(String),
}

/// What the process knows of GitHub Actions from its environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// `GITHUB_ACTIONS=true`.
    pub actions: bool,
    /// `$GITHUB_OUTPUT`.
    pub output: Option<PathBuf>,
    /// `$GITHUB_STEP_SUMMARY`.
    pub step_summary: Option<PathBuf>,
}

impl Environment {
    /// Reads `GITHUB_ACTIONS`, `GITHUB_OUTPUT` and `GITHUB_STEP_SUMMARY` through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let path = |name: &str| get(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        Self {
            actions: get("GITHUB_ACTIONS").as_deref() == Some("true"),
            output: path("GITHUB_OUTPUT"),
            step_summary: path("GITHUB_STEP_SUMMARY"),
        }
    }

    /// Reads the process environment.
    pub fn from_process() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

/// Appends `text` to the file at `path` (GitHub's file commands are append-only). When an
/// earlier step left the file without a final newline, one is written first: otherwise the
/// runner would read that last line and Uplift's first line as one (`a=1name<<DELIM…`).
pub fn append(path: &std::path::Path, text: &str) -> Result<(), Error> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        let len = file.seek(SeekFrom::End(0))?;
        let mut prefix = "";
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::End(-1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                prefix = "\n";
            }
        }
        // Append mode writes at the end whatever the read position.
        file.write_all(format!("{prefix}{text}").as_bytes())?;
        file.flush()
    };
    write().map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn environment_needs_actions_true() {
        let env = Environment::from_lookup(|name| match name {
            "GITHUB_ACTIONS" => Some("true".into()),
            "GITHUB_OUTPUT" => Some("/tmp/out".into()),
            "GITHUB_STEP_SUMMARY" => Some(String::new()),
            _ => None,
        });
        assert!(env.actions);
        assert_eq!(env.output, Some(PathBuf::from("/tmp/out")));
        assert_eq!(env.step_summary, None);
        let off =
            Environment::from_lookup(|name| (name == "GITHUB_ACTIONS").then(|| "1".to_string()));
        assert!(!off.actions);
    }

    #[test]
    fn append_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        append(&path, "a\n").unwrap();
        append(&path, "b\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\nb\n");
        // A file an earlier step left without a final newline gets one first.
        std::fs::write(&path, "x=1").unwrap();
        append(&path, "name<<D\nv\nD\n").unwrap();
        assert_eq!(
            parse_outputs(&std::fs::read_to_string(&path).unwrap()).unwrap(),
            vec![("x".into(), "1".into()), ("name".into(), "v".into())]
        );
        let err = append(&dir.path().join("no/such/dir"), "x").unwrap_err();
        assert!(matches!(err, Error::Write { .. }));
    }
}
