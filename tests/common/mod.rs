//! Helpers shared by the end-to-end tests of the `uplift` binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (tests run the binary from there, so fixture paths stay relative).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `uplift` binary, run from the repository root, without colour.
pub fn uplift() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_uplift"));
    command
        .current_dir(root())
        .env("NO_COLOR", "1")
        .env_remove("GITHUB_ACTIONS");
    command
}

/// The fixture template's upstream options.
pub const ACME: &[&str] = &[
    "--upstream",
    "dir:fixtures/templates/acme",
    "--template",
    "default-app",
    "--set",
    "name=acme-portal",
    "--set",
    "defaultBranch=main",
];

pub fn run(command: &mut Command) -> Output {
    command.output().expect("run uplift")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub use uplift_testkit::fs::copy_dir;

/// `DIR/pipeline.yml`: pipeline NAME with one `image` stage building `web/` and pushing
/// `REPOSITORY:1.0.0`, plus the `EXTRA` settings (`key: value`) under its `with:`.
pub fn image_pipeline(dir: &Path, name: &str, repository: &str, extra: &[&str]) -> PathBuf {
    let mut yaml = format!(
        "name: {name}\n\
         stages:\n\
         \x20 image:\n\
         \x20   uses: image\n\
         \x20   with:\n\
         \x20     context: web\n\
         \x20     repository: {repository}\n\
         \x20     release: 1.0.0\n\
         \x20     push: true\n"
    );
    for setting in extra {
        yaml.push_str(&format!("      {setting}\n"));
    }
    let path = dir.join("pipeline.yml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// A copy of the customized fixture app in a temp folder.
pub fn fixture_app() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root().join("fixtures/apps/acme-portal"), dir.path());
    dir
}

/// Makes `dir` a git repository with everything committed.
pub fn git_commit_all(dir: &Path) -> git2::Repository {
    let repo = git2::Repository::init(dir).unwrap();
    {
        let mut index = repo.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let signature = git2::Signature::now("test", "test@example.invalid").unwrap();
        repo.commit(Some("HEAD"), &signature, &signature, "initial", &tree, &[])
            .unwrap();
    }
    repo
}

/// Every file below `dir` (except `.git`), with contents and executable bits.
pub fn snapshot_tree(dir: &Path) -> std::collections::BTreeMap<String, (Vec<u8>, bool)> {
    use std::os::unix::fs::PermissionsExt;
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git")
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let exec = e.metadata().unwrap().permissions().mode() & 0o111 != 0;
            (rel, (std::fs::read(e.path()).unwrap(), exec))
        })
        .collect()
}

/// A git repository whose tags `v<version>` hold the fixture template's releases.
pub fn fixture_template_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let repo = git2::Repository::init(dir.path()).unwrap();
    let releases = root().join("fixtures/templates/acme");
    let mut versions: Vec<String> = std::fs::read_dir(&releases)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    versions.sort_by_key(|v| semver::Version::parse(v).unwrap());
    let signature = git2::Signature::now("test", "test@example.invalid").unwrap();
    let mut parent: Option<git2::Oid> = None;
    for version in versions {
        // Replace the work tree with this release, then commit everything.
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().unwrap() != ".git" {
                if path.is_dir() {
                    std::fs::remove_dir_all(&path).unwrap();
                } else {
                    std::fs::remove_file(&path).unwrap();
                }
            }
        }
        copy_dir(&releases.join(&version), dir.path());
        let mut index = repo.index().unwrap();
        index.clear().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::FORCE, None)
            .unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let parents: Vec<git2::Commit> = parent
            .iter()
            .map(|p| repo.find_commit(*p).unwrap())
            .collect();
        let parents: Vec<&git2::Commit> = parents.iter().collect();
        let commit = repo
            .commit(
                Some("HEAD"),
                &signature,
                &signature,
                &format!("release {version}"),
                &tree,
                &parents,
            )
            .unwrap();
        let object = repo.find_object(commit, None).unwrap();
        repo.tag_lightweight(&format!("v{version}"), &object, false)
            .unwrap();
        parent = Some(commit);
    }
    dir
}

/// The fixture app with customizations that collide with upstream's changes.
pub fn conflicting_app() -> tempfile::TempDir {
    let app = fixture_app();
    let path = app.path();
    // Both edit the same README line (2.0.0 rewrites it).
    let readme = std::fs::read_to_string(path.join("README.md")).unwrap();
    std::fs::write(
        path.join("README.md"),
        readme.replace("Good luck!", "Maintained by the platform team."),
    )
    .unwrap();
    // Custom branding: a binary upstream changes in 1.2.0.
    std::fs::write(
        path.join("packages/app/public/favicon.ico"),
        b"\0\x01custom icon\0",
    )
    .unwrap();
    // Upstream deletes plugins/README.md in 1.2.0; the app edited it.
    std::fs::write(path.join("plugins/README.md"), "# Our plugins\n").unwrap();
    // The app deleted a script upstream changes in 1.1.0.
    std::fs::remove_file(path.join("scripts/setup.sh")).unwrap();
    app
}

/// An upstream (`dir:` source, releases 1.0.0 and 2.0.0) and an app at 1.0.0 in which each of
/// `files` files conflicts: upstream and the app both rewrote its one line. Returns the folder
/// holding `upstream/` and `app/` (a git repository with everything committed).
pub fn many_conflicts(files: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    // One folder: creating thousands of folders is slow on a busy disk.
    let file = |i: usize| format!("packages/app/src/components/generated/module-{i:05}.ts");
    for (release, body) in [("1.0.0", "base"), ("2.0.0", "upstream")] {
        for i in 0..files {
            let path = dir.path().join("upstream").join(release).join(file(i));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, format!("export const value = '{body} {i}';\n")).unwrap();
        }
    }
    let app = dir.path().join("app");
    for i in 0..files {
        let path = app.join(file(i));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("export const value = 'app {i}';\n")).unwrap();
    }
    std::fs::write(app.join("backstage.json"), "{ \"version\": \"1.0.0\" }\n").unwrap();
    git_commit_all(&app);
    dir
}
