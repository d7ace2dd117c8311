//! The deploy stage's engine for `target: docker`, as library functions the stage and
//! `uplift rollback` call: back the database up first (when a database is configured), then
//! roll out; roll back, optionally restoring the database of the release rolled back from.

use std::collections::BTreeMap;
use std::path::Path;

use tokio_util::sync::CancellationToken;
use uplift_docker::deploy::{
    ContainerApi, DeployError, DeployReport, Deployer, DockerDeploySpec, RollbackPlan,
};
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
    #[error("restore the database; nothing was stopped")]
    Restore(#[source] PgError),
    #[error("restore the database; the database is unchanged and {restarted}")]
    RestoreFailed {
        #[source]
        source: PgError,
        restarted: String,
    },
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

/// Rolls `target` back to `to` (or the previous release). With `database`, in an order that
/// never lets the current release write to restored data, and never leaves the service down:
/// 1. everything checkable is checked while the current release still serves: the dump taken
///    before the current release is recorded, complete (`pg_restore --list` and a full read),
///    and the database accepts the credentials;
/// 2. the current release's replicas are stopped;
/// 3. the dump is restored (`pg_restore --single-transaction`: all or nothing);
/// 4. the older release is rolled out.
///
/// A failure or cancel before the restore completed leaves the data as it was, so the
/// replicas that served are started again. Once the data is restored, a cancel no longer stops
/// the rollback: only the older release fits the restored data.
pub async fn rollback_docker<A: ContainerApi>(
    deployer: &Deployer<A>,
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
    let Some(database) = database else {
        return Ok(deployer.apply_rollback(plan, cancel).await?);
    };
    let dump = plan
        .current
        .backup
        .clone()
        .ok_or_else(|| DeployStageError::NoBackup(plan.current.id.to_string()))?;
    check_before_stop(database, &dump, cancel).await?;
    tracing::info!(
        release = plan.current.id,
        "stopping the current release before restoring its data"
    );
    if let Err(error) = deployer.stop_serving(&plan).await {
        let why = restart_docker(deployer, &plan).await;
        tracing::info!("{why}");
        return Err(error.into());
    }
    let restored = if cancel.is_cancelled() {
        Err(PgError::Cancelled)
    } else {
        deploy_postgres::restore(database, Path::new(&dump), cancel).await
    };
    if let Err(error) = restored {
        let why = restart_docker(deployer, &plan).await;
        return Err(restore_not_done(error, why));
    }
    Ok(deployer
        .apply_rollback(plan, &CancellationToken::new())
        .await?)
}

/// What a data rollback checks before it stops anything (both targets): the dump is complete
/// and the database takes the credentials; a cancel here has touched nothing.
async fn check_before_stop(
    database: &PgTarget,
    dump: &str,
    cancel: &CancellationToken,
) -> Result<(), DeployStageError> {
    let untouched = || DeployStageError::Cancelled("nothing was stopped or restored".to_owned());
    match deploy_postgres::check_restore(database, Path::new(dump), cancel).await {
        Ok(()) if cancel.is_cancelled() => Err(untouched()),
        Ok(()) => Ok(()),
        Err(PgError::Cancelled) => Err(untouched()),
        Err(error) => Err(DeployStageError::Restore(error)),
    }
}

/// The error of a restore that failed or was cancelled after the stop; `restarted` says what
/// came of starting the current release again.
fn restore_not_done(error: PgError, restarted: String) -> DeployStageError {
    match error {
        PgError::Cancelled => DeployStageError::Cancelled(format!(
            "the restore was rolled back, the database is unchanged; {restarted}"
        )),
        source => DeployStageError::RestoreFailed { source, restarted },
    }
}

/// Starts the replicas that served again (after a stop whose restore did not happen); what
/// came of it.
async fn restart_docker<A: ContainerApi>(deployer: &Deployer<A>, plan: &RollbackPlan) -> String {
    let id = plan.current.id;
    match deployer.restart_serving(plan).await {
        Ok(()) => format!("release {id} serves again"),
        Err(error) => format!("starting release {id} again failed: {error}"),
    }
}

/// Rolls the Kubernetes app `app` back to `to` (or the previous release). With `database`, in
/// an order that never lets the current release write to restored data:
/// 1. everything checkable is checked first, as for Docker: the dump taken before the current
///    release is recorded and complete, and the database accepts the credentials;
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
    check_before_stop(database, &dump, cancel).await?;
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
            tracing::info!("{why}");
            return Err(DeployStageError::Kube(error));
        }
    }
    if let Err(error) = deploy_postgres::restore(database, Path::new(&dump), cancel).await {
        let why = restart(api, namespace, &current, options).await;
        return Err(restore_not_done(error, why));
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
    tracing::info!(release = %current.id, "starting the current release again");
    match uplift_kube::reapply(api, namespace, current, options).await {
        Ok(()) => format!("release {} was started again", current.id),
        Err(error) => format!("starting release {} again failed: {error}", current.id),
    }
}
