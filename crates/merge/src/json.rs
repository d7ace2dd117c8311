//! A key-by-key merge of JSON documents (`package.json` and friends), used where the text merge
//! conflicts.
//!
//! Objects merge key by key, recursively, keeping the app's key order; arrays merge as sequences
//! of elements. Dependency maps know that values are semver ranges; `packageManager` and
//! `engines.*` know that values name versions (the higher is kept). A key the rules cannot decide
//! is a local conflict: the rest of the document still merges, and markers enclose only that
//! key's lines. A document that does not parse, whose root conflicts, or whose layout this module
//! would not write back as it is returns `None`, and the caller keeps the text merge.

use serde_json::{Map, Value};
use similar::{MergeResolution, TextMerge};

use crate::text::{TextOptions, conflict_block};
use crate::versions::{self, Versioned, keep_higher};

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

/// Marks the place of a conflicting key in the serialized document until markers replace it.
/// Control characters keep it from matching any real value (the inputs are checked too).
const PLACEHOLDER: &str = "\u{1}uplift-conflict-";

/// A structured merge: the document, what it decided (for the plan), and the keys left in
/// conflict markers (dotted paths, in document order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonMerge {
    pub content: String,
    pub decisions: Vec<String>,
    pub conflicts: Vec<String>,
}

/// Merges three JSON texts; `None` when any does not parse, when the root values conflict, or
/// when the app's file is not in the layout this module writes (so re-serializing would reformat
/// it). Conflicting keys are written with `options`' markers.
pub fn merge_json(
    base: &str,
    ours: &str,
    theirs: &str,
    options: &TextOptions,
) -> Option<JsonMerge> {
    let base_value: Value = serde_json::from_str(base).ok()?;
    let ours_value: Value = serde_json::from_str(ours).ok()?;
    let theirs_value: Value = serde_json::from_str(theirs).ok()?;
    let layout = Layout::of(ours);
    if layout.write(&ours_value)? != ours {
        return None;
    }
    let placeholder = serde_json::to_string(PLACEHOLDER).ok()?;
    let placeholder = placeholder.trim_end_matches('"');
    if [base, ours, theirs]
        .iter()
        .any(|text| text.contains(placeholder))
    {
        return None;
    }
    let mut merge = Merge::default();
    let merged = merge
        .value(
            &mut Vec::new(),
            Some(&base_value),
            Some(&ours_value),
            Some(&theirs_value),
        )?
        .unwrap_or(Value::Null);
    let mut content = layout.write(&merged)?;
    for conflict in &merge.conflicts {
        content = conflict.render(&content, &layout, options)?;
    }
    Some(JsonMerge {
        content,
        decisions: merge.decisions,
        conflicts: merge
            .conflicts
            .into_iter()
            .map(|c| c.path.join("."))
            .collect(),
    })
}

/// What a merge decided and left.
#[derive(Default)]
struct Merge {
    decisions: Vec<String>,
    conflicts: Vec<Conflict>,
}

/// A key both sides changed differently; its place in the merged document holds a placeholder.
struct Conflict {
    path: Vec<String>,
    base: Option<Value>,
    ours: Option<Value>,
    theirs: Option<Value>,
    placeholder: String,
}

impl Conflict {
    /// Replaces the placeholder's line with markers around each side's version of the key.
    fn render(&self, content: &str, layout: &Layout, options: &TextOptions) -> Option<String> {
        let placeholder = serde_json::to_string(&self.placeholder).ok()?;
        let start = content.find(&placeholder)?;
        let line_start = content[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = content[start..]
            .find('\n')
            .map_or(content.len(), |i| start + i + 1);
        let line = &content[line_start..line_end];
        let indent = &line[..line.len() - line.trim_start().len()];
        let comma = if line.trim_end().ends_with(',') {
            ","
        } else {
            ""
        };
        let key = serde_json::to_string(self.path.last()?).ok()?;
        let side = |value: &Option<Value>| -> Option<String> {
            let Some(value) = value else {
                return Some(String::new());
            };
            let written = layout
                .write_value(value)?
                .replace('\n', &format!("\n{indent}"));
            Some(format!("{indent}{key}: {written}{comma}\n"))
        };
        let block = conflict_block(
            &side(&self.base)?,
            &side(&self.ours)?,
            &side(&self.theirs)?,
            options,
        );
        Some(format!(
            "{}{block}{}",
            &content[..line_start],
            &content[line_end..]
        ))
    }
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
        let mut text = self.write_value(value)?;
        if self.final_newline {
            text.push('\n');
        }
        Some(text)
    }

    /// One value in this layout, as if at the root (no final newline).
    fn write_value(&self, value: &Value) -> Option<String> {
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(self.indent.as_bytes());
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
        serde::Serialize::serialize(value, &mut serializer).ok()?;
        String::from_utf8(out).ok()
    }
}

impl Merge {
    /// `Some(Some(v))`: merged to `v`; `Some(None)`: merged to "absent"; `None`: a conflict
    /// (recorded by the object that holds the key).
    fn value(
        &mut self,
        path: &mut Vec<String>,
        base: Option<&Value>,
        ours: Option<&Value>,
        theirs: Option<&Value>,
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
            return merge_dependency(path, base, ours, theirs, &mut self.decisions);
        }
        if let (Some(Value::String(o)), Some(Value::String(t))) = (ours, theirs) {
            let kept = keep_higher(&path.join("."), o, t, version_reader(path)?)?;
            self.decisions.push(kept.decision);
            return Some(Some(Value::String(kept.value.to_string())));
        }
        match (base, ours, theirs) {
            (base, Some(Value::Object(o)), Some(Value::Object(t))) => {
                let empty = Map::new();
                let b = match base {
                    Some(Value::Object(b)) => b,
                    None => &empty,
                    Some(_) => return None,
                };
                Some(Some(Value::Object(self.objects(path, b, o, t))))
            }
            (Some(Value::Array(b)), Some(Value::Array(o)), Some(Value::Array(t))) => {
                merge_arrays(b, o, t).map(|a| Some(Value::Array(a)))
            }
            _ => None,
        }
    }

    fn objects(
        &mut self,
        path: &mut Vec<String>,
        base: &Map<String, Value>,
        ours: &Map<String, Value>,
        theirs: &Map<String, Value>,
    ) -> Map<String, Value> {
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
            let (b, o, t) = (base.get(key), ours.get(key), theirs.get(key));
            match self.value(path, b, o, t) {
                Some(Some(value)) => {
                    merged.insert(key.clone(), value);
                }
                Some(None) => {}
                None => {
                    let placeholder = format!("{PLACEHOLDER}{}", self.conflicts.len());
                    merged.insert(key.clone(), Value::String(placeholder.clone()));
                    self.conflicts.push(Conflict {
                        path: path.clone(),
                        base: b.cloned(),
                        ours: o.cloned(),
                        theirs: t.cloned(),
                        placeholder,
                    });
                }
            }
            path.pop();
        }
        merged
    }
}

/// Keys whose values name a version: `packageManager` (`yarn@4.5.0`), `engines.*` (ranges).
fn version_reader(path: &[String]) -> Option<fn(&str) -> Option<Versioned>> {
    match path {
        [key] if key == "packageManager" => Some(versions::package_manager),
        [engines, _] if engines == "engines" => Some(versions::range),
        _ => None,
    }
}

fn in_dependency_map(path: &[String]) -> bool {
    path.len() >= 2 && DEPENDENCY_MAPS.contains(&path[path.len() - 2].as_str())
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
                let (lo, lt) = (versions::lower_bound(o)?, versions::lower_bound(t)?);
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

    fn merge_json(base: &str, ours: &str, theirs: &str) -> Option<JsonMerge> {
        super::merge_json(base, ours, theirs, &TextOptions::default())
    }

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
    fn unusual_layouts_are_left_to_the_text_merge() {
        let compact = "{\"name\": \"app\"}";
        assert!(merge_json(compact, compact, "{\"name\": \"x\"}").is_none());
        let ours = BASE.replace("\"app\"", "\"mine\"");
        assert!(
            merge_json("[1]\n", "[2]\n", "[3]\n").is_none(),
            "a root conflict"
        );
        assert!(merge_json(BASE, &ours, "{").is_none());
    }

    const PACKAGE: &str = "{\n  \"name\": \"app\",\n  \"scripts\": {\n    \"start\": \"backstage-cli repo start\",\n    \"build\": \"backstage-cli repo build\"\n  },\n  \"dependencies\": {\n    \"react\": \"^18.0.0\"\n  }\n}\n";

    #[test]
    fn one_conflicting_key_among_merged_ones_is_a_local_conflict() {
        // Both sides changed `scripts.start`; each added a different dependency.
        let ours = PACKAGE
            .replace("repo start\"", "repo start --inspect\"")
            .replace("\"react\"", "\"lodash\": \"^4.17.0\",\n    \"react\"");
        let theirs = PACKAGE
            .replace("repo start\"", "repo start --config app-config.yaml\"")
            .replace(
                "\"react\": \"^18.0.0\"",
                "\"react\": \"^18.0.0\",\n    \"zod\": \"^3.22.0\"",
            );
        let merged = merge_json(PACKAGE, &ours, &theirs).unwrap();
        assert_eq!(merged.conflicts, ["scripts.start"]);
        assert_eq!(
            merged.content,
            "{\n  \"name\": \"app\",\n  \"scripts\": {\n<<<<<<< app\n    \"start\": \"backstage-cli repo start --inspect\",\n=======\n    \"start\": \"backstage-cli repo start --config app-config.yaml\",\n>>>>>>> upstream\n    \"build\": \"backstage-cli repo build\"\n  },\n  \"dependencies\": {\n    \"lodash\": \"^4.17.0\",\n    \"react\": \"^18.0.0\",\n    \"zod\": \"^3.22.0\"\n  }\n}\n"
        );
    }

    #[test]
    fn a_conflicting_object_value_is_written_whole_on_each_side_with_diff3() {
        let base = "{\n  \"a\": 1,\n  \"b\": {\n    \"x\": 1\n  }\n}\n";
        let ours = "{\n  \"a\": 1,\n  \"b\": [\n    1\n  ]\n}\n";
        let theirs = "{\n  \"a\": 2\n}\n";
        let options = TextOptions {
            style: crate::ConflictStyle::Diff3,
            ..TextOptions::default()
        };
        let merged = super::merge_json(base, ours, theirs, &options).unwrap();
        assert_eq!(merged.conflicts, ["b"]);
        assert_eq!(
            merged.content,
            "{\n  \"a\": 2,\n<<<<<<< app\n  \"b\": [\n    1\n  ]\n||||||| base\n  \"b\": {\n    \"x\": 1\n  }\n=======\n>>>>>>> upstream\n}\n"
        );
    }

    #[test]
    fn both_sides_bumping_the_package_manager_keep_the_higher() {
        let base = "{\n  \"name\": \"app\",\n  \"engines\": {\n    \"node\": \"20 || 22\"\n  },\n  \"packageManager\": \"yarn@4.4.1\"\n}\n";
        let ours = base
            .replace("yarn@4.4.1", "yarn@4.5.0")
            .replace("20 || 22", "20 || 22 || 24");
        let theirs = base
            .replace("yarn@4.4.1", "yarn@4.13.0")
            .replace("20 || 22", "22 || 24");
        let merged = merge_json(base, &ours, &theirs).unwrap();
        assert!(merged.conflicts.is_empty(), "{}", merged.content);
        assert_eq!(merged.content, theirs);
        assert_eq!(
            merged.decisions,
            [
                "engines.node: kept upstream's \"22 || 24\" (higher than \"20 || 22 || 24\")",
                "packageManager: kept upstream's \"yarn@4.13.0\" (higher than \"yarn@4.5.0\")",
            ]
        );
        // Never across names: a switch to pnpm on one side is a conflict.
        let ours = base.replace("yarn@4.4.1", "pnpm@9.1.0");
        let merged = merge_json(base, &ours, &theirs).unwrap();
        assert_eq!(merged.conflicts, ["packageManager"]);
    }
}
