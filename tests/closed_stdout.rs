//! A reader that closes stdout early (`uplift plan … | head -1`) ends every command quietly:
//! exit 0 (ripgrep's convention), no panic, nothing on stderr.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::*;

/// Runs uplift with `args`, reads one line of its stdout, closes the pipe, and returns the exit
/// code and stderr. The output must be far bigger than a pipe's buffer (64 KiB), so uplift is
/// still writing when the reader goes.
fn first_line_then_close(args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = uplift()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    {
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        reader.read_line(&mut line).unwrap();
    } // stdout closed here
    let output = child.wait_with_output().unwrap();
    (output.status.code(), line, stderr(&output))
}

#[test]
fn every_data_command_exits_quietly_when_the_reader_closes_stdout() {
    // 1,000 conflicting files: every format's output is well over a pipe's 64 KiB.
    let dir = many_conflicts(1_000);
    let upstream = format!("dir:{}", dir.path().join("upstream").display());
    let app = dir.path().join("app");
    let app = app.to_str().unwrap();
    let commands: Vec<Vec<&str>> = vec![
        vec!["plan", "--upstream", &upstream, "--app", app],
        vec![
            "plan",
            "--upstream",
            &upstream,
            "--app",
            app,
            "--format",
            "json",
        ],
        vec![
            "plan",
            "--upstream",
            &upstream,
            "--app",
            app,
            "--format",
            "patch",
        ],
        vec![
            "plan",
            "--upstream",
            &upstream,
            "--app",
            app,
            "--format",
            "markdown",
        ],
        vec![
            "diff",
            "--upstream",
            &upstream,
            "--from",
            "1.0.0",
            "--to",
            "2.0.0",
        ],
        vec![
            "check",
            "--plan",
            "--upstream",
            &upstream,
            "--app",
            app,
            "--format",
            "json",
        ],
        vec!["completions", "zsh"],
    ];
    for args in commands {
        let (code, first, stderr) = first_line_then_close(&args);
        assert!(!first.is_empty(), "uplift {args:?} printed nothing");
        assert!(!stderr.contains("panicked"), "uplift {args:?}: {stderr}");
        assert_eq!(code, Some(0), "uplift {args:?}: {stderr}");
        assert_eq!(stderr, "", "uplift {args:?}");
    }
}

#[test]
fn validate_json_exits_quietly_when_the_reader_closes_stdout() {
    // A pipeline with hundreds of problems makes a JSON report far over a pipe's buffer.
    let dir = tempfile::tempdir().unwrap();
    let mut yaml = String::from("name: big\nstages:\n");
    for i in 0..200 {
        yaml.push_str(&format!(
            "  s{i}: {{ uses: no-such-type-{i}, needs: missing-{i} }}\n"
        ));
    }
    let file = dir.path().join("pipeline.yml");
    std::fs::write(&file, yaml).unwrap();
    let (code, first, stderr) =
        first_line_then_close(&["validate", "-p", file.to_str().unwrap(), "--format", "json"]);
    assert!(!first.is_empty());
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Exit 0 because the reader left; the full answer would have been 2 (invalid file).
    assert_eq!(code, Some(0), "{stderr}");
}
