//! Starting and stopping the operator: endpoints, leader election, caches, controllers, and a
//! graceful shutdown on SIGTERM or SIGINT (or when leadership is lost).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, bail};
use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::apply::{CHILD_KINDS, api_resource};
use super::context::{Caches, Ctx, Feeds, Settings, api, reflect, reflect_children};
use super::prometheus::{Prometheus, PrometheusConfig};
use super::served::{self, Served};
use super::server::{Health, serve};
use super::shared::{Change, applied, child_meta, pod_meta, strip_meta, strip_pod, touched};
use super::traffic::{self, TrafficSettings};
use super::{namespace, plugin, shard};
use prism_api::{PluginDeploymentType, PrismNamespace, PrismPlugin, PrismShard};
use prism_render::render::RenderOptions;
use prism_render::render::contract::{PROXY_NAME, SHARD_LABEL};

/// Time in-flight reconciliations get to finish after a shutdown signal.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// How the operator process runs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Reconciler settings.
    pub settings: Settings,
    /// Proxy image for shards without `spec.image`.
    pub proxy_image: String,
    /// NetworkPolicies for shards that do not say.
    pub network_policies: bool,
    /// Templates replacing the embedded ones.
    pub templates: Option<PathBuf>,
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    pub metrics_addr: SocketAddr,
    /// Elect a leader with a Lease; only the leader reconciles.
    pub leader_election: bool,
    /// Namespace of the Lease.
    pub lease_namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// This replica's identity (pod name).
    pub identity: String,
    /// Reconciliations running at once per controller.
    pub concurrency: u16,
    /// Traffic figures from Prometheus, when configured.
    pub traffic: Option<Traffic>,
}

/// Where traffic figures come from, and how they are written.
#[derive(Debug, Clone)]
pub struct Traffic {
    /// The Prometheus API.
    pub prometheus: PrometheusConfig,
    /// Queries, interval and thresholds.
    pub settings: TrafficSettings,
}

/// Runs until a shutdown signal; an error when the operator could not run or lost leadership.
pub async fn run(cfg: RunConfig) -> anyhow::Result<()> {
    let prometheus = match &cfg.traffic {
        Some(t) => Some(Prometheus::new(t.prometheus.clone()).context("Prometheus")?),
        None => None,
    };
    let client = Client::try_default()
        .await
        .context("connecting to the Kubernetes API")?;
    check_crds(&client, &cfg.settings).await?;
    let renderer = prism_render::render::templates::renderer(
        cfg.templates.as_deref(),
        RenderOptions {
            proxy_image: cfg.proxy_image.clone(),
            network_policies: cfg.network_policies,
            prometheus_url: cfg.traffic.as_ref().map(|t| t.prometheus.url.clone()),
        },
    )
    .map_err(|e| anyhow::anyhow!("templates: {e}"))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop = Stop(stop_rx);
    tokio::spawn(signal_stop(stop_tx.clone()));

    let served = Served::default();
    served::discover(&client, &served).await;
    tokio::spawn(served::keep_discovering(client.clone(), served.clone()));
    let (caches, cache_tasks) = caches(&client, &cfg.settings, served);
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "prism-operator".into(),
            instance: Some(cfg.identity.clone()),
        },
    );
    let ctx = Arc::new(
        Ctx::new(client, cfg.settings.clone(), renderer, recorder, caches)
            .map_err(|e| anyhow::anyhow!("Prism admin TLS: {e}"))?,
    );
    let health = Health::for_metrics(ctx.metrics.clone());
    let server = tokio::spawn(serve(cfg.metrics_addr, health.clone(), stop.signalled()));

    let leading = match cfg.leader_election {
        true => match lead(&ctx, &cfg, &health, &stop).await? {
            Some(leading) => Some(leading),
            None => return Ok(()), // stopped while standing by
        },
        false => None,
    };
    let mut background: Vec<JoinHandle<()>> = cache_tasks.into_iter().map(tokio::spawn).collect();
    sync_caches(&ctx, &health).await?;
    let lost = Arc::new(AtomicBool::new(false));
    if let Some(rx) = leading {
        background.push(tokio::spawn(stop_when_lost(
            rx,
            stop_tx.clone(),
            lost.clone(),
        )));
    }
    if let (Some(prometheus), Some(t)) = (prometheus, &cfg.traffic) {
        tracing::info!(url = prometheus.url(), interval = ?t.settings.interval, "traffic figures from Prometheus");
        background.push(tokio::spawn(traffic::run(
            ctx.clone(),
            prometheus,
            t.settings.clone(),
        )));
    }
    run_controllers(&ctx, &cfg, &stop).await;
    let _ = stop_tx.send(true);
    for t in background {
        t.abort();
    }
    let _ = server.await;
    tracing::info!("endpoints stopped");
    if lost.load(Ordering::Relaxed) {
        bail!("leadership lost");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The shutdown signal, for every task that stops with it.
#[derive(Clone)]
struct Stop(watch::Receiver<bool>);

impl Stop {
    /// Resolves once shutdown began.
    fn signalled(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }
}

/// The caches every reconciler reads, and the tasks that keep them fed (not started yet).
fn caches(
    client: &Client,
    settings: &Settings,
    served: Served,
) -> (Caches, Vec<BoxFuture<'static, ()>>) {
    let (shards, shard_changes, shards_task) = reflect(
        api::<PrismShard>(client, settings),
        watcher::Config::default(),
        strip_meta,
    );
    let (plugins, plugin_changes, plugins_task) = reflect(
        api::<PrismPlugin>(client, settings),
        watcher::Config::default(),
        strip_meta,
    );
    let (namespaces, namespace_changes, namespaces_task) = reflect(
        api::<PrismNamespace>(client, settings),
        watcher::Config::default(),
        strip_meta,
    );
    let (children, child_changes, child_tasks) = reflect_children(client, settings, &served);
    let (pods, pod_changes, pods_task) =
        reflect(api::<Pod>(client, settings), proxy_pods(), strip_pod);
    let caches = Caches {
        shards,
        plugins,
        namespaces,
        pods,
        children,
        served,
        feeds: Feeds {
            shards: shard_changes,
            plugins: plugin_changes,
            namespaces: namespace_changes,
            pods: pod_changes,
            children: child_changes,
        },
    };
    let tasks = [shards_task, plugins_task, namespaces_task, pods_task]
        .into_iter()
        .chain(child_tasks)
        .collect();
    (caches, tasks)
}

/// Stands by until this replica leads (a healthy standby is ready). `None` when shutdown began
/// first; else the receiver that reports losing the lead.
async fn lead(
    ctx: &Ctx,
    cfg: &RunConfig,
    health: &Health,
    stop: &Stop,
) -> anyhow::Result<Option<watch::Receiver<bool>>> {
    let manager = kube_lease_manager::LeaseManagerBuilder::new(ctx.client.clone(), &cfg.lease_name)
        .with_namespace(&cfg.lease_namespace)
        .with_identity(&cfg.identity)
        .with_duration(15)
        .with_grace(5)
        .build()
        .await
        .context("setting up leader election")?;
    let (mut rx, task) = manager.watch().await;
    health.ready.store(true, Ordering::Relaxed); // a healthy standby is ready
    tracing::info!(identity = %cfg.identity, lease = %cfg.lease_name, "waiting for leadership");
    tokio::select! {
        r = rx.wait_for(|l| *l) => { r.context("leader election ended")?; }
        _ = stop.signalled() => { task.abort(); return Ok(None); }
    }
    tracing::info!(identity = %cfg.identity, "leading");
    ctx.metrics.set_leader(true);
    Ok(Some(rx))
}

/// Stops the operator when this replica stops leading.
async fn stop_when_lost(
    mut leading: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    lost: Arc<AtomicBool>,
) {
    let _ = leading.wait_for(|l| !*l).await;
    tracing::error!("leadership lost; stopping");
    lost.store(true, Ordering::Relaxed);
    let _ = stop.send(true);
}

/// Waits until every cache has listed its objects; not ready meanwhile.
async fn sync_caches(ctx: &Ctx, health: &Health) -> anyhow::Result<()> {
    health.ready.store(false, Ordering::Relaxed);
    ctx.shards
        .wait_until_ready()
        .await
        .context("PrismShard cache")?;
    ctx.plugins
        .wait_until_ready()
        .await
        .context("PrismPlugin cache")?;
    ctx.namespaces
        .wait_until_ready()
        .await
        .context("PrismNamespace cache")?;
    ctx.pods.wait_until_ready().await.context("Pod cache")?;
    // Kinds whose CRD is missing have no cache yet: it fills once they are served.
    for (kind, (_, store)) in &ctx.children {
        if ctx.served.has(kind) {
            store.wait_until_ready().await.context("child cache")?;
        }
    }
    health.ready.store(true, Ordering::Relaxed);
    tracing::info!("caches synced; reconciling");
    Ok(())
}

/// Runs the three controllers until shutdown, giving in-flight reconciliations a grace period.
async fn run_controllers(ctx: &Arc<Ctx>, cfg: &RunConfig, stop: &Stop) {
    let controllers = futures::future::join3(
        shard_controller(ctx, cfg, stop.signalled()),
        plugin_controller(ctx, cfg, stop.signalled()),
        namespace_controller(ctx, cfg, stop.signalled()),
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

async fn signal_stop(stop: watch::Sender<bool>) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
    let _ = stop.send(true);
}

/// Fails fast with a clear message when the CRDs are not installed.
async fn check_crds(client: &Client, settings: &Settings) -> anyhow::Result<()> {
    let probe = ListParams::default().limit(1);
    for (kind, result) in [
        (
            "PrismShard",
            api::<PrismShard>(client, settings)
                .list_metadata(&probe)
                .await
                .map(drop),
        ),
        (
            "PrismPlugin",
            api::<PrismPlugin>(client, settings)
                .list_metadata(&probe)
                .await
                .map(drop),
        ),
        (
            "PrismNamespace",
            api::<PrismNamespace>(client, settings)
                .list_metadata(&probe)
                .await
                .map(drop),
        ),
    ] {
        match result {
            Ok(()) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {
                bail!(
                    "the {kind} CRD is not installed: kubectl apply -f crds/ (or install the Helm chart)"
                )
            }
            Err(e) => return Err(e).with_context(|| format!("listing {kind}s")),
        }
    }
    Ok(())
}

/// Backoff of the controllers' watches: 0.5 s doubling to at most 5 s, reset after 30 s without
/// errors. After an API server restart every watch fails once (410 Gone) and re-lists; with
/// kube's default (up to 30 s per failure, across all watches of a controller) reconciling would
/// stall for minutes.
#[derive(Debug, Clone, Copy)]
struct WatchBackoff(std::time::Duration);

impl Iterator for WatchBackoff {
    type Item = std::time::Duration;
    fn next(&mut self) -> Option<Self::Item> {
        let now = self.0;
        self.0 = (now * 2).min(std::time::Duration::from_secs(5));
        Some(now)
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

/// Proxy pods (for namespace placement on ready pods).
fn proxy_pods() -> watcher::Config {
    watcher::Config::default().labels(&format!("app.kubernetes.io/name={PROXY_NAME}"))
}

/// `controller` reconciles its owner when any of its children changes: each kind the renderer
/// produces ([`CHILD_KINDS`]) is followed through the children's caches (kinds that need a CRD
/// from the moment the cluster serves them), and a child triggers the owner it names.
fn owns_children<K>(controller: Controller<K>, ctx: &Ctx) -> Controller<K>
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
            let changes = ctx.feeds.children[*kind].subscribe();
            c.owns_stream_with(touched(changes, child_meta), ar)
        })
}

async fn shard_controller(
    ctx: &Arc<Ctx>,
    cfg: &RunConfig,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let store = ctx.shards.clone();
    let feeds = &ctx.feeds;
    let controller = Controller::for_stream(applied(feeds.shards.subscribe()), store.clone());
    owns_children(controller, ctx)
        .watches_stream(
            touched(feeds.plugins.subscribe(), PrismPlugin::clone),
            move |plugin| {
                let name = plugin.name_any();
                store
                    .state()
                    .into_iter()
                    .filter(|sh| {
                        sh.namespace() == plugin.namespace()
                            && sh.spec.plugins.iter().any(|p| p.name == name)
                    })
                    .map(|sh| ObjectRef::from_obj(&*sh))
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
    cfg: &RunConfig,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let store = ctx.shards.clone();
    let remote = ctx.plugins.clone();
    let feeds = &ctx.feeds;
    let controller = Controller::for_stream(applied(feeds.plugins.subscribe()), remote.clone());
    let sets = api_resource("apps/v1", "StatefulSet").expect("a child kind");
    owns_children(controller, ctx)
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
    cfg: &RunConfig,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let by_shard = ctx.namespaces.clone();
    let by_pod = ctx.namespaces.clone();
    // Everything placed on (or placeable in the namespace of) a shard whose spec changed, or
    // that came or went, is re-placed. Status writes of shards (every placed namespace changes
    // the count) trigger nothing: with thousands of namespaces that would re-sync them all.
    let feeds = &ctx.feeds;
    let shard_changes = spec_changes(feeds.shards.subscribe());
    Controller::for_stream(
        applied(feeds.namespaces.subscribe()),
        ctx.namespaces.clone(),
    )
    .watches_stream(shard_changes, move |shard| {
        let namespace = shard.namespace();
        by_shard
            .state()
            .into_iter()
            .filter(|n| n.namespace() == namespace)
            .map(|n| ObjectRef::from_obj(&*n))
            .collect::<Vec<_>>()
    })
    .watches_stream(touched(feeds.pods.subscribe(), pod_meta), move |pod| {
        let namespace = pod.namespace();
        let shard = pod.labels().get("app.kubernetes.io/instance").cloned();
        by_pod
            .state()
            .into_iter()
            .filter(|n| n.namespace() == namespace)
            .filter(|n| {
                n.status.as_ref().and_then(|st| st.shard.clone()) == shard || n.status.is_none()
            })
            .map(|n| ObjectRef::from_obj(&*n))
            .collect::<Vec<_>>()
    })
    .with_config(config(cfg))
    .trigger_backoff(trigger_backoff())
    .graceful_shutdown_on(stop)
    .run(namespace::reconcile, namespace::error_policy, ctx.clone())
    .for_each(log_errors("namespace"))
    .await;
}
