//! The rendered manifests are ready for a production cluster: checkov's Kubernetes checks and
//! the Pod Security Standards "restricted" profile pass on every shape, each protection can be
//! relaxed by its setting, and the database settings reach the app as create-app reads them.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;
use uplift_kube::spec::SecretKeyRef;
use uplift_kube::{Error, KubeSpec, render, to_yaml};

use crate::render::{policed, replicas, shapes, single, split};

fn values(spec: &KubeSpec) -> Vec<Value> {
    render(spec).unwrap().to_values().unwrap()
}

fn deployments(spec: &KubeSpec) -> Vec<Value> {
    values(spec)
        .into_iter()
        .filter(|v| v["kind"] == "Deployment")
        .collect()
}

fn kinds(spec: &KubeSpec) -> Vec<(String, String)> {
    values(spec)
        .iter()
        .map(|v| {
            (
                v["kind"].as_str().unwrap().to_owned(),
                v["metadata"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The Pod Security Standards "restricted" profile, rule by rule as the Kubernetes
/// documentation lists it (kubernetes.io/docs/concepts/security/pod-security-standards),
/// applied to a pod spec. Returns the rules the pod breaks.
fn restricted_violations(pod: &Value) -> Vec<String> {
    let mut broken = Vec::new();
    let mut check = |ok: bool, rule: &str| {
        if !ok {
            broken.push(rule.to_owned());
        }
    };
    let pod_ctx = &pod["securityContext"];
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        check(pod[host] != true, host);
    }
    let allowed_volumes = [
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    for volume in pod["volumes"].as_array().into_iter().flatten() {
        let kinds: Vec<&String> = volume
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "name")
            .collect();
        check(
            kinds.iter().all(|k| allowed_volumes.contains(&k.as_str())),
            "volume types",
        );
    }
    let seccomp_ok = |ctx: &Value| {
        matches!(
            ctx["seccompProfile"]["type"].as_str(),
            Some("RuntimeDefault" | "Localhost")
        )
    };
    let containers = pod["containers"].as_array().unwrap();
    for c in containers {
        let ctx = &c["securityContext"];
        check(ctx["privileged"] != true, "privileged");
        check(
            ctx["allowPrivilegeEscalation"] == false,
            "allowPrivilegeEscalation",
        );
        let drops = ctx["capabilities"]["drop"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        check(drops.iter().any(|d| d == "ALL"), "capabilities drop ALL");
        let adds = ctx["capabilities"]["add"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        check(
            adds.iter().all(|a| a == "NET_BIND_SERVICE"),
            "capabilities add",
        );
        check(
            ctx["runAsNonRoot"] == true || pod_ctx["runAsNonRoot"] == true,
            "runAsNonRoot",
        );
        check(
            ctx["runAsUser"] != 0 && pod_ctx["runAsUser"] != 0,
            "runAsUser != 0",
        );
        check(seccomp_ok(ctx) || seccomp_ok(pod_ctx), "seccompProfile");
        check(
            c["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|p| p.get("hostPort").is_none()),
            "hostPort",
        );
    }
    broken
}

#[test]
fn every_shape_meets_the_restricted_pod_security_standard() {
    for (name, spec) in shapes() {
        for d in deployments(&spec) {
            let pod = &d["spec"]["template"]["spec"];
            let broken = restricted_violations(pod);
            assert!(broken.is_empty(), "{name}: {broken:?}");
        }
    }
    // The checker does catch a relaxed pod (so the loop above can fail).
    let mut spec = single();
    spec.pod.run_as_user = 10001;
    let mut d = deployments(&spec).remove(0);
    d["spec"]["template"]["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] =
        Value::Bool(true);
    d["spec"]["template"]["spec"]["volumes"] =
        serde_json::json!([{ "name": "h", "hostPath": { "path": "/" } }]);
    let broken = restricted_violations(&d["spec"]["template"]["spec"]);
    assert_eq!(broken, ["volume types", "allowPrivilegeEscalation"]);
}

#[test]
fn production_defaults_on_every_deployment() {
    for (name, spec) in shapes() {
        for d in deployments(&spec) {
            let pod = &d["spec"]["template"]["spec"];
            let c = &pod["containers"][0];
            assert_eq!(pod["automountServiceAccountToken"], false, "{name}");
            assert_eq!(
                c["securityContext"]["readOnlyRootFilesystem"], true,
                "{name}"
            );
            assert_eq!(c["volumeMounts"][0]["mountPath"], "/tmp", "{name}");
            assert!(pod["volumes"][0]["emptyDir"].is_object(), "{name}");
            assert_eq!(pod["securityContext"]["runAsUser"], 10001, "{name}");
            // Startup gates liveness: 300 s of 5 s periods.
            assert_eq!(c["startupProbe"]["periodSeconds"], 5, "{name}");
            assert_eq!(c["startupProbe"]["failureThreshold"], 60, "{name}");
            assert!(
                c["livenessProbe"].get("initialDelaySeconds").is_none(),
                "{name}"
            );
            // The pre-stop pause, inside the grace period.
            assert_eq!(c["lifecycle"]["preStop"]["sleep"]["seconds"], 10, "{name}");
            assert_eq!(pod["terminationGracePeriodSeconds"], 40, "{name}");
            let keys: Vec<&str> = pod["topologySpreadConstraints"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["topologyKey"].as_str().unwrap())
                .collect();
            assert_eq!(
                keys,
                ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
            );
            assert_eq!(d["spec"]["revisionHistoryLimit"], 5, "{name}");
            assert_eq!(
                d["metadata"]["labels"]["app.kubernetes.io/version"], "sha256-222222222222",
                "{name}"
            );
            // The version changes every release: never in a selector.
            assert!(
                d["spec"]["selector"]["matchLabels"]
                    .get("app.kubernetes.io/version")
                    .is_none()
            );
            for quantity in ["cpu", "memory"] {
                assert!(c["resources"]["limits"][quantity].is_string(), "{name}");
                assert!(c["resources"]["requests"][quantity].is_string(), "{name}");
            }
        }
    }
}

#[test]
fn disruption_budgets_only_for_backends_with_more_than_one_replica() {
    let budgets = |spec: &KubeSpec| -> Vec<String> {
        kinds(spec)
            .into_iter()
            .filter(|(kind, _)| kind == "PodDisruptionBudget")
            .map(|(_, name)| name)
            .collect()
    };
    assert!(budgets(&single()).is_empty());
    assert_eq!(budgets(&replicas()), ["backstage"]);
    // catalog has 3, the others inherit 2.
    assert_eq!(
        budgets(&split()),
        ["backstage-catalog", "backstage-scaffolder", "backstage-web"]
    );
    let mut one = split();
    one.replicas = 1;
    assert_eq!(budgets(&one), ["backstage-catalog"]);
    let pdb = values(&replicas())
        .into_iter()
        .find(|v| v["kind"] == "PodDisruptionBudget")
        .unwrap();
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"],
        "backend"
    );
}

#[test]
fn each_protection_relaxes_by_its_setting() {
    let mut spec = replicas();
    spec.pod.read_only_root_filesystem = false;
    spec.pod.writable_paths.clear();
    spec.pod.mount_service_account_token = true;
    spec.pod.service_account = Some("backstage-k8s-plugin".into());
    spec.pod.run_as_user = 1000;
    spec.pod.run_as_group = 1000;
    spec.pod.pre_stop_seconds = 0;
    spec.pod.shutdown_seconds = 20;
    spec.pod.spread = false;
    spec.pod.disruption_budget = false;
    spec.pod.startup_seconds = 600;
    spec.version = Some("1.46.0".into());
    let d = deployments(&spec).remove(0);
    let pod = &d["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], false);
    assert!(pod.get("volumes").is_none() && c.get("volumeMounts").is_none());
    assert_eq!(pod["automountServiceAccountToken"], true);
    assert_eq!(pod["serviceAccountName"], "backstage-k8s-plugin");
    assert_eq!(pod["securityContext"]["runAsUser"], 1000);
    assert!(c.get("lifecycle").is_none());
    assert_eq!(pod["terminationGracePeriodSeconds"], 20);
    assert!(pod.get("topologySpreadConstraints").is_none());
    assert_eq!(c["startupProbe"]["failureThreshold"], 120);
    assert_eq!(
        d["metadata"]["labels"]["app.kubernetes.io/version"],
        "1.46.0"
    );
    assert!(!kinds(&spec).iter().any(|(k, _)| k == "PodDisruptionBudget"));
}

#[test]
fn the_version_label_follows_the_image() {
    let mut spec = single();
    spec.image = format!(
        "registry.local/backstage:1.46.0-rc.1@sha256:{}",
        "a".repeat(64)
    );
    let d = deployments(&spec).remove(0);
    assert_eq!(
        d["metadata"]["labels"]["app.kubernetes.io/version"],
        "1.46.0-rc.1"
    );
    assert_eq!(
        d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"],
        "1.46.0-rc.1"
    );
}

#[test]
fn bad_hardening_settings_are_refused() {
    let refused = |spec: KubeSpec, needle: &str| {
        let error = render(&spec).unwrap_err();
        assert!(matches!(error, Error::InvalidSetting(_)), "{error}");
        assert!(error.to_string().contains(needle), "{error}");
    };
    let mut root = single();
    root.pod.run_as_user = 0;
    refused(root, "non-root");
    let mut relative = single();
    relative.pod.writable_paths = vec!["tmp".into()];
    refused(relative, "absolute path");
    let mut twice = single();
    twice.pod.writable_paths = vec!["/tmp".into(), "/tmp".into()];
    refused(twice, "listed once");
    let mut short = single();
    short.pod.startup_seconds = 1;
    refused(short, "startup-seconds");
    let mut version = single();
    version.version = Some("not a label!".into());
    refused(version, "not a label value");
    let mut closed = policed();
    closed.network_policy.as_mut().unwrap().ingress_namespace = None;
    refused(closed, "ingress-namespace");
    let mut password_twice = policed();
    password_twice.secret_env.insert(
        "POSTGRES_PASSWORD".into(),
        SecretKeyRef {
            secret: "other".into(),
            key: "password".into(),
        },
    );
    refused(password_twice, "POSTGRES_PASSWORD is set twice");
}

#[test]
fn network_policy_admits_the_ingress_controller_and_reaches_the_database() {
    let policies: Vec<Value> = values(&policed())
        .into_iter()
        .filter(|v| v["kind"] == "NetworkPolicy")
        .collect();
    assert_eq!(policies.len(), 1);
    let spec = &policies[0]["spec"];
    assert_eq!(
        spec["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    let from = spec["ingress"][0]["from"].as_array().unwrap();
    assert!(from.iter().any(|p| {
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "ingress-nginx"
    }));
    let egress = spec["egress"].as_array().unwrap();
    let ports: BTreeSet<String> = egress
        .iter()
        .flat_map(|r| r["ports"].as_array().cloned().unwrap_or_default())
        .map(|p| p["port"].to_string())
        .collect();
    for port in ["53", "5432", "6379", "\"http\""] {
        assert!(ports.contains(port), "{port} missing from {ports:?}");
    }
    // The NetworkPolicy is applied before the pods it protects start.
    let order: Vec<String> = kinds(&policed()).into_iter().map(|(k, _)| k).collect();
    let position = |kind: &str| order.iter().position(|k| k == kind).unwrap();
    assert!(
        position("NetworkPolicy") < position("Deployment"),
        "{order:?}"
    );
    // Split backends: one policy per backend.
    let mut split = split();
    split.network_policy = policed().network_policy;
    let count = kinds(&split)
        .iter()
        .filter(|(k, _)| k == "NetworkPolicy")
        .count();
    assert_eq!(count, 3);
}

/// checkov (PyPI; the policy scanner platform teams run in CI) over every shape. A shape may
/// fail only the checks listed with it, each for a reason the README gives:
/// - CKV_K8S_21 (default namespace): the namespace is the user's choice (`namespace:`);
/// - CKV2_K8S_6 (a NetworkPolicy per pod): opt-in (`network-policy:`), since it needs the
///   ingress controller's namespace and the database's address;
/// - CKV_K8S_35 (secrets as files): create-app's `app-config.production.yaml` reads
///   `${POSTGRES_PASSWORD}` from the environment.
#[test]
fn checkov_kubernetes_checks_pass_on_every_shape() {
    if !Command::new("checkov")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        uplift_testkit::missing("checkov is not installed (pip install checkov)");
        return;
    }
    let by_choice = ["CKV_K8S_21", "CKV2_K8S_6", "CKV_K8S_35"];
    let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("single", &by_choice[..]),
        ("replicas", &by_choice[1..]),
        ("split", &by_choice[..2]),
        // Its own namespace and a NetworkPolicy: only the password in the environment.
        ("policed", &by_choice[2..]),
    ]);
    // One run per shape: checkov's graph checks (a NetworkPolicy selecting a pod) look across
    // every file of a run. The runs go in parallel. (`--file`: checkov skips folders whose
    // name starts with a dot, as a temporary folder's does.)
    let dir = tempfile::tempdir().unwrap();
    let mut weak = single();
    weak.pod.read_only_root_filesystem = false;
    weak.pod.mount_service_account_token = true;
    let mut runs = Vec::new();
    for (name, spec) in shapes().into_iter().chain([("weak", weak)]) {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, to_yaml(&values(&spec)).unwrap()).unwrap();
        let child = Command::new("checkov")
            .args(["--framework", "kubernetes", "--skip-download", "--quiet"])
            .args(["--output", "json", "--file"])
            .arg(&file)
            .env("BC_SKIP_MAPPING", "TRUE")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        runs.push((name, child));
    }
    let mut failed: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (name, child) in runs {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "{name}: checkov's JSON: {e}\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let passed = report["summary"]["passed"].as_u64().unwrap_or(0);
        assert!(passed > 50, "{name}: checkov ran too few checks: {stdout}");
        let ids = report["results"]["failed_checks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["check_id"].as_str().unwrap().to_owned())
            .collect();
        failed.insert(name, ids);
    }
    for (shape, allowed) in &allowed {
        let unexpected: Vec<&String> = failed[shape]
            .iter()
            .filter(|id| !allowed.contains(&id.as_str()))
            .collect();
        assert!(unexpected.is_empty(), "{shape} fails {unexpected:?}");
    }
    let weak = &failed["weak"];
    assert!(
        weak.contains("CKV_K8S_22") && weak.contains("CKV_K8S_38"),
        "the weakened manifest should fail the read-only and token checks: {weak:?}"
    );
}

/// Every `${VAR}` of create-app's `app-config.production.yaml` (the real templates in
/// `../shared/corpus/`, at every release there) is set by a deploy with a database.
#[test]
fn create_app_production_config_variables_are_all_set() {
    let bundle =
        uplift_testkit::repo_root().join("../shared/corpus/backstage-create-app-early.bundle");
    if !bundle.exists() {
        uplift_testkit::missing("the shared corpus is missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    git(&["init", "-q"]);
    git(&[
        "fetch",
        "-q",
        bundle.to_str().unwrap(),
        "refs/tags/*:refs/tags/*",
    ]);
    let tags = git(&["tag"]);
    assert!(tags.lines().count() >= 7, "{tags}");
    let mut spec = replicas();
    spec.secret_env.clear();
    spec.postgres.password = Some(SecretKeyRef {
        secret: "backstage-db".into(),
        key: "password".into(),
    });
    let d = deployments(&spec).remove(0);
    let set: BTreeSet<String> = d["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    for tag in tags.lines() {
        let config = git(&[
            "show",
            &format!("{tag}:default-app/app-config.production.yaml"),
        ]);
        let vars = config_variables(&config);
        assert!(vars.contains("POSTGRES_USER"), "{tag}: {vars:?}");
        for var in &vars {
            assert!(
                set.contains(var),
                "{tag}: ${{{var}}} is not set; the pods get {set:?}"
            );
        }
    }
}

/// The `${NAME}` substitutions of a Backstage config file (its own syntax: `$${…}` escapes).
fn config_variables(config: &str) -> BTreeSet<String> {
    let mut vars = BTreeSet::new();
    for line in config.lines() {
        let line = line.split(" #").next().unwrap_or(line);
        if line.trim_start().starts_with('#') {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("${") {
            let escaped = at > 0 && rest.as_bytes()[at - 1] == b'$';
            let after = &rest[at + 2..];
            let Some(end) = after.find('}') else { break };
            if !escaped {
                vars.insert(after[..end].trim().to_owned());
            }
            rest = &after[end..];
        }
    }
    vars
}
