use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::auth::DockerCredentials;
use bollard::query_parameters::PushImageOptionsBuilder;
use futures_util::StreamExt;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::reference::ImageRef;

/// Credentials for a registry.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum RegistryAuth {
    /// Anonymous.
    #[default]
    None,
    Basic {
        username: String,
        password: String,
    },
    IdentityToken(String),
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryAuth::None => f.write_str("None"),
            RegistryAuth::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            RegistryAuth::IdentityToken(_) => f.write_str("IdentityToken(***)"),
        }
    }
}

impl RegistryAuth {
    fn to_bollard(&self, server: &str) -> Option<DockerCredentials> {
        match self {
            RegistryAuth::None => None,
            RegistryAuth::Basic { username, password } => Some(DockerCredentials {
                username: Some(username.clone()),
                password: Some(password.clone()),
                serveraddress: Some(server.to_owned()),
                ..Default::default()
            }),
            RegistryAuth::IdentityToken(t) => Some(DockerCredentials {
                identitytoken: Some(t.clone()),
                serveraddress: Some(server.to_owned()),
                ..Default::default()
            }),
        }
    }
}

/// Where the Docker config file is: `config` when given, else `$DOCKER_CONFIG/config.json`,
/// else `~/.docker/config.json`.
fn config_file(config: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = config {
        return Some(p.to_path_buf());
    }
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// Reads the credentials for `image`'s registry from a Docker config file (its `auths`, its
/// `credsStore` or `credHelpers`, through the `docker_credential` crate). No file, or no entry
/// for the registry, gives [`RegistryAuth::None`].
pub fn credentials_from_config(config: Option<&Path>, image: &ImageRef) -> Result<RegistryAuth> {
    let Some(path) = config_file(config) else {
        return Ok(RegistryAuth::None);
    };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && config.is_none() => {
            return Ok(RegistryAuth::None);
        }
        Err(e) => {
            return Err(Error::Credentials {
                registry: image.registry.clone(),
                source_name: path.display().to_string(),
                message: e.to_string(),
            });
        }
    };
    use docker_credential::{CredentialRetrievalError as E, DockerCredential};
    match docker_credential::get_credential_from_reader(
        std::io::BufReader::new(file),
        &image.config_key(),
    ) {
        Ok(DockerCredential::UsernamePassword(username, password)) => {
            Ok(RegistryAuth::Basic { username, password })
        }
        Ok(DockerCredential::IdentityToken(t)) => Ok(RegistryAuth::IdentityToken(t)),
        Err(E::NoCredentialConfigured) => Ok(RegistryAuth::None),
        Err(e) => Err(Error::Credentials {
            registry: image.registry.clone(),
            source_name: path.display().to_string(),
            message: e.to_string(),
        }),
    }
}

/// How transient registry errors are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// The first pause; each next one doubles, up to `max_delay`.
    pub initial_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial_delay
            .saturating_mul(factor)
            .min(self.max_delay)
    }
}

/// Progress of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushEvent {
    /// Bytes of a layer transfer (the engine's API model carries no layer id here).
    Layer {
        status: String,
        current: Option<i64>,
        total: Option<i64>,
    },
    /// A message about the whole push (the tag line with the digest, a retry).
    Status(String),
}

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Auth,
    Transient,
    NotFound,
    Other,
}

fn classify(message: &str) -> Kind {
    let m = message.to_ascii_lowercase();
    if [
        "unauthorized",
        "authentication required",
        "no basic auth credentials",
        "denied",
        "incorrect username or password",
    ]
    .iter()
    .any(|s| m.contains(s))
    {
        Kind::Auth
    } else if [
        "connection refused",
        "connection reset",
        "i/o timeout",
        "timeout",
        "eof",
        "502",
        "503",
        "504",
        "429",
        "toomanyrequests",
        "service unavailable",
        "bad gateway",
        "no route to host",
    ]
    .iter()
    .any(|s| m.contains(s))
    {
        Kind::Transient
    } else if m.contains("manifest unknown") || m.contains("not found") {
        Kind::NotFound
    } else {
        Kind::Other
    }
}

fn message_of(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerStreamError { error } => error.clone(),
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// Pushes one `name:tag` with retries of transient errors. Returns the digest the engine
/// reported, if any (callers that need the registry's word use [`registry_digest`]).
pub async fn push_image(
    engine: &Engine,
    reference: &str,
    auth: &RegistryAuth,
    retry: &RetryPolicy,
    on_event: &mut (dyn FnMut(PushEvent) + Send),
) -> Result<Option<String>> {
    let r = ImageRef::parse(reference)?;
    let tag = r.tag.clone().unwrap_or_else(|| "latest".to_owned());
    let name = r.name();
    let attempts = retry.attempts.max(1);
    let mut last = String::new();
    for attempt in 1..=attempts {
        if attempt > 1 {
            let pause = retry.delay(attempt - 1);
            on_event(PushEvent::Status(format!(
                "retrying push of {reference} in {} ms (attempt {attempt}/{attempts}): {last}",
                pause.as_millis()
            )));
            tracing::info!(%reference, attempt, error = %last, "retrying push");
            tokio::time::sleep(pause).await;
        }
        let opts = PushImageOptionsBuilder::new().tag(&tag).build();
        let mut stream =
            engine
                .docker()
                .push_image(&name, Some(opts), auth.to_bollard(&r.registry));
        let mut digest = None;
        let mut failure: Option<String> = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    let status = info.status.unwrap_or_default();
                    if let Some(d) = status
                        .split_whitespace()
                        .find(|w| w.starts_with("sha256:"))
                        .filter(|_| status.contains("digest:"))
                    {
                        digest = Some(d.to_owned());
                    }
                    let (current, total) = info
                        .progress_detail
                        .map(|p| (p.current, p.total))
                        .unwrap_or((None, None));
                    if current.is_some() || total.is_some() {
                        on_event(PushEvent::Layer {
                            status,
                            current,
                            total,
                        });
                    } else if !status.is_empty() {
                        on_event(PushEvent::Status(status));
                    }
                }
                Err(e) => {
                    failure = Some(message_of(&e));
                    break;
                }
            }
        }
        let Some(message) = failure else {
            return Ok(digest);
        };
        match classify(&message) {
            Kind::Auth => {
                return Err(Error::RegistryAuth {
                    registry: r.registry.clone(),
                    message,
                });
            }
            Kind::Transient => last = message,
            Kind::NotFound | Kind::Other => {
                return Err(Error::Push {
                    reference: reference.to_owned(),
                    message,
                });
            }
        }
    }
    Err(Error::RegistryUnavailable {
        registry: r.registry,
        attempts,
        message: last,
    })
}

/// Asks the registry (through the engine's distribution endpoint, not the local image store)
/// for the digest of the manifest `reference` points at.
pub async fn registry_digest(
    engine: &Engine,
    reference: &str,
    auth: &RegistryAuth,
    retry: &RetryPolicy,
) -> Result<String> {
    let r = ImageRef::parse(reference)?;
    let attempts = retry.attempts.max(1);
    let mut last = String::new();
    for attempt in 1..=attempts {
        if attempt > 1 {
            tokio::time::sleep(retry.delay(attempt - 1)).await;
        }
        match engine
            .docker()
            .inspect_registry_image(reference, auth.to_bollard(&r.registry))
            .await
        {
            Ok(d) => return Ok(d.descriptor.digest.unwrap_or_default()),
            Err(e) => {
                let message = message_of(&e);
                match classify(&message) {
                    Kind::Auth => {
                        return Err(Error::RegistryAuth {
                            registry: r.registry,
                            message,
                        });
                    }
                    Kind::Transient => last = message,
                    Kind::NotFound | Kind::Other => {
                        return Err(Error::Push {
                            reference: reference.to_owned(),
                            message,
                        });
                    }
                }
            }
        }
    }
    Err(Error::RegistryUnavailable {
        registry: r.registry,
        attempts,
        message: last,
    })
}

/// What `plan` says about a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryStatus {
    pub registry: String,
    /// The registry answered.
    pub reachable: bool,
    /// The registry accepted the credentials (or anonymous access): `None` when unreachable.
    pub accepted: Option<bool>,
    /// The registry's or the engine's words when something is wrong.
    pub message: Option<String>,
}

/// Checks, without pushing, whether the registry of `reference` answers and accepts `auth`
/// (one metadata request through the engine; a missing tag still proves both).
pub async fn check_registry(
    engine: &Engine,
    reference: &str,
    auth: &RegistryAuth,
) -> Result<RegistryStatus> {
    let r = ImageRef::parse(reference)?;
    let probe = if r.tag.is_some() || r.digest.is_some() {
        reference.to_owned()
    } else {
        r.with_tag("latest")
    };
    let result = engine
        .docker()
        .inspect_registry_image(&probe, auth.to_bollard(&r.registry))
        .await;
    let (reachable, accepted, message) = match result {
        Ok(_) => (true, Some(true), None),
        Err(e) => {
            let m = message_of(&e);
            match classify(&m) {
                Kind::NotFound => (true, Some(true), None),
                Kind::Auth => (true, Some(false), Some(m)),
                Kind::Transient => (false, None, Some(m)),
                Kind::Other => (true, None, Some(m)),
            }
        }
    };
    Ok(RegistryStatus {
        registry: r.registry,
        reachable,
        accepted,
        message,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn classifies_registry_errors() {
        assert_eq!(
            classify("unauthorized: authentication required"),
            Kind::Auth
        );
        assert_eq!(
            classify(
                "Get \"http://127.0.0.1:5009/v2/\": dial tcp 127.0.0.1:5009: connect: connection refused"
            ),
            Kind::Transient
        );
        assert_eq!(
            classify("manifest unknown: manifest unknown"),
            Kind::NotFound
        );
        assert_eq!(classify("invalid reference format"), Kind::Other);
    }

    #[test]
    fn backoff_doubles_up_to_the_max() {
        let p = RetryPolicy {
            attempts: 5,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
        };
        assert_eq!(p.delay(1), Duration::from_millis(100));
        assert_eq!(p.delay(2), Duration::from_millis(200));
        assert_eq!(p.delay(3), Duration::from_millis(350));
    }

    #[test]
    fn reads_credentials_from_a_config_file() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("config.json");
        // "user:secret" in base64.
        std::fs::write(
            &path,
            r#"{"auths":{"127.0.0.1:5001":{"auth":"dXNlcjpzZWNyZXQ="}}}"#,
        )
        .unwrap();
        let r = ImageRef::parse("127.0.0.1:5001/app:1").unwrap();
        assert_eq!(
            credentials_from_config(Some(&path), &r).unwrap(),
            RegistryAuth::Basic {
                username: "user".into(),
                password: "secret".into()
            }
        );
        let other = ImageRef::parse("127.0.0.1:5000/app:1").unwrap();
        assert_eq!(
            credentials_from_config(Some(&path), &other).unwrap(),
            RegistryAuth::None
        );
        let missing = d.path().join("nope.json");
        assert!(credentials_from_config(Some(&missing), &r).is_err());
        // Debug never shows the password.
        let shown = format!("{:?}", credentials_from_config(Some(&path), &r).unwrap());
        assert!(!shown.contains("secret"), "{shown}");
    }
}
