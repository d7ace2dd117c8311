//! Processes that leave their stage's process group (`setsid`, a double fork): found and
//! killed when their stage's process ends, and after a crash of uplift itself by the next run.
//!
//! Every process a stage starts carries [`TAG_VAR`] (`RUN_ID:N`) in its environment, which its
//! descendants inherit, and uplift is the *child subreaper* of its descendants (Linux
//! `PR_SET_CHILD_SUBREAPER`): a process whose parent dies is re-parented to uplift rather than
//! to init. So when a stage's process ends, whatever escaped its group is a child of uplift
//! (or a descendant of one) carrying that process's tag; and when uplift itself was killed,
//! the next run finds the crashed run's processes by their run id.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The environment variable tagging every process a stage starts: `RUN_TAG:N` (the run tag is
/// the run id and a number unique within this uplift).
pub const TAG_VAR: &str = "UPLIFT_PROCESS";

/// Leaders of the processes started by [`crate::Spawner`] that have not ended yet: children of
/// uplift that did not escape anything.
static LEADERS: Mutex<Option<HashSet<i32>>> = Mutex::new(None);

/// Makes this process the reaper of its descendants' orphans. Best effort: without it
/// (another OS, a kernel that refuses) escaped processes go to init and only the tag scan of
/// [`kill_run_leftovers`] finds them.
pub fn become_subreaper() {
    if let Err(error) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!(%error, "cannot become the child subreaper: processes that leave their stage's group may outlive it");
    }
}

pub(crate) fn leader_started(pid: i32) {
    if let Ok(mut leaders) = LEADERS.lock() {
        leaders.get_or_insert_with(HashSet::new).insert(pid);
    }
}

pub(crate) fn leader_ended(pid: i32) {
    if let Ok(mut leaders) = LEADERS.lock()
        && let Some(leaders) = leaders.as_mut()
    {
        leaders.remove(&pid);
    }
}

/// `(ppid, state)` of a process, from `/proc/PID/stat`.
fn stat(pid: i32) -> Option<(i32, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((ppid, state))
}

/// Whether a process's environment has an entry starting with `prefix`.
fn environ_has(pid: i32, prefix: &[u8]) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|env| {
            env.split(|b| *b == 0)
                .any(|entry| entry.starts_with(prefix))
        })
        .unwrap_or(false)
}

/// Live (not zombie) processes other than this one, with their parents; only those with a pid
/// above `above` (processes forked after a leader get higher pids until the counter wraps).
fn processes(above: i32) -> Vec<(i32, i32)> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid > above && pid != me)
        .filter_map(|pid| match stat(pid) {
            Some((ppid, state)) if !matches!(state, 'Z' | 'X') => Some((pid, ppid)),
            _ => None,
        })
        .collect()
}

/// `roots` and every process below them.
fn with_descendants(roots: Vec<i32>, all: &[(i32, i32)]) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for &(pid, ppid) in all {
        children.entry(ppid).or_default().push(pid);
    }
    let mut seen: HashSet<i32> = HashSet::new();
    let mut todo = roots;
    let mut out = Vec::new();
    while let Some(pid) = todo.pop() {
        if seen.insert(pid) {
            out.push(pid);
            todo.extend(children.get(&pid).into_iter().flatten().copied());
        }
    }
    out
}

fn kill_all(pids: &[i32]) {
    for &pid in pids {
        match kill(Pid::from_raw(pid), Signal::SIGKILL) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(error) => tracing::warn!(%error, pid, "cannot kill a leftover process"),
        }
    }
}

/// Kills what escaped the group of the process `leader` tagged `tag`, once `leader` has ended:
/// the adopted children of uplift carrying the tag, and everything below them. Returns their
/// pids.
pub(crate) fn kill_escaped(leader: i32, tag: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let all = processes(leader);
    let leaders = LEADERS
        .lock()
        .map(|l| l.clone().unwrap_or_default())
        .unwrap_or_default();
    let entry = format!("{TAG_VAR}={tag}\0");
    let entry = entry.as_bytes();
    let roots: Vec<i32> = all
        .iter()
        .filter(|(pid, ppid)| *ppid == me && !leaders.contains(pid))
        .map(|(pid, _)| *pid)
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| {
                    let mut env = env;
                    env.push(0);
                    env.split_inclusive(|b| *b == 0).any(|e| e == entry)
                })
                .unwrap_or(false)
        })
        .collect();
    if roots.is_empty() {
        return Vec::new();
    }
    let doomed = with_descendants(roots, &all);
    kill_all(&doomed);
    doomed
}

/// Reaps killed processes that were (or became) children of uplift, so no zombie stays.
/// Only a process whose parent is uplift is waited for, so no other child's status is taken.
pub(crate) fn reap(pids: Vec<i32>) {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let me = std::process::id() as i32;
    let mut left = pids;
    for _ in 0..100 {
        left.retain(|&pid| match stat(pid) {
            None => false,
            Some((ppid, _)) if ppid != me => true,
            Some(_) => {
                !matches!(
                    waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)),
                    Ok(status) if status != WaitStatus::StillAlive
                ) && stat(pid).is_some()
            }
        });
        if left.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills every process still carrying the tag of run `run_tag` (a run that was killed before
/// it could stop its stages). Returns how many there were.
pub fn kill_run_leftovers(run_tag: &str) -> usize {
    let prefix = format!("{TAG_VAR}={run_tag}:");
    let mut total = 0;
    // A process may fork while the scan runs: scan again until nothing is found.
    for _ in 0..5 {
        let found: Vec<i32> = processes(0)
            .into_iter()
            .map(|(pid, _)| pid)
            .filter(|&pid| environ_has(pid, prefix.as_bytes()))
            .collect();
        if found.is_empty() {
            break;
        }
        total += found.len();
        kill_all(&found);
        std::thread::sleep(Duration::from_millis(20));
    }
    total
}
