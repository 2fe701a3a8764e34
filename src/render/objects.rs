//! Turning template output into checked Kubernetes objects: every document is parsed into its
//! k8s-openapi type and rejected if it carries a field the type does not know; objects are
//! put in Helm's install order; pod templates get their config hash.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::kinds;
use crate::api::CONFIG_HASH_ANNOTATION;

/// One rendered Kubernetes object.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// The whole object, keys sorted.
    pub value: Value,
}

impl Object {
    /// Wraps a JSON object, reading its identity.
    pub fn from_value(value: Value) -> Self {
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        Self {
            api_version: s(&value["apiVersion"]),
            kind: s(&value["kind"]),
            namespace: s(&value["metadata"]["namespace"]),
            name: s(&value["metadata"]["name"]),
            value,
        }
    }

    /// `Kind namespace/name`, for messages.
    pub fn id(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// What names a rendered object, orders it in the output and says where it came from, kept
/// when the object itself is already written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectId {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// The shard it belongs to (its `prism.io/shard` label), if any.
    pub shard: Option<String>,
}

impl ObjectId {
    /// The id of `o`.
    pub fn of(o: &Object) -> Self {
        Self {
            api_version: o.api_version.clone(),
            kind: o.kind.clone(),
            namespace: o.namespace.clone(),
            name: o.name.clone(),
            shard: o.value["metadata"]["labels"][super::contract::SHARD_LABEL]
                .as_str()
                .map(str::to_string),
        }
    }

    /// `Kind namespace/name`, for messages.
    pub fn id(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }

    /// The output order: [`sort_objects`]'s.
    pub fn order(&self) -> OrderKey<'_> {
        OrderKey::new(&self.kind, &self.namespace, &self.name)
    }
}

/// Where an object goes in the output: Helm's install order of its kind, then namespace and
/// name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrderKey<'a> {
    rank: usize,
    kind: &'a str,
    namespace: &'a str,
    name: &'a str,
}

impl<'a> OrderKey<'a> {
    /// The key of an object of `kind` named `namespace/name`.
    pub fn new(kind: &'a str, namespace: &'a str, name: &'a str) -> Self {
        Self {
            rank: kinds::install_rank(kind),
            kind,
            namespace,
            name,
        }
    }

    /// Position of the kind in the install order.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The kind.
    pub fn kind(&self) -> &'a str {
        self.kind
    }

    /// The namespace.
    pub fn namespace(&self) -> &'a str {
        self.namespace
    }

    /// The name.
    pub fn name(&self) -> &'a str {
        self.name
    }
}

/// A template produced something that is not a valid object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template {template}: {message}")]
pub struct RenderError {
    /// Template name.
    pub template: String,
    /// What is wrong.
    pub message: String,
}

impl RenderError {
    pub(crate) fn new(template: &str, message: impl Into<String>) -> Self {
        Self {
            template: template.into(),
            message: message.into(),
        }
    }
}

/// Parses one template's output into a checked object.
pub(crate) fn parse_rendered(template: &str, text: &str) -> Result<Object, RenderError> {
    let original: Value = match crate::output::template_yaml::parse(text) {
        Some(v) => {
            #[cfg(test)]
            assert_eq!(
                Ok(&v),
                serde_yaml::from_str::<Value>(text)
                    .as_ref()
                    .map_err(|e| e.to_string())
            );
            v
        }
        None => serde_yaml::from_str(text)
            .map_err(|e| RenderError::new(template, format!("output is not valid YAML: {e}")))?,
    };
    let kind = original["kind"].as_str().unwrap_or_default().to_string();
    let typed = match kinds::child_kind(&kind) {
        Some(k) => (k.round_trip)(&original),
        None => Err(format!("renders unsupported kind {kind:?}")),
    }
    .map_err(|m| RenderError::new(template, m))?;
    if let Some(path) = unknown_field(&original, &typed, String::new()) {
        return Err(RenderError::new(
            template,
            format!("{kind} has unknown field {path}"),
        ));
    }
    Ok(Object::from_value(sort_keys(typed)))
}

/// First path present (and not null) in `original` but missing after the typed round trip.
fn unknown_field(original: &Value, typed: &Value, path: String) -> Option<String> {
    match (original, typed) {
        (Value::Object(a), Value::Object(b)) => a.iter().find_map(|(k, v)| {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            match b.get(k) {
                None if !v.is_null() => Some(p),
                None => None,
                Some(t) => unknown_field(v, t, p),
            }
        }),
        (Value::Array(a), Value::Array(b)) => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (v, t))| unknown_field(v, t, format!("{path}[{i}]"))),
        _ => None,
    }
}

/// Recursively orders object keys, whatever map type serde_json was built with.
pub fn sort_keys(mut v: Value) -> Value {
    sort_keys_in_place(&mut v);
    v
}

/// [`sort_keys`] without moving the value: maps whose keys are already in order (all of them
/// when serde_json keeps its maps sorted) are left as they are, not rebuilt.
fn sort_keys_in_place(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if !map.keys().is_sorted() {
                let mut entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                *map = entries.into_iter().collect();
            }
            map.values_mut().for_each(sort_keys_in_place);
        }
        Value::Array(items) => items.iter_mut().for_each(sort_keys_in_place),
        _ => {}
    }
}

/// Whether every map in `v` has its keys in order.
fn keys_sorted(v: &Value) -> bool {
    match v {
        Value::Object(map) => map.keys().is_sorted() && map.values().all(keys_sorted),
        Value::Array(items) => items.iter().all(keys_sorted),
        _ => true,
    }
}

/// SHA-256 (hex) over the canonical JSON of `parts`.
pub fn hash_json(parts: &[&Value]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        if keys_sorted(p) {
            serde_json::to_writer(&mut h, p).expect("JSON serializes");
        } else {
            serde_json::to_writer(&mut h, &sort_keys((*p).clone())).expect("JSON serializes");
        }
        h.update(b"\n");
    }
    format!("{:x}", h.finalize())
}

/// Sets the config-hash annotation of a workload's pod template to the hash of the template
/// itself and of `extra` (e.g. the ConfigMap data the pods mount).
pub(crate) fn stamp_config_hash(workload: &mut Object, extra: &[&Value]) {
    let template = &mut workload.value["spec"]["template"];
    if let Some(annotations) = template["metadata"]
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(CONFIG_HASH_ANNOTATION);
    }
    let mut parts = vec![&*template];
    parts.extend_from_slice(extra);
    let hash = hash_json(&parts);
    let meta = template["metadata"]
        .as_object_mut()
        .expect("pod templates have metadata");
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    annotations[CONFIG_HASH_ANNOTATION] = Value::String(hash);
    workload.value = sort_keys(std::mem::take(&mut workload.value));
}

/// Sorts objects by install order of their kind, then namespace, then name.
pub fn sort_objects(objects: &mut [Object]) {
    fn key(o: &Object) -> OrderKey<'_> {
        OrderKey::new(&o.kind, &o.namespace, &o.name)
    }
    objects.sort_by(|a, b| key(a).cmp(&key(b)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_fields_the_type_does_not_know() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: b}\nspec:\n  ports: [{port: 80, targetPrt: 8080}]\n";
        let err = parse_rendered("t.yaml", text).unwrap_err();
        assert_eq!(
            err.message,
            "Service has unknown field spec.ports[0].targetPrt"
        );
    }

    #[test]
    fn rejects_wrong_types_with_the_path() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports: [{port: eighty}]\n";
        let err = parse_rendered("t.yaml", text).unwrap_err();
        assert!(
            err.message.contains("spec.ports[0].port"),
            "{}",
            err.message
        );
    }

    #[test]
    fn orders_like_helm() {
        let mk = |kind: &str, name: &str| {
            Object::from_value(
                serde_json::json!({"kind": kind, "metadata": {"name": name, "namespace": "n"}}),
            )
        };
        let mut objs = vec![
            mk("StatefulSet", "a"),
            mk("PrismShard", "a"),
            mk("Service", "b"),
            mk("Service", "a"),
            mk("ConfigMap", "z"),
            mk("PrismNamespace", "a"),
        ];
        sort_objects(&mut objs);
        let got: Vec<String> = objs
            .iter()
            .map(|o| format!("{}/{}", o.kind, o.name))
            .collect();
        assert_eq!(
            got,
            [
                "ConfigMap/z",
                "Service/a",
                "Service/b",
                "StatefulSet/a",
                "PrismNamespace/a",
                "PrismShard/a"
            ]
        );
    }
}
