//! The per-path decisions of a tree merge.

use std::collections::{BTreeMap, BTreeSet};

use uplift_tree::{Change, FileEntry, FileMode, RelPath, Tree};

use crate::line_endings::{self, LineEnding};
use crate::rename::detect_renames;
use crate::script::{self, Dialect};
use crate::structured::merge_structured;
use crate::text::{TextOptions, merge_text};
use crate::validate::{FileKind, check};
use crate::versions::release_files_of_one_thing;
use crate::{Action, FilePlan};

/// Options of a tree merge.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    pub text: TextOptions,
    /// Minimum similarity (0..=1) for a delete + add upstream to count as a rename.
    pub rename_threshold: f32,
    /// File names that are never merged, only regenerated.
    pub lockfiles: Vec<String>,
    /// Suffix of the file that receives upstream's version of a binary conflict.
    pub upstream_copy_suffix: String,
    /// Merge JSON key by key where its lines conflict.
    pub structured: bool,
}

impl Default for MergeOptions {
    fn default() -> Self {
        Self {
            text: TextOptions::default(),
            rename_threshold: 0.5,
            lockfiles: [
                "yarn.lock",
                "package-lock.json",
                "pnpm-lock.yaml",
                "Cargo.lock",
            ]
            .map(String::from)
            .to_vec(),
            upstream_copy_suffix: ".upstream".to_string(),
            structured: true,
        }
    }
}

/// The plan (one entry per path upstream changed) and the changes that carry it out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeOutcome {
    pub files: Vec<FilePlan>,
    pub changes: Vec<Change>,
}

/// The paths whose app version the merge needs: those upstream changed between base and theirs.
/// Reading only these keeps the cost proportional to the template's change, not the app's size.
pub fn paths_to_read(base: &Tree, theirs: &Tree) -> BTreeSet<RelPath> {
    let mut paths = BTreeSet::new();
    for (path, entry) in base.iter() {
        if theirs.get(path).is_none_or(|new| !new.same_as(entry)) {
            paths.insert(path.clone());
        }
    }
    for path in theirs.paths() {
        if !base.contains(path) {
            paths.insert(path.clone());
        }
    }
    paths
}

/// Merges upstream's change (base → theirs) into `ours`, which must hold the app's entries for
/// every path of [`paths_to_read`] (a missing one means the app has no such file).
pub fn merge_trees(
    base: &Tree,
    theirs: &Tree,
    ours: &Tree,
    options: &MergeOptions,
) -> MergeOutcome {
    let mut renames = detect_renames(base, theirs, options.rename_threshold);
    renames.retain(|r| !release_files_of_one_thing(r.from.as_str(), r.to.as_str()));
    let renamed_to: BTreeMap<&RelPath, &RelPath> =
        renames.iter().map(|r| (&r.to, &r.from)).collect();
    let renamed_from: BTreeSet<&RelPath> = renames.iter().map(|r| &r.from).collect();
    let mut outcome = MergeOutcome::default();
    for path in paths_to_read(base, theirs) {
        if renamed_from.contains(&path) {
            continue; // handled with its new path
        }
        match renamed_to.get(&path) {
            Some(from) => merge_renamed(from, &path, base, theirs, ours, options, &mut outcome),
            None => merge_path(
                &path,
                base.get(&path),
                theirs.get(&path),
                ours.get(&path),
                options,
                &mut outcome,
            ),
        }
    }
    outcome.files.sort_by(|a, b| a.path.cmp(&b.path));
    outcome
}

fn same(a: Option<&FileEntry>, b: Option<&FileEntry>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.same_as(b) || line_endings::same_but_line_endings(a, b),
        (None, None) => true,
        _ => false,
    }
}

fn is_lockfile(path: &RelPath, options: &MergeOptions) -> bool {
    options
        .lockfiles
        .iter()
        .any(|name| name == path.file_name())
}

fn merge_path(
    path: &RelPath,
    base: Option<&FileEntry>,
    theirs: Option<&FileEntry>,
    ours: Option<&FileEntry>,
    options: &MergeOptions,
    outcome: &mut MergeOutcome,
) {
    let plan = |action| FilePlan::new(path.clone(), action);
    if same(ours, theirs) {
        outcome.files.push(plan(Action::UpToDate));
        return;
    }
    // A lockfile the app never changed can take upstream's; any other is regenerated, not merged.
    if is_lockfile(path, options) && !same(ours, base) {
        outcome.files.push(
            plan(Action::Regenerate)
                .with_reason("lockfile: never merged; regenerate it with the package manager"),
        );
        return;
    }
    if same(ours, base) {
        let (action, change) = match theirs {
            Some(entry) => {
                let action = if base.is_some() {
                    Action::Update
                } else {
                    Action::Add
                };
                (
                    action,
                    Change::Write {
                        path: path.clone(),
                        entry: line_endings::like_app(entry, base, ours),
                    },
                )
            }
            None => (Action::Delete, Change::Delete { path: path.clone() }),
        };
        let mut file = plan(action);
        file.mode_change = mode_change(base, theirs);
        outcome.files.push(file);
        outcome.changes.push(change);
        return;
    }
    // Both sides changed the path.
    match (base, ours, theirs) {
        (Some(_), Some(_), None) => outcome.files.push(FilePlan::conflict(
            path.clone(),
            1,
            "upstream deleted this file, which you changed; your version is kept",
        )),
        (Some(_), None, Some(_)) => outcome.files.push(FilePlan::conflict(
            path.clone(),
            1,
            "you deleted this file, which upstream changed; it stays deleted",
        )),
        (base, Some(ours), Some(theirs)) => {
            let empty = FileEntry::regular(Vec::new());
            let base_entry = base.unwrap_or(&empty);
            merge_contents(
                path,
                None,
                base_entry,
                ours,
                theirs,
                base.is_none(),
                options,
                outcome,
            );
        }
        // Both deleted (ours == theirs == None) was handled as up to date; nothing else remains.
        _ => outcome.files.push(plan(Action::UpToDate)),
    }
}

fn merge_renamed(
    from: &RelPath,
    to: &RelPath,
    base: &Tree,
    theirs: &Tree,
    ours: &Tree,
    options: &MergeOptions,
    outcome: &mut MergeOutcome,
) {
    let (Some(base_entry), Some(theirs_entry)) = (base.get(from), theirs.get(to)) else {
        return;
    };
    let (ours_old, ours_new) = (ours.get(from), ours.get(to));
    let mut file = FilePlan::new(to.clone(), Action::Rename);
    file.renamed_from = Some(from.clone());
    match (ours_old, ours_new) {
        (_, Some(existing)) if existing.same_as(theirs_entry) => {
            file.action = Action::UpToDate;
            outcome.files.push(file);
        }
        (_, Some(_)) => {
            file.action = Action::Conflict;
            file.conflicts = 1;
            file.reason = Some(format!(
                "upstream renamed {from} to {to}, but the app already has a different {to}; both kept as they are"
            ));
            outcome.files.push(file);
        }
        (None, None) => {
            file.action = Action::Conflict;
            file.conflicts = 1;
            file.reason = Some(format!(
                "you deleted {from}, which upstream renamed to {to}; it stays deleted"
            ));
            outcome.files.push(file);
        }
        (Some(old), None) if old.same_as(base_entry) => {
            file.mode_change = mode_change(Some(base_entry), Some(theirs_entry));
            outcome.files.push(file);
            outcome.changes.push(Change::Delete { path: from.clone() });
            outcome.changes.push(Change::Write {
                path: to.clone(),
                entry: theirs_entry.clone(),
            });
        }
        (Some(old), None) => {
            merge_contents(
                to,
                Some(from),
                base_entry,
                old,
                theirs_entry,
                false,
                options,
                outcome,
            );
        }
    }
}

/// Both sides changed one file (possibly renamed upstream): merge contents and modes.
#[allow(clippy::too_many_arguments)]
fn merge_contents(
    path: &RelPath,
    renamed_from: Option<&RelPath>,
    base: &FileEntry,
    ours: &FileEntry,
    theirs: &FileEntry,
    added_on_both_sides: bool,
    options: &MergeOptions,
    outcome: &mut MergeOutcome,
) {
    let mut file = FilePlan::new(path.clone(), Action::Merge);
    file.renamed_from = renamed_from.cloned();
    let mode = merged_mode(base.mode, ours.mode, theirs.mode);
    if mode != ours.mode {
        file.mode_change = Some(format!("{} -> {}", ours.mode.as_str(), mode.as_str()));
    }
    let texts = (base.text(), ours.text(), theirs.text());
    let symlink = [base.mode, ours.mode, theirs.mode].contains(&FileMode::Symlink);
    let (Some(base_text), Some(ours_text), Some(theirs_text), false) =
        (texts.0, texts.1, texts.2, symlink)
    else {
        // Binary or symlink: keep the app's, put upstream's beside it.
        let copy = path.with_suffix(&options.upstream_copy_suffix);
        file.action = Action::Conflict;
        file.conflicts = 1;
        file.mode_change = None;
        file.reason = Some(format!(
            "binary file changed on both sides: yours is kept, upstream's is written to {copy}"
        ));
        file.upstream_copy = Some(copy.clone());
        if let Some(from) = renamed_from {
            outcome.changes.push(Change::Delete { path: from.clone() });
            outcome.changes.push(Change::Write {
                path: path.clone(),
                entry: ours.clone(),
            });
        }
        outcome.changes.push(Change::Write {
            path: copy,
            entry: theirs.clone(),
        });
        outcome.files.push(file);
        return;
    };
    // Merged on LF lines; written back with the app's endings.
    let ending = LineEnding::of(ours_text);
    let (base_text, ours_text, theirs_text) = (
        &*line_endings::normalized(base_text),
        &*line_endings::normalized(ours_text),
        &*line_endings::normalized(theirs_text),
    );
    let merged = merge_text(base_text, ours_text, theirs_text, &options.text);
    let kind = FileKind::of(path);
    let mut content = merged.content;
    let mut conflicts = merged.conflicts;
    let mut notes = Vec::new();
    if merged.settled_insertions > 0 {
        notes.push(format!(
            "{} insertion{} next to upstream changes placed without conflict",
            merged.settled_insertions,
            if merged.settled_insertions == 1 {
                ""
            } else {
                "s"
            }
        ));
    }
    // Where lines conflict, a structured merge may still decide key by key.
    let text_valid = conflicts == 0 && check(kind, &content).is_ok();
    let structured = match kind {
        _ if !options.structured || text_valid => None,
        _ => merge_structured(path, kind, base_text, ours_text, theirs_text, &options.text),
    };
    if let Some(structured) = structured {
        content = structured.content;
        conflicts = structured.conflicts;
        notes = structured.notes;
    }
    // TypeScript/JavaScript: imports as sets, registrations once, where the lines conflict or
    // the clean result fails the script check.
    if let Some(dialect) = Dialect::of(path).filter(|_| options.structured)
        && let Some(merged) = script::improve(
            dialect,
            [base_text, ours_text, theirs_text],
            &options.text,
            &content,
            conflicts,
        )
    {
        content = merged.content;
        conflicts = merged.conflicts;
        notes.extend(merged.decisions);
    }
    if conflicts > 0 {
        file.action = Action::Conflict;
        file.conflicts = conflicts;
        notes.insert(
            0,
            if added_on_both_sides {
                "added on both sides with different contents".to_string()
            } else {
                format!(
                    "{conflicts} conflicting region{} between your changes and upstream's",
                    if conflicts == 1 { "" } else { "s" }
                )
            },
        );
    } else if let Err(reason) =
        script::check_merged(path, [base_text, ours_text, theirs_text], &content)
    {
        // Never report an invalid file as a clean merge.
        file.action = Action::Conflict;
        file.conflicts = 1;
        notes.insert(0, reason);
    }
    if !notes.is_empty() {
        file.reason = Some(notes.join("; "));
    }
    if let Some(from) = renamed_from {
        outcome.changes.push(Change::Delete { path: from.clone() });
    }
    outcome.changes.push(Change::Write {
        path: path.clone(),
        entry: FileEntry::new(mode, ending.apply(content).into_bytes()),
    });
    outcome.files.push(file);
}

/// Modes merge like any value: the side that changed it wins.
fn merged_mode(base: FileMode, ours: FileMode, theirs: FileMode) -> FileMode {
    if ours == base { theirs } else { ours }
}

fn mode_change(old: Option<&FileEntry>, new: Option<&FileEntry>) -> Option<String> {
    match (old, new) {
        (Some(old), Some(new)) if old.mode != new.mode => {
            Some(format!("{} -> {}", old.mode.as_str(), new.mode.as_str()))
        }
        _ => None,
    }
}
