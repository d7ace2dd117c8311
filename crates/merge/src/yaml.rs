//! A mapping-key merge of YAML configuration, used where the text merge conflicts.
//!
//! The YAML parser (`saphyr-parser`) gives the line of every key of the root mapping; each key
//! owns the text from its line to the next key's (comment lines just above a key belong to that
//! key). Entries are then merged like a map, and where both sides changed one entry whose value
//! is itself a block mapping, its body is merged the same way, recursively. Text is only ever
//! spliced, never re-serialized, so comments, quoting and layout survive.

use saphyr_parser::{Event, Parser};

use crate::text::{TextOptions, merge_text};

/// A successful key merge: the text and what it decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlMerge {
    pub content: String,
    pub decisions: Vec<String>,
}

/// Merges three YAML texts key by key; `None` when a document is not a single block mapping or
/// when an entry conflicts.
pub fn merge_yaml(base: &str, ours: &str, theirs: &str) -> Option<YamlMerge> {
    let mut decisions = Vec::new();
    let content = merge_mapping(base, ours, theirs, &mut decisions, "")?;
    Some(YamlMerge { content, decisions })
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
    // Comment and blank lines right above a key belong to that key.
    for start in starts.iter_mut().skip(1) {
        while *start > 0 && is_comment_or_blank(lines[*start - 1]) {
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

fn merge_mapping(
    base: &str,
    ours: &str,
    theirs: &str,
    decisions: &mut Vec<String>,
    prefix: &str,
) -> Option<String> {
    let (base, ours, theirs) = (split(base)?, split(ours)?, split(theirs)?);
    let header = merge_clean(&base.header, &ours.header, &theirs.header)?;
    // The app's keys in the app's order; upstream's new keys after their upstream neighbour.
    let mut order: Vec<&str> = ours.entries.iter().map(|(k, _)| k.as_str()).collect();
    for (index, (key, _)) in theirs.entries.iter().enumerate() {
        if ours.get(key).is_some() || base.get(key).is_some() {
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
            (_, Some(o), Some(t)) if o == t => Some(o.to_string()),
            (b, Some(o), t) if b == t => Some(o.to_string()),
            (b, o, Some(t)) if b == o => Some(t.to_string()),
            (b, Some(o), Some(t)) => {
                let merged = merge_entry(b.unwrap_or(""), o, t, decisions, &path)?;
                decisions.push(format!("merged `{path}` key by key"));
                Some(merged)
            }
            // Deleted on one side, changed on the other.
            _ => return None,
        };
        if let Some(block) = merged {
            out.push_str(&block);
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    Some(out)
}

/// One entry changed on both sides: its lines, or (when it holds a block mapping) its keys.
fn merge_entry(
    base: &str,
    ours: &str,
    theirs: &str,
    decisions: &mut Vec<String>,
    path: &str,
) -> Option<String> {
    if let Some(text) = merge_clean(base, ours, theirs) {
        return Some(text);
    }
    // The head is the key's line with the comments above it; the body, the value's lines.
    let head_and_body = |block: &str| -> Option<(String, String)> {
        let lines: Vec<&str> = block.split_inclusive('\n').collect();
        let key_line = lines.iter().position(|l| !is_comment_or_blank(l))?;
        let value = lines[key_line].split_once(':')?.1.trim();
        (value.is_empty() || value.starts_with('#'))
            .then(|| (lines[..=key_line].concat(), lines[key_line + 1..].concat()))
    };
    let (base_head, base_body) = head_and_body(base).unwrap_or_default();
    let (ours_head, ours_body) = head_and_body(ours)?;
    let (theirs_head, theirs_body) = head_and_body(theirs)?;
    let head = merge_clean(&base_head, &ours_head, &theirs_head)?;
    let body = merge_mapping(&base_body, &ours_body, &theirs_body, decisions, path)?;
    Some(head + &body)
}

fn merge_clean(base: &str, ours: &str, theirs: &str) -> Option<String> {
    let merged = merge_text(base, ours, theirs, &TextOptions::default());
    (merged.conflicts == 0).then_some(merged.content)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_same_key_changed_differently_is_left_to_the_text_merge() {
        let ours = BASE.replace("title: Portal", "title: Ours");
        let theirs = BASE.replace("title: Portal", "title: Theirs");
        assert!(merge_yaml(BASE, &ours, &theirs).is_none());
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
