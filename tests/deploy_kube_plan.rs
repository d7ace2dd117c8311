//! `uplift plan -p FILE` (and `uplift run --plan`) of a Kubernetes deploy: the rendered
//! manifests, and a unified diff against the current release record read from the cluster.
//! No API server exists here: `kubectl` is a stand-in script on `PATH` that answers `get
//! configmap` with a recorded API response (`fixtures/deploy/kube/configmap-releases.json`,
//! release 1 of the app) or, in the unreachable mode, fails as kubectl does when no server
//! answers. The plan must never fail for want of a cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PIPELINE: &str = r#"name: k8s
stages:
  image:
    uses: run
    outputs: [image]
    with: { run: echo image=registry.local/portal@sha256:... >> "$UPLIFT_OUTPUT" }
  deploy:
    uses: deploy
    needs: image
    with:
      target: kubernetes
      name: portal
      image: ${{ stages.image.outputs.image }}
      replicas: 3
      kubernetes:
        namespace: web
        ingress: { host: portal.example.com }
        services:
          catalog: { plugins: [catalog, search] }
          web: { plugins: [app, auth] }
"#;

/// A `kubectl` that logs its arguments and answers from the recorded response.
const FAKE_KUBECTL: &str = r#"#!/bin/sh
echo "$*" >> "$FAKE_KUBECTL_LOG"
if [ "$FAKE_KUBECTL_MODE" = unreachable ]; then
  echo 'E1128 21:05:16.465271   24947 memcache.go:265] "Unhandled Error" err="couldn'"'"'t get current server API group list"' >&2
  echo 'The connection to the server localhost:8080 was refused - did you specify the right host or port?' >&2
  exit 1
fi
case "$*" in
  *"get configmap portal-uplift-releases -n web -o json"*) cat "$FAKE_KUBECTL_ANSWER"; exit 0 ;;
esac
echo "Error from server (NotFound): unexpected request: $*" >&2
exit 1
"#;

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k8s.yml"), PIPELINE).unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let kubectl = bin.join("kubectl");
        std::fs::write(&kubectl, FAKE_KUBECTL).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&kubectl, std::fs::Permissions::from_mode(0o755)).unwrap();
        Setup { dir }
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("kubectl.log")
    }

    fn uplift(&self, args: &[&str], mode: &str) -> Output {
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let answer = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/deploy/kube/configmap-releases.json");
        Command::new(env!("CARGO_BIN_EXE_uplift"))
            .args(args)
            .current_dir(self.dir.path())
            .env("PATH", path)
            .env("FAKE_KUBECTL_LOG", self.log())
            .env("FAKE_KUBECTL_MODE", mode)
            .env("FAKE_KUBECTL_ANSWER", answer)
            .env("NO_COLOR", "1")
            .env_remove("UPLIFT_LOG")
            .output()
            .unwrap()
    }
}

/// The run stage's plan names the test's temporary folder: kept out of the snapshot.
fn snapshot(name: &str, text: &str) {
    insta::with_settings!({filters => vec![(r"/tmp/\.tmp[A-Za-z0-9]+", "<tmp>")]}, {
        insta::assert_snapshot!(name, text);
    });
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn plan_diffs_the_manifests_against_the_recorded_release() {
    let setup = Setup::new();
    let text = stdout(&setup.uplift(&["plan", "-p", "k8s.yml"], "recorded"));
    snapshot("kube_plan_diff", &text);
    // What changed since release 1, and only that.
    for line in [
        "diff against release 1 (current):",
        "--- release 1",
        "+++ planned",
        "-  replicas: 2",
        "+  replicas: 3",
        "-        image: registry.local/portal@sha256:1111111111111111111111111111111111111111111111111111111111111111",
        "+        image: ${{ stages.image.outputs.image }}",
        "+        path: /api/search",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
    // The plan only read the release records (with a short timeout); it applied nothing.
    let calls = std::fs::read_to_string(setup.log()).unwrap();
    assert_eq!(
        calls,
        "--request-timeout=5s get configmap portal-uplift-releases -n web -o json\n"
    );

    // `run --plan` is the same plan; the JSON form carries the manifests and the diff.
    let json = stdout(&setup.uplift(
        &["run", "--plan", "-p", "k8s.yml", "--format", "json"],
        "recorded",
    ));
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    let detail = &plan["stages"][1]["plan"]["detail"];
    assert_eq!(detail["previous-release"], "1");
    assert!(detail["diff"].as_str().unwrap().contains("+  replicas: 3"));
    assert!(
        detail["manifests"]
            .as_str()
            .unwrap()
            .contains("name: portal-catalog")
    );
}

#[test]
fn plan_without_a_cluster_shows_the_manifests_and_says_why_there_is_no_diff() {
    let setup = Setup::new();
    let out = setup.uplift(&["plan", "-p", "k8s.yml"], "unreachable");
    let text = stdout(&out);
    snapshot("kube_plan_unreachable", &text);
    assert!(
        text.contains(
            "previous release unknown, no diff shown: the release records could not be read \
             (The connection to the server localhost:8080 was refused - did you specify the right host or port?)"
        ),
        "{text}"
    );
    assert!(!text.contains("+++ planned"), "{text}");
    assert!(text.contains("kind: Deployment"), "{text}");
}
