//! Parsing with tree-sitter, and the few node helpers the merge needs.

use tree_sitter::{Node, Parser, Tree};
use uplift_tree::RelPath;

/// The grammar a script file is parsed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `.ts`, `.mts`, `.cts`: TypeScript without JSX (`<T>x` is a cast there).
    TypeScript,
    /// `.tsx`, and JavaScript (`.js`, `.jsx`, `.mjs`, `.cjs`): the TSX grammar parses JavaScript
    /// with JSX as well.
    Tsx,
}

impl Dialect {
    pub(crate) fn of(path: &RelPath) -> Option<Self> {
        let (_, extension) = path.file_name().rsplit_once('.')?;
        match extension {
            "ts" | "mts" | "cts" => Some(Dialect::TypeScript),
            "tsx" | "js" | "jsx" | "mjs" | "cjs" => Some(Dialect::Tsx),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Dialect::TypeScript => "TypeScript",
            Dialect::Tsx => "TSX/JavaScript",
        }
    }
}

/// A parsed text.
pub(crate) struct Parsed<'a> {
    pub text: &'a str,
    pub tree: Tree,
}

impl<'a> Parsed<'a> {
    /// `None` only if tree-sitter itself fails (it parses any text, marking errors in the tree).
    pub(crate) fn new(dialect: Dialect, text: &'a str) -> Option<Self> {
        let language = match dialect {
            Dialect::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT,
            Dialect::Tsx => tree_sitter_typescript::LANGUAGE_TSX,
        };
        let mut parser = Parser::new();
        parser.set_language(&language.into()).ok()?;
        let tree = parser.parse(text, None)?;
        Some(Self { text, tree })
    }

    pub(crate) fn root(&self) -> Node<'_> {
        self.tree.root_node()
    }

    pub(crate) fn text_of(&self, node: Node<'_>) -> &'a str {
        self.text.get(node.byte_range()).unwrap_or("")
    }

    /// The 1-based line of the first ERROR or MISSING node, if any.
    pub(crate) fn first_error_line(&self) -> Option<usize> {
        let root = self.root();
        if !root.has_error() {
            return None;
        }
        let mut stack = vec![root];
        while let Some(node) = stack.pop() {
            if node.is_error() || node.is_missing() {
                return Some(node.start_position().row + 1);
            }
            if node.has_error() {
                let mut children = children(node);
                children.reverse();
                stack.extend(children);
            }
        }
        Some(root.start_position().row + 1)
    }

    /// The 1-based line at byte `offset`.
    pub(crate) fn line_at(&self, offset: usize) -> usize {
        self.text
            .get(..offset)
            .map_or(0, |before| before.matches('\n').count())
            + 1
    }
}

pub(crate) fn children(node: Node<'_>) -> Vec<Node<'_>> {
    let mut cursor = node.walk();
    node.children(&mut cursor).collect()
}

pub(crate) fn named_children(node: Node<'_>) -> Vec<Node<'_>> {
    let mut cursor = node.walk();
    node.named_children(&mut cursor).collect()
}

/// Every node under `node` (itself included), in document order.
pub(crate) fn descendants(node: Node<'_>) -> Vec<Node<'_>> {
    let mut out = Vec::new();
    let mut stack = vec![node];
    while let Some(node) = stack.pop() {
        out.push(node);
        let mut children = children(node);
        children.reverse();
        stack.extend(children);
    }
    out
}

/// The start of the line holding `offset`.
pub(crate) fn line_start(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .and_then(|before| before.rfind('\n'))
        .map_or(0, |newline| newline + 1)
}

/// Just after the newline ending the line holding `offset` (or the end of the text).
pub(crate) fn line_end(text: &str, offset: usize) -> usize {
    text.get(offset..)
        .and_then(|after| after.find('\n'))
        .map_or(text.len(), |newline| offset + newline + 1)
}

/// The node's range widened to whole lines, when nothing but blanks shares its lines (and, after
/// it, an optional `,` or `;`); `None` otherwise.
pub(crate) fn whole_lines(
    text: &str,
    range: std::ops::Range<usize>,
) -> Option<std::ops::Range<usize>> {
    let start = line_start(text, range.start);
    let end = line_end(text, range.end);
    let before = text.get(start..range.start)?;
    let after = text.get(range.end..end)?;
    let after = after.trim_start_matches([',', ';']);
    (before.trim().is_empty() && after.trim().is_empty()).then_some(start..end)
}

/// Text with blanks removed, one quote style and no trailing commas or semicolon: two spellings
/// of one statement that prettier would print alike compare equal.
pub(crate) fn normalized(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            c if c.is_whitespace() => {}
            '"' => out.push('\''),
            ')' | ']' | '}' | '>' if out.ends_with(',') => {
                out.pop();
                out.push(c);
            }
            c => out.push(c),
        }
    }
    while out.ends_with([';', ',']) {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_ignores_layout_quotes_and_trailing_commas() {
        assert_eq!(
            normalized("backend.add(\n  import(\"@x/y\"),\n);\n"),
            normalized("backend.add(import('@x/y'));")
        );
        assert_ne!(normalized("a(1)"), normalized("a(2)"));
    }

    #[test]
    fn dialect_by_extension() {
        let of = |name: &str| Dialect::of(&RelPath::new(name).unwrap_or_else(|_| unreachable!()));
        assert_eq!(of("src/index.ts"), Some(Dialect::TypeScript));
        assert_eq!(of("src/App.tsx"), Some(Dialect::Tsx));
        assert_eq!(of(".eslintrc.js"), Some(Dialect::Tsx));
        assert_eq!(of("a.cjs"), Some(Dialect::Tsx));
        assert_eq!(of("package.json"), None);
        assert_eq!(of("Makefile"), None);
    }
}
