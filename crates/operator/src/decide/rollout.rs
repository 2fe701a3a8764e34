//! Plugin rollouts across shards as a pure state machine: which spec each shard renders, and
//! how a rollout advances, completes or rolls back given what the shards report.
//!
//! A new plugin spec is not rendered into every shard at once. Shards (in the order
//! [`shard_order`] gives, which render mode's sync waves follow too) are given the new spec a
//! budget ([`batch_size`]) at a time; each must report its StatefulSet rolled out and all pods
//! ready (the plugin's gRPC health probe passing) before its deadline. A shard that misses it
//! stops the rollout, and every shard renders the last healthy spec again.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use prism_api::reason;
use prism_api::{
    PrismPlugin, PrismPluginSpec, PrismPluginStatus, RolloutPhase, RolloutStatus, RolloutStep,
    duration_seconds,
};

/// Default time a shard has to become healthy on a new version.
pub const DEFAULT_DEADLINE_SECS: u64 = 600;

pub use prism_render::render::contract::plugin_fingerprint as fingerprint;
use prism_render::render::rollout::{batch_size, shard_order};

/// The spec `shard` should render for `plugin` right now.
pub fn spec_for_shard<'a>(plugin: &'a PrismPlugin, shard: &str) -> &'a PrismPluginSpec {
    let status = plugin.status.as_ref();
    let Some(stable) = status.and_then(|s| s.last_healthy_spec.as_ref()) else {
        return &plugin.spec; // first install: nothing to roll back to
    };
    let target = fingerprint(&plugin.spec);
    if fingerprint(stable) == target {
        return &plugin.spec;
    }
    match status.and_then(|s| s.rollout.as_ref()) {
        Some(r) if r.target_hash == target && r.phase == RolloutPhase::Progressing => {
            let moved = r.completed.iter().any(|s| s == shard)
                || r.in_progress.iter().any(|s| s.shard == shard);
            if moved { &plugin.spec } else { stable }
        }
        _ => stable,
    }
}

/// What the plugin controller knows about one shard that uses the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardReport {
    /// Shard name.
    pub shard: String,
    /// The shard's pods were rendered with the target spec (its image is in the pod template).
    pub at_target: bool,
    /// The StatefulSet finished rolling out and every replica is ready.
    pub healthy: bool,
    /// The StatefulSet's status describes its latest spec (`observedGeneration` caught up);
    /// until it does, `healthy` is not news.
    pub settled: bool,
}

/// Something worth an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Warning (true) or Normal.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// Human message.
    pub message: String,
}

/// The next status of a plugin's rollout bookkeeping, and what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// New `lastHealthyVersion`.
    pub last_healthy_version: Option<String>,
    /// New `lastHealthySpec`.
    pub last_healthy_spec: Option<PrismPluginSpec>,
    /// New `rollout`.
    pub rollout: Option<RolloutStatus>,
    /// Events to publish.
    pub notes: Vec<Note>,
}

/// Advances the rollout of `plugin` given reports for every shard that uses it (any order).
pub fn advance(plugin: &PrismPlugin, reports: &[ShardReport], now: Timestamp) -> Step {
    let status = plugin.status.clone().unwrap_or_default();
    let mut reports: Vec<&ShardReport> = reports.iter().collect();
    reports.sort_by(|a, b| shard_order(&a.shard, &b.shard));
    let target = fingerprint(&plugin.spec);
    let mut step = Step {
        last_healthy_version: status.last_healthy_version.clone(),
        last_healthy_spec: status.last_healthy_spec.clone(),
        rollout: status.rollout.clone(),
        notes: vec![],
    };
    let stable = match &status.last_healthy_spec {
        Some(s) if fingerprint(s) != target => s,
        // First install, or the target is already the healthy spec.
        _ => return settle(plugin, &reports, &target, step),
    };
    let mut r = match status.rollout {
        Some(r) if r.target_hash == target => r,
        _ => start(plugin, stable, &reports, target, &mut step.notes),
    };
    if r.phase == RolloutPhase::Progressing {
        // Shards that left the plugin are forgotten.
        r.completed
            .retain(|s| reports.iter().any(|x| &x.shard == s));
        r.in_progress
            .retain(|s| reports.iter().any(|x| x.shard == s.shard));
        gate(plugin, stable, &reports, &mut r, now, &mut step.notes);
    }
    if r.phase == RolloutPhase::Progressing {
        admit(plugin, &reports, &mut r, now, &mut step.notes);
        if r.in_progress.is_empty() && reports.iter().all(|x| r.completed.contains(&x.shard)) {
            complete(plugin, reports.len(), &mut r, &mut step);
        }
    }
    step.rollout = Some(r);
    step
}

/// Render mode: Argo CD applies what Git holds and moves the shards wave by wave, so the
/// operator drives no rollout of its own (`rollout` stays empty); it only records the spec as
/// the healthy one once every shard runs it healthily.
pub fn observe(plugin: &PrismPlugin, reports: &[ShardReport]) -> Step {
    let status = plugin.status.clone().unwrap_or_default();
    let reports: Vec<&ShardReport> = reports.iter().collect();
    let step = Step {
        last_healthy_version: status.last_healthy_version,
        last_healthy_spec: status.last_healthy_spec,
        rollout: None,
        notes: vec![],
    };
    settle(plugin, &reports, &fingerprint(&plugin.spec), step)
}

/// No rollout is needed (first install, or the target is the healthy spec): the target
/// becomes the healthy spec once every shard runs it healthily, and a rollout towards it ends.
fn settle(plugin: &PrismPlugin, reports: &[&ShardReport], target: &str, mut step: Step) -> Step {
    let all_healthy_at_target = reports.iter().all(|r| r.at_target && r.healthy);
    if all_healthy_at_target {
        step.last_healthy_spec = Some(plugin.spec.clone());
        step.last_healthy_version = Some(plugin.spec.version.clone());
    }
    if let Some(r) = &mut step.rollout
        && r.target_hash == target
        && r.phase == RolloutPhase::Progressing
        && all_healthy_at_target
    {
        r.phase = RolloutPhase::Complete;
        r.in_progress.clear();
    }
    if step
        .rollout
        .as_ref()
        .is_some_and(|r| r.target_hash != target)
    {
        step.rollout = None;
    }
    step
}

/// A new rollout from `stable` to the plugin's spec (fingerprint `target`).
fn start(
    plugin: &PrismPlugin,
    stable: &PrismPluginSpec,
    reports: &[&ShardReport],
    target: String,
    notes: &mut Vec<Note>,
) -> RolloutStatus {
    let version = &plugin.spec.version;
    notes.push(Note {
        warning: false,
        reason: reason::ROLLOUT_STARTED,
        message: format!(
            "rolling {} {} -> {version} across {} shards",
            plugin.name_any(),
            stable.version,
            reports.len()
        ),
    });
    RolloutStatus {
        target_hash: target,
        target_version: version.clone(),
        target_image: plugin.spec.source.reference(),
        phase: RolloutPhase::Progressing,
        completed: vec![],
        in_progress: vec![],
        failed_shard: None,
        message: None,
    }
}

/// The health gate of the shards being updated: a healthy one is done; one past its deadline
/// rolls everything back to `stable`.
fn gate(
    plugin: &PrismPlugin,
    stable: &PrismPluginSpec,
    reports: &[&ShardReport],
    r: &mut RolloutStatus,
    now: Timestamp,
    notes: &mut Vec<Note>,
) {
    let deadline = plugin
        .spec
        .rollout
        .as_ref()
        .and_then(|p| p.progress_deadline.as_deref())
        .and_then(duration_seconds)
        .unwrap_or(DEFAULT_DEADLINE_SECS);
    let (name, version) = (plugin.name_any(), &plugin.spec.version);
    let mut still = Vec::new();
    for s in std::mem::take(&mut r.in_progress) {
        let report = reports
            .iter()
            .find(|x| x.shard == s.shard)
            .expect("retained");
        let elapsed = now.as_second() - s.started_at.0.as_second();
        if report.at_target && report.healthy {
            let message = format!("shard {} runs {name} {version} healthily", s.shard);
            notes.push(Note {
                warning: false,
                reason: reason::SHARD_UPDATED,
                message,
            });
            r.completed.push(s.shard);
        } else if elapsed > deadline as i64 {
            let message = format!(
                "shard {} did not become healthy on {name} {version} within {deadline}s; rolled back to {}",
                s.shard, stable.version
            );
            notes.push(Note {
                warning: true,
                reason: reason::ROLLED_BACK,
                message: message.clone(),
            });
            r.phase = RolloutPhase::RolledBack;
            r.failed_shard = Some(s.shard);
            r.message = Some(message);
            return;
        } else {
            still.push(s);
        }
    }
    r.in_progress = still;
}

/// Gives the next shards (in [`shard_order`]) the target, up to the budget of shards in progress.
fn admit(
    plugin: &PrismPlugin,
    reports: &[&ShardReport],
    r: &mut RolloutStatus,
    now: Timestamp,
    notes: &mut Vec<Note>,
) {
    let budget = batch_size(plugin.spec.rollout.as_ref());
    for report in reports {
        if r.in_progress.len() >= budget {
            break;
        }
        let done = r.completed.contains(&report.shard)
            || r.in_progress.iter().any(|s| s.shard == report.shard);
        if !done {
            r.in_progress.push(RolloutStep {
                shard: report.shard.clone(),
                started_at: Time(now),
            });
            notes.push(Note {
                warning: false,
                reason: reason::SHARD_UPDATING,
                message: format!(
                    "shard {} moves to {} {}",
                    report.shard,
                    plugin.name_any(),
                    plugin.spec.version
                ),
            });
        }
    }
}

/// Every shard runs the target healthily: it becomes the healthy spec.
fn complete(plugin: &PrismPlugin, shards: usize, r: &mut RolloutStatus, step: &mut Step) {
    let version = &plugin.spec.version;
    r.phase = RolloutPhase::Complete;
    step.last_healthy_spec = Some(plugin.spec.clone());
    step.last_healthy_version = Some(version.clone());
    step.notes.push(Note {
        warning: false,
        reason: reason::ROLLOUT_COMPLETE,
        message: format!(
            "{} {version} runs on all {shards} shards",
            plugin.name_any()
        ),
    });
}

/// Applies a step to a status.
pub fn apply_step(status: &mut PrismPluginStatus, step: &Step) {
    status.last_healthy_version = step.last_healthy_version.clone();
    status.last_healthy_spec = step.last_healthy_spec.clone();
    status.rollout = step.rollout.clone();
}

#[cfg(test)]
mod tests {
    use super::*;
    use prism_api::{PluginDeployment, PluginDeploymentType, PluginSource};

    fn spec(version: &str) -> PrismPluginSpec {
        PrismPluginSpec {
            version: version.into(),
            source: PluginSource {
                registry: "r".into(),
                image: format!("pg:{version}"),
            },
            deployment: PluginDeployment {
                type_: PluginDeploymentType::Sidecar,
                resources: None,
                replicas: None,
                artifact_path: None,
                args: Vec::new(),
                env: Vec::new(),
            },
            health_check: None,
            rollout: None,
            config_from: None,
        }
    }

    fn plugin(version: &str, status: PrismPluginStatus) -> PrismPlugin {
        let mut p = PrismPlugin::new("pg", spec(version));
        p.status = Some(status);
        p
    }

    fn report(shard: &str, at_target: bool, healthy: bool) -> ShardReport {
        ShardReport {
            shard: shard.into(),
            at_target,
            healthy,
            settled: true,
        }
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn stable_on(version: &str) -> PrismPluginStatus {
        PrismPluginStatus {
            last_healthy_spec: Some(spec(version)),
            last_healthy_version: Some(version.into()),
            ..Default::default()
        }
    }

    #[test]
    fn first_install_becomes_the_healthy_spec_once_all_shards_are_ready() {
        let p = plugin("1.0.0", PrismPluginStatus::default());
        assert_eq!(spec_for_shard(&p, "a").version, "1.0.0");
        let s = advance(&p, &[report("a", true, false)], t(0));
        assert_eq!(s.last_healthy_version, None);
        let s = advance(&p, &[report("a", true, true)], t(1));
        assert_eq!(s.last_healthy_version.as_deref(), Some("1.0.0"));
        assert!(s.rollout.is_none());
    }

    #[test]
    fn shards_move_one_at_a_time_in_name_order() {
        let mut p = plugin("1.1.0", stable_on("1.0.0"));
        let shards = ["c", "a", "b"];
        let mut order = Vec::new();
        for tick in 0..10 {
            let reports: Vec<ShardReport> = shards
                .iter()
                .map(|s| {
                    let at = spec_for_shard(&p, s).version == "1.1.0";
                    report(s, at, true)
                })
                .collect();
            let step = advance(&p, &reports, t(tick));
            for n in &step.notes {
                if n.reason == "ShardUpdating" {
                    order.push(n.message.split(' ').nth(1).unwrap().to_string());
                }
            }
            let r = step.rollout.clone().unwrap();
            assert!(r.in_progress.len() <= 1, "budget of one");
            apply_step(p.status.as_mut().unwrap(), &step);
            if r.phase == RolloutPhase::Complete {
                break;
            }
        }
        assert_eq!(order, ["a", "b", "c"]);
        let status = p.status.as_ref().unwrap();
        assert_eq!(
            status.rollout.as_ref().unwrap().phase,
            RolloutPhase::Complete
        );
        assert_eq!(status.last_healthy_version.as_deref(), Some("1.1.0"));
        assert_eq!(spec_for_shard(&p, "c").version, "1.1.0");
    }

    #[test]
    fn a_shard_missing_its_deadline_rolls_everything_back() {
        let mut p = plugin("2.0.0", stable_on("1.0.0"));
        let step = advance(
            &p,
            &[report("a", false, true), report("b", false, true)],
            t(0),
        );
        apply_step(p.status.as_mut().unwrap(), &step);
        assert_eq!(spec_for_shard(&p, "a").version, "2.0.0");
        assert_eq!(spec_for_shard(&p, "b").version, "1.0.0");
        // Within the deadline: still waiting.
        let step = advance(
            &p,
            &[report("a", true, false), report("b", false, true)],
            t(300),
        );
        assert_eq!(
            step.rollout.as_ref().unwrap().phase,
            RolloutPhase::Progressing
        );
        apply_step(p.status.as_mut().unwrap(), &step);
        // Past it: rolled back, and every shard renders the old spec.
        let step = advance(
            &p,
            &[report("a", true, false), report("b", false, true)],
            t(601),
        );
        let r = step.rollout.clone().unwrap();
        assert_eq!(r.phase, RolloutPhase::RolledBack);
        assert_eq!(r.failed_shard.as_deref(), Some("a"));
        assert!(
            step.notes
                .iter()
                .any(|n| n.warning && n.reason == "RolledBack")
        );
        apply_step(p.status.as_mut().unwrap(), &step);
        assert_eq!(spec_for_shard(&p, "a").version, "1.0.0");
        // It stays rolled back until the spec changes again.
        let again = advance(
            &p,
            &[report("a", false, true), report("b", false, true)],
            t(900),
        );
        assert_eq!(again.rollout.unwrap().phase, RolloutPhase::RolledBack);
        p.spec = spec("2.0.1");
        let fresh = advance(
            &p,
            &[report("a", false, true), report("b", false, true)],
            t(901),
        );
        assert_eq!(fresh.rollout.unwrap().phase, RolloutPhase::Progressing);
    }

    #[test]
    fn the_budget_allows_parallel_shards() {
        let mut p = plugin("1.1.0", stable_on("1.0.0"));
        p.spec.rollout = Some(prism_api::RolloutPolicy {
            max_unavailable_shards: Some(2),
            progress_deadline: Some("1m".into()),
        });
        let step = advance(
            &p,
            &[
                report("a", false, true),
                report("b", false, true),
                report("c", false, true),
            ],
            t(0),
        );
        let names: Vec<String> = step
            .rollout
            .unwrap()
            .in_progress
            .into_iter()
            .map(|s| s.shard)
            .collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn reverting_the_spec_ends_the_rollout() {
        let mut p = plugin("1.1.0", stable_on("1.0.0"));
        let step = advance(&p, &[report("a", false, true)], t(0));
        apply_step(p.status.as_mut().unwrap(), &step);
        p.spec = spec("1.0.0");
        let step = advance(&p, &[report("a", true, true)], t(5));
        assert!(step.rollout.is_none());
        assert_eq!(spec_for_shard(&p, "a").version, "1.0.0");
    }

    #[test]
    fn the_rollout_policy_is_not_part_of_the_fingerprint() {
        let mut s = spec("1.0.0");
        let before = fingerprint(&s);
        s.rollout = Some(prism_api::RolloutPolicy {
            max_unavailable_shards: Some(3),
            progress_deadline: None,
        });
        assert_eq!(fingerprint(&s), before);
        s.version = "1.0.1".into();
        assert_ne!(fingerprint(&s), before);
    }

    #[test]
    fn every_batch_the_operator_admits_is_a_sync_wave_of_render_mode() {
        use prism_render::render::rollout::Waves;
        let shards = ["e", "a", "d", "b", "c"];
        let mut yaml = String::from(
            "apiVersion: prism.io/v1beta1\nkind: PrismPlugin\nmetadata: {name: pg}\nspec:\n  version: 1.1.0\n  source: {registry: r, image: pg:1.1.0}\n  deployment: {type: sidecar}\n  rollout: {maxUnavailableShards: 2}\n",
        );
        for s in shards {
            yaml.push_str(&format!(
                "---\napiVersion: prism.io/v1beta1\nkind: PrismShard\nmetadata: {{name: {s}}}\nspec:\n  product: p\n  plugins: [{{name: pg, version: \"1\"}}]\n"
            ));
        }
        let fleet =
            prism_render::source::fleet_from_files(vec![("f.yaml".into(), yaml)], "ns").unwrap();
        let waves = Waves::of(&fleet).of_plugin(&fleet, &fleet.plugins[0].value);

        let mut p = plugin("1.1.0", stable_on("1.0.0"));
        p.spec.rollout = fleet.plugins[0].value.spec.rollout.clone();
        let mut batches = Vec::new();
        for tick in 0..10 {
            let reports: Vec<ShardReport> = shards
                .iter()
                .map(|s| report(s, spec_for_shard(&p, s).version == "1.1.0", true))
                .collect();
            let step = advance(&p, &reports, t(tick));
            let r = step.rollout.clone().unwrap();
            let batch: Vec<String> = r.in_progress.iter().map(|s| s.shard.clone()).collect();
            if !batch.is_empty() {
                batches.push(batch);
            }
            apply_step(p.status.as_mut().unwrap(), &step);
            if r.phase == RolloutPhase::Complete {
                break;
            }
        }
        assert_eq!(batches, waves.into_values().collect::<Vec<_>>());
        assert_eq!(batches, [vec!["a", "b"], vec!["c", "d"], vec!["e"]]);
    }

    #[test]
    fn render_mode_observes_a_new_version_without_a_rollout_of_its_own() {
        let p = plugin("1.1.0", stable_on("1.0.0"));
        let step = observe(&p, &[report("a", true, true), report("b", false, true)]);
        assert!(step.rollout.is_none() && step.notes.is_empty(), "{step:?}");
        assert_eq!(step.last_healthy_version.as_deref(), Some("1.0.0"));
        let step = observe(&p, &[report("a", true, true), report("b", true, true)]);
        assert!(step.rollout.is_none());
        assert_eq!(step.last_healthy_version.as_deref(), Some("1.1.0"));
    }
}
