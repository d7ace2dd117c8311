//! The deploy stage's engine for `target: docker`, as library functions the stage and
//! `uplift rollback` call: back the database up first (when a database is configured), then
//! roll out; roll back, optionally restoring the database of the release rolled back from.

use std::collections::BTreeMap;
use std::path::Path;

use tokio_util::sync::CancellationToken;
use uplift_docker::deploy::{DeployError, DeployReport, Deployer, DockerDeploySpec};

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
    NoBackup(u64),
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
            .ok_or(DeployStageError::NoBackup(plan.current.id))?;
        deployer.stop_serving(&plan).await?;
        deploy_postgres::restore(database, Path::new(&dump), cancel)
            .await
            .map_err(DeployStageError::Restore)?;
    }
    Ok(deployer.apply_rollback(plan, cancel).await?)
}
