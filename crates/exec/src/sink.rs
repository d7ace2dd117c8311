//! Where a stage's output goes: its log file and the run's event stream, masked. Its own
//! module so that `process` (which pumps output into it) and `stage` (whose contexts carry it)
//! both depend on it and not on each other.

use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::UnboundedSender;

use crate::events::{Event, Progress, ProgressThrottle, Stream};
use crate::mask::Masker;

/// Where a stage's output goes: its log file, and the run's event stream (masked).
#[derive(Debug, Clone)]
pub struct OutputSink {
    stage: Arc<str>,
    events: Option<UnboundedSender<Event>>,
    log: Option<Arc<Mutex<File>>>,
    masker: Masker,
    /// Shared by the clones of the sink, so a stage's tasks are throttled however they send.
    throttle: Arc<Mutex<ProgressThrottle>>,
}

impl OutputSink {
    pub(crate) fn new(
        stage: &str,
        events: Option<UnboundedSender<Event>>,
        log: Option<File>,
        masker: Masker,
    ) -> Self {
        Self {
            stage: Arc::from(stage),
            events,
            log: log.map(|f| Arc::new(Mutex::new(f))),
            masker,
            throttle: Arc::default(),
        }
    }

    /// Records one line; returns it masked.
    pub fn line(&self, stream: Stream, line: &str) -> String {
        let masked = self.masker.mask(line).into_owned();
        if let Some(log) = &self.log
            && let Ok(mut file) = log.lock()
        {
            let prefix = if stream == Stream::Stderr { "! " } else { "" };
            let _ = writeln!(file, "{prefix}{masked}");
        }
        if let Some(events) = &self.events {
            let _ = events.send(Event::StageOutput {
                stage: self.stage.to_string(),
                stream,
                line: masked.clone(),
            });
        }
        masked
    }

    /// Reports progress of one of the stage's tasks (masked, throttled per task; the final,
    /// `done`, report always goes out and is written to the log).
    pub fn progress(&self, progress: Progress) {
        let admitted = match self.throttle.lock() {
            Ok(mut throttle) => {
                throttle.admit(&progress.task, progress.done, std::time::Instant::now())
            }
            // A panicked holder cannot have left the map in a state worth protecting.
            Err(_) => progress.done,
        };
        if !admitted {
            return;
        }
        let task = self.mask(&progress.task);
        let message = self.mask(&progress.message);
        if progress.done
            && let Some(log) = &self.log
            && let Ok(mut file) = log.lock()
        {
            let total = progress.total.map(|t| format!("/{t}")).unwrap_or_default();
            let _ = writeln!(
                file,
                "{task}: {message} ({}{total} {})",
                progress.current,
                progress.unit.as_str()
            );
        }
        if let Some(events) = &self.events {
            let _ = events.send(Event::StageProgress {
                stage: self.stage.to_string(),
                task,
                current: progress.current,
                total: progress.total,
                unit: progress.unit,
                message,
                done: progress.done,
            });
        }
    }

    /// Length in bytes of the longest secret (see [`Masker::longest`]).
    pub(crate) fn longest_secret(&self) -> usize {
        self.masker.longest()
    }

    /// See [`Masker::cut_point`].
    pub(crate) fn cut_point(&self, bytes: &[u8], at: usize) -> usize {
        self.masker.cut_point(bytes, at)
    }

    /// Masks secrets in a text.
    pub fn mask(&self, text: &str) -> String {
        self.masker.mask(text).into_owned()
    }

    /// Records a message from the stage itself (not from a process).
    pub fn info(&self, message: &str) {
        self.line(Stream::Stderr, message);
    }
}
