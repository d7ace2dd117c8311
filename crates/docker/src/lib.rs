//! `uplift-docker`: a thin layer over the Docker Engine API ([`bollard`]).
//!
//! Main types:
//! - [`Engine`]: a connection to the local engine with the API version negotiated down to what
//!   the engine speaks, and what it supports (BuildKit through the API or only the classic
//!   builder).
//! - [`ResourceGuard`]: every container, network and volume created for a run carries the label
//!   [`LABEL_RUN_ID`]; the guard removes what it tracks when it is dropped or cancelled, and
//!   [`remove_run_resources`] removes what a crashed run left behind.
//! - [`DockerIgnore`] and [`BuildContext`]: the build context the Docker CLI sends (its
//!   `.dockerignore` rules, modes, links, special files, a Dockerfile outside the context),
//!   with fixed or source timestamps ([`ContextTimestamps`]).
//! - [`build_image`] ([`BuildRequest`], [`BuildEvent`]): BuildKit when the engine supports it,
//!   the classic builder otherwise, and [`Error::BuildKitRequired`] when a Dockerfile needs
//!   BuildKit and cannot have it.
//! - [`run_container`] ([`ContainerSpec`]): a one-shot container with live output, a timeout and
//!   cancellation; the container is removed whatever happens.
//! - [`push_image`], [`registry_digest`], [`check_registry`], [`RegistryAuth`]: pushing with
//!   credentials from a Docker config file (and its credential helpers) or given directly,
//!   retries with backoff, and the digest read back from the registry.
//! - [`ImageRef`], [`tag_policy`], [`oci_labels`]: references, tags and labels.
//!
//! The library never prints: it emits `tracing` events and calls the caller's progress
//! callbacks.

mod build;
mod context;
pub mod deploy;
mod engine;
mod error;
mod guard;
mod ignore;
mod reference;
mod registry;
mod run;

pub use build::{BuildEvent, BuildRequest, Builder, BuiltImage, build_image, needs_buildkit};
pub use context::{BuildContext, ContextOptions, ContextSummary, ContextTimestamps};
pub use engine::Engine;
pub use error::{Error, Result};
pub use guard::{
    LABEL_CACHE, LABEL_RUN_ID, RemovedResources, ResourceGuard, RunId, remove_run_resources,
};
pub use ignore::{DockerIgnore, IgnoreError, MatchInfo};
pub use reference::{ImageRef, TagPolicy, oci_labels, tag_policy};
pub use registry::{
    PushEvent, RegistryAuth, RegistryStatus, RetryPolicy, check_registry, credentials_from_config,
    push_image, registry_digest,
};
pub use run::{
    Bind, ContainerSpec, Ended, OutputStream, RunLimits, RunOutcome, VolumeMount, ensure_volume,
    run_container,
};
