//! Problems found in a pipeline file, with file, line, column and a labelled snippet.

use miette::{
    GraphicalReportHandler, GraphicalTheme, MietteError, MietteSpanContents, SourceCode,
    SourceSpan, SpanContents,
};
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
    src: Excerpt,
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
            let (src, span) = Excerpt::around(&self.file, &self.source, problem);
            let rendered = Rendered {
                message: problem.message.clone(),
                src,
                span,
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

/// Longest line shown whole in a snippet; longer ones are cut around the problem with `…`.
const MAX_SHOWN_CHARS: usize = 120;
/// Characters kept before the problem's column when its line is cut.
const SHOWN_BEFORE: usize = 40;

/// The lines of a snippet (the problem's line and one either side, long ones cut) as the
/// renderer's source: a snippet never copies the whole file, and the renderer never sees a line
/// longer than [`MAX_SHOWN_CHARS`] (it panics on columns past 65,535).
#[derive(Debug)]
struct Excerpt {
    name: String,
    text: String,
    /// 0-based line number of the excerpt's first line in the file.
    first_line: usize,
    /// The excerpt line holding the problem, and how many characters were cut before it
    /// (minus the `…` put in their place), so columns shown are the file's.
    problem_line: usize,
    column_shift: usize,
}

impl Excerpt {
    /// The excerpt of `source` around `problem`, and the problem's span inside it.
    fn around(file: &str, source: &str, problem: &Problem) -> (Excerpt, SourceSpan) {
        let offset = floor_char_boundary(source, problem.offset.min(source.len()));
        let line_start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[offset..]
            .find('\n')
            .map_or(source.len(), |i| offset + i);
        let before_start = if line_start == 0 {
            None
        } else {
            let end = line_start - 1;
            Some(source[..end].rfind('\n').map_or(0, |i| i + 1)..end)
        };
        let after = if line_end >= source.len() {
            None
        } else {
            let start = line_end + 1;
            Some(
                start
                    ..source[start..]
                        .find('\n')
                        .map_or(source.len(), |i| start + i),
            )
        };
        let mut text = String::new();
        let mut first_line = source[..line_start].matches('\n').count();
        let mut problem_line = 0;
        if let Some(range) = before_start {
            first_line = first_line.saturating_sub(1);
            problem_line = 1;
            text.push_str(&cut_line(&source[range], 0).0);
            text.push('\n');
        }
        let column = source[line_start..offset].chars().count();
        let line = &source[line_start..line_end];
        let (shown, cut_chars) = cut_line(line, column);
        let span_start_chars = column - cut_chars;
        let span_start = text.len()
            + shown
                .char_indices()
                .nth(span_start_chars)
                .map_or(shown.len(), |(b, _)| b);
        let shown_end = text.len() + shown.trim_end_matches('…').len();
        let span_len = problem
            .len
            .min(line_end - offset)
            .min(shown_end.saturating_sub(span_start));
        text.push_str(&shown);
        if let Some(range) = after {
            text.push('\n');
            text.push_str(&cut_line(&source[range], 0).0);
        }
        let excerpt = Excerpt {
            name: file.to_owned(),
            text,
            first_line,
            problem_line,
            column_shift: cut_chars,
        };
        (excerpt, SourceSpan::new(span_start.into(), span_len))
    }
}

/// `line` cut to about [`MAX_SHOWN_CHARS`] characters around character `column`, and how
/// many characters before `column` were dropped (an `…` takes their place, and counts as one).
fn cut_line(line: &str, column: usize) -> (String, usize) {
    let chars = line.chars().count();
    if chars <= MAX_SHOWN_CHARS {
        return (line.to_owned(), 0);
    }
    let start = column
        .saturating_sub(SHOWN_BEFORE)
        .min(chars.saturating_sub(MAX_SHOWN_CHARS));
    let end = (start + MAX_SHOWN_CHARS).min(chars);
    let mut shown = String::new();
    if start > 0 {
        shown.push('…');
    }
    shown.extend(line.chars().skip(start).take(end - start));
    if end < chars {
        shown.push('…');
    }
    // The `…` stands for the dropped characters: one of them stays counted.
    (shown, start.saturating_sub(1))
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while index > 0 && !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

impl SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let inner = self
            .text
            .read_span(span, context_lines_before, context_lines_after)?;
        let column = if inner.line() == self.problem_line {
            inner.column() + self.column_shift
        } else {
            inner.column()
        };
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line() + self.first_line,
            column,
            inner.line_count(),
        )))
    }
}
