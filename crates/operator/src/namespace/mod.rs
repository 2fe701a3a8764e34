//! PrismNamespace controller: places each namespace on a shard with the renderer's placement
//! function and upserts it into that shard's Prism admin (`prism.ControlPlane/CreateNamespace`),
//! registering the shard's ready pods as proxies first. Admin failures become conditions,
//! Warning events and per-object backoff; a periodic resync re-creates what an emptied admin
//! lost. Deletion goes through a finalizer and the namespace's reclaim policy.
//!
//! One sync: observe the shards and their ready pods, place the namespace (pure), check the
//! admin rules (pure), push it to Prism admin, derive the status (pure), write it once.

pub mod derive;
mod finalizer;
mod fingerprint;
pub mod rules;
mod upsert;

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};

use crate::kit::context::Ctx;
use crate::kit::error::Error;
use crate::kit::report::object_key;
use crate::kit::status;
use derive::{Blocked, Synced, blocked_status, placed_status, unschedulable_status};
use fingerprint::{Pushes, push_inputs};
use prism_api::{PrismNamespace, PrismNamespaceStatus, PrismShard, reason};
use prism_render::render::placement::place;

pub use finalizer::{FORCE_DELETE, abandon_reason, revoke_report};

/// Controller name in metrics and logs.
pub const CONTROLLER: &str = "prismnamespace";
/// Finalizer that lets deletion reach Prism admin first.
pub const FINALIZER: &str = "prism.io/namespace-sync";
/// How often a namespace waiting for another one's name looks again.
const NAME_RECHECK: Duration = Duration::from_secs(10);

/// The namespace controller's context: the shared one, and what it last sent to admin.
pub struct Context {
    ctx: Arc<Ctx>,
    pushes: Pushes,
}

impl Context {
    /// The namespace controller's context over the shared `ctx`.
    pub fn new(ctx: Arc<Ctx>) -> Self {
        Self {
            ctx,
            pushes: Pushes::default(),
        }
    }
}

impl Deref for Context {
    type Target = Ctx;
    fn deref(&self) -> &Ctx {
        &self.ctx
    }
}

/// Reconciles one namespace.
pub async fn reconcile(ns: Arc<PrismNamespace>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<PrismNamespace> =
        Api::namespaced(ctx.client.clone(), &ns.namespace().unwrap_or_default());
    let run = finalizer(&api, FINALIZER, ns.clone(), |event| async {
        match event {
            Finalizer::Apply(ns) => sync(&ns, &ctx).await,
            Finalizer::Cleanup(ns) => finalizer::cleanup(&ns, &ctx).await,
        }
    });
    let run = async { run.await.map_err(Error::from) };
    ctx.report.measured(CONTROLLER, &*ns, run).await
}

/// Backs off per object after a failure.
pub fn error_policy(ns: Arc<PrismNamespace>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.report.retry_later(&*ns, err)
}

/// What one sync found: the namespace's shard, its ready proxies and its admin.
struct Placed {
    shard: Arc<PrismShard>,
    pods: Vec<Arc<Pod>>,
    endpoints: Option<String>,
}

async fn sync(ns: &PrismNamespace, ctx: &Context) -> Result<Action, Error> {
    let (old, mut status) = status::begin(ns);
    if let Some(action) = status::pause_if_paused(ctx, ns, &old, &mut status).await? {
        return Ok(action);
    }
    let placed = match observe(ns, ctx, &old).await {
        Ok(placed) => placed,
        Err(why) => return unschedulable(ns, ctx, &old, status, why).await,
    };
    let endpoints = placed.endpoints.as_deref();
    let blocked = endpoints.and_then(|e| {
        rules::blocked(
            &ctx.view,
            ctx.settings.allow_shared_admin,
            ns,
            &placed.shard,
            e,
        )
    });
    if let Some(blocked) = blocked {
        return hold(ns, ctx, &old, status, &placed, blocked).await;
    }
    let key = object_key(ns);
    let epoch = endpoints.map_or(0, |e| ctx.admin.proxy_epoch(e));
    let inputs = push_inputs(ns, &placed.shard, endpoints, epoch, &placed.pods);
    let unchanged = status.observed_generation == old.observed_generation;
    if unchanged && ctx.pushes.recent(&key, inputs, ctx.settings.resync) {
        // Nothing admin would see changed since the last upsert within the resync period (this
        // reconcile came from our own status write, say): no call.
        return Ok(Action::requeue(ctx.settings.resync));
    }
    let pushed = upsert::push(
        (&ctx.client, &ctx.admin),
        ns,
        &placed.shard,
        endpoints,
        &placed.pods,
    )
    .await;
    let (synced, epoch) = match pushed {
        Ok(p) => (Ok(p.synced), Some(p.epoch)),
        Err(e) => (Err(e), None),
    };
    let action = report(ns, ctx, &old, &mut status, &placed, &synced).await?;
    if let Some(epoch) = epoch {
        // What admin saw when the namespace was sent: proxies it accepted since then send it
        // again.
        let sent = push_inputs(ns, &placed.shard, endpoints, epoch, &placed.pods);
        ctx.pushes.record(&key, sent);
    }
    Ok(action)
}

/// Places the namespace on a live shard of its Kubernetes namespace and finds that shard's
/// ready proxies and admin; why no shard fits, if none does.
async fn observe(
    ns: &PrismNamespace,
    ctx: &Context,
    old: &PrismNamespaceStatus,
) -> Result<Placed, String> {
    let namespace = ns.namespace().unwrap_or_default();
    let shards = ctx.view.live_shards(&namespace);
    let placement = place(ns, shards.iter().map(|s| &**s))?;
    if let Some(previous) = old.shard.as_deref().filter(|p| *p != placement.shard) {
        let note = format!(
            "moved from shard {previous} to {} ({placement})",
            placement.shard
        );
        ctx.report.event(ns, false, reason::REPLACED, note).await;
    }
    let shard = shards
        .into_iter()
        .find(|s| s.name_any() == placement.shard)
        .expect("placed on a listed shard");
    Ok(Placed {
        pods: ctx.view.ready_pods(&namespace, &placement.shard),
        endpoints: ctx.view.admins.endpoints_of(&shard),
        shard,
    })
}

/// No shard can host the namespace: says why, and looks again at the resync.
async fn unschedulable(
    ns: &PrismNamespace,
    ctx: &Context,
    old: &PrismNamespaceStatus,
    mut status: PrismNamespaceStatus,
    why: String,
) -> Result<Action, Error> {
    unschedulable_status(&mut status, &why, Timestamp::now());
    if status::write(ctx, ns, old, &status).await? {
        ctx.report.event(ns, true, reason::UNSCHEDULABLE, why).await;
    }
    Ok(Action::requeue(ctx.settings.resync))
}

/// The namespace must not be sent: says why, and looks again (soon, for a name that another
/// namespace may give up).
async fn hold(
    ns: &PrismNamespace,
    ctx: &Context,
    old: &PrismNamespaceStatus,
    mut status: PrismNamespaceStatus,
    placed: &Placed,
    blocked: Blocked,
) -> Result<Action, Error> {
    let shard = placed.shard.name_any();
    blocked_status(&mut status, &shard, &blocked, Timestamp::now());
    if status::write(ctx, ns, old, &status).await? {
        ctx.report
            .event(ns, true, blocked.reason, blocked.message.clone())
            .await;
    }
    Ok(Action::requeue(match blocked.reason {
        reason::NAME_CONFLICT => NAME_RECHECK.min(ctx.settings.resync),
        _ => ctx.settings.resync,
    }))
}

/// Derives and writes the status after an upsert came to `synced`, with its events; when to
/// look again.
async fn report(
    ns: &PrismNamespace,
    ctx: &Context,
    old: &PrismNamespaceStatus,
    status: &mut PrismNamespaceStatus,
    placed: &Placed,
    synced: &Result<Synced, Error>,
) -> Result<Action, Error> {
    let shard = placed.shard.name_any();
    let off_shard = synced
        .as_ref()
        .ok()
        .and_then(|s| rules::off_shard(&ctx.view, ns, &shard, &s.answer.assigned_proxy));
    let now = Timestamp::now();
    placed_status(status, &shard, synced, off_shard.as_deref(), now);
    let action = match synced {
        Ok(accepted) => {
            endpoint_moved(ns, ctx, old, accepted).await;
            Action::requeue(ctx.settings.resync)
        }
        Err(e) => {
            let note = match &placed.endpoints {
                Some(list) => format!("{e} (admin {list})"),
                None => e.to_string(),
            };
            ctx.report.event(ns, true, e.reason(), note).await;
            Action::requeue(ctx.report.backoff(&object_key(ns)))
        }
    };
    if status::write(ctx, ns, old, status).await?
        && let (Some(why), Ok(_)) = (&off_shard, synced)
    {
        ctx.report
            .event(ns, true, reason::PLACED_OFF_SHARD, why.clone())
            .await;
    }
    Ok(action)
}

/// Announces that another node of an HA admin accepted the write than the last time.
async fn endpoint_moved(
    ns: &PrismNamespace,
    ctx: &Context,
    old: &PrismNamespaceStatus,
    accepted: &Synced,
) {
    let Some(previous) = old.admin_endpoint.as_deref() else {
        return;
    };
    if previous == accepted.endpoint {
        return;
    }
    let note = format!(
        "Prism admin {} accepted the write after {} attempt(s); the last one before was {previous}",
        accepted.endpoint, accepted.attempts,
    );
    ctx.report
        .event(ns, false, reason::ADMIN_ENDPOINT_CHANGED, note)
        .await;
}
