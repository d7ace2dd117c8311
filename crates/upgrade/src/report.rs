//! The plan for people and programs: text, JSON, markdown and a patch.

use std::fmt::Write as _;

use similar::TextDiff;
use uplift_merge::{Action, FilePlan};
use uplift_tree::{Change, FileEntry, RelPath, Tree};

use crate::{Plan, Prepared};

/// Colour for the text report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Never,
    Always,
}

fn paint(colour: Colour, code: &str, text: &str) -> String {
    match colour {
        Colour::Always => format!("\x1b[{code}m{text}\x1b[0m"),
        Colour::Never => text.to_string(),
    }
}

fn action_colour(action: Action) -> &'static str {
    match action {
        Action::Conflict => "1;31",
        Action::Add | Action::Merge => "32",
        Action::Delete => "31",
        Action::Update | Action::Rename => "36",
        Action::Regenerate => "33",
        Action::UpToDate => "2",
    }
}

/// A CommonMark code span showing `text` exactly: fenced by one backtick more than the longest
/// run inside, padded with a space when it starts or ends with a backtick or a space.
pub fn code_span(text: &str) -> String {
    let text = text.replace(['\n', '\r'], " ");
    let (mut longest, mut run) = (0, 0);
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with(['`', ' ']) || text.ends_with(['`', ' ']) {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

fn path_cell(file: &FilePlan) -> String {
    match &file.renamed_from {
        Some(from) => format!("{} (from {from})", file.path),
        None => file.path.to_string(),
    }
}

/// The plan for a terminal.
pub fn text(plan: &Plan, colour: Colour) -> String {
    let mut out = String::new();
    let template = match (&plan.template_from, &plan.template_to) {
        (Some(a), Some(b)) if a == b => format!(", template {a}"),
        (Some(a), Some(b)) => format!(", template {a} -> {b}"),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "Upgrade {} -> {} ({}{template})",
        plan.from, plan.to, plan.source
    );
    for note in &plan.notes {
        let _ = writeln!(out, "Note: {note}");
    }
    if plan.files.is_empty() {
        let why = if plan.from == plan.to {
            "the app is at this release already"
        } else {
            "upstream changed nothing between these releases"
        };
        let _ = writeln!(out, "Nothing to do: {why}.");
        return out;
    }
    let width = plan
        .files
        .iter()
        .map(|f| path_cell(f).len())
        .max()
        .unwrap_or(0)
        .min(60);
    for file in &plan.files {
        let action = format!("{:<10}", file.action.as_str());
        let mut notes = Vec::new();
        if let Some(mode) = &file.mode_change {
            notes.push(format!("mode {mode}"));
        }
        if let Some(reason) = &file.reason {
            notes.push(reason.clone());
        }
        let path = path_cell(file);
        let line = if notes.is_empty() {
            path
        } else {
            format!("{path:<width$}  {}", notes.join("; "))
        };
        let _ = writeln!(
            out,
            "  {} {}",
            paint(colour, action_colour(file.action), &action),
            line.trim_end()
        );
    }
    let _ = writeln!(out, "{}", summary_line(plan));
    for follow_up in &plan.follow_up {
        let _ = writeln!(
            out,
            "Then run: {} ({})",
            follow_up.command, follow_up.reason
        );
    }
    out
}

/// One line: counts per action and conflicts.
pub fn summary_line(plan: &Plan) -> String {
    let s = &plan.summary;
    let counts = [
        (s.add, "added"),
        (s.update, "updated"),
        (s.delete, "deleted"),
        (s.rename, "renamed"),
        (s.merge, "merged"),
        (s.conflict, "conflicting"),
        (s.regenerate, "to regenerate"),
        (s.up_to_date, "up to date"),
    ];
    let parts: Vec<String> = counts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    if parts.is_empty() {
        return "0 files: nothing to do".to_string();
    }
    let verdict = if s.conflict == 0 {
        "no conflicts".to_string()
    } else {
        format!(
            "{} conflict{} to resolve",
            s.conflicts,
            if s.conflicts == 1 { "" } else { "s" }
        )
    };
    format!(
        "{} file{}: {}; {verdict}",
        s.files,
        if s.files == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

/// The plan as JSON (schema [`crate::PLAN_SCHEMA`]).
pub fn json(plan: &Plan) -> String {
    // Serializing plain data with string keys cannot fail.
    serde_json::to_string_pretty(plan).unwrap_or_default()
}

fn escape_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The plan as markdown, ready for a pull-request body or a step summary. Conflicts first.
pub fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Upgrade {} → {}\n", plan.from, plan.to);
    let _ = writeln!(
        out,
        "Upstream: `{}`. {}.\n",
        plan.source,
        summary_line(plan)
    );
    for note in &plan.notes {
        let _ = writeln!(out, "> [!NOTE]\n> {}\n", escape_cell(note));
    }
    let conflicts: Vec<&FilePlan> = plan
        .files
        .iter()
        .filter(|f| f.action == Action::Conflict)
        .collect();
    if !conflicts.is_empty() {
        let _ = writeln!(out, "### Conflicts to resolve\n");
        for file in &conflicts {
            let reason = file.reason.as_deref().unwrap_or("conflict");
            let _ = writeln!(
                out,
                "- [ ] {}: {}",
                code_span(&path_cell(file)),
                escape_cell(reason)
            );
        }
        out.push('\n');
    }
    if !plan.files.is_empty() {
        let _ = writeln!(out, "### Files\n");
        let _ = writeln!(out, "| File | Action | Notes |");
        let _ = writeln!(out, "|---|---|---|");
        for file in &plan.files {
            let mut notes = Vec::new();
            if let Some(mode) = &file.mode_change {
                notes.push(format!("mode {mode}"));
            }
            if let Some(reason) = &file.reason {
                notes.push(escape_cell(reason));
            }
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                escape_cell(&code_span(&path_cell(file))),
                file.action.as_str(),
                notes.join("; ")
            );
        }
        out.push('\n');
    }
    if !plan.follow_up.is_empty() {
        let _ = writeln!(out, "### Then run\n");
        for follow_up in &plan.follow_up {
            let _ = writeln!(out, "- `{}`: {}", follow_up.command, follow_up.reason);
        }
        out.push('\n');
    }
    out
}

/// The unified diff that applying `prepared` makes to the app.
pub fn patch(prepared: &Prepared) -> String {
    let mut out = String::new();
    for change in &prepared.changes {
        let old = prepared.ours.get(change.path());
        let new = match change {
            Change::Write { entry, .. } => Some(entry),
            Change::Delete { .. } => None,
        };
        file_diff(&mut out, change.path(), old, new);
    }
    out
}

/// The upstream change alone between two rendered trees (what an upgrade helper shows).
pub fn tree_diff(old: &Tree, new: &Tree) -> String {
    let mut out = String::new();
    let paths: std::collections::BTreeSet<&RelPath> = old.paths().chain(new.paths()).collect();
    for path in paths {
        let (a, b) = (old.get(path), new.get(path));
        let same = matches!((a, b), (Some(a), Some(b)) if a.same_as(b));
        if !same {
            file_diff(&mut out, path, a, b);
        }
    }
    out
}

fn mode_bits(entry: &FileEntry) -> &'static str {
    match entry.mode {
        uplift_tree::FileMode::Regular => "100644",
        uplift_tree::FileMode::Executable => "100755",
        uplift_tree::FileMode::Symlink => "120000",
    }
}

/// One file's diff in git's format.
fn file_diff(out: &mut String, path: &RelPath, old: Option<&FileEntry>, new: Option<&FileEntry>) {
    let _ = writeln!(out, "diff --git a/{path} b/{path}");
    match (old, new) {
        (None, Some(new)) => {
            let _ = writeln!(out, "new file mode {}", mode_bits(new));
        }
        (Some(old), None) => {
            let _ = writeln!(out, "deleted file mode {}", mode_bits(old));
        }
        (Some(old), Some(new)) if old.mode != new.mode => {
            let _ = writeln!(
                out,
                "old mode {}\nnew mode {}",
                mode_bits(old),
                mode_bits(new)
            );
        }
        _ => {}
    }
    let old_text = old.map(|e| e.text());
    let new_text = new.map(|e| e.text());
    if matches!(old_text, Some(None)) || matches!(new_text, Some(None)) {
        let _ = writeln!(out, "Binary files differ");
        return;
    }
    let (old_text, new_text) = (
        old_text.flatten().unwrap_or(""),
        new_text.flatten().unwrap_or(""),
    );
    if old_text == new_text {
        return;
    }
    let old_name = if old.is_some() {
        format!("a/{path}")
    } else {
        "/dev/null".to_string()
    };
    let new_name = if new.is_some() {
        format!("b/{path}")
    } else {
        "/dev/null".to_string()
    };
    let diff = TextDiff::from_lines(old_text, new_text);
    let _ = write!(
        out,
        "{}",
        diff.unified_diff()
            .context_radius(3)
            .header(&old_name, &new_name)
    );
}
