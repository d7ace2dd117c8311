//! Property tests: the laws every three-way merge must obey.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use uplift_merge::{
    ConflictStyle, MergeOptions, TextOptions, merge_text, merge_trees, paths_to_read,
};
use uplift_tree::{Change, FileEntry, RelPath, Tree};

fn options(settle: bool) -> TextOptions {
    TextOptions {
        no_adjacent_insertions: !settle,
        ..TextOptions::default()
    }
}

/// Small texts over a small alphabet, so that sides often touch the same lines.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec!["a", "b", "c", "d", "{", "}", ""]),
        0..12,
    )
    .prop_map(|lines| lines.iter().map(|l| format!("{l}\n")).collect())
}

/// One side's edit of `base` lines, with lines it adds named uniquely after the side.
#[derive(Debug, Clone)]
enum Edit {
    Keep,
    Delete,
    Replace,
    InsertBefore,
}

fn edits(len: usize) -> impl Strategy<Value = (Vec<Edit>, bool)> {
    (
        prop::collection::vec(
            prop_oneof![
                6 => Just(Edit::Keep),
                1 => Just(Edit::Delete),
                1 => Just(Edit::Replace),
                1 => Just(Edit::InsertBefore),
            ],
            len,
        ),
        any::<bool>(),
    )
}

fn apply(base: &[String], edits: &[Edit], append: bool, side: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (index, (line, edit)) in base.iter().zip(edits).enumerate() {
        match edit {
            Edit::Keep => out.push(line.clone()),
            Edit::Delete => {}
            Edit::Replace => out.push(format!("{side}{index}\n")),
            Edit::InsertBefore => {
                out.push(format!("{side}-ins{index}\n"));
                out.push(line.clone());
            }
        }
    }
    if append {
        out.push(format!("{side}-end\n"));
    }
    out
}

fn unique_base() -> impl Strategy<Value = Vec<String>> {
    (0usize..14).prop_map(|n| (0..n).map(|i| format!("base{i}\n")).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn unchanged_ours_takes_theirs(base in text(), theirs in text(), settle in any::<bool>()) {
        let merged = merge_text(&base, &base, &theirs, &options(settle));
        prop_assert_eq!(merged.conflicts, 0);
        prop_assert_eq!(merged.content, theirs);
    }

    #[test]
    fn unchanged_theirs_keeps_ours(base in text(), ours in text(), settle in any::<bool>()) {
        let merged = merge_text(&base, &ours, &base, &options(settle));
        prop_assert_eq!(merged.conflicts, 0);
        prop_assert_eq!(merged.content, ours);
    }

    #[test]
    fn identical_changes_merge_to_themselves(base in text(), both in text(), settle in any::<bool>()) {
        let merged = merge_text(&base, &both, &both, &options(settle));
        prop_assert_eq!(merged.conflicts, 0);
        prop_assert_eq!(merged.content, both);
    }

    /// With uniquely named lines, "a change made only by one side" is observable line by line:
    /// when no conflict is reported, every line either side added is in the result, every base
    /// line either side deleted is gone, and every base line both kept is there.
    #[test]
    fn a_clean_merge_keeps_every_one_sided_change(
        (base, ours_edits, theirs_edits) in unique_base().prop_flat_map(|base| {
            let len = base.len();
            (Just(base), edits(len), edits(len))
        }),
        settle in any::<bool>(),
    ) {
        let ours = apply(&base, &ours_edits.0, ours_edits.1, "ours");
        let theirs = apply(&base, &theirs_edits.0, theirs_edits.1, "theirs");
        let merged = merge_text(&base.concat(), &ours.concat(), &theirs.concat(), &options(settle));
        if merged.conflicts == 0 {
            let result: Vec<&str> = merged.content.split_inclusive('\n').collect();
            let result_set: BTreeSet<&str> = result.iter().copied().collect();
            prop_assert_eq!(result.len(), result_set.len(), "no line duplicated: {}", merged.content);
            let base_set: BTreeSet<&str> = base.iter().map(String::as_str).collect();
            let ours_set: BTreeSet<&str> = ours.iter().map(String::as_str).collect();
            let theirs_set: BTreeSet<&str> = theirs.iter().map(String::as_str).collect();
            for line in ours_set.iter().chain(&theirs_set) {
                if !base_set.contains(line) {
                    prop_assert!(result_set.contains(line), "added line {line:?} lost: {}", merged.content);
                }
            }
            for line in &base_set {
                let kept_by_both = ours_set.contains(line) && theirs_set.contains(line);
                prop_assert_eq!(result_set.contains(line), kept_by_both, "base line {:?}: {}", line, merged.content);
            }
            // Order of each side's lines is kept.
            for side in [&ours, &theirs] {
                let positions: Vec<usize> = side
                    .iter()
                    .filter_map(|line| result.iter().position(|r| r == line))
                    .collect();
                prop_assert!(positions.windows(2).all(|w| w[0] < w[1]), "order broken: {}", merged.content);
            }
        } else {
            prop_assert!(merged.content.contains("<<<<<<< "));
        }
    }

    /// The same laws at the level of trees.
    #[test]
    fn tree_merge_laws(
        files in prop::collection::btree_map("[a-c]{1,2}", (text(), text(), text()), 0..6),
    ) {
        let tree = |pick: fn(&(String, String, String)) -> &String| -> Tree {
            files
                .iter()
                .map(|(p, v)| (RelPath::new(p.clone()).unwrap(), FileEntry::regular(pick(v).as_bytes())))
                .collect()
        };
        let base = tree(|v| &v.0);
        let ours = tree(|v| &v.1);
        let theirs = tree(|v| &v.2);
        let options = MergeOptions { rename_threshold: 2.0, ..MergeOptions::default() };
        // merge(b, b, t) = t
        let outcome = merge_trees(&base, &theirs, &base, &options);
        prop_assert_eq!(apply_changes(&base, &outcome.changes), theirs.clone());
        // merge(b, o, b) = o: nothing to do
        prop_assert!(merge_trees(&base, &base, &ours, &options).changes.is_empty());
        // merge(b, x, x) = x
        let outcome = merge_trees(&base, &ours, &ours, &options);
        prop_assert_eq!(apply_changes(&ours, &outcome.changes), ours.clone());
        // Only paths upstream changed are planned.
        let planned: BTreeSet<_> = merge_trees(&base, &theirs, &ours, &options)
            .files
            .into_iter()
            .map(|f| f.path)
            .collect();
        prop_assert_eq!(planned, paths_to_read(&base, &theirs));
    }
}

fn apply_changes(tree: &Tree, changes: &[Change]) -> Tree {
    let mut tree = tree.clone();
    for change in changes {
        match change {
            Change::Write { path, entry } => {
                tree.insert(path.clone(), entry.clone());
            }
            Change::Delete { path } => {
                tree.remove(path);
            }
        }
    }
    tree
}

/// A JSON object of `keys` with small values, laid out as npm writes `package.json`.
fn json_doc(entries: &std::collections::BTreeMap<String, u8>, nested: bool) -> String {
    let map: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(format!("^1.{v}.0"))))
        .collect();
    let value = if nested {
        serde_json::json!({ "name": "app", "dependencies": map })
    } else {
        serde_json::Value::Object(map)
    };
    serde_json::to_string_pretty(&value).unwrap() + "\n"
}

/// Which side a person picks in every conflict.
#[derive(Debug, Clone, Copy)]
enum Pick {
    Ours,
    Theirs,
}

/// The file once every conflict is resolved by taking one side; also checks that markers are
/// well formed.
fn resolve(content: &str, pick: Pick) -> String {
    let mut out = String::new();
    let mut part = None; // inside a conflict: which part we are in
    for line in content.split_inclusive('\n') {
        match (part, line) {
            (None, l) if l.starts_with("<<<<<<< ") => part = Some(0),
            (Some(0), l) if l.starts_with("||||||| ") => part = Some(1),
            (Some(0 | 1), "=======\n") => part = Some(2),
            (Some(2), l) if l.starts_with(">>>>>>> ") => part = None,
            (None, l) => out.push_str(l),
            (Some(0), l) if matches!(pick, Pick::Ours) => out.push_str(l),
            (Some(2), l) if matches!(pick, Pick::Theirs) => out.push_str(l),
            _ => {}
        }
    }
    assert_eq!(part, None, "unterminated conflict: {content}");
    out
}

/// The lines between conflict markers (the sides' lines, not the markers).
fn conflicted_lines(content: &str) -> Vec<&str> {
    let mut inside = false;
    let mut lines = Vec::new();
    for line in content.lines() {
        if line.starts_with("<<<<<<< ") {
            inside = true;
        } else if line.starts_with(">>>>>>> ") {
            inside = false;
        } else if inside && !line.starts_with("||||||| ") && line != "=======" {
            lines.push(line);
        }
    }
    lines
}

/// Keys both sides changed to different values (the genuine conflicts of a plain object).
fn changed_differently(
    base: &BTreeMap<String, u8>,
    ours: &BTreeMap<String, u8>,
    theirs: &BTreeMap<String, u8>,
) -> BTreeSet<String> {
    base.iter()
        .filter(|(k, v)| {
            let (o, t) = (&ours[*k], &theirs[*k]);
            o != *v && t != *v && o != t
        })
        .map(|(k, _)| k.clone())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// A structured merge never drops a key only one side added, what it returns parses, and a
    /// key both sides changed differently is a local conflict: markers hold that key alone, and
    /// taking either side of every conflict gives a valid document with every one-sided change.
    #[test]
    fn structured_json_merge_keeps_one_sided_keys(
        base in prop::collection::btree_map("[a-e]", 0u8..5, 0..5),
        ours_added in prop::collection::btree_map("o[a-e]", 0u8..5, 0..3),
        theirs_added in prop::collection::btree_map("t[a-e]", 0u8..5, 0..3),
        ours_bumps in prop::collection::btree_map("[a-e]", 0u8..9, 0..3),
        theirs_bumps in prop::collection::btree_map("[a-e]", 0u8..9, 0..3),
        nested in any::<bool>(),
        diff3 in any::<bool>(),
    ) {
        let side = |added: &BTreeMap<String, u8>, bumps: &BTreeMap<String, u8>| {
            let mut map = base.clone();
            for (k, v) in bumps {
                if let Some(value) = map.get_mut(k) {
                    *value = *v;
                }
            }
            map.extend(added.clone());
            map
        };
        let ours = side(&ours_added, &ours_bumps);
        let theirs = side(&theirs_added, &theirs_bumps);
        let options = TextOptions {
            style: if diff3 { ConflictStyle::Diff3 } else { ConflictStyle::Merge },
            ..TextOptions::default()
        };
        let (b, o, t) = (json_doc(&base, nested), json_doc(&ours, nested), json_doc(&theirs, nested));
        // merge(b, b, t) = t, merge(b, o, b) = o, merge(b, x, x) = x, also key by key.
        for (x, y, want) in [(&b, &t, &t), (&o, &b, &o), (&o, &o, &o)] {
            let merged = uplift_merge::merge_json(&b, x, y, &options).unwrap();
            prop_assert_eq!(&merged.content, want);
            prop_assert!(merged.conflicts.is_empty());
        }
        let merged = uplift_merge::merge_json(&b, &o, &t, &options)
            .expect("objects always merge, with local conflicts at worst");
        // Only a nested dependency map decides bumps; in a plain object a key both sides changed
        // differently is a genuine conflict, and only such keys are.
        let expected: BTreeSet<String> = if nested {
            BTreeSet::new()
        } else {
            changed_differently(&base, &ours, &theirs)
        };
        let conflicts: BTreeSet<String> = merged.conflicts.iter().cloned().collect();
        prop_assert_eq!(&conflicts, &expected, "{}", merged.content);
        prop_assert_eq!(merged.conflicts.len(), merged.content.matches("<<<<<<< ").count());
        for line in conflicted_lines(&merged.content) {
            prop_assert!(
                expected.iter().any(|key| line.trim_start().starts_with(&format!("\"{key}\": "))),
                "line {line:?} is not a conflicting key: {}", merged.content
            );
        }
        for pick in [Pick::Ours, Pick::Theirs] {
            let resolved = resolve(&merged.content, pick);
            prop_assert!(uplift_merge::check(uplift_merge::FileKind::Json, &resolved).is_ok(), "{}", resolved);
            let value: serde_json::Value = serde_json::from_str(&resolved).unwrap();
            let object = if nested { &value["dependencies"] } else { &value };
            for key in ours_added.keys().chain(theirs_added.keys()).chain(base.keys()) {
                prop_assert!(object.get(key).is_some(), "{key} lost: {}", resolved);
            }
            for key in &expected {
                let picked = match pick { Pick::Ours => &ours, Pick::Theirs => &theirs };
                let want = format!("^1.{}.0", picked[key]);
                prop_assert_eq!(object[key.as_str()].as_str(), Some(want.as_str()));
            }
        }
    }
}

type YamlDoc = BTreeMap<String, BTreeMap<String, u8>>;

/// A YAML document: root keys, each a block mapping of sub-keys, with a comment per key
/// (`reworded` keys say so in theirs).
fn yaml_doc(entries: &YamlDoc, reworded: &BTreeSet<String>) -> String {
    let mut out = String::from("# generated\n\n");
    for (key, children) in entries {
        let by = if reworded.contains(key) {
            ", reworded upstream"
        } else {
            ""
        };
        out.push_str(&format!("# about {key}{by}\n{key}:\n"));
        for (child, value) in children {
            out.push_str(&format!("  {child}: {value} # keep me\n"));
        }
        if children.is_empty() {
            out.push_str("  empty: true\n");
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The YAML key merge keeps every key one side added, what it returns parses, a comment
    /// upstream reworded above a key the app changed merges without conflict, and a value both
    /// sides changed differently is a local conflict holding that key's line alone.
    #[test]
    fn structured_yaml_merge_keeps_one_sided_keys(
        base in prop::collection::btree_map("[a-d]", prop::collection::btree_map("[p-s]", 0u8..3, 0..3), 0..4),
        ours_add in prop::collection::btree_map("[a-d]", ("o[p-s]", 0u8..3), 0..3),
        theirs_add in prop::collection::btree_map("[a-d]", ("t[p-s]", 0u8..3), 0..3),
        ours_set in prop::collection::btree_map(("[a-d]", "[p-s]"), 3u8..6, 0..3),
        theirs_set in prop::collection::btree_map(("[a-d]", "[p-s]"), 3u8..6, 0..3),
        reworded in prop::collection::btree_set("[a-d]", 0..3),
        diff3 in any::<bool>(),
    ) {
        let side = |adds: &BTreeMap<String, (String, u8)>, sets: &BTreeMap<(String, String), u8>| {
            let mut doc = base.clone();
            for ((key, child), value) in sets {
                if let Some(old) = doc.get_mut(key).and_then(|c| c.get_mut(child)) {
                    *old = *value;
                }
            }
            for (key, (child, value)) in adds {
                doc.entry(key.clone()).or_default().insert(child.clone(), *value);
            }
            doc
        };
        let (ours, theirs) = (side(&ours_add, &ours_set), side(&theirs_add, &theirs_set));
        let options = TextOptions {
            style: if diff3 { ConflictStyle::Diff3 } else { ConflictStyle::Merge },
            ..TextOptions::default()
        };
        let none = BTreeSet::new();
        // Upstream rewords comments of keys the base has (two different comments added above a
        // key both sides added are a genuine conflict).
        let reworded: BTreeSet<String> = reworded.into_iter().filter(|k| base.contains_key(k)).collect();
        let (b, o, t) = (yaml_doc(&base, &none), yaml_doc(&ours, &none), yaml_doc(&theirs, &reworded));
        // merge(b, b, t) = t, merge(b, o, b) = o, merge(b, x, x) = x, also key by key.
        if !base.is_empty() && !ours.is_empty() && !theirs.is_empty() {
            for (x, y, want) in [(&b, &t, &t), (&o, &b, &o), (&o, &o, &o)] {
                let merged = uplift_merge::merge_yaml(&b, x, y, &options).unwrap();
                prop_assert_eq!(&merged.content, want);
                prop_assert!(merged.conflicts.is_empty());
            }
        }
        let merged = uplift_merge::merge_yaml(&b, &o, &t, &options);
        let Some(merged) = merged else {
            // Only a document without any key is not a mapping to merge.
            prop_assert!(base.is_empty() || ours.is_empty() || theirs.is_empty());
            return Ok(());
        };
        let mut expected = BTreeSet::new();
        for (key, children) in &base {
            for (child, value) in children {
                let (o, t) = (ours[key][child], theirs[key][child]);
                if o != *value && t != *value && o != t {
                    expected.insert(format!("{key}.{child}"));
                }
            }
        }
        let conflicts: BTreeSet<String> = merged.conflicts.iter().cloned().collect();
        prop_assert_eq!(&conflicts, &expected, "{}", merged.content);
        for line in conflicted_lines(&merged.content) {
            prop_assert!(
                expected.iter().any(|path| {
                    let child = path.rsplit('.').next().unwrap_or_default();
                    line.starts_with(&format!("  {child}: ")) && line.ends_with(" # keep me")
                }),
                "line {line:?} is not a conflicting key: {}", merged.content
            );
        }
        if expected.is_empty() {
            prop_assert!(uplift_merge::check(uplift_merge::FileKind::Yaml, &merged.content).is_ok(), "{}", merged.content);
        }
        for pick in [Pick::Ours, Pick::Theirs] {
            let resolved = resolve(&merged.content, pick);
            prop_assert!(uplift_merge::check(uplift_merge::FileKind::Yaml, &resolved).is_ok(), "{}", resolved);
            let value: serde_yaml::Value = serde_yaml::from_str(&resolved).unwrap();
            for (key, (child, _)) in ours_add.iter().chain(&theirs_add) {
                prop_assert!(value[key.as_str()].get(child.as_str()).is_some(), "{key}.{child} lost: {}", resolved);
            }
            for (key, children) in &base {
                for child in children.keys() {
                    let picked = match pick { Pick::Ours => &ours, Pick::Theirs => &theirs };
                    let want = if expected.contains(&format!("{key}.{child}")) {
                        picked[key][child]
                    } else if ours[key][child] != children[child] {
                        ours[key][child]
                    } else {
                        theirs[key][child]
                    };
                    prop_assert_eq!(value[key.as_str()][child.as_str()].as_u64(), Some(u64::from(want)), "{}", resolved);
                }
            }
            // Upstream's rewording is there, whatever the app changed below it.
            for key in &reworded {
                prop_assert!(resolved.contains(&format!("# about {key}, reworded upstream\n")), "{}", resolved);
            }
            prop_assert!(resolved.matches("# keep me").count() >= base.values().map(|c| c.len()).sum::<usize>());
        }
    }
}

fn crlf(text: &str) -> String {
    text.replace('\n', "\r\n")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Line endings: an app whose files use CRLF merges exactly as the same app with LF files,
    /// written back with CRLF (the template stays LF), with the same actions and conflicts.
    #[test]
    fn a_crlf_app_merges_like_its_lf_self(
        name in prop::sample::select(vec!["f", "f.json", "f.yaml", "Dockerfile"]),
        base in text(),
        ours in text(),
        theirs in prop::option::weighted(0.9, text()),
    ) {
        let path = RelPath::new(name).unwrap();
        let tree = |text: Option<&String>| -> Tree {
            text.map(|t| (path.clone(), FileEntry::regular(t.as_bytes()))).into_iter().collect()
        };
        let (base_tree, theirs_tree) = (tree(Some(&base)), tree(theirs.as_ref()));
        let (ours_lf, ours_crlf) = (tree(Some(&ours)), tree(Some(&crlf(&ours))));
        let lf = merge_trees(&base_tree, &theirs_tree, &ours_lf, &MergeOptions::default());
        let windows = merge_trees(&base_tree, &theirs_tree, &ours_crlf, &MergeOptions::default());
        let conflicts = |outcome: &uplift_merge::MergeOutcome| -> Vec<usize> {
            outcome.files.iter().map(|f| f.conflicts).collect()
        };
        prop_assert_eq!(conflicts(&windows), conflicts(&lf));
        let result = |tree: &Tree, outcome: &uplift_merge::MergeOutcome| -> Option<String> {
            apply_changes(tree, &outcome.changes)
                .get(&path)
                .map(|e| String::from_utf8(e.content.to_vec()).unwrap())
        };
        let expected = result(&ours_lf, &lf).map(|text| if ours.contains('\n') { crlf(&text) } else { text });
        prop_assert_eq!(result(&ours_crlf, &windows), expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// `packageManager` both sides changed: the higher version of one package manager, never a
    /// choice across two of them (then a local conflict).
    #[test]
    fn a_version_both_sides_bumped_keeps_the_higher_of_one_name(
        ours in (prop::sample::select(vec!["yarn", "pnpm"]), 0u64..20, 0u64..20, 0u64..20),
        theirs in (prop::sample::select(vec!["yarn", "pnpm"]), 0u64..20, 0u64..20, 0u64..20),
    ) {
        let doc = |value: &str| format!("{{\n  \"name\": \"app\",\n  \"packageManager\": \"{value}\"\n}}\n");
        let value = |(name, a, b, c): (&str, u64, u64, u64)| format!("{name}@{a}.{b}.{c}");
        let (o, t) = (value(ours), value(theirs));
        let base = doc("yarn@3.0.0-rc.1");
        let merged = uplift_merge::merge_json(&base, &doc(&o), &doc(&t), &TextOptions::default()).unwrap();
        let higher = |x: (&str, u64, u64, u64)| (x.1, x.2, x.3);
        if o == t {
            prop_assert_eq!(merged.content, doc(&o));
        } else if ours.0 == theirs.0 {
            let want = if higher(theirs) > higher(ours) { &t } else { &o };
            prop_assert_eq!(merged.content, doc(want));
            prop_assert_eq!(merged.decisions.len(), 1);
            let said = format!("\"{want}\" (higher than");
            prop_assert!(merged.decisions[0].contains(&said), "{:?}", merged.decisions);
        } else {
            prop_assert_eq!(merged.conflicts, ["packageManager"]);
        }
    }
}

/// Lines that look like pieces of YAML, JSON and Dockerfiles, endings of both kinds included.
fn structured_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            "a:",
            "  b: 1",
            "  b: 2",
            "    c: x",
            "# note",
            "  # note",
            "",
            "- x",
            "  - y",
            "{",
            "}",
            "  \"k\": 1,",
            "  \"k\": 2",
            "[",
            "]",
            "yarnPath: .yarn/releases/yarn-4.5.0.cjs",
            "yarnPath: .yarn/releases/yarn-4.13.0.cjs",
            "FROM node:20-bookworm-slim",
            "FROM node:22-bookworm-slim",
            "---",
            "a: {b: 1}",
            "a: [1, 2]",
            "\"packageManager\": \"yarn@4.5.0\"",
        ]),
        0..10,
    )
    .prop_flat_map(|lines| {
        (Just(lines), any::<bool>()).prop_map(|(lines, crlf)| {
            let end = if crlf { "\r\n" } else { "\n" };
            lines.iter().map(|l| format!("{l}{end}")).collect()
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// No input makes the structured merges panic, and a clean result of a JSON/YAML file parses.
    #[test]
    fn structured_merges_never_panic_and_clean_results_parse(
        name in prop::sample::select(vec!["f.json", "f.yaml", "Dockerfile"]),
        base in structured_text(),
        ours in structured_text(),
        theirs in structured_text(),
    ) {
        let path = RelPath::new(name).unwrap();
        let tree = |text: &String| -> Tree {
            [(path.clone(), FileEntry::regular(text.as_bytes()))].into_iter().collect()
        };
        let outcome = merge_trees(&tree(&base), &tree(&theirs), &tree(&ours), &MergeOptions::default());
        let kind = match name {
            "f.json" => uplift_merge::FileKind::Json,
            "f.yaml" => uplift_merge::FileKind::Yaml,
            _ => uplift_merge::FileKind::Text,
        };
        // Nothing is planned where upstream changed nothing.
        if outcome.files.first().map(|f| f.action) == Some(uplift_merge::Action::Merge) {
            let merged = apply_changes(&tree(&ours), &outcome.changes);
            let text = String::from_utf8(merged.get(&path).unwrap().content.to_vec()).unwrap();
            prop_assert!(uplift_merge::check(kind, &text.replace("\r\n", "\n")).is_ok(), "{}", text);
        }
    }
}

/// A TypeScript file as Backstage's backend index is written: imports (one line or one name per
/// line), then registrations.
#[derive(Debug, Clone)]
struct Script {
    imports: Vec<(String, Vec<String>, bool)>,
    registrations: Vec<String>,
}

impl Script {
    fn render(&self) -> String {
        let mut out = String::new();
        for (module, names, multiline) in &self.imports {
            if names.is_empty() {
                continue;
            }
            if *multiline {
                out.push_str("import {\n");
                for name in names {
                    out.push_str(&format!("  {name},\n"));
                }
                out.push_str(&format!("}} from '{module}';\n"));
            } else {
                out.push_str(&format!(
                    "import {{ {} }} from '{module}';\n",
                    names.join(", ")
                ));
            }
        }
        out.push_str("\nconst backend = createBackend();\n\n");
        for plugin in &self.registrations {
            out.push_str(&format!("backend.add(import('{plugin}'));\n"));
        }
        out.push_str("\nbackend.start();\n");
        out
    }
}

/// The imported names of a file written by `Script::render` or by the merge, and the same
/// names qualified by their module (`m0:a0`).
fn imported_names(text: &str) -> (Vec<String>, Vec<String>) {
    let (mut names, mut qualified) = (Vec::new(), Vec::new());
    let mut rest = text;
    while let Some(start) = rest.find("import {") {
        let after = &rest[start + "import {".len()..];
        let Some(end) = after.find('}') else { break };
        let module = after[end..]
            .split('\'')
            .nth(1)
            .unwrap_or_default()
            .to_string();
        for name in after[..end]
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            names.push(name.to_string());
            qualified.push(format!("{module}:{name}"));
        }
        rest = &after[end..];
    }
    (names, qualified)
}

fn count<'a>(items: impl IntoIterator<Item = &'a String>, item: &str) -> usize {
    items.into_iter().filter(|i| *i == item).count()
}

fn script_base() -> impl Strategy<Value = Script> {
    (
        prop::collection::vec(
            (
                prop::sample::subsequence(vec!["a", "b", "c", "d"], 0..4),
                any::<bool>(),
            ),
            1..4,
        ),
        prop::collection::vec(prop::sample::select(vec!["p", "q", "r"]), 0..3),
    )
        .prop_map(|(modules, registrations)| Script {
            imports: modules
                .into_iter()
                .enumerate()
                .map(|(i, (names, multiline))| {
                    let names = names.iter().map(|n| format!("{n}{i}")).collect();
                    (format!("m{i}"), names, multiline)
                })
                .collect(),
            registrations: registrations.into_iter().map(String::from).collect(),
        })
}

/// One side's edit: names removed, names added (from a pool both sides share, so both sides
/// may add one name, to one module or to two), the order reversed, the layout switched, and
/// plugins registered at a position.
#[derive(Debug, Clone)]
struct ScriptEdit {
    remove: Vec<bool>,
    add: Vec<(usize, String)>,
    reverse: Vec<bool>,
    relayout: Vec<bool>,
    register: Vec<(usize, String)>,
}

fn script_edit() -> impl Strategy<Value = ScriptEdit> {
    (
        prop::collection::vec(prop::bool::weighted(0.2), 12),
        prop::collection::vec(
            (
                0usize..4,
                prop::sample::select(vec!["x", "y", "z", "a0", "b1"]).prop_map(String::from),
            ),
            0..3,
        ),
        prop::collection::vec(prop::bool::weighted(0.2), 4),
        prop::collection::vec(prop::bool::weighted(0.2), 4),
        prop::collection::vec(
            (
                0usize..5,
                prop::sample::select(vec!["s", "t", "p"]).prop_map(String::from),
            ),
            0..2,
        ),
    )
        .prop_map(|(remove, add, reverse, relayout, register)| ScriptEdit {
            remove,
            add,
            reverse,
            relayout,
            register,
        })
}

fn edit_script(base: &Script, edit: &ScriptEdit) -> Script {
    let mut script = base.clone();
    let mut flags = edit.remove.iter();
    for (index, (_, names, multiline)) in script.imports.iter_mut().enumerate() {
        names.retain(|_| !flags.next().copied().unwrap_or(false));
        if edit.reverse.get(index).copied().unwrap_or(false) {
            names.reverse();
        }
        if edit.relayout.get(index).copied().unwrap_or(false) {
            *multiline = !*multiline;
        }
    }
    for (module, name) in &edit.add {
        let count = script.imports.len();
        let names = &mut script.imports[module % count].1;
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    for (at, plugin) in &edit.register {
        let at = at % (script.registrations.len() + 1);
        script.registrations.insert(at, plugin.clone());
    }
    script
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// A clean merge of a script file never imports a name twice unless an input did, never
    /// registers a plugin more often than a side did, keeps every name one side added and drops
    /// every name one side removed; and merge(b, b, t) = t, merge(b, x, x) = x hold as for text.
    #[test]
    fn a_clean_script_merge_imports_no_name_twice(
        base in script_base(),
        ours_edit in script_edit(),
        theirs_edit in script_edit(),
    ) {
        let (ours, theirs) = (edit_script(&base, &ours_edit), edit_script(&base, &theirs_edit));
        let texts = [base.render(), ours.render(), theirs.render()];
        let path = RelPath::new("packages/backend/src/index.ts").unwrap();
        let tree = |text: &str| -> Tree { [(path.clone(), FileEntry::regular(text.as_bytes()))].into_iter().collect() };
        let (base_tree, ours_tree, theirs_tree) = (tree(&texts[0]), tree(&texts[1]), tree(&texts[2]));
        let options = MergeOptions::default();
        prop_assert_eq!(apply_changes(&base_tree, &merge_trees(&base_tree, &theirs_tree, &base_tree, &options).changes), theirs_tree.clone());
        prop_assert_eq!(apply_changes(&ours_tree, &merge_trees(&base_tree, &ours_tree, &ours_tree, &options).changes), ours_tree.clone());

        let outcome = merge_trees(&base_tree, &theirs_tree, &ours_tree, &options);
        let merged = apply_changes(&ours_tree, &outcome.changes);
        let result = String::from_utf8(merged.get(&path).unwrap().content.to_vec()).unwrap();
        if outcome.files.first().is_none_or(|f| f.action != uplift_merge::Action::Merge) {
            return Ok(());
        }
        let (names, qualified) = imported_names(&result);
        let [base, ours, theirs] = texts.each_ref().map(|t| imported_names(t));
        for name in &names {
            let most = count(&ours.0, name).max(count(&theirs.0, name)).max(1);
            prop_assert!(count(&names, name) <= most, "{name} imported twice:\n{result}");
        }
        let (names, base_names, ours_names, theirs_names) = (qualified, base.1, ours.1, theirs.1);
        for (side, other) in [(&ours_names, &theirs_names), (&theirs_names, &ours_names)] {
            for name in side {
                if !base_names.contains(name) {
                    prop_assert!(names.contains(name), "{name}, added, lost:\n{result}");
                }
            }
            for name in &base_names {
                if !side.contains(name) {
                    prop_assert!(!names.contains(name) || (other.contains(name) && count(other, name) > count(&base_names, name)), "{name}, removed, kept:\n{result}");
                }
            }
        }
        for plugin in ["p", "q", "r", "s", "t"] {
            let line = format!("backend.add(import('{plugin}'));");
            let most = texts[1].matches(&line).count().max(texts[2].matches(&line).count());
            prop_assert!(result.matches(&line).count() <= most, "{plugin} registered too often:\n{result}");
        }
    }
}

/// Lines of TypeScript/TSX that meet in odd ways: import lists, registrations, JSX, arrays.
fn script_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            "import { a } from 'x';",
            "import { a, b } from 'x';",
            "import type { T } from 'x';",
            "import c from 'y';",
            "import {",
            "  a,",
            "  b as c,",
            "} from 'y';",
            "backend.add(import('p'));",
            "backend.add(import('q'));",
            "const r = (",
            "  <R>",
            "    <A x=\"1\" />",
            "  </R>",
            ");",
            "f({ features: [",
            "  a,",
            "] });",
            "// note",
            "",
        ]),
        0..14,
    )
    .prop_map(|lines| lines.iter().map(|l| format!("{l}\n")).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any three script texts: the merge never panics, and whatever it reports as a clean merge
    /// passes every check (`check_merged`).
    #[test]
    fn a_clean_script_merge_always_passes_the_checks(
        base in script_text(),
        ours in script_text(),
        theirs in script_text(),
        name in prop::sample::select(vec!["App.tsx", "index.ts", "a.js"]),
    ) {
        let path = RelPath::new(format!("src/{name}")).unwrap();
        let tree = |text: &str| -> Tree { [(path.clone(), FileEntry::regular(text.as_bytes()))].into_iter().collect() };
        let outcome = merge_trees(&tree(&base), &tree(&theirs), &tree(&ours), &MergeOptions::default());
        if outcome.files.first().is_some_and(|f| f.action == uplift_merge::Action::Merge) {
            let merged = apply_changes(&tree(&ours), &outcome.changes);
            let result = String::from_utf8(merged.get(&path).unwrap().content.to_vec()).unwrap();
            prop_assert_eq!(uplift_merge::check_merged(&path, [&base, &ours, &theirs], &result), Ok(()), "{}", result);
        }
    }
}
