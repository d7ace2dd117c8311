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

fn read_pid(path: &Path) -> String {
    wait_for(path);
    std::fs::read_to_string(path).unwrap().trim().to_owned()
}

/// A process that leaves its stage's group with `setsid` is killed when its stage ends: the
/// next stage already finds it gone (issue 10).
#[test]
fn a_process_that_calls_setsid_does_not_outlive_its_stage() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pipeline = r#"
stages:
  escape:
    uses: run
    with:
      run: |
        setsid sh -c 'echo $$ > escaped.pid; exec sleep 300' &
        while [ ! -s escaped.pid ]; do sleep 0.05; done
  after:
    uses: run
    needs: escape
    with:
      run: |
        pid=$(cat escaped.pid)
        sleep 0.5
        if [ -d /proc/$pid ] && ! grep -q '^State:.*[ZX]' /proc/$pid/status; then echo alive > verdict; else echo gone > verdict; fi
"#;
    let child = spawn(d, pipeline, &[]);
    let (code, output) = finish(child, Duration::from_secs(60));
    assert_eq!(code, Some(0), "{output}");
    let escaped = read_pid(&d.join("escaped.pid"));
    let verdict = std::fs::read_to_string(d.join("verdict")).unwrap();
    if alive(&escaped) {
        signal(escaped.parse().unwrap(), "KILL");
    }
    assert_eq!(
        verdict.trim(),
        "gone",
        "the escaped process outlived its stage\n{output}"
    );
}

/// After SIGKILL of `uplift run`, the stage's processes (its group and what left it) keep
/// running; the next run in that folder kills them before it starts (issue 10).
#[test]
fn the_next_run_kills_what_a_killed_run_left() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pipeline = r#"
stages:
  long:
    uses: run
    with:
      run: |
        setsid sh -c 'echo $$ > escaped.pid; exec sleep 300' &
        echo $$ > sh.pid
        sleep 300
"#;
    let child = spawn(d, pipeline, &[]);
    let escaped = read_pid(&d.join("escaped.pid"));
    let shell = read_pid(&d.join("sh.pid"));
    signal(child.id(), "KILL");
    let _ = finish(child, Duration::from_secs(30));
    let cleanup = |pids: &[&String]| {
        for pid in pids {
            if alive(pid) {
                signal(pid.parse().unwrap(), "KILL");
            }
        }
    };
    // Nothing stopped them: uplift had no chance to.
    if !(alive(&escaped) && alive(&shell)) {
        cleanup(&[&escaped, &shell]);
        panic!("the stage's processes did not survive SIGKILL of uplift: test setup broken");
    }
    let next = spawn(
        d,
        "stages:\n  quick:\n    uses: run\n    with: { run: \"true\" }\n",
        &[],
    );
    let (code, output) = finish(next, Duration::from_secs(60));
    let survivors: Vec<&String> = [&escaped, &shell]
        .into_iter()
        .filter(|p| alive(p))
        .collect();
    cleanup(&survivors);
    assert_eq!(code, Some(0), "{output}");
    assert!(
        survivors.is_empty(),
        "{survivors:?} outlived the killed run\n{output}"
    );
}

/// With a stale lock present, of 12 runs started at once exactly one runs; the others are
/// refused (issue 10). Bounded: 3 rounds (the in-process test of the lock does 20).
#[test]
fn simultaneous_runs_over_a_stale_lock_run_once() {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join(".uplift")).unwrap();
        let stale = format!(
            r#"{{"pid": 2000000000, "host": "{}", "started": "2020-01-01T00:00:00Z", "pipeline": "p"}}"#,
            host.trim()
        );
        std::fs::write(d.join(".uplift/lock"), stale).unwrap();
        // The winner holds the lock long enough for every other start to meet it.
        std::fs::write(
            d.join("p.yml"),
            "stages:\n  once:\n    uses: run\n    with: { run: \"echo $$ >> ran; sleep 4\" }\n",
        )
        .unwrap();
        let children: Vec<Child> = (0..12)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_uplift"))
                    .args(["run", "-q", "-p", "p.yml"])
                    .current_dir(d)
                    .env("NO_COLOR", "1")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let codes: Vec<Option<i32>> = children
            .into_iter()
            .map(|c| finish(c, Duration::from_secs(120)).0)
            .collect();
        let ran = std::fs::read_to_string(d.join("ran")).unwrap_or_default();
        assert_eq!(ran.lines().count(), 1, "round {round}: {ran:?} {codes:?}");
        assert_eq!(
            codes.iter().filter(|c| **c == Some(0)).count(),
            1,
            "round {round}: {codes:?}"
        );
        assert_eq!(
            codes.iter().filter(|c| **c == Some(3)).count(),
            11,
            "round {round}: {codes:?}"
        );
    }
}
