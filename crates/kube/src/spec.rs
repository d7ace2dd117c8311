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
    /// The `app.kubernetes.io/version` label (default: derived from the image).
    #[serde(default)]
    pub version: Option<String>,
    /// The pods' hardening and lifecycle (secure by default; each setting relaxes one thing).
    #[serde(default)]
    pub pod: PodSettings,
    /// A NetworkPolicy per backend, when set.
    #[serde(default)]
    pub network_policy: Option<NetworkPolicySpec>,
}

/// How the pods run. The defaults pass the Pod Security Standards "restricted" profile and
/// checkov's Kubernetes checks; each field relaxes one protection where an app needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PodSettings {
    /// `runAsUser`/`runAsGroup`/`fsGroup`: a high UID no host account has.
    #[serde(default = "default_uid")]
    pub run_as_user: i64,
    #[serde(default = "default_uid")]
    pub run_as_group: i64,
    /// The container's root filesystem is read-only; `writable-paths` get an `emptyDir`.
    #[serde(default = "yes")]
    pub read_only_root_filesystem: bool,
    /// Paths the app writes to (Backstage: `/tmp`, e.g. the scaffolder's working directory).
    #[serde(default = "default_writable_paths")]
    pub writable_paths: Vec<String>,
    /// The pods' service account (default: the namespace's `default`).
    #[serde(default)]
    pub service_account: Option<String>,
    /// Mount the service-account token (the Kubernetes plugin needs one; nothing else does).
    #[serde(default)]
    pub mount_service_account_token: bool,
    /// How long a starting pod may take before the liveness probe takes over (startupProbe).
    #[serde(default = "default_startup_seconds")]
    pub startup_seconds: i32,
    /// The pre-stop pause: a terminating pod keeps serving while endpoints drop it.
    #[serde(default = "default_pre_stop_seconds")]
    pub pre_stop_seconds: i64,
    /// How long Backstage gets to finish its requests after SIGTERM (added to the pause).
    #[serde(default = "default_shutdown_seconds")]
    pub shutdown_seconds: i64,
    /// Spread replicas across nodes and zones (topology spread constraints, best effort).
    #[serde(default = "yes")]
    pub spread: bool,
    /// A PodDisruptionBudget (`maxUnavailable: 1`) for every backend with more than one replica.
    #[serde(default = "yes")]
    pub disruption_budget: bool,
    /// `revisionHistoryLimit` of each Deployment (Uplift keeps its own release records).
    #[serde(default = "default_history_limit")]
    pub history_limit: i32,
}

impl Default for PodSettings {
    fn default() -> Self {
        Self {
            run_as_user: default_uid(),
            run_as_group: default_uid(),
            read_only_root_filesystem: true,
            writable_paths: default_writable_paths(),
            service_account: None,
            mount_service_account_token: false,
            startup_seconds: default_startup_seconds(),
            pre_stop_seconds: default_pre_stop_seconds(),
            shutdown_seconds: default_shutdown_seconds(),
            spread: true,
            disruption_budget: true,
            history_limit: default_history_limit(),
        }
    }
}

/// What a backend may talk to, and who may talk to it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NetworkPolicySpec {
    /// The ingress controller's namespace: the only source of traffic from outside the app.
    #[serde(default)]
    pub ingress_namespace: Option<String>,
    /// Where the database is (egress on the database port).
    #[serde(default)]
    pub database: Option<PeerSpec>,
    /// Where the cache is (egress on `cache-port`).
    #[serde(default)]
    pub cache: Option<PeerSpec>,
    #[serde(default = "default_cache_port")]
    pub cache_port: u16,
    /// Further egress (integrations such as a Git host): CIDRs, any port.
    #[serde(default)]
    pub egress_cidrs: Vec<String>,
}

/// A network peer: an address block, or pods selected by namespace and labels.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PeerSpec {
    #[serde(default)]
    pub cidr: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub pod_labels: BTreeMap<String, String>,
}

/// A key of a Secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretKeyRef {
    pub secret: String,
    pub key: String,
}

/// The database given to the backend: every `${POSTGRES_*}` create-app's
/// `app-config.production.yaml` reads, plus libpq's `PGSSLMODE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresRef {
    #[serde(default = "default_pg_host")]
    pub host: String,
    #[serde(default = "default_pg_port")]
    pub port: u16,
    #[serde(default = "default_pg_user")]
    pub user: String,
    /// The Secret key holding the password (`POSTGRES_PASSWORD`).
    #[serde(default)]
    pub password: Option<SecretKeyRef>,
    /// `PGSSLMODE` (`require`, `verify-ca`, `verify-full`, ...).
    #[serde(default)]
    pub sslmode: Option<String>,
}

impl Default for PostgresRef {
    fn default() -> Self {
        Self {
            host: default_pg_host(),
            port: default_pg_port(),
            user: default_pg_user(),
            password: None,
            sslmode: None,
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
fn default_pg_user() -> String {
    "postgres".to_owned()
}
fn yes() -> bool {
    true
}
/// Above every range a distribution gives host accounts (checkov asks for more than 10,000).
fn default_uid() -> i64 {
    10001
}
fn default_writable_paths() -> Vec<String> {
    vec!["/tmp".to_owned()]
}
fn default_startup_seconds() -> i32 {
    300
}
fn default_pre_stop_seconds() -> i64 {
    10
}
fn default_shutdown_seconds() -> i64 {
    30
}
fn default_history_limit() -> i32 {
    5
}
/// Redis' port, the default `network-policy.cache-port`.
pub const DEFAULT_CACHE_PORT: u16 = 6379;
fn default_cache_port() -> u16 {
    DEFAULT_CACHE_PORT
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
            version: None,
            pod: PodSettings::default(),
            network_policy: None,
        }
    }
}
