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

/// A release line: Backstage's `main` (stable releases) and `next` (weekly pre-releases such as
/// `1.54.0-next.3`). A release belongs to `next` when it is a pre-release, else to `main`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum ReleaseLine {
    #[default]
    Main,
    Next,
}

impl ReleaseLine {
    pub const ALL: [ReleaseLine; 2] = [ReleaseLine::Main, ReleaseLine::Next];

    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseLine::Main => "main",
            ReleaseLine::Next => "next",
        }
    }

    /// `main` or `next`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "main" => Some(ReleaseLine::Main),
            "next" => Some(ReleaseLine::Next),
            _ => None,
        }
    }

    /// The line `version` belongs to: `next` for a pre-release, else `main`.
    pub fn of(version: &Version) -> Self {
        if version.pre.is_empty() {
            ReleaseLine::Main
        } else {
            ReleaseLine::Next
        }
    }
}

impl fmt::Display for ReleaseLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn insert_sorted(list: &mut Vec<Release>, release: &Release) {
    if !list.iter().any(|r| r.version == release.version) {
        let at = list.partition_point(|r| r.version < release.version);
        list.insert(at, release.clone());
    }
}

/// The releases of one source, ordered by semver (lowest first; `1.54.0-next.3` <
/// `1.54.0-next.10` < `1.54.0`), and the release line an upgrade follows.
///
/// Two views: [`all`](Self::all) lists the releases an upgrade may target (pre-releases only
/// with `include_pre` or on the `next` line); [`resolve_current`](Self::resolve_current) finds
/// any release, so an app already on a pre-release is always found.
#[derive(Debug, Clone)]
pub struct ReleaseList {
    source_name: String,
    /// The releases an upgrade may target.
    releases: Vec<Release>,
    /// Every release the source has, pre-releases included.
    everything: Vec<Release>,
    line: ReleaseLine,
    /// The newest release of each line as the source itself says (Backstage's versions site).
    line_latest: Vec<(ReleaseLine, Release)>,
}

impl ReleaseList {
    /// Orders `releases`; pre-releases are listed only when `include_pre`. Duplicated versions
    /// (`v1.2.3` and `1.2.3` both tagged) are kept once. The line is `main`.
    pub fn new(
        source_name: impl Into<String>,
        mut releases: Vec<Release>,
        include_pre: bool,
    ) -> Self {
        releases.sort_by(|a, b| a.version.cmp(&b.version).then_with(|| a.name.cmp(&b.name)));
        releases.dedup_by(|a, b| a.version == b.version);
        let everything = releases.clone();
        releases.retain(|r| include_pre || r.version.pre.is_empty());
        Self {
            source_name: source_name.into(),
            releases,
            everything,
            line: ReleaseLine::Main,
            line_latest: Vec::new(),
        }
    }

    /// Follows `line`: on `next`, pre-releases are listed and `latest` is the newest release of
    /// any kind.
    pub fn with_line(mut self, line: ReleaseLine) -> Self {
        self.line = line;
        if line == ReleaseLine::Next {
            self.releases = self.everything.clone();
        }
        self
    }

    /// Records the newest release of `line` as the source says it (it wins over the computed
    /// one); a release the listing lacked is added.
    pub fn with_line_latest(mut self, line: ReleaseLine, release: Release) -> Self {
        insert_sorted(&mut self.everything, &release);
        if self.line == ReleaseLine::Next || release.version.pre.is_empty() {
            insert_sorted(&mut self.releases, &release);
        }
        self.line_latest.retain(|(l, _)| *l != line);
        self.line_latest.push((line, release));
        self
    }

    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// The release line followed.
    pub fn line(&self) -> ReleaseLine {
        self.line
    }

    /// The releases an upgrade may target.
    pub fn all(&self) -> &[Release] {
        &self.releases
    }

    /// Every release, pre-releases included whatever the options.
    pub fn everything(&self) -> &[Release] {
        &self.everything
    }

    /// The newest release of the line followed: see [`latest_of`](Self::latest_of).
    pub fn latest(&self) -> Result<&Release, Error> {
        self.latest_of(self.line)
    }

    /// The newest release of `line`: the source's own word when it has one (Backstage's
    /// `v1/tags/<line>`); else on `main` the highest stable release, on `next` the highest
    /// release of any kind (as `backstage-cli versions:bump --release next` picks the newer of
    /// the two lines).
    pub fn latest_of(&self, line: ReleaseLine) -> Result<&Release, Error> {
        if let Some((_, release)) = self.line_latest.iter().find(|(l, _)| *l == line) {
            return Ok(release);
        }
        self.everything
            .iter()
            .rev()
            .find(|r| line == ReleaseLine::Next || r.version.pre.is_empty())
            .ok_or_else(|| Error::NoReleases {
                source_name: self.source_name.clone(),
                line,
            })
    }

    /// Resolves `latest` (of the line), `1.2.3` or `v1.2.3` among the releases an upgrade may
    /// target.
    pub fn resolve(&self, wanted: &str) -> Result<&Release, Error> {
        if wanted == "latest" {
            return self.latest();
        }
        self.find_in(&self.releases, wanted)
    }

    /// Resolves the app's own release: any release, pre-release or not, whatever the options
    /// (it is where the app is, not a choice); `latest` as [`resolve`](Self::resolve).
    pub fn resolve_current(&self, wanted: &str) -> Result<&Release, Error> {
        if wanted == "latest" {
            return self.latest();
        }
        self.find_in(&self.everything, wanted)
    }

    fn find_in<'a>(&'a self, list: &'a [Release], wanted: &str) -> Result<&'a Release, Error> {
        let version = parse_version(wanted);
        let found = version
            .as_ref()
            .and_then(|version| list.iter().find(|r| r.version == *version));
        let hidden = version
            .as_ref()
            .is_some_and(|version| self.everything.iter().any(|r| r.version == *version));
        if found.is_none() && hidden {
            return Err(Error::HiddenPreRelease {
                wanted: wanted.to_string(),
                source_name: self.source_name.clone(),
            });
        }
        found.ok_or_else(|| Error::UnknownRelease {
            wanted: wanted.to_string(),
            source_name: self.source_name.clone(),
            nearby: self.nearby(wanted),
            pre_release: version.is_some_and(|v| !v.pre.is_empty()),
        })
    }

    /// The releases after `from` up to and including `to`, in order (for stepwise upgrades).
    pub fn steps(&self, from: &Release, to: &Release) -> Vec<&Release> {
        self.releases
            .iter()
            .filter(|r| r.version > from.version && r.version <= to.version)
            .collect()
    }

    /// Releases near `wanted`; pre-releases are shown when `wanted` is one.
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
        let list = if version.pre.is_empty() {
            &self.releases
        } else {
            &self.everything
        };
        let index = list.partition_point(|r| r.version < version);
        let start = index.saturating_sub(2);
        let end = (index + 2).min(list.len());
        list[start..end]
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
        assert!(list.resolve_current("1.2.0").is_err());
        assert_eq!(
            error,
            "unknown release \"1.2.0\" in src (releases nearby: 1.0.0, 1.1.0, 1.3.0)"
        );
        assert!(list.resolve("v1.1.0").is_ok());
    }

    #[test]
    fn pre_releases_order_by_semver() {
        let list = ReleaseList::new(
            "src",
            vec![
                release("1.54.0"),
                release("1.54.0-next.10"),
                release("1.53.0"),
                release("1.54.0-next.3"),
                release("1.54.0-next.2"),
            ],
            true,
        );
        let names: Vec<_> = list.all().iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "1.53.0",
                "1.54.0-next.2",
                "1.54.0-next.3",
                "1.54.0-next.10",
                "1.54.0"
            ]
        );
    }

    proptest::proptest! {
        /// Numeric pre-release identifiers compare as numbers, and every pre-release of a
        /// version comes before the version itself.
        #[test]
        fn next_releases_order_numerically(a in 0u64..1000, b in 0u64..1000) {
            let left = parse_version(&format!("1.54.0-next.{a}")).unwrap();
            let right = parse_version(&format!("1.54.0-next.{b}")).unwrap();
            proptest::prop_assert_eq!(left.cmp(&right), a.cmp(&b));
            proptest::prop_assert!(left < parse_version("1.54.0").unwrap());
            proptest::prop_assert!(left > parse_version("1.53.9").unwrap());
            proptest::prop_assert_eq!(ReleaseLine::of(&left), ReleaseLine::Next);
        }
    }

    #[test]
    fn the_line_decides_latest_and_the_app_release_always_resolves() {
        let releases = vec![
            release("1.53.0"),
            release("1.54.0-next.1"),
            release("1.54.0-next.3"),
        ];
        let main = ReleaseList::new("src", releases.clone(), false);
        assert_eq!(main.line(), ReleaseLine::Main);
        assert_eq!(main.latest().unwrap().name, "1.53.0");
        assert_eq!(main.all().len(), 1);
        // The app's own release resolves, hidden or not; a target does not.
        assert_eq!(
            main.resolve_current("1.54.0-next.1").unwrap().name,
            "1.54.0-next.1"
        );
        let error = main.resolve("1.54.0-next.1").unwrap_err();
        assert!(
            matches!(&error, Error::HiddenPreRelease { wanted, .. } if wanted == "1.54.0-next.1"),
            "{error:?}"
        );
        let error = main.resolve("1.54.0-next.2").unwrap_err();
        assert!(
            matches!(&error, Error::UnknownRelease { pre_release: true, nearby, .. }
                if nearby.contains(&"1.54.0-next.1".to_string())),
            "{error:?}"
        );
        assert!(matches!(
            main.resolve("1.9.9").unwrap_err(),
            Error::UnknownRelease {
                pre_release: false,
                ..
            }
        ));

        let next = ReleaseList::new("src", releases.clone(), false).with_line(ReleaseLine::Next);
        assert_eq!(next.latest().unwrap().name, "1.54.0-next.3");
        assert_eq!(next.latest_of(ReleaseLine::Main).unwrap().name, "1.53.0");
        assert_eq!(next.all().len(), 3);
        assert_eq!(next.resolve("1.54.0-next.1").unwrap().name, "1.54.0-next.1");

        // Once 1.54.0 is out, it is the newest of `next` too (the newer of the two lines).
        let mut with_stable = releases;
        with_stable.push(release("1.54.0"));
        let next = ReleaseList::new("src", with_stable, false).with_line(ReleaseLine::Next);
        assert_eq!(next.latest().unwrap().name, "1.54.0");
    }

    #[test]
    fn the_source_word_on_a_line_wins_and_is_listed() {
        // The versions site says main is 1.52.1 although 1.53.0 is tagged (not published yet),
        // and next is a release the listing lacked.
        let list = ReleaseList::new("src", vec![release("1.52.1"), release("1.53.0")], false)
            .with_line_latest(ReleaseLine::Main, release("1.52.1"))
            .with_line_latest(ReleaseLine::Next, release("1.54.0-next.0"));
        assert_eq!(list.latest().unwrap().name, "1.52.1");
        assert_eq!(
            list.latest_of(ReleaseLine::Next).unwrap().name,
            "1.54.0-next.0"
        );
        assert_eq!(list.all().len(), 2, "a hidden pre-release stays hidden");
        assert!(list.resolve_current("1.54.0-next.0").is_ok());
        let next = ReleaseList::new("src", vec![release("1.53.0")], false)
            .with_line(ReleaseLine::Next)
            .with_line_latest(ReleaseLine::Next, release("1.54.0-next.0"));
        assert_eq!(next.latest().unwrap().name, "1.54.0-next.0");
        assert_eq!(next.all().len(), 2);
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
