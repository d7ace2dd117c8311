//! `uses: test`: the app's checks, as processes on the host or each step in a container.
//!
//! - Steps run in order; the first that fails (or times out) fails the stage.
//! - `runner: container`: each step runs in a fresh container of `image` (via
//!   [`uplift_docker::run_container`]), the app bind-mounted at `workdir`, labelled with the run
//!   id and removed afterwards whatever happened (exit, timeout, cancel).
//! - Caches (`cache:`) are keyed by the SHA-256 of the files named in `key:`: named volumes
//!   mounted over the app's folders in containers, folders under `cache-dir` on the host.
//! - JUnit XML reports matching `reports:` are parsed (`junit-parser`) into totals, outputs and
//!   the summary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use uplift_docker::{
    Bind, ContainerSpec, Ended, Engine, OutputStream, ResourceGuard, RunId, RunLimits, VolumeMount,
    ensure_volume, run_container,
};
use uplift_exec::{
    BoxFuture, Outputs, PlanContext, ProcessSpec, ResolvedStage, RunContext, Stage, StageError,
    StagePlan, Stream,
};
use uplift_pipeline::StageSpec;
use uplift_pipeline::stages::test::{TEST_SPEC, TestRunner, TestStep, TestWith};
use uplift_pipeline::with::parse_with;

/// The `test` stage type.
#[derive(Debug, Clone, Copy, Default)]
pub struct TestStage;

/// The failures of the test stage's building blocks.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error("invalid settings: {0}")]
    Settings(String),
    #[error(transparent)]
    Docker(#[from] uplift_docker::Error),
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("read JUnit report {}: {message}", path.display())]
    Report { path: PathBuf, message: String },
}

impl From<TestError> for StageError {
    fn from(e: TestError) -> Self {
        match e {
            TestError::Settings(m) => StageError::Settings(m),
            TestError::Io { what, path, source } => StageError::Io { what, path, source },
            other => StageError::Other(error_chain(&other)),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// How one step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepResult {
    pub name: String,
    pub exit_code: Option<i64>,
    pub ended: Ended,
    pub duration: Duration,
    /// The last lines of its output.
    pub tail: Vec<String>,
}

impl StepResult {
    pub fn success(&self) -> bool {
        self.ended == Ended::Exited && self.exit_code == Some(0)
    }

    fn how(&self) -> String {
        match (self.ended, self.exit_code) {
            (Ended::TimedOut, _) => {
                String::from("timed out (it and everything it started were stopped)")
            }
            (Ended::Cancelled, _) => String::from("was cancelled"),
            (Ended::Exited, Some(code)) => format!("exited with code {code}"),
            (Ended::Exited, None) => String::from("ended without a status"),
        }
    }
}

/// Totals of the JUnit reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JunitTotals {
    pub files: usize,
    pub tests: u64,
    pub failures: u64,
    pub errors: u64,
    pub skipped: u64,
    /// The failed and errored cases, in report order (at most [`FAILED_TESTS_KEPT`]).
    pub failed: Vec<FailedTest>,
}

/// Failed and errored cases kept per stage (for the log, the annotations and the summary);
/// the totals count them all.
pub const FAILED_TESTS_KEPT: usize = 100;

/// The file in the stage's run folder listing its failed tests (see [`write_failed_tests`]).
pub const FAILED_TESTS_FILE: &str = "failed-tests.json";

/// One failed or errored test case of a JUnit report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailedTest {
    pub suite: String,
    pub name: String,
    /// Its source file, relative to the app folder (`/`-separated), when the report names one
    /// that can be placed there.
    pub file: Option<String>,
    /// The line in `file`: the report's `line` attribute, else the first `FILE:LINE` of the
    /// failure's text (a stack trace).
    pub line: Option<u64>,
    /// The first line of the failure's message (or of its text when the message is empty).
    pub message: String,
    /// An `<error>` rather than a `<failure>`.
    pub errored: bool,
}

impl FailedTest {
    /// `suite › case`.
    pub fn title(&self) -> String {
        format!("{} › {}", self.suite, self.name)
    }

    fn to_json(&self, mask: &dyn Fn(&str) -> String) -> serde_json::Value {
        serde_json::json!({
            "suite": mask(&self.suite),
            "name": mask(&self.name),
            "file": self.file.as_deref().map(mask),
            "line": self.line,
            "message": mask(&self.message),
            "errored": self.errored,
        })
    }

    fn from_json(value: &serde_json::Value) -> Option<Self> {
        let text = |k: &str| value.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        Some(Self {
            suite: text("suite")?,
            name: text("name")?,
            file: text("file"),
            line: value.get("line").and_then(serde_json::Value::as_u64),
            message: text("message").unwrap_or_default(),
            errored: value
                .get("errored")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
        })
    }
}

/// The failed tests a test stage recorded, with the reports' totals (a failed stage has no
/// outputs to carry them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailedTests {
    pub tests: u64,
    pub failures: u64,
    pub errors: u64,
    pub skipped: u64,
    pub cases: Vec<FailedTest>,
}

/// Writes [`FAILED_TESTS_FILE`] into `stage_dir`, every text passed through `mask` (the run
/// folder only holds masked text).
pub fn write_failed_tests(
    stage_dir: &Path,
    totals: &JunitTotals,
    mask: &dyn Fn(&str) -> String,
) -> Result<(), TestError> {
    let doc = serde_json::json!({
        "tests": totals.tests,
        "failures": totals.failures,
        "errors": totals.errors,
        "skipped": totals.skipped,
        "cases": totals.failed.iter().map(|f| f.to_json(mask)).collect::<Vec<_>>(),
    });
    let path = stage_dir.join(FAILED_TESTS_FILE);
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    std::fs::write(&path, text).map_err(|source| TestError::Io {
        what: "write failed tests",
        path,
        source,
    })
}

/// Reads what [`write_failed_tests`] wrote; `None` when the stage wrote nothing readable.
pub fn read_failed_tests(stage_dir: &Path) -> Option<FailedTests> {
    let text = std::fs::read_to_string(stage_dir.join(FAILED_TESTS_FILE)).ok()?;
    let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
    let count = |k: &str| doc.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    Some(FailedTests {
        tests: count("tests"),
        failures: count("failures"),
        errors: count("errors"),
        skipped: count("skipped"),
        cases: doc
            .get("cases")
            .and_then(serde_json::Value::as_array)
            .map(|cases| cases.iter().filter_map(FailedTest::from_json).collect())
            .unwrap_or_default(),
    })
}

/// What a test stage found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestReport {
    pub steps: Vec<StepResult>,
    pub junit: Option<JunitTotals>,
}

impl TestReport {
    /// Every step succeeded and no report has a failure or an error.
    pub fn passed(&self) -> bool {
        self.steps.iter().all(StepResult::success)
            && self
                .junit
                .as_ref()
                .is_none_or(|j| j.failures == 0 && j.errors == 0)
    }

    /// The stage's outputs.
    pub fn outputs(&self) -> Outputs {
        let mut o = Outputs::new();
        o.insert("passed".into(), self.passed().to_string());
        o.insert("steps".into(), self.steps.len().to_string());
        if let Some(j) = &self.junit {
            o.insert("tests".into(), j.tests.to_string());
            o.insert("failures".into(), j.failures.to_string());
            o.insert("errors".into(), j.errors.to_string());
            o.insert("skipped".into(), j.skipped.to_string());
        }
        o
    }

    /// One line for the summary.
    pub fn summary(&self) -> String {
        let ok = self.steps.iter().filter(|s| s.success()).count();
        let mut s = format!("{ok}/{} steps passed", self.steps.len());
        if let Some(j) = &self.junit {
            s.push_str(&format!(
                "; tests: {} run, {} failed, {} errors, {} skipped ({} report{})",
                j.tests,
                j.failures,
                j.errors,
                j.skipped,
                j.files,
                if j.files == 1 { "" } else { "s" }
            ));
        }
        s
    }
}

/// The cache key: SHA-256 over the names and contents of the key files (a missing file counts
/// as missing, so creating it changes the key). Hex, 64 characters.
pub fn cache_key(app_dir: &Path, key_files: &[String]) -> Result<String, TestError> {
    let mut h = Sha256::new();
    for name in key_files {
        h.update(name.as_bytes());
        h.update([0]);
        let path = app_dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => {
                h.update((bytes.len() as u64).to_le_bytes());
                h.update(&bytes);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => h.update(b"<missing>"),
            Err(source) => {
                return Err(TestError::Io {
                    what: "read cache key file",
                    path,
                    source,
                });
            }
        }
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The named volume of one cache folder of one app for one key.
pub fn cache_volume_name(app_dir: &Path, cache_path: &str, key: &str) -> String {
    let mut h = Sha256::new();
    h.update(app_dir.to_string_lossy().as_bytes());
    h.update([0]);
    h.update(cache_path.as_bytes());
    let id = hex(&h.finalize());
    format!("uplift-cache-{}-{}", &id[..12], &key[..key.len().min(16)])
}

fn check_cache_path(p: &str) -> Result<(), TestError> {
    let path = Path::new(p);
    if p.is_empty()
        || path.is_absolute()
        || path
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(TestError::Settings(format!(
            "cache path {p:?} must be a relative path inside the app"
        )));
    }
    Ok(())
}

/// Parses every JUnit XML file under `app_dir` matching `glob`. `None` when no file matches.
/// `container_workdir` is where the app was mounted when the tests ran in a container: absolute
/// source paths under it are placed in the app.
pub fn collect_junit(
    app_dir: &Path,
    glob: &str,
    container_workdir: Option<&str>,
) -> Result<Option<JunitTotals>, TestError> {
    let matcher = globset::GlobBuilder::new(glob)
        .literal_separator(true)
        .build()
        .map_err(|e| TestError::Settings(format!("reports glob {glob:?}: {e}")))?
        .compile_matcher();
    let mut totals = JunitTotals::default();
    let walker = walkdir::WalkDir::new(app_dir)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.file_name() != "node_modules" && e.file_name() != ".git");
    for entry in walker.filter_map(Result::ok) {
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(app_dir) else {
            continue;
        };
        if !matcher.is_match(rel) {
            continue;
        }
        let file = std::fs::File::open(entry.path()).map_err(|source| TestError::Io {
            what: "open JUnit report",
            path: entry.path().into(),
            source,
        })?;
        let suites = junit_parser::from_reader(std::io::BufReader::new(file)).map_err(|e| {
            TestError::Report {
                path: entry.path().into(),
                message: e.to_string(),
            }
        })?;
        totals.files += 1;
        let places = SourcePlaces {
            app_dir,
            report_dir: entry.path().parent().unwrap_or(app_dir),
            container_workdir,
        };
        add_suites(&mut totals, &suites.suites, None, &places);
    }
    Ok((totals.files > 0).then_some(totals))
}

/// What places a report's source paths in the app.
struct SourcePlaces<'a> {
    app_dir: &'a Path,
    report_dir: &'a Path,
    container_workdir: Option<&'a str>,
}

impl SourcePlaces<'_> {
    /// `file` relative to the app: an absolute path under the app (or its container mount); a
    /// relative one from the report's folder or one of its parents up to the app where the file
    /// exists (test runners write them relative to their own root), else from the app. `None`
    /// for a path that leaves the app.
    fn place(&self, file: &str) -> Option<String> {
        let path = Path::new(file);
        let rel: PathBuf = if path.is_absolute() {
            let app = std::fs::canonicalize(self.app_dir).unwrap_or_else(|_| self.app_dir.into());
            let in_container = self
                .container_workdir
                .map(|w| w.trim_end_matches('/'))
                .filter(|w| !w.is_empty())
                .and_then(|w| path.strip_prefix(w).ok());
            path.strip_prefix(&app)
                .or_else(|_| path.strip_prefix(self.app_dir))
                .ok()
                .or(in_container)?
                .to_path_buf()
        } else {
            let mut found = None;
            for dir in self.report_dir.ancestors() {
                if !dir.starts_with(self.app_dir) {
                    break;
                }
                if dir.join(path).is_file() {
                    found = dir.strip_prefix(self.app_dir).ok().map(|d| d.join(path));
                    break;
                }
            }
            found.unwrap_or_else(|| path.to_path_buf())
        };
        let mut parts = Vec::new();
        for component in rel.components() {
            match component {
                std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir if parts.pop().is_some() => {}
                _ => return None,
            }
        }
        (!parts.is_empty()).then(|| parts.join("/"))
    }
}

/// The first non-empty line of `text`, trimmed, at most 1,000 characters.
fn first_line(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(line.chars().take(1000).collect())
}

/// The line of the first `NAME:LINE` in `text`, where NAME is `file`'s last component (stack
/// traces name the file with their own prefix: absolute, `webpack://`, relative...).
fn line_in_trace(text: &str, file: &str) -> Option<u64> {
    let name = file.rsplit('/').next().filter(|n| !n.is_empty())?;
    let needle = format!("{name}:");
    let mut rest = text;
    while let Some(at) = rest.find(&needle) {
        let after = &rest[at + needle.len()..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        // The name must start there (`/app.test.ts:` and not `xapp.test.ts:`).
        let starts = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '.'));
        if starts && let Ok(line) = digits.parse::<u64>() {
            return (line > 0).then_some(line);
        }
        rest = &rest[at + needle.len()..];
    }
    None
}

fn add_suites(
    totals: &mut JunitTotals,
    suites: &[junit_parser::TestSuite],
    parent_file: Option<&str>,
    places: &SourcePlaces<'_>,
) {
    for suite in suites {
        let suite_file = suite.file.as_deref().or(parent_file);
        for case in &suite.cases {
            totals.tests += 1;
            let (message, text, errored) = match &case.status {
                junit_parser::TestStatus::Success => continue,
                junit_parser::TestStatus::Skipped(_) => {
                    totals.skipped += 1;
                    continue;
                }
                junit_parser::TestStatus::Failure(f) => {
                    totals.failures += 1;
                    (&f.message, &f.text, false)
                }
                junit_parser::TestStatus::Error(e) => {
                    totals.errors += 1;
                    (&e.message, &e.text, true)
                }
            };
            if totals.failed.len() >= FAILED_TESTS_KEPT {
                continue;
            }
            let file = case
                .file
                .as_deref()
                .or(suite_file)
                .and_then(|f| places.place(f));
            let line = case.line.filter(|l| *l > 0).or_else(|| {
                let file = file.as_deref()?;
                line_in_trace(text, file).or_else(|| line_in_trace(message, file))
            });
            totals.failed.push(FailedTest {
                suite: suite.name.clone(),
                name: case.name.clone(),
                file,
                line,
                message: first_line(message)
                    .or_else(|| first_line(text))
                    .unwrap_or_else(|| String::from(if errored { "errored" } else { "failed" })),
                errored,
            });
        }
        add_suites(totals, &suite.suites, suite_file, places);
    }
}

/// Splits streamed bytes into lines, per stream.
#[derive(Default)]
struct Lines {
    out: Vec<u8>,
    err: Vec<u8>,
}

impl Lines {
    fn push(&mut self, stream: OutputStream, bytes: &[u8], emit: &mut dyn FnMut(Stream, &str)) {
        let (buf, s) = match stream {
            OutputStream::Stdout => (&mut self.out, Stream::Stdout),
            OutputStream::Stderr => (&mut self.err, Stream::Stderr),
        };
        buf.extend_from_slice(bytes);
        while let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            emit(s, text.trim_end_matches('\r'));
        }
    }

    fn flush(&mut self, emit: &mut dyn FnMut(Stream, &str)) {
        for (buf, s) in [
            (&mut self.out, Stream::Stdout),
            (&mut self.err, Stream::Stderr),
        ] {
            if !buf.is_empty() {
                emit(s, &String::from_utf8_lossy(buf));
                buf.clear();
            }
        }
    }
}

fn step_name(step: &TestStep) -> String {
    step.name.clone().unwrap_or_else(|| {
        step.run
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_owned()
    })
}

fn step_timeout(step: &TestStep) -> Result<Option<Duration>, TestError> {
    step.timeout
        .as_deref()
        .map(|t| {
            humantime::parse_duration(t)
                .map_err(|e| TestError::Settings(format!("step timeout {t:?}: {e}")))
        })
        .transpose()
}

/// Where a step in a container finds the stage's output file (`$UPLIFT_OUTPUT`).
pub const CONTAINER_OUTPUT_PATH: &str = "/uplift/output";

/// Runs the steps of a `runner: container` stage in order, stopping at the first failure.
/// `emit` receives every output line (and the stage's own messages, on stderr). When
/// `output_file` is given it is bind-mounted at [`CONTAINER_OUTPUT_PATH`] and `UPLIFT_OUTPUT`
/// points there, so steps write outputs as they do on the host.
#[allow(clippy::too_many_arguments)]
pub async fn run_container_steps(
    guard: &ResourceGuard,
    stage_id: &str,
    with: &TestWith,
    app_dir: &Path,
    env: &BTreeMap<String, String>,
    output_file: Option<&Path>,
    cancel: &CancellationToken,
    emit: &mut (dyn FnMut(Stream, &str) + Send),
) -> Result<Vec<StepResult>, TestError> {
    let image = with
        .image
        .clone()
        .ok_or_else(|| TestError::Settings("`runner: container` needs an `image`".into()))?;
    let app_dir = std::fs::canonicalize(app_dir).map_err(|source| TestError::Io {
        what: "find the app folder",
        path: app_dir.into(),
        source,
    })?;
    let workdir = with.workdir.trim_end_matches('/').to_owned();
    let mut binds = vec![Bind {
        host: app_dir.clone(),
        container: workdir.clone(),
        read_only: false,
    }];
    let mut step_env: BTreeMap<String, String> = env
        .iter()
        .chain(&with.env)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    step_env.insert("UPLIFT_STAGE".into(), stage_id.into());
    if let Some(file) = output_file {
        // The file itself, not its folder: the stage's log stays out of the container. The
        // executor empties it in place and masks it in place, so the mounted inode stays the
        // stage's output file.
        let host = std::fs::canonicalize(file).map_err(|source| TestError::Io {
            what: "find the stage's output file",
            path: file.into(),
            source,
        })?;
        binds.push(Bind {
            host,
            container: CONTAINER_OUTPUT_PATH.into(),
            read_only: false,
        });
        step_env.insert("UPLIFT_OUTPUT".into(), CONTAINER_OUTPUT_PATH.into());
    }
    let name_prefix = format!("{}-{}", guard.run_id(), stage_id);
    let mut volumes = Vec::new();
    if !with.cache.is_empty() {
        let key = cache_key(&app_dir, &with.key)?;
        for path in &with.cache {
            check_cache_path(path)?;
            let name = cache_volume_name(&app_dir, path, &key);
            ensure_volume(guard.engine(), &name, &key).await?;
            emit(Stream::Stderr, &format!("cache {path}: volume {name}"));
            volumes.push(VolumeMount {
                volume: name,
                container: format!("{workdir}/{path}"),
            });
        }
    }
    let mut results = Vec::new();
    for step in &with.steps {
        let name = step_name(step);
        let limits = RunLimits {
            timeout: step_timeout(step)?,
            cancel: cancel.clone(),
        };
        let spec = ContainerSpec {
            image: image.clone(),
            cmd: vec!["sh".into(), "-e".into(), "-c".into(), step.run.clone()],
            workdir: Some(workdir.clone()),
            env: step_env.clone(),
            binds: binds.clone(),
            volumes: volumes.clone(),
            name_prefix: Some(name_prefix.clone()),
            ..Default::default()
        };
        emit(Stream::Stderr, &format!("step {name} (in {image})"));
        let mut lines = Lines::default();
        let mut tail: Vec<String> = Vec::new();
        let mut record = |s: Stream, l: &str| {
            if tail.len() == 20 {
                tail.remove(0);
            }
            tail.push(l.to_owned());
            emit(s, l);
        };
        let outcome = run_container(guard, &spec, &limits, &mut |s, b| {
            lines.push(s, b, &mut record)
        })
        .await?;
        lines.flush(&mut record);
        let result = StepResult {
            name,
            exit_code: Some(outcome.exit_code),
            ended: outcome.ended,
            duration: outcome.duration,
            tail,
        };
        let stop = !result.success();
        results.push(result);
        if stop {
            break;
        }
    }
    Ok(results)
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), TestError> {
    for entry in walkdir::WalkDir::new(from).follow_links(false) {
        let entry = entry.map_err(|e| TestError::Io {
            what: "walk cache folder",
            path: from.into(),
            source: e.into(),
        })?;
        let Ok(rel) = entry.path().strip_prefix(from) else {
            continue;
        };
        let dest = to.join(rel);
        let io = |what, source| TestError::Io {
            what,
            path: dest.clone(),
            source,
        };
        let ft = entry.file_type();
        if ft.is_dir() {
            std::fs::create_dir_all(&dest).map_err(|e| io("create folder", e))?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(entry.path()).map_err(|e| io("read link", e))?;
            let _ = std::fs::remove_file(&dest);
            std::os::unix::fs::symlink(target, &dest).map_err(|e| io("create link", e))?;
        } else {
            std::fs::copy(entry.path(), &dest).map_err(|e| io("copy file", e))?;
        }
    }
    Ok(())
}

/// Host caches: restores each cache folder missing from the app from `<root>/<key>/<path>`.
/// Returns the folders restored.
pub fn restore_host_caches(
    root: &Path,
    key: &str,
    app_dir: &Path,
    paths: &[String],
) -> Result<Vec<String>, TestError> {
    let mut restored = Vec::new();
    for p in paths {
        check_cache_path(p)?;
        let saved = root.join(key).join(p);
        let dest = app_dir.join(p);
        if saved.is_dir() && !dest.exists() {
            copy_tree(&saved, &dest)?;
            restored.push(p.clone());
        }
    }
    Ok(restored)
}

/// Host caches: saves each cache folder of the app under `<root>/<key>/<path>` unless that key
/// already has it. Returns the folders saved.
pub fn save_host_caches(
    root: &Path,
    key: &str,
    app_dir: &Path,
    paths: &[String],
) -> Result<Vec<String>, TestError> {
    let mut saved = Vec::new();
    for p in paths {
        check_cache_path(p)?;
        let dest = root.join(key).join(p);
        let src = app_dir.join(p);
        if src.is_dir() && !dest.exists() {
            let tmp = root
                .join(key)
                .join(format!(".{}.partial", p.replace('/', "_")));
            let _ = std::fs::remove_dir_all(&tmp);
            copy_tree(&src, &tmp)?;
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(|source| TestError::Io {
                    what: "create cache folder",
                    path: parent.into(),
                    source,
                })?;
            }
            std::fs::rename(&tmp, &dest).map_err(|source| TestError::Io {
                what: "store cache folder",
                path: dest.clone(),
                source,
            })?;
            saved.push(p.clone());
        }
    }
    Ok(saved)
}

fn settings(stage: &ResolvedStage) -> Result<TestWith, StageError> {
    let with = parse_with::<TestWith>(&stage.with)
        .map_err(|e| StageError::Settings(format!("{}: {}", e.path, e.message)))?;
    if with.steps.is_empty() {
        return Err(StageError::Settings("`steps` is empty".into()));
    }
    if with.runner == TestRunner::Container && with.image.is_none() {
        return Err(StageError::Settings(
            "`runner: container` needs an `image`".into(),
        ));
    }
    for step in &with.steps {
        step_timeout(step)?;
    }
    for p in &with.cache {
        check_cache_path(p)?;
    }
    Ok(with)
}

fn finish(report: TestReport, ctx: &RunContext) -> Result<Outputs, StageError> {
    ctx.output.info(&report.summary());
    if let Some(j) = &report.junit {
        for f in &j.failed {
            let at = match (&f.file, f.line) {
                (Some(file), Some(line)) => format!(" ({file}:{line})"),
                (Some(file), None) => format!(" ({file})"),
                _ => String::new(),
            };
            ctx.output
                .info(&format!("failed: {}{at}: {}", f.title(), f.message));
        }
        let mask = |t: &str| ctx.masker.mask(t).into_owned();
        write_failed_tests(&ctx.stage_dir, j, &mask)?;
    }
    if report.passed() {
        return Ok(report.outputs());
    }
    if let Some(step) = report.steps.iter().find(|s| !s.success()) {
        if step.ended == Ended::Cancelled {
            return Err(StageError::Stopped);
        }
        return Err(StageError::Failed {
            message: format!("step `{}` {}", step.name, step.how()),
            tail: step.tail.clone(),
        });
    }
    let j = report.junit.unwrap_or_default();
    Err(StageError::Failed {
        message: format!(
            "the reports have {} failed and {} errored tests",
            j.failures, j.errors
        ),
        tail: j.failed.iter().take(20).map(FailedTest::title).collect(),
    })
}

impl Stage for TestStage {
    fn spec(&self) -> Arc<dyn StageSpec> {
        Arc::new(TEST_SPEC)
    }

    fn plan(&self, ctx: &PlanContext<'_>, stage: &ResolvedStage) -> Result<StagePlan, StageError> {
        let with = settings(stage)?;
        let app = ctx.work_dir.join(&with.app);
        let key = cache_key(&app, &with.key)?;
        let mut actions = Vec::new();
        let where_ = match (&with.runner, &with.image) {
            (TestRunner::Container, Some(image)) => {
                format!(
                    "in containers of {image}, the app mounted at {}",
                    with.workdir
                )
            }
            _ => format!("on the host in {}", app.display()),
        };
        for step in &with.steps {
            let timeout = step
                .timeout
                .as_deref()
                .map(|t| format!(" (timeout {t})"))
                .unwrap_or_default();
            actions.push(format!(
                "step {}: {}{timeout}",
                step_name(step),
                ctx.masker.mask(&step.run)
            ));
        }
        for p in &with.cache {
            let store = match with.runner {
                TestRunner::Container => format!("volume {}", cache_volume_name(&app, p, &key)),
                TestRunner::Host => format!(
                    "folder {}",
                    host_cache_root(ctx.work_dir, &with)
                        .join(&key)
                        .join(p)
                        .display()
                ),
            };
            actions.push(format!("cache {p} in {store}"));
        }
        if let Some(r) = &with.reports {
            actions.push(format!("read JUnit reports {r}"));
        }
        Ok(StagePlan {
            summary: format!("run {} test step(s) {where_}", with.steps.len()),
            actions,
            detail: serde_json::json!({
                "runner": match with.runner { TestRunner::Host => "host", TestRunner::Container => "container" },
                "image": with.image,
                "cache-key": key,
                "steps": with.steps.iter().map(step_name).collect::<Vec<_>>(),
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
            let app = ctx.work_dir.join(&with.app);
            if !app.is_dir() {
                return Err(StageError::Settings(format!(
                    "app folder {} is not a folder",
                    app.display()
                )));
            }
            // A retry's reports replace the previous attempt's, and a run without reports
            // leaves no failed-test list behind.
            let _ = std::fs::remove_file(ctx.stage_dir.join(FAILED_TESTS_FILE));
            let mut report = TestReport::default();
            match with.runner {
                TestRunner::Container => {
                    let engine = Engine::connect().await.map_err(TestError::from)?;
                    // The label carries the pipeline run's id (the name of the run folder), so
                    // everything a run created can be found again by it.
                    let run_id = ctx
                        .stage_dir
                        .parent()
                        .and_then(Path::file_name)
                        .map(|n| RunId::new(n.to_string_lossy()))
                        .unwrap_or_else(RunId::generate);
                    let guard = ResourceGuard::new(engine, run_id);
                    let sink = ctx.output.clone();
                    let mut emit = |s: Stream, l: &str| {
                        sink.line(s, l);
                    };
                    let result = run_container_steps(
                        &guard,
                        &ctx.stage_id,
                        &with,
                        &app,
                        // Only what the pipeline sets: the host's PATH, HOME... stay outside.
                        &stage.declared_env,
                        Some(&ctx.output_file),
                        &ctx.cancel,
                        &mut emit,
                    )
                    .await;
                    guard.cleanup().await;
                    report.steps = result?;
                }
                TestRunner::Host => {
                    let root = host_cache_root(&ctx.work_dir, &with);
                    let key = cache_key(&app, &with.key)?;
                    for p in restore_host_caches(&root, &key, &app, &with.cache)? {
                        ctx.output.info(&format!("cache {p}: restored"));
                    }
                    let mut env = stage.env.clone();
                    env.extend(with.env.clone());
                    for step in &with.steps {
                        let name = step_name(step);
                        ctx.output.info(&format!("step {name}"));
                        let started = std::time::Instant::now();
                        let spec = ProcessSpec {
                            program: "sh".into(),
                            args: vec!["-e".into(), "-c".into(), step.run.clone()],
                            cwd: app.clone(),
                            env: env.clone(),
                        };
                        // The spawner stops the step's whole process group at its time
                        // limit (SIGTERM, then SIGKILL after the grace period).
                        let exit = ctx
                            .spawner
                            .run_with_timeout(&spec, step_timeout(step)?)
                            .await?;
                        let ended = if exit.timed_out {
                            Ended::TimedOut
                        } else if exit.killed && ctx.cancel.is_cancelled() {
                            Ended::Cancelled
                        } else {
                            Ended::Exited
                        };
                        let result = StepResult {
                            name,
                            exit_code: exit.code.map(i64::from),
                            ended,
                            duration: started.elapsed(),
                            tail: exit.tail,
                        };
                        let stop = !result.success();
                        report.steps.push(result);
                        if stop {
                            break;
                        }
                    }
                    if report.steps.iter().all(StepResult::success) {
                        for p in save_host_caches(&root, &key, &app, &with.cache)? {
                            ctx.output.info(&format!("cache {p}: saved"));
                        }
                    }
                }
            }
            if let Some(glob) = &with.reports {
                let workdir =
                    (with.runner == TestRunner::Container).then_some(with.workdir.as_str());
                report.junit = collect_junit(&app, glob, workdir)?;
            }
            finish(report, &ctx)
        })
    }
}

pub use uplift_docker::RemovedResources;

/// The cleanup path of a crashed run: removes every container, volume and network labelled
/// with `run_id` (cache volumes are kept).
pub async fn cleanup_run(run_id: &str) -> Result<RemovedResources, uplift_docker::Error> {
    let engine = Engine::connect().await?;
    uplift_docker::remove_run_resources(&engine, &RunId::new(run_id)).await
}

fn host_cache_root(work_dir: &Path, with: &TestWith) -> PathBuf {
    match &with.cache_dir {
        Some(d) => work_dir.join(d),
        None => work_dir.join(".uplift").join("cache"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn cache_key_follows_the_key_files() {
        let d = tempfile::tempdir().unwrap();
        let keys = vec!["yarn.lock".to_owned()];
        let missing = cache_key(d.path(), &keys).unwrap();
        std::fs::write(d.path().join("yarn.lock"), "a@1").unwrap();
        let one = cache_key(d.path(), &keys).unwrap();
        assert_eq!(one, cache_key(d.path(), &keys).unwrap());
        std::fs::write(d.path().join("yarn.lock"), "a@2").unwrap();
        let two = cache_key(d.path(), &keys).unwrap();
        assert_eq!(one.len(), 64);
        assert!(missing != one && one != two && missing != two);
        let v = cache_volume_name(d.path(), "node_modules", &two);
        assert!(
            v.starts_with("uplift-cache-") && v.ends_with(&two[..16]),
            "{v}"
        );
        assert_ne!(v, cache_volume_name(d.path(), ".yarn/cache", &two));
    }

    #[test]
    fn cache_paths_stay_inside_the_app() {
        assert!(check_cache_path("node_modules").is_ok());
        assert!(check_cache_path(".yarn/cache").is_ok());
        for bad in ["", "/abs", "../up", "a/../b", "./x"] {
            assert!(check_cache_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn junit_reports_are_totalled() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("packages/app/reports")).unwrap();
        std::fs::write(
            d.path().join("packages/app/reports/junit.xml"),
            r#"<?xml version="1.0"?>
<testsuites>
  <testsuite name="app" tests="4">
    <testcase name="renders" classname="App"/>
    <testcase name="fails" classname="App"><failure message="boom">trace</failure></testcase>
    <testcase name="errs" classname="App"><error message="oops"/></testcase>
    <testcase name="later" classname="App"><skipped/></testcase>
  </testsuite>
</testsuites>"#,
        )
        .unwrap();
        std::fs::write(
            d.path().join("junit.xml"),
            r#"<testsuite name="root"><testcase name="ok"/></testsuite>"#,
        )
        .unwrap();
        let t = collect_junit(d.path(), "**/junit.xml", None)
            .unwrap()
            .unwrap();
        assert_eq!(
            (t.files, t.tests, t.failures, t.errors, t.skipped),
            (2, 5, 1, 1, 1)
        );
        let titles: Vec<String> = t.failed.iter().map(FailedTest::title).collect();
        assert_eq!(titles, vec!["app › App::fails", "app › App::errs"]);
        assert_eq!(t.failed[0].message, "boom");
        assert!(!t.failed[0].errored && t.failed[1].errored);
        assert_eq!(t.failed[1].message, "oops");
        assert!(
            collect_junit(d.path(), "nothing/*.xml", None)
                .unwrap()
                .is_none()
        );
        std::fs::write(d.path().join("bad.xml"), "<testsuite><testcase").unwrap();
        assert!(collect_junit(d.path(), "bad.xml", None).is_err());

        let report = TestReport {
            steps: vec![],
            junit: Some(t),
        };
        assert!(!report.passed());
        assert_eq!(report.outputs()["failures"], "1");
        assert_eq!(
            report.summary(),
            "0/0 steps passed; tests: 5 run, 1 failed, 1 errors, 1 skipped (2 reports)"
        );
    }

    #[test]
    fn failed_cases_keep_file_line_and_first_message_line() {
        let d = tempfile::tempdir().unwrap();
        let app = d.path();
        std::fs::create_dir_all(app.join("packages/app/src")).unwrap();
        std::fs::create_dir_all(app.join("packages/app/reports")).unwrap();
        std::fs::write(app.join("packages/app/src/App.test.tsx"), "").unwrap();
        // jest-junit: `file` relative to the package (the runner's root), no `line`; the
        // line comes from the stack trace. Others: absolute paths, in the app or in the
        // container's mount, and an explicit `line`.
        std::fs::write(
            app.join("packages/app/reports/junit.xml"),
            r#"<testsuites>
  <testsuite name="App" file="src/App.test.tsx">
    <testcase name="renders" file="src/App.test.tsx"><failure message="">Error: expect(received).toBe(expected)

      at Object.&lt;anonymous&gt; (/work/packages/app/src/App.test.tsx:17:22)
      at other.test.tsx:99:1</failure></testcase>
    <testcase name="inherits the suite file"><failure message="first&#10;second">at xApp.test.tsx:5:1 then App.test.tsx:8:3</failure></testcase>
  </testsuite>
  <testsuite name="abs">
    <testcase name="in container" file="/work/lib/a.rs" line="3"><error message="panicked"/></testcase>
    <testcase name="outside" file="/etc/passwd" line="1"><failure message="x"/></testcase>
    <testcase name="leaves" file="../../../up.rs" line="2"><failure/></testcase>
  </testsuite>
</testsuites>"#,
        )
        .unwrap();
        let t = collect_junit(app, "**/junit.xml", Some("/work/"))
            .unwrap()
            .unwrap();
        let case = |suite: &str, name: &str, file: Option<&str>, line, message: &str, errored| {
            FailedTest {
                suite: suite.into(),
                name: name.into(),
                file: file.map(str::to_owned),
                line,
                message: message.into(),
                errored,
            }
        };
        let file = Some("packages/app/src/App.test.tsx");
        let expected = vec![
            case(
                "App",
                "renders",
                file,
                Some(17),
                "Error: expect(received).toBe(expected)",
                false,
            ),
            case(
                "App",
                "inherits the suite file",
                file,
                Some(8),
                "first",
                false,
            ),
            case(
                "abs",
                "in container",
                Some("lib/a.rs"),
                Some(3),
                "panicked",
                true,
            ),
            case("abs", "outside", None, Some(1), "x", false),
            case("abs", "leaves", None, Some(2), "failed", false),
        ];
        assert_eq!(t.failed, expected);
        assert_eq!(t.failed[0].title(), "App › renders");

        // Written masked, read back whole.
        let mask = |t: &str| t.replace("panicked", "***");
        write_failed_tests(app, &t, &mask).unwrap();
        let read = read_failed_tests(app).unwrap();
        assert_eq!(
            (read.tests, read.failures, read.errors, read.skipped),
            (5, 4, 1, 0)
        );
        assert_eq!(read.cases.len(), 5);
        assert_eq!(read.cases[2].message, "***");
        assert_eq!(read.cases[0], t.failed[0]);
        assert!(read_failed_tests(&app.join("nowhere")).is_none());
    }

    #[test]
    fn only_the_first_failed_cases_are_kept_but_all_are_counted() {
        let d = tempfile::tempdir().unwrap();
        let cases: String = (0..FAILED_TESTS_KEPT + 5)
            .map(|i| format!(r#"<testcase name="c{i}"><failure message="m"/></testcase>"#))
            .collect();
        std::fs::write(
            d.path().join("junit.xml"),
            format!(r#"<testsuite name="s">{cases}</testsuite>"#),
        )
        .unwrap();
        let t = collect_junit(d.path(), "junit.xml", None).unwrap().unwrap();
        assert_eq!(t.failures as usize, FAILED_TESTS_KEPT + 5);
        assert_eq!(t.failed.len(), FAILED_TESTS_KEPT);
    }

    #[test]
    fn lines_are_split_across_chunks() {
        let mut lines = Lines::default();
        let mut got = Vec::new();
        let mut emit = |s: Stream, l: &str| got.push((s, l.to_owned()));
        lines.push(OutputStream::Stdout, b"hel", &mut emit);
        lines.push(OutputStream::Stderr, b"err\n", &mut emit);
        lines.push(OutputStream::Stdout, b"lo\nwor", &mut emit);
        lines.flush(&mut emit);
        assert_eq!(
            got,
            vec![
                (Stream::Stderr, "err".to_owned()),
                (Stream::Stdout, "hello".to_owned()),
                (Stream::Stdout, "wor".to_owned()),
            ]
        );
    }

    #[test]
    fn host_caches_are_saved_then_restored() {
        let root = tempfile::tempdir().unwrap();
        let app = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(app.path().join("node_modules/x")).unwrap();
        std::fs::write(app.path().join("node_modules/x/index.js"), "1").unwrap();
        let paths = vec!["node_modules".to_owned()];
        assert_eq!(
            save_host_caches(root.path(), "k1", app.path(), &paths).unwrap(),
            paths
        );
        // Saved once per key.
        assert!(
            save_host_caches(root.path(), "k1", app.path(), &paths)
                .unwrap()
                .is_empty()
        );
        std::fs::remove_dir_all(app.path().join("node_modules")).unwrap();
        assert_eq!(
            restore_host_caches(root.path(), "k1", app.path(), &paths).unwrap(),
            paths
        );
        assert_eq!(
            std::fs::read_to_string(app.path().join("node_modules/x/index.js")).unwrap(),
            "1"
        );
        // Another key has nothing.
        std::fs::remove_dir_all(app.path().join("node_modules")).unwrap();
        assert!(
            restore_host_caches(root.path(), "k2", app.path(), &paths)
                .unwrap()
                .is_empty()
        );
    }
}
