//! `uplift rollback`: return a deploy target to its previous release (or a named one) from the
//! release records kept on the target itself, without the pipeline file; `--with-data` also
//! restores the database dump taken before the current release.

use tokio_util::sync::CancellationToken;
use uplift_stages::deploy::docker::{DeployError, Deployer};
use uplift_stages::deploy::kube::{self, DeployOptions, Kubectl};
use uplift_stages::deploy::{DeployStageError, rollback_docker, rollback_kubernetes};
use uplift_stages::deploy_postgres::PgTarget;

use crate::GlobalArgs;
use crate::exit::{CliError, CliResult, Exit};
use crate::progress_bars::{StandaloneView, Update};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    Docker,
    Kubernetes,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The deploy target's name (the `name` of the deploy stage).
    name: String,
    /// Where it runs.
    #[arg(long, value_enum, default_value = "docker")]
    target: Target,
    /// The release to return to (default: the one before the current release).
    #[arg(long)]
    to: Option<String>,
    /// Docker: the target's network (default: `<name>`).
    #[arg(long)]
    network: Option<String>,
    /// Docker: the network alias (default: `<name>`).
    #[arg(long)]
    alias: Option<String>,
    /// Kubernetes: the namespace.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Kubernetes: the kubectl context.
    #[arg(long)]
    context: Option<String>,
    /// Also restore the database dump taken before the current release (the current version
    /// is stopped first; the service is down until the older release is healthy).
    #[arg(long)]
    with_data: bool,
    #[arg(long, default_value = "127.0.0.1", requires = "with_data")]
    pg_host: String,
    #[arg(long, default_value_t = 5432, requires = "with_data")]
    pg_port: u16,
    #[arg(long, default_value = "postgres", requires = "with_data")]
    pg_user: String,
    /// The database (default: the target's name).
    #[arg(long, requires = "with_data")]
    pg_database: Option<String>,
    /// The environment variable holding the database password.
    #[arg(long, default_value = "PGPASSWORD", requires = "with_data")]
    pg_password_env: String,
}

pub fn run(args: Args, global: &GlobalArgs) -> CliResult {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::from_error(Exit::Environment, &e))?;
    runtime.block_on(async move {
        let cancel = CancellationToken::new();
        let watcher = tokio::spawn(cancel_on_signal(cancel.clone()));
        let result = match args.target {
            Target::Docker => docker(&args, global, &cancel).await,
            Target::Kubernetes => kubernetes(&args, global, &cancel).await,
        };
        watcher.abort();
        result
    })
}

/// SIGINT or SIGTERM cancels; the rollback then puts back what was serving before it.
async fn cancel_on_signal(cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    errln!("cancelling: putting back the release that was serving");
    cancel.cancel();
}

async fn docker(args: &Args, global: &GlobalArgs, cancel: &CancellationToken) -> CliResult {
    let to = match &args.to {
        Some(to) => Some(to.parse::<u64>().map_err(|_| {
            CliError::new(
                Exit::BadInput,
                format!("--to {to:?} is not a release number"),
            )
        })?),
        None => None,
    };
    let database = database(args)?;
    let deployer = Deployer::connect()
        .await
        .map_err(|e| deploy_error(&DeployStageError::Deploy(e)))?
        .with_progress(rollout_view(global));
    let network = args.network.clone().unwrap_or_else(|| args.name.clone());
    let alias = args.alias.clone().unwrap_or_else(|| args.name.clone());
    let report = rollback_docker(
        &deployer,
        &args.name,
        &network,
        &alias,
        to,
        database.as_ref(),
        cancel,
    )
    .await
    .map_err(|e| deploy_error(&e))?;
    let record = &report.record;
    outln!(
        "rolled back {} to release {} (now release {}, image {}){}",
        args.name,
        record.rollback_of.unwrap_or(record.id),
        record.id,
        record.image_id,
        if database.is_some() {
            ", database restored"
        } else {
            ""
        }
    );
    Ok(Exit::Success)
}

/// Shows the rollout's replicas: a bar on a terminal, one line when it ends elsewhere.
fn rollout_view(
    global: &GlobalArgs,
) -> impl Fn(uplift_stages::deploy::docker::RolloutProgress) + Send + Sync + 'static {
    let view = replica_view(global);
    move |p| {
        view(
            &format!("rollout {}", p.target),
            p.serving,
            p.replicas,
            &p.message,
            p.done,
        )
    }
}

/// The same view for a Kubernetes rollout (one task per Deployment).
fn kube_rollout_view(global: &GlobalArgs) -> kube::ProgressFn {
    let view = replica_view(global);
    std::sync::Arc::new(move |p: kube::RolloutProgress| {
        view(
            &format!("rollout {}", p.deployment),
            p.ready,
            p.wanted,
            &p.message,
            p.done,
        )
    })
}

/// A progress view of replicas: `(task, ready, wanted, message, done)`.
fn replica_view(
    global: &GlobalArgs,
) -> impl Fn(&str, u64, u64, &str, bool) + Send + Sync + 'static {
    let view = StandaloneView::new(global.quiet);
    move |task, current, total, message, done| {
        view.show(&Update {
            stage: "rollback",
            task,
            current,
            total: Some(total),
            unit: uplift_exec::ProgressUnit::Replicas,
            message,
            done,
        });
    }
}

/// The database of `--with-data`, its password from the environment.
fn database(args: &Args) -> Result<Option<PgTarget>, CliError> {
    if !args.with_data {
        return Ok(None);
    }
    let password = std::env::var(&args.pg_password_env).map_err(|_| {
        CliError::new(
            Exit::BadInput,
            format!(
                "--with-data needs the database password in ${}",
                args.pg_password_env
            ),
        )
    })?;
    Ok(Some(PgTarget {
        host: args.pg_host.clone(),
        port: args.pg_port,
        user: args.pg_user.clone(),
        database: args
            .pg_database
            .clone()
            .unwrap_or_else(|| args.name.clone()),
        password,
    }))
}

/// A failed rollback on either target: the code from its kind, the details a person needs.
fn deploy_error(error: &DeployStageError) -> CliError {
    let mut cli = CliError::classified(error);
    match error {
        DeployStageError::Deploy(DeployError::Unhealthy(unhealthy)) => {
            for line in &unhealthy.health_output {
                cli.message.push_str(&format!("\n  health: {line}"));
            }
            for line in unhealthy.logs.lines() {
                cli.message.push_str(&format!("\n  log: {line}"));
            }
            cli
        }
        DeployStageError::Kube(kube::Error::Rollout(failure)) => {
            cli.message.push('\n');
            cli.message
                .push_str(failure.diagnostics.to_string().trim_end());
            cli
        }
        DeployStageError::Deploy(DeployError::Locked { .. }) => cli.with_hint(
            "another deploy or rollback of this target is running; try again when it ends",
        ),
        DeployStageError::Deploy(DeployError::NoRelease(_)) => cli.with_hint(
            "`docker ps -a --filter label=dev.uplift.deploy.record` shows the release records",
        ),
        _ => cli,
    }
}

async fn kubernetes(args: &Args, global: &GlobalArgs, cancel: &CancellationToken) -> CliResult {
    let database = database(args)?;
    let api = Kubectl {
        context: args.context.clone(),
        ..Kubectl::default()
    };
    let record = rollback_kubernetes(
        &api,
        &args.namespace,
        &args.name,
        args.to.as_deref(),
        database.as_ref(),
        &DeployOptions {
            progress: Some(kube_rollout_view(global)),
            ..DeployOptions::default()
        },
        cancel,
    )
    .await
    .map_err(|e| deploy_error(&e))?;
    outln!(
        "rolled back {} to release {} (image {}){}",
        args.name,
        record.id,
        record.image,
        if database.is_some() {
            ", database restored"
        } else {
            ""
        }
    );
    Ok(Exit::Success)
}
