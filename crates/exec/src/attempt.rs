//! One stage's run: its attempts (retries with backoff), its timeout, its log and
//! `$UPLIFT_OUTPUT`. The executor decides *when* a stage runs; this decides *how*.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;
use uplift_pipeline::Stage as StageDef;

use crate::events::{Event, StageResult};
use crate::executor::Outcome;
use crate::mask::Masker;
use crate::process::Spawner;
use crate::stage::{OutputSink, Outputs, ResolvedStage, RunContext, Stage};

pub(crate) struct Job {
    pub(crate) def: StageDef,
    pub(crate) resolved: ResolvedStage,
    pub(crate) imp: Arc<dyn Stage>,
    pub(crate) token: CancellationToken,
    pub(crate) force: CancellationToken,
    pub(crate) grace: Duration,
    pub(crate) events: UnboundedSender<Event>,
    pub(crate) masker: Masker,
    pub(crate) work_dir: PathBuf,
    pub(crate) stage_dir: PathBuf,
    pub(crate) upstream: Option<uplift_pipeline::Upstream>,
    pub(crate) run_tag: Arc<str>,
}

/// Parses `$UPLIFT_OUTPUT`: `KEY=VALUE` lines, and `KEY<<DELIM` ... `DELIM` blocks.
pub fn parse_output_file(text: &str) -> Outputs {
    let mut outputs = Outputs::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((key, delim)) = line.split_once("<<")
            && !key.contains('=')
            && !key.trim().is_empty()
        {
            let mut value = Vec::new();
            for next in lines.by_ref() {
                if next == delim {
                    break;
                }
                value.push(next);
            }
            outputs.insert(key.trim().to_owned(), value.join("\n"));
            continue;
        }
        if let Some((key, value)) = line.split_once('=')
            && !key.trim().is_empty()
        {
            outputs.insert(key.trim().to_owned(), value.to_owned());
        }
    }
    outputs
}

pub(crate) async fn run_stage(job: Job) -> Outcome {
    let started = Instant::now();
    let id = job.def.id.clone();
    let fail = |reason: String, attempts: u32| Outcome {
        id: id.clone(),
        result: StageResult::Failure,
        attempts,
        duration: started.elapsed(),
        outputs: Outputs::new(),
        reason: Some(reason),
    };
    if let Err(error) = std::fs::create_dir_all(&job.stage_dir) {
        return fail(format!("create {}: {error}", job.stage_dir.display()), 0);
    }
    let log_path = job.stage_dir.join("log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .ok();
    let sink = OutputSink::new(&id, Some(job.events.clone()), log, job.masker.clone());
    let output_file = job.stage_dir.join("outputs");
    let max_attempts = job.def.retries.count.saturating_add(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let _ = job.events.send(Event::StageStarted {
            stage: id.clone(),
            attempt,
        });
        if let Err(error) = std::fs::write(&output_file, b"") {
            return fail(
                format!("create {}: {error}", output_file.display()),
                attempt,
            );
        }
        let token = job.token.child_token();
        let mut resolved = job.resolved.clone();
        resolved.env.insert(
            String::from("UPLIFT_OUTPUT"),
            output_file.display().to_string(),
        );
        resolved
            .env
            .insert(String::from("UPLIFT_STAGE"), id.clone());
        resolved.env.insert(
            String::from("UPLIFT_STAGE_DIR"),
            job.stage_dir.display().to_string(),
        );
        let ctx = RunContext {
            stage_id: id.clone(),
            cancel: token.clone(),
            masker: job.masker.clone(),
            output: sink.clone(),
            work_dir: job.work_dir.clone(),
            stage_dir: job.stage_dir.clone(),
            output_file: output_file.clone(),
            upstream: job.upstream.clone(),
            spawner: Spawner {
                cancel: token.clone(),
                force: job.force.clone(),
                grace: job.grace,
                sink: sink.clone(),
                run_tag: job.run_tag.clone(),
            },
        };
        let mut timed_out = false;
        let result = {
            let mut fut = std::pin::pin!(job.imp.run(ctx, &resolved));
            match job.def.timeout {
                None => fut.await,
                Some(limit) => tokio::select! {
                    r = &mut fut => r,
                    () = tokio::time::sleep(limit) => {
                        timed_out = true;
                        token.cancel();
                        fut.await
                    }
                },
            }
        };
        // What the stage wrote to $UPLIFT_OUTPUT stays in the run folder only masked.
        let written = std::fs::read_to_string(&output_file).unwrap_or_default();
        let _ = std::fs::write(&output_file, job.masker.mask(&written).as_bytes());
        match result {
            Ok(mut outputs) => {
                outputs.extend(parse_output_file(&written));
                return Outcome {
                    id: id.clone(),
                    result: StageResult::Success,
                    attempts: attempt,
                    duration: started.elapsed(),
                    outputs,
                    reason: None,
                };
            }
            Err(error) => {
                if job.token.is_cancelled() {
                    return Outcome {
                        id: id.clone(),
                        result: StageResult::Cancelled,
                        attempts: attempt,
                        duration: started.elapsed(),
                        outputs: Outputs::new(),
                        reason: Some(String::from("cancelled")),
                    };
                }
                let reason = if timed_out {
                    let limit = job.def.timeout.unwrap_or_default();
                    format!("timed out after {}", humantime::format_duration(limit))
                } else {
                    error.to_string()
                };
                // Only a stage that may retry has attempts to count.
                if max_attempts > 1 {
                    sink.info(&format!("uplift: attempt {attempt} failed: {reason}"));
                }
                if attempt >= max_attempts {
                    return fail(reason, attempt);
                }
                let delay = job.def.retries.delay(attempt);
                let _ = job.events.send(Event::StageRetrying {
                    stage: id.clone(),
                    attempt: attempt + 1,
                    delay_ms: delay.as_millis() as u64,
                    reason: job.masker.mask(&reason).into_owned(),
                });
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = job.token.cancelled() => {
                        return Outcome {
                            id: id.clone(),
                            result: StageResult::Cancelled,
                            attempts: attempt,
                            duration: started.elapsed(),
                            outputs: Outputs::new(),
                            reason: Some(String::from("cancelled")),
                        };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn output_file_lines_and_blocks() {
        let outputs = parse_output_file("a=1\nb=x=y\nnote<<EOF\nline 1\nline 2\nEOF\n=skip\n");
        assert_eq!(outputs.get("a").map(String::as_str), Some("1"));
        assert_eq!(outputs.get("b").map(String::as_str), Some("x=y"));
        assert_eq!(
            outputs.get("note").map(String::as_str),
            Some("line 1\nline 2")
        );
        assert_eq!(outputs.len(), 3);
    }
}
