//! Renames upstream made between base and theirs, found by content similarity.

use similar::TextDiff;
use uplift_tree::{RelPath, Tree};

/// Upstream moved `from` (in base) to `to` (in theirs).
#[derive(Debug, Clone, PartialEq)]
pub struct Rename {
    pub from: RelPath,
    pub to: RelPath,
    /// 1.0 for identical content.
    pub similarity: f32,
}

/// Above this many deleted × added pairs only exact renames are looked for, so a template that
/// replaces thousands of files cannot make the plan quadratic.
const MAX_SIMILARITY_PAIRS: usize = 10_000;

/// Pairs paths deleted upstream with paths added upstream whose content is at least
/// `threshold` similar (git's default is 0.5). Each path is used at most once, best pairs first.
pub fn detect_renames(base: &Tree, theirs: &Tree, threshold: f32) -> Vec<Rename> {
    let deleted: Vec<_> = base
        .iter()
        .filter(|(path, _)| !theirs.contains(path))
        .collect();
    let added: Vec<_> = theirs
        .iter()
        .filter(|(path, _)| !base.contains(path))
        .collect();
    if deleted.is_empty() || added.is_empty() {
        return Vec::new();
    }
    let exact_only = deleted.len() * added.len() > MAX_SIMILARITY_PAIRS;
    let mut candidates = Vec::new();
    for (from, old) in &deleted {
        for (to, new) in &added {
            let similarity = if old.content == new.content {
                1.0
            } else if exact_only || old.is_binary() || new.is_binary() {
                continue;
            } else {
                match (old.text(), new.text()) {
                    (Some(a), Some(b)) => TextDiff::from_lines(a, b).ratio(),
                    _ => continue,
                }
            };
            if similarity >= threshold {
                candidates.push(Rename {
                    from: (*from).clone(),
                    to: (*to).clone(),
                    similarity,
                });
            }
        }
    }
    // Best first; ties broken by path so the result is deterministic.
    candidates.sort_by(|a, b| {
        b.similarity
            .total_cmp(&a.similarity)
            .then_with(|| same_name(b).cmp(&same_name(a)))
            .then_with(|| a.from.cmp(&b.from))
            .then_with(|| a.to.cmp(&b.to))
    });
    let mut used_from = std::collections::HashSet::new();
    let mut used_to = std::collections::HashSet::new();
    let mut renames = Vec::new();
    for rename in candidates {
        if used_from.contains(&rename.from) || used_to.contains(&rename.to) {
            continue;
        }
        used_from.insert(rename.from.clone());
        used_to.insert(rename.to.clone());
        renames.push(rename);
    }
    renames.sort_by(|a, b| a.to.cmp(&b.to));
    renames
}

/// A move that keeps the file name is a likelier rename than one that changes it.
fn same_name(rename: &Rename) -> bool {
    rename.from.file_name() == rename.to.file_name()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use uplift_tree::FileEntry;

    fn tree(files: &[(&str, &str)]) -> Tree {
        files
            .iter()
            .map(|(p, c)| (RelPath::new(*p).unwrap(), FileEntry::regular(c.as_bytes())))
            .collect()
    }

    #[test]
    fn finds_exact_and_similar_renames() {
        let body = "line 1\nline 2\nline 3\nline 4\nline 5\n";
        let base = tree(&[
            ("old/a.ts", body),
            ("gone.txt", "unrelated\n"),
            ("x.md", "same\n"),
        ]);
        let theirs = tree(&[
            ("new/a.ts", &format!("{body}line 6\n")),
            ("x2.md", "same\n"),
            ("other", "zzz\n"),
        ]);
        let renames = detect_renames(&base, &theirs, 0.5);
        let pairs: Vec<_> = renames
            .iter()
            .map(|r| (r.from.as_str(), r.to.as_str()))
            .collect();
        assert_eq!(pairs, [("old/a.ts", "new/a.ts"), ("x.md", "x2.md")]);
        assert_eq!(renames[1].similarity, 1.0);
    }
}
