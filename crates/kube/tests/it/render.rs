//! Rendered manifests: snapshots, and offline validation against the Kubernetes 1.33 schemas.

use std::collections::BTreeMap;
use std::process::Command;

use uplift_kube::spec::{
    IngressSpec, NetworkPolicySpec, PeerSpec, Resources, SecretKeyRef, SplitService,
};
use uplift_kube::{Error, KubeSpec, render, to_yaml};

pub const IMAGE_V2: &str = "registry.local/backstage@sha256:2222222222222222222222222222222222222222222222222222222222222222";

pub fn single() -> KubeSpec {
    KubeSpec::new("backstage", IMAGE_V2)
}

pub fn replicas() -> KubeSpec {
    let mut spec = single();
    spec.namespace = "portal".into();
    spec.replicas = 3;
    spec.env = BTreeMap::from([("NODE_ENV".into(), "production".into())]);
    spec.secret_env = BTreeMap::from([(
        "POSTGRES_PASSWORD".into(),
        SecretKeyRef {
            secret: "backstage-db".into(),
            key: "password".into(),
        },
    )]);
    spec.secrets = vec!["backstage-tokens".into()];
    spec.config = BTreeMap::from([(
        "APP_CONFIG_app_baseUrl".into(),
        "https://portal.example.com".into(),
    )]);
    spec.postgres.host = "postgres.db.svc.cluster.local".into();
    spec.ingress = Some(IngressSpec {
        host: "portal.example.com".into(),
        class_name: Some("nginx".into()),
        tls_secret: Some("portal-tls".into()),
    });
    spec.resources = Some(Resources {
        cpu: Some("1".into()),
        memory: Some("1Gi".into()),
    });
    spec
}

pub fn split() -> KubeSpec {
    let mut spec = single();
    spec.replicas = 2;
    spec.services = BTreeMap::from([
        (
            "catalog".into(),
            SplitService {
                plugins: vec!["catalog".into(), "search".into()],
                replicas: Some(3),
            },
        ),
        (
            "scaffolder".into(),
            SplitService {
                plugins: vec!["scaffolder".into()],
                replicas: None,
            },
        ),
        (
            "web".into(),
            SplitService {
                plugins: vec!["app".into(), "auth".into(), "proxy".into()],
                replicas: None,
            },
        ),
    ]);
    spec.ingress = Some(IngressSpec {
        host: "portal.example.com".into(),
        class_name: None,
        tls_secret: None,
    });
    spec
}

/// The replicas shape in its own namespace, behind a NetworkPolicy: what a production
/// cluster gets when every optional protection is on.
pub fn policed() -> KubeSpec {
    let mut spec = replicas();
    spec.secret_env.clear();
    spec.postgres.password = Some(SecretKeyRef {
        secret: "backstage-db".into(),
        key: "password".into(),
    });
    spec.postgres.sslmode = Some("verify-full".into());
    spec.network_policy = Some(NetworkPolicySpec {
        ingress_namespace: Some("ingress-nginx".into()),
        database: Some(PeerSpec {
            namespace: Some("db".into()),
            pod_labels: BTreeMap::from([("app".into(), "postgres".into())]),
            ..Default::default()
        }),
        cache: Some(PeerSpec {
            cidr: Some("10.20.0.0/16".into()),
            ..Default::default()
        }),
        cache_port: 6379,
        egress_cidrs: vec!["140.82.112.0/20".into()],
    });
    spec
}

/// Every shape the tests render: (name, spec).
pub fn shapes() -> Vec<(&'static str, KubeSpec)> {
    vec![
        ("single", single()),
        ("replicas", replicas()),
        ("split", split()),
        ("policed", policed()),
    ]
}

fn yaml(spec: &KubeSpec) -> String {
    to_yaml(&render(spec).unwrap().to_values().unwrap()).unwrap()
}

#[test]
fn single_backend_manifests() {
    insta::assert_snapshot!("single", yaml(&single()));
}

#[test]
fn replicas_manifests() {
    insta::assert_snapshot!("replicas", yaml(&replicas()));
}

#[test]
fn network_policy_manifests() {
    insta::assert_snapshot!("policed", yaml(&policed()));
}

#[test]
fn split_backends_manifests() {
    let text = yaml(&split());
    insta::assert_snapshot!("split", text);
    // Discovery: every plugin maps to the service that runs it.
    let manifests = render(&split()).unwrap().to_values().unwrap();
    let discovery = manifests
        .iter()
        .find(|v| v["metadata"]["name"] == "backstage-discovery")
        .unwrap();
    let endpoints: serde_json::Value = serde_json::from_str(
        discovery["data"]["APP_CONFIG_discovery_endpoints"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let catalog = endpoints
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["plugins"][0] == "catalog")
        .unwrap();
    assert_eq!(
        catalog["target"],
        "http://backstage-catalog.default.svc.cluster.local:7007/api/{{pluginId}}"
    );
    let ingress = manifests.iter().find(|v| v["kind"] == "Ingress").unwrap();
    let paths = ingress
        .pointer("/spec/rules/0/http/paths")
        .unwrap()
        .as_array()
        .unwrap();
    let route = |p: &str| {
        paths
            .iter()
            .find(|x| x["path"] == p)
            .unwrap()
            .pointer("/backend/service/name")
            .unwrap()
            .clone()
    };
    assert_eq!(route("/api/search"), "backstage-catalog");
    assert_eq!(route("/api/scaffolder"), "backstage-scaffolder");
    assert_eq!(route("/"), "backstage-web");
}

#[test]
fn postgres_env_is_explicit_and_service_links_are_off() {
    for spec in [single(), replicas(), split()] {
        for value in render(&spec).unwrap().to_values().unwrap() {
            if value["kind"] != "Deployment" {
                continue;
            }
            assert_eq!(
                value
                    .pointer("/spec/template/spec/enableServiceLinks")
                    .unwrap(),
                false
            );
            let env = value
                .pointer("/spec/template/spec/containers/0/env")
                .unwrap()
                .as_array()
                .unwrap();
            let port = env.iter().find(|e| e["name"] == "POSTGRES_PORT").unwrap();
            assert_eq!(port["value"], "5432");
            assert!(env.iter().any(|e| e["name"] == "POSTGRES_HOST"));
        }
    }
}

#[test]
fn refuses_unpinned_images_and_bad_settings() {
    let mut spec = single();
    spec.image = "registry.local/backstage:1.2.3".into();
    assert!(matches!(render(&spec), Err(Error::NotPinned { .. })));
    spec.image = "registry.local/backstage@sha256:abc".into();
    assert!(matches!(render(&spec), Err(Error::NotPinned { .. })));
    let mut spec = split();
    spec.services
        .get_mut("scaffolder")
        .unwrap()
        .plugins
        .push("catalog".into());
    let error = render(&spec).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("plugin catalog is listed by both"),
        "{error}"
    );
    let mut spec = single();
    spec.name = "Backstage".into();
    assert!(matches!(render(&spec), Err(Error::InvalidName { .. })));
}

#[test]
fn settings_parse_from_a_with_block() {
    let with = r#"
name: backstage
image: registry.local/backstage@sha256:2222222222222222222222222222222222222222222222222222222222222222
replicas: 2
services:
  catalog: { plugins: [catalog, search] }
  scaffolder: { plugins: [scaffolder] }
"#;
    let spec: KubeSpec = serde_yaml::from_str(with).unwrap();
    assert_eq!(spec.services["catalog"].plugins, vec!["catalog", "search"]);
    assert_eq!(spec.probes.readiness, "/.backstage/health/v1/readiness");
    let bad = "name: b\nimage: x\nreplica: 2\n";
    assert!(serde_yaml::from_str::<KubeSpec>(bad).is_err());
}

/// Validates the three manifest sets with `kubernetes-validate` (PyPI) against the 1.33
/// schemas, strictly (unknown fields rejected). Missing tool: a failure when `CI=true`.
#[test]
fn manifests_validate_against_kubernetes_schemas() {
    let available = Command::new("kubernetes-validate")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        uplift_testkit::missing(
            "kubernetes-validate is not installed (pip install kubernetes-validate)",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, spec) in shapes() {
        let path = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, yaml(&spec)).unwrap();
        files.push(path);
    }
    let out = Command::new("kubernetes-validate")
        .args(["-k", "1.33.0", "--strict"])
        .args(&files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubernetes-validate failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every object reported as passing.
    let objects: usize = shapes()
        .iter()
        .map(|(_, spec)| render(spec).unwrap().objects.len())
        .sum();
    let passed = stdout
        .lines()
        .filter(|l| l.contains("INFO") && l.contains("passed"))
        .count();
    assert_eq!(passed, objects, "{stdout}");

    // The validator does catch a broken manifest (so the check above can fail).
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        yaml(&single()).replace("containerPort: 7007", "containerPort: seven"),
    )
    .unwrap();
    let out = Command::new("kubernetes-validate")
        .args(["-k", "1.33.0", "--strict"])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
