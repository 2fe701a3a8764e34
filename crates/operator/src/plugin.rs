//! PrismPlugin controller: drives the plugin's rollout across the shards that use it (the
//! shards render what the rollout allows), runs remote plugins as their own Deployment, and
//! reports which version every shard runs.

use std::collections::BTreeSet;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::ResourceExt;
use kube::runtime::controller::Action;

use super::children;
use super::conditions::{Degradation, remove, set, set_paused};
use super::context::{Ctx, object_key, paused};
use super::error::Error;
use super::rollout::{self, ShardReport};
use super::shard::rollout_state;
use prism_api::{
    PluginDeploymentType, PrismPlugin, PrismPluginStatus, PrismShard, RolloutPhase, ShardVersion,
    condition,
};
use prism_render::render::contract::{PLUGIN_ANNOTATION_PREFIX, plugin_annotation, shard_fullname};

/// Controller name in metrics and logs.
pub const CONTROLLER: &str = "prismplugin";
/// How often a rollout in progress is re-checked (deadlines need a clock, not an event).
const ROLLOUT_POLL: std::time::Duration = std::time::Duration::from_secs(5);

/// Reconciles one plugin.
pub async fn reconcile(plugin: Arc<PrismPlugin>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    ctx.measured(
        CONTROLLER,
        &object_key(&*plugin),
        reconcile_plugin(&plugin, &ctx),
    )
    .await
}

/// Backs off per object after a failure.
pub fn error_policy(plugin: Arc<PrismPlugin>, err: &Error, ctx: Arc<Ctx>) -> Action {
    ctx.retry_later(&object_key(&*plugin), err)
}

/// Shards in the plugin's namespace that list it, sorted by name.
pub fn users(ctx: &Ctx, plugin: &PrismPlugin) -> Vec<Arc<PrismShard>> {
    let ns = plugin.namespace();
    let name = plugin.name_any();
    let mut shards: Vec<Arc<PrismShard>> = ctx
        .shards
        .state()
        .into_iter()
        .filter(|s| s.namespace() == ns && s.spec.plugins.iter().any(|p| p.name == name))
        .collect();
    shards.sort_by_key(|s| s.name_any());
    shards
}

/// The `plugin.prism.io/<name>` annotation of a shard's live pod template, if any.
fn running_annotation(sts: &StatefulSet, plugin: &str) -> Option<String> {
    let template = sts.spec.template.metadata.as_ref()?;
    let key = format!("{PLUGIN_ANNOTATION_PREFIX}{plugin}");
    template.annotations.as_ref()?.get(&key).cloned()
}

async fn reconcile_plugin(plugin: &PrismPlugin, ctx: &Ctx) -> Result<Action, Error> {
    if plugin.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = plugin.namespace().unwrap_or_default();
    let name = plugin.name_any();
    let generation = plugin.metadata.generation;
    let now = Timestamp::now();
    let old = plugin.status.clone().unwrap_or_default();
    let mut status = old.clone();
    status.observed_generation = generation;

    if paused(plugin) {
        set_paused(&mut status.conditions, generation, now);
        write_status(ctx, plugin, &old, &status).await?;
        return Ok(Action::await_change());
    }
    remove(&mut status.conditions, condition::PAUSED);

    let users = users(ctx, plugin);
    let target = plugin_annotation(&plugin.spec);
    let mut reports = Vec::new();
    let mut versions = Vec::new();
    for shard in &users {
        let sts = ctx.typed_child::<StatefulSet>(&ns, &shard_fullname(&shard.name_any()));
        let running = sts.as_ref().and_then(|s| running_annotation(s, &name));
        let healthy = sts.as_ref().is_some_and(|s| rollout_state(s).0);
        if let Some(r) = &running {
            versions.push(ShardVersion {
                shard: shard.name_any(),
                version: r.split('@').next().unwrap_or_default().to_string(),
            });
        }
        reports.push(ShardReport {
            shard: shard.name_any(),
            at_target: running.as_deref() == Some(target.as_str()),
            healthy,
        });
    }

    // Remote plugins run as their own Deployment, always at the current spec.
    let (mut remote_ready, mut degraded) = (true, None);
    if plugin.spec.deployment.type_ == PluginDeploymentType::Remote && ctx.settings.workload_writes
    {
        (remote_ready, degraded) = apply_remote(ctx, plugin).await?;
    }

    let step = rollout::advance(plugin, &reports, now);
    for note in &step.notes {
        ctx.event(plugin, note.warning, note.reason, note.message.clone())
            .await;
    }
    rollout::apply_step(&mut status, &step);
    let installed = reports.iter().all(|r| r.at_target && r.healthy) && remote_ready;
    status.installed = installed;
    status.shards = users.iter().map(|s| s.name_any()).collect();
    status.shard_versions = versions;
    let user_names: BTreeSet<String> = status.shards.iter().cloned().collect();
    status.namespaces_using = Some(
        ctx.namespaces
            .state()
            .iter()
            .filter(|n| n.namespace().as_deref() == Some(ns.as_str()))
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.shard.as_ref())
                    .is_some_and(|s| user_names.contains(s))
            })
            .count() as i32,
    );

    let phase = status.rollout.as_ref().map(|r| r.phase);
    let version = &plugin.spec.version;
    match phase {
        Some(RolloutPhase::RolledBack) => {
            let r = status.rollout.as_ref().expect("phase came from it");
            let why = r.message.clone().unwrap_or_default();
            set(
                &mut status.conditions,
                condition::DEGRADED,
                true,
                "RolledBack",
                why.clone(),
                generation,
                now,
            );
            set(
                &mut status.conditions,
                condition::PROGRESSING,
                false,
                "RolledBack",
                why,
                generation,
                now,
            );
            set(
                &mut status.conditions,
                condition::READY,
                false,
                "RolledBack",
                format!(
                    "{version} was rolled back; shards run {}",
                    status.last_healthy_version.clone().unwrap_or_default()
                ),
                generation,
                now,
            );
        }
        Some(RolloutPhase::Progressing) => {
            let r = status.rollout.as_ref().expect("phase came from it");
            let msg = format!("{}/{} shards on {version}", r.completed.len(), users.len());
            set(
                &mut status.conditions,
                condition::PROGRESSING,
                true,
                "RollingOut",
                msg.clone(),
                generation,
                now,
            );
            set(
                &mut status.conditions,
                condition::READY,
                false,
                "RollingOut",
                msg,
                generation,
                now,
            );
            set_degraded(&mut status.conditions, degraded.clone(), generation, now);
        }
        _ => {
            let msg = format!(
                "{version} runs on {}/{} shards",
                reports.iter().filter(|r| r.at_target && r.healthy).count(),
                users.len()
            );
            set(
                &mut status.conditions,
                condition::READY,
                installed,
                if installed { "Installed" } else { "Installing" },
                msg.clone(),
                generation,
                now,
            );
            set(
                &mut status.conditions,
                condition::PROGRESSING,
                !installed,
                if installed { "Installed" } else { "Installing" },
                msg,
                generation,
                now,
            );
            set_degraded(&mut status.conditions, degraded.clone(), generation, now);
        }
    }
    write_status(ctx, plugin, &old, &status).await?;
    Ok(if phase == Some(RolloutPhase::Progressing) {
        Action::requeue(ROLLOUT_POLL)
    } else {
        Action::requeue(ctx.settings.resync)
    })
}

/// Applies the Deployment, Service and PDB of a remote plugin; returns whether it is
/// available, and what applying reported.
async fn apply_remote(
    ctx: &Ctx,
    plugin: &PrismPlugin,
) -> Result<(bool, Option<Degradation>), Error> {
    let ns = plugin.namespace().unwrap_or_default();
    let objects = match ctx.renderer.render_remote_plugin(plugin) {
        Ok(o) => o,
        Err(e) => {
            ctx.event(plugin, true, "RenderFailed", e.to_string()).await;
            return Ok((false, None));
        }
    };
    let ready = objects
        .iter()
        .rfind(|o| o.kind == "Deployment")
        .and_then(|o| ctx.typed_child::<Deployment>(&ns, &o.name))
        .is_some_and(|d| deployment_available(&d));
    let degraded = children::apply_and_prune(ctx, plugin, &objects, &()).await?;
    Ok((ready, degraded))
}

/// Whether every wanted replica of `d` is available and updated.
pub fn deployment_available(d: &Deployment) -> bool {
    let want = d.spec.replicas.unwrap_or(1);
    let status = d.status.as_ref();
    status.and_then(|s| s.available_replicas) == Some(want)
        && status.and_then(|s| s.updated_replicas) == Some(want)
}

/// Sets Degraded for `problem`, else `Healthy`.
fn set_degraded(
    conditions: &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    problem: Option<Degradation>,
    generation: Option<i64>,
    now: Timestamp,
) {
    match problem {
        Some(p) => set(
            conditions,
            condition::DEGRADED,
            true,
            p.reason,
            p.message,
            generation,
            now,
        ),
        None => set(
            conditions,
            condition::DEGRADED,
            false,
            "Healthy",
            "",
            generation,
            now,
        ),
    }
}

async fn write_status(
    ctx: &Ctx,
    plugin: &PrismPlugin,
    old: &PrismPluginStatus,
    new: &PrismPluginStatus,
) -> Result<(), Error> {
    if old != new {
        ctx.patch_status(plugin, new).await?;
    }
    Ok(())
}
