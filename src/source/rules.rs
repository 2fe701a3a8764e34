//! Rules the API server enforces beyond the CRD schema, checked offline so that an input that
//! validates also applies: label and annotation keys and values (on every object), and resource
//! quantities (on the Pods and claims a shard or plugin becomes).

use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

use super::schema::quote;

/// Longest label value and name part of a qualified key.
const MAX_NAME_PART: usize = 63;
/// Longest prefix (a DNS subdomain) of a qualified key.
const MAX_PREFIX: usize = 253;
/// Most bytes all annotations of one object may take, keys included.
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

fn regex(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("valid regex"))
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`: the name part of a key, and a label value.
fn is_name_part(text: &str) -> bool {
    static NAME: OnceLock<Regex> = OnceLock::new();
    regex(&NAME, r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$").is_match(text)
}

fn is_dns_subdomain(text: &str) -> bool {
    static SUBDOMAIN: OnceLock<Regex> = OnceLock::new();
    regex(
        &SUBDOMAIN,
        r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    )
    .is_match(text)
}

/// Why `key` is not a qualified name (`[prefix/]name`) usable as a label or annotation key.
pub fn key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && (prefix.is_empty() || prefix.len() > MAX_PREFIX || !is_dns_subdomain(prefix))
    {
        return Some(format!(
            "key {}: the prefix before '/' must be a DNS subdomain of at most {MAX_PREFIX} characters",
            quote(key)
        ));
    }
    if name.is_empty() || name.len() > MAX_NAME_PART || !is_name_part(name) {
        return Some(format!(
            "key {} is not a qualified name: at most {MAX_NAME_PART} letters, digits, '-', '_' or '.', starting and ending with a letter or digit, after an optional DNS-subdomain prefix and '/'",
            quote(key)
        ));
    }
    None
}

/// Why `value` is not a valid label value.
pub fn label_value_problem(value: &str) -> Option<String> {
    if value.is_empty() || (value.len() <= MAX_NAME_PART && is_name_part(value)) {
        return None;
    }
    Some(format!(
        "label value {} is not valid: at most {MAX_NAME_PART} letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
        quote(value)
    ))
}

/// Problems of a map of labels (`labels`) or annotations, as (key, message); each key and
/// value must be a string already.
pub fn string_map_problems(
    map: &serde_json::Map<String, Value>,
    labels: bool,
) -> Vec<(Option<String>, String)> {
    let mut problems = Vec::new();
    let mut bytes = 0;
    for (key, value) in map {
        let value = value.as_str().unwrap_or_default();
        bytes += key.len() + value.len();
        if let Some(why) = key_problem(key) {
            problems.push((Some(key.clone()), why));
        } else if labels && let Some(why) = label_value_problem(value) {
            problems.push((Some(key.clone()), why));
        }
    }
    if !labels && bytes > MAX_ANNOTATIONS_BYTES {
        problems.push((
            None,
            format!("annotations take {bytes} bytes; at most {MAX_ANNOTATIONS_BYTES} are allowed"),
        ));
    }
    problems
}

/// Why `value` (a string or an integer) is not a non-negative resource quantity such as
/// `500m`, `2`, `1.5Gi` or `1e3`.
pub fn quantity_problem(value: &Value) -> Option<String> {
    static QUANTITY: OnceLock<Regex> = OnceLock::new();
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        _ => return None,
    };
    let syntax = regex(
        &QUANTITY,
        r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[mkMGTPE]|[eE][+-]?[0-9]+)?$",
    );
    if !syntax.is_match(&text) {
        return Some(format!(
            "{} is not a quantity (e.g. 500m, 2, 1.5Gi, 10G)",
            quote(&text)
        ));
    }
    let negative = text.strip_prefix('-').is_some_and(|rest| {
        rest.chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .any(|c| matches!(c, '1'..='9'))
    });
    if negative {
        return Some(format!("must not be negative, got {}", quote(&text)));
    }
    None
}

/// Quantity fields of a custom resource of `kind`: (path, value), for [`quantity_problem`].
pub fn quantities<'a>(kind: &str, object: &'a Value) -> Vec<(String, &'a Value)> {
    let spec = &object["spec"];
    let mut out = Vec::new();
    let mut resources = |path: &str, r: &'a Value| {
        for part in ["requests", "limits"] {
            if let Some(map) = r[part].as_object() {
                for (name, q) in map {
                    out.push((format!("{path}.{part}.{name}"), q));
                }
            }
        }
    };
    match kind {
        "PrismShard" => {
            resources("spec.resources", &spec["resources"]);
            if let Some(size) = spec["storage"].get("size").filter(|v| !v.is_null()) {
                out.push(("spec.storage.size".to_string(), size));
            }
        }
        "PrismPlugin" => resources(
            "spec.deployment.resources",
            &spec["deployment"]["resources"],
        ),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn qualified_keys() {
        for ok in [
            "a",
            "app.kubernetes.io/name",
            "prism.io/shard",
            "A_b.c-9",
            "x/y",
        ] {
            assert_eq!(key_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a b",
            "a/",
            "/a",
            "A.io/x",
            "a/b/c",
            &"x".repeat(64),
        ] {
            assert!(key_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(label_value_problem(""), None);
        assert!(label_value_problem("has space").is_some());
        assert!(label_value_problem(&"v".repeat(64)).is_some());
    }

    #[test]
    fn quantities_parse_like_kubernetes() {
        for ok in [
            json!("500m"),
            json!("2"),
            json!("1.5Gi"),
            json!("10G"),
            json!("1e3"),
            json!(".5"),
            json!("+1"),
            json!(4),
            json!("-0"),
        ] {
            assert_eq!(quantity_problem(&ok), None, "{ok}");
        }
        for bad in [
            json!("lots"),
            json!("1 Gi"),
            json!("1gi"),
            json!("Gi"),
            json!(""),
        ] {
            assert!(
                quantity_problem(&bad)
                    .unwrap()
                    .contains("is not a quantity"),
                "{bad}"
            );
        }
        assert_eq!(
            quantity_problem(&json!("-5Gi")).unwrap(),
            "must not be negative, got \"-5Gi\""
        );
        assert!(quantity_problem(&json!(-1)).is_some());
    }
}
