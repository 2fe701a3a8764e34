//! PrismPlugin controller: drives the plugin's rollout across the shards that use it (the
//! shards render what the rollout allows), runs remote plugins as their own Deployment, and
//! reports which version every shard runs. In render mode Argo CD rolls plugins out (sync
//! waves) and the controller only observes.
//!
//! One reconcile: observe the shards' StatefulSets, apply a remote plugin's own objects,
//! advance the rollout (pure), derive the status (pure), write it once.

mod derive;

use std::collections::BTreeSet;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::ResourceExt;
use kube::runtime::controller::Action;

use crate::decide::rollout;
use crate::kit::children;
use crate::kit::context::Ctx;
use crate::kit::error::Error;
use crate::kit::status;
use crate::kit::workload::deployment_available;
use derive::{Remote, Seen, Shards, plugin_status, shard_report};
use prism_api::{PluginDeploymentType, PrismPlugin, PrismShard, RolloutPhase, reason};
use prism_render::render::Object;
use prism_render::render::contract::shard_fullname;

/// Controller name in metrics and logs.
pub const CONTROLLER: &str = "prismplugin";
/// How often a rollout in progress is re-checked (deadlines need a clock, not an event).
const ROLLOUT_POLL: std::time::Duration = std::time::Duration::from_secs(5);
/// When to look again after a status write refused because the plugin changed meanwhile.
const STALE_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Reconciles one plugin.
pub async fn reconcile(plugin: Arc<PrismPlugin>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    ctx.report
        .measured(CONTROLLER, &*plugin, reconcile_plugin(&plugin, &ctx))
        .await
}

/// Backs off per object after a failure.
pub fn error_policy(plugin: Arc<PrismPlugin>, err: &Error, ctx: Arc<Ctx>) -> Action {
    ctx.report.retry_later(&*plugin, err)
}

async fn reconcile_plugin(plugin: &PrismPlugin, ctx: &Ctx) -> Result<Action, Error> {
    if plugin.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let (old, mut status) = status::begin(plugin);
    if let Some(action) = status::pause_if_paused(ctx, plugin, &old, &mut status).await? {
        return Ok(action);
    }
    let now = Timestamp::now();
    let users = ctx.view.shards_using(plugin);
    let shards = observe_shards(ctx, plugin, &users);
    let remote = apply_remote(ctx, plugin).await?;
    let step = match ctx.settings.workload_writes {
        true => rollout::advance(plugin, &shards.reports, now),
        false => rollout::observe(plugin, &shards.reports),
    };
    let seen = Seen {
        namespaces_using: ctx.view.placed_on(
            &plugin.namespace().unwrap_or_default(),
            &shards
                .names
                .iter()
                .map(String::as_str)
                .collect::<BTreeSet<_>>(),
        ),
        shards,
        remote,
        render_mode: !ctx.settings.workload_writes,
    };
    plugin_status(&mut status, plugin, &step, seen, now);
    if status::write_over(ctx, plugin, &old, &status).await? == status::Written::Stale {
        // Derived from a plugin the cache had not caught up with: the watch event that brings
        // the current one triggers another reconcile; the requeue is only a safety net.
        return Ok(Action::requeue(STALE_RETRY));
    }
    // Announced once the step is recorded, so a step taken again is not announced twice.
    for note in &step.notes {
        ctx.report
            .event(plugin, note.warning, note.reason, note.message.clone())
            .await;
    }
    let rolling = status.rollout.as_ref().map(|r| r.phase) == Some(RolloutPhase::Progressing);
    Ok(Action::requeue(match rolling {
        true => ROLLOUT_POLL,
        false => ctx.settings.resync,
    }))
}

fn observe_shards(ctx: &Ctx, plugin: &PrismPlugin, users: &[Arc<PrismShard>]) -> Shards {
    let ns = plugin.namespace().unwrap_or_default();
    let mut shards = Shards::default();
    for shard in users {
        let name = shard.name_any();
        let sts = ctx
            .view
            .typed_child::<StatefulSet>(&ns, &shard_fullname(&name));
        let (report, version) = shard_report(plugin, &name, sts.as_ref());
        shards.names.push(name);
        shards.reports.push(report);
        shards.versions.extend(version);
    }
    shards
}

/// Applies the Deployment, Service and PDB of a remote plugin at the current spec.
async fn apply_remote(ctx: &Ctx, plugin: &PrismPlugin) -> Result<Remote, Error> {
    let remote = plugin.spec.deployment.type_ == PluginDeploymentType::Remote;
    if !remote || !ctx.settings.workload_writes {
        return Ok(Remote {
            ready: true,
            degraded: None,
        });
    }
    let users = ctx.view.shards_using(plugin);
    let users: Vec<&PrismShard> = users.iter().map(|s| &**s).collect();
    let objects = match ctx.renderer.render_remote_plugin(plugin, &users) {
        Ok(objects) => objects,
        Err(e) => {
            ctx.report
                .event(plugin, true, reason::RENDER_FAILED, e.to_string())
                .await;
            return Ok(Remote {
                ready: false,
                degraded: None,
            });
        }
    };
    let ready = remote_available(ctx, plugin, &objects);
    let degraded = children::apply_and_prune(ctx, plugin, &objects, &()).await?;
    Ok(Remote { ready, degraded })
}

/// Whether the live Deployment among `objects` is available and updated on every replica.
fn remote_available(ctx: &Ctx, plugin: &PrismPlugin, objects: &[Object]) -> bool {
    let ns = plugin.namespace().unwrap_or_default();
    objects
        .iter()
        .rfind(|o| o.kind == "Deployment")
        .and_then(|o| ctx.view.typed_child::<Deployment>(&ns, &o.name))
        .is_some_and(|d| deployment_available(&d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit::context::for_tests;
    use crate::kit::mock_api::{self, Call};
    use crate::view::fixture::Objects;
    use serde_json::{Value, json};

    /// A plugin at 1.0.1 whose healthy spec is 1.0.0, as the cache holds it at
    /// `resourceVersion` 7: its reconcile starts a rollout (and, with no shard to wait for,
    /// completes it).
    fn moving_plugin() -> Value {
        let spec = |v: &str| {
            json!({
                "version": v,
                "source": {"registry": "r", "image": format!("pg:{v}")},
                "deployment": {"type": "sidecar"}
            })
        };
        json!({
            "apiVersion": "prism.io/v1beta1", "kind": "PrismPlugin",
            "metadata": {"name": "pg", "namespace": "team", "generation": 2,
                         "resourceVersion": "7", "uid": "u-pg"},
            "spec": spec("1.0.1"),
            "status": {"lastHealthyVersion": "1.0.0", "lastHealthySpec": spec("1.0.0")}
        })
    }

    /// The API answers the status write with `code`, events with success.
    fn answering(code: u16) -> impl Fn(&Call) -> (u16, Value) + Send + 'static {
        move |call: &Call| match call.method.as_str() {
            "PATCH" if code == 409 => {
                mock_api::status(409, "Conflict", "the object has been modified")
            }
            "PATCH" => {
                let mut plugin = moving_plugin();
                plugin["status"] = call.body["status"].clone();
                (200, plugin)
            }
            "POST" => (200, call.body.clone()),
            _ => mock_api::status(200, "", ""),
        }
    }

    /// The rollout lives in the status, so a reconcile that read a cache still behind the last
    /// status write must not set it back: the write carries the resourceVersion it was derived
    /// from; refused, the step is neither recorded nor announced, and the plugin is looked at
    /// again shortly.
    #[tokio::test]
    async fn a_rollout_step_derived_from_a_stale_cache_is_not_written_or_announced() {
        let fixture = Objects(vec![moving_plugin()]);
        let plugin: PrismPlugin = serde_json::from_value(moving_plugin()).unwrap();
        for (code, announced) in [(409, false), (200, true)] {
            let (client, calls) = mock_api::serve(answering(code));
            let ctx = Arc::new(for_tests(client, fixture.view(None)));
            let action = reconcile(Arc::new(plugin.clone()), ctx)
                .await
                .expect("no error");
            let calls = calls.lock().unwrap();
            let write = calls
                .iter()
                .find(|c| c.method == "PATCH")
                .expect("a status write");
            assert!(
                write.uri.contains("/prismplugins/pg/status"),
                "{}",
                write.uri
            );
            assert_eq!(write.body["metadata"]["resourceVersion"], "7");
            assert_eq!(write.body["status"]["lastHealthyVersion"], "1.0.1");
            let events: Vec<&str> = calls
                .iter()
                .filter(|c| c.method == "POST")
                .filter_map(|c| c.body["reason"].as_str())
                .collect();
            match announced {
                true => assert_eq!(events, ["RolloutStarted", "RolloutComplete"], "{code}"),
                false => {
                    assert!(events.is_empty(), "{events:?}");
                    assert_eq!(action, Action::requeue(STALE_RETRY));
                }
            }
        }
    }
}
