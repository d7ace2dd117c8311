//! The Backstage preset: everything `--preset backstage` infers from the app, so that an
//! upgrade needs no other option.
//!
//! - source: [`BACKSTAGE_SOURCE`], the `@backstage/create-app` package of each release;
//! - values: `name` from `catalog-info.yaml` (`metadata.name`), `defaultBranch` from the app's
//!   git repository (the branch HEAD names, else `main`);
//! - lineage: from the frontend system the app uses ([`detect_frontend`]);
//! - follow-up commands after a merge ([`follow_ups`]).

use std::path::Path;

use serde::Serialize;

use crate::Error;

/// The source of the preset.
pub const BACKSTAGE_SOURCE: &str = "npm:@backstage/create-app";
/// The package whose use marks the new frontend system.
pub const FRONTEND_DEFAULTS: &str = "@backstage/frontend-defaults";
/// The release from which `default-app` is the new frontend system and `legacy-app` the old.
pub const NEW_FRONTEND_DEFAULT_FROM: &str = "1.50.0";
/// The first release whose create-app ships `next-app` (the new frontend system before 1.50).
pub const NEXT_APP_FROM: &str = "1.42.0";

/// Which frontend system an app is built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FrontendSystem {
    /// `createApp` from `@backstage/frontend-defaults`.
    New,
    /// `createApp` from `@backstage/app-defaults` (the old system).
    Legacy,
}

/// What the preset inferred from one app.
#[derive(Debug, Clone, PartialEq)]
pub struct BackstagePreset {
    pub source: String,
    pub frontend: FrontendSystem,
    /// Template folders by release (`SUBDIR` / `VERSION=SUBDIR`), inside the package.
    pub lineage: Vec<String>,
    /// `name` (when `catalog-info.yaml` names the app) and `defaultBranch`.
    pub values: serde_json::Map<String, serde_json::Value>,
    /// Where the release's versions map is (see [`crate::VERSIONS_FILE`]).
    pub versions_file: String,
}

/// Inspects `app` and returns the preset's settings for it.
pub fn backstage(app: &Path) -> Result<BackstagePreset, Error> {
    let frontend = detect_frontend(app)?;
    let mut values = serde_json::Map::new();
    if let Some(name) = app_name(app)? {
        values.insert("name".to_string(), name.into());
    }
    values.insert("defaultBranch".to_string(), default_branch(app).into());
    tracing::info!(app = %app.display(), ?frontend, "backstage preset");
    Ok(BackstagePreset {
        source: BACKSTAGE_SOURCE.to_string(),
        frontend,
        lineage: lineage(frontend),
        values,
        versions_file: crate::VERSIONS_FILE.to_string(),
    })
}

/// The template folders an app on `frontend` follows.
///
/// - new system: `next-app` from 1.42 (where it first ships), `default-app` from 1.50 (which
///   made it the default), `default-app` before 1.42 (the app was migrated by hand);
/// - old system: `default-app`, then `legacy-app` from 1.50.
pub fn lineage(frontend: FrontendSystem) -> Vec<String> {
    match frontend {
        FrontendSystem::New => vec![
            "templates/default-app".to_string(),
            format!("{NEXT_APP_FROM}=templates/next-app"),
            format!("{NEW_FRONTEND_DEFAULT_FROM}=templates/default-app"),
        ],
        FrontendSystem::Legacy => vec![
            "templates/default-app".to_string(),
            format!("{NEW_FRONTEND_DEFAULT_FROM}=templates/legacy-app"),
        ],
    }
}

/// The template an app on `frontend` follows in a release, from the folders the release ships
/// (so a move that landed on some `next` pre-release is followed from that very pre-release):
///
/// - old system: `legacy-app` where the release has it, else `default-app`;
/// - new system: `default-app` where the release also ships `legacy-app` (the new system is the
///   default there), else `next-app` where it ships it, else `default-app`.
///
/// `None` when the release has no `templates/default-app` (not create-app's layout).
pub fn template_in(frontend: FrontendSystem, files: &uplift_tree::Tree) -> Option<String> {
    let has = |name: &str| {
        let prefix = format!("templates/{name}/");
        files.paths().any(|path| path.as_str().starts_with(&prefix))
    };
    if !has("default-app") {
        return None;
    }
    let folder = match frontend {
        FrontendSystem::Legacy if has("legacy-app") => "legacy-app",
        FrontendSystem::Legacy => "default-app",
        FrontendSystem::New if has("legacy-app") => "default-app",
        FrontendSystem::New if has("next-app") => "next-app",
        FrontendSystem::New => "default-app",
    };
    Some(format!("templates/{folder}"))
}

/// Most source files read when looking for `createApp`.
const MAX_SOURCES: usize = 5_000;
/// Largest source file read.
const MAX_SOURCE_BYTES: u64 = 1024 * 1024;

/// New when `packages/app` depends on `@backstage/frontend-defaults` or its sources import
/// `createApp` from it; otherwise legacy.
pub fn detect_frontend(app: &Path) -> Result<FrontendSystem, Error> {
    let package_json = app.join("packages/app/package.json");
    if let Some(text) = read_optional(&package_json)? {
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::AppFile {
            path: package_json.clone(),
            message: e.to_string(),
        })?;
        let depends = ["dependencies", "devDependencies", "peerDependencies"]
            .iter()
            .any(|key| {
                value
                    .get(key)
                    .and_then(|d| d.get(FRONTEND_DEFAULTS))
                    .is_some()
            });
        if depends {
            return Ok(FrontendSystem::New);
        }
    }
    let mut seen = 0;
    let mut stack = vec![app.join("packages/app/src")];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(Error::Io {
                    action: "read",
                    path: dir,
                    source,
                });
            }
        };
        for entry in entries {
            let entry = entry.map_err(Error::io("read", &dir))?;
            let path = entry.path();
            // file_type() does not follow symlinks: a link is never read.
            let kind = entry.file_type().map_err(Error::io("read", &path))?;
            if kind.is_dir() && entry.file_name() != "node_modules" {
                stack.push(path);
                continue;
            }
            let is_source = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "ts" | "tsx" | "js" | "jsx" | "mjs" | "cjs"));
            let small = entry.metadata().is_ok_and(|m| m.len() <= MAX_SOURCE_BYTES);
            if !kind.is_file() || !is_source || !small {
                continue;
            }
            seen += 1;
            if seen > MAX_SOURCES {
                return Ok(FrontendSystem::Legacy);
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            if imports_create_app_from_frontend_defaults(&text) {
                return Ok(FrontendSystem::New);
            }
        }
    }
    Ok(FrontendSystem::Legacy)
}

/// Whether `source` has an `import … createApp … from '@backstage/frontend-defaults'`.
fn imports_create_app_from_frontend_defaults(source: &str) -> bool {
    // Statements end with `;` or at the next `import`; a statement that names both is enough.
    source
        .split(';')
        .flat_map(|s| s.split("import "))
        .any(|statement| {
            let quoted = [
                format!("'{FRONTEND_DEFAULTS}'"),
                format!("\"{FRONTEND_DEFAULTS}\""),
            ];
            quoted.iter().any(|q| statement.contains(q.as_str()))
                && statement
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .any(|word| word == "createApp")
        })
}

/// `metadata.name` of the first document of `catalog-info.yaml` that has one.
pub fn app_name(app: &Path) -> Result<Option<String>, Error> {
    use serde::Deserialize;
    let path = app.join("catalog-info.yaml");
    let Some(text) = read_optional(&path)? else {
        return Ok(None);
    };
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(document).map_err(|e| Error::AppFile {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if let Some(name) = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .filter(|n| !n.is_empty())
        {
            return Ok(Some(name.to_string()));
        }
    }
    Ok(None)
}

/// The branch HEAD of the app's repository names (even before its first commit), else `main`.
pub fn default_branch(app: &Path) -> String {
    let branch = git2::Repository::discover(app).ok().and_then(|repo| {
        let head = repo.find_reference("HEAD").ok()?;
        let target = head.symbolic_target().ok().flatten()?;
        target.strip_prefix("refs/heads/").map(str::to_string)
    });
    branch.unwrap_or_else(|| "main".to_string())
}

/// A command to run after the merge, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FollowUpHint {
    pub command: String,
    pub reason: String,
}

/// The versions protocol that `yarn backstage-cli versions:migrate` maintains.
const BACKSTAGE_PROTOCOL: &str = "backstage:^";

/// Follow-up commands for an upgrade of `app` to a release whose rendered files are `target`
/// (`yarn install` for `yarn.lock` already comes from the engine).
///
/// `yarn backstage-cli versions:migrate` when the target release's `package.json` files or the
/// app's (root, `packages/*`, `plugins/*`) use `backstage:^`.
pub fn follow_ups(app: &Path, target: &uplift_tree::Tree) -> Vec<FollowUpHint> {
    let in_release = target.iter().any(|(path, entry)| {
        path.file_name() == "package.json"
            && entry
                .text()
                .is_some_and(|text| text.contains(BACKSTAGE_PROTOCOL))
    });
    let in_app = !in_release && app_uses_protocol(app);
    if !(in_release || in_app) {
        return Vec::new();
    }
    let reason = if in_release {
        "the release depends on Backstage packages through `backstage:^`"
    } else {
        "the app depends on Backstage packages through `backstage:^`"
    };
    vec![FollowUpHint {
        command: "yarn backstage-cli versions:migrate".to_string(),
        reason: reason.to_string(),
    }]
}

fn app_uses_protocol(app: &Path) -> bool {
    let mut files = vec![app.join("package.json")];
    for folder in ["packages", "plugins"] {
        if let Ok(entries) = std::fs::read_dir(app.join(folder)) {
            files.extend(
                entries
                    .flatten()
                    .take(1000)
                    .map(|e| e.path().join("package.json")),
            );
        }
    }
    files.iter().any(|file| {
        std::fs::symlink_metadata(file).is_ok_and(|m| m.is_file() && m.len() <= MAX_SOURCE_BYTES)
            && std::fs::read_to_string(file).is_ok_and(|t| t.contains(BACKSTAGE_PROTOCOL))
    })
}

fn read_optional(path: &Path) -> Result<Option<String>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn write(root: &Path, path: &str, text: &str) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn frontend_from_dependencies_or_sources() {
        let app = tempfile::tempdir().unwrap();
        let root = app.path();
        assert_eq!(detect_frontend(root).unwrap(), FrontendSystem::Legacy);
        write(
            root,
            "packages/app/package.json",
            r#"{"dependencies": {"@backstage/app-defaults": "^1.0.0"}}"#,
        );
        write(
            root,
            "packages/app/src/App.tsx",
            "import { createApp } from '@backstage/app-defaults';\n",
        );
        assert_eq!(detect_frontend(root).unwrap(), FrontendSystem::Legacy);
        write(
            root,
            "packages/app/src/app/App.tsx",
            "import {\n  createApp,\n} from \"@backstage/frontend-defaults\";\n",
        );
        assert_eq!(detect_frontend(root).unwrap(), FrontendSystem::New);
        std::fs::remove_file(root.join("packages/app/src/app/App.tsx")).unwrap();
        write(
            root,
            "packages/app/package.json",
            r#"{"dependencies": {"@backstage/frontend-defaults": "backstage:^"}}"#,
        );
        assert_eq!(detect_frontend(root).unwrap(), FrontendSystem::New);
        write(root, "packages/app/package.json", "{ not json");
        assert!(detect_frontend(root).is_err());
    }

    #[test]
    fn the_template_follows_the_folders_a_release_ships() {
        use uplift_tree::{FileEntry, RelPath, Tree};
        let release = |folders: &[&str]| -> Tree {
            folders
                .iter()
                .map(|f| {
                    (
                        RelPath::new(format!("templates/{f}/package.json")).unwrap(),
                        FileEntry::regular(b"{}".to_vec()),
                    )
                })
                .collect()
        };
        let pick = |frontend, folders: &[&str]| template_in(frontend, &release(folders));
        use FrontendSystem::{Legacy, New};
        // Before 1.42; 1.42 to 1.49 (and the pre-releases before the move); the move (on a
        // pre-release of 1.50 or later).
        let before = ["default-app"];
        let between = ["default-app", "next-app"];
        let moved = ["default-app", "legacy-app"];
        assert_eq!(pick(Legacy, &before).unwrap(), "templates/default-app");
        assert_eq!(pick(Legacy, &between).unwrap(), "templates/default-app");
        assert_eq!(pick(Legacy, &moved).unwrap(), "templates/legacy-app");
        assert_eq!(pick(New, &before).unwrap(), "templates/default-app");
        assert_eq!(pick(New, &between).unwrap(), "templates/next-app");
        assert_eq!(pick(New, &moved).unwrap(), "templates/default-app");
        // `next-app-x` is not `next-app`; a release without create-app's layout: no choice.
        assert_eq!(
            pick(New, &["default-app", "next-app-x"]).unwrap(),
            "templates/default-app"
        );
        assert_eq!(pick(New, &["other"]), None);
    }

    #[test]
    fn create_app_from_another_package_is_not_the_new_system() {
        assert!(!imports_create_app_from_frontend_defaults(
            "import { createApp } from '@backstage/app-defaults';\nimport { x } from '@backstage/frontend-defaults';\n"
        ));
        assert!(imports_create_app_from_frontend_defaults(
            "import { x, createApp } from '@backstage/frontend-defaults'\n"
        ));
    }

    #[test]
    fn name_from_catalog_info_and_branch_from_git() {
        let app = tempfile::tempdir().unwrap();
        let root = app.path();
        assert_eq!(app_name(root).unwrap(), None);
        assert_eq!(default_branch(root), "main");
        write(
            root,
            "catalog-info.yaml",
            "---\nkind: Location\nspec: {}\n---\n# the app\nkind: Component\nmetadata:\n  name: my-portal\n",
        );
        assert_eq!(app_name(root).unwrap().as_deref(), Some("my-portal"));
        let repo = git2::Repository::init(root).unwrap();
        repo.set_head("refs/heads/trunk").unwrap();
        assert_eq!(default_branch(root), "trunk");
        let preset = backstage(root).unwrap();
        assert_eq!(preset.values.get("name").unwrap(), "my-portal");
        assert_eq!(preset.values.get("defaultBranch").unwrap(), "trunk");
        assert_eq!(
            preset.lineage,
            ["templates/default-app", "1.50.0=templates/legacy-app"]
        );
        write(root, "catalog-info.yaml", "metadata: [unclosed\n");
        assert!(app_name(root).is_err());
    }

    #[test]
    fn versions_migrate_when_the_release_or_the_app_uses_the_protocol() {
        use uplift_tree::{FileEntry, RelPath, Tree};
        let app = tempfile::tempdir().unwrap();
        let root = app.path();
        let plain: Tree = [(
            RelPath::new("package.json").unwrap(),
            FileEntry::regular(&br#"{"dependencies": {"@backstage/cli": "^0.30.0"}}"#[..]),
        )]
        .into_iter()
        .collect();
        assert!(follow_ups(root, &plain).is_empty());
        let protocol: Tree = [(
            RelPath::new("packages/app/package.json").unwrap(),
            FileEntry::regular(&br#"{"dependencies": {"@backstage/cli": "backstage:^"}}"#[..]),
        )]
        .into_iter()
        .collect();
        let hints = follow_ups(root, &protocol);
        assert_eq!(hints.len(), 1);
        assert_eq!(hints[0].command, "yarn backstage-cli versions:migrate");
        assert!(hints[0].reason.starts_with("the release"));
        write(
            root,
            "plugins/x/package.json",
            r#"{"dependencies": {"@backstage/core-plugin-api": "backstage:^"}}"#,
        );
        let hints = follow_ups(root, &plain);
        assert_eq!(hints.len(), 1);
        assert!(hints[0].reason.starts_with("the app"));
    }
}
