//! Cancellation: SIGINT stops the run, kills every process of running stages (after SIGTERM
//! and the grace period), still runs `finally`, and a second signal forces.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn spawn(dir: &Path, pipeline: &str, args: &[&str]) -> Child {
    std::fs::write(dir.join("p.yml"), pipeline).unwrap();
    Command::new(env!("CARGO_BIN_EXE_uplift"))
        .args(["run", "-p", "p.yml"])
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The file is written by `echo >`: give the shell a moment to finish the line.
    std::thread::sleep(Duration::from_millis(50));
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits (bounded) for the child; returns its exit code and output.
fn finish(mut child: Child, limit: Duration) -> (Option<i32>, String) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return (status.code(), text);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("uplift did not stop within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn alive(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
        Err(_) => false,
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
    }
}

fn pids(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "pid") {
            out.push(std::fs::read_to_string(&path).unwrap().trim().to_owned());
        }
    }
    out
}

const PIPELINE: &str = r#"
stages:
  long-a:
    uses: run
    with:
      run: |
        sleep 300 &
        echo $! > a-bg.pid
        echo $$ > a-sh.pid
        sleep 300
  long-b:
    uses: run
    with:
      run: |
        trap '' TERM
        echo $$ > b-sh.pid
        sleep 300
  never:
    uses: run
    needs: long-a
    with:
      run: touch never-ran
finally:
  cleanup:
    uses: run
    with:
      run: echo "a=${{ stages.long-a.result }} b=${{ stages.long-b.result }}" > finally-ran
"#;

#[test]
fn sigint_stops_everything_and_runs_finally() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let child = spawn(d, PIPELINE, &["--grace", "1", "--jobs", "4"]);
    let pid = child.id();
    wait_for(&d.join("a-sh.pid"));
    wait_for(&d.join("b-sh.pid"));
    let started = Instant::now();
    signal(pid, "INT");
    let (code, output) = finish(child, Duration::from_secs(30));
    assert_eq!(code, Some(130), "{output}");
    // long-b ignores SIGTERM: it goes at SIGKILL after the 1 s grace, well before its sleep ends.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        std::fs::read_to_string(d.join("finally-ran")).unwrap(),
        "a=cancelled b=cancelled\n",
        "{output}"
    );
    assert!(!d.join("never-ran").exists());
    let pids = pids(d);
    assert_eq!(pids.len(), 3);
    for p in &pids {
        assert!(!alive(p), "process {p} survived the cancel\n{output}");
    }
    assert!(output.contains("cancelling"), "{output}");
    assert!(!d.join(".uplift/lock").exists(), "lock left behind");
}

#[test]
fn second_signal_forces() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A long grace: only the second signal can make this quick.
    let child = spawn(d, PIPELINE, &["--grace", "120", "--jobs", "4"]);
    let pid = child.id();
    wait_for(&d.join("b-sh.pid"));
    wait_for(&d.join("a-sh.pid"));
    signal(pid, "TERM");
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    signal(pid, "INT");
    let (code, output) = finish(child, Duration::from_secs(30));
    assert_eq!(code, Some(130), "{output}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    for p in pids(d) {
        assert!(!alive(&p), "process {p} survived a forced stop\n{output}");
    }
}
