//! The run lock: `.uplift/lock`, held with `flock` for the whole run, holds the owner's pid,
//! host and start time (for the message a second run gets).
//!
//! Taking the lock is one atomic step: the kernel grants the `flock` to exactly one process and
//! drops it when that process dies however it dies, so a lock file left by a crash is simply
//! locked again (and reported as recovered), with no check-then-take window between
//! simultaneous runs. A holder removes the file while it still holds the lock; a run that
//! locked a file just removed that way sees the path no longer names it and tries again.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockOwner {
    pub pid: u32,
    pub host: String,
    /// RFC 3339 start time.
    pub started: String,
    pub pipeline: String,
}

/// The failures of [`RunLock::acquire`].
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("lock {path}: pipeline `{}` is already running (pid {} on {}, since {})", .owner.pipeline, .owner.pid, .owner.host, .owner.started)]
    Held { path: PathBuf, owner: LockOwner },
    #[error("create lock {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A held lock, released on drop.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    /// The locked file; dropping it releases the `flock`.
    _file: Flock<File>,
    /// The owner recorded by an earlier run that ended without releasing the lock.
    pub recovered: Option<LockOwner>,
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| String::from("unknown"))
}

/// Attempts before giving up when the lock file keeps being replaced under us (each one means
/// another run released the lock in between, so this is only reached under extreme churn).
const ATTEMPTS: usize = 100;

fn read_owner(file: &mut File) -> Option<LockOwner> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

impl RunLock {
    /// Takes `dir/lock` for `pipeline`, or says who holds it.
    pub fn acquire(dir: &Path, pipeline: &str) -> Result<RunLock, LockError> {
        let path = dir.join("lock");
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let owner = LockOwner {
            pid: std::process::id(),
            host: hostname(),
            started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            pipeline: pipeline.to_owned(),
        };
        for _ in 0..ATTEMPTS {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io)?;
            let mut locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(locked) => locked,
                Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                    // The holder may be writing its record right now: give it a moment.
                    let mut held = read_owner(&mut file);
                    for _ in 0..20 {
                        if held.is_some() {
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        held = read_owner(&mut file);
                    }
                    let owner = held.unwrap_or_else(|| LockOwner {
                        pid: 0,
                        host: String::from("unknown"),
                        started: String::from("unknown"),
                        pipeline: String::from("unknown"),
                    });
                    return Err(LockError::Held { path, owner });
                }
                Err((_, errno)) => return Err(io(std::io::Error::from(errno))),
            };
            // A holder that released the lock removed this file first: lock the new one.
            let same = match (locked.metadata(), std::fs::metadata(&path)) {
                (Ok(ours), Ok(now)) => ours.dev() == now.dev() && ours.ino() == now.ino(),
                _ => false,
            };
            if !same {
                continue;
            }
            let recovered = read_owner(&mut locked);
            if let Some(stale) = &recovered {
                tracing::warn!(pid = stale.pid, started = %stale.started, "recovering the lock of a run that did not release it");
            }
            let text = serde_json::to_string(&owner).unwrap_or_default();
            locked.set_len(0).map_err(io)?;
            locked.rewind().map_err(io)?;
            locked.write_all(text.as_bytes()).map_err(io)?;
            locked.sync_all().map_err(io)?;
            return Ok(RunLock {
                path,
                _file: locked,
                recovered,
            });
        }
        Err(io(std::io::Error::other(
            "the lock file kept being replaced while taking it",
        )))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Removed while still locked (the `flock` goes with the file handle, dropped after).
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn second_lock_refused_then_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path(), "p").unwrap();
        match RunLock::acquire(dir.path(), "p") {
            Err(LockError::Held { owner, .. }) => assert_eq!(owner.pid, std::process::id()),
            other => panic!("expected held, got {other:?}"),
        }
        drop(first);
        assert!(!dir.path().join("lock").exists());
        RunLock::acquire(dir.path(), "p").unwrap();
    }

    #[test]
    fn simultaneous_takers_of_a_stale_lock_get_it_once() {
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let stale = LockOwner {
                pid: 4_000_000_000,
                host: hostname(),
                started: "2020-01-01T00:00:00Z".into(),
                pipeline: "p".into(),
            };
            std::fs::write(
                dir.path().join("lock"),
                serde_json::to_string(&stale).unwrap(),
            )
            .unwrap();
            let barrier = std::sync::Barrier::new(12);
            let taken = std::thread::scope(|s| {
                let takers: Vec<_> = (0..12)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            let lock = RunLock::acquire(dir.path(), "p");
                            // Hold it until every taker has tried.
                            barrier.wait();
                            lock.is_ok()
                        })
                    })
                    .collect();
                takers
                    .into_iter()
                    .map(|t| t.join())
                    .filter(|taken| matches!(taken, Ok(true)))
                    .count()
            });
            assert_eq!(taken, 1, "round {round}: {taken} runs took the lock");
        }
    }

    #[test]
    fn stale_lock_recovered() {
        let dir = tempfile::tempdir().unwrap();
        // A pid far above pid_max is never alive.
        let stale = LockOwner {
            pid: 4_000_000_000,
            host: hostname(),
            started: "2020-01-01T00:00:00Z".into(),
            pipeline: "p".into(),
        };
        std::fs::write(
            dir.path().join("lock"),
            serde_json::to_string(&stale).unwrap(),
        )
        .unwrap();
        let lock = RunLock::acquire(dir.path(), "p").unwrap();
        assert_eq!(lock.recovered, Some(stale));
    }
}
