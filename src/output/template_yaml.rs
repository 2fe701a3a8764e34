//! Reading template output without a YAML parser when it is in the form templates write:
//! block mappings and sequences of plain keys, with plain scalars (names, integers, booleans)
//! and JSON values (`{{ x | tojson }}`) on one line. Anything else — comments, quotes other than
//! JSON's, block scalars, anchors, tags, tabs, numbers YAML reads as floats — gives `None`, and
//! the caller reads the text with `serde_yaml`. Where this module gives a value it is the one
//! `serde_yaml` gives (the tests compare them).

use serde_json::{Map, Value};

/// One non-blank line: its indentation and the rest.
#[derive(Clone, Copy)]
struct Line<'a> {
    indent: usize,
    body: &'a str,
}

/// The value of `text`, when it is in the simple form.
pub fn parse(text: &str) -> Option<Value> {
    let mut lines = Vec::new();
    for raw in text.lines() {
        let body = raw.trim_start_matches(' ');
        if body.trim_end().is_empty() {
            if raw.contains('\t') {
                return None;
            }
            continue;
        }
        if body.starts_with(['#', '\t', '%']) || body.starts_with("---") || body.starts_with("...")
        {
            return None;
        }
        lines.push(Line {
            indent: raw.len() - body.len(),
            body: body.trim_end_matches(' '),
        });
    }
    let first = *lines.first()?;
    if first.indent != 0 {
        return None;
    }
    let mut at = 0;
    let value = block(&lines, &mut at, 0)?;
    (at == lines.len()).then_some(value)
}

/// The mapping or sequence starting at `lines[*at]`, all at `indent`.
fn block(lines: &[Line<'_>], at: &mut usize, indent: usize) -> Option<Value> {
    let line = lines.get(*at)?;
    if is_item(line.body) {
        sequence(lines, at, indent)
    } else {
        mapping(lines, at, indent, None)
    }
}

fn is_item(body: &str) -> bool {
    body == "-" || body.starts_with("- ")
}

/// A mapping at `indent`; `first` is an entry already split off a sequence item's line.
fn mapping(
    lines: &[Line<'_>],
    at: &mut usize,
    indent: usize,
    mut first: Option<&str>,
) -> Option<Value> {
    let mut map = Map::new();
    loop {
        let body = match first.take() {
            Some(body) => body,
            None => match lines.get(*at) {
                Some(l) if l.indent == indent && !is_item(l.body) => l.body,
                Some(l) if l.indent > indent => return None,
                _ => break,
            },
        };
        *at += 1;
        let (key, rest) = split_key(body)?;
        let value = if rest.is_empty() {
            match lines.get(*at) {
                Some(next) if next.indent > indent => block(lines, at, next.indent)?,
                // Sequences in mappings may sit at the key's own indentation.
                Some(next) if next.indent == indent && is_item(next.body) => {
                    sequence(lines, at, indent)?
                }
                _ => Value::Null,
            }
        } else {
            scalar(rest)?
        };
        if map.insert(key.to_string(), value).is_some() {
            return None;
        }
    }
    Some(Value::Object(map))
}

/// A sequence of `- ` items at `indent`.
fn sequence(lines: &[Line<'_>], at: &mut usize, indent: usize) -> Option<Value> {
    let mut items = Vec::new();
    while let Some(line) = lines.get(*at) {
        if line.indent != indent || !is_item(line.body) {
            if line.indent > indent {
                return None;
            }
            break;
        }
        let item = line.body.strip_prefix("- ")?.trim_start_matches(' ');
        if item.is_empty() || is_item(item) {
            return None;
        }
        let inner = indent + line.body.len() - item.len();
        if split_key(item).is_some() && !item.starts_with(['"', '{', '[']) {
            items.push(mapping(lines, at, inner, Some(item))?);
        } else {
            *at += 1;
            items.push(scalar(item)?);
        }
    }
    Some(Value::Array(items))
}

/// `key:` or `key: rest` with a plain key; `rest` without its leading spaces.
fn split_key(body: &str) -> Option<(&str, &str)> {
    let end = body.find(':')?;
    let (key, after) = (&body[..end], &body[end + 1..]);
    let plain_key = !key.is_empty()
        && key.as_bytes()[0].is_ascii_alphabetic()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'));
    if !plain_key || !(after.is_empty() || after.starts_with(' ')) {
        return None;
    }
    Some((key, after.trim_start_matches(' ')))
}

/// A value on the rest of a line.
fn scalar(text: &str) -> Option<Value> {
    if text.starts_with(['"', '{', '[']) {
        // JSON is YAML; not the other way round, so what is not JSON goes to serde_yaml.
        let value: Value = serde_json::from_str(text).ok()?;
        return plain_numbers(&value).then_some(value);
    }
    match text {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        "null" => return Some(Value::Null),
        _ => {}
    }
    let b = text.as_bytes();
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
        if digits.len() > 1 && digits[0] == b'0' {
            return None;
        }
        return text.parse::<i64>().ok().map(Value::from);
    }
    let word = (b[0].is_ascii_alphabetic() || b[0] == b'/')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'/' | b':'))
        && b.last() != Some(&b':');
    let yaml_word = matches!(
        text,
        "True" | "TRUE" | "False" | "FALSE" | "Null" | "NULL" | "y" | "n"
    );
    // Quantities such as `256Mi`: digits first, but no number YAML knows.
    let quantity = b[0].is_ascii_digit()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'.')
        && !b[1..].starts_with(b"x")
        && !b[1..].starts_with(b"o")
        && !b[1..].starts_with(b"b")
        && text.parse::<f64>().is_err();
    ((word && !yaml_word) || quantity).then(|| Value::String(text.to_string()))
}

/// Whether every number in `v` is an integer: floats may differ in the last digit between the
/// JSON and the YAML reader.
fn plain_numbers(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_i64() || n.is_u64(),
        Value::Array(items) => items.iter().all(plain_numbers),
        Value::Object(map) => map.values().all(plain_numbers),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(text: &str) {
        let want: Value = serde_yaml::from_str(text).unwrap();
        assert_eq!(parse(text), Some(want), "{text}");
    }

    #[test]
    fn reads_what_templates_write_as_serde_yaml_does() {
        same(
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: \"prism-a\"\n  labels: {\"a\": \"b\", \"n\": 1}\nspec:\n  replicas: 3\n  paused: false\n  empty:\n  selector:\n    matchLabels: {\"x\": \"y\"}\n  template:\n    spec:\n      containers:\n      - name: proxy\n        image: \"ghcr.io/p:1.0\"\n        args: [\"--a\", \"b c\"]\n        mountPath: /var/lib/prism\n        sizeLimit: 256Mi\n        cpu: 1.5e\n        ports:\n        - containerPort: 8980\n          name: grpc\n        - containerPort: -1\n      list:\n        - 1\n        - \"two\"\n        - {\"three\": [3]}\n      tail: ghcr.io/x:1.0\n",
        );
        same("a:\n- b: 1\n  c:\n    d: 2\n- e\n- f: null\nz: \"\\u003c\\u2028é\"\n");
    }

    #[test]
    fn leaves_the_rest_to_serde_yaml() {
        for text in [
            "a: 1.5\n",
            "a: 1e3\n",
            "a: 0123\n",
            "a: yes # comment\n",
            "a: 'quoted'\n",
            "a: |\n  text\n",
            "a: &x 1\nb: *x\n",
            "a: !!str 1\n",
            "a: True\n",
            "a: 1\na: 2\n",
            "a: {\"b\": 1} trailing\n",
            "a:\n  b: 1\n c: 2\n",
            "- - a\n",
            "a: b c\n",
            "\"a\": 1\n",
            "a: [1.5]\n",
            "a:\tb\n",
            "a: 0x1F\n",
            "a: 1e5\n",
            "a: 1_000\n",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }
}
