//! `--timings`: where a command spent its time, per phase, on stderr.
//!
//! The libraries mark their phases with spans of target [`uplift_upgrade::TIMINGS_TARGET`]
//! whose `name` field names the phase (`open source`, `list releases`, `render base`, …); this
//! layer adds up each phase's wall time by name, in the order phases first ran. A stepwise plan
//! runs some phases once per step.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::span::{Attributes, Id};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Totals by phase name: (name, total wall time, times run), in first-run order.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    phases: Arc<Mutex<Vec<(String, Duration, u32)>>>,
}

/// A phase span's name and start, kept in the span's extensions until it closes.
struct Started(String, Instant);

/// Reads the `name` field of a phase span.
#[derive(Default)]
struct PhaseName(Option<String>);

impl tracing::field::Visit for PhaseName {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "name" {
            self.0 = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "name" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl Timings {
    fn add(&self, name: String, elapsed: Duration) {
        let mut phases = self.phases.lock().unwrap_or_else(PoisonError::into_inner);
        match phases.iter_mut().find(|(phase, _, _)| *phase == name) {
            Some((_, total, count)) => {
                *total += elapsed;
                *count += 1;
            }
            None => phases.push((name, elapsed, 1)),
        }
    }

    /// The summary: one line per phase, then the whole run (`since` is when the process began).
    pub fn render(&self, since: Instant) -> String {
        let phases = self.phases.lock().unwrap_or_else(PoisonError::into_inner);
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        let mut out = String::from("timings (wall time):\n");
        for (name, total, count) in phases.iter() {
            let times = if *count > 1 {
                format!("  ({count} times)")
            } else {
                String::new()
            };
            out.push_str(&format!("  {name:<14} {:>10}{times}\n", ms(*total)));
        }
        out.push_str(&format!("  {:<14} {:>10}\n", "total", ms(since.elapsed())));
        out
    }
}

impl<S> Layer<S> for Timings
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().target() != uplift_upgrade::TIMINGS_TARGET {
            return;
        }
        let mut name = PhaseName::default();
        attrs.record(&mut name);
        if let (Some(span), Some(name)) = (ctx.span(id), name.0) {
            span.extensions_mut().insert(Started(name, Instant::now()));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        if let Some(Started(name, start)) = span.extensions_mut().remove::<Started>() {
            self.add(name, start.elapsed());
        }
    }
}
