//! Starting and stopping the operator: endpoints, leader election, caches, controllers, and a
//! graceful shutdown on SIGTERM or SIGINT (or when leadership is lost).

pub mod caches;
mod changes;
mod controllers;
mod leader;
pub mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use kube::Client;
use kube::api::{Api, ListParams};
use kube::runtime::events::Reporter;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::kit::admin::Admin;
use crate::kit::conflicts::Contests;
use crate::kit::context::{Ctx, Settings, api};
use crate::kit::events::Events;
use crate::kit::report::Report;
use crate::kit::served::{self, Served};
use crate::observe;
use crate::observe::auth::Authorizer;
use crate::observe::fleet::Fleet;
use crate::observe::metrics::Metrics;
use crate::observe::process::Process;
use crate::observe::serve::Access;
use crate::traffic::prometheus::{Prometheus, PrometheusConfig};
use crate::traffic::{self, TrafficSettings};
use crate::webhook::tls::Certificate;
use crate::webhook::{self, WebhookConfig};
use caches::{caches, sync_caches};
use controllers::run_controllers;
use leader::{lead, stop_when_lost};
use prism_api::{PrismNamespace, PrismPlugin, PrismShard};
use prism_render::render::RenderOptions;
use server::{Health, serve};

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
    /// Address of `/metrics`.
    pub metrics_addr: SocketAddr,
    /// Serve `/metrics` over HTTPS to authorized scrapers only (else plain HTTP to anyone).
    pub metrics_secure: bool,
    /// Address of `/healthz` and `/readyz`.
    pub health_addr: SocketAddr,
    /// Elect a leader with a Lease; only the leader reconciles.
    pub leader_election: bool,
    /// Namespace of the Lease.
    pub lease_namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// How long the Lease stays valid after a renewal.
    pub lease_duration: Duration,
    /// How long before it expires the leader renews it.
    pub lease_renew_margin: Duration,
    /// This replica's identity (pod name).
    pub identity: String,
    /// Reconciliations running at once per controller.
    pub concurrency: u16,
    /// How long a request the API server turns away for load is retried in the client before
    /// its reconcile fails and backs off.
    pub api_retry_budget: Duration,
    /// Traffic figures from Prometheus, when configured.
    pub traffic: Option<Traffic>,
    /// The admission and conversion webhooks, when served.
    pub webhook: Option<WebhookConfig>,
}

/// Where traffic figures come from, and how they are written.
#[derive(Debug, Clone)]
pub struct Traffic {
    /// The Prometheus API.
    pub prometheus: PrometheusConfig,
    /// Queries, interval and thresholds.
    pub settings: TrafficSettings,
}

/// The controllers, as their metrics name them.
const CONTROLLERS: [&str; 3] = [
    crate::shard::CONTROLLER,
    crate::plugin::CONTROLLER,
    crate::namespace::CONTROLLER,
];

/// Runs until a shutdown signal; an error when the operator could not run or lost leadership.
pub async fn run(cfg: RunConfig) -> anyhow::Result<()> {
    let prometheus = match &cfg.traffic {
        Some(t) => Some(Prometheus::new(t.prometheus.clone()).context("Prometheus")?),
        None => None,
    };
    let mut metrics = Metrics::new();
    metrics.collect(Process);
    let server_backoff = crate::client::retry::ServerBackoff::default();
    let client = crate::client::client(&metrics, cfg.api_retry_budget, &server_backoff)
        .await
        .context("connecting to the Kubernetes API")?;
    let renderer = renderer(&cfg)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop = Stop(stop_rx);
    tokio::spawn(signal_stop(stop_tx.clone()));

    let served = Served::default();
    served::discover(&client, &served).await;
    tokio::spawn(served::keep_discovering(client.clone(), served.clone()));
    let (view, feeds, cache_tasks) = caches(&client, &cfg.settings, &served);
    metrics.collect(Fleet::new(view.clone(), served.clone()));
    metrics.controllers(
        &CONTROLLERS,
        cfg.concurrency,
        &crate::kit::error::METRIC_LABELS,
    );
    if !cfg.leader_election {
        metrics.set_leader(&cfg.lease_name, true); // the only writer
    }
    let metrics = Arc::new(metrics);
    let ctx = Arc::new(context(
        client,
        server_backoff,
        &cfg,
        renderer,
        view,
        served,
        metrics.clone(),
    )?);
    let health = Health::default();
    let server = tokio::spawn(serve(cfg.health_addr, health.clone(), stop.signalled()));
    let certificate = match (&cfg.webhook, cfg.metrics_secure) {
        (Some(_), _) => Some(Arc::new(Certificate::default())),
        (None, true) => Some(observe::serve::self_signed(vec!["localhost".into()])?),
        (None, false) => None,
    };
    let access = match &certificate {
        Some(certificate) if cfg.metrics_secure => Access::Secure {
            certificate: certificate.clone(),
            authorizer: Arc::new(Authorizer::new(ctx.client.clone())),
        },
        _ => Access::Open,
    };
    let metrics_server = tokio::spawn(observe::serve::serve(
        cfg.metrics_addr,
        access,
        metrics,
        stop.signalled(),
    ));
    // Every replica serves the webhooks, before its caches fill: reading objects stored in
    // another version goes through the conversion webhook.
    let webhooks = match (&cfg.webhook, certificate) {
        (Some(w), Some(certificate)) => {
            Some(webhook::start(ctx.clone(), w.clone(), certificate, stop.signalled()).await?)
        }
        _ => None,
    };
    // Listing a kind whose objects are stored in another version needs the webhook above.
    check_crds(&ctx.client, &cfg.settings).await?;
    // A standby keeps its caches warm too: the webhook reads them, and a new leader starts
    // from them.
    let mut background: Vec<JoinHandle<()>> = cache_tasks.into_iter().map(tokio::spawn).collect();
    background.extend(webhooks);

    let leading = match cfg.leader_election {
        true => match lead(&ctx, &cfg, &health, &stop).await? {
            Some(leading) => Some(leading),
            None => return Ok(()), // stopped while standing by
        },
        false => None,
    };
    sync_caches(&ctx, &health).await?;
    if cfg.settings.watch_namespace.is_none() {
        background.push(tokio::spawn(crate::migrate::run(ctx.client.clone())));
    }
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
        let writer = traffic::run(ctx.clone(), prometheus, t.settings.clone());
        background.push(tokio::spawn(writer));
    }
    run_controllers(&ctx, &feeds, &cfg, &stop).await;
    let _ = stop_tx.send(true);
    for t in background {
        t.abort();
    }
    let _ = server.await;
    let _ = metrics_server.await;
    tracing::info!("endpoints stopped");
    if lost.load(Ordering::Relaxed) {
        bail!("leadership lost");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The renderer of every unit: the embedded templates or `--templates`, with the options
/// the flags set.
fn renderer(cfg: &RunConfig) -> anyhow::Result<prism_render::render::Renderer> {
    let options = RenderOptions {
        proxy_image: cfg.proxy_image.clone(),
        network_policies: cfg.network_policies,
        prometheus_url: cfg.traffic.as_ref().map(|t| t.prometheus.url.clone()),
    };
    prism_render::render::templates::renderer(cfg.templates.as_deref(), options)
        .map_err(|e| anyhow::anyhow!("templates: {e}"))
}

/// The shared context of every controller.
fn context(
    client: Client,
    server_backoff: crate::client::retry::ServerBackoff,
    cfg: &RunConfig,
    renderer: prism_render::render::Renderer,
    view: crate::view::View,
    served: Served,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Ctx> {
    let events = Events::new(
        client.clone(),
        Reporter {
            controller: "prism-operator".into(),
            instance: Some(cfg.identity.clone()),
        },
    );
    let settings = &cfg.settings;
    let admin = Admin::new(
        settings.admin_timeout,
        settings.admin_tls.clone(),
        metrics.clone(),
    )
    .map_err(|e| anyhow::anyhow!("Prism admin TLS: {e}"))?;
    Ok(Ctx {
        report: Report::new(client.clone(), events, metrics).heeding(server_backoff),
        client,
        settings: settings.clone(),
        renderer,
        view,
        admin,
        contests: Contests::default(),
        dropped: Default::default(),
        unseen: Default::default(),
        served,
    })
}

/// The shutdown signal, for every task that stops with it.
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// Resolves once shutdown began.
    pub fn signalled(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
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
    if let Some(watched) = &settings.watch_namespace {
        fleet_readable(client, watched).await?;
    }
    Ok(())
}

/// With one watched namespace, whether PrismShards and PrismNamespaces can be read in every
/// namespace: without that, a name or an admin used by another namespace's objects would be
/// overwritten in Prism admin unseen, so the operator refuses to start.
async fn fleet_readable(client: &Client, watched: &str) -> anyhow::Result<()> {
    let probe = ListParams::default().limit(1);
    let shards = Api::<PrismShard>::all(client.clone())
        .list_metadata(&probe)
        .await;
    let namespaces = Api::<PrismNamespace>::all(client.clone())
        .list_metadata(&probe)
        .await;
    for (plural, result) in [
        ("prismshards", shards.map(drop)),
        ("prismnamespaces", namespaces.map(drop)),
    ] {
        match result {
            Ok(()) => {}
            Err(kube::Error::Api(e)) if e.code == 403 => bail!(
                "--watch-namespace {watched}: cannot list {plural} in all namespaces. Prism admin \
                 keys namespaces by name alone and spreads them over every proxy registered \
                 with it, so the operator checks names and admins against every namespace's \
                 PrismNamespaces and PrismShards: grant list and watch on prismshards and \
                 prismnamespaces cluster-wide (the Helm chart does)"
            ),
            Err(e) => return Err(e).with_context(|| format!("listing {plural} in all namespaces")),
        }
    }
    Ok(())
}
