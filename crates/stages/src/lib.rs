//! The built-in stage types, one module per type, and the [`registry`] that gathers them.
//!
//! Each module provides a type implementing [`uplift_exec::Stage`]: its `with` spec (checked
//! by `uplift validate`, part of the JSON Schema), a side-effect-free `plan` and an async
//! `run`. To add a stage type: add a module, then one `register` line in [`registry`].

pub mod deploy;
pub mod deploy_postgres;
pub mod deploy_stage;
pub mod image_stage;
pub mod run;
pub mod test_stage;
pub mod upgrade;

use std::sync::Arc;

use uplift_exec::Registry;
use uplift_pipeline::Catalog;

/// Every built-in stage type.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register(Arc::new(run::RunStage));
    registry.register(Arc::new(upgrade::UpgradeStage));
    registry.register(Arc::new(test_stage::TestStage));
    registry.register(Arc::new(image_stage::ImageStage));
    registry.register(Arc::new(deploy_stage::DeployStage));
    registry.register(Arc::new(deploy_stage::PostgresBackupStage));
    registry
}

/// The catalog `uplift validate` and the JSON Schema use.
pub fn catalog() -> Catalog {
    registry().catalog()
}
