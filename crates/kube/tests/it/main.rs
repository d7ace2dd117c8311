//! Integration tests of uplift-kube: rendered manifests (snapshots, offline schema validation)
//! and apply/wait/rollback against recorded API responses. No live cluster is used.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod hardening;
mod render;
mod rollout;
