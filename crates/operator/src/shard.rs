//! PrismShard controller: renders the shard with the plugin versions its plugins' rollouts
//! allow, applies what changed, prunes what is no longer rendered, carries out volume resizes,
//! and reports status.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use super::children;
use super::conditions::{self, remove, set, set_paused};
use super::context::{Ctx, object_key, paused};
use super::error::Error;
use super::rollout;
use super::storage::VolumeGrowth;
use prism_api::{PrismPlugin, PrismShard, PrismShardStatus, ShardPluginStatus, condition};
use prism_render::render::contract::shard_fullname;
use prism_render::render::resolve::shard_plugins;

/// Controller name in metrics and logs.
pub const CONTROLLER: &str = "prismshard";

/// Reconciles one shard.
pub async fn reconcile(shard: Arc<PrismShard>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    ctx.measured(
        CONTROLLER,
        &object_key(&*shard),
        reconcile_shard(&shard, &ctx),
    )
    .await
}

/// Backs off per object after a failure.
pub fn error_policy(shard: Arc<PrismShard>, err: &Error, ctx: Arc<Ctx>) -> Action {
    ctx.retry_later(&object_key(&*shard), err)
}

/// The plugins of `shard` at the spec each one's rollout allows this shard to run.
pub fn pinned_plugins(ctx: &Ctx, shard: &PrismShard) -> Vec<PrismPlugin> {
    let ns = shard.namespace().unwrap_or_default();
    let name = shard.name_any();
    shard
        .spec
        .plugins
        .iter()
        .filter_map(|e| ctx.plugins.get(&ObjectRef::new(&e.name).within(&ns)))
        .map(|p| {
            let mut p = (*p).clone();
            p.spec = rollout::spec_for_shard(&p, &name).clone();
            p
        })
        .collect()
}

async fn reconcile_shard(shard: &PrismShard, ctx: &Ctx) -> Result<Action, Error> {
    if shard.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change()); // children go with their owner reference
    }
    let ns = shard.namespace().unwrap_or_default();
    let name = shard.name_any();
    let generation = shard.metadata.generation;
    let now = Timestamp::now();
    let old = shard.status.clone().unwrap_or_default();
    let mut status = old.clone();
    status.observed_generation = generation;

    if paused(shard) {
        set_paused(&mut status.conditions, generation, now);
        write_status(ctx, shard, &old, &status).await?;
        return Ok(Action::await_change());
    }
    remove(&mut status.conditions, condition::PAUSED);

    let pinned = pinned_plugins(ctx, shard);
    let mut available: Vec<String> = ctx
        .plugins
        .state()
        .iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .map(|p| p.name_any())
        .collect();
    available.sort();
    let lookup = |n: &str| {
        pinned
            .iter()
            .find(|p| p.name_any() == n)
            .map(|p| (p, format!("PrismPlugin {ns}/{n}")))
    };
    let rendered = match shard_plugins(shard, lookup, &available) {
        Ok(uses) => ctx
            .renderer
            .render_shard(shard, &uses)
            .map_err(|e| e.to_string()),
        Err(problems) => Err(problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect::<Vec<_>>()
            .join("; ")),
    };
    let objects = match rendered {
        Ok(objects) => objects,
        Err(why) => {
            set(
                &mut status.conditions,
                condition::READY,
                false,
                "InvalidSpec",
                why.clone(),
                generation,
                now,
            );
            set(
                &mut status.conditions,
                condition::DEGRADED,
                true,
                "InvalidSpec",
                why.clone(),
                generation,
                now,
            );
            set(
                &mut status.conditions,
                condition::PROGRESSING,
                false,
                "InvalidSpec",
                "",
                generation,
                now,
            );
            if write_status(ctx, shard, &old, &status).await? {
                ctx.event(shard, true, "InvalidSpec", why).await;
            }
            return Ok(Action::requeue(ctx.settings.resync));
        }
    };

    let mut degraded = None;
    if ctx.settings.workload_writes {
        degraded = children::apply_and_prune(ctx, shard, &objects, &VolumeGrowth(shard)).await?;
    }

    // Status from the live StatefulSet.
    let sts = ctx.typed_child::<StatefulSet>(&ns, &shard_fullname(&name));
    let sts_status = sts.as_ref().and_then(|s| s.status.as_ref());
    status.replicas = sts_status.map(|s| s.replicas);
    status.ready_replicas = sts_status.and_then(|s| s.ready_replicas);
    status.namespaces = Some(
        ctx.namespaces
            .state()
            .iter()
            .filter(|n| n.namespace().as_deref() == Some(ns.as_str()))
            .filter(|n| n.status.as_ref().and_then(|s| s.shard.as_deref()) == Some(name.as_str()))
            .count() as i32,
    );
    status.plugins = pinned
        .iter()
        .map(|p| ShardPluginStatus {
            name: p.name_any(),
            version: p.spec.version.clone(),
        })
        .collect();
    status.plugins.sort_by(|a, b| a.name.cmp(&b.name));
    let (ready, progress) = match &sts {
        Some(s) => rollout_state(s),
        None => (false, "the StatefulSet does not exist yet".to_string()),
    };
    if ready {
        set(
            &mut status.conditions,
            condition::READY,
            true,
            "Ready",
            progress.clone(),
            generation,
            now,
        );
        set(
            &mut status.conditions,
            condition::PROGRESSING,
            false,
            "RolledOut",
            progress,
            generation,
            now,
        );
    } else {
        set(
            &mut status.conditions,
            condition::READY,
            false,
            "RollingOut",
            progress.clone(),
            generation,
            now,
        );
        set(
            &mut status.conditions,
            condition::PROGRESSING,
            true,
            "RollingOut",
            progress,
            generation,
            now,
        );
    }
    match degraded {
        Some(problem) => set(
            &mut status.conditions,
            condition::DEGRADED,
            true,
            problem.reason,
            problem.message,
            generation,
            now,
        ),
        None => set(
            &mut status.conditions,
            condition::DEGRADED,
            false,
            "Healthy",
            "",
            generation,
            now,
        ),
    }
    write_status(ctx, shard, &old, &status).await?;
    Ok(Action::requeue(ctx.settings.resync))
}

/// Whether a StatefulSet finished rolling out with every replica ready, and a summary.
pub fn rollout_state(sts: &StatefulSet) -> (bool, String) {
    let spec_replicas = sts.spec.replicas.unwrap_or(1);
    let st = sts.status.clone().unwrap_or_default();
    let ready_replicas = st.ready_replicas.unwrap_or(0);
    let updated_replicas = st.updated_replicas.unwrap_or(0);
    let observed = st.observed_generation.unwrap_or(0) >= sts.metadata.generation.unwrap_or(0);
    let same_revision = st.current_revision.is_some() && st.current_revision == st.update_revision;
    let ready = observed
        && same_revision
        && st.replicas == spec_replicas
        && ready_replicas == spec_replicas
        && updated_replicas == spec_replicas;
    let summary = format!(
        "{ready_replicas}/{spec_replicas} replicas ready, {updated_replicas} updated{}",
        if same_revision {
            ""
        } else {
            ", rollout in progress"
        }
    );
    (ready, summary)
}

/// Writes the status when it changed; returns whether it did.
async fn write_status(
    ctx: &Ctx,
    shard: &PrismShard,
    old: &PrismShardStatus,
    new: &PrismShardStatus,
) -> Result<bool, Error> {
    if old == new {
        return Ok(false);
    }
    let changed_ready = conditions::is_true(&old.conditions, condition::READY)
        != conditions::is_true(&new.conditions, condition::READY);
    ctx.patch_status(shard, new).await?;
    if changed_ready {
        let ready = conditions::is_true(&new.conditions, condition::READY);
        ctx.event(
            shard,
            false,
            if ready { "Ready" } else { "NotReady" },
            format!(
                "{}/{} replicas ready",
                new.ready_replicas.unwrap_or(0),
                new.replicas.unwrap_or(0)
            ),
        )
        .await;
    }
    Ok(true)
}
