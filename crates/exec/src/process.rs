//! Child processes in their own process group, streamed line by line, killed as a group.
//!
//! On cancellation (a signal, a stage's timeout) or when a process's own time limit
//! ([`Spawner::run_with_timeout`]) runs out, the group gets SIGTERM, then SIGKILL after the grace
//! period (at once if the run is forced). When the leader exits, stragglers left in its group
//! (`sleep 100 &`) are killed too, and so is the whole group if the future running it is
//! dropped, so nothing outlives its stage.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::events::Stream;
use crate::sink::OutputSink;
use crate::tracking;

/// Longest line passed on whole; longer ones are cut.
const MAX_LINE: usize = 64 * 1024;

/// Lines of output kept for error messages.
const TAIL_LINES: usize = 20;

/// A command to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    pub program: String,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    /// The complete environment of the child (nothing else is inherited).
    pub env: BTreeMap<String, String>,
}

impl ProcessSpec {
    /// The command line, for messages.
    pub fn display(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessExit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// It was stopped by cancellation or a timeout.
    pub killed: bool,
    /// It was stopped because its own time limit ran out (see [`Spawner::run_with_timeout`]).
    pub timed_out: bool,
    /// The last lines of its output (masked).
    pub tail: Vec<String>,
}

impl ProcessExit {
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.killed
    }
}

/// The failures of [`Spawner::run`].
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("start `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("wait for `{command}`")]
    Wait {
        command: String,
        #[source]
        source: std::io::Error,
    },
}

/// The only way a stage can start a process. Built by the executor for `run`, never for `plan`.
#[derive(Debug, Clone)]
pub struct Spawner {
    pub(crate) cancel: CancellationToken,
    pub(crate) force: CancellationToken,
    pub(crate) grace: Duration,
    pub(crate) sink: OutputSink,
    /// The run's tag: the first half of each process's [`tracking::TAG_VAR`].
    pub(crate) run_tag: Arc<str>,
}

/// Numbers the processes of this uplift (the second half of their tag).
static PROCESS_SEQUENCE: AtomicU64 = AtomicU64::new(0);

fn signal_group(pid: Pid, signal: Signal) {
    match killpg(pid, signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(error) => {
            tracing::warn!(%error, pid = pid.as_raw(), ?signal, "cannot signal process group")
        }
    }
}

/// Kills a process group when dropped: a future running a process may be dropped (an outer
/// `tokio::time::timeout`, an aborted task), and `kill_on_drop` alone only reaches the leader.
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            signal_group(pid, Signal::SIGKILL);
        }
    }
}

impl Spawner {
    /// Runs `spec` to its end (or until cancelled), streaming its output to the stage's sink.
    pub async fn run(&self, spec: &ProcessSpec) -> Result<ProcessExit, ProcessError> {
        self.run_with_timeout(spec, None).await
    }

    /// Like [`Spawner::run`], with a time limit of its own: when it runs out, the process's whole
    /// group is stopped as on cancellation (SIGTERM, SIGKILL after the grace period) and the
    /// exit says `timed_out`.
    pub async fn run_with_timeout(
        &self,
        spec: &ProcessSpec,
        timeout: Option<Duration>,
    ) -> Result<ProcessExit, ProcessError> {
        let command = self.sink.mask(&spec.display());
        let tag = format!(
            "{}:{}",
            self.run_tag,
            PROCESS_SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .current_dir(&spec.cwd)
            .env_clear()
            .envs(&spec.env)
            .env(tracking::TAG_VAR, &tag)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| ProcessError::Spawn {
            command: command.clone(),
            source,
        })?;
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw);
        // If this future is dropped from here on, the group does not outlive it.
        let mut group = GroupGuard(pgid);
        if let Some(pid) = pgid {
            tracking::leader_started(pid.as_raw());
        }
        tracing::debug!(%command, pid = ?pgid, "started");
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(pump(
                out,
                Stream::Stdout,
                self.sink.clone(),
                tail.clone(),
            )));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(pump(
                err,
                Stream::Stderr,
                self.sink.clone(),
                tail.clone(),
            )));
        }

        let mut killed = false;
        let mut timed_out = false;
        let time_limit = async {
            match timeout {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        let status = tokio::select! {
            status = child.wait() => status,
            () = time_limit => {
                timed_out = true;
                killed = true;
                self.stop_group(&mut child, pgid).await
            }
            () = self.cancel.cancelled() => {
                killed = true;
                self.stop_group(&mut child, pgid).await
            }
        };
        // Whatever is left in the group goes too. The guard stands down: once the group is gone
        // its number may be reused, and a later signal could reach someone else's group.
        if let Some(pid) = group.0.take() {
            signal_group(pid, Signal::SIGKILL);
            tracking::leader_ended(pid.as_raw());
            // And whatever left the group (`setsid`): adopted by uplift, found by its tag.
            let escaped = tracking::kill_escaped(pid.as_raw(), &tag);
            if !escaped.is_empty() {
                tracing::debug!(%command, ?escaped, "killed processes that left the group");
                tokio::task::spawn_blocking(move || tracking::reap(escaped));
            }
        }
        let status = status.map_err(|source| ProcessError::Wait {
            command: command.clone(),
            source,
        })?;
        for reader in readers {
            // A process that left the group may hold the pipe: do not wait for it forever.
            let abort = reader.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), reader)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        use std::os::unix::process::ExitStatusExt;
        let tail = tail
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default();
        Ok(ProcessExit {
            code: status.code(),
            signal: status.signal(),
            killed,
            timed_out,
            tail,
        })
    }

    /// SIGTERM to the group, then SIGKILL after the grace period (at once when the run is
    /// forced); returns the leader's status.
    async fn stop_group(
        &self,
        child: &mut tokio::process::Child,
        pgid: Option<Pid>,
    ) -> std::io::Result<std::process::ExitStatus> {
        if let Some(pid) = pgid {
            signal_group(pid, Signal::SIGTERM);
        }
        tokio::select! {
            status = child.wait() => status,
            () = tokio::time::sleep(self.grace) => {
                if let Some(pid) = pgid { signal_group(pid, Signal::SIGKILL); }
                child.wait().await
            }
            () = self.force.cancelled() => {
                if let Some(pid) = pgid { signal_group(pid, Signal::SIGKILL); }
                child.wait().await
            }
        }
    }
}

async fn pump<R: AsyncRead + Unpin>(
    reader: R,
    stream: Stream,
    sink: OutputSink,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    let mut reader = BufReader::new(reader);
    let mut buf: Vec<u8> = Vec::new();
    let emit = |buf: &[u8]| {
        let text = String::from_utf8_lossy(buf);
        let line = text.trim_end_matches(['\n', '\r']);
        let masked = sink.line(stream, line);
        if let Ok(mut tail) = tail.lock() {
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(masked);
        }
    };
    // A line longer than MAX_LINE is cut into pieces rather than held whole. The buffer reaches
    // past MAX_LINE by the longest secret so that a secret crossing the cut is seen whole: the
    // cut moves past it, and each piece is masked before it goes anywhere.
    let limit = MAX_LINE + sink.longest_secret().saturating_sub(1);
    while let Ok(available) = reader.fill_buf().await {
        if available.is_empty() {
            break;
        }
        // Never hold more than `limit` bytes, however the reads are chunked.
        let room = limit - buf.len();
        let (take, newline) = match available.iter().position(|&b| b == b'\n') {
            Some(i) if i < room => (i + 1, true),
            _ => (available.len().min(room), false),
        };
        buf.extend_from_slice(&available[..take]);
        reader.consume(take);
        if newline {
            emit(&buf);
            buf.clear();
        } else if buf.len() >= limit {
            let cut = piece_end(&sink, &buf);
            emit(&buf[..cut]);
            buf.drain(..cut);
        }
    }
    while buf.len() > MAX_LINE {
        let cut = piece_end(&sink, &buf);
        emit(&buf[..cut]);
        buf.drain(..cut);
    }
    if !buf.is_empty() {
        emit(&buf);
    }
}

/// Where the first piece of an over-long line ends: about [`MAX_LINE`], moved back to a
/// character boundary and forward past a secret that crosses it.
fn piece_end(sink: &OutputSink, buf: &[u8]) -> usize {
    let mut cut = MAX_LINE.min(buf.len());
    // Up to three continuation bytes (10xxxxxx) end a UTF-8 character.
    for _ in 0..3 {
        match buf.get(cut) {
            Some(b) if (b & 0xC0) == 0x80 && cut > 1 => cut -= 1,
            _ => break,
        }
    }
    sink.cut_point(buf, cut).clamp(1, buf.len())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn spawner(grace: Duration) -> Spawner {
        Spawner {
            cancel: CancellationToken::new(),
            force: CancellationToken::new(),
            grace,
            sink: OutputSink::new("t", None, None, crate::Masker::new(Vec::<String>::new())),
            run_tag: Arc::from("test"),
        }
    }

    /// A shell that starts `sleep 300` in the background (ignoring SIGTERM, which exec keeps),
    /// writes its pid to `pid` and waits for it.
    fn straggler(dir: &std::path::Path) -> ProcessSpec {
        ProcessSpec {
            program: "sh".into(),
            args: vec![
                "-c".into(),
                "trap '' TERM; sleep 300 & echo $! > pid; wait".into(),
            ],
            cwd: dir.into(),
            env: BTreeMap::from([("PATH".into(), "/usr/bin:/bin".into())]),
        }
    }

    async fn pid_of_straggler(dir: &std::path::Path) -> i32 {
        for _ in 0..100 {
            if let Ok(text) = std::fs::read_to_string(dir.join("pid"))
                && let Ok(pid) = text.trim().parse()
            {
                return pid;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the straggler never wrote its pid");
    }

    /// Gone, or a zombie waiting for whoever reaps orphans here.
    async fn gone_within(pid: i32, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let gone = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => true,
                Ok(stat) => stat
                    .rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
            };
            if gone {
                return true;
            }
            if std::time::Instant::now() > deadline {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_time_limit_stops_the_whole_group_after_the_grace() {
        let dir = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        let exit = spawner(Duration::from_millis(300))
            .run_with_timeout(&straggler(dir.path()), Some(Duration::from_millis(300)))
            .await
            .unwrap();
        assert!(exit.timed_out && exit.killed && !exit.success(), "{exit:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let pid = pid_of_straggler(dir.path()).await;
        assert!(gone_within(pid, Duration::from_secs(5)).await, "{pid} left");
    }

    #[tokio::test]
    async fn a_dropped_run_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let spawner = spawner(Duration::from_secs(10));
        let spec = straggler(dir.path());
        let run = spawner.run(&spec);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), run)
                .await
                .is_err()
        );
        let pid = pid_of_straggler(dir.path()).await;
        assert!(gone_within(pid, Duration::from_secs(5)).await, "{pid} left");
    }
}
