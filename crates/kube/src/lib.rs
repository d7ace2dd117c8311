//! Kubernetes deploys: typed manifests, server-side apply, rollout wait and rollback.
//!
//! - [`KubeSpec`] (in [`spec`]) is what a `deploy` stage with `target: kubernetes` says;
//!   [`render()`] turns it into typed objects ([`Manifests`]: ConfigMap, Service, Deployment,
//!   Ingress from k8s-openapi, Kubernetes 1.33 API) with the image pinned by digest.
//! - [`ClusterApi`] is the handful of cluster calls a deploy makes; [`Kubectl`] implements it
//!   over `kubectl` (`apply --server-side`), tests implement it over recorded API responses.
//! - [`deploy()`] applies, waits like `kubectl rollout status` ([`rollout::status`]), and on
//!   failure gathers [`Diagnostics`] and re-applies the previous release's manifests, which are
//!   kept as [`ReleaseRecord`]s in a ConfigMap; [`rollback()`] re-applies a chosen record
//!   ([`plan_rollback`] + [`apply_rollback`], with [`stop()`] in between when the database is
//!   restored); [`plan()`] diffs new manifests against the current record.

pub mod api;
pub mod deploy;
pub mod release;
pub mod render;
pub mod rollout;
pub mod spec;
#[cfg(feature = "testing")]
pub mod testing;

pub use api::{ApiError, ClusterApi, Kubectl};
pub use deploy::{
    DeployOptions, KubePlan, PreviousRelease, RollbackPlan, RolloutFailure, apply_rollback, deploy,
    diff_text, plan, plan_rollback, reapply, rollback, stop,
};
/// The typed Kubernetes objects the [`ClusterApi`] speaks, for its implementers.
pub use k8s_openapi;
pub use release::{History, ReleaseRecord};
pub use render::{Manifests, Object, render, render_for_plan, to_yaml};
pub use rollout::{Diagnostics, ProgressFn, RolloutProgress, RolloutStatus};
pub use spec::KubeSpec;

/// An error of a Kubernetes deploy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("image {image} is not pinned by digest (expected repo@sha256:<64 hex digits>)")]
    NotPinned { image: String },
    #[error("invalid {what} name {name:?} (lowercase letters, digits and '-', at most 63)")]
    InvalidName { what: String, name: String },
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
    #[error("serialize a manifest")]
    Serialize(#[source] serde_json::Error),
    #[error("write a manifest as YAML")]
    Yaml(#[source] serde_yaml::Error),
    #[error("talk to the cluster")]
    Api(#[source] ApiError),
    #[error("read release record {key}")]
    BadRecord {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}")]
    NoRelease(String),
    #[error("roll out {}: {}", .0.deployment, .0.reason)]
    Rollout(Box<RolloutFailure>),
    #[error("stop {deployment}: {pods} pod(s) still there when the wait ended")]
    NotStopped { deployment: String, pods: usize },
}
