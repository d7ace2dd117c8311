//! Expressions: `${{ ... }}` inside strings and bare `if:` conditions.
//!
//! The grammar (`expr.pest`, a PEG) accepts `env.X`, `secrets.X`, `stages.ID.outputs.Y`,
//! `stages.ID.result`, `pipeline.*`, string/number/boolean/null literals, `==`, `!=`, `&&`,
//! `||`, `!`, parentheses and the status functions `success()`, `failure()`, `always()`,
//! `cancelled()`. [`Template`] is a string with interpolations; [`Expr`] one expression.

use std::fmt;

use pest::Parser as _;
use pest::iterators::Pair;
use pest_derive::Parser;

#[derive(Parser)]
#[grammar = "expr.pest"]
struct ExprParser;

/// Deepest nesting accepted, counting each parenthesis and each `!` as a level: the parser,
/// [`Expr::eval`], the walkers and `Drop` all recurse, so a bound here bounds every one of them
/// (a chain of `&&`/`||` is one n-ary node, not a nesting).
const MAX_NESTING: usize = 32;
/// Longest expression text accepted.
pub const MAX_LEN: usize = 64 * 1024;

/// A value an expression evaluates to.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
}

impl Value {
    pub fn truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => *n != 0.0 && !n.is_nan(),
            Value::String(s) => !s.is_empty(),
        }
    }

    fn as_number(&self) -> f64 {
        match self {
            Value::Null => 0.0,
            Value::Bool(b) => f64::from(u8::from(*b)),
            Value::Number(n) => *n,
            Value::String(s) if s.trim().is_empty() => 0.0,
            Value::String(s) => s.trim().parse().unwrap_or(f64::NAN),
        }
    }

    fn loose_eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Null, _) | (_, Value::Null) => false,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (a, b) => a.as_number() == b.as_number(),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => Ok(()),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => write!(f, "{}", *n as i64),
            Value::Number(n) => write!(f, "{n}"),
            Value::String(s) => f.write_str(s),
        }
    }
}

/// The status functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusFn {
    Success,
    Failure,
    Always,
    Cancelled,
}

impl StatusFn {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "success" => Some(Self::Success),
            "failure" => Some(Self::Failure),
            "always" => Some(Self::Always),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

/// A parsed expression. Byte offsets are relative to the text given to the parser.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Lit(Value),
    Path {
        segments: Vec<String>,
        offset: usize,
    },
    Call {
        func: StatusFn,
        offset: usize,
    },
    Not(Box<Expr>),
    Eq(Box<Expr>, Box<Expr>),
    Ne(Box<Expr>, Box<Expr>),
    /// `a && b && ...`: the first falsy operand, else the last.
    And(Vec<Expr>),
    /// `a || b || ...`: the first truthy operand, else the last.
    Or(Vec<Expr>),
}

/// What a path refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Env(String),
    Secret(String),
    StageOutput { stage: String, output: String },
    StageResult { stage: String },
    Pipeline(PipelineField),
}

/// The `pipeline.*` fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineField {
    Name,
    RunId,
    File,
    Dir,
}

impl Reference {
    /// Classifies a path, or explains why it names nothing.
    pub fn classify(segments: &[String]) -> Result<Reference, String> {
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        match segs.as_slice() {
            ["env", name] => Ok(Reference::Env((*name).to_owned())),
            ["secrets", name] => Ok(Reference::Secret((*name).to_owned())),
            ["stages", stage, "outputs", output] => Ok(Reference::StageOutput {
                stage: (*stage).to_owned(),
                output: (*output).to_owned(),
            }),
            ["stages", stage, "result"] => Ok(Reference::StageResult {
                stage: (*stage).to_owned(),
            }),
            ["stages", ..] => Err(String::from(
                "expected `stages.ID.outputs.NAME` or `stages.ID.result`",
            )),
            ["pipeline", "name"] => Ok(Reference::Pipeline(PipelineField::Name)),
            ["pipeline", "run-id"] => Ok(Reference::Pipeline(PipelineField::RunId)),
            ["pipeline", "file"] => Ok(Reference::Pipeline(PipelineField::File)),
            ["pipeline", "dir"] => Ok(Reference::Pipeline(PipelineField::Dir)),
            ["pipeline", ..] => Err(String::from(
                "expected one of `pipeline.name`, `pipeline.run-id`, `pipeline.file`, `pipeline.dir`",
            )),
            ["env" | "secrets", ..] => Err(format!(
                "expected `{}.NAME`",
                segs.first().copied().unwrap_or("")
            )),
            [root, ..] => Err(format!(
                "unknown name `{root}`: expected `env`, `secrets`, `stages` or `pipeline`"
            )),
            [] => Err(String::from("empty path")),
        }
    }
}

/// An expression that did not parse, with the byte offset of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub message: String,
    pub offset: usize,
}

/// Evaluation failed (a missing value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    pub message: String,
}

/// What an expression can read while it is evaluated.
pub trait Scope {
    /// The value of a path (`env.X`, `stages.a.outputs.b`, ...).
    fn lookup(&self, reference: &Reference) -> Result<Value, EvalError>;
    /// The value of a status function.
    fn status(&self, func: StatusFn) -> bool;
}

fn nesting_ok(text: &str) -> Result<(), ParseError> {
    let mut depth = 0usize;
    for (offset, c) in text.char_indices() {
        match c {
            '(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(ParseError {
                        message: format!("parentheses nested deeper than {MAX_NESTING}"),
                        offset,
                    });
                }
            }
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if text.len() > MAX_LEN {
        return Err(ParseError {
            message: format!("expression longer than {MAX_LEN} bytes"),
            offset: 0,
        });
    }
    Ok(())
}

fn pest_error(error: pest::error::Error<Rule>) -> ParseError {
    let offset = match error.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let message = match &error.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            let mut names: Vec<&str> = positives.iter().filter_map(rule_name).collect();
            names.sort_unstable();
            names.dedup();
            if names.is_empty() {
                String::from("invalid expression")
            } else {
                format!("invalid expression: expected {}", names.join(", "))
            }
        }
        pest::error::ErrorVariant::CustomError { message } => message.clone(),
    };
    ParseError { message, offset }
}

fn rule_name(rule: &Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::or_expr | Rule::and_expr | Rule::cmp_expr | Rule::unary | Rule::primary => {
            "an operand"
        }
        Rule::or_op => "`||`",
        Rule::and_op => "`&&`",
        Rule::cmp_op => "`==` or `!=`",
        Rule::EOI => "end of expression",
        Rule::interp => "`}}`",
        Rule::path | Rule::ident => "a name",
        Rule::literal | Rule::string | Rule::number | Rule::boolean | Rule::null => "a literal",
        _ => return None,
    })
}

impl Expr {
    /// Parses a bare expression (an `if:`); `${{ ... }}` around it is accepted too.
    pub fn parse_condition(text: &str) -> Result<Expr, ParseError> {
        nesting_ok(text)?;
        let trimmed = text.trim();
        if trimmed.starts_with("${{") && trimmed.ends_with("}}") {
            let template = Template::parse(text)?;
            if let [Part::Expr { expr, .. }] = template.parts.as_slice() {
                return Ok(expr.clone());
            }
        }
        let mut pairs = ExprParser::parse(Rule::condition, text).map_err(pest_error)?;
        let condition = pairs.next().ok_or_else(|| ParseError {
            message: "empty".into(),
            offset: 0,
        })?;
        let or = condition
            .into_inner()
            .find(|p| p.as_rule() == Rule::or_expr)
            .ok_or_else(|| ParseError {
                message: "empty expression".into(),
                offset: 0,
            })?;
        build(or, 0, 0)
    }

    /// Every path in the expression, with its byte offset.
    pub fn paths(&self) -> Vec<(&[String], usize)> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let Expr::Path { segments, offset } = e {
                out.push((segments.as_slice(), *offset));
            }
        });
        out
    }

    /// Whether the expression calls a status function (otherwise `success() &&` is implied).
    pub fn has_status_fn(&self) -> bool {
        let mut found = false;
        self.walk(&mut |e| found |= matches!(e, Expr::Call { .. }));
        found
    }

    fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Expr)) {
        f(self);
        match self {
            Expr::Lit(_) | Expr::Path { .. } | Expr::Call { .. } => {}
            Expr::Not(e) => e.walk(f),
            Expr::Eq(a, b) | Expr::Ne(a, b) => {
                a.walk(f);
                b.walk(f);
            }
            Expr::And(operands) | Expr::Or(operands) => {
                for operand in operands {
                    operand.walk(f);
                }
            }
        }
    }

    pub fn eval(&self, scope: &dyn Scope) -> Result<Value, EvalError> {
        Ok(match self {
            Expr::Lit(v) => v.clone(),
            Expr::Path { segments, .. } => {
                let reference =
                    Reference::classify(segments).map_err(|message| EvalError { message })?;
                scope.lookup(&reference)?
            }
            Expr::Call { func, .. } => Value::Bool(scope.status(*func)),
            Expr::Not(e) => Value::Bool(!e.eval(scope)?.truthy()),
            Expr::Eq(a, b) => Value::Bool(a.eval(scope)?.loose_eq(&b.eval(scope)?)),
            Expr::Ne(a, b) => Value::Bool(!a.eval(scope)?.loose_eq(&b.eval(scope)?)),
            Expr::And(operands) => {
                let mut value = Value::Bool(true);
                for operand in operands {
                    value = operand.eval(scope)?;
                    if !value.truthy() {
                        break;
                    }
                }
                value
            }
            Expr::Or(operands) => {
                let mut value = Value::Bool(false);
                for operand in operands {
                    value = operand.eval(scope)?;
                    if value.truthy() {
                        break;
                    }
                }
                value
            }
        })
    }
}

fn bad(pair: &Pair<'_, Rule>, base: usize) -> ParseError {
    ParseError {
        message: String::from("invalid expression"),
        offset: base + pair.as_span().start(),
    }
}

/// Builds the tree of `pair`, `depth` levels of parentheses and `!` deep.
fn build(pair: Pair<'_, Rule>, base: usize, depth: usize) -> Result<Expr, ParseError> {
    match pair.as_rule() {
        Rule::or_expr | Rule::and_expr => {
            let is_or = pair.as_rule() == Rule::or_expr;
            let mut operands = pair
                .clone()
                .into_inner()
                .filter(|p| !matches!(p.as_rule(), Rule::or_op | Rule::and_op))
                .map(|p| build(p, base, depth))
                .collect::<Result<Vec<Expr>, ParseError>>()?;
            Ok(match operands.len() {
                0 => return Err(bad(&pair, base)),
                1 => operands.swap_remove(0),
                _ if is_or => Expr::Or(operands),
                _ => Expr::And(operands),
            })
        }
        Rule::cmp_expr => {
            let mut inner = pair.clone().into_inner();
            let left = build(inner.next().ok_or_else(|| bad(&pair, base))?, base, depth)?;
            match (inner.next(), inner.next()) {
                (Some(op), Some(right)) => {
                    let right = build(right, base, depth)?;
                    Ok(if op.as_str() == "==" {
                        Expr::Eq(Box::new(left), Box::new(right))
                    } else {
                        Expr::Ne(Box::new(left), Box::new(right))
                    })
                }
                _ => Ok(left),
            }
        }
        Rule::unary => {
            let inner: Vec<Pair<'_, Rule>> = pair.clone().into_inner().collect();
            let nots = inner.iter().filter(|p| p.as_rule() == Rule::not_op).count();
            let depth = depth.saturating_add(nots);
            if depth > MAX_NESTING {
                return Err(ParseError {
                    message: format!("`!` and parentheses nested deeper than {MAX_NESTING}"),
                    offset: base + pair.as_span().start(),
                });
            }
            let primary = inner
                .into_iter()
                .find(|p| p.as_rule() == Rule::primary)
                .ok_or_else(|| bad(&pair, base))?;
            let mut expr = build(primary, base, depth)?;
            for _ in 0..nots {
                expr = Expr::Not(Box::new(expr));
            }
            Ok(expr)
        }
        Rule::primary | Rule::literal => {
            let inner = pair
                .clone()
                .into_inner()
                .next()
                .ok_or_else(|| bad(&pair, base))?;
            // A parenthesised expression is one level deeper.
            let depth = if inner.as_rule() == Rule::or_expr {
                depth + 1
            } else {
                depth
            };
            if depth > MAX_NESTING {
                return Err(ParseError {
                    message: format!("`!` and parentheses nested deeper than {MAX_NESTING}"),
                    offset: base + pair.as_span().start(),
                });
            }
            build(inner, base, depth)
        }
        Rule::call => {
            let ident = pair
                .clone()
                .into_inner()
                .next()
                .ok_or_else(|| bad(&pair, base))?;
            let func = StatusFn::parse(ident.as_str()).ok_or_else(|| ParseError {
                message: format!(
                    "unknown function `{}()`: expected success(), failure(), always() or cancelled()",
                    ident.as_str()
                ),
                offset: base + ident.as_span().start(),
            })?;
            Ok(Expr::Call {
                func,
                offset: base + pair.as_span().start(),
            })
        }
        Rule::path => Ok(Expr::Path {
            segments: pair
                .clone()
                .into_inner()
                .map(|p| p.as_str().to_owned())
                .collect(),
            offset: base + pair.as_span().start(),
        }),
        Rule::string => {
            let inner = pair
                .clone()
                .into_inner()
                .next()
                .map(|p| p.as_str())
                .unwrap_or("");
            Ok(Expr::Lit(Value::String(inner.replace("''", "'"))))
        }
        Rule::number => {
            let n: f64 = pair.as_str().parse().map_err(|_| bad(&pair, base))?;
            Ok(Expr::Lit(Value::Number(n)))
        }
        Rule::boolean => Ok(Expr::Lit(Value::Bool(pair.as_str() == "true"))),
        Rule::null => Ok(Expr::Lit(Value::Null)),
        _ => Err(bad(&pair, base)),
    }
}

/// One piece of a [`Template`].
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    /// An interpolation; `offset` is the byte offset of its `${{`.
    Expr {
        expr: Expr,
        offset: usize,
    },
}

/// A string with `${{ ... }}` interpolations.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub parts: Vec<Part>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, ParseError> {
        if !text.contains("${{") {
            return Ok(Template {
                parts: vec![Part::Text(text.to_owned())],
            });
        }
        nesting_ok(text)?;
        let mut pairs = ExprParser::parse(Rule::template, text).map_err(pest_error)?;
        let template = pairs.next().ok_or_else(|| ParseError {
            message: "empty".into(),
            offset: 0,
        })?;
        let mut parts = Vec::new();
        for part in template.into_inner() {
            match part.as_rule() {
                Rule::text => parts.push(Part::Text(part.as_str().to_owned())),
                Rule::interp => {
                    let offset = part.as_span().start();
                    let or = part
                        .clone()
                        .into_inner()
                        .next()
                        .ok_or_else(|| bad(&part, 0))?;
                    parts.push(Part::Expr {
                        expr: build(or, 0, 0)?,
                        offset,
                    });
                }
                _ => {}
            }
        }
        Ok(Template { parts })
    }

    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    pub fn exprs(&self) -> impl Iterator<Item = &Expr> {
        self.parts.iter().filter_map(|p| match p {
            Part::Expr { expr, .. } => Some(expr),
            Part::Text(_) => None,
        })
    }

    /// Renders the template; a whole-string single expression keeps its value's text form.
    pub fn render(&self, scope: &dyn Scope) -> Result<String, EvalError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Expr { expr, .. } => out.push_str(&expr.eval(scope)?.to_string()),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    struct TestScope;
    impl Scope for TestScope {
        fn lookup(&self, reference: &Reference) -> Result<Value, EvalError> {
            match reference {
                Reference::Env(name) if name == "X" => Ok(Value::String("x".into())),
                Reference::StageOutput { stage, output } => {
                    Ok(Value::String(format!("{stage}/{output}")))
                }
                Reference::StageResult { .. } => Ok(Value::String("success".into())),
                _ => Ok(Value::Null),
            }
        }
        fn status(&self, func: StatusFn) -> bool {
            matches!(func, StatusFn::Success | StatusFn::Always)
        }
    }

    fn eval(text: &str) -> Value {
        Expr::parse_condition(text)
            .unwrap()
            .eval(&TestScope)
            .unwrap()
    }

    #[test]
    fn operators_and_literals() {
        assert_eq!(eval("env.X == 'x'"), Value::Bool(true));
        assert_eq!(eval("env.X != 'x'"), Value::Bool(false));
        assert_eq!(eval("!env.Y"), Value::Bool(true));
        assert_eq!(
            eval("env.Y || 'fallback'"),
            Value::String("fallback".into())
        );
        assert_eq!(eval("success() && !failure()"), Value::Bool(true));
        assert_eq!(
            eval("(failure() || always()) && 1 == '1'"),
            Value::Bool(true)
        );
        assert_eq!(
            eval("${{ stages.build.result == 'success' }}"),
            Value::Bool(true)
        );
        assert_eq!(eval("'it''s'"), Value::String("it's".into()));
        assert_eq!(eval("null == env.Y"), Value::Bool(true));
        assert!(matches!(
            Expr::parse_condition("truex").unwrap(),
            Expr::Path { .. }
        ));
    }

    #[test]
    fn template_renders() {
        let t = Template::parse("a ${{ stages.b.outputs.c }} d ${{ env.X }}").unwrap();
        assert_eq!(t.render(&TestScope).unwrap(), "a b/c d x");
        assert!(Template::parse("plain }} text").unwrap().is_literal());
    }

    #[test]
    fn errors_have_offsets() {
        let e = Template::parse("echo ${{ env.X == }}").unwrap_err();
        assert_eq!(e.offset, 18, "{e:?}");
        let e = Expr::parse_condition("foo(").unwrap_err();
        assert_eq!(e.offset, 3, "{e:?}");
        let e = Expr::parse_condition("bogus()").unwrap_err();
        assert!(e.message.contains("unknown function `bogus()`"), "{e:?}");
        let deep = format!("{}1{}", "(".repeat(100), ")".repeat(100));
        assert!(
            Expr::parse_condition(&deep)
                .unwrap_err()
                .message
                .contains("nested")
        );
    }

    #[test]
    fn depth_is_bounded_for_every_walker() {
        // `!` counts as a level, like a parenthesis: 60,000 of them are refused at parse.
        let nots = format!("{}true", "!".repeat(60_000));
        let e = Expr::parse_condition(&nots).unwrap_err();
        assert!(e.message.contains("nested deeper than 32"), "{e:?}");
        let e = Template::parse(&format!("${{{{ {nots} }}}}")).unwrap_err();
        assert!(e.message.contains("nested deeper than 32"), "{e:?}");
        assert_eq!(eval(&format!("{}env.X", "!".repeat(32))), Value::Bool(true));
        // A long chain of `&&` is one node: parse, eval, walk, clone and drop all run on a
        // 128 KiB stack (a left-deep tree of 6,000 levels would overflow it).
        let chain = vec!["env.X"; 6_000].join(" && ");
        let on_small_stack = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || {
                let expr = Expr::parse_condition(&chain).unwrap();
                assert_eq!(expr.paths().len(), 6_000);
                let copy = expr.clone();
                assert_eq!(copy, expr);
                expr.eval(&TestScope).unwrap()
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(on_small_stack, Value::String("x".into()));
    }

    #[test]
    fn classify_paths() {
        let p = |s: &str| s.split('.').map(String::from).collect::<Vec<_>>();
        assert!(Reference::classify(&p("stages.a.outputs.b")).is_ok());
        assert!(Reference::classify(&p("stages.a")).is_err());
        assert!(
            Reference::classify(&p("github.sha"))
                .unwrap_err()
                .contains("unknown name `github`")
        );
    }
}
