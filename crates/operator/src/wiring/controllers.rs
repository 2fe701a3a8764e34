//! The three controllers and what triggers each: every trigger is a subscription to the
//! shared caches' changes ([`Feeds`]), so no controller keeps a watch of its own.

use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::caches::Feeds;
use super::changes::{Change, applied, touched};
use super::{RunConfig, Stop};
use crate::kit::apply::{CHILD_KINDS, api_resource};
use crate::kit::context::Ctx;
use crate::view::INSTANCE_LABEL;
use crate::view::strip::{child_meta, pod_meta};
use crate::{namespace, plugin, shard};
use prism_api::{PluginDeploymentType, PrismNamespace, PrismPlugin, PrismShard};
use prism_render::render::contract::SHARD_LABEL;

/// Time in-flight reconciliations get to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs the three controllers until shutdown, giving in-flight reconciliations a grace period.
pub async fn run_controllers(ctx: &Arc<Ctx>, feeds: &Feeds, cfg: &RunConfig, stop: &Stop) {
    let controllers = futures::future::join3(
        shard_controller(ctx, feeds, cfg, stop.signalled()),
        plugin_controller(ctx, feeds, cfg, stop.signalled()),
        namespace_controller(ctx, feeds, cfg, stop.signalled()),
    );
    let stop_then_grace = {
        let stopped = stop.signalled();
        async move {
            stopped.await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        }
    };
    tokio::select! {
        _ = controllers => tracing::info!("controllers stopped"),
        _ = stop_then_grace => tracing::warn!("reconciliations still running after {SHUTDOWN_GRACE:?}; stopping anyway"),
    }
}

/// Backoff of the controllers' watches: 0.5 s doubling to at most 5 s, each wait less up to a
/// fifth at random, reset after 30 s without errors. After an API server restart every watch fails once (410 Gone) and re-lists; with
/// kube's default (up to 30 s per failure, across all watches of a controller) reconciling would
/// stall for minutes.
#[derive(Debug, Clone, Copy)]
struct WatchBackoff(std::time::Duration);

impl Iterator for WatchBackoff {
    type Item = std::time::Duration;
    fn next(&mut self) -> Option<Self::Item> {
        let now = self.0;
        self.0 = (now * 2).min(std::time::Duration::from_secs(5));
        Some(crate::kit::jitter::shorten(now, 0.2))
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.0 = std::time::Duration::from_millis(500);
    }
}

fn trigger_backoff() -> impl kube::runtime::utils::Backoff {
    kube::runtime::utils::ResetTimerBackoff::new(
        WatchBackoff(std::time::Duration::from_millis(500)),
        std::time::Duration::from_secs(30),
    )
}

/// Logs what a controller's result stream reports (failed reconciles are already logged and
/// retried by their error policy; this adds watch errors).
fn log_errors<T, E: std::fmt::Display>(
    controller: &'static str,
) -> impl FnMut(Result<T, E>) -> futures::future::Ready<()> {
    move |r| {
        if let Err(e) = r {
            tracing::debug!(controller, error = %e, "controller stream");
        }
        futures::future::ready(())
    }
}

fn config(cfg: &RunConfig) -> controller::Config {
    controller::Config::default().concurrency(cfg.concurrency)
}

/// The objects whose spec changed (a new generation), that appeared, or that went:
/// status-only and metadata-only updates are dropped.
fn spec_changes<K>(
    changes: impl futures::Stream<Item = Change<K>> + Send + 'static,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + Send + Sync + 'static,
{
    let mut seen: std::collections::HashMap<String, Option<i64>> = Default::default();
    changes.filter_map(move |change| {
        let passed = match change {
            Change::Applied(obj) => {
                let uid = obj.meta().uid.clone().unwrap_or_default();
                let generation = obj.meta().generation;
                let changed = seen.insert(uid, generation) != Some(generation);
                changed.then(|| Ok((*obj).clone()))
            }
            Change::Deleted(obj) => {
                seen.remove(obj.meta().uid.as_deref().unwrap_or_default());
                Some(Ok((*obj).clone()))
            }
        };
        futures::future::ready(passed)
    })
}

/// `controller` reconciles its owner when any of its children changes: each kind the renderer
/// produces ([`CHILD_KINDS`]) is followed through the children's caches (kinds that need a CRD
/// from the moment the cluster serves them), and a child triggers the owner it names.
fn owns_children<K>(controller: Controller<K>, feeds: &Feeds) -> Controller<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    CHILD_KINDS
        .iter()
        .fold(controller, |c, (version, kind, _)| {
            let ar = api_resource(version, kind).expect("child kinds are known");
            let changes = feeds.children[*kind].subscribe();
            c.owns_stream_with(touched(changes, child_meta), ar)
        })
}

async fn shard_controller(
    ctx: &Arc<Ctx>,
    feeds: &Feeds,
    cfg: &RunConfig,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let view = ctx.view.clone();
    let store = view.shards.clone();
    let controller = Controller::for_stream(applied(feeds.shards.subscribe()), store);
    owns_children(controller, feeds)
        .watches_stream(
            touched(feeds.plugins.subscribe(), PrismPlugin::clone),
            move |plugin| {
                view.shards_using(&plugin)
                    .iter()
                    .map(|sh| ObjectRef::from_obj(&**sh))
                    .collect::<Vec<_>>()
            },
        )
        .watches_stream(
            touched(feeds.namespaces.subscribe(), PrismNamespace::clone),
            |ns| {
                let namespace = ns.namespace().unwrap_or_default();
                ns.status
                    .and_then(|st| st.shard)
                    .map(|shard| ObjectRef::<PrismShard>::new(&shard).within(&namespace))
            },
        )
        .reconcile_all_on(ctx.served.arrivals())
        .with_config(config(cfg))
        .trigger_backoff(trigger_backoff())
        .graceful_shutdown_on(stop)
        .run(shard::reconcile, shard::error_policy, ctx.clone())
        .for_each(log_errors("shard"))
        .await;
}

/// The PrismPlugins a shard lists.
fn plugins_of(shard: &PrismShard) -> Vec<ObjectRef<PrismPlugin>> {
    let namespace = shard.namespace().unwrap_or_default();
    shard
        .spec
        .plugins
        .iter()
        .map(|p| ObjectRef::<PrismPlugin>::new(&p.name).within(&namespace))
        .collect()
}

async fn plugin_controller(
    ctx: &Arc<Ctx>,
    feeds: &Feeds,
    cfg: &RunConfig,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let store = ctx.view.shards.clone();
    let remote = ctx.view.plugins.clone();
    let controller = Controller::for_stream(applied(feeds.plugins.subscribe()), remote.clone());
    let sets = api_resource("apps/v1", "StatefulSet").expect("a child kind");
    owns_children(controller, feeds)
        .watches_stream_with(
            touched(feeds.children["StatefulSet"].subscribe(), child_meta),
            move |sts| {
                let namespace = sts.namespace().unwrap_or_default();
                let shard = sts.labels().get(SHARD_LABEL).cloned().unwrap_or_default();
                store
                    .get(&ObjectRef::new(&shard).within(&namespace))
                    .map(|sh| plugins_of(&sh))
                    .unwrap_or_default()
            },
            sets,
        )
        .watches_stream(
            touched(feeds.shards.subscribe(), PrismShard::clone),
            move |sh| {
                // Its plugins, and every remote plugin of its namespace: a shard that stopped
                // listing one must leave that plugin's NetworkPolicy at once.
                let mut refs = plugins_of(&sh);
                refs.extend(
                    remote
                        .state()
                        .iter()
                        .filter(|p| p.namespace() == sh.namespace())
                        .filter(|p| p.spec.deployment.type_ == PluginDeploymentType::Remote)
                        .map(|p| ObjectRef::from_obj(&**p)),
                );
                refs
            },
        )
        .reconcile_all_on(ctx.served.arrivals())
        .with_config(config(cfg))
        .trigger_backoff(trigger_backoff())
        .graceful_shutdown_on(stop)
        .run(plugin::reconcile, plugin::error_policy, ctx.clone())
        .for_each(log_errors("plugin"))
        .await;
}

async fn namespace_controller(
    ctx: &Arc<Ctx>,
    feeds: &Feeds,
    cfg: &RunConfig,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let by_shard = ctx.view.clone();
    let by_pod = ctx.view.clone();
    // Everything placed on (or placeable in the namespace of) a shard whose spec changed, or
    // that came or went, is re-placed. Status writes of shards (every placed namespace changes
    // the count) trigger nothing: with thousands of namespaces that would re-sync them all.
    let shard_changes = spec_changes(feeds.shards.subscribe());
    // A proxy new to an admin moves namespaces admin placed before it (it spreads them over
    // every proxy it knows): everything on a shard using that admin is upserted again, to
    // learn where admin put it now.
    let by_admin = ctx.view.clone();
    let new_proxies = ctx
        .admin
        .proxy_registrations()
        .expect("one namespace controller per process")
        .flat_map(move |endpoints| {
            let set = by_admin.admins.endpoint_set(&endpoints);
            futures::stream::iter(refs(by_admin.placed_with_admin(&set)))
        });
    Controller::for_stream(
        applied(feeds.namespaces.subscribe()),
        ctx.view.namespaces.clone(),
    )
    .watches_stream(shard_changes, move |shard| {
        let namespace = shard.namespace().unwrap_or_default();
        refs(by_shard.namespaces_in(&namespace, |_| true))
    })
    .watches_stream(touched(feeds.pods.subscribe(), pod_meta), move |pod| {
        let namespace = pod.namespace().unwrap_or_default();
        let shard = pod.labels().get(INSTANCE_LABEL).cloned();
        refs(by_pod.namespaces_in(&namespace, |n| {
            n.status.as_ref().and_then(|st| st.shard.clone()) == shard || n.status.is_none()
        }))
    })
    .reconcile_on(new_proxies)
    .with_config(config(cfg))
    .trigger_backoff(trigger_backoff())
    .graceful_shutdown_on(stop)
    .run(
        namespace::reconcile,
        namespace::error_policy,
        Arc::new(namespace::Context::new(ctx.clone())),
    )
    .for_each(log_errors("namespace"))
    .await;
}

/// References to `objects`.
fn refs<K: Resource<DynamicType = ()>>(objects: Vec<Arc<K>>) -> Vec<ObjectRef<K>> {
    objects.iter().map(|o| ObjectRef::from_obj(&**o)).collect()
}
