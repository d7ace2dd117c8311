//! Where the registry and the release manifests are, and the registry's credentials, read the
//! way npm reads `.npmrc` (`registry=URL`, `@scope:registry=URL`, `//HOST/PATH/:_authToken=TOKEN`,
//! `${VAR}` expanded from the environment, `#`/`;` comments) and the way yarn 4 reads
//! `.yarnrc.yml` (`npmRegistryServer`, `npmAuthToken`, `npmScopes.<scope>.npmRegistryServer` and
//! `.npmAuthToken`, `npmRegistries."//HOST".npmAuthToken`; `${VAR}` and `${VAR:-default}`):
//! Backstage apps are yarn 4 projects, and yarn ignores `.npmrc`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Error;

/// The public npm registry.
pub const DEFAULT_REGISTRY: &str = "https://registry.npmjs.org/";
/// Backstage's release manifests.
pub const DEFAULT_VERSIONS_URL: &str = "https://versions.backstage.io";

/// The registry URL (env `UPLIFT_NPM_REGISTRY`).
pub const ENV_REGISTRY: &str = "UPLIFT_NPM_REGISTRY";
/// A token for the registry (env `UPLIFT_NPM_TOKEN`), sent as `Authorization: Bearer`.
pub const ENV_TOKEN: &str = "UPLIFT_NPM_TOKEN";
/// The base URL of the release manifests (env `UPLIFT_BACKSTAGE_VERSIONS_URL`).
pub const ENV_VERSIONS_URL: &str = "UPLIFT_BACKSTAGE_VERSIONS_URL";
/// The repository whose `vX.Y.Z` tags are Backstage's releases.
pub const DEFAULT_RELEASES_GIT: &str = "https://github.com/backstage/backstage";
/// Where the release tags are read instead (env `UPLIFT_BACKSTAGE_RELEASES_GIT`): a mirror's
/// URL or a local path.
pub const ENV_RELEASES_GIT: &str = "UPLIFT_BACKSTAGE_RELEASES_GIT";

/// Settings of the npm source.
#[derive(Clone, PartialEq, Eq)]
pub struct NpmSettings {
    /// The default registry, ending with `/`.
    pub registry: String,
    /// Registries by scope (`@backstage` → URL ending with `/`).
    pub scoped_registries: BTreeMap<String, String>,
    /// Tokens by "nerf dart" (`//host/path/`), as in `.npmrc`.
    pub tokens: BTreeMap<String, String>,
    /// Base URL of the release manifests, without a trailing `/`.
    pub versions_url: String,
    /// The git repository whose release tags list the releases (URL or path).
    pub releases_git: String,
    /// Where downloads are kept; `None`: `$UPLIFT_CACHE_DIR`, else `~/.cache/uplift`.
    pub cache_dir: Option<PathBuf>,
    /// Longest time one HTTP request may take.
    pub timeout: Duration,
}

impl std::fmt::Debug for NpmSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are secrets: only where they apply is shown.
        f.debug_struct("NpmSettings")
            .field("registry", &self.registry)
            .field("scoped_registries", &self.scoped_registries)
            .field("tokens_for", &self.tokens.keys().collect::<Vec<_>>())
            .field("versions_url", &self.versions_url)
            .field("releases_git", &self.releases_git)
            .field("cache_dir", &self.cache_dir)
            .finish()
    }
}

impl Default for NpmSettings {
    fn default() -> Self {
        Self {
            registry: DEFAULT_REGISTRY.to_string(),
            scoped_registries: BTreeMap::new(),
            tokens: BTreeMap::new(),
            versions_url: DEFAULT_VERSIONS_URL.to_string(),
            releases_git: DEFAULT_RELEASES_GIT.to_string(),
            cache_dir: None,
            timeout: Duration::from_secs(60),
        }
    }
}

impl NpmSettings {
    /// Reads, lowest precedence first: the user's `.npmrc` (`$NPM_CONFIG_USERCONFIG` or
    /// `~/.npmrc`), the project's `.npmrc` in `project` (the app folder), the user's
    /// `~/.yarnrc.yml`, the project's `.yarnrc.yml`, then the environment
    /// (`NPM_CONFIG_REGISTRY`, `YARN_NPM_REGISTRY_SERVER`, `UPLIFT_NPM_REGISTRY`,
    /// `YARN_NPM_AUTH_TOKEN`, `UPLIFT_NPM_TOKEN`, `UPLIFT_BACKSTAGE_VERSIONS_URL`,
    /// `UPLIFT_BACKSTAGE_RELEASES_GIT`).
    pub fn load(project: Option<&Path>) -> Result<Self, Error> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut settings = Self::default();
        let home = env("HOME").map(PathBuf::from);
        let user = env("NPM_CONFIG_USERCONFIG")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|home| home.join(".npmrc")));
        let project_npmrc = project.map(|dir| dir.join(".npmrc"));
        for file in [user, project_npmrc].into_iter().flatten() {
            if let Some(text) = read_optional(&file)? {
                tracing::debug!(file = %file.display(), "reading npm settings");
                settings.apply_npmrc(&text, &|name| env(name));
            }
        }
        let user_yarnrc = home.map(|home| home.join(".yarnrc.yml"));
        let project_yarnrc = project.map(|dir| dir.join(".yarnrc.yml"));
        for file in [user_yarnrc, project_yarnrc].into_iter().flatten() {
            if let Some(text) = read_optional(&file)? {
                tracing::debug!(file = %file.display(), "reading yarn settings");
                settings
                    .apply_yarnrc(&text, &|name| env(name))
                    .map_err(|message| Error::AppFile {
                        path: file.clone(),
                        message,
                    })?;
            }
        }
        if let Some(registry) = env("NPM_CONFIG_REGISTRY") {
            settings.registry = with_slash(&registry);
        }
        if let Some(registry) = env("YARN_NPM_REGISTRY_SERVER") {
            settings.registry = with_slash(&registry);
        }
        if let Some(registry) = env(ENV_REGISTRY) {
            settings.registry = with_slash(&registry);
        }
        if let Some(token) = env("YARN_NPM_AUTH_TOKEN") {
            settings.tokens.insert(nerf_dart(&settings.registry), token);
        }
        if let Some(token) = env(ENV_TOKEN) {
            settings.tokens.insert(nerf_dart(&settings.registry), token);
        }
        if let Some(url) = env(ENV_VERSIONS_URL) {
            settings.versions_url = url.trim_end_matches('/').to_string();
        }
        if let Some(location) = env(ENV_RELEASES_GIT) {
            settings.releases_git = location;
        }
        if let Some(dir) = env("UPLIFT_CACHE_DIR") {
            settings.cache_dir = Some(PathBuf::from(dir));
        }
        Ok(settings)
    }

    /// Applies the lines of one `.npmrc` file; `${VAR}` is looked up with `env`.
    pub fn apply_npmrc(&mut self, text: &str, env: &dyn Fn(&str) -> Option<String>) {
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let key = key.trim();
            let value = expand(unquote(value.trim()), env);
            if key == "registry" {
                self.registry = with_slash(&value);
            } else if let Some(scope) = key.strip_suffix(":registry")
                && scope.starts_with('@')
            {
                self.scoped_registries
                    .insert(scope.to_string(), with_slash(&value));
            } else if let Some(dart) = key.strip_suffix(":_authToken")
                && dart.starts_with("//")
            {
                self.tokens.insert(with_slash(dart), value);
            }
        }
    }

    /// Applies one `.yarnrc.yml` (yarn 4's settings; the keys Uplift does not use are ignored).
    /// The error is the YAML parser's message.
    pub fn apply_yarnrc(
        &mut self,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), String> {
        let rc: YarnRc = if text.trim().is_empty() {
            YarnRc::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| e.to_string())?
        };
        let value = |text: &str| expand(text.trim(), env);
        if let Some(server) = &rc.npm_registry_server {
            self.registry = with_slash(&value(server));
        }
        if let Some(token) = &rc.npm_auth_token {
            self.tokens.insert(nerf_dart(&self.registry), value(token));
        }
        for (scope, settings) in &rc.npm_scopes {
            let scope = format!("@{}", scope.trim_start_matches('@'));
            if let Some(server) = &settings.npm_registry_server {
                self.scoped_registries
                    .insert(scope.clone(), with_slash(&value(server)));
            }
            if let Some(token) = &settings.npm_auth_token {
                let registry = self.registry_for(&format!("{scope}/x")).to_string();
                self.tokens.insert(nerf_dart(&registry), value(token));
            }
        }
        for (registry, settings) in &rc.npm_registries {
            if let Some(token) = &settings.npm_auth_token {
                self.tokens
                    .insert(nerf_dart(&with_slash(registry)), value(token));
            }
        }
        Ok(())
    }

    /// The registry serving `package` (its scope's, else the default).
    pub fn registry_for(&self, package: &str) -> &str {
        package
            .split_once('/')
            .and_then(|(scope, _)| self.scoped_registries.get(scope))
            .unwrap_or(&self.registry)
    }

    /// The token for `url`: the one whose `//host/path/` is the longest prefix of the URL's.
    pub fn token_for(&self, url: &str) -> Option<&str> {
        let dart = nerf_dart(url);
        self.tokens
            .iter()
            .filter(|(prefix, _)| dart.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, token)| token.as_str())
    }
}

/// The part of `.yarnrc.yml` Uplift reads.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct YarnRc {
    npm_registry_server: Option<String>,
    npm_auth_token: Option<String>,
    #[serde(default)]
    npm_scopes: BTreeMap<String, YarnRegistry>,
    #[serde(default)]
    npm_registries: BTreeMap<String, YarnRegistry>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct YarnRegistry {
    npm_registry_server: Option<String>,
    npm_auth_token: Option<String>,
}

/// The file's text, `None` when it does not exist.
fn read_optional(file: &Path) -> Result<Option<String>, Error> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            action: "read",
            path: file.to_path_buf(),
            source,
        }),
    }
}

fn with_slash(url: &str) -> String {
    format!("{}/", url.trim().trim_end_matches('/'))
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// `${NAME}` replaced by the variable's value (empty when unset), as npm does; `${NAME:-DEFAULT}`
/// and `${NAME-DEFAULT}` as yarn does.
fn expand(value: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start + 2..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let inner = &rest[start + 2..start + 2 + len];
        let (name, default) = match inner.split_once(":-").or_else(|| inner.split_once('-')) {
            Some((name, default)) => (name, default),
            None => (inner, ""),
        };
        out.push_str(&env(name).unwrap_or_else(|| default.to_string()));
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    out
}

/// `https://host:port/path/x?q` → `//host:port/path/` (npm's "nerf dart": scheme, query and the
/// last path segment dropped).
pub fn nerf_dart(url: &str) -> String {
    let without_scheme = url.split_once("//").map_or(url, |(_, rest)| rest);
    let without_query = without_scheme
        .split(['?', '#'])
        .next()
        .unwrap_or(without_scheme);
    let dir = match without_query.rfind('/') {
        Some(index) => &without_query[..=index],
        None => without_query,
    };
    let dir = if dir.ends_with('/') {
        dir.to_string()
    } else {
        format!("{dir}/")
    };
    format!("//{dir}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_npmrc_like_npm() {
        let mut settings = NpmSettings::default();
        let text = "\
# comment
; another
registry=https://npm.example.com/repo
@backstage:registry = \"https://bs.example.com/\"
//npm.example.com/repo/:_authToken=${NPM_TOKEN}
//other.example.com/:_authToken=other
not a setting
";
        let env = |name: &str| (name == "NPM_TOKEN").then(|| "s3cret".to_string());
        settings.apply_npmrc(text, &env);
        assert_eq!(settings.registry, "https://npm.example.com/repo/");
        assert_eq!(
            settings.registry_for("@backstage/create-app"),
            "https://bs.example.com/"
        );
        assert_eq!(
            settings.registry_for("left-pad"),
            "https://npm.example.com/repo/"
        );
        assert_eq!(
            settings.token_for("https://npm.example.com/repo/@backstage%2fcreate-app"),
            Some("s3cret")
        );
        assert_eq!(
            settings.token_for("https://npm.example.com/repo/x/-/x-1.0.0.tgz"),
            Some("s3cret")
        );
        // No token leaks to another host or to a sibling path.
        assert_eq!(settings.token_for("https://evil.example.com/repo/x"), None);
        assert_eq!(settings.token_for("https://npm.example.com/other/x"), None);
        assert!(!format!("{settings:?}").contains("s3cret"));
    }

    #[test]
    fn reads_yarnrc_like_yarn() {
        let mut settings = NpmSettings::default();
        settings.apply_npmrc("registry=https://npmrc.example.com/\n", &|_| None);
        let text = r#"
nodeLinker: node-modules
yarnPath: .yarn/releases/yarn-4.4.1.cjs
npmRegistryServer: "https://npm.example.com/repo"
npmAuthToken: "${NPM_TOKEN}"
npmScopes:
  backstage:
    npmRegistryServer: "https://bs.example.com/npm/"
    npmAuthToken: "${BS_TOKEN:-fallback}"
npmRegistries:
  "//other.example.com":
    npmAuthToken: other
plugins:
  - checksum: abc
    path: .yarn/plugins/@yarnpkg/plugin-backstage.cjs
    spec: "https://versions.backstage.io/v1/releases/1.53.0/yarn-plugin"
"#;
        let env = |name: &str| (name == "NPM_TOKEN").then(|| "s3cret".to_string());
        settings.apply_yarnrc(text, &env).unwrap();
        // The yarn project's registry wins over `.npmrc` (yarn never reads `.npmrc`).
        assert_eq!(settings.registry, "https://npm.example.com/repo/");
        assert_eq!(
            settings.registry_for("@backstage/create-app"),
            "https://bs.example.com/npm/"
        );
        assert_eq!(
            settings.token_for("https://npm.example.com/repo/left-pad"),
            Some("s3cret")
        );
        assert_eq!(
            settings.token_for("https://bs.example.com/npm/@backstage%2fcreate-app"),
            Some("fallback")
        );
        assert_eq!(
            settings.token_for("https://other.example.com/x/-/x-1.0.0.tgz"),
            Some("other")
        );
        assert_eq!(settings.token_for("https://evil.example.com/npm/x"), None);
        // An empty file changes nothing; a malformed one is an error with the parser's words.
        let before = settings.clone();
        settings.apply_yarnrc("", &env).unwrap();
        assert_eq!(settings, before);
        assert!(settings.apply_yarnrc("npmScopes: [1, 2", &env).is_err());
    }

    #[test]
    fn nerf_darts() {
        assert_eq!(
            nerf_dart("https://registry.npmjs.org/"),
            "//registry.npmjs.org/"
        );
        assert_eq!(
            nerf_dart("http://127.0.0.1:4873/a/b.tgz?x=1"),
            "//127.0.0.1:4873/a/"
        );
        assert_eq!(expand("a${X}b${Y", &|_| Some("1".into())), "a1b${Y");
        assert_eq!(expand("${X:-d}|${Y-e}|${Z}", &|_| None), "d|e|");
    }
}
