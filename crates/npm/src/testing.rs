//! A fake npm registry and Backstage versions site on loopback, for tests (feature
//! `test-registry`). It speaks the protocol the source uses: packuments (`GET /@scope%2fname`),
//! tarballs, `GET /v1/releases` and `GET /v1/releases/R/manifest.json`, with an optional
//! required token (401 without it), and records every request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use sha2::Digest;

/// One release to serve: its version, the package's version in it, the package's files (paths
/// below `package/`, content, executable), and the other packages of its manifest.
#[derive(Debug, Clone)]
pub struct FakeRelease {
    pub release: String,
    pub package_version: String,
    pub files: Vec<(String, Vec<u8>, bool)>,
    pub packages: BTreeMap<String, String>,
}

impl FakeRelease {
    /// A release whose package holds `templates/NAME/` for each `(NAME, folder)` and whose
    /// manifest lists the packages of the versions map `versions_json` (`root` left out).
    pub fn from_folders(
        release: &str,
        package_version: &str,
        templates: &[(&str, &std::path::Path)],
        versions_json: &std::path::Path,
    ) -> std::io::Result<Self> {
        let mut packages: BTreeMap<String, String> =
            serde_json::from_slice(&std::fs::read(versions_json)?)
                .map_err(std::io::Error::other)?;
        packages.remove("root");
        let mut files = Vec::new();
        for (name, folder) in templates {
            files.extend(files_of(folder, &format!("templates/{name}/"))?);
        }
        files.push((
            "package.json".to_string(),
            format!(
                "{{\"name\": \"@backstage/create-app\", \"version\": \"{package_version}\"}}\n"
            )
            .into_bytes(),
            false,
        ));
        Ok(Self {
            release: release.to_string(),
            package_version: package_version.to_string(),
            files,
            packages,
        })
    }
}

/// A request the server saw: path and whether it carried `Authorization`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    pub path: String,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct Shared {
    routes: BTreeMap<String, (&'static str, Vec<u8>)>,
    token: Option<String>,
    seen: Vec<SeenRequest>,
}

type SharedState = Arc<Mutex<Shared>>;

/// The running server; stopped when dropped.
pub struct FakeRegistry {
    url: String,
    state: SharedState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeRegistry {
    /// Starts the server on `127.0.0.1` (an ephemeral port) and serves `releases` of `package`.
    pub fn start(package: &str, releases: &[FakeRelease]) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let url = format!("http://{}", listener.local_addr()?);
        let state: SharedState = Arc::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let server_state = state.clone();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let app = axum::Router::new().fallback(serve).with_state(server_state);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        let registry = Self {
            url,
            state,
            stop: Some(stop),
            thread: Some(thread),
        };
        registry.publish(package, releases)?;
        Ok(registry)
    }

    /// `http://127.0.0.1:PORT` (no trailing slash): both the registry and the versions site.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// From now on, answer 401 to any request without `Authorization: Bearer TOKEN`.
    pub fn require_token(&self, token: &str) {
        if let Ok(mut shared) = self.state.lock() {
            shared.token = Some(token.to_string());
        }
    }

    /// The requests seen so far.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.state
            .lock()
            .map(|shared| shared.seen.clone())
            .unwrap_or_default()
    }

    fn publish(&self, package: &str, releases: &[FakeRelease]) -> std::io::Result<()> {
        let mut routes = BTreeMap::new();
        let mut versions = serde_json::Map::new();
        let short = package.rsplit('/').next().unwrap_or(package);
        for release in releases {
            let tarball = tgz(&release.files)?;
            let path = format!("/{package}/-/{short}-{}.tgz", release.package_version);
            let integrity = {
                use base64::Engine;
                let digest = sha2::Sha512::digest(&tarball);
                format!(
                    "sha512-{}",
                    base64::engine::general_purpose::STANDARD.encode(digest)
                )
            };
            versions.insert(
                release.package_version.clone(),
                serde_json::json!({
                    "name": package,
                    "version": release.package_version,
                    "dist": { "tarball": format!("{}{path}", self.url), "integrity": integrity },
                }),
            );
            routes.insert(path, ("application/octet-stream", tarball));
            let mut packages: Vec<serde_json::Value> = release
                .packages
                .iter()
                .map(|(name, version)| serde_json::json!({"name": name, "version": version}))
                .collect();
            packages.push(serde_json::json!({"name": package, "version": release.package_version}));
            let manifest =
                serde_json::json!({"releaseVersion": release.release, "packages": packages});
            routes.insert(
                format!("/v1/releases/{}/manifest.json", release.release),
                ("application/json", manifest.to_string().into_bytes()),
            );
        }
        let list: Vec<_> = releases
            .iter()
            .map(|r| serde_json::json!({"version": r.release}))
            .collect();
        routes.insert(
            "/v1/releases".to_string(),
            (
                "application/json",
                serde_json::json!({ "releases": list })
                    .to_string()
                    .into_bytes(),
            ),
        );
        let packument = serde_json::json!({"name": package, "versions": versions});
        routes.insert(
            format!("/{}", package.replace('/', "%2f")),
            ("application/json", packument.to_string().into_bytes()),
        );
        if let Ok(mut shared) = self.state.lock() {
            shared.routes.extend(routes);
        }
        Ok(())
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(State(state): State<SharedState>, uri: Uri, headers: HeaderMap) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Ok(mut shared) = state.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    shared.seen.push(SeenRequest {
        path: uri.path().to_string(),
        authorization: authorization.clone(),
    });
    if let Some(token) = &shared.token
        && authorization.as_deref() != Some(format!("Bearer {token}").as_str())
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match shared.routes.get(uri.path()) {
        Some((content_type, body)) => {
            ([(header::CONTENT_TYPE, *content_type)], body.clone()).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A gzip-compressed tarball with every file under `package/`, as `npm pack` makes them.
pub fn tgz(files: &[(String, Vec<u8>, bool)]) -> std::io::Result<Vec<u8>> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(encoder);
    for (path, content, executable) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(if *executable { 0o755 } else { 0o644 });
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, format!("package/{path}"), &content[..])?;
    }
    builder.into_inner()?.finish()
}

/// The files of `dir` (recursively) as `(prefix/relative path, content, executable)`.
pub fn files_of(
    dir: &std::path::Path,
    prefix: &str,
) -> std::io::Result<Vec<(String, Vec<u8>, bool)>> {
    let tree = uplift_tree::read_dir(dir, &[]).map_err(std::io::Error::other)?;
    Ok(tree
        .iter()
        .map(|(path, entry)| {
            (
                format!("{prefix}{}", path.as_str()),
                entry.content.to_vec(),
                entry.mode == uplift_tree::FileMode::Executable,
            )
        })
        .collect())
}
