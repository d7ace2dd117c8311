//! The deploy stage's engine for `target: docker`, as library functions the stage and
//! `uplift rollback` call: back the database up first (when a database is configured), then
//! roll out; roll back, optionally restoring the database of the release rolled back from.

use std::collections::BTreeMap;
use std::path::Path;

use tokio_util::sync::CancellationToken;
use uplift_docker::deploy::{DeployError, DeployReport, Deployer, DockerDeploySpec};
use uplift_kube::{ClusterApi, DeployOptions, ReleaseRecord};

use crate::deploy_postgres::{self, PgError, PgTarget};

/// The Docker deploy engine, for callers of this module (the CLI's `rollback`).
pub use uplift_docker::deploy as docker;
/// The Kubernetes deploy engine, likewise.
pub use uplift_kube as kube;

/// A failure of a deploy or rollback.
#[derive(Debug, thiserror::Error)]
pub enum DeployStageError {
    #[error("back up the database before deploying; nothing was deployed")]
    Backup(#[source] PgError),
    #[error("restore the database")]
    Restore(#[source] PgError),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error("release {0} has no database backup to restore")]
    NoBackup(String),
    #[error(transparent)]
    Kube(#[from] uplift_kube::Error),
    #[error("release {release} has no current release to roll back from")]
    NoCurrent { release: String },
    #[error("cancelled; {0}")]
    Cancelled(String),
}

/// Backs `database` up into `backup_dir` (when given), then deploys `spec`; the backup's path
/// goes into the release record.
pub async fn deploy_docker(
    deployer: &Deployer,
    spec: &DockerDeploySpec,
    secrets: &BTreeMap<String, String>,
    database: Option<(&PgTarget, &Path)>,
    cancel: &CancellationToken,
) -> Result<DeployReport, DeployStageError> {
    let backup = match database {
        Some((target, dir)) => {
            let name = format!("{}-before-deploy", spec.name);
            let backup = deploy_postgres::backup(target, dir, &name, cancel)
                .await
                .map_err(DeployStageError::Backup)?;
            Some(backup.path.display().to_string())
        }
        None => None,
    };
    Ok(deployer.deploy(spec, secrets, backup, cancel).await?)
}

/// Rolls `target` back to `to` (or the previous release). With `database`, the current
/// release's containers are stopped first, the dump taken before the current release was
/// deployed is restored, and only then is the older release started.
pub async fn rollback_docker(
    deployer: &Deployer,
    target: &str,
    network: &str,
    alias: &str,
    to: Option<u64>,
    database: Option<&PgTarget>,
    cancel: &CancellationToken,
) -> Result<DeployReport, DeployStageError> {
    let plan = deployer
        .plan_rollback(target, network, alias, to, &BTreeMap::new())
        .await?;
    if let Some(database) = database {
        let dump = plan
            .current
            .backup
            .clone()
            .ok_or_else(|| DeployStageError::NoBackup(plan.current.id.to_string()))?;
        deployer.stop_serving(&plan).await?;
        deploy_postgres::restore(database, Path::new(&dump), cancel)
            .await
            .map_err(DeployStageError::Restore)?;
    }
    Ok(deployer.apply_rollback(plan, cancel).await?)
}

/// Rolls the Kubernetes app `app` back to `to` (or the previous release). With `database`, in
/// an order that never lets the current release write to restored data:
/// 1. the dump taken before the current release is checked (nothing is touched without one);
/// 2. the current release is stopped: its Deployments scaled to 0, and the pods waited for
///    until none is left, terminating ones included ([`uplift_kube::stop`]);
/// 3. the dump is restored (`pg_restore --single-transaction`: all or nothing);
/// 4. the older release is applied and waited for, and becomes current.
///
/// A failure or cancel before the restore completed leaves the data as it was, so the current
/// release is started again (its manifests re-applied). Once the data is restored, a cancel
/// no longer stops the rollback: only the older release fits the restored data.
pub async fn rollback_kubernetes<A: ClusterApi>(
    api: &A,
    namespace: &str,
    app: &str,
    to: Option<&str>,
    database: Option<&PgTarget>,
    options: &DeployOptions,
    cancel: &CancellationToken,
) -> Result<ReleaseRecord, DeployStageError> {
    let plan = uplift_kube::plan_rollback(api, namespace, app, to).await?;
    let Some(database) = database else {
        return Ok(uplift_kube::apply_rollback(api, plan, options).await?);
    };
    let current = plan
        .current
        .clone()
        .ok_or_else(|| DeployStageError::NoCurrent {
            release: plan.target.id.clone(),
        })?;
    let dump = current
        .backup
        .clone()
        .ok_or_else(|| DeployStageError::NoBackup(current.id.clone()))?;
    deploy_postgres::check_dump(Path::new(&dump))
        .await
        .map_err(DeployStageError::Restore)?;
    tracing::info!(release = %current.id, "stopping the current release before restoring its data");
    let stopped = tokio::select! {
        _ = cancel.cancelled() => Err(None),
        stopped = uplift_kube::stop(api, namespace, &current.manifests, options) => stopped.map_err(Some),
    };
    match stopped {
        Ok(()) => {}
        Err(None) => {
            let why = restart(api, namespace, &current, options).await;
            return Err(DeployStageError::Cancelled(format!(
                "the database was not touched; {why}"
            )));
        }
        Err(Some(error)) => {
            let why = restart(api, namespace, &current, options).await;
            tracing::warn!("{why}");
            return Err(DeployStageError::Kube(error));
        }
    }
    if let Err(error) = deploy_postgres::restore(database, Path::new(&dump), cancel).await {
        let why = restart(api, namespace, &current, options).await;
        return Err(match error {
            PgError::Cancelled => DeployStageError::Cancelled(format!(
                "the restore was rolled back, the database is unchanged; {why}"
            )),
            other => {
                tracing::warn!("{why}");
                DeployStageError::Restore(other)
            }
        });
    }
    Ok(uplift_kube::apply_rollback(api, plan, options).await?)
}

/// Starts `current` again (after a stop whose restore did not happen); what came of it.
async fn restart<A: ClusterApi>(
    api: &A,
    namespace: &str,
    current: &ReleaseRecord,
    options: &DeployOptions,
) -> String {
    tracing::warn!(release = %current.id, "starting the current release again");
    match uplift_kube::reapply(api, namespace, current, options).await {
        Ok(()) => format!("release {} was started again", current.id),
        Err(error) => format!("starting release {} again failed: {error}", current.id),
    }
}
