//! Machine-readable events of a run (`--events json` prints them as JSON lines).

use std::collections::BTreeMap;

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
