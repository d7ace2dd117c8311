//! [`NpmSource`]: the releases of an npm package that Backstage ships, mapped from Backstage
//! releases through the release manifests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::Digest;
use uplift_template::{Release, ReleaseLine, ReleaseSource};
use uplift_tree::{FileEntry, RelPath, Tree};

use crate::http::{Http, MAX_TARBALL};
use crate::progress::DownloadProgressFn;
use crate::{Error, NpmSettings};

/// Where [`NpmSource::files`] puts the versions map (package → version, `root` = the release).
pub const VERSIONS_FILE: &str = "versions.json";
/// Where [`NpmSource::files`] puts the release manifest as the site served it.
pub const MANIFEST_FILE: &str = "release-manifest.json";

/// One Backstage release: every package's version in it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseManifest {
    pub release_version: String,
    pub packages: Vec<ManifestPackage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct ManifestPackage {
    pub name: String,
    pub version: String,
}

impl ReleaseManifest {
    pub fn version_of(&self, package: &str) -> Option<&str> {
        self.packages
            .iter()
            .find(|p| p.name == package)
            .map(|p| p.version.as_str())
    }

    /// The map the `version` helper reads: every package, plus `root` = the release.
    pub fn versions_map(&self) -> BTreeMap<String, String> {
        let mut map: BTreeMap<String, String> = self
            .packages
            .iter()
            .map(|p| (p.name.clone(), p.version.clone()))
            .collect();
        map.insert("root".to_string(), self.release_version.clone());
        map
    }
}

/// The releases of `package` (e.g. `@backstage/create-app`), one per Backstage release.
///
/// - Releases are the release tags of backstage/backstage ([`crate::tags`]); the newest of each
///   line is the versions site's `v1/tags/main` and `v1/tags/next` (see [`Self::line_releases`]).
/// - Release R's manifest is `<versions>/v1/releases/R/manifest.json`; it gives the version V
///   of `package` in R.
/// - V's tarball is found in the registry's packument (`GET <registry>/<name with / as %2f>`,
///   `versions[V].dist.tarball`), downloaded with the registry token where it applies, checked
///   against `dist.integrity` (sha512) and unpacked with [`crate::extract`].
/// - Both are cached in `<cache>/npm/<package>/<R>/` (`manifest.json`, `package/`), written
///   under a temporary name and renamed when complete, so a cache entry is whole or absent.
pub struct NpmSource {
    package: String,
    settings: NpmSettings,
    http: Http,
    cache: PathBuf,
    download_progress: Option<DownloadProgressFn>,
}

impl std::fmt::Debug for NpmSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NpmSource")
            .field("package", &self.package)
            .field("settings", &self.settings)
            .field("download_progress", &self.download_progress.is_some())
            .finish()
    }
}

/// The package named by an `npm:PACKAGE` spec.
pub fn package_of(spec: &str) -> Result<&str, Error> {
    let package = spec.strip_prefix("npm:").ok_or_else(|| Error::Spec {
        spec: spec.to_string(),
    })?;
    let valid = !package.is_empty()
        && !package.contains(['\\', ' ', '?', '#', '%'])
        && match package.strip_prefix('@') {
            Some(scoped) => {
                matches!(scoped.split_once('/'), Some((s, n)) if !s.is_empty() && !n.is_empty() && !n.contains('/'))
            }
            None => !package.contains('/'),
        }
        && !package.split('/').any(|part| part == "." || part == "..");
    if !valid {
        return Err(Error::Spec {
            spec: spec.to_string(),
        });
    }
    Ok(package)
}

#[derive(Deserialize)]
struct Packument {
    #[serde(default)]
    versions: BTreeMap<String, PackumentVersion>,
}

#[derive(Deserialize)]
struct PackumentVersion {
    dist: Dist,
}

#[derive(Deserialize)]
struct Dist {
    tarball: String,
    #[serde(default)]
    integrity: Option<String>,
}

impl NpmSource {
    /// Opens `npm:PACKAGE` with `settings` (nothing is fetched yet).
    pub fn open(spec: &str, settings: NpmSettings) -> Result<Self, Error> {
        let package = package_of(spec)?.to_string();
        let cache = match &settings.cache_dir {
            Some(dir) => dir.clone(),
            None => default_cache_dir(),
        }
        .join("npm")
        .join(package.trim_start_matches('@').replace('/', "+"));
        Ok(Self {
            http: Http::new(&settings),
            package,
            settings,
            cache,
            download_progress: None,
        })
    }

    /// Reports the progress of tarball downloads to `hook`.
    pub fn with_download_progress(mut self, hook: DownloadProgressFn) -> Self {
        self.download_progress = Some(hook);
        self
    }

    pub fn package(&self) -> &str {
        &self.package
    }

    pub fn settings(&self) -> &NpmSettings {
        &self.settings
    }

    /// The folder this source caches release `name` in.
    pub fn cache_folder(&self, name: &str) -> PathBuf {
        self.cache.join(name)
    }

    /// Every Backstage release: the release tags of the repository at
    /// [`NpmSettings::releases_git`] (`vX.Y.Z[-PRE]`), read without fetching any object.
    pub fn list_releases(&self) -> Result<Vec<Release>, Error> {
        crate::tags::release_tags(&self.settings.releases_git)
    }

    /// The release `v1/tags/<line>` of the versions site points at (its
    /// `v1/tags/<line>/manifest.json`); `None` when the site has no such tag.
    pub fn tagged_release(&self, line: ReleaseLine) -> Result<Option<Release>, Error> {
        let url = format!(
            "{}/v1/tags/{}/manifest.json",
            self.settings.versions_url,
            line.as_str()
        );
        let manifest: Option<ReleaseManifest> = self.http.get_json(
            &url,
            "application/json",
            self.settings.token_for(&url),
            "the release manifest",
        )?;
        let Some(manifest) = manifest else {
            return Ok(None);
        };
        let version = semver::Version::parse(manifest.release_version.trim()).map_err(|e| {
            Error::Document {
                what: "the release manifest",
                url,
                message: format!("releaseVersion {:?}: {e}", manifest.release_version),
            }
        })?;
        Ok(Some(Release {
            name: version.to_string(),
            version,
        }))
    }

    /// The newest release of each line, as `backstage-cli versions:bump --release LINE` picks
    /// it: `main` is `v1/tags/main`; `next` is the newer of `v1/tags/next` and `v1/tags/main`
    /// (after a main release, `next` still points at the last pre-release for a while).
    pub fn line_releases(&self) -> Result<Vec<(ReleaseLine, Release)>, Error> {
        let main = self.tagged_release(ReleaseLine::Main)?;
        let next = self.tagged_release(ReleaseLine::Next)?;
        let newest_next = match (next, &main) {
            (Some(next), Some(main)) if main.version > next.version => Some(main.clone()),
            (next, main) => next.or_else(|| main.clone()),
        };
        Ok(
            [(ReleaseLine::Main, main), (ReleaseLine::Next, newest_next)]
                .into_iter()
                .filter_map(|(line, release)| release.map(|r| (line, r)))
                .collect(),
        )
    }

    /// The manifest of `release`, from the cache or the versions site.
    pub fn manifest(&self, release: &Release) -> Result<ReleaseManifest, Error> {
        let cached = self.cache_folder(&release.name).join("manifest.json");
        if let Ok(bytes) = std::fs::read(&cached)
            && let Ok(manifest) = serde_json::from_slice(&bytes)
        {
            return Ok(manifest);
        }
        self.fetch_manifest(release)
    }

    fn fetch_manifest(&self, release: &Release) -> Result<ReleaseManifest, Error> {
        let url = format!(
            "{}/v1/releases/{}/manifest.json",
            self.settings.versions_url,
            encode_component(&release.name)
        );
        let token = self.settings.token_for(&url);
        self.http
            .get_json(&url, "application/json", token, "the release manifest")?
            .ok_or(Error::Status { url, status: 404 })
    }

    /// Makes sure release `release` is in the cache; returns its folder.
    pub fn ensure_cached(&self, release: &Release) -> Result<PathBuf, Error> {
        let folder = self.cache_folder(&release.name);
        if folder.join("package").is_dir() && folder.join("manifest.json").is_file() {
            tracing::debug!(release = %release.name, folder = %folder.display(), "cached");
            return Ok(folder);
        }
        let manifest = self.fetch_manifest(release)?;
        let version = manifest
            .version_of(&self.package)
            .ok_or_else(|| Error::NotInManifest {
                release: release.name.clone(),
                package: self.package.clone(),
            })?
            .to_string();
        let dist = self.dist(&version)?;
        let token = self.settings.token_for(&dist.tarball);
        let what = format!("{} {version}", self.package);
        let tarball = self
            .http
            .get(
                &dist.tarball,
                "application/octet-stream",
                token,
                MAX_TARBALL,
                self.download_progress
                    .as_ref()
                    .map(|hook| (what.as_str(), hook)),
            )?
            .ok_or_else(|| Error::Status {
                url: dist.tarball.clone(),
                status: 404,
            })?;
        check_integrity(&dist, &tarball)?;
        tracing::info!(
            release = %release.name,
            package = %self.package,
            version = %version,
            bytes = tarball.len(),
            "downloaded"
        );
        let parent = folder.parent().unwrap_or(&self.cache);
        std::fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
        let staging = tempfile::Builder::new()
            .prefix(".partial-")
            .tempdir_in(parent)
            .map_err(Error::io("create a folder in", parent))?;
        crate::extract(
            &tarball[..],
            &staging.path().join("package"),
            MAX_TARBALL * 4,
        )?;
        let manifest_json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Document {
            what: "the release manifest",
            url: release.name.clone(),
            message: e.to_string(),
        })?;
        let manifest_path = staging.path().join("manifest.json");
        std::fs::write(&manifest_path, manifest_json)
            .map_err(Error::io("write", &manifest_path))?;
        let staged = staging.keep();
        if let Err(source) = std::fs::rename(&staged, &folder) {
            let _ = std::fs::remove_dir_all(&staged);
            // Another process cached the same release meanwhile: theirs is as good.
            if !folder.join("package").is_dir() {
                return Err(Error::Io {
                    action: "move into place",
                    path: folder,
                    source,
                });
            }
        }
        Ok(folder)
    }

    fn dist(&self, version: &str) -> Result<Dist, Error> {
        let registry = self.settings.registry_for(&self.package);
        let url = format!("{registry}{}", self.package.replace('/', "%2f"));
        let packument: Packument = self
            .http
            .get_json(
                &url,
                "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8",
                self.settings.token_for(&url),
                "the package metadata",
            )?
            .ok_or_else(|| Error::NoSuchVersion {
                package: self.package.clone(),
                version: version.to_string(),
                registry: registry.to_string(),
            })?;
        let mut versions = packument.versions;
        versions
            .remove(version)
            .map(|v| v.dist)
            .ok_or_else(|| Error::NoSuchVersion {
                package: self.package.clone(),
                version: version.to_string(),
                registry: registry.to_string(),
            })
    }

    /// The release's files: the package's content (`templates/…`, `package.json`, …), plus
    /// [`VERSIONS_FILE`] and [`MANIFEST_FILE`] from its release manifest.
    pub fn release_files(&self, release: &Release) -> Result<Tree, Error> {
        let folder = self.ensure_cached(release)?;
        let mut tree = uplift_tree::read_dir(&folder.join("package"), &[])?;
        let manifest = self.manifest(release)?;
        let json = |value: &dyn ToJson| {
            value.to_json().map_err(|message| Error::Document {
                what: "the release manifest",
                url: release.name.clone(),
                message,
            })
        };
        tree.insert(
            RelPath::new(VERSIONS_FILE)?,
            FileEntry::regular(json(&manifest.versions_map())?),
        );
        tree.insert(
            RelPath::new(MANIFEST_FILE)?,
            FileEntry::regular(json(&manifest)?),
        );
        Ok(tree)
    }
}

/// Pretty JSON with a final newline.
trait ToJson {
    fn to_json(&self) -> Result<Vec<u8>, String>;
}

impl<T: serde::Serialize> ToJson for T {
    fn to_json(&self) -> Result<Vec<u8>, String> {
        let mut out = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        out.push(b'\n');
        Ok(out)
    }
}

fn check_integrity(dist: &Dist, tarball: &[u8]) -> Result<(), Error> {
    use base64::Engine;
    let Some(integrity) = &dist.integrity else {
        tracing::warn!(url = %dist.tarball, "the registry gives no integrity for this tarball");
        return Ok(());
    };
    // Subresource Integrity: space-separated `algo-base64`; sha512 is what npm writes.
    let Some(expected) = integrity
        .split_whitespace()
        .find_map(|part| part.strip_prefix("sha512-"))
    else {
        tracing::warn!(url = %dist.tarball, integrity, "no sha512 integrity to check");
        return Ok(());
    };
    let actual = base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(tarball));
    if actual != expected {
        return Err(Error::Integrity {
            url: dist.tarball.clone(),
            expected: format!("sha512-{expected}"),
            actual: format!("sha512-{actual}"),
        });
    }
    Ok(())
}

/// Percent-encodes one URL path segment.
fn encode_component(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'+' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// `$UPLIFT_CACHE_DIR`, else `$XDG_CACHE_HOME/uplift`, else `~/.cache/uplift` (as the git source).
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("UPLIFT_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("uplift")
}

impl ReleaseSource for NpmSource {
    fn describe(&self) -> String {
        format!("npm:{}", self.package)
    }

    fn releases(&self) -> Result<Vec<Release>, uplift_template::Error> {
        self.list_releases().map_err(template_error)
    }

    fn files(&self, release: &Release) -> Result<Tree, uplift_template::Error> {
        self.release_files(release).map_err(template_error)
    }

    fn line_latest(&self) -> Result<Vec<(ReleaseLine, Release)>, uplift_template::Error> {
        self.line_releases().map_err(template_error)
    }
}

fn template_error(error: Error) -> uplift_template::Error {
    uplift_template::Error::Source(uplift_template::ForeignError(Box::new(error)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(
            package_of("npm:@backstage/create-app").unwrap(),
            "@backstage/create-app"
        );
        assert_eq!(package_of("npm:left-pad").unwrap(), "left-pad");
        for bad in [
            "git:x",
            "npm:",
            "npm:@x",
            "npm:@x/",
            "npm:a/b",
            "npm:@x/../y",
            "npm:@x/y/z",
        ] {
            assert!(package_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn manifests_in_the_site_s_shape() {
        // `v1/releases/<R>/manifest.json` as versions.backstage.io serves it.
        let text = r#"{
  "releaseVersion": "1.54.0-next.0",
  "packages": [
    { "name": "@backstage/app-defaults", "version": "1.7.11-next.0" },
    { "name": "@backstage/create-app", "version": "0.9.1-next.0" }
  ]
}"#;
        let manifest: ReleaseManifest = serde_json::from_str(text).unwrap();
        assert_eq!(manifest.release_version, "1.54.0-next.0");
        assert_eq!(
            manifest.version_of("@backstage/create-app"),
            Some("0.9.1-next.0")
        );
        assert_eq!(manifest.versions_map()["root"], "1.54.0-next.0");
    }

    #[test]
    fn integrity_is_checked() {
        use base64::Engine;
        let data = b"tarball";
        let good = base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(data));
        let dist = |integrity: &str| Dist {
            tarball: "http://x/t.tgz".into(),
            integrity: Some(integrity.into()),
        };
        assert!(check_integrity(&dist(&format!("sha512-{good}")), data).is_ok());
        let error = check_integrity(&dist("sha512-AAAA"), data).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("check the integrity of http://x/t.tgz")
        );
        assert_eq!(encode_component("1.2.3-next.1"), "1.2.3-next.1");
        assert_eq!(encode_component("a/b"), "a%2Fb");
    }
}
