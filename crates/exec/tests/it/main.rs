//! Integration tests of `uplift-exec` through its public API, with stage types defined here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use uplift_exec::{
    BoxFuture, Cancel, Event, Outputs, PlanContext, PlanOptions, ProcessSpec, Registry,
    ResolvedStage, RunContext, RunOptions, RunResult, Stage, StageError, StagePlan, StageResult,
    plan_pipeline, run_pipeline,
};
use uplift_pipeline::with::TypedSpec;
use uplift_pipeline::{Catalog, StageSpec, parse};

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ProbeWith {
    #[serde(default)]
    value: String,
    #[serde(default)]
    wait_for_cancel: bool,
}

/// A stage type that counts its calls, returns a typed output, and can wait for cancellation.
#[derive(Default)]
struct Probe {
    runs: AtomicUsize,
    plans: AtomicUsize,
}

const PROBE_SPEC: TypedSpec<ProbeWith> = TypedSpec::new("probe", "test probe", &["echo"]);

impl Stage for Probe {
    fn spec(&self) -> Arc<dyn StageSpec> {
        Arc::new(PROBE_SPEC)
    }
    fn plan(&self, ctx: &PlanContext<'_>, stage: &ResolvedStage) -> Result<StagePlan, StageError> {
        self.plans.fetch_add(1, Ordering::SeqCst);
        // The only writable place in a plan.
        std::fs::write(ctx.temp_dir.join("scratch"), b"x").unwrap();
        let with: ProbeWith = uplift_pipeline::with::parse_with(&stage.with).unwrap();
        Ok(StagePlan {
            summary: format!("would echo {}", with.value),
            ..StagePlan::default()
        })
    }
    fn run<'a>(
        &'a self,
        ctx: RunContext,
        stage: &'a ResolvedStage,
    ) -> BoxFuture<'a, Result<Outputs, StageError>> {
        Box::pin(async move {
            self.runs.fetch_add(1, Ordering::SeqCst);
            let with: ProbeWith = uplift_pipeline::with::parse_with(&stage.with).unwrap();
            if with.wait_for_cancel {
                let spec = ProcessSpec {
                    program: "sleep".into(),
                    args: vec!["60".into()],
                    cwd: ctx.work_dir.clone(),
                    env: stage.env.clone(),
                };
                let exit = ctx.spawner.run(&spec).await?;
                assert!(exit.killed);
                return Err(StageError::Stopped);
            }
            ctx.output.info(&format!("echo {}", with.value));
            let mut out = Outputs::new();
            out.insert("echo".into(), with.value);
            Ok(out)
        })
    }
}

fn setup(
    text: &str,
) -> (
    tempfile::TempDir,
    uplift_pipeline::Pipeline,
    Registry,
    Arc<Probe>,
) {
    let probe = Arc::new(Probe::default());
    let mut registry = Registry::new();
    registry.register(probe.clone());
    let mut catalog = Catalog::new();
    catalog.add(Arc::new(PROBE_SPEC));
    let pipeline = parse("t.yml", text, &catalog).unwrap_or_else(|d| panic!("{}", d.render(false)));
    (tempfile::tempdir().unwrap(), pipeline, registry, probe)
}

const CHAIN: &str = r#"
stages:
  first:
    uses: probe
    with: { value: "hello ${{ secrets.S }}" }
  second:
    uses: probe
    needs: first
    with: { value: "got ${{ stages.first.outputs.echo }}" }
"#;

#[tokio::test]
async fn typed_outputs_flow_between_stages_and_are_masked_in_events() {
    let (dir, pipeline, registry, probe) = setup(CHAIN);
    let mut options = RunOptions::new(dir.path());
    options.secrets.insert("S".into(), "pa55word".into());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let report = run_pipeline(&pipeline, &registry, &options, Cancel::default(), tx)
        .await
        .unwrap();
    assert_eq!(report.result, RunResult::Success);
    assert_eq!(probe.runs.load(Ordering::SeqCst), 2);
    // The real value flowed to the second stage; every shown copy is masked.
    assert_eq!(report.stages[1].outputs["echo"], "got hello ***");
    let mut lines = Vec::new();
    while let Some(event) = rx.recv().await {
        lines.push(serde_json::to_string(&event).unwrap());
    }
    let all = lines.join("\n");
    assert!(!all.contains("pa55word"), "{all}");
    assert!(all.contains("echo got hello ***"), "{all}");
}

#[test]
fn plan_calls_plan_never_run() {
    let (dir, pipeline, registry, probe) = setup(CHAIN);
    let options = PlanOptions {
        work_dir: dir.path().to_owned(),
        ..PlanOptions::default()
    };
    let plan = plan_pipeline(&pipeline, &registry, &options).unwrap();
    assert_eq!(probe.plans.load(Ordering::SeqCst), 2);
    assert_eq!(probe.runs.load(Ordering::SeqCst), 0);
    assert_eq!(
        plan.stages[0].plan.summary,
        "would echo hello <unset secret S>"
    );
    assert_eq!(
        plan.stages[1].plan.summary,
        "would echo got ${{ stages.first.outputs.echo }}"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "the plan wrote into the work folder"
    );
}

#[tokio::test]
async fn cancel_reaches_running_stages_and_finally_still_runs() {
    let text = r#"
stages:
  blocker:
    uses: probe
    with: { wait_for_cancel: true }
  after:
    uses: probe
    needs: blocker
finally:
  last:
    uses: probe
    with: { value: "${{ stages.blocker.result }}" }
"#;
    let (dir, pipeline, registry, probe) = setup(text);
    let mut options = RunOptions::new(dir.path());
    options.grace = Duration::from_secs(5);
    let cancel = Cancel::default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let trigger = cancel.clone();
    let watcher = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            if matches!(&event, Event::StageStarted { stage, .. } if stage == "blocker") {
                tokio::time::sleep(Duration::from_millis(200)).await;
                trigger.graceful.cancel();
            }
        }
    });
    let started = Instant::now();
    let report = run_pipeline(&pipeline, &registry, &options, cancel, tx)
        .await
        .unwrap();
    watcher.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(report.result, RunResult::Cancelled);
    let results: Vec<(&str, StageResult)> = report
        .stages
        .iter()
        .map(|s| (s.stage.as_str(), s.result))
        .collect();
    assert_eq!(
        results,
        [
            ("blocker", StageResult::Cancelled),
            ("after", StageResult::Cancelled),
            ("last", StageResult::Success)
        ]
    );
    assert_eq!(report.stages[2].outputs["echo"], "cancelled");
    assert_eq!(probe.runs.load(Ordering::SeqCst), 2);
}
