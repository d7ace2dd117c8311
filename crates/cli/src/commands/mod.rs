//! One module per subcommand; each has an `Args` (clap) and a `run` returning an [`Exit`].
//!
//! [`Exit`]: crate::exit::Exit

pub mod apply;
pub mod check;
pub mod cleanup;
pub mod completions;
pub mod diff;
pub mod plan;
pub mod releases;
pub mod render;
pub mod rollback;
pub mod run;
pub mod stepwise;
pub mod upstream;
pub mod validate;
