//! Releases, their ordering, and tag names.

use std::fmt;

use semver::Version;

use crate::Error;

/// One upstream release: its version and the name the source knows it by (tag or folder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub version: Version,
    pub name: String,
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.version)
    }
}

/// Parses `1.2.3` or `v1.2.3`.
pub fn parse_version(text: &str) -> Option<Version> {
    let text = text.trim();
    let text = text.strip_prefix('v').unwrap_or(text);
    Version::parse(text).ok()
}

/// How tags name releases: a pattern with one `{version}`, e.g. `release-{version}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPattern {
    prefix: String,
    suffix: String,
}

impl TagPattern {
    pub fn parse(pattern: &str) -> Result<Self, Error> {
        let mut parts = pattern.split("{version}");
        match (parts.next(), parts.next(), parts.next()) {
            (Some(prefix), Some(suffix), None) => Ok(Self {
                prefix: prefix.to_string(),
                suffix: suffix.to_string(),
            }),
            _ => Err(Error::TagPattern {
                pattern: pattern.to_string(),
            }),
        }
    }

    /// The version a tag names, if it matches.
    pub fn version_of(&self, tag: &str) -> Option<Version> {
        let inner = tag.strip_prefix(&self.prefix)?.strip_suffix(&self.suffix)?;
        Version::parse(inner).ok()
    }
}

/// The releases of one source, ordered by semver (lowest first).
#[derive(Debug, Clone)]
pub struct ReleaseList {
    source_name: String,
    releases: Vec<Release>,
}

impl ReleaseList {
    /// Orders `releases`; pre-releases are kept only when `include_pre`. Duplicated versions
    /// (`v1.2.3` and `1.2.3` both tagged) are kept once.
    pub fn new(
        source_name: impl Into<String>,
        mut releases: Vec<Release>,
        include_pre: bool,
    ) -> Self {
        releases.retain(|r| include_pre || r.version.pre.is_empty());
        releases.sort_by(|a, b| a.version.cmp(&b.version).then_with(|| a.name.cmp(&b.name)));
        releases.dedup_by(|a, b| a.version == b.version);
        Self {
            source_name: source_name.into(),
            releases,
        }
    }

    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    pub fn all(&self) -> &[Release] {
        &self.releases
    }

    /// The highest stable release.
    pub fn latest(&self) -> Result<&Release, Error> {
        self.releases
            .iter()
            .rev()
            .find(|r| r.version.pre.is_empty())
            .ok_or_else(|| Error::NoReleases {
                source_name: self.source_name.clone(),
            })
    }

    /// Resolves `latest`, `1.2.3` or `v1.2.3`.
    pub fn resolve(&self, wanted: &str) -> Result<&Release, Error> {
        if wanted == "latest" {
            return self.latest();
        }
        let found = parse_version(wanted)
            .and_then(|version| self.releases.iter().find(|r| r.version == version));
        found.ok_or_else(|| Error::UnknownRelease {
            wanted: wanted.to_string(),
            source_name: self.source_name.clone(),
            nearby: self.nearby(wanted),
        })
    }

    /// The releases after `from` up to and including `to`, in order (for stepwise upgrades).
    pub fn steps(&self, from: &Release, to: &Release) -> Vec<&Release> {
        self.releases
            .iter()
            .filter(|r| r.version > from.version && r.version <= to.version)
            .collect()
    }

    fn nearby(&self, wanted: &str) -> Vec<String> {
        let Some(version) = parse_version(wanted) else {
            return self
                .releases
                .iter()
                .rev()
                .take(3)
                .map(|r| r.version.to_string())
                .collect();
        };
        let index = self.releases.partition_point(|r| r.version < version);
        let start = index.saturating_sub(2);
        let end = (index + 2).min(self.releases.len());
        self.releases[start..end]
            .iter()
            .map(|r| r.version.to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn release(v: &str) -> Release {
        Release {
            version: parse_version(v).unwrap(),
            name: v.to_string(),
        }
    }

    #[test]
    fn orders_by_semver_and_hides_pre_releases() {
        let input = vec![
            release("1.10.0"),
            release("1.9.0"),
            release("2.0.0-next.1"),
            release("v1.2.3"),
        ];
        let list = ReleaseList::new("test", input.clone(), false);
        let names: Vec<_> = list.all().iter().map(|r| r.version.to_string()).collect();
        assert_eq!(names, ["1.2.3", "1.9.0", "1.10.0"]);
        assert_eq!(list.latest().unwrap().version.to_string(), "1.10.0");
        let with_pre = ReleaseList::new("test", input, true);
        assert_eq!(with_pre.all().len(), 4);
        assert_eq!(with_pre.latest().unwrap().version.to_string(), "1.10.0");
        assert_eq!(
            with_pre.resolve("2.0.0-next.1").unwrap().name,
            "2.0.0-next.1"
        );
    }

    #[test]
    fn unknown_release_names_nearby_ones() {
        let list = ReleaseList::new(
            "src",
            vec![release("1.0.0"), release("1.1.0"), release("1.3.0")],
            false,
        );
        let error = list.resolve("1.2.0").unwrap_err().to_string();
        assert_eq!(
            error,
            "unknown release \"1.2.0\" in src (releases nearby: 1.0.0, 1.1.0, 1.3.0)"
        );
        assert!(list.resolve("v1.1.0").is_ok());
    }

    #[test]
    fn tag_patterns() {
        let pattern = TagPattern::parse("release-{version}").unwrap();
        assert_eq!(
            pattern.version_of("release-1.2.3").unwrap().to_string(),
            "1.2.3"
        );
        assert!(pattern.version_of("v1.2.3").is_none());
        assert!(TagPattern::parse("no-placeholder").is_err());
    }
}
