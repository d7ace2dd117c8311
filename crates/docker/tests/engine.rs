//! Real tests against the Docker engine of this machine and the loopback registries started by
//! `scripts/services.sh` (127.0.0.1:5000 open, 127.0.0.1:5001 with htpasswd auth).
//!
//! Without an engine these tests are skipped, except when `CI=true`: then it is a failure.
//! They take a lock so that no two of them build or run at once on this 2-core machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use uplift_docker::*;
use uplift_testkit::docker::{self, image_context as context};
use uplift_testkit::unique;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const REGISTRY: &str = "127.0.0.1:5000";
const AUTH_REGISTRY: &str = "127.0.0.1:5001";

async fn engine() -> Option<Engine> {
    docker::connected(Engine::connect().await)
}

async fn containers_of(engine: &Engine, run: &RunId) -> usize {
    docker::count_containers(engine.docker(), "label", &format!("{LABEL_RUN_ID}={run}")).await
}

async fn remove_image(engine: &Engine, reference: &str) {
    docker::remove_image(engine.docker(), reference).await;
}

async fn build_busybox(engine: &Engine, tags: Vec<String>, builder: Builder) -> BuiltImage {
    let ctx = context("busybox");
    std::fs::write(ctx.path().join("secret.txt"), "must not be sent").unwrap();
    let mut labels = oci_labels(Some("0123abc"), Some("1.2.3"), std::time::SystemTime::now());
    labels.insert("test".into(), "yes".into());
    let req = BuildRequest {
        context_dir: ctx.path().into(),
        build_args: BTreeMap::from([("GREETING".into(), "howdy".into())]),
        labels,
        tags,
        builder,
        ..Default::default()
    };
    let mut events = Vec::new();
    let built = build_image(engine, &req, &mut |e| events.push(e))
        .await
        .unwrap();
    assert!(!events.is_empty(), "a build reports progress");
    assert!(built.id.starts_with("sha256:"), "{built:?}");
    // busybox, Dockerfile, .dockerignore, app/message.txt; not secret.txt.
    assert_eq!(built.context.files, 4, "{built:?}");
    built
}

async fn run_collect(
    guard: &ResourceGuard,
    spec: &ContainerSpec,
    limits: &RunLimits,
) -> (RunOutcome, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let outcome = run_container(guard, spec, limits, &mut |s, b| match s {
        OutputStream::Stdout => out.extend_from_slice(b),
        OutputStream::Stderr => err.extend_from_slice(b),
    })
    .await
    .unwrap();
    (
        outcome,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

fn sh(image: &str, script: &str) -> ContainerSpec {
    ContainerSpec {
        image: image.into(),
        cmd: vec!["/bin/sh".into(), "-c".into(), script.into()],
        ..Default::default()
    }
}

#[tokio::test]
async fn build_push_pull_by_digest_and_run() {
    let Some(engine) = engine().await else { return };
    let _serial = SERIAL.lock().await;
    let repo = format!("{REGISTRY}/uplift-it/{}", unique("app"));
    let tags = tag_policy(&TagPolicy {
        release: Some("1.2.3".into()),
        commit: Some("0123456789abcdef".into()),
        dirty: true,
        ..Default::default()
    });
    let refs: Vec<String> = tags.iter().map(|t| format!("{repo}:{t}")).collect();
    let built = build_busybox(&engine, refs.clone(), Builder::Auto).await;
    assert_eq!(
        built.builder,
        if engine.supports_buildkit() {
            Builder::BuildKit
        } else {
            Builder::Classic
        }
    );
    let inspect = engine.docker().inspect_image(&built.id).await.unwrap();
    let labels = inspect.config.unwrap().labels.unwrap();
    assert_eq!(labels["org.opencontainers.image.revision"], "0123abc");
    assert_eq!(labels["org.opencontainers.image.version"], "1.2.3");
    assert!(labels.contains_key("org.opencontainers.image.created"));

    let mut digests = Vec::new();
    for r in &refs {
        let mut events = Vec::new();
        let reported = push_image(
            &engine,
            r,
            &RegistryAuth::None,
            &RetryPolicy::default(),
            &mut |e| events.push(e),
        )
        .await
        .unwrap();
        let from_registry =
            registry_digest(&engine, r, &RegistryAuth::None, &RetryPolicy::default())
                .await
                .unwrap();
        assert!(from_registry.starts_with("sha256:"), "{from_registry}");
        assert_eq!(reported.as_deref(), Some(from_registry.as_str()));
        digests.push(from_registry);
    }
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");

    // Forget the local image, pull it back by digest and run it.
    for r in &refs {
        remove_image(&engine, r).await;
    }
    let pinned = ImageRef::parse(&refs[0]).unwrap().with_digest(&digests[0]);
    assert!(engine.docker().inspect_image(&pinned).await.is_err());
    // run_container pulls the missing image by digest, as `docker run` does.
    let run = RunId::generate();
    let guard = ResourceGuard::new(engine.clone(), run.clone());
    let spec = ContainerSpec {
        image: pinned.clone(),
        ..Default::default()
    };
    let (outcome, out, _) = run_collect(&guard, &spec, &RunLimits::default()).await;
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(out.trim(), "howdy from uplift");
    assert_eq!(containers_of(&engine, &run).await, 0);
    remove_image(&engine, &pinned).await;
}

#[tokio::test]
async fn classic_builder_builds_and_refuses_buildkit_features_clearly() {
    let Some(engine) = engine().await else { return };
    let _serial = SERIAL.lock().await;
    let tag = format!("uplift-it/{}:classic", unique("bb"));
    let built = build_busybox(&engine, vec![tag.clone()], Builder::Classic).await;
    assert_eq!(built.builder, Builder::Classic);
    remove_image(&engine, &tag).await;

    let ctx = context("buildkit-cache");
    let req = BuildRequest {
        context_dir: ctx.path().into(),
        builder: Builder::Classic,
        ..Default::default()
    };
    let err = build_image(&engine, &req, &mut |_| {}).await.unwrap_err();
    assert!(
        matches!(err, Error::BuildKitRequired { line: 5, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("RUN --mount") && msg.contains("needs BuildKit"),
        "{msg}"
    );
}

#[tokio::test]
async fn cache_mount_dockerfile_builds_with_buildkit() {
    let Some(engine) = engine().await else { return };
    let _serial = SERIAL.lock().await;
    let ctx = context("buildkit-cache");
    let tag = format!("uplift-it/{}:bk", unique("cache"));
    let req = BuildRequest {
        context_dir: ctx.path().into(),
        tags: vec![tag.clone()],
        builder: Builder::Auto,
        ..Default::default()
    };
    let result = build_image(&engine, &req, &mut |_| {}).await;
    if !engine.supports_buildkit() {
        let err = result.unwrap_err();
        assert!(matches!(err, Error::BuildKitRequired { .. }), "{err:?}");
        return;
    }
    let built = result.unwrap();
    assert_eq!(built.builder, Builder::BuildKit);
    let guard = ResourceGuard::new(engine.clone(), RunId::generate());
    let spec = ContainerSpec {
        image: tag.clone(),
        ..Default::default()
    };
    let (outcome, out, _) = run_collect(&guard, &spec, &RunLimits::default()).await;
    assert!(outcome.success(), "{outcome:?}");
    let runs: u32 = out.trim().parse().unwrap();
    assert!(runs >= 1, "{out}");
    remove_image(&engine, &tag).await;
}

#[tokio::test]
async fn a_failing_build_step_is_an_error_with_its_output() {
    let Some(engine) = engine().await else { return };
    let _serial = SERIAL.lock().await;
    for builder in [Builder::Classic, Builder::Auto] {
        let ctx = context("failing");
        let req = BuildRequest {
            context_dir: ctx.path().into(),
            builder,
            ..Default::default()
        };
        let err = build_image(&engine, &req, &mut |_| {}).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Build { .. }), "{builder:?}: {err:?}");
        assert!(msg.contains("about to fail"), "{builder:?}: {msg}");
    }
}

async fn test_image(engine: &Engine) -> String {
    let tag = "uplift-it/busybox:test".to_owned();
    if engine.docker().inspect_image(&tag).await.is_err() {
        build_busybox(engine, vec![tag.clone()], Builder::Classic).await;
    }
    tag
}

#[tokio::test]
async fn a_failing_step_gives_its_exit_code_and_output_and_leaves_no_container() {
    let Some(engine) = engine().await else { return };
    let _serial = SERIAL.lock().await;
    let image = test_image(&engine).await;
    let run = RunId::generate();
    let guard = ResourceGuard::new(engine.clone(), run.clone());
    let spec = sh(&image, "echo to-out; echo to-err >&2; exit 3");
    let (outcome, out, err) = run_collect(&guard, &spec, &RunLimits::default()).await;
    assert_eq!(outcome.exit_code, 3);
    assert_eq!(outcome.ended, Ended::Exited);
    assert!(!outcome.success());
    assert_eq!(out.trim(), "to-out");
    assert_eq!(err.trim(), "to-err");
    assert_eq!(containers_of(&engine, &run).await, 0);
}

#[tokio::test]
async fn a_timeout_kills_and_removes_the_container() {
    let Some(engine) = engine().await else { return };
    let _serial = SERIAL.lock().await;
    let image = test_image(&engine).await;
    let run = RunId::generate();
    let guard = ResourceGuard::new(engine.clone(), run.clone());
    let limits = RunLimits {
        timeout: Some(Duration::from_secs(1)),
        ..Default::default()
    };
    let started = Instant::now();
    let (outcome, out, _) =
        run_collect(&guard, &sh(&image, "echo started; sleep 60"), &limits).await;
    assert_eq!(outcome.ended, Ended::TimedOut);
    assert!(!outcome.success());
    assert_eq!(out.trim(), "started");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(containers_of(&engine, &run).await, 0);
}

#[tokio::test]
async fn a_cancelled_run_removes_its_container() {
    let Some(engine) = engine().await else { return };
    let _serial = SERIAL.lock().await;
    let image = test_image(&engine).await;
    let run = RunId::generate();
    let guard = ResourceGuard::new(engine.clone(), run.clone());
    let cancel = CancellationToken::new();
    let limits = RunLimits {
        timeout: None,
        cancel: cancel.clone(),
    };
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        cancel.cancel();
    });
    let (outcome, _, _) = run_collect(&guard, &sh(&image, "sleep 60"), &limits).await;
    canceller.await.unwrap();
    assert_eq!(outcome.ended, Ended::Cancelled);
    assert_eq!(containers_of(&engine, &run).await, 0);
}

#[tokio::test]
async fn a_dropped_run_is_cleaned_up_by_its_guard() {
    let Some(engine) = engine().await else { return };
    let _serial = SERIAL.lock().await;
    let image = test_image(&engine).await;
    let run = RunId::generate();
    let e2 = engine.clone();
    let r2 = run.clone();
    let task = tokio::spawn(async move {
        let guard = ResourceGuard::new(e2, r2);
        run_container(
            &guard,
            &sh(&image, "sleep 60"),
            &RunLimits::default(),
            &mut |_, _| {},
        )
        .await
    });
    // Wait (bounded) until the container exists, then abort the task mid-run.
    let deadline = Instant::now() + Duration::from_secs(15);
    while containers_of(&engine, &run).await == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(containers_of(&engine, &run).await, 1, "the run started");
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    let deadline = Instant::now() + Duration::from_secs(15);
    while containers_of(&engine, &run).await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(containers_of(&engine, &run).await, 0);
}

#[tokio::test]
async fn bind_mount_env_workdir_and_a_cache_volume_that_outlives_runs() {
    let Some(engine) = engine().await else { return };
    let _serial = SERIAL.lock().await;
    let image = test_image(&engine).await;
    let tree = tempfile::tempdir().unwrap();
    std::fs::write(tree.path().join("input.txt"), "from host").unwrap();
    let volume = unique("uplift-it-cache");
    ensure_volume(&engine, &volume, "yarn.lock:abc")
        .await
        .unwrap();
    ensure_volume(&engine, &volume, "yarn.lock:abc")
        .await
        .unwrap();
    let spec = |script: &str| ContainerSpec {
        workdir: Some("/work".into()),
        env: BTreeMap::from([("WHO".into(), "uplift".into())]),
        binds: vec![Bind {
            host: tree.path().into(),
            container: "/work".into(),
            read_only: false,
        }],
        volumes: vec![VolumeMount {
            volume: volume.clone(),
            container: "/cache".into(),
        }],
        ..sh(&image, script)
    };
    for _ in 0..2 {
        let guard = ResourceGuard::new(engine.clone(), RunId::generate());
        let (outcome, _, _) = run_collect(
            &guard,
            &spec("cat input.txt > out.txt; echo \" $WHO\" >> out.txt; echo x >> /cache/n"),
            &RunLimits::default(),
        )
        .await;
        assert!(outcome.success(), "{outcome:?}");
    }
    let out = std::fs::read_to_string(tree.path().join("out.txt")).unwrap();
    assert_eq!(out, "from host uplift\n");
    let guard = ResourceGuard::new(engine.clone(), RunId::generate());
    let (_, n, _) = run_collect(&guard, &spec("wc -l < /cache/n"), &RunLimits::default()).await;
    assert_eq!(n.trim(), "2", "the cache volume kept both runs' writes");
    // Removing a run's resources leaves cache volumes alone.
    remove_run_resources(&engine, guard.run_id()).await.unwrap();
    assert!(engine.docker().inspect_volume(&volume).await.is_ok());
    // The files written in the container may be root-owned: let the container clean up.
    docker::remove_volume(engine.docker(), &volume).await;
}

#[tokio::test]
async fn remove_run_resources_finds_leftovers_by_label() {
    let Some(engine) = engine().await else { return };
    let _serial = SERIAL.lock().await;
    let image = test_image(&engine).await;
    let run = RunId::generate();
    let guard = ResourceGuard::new(engine.clone(), run.clone());
    let body = bollard::models::ContainerCreateBody {
        image: Some(image),
        cmd: Some(vec!["true".into()]),
        labels: Some(guard.labels()),
        ..Default::default()
    };
    engine
        .docker()
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            body,
        )
        .await
        .unwrap();
    assert_eq!(containers_of(&engine, &run).await, 1);
    let removed = remove_run_resources(&engine, &run).await.unwrap();
    assert_eq!(removed.containers, 1);
    assert_eq!(containers_of(&engine, &run).await, 0);
}

fn docker_config(dir: &Path, registry: &str, user: &str, password: &str) -> PathBuf {
    use std::io::Write;
    let path = dir.join("config.json");
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut f = std::fs::File::create(&path).unwrap();
    write!(f, r#"{{"auths":{{"{registry}":{{"auth":"{token}"}}}}}}"#).unwrap();
    path
}

#[tokio::test]
async fn password_registry_push_with_config_file_and_clear_auth_errors() {
    let Some(engine) = engine().await else { return };
    let _serial = SERIAL.lock().await;
    let image = test_image(&engine).await;
    let reference = format!("{AUTH_REGISTRY}/uplift-it/{}:1", unique("auth"));
    let r = ImageRef::parse(&reference).unwrap();
    engine
        .docker()
        .tag_image(
            &image,
            Some(
                bollard::query_parameters::TagImageOptionsBuilder::new()
                    .repo(&r.name())
                    .tag("1")
                    .build(),
            ),
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fast = RetryPolicy {
        attempts: 2,
        initial_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(100),
    };

    // Wrong credentials: one clear error naming the registry, no retries needed.
    let wrong = docker_config(dir.path(), AUTH_REGISTRY, "uplift", "wrong");
    let auth = credentials_from_config(Some(&wrong), &r).unwrap();
    let err = push_image(&engine, &reference, &auth, &fast, &mut |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RegistryAuth { .. }), "{err:?}");
    assert!(err.to_string().contains(AUTH_REGISTRY), "{err}");
    let status = check_registry(&engine, &reference, &auth).await.unwrap();
    assert_eq!(
        (status.reachable, status.accepted),
        (true, Some(false)),
        "{status:?}"
    );

    // No credentials at all: the same kind of error.
    let err = push_image(&engine, &reference, &RegistryAuth::None, &fast, &mut |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RegistryAuth { .. }), "{err:?}");

    // The right ones from the config file.
    let right = docker_config(dir.path(), AUTH_REGISTRY, "uplift", "uplift-secret");
    let auth = credentials_from_config(Some(&right), &r).unwrap();
    let status = check_registry(&engine, &reference, &auth).await.unwrap();
    assert_eq!(
        (status.reachable, status.accepted),
        (true, Some(true)),
        "{status:?}"
    );
    let reported = push_image(&engine, &reference, &auth, &fast, &mut |_| {})
        .await
        .unwrap();
    let digest = registry_digest(&engine, &reference, &auth, &fast)
        .await
        .unwrap();
    assert_eq!(reported.as_deref(), Some(digest.as_str()));
    remove_image(&engine, &reference).await;
}

#[tokio::test]
async fn a_registry_that_is_down_is_retried_then_fails_clearly() {
    let Some(engine) = engine().await else { return };
    let _serial = SERIAL.lock().await;
    let image = test_image(&engine).await;
    // Nothing listens on this loopback port.
    let down = "127.0.0.1:5009";
    let reference = format!("{down}/uplift-it/down:1");
    engine
        .docker()
        .tag_image(
            &image,
            Some(
                bollard::query_parameters::TagImageOptionsBuilder::new()
                    .repo(&format!("{down}/uplift-it/down"))
                    .tag("1")
                    .build(),
            ),
        )
        .await
        .unwrap();
    let policy = RetryPolicy {
        attempts: 3,
        initial_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(1),
    };
    let mut retries = 0;
    let started = Instant::now();
    let err = push_image(
        &engine,
        &reference,
        &RegistryAuth::None,
        &policy,
        &mut |e| {
            if matches!(&e, PushEvent::Status(s) if s.starts_with("retrying")) {
                retries += 1;
            }
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::RegistryUnavailable { attempts: 3, registry, .. } if registry == down),
        "{err:?}"
    );
    assert_eq!(retries, 2);
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "backoff 200 + 400 ms"
    );
    assert!(err.to_string().contains(down), "{err}");
    let status = check_registry(&engine, &reference, &RegistryAuth::None)
        .await
        .unwrap();
    assert!(!status.reachable, "{status:?}");
    remove_image(&engine, &reference).await;
}

#[tokio::test]
async fn a_dropped_build_stops_and_leaves_no_build_container() {
    let Some(engine) = engine().await else { return };
    let _serial = SERIAL.lock().await;
    let image = test_image(&engine).await;
    let ctx = tempfile::tempdir().unwrap();
    let marker = unique("sleepy");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {image}\nRUN echo {marker} && sleep 60\n"),
    )
    .unwrap();
    let req = BuildRequest {
        context_dir: ctx.path().into(),
        builder: Builder::Classic,
        ..Default::default()
    };
    let id = engine
        .docker()
        .inspect_image(&image)
        .await
        .unwrap()
        .id
        .unwrap();
    let filters = std::collections::HashMap::from([("ancestor", vec![id.as_str()])]);
    let count = || async {
        let opts = bollard::query_parameters::ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        engine
            .docker()
            .list_containers(Some(opts))
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.command.as_deref().unwrap_or("").contains(&marker))
            .count()
    };
    // Run the build until its RUN step's container exists, then drop it.
    let mut sink = |_| {};
    let mut build = Box::pin(build_image(&engine, &req, &mut sink));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        tokio::select! {
            r = &mut build => panic!("the build ended by itself: {r:?}"),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        if count().await > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the RUN step never started");
    }
    drop(build);
    // The engine notices the closed connection and removes the step's container.
    let deadline = Instant::now() + Duration::from_secs(30);
    while count().await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(count().await, 0);
}

#[tokio::test]
async fn a_dropped_buildkit_build_stops_its_step() {
    let Some(engine) = engine().await else { return };
    if !engine.supports_buildkit() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let ctx = context("busybox");
    let marker = unique("bksleepy");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo {marker}; /bin/busybox sleep 60; echo done\"]\n"
        ),
    )
    .unwrap();
    let req = BuildRequest {
        context_dir: ctx.path().into(),
        builder: Builder::BuildKit,
        ..Default::default()
    };
    // BuildKit runs steps with runc, not as engine containers: look for the step's process.
    let running = || {
        std::process::Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    let mut sink = |_| {};
    let mut build = Box::pin(build_image(&engine, &req, &mut sink));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        tokio::select! {
            r = &mut build => panic!("the build ended by itself: {r:?}"),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        if running() {
            break;
        }
        assert!(Instant::now() < deadline, "the RUN step never started");
    }
    drop(build);
    let deadline = Instant::now() + Duration::from_secs(30);
    while running() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !running(),
        "the step's process still runs after the build was dropped"
    );
}

#[tokio::test]
async fn a_missing_image_that_cannot_be_pulled_is_a_clear_error() {
    let Some(engine) = engine().await else { return };
    let _serial = SERIAL.lock().await;
    let run = RunId::generate();
    let guard = ResourceGuard::new(engine.clone(), run.clone());
    let image = format!("{REGISTRY}/uplift-it/{}:1", unique("missing"));
    let err = run_container(
        &guard,
        &sh(&image, "true"),
        &RunLimits::default(),
        &mut |_, _| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(&err, Error::Run { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&image) && msg.contains("pulling it failed"),
        "{msg}"
    );
    assert_eq!(containers_of(&engine, &run).await, 0);
}
