//! Parsing and checking a pipeline file: every problem at once, each with its position.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde_yaml::Value as Yaml;

use crate::diag::{Diagnostics, Problem};
use crate::expr::{Expr, Reference, Template};
use crate::model::{MarkerSpec, Needs, RetriesSpec, Scalar, StageFile, TemplateSpec, Upstream};
use crate::span::{NodeSpan, Pos, SpanIndex, YamlPath};
use crate::with::Catalog;
use crate::{Pipeline, Retries, Stage};

/// Largest pipeline file accepted.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// The keys of a stage, as written.
const STAGE_KEYS: &[&str] = &[
    "uses",
    "with",
    "needs",
    "if",
    "env",
    "timeout",
    "retries",
    "continue-on-error",
    "outputs",
    "description",
];

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "env",
    "upstream",
    "stages",
    "finally",
];

/// Parses and checks a pipeline file's text. `file` is the name shown in diagnostics.
pub fn parse(file: &str, text: &str, catalog: &Catalog) -> Result<Pipeline, Diagnostics> {
    // A byte-order mark is how some editors start a UTF-8 file, not content (YAML 1.2 allows it
    // only there); left in, the parser sees a second document.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut checker = Checker {
        text,
        spans: SpanIndex::default(),
        lines: LineIndex::new(text),
        problems: Vec::new(),
        catalog,
    };
    let pipeline = checker.run(file);
    if checker.problems.is_empty()
        && let Some(pipeline) = pipeline
    {
        return Ok(pipeline);
    }
    let mut problems = checker.problems;
    problems.sort_by_key(|p| (p.line, p.column));
    problems.dedup();
    Err(Diagnostics {
        file: file.to_owned(),
        source: text.to_owned(),
        problems,
    })
}

/// The diagnostics of a file over [`MAX_FILE_BYTES`] (its text is not kept).
pub(crate) fn too_large(file: &str) -> Diagnostics {
    Diagnostics {
        file: file.to_owned(),
        source: String::new(),
        problems: vec![too_large_problem()],
    }
}

fn too_large_problem() -> Problem {
    let pos = Pos {
        line: 1,
        col: 1,
        offset: 0,
        len: 0,
    };
    Problem::at(
        pos,
        format!("file is larger than {MAX_FILE_BYTES} bytes"),
        "here",
    )
}

/// Deepest nesting of `[`/`{` let through to the YAML parser (whose scanner slows down
/// quadratically with flow depth; serde_yaml itself stops at 128 levels).
const MAX_FLOW_DEPTH: usize = 1000;

/// The offset where `[`/`{` nesting passes [`MAX_FLOW_DEPTH`], counting brackets outside
/// comments (a generous over-estimate: brackets inside strings count too).
fn too_deep(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_comment = false;
    for (offset, c) in text.char_indices() {
        match c {
            '\n' => in_comment = false,
            '#' => in_comment = true,
            '[' | '{' if !in_comment => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Some(offset);
                }
            }
            ']' | '}' if !in_comment => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Byte offset → line and column.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { starts }
    }

    fn pos(&self, text: &str, offset: usize, len: usize) -> Pos {
        let offset = offset.min(text.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let col = text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(0)
            + 1;
        Pos {
            line,
            col,
            offset,
            len,
        }
    }

    fn offset_of(&self, text: &str, line: usize, col: usize) -> usize {
        let start = self
            .starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(text.len());
        let rest = text.get(start..).unwrap_or("");
        start
            + rest
                .char_indices()
                .nth(col.saturating_sub(1))
                .map(|(b, _)| b)
                .unwrap_or(0)
    }
}

struct Checker<'a> {
    text: &'a str,
    spans: SpanIndex,
    lines: LineIndex,
    problems: Vec<Problem>,
    catalog: &'a Catalog,
}

/// Which section a stage is in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Main,
    Finally,
}

impl Section {
    fn key(self) -> &'static str {
        match self {
            Section::Main => "stages",
            Section::Finally => "finally",
        }
    }
}

impl<'a> Checker<'a> {
    fn problem(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    fn at_value(&self, path: &YamlPath) -> Pos {
        self.spans.value_or_ancestor(path)
    }

    fn at_key(&self, path: &YamlPath) -> Pos {
        self.spans.key_or_value(path)
    }

    /// Deserializes `value` (at `path`) into `T`, recording the problem on failure.
    fn typed<T: DeserializeOwned>(&mut self, value: &Yaml, path: &YamlPath) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(v) => Some(v),
            Err(error) => {
                let at = path.join_serde(error.path());
                let message = error.inner().to_string();
                let unknown = message.starts_with("unknown field");
                let pos = if unknown {
                    self.at_key(&at)
                } else {
                    self.at_value(&at)
                };
                let label = if unknown { "unknown key" } else { "here" };
                let help = crate::suggest::for_unknown_field(&message);
                let message = if at.0.is_empty() {
                    message
                } else {
                    format!("{at}: {message}")
                };
                let mut problem = Problem::at(pos, message, label);
                if let Some(help) = help {
                    problem = problem.with_help(help);
                }
                self.problem(problem);
                None
            }
        }
    }

    fn run(&mut self, file: &str) -> Option<Pipeline> {
        if self.text.len() > MAX_FILE_BYTES {
            self.problem(too_large_problem());
            return None;
        }
        if let Some(offset) = too_deep(self.text) {
            let pos = self.lines.pos(self.text, offset, 1);
            self.problem(Problem::at(
                pos,
                format!("collections nested deeper than {MAX_FLOW_DEPTH}"),
                "too deep",
            ));
            return None;
        }
        let root: Yaml = match serde_yaml::from_str(self.text) {
            Ok(v) => v,
            Err(error) => {
                let pos = match error.location() {
                    Some(loc) => {
                        let offset = self.lines.offset_of(self.text, loc.line(), loc.column());
                        self.lines.pos(self.text, offset, 1)
                    }
                    None => Pos {
                        line: 1,
                        col: 1,
                        offset: 0,
                        len: 0,
                    },
                };
                let message = error.to_string();
                let message = match message.find(" at line ") {
                    Some(i) => message[..i].to_owned(),
                    None => message,
                };
                self.problem(Problem::at(pos, format!("invalid YAML: {message}"), "here"));
                return None;
            }
        };
        self.spans = SpanIndex::build(self.text);
        let root_path = YamlPath::root();
        let map = match &root {
            Yaml::Mapping(map) => map.clone(),
            Yaml::Null => {
                let pos = Pos {
                    line: 1,
                    col: 1,
                    offset: 0,
                    len: 0,
                };
                self.problem(
                    Problem::at(pos, "the pipeline file is empty", "here").with_help(
                        "a pipeline needs at least `stages:` (see pipelines/schema.json)",
                    ),
                );
                return None;
            }
            _ => {
                let pos = self.at_value(&root_path);
                self.problem(Problem::at(
                    pos,
                    "a pipeline file must be a mapping",
                    "not a mapping",
                ));
                return None;
            }
        };

        let default_name = std::path::Path::new(file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| String::from("pipeline"));
        let mut name = default_name;
        let mut description = None;
        let mut env = IndexMap::new();
        let mut upstream = None;
        let mut raw_main: IndexMap<String, (Yaml, YamlPath)> = IndexMap::new();
        let mut raw_finally: IndexMap<String, (Yaml, YamlPath)> = IndexMap::new();

        for (key, value) in &map {
            let Some(key) = key.as_str() else {
                let pos = self.at_value(&root_path);
                self.problem(Problem::at(pos, "top-level keys must be strings", "here"));
                continue;
            };
            let path = root_path.key(key);
            match key {
                "name" => {
                    if let Some(v) = self.typed::<String>(value, &path) {
                        name = v;
                    }
                }
                "description" => description = self.typed::<Option<String>>(value, &path).flatten(),
                "env" => {
                    if let Some(v) = self.typed::<IndexMap<String, Scalar>>(value, &path) {
                        env = v;
                    }
                }
                "upstream" => {
                    upstream = self.typed::<Option<Upstream>>(value, &path).flatten();
                    if let Some(up) = &upstream {
                        self.check_upstream(up, &path);
                    }
                }
                "stages" | "finally" => {
                    let target = if key == "stages" {
                        &mut raw_main
                    } else {
                        &mut raw_finally
                    };
                    match value {
                        Yaml::Mapping(stages) => {
                            for (id, stage) in stages {
                                match id.as_str() {
                                    Some(id) => {
                                        target.insert(id.to_owned(), (stage.clone(), path.key(id)));
                                    }
                                    None => {
                                        let pos = self.at_value(&path);
                                        self.problems.push(Problem::at(
                                            pos,
                                            "stage ids must be strings",
                                            "here",
                                        ));
                                    }
                                }
                            }
                        }
                        Yaml::Null => {}
                        _ => {
                            let pos = self.at_value(&path);
                            self.problem(Problem::at(
                                pos,
                                format!("`{key}` must be a mapping of stage id to stage"),
                                "not a mapping",
                            ));
                        }
                    }
                }
                other => {
                    let pos = self.at_key(&path);
                    let help = crate::suggest::did_you_mean(other, TOP_KEYS.iter().copied())
                        .unwrap_or_else(|| format!("expected one of: {}", TOP_KEYS.join(", ")));
                    self.problem(
                        Problem::at(pos, format!("unknown key `{other}`"), "unknown key")
                            .with_help(help),
                    );
                }
            }
        }

        if raw_main.is_empty() {
            let pos = self.at_key(&root_path.key("stages"));
            self.problem(Problem::at(pos, "the pipeline has no stages", "here"));
        }

        let mut main = IndexMap::new();
        for (id, (value, path)) in &raw_main {
            if let Some(stage) = self.stage(id, value, path, Section::Main) {
                main.insert(id.clone(), stage);
            }
        }
        let mut finally = IndexMap::new();
        for (id, (value, path)) in &raw_finally {
            if raw_main.contains_key(id) {
                let pos = self.at_key(path);
                self.problem(Problem::at(
                    pos,
                    format!("stage id `{id}` is used in both `stages` and `finally`"),
                    "duplicate id",
                ));
            }
            if let Some(stage) = self.stage(id, value, path, Section::Finally) {
                finally.insert(id.clone(), stage);
            }
        }

        // Graph checks, once every stage is known (including those whose settings failed).
        let main_ids: HashSet<&str> = raw_main.keys().map(String::as_str).collect();
        let finally_ids: HashSet<&str> = raw_finally.keys().map(String::as_str).collect();
        self.check_needs(
            &main,
            &main_ids,
            &HashSet::new(),
            &finally_ids,
            Section::Main,
        );
        self.check_needs(
            &finally,
            &finally_ids,
            &main_ids,
            &finally_ids,
            Section::Finally,
        );
        self.check_cycles(&main, Section::Main);
        self.check_cycles(&finally, Section::Finally);
        let pipeline = Pipeline {
            name,
            description,
            file: file.to_owned(),
            env: env.iter().map(|(k, v)| (k.clone(), v.as_text())).collect(),
            upstream,
            stages: main,
            finally,
        };
        self.check_env(&pipeline.env, &root_path.key("env"));
        self.check_references(&pipeline);
        Some(pipeline)
    }

    fn check_upstream(&mut self, up: &Upstream, path: &YamlPath) {
        let known = ["git:", "dir:", "npm:"];
        if up.source.is_empty() {
            if up.preset.is_none() {
                let pos = self.at_key(path);
                self.problem(
                    Problem::at(pos, "`upstream` needs a `source` or a `preset`", "here")
                        .with_help("e.g. `source: git:https://github.com/backstage/backstage` or `preset: backstage`"),
                );
            }
        } else if !known.iter().any(|p| up.source.starts_with(p)) {
            let pos = self.at_value(&path.key("source"));
            self.problem(
                Problem::at(
                    pos,
                    format!("unknown release source `{}`", up.source),
                    "here",
                )
                .with_help("expected `git:PATH_OR_URL`, `dir:PATH` or `npm:PACKAGE`"),
            );
        }
        if let Some(TemplateSpec::PerRelease(list)) = &up.template {
            for (i, entry) in list.iter().enumerate() {
                let ok = match entry.split_once('=') {
                    Some((v, d)) => {
                        semver::Version::parse(v.trim()).is_ok() && !d.trim().is_empty()
                    }
                    None => !entry.trim().is_empty(),
                };
                if !ok {
                    let pos = self.at_value(&path.key("template").index(i));
                    self.problem(
                        Problem::at(
                            pos,
                            format!("template entry `{entry}` is not `SUBDIR` or `VERSION=SUBDIR`"),
                            "here",
                        )
                        .with_help("e.g. `1.30.0=packages/create-app/templates/default-app` (from release 1.30.0 on)"),
                    );
                }
            }
        }
        if let Some(MarkerSpec { file, field }) = &up.marker
            && (file.trim().is_empty() || field.trim().is_empty())
        {
            let pos = self.at_value(&path.key("marker"));
            self.problem(Problem::at(
                pos,
                "marker needs a `file` and a `field`",
                "here",
            ));
        }
    }

    fn stage(
        &mut self,
        id: &str,
        value: &Yaml,
        path: &YamlPath,
        section: Section,
    ) -> Option<Stage> {
        let valid_id = id
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid_id {
            let pos = self.at_key(path);
            self.problem(
                Problem::at(pos, format!("invalid stage id `{id}`"), "here").with_help(
                    "ids start with a letter or `_` and hold letters, digits, `_` and `-`",
                ),
            );
        }
        let file: StageFile = match value {
            Yaml::Mapping(map) => self.stage_fields(id, map, path)?,
            _ => self.typed(value, path)?,
        };
        let with = file.with.clone().unwrap_or(Yaml::Null);
        match self.catalog.get(&file.uses) {
            // A missing or mistyped `uses` is reported already.
            None if file.uses.is_empty() => {}
            None => {
                let pos = self.at_value(&path.key("uses"));
                let names = self.catalog.names();
                let help = crate::suggest::did_you_mean(&file.uses, names.iter().copied())
                    .unwrap_or_else(|| format!("expected one of: {}", names.join(", ")));
                self.problem(
                    Problem::at(
                        pos,
                        format!("unknown stage type `{}`", file.uses),
                        "unknown stage type",
                    )
                    .with_help(help),
                );
            }
            Some(spec) => {
                if let Err(error) = spec.check_with(&with)
                    && !is_deferred(&with, &error)
                {
                    let mut at = path.key("with");
                    at.0.extend(error.path.0.iter().cloned());
                    let pos = if error.at_key {
                        self.at_key(&at)
                    } else {
                        self.at_value(&at)
                    };
                    let shown = if error.path.0.is_empty() {
                        format!("`with` of stage `{id}` ({}): {}", file.uses, error.message)
                    } else {
                        format!(
                            "`with.{}` of stage `{id}` ({}): {}",
                            error.path, file.uses, error.message
                        )
                    };
                    let mut problem = Problem::at(
                        pos,
                        shown,
                        if error.at_key { "unknown key" } else { "here" },
                    );
                    if let Some(help) = crate::suggest::for_unknown_field(&error.message) {
                        problem = problem.with_help(help);
                    }
                    self.problem(problem);
                }
            }
        }
        let timeout = match &file.timeout {
            None => None,
            Some(text) => match humantime::parse_duration(text) {
                Ok(d) if !d.is_zero() => Some(d),
                Ok(_) | Err(_) => {
                    let pos = self.at_value(&path.key("timeout"));
                    self.problem(
                        Problem::at(pos, format!("invalid timeout `{text}`"), "not a duration")
                            .with_help(
                                "write a positive duration such as `30s`, `10m` or `1h 30m`",
                            ),
                    );
                    None
                }
            },
        };
        let retries = match &file.retries {
            None => Retries::default(),
            Some(RetriesSpec::Count(count)) => Retries {
                count: *count,
                ..Retries::default()
            },
            Some(RetriesSpec::Detailed(d)) => {
                let mut retries = Retries {
                    count: d.count,
                    ..Retries::default()
                };
                for (key, text, slot) in [
                    ("backoff", &d.backoff, &mut retries.backoff),
                    ("max-backoff", &d.max_backoff, &mut retries.max_backoff),
                ] {
                    if let Some(text) = text {
                        match humantime::parse_duration(text) {
                            Ok(v) => *slot = v,
                            Err(_) => {
                                let pos = self.at_value(&path.key("retries").key(key));
                                self.problem(Problem::at(
                                    pos,
                                    format!("invalid duration `{text}`"),
                                    "not a duration",
                                ));
                            }
                        }
                    }
                }
                retries
            }
        };
        let condition = match &file.if_ {
            None => None,
            Some(text) => match Expr::parse_condition(text) {
                Ok(expr) => Some((text.clone(), expr)),
                Err(error) => {
                    let at = path.key("if");
                    let pos = self.locate(&at, text, error.offset);
                    self.problem(Problem::at(
                        pos,
                        format!("`if` of stage `{id}`: {}", error.message),
                        "here",
                    ));
                    None
                }
            },
        };
        let env: IndexMap<String, String> = file
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.as_text()))
            .collect();
        self.check_env(&env, &path.key("env"));
        self.check_templates(&with, &path.key("with"));
        Some(Stage {
            id: id.to_owned(),
            uses: file.uses.clone(),
            with,
            needs: file.needs.to_vec(),
            condition,
            env,
            timeout,
            retries,
            continue_on_error: file.continue_on_error,
            outputs: file.outputs.clone(),
            description: file.description.clone(),
            finally: section == Section::Finally,
        })
    }

    /// A stage's keys one by one, so that one bad key does not hide the others' problems
    /// (`retires:` must not hide a bad `with`; `retries: two` must not hide a bad `timeout`).
    /// A key that fails keeps its default; a stage with no `uses` gets an empty one.
    fn stage_fields(
        &mut self,
        id: &str,
        map: &serde_yaml::Mapping,
        path: &YamlPath,
    ) -> Option<StageFile> {
        let mut file = StageFile {
            uses: String::new(),
            with: None,
            needs: Needs::None,
            if_: None,
            env: IndexMap::new(),
            timeout: None,
            retries: None,
            continue_on_error: false,
            outputs: Vec::new(),
            description: None,
        };
        let mut has_uses = false;
        for (key, value) in map {
            let Some(key) = key.as_str() else {
                let pos = self.at_value(path);
                self.problem(Problem::at(pos, "stage keys must be strings", "here"));
                continue;
            };
            let at = path.key(key);
            match key {
                "uses" => {
                    has_uses = true;
                    if let Some(uses) = self.typed::<String>(value, &at) {
                        file.uses = uses;
                    }
                }
                "with" => file.with = self.typed::<Option<Yaml>>(value, &at).flatten(),
                "needs" => file.needs = self.typed(value, &at).unwrap_or_default(),
                "if" => file.if_ = self.typed::<Option<String>>(value, &at).flatten(),
                "env" => file.env = self.typed(value, &at).unwrap_or_default(),
                "timeout" => file.timeout = self.typed::<Option<String>>(value, &at).flatten(),
                "retries" => file.retries = self.typed::<Option<RetriesSpec>>(value, &at).flatten(),
                "continue-on-error" => {
                    file.continue_on_error = self.typed(value, &at).unwrap_or_default()
                }
                "outputs" => file.outputs = self.typed(value, &at).unwrap_or_default(),
                "description" => {
                    file.description = self.typed::<Option<String>>(value, &at).flatten()
                }
                other => {
                    let pos = self.at_key(&at);
                    let help = crate::suggest::did_you_mean(other, STAGE_KEYS.iter().copied())
                        .unwrap_or_else(|| format!("expected one of: {}", STAGE_KEYS.join(", ")));
                    self.problem(
                        Problem::at(
                            pos,
                            format!("unknown key `{other}` in stage `{id}`"),
                            "unknown key",
                        )
                        .with_help(help),
                    );
                }
            }
        }
        if !has_uses {
            let pos = self.at_key(path);
            self.problem(
                Problem::at(pos, format!("stage `{id}` has no `uses`"), "here").with_help(format!(
                    "name its type, one of: {}",
                    self.catalog.names().join(", ")
                )),
            );
        }
        Some(file)
    }

    /// Position of byte `offset` inside the string value at `path`.
    fn locate(&self, path: &YamlPath, value: &str, offset: usize) -> Pos {
        let Some(node) = self.spans.get(path).copied() else {
            return self.at_value(path);
        };
        locate_in_value(self.text, &self.lines, &node, value, offset)
    }

    fn check_env(&mut self, env: &IndexMap<String, String>, path: &YamlPath) {
        for (key, value) in env {
            if let Err(error) = Template::parse(value) {
                let pos = self.locate(&path.key(key), value, error.offset);
                self.problem(Problem::at(
                    pos,
                    format!("`{path}.{key}`: {}", error.message),
                    "here",
                ));
            }
        }
    }

    /// Parses every string inside a `with` block.
    fn check_templates(&mut self, value: &Yaml, path: &YamlPath) {
        match value {
            Yaml::String(s) => {
                if let Err(error) = Template::parse(s) {
                    let pos = self.locate(path, s, error.offset);
                    self.problem(Problem::at(
                        pos,
                        format!("`{path}`: {}", error.message),
                        "here",
                    ));
                }
            }
            Yaml::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.check_templates(item, &path.index(i));
                }
            }
            Yaml::Mapping(map) => {
                for (k, v) in map {
                    if let Some(k) = k.as_str() {
                        self.check_templates(v, &path.key(k));
                    }
                }
            }
            Yaml::Tagged(t) => self.check_templates(&t.value, path),
            _ => {}
        }
    }

    fn check_needs(
        &mut self,
        stages: &IndexMap<String, Stage>,
        ids: &HashSet<&str>,
        earlier: &HashSet<&str>,
        finally_ids: &HashSet<&str>,
        section: Section,
    ) {
        for (id, stage) in stages {
            let base = YamlPath::root()
                .key(section.key())
                .key(id.as_str())
                .key("needs");
            let single = stage.needs.len() == 1 && self.spans.get(&base.index(0)).is_none();
            for (i, need) in stage.needs.iter().enumerate() {
                let at = if single { base.clone() } else { base.index(i) };
                if need == id {
                    let pos = self.at_value(&at);
                    self.problem(Problem::at(
                        pos,
                        format!("stage `{id}` needs itself"),
                        "here",
                    ));
                } else if earlier.contains(need.as_str()) {
                    // A `finally` stage may name a main stage: it runs after all of them anyway.
                } else if section == Section::Main && finally_ids.contains(need.as_str()) {
                    let pos = self.at_value(&at);
                    self.problem(
                        Problem::at(pos, format!("stage `{id}` needs `{need}`, a `finally` stage"), "a finally stage")
                            .with_help("`finally` stages run after all main stages; a main stage cannot wait for one"),
                    );
                } else if !ids.contains(need.as_str()) {
                    let pos = self.at_value(&at);
                    let help =
                        crate::suggest::did_you_mean(need, ids.iter().copied().filter(|s| s != id))
                            .unwrap_or_else(|| known_stages(ids, id));
                    self.problem(
                        Problem::at(
                            pos,
                            format!("stage `{id}` needs `{need}`, which is not a stage"),
                            "no such stage",
                        )
                        .with_help(help),
                    );
                }
            }
        }
    }

    fn check_cycles(&mut self, stages: &IndexMap<String, Stage>, section: Section) {
        let mut reported: BTreeSet<Vec<String>> = BTreeSet::new();
        for cycle in crate::dag::cycles(stages) {
            let mut key = cycle.clone();
            key.sort();
            if !reported.insert(key) {
                continue;
            }
            let Some(first) = cycle.first() else { continue };
            let mut shown = cycle.clone();
            shown.push(first.clone());
            let at = YamlPath::root()
                .key(section.key())
                .key(first.as_str())
                .key("needs");
            let pos = self.at_value(&at);
            self.problem(Problem::at(
                pos,
                format!("dependency cycle: {}", shown.join(" → ")),
                "part of a cycle",
            ));
        }
    }

    /// Every expression reference must name a stage (that runs before) and a declared output.
    fn check_references(&mut self, pipeline: &Pipeline) {
        let all: Vec<&Stage> = pipeline
            .stages
            .values()
            .chain(pipeline.finally.values())
            .collect();
        let by_id: HashMap<&str, &Stage> = all.iter().map(|s| (s.id.as_str(), *s)).collect();
        for stage in &all {
            let section = if stage.finally {
                Section::Finally
            } else {
                Section::Main
            };
            let base = YamlPath::root().key(section.key()).key(stage.id.as_str());
            let mut sites: Vec<Site> = Vec::new();
            if let Some((text, expr)) = &stage.condition {
                sites.push((base.key("if"), text.clone(), owned_paths(expr)));
            }
            for (k, v) in &stage.env {
                if let Ok(t) = Template::parse(v) {
                    sites.push((
                        base.key("env").key(k.as_str()),
                        v.clone(),
                        template_paths(&t),
                    ));
                }
            }
            collect_with_sites(&stage.with, &base.key("with"), &mut sites);
            for (path, text, refs) in sites {
                for (segments, offset) in refs {
                    let error = match Reference::classify(&segments) {
                        Err(message) => Some((message, None)),
                        Ok(Reference::StageOutput {
                            stage: target,
                            output,
                        }) => self.stage_ref(pipeline, stage, &target, Some(&output), &by_id),
                        Ok(Reference::StageResult { stage: target }) => {
                            self.stage_ref(pipeline, stage, &target, None, &by_id)
                        }
                        Ok(_) => None,
                    };
                    if let Some((message, help)) = error {
                        let pos = self.locate(&path, &text, offset);
                        let pos = Pos {
                            len: segments.join(".").len(),
                            ..pos
                        };
                        let mut problem = Problem::at(
                            pos,
                            format!("`{}`: {message}", segments.join(".")),
                            "here",
                        );
                        if let Some(help) = help {
                            problem = problem.with_help(help);
                        }
                        self.problem(problem);
                    }
                }
            }
        }
        // Env of the pipeline may only use env, secrets and pipeline.
        for (k, v) in &pipeline.env {
            if let Ok(t) = Template::parse(v) {
                for (segments, offset) in template_paths(&t) {
                    let message = match Reference::classify(&segments) {
                        Err(message) => Some(message),
                        Ok(Reference::StageOutput { .. } | Reference::StageResult { .. }) => {
                            Some(String::from("the pipeline's `env` cannot read stages"))
                        }
                        Ok(_) => None,
                    };
                    if let Some(message) = message {
                        let pos =
                            self.locate(&YamlPath::root().key("env").key(k.as_str()), v, offset);
                        self.problem(Problem::at(
                            pos,
                            format!("`{}`: {message}", segments.join(".")),
                            "here",
                        ));
                    }
                }
            }
        }
    }

    fn stage_ref(
        &self,
        pipeline: &Pipeline,
        from: &Stage,
        target: &str,
        output: Option<&str>,
        by_id: &HashMap<&str, &Stage>,
    ) -> Option<(String, Option<String>)> {
        let Some(target_stage) = by_id.get(target) else {
            let help = crate::suggest::did_you_mean(target, by_id.keys().copied());
            return Some((format!("unknown stage `{target}`"), help));
        };
        if target == from.id {
            return Some((String::from("a stage cannot read itself"), None));
        }
        let runs_before = (from.finally && !target_stage.finally)
            || pipeline.needs_transitively(&from.id, target);
        if !runs_before {
            return Some((
                format!("stage `{target}` is not in the `needs` of `{}`", from.id),
                Some(format!("add `needs: [{target}]` to stage `{}`", from.id)),
            ));
        }
        if let Some(output) = output {
            let builtin = self
                .catalog
                .get(&target_stage.uses)
                .map(|s| s.outputs())
                .unwrap_or(&[]);
            if !target_stage.outputs.iter().any(|o| o == output) && !builtin.contains(&output) {
                let mut declared: Vec<&str> =
                    target_stage.outputs.iter().map(String::as_str).collect();
                declared.extend(builtin.iter().copied());
                return Some((
                    format!("stage `{target}` has no output `{output}`"),
                    Some(format!(
                        "declare it in `outputs:` of `{target}`; known outputs: {}",
                        if declared.is_empty() {
                            String::from("none")
                        } else {
                            declared.join(", ")
                        }
                    )),
                ));
            }
        }
        None
    }
}

/// Most stage ids listed in a hint (a long list helps nobody, and costs a line per problem).
const MAX_LISTED_STAGES: usize = 20;

/// `known stages: a, b, …` (other than `id`), cut after [`MAX_LISTED_STAGES`].
fn known_stages(ids: &HashSet<&str>, id: &str) -> String {
    let mut known: Vec<&str> = ids.iter().copied().filter(|s| *s != id).collect();
    known.sort_unstable();
    let more = known.len().saturating_sub(MAX_LISTED_STAGES);
    known.truncate(MAX_LISTED_STAGES);
    let mut text = format!("known stages: {}", known.join(", "));
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

/// A string holding expressions: where it is, its text, and its paths with their offsets.
type Site = (YamlPath, String, Vec<(Vec<String>, usize)>);

/// A type error on a value that is a `${{ }}` expression is checked when the stage runs, once
/// the expression has a value (e.g. `allow-conflicts: ${{ env.ALLOW == 'yes' }}`).
fn is_deferred(with: &Yaml, error: &crate::with::WithError) -> bool {
    if error.at_key {
        return false;
    }
    let mut value = with;
    for seg in &error.path.0 {
        let next = match (seg, value) {
            (crate::span::Seg::Key(k), Yaml::Mapping(map)) => map.get(k.as_str()),
            (crate::span::Seg::Index(i), Yaml::Sequence(items)) => items.get(*i),
            _ => None,
        };
        match next {
            Some(v) => value = v,
            None => return false,
        }
    }
    matches!(value, Yaml::String(s) if s.contains("${{"))
}

fn owned_paths(expr: &Expr) -> Vec<(Vec<String>, usize)> {
    expr.paths()
        .into_iter()
        .map(|(s, o)| (s.to_vec(), o))
        .collect()
}

fn template_paths(t: &Template) -> Vec<(Vec<String>, usize)> {
    t.exprs().flat_map(owned_paths).collect()
}

fn collect_with_sites(value: &Yaml, path: &YamlPath, out: &mut Vec<Site>) {
    match value {
        Yaml::String(s) => {
            if let Ok(t) = Template::parse(s) {
                let refs = template_paths(&t);
                if !refs.is_empty() {
                    out.push((path.clone(), s.clone(), refs));
                }
            }
        }
        Yaml::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_with_sites(item, &path.index(i), out);
            }
        }
        Yaml::Mapping(map) => {
            for (k, v) in map {
                if let Some(k) = k.as_str() {
                    collect_with_sites(v, &path.key(k), out);
                }
            }
        }
        Yaml::Tagged(t) => collect_with_sites(&t.value, path, out),
        _ => {}
    }
}

/// Finds byte `offset` of a parsed string value in the source: the line of the value holding
/// the offset is searched for from the node's start (works for plain, quoted and block
/// scalars without escapes before the offset; otherwise the node's start is used).
fn locate_in_value(
    text: &str,
    lines: &LineIndex,
    node: &NodeSpan,
    value: &str,
    offset: usize,
) -> Pos {
    let offset = offset.min(value.len());
    let line_start = value
        .get(..offset)
        .and_then(|s| s.rfind('\n'))
        .map(|i| i + 1)
        .unwrap_or(0);
    let line_end = value
        .get(offset..)
        .and_then(|s| s.find('\n'))
        .map(|i| offset + i)
        .unwrap_or(value.len());
    let fragment = value.get(line_start..line_end).unwrap_or("");
    let within = offset - line_start;
    if !fragment.is_empty()
        && let Some(found) = text
            .get(node.value.offset..)
            .and_then(|rest| rest.find(fragment))
    {
        let abs = node.value.offset + found + within;
        let rest = text.get(abs..).unwrap_or("");
        let len = rest
            .find('\n')
            .unwrap_or(rest.len())
            .min(fragment.len().saturating_sub(within))
            .max(1);
        return lines.pos(text, abs, len);
    }
    node.value
}

/// Parses a retry backoff etc. Kept here so the defaults live next to the checks.
impl Default for Retries {
    fn default() -> Self {
        Self {
            count: 0,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}
