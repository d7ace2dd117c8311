//! `uplift apply --branch --pr-body FILE` on a conflicting upgrade: the branch is committed with
//! the markers, and the body lists every conflict first, with its reason, as valid markdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;

use common::*;
use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

/// Headings, list items (as text with code spans kept in backticks) and table rows.
#[derive(Debug, Default)]
struct Doc {
    headings: Vec<String>,
    /// (the heading the list is under, item text)
    items: Vec<(String, String)>,
    table_rows: Vec<Vec<String>>,
    links: Vec<String>,
}

fn parse(markdown: &str) -> Doc {
    let mut doc = Doc::default();
    let mut text = String::new();
    let mut in_heading = false;
    let mut in_item = false;
    let mut row: Option<Vec<String>> = None;
    let mut current_heading = String::new();
    for event in Parser::new_ext(markdown, Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS) {
        match event {
            Event::Start(Tag::Heading { .. }) => {
                in_heading = true;
                text.clear();
            }
            Event::End(TagEnd::Heading(_)) => {
                in_heading = false;
                current_heading = text.clone();
                doc.headings.push(text.clone());
            }
            Event::Start(Tag::Item) => {
                in_item = true;
                text.clear();
            }
            Event::End(TagEnd::Item) => {
                in_item = false;
                doc.items
                    .push((current_heading.clone(), text.trim().to_string()));
            }
            Event::Start(Tag::TableRow) | Event::Start(Tag::TableHead) => row = Some(Vec::new()),
            Event::End(TagEnd::TableRow) | Event::End(TagEnd::TableHead) => {
                doc.table_rows.extend(row.take());
            }
            Event::Start(Tag::TableCell) => text.clear(),
            Event::End(TagEnd::TableCell) => {
                if let Some(r) = row.as_mut() {
                    r.push(text.clone());
                }
            }
            Event::Start(Tag::Link { dest_url, .. }) => doc.links.push(dest_url.to_string()),
            Event::Text(t) => text.push_str(&t),
            Event::Code(c) => {
                text.push('`');
                text.push_str(&c);
                text.push('`');
            }
            _ => {}
        }
        let _ = (in_heading, in_item, HeadingLevel::H1);
    }
    doc
}

#[test]
fn pr_body_lists_every_conflict_first_with_its_reason() {
    let app = conflicting_app();
    git_commit_all(app.path());
    let body_file = app.path().join("..").join(format!(
        "pr-body-{}.md",
        app.path().file_name().unwrap().to_string_lossy()
    ));
    // Plan first: the conflicts and reasons the body must list.
    let plan = run(uplift()
        .args(["plan", "--format", "json", "--to", "2.0.0"])
        .args(ACME)
        .arg("--app")
        .arg(app.path()));
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let conflicts: Vec<(String, String)> = plan["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["action"] == "conflict")
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(conflicts.len() >= 3, "{conflicts:?}");

    let output = run(uplift()
        .args([
            "apply",
            "--to",
            "2.0.0",
            "--branch",
            "uplift/2.0.0",
            "--pr-body",
        ])
        .arg(&body_file)
        .args(ACME)
        .arg("--app")
        .arg(app.path()));
    // Conflicts remain: exit 1, but the branch is committed with the markers and the body written.
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let repo = git2::Repository::open(app.path()).unwrap();
    let head = repo.head().unwrap();
    assert_eq!(head.shorthand().unwrap(), "uplift/2.0.0");
    let readme = fs::read_to_string(app.path().join("README.md")).unwrap();
    assert!(readme.contains("<<<<<<< "), "{readme}");
    assert!(
        repo.statuses(None)
            .unwrap()
            .iter()
            .all(|s| s.status().is_empty() || s.status() == git2::Status::WT_NEW)
    );

    let body = fs::read_to_string(&body_file).unwrap();
    let _ = fs::remove_file(&body_file);
    let doc = parse(&body);
    assert_eq!(
        doc.headings.first().map(String::as_str),
        Some("Upgrade 1.0.0 → 2.0.0")
    );
    // The conflicts section comes before every other section.
    assert_eq!(
        doc.headings.get(1).map(String::as_str),
        Some("Conflicts to resolve"),
        "{body}"
    );
    let listed: Vec<&String> = doc
        .items
        .iter()
        .filter(|(h, _)| h == "Conflicts to resolve")
        .map(|(_, t)| t)
        .collect();
    assert_eq!(listed.len(), conflicts.len(), "{body}");
    for (path, reason) in &conflicts {
        let item = listed
            .iter()
            .find(|t| t.starts_with(&format!("`{path}`")))
            .unwrap_or_else(|| panic!("{path} not listed: {listed:?}"));
        assert!(item.contains(reason.as_str()), "{item} lacks {reason}");
    }
    // README's first conflict marker line is given.
    let marker_line = readme
        .lines()
        .position(|l| l.starts_with("<<<<<<<"))
        .unwrap()
        + 1;
    assert!(
        listed
            .iter()
            .any(|t| t.starts_with(&format!("`README.md` (line {marker_line})"))),
        "{listed:?}"
    );
    // Backstage links for these releases (the app's marker is backstage.json).
    assert!(
        doc.links
            .iter()
            .any(|l| l.contains("upgrade-helper/?from=1.0.0&to=2.0.0")),
        "{:?}",
        doc.links
    );
    assert!(doc.links.iter().any(|l| l.ends_with("v2.0.0-changelog.md")));
    // The file table parses as a table: a header and one row of 3 cells per planned file.
    assert_eq!(
        doc.table_rows.len(),
        plan["files"].as_array().unwrap().len() + 1
    );
    assert!(
        doc.table_rows.iter().all(|r| r.len() == 3),
        "{:?}",
        doc.table_rows
    );
    assert!(body.len() < 65_536);
}

/// 3,000 conflicting files: the body fits GitHub's limit with the reserve kept for the test
/// summary the weekly workflow appends, lists conflicts first, counts the rest and says where
/// the full list is, and what is appended after it still renders as markdown.
#[test]
fn pr_body_of_3000_conflicts_fits_with_the_appended_test_summary() {
    let dir = many_conflicts(3_000);
    let upstream = format!("dir:{}", dir.path().join("upstream").display());
    let body_file = dir.path().join("body.md");
    let output = run(uplift()
        .args(["apply", "--upstream", &upstream, "--app"])
        .arg(dir.path().join("app"))
        .args(["--branch", "uplift/2.0.0", "--allow-conflicts", "--pr-body"])
        .arg(&body_file));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let body = fs::read_to_string(&body_file).unwrap();
    let reserve = 16_384;
    assert!(
        body.chars().count() <= 65_536 - reserve,
        "{} characters",
        body.chars().count()
    );
    assert!(body.len() > 40_000, "the room is used: {}", body.len());
    let doc = parse(&body);
    assert_eq!(
        doc.headings.get(1).map(String::as_str),
        Some("Conflicts to resolve")
    );
    let items: Vec<&String> = doc
        .items
        .iter()
        .filter(|(h, _)| h == "Conflicts to resolve")
        .map(|(_, t)| t)
        .collect();
    let more = items.last().unwrap();
    let left: usize = more
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no count in {more}"));
    assert_eq!(items.len() - 1 + left, 3_000, "{more}");
    assert!(more.contains("uplift check --plan --format json"), "{more}");
    assert!(
        body.ends_with("</details>\n\n"),
        "{:?}",
        &body[body.len() - 40..]
    );

    // The weekly workflow's test run, its summary cut to the reserve, appended to the body.
    let work = tempfile::tempdir().unwrap();
    let mut pipeline = String::from("name: tests\nstages:\n");
    for i in 0..200 {
        pipeline.push_str(&format!(
            "  a-test-stage-with-a-rather-long-name-to-fill-the-summary-table-{i:03}: {{ uses: run, with: {{ run: 'true' }} }}\n"
        ));
    }
    fs::write(work.path().join("p.yml"), pipeline).unwrap();
    let tests_md = work.path().join("tests.md");
    let output = run(uplift()
        .current_dir(work.path())
        .args(["run", "-p", "p.yml", "--github", "--summary-limit"])
        .arg(reserve.to_string())
        .env("GITHUB_STEP_SUMMARY", &tests_md)
        .env("GITHUB_OUTPUT", work.path().join("out")));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let tests = fs::read_to_string(&tests_md).unwrap();
    assert!(tests.len() <= reserve, "{}", tests.len());
    assert!(
        tests.contains("This summary was cut"),
        "the run's table is cut"
    );
    let whole = format!("{body}{tests}");
    assert!(whole.chars().count() <= 65_536);
    // The appended heading is a heading, not text inside the `<details>` HTML block.
    let doc = parse(&whole);
    assert!(
        doc.headings.iter().any(|h| h == "Pipeline success"),
        "{:?}",
        doc.headings
    );
}
