//! Line-based three-way merge of text, on `similar`'s merge regions.
//!
//! `similar` computes the regions (unchanged, ours, theirs, both, conflict); this module renders
//! them with git-style markers and, optionally, settles one kind of false conflict: a region
//! where one side only inserted lines at the edge of lines the other side changed. There the
//! insertion keeps its place (before or after the changed lines) and nothing is lost.

use similar::{MergeResolution, TextMerge as SimilarMerge};

/// How conflicts are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConflictStyle {
    /// `<<<<<<<` ours `=======` theirs `>>>>>>>`.
    #[default]
    Merge,
    /// Also the common ancestor, after `|||||||`.
    Diff3,
}

/// The names written on conflict markers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    pub ours: String,
    pub base: String,
    pub theirs: String,
}

impl Default for Labels {
    fn default() -> Self {
        Self {
            ours: "app".into(),
            base: "base".into(),
            theirs: "upstream".into(),
        }
    }
}

/// Options of the text merge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextOptions {
    pub style: ConflictStyle,
    pub labels: Labels,
    /// Keep git's behaviour: report insertions next to changed lines as conflicts.
    pub no_adjacent_insertions: bool,
}

/// The result of merging one text file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextMerge {
    pub content: String,
    /// Conflicting regions left (each with markers in `content`).
    pub conflicts: usize,
    /// Regions `similar` reported as conflicts that were settled as edge insertions.
    pub settled_insertions: usize,
}

/// A rule that settles a conflicting region the generic rules leave: from the region's base,
/// ours and theirs lines, the lines to write instead of markers (the rule records its decision).
pub(crate) type Settle<'r> = &'r mut dyn FnMut(&[&str], &[&str], &[&str]) -> Option<String>;

/// Merges `ours` and `theirs`, both descended from `base`.
pub fn merge_text(base: &str, ours: &str, theirs: &str, options: &TextOptions) -> TextMerge {
    merge_text_settling(base, ours, theirs, options, &mut |_, _, _| None)
}

/// [`merge_text`], offering each conflicting region that no rule here settles to `settle`
/// (base, ours, theirs lines); `Some(text)` replaces the conflict (the structured merges' and
/// the syntax-aware merge's hook).
pub(crate) fn merge_text_settling(
    base: &str,
    ours: &str,
    theirs: &str,
    options: &TextOptions,
    settle: Settle<'_>,
) -> TextMerge {
    let merge = SimilarMerge::from_lines(base, ours, theirs);
    let mut out = Output::default();
    let mut conflicts = 0;
    let mut settled_insertions = 0;
    for region in merge.regions() {
        let lines = |side: Side| -> Vec<&str> {
            match side {
                Side::Base => region
                    .base_range()
                    .filter_map(|i| merge.base_line(i))
                    .collect(),
                Side::Ours => region
                    .ours_range()
                    .filter_map(|i| merge.ours_line(i))
                    .collect(),
                Side::Theirs => region
                    .theirs_range()
                    .filter_map(|i| merge.theirs_line(i))
                    .collect(),
            }
        };
        match region.resolution() {
            MergeResolution::Unchanged | MergeResolution::Ours | MergeResolution::Both => {
                out.extend(&lines(Side::Ours))
            }
            MergeResolution::Theirs => out.extend(&lines(Side::Theirs)),
            // `Conflict`, and any resolution a later `similar` adds: never guess, show both.
            _ => {
                let (base, ours, theirs) =
                    (lines(Side::Base), lines(Side::Ours), lines(Side::Theirs));
                let settled = (!options.no_adjacent_insertions)
                    .then(|| settle_edge_insertion(&base, &ours, &theirs))
                    .flatten();
                if let Some(settled) = settled {
                    out.extend(&settled);
                    settled_insertions += 1;
                    continue;
                }
                if let Some(settled) = settle(&base, &ours, &theirs) {
                    out.text.push_str(&settled);
                    continue;
                }
                conflicts += 1;
                out.conflict(&base, &ours, &theirs, options);
            }
        }
    }
    TextMerge {
        content: out.text,
        conflicts,
        settled_insertions,
    }
}

/// One conflict written with markers: `ours` and `theirs` (and `base` with diff3) as they are.
pub(crate) fn conflict_block(
    base: &str,
    ours: &str,
    theirs: &str,
    options: &TextOptions,
) -> String {
    let (base, ours, theirs): (Vec<&str>, Vec<&str>, Vec<&str>) = (
        base.split_inclusive('\n').collect(),
        ours.split_inclusive('\n').collect(),
        theirs.split_inclusive('\n').collect(),
    );
    let mut out = Output::default();
    out.conflict(&base, &ours, &theirs, options);
    out.text
}

/// Decides one line both sides changed: from base, ours and theirs (without their line break),
/// the line to write and the plan's words for the decision.
pub(crate) type LineRule<'r> = &'r mut dyn FnMut(&str, &str, &str) -> Option<(String, String)>;

/// A conflicting region settled line by line: the three sides have as many lines, and on each
/// line both sides agree or `rule` decides between their two changes. A line only one side
/// changed next to the other's change keeps the region a conflict, as adjacent changes are.
pub(crate) fn settle_line_by_line(
    base: &[&str],
    ours: &[&str],
    theirs: &[&str],
    rule: LineRule<'_>,
) -> Option<(String, Vec<String>)> {
    if base.len() != ours.len() || base.len() != theirs.len() {
        return None;
    }
    let mut out = String::new();
    let mut decisions = Vec::new();
    for ((base, ours), theirs) in base.iter().zip(ours).zip(theirs) {
        if ours == theirs {
            out.push_str(ours);
        } else if base == ours || base == theirs {
            return None;
        } else {
            // The rule sees the lines without their break; the app's break is kept.
            let content =
                |line: &'_ str| -> String { line.trim_end_matches(['\n', '\r']).to_string() };
            let (line, decision) = rule(&content(base), &content(ours), &content(theirs))?;
            out.push_str(&line);
            out.push_str(&ours[content(ours).len()..]);
            decisions.push(decision);
        }
    }
    Some((out, decisions))
}

#[derive(Clone, Copy)]
enum Side {
    Base,
    Ours,
    Theirs,
}

/// When one side is `prefix + base + suffix` (it only inserted at the edges) and the other
/// replaced `base`, the result is `prefix + other + suffix`. Anything else stays a conflict.
///
/// An empty `base` is not settled: both sides inserting at the same place has no safe order.
fn settle_edge_insertion<'a>(
    base: &[&'a str],
    ours: &[&'a str],
    theirs: &[&'a str],
) -> Option<Vec<&'a str>> {
    if base.is_empty() {
        return None;
    }
    let wrap = |inserted: &[&'a str], changed: &[&'a str]| -> Option<Vec<&'a str>> {
        let start = find_subslice(inserted, base)?;
        let (prefix, suffix) = (&inserted[..start], &inserted[start + base.len()..]);
        if prefix.is_empty() && suffix.is_empty() {
            return None;
        }
        // Only pure insertions: the inserting side must not also be a change of `base` lines
        // that happen to reappear; `find_subslice` takes the first match, and the check below
        // refuses ambiguous placements.
        if find_subslice(&inserted[start + 1..], base).is_some() {
            return None;
        }
        Some(
            prefix
                .iter()
                .chain(changed)
                .chain(suffix)
                .copied()
                .collect(),
        )
    };
    let from_ours = wrap(ours, theirs);
    let from_theirs = wrap(theirs, ours);
    match (from_ours, from_theirs) {
        (Some(result), None) | (None, Some(result)) => Some(result),
        _ => None,
    }
}

fn find_subslice(haystack: &[&str], needle: &[&str]) -> Option<usize> {
    if needle.len() > haystack.len() {
        return None;
    }
    (0..=haystack.len() - needle.len()).find(|&i| haystack[i..i + needle.len()] == *needle)
}

#[derive(Default)]
struct Output {
    text: String,
}

impl Output {
    fn extend(&mut self, lines: &[&str]) {
        for line in lines {
            self.text.push_str(line);
        }
    }

    fn ensure_line_start(&mut self) {
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            self.text.push('\n');
        }
    }

    fn marker(&mut self, marker: char, label: &str) {
        self.ensure_line_start();
        self.text.extend(std::iter::repeat_n(marker, 7));
        if !label.is_empty() {
            self.text.push(' ');
            self.text.push_str(label);
        }
        self.text.push('\n');
    }

    fn conflict(&mut self, base: &[&str], ours: &[&str], theirs: &[&str], options: &TextOptions) {
        self.marker('<', &options.labels.ours);
        self.extend(ours);
        if options.style == ConflictStyle::Diff3 {
            self.marker('|', &options.labels.base);
            self.extend(base);
        }
        self.marker('=', "");
        self.extend(theirs);
        self.marker('>', &options.labels.theirs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merge(base: &str, ours: &str, theirs: &str) -> TextMerge {
        merge_text(base, ours, theirs, &TextOptions::default())
    }

    #[test]
    fn independent_changes_merge() {
        let result = merge("a\nb\nc\nd\ne\n", "A\nb\nc\nd\ne\n", "a\nb\nc\nd\nE\n");
        assert_eq!(
            (result.content.as_str(), result.conflicts),
            ("A\nb\nc\nd\nE\n", 0)
        );
    }

    #[test]
    fn overlapping_changes_conflict_with_git_markers() {
        let result = merge("a\nb\nc\n", "a\nB1\nc\n", "a\nB2\nc\n");
        assert_eq!(result.conflicts, 1);
        assert_eq!(
            result.content,
            "a\n<<<<<<< app\nB1\n=======\nB2\n>>>>>>> upstream\nc\n"
        );
        let diff3 = merge_text(
            "a\nb\nc\n",
            "a\nB1\nc\n",
            "a\nB2\nc\n",
            &TextOptions {
                style: ConflictStyle::Diff3,
                ..TextOptions::default()
            },
        );
        assert_eq!(
            diff3.content,
            "a\n<<<<<<< app\nB1\n||||||| base\nb\n=======\nB2\n>>>>>>> upstream\nc\n"
        );
    }

    #[test]
    fn an_insertion_next_to_a_changed_line_is_placed() {
        // The app added a line right below one that upstream changed.
        let base = "one\nport: 3000\nthree\n";
        let ours = "one\nport: 3000\nhost: example\nthree\n";
        let theirs = "one\nport: 7007\nthree\n";
        let result = merge(base, ours, theirs);
        assert_eq!(result.conflicts, 0, "{}", result.content);
        assert_eq!(result.content, "one\nport: 7007\nhost: example\nthree\n");
        let git_like = merge_text(
            base,
            ours,
            theirs,
            &TextOptions {
                no_adjacent_insertions: true,
                ..Default::default()
            },
        );
        assert_eq!(git_like.conflicts, 1);
    }

    #[test]
    fn both_inserting_at_one_place_stays_a_conflict() {
        let result = merge("a\nc\n", "a\nb1\nc\n", "a\nb2\nc\n");
        assert_eq!(result.conflicts, 1);
    }

    #[test]
    fn a_rule_settles_only_regions_where_every_difference_is_its_to_decide() {
        let mut higher = |_: &str, o: &str, t: &str| -> Option<(String, String)> {
            let (o, t) = (o.strip_prefix("v=")?, t.strip_prefix("v=")?);
            let kept = if t > o { t } else { o };
            Some((format!("v={kept}"), format!("kept {kept}")))
        };
        let settled = settle_line_by_line(&["v=1\n"], &["v=2\r\n"], &["v=3\n"], &mut higher);
        assert_eq!(
            settled,
            Some(("v=3\r\n".to_string(), vec!["kept 3".to_string()]))
        );
        // The app's change of the next line is adjacent to the bump: still a conflict.
        let adjacent = settle_line_by_line(
            &["v=1\n", "run a\n"],
            &["v=2\n", "run b\n"],
            &["v=3\n", "run a\n"],
            &mut higher,
        );
        assert_eq!(adjacent, None);
        let mut settle = |b: &[&str], o: &[&str], t: &[&str]| {
            settle_line_by_line(b, o, t, &mut higher).map(|(text, _)| text)
        };
        let merged = merge_text_settling(
            "x\nv=1\ny\n",
            "x\nv=2\ny\n",
            "x\nv=3\ny\n",
            &TextOptions::default(),
            &mut settle,
        );
        assert_eq!(
            (merged.content.as_str(), merged.conflicts),
            ("x\nv=3\ny\n", 0)
        );
    }

    #[test]
    fn a_missing_final_newline_does_not_glue_markers() {
        let result = merge("x", "y", "z");
        assert_eq!(
            result.content,
            "<<<<<<< app\ny\n=======\nz\n>>>>>>> upstream\n"
        );
    }
}
