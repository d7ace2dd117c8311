//! The file in which the app records the release it follows.

use std::path::{Path, PathBuf};

use uplift_tree::{FileEntry, RelPath};

use crate::Error;

/// A JSON file and the top-level string field holding the release (`backstage.json`, `version`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub file: String,
    pub field: String,
}

impl Default for Marker {
    fn default() -> Self {
        Self {
            file: "backstage.json".to_string(),
            field: "version".to_string(),
        }
    }
}

impl Marker {
    pub fn rel_path(&self) -> Result<RelPath, Error> {
        Ok(RelPath::new(self.file.clone())?)
    }

    fn native(&self, app: &Path) -> Result<PathBuf, Error> {
        Ok(self.rel_path()?.to_native(app))
    }

    /// The release recorded in the app.
    pub fn read(&self, app: &Path) -> Result<String, Error> {
        let path = self.native(app)?;
        let Some(entry) = uplift_tree::read_entry(app, &self.rel_path()?)? else {
            return Err(Error::NoMarker { path });
        };
        self.parse(&path, &entry)
    }

    /// The release recorded in a marker file's content (`path` names it in errors).
    pub fn parse(&self, path: &Path, entry: &FileEntry) -> Result<String, Error> {
        let path = path.to_path_buf();
        let text = std::str::from_utf8(&entry.content).map_err(|_| Error::Marker {
            path: path.clone(),
            message: "it is not UTF-8 text".into(),
        })?;
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|error| Error::MarkerSyntax {
                path: path.clone(),
                line: error.line(),
                column: error.column(),
                message: error
                    .to_string()
                    .split(" at line ")
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            })?;
        match value.get(&self.field) {
            Some(serde_json::Value::String(version)) => Ok(version.clone()),
            Some(other) => Err(Error::Marker {
                path,
                message: format!("field `{}` is not a string: {other}", self.field),
            }),
            None => Err(Error::Marker {
                path,
                message: format!("it has no field `{}`", self.field),
            }),
        }
    }

    /// `entry` (the marker's content) with the field set to `version`, keeping its formatting:
    /// only the value's text changes. `None` when it already says `version` or is not JSON.
    pub fn updated(&self, entry: &FileEntry, version: &str) -> Option<FileEntry> {
        let text = entry.text()?;
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        let current = value.get(&self.field)?.as_str()?;
        if current == version {
            return None;
        }
        let key = serde_json::to_string(&self.field).ok()?;
        let old = serde_json::to_string(current).ok()?;
        let new = serde_json::to_string(version).ok()?;
        let key_at = text.find(&key)?;
        let after_key = &text[key_at + key.len()..];
        let colon = after_key.find(':')?;
        let value_at = key_at + key.len() + colon + 1;
        let rest = &text[value_at..];
        let offset = rest.len() - rest.trim_start().len();
        if !rest.trim_start().starts_with(&old) {
            return None;
        }
        let start = value_at + offset;
        let updated = format!("{}{}{}", &text[..start], new, &text[start + old.len()..]);
        Some(FileEntry::new(entry.mode, updated.into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_and_updates_keeping_formatting() {
        let app = tempfile::tempdir().unwrap();
        std::fs::write(
            app.path().join("backstage.json"),
            "{\n    \"version\" :  \"1.0.0\"\n}\n",
        )
        .unwrap();
        let marker = Marker::default();
        assert_eq!(marker.read(app.path()).unwrap(), "1.0.0");
        let entry = FileEntry::regular(std::fs::read(app.path().join("backstage.json")).unwrap());
        let updated = marker.updated(&entry, "1.2.0").unwrap();
        assert_eq!(&*updated.content, b"{\n    \"version\" :  \"1.2.0\"\n}\n");
        assert!(marker.updated(&updated, "1.2.0").is_none());
    }

    #[test]
    fn a_broken_marker_names_line_and_column() {
        let app = tempfile::tempdir().unwrap();
        std::fs::write(
            app.path().join("backstage.json"),
            "{\n  \"version\": 1.0.0\"\n}\n",
        )
        .unwrap();
        let error = Marker::default().read(app.path()).unwrap_err().to_string();
        assert!(error.contains("backstage.json:2:"), "{error}");
        let missing = Marker::default()
            .read(tempfile::tempdir().unwrap().path())
            .unwrap_err();
        assert!(matches!(missing, Error::NoMarker { .. }));
    }
}
