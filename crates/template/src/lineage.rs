//! Which template folder an app follows, release by release.

use semver::Version;

use crate::Error;
use crate::release::parse_version;

/// Template folders by release: `default-app`, then `1.50.0=legacy-app` from 1.50.0 on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lineage {
    /// (from release, folder); `None` means from the first release. Sorted by release.
    entries: Vec<(Option<Version>, String)>,
}

impl Lineage {
    /// Parses entries of the form `SUBDIR` or `VERSION=SUBDIR`.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, Error> {
        let mut parsed = Vec::new();
        for entry in entries {
            let entry = entry.as_ref();
            let invalid = || Error::Lineage {
                entry: entry.to_string(),
            };
            match entry.split_once('=') {
                Some((version, subdir)) => {
                    let version = parse_version(version).ok_or_else(invalid)?;
                    if subdir.is_empty() {
                        return Err(invalid());
                    }
                    parsed.push((Some(version), subdir.to_string()));
                }
                None if !entry.is_empty() => parsed.push((None, entry.to_string())),
                None => return Err(invalid()),
            }
        }
        parsed.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Self { entries: parsed })
    }

    /// The folder to use at `version`; `None` when the template is the release root.
    pub fn subdir_at(&self, version: &Version) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(from, _)| from.as_ref().is_none_or(|from| from <= version))
            .map(|(_, subdir)| subdir.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn switches_folder_from_a_release_on() {
        let lineage = Lineage::parse(&["default-app", "1.50.0=legacy-app"]).unwrap();
        let at = |v: &str| {
            lineage
                .subdir_at(&Version::parse(v).unwrap())
                .map(str::to_string)
        };
        assert_eq!(at("1.49.2").as_deref(), Some("default-app"));
        assert_eq!(at("1.50.0").as_deref(), Some("legacy-app"));
        assert_eq!(Lineage::default().subdir_at(&Version::new(1, 0, 0)), None);
        assert!(Lineage::parse(&["x=y"]).is_err());
        // A folder introduced on a pre-release applies from that pre-release on, by semver.
        let lineage = Lineage::parse(&["default-app", "1.50.0-next.1=legacy-app"]).unwrap();
        let at = |v: &str| lineage.subdir_at(&Version::parse(v).unwrap());
        assert_eq!(at("1.49.0"), Some("default-app"));
        assert_eq!(at("1.50.0-next.0"), Some("default-app"));
        assert_eq!(at("1.50.0-next.1"), Some("legacy-app"));
        assert_eq!(at("1.50.0-next.10"), Some("legacy-app"));
        assert_eq!(at("1.50.0"), Some("legacy-app"));
        assert!(Lineage::parse(&["1.0.0="]).is_err());
    }
}
