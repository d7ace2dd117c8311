//! Checks that a merged file is still valid for its type, so that no invalid merge is reported
//! as clean.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use uplift_tree::RelPath;

/// The kinds of file the merge understands beyond text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Json,
    Yaml,
    Text,
}

impl FileKind {
    pub fn of(path: &RelPath) -> Self {
        let name = path.file_name();
        if name.ends_with(".json") {
            FileKind::Json
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            FileKind::Yaml
        } else {
            FileKind::Text
        }
    }
}

/// `Err(reason)` when `content` is not a valid file of its kind.
pub fn check(kind: FileKind, content: &str) -> Result<(), String> {
    match kind {
        FileKind::Json => {
            let mut deserializer = serde_json::Deserializer::from_str(content);
            deserializer
                .deserialize_any(NoDuplicates)
                .and_then(|()| deserializer.end())
                .map_err(|e| format!("the merged file is not valid JSON: {e}"))
        }
        FileKind::Yaml => {
            for document in serde_yaml::Deserializer::from_str(content) {
                // serde_yaml rejects duplicate keys itself.
                <serde_yaml::Value as serde::Deserialize>::deserialize(document)
                    .map_err(|e| format!("the merged file is not valid YAML: {e}"))?;
            }
            Ok(())
        }
        FileKind::Text => Ok(()),
    }
}

/// Walks any JSON value and fails on an object with a repeated key (serde_json keeps the last).
struct NoDuplicates;

impl<'de> Visitor<'de> for NoDuplicates {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(NoDuplicatesSeed)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            map.next_value_seed(NoDuplicatesSeed)?;
        }
        Ok(())
    }
}

struct NoDuplicatesSeed;

impl<'de> de::DeserializeSeed<'de> for NoDuplicatesSeed {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(NoDuplicates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches_invalid_and_duplicated() {
        assert!(check(FileKind::Json, "{\"a\": 1, \"b\": [1, {\"c\": 2}]}").is_ok());
        let duplicate = check(FileKind::Json, "{\"a\": 1, \"a\": 2}").unwrap_err();
        assert!(duplicate.contains("duplicate key \"a\""), "{duplicate}");
        assert!(check(FileKind::Json, "{\"a\": 1,}").is_err());
        assert!(check(FileKind::Yaml, "a: 1\nb:\n  c: 2\n---\nd: 3\n").is_ok());
        assert!(check(FileKind::Yaml, "a: 1\na: 2\n").is_err());
        assert!(check(FileKind::Yaml, "a: [1\n").is_err());
        assert!(check(FileKind::Text, "<<<<<<<").is_ok());
    }
}
