//! One read model of everything the operator watches: the caches of every kind and the
//! indexes the hot paths need. Every query a controller makes of the cluster's state is
//! here, pure over the caches, so it can be tested with fixtures and no API server.

mod index;
pub mod strip;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::core::ApiResource;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Event;
use serde::de::DeserializeOwned;

use prism_api::{PrismNamespace, PrismPlugin, PrismShard};
use prism_render::render::placement::place;
use strip::{child_meta, expand_child};

pub use index::{Index, key};

/// Caches of the child kinds, by kind.
pub type ChildStores = BTreeMap<String, (ApiResource, Store<DynamicObject>)>;

/// The label that names a proxy pod's shard.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// Which Prism admin a shard without its own `spec.adminEndpoint` uses, and how endpoints are
/// spelt.
#[derive(Debug, Clone, Default)]
pub struct AdminDefaults {
    /// The operator's `--admin-endpoint`.
    pub endpoint: Option<String>,
    /// Whether admin is reached over TLS (endpoints default to `https://`).
    pub tls: bool,
    /// The operator's `--watch-namespace`: shards elsewhere are another operator's, whose
    /// default admin this one does not know.
    pub watch_namespace: Option<String>,
}

impl AdminDefaults {
    /// The comma-separated admin endpoints of `shard`: its own; else, for a shard this
    /// operator reconciles, the operator's default, and for another operator's shard the
    /// endpoints that operator reports in its status.
    pub fn endpoints_of(&self, shard: &PrismShard) -> Option<String> {
        if let Some(own) = &shard.spec.admin_endpoint {
            return Some(own.clone());
        }
        match self.is_local(shard.namespace().as_deref().unwrap_or_default()) {
            true => self.endpoint.clone(),
            false => shard.status.as_ref()?.admin.as_ref()?.endpoints.clone(),
        }
    }

    /// Whether objects of Kubernetes namespace `namespace` are this operator's to reconcile.
    pub fn is_local(&self, namespace: &str) -> bool {
        self.watch_namespace
            .as_deref()
            .is_none_or(|w| w == namespace)
    }

    /// The normalized endpoints of a list; an unparsable list stands for itself.
    pub fn endpoint_set(&self, list: &str) -> BTreeSet<String> {
        match prism_admin::endpoints_of(list, self.tls) {
            Ok(endpoints) => endpoints.into_iter().collect(),
            Err(_) => [list.to_string()].into(),
        }
    }
}

/// The caches and their indexes.
#[derive(Clone)]
pub struct View {
    /// PrismShards.
    pub shards: Store<PrismShard>,
    /// PrismPlugins.
    pub plugins: Store<PrismPlugin>,
    /// PrismNamespaces.
    pub namespaces: Store<PrismNamespace>,
    /// Proxy pods (metadata, phase and conditions).
    pub pods: Store<Pod>,
    /// The child kinds the operator manages, by kind.
    pub children: ChildStores,
    /// How shards name their admin.
    pub admins: AdminDefaults,
    /// Every PrismShard and PrismNamespace that may reach an admin this operator uses.
    pub global: Global,
    indexes: Indexes,
}

/// The PrismShards and PrismNamespaces the rules global to an admin (who owns it, who owns a
/// name in it) are checked across: those of every Kubernetes namespace. With
/// `--watch-namespace` these are caches of their own, read but never reconciled; otherwise
/// the operator's caches themselves.
#[derive(Clone)]
pub struct Global {
    /// PrismShards of every namespace.
    pub shards: Store<PrismShard>,
    /// PrismNamespaces of every namespace.
    pub namespaces: Store<PrismNamespace>,
}

/// The indexes of a view, fed with the same watch events as its caches.
#[derive(Clone)]
pub struct Indexes {
    /// PrismNamespaces by name (who owns a name in an admin).
    pub names: Index<PrismNamespace>,
    /// Live PrismShards by normalized admin endpoint (who shares an admin).
    pub endpoints: Index<PrismShard>,
}

impl Indexes {
    /// Empty indexes; shards are indexed by the endpoints `admins` gives them.
    pub fn new(admins: &AdminDefaults) -> Self {
        let admins = admins.clone();
        Self {
            names: Index::new(|ns: &PrismNamespace| vec![ns.name_any()]),
            endpoints: Index::new(move |shard: &PrismShard| {
                if shard.metadata.deletion_timestamp.is_some() {
                    return Vec::new();
                }
                let list = admins.endpoints_of(shard);
                list.map(|l| admins.endpoint_set(&l).into_iter().collect())
                    .unwrap_or_default()
            }),
        }
    }

    /// Applies a watch event of PrismNamespaces.
    pub fn namespace_event(&self, event: &Event<PrismNamespace>) {
        self.names.apply(event);
    }

    /// Applies a watch event of PrismShards.
    pub fn shard_event(&self, event: &Event<PrismShard>) {
        self.endpoints.apply(event);
    }
}

/// The stores a view reads.
pub struct Stores {
    /// PrismShards.
    pub shards: Store<PrismShard>,
    /// PrismPlugins.
    pub plugins: Store<PrismPlugin>,
    /// PrismNamespaces.
    pub namespaces: Store<PrismNamespace>,
    /// Proxy pods.
    pub pods: Store<Pod>,
    /// Child kinds.
    pub children: ChildStores,
    /// Every namespace's shards and namespaces; `None`: the stores above hold them.
    pub global: Option<Global>,
}

impl View {
    /// A view of `stores`, with `indexes` fed from the same watches.
    pub fn new(stores: Stores, admins: AdminDefaults, indexes: Indexes) -> Self {
        let global = stores.global.unwrap_or_else(|| Global {
            shards: stores.shards.clone(),
            namespaces: stores.namespaces.clone(),
        });
        Self {
            shards: stores.shards,
            plugins: stores.plugins,
            namespaces: stores.namespaces,
            pods: stores.pods,
            children: stores.children,
            admins,
            global,
            indexes,
        }
    }

    /// A cached child object.
    pub fn child(&self, kind: &str, namespace: &str, name: &str) -> Option<DynamicObject> {
        let (ar, store) = self.children.get(kind)?;
        let cached = store.get(&ObjectRef::new_with(name, ar.clone()).within(namespace))?;
        Some(expand_child(&cached))
    }

    /// A cached child as its typed object, e.g. a `StatefulSet`.
    pub fn typed_child<K>(&self, namespace: &str, name: &str) -> Option<K>
    where
        K: kube::Resource<DynamicType = ()> + DeserializeOwned,
    {
        let kind = K::kind(&());
        let obj = self.child(&kind, namespace, name)?;
        match obj.try_parse::<K>() {
            Ok(typed) => Some(typed),
            Err(e) => {
                tracing::warn!(error = %e, %kind, namespace, name, "cached object does not parse");
                None
            }
        }
    }

    /// Cached children of `owner_uid` in `namespace` labelled `label=value`, across all kinds
    /// (their metadata).
    pub fn owned(
        &self,
        namespace: &str,
        label: &str,
        value: &str,
        owner_uid: &str,
    ) -> Vec<(ApiResource, DynamicObject)> {
        let mut out = Vec::new();
        for (ar, store) in self.children.values() {
            for obj in store.state() {
                let matches = obj.metadata.namespace.as_deref() == Some(namespace)
                    && obj.labels().get(label).map(String::as_str) == Some(value)
                    && obj.owner_references().iter().any(|o| o.uid == owner_uid);
                if matches {
                    out.push((ar.clone(), child_meta(&obj)));
                }
            }
        }
        out
    }

    /// The shard `name` in `namespace`.
    pub fn shard(&self, namespace: &str, name: &str) -> Option<Arc<PrismShard>> {
        self.shards.get(&ObjectRef::new(name).within(namespace))
    }

    /// The shards of `namespace` that are not being deleted.
    pub fn live_shards(&self, namespace: &str) -> Vec<Arc<PrismShard>> {
        live_in(&self.shards, namespace)
    }

    /// The shards of the plugin's namespace that list it, sorted by name.
    pub fn shards_using(&self, plugin: &PrismPlugin) -> Vec<Arc<PrismShard>> {
        let name = plugin.name_any();
        let mut shards: Vec<Arc<PrismShard>> = self
            .shards
            .state()
            .into_iter()
            .filter(|s| s.namespace() == plugin.namespace())
            .filter(|s| s.spec.plugins.iter().any(|p| p.name == name))
            .collect();
        shards.sort_by_key(|s| s.name_any());
        shards
    }

    /// The PrismNamespaces of `namespace` that `pick` keeps.
    pub fn namespaces_in(
        &self,
        namespace: &str,
        pick: impl Fn(&PrismNamespace) -> bool,
    ) -> Vec<Arc<PrismNamespace>> {
        self.namespaces
            .state()
            .into_iter()
            .filter(|n| n.namespace().as_deref() == Some(namespace))
            .filter(|n| pick(n))
            .collect()
    }

    /// The plugin `name` in `namespace`.
    pub fn plugin(&self, namespace: &str, name: &str) -> Option<Arc<PrismPlugin>> {
        self.plugins.get(&ObjectRef::new(name).within(namespace))
    }

    /// The names of the plugins of `namespace`, sorted.
    pub fn plugin_names(&self, namespace: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .plugins
            .state()
            .iter()
            .filter(|p| p.namespace().as_deref() == Some(namespace))
            .map(|p| p.name_any())
            .collect();
        names.sort();
        names
    }

    /// How many PrismNamespaces of `namespace` are placed on one of `shards`.
    pub fn placed_on(&self, namespace: &str, shards: &BTreeSet<&str>) -> i32 {
        self.namespaces
            .state()
            .iter()
            .filter(|n| n.namespace().as_deref() == Some(namespace))
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.shard.as_deref())
                    .is_some_and(|s| shards.contains(s))
            })
            .count() as i32
    }

    /// The proxies admin assigned to the PrismNamespaces placed on `shard` of `namespace`.
    pub fn assigned_proxies(&self, namespace: &str, shard: &str) -> Vec<String> {
        self.namespaces
            .state()
            .into_iter()
            .filter(|n| n.namespace().as_deref() == Some(namespace))
            .filter_map(|n| n.status.clone())
            .filter(|s| s.shard.as_deref() == Some(shard))
            .filter_map(|s| s.assigned_proxy)
            .collect()
    }

    /// Ready proxy pods of `shard` in `namespace`, sorted by name.
    pub fn ready_pods(&self, namespace: &str, shard: &str) -> Vec<Arc<Pod>> {
        let mut pods: Vec<Arc<Pod>> = self
            .pods
            .state()
            .into_iter()
            .filter(|p| p.namespace().as_deref() == Some(namespace))
            .filter(|p| p.labels().get(INSTANCE_LABEL).map(String::as_str) == Some(shard))
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| pod_ready(p))
            .collect();
        pods.sort_by_key(|p| p.name_any());
        pods
    }

    /// The names of the proxy pods of `namespace`.
    pub fn pod_names(&self, namespace: &str) -> BTreeSet<String> {
        self.pods
            .state()
            .iter()
            .filter(|p| p.namespace().as_deref() == Some(namespace))
            .map(|p| p.name_any())
            .collect()
    }

    /// The shard (`(namespace, shard)`) whose pod is proxy `proxy`, preferring a pod in
    /// `namespace` when several namespaces have one of that name.
    pub fn pod_owner(&self, namespace: &str, proxy: &str) -> Option<(String, String)> {
        self.pods
            .state()
            .into_iter()
            .filter(|p| p.name_any() == proxy)
            .map(|p| {
                let shard = p.labels().get(INSTANCE_LABEL).cloned().unwrap_or_default();
                (p.namespace().unwrap_or_default(), shard)
            })
            .min_by_key(|(n, _)| n != namespace)
    }

    /// Live shards (any Kubernetes namespace) using any of `endpoints`, oldest first.
    pub fn admin_users(&self, endpoints: &BTreeSet<String>) -> Vec<Arc<PrismShard>> {
        let keys: BTreeSet<String> = endpoints
            .iter()
            .flat_map(|e| self.indexes.endpoints.get(e))
            .collect();
        let mut users: Vec<Arc<PrismShard>> = keys
            .iter()
            .filter_map(|k| self.global.shards.get(&object_ref(k)))
            .collect();
        users.sort_by(|a, b| by_age(&**a, &**b));
        users
    }

    /// The PrismNamespaces this operator reconciles placed on a live shard that uses any of
    /// `endpoints`.
    pub fn placed_with_admin(&self, endpoints: &BTreeSet<String>) -> Vec<Arc<PrismNamespace>> {
        self.admin_users(endpoints)
            .iter()
            .filter(|shard| self.admins.is_local(&shard.namespace().unwrap_or_default()))
            .flat_map(|shard| {
                let name = shard.name_any();
                self.namespaces_in(&shard.namespace().unwrap_or_default(), |n| {
                    n.status.as_ref().and_then(|s| s.shard.as_deref()) == Some(name.as_str())
                })
            })
            .collect()
    }

    /// The PrismNamespaces named `name`, in any Kubernetes namespace.
    pub fn named(&self, name: &str) -> Vec<Arc<PrismNamespace>> {
        self.indexes
            .names
            .get(name)
            .iter()
            .filter_map(|k| self.global.namespaces.get(&object_ref(k)))
            .collect()
    }

    /// The shard a namespace (of any Kubernetes namespace) is (or would be) placed on.
    pub fn shard_of(&self, ns: &PrismNamespace) -> Option<Arc<PrismShard>> {
        let namespace = ns.namespace().unwrap_or_default();
        let shards = match self.admins.is_local(&namespace) {
            true => self.live_shards(&namespace),
            false => live_in(&self.global.shards, &namespace),
        };
        let name = match ns.status.as_ref().and_then(|s| s.shard.clone()) {
            Some(name) => name,
            None => place(ns, shards.iter().map(|s| &**s)).ok()?.shard,
        };
        shards.into_iter().find(|s| s.name_any() == name)
    }
}

/// The shards of `namespace` in `store` that are not being deleted.
fn live_in(store: &Store<PrismShard>, namespace: &str) -> Vec<Arc<PrismShard>> {
    store
        .state()
        .into_iter()
        .filter(|s| s.namespace().as_deref() == Some(namespace))
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .collect()
}

/// Whether a pod's Ready condition is true.
fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The reference of `namespace/name`.
fn object_ref<K>(key: &str) -> ObjectRef<K>
where
    K: kube::Resource<DynamicType = ()>,
{
    let (namespace, name) = key.split_once('/').unwrap_or(("", key));
    ObjectRef::new(name).within(namespace)
}

/// Older first: creation time (whole seconds), then, for objects created in the same second,
/// name and namespace, so that the order is one a user can predict; UID last.
pub fn by_age<K: kube::Resource>(a: &K, b: &K) -> std::cmp::Ordering {
    let created = |o: &K| o.meta().creation_timestamp.as_ref().map(|t| t.0);
    let (ma, mb) = (a.meta(), b.meta());
    created(a)
        .cmp(&created(b))
        .then_with(|| ma.name.cmp(&mb.name))
        .then_with(|| ma.namespace.cmp(&mb.namespace))
        .then_with(|| ma.uid.cmp(&mb.uid))
}

#[cfg(test)]
pub mod fixture;
#[cfg(test)]
mod tests;
