//! Cancellation inside GitHub's budget: the runner sends SIGINT, SIGTERM ~7.5 s later, then
//! kills. Clean-up (`finally`) must start at the first signal, the run must end before the kill,
//! and the outputs and summary must still say `cancelled`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn wait_for(path: &Path, limit: Duration) {
    let start = Instant::now();
    while !path.exists() {
        assert!(start.elapsed() < limit, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn sigint_starts_cleanup_at_once_and_the_run_ends_inside_githubs_budget() {
    let work = tempfile::tempdir().unwrap();
    let d = work.path();
    let pipeline = r#"name: cancel
stages:
  deploy:
    uses: run
    with:
      run: |
        touch started
        sleep 60
finally:
  cleanup:
    uses: run
    with:
      run: |
        date +%s%N > cleanup-started
        echo rolled back
"#;
    fs::write(d.join("p.yml"), pipeline).unwrap();
    let (out_file, summary_file) = (d.join("gh_output"), d.join("gh_summary"));
    fs::write(&out_file, "").unwrap();
    fs::write(&summary_file, "").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_uplift"))
        .args(["run", "-p", "p.yml", "--grace", "3"])
        .current_dir(d)
        .env("NO_COLOR", "1")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &out_file)
        .env("GITHUB_STEP_SUMMARY", &summary_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&d.join("started"), Duration::from_secs(30));
    let first = Instant::now();
    let first_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    signal(child.id(), "INT");
    // As the runner: SIGTERM at 7.5 s, the kill at 10 s.
    let mut sent_term = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        let elapsed = first.elapsed();
        if elapsed >= Duration::from_millis(7500) && !sent_term {
            signal(child.id(), "TERM");
            sent_term = true;
        }
        if elapsed >= Duration::from_secs(10) {
            child.kill().unwrap();
            panic!("still running 10 s after SIGINT: GitHub would have killed it");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = first.elapsed();
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(
        took < Duration::from_millis(7500),
        "needed the SIGTERM: {took:?}"
    );
    // The clean-up started at the first signal (well before the SIGTERM would come).
    let cleanup_ns: u128 = fs::read_to_string(d.join("cleanup-started"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let after = Duration::from_nanos((cleanup_ns.saturating_sub(first_ns)) as u64);
    assert!(
        after < Duration::from_secs(5),
        "clean-up began {after:?} after SIGINT"
    );
    assert!(err.contains("rolled back"), "{err}");
    // Outputs and summary still written.
    let outputs = fs::read_to_string(&out_file).unwrap();
    let result = outputs
        .split("result<<")
        .nth(1)
        .and_then(|r| r.lines().nth(1))
        .unwrap_or_default();
    assert_eq!(result, "cancelled", "{outputs}");
    let summary = fs::read_to_string(&summary_file).unwrap();
    assert!(summary.contains("## Pipeline cancelled"), "{summary}");
}

#[test]
fn a_stage_ignoring_sigterm_is_killed_before_githubs_sigterm() {
    let work = tempfile::tempdir().unwrap();
    let d = work.path();
    let pipeline = r#"name: stubborn
stages:
  deploy:
    uses: run
    with:
      run: |
        trap '' TERM
        touch started
        while true; do sleep 0.1; done
finally:
  cleanup:
    uses: run
    with:
      run: echo rolled back
"#;
    fs::write(d.join("p.yml"), pipeline).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_uplift"))
        .args(["run", "-p", "p.yml"])
        .current_dir(d)
        .env("NO_COLOR", "1")
        .env("GITHUB_ACTIONS", "true")
        .env_remove("GITHUB_OUTPUT")
        .env_remove("GITHUB_STEP_SUMMARY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&d.join("started"), Duration::from_secs(30));
    let first = Instant::now();
    signal(child.id(), "INT");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if first.elapsed() >= Duration::from_millis(7500) {
            child.kill().unwrap();
            panic!("the stage ignoring SIGTERM still ran when GitHub's SIGTERM was due");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = first.elapsed();
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status.code(), Some(130), "{err}");
    // Killed after the 5 s grace, not before (it ignored SIGTERM), and clean-up ran.
    assert!(took >= Duration::from_millis(4500), "{took:?}");
    assert!(err.contains("rolled back"), "{err}");
}
