//! `uplift rollback NAME --target kubernetes --with-data`, end to end through the `kubectl`
//! implementation of the cluster API: `kubectl` is a stand-in (Python) on `PATH` that keeps the
//! cluster's state in a folder (the release-records ConfigMap, whether the Deployment is
//! scaled to 0), answers as the API does, and logs every call with the rows the database held
//! at that moment. The database is the real PostgreSQL on 127.0.0.1:5432. With `CI=true`, a
//! missing PostgreSQL fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use uplift_stages::deploy::kube::{self, KubeSpec, ReleaseRecord};
use uplift_testkit::postgres::{Db, PASSWORD};

const IMAGE_V1: &str = "registry.local/backstage@sha256:1111111111111111111111111111111111111111111111111111111111111111";
const IMAGE_V2: &str = "registry.local/backstage@sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// The stand-in: `get configmap`, `get deployment`, `get pods`, `apply --server-side -f -`.
const FAKE_KUBECTL: &str = r#"#!/usr/bin/env python3
import json, os, subprocess, sys
state = os.environ["FAKE_KUBE_STATE"]
args = [a for a in sys.argv[1:] if not a.startswith("--request-timeout") and not a.startswith("--context")]

def rows():
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-tA", "-d", os.environ["FAKE_KUBE_DB"],
                          "-c", "select string_agg(id || ':' || name, ',' order by id) from items"],
                         capture_output=True, text=True, env=dict(os.environ, PGPASSWORD="uplift-pg-test"))
    return out.stdout.strip()

def log(line):
    with open(os.path.join(state, "log"), "a") as f:
        f.write(line + " | " + rows() + "\n")

def not_found(what):
    sys.stderr.write('Error from server (NotFound): %s not found\n' % what)
    sys.exit(1)

if args[:1] == ["apply"]:
    obj = json.load(sys.stdin)
    kind, name = obj["kind"], obj["metadata"]["name"]
    line = "apply %s/%s" % (kind, name)
    if kind == "Deployment":
        image = obj["spec"]["template"]["spec"]["containers"][0]["image"]
        version = "v1" if image.endswith("1111") else "v2"
        replicas = obj["spec"]["replicas"]
        line += " %s x%d" % (version, replicas)
        with open(os.path.join(state, "replicas"), "w") as f:
            f.write(str(replicas))
        with open(os.path.join(state, "pods"), "w") as f:
            f.write(str(replicas if replicas else 1))  # one pod still terminating after a scale to 0
    if kind == "ConfigMap":
        with open(os.path.join(state, "configmap.json"), "w") as f:
            json.dump(obj, f)
    log(line)
    print("%s/%s serverside-applied" % (kind.lower(), name))
elif args[:2] == ["get", "configmap"]:
    path = os.path.join(state, "configmap.json")
    if not os.path.exists(path):
        not_found('configmaps "%s"' % args[2])
    print(open(path).read())
elif args[:2] == ["get", "deployment"]:
    replicas = int(open(os.path.join(state, "replicas")).read())
    print(json.dumps({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": args[2], "namespace": "default", "generation": 3},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app.kubernetes.io/name": "backstage"}},
                 "template": {"spec": {"containers": [{"name": "backend"}]}}},
        "status": {"observedGeneration": 3, "replicas": replicas, "updatedReplicas": replicas,
                   "readyReplicas": replicas, "availableReplicas": replicas}}))
elif args[:2] == ["get", "pods"]:
    path = os.path.join(state, "pods")
    count = int(open(path).read())
    replicas = int(open(os.path.join(state, "replicas")).read())
    log("pods: %d" % count)
    if replicas == 0:
        with open(path, "w") as f:
            f.write("0")
    items = [{"metadata": {"name": "backstage-%d" % i}} for i in range(count)]
    print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
else:
    sys.stderr.write("unexpected: %s\n" % " ".join(sys.argv[1:]))
    sys.exit(2)
"#;

fn record(id: &str, image: &str, previous: Option<&str>, backup: Option<String>) -> ReleaseRecord {
    let mut spec = KubeSpec::new("backstage", image);
    spec.replicas = 3;
    ReleaseRecord {
        id: id.into(),
        app: "backstage".into(),
        image: image.into(),
        created: 1_795_900_000,
        manifests: kube::render(&spec).unwrap().to_values().unwrap(),
        previous: previous.map(str::to_owned),
        backup,
    }
}

#[test]
fn rollback_with_data_through_kubectl_stops_restores_then_starts_the_older_release() {
    let Some(db) = Db::create(
        format!("uplift_k8s_cli_{}", std::process::id()),
        "create table items (id int primary key, name text not null); insert into items values (1, 'one'), (2, 'two')",
    ) else {
        return;
    };

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    let kubectl = bin.join("kubectl");
    std::fs::write(&kubectl, FAKE_KUBECTL).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&kubectl, std::fs::Permissions::from_mode(0o755)).unwrap();

    // The dump taken before release 2, then release 2's "migration".
    let dump = dir.path().join("before-2.dump");
    let out = Command::new("pg_dump")
        .args(["-h", "127.0.0.1", "-U", "postgres", "--format=custom"])
        .arg(format!("--file={}", dump.display()))
        .arg(format!("--dbname={}", db.0))
        .env("PGPASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    db.exec("delete from items where id = 2; update items set name = 'ONE' where id = 1");
    assert_eq!(db.rows(), "1:ONE");

    // The cluster as release 2 left it: records 1 and 2, v2 serving 3 replicas.
    let data = serde_json::json!({
        "current": "2",
        "release-1": serde_json::to_string(&record("1", IMAGE_V1, None, None)).unwrap(),
        "release-2": serde_json::to_string(&record("2", IMAGE_V2, Some("1"), Some(dump.display().to_string()))).unwrap(),
    });
    let configmap = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "backstage-uplift-releases", "namespace": "default", "resourceVersion": "512"},
        "data": data,
    });
    std::fs::write(state.join("configmap.json"), configmap.to_string()).unwrap();
    std::fs::write(state.join("replicas"), "3").unwrap();
    std::fs::write(state.join("pods"), "3").unwrap();

    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_uplift"))
            .args([
                "rollback",
                "backstage",
                "--target",
                "kubernetes",
                "--with-data",
                "--pg-database",
                &db.0,
            ])
            .args(extra)
            .env("PATH", &path)
            .env("PGPASSWORD", PASSWORD)
            .env("FAKE_KUBE_STATE", &state)
            .env("FAKE_KUBE_DB", &db.0)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let out = run(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(
        stdout.trim(),
        format!("rolled back backstage to release 1 (image {IMAGE_V1}), database restored")
    );
    assert_eq!(db.rows(), "1:one,2:two");
    let log = std::fs::read_to_string(state.join("log")).unwrap();
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            "apply Deployment/backstage v2 x0 | 1:ONE",
            "pods: 1 | 1:ONE",
            "pods: 0 | 1:ONE",
            "apply Service/backstage | 1:one,2:two",
            "apply Deployment/backstage v1 x3 | 1:one,2:two",
            "apply PodDisruptionBudget/backstage | 1:one,2:two",
            "apply ConfigMap/backstage-uplift-releases | 1:one,2:two",
        ],
        "{log}"
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("configmap.json")).unwrap())
            .unwrap();
    assert_eq!(saved["data"]["current"], "1");

    // Forward to release 2 with data: release 1 (now current) has no backup, so this is
    // refused (exit 2) before anything is stopped.
    std::fs::remove_file(state.join("log")).unwrap();
    let out = run(&["--to", "2"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("release 1 has no database backup to restore"),
        "{out:?}"
    );
    assert!(!state.join("log").exists(), "no cluster change was made");
}
