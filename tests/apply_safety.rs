//! `uplift apply` never writes or deletes outside the app, nor through a symlink, and
//! `--branch` checks the repository before it writes (issue 10, items 1 and 3).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::{git_commit_all, run, stderr, uplift};

/// Every entry below `dir` (links as links, never followed) with its content or target.
fn snapshot(dir: &Path) -> Vec<(String, String)> {
    walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git")
        .map(|e| e.unwrap())
        .map(|e| {
            let meta = e.path().symlink_metadata().unwrap();
            let what = if meta.file_type().is_symlink() {
                format!("-> {}", fs::read_link(e.path()).unwrap().display())
            } else if meta.is_dir() {
                "dir".to_string()
            } else {
                String::from_utf8_lossy(&fs::read(e.path()).unwrap()).into_owned()
            };
            (
                e.path().strip_prefix(dir).unwrap().display().to_string(),
                what,
            )
        })
        .collect()
}

enum Entry<'a> {
    File(&'a str, &'a str),
    Link(&'a str, String),
}

fn write_entries(dir: &Path, entries: &[Entry<'_>]) {
    for entry in entries {
        let (path, native) = match entry {
            Entry::File(path, _) | Entry::Link(path, _) => (path, dir.join(path)),
        };
        fs::create_dir_all(native.parent().unwrap()).unwrap();
        match entry {
            Entry::File(_, content) => fs::write(&native, content).unwrap(),
            Entry::Link(_, target) => symlink(target, &native).unwrap(),
        }
        let _ = path;
    }
}

/// A `dir:` source with releases 1.0.0 and 2.0.0, an app made from 1.0.0 plus `app_extra`,
/// and a folder `outside` beside the app.
struct Setup {
    _root: tempfile::TempDir,
    templates: PathBuf,
    app: PathBuf,
    outside: PathBuf,
}

fn setup(v1: &[Entry<'_>], v2: &[Entry<'_>], app_extra: &[Entry<'_>]) -> Setup {
    let root = tempfile::tempdir().unwrap();
    let templates = root.path().join("templates");
    let app = root.path().join("app");
    let outside = root.path().join("outside");
    fs::create_dir_all(outside.join("sub")).unwrap();
    fs::write(outside.join("x"), "outside x").unwrap();
    fs::write(outside.join("m.json"), "{\"version\": \"0.0.1\"}\n").unwrap();
    for (version, entries) in [("1.0.0", v1), ("2.0.0", v2)] {
        let dir = templates.join(version);
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("backstage.json"),
            format!("{{\"version\": \"{version}\"}}\n"),
        )
        .unwrap();
        write_entries(&dir, entries);
    }
    fs::create_dir_all(&app).unwrap();
    fs::write(app.join("backstage.json"), "{\"version\": \"1.0.0\"}\n").unwrap();
    write_entries(&app, v1);
    write_entries(&app, app_extra);
    Setup {
        _root: root,
        templates,
        app,
        outside,
    }
}

fn apply(setup: &Setup, source: &str, extra: &[&str]) -> std::process::Output {
    run(uplift()
        .arg("apply")
        .arg("--app")
        .arg(&setup.app)
        .arg("--upstream")
        .arg(source)
        .args(["--to", "2.0.0"])
        .args(extra))
}

/// A git repository whose tags v1.0.0 and v2.0.0 hold the two releases, links included.
fn git_source(templates: &Path) -> PathBuf {
    let dir = templates.parent().unwrap().join("git-source");
    let repo = git2::Repository::init(&dir).unwrap();
    let signature = git2::Signature::now("t", "t@example.invalid").unwrap();
    let mut parent: Option<git2::Oid> = None;
    for version in ["1.0.0", "2.0.0"] {
        let mut index = git2::Index::new().unwrap();
        let release = templates.join(version);
        for entry in walkdir::WalkDir::new(&release).sort_by_file_name() {
            let entry = entry.unwrap();
            if entry.file_type().is_dir() {
                continue;
            }
            let rel = entry.path().strip_prefix(&release).unwrap();
            let (content, mode) = if entry.file_type().is_symlink() {
                let target = fs::read_link(entry.path()).unwrap();
                (target.to_string_lossy().as_bytes().to_vec(), 0o120000)
            } else {
                (fs::read(entry.path()).unwrap(), 0o100644)
            };
            let oid = repo.blob(&content).unwrap();
            let mut index_entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode,
                uid: 0,
                gid: 0,
                file_size: content.len() as u32,
                id: oid,
                flags: 0,
                flags_extended: 0,
                path: rel.to_string_lossy().as_bytes().to_vec(),
            };
            index_entry.flags = index_entry.path.len().min(0xfff) as u16;
            index.add(&index_entry).unwrap();
        }
        let tree = repo.find_tree(index.write_tree_to(&repo).unwrap()).unwrap();
        let parents: Vec<_> = parent
            .iter()
            .map(|p| repo.find_commit(*p).unwrap())
            .collect();
        let parents: Vec<_> = parents.iter().collect();
        let commit = repo
            .commit(None, &signature, &signature, version, &tree, &parents)
            .unwrap();
        repo.tag_lightweight(
            &format!("v{version}"),
            &repo.find_object(commit, None).unwrap(),
            false,
        )
        .unwrap();
        parent = Some(commit);
    }
    dir
}

fn sources(setup: &Setup) -> [String; 2] {
    [
        format!("dir:{}", setup.templates.display()),
        format!("git:{}", git_source(&setup.templates).display()),
    ]
}

#[test]
fn a_release_turning_a_folder_into_a_link_outside_is_refused_and_changes_nothing() {
    for (kind, index) in [("dir", 0), ("git", 1)] {
        for absolute in [true, false] {
            let setup = setup(
                &[
                    Entry::File("d/x", "template x"),
                    Entry::File("d/m.json", "{\"version\": \"1.0.0\"}\n"),
                ],
                &[Entry::Link("d", "placeholder".to_string())],
                &[],
            );
            // The link names this setup's own outside folder.
            let target = if absolute {
                setup.outside.display().to_string()
            } else {
                "../outside".to_string()
            };
            let v2_link = setup.templates.join("2.0.0/d");
            fs::remove_file(&v2_link).unwrap();
            symlink(&target, &v2_link).unwrap();
            let source = sources(&setup)[index].clone();
            let (outside, app) = (snapshot(&setup.outside), snapshot(&setup.app));
            for extra in [&[][..], &["--marker", "d/m.json"][..]] {
                let output = apply(&setup, &source, extra);
                assert_eq!(
                    output.status.code(),
                    Some(2),
                    "{kind} {target} {extra:?}: {}",
                    stderr(&output)
                );
                assert!(
                    stderr(&output).contains("points outside the app"),
                    "{}",
                    stderr(&output)
                );
                assert_eq!(snapshot(&setup.outside), outside, "{kind} {target}");
                assert_eq!(snapshot(&setup.app), app, "{kind} {target}");
            }
        }
    }
}

#[test]
fn a_link_made_by_the_same_apply_is_never_deleted_through() {
    // 2.0.0 turns folder `d/` into a link to the app's own folder `e/`: the deletion of
    // `d/x` must not reach `e/x` through the new link.
    let setup = setup(
        &[Entry::File("d/x", "template x")],
        &[Entry::Link("d", "e".to_string())],
        &[Entry::File("e/x", "the app's own x")],
    );
    for source in sources(&setup) {
        let app = tempfile::tempdir().unwrap();
        common::copy_dir(&setup.app, app.path());
        let output = run(uplift()
            .arg("apply")
            .arg("--app")
            .arg(app.path())
            .arg("--upstream")
            .arg(&source)
            .args(["--to", "2.0.0"]));
        assert_eq!(
            output.status.code(),
            Some(0),
            "{source}: {}",
            stderr(&output)
        );
        assert_eq!(
            fs::read_to_string(app.path().join("e/x")).unwrap(),
            "the app's own x",
            "{source}"
        );
        assert_eq!(
            fs::read_link(app.path().join("d")).unwrap(),
            Path::new("e"),
            "{source}"
        );
        assert!(!app.path().join(".uplift-apply").exists());
    }
}

#[test]
fn a_write_through_a_link_already_in_the_app_is_refused() {
    // The app replaced folder `d/` by a link to a folder outside it; 2.0.0 changes `d/x`.
    let setup = setup(
        &[Entry::File("d/x", "v1")],
        &[Entry::File("d/x", "v2")],
        &[],
    );
    fs::remove_dir_all(setup.app.join("d")).unwrap();
    fs::write(setup.outside.join("x"), "v1").unwrap();
    symlink(&setup.outside, setup.app.join("d")).unwrap();
    let outside = snapshot(&setup.outside);
    for source in sources(&setup) {
        let output = apply(&setup, &source, &[]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{source}: {}",
            stderr(&output)
        );
        assert!(stderr(&output).contains("hint: "), "{}", stderr(&output));
        assert_eq!(snapshot(&setup.outside), outside, "{source}");
    }
}

#[test]
fn a_template_link_named_hbs_is_copied_as_a_link_never_rendered() {
    let setup = setup(
        &[],
        &[
            Entry::File("real.txt", "{{not rendered}}"),
            Entry::Link("link.hbs", "real.txt".to_string()),
        ],
        &[],
    );
    for source in sources(&setup) {
        let app = tempfile::tempdir().unwrap();
        common::copy_dir(&setup.app, app.path());
        let output = run(uplift()
            .arg("apply")
            .arg("--app")
            .arg(app.path())
            .arg("--upstream")
            .arg(&source)
            .args(["--to", "2.0.0"]));
        assert_eq!(
            output.status.code(),
            Some(0),
            "{source}: {}",
            stderr(&output)
        );
        assert_eq!(
            fs::read_link(app.path().join("link.hbs")).unwrap(),
            Path::new("real.txt")
        );
        assert!(!app.path().join("link").exists());
    }
}

fn branch_setup() -> (Setup, git2::Repository) {
    let setup = setup(
        &[Entry::File("a.txt", "v1")],
        &[Entry::File("a.txt", "v2")],
        &[],
    );
    let repo = git_commit_all(&setup.app);
    (setup, repo)
}

fn head_name(repo: &git2::Repository) -> String {
    repo.head().unwrap().name().unwrap().to_string()
}

#[test]
fn a_bad_branch_name_is_bad_input_and_writes_nothing() {
    let (setup, repo) = branch_setup();
    let before = snapshot(&setup.app);
    let source = format!("dir:{}", setup.templates.display());
    for name in ["bad..name", "-x", "a b", "x.lock", "HEAD~1"] {
        let output = apply(&setup, &source, &[&format!("--branch={name}")]);
        assert_eq!(output.status.code(), Some(2), "{name}: {}", stderr(&output));
        assert!(stderr(&output).contains("hint: "), "{}", stderr(&output));
        assert_eq!(snapshot(&setup.app), before, "{name}");
        assert_eq!(head_name(&repo), "refs/heads/master");
    }
}

#[test]
fn a_locked_index_is_refused_before_anything_is_written() {
    let (setup, repo) = branch_setup();
    let before = snapshot(&setup.app);
    let lock = setup.app.join(".git/index.lock");
    fs::write(&lock, "").unwrap();
    let source = format!("dir:{}", setup.templates.display());
    let output = apply(&setup, &source, &["--branch", "uplift/2.0.0"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("index.lock"),
        "{}",
        stderr(&output)
    );
    assert_eq!(snapshot(&setup.app), before);
    assert_eq!(head_name(&repo), "refs/heads/master");
    assert!(
        repo.find_branch("uplift/2.0.0", git2::BranchType::Local)
            .is_err()
    );
    // Once the lock is gone, the same command works: nothing was left half-done.
    fs::remove_file(&lock).unwrap();
    let output = apply(&setup, &source, &["--branch", "uplift/2.0.0"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(head_name(&repo), "refs/heads/uplift/2.0.0");
    assert_eq!(fs::read_to_string(setup.app.join("a.txt")).unwrap(), "v2");
    assert!(
        repo.statuses(None).unwrap().is_empty(),
        "everything committed"
    );
}

#[test]
fn a_repository_without_a_commit_is_refused_before_anything_is_written() {
    let setup = setup(
        &[Entry::File("a.txt", "v1")],
        &[Entry::File("a.txt", "v2")],
        &[],
    );
    git2::Repository::init(&setup.app).unwrap();
    let before = snapshot(&setup.app);
    let source = format!("dir:{}", setup.templates.display());
    let output = apply(
        &setup,
        &source,
        &["--branch", "uplift/2.0.0", "--allow-dirty"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(snapshot(&setup.app), before);
}

#[test]
fn a_crash_of_apply_branch_is_recovered_by_the_next_check() {
    // 1 file changed + the marker: 2 moved aside, 2 placed.
    for (renames, finished) in [(1, false), (3, false), (4, true)] {
        let (setup, repo) = branch_setup();
        let before = snapshot(&setup.app);
        let head_before = repo.head().unwrap().target().unwrap();
        let source = format!("dir:{}", setup.templates.display());
        let output = run(uplift()
            .arg("apply")
            .arg("--app")
            .arg(&setup.app)
            .arg("--upstream")
            .arg(&source)
            .args(["--to", "2.0.0", "--branch", "uplift/2.0.0"])
            .env("UPLIFT_TEST_CRASH_AFTER_RENAMES", renames.to_string()));
        assert!(!output.status.success(), "{renames}: {}", stderr(&output));
        assert!(setup.app.join(".uplift-apply").exists());
        let output = run(uplift()
            .arg("check")
            .arg("--app")
            .arg(&setup.app)
            .arg("--upstream")
            .arg(&source));
        assert!(output.status.success(), "{renames}: {}", stderr(&output));
        assert!(
            stderr(&output).contains("found an interrupted apply"),
            "{}",
            stderr(&output)
        );
        assert!(!setup.app.join(".uplift-apply").exists(), "{renames}");
        let branch = repo.find_branch("uplift/2.0.0", git2::BranchType::Local);
        if finished {
            assert_eq!(fs::read_to_string(setup.app.join("a.txt")).unwrap(), "v2");
            assert_eq!(head_name(&repo), "refs/heads/uplift/2.0.0");
            let commit = repo.head().unwrap().peel_to_commit().unwrap();
            assert_eq!(commit.parent_id(0).unwrap(), head_before);
            assert!(
                repo.statuses(None).unwrap().is_empty(),
                "{renames}: committed"
            );
        } else {
            assert_eq!(snapshot(&setup.app), before, "{renames}");
            assert_eq!(head_name(&repo), "refs/heads/master");
            assert!(branch.is_err(), "{renames}: no branch");
        }
    }
}

#[test]
fn marker_and_git_errors_carry_a_hint() {
    let setup = setup(
        &[Entry::File("a.txt", "v1")],
        &[Entry::File("a.txt", "v2")],
        &[],
    );
    let source = format!("dir:{}", setup.templates.display());
    fs::write(
        setup.app.join("backstage.json"),
        "\u{feff}{\"version\": \"1.0.0\"}",
    )
    .unwrap();
    let output = apply(&setup, &source, &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stderr(&output).replace(&setup.app.display().to_string(), "APP");
    assert!(
        text.contains("error: APP/backstage.json:1:1: it starts with a byte order mark"),
        "{text}"
    );
    assert!(text.contains("hint: the marker is a JSON file"), "{text}");
    fs::write(setup.app.join("backstage.json"), "{\"version\": \"1.0.0\"}").unwrap();
    let output = apply(&setup, &source, &["--branch", "x"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("hint: run `git init`"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_git_failure_after_the_files_puts_files_and_head_back() {
    // A branch `uplift` exists, so `uplift/2.0.0` cannot be created (a ref cannot be both a
    // file and a folder): git refuses only once the files are in place.
    let (setup, repo) = branch_setup();
    let head = repo.head().unwrap().peel_to_commit().unwrap();
    repo.branch("uplift", &head, false).unwrap();
    let before = snapshot(&setup.app);
    let source = format!("dir:{}", setup.templates.display());
    let output = apply(&setup, &source, &["--branch", "uplift/2.0.0"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("hint: "), "{}", stderr(&output));
    assert_eq!(snapshot(&setup.app), before);
    assert_eq!(head_name(&repo), "refs/heads/master");
    assert!(repo.statuses(None).unwrap().is_empty());
}
