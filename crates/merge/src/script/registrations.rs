//! Things a file registers by a literal, which must not land twice:
//! - a top-level call statement with a string among its arguments
//!   (`backend.add(import('@backstage/plugin-x-backend'))`);
//! - an element of an array literal (`createApp({ features: [catalogPlugin] })`), per array;
//! - a JSX element with at least one literal prop (`<Route path="/x" … />`), per parent element,
//!   known by its tag and literal props.

use std::collections::HashMap;
use std::ops::Range;

use tree_sitter::Node;

use super::syntax::{Dialect, Parsed, descendants, named_children, normalized, whole_lines};

/// One registration in a file.
#[derive(Debug, Clone)]
pub(crate) struct Registration {
    /// Where it is: the kind of list and its name (`statements`, `array features`, `<FlatRoutes>`).
    pub context: String,
    /// What it registers: the same key twice in one list is a duplicate.
    pub key: String,
    /// Its whole text, normalized: equal keys with equal texts are the same registration.
    pub exact: String,
    /// The list it belongs to (a node id): duplicates are counted per list.
    container: usize,
    pub range: Range<usize>,
    /// A short form for messages.
    pub label: String,
}

/// Every registration of a parsed file, in document order.
pub(crate) fn registrations(parsed: &Parsed<'_>) -> Vec<Registration> {
    let mut out = Vec::new();
    let root = parsed.root();
    for statement in named_children(root) {
        if is_registration_statement(statement) {
            let text = parsed.text_of(statement);
            out.push(Registration {
                context: "statements".into(),
                key: normalized(text),
                exact: normalized(text),
                container: root.id(),
                range: statement.byte_range(),
                label: label(text),
            });
        }
    }
    for node in descendants(root) {
        match node.kind() {
            "array" => {
                let context = format!("array {}", array_name(parsed, node));
                for element in named_children(node) {
                    if !matches!(
                        element.kind(),
                        "identifier" | "member_expression" | "call_expression" | "string"
                    ) {
                        continue;
                    }
                    let text = parsed.text_of(element);
                    out.push(Registration {
                        context: context.clone(),
                        key: normalized(text),
                        exact: normalized(text),
                        container: node.id(),
                        range: element.byte_range(),
                        label: label(text),
                    });
                }
            }
            "jsx_element" => {
                let context = format!("<{}>", jsx_tag(parsed, node).unwrap_or_default());
                for child in named_children(node) {
                    let Some(key) = jsx_key(parsed, child) else {
                        continue;
                    };
                    out.push(Registration {
                        context: context.clone(),
                        label: key.clone(),
                        key,
                        exact: normalized(parsed.text_of(child)),
                        container: node.id(),
                        range: child.byte_range(),
                    });
                }
            }
            _ => {}
        }
    }
    out
}

fn label(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let one_line = one_line.replace("( ", "(").replace(", )", ")");
    match one_line.char_indices().nth(100) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

/// `expr(args…);` at the top level with a string literal somewhere in its arguments.
fn is_registration_statement(statement: Node<'_>) -> bool {
    if statement.kind() != "expression_statement" {
        return false;
    }
    let Some(call) = named_children(statement).into_iter().next() else {
        return false;
    };
    if call.kind() != "call_expression" {
        return false;
    }
    let Some(arguments) = call.child_by_field_name("arguments") else {
        return false;
    };
    descendants(arguments)
        .iter()
        .any(|n| matches!(n.kind(), "string" | "template_string"))
}

/// The name an array is known by: its property, variable, or the function it is passed to.
fn array_name(parsed: &Parsed<'_>, array: Node<'_>) -> String {
    let Some(parent) = array.parent() else {
        return String::new();
    };
    match parent.kind() {
        "pair" => parent
            .child_by_field_name("key")
            .map(|k| parsed.text_of(k).to_string()),
        "variable_declarator" => parent
            .child_by_field_name("name")
            .map(|k| parsed.text_of(k).to_string()),
        "arguments" => parent
            .parent()
            .and_then(|call| call.child_by_field_name("function"))
            .map(|f| format!("{}()", parsed.text_of(f))),
        _ => None,
    }
    .unwrap_or_default()
}

fn jsx_tag(parsed: &Parsed<'_>, element: Node<'_>) -> Option<String> {
    let opening = match element.kind() {
        "jsx_element" => element.child_by_field_name("open_tag")?,
        "jsx_self_closing_element" => element,
        _ => return None,
    };
    Some(
        parsed
            .text_of(opening.child_by_field_name("name")?)
            .to_string(),
    )
}

/// `<Tag a="x" b="y">`, with its literal props sorted; `None` without a literal prop.
fn jsx_key(parsed: &Parsed<'_>, element: Node<'_>) -> Option<String> {
    let opening = match element.kind() {
        "jsx_element" => element.child_by_field_name("open_tag")?,
        "jsx_self_closing_element" => element,
        _ => return None,
    };
    let tag = jsx_tag(parsed, element)?;
    let mut literals: Vec<String> = named_children(opening)
        .into_iter()
        .filter(|a| a.kind() == "jsx_attribute")
        .filter_map(|attribute| {
            let parts = named_children(attribute);
            let value = parts.get(1)?;
            (value.kind() == "string").then(|| {
                format!(
                    "{}={}",
                    parsed.text_of(parts[0]),
                    normalized(parsed.text_of(*value))
                )
            })
        })
        .collect();
    if literals.is_empty() {
        return None;
    }
    literals.sort();
    Some(format!("<{tag} {}>", literals.join(" ")))
}

/// Per context and key, the most times one list holds it.
fn counts(registrations: &[Registration]) -> HashMap<(&str, &str), usize> {
    let mut per_list: HashMap<(usize, &str, &str), usize> = HashMap::new();
    for r in registrations {
        *per_list
            .entry((r.container, r.context.as_str(), r.key.as_str()))
            .or_default() += 1;
    }
    let mut out: HashMap<(&str, &str), usize> = HashMap::new();
    for ((_, context, key), count) in per_list {
        let most = out.entry((context, key)).or_default();
        *most = (*most).max(count);
    }
    out
}

/// Registrations of `merged` that one list holds more often than either side's did: the later
/// ones of each such key.
pub(crate) fn duplicated<'m>(
    merged: &'m [Registration],
    ours: &[Registration],
    theirs: &[Registration],
) -> Vec<(&'m Registration, &'m Registration)> {
    let (ours, theirs) = (counts(ours), counts(theirs));
    let mut seen: HashMap<(usize, &str, &str), (&Registration, usize)> = HashMap::new();
    let mut out = Vec::new();
    for r in merged {
        let key = (r.context.as_str(), r.key.as_str());
        let allowed = ours
            .get(&key)
            .copied()
            .unwrap_or(0)
            .max(theirs.get(&key).copied().unwrap_or(0))
            .max(1);
        let entry = seen.entry((r.container, key.0, key.1)).or_insert((r, 0));
        entry.1 += 1;
        if entry.1 > allowed {
            out.push((entry.0, r));
        }
    }
    out
}

/// The merged text with every registration both sides added kept once (the first), and what
/// was removed; `None` when nothing is duplicated or a duplicate differs beyond its key (left
/// for the check to report).
pub(crate) struct Deduplicated {
    pub content: String,
    pub decisions: Vec<String>,
}

pub(crate) fn deduplicate(
    dialect: Dialect,
    [ours, theirs]: [&Parsed<'_>; 2],
    merged: &str,
) -> Option<Deduplicated> {
    let parsed = Parsed::new(dialect, merged)?;
    let all = registrations(&parsed);
    let duplicates = duplicated(&all, &registrations(ours), &registrations(theirs));
    if duplicates.is_empty() || duplicates.iter().any(|(first, r)| first.exact != r.exact) {
        return None;
    }
    let mut removals: Vec<Range<usize>> =
        duplicates.iter().map(|(_, r)| removal(merged, r)).collect();
    removals.sort_by_key(|r| r.start);
    let mut content = String::with_capacity(merged.len());
    let mut at = 0;
    for range in removals {
        if range.start < at {
            return None;
        }
        content.push_str(&merged[at..range.start]);
        at = range.end;
    }
    content.push_str(&merged[at..]);
    let decisions = duplicates
        .iter()
        .map(|(first, r)| {
            format!(
                "{} was added on both sides: kept once (line {}), the copy at line {} dropped",
                r.label,
                parsed.line_at(first.range.start),
                parsed.line_at(r.range.start)
            )
        })
        .collect();
    Some(Deduplicated { content, decisions })
}

/// The bytes to delete for one registration: its whole lines when it has them to itself (with a
/// trailing comma), else the node with the separator after (or before) it.
fn removal(text: &str, registration: &Registration) -> Range<usize> {
    let range = registration.range.clone();
    if let Some(lines) = whole_lines(text, range.clone()) {
        return lines;
    }
    let after = &text[range.end..];
    let separator = after.len() - after.trim_start_matches([',', ' ', '\t']).len();
    if after.trim_start().starts_with(',') {
        return range.start..range.end + separator;
    }
    let before = &text[..range.start];
    let trimmed = before.trim_end_matches([' ', '\t']);
    match trimmed.strip_suffix(',') {
        Some(kept) => kept.len()..range.end,
        None => range,
    }
}

/// When both sides inserted lines at one place (`base` empty) and both insertions are lists of
/// the same kind — top-level registration statements, JSX elements, or array elements each
/// ending with a comma; blank lines and `//` comments go with statements and array elements —
/// both are kept: the app's first, then upstream's.
pub(crate) fn union_of_insertions(
    dialect: Dialect,
    base: &[&str],
    ours: &[&str],
    theirs: &[&str],
) -> Option<String> {
    if !base.is_empty() || ours.is_empty() || theirs.is_empty() {
        return None;
    }
    let (ours, theirs) = (ours.concat(), theirs.concat());
    let compatible = match (list_kind(dialect, &ours)?, list_kind(dialect, &theirs)?) {
        (ListKind::Comments, ListKind::Comments) => false,
        (ListKind::Comments, other) | (other, ListKind::Comments) => other != ListKind::JsxElements,
        (ours, theirs) => ours == theirs,
    };
    if !compatible {
        return None;
    }
    let mut union = ours;
    if !union.ends_with('\n') {
        union.push('\n');
    }
    union.push_str(&theirs);
    Some(union)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListKind {
    /// Blank lines and `//` comments: they go with statements or array elements.
    Comments,
    Statements,
    JsxElements,
    ArrayElements,
}

fn list_kind(dialect: Dialect, lines: &str) -> Option<ListKind> {
    if lines
        .lines()
        .map(str::trim)
        .all(|line| line.is_empty() || line.starts_with("//"))
    {
        return Some(ListKind::Comments);
    }
    let statements = Parsed::new(dialect, lines)?;
    if !statements.root().has_error() {
        let nodes = named_children(statements.root());
        if nodes
            .iter()
            .all(|n| n.kind() == "comment" || is_registration_statement(*n))
            && nodes.iter().any(|n| n.kind() != "comment")
        {
            return Some(ListKind::Statements);
        }
    }
    if dialect == Dialect::Tsx {
        let wrapped = format!("<>\n{lines}</>");
        let fragment = Parsed::new(dialect, &wrapped)?;
        if !fragment.root().has_error()
            && let Some(element) = only_expression(&fragment)
            && element.kind() == "jsx_element"
        {
            let children: Vec<Node<'_>> = named_children(element)
                .into_iter()
                .filter(|n| !matches!(n.kind(), "jsx_opening_element" | "jsx_closing_element"))
                .collect();
            let elements = children
                .iter()
                .filter(|n| matches!(n.kind(), "jsx_element" | "jsx_self_closing_element"))
                .count();
            let only_elements = children.iter().all(|n| match n.kind() {
                "jsx_element" | "jsx_self_closing_element" => true,
                "jsx_text" => fragment.text_of(*n).trim().is_empty(),
                _ => false,
            });
            if elements > 0 && only_elements {
                return Some(ListKind::JsxElements);
            }
        }
    }
    let each_ends_with_comma = lines
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with("//"))
        .is_some_and(|last| last.ends_with(','));
    if each_ends_with_comma {
        let wrapped = format!("[\n{lines}];");
        let array = Parsed::new(dialect, &wrapped)?;
        if !array.root().has_error()
            && let Some(node) = only_expression(&array)
            && node.kind() == "array"
            && named_children(node).iter().any(|n| n.kind() != "comment")
        {
            return Some(ListKind::ArrayElements);
        }
    }
    None
}

/// The expression of a text that is one expression statement.
fn only_expression<'t>(parsed: &'t Parsed<'_>) -> Option<Node<'t>> {
    let statements = named_children(parsed.root());
    let [statement] = statements.as_slice() else {
        return None;
    };
    if statement.kind() != "expression_statement" {
        return None;
    }
    named_children(*statement).into_iter().next()
}
