//! Maps field paths (`spec.plugins[1].version`) of one YAML document to the lines they are on,
//! and checks the shape of a document before its values are read ([`check_shape`]).
//!
//! Parsing with positions costs a second pass over the text, so line lookup is only done when a
//! diagnostic needs a line.

use std::collections::HashMap;
use std::sync::OnceLock;

use granit_parser::{ErrorKind, Event, Parser, ScalarStyle, Tag};
use regex::Regex;

use crate::error::Diagnostic;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// Renders segments as `a.b[2].c`.
pub fn format_path(segments: &[Segment]) -> String {
    let mut out = String::new();
    for s in segments {
        match s {
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Segment::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// Longest field path shown in a message, in characters.
const MAX_SHOWN_PATH: usize = 200;

/// `path` with control characters escaped (`\n`, `\u{1b}`) and cut to a bounded length, for
/// one-line messages.
pub fn printable(path: &str) -> String {
    let mut out = String::new();
    let mut shown = 0;
    for c in path.chars() {
        let escaped: Vec<char> = if c.is_control() {
            c.escape_default().collect()
        } else {
            vec![c]
        };
        if shown + escaped.len() > MAX_SHOWN_PATH {
            out.push('…');
            break;
        }
        shown += escaped.len();
        out.extend(escaped);
    }
    out
}

/// Parses `a.b[2].c` back into segments (keys may not contain `.` or `[`).
pub fn parse_path(path: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(pos) = rest.find('[') {
            if pos > 0 {
                out.push(Segment::Key(rest[..pos].to_string()));
            }
            rest = &rest[pos..];
            while let Some(end) = rest.find(']') {
                // `get`: a key may hold brackets of its own, e.g. `a]]` (no index then).
                if let Some(i) = rest.get(1..end).and_then(|s| s.parse().ok()) {
                    out.push(Segment::Index(i));
                }
                rest = &rest[end + 1..];
            }
        } else {
            out.push(Segment::Key(rest.to_string()));
        }
    }
    out
}

enum Frame {
    Map { key: Option<String> },
    Seq { next: usize },
}

/// Line (1-based, relative to `text`) of every node in the first document of `text`.
pub fn index_lines(text: &str) -> HashMap<String, usize> {
    let mut lines = HashMap::new();
    let mut frames: Vec<Frame> = Vec::new();
    let mut path: Vec<Segment> = Vec::new();
    for item in Parser::new_from_str(text) {
        let Ok((event, span)) = item else { break };
        let line = span.start.line();
        match event {
            Event::Scalar(value, ..) => {
                if let Some(Frame::Map { key }) = frames.last_mut()
                    && key.is_none()
                {
                    *key = Some(value.to_string());
                    path.push(Segment::Key(value.to_string()));
                    lines.entry(format_path(&path)).or_insert(line);
                    path.pop();
                    continue;
                }
                enter_value(&mut frames, &mut path, &mut lines, line);
                leave_value(&mut frames, &mut path);
            }
            Event::Alias(_) => {
                enter_value(&mut frames, &mut path, &mut lines, line);
                leave_value(&mut frames, &mut path);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                if let Some(Frame::Map { key: None }) = frames.last() {
                    // A complex (collection) key: not addressable by a field path.
                    break;
                }
                enter_value(&mut frames, &mut path, &mut lines, line);
                frames.push(if matches!(event, Event::MappingStart(..)) {
                    Frame::Map { key: None }
                } else {
                    Frame::Seq { next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                frames.pop();
                leave_value(&mut frames, &mut path);
            }
            Event::DocumentEnd => break,
            _ => {}
        }
    }
    lines
}

fn enter_value(
    frames: &mut [Frame],
    path: &mut Vec<Segment>,
    lines: &mut HashMap<String, usize>,
    line: usize,
) {
    match frames.last() {
        Some(Frame::Map { key: Some(k) }) => path.push(Segment::Key(k.clone())),
        Some(Frame::Seq { next }) => path.push(Segment::Index(*next)),
        _ => {}
    }
    lines.entry(format_path(path)).or_insert(line);
}

fn leave_value(frames: &mut [Frame], path: &mut Vec<Segment>) {
    match frames.last_mut() {
        Some(Frame::Map { key }) => {
            let had_key = key.take().is_some();
            if had_key {
                path.pop();
            }
        }
        Some(Frame::Seq { next }) => {
            *next += 1;
            path.pop();
        }
        None => {}
    }
}

/// Line of `path` in `text`, or of its nearest ancestor that exists; 1 when nothing matches.
pub fn line_of(text: &str, path: &str) -> usize {
    let lines = index_lines(text);
    // Exactly as written first: keys may hold `.` or `[`, which parsing would split.
    if let Some(line) = lines.get(path) {
        return *line;
    }
    let mut segments = parse_path(path);
    loop {
        if let Some(line) = lines.get(&format_path(&segments)) {
            return *line;
        }
        if segments.pop().is_none() {
            return 1;
        }
    }
}

/// Deepest nesting of collections a document may have. No Prism resource comes close; the
/// bound keeps recursive code (and the YAML parser's quadratic flow scanning) cheap.
pub const MAX_DEPTH: usize = 64;

/// Most nodes that aliases (`*name`) may add to one document: bounds "billion laughs" inputs,
/// including those that stay below serde_yaml's own repetition limit yet expand a few
/// kilobytes into millions of values.
pub const MAX_ALIAS_NODES: u64 = 10_000;

/// A problem with the shape of a document, found before its values are read, on `line` of
/// its text.
fn shape_problem(line: usize, path: &[Segment], message: String) -> Diagnostic {
    Diagnostic::on_line(line, format_path(path), message)
}

/// Characters YAML does not allow in a stream: C0 controls other than tab, LF and CR, DEL, C1
/// controls other than NEL, a byte-order mark inside the text, and the non-characters U+FFFE
/// and U+FFFF.
fn forbidden_char(c: char) -> bool {
    matches!(c, '\0'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{7f}')
        || matches!(c, '\u{80}'..='\u{84}' | '\u{86}'..='\u{9f}')
        || matches!(c, '\u{feff}' | '\u{fffe}' | '\u{ffff}')
}

/// The first character YAML does not allow, as a problem naming its line and column.
fn check_chars(text: &str) -> Result<(), Diagnostic> {
    for (i, line) in text.lines().enumerate() {
        if let Some((col, c)) = line.chars().enumerate().find(|(_, c)| forbidden_char(*c)) {
            let message = match c {
                '\0' => format!(
                    "invalid YAML: NUL character at column {}; inputs must be UTF-8 text (is this a UTF-16 or binary file?)",
                    col + 1
                ),
                '\u{feff}' => format!(
                    "invalid YAML: byte-order mark (U+FEFF) at column {}; it may only start a document",
                    col + 1
                ),
                c => format!(
                    "invalid YAML: control character U+{:04X} at column {} is not allowed; write it as an escape in a double-quoted string",
                    u32::from(c),
                    col + 1
                ),
            };
            return Err(shape_problem(i + 1, &[], message));
        }
    }
    Ok(())
}

/// A collection open while [`check_shape`] walks a document.
struct Open {
    /// A mapping (else a sequence).
    map: bool,
    /// Keys of a mapping seen so far, with their lines.
    keys: HashMap<String, usize>,
    /// Mapping: the key whose value comes next (`None`: a key comes next).
    key: Option<String>,
    /// Sequence: index of the next item.
    next: usize,
    /// Anchor defined on the collection (0: none).
    anchor: usize,
    /// Nodes in the collection: itself, its items and what aliases among them expand to.
    size: u64,
    /// Whether opening it pushed a segment onto the path.
    pushed: bool,
}

/// Where the next node of a document goes.
enum Role {
    /// The document's root.
    Root,
    /// A key of the innermost mapping.
    Key,
    /// A value, at this path segment.
    Value(Segment),
}

/// The walk of one document by [`check_shape`]: open collections and the current path.
struct ShapeWalk {
    open: Vec<Open>,
    path: Vec<Segment>,
    /// File line of the text's first line, for lines named in messages.
    first_line: usize,
}

impl ShapeWalk {
    fn role(&self) -> Role {
        match self.open.last() {
            None => Role::Root,
            Some(o) if o.map => match &o.key {
                None => Role::Key,
                Some(k) => Role::Value(Segment::Key(k.clone())),
            },
            Some(o) => Role::Value(Segment::Index(o.next)),
        }
    }

    /// Path of the next node.
    fn here(&self) -> Vec<Segment> {
        let mut path = self.path.clone();
        if let Role::Value(segment) = self.role() {
            path.push(segment);
        }
        path
    }

    /// Moves the innermost collection past a value of `size` nodes.
    fn advance(&mut self, size: u64) {
        if let Some(o) = self.open.last_mut() {
            o.size = o.size.saturating_add(size);
            if o.map {
                o.key = None;
            } else {
                o.next += 1;
            }
        }
    }

    /// A scalar or an alias of `size` nodes; `text` is the scalar's (or aliased scalar's) text.
    fn leaf(&mut self, line: usize, size: u64, text: Option<&str>) -> Result<(), Diagnostic> {
        match self.role() {
            Role::Key => {
                let o = self.open.last_mut().expect("a mapping is open");
                o.size = o.size.saturating_add(size);
                let Some(key) = text.map(str::to_string) else {
                    return Err(complex_key(line, &self.path));
                };
                if let Some(first) = o.keys.insert(key.clone(), line) {
                    let mut path = self.path.clone();
                    path.push(Segment::Key(key.clone()));
                    return Err(shape_problem(
                        line,
                        &path,
                        format!(
                            "duplicate key {} (first on line {})",
                            super::schema::quote(&key),
                            self.first_line + first - 1
                        ),
                    ));
                }
                o.key = Some(key);
            }
            Role::Value(_) => self.advance(size),
            Role::Root => {}
        }
        Ok(())
    }

    /// The problem of nesting too deep, named by the field it starts in (its leading keys).
    fn too_deep(&self, line: usize) -> Diagnostic {
        let here = self.here();
        let field: Vec<Segment> = here
            .iter()
            .take_while(|s| matches!(s, Segment::Key(_)))
            .take(4)
            .cloned()
            .collect();
        shape_problem(
            line,
            &field,
            format!("nested more than {MAX_DEPTH} levels deep"),
        )
    }

    /// Opens a collection (a mapping when `map`) carrying `anchor`.
    fn start(&mut self, line: usize, anchor: usize, map: bool) -> Result<(), Diagnostic> {
        if self.open.len() >= MAX_DEPTH {
            return Err(self.too_deep(line));
        }
        let role = self.role();
        if matches!(role, Role::Key) {
            return Err(complex_key(line, &self.path));
        }
        let pushed = match role {
            Role::Value(segment) => {
                self.path.push(segment);
                true
            }
            _ => false,
        };
        self.open.push(Open {
            map,
            keys: HashMap::new(),
            key: None,
            next: 0,
            anchor,
            size: 1,
            pushed,
        });
        Ok(())
    }

    /// Closes the innermost collection; returns its anchor and size.
    fn end(&mut self) -> Option<(usize, u64)> {
        let done = self.open.pop()?;
        if done.pushed {
            self.path.pop();
        }
        self.advance(done.size);
        Some((done.anchor, done.size))
    }
}

/// A mapping key that is a list or a mapping (JSON, and so Kubernetes, has string keys only).
fn complex_key(line: usize, path: &[Segment]) -> Diagnostic {
    shape_problem(
        line,
        path,
        "a mapping key must be a plain string, not a list or a mapping".into(),
    )
}

/// Only the core schema's tags (`!!str`, `!!int` …) mean something to a JSON-shaped resource.
fn check_tag(tag: Option<&Tag>, line: usize, walk: &ShapeWalk) -> Result<(), Diagnostic> {
    match tag {
        Some(tag) if tag.core_suffix().is_none() => {
            let written = if tag.original_handle().is_empty() {
                format!("!<{}{}>", tag.handle(), tag.suffix())
            } else {
                format!("{}{}", tag.original_handle(), tag.suffix())
            };
            Err(shape_problem(
                line,
                &walk.here(),
                format!(
                    "tag {} is not supported: resources are plain JSON-shaped data",
                    super::schema::quote(&written)
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// Why a plain scalar that YAML reads as a number cannot be one of a resource: an integer
/// beyond 64 bits, or a float that is not finite (`.nan`, `.inf`, `1e999`).
fn number_problem(text: &str) -> Option<String> {
    static INT: OnceLock<Regex> = OnceLock::new();
    static FLOAT: OnceLock<Regex> = OnceLock::new();
    let int = INT.get_or_init(|| Regex::new(r"^[-+]?[0-9]+$").expect("valid regex"));
    let float = FLOAT.get_or_init(|| {
        Regex::new(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$").expect("valid regex")
    });
    // Digits in `radix` that do not fit 64 bits.
    let overflows = |digits: &str, radix: u32| {
        !digits.is_empty()
            && digits.chars().all(|c| c.is_digit(radix))
            && u64::from_str_radix(digits, radix).is_err()
    };
    let out_of_range = if int.is_match(text) {
        text.parse::<i64>().is_err() && text.trim_start_matches('+').parse::<u64>().is_err()
    } else if let Some(hex) = text.strip_prefix("0x") {
        overflows(hex, 16)
    } else if let Some(octal) = text.strip_prefix("0o") {
        overflows(octal, 8)
    } else if float.is_match(text) {
        text.parse::<f64>().is_ok_and(f64::is_infinite)
    } else {
        let bare = text.trim_start_matches(['+', '-']);
        if matches!(bare, ".nan" | ".NaN" | ".NAN" | ".inf" | ".Inf" | ".INF") {
            return Some(format!(
                "{} is not a finite number; quote it if it is meant as a string",
                super::schema::quote(text)
            ));
        }
        false
    };
    out_of_range.then(|| {
        format!(
            "number {} is out of range; numbers must fit in 64 bits (quote it if it is meant as a string)",
            super::schema::quote(text)
        )
    })
}

/// Number of flow collection openers in `text` (an upper bound of its flow nesting).
fn flow_brackets(text: &str) -> usize {
    text.bytes().filter(|b| matches!(b, b'[' | b'{')).count()
}

/// Checks what the value parser does not, or not cheaply, or says unclearly, before a
/// document's values are read:
///
/// - characters YAML forbids (NUL, other control characters), with their line and column;
/// - duplicate mapping keys, which would otherwise silently keep only the last value;
/// - nesting deeper than [`MAX_DEPTH`];
/// - aliases expanding to more than [`MAX_ALIAS_NODES`] nodes;
/// - keys that are lists or mappings, tags outside YAML's core schema, and numbers JSON cannot
///   hold (beyond 64 bits, not finite).
///
/// Other syntax errors are left to the value parser, whose messages are the familiar ones,
/// except in a text with many flow brackets, which that parser scans in quadratic time.
/// `first_line` is the file line of the text's first line, for lines named in messages.
pub fn check_shape(text: &str, first_line: usize) -> Result<(), Diagnostic> {
    check_chars(text)?;
    let mut shape = Shape {
        walk: ShapeWalk {
            open: Vec::new(),
            path: Vec::new(),
            first_line,
        },
        sizes: HashMap::new(),
        scalars: HashMap::new(),
        alias_nodes: 0,
    };
    let mut documents = 0;
    for item in Parser::new_from_str(text) {
        let (event, span) = match item {
            Ok(found) => found,
            Err(e) if *e.kind() == ErrorKind::RecursionLimitExceeded => {
                return Err(shape.walk.too_deep(e.marker().line()));
            }
            Err(e) if flow_brackets(text) > MAX_DEPTH => {
                return Err(shape_problem(
                    e.marker().line(),
                    &[],
                    format!("invalid YAML: {}", e.kind()),
                ));
            }
            Err(_) => return Ok(()),
        };
        if let Event::DocumentStart(..) = event {
            documents += 1;
            if documents > 1 {
                // The value parser reports more than one document in one text.
                return Ok(());
            }
            continue;
        }
        shape.event(event, span.start.line())?;
    }
    Ok(())
}

/// The walk of [`check_shape`] and what it knows of anchors.
struct Shape {
    walk: ShapeWalk,
    /// Expanded size of every anchored node.
    sizes: HashMap<usize, u64>,
    /// The text of anchored scalars (for alias keys).
    scalars: HashMap<usize, String>,
    /// Nodes the aliases so far expand to.
    alias_nodes: u64,
}

impl Shape {
    /// Follows one parser event, on `line` of the text.
    fn event(&mut self, event: Event<'_>, line: usize) -> Result<(), Diagnostic> {
        let walk = &mut self.walk;
        match event {
            Event::Scalar(value, style, anchor, tag) => {
                check_tag(tag.as_deref(), line, walk)?;
                if style == ScalarStyle::Plain
                    && tag.is_none()
                    && !matches!(walk.role(), Role::Key)
                    && let Some(why) = number_problem(&value)
                {
                    return Err(shape_problem(line, &walk.here(), why));
                }
                if anchor != 0 {
                    self.sizes.insert(anchor, 1);
                    self.scalars.insert(anchor, value.to_string());
                }
                walk.leaf(line, 1, Some(&value))?;
            }
            Event::Alias(id) => {
                let size = self.sizes.get(&id).copied().unwrap_or(1);
                self.alias_nodes = self.alias_nodes.saturating_add(size);
                if self.alias_nodes > MAX_ALIAS_NODES {
                    return Err(shape_problem(
                        line,
                        &walk.here(),
                        format!("aliases expand to more than {MAX_ALIAS_NODES} nodes"),
                    ));
                }
                walk.leaf(line, size, self.scalars.get(&id).map(String::as_str))?;
            }
            Event::SequenceStart(_, anchor, tag) => {
                check_tag(tag.as_deref(), line, walk)?;
                walk.start(line, anchor, false)?;
            }
            Event::MappingStart(_, anchor, tag) => {
                check_tag(tag.as_deref(), line, walk)?;
                walk.start(line, anchor, true)?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, size)) = walk.end()
                    && anchor != 0
                {
                    self.sizes.insert(anchor, size);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "apiVersion: prism.io/v1alpha1\nkind: PrismShard\nmetadata:\n  name: a\nspec:\n  plugins:\n  - name: x\n    version: \"1.0\"\n  - {name: y, version: \"2\"}\n  backends: [pg, redis]\n";

    #[test]
    fn finds_nested_keys_and_indices() {
        assert_eq!(line_of(DOC, "metadata.name"), 4);
        assert_eq!(line_of(DOC, "spec.plugins[0].version"), 8);
        assert_eq!(line_of(DOC, "spec.plugins[1].name"), 9);
        assert_eq!(line_of(DOC, "spec.backends[1]"), 10);
    }

    #[test]
    fn falls_back_to_nearest_ancestor() {
        assert_eq!(line_of(DOC, "spec.plugins[0].deployment"), 7);
        assert_eq!(line_of(DOC, "spec.autoscaling.minReplicas"), 5);
        assert_eq!(line_of(DOC, "nothing"), 1);
    }

    fn shape(text: &str) -> Result<(), (usize, String, String)> {
        check_shape(text, 1).map_err(|p| (p.line, p.path, p.message))
    }

    #[test]
    fn duplicate_keys_are_found_with_their_path() {
        let text = "a: 1\nspec:\n  x: [{k: 1, j: 2}, {k: 1, 'k': 3}]\n";
        assert_eq!(
            shape(text),
            Err((
                3,
                "spec.x[1].k".into(),
                "duplicate key \"k\" (first on line 3)".into()
            ))
        );
        assert!(shape("a: {b: 1}\nb: {b: 1}\n").is_ok());
        let alias_key = "x: &k name\nm: {*k : 1, name: 2}\n";
        assert_eq!(shape(alias_key).unwrap_err().1, "m.name");
        let complex = shape("a:\n  ? [x]\n  : 1\n").unwrap_err();
        assert_eq!((complex.0, complex.1.as_str()), (2, "a"));
    }

    #[test]
    fn tags_and_numbers_json_cannot_hold() {
        assert!(shape("a: !!str 1\nb: !!int 2\nc: !!map {}\n").is_ok());
        let (_, path, message) = shape("a:\n  b: !custom 1\n").unwrap_err();
        assert_eq!(path, "a.b");
        assert!(
            message.starts_with("tag \"!custom\" is not supported"),
            "{message}"
        );
        for bad in [
            "99999999999999999999",
            "-9223372036854775809",
            "0x1ffffffffffffffff",
            "1e999",
            ".nan",
            "-.inf",
        ] {
            let (_, path, _) = shape(&format!("n: {bad}\n")).unwrap_err();
            assert_eq!(path, "n", "{bad}");
        }
        for ok in [
            "18446744073709551615",
            "-9223372036854775808",
            "1e300",
            "'1e999'",
            "\".nan\"",
            "0x10",
            "1_000",
        ] {
            assert!(shape(&format!("n: {ok}\n")).is_ok(), "{ok}");
        }
        assert!(
            shape("99999999999999999999: 1\n").is_ok(),
            "keys are strings"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!(
            "a: {}{}\n",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert!(shape(&ok).is_ok());
        for depth in [MAX_DEPTH, 300, 100_000] {
            let deep = format!("a: {}{}\n", "[".repeat(depth), "]".repeat(depth));
            let (line, _, message) = shape(&deep).unwrap_err();
            assert_eq!(
                (line, message.as_str()),
                (1, "nested more than 64 levels deep")
            );
            let unclosed = format!("a: {}\n", "{b: ".repeat(depth));
            assert!(shape(&unclosed).is_err(), "{depth}");
        }
        let block: String = (0..100)
            .map(|i| format!("{}- \n", "  ".repeat(i)))
            .collect();
        assert_eq!(shape(&block).unwrap_err().0, MAX_DEPTH + 1);
    }

    #[test]
    fn alias_expansion_is_bounded() {
        let small = "a: &a [x, y]\nb: [*a, *a]\n";
        assert!(shape(small).is_ok());
        let mut laughs = String::from("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for (name, prev) in ["b", "c", "d", "e", "f"]
            .iter()
            .zip(["a", "b", "c", "d", "e"])
        {
            let refs = vec![format!("*{prev}"); 9].join(", ");
            laughs.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        let (line, path, message) = shape(&laughs).unwrap_err();
        assert_eq!(message, "aliases expand to more than 10000 nodes");
        assert_eq!((line, path.as_str()), (5, "e[0]"));
        // Wide rather than deep: one big anchor referenced many times.
        let items = vec!["x"; 1000].join(",");
        let refs = vec!["*a"; 100].join(",");
        assert!(shape(&format!("a: &a [{items}]\nb: [{refs}]\n")).is_err());
    }

    #[test]
    fn forbidden_characters_are_named() {
        let (line, _, message) = shape("a: 1\nb: x\u{0}y\n").unwrap_err();
        assert_eq!(line, 2);
        assert!(
            message.starts_with("invalid YAML: NUL character at column 5"),
            "{message}"
        );
        let (_, _, message) = shape("a: \u{1b}[31m\n").unwrap_err();
        assert!(message.contains("U+001B at column 4"), "{message}");
        assert!(shape("a: \"\\e\\0\"\tb\r\n").is_ok());
    }

    #[test]
    fn path_round_trips() {
        let p = "spec.plugins[12].version";
        assert_eq!(format_path(&parse_path(p)), p);
    }

    #[test]
    fn keys_with_brackets_do_not_break_paths() {
        for p in [
            "spec.a[1]]",
            "spec.\u{1b}[31m]]\n",
            "x]",
            "[]",
            "a[[]]",
            "a[ü]]",
        ] {
            parse_path(p);
            assert!(line_of(DOC, p) >= 1, "{p}");
        }
    }
}
