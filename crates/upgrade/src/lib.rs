//! The upgrade use case behind `uplift plan`, `uplift apply` and the pipeline's `upgrade` stage.
//!
//! - [`Upstream`]: a release source with its template lineage, values and versions map; renders
//!   any release into a [`Tree`](uplift_tree::Tree).
//! - [`Marker`]: where the app records its release (default `backstage.json`, field `version`).
//! - [`prepare`]: renders base and target, reads only the app paths upstream touched, merges, and
//!   returns a [`Prepared`] upgrade: the [`Plan`] plus the changes that carry it out.
//! - [`apply`]: writes a prepared upgrade all or nothing, optionally on a new git branch with
//!   one commit; [`recover`] finishes or undoes an interrupted one (every command calls it).
//! - [`report`]: the plan as text, JSON (schema 1), markdown and a patch.

mod apply;
mod branch;
mod error;
mod marker;
mod plan;
pub mod preset;
pub mod report;
mod upstream;

pub use apply::{ApplyOptions, ApplyOutcome, apply, apply_with, is_dirty, recover};
pub use error::Error;
pub use marker::Marker;
pub use plan::{FollowUp, line_notes};
pub use plan::{
    Overlay, PLAN_SCHEMA, Plan, Prepared, Steps, UpgradeRequest, prepare, prepare_steps,
};
/// The download reports an `npm:` upstream gives [`UpstreamConfig::download_progress`].
pub use uplift_npm::{DownloadProgress, DownloadProgressFn};
pub use uplift_tree::{ApplyControl, Recovered, RecoveryOutcome};
pub use upstream::{TemplateChoice, Upstream, UpstreamConfig};

/// The tracing target of the spans that mark an upgrade's phases (`open source`, `list
/// releases`, `render base`, `render target`, `read app`, `merge`); `uplift plan --timings`
/// adds them up.
pub const TIMINGS_TARGET: &str = "uplift::timings";

/// Runs `work` inside a phase span (see [`TIMINGS_TARGET`]) whose `name` field names the phase.
pub fn phase<T>(name: &'static str, work: impl FnOnce() -> T) -> T {
    tracing::info_span!(target: "uplift::timings", "phase", name).in_scope(work)
}
