//! One watch per kind. It feeds the cache every reconciler reads, and the same events, once
//! the cache holds them, are what every controller triggers on. A controller with a watch of
//! its own would keep a second cache of its kind (with every object's `managedFields`) and
//! decode a second copy of every event; with three controllers and a dozen child kinds that
//! was three dozen watches for a dozen kinds.
//!
//! What no reconciler reads is stripped before an object enters the cache: `managedFields`
//! and the `last-applied-configuration` annotation of everything, the status of children
//! whose status nothing reads, and all of a proxy pod but its identity, labels and
//! conditions.

use std::sync::{Arc, Mutex};

use futures::channel::mpsc;
use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::Client;
use kube::Resource;
use kube::api::Api;
use kube::api::DynamicObject;
use kube::runtime::reflector::{Lookup, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use anyhow::Context as _;

use super::server::Health;
use crate::kit::apply::{CHILD_KINDS, api_resource};
use crate::kit::context::{Ctx, Settings, api, dynamic_api};
use crate::kit::served::Served;
use crate::view::{AdminDefaults, ChildStores, Indexes, Stores, View};
use prism_api::{PrismNamespace, PrismPlugin, PrismShard};
use prism_render::render::contract::{MANAGED_BY, PROXY_NAME};

/// Annotation `kubectl apply` (client side) leaves: a whole copy of the object.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A change of a watched object, published once the cache holds it.
pub enum Change<K> {
    /// Created, updated, or (re)listed: the object as cached.
    Applied(Arc<K>),
    /// Deleted: the object as last seen.
    Deleted(Arc<K>),
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        match self {
            Self::Applied(o) => Self::Applied(o.clone()),
            Self::Deleted(o) => Self::Deleted(o.clone()),
        }
    }
}

impl<K> Change<K> {
    /// The object that changed.
    pub fn object(&self) -> &K {
        match self {
            Self::Applied(o) | Self::Deleted(o) => o,
        }
    }
}

/// The subscribers to one kind's changes.
pub struct Changes<K>
where
    K: Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store: Store<K>,
    subscribers: Arc<Mutex<Vec<mpsc::UnboundedSender<Change<K>>>>>,
}

impl<K> Clone for Changes<K>
where
    K: Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            subscribers: self.subscribers.clone(),
        }
    }
}

impl<K> Changes<K>
where
    K: Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    fn new(store: Store<K>) -> Self {
        Self {
            store,
            subscribers: Arc::default(),
        }
    }

    /// Every change from now on, after one `Applied` for each object already cached (as a
    /// controller's own watch would list them when it starts). The queue is unbounded; it
    /// holds the cache's own objects, not copies.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Change<K>> {
        let (tx, rx) = mpsc::unbounded();
        let mut subscribers = self.subscribers.lock().expect("not poisoned");
        for obj in self.store.state() {
            let _ = tx.unbounded_send(Change::Applied(obj));
        }
        subscribers.push(tx);
        rx
    }

    fn publish(&self, change: Change<K>) {
        self.subscribers
            .lock()
            .expect("not poisoned")
            .retain(|tx| tx.unbounded_send(change.clone()).is_ok());
    }
}

/// The cache of `events` (each object passed through `strip` first), its changes, and the
/// future that keeps both fed (not started).
pub fn reflect<K>(
    writer: Writer<K>,
    dyntype: <K as Resource>::DynamicType,
    events: impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static,
    strip: impl FnMut(&mut K) + Send + 'static,
    observe: impl Fn(&watcher::Event<K>) + Send + 'static,
) -> (Store<K>, Changes<K>, BoxFuture<'static, ()>)
where
    K: Resource + Clone + std::fmt::Debug + Send + Sync + 'static,
    <K as Resource>::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    let store = writer.as_reader();
    let changes = Changes::new(store.clone());
    let publish = changes.clone();
    let cached = store.clone();
    let task = events.modify(strip).reflect(writer).for_each(move |event| {
        if let Ok(event) = &event {
            observe(event);
        }
        match event {
            Ok(watcher::Event::Apply(obj)) => {
                let key = obj.to_object_ref(dyntype.clone());
                let obj = cached.get(&key).unwrap_or_else(|| Arc::new(obj));
                publish.publish(Change::Applied(obj));
            }
            Ok(watcher::Event::Delete(obj)) => publish.publish(Change::Deleted(Arc::new(obj))),
            // A (re)list: the cache now holds exactly what was listed.
            Ok(watcher::Event::InitDone) => {
                for obj in cached.state() {
                    publish.publish(Change::Applied(obj));
                }
            }
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) | Err(_) => {}
        }
        futures::future::ready(())
    });
    (store, changes, Box::pin(task))
}

/// Objects created, updated or listed, as a controller's own kind is triggered.
pub fn applied<K: Clone + Send + Sync + 'static>(
    changes: mpsc::UnboundedReceiver<Change<K>>,
) -> impl Stream<Item = watcher::Result<K>> + Send + 'static {
    changes.filter_map(|change| {
        futures::future::ready(match change {
            Change::Applied(obj) => Some(Ok((*obj).clone())),
            Change::Deleted(_) => None,
        })
    })
}

/// Every object that changed or went, as `view` of it (what a mapper to another kind reads).
pub fn touched<K: Send + Sync + 'static, T>(
    changes: mpsc::UnboundedReceiver<Change<K>>,
    view: impl Fn(&K) -> T + Send + 'static,
) -> impl Stream<Item = watcher::Result<T>> + Send + 'static {
    changes.map(move |change| Ok(view(change.object())))
}

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

/// Changes of the child kinds, by kind.
pub type ChildChanges = BTreeMap<String, Changes<DynamicObject>>;

/// What the controllers trigger on: the changes of every cached kind, so that no controller
/// keeps a watch (and a cache) of its own.
#[derive(Clone)]
pub struct Feeds {
    /// PrismShards.
    pub shards: Changes<PrismShard>,
    /// PrismPlugins.
    pub plugins: Changes<PrismPlugin>,
    /// PrismNamespaces.
    pub namespaces: Changes<PrismNamespace>,
    /// Proxy pods.
    pub pods: Changes<Pod>,
    /// Child kinds.
    pub children: ChildChanges,
}

/// A reflector of `api`: the cache, its changes and the future that keeps both fed.
/// `strip` drops what no reconciler reads before an object is cached; `observe` sees every
/// event the cache applied (an index kept beside it).
pub fn reflect_kind<K>(
    api: Api<K>,
    config: watcher::Config,
    strip: impl FnMut(&mut K) + Send + 'static,
    observe: impl Fn(&watcher::Event<K>) + Send + 'static,
) -> (Store<K>, Changes<K>, BoxFuture<'static, ()>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let events = watcher(api, config).default_backoff();
    reflect(Writer::default(), (), events, strip, observe)
}

/// Watches of the operator's children: objects labelled as managed by us.
pub fn managed_children() -> watcher::Config {
    watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}"))
}

/// Reflectors of every child kind, labelled as managed by us, and their changes. Those of
/// kinds that need a CRD start watching once `served` says the cluster serves them.
pub fn reflect_children(
    client: &Client,
    settings: &Settings,
    served: &Served,
) -> (
    ChildStores,
    ChildChanges,
    Vec<futures::future::BoxFuture<'static, ()>>,
) {
    let mut stores = BTreeMap::new();
    let mut changes = BTreeMap::new();
    let mut tasks = Vec::new();
    for (version, kind, _) in CHILD_KINDS {
        let ar = api_resource(version, kind).expect("child kinds are known");
        let api = dynamic_api(client, settings, &ar);
        let writer = Writer::new(ar.clone());
        let events = futures::stream::once(served.until(kind))
            .flat_map(move |()| watcher(api.clone(), managed_children()))
            .default_backoff();
        let (reader, feed, task) = reflect(writer, ar.clone(), events, strip_child(kind), |_| {});
        stores.insert(kind.to_string(), (ar, reader));
        changes.insert(kind.to_string(), feed);
        tasks.push(task);
    }
    (stores, changes, tasks)
}

/// The view every reconciler reads, the changes the controllers trigger on, and the tasks
/// that keep them fed (not started yet).
pub fn caches(
    client: &Client,
    settings: &Settings,
    served: &Served,
) -> (View, Feeds, Vec<BoxFuture<'static, ()>>) {
    let admins = AdminDefaults {
        endpoint: settings.admin_endpoint.clone(),
        tls: settings.admin_tls.is_some(),
    };
    let indexes = Indexes::new(&admins);
    let (shards, shard_changes, shards_task) = {
        let indexes = indexes.clone();
        let api = api::<PrismShard>(client, settings);
        reflect_kind(api, watcher::Config::default(), strip_meta, move |e| {
            indexes.shard_event(e)
        })
    };
    let (plugins, plugin_changes, plugins_task) = reflect_kind(
        api::<PrismPlugin>(client, settings),
        watcher::Config::default(),
        strip_meta,
        |_| {},
    );
    let (namespaces, namespace_changes, namespaces_task) = {
        let indexes = indexes.clone();
        let api = api::<PrismNamespace>(client, settings);
        reflect_kind(api, watcher::Config::default(), strip_meta, move |e| {
            indexes.namespace_event(e)
        })
    };
    let (children, child_changes, child_tasks) = reflect_children(client, settings, served);
    let (pods, pod_changes, pods_task) = reflect_kind(
        api::<Pod>(client, settings),
        proxy_pods(),
        strip_pod,
        |_| {},
    );
    let stores = Stores {
        shards,
        plugins,
        namespaces,
        pods,
        children,
    };
    let feeds = Feeds {
        shards: shard_changes,
        plugins: plugin_changes,
        namespaces: namespace_changes,
        pods: pod_changes,
        children: child_changes,
    };
    let tasks = [shards_task, plugins_task, namespaces_task, pods_task]
        .into_iter()
        .chain(child_tasks)
        .collect();
    (View::new(stores, admins, indexes), feeds, tasks)
}

/// Waits until every cache has listed its objects; not ready meanwhile.
pub async fn sync_caches(ctx: &Ctx, health: &Health) -> anyhow::Result<()> {
    let view = &ctx.view;
    health.ready.store(false, Ordering::Relaxed);
    view.shards
        .wait_until_ready()
        .await
        .context("PrismShard cache")?;
    view.plugins
        .wait_until_ready()
        .await
        .context("PrismPlugin cache")?;
    view.namespaces
        .wait_until_ready()
        .await
        .context("PrismNamespace cache")?;
    view.pods.wait_until_ready().await.context("Pod cache")?;
    // Kinds whose CRD is missing have no cache yet: it fills once they are served.
    for (kind, (_, store)) in &view.children {
        if ctx.served.has(kind) {
            store.wait_until_ready().await.context("child cache")?;
        }
    }
    health.ready.store(true, Ordering::Relaxed);
    tracing::info!("caches synced; reconciling");
    Ok(())
}

/// Proxy pods (for namespace placement on ready pods).
pub fn proxy_pods() -> watcher::Config {
    watcher::Config::default().labels(&format!("app.kubernetes.io/name={PROXY_NAME}"))
}
