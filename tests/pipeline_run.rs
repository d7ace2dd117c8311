//! `uplift run` end to end: parallelism, timeouts, retries, `if`, `finally`, outputs, secret
//! masking in every output channel, `--only`/`--from`, JSON events and the run lock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn uplift_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_uplift"));
    cmd.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("UPLIFT_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("UPLIFT_SECRET_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

fn run_in(dir: &Path, text: &str, args: &[&str]) -> Output {
    std::fs::write(dir.join("p.yml"), text).unwrap();
    let mut all = vec!["run", "-p", "p.yml"];
    all.extend_from_slice(args);
    uplift_cmd(dir, &all).output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The only run folder under `dir/.uplift/runs`.
fn run_dir(dir: &Path) -> PathBuf {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir.join(".uplift/runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    runs.sort();
    runs.pop().unwrap()
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run_dir(dir).join("summary.json")).unwrap())
        .unwrap()
}

fn stage<'a>(summary: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == id)
        .unwrap_or_else(|| panic!("no {id}"))
}

fn nanos(path: &Path) -> u128 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

const PARALLEL: &str = r#"
stages:
  left:
    uses: run
    with:
      run: date +%s%N > left.start; sleep 0.6; date +%s%N > left.end
  right:
    uses: run
    with:
      run: date +%s%N > right.start; sleep 0.6; date +%s%N > right.end
  join:
    uses: run
    needs: [left, right]
    with:
      run: date +%s%N > join.start
"#;

#[test]
fn independent_stages_run_in_parallel_and_needs_are_respected() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = run_in(d, PARALLEL, &["--jobs", "4"]);
    assert!(out.status.success(), "{}", text(&out));
    // The two overlap: each started before the other ended.
    assert!(nanos(&d.join("left.start")) < nanos(&d.join("right.end")));
    assert!(nanos(&d.join("right.start")) < nanos(&d.join("left.end")));
    // `join` waited for both.
    let join = nanos(&d.join("join.start"));
    assert!(join >= nanos(&d.join("left.end")) && join >= nanos(&d.join("right.end")));
}

#[test]
fn jobs_one_runs_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = run_in(d, PARALLEL, &["--jobs", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let (ls, le, rs, re) = (
        nanos(&d.join("left.start")),
        nanos(&d.join("left.end")),
        nanos(&d.join("right.start")),
        nanos(&d.join("right.end")),
    );
    assert!(le <= rs || re <= ls, "stages overlapped with --jobs 1");
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pipeline = r#"
stages:
  slow:
    uses: run
    timeout: 1s
    with:
      run: |
        sleep 300 &
        echo $! > bg.pid
        echo $$ > sh.pid
        sleep 300
"#;
    let started = Instant::now();
    let out = run_in(d, pipeline, &["--grace", "2"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let s = summary(d);
    assert_eq!(stage(&s, "slow")["result"], "failure");
    assert_eq!(stage(&s, "slow")["reason"], "timed out after 1s");
    for pid_file in ["bg.pid", "sh.pid"] {
        let pid = std::fs::read_to_string(d.join(pid_file)).unwrap();
        assert!(
            !alive(pid.trim()),
            "{pid_file} ({}) survived the timeout",
            pid.trim()
        );
    }
}

fn alive(pid: &str) -> bool {
    // A zombie is dead for our purpose; /proc tells the state.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
    }
}

#[test]
fn retries_rerun_only_the_failing_stage() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pipeline = r#"
stages:
  once:
    uses: run
    with:
      run: echo x >> once.count
  flaky:
    uses: run
    needs: once
    retries:
      count: 3
      backoff: 50ms
    with:
      run: |
        echo x >> flaky.count
        [ "$(wc -l < flaky.count)" -ge 3 ]
  hopeless:
    uses: run
    retries: 1
    continue-on-error: true
    with:
      run: echo x >> hopeless.count; exit 7
  single:
    uses: run
    continue-on-error: true
    with:
      run: exit 5
"#;
    let out = run_in(d, pipeline, &[]);
    assert!(out.status.success(), "{}", text(&out));
    // Attempts are counted only where there are retries.
    let shown = text(&out);
    assert!(shown.contains("attempt 1 failed"), "{shown}");
    assert!(
        !shown
            .lines()
            .any(|l| l.contains("single") && l.contains("attempt")),
        "{shown}"
    );
    let count = |f: &str| std::fs::read_to_string(d.join(f)).unwrap().lines().count();
    assert_eq!(count("once.count"), 1);
    assert_eq!(count("flaky.count"), 3);
    assert_eq!(count("hopeless.count"), 2);
    let s = summary(d);
    assert_eq!(stage(&s, "flaky")["attempts"], 3);
    assert_eq!(stage(&s, "flaky")["result"], "success");
    assert_eq!(stage(&s, "hopeless")["result"], "failure");
    assert_eq!(stage(&s, "hopeless")["allowed_failure"], true);
    assert!(
        stage(&s, "hopeless")["reason"]
            .as_str()
            .unwrap()
            .contains("exited with code 7")
    );
}

#[test]
fn conditions_finally_and_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pipeline = r#"
env:
  MODE: full
stages:
  build:
    uses: run
    outputs: [version, notes]
    with:
      run: |
        echo "version=1.2.3" >> "$UPLIFT_OUTPUT"
        printf 'notes<<EOF\nline one\nline two\nEOF\n' >> "$UPLIFT_OUTPUT"
  use-output:
    uses: run
    needs: build
    env:
      V: ${{ stages.build.outputs.version }}
    with:
      run: |
        echo "$V" > got.version
        echo "${{ stages.build.outputs.notes }}" > got.notes
  only-if-quick:
    uses: run
    needs: build
    if: env.MODE == 'quick'
    with:
      run: touch should-not-exist
  broken:
    uses: run
    needs: use-output
    with:
      run: exit 3
  after-broken:
    uses: run
    needs: broken
    with:
      run: touch should-not-exist-either
  on-failure:
    uses: run
    needs: broken
    if: failure()
    with:
      run: touch failure-handled
finally:
  cleanup:
    uses: run
    with:
      run: echo "${{ stages.broken.result }}" > finally.result
  only-on-success:
    uses: run
    if: success()
    with:
      run: touch should-not-exist-3
"#;
    let out = run_in(d, pipeline, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(d.join("got.version")).unwrap(),
        "1.2.3\n"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("got.notes")).unwrap(),
        "line one\nline two\n"
    );
    assert!(!d.join("should-not-exist").exists());
    assert!(!d.join("should-not-exist-either").exists());
    assert!(!d.join("should-not-exist-3").exists());
    assert!(d.join("failure-handled").exists());
    assert_eq!(
        std::fs::read_to_string(d.join("finally.result")).unwrap(),
        "failure\n"
    );
    let s = summary(d);
    assert_eq!(s["result"], "failure");
    let results: Vec<(String, String)> = s["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["stage"].as_str().unwrap().to_owned(),
                x["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = [
        ("build", "success"),
        ("use-output", "success"),
        ("only-if-quick", "skipped"),
        ("broken", "failure"),
        ("after-broken", "skipped"),
        ("on-failure", "success"),
        ("cleanup", "success"),
        ("only-on-success", "skipped"),
    ];
    let expect: Vec<(String, String)> = expect
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    assert_eq!(results, expect);
    // The summary table on stdout lists every stage with its result.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("only-if-quick") && stdout.contains("skipped"),
        "{stdout}"
    );
    assert!(stdout.contains("cleanup (finally)"), "{stdout}");
}

#[test]
fn secrets_are_masked_in_every_output_channel() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("secrets.env"),
        "# test secrets\nFILE_TOKEN=file-s3cr3t-value\n",
    )
    .unwrap();
    let pipeline = r#"
stages:
  leak:
    uses: run
    outputs: [token]
    env:
      TOKEN: ${{ secrets.API_TOKEN }}
      OTHER: ${{ secrets.FILE_TOKEN }}
    with:
      run: |
        echo "stdout: $TOKEN and $OTHER"
        echo "stderr: $TOKEN" >&2
        echo "token=$TOKEN" >> "$UPLIFT_OUTPUT"
        test -z "$UPLIFT_SECRET_API_TOKEN"
  fail:
    uses: run
    needs: leak
    with:
      run: echo "${{ secrets.API_TOKEN }}"; exit 1
"#;
    std::fs::write(d.join("p.yml"), pipeline).unwrap();
    let secret = "api-hunter2-value";
    let channels = |out: &Output| {
        let mut all = text(out);
        let run = run_dir(d);
        for f in ["events.jsonl", "summary.json", "leak/log", "fail/log"] {
            all.push_str(&std::fs::read_to_string(run.join(f)).unwrap());
        }
        all
    };
    for events in ["text", "json"] {
        let _ = std::fs::remove_dir_all(d.join(".uplift"));
        let out = uplift_cmd(
            d,
            &[
                "run",
                "-p",
                "p.yml",
                "--secrets-file",
                "secrets.env",
                "--events",
                events,
            ],
        )
        .env("UPLIFT_SECRET_API_TOKEN", secret)
        .output()
        .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let all = channels(&out);
        assert!(
            !all.contains(secret),
            "secret leaked with --events {events}:\n{all}"
        );
        assert!(
            !all.contains("file-s3cr3t-value"),
            "file secret leaked with --events {events}:\n{all}"
        );
        assert!(all.contains("stdout: *** and ***"), "{all}");
        assert!(all.contains("stderr: ***"), "{all}");
        assert!(
            all.contains("\"token\": \"***\"") || all.contains("\"token\":\"***\""),
            "{all}"
        );
    }
    // The plan masks too.
    let out = uplift_cmd(d, &["run", "--plan", "-p", "p.yml", "--format", "json"])
        .env("UPLIFT_SECRET_API_TOKEN", secret)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains(secret));
    assert!(text(&out).contains("***"));
}

#[test]
fn only_and_from_select_part_of_the_dag() {
    let pipeline = r#"
stages:
  a:
    uses: run
    with: { run: touch a.ran }
  b:
    uses: run
    needs: a
    with: { run: touch b.ran }
  c:
    uses: run
    needs: b
    with: { run: touch c.ran }
  d:
    uses: run
    with: { run: touch d.ran }
"#;
    let ran = |d: &Path| -> Vec<String> {
        ["a", "b", "c", "d"]
            .iter()
            .filter(|s| d.join(format!("{s}.ran")).exists())
            .map(|s| (*s).to_owned())
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), pipeline, &["--only", "b"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(ran(dir.path()), ["b"]);
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), pipeline, &["--from", "b"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(ran(dir.path()), ["b", "c"]);
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), pipeline, &["--only", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn json_events_are_machine_readable() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = "stages:\n  a:\n    uses: run\n    with: { run: echo hello }\n  b:\n    uses: run\n    needs: a\n    with: { run: echo world }\n";
    let out = run_in(dir.path(), pipeline, &["--events", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "run-started",
            "stage-started",
            "stage-output",
            "stage-finished",
            "stage-started",
            "stage-output",
            "stage-finished",
            "run-finished"
        ]
    );
    assert_eq!(events[2]["line"], "hello");
    assert_eq!(events[2]["stage"], "a");
    assert_eq!(events[7]["result"], "success");
}

#[test]
fn a_second_run_is_refused_and_a_stale_lock_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let slow = "stages:\n  wait:\n    uses: run\n    with: { run: touch started; sleep 3 }\n";
    std::fs::write(d.join("p.yml"), slow).unwrap();
    let mut first = uplift_cmd(d, &["run", "-p", "p.yml"]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !d.join("started").exists() {
        assert!(Instant::now() < deadline, "first run never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = uplift_cmd(d, &["run", "-p", "p.yml"]).output().unwrap();
    assert_eq!(second.status.code(), Some(3), "{}", text(&second));
    assert!(
        text(&second).contains("already running"),
        "{}",
        text(&second)
    );
    assert!(first.wait().unwrap().success());
    assert!(!d.join(".uplift/lock").exists(), "lock not released");

    // A lock left by a dead process on this host is taken over.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let stale = serde_json::json!({"pid": 2_000_000_000u32, "host": host.trim(), "started": "2020-01-01T00:00:00Z", "pipeline": "p"});
    std::fs::write(d.join(".uplift/lock"), stale.to_string()).unwrap();
    std::fs::write(
        d.join("p.yml"),
        "stages:\n  a:\n    uses: run\n    with: { run: \"true\" }\n",
    )
    .unwrap();
    let out = uplift_cmd(d, &["run", "-p", "p.yml"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_huge_line_is_cut_not_held_whole() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pipeline = "stages:\n  big:\n    uses: run\n    with: { run: \"head -c 200000 /dev/zero | tr '\\\\0' a; echo; echo end\" }\n";
    let out = run_in(d, pipeline, &["-q"]);
    assert!(out.status.success(), "{}", text(&out));
    let log = std::fs::read_to_string(run_dir(d).join("big/log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines.iter().all(|l| l.len() <= 64 * 1024),
        "a line longer than 64 KiB"
    );
    assert_eq!(
        lines.iter().map(|l| l.matches('a').count()).sum::<usize>(),
        200_000
    );
    assert_eq!(lines.last(), Some(&"end"));
}

/// A secret that crosses the 64 KiB cut of a long line is masked whole: the cut moves past it
/// (issue 10). Neither half may reach the live output, the stage log or events.jsonl.
#[test]
fn a_secret_across_the_line_cut_is_masked_whole() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let secret = "SECRETVALUE-0123456789";
    // 65,526 bytes of `a`, then the secret: the cut at 65,536 falls 10 bytes into it.
    let pipeline = "stages:\n  long:\n    uses: run\n    env:\n      TOKEN: ${{ secrets.TOK }}\n    with: { run: \"head -c 65526 /dev/zero | tr '\\\\0' a; echo \\\"$TOKEN\\\"; echo end\" }\n";
    std::fs::write(d.join("p.yml"), pipeline).unwrap();
    for events in ["text", "json"] {
        let out = uplift_cmd(d, &["run", "-p", "p.yml", "--events", events])
            .env("UPLIFT_SECRET_TOK", secret)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let run = run_dir(d);
        let log = std::fs::read_to_string(run.join("long/log")).unwrap();
        let jsonl = std::fs::read_to_string(run.join("events.jsonl")).unwrap();
        for (channel, content) in [("live", text(&out)), ("log", log), ("events.jsonl", jsonl)] {
            for half in [&secret[..10], &secret[10..]] {
                assert!(
                    !content.contains(half),
                    "{channel} (--events {events}) holds `{half}`"
                );
            }
            assert!(
                content.contains("***"),
                "{channel}: the secret was not masked"
            );
        }
        std::fs::remove_dir_all(d.join(".uplift")).unwrap();
    }
}

/// An environment variable whose value is not UTF-8 is left out of the run, not a panic
/// (issue 10), for `run` and `plan -p`.
#[test]
fn a_non_utf8_environment_variable_does_not_panic() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pipeline = "stages:\n  a:\n    uses: run\n    with: { run: \"echo ok-$VALID\" }\n";
    std::fs::write(d.join("p.yml"), pipeline).unwrap();
    let bad = std::ffi::OsStr::from_bytes(b"caf\xe9");
    for args in [&["run", "-p", "p.yml"][..], &["plan", "-p", "p.yml"][..]] {
        let out = uplift_cmd(d, args)
            .env("LATIN1_VALUE", bad)
            .env("VALID", "yes")
            .output()
            .unwrap();
        let all = text(&out);
        assert!(!all.contains("panicked"), "{args:?}: {all}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {all}");
        if args[0] == "run" {
            assert!(all.contains("ok-yes"), "{all}");
        }
    }
}

/// An `if:` of 60,000 `!`s is refused before anything runs (no stack overflow, no stale lock).
#[test]
fn a_condition_past_the_depth_limit_is_refused_by_run_and_plan() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pipeline = format!(
        "stages:\n  a:\n    uses: run\n    if: \"{}true\"\n    with: {{ run: \"true\" }}\n",
        "!".repeat(60_000)
    );
    std::fs::write(d.join("p.yml"), pipeline).unwrap();
    for args in [&["run", "-p", "p.yml"][..], &["plan", "-p", "p.yml"][..]] {
        let out = uplift_cmd(d, args).output().unwrap();
        let all = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {all}");
        assert!(all.contains("nested deeper than 32"), "{all}");
        assert!(!d.join(".uplift/lock").exists(), "lock left behind");
    }
}
