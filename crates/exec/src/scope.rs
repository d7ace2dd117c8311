//! Expression scopes over a run's state, and the resolution of `env` and `with`.

use std::collections::{BTreeMap, HashMap};

use indexmap::IndexMap;
use uplift_pipeline::expr::{
    EvalError, PipelineField, Reference, Scope, StatusFn, Template, Value,
};

use crate::events::StageResult;
use crate::stage::Outputs;

/// `pipeline.*` values.
#[derive(Debug, Clone, Default)]
pub struct PipelineInfo {
    pub name: String,
    pub run_id: String,
    pub file: String,
    pub dir: String,
}

/// The status functions' answers for one stage.
#[derive(Debug, Clone, Copy, Default)]
pub struct Status {
    pub success: bool,
    pub failure: bool,
    pub cancelled: bool,
}

/// What expressions read during a run (or, with `plan` set, during a plan).
#[derive(Debug)]
pub struct EvalScope<'a> {
    pub env: &'a BTreeMap<String, String>,
    pub secrets: &'a BTreeMap<String, String>,
    pub outputs: &'a HashMap<String, Outputs>,
    pub results: &'a HashMap<String, StageResult>,
    pub pipeline: &'a PipelineInfo,
    pub status: Status,
    /// Plan mode: stage outputs are not known yet and are shown as their expression.
    pub plan: bool,
}

impl Scope for EvalScope<'_> {
    fn lookup(&self, reference: &Reference) -> Result<Value, EvalError> {
        Ok(match reference {
            Reference::Env(name) => self
                .env
                .get(name)
                .map(|v| Value::String(v.clone()))
                .unwrap_or(Value::Null),
            Reference::Secret(name) => match self.secrets.get(name) {
                Some(v) => Value::String(v.clone()),
                None if self.plan => Value::String(format!("<unset secret {name}>")),
                None => {
                    return Err(EvalError {
                        message: format!(
                            "secret `{name}` is not set (set UPLIFT_SECRET_{name} or use --secrets-file)"
                        ),
                    });
                }
            },
            Reference::StageOutput { stage, output } => {
                match self.outputs.get(stage).and_then(|o| o.get(output)) {
                    Some(v) => Value::String(v.clone()),
                    None if self.plan => {
                        Value::String(format!("${{{{ stages.{stage}.outputs.{output} }}}}"))
                    }
                    None => Value::Null,
                }
            }
            Reference::StageResult { stage } => match self.results.get(stage) {
                Some(r) => Value::String(r.as_str().to_owned()),
                None if self.plan => Value::String(String::from("success")),
                None => Value::String(String::from("skipped")),
            },
            Reference::Pipeline(field) => Value::String(match field {
                PipelineField::Name => self.pipeline.name.clone(),
                PipelineField::RunId => self.pipeline.run_id.clone(),
                PipelineField::File => self.pipeline.file.clone(),
                PipelineField::Dir => self.pipeline.dir.clone(),
            }),
        })
    }

    fn status(&self, func: StatusFn) -> bool {
        match func {
            StatusFn::Success => self.status.success,
            StatusFn::Failure => self.status.failure,
            StatusFn::Always => true,
            StatusFn::Cancelled => self.status.cancelled,
        }
    }
}

fn render(text: &str, scope: &dyn Scope) -> Result<String, EvalError> {
    Template::parse(text)
        .map_err(|e| EvalError { message: e.message })?
        .render(scope)
}

/// Renders every template of an env map with `scope`.
pub fn render_env(
    env: &IndexMap<String, String>,
    scope: &dyn Scope,
) -> Result<BTreeMap<String, String>, EvalError> {
    env.iter()
        .map(|(k, v)| {
            render(v, scope)
                .map(|r| (k.clone(), r))
                .map_err(|e| EvalError {
                    message: format!("env `{k}`: {}", e.message),
                })
        })
        .collect()
}

/// Replaces the expressions in every string of a `with` block. A string that is exactly one
/// `${{ }}` keeps its value's type (so `allow-conflicts: ${{ env.X == 'y' }}` is a boolean).
pub fn resolve_yaml(
    value: &serde_yaml::Value,
    scope: &dyn Scope,
) -> Result<serde_yaml::Value, EvalError> {
    use serde_yaml::Value as Y;
    Ok(match value {
        Y::String(s) => {
            let template = Template::parse(s).map_err(|e| EvalError { message: e.message })?;
            match template.parts.as_slice() {
                [uplift_pipeline::expr::Part::Expr { expr, .. }] => match expr.eval(scope)? {
                    Value::Null => Y::Null,
                    Value::Bool(b) => Y::Bool(b),
                    Value::Number(n) => {
                        if n.fract() == 0.0 && n.abs() < 1e15 {
                            Y::Number((n as i64).into())
                        } else {
                            Y::Number(n.into())
                        }
                    }
                    Value::String(s) => Y::String(s),
                },
                _ => Y::String(template.render(scope)?),
            }
        }
        Y::Sequence(items) => Y::Sequence(
            items
                .iter()
                .map(|v| resolve_yaml(v, scope))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(map) => {
            let mut out = serde_yaml::Mapping::new();
            for (k, v) in map {
                out.insert(k.clone(), resolve_yaml(v, scope)?);
            }
            Y::Mapping(out)
        }
        Y::Tagged(t) => resolve_yaml(&t.value, scope)?,
        other => other.clone(),
    })
}
