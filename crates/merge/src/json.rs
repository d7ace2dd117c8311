//! A key-by-key merge of JSON documents (`package.json` and friends), used where the text merge
//! conflicts.
//!
//! Objects merge key by key, recursively, keeping the app's key order; arrays merge as sequences
//! of elements. Dependency maps know that values are semver ranges. Anything the rules cannot
//! decide safely returns `None`, and the caller keeps the text merge's conflict.

use serde_json::{Map, Value};
use similar::{MergeResolution, TextMerge};

/// Keys whose values map package names to version ranges.
const DEPENDENCY_MAPS: &[&str] = &[
    "dependencies",
    "devDependencies",
    "peerDependencies",
    "optionalDependencies",
    "resolutions",
];

/// Range protocols whose values are never rewritten except to what upstream wrote.
const PROTOCOLS: &[&str] = &[
    "backstage:",
    "workspace:",
    "link:",
    "file:",
    "npm:",
    "portal:",
    "patch:",
];

/// A successful structured merge: the document and what it decided, for the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonMerge {
    pub content: String,
    pub decisions: Vec<String>,
}

/// Merges three JSON texts; `None` when any does not parse, when a value conflicts, or when the
/// app's file is not in the layout this module writes (so re-serializing would reformat it).
pub fn merge_json(base: &str, ours: &str, theirs: &str) -> Option<JsonMerge> {
    let base_value: Value = serde_json::from_str(base).ok()?;
    let ours_value: Value = serde_json::from_str(ours).ok()?;
    let theirs_value: Value = serde_json::from_str(theirs).ok()?;
    let layout = Layout::of(ours);
    if layout.write(&ours_value)? != ours {
        return None;
    }
    let mut decisions = Vec::new();
    let merged = merge_value(
        &mut Vec::new(),
        Some(&base_value),
        Some(&ours_value),
        Some(&theirs_value),
        &mut decisions,
    )?;
    let merged = merged?;
    Some(JsonMerge {
        content: layout.write(&merged)?,
        decisions,
    })
}

/// Indentation and final newline of the app's file.
struct Layout {
    indent: String,
    final_newline: bool,
}

impl Layout {
    fn of(text: &str) -> Self {
        let indent = text
            .lines()
            .skip(1)
            .find_map(|line| {
                let trimmed = line.trim_start_matches([' ', '\t']);
                (trimmed.len() < line.len()).then(|| line[..line.len() - trimmed.len()].to_string())
            })
            .unwrap_or_else(|| "  ".to_string());
        Self {
            indent,
            final_newline: text.ends_with('\n'),
        }
    }

    fn write(&self, value: &Value) -> Option<String> {
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(self.indent.as_bytes());
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
        serde::Serialize::serialize(value, &mut serializer).ok()?;
        let mut text = String::from_utf8(out).ok()?;
        if self.final_newline {
            text.push('\n');
        }
        Some(text)
    }
}

/// `Some(Some(v))`: merged to `v`; `Some(None)`: merged to "absent"; `None`: a conflict.
fn merge_value(
    path: &mut Vec<String>,
    base: Option<&Value>,
    ours: Option<&Value>,
    theirs: Option<&Value>,
    decisions: &mut Vec<String>,
) -> Option<Option<Value>> {
    if ours == theirs {
        return Some(ours.cloned());
    }
    if ours == base {
        return Some(theirs.cloned());
    }
    if theirs == base {
        return Some(ours.cloned());
    }
    if in_dependency_map(path) {
        return merge_dependency(path, base, ours, theirs, decisions);
    }
    match (base, ours, theirs) {
        (base, Some(Value::Object(o)), Some(Value::Object(t))) => {
            let empty = Map::new();
            let b = match base {
                Some(Value::Object(b)) => b,
                None => &empty,
                Some(_) => return None,
            };
            merge_objects(path, b, o, t, decisions).map(|m| Some(Value::Object(m)))
        }
        (Some(Value::Array(b)), Some(Value::Array(o)), Some(Value::Array(t))) => {
            merge_arrays(b, o, t).map(|a| Some(Value::Array(a)))
        }
        _ => None,
    }
}

fn in_dependency_map(path: &[String]) -> bool {
    path.len() >= 2 && DEPENDENCY_MAPS.contains(&path[path.len() - 2].as_str())
}

fn merge_objects(
    path: &mut Vec<String>,
    base: &Map<String, Value>,
    ours: &Map<String, Value>,
    theirs: &Map<String, Value>,
    decisions: &mut Vec<String>,
) -> Option<Map<String, Value>> {
    // The app's keys in the app's order, then upstream's new keys next to their neighbours.
    let mut order: Vec<&String> = ours.keys().collect();
    let sorted = |keys: &[&String]| keys.windows(2).all(|w| w[0] <= w[1]);
    let ours_sorted = sorted(&order);
    for (index, key) in theirs.keys().enumerate() {
        if ours.contains_key(key) || base.contains_key(key) {
            continue;
        }
        let at = if ours_sorted {
            order.partition_point(|k| *k < key)
        } else {
            let previous = theirs
                .keys()
                .take(index)
                .rev()
                .find_map(|p| order.iter().position(|k| *k == p));
            previous.map_or(0, |p| p + 1)
        };
        order.insert(at, key);
    }
    for key in base.keys() {
        if !order.contains(&key) && theirs.contains_key(key) {
            // Deleted by the app; the merge below decides whether it stays deleted.
            let at = order.len();
            order.insert(at, key);
        }
    }
    let mut merged = Map::new();
    for key in order {
        path.push(key.clone());
        let value = merge_value(
            path,
            base.get(key),
            ours.get(key),
            theirs.get(key),
            decisions,
        );
        path.pop();
        if let Some(value) = value? {
            merged.insert(key.clone(), value);
        }
    }
    Some(merged)
}

/// Arrays merge like lines of text, one element per line.
fn merge_arrays(base: &[Value], ours: &[Value], theirs: &[Value]) -> Option<Vec<Value>> {
    let lines = |values: &[Value]| -> Option<String> {
        values
            .iter()
            .map(|v| serde_json::to_string(v).ok().map(|s| s + "\n"))
            .collect()
    };
    let (b, o, t) = (lines(base)?, lines(ours)?, lines(theirs)?);
    let merge = TextMerge::from_lines(b.as_str(), o.as_str(), t.as_str());
    if merge.regions().iter().any(|r| {
        !matches!(
            r.resolution(),
            MergeResolution::Unchanged
                | MergeResolution::Ours
                | MergeResolution::Theirs
                | MergeResolution::Both
        )
    }) {
        return None;
    }
    merge
        .to_string()
        .lines()
        .map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn protocol(value: &str) -> Option<&'static str> {
    PROTOCOLS.iter().copied().find(|p| value.starts_with(p))
}

/// The lowest version a range admits (`^1.2.3`, `~1.2.3`, `>=1.2.3`, `1.2.3`, `1.2.x`).
fn lower_bound(range: &str) -> Option<semver::Version> {
    let first = range.split("||").next()?.split_whitespace().next()?;
    let bare = first.trim_start_matches(['^', '~', '>', '=', 'v']);
    let parts: Vec<&str> = bare.split(['.', '-', '+']).take(3).collect();
    let number = |i: usize| -> Option<u64> {
        match parts.get(i) {
            None | Some(&"x") | Some(&"X") | Some(&"*") => Some(0),
            Some(part) => part.parse().ok(),
        }
    };
    if bare.contains('-') {
        return semver::Version::parse(bare).ok();
    }
    Some(semver::Version::new(number(0)?, number(1)?, number(2)?))
}

fn merge_dependency(
    path: &[String],
    base: Option<&Value>,
    ours: Option<&Value>,
    theirs: Option<&Value>,
    decisions: &mut Vec<String>,
) -> Option<Option<Value>> {
    let name = path.last().map(String::as_str).unwrap_or_default();
    let map = path
        .get(path.len().saturating_sub(2))
        .map(String::as_str)
        .unwrap_or_default();
    match (base, ours, theirs) {
        // The app removed a dependency upstream changed: it stays removed.
        (Some(_), None, Some(t)) => {
            decisions.push(format!(
                "{map}: kept {name} removed (upstream changed it to {t})"
            ));
            Some(None)
        }
        // Upstream removed a dependency the app changed: keep the app's.
        (Some(_), Some(o), None) => {
            decisions.push(format!("{map}: kept your {name} {o} (upstream removed it)"));
            Some(Some(o.clone()))
        }
        (_, Some(Value::String(o)), Some(Value::String(t))) => match (protocol(o), protocol(t)) {
            (Some(_), _) => {
                decisions.push(format!(
                    "{map}: kept your {name} \"{o}\" (a protocol range; upstream wrote \"{t}\")"
                ));
                Some(Some(Value::String(o.clone())))
            }
            (None, Some(_)) => {
                decisions.push(format!("{map}: took upstream's {name} \"{t}\""));
                Some(Some(Value::String(t.clone())))
            }
            (None, None) => {
                let (lo, lt) = (lower_bound(o)?, lower_bound(t)?);
                let (kept, other, whose) = if lt > lo {
                    (t, o, "upstream's")
                } else {
                    (o, t, "your")
                };
                decisions.push(format!(
                    "{map}: kept {whose} {name} \"{kept}\" (higher than \"{other}\")"
                ));
                Some(Some(Value::String(kept.clone())))
            }
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const BASE: &str = "{\n  \"name\": \"app\",\n  \"dependencies\": {\n    \"@acme/cli\": \"^0.20.0\",\n    \"react\": \"^18.0.0\"\n  }\n}\n";

    #[test]
    fn both_sides_add_dependencies_next_to_each_other() {
        let ours = BASE.replace(
            "\"@acme/cli\": \"^0.20.0\",\n",
            "\"@acme/cli\": \"^0.20.0\",\n    \"@acme/lint\": \"^1.0.0\",\n",
        );
        let theirs = BASE.replace(
            "\"@acme/cli\": \"^0.20.0\",\n",
            "\"@acme/cli\": \"^0.20.0\",\n    \"@acme/docs\": \"^2.0.0\",\n",
        );
        let merged = merge_json(BASE, &ours, &theirs).unwrap();
        assert_eq!(
            merged.content,
            "{\n  \"name\": \"app\",\n  \"dependencies\": {\n    \"@acme/cli\": \"^0.20.0\",\n    \"@acme/docs\": \"^2.0.0\",\n    \"@acme/lint\": \"^1.0.0\",\n    \"react\": \"^18.0.0\"\n  }\n}\n"
        );
    }

    #[test]
    fn both_bump_one_dependency_keeps_the_higher_lower_bound() {
        let ours = BASE.replace("^0.20.0", "^0.25.1");
        let theirs = BASE.replace("^0.20.0", "^0.30.0");
        let merged = merge_json(BASE, &ours, &theirs).unwrap();
        assert!(merged.content.contains("\"@acme/cli\": \"^0.30.0\""));
        assert_eq!(
            merged.decisions,
            ["dependencies: kept upstream's @acme/cli \"^0.30.0\" (higher than \"^0.25.1\")"]
        );
        let ours = BASE.replace("^0.20.0", "^0.31.0");
        assert!(
            merge_json(BASE, &ours, &theirs)
                .unwrap()
                .content
                .contains("\"^0.31.0\"")
        );
    }

    #[test]
    fn protocol_values_are_never_rewritten() {
        let ours = BASE.replace("^0.20.0", "backstage:^");
        let theirs = BASE.replace("^0.20.0", "^0.30.0");
        let merged = merge_json(BASE, &ours, &theirs).unwrap();
        assert!(merged.content.contains("\"@acme/cli\": \"backstage:^\""));
    }

    #[test]
    fn a_removed_dependency_stays_removed() {
        let ours = BASE.replace("    \"@acme/cli\": \"^0.20.0\",\n", "");
        let theirs = BASE.replace("^0.20.0", "^0.30.0");
        let merged = merge_json(BASE, &ours, &theirs).unwrap();
        assert!(!merged.content.contains("@acme/cli"), "{}", merged.content);
    }

    #[test]
    fn conflicting_scalars_and_unusual_layouts_are_left_to_the_text_merge() {
        let ours = BASE.replace("\"app\"", "\"mine\"");
        let theirs = BASE.replace("\"app\"", "\"theirs\"");
        assert!(merge_json(BASE, &ours, &theirs).is_none());
        let compact = "{\"name\": \"app\"}";
        assert!(merge_json(compact, compact, "{\"name\": \"x\"}").is_none());
    }

    #[test]
    fn lower_bounds() {
        assert_eq!(lower_bound("^1.2.3").unwrap().to_string(), "1.2.3");
        assert_eq!(lower_bound(">=2.0.0 <3").unwrap().to_string(), "2.0.0");
        assert_eq!(lower_bound("1.x").unwrap().to_string(), "1.0.0");
        assert!(lower_bound("latest").is_none());
    }
}
