//! `uplift plan --timings`: where a plan spent its time, per phase, on stderr (issue 14).
//! The snapshot holds the shape (phases, order, counts); durations are filtered out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ACME, fixture_app, run, stderr, stdout, uplift};

fn timings(extra: &[&str]) -> String {
    let app = fixture_app();
    let output = run(uplift()
        .arg("plan")
        .arg("--app")
        .arg(app.path())
        .args(ACME)
        .args(["--to", "2.0.0", "--format", "json", "--timings"])
        .args(extra));
    assert!(
        output.status.code().is_some_and(|c| c <= 1),
        "{}",
        stderr(&output)
    );
    // The plan itself is unchanged on stdout.
    assert!(stdout(&output).starts_with('{'), "{}", stdout(&output));
    stderr(&output)
}

#[test]
fn plan_timings_lists_every_phase_on_stderr() {
    insta::with_settings!({filters => vec![(r" +\d+\.\d ms", " [ms]")]}, {
        insta::assert_snapshot!(timings(&[]));
    });
}

#[test]
fn stepwise_plan_timings_count_the_phases_run_once_per_step() {
    insta::with_settings!({filters => vec![(r" +\d+\.\d ms", " [ms]")]}, {
        insta::assert_snapshot!(timings(&["--stepwise"]));
    });
}

#[test]
fn without_timings_stderr_stays_empty() {
    let app = fixture_app();
    let output = run(uplift()
        .arg("plan")
        .arg("--app")
        .arg(app.path())
        .args(ACME)
        .args(["--to", "2.0.0", "--format", "json"]));
    assert_eq!(stderr(&output), "");
}
