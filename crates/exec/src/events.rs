//! Machine-readable events of a run (`--events json` prints them as JSON lines).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::Serialize;

/// How a stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StageResult {
    Success,
    Failure,
    Cancelled,
    Skipped,
}

impl StageResult {
    pub fn as_str(self) -> &'static str {
        match self {
            StageResult::Success => "success",
            StageResult::Failure => "failure",
            StageResult::Cancelled => "cancelled",
            StageResult::Skipped => "skipped",
        }
    }
}

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// How the whole run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunResult {
    Success,
    Failure,
    Cancelled,
}

/// One line of the summary table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageSummary {
    pub stage: String,
    pub uses: String,
    pub finally: bool,
    pub result: StageResult,
    /// The failure was allowed (`continue-on-error`).
    pub allowed_failure: bool,
    pub attempts: u32,
    pub duration_ms: u64,
    /// Why it failed or was skipped (masked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Outputs (masked).
    pub outputs: BTreeMap<String, String>,
}

/// Events, in the order they happen. Every text is already masked.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    RunStarted {
        run_id: String,
        pipeline: String,
        dir: String,
        stages: usize,
    },
    StageStarted {
        stage: String,
        attempt: u32,
    },
    StageOutput {
        stage: String,
        stream: Stream,
        line: String,
    },
    /// Progress of one task of a stage (throttled: see [`ProgressThrottle`]).
    StageProgress {
        stage: String,
        /// Stable within the stage: `push 127.0.0.1:5000/app layer 3f2a12ab34cd`,
        /// `build 127.0.0.1:5000/app`, `rollout portal`.
        task: String,
        current: u64,
        /// Unknown until the engine says (a layer's size, a build's step count).
        total: Option<u64>,
        unit: ProgressUnit,
        /// The state in a few words: `pushing`, `pushed`, `already exists`, `waiting for health`.
        message: String,
        /// The last event of this task.
        done: bool,
    },
    StageRetrying {
        stage: String,
        attempt: u32,
        delay_ms: u64,
        reason: String,
    },
    StageFinished(StageSummary),
    Cancelling {
        forced: bool,
    },
    RunFinished {
        run_id: String,
        result: RunResult,
        duration_ms: u64,
        stages: Vec<StageSummary>,
    },
}

/// What a progress count counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgressUnit {
    Bytes,
    Steps,
    Replicas,
}

impl ProgressUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            ProgressUnit::Bytes => "bytes",
            ProgressUnit::Steps => "steps",
            ProgressUnit::Replicas => "replicas",
        }
    }
}

/// One progress report of a stage's task, as a stage sends it through its
/// [`OutputSink`](crate::OutputSink); the sink masks, throttles and stamps the stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub task: String,
    pub current: u64,
    pub total: Option<u64>,
    pub unit: ProgressUnit,
    pub message: String,
    pub done: bool,
}

/// Lets through at most one progress event per task and interval, and always the last one
/// (`done`), so a push of many layers or a chatty build never floods the event stream.
#[derive(Debug, Clone)]
pub struct ProgressThrottle {
    interval: Duration,
    last_sent: HashMap<String, Instant>,
}

impl ProgressThrottle {
    /// Four events a second per task: enough for a bar to move smoothly.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(250);

    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last_sent: HashMap::new(),
        }
    }

    /// Whether an event of `task` at `now` goes out.
    pub fn admit(&mut self, task: &str, done: bool, now: Instant) -> bool {
        if done {
            // Forget the task: a long run with many layers keeps no state per finished one.
            self.last_sent.remove(task);
            return true;
        }
        match self.last_sent.get_mut(task) {
            Some(last) if now.saturating_duration_since(*last) < self.interval => false,
            Some(last) => {
                *last = now;
                true
            }
            None => {
                self.last_sent.insert(task.to_owned(), now);
                true
            }
        }
    }
}

impl Default for ProgressThrottle {
    fn default() -> Self {
        Self::new(Self::DEFAULT_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_passes_one_event_per_interval_per_task_and_every_final_one() {
        let mut throttle = ProgressThrottle::new(Duration::from_millis(250));
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert!(throttle.admit("layer a", false, at(0)), "the first event");
        assert!(!throttle.admit("layer a", false, at(100)));
        assert!(!throttle.admit("layer a", false, at(249)));
        assert!(
            throttle.admit("layer b", false, at(100)),
            "tasks are throttled apart"
        );
        assert!(
            throttle.admit("layer a", false, at(250)),
            "a full interval later"
        );
        assert!(!throttle.admit("layer a", false, at(300)));
        assert!(
            throttle.admit("layer a", true, at(301)),
            "the final event always goes out"
        );
        // 1,000 ticks over one second give at most 4 events (one per 250 ms) plus the last.
        let mut passed = 0;
        for ms in 0..1000 {
            if throttle.admit("layer c", false, at(1000 + ms)) {
                passed += 1;
            }
        }
        assert_eq!(passed, 4);
        assert!(throttle.admit("layer c", true, at(2000)));
        assert!(
            !throttle.last_sent.contains_key("layer a"),
            "finished tasks are forgotten"
        );
    }
}
