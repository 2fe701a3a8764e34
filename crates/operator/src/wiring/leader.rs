//! Leadership: a replica stands by, ready, until it holds the Lease, and stops when it
//! loses it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use tokio::sync::watch;

use super::server::Health;
use super::{RunConfig, Stop};
use crate::kit::context::Ctx;

/// Stands by until this replica leads (a healthy standby is ready). `None` when shutdown began
/// first; else the receiver that reports losing the lead.
pub async fn lead(
    ctx: &Ctx,
    cfg: &RunConfig,
    health: &Health,
    stop: &Stop,
) -> anyhow::Result<Option<watch::Receiver<bool>>> {
    let manager = kube_lease_manager::LeaseManagerBuilder::new(ctx.client.clone(), &cfg.lease_name)
        .with_namespace(&cfg.lease_namespace)
        .with_identity(&cfg.identity)
        .with_duration(cfg.lease_duration.as_secs())
        .with_grace(cfg.lease_renew_margin.as_secs())
        .build()
        .await
        .context("setting up leader election")?;
    let (mut rx, task) = manager.watch().await;
    ctx.report.metrics.set_leader(&cfg.lease_name, false);
    health.ready.store(true, Ordering::Relaxed); // a healthy standby is ready
    tracing::info!(identity = %cfg.identity, lease = %cfg.lease_name, "waiting for leadership");
    tokio::select! {
        r = rx.wait_for(|l| *l) => { r.context("leader election ended")?; }
        _ = stop.signalled() => { task.abort(); return Ok(None); }
    }
    tracing::info!(identity = %cfg.identity, "leading");
    ctx.report.metrics.set_leader(&cfg.lease_name, true);
    Ok(Some(rx))
}

/// Stops the operator when this replica stops leading.
pub async fn stop_when_lost(
    mut leading: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    lost: Arc<AtomicBool>,
) {
    let _ = leading.wait_for(|l| !*l).await;
    tracing::error!("leadership lost; stopping");
    lost.store(true, Ordering::Relaxed);
    let _ = stop.send(true);
}
