//! PrismShard controller: renders the shard with the plugin versions its plugins' rollouts
//! allow, applies what changed, prunes what is no longer rendered, carries out volume resizes,
//! and reports status.
//!
//! One reconcile: observe the caches, render (pure), apply and prune the children, derive
//! the status from the live StatefulSet (pure), write it once.

mod derive;
pub mod storage;

use std::collections::BTreeSet;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::ResourceExt;
use kube::runtime::controller::Action;

use crate::decide::admin::{access, stale_proxies};
use crate::decide::rollout;
use crate::kit::children;
use crate::kit::context::Ctx;
use crate::kit::error::Error;
use crate::kit::outcome::is_true;
use crate::kit::status;
use crate::view::key;
pub use derive::{AdminOf, refused};
use derive::{Seen, admin_status, invalid_status, shard_status};
use prism_api::{PrismPlugin, PrismShard, PrismShardStatus, condition, reason};
use prism_render::render::contract::shard_fullname;
use prism_render::render::resolve::shard_plugins;
use prism_render::render::{Object, Renderer};
use storage::VolumeGrowth;

pub const CONTROLLER: &str = "prismshard";

/// Reconciles one shard.
pub async fn reconcile(shard: Arc<PrismShard>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    ctx.report
        .measured(CONTROLLER, &*shard, reconcile_shard(&shard, &ctx))
        .await
}

/// Backs off per object after a failure.
pub fn error_policy(shard: Arc<PrismShard>, err: &Error, ctx: Arc<Ctx>) -> Action {
    ctx.report.retry_later(&*shard, err)
}

async fn reconcile_shard(shard: &PrismShard, ctx: &Ctx) -> Result<Action, Error> {
    if shard.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change()); // children go with their owner reference
    }
    let (old, mut status) = status::begin(shard);
    if let Some(action) = status::pause_if_paused(ctx, shard, &old, &mut status).await? {
        return Ok(action);
    }
    let now = Timestamp::now();
    let ns = shard.namespace().unwrap_or_default();
    let pinned = pinned_plugins(ctx, shard);
    let available = ctx.view.plugin_names(&ns);
    let objects = match render(&ctx.renderer, shard, &pinned, &available) {
        Ok(objects) => objects,
        Err(why) => {
            invalid_status(&mut status, &why, now);
            if write_status(ctx, shard, &old, &status).await? {
                ctx.report
                    .event(shard, true, reason::INVALID_SPEC, why)
                    .await;
            }
            return Ok(Action::requeue(ctx.settings.resync));
        }
    };
    let degraded = match ctx.settings.workload_writes {
        true => children::apply_and_prune(ctx, shard, &objects, &VolumeGrowth(shard)).await?,
        false => None,
    };
    let sts = ctx
        .view
        .typed_child::<StatefulSet>(&ns, &shard_fullname(&shard.name_any()));
    let seen = Seen {
        statefulset: sts.as_ref(),
        namespaces: ctx
            .view
            .placed_on(&ns, &BTreeSet::from([shard.name_any().as_str()])),
        plugins: &pinned,
    };
    shard_status(&mut status, &seen, degraded, now);
    let endpoints = admin_of(&ctx.view, shard);
    let access = access(&ctx.view, shard, ctx.settings.allow_shared_admin);
    admin_status(
        &mut status,
        endpoints,
        access,
        stale_proxies(&ctx.view, shard, ctx.admin.registered_proxies(&key(shard))),
        now,
    );
    write_status(ctx, shard, &old, &status).await?;
    Ok(Action::requeue(ctx.settings.resync))
}

/// The plugins of `shard` at the spec each one's rollout allows this shard to run (in render
/// mode: the spec Git holds, which Argo CD applies).
pub fn pinned_plugins(ctx: &Ctx, shard: &PrismShard) -> Vec<PrismPlugin> {
    let ns = shard.namespace().unwrap_or_default();
    let name = shard.name_any();
    shard
        .spec
        .plugins
        .iter()
        .filter_map(|e| ctx.view.plugin(&ns, &e.name))
        .map(|p| {
            let mut p = (*p).clone();
            if ctx.settings.workload_writes {
                p.spec = rollout::spec_for_shard(&p, &name).clone();
            }
            p
        })
        .collect()
}

/// The shard's objects, rendered with its `pinned` plugins (`available`: every plugin name in
/// its namespace); or every problem, in one message.
fn render(
    renderer: &Renderer,
    shard: &PrismShard,
    pinned: &[PrismPlugin],
    available: &[String],
) -> Result<Vec<Object>, String> {
    let ns = shard.namespace().unwrap_or_default();
    let lookup = |n: &str| {
        pinned
            .iter()
            .find(|p| p.name_any() == n)
            .map(|p| (p, format!("PrismPlugin {ns}/{n}")))
    };
    match shard_plugins(shard, lookup, available) {
        Ok(uses) => renderer
            .render_shard(shard, &uses)
            .map_err(|e| e.to_string()),
        Err(problems) => Err(problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect::<Vec<_>>()
            .join("; ")),
    }
}

/// Writes the status when it changed, with an event when Ready flipped; returns whether it did.
async fn write_status(
    ctx: &Ctx,
    shard: &PrismShard,
    old: &PrismShardStatus,
    new: &PrismShardStatus,
) -> Result<bool, Error> {
    let was_ready = is_true(&old.conditions, condition::READY);
    let ready = is_true(&new.conditions, condition::READY);
    if !status::write(ctx, shard, old, new).await? {
        return Ok(false);
    }
    if was_ready != ready {
        let why = if ready {
            reason::READY
        } else {
            reason::NOT_READY
        };
        let note = format!(
            "{}/{} replicas ready",
            new.ready_replicas.unwrap_or(0),
            new.replicas.unwrap_or(0)
        );
        ctx.report.event(shard, false, why, note).await;
    }
    Ok(true)
}

/// The admin endpoints `shard` uses, and whether they are the operator's default.
pub fn admin_of(view: &crate::view::View, shard: &PrismShard) -> Option<AdminOf> {
    view.admins.endpoints_of(shard).map(|list| AdminOf {
        default: shard.spec.admin_endpoint.is_none(),
        endpoints: list,
    })
}
