//! Import declarations as sets of names per module.
//!
//! A declaration's names (default, `* as`, each `{ }` specifier with its `type` and alias) are
//! elements of its group: the module and whether the declaration is `import type`. Per group,
//! the merged set is the app's elements minus those upstream removed, then upstream's new ones
//! in upstream's order. The app's block is edited in place: its comments, order and layout stay.

use std::ops::Range;

use tree_sitter::Node;

use super::syntax::{Parsed, children, line_end, named_children, whole_lines};

/// Which declarations share a set of names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Group {
    pub module: String,
    pub type_only: bool,
}

/// One name a declaration brings in (or the module itself, for `import 'x'`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Element {
    SideEffect,
    Default(String),
    Namespace(String),
    /// A `{ }` specifier: its text with blanks collapsed (`type A as B`), and the local name.
    Named {
        text: String,
        local: String,
    },
    /// A form this merge does not rewrite (`import x = require('y')`): its text.
    Other {
        text: String,
        local: Option<String>,
    },
}

impl Element {
    /// The name the element binds in the file.
    pub(crate) fn local(&self) -> Option<&str> {
        match self {
            Element::SideEffect => None,
            Element::Default(name) | Element::Namespace(name) => Some(name),
            Element::Named { local, .. } => Some(local),
            Element::Other { local, .. } => local.as_deref(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Element::SideEffect => "the module itself".to_string(),
            Element::Default(name) => format!("{name} (default)"),
            Element::Namespace(name) => format!("* as {name}"),
            Element::Named { text, .. } => text.clone(),
            Element::Other { text, .. } => text.clone(),
        }
    }
}

/// One import declaration.
#[derive(Debug, Clone)]
pub(crate) struct Import {
    pub group: Group,
    pub elements: Vec<Element>,
    /// The statement's bytes.
    pub range: Range<usize>,
    /// The bytes of its names (between `import [type]` and `from`), when it has any.
    clause: Option<Range<usize>>,
    /// How its `{ }` list is laid out, when it has one.
    layout: Option<Layout>,
    /// The module's quote character.
    quote: char,
    /// Whether the statement ends with `;`.
    semicolon: bool,
}

/// The layout of a `{ }` list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Layout {
    /// One specifier per line, with this indentation; `None`: all on one line.
    indent: Option<String>,
    trailing_comma: bool,
}

impl Layout {
    const ONE_LINE: Layout = Layout {
        indent: None,
        trailing_comma: false,
    };
}

/// Every top-level import declaration of a parsed file, in order.
pub(crate) fn declarations(parsed: &Parsed<'_>) -> Vec<Import> {
    named_children(parsed.root())
        .into_iter()
        .filter(|node| node.kind() == "import_statement")
        .filter_map(|node| declaration(parsed, node))
        .collect()
}

fn declaration(parsed: &Parsed<'_>, node: Node<'_>) -> Option<Import> {
    let nodes = children(node);
    let type_only = nodes
        .iter()
        .any(|child| !child.is_named() && matches!(child.kind(), "type" | "typeof"));
    let semicolon = nodes.last().is_some_and(|last| last.kind() == ";");
    let mut source = node.child_by_field_name("source");
    let mut elements = Vec::new();
    let mut clause = None;
    let mut layout = None;
    for child in &nodes {
        match child.kind() {
            "import_clause" => {
                clause = Some(child.byte_range());
                for part in named_children(*child) {
                    match part.kind() {
                        "identifier" => {
                            elements.push(Element::Default(parsed.text_of(part).into()))
                        }
                        "namespace_import" => {
                            let name = named_children(part)
                                .into_iter()
                                .find(|n| n.kind() == "identifier")?;
                            elements.push(Element::Namespace(parsed.text_of(name).into()));
                        }
                        "named_imports" => {
                            layout = Some(layout_of(parsed, part));
                            for specifier in named_children(part) {
                                if specifier.kind() != "import_specifier" {
                                    continue; // comments
                                }
                                let local = specifier
                                    .child_by_field_name("alias")
                                    .or_else(|| specifier.child_by_field_name("name"))?;
                                elements.push(Element::Named {
                                    text: collapse(parsed.text_of(specifier)),
                                    local: parsed.text_of(local).into(),
                                });
                            }
                        }
                        _ => return None,
                    }
                }
            }
            "import_require_clause" => {
                source = child.child_by_field_name("source");
                let local = named_children(*child)
                    .into_iter()
                    .find(|n| n.kind() == "identifier")
                    .map(|n| parsed.text_of(n).to_string());
                elements.push(Element::Other {
                    text: collapse(parsed.text_of(node)),
                    local,
                });
            }
            _ => {}
        }
    }
    let source = parsed.text_of(source?);
    let quote = source.chars().next().unwrap_or('\'');
    let module = source.trim_matches(['\'', '"']).to_string();
    if clause.is_none() && elements.is_empty() {
        elements.push(Element::SideEffect);
    }
    Some(Import {
        group: Group { module, type_only },
        elements,
        range: node.byte_range(),
        clause,
        layout,
        quote,
        semicolon,
    })
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn layout_of(parsed: &Parsed<'_>, named: Node<'_>) -> Layout {
    let text = parsed.text_of(named);
    let specifiers: Vec<Node<'_>> = named_children(named)
        .into_iter()
        .filter(|n| n.kind() == "import_specifier")
        .collect();
    let indent = text.contains('\n').then(|| {
        specifiers.first().map_or_else(
            || "  ".to_string(),
            |first| {
                let start = super::syntax::line_start(parsed.text, first.start_byte());
                parsed.text[start..first.start_byte()].to_string()
            },
        )
    });
    let trailing_comma = specifiers.last().is_some_and(|last| {
        parsed.text[last.end_byte()..named.end_byte()]
            .trim_start()
            .starts_with(',')
    });
    Layout {
        indent,
        trailing_comma,
    }
}

/// A file's imports and the block of lines that holds them.
pub(crate) struct Side<'a> {
    text: &'a str,
    pub imports: Vec<Import>,
    /// Whole lines from the first import to the last; only imports and comments in between.
    pub block: Range<usize>,
}

impl<'a> Side<'a> {
    /// `None` when the file has no imports, or other statements sit between them.
    pub(crate) fn of(parsed: &Parsed<'a>) -> Option<Self> {
        let statements = named_children(parsed.root());
        let first = statements
            .iter()
            .position(|n| n.kind() == "import_statement")?;
        let last = statements
            .iter()
            .rposition(|n| n.kind() == "import_statement")?;
        if statements[first..=last]
            .iter()
            .any(|n| !matches!(n.kind(), "import_statement" | "comment"))
        {
            return None;
        }
        let start = whole_lines(parsed.text, statements[first].byte_range())?.start;
        let end = whole_lines(parsed.text, statements[last].byte_range())?.end;
        Some(Self {
            text: parsed.text,
            imports: declarations(parsed),
            block: start..end,
        })
    }

    pub(crate) fn block_text(&self) -> &'a str {
        &self.text[self.block.clone()]
    }
}

/// Groups and their elements, in the order of first appearance.
pub(crate) fn grouped(imports: &[Import]) -> Vec<(Group, Vec<Element>)> {
    let mut groups: Vec<(Group, Vec<Element>)> = Vec::new();
    for import in imports {
        let index = match groups.iter().position(|(g, _)| *g == import.group) {
            Some(index) => index,
            None => {
                groups.push((import.group.clone(), Vec::new()));
                groups.len() - 1
            }
        };
        for element in &import.elements {
            if !groups[index].1.contains(element) {
                groups[index].1.push(element.clone());
            }
        }
    }
    groups
}

/// The three-way merge of the imports as sets: per group, the app's elements minus those
/// upstream removed, then upstream's additions; groups in the app's order, upstream's new
/// groups after the group they follow upstream.
pub(crate) fn merged_groups(
    base: &[Import],
    ours: &[Import],
    theirs: &[Import],
) -> Vec<(Group, Vec<Element>)> {
    let (base, ours, theirs) = (grouped(base), grouped(ours), grouped(theirs));
    let find = |groups: &[(Group, Vec<Element>)], group: &Group| -> Vec<Element> {
        groups
            .iter()
            .find(|(g, _)| g == group)
            .map(|(_, e)| e.clone())
            .unwrap_or_default()
    };
    let mut merged: Vec<(Group, Vec<Element>)> = Vec::new();
    for (group, elements) in &ours {
        let (b, t) = (find(&base, group), find(&theirs, group));
        merged.push((group.clone(), merge_elements(&b, elements, &t)));
    }
    for (index, (group, elements)) in theirs.iter().enumerate() {
        if merged.iter().any(|(g, _)| g == group) {
            continue;
        }
        let b = find(&base, group);
        let added = merge_elements(&b, &[], elements);
        // After the group it follows upstream, else first.
        let position = theirs[..index]
            .iter()
            .rev()
            .find_map(|(previous, _)| merged.iter().position(|(g, _)| g == previous))
            .map_or(0, |p| p + 1);
        merged.insert(position, (group.clone(), added));
    }
    merged
}

fn merge_elements(base: &[Element], ours: &[Element], theirs: &[Element]) -> Vec<Element> {
    let mut merged: Vec<Element> = ours
        .iter()
        .filter(|e| !base.contains(e) || theirs.contains(e))
        .cloned()
        .collect();
    for element in theirs {
        if !base.contains(element) && !merged.contains(element) {
            merged.push(element.clone());
        }
    }
    merged
}

/// The merged import block.
pub(crate) struct BlockMerge {
    pub block: String,
    pub decisions: Vec<String>,
}

/// Merges the import blocks as sets, editing the app's block. `None` when the result is not one
/// this merge can write (two default names for one module, a form it does not rewrite).
pub(crate) fn merge(base: &Side<'_>, ours: &Side<'_>, theirs: &Side<'_>) -> Option<BlockMerge> {
    let merged = merged_groups(&base.imports, &ours.imports, &theirs.imports);
    let (base_groups, ours_groups, theirs_groups) = (
        grouped(&base.imports),
        grouped(&ours.imports),
        grouped(&theirs.imports),
    );
    let find = |groups: &[(Group, Vec<Element>)], group: &Group| -> Vec<Element> {
        groups
            .iter()
            .find(|(g, _)| g == group)
            .map(|(_, e)| e.clone())
            .unwrap_or_default()
    };
    let offset = ours.block.start;
    let block = ours.block_text();
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    let mut decisions = Vec::new();
    for (group, elements) in &merged {
        let ours_elements = find(&ours_groups, group);
        if *elements == ours_elements {
            continue;
        }
        if elements
            .iter()
            .filter(|e| matches!(e, Element::Default(_)))
            .count()
            > 1
            || elements
                .iter()
                .filter(|e| matches!(e, Element::Namespace(_)))
                .count()
                > 1
        {
            return None;
        }
        let base_elements = find(&base_groups, group);
        let theirs_elements = find(&theirs_groups, group);
        if base_elements != ours_elements && base_elements != theirs_elements {
            decisions.push(describe_decision(group, &ours_elements, elements));
        }
        let declarations: Vec<&Import> =
            ours.imports.iter().filter(|i| i.group == *group).collect();
        if declarations.is_empty() {
            // A group only upstream has: its declarations as upstream wrote them if they hold
            // exactly the merged names, else one written anew.
            let upstream: Vec<&Import> = theirs
                .imports
                .iter()
                .filter(|i| i.group == *group)
                .collect();
            let text = if grouped_elements(&upstream) == *elements {
                upstream
                    .iter()
                    .map(|i| format!("{}\n", &theirs.text[i.range.clone()]))
                    .collect()
            } else {
                let style = upstream.first().copied();
                format!("{}\n", render_new(group, elements, style)?)
            };
            let at = insertion_point(&merged, group, ours, offset);
            edits.push((at..at, text));
            continue;
        }
        // Keep what survives in each of the app's declarations; new names join the first that
        // has a `{ }` list, or a declaration of their own after the group's last.
        let mut placed_new = false;
        for declaration in &declarations {
            let mut kept: Vec<Element> = declaration
                .elements
                .iter()
                .filter(|e| elements.contains(e))
                .cloned()
                .collect();
            if !placed_new && declaration.layout.is_some() {
                kept.extend(
                    new_elements(elements, &ours_elements)
                        .filter(|e| matches!(e, Element::Named { .. }))
                        .cloned(),
                );
                placed_new = true;
            }
            if kept == declaration.elements {
                continue;
            }
            let range = declaration.range.start - offset..declaration.range.end - offset;
            if kept.is_empty() {
                let lines = whole_lines(block, range.clone()).unwrap_or(range);
                edits.push((lines, String::new()));
                continue;
            }
            let rewritten = rewrite(ours.text, declaration, &kept)?;
            edits.push((range, rewritten));
        }
        let unplaced: Vec<Element> = new_elements(elements, &ours_elements)
            .filter(|e| !placed_new || !matches!(e, Element::Named { .. }))
            .cloned()
            .collect();
        if !unplaced.is_empty() {
            let last = declarations.last()?;
            let at = line_end(block, last.range.end - offset);
            edits.push((
                at..at,
                format!("{}\n", render_new(group, &unplaced, Some(last))?),
            ));
        }
    }
    // Written lines end as the app's do.
    if block.contains("\r\n") {
        for (_, text) in &mut edits {
            *text = text.replace("\r\n", "\n").replace('\n', "\r\n");
        }
    }
    Some(BlockMerge {
        block: apply(block, edits),
        decisions,
    })
}

fn new_elements<'e>(
    merged: &'e [Element],
    ours: &'e [Element],
) -> impl Iterator<Item = &'e Element> {
    merged.iter().filter(|e| !ours.contains(e))
}

fn grouped_elements(imports: &[&Import]) -> Vec<Element> {
    let mut out: Vec<Element> = Vec::new();
    for element in imports.iter().flat_map(|i| &i.elements) {
        if !out.contains(element) {
            out.push(element.clone());
        }
    }
    out
}

/// Where a group only upstream has goes in the app's block: after the last declaration of the
/// group before it in the merged order, else at the block's start.
fn insertion_point(
    merged: &[(Group, Vec<Element>)],
    group: &Group,
    ours: &Side<'_>,
    offset: usize,
) -> usize {
    let index = merged.iter().position(|(g, _)| g == group).unwrap_or(0);
    merged[..index]
        .iter()
        .rev()
        .find_map(|(previous, _)| ours.imports.iter().rev().find(|i| i.group == *previous))
        .map_or(0, |declaration| {
            line_end(ours.block_text(), declaration.range.end - offset)
        })
}

fn describe_decision(group: &Group, ours: &[Element], merged: &[Element]) -> String {
    let list = |elements: Vec<&Element>| {
        elements
            .iter()
            .map(|e| e.describe())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let added: Vec<&Element> = merged.iter().filter(|e| !ours.contains(e)).collect();
    let removed: Vec<&Element> = ours.iter().filter(|e| !merged.contains(e)).collect();
    let mut parts = Vec::new();
    if !added.is_empty() {
        parts.push(format!("added upstream's {}", list(added)));
    }
    if !removed.is_empty() {
        parts.push(format!("removed {} (upstream removed them)", list(removed)));
    }
    format!(
        "imports from '{}'{} merged as a set (your names in your order; {})",
        group.module,
        if group.type_only { " (type-only)" } else { "" },
        parts.join("; ")
    )
}

/// The declaration with its names replaced by `elements`, keeping everything around them.
fn rewrite(text: &str, declaration: &Import, elements: &[Element]) -> Option<String> {
    let clause = declaration.clause.clone()?;
    let layout = declaration.layout.clone().unwrap_or(Layout::ONE_LINE);
    let before = &text[declaration.range.start..clause.start];
    let after = &text[clause.end..declaration.range.end];
    let written = format!("{before}{}{after}", render_clause(elements, &layout)?);
    Some(fit(written, &layout, |layout| {
        render_clause(elements, layout).map(|clause| format!("{before}{clause}{after}"))
    }))
}

/// A new declaration of `elements`, in the style of `like` (quotes, semicolon, list layout).
fn render_new(group: &Group, elements: &[Element], like: Option<&Import>) -> Option<String> {
    let quote = like.map_or('\'', |i| i.quote);
    let semicolon = if like.is_none_or(|i| i.semicolon) {
        ";"
    } else {
        ""
    };
    let layout = like
        .and_then(|i| i.layout.clone())
        .unwrap_or(Layout::ONE_LINE);
    let write = |layout: &Layout| -> Option<String> {
        let keyword = if group.type_only {
            "import type"
        } else {
            "import"
        };
        let module = format!("{quote}{}{quote}{semicolon}", group.module);
        if elements == [Element::SideEffect] {
            return Some(format!("import {module}"));
        }
        Some(format!(
            "{keyword} {} from {module}",
            render_clause(elements, layout)?
        ))
    };
    let written = write(&layout)?;
    Some(fit(written, &layout, write))
}

/// Prettier's rule: a one-line list longer than 80 columns goes one name per line.
fn fit(written: String, layout: &Layout, write: impl Fn(&Layout) -> Option<String>) -> String {
    if layout.indent.is_some() || written.lines().all(|line| line.len() <= 80) {
        return written;
    }
    let broken = Layout {
        indent: Some("  ".into()),
        trailing_comma: true,
    };
    write(&broken).unwrap_or(written)
}

fn render_clause(elements: &[Element], layout: &Layout) -> Option<String> {
    let mut parts = Vec::new();
    let mut named = Vec::new();
    for element in elements {
        match element {
            Element::Default(name) => parts.insert(0, name.clone()),
            Element::Namespace(name) => parts.push(format!("* as {name}")),
            Element::Named { text, .. } => named.push(text.as_str()),
            Element::SideEffect | Element::Other { .. } => return None,
        }
    }
    if !named.is_empty() {
        parts.push(match &layout.indent {
            None => format!("{{ {} }}", named.join(", ")),
            Some(indent) => {
                let mut list = String::from("{\n");
                for (index, name) in named.iter().enumerate() {
                    let comma = if index + 1 < named.len() || layout.trailing_comma {
                        ","
                    } else {
                        ""
                    };
                    list.push_str(&format!("{indent}{name}{comma}\n"));
                }
                list.push('}');
                list
            }
        });
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Applies non-overlapping edits (insertions are empty ranges).
fn apply(text: &str, mut edits: Vec<(Range<usize>, String)>) -> String {
    edits.sort_by_key(|(range, _)| (range.start, range.end));
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (range, replacement) in edits {
        if range.start < at {
            continue; // overlapping: cannot happen for distinct declarations
        }
        out.push_str(&text[at..range.start]);
        out.push_str(&replacement);
        at = range.end;
    }
    out.push_str(&text[at..]);
    out
}
