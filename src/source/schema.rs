//! Offline validation of an input document against the CRD schema the API server enforces:
//! structure, unknown fields, types, enums, patterns, bounds, and the CEL rules (via kube's
//! client-side CEL evaluator). One source of truth: the schema derived from `crates/api`, as
//! checked in under `crds/` and embedded at build time, one for each kind and version.

use std::collections::{BTreeMap, HashMap};

use kube::core::cel::{CompiledSchema, Validator, compile_schema};
use regex::Regex;
use serde_json::Value;

use crate::error::Diagnostic;

/// The OpenAPI and compiled CEL schemas of every Prism kind, by kind and version.
pub struct Schemas {
    kinds: BTreeMap<(String, String), (Value, CompiledSchema)>,
    validator: Validator,
    regexes: std::sync::Mutex<HashMap<String, Option<Regex>>>,
}

impl Default for Schemas {
    fn default() -> Self {
        Self::new()
    }
}

/// Each kind's OpenAPI schema of each version as JSON (`{kind: {version: schema}}`), converted
/// from `crds/*.yaml` by the build script.
const EMBEDDED: &str = include_str!(concat!(env!("OUT_DIR"), "/crd_schemas.json"));

/// OpenAPI schemas by kind, then version.
type ByKind = BTreeMap<String, BTreeMap<String, Value>>;

impl Schemas {
    /// Builds the schemas from the checked-in CRDs (embedded at build time; equal to the ones
    /// derived from the CRD types, which a test checks).
    pub fn new() -> Self {
        let embedded: ByKind =
            serde_json::from_str(EMBEDDED).expect("the embedded CRD schemas are JSON");
        Self::from_openapi(embedded)
    }

    /// Builds the schemas from each kind's `openAPIV3Schema` of each version.
    fn from_openapi(schemas: ByKind) -> Self {
        let kinds = schemas
            .into_iter()
            .flat_map(|(kind, versions)| {
                versions
                    .into_iter()
                    .map(move |(version, schema)| ((kind.clone(), version), schema))
            })
            .map(|(key, mut schema)| {
                // The API server checks the envelope itself; describe it so the walk accepts it.
                if let Some(props) = schema["properties"].as_object_mut() {
                    props.insert("apiVersion".into(), serde_json::json!({"type": "string"}));
                    props.insert("kind".into(), serde_json::json!({"type": "string"}));
                    props.insert("metadata".into(), serde_json::json!({"type": "object"}));
                }
                let compiled = compile_schema(&schema);
                (key, (schema, compiled))
            })
            .collect();
        Self {
            kinds,
            validator: Validator::new(),
            regexes: Default::default(),
        }
    }

    /// Whether `kind` is one of ours.
    pub fn knows(&self, kind: &str) -> bool {
        self.kinds.keys().any(|(k, _)| k == kind)
    }

    /// Every problem in `object` (a whole custom resource) for its `kind` at `version` (such
    /// as `v1beta1`).
    pub fn validate(&self, kind: &str, version: &str, object: &Value) -> Vec<Diagnostic> {
        let Some((schema, compiled)) = self.kinds.get(&(kind.to_string(), version.to_string()))
        else {
            return vec![];
        };
        let mut errors = Vec::new();
        self.walk(schema, object, "", &mut errors);
        if errors.is_empty()
            && let Err(cel) = self.validator.validate_compiled(compiled, object, None)
        {
            for e in cel.into_vec() {
                errors.push(Diagnostic::at(
                    e.field_path.trim_start_matches('.').to_string(),
                    e.message,
                ));
            }
        }
        errors
    }

    fn walk(&self, schema: &Value, value: &Value, path: &str, out: &mut Vec<Diagnostic>) {
        let s = |k: &str| schema.get(k);
        let err = |out: &mut Vec<Diagnostic>, message: String| {
            out.push(Diagnostic::at(path.to_string(), message))
        };
        if let Some(problem) = null_or_int_or_string(schema, value) {
            return problem.into_iter().for_each(|m| err(out, m));
        }
        let preserve = s("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        match s("type").and_then(Value::as_str) {
            Some("object") => {
                let Some(map) = value.as_object() else {
                    return err(out, format!("must be an object, got {}", type_name(value)));
                };
                self.walk_object(schema, map, preserve, path, out);
            }
            Some("array") => {
                let Some(items) = value.as_array() else {
                    return err(out, format!("must be a list, got {}", type_name(value)));
                };
                self.walk_array(schema, items, path, out);
            }
            Some("string") => {
                let Some(text) = value.as_str() else {
                    return err(out, format!("must be a string, got {}", type_name(value)));
                };
                self.check_string(schema, text, &mut |m| err(out, m));
            }
            Some("integer") => {
                if !(value.is_i64() || value.is_u64()) {
                    return err(out, format!("must be an integer, got {}", type_name(value)));
                }
                check_integer(schema, value, &mut |m| err(out, m));
            }
            Some("number") => {
                if !value.is_number() {
                    return err(out, format!("must be a number, got {}", type_name(value)));
                }
                check_bounds(schema, value, &mut |m| err(out, m));
            }
            Some("boolean") if !value.is_boolean() => {
                err(
                    out,
                    format!("must be true or false, got {}", type_name(value)),
                );
            }
            _ => {}
        }
        check_enum(schema, value, &mut |m| err(out, m));
    }

    /// The items of a list at `path`: their number, keys and each against `items`.
    fn walk_array(&self, schema: &Value, items: &[Value], path: &str, out: &mut Vec<Diagnostic>) {
        let s = |k: &str| schema.get(k);
        let err = |out: &mut Vec<Diagnostic>, message: String| {
            out.push(Diagnostic::at(path.to_string(), message))
        };
        if let Some(max) = s("maxItems").and_then(Value::as_u64)
            && items.len() as u64 > max
        {
            err(
                out,
                format!("must have at most {max} items, has {}", items.len()),
            );
        }
        if let Some(min) = s("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            err(out, format!("must have at least {min} items"));
        }
        self.check_list_keys(schema, items, path, out);
        if let Some(item_schema) = s("items") {
            for (i, item) in items.iter().enumerate() {
                self.walk(item_schema, item, &format!("{path}[{i}]"), out);
            }
        }
    }

    fn walk_object(
        &self,
        schema: &Value,
        map: &serde_json::Map<String, Value>,
        preserve: bool,
        path: &str,
        out: &mut Vec<Diagnostic>,
    ) {
        let props = schema.get("properties").and_then(Value::as_object);
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for field in required.iter().filter_map(Value::as_str) {
                if map.get(field).is_none_or(Value::is_null) {
                    out.push(Diagnostic::at(
                        join(path, field),
                        "required field is missing",
                    ));
                }
            }
        }
        if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
            && map.len() as u64 > max
        {
            out.push(Diagnostic::at(
                path.to_string(),
                format!("must have at most {max} entries, has {}", map.len()),
            ));
        }
        let additional = schema.get("additionalProperties");
        for (key, child) in map {
            let child_path = join(path, key);
            let sub = props
                .and_then(|p| p.get(key))
                .or(additional.filter(|a| a.is_object()));
            match sub {
                Some(sub) => self.walk(sub, child, &child_path, out),
                None if preserve
                    || additional == Some(&Value::Bool(true))
                    || (props.is_none() && additional.is_none()) => {}
                None => {
                    let known: Vec<&str> = props
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    out.push(Diagnostic::at(
                        child_path,
                        unknown_field_message(key, &known),
                    ));
                }
            }
        }
    }

    fn check_list_keys(
        &self,
        schema: &Value,
        items: &[Value],
        path: &str,
        out: &mut Vec<Diagnostic>,
    ) {
        let list_type = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
        if list_type == Some("set") {
            for (i, item) in items.iter().enumerate() {
                if let Some(first) = items[..i].iter().position(|x| x == item) {
                    out.push(Diagnostic::at(
                        format!("{path}[{i}]"),
                        format!("duplicate value {} (first at {path}[{first}])", shown(item)),
                    ));
                }
            }
            return;
        }
        if list_type != Some("map") {
            return;
        }
        let keys: Vec<&str> = schema
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|k| k.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut seen: HashMap<Vec<&Value>, usize> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            let id: Vec<&Value> = keys
                .iter()
                .map(|k| item.get(*k).unwrap_or(&Value::Null))
                .collect();
            if let Some(first) = seen.insert(id.clone(), i) {
                let shown: Vec<String> = id.iter().map(|v| shown(v)).collect();
                out.push(Diagnostic::at(
                    format!("{path}[{i}]"),
                    format!(
                        "duplicate entry {} (first at {path}[{first}])",
                        shown.join(", ")
                    ),
                ));
            }
        }
    }

    /// Checks a string against its length bounds and pattern; reports one problem at most
    /// (too long, else not matching, else too short), the one most worth fixing first.
    fn check_string(&self, schema: &Value, text: &str, err: &mut impl FnMut(String)) {
        let chars = text.chars().count() as u64;
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && chars > max
        {
            return err(format!("must be at most {max} characters, is {chars}"));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            let mut cache = self.regexes.lock().expect("not poisoned");
            let re = cache
                .entry(pattern.to_string())
                .or_insert_with(|| Regex::new(pattern).ok());
            if let Some(re) = re
                && !re.is_match(text)
            {
                let shown = if may_hold_credentials(text) {
                    "the value (not shown: it looks like it holds credentials)".to_string()
                } else {
                    quote(text)
                };
                return match describe_pattern(pattern) {
                    Some(what) => err(format!("{shown} is not {what}")),
                    None => err(format!("{shown} does not match {pattern}")),
                };
            }
        }
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && chars < min
        {
            err(format!("must be at least {min} characters"));
        }
    }
}

/// A null value, or one of a field that takes integers and strings: `Some` with what is wrong
/// (if anything) when that is all there is to check.
fn null_or_int_or_string(schema: &Value, value: &Value) -> Option<Option<String>> {
    if value.is_null() {
        let allowed =
            schema.get("nullable") == Some(&Value::Bool(true)) || schema.get("type").is_none();
        return Some((!allowed).then(|| "must not be null".into()));
    }
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        let fits = value.is_string() || value.is_i64() || value.is_u64();
        return Some(
            (!fits).then(|| format!("must be an integer or a string, got {}", type_name(value))),
        );
    }
    None
}

/// An integer's bounds and format.
fn check_integer(schema: &Value, value: &Value, err: &mut impl FnMut(String)) {
    check_bounds(schema, value, err);
    match (schema.get("format").and_then(Value::as_str), value.as_i64()) {
        (Some("int32"), Some(n)) if i32::try_from(n).is_err() => {
            err(format!("{n} does not fit a 32-bit integer"))
        }
        (_, None) => err(format!("{value} does not fit a 64-bit integer")),
        _ => {}
    }
}

/// A value against the schema's `enum`.
fn check_enum(schema: &Value, value: &Value, err: &mut impl FnMut(String)) {
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let names: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
        err(format!(
            "unsupported value {}: must be one of {}",
            shown(value),
            names.join(", ")
        ));
    }
}

fn check_bounds(schema: &Value, value: &Value, err: &mut impl FnMut(String)) {
    let Some(n) = value.as_f64() else { return };
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && n < min
    {
        err(format!("must be at least {}, got {value}", trim_float(min)));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && n > max
    {
        err(format!("must be at most {}, got {value}", trim_float(max)));
    }
}

fn trim_float(f: f64) -> String {
    if f.fract() == 0.0 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Short JSON rendering of a string for messages (bounded length).
pub fn quote(text: &str) -> String {
    let shown: String = text.chars().take(80).collect();
    let suffix = if text.chars().count() > 80 { "…" } else { "" };
    format!(
        "{}{suffix}",
        escape_controls(&Value::String(shown).to_string())
    )
}

/// JSON text with the control characters JSON leaves raw (DEL, C1) escaped too, so that they
/// never reach a terminal.
fn escape_controls(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_control() {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// What the patterns of the Prism schemas mean, in words, for messages.
fn describe_pattern(pattern: &str) -> Option<&'static str> {
    use crate::api::{ADMIN_ENDPOINTS, DNS_LABEL, DURATION, HOSTNAME, SEMVER, SEMVER_REQ};
    Some(match pattern {
        p if p == DURATION => "a duration such as 300s, 5m, 1h30m or 250ms",
        p if p == SEMVER => "a semantic version such as 1.4.2 (no leading v)",
        p if p == SEMVER_REQ => "a version requirement such as 1.4, ^1.4.2 or >=1.2, <2",
        p if p == DNS_LABEL => {
            "a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit"
        }
        r"^[a-z0-9]([-_a-z0-9]*[a-z0-9])?$" | r"^[a-z0-9]([_a-z0-9]*[a-z0-9])?$" => {
            "made of lower-case letters, digits, '-' and '_', starting and ending with a letter or digit"
        }
        r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$" => {
            "a DNS subdomain name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
        }
        p if p == HOSTNAME => {
            "a lower-case DNS host name such as grpc.example.com, or *.example.com"
        }
        p if p == ADMIN_ENDPOINTS => {
            "a host:port address, or up to 16 of them separated by commas (the nodes of an HA admin)"
        }
        r"^[a-z0-9]([-a-z0-9._:]*[a-z0-9])?(/[a-z0-9]([-a-z0-9._]*[a-z0-9])?)*$" => {
            "a registry and repository prefix such as ghcr.io/prism/plugins (lower-case)"
        }
        r"^[a-z0-9]([-a-z0-9._/]*[a-z0-9])?(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$" => {
            "an image name such as pg-plugin:1.2.0: a lower-case path, then an optional :tag and @sha256: digest"
        }
        r"^[-._a-zA-Z0-9]+$" => "a Secret key: letters, digits, '-', '_' and '.'",
        _ => return None,
    })
}

/// Whether a string that failed its pattern may hold credentials (`user:password@host`, a URL
/// with user information), so that messages must not repeat it.
fn may_hold_credentials(text: &str) -> bool {
    text.contains('@') && text.contains(':')
}

/// Short rendering of any value for messages (bounded length).
pub fn shown(value: &Value) -> String {
    match value {
        Value::String(text) => quote(text),
        other => {
            let text = escape_controls(&other.to_string());
            match text.char_indices().nth(80) {
                Some((cut, _)) => format!("{}…", &text[..cut]),
                None => text,
            }
        }
    }
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn unknown_field_message(key: &str, known: &[&str]) -> String {
    if key == "<<" {
        return "unknown field \"<<\": merge keys are not supported; write the fields out".into();
    }
    let close = known
        .iter()
        .filter(|k| k.eq_ignore_ascii_case(key) || strsim(k, key) <= 2)
        .min_by_key(|k| strsim(k, key));
    match close {
        Some(k) => format!("unknown field {}; did you mean {}?", quote(key), quote(k)),
        None if known.is_empty() => format!("unknown field {}", quote(key)),
        None => format!(
            "unknown field {}; known fields: {}",
            quote(key),
            known.join(", ")
        ),
    }
}

/// Levenshtein distance, for "did you mean" hints.
fn strsim(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod crd_tests {
    use super::*;
    use kube::CustomResourceExt;

    /// The schemas a render embeds are those the CRD types derive.
    #[test]
    fn embedded_schemas_match_the_types() {
        let mut derived = ByKind::new();
        for crd in crate::api::crds() {
            for version in crd.spec.versions {
                let schema = version
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .expect("derived CRDs have a schema");
                let schema = serde_json::to_value(schema).expect("schema serializes");
                derived
                    .entry(crd.spec.names.kind.clone())
                    .or_default()
                    .insert(version.name, schema);
            }
        }
        let embedded: ByKind = serde_json::from_str(EMBEDDED).unwrap();
        assert_eq!(
            embedded.keys().collect::<Vec<_>>(),
            ["PrismNamespace", "PrismPlugin", "PrismShard"]
        );
        assert!(
            embedded
                .values()
                .all(|v| v.keys().eq(["v1alpha1", "v1beta1"])),
            "every kind has both versions"
        );
        assert!(
            embedded == derived,
            "crds/ is out of date with crates/api: run `prism-render crds --out-dir crds`"
        );
        let (from_types, from_files) = (Schemas::from_openapi(derived), Schemas::new());
        assert_eq!(from_types.kinds.len(), from_files.kinds.len());
        for (key, (schema, _)) in &from_types.kinds {
            assert_eq!(&from_files.kinds[key].0, schema, "{key:?}");
        }
    }

    /// A shard autoscaled without `replicas` is valid in both versions; with it, v1alpha1
    /// checks the bounds and v1beta1 refuses it.
    #[test]
    fn replicas_under_autoscaling_by_version() {
        let schemas = Schemas::new();
        let shard = |version: &str, replicas: Option<i64>| {
            let mut spec = serde_json::json!({"product": "p", "autoscaling": {"enabled": true, "minReplicas": 2, "maxReplicas": 10, "targetCPUUtilization": 70}});
            if let Some(r) = replicas {
                spec["replicas"] = r.into();
            }
            let object = serde_json::json!({"apiVersion": format!("prism.io/{version}"), "kind": "PrismShard", "metadata": {"name": "s"}, "spec": spec});
            schemas
                .validate("PrismShard", version, &object)
                .into_iter()
                .map(|d| format!("{}: {}", d.path, d.message))
                .collect::<Vec<_>>()
        };
        for version in ["v1alpha1", "v1beta1"] {
            assert_eq!(shard(version, None), Vec::<String>::new(), "{version}");
        }
        assert_eq!(shard("v1alpha1", Some(3)), Vec::<String>::new());
        assert_eq!(
            shard("v1alpha1", Some(1)),
            [
                "spec.replicas: replicas must lie within autoscaling.minReplicas and autoscaling.maxReplicas"
            ]
        );
        assert_eq!(
            shard("v1beta1", Some(3)),
            [format!("spec.replicas: {}", crate::api::REPLICAS_MESSAGE)]
        );
    }

    #[test]
    fn backends_are_a_set() {
        let crd = serde_json::to_value(crate::api::PrismShard::crd()).unwrap();
        let backends = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["backends"];
        assert_eq!(backends["x-kubernetes-list-type"], "set");
        let schemas = Schemas::new();
        let dup = serde_json::json!({"apiVersion": crate::api::API_VERSION, "kind": "PrismShard", "metadata": {"name": "s"}, "spec": {"product": "p", "backends": ["pg", "pg"]}});
        let errors = schemas.validate("PrismShard", crate::api::VERSION, &dup);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "spec.backends[1]");
        assert_eq!(
            errors[0].message,
            "duplicate value \"pg\" (first at spec.backends[0])"
        );
    }
}
