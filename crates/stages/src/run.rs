//! `uses: run`: a shell script on the host; its exit code is the stage's result.

use std::sync::Arc;

use uplift_exec::{
    BoxFuture, Outputs, PlanContext, ProcessSpec, ResolvedStage, RunContext, Stage, StageError,
    StagePlan,
};
use uplift_pipeline::StageSpec;
use uplift_pipeline::with::{RUN_SPEC, RunWith, parse_with};

/// The `run` stage type.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunStage;

/// Shells that accept `-e` (stop at the first failing command).
const ERREXIT_SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "ash"];

/// The argv that runs `script` with `shell` (default `sh`).
pub fn shell_argv(shell: Option<&str>, script: &str) -> Result<Vec<String>, StageError> {
    let shell = shell.unwrap_or("sh");
    let mut argv = shlex::split(shell)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| StageError::Settings(format!("cannot split shell `{shell}` into words")))?;
    let program = argv.first().cloned().unwrap_or_default();
    let base = std::path::Path::new(&program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if argv.len() == 1 && ERREXIT_SHELLS.contains(&base.as_str()) {
        argv.push(String::from("-e"));
    }
    argv.push(String::from("-c"));
    argv.push(script.to_owned());
    Ok(argv)
}

fn settings(stage: &ResolvedStage) -> Result<RunWith, StageError> {
    parse_with::<RunWith>(&stage.with)
        .map_err(|e| StageError::Settings(format!("{}: {}", e.path, e.message)))
}

fn quote(arg: &str) -> String {
    shlex::try_quote(arg)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| arg.to_owned())
}

impl Stage for RunStage {
    fn spec(&self) -> Arc<dyn StageSpec> {
        Arc::new(RUN_SPEC)
    }

    fn plan(&self, ctx: &PlanContext<'_>, stage: &ResolvedStage) -> Result<StagePlan, StageError> {
        let with = settings(stage)?;
        let argv = shell_argv(with.shell.as_deref(), &with.run)?;
        let dir = with.working_directory.as_deref().unwrap_or(".");
        let first = with
            .run
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        let more = if with.run.trim().lines().count() > 1 {
            " …"
        } else {
            ""
        };
        let cwd = if dir == "." {
            ctx.work_dir.to_owned()
        } else {
            ctx.work_dir.join(dir)
        };
        let (program, rest) = argv.split_at(argv.len().saturating_sub(1));
        let command = program
            .iter()
            .map(|a| quote(a))
            .collect::<Vec<_>>()
            .join(" ");
        let mut actions = vec![format!("in {}: {command} <<'SCRIPT'", cwd.display())];
        if let Some(script) = rest.first() {
            actions.push(format!("{}\nSCRIPT", script.trim_end()));
        }
        Ok(StagePlan {
            summary: format!("run `{first}{more}`"),
            actions,
            detail: serde_json::json!({ "argv": argv, "working-directory": cwd.display().to_string() }),
        })
    }

    fn run<'a>(
        &'a self,
        ctx: RunContext,
        stage: &'a ResolvedStage,
    ) -> BoxFuture<'a, Result<Outputs, StageError>> {
        Box::pin(async move {
            let with = settings(stage)?;
            let argv = shell_argv(with.shell.as_deref(), &with.run)?;
            let (program, args) = argv
                .split_first()
                .ok_or_else(|| StageError::Settings(String::from("empty shell")))?;
            let cwd = match &with.working_directory {
                Some(dir) => ctx.work_dir.join(dir),
                None => ctx.work_dir.clone(),
            };
            if !cwd.is_dir() {
                return Err(StageError::Settings(format!(
                    "working-directory {} is not a folder",
                    cwd.display()
                )));
            }
            let spec = ProcessSpec {
                program: program.clone(),
                args: args.to_vec(),
                cwd,
                env: stage.env.clone(),
            };
            let exit = ctx.spawner.run(&spec).await?;
            let mut outputs = Outputs::new();
            if let Some(code) = exit.code {
                outputs.insert(String::from("exit-code"), code.to_string());
            }
            if exit.success() {
                return Ok(outputs);
            }
            let how = match (exit.code, exit.signal) {
                (_, Some(signal)) => format!("was killed by signal {signal}"),
                (Some(code), None) => format!("exited with code {code}"),
                (None, None) => String::from("ended without a status"),
            };
            let shell = with.shell.as_deref().unwrap_or("sh");
            let first = with
                .run
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim();
            Err(StageError::Failed {
                message: format!("`{shell}: {first}` {how}"),
                tail: exit.tail,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn argv_for_shells() {
        assert_eq!(
            shell_argv(None, "echo hi").unwrap(),
            ["sh", "-e", "-c", "echo hi"]
        );
        assert_eq!(
            shell_argv(Some("/bin/bash"), "x").unwrap(),
            ["/bin/bash", "-e", "-c", "x"]
        );
        assert_eq!(
            shell_argv(Some("python3"), "x").unwrap(),
            ["python3", "-c", "x"]
        );
        assert_eq!(
            shell_argv(Some("bash -o pipefail"), "x").unwrap(),
            ["bash", "-o", "pipefail", "-c", "x"]
        );
        assert!(shell_argv(Some("'unterminated"), "x").is_err());
    }
}
