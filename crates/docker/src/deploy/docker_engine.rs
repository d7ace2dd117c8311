//! [`ContainerApi`] over the Docker Engine API (bollard).

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointIpamConfig, EndpointSettings,
    HealthConfig, HealthStatusEnum, HostConfig, Ipam, NetworkConnectRequest, NetworkCreateRequest,
    NetworkDisconnectRequest, NetworkingConfig, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;

use super::DeployError;
use super::api::{ContainerApi, ContainerInfo, Endpoint, Health, HealthStatus, ImageInfo, Replica};
use super::record::MANAGED_LABEL;
use super::spec::{DockerDeploySpec, HealthCheck};

/// The Docker Engine a rollout runs on.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
}

fn docker_err(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> DeployError {
    let action = action.into();
    move |source| DeployError::Docker { action, source }
}

fn status(error: &bollard::errors::Error) -> Option<u16> {
    match error {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

impl DockerEngine {
    pub fn new(docker: Docker) -> Self {
        Self { docker }
    }

    /// Connects to the local Docker Engine and negotiates the API version (20.10 speaks 1.41).
    pub async fn connect() -> Result<Self, DeployError> {
        let docker =
            Docker::connect_with_local_defaults().map_err(docker_err("connect to Docker"))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(docker_err("negotiate the Docker API version"))?;
        Ok(Self::new(docker))
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Whether the container is attached to `network`; `None` when it cannot be read.
    async fn attached(&self, id: &str, network: &str) -> Option<bool> {
        let inspect = self.inspect(id).await.ok()?;
        Some(
            inspect
                .network_settings
                .and_then(|n| n.networks)
                .is_some_and(|n| n.contains_key(network)),
        )
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInspectResponse, bollard::errors::Error> {
        self.docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
    }
}

impl ContainerApi for DockerEngine {
    async fn image(&self, reference: &str) -> Result<ImageInfo, DeployError> {
        let image = self
            .docker
            .inspect_image(reference)
            .await
            .map_err(|e| match status(&e) {
                Some(404) => DeployError::ImageMissing(reference.to_owned()),
                _ => docker_err("inspect the image")(e),
            })?;
        let has_healthcheck = image
            .config
            .as_ref()
            .and_then(|c| c.healthcheck.as_ref())
            .and_then(|h| h.test.as_ref())
            .is_some();
        Ok(ImageInfo {
            id: image.id.unwrap_or_else(|| reference.to_owned()),
            has_healthcheck,
        })
    }

    /// Creates the network when missing, with an explicit subnet (the one Docker picks), so
    /// that draining can keep a container's address (Docker only allows fixed addresses on
    /// networks with a configured subnet).
    async fn ensure_network(&self, network: &str) -> Result<(), DeployError> {
        match self.docker.inspect_network(network, None).await {
            Ok(_) => return Ok(()),
            Err(e) if status(&e) == Some(404) => {}
            Err(e) => return Err(docker_err(format!("inspect network {network}"))(e)),
        }
        let labels = HashMap::from([(MANAGED_LABEL.to_owned(), "true".to_owned())]);
        let request = |ipam: Option<Ipam>| NetworkCreateRequest {
            name: network.to_owned(),
            driver: Some("bridge".to_owned()),
            labels: Some(labels.clone()),
            ipam,
            ..Default::default()
        };
        match self.docker.create_network(request(None)).await {
            Ok(_) => {}
            // Created meanwhile by someone else.
            Err(e) if status(&e) == Some(409) => return Ok(()),
            Err(e) => return Err(docker_err(format!("create network {network}"))(e)),
        }
        let picked = self
            .docker
            .inspect_network(network, None)
            .await
            .ok()
            .and_then(|n| n.ipam)
            .and_then(|i| i.config)
            .and_then(|c| {
                c.into_iter()
                    .find(|c| c.subnet.as_deref().is_some_and(|s| s.contains('.')))
            });
        let Some(config) = picked else { return Ok(()) };
        self.docker
            .remove_network(network)
            .await
            .map_err(docker_err(format!("recreate network {network}")))?;
        let ipam = Ipam {
            config: Some(vec![config]),
            ..Default::default()
        };
        self.docker
            .create_network(request(Some(ipam)))
            .await
            .map_err(docker_err(format!("create network {network}")))?;
        Ok(())
    }

    async fn containers(
        &self,
        label: &str,
        value: &str,
    ) -> Result<Vec<ContainerInfo>, DeployError> {
        let filters = HashMap::from([("label".to_owned(), vec![format!("{label}={value}")])]);
        let list = self
            .docker
            .list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(docker_err(format!(
                "list the containers labelled {label}={value}"
            )))?;
        let mut out = Vec::new();
        for summary in list {
            let Some(id) = summary.id else { continue };
            match self.inspect(&id).await {
                Ok(inspect) => out.push(container_info(&inspect, &id)),
                // Removed between the list and the inspect.
                Err(e) if status(&e) == Some(404) => {}
                Err(e) => return Err(docker_err(format!("inspect container {id}"))(e)),
            }
        }
        Ok(out)
    }

    async fn create(&self, replica: Replica<'_>) -> Result<String, DeployError> {
        let spec = replica.spec;
        let body = ContainerCreateBody {
            image: Some(replica.image_id.to_owned()),
            env: Some(replica.env.to_vec()),
            cmd: spec.command.clone(),
            labels: Some(replica.labels.clone()),
            exposed_ports: if spec.ports.is_empty() {
                None
            } else {
                Some(spec.ports.iter().map(|p| format!("{p}/tcp")).collect())
            },
            healthcheck: health_config(spec),
            stop_timeout: Some(i64::from(spec.stop_timeout_secs)),
            host_config: Some(host_config(spec)),
            // On the network from the start (to reach a database), but not under the alias.
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    spec.network.clone(),
                    EndpointSettings::default(),
                )])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(replica.name)
            .build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(docker_err(format!("create container {}", replica.name)))?;
        Ok(created.id)
    }

    async fn create_record(
        &self,
        name: &str,
        image_id: &str,
        labels: &HashMap<String, String>,
    ) -> Result<(), DeployError> {
        let body = ContainerCreateBody {
            image: Some(image_id.to_owned()),
            // Never started; should anyone start it, it fails at once and runs nothing.
            entrypoint: Some(vec!["/uplift-release-record-is-not-a-program".to_owned()]),
            cmd: Some(Vec::new()),
            labels: Some(labels.clone()),
            network_disabled: Some(true),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        self.docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| match status(&e) {
                Some(404) => DeployError::ImageMissing(image_id.to_owned()),
                _ => docker_err(format!("create the release record {name}"))(e),
            })?;
        Ok(())
    }

    async fn start(&self, id: &str) -> Result<(), DeployError> {
        match self.docker.start_container(id, None).await {
            // Running already.
            Ok(()) => Ok(()),
            Err(e) if status(&e) == Some(304) => Ok(()),
            Err(e) => Err(docker_err(format!("start {id}"))(e)),
        }
    }

    async fn health(&self, id: &str) -> Result<Health, DeployError> {
        let inspect = self
            .inspect(id)
            .await
            .map_err(docker_err(format!("inspect {id}")))?;
        let state = inspect.state.clone().unwrap_or_default();
        let has_check = inspect
            .config
            .as_ref()
            .and_then(|c| c.healthcheck.as_ref())
            .is_some();
        let status = match state.health.as_ref().and_then(|h| h.status) {
            Some(HealthStatusEnum::HEALTHY) => HealthStatus::Healthy,
            Some(HealthStatusEnum::UNHEALTHY) => HealthStatus::Unhealthy,
            Some(HealthStatusEnum::NONE | HealthStatusEnum::EMPTY) | None if !has_check => {
                HealthStatus::NoCheck
            }
            _ => HealthStatus::Starting,
        };
        let probes = state
            .health
            .as_ref()
            .and_then(|h| h.log.as_ref())
            .map(|log| {
                log.iter()
                    .rev()
                    .take(3)
                    .rev()
                    .map(|r| {
                        format!(
                            "exit {}: {}",
                            r.exit_code.unwrap_or(-1),
                            r.output.as_deref().unwrap_or("").trim()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Health {
            running: state.running == Some(true),
            exit_code: state.exit_code.unwrap_or(-1),
            status,
            probes,
        })
    }

    async fn logs(&self, id: &str, lines: u32) -> String {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let mut stream = self.docker.logs(id, Some(options));
        let mut out = String::new();
        let mut chunks = 0;
        while let Some(Ok(chunk)) = stream.next().await {
            out.push_str(&chunk.to_string());
            chunks += 1;
            if chunks > 10_000 {
                break;
            }
        }
        out
    }

    async fn address(&self, id: &str, network: &str) -> Option<String> {
        let inspect = self.inspect(id).await.ok()?;
        let ip = inspect
            .network_settings?
            .networks?
            .get(network)?
            .ip_address
            .clone()?;
        if ip.is_empty() { None } else { Some(ip) }
    }

    async fn connect(
        &self,
        id: &str,
        network: &str,
        endpoint: Endpoint,
    ) -> Result<(), DeployError> {
        let endpoint_config = match endpoint {
            Endpoint::Alias(alias) => EndpointSettings {
                aliases: Some(vec![alias]),
                ..Default::default()
            },
            Endpoint::Address(ip) => EndpointSettings {
                ipam_config: Some(EndpointIpamConfig {
                    ipv4_address: Some(ip),
                    ..Default::default()
                }),
                ..Default::default()
            },
        };
        let request = NetworkConnectRequest {
            container: id.to_owned(),
            endpoint_config: Some(endpoint_config),
        };
        self.docker
            .connect_network(network, request)
            .await
            .map_err(docker_err(format!("connect {id} to {network}")))
    }

    async fn disconnect(&self, id: &str, network: &str) -> Result<(), DeployError> {
        let request = NetworkDisconnectRequest {
            container: id.to_owned(),
            force: Some(true),
        };
        match self.docker.disconnect_network(network, request).await {
            Ok(()) => Ok(()),
            // Not connected (already drained by an interrupted run).
            Err(e) if matches!(status(&e), Some(403 | 404)) => Ok(()),
            // Engine 20.10 answers 500 for a container that is not connected (one that was
            // disconnected while stopped and started again): not an error either.
            Err(e) if !self.attached(id, network).await.unwrap_or(true) => {
                tracing::debug!(id, network, error = %e, "not connected; nothing to disconnect");
                Ok(())
            }
            Err(e) => Err(docker_err(format!("disconnect {id} from {network}"))(e)),
        }
    }

    async fn stop(&self, id: &str, timeout_secs: u32) -> Result<(), DeployError> {
        let options = StopContainerOptionsBuilder::default()
            .t(i32::try_from(timeout_secs).unwrap_or(10))
            .build();
        match self.docker.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if matches!(status(&e), Some(304 | 404)) => Ok(()),
            Err(e) => Err(docker_err(format!("stop {id}"))(e)),
        }
    }

    async fn remove(&self, id: &str) -> Result<(), DeployError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(false)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if status(&e) == Some(404) => Ok(()),
            Err(e) => Err(docker_err(format!("remove {id}"))(e)),
        }
    }
}

fn container_info(inspect: &ContainerInspectResponse, id: &str) -> ContainerInfo {
    let config = inspect.config.as_ref();
    ContainerInfo {
        id: id.to_owned(),
        name: inspect
            .name
            .as_deref()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        labels: config.and_then(|c| c.labels.clone()).unwrap_or_default(),
        running: inspect
            .state
            .as_ref()
            .and_then(|s| s.running)
            .unwrap_or(false),
        networks: inspect
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.as_ref())
            .map(|networks| {
                networks
                    .iter()
                    .map(|(name, e)| (name.clone(), e.aliases.clone().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default(),
        env: config.and_then(|c| c.env.clone()).unwrap_or_default(),
    }
}

fn host_config(spec: &DockerDeploySpec) -> HostConfig {
    let port_bindings: HashMap<String, Option<Vec<PortBinding>>> = spec
        .ports
        .iter()
        .map(|p| {
            (
                format!("{p}/tcp"),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".to_owned()),
                    host_port: Some(String::new()),
                }]),
            )
        })
        .collect();
    HostConfig {
        binds: if spec.volumes.is_empty() {
            None
        } else {
            Some(spec.volumes.clone())
        },
        memory: spec
            .memory_mb
            .map(|mb| (mb.min(i64::MAX as u64 / 1_048_576) * 1_048_576) as i64),
        nano_cpus: spec.cpus.map(|c| (c * 1e9) as i64),
        port_bindings: if port_bindings.is_empty() {
            None
        } else {
            Some(port_bindings)
        },
        ..Default::default()
    }
}

fn health_config(spec: &DockerDeploySpec) -> Option<HealthConfig> {
    let test = match &spec.health {
        HealthCheck::Image => return None,
        HealthCheck::Http { port, path } => {
            let path = if path.starts_with('/') {
                path.clone()
            } else {
                format!("/{path}")
            };
            let url = format!("http://127.0.0.1:{port}{path}");
            // Whichever HTTP client the image has; the URL is built from numbers and a path
            // that is quoted for the shell.
            let quoted = format!("'{}'", url.replace('\'', r"'\''"));
            let script = format!(
                "if command -v wget >/dev/null 2>&1; then wget -q -O /dev/null {quoted}; \
                 elif command -v curl >/dev/null 2>&1; then curl -fsS -o /dev/null {quoted}; \
                 else node -e \"fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))\" {quoted}; fi"
            );
            vec!["CMD-SHELL".to_owned(), script]
        }
        HealthCheck::Command(cmd) => std::iter::once("CMD".to_owned())
            .chain(cmd.iter().cloned())
            .collect(),
    };
    let interval =
        i64::try_from(spec.health_interval_ms.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
    Some(HealthConfig {
        test: Some(test),
        interval: Some(interval),
        timeout: Some(interval.max(1_000_000_000)),
        retries: Some(3),
        // Failures while starting do not count; our own deadline bounds the wait.
        start_period: Some(
            i64::try_from(spec.health_timeout_secs.saturating_mul(1_000_000_000))
                .unwrap_or(i64::MAX),
        ),
        ..Default::default()
    })
}
