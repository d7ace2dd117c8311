//! The `deploy` and `postgres-backup` stage types over [`crate::deploy`] and
//! [`crate::deploy_postgres`]; their `with` types are in `uplift_pipeline::stages::deploy`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use uplift_docker::deploy::{
    Deployer, DockerDeploySpec, HealthCheck, OnFailure as DockerOnFailure,
};
use uplift_exec::{
    BoxFuture, Outputs, PlanContext, ResolvedStage, RunContext, Stage, StageError, StagePlan,
};
use uplift_kube::spec::{
    DEFAULT_CACHE_PORT, IngressSpec, NetworkPolicySpec, PeerSpec, PodSettings, Resources,
    SecretKeyRef, SplitService,
};
use uplift_kube::{DeployOptions, KubeSpec, Kubectl};
use uplift_pipeline::StageSpec;
use uplift_pipeline::stages::deploy::{
    DEPLOY_SPEC, DatabaseWith, DeployTarget, DeployWith, OnFailure, POSTGRES_BACKUP_SPEC, PeerWith,
    PodWith, PostgresBackupWith,
};
use uplift_pipeline::with::parse_with;

use crate::deploy::{DeployStageError, deploy_docker};
use crate::deploy_postgres::{self, PgTarget};

/// `uses: deploy`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeployStage;

/// `uses: postgres-backup`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresBackupStage;

fn deploy_settings(stage: &ResolvedStage) -> Result<DeployWith, StageError> {
    let with = parse_with::<DeployWith>(&stage.with)
        .map_err(|e| StageError::Settings(format!("{}: {}", e.path, e.message)))?;
    with.check_target()
        .map_err(|e| StageError::Settings(format!("{}: {}", e.path, e.message)))?;
    Ok(with)
}

fn backup_settings(stage: &ResolvedStage) -> Result<PostgresBackupWith, StageError> {
    parse_with::<PostgresBackupWith>(&stage.with)
        .map_err(|e| StageError::Settings(format!("{}: {}", e.path, e.message)))
}

/// The containers' plain environment: `env`, plus the database as create-app's
/// `app-config.production.yaml` reads it (`POSTGRES_HOST`, `_PORT`, `_USER`) from `database:`
/// where `env` does not set them (it does when the containers see the server under another
/// name than Uplift does).
fn container_env(with: &DeployWith) -> BTreeMap<String, String> {
    let mut env = with.env.clone();
    if let Some(db) = &with.database {
        let secret = |key: &str| with.secrets.contains_key(key);
        for (key, value) in [
            ("POSTGRES_HOST", db.host.clone()),
            ("POSTGRES_PORT", db.port.to_string()),
            ("POSTGRES_USER", db.user.clone()),
        ] {
            if !secret(key) {
                env.entry(key.to_owned()).or_insert(value);
            }
        }
    }
    env
}

/// The containers' secret environment: `secrets`, plus `POSTGRES_PASSWORD` from `database:`.
pub fn container_secrets(with: &DeployWith) -> BTreeMap<String, String> {
    let mut secrets = with.secrets.clone();
    if let Some(db) = &with.database
        && !with.env.contains_key("POSTGRES_PASSWORD")
    {
        secrets
            .entry("POSTGRES_PASSWORD".to_owned())
            .or_insert_with(|| db.password.clone());
    }
    secrets
}

/// The Docker deploy spec of a `with` block.
pub fn docker_spec(with: &DeployWith) -> Result<DockerDeploySpec, StageError> {
    let mut spec = DockerDeploySpec::new(
        &with.name,
        &with.image,
        with.network.clone().unwrap_or_else(|| with.name.clone()),
    );
    spec.replicas = with.replicas;
    spec.alias = with.alias.clone();
    spec.env = container_env(with);
    spec.secret_env = container_secrets(with).into_keys().collect();
    spec.ports = with.ports.clone();
    spec.volumes = with.volumes.clone();
    spec.memory_mb = with.memory_mb;
    spec.cpus = with.cpus;
    if let Some(health) = &with.health {
        spec.health = match (&health.command, health.image) {
            (Some(cmd), _) => HealthCheck::Command(cmd.clone()),
            (None, true) => HealthCheck::Image,
            (None, false) => HealthCheck::Http {
                port: health.port.unwrap_or(7007),
                path: health
                    .path
                    .clone()
                    .unwrap_or_else(|| uplift_kube::spec::BACKSTAGE_READINESS.to_owned()),
            },
        };
        if let Some(timeout) = health.timeout {
            spec.health_timeout_secs = timeout;
        }
    }
    if let Some(drain) = with.drain_ms {
        spec.drain_ms = drain;
    }
    spec.on_failure = match with.on_failure {
        OnFailure::Rollback => DockerOnFailure::Rollback,
        OnFailure::Keep => DockerOnFailure::Keep,
    };
    spec.validate().map_err(StageError::Settings)?;
    Ok(spec)
}

/// The Kubernetes spec of a `with` block: its `kubernetes:` settings plus `name`, `image`,
/// `replicas` and `env`.
pub fn kube_spec(with: &DeployWith) -> Result<KubeSpec, StageError> {
    let replicas = |n: u32, what: &str| {
        i32::try_from(n).map_err(|_| StageError::Settings(format!("{what}: {n} is too many")))
    };
    let mut spec = KubeSpec::new(&with.name, &with.image);
    spec.replicas = replicas(with.replicas, "replicas")?;
    spec.env = with.env.clone();
    let Some(k) = &with.kubernetes else {
        return Ok(spec);
    };
    if let Some(namespace) = &k.namespace {
        spec.namespace = namespace.clone();
    }
    if let Some(port) = k.port {
        spec.port = i32::from(port);
    }
    spec.secret_env = k
        .secret_env
        .iter()
        .map(|(name, r)| {
            let key = SecretKeyRef {
                secret: r.secret.clone(),
                key: r.key.clone(),
            };
            (name.clone(), key)
        })
        .collect();
    spec.secrets = k.secrets.clone();
    spec.config = k.config.clone();
    if let Some(pg) = &k.postgres {
        if let Some(host) = &pg.host {
            spec.postgres.host = host.clone();
        }
        if let Some(port) = pg.port {
            spec.postgres.port = port;
        }
        if let Some(user) = &pg.user {
            spec.postgres.user = user.clone();
        }
        spec.postgres.password = pg.password.as_ref().map(|r| SecretKeyRef {
            secret: r.secret.clone(),
            key: r.key.clone(),
        });
        spec.postgres.sslmode = pg.sslmode.clone();
    }
    spec.version = k.version.clone();
    if let Some(pod) = &k.pod {
        pod_settings(&mut spec.pod, pod);
    }
    spec.network_policy = k.network_policy.as_ref().map(|p| NetworkPolicySpec {
        ingress_namespace: p.ingress_namespace.clone(),
        database: p.database.as_ref().map(peer),
        cache: p.cache.as_ref().map(peer),
        cache_port: p.cache_port.unwrap_or(DEFAULT_CACHE_PORT),
        egress_cidrs: p.egress_cidrs.clone(),
    });
    spec.ingress = k.ingress.as_ref().map(|i| IngressSpec {
        host: i.host.clone(),
        class_name: i.class_name.clone(),
        tls_secret: i.tls_secret.clone(),
    });
    if let Some(probes) = &k.probes {
        if let Some(path) = &probes.readiness {
            spec.probes.readiness = path.clone();
        }
        if let Some(path) = &probes.liveness {
            spec.probes.liveness = path.clone();
        }
    }
    spec.resources = k.resources.as_ref().map(|r| Resources {
        cpu: r.cpu.clone(),
        memory: r.memory.clone(),
    });
    for (name, service) in &k.services {
        let split = SplitService {
            plugins: service.plugins.clone(),
            replicas: match service.replicas {
                Some(n) => Some(replicas(n, &format!("services.{name}.replicas"))?),
                None => None,
            },
        };
        spec.services.insert(name.clone(), split);
    }
    if let Some(seconds) = k.progress_deadline_seconds {
        spec.progress_deadline_seconds = i32::try_from(seconds).map_err(|_| {
            StageError::Settings(format!("progress-deadline-seconds: {seconds} is too long"))
        })?;
    }
    Ok(spec)
}

/// Each `kubernetes.pod` setting that is given replaces its hardened default.
fn pod_settings(settings: &mut PodSettings, pod: &PodWith) {
    if let Some(uid) = pod.run_as_user {
        settings.run_as_user = i64::from(uid);
    }
    if let Some(gid) = pod.run_as_group {
        settings.run_as_group = i64::from(gid);
    }
    if let Some(read_only) = pod.read_only_root_filesystem {
        settings.read_only_root_filesystem = read_only;
    }
    if let Some(paths) = &pod.writable_paths {
        settings.writable_paths = paths.clone();
    }
    settings.service_account = pod.service_account.clone();
    if let Some(mount) = pod.mount_service_account_token {
        settings.mount_service_account_token = mount;
    }
    if let Some(seconds) = pod.startup_seconds {
        settings.startup_seconds = i32::try_from(seconds).unwrap_or(i32::MAX);
    }
    if let Some(seconds) = pod.pre_stop_seconds {
        settings.pre_stop_seconds = i64::from(seconds);
    }
    if let Some(seconds) = pod.shutdown_seconds {
        settings.shutdown_seconds = i64::from(seconds);
    }
    if let Some(spread) = pod.spread {
        settings.spread = spread;
    }
    if let Some(budget) = pod.disruption_budget {
        settings.disruption_budget = budget;
    }
    if let Some(limit) = pod.history_limit {
        settings.history_limit = i32::try_from(limit).unwrap_or(i32::MAX);
    }
}

fn peer(with: &PeerWith) -> PeerSpec {
    PeerSpec {
        cidr: with.cidr.clone(),
        namespace: with.namespace.clone(),
        pod_labels: with.pod_labels.clone(),
    }
}

/// The `kubectl` the stage talks to the cluster through (`context` from the settings).
pub fn kubectl(with: &DeployWith) -> Kubectl {
    Kubectl {
        context: with.kubernetes.as_ref().and_then(|k| k.context.clone()),
        ..Kubectl::default()
    }
}

/// The plan of a Kubernetes deploy: the release records are read (never written) from the
/// cluster with a short timeout; an unreachable cluster gives a plan without a diff. Plans
/// are synchronous and may be made inside a runtime, hence a thread of its own.
fn kube_plan(
    api: &Kubectl,
    app: &str,
    manifests: &uplift_kube::Manifests,
) -> Result<uplift_kube::KubePlan, StageError> {
    let api = Kubectl {
        request_timeout: Some("5s".into()),
        ..api.clone()
    };
    let planned = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| failed(&e))?;
                runtime
                    .block_on(uplift_kube::plan(&api, app, manifests))
                    .map_err(|e| failed(&e))
            })
            .join()
    });
    planned.unwrap_or_else(|_| {
        Err(StageError::Failed {
            message: "the Kubernetes plan's thread panicked".into(),
            tail: Vec::new(),
        })
    })
}

fn pg_target(db: &DatabaseWith) -> PgTarget {
    PgTarget {
        host: db.host.clone(),
        port: db.port,
        user: db.user.clone(),
        database: db.database.clone(),
        password: db.password.clone(),
    }
}

fn backup_dir(db: &DatabaseWith, work_dir: &Path, stage_dir: &Path) -> PathBuf {
    db.backup_dir
        .as_ref()
        .map(|d| work_dir.join(d))
        .unwrap_or_else(|| stage_dir.to_path_buf())
}

/// A rollout's report as a stage progress event (task `rollout TARGET`, unit replicas).
fn rollout_progress(p: uplift_docker::deploy::RolloutProgress) -> uplift_exec::Progress {
    uplift_exec::Progress {
        task: format!("rollout {}", p.target),
        current: p.serving,
        total: Some(p.replicas),
        unit: uplift_exec::ProgressUnit::Replicas,
        message: p.message,
        done: p.done,
    }
}

/// A Kubernetes rollout poll as a stage progress event (task `rollout DEPLOYMENT`).
fn kube_rollout_progress(p: uplift_kube::RolloutProgress) -> uplift_exec::Progress {
    uplift_exec::Progress {
        task: format!("rollout {}", p.deployment),
        current: p.ready,
        total: Some(p.wanted),
        unit: uplift_exec::ProgressUnit::Replicas,
        message: p.message,
        done: p.done,
    }
}

fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

fn failed(error: &(dyn std::error::Error + 'static)) -> StageError {
    StageError::Failed {
        message: chain(error),
        tail: Vec::new(),
    }
}

impl Stage for DeployStage {
    fn spec(&self) -> Arc<dyn StageSpec> {
        Arc::new(DEPLOY_SPEC)
    }

    fn plan(&self, _ctx: &PlanContext<'_>, stage: &ResolvedStage) -> Result<StagePlan, StageError> {
        let with = deploy_settings(stage)?;
        let backup = with.database.as_ref().map(|db| {
            format!(
                "back up {}@{}:{}/{} with pg_dump first",
                db.user, db.host, db.port, db.database
            )
        });
        match with.target {
            DeployTarget::Docker => {
                let spec = docker_spec(&with)?;
                let mut actions: Vec<String> = backup.into_iter().collect();
                actions.push(format!(
                    "run {} replica(s) of {} on network {} under alias {}, replacing the old ones one at a time",
                    spec.replicas,
                    spec.image,
                    spec.network,
                    spec.alias()
                ));
                actions.push(format!(
                    "health: {:?}, within {}s; on failure: keep the old version serving",
                    spec.health, spec.health_timeout_secs
                ));
                if !spec.secret_env.is_empty() {
                    actions.push(format!(
                        "secret environment: {}",
                        spec.secret_env.join(", ")
                    ));
                }
                Ok(StagePlan {
                    summary: format!("deploy {} to Docker target {}", spec.image, spec.name),
                    actions,
                    detail: serde_json::json!({ "target": "docker", "name": spec.name, "replicas": spec.replicas }),
                })
            }
            DeployTarget::Kubernetes => {
                let spec = kube_spec(&with)?;
                let manifests = uplift_kube::render_for_plan(&spec)
                    .map_err(|e| StageError::Settings(e.to_string()))?;
                let mut actions: Vec<String> = backup.into_iter().collect();
                for object in manifests.to_values().map_err(|e| failed(&e))? {
                    actions.push(format!(
                        "server-side apply {} {}",
                        object["kind"].as_str().unwrap_or("?"),
                        object["metadata"]["name"].as_str().unwrap_or("?")
                    ));
                }
                actions
                    .push("wait for each rollout; on failure re-apply the previous release".into());
                let planned = kube_plan(&kubectl(&with), &spec.name, &manifests)?;
                actions.push(format!("manifests:\n{}", planned.manifests.trim_end()));
                let comparison = planned.comparison();
                actions.push(match &planned.diff {
                    Some(diff) => format!("{comparison}\n{}", diff.trim_end()),
                    None => comparison.clone(),
                });
                let previous = match &planned.previous {
                    uplift_kube::PreviousRelease::Current(record) => Some(record.id.clone()),
                    _ => None,
                };
                Ok(StagePlan {
                    summary: format!(
                        "deploy {} to Kubernetes namespace {}",
                        spec.image, spec.namespace
                    ),
                    actions,
                    detail: serde_json::json!({
                        "target": "kubernetes",
                        "manifests": planned.manifests,
                        "previous-release": previous,
                        "compared": comparison,
                        "diff": planned.diff,
                    }),
                })
            }
        }
    }

    fn run<'a>(
        &'a self,
        ctx: RunContext,
        stage: &'a ResolvedStage,
    ) -> BoxFuture<'a, Result<Outputs, StageError>> {
        Box::pin(async move {
            let with = deploy_settings(stage)?;
            let mut outputs = Outputs::new();
            match with.target {
                DeployTarget::Docker => {
                    let spec = docker_spec(&with)?;
                    let sink = ctx.output.clone();
                    let deployer = Deployer::connect()
                        .await
                        .map_err(|e| failed(&e))?
                        .with_progress(move |p| sink.progress(rollout_progress(p)));
                    let db = with
                        .database
                        .as_ref()
                        .map(|db| (pg_target(db), backup_dir(db, &ctx.work_dir, &ctx.stage_dir)));
                    let database = db.as_ref().map(|(t, d)| (t, d.as_path()));
                    let report = deploy_docker(
                        &deployer,
                        &spec,
                        &container_secrets(&with),
                        database,
                        &ctx.cancel,
                    )
                    .await;
                    let report = match report {
                        Ok(report) => report,
                        Err(DeployStageError::Deploy(
                            uplift_docker::deploy::DeployError::Cancelled(_),
                        )) => {
                            return Err(StageError::Stopped);
                        }
                        Err(DeployStageError::Deploy(
                            uplift_docker::deploy::DeployError::Unhealthy(u),
                        )) => {
                            let mut tail: Vec<String> = u
                                .health_output
                                .iter()
                                .map(|h| format!("health: {h}"))
                                .collect();
                            tail.extend(u.logs.lines().map(|l| format!("log: {l}")));
                            let mut message = format!(
                                "new container {} never got healthy: {}; the old release keeps serving",
                                u.container, u.reason
                            );
                            for line in &tail {
                                message.push_str("\n  ");
                                message.push_str(line);
                            }
                            return Err(StageError::Failed { message, tail });
                        }
                        Err(e) => return Err(failed(&e)),
                    };
                    ctx.output.info(&format!(
                        "release {} of {} serving: {} started, {} replaced",
                        report.record.id,
                        spec.name,
                        report.started.len(),
                        report.removed.len()
                    ));
                    outputs.insert("release".into(), report.record.id.to_string());
                    outputs.insert("image-id".into(), report.record.image_id.clone());
                    outputs.insert(
                        "backup".into(),
                        report.record.backup.clone().unwrap_or_default(),
                    );
                }
                DeployTarget::Kubernetes => {
                    let spec = kube_spec(&with)?;
                    let manifests = uplift_kube::render(&spec)
                        .map_err(|e| StageError::Settings(e.to_string()))?;
                    let backup = match &with.database {
                        Some(db) => {
                            let dir = backup_dir(db, &ctx.work_dir, &ctx.stage_dir);
                            let b = deploy_postgres::backup(
                                &pg_target(db),
                                &dir,
                                &format!("{}-before-deploy", with.name),
                                &ctx.cancel,
                            )
                            .await
                            .map_err(|e| failed(&DeployStageError::Backup(e)))?;
                            Some(b.path.display().to_string())
                        }
                        None => None,
                    };
                    let sink = ctx.output.clone();
                    let options = DeployOptions {
                        timeout: Duration::from_secs(
                            u64::try_from(spec.progress_deadline_seconds).unwrap_or(600) + 60,
                        ),
                        progress: Some(std::sync::Arc::new(move |p| {
                            sink.progress(kube_rollout_progress(p));
                        })),
                        ..DeployOptions::default()
                    };
                    let record = uplift_kube::deploy(
                        &kubectl(&with),
                        &spec.name,
                        &spec.image,
                        &manifests,
                        backup,
                        &options,
                    )
                    .await
                    .map_err(|e| match &e {
                        uplift_kube::Error::Rollout(f) => StageError::Failed {
                            message: e.to_string(),
                            tail: f
                                .diagnostics
                                .to_string()
                                .lines()
                                .map(str::to_owned)
                                .collect(),
                        },
                        _ => failed(&e),
                    })?;
                    outputs.insert("release".into(), record.id.clone());
                    outputs.insert("image-id".into(), record.image.clone());
                    outputs.insert("backup".into(), record.backup.clone().unwrap_or_default());
                }
            }
            Ok(outputs)
        })
    }
}

impl Stage for PostgresBackupStage {
    fn spec(&self) -> Arc<dyn StageSpec> {
        Arc::new(POSTGRES_BACKUP_SPEC)
    }

    fn plan(&self, _ctx: &PlanContext<'_>, stage: &ResolvedStage) -> Result<StagePlan, StageError> {
        let with = backup_settings(stage)?;
        let db = &with.database;
        Ok(StagePlan {
            summary: format!("back up PostgreSQL database {}", db.database),
            actions: vec![format!(
                "pg_dump --format=custom {}@{}:{}/{} into {}",
                db.user,
                db.host,
                db.port,
                db.database,
                db.backup_dir.as_deref().unwrap_or("the stage's run folder")
            )],
            detail: serde_json::Value::Null,
        })
    }

    fn run<'a>(
        &'a self,
        ctx: RunContext,
        stage: &'a ResolvedStage,
    ) -> BoxFuture<'a, Result<Outputs, StageError>> {
        Box::pin(async move {
            let with = backup_settings(stage)?;
            let dir = backup_dir(&with.database, &ctx.work_dir, &ctx.stage_dir);
            let name = with.name.clone().unwrap_or_else(|| stage.id.clone());
            let backup =
                deploy_postgres::backup(&pg_target(&with.database), &dir, &name, &ctx.cancel)
                    .await
                    .map_err(|e| failed(&e))?;
            ctx.output.info(&format!(
                "dumped {} bytes into {}",
                backup.bytes,
                backup.path.display()
            ));
            Ok(Outputs::from([
                ("path".to_owned(), backup.path.display().to_string()),
                ("bytes".to_owned(), backup.bytes.to_string()),
            ]))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn with(yaml: &str) -> DeployWith {
        parse_with(&serde_yaml::from_str(yaml).unwrap()).unwrap()
    }

    #[test]
    fn docker_containers_get_the_database_as_create_app_reads_it() {
        let w = with(
            "name: portal\nimage: app:1\n\
             database: {host: db.internal, user: backstage, database: portal, password: s3cret}\n",
        );
        let spec = docker_spec(&w).unwrap();
        assert_eq!(spec.env["POSTGRES_HOST"], "db.internal");
        assert_eq!(spec.env["POSTGRES_PORT"], "5432");
        assert_eq!(spec.env["POSTGRES_USER"], "backstage");
        assert!(!spec.env.contains_key("POSTGRES_PASSWORD"));
        assert_eq!(spec.secret_env, vec!["POSTGRES_PASSWORD"]);
        assert_eq!(container_secrets(&w)["POSTGRES_PASSWORD"], "s3cret");
        // What the file sets wins: the host as the containers see it, the password's source.
        let w = with(
            "name: portal\nimage: app:1\nenv: {POSTGRES_HOST: postgres}\n\
             secrets: {POSTGRES_PASSWORD: other}\n\
             database: {host: 127.0.0.1, database: portal, password: s3cret}\n",
        );
        let spec = docker_spec(&w).unwrap();
        assert_eq!(spec.env["POSTGRES_HOST"], "postgres");
        assert_eq!(container_secrets(&w)["POSTGRES_PASSWORD"], "other");
        // Without a database nothing is added.
        let spec = docker_spec(&with("name: portal\nimage: app:1\n")).unwrap();
        assert!(spec.env.is_empty() && spec.secret_env.is_empty());
    }

    #[test]
    fn kubernetes_hardening_settings_reach_the_spec() {
        let w = with(
            "target: kubernetes\nname: portal\nimage: app@sha256:1\n\
             kubernetes:\n  version: 1.46.0\n  postgres: {user: backstage, password: {secret: db, key: pw}, sslmode: require}\n\
             \x20 pod: {run-as-user: 20000, read-only-root-filesystem: false, mount-service-account-token: true, service-account: k8s, startup-seconds: 600, spread: false}\n\
             \x20 network-policy: {ingress-namespace: ingress-nginx, database: {cidr: 10.0.0.0/8}}\n",
        );
        let spec = kube_spec(&w).unwrap();
        assert_eq!(spec.version.as_deref(), Some("1.46.0"));
        assert_eq!(spec.postgres.user, "backstage");
        assert_eq!(spec.postgres.password.as_ref().unwrap().key, "pw");
        assert_eq!(spec.postgres.sslmode.as_deref(), Some("require"));
        assert_eq!(spec.pod.run_as_user, 20000);
        assert_eq!(
            spec.pod.run_as_group, 10001,
            "an absent setting keeps its default"
        );
        assert!(!spec.pod.read_only_root_filesystem && spec.pod.mount_service_account_token);
        assert_eq!(spec.pod.service_account.as_deref(), Some("k8s"));
        assert_eq!(spec.pod.startup_seconds, 600);
        assert!(!spec.pod.spread && spec.pod.disruption_budget);
        let policy = spec.network_policy.unwrap();
        assert_eq!(policy.ingress_namespace.as_deref(), Some("ingress-nginx"));
        assert_eq!(policy.cache_port, 6379);
        assert_eq!(policy.database.unwrap().cidr.as_deref(), Some("10.0.0.0/8"));
    }

    #[test]
    fn docker_settings_map_onto_the_deploy_spec() {
        let w = with(
            "name: portal\nimage: app:1\nreplicas: 3\nsecrets: {TOKEN: s3cret}\nhealth: {image: true, timeout: 30}\ndrain-ms: 500\non-failure: keep\n",
        );
        let spec = docker_spec(&w).unwrap();
        assert_eq!(spec.network, "portal");
        assert_eq!(spec.alias(), "portal");
        assert_eq!(spec.secret_env, vec!["TOKEN"]);
        assert_eq!(spec.health, HealthCheck::Image);
        assert_eq!(spec.health_timeout_secs, 30);
        assert_eq!(spec.drain_ms, 500);
        assert_eq!(spec.on_failure, DockerOnFailure::Keep);
        assert!(
            !serde_json::to_string(&spec).unwrap().contains("s3cret"),
            "secret values are not part of the settings"
        );
        let default = docker_spec(&with("name: portal\nimage: app:1\nhealth: {}\n")).unwrap();
        assert_eq!(
            default.health,
            HealthCheck::Http {
                port: 7007,
                path: "/.backstage/health/v1/readiness".into()
            }
        );
        let bad = docker_spec(&with("name: Portal\nimage: app:1\n")).unwrap_err();
        assert!(bad.to_string().contains("target name"), "{bad}");
    }

    #[test]
    fn kubernetes_settings_map_onto_the_kube_spec() {
        let w = with(
            "target: kubernetes\nname: portal\nimage: app@sha256:0000000000000000000000000000000000000000000000000000000000000000\nreplicas: 2\nkubernetes: {namespace: web, services: {catalog: {plugins: [catalog]}, web: {plugins: [app]}}}\n",
        );
        let spec = kube_spec(&w).unwrap();
        assert_eq!(spec.namespace, "web");
        assert_eq!(spec.replicas, 2);
        assert_eq!(spec.services.len(), 2);
        assert_eq!(spec.services["catalog"].replicas, None);
        assert_eq!(spec.port, 7007);
        assert_eq!(kubectl(&w).context, None);

        // Every setting reaches the spec the manifests are rendered from.
        let w = with(
            "target: kubernetes\nname: portal\nimage: app@sha256:0000000000000000000000000000000000000000000000000000000000000000\n\
             env: {NODE_ENV: production}\n\
             kubernetes:\n  context: prod\n  port: 8080\n  secret-env: {TOKEN: {secret: s, key: k}}\n  secrets: [tokens]\n\
             \x20 config: {APP_CONFIG_app_title: Portal}\n  postgres: {host: db.example}\n\
             \x20 ingress: {host: portal.example.com, tls-secret: tls}\n  probes: {liveness: /live}\n\
             \x20 resources: {memory: 1Gi}\n  progress-deadline-seconds: 120\n\
             \x20 services: {catalog: {plugins: [catalog], replicas: 4}}\n",
        );
        let spec = kube_spec(&w).unwrap();
        assert_eq!(kubectl(&w).context.as_deref(), Some("prod"));
        assert_eq!(spec.port, 8080);
        assert_eq!(spec.env["NODE_ENV"], "production");
        assert_eq!(
            spec.secret_env["TOKEN"],
            SecretKeyRef {
                secret: "s".into(),
                key: "k".into()
            }
        );
        assert_eq!(spec.secrets, ["tokens"]);
        assert_eq!(spec.config["APP_CONFIG_app_title"], "Portal");
        assert_eq!(spec.postgres.host, "db.example");
        assert_eq!(spec.postgres.port, 5432);
        assert_eq!(
            spec.ingress.as_ref().unwrap().tls_secret.as_deref(),
            Some("tls")
        );
        assert_eq!(spec.probes.liveness, "/live");
        assert_eq!(
            spec.probes.readiness,
            uplift_kube::spec::BACKSTAGE_READINESS
        );
        assert_eq!(
            spec.resources.as_ref().unwrap().memory.as_deref(),
            Some("1Gi")
        );
        assert_eq!(spec.progress_deadline_seconds, 120);
        assert_eq!(spec.services["catalog"].replicas, Some(4));
        uplift_kube::render(&spec).unwrap();
    }

    #[test]
    fn settings_the_target_ignores_fail_the_stage_too() {
        let stage = ResolvedStage {
            id: "deploy".into(),
            uses: "deploy".into(),
            with: serde_yaml::from_str("target: kubernetes\nname: p\nimage: x\nports: [80]\n")
                .unwrap(),
            env: Default::default(),
            declared_env: Default::default(),
            description: None,
        };
        let error = deploy_settings(&stage).unwrap_err();
        assert!(
            error.to_string().contains("`ports` is a Docker setting"),
            "{error}"
        );
    }
}
