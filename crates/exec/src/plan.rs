//! The pipeline plan: every stage in DAG order with its resolved settings (secrets masked)
//! and what it would do. Nothing runs: stages get a [`PlanContext`] with no spawner and a
//! temp folder as the only writable place.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;
use uplift_pipeline::{Pipeline, Stage as StageDef};

use crate::mask::Masker;
use crate::scope::{EvalScope, PipelineInfo, Status, render_env, resolve_yaml};
use crate::stage::{PlanContext, Registry, ResolvedStage, StagePlan};

/// Settings of a plan.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// The pipeline's folder (read only).
    pub work_dir: PathBuf,
    pub only: Vec<String>,
    pub from: Option<String>,
    /// The environment stages would start from.
    pub base_env: BTreeMap<String, String>,
    /// Secret values (only used to mask; shown as `***`).
    pub secrets: BTreeMap<String, String>,
}

/// One stage of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStage {
    pub id: String,
    pub uses: String,
    /// 1-based layer in the DAG: stages of one layer may run in parallel.
    pub layer: usize,
    pub finally: bool,
    pub needs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Whether the stage would run, assuming every stage before it succeeds.
    pub would_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    pub retries: u32,
    pub continue_on_error: bool,
    /// The variables the pipeline sets for it, resolved and masked.
    pub env: BTreeMap<String, String>,
    /// Its settings, resolved and masked.
    pub with: serde_json::Value,
    pub plan: StagePlan,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The plan of a whole pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct PipelinePlan {
    pub pipeline: String,
    pub file: String,
    pub stages: Vec<PlannedStage>,
    /// Problems found while planning (a stage's plan failed, a secret is unset).
    pub warnings: Vec<String>,
}

impl PipelinePlan {
    /// Whether every stage could be planned.
    pub fn is_clean(&self) -> bool {
        self.stages.iter().all(|s| s.error.is_none())
    }
}

/// Plans a checked pipeline. Errors of single stages are recorded in the plan.
pub fn plan_pipeline(
    pipeline: &Pipeline,
    registry: &Registry,
    options: &PlanOptions,
) -> Result<PipelinePlan, crate::ExecError> {
    let selected = crate::executor::selection(pipeline, &options.only, options.from.as_deref())?;
    let masker = Masker::new(options.secrets.values());
    let temp = tempfile::tempdir().map_err(|source| crate::ExecError::Io {
        what: "create temp folder",
        path: std::env::temp_dir(),
        source,
    })?;
    let info = PipelineInfo {
        name: pipeline.name.clone(),
        run_id: String::from("<run-id>"),
        file: pipeline.file.clone(),
        dir: options.work_dir.display().to_string(),
    };
    let base = ScopeBase {
        secrets: &options.secrets,
        outputs: HashMap::new(),
        results: HashMap::new(),
        info,
    };
    let mut warnings = Vec::new();
    let pipeline_env = match render_env(&pipeline.env, &base.scope(&options.base_env)) {
        Ok(env) => env,
        Err(error) => {
            warnings.push(format!("pipeline env: {}", error.message));
            BTreeMap::new()
        }
    };
    let (main_layers, finally_layers) = pipeline.layers();
    let mut planned = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    let mut layer_offset = 0;
    for (layers, section) in [
        (&main_layers, &pipeline.stages),
        (&finally_layers, &pipeline.finally),
    ] {
        for (n, layer) in layers.iter().enumerate() {
            for id in layer {
                let Some(def) = section.get(id) else { continue };
                let mut env = options.base_env.clone();
                env.extend(pipeline_env.clone());
                let not_selected =
                    !def.finally && selected.as_ref().is_some_and(|s| !s.contains(id));
                let needs_skipped = def.needs.iter().any(|n| skipped.contains(n));
                let (would_run, skip_reason) = if not_selected {
                    (false, Some(String::from("not selected")))
                } else {
                    match &def.condition {
                        None if needs_skipped && !def.finally => {
                            (false, Some(String::from("a needed stage would be skipped")))
                        }
                        None => (true, None),
                        Some((text, expr)) => match expr.eval(&base.scope(&env)) {
                            Ok(v) if v.truthy() => (true, None),
                            Ok(_) => (false, Some(format!("condition `{text}` is false"))),
                            Err(e) => (false, Some(format!("condition `{text}`: {}", e.message))),
                        },
                    }
                };
                if !would_run {
                    skipped.push(id.clone());
                }
                let entry = plan_stage(
                    def,
                    registry,
                    &masker,
                    options,
                    temp.path(),
                    pipeline,
                    &env,
                    &pipeline_env,
                    &base,
                );
                let (resolved_env, with, plan, error) = entry;
                if let Some(error) = &error {
                    warnings.push(format!("stage `{id}`: {error}"));
                }
                planned.push(PlannedStage {
                    id: id.clone(),
                    uses: def.uses.clone(),
                    layer: layer_offset + n + 1,
                    finally: def.finally,
                    needs: def.needs.clone(),
                    condition: def
                        .condition
                        .as_ref()
                        .map(|(t, _)| masker.mask(t).into_owned()),
                    would_run,
                    skip_reason,
                    timeout: def
                        .timeout
                        .map(|t| humantime::format_duration(t).to_string()),
                    retries: def.retries.count,
                    continue_on_error: def.continue_on_error,
                    env: resolved_env,
                    with,
                    plan,
                    error,
                });
            }
        }
        layer_offset += layers.len();
    }
    for (k, v) in &options.secrets {
        if v.is_empty() {
            warnings.push(format!("secret `{k}` is empty"));
        }
    }
    Ok(PipelinePlan {
        pipeline: pipeline.name.clone(),
        file: pipeline.file.clone(),
        stages: planned,
        warnings,
    })
}

struct ScopeBase<'a> {
    secrets: &'a BTreeMap<String, String>,
    outputs: HashMap<String, crate::stage::Outputs>,
    results: HashMap<String, crate::events::StageResult>,
    info: PipelineInfo,
}

impl ScopeBase<'_> {
    /// A plan scope: every stage before succeeds, outputs are shown as their expression.
    fn scope<'s>(&'s self, env: &'s BTreeMap<String, String>) -> EvalScope<'s> {
        EvalScope {
            env,
            secrets: self.secrets,
            outputs: &self.outputs,
            results: &self.results,
            pipeline: &self.info,
            status: Status {
                success: true,
                failure: false,
                cancelled: false,
            },
            plan: true,
        }
    }
}

type PlanParts = (
    BTreeMap<String, String>,
    serde_json::Value,
    StagePlan,
    Option<String>,
);

#[allow(clippy::too_many_arguments)]
fn plan_stage(
    def: &StageDef,
    registry: &Registry,
    masker: &Masker,
    options: &PlanOptions,
    temp: &std::path::Path,
    pipeline: &Pipeline,
    env: &BTreeMap<String, String>,
    pipeline_env: &BTreeMap<String, String>,
    base: &ScopeBase<'_>,
) -> PlanParts {
    let mask_map = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.iter()
            .map(|(k, v)| (k.clone(), masker.mask(v).into_owned()))
            .collect()
    };
    let stage_env = match render_env(&def.env, &base.scope(env)) {
        Ok(e) => e,
        Err(error) => {
            return (
                BTreeMap::new(),
                serde_json::Value::Null,
                StagePlan::default(),
                Some(error.message),
            );
        }
    };
    let mut full_env = env.clone();
    full_env.extend(stage_env.clone());
    let mut declared = pipeline_env.clone();
    declared.extend(stage_env);
    let with = match resolve_yaml(&def.with, &base.scope(&full_env)) {
        Ok(w) => w,
        Err(error) => {
            return (
                mask_map(&declared),
                serde_json::Value::Null,
                StagePlan::default(),
                Some(error.message),
            );
        }
    };
    let mut with_json = serde_json::to_value(&with).unwrap_or(serde_json::Value::Null);
    masker.mask_json(&mut with_json);
    let resolved = ResolvedStage {
        id: def.id.clone(),
        uses: def.uses.clone(),
        with,
        env: full_env,
        declared_env: declared.clone(),
        description: def.description.clone(),
    };
    let Some(imp) = registry.get(&def.uses) else {
        return (
            mask_map(&declared),
            with_json,
            StagePlan::default(),
            Some(format!("stage type `{}` is not available", def.uses)),
        );
    };
    let ctx = PlanContext {
        stage_id: &def.id,
        masker,
        work_dir: &options.work_dir,
        temp_dir: temp,
        upstream: pipeline.upstream.as_ref(),
    };
    match imp.plan(&ctx, &resolved) {
        Ok(mut plan) => {
            plan.summary = masker.mask(&plan.summary).into_owned();
            plan.actions = plan
                .actions
                .iter()
                .map(|a| masker.mask(a).into_owned())
                .collect();
            masker.mask_json(&mut plan.detail);
            (mask_map(&declared), with_json, plan, None)
        }
        Err(error) => (
            mask_map(&declared),
            with_json,
            StagePlan::default(),
            Some(masker.mask(&error.to_string()).into_owned()),
        ),
    }
}

/// The formats a plan prints in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanFormat {
    Text,
    Json,
    Markdown,
}

/// Renders a plan (already masked).
pub fn render_plan(plan: &PipelinePlan, format: PlanFormat) -> String {
    match format {
        PlanFormat::Json => {
            let mut s = serde_json::to_string_pretty(plan).unwrap_or_default();
            s.push('\n');
            s
        }
        PlanFormat::Text => render_text(plan),
        PlanFormat::Markdown => render_markdown(plan),
    }
}

fn render_text(plan: &PipelinePlan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Pipeline `{}` ({}): {} stage(s), nothing will be changed.",
        plan.pipeline,
        plan.file,
        plan.stages.len()
    );
    let mut layer = 0;
    for stage in &plan.stages {
        if stage.layer != layer {
            layer = stage.layer;
            let kind = if stage.finally { " (finally)" } else { "" };
            let _ = writeln!(out, "\nlayer {layer}{kind}:");
        }
        let mark = if stage.error.is_some() {
            "!"
        } else if stage.would_run {
            "+"
        } else {
            "-"
        };
        let _ = writeln!(
            out,
            "  {mark} {} [{}] {}",
            stage.id, stage.uses, stage.plan.summary
        );
        if !stage.needs.is_empty() {
            let _ = writeln!(out, "      needs: {}", stage.needs.join(", "));
        }
        if let Some(c) = &stage.condition {
            let _ = writeln!(out, "      if: {c}");
        }
        if let Some(r) = &stage.skip_reason {
            let _ = writeln!(out, "      skipped: {r}");
        }
        if let Some(t) = &stage.timeout {
            let _ = writeln!(out, "      timeout: {t}");
        }
        if stage.retries > 0 {
            let _ = writeln!(out, "      retries: {}", stage.retries);
        }
        for (k, v) in &stage.env {
            let _ = writeln!(out, "      env {k}={v}");
        }
        for action in &stage.plan.actions {
            for (i, line) in action.lines().enumerate() {
                let lead = if i == 0 { "      > " } else { "        " };
                let _ = writeln!(out, "{lead}{line}");
            }
        }
        if let Some(e) = &stage.error {
            let _ = writeln!(out, "      error: {e}");
        }
    }
    for w in &plan.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

fn render_markdown(plan: &PipelinePlan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Plan of pipeline `{}`\n", plan.pipeline);
    let _ = writeln!(
        out,
        "| layer | stage | uses | needs | runs | what it would do |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    for s in &plan.stages {
        let runs = match (&s.error, s.would_run) {
            (Some(_), _) => "error",
            (None, true) => "yes",
            (None, false) => "no",
        };
        let name = if s.finally {
            format!("{} (finally)", s.id)
        } else {
            s.id.clone()
        };
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} | {} | {} |",
            s.layer,
            cell(&name),
            s.uses,
            cell(&s.needs.join(", ")),
            runs,
            cell(&s.plan.summary)
        );
    }
    for s in &plan.stages {
        if s.plan.actions.is_empty() && s.error.is_none() {
            continue;
        }
        let _ = writeln!(out, "\n### `{}`\n", s.id);
        if let Some(e) = &s.error {
            let _ = writeln!(out, "**error:** {e}\n");
        }
        if !s.plan.actions.is_empty() {
            let _ = writeln!(out, "```");
            for a in &s.plan.actions {
                let _ = writeln!(out, "{a}");
            }
            let _ = writeln!(out, "```");
        }
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(out);
        for w in &plan.warnings {
            let _ = writeln!(out, "- warning: {w}");
        }
    }
    out
}
