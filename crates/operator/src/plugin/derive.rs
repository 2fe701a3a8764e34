//! The status of a plugin, derived from its rollout step and what its shards and remote
//! Deployment report. Pure.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::ResourceExt;

use crate::decide::rollout::{self, ShardReport, Step};
use crate::kit::outcome::{self, Cond, Degradation, Outcome, set_outcome};
use crate::kit::workload::{rollout_state, status_caught_up};
use prism_api::{PrismPlugin, PrismPluginStatus, RolloutPhase, ShardVersion, condition, reason};
use prism_render::render::contract::{PLUGIN_ANNOTATION_PREFIX, plugin_annotation};

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

/// A remote plugin's own Deployment, as far as the status is concerned.
#[derive(Debug, Clone, PartialEq)]
pub struct Remote {
    /// Available at the current spec (always, for a plugin that is not remote).
    pub ready: bool,
    /// What applying its objects reported.
    pub degraded: Option<Degradation>,
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
    /// Render mode: Argo CD moves the shards to the spec (sync waves), not the operator.
    pub render_mode: bool,
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
    if !settled && !rolling && outcome::has(&status.conditions, condition::READY) {
        // A StatefulSet whose controller has not caught up with its latest spec says nothing
        // new about health: keep what was reported until its status moves (a watch event).
        let degraded = Cond::degraded_by(seen.remote.degraded);
        outcome::set(
            &mut status.conditions,
            degraded,
            status.observed_generation,
            now,
        );
        return;
    }
    status.installed = installed;
    let outcome = plugin_outcome(
        status,
        plugin,
        healthy,
        seen.remote.degraded,
        seen.render_mode,
    );
    set_outcome(
        &mut status.conditions,
        outcome,
        status.observed_generation,
        now,
    );
}

/// The condition trio of a plugin by its rollout's phase; `healthy`: how many shards run the
/// target healthily. In render mode a plugin the shards do not all run yet is still Ready: Argo
/// CD applies it before its shards, which render from it, and its sync waves (gated on the
/// shards' own health) move them; were the plugin Progressing until then, the first wave
/// would wait for the last.
fn plugin_outcome(
    status: &PrismPluginStatus,
    plugin: &PrismPlugin,
    healthy: usize,
    degraded: Option<Degradation>,
    render_mode: bool,
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
            let (ready, progressing) = match (status.installed, render_mode) {
                (true, _) => (
                    Cond::ready(reason::INSTALLED, msg.clone()),
                    Cond::not_progressing(reason::INSTALLED, msg),
                ),
                (false, true) => {
                    let msg = format!("{msg}; Argo CD rolls it out in sync waves");
                    (
                        Cond::ready(reason::ROLLED_OUT_BY_ARGO_CD, msg.clone()),
                        Cond::not_progressing(reason::ROLLED_OUT_BY_ARGO_CD, msg),
                    )
                }
                (false, false) => (
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
    use crate::kit::error::Error;
    use prism_api::RolloutStatus;
    use serde_json::json;

    fn now() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    fn plugin(version: &str, type_: &str) -> PrismPlugin {
        serde_json::from_value(json!({
            "apiVersion": "prism.io/v1beta1", "kind": "PrismPlugin",
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
            render_mode: false,
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
    fn in_render_mode_a_plugin_on_its_way_is_ready_for_its_shards_to_render() {
        let reports = vec![report("a", true, true), report("b", false, true)];
        let mut seen = seen(reports);
        seen.render_mode = true;
        let status = derived(&step(None, &[], None), seen);
        assert!(!status.installed, "the truth stays in installed");
        let msg = "1.1.0 runs on 1/2 shards; Argo CD rolls it out in sync waves";
        assert_eq!(
            condition(&status, "Ready"),
            ("True", "RolledOutByArgoCD", msg)
        );
        assert_eq!(
            condition(&status, "Progressing"),
            ("False", "RolledOutByArgoCD", msg)
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
}
