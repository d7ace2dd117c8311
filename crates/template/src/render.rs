//! Rendering a template tree: `*.hbs` files through strict Handlebars, the rest as they are.

use std::collections::BTreeMap;

use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, JsonTruthy, Output,
    RenderContext as HbsRenderContext, RenderError, RenderErrorReason, Renderable,
};
use uplift_tree::{FileEntry, FileMode, RelPath, Tree};

use crate::Error;

/// Values for `{{name}}`-style variables, e.g. `name` and `defaultBranch`.
pub type Values = serde_json::Map<String, serde_json::Value>;

/// What a render needs besides the files.
#[derive(Debug, Clone, Copy)]
pub struct RenderContext<'a> {
    pub values: &'a Values,
    /// Package name to version, for the `version` helper; `None` when the release has none.
    pub versions: Option<&'a BTreeMap<String, String>>,
}

const SUFFIX: &str = ".hbs";

/// Reads the versions map at `path` in a release's files (`None` when absent).
pub fn versions_map(files: &Tree, path: &str) -> Result<Option<BTreeMap<String, String>>, Error> {
    let path_error = |message: String| Error::VersionsMap {
        path: path.to_string(),
        message,
    };
    let rel = RelPath::new(path)?;
    let Some(entry) = files.get(&rel) else {
        return Ok(None);
    };
    let map: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&entry.content)
        .map_err(|e| path_error(format!("line {}, column {}: {e}", e.line(), e.column())))?;
    map.into_iter()
        .map(|(name, value)| match value {
            serde_json::Value::String(version) => Ok((name, version)),
            other => Err(path_error(format!(
                "the version of {name:?} is not a string: {other}"
            ))),
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

/// Renders `template`: `*.hbs` files are rendered and lose the suffix; others are copied.
/// Symlinks are copied as links, never rendered (whatever their name), and must point inside
/// the app. Every file that fails is reported (one error per file), not only the first.
pub fn render(template: &Tree, context: RenderContext<'_>) -> Result<Tree, Error> {
    let engine = engine(context.versions);
    let data = serde_json::Value::Object(context.values.clone());
    let mut out = Tree::new();
    let mut errors = Vec::new();
    for (path, entry) in template.iter() {
        if entry.mode == FileMode::Symlink {
            if !uplift_tree::link_stays_inside(path, &entry.content) {
                errors.push(Error::LinkOutside {
                    path: path.to_string(),
                    target: String::from_utf8_lossy(&entry.content).into_owned(),
                });
                continue;
            }
            insert_unique(&mut out, path.clone(), entry.clone())?;
            continue;
        }
        let Some(target) = path.strip_suffix(SUFFIX) else {
            insert_unique(&mut out, path.clone(), entry.clone())?;
            continue;
        };
        let Some(text) = entry.text() else {
            errors.push(Error::RenderNoPosition {
                path: path.to_string(),
                message: "a `.hbs` template must be UTF-8 text".to_string(),
            });
            continue;
        };
        match engine.render_template(text, &data) {
            Ok(rendered) => insert_unique(
                &mut out,
                target,
                FileEntry::new(entry.mode, rendered.into_bytes()),
            )?,
            Err(error) => errors.push(render_error(path, &error)),
        }
    }
    match errors.len() {
        0 => Ok(out),
        1 => Err(errors.remove(0)),
        _ => Err(Error::RenderMany { errors }),
    }
}

fn insert_unique(out: &mut Tree, path: RelPath, entry: FileEntry) -> Result<(), Error> {
    if out.contains(&path) {
        return Err(Error::Collision {
            path: path.to_string(),
        });
    }
    out.insert(path, entry);
    Ok(())
}

fn engine(versions: Option<&BTreeMap<String, String>>) -> Handlebars<'static> {
    let mut engine = Handlebars::new();
    // An unknown variable is an error, never an empty string.
    engine.set_strict_mode(true);
    // Templates produce source files, not HTML.
    engine.register_escape_fn(handlebars::no_escape);
    // Strict mode does not cover block helpers' parameters: `{{#if nmae}}` would be false.
    engine.register_helper("if", Box::new(StrictIf { positive: true }));
    engine.register_helper("unless", Box::new(StrictIf { positive: false }));
    let versions = versions.cloned();
    engine.register_helper(
        "version",
        Box::new(
            move |helper: &Helper<'_>,
                  _: &Handlebars<'_>,
                  _: &Context,
                  _: &mut HbsRenderContext<'_, '_>,
                  out: &mut dyn Output|
                  -> HelperResult {
                let package = helper
                    .param(0)
                    .and_then(|p| p.value().as_str())
                    .ok_or(RenderErrorReason::ParamNotFoundForIndex("version", 0))?;
                let Some(versions) = &versions else {
                    return Err(RenderError::from(RenderErrorReason::Other(format!(
                        "`version` helper used for {package:?}, but the release has no versions map"
                    ))));
                };
                let version = versions.get(package).ok_or_else(|| {
                    RenderErrorReason::Other(format!(
                        "unknown package {package:?} in the versions map"
                    ))
                })?;
                out.write(version)?;
                Ok(())
            },
        ),
    );
    engine
}

/// Handlebars' `if`/`unless`, except that a variable that is not set is an error (like any
/// other unknown variable in strict mode), not "false".
#[derive(Clone, Copy)]
struct StrictIf {
    positive: bool,
}

impl HelperDef for StrictIf {
    fn call<'reg: 'rc, 'rc>(
        &self,
        helper: &Helper<'rc>,
        registry: &'reg Handlebars<'reg>,
        context: &'rc Context,
        render_context: &mut HbsRenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let name = if self.positive { "if" } else { "unless" };
        let param = helper
            .param(0)
            .ok_or(RenderErrorReason::ParamNotFoundForIndex(name, 0))?;
        if param.is_value_missing() {
            return Err(RenderErrorReason::MissingVariable(param.relative_path().cloned()).into());
        }
        let include_zero = helper
            .hash_get("includeZero")
            .and_then(|v| v.value().as_bool())
            .unwrap_or(false);
        let truthy = param.value().is_truthy(include_zero) == self.positive;
        match if truthy {
            helper.template()
        } else {
            helper.inverse()
        } {
            Some(template) => template.render(registry, context, render_context, out),
            None => Ok(()),
        }
    }
}

fn render_error(path: &RelPath, error: &RenderError) -> Error {
    let message = match error.reason() {
        RenderErrorReason::MissingVariable(Some(name)) => {
            format!("unknown variable `{name}` (set it with --set {name}=VALUE)")
        }
        RenderErrorReason::TemplateError(template) => {
            let message = template.reason().to_string();
            if let Some((line, column)) = template.pos() {
                return Error::Render {
                    path: path.to_string(),
                    line,
                    column,
                    message,
                };
            }
            message
        }
        other => other.to_string(),
    };
    match (error.line_no, error.column_no) {
        (Some(line), Some(column)) => Error::Render {
            path: path.to_string(),
            line,
            column,
            message,
        },
        _ => Error::RenderNoPosition {
            path: path.to_string(),
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tree(files: &[(&str, &str)]) -> Tree {
        files
            .iter()
            .map(|(p, c)| (RelPath::new(*p).unwrap(), FileEntry::regular(c.as_bytes())))
            .collect()
    }

    fn values(pairs: &[(&str, &str)]) -> Values {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect()
    }

    #[test]
    fn renders_hbs_with_values_and_versions_and_copies_the_rest() {
        let template = tree(&[
            (
                "package.json.hbs",
                "{\"name\": \"{{name}}\", \"cli\": \"^{{version '@acme/cli'}}\"}\n",
            ),
            ("raw.txt", "{{left as is}}"),
        ]);
        let versions: BTreeMap<_, _> = [("@acme/cli".to_string(), "1.2.3".to_string())].into();
        let values = values(&[("name", "<shop>")]);
        let out = render(
            &template,
            RenderContext {
                values: &values,
                versions: Some(&versions),
            },
        )
        .unwrap();
        let package = out.get(&RelPath::new("package.json").unwrap()).unwrap();
        assert_eq!(
            &*package.content,
            b"{\"name\": \"<shop>\", \"cli\": \"^1.2.3\"}\n"
        );
        assert_eq!(
            &*out.get(&RelPath::new("raw.txt").unwrap()).unwrap().content,
            b"{{left as is}}"
        );
    }

    #[test]
    fn unknown_variable_names_file_and_line() {
        let template = tree(&[("a/b.yaml.hbs", "first\nname: {{nmae}}\n")]);
        let error = render(
            &template,
            RenderContext {
                values: &Values::new(),
                versions: None,
            },
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            "a/b.yaml.hbs:2:7: unknown variable `nmae` (set it with --set nmae=VALUE)"
        );
    }

    #[test]
    fn if_and_unless_on_an_unknown_variable_name_file_and_line() {
        let values = values(&[("name", "shop"), ("empty", "")]);
        let context = RenderContext {
            values: &values,
            versions: None,
        };
        let template = tree(&[(
            "ok.hbs",
            "{{#if name}}a{{/if}}{{#unless empty}}b{{else}}c{{/unless}}{{#if false}}d{{/if}}",
        )]);
        let out = render(&template, context).unwrap();
        assert_eq!(
            &*out.get(&RelPath::new("ok").unwrap()).unwrap().content,
            b"ab"
        );
        for (file, text) in [
            ("if.hbs", "x\n{{#if nmae}}on{{/if}}\n"),
            (
                "unless.hbs",
                "x\n  {{#unless nmae}}off{{else}}on{{/unless}}\n",
            ),
        ] {
            let error = render(&tree(&[(file, text)]), context)
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with(&format!("{file}:2:"))
                    && error.ends_with("unknown variable `nmae` (set it with --set nmae=VALUE)"),
                "{error}"
            );
        }
    }

    #[test]
    fn every_failing_file_is_listed_not_only_the_first() {
        let template = tree(&[
            ("a.txt.hbs", "{{one}}\n"),
            ("fine.txt.hbs", "{{name}}\n"),
            ("z/b.txt.hbs", "x\n{{two}}\n"),
        ]);
        let values = Values::from_iter([("name".to_string(), "shop".into())]);
        let error = render(
            &template,
            RenderContext {
                values: &values,
                versions: None,
            },
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            "2 template files could not be rendered:\n  \
             a.txt.hbs:1:1: unknown variable `one` (set it with --set one=VALUE)\n  \
             z/b.txt.hbs:2:1: unknown variable `two` (set it with --set two=VALUE)"
        );
    }

    #[test]
    fn symlinks_are_copied_never_rendered_and_never_point_outside() {
        let link = |target: &str| FileEntry::new(FileMode::Symlink, target.as_bytes());
        let context = RenderContext {
            values: &Values::new(),
            versions: None,
        };
        let template: Tree = [
            (RelPath::new("a/link.hbs").unwrap(), link("../{{name}}")),
            (RelPath::new("a/up").unwrap(), link("../b")),
        ]
        .into_iter()
        .collect();
        let out = render(&template, context).unwrap();
        assert_eq!(out, template, "links copied as they are, names kept");
        for target in ["/etc/passwd", "../../outside", "x/../../.."] {
            let template: Tree = [(RelPath::new("a/l").unwrap(), link(target))]
                .into_iter()
                .collect();
            let error = render(&template, context).unwrap_err();
            assert!(
                matches!(error, Error::LinkOutside { .. }),
                "{target}: {error}"
            );
            assert_eq!(
                error.to_string(),
                format!("template symlink a/l points outside the app ({target})")
            );
        }
    }

    #[test]
    fn unknown_package_and_malformed_template_are_errors() {
        let versions = BTreeMap::new();
        let template = tree(&[("v.hbs", "{{version 'nope'}}")]);
        let error = render(
            &template,
            RenderContext {
                values: &Values::new(),
                versions: Some(&versions),
            },
        )
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("v.hbs:1:"), "{error}");
        assert!(error.contains("unknown package \"nope\""), "{error}");
        let template = tree(&[("bad.hbs", "ok\n{{#if}}\n")]);
        let error = render(
            &template,
            RenderContext {
                values: &Values::new(),
                versions: None,
            },
        )
        .unwrap_err()
        .to_string();
        // Handlebars reports an unclosed block where the file ends.
        assert!(
            error.starts_with("bad.hbs:3:1: invalid handlebars syntax"),
            "{error}"
        );
    }
}
