use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::error::{Error, Result};

/// The registry Docker uses when a reference names none.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// A parsed image reference: `[registry/]repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The registry host (and port), `docker.io` when the reference names none.
    pub registry: String,
    /// The repository path inside the registry, e.g. `team/app`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
    explicit_registry: bool,
}

impl ImageRef {
    /// Parses a reference the way Docker does: the first component is a registry when it has a
    /// `.` or a `:` or is `localhost`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::Reference(s.to_owned());
        if s.is_empty() || s.chars().any(char::is_whitespace) {
            return Err(bad());
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                let (algo, hex) = d.split_once(':').ok_or_else(bad)?;
                if algo.is_empty() || hex.is_empty() {
                    return Err(bad());
                }
                (r, Some(d.to_owned()))
            }
            None => (s, None),
        };
        let (registry, path, explicit_registry) = match rest.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), path, true)
            }
            _ => (DEFAULT_REGISTRY.to_owned(), rest, false),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag.to_owned())),
            _ => (path, None),
        };
        if repository.is_empty()
            || repository.split('/').any(str::is_empty)
            || repository.chars().any(|c| c.is_ascii_uppercase())
            || tag.as_deref().is_some_and(|t| !valid_tag(t))
        {
            return Err(bad());
        }
        Ok(ImageRef {
            registry,
            repository: repository.to_owned(),
            tag,
            digest,
            explicit_registry,
        })
    }

    /// The name without tag or digest, as the engine expects it (`127.0.0.1:5000/app`).
    pub fn name(&self) -> String {
        if self.explicit_registry {
            format!("{}/{}", self.registry, self.repository)
        } else {
            self.repository.clone()
        }
    }

    /// `name:tag`.
    pub fn with_tag(&self, tag: &str) -> String {
        format!("{}:{tag}", self.name())
    }

    /// `name@digest`: the reference pinned by digest.
    pub fn with_digest(&self, digest: &str) -> String {
        format!("{}@{digest}", self.name())
    }

    /// The key under which the Docker config file stores this registry's credentials.
    pub fn config_key(&self) -> String {
        if self.registry == DEFAULT_REGISTRY {
            "https://index.docker.io/v1/".to_owned()
        } else {
            self.registry.clone()
        }
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Docker's tag grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn valid_tag(t: &str) -> bool {
    let mut chars = t.chars();
    t.len() <= 128
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Turns any string into a valid tag: invalid characters become `-`, cut to 128.
fn sanitize_tag(s: &str) -> Option<String> {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    while out.starts_with(['.', '-']) {
        out.remove(0);
    }
    out.truncate(128);
    (!out.is_empty()).then_some(out)
}

/// What the tags of a release image are made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagPolicy {
    /// The upstream release, e.g. `1.32.0` (`+build` becomes `-build`).
    pub release: Option<String>,
    /// The git commit of the app tree (shortened to 12 characters).
    pub commit: Option<String>,
    /// Whether the tree had uncommitted changes: the commit tag gets [`TagPolicy::dirty_suffix`].
    pub dirty: bool,
    /// The suffix for a dirty tree; `-dirty` when empty.
    pub dirty_suffix: String,
    /// Any further tags, used as given (sanitized).
    pub extra: Vec<String>,
}

/// The tags of a policy, in order (release, commit, extra), without duplicates.
pub fn tag_policy(policy: &TagPolicy) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    let mut push = |t: Option<String>| {
        if let Some(t) = t
            && !tags.contains(&t)
        {
            tags.push(t);
        }
    };
    push(policy.release.as_deref().and_then(sanitize_tag));
    if let Some(commit) = &policy.commit {
        let short: String = commit.chars().take(12).collect();
        let suffix = if policy.dirty_suffix.is_empty() {
            "-dirty"
        } else {
            policy.dirty_suffix.as_str()
        };
        let tag = if policy.dirty {
            format!("{short}{suffix}")
        } else {
            short
        };
        push(sanitize_tag(&tag));
    }
    for extra in &policy.extra {
        push(sanitize_tag(extra));
    }
    tags
}

/// The OCI annotations Uplift always puts on an image: source revision, the upstream release
/// and the creation time (RFC 3339, UTC).
pub fn oci_labels(
    revision: Option<&str>,
    release: Option<&str>,
    created: SystemTime,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    if let Some(r) = revision {
        labels.insert("org.opencontainers.image.revision".into(), r.to_owned());
    }
    if let Some(v) = release {
        labels.insert("org.opencontainers.image.version".into(), v.to_owned());
    }
    let created = time::OffsetDateTime::from(created);
    if let Ok(s) = created.format(&time::format_description::well_known::Rfc3339) {
        labels.insert("org.opencontainers.image.created".into(), s);
    }
    labels
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn parses_references_like_docker() {
        let r = ImageRef::parse("127.0.0.1:5000/team/app:1.2.3").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag.as_deref(), Some("1.2.3"));
        assert_eq!(r.name(), "127.0.0.1:5000/team/app");
        assert_eq!(r.config_key(), "127.0.0.1:5000");

        let r = ImageRef::parse("app").unwrap();
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.name(), "app");
        assert_eq!(r.config_key(), "https://index.docker.io/v1/");

        let r = ImageRef::parse("localhost/app@sha256:abc").unwrap();
        assert_eq!(r.registry, "localhost");
        assert_eq!(r.digest.as_deref(), Some("sha256:abc"));
        assert_eq!(r.to_string(), "localhost/app@sha256:abc");
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "a b",
            "App",
            "app:",
            "app:-x",
            "a//b",
            "app@sha256",
            "app@:x",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn tag_policy_release_commit_dirty_extra() {
        let p = TagPolicy {
            release: Some("1.32.0+build.1".into()),
            commit: Some("0123456789abcdef0123".into()),
            dirty: true,
            dirty_suffix: String::new(),
            extra: vec!["latest".into(), "1.32.0-build.1".into(), "feat/x".into()],
        };
        assert_eq!(
            tag_policy(&p),
            vec!["1.32.0-build.1", "0123456789ab-dirty", "latest", "feat-x"]
        );
        let clean = TagPolicy {
            commit: Some("abc".into()),
            ..TagPolicy::default()
        };
        assert_eq!(tag_policy(&clean), vec!["abc"]);
    }

    #[test]
    fn oci_labels_are_rfc3339() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400);
        let l = oci_labels(Some("abc"), Some("1.0.0"), t);
        assert_eq!(
            l["org.opencontainers.image.created"],
            "1970-01-02T00:00:00Z"
        );
        assert_eq!(l["org.opencontainers.image.revision"], "abc");
        assert_eq!(l["org.opencontainers.image.version"], "1.0.0");
    }
}
