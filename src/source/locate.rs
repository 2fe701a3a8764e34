//! Maps field paths (`spec.plugins[1].version`) of one YAML document to the lines they are on.
//!
//! Parsing with positions costs a second pass over the text, so it is only done when a
//! diagnostic needs a line.

use std::collections::HashMap;

use granit_parser::{Event, Parser};

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
                if let Ok(i) = rest[1..end].parse() {
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

    #[test]
    fn path_round_trips() {
        let p = "spec.plugins[12].version";
        assert_eq!(format_path(&parse_path(p)), p);
    }
}
