//! What every reconciler shares: the client, caches of watched objects, the renderer, the
//! event recorder, metrics, settings and per-object failure counts.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::ApiResource;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::apply::{CHILD_KINDS, FIELD_MANAGER, api_resource};
use super::children::Contests;
use super::error::Error;
use super::metrics::Metrics;
use super::served::Served;
use super::shared::{self, Changes};
use k8s_openapi::api::core::v1::Pod;

use prism_admin::AdminPool;
use prism_api::{PrismNamespace, PrismPlugin, PrismShard};
use prism_render::render::Renderer;
use prism_render::render::contract::MANAGED_BY;

/// Caches of the child kinds, by kind.
pub type ChildStores = BTreeMap<String, (ApiResource, Store<DynamicObject>)>;

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

/// Operator settings (from flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Watch only this namespace; all namespaces when `None`.
    pub watch_namespace: Option<String>,
    /// Apply workloads (operator mode). Off in render mode, where Argo CD applies them.
    pub workload_writes: bool,
    /// Safety-net resync of every object.
    pub resync: Duration,
    /// Default Prism admin for namespace sync: `host:port`, or a comma-separated list of the
    /// nodes of an HA admin.
    pub admin_endpoint: Option<String>,
    /// Let shards share an admin (admin then serves a shard's namespaces from any of their
    /// proxies); refused by default.
    pub allow_shared_admin: bool,
    /// Deadline of every call to Prism admin.
    pub admin_timeout: Duration,
    /// TLS (and client certificate) for Prism admin; plaintext when `None`.
    pub admin_tls: Option<prism_admin::AdminTls>,
    /// How long a deletion waits for Prism admin before giving up on revoking.
    pub deletion_deadline: Duration,
}

/// State shared by all reconcilers.
pub struct Ctx {
    /// API client.
    pub client: Client,
    /// Settings.
    pub settings: Settings,
    /// The renderer every unit goes through.
    pub renderer: Renderer,
    /// Event recorder (one, so events are de-duplicated into series).
    pub recorder: Recorder,
    /// Metrics registry.
    pub metrics: std::sync::Arc<Metrics>,
    /// Cache of PrismShards.
    pub shards: Store<PrismShard>,
    /// Cache of PrismPlugins.
    pub plugins: Store<PrismPlugin>,
    /// Cache of PrismNamespaces.
    pub namespaces: Store<PrismNamespace>,
    /// Caches of the child kinds the operator manages, by kind.
    pub children: ChildStores,
    /// Cache of proxy pods (for namespace placement on ready pods).
    pub pods: Store<Pod>,
    /// Prism admin clients by endpoint.
    pub admin: AdminPool,
    /// Objects another writer keeps changing.
    pub contests: Contests,
    /// The CRD child kinds the cluster serves.
    pub served: Served,
    /// Changes of every cached kind, for the controllers' triggers.
    pub feeds: Feeds,
    failures: Failures,
    registered: Mutex<Registrations>,
    pushed: Mutex<HashMap<String, (u64, std::time::Instant)>>,
}

/// Proxy registrations with each admin (by its endpoint list), by pod UID.
type Registrations = HashMap<String, HashMap<String, Registration>>;

/// One pod's registration as a proxy with one admin.
#[derive(Clone)]
pub struct Registration {
    /// Key of the pod's shard (`namespace/name`).
    shard: String,
    /// Proxy id (the pod's name).
    proxy: String,
    /// Set once admin accepted it. Every upsert that needs the proxy waits on the same cell,
    /// so none reaches admin while the registration is still in flight (admin would place the
    /// namespace over the proxies it knows so far); a failed attempt leaves it unset for the
    /// next caller to retry.
    done: Arc<tokio::sync::OnceCell<()>>,
}

impl Registration {
    /// Registers with `register` unless that already succeeded, waiting for an attempt in
    /// flight.
    pub async fn ensure<F, Fut, E>(&self, register: F) -> Result<(), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        self.done.get_or_try_init(register).await.map(|_| ())
    }
}

/// The caches a context is built from.
pub struct Caches {
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
    /// The CRD child kinds the cluster serves (their caches start once they are).
    pub served: Served,
    /// Changes of every cached kind.
    pub feeds: Feeds,
}

impl Ctx {
    /// Looks up a cached child object.
    pub fn child(&self, kind: &str, namespace: &str, name: &str) -> Option<DynamicObject> {
        let (ar, store) = self.children.get(kind)?;
        let cached = store.get(&ObjectRef::new_with(name, ar.clone()).within(namespace))?;
        Some(shared::expand_child(&cached))
    }

    /// A cached child as its typed object, e.g. a `StatefulSet`.
    pub fn typed_child<K>(&self, namespace: &str, name: &str) -> Option<K>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
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
                    out.push((ar.clone(), shared::child_meta(&obj)));
                }
            }
        }
        out
    }

    /// Publishes an event about `obj`; failures to publish are logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_string(),
            note: Some(note.chars().take(1000).collect()),
            action: "Reconcile".to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, "publishing event failed");
        } else {
            self.metrics.write("Event", "create");
        }
    }

    /// Replaces the status of `obj` with `status` (server-side apply of the status subresource).
    pub async fn patch_status<K, S>(&self, obj: &K, status: &S) -> Result<(), Error>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
        S: Serialize,
    {
        self.patch_status_as(obj, status, FIELD_MANAGER, "status")
            .await
    }

    /// [`patch_status`](Self::patch_status) as field manager `manager`, counted as `operation`
    /// in the write metric: the fields `status` holds are this manager's, others stay as they
    /// are.
    pub async fn patch_status_as<K, S>(
        &self,
        obj: &K,
        status: &S,
        manager: &str,
        operation: &str,
    ) -> Result<(), Error>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
        S: Serialize,
    {
        let api: Api<K> =
            Api::namespaced(self.client.clone(), &obj.namespace().unwrap_or_default());
        let body = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        api.patch_status(
            &obj.name_any(),
            &PatchParams::apply(manager).force(),
            &Patch::Apply(body),
        )
        .await?;
        self.metrics.write(&K::kind(&()), operation);
        tracing::debug!(kind = %K::kind(&()), name = %obj.name_any(), operation, "status written");
        Ok(())
    }

    /// Counts a failure of `key` and returns how long to wait before the next try:
    /// 1 s doubling per consecutive failure, capped at 5 minutes.
    pub fn backoff(&self, key: &str) -> Duration {
        self.failures.failed(key)
    }
}

/// Consecutive failures per object, for per-object exponential backoff.
#[derive(Debug, Default)]
pub struct Failures(Mutex<HashMap<String, u32>>);

impl Failures {
    /// Counts a failure of `key`; how long to wait before the next try: 1 s doubling per
    /// consecutive failure, capped at 5 minutes.
    pub fn failed(&self, key: &str) -> Duration {
        let mut failures = self.0.lock().expect("not poisoned");
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        Duration::from_secs(1u64 << (*n - 1).min(8)).min(Duration::from_secs(300))
    }

    /// Consecutive failures of `key` so far.
    pub fn count(&self, key: &str) -> u32 {
        self.0
            .lock()
            .expect("not poisoned")
            .get(key)
            .copied()
            .unwrap_or(0)
    }

    /// Forgets the failures of `key`.
    pub fn succeeded(&self, key: &str) {
        self.0.lock().expect("not poisoned").remove(key);
    }

    /// After a reconcile of `key` that returned Ok: forgets its failures unless the reconcile
    /// itself counted one (a failure reported in status and retried with backoff, such as
    /// Prism admin being down, still returns Ok). `before`: [`count`](Self::count) before it.
    pub fn settle(&self, key: &str, before: u32) {
        if self.count(key) <= before {
            self.succeeded(key);
        }
    }
}

/// `Kind/namespace/name` of an object: its key for backoff and logs.
pub fn object_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

impl Ctx {
    /// Runs one reconciliation of `key` for `controller`: times it, counts its result, and
    /// forgets the object's failures when it succeeds.
    pub async fn measured(
        &self,
        controller: &str,
        key: &str,
        reconcile: impl std::future::Future<Output = Result<Action, Error>>,
    ) -> Result<Action, Error> {
        let timer = self.metrics.start(controller);
        let before = self.failures.count(key);
        let result = reconcile.await;
        timer.finish(result.as_ref().map(drop).map_err(Error::metric_label));
        if result.is_ok() {
            self.failures.settle(key, before);
        }
        result
    }

    /// What every controller does after a failure: log it and back off per object.
    pub fn retry_later(&self, key: &str, err: &Error) -> Action {
        let wait = self.backoff(key);
        tracing::warn!(object = %key, error = %err, retry_in = ?wait, "reconcile failed");
        Action::requeue(wait)
    }
}

/// An owner reference to `obj` as controller.
pub fn owner_ref<K: Resource<DynamicType = ()>>(obj: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).to_string(),
        kind: K::kind(&()).to_string(),
        name: obj.name_any(),
        uid: obj.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether reconciliation of `obj` is paused by annotation.
pub fn paused<K: ResourceExt>(obj: &K) -> bool {
    obj.annotations()
        .get(prism_api::PAUSE_ANNOTATION)
        .map(String::as_str)
        == Some("paused")
}

/// Namespaced or cluster-wide API, per the settings.
pub fn api<K>(client: &Client, settings: &Settings) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    match &settings.watch_namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Namespaced or cluster-wide API of a child kind, per the settings.
pub fn dynamic_api(client: &Client, settings: &Settings, ar: &ApiResource) -> Api<DynamicObject> {
    match &settings.watch_namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

/// A reflector of `api`: the cache, its changes (see [`shared`](super::shared)) and the future
/// that keeps both fed. `strip` drops what no reconciler reads before an object is cached.
pub fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    strip: impl FnMut(&mut K) + Send + 'static,
) -> (
    Store<K>,
    Changes<K>,
    futures::future::BoxFuture<'static, ()>,
)
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
    shared::reflect(reflector::store::Writer::default(), (), events, strip)
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
        let writer = reflector::store::Writer::new(ar.clone());
        let events = futures::stream::once(served.until(kind))
            .flat_map(move |()| watcher(api.clone(), managed_children()))
            .default_backoff();
        let (reader, feed, task) =
            shared::reflect(writer, ar.clone(), events, shared::strip_child(kind));
        stores.insert(kind.to_string(), (ar, reader));
        changes.insert(kind.to_string(), feed);
        tasks.push(task);
    }
    (stores, changes, tasks)
}

impl Ctx {
    /// Assembles the context.
    pub fn new(
        client: Client,
        settings: Settings,
        renderer: Renderer,
        recorder: Recorder,
        caches: Caches,
    ) -> Result<Self, prism_admin::AdminError> {
        let admin = AdminPool::configured(settings.admin_timeout, settings.admin_tls.clone())?;
        let metrics = std::sync::Arc::new(Metrics::new());
        let observed = metrics.clone();
        let admin = admin.with_observer(std::sync::Arc::new(
            move |rpc: &str, endpoint: &str, outcome: &str, took: Duration| {
                observed.admin_call(rpc, endpoint, outcome, took)
            },
        ));
        Ok(Self {
            client,
            settings,
            renderer,
            recorder,
            metrics,
            shards: caches.shards,
            plugins: caches.plugins,
            namespaces: caches.namespaces,
            children: caches.children,
            pods: caches.pods,
            admin,
            failures: Failures::default(),
            registered: Mutex::default(),
            pushed: Mutex::default(),
            contests: Contests::default(),
            served: caches.served,
            feeds: caches.feeds,
        })
    }

    /// The registration of pod `uid` (proxy `proxy` of shard `shard`, `namespace/name`) with
    /// the admin at `endpoints`: one per pod and admin, shared by every upsert that needs it.
    pub fn registration(
        &self,
        endpoints: &str,
        uid: &str,
        shard: &str,
        proxy: &str,
    ) -> Registration {
        self.registered
            .lock()
            .expect("not poisoned")
            .entry(endpoints.to_string())
            .or_default()
            .entry(uid.to_string())
            .or_insert_with(|| Registration {
                shard: shard.to_string(),
                proxy: proxy.to_string(),
                done: Arc::default(),
            })
            .clone()
    }

    /// Forgets every registration with the admin at `endpoints` (it may have lost its state).
    pub fn forget_endpoint(&self, endpoints: &str) {
        self.registered
            .lock()
            .expect("not poisoned")
            .remove(endpoints);
    }

    /// Records that the namespace `key` was upserted into admin with `inputs` (a fingerprint).
    pub fn record_push(&self, key: &str, inputs: u64) {
        self.pushed
            .lock()
            .expect("not poisoned")
            .insert(key.to_string(), (inputs, std::time::Instant::now()));
    }

    /// Forgets the last upsert of the namespace `key` (it is being deleted).
    pub fn forget_push(&self, key: &str) {
        self.pushed.lock().expect("not poisoned").remove(key);
    }

    /// Whether the namespace `key` was upserted with the same `inputs` less than `within` ago.
    pub fn pushed_recently(&self, key: &str, inputs: u64, within: Duration) -> bool {
        self.pushed
            .lock()
            .expect("not poisoned")
            .get(key)
            .is_some_and(|(last, at)| *last == inputs && at.elapsed() < within)
    }

    /// Proxies of `shard` (`namespace/name`) this process registered with any admin, sorted.
    pub fn registered_proxies(&self, shard: &str) -> Vec<String> {
        let registered = self.registered.lock().expect("not poisoned");
        let mut proxies: Vec<String> = registered
            .values()
            .flat_map(|pods| pods.values())
            .filter(|r| r.shard == shard && r.done.initialized())
            .map(|r| r.proxy.clone())
            .collect();
        proxies.sort();
        proxies.dedup();
        proxies
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn registration() -> Registration {
        Registration {
            shard: "team/s".into(),
            proxy: "prism-s-1".into(),
            done: Arc::default(),
        }
    }

    /// An upsert that needs a proxy whose registration another upsert has in flight waits for
    /// it (admin would otherwise place the namespace without that proxy) and does not register
    /// it again.
    #[tokio::test]
    async fn a_registration_in_flight_is_waited_for_not_skipped() {
        let reg = registration();
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let (finish, finish_rx) = tokio::sync::oneshot::channel::<()>();
        let first = tokio::spawn({
            let reg = reg.clone();
            async move {
                reg.ensure(|| async {
                    started_tx.send(()).unwrap();
                    finish_rx.await.unwrap();
                    Ok::<(), ()>(())
                })
                .await
            }
        });
        started.await.unwrap();
        let calls = AtomicUsize::new(0);
        let second = reg.ensure(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<(), ()>(())
        });
        tokio::pin!(second);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut second)
                .await
                .is_err(),
            "went ahead while the registration was in flight"
        );
        finish.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Ok(()));
        assert_eq!(second.await, Ok(()));
        assert_eq!(calls.load(Ordering::SeqCst), 0, "registered twice");
    }

    /// A failed registration is tried again by the next upsert; a successful one never.
    #[tokio::test]
    async fn a_failed_registration_is_retried_and_a_done_one_is_not() {
        let reg = registration();
        let calls = AtomicUsize::new(0);
        let attempt = |ok: bool| {
            let calls = &calls;
            move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                if ok { Ok(()) } else { Err("unavailable") }
            }
        };
        assert_eq!(reg.ensure(attempt(false)).await, Err("unavailable"));
        assert!(!reg.done.initialized());
        assert_eq!(reg.ensure(attempt(true)).await, Ok(()));
        assert_eq!(reg.ensure(attempt(false)).await, Ok(()));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn backoff_doubles_per_failure_and_survives_soft_failures() {
        let f = Failures::default();
        let waits: Vec<u64> = (0..10).map(|_| f.failed("a").as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 256]);
        f.succeeded("a");
        // A reconcile that reports a failure in status and requeues with backoff returns Ok:
        // its failure count must not be forgotten.
        let before = f.count("a");
        assert_eq!(f.failed("a").as_secs(), 1);
        f.settle("a", before);
        let before = f.count("a");
        assert_eq!(f.failed("a").as_secs(), 2);
        f.settle("a", before);
        // A reconcile that succeeded without counting a failure forgets them.
        let before = f.count("a");
        f.settle("a", before);
        assert_eq!(f.count("a"), 0);
    }
}
