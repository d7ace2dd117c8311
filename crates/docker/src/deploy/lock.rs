//! A lock per deploy target: an OS file lock (`flock`) on `<dir>/docker-<target>.lock`. The
//! kernel drops it when the holder dies, so a lock left by a killed run is free again at once,
//! and the file's content (the holder's pid) only serves the error message.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::DeployError;

/// A held lock; released on drop.
#[derive(Debug)]
pub struct TargetLock {
    file: File,
    path: PathBuf,
}

/// The default lock folder: `$XDG_RUNTIME_DIR/uplift/locks`, else `<tmp>/uplift-locks`.
pub fn default_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("uplift").join("locks"),
        _ => std::env::temp_dir().join("uplift-locks"),
    }
}

impl TargetLock {
    /// Takes the lock of `target` or fails at once with [`DeployError::Locked`].
    pub fn acquire(dir: &Path, target: &str) -> Result<Self, DeployError> {
        let io = |source| DeployError::LockIo {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let path = dir.join(format!("docker-{target}.lock"));
        let io = |source| DeployError::LockIo {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                return Err(DeployError::Locked {
                    target: target.to_owned(),
                    holder: holder.trim().to_owned(),
                    path,
                });
            }
            Err(TryLockError::Error(source)) => return Err(DeployError::LockIo { path, source }),
        }
        file.set_len(0).map_err(io)?;
        writeln!(file, "pid {}", std::process::id()).map_err(io)?;
        tracing::debug!(target, path = %path.display(), "deploy lock taken");
        Ok(Self { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TargetLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}
