//! What kind of failure each library error is ([`Kind`]), decided here for every error the
//! commands end with, by exhaustive matches (a new variant does not compile until it is
//! classified). [`Kind::exit`] is the one map from kinds to exit codes.

use uplift_stages::deploy::docker::DeployError;
use uplift_stages::deploy::kube;
use uplift_stages::deploy::{DeployStageError, kube::ApiError};
use uplift_stages::deploy_postgres::PgError;

use crate::exit::Exit;

/// The kinds of failure, each with one exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// What the user gave is wrong: a file, a flag, a release name, a password, a dump.
    BadInput,
    /// Something outside the input failed: I/O, git, Docker, a cluster, a server, a lock
    /// another run holds.
    Environment,
    /// The command worked and the answer is "no": a release never got healthy.
    Negative,
    /// A signal stopped it (what was serving is put back first).
    Cancelled,
}

impl Kind {
    /// Every kind, for the test that walks them.
    #[cfg(test)]
    pub const ALL: [Kind; 4] = [
        Kind::BadInput,
        Kind::Environment,
        Kind::Negative,
        Kind::Cancelled,
    ];

    /// The exit code of a kind: the only place errors become exit codes.
    pub fn exit(self) -> Exit {
        match self {
            Kind::BadInput => Exit::BadInput,
            Kind::Environment => Exit::Environment,
            Kind::Negative => Exit::Negative,
            Kind::Cancelled => Exit::Cancelled,
        }
    }
}

/// An error whose [`Kind`] is known.
pub trait Classify {
    fn kind(&self) -> Kind;
}

impl Classify for uplift_exec::ExecError {
    fn kind(&self) -> Kind {
        use uplift_exec::ExecError as E;
        match self {
            E::Lock(lock) => lock.kind(),
            E::Io { .. } => Kind::Environment,
            E::UnknownStage(_) | E::UnknownType(_) => Kind::BadInput,
        }
    }
}

impl Classify for uplift_exec::LockError {
    fn kind(&self) -> Kind {
        use uplift_exec::LockError as E;
        match self {
            E::Held { .. } | E::Io { .. } => Kind::Environment,
        }
    }
}

impl Classify for uplift_upgrade::Error {
    fn kind(&self) -> Kind {
        use uplift_upgrade::Error as E;
        match self {
            E::Template(template) => template.kind(),
            E::Tree(tree) => tree.kind(),
            E::Npm(npm) => npm.kind(),
            E::Git { .. } | E::IndexLocked { .. } => Kind::Environment,
            E::InvalidBranch { .. } | E::RepositoryBusy { .. } | E::NoCommit { .. } => {
                Kind::BadInput
            }
            E::Marker { .. }
            | E::NoMarker { .. }
            | E::MarkerSyntax { .. }
            | E::NoApp { .. }
            | E::Downgrade { .. }
            | E::Dirty { .. }
            | E::NotARepository { .. }
            | E::BranchExists { .. }
            | E::UnknownPreset { .. } => Kind::BadInput,
        }
    }
}

impl Classify for uplift_template::Error {
    fn kind(&self) -> Kind {
        use uplift_template::Error as E;
        match self {
            E::OpenRepo { .. } | E::Git { .. } | E::Mirror { .. } | E::Io { .. } => {
                Kind::Environment
            }
            E::Tree(tree) => tree.kind(),
            // A source from another crate: the npm registry is the one there is.
            E::Source(foreign) => foreign
                .0
                .downcast_ref::<uplift_npm::Error>()
                .map_or(Kind::BadInput, Classify::kind),
            E::UnknownSourceKind { .. }
            | E::TagPattern { .. }
            | E::UnknownRelease { .. }
            | E::HiddenPreRelease { .. }
            | E::NoReleases { .. }
            | E::NoSuchTemplate { .. }
            | E::Lineage { .. }
            | E::Render { .. }
            | E::RenderNoPosition { .. }
            | E::RenderMany { .. }
            | E::VersionsMap { .. }
            | E::Collision { .. }
            | E::LinkOutside { .. } => Kind::BadInput,
        }
    }
}

impl Classify for uplift_tree::Error {
    fn kind(&self) -> Kind {
        use uplift_tree::Error as E;
        match self {
            E::Read { .. }
            | E::Write { .. }
            | E::UndoFailed { .. }
            | E::Unsupported { .. }
            | E::ApplyInProgress { .. }
            | E::RecoveryFailed { .. } => Kind::Environment,
            E::Cancelled => Kind::Cancelled,
            E::InvalidPath { .. }
            | E::EscapesRoot { .. }
            | E::ThroughSymlink { .. }
            | E::LinkEscapes { .. }
            | E::Blocked { .. } => Kind::BadInput,
        }
    }
}

impl Classify for uplift_npm::Error {
    fn kind(&self) -> Kind {
        use uplift_npm::Error as E;
        match self {
            // An unreachable repository of release tags is the environment (exit 3).
            E::Http { .. } | E::Status { .. } | E::Io { .. } | E::ReleaseTags { .. } => {
                Kind::Environment
            }
            E::Tree(tree) => tree.kind(),
            E::Spec { .. }
            | E::Document { .. }
            | E::NoSuchVersion { .. }
            | E::NotInManifest { .. }
            | E::Integrity { .. }
            | E::UnsafeEntry { .. }
            | E::Archive { .. }
            | E::AppFile { .. } => Kind::BadInput,
        }
    }
}

impl Classify for DeployStageError {
    fn kind(&self) -> Kind {
        use DeployStageError as E;
        match self {
            E::Backup(pg) => pg_kind(pg, false),
            // A dump that is missing, unreadable or incomplete is bad input on both targets.
            E::Restore(pg) | E::RestoreFailed { source: pg, .. } => pg_kind(pg, true),
            E::Deploy(deploy) => deploy.kind(),
            E::Kube(kube) => kube.kind(),
            E::NoBackup(_) | E::NoCurrent { .. } => Kind::BadInput,
            E::Cancelled(_) => Kind::Cancelled,
        }
    }
}

/// A PostgreSQL failure; `reading_dump` when the file named is a dump given to restore (its
/// absence is then the input's fault, not the disk's).
fn pg_kind(error: &PgError, reading_dump: bool) -> Kind {
    match error {
        PgError::Auth { .. } | PgError::NotADump(_) | PgError::Incomplete { .. } => Kind::BadInput,
        PgError::Io { .. } if reading_dump => Kind::BadInput,
        PgError::Io { .. }
        | PgError::Unreachable { .. }
        | PgError::Failed { .. }
        | PgError::Spawn { .. } => Kind::Environment,
        PgError::Cancelled => Kind::Cancelled,
    }
}

impl Classify for DeployError {
    fn kind(&self) -> Kind {
        use DeployError as E;
        match self {
            E::Docker { .. } | E::Locked { .. } | E::LockIo { .. } | E::Record { .. } => {
                Kind::Environment
            }
            E::WriteRecord(_) => Kind::Environment,
            E::InvalidSetting(_) | E::ImageMissing(_) | E::MissingSecret(_) | E::NoRelease(_) => {
                Kind::BadInput
            }
            E::Unhealthy(_) => Kind::Negative,
            E::Cancelled(_) => Kind::Cancelled,
        }
    }
}

impl Classify for kube::Error {
    fn kind(&self) -> Kind {
        use kube::Error as E;
        match self {
            E::NotPinned { .. }
            | E::InvalidName { .. }
            | E::InvalidSetting(_)
            | E::NoRelease(_) => Kind::BadInput,
            E::Api(api) => api.kind(),
            E::Serialize(_) | E::Yaml(_) | E::BadRecord { .. } | E::NotStopped { .. } => {
                Kind::Environment
            }
            E::Rollout(_) => Kind::Negative,
        }
    }
}

impl Classify for ApiError {
    fn kind(&self) -> Kind {
        match self {
            ApiError::Spawn { .. }
            | ApiError::Failed { .. }
            | ApiError::Decode { .. }
            | ApiError::Other(_) => Kind::Environment,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::path::PathBuf;

    use super::*;

    /// The README's exit-code table, read back: each kind's code is documented once.
    #[test]
    fn every_kind_has_its_documented_exit_code() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        for kind in Kind::ALL {
            let code = kind.exit() as u8;
            let expected = match kind {
                Kind::BadInput => 2,
                Kind::Environment => 3,
                Kind::Negative => 1,
                Kind::Cancelled => 130,
            };
            assert_eq!(code, expected, "{kind:?}");
            assert!(
                readme.contains(&format!("\n| {code} | ")),
                "README's exit-code table has no row for {code} ({kind:?})"
            );
        }
    }

    /// The same failure is the same code on both deploy targets.
    #[test]
    fn both_deploy_targets_agree() {
        let bad_dump = [
            DeployStageError::Restore(PgError::NotADump(PathBuf::from("d"))),
            DeployStageError::Restore(PgError::Incomplete {
                path: PathBuf::from("d"),
                detail: "end of file".into(),
            }),
            DeployStageError::Restore(PgError::Io {
                path: PathBuf::from("d"),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            }),
            DeployStageError::Restore(PgError::Auth { target: "t".into() }),
            DeployStageError::NoBackup("2".into()),
        ];
        for error in &bad_dump {
            assert_eq!(error.kind(), Kind::BadInput, "{error:?}");
        }
        let cancelled = [
            DeployStageError::Cancelled("the restore was rolled back".into()),
            DeployStageError::Deploy(DeployError::Cancelled("x".into())),
            DeployStageError::Restore(PgError::Cancelled),
        ];
        for error in &cancelled {
            assert_eq!(error.kind().exit() as u8, 130, "{error:?}");
        }
        let restore_failed = DeployStageError::RestoreFailed {
            source: PgError::Failed {
                command: "pg_restore".into(),
                status: "exit status: 1".into(),
                stderr: "cannot drop table items".into(),
            },
            restarted: "release 2 serves again".into(),
        };
        assert_eq!(restore_failed.kind(), Kind::Environment);
        let no_release = [
            DeployStageError::Deploy(DeployError::NoRelease("none".into())),
            DeployStageError::Kube(kube::Error::NoRelease("none".into())),
        ];
        for error in &no_release {
            assert_eq!(error.kind(), Kind::BadInput, "{error:?}");
        }
        let never_healthy = [DeployStageError::Deploy(DeployError::Unhealthy(
            Box::default(),
        ))];
        for error in &never_healthy {
            assert_eq!(error.kind(), Kind::Negative, "{error:?}");
        }
        // A lock another run holds is the same kind for a pipeline run and a deploy.
        let deploy_locked = DeployError::Locked {
            target: "portal".into(),
            holder: "pid 1".into(),
            path: PathBuf::from("l"),
        };
        let run_locked = uplift_exec::ExecError::Lock(uplift_exec::LockError::Held {
            path: PathBuf::from("l"),
            owner: uplift_exec::LockOwner {
                pid: 1,
                host: "h".into(),
                started: "now".into(),
                pipeline: "p".into(),
            },
        });
        assert_eq!(deploy_locked.kind(), run_locked.kind());
    }
}
