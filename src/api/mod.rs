//! The three custom resources of `prism.io/v1alpha1` and the types they share.
//!
//! Everything the API server validates is declared here once: OpenAPI constraints through
//! `schemars` attributes and CEL rules through `x_kube`. The generated CRDs in `crds/` come from
//! these types, and `prism-render validate` checks inputs against the very same schemas.

mod common;
mod namespace;
mod plugin;
mod shard;

pub use common::*;
pub use namespace::*;
pub use plugin::*;
pub use shard::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of every Prism resource.
pub const GROUP: &str = "prism.io";
/// The one served and stored version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` string of every Prism resource.
pub const API_VERSION: &str = "prism.io/v1alpha1";

/// The CRDs of all three kinds, in a stable order (by kind).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![PrismNamespace::crd(), PrismPlugin::crd(), PrismShard::crd()]
}

#[cfg(test)]
mod tests {
    //! The CEL rules, evaluated offline with kube's client-side CEL: each accepts and rejects.
    use super::*;
    use serde_json::json;

    fn shard(spec: serde_json::Value) -> PrismShard {
        serde_json::from_value(json!({
            "apiVersion": API_VERSION, "kind": "PrismShard", "metadata": {"name": "s"}, "spec": spec
        }))
        .unwrap()
    }

    fn messages(r: Result<(), kube::core::cel::ValidationErrors>) -> Vec<String> {
        r.err()
            .map(|e| e.into_vec().into_iter().map(|e| e.message).collect())
            .unwrap_or_default()
    }

    #[test]
    fn autoscaling_bounds() {
        let ok = shard(
            json!({"product": "p", "replicas": 3, "autoscaling": {"enabled": true, "minReplicas": 2, "maxReplicas": 5, "targetRPS": 10}}),
        );
        assert_eq!(messages(ok.validate_cel()), Vec::<String>::new());
        let inverted = shard(
            json!({"product": "p", "replicas": 3, "autoscaling": {"enabled": true, "minReplicas": 6, "maxReplicas": 5, "targetRPS": 10}}),
        );
        assert!(
            messages(inverted.validate_cel())
                .contains(&"minReplicas must not exceed maxReplicas".to_string())
        );
        let outside = shard(
            json!({"product": "p", "replicas": 9, "autoscaling": {"enabled": true, "minReplicas": 2, "maxReplicas": 5, "targetRPS": 10}}),
        );
        assert_eq!(
            messages(outside.validate_cel()),
            ["replicas must lie within autoscaling.minReplicas and autoscaling.maxReplicas"]
        );
        let disabled = shard(
            json!({"product": "p", "replicas": 9, "autoscaling": {"enabled": false, "minReplicas": 2, "maxReplicas": 5}}),
        );
        assert_eq!(messages(disabled.validate_cel()), Vec::<String>::new());
        let no_target = shard(
            json!({"product": "p", "replicas": 3, "autoscaling": {"enabled": true, "minReplicas": 2, "maxReplicas": 5}}),
        );
        assert_eq!(
            messages(no_target.validate_cel()),
            ["autoscaling needs targetRPS or targetCPUUtilization"]
        );
    }

    #[test]
    fn backends_are_a_set() {
        let crd = serde_json::to_value(PrismShard::crd()).unwrap();
        let backends = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["backends"];
        assert_eq!(backends["x-kubernetes-list-type"], "set");
        let schemas = crate::source::schema::Schemas::new();
        let dup = json!({"apiVersion": API_VERSION, "kind": "PrismShard", "metadata": {"name": "s"}, "spec": {"product": "p", "backends": ["pg", "pg"]}});
        let errors = schemas.validate("PrismShard", &dup);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "spec.backends[1]");
        assert_eq!(
            errors[0].message,
            "duplicate value \"pg\" (first at spec.backends[0])"
        );
    }

    fn plugin(deployment: serde_json::Value) -> PrismPlugin {
        serde_json::from_value(json!({
            "apiVersion": API_VERSION, "kind": "PrismPlugin", "metadata": {"name": "p"},
            "spec": {"version": "1.0.0", "source": {"registry": "r", "image": "i:1"}, "deployment": deployment}
        }))
        .unwrap()
    }

    #[test]
    fn plugin_deployment_fields_fit_the_type() {
        assert!(
            plugin(json!({"type": "remote", "replicas": 3}))
                .validate_cel()
                .is_ok()
        );
        assert_eq!(
            messages(plugin(json!({"type": "sidecar", "replicas": 3})).validate_cel()),
            ["replicas applies to remote plugins only"]
        );
        assert!(
            plugin(json!({"type": "in-process", "artifactPath": "/p"}))
                .validate_cel()
                .is_ok()
        );
        assert_eq!(
            messages(plugin(json!({"type": "remote", "artifactPath": "/p"})).validate_cel()),
            ["artifactPath applies to in-process plugins only"]
        );
    }

    fn namespace(extra: serde_json::Value) -> PrismNamespace {
        let mut spec = json!({"backend": "postgres", "pattern": "keyvalue"});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(json!({"apiVersion": API_VERSION, "kind": "PrismNamespace", "metadata": {"name": "n"}, "spec": spec})).unwrap()
    }

    #[test]
    fn connection_string_comes_from_one_place() {
        let secret = json!({"secretKeyRef": {"name": "db", "key": "url"}});
        assert!(
            namespace(json!({"connectionStringFrom": secret}))
                .validate_cel()
                .is_ok()
        );
        assert!(
            namespace(json!({"backendConfig": {"connection_string": "postgres://x"}}))
                .validate_cel()
                .is_ok()
        );
        let both = namespace(
            json!({"connectionStringFrom": secret, "backendConfig": {"connection_string": "postgres://x"}}),
        );
        assert_eq!(
            messages(both.validate_cel()),
            [
                "set the connection string in backendConfig.connection_string or in connectionStringFrom, not both"
            ]
        );
    }

    #[test]
    fn caching_needs_a_ttl() {
        assert!(
            namespace(json!({"caching": {"enabled": true, "ttl": "30s"}}))
                .validate_cel()
                .is_ok()
        );
        assert!(
            namespace(json!({"caching": {"enabled": false}}))
                .validate_cel()
                .is_ok()
        );
        assert_eq!(
            messages(namespace(json!({"caching": {"enabled": true}})).validate_cel()),
            ["caching.ttl is required when caching is enabled"]
        );
    }

    #[test]
    fn conditions_merge_by_type() {
        let crd = serde_json::to_value(PrismShard::crd()).unwrap();
        let conditions = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
            ["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map");
        assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
    }
}
