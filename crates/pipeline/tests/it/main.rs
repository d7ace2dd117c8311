//! Integration tests of `uplift-pipeline`: fuzzing of the file and expression parsers (no
//! panics on any input), and checks through the public API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod deploy_with;
mod fuzz;
