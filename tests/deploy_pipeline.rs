//! `uses: deploy` through `uplift run` on a real Docker engine: a healthy release, then a broken
//! one that fails the stage with its diagnostics while the old one keeps serving; `--plan`
//! describes the deploy and masks nothing it should not show. With `CI=true`, a missing Docker
//! engine fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use uplift_testkit::docker::{self, TargetCleanup, build_deploy_fixture};
use uplift_testkit::per_process;

fn pipeline(dir: &Path, target: &str, tag: &str) -> PathBuf {
    let path = dir.join(format!("deploy-{tag}.yml"));
    std::fs::write(
        &path,
        format!(
            r#"name: deploy-fixture
stages:
  deploy:
    uses: deploy
    with:
      name: {target}
      image: uplift-deploy-fixture:{tag}
      replicas: 2
      health: {{ image: true, timeout: 8 }}
      drain-ms: 200
      env: {{ MODE: test }}
      secrets: {{ API_TOKEN: "${{{{ secrets.API_TOKEN }}}}" }}
"#
        ),
    )
    .unwrap();
    path
}

fn uplift(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_uplift"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env("XDG_RUNTIME_DIR", dir)
        .env("UPLIFT_SECRET_API_TOKEN", "tok-5b1c-secret")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// The release of each running container of the target.
fn running(target: &str) -> Vec<String> {
    docker::target_containers(target, false, "{{.Label \"dev.uplift.deploy.release\"}}")
}

#[test]
fn deploy_stage_rolls_out_and_a_broken_release_fails_with_diagnostics() {
    if !docker::available() {
        return;
    }
    build_deploy_fixture("v1", "Dockerfile");
    build_deploy_fixture("broken", "Dockerfile.broken");
    let target = per_process("upt-pipe");
    let _cleanup = TargetCleanup::new(&target, &target);
    let dir = tempfile::tempdir().unwrap();

    let plan = uplift(
        dir.path(),
        &[
            "run",
            "--plan",
            "-p",
            pipeline(dir.path(), &target, "v1").to_str().unwrap(),
        ],
    );
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        plan.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    assert!(
        text.contains(&format!(
            "deploy uplift-deploy-fixture:v1 to Docker target {target}"
        )),
        "{text}"
    );
    assert!(text.contains("secret environment: API_TOKEN"), "{text}");
    assert!(!text.contains("tok-5b1c-secret"), "{text}");
    assert!(running(&target).is_empty(), "a plan deploys nothing");

    let run = uplift(
        dir.path(),
        &[
            "run",
            "-p",
            pipeline(dir.path(), &target, "v1").to_str().unwrap(),
        ],
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "{all}");
    assert!(
        all.contains(&format!("release 1 of {target} serving: 2 started")),
        "{all}"
    );
    assert!(!all.contains("tok-5b1c-secret"), "{all}");
    assert_eq!(running(&target), vec!["1", "1"]);
    let env = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{json .Config.Labels}}",
            &format!("{target}-1-0"),
        ])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&env.stdout).contains("tok-5b1c-secret"),
        "secrets stay out of the release record"
    );

    let run = uplift(
        dir.path(),
        &[
            "run",
            "-p",
            pipeline(dir.path(), &target, "broken").to_str().unwrap(),
        ],
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(run.status.code(), Some(1), "{all}");
    assert!(all.contains("never got healthy"), "{all}");
    assert!(all.contains("migration 0042 failed"), "{all}");
    assert_eq!(
        running(&target),
        vec!["1", "1"],
        "the old release keeps serving"
    );
}

#[test]
fn kubernetes_deploy_plan_lists_the_manifests_without_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k8s.yml");
    std::fs::write(
        &path,
        "name: k8s\nstages:\n  deploy:\n    uses: deploy\n    with:\n      target: kubernetes\n      name: portal\n      \
         image: registry.local/portal@sha256:2222222222222222222222222222222222222222222222222222222222222222\n      \
         kubernetes:\n        namespace: web\n        ingress: { host: portal.example.com }\n        \
         services: { catalog: { plugins: [catalog, search] }, web: { plugins: [app] } }\n",
    )
    .unwrap();
    // No kubeconfig: kubectl's default server is on loopback and refuses at once.
    let out = Command::new(env!("CARGO_BIN_EXE_uplift"))
        .args(["run", "--plan", "-p"])
        .arg(&path)
        .arg("--dir")
        .arg(dir.path())
        .env("KUBECONFIG", dir.path().join("no-kubeconfig"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "server-side apply ConfigMap portal-discovery",
        "server-side apply Deployment portal-catalog",
        "server-side apply Ingress portal",
        "previous release unknown, no diff shown",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
    // An unpinned image is refused by the plan already.
    std::fs::write(
        &path,
        std::fs::read_to_string(&path).unwrap().replace(
            "@sha256:2222222222222222222222222222222222222222222222222222222222222222",
            ":1.0",
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_uplift"))
        .args(["run", "--plan", "-p"])
        .arg(&path)
        .arg("--dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success() && all.contains("not pinned by digest"),
        "{all}"
    );
}
