//! Views built from objects, for unit tests: the caches and indexes fed with the watch events
//! a real watch would deliver.

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;
use serde_json::Value;

use super::strip::strip_child;
use super::{AdminDefaults, ChildStores, Global, Indexes, Stores, View};
use crate::kit::apply::{CHILD_KINDS, api_resource};
use kube::api::DynamicObject;
use prism_api::{PrismNamespace, PrismPlugin, PrismShard};

/// The objects of a fixture, as JSON (`kind` picks the cache).
#[derive(Default)]
pub struct Objects(pub Vec<Value>);

fn writer<K>(objects: &[Value], kind: &str, index: impl Fn(&Event<K>)) -> Writer<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned,
{
    let mut writer = Writer::default();
    for obj in objects.iter().filter(|o| o["kind"] == kind) {
        let obj: K = serde_json::from_value(obj.clone()).expect("fixture parses");
        let event = Event::Apply(obj);
        writer.apply_watcher_event(&event);
        index(&event);
    }
    writer
}

impl Objects {
    /// A view of these objects, shards without an admin endpoint using `default_admin`.
    pub fn view(&self, default_admin: Option<&str>) -> View {
        self.view_watching(default_admin, None)
    }

    /// [`Objects::view`] of an operator watching `watch_namespace` only (`None`: all): its
    /// caches hold that namespace's objects, its global caches every namespace's.
    pub fn view_watching(
        &self,
        default_admin: Option<&str>,
        watch_namespace: Option<&str>,
    ) -> View {
        let admins = AdminDefaults {
            endpoint: default_admin.map(String::from),
            tls: false,
            watch_namespace: watch_namespace.map(String::from),
        };
        let indexes = Indexes::new(&admins);
        let local: Vec<Value> = self
            .0
            .iter()
            .filter(|o| watch_namespace.is_none_or(|w| o["metadata"]["namespace"] == w))
            .cloned()
            .collect();
        let (shards, namespaces, global) = match watch_namespace {
            None => {
                let shards = writer::<PrismShard>(&local, "PrismShard", |e| indexes.shard_event(e));
                let namespaces = writer::<PrismNamespace>(&local, "PrismNamespace", |e| {
                    indexes.namespace_event(e)
                });
                (shards, namespaces, None)
            }
            Some(_) => {
                let all_shards =
                    writer::<PrismShard>(&self.0, "PrismShard", |e| indexes.shard_event(e));
                let all_namespaces = writer::<PrismNamespace>(&self.0, "PrismNamespace", |e| {
                    indexes.namespace_event(e)
                });
                let global = Global {
                    shards: all_shards.as_reader(),
                    namespaces: all_namespaces.as_reader(),
                };
                let shards = writer::<PrismShard>(&local, "PrismShard", |_| {});
                let namespaces = writer::<PrismNamespace>(&local, "PrismNamespace", |_| {});
                (shards, namespaces, Some(global))
            }
        };
        let plugins = writer::<PrismPlugin>(&local, "PrismPlugin", |_| {});
        let pods = writer::<Pod>(&local, "Pod", |_| {});
        let stores = Stores {
            shards: shards.as_reader(),
            plugins: plugins.as_reader(),
            namespaces: namespaces.as_reader(),
            pods: pods.as_reader(),
            children: self.children(),
            global,
        };
        View::new(stores, admins, indexes)
    }
}

impl Objects {
    /// The child kinds' caches, holding the objects of those kinds as the watches keep them.
    fn children(&self) -> ChildStores {
        let mut stores = ChildStores::new();
        for (version, kind, _) in CHILD_KINDS {
            let ar = api_resource(version, kind).expect("a child kind");
            let mut writer = Writer::<DynamicObject>::new(ar.clone());
            let mut strip = strip_child(kind);
            for obj in self.0.iter().filter(|o| o["kind"] == *kind) {
                let mut obj: DynamicObject =
                    serde_json::from_value(obj.clone()).expect("fixture parses");
                strip(&mut obj);
                writer.apply_watcher_event(&Event::Apply(obj));
            }
            stores.insert(kind.to_string(), (ar, writer.as_reader()));
        }
        stores
    }
}

/// A child of `kind` named `name` in `namespace`, labelled `label=value` and owned by `owner`
/// (a UID).
pub fn child(kind: &str, namespace: &str, name: &str, label: (&str, &str), owner: &str) -> Value {
    let (version, ..) = CHILD_KINDS
        .iter()
        .find(|(_, k, _)| *k == kind)
        .expect("a child kind");
    serde_json::json!({
        "apiVersion": version, "kind": kind,
        "metadata": {
            "name": name, "namespace": namespace, "labels": {label.0: label.1},
            "ownerReferences": [{"apiVersion": "prism.io/v1beta1", "kind": "PrismShard",
                                 "name": label.1, "uid": owner, "controller": true}],
        },
        "data": {"k": "v"},
    })
}

/// A PrismShard `namespace/name` created at `created` (seconds), with `admin` as its own
/// endpoint list.
pub fn shard(namespace: &str, name: &str, created: i64, admin: Option<&str>) -> Value {
    let mut spec = serde_json::json!({"product": "p", "replicas": 1});
    if let Some(admin) = admin {
        spec["adminEndpoint"] = admin.into();
    }
    serde_json::json!({
        "apiVersion": "prism.io/v1beta1", "kind": "PrismShard",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("{namespace}-{name}"),
                     "creationTimestamp": timestamp(created)},
        "spec": spec,
    })
}

/// A PrismNamespace `namespace/name` created at `created`, placed on `shard` if given.
pub fn namespace(namespace: &str, name: &str, created: i64, shard: Option<&str>) -> Value {
    let mut ns = serde_json::json!({
        "apiVersion": "prism.io/v1beta1", "kind": "PrismNamespace",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("{namespace}-{name}"),
                     "creationTimestamp": timestamp(created)},
        "spec": {"backend": "postgres", "pattern": "keyvalue"},
    });
    if let Some(shard) = shard {
        ns["status"] = serde_json::json!({"shard": shard});
    }
    ns
}

/// A proxy pod `name` of `shard` in `namespace`, ready or not.
pub fn pod(namespace: &str, shard: &str, name: &str, ready: bool) -> Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("{namespace}-{name}"),
                     "labels": {super::INSTANCE_LABEL: shard}},
        "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
    })
}

fn timestamp(seconds: i64) -> String {
    jiff::Timestamp::from_second(1_700_000_000 + seconds)
        .expect("in range")
        .to_string()
}
