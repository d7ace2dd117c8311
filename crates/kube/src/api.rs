//! The few cluster operations a deploy needs, as a trait so tests can replay recorded API
//! responses, and [`Kubectl`], the implementation over the `kubectl` binary.

use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// The `items` of a list answer. `kubectl get pods -o json` answers `kind: List`, not
/// `PodList`, so k8s-openapi's typed list cannot read it.
#[derive(Debug, serde::Deserialize)]
pub struct Items<T> {
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
}

/// An error from the cluster API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("run {command}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` exited with {status}: {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("decode the answer of `{command}`")]
    Decode {
        command: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// The cluster operations used by [`crate::deploy`].
pub trait ClusterApi: Send + Sync {
    /// Server-side apply of one object (field manager `uplift`, conflicts forced).
    fn apply(&self, object: &Value) -> impl Future<Output = Result<(), ApiError>> + Send;
    /// A Deployment, or `None` when it does not exist.
    fn deployment(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Deployment>, ApiError>> + Send;
    /// The pods matching a label selector.
    fn pods(
        &self,
        namespace: &str,
        selector: &str,
    ) -> impl Future<Output = Result<Vec<Pod>, ApiError>> + Send;
    /// The events whose involved object is `name`.
    fn events(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Vec<Event>, ApiError>> + Send;
    /// The last `tail` lines of a pod's logs.
    fn logs(
        &self,
        namespace: &str,
        pod: &str,
        tail: u32,
    ) -> impl Future<Output = Result<String, ApiError>> + Send;
    /// A ConfigMap, or `None` when it does not exist.
    fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<ConfigMap>, ApiError>> + Send;
    /// Deletes one object (`kind` as in a manifest, e.g. `Deployment`); absent is not an error.
    /// Only a rollback calls it, for the objects a newer release added. The default refuses,
    /// so an implementation that cannot delete never removes anything silently.
    fn delete(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), ApiError>> + Send {
        let message = format!("this cluster API cannot delete {kind}/{name} in {namespace}");
        std::future::ready(Err(ApiError::Other(message)))
    }
}

/// [`ClusterApi`] over the `kubectl` binary (server-side apply with `--server-side`).
#[derive(Debug, Clone, Default)]
pub struct Kubectl {
    /// The binary; `kubectl` on `PATH` when `None`.
    pub binary: Option<PathBuf>,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// `--request-timeout` of every call (e.g. `5s`); kubectl's default when `None`.
    pub request_timeout: Option<String>,
}

impl Kubectl {
    fn base(&self) -> (String, Vec<String>) {
        let program = self
            .binary
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "kubectl".to_owned());
        let mut args = Vec::new();
        if let Some(kubeconfig) = &self.kubeconfig {
            args.push(format!("--kubeconfig={}", kubeconfig.display()));
        }
        if let Some(context) = &self.context {
            args.push(format!("--context={context}"));
        }
        if let Some(timeout) = &self.request_timeout {
            args.push(format!("--request-timeout={timeout}"));
        }
        (program, args)
    }

    async fn run(
        &self,
        args: &[&str],
        stdin: Option<Vec<u8>>,
    ) -> Result<Result<String, String>, ApiError> {
        let (program, mut all) = self.base();
        all.extend(args.iter().map(|s| (*s).to_owned()));
        let command = format!("{program} {}", all.join(" "));
        tracing::debug!(%command, "kubectl");
        let mut child = tokio::process::Command::new(&program)
            .args(&all)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ApiError::Spawn {
                command: command.clone(),
                source,
            })?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(&input)
                .await
                .map_err(|source| ApiError::Spawn {
                    command: command.clone(),
                    source,
                })?;
            drop(pipe);
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(|source| ApiError::Spawn {
                command: command.clone(),
                source,
            })?;
        if output.status.success() {
            Ok(Ok(String::from_utf8_lossy(&output.stdout).into_owned()))
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            if stderr.contains("NotFound") || stderr.contains("not found") {
                return Ok(Err(stderr));
            }
            Err(ApiError::Failed {
                command,
                status: output.status.to_string(),
                stderr: tail(&stderr, 20),
            })
        }
    }

    async fn get<T: DeserializeOwned>(&self, args: &[&str]) -> Result<Option<T>, ApiError> {
        match self.run(args, None).await? {
            Ok(stdout) => {
                serde_json::from_str(&stdout)
                    .map(Some)
                    .map_err(|source| ApiError::Decode {
                        command: args.join(" "),
                        source,
                    })
            }
            Err(_) => Ok(None),
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl ClusterApi for Kubectl {
    async fn delete(&self, kind: &str, namespace: &str, name: &str) -> Result<(), ApiError> {
        let target = format!("{}/{name}", kind.to_ascii_lowercase());
        let args = [
            "delete",
            target.as_str(),
            "--namespace",
            namespace,
            "--ignore-not-found",
            "--wait=false",
        ];
        // `Err` here is kubectl's "not found", which `--ignore-not-found` already forgives.
        self.run(&args, None).await.map(|_| ())
    }

    async fn apply(&self, object: &Value) -> Result<(), ApiError> {
        let body = serde_json::to_vec(object).map_err(|source| ApiError::Decode {
            command: "apply".to_owned(),
            source,
        })?;
        let args = [
            "apply",
            "--server-side",
            "--field-manager=uplift",
            "--force-conflicts",
            "-f",
            "-",
        ];
        match self.run(&args, Some(body)).await? {
            Ok(_) => Ok(()),
            Err(stderr) => Err(ApiError::Failed {
                command: "kubectl apply --server-side".to_owned(),
                status: "failure".to_owned(),
                stderr,
            }),
        }
    }

    async fn deployment(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Deployment>, ApiError> {
        self.get(&["get", "deployment", name, "-n", namespace, "-o", "json"])
            .await
    }

    async fn pods(&self, namespace: &str, selector: &str) -> Result<Vec<Pod>, ApiError> {
        let list: Option<Items<Pod>> = self
            .get(&["get", "pods", "-n", namespace, "-l", selector, "-o", "json"])
            .await?;
        Ok(list.map(|l| l.items).unwrap_or_default())
    }

    async fn events(&self, namespace: &str, name: &str) -> Result<Vec<Event>, ApiError> {
        let selector = format!("involvedObject.name={name}");
        let list: Option<Items<Event>> = self
            .get(&[
                "get",
                "events",
                "-n",
                namespace,
                "--field-selector",
                &selector,
                "-o",
                "json",
            ])
            .await?;
        Ok(list.map(|l| l.items).unwrap_or_default())
    }

    async fn logs(&self, namespace: &str, pod: &str, tail_lines: u32) -> Result<String, ApiError> {
        let tail_arg = format!("--tail={tail_lines}");
        match self
            .run(
                &["logs", "-n", namespace, pod, "--all-containers", &tail_arg],
                None,
            )
            .await?
        {
            Ok(out) => Ok(out),
            Err(stderr) => Ok(stderr),
        }
    }

    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>, ApiError> {
        self.get(&["get", "configmap", name, "-n", namespace, "-o", "json"])
            .await
    }
}
