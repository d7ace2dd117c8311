//! Rendering a [`KubeSpec`] into typed Kubernetes objects (k8s-openapi, Kubernetes 1.33 API).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapEnvSource, Container, ContainerPort, EnvFromSource, EnvVar, EnvVarSource,
    HTTPGetAction, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SecretEnvSource,
    SecretKeySelector, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec as K8sIngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::Error;
use crate::spec::KubeSpec;

/// The label every object carries with the app's name.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// The label naming the backend (`backend` for a single one, the service name when split).
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// The `managed-by` label.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// One rendered object.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    ConfigMap(Box<ConfigMap>),
    Service(Box<Service>),
    Deployment(Box<Deployment>),
    Ingress(Box<Ingress>),
}

impl Object {
    /// The object as JSON, with `apiVersion` and `kind`.
    pub fn to_value(&self) -> Result<Value, Error> {
        let value = match self {
            Object::ConfigMap(o) => serde_json::to_value(o),
            Object::Service(o) => serde_json::to_value(o),
            Object::Deployment(o) => serde_json::to_value(o),
            Object::Ingress(o) => serde_json::to_value(o),
        };
        value.map_err(Error::Serialize)
    }
}

/// The objects of one release, in apply order (ConfigMaps, Services, Deployments, Ingress).
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

    for (component, name, _, _) in &backends {
        objects.push(Object::Service(Box::new(service(spec, name, component))));
    }
    for (component, name, replicas, plugins) in &backends {
        objects.push(Object::Deployment(Box::new(deployment(
            spec, name, component, *replicas, plugins, &env_from,
        ))));
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
    ])
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

fn http_probe(path: &str, initial_delay: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http".to_owned()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(10),
        failure_threshold: Some(failure_threshold),
        ..Default::default()
    }
}

fn deployment(
    spec: &KubeSpec,
    name: &str,
    component: &str,
    replicas: i32,
    plugins: &[String],
    env_from: &[EnvFromSource],
) -> Deployment {
    let mut env: Vec<EnvVar> = vec![
        // Explicit values: with service links Kubernetes would inject POSTGRES_PORT=tcp://...
        EnvVar {
            name: "POSTGRES_HOST".to_owned(),
            value: Some(spec.postgres.host.clone()),
            value_from: None,
        },
        EnvVar {
            name: "POSTGRES_PORT".to_owned(),
            value: Some(spec.postgres.port.to_string()),
            value_from: None,
        },
    ];
    if !plugins.is_empty() {
        env.push(EnvVar {
            name: "UPLIFT_BACKEND_PLUGINS".to_owned(),
            value: Some(plugins.join(",")),
            value_from: None,
        });
    }
    for (key, value) in &spec.env {
        if key != "POSTGRES_HOST" && key != "POSTGRES_PORT" {
            env.push(EnvVar {
                name: key.clone(),
                value: Some(value.clone()),
                value_from: None,
            });
        }
    }
    for (key, secret) in &spec.secret_env {
        env.push(EnvVar {
            name: key.clone(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.secret.clone(),
                    key: secret.key.clone(),
                    optional: None,
                }),
                ..Default::default()
            }),
        });
    }
    let resources = spec.resources.as_ref().map(|r| {
        let mut quantities = BTreeMap::new();
        if let Some(cpu) = &r.cpu {
            quantities.insert("cpu".to_owned(), Quantity(cpu.clone()));
        }
        if let Some(memory) = &r.memory {
            quantities.insert("memory".to_owned(), Quantity(memory.clone()));
        }
        ResourceRequirements {
            limits: Some(quantities.clone()),
            requests: Some(quantities),
            ..Default::default()
        }
    });
    let container = Container {
        name: "backend".to_owned(),
        image: Some(spec.image.clone()),
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
        readiness_probe: Some(http_probe(&spec.probes.readiness, 5, 3)),
        liveness_probe: Some(http_probe(&spec.probes.liveness, 60, 6)),
        resources,
        ..Default::default()
    };
    Deployment {
        metadata: meta(spec, name, component),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
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
                    containers: vec![container],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
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
