//! How the Actions runner reads a step's log lines for workflow commands, for tests.
//!
//! Written from actions/runner's public source (`ActionCommandManager.TryProcessCommand`,
//! `ActionCommand.TryParseV2` and `TryParse`), not copied:
//! - a line is a command when, after its leading whitespace, it starts with `::NAME` (up to a
//!   space or the next `::`) and NAME is registered (compared ignoring case), or when it holds
//!   `##[NAME` anywhere (the legacy form, `]` ends the name and properties);
//! - `::stop-commands::TOKEN` stops all processing until a line `::TOKEN::` (any case) arrives;
//!   while stopped, nothing else is a command;
//! - properties are `k=v` pairs split on `,` (legacy: `;`), values unescaped.

/// The commands the runner registers (its extensions), plus `stop-commands`.
pub const REGISTERED: &[&str] = &[
    "stop-commands",
    "set-env",
    "set-output",
    "save-state",
    "add-mask",
    "add-path",
    "add-matcher",
    "remove-matcher",
    "warning",
    "error",
    "notice",
    "debug",
    "group",
    "endgroup",
    "echo",
];

/// A command the runner processed. A resume of a stopped log is recorded as `resume`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessedCommand {
    pub name: String,
    pub properties: Vec<(String, String)>,
    pub data: String,
}

/// The runner's state after reading a log.
#[derive(Debug, Clone, Default)]
pub struct Runner {
    pub commands: Vec<ProcessedCommand>,
    /// Still inside a `stop-commands` block at the end.
    pub stopped: bool,
    stop_token: Option<String>,
}

impl Runner {
    /// Reads every line of `log` (stdout and stderr, as the runner receives them).
    pub fn read(log: &str) -> Self {
        let mut runner = Self::default();
        for line in log.lines() {
            runner.line(line);
        }
        runner
    }

    /// Reads one line.
    pub fn line(&mut self, line: &str) {
        let Some(command) = parse_v2(line, self.stop_token.as_deref())
            .or_else(|| parse_legacy(line, self.stop_token.as_deref()))
        else {
            return;
        };
        if let Some(token) = &self.stop_token {
            if command.name.eq_ignore_ascii_case(token) {
                self.stop_token = None;
                self.stopped = false;
                self.commands.push(ProcessedCommand {
                    name: "resume".into(),
                    properties: Vec::new(),
                    data: String::new(),
                });
            }
            return;
        }
        if command.name.eq_ignore_ascii_case("stop-commands") {
            self.stop_token = Some(command.data.clone());
            self.stopped = true;
        }
        self.commands.push(command);
    }

    /// The processed commands named `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a ProcessedCommand> {
        self.commands
            .iter()
            .filter(move |c| c.name.eq_ignore_ascii_case(name))
    }
}

fn registered(name: &str, stop_token: Option<&str>) -> bool {
    REGISTERED.iter().any(|r| r.eq_ignore_ascii_case(name))
        || stop_token.is_some_and(|t| t.eq_ignore_ascii_case(name))
}

fn parse_v2(line: &str, stop_token: Option<&str>) -> Option<ProcessedCommand> {
    let message = line.trim_start();
    let rest = message.strip_prefix("::")?;
    let end = rest.find("::")?;
    let info = &rest[..end];
    let (name, props) = match info.find(' ') {
        Some(space) => (&info[..space], Some(info[space + 1..].trim())),
        None => (info, None),
    };
    if !registered(name, stop_token) {
        return None;
    }
    let properties = props
        .map(|p| split_properties(p, ',', unescape_property))
        .unwrap_or_default();
    Some(ProcessedCommand {
        name: name.to_string(),
        properties,
        data: unescape_data(&rest[end + 2..]),
    })
}

fn parse_legacy(line: &str, stop_token: Option<&str>) -> Option<ProcessedCommand> {
    let start = line.find("##[")?;
    let close = line[start..].find(']')? + start;
    let info = &line[start + 3..close];
    let (name, props) = match info.find(' ') {
        Some(space) => (&info[..space], Some(&info[space + 1..])),
        None => (info, None),
    };
    if !registered(name, stop_token) {
        return None;
    }
    let properties = props
        .map(|p| split_properties(p, ';', unescape_legacy))
        .unwrap_or_default();
    Some(ProcessedCommand {
        name: name.to_string(),
        properties,
        data: unescape_legacy(&line[close + 1..]),
    })
}

fn split_properties(
    text: &str,
    separator: char,
    unescape: fn(&str) -> String,
) -> Vec<(String, String)> {
    text.split(separator)
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            (!k.is_empty() && !v.is_empty()).then(|| (k.to_string(), unescape(v)))
        })
        .collect()
}

fn unescape_data(text: &str) -> String {
    text.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%25", "%")
}

fn unescape_property(text: &str) -> String {
    text.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%25", "%")
}

fn unescape_legacy(text: &str) -> String {
    text.replace("%3B", ";")
        .replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%5D", "]")
        .replace("%25", "%")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn reads_both_forms_and_ignores_unknown_names() {
        let runner = Runner::read(
            "  ::error file=a%2Cb.ts,line=3::x%0Ay\nplain ##[warning]legacy\n::unknown::z\n::nothing\n",
        );
        assert_eq!(runner.commands.len(), 2);
        assert_eq!(runner.commands[0].name, "error");
        assert_eq!(
            runner.commands[0].properties,
            vec![
                ("file".into(), "a,b.ts".into()),
                ("line".into(), "3".into())
            ]
        );
        assert_eq!(runner.commands[0].data, "x\ny");
        assert_eq!(runner.commands[1].name, "warning");
        assert_eq!(runner.commands[1].data, "legacy");
    }

    #[test]
    fn stop_commands_until_the_token_in_any_case() {
        let runner = Runner::read("::stop-commands::Tok\n::error::no\n::tok::\n::error::yes\n");
        let errors: Vec<&str> = runner.named("error").map(|c| c.data.as_str()).collect();
        assert_eq!(errors, ["yes"]);
        assert!(!runner.stopped);
    }
}
