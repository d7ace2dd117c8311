//! `uses: image`: build the app's image with the engine API, tag it by policy, push it and
//! output the reference pinned by the registry's digest.
//!
//! Tags: the upstream release, the git commit (HEAD of the context's repository, `-dirty` when
//! the tree has changes) and any extra. Labels: the OCI revision, version and created labels are
//! always added. Credentials: `credentials:` in the file (usually secrets), else the Docker
//! config file and its credential helpers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;
use uplift_docker::{
    BuildContext, BuildEvent, BuildRequest, Builder, ContextOptions, ContextSummary,
    ContextTimestamps, Engine, ImageRef, PushEvent, RegistryAuth, RegistryStatus, RetryPolicy,
    TagPolicy, build_image, check_registry, credentials_from_config, oci_labels, push_image,
    registry_digest, tag_policy,
};
use uplift_exec::{
    BoxFuture, Outputs, PlanContext, Progress, ProgressUnit, ResolvedStage, RunContext, Stage,
    StageError, StagePlan,
};
use uplift_pipeline::StageSpec;
use uplift_pipeline::stages::image::{IMAGE_SPEC, ImageBuilder, ImageWith};
use uplift_pipeline::with::parse_with;

/// The `image` stage type.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImageStage;

/// The failures of the image stage's building blocks.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid settings: {0}")]
    Settings(String),
    #[error(transparent)]
    Docker(#[from] uplift_docker::Error),
    #[error("stopped")]
    Cancelled,
}

impl From<ImageError> for StageError {
    fn from(e: ImageError) -> Self {
        match e {
            ImageError::Settings(m) => StageError::Settings(m),
            ImageError::Cancelled => StageError::Stopped,
            ImageError::Docker(d) => {
                let mut message = d.to_string();
                let mut source = std::error::Error::source(&d);
                while let Some(cause) = source {
                    message.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                StageError::Failed {
                    message,
                    tail: Vec::new(),
                }
            }
        }
    }
}

/// The commit of HEAD of the repository holding `dir`, and whether its tree has changes.
pub fn git_revision(dir: &Path) -> Option<(String, bool)> {
    let repo = git2::Repository::discover(dir).ok()?;
    let commit = repo.head().ok()?.peel_to_commit().ok()?.id().to_string();
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true).include_ignored(false);
    let dirty = repo
        .statuses(Some(&mut opts))
        .map(|s| !s.is_empty())
        .unwrap_or(false);
    Some((commit, dirty))
}

/// What the stage would build and push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePlan {
    pub repository: String,
    /// Full references.
    pub tags: Vec<String>,
    pub context: PathBuf,
    pub dockerfile: String,
    pub summary: ContextSummary,
    /// `KEY=value`, masked.
    pub build_args: Vec<String>,
    pub builder: String,
    /// The context's timestamps: fixed (reproducible) or the files' own (the CLI's).
    pub timestamps: ContextTimestamps,
    pub push: bool,
    /// When pushing: whether the registry answers and accepts the credentials.
    pub registry: Option<RegistryStatus>,
    /// Where the credentials come from.
    pub credentials: String,
}

fn resolve(
    with: &ImageWith,
    work_dir: &Path,
) -> Result<(ImageRef, PathBuf, Vec<String>, Option<String>), ImageError> {
    let repo = ImageRef::parse(&with.repository)?;
    if repo.tag.is_some() || repo.digest.is_some() {
        return Err(ImageError::Settings(format!(
            "repository {} must have no tag or digest: tags come from the tag policy",
            with.repository
        )));
    }
    let context = work_dir.join(&with.context);
    let (commit, dirty) = match &with.commit {
        Some(c) => (Some(c.clone()), false),
        None => match git_revision(&context) {
            Some((c, d)) => (Some(c), d),
            None => (None, false),
        },
    };
    let tags = tag_policy(&TagPolicy {
        release: with.release.clone(),
        commit: commit.clone(),
        dirty,
        dirty_suffix: String::new(),
        extra: with.tags.clone(),
    });
    if tags.is_empty() {
        return Err(ImageError::Settings(
            "no tag: set `release`, `commit` or `tags` (or build from a git repository)".into(),
        ));
    }
    let refs = tags.iter().map(|t| repo.with_tag(t)).collect();
    Ok((repo, context, refs, commit))
}

fn auth_for(
    with: &ImageWith,
    work_dir: &Path,
    repo: &ImageRef,
) -> Result<(RegistryAuth, String), ImageError> {
    if let Some(c) = &with.credentials {
        return Ok((
            RegistryAuth::Basic {
                username: c.username.clone(),
                password: c.password.clone(),
            },
            "the stage's credentials".into(),
        ));
    }
    let config = with.docker_config.as_ref().map(|p| work_dir.join(p));
    let auth = credentials_from_config(config.as_deref(), repo)?;
    let from = match (&auth, &config) {
        (RegistryAuth::None, _) => "none (anonymous)".to_owned(),
        (_, Some(p)) => p.display().to_string(),
        (_, None) => "the Docker config file".to_owned(),
    };
    Ok((auth, from))
}

fn builder_of(b: ImageBuilder) -> Builder {
    match b {
        ImageBuilder::Auto => Builder::Auto,
        ImageBuilder::Classic => Builder::Classic,
        ImageBuilder::Buildkit => Builder::BuildKit,
    }
}

fn timestamps_of(t: uplift_pipeline::stages::image::ContextTimestamps) -> ContextTimestamps {
    match t {
        uplift_pipeline::stages::image::ContextTimestamps::Fixed => ContextTimestamps::Fixed,
        uplift_pipeline::stages::image::ContextTimestamps::Source => ContextTimestamps::Source,
    }
}

/// The build args whose value holds a secret (masking changes it). Docker records build args
/// in the image's history (`docker history`), so such a value ends up in the pushed image:
/// the stage says so in its plan and its log.
pub fn secret_build_args(with: &ImageWith, mask: &dyn Fn(&str) -> String) -> Vec<String> {
    with.build_args
        .iter()
        .filter(|(_, value)| mask(value) != **value)
        .map(|(key, _)| key.clone())
        .collect()
}

fn secret_build_args_warning(names: &[String]) -> String {
    format!(
        "warning: build arg{} {} carr{} a secret, and Docker records build args in the image's \
         history (`docker history`): read the secret from a BuildKit secret mount \
         (`RUN --mount=type=secret`) or a multi-stage build whose final stage does not declare \
         the ARG",
        if names.len() == 1 { "" } else { "s" },
        names.join(", "),
        if names.len() == 1 { "ies" } else { "y" },
    )
}

/// Plans the stage: tags, context size, masked build args, and (when pushing and an engine is
/// given) whether the registry answers and accepts the credentials. Builds and pushes nothing.
pub async fn plan_image(
    engine: Option<&Engine>,
    with: &ImageWith,
    work_dir: &Path,
    mask: &(dyn Fn(&str) -> String + Sync),
) -> Result<ImagePlan, ImageError> {
    let (repo, context, tags, _) = resolve(with, work_dir)?;
    let dir = context.clone();
    let options = ContextOptions {
        dockerfile: with.dockerfile.clone(),
        timestamps: timestamps_of(with.context_timestamps),
        buildkit: match with.builder {
            ImageBuilder::Auto => engine.is_some_and(Engine::supports_buildkit),
            ImageBuilder::Classic => false,
            ImageBuilder::Buildkit => true,
        },
    };
    let summary = tokio::task::spawn_blocking(move || BuildContext::summarize_with(&dir, &options))
        .await
        .map_err(|e| ImageError::Settings(format!("count the context: {e}")))??;
    let (auth, credentials) = auth_for(with, work_dir, &repo)?;
    let registry = match (with.push, engine) {
        (true, Some(engine)) => Some(check_registry(engine, &tags[0], &auth).await?),
        _ => None,
    };
    let builder = match (with.builder, engine) {
        (ImageBuilder::Auto, Some(e)) if e.supports_buildkit() => "buildkit (engine supports it)",
        (ImageBuilder::Auto, Some(_)) => "classic (the engine has no BuildKit)",
        (ImageBuilder::Auto, None) => "auto",
        (ImageBuilder::Classic, _) => "classic",
        (ImageBuilder::Buildkit, _) => "buildkit",
    };
    Ok(ImagePlan {
        repository: repo.name(),
        tags,
        context,
        dockerfile: with.dockerfile.clone(),
        summary,
        build_args: with
            .build_args
            .iter()
            .map(|(k, v)| format!("{k}={}", mask(v)))
            .collect(),
        builder: builder.to_owned(),
        timestamps: timestamps_of(with.context_timestamps),
        push: with.push,
        registry,
        credentials,
    })
}

/// What the stage produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageResult {
    pub image_id: String,
    /// Full references.
    pub tags: Vec<String>,
    /// The registry's digest (when pushed).
    pub digest: Option<String>,
    /// `repo@sha256:...` when pushed, else the first tag.
    pub image: String,
}

impl ImageResult {
    pub fn outputs(&self) -> Outputs {
        let mut o = Outputs::new();
        o.insert("image".into(), self.image.clone());
        o.insert("image-id".into(), self.image_id.clone());
        o.insert("tags".into(), self.tags.join(","));
        if let Some(d) = &self.digest {
            o.insert("digest".into(), d.clone());
        }
        o
    }
}

/// Builds, tags and (when `push`) pushes; `emit` receives messages as plain lines, `progress`
/// the build's steps (task `build REPO`) and each pushed layer's bytes (task
/// `push REF layer ID`).
pub async fn run_image(
    engine: &Engine,
    with: &ImageWith,
    work_dir: &Path,
    cancel: &CancellationToken,
    emit: &mut (dyn FnMut(&str) + Send),
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<ImageResult, ImageError> {
    let (repo, context, tags, commit) = resolve(with, work_dir)?;
    let mut labels = with.labels.clone();
    labels.extend(oci_labels(
        commit.as_deref(),
        with.release.as_deref(),
        SystemTime::now(),
    ));
    let req = BuildRequest {
        context_dir: context,
        dockerfile: with.dockerfile.clone(),
        target: with.target.clone(),
        build_args: with.build_args.clone(),
        labels,
        tags: tags.clone(),
        builder: builder_of(with.builder),
        no_cache: false,
        timestamps: timestamps_of(with.context_timestamps),
    };
    let mut vertices: BTreeMap<String, bool> = BTreeMap::new();
    let build_task = format!("build {}", repo.name());
    let mut build_steps = (0, None);
    let mut on_build = |e: BuildEvent| match e {
        BuildEvent::Line(l) => emit(&l),
        BuildEvent::Vertex {
            digest,
            name,
            cached,
            completed,
            error,
        } => {
            let seen = vertices.insert(digest, completed);
            if let Some(err) = error {
                emit(&format!("{name}: ERROR {err}"));
            } else if completed && seen != Some(true) {
                emit(&format!(
                    "{name}{}",
                    if cached { " CACHED" } else { " done" }
                ));
            }
        }
        BuildEvent::Log { text, .. } => {
            for l in text.lines() {
                emit(l);
            }
        }
        BuildEvent::Progress { .. } => {}
        BuildEvent::Steps {
            completed,
            total,
            name,
        } => {
            build_steps = (completed, total);
            progress(Progress {
                task: build_task.clone(),
                current: completed,
                total,
                unit: ProgressUnit::Steps,
                message: name,
                done: false,
            });
        }
    };
    let built = tokio::select! {
        r = build_image(engine, &req, &mut on_build) => r?,
        _ = cancel.cancelled() => return Err(ImageError::Cancelled),
    };
    // Every step ran (the builder does not announce the last one's end).
    let steps = build_steps.1.unwrap_or(build_steps.0).max(build_steps.0);
    progress(Progress {
        task: build_task,
        current: steps,
        total: Some(steps),
        unit: ProgressUnit::Steps,
        message: "built".to_owned(),
        done: true,
    });
    emit(&format!("built {} ({})", built.id, tags.join(", ")));
    if !with.push {
        return Ok(ImageResult {
            image_id: built.id,
            image: tags[0].clone(),
            tags,
            digest: None,
        });
    }
    let (auth, _) = auth_for(with, work_dir, &repo)?;
    let retry = RetryPolicy {
        attempts: with.push_attempts.max(1),
        ..RetryPolicy::default()
    };
    let mut digest = String::new();
    for t in &tags {
        let mut on_push = |e: PushEvent| match e {
            PushEvent::Status(s) => emit(&s),
            PushEvent::Layer {
                id,
                status,
                current,
                total,
                done,
            } => progress(Progress {
                task: format!("push {t} layer {id}"),
                current,
                total,
                unit: ProgressUnit::Bytes,
                message: status.to_lowercase(),
                done,
            }),
        };
        tokio::select! {
            r = push_image(engine, t, &auth, &retry, &mut on_push) => { r?; }
            _ = cancel.cancelled() => return Err(ImageError::Cancelled),
        }
        let d = registry_digest(engine, t, &auth, &retry).await?;
        if !digest.is_empty() && d != digest {
            return Err(ImageError::Settings(format!(
                "the registry gives {t} digest {d}, but {} has {digest}",
                tags[0]
            )));
        }
        digest = d;
        emit(&format!("pushed {t}"));
    }
    Ok(ImageResult {
        image_id: built.id,
        image: repo.with_digest(&digest),
        tags,
        digest: Some(digest),
    })
}

fn settings(stage: &ResolvedStage) -> Result<ImageWith, StageError> {
    parse_with::<ImageWith>(&stage.with)
        .map_err(|e| StageError::Settings(format!("{}: {}", e.path, e.message)))
}

/// Runs `fut` to completion on a fresh single-thread runtime in its own thread, so that the
/// synchronous `plan` can ask the engine without nesting runtimes.
fn block_on_fresh<T: Send>(fut: impl std::future::Future<Output = T> + Send) -> Option<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()
                .map(|rt| rt.block_on(fut))
        })
        .join()
        .ok()
        .flatten()
    })
}

impl Stage for ImageStage {
    fn spec(&self) -> Arc<dyn StageSpec> {
        Arc::new(IMAGE_SPEC)
    }

    fn plan(&self, ctx: &PlanContext<'_>, stage: &ResolvedStage) -> Result<StagePlan, StageError> {
        let with = settings(stage)?;
        let masker = ctx.masker.clone();
        let mask = move |s: &str| masker.mask(s).into_owned();
        let work_dir = ctx.work_dir.to_path_buf();
        let plan = block_on_fresh(async {
            // No engine is not an error for a plan: it only can't say what the engine supports.
            let engine = Engine::connect().await.ok();
            plan_image(engine.as_ref(), &with, &work_dir, &mask).await
        })
        .ok_or_else(|| {
            StageError::Other("plan the image stage: the planner thread stopped".into())
        })?
        .map_err(StageError::from)?;
        let mut actions = vec![
            format!(
                "build {} from {} ({} files, {} bytes) with {}",
                plan.dockerfile,
                plan.context.display(),
                plan.summary.files,
                plan.summary.bytes,
                plan.builder
            ),
            match plan.timestamps {
                ContextTimestamps::Fixed => "context as `docker build` sends it, with one fixed \
                    timestamp (reproducible; `context-timestamps: source` keeps the files' own)"
                    .to_owned(),
                ContextTimestamps::Source => "context as `docker build` sends it, with the \
                    files' own timestamps (`context-timestamps: source`)"
                    .to_owned(),
            },
            format!("tags: {}", plan.tags.join(", ")),
        ];
        if !plan.build_args.is_empty() {
            actions.push(format!("build args: {}", plan.build_args.join(" ")));
        }
        let secret_args = secret_build_args(&with, &|s: &str| ctx.masker.mask(s).into_owned());
        if !secret_args.is_empty() {
            actions.push(secret_build_args_warning(&secret_args));
        }
        if plan.push {
            let status = match &plan.registry {
                Some(RegistryStatus {
                    reachable: false,
                    message,
                    ..
                }) => format!("does not answer ({})", message.as_deref().unwrap_or("")),
                Some(RegistryStatus {
                    accepted: Some(true),
                    ..
                }) => "answers and accepts the credentials".to_owned(),
                Some(RegistryStatus {
                    accepted: Some(false),
                    message,
                    ..
                }) => format!(
                    "answers but refuses the credentials ({})",
                    message.as_deref().unwrap_or("")
                ),
                Some(RegistryStatus { message, .. }) => {
                    format!("answers: {}", message.as_deref().unwrap_or(""))
                }
                None => "not checked (no Docker engine)".to_owned(),
            };
            actions.push(format!(
                "push every tag to {} (credentials: {}); registry {status}",
                plan.repository, plan.credentials
            ));
        }
        Ok(StagePlan {
            summary: format!(
                "build {}{}",
                plan.repository,
                if plan.push { " and push it" } else { "" }
            ),
            actions,
            detail: serde_json::json!({
                "repository": plan.repository,
                "tags": plan.tags,
                "context-files": plan.summary.files,
                "context-bytes": plan.summary.bytes,
                "context-timestamps": plan.timestamps.as_str(),
                "build-args": plan.build_args,
                "push": plan.push,
                "registry-reachable": plan.registry.as_ref().map(|r| r.reachable),
                "credentials-accepted": plan.registry.as_ref().and_then(|r| r.accepted),
            }),
        })
    }

    fn run<'a>(
        &'a self,
        ctx: RunContext,
        stage: &'a ResolvedStage,
    ) -> BoxFuture<'a, Result<Outputs, StageError>> {
        Box::pin(async move {
            let with = settings(stage)?;
            let secret_args = secret_build_args(&with, &|s: &str| ctx.masker.mask(s).into_owned());
            if !secret_args.is_empty() {
                ctx.output.info(&secret_build_args_warning(&secret_args));
            }
            let engine = Engine::connect().await.map_err(ImageError::Docker)?;
            let sink = ctx.output.clone();
            let mut emit = |l: &str| sink.info(l);
            let mut progress = |p: Progress| ctx.output.progress(p);
            let result = run_image(
                &engine,
                &with,
                &ctx.work_dir,
                &ctx.cancel,
                &mut emit,
                &mut progress,
            )
            .await?;
            ctx.output.info(&format!("image {}", result.image));
            Ok(result.outputs())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn with(yaml: &str) -> ImageWith {
        parse_with(&serde_yaml::from_str(yaml).unwrap()).unwrap()
    }

    #[test]
    fn build_args_holding_a_secret_are_named_in_a_warning() {
        let w = with(
            "repository: app\nrelease: 1.0.0\nbuild-args: {TOKEN: s3cret, URL: 'https://u:s3cret@h', MODE: prod}\n",
        );
        let mask = |s: &str| s.replace("s3cret", "***");
        let names = secret_build_args(&w, &mask);
        assert_eq!(names, vec!["TOKEN", "URL"]);
        let warning = secret_build_args_warning(&names);
        assert!(
            warning.starts_with("warning: build args TOKEN, URL carry a secret"),
            "{warning}"
        );
        assert!(secret_build_args(&w, &|s: &str| s.to_owned()).is_empty());
    }

    #[test]
    fn tags_come_from_the_policy() {
        let d = tempfile::tempdir().unwrap();
        let w = with(
            "repository: 127.0.0.1:5000/team/app\nrelease: 1.2.3\ncommit: 0123456789abcdef\ntags: [latest]\n",
        );
        let (repo, _, tags, commit) = resolve(&w, d.path()).unwrap();
        assert_eq!(repo.name(), "127.0.0.1:5000/team/app");
        assert_eq!(commit.as_deref(), Some("0123456789abcdef"));
        assert_eq!(
            tags,
            vec![
                "127.0.0.1:5000/team/app:1.2.3",
                "127.0.0.1:5000/team/app:0123456789ab",
                "127.0.0.1:5000/team/app:latest"
            ]
        );
        let bad = with("repository: 127.0.0.1:5000/team/app:1\nrelease: 1.0.0\n");
        assert!(matches!(
            resolve(&bad, d.path()),
            Err(ImageError::Settings(_))
        ));
        let none = with("repository: app\n");
        assert!(matches!(
            resolve(&none, d.path()),
            Err(ImageError::Settings(_))
        ));
    }

    #[test]
    fn git_revision_sees_dirty_trees() {
        let d = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(d.path()).unwrap();
        std::fs::write(d.path().join("a"), "1").unwrap();
        let mut index = repo.index().unwrap();
        index.add_path(Path::new("a")).unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.invalid").unwrap();
        let id = repo
            .commit(Some("HEAD"), &sig, &sig, "c", &tree, &[])
            .unwrap();
        assert_eq!(git_revision(d.path()), Some((id.to_string(), false)));
        std::fs::write(d.path().join("a"), "2").unwrap();
        assert_eq!(git_revision(d.path()), Some((id.to_string(), true)));
        let w = with("repository: app\n");
        let (_, _, tags, _) = resolve(&w, d.path()).unwrap();
        assert_eq!(tags, vec![format!("app:{}-dirty", &id.to_string()[..12])]);
    }

    #[tokio::test]
    async fn plan_masks_build_args_and_counts_the_context() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(d.path().join("a.txt"), "hello").unwrap();
        std::fs::write(d.path().join(".dockerignore"), "a.txt\n").unwrap();
        let w = with("repository: app\nrelease: 1.0.0\nbuild-args: {TOKEN: s3cret, MODE: prod}\n");
        let mask = |s: &str| s.replace("s3cret", "***");
        let plan = plan_image(None, &w, d.path(), &mask).await.unwrap();
        assert_eq!(plan.build_args, vec!["MODE=prod", "TOKEN=***"]);
        assert_eq!(plan.summary.files, 2, "Dockerfile and .dockerignore");
        assert_eq!(plan.tags, vec!["app:1.0.0"]);
        assert!(plan.registry.is_none());
    }
}
