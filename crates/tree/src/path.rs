//! Validated relative paths.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::Error;

/// A relative, `/`-separated path with no empty, `.` or `..` component.
///
/// Once built, a `RelPath` cannot name anything outside the root it is joined to (symlinks aside,
/// which [`crate::read`] checks separately). Ordering is byte order of the string, which is the
/// order git uses for flat paths and keeps plans stable.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath(String);

impl RelPath {
    /// Validates `path`. Backslashes are rejected rather than guessed at.
    pub fn new(path: impl Into<String>) -> Result<Self, Error> {
        let path = path.into();
        let invalid = |reason: &'static str| Error::InvalidPath {
            path: path.clone(),
            reason,
        };
        if path.is_empty() {
            return Err(invalid("it is empty"));
        }
        if path.starts_with('/') {
            return Err(invalid("it is absolute"));
        }
        if path.contains('\\') {
            return Err(invalid("it contains a backslash"));
        }
        if path.contains('\0') {
            return Err(invalid("it contains a NUL byte"));
        }
        for component in path.split('/') {
            match component {
                "" => return Err(invalid("it has an empty component")),
                "." => return Err(invalid("it has a `.` component")),
                ".." => return Err(invalid("it escapes its root through `..`")),
                _ => {}
            }
        }
        Ok(Self(path))
    }

    /// Builds a `RelPath` from a native relative path (as found while walking a folder).
    pub fn from_native(path: &Path) -> Result<Self, Error> {
        let mut parts = Vec::new();
        for component in path.components() {
            match component {
                std::path::Component::Normal(part) => match part.to_str() {
                    Some(part) => parts.push(part),
                    None => {
                        return Err(Error::InvalidPath {
                            path: path.display().to_string(),
                            reason: "it is not valid UTF-8",
                        });
                    }
                },
                _ => {
                    return Err(Error::InvalidPath {
                        path: path.display().to_string(),
                        reason: "it is not a plain relative path",
                    });
                }
            }
        }
        Self::new(parts.join("/"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The native path of this path below `root`.
    pub fn to_native(&self, root: &Path) -> PathBuf {
        let mut out = root.to_path_buf();
        out.extend(self.0.split('/'));
        out
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The parent folder, or `None` at the top level.
    pub fn parent(&self) -> Option<RelPath> {
        self.0
            .rsplit_once('/')
            .map(|(parent, _)| RelPath(parent.to_string()))
    }

    /// The path with `suffix` appended to its file name (e.g. `PATH.upstream`).
    pub fn with_suffix(&self, suffix: &str) -> RelPath {
        RelPath(format!("{}{suffix}", self.0))
    }

    /// Removes `suffix` from the end of the file name, if present and something remains.
    pub fn strip_suffix(&self, suffix: &str) -> Option<RelPath> {
        let stripped = self.0.strip_suffix(suffix)?;
        if stripped.is_empty() || stripped.ends_with('/') {
            return None;
        }
        Some(RelPath(stripped.to_string()))
    }

    /// The path below `prefix`, if it is inside it.
    pub fn strip_prefix(&self, prefix: &RelPath) -> Option<RelPath> {
        let rest = self.0.strip_prefix(prefix.as_str())?.strip_prefix('/')?;
        Some(RelPath(rest.to_string()))
    }

    /// The components from the top, e.g. `a`, `a/b`, `a/b/c` for `a/b/c`.
    pub fn ancestors_from_top(&self) -> impl Iterator<Item = &str> {
        self.0
            .match_indices('/')
            .map(|(index, _)| &self.0[..index])
            .chain(std::iter::once(self.0.as_str()))
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl serde::Serialize for RelPath {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl TryFrom<&str> for RelPath {
    type Error = Error;
    fn try_from(value: &str) -> Result<Self, Error> {
        RelPath::new(value)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rejects_paths_that_escape() {
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "..",
            "a//b",
            "./a",
            "a/",
            "a\\b",
        ] {
            assert!(RelPath::new(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn accepts_and_navigates_plain_paths() {
        let path = RelPath::new("packages/app/package.json.hbs").unwrap();
        assert_eq!(path.file_name(), "package.json.hbs");
        assert_eq!(path.parent().unwrap().as_str(), "packages/app");
        assert_eq!(
            path.strip_suffix(".hbs").unwrap().as_str(),
            "packages/app/package.json"
        );
        assert_eq!(
            path.ancestors_from_top().collect::<Vec<_>>(),
            ["packages", "packages/app", "packages/app/package.json.hbs"]
        );
        let prefix = RelPath::new("packages").unwrap();
        assert_eq!(
            path.strip_prefix(&prefix).unwrap().as_str(),
            "app/package.json.hbs"
        );
        assert!(
            RelPath::new("packagesX/a")
                .unwrap()
                .strip_prefix(&prefix)
                .is_none()
        );
    }

    #[test]
    fn suffix_never_empties_a_name() {
        assert!(RelPath::new(".hbs").unwrap().strip_suffix(".hbs").is_none());
        assert!(
            RelPath::new("a/.hbs")
                .unwrap()
                .strip_suffix(".hbs")
                .is_none()
        );
    }
}
