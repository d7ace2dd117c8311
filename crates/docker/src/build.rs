use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use bollard::models::{BuildInfo, BuildInfoAux};
use bollard::query_parameters::{BuildImageOptionsBuilder, BuilderVersion, TagImageOptionsBuilder};
use futures_util::StreamExt;

use crate::context::{ContextOptions, ContextSummary, ContextTimestamps};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::reference::ImageRef;

/// Which builder to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Builder {
    /// BuildKit when the engine supports it, the classic builder otherwise.
    #[default]
    Auto,
    /// The classic (v1) builder, always.
    Classic,
    /// BuildKit, or an error when the engine has none.
    BuildKit,
}

/// One image build.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// The folder sent as the build context.
    pub context_dir: PathBuf,
    /// The Dockerfile, relative to the context folder or absolute (`Dockerfile` when empty). It
    /// may lie outside the context, as `docker build -f ../Dockerfile.x .` allows.
    pub dockerfile: String,
    /// The timestamps of the context's entries (fixed by default, or the CLI's).
    pub timestamps: ContextTimestamps,
    /// The stage to build in a multi-stage Dockerfile.
    pub target: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// Full references (`repo:tag`) to tag the result with; may be empty.
    pub tags: Vec<String>,
    pub builder: Builder,
    pub no_cache: bool,
}

impl BuildRequest {
    fn dockerfile(&self) -> &str {
        if self.dockerfile.is_empty() {
            "Dockerfile"
        } else {
            &self.dockerfile
        }
    }
}

/// The result of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// The image id in the local store (`sha256:...`).
    pub id: String,
    /// The references it was tagged with.
    pub tags: Vec<String>,
    /// The builder actually used ([`Builder::Classic`] or [`Builder::BuildKit`]).
    pub builder: Builder,
    /// What the context held.
    pub context: ContextSummary,
}

/// Progress of a build, for the caller to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildEvent {
    /// A line of the classic builder's output (`Step 1/3 : FROM scratch`, command output, ...).
    Line(String),
    /// A BuildKit step changed state.
    Vertex {
        digest: String,
        name: String,
        cached: bool,
        completed: bool,
        error: Option<String>,
    },
    /// Progress inside a BuildKit step (a transfer, an extraction).
    Progress {
        vertex: String,
        id: String,
        current: i64,
        total: i64,
    },
    /// Output of a BuildKit step.
    Log { vertex: String, text: String },
    /// How far the build is, in steps: the classic builder's `Step N/M`, or BuildKit's
    /// completed vertices out of those it announced so far (its total can grow).
    Steps {
        completed: u64,
        total: Option<u64>,
        /// The step running now (or the one just completed).
        name: String,
    },
}

/// Counts a build's steps from either builder's stream, for [`BuildEvent::Steps`].
#[derive(Debug, Default)]
struct StepCounter {
    /// BuildKit vertices by digest: completed or not.
    vertices: HashMap<String, bool>,
    last: Option<(u64, Option<u64>)>,
}

impl StepCounter {
    /// A classic builder line; `Step 3/5 : RUN make` means two of five are done.
    fn classic_line(&mut self, line: &str) -> Option<BuildEvent> {
        let rest = line.trim().strip_prefix("Step ")?;
        let (numbers, name) = rest.split_once(" : ").unwrap_or((rest, ""));
        let (n, m) = numbers.split_once('/')?;
        let n: u64 = n.trim().parse().ok()?;
        let m: u64 = m.trim().parse().ok()?;
        self.changed(n.saturating_sub(1), Some(m), name.trim())
    }

    fn vertex(&mut self, digest: &str, name: &str, completed: bool) -> Option<BuildEvent> {
        let entry = self.vertices.entry(digest.to_owned()).or_insert(false);
        *entry |= completed;
        let done = self.vertices.values().filter(|c| **c).count() as u64;
        let total = self.vertices.len() as u64;
        self.changed(done, Some(total), name)
    }

    fn changed(&mut self, completed: u64, total: Option<u64>, name: &str) -> Option<BuildEvent> {
        if self.last == Some((completed, total)) {
            return None;
        }
        self.last = Some((completed, total));
        Some(BuildEvent::Steps {
            completed,
            total,
            name: name.to_owned(),
        })
    }
}

/// The first line of a Dockerfile that needs BuildKit, with the feature, if any.
pub fn needs_buildkit(dockerfile: &str) -> Option<(usize, &'static str)> {
    const FEATURES: &[(&str, &[&str], &str)] = &[
        ("RUN", &["--mount"], "RUN --mount"),
        ("RUN", &["--network"], "RUN --network"),
        ("RUN", &["--security"], "RUN --security"),
        ("COPY", &["--link"], "COPY --link"),
        ("COPY", &["--chmod"], "COPY --chmod"),
        ("ADD", &["--link"], "ADD --link"),
        ("ADD", &["--chmod"], "ADD --chmod"),
    ];
    for (i, line) in dockerfile.lines().enumerate() {
        let mut words = line.split_whitespace();
        let Some(instruction) = words.next() else {
            continue;
        };
        let instruction = instruction.to_ascii_uppercase();
        let flags: Vec<&str> = words.take_while(|w| w.starts_with("--")).collect();
        for (ins, prefixes, feature) in FEATURES {
            if instruction == *ins
                && flags.iter().any(|f| {
                    prefixes.iter().any(|p| {
                        f.strip_prefix(p)
                            .is_some_and(|r| r.is_empty() || r.starts_with('='))
                    })
                })
            {
                return Some((i + 1, feature));
            }
        }
        if matches!(instruction.as_str(), "RUN" | "COPY") && line.contains("<<") {
            let after = line.split("<<").nth(1).unwrap_or("");
            let word = after
                .trim_start_matches('-')
                .trim_start_matches(['"', '\'']);
            if word.starts_with(|c: char| c.is_ascii_uppercase()) {
                return Some((i + 1, "a heredoc"));
            }
        }
    }
    None
}

/// Builds an image from `req`, calling `on_event` with the progress.
pub async fn build_image(
    engine: &Engine,
    req: &BuildRequest,
    on_event: &mut (dyn FnMut(BuildEvent) + Send),
) -> Result<BuiltImage> {
    let dockerfile = req.dockerfile().to_owned();
    let dockerfile_path = req.context_dir.join(&dockerfile);
    let text = tokio::fs::read_to_string(&dockerfile_path)
        .await
        .map_err(|source| Error::Context {
            path: dockerfile_path.clone(),
            source,
        })?;
    let builder = match req.builder {
        Builder::Auto if engine.supports_buildkit() => Builder::BuildKit,
        Builder::Auto => Builder::Classic,
        Builder::BuildKit if !engine.supports_buildkit() => {
            let (line, feature) = needs_buildkit(&text).unwrap_or((0, "BuildKit"));
            return Err(Error::BuildKitRequired {
                dockerfile,
                line,
                feature: feature.to_owned(),
                reason: format!(
                    "the engine (API {}) does not build with BuildKit",
                    engine.api_version()
                ),
            });
        }
        other => other,
    };
    if builder == Builder::Classic
        && let Some((line, feature)) = needs_buildkit(&text)
    {
        let reason = if req.builder == Builder::Classic {
            "the classic builder was chosen".to_owned()
        } else {
            format!(
                "the engine (API {}) does not build with BuildKit",
                engine.api_version()
            )
        };
        return Err(Error::BuildKitRequired {
            dockerfile,
            line,
            feature: feature.to_owned(),
            reason,
        });
    }
    for tag in &req.tags {
        ImageRef::parse(tag)?;
    }

    let options = ContextOptions {
        dockerfile: dockerfile.clone(),
        timestamps: req.timestamps,
        buildkit: builder == Builder::BuildKit,
    };
    let context = crate::context::stream(req.context_dir.clone(), options).await?;
    // The name the engine reads the Dockerfile under (an outside one is added under a new name).
    let dockerfile_in_context = context.dockerfile.clone();
    tracing::debug!(
        files = context.summary.files,
        bytes = context.summary.bytes,
        ?builder,
        "build context walked; packing while sending"
    );

    let build_args: HashMap<&str, &str> = req
        .build_args
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let labels: HashMap<&str, &str> = req
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut opts = BuildImageOptionsBuilder::new()
        .dockerfile(&dockerfile_in_context)
        .buildargs(&build_args)
        .labels(&labels)
        .rm(true)
        .forcerm(true)
        .nocache(req.no_cache);
    if let Some(t) = req.tags.first() {
        opts = opts.t(t);
    }
    if let Some(target) = &req.target {
        opts = opts.target(target);
    }
    let session;
    if builder == Builder::BuildKit {
        session = format!("uplift-{}", crate::guard::RunId::generate());
        opts = opts
            .version(BuilderVersion::BuilderBuildKit)
            .session(&session);
    }
    let summary = context.summary;
    let packer = context.packer;
    let chunks = futures_util::stream::unfold(context.chunks, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let body = bollard::body_stream(chunks);
    let mut stream = engine.docker().build_image(opts.build(), None, Some(body));

    let mut image_id: Option<String> = None;
    let mut last_lines: Vec<String> = Vec::new();
    let mut steps = StepCounter::default();
    let mut failure: Option<Error> = None;
    // If this future is dropped mid-build, the engine cancels the build when it sees the
    // connection close; the guard also removes the classic builder's running step at once.
    let mut step_guard = StepGuard {
        engine: engine.clone(),
        container: None,
    };
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(id) = info.stream.as_deref().and_then(|s| {
                    s.lines()
                        .find_map(|l| l.trim().strip_prefix("---> Running in "))
                }) {
                    step_guard.container = Some(id.trim().to_owned());
                }
                handle_info(info, &mut image_id, &mut last_lines, &mut steps, on_event)
            }
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                failure = Some(Error::Build {
                    dockerfile: dockerfile.clone(),
                    message: with_tail(error.trim(), &last_lines),
                });
                break;
            }
            Err(e) => {
                failure = Some(Error::engine(format!("build image from {dockerfile}"), e));
                break;
            }
        }
    }
    drop(stream);
    step_guard.container = None;
    // The packer's own failure (an unreadable file) is the root cause of a truncated context;
    // its "engine stopped reading" is only a consequence of the engine's error.
    let packed = packer.await.map_err(|e| Error::Build {
        dockerfile: dockerfile.clone(),
        message: format!("packing the context stopped: {e}"),
    })?;
    match (packed, failure) {
        (Err(Error::Context { source, .. }), Some(f))
            if source.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            return Err(f);
        }
        (Err(e), _) => return Err(e),
        (Ok(()), Some(f)) => return Err(f),
        (Ok(()), None) => {}
    }
    let id = image_id.ok_or_else(|| Error::Build {
        dockerfile: dockerfile.clone(),
        message: with_tail("the engine reported no image id", &last_lines),
    })?;
    for tag in req.tags.iter().skip(1) {
        let r = ImageRef::parse(tag)?;
        let opts = TagImageOptionsBuilder::new()
            .repo(&r.name())
            .tag(r.tag.as_deref().unwrap_or("latest"))
            .build();
        engine
            .docker()
            .tag_image(&id, Some(opts))
            .await
            .map_err(|e| Error::engine(format!("tag {id} as {tag}"), e))?;
    }
    Ok(BuiltImage {
        id,
        tags: req.tags.clone(),
        builder,
        context: summary,
    })
}

/// Removes the container of the classic builder's running step when a build is dropped.
struct StepGuard {
    engine: Engine,
    container: Option<String>,
}

impl Drop for StepGuard {
    fn drop(&mut self) {
        let Some(id) = self.container.take() else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let engine = self.engine.clone();
        tracing::debug!(container = %id, "build dropped: removing its running step");
        handle.spawn(async move {
            let opts = bollard::query_parameters::RemoveContainerOptionsBuilder::new()
                .force(true)
                .build();
            if let Err(e) = engine.docker().remove_container(&id, Some(opts)).await {
                tracing::debug!(container = %id, error = %e, "remove build step container");
            }
        });
    }
}

fn with_tail(message: &str, lines: &[String]) -> String {
    if lines.is_empty() {
        message.to_owned()
    } else {
        format!("{message}\n{}", lines.join("\n"))
    }
}

const TAIL: usize = 20;

fn remember(lines: &mut Vec<String>, line: &str) {
    for l in line.lines().filter(|l| !l.trim().is_empty()) {
        if lines.len() == TAIL {
            lines.remove(0);
        }
        lines.push(l.to_owned());
    }
}

fn handle_info(
    info: BuildInfo,
    image_id: &mut Option<String>,
    last_lines: &mut Vec<String>,
    steps: &mut StepCounter,
    on_event: &mut (dyn FnMut(BuildEvent) + Send),
) {
    if let Some(s) = info.stream {
        remember(last_lines, &s);
        // The classic builder reports the final id only as text.
        if let Some(id) = s.trim().strip_prefix("Successfully built ") {
            image_id.get_or_insert_with(|| id.trim().to_owned());
        }
        let line = s.trim_end().to_owned();
        let step = s.lines().find_map(|l| steps.classic_line(l));
        if !line.is_empty() {
            on_event(BuildEvent::Line(line));
        }
        if let Some(step) = step {
            on_event(step);
        }
    }
    match info.aux {
        Some(BuildInfoAux::Default(img)) => {
            if let Some(id) = img.id {
                *image_id = Some(id);
            }
        }
        Some(BuildInfoAux::BuildKit(status)) => {
            for v in status.vertexes {
                let step = steps.vertex(&v.digest, &v.name, v.completed.is_some());
                on_event(BuildEvent::Vertex {
                    digest: v.digest,
                    name: v.name,
                    cached: v.cached,
                    completed: v.completed.is_some(),
                    error: (!v.error.is_empty()).then_some(v.error),
                });
                if let Some(step) = step {
                    on_event(step);
                }
            }
            for s in status.statuses {
                on_event(BuildEvent::Progress {
                    vertex: s.vertex,
                    id: s.id,
                    current: s.current,
                    total: s.total,
                });
            }
            for l in status.logs {
                let text = String::from_utf8_lossy(&l.msg).into_owned();
                remember(last_lines, &text);
                on_event(BuildEvent::Log {
                    vertex: l.vertex,
                    text,
                });
            }
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::{BuildEvent, StepCounter, needs_buildkit};

    fn steps(event: Option<BuildEvent>) -> Option<(u64, Option<u64>)> {
        match event {
            Some(BuildEvent::Steps {
                completed, total, ..
            }) => Some((completed, total)),
            _ => None,
        }
    }

    #[test]
    fn counts_classic_steps() {
        let mut counter = StepCounter::default();
        assert_eq!(
            steps(counter.classic_line("Step 1/3 : FROM scratch")),
            Some((0, Some(3)))
        );
        assert_eq!(steps(counter.classic_line(" ---> Running in 1234")), None);
        assert_eq!(
            steps(counter.classic_line("Step 3/3 : CMD [\"/x\"]")),
            Some((2, Some(3)))
        );
        assert_eq!(steps(counter.classic_line("Step x/3 : nonsense")), None);
    }

    #[test]
    fn counts_buildkit_vertices_once_each() {
        let mut counter = StepCounter::default();
        assert_eq!(
            steps(counter.vertex("a", "[1/2] FROM", false)),
            Some((0, Some(1)))
        );
        assert_eq!(
            steps(counter.vertex("b", "[2/2] COPY", false)),
            Some((0, Some(2)))
        );
        assert_eq!(
            steps(counter.vertex("a", "[1/2] FROM", true)),
            Some((1, Some(2)))
        );
        // The same state again says nothing new.
        assert_eq!(steps(counter.vertex("a", "[1/2] FROM", true)), None);
        assert_eq!(
            steps(counter.vertex("b", "[2/2] COPY", true)),
            Some((2, Some(2)))
        );
    }

    #[test]
    fn detects_buildkit_only_features() {
        assert_eq!(needs_buildkit("FROM scratch\nCOPY a b\n"), None);
        assert_eq!(
            needs_buildkit("FROM node\nRUN --mount=type=cache,target=/c yarn\n"),
            Some((2, "RUN --mount"))
        );
        assert_eq!(
            needs_buildkit("FROM x\ncopy --link a b\n"),
            Some((2, "COPY --link"))
        );
        assert_eq!(needs_buildkit("FROM x\nCOPY --chown=1:1 a b\n"), None);
        assert_eq!(
            needs_buildkit("FROM x\nRUN <<EOF\necho\nEOF\n"),
            Some((2, "a heredoc"))
        );
        // A flag-looking word after the command is not a flag.
        assert_eq!(needs_buildkit("FROM x\nRUN echo --mount=x\n"), None);
    }
}
