//! Workflow commands printed to the log: annotations, groups, masks.

use std::fmt::Write as _;

/// GitHub shows at most this many annotations of each kind per step.
pub const ANNOTATION_CAP: usize = 10;

/// Escapes a command's message (`%`, `\r`, `\n`), as the runner unescapes it.
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a command property value (also `:` and `,`).
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// `::group::NAME`: the following log lines fold under NAME until [`end_group`].
pub fn group(name: &str) -> String {
    format!("::group::{}", escape_data(name))
}

/// `::endgroup::`.
pub fn end_group() -> String {
    "::endgroup::".to_string()
}

/// The `::add-mask::` lines for a secret: the whole value, and each line of a multi-line one
/// (the runner masks log lines one at a time). Empty for an empty value.
pub fn add_mask(value: &str) -> Vec<String> {
    let mut lines = Vec::new();
    if value.trim().is_empty() {
        return lines;
    }
    lines.push(format!("::add-mask::{}", escape_data(value)));
    if value.contains('\n') || value.contains('\r') {
        for line in value.lines().map(str::trim_end) {
            if !line.trim().is_empty() {
                lines.push(format!("::add-mask::{}", escape_data(line)));
            }
        }
    }
    lines
}

/// Forms of a secret that tools commonly print instead of the value itself, to be masked too:
/// its standard and URL-safe base64 (basic-auth headers, Docker config `auth` fields).
pub fn derived_forms(secret: &str) -> Vec<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    if secret.trim().is_empty() {
        return Vec::new();
    }
    let mut forms = vec![
        STANDARD.encode(secret.as_bytes()),
        URL_SAFE_NO_PAD.encode(secret.as_bytes()),
    ];
    forms.dedup();
    forms
}

/// The kind of an annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Error,
    Warning,
    Notice,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Level::Error => "errors",
            Level::Warning => "warnings",
            Level::Notice => "notices",
        }
    }
}

/// One annotation: a message, optionally tied to a file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    pub level: Level,
    pub message: String,
    pub title: Option<String>,
    pub file: Option<String>,
    pub line: Option<u64>,
}

impl Annotation {
    pub fn new(level: Level, message: impl Into<String>) -> Self {
        Self {
            level,
            message: message.into(),
            title: None,
            file: None,
            line: None,
        }
    }

    pub fn file(mut self, file: impl Into<String>, line: Option<u64>) -> Self {
        self.file = Some(file.into());
        self.line = line;
        self
    }

    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// The workflow command, e.g. `::error file=a.ts,line=3,title=conflict::both changed`.
    pub fn command(&self) -> String {
        let mut props = Vec::new();
        if let Some(file) = &self.file {
            props.push(format!("file={}", escape_property(file)));
            if let Some(line) = self.line {
                props.push(format!("line={line}"));
            }
        }
        if let Some(title) = &self.title {
            props.push(format!("title={}", escape_property(title)));
        }
        let mut out = format!("::{}", self.level.as_str());
        if !props.is_empty() {
            let _ = write!(out, " {}", props.join(","));
        }
        let _ = write!(out, "::{}", escape_data(&self.message));
        out
    }
}

/// A list of annotations rendered with GitHub's cap per kind.
#[derive(Debug, Clone, Default)]
pub struct Annotations {
    items: Vec<Annotation>,
}

impl Annotations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, annotation: Annotation) {
        self.items.push(annotation);
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The lines to print: the first [`ANNOTATION_CAP`] of each kind as commands, in the order
    /// pushed, then one plain line per kind that had more, saying how many were left out.
    pub fn render(&self) -> Vec<String> {
        let mut shown = std::collections::BTreeMap::<Level, usize>::new();
        let mut left = std::collections::BTreeMap::<Level, usize>::new();
        let mut lines = Vec::new();
        for item in &self.items {
            let count = shown.entry(item.level).or_default();
            if *count < ANNOTATION_CAP {
                *count += 1;
                lines.push(item.command());
            } else {
                *left.entry(item.level).or_default() += 1;
            }
        }
        for (level, n) in left {
            lines.push(format!(
                "uplift: {n} more {} not annotated (GitHub shows at most {ANNOTATION_CAP} per step); the step summary lists them all",
                level.plural()
            ));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn escapes_as_the_runner_unescapes() {
        assert_eq!(escape_data("50% a\r\nb"), "50%25 a%0D%0Ab");
        assert_eq!(escape_property("a:b,c%"), "a%3Ab%2Cc%25");
    }

    #[test]
    fn annotation_with_file_line_title() {
        let a = Annotation::new(Level::Error, "both changed\nline 2")
            .file("src/a,b.ts", Some(12))
            .title("conflict: x");
        assert_eq!(
            a.command(),
            "::error file=src/a%2Cb.ts,line=12,title=conflict%3A x::both changed%0Aline 2"
        );
        assert_eq!(
            Annotation::new(Level::Notice, "hi").command(),
            "::notice::hi"
        );
    }

    #[test]
    fn caps_each_kind_at_ten_then_one_line() {
        let mut list = Annotations::new();
        for i in 0..25 {
            list.push(Annotation::new(Level::Error, format!("e{i}")));
        }
        for i in 0..3 {
            list.push(Annotation::new(Level::Warning, format!("w{i}")));
        }
        let lines = list.render();
        let errors = lines.iter().filter(|l| l.starts_with("::error")).count();
        let warnings = lines.iter().filter(|l| l.starts_with("::warning")).count();
        assert_eq!((errors, warnings), (10, 3));
        assert_eq!(lines.len(), 14);
        assert!(lines[13].contains("15 more errors"), "{}", lines[13]);
        assert!(lines.iter().any(|l| l == "::error::e9"));
        assert!(!lines.iter().any(|l| l == "::error::e10"));
    }

    #[test]
    fn masks_each_line_of_a_multiline_secret() {
        assert!(add_mask("  ").is_empty());
        assert_eq!(add_mask("s3cret"), vec!["::add-mask::s3cret"]);
        let lines = add_mask("line one\nline two\n");
        assert_eq!(
            lines,
            vec![
                "::add-mask::line one%0Aline two%0A",
                "::add-mask::line one",
                "::add-mask::line two"
            ]
        );
    }

    #[test]
    fn derived_forms_are_base64() {
        assert_eq!(derived_forms("user:pass"), vec!["dXNlcjpwYXNz"]);
        assert!(derived_forms("").is_empty());
        assert_eq!(derived_forms("a?>"), vec!["YT8+", "YT8-"]);
    }

    #[test]
    fn group_lines() {
        assert_eq!(group("build\nx"), "::group::build%0Ax");
        assert_eq!(end_group(), "::endgroup::");
    }
}
