//! A YAML document tree that remembers where every node came from.
//!
//! Istio resources are written as multi-document YAML. Every error we report
//! must name a file and line, so we parse into our own [`Node`] tree (line and
//! column on every node, map keys in source order) and deserialize typed
//! resources from that tree (see [`crate::de`]).
//!
//! Each document of a stream is parsed on its own: a syntax error in one
//! document is reported with its line and the other documents still load.
//! Scalars are resolved with the YAML 1.2 core schema (what Kubernetes'
//! decoder accepts for `true`, `null`, `8080`, `0.5`); the source text of a
//! plain scalar is kept so a string field given `8080` reads `"8080"`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::path::{FieldPath, Seg};

/// Deepest nesting accepted; deeper documents are rejected instead of
/// risking the stack of whoever walks the tree.
const MAX_DEPTH: usize = 128;
/// Most nodes one document may expand to (aliases included), so an alias
/// bomb is an error, not an out-of-memory.
const MAX_NODES: usize = 1_000_000;

/// A position in a source file (1-based line and column).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// One YAML node with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Where the node starts.
    pub pos: Pos,
}

/// A YAML value, scalars already resolved.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool, String),
    /// An integer that fits in `i64`.
    Int(i64, String),
    /// A floating point number.
    Float(f64, String),
    /// A string (quoted, block, or a plain scalar that is nothing else).
    String(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order. Keys are scalars turned into strings.
    Map(Vec<(Key, Node)>),
}

/// A mapping key: its text and where it stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    /// The key as a string (`8080:` gives `"8080"`).
    pub name: String,
    /// Where the key starts.
    pub pos: Pos,
}

impl Value {
    /// A short name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(..) => "boolean",
            Value::Int(..) => "integer",
            Value::Float(..) => "number",
            Value::String(_) => "string",
            Value::Seq(_) => "list",
            Value::Map(_) => "object",
        }
    }

    /// The text of a scalar (the source text for plain scalars).
    pub fn scalar_text(&self) -> Option<&str> {
        match self {
            Value::Bool(_, s) | Value::Int(_, s) | Value::Float(_, s) => Some(s),
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

impl Node {
    /// The entry `key` of a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string value of mapping entry `key`, if it is a scalar.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|n| n.value.scalar_text())
    }

    /// The position of the deepest node along `path` that exists: the
    /// node itself, or for a missing field its nearest parent. Map entries
    /// report the line of their key, which is where a reader looks.
    pub fn locate(&self, path: &FieldPath) -> Pos {
        let mut node = self;
        let mut pos = self.pos;
        for seg in path.segments() {
            let next = match (seg, &node.value) {
                (Seg::Field(name), Value::Map(entries)) => entries
                    .iter()
                    .find(|(k, _)| k.name == *name || snake_to_camel(&k.name) == *name)
                    .map(|(k, v)| (k.pos, v)),
                (Seg::Key(name), Value::Map(entries)) => entries
                    .iter()
                    .find(|(k, _)| k.name == *name)
                    .map(|(k, v)| (k.pos, v)),
                (Seg::Index(i), Value::Seq(items)) => items.get(*i).map(|v| (v.pos, v)),
                _ => None,
            };
            match next {
                Some((p, n)) => {
                    pos = p;
                    node = n;
                }
                None => break,
            }
        }
        pos
    }
}

impl Node {
    /// Sets the mapping entry at `path` to `null` (unset). Returns whether
    /// the entry existed. Field names match either spelling, as in
    /// [`Node::locate`].
    pub fn unset(&mut self, path: &FieldPath) -> bool {
        let Some((last, parents)) = path.segments().split_last() else {
            return false;
        };
        let mut node = self;
        for seg in parents {
            let next = match (seg, &mut node.value) {
                (Seg::Field(name) | Seg::Key(name), Value::Map(entries)) => entries
                    .iter_mut()
                    .find(|(k, _)| k.name == *name || snake_to_camel(&k.name) == *name)
                    .map(|(_, v)| v),
                (Seg::Index(i), Value::Seq(items)) => items.get_mut(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => return false,
            }
        }
        let (Seg::Field(name) | Seg::Key(name)) = last else {
            return false;
        };
        let Value::Map(entries) = &mut node.value else {
            return false;
        };
        match entries
            .iter_mut()
            .find(|(k, _)| k.name == *name || snake_to_camel(&k.name) == *name)
        {
            Some((_, v)) if v.value != Value::Null => {
                v.value = Value::Null;
                true
            }
            _ => false,
        }
    }
}

/// `exportTo`-style snake_case spelling to camelCase (`export_to` → `exportTo`).
/// Istio's decoder accepts both spellings of every field.
pub fn snake_to_camel(name: &str) -> Cow<'_, str> {
    if !name.contains('_') {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A YAML syntax error in one document.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SyntaxError {
    /// What is wrong.
    pub message: String,
    /// Where.
    pub pos: Pos,
}

/// One document of a multi-document stream.
#[derive(Clone, Debug)]
pub struct Document {
    /// The line the document's text starts on (after any `---`).
    pub start_line: usize,
    /// The parsed tree, or why it could not be parsed. `Ok(None)` for an
    /// empty document (only comments, or nothing between two `---`).
    pub result: Result<Option<Node>, SyntaxError>,
}

/// Splits a YAML stream into documents and parses each one.
///
/// The stream is cut at `---` / `...` lines at column 0 (a document marker
/// can't occur there inside a document), so one broken document does not
/// hide the ones after it.
pub fn parse_stream(text: &str) -> Vec<Document> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut docs = Vec::new();
    let mut chunk_start_line = 1;
    let mut chunk = String::new();
    let mut chunk_has_content = false;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let line_no = i + 1;
        if is_marker(line, "---") || is_marker(line, "...") {
            if chunk_has_content {
                docs.push(parse_document(&chunk, chunk_start_line));
            }
            chunk.clear();
            chunk_has_content = false;
            // `--- {a: 1}` or `--- |` carries content on the marker line.
            let rest = line.get(3..).unwrap_or("").trim_start_matches([' ', '\t']);
            if line.starts_with("---") && !is_blank_or_comment(rest) {
                chunk.push_str(&" ".repeat(4));
                chunk.push_str(rest);
                chunk_start_line = line_no;
                chunk_has_content = true;
            } else {
                chunk_start_line = line_no + 1;
            }
            continue;
        }
        if !is_blank_or_comment(line) && !line.starts_with('%') {
            chunk_has_content = true;
        }
        chunk.push_str(line);
    }
    if chunk_has_content {
        docs.push(parse_document(&chunk, chunk_start_line));
    }
    docs
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

fn is_blank_or_comment(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

fn parse_document(text: &str, start_line: usize) -> Document {
    let offset = start_line - 1;
    // An error at end of input points past the document; point at its
    // last line instead (the next line is someone else's `---`).
    let last_line = text.trim_end().lines().count().max(1);
    let result = build(text).map_err(|mut e| {
        e.pos.line = e.pos.line.min(last_line) + offset;
        e
    });
    let result = result.map(|node| {
        node.map(|mut n| {
            shift_lines(&mut n, offset);
            n
        })
    });
    Document { start_line, result }
}

fn shift_lines(node: &mut Node, offset: usize) {
    node.pos.line += offset;
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|n| shift_lines(n, offset)),
        Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            k.pos.line += offset;
            shift_lines(v, offset);
        }),
        _ => {}
    }
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        col: span.start.col() + 1,
    }
}

enum Frame {
    Seq(Pos, usize, Vec<Node>),
    Map(Pos, usize, Vec<(Key, Node)>, Option<Key>),
}

/// Parses one document's text into a tree (`None` if it holds no node).
fn build(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut root: Option<Node> = None;
    let mut count = 0usize;
    let err = |message: String, pos: Pos| SyntaxError { message, pos };
    loop {
        let (event, span) = match parser.next_event() {
            None => break,
            Some(Ok(ev)) => ev,
            Some(Err(e)) => {
                let m = e.marker();
                return Err(err(
                    e.info().to_string(),
                    Pos {
                        line: m.line().max(1),
                        col: m.col() + 1,
                    },
                ));
            }
        };
        let pos = pos_of(&span);
        let (node, anchor) = match event {
            Event::StreamStart | Event::DocumentStart(_) | Event::Nothing => continue,
            Event::DocumentEnd | Event::StreamEnd => {
                if root.is_some() || matches!(event, Event::StreamEnd) {
                    break;
                }
                continue;
            }
            Event::SequenceStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(err(format!("nesting deeper than {MAX_DEPTH} levels"), pos));
                }
                stack.push(Frame::Seq(pos, anchor, Vec::new()));
                continue;
            }
            Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(err(format!("nesting deeper than {MAX_DEPTH} levels"), pos));
                }
                stack.push(Frame::Map(pos, anchor, Vec::new(), None));
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(p, anchor, items)) => (
                    Node {
                        value: Value::Seq(items),
                        pos: p,
                    },
                    anchor,
                ),
                _ => return Err(err("unbalanced sequence end".into(), pos)),
            },
            Event::MappingEnd => match stack.pop() {
                // `[001:db8::]`: to YAML 1.2 a one-pair map `{"001:db8:": null}`
                // inside a flow list; to the YAML 1.1 decoder Kubernetes uses
                // (and to the user) the IPv6 address string. Read it as that.
                Some(Frame::Map(p, anchor, entries, None))
                    if matches!(stack.last(), Some(Frame::Seq(..)))
                        && entries.len() == 1
                        && entries[0].0.name.ends_with(':')
                        && entries[0].1.value == Value::Null =>
                {
                    let name = format!("{}:", entries[0].0.name);
                    (
                        Node {
                            value: Value::String(name),
                            pos: p,
                        },
                        anchor,
                    )
                }
                Some(Frame::Map(p, anchor, entries, None)) => (
                    Node {
                        value: Value::Map(entries),
                        pos: p,
                    },
                    anchor,
                ),
                _ => return Err(err("unbalanced mapping end".into(), pos)),
            },
            Event::Alias(id) => match anchors.get(&id) {
                Some(n) => {
                    count += size_of_tree(n);
                    (
                        Node {
                            value: n.value.clone(),
                            pos,
                        },
                        0,
                    )
                }
                None => return Err(err("alias to an unknown anchor".into(), pos)),
            },
            Event::Scalar(text, style, anchor, tag) => {
                let tagged_str = tag
                    .as_ref()
                    .is_some_and(|t| t.is_yaml_core_schema() && t.suffix == "str");
                let value = if style == ScalarStyle::Plain && !tagged_str {
                    resolve_plain(&text)
                } else {
                    Value::String(text.into_owned())
                };
                (Node { value, pos }, anchor)
            }
        };
        count += 1;
        if count > MAX_NODES {
            return Err(err(
                format!("document expands to more than {MAX_NODES} nodes"),
                pos,
            ));
        }
        if anchor != 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => {
                root = Some(node);
            }
            Some(Frame::Seq(_, _, items)) => items.push(node),
            Some(Frame::Map(_, _, entries, key)) => match key.take() {
                None => {
                    let name = match node.value {
                        Value::Null => String::new(),
                        ref v => match v.scalar_text() {
                            Some(s) => s.to_string(),
                            None => {
                                return Err(err(
                                    "mapping keys must be scalars, not a list or an object".into(),
                                    node.pos,
                                ));
                            }
                        },
                    };
                    if entries.iter().any(|(k, _)| k.name == name) {
                        return Err(err(format!("duplicate key {name:?} in mapping"), node.pos));
                    }
                    *key = Some(Key {
                        name,
                        pos: node.pos,
                    });
                }
                Some(k) => entries.push((k, node)),
            },
        }
    }
    Ok(root)
}

fn size_of_tree(node: &Node) -> usize {
    match &node.value {
        Value::Seq(items) => 1 + items.iter().map(size_of_tree).sum::<usize>(),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(_, v)| 1 + size_of_tree(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

/// YAML 1.2 core schema resolution of a plain scalar.
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true, text.into()),
        "false" | "False" | "FALSE" => return Value::Bool(false, text.into()),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY, text.into());
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY, text.into()),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN, text.into()),
        _ => {}
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return Value::Int(i, text.into());
    }
    if let Some(oct) = text.strip_prefix("0o")
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return Value::Int(i, text.into());
    }
    let bytes = text.as_bytes();
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(i) = text.parse::<i64>()
    {
        return Value::Int(i, text.into());
    }
    // Core-schema floats: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
    if bytes.iter().any(|b| b.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(b))
        && looks_like_float(digits)
        && let Ok(f) = text.parse::<f64>()
    {
        return Value::Float(f, text.into());
    }
    Value::String(text.to_string())
}

fn looks_like_float(s: &str) -> bool {
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((a, b)) => {
            a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
                && !(a.is_empty() && b.is_empty())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|c| c.is_ascii_digit()),
    };
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit())
    });
    mantissa_ok && exp_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        let docs = parse_stream(text);
        assert_eq!(docs.len(), 1, "{docs:?}");
        docs.into_iter()
            .next()
            .and_then(|d| d.result.ok().flatten())
            .expect("node")
    }

    #[test]
    fn scalars_resolve_with_core_schema() {
        let n = one("a: 1\nb: '1'\nc: true\nd: ~\ne: 1.5\nf: abc\ng: 0x1f\nh: 1e3\ni: 1.2.3\n");
        assert!(matches!(
            n.get("a").map(|n| &n.value),
            Some(Value::Int(1, _))
        ));
        assert!(matches!(n.get("b").map(|n| &n.value), Some(Value::String(s)) if s == "1"));
        assert!(matches!(
            n.get("c").map(|n| &n.value),
            Some(Value::Bool(true, _))
        ));
        assert!(matches!(n.get("d").map(|n| &n.value), Some(Value::Null)));
        assert!(matches!(
            n.get("e").map(|n| &n.value),
            Some(Value::Float(..))
        ));
        assert_eq!(n.get_str("f"), Some("abc"));
        assert!(matches!(
            n.get("g").map(|n| &n.value),
            Some(Value::Int(31, _))
        ));
        assert!(matches!(
            n.get("h").map(|n| &n.value),
            Some(Value::Float(..))
        ));
        assert!(matches!(
            n.get("i").map(|n| &n.value),
            Some(Value::String(_))
        ));
    }

    #[test]
    fn positions_are_one_based_and_per_document() {
        let docs = parse_stream("a: 1\n---\n# c\nb:\n  c: 2\n");
        assert_eq!(docs.len(), 2);
        let second = docs[1].result.clone().ok().flatten().expect("node");
        let c = second.get("b").and_then(|b| b.get("c")).expect("c");
        assert_eq!(c.pos, Pos { line: 5, col: 6 });
    }

    #[test]
    fn a_broken_document_does_not_hide_the_next() {
        let docs = parse_stream("a: [1\n---\nb: 2\n");
        assert_eq!(docs.len(), 2);
        assert!(docs[0].result.is_err());
        assert_eq!(
            docs[1]
                .result
                .clone()
                .ok()
                .flatten()
                .and_then(|n| n.get("b").cloned())
                .map(|n| n.pos.line),
            Some(3)
        );
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let docs = parse_stream("a: 1\nb: 2\na: 3\n");
        let e = docs[0].result.clone().expect_err("duplicate");
        assert_eq!(e.pos.line, 3);
        assert!(e.message.contains("duplicate key"));
    }

    #[test]
    fn ipv6_addresses_in_flow_lists_stay_strings() {
        let n = one("a: [1.2.3.4, 001:db8::, ::1]\n");
        let Some(Value::Seq(items)) = n.get("a").map(|n| &n.value) else {
            panic!("seq")
        };
        let texts: Vec<_> = items.iter().map(|i| i.value.scalar_text()).collect();
        assert_eq!(texts, vec![Some("1.2.3.4"), Some("001:db8::"), Some("::1")]);
    }

    #[test]
    fn anchors_and_aliases_expand() {
        let n = one("a: &x {k: v}\nb: *x\n");
        assert_eq!(n.get("b").and_then(|b| b.get_str("k")), Some("v"));
    }

    #[test]
    fn alias_bombs_are_bounded() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let docs = parse_stream(&text);
        assert!(docs[0].result.is_err());
    }

    #[test]
    fn deep_nesting_is_an_error() {
        let text = "[".repeat(500);
        assert!(parse_stream(&text)[0].result.is_err());
    }

    #[test]
    fn empty_documents_are_skipped() {
        assert!(parse_stream("---\n# nothing\n---\n").is_empty());
        assert_eq!(parse_stream("--- {a: 1}\n").len(), 1);
    }

    #[test]
    fn locate_finds_nearest_existing_node() {
        let n = one("spec:\n  http:\n  - route:\n    - weight: 5\n");
        let mut p = FieldPath::default();
        p.push(Seg::Field("spec".into()));
        p.push(Seg::Field("http".into()));
        p.push(Seg::Index(0));
        p.push(Seg::Field("route".into()));
        p.push(Seg::Index(0));
        p.push(Seg::Field("weight".into()));
        assert_eq!(n.locate(&p).line, 4);
        p.push(Seg::Field("missing".into()));
        assert_eq!(n.locate(&p).line, 4);
    }
}
