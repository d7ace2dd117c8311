//! `uses: upgrade`: merge an upstream release into the app (settings in `with` and the
//! pipeline's `upstream:` block). Its settings are modelled and checked; the execution is wired
//! to `uplift-upgrade` by the upgrade engine's owner. Until then plan and run fail clearly.

use std::sync::Arc;

use uplift_exec::{BoxFuture, Outputs, PlanContext, ResolvedStage, RunContext, Stage, StageError, StagePlan};
use uplift_pipeline::StageSpec;
use uplift_pipeline::with::{UPGRADE_SPEC, UpgradeWith, parse_with};

/// The `upgrade` stage type.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpgradeStage;

fn settings(stage: &ResolvedStage) -> Result<UpgradeWith, StageError> {
    parse_with::<UpgradeWith>(&stage.with).map_err(|e| StageError::Settings(format!("{}: {}", e.path, e.message)))
}

impl Stage for UpgradeStage {
    fn spec(&self) -> Arc<dyn StageSpec> {
        Arc::new(UPGRADE_SPEC)
    }

    fn plan(&self, ctx: &PlanContext<'_>, stage: &ResolvedStage) -> Result<StagePlan, StageError> {
        let _with = settings(stage)?;
        if ctx.upstream.is_none() {
            return Err(StageError::Settings(String::from("the pipeline has no `upstream:` block")));
        }
        Err(StageError::NotWired("upgrade"))
    }

    fn run<'a>(&'a self, ctx: RunContext, stage: &'a ResolvedStage) -> BoxFuture<'a, Result<Outputs, StageError>> {
        Box::pin(async move {
            let _with = settings(stage)?;
            if ctx.upstream.is_none() {
                return Err(StageError::Settings(String::from("the pipeline has no `upstream:` block")));
            }
            Err(StageError::NotWired("upgrade"))
        })
    }
}
