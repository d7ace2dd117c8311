//! `uses: deploy` (to a Docker host or Kubernetes) and `uses: postgres-backup`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::span::YamlPath;
use crate::with::{StageSpec, TypedSpec, WithError, parse_with};

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
    /// Kubernetes: everything but `name`, `image`, `replicas` and `env`, which are the
    /// settings above (only with `target: kubernetes`).
    #[serde(default)]
    pub kubernetes: Option<KubernetesWith>,
}

/// The `kubernetes:` block of `uses: deploy` (`target: kubernetes`): what is rendered into the
/// ConfigMaps, Services, Deployments and Ingress of the release.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KubernetesWith {
    /// The namespace of every object (default `default`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The kubectl context (default: the kubeconfig's current context).
    #[serde(default)]
    pub context: Option<String>,
    /// The port the backend listens on (default 7007, Backstage's).
    #[serde(default)]
    pub port: Option<u16>,
    /// Environment variables read from Secret keys: `NAME: { secret: s, key: k }`.
    #[serde(default)]
    pub secret_env: BTreeMap<String, SecretKeyWith>,
    /// Whole Secrets exposed as environment variables (`envFrom`), by name.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Non-secret settings rendered into the ConfigMap `<name>-config` and exposed as
    /// environment variables, e.g. `APP_CONFIG_app_baseUrl: https://portal.example.com`.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Where the database is, as seen from the pods (`POSTGRES_HOST`/`POSTGRES_PORT`).
    #[serde(default)]
    pub postgres: Option<PostgresAddressWith>,
    /// An Ingress in front of the app.
    #[serde(default)]
    pub ingress: Option<IngressWith>,
    /// HTTP probe paths (default: Backstage's health endpoints).
    #[serde(default)]
    pub probes: Option<ProbesWith>,
    /// Requests and limits of each container (the same values for both).
    #[serde(default)]
    pub resources: Option<ResourcesWith>,
    /// Split backends: one Deployment and Service per entry, each running its plugins.
    #[serde(default)]
    pub services: BTreeMap<String, SplitServiceWith>,
    /// `progressDeadlineSeconds` of each Deployment (default 600).
    #[serde(default)]
    pub progress_deadline_seconds: Option<u32>,
    /// The `app.kubernetes.io/version` label (default: the image's tag, else its digest).
    #[serde(default)]
    pub version: Option<String>,
    /// How the pods run: hardened by default; each setting relaxes one protection.
    #[serde(default)]
    pub pod: Option<PodWith>,
    /// Render a NetworkPolicy per backend.
    #[serde(default)]
    pub network_policy: Option<NetworkPolicyWith>,
}

/// `kubernetes.pod`: every field is optional; an absent one keeps the hardened default.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PodWith {
    /// `runAsUser` (default 10001).
    #[serde(default)]
    pub run_as_user: Option<u32>,
    /// `runAsGroup` and `fsGroup` (default 10001).
    #[serde(default)]
    pub run_as_group: Option<u32>,
    /// A read-only root filesystem (default true); `writable-paths` get an `emptyDir`.
    #[serde(default)]
    pub read_only_root_filesystem: Option<bool>,
    /// Paths the app writes to (default `[/tmp]`).
    #[serde(default)]
    pub writable_paths: Option<Vec<String>>,
    /// The pods' service account.
    #[serde(default)]
    pub service_account: Option<String>,
    /// Mount the service-account token (default false; the Kubernetes plugin needs it).
    #[serde(default)]
    pub mount_service_account_token: Option<bool>,
    /// How long a pod may take to start before liveness checks begin (default 300).
    #[serde(default)]
    pub startup_seconds: Option<u32>,
    /// The pre-stop pause (default 10).
    #[serde(default)]
    pub pre_stop_seconds: Option<u32>,
    /// Time to finish requests after SIGTERM, added to the pause (default 30).
    #[serde(default)]
    pub shutdown_seconds: Option<u32>,
    /// Spread replicas across nodes and zones (default true).
    #[serde(default)]
    pub spread: Option<bool>,
    /// A PodDisruptionBudget for backends with more than one replica (default true).
    #[serde(default)]
    pub disruption_budget: Option<bool>,
    /// `revisionHistoryLimit` (default 5).
    #[serde(default)]
    pub history_limit: Option<u32>,
}

/// `kubernetes.network-policy`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NetworkPolicyWith {
    /// The ingress controller's namespace (needed with `ingress`).
    #[serde(default)]
    pub ingress_namespace: Option<String>,
    /// Where the database is.
    #[serde(default)]
    pub database: Option<PeerWith>,
    /// Where the cache is.
    #[serde(default)]
    pub cache: Option<PeerWith>,
    /// The cache's port (default 6379).
    #[serde(default)]
    pub cache_port: Option<u16>,
    /// Further egress, e.g. a Git host's addresses: CIDRs, any port.
    #[serde(default)]
    pub egress_cidrs: Vec<String>,
}

/// A network peer: a CIDR, or pods by namespace and labels.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PeerWith {
    #[serde(default)]
    pub cidr: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub pod_labels: BTreeMap<String, String>,
}

/// A key of a Secret.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretKeyWith {
    pub secret: String,
    pub key: String,
}

/// The database given to the backend (`POSTGRES_HOST`, `_PORT`, `_USER`, `_PASSWORD`,
/// `PGSSLMODE`: what create-app's `app-config.production.yaml` reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresAddressWith {
    /// Default `postgres`.
    #[serde(default)]
    pub host: Option<String>,
    /// Default 5432.
    #[serde(default)]
    pub port: Option<u16>,
    /// Default `postgres`.
    #[serde(default)]
    pub user: Option<String>,
    /// The Secret key with the password.
    #[serde(default)]
    pub password: Option<SecretKeyWith>,
    /// libpq's `PGSSLMODE` (`require`, `verify-ca`, `verify-full`).
    #[serde(default)]
    pub sslmode: Option<String>,
}

/// An Ingress.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IngressWith {
    pub host: String,
    #[serde(default)]
    pub class_name: Option<String>,
    /// A Secret holding the TLS certificate for `host`.
    #[serde(default)]
    pub tls_secret: Option<String>,
}

/// Probe paths.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbesWith {
    #[serde(default)]
    pub readiness: Option<String>,
    #[serde(default)]
    pub liveness: Option<String>,
}

/// CPU and memory, as Kubernetes quantities (`500m`, `1Gi`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourcesWith {
    #[serde(default)]
    pub cpu: Option<String>,
    #[serde(default)]
    pub memory: Option<String>,
}

/// One backend of a split deployment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitServiceWith {
    /// The Backstage plugin ids it runs; `/api/<pluginId>` is routed to it.
    pub plugins: Vec<String>,
    /// Its replicas (default: the stage's `replicas`).
    #[serde(default)]
    pub replicas: Option<u32>,
}

impl DeployWith {
    /// Settings that the chosen target would silently ignore are errors: the first one, at
    /// its key.
    pub fn check_target(&self) -> Result<(), WithError> {
        let misplaced = |key: &str, message: String| WithError {
            path: YamlPath::root().key(key),
            message,
            at_key: true,
        };
        match self.target {
            DeployTarget::Docker => match &self.kubernetes {
                Some(_) => Err(misplaced(
                    "kubernetes",
                    "`kubernetes` settings need `target: kubernetes` (the target is docker)"
                        .to_owned(),
                )),
                None => Ok(()),
            },
            DeployTarget::Kubernetes => {
                let docker_only = [
                    ("network", self.network.is_some()),
                    ("alias", self.alias.is_some()),
                    ("secrets", !self.secrets.is_empty()),
                    ("ports", !self.ports.is_empty()),
                    ("volumes", !self.volumes.is_empty()),
                    ("memory-mb", self.memory_mb.is_some()),
                    ("cpus", self.cpus.is_some()),
                    ("health", self.health.is_some()),
                    ("drain-ms", self.drain_ms.is_some()),
                ];
                match docker_only.iter().find(|(_, set)| *set) {
                    Some((key, _)) => Err(misplaced(
                        key,
                        format!(
                            "`{key}` is a Docker setting, ignored by `target: kubernetes`{}",
                            kubernetes_hint(key)
                        ),
                    )),
                    None => Ok(()),
                }
            }
        }
    }
}

fn kubernetes_hint(key: &str) -> &'static str {
    match key {
        "secrets" => {
            " (use `kubernetes.secret-env` or `kubernetes.secrets`: references to Secrets, so no secret value is ever in a manifest)"
        }
        "health" => " (use `kubernetes.probes`)",
        "memory-mb" | "cpus" => " (use `kubernetes.resources`)",
        _ => "",
    }
}

/// The spec of `uses: deploy`: the typed settings, then [`DeployWith::check_target`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DeploySpec;

impl StageSpec for DeploySpec {
    fn name(&self) -> &'static str {
        "deploy"
    }
    fn summary(&self) -> &'static str {
        "roll the image out to a Docker host or Kubernetes, verify it, roll back on failure"
    }
    fn check_with(&self, with: &serde_yaml::Value) -> Result<(), WithError> {
        parse_with::<DeployWith>(with)?.check_target()
    }
    fn with_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<DeployWith>()
    }
    fn outputs(&self) -> &'static [&'static str] {
        &["release", "image-id", "backup"]
    }
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
pub const DEPLOY_SPEC: DeploySpec = DeploySpec;

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
        assert_eq!(
            k.kubernetes.as_ref().unwrap().services["catalog"].plugins,
            vec!["catalog"]
        );
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
