//! `::stop-commands::`: a block of untrusted text the runner reads as plain log lines.

use crate::Error;

/// One block of untrusted output: between `::stop-commands::TOKEN` and `::TOKEN::` the runner
/// processes no workflow command (neither `::cmd::` nor the legacy `##[cmd]`), so a stage that
/// prints `::set-output …`, `::error …`, `::endgroup::` or `::stop-commands::OTHER` cannot forge
/// anything. The token is random and fresh for every block, so the untrusted text cannot know
/// it, and only this exact line (compared ignoring case, as the runner does) resumes commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopCommands {
    token: String,
}

impl StopCommands {
    /// A block with a fresh random token (`uplift-` and 32 hex digits).
    pub fn new() -> Result<Self, Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self {
            token: format!("uplift-{hex}"),
        })
    }

    /// The line that stops command processing.
    pub fn start(&self) -> String {
        format!("::stop-commands::{}", self.token)
    }

    /// The line that resumes it.
    pub fn end(&self) -> String {
        format!("::{}::", self.token)
    }

    /// `text` between the two lines (a newline is added after `text` when it has none).
    /// An empty text needs no block and is returned as it is.
    pub fn wrap(&self, text: &str) -> String {
        if text.is_empty() {
            return String::new();
        }
        let newline = if text.ends_with('\n') { "" } else { "\n" };
        format!("{}\n{text}{newline}{}\n", self.start(), self.end())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::runner::Runner;

    #[test]
    fn tokens_are_fresh() {
        assert_ne!(StopCommands::new().unwrap(), StopCommands::new().unwrap());
    }

    #[test]
    fn forged_commands_inside_a_block_are_not_processed() {
        let hostile = "::set-output name=image::evil\n\
                       ::error title=forged::x\n\
                       ::endgroup::\n\
                       ::stop-commands::attacker\n\
                       ::attacker::\n\
                       text ##[set-output name=legacy;]y\n\
                       ::add-mask::nothing\n";
        let block = StopCommands::new().unwrap();
        let log = format!(
            "::group::stage\n{}::endgroup::\n::notice::after\n",
            block.wrap(hostile)
        );
        let runner = Runner::read(&log);
        let names: Vec<&str> = runner.commands.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["group", "stop-commands", "resume", "endgroup", "notice"],
            "{:?}",
            runner.commands
        );
        assert!(!runner.stopped);
        // Without the block, the same text forges outputs and annotations.
        let bare = Runner::read(hostile);
        assert!(bare.commands.iter().any(|c| c.name == "set-output"));
        assert!(bare.commands.iter().any(|c| c.name == "error"));
        assert!(bare.commands.iter().any(|c| c.data == "attacker"));
    }
}
