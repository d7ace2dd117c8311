//! The run lock: `.uplift/lock` holds the owner's pid, host and start time; a second run is
//! refused while the owner lives, and a lock left by a dead process on this host is recovered.

use std::io::Write;
use std::path::{Path, PathBuf};

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
    /// Whether a stale lock was taken over.
    pub recovered: Option<LockOwner>,
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| String::from("unknown"))
}

fn alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::ESRCH) => false,
        Err(_) => true,
    }
}

impl RunLock {
    /// Takes `dir/lock` for `pipeline`.
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
        let mut recovered = None;
        // Two attempts: the second after removing a stale lock.
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    let text = serde_json::to_string(&owner).unwrap_or_default();
                    file.write_all(text.as_bytes()).map_err(io)?;
                    file.sync_all().map_err(io)?;
                    return Ok(RunLock { path, recovered });
                }
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    let existing = std::fs::read_to_string(&path).unwrap_or_default();
                    match serde_json::from_str::<LockOwner>(&existing) {
                        Ok(held) if held.host != owner.host || alive(held.pid) => {
                            return Err(LockError::Held { path, owner: held });
                        }
                        Ok(stale) => {
                            tracing::warn!(pid = stale.pid, started = %stale.started, "recovering a stale lock");
                            recovered = Some(stale);
                        }
                        Err(_) => {
                            // Unreadable: a crash between create and write, or garbage.
                            tracing::warn!(path = %path.display(), "recovering an unreadable lock");
                        }
                    }
                    std::fs::remove_file(&path).map_err(io)?;
                }
                Err(error) => return Err(io(error)),
            }
        }
        Err(LockError::Io {
            path: path.clone(),
            source: std::io::Error::other("lock changed while recovering it"),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
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
