//! Source positions of the nodes of a YAML document.
//!
//! `serde_yaml` gives a position only for syntax errors; semantic errors (an unknown `needs`, a
//! bad expression) need the position of values that parsed fine. [`SpanIndex`] replays the
//! document through `saphyr-parser`'s event stream and records, for each path
//! (`stages.build.needs[0]`), where its key and its value start.

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, SpannedEventReceiver};

/// One step of a path into the document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path from the document root, e.g. `stages.build.needs[0]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct YamlPath(pub Vec<Seg>);

impl YamlPath {
    pub fn root() -> Self {
        Self(Vec::new())
    }

    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.into()));
        Self(segs)
    }

    pub fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        Self(segs)
    }

    /// Appends the path reported by `serde_path_to_error`.
    pub fn join_serde(&self, path: &serde_path_to_error::Path) -> Self {
        let mut segs = self.0.clone();
        for seg in path.iter() {
            match seg {
                serde_path_to_error::Segment::Seq { index } => segs.push(Seg::Index(*index)),
                serde_path_to_error::Segment::Map { key } => segs.push(Seg::Key(key.clone())),
                serde_path_to_error::Segment::Enum { .. }
                | serde_path_to_error::Segment::Unknown => {}
            }
        }
        Self(segs)
    }
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for seg in &self.0 {
            match seg {
                Seg::Key(key) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                Seg::Index(index) => write!(f, "[{index}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// A position in the source text: 1-based line and column (in characters), byte offset and
/// byte length of the node's first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
    pub offset: usize,
    pub len: usize,
}

/// Where a node's key and value are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeSpan {
    pub key: Option<Pos>,
    pub value: Pos,
    /// The scalar style, for scalars (used to locate text inside a string).
    pub style: Option<ScalarStyle>,
}

/// Positions of every key and value of a document, by path.
#[derive(Debug, Default)]
pub struct SpanIndex {
    nodes: HashMap<YamlPath, NodeSpan>,
}

impl SpanIndex {
    /// Builds the index; a document the event parser rejects gives an empty index (the syntax
    /// error itself is reported by the typed parse).
    pub fn build(text: &str) -> Self {
        let converter = OffsetConverter::new(text);
        let mut receiver = Receiver {
            converter: &converter,
            stack: Vec::new(),
            nodes: HashMap::new(),
            depth_exceeded: false,
        };
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut receiver, false).is_err() {
            return Self::default();
        }
        Self {
            nodes: receiver.nodes,
        }
    }

    pub fn get(&self, path: &YamlPath) -> Option<&NodeSpan> {
        self.nodes.get(path)
    }

    /// The value position of `path`, or of its nearest ancestor that has one.
    pub fn value_or_ancestor(&self, path: &YamlPath) -> Pos {
        let mut segs = path.0.clone();
        loop {
            if let Some(node) = self.nodes.get(&YamlPath(segs.clone())) {
                return node.value;
            }
            if segs.pop().is_none() {
                return Pos {
                    line: 1,
                    col: 1,
                    offset: 0,
                    len: 0,
                };
            }
        }
    }

    /// The key position of `path` (falling back to its value, then to an ancestor).
    pub fn key_or_value(&self, path: &YamlPath) -> Pos {
        match self.nodes.get(path) {
            Some(NodeSpan { key: Some(key), .. }) => *key,
            Some(node) => node.value,
            None => self.value_or_ancestor(path),
        }
    }
}

/// Converts saphyr's character indexes into byte offsets.
struct OffsetConverter<'a> {
    text: &'a str,
    /// byte offset of each char index (plus one past the end).
    bytes: Vec<usize>,
}

impl<'a> OffsetConverter<'a> {
    fn new(text: &'a str) -> Self {
        let mut bytes: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
        bytes.push(text.len());
        Self { text, bytes }
    }

    fn pos(&self, span: &Span) -> Pos {
        let offset = self
            .bytes
            .get(span.start.index())
            .copied()
            .unwrap_or(self.text.len());
        let end = self
            .bytes
            .get(span.end.index())
            .copied()
            .unwrap_or(self.text.len())
            .max(offset);
        // Only the first line of the node is underlined.
        let slice = self.text.get(offset..end).unwrap_or("");
        let len = slice.find('\n').unwrap_or(slice.len());
        Pos {
            line: span.start.line(),
            col: span.start.col() + 1,
            offset,
            len,
        }
    }
}

enum Frame {
    Map {
        path: YamlPath,
        key: Option<String>,
        key_pos: Option<Pos>,
    },
    Seq {
        path: YamlPath,
        index: usize,
    },
    /// A complex key (a collection used as a mapping key): ignored.
    Skip,
}

const MAX_DEPTH: usize = 256;

struct Receiver<'c, 'a> {
    converter: &'c OffsetConverter<'a>,
    stack: Vec<Frame>,
    nodes: HashMap<YamlPath, NodeSpan>,
    depth_exceeded: bool,
}

impl Receiver<'_, '_> {
    /// The path and key position of the next value, or `None` when the next node is a key.
    fn next_value_path(&self) -> Option<(YamlPath, Option<Pos>)> {
        match self.stack.last() {
            None => Some((YamlPath::root(), None)),
            Some(Frame::Map {
                path,
                key: Some(key),
                key_pos,
            }) => Some((path.key(key.clone()), *key_pos)),
            Some(Frame::Map { key: None, .. }) => None,
            Some(Frame::Seq { path, index }) => Some((path.index(*index), None)),
            Some(Frame::Skip) => None,
        }
    }

    /// Moves the parent past the value just finished.
    fn advance(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, key_pos, .. }) => {
                *key = None;
                *key_pos = None;
            }
            Some(Frame::Seq { index, .. }) => *index += 1,
            Some(Frame::Skip) | None => {}
        }
    }

    fn in_skip(&self) -> bool {
        self.stack.iter().any(|f| matches!(f, Frame::Skip))
    }

    fn start_collection(&mut self, span: &Span, seq: bool) {
        if self.stack.len() >= MAX_DEPTH {
            self.depth_exceeded = true;
        }
        if self.in_skip() || self.depth_exceeded {
            self.stack.push(Frame::Skip);
            return;
        }
        match self.next_value_path() {
            Some((path, key)) => {
                let value = self.converter.pos(span);
                self.nodes.insert(
                    path.clone(),
                    NodeSpan {
                        key,
                        value,
                        style: None,
                    },
                );
                self.stack.push(if seq {
                    Frame::Seq { path, index: 0 }
                } else {
                    Frame::Map {
                        path,
                        key: None,
                        key_pos: None,
                    }
                });
            }
            None => {
                // A collection as a mapping key: record a placeholder key, skip its content.
                if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                    *key = Some(String::from("<complex key>"));
                }
                self.stack.push(Frame::Skip);
            }
        }
    }

    fn end_collection(&mut self) {
        let popped = self.stack.pop();
        if matches!(popped, Some(Frame::Skip)) {
            return;
        }
        self.advance();
    }
}

impl<'input> SpannedEventReceiver<'input> for Receiver<'_, '_> {
    fn on_event(&mut self, ev: Event<'input>, span: Span) {
        match ev {
            Event::Scalar(text, style, _, _) => {
                if self.in_skip() {
                    return;
                }
                match self.next_value_path() {
                    Some((path, key)) => {
                        let value = self.converter.pos(&span);
                        self.nodes.insert(
                            path,
                            NodeSpan {
                                key,
                                value,
                                style: Some(style),
                            },
                        );
                        self.advance();
                    }
                    None => {
                        let pos = self.converter.pos(&span);
                        if let Some(Frame::Map { key, key_pos, .. }) = self.stack.last_mut() {
                            *key = Some(text.into_owned());
                            *key_pos = Some(pos);
                        }
                    }
                }
            }
            Event::Alias(_) => {
                if self.in_skip() {
                    return;
                }
                match self.next_value_path() {
                    Some((path, key)) => {
                        let value = self.converter.pos(&span);
                        self.nodes.insert(
                            path,
                            NodeSpan {
                                key,
                                value,
                                style: None,
                            },
                        );
                        self.advance();
                    }
                    None => {
                        if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                            *key = Some(String::from("<alias>"));
                        }
                    }
                }
            }
            Event::SequenceStart(..) => self.start_collection(&span, true),
            Event::MappingStart(..) => self.start_collection(&span, false),
            Event::SequenceEnd | Event::MappingEnd => self.end_collection(),
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn records_keys_and_values() {
        let text = "name: demo\nstages:\n  build:\n    needs: [a, b]\n    uses: run\n";
        let index = SpanIndex::build(text);
        let needs1 = YamlPath::root()
            .key("stages")
            .key("build")
            .key("needs")
            .index(1);
        let node = index.get(&needs1).unwrap();
        assert_eq!((node.value.line, node.value.col), (4, 16));
        let uses = YamlPath::root().key("stages").key("build").key("uses");
        let node = index.get(&uses).unwrap();
        assert_eq!(node.key.map(|k| (k.line, k.col)), Some((5, 5)));
        assert_eq!((node.value.line, node.value.col), (5, 11));
        assert_eq!(
            &text[node.value.offset..node.value.offset + node.value.len],
            "run"
        );
    }

    #[test]
    fn unknown_path_falls_back_to_ancestor() {
        let text = "stages:\n  build:\n    uses: run\n";
        let index = SpanIndex::build(text);
        let pos = index.value_or_ancestor(&YamlPath::root().key("stages").key("build").key("nope"));
        assert_eq!((pos.line, pos.col), (3, 5));
    }
}
