//! The merges that know a file's structure, tried where the line merge conflicts (or gives an
//! invalid file): JSON and YAML key by key, and a Dockerfile's `FROM` lines by version.
//!
//! Each returns the whole file, the number of conflicts left in it (a conflicting key is one
//! conflict, its lines alone in markers) and the notes the plan shows as the reason.

use uplift_tree::RelPath;

use crate::json::merge_json;
use crate::text::{TextOptions, merge_text_settling, settle_line_by_line};
use crate::validate::FileKind;
use crate::versions::{docker_from, keep_higher};
use crate::yaml::merge_yaml;

/// A structured merge of one file. With conflicts, the caller puts their count first in the
/// reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Structured {
    pub(crate) content: String,
    pub(crate) conflicts: usize,
    /// The plan's reason, one note per decision.
    pub(crate) notes: Vec<String>,
}

/// `None` when no structured merge applies or it cannot do better than the line merge.
pub(crate) fn merge_structured(
    path: &RelPath,
    kind: FileKind,
    base: &str,
    ours: &str,
    theirs: &str,
    options: &TextOptions,
) -> Option<Structured> {
    let (content, decisions, conflicts) = match kind {
        FileKind::Json => {
            let merged = merge_json(base, ours, theirs, options)?;
            (merged.content, merged.decisions, merged.conflicts)
        }
        FileKind::Yaml => {
            let merged = merge_yaml(base, ours, theirs, options)?;
            (merged.content, merged.decisions, merged.conflicts)
        }
        FileKind::Text if is_dockerfile(path) => {
            return merge_dockerfile(base, ours, theirs, options);
        }
        FileKind::Text => return None,
    };
    let mut notes = Vec::new();
    if conflicts.is_empty() {
        notes.push("merged key by key".to_string());
    } else {
        // Follows the caller's "N conflicting regions between your changes and upstream's".
        notes.push(format!(
            "in {}; everything else merged key by key",
            conflict_locations(&conflicts)
        ));
    }
    notes.extend(decisions);
    Some(Structured {
        content,
        conflicts: conflicts.len(),
        notes,
    })
}

/// "key `a.b`", "keys `a`, `b`", and other locations (which are words) after them.
fn conflict_locations(conflicts: &[String]) -> String {
    let (keys, others): (Vec<&String>, Vec<&String>) = conflicts
        .iter()
        .partition(|location| !location.contains(' '));
    let mut parts = Vec::new();
    if !keys.is_empty() {
        let names: Vec<String> = keys.iter().map(|key| format!("`{key}`")).collect();
        let noun = if keys.len() == 1 { "key" } else { "keys" };
        parts.push(format!("{noun} {}", names.join(", ")));
    }
    parts.extend(others.into_iter().cloned());
    parts.join(" and ")
}

/// `Dockerfile`, `Dockerfile.dev`, `app.Dockerfile`.
fn is_dockerfile(path: &RelPath) -> bool {
    let name = path.file_name();
    name == "Dockerfile" || name.starts_with("Dockerfile.") || name.ends_with(".Dockerfile")
}

/// The line merge, where a `FROM image:tag` both sides bumped keeps the higher tag.
fn merge_dockerfile(
    base: &str,
    ours: &str,
    theirs: &str,
    options: &TextOptions,
) -> Option<Structured> {
    let mut decisions = Vec::new();
    let mut from_rule = |_: &str, ours: &str, theirs: &str| -> Option<(String, String)> {
        let kept = keep_higher("FROM", ours.trim(), theirs.trim(), docker_from)?;
        let indent = &ours[..ours.len() - ours.trim_start().len()];
        Some((format!("{indent}{}", kept.value), kept.decision))
    };
    let mut settle = |b: &[&str], o: &[&str], t: &[&str]| {
        let (text, decided) = settle_line_by_line(b, o, t, &mut from_rule)?;
        decisions.extend(decided);
        Some(text)
    };
    let merged = merge_text_settling(base, ours, theirs, options, &mut settle);
    if decisions.is_empty() {
        return None;
    }
    Some(Structured {
        content: merged.content,
        conflicts: merged.conflicts,
        notes: decisions,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const DOCKERFILE: &str =
        "# the backend image\nFROM node:20-bookworm-slim\n\nENV PYTHON=/usr/bin/python3\n";

    #[test]
    fn both_sides_bumping_the_base_image_keep_the_higher_tag() {
        let path = RelPath::new("packages/backend/Dockerfile").unwrap();
        let ours = DOCKERFILE.replace("node:20", "node:22.11");
        let theirs = DOCKERFILE.replace("node:20", "node:24");
        let merged = merge_structured(
            &path,
            FileKind::Text,
            DOCKERFILE,
            &ours,
            &theirs,
            &TextOptions::default(),
        )
        .unwrap();
        assert_eq!(merged.conflicts, 0);
        assert_eq!(merged.content, theirs);
        assert_eq!(
            merged.notes,
            [
                "FROM: kept upstream's \"FROM node:24-bookworm-slim\" (higher than \"FROM node:22.11-bookworm-slim\")"
            ]
        );
        // Another variant, or a file that is not a Dockerfile: no rule.
        let other = DOCKERFILE.replace("node:20-bookworm-slim", "node:24-alpine");
        let options = TextOptions::default();
        assert!(
            merge_structured(&path, FileKind::Text, DOCKERFILE, &ours, &other, &options).is_none()
        );
        let readme = RelPath::new("README.md").unwrap();
        assert!(
            merge_structured(
                &readme,
                FileKind::Text,
                DOCKERFILE,
                &ours,
                &theirs,
                &options
            )
            .is_none()
        );
    }

    #[test]
    fn conflict_locations_name_keys_and_other_places() {
        let one =
            |l: &[&str]| conflict_locations(&l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(one(&["scripts.start"]), "key `scripts.start`");
        assert_eq!(
            one(&["a", "the lines at the top of the file", "b.c"]),
            "keys `a`, `b.c` and the lines at the top of the file"
        );
    }

    #[test]
    fn a_yaml_file_with_a_conflicting_key_says_which() {
        let path = RelPath::new("app-config.yaml").unwrap();
        let base = "app:\n  title: Portal\norganization:\n  name: My Company\n";
        let ours = base
            .replace("Portal", "Acme")
            .replace("My Company", "Acme Corp");
        let theirs = base.replace("Portal", "Backstage");
        let merged = merge_structured(
            &path,
            FileKind::Yaml,
            base,
            &ours,
            &theirs,
            &TextOptions::default(),
        )
        .unwrap();
        assert_eq!(merged.conflicts, 1);
        assert_eq!(
            merged.notes,
            ["in key `app.title`; everything else merged key by key"]
        );
        assert!(
            merged
                .content
                .ends_with(">>>>>>> upstream\norganization:\n  name: Acme Corp\n")
        );
    }
}
