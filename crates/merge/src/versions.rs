//! Values that name a version of one thing: when both sides changed one, the higher is kept.
//!
//! Each reader splits a value into what it names (the identity: a package manager, an image and
//! its variant, a release file's folder and name) and a version. Two changed values are settled
//! only when both read, name the same thing, and their versions differ; then the higher wins and
//! the plan says which, like dependency ranges do. Anything else stays a conflict.

use semver::Version;

/// A value split into what it names and the version it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Versioned {
    identity: String,
    version: Version,
}

/// The value kept, and the plan's words for the decision.
pub(crate) struct Kept<'a> {
    pub(crate) value: &'a str,
    pub(crate) decision: String,
}

/// The higher of two versions of the same thing (`what` names the setting in the plan); `None`
/// when a value does not read, the names differ, or the versions are equal.
pub(crate) fn keep_higher<'a>(
    what: &str,
    ours: &'a str,
    theirs: &'a str,
    read: impl Fn(&str) -> Option<Versioned>,
) -> Option<Kept<'a>> {
    let (o, t) = (read(ours)?, read(theirs)?);
    if o.identity != t.identity {
        return None;
    }
    let (value, other, whose) = match t.version.cmp_precedence(&o.version) {
        std::cmp::Ordering::Greater => (theirs, ours, "upstream's"),
        std::cmp::Ordering::Less => (ours, theirs, "your"),
        std::cmp::Ordering::Equal => return None,
    };
    Some(Kept {
        value,
        decision: format!("{what}: kept {whose} \"{value}\" (higher than \"{other}\")"),
    })
}

/// `1`, `1.2`, `1.2.3`, `1.2.3-rc.1`: missing parts are zero.
fn loose_version(text: &str) -> Option<Version> {
    if let Ok(version) = Version::parse(text) {
        return Some(version);
    }
    let parts: Vec<&str> = text.split('.').collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    let mut numbers = [0u64; 3];
    for (number, part) in numbers.iter_mut().zip(&parts) {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *number = part.parse().ok()?;
    }
    Some(Version::new(numbers[0], numbers[1], numbers[2]))
}

/// The lowest version a range admits (`^1.2.3`, `~1.2.3`, `>=1.2.3`, `1.2.3`, `1.2.x`, `20 || 22`).
pub(crate) fn lower_bound(range: &str) -> Option<Version> {
    let first = range.split("||").next()?.split_whitespace().next()?;
    let bare = first.trim_start_matches(['^', '~', '>', '=', 'v']);
    let parts: Vec<&str> = bare.split(['.', '-', '+']).take(3).collect();
    let number = |i: usize| -> Option<u64> {
        match parts.get(i) {
            None | Some(&"x") | Some(&"X") | Some(&"*") => Some(0),
            Some(part) => part.parse().ok(),
        }
    };
    if bare.contains('-') {
        return Version::parse(bare).ok();
    }
    Some(Version::new(number(0)?, number(1)?, number(2)?))
}

/// A version range (`engines.node`): every range ranks by its lower bound.
pub(crate) fn range(value: &str) -> Option<Versioned> {
    Some(Versioned {
        identity: String::new(),
        version: lower_bound(value)?,
    })
}

/// `packageManager` in package.json: `yarn@4.5.0`, maybe with `+sha512.…`.
pub(crate) fn package_manager(value: &str) -> Option<Versioned> {
    let (name, version) = value.rsplit_once('@')?;
    if name.is_empty() {
        return None;
    }
    let version = version.split('+').next()?;
    Some(Versioned {
        identity: name.to_string(),
        version: loose_version(version)?,
    })
}

/// A release file's path (`yarnPath: .yarn/releases/yarn-4.5.0.cjs`), quoted or not.
pub(crate) fn release_path(value: &str) -> Option<Versioned> {
    let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'');
    let unquoted = match quote {
        Some(q) => value.strip_prefix(q)?.strip_suffix(q)?,
        None => value,
    };
    let (folder, file) = unquoted.rsplit_once('/').unwrap_or(("", unquoted));
    let (stem, extension) = file.rsplit_once('.')?;
    if !matches!(extension, "cjs" | "js" | "mjs") {
        return None;
    }
    // `yarn-4.5.0`, `yarn-4.0.0-rc.42`: the version starts at the first `-` before a digit.
    let at = stem
        .match_indices('-')
        .map(|(i, _)| i)
        .find(|&i| stem[i + 1..].starts_with(|c: char| c.is_ascii_digit()))?;
    Some(Versioned {
        identity: format!("{quote:?} {folder}/{}-.{extension}", &stem[..at]),
        version: loose_version(&stem[at + 1..])?,
    })
}

/// Two paths of one release file at different versions (`.yarn/releases/yarn-4.4.1.cjs` and
/// `…/yarn-4.13.0.cjs`): upstream replaced a release, it did not rename a file the app owns.
pub(crate) fn release_files_of_one_thing(from: &str, to: &str) -> bool {
    match (release_path(from), release_path(to)) {
        (Some(from), Some(to)) => from.identity == to.identity && from.version != to.version,
        _ => false,
    }
}

/// A Dockerfile `FROM [--flag…] image:tag [AS name]` whose tag starts with a version
/// (`node:20-bookworm-slim`): the identity is everything but that version, so `-bookworm-slim`
/// against `-alpine` are different things. Digests and tags without a version do not read.
pub(crate) fn docker_from(line: &str) -> Option<Versioned> {
    let mut words = line.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("FROM") {
        return None;
    }
    let mut identity = String::new();
    let mut version = None;
    for word in words {
        if version.is_some() || word.starts_with("--") {
            identity.push_str(word);
            identity.push(' ');
            continue;
        }
        if word.contains('@') {
            return None;
        }
        // The tag follows the last `:` after the last `/` (a registry may have a port).
        let name_start = word.rfind('/').map_or(0, |i| i + 1);
        let colon = name_start + word[name_start..].find(':')?;
        let (image, tag) = (&word[..colon], &word[colon + 1..]);
        let end = tag
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(tag.len());
        let number = tag[..end].trim_end_matches('.');
        if number.is_empty() {
            return None;
        }
        identity.push_str(&format!("{image}:<version>{} ", &tag[number.len()..]));
        version = Some(loose_version(number)?);
    }
    Some(Versioned {
        identity,
        version: version?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn kept(ours: &str, theirs: &str, read: impl Fn(&str) -> Option<Versioned>) -> Option<String> {
        keep_higher("x", ours, theirs, read).map(|k| k.value.to_string())
    }

    #[test]
    fn package_managers_compare_as_versions_not_text() {
        assert_eq!(
            kept("yarn@4.5.0", "yarn@4.13.0", package_manager).as_deref(),
            Some("yarn@4.13.0")
        );
        assert_eq!(
            kept("yarn@4.13.0+sha512.ab", "yarn@4.5.0", package_manager).as_deref(),
            Some("yarn@4.13.0+sha512.ab")
        );
        assert_eq!(kept("pnpm@9.0.0", "yarn@4.13.0", package_manager), None);
        assert_eq!(
            kept(
                "yarn@4.5.0+sha512.a",
                "yarn@4.5.0+sha512.b",
                package_manager
            ),
            None
        );
    }

    #[test]
    fn release_paths_name_the_same_file_only_with_the_same_folder_and_name() {
        assert_eq!(
            kept(
                ".yarn/releases/yarn-4.5.0.cjs",
                ".yarn/releases/yarn-4.13.0.cjs",
                release_path
            )
            .as_deref(),
            Some(".yarn/releases/yarn-4.13.0.cjs")
        );
        assert_eq!(
            kept(
                ".yarn/releases/yarn-4.0.0-rc.42.cjs",
                ".yarn/releases/yarn-4.0.0.cjs",
                release_path
            )
            .as_deref(),
            Some(".yarn/releases/yarn-4.0.0.cjs")
        );
        assert_eq!(
            kept(
                ".yarn/releases/yarn-4.5.0.cjs",
                "tools/yarn-4.13.0.cjs",
                release_path
            ),
            None
        );
        assert_eq!(
            kept("\"a/yarn-4.5.0.cjs\"", "a/yarn-4.13.0.cjs", release_path),
            None
        );
    }

    #[test]
    fn release_files_of_one_tool_at_two_versions_are_not_a_rename() {
        assert!(release_files_of_one_thing(
            ".yarn/releases/yarn-4.4.1.cjs",
            ".yarn/releases/yarn-4.13.0.cjs"
        ));
        assert!(!release_files_of_one_thing(
            "a/yarn-4.4.1.cjs",
            "b/yarn-4.13.0.cjs"
        ));
        assert!(!release_files_of_one_thing("src/index.ts", "src/main.ts"));
    }

    #[test]
    fn docker_images_compare_within_one_image_and_variant() {
        assert_eq!(
            kept(
                "FROM node:20-bookworm-slim",
                "FROM node:22-bookworm-slim",
                docker_from
            )
            .as_deref(),
            Some("FROM node:22-bookworm-slim")
        );
        assert_eq!(
            kept(
                "FROM --platform=linux/amd64 localhost:5000/node:22.1 AS build",
                "FROM --platform=linux/amd64 localhost:5000/node:20.18.0 AS build",
                docker_from
            )
            .as_deref(),
            Some("FROM --platform=linux/amd64 localhost:5000/node:22.1 AS build")
        );
        for (ours, theirs) in [
            ("FROM node:20-bookworm-slim", "FROM node:22-alpine"),
            ("FROM node:20", "FROM deno:22"),
            ("FROM node:20 AS build", "FROM node:22 AS run"),
            ("FROM node:lts", "FROM node:22"),
            ("FROM node:20@sha256:ab", "FROM node:22"),
            ("FROM node", "FROM node:22"),
        ] {
            assert_eq!(kept(ours, theirs, docker_from), None, "{ours} / {theirs}");
        }
    }

    #[test]
    fn ranges_rank_by_their_lower_bound() {
        assert_eq!(
            kept("20 || 22", "22 || 24", range).as_deref(),
            Some("22 || 24")
        );
        assert_eq!(lower_bound("^1.2.3").unwrap().to_string(), "1.2.3");
        assert_eq!(lower_bound(">=2.0.0 <3").unwrap().to_string(), "2.0.0");
        assert_eq!(lower_bound("1.x").unwrap().to_string(), "1.0.0");
        assert!(lower_bound("latest").is_none());
    }
}
