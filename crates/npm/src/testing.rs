//! A fake npm registry, Backstage versions site and Backstage release tags on loopback, for
//! tests (feature `test-registry`). Each is laid out as the real one (checked against the
//! public `backstage/versions` repository that versions.backstage.io serves, and the npm
//! registry's packument formats):
//!
//! - versions site: `/v1/releases/<R>/manifest.json` and `/v1/releases/<R>/yarn-plugin` per
//!   release; `/v1/tags/main/…` and `/v1/tags/next/…` serve the files of the release each tag
//!   points at (on the real site the tags are symlinks `../releases/<R>`, followed by GitHub
//!   Pages); 404 for anything else, `/v1/releases` and `/v1/tags/main` included (no listing);
//! - registry: the packument at `/@scope%2fname`, full (`application/json`) or abbreviated
//!   (`application/vnd.npm.install-v1+json`, as the Accept header asks), and the tarballs at
//!   `/@scope/name/-/name-<V>.tgz`;
//! - release tags: a git repository whose tags `v<R>` are the releases (as backstage/backstage
//!   tags them), read by [`crate::tags`] from [`FakeRegistry::releases_git`].
//!
//! Optionally a token is required (401 without it); every request is recorded.

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

/// A file served at one path: its type and body, and for packuments the abbreviated form.
#[derive(Clone)]
struct Route {
    content_type: &'static str,
    body: Vec<u8>,
    abbreviated: Option<Vec<u8>>,
}

impl Route {
    fn new(content_type: &'static str, body: Vec<u8>) -> Self {
        Self {
            content_type,
            body,
            abbreviated: None,
        }
    }
}

/// The media type of npm's abbreviated metadata ("corgi").
pub const ABBREVIATED: &str = "application/vnd.npm.install-v1+json";

#[derive(Default)]
struct Shared {
    routes: BTreeMap<String, Route>,
    token: Option<String>,
    seen: Vec<SeenRequest>,
    missed: Vec<String>,
}

type SharedState = Arc<Mutex<Shared>>;

/// The running server; stopped when dropped.
pub struct FakeRegistry {
    url: String,
    state: SharedState,
    tags: tempfile::TempDir,
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
            tags: tempfile::tempdir()?,
            stop: Some(stop),
            thread: Some(thread),
        };
        init_tags(registry.tags.path()).map_err(std::io::Error::other)?;
        registry.publish(package, releases)?;
        let newest = |next: bool| {
            releases
                .iter()
                .filter_map(|r| Some((semver::Version::parse(&r.release).ok()?, r)))
                .filter(|(v, _)| v.pre.is_empty() != next)
                .max_by(|a, b| a.0.cmp(&b.0))
                .map(|(_, r)| r.release.clone())
        };
        if let Some(main) = newest(false) {
            registry.point_tag("main", &main);
        }
        if let Some(next) = newest(true) {
            registry.point_tag("next", &next);
        }
        Ok(registry)
    }

    /// The git repository whose `v<R>` tags are the releases (a path: `git ls-remote` lists it as it
    /// lists a remote).
    pub fn releases_git(&self) -> String {
        self.tags.path().display().to_string()
    }

    /// Tags release `release` in the releases repository without publishing anything on the
    /// versions site (as between Backstage's tag and its manifest).
    pub fn tag_only(&self, release: &str) -> std::io::Result<()> {
        add_tag(self.tags.path(), release).map_err(std::io::Error::other)
    }

    /// Points the versions site's `v1/tags/<tag>` at release `release` (its files are served
    /// under `v1/tags/<tag>/` as under `v1/releases/<release>/`).
    pub fn point_tag(&self, tag: &str, release: &str) {
        if let Ok(mut shared) = self.state.lock() {
            shared
                .routes
                .retain(|path, _| !path.starts_with(&format!("/v1/tags/{tag}/")));
            let prefix = format!("/v1/releases/{release}/");
            let files: Vec<(String, Route)> = shared
                .routes
                .iter()
                .filter_map(|(path, route)| {
                    let file = path.strip_prefix(&prefix)?;
                    Some((format!("/v1/tags/{tag}/{file}"), route.clone()))
                })
                .collect();
            shared.routes.extend(files);
        }
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
        let mut full_versions = serde_json::Map::new();
        let mut abbreviated_versions = serde_json::Map::new();
        let mut times = serde_json::Map::new();
        let short = package.rsplit('/').next().unwrap_or(package);
        for (index, release) in releases.iter().enumerate() {
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
            // As the registry writes it (`shasum`, a SHA-1, and `signatures` are left out:
            // nothing reads them).
            let dist = serde_json::json!({
                "integrity": integrity,
                "tarball": format!("{}{path}", self.url),
                "fileCount": release.files.len(),
                "unpackedSize": release.files.iter().map(|f| f.1.len()).sum::<usize>(),
            });
            let bin = serde_json::json!({ "backstage-create-app": "bin/backstage-create-app" });
            full_versions.insert(
                release.package_version.clone(),
                serde_json::json!({
                    "name": package,
                    "version": release.package_version,
                    "description": "A CLI that helps you create your own Backstage app",
                    "license": "Apache-2.0",
                    "bin": bin,
                    "dist": dist,
                    "_id": format!("{package}@{}", release.package_version),
                }),
            );
            abbreviated_versions.insert(
                release.package_version.clone(),
                serde_json::json!({
                    "name": package,
                    "version": release.package_version,
                    "bin": bin,
                    "dist": dist,
                }),
            );
            times.insert(
                release.package_version.clone(),
                format!("2025-01-{:02}T12:00:00.000Z", index % 28 + 1).into(),
            );
            routes.insert(path, Route::new("application/octet-stream", tarball));
            let mut packages: Vec<serde_json::Value> = release
                .packages
                .iter()
                .map(|(name, version)| serde_json::json!({"name": name, "version": version}))
                .collect();
            packages.push(serde_json::json!({"name": package, "version": release.package_version}));
            packages.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
            let manifest =
                serde_json::json!({"releaseVersion": release.release, "packages": packages});
            let manifest = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?;
            routes.insert(
                format!("/v1/releases/{}/manifest.json", release.release),
                Route::new("application/json", manifest),
            );
            routes.insert(
                format!("/v1/releases/{}/yarn-plugin", release.release),
                Route::new(
                    "application/octet-stream",
                    format!(
                        "/* eslint-disable */\n//prettier-ignore\nmodule.exports = {{\nname: \"@yarnpkg/plugin-backstage\",\nfactory: function (require) {{ /* {} */ }}\n}};\n",
                        release.release
                    )
                    .into_bytes(),
                ),
            );
            add_tag(self.tags.path(), &release.release).map_err(std::io::Error::other)?;
        }
        let newest = |next: bool| {
            releases
                .iter()
                .filter_map(|r| semver::Version::parse(&r.package_version).ok())
                .filter(|v| v.pre.is_empty() != next)
                .max()
                .map(|v| v.to_string())
        };
        let mut dist_tags = serde_json::Map::new();
        for (tag, version) in [("latest", newest(false)), ("next", newest(true))] {
            if let Some(version) = version {
                dist_tags.insert(tag.into(), version.into());
            }
        }
        times.insert("created".into(), "2020-04-01T12:00:00.000Z".into());
        times.insert("modified".into(), "2025-02-01T12:00:00.000Z".into());
        let full = serde_json::json!({
            "_id": package,
            "_rev": format!("{}-0123456789abcdef", releases.len()),
            "name": package,
            "dist-tags": dist_tags,
            "versions": full_versions,
            "time": times,
            "description": "A CLI that helps you create your own Backstage app",
            "license": "Apache-2.0",
        });
        let abbreviated = serde_json::json!({
            "name": package,
            "modified": "2025-02-01T12:00:00.000Z",
            "dist-tags": dist_tags,
            "versions": abbreviated_versions,
        });
        routes.insert(
            format!("/{}", package.replace('/', "%2f")),
            Route {
                content_type: "application/json",
                body: full.to_string().into_bytes(),
                abbreviated: Some(abbreviated.to_string().into_bytes()),
            },
        );
        if let Ok(mut shared) = self.state.lock() {
            shared.routes.extend(routes);
        }
        Ok(())
    }

    /// The paths that answered 404 so far.
    pub fn not_found(&self) -> Vec<String> {
        self.state
            .lock()
            .map(|shared| shared.missed.clone())
            .unwrap_or_default()
    }
}

/// An empty repository with one commit, for release tags.
fn init_tags(dir: &std::path::Path) -> Result<(), git2::Error> {
    let repo = git2::Repository::init_bare(dir)?;
    let tree = repo.treebuilder(None)?.write()?;
    let tree = repo.find_tree(tree)?;
    let signature = git2::Signature::new(
        "Backstage",
        "noreply@backstage.io",
        &git2::Time::new(1_700_000_000, 0),
    )?;
    repo.commit(
        Some("refs/heads/master"),
        &signature,
        &signature,
        "releases",
        &tree,
        &[],
    )?;
    // What GitHub also advertises: branches and pull-request refs, which are not releases.
    let head = repo.refname_to_id("refs/heads/master")?;
    repo.reference("refs/pull/1/head", head, true, "a pull request")?;
    repo.reference("refs/tags/release-2020-03-01", head, true, "an old tag")?;
    Ok(())
}

/// Tags the commit of `master` as `v<release>` (annotated, as Backstage's release tags are).
fn add_tag(dir: &std::path::Path, release: &str) -> Result<(), git2::Error> {
    let repo = git2::Repository::open_bare(dir)?;
    let head = repo.refname_to_id("refs/heads/master")?;
    let object = repo.find_object(head, None)?;
    let signature = git2::Signature::new(
        "Backstage",
        "noreply@backstage.io",
        &git2::Time::new(1_700_000_000, 0),
    )?;
    repo.tag(&format!("v{release}"), &object, &signature, release, true)?;
    Ok(())
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
    let header_text = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let authorization = header_text(header::AUTHORIZATION);
    let accept = header_text(header::ACCEPT).unwrap_or_default();
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
    let Some(route) = shared.routes.get(uri.path()).cloned() else {
        shared.missed.push(uri.path().to_string());
        return StatusCode::NOT_FOUND.into_response();
    };
    match route.abbreviated {
        Some(body) if accept.contains(ABBREVIATED) => {
            ([(header::CONTENT_TYPE, ABBREVIATED)], body).into_response()
        }
        _ => ([(header::CONTENT_TYPE, route.content_type)], route.body).into_response(),
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
