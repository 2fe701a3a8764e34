//! What the caches keep of each object: what no reconciler reads is stripped before an
//! object enters a cache (`managedFields` and the `last-applied-configuration` annotation of
//! everything, the status of children whose status nothing reads, all of a proxy pod but its
//! identity, labels and conditions), and children are kept as compact text.

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::Resource;
use kube::api::DynamicObject;

/// Annotation `kubectl apply` (client side) leaves: a whole copy of the object.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The metadata of a child, all an owner is found by.
pub fn child_meta(obj: &DynamicObject) -> DynamicObject {
    DynamicObject {
        types: obj.types.clone(),
        metadata: obj.metadata.clone(),
        data: serde_json::Value::Null,
    }
}

/// The metadata of a pod, all a namespace is found by.
pub fn pod_meta(pod: &Pod) -> Pod {
    Pod {
        metadata: pod.metadata.clone(),
        ..Pod::default()
    }
}

/// Drops what nothing reads from any object's metadata.
pub fn strip_meta<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
    if let Some(annotations) = obj.meta_mut().annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// Drops what nothing reads from a child of `kind`, and keeps the rest as compact JSON text:
/// drift detection compares only the fields the operator renders (never status), and only
/// StatefulSets' and Deployments' status is read (readiness, rollouts). Parsed into a
/// `serde_json::Value` tree, an object takes several times the memory of its text; it is
/// parsed again only when a reconciler reads it ([`expand_child`]). Metadata stays parsed:
/// owners and labels are looked up in it.
pub fn strip_child(kind: &str) -> impl FnMut(&mut DynamicObject) + Send + 'static {
    let keep_status = matches!(kind, "StatefulSet" | "Deployment");
    move |obj| {
        strip_meta(obj);
        if !keep_status && let Some(data) = obj.data.as_object_mut() {
            data.remove("status");
        }
        let data = std::mem::take(&mut obj.data);
        obj.data = serde_json::Value::String(data.to_string());
    }
}

/// A cached child as the API server returned it (less what [`strip_child`] dropped).
pub fn expand_child(obj: &DynamicObject) -> DynamicObject {
    let data = match &obj.data {
        serde_json::Value::String(text) => serde_json::from_str(text).unwrap_or_default(),
        other => other.clone(),
    };
    DynamicObject {
        types: obj.types.clone(),
        metadata: obj.metadata.clone(),
        data,
    }
}

/// Keeps of a proxy pod what namespace placement reads: its name, UID, labels, deletion
/// and its conditions (Ready). Its spec is most of a pod.
pub fn strip_pod(pod: &mut Pod) {
    strip_meta(pod);
    let meta = &mut pod.metadata;
    meta.annotations = None;
    meta.owner_references = None;
    pod.spec = None;
    if let Some(status) = pod.status.take() {
        pod.status = Some(PodStatus {
            conditions: status.conditions,
            phase: status.phase,
            ..PodStatus::default()
        });
    }
}
