//! The settings of a Docker deploy (`uses: deploy`, `target: docker`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How a new container is judged healthy. Every kind runs *inside* the container through
/// Docker's own health check, so the probe needs no route from Uplift to the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum HealthCheck {
    /// The image's own `HEALTHCHECK`.
    Image,
    /// An HTTP GET on `127.0.0.1:<port><path>` inside the container (with `wget`, `curl` or
    /// `node`, whichever the image has), e.g. Backstage's `/.backstage/health/v1/readiness`.
    Http { port: u16, path: String },
    /// A command run inside the container; exit 0 means healthy.
    Command(Vec<String>),
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck::Http {
            port: 7007,
            path: "/.backstage/health/v1/readiness".to_owned(),
        }
    }
}

/// What to do when a new container never gets healthy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Remove the new containers and keep the old ones serving (the default).
    #[default]
    Rollback,
    /// Like `rollback`, but leave the failed new container stopped (not removed) to inspect it.
    Keep,
}

/// One deploy target on a Docker host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DockerDeploySpec {
    /// The target's name: container names start with it, and it names the lock.
    pub name: String,
    /// The image to run (a local image; the record pins its id).
    pub image: String,
    #[serde(default = "one")]
    pub replicas: u32,
    /// The user-defined network the replicas join (created when missing).
    pub network: String,
    /// The network alias other containers use to reach the service; defaults to `name`.
    #[serde(default)]
    pub alias: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Names of environment variables whose values are secrets, given at deploy time and
    /// never recorded or printed.
    #[serde(default)]
    pub secret_env: Vec<String>,
    /// Container ports published on ephemeral host ports (a fixed host port cannot be shared
    /// by the old and new container during a rolling replacement).
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Binds and named volumes, `source:target[:ro]`.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Memory limit in MiB.
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// CPU limit (e.g. `1.5`).
    #[serde(default)]
    pub cpus: Option<f64>,
    /// Command override (arguments after the entrypoint).
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub health: HealthCheck,
    /// How long a new container may take to become healthy.
    #[serde(default = "default_health_timeout")]
    pub health_timeout_secs: u64,
    /// Interval of Docker's health probe, in milliseconds.
    #[serde(default = "default_health_interval")]
    pub health_interval_ms: u64,
    /// How long an old container stays up after leaving the alias, before it is stopped.
    #[serde(default = "default_drain")]
    pub drain_ms: u64,
    /// Grace period of `docker stop` before SIGKILL.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout_secs: u32,
    #[serde(default)]
    pub on_failure: OnFailure,
}

fn one() -> u32 {
    1
}
fn default_health_timeout() -> u64 {
    120
}
fn default_health_interval() -> u64 {
    1000
}
fn default_drain() -> u64 {
    2000
}
fn default_stop_timeout() -> u32 {
    10
}

impl DockerDeploySpec {
    /// A spec with every default.
    pub fn new(
        name: impl Into<String>,
        image: impl Into<String>,
        network: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            image: image.into(),
            replicas: 1,
            network: network.into(),
            alias: None,
            env: BTreeMap::new(),
            secret_env: Vec::new(),
            ports: Vec::new(),
            volumes: Vec::new(),
            memory_mb: None,
            cpus: None,
            command: None,
            health: HealthCheck::default(),
            health_timeout_secs: default_health_timeout(),
            health_interval_ms: default_health_interval(),
            drain_ms: default_drain(),
            stop_timeout_secs: default_stop_timeout(),
            on_failure: OnFailure::default(),
        }
    }

    /// The alias the service is reached by.
    pub fn alias(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }

    /// Checks names and numbers.
    pub fn validate(&self) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 60
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && self
                .name
                .as_bytes()
                .first()
                .is_some_and(u8::is_ascii_alphanumeric);
        if !name_ok {
            return Err(format!(
                "target name {:?} must be 1-60 lowercase letters, digits, '-' or '_'",
                self.name
            ));
        }
        if self.network.is_empty() {
            return Err("network must not be empty".to_owned());
        }
        if self.replicas == 0 || self.replicas > 100 {
            return Err(format!("replicas must be 1..100, got {}", self.replicas));
        }
        if let Some(cpus) = self.cpus
            && !(cpus > 0.0 && cpus <= 1024.0)
        {
            return Err(format!("cpus must be > 0, got {cpus}"));
        }
        if self.health_timeout_secs == 0 || self.health_interval_ms < 100 {
            return Err("health-timeout-secs must be > 0 and health-interval-ms >= 100".to_owned());
        }
        if let HealthCheck::Command(cmd) = &self.health
            && cmd.is_empty()
        {
            return Err("the health command is empty".to_owned());
        }
        for key in &self.secret_env {
            if self.env.contains_key(key) {
                return Err(format!("{key} is both in env and secret-env"));
            }
        }
        Ok(())
    }
}
