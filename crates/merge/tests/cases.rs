//! Merge cases as folders: `fixtures/merge/<case>/{base,ours,theirs,expected}/<file>`, and
//! optionally `<case>/reason`: the plan's reason for the file, exactly.
//!
//! Each case conflicts under plain `git merge-file` (checked here too) and must merge cleanly,
//! to exactly `expected`, under Uplift.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use uplift_merge::{Action, MergeOptions, merge_trees};
use uplift_tree::{Change, FileEntry, RelPath, Tree};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/merge")
}

fn single(dir: &Path, name: &str) -> Tree {
    let content = std::fs::read(dir.join(name)).unwrap();
    [(RelPath::new(name).unwrap(), FileEntry::regular(content))]
        .into_iter()
        .collect()
}

#[test]
fn every_case_merges_cleanly_where_git_merge_file_conflicts() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 5, "the cases are missing");
    for case in cases {
        let label = case.file_name().unwrap().to_string_lossy().into_owned();
        let name = std::fs::read_dir(case.join("base"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .file_name();
        let name = name.to_str().unwrap();
        let (base, ours, theirs) = (
            single(&case.join("base"), name),
            single(&case.join("ours"), name),
            single(&case.join("theirs"), name),
        );
        let outcome = merge_trees(&base, &theirs, &ours, &MergeOptions::default());
        assert_eq!(outcome.files.len(), 1, "{label}");
        assert_eq!(
            outcome.files[0].action,
            Action::Merge,
            "{label}: {:?}",
            outcome.files[0]
        );
        let Change::Write { entry, .. } = &outcome.changes[0] else {
            panic!("{label}: no write")
        };
        let expected = std::fs::read_to_string(case.join("expected").join(name)).unwrap();
        assert_eq!(
            std::str::from_utf8(&entry.content).unwrap(),
            expected,
            "{label}"
        );
        if let Ok(reason) = std::fs::read_to_string(case.join("reason")) {
            assert_eq!(
                outcome.files[0].reason.as_deref(),
                Some(reason.trim_end()),
                "{label}"
            );
        }

        let scratch = tempfile::tempdir().unwrap();
        let ours_copy = scratch.path().join("ours");
        std::fs::copy(case.join("ours").join(name), &ours_copy).unwrap();
        let git = Command::new("git")
            .arg("merge-file")
            .arg("-p")
            .arg(&ours_copy)
            .arg(case.join("base").join(name))
            .arg(case.join("theirs").join(name))
            .output()
            .unwrap();
        assert!(
            git.status.code().unwrap_or(0) >= 1,
            "{label}: git merge-file did not conflict"
        );
    }
}

#[test]
fn a_merge_that_breaks_json_is_a_conflict_not_a_clean_merge() {
    // Both sides add key "b", far apart: the lines merge cleanly into a duplicated key.
    let base = "{\n  \"a\": 1,\n  \"m\": 2,\n  \"n\": 3,\n  \"z\": 4\n}\n";
    let ours = base.replace("  \"a\": 1,\n", "  \"a\": 1,\n  \"b\": 1,\n");
    let theirs = base.replace("  \"n\": 3,\n", "  \"n\": 3,\n  \"b\": 2,\n");
    let tree = |text: &str| -> Tree {
        [(
            RelPath::new("x.json").unwrap(),
            FileEntry::regular(text.as_bytes()),
        )]
        .into_iter()
        .collect()
    };
    for structured in [false, true] {
        let options = MergeOptions {
            structured,
            ..MergeOptions::default()
        };
        let outcome = merge_trees(&tree(base), &tree(&theirs), &tree(&ours), &options);
        assert_eq!(
            outcome.files[0].action,
            Action::Conflict,
            "{:?}",
            outcome.files[0]
        );
        let reason = outcome.files[0].reason.clone().unwrap_or_default();
        assert_eq!(outcome.files[0].conflicts, 1);
        if structured {
            // Key by key, the two "b"s are one local conflict.
            assert_eq!(
                reason,
                "1 conflicting region between your changes and upstream's; in key `b`; everything else merged key by key"
            );
        } else {
            assert!(reason.contains("duplicate key \"b\""), "{reason}");
        }
    }
}

fn one_file(name: &str, text: &str) -> Tree {
    [(
        RelPath::new(name).unwrap(),
        FileEntry::regular(text.as_bytes()),
    )]
    .into_iter()
    .collect()
}

#[test]
fn one_conflicting_key_among_merged_ones_is_one_conflict_in_the_plan() {
    // Both sides changed `scripts.start`; each added a different dependency.
    let base = "{\n  \"name\": \"root\",\n  \"scripts\": {\n    \"start\": \"backstage-cli repo start\",\n    \"tsc\": \"tsc\"\n  },\n  \"dependencies\": {\n    \"@backstage/cli\": \"^0.34.0\"\n  }\n}\n";
    let ours = base
        .replace("repo start\"", "repo start --inspect\"")
        .replace(
            "\"@backstage/cli\": \"^0.34.0\"",
            "\"@acme/lint\": \"^1.0.0\",\n    \"@backstage/cli\": \"^0.34.0\"",
        );
    let theirs = base
        .replace("repo start\"", "repo start --require ./otel.js\"")
        .replace(
            "\"@backstage/cli\": \"^0.34.0\"",
            "\"@backstage/cli\": \"^0.34.0\",\n    \"@backstage/e2e-test-utils\": \"^0.1.1\"",
        );
    let outcome = merge_trees(
        &one_file("package.json", base),
        &one_file("package.json", &theirs),
        &one_file("package.json", &ours),
        &MergeOptions::default(),
    );
    let summary = uplift_merge::Summary::of(&outcome.files);
    assert_eq!((summary.conflict, summary.conflicts), (1, 1));
    assert_eq!(
        outcome.files[0].reason.as_deref(),
        Some(
            "1 conflicting region between your changes and upstream's; in key `scripts.start`; everything else merged key by key"
        )
    );
    let Change::Write { entry, .. } = &outcome.changes[0] else {
        panic!("no write")
    };
    assert_eq!(
        std::str::from_utf8(&entry.content).unwrap(),
        "{\n  \"name\": \"root\",\n  \"scripts\": {\n<<<<<<< app\n    \"start\": \"backstage-cli repo start --inspect\",\n=======\n    \"start\": \"backstage-cli repo start --require ./otel.js\",\n>>>>>>> upstream\n    \"tsc\": \"tsc\"\n  },\n  \"dependencies\": {\n    \"@acme/lint\": \"^1.0.0\",\n    \"@backstage/cli\": \"^0.34.0\",\n    \"@backstage/e2e-test-utils\": \"^0.1.1\"\n  }\n}\n"
    );
}

#[test]
fn an_app_with_crlf_files_merges_against_an_lf_template() {
    let base = "app:\n  title: Portal\n\nbackend:\n  listen:\n    port: 7007\n";
    let theirs = base.replace("port: 7007", "port: 7007\n    host: 0.0.0.0");
    // The app changed only the endings of one file, and a value of another.
    let crlf = |text: &str| text.replace('\n', "\r\n");
    let tree = |a: &str, b: &str| -> Tree {
        [("a.yaml", a), ("b.yaml", b)]
            .into_iter()
            .map(|(name, text)| {
                (
                    RelPath::new(name).unwrap(),
                    FileEntry::regular(text.as_bytes()),
                )
            })
            .collect()
    };
    let ours = tree(&crlf(base), &crlf(&base.replace("Portal", "Acme")));
    let outcome = merge_trees(
        &tree(base, base),
        &tree(&theirs, &theirs),
        &ours,
        &MergeOptions::default(),
    );
    let actions: Vec<Action> = outcome.files.iter().map(|f| f.action).collect();
    assert_eq!(actions, [Action::Update, Action::Merge]);
    let written: Vec<String> = outcome
        .changes
        .iter()
        .map(|change| match change {
            Change::Write { entry, .. } => String::from_utf8(entry.content.to_vec()).unwrap(),
            Change::Delete { path } => panic!("deleted {path}"),
        })
        .collect();
    assert_eq!(
        written,
        [crlf(&theirs), crlf(&theirs.replace("Portal", "Acme"))]
    );
}

#[test]
fn both_sides_bumping_yarn_get_upstreams_release_file_next_to_the_merged_yarnpath() {
    // A release file named by its version is replaced, not renamed: when the app bumped yarn
    // too (deleting the old release), upstream's new release must still be written.
    let release = |version: &str| format!(".yarn/releases/yarn-{version}.cjs");
    let bundle = |version: &str| -> String {
        // Releases share most of their code.
        let code: String = (0..200)
            .map(|line| format!("module{line}.run();\n"))
            .collect();
        format!("const version = '{version}';\n{code}")
    };
    let yarnrc = |plugins: bool, version: &str| -> String {
        let plugins = if plugins {
            "plugins:\n  - path: .yarn/plugins/@yarnpkg/plugin-backstage.cjs\n\n"
        } else {
            ""
        };
        format!(
            "nodeLinker: node-modules\n\n{plugins}yarnPath: {}\n",
            release(version)
        )
    };
    let tree = |files: Vec<(String, String)>| -> Tree {
        files
            .into_iter()
            .map(|(path, text)| {
                (
                    RelPath::new(path).unwrap(),
                    FileEntry::regular(text.into_bytes()),
                )
            })
            .collect()
    };
    let base = tree(vec![
        (".yarnrc.yml".into(), yarnrc(false, "4.4.1")),
        (release("4.4.1"), bundle("4.4.1")),
    ]);
    let theirs = tree(vec![
        (".yarnrc.yml".into(), yarnrc(false, "4.13.0")),
        (release("4.13.0"), bundle("4.13.0")),
    ]);
    let ours = tree(vec![
        (".yarnrc.yml".into(), yarnrc(true, "4.5.0")),
        (release("4.5.0"), bundle("4.5.0")),
    ]);
    let outcome = merge_trees(&base, &theirs, &ours, &MergeOptions::default());
    let summary = uplift_merge::Summary::of(&outcome.files);
    assert_eq!(summary.conflict, 0, "{:#?}", outcome.files);
    let written: Vec<(&str, String)> = outcome
        .changes
        .iter()
        .filter_map(|change| match change {
            Change::Write { path, entry } => Some((
                path.as_str(),
                String::from_utf8(entry.content.to_vec()).unwrap(),
            )),
            Change::Delete { .. } => None,
        })
        .collect();
    assert!(
        written.contains(&(".yarnrc.yml", yarnrc(true, "4.13.0"))),
        "{written:?}"
    );
    assert!(
        written.iter().any(|(path, _)| *path == release("4.13.0")),
        "{written:?}"
    );
}
