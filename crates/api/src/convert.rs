//! Conversion of whole objects (metadata, spec, status) between `prism.io/v1alpha1` and
//! `prism.io/v1beta1`: what the operator's conversion webhook answers and what `prism-render`
//! does to v1alpha1 inputs. Pure, and lossless both ways.
//!
//! Three fields of v1alpha1 have no place in v1beta1 (see [`crate::v1alpha1`]): a
//! `spec.replicas` set on an autoscaled shard, `status.prismInstances`, and a `status.health`
//! outside `Healthy`, `Degraded` and `Unknown`. Converting to v1beta1 takes them out and keeps
//! them in one annotation, [`CONVERSION_ANNOTATION`], as JSON:
//!
//! ```json
//! {"spec":{"replicas":5},"status":{"health":"Warning","prismInstances":["prism-a-0"]},"statusHash":"…"}
//! ```
//!
//! Converting back to v1alpha1 removes the annotation and puts each value back where v1beta1
//! still leaves room for it, and only while it still means what it meant:
//!
//! - `spec.replicas`: while `autoscaling.enabled` holds, `replicas` is unset and the value lies
//!   within the autoscaling bounds (a v1alpha1 reader would otherwise see a shard its own rule
//!   refuses);
//! - the status fields: while the status is the one they were taken from (`statusHash`, a hash
//!   of the v1beta1 status). The operator rewrites the status on every change, so once it
//!   writes a v1beta1 status the old pod list and health word are not shown again.
//!
//! So v1alpha1 → v1beta1 → v1alpha1 gives back the same object, and v1beta1 → v1alpha1 →
//! v1beta1 too (both byte for byte), for every object the API server can hold. An annotation
//! map (or metadata) left empty by removing the annotation is removed too: the API server
//! keeps no empty map either, so an empty or null one and none are the same to it. A v1alpha1
//! object that carries the annotation itself loses it: it is the conversion's.

use serde_json::{Map, Value};

use crate::{API_VERSION, KINDS, v1alpha1};

/// Annotation of a v1beta1 object that keeps what its v1alpha1 form held and v1beta1 cannot.
pub const CONVERSION_ANNOTATION: &str = "prism.io/conversion-v1alpha1";

/// Health words v1beta1 knows.
const HEALTH: [&str; 3] = ["Healthy", "Degraded", "Unknown"];

/// Why an object cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConvertError {
    /// The requested version is not a Prism version.
    UnknownTarget(String),
    /// The object's `apiVersion` is missing or not a Prism version.
    UnknownApiVersion(String),
    /// The object's `kind` is missing or not a Prism kind.
    UnknownKind(String),
    /// The object is not a JSON object, or its metadata cannot hold the annotation.
    Malformed(String),
}

impl std::fmt::Display for ConvertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let versions = format!("{} or {}", v1alpha1::API_VERSION, API_VERSION);
        match self {
            Self::UnknownTarget(to) => {
                write!(f, "cannot convert to {to:?}: expected {versions}")
            }
            Self::UnknownApiVersion(v) => {
                write!(f, "unsupported apiVersion {v}: expected {versions}")
            }
            Self::UnknownKind(k) => write!(
                f,
                "unsupported kind {k}: expected PrismNamespace, PrismPlugin or PrismShard"
            ),
            Self::Malformed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ConvertError {}

/// The two versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1alpha1,
    V1beta1,
}

impl Version {
    fn of(api_version: &str) -> Option<Self> {
        match api_version {
            v1alpha1::API_VERSION => Some(Self::V1alpha1),
            API_VERSION => Some(Self::V1beta1),
            _ => None,
        }
    }
}

/// `object` (a whole PrismShard, PrismPlugin or PrismNamespace of either version) as
/// `to_api_version` (`prism.io/v1alpha1` or `prism.io/v1beta1`); the same object when it is
/// already at that version.
pub fn convert(object: &Value, to_api_version: &str) -> Result<Value, ConvertError> {
    let to = Version::of(to_api_version)
        .ok_or_else(|| ConvertError::UnknownTarget(to_api_version.to_string()))?;
    let Some(map) = object.as_object() else {
        return Err(ConvertError::Malformed(format!(
            "a Prism object must be a JSON object, got {}",
            short(object)
        )));
    };
    let from = match map.get("apiVersion") {
        Some(Value::String(v)) => Version::of(v)
            .ok_or_else(|| ConvertError::UnknownApiVersion(short(&map["apiVersion"])))?,
        Some(other) => return Err(ConvertError::UnknownApiVersion(short(other))),
        None => return Err(ConvertError::UnknownApiVersion("(none)".into())),
    };
    let kind = match map.get("kind") {
        Some(Value::String(k)) if KINDS.contains(&k.as_str()) => k.clone(),
        Some(other) => return Err(ConvertError::UnknownKind(short(other))),
        None => return Err(ConvertError::UnknownKind("(none)".into())),
    };
    let mut out = map.clone();
    if from == to {
        return Ok(Value::Object(out));
    }
    out.insert("apiVersion".into(), Value::String(to_api_version.into()));
    match to {
        Version::V1beta1 => to_v1beta1(&kind, &mut out)?,
        Version::V1alpha1 => to_v1alpha1(&kind, &mut out),
    }
    Ok(Value::Object(out))
}

/// v1alpha1 → v1beta1: takes out what v1beta1 cannot hold into the annotation.
fn to_v1beta1(kind: &str, object: &mut Map<String, Value>) -> Result<(), ConvertError> {
    let mut kept = Map::new();
    match kind {
        "PrismShard" => {
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut)
                && autoscaled(spec)
                && let Some(replicas) = spec.remove("replicas")
            {
                kept.insert("spec".into(), single("replicas", replicas));
            }
        }
        "PrismNamespace" => {
            if let Some(status) = object.get_mut("status").and_then(Value::as_object_mut) {
                let mut taken = Map::new();
                if status.get("health").is_some_and(|h| !in_enum(h)) {
                    taken.insert("health".into(), status.remove("health").expect("present"));
                }
                if let Some(instances) = status.remove("prismInstances") {
                    taken.insert("prismInstances".into(), instances);
                }
                if !taken.is_empty() {
                    let hash = status_hash(&Value::Object(status.clone()));
                    kept.insert("status".into(), Value::Object(taken));
                    kept.insert("statusHash".into(), Value::String(hash));
                }
            }
        }
        _ => {}
    }
    remove_annotation(object);
    if kept.is_empty() {
        return Ok(());
    }
    let text = serde_json::to_string(&kept).expect("JSON serializes");
    annotations(object)?.insert(CONVERSION_ANNOTATION.into(), Value::String(text));
    Ok(())
}

/// v1beta1 → v1alpha1: takes the annotation out and puts back what still applies.
fn to_v1alpha1(kind: &str, object: &mut Map<String, Value>) {
    let Some(kept) = remove_annotation(object) else {
        return;
    };
    match kind {
        "PrismShard" => {
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut)
                && let Some(replicas) = kept.get("spec").and_then(|s| s.get("replicas"))
                && autoscaled(spec)
                && !spec.contains_key("replicas")
                && within_bounds(replicas, &spec["autoscaling"])
            {
                spec.insert("replicas".into(), replicas.clone());
            }
        }
        "PrismNamespace" => {
            if let Some(status) = object.get_mut("status").and_then(Value::as_object_mut)
                && let Some(Value::Object(taken)) = kept.get("status")
                && kept.get("statusHash").and_then(Value::as_str)
                    == Some(status_hash(&Value::Object(status.clone())).as_str())
            {
                for field in ["health", "prismInstances"] {
                    if let Some(value) = taken.get(field)
                        && !status.contains_key(field)
                    {
                        status.insert(field.into(), value.clone());
                    }
                }
            }
        }
        _ => {}
    }
}

/// Whether a shard spec has `autoscaling.enabled: true`.
fn autoscaled(spec: &Map<String, Value>) -> bool {
    spec.get("autoscaling")
        .and_then(|a| a.get("enabled"))
        .and_then(Value::as_bool)
        == Some(true)
}

/// Whether v1alpha1's rule accepts `replicas` under `autoscaling` (what it cannot compare, it
/// does not refuse here: the schema does).
fn within_bounds(replicas: &Value, autoscaling: &Value) -> bool {
    let n = |v: &Value| v.as_i64();
    match (
        n(replicas),
        n(&autoscaling["minReplicas"]),
        n(&autoscaling["maxReplicas"]),
    ) {
        (Some(r), Some(min), Some(max)) => min <= r && r <= max,
        _ => true,
    }
}

fn in_enum(health: &Value) -> bool {
    health.as_str().is_some_and(|h| HEALTH.contains(&h))
}

fn single(key: &str, value: Value) -> Value {
    let mut map = Map::new();
    map.insert(key.into(), value);
    Value::Object(map)
}

/// The annotations of `object`, created when it has none.
fn annotations(object: &mut Map<String, Value>) -> Result<&mut Map<String, Value>, ConvertError> {
    let metadata = object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if metadata.is_null() {
        *metadata = Value::Object(Map::new());
    }
    let Some(metadata) = metadata.as_object_mut() else {
        return Err(ConvertError::Malformed(
            "metadata must be an object to hold the conversion annotation".into(),
        ));
    };
    let annotations = metadata
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if annotations.is_null() {
        *annotations = Value::Object(Map::new());
    }
    annotations.as_object_mut().ok_or_else(|| {
        ConvertError::Malformed(
            "metadata.annotations must be a map of strings to hold the conversion annotation"
                .into(),
        )
    })
}

/// Removes the conversion annotation (and the annotation map, and metadata, it leaves empty);
/// what it kept, when it is the JSON object conversion writes.
fn remove_annotation(object: &mut Map<String, Value>) -> Option<Map<String, Value>> {
    let metadata = object.get_mut("metadata")?.as_object_mut()?;
    let annotations = metadata.get_mut("annotations")?.as_object_mut()?;
    let text = annotations.remove(CONVERSION_ANNOTATION)?;
    if annotations.is_empty() {
        metadata.remove("annotations");
        if metadata.is_empty() {
            object.remove("metadata");
        }
    }
    match serde_json::from_str(text.as_str()?) {
        Ok(Value::Object(kept)) => Some(kept),
        _ => None,
    }
}

/// A hash of a status: FNV-1a (64 bits) of its JSON with keys in order, in hex.
fn status_hash(status: &Value) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    canonical(status, &mut feed);
    format!("{hash:016x}")
}

/// JSON text of `value` with object keys sorted, whatever order a map keeps them in.
fn canonical(value: &Value, out: &mut impl FnMut(&[u8])) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out(b"{");
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out(b",");
                }
                out(Value::String(key.clone()).to_string().as_bytes());
                out(b":");
                canonical(&map[key], out);
            }
            out(b"}");
        }
        Value::Array(items) => {
            out(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out(b",");
                }
                canonical(item, out);
            }
            out(b"]");
        }
        scalar => out(scalar.to_string().as_bytes()),
    }
}

/// A value for a message: its JSON, at most 80 characters.
fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ALPHA: &str = v1alpha1::API_VERSION;

    fn round_trip(object: &Value, via: &str) -> Value {
        let back_to = object["apiVersion"].as_str().unwrap().to_string();
        let there = convert(object, via).unwrap();
        assert_eq!(there["apiVersion"], via);
        convert(&there, &back_to).unwrap()
    }

    fn shard(spec: Value) -> Value {
        json!({"apiVersion": ALPHA, "kind": "PrismShard", "metadata": {"name": "s", "namespace": "n"}, "spec": spec})
    }

    fn autoscaled(replicas: Option<i64>) -> Value {
        let mut spec = json!({"product": "p", "autoscaling": {"enabled": true, "minReplicas": 2, "maxReplicas": 10, "targetCPUUtilization": 70}});
        if let Some(r) = replicas {
            spec["replicas"] = json!(r);
        }
        spec
    }

    #[test]
    fn identity_at_the_same_version() {
        let object = shard(autoscaled(Some(3)));
        assert_eq!(convert(&object, ALPHA).unwrap(), object);
        let beta = json!({"apiVersion": API_VERSION, "kind": "PrismPlugin", "metadata": {"name": "p"}, "spec": {}});
        assert_eq!(convert(&beta, API_VERSION).unwrap(), beta);
    }

    #[test]
    fn plugins_change_only_their_api_version() {
        let object = json!({"apiVersion": ALPHA, "kind": "PrismPlugin", "metadata": {"name": "p"}, "spec": {"version": "1.0.0"}});
        let beta = convert(&object, API_VERSION).unwrap();
        let mut expected = object.clone();
        expected["apiVersion"] = json!(API_VERSION);
        assert_eq!(beta, expected);
        assert_eq!(round_trip(&object, API_VERSION), object);
    }

    #[test]
    fn replicas_of_an_autoscaled_shard_wait_in_the_annotation() {
        let object = shard(autoscaled(Some(3)));
        let beta = convert(&object, API_VERSION).unwrap();
        assert_eq!(beta["spec"], autoscaled(None));
        assert_eq!(
            beta["metadata"]["annotations"][CONVERSION_ANNOTATION],
            r#"{"spec":{"replicas":3}}"#
        );
        let alpha = convert(&beta, ALPHA).unwrap();
        assert_eq!(alpha, object);
        assert_eq!(
            serde_json::to_string(&alpha).unwrap(),
            serde_json::to_string(&object).unwrap()
        );
    }

    #[test]
    fn replicas_without_autoscaling_stay() {
        for spec in [
            json!({"product": "p", "replicas": 3}),
            json!({"product": "p", "replicas": 3, "autoscaling": {"enabled": false, "minReplicas": 1, "maxReplicas": 2}}),
        ] {
            let object = shard(spec.clone());
            let beta = convert(&object, API_VERSION).unwrap();
            assert_eq!(beta["spec"], spec);
            assert!(beta["metadata"].get("annotations").is_none());
            assert_eq!(round_trip(&object, API_VERSION), object);
        }
    }

    #[test]
    fn kept_replicas_come_back_only_while_they_still_apply() {
        let beta = convert(&shard(autoscaled(Some(3))), API_VERSION).unwrap();
        // Autoscaling turned off in v1beta1: the shard runs 1 replica, not the old 3.
        let mut off = beta.clone();
        off["spec"]["autoscaling"]["enabled"] = json!(false);
        assert!(
            convert(&off, ALPHA).unwrap()["spec"]
                .get("replicas")
                .is_none()
        );
        // Bounds moved past the kept value: v1alpha1's rule would refuse it.
        let mut moved = beta.clone();
        moved["spec"]["autoscaling"]["minReplicas"] = json!(5);
        let alpha = convert(&moved, ALPHA).unwrap();
        assert!(alpha["spec"].get("replicas").is_none());
        assert!(alpha["metadata"].get("annotations").is_none());
    }

    fn namespace(status: Value, annotations: Option<Value>) -> Value {
        let mut object = json!({"apiVersion": ALPHA, "kind": "PrismNamespace",
            "metadata": {"name": "n"}, "spec": {"backend": "pg", "pattern": "keyvalue"}, "status": status});
        if let Some(a) = annotations {
            object["metadata"]["annotations"] = a;
        }
        object
    }

    #[test]
    fn status_fields_v1beta1_lacks_wait_in_the_annotation() {
        let status = json!({"state": "Active", "health": "Warning", "prismInstances": ["prism-a-0", "prism-a-1"], "assignedProxy": "prism-a-1"});
        let object = namespace(status, Some(json!({"team": "a"})));
        let beta = convert(&object, API_VERSION).unwrap();
        assert_eq!(
            beta["status"],
            json!({"state": "Active", "assignedProxy": "prism-a-1"})
        );
        assert_eq!(beta["metadata"]["annotations"]["team"], "a");
        let kept: Value = serde_json::from_str(
            beta["metadata"]["annotations"][CONVERSION_ANNOTATION]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            kept["status"],
            json!({"health": "Warning", "prismInstances": ["prism-a-0", "prism-a-1"]})
        );
        assert_eq!(convert(&beta, ALPHA).unwrap(), object);
    }

    #[test]
    fn health_words_of_the_enum_stay() {
        for health in HEALTH {
            let object = namespace(json!({"health": health}), None);
            let beta = convert(&object, API_VERSION).unwrap();
            assert_eq!(beta["status"]["health"], health);
            assert!(beta["metadata"].get("annotations").is_none());
        }
    }

    #[test]
    fn a_status_written_since_drops_what_was_kept() {
        let object = namespace(
            json!({"health": "odd", "prismInstances": ["prism-a-0"]}),
            None,
        );
        let mut beta = convert(&object, API_VERSION).unwrap();
        beta["status"]["health"] = json!("Healthy");
        let alpha = convert(&beta, ALPHA).unwrap();
        assert_eq!(alpha["status"], json!({"health": "Healthy"}));
        assert!(alpha["metadata"].get("annotations").is_none());
    }

    #[test]
    fn v1beta1_objects_round_trip() {
        let object = json!({"apiVersion": API_VERSION, "kind": "PrismNamespace",
            "metadata": {"name": "n", "annotations": {"a": "b"}},
            "spec": {"backend": "pg", "pattern": "keyvalue"},
            "status": {"health": "Degraded", "state": "Active"}});
        assert_eq!(round_trip(&object, ALPHA), object);
        let beta = convert(&shard(autoscaled(Some(4))), API_VERSION).unwrap();
        assert_eq!(round_trip(&beta, ALPHA), beta);
    }

    #[test]
    fn a_v1alpha1_object_carrying_the_annotation_loses_it() {
        let object = namespace(
            json!({}),
            Some(json!({CONVERSION_ANNOTATION: "{\"spec\":{\"replicas\":9}}"})),
        );
        let beta = convert(&object, API_VERSION).unwrap();
        assert!(beta["metadata"].get("annotations").is_none());
    }

    #[test]
    fn a_malformed_annotation_is_dropped() {
        let mut beta = convert(&shard(autoscaled(Some(4))), API_VERSION).unwrap();
        beta["metadata"]["annotations"][CONVERSION_ANNOTATION] = json!("not json");
        let alpha = convert(&beta, ALPHA).unwrap();
        assert_eq!(alpha["spec"], autoscaled(None));
        assert!(alpha["metadata"].get("annotations").is_none());
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let object = shard(json!({"product": "p"}));
        assert_eq!(
            convert(&object, "prism.io/v2").unwrap_err().to_string(),
            "cannot convert to \"prism.io/v2\": expected prism.io/v1alpha1 or prism.io/v1beta1"
        );
        let mut other = object.clone();
        other["apiVersion"] = json!("apps/v1");
        assert_eq!(
            convert(&other, API_VERSION).unwrap_err().to_string(),
            "unsupported apiVersion \"apps/v1\": expected prism.io/v1alpha1 or prism.io/v1beta1"
        );
        let mut other = object.clone();
        other["kind"] = json!("Deployment");
        assert_eq!(
            convert(&other, API_VERSION).unwrap_err(),
            ConvertError::UnknownKind("\"Deployment\"".into())
        );
        assert!(matches!(
            convert(&json!([1]), API_VERSION),
            Err(ConvertError::Malformed(_))
        ));
        let mut bad = shard(autoscaled(Some(3)));
        bad["metadata"]["annotations"] = json!("text");
        assert!(matches!(
            convert(&bad, API_VERSION),
            Err(ConvertError::Malformed(_))
        ));
    }

    #[test]
    fn kept_values_read_back_exactly() {
        let object = namespace(json!({"health": -3.243_999_605_017_023_4e-215}), None);
        let back = round_trip(&object, API_VERSION);
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            serde_json::to_string(&object).unwrap()
        );
    }

    #[test]
    fn metadata_conversion_created_goes_again() {
        let mut object = shard(autoscaled(Some(3)));
        object.as_object_mut().unwrap().remove("metadata");
        let beta = convert(&object, API_VERSION).unwrap();
        assert!(beta["metadata"]["annotations"][CONVERSION_ANNOTATION].is_string());
        assert_eq!(convert(&beta, ALPHA).unwrap(), object);
    }

    #[test]
    fn the_status_hash_ignores_key_order() {
        let a = json!({"b": 1, "a": [{"y": 2, "x": 1}]});
        assert_eq!(status_hash(&a), status_hash(&a.clone()));
        assert_ne!(status_hash(&a), status_hash(&json!({"b": 2, "a": []})));
    }
}
