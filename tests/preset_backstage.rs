//! `uplift plan --preset backstage` end to end, against a fake npm registry and versions site on
//! loopback (built from the acme fixture releases), in a Backstage-like fixture app.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{root, run, stderr, stdout};
use uplift_npm::testing::{FakeRegistry, FakeRelease};

fn acme(release: &str, folder: &str) -> PathBuf {
    root()
        .join("fixtures/templates/acme")
        .join(release)
        .join(folder)
}

/// Backstage-like releases: 1.48.0 and 1.49.0 ship `default-app` (the old frontend system) and
/// `next-app` (the new one); 1.50.0 ships the new system as `default-app`, the old one as
/// `legacy-app`.
fn registry() -> FakeRegistry {
    let release =
        |release: &str, version: &str, acme_release: &str, templates: &[(&str, PathBuf)]| {
            let templates: Vec<(&str, &Path)> =
                templates.iter().map(|(n, p)| (*n, p.as_path())).collect();
            let mut release = FakeRelease::from_folders(
                release,
                version,
                &templates,
                &acme(acme_release, "versions.json"),
            )
            .unwrap();
            // `next-app` (from acme 2.0.0) needs it in every release.
            release
                .packages
                .entry("@acme/plugin-notifications-backend".into())
                .or_insert_with(|| "0.4.0".into());
            release
        };
    FakeRegistry::start(
        "@backstage/create-app",
        &[
            release(
                "1.48.0",
                "0.8.0",
                "1.0.0",
                &[
                    ("default-app", acme("1.0.0", "default-app")),
                    ("next-app", acme("2.0.0", "next-app")),
                ],
            ),
            release(
                "1.49.0",
                "0.8.1",
                "1.1.0",
                &[
                    ("default-app", acme("1.1.0", "default-app")),
                    ("next-app", acme("2.0.0", "next-app")),
                ],
            ),
            release(
                "1.50.0",
                "0.9.0",
                "2.0.0",
                &[
                    ("default-app", acme("2.0.0", "default-app")),
                    ("legacy-app", acme("1.2.0", "default-app")),
                ],
            ),
        ],
    )
    .unwrap()
}

/// A copy of the fixture app, outside any git repository.
fn app_copy(dir: &Path) -> PathBuf {
    let app = dir.join("backstage-portal");
    let source = root().join("fixtures/apps/backstage-portal");
    for entry in walkdir::WalkDir::new(&source) {
        let entry = entry.unwrap();
        let target = app.join(entry.path().strip_prefix(&source).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
    app
}

/// `uplift ARGS` in `app`, with the registry and versions site of `registry`, a fresh cache and
/// HOME (no user `.npmrc`).
fn uplift_in(app: &Path, home: &Path, registry: &FakeRegistry) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_uplift"));
    command
        .current_dir(app)
        .env("NO_COLOR", "1")
        .env("HOME", home)
        .env("UPLIFT_CACHE_DIR", home.join("cache"))
        .env("UPLIFT_NPM_REGISTRY", registry.url())
        .env("UPLIFT_BACKSTAGE_VERSIONS_URL", registry.url())
        .env("UPLIFT_BACKSTAGE_RELEASES_GIT", registry.releases_git())
        .env_remove("YARN_NPM_REGISTRY_SERVER")
        .env_remove("YARN_NPM_AUTH_TOKEN")
        .env_remove("UPLIFT_UPSTREAM")
        .env_remove("UPLIFT_NPM_TOKEN")
        .env_remove("NPM_CONFIG_REGISTRY")
        .env_remove("NPM_CONFIG_USERCONFIG")
        .env_remove("XDG_CACHE_HOME")
        .env_remove("GITHUB_ACTIONS");
    command
}

/// How many release tarballs the registry has served so far.
fn tarball_requests(registry: &FakeRegistry) -> usize {
    registry
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(".tgz"))
        .count()
}

fn plan_json(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout(output)).unwrap_or_else(|e| {
        panic!(
            "{e}\nstdout: {}\nstderr: {}",
            stdout(output),
            stderr(output)
        )
    })
}

#[test]
fn plan_with_the_preset_alone_follows_the_legacy_app() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    let app = app_copy(dir.path());
    let output = run(uplift_in(&app, dir.path(), &registry).args([
        "plan",
        "--preset",
        "backstage",
        "--format",
        "json",
    ]));
    let plan = plan_json(&output);
    assert_eq!(plan["source"], "npm:@backstage/create-app");
    assert_eq!(plan["from"], "1.48.0");
    assert_eq!(plan["to"], "1.50.0");
    assert_eq!(plan["template_from"], "templates/default-app");
    assert_eq!(plan["template_to"], "templates/legacy-app");
    let follow_up: Vec<&str> = plan["follow_up"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["command"].as_str().unwrap())
        .collect();
    // (`yarn.lock` is untouched in the app, so the engine updates it: no `yarn install`.)
    assert_eq!(
        follow_up,
        ["yarn backstage-cli versions:migrate"],
        "{plan:#}"
    );
    // The same plan as with every setting given by hand.
    let by_hand = run(uplift_in(&app, dir.path(), &registry).args([
        "plan",
        "--upstream",
        "npm:@backstage/create-app",
        "--template",
        "templates/default-app",
        "--template",
        "1.50.0=templates/legacy-app",
        "--set",
        "name=backstage-portal",
        "--set",
        "defaultBranch=main",
        "--format",
        "json",
    ]));
    let mut by_hand = plan_json(&by_hand);
    // Without the preset there is no Backstage-specific follow-up.
    by_hand["follow_up"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "command": "yarn backstage-cli versions:migrate",
            "reason": "the app depends on Backstage packages through `backstage:^`",
        }));
    assert_eq!(by_hand, plan);

    // `releases` lists Backstage releases, the app's marked.
    let releases = run(uplift_in(&app, dir.path(), &registry).args([
        "releases",
        "--preset",
        "backstage",
        "--app",
        ".",
    ]));
    assert_eq!(
        stdout(&releases),
        "1.48.0  main  (current)\n1.49.0  main\n1.50.0  main  (latest main, latest next)\n",
        "{}",
        stderr(&releases)
    );

    // The text plan, as a person reads it.
    let text = run(uplift_in(&app, dir.path(), &registry).args(["plan", "--preset", "backstage"]));
    assert_eq!(text.status.code(), output.status.code());
    insta::assert_snapshot!("preset_backstage_plan_text", stdout(&text));

    // Three plans, one download per release: the cache serves the rest.
    let tarballs = tarball_requests(&registry);
    assert_eq!(tarballs, 2, "{:?}", registry.requests());
}

#[test]
fn an_app_on_the_new_frontend_system_follows_default_app_and_values_can_be_overridden() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    let app = app_copy(dir.path());
    std::fs::write(
        app.join("packages/app/src/App.tsx"),
        "import { createApp } from '@backstage/frontend-defaults';\n\nexport default createApp({}).createRoot();\n",
    )
    .unwrap();
    let repo = git2::Repository::init(&app).unwrap();
    repo.set_head("refs/heads/trunk").unwrap();
    // `name` overridden, `defaultBranch` from the repository's HEAD.
    let out = dir.path().join("rendered");
    let render = run(uplift_in(&app, dir.path(), &registry)
        .args(["render", "--preset", "backstage", "--release", "1.50.0"])
        .args(["--set", "name=renamed-portal", "--out"])
        .arg(&out));
    assert!(render.status.success(), "{}", stderr(&render));
    let catalog = std::fs::read_to_string(out.join("catalog-info.yaml")).unwrap();
    assert!(catalog.contains("  name: renamed-portal\n"), "{catalog}");
    let gitignore = std::fs::read_to_string(out.join(".gitignore")).unwrap();
    assert!(
        gitignore.contains("# Default branch: trunk\n"),
        "{gitignore}"
    );
    let json = run(uplift_in(&app, dir.path(), &registry).args([
        "plan",
        "--preset",
        "backstage",
        "--format",
        "json",
    ]));
    let plan = plan_json(&json);
    assert_eq!(plan["template_from"], "templates/next-app");
    assert_eq!(plan["template_to"], "templates/default-app");
}

#[test]
fn registry_errors_are_environment_errors_and_npmrc_tokens_are_used() {
    let registry = registry();
    registry.require_token("s3cret");
    let dir = tempfile::tempdir().unwrap();
    let app = app_copy(dir.path());
    let refused =
        run(uplift_in(&app, dir.path(), &registry).args(["plan", "--preset", "backstage"]));
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    let message = stderr(&refused);
    assert!(message.contains("401"), "{message}");
    assert!(message.contains("hint:"), "{message}");
    // The app's `.npmrc` gives the token, from the environment, as npm reads it.
    let host = registry.url().trim_start_matches("http:");
    std::fs::write(
        app.join(".npmrc"),
        format!("{host}/:_authToken=${{PORTAL_NPM_TOKEN}}\n"),
    )
    .unwrap();
    let accepted = run(uplift_in(&app, dir.path(), &registry)
        .env("PORTAL_NPM_TOKEN", "s3cret")
        .args(["plan", "--preset", "backstage", "--format", "json"]));
    assert_eq!(plan_json(&accepted)["to"], "1.50.0");
    assert!(!stdout(&accepted).contains("s3cret"));
    let unknown = run(uplift_in(&app, dir.path(), &registry).args(["plan", "--preset", "rails"]));
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("unknown preset \"rails\" (known: backstage)"));
}

#[test]
fn a_pipeline_with_only_the_preset_plans_the_upgrade() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    let app = app_copy(dir.path());
    std::fs::write(
        app.join("uplift.yml"),
        "name: upgrade\nupstream: { preset: backstage }\nstages:\n  upgrade: { uses: upgrade, with: { app: ., to: latest } }\n",
    )
    .unwrap();
    let output = run(uplift_in(&app, dir.path(), &registry).args(["plan", "-p", "uplift.yml"]));
    let text = stdout(&output);
    assert!(output.status.success(), "{text}\n{}", stderr(&output));
    assert!(text.contains("upgrade 1.48.0 -> 1.50.0"), "{text}");
    assert!(text.contains("> update     backstage.json"), "{text}");
    assert!(
        text.contains("> Then run: yarn backstage-cli versions:migrate"),
        "{text}"
    );
    // `apply -p FILE` reads the upstream block; the preset reads the app given by --app.
    let applied = run(uplift_in(dir.path(), dir.path(), &registry).args([
        "apply",
        "-p",
        "backstage-portal/uplift.yml",
        "--app",
        "backstage-portal",
    ]));
    assert!(applied.status.success(), "{}", stderr(&applied));
    let marker = std::fs::read_to_string(app.join("backstage.json")).unwrap();
    assert_eq!(marker, "{\n  \"version\": \"1.50.0\"\n}\n");
    let catalog = std::fs::read_to_string(app.join("catalog-info.yaml")).unwrap();
    assert!(catalog.contains("name: backstage-portal"), "{catalog}");
}

#[test]
fn apply_with_the_preset_keeps_the_customizations() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    let app = app_copy(dir.path());
    let output =
        run(uplift_in(&app, dir.path(), &registry).args(["apply", "--preset", "backstage"]));
    assert!(
        output.status.success(),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    let read = |path: &str| std::fs::read_to_string(app.join(path)).unwrap();
    assert_eq!(read("backstage.json"), "{\n  \"version\": \"1.50.0\"\n}\n");
    let config = read("app-config.yaml");
    assert!(
        config.contains("  title: ACME Developer Portal\n"),
        "{config}"
    );
    assert!(config.contains("  name: ACME Corp\n"), "{config}");
    let backend = read("packages/backend/package.json");
    assert!(
        backend.contains("\"@internal/plugin-audit-backend\": \"^1.0.0\""),
        "{backend}"
    );
    // The upstream bump of the legacy line (acme 1.2.0's versions, served as 1.50.0's).
    assert!(
        backend.contains("\"@acme/plugin-auth-backend\": \"^0.23.0\""),
        "{backend}"
    );
    assert!(app.join("packages/app/src/app/App.tsx").is_file());
    assert!(!app.join("packages/app/src/App.tsx").exists());
    // Nothing left to do afterwards.
    let again = run(uplift_in(&app, dir.path(), &registry).args(["plan", "--preset", "backstage"]));
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("Upgrade 1.50.0 -> 1.50.0"),
        "{}",
        stdout(&again)
    );
}

#[test]
fn check_with_the_preset_reads_the_app_given_by_app_not_the_working_folder() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_copy(dir.path());
    let registry = registry();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let app_arg = app.to_str().unwrap();
    let output = run(uplift_in(&elsewhere, dir.path(), &registry).args([
        "check",
        "--preset",
        "backstage",
        "--app",
        app_arg,
        "--plan",
        "--format",
        "json",
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    let doc = plan_json(&output);
    assert_eq!(doc["current"], "1.48.0");
    assert_eq!(doc["target"], "1.50.0");
    assert!(doc["files"].as_u64().unwrap() > 0, "{doc}");
}

#[test]
fn stepwise_with_the_preset_gives_each_step_its_follow_ups() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    let app = app_copy(dir.path());
    let output = run(uplift_in(&app, dir.path(), &registry).args([
        "plan",
        "--preset",
        "backstage",
        "--stepwise",
        "--format",
        "json",
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    let doc = plan_json(&output);
    let steps = doc["steps"].as_array().unwrap();
    let last = steps.last().unwrap();
    assert_eq!(last["to"], "1.50.0", "{doc:#}");
    let commands: Vec<&str> = steps
        .iter()
        .flat_map(|s| s["follow_up"].as_array().unwrap().iter())
        .map(|f| f["command"].as_str().unwrap())
        .collect();
    assert!(
        commands.contains(&"yarn backstage-cli versions:migrate"),
        "{doc:#}"
    );

    // Applied step by step, the follow-ups are printed once at the end.
    let applied = run(uplift_in(&app, dir.path(), &registry).args([
        "apply",
        "--preset",
        "backstage",
        "--stepwise",
    ]));
    assert!(applied.status.success(), "{}", stderr(&applied));
    let err = stderr(&applied);
    assert_eq!(
        err.matches("Then run: yarn backstage-cli versions:migrate")
            .count(),
        1,
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(app.join("backstage.json")).unwrap(),
        "{\n  \"version\": \"1.50.0\"\n}\n"
    );
}

#[test]
fn each_tarball_download_leaves_one_line_and_the_cache_none() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    let app = app_copy(dir.path());
    // stderr is a pipe here: plain lines, one per finished download, no bar.
    let download_lines = |output: &std::process::Output| -> Vec<String> {
        stderr(output)
            .lines()
            .filter(|l| l.contains("download "))
            .map(str::to_string)
            .collect()
    };
    let first = run(uplift_in(&app, dir.path(), &registry).args([
        "plan",
        "--preset",
        "backstage",
        "--verbose",
    ]));
    assert!(first.status.success(), "{}", stderr(&first));
    let lines = download_lines(&first);
    let tarballs = tarball_requests(&registry);
    assert_eq!(tarballs, 2, "{:?}", registry.requests());
    assert_eq!(lines.len(), tarballs, "{}", stderr(&first));
    for (line, version) in lines.iter().zip(["0.8.0", "0.9.0"]) {
        let prefix = format!("upstream | download @backstage/create-app {version}: downloaded (");
        assert!(
            line.starts_with(&prefix) && line.ends_with("B)"),
            "{line}\n{}",
            stderr(&first)
        );
    }

    // The cache serves the same plan: nothing downloaded, nothing reported.
    let second =
        run(uplift_in(&app, dir.path(), &registry).args(["plan", "--preset", "backstage"]));
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(download_lines(&second), Vec::<String>::new());

    // `--quiet` silences the lines even when something is downloaded.
    std::fs::remove_dir_all(dir.path().join("cache")).unwrap();
    let quiet = run(uplift_in(&app, dir.path(), &registry).args([
        "plan",
        "--preset",
        "backstage",
        "--quiet",
    ]));
    assert!(quiet.status.success(), "{}", stderr(&quiet));
    assert_eq!(download_lines(&quiet), Vec::<String>::new());
    let tarballs = tarball_requests(&registry);
    assert_eq!(tarballs, 4, "{:?}", registry.requests());
}

#[test]
fn a_pipeline_run_reports_the_downloads_of_its_upgrade_stage() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    let app = app_copy(dir.path());
    std::fs::write(
        app.join("uplift.yml"),
        "name: upgrade\nupstream: { preset: backstage }\nstages:\n  upgrade: { uses: upgrade, with: { app: ., to: latest } }\n",
    )
    .unwrap();
    let output = run(uplift_in(&app, dir.path(), &registry).args(["run", "-p", "uplift.yml"]));
    let err = stderr(&output);
    assert!(output.status.success(), "{}\n{err}", stdout(&output));
    let downloads: Vec<&str> = err.lines().filter(|l| l.contains("download ")).collect();
    assert_eq!(downloads.len(), 2, "{err}");
    for (line, version) in downloads.iter().zip(["0.8.0", "0.9.0"]) {
        let prefix = format!("upgrade | download @backstage/create-app {version}: downloaded (");
        assert!(line.starts_with(&prefix) && line.ends_with("B)"), "{err}");
    }
}

/// Releases of both lines, with the template move landing on a pre-release: 1.50.0-next.0 still
/// ships the old layout (`default-app` old system, `next-app`), 1.50.0-next.1 the new one
/// (`default-app` new system, `legacy-app` old), as 1.50.0 and 1.51.0-next.0 do. The versions
/// site's `next` tag names 1.51.0-next.0, `main` 1.50.0.
fn registry_with_next() -> FakeRegistry {
    let release = |release: &str, version: &str, acme_release: &str, moved: bool| {
        let templates: Vec<(&str, PathBuf)> = if moved {
            vec![
                ("default-app", acme("2.0.0", "default-app")),
                ("legacy-app", acme("1.2.0", "default-app")),
            ]
        } else {
            vec![
                ("default-app", acme(acme_release, "default-app")),
                ("next-app", acme("2.0.0", "next-app")),
            ]
        };
        let templates: Vec<(&str, &Path)> =
            templates.iter().map(|(n, p)| (*n, p.as_path())).collect();
        let mut release = FakeRelease::from_folders(
            release,
            version,
            &templates,
            &acme(acme_release, "versions.json"),
        )
        .unwrap();
        release
            .packages
            .entry("@acme/plugin-notifications-backend".into())
            .or_insert_with(|| "0.4.0".into());
        release
    };
    FakeRegistry::start(
        "@backstage/create-app",
        &[
            release("1.48.0", "0.8.0", "1.0.0", false),
            release("1.49.0", "0.8.1", "1.1.0", false),
            release("1.50.0-next.0", "0.8.2-next.0", "1.1.0", false),
            release("1.50.0-next.1", "0.8.2-next.1", "1.2.0", true),
            release("1.50.0", "0.9.0", "1.2.0", true),
            release("1.51.0-next.0", "0.9.1-next.0", "1.2.0", true),
        ],
    )
    .unwrap()
}

fn set_release(app: &Path, release: &str) {
    std::fs::write(
        app.join("backstage.json"),
        format!("{{\n  \"version\": \"{release}\"\n}}\n"),
    )
    .unwrap();
}

#[test]
fn an_app_on_the_next_line_plans_without_pre_and_is_told_about_line_next() {
    let registry = registry_with_next();
    let dir = tempfile::tempdir().unwrap();
    let app = app_copy(dir.path());
    set_release(&app, "1.50.0-next.0");
    // No `--pre`, no `--line`: the app's own pre-release resolves; `latest` is main's (1.50.0);
    // the plan suggests `--line next` and switches nothing.
    let output = run(uplift_in(&app, dir.path(), &registry).args([
        "plan",
        "--preset",
        "backstage",
        "--format",
        "json",
    ]));
    let plan = plan_json(&output);
    assert_eq!(plan["from"], "1.50.0-next.0");
    assert_eq!(plan["to"], "1.50.0");
    assert_eq!(plan["line"], "main");
    // The move landed between these two: the old system follows `legacy-app` from 1.50.0.
    assert_eq!(plan["template_from"], "templates/default-app");
    assert_eq!(plan["template_to"], "templates/legacy-app");
    let notes = plan["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{plan:#}");
    assert!(
        notes[0].as_str().unwrap().contains("`--line next`"),
        "{plan:#}"
    );
    let text = run(uplift_in(&app, dir.path(), &registry).args(["plan", "--preset", "backstage"]));
    assert!(text.status.success(), "{}", stderr(&text));
    insta::assert_snapshot!(
        "preset_backstage_next_app_on_main_plan_text",
        stdout(&text).lines().take(2).collect::<Vec<_>>().join("\n")
    );

    // On the next line, `latest` is what the versions site's `v1/tags/next` names.
    let next = run(uplift_in(&app, dir.path(), &registry).args([
        "plan",
        "--preset",
        "backstage",
        "--line",
        "next",
        "--format",
        "json",
    ]));
    let plan = plan_json(&next);
    assert_eq!(plan["to"], "1.51.0-next.0");
    assert_eq!(plan["line"], "next");
    assert_eq!(plan["notes"], serde_json::json!([]));
    // Both versions-site tags were read (next's latest is the newer of the two).
    let paths: Vec<String> = registry.requests().into_iter().map(|r| r.path).collect();
    assert!(paths.contains(&"/v1/tags/next/manifest.json".to_string()));
    assert!(!paths.iter().any(|p| p == "/v1/releases"), "{paths:?}");
}

#[test]
fn a_template_move_on_a_pre_release_is_followed_from_that_pre_release() {
    let registry = registry_with_next();
    let dir = tempfile::tempdir().unwrap();
    let app = app_copy(dir.path());
    set_release(&app, "1.49.0");
    let plan = |to: &str| {
        plan_json(&run(uplift_in(&app, dir.path(), &registry).args([
            "plan",
            "--preset",
            "backstage",
            "--line",
            "next",
            "--to",
            to,
            "--format",
            "json",
        ])))
    };
    let before = plan("1.50.0-next.0");
    assert_eq!(before["template_to"], "templates/default-app", "{before:#}");
    let moved = plan("1.50.0-next.1");
    assert_eq!(moved["template_to"], "templates/legacy-app", "{moved:#}");
    // Stepwise on the next line goes through every pre-release, in semver order.
    let stepwise = plan_json(&run(uplift_in(&app, dir.path(), &registry).args([
        "plan",
        "--preset",
        "backstage",
        "--line",
        "next",
        "--stepwise",
        "--format",
        "json",
    ])));
    let steps: Vec<&str> = stepwise["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["to"].as_str().unwrap())
        .collect();
    // The move merges with the app's customizations (its App.tsx by syntax, its package.json
    // key by key), so the steps go on through every release of the line, in semver order.
    assert_eq!(
        steps,
        ["1.50.0-next.0", "1.50.0-next.1", "1.50.0", "1.51.0-next.0"],
        "{stepwise:#}"
    );
    assert_eq!(
        stepwise["stopped_at"],
        serde_json::Value::Null,
        "{stepwise:#}"
    );
    let templates: Vec<&str> = stepwise["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["template_to"].as_str().unwrap())
        .collect();
    assert_eq!(
        templates,
        [
            "templates/default-app",
            "templates/legacy-app",
            "templates/legacy-app",
            "templates/legacy-app"
        ],
        "{stepwise:#}"
    );
}

#[test]
fn releases_mark_each_line_and_check_reports_the_line() {
    let registry = registry_with_next();
    let dir = tempfile::tempdir().unwrap();
    let app = app_copy(dir.path());
    set_release(&app, "1.50.0-next.0");
    let releases = run(uplift_in(&app, dir.path(), &registry).args([
        "releases",
        "--preset",
        "backstage",
        "--app",
        ".",
        "--line",
        "next",
    ]));
    assert!(releases.status.success(), "{}", stderr(&releases));
    insta::assert_snapshot!("preset_backstage_releases_next", stdout(&releases));
    // On main, pre-releases are hidden, but the app's own is shown (it is where the app is).
    let main = run(uplift_in(&app, dir.path(), &registry).args([
        "releases",
        "--preset",
        "backstage",
        "--app",
        ".",
    ]));
    assert_eq!(
        stdout(&main),
        "1.48.0         main\n1.49.0         main\n1.50.0-next.0  next  (current)\n1.50.0         main  (latest main)\n",
        "{}",
        stderr(&main)
    );

    let check = |line: &str| {
        run(uplift_in(&app, dir.path(), &registry)
            .env("GITHUB_OUTPUT", dir.path().join(format!("out-{line}")))
            .args(["check", "--preset", "backstage", "--line", line, "--github"])
            .args(["--format", "json"]))
    };
    let next = check("next");
    assert!(next.status.success(), "{}", stderr(&next));
    let doc = plan_json(&next);
    assert_eq!(doc["line"], "next");
    assert_eq!(doc["current"], "1.50.0-next.0");
    assert_eq!(doc["target"], "1.51.0-next.0");
    assert_eq!(doc["latest"], "1.51.0-next.0");
    let outputs = std::fs::read_to_string(dir.path().join("out-next")).unwrap();
    let outputs: std::collections::BTreeMap<String, String> =
        uplift_github::parse_outputs(&outputs)
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(outputs["line"], "next");
    assert_eq!(outputs["target"], "1.51.0-next.0");
    let main = check("main");
    let doc = plan_json(&main);
    assert_eq!(doc["line"], "main");
    assert_eq!(doc["target"], "1.50.0");
    // `--line main` given on purpose: no suggestion.
    assert_eq!(doc["notes"], serde_json::json!([]));
}

#[test]
fn an_unknown_pre_release_suggests_pre_and_line() {
    let registry = registry_with_next();
    let dir = tempfile::tempdir().unwrap();
    let app = app_copy(dir.path());
    let output = run(uplift_in(&app, dir.path(), &registry).args([
        "plan",
        "--preset",
        "backstage",
        "--to",
        "1.51.0-next.0",
    ]));
    assert_eq!(output.status.code(), Some(2));
    insta::assert_snapshot!("preset_backstage_unknown_pre_release", stderr(&output));
}

#[test]
fn the_yarnrc_of_the_app_names_the_registry_and_its_token() {
    let registry = registry();
    registry.require_token("yarn-s3cret");
    let dir = tempfile::tempdir().unwrap();
    let app = app_copy(dir.path());
    // A yarn 4 app: `.yarnrc.yml` only (yarn reads no `.npmrc`), a scope registry and a token
    // from the environment.
    std::fs::write(
        app.join(".yarnrc.yml"),
        format!(
            "nodeLinker: node-modules\nnpmRegistryServer: \"https://registry.invalid\"\nnpmScopes:\n  backstage:\n    npmRegistryServer: \"{url}\"\n    npmAuthToken: \"${{PORTAL_TOKEN}}\"\n",
            url = registry.url()
        ),
    )
    .unwrap();
    let mut command = uplift_in(&app, dir.path(), &registry);
    command
        .env_remove("UPLIFT_NPM_REGISTRY")
        .env("PORTAL_TOKEN", "yarn-s3cret");
    let output = run(command.args(["plan", "--preset", "backstage", "--format", "json"]));
    assert_eq!(plan_json(&output)["to"], "1.50.0", "{}", stderr(&output));
    let tarball = registry
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with(".tgz"))
        .unwrap();
    assert_eq!(tarball.authorization.as_deref(), Some("Bearer yarn-s3cret"));
}
