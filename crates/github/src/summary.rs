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

    /// The markdown, within this summary's limit. See [`StepSummary::render_within`].
    pub fn render(&self) -> String {
        self.render_within(self.limit)
    }

    /// The markdown, at most `limit` bytes. When everything does not fit, each section gets a
    /// fair share of the room (small sections stay whole, so the test totals survive a
    /// 5,000-file plan), long ones are cut at a line boundary (a code fence left open by the
    /// cut is closed, so the rest still renders as markdown), and a closing note says what was
    /// cut and by how much. With less room than a cut needs, only a short note (or nothing).
    pub fn render_within(&self, limit: usize) -> String {
        let limit = limit.min(self.limit);
        let total: usize = self.sections.iter().map(|s| s.body.len() + 1).sum();
        if total <= limit {
            return self.sections.iter().fold(String::new(), |mut out, s| {
                out.push_str(&s.body);
                out.push('\n');
                out
            });
        }
        if limit < NOTE_ROOM * 2 {
            let note = format!(
                "> [!NOTE]\n> Uplift's summary ({total} bytes) was left out: the step summary had room for {limit} more bytes under GitHub's 1 MiB limit.\n"
            );
            return if note.len() <= limit {
                note
            } else {
                String::new()
            };
        }
        // Fair shares: smallest first, each takes min(its size, an equal part of what is left).
        let mut budget = limit - NOTE_ROOM;
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
            // Room for a closing fence and the blank line.
            let kept = cut_at_line(&section.body, room.saturating_sub(1 + FENCE_ROOM));
            let dropped_lines = section.body[kept.len()..].lines().count();
            out.push_str(kept);
            if let Some(fence) = open_fence(kept) {
                out.push_str(&fence);
                out.push('\n');
            }
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
        let room = limit.saturating_sub(out.len());
        out.push_str(cut_at_line(&note, room));
        out
    }

    /// Appends the summary to `$GITHUB_STEP_SUMMARY` at `path`. GitHub's 1 MiB limit is for
    /// the whole file, which earlier steps may have filled: the summary is cut to the room
    /// left when it is written (and to this summary's own limit).
    pub fn write(&self, path: &std::path::Path) -> Result<(), crate::Error> {
        let used = std::fs::metadata(path).map_or(0, |m| m.len());
        let used = usize::try_from(used).unwrap_or(usize::MAX);
        // One byte kept for the newline `append` adds after an unterminated last line.
        let text = self.render_within(SUMMARY_LIMIT.saturating_sub(used).saturating_sub(1));
        if text.is_empty() {
            return Ok(());
        }
        crate::append(path, &text)
    }
}

/// Room kept in a cut section for the line closing an open code fence.
const FENCE_ROOM: usize = 64;

/// The fence that closes the fenced code block `text` ends inside, if any (``` or ~~~, up to
/// 3 spaces of indent; closed by a run of the same character at least as long).
fn open_fence(text: &str) -> Option<String> {
    let mut open: Option<(char, usize)> = None;
    for line in text.lines() {
        let trimmed = line.trim_start_matches(' ');
        if line.len() - trimmed.len() > 3 {
            continue;
        }
        let Some(c) = trimmed.chars().next().filter(|c| *c == '`' || *c == '~') else {
            continue;
        };
        let run = trimmed.chars().take_while(|x| *x == c).count();
        if run < 3 {
            continue;
        }
        open = match open {
            None => Some((c, run)),
            Some((oc, orun)) if oc == c && run >= orun && trimmed[run..].trim().is_empty() => None,
            keep => keep,
        };
    }
    open.map(|(c, run)| c.to_string().repeat(run.min(FENCE_ROOM - 1)))
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
    fn a_cut_inside_a_code_fence_closes_it() {
        let mut s = StepSummary::with_limit(20_000);
        let log: String = (0..5_000).map(|i| format!("line {i}\n")).collect();
        s.section("Log", format!("## Log\n\n````text\n{log}````\n"));
        s.section("Tests", "## Tests\n\n3 passed\n");
        let out = s.render();
        assert!(out.len() <= 20_000, "{}", out.len());
        assert_eq!(open_fence(&out), None, "{out}");
        // The note and the tests come after the fence, as markdown.
        let close = out.find("\n````\n").unwrap();
        assert!(out[close..].contains("## Tests"));
        assert!(out[close..].contains("> [!NOTE]"));
    }

    #[test]
    fn fences_open_and_close_as_commonmark_says() {
        assert_eq!(open_fence("```\na\n"), Some("```".into()));
        assert_eq!(open_fence("```\na\n```\n"), None);
        assert_eq!(open_fence("````\n```\n"), Some("````".into()));
        assert_eq!(open_fence("~~~\n```\n"), Some("~~~".into()));
        assert_eq!(open_fence("    ```\n"), None);
        assert_eq!(open_fence("``x\n"), None);
    }

    #[test]
    fn write_budgets_against_what_earlier_steps_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary");
        let earlier = "x".repeat(910 * 1000 - 1) + "\n";
        std::fs::write(&path, &earlier).unwrap();
        let mut s = StepSummary::new();
        let plan: String = (0..20_000)
            .map(|i| format!("| `f{i}.ts` | update |\n"))
            .collect();
        s.section("Plan", format!("## Plan\n{plan}"));
        s.write(&path).unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= SUMMARY_LIMIT as u64, "{size}");
        assert!(
            size > SUMMARY_LIMIT as u64 - NOTE_ROOM as u64 * 2,
            "room used: {size}"
        );
        // A full file gets nothing more, a nearly full one only a short note.
        std::fs::write(&path, "x".repeat(SUMMARY_LIMIT)).unwrap();
        s.write(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            SUMMARY_LIMIT as u64
        );
        std::fs::write(&path, "x".repeat(SUMMARY_LIMIT - 1000)).unwrap();
        s.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.len() <= SUMMARY_LIMIT);
        assert!(
            text.ends_with("under GitHub's 1 MiB limit.\n"),
            "{}",
            &text[SUMMARY_LIMIT - 1000..]
        );
    }

    #[test]
    fn cut_respects_char_boundaries() {
        assert_eq!(cut_at_line("ab\né\n", 4), "ab\n");
        assert_eq!(cut_at_line("abc", 2), "");
    }
}
