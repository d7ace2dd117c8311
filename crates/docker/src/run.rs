use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::guard::{LABEL_CACHE, ResourceGuard};

/// A host folder bind-mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub host: PathBuf,
    pub container: String,
    pub read_only: bool,
}

/// A named volume mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub volume: String,
    pub container: String,
}

/// A one-shot container: the command runs, its output is streamed, its exit code returned.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    pub image: String,
    /// The command (exec form); the image's entrypoint receives it as arguments.
    pub cmd: Vec<String>,
    /// Replaces the image's entrypoint when set.
    pub entrypoint: Option<Vec<String>>,
    pub workdir: Option<String>,
    pub env: BTreeMap<String, String>,
    pub binds: Vec<Bind>,
    pub volumes: Vec<VolumeMount>,
    pub user: Option<String>,
    /// A network to attach to (`none` for no network).
    pub network: Option<String>,
    /// The start of the container's name (`uplift-<prefix>-<unique>`; default: the run id).
    pub name_prefix: Option<String>,
}

/// Limits of one run.
#[derive(Debug, Clone, Default)]
pub struct RunLimits {
    pub timeout: Option<Duration>,
    pub cancel: CancellationToken,
}

/// Which stream a chunk of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The command exited by itself.
    Exited,
    /// The timeout ran out: the container was killed.
    TimedOut,
    /// The run was cancelled: the container was killed.
    Cancelled,
}

/// The result of [`run_container`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOutcome {
    /// The exit code (137 after a kill).
    pub exit_code: i64,
    pub ended: Ended,
    /// How long the container ran.
    pub duration: Duration,
}

impl RunOutcome {
    /// Exited by itself with code 0.
    pub fn success(&self) -> bool {
        self.ended == Ended::Exited && self.exit_code == 0
    }
}

/// Creates (if missing) a named volume that outlives runs, labelled [`LABEL_CACHE`]`=key`.
pub async fn ensure_volume(engine: &Engine, name: &str, key: &str) -> Result<()> {
    let docker = engine.docker();
    if docker.inspect_volume(name).await.is_ok() {
        return Ok(());
    }
    let req = VolumeCreateRequest {
        name: Some(name.to_owned()),
        labels: Some(HashMap::from([(LABEL_CACHE.to_owned(), key.to_owned())])),
        ..Default::default()
    };
    docker
        .create_volume(req)
        .await
        .map_err(|e| Error::engine(format!("create volume {name}"), e))?;
    Ok(())
}

/// Runs `spec` to completion, timeout or cancellation, streaming output to `on_output`. The
/// container carries the guard's run label and is removed before this returns, whatever
/// happened; if this future is dropped mid-run, the guard removes it.
pub async fn run_container(
    guard: &ResourceGuard,
    spec: &ContainerSpec,
    limits: &RunLimits,
    on_output: &mut (dyn FnMut(OutputStream, &[u8]) + Send),
) -> Result<RunOutcome> {
    let engine = guard.engine();
    let docker = engine.docker();
    let run_err = |message: String| Error::Run {
        image: spec.image.clone(),
        message,
    };
    let mut mounts: Vec<Mount> = spec
        .binds
        .iter()
        .map(|b| Mount {
            target: Some(b.container.clone()),
            source: Some(b.host.to_string_lossy().into_owned()),
            typ: Some(MountType::BIND),
            read_only: Some(b.read_only),
            ..Default::default()
        })
        .collect();
    mounts.extend(spec.volumes.iter().map(|v| Mount {
        target: Some(v.container.clone()),
        source: Some(v.volume.clone()),
        typ: Some(MountType::VOLUME),
        ..Default::default()
    }));
    let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: Some(spec.cmd.clone()),
        entrypoint: spec.entrypoint.clone(),
        working_dir: spec.workdir.clone(),
        env: Some(env),
        user: spec.user.clone(),
        labels: Some(guard.labels()),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        host_config: Some(HostConfig {
            mounts: Some(mounts),
            network_mode: spec.network.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let prefix = spec
        .name_prefix
        .as_deref()
        .unwrap_or(guard.run_id().as_str())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect::<String>();
    let name = format!("uplift-{prefix}-{}", crate::guard::RunId::generate());
    let opts = CreateContainerOptionsBuilder::new().name(&name).build();
    let created = match docker
        .create_container(Some(opts.clone()), body.clone())
        .await
    {
        Ok(c) => c,
        // Like `docker run`: an image missing locally is pulled, then the create is retried.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {
            pull_image(engine, &spec.image).await?;
            docker
                .create_container(Some(opts), body)
                .await
                .map_err(|e| Error::engine(format!("create a container from {}", spec.image), e))?
        }
        Err(e) => {
            return Err(Error::engine(
                format!("create a container from {}", spec.image),
                e,
            ));
        }
    };
    let id = created.id;
    guard.track_container(&id);
    let started_at = std::time::Instant::now();
    tracing::debug!(container = %id, image = %spec.image, "container created");

    let result = drive(engine, &id, limits, on_output).await;

    // Remove whatever happened; the guard covers the case where this future is dropped.
    let remove = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(&id, Some(remove)).await {
        Ok(()) => guard.forget_container(&id),
        Err(e) => tracing::warn!(container = %id, error = %e, "remove container"),
    }
    let (exit_code, ended) = result.map_err(|e| match e {
        Error::Engine { action, source } => run_err(format!("{action}: {source}")),
        other => other,
    })?;
    Ok(RunOutcome {
        exit_code,
        ended,
        duration: started_at.elapsed(),
    })
}

/// Pulls `image` (anonymously) into the local store.
async fn pull_image(engine: &Engine, image: &str) -> Result<()> {
    tracing::info!(%image, "pulling image");
    let opts = bollard::query_parameters::CreateImageOptionsBuilder::new()
        .from_image(image)
        .build();
    let mut pull = engine.docker().create_image(Some(opts), None, None);
    while let Some(item) = pull.next().await {
        if let Err(e) = item {
            return Err(Error::Run {
                image: image.to_owned(),
                message: format!("the image is not in the local store and pulling it failed: {e}"),
            });
        }
    }
    Ok(())
}

async fn drive(
    engine: &Engine,
    id: &str,
    limits: &RunLimits,
    on_output: &mut (dyn FnMut(OutputStream, &[u8]) + Send),
) -> Result<(i64, Ended)> {
    let docker = engine.docker();
    docker
        .start_container(id, None)
        .await
        .map_err(|e| Error::engine(format!("start container {id}"), e))?;
    let logs_opts = LogsOptionsBuilder::new()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .build();
    let mut logs = docker.logs(id, Some(logs_opts));
    let deadline = limits.timeout.map(|t| tokio::time::Instant::now() + t);
    let sleep = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep);

    // Follow the logs until they end (the container stopped), the deadline or cancellation.
    let ended = loop {
        tokio::select! {
            biased;
            _ = limits.cancel.cancelled() => break Ended::Cancelled,
            _ = &mut sleep => break Ended::TimedOut,
            chunk = logs.next() => match chunk {
                Some(Ok(LogOutput::StdOut { message })) | Some(Ok(LogOutput::Console { message })) => {
                    on_output(OutputStream::Stdout, &message)
                }
                Some(Ok(LogOutput::StdErr { message })) => on_output(OutputStream::Stderr, &message),
                Some(Ok(LogOutput::StdIn { .. })) => {}
                Some(Err(e)) => {
                    tracing::debug!(container = %id, error = %e, "log stream ended with an error");
                    break Ended::Exited;
                }
                None => break Ended::Exited,
            },
        }
    };
    if ended != Ended::Exited {
        tracing::debug!(container = %id, ?ended, "killing container");
        let kill = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
        if let Err(e) = docker.kill_container(id, Some(kill)).await {
            tracing::debug!(container = %id, error = %e, "kill container");
        }
    }
    // The wait is bounded: after logs end or a kill, the container stops promptly.
    let wait = async {
        let mut w = docker.wait_container(id, None);
        match w.next().await {
            Some(Ok(r)) => Ok(r.status_code),
            // bollard reports a non-zero exit as an error carrying the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(Error::engine(format!("wait for container {id}"), e)),
            None => Ok(-1),
        }
    };
    let code = match tokio::time::timeout(Duration::from_secs(30), wait).await {
        Ok(r) => r?,
        Err(_) => -1,
    };
    Ok((code, ended))
}
