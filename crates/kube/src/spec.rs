//! The settings of a Kubernetes deploy (`uses: deploy`, `target: kubernetes`): what a pipeline's
//! `with:` block says, before it is rendered into typed manifests by [`crate::render`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Backstage's readiness endpoint, the default readiness probe path.
pub const BACKSTAGE_READINESS: &str = "/.backstage/health/v1/readiness";
/// Backstage's liveness endpoint, the default liveness probe path.
pub const BACKSTAGE_LIVENESS: &str = "/.backstage/health/v1/liveness";

/// Everything needed to render the manifests of one app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct KubeSpec {
    /// The app's name: prefix of every object's name and the `app.kubernetes.io/name` label.
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The image, pinned by digest (`repo@sha256:<64 hex>`); a tag alone is refused.
    pub image: String,
    /// Replicas of the single backend (ignored per service when `services` is set and the
    /// service has its own `replicas`).
    #[serde(default = "one")]
    pub replicas: i32,
    /// The port the backend listens on (Backstage: 7007).
    #[serde(default = "default_port")]
    pub port: i32,
    /// Plain environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Environment variables read from Secret keys: `NAME: { secret: s, key: k }`.
    #[serde(default)]
    pub secret_env: BTreeMap<String, SecretKeyRef>,
    /// Whole Secrets exposed as environment variables (`envFrom`).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Non-secret configuration rendered into a ConfigMap and exposed as environment
    /// variables (`envFrom`), e.g. `APP_CONFIG_app_baseUrl`.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Where the database is; rendered as explicit `POSTGRES_HOST`/`POSTGRES_PORT`.
    #[serde(default)]
    pub postgres: PostgresRef,
    #[serde(default)]
    pub ingress: Option<IngressSpec>,
    #[serde(default)]
    pub probes: Probes,
    #[serde(default)]
    pub resources: Option<Resources>,
    /// Split backends: several Deployments from the same image, each running its own plugins.
    #[serde(default)]
    pub services: BTreeMap<String, SplitService>,
    /// `progressDeadlineSeconds` of each Deployment.
    #[serde(default = "default_progress_deadline")]
    pub progress_deadline_seconds: i32,
}

/// A key of a Secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretKeyRef {
    pub secret: String,
    pub key: String,
}

/// The database address given to the backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresRef {
    #[serde(default = "default_pg_host")]
    pub host: String,
    #[serde(default = "default_pg_port")]
    pub port: u16,
}

impl Default for PostgresRef {
    fn default() -> Self {
        Self {
            host: default_pg_host(),
            port: default_pg_port(),
        }
    }
}

/// An Ingress in front of the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct IngressSpec {
    pub host: String,
    #[serde(default)]
    pub class_name: Option<String>,
    /// A Secret holding the TLS certificate for `host`.
    #[serde(default)]
    pub tls_secret: Option<String>,
}

/// Probe paths (HTTP GET on the backend port).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probes {
    #[serde(default = "default_readiness")]
    pub readiness: String,
    #[serde(default = "default_liveness")]
    pub liveness: String,
}

impl Default for Probes {
    fn default() -> Self {
        Self {
            readiness: default_readiness(),
            liveness: default_liveness(),
        }
    }
}

/// Requests and limits of each container (the same values for both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default)]
    pub cpu: Option<String>,
    #[serde(default)]
    pub memory: Option<String>,
}

/// One backend of a split deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitService {
    /// Backstage plugin ids this backend runs; the Ingress routes `/api/<pluginId>` here.
    pub plugins: Vec<String>,
    #[serde(default)]
    pub replicas: Option<i32>,
}

fn default_namespace() -> String {
    "default".to_owned()
}
fn one() -> i32 {
    1
}
fn default_port() -> i32 {
    7007
}
fn default_pg_host() -> String {
    "postgres".to_owned()
}
fn default_pg_port() -> u16 {
    5432
}
fn default_readiness() -> String {
    BACKSTAGE_READINESS.to_owned()
}
fn default_liveness() -> String {
    BACKSTAGE_LIVENESS.to_owned()
}
fn default_progress_deadline() -> i32 {
    600
}

impl KubeSpec {
    /// A spec with every default, for `name` and `image`.
    pub fn new(name: impl Into<String>, image: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            namespace: default_namespace(),
            image: image.into(),
            replicas: 1,
            port: default_port(),
            env: BTreeMap::new(),
            secret_env: BTreeMap::new(),
            secrets: Vec::new(),
            config: BTreeMap::new(),
            postgres: PostgresRef::default(),
            ingress: None,
            probes: Probes::default(),
            resources: None,
            services: BTreeMap::new(),
            progress_deadline_seconds: default_progress_deadline(),
        }
    }
}
