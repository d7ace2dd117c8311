use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::auth::DockerCredentials;

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
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
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
    let key = image.config_key();
    match docker_credential::get_credential_from_reader(text.as_bytes(), &key) {
        Ok(DockerCredential::UsernamePassword(username, password)) => {
            Ok(RegistryAuth::Basic { username, password })
        }
        Ok(DockerCredential::IdentityToken(t)) => Ok(RegistryAuth::IdentityToken(t)),
        Err(E::NoCredentialConfigured) => Ok(RegistryAuth::None),
        Err(e) => {
            // The crate's message does not say which program it ran: name it, as that is
            // what a person has to fix (install it, put it on PATH, log in again).
            let message = match credential_helper(&text, &key) {
                Some(helper) => format!("credential helper `docker-credential-{helper}`: {e}"),
                None => e.to_string(),
            };
            Err(Error::Credentials {
                registry: image.registry.clone(),
                source_name: path.display().to_string(),
                message,
            })
        }
    }
}

/// The credential helper a Docker config file names for `key`: its `credHelpers` entry, else
/// its `credsStore`.
fn credential_helper(config: &str, key: &str) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_str(config).ok()?;
    doc.get("credHelpers")
        .and_then(|h| h.get(key))
        .or_else(|| doc.get("credsStore"))
        .and_then(|h| h.as_str())
        .map(str::to_owned)
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
    /// One layer's state, keyed by the engine's short layer id: `Preparing`, `Waiting`,
    /// `Pushing` (with bytes), then a final one (`done`): `Pushed`, `Layer already exists`,
    /// `Mounted from …`. The final event has `current == total` (the bytes sent, 0 for a layer
    /// the registry already had).
    Layer {
        id: String,
        status: String,
        current: u64,
        /// The layer's size when the engine says it (its count can end a little past it).
        total: Option<u64>,
        done: bool,
    },
    /// A message about the whole push (the tag line with the digest, a retry).
    Status(String),
}

/// Whether a layer status is the last one the engine sends for that layer.
fn layer_finished(status: &str) -> bool {
    status == "Pushed"
        || status == "Layer already exists"
        || status == "Already exists"
        || status.starts_with("Mounted from")
}

/// Turns the engine's per-layer messages into [`PushEvent::Layer`]s, remembering each layer's
/// bytes so its final event can carry them.
#[derive(Debug, Default)]
struct LayerTracker {
    layers: std::collections::HashMap<String, (u64, Option<u64>)>,
}

impl LayerTracker {
    fn event(
        &mut self,
        id: &str,
        status: &str,
        current: Option<i64>,
        total: Option<i64>,
    ) -> PushEvent {
        let entry = self.layers.entry(id.to_owned()).or_default();
        if let Some(c) = current.and_then(|c| u64::try_from(c).ok()) {
            entry.0 = c;
        }
        if let Some(t) = total.and_then(|t| u64::try_from(t).ok()).filter(|t| *t > 0) {
            entry.1 = Some(t);
        }
        let done = layer_finished(status);
        let (current, total) = if done {
            // The engine counts what it read, which can end past the size it announced.
            let sent = if status == "Pushed" {
                entry.0.max(entry.1.unwrap_or(0))
            } else {
                entry.0
            };
            (sent, Some(sent))
        } else {
            *entry
        };
        PushEvent::Layer {
            id: id.to_owned(),
            status: status.to_owned(),
            current,
            total,
            done,
        }
    }
}

/// One JSON message of the engine's push stream. bollard's `PushImageInfo` model has no `id`,
/// the only key telling the layers apart, hence this type and [`push_stream`].
#[derive(Debug, Default, serde::Deserialize)]
struct PushMessage {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default, rename = "progressDetail")]
    progress_detail: Option<PushDetail>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default, rename = "errorDetail")]
    error_detail: Option<PushErrorDetail>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct PushDetail {
    current: Option<i64>,
    total: Option<i64>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct PushErrorDetail {
    message: Option<String>,
}

/// `POST /images/{name}/push` over the engine's socket (the one bollard uses: `DOCKER_HOST`
/// when it is `unix://`, else `/var/run/docker.sock`), decoded line by line into
/// [`PushMessage`]s. Errors are the engine's or the transport's words.
async fn push_stream(
    engine: &Engine,
    name: &str,
    tag: &str,
    auth: &RegistryAuth,
    server: &str,
    on_message: &mut (dyn FnMut(PushMessage) + Send),
) -> std::result::Result<(), String> {
    use base64::Engine as _;
    use http_body_util::BodyExt;

    let credentials = auth.to_bollard(server).unwrap_or_default();
    let header = serde_json::to_string(&credentials).map_err(|e| e.to_string())?;
    let header = base64::engine::general_purpose::STANDARD.encode(header);
    let path = format!(
        "/v{}/images/{name}/push?tag={tag}",
        engine.api_version().trim_start_matches('v')
    );
    let uri: hyper::Uri = hyperlocal::Uri::new(engine.socket_path(), &path).into();
    let request = hyper::Request::post(uri)
        .header("X-Registry-Auth", header)
        .header("Content-Type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .map_err(|e| e.to_string())?;
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(hyperlocal::UnixConnector);
    // Like bollard: the engine answers a push's headers at once; only the body takes long.
    let response = tokio::time::timeout(Duration::from_secs(120), client.request(request))
        .await
        .map_err(|_| "the Docker engine did not answer the push within 120 s".to_owned())?
        .map_err(|e| format!("talk to the Docker engine: {e}"))?;
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        #[derive(serde::Deserialize)]
        struct EngineError {
            message: String,
        }
        return Err(serde_json::from_slice::<EngineError>(&bytes)
            .map(|e| e.message)
            .unwrap_or_else(|_| format!("{status}: {}", String::from_utf8_lossy(&bytes))));
    }
    let mut pending: Vec<u8> = Vec::new();
    let mut handle_line = |line: &[u8]| -> std::result::Result<(), String> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let message: PushMessage = serde_json::from_slice(line)
            .map_err(|e| format!("read the engine's push stream: {e}"))?;
        if let Some(error) = message
            .error_detail
            .as_ref()
            .and_then(|d| d.message.clone())
            .or_else(|| message.error.clone())
        {
            return Err(error);
        }
        on_message(message);
        Ok(())
    };
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("read the engine's push stream: {e}"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        // The engine's messages are small; a line without end growing past this is not one.
        if pending.len() > MAX_PUSH_LINE {
            return Err("the engine's push stream sent an over-long line".to_owned());
        }
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            handle_line(&line)?;
        }
    }
    handle_line(&pending)
}

const MAX_PUSH_LINE: usize = 1 << 20;

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
        let mut digest = None;
        let mut layers = LayerTracker::default();
        let mut on_message = |message: PushMessage| {
            let status = message.status.unwrap_or_default();
            if let Some(d) = status
                .split_whitespace()
                .find(|w| w.starts_with("sha256:"))
                .filter(|_| status.contains("digest:"))
            {
                digest = Some(d.to_owned());
            }
            let (current, total) = message
                .progress_detail
                .map(|p| (p.current, p.total))
                .unwrap_or((None, None));
            match message.id {
                // The engine sends the tag's name as `id` on some whole-push lines.
                Some(id) if !status.is_empty() && id != tag => {
                    on_event(layers.event(&id, &status, current, total));
                }
                _ if !status.is_empty() => on_event(PushEvent::Status(status)),
                _ => {}
            }
        };
        let failure = push_stream(engine, &name, &tag, auth, &r.registry, &mut on_message)
            .await
            .err();
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
    fn the_credential_helper_is_the_registry_entry_else_the_store() {
        let both = r#"{"credsStore":"desktop","credHelpers":{"ghcr.io":"gh"}}"#;
        assert_eq!(credential_helper(both, "ghcr.io").as_deref(), Some("gh"));
        assert_eq!(
            credential_helper(both, "quay.io").as_deref(),
            Some("desktop")
        );
        assert_eq!(credential_helper(r#"{"auths":{}}"#, "quay.io"), None);
        assert_eq!(credential_helper("not json", "quay.io"), None);
    }

    fn layer(event: PushEvent) -> (String, u64, Option<u64>, bool) {
        match event {
            PushEvent::Layer {
                id,
                current,
                total,
                done,
                ..
            } => (id, current, total, done),
            PushEvent::Status(s) => panic!("not a layer event: {s}"),
        }
    }

    #[test]
    fn layer_events_end_with_current_equal_to_total() {
        // The engine's own sequence for one layer (its count ends past the announced size).
        let mut tracker = LayerTracker::default();
        assert_eq!(
            layer(tracker.event("48e214e9809a", "Preparing", None, None)),
            ("48e214e9809a".to_owned(), 0, None, false)
        );
        assert_eq!(
            layer(tracker.event("48e214e9809a", "Pushing", Some(33792), Some(1982256))),
            ("48e214e9809a".to_owned(), 33792, Some(1982256), false)
        );
        assert_eq!(
            layer(tracker.event("48e214e9809a", "Pushing", Some(1984512), Some(1982256))).1,
            1984512
        );
        assert_eq!(
            layer(tracker.event("48e214e9809a", "Pushed", None, None)),
            ("48e214e9809a".to_owned(), 1984512, Some(1984512), true)
        );
        // A layer the registry has: done at once, nothing sent.
        assert_eq!(
            layer(tracker.event("c733ac796718", "Layer already exists", None, None)),
            ("c733ac796718".to_owned(), 0, Some(0), true)
        );
        assert!(layer_finished("Mounted from uplift-it/other"));
        assert!(!layer_finished("Waiting"));
    }

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
