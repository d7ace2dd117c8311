//! Syntax-aware merge of TypeScript, TSX and JavaScript, on tree-sitter, and the check that
//! keeps a line merge of such a file from being clean but wrong.
//!
//! It runs only for a file both sides changed, and only where the line merge conflicted or its
//! clean result fails [`check`]. The file is split into the lines before its imports, the import
//! block and the rest: imports merge as sets per module ([`imports`]); the rest merges by lines,
//! where both sides' insertions at one place of a list of registrations are kept side by side,
//! and a registration both sides added lands once ([`registrations`]).

mod check;
mod imports;
mod registrations;
mod syntax;

pub(crate) use check::check;
pub(crate) use syntax::Dialect;

use uplift_tree::RelPath;

use crate::FileKind;
use crate::text::{TextOptions, merge_text, merge_text_settling};
use syntax::Parsed;

/// The result of the syntax-aware merge of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScriptMerge {
    pub content: String,
    pub conflicts: usize,
    /// What the merge decided, for the plan's `reason`.
    pub decisions: Vec<String>,
}

/// Every check a merge result must pass to be reported clean, for any path: valid JSON/YAML
/// (see [`crate::check`]) and, for TypeScript/TSX/JavaScript, [`check`] against the three inputs.
/// Tools that merge by other means (the replay's `git merge-file` baseline) are judged by it.
pub fn check_merged(
    path: &RelPath,
    [base, ours, theirs]: [&str; 3],
    merged: &str,
) -> Result<(), String> {
    crate::check(FileKind::of(path), merged)?;
    match Dialect::of(path) {
        Some(dialect) => check(dialect, [base, ours, theirs], merged),
        None => Ok(()),
    }
}

/// After the line merge of a script file (`content` with `conflicts` regions): the syntax-aware
/// merge when the lines conflict or the clean result fails [`check`], if it does better; `None`
/// keeps the line merge.
pub(crate) fn improve(
    dialect: Dialect,
    [base, ours, theirs]: [&str; 3],
    options: &TextOptions,
    content: &str,
    conflicts: usize,
) -> Option<ScriptMerge> {
    if conflicts == 0 && check(dialect, [base, ours, theirs], content).is_ok() {
        return None;
    }
    let merged = merge(dialect, [base, ours, theirs], options)?;
    let better = if merged.conflicts == 0 {
        check(dialect, [base, ours, theirs], &merged.content).is_ok()
    } else {
        merged.conflicts < conflicts
    };
    better.then(|| {
        let mut merged = merged;
        merged.decisions.insert(
            0,
            format!(
                "merged by syntax ({}): imports as sets per module, registrations once",
                dialect.name()
            ),
        );
        merged
    })
}

/// Merges the three versions: the lines before the imports and the lines after them by lines
/// (settling both sides' registrations inserted at one place), the import block as sets.
/// `None` when a version does not parse.
pub(crate) fn merge(
    dialect: Dialect,
    [base, ours, theirs]: [&str; 3],
    options: &TextOptions,
) -> Option<ScriptMerge> {
    let parsed = [
        Parsed::new(dialect, base)?,
        Parsed::new(dialect, ours)?,
        Parsed::new(dialect, theirs)?,
    ];
    let sides = [
        imports::Side::of(&parsed[0]),
        imports::Side::of(&parsed[1]),
        imports::Side::of(&parsed[2]),
    ];
    let mut decisions = Vec::new();
    let mut content = String::new();
    let mut conflicts = 0;
    let tail_start = match &sides {
        [Some(b), Some(o), Some(t)] => {
            let head = merge_text(
                &base[..b.block.start],
                &ours[..o.block.start],
                &theirs[..t.block.start],
                options,
            );
            content.push_str(&head.content);
            conflicts += head.conflicts;
            match imports::merge(b, o, t) {
                Some(merged) => {
                    content.push_str(&merged.block);
                    decisions.extend(merged.decisions);
                }
                None => {
                    let block = merge_text(b.block_text(), o.block_text(), t.block_text(), options);
                    content.push_str(&block.content);
                    conflicts += block.conflicts;
                }
            }
            [b.block.end, o.block.end, t.block.end]
        }
        // A version without one block of imports: no set merge, the whole file by lines.
        _ => [0; 3],
    };
    let mut unions = 0;
    let tail = merge_text_settling(
        &base[tail_start[0]..],
        &ours[tail_start[1]..],
        &theirs[tail_start[2]..],
        options,
        &mut |b, o, t| {
            let union = registrations::union_of_insertions(dialect, b, o, t);
            unions += usize::from(union.is_some());
            union
        },
    );
    content.push_str(&tail.content);
    conflicts += tail.conflicts;
    if unions > 0 {
        decisions.push(format!(
            "both sides added registrations at one place ({unions} place{}): yours first, then upstream's",
            if unions == 1 { "" } else { "s" }
        ));
    }
    if conflicts == 0
        && let Some(deduplicated) =
            registrations::deduplicate(dialect, [&parsed[1], &parsed[2]], &content)
    {
        content = deduplicated.content;
        decisions.extend(deduplicated.decisions);
    }
    Some(ScriptMerge {
        content,
        conflicts,
        decisions,
    })
}
