//! Object-level differences between two renders: objects added, removed and changed, keyed by
//! `apiVersion/kind/namespace/name`, shown as unified diffs of their YAML (hunk headers name
//! the field that changed) or as a summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use similar::{ChangeTag, DiffOp, DiffTag, TextDiff};

use crate::render::Object;

/// How an object differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// Only in the head render.
    Added,
    /// Only in the base render.
    Removed,
    /// In both, with different content.
    Changed,
}

impl Change {
    fn word(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Changed => "changed",
        }
    }
}

/// One object that differs, with its YAML on both sides (empty where absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectDiff {
    /// `apiVersion/kind/namespace/name` (no namespace segment for cluster-scoped objects).
    pub key: String,
    /// What happened to it.
    pub change: Change,
    /// YAML in the base render.
    pub old: String,
    /// YAML in the head render.
    pub new: String,
}

/// The key identifying an object across renders.
pub fn key(o: &Object) -> String {
    if o.namespace.is_empty() {
        format!("{}/{}/{}", o.api_version, o.kind, o.name)
    } else {
        format!("{}/{}/{}/{}", o.api_version, o.kind, o.namespace, o.name)
    }
}

/// Every object that differs between `base` and `head`, sorted by key.
pub fn compare(base: &[Object], head: &[Object]) -> Vec<ObjectDiff> {
    let yaml = |o: &Object| crate::output::yaml::to_string(&o.value);
    let mut sides: BTreeMap<String, (Option<&Object>, Option<&Object>)> = BTreeMap::new();
    for o in base {
        sides.entry(key(o)).or_default().0 = Some(o);
    }
    for o in head {
        sides.entry(key(o)).or_default().1 = Some(o);
    }
    sides
        .into_iter()
        .filter_map(|(key, sides)| {
            let (change, old, new) = match sides {
                (Some(a), Some(b)) if a.value == b.value => return None,
                (Some(a), Some(b)) => (Change::Changed, yaml(a), yaml(b)),
                (Some(a), None) => (Change::Removed, yaml(a), String::new()),
                (None, Some(b)) => (Change::Added, String::new(), yaml(b)),
                (None, None) => return None,
            };
            Some(ObjectDiff {
                key,
                change,
                old,
                new,
            })
        })
        .collect()
}

/// Output settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// ANSI colours.
    pub color: bool,
    /// Unchanged lines shown around each change.
    pub context: usize,
}

struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[m")
        } else {
            text.to_string()
        }
    }
}

/// The diffs as unified diffs, one per object, each introduced by `added|removed|changed KEY`.
pub fn patch(diffs: &[ObjectDiff], style: Style) -> String {
    let paint = Paint(style.color);
    let mut out = String::new();
    for d in diffs {
        let _ = writeln!(
            out,
            "{}",
            paint.wrap("1", &format!("{} {}", d.change.word(), d.key))
        );
        let (from, to) = match d.change {
            Change::Added => ("/dev/null".to_string(), format!("b/{}", d.key)),
            Change::Removed => (format!("a/{}", d.key), "/dev/null".to_string()),
            Change::Changed => (format!("a/{}", d.key), format!("b/{}", d.key)),
        };
        let _ = writeln!(out, "{}", paint.wrap("1", &format!("--- {from}")));
        let _ = writeln!(out, "{}", paint.wrap("1", &format!("+++ {to}")));
        let name_fields = d.change == Change::Changed;
        hunks(&d.old, &d.new, style.context, name_fields, &paint, &mut out);
    }
    out
}

/// Writes the hunks of `old` → `new`; `name_fields` adds the changed field to hunk headers.
fn hunks(old: &str, new: &str, context: usize, name_fields: bool, paint: &Paint, out: &mut String) {
    let diff = TextDiff::from_lines(old, new);
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    for group in diff.grouped_ops(context) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let old_range = first.old_range().start..last.old_range().end;
        let new_range = first.new_range().start..last.new_range().end;
        let mut header = format!(
            "@@ -{} +{} @@",
            range(old_range.start, old_range.len()),
            range(new_range.start, new_range.len())
        );
        let path = name_fields
            .then(|| changed_path(&group, &old_lines, &new_lines))
            .flatten();
        if let Some(path) = path {
            header = format!("{} {path}", paint.wrap("36", &header));
        } else {
            header = paint.wrap("36", &header);
        }
        let _ = writeln!(out, "{header}");
        for op in &group {
            for change in diff.iter_changes(op) {
                let text = change.value().trim_end_matches('\n');
                let line = match change.tag() {
                    ChangeTag::Equal => format!(" {text}"),
                    ChangeTag::Delete => paint.wrap("31", &format!("-{text}")),
                    ChangeTag::Insert => paint.wrap("32", &format!("+{text}")),
                };
                let _ = writeln!(out, "{line}");
            }
        }
    }
}

/// `start,len` of a hunk side as unified diffs write it (1-based; `,len` left out when 1).
fn range(start: usize, len: usize) -> String {
    match len {
        0 => format!("{start},0"),
        1 => format!("{}", start + 1),
        n => format!("{},{n}", start + 1),
    }
}

/// The field path of a group's first changed line.
fn changed_path(group: &[DiffOp], old: &[&str], new: &[&str]) -> Option<String> {
    let op = group.iter().find(|op| op.tag() != DiffTag::Equal)?;
    let path = if op.new_range().is_empty() {
        yaml_path(old, op.old_range().start)
    } else {
        yaml_path(new, op.new_range().start)
    };
    (!path.is_empty()).then_some(path)
}

/// One line of block-style YAML as written by serde_yaml.
struct Line<'a> {
    /// Leading spaces.
    indent: usize,
    /// Starts a sequence item (`- `).
    item: bool,
    /// The mapping key on the line, if any.
    key: Option<&'a str>,
    /// The text after `key: `.
    value: &'a str,
}

impl Line<'_> {
    /// Indentation of the line's content (after `- `).
    fn content_indent(&self) -> usize {
        self.indent + if self.item { 2 } else { 0 }
    }
}

fn parse_line(text: &str) -> Option<Line<'_>> {
    let rest = text.trim_start_matches(' ');
    if rest.trim().is_empty() {
        return None;
    }
    let indent = text.len() - rest.len();
    let (item, rest) = match rest.strip_prefix("- ") {
        Some(r) => (true, r),
        None if rest == "-" => (true, ""),
        None => (false, rest),
    };
    let (key, value) = match rest.find(": ") {
        Some(pos) => (Some(&rest[..pos]), &rest[pos + 2..]),
        None => match rest.strip_suffix(':') {
            Some(k) => (Some(k), ""),
            None => (None, rest),
        },
    };
    let key = key.map(|k| k.trim_matches(|c| c == '\'' || c == '"'));
    Some(Line {
        indent,
        item,
        key,
        value,
    })
}

/// Dotted path (`spec.template.spec.containers[proxy].image`) of line `at` of a YAML document,
/// worked out from indentation; sequence items are named by their `name` field when they
/// have one, else by index.
pub fn yaml_path(lines: &[&str], at: usize) -> String {
    let mut segments: Vec<String> = Vec::new();
    let Some(line) = lines.get(at).and_then(|l| parse_line(l)) else {
        return String::new();
    };
    if let Some(k) = line.key {
        segments.push(k.to_string());
    }
    // Content indentation of the node whose parent is sought.
    let mut want = line.content_indent();
    if line.item {
        segments.push(item_name(lines, at, line.indent));
        want = line.indent;
    }
    let mut seeking_sequence_key = line.item;
    let mut j = at;
    while j > 0 {
        j -= 1;
        let Some(l) = parse_line(lines[j]) else {
            continue;
        };
        if seeking_sequence_key {
            // Items of one sequence share the dash column; the key holding them has its key
            // in that column too (serde_yaml does not indent sequences under their key).
            if l.item && l.indent == want {
                continue;
            }
            if l.content_indent() == want && l.key.is_some() {
                segments.push(l.key.unwrap_or_default().to_string());
                seeking_sequence_key = false;
                if l.item {
                    segments.push(item_name(lines, j, l.indent));
                    want = l.indent;
                    seeking_sequence_key = true;
                }
                continue;
            }
            if l.content_indent() > want {
                continue;
            }
            seeking_sequence_key = false;
        }
        if l.item && l.content_indent() == want {
            // The item holding the node.
            segments.push(item_name(lines, j, l.indent));
            want = l.indent;
            seeking_sequence_key = true;
        } else if l.content_indent() < want {
            if let Some(k) = l.key {
                segments.push(k.to_string());
            }
            want = l.content_indent();
            if l.item {
                segments.push(item_name(lines, j, l.indent));
                want = l.indent;
                seeking_sequence_key = true;
            }
        }
        if want == 0 && !seeking_sequence_key {
            break;
        }
    }
    let mut out = String::new();
    for s in segments.iter().rev() {
        let plain = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if s.starts_with('[') {
            out.push_str(s);
        } else if !plain {
            // Keys such as `app.kubernetes.io/name` would read as several fields.
            out.push_str(&format!("[{s:?}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(s);
        }
    }
    out
}

/// `[name]` of the item starting at line `at` (dash in column `dash`), or `[index]`.
fn item_name(lines: &[&str], at: usize, dash: usize) -> String {
    let mut j = at;
    loop {
        let Some(l) = parse_line(lines[j]) else {
            j += 1;
            if j >= lines.len() {
                break;
            }
            continue;
        };
        if j > at && (l.indent < dash + 2) {
            break;
        }
        if l.key == Some("name") && l.content_indent() == dash + 2 && !l.value.is_empty() {
            return format!("[{}]", l.value.trim_matches(|c| c == '\'' || c == '"'));
        }
        j += 1;
        if j >= lines.len() {
            break;
        }
    }
    let mut index = 0;
    for l in lines[..at].iter().rev().filter_map(|l| parse_line(l)) {
        if l.indent < dash || (l.indent == dash && !l.item) {
            break;
        }
        if l.indent == dash && l.item {
            index += 1;
        }
    }
    format!("[{index}]")
}

/// A summary: one line per object with its count of changed lines, then totals.
pub fn stat(diffs: &[ObjectDiff], style: Style) -> String {
    let paint = Paint(style.color);
    let counts: Vec<(usize, usize)> = diffs
        .iter()
        .map(|d| {
            let diff = TextDiff::from_lines(&d.old, &d.new);
            diff.iter_all_changes()
                .fold((0, 0), |(add, del), c| match c.tag() {
                    ChangeTag::Insert => (add + 1, del),
                    ChangeTag::Delete => (add, del + 1),
                    ChangeTag::Equal => (add, del),
                })
        })
        .collect();
    let width = diffs.iter().map(|d| d.key.len()).max().unwrap_or(0);
    let digits = counts
        .iter()
        .map(|(a, d)| (a + d).to_string().len())
        .max()
        .unwrap_or(1);
    let most = counts.iter().map(|(a, d)| a + d).max().unwrap_or(0).max(1);
    const BAR: usize = 40;
    let mut out = String::new();
    for (d, (add, del)) in diffs.iter().zip(&counts) {
        let (mut plus, mut minus) = (*add, *del);
        if most > BAR {
            // Scale to the bar, keeping at least one mark for a side that changed.
            plus = (add * BAR).div_ceil(most).min(*add);
            minus = (del * BAR).div_ceil(most).min(*del);
        }
        let _ = writeln!(
            out,
            " {:<7} {:<width$} | {:>digits$} {}{}",
            d.change.word(),
            d.key,
            add + del,
            paint.wrap("32", &"+".repeat(plus)),
            paint.wrap("31", &"-".repeat(minus)),
        );
    }
    let count = |c: Change| diffs.iter().filter(|d| d.change == c).count();
    let (added, removed, changed) = (
        count(Change::Added),
        count(Change::Removed),
        count(Change::Changed),
    );
    let _ = writeln!(
        out,
        " {} object{} differ: {added} added, {removed} removed, {changed} changed",
        diffs.len(),
        if diffs.len() == 1 { "" } else { "s" },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DOC: &str = "\
apiVersion: apps/v1
kind: StatefulSet
spec:
  template:
    spec:
      containers:
      - args:
        - --config
        image: proxy:1
        name: proxy
      - image: sidecar:1
        name: nats
        ports:
        - containerPort: 4222
        - containerPort: 8222
      volumes:
      - emptyDir: {}
";

    fn path_of(text: &str) -> String {
        let lines: Vec<&str> = DOC.lines().collect();
        let at = lines.iter().position(|l| l.trim() == text).unwrap();
        yaml_path(&lines, at)
    }

    #[test]
    fn names_the_field_of_a_line() {
        assert_eq!(path_of("kind: StatefulSet"), "kind");
        let lines = ["metadata:", "  annotations:", "    prism.io/shard: a"];
        assert_eq!(
            yaml_path(&lines, 2),
            "metadata.annotations[\"prism.io/shard\"]"
        );
        assert_eq!(
            path_of("image: proxy:1"),
            "spec.template.spec.containers[proxy].image"
        );
        assert_eq!(
            path_of("- --config"),
            "spec.template.spec.containers[proxy].args[0]"
        );
        assert_eq!(
            path_of("- image: sidecar:1"),
            "spec.template.spec.containers[nats].image"
        );
        assert_eq!(
            path_of("- containerPort: 8222"),
            "spec.template.spec.containers[nats].ports[1].containerPort"
        );
        assert_eq!(
            path_of("- emptyDir: {}"),
            "spec.template.spec.volumes[0].emptyDir"
        );
    }

    fn obj(kind: &str, name: &str, data: serde_json::Value) -> Object {
        Object::from_value(json!({
            "apiVersion": "v1", "kind": kind,
            "metadata": {"name": name, "namespace": "prism"}, "data": data
        }))
    }

    #[test]
    fn classifies_objects_by_key() {
        let base = [
            obj("ConfigMap", "a", json!({"k": "1"})),
            obj("ConfigMap", "gone", json!({})),
        ];
        let head = [
            obj("ConfigMap", "a", json!({"k": "2"})),
            obj("ConfigMap", "new", json!({})),
        ];
        let diffs = compare(&base, &head);
        let summary: Vec<(&str, Change)> =
            diffs.iter().map(|d| (d.key.as_str(), d.change)).collect();
        assert_eq!(
            summary,
            [
                ("v1/ConfigMap/prism/a", Change::Changed),
                ("v1/ConfigMap/prism/gone", Change::Removed),
                ("v1/ConfigMap/prism/new", Change::Added),
            ]
        );
        let text = patch(
            &diffs[..1],
            Style {
                color: false,
                context: 0,
            },
        );
        assert!(
            text.contains("@@ -3 +3 @@ data.k\n-  k: '1'\n+  k: '2'\n"),
            "{text}"
        );
        assert!(compare(&base, &base).is_empty());
    }
}
