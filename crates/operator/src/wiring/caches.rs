//! The caches of every kind the operator watches, the changes the controllers trigger on, and
//! waiting for the caches to fill.

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::Resource;
use kube::api::Api;
use kube::api::DynamicObject;
use kube::runtime::reflector::{Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use anyhow::Context as _;

use super::changes::{Changes, reflect};
use super::server::Health;
use crate::kit::apply::{CHILD_KINDS, api_resource};
use crate::kit::context::{Ctx, Settings, api, dynamic_api};
use crate::kit::served::Served;
use crate::view::strip::{strip_child, strip_meta, strip_pod};
use crate::view::{AdminDefaults, ChildStores, Global, Indexes, Stores, View};
use prism_api::{PrismNamespace, PrismPlugin, PrismShard};
use prism_render::render::contract::{MANAGED_BY, PROXY_NAME};

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
        watch_namespace: settings.watch_namespace.clone(),
    };
    let indexes = Indexes::new(&admins);
    // With one watched namespace, the rules global to an admin read every namespace's shards
    // and namespaces from caches of their own, which feed the indexes; otherwise the
    // operator's own caches do.
    let everywhere = settings.watch_namespace.is_none();
    let (shards, shard_changes, shards_task) = {
        let indexes = indexes.clone();
        let api = api::<PrismShard>(client, settings);
        reflect_kind(api, watcher::Config::default(), strip_meta, move |e| {
            if everywhere {
                indexes.shard_event(e)
            }
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
            if everywhere {
                indexes.namespace_event(e)
            }
        })
    };
    let mut global_tasks = Vec::new();
    let every = (!everywhere).then(|| {
        let (all_shards, _, shards_task) = {
            let indexes = indexes.clone();
            let api = Api::<PrismShard>::all(client.clone());
            reflect_kind(api, watcher::Config::default(), strip_meta, move |e| {
                indexes.shard_event(e)
            })
        };
        let (all_namespaces, _, namespaces_task) = {
            let indexes = indexes.clone();
            let api = Api::<PrismNamespace>::all(client.clone());
            reflect_kind(api, watcher::Config::default(), strip_meta, move |e| {
                indexes.namespace_event(e)
            })
        };
        global_tasks.extend([shards_task, namespaces_task]);
        Global {
            shards: all_shards,
            namespaces: all_namespaces,
        }
    });
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
        global: every,
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
        .chain(global_tasks)
        .collect();
    (View::new(stores, admins, indexes), feeds, tasks)
}

/// Waits until every cache has listed its objects; not ready meanwhile.
pub async fn sync_caches(ctx: &Ctx, health: &Health) -> anyhow::Result<()> {
    let view = &ctx.view;
    health.ready.store(false, Ordering::Relaxed);
    listed("PrismShard", || view.shards.wait_until_ready()).await?;
    listed("PrismPlugin", || view.plugins.wait_until_ready()).await?;
    listed("PrismNamespace", || view.namespaces.wait_until_ready()).await?;
    listed("Pod", || view.pods.wait_until_ready()).await?;
    listed("PrismShard (every namespace)", || {
        view.global.shards.wait_until_ready()
    })
    .await?;
    listed("PrismNamespace (every namespace)", || {
        view.global.namespaces.wait_until_ready()
    })
    .await?;
    // Kinds whose CRD is missing have no cache yet: it fills once they are served.
    for (kind, (_, store)) in &view.children {
        if ctx.served.has(kind) {
            listed(kind, || store.wait_until_ready()).await?;
        }
    }
    health.ready.store(true, Ordering::Relaxed);
    tracing::info!("caches synced; reconciling");
    Ok(())
}

/// Waits for one cache to be listed, saying every half minute that it still waits. Asks
/// again every second: a wake-up of the store's readiness can be lost when the cache filled
/// while nobody waited on it yet (seen as a wait that ended exactly when a timeout made it ask
/// again), so the wait never rests on the wake-up alone.
async fn listed<E, F>(kind: &str, ready: impl Fn() -> F) -> anyhow::Result<()>
where
    E: std::error::Error + Send + Sync + 'static,
    F: Future<Output = Result<(), E>>,
{
    for second in 1u64.. {
        match tokio::time::timeout(std::time::Duration::from_secs(1), ready()).await {
            Ok(result) => return result.with_context(|| format!("{kind} cache")),
            Err(_) if second % 30 == 0 => {
                tracing::warn!(
                    kind,
                    seconds = second,
                    "still waiting for the cache to list"
                )
            }
            Err(_) => {}
        }
    }
    unreachable!("the wait ends with the cache or its error")
}

/// Proxy pods (for namespace placement on ready pods).
pub fn proxy_pods() -> watcher::Config {
    watcher::Config::default().labels(&format!("app.kubernetes.io/name={PROXY_NAME}"))
}
