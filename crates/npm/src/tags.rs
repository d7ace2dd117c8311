//! Backstage's releases, listed from the tags of the backstage/backstage repository.
//!
//! The versions site is static (one folder per release, no listing), so the list comes from
//! the repository Backstage tags every release in (`v1.53.0`, `v1.54.0-next.0`: the tag the
//! release workflow checks out to build that release's manifest). Only the refs are read, by
//! `git ls-remote` (libgit2 is built without TLS; git speaks HTTPS and honours the user's
//! proxy and credential settings): no object is fetched.

use uplift_template::Release;

use crate::Error;

/// The releases tagged `vX.Y.Z[-PRE]` in the repository at `location` (a URL or a path).
pub fn release_tags(location: &str) -> Result<Vec<Release>, Error> {
    let error = |detail: String| Error::ReleaseTags {
        location: location.to_string(),
        detail,
    };
    let output = std::process::Command::new("git")
        .args(["ls-remote", "--tags", "--refs", "--", location])
        // Never wait for a password on a terminal: a pipeline has nobody to type it.
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|e| error(format!("could not run git: {e}")))?;
    if !output.status.success() {
        return Err(error(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ));
    }
    let listing = String::from_utf8_lossy(&output.stdout);
    let mut releases: Vec<Release> = listing
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter_map(|(_, name)| release_of_ref(name))
        .collect();
    releases.sort_by(|a, b| a.version.cmp(&b.version));
    releases.dedup_by(|a, b| a.version == b.version);
    tracing::debug!(location, releases = releases.len(), "listed release tags");
    Ok(releases)
}

/// `refs/tags/v1.53.0` (or its peeled `^{}` form) → release `1.53.0`; other refs → `None`.
fn release_of_ref(name: &str) -> Option<Release> {
    let tag = name.strip_prefix("refs/tags/v")?;
    let tag = tag.strip_suffix("^{}").unwrap_or(tag);
    let version = semver::Version::parse(tag).ok()?;
    Some(Release {
        name: version.to_string(),
        version,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_release_tags_count() {
        let name = |r: &str| release_of_ref(r).map(|r| r.name);
        assert_eq!(name("refs/tags/v1.53.0").as_deref(), Some("1.53.0"));
        assert_eq!(
            name("refs/tags/v1.54.0-next.0^{}").as_deref(),
            Some("1.54.0-next.0")
        );
        assert_eq!(name("refs/heads/master"), None);
        assert_eq!(name("refs/pull/123/head"), None);
        assert_eq!(name("refs/tags/release-2020-03-01"), None);
        assert_eq!(name("refs/tags/v1.2"), None);
    }
}
