//! The webhook's decisions over views built from fixtures: no API server.

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionReview};
use serde_json::{Value, json};

use super::*;
use crate::view::fixture::{Objects, namespace, shard};
use prism_api::API_VERSION;

/// An admission request to `operation` (CREATE, UPDATE) `object`, replacing `old`.
fn request(operation: &str, object: Value, old: Option<Value>) -> AdmissionRequest<DynamicObject> {
    let kind = object["kind"].as_str().unwrap().to_string();
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "kind": {"group": "prism.io", "version": "v1", "kind": kind},
            "resource": {"group": "prism.io", "version": "v1", "resource": "x"},
            "operation": operation,
            "userInfo": {"username": "alice"},
            "namespace": object["metadata"]["namespace"],
            "name": object["metadata"]["name"],
            "object": object,
            "oldObject": old,
        }
    });
    let review: AdmissionReview<DynamicObject> = serde_json::from_value(review).unwrap();
    review.try_into().unwrap()
}

fn current(mut object: Value) -> Value {
    object["apiVersion"] = API_VERSION.into();
    object
}

#[test]
fn an_invalid_object_is_refused_in_the_words_of_validate() {
    let view = Objects::default().view(None);
    let mut bad = current(shard("team", "s", 100, None));
    bad["spec"]["replicas"] = json!(5000);
    let verdict = review(&view, false, Caches::Synced, &request("CREATE", bad, None));
    assert_eq!(
        verdict.refusals,
        ["spec.replicas: must be at most 1000, got 5000"]
    );
    let response = verdict.respond(&request(
        "CREATE",
        current(shard("team", "s", 1, None)),
        None,
    ));
    assert!(!response.allowed);
    assert_eq!(
        response.result.message,
        "spec.replicas: must be at most 1000, got 5000"
    );
}

#[test]
fn a_shard_taking_an_older_shards_admin_is_refused() {
    let view = Objects(vec![shard("a", "early", 10, Some("admin-1:8981"))]).view(None);
    let late = current(shard("b", "late", 30, Some("admin-1:8981")));
    let verdict = review(
        &view,
        false,
        Caches::Synced,
        &request("CREATE", late.clone(), None),
    );
    assert_eq!(verdict.refusals.len(), 1);
    assert!(
        verdict.refusals[0].starts_with("shares its Prism admin with the older shard a/early"),
        "{verdict:?}"
    );
    assert_eq!(
        review(&view, true, Caches::Synced, &request("CREATE", late, None)),
        Verdict::default(),
        "--allow-shared-admin allows it"
    );
}

#[test]
fn a_namespace_whose_name_another_team_owns_is_refused() {
    let view = Objects(vec![
        shard("team-a", "s", 0, Some("admin-1:8981")),
        shard("team-b", "s", 0, Some("admin-1:8981")),
        namespace("team-a", "orders", 10, Some("s")),
    ])
    .view(None);
    let mine = current(namespace("team-b", "orders", 20, None));
    let verdict = review(&view, true, Caches::Synced, &request("CREATE", mine, None));
    assert_eq!(
        verdict.refusals,
        [
            "the name orders in Prism admin belongs to the older PrismNamespace team-a/orders: \
          admin keys namespaces by name alone, so this one is not sent until that one is deleted"
        ]
    );
}

#[test]
fn what_a_later_apply_may_fix_is_a_warning() {
    let view = Objects::default().view(None);
    let ns = current(namespace("team", "orders", 20, None));
    let verdict = review(&view, false, Caches::Synced, &request("CREATE", ns, None));
    assert_eq!(verdict.refusals, Vec::<String>::new());
    assert_eq!(
        verdict.warnings,
        ["spec.backend: cannot be placed: no PrismShard exists in namespace team"]
    );
    let mut s = current(shard("team", "s", 1, None));
    s["spec"]["plugins"] = json!([{"name": "pg", "version": "1.2"}]);
    let verdict = review(
        &view,
        false,
        Caches::Synced,
        &request("CREATE", s.clone(), None),
    );
    assert_eq!(verdict.refusals, Vec::<String>::new());
    assert_eq!(
        verdict.warnings,
        [
            "spec.plugins[0].name: PrismPlugin team/pg not found (no PrismPlugin exists in namespace team)"
        ]
    );
    let plugin = json!({"apiVersion": API_VERSION, "kind": "PrismPlugin",
        "metadata": {"name": "pg", "namespace": "team"},
        "spec": {"version": "1.1.0", "source": {"registry": "r", "image": "pg:1.1.0"}, "deployment": {"type": "sidecar"}}});
    let view = Objects(vec![plugin]).view(None);
    let verdict = review(&view, false, Caches::Synced, &request("CREATE", s, None));
    assert_eq!(verdict.refusals, Vec::<String>::new());
    assert_eq!(
        verdict.warnings,
        ["spec.plugins[0].version: requires pg ^1.2, but PrismPlugin team/pg has version 1.1.0"]
    );
}

#[test]
fn a_plugin_that_cannot_run_as_asked_is_refused() {
    let plugin = json!({"apiVersion": API_VERSION, "kind": "PrismPlugin",
        "metadata": {"name": "pg", "namespace": "team"},
        "spec": {"version": "1.2.0", "source": {"registry": "r", "image": "pg:1.2.0"}, "deployment": {"type": "remote"}}});
    let view = Objects(vec![plugin]).view(None);
    let mut s = current(shard("team", "s", 1, None));
    s["spec"]["plugins"] = json!([{"name": "pg", "version": "1.2", "deployment": "sidecar"}]);
    let verdict = review(&view, false, Caches::Synced, &request("CREATE", s, None));
    assert_eq!(verdict.warnings, Vec::<String>::new());
    assert_eq!(verdict.refusals.len(), 1, "{verdict:?}");
    assert!(
        verdict.refusals[0]
            .starts_with("spec.plugins[0].deployment: PrismPlugin team/pg is a remote plugin")
    );
}

#[test]
fn while_caches_load_only_the_object_is_checked() {
    let view = Objects(vec![shard("a", "early", 10, Some("admin-1:8981"))]).view(None);
    let late = current(shard("b", "late", 30, Some("admin-1:8981")));
    let verdict = review(
        &view,
        false,
        Caches::Loading,
        &request("CREATE", late, None),
    );
    assert_eq!(verdict.refusals, Vec::<String>::new());
    assert_eq!(verdict.warnings, [LOADING]);
}

#[test]
fn an_update_leaving_spec_labels_and_annotations_alone_is_allowed() {
    let view = Objects::default().view(None);
    let mut bad = current(shard("team", "s", 100, None));
    bad["spec"]["replicas"] = json!(5000);
    let mut finalized = bad.clone();
    finalized["metadata"]["finalizers"] = json!([]);
    let verdict = review(
        &view,
        false,
        Caches::Synced,
        &request("UPDATE", finalized, Some(bad.clone())),
    );
    assert_eq!(verdict, Verdict::default());
    let mut changed = bad.clone();
    changed["spec"]["product"] = json!("q");
    let verdict = review(
        &view,
        false,
        Caches::Synced,
        &request("UPDATE", changed, Some(bad)),
    );
    assert_eq!(
        verdict.refusals,
        ["spec.replicas: must be at most 1000, got 5000"]
    );
}
