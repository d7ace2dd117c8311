//! Rendering a [`KubeSpec`] into typed Kubernetes objects (k8s-openapi, Kubernetes 1.33 API).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapEnvSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, EnvVar, EnvVarSource, HTTPGetAction, Lifecycle, LifecycleHandler,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecretEnvSource, SecretKeySelector, SecurityContext, Service, ServicePort, ServiceSpec,
    SleepAction, TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, IPBlock, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec as K8sIngressSpec, IngressTLS, NetworkPolicy,
    NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec as K8sNetworkPolicySpec, ServiceBackendPort,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::Error;
use crate::spec::{KubeSpec, NetworkPolicySpec, PeerSpec, PodSettings};

/// The label every object carries with the app's name.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// The label naming the backend (`backend` for a single one, the service name when split).
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// The `managed-by` label.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The label with the release's version (never part of a selector: it changes every release).
pub const VERSION_LABEL: &str = "app.kubernetes.io/version";

/// One rendered object.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    ConfigMap(Box<ConfigMap>),
    Service(Box<Service>),
    Deployment(Box<Deployment>),
    PodDisruptionBudget(Box<PodDisruptionBudget>),
    NetworkPolicy(Box<NetworkPolicy>),
    Ingress(Box<Ingress>),
}

impl Object {
    /// The object as JSON, with `apiVersion` and `kind`.
    pub fn to_value(&self) -> Result<Value, Error> {
        let value = match self {
            Object::ConfigMap(o) => serde_json::to_value(o),
            Object::Service(o) => serde_json::to_value(o),
            Object::Deployment(o) => serde_json::to_value(o),
            Object::PodDisruptionBudget(o) => serde_json::to_value(o),
            Object::NetworkPolicy(o) => serde_json::to_value(o),
            Object::Ingress(o) => serde_json::to_value(o),
        };
        value.map_err(Error::Serialize)
    }
}

/// The objects of one release, in apply order (ConfigMaps, NetworkPolicies, Services,
/// Deployments, PodDisruptionBudgets, Ingress): a pod never starts before its policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifests {
    pub namespace: String,
    pub objects: Vec<Object>,
}

impl Manifests {
    /// The objects as JSON values, in apply order.
    pub fn to_values(&self) -> Result<Vec<Value>, Error> {
        self.objects.iter().map(Object::to_value).collect()
    }

    /// The names of the Deployments whose rollout must be waited for.
    pub fn deployment_names(&self) -> Vec<String> {
        self.objects
            .iter()
            .filter_map(|o| match o {
                Object::Deployment(d) => d.metadata.name.clone(),
                _ => None,
            })
            .collect()
    }
}

/// Multi-document YAML of JSON objects, as `kubectl` reads it.
pub fn to_yaml(values: &[Value]) -> Result<String, Error> {
    let mut out = String::new();
    for value in values {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(value).map_err(Error::Yaml)?);
    }
    Ok(out)
}

/// Checks that an image reference is pinned by a sha256 digest.
pub fn check_pinned(image: &str) -> Result<(), Error> {
    let pinned = image.split_once("@sha256:").is_some_and(|(repo, hex)| {
        !repo.is_empty() && hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    });
    if pinned {
        Ok(())
    } else {
        Err(Error::NotPinned {
            image: image.to_owned(),
        })
    }
}

fn check_name(what: &str, name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            what: what.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// Renders the manifests of `spec`.
///
/// A single backend gives one Deployment and one Service named after the app. With `services`,
/// each service `s` gives a Deployment and a Service `<app>-<s>` from the same image, and a
/// ConfigMap `<app>-discovery` whose `APP_CONFIG_discovery_endpoints` tells every backend where
/// each plugin runs (Backstage's `HostDiscovery` reads `discovery.endpoints`). Each backend also
/// gets `UPLIFT_BACKEND_PLUGINS` listing the plugins it is meant to run.
pub fn render(spec: &KubeSpec) -> Result<Manifests, Error> {
    check_pinned(&spec.image)?;
    render_objects(spec)
}

/// As [`render`], for a plan made before the image exists: an image that is still a `${{ }}`
/// expression (the output of an image stage) is taken as it is; any other must be pinned.
pub fn render_for_plan(spec: &KubeSpec) -> Result<Manifests, Error> {
    if !spec.image.contains("${{") {
        check_pinned(&spec.image)?;
    }
    render_objects(spec)
}

fn render_objects(spec: &KubeSpec) -> Result<Manifests, Error> {
    check_name("app", &spec.name)?;
    check_name("namespace", &spec.namespace)?;
    if spec.replicas < 0 {
        return Err(Error::InvalidSetting(format!(
            "replicas must be >= 0, got {}",
            spec.replicas
        )));
    }
    if !(1..=65535).contains(&spec.port) {
        return Err(Error::InvalidSetting(format!(
            "port must be 1..65535, got {}",
            spec.port
        )));
    }
    check_pod_settings(&spec.pod)?;
    if spec.ingress.is_some()
        && spec
            .network_policy
            .as_ref()
            .is_some_and(|p| p.ingress_namespace.is_none())
    {
        return Err(Error::InvalidSetting(
            "network-policy.ingress-namespace is needed with an ingress: the policy would refuse the ingress controller's traffic".to_owned(),
        ));
    }
    if let Some(version) = &spec.version
        && !is_label_value(version)
    {
        return Err(Error::InvalidSetting(format!(
            "version {version:?} is not a label value (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
        )));
    }
    let mut objects = Vec::new();
    let mut env_from = Vec::new();

    if !spec.config.is_empty() {
        let name = format!("{}-config", spec.name);
        let map = config_map(spec, &name, spec.config.clone());
        objects.push(Object::ConfigMap(Box::new(map)));
        env_from.push(EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name,
                optional: None,
            }),
            ..Default::default()
        });
    }
    for secret in &spec.secrets {
        env_from.push(EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: secret.clone(),
                optional: None,
            }),
            ..Default::default()
        });
    }

    // (component, object name, replicas, plugins)
    let mut backends: Vec<(String, String, i32, Vec<String>)> = Vec::new();
    if spec.services.is_empty() {
        backends.push((
            "backend".to_owned(),
            spec.name.clone(),
            spec.replicas,
            Vec::new(),
        ));
    } else {
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (service, split) in &spec.services {
            check_name("service", service)?;
            if split.plugins.is_empty() {
                return Err(Error::InvalidSetting(format!(
                    "service {service} lists no plugins"
                )));
            }
            for plugin in &split.plugins {
                if let Some(other) = seen.insert(plugin, service) {
                    return Err(Error::InvalidSetting(format!(
                        "plugin {plugin} is listed by both {other} and {service}"
                    )));
                }
            }
            let name = format!("{}-{service}", spec.name);
            check_name("service", &name)?;
            let replicas = split.replicas.unwrap_or(spec.replicas);
            backends.push((service.clone(), name, replicas, split.plugins.clone()));
        }
        let endpoints: Vec<Value> = backends
            .iter()
            .map(|(_, name, _, plugins)| {
                serde_json::json!({
                    "target": format!("http://{name}.{}.svc.cluster.local:{}/api/{{{{pluginId}}}}", spec.namespace, spec.port),
                    "plugins": plugins,
                })
            })
            .collect();
        let discovery = serde_json::to_string(&endpoints).map_err(Error::Serialize)?;
        let name = format!("{}-discovery", spec.name);
        let data = BTreeMap::from([("APP_CONFIG_discovery_endpoints".to_owned(), discovery)]);
        objects.push(Object::ConfigMap(Box::new(config_map(spec, &name, data))));
        env_from.push(EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name,
                optional: None,
            }),
            ..Default::default()
        });
    }

    if let Some(policy) = &spec.network_policy {
        for (component, name, _, _) in &backends {
            objects.push(Object::NetworkPolicy(Box::new(network_policy(
                spec, policy, name, component,
            ))));
        }
    }
    for (component, name, _, _) in &backends {
        objects.push(Object::Service(Box::new(service(spec, name, component))));
    }
    let env = backend_env(spec)?;
    for (component, name, replicas, plugins) in &backends {
        objects.push(Object::Deployment(Box::new(deployment(
            spec, name, component, *replicas, plugins, &env, &env_from,
        ))));
    }
    if spec.pod.disruption_budget {
        for (component, name, replicas, _) in &backends {
            if *replicas > 1 {
                objects.push(Object::PodDisruptionBudget(Box::new(disruption_budget(
                    spec, name, component,
                ))));
            }
        }
    }
    if let Some(ingress) = &spec.ingress {
        objects.push(Object::Ingress(Box::new(render_ingress(
            spec, ingress, &backends,
        ))));
    }
    Ok(Manifests {
        namespace: spec.namespace.clone(),
        objects,
    })
}

fn labels(spec: &KubeSpec, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_owned(), spec.name.clone()),
        (COMPONENT_LABEL.to_owned(), component.to_owned()),
        (MANAGED_BY_LABEL.to_owned(), "uplift".to_owned()),
        (VERSION_LABEL.to_owned(), release_version(spec)),
    ])
}

/// The `app.kubernetes.io/version` of a release: the setting, else the image's tag
/// (`repo:1.4.2@sha256:…`), else the digest's first 12 hex digits (`sha256-0123456789ab`).
pub fn release_version(spec: &KubeSpec) -> String {
    if let Some(version) = &spec.version {
        return version.clone();
    }
    let (name, digest) = spec
        .image
        .split_once('@')
        .unwrap_or((spec.image.as_str(), ""));
    let last = name.rsplit('/').next().unwrap_or(name);
    if let Some((_, tag)) = last.split_once(':') {
        let tag: String = tag.chars().take(63).collect();
        let tag = tag.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        if is_label_value(tag) {
            return tag.to_owned();
        }
    }
    match digest.strip_prefix("sha256:") {
        Some(hex) => format!("sha256-{}", hex.get(..12).unwrap_or(hex)),
        // A plan before the image exists (`${{ stages.image.outputs.image }}`).
        None => "unreleased".to_owned(),
    }
}

/// Kubernetes' rule for label values.
fn is_label_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    !value.is_empty()
        && value.len() <= 63
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn check_pod_settings(pod: &PodSettings) -> Result<(), Error> {
    let invalid = |message: String| Err(Error::InvalidSetting(message));
    if pod.run_as_user <= 0 || pod.run_as_group <= 0 {
        return invalid(format!(
            "pod.run-as-user and pod.run-as-group must be above 0 (the pods run as non-root), got {} and {}",
            pod.run_as_user, pod.run_as_group
        ));
    }
    if pod.startup_seconds < STARTUP_PERIOD_SECONDS {
        return invalid(format!(
            "pod.startup-seconds must be at least {STARTUP_PERIOD_SECONDS}, got {}",
            pod.startup_seconds
        ));
    }
    if pod.pre_stop_seconds < 0 || pod.shutdown_seconds < 0 {
        return invalid("pod.pre-stop-seconds and pod.shutdown-seconds must be >= 0".to_owned());
    }
    if pod.history_limit < 0 {
        return invalid(format!(
            "pod.history-limit must be >= 0, got {}",
            pod.history_limit
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for path in &pod.writable_paths {
        if !path.starts_with('/') || !seen.insert(path.as_str()) {
            return invalid(format!(
                "pod.writable-paths: {path:?} must be an absolute path, listed once"
            ));
        }
    }
    Ok(())
}

fn selector(spec: &KubeSpec, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_owned(), spec.name.clone()),
        (COMPONENT_LABEL.to_owned(), component.to_owned()),
    ])
}

/// The label selector (`k=v,k=v`) of a backend's pods.
pub fn pod_selector(app: &str, component: &str) -> String {
    format!("{NAME_LABEL}={app},{COMPONENT_LABEL}={component}")
}

fn meta(spec: &KubeSpec, name: &str, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(spec.namespace.clone()),
        labels: Some(labels(spec, component)),
        ..Default::default()
    }
}

fn config_map(spec: &KubeSpec, name: &str, data: BTreeMap<String, String>) -> ConfigMap {
    ConfigMap {
        metadata: meta(spec, name, "config"),
        data: Some(data),
        ..Default::default()
    }
}

fn service(spec: &KubeSpec, name: &str, component: &str) -> Service {
    Service {
        metadata: meta(spec, name, component),
        spec: Some(ServiceSpec {
            selector: Some(selector(spec, component)),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: spec.port,
                target_port: Some(IntOrString::String("http".to_owned())),
                protocol: Some("TCP".to_owned()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The startup probe's period; `startup-seconds` is divided into periods of this length.
const STARTUP_PERIOD_SECONDS: i32 = 5;

fn http_probe(path: &str, period: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http".to_owned()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failure_threshold),
        ..Default::default()
    }
}

fn plain(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn from_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: key.to_owned(),
                optional: None,
            }),
            ..Default::default()
        }),
    }
}

/// The environment every backend gets: the database as create-app's
/// `app-config.production.yaml` reads it (`POSTGRES_HOST`, `_PORT`, `_USER`, `_PASSWORD`;
/// explicit values, since service links would inject `POSTGRES_PORT=tcp://…`), then `env`,
/// then the Secret keys. A name set twice is an error rather than a silent pick.
fn backend_env(spec: &KubeSpec) -> Result<Vec<EnvVar>, Error> {
    let pg = &spec.postgres;
    let mut env = vec![
        plain("POSTGRES_HOST", pg.host.clone()),
        plain("POSTGRES_PORT", pg.port.to_string()),
        plain("POSTGRES_USER", pg.user.clone()),
    ];
    if let Some(mode) = &pg.sslmode {
        env.push(plain("PGSSLMODE", mode.clone()));
    }
    if let Some(password) = &pg.password {
        env.push(from_secret(
            "POSTGRES_PASSWORD",
            &password.secret,
            &password.key,
        ));
    }
    for (key, value) in &spec.env {
        env.push(plain(key, value.clone()));
    }
    for (key, secret) in &spec.secret_env {
        env.push(from_secret(key, &secret.secret, &secret.key));
    }
    let mut seen = std::collections::BTreeSet::new();
    for var in &env {
        if !seen.insert(var.name.as_str()) {
            return Err(Error::InvalidSetting(format!(
                "environment variable {} is set twice (by postgres, env or secret-env)",
                var.name
            )));
        }
    }
    Ok(env)
}

fn resources(spec: &KubeSpec) -> ResourceRequirements {
    // Requests equal limits: a scheduled pod has what it may use. Without settings, enough
    // for a create-app backend; big catalogs raise `memory`.
    let requested = spec.resources.as_ref();
    let cpu = requested
        .and_then(|r| r.cpu.clone())
        .unwrap_or_else(|| "1".to_owned());
    let memory = requested
        .and_then(|r| r.memory.clone())
        .unwrap_or_else(|| "1Gi".to_owned());
    let quantities = BTreeMap::from([
        ("cpu".to_owned(), Quantity(cpu)),
        ("memory".to_owned(), Quantity(memory)),
    ]);
    ResourceRequirements {
        limits: Some(quantities.clone()),
        requests: Some(quantities),
        ..Default::default()
    }
}

fn writable_volumes(pod: &PodSettings) -> (Vec<Volume>, Vec<VolumeMount>) {
    pod.writable_paths
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let name = format!("writable-{i}");
            let volume = Volume {
                name: name.clone(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            };
            let mount = VolumeMount {
                name,
                mount_path: path.clone(),
                ..Default::default()
            };
            (volume, mount)
        })
        .unzip()
}

fn container_security(pod: &PodSettings) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(pod.read_only_root_filesystem),
        run_as_non_root: Some(true),
        run_as_user: Some(pod.run_as_user),
        run_as_group: Some(pod.run_as_group),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        seccomp_profile: Some(runtime_default()),
        ..Default::default()
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        localhost_profile: None,
    }
}

fn spread(spec: &KubeSpec, component: &str) -> Vec<TopologySpreadConstraint> {
    // Best effort (ScheduleAnyway): a one-node cluster still schedules every replica.
    ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
        .into_iter()
        .map(|key| TopologySpreadConstraint {
            max_skew: 1,
            topology_key: key.to_owned(),
            when_unsatisfiable: "ScheduleAnyway".to_owned(),
            label_selector: Some(LabelSelector {
                match_labels: Some(selector(spec, component)),
                match_expressions: None,
            }),
            // Spread the pods of one ReplicaSet, not old and new together during a roll.
            match_label_keys: Some(vec!["pod-template-hash".to_owned()]),
            ..Default::default()
        })
        .collect()
}

fn deployment(
    spec: &KubeSpec,
    name: &str,
    component: &str,
    replicas: i32,
    plugins: &[String],
    env: &[EnvVar],
    env_from: &[EnvFromSource],
) -> Deployment {
    let pod = &spec.pod;
    let mut env = env.to_vec();
    if !plugins.is_empty() {
        env.push(plain("UPLIFT_BACKEND_PLUGINS", plugins.join(",")));
    }
    let (volumes, mounts) = writable_volumes(pod);
    let container = Container {
        name: "backend".to_owned(),
        image: Some(spec.image.clone()),
        // Pinned by digest: the node's copy is the image, so the registry is not asked again.
        image_pull_policy: Some("IfNotPresent".to_owned()),
        ports: Some(vec![ContainerPort {
            name: Some("http".to_owned()),
            container_port: spec.port,
            protocol: Some("TCP".to_owned()),
            ..Default::default()
        }]),
        env: Some(env),
        env_from: if env_from.is_empty() {
            None
        } else {
            Some(env_from.to_vec())
        },
        // Liveness and readiness start once the startup probe passed, so a slow start
        // (plugins, migrations) is not killed in a loop.
        startup_probe: Some(http_probe(
            &spec.probes.liveness,
            STARTUP_PERIOD_SECONDS,
            pod.startup_seconds
                .saturating_add(STARTUP_PERIOD_SECONDS - 1)
                / STARTUP_PERIOD_SECONDS,
        )),
        readiness_probe: Some(http_probe(&spec.probes.readiness, 5, 3)),
        liveness_probe: Some(http_probe(&spec.probes.liveness, 10, 6)),
        // The pause keeps a terminating pod serving while the endpoints drop it; Backstage's
        // own SIGTERM handling then finishes the requests in flight.
        lifecycle: (pod.pre_stop_seconds > 0).then(|| Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction {
                    seconds: pod.pre_stop_seconds,
                }),
                ..Default::default()
            }),
            post_start: None,
            stop_signal: None,
        }),
        resources: Some(resources(spec)),
        security_context: Some(container_security(pod)),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        ..Default::default()
    };
    Deployment {
        metadata: meta(spec, name, component),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            revision_history_limit: Some(pod.history_limit),
            progress_deadline_seconds: Some(spec.progress_deadline_seconds),
            selector: LabelSelector {
                match_labels: Some(selector(spec, component)),
                match_expressions: None,
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(spec, component)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    enable_service_links: Some(false),
                    automount_service_account_token: Some(pod.mount_service_account_token),
                    service_account_name: pod.service_account.clone(),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(pod.run_as_user),
                        run_as_group: Some(pod.run_as_group),
                        fs_group: Some(pod.run_as_group),
                        seccomp_profile: Some(runtime_default()),
                        ..Default::default()
                    }),
                    termination_grace_period_seconds: Some(
                        pod.pre_stop_seconds + pod.shutdown_seconds,
                    ),
                    topology_spread_constraints: pod.spread.then(|| spread(spec, component)),
                    containers: vec![container],
                    volumes: (!volumes.is_empty()).then_some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn disruption_budget(spec: &KubeSpec, name: &str, component: &str) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(spec, name, component),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector(spec, component)),
                match_expressions: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn peer(spec: &PeerSpec) -> NetworkPolicyPeer {
    let namespace = spec.namespace.as_ref().map(|ns| LabelSelector {
        match_labels: Some(BTreeMap::from([(
            "kubernetes.io/metadata.name".to_owned(),
            ns.clone(),
        )])),
        match_expressions: None,
    });
    let pods = (!spec.pod_labels.is_empty()).then(|| LabelSelector {
        match_labels: Some(spec.pod_labels.clone()),
        match_expressions: None,
    });
    NetworkPolicyPeer {
        ip_block: spec.cidr.as_ref().map(|cidr| IPBlock {
            cidr: cidr.clone(),
            except: None,
        }),
        namespace_selector: namespace,
        pod_selector: pods,
    }
}

fn tcp(port: IntOrString) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(port),
        protocol: Some("TCP".to_owned()),
        end_port: None,
    }
}

fn network_policy(
    spec: &KubeSpec,
    policy: &NetworkPolicySpec,
    name: &str,
    component: &str,
) -> NetworkPolicy {
    let http = || tcp(IntOrString::String("http".to_owned()));
    let same_app = NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(NAME_LABEL.to_owned(), spec.name.clone())])),
            match_expressions: None,
        }),
        ..Default::default()
    };
    let mut from = vec![same_app.clone()];
    if let Some(ns) = &policy.ingress_namespace {
        from.push(peer(&PeerSpec {
            namespace: Some(ns.clone()),
            ..Default::default()
        }));
    }
    let dns = NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector::default()),
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "k8s-app".to_owned(),
                    "kube-dns".to_owned(),
                )])),
                match_expressions: None,
            }),
            ip_block: None,
        }]),
        ports: Some(
            ["UDP", "TCP"]
                .into_iter()
                .map(|protocol| NetworkPolicyPort {
                    port: Some(IntOrString::Int(53)),
                    protocol: Some(protocol.to_owned()),
                    end_port: None,
                })
                .collect(),
        ),
    };
    let mut egress = vec![
        dns,
        // Split backends call each other through discovery.
        NetworkPolicyEgressRule {
            to: Some(vec![same_app]),
            ports: Some(vec![http()]),
        },
    ];
    if let Some(database) = &policy.database {
        egress.push(NetworkPolicyEgressRule {
            to: Some(vec![peer(database)]),
            ports: Some(vec![tcp(IntOrString::Int(i32::from(spec.postgres.port)))]),
        });
    }
    if let Some(cache) = &policy.cache {
        egress.push(NetworkPolicyEgressRule {
            to: Some(vec![peer(cache)]),
            ports: Some(vec![tcp(IntOrString::Int(i32::from(policy.cache_port)))]),
        });
    }
    if !policy.egress_cidrs.is_empty() {
        egress.push(NetworkPolicyEgressRule {
            to: Some(
                policy
                    .egress_cidrs
                    .iter()
                    .map(|cidr| {
                        peer(&PeerSpec {
                            cidr: Some(cidr.clone()),
                            ..Default::default()
                        })
                    })
                    .collect(),
            ),
            ports: None,
        });
    }
    NetworkPolicy {
        metadata: meta(spec, name, component),
        spec: Some(K8sNetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector(spec, component)),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(from),
                ports: Some(vec![http()]),
            }]),
            egress: Some(egress),
        }),
    }
}

fn backend_ref(name: &str, port: i32) -> IngressBackend {
    IngressBackend {
        service: Some(IngressServiceBackend {
            name: name.to_owned(),
            port: Some(ServiceBackendPort {
                number: Some(port),
                name: None,
            }),
        }),
        resource: None,
    }
}

fn render_ingress(
    spec: &KubeSpec,
    ingress: &crate::spec::IngressSpec,
    backends: &[(String, String, i32, Vec<String>)],
) -> Ingress {
    let mut paths = Vec::new();
    // Split backends: /api/<pluginId> goes to the backend that runs the plugin.
    for (_, name, _, plugins) in backends {
        for plugin in plugins {
            paths.push(HTTPIngressPath {
                path: Some(format!("/api/{plugin}")),
                path_type: "Prefix".to_owned(),
                backend: backend_ref(name, spec.port),
            });
        }
    }
    // Everything else (the frontend, /.backstage/health) goes to the backend that runs `app`,
    // or the first one.
    let default = backends
        .iter()
        .find(|(_, _, _, plugins)| plugins.iter().any(|p| p == "app"))
        .or(backends.first())
        .map(|(_, name, _, _)| name.clone())
        .unwrap_or_else(|| spec.name.clone());
    paths.push(HTTPIngressPath {
        path: Some("/".to_owned()),
        path_type: "Prefix".to_owned(),
        backend: backend_ref(&default, spec.port),
    });
    Ingress {
        metadata: meta(spec, &spec.name, "ingress"),
        spec: Some(K8sIngressSpec {
            ingress_class_name: ingress.class_name.clone(),
            rules: Some(vec![IngressRule {
                host: Some(ingress.host.clone()),
                http: Some(HTTPIngressRuleValue { paths }),
            }]),
            tls: ingress.tls_secret.as_ref().map(|secret| {
                vec![IngressTLS {
                    hosts: Some(vec![ingress.host.clone()]),
                    secret_name: Some(secret.clone()),
                }]
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}
