//! `uplift apply` is all or nothing under SIGKILL, SIGINT and SIGTERM (issue 10, item 2): an
//! apply of ~2,000 files is interrupted at random points (and, deterministically, after N
//! renames); after the next command the app is byte for byte either as before or as the
//! uninterrupted apply leaves it, with no `.uplift-apply/` left.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{run, stderr, uplift};

const FILES: usize = 2_000;

/// Every entry below `dir`, links not followed, with content (or target) and mode.
fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git")
        .map(|e| e.unwrap())
        .map(|e| {
            let meta = e.path().symlink_metadata().unwrap();
            let content = if meta.file_type().is_symlink() {
                fs::read_link(e.path())
                    .unwrap()
                    .to_string_lossy()
                    .as_bytes()
                    .to_vec()
            } else if meta.is_dir() {
                b"<dir>".to_vec()
            } else {
                fs::read(e.path()).unwrap()
            };
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            (rel, (content, meta.permissions().mode() & 0o777))
        })
        .collect()
}

/// Releases 1.0.0 and 2.0.0 of 2,000 files (2.0.0 changes 1,710, moves 50 to new folders and
/// deletes 50 more), and an app that is release 1.0.0: the apply moves 1,811 files aside
/// (1,710 + 100 + the marker) and places 1,761 (1,710 + 50 + the marker).
const MOVED_ASIDE: usize = 1_811;
const RENAMES: usize = MOVED_ASIDE + 1_761;
struct Fixture {
    _root: tempfile::TempDir,
    source: String,
    app: PathBuf,
}

fn fixture() -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let templates = root.path().join("templates");
    for (version, shift) in [("1.0.0", 0), ("2.0.0", 1)] {
        let dir = templates.join(version);
        for i in 0..FILES {
            let path = if shift == 1 && i >= FILES - 100 {
                if i >= FILES - 50 {
                    continue; // deleted by 2.0.0
                }
                format!("new{}/f{i}.txt", i % 7)
            } else {
                format!("pkg{}/f{i}.txt", i / 100)
            };
            let changed = shift == 1 && i % 10 != 0;
            let native = dir.join(path);
            fs::create_dir_all(native.parent().unwrap()).unwrap();
            let content = if changed { version } else { "both" };
            fs::write(&native, format!("file {i} of {content}\n")).unwrap();
        }
        fs::write(
            dir.join("backstage.json"),
            format!("{{\"version\": \"{version}\"}}\n"),
        )
        .unwrap();
    }
    let app = root.path().join("app");
    common::copy_dir(&templates.join("1.0.0"), &app);
    Fixture {
        source: format!("dir:{}", templates.display()),
        app,
        _root: root,
    }
}

fn apply_command(source: &str, app: &Path) -> Command {
    let mut command = uplift();
    command
        .arg("apply")
        .arg("--app")
        .arg(app)
        .arg("--upstream")
        .arg(source)
        .args(["--to", "2.0.0", "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// A fresh copy of the app, in a folder of its own.
fn fresh_app(fixture: &Fixture) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::copy_dir(&fixture.app, dir.path());
    dir
}

/// The next command on the app (a plan) must recover it; then it must be old or new.
fn recover_and_check(
    fixture: &Fixture,
    app: &Path,
    old: &BTreeMap<String, (Vec<u8>, u32)>,
    new: &BTreeMap<String, (Vec<u8>, u32)>,
    what: &str,
) -> bool {
    let output = run(uplift()
        .arg("plan")
        .arg("--app")
        .arg(app)
        .arg("--upstream")
        .arg(&fixture.source)
        .args(["--to", "2.0.0", "--format", "json"]));
    assert!(output.status.success(), "{what}: {}", stderr(&output));
    assert!(!app.join(".uplift-apply").exists(), "{what}: leftovers");
    let now = snapshot(app);
    assert!(
        now == *old || now == *new,
        "{what}: the app is neither as before nor as the uninterrupted apply leaves it"
    );
    now == *new
}

struct Reference {
    old: BTreeMap<String, (Vec<u8>, u32)>,
    new: BTreeMap<String, (Vec<u8>, u32)>,
    took: Duration,
}

fn reference(fixture: &Fixture) -> Reference {
    let app = fresh_app(fixture);
    let old = snapshot(app.path());
    let started = Instant::now();
    let output = apply_command(&fixture.source, app.path()).output().unwrap();
    let took = started.elapsed();
    assert!(output.status.success(), "{}", stderr(&output));
    let new = snapshot(app.path());
    assert_ne!(old, new);
    assert_eq!(
        new.keys().filter(|k| k.ends_with(".txt")).count(),
        FILES - 50
    );
    Reference { old, new, took }
}

#[test]
fn a_crash_after_any_number_of_renames_is_recovered_by_the_next_command() {
    let fixture = fixture();
    let reference = reference(&fixture);
    // Both phases, their edges, and just after the last rename (before the clean-up).
    for renames in [
        0,
        1,
        900,
        MOVED_ASIDE - 1,
        MOVED_ASIDE,
        MOVED_ASIDE + 1,
        2_700,
        RENAMES - 1,
        RENAMES,
    ] {
        let app = fresh_app(&fixture);
        let output = apply_command(&fixture.source, app.path())
            .env("UPLIFT_TEST_CRASH_AFTER_RENAMES", renames.to_string())
            .output()
            .unwrap();
        let what = format!("crash after {renames} renames");
        assert!(!output.status.success(), "{what}: the apply did not stop");
        let new = recover_and_check(&fixture, app.path(), &reference.old, &reference.new, &what);
        // Undone unless every rename was done; then finished.
        assert_eq!(new, renames == RENAMES, "{what}");
        if renames % 2 == 0 {
            continue;
        }
        // A rerun after the recovery gives exactly the uninterrupted result.
        let output = apply_command(&fixture.source, app.path()).output().unwrap();
        assert!(output.status.success(), "{what}: {}", stderr(&output));
        assert_eq!(snapshot(app.path()), reference.new, "{what}: rerun");
    }
}

/// Waits (bounded) until the apply has written its journal, i.e. is in its commit phase.
fn wait_for_journal(app: &Path) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if app.join(".uplift-apply/journal").exists() {
            return true;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    false
}

/// A small deterministic generator: the seed is printed so a failure can be replayed.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn seed() -> u64 {
    let seed = std::env::var("UPLIFT_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("UPLIFT_TEST_SEED={seed}");
    seed
}

#[test]
fn sigkill_at_random_points_leaves_old_or_new_after_the_next_command() {
    let fixture = fixture();
    let reference = reference(&fixture);
    let mut seed = seed();
    let span = reference.took.as_micros() as u64 + 1;
    let mut outcomes = (0, 0);
    for kill in 0..12 {
        let app = fresh_app(&fixture);
        let delay = Duration::from_micros(next(&mut seed) % span);
        let mut child = apply_command(&fixture.source, app.path()).spawn().unwrap();
        // Every other kill lands in the commit phase: after the journal, before the end.
        if kill % 2 == 1 {
            wait_for_journal(app.path());
            std::thread::sleep(delay / 20);
        } else {
            std::thread::sleep(delay);
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        let what = format!("SIGKILL {kill} after {delay:?} (exit {status:?})");
        if recover_and_check(&fixture, app.path(), &reference.old, &reference.new, &what) {
            outcomes.1 += 1;
        } else {
            outcomes.0 += 1;
        }
    }
    eprintln!(
        "after 12 SIGKILLs: {} as before, {} upgraded",
        outcomes.0, outcomes.1
    );
}

#[test]
fn sigint_and_sigterm_finish_or_undo_before_exiting() {
    let fixture = fixture();
    let reference = reference(&fixture);
    let mut seed = seed();
    let span = reference.took.as_micros() as u64 + 1;
    for (round, signal) in ["INT", "TERM", "INT", "TERM", "INT", "TERM"]
        .iter()
        .enumerate()
    {
        let app = fresh_app(&fixture);
        let delay = Duration::from_micros(next(&mut seed) % span);
        let child = apply_command(&fixture.source, app.path()).spawn().unwrap();
        // Rounds 0-3 signal during the commit (the journal is written); 4-5 at any time.
        if round < 4 {
            assert!(
                wait_for_journal(app.path()),
                "the apply never reached its commit"
            );
            std::thread::sleep(delay / 50);
        } else {
            std::thread::sleep(delay);
        }
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status();
        let output = child.wait_with_output().unwrap();
        let what = format!("SIG{signal} {round} after {delay:?}");
        // No next command: the process itself left the app whole.
        assert!(
            matches!(output.status.code(), Some(0 | 130)),
            "{what}: {:?} {}",
            output.status,
            stderr(&output)
        );
        assert!(
            !app.path().join(".uplift-apply").exists(),
            "{what}: leftovers"
        );
        // 0: the apply ended first; 130: undone, or it had completed when the signal came.
        let now = snapshot(app.path());
        let whole = if output.status.code() == Some(0) {
            now == reference.new
        } else {
            now == reference.old || now == reference.new
        };
        assert!(whole, "{what}: {:?}", output.status);
        eprintln!(
            "{what}: exit {:?}, {}",
            output.status.code(),
            if now == reference.new {
                "upgraded"
            } else {
                "as before"
            }
        );
    }
}
