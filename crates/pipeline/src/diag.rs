//! Problems found in a pipeline file, with file, line, column and a labelled snippet.

use miette::{GraphicalReportHandler, GraphicalTheme, NamedSource, SourceSpan};
use serde::Serialize;

use crate::span::Pos;

/// One problem at one place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What is wrong, e.g. "unknown stage type `runn`".
    pub message: String,
    /// The text under the snippet's underline.
    pub label: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Byte offset and length in the file.
    pub offset: usize,
    pub len: usize,
    /// A hint on how to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Problem {
    pub fn at(pos: Pos, message: impl Into<String>, label: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            label: label.into(),
            line: pos.line,
            column: pos.col,
            offset: pos.offset,
            len: pos.len,
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Every problem of one file, with the file's text for snippets.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnostics {
    pub file: String,
    #[serde(skip)]
    pub source: String,
    pub problems: Vec<Problem>,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
struct Rendered {
    message: String,
    #[source_code]
    src: NamedSource<String>,
    #[label("{label}")]
    span: SourceSpan,
    label: String,
    #[help]
    help: Option<String>,
}

impl Diagnostics {
    /// Renders every problem: a `file:line:col: message` line, then a miette snippet.
    pub fn render(&self, colour: bool) -> String {
        let theme = if colour {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_links(false);
        let mut out = String::new();
        for problem in &self.problems {
            out.push_str(&format!(
                "{}:{}:{}: error: {}\n",
                self.file, problem.line, problem.column, problem.message
            ));
            let rendered = Rendered {
                message: problem.message.clone(),
                src: NamedSource::new(self.file.clone(), self.source.clone()),
                span: SourceSpan::new(problem.offset.min(self.source.len()).into(), problem.len),
                label: problem.label.clone(),
                help: problem.help.clone(),
            };
            let mut snippet = String::new();
            if handler.render_report(&mut snippet, &rendered).is_ok() {
                out.push_str(&snippet);
            }
            out.push('\n');
        }
        out.push_str(&format!(
            "{} error{} in {}\n",
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" },
            self.file
        ));
        out
    }
}
