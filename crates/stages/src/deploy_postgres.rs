//! The engine of `uses: postgres-backup` (and of a deploy stage's `database:` block): a
//! `pg_dump` in custom format before a release, and `pg_restore` for `rollback --with-data`.
//!
//! The password goes to the child processes through `PGPASSWORD` only: it is never on a
//! command line, in a message, or in the `Debug` output of [`PgTarget`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio_util::sync::CancellationToken;

/// A PostgreSQL database and how to log in to it.
#[derive(Clone, PartialEq, Eq)]
pub struct PgTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    /// From a secret; never printed.
    pub password: String,
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("database", &self.database)
            .field("password", &"***")
            .finish()
    }
}

impl PgTarget {
    fn describe(&self) -> String {
        format!(
            "{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }

    fn connection_args(&self) -> Vec<String> {
        vec![
            format!("--host={}", self.host),
            format!("--port={}", self.port),
            format!("--username={}", self.user),
            "--no-password".to_owned(),
        ]
    }
}

/// A dump taken before a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub path: PathBuf,
    pub bytes: u64,
}

/// A failure of a backup or restore.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("log in to PostgreSQL as {target}: the password was refused")]
    Auth { target: String },
    #[error("reach PostgreSQL at {target}: {detail}")]
    Unreachable { target: String, detail: String },
    #[error("`{command}` exited with {status}: {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("run {program}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("use {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is not a pg_dump custom-format file")]
    NotADump(PathBuf),
    #[error("{} is not a complete dump: {detail}", path.display())]
    Incomplete { path: PathBuf, detail: String },
    #[error("cancelled")]
    Cancelled,
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

async fn run(
    program: &str,
    args: &[String],
    target: &PgTarget,
    cancel: &CancellationToken,
) -> Result<(), PgError> {
    run_in(program, args, Some(target), cancel).await
}

/// Runs a PostgreSQL client program; `target` gives the password (and names the database in
/// errors) when it talks to a server.
async fn run_in(
    program: &str,
    args: &[String],
    target: Option<&PgTarget>,
    cancel: &CancellationToken,
) -> Result<(), PgError> {
    let command = format!("{program} {}", args.join(" "));
    tracing::info!(%command, "postgres");
    let mut command_line = tokio::process::Command::new(program);
    if let Some(target) = target {
        command_line.env("PGPASSWORD", &target.password);
    }
    let mut child = command_line
        .args(args)
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| PgError::Spawn {
            program: program.to_owned(),
            source,
        })?;
    let stderr = child.stderr.take().map(|mut pipe| {
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes).await;
            bytes
        })
    });
    let status = tokio::select! {
        _ = cancel.cancelled() => {
            interrupt(&mut child).await;
            return Err(PgError::Cancelled);
        }
        status = child.wait() => status.map_err(|source| PgError::Spawn { program: program.to_owned(), source })?,
    };
    let stderr = match stderr {
        Some(reader) => reader.await.unwrap_or_default(),
        None => Vec::new(),
    };
    let output = std::process::Output {
        status,
        stdout: Vec::new(),
        stderr,
    };
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let Some(target) = target else {
        return Err(PgError::Failed {
            command,
            status: output.status.to_string(),
            stderr: tail(&stderr, 10),
        });
    };
    let stderr = stderr.replace(&target.password, "***");
    if stderr.contains("password authentication failed") || stderr.contains("no password supplied")
    {
        return Err(PgError::Auth {
            target: target.describe(),
        });
    }
    if stderr.contains("Connection refused")
        || stderr.contains("could not translate host name")
        || stderr.contains("timeout expired")
    {
        return Err(PgError::Unreachable {
            target: target.describe(),
            detail: tail(&stderr, 1),
        });
    }
    Err(PgError::Failed {
        command,
        status: output.status.to_string(),
        stderr: tail(&stderr, 10),
    })
}

/// Stops a client program the way Ctrl-C does: SIGINT makes `pg_restore` and `pg_dump` send
/// the server a cancel request for their statement, so the server rolls the transaction back
/// at once instead of waiting (on a lock, say) for a client that is gone. SIGKILL after 5 s.
async fn interrupt(child: &mut tokio::process::Child) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
    }
    if tokio::time::timeout(std::time::Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// Dumps `target` with `pg_dump --format=custom` into `dir/<name>.dump` (written to a temporary
/// name first, so a failed dump leaves no file that looks complete).
pub async fn backup(
    target: &PgTarget,
    dir: &Path,
    name: &str,
    cancel: &CancellationToken,
) -> Result<Backup, PgError> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|source| PgError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    let path = dir.join(format!("{name}.dump"));
    let partial = dir.join(format!("{name}.dump.partial"));
    let mut args = target.connection_args();
    args.extend([
        "--format=custom".to_owned(),
        format!("--file={}", partial.display()),
        format!("--dbname={}", target.database),
    ]);
    if let Err(error) = run("pg_dump", &args, target, cancel).await {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(error);
    }
    tokio::fs::rename(&partial, &path)
        .await
        .map_err(|source| PgError::Io {
            path: path.clone(),
            source,
        })?;
    let bytes = tokio::fs::metadata(&path)
        .await
        .map_err(|source| PgError::Io {
            path: path.clone(),
            source,
        })?
        .len();
    tracing::info!(path = %path.display(), bytes, database = %target.database, "database backed up");
    Ok(Backup { path, bytes })
}

/// Checks that `dump` is there and is a `pg_dump` custom-format file (it starts with `PGDMP`),
/// so a rollback can refuse before it stops anything.
pub async fn check_dump(dump: &Path) -> Result<(), PgError> {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 5];
    let mut file = tokio::fs::File::open(dump)
        .await
        .map_err(|source| PgError::Io {
            path: dump.to_path_buf(),
            source,
        })?;
    file.read_exact(&mut head)
        .await
        .map_err(|source| PgError::Io {
            path: dump.to_path_buf(),
            source,
        })?;
    if &head != b"PGDMP" {
        return Err(PgError::NotADump(dump.to_path_buf()));
    }
    Ok(())
}

/// Checks that `dump` is complete: `pg_restore --list` reads its table of contents, then a
/// `pg_restore` into `/dev/null` reads every entry to the end (a truncated file fails here;
/// the list alone reads only the head). Touches no database.
pub async fn check_dump_complete(dump: &Path, cancel: &CancellationToken) -> Result<(), PgError> {
    check_dump(dump).await?;
    let path = dump.display().to_string();
    for args in [
        vec!["--list".to_owned(), path.clone()],
        vec!["--file=/dev/null".to_owned(), path.clone()],
    ] {
        match run_in("pg_restore", &args, None, cancel).await {
            Ok(()) => {}
            Err(PgError::Failed { stderr, .. }) => {
                return Err(PgError::Incomplete {
                    path: dump.to_path_buf(),
                    detail: tail(&stderr, 1),
                });
            }
            Err(other) => return Err(other),
        }
    }
    Ok(())
}

/// Checks that `target` accepts the credentials (a `select 1` through `psql`), so a refused
/// password or an unreachable server is reported at once, before anything is stopped.
pub async fn check_login(target: &PgTarget, cancel: &CancellationToken) -> Result<(), PgError> {
    let mut args = target.connection_args();
    args.extend([
        format!("--dbname={}", target.database),
        "--no-psqlrc".to_owned(),
        "--quiet".to_owned(),
        "--command=select 1".to_owned(),
    ]);
    run("psql", &args, target, cancel).await
}

/// Everything a restore can be checked for without doing it: the dump is complete and the
/// database accepts the credentials.
pub async fn check_restore(
    target: &PgTarget,
    dump: &Path,
    cancel: &CancellationToken,
) -> Result<(), PgError> {
    check_dump_complete(dump, cancel).await?;
    check_login(target, cancel).await
}

/// Restores a dump into `target` with `pg_restore --clean --if-exists --single-transaction`:
/// the objects in the dump are dropped and recreated, all or nothing.
pub async fn restore(
    target: &PgTarget,
    dump: &Path,
    cancel: &CancellationToken,
) -> Result<(), PgError> {
    check_dump(dump).await?;
    let mut args = target.connection_args();
    args.extend([
        "--clean".to_owned(),
        "--if-exists".to_owned(),
        "--single-transaction".to_owned(),
        "--no-owner".to_owned(),
        format!("--dbname={}", target.database),
        dump.display().to_string(),
    ]);
    run("pg_restore", &args, target, cancel).await?;
    tracing::info!(dump = %dump.display(), database = %target.database, "database restored");
    Ok(())
}
