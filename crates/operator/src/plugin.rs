//! PrismPlugin controller: drives the plugin's rollout across the shards that use it (the
//! shards render what the rollout allows), runs remote plugins as their own Deployment, and
//! reports which version every shard runs.
//!
//! One reconcile: observe the shards' StatefulSets, apply a remote plugin's own objects,
//! advance the rollout (pure), derive the status (pure), write it once.

use std::collections::BTreeSet;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::ResourceExt;
use kube::runtime::controller::Action;

use super::children;
use super::conditions::{self, Cond, Degradation, Outcome, reason, set_outcome};
use super::context::{Ctx, object_key};
use super::error::Error;
use super::rollout::{self, ShardReport, Step};
use super::shard::{rollout_state, status_caught_up};
use super::status;
use prism_api::{
    PluginDeploymentType, PrismPlugin, PrismPluginStatus, PrismShard, RolloutPhase, ShardVersion,
    condition,
};
use prism_render::render::Object;
use prism_render::render::contract::{PLUGIN_ANNOTATION_PREFIX, plugin_annotation, shard_fullname};

/// Controller name in metrics and logs.
pub const CONTROLLER: &str = "prismplugin";
/// How often a rollout in progress is re-checked (deadlines need a clock, not an event).
const ROLLOUT_POLL: std::time::Duration = std::time::Duration::from_secs(5);

/// Reconciles one plugin.
#[tracing::instrument(skip_all, fields(object = %object_key(&*plugin)))]
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

async fn reconcile_plugin(plugin: &PrismPlugin, ctx: &Ctx) -> Result<Action, Error> {
    if plugin.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let (old, mut status) = status::begin(plugin);
    if let Some(action) = status::pause_if_paused(ctx, plugin, &old, &mut status).await? {
        return Ok(action);
    }
    let now = Timestamp::now();
    let users = users(ctx, plugin);
    let shards = observe_shards(ctx, plugin, &users);
    let remote = apply_remote(ctx, plugin).await?;
    let step = rollout::advance(plugin, &shards.reports, now);
    for note in &step.notes {
        ctx.event(plugin, note.warning, note.reason, note.message.clone())
            .await;
    }
    let seen = Seen {
        namespaces_using: namespaces_using(ctx, plugin, &shards.names),
        shards,
        remote,
    };
    plugin_status(&mut status, plugin, &step, seen, now);
    status::write(ctx, plugin, &old, &status).await?;
    let rolling = status.rollout.as_ref().map(|r| r.phase) == Some(RolloutPhase::Progressing);
    Ok(Action::requeue(match rolling {
        true => ROLLOUT_POLL,
        false => ctx.settings.resync,
    }))
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

/// What the plugin's shards run, in shard name order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shards {
    /// Names of the shards that use the plugin.
    pub names: Vec<String>,
    /// What each reports to the rollout.
    pub reports: Vec<ShardReport>,
    /// The version each runs, where its StatefulSet says.
    pub versions: Vec<ShardVersion>,
}

fn observe_shards(ctx: &Ctx, plugin: &PrismPlugin, users: &[Arc<PrismShard>]) -> Shards {
    let ns = plugin.namespace().unwrap_or_default();
    let mut shards = Shards::default();
    for shard in users {
        let name = shard.name_any();
        let sts = ctx.typed_child::<StatefulSet>(&ns, &shard_fullname(&name));
        let (report, version) = shard_report(plugin, &name, sts.as_ref());
        shards.names.push(name);
        shards.reports.push(report);
        shards.versions.extend(version);
    }
    shards
}

/// What shard `shard` (its StatefulSet `sts`) reports about `plugin`, and the version it runs.
pub fn shard_report(
    plugin: &PrismPlugin,
    shard: &str,
    sts: Option<&StatefulSet>,
) -> (ShardReport, Option<ShardVersion>) {
    let running = sts.and_then(|s| running_annotation(s, &plugin.name_any()));
    let report = ShardReport {
        shard: shard.to_string(),
        at_target: running.as_deref() == Some(plugin_annotation(&plugin.spec).as_str()),
        healthy: sts.is_some_and(|s| rollout_state(s).0),
        settled: sts.is_none_or(status_caught_up),
    };
    let version = running.map(|r| ShardVersion {
        shard: shard.to_string(),
        version: r.split('@').next().unwrap_or_default().to_string(),
    });
    (report, version)
}

/// The `plugin.prism.io/<name>` annotation of a shard's live pod template, if any.
fn running_annotation(sts: &StatefulSet, plugin: &str) -> Option<String> {
    let template = sts.spec.template.metadata.as_ref()?;
    let key = format!("{PLUGIN_ANNOTATION_PREFIX}{plugin}");
    template.annotations.as_ref()?.get(&key).cloned()
}

/// How many PrismNamespaces are placed on the plugin's `shards`.
fn namespaces_using(ctx: &Ctx, plugin: &PrismPlugin, shards: &[String]) -> i32 {
    let shards: BTreeSet<&String> = shards.iter().collect();
    ctx.namespaces
        .state()
        .iter()
        .filter(|n| n.namespace() == plugin.namespace())
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.shard.as_ref())
                .is_some_and(|s| shards.contains(s))
        })
        .count() as i32
}

/// A remote plugin's own Deployment, as far as the status is concerned.
#[derive(Debug, Clone, PartialEq)]
pub struct Remote {
    /// Available at the current spec (always, for a plugin that is not remote).
    pub ready: bool,
    /// What applying its objects reported.
    pub degraded: Option<Degradation>,
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
    let users = users_of(ctx, plugin);
    let users: Vec<&PrismShard> = users.iter().map(|s| &**s).collect();
    let objects = match ctx.renderer.render_remote_plugin(plugin, &users) {
        Ok(objects) => objects,
        Err(e) => {
            ctx.event(plugin, true, reason::RENDER_FAILED, e.to_string())
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

/// The shards of the plugin's namespace that list it.
fn users_of(ctx: &Ctx, plugin: &PrismPlugin) -> Vec<Arc<PrismShard>> {
    let name = plugin.name_any();
    let mut users: Vec<Arc<PrismShard>> = ctx
        .shards
        .state()
        .into_iter()
        .filter(|s| s.namespace() == plugin.namespace())
        .filter(|s| s.spec.plugins.iter().any(|p| p.name == name))
        .collect();
    users.sort_by_key(|s| s.name_any());
    users
}

/// Whether the live Deployment among `objects` is available and updated on every replica.
fn remote_available(ctx: &Ctx, plugin: &PrismPlugin, objects: &[Object]) -> bool {
    let ns = plugin.namespace().unwrap_or_default();
    objects
        .iter()
        .rfind(|o| o.kind == "Deployment")
        .and_then(|o| ctx.typed_child::<Deployment>(&ns, &o.name))
        .is_some_and(|d| deployment_available(&d))
}

/// Whether every wanted replica of `d` is available and updated.
pub fn deployment_available(d: &Deployment) -> bool {
    let want = d.spec.replicas.unwrap_or(1);
    let status = d.status.as_ref();
    status.and_then(|s| s.available_replicas) == Some(want)
        && status.and_then(|s| s.updated_replicas) == Some(want)
}

/// What a plugin's status is derived from, besides its rollout step.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// Its shards.
    pub shards: Shards,
    /// PrismNamespaces placed on those shards.
    pub namespaces_using: i32,
    /// Its remote Deployment.
    pub remote: Remote,
}

/// The status of a plugin after the rollout `step`: where it runs, and the condition trio.
pub fn plugin_status(
    status: &mut PrismPluginStatus,
    plugin: &PrismPlugin,
    step: &Step,
    seen: Seen,
    now: Timestamp,
) {
    rollout::apply_step(status, step);
    let settled = seen.shards.reports.iter().all(|r| r.settled);
    let healthy = seen
        .shards
        .reports
        .iter()
        .filter(|r| r.at_target && r.healthy)
        .count();
    let installed = healthy == seen.shards.reports.len() && seen.remote.ready;
    status.shards = seen.shards.names;
    status.shard_versions = seen.shards.versions;
    status.namespaces_using = Some(seen.namespaces_using);
    let rolling = status
        .rollout
        .as_ref()
        .is_some_and(|r| r.phase != RolloutPhase::Complete);
    if !settled && !rolling && conditions::has(&status.conditions, condition::READY) {
        // A StatefulSet whose controller has not caught up with its latest spec says nothing
        // new about health: keep what was reported until its status moves (a watch event).
        let degraded = Cond::degraded_by(seen.remote.degraded);
        conditions::set(
            &mut status.conditions,
            degraded,
            status.observed_generation,
            now,
        );
        return;
    }
    status.installed = installed;
    let outcome = plugin_outcome(status, plugin, healthy, seen.remote.degraded);
    set_outcome(
        &mut status.conditions,
        outcome,
        status.observed_generation,
        now,
    );
}

/// The condition trio of a plugin by its rollout's phase; `healthy`: how many shards run the
/// target healthily.
fn plugin_outcome(
    status: &PrismPluginStatus,
    plugin: &PrismPlugin,
    healthy: usize,
    degraded: Option<Degradation>,
) -> Outcome {
    let version = &plugin.spec.version;
    let users = status.shards.len();
    match &status.rollout {
        Some(r) if r.phase == RolloutPhase::RolledBack => {
            let why = r.message.clone().unwrap_or_default();
            let stable = status.last_healthy_version.clone().unwrap_or_default();
            Outcome {
                ready: Cond::not_ready(
                    reason::ROLLED_BACK,
                    format!("{version} was rolled back; shards run {stable}"),
                ),
                progressing: Some(Cond::not_progressing(reason::ROLLED_BACK, why.clone())),
                degraded: Cond::degraded(reason::ROLLED_BACK, why),
            }
        }
        Some(r) if r.phase == RolloutPhase::Progressing => {
            let msg = format!("{}/{users} shards on {version}", r.completed.len());
            Outcome {
                ready: Cond::not_ready(reason::ROLLING_OUT, msg.clone()),
                progressing: Some(Cond::progressing(reason::ROLLING_OUT, msg)),
                degraded: Cond::degraded_by(degraded),
            }
        }
        _ => {
            let msg = format!("{version} runs on {healthy}/{users} shards");
            let (ready, progressing) = match status.installed {
                true => (
                    Cond::ready(reason::INSTALLED, msg.clone()),
                    Cond::not_progressing(reason::INSTALLED, msg),
                ),
                false => (
                    Cond::not_ready(reason::INSTALLING, msg.clone()),
                    Cond::progressing(reason::INSTALLING, msg),
                ),
            };
            Outcome {
                ready,
                progressing: Some(progressing),
                degraded: Cond::degraded_by(degraded),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prism_api::RolloutStatus;
    use serde_json::json;

    fn now() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    fn plugin(version: &str, type_: &str) -> PrismPlugin {
        serde_json::from_value(json!({
            "apiVersion": "prism.io/v1alpha1", "kind": "PrismPlugin",
            "metadata": {"name": "pg", "namespace": "n", "generation": 4},
            "spec": {
                "version": version,
                "source": {"registry": "r", "image": format!("pg:{version}")},
                "deployment": {"type": type_}
            }
        }))
        .unwrap()
    }

    /// A ready StatefulSet whose pods run `annotation` of plugin `pg`.
    fn sts(annotation: &str) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "prism-a", "generation": 1},
            "spec": {
                "replicas": 1, "selector": {},
                "template": {"metadata": {"annotations": {"plugin.prism.io/pg": annotation}}}
            },
            "status": {
                "observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1,
                "currentRevision": "r1", "updateRevision": "r1"
            }
        }))
        .unwrap()
    }

    fn seen(reports: Vec<ShardReport>) -> Seen {
        Seen {
            shards: Shards {
                names: reports.iter().map(|r| r.shard.clone()).collect(),
                reports,
                versions: vec![],
            },
            namespaces_using: 2,
            remote: Remote {
                ready: true,
                degraded: None,
            },
        }
    }

    fn report(shard: &str, at_target: bool, healthy: bool) -> ShardReport {
        ShardReport {
            shard: shard.into(),
            at_target,
            healthy,
            settled: true,
        }
    }

    fn step(phase: Option<RolloutPhase>, completed: &[&str], message: Option<&str>) -> Step {
        Step {
            last_healthy_version: Some("1.0.0".into()),
            last_healthy_spec: None,
            rollout: phase.map(|phase| RolloutStatus {
                target_hash: "h".into(),
                target_version: "1.1.0".into(),
                target_image: "r/pg:1.1.0".into(),
                phase,
                completed: completed.iter().map(|s| s.to_string()).collect(),
                in_progress: vec![],
                failed_shard: None,
                message: message.map(str::to_string),
            }),
            notes: vec![],
        }
    }

    fn derived(step: &Step, seen: Seen) -> PrismPluginStatus {
        let p = plugin("1.1.0", "sidecar");
        let mut status = PrismPluginStatus {
            observed_generation: Some(4),
            ..Default::default()
        };
        plugin_status(&mut status, &p, step, seen, now());
        status
    }

    fn condition<'a>(status: &'a PrismPluginStatus, type_: &str) -> (&'a str, &'a str, &'a str) {
        let c = status.conditions.iter().find(|c| c.type_ == type_).unwrap();
        (c.status.as_str(), c.reason.as_str(), c.message.as_str())
    }

    #[test]
    fn shards_report_what_their_pods_run() {
        let p = plugin("1.1.0", "sidecar");
        let target = plugin_annotation(&p.spec);
        let (a, version) = shard_report(&p, "a", Some(&sts(&target)));
        assert_eq!(a, report("a", true, true));
        assert_eq!(version.unwrap().version, "1.1.0");
        let (b, version) = shard_report(&p, "b", None);
        assert_eq!(b, report("b", false, false));
        assert_eq!(version, None);
    }

    #[test]
    fn an_unsettled_statefulset_does_not_flip_an_installed_plugin() {
        let p = plugin("1.1.0", "sidecar");
        let stable = step(None, &[], None);
        let mut status = derived(&stable, seen(vec![report("a", true, true)]));
        let before = status.clone();
        let mut behind = report("a", true, false);
        behind.settled = false;
        plugin_status(&mut status, &p, &stable, seen(vec![behind]), now());
        assert_eq!(status, before);
        // Settled and unhealthy: that is news.
        plugin_status(
            &mut status,
            &p,
            &stable,
            seen(vec![report("a", true, false)]),
            now(),
        );
        assert!(!status.installed);
        assert_eq!(condition(&status, "Ready").1, "Installing");
    }

    #[test]
    fn installed_when_every_shard_runs_it_healthily() {
        let status = derived(&step(None, &[], None), seen(vec![report("a", true, true)]));
        assert!(status.installed);
        assert_eq!(status.namespaces_using, Some(2));
        assert_eq!(status.last_healthy_version.as_deref(), Some("1.0.0"));
        let msg = "1.1.0 runs on 1/1 shards";
        assert_eq!(condition(&status, "Ready"), ("True", "Installed", msg));
        assert_eq!(
            condition(&status, "Progressing"),
            ("False", "Installed", msg)
        );
        assert_eq!(condition(&status, "Degraded"), ("False", "Healthy", ""));
    }

    #[test]
    fn installing_while_a_shard_is_not_there() {
        let reports = vec![report("a", true, true), report("b", true, false)];
        let status = derived(
            &step(Some(RolloutPhase::Complete), &[], None),
            seen(reports),
        );
        assert!(!status.installed);
        let msg = "1.1.0 runs on 1/2 shards";
        assert_eq!(condition(&status, "Ready"), ("False", "Installing", msg));
        assert_eq!(
            condition(&status, "Progressing"),
            ("True", "Installing", msg)
        );
    }

    #[test]
    fn rolling_out_counts_the_shards_done() {
        let reports = vec![report("a", true, true), report("b", false, true)];
        let step = step(Some(RolloutPhase::Progressing), &["a"], None);
        let status = derived(&step, seen(reports));
        let msg = "1/2 shards on 1.1.0";
        assert_eq!(condition(&status, "Ready"), ("False", "RollingOut", msg));
        assert_eq!(
            condition(&status, "Progressing"),
            ("True", "RollingOut", msg)
        );
        assert_eq!(condition(&status, "Degraded"), ("False", "Healthy", ""));
    }

    #[test]
    fn rolled_back_is_degraded() {
        let why = "shard a did not become healthy on pg 1.1.0 within 600s; rolled back to 1.0.0";
        let step = step(Some(RolloutPhase::RolledBack), &[], Some(why));
        let status = derived(&step, seen(vec![report("a", false, true)]));
        assert_eq!(
            condition(&status, "Ready"),
            (
                "False",
                "RolledBack",
                "1.1.0 was rolled back; shards run 1.0.0"
            )
        );
        assert_eq!(
            condition(&status, "Progressing"),
            ("False", "RolledBack", why)
        );
        assert_eq!(condition(&status, "Degraded"), ("True", "RolledBack", why));
    }

    #[test]
    fn a_remote_plugin_whose_prune_is_refused_is_degraded() {
        let mut seen = seen(vec![]);
        seen.remote = Remote {
            ready: false,
            degraded: Some(Degradation::from(&Error::PruneEverything(3))),
        };
        let status = derived(&step(None, &[], None), seen);
        assert!(!status.installed);
        assert_eq!(condition(&status, "Degraded").1, "PruneRefused");
        assert_eq!(condition(&status, "Ready").1, "Installing");
    }

    #[test]
    fn a_deployment_is_available_when_every_replica_is_updated() {
        let d = |available: i32, updated: i32| -> Deployment {
            serde_json::from_value(json!({
                "spec": {"replicas": 2, "selector": {}, "template": {}},
                "status": {"availableReplicas": available, "updatedReplicas": updated}
            }))
            .unwrap()
        };
        assert!(deployment_available(&d(2, 2)));
        assert!(!deployment_available(&d(2, 1)));
        assert!(!deployment_available(&d(1, 2)));
    }
}
