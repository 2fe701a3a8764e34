//! Writing rendered objects as YAML, byte for byte as `serde_yaml` writes them, without its
//! per-event emitter on the common path. `serde_yaml` is the `yaml_serde` crate (the YAML
//! organization's continuation of serde_yaml 0.9, renamed in Cargo.toml), which writes every
//! value exactly as serde_yaml 0.9 did.
//!
//! Objects are block mappings of block mappings, sequences and scalars. Whatever this module
//! cannot prove it writes exactly like `serde_yaml` — a float, a long or unusual key, a root
//! that is not a mapping — makes the whole document go through `serde_yaml`, and a string
//! that is not plainly safe is written by `serde_yaml` alone and placed here. The tests hold
//! the two equal over many generated values.

use serde_json::{Map, Value};

/// Appends `v` as one YAML document (without a `---` line), exactly as
/// `serde_yaml::to_writer` would.
pub fn write_document(out: &mut Vec<u8>, v: &Value) {
    let start = out.len();
    let done = match v {
        Value::Object(map) if !map.is_empty() => write_map(out, map, 0, false).is_some(),
        _ => false,
    };
    if !done {
        out.truncate(start);
        serde_yaml::to_writer(&mut *out, v).expect("JSON values serialize as YAML");
    }
}

/// A value as one YAML document.
pub fn to_string(v: &Value) -> String {
    let mut out = Vec::new();
    write_document(&mut out, v);
    String::from_utf8(out).expect("YAML is UTF-8")
}

/// Longest key libyaml writes as a simple (`key: value`) key.
const MAX_SIMPLE_KEY: usize = 128;

/// Writes the entries of a non-empty map at `indent`; the first on the current line when
/// `inline_first` (after a sequence's `- `). `None`: outside what this module writes.
fn write_map(
    out: &mut Vec<u8>,
    map: &Map<String, Value>,
    indent: usize,
    inline_first: bool,
) -> Option<()> {
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 || !inline_first {
            pad(out, indent);
        }
        if key.len() > MAX_SIMPLE_KEY || !is_plain(key) {
            return None;
        }
        out.extend_from_slice(key.as_bytes());
        out.push(b':');
        match value {
            Value::Object(m) if m.is_empty() => out.extend_from_slice(b" {}\n"),
            Value::Array(a) if a.is_empty() => out.extend_from_slice(b" []\n"),
            Value::Object(m) => {
                out.push(b'\n');
                write_map(out, m, indent + 2, false)?;
            }
            // Sequences in mappings are not indented.
            Value::Array(a) => {
                out.push(b'\n');
                write_seq(out, a, indent, false)?;
            }
            scalar => {
                out.push(b' ');
                write_scalar(out, scalar, indent + 2)?;
            }
        }
    }
    Some(())
}

/// Writes the items of a non-empty sequence at `indent`, like [`write_map`].
fn write_seq(out: &mut Vec<u8>, items: &[Value], indent: usize, inline_first: bool) -> Option<()> {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !inline_first {
            pad(out, indent);
        }
        out.extend_from_slice(b"- ");
        match item {
            Value::Object(m) if m.is_empty() => out.extend_from_slice(b"{}\n"),
            Value::Array(a) if a.is_empty() => out.extend_from_slice(b"[]\n"),
            Value::Object(m) => write_map(out, m, indent + 2, true)?,
            Value::Array(a) => write_seq(out, a, indent + 2, true)?,
            scalar => write_scalar(out, scalar, indent + 2)?,
        }
    }
    Some(())
}

/// Writes a scalar and its line end; block scalar lines go at `indent`.
fn write_scalar(out: &mut Vec<u8>, v: &Value, indent: usize) -> Option<()> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            let mut buf = itoa::Buffer::new();
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(buf.format(i).as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(buf.format(u).as_bytes());
            } else {
                return None;
            }
        }
        Value::String(s) if is_plain(s) => out.extend_from_slice(s.as_bytes()),
        Value::String(s) if looks_like_number(s) => {
            out.push(b'\'');
            out.extend_from_slice(s.as_bytes());
            out.push(b'\'');
        }
        Value::String(s) => return write_other_string(out, s, indent),
        Value::Array(_) | Value::Object(_) => {
            unreachable!("collections are written by their parent")
        }
    }
    out.push(b'\n');
    Some(())
}

/// Any other string, as `serde_yaml` writes it alone: quoted forms as they are, block scalars
/// with their lines moved to `indent`.
fn write_other_string(out: &mut Vec<u8>, s: &str, indent: usize) -> Option<()> {
    let alone = serde_yaml::to_string(s).expect("strings serialize");
    let (first, rest) = alone.split_once('\n').expect("a line end");
    // libyaml breaks lines at CR, NEL, LS and PS too, indenting what follows.
    let breaks = ['\r', '\u{85}', '\u{2028}', '\u{2029}'];
    if alone.contains(breaks) {
        return None;
    }
    if rest.is_empty() {
        out.extend_from_slice(first.as_bytes());
        out.push(b'\n');
        return Some(());
    }
    // A block scalar: `|-` (or `|`, `|+`, `|2-` …) and its lines, indented by 2 when alone.
    if !first.starts_with('|') {
        return None;
    }
    out.extend_from_slice(first.as_bytes());
    out.push(b'\n');
    for line in rest.split_inclusive('\n') {
        match line.strip_prefix("  ") {
            Some(text) => {
                pad(out, indent);
                out.extend_from_slice(text.as_bytes());
            }
            // Empty lines carry no indentation.
            None if line == "\n" => out.push(b'\n'),
            None => return None,
        }
    }
    Some(())
}

fn pad(out: &mut Vec<u8>, indent: usize) {
    out.resize(out.len() + indent, b' ');
}

/// Whether `s` is written as it is, unquoted: a letter or `/` first, then letters, digits and
/// `-_./:` (a `:` not last), never one of the words YAML reads as null or a boolean.
fn is_plain(s: &str) -> bool {
    let b = s.as_bytes();
    let Some(first) = b.first() else {
        return false;
    };
    (first.is_ascii_alphabetic() || *first == b'/')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'/' | b':'))
        && b.last() != Some(&b':')
        && !matches!(
            s,
            "null" | "Null" | "NULL" | "true" | "True" | "TRUE" | "false" | "False" | "FALSE"
        )
}

/// Whether `s` (digits first, then letters, digits and `.`) is one that YAML reads as a
/// number, so `serde_yaml` single-quotes it; those it would write plain fall through to it.
fn looks_like_number(s: &str) -> bool {
    let b = s.as_bytes();
    b.first().is_some_and(u8::is_ascii_digit)
        && b.len() <= 20
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'.')
        && !s.starts_with("0x")
        && !s.starts_with("0o")
        && !s.starts_with("0b")
        && (b.iter().all(u8::is_ascii_digit) || s.parse::<f64>().is_ok_and(f64::is_finite))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn same(v: &Value) {
        let expected = serde_yaml::to_string(v).unwrap();
        assert_eq!(to_string(v), expected, "for {v}");
    }

    #[test]
    fn writes_objects_like_serde_yaml() {
        same(&json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "prism-a", "labels": {"app.kubernetes.io/name": "prism-proxy"}, "annotations": {}},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"a": "b"}},
                "template": {"spec": {"containers": [
                    {"name": "proxy", "image": "ghcr.io/prism/prism-proxy:0.1.0", "args": ["--config", "/etc/prism/prism.yaml"],
                     "ports": [{"containerPort": 8980, "name": "grpc"}], "env": [], "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}}
                ]}},
                "nested": [[1, 2], [], [{"a": 1}], [[]], {}],
                "flags": [true, false, null, -5, 18446744073709551615u64],
            },
            "data": {"prism.yaml": "a: 1\nb:\n  - c\n\nd: 'x'\n", "strip": "one\ntwo", "lead": "  indented\nnext\n", "keep": "x\n\n\n"},
        }));
    }

    /// Strings of characters that matter to YAML, from a fixed LCG: every one must come out as
    /// `serde_yaml` writes it, as a value, in a sequence and (when short) as a key.
    #[test]
    fn writes_generated_strings_like_serde_yaml() {
        const PIECES: &[&str] = &[
            "a", "Z", "0", "1", "9", ".", "-", "_", "/", ":", " ", "#", "'", "\"", "\n", "\t",
            "\\", "{", "}", "[", "]", ",", "&", "*", "!", "|", ">", "%", "@", "`", "?", "~", "e",
            "x", "o", "b", "true", "null", "No", "yes", "0x1f", "1e5", ".inf", "é", "\u{2028}",
            "\r", "---", "...", "=", "+", "0.5", "inf", "nan", "1_0", "\u{feff}", "\u{7f}",
            "\u{85}",
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 33) as usize) % n
        };
        for _ in 0..4000 {
            let len = next(6);
            let s: String = (0..len).map(|_| PIECES[next(PIECES.len())]).collect();
            same(&json!({ "k": s, "list": [s, {"x": s}], "m": {"deep": {"deeper": s}} }));
            same(&json!({ s.clone(): 1, "z": [[s]] }));
        }
    }

    #[test]
    fn other_roots_go_through_serde_yaml() {
        for v in [
            json!("text"),
            json!([1, {"a": 2}]),
            json!({}),
            json!(null),
            json!({"f": 1.5}),
        ] {
            same(&v);
        }
    }
}
