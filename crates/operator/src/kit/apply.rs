//! Server-side apply of rendered objects, skipped when the live object already matches, and
//! pruning of objects an owner no longer renders.
//!
//! A rendered object carries a `prism.io/applied-hash` annotation (the hash of what we apply).
//! It is applied only when that hash differs from the live object's or when a field we set has
//! drifted; so an idle operator makes no write requests at all.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use super::error::Error;
use super::quantity::quantity;
use prism_render::render::Object;
use prism_render::render::objects::{hash_json, sort_keys};

/// Field manager of everything the operator applies.
pub const FIELD_MANAGER: &str = "prism-operator";
/// Annotation with the hash of the applied object.
pub const APPLIED_HASH: &str = "prism.io/applied-hash";

pub use prism_render::render::contract::CHILD_KINDS;

/// The API resource of a child kind.
pub fn api_resource(api_version: &str, kind: &str) -> Option<ApiResource> {
    let (_, _, plural) = CHILD_KINDS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Some(ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind),
        plural,
    ))
}

/// The object as it is applied: owned by `owner`, stamped with its hash.
pub fn desired(obj: &Object, owner: &OwnerReference) -> Value {
    let mut value = obj.value.clone();
    value["metadata"]["ownerReferences"] =
        serde_json::to_value(vec![owner]).expect("owner serializes");
    let hash = hash_json(&[&value]);
    let meta = value["metadata"].as_object_mut().expect("metadata");
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    annotations[APPLIED_HASH] = Value::String(hash[..16].to_string());
    sort_keys(value)
}

/// Whether `desired` must be applied over `live`.
pub fn needs_apply(desired: &Value, live: Option<&Value>) -> bool {
    let Some(live) = live else { return true };
    let hash = |v: &Value| v["metadata"]["annotations"][APPLIED_HASH].clone();
    hash(desired) != hash(live) || !is_subset(&body(desired), live)
}

/// `desired` without its type information, which cached objects and apply answers may lack
/// (identity is checked by the caller): what is compared with a live object.
pub fn body(desired: &Value) -> Value {
    let mut body = desired.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
    }
    body
}

/// Whether every field of `want` has the same value in `have` (extra fields in `have`, such
/// as defaults the API server filled in, are ignored; lists must have the same length).
pub fn is_subset(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w
            .iter()
            .all(|(k, v)| v.is_null() || h.get(k).is_some_and(|hv| is_subset(v, hv))),
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(a, b)| is_subset(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        // The API server rewrites quantities into canonical form ("5000" becomes "5k").
        (Value::String(a), Value::String(b)) => {
            a == b || quantity(a).is_some_and(|x| Some(x) == quantity(b))
        }
        (a, b) => a == b,
    }
}

/// Applies `desired` with server-side apply. With `force`, fields another manager owns are
/// taken over; without it, such a conflict is an error naming the manager and the fields. With
/// `dry_run` nothing is persisted. Returns the object as the API server keeps it. Traced as a span `apply` with the object's kind, namespace
/// and name.
#[tracing::instrument(
    name = "apply",
    skip_all,
    fields(
        otel.name = format!("apply {}", ar.kind),
        k8s.kind = %ar.kind,
        k8s.namespace.name = desired["metadata"]["namespace"].as_str().unwrap_or_default(),
        k8s.object.name = desired["metadata"]["name"].as_str().unwrap_or_default(),
        dry_run,
    )
)]
pub async fn apply(
    client: &Client,
    ar: &ApiResource,
    desired: &Value,
    force: bool,
    dry_run: bool,
) -> kube::Result<DynamicObject> {
    let (api, name) = named(client, ar, desired);
    let mut params = PatchParams::apply(FIELD_MANAGER);
    params.force = force;
    params.dry_run = dry_run;
    api.patch(name, &params, &Patch::Apply(desired)).await
}

/// The object `desired` names as the API server holds it now (not as a cache does).
pub async fn get(
    client: &Client,
    ar: &ApiResource,
    desired: &Value,
) -> kube::Result<Option<DynamicObject>> {
    let (api, name) = named(client, ar, desired);
    api.get_opt(name).await
}

/// The API of `desired`'s kind in its namespace, and its name.
fn named<'a>(
    client: &Client,
    ar: &ApiResource,
    desired: &'a Value,
) -> (Api<DynamicObject>, &'a str) {
    let ns = desired["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default();
    let name = desired["metadata"]["name"].as_str().unwrap_or_default();
    (Api::namespaced_with(client.clone(), ns, ar), name)
}

/// The hash a desired object carries.
pub fn applied_hash(desired: &Value) -> String {
    desired["metadata"]["annotations"][APPLIED_HASH]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Deletes `candidates` (live objects of one owner) that are not in `keep` (kind, name);
/// returns what it deleted, as `Kind namespace/name`. Refuses to delete everything an owner has
/// unless `allow_empty` is set.
pub async fn prune(
    client: &Client,
    candidates: &[(ApiResource, DynamicObject)],
    keep: &BTreeSet<(String, String)>,
    allow_empty: bool,
) -> Result<Vec<String>, Error> {
    if keep.is_empty() && !candidates.is_empty() && !allow_empty {
        return Err(Error::PruneEverything(candidates.len()));
    }
    let mut deleted = Vec::new();
    for (ar, obj) in candidates {
        let name = obj.metadata.name.clone().unwrap_or_default();
        if keep.contains(&(ar.kind.clone(), name.clone())) {
            continue;
        }
        let ns = obj.metadata.namespace.clone().unwrap_or_default();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, ar);
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        let object = format!("{} {ns}/{name}", ar.kind);
        match api.delete(&name, &params).await {
            Ok(_) => deleted.push(object),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => return Err(Error::Prune { object, source }),
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_added_by_the_server_do_not_count_as_drift() {
        let want = json!({"spec": {"ports": [{"port": 80, "name": "grpc"}], "replicas": 2}});
        let have = json!({"spec": {"ports": [{"port": 80, "name": "grpc", "protocol": "TCP"}], "replicas": 2.0, "clusterIP": "10.0.0.1"}});
        assert!(is_subset(&want, &have));
        let canonical =
            json!({"spec": {"ports": [{"port": 80, "name": "grpc"}], "replicas": 2, "cpu": "5k"}});
        assert!(is_subset(&json!({"spec": {"cpu": "5000"}}), &canonical));
        assert!(!is_subset(&json!({"spec": {"cpu": "5001"}}), &canonical));
        let drifted = json!({"spec": {"ports": [{"port": 81, "name": "grpc"}], "replicas": 2}});
        assert!(!is_subset(&want, &drifted));
        let extra_item =
            json!({"spec": {"ports": [{"port": 80, "name": "grpc"}, {"port": 90}], "replicas": 2}});
        assert!(!is_subset(&want, &extra_item));
    }

    #[test]
    fn only_changed_or_drifted_objects_are_applied() {
        let obj = Object::from_value(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "n"}, "data": {"k": "v"}}),
        );
        let owner = OwnerReference {
            api_version: "prism.io/v1beta1".into(),
            kind: "PrismShard".into(),
            name: "s".into(),
            uid: "u".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let want = desired(&obj, &owner);
        assert!(needs_apply(&want, None));
        let mut live = want.clone();
        live["metadata"]["resourceVersion"] = json!("7");
        assert!(!needs_apply(&want, Some(&live)));
        live["data"]["k"] = json!("edited");
        assert!(needs_apply(&want, Some(&live)));
        let mut changed = obj.clone();
        changed.value["data"]["k2"] = json!("new");
        let mut live = want.clone();
        live["data"]["k2"] = json!("new");
        // The live object already has the field, but the applied hash moved: apply again so
        // the field manager owns exactly what is rendered.
        assert!(needs_apply(&desired(&changed, &owner), Some(&live)));
    }
}
