//! The `test` and `image` stages run through the real executor against the Docker engine of
//! this machine and the loopback registries of `scripts/services.sh`.
//!
//! Without an engine these tests are skipped, except when `CI=true`: then it is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use uplift_docker::{BuildRequest, Builder, Engine, RunId, build_image};
use uplift_exec::{
    Cancel, PlanOptions, RunOptions, RunResult, StageResult, plan_pipeline, run_pipeline,
};
use uplift_testkit::docker;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn engine() -> Option<Engine> {
    docker::connected(Engine::connect().await)
}

/// An app folder with the busybox fixture Dockerfile, busybox itself and a key file.
fn app(dir: &Path) {
    docker::image_context_in("busybox", dir);
    std::fs::write(dir.join("yarn.lock"), "busybox@1\n").unwrap();
}

/// The image the container steps run in (built once with the library).
async fn runner_image(engine: &Engine) -> String {
    let tag = "uplift-it/stage-runner:1".to_owned();
    if engine.docker().inspect_image(&tag).await.is_err() {
        let d = tempfile::tempdir().unwrap();
        app(d.path());
        let req = BuildRequest {
            context_dir: d.path().into(),
            tags: vec![tag.clone()],
            builder: Builder::Classic,
            ..Default::default()
        };
        build_image(engine, &req, &mut |_| {}).await.unwrap();
    }
    tag
}

async fn run(dir: &Path, yaml: &str) -> uplift_exec::RunReport {
    let pipeline = uplift_pipeline::parse("pipeline.yml", yaml, &uplift_stages::catalog())
        .unwrap_or_else(|d| panic!("{d:?}"));
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let cancel = Cancel {
        graceful: Default::default(),
        force: Default::default(),
    };
    let mut options = RunOptions::new(dir);
    options.base_env = BTreeMap::from([("PATH".into(), "/usr/bin:/bin".into())]);
    run_pipeline(&pipeline, &uplift_stages::registry(), &options, cancel, tx)
        .await
        .unwrap()
}

async fn containers_named(engine: &Engine, part: &str) -> usize {
    docker::count_containers(engine.docker(), "name", part).await
}

#[tokio::test]
async fn test_in_containers_then_build_push_and_pin_by_digest() {
    let Some(engine) = engine().await else { return };
    let _serial = SERIAL.lock().await;
    let image = runner_image(&engine).await;
    let d = tempfile::tempdir().unwrap();
    app(&d.path().join("web"));
    let repo = format!("127.0.0.1:5000/uplift-it/stage-{}", RunId::generate());
    let yaml = format!(
        r#"
name: ship
stages:
  checks:
    uses: test
    env:
      STAGE_VAR: from-stage
    with:
      app: web
      runner: container
      image: {image}
      cache: [node_modules]
      key: [yarn.lock]
      reports: "reports/*.xml"
      env:
        GREETING: hi
      steps:
        - name: install
          run: mkdir -p node_modules && echo x >> node_modules/marker && echo "$GREETING $STAGE_VAR" > seen.txt && echo "$PATH" > path.txt
        - name: unit
          run: mkdir -p reports && printf '<testsuite name="s"><testcase name="a"/><testcase name="b"><skipped/></testcase></testsuite>' > reports/junit.xml
  image:
    uses: image
    needs: checks
    with:
      context: web
      repository: {repo}
      release: 1.2.3
      commit: abcdef1234567890
      tags: [latest]
      push: true
"#
    );
    let report = run(d.path(), &yaml).await;
    assert_eq!(report.result, RunResult::Success, "{:#?}", report.stages);
    let checks = report.stages.iter().find(|s| s.stage == "checks").unwrap();
    assert_eq!(checks.outputs["passed"], "true");
    assert_eq!(checks.outputs["tests"], "2");
    assert_eq!(checks.outputs["skipped"], "1");
    let seen = std::fs::read_to_string(d.path().join("web/seen.txt")).unwrap();
    assert_eq!(seen, "hi from-stage\n");
    // The host's PATH is not passed into the container.
    let path = std::fs::read_to_string(d.path().join("web/path.txt")).unwrap();
    assert_ne!(path.trim(), "/usr/bin:/bin");
    let img = report.stages.iter().find(|s| s.stage == "image").unwrap();
    let digest = &img.outputs["digest"];
    assert!(digest.starts_with("sha256:"), "{:?}", img.outputs);
    assert_eq!(img.outputs["image"], format!("{repo}@{digest}"));
    assert_eq!(
        img.outputs["tags"],
        format!("{repo}:1.2.3,{repo}:abcdef123456,{repo}:latest")
    );
    // The registry serves that digest.
    let remote = engine
        .docker()
        .inspect_registry_image(&img.outputs["image"], None)
        .await
        .unwrap();
    assert_eq!(remote.descriptor.digest.as_deref(), Some(digest.as_str()));

    // A second run reuses the cache volume: the marker has two lines now.
    let yaml2 = format!(
        r#"
name: again
stages:
  checks:
    uses: test
    with:
      app: web
      runner: container
      image: {image}
      cache: [node_modules]
      key: [yarn.lock]
      steps:
        - run: echo x >> node_modules/marker && test "$(wc -l < node_modules/marker)" -eq 2
"#
    );
    let report = run(d.path(), &yaml2).await;
    assert_eq!(report.result, RunResult::Success, "{:#?}", report.stages);
    // The node_modules of the host tree was never written: the cache lives in the volume.
    assert!(!d.path().join("web/node_modules/marker").exists());
    let key =
        uplift_stages::test_stage::cache_key(&d.path().join("web"), &["yarn.lock".into()]).unwrap();
    let volume = uplift_stages::test_stage::cache_volume_name(
        &std::fs::canonicalize(d.path().join("web")).unwrap(),
        "node_modules",
        &key,
    );
    docker::remove_volume(engine.docker(), &volume).await;
}

#[tokio::test]
async fn a_failing_or_timed_out_step_fails_the_stage_and_leaves_no_container() {
    let Some(engine) = engine().await else { return };
    let _serial = SERIAL.lock().await;
    let image = runner_image(&engine).await;
    let d = tempfile::tempdir().unwrap();
    app(&d.path().join("web"));
    let id = format!("t{}", RunId::generate().as_str().replace('-', ""));
    let yaml = format!(
        r#"
name: failing
stages:
  {id}:
    uses: test
    with:
      app: web
      runner: container
      image: {image}
      steps:
        - run: echo before; exit 4
        - run: echo never
  {id}x:
    uses: test
    with:
      app: web
      runner: container
      image: {image}
      steps:
        - run: echo started; sleep 60
          timeout: 1s
"#
    );
    let started = std::time::Instant::now();
    let report = run(d.path(), &yaml).await;
    assert_eq!(report.result, RunResult::Failure);
    assert!(started.elapsed() < std::time::Duration::from_secs(40));
    let failed = report.stages.iter().find(|s| s.stage == id).unwrap();
    assert_eq!(failed.result, StageResult::Failure);
    let reason = failed.reason.clone().unwrap_or_default();
    assert!(reason.contains("exited with code 4"), "{reason}");
    let timed = report
        .stages
        .iter()
        .find(|s| s.stage == format!("{id}x"))
        .unwrap();
    assert_eq!(timed.result, StageResult::Failure);
    let reason = timed.reason.clone().unwrap_or_default();
    assert!(reason.contains("timed out"), "{reason}");
    assert_eq!(containers_named(&engine, &id).await, 0);
    // Containers are labelled with the pipeline run's id: none of them is left.
    let label = format!("{}={}", uplift_docker::LABEL_RUN_ID, report.run_id);
    assert_eq!(
        docker::count_containers(engine.docker(), "label", &label).await,
        0
    );
}

#[test]
fn plan_shows_tags_context_masked_args_and_registry_credentials() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    if rt.block_on(engine()).is_none() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    app(&d.path().join("web"));
    std::fs::write(
        d.path().join("docker-config.json"),
        // uplift:wrong
        r#"{"auths":{"127.0.0.1:5001":{"auth":"dXBsaWZ0Ondyb25n"}}}"#,
    )
    .unwrap();
    let yaml = r#"
name: plan
stages:
  open:
    uses: image
    with:
      context: web
      repository: 127.0.0.1:5000/uplift-it/plan
      release: 2.0.0
      commit: 0123456789abcdef
      build-args:
        TOKEN: ${{ secrets.NPM_TOKEN }}
      push: true
  locked:
    uses: image
    with:
      context: web
      repository: 127.0.0.1:5001/uplift-it/plan
      release: 2.0.0
      push: true
      docker-config: docker-config.json
"#;
    let pipeline = uplift_pipeline::parse("pipeline.yml", yaml, &uplift_stages::catalog()).unwrap();
    let options = PlanOptions {
        work_dir: d.path().into(),
        only: vec![],
        from: None,
        base_env: BTreeMap::new(),
        secrets: BTreeMap::from([("NPM_TOKEN".into(), "npm-s3cret".into())]),
    };
    let plan = plan_pipeline(&pipeline, &uplift_stages::registry(), &options).unwrap();
    let text = serde_json::to_string_pretty(&plan).unwrap();
    assert!(!text.contains("npm-s3cret"), "{text}");
    assert!(text.contains("TOKEN=***"), "{text}");
    assert!(
        text.contains("127.0.0.1:5000/uplift-it/plan:2.0.0"),
        "{text}"
    );
    assert!(
        text.contains("127.0.0.1:5000/uplift-it/plan:0123456789ab"),
        "{text}"
    );
    assert!(text.contains("(5 files,"), "{text}");
    assert!(
        text.contains("registry answers and accepts the credentials"),
        "{text}"
    );
    assert!(
        text.contains("answers but refuses the credentials"),
        "{text}"
    );

    // What a person reads: the summary and actions of each stage.
    let shown: Vec<String> = plan
        .stages
        .iter()
        .map(|s| {
            let p = serde_json::to_value(s).unwrap();
            let actions: Vec<&str> = p["plan"]["actions"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            format!(
                "{}: {}\n  {}",
                s.id,
                p["plan"]["summary"].as_str().unwrap_or(""),
                actions.join("\n  ")
            )
        })
        .collect();
    let tmp = d.path().display().to_string();
    insta::with_settings!({filters => vec![
        (tmp.as_str(), "[TMP]"),
        (r"\d+ bytes", "[N] bytes"),
    ]}, {
        insta::assert_snapshot!("image_plan", shown.join("\n"));
    });
}

#[tokio::test]
async fn host_runner_runs_steps_caches_folders_and_reads_reports() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("web")).unwrap();
    std::fs::write(d.path().join("web/yarn.lock"), "a@1\n").unwrap();
    let yaml = r#"
name: host
stages:
  checks:
    uses: test
    with:
      app: web
      cache: [node_modules]
      key: [yarn.lock]
      reports: "junit.xml"
      steps:
        - name: install
          run: |
            if [ -d node_modules ]; then echo restored > restored.txt; else mkdir node_modules && touch node_modules/first; fi
        - name: unit
          run: printf '<testsuite name="s"><testcase name="a"/><testcase name="b"><failure message="x"/></testcase></testsuite>' > junit.xml
"#;
    let report = run(d.path(), yaml).await;
    let checks = &report.stages[0];
    // The steps passed but the report has a failure: the stage fails, with the totals.
    assert_eq!(checks.result, StageResult::Failure, "{checks:#?}");
    let reason = checks.reason.clone().unwrap_or_default();
    assert!(reason.contains("1 failed"), "{reason}");
    assert!(!d.path().join("web/restored.txt").exists());
    // Steps passed, so the cache was saved; a second run from a clean tree restores it.
    std::fs::remove_dir_all(d.path().join("web/node_modules")).unwrap();
    let yaml2 = yaml.replace("reports: \"junit.xml\"", "reports: \"none/*.xml\"");
    let report = run(d.path(), &yaml2).await;
    assert_eq!(report.result, RunResult::Success, "{:#?}", report.stages);
    assert!(
        d.path().join("web/restored.txt").exists(),
        "the cache was restored"
    );
    assert!(d.path().join("web/node_modules/first").exists());
    assert_eq!(report.stages[0].outputs["passed"], "true");

    let failing = r#"
name: host-fail
stages:
  checks:
    uses: test
    with:
      app: web
      steps:
        - run: echo before; exit 5
        - run: touch never
"#;
    let report = run(d.path(), failing).await;
    assert_eq!(report.result, RunResult::Failure);
    let reason = report.stages[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("exited with code 5"), "{reason}");
    assert!(!d.path().join("web/never").exists());
}

/// Runs `yaml` with a short SIGTERM-to-SIGKILL grace and the given secrets.
async fn run_quick(
    dir: &Path,
    yaml: &str,
    secrets: BTreeMap<String, String>,
) -> uplift_exec::RunReport {
    let pipeline = uplift_pipeline::parse("pipeline.yml", yaml, &uplift_stages::catalog())
        .unwrap_or_else(|d| panic!("{d:?}"));
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let cancel = Cancel {
        graceful: Default::default(),
        force: Default::default(),
    };
    let mut options = RunOptions::new(dir);
    options.base_env = BTreeMap::from([("PATH".into(), "/usr/bin:/bin".into())]);
    options.grace = std::time::Duration::from_millis(500);
    options.secrets = secrets;
    run_pipeline(&pipeline, &uplift_stages::registry(), &options, cancel, tx)
        .await
        .unwrap()
}

/// Whether process `pid` is gone (a zombie waiting for its reaper counts as gone).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // `PID (COMM) STATE ...`: the state follows the last `)`.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

#[tokio::test]
async fn host_timeouts_stop_the_whole_process_group() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("web")).unwrap();
    // Each script starts a grandchild (`sh -c` inside the step's shell) that writes its pid and
    // ignores SIGTERM (an ignored signal stays ignored across exec), so only the group's SIGKILL
    // after the grace period can end it; the step's own shell waits for it.
    let spawn = |name: &str| {
        format!(
            r#"sh -c 'trap "" TERM; sleep 300 & echo $! > {name}.pid; kill -0 $! && touch {name}.alive; wait'"#
        )
    };
    let yaml = format!(
        r#"
name: timeouts
stages:
  step-limit:
    uses: test
    with:
      app: web
      steps:
        - run: {step}
          timeout: 1s
  stage-limit:
    uses: test
    timeout: 1s
    with:
      app: web
      steps:
        - run: {stage}
  run-limit:
    uses: run
    timeout: 1s
    with:
      working-directory: web
      run: {run}
"#,
        step = serde_json::to_string(&spawn("step")).unwrap(),
        stage = serde_json::to_string(&spawn("stage")).unwrap(),
        run = serde_json::to_string(&spawn("run")).unwrap(),
    );
    let started = std::time::Instant::now();
    let report = run_quick(d.path(), &yaml, BTreeMap::new()).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let mut pids = Vec::new();
    for name in ["step", "stage", "run"] {
        let stage = report
            .stages
            .iter()
            .find(|s| s.stage == format!("{name}-limit"))
            .unwrap();
        assert_eq!(stage.result, StageResult::Failure, "{stage:#?}");
        let reason = stage.reason.clone().unwrap_or_default();
        assert!(reason.contains("timed out"), "{name}: {reason}");
        assert!(
            d.path().join(format!("web/{name}.alive")).exists(),
            "{name}: the grandchild was running"
        );
        let pid: u32 = std::fs::read_to_string(d.path().join(format!("web/{name}.pid")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        pids.push((name, pid));
    }
    // Bounded wait: the kill is asynchronous to the reaping of the orphan.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while pids.iter().any(|(_, pid)| !process_gone(*pid)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let left: Vec<_> = pids.iter().filter(|(_, pid)| !process_gone(*pid)).collect();
    for (_, pid) in &left {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
    assert!(left.is_empty(), "left running after the timeout: {left:?}");
}

#[tokio::test]
async fn container_steps_write_stage_outputs() {
    let Some(engine) = engine().await else { return };
    let _serial = SERIAL.lock().await;
    let image = runner_image(&engine).await;
    let d = tempfile::tempdir().unwrap();
    app(&d.path().join("web"));
    let yaml = format!(
        r#"
name: outputs
stages:
  checks:
    uses: test
    outputs: [greeting, notes, token]
    env:
      TOKEN: ${{{{ secrets.API_TOKEN }}}}
    with:
      app: web
      runner: container
      image: {image}
      steps:
        - run: echo "greeting=hello from $(echo abc | tr a-c x)" >> "$UPLIFT_OUTPUT"
        - run: |
            printf 'notes<<EOF\nline 1\nline 2\nEOF\n' >> "$UPLIFT_OUTPUT"
            echo "token=$TOKEN" >> "$UPLIFT_OUTPUT"
            echo "$UPLIFT_OUTPUT $UPLIFT_STAGE" > where.txt
  after:
    uses: run
    needs: checks
    with:
      run: echo "${{{{ stages.checks.outputs.greeting }}}}" > got.txt
"#
    );
    let secrets = BTreeMap::from([("API_TOKEN".to_owned(), "s3cr3t-value".to_owned())]);
    let report = run_quick(d.path(), &yaml, secrets).await;
    assert_eq!(report.result, RunResult::Success, "{:#?}", report.stages);
    let checks = &report.stages[0];
    assert_eq!(checks.outputs["greeting"], "hello from xxx");
    assert_eq!(checks.outputs["notes"], "line 1\nline 2");
    assert_eq!(checks.outputs["token"], "***");
    // The stage's own outputs are still there.
    assert_eq!(checks.outputs["passed"], "true");
    assert_eq!(
        std::fs::read_to_string(d.path().join("got.txt")).unwrap(),
        "hello from xxx\n"
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join("web/where.txt")).unwrap(),
        "/uplift/output checks\n"
    );
    // The run folder keeps the file only masked.
    let written = std::fs::read_to_string(report.dir.join("checks").join("outputs")).unwrap();
    assert!(written.contains("greeting=hello from xxx"), "{written}");
    assert!(!written.contains("s3cr3t-value"), "{written}");
}
