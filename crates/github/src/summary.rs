//! The step summary (`$GITHUB_STEP_SUMMARY`), kept under GitHub's size limit.

use std::fmt::Write as _;

/// GitHub rejects a step summary over 1 MiB (and then shows none of it).
pub const SUMMARY_LIMIT: usize = 1024 * 1024;

/// Room kept for the closing note of what was cut.
const NOTE_ROOM: usize = 4096;

/// Markdown sections of a step summary, in order.
#[derive(Debug, Clone)]
pub struct StepSummary {
    limit: usize,
    sections: Vec<Section>,
}

#[derive(Debug, Clone)]
struct Section {
    title: String,
    body: String,
}

impl Default for StepSummary {
    fn default() -> Self {
        Self::new()
    }
}

impl StepSummary {
    /// A summary that renders to at most [`SUMMARY_LIMIT`] bytes.
    pub fn new() -> Self {
        Self::with_limit(SUMMARY_LIMIT)
    }

    /// A summary that renders to at most `limit` bytes (at least room for the note).
    pub fn with_limit(limit: usize) -> Self {
        Self {
            limit: limit.max(NOTE_ROOM * 2),
            sections: Vec::new(),
        }
    }

    /// Adds a section; `title` names it in the note when it has to be cut.
    pub fn section(&mut self, title: impl Into<String>, body: impl Into<String>) {
        let mut body = body.into();
        if !body.ends_with('\n') {
            body.push('\n');
        }
        self.sections.push(Section {
            title: title.into(),
            body,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.sections.is_empty()
    }

    /// The markdown. When everything does not fit, each section gets a fair share of the
    /// room (small sections stay whole, so the test totals survive a 5,000-file plan), long
    /// ones are cut at a line boundary, and a closing note says what was cut and by how much.
    pub fn render(&self) -> String {
        let total: usize = self.sections.iter().map(|s| s.body.len() + 1).sum();
        if total <= self.limit {
            return self.sections.iter().fold(String::new(), |mut out, s| {
                out.push_str(&s.body);
                out.push('\n');
                out
            });
        }
        // Fair shares: smallest first, each takes min(its size, an equal part of what is left).
        let mut budget = self.limit - NOTE_ROOM;
        let mut allot = vec![0usize; self.sections.len()];
        let mut order: Vec<usize> = (0..self.sections.len()).collect();
        order.sort_by_key(|&i| self.sections[i].body.len());
        for (k, &i) in order.iter().enumerate() {
            let share = budget / (order.len() - k);
            let take = (self.sections[i].body.len() + 1).min(share);
            allot[i] = take;
            budget -= take;
        }
        let mut out = String::new();
        let mut cuts = Vec::new();
        for (section, room) in self.sections.iter().zip(allot) {
            if section.body.len() < room {
                out.push_str(&section.body);
                out.push('\n');
                continue;
            }
            let kept = cut_at_line(&section.body, room.saturating_sub(1));
            let dropped_lines = section.body[kept.len()..].lines().count();
            out.push_str(kept);
            out.push('\n');
            cuts.push((
                section.title.as_str(),
                dropped_lines,
                section.body.len() - kept.len(),
            ));
        }
        let mut note = String::from(
            "> [!NOTE]\n> This summary was cut to stay under GitHub's 1 MiB step-summary limit:",
        );
        for (title, lines, bytes) in cuts {
            let _ = write!(
                note,
                "\n> - **{}**: {lines} line(s) ({bytes} bytes) left out",
                title.replace('\n', " ")
            );
        }
        note.push('\n');
        // The note is short, but a huge number of cut sections must not break the limit.
        let room = self.limit.saturating_sub(out.len());
        out.push_str(cut_at_line(&note, room));
        out
    }

    /// Appends the summary to `$GITHUB_STEP_SUMMARY` at `path`.
    pub fn write(&self, path: &std::path::Path) -> Result<(), crate::Error> {
        crate::append(path, &self.render())
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends at a line end.
fn cut_at_line(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    match text[..end].rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn small_summaries_are_whole() {
        let mut s = StepSummary::new();
        s.section("a", "## A\n| x |\n");
        s.section("b", "## B");
        assert_eq!(s.render(), "## A\n| x |\n\n## B\n\n");
    }

    #[test]
    fn huge_sections_are_cut_small_ones_kept_with_a_note() {
        let mut s = StepSummary::with_limit(100_000);
        s.section("Stages", "## Stages\n| stage | result |\n| a | success |\n");
        let plan: String = (0..20_000)
            .map(|i| format!("| `packages/app/src/file-{i}.ts` | update | é |\n"))
            .collect();
        s.section("Upgrade plan", format!("## Plan\n{plan}"));
        s.section("Tests", "## Tests\n12 passed, 0 failed\n");
        let out = s.render();
        assert!(out.len() <= 100_000, "{}", out.len());
        assert!(out.contains("12 passed, 0 failed"));
        assert!(out.contains("| a | success |"));
        assert!(out.contains("**Upgrade plan**"));
        assert!(out.contains("left out"));
        // Cut at a line boundary: every plan line kept is whole.
        for line in out.lines().filter(|l| l.starts_with("| `packages")) {
            assert!(line.ends_with("| é |"), "{line}");
        }
    }

    #[test]
    fn cut_respects_char_boundaries() {
        assert_eq!(cut_at_line("ab\né\n", 4), "ab\n");
        assert_eq!(cut_at_line("abc", 2), "");
    }
}
