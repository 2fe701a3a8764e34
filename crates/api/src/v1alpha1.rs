//! `prism.io/v1alpha1`, the first version, still served: described as its differences from
//! v1beta1 (the version the Rust types are), not as a second copy of every type.
//!
//! | kind | field | v1alpha1 | v1beta1 |
//! |---|---|---|---|
//! | PrismShard | `spec.replicas` | optional; with `autoscaling.enabled`, when set, within its bounds (and unused) | optional; must be unset with `autoscaling.enabled` |
//! | PrismNamespace | `status.health` | any string | `Healthy`, `Degraded` or `Unknown` |
//! | PrismNamespace | `status.prismInstances` | the pods of the shard | gone |
//!
//! [`schema`] applies these differences to the v1beta1 schema of a kind;
//! [`crate::convert`] converts objects between the two versions.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinitionVersion, CustomResourceValidation, JSONSchemaProps,
};
use serde_json::{Value, json};

/// `v1alpha1`.
pub const VERSION: &str = "v1alpha1";
/// `prism.io/v1alpha1`.
pub const API_VERSION: &str = "prism.io/v1alpha1";

/// The v1alpha1 CEL rule of `spec.replicas`: when set under autoscaling, within its bounds.
pub const REPLICAS_RULE: &str = "!has(self.autoscaling) || !self.autoscaling.enabled || !has(self.replicas) || (self.replicas >= self.autoscaling.minReplicas && self.replicas <= self.autoscaling.maxReplicas)";
/// The message of [`REPLICAS_RULE`].
pub const REPLICAS_MESSAGE: &str =
    "replicas must lie within autoscaling.minReplicas and autoscaling.maxReplicas";

/// One difference of a v1alpha1 schema from the v1beta1 one.
enum Change {
    /// Sets the value at a JSON pointer of the schema (its parent must exist).
    Set(&'static str, Value),
    /// Removes the value at a JSON pointer of the schema.
    Remove(&'static str),
    /// Replaces the CEL rule `rule` of the object schema at a JSON pointer.
    Rule {
        at: &'static str,
        rule: &'static str,
        with: Value,
    },
}

/// The differences of `kind`'s v1alpha1 schema from its v1beta1 schema.
fn changes(kind: &str) -> Vec<Change> {
    match kind {
        "PrismShard" => vec![
            Change::Rule {
                at: "/properties/spec",
                rule: crate::REPLICAS_RULE,
                with: json!({
                    "fieldPath": ".replicas",
                    "message": REPLICAS_MESSAGE,
                    "rule": REPLICAS_RULE,
                }),
            },
            Change::Set(
                "/properties/spec/properties/replicas/description",
                json!(
                    "Proxy replicas, 1 when unset. With autoscaling it is unused (the shard starts at \
                     `autoscaling.minReplicas` and the autoscaler owns the count) and, when set, must \
                     lie within the autoscaling bounds."
                ),
            ),
        ],
        "PrismNamespace" => vec![
            Change::Remove("/properties/status/properties/health/enum"),
            Change::Set(
                "/properties/status/properties/prismInstances",
                json!({
                    "description": "Proxy pods of that shard.",
                    "items": {"type": "string"},
                    "type": "array",
                }),
            ),
        ],
        _ => vec![],
    }
}

/// `kind`'s v1alpha1 `openAPIV3Schema` from its v1beta1 one.
///
/// # Panics
///
/// When the v1beta1 schema no longer has what a difference changes (a test derives every
/// kind's schema, so this cannot reach a release).
pub fn schema(kind: &str, v1beta1: &Value) -> Value {
    let mut schema = v1beta1.clone();
    for change in changes(kind) {
        match change {
            Change::Set(pointer, value) => {
                let (parent, key) = pointer.rsplit_once('/').expect("a pointer below the root");
                let parent = schema
                    .pointer_mut(parent)
                    .and_then(Value::as_object_mut)
                    .unwrap_or_else(|| panic!("{kind}: the v1beta1 schema has no {parent}"));
                parent.insert(key.to_string(), value);
            }
            Change::Remove(pointer) => {
                let (parent, key) = pointer.rsplit_once('/').expect("a pointer below the root");
                schema
                    .pointer_mut(parent)
                    .and_then(Value::as_object_mut)
                    .and_then(|p| p.remove(key))
                    .unwrap_or_else(|| panic!("{kind}: the v1beta1 schema has no {pointer}"));
            }
            Change::Rule { at, rule, with } => {
                let rules = schema
                    .pointer_mut(&format!("{at}/x-kubernetes-validations"))
                    .and_then(Value::as_array_mut)
                    .unwrap_or_else(|| panic!("{kind}: the v1beta1 schema has no rules at {at}"));
                let found = rules
                    .iter_mut()
                    .find(|r| r["rule"] == rule)
                    .unwrap_or_else(|| panic!("{kind}: no rule {rule:?} at {at}"));
                *found = with;
            }
        }
    }
    schema
}

/// The v1alpha1 version of a CRD from its v1beta1 version: the same printer columns and
/// subresources, its own schema; served, not stored.
pub fn version(
    kind: &str,
    v1beta1: &CustomResourceDefinitionVersion,
) -> CustomResourceDefinitionVersion {
    let beta_schema = v1beta1
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .map(|s| serde_json::to_value(s).expect("schemas serialize"))
        .expect("derived CRDs have a schema");
    let schema: JSONSchemaProps = serde_json::from_value(schema(kind, &beta_schema))
        .expect("the v1alpha1 schema is a schema");
    CustomResourceDefinitionVersion {
        name: VERSION.into(),
        served: true,
        storage: false,
        schema: Some(CustomResourceValidation {
            open_api_v3_schema: Some(schema),
        }),
        ..v1beta1.clone()
    }
}
