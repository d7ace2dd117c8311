//! `uses: deploy` (to a Docker host or Kubernetes) and `uses: postgres-backup`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::with::TypedSpec;

/// Where a deploy goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DeployTarget {
    /// One Docker host (the local engine), rolling replacement under a network alias.
    #[default]
    Docker,
    /// A Kubernetes cluster through `kubectl` (server-side apply).
    Kubernetes,
}

/// What to do when the new version never gets healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Keep the old version serving, remove the new containers, fail the stage.
    #[default]
    Rollback,
    /// Like `rollback`, but leave the failed new container stopped for inspection.
    Keep,
}

/// How a new container is judged healthy (Docker target).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HealthWith {
    /// An HTTP path probed inside the container (default: Backstage's readiness endpoint).
    #[serde(default)]
    pub path: Option<String>,
    /// The port of `path` (default 7007).
    #[serde(default)]
    pub port: Option<u16>,
    /// Use the image's own HEALTHCHECK instead of `path`.
    #[serde(default)]
    pub image: bool,
    /// A command run inside the container instead (exit 0 = healthy).
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// How long a new container may take, in seconds.
    #[serde(default)]
    pub timeout: Option<u64>,
}

/// A PostgreSQL database (the password usually `${{ secrets.POSTGRES_PASSWORD }}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DatabaseWith {
    #[serde(default = "default_pg_host")]
    pub host: String,
    #[serde(default = "default_pg_port")]
    pub port: u16,
    #[serde(default = "default_pg_user")]
    pub user: String,
    pub database: String,
    pub password: String,
    /// Where dumps go, relative to the pipeline's folder (default: the stage's run folder).
    #[serde(default)]
    pub backup_dir: Option<String>,
}

/// `uses: deploy`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DeployWith {
    #[serde(default)]
    pub target: DeployTarget,
    /// The service's name: container names, the network alias, the lock, the release records.
    pub name: String,
    /// The image (usually `${{ stages.image.outputs.image }}`, pinned by digest).
    pub image: String,
    #[serde(default = "one")]
    pub replicas: u32,
    /// Docker: the user-defined network (default: `name`).
    #[serde(default)]
    pub network: Option<String>,
    /// Docker: the network alias (default: `name`).
    #[serde(default)]
    pub alias: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Docker: secret environment variables (values from `${{ secrets.* }}`; never recorded).
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Docker: container ports published on ephemeral loopback ports.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Docker: binds and named volumes, `source:target[:ro]`.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Docker: memory limit in MiB.
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// Docker: CPU limit.
    #[serde(default)]
    pub cpus: Option<f64>,
    #[serde(default)]
    pub health: Option<HealthWith>,
    /// Docker: how long an old container keeps running after leaving the alias.
    #[serde(default)]
    pub drain_ms: Option<u64>,
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Back this database up (`pg_dump`) before deploying; the dump is recorded in the release.
    #[serde(default)]
    pub database: Option<DatabaseWith>,
    /// Kubernetes: the settings of `uplift-kube`'s `KubeSpec` (namespace, port, ingress,
    /// services, probes, secrets, config, postgres, resources...), checked by the stage.
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub kubernetes: Option<serde_json::Value>,
}

/// `uses: postgres-backup`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PostgresBackupWith {
    #[serde(flatten)]
    pub database: DatabaseWith,
    /// The dump's file name without `.dump` (default: the stage id).
    #[serde(default)]
    pub name: Option<String>,
}

fn one() -> u32 {
    1
}
fn default_pg_host() -> String {
    String::from("127.0.0.1")
}
fn default_pg_port() -> u16 {
    5432
}
fn default_pg_user() -> String {
    String::from("postgres")
}

/// The spec of `uses: deploy`.
pub const DEPLOY_SPEC: TypedSpec<DeployWith> = TypedSpec::new(
    "deploy",
    "roll the image out to a Docker host or Kubernetes, verify it, roll back on failure",
    &["release", "image-id", "backup"],
);

/// The spec of `uses: postgres-backup`.
pub const POSTGRES_BACKUP_SPEC: TypedSpec<PostgresBackupWith> = TypedSpec::new(
    "postgres-backup",
    "dump a PostgreSQL database (pg_dump, custom format) into the run folder",
    &["path", "bytes"],
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::with::parse_with;

    #[test]
    fn parses_docker_and_kubernetes_deploys() {
        let w: DeployWith = parse_with(
            &serde_yaml::from_str(
                "name: portal\nimage: app@sha256:abc\nreplicas: 3\nhealth: {path: /healthz, port: 8080}\nsecrets: {TOKEN: x}\ndatabase: {database: backstage, password: pw}\n",
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(w.target, DeployTarget::Docker);
        assert_eq!(w.replicas, 3);
        assert_eq!(w.database.as_ref().unwrap().port, 5432);
        let k: DeployWith = parse_with(
            &serde_yaml::from_str("target: kubernetes\nname: portal\nimage: x\nkubernetes: {namespace: web, services: {catalog: {plugins: [catalog]}}}\n").unwrap(),
        )
        .unwrap();
        assert_eq!(k.target, DeployTarget::Kubernetes);
        assert!(k.kubernetes.is_some());
        assert!(
            parse_with::<DeployWith>(
                &serde_yaml::from_str("name: x\nimage: y\nreplica: 2\n").unwrap()
            )
            .is_err()
        );
        let b: PostgresBackupWith = parse_with(
            &serde_yaml::from_str("database: app\npassword: pw\nname: before\n").unwrap(),
        )
        .unwrap();
        assert_eq!(b.database.host, "127.0.0.1");
        assert_eq!(b.name.as_deref(), Some("before"));
    }
}
