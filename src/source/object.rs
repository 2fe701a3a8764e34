//! One object, as the API server's admission sees it, checked by the very code that checks a
//! document for `prism-render validate`: structure, metadata, schema, CEL rules and the rules
//! the CRD cannot express. The validating webhook of `prism-operator` calls this, so a refusal
//! from `kubectl apply` says what the CLI says about the same object.

use std::sync::{Arc, LazyLock};

use serde_json::Value;

use super::Document;
use super::fleet::{Typed, parse_one};
use super::schema::Schemas;
use crate::error::Diagnostic;

/// The schemas of every kind, compiled once per process.
static SCHEMAS: LazyLock<Schemas> = LazyLock::new(Schemas::new);

/// Name under which an object checked on its own appears in its diagnostics' `file`.
pub const OBJECT_FILE: &str = "object";

/// Checks `object` (a whole custom resource, as JSON) on its own; objects without
/// `metadata.namespace` are taken to be in `namespace`. Every problem carries its field path
/// and the message `validate` prints for it.
pub fn check_object(object: &Value, namespace: &str) -> Result<Typed, Vec<Diagnostic>> {
    let text =
        serde_yaml::to_string(object).map_err(|e| vec![Diagnostic::at("", e.to_string())])?;
    let doc = Document {
        file: OBJECT_FILE.into(),
        line: 1,
        text: text.into(),
    };
    let parsed = parse_one(Arc::new(doc), &SCHEMAS, namespace);
    if !parsed.problems.is_empty() {
        return Err(parsed.problems);
    }
    match parsed.typed {
        Some(Ok(typed)) => Ok(typed),
        Some(Err(problem)) => Err(vec![problem]),
        None => Err(vec![Diagnostic::at("", "not a Prism object")]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shard(spec: Value) -> Value {
        json!({"apiVersion": crate::api::API_VERSION, "kind": "PrismShard",
               "metadata": {"name": "s", "namespace": "prod"}, "spec": spec})
    }

    #[test]
    fn a_valid_object_is_typed() {
        let checked = check_object(&shard(json!({"product": "p"})), "prod");
        assert!(matches!(checked, Ok(Typed::Shard(s)) if s.spec.product == "p"));
    }

    #[test]
    fn problems_name_the_field_and_say_what_validate_says() {
        let problems = check_object(&shard(json!({"product": "p", "replicas": 5000})), "prod")
            .err()
            .unwrap();
        let said: Vec<(String, String)> =
            problems.into_iter().map(|d| (d.path, d.message)).collect();
        assert_eq!(
            said,
            [(
                "spec.replicas".to_string(),
                "must be at most 1000, got 5000".to_string()
            )]
        );
    }

    #[test]
    fn server_filled_metadata_is_accepted() {
        let mut object = shard(json!({"product": "p"}));
        object["metadata"]["uid"] = json!("0b7c2f1e-1111-2222-3333-444455556666");
        object["metadata"]["generation"] = json!(1);
        object["metadata"]["creationTimestamp"] = json!("2026-12-07T00:00:00Z");
        object["metadata"]["managedFields"] = json!([{"manager": "kubectl", "operation": "Apply"}]);
        assert!(check_object(&object, "prod").is_ok());
    }
}
