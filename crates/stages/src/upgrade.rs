//! `uses: upgrade`: merge an upstream release into the app (settings in `with` and the
//! pipeline's `upstream:` block), through `uplift-upgrade`.
//!
//! Outputs: `from`, `to`, `line` (the release line followed, `main` or `next`), `files`,
//! `conflicts` (regions), `conflicting-files`, `changed` (`true` when the app's tree changed),
//! `commit` (with `branch`), `notes` (when the plan has some, one per line), and for
//! `check: true`: `current`, `latest`, `line`, `available`, `notes`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use uplift_exec::{
    BoxFuture, OutputSink, Outputs, PlanContext, Progress, ProgressUnit, ResolvedStage, RunContext,
    Stage, StageError, StagePlan,
};
use uplift_merge::{ConflictStyle as MergeStyle, MergeOptions, TextOptions};
use uplift_pipeline::StageSpec;
use uplift_pipeline::model::{ReleaseLineSpec, TemplateSpec, Upstream as UpstreamSpec};
use uplift_pipeline::with::{ConflictStyle, UPGRADE_SPEC, UpgradeWith, parse_with};
use uplift_template::{Lineage, ReleaseLine};
use uplift_upgrade::report::{self, Colour};
use uplift_upgrade::{
    ApplyOptions, DownloadProgress, DownloadProgressFn, Marker, Prepared, UpgradeRequest, Upstream,
    UpstreamConfig,
};

/// The `upgrade` stage type.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpgradeStage;

fn settings(stage: &ResolvedStage) -> Result<UpgradeWith, StageError> {
    parse_with::<UpgradeWith>(&stage.with)
        .map_err(|e| StageError::Settings(format!("{}: {}", e.path, e.message)))
}

fn failed(message: impl std::fmt::Display) -> StageError {
    StageError::Failed {
        message: message.to_string(),
        tail: Vec::new(),
    }
}

/// Makes a local source path relative to the pipeline's folder; URLs are left alone.
fn resolve_source(source: &str, work_dir: &Path) -> String {
    let (kind, location) = match source.split_once(':') {
        Some((kind @ ("git" | "dir"), location)) => (kind, location),
        _ => return source.to_string(),
    };
    let is_url = location.contains("://") || location.starts_with("git@");
    if is_url || Path::new(location).is_absolute() {
        return source.to_string();
    }
    format!("{kind}:{}", work_dir.join(location).display())
}

/// The upgrade engine's configuration from the pipeline's `upstream:` block (a preset reads
/// the app in `work_dir`).
pub fn upstream_config(
    spec: &UpstreamSpec,
    work_dir: &Path,
) -> Result<(UpstreamConfig, Marker), StageError> {
    upstream_config_for_app(spec, work_dir, work_dir)
}

/// The upgrade engine's configuration from the pipeline's `upstream:` block; a `preset` reads
/// the app in `app` and the block's other settings override it.
pub fn upstream_config_for_app(
    spec: &UpstreamSpec,
    work_dir: &Path,
    app: &Path,
) -> Result<(UpstreamConfig, Marker), StageError> {
    let entries: Vec<String> = match &spec.template {
        None => Vec::new(),
        Some(TemplateSpec::Path(path)) => vec![path.clone()],
        Some(TemplateSpec::PerRelease(list)) => list.clone(),
    };
    let mut config = match &spec.preset {
        Some(preset) => {
            let mut config = uplift_upgrade::preset::preset_config(preset, app)
                .map_err(|e| StageError::Settings(e.to_string()))?;
            if !spec.source.is_empty() {
                config.source = resolve_source(&spec.source, work_dir);
            }
            config
        }
        None if spec.source.is_empty() => {
            return Err(StageError::Settings(
                "the `upstream:` block needs a `source` or a `preset`".to_string(),
            ));
        }
        None => UpstreamConfig::new(resolve_source(&spec.source, work_dir)),
    };
    if spec.preset.is_none() || !entries.is_empty() {
        config.lineage =
            Lineage::parse(&entries).map_err(|e| StageError::Settings(e.to_string()))?;
        config.template_choice = None;
    }
    for (key, value) in &spec.values {
        config.values.insert(key.clone(), value.clone());
    }
    if let Some(line) = spec.line {
        config.line = Some(match line {
            ReleaseLineSpec::Main => ReleaseLine::Main,
            ReleaseLineSpec::Next => ReleaseLine::Next,
        });
    }
    let marker = match &spec.marker {
        Some(marker) => Marker {
            file: marker.file.clone(),
            field: marker.field.clone(),
        },
        None => Marker::default(),
    };
    Ok((config, marker))
}

struct Job {
    upstream: UpstreamConfig,
    request: UpgradeRequest,
    with: UpgradeWith,
}

fn job(
    upstream: Option<&UpstreamSpec>,
    work_dir: &Path,
    stage: &ResolvedStage,
) -> Result<Job, StageError> {
    let with = settings(stage)?;
    let spec = upstream
        .ok_or_else(|| StageError::Settings("the pipeline has no `upstream:` block".to_string()))?;
    let app = work_dir.join(PathBuf::from(&with.app));
    let (config, marker) = upstream_config_for_app(spec, work_dir, &app)?;
    let style = match with.conflict_style {
        ConflictStyle::Merge => MergeStyle::Merge,
        ConflictStyle::Diff3 => MergeStyle::Diff3,
    };
    let request = UpgradeRequest {
        app: work_dir.join(PathBuf::from(&with.app)),
        from: None,
        to: with.to.clone(),
        marker,
        merge: MergeOptions {
            text: TextOptions {
                style,
                ..TextOptions::default()
            },
            ..MergeOptions::default()
        },
    };
    Ok(Job {
        upstream: config,
        request,
        with,
    })
}

fn prepare(job: &Job) -> Result<Prepared, StageError> {
    let upstream = Upstream::open(job.upstream.clone()).map_err(failed)?;
    let mut prepared = uplift_upgrade::prepare(&upstream, &job.request).map_err(failed)?;
    uplift_upgrade::preset::add_follow_ups(&upstream, &mut prepared);
    Ok(prepared)
}

fn check_outputs(job: &Job) -> Result<Outputs, StageError> {
    let upstream = Upstream::open(job.upstream.clone()).map_err(failed)?;
    let current = job.request.marker.read(&job.request.app).map_err(failed)?;
    let releases = upstream.releases();
    let latest = releases.latest().map_err(|e| failed(e.to_string()))?;
    // The app's release resolves even when it is a pre-release the line hides.
    let current_version = releases
        .resolve_current(&current)
        .map_err(|e| failed(e.to_string()))?;
    let mut outputs = Outputs::new();
    outputs.insert("current".into(), current_version.to_string());
    outputs.insert("latest".into(), latest.to_string());
    outputs.insert("line".into(), upstream.line().to_string());
    outputs.insert(
        "available".into(),
        (latest.version > current_version.version).to_string(),
    );
    let notes = uplift_upgrade::line_notes(&upstream, current_version);
    if !notes.is_empty() {
        outputs.insert("notes".into(), notes.join("\n"));
    }
    Ok(outputs)
}

fn plan_outputs(prepared: &Prepared) -> Outputs {
    let plan = &prepared.plan;
    let mut outputs = Outputs::new();
    outputs.insert("from".into(), plan.from.clone());
    outputs.insert("to".into(), plan.to.clone());
    outputs.insert("line".into(), plan.line.clone());
    outputs.insert("files".into(), plan.summary.files.to_string());
    // Defined once (README, "Outputs"), the same in `uplift check`: `conflicts` counts files,
    // `conflicting-files` lists them, `conflict-regions` counts the regions in them.
    outputs.insert("conflicts".into(), plan.summary.conflict.to_string());
    let files: Vec<String> = plan
        .files
        .iter()
        .filter(|f| f.action == uplift_merge::Action::Conflict)
        .map(|f| f.path.to_string())
        .collect();
    outputs.insert("conflicting-files".into(), files.join("\n"));
    outputs.insert(
        "conflict-regions".into(),
        plan.summary.conflicts.to_string(),
    );
    outputs.insert("changed".into(), (!prepared.changes.is_empty()).to_string());
    if !plan.notes.is_empty() {
        outputs.insert("notes".into(), plan.notes.join("\n"));
    }
    outputs
}

/// Sends the downloads of an `npm:` upstream as the stage's progress events (bytes).
fn download_events(output: OutputSink) -> DownloadProgressFn {
    Arc::new(move |progress: DownloadProgress| {
        let message = match (progress.done, progress.failed) {
            (false, _) => "",
            (true, false) => "downloaded",
            (true, true) => "failed",
        };
        output.progress(Progress {
            task: format!("download {}", progress.what),
            current: progress.current,
            total: progress.total,
            unit: ProgressUnit::Bytes,
            message: message.to_string(),
            done: progress.done,
        });
    })
}

impl Stage for UpgradeStage {
    fn spec(&self) -> Arc<dyn StageSpec> {
        Arc::new(UPGRADE_SPEC)
    }

    fn plan(&self, ctx: &PlanContext<'_>, stage: &ResolvedStage) -> Result<StagePlan, StageError> {
        let job = job(ctx.upstream, ctx.work_dir, stage)?;
        if job.with.check {
            let outputs = check_outputs(&job)?;
            return Ok(StagePlan {
                summary: format!(
                    "check for an upgrade: at {}, latest {} ({} line)",
                    outputs.get("current").cloned().unwrap_or_default(),
                    outputs.get("latest").cloned().unwrap_or_default(),
                    outputs.get("line").cloned().unwrap_or_default()
                ),
                actions: Vec::new(),
                detail: serde_json::Value::Null,
            });
        }
        let prepared = prepare(&job)?;
        let plan = &prepared.plan;
        let text = report::text(plan, Colour::Never);
        Ok(StagePlan {
            summary: format!(
                "upgrade {} -> {}: {}",
                plan.from,
                plan.to,
                report::summary_line(plan)
            ),
            actions: text.lines().skip(1).map(|l| l.trim().to_string()).collect(),
            detail: serde_json::to_value(plan).unwrap_or(serde_json::Value::Null),
        })
    }

    fn run<'a>(
        &'a self,
        ctx: RunContext,
        stage: &'a ResolvedStage,
    ) -> BoxFuture<'a, Result<Outputs, StageError>> {
        Box::pin(async move {
            let mut job = job(ctx.upstream.as_ref(), &ctx.work_dir, stage)?;
            let output = ctx.output.clone();
            job.upstream.download_progress = Some(download_events(output.clone()));
            // git2 and file I/O are blocking: keep them off the executor's threads.
            tokio::task::spawn_blocking(move || {
                if job.with.check {
                    let outputs = check_outputs(&job)?;
                    output.info(&format!(
                        "at {}, latest {}: upgrade available: {}",
                        outputs
                            .get("current")
                            .map(String::as_str)
                            .unwrap_or_default(),
                        outputs
                            .get("latest")
                            .map(String::as_str)
                            .unwrap_or_default(),
                        outputs
                            .get("available")
                            .map(String::as_str)
                            .unwrap_or_default()
                    ));
                    return Ok(outputs);
                }
                let prepared = prepare(&job)?;
                for line in report::text(&prepared.plan, Colour::Never).lines() {
                    output.info(line);
                }
                let options = ApplyOptions {
                    branch: job.with.branch.clone(),
                    allow_dirty: false,
                    continue_branch: false,
                };
                let applied = uplift_upgrade::apply(&prepared, &options).map_err(failed)?;
                let mut outputs = plan_outputs(&prepared);
                if let Some(commit) = applied.commit {
                    outputs.insert("commit".into(), commit);
                }
                if prepared.plan.has_conflicts() && !job.with.allow_conflicts {
                    return Err(StageError::Failed {
                        message: format!(
                            "{} conflict(s) remain in {} file(s); their markers are written",
                            prepared.plan.summary.conflicts, prepared.plan.summary.conflict
                        ),
                        tail: prepared
                            .plan
                            .files
                            .iter()
                            .filter(|f| f.action == uplift_merge::Action::Conflict)
                            .map(|f| {
                                format!("{}: {}", f.path, f.reason.clone().unwrap_or_default())
                            })
                            .collect(),
                    });
                }
                Ok(outputs)
            })
            .await
            .map_err(|e| failed(format!("the upgrade task stopped: {e}")))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_sources_are_relative_to_the_pipeline() {
        let dir = Path::new("/repo/pipelines/..");
        assert_eq!(
            resolve_source("dir:fixtures/t", dir),
            "dir:/repo/pipelines/../fixtures/t"
        );
        assert_eq!(resolve_source("git:/abs/repo", dir), "git:/abs/repo");
        assert_eq!(
            resolve_source("git:https://example.invalid/r.git", dir),
            "git:https://example.invalid/r.git"
        );
    }
}

#[cfg(test)]
mod preset_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec(yaml: &str) -> UpstreamSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn the_backstage_preset_needs_no_other_setting_and_the_block_overrides_it() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        std::fs::create_dir_all(app.join("packages/app")).unwrap();
        std::fs::write(
            app.join("catalog-info.yaml"),
            "kind: Component\nmetadata:\n  name: portal\n",
        )
        .unwrap();
        let (config, marker) =
            upstream_config_for_app(&spec("preset: backstage\n"), dir.path(), &app).unwrap();
        assert_eq!(config.source, "npm:@backstage/create-app");
        assert_eq!(config.preset.as_deref(), Some("backstage"));
        assert_eq!(config.values["name"], "portal");
        assert_eq!(config.values["defaultBranch"], "main");
        assert_eq!(
            config.lineage,
            Lineage::parse(&["templates/default-app", "1.50.0=templates/legacy-app"]).unwrap()
        );
        assert_eq!(marker, Marker::default());

        let block = "preset: backstage\nsource: dir:releases\ntemplate: [templates/next-app]\nvalues:\n  name: other\n";
        let (config, _) = upstream_config_for_app(&spec(block), dir.path(), &app).unwrap();
        assert_eq!(
            config.source,
            format!("dir:{}", dir.path().join("releases").display())
        );
        assert_eq!(config.values["name"], "other");
        assert_eq!(config.values["defaultBranch"], "main");
        assert_eq!(
            config.lineage,
            Lineage::parse(&["templates/next-app"]).unwrap()
        );

        // The line: `main` unless the block says otherwise; a preset's template choice is
        // dropped once the block names the template.
        assert_eq!(config.line, None);
        assert!(config.template_choice.is_none());
        let (config, _) =
            upstream_config_for_app(&spec("preset: backstage\nline: next\n"), dir.path(), &app)
                .unwrap();
        assert_eq!(config.line, Some(ReleaseLine::Next));
        assert!(config.template_choice.is_some());
        assert!(serde_yaml::from_str::<UpstreamSpec>("preset: backstage\nline: nxt\n").is_err());

        let error = upstream_config_for_app(&spec("values: {}\n"), dir.path(), &app)
            .unwrap_err()
            .to_string();
        assert!(error.contains("needs a `source` or a `preset`"), "{error}");
        let error = upstream_config_for_app(&spec("preset: rails\n"), dir.path(), &app)
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown preset \"rails\""), "{error}");
    }
}
