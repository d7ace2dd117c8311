//! A mapping-key merge of YAML configuration, used where the text merge conflicts.
//!
//! The YAML parser (`saphyr-parser`) gives the line of every key of the root mapping; each key
//! owns the text from its line to the next key's (comment lines just above a key belong to that
//! key). Entries are then merged like a map, and where both sides changed one entry:
//! - its comments and its value merge as separate changes (upstream's new comment above a value
//!   the app changed takes both);
//! - a value that is itself a block mapping merges the same way, recursively;
//! - `yarnPath` bumped on both sides keeps the higher release (see `versions`);
//! - anything else is a local conflict: markers enclose that key's lines only, and the rest of
//!   the document still merges.
//!
//! Text is only ever spliced, never re-serialized, so comments, quoting and layout survive.

use saphyr_parser::{Event, Parser};

use crate::text::{TextOptions, conflict_block, merge_text_settling, settle_line_by_line};
use crate::versions::{keep_higher, release_path};

/// A key merge: the text, what it decided, and where conflict markers were left: the keys'
/// dotted paths (or, for comments before a mapping's first key, words saying so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlMerge {
    pub content: String,
    pub decisions: Vec<String>,
    pub conflicts: Vec<String>,
}

/// Merges three YAML texts key by key; `None` when a document is not a single block mapping.
/// Entries that conflict are written with `options`' markers.
pub fn merge_yaml(
    base: &str,
    ours: &str,
    theirs: &str,
    options: &TextOptions,
) -> Option<YamlMerge> {
    let mut merge = Merge {
        options,
        decisions: Vec::new(),
        conflicts: Vec::new(),
    };
    let content = merge.mapping(base, ours, theirs, "")?;
    Some(YamlMerge {
        content,
        decisions: merge.decisions,
        conflicts: merge.conflicts,
    })
}

/// A block mapping split into the text before its first key and one block per key.
struct Split {
    header: String,
    entries: Vec<(String, String)>,
}

impl Split {
    fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, block)| block.as_str())
    }
}

/// The keys of the root mapping with their 0-based lines and columns, from the parser's events.
fn root_keys(text: &str) -> Option<Vec<(String, usize, usize)>> {
    let mut keys = Vec::new();
    let mut depth = 0usize;
    let mut documents = 0;
    // In the root mapping: whether the next node is a key (else a value).
    let mut at_key = false;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.ok()?;
        match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return None;
                }
            }
            Event::MappingStart(..) if depth == 0 => {
                depth = 1;
                at_key = true;
            }
            Event::SequenceStart(..) if depth == 0 => return None,
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                if depth == 1 && at_key {
                    return None; // a complex key
                }
                depth += 1;
            }
            Event::MappingEnd | Event::SequenceEnd => {
                depth = depth.checked_sub(1)?;
                if depth == 1 {
                    at_key = true; // a nested value ended: a key comes next
                }
            }
            Event::Scalar(value, ..) if depth == 1 => {
                if at_key {
                    keys.push((
                        value.into_owned(),
                        span.start.line().checked_sub(1)?,
                        span.start.col(),
                    ));
                }
                at_key = !at_key;
            }
            Event::Alias(_) if depth == 1 => {
                if at_key {
                    return None;
                }
                at_key = true;
            }
            _ => {}
        }
    }
    // A flow mapping (`{a: 1}`) has all its keys on one line: not splittable into blocks.
    let column = keys.first().map(|k| k.2)?;
    let distinct_lines = keys.windows(2).all(|w| w[0].1 < w[1].1);
    (keys.iter().all(|k| k.2 == column) && distinct_lines).then_some(keys)
}

fn is_comment_or_blank(line: &str) -> bool {
    let trimmed = line.trim();
    trimmed.is_empty() || trimmed.starts_with('#')
}

fn split(text: &str) -> Option<Split> {
    let keys = root_keys(text)?;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut starts: Vec<usize> = keys.iter().map(|k| k.1).collect();
    // Comment and blank lines right above a key belong to that key. Above the first key, only
    // the comments after the last blank line do: what is before is the file's own header.
    for (index, start) in starts.iter_mut().enumerate() {
        let belongs = |line: &str| match index {
            0 => line.trim_start().starts_with('#'),
            _ => is_comment_or_blank(line),
        };
        while *start > 0 && belongs(lines[*start - 1]) {
            *start -= 1;
        }
    }
    let mut ends: Vec<usize> = starts.iter().skip(1).copied().collect();
    ends.push(lines.len());
    if starts.windows(2).any(|w| w[0] >= w[1]) {
        return None;
    }
    let header = lines[..starts[0]].concat();
    let entries = keys
        .into_iter()
        .zip(starts.iter().zip(&ends))
        .map(|((key, ..), (&start, &end))| (key, lines[start..end].concat()))
        .collect();
    Some(Split { header, entries })
}

/// Comment and blank lines at the start of an entry, and the rest (its key line and value).
fn leading_comments(block: &str) -> (&str, &str) {
    let mut at = 0;
    for line in block.split_inclusive('\n') {
        if !is_comment_or_blank(line) {
            break;
        }
        at += line.len();
    }
    block.split_at(at)
}

/// An entry whose value is a block mapping: its key line, and the value's lines.
fn key_line_and_body(entry: &str) -> Option<(&str, &str)> {
    let end = entry.find('\n').map_or(entry.len(), |i| i + 1);
    let (key_line, body) = entry.split_at(end);
    let value = key_line.split_once(':')?.1.trim();
    (value.is_empty() || value.starts_with('#')).then_some((key_line, body))
}

/// A `yarnPath: <release file>` line changed on both sides: the higher release.
fn higher_release_line(_base: &str, ours: &str, theirs: &str) -> Option<(String, String)> {
    let (ours_key, ours_value) = ours.split_once(':')?;
    let (theirs_key, theirs_value) = theirs.split_once(':')?;
    if ours_key != theirs_key || ours_key.trim() != "yarnPath" {
        return None;
    }
    let kept = keep_higher(
        ours_key.trim(),
        ours_value.trim(),
        theirs_value.trim(),
        release_path,
    )?;
    Some((format!("{ours_key}: {}", kept.value), kept.decision))
}

struct Merge<'o> {
    options: &'o TextOptions,
    decisions: Vec<String>,
    conflicts: Vec<String>,
}

impl Merge<'_> {
    /// `None` when a side is not a block mapping this module can split.
    fn mapping(&mut self, base: &str, ours: &str, theirs: &str, prefix: &str) -> Option<String> {
        // A key both sides added has no base: its mapping merges as if it had been empty (as in
        // `json`). A whole file both sides added stays the caller's add/add conflict.
        let base = if !prefix.is_empty() && base.lines().all(is_comment_or_blank) {
            Split {
                header: base.to_string(),
                entries: Vec::new(),
            }
        } else {
            split(base)?
        };
        let (ours, theirs) = (split(ours)?, split(theirs)?);
        // Not a key: a location with words (see `structured`).
        let where_header = if prefix.is_empty() {
            "the lines at the top of the file".to_string()
        } else {
            format!("the lines above the first key of `{prefix}`")
        };
        let header = self.lines(&base.header, &ours.header, &theirs.header, &where_header);
        // The app's keys in the app's order; upstream's other keys (new ones, and those the app
        // deleted, which the merge below may keep deleted) after their upstream neighbour.
        let mut order: Vec<&str> = ours.entries.iter().map(|(k, _)| k.as_str()).collect();
        for (index, (key, _)) in theirs.entries.iter().enumerate() {
            if ours.get(key).is_some() {
                continue;
            }
            let previous = theirs.entries[..index]
                .iter()
                .rev()
                .find_map(|(p, _)| order.iter().position(|k| k == p));
            order.insert(previous.map_or(0, |p| p + 1), key);
        }
        let mut out = header;
        for key in order {
            let path = if prefix.is_empty() {
                key.to_string()
            } else {
                format!("{prefix}.{key}")
            };
            let (b, o, t) = (base.get(key), ours.get(key), theirs.get(key));
            let merged = match (b, o, t) {
                _ if o == t || b == t => o.unwrap_or_default().to_string(),
                _ if b == o => t.unwrap_or_default().to_string(),
                (b, o, t) => self.entry(
                    b.unwrap_or_default(),
                    o.unwrap_or_default(),
                    t.unwrap_or_default(),
                    &path,
                ),
            };
            out.push_str(&merged);
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
        }
        Some(out)
    }

    /// One entry both sides changed: its comments and its value as separate changes.
    fn entry(&mut self, base: &str, ours: &str, theirs: &str, path: &str) -> String {
        if let Some(text) = self.clean(base, ours, theirs) {
            return text;
        }
        let (base_comments, base_rest) = leading_comments(base);
        let (ours_comments, ours_rest) = leading_comments(ours);
        let (theirs_comments, theirs_rest) = leading_comments(theirs);
        let Some(comments) = self.clean(base_comments, ours_comments, theirs_comments) else {
            // Both rewrote the comment: the whole entry is the conflict.
            return self.conflict(base, ours, theirs, path);
        };
        let conflicts_before = self.conflicts.len();
        let value = self.value(base_rest, ours_rest, theirs_rest, path);
        let upstream_comment = theirs_comments != base_comments && ours_comments == base_comments;
        if upstream_comment && ours_rest != base_rest && self.conflicts.len() == conflicts_before {
            self.decisions
                .push(format!("`{path}`: upstream's comment above it, your value"));
        }
        comments + &value
    }

    /// An entry's key line and value, changed on both sides.
    fn value(&mut self, base: &str, ours: &str, theirs: &str, path: &str) -> String {
        if let Some(text) = self.clean(base, ours, theirs) {
            return text;
        }
        if let (Some((ours_key, ours_body)), Some((theirs_key, theirs_body))) =
            (key_line_and_body(ours), key_line_and_body(theirs))
        {
            let (base_key, base_body) = key_line_and_body(base).unwrap_or_default();
            let key_line = self.clean(base_key, ours_key, theirs_key);
            let decided = self.decisions.len();
            let conflicts = self.conflicts.len();
            let body = key_line
                .as_ref()
                .and_then(|_| self.mapping(base_body, ours_body, theirs_body, path));
            if let (Some(key_line), Some(body)) = (key_line, body) {
                if self.conflicts.len() == conflicts {
                    self.decisions.push(format!("merged `{path}` key by key"));
                }
                return key_line + &body;
            }
            self.decisions.truncate(decided);
            self.conflicts.truncate(conflicts);
        }
        self.conflict(base, ours, theirs, path)
    }

    /// The lines before a mapping's first key: merged as text, or one conflict.
    fn lines(&mut self, base: &str, ours: &str, theirs: &str, location: &str) -> String {
        match self.clean(base, ours, theirs) {
            Some(text) => text,
            None => self.conflict(base, ours, theirs, location),
        }
    }

    /// The text merge of a part, when it is clean (a `yarnPath` bump on both sides counts).
    fn clean(&mut self, base: &str, ours: &str, theirs: &str) -> Option<String> {
        let mut decisions = Vec::new();
        let mut settle = |b: &[&str], o: &[&str], t: &[&str]| {
            let (text, decided) = settle_line_by_line(b, o, t, &mut higher_release_line)?;
            decisions.extend(decided);
            Some(text)
        };
        let merged = merge_text_settling(base, ours, theirs, &TextOptions::default(), &mut settle);
        (merged.conflicts == 0).then(|| {
            self.decisions.extend(decisions);
            merged.content
        })
    }

    /// One conflict: markers around this part's lines only.
    fn conflict(&mut self, base: &str, ours: &str, theirs: &str, path: &str) -> String {
        self.conflicts.push(path.to_string());
        conflict_block(base, ours, theirs, self.options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::merge_text;

    fn merge_yaml(base: &str, ours: &str, theirs: &str) -> Option<YamlMerge> {
        super::merge_yaml(base, ours, theirs, &TextOptions::default())
    }

    const BASE: &str = "# top comment\napp:\n  title: Portal\n\nbackend:\n  baseUrl: http://localhost:7007\n  listen:\n    port: 7007\n  # the database\n  database:\n    client: pg\n";

    #[test]
    fn both_add_keys_at_the_same_place_keeping_comments() {
        let ours = BASE.replace(
            "    port: 7007\n",
            "    port: 7007\n  auth:\n    keys:\n      - secret: x # ours\n",
        );
        let theirs = BASE.replace(
            "    port: 7007\n",
            "    port: 7007\n  reading:\n    allow: [] # upstream\n",
        );
        assert!(merge_text(BASE, &ours, &theirs, &TextOptions::default()).conflicts > 0);
        let merged = merge_yaml(BASE, &ours, &theirs).unwrap();
        assert_eq!(
            merged.content,
            "# top comment\napp:\n  title: Portal\n\nbackend:\n  baseUrl: http://localhost:7007\n  listen:\n    port: 7007\n  reading:\n    allow: [] # upstream\n  auth:\n    keys:\n      - secret: x # ours\n  # the database\n  database:\n    client: pg\n"
        );
        assert_eq!(merged.decisions, ["merged `backend` key by key"]);
    }

    #[test]
    fn one_conflicting_key_among_merged_ones_is_a_local_conflict() {
        let ours = BASE
            .replace("title: Portal", "title: Ours")
            .replace("    client: pg\n", "    client: pg\n    pool: 5\n");
        let theirs = BASE
            .replace("title: Portal", "title: Theirs")
            .replace("    port: 7007\n", "    port: 7007\n    host: 0.0.0.0\n");
        let merged = merge_yaml(BASE, &ours, &theirs).unwrap();
        assert_eq!(merged.conflicts, ["app.title"]);
        assert_eq!(
            merged.content,
            "# top comment\napp:\n<<<<<<< app\n  title: Ours\n=======\n  title: Theirs\n>>>>>>> upstream\n\nbackend:\n  baseUrl: http://localhost:7007\n  listen:\n    port: 7007\n    host: 0.0.0.0\n  # the database\n  database:\n    client: pg\n    pool: 5\n"
        );
    }

    #[test]
    fn a_key_deleted_on_one_side_and_changed_on_the_other_is_a_local_conflict() {
        let ours = BASE.replace("  baseUrl: http://localhost:7007\n", "");
        let theirs = BASE
            .replace("localhost:7007", "localhost:7008")
            .replace("title: Portal", "title: Theirs");
        let merged = merge_yaml(BASE, &ours, &theirs).unwrap();
        assert_eq!(merged.conflicts, ["backend.baseUrl"], "{}", merged.content);
        assert!(
            merged.content.contains(
                "backend:\n<<<<<<< app\n=======\n  baseUrl: http://localhost:7008\n>>>>>>> upstream\n  listen:"
            ),
            "{}",
            merged.content
        );
        assert!(merged.content.contains("title: Theirs"));
    }

    /// Backstage's `auth.providers`: the app changed a provider's value, upstream rewrote the
    /// comment above it and added sibling providers after it.
    #[test]
    fn a_comment_upstream_changed_above_a_value_the_app_changed_takes_both() {
        let base = "app:\n  title: Portal\n\nauth:\n  # see https://backstage.io/docs/auth/ to learn about auth providers\n  providers:\n    github:\n      development: {}\n    # See https://backstage.io/docs/auth/guest/provider\n    guest: {}\n\ncatalog:\n  rules: []\n";
        let ours = base.replace(
            "    guest: {}\n",
            "    guest:\n      dangerouslyAllowOutsideDevelopment: true\n",
        );
        let theirs = base.replace(
            "    # See https://backstage.io/docs/auth/guest/provider\n    guest: {}\n",
            "    # See https://backstage.io/docs/auth/guest/provider\n    # The guest provider is for development only.\n    guest: {}\n    # See https://backstage.io/docs/auth/microsoft/provider\n    microsoft: {}\n",
        ).replace("    # See https://backstage.io/docs/auth/guest", "    # See https://backstage.io/docs/auth/guest/ (updated)");
        assert!(merge_text(base, &ours, &theirs, &TextOptions::default()).conflicts > 0);
        let merged = merge_yaml(base, &ours, &theirs).unwrap();
        assert!(merged.conflicts.is_empty(), "{}", merged.content);
        assert_eq!(
            merged.content,
            "app:\n  title: Portal\n\nauth:\n  # see https://backstage.io/docs/auth/ to learn about auth providers\n  providers:\n    github:\n      development: {}\n    # See https://backstage.io/docs/auth/guest/ (updated)/provider\n    # The guest provider is for development only.\n    guest:\n      dangerouslyAllowOutsideDevelopment: true\n    # See https://backstage.io/docs/auth/microsoft/provider\n    microsoft: {}\n\ncatalog:\n  rules: []\n"
        );
        assert_eq!(
            merged.decisions,
            [
                "`auth.providers.guest`: upstream's comment above it, your value",
                "merged `auth.providers` key by key",
                "merged `auth` key by key",
            ]
        );
    }

    #[test]
    fn both_sides_bumping_yarn_keep_the_higher_release_next_to_the_apps_plugins() {
        let base = "nodeLinker: node-modules\n\nyarnPath: .yarn/releases/yarn-4.4.1.cjs\n";
        let ours = "nodeLinker: node-modules\n\nplugins:\n  - checksum: 4b4f\n    path: .yarn/plugins/@yarnpkg/plugin-backstage.cjs\n    spec: \"https://versions.backstage.io/v1/tags/main/yarn-plugin\"\n\nyarnPath: .yarn/releases/yarn-4.5.0.cjs\n";
        let theirs = base.replace("4.4.1", "4.13.0");
        assert!(merge_text(base, ours, &theirs, &TextOptions::default()).conflicts > 0);
        let merged = merge_yaml(base, ours, &theirs).unwrap();
        assert_eq!(merged.content, ours.replace("4.5.0", "4.13.0"));
        assert_eq!(
            merged.decisions,
            [
                "yarnPath: kept upstream's \".yarn/releases/yarn-4.13.0.cjs\" (higher than \".yarn/releases/yarn-4.5.0.cjs\")"
            ]
        );
        // A different release file is not a version of the same one.
        let ours = ours.replace(".yarn/releases/yarn-4.5.0.cjs", "tools/yarn-4.5.0.cjs");
        assert_eq!(
            merge_yaml(base, &ours, &theirs).unwrap().conflicts,
            ["yarnPath"]
        );
    }

    #[test]
    fn a_key_both_sides_added_merges_key_by_key_but_a_file_both_added_does_not() {
        let base = "app:\n  title: Portal\n";
        let ours = format!("{base}auth:\n  providers:\n    github: {{}}\n");
        let theirs = format!("{base}auth:\n  session:\n    secret: x\n");
        let merged = merge_yaml(base, &ours, &theirs).unwrap();
        assert_eq!(
            merged.content,
            // Upstream's key has no upstream neighbour before it: it goes first.
            format!("{base}auth:\n  session:\n    secret: x\n  providers:\n    github: {{}}\n")
        );
        assert!(merge_yaml("", &ours, &theirs).is_none());
    }

    #[test]
    fn flow_mappings_and_sequences_are_not_split() {
        assert!(split("{a: 1, b: 2}\n").is_none());
        assert!(split("- a\n- b\n").is_none());
        assert!(split("a: 1\n---\nb: 2\n").is_none());
        let split = split("a: 1\n# about b\nb:\n  c: 2\n").unwrap();
        assert_eq!(
            split.entries[1],
            ("b".to_string(), "# about b\nb:\n  c: 2\n".to_string())
        );
    }
}
