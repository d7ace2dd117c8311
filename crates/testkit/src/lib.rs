//! Helpers shared by the integration tests of the workspace's crates and of the `uplift` binary:
//! the Docker engine check and fixture images, clean-up of deploy targets, load loops,
//! PostgreSQL scratch databases, fixture folders and unique names.
//!
//! Dev-only: a crate may use it only as a `[dev-dependencies]` entry. It panics on any failure
//! it meets, which is what a test wants and what a library must never do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod docker;
pub mod fs;
pub mod postgres;

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    // crates/testkit → the root, wherever the crate using it lives.
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// A path below the repository's `fixtures/` folder.
pub fn fixture(relative: &str) -> PathBuf {
    repo_root().join("fixtures").join(relative)
}

/// `prefix-<nanoseconds>-<pid>` (hex): a name no other test run uses, valid in image
/// references, volume and container names.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{nanos:x}-{:x}", std::process::id())
}

/// `prefix-<pid>`: a name this test binary owns, so a rerun after a crash finds its leftovers.
pub fn per_process(prefix: &str) -> String {
    format!("{prefix}-{}", std::process::id())
}

/// A service the test needs is missing: with `CI=true` that fails the test, elsewhere it is
/// skipped (the caller returns after this). A failure points at the test that called it.
#[track_caller]
pub fn missing(what: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and {what}: this is a failure, not a skip"
    );
    eprintln!("skipping: {what}");
    // The test command counts these (`scripts/test.sh` sets the file): cargo's own totals only
    // know `#[ignore]`, and a skipped test reports as passed.
    if let Some(log) = std::env::var_os("UPLIFT_SKIP_LOG") {
        use std::io::Write as _;
        let test = std::thread::current()
            .name()
            .unwrap_or("unnamed test")
            .to_owned();
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(file, "{test}: {what}");
        }
    }
}
