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
        let Some(entry) = self.read_entry(app)? else {
            return Err(Error::NoMarker { path });
        };
        self.parse(&path, &entry)
    }

    /// The marker's content; `None` when there is none. A folder or a symlink at its place is
    /// an error saying so (a link would have its update written through it).
    pub fn read_entry(&self, app: &Path) -> Result<Option<FileEntry>, Error> {
        let path = self.native(app)?;
        match std::fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                return Err(Error::Marker {
                    path,
                    message: "it is a symlink; the marker must be a plain file (Uplift \
                              never writes through a link)"
                        .into(),
                });
            }
            Ok(metadata) if metadata.is_dir() => {
                return Err(Error::Marker {
                    path,
                    message: "it is a folder, not a JSON file".into(),
                });
            }
            _ => {}
        }
        Ok(uplift_tree::read_entry(app, &self.rel_path()?)?)
    }

    /// The release recorded in a marker file's content (`path` names it in errors).
    pub fn parse(&self, path: &Path, entry: &FileEntry) -> Result<String, Error> {
        let path = path.to_path_buf();
        let text = self.text(&path, entry)?;
        let value: serde_json::Value = serde_json::from_str(text).map_err(|error| {
            let message = error
                .to_string()
                .split(" at line ")
                .next()
                .unwrap_or_default()
                .to_string();
            Error::MarkerSyntax {
                path: path.clone(),
                line: error.line().max(1),
                // serde_json counts the column of an error at a line's start as 0.
                column: error.column().max(1),
                message,
            }
        })?;
        match value.get(&self.field) {
            Some(serde_json::Value::String(version)) => Ok(version.clone()),
            Some(other) => Err(Error::Marker {
                path,
                message: format!("field `{}` is not a string: {other}", self.field),
            }),
            None if !value.is_object() => Err(Error::Marker {
                path,
                message: format!("it is not a JSON object with a field `{}`", self.field),
            }),
            None => Err(Error::Marker {
                path,
                message: format!("it has no top-level field `{}`", self.field),
            }),
        }
    }

    /// The content as JSON text, with precise errors for what JSON parsers report vaguely.
    fn text<'a>(&self, path: &Path, entry: &'a FileEntry) -> Result<&'a str, Error> {
        let syntax = |message: &str| Error::MarkerSyntax {
            path: path.to_path_buf(),
            line: 1,
            column: 1,
            message: message.to_string(),
        };
        if entry.mode == uplift_tree::FileMode::Symlink {
            return Err(Error::Marker {
                path: path.to_path_buf(),
                message: "it is a symlink; the marker must be a plain file".into(),
            });
        }
        let text = std::str::from_utf8(&entry.content).map_err(|error| Error::Marker {
            path: path.to_path_buf(),
            message: format!(
                "it is not UTF-8 text (invalid byte at offset {})",
                error.valid_up_to()
            ),
        })?;
        if text.starts_with('\u{feff}') {
            return Err(syntax(
                "it starts with a byte order mark (U+FEFF), which JSON does not allow; save it \
                 as UTF-8 without BOM",
            ));
        }
        if text.trim().is_empty() {
            return Err(syntax("it is empty; expected a JSON object"));
        }
        Ok(text)
    }

    /// `entry` (the marker's content) with the top-level field set to `version`, keeping its
    /// formatting: only the value's text changes. `Ok(None)` when it already says `version`;
    /// an error when it cannot be updated, so that no upgrade commits a stale marker.
    pub fn updated(
        &self,
        path: &Path,
        entry: &FileEntry,
        version: &str,
    ) -> Result<Option<FileEntry>, Error> {
        let current = self.parse(path, entry)?;
        if current == version {
            return Ok(None);
        }
        let text = self.text(path, entry)?;
        let Some((start, end)) = top_level_value(text, &self.field) else {
            return Err(Error::Marker {
                path: path.to_path_buf(),
                message: format!("its top-level field `{}` could not be located", self.field),
            });
        };
        let new = serde_json::to_string(version).map_err(|error| Error::Marker {
            path: path.to_path_buf(),
            message: error.to_string(),
        })?;
        let updated = format!("{}{}{}", &text[..start], new, &text[end..]);
        Ok(Some(FileEntry::new(entry.mode, updated.into_bytes())))
    }
}

/// The byte range of the string value of top-level key `field` in a JSON object's text (the
/// first such key at depth 1; keys of nested objects are skipped).
fn top_level_value(text: &str, field: &str) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let end = string_end(bytes, index)?;
                if depth == 1 {
                    let after = skip_space(bytes, end);
                    if bytes.get(after) == Some(&b':') {
                        let key: String = serde_json::from_str(&text[index..end]).ok()?;
                        let value_start = skip_space(bytes, after + 1);
                        if key == field {
                            if bytes.get(value_start) != Some(&b'"') {
                                return None;
                            }
                            return Some((value_start, string_end(bytes, value_start)?));
                        }
                        index = value_start;
                        continue;
                    }
                }
                index = end;
                continue;
            }
            _ => {}
        }
        index += 1;
    }
    None
}

/// The index just past the string starting at `start` (a `"`).
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut index = start + 1;
    while index < bytes.len() {
        match bytes[index] {
            b'\\' => index += 2,
            b'"' => return Some(index + 1),
            _ => index += 1,
        }
    }
    None
}

fn skip_space(bytes: &[u8], mut index: usize) -> usize {
    while bytes.get(index).is_some_and(u8::is_ascii_whitespace) {
        index += 1;
    }
    index
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
        let path = app.path().join("backstage.json");
        let updated = marker.updated(&path, &entry, "1.2.0").unwrap().unwrap();
        assert_eq!(&*updated.content, b"{\n    \"version\" :  \"1.2.0\"\n}\n");
        assert!(marker.updated(&path, &updated, "1.2.0").unwrap().is_none());
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

    #[test]
    fn the_top_level_field_is_updated_not_a_nested_one_first_in_the_text() {
        let marker = Marker::default();
        let text = "{\n  \"meta\": {\"version\": \"9.9.9\", \"x\": [\"}\"]},\n  \"version\": \"1.0.0\"\n}\n";
        let updated = marker
            .updated(
                Path::new("m.json"),
                &FileEntry::regular(text.as_bytes()),
                "2.0.0",
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&updated.content).unwrap(),
            text.replace("\"1.0.0\"", "\"2.0.0\"")
        );
    }

    fn read_error(setup: impl FnOnce(&Path)) -> String {
        let app = tempfile::tempdir().unwrap();
        setup(app.path());
        let error = Marker::default().read(app.path()).unwrap_err();
        error
            .to_string()
            .replace(&app.path().display().to_string(), "APP")
    }

    #[test]
    fn folders_links_boms_and_empty_markers_get_precise_messages() {
        assert_eq!(
            read_error(|app| std::fs::create_dir(app.join("backstage.json")).unwrap()),
            "read the app's release from APP/backstage.json: it is a folder, not a JSON file"
        );
        assert_eq!(
            read_error(|app| {
                std::fs::write(app.join("real.json"), "{\"version\": \"1.0.0\"}").unwrap();
                std::os::unix::fs::symlink("real.json", app.join("backstage.json")).unwrap();
            }),
            "read the app's release from APP/backstage.json: it is a symlink; the marker must \
             be a plain file (Uplift never writes through a link)"
        );
        assert_eq!(
            read_error(|app| std::fs::write(
                app.join("backstage.json"),
                "\u{feff}{\"version\": \"1.0.0\"}"
            )
            .unwrap()),
            "APP/backstage.json:1:1: it starts with a byte order mark (U+FEFF), which JSON does \
             not allow; save it as UTF-8 without BOM"
        );
        assert_eq!(
            read_error(|app| std::fs::write(app.join("backstage.json"), "").unwrap()),
            "APP/backstage.json:1:1: it is empty; expected a JSON object"
        );
        assert_eq!(
            read_error(|app| std::fs::write(app.join("backstage.json"), "\n{").unwrap()),
            "APP/backstage.json:2:1: EOF while parsing an object"
        );
    }
}
