//! Errors and outputs that used to mislead (issue 11, item 10): each says what it means.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

#[test]
fn a_missing_git_path_says_it_does_not_exist() {
    let output = run(uplift().args(["releases", "--upstream", "git:/no/such/dir"]));
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{err}");
    assert!(err.contains("/no/such/dir"), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert!(!err.contains("unsupported URL protocol"), "{err}");
    assert!(err.contains("hint: "), "{err}");
}

#[test]
fn a_missing_dir_folder_has_a_hint() {
    let output = run(uplift().args(["releases", "--upstream", "dir:/no/such/releases"]));
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{err}");
    assert!(err.contains("no such folder"), "{err}");
    assert!(
        err.contains("hint: ") && err.contains("one sub-folder per release"),
        "{err}"
    );
}

#[test]
fn the_source_kinds_include_npm() {
    let output = run(uplift().args(["releases", "--upstream", "svn:x"]));
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains("npm:PACKAGE"), "{err}");
    let help = stdout(&run(uplift().args(["plan", "--help"])));
    assert!(help.contains("npm:PACKAGE"), "{help}");
}

#[test]
fn check_offers_no_stepwise() {
    let help = stdout(&run(uplift().args(["check", "--help"])));
    assert!(!help.contains("--stepwise"), "{help}");
    let output = run(uplift().args([
        "check",
        "--stepwise",
        "--upstream",
        "dir:fixtures/templates/acme",
    ]));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no --stepwise"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn help_texts_agree_with_the_readme() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let apply = stdout(&run(uplift().args(["apply", "--help"])));
    for format in ["text", "json", "markdown", "patch"] {
        assert!(
            apply.contains(&format!("`{format}`")),
            "apply --help: {format}"
        );
    }
    assert!(
        readme.contains("[--format text|json|markdown|patch]`:\n  writes all or nothing"),
        "the README's apply line names the same formats"
    );
    let run_help = stdout(&run(uplift().args(["run", "--help"])));
    assert!(run_help.contains("inside GitHub Actions 5"), "{run_help}");
    assert!(readme.contains("defaults to 5 s instead of 10 s unless `--grace`"));
}

#[test]
fn an_output_file_without_a_final_newline_is_not_corrupted() {
    let dir = tempfile::tempdir().unwrap();
    let output_file = dir.path().join("github_output");
    std::fs::write(&output_file, "earlier=step").unwrap();
    let app = fixture_app();
    let output = run(uplift()
        .args(["check", "--github"])
        .args(ACME)
        .arg("--app")
        .arg(app.path())
        .env("GITHUB_OUTPUT", &output_file)
        .env("GITHUB_STEP_SUMMARY", dir.path().join("summary")));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let parsed =
        uplift_github::parse_outputs(&std::fs::read_to_string(&output_file).unwrap()).unwrap();
    assert_eq!(parsed[0], ("earlier".to_string(), "step".to_string()));
    assert!(
        parsed.contains(&("upgrade-available".to_string(), "true".to_string())),
        "{parsed:?}"
    );
}

#[test]
fn a_backtick_in_a_file_name_keeps_its_code_span() {
    use pulldown_cmark::{Event, Options, Parser};
    let dir = tempfile::tempdir().unwrap();
    for release in ["1.0.0", "2.0.0"] {
        let root = dir.path().join("up").join(release);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("README.md"), format!("{release}\n")).unwrap();
    }
    let odd = ["odd`name.md", "``double``.md", "`lead.md"];
    for name in odd {
        std::fs::write(dir.path().join("up/2.0.0").join(name), "new\n").unwrap();
    }
    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("README.md"), "1.0.0\n").unwrap();
    std::fs::write(app.join("backstage.json"), "{\"version\": \"1.0.0\"}\n").unwrap();
    let upstream = format!("dir:{}", dir.path().join("up").display());
    let output = run(uplift()
        .args([
            "plan",
            "--format",
            "markdown",
            "--upstream",
            &upstream,
            "--app",
        ])
        .arg(&app));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let markdown = stdout(&output);
    let spans: Vec<String> = Parser::new_ext(&markdown, Options::ENABLE_TABLES)
        .filter_map(|e| match e {
            Event::Code(c) => Some(c.to_string()),
            _ => None,
        })
        .collect();
    for name in odd {
        assert!(
            spans.iter().any(|s| s == name),
            "{name} not shown: {spans:?}\n{markdown}"
        );
    }
}
