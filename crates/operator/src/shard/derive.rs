//! The status of a shard, derived from what was observed: its StatefulSet, the namespaces
//! placed on it, the plugins it runs, and the Prism admin it uses. Pure.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::ResourceExt;

use crate::decide::admin::Access;
use crate::kit::outcome::{self, Cond, Degradation, Outcome, set_outcome};
use crate::kit::workload::{rollout_state, status_caught_up};
use prism_api::{
    PrismPlugin, PrismShardStatus, ShardAdminStatus, ShardPluginStatus, condition, reason,
};

/// What a shard's status is derived from, besides what applying its children reported.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// The live StatefulSet, if there is one.
    pub statefulset: Option<&'a StatefulSet>,
    /// PrismNamespaces placed on the shard.
    pub namespaces: i32,
    /// The shard's plugins at the spec it renders.
    pub plugins: &'a [PrismPlugin],
}

/// The status of a shard whose spec cannot be rendered.
pub fn invalid_status(status: &mut PrismShardStatus, why: &str, now: Timestamp) {
    let outcome = Outcome::blocked(reason::INVALID_SPEC, why);
    set_outcome(
        &mut status.conditions,
        outcome,
        status.observed_generation,
        now,
    );
}

/// The status of a rendered shard: replicas, placed namespaces and plugin versions, and the
/// condition trio from its StatefulSet's rollout and what applying reported.
pub fn shard_status(
    status: &mut PrismShardStatus,
    seen: &Seen,
    degraded: Option<Degradation>,
    now: Timestamp,
) {
    status.namespaces = Some(seen.namespaces);
    status.plugins = seen
        .plugins
        .iter()
        .map(|p| ShardPluginStatus {
            name: p.name_any(),
            version: p.spec.version.clone(),
        })
        .collect();
    status.plugins.sort_by(|a, b| a.name.cmp(&b.name));
    let settled = seen.statefulset.is_none_or(status_caught_up);
    if !settled && outcome::has(&status.conditions, condition::READY) {
        // The StatefulSet controller has not caught up with the latest spec: its status says
        // nothing new. Keep readiness as reported until it does (its update is a watch event).
        let degraded = Cond::degraded_by(degraded);
        outcome::set(
            &mut status.conditions,
            degraded,
            status.observed_generation,
            now,
        );
        return;
    }
    let sts_status = seen.statefulset.and_then(|s| s.status.as_ref());
    status.replicas = sts_status.map(|s| s.replicas);
    status.ready_replicas = sts_status.and_then(|s| s.ready_replicas);
    let (ready, progress) = match seen.statefulset {
        Some(s) => rollout_state(s),
        None => (false, "the StatefulSet does not exist yet".to_string()),
    };
    let outcome = Outcome {
        ready: match ready {
            true => Cond::ready(reason::READY, progress.clone()),
            false => Cond::not_ready(reason::ROLLING_OUT, progress.clone()),
        },
        progressing: Some(match ready {
            true => Cond::not_progressing(reason::ROLLED_OUT, progress),
            false => Cond::progressing(reason::ROLLING_OUT, progress),
        }),
        degraded: Cond::degraded_by(degraded),
    };
    set_outcome(
        &mut status.conditions,
        outcome,
        status.observed_generation,
        now,
    );
}

/// A shard's admin endpoints, and whether they are the operator's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminOf {
    /// The comma-separated endpoints.
    pub endpoints: String,
    /// They are the operator's `--admin-endpoint` (the shard has no `spec.adminEndpoint`).
    pub default: bool,
}

/// The shard's Prism admin in status (`status.admin`) and its `AdminIsolated` condition:
/// which endpoints it uses, who shares them, and which proxies admin keeps without a pod.
pub fn admin_status(
    status: &mut PrismShardStatus,
    endpoints: Option<AdminOf>,
    access: Option<Access>,
    stale_proxies: Vec<String>,
    now: Timestamp,
) {
    let (Some(endpoints), Some(access)) = (endpoints, access) else {
        status.admin = (!stale_proxies.is_empty()).then(|| ShardAdminStatus {
            stale_proxies,
            ..Default::default()
        });
        outcome::remove(&mut status.conditions, condition::ADMIN_ISOLATED);
        return;
    };
    let (cond, shared_with) = admin_isolated(&endpoints, access);
    status.admin = Some(ShardAdminStatus {
        endpoints: Some(endpoints.endpoints),
        shared_with,
        stale_proxies,
    });
    outcome::set(
        &mut status.conditions,
        cond,
        status.observed_generation,
        now,
    );
}

/// Why a shard using `endpoints` may not use them: the older shard `owner` does, and the
/// operator does not allow shared admins (the `SharedAdminRefused` condition, and what the
/// validating webhook refuses with).
pub fn refused(endpoints: &AdminOf, owner: &str) -> String {
    format!(
        "shares {} with the older shard {owner}, and the operator does not allow shared \
         admins: none of this shard's namespaces are sent to admin. Give the shard its own \
         spec.adminEndpoint, or run the operator with --allow-shared-admin",
        which(endpoints)
    )
}

fn which(endpoints: &AdminOf) -> &'static str {
    match endpoints.default {
        true => "the operator's default Prism admin (--admin-endpoint)",
        false => "its Prism admin",
    }
}

/// The `AdminIsolated` condition of a shard using `endpoints` with `access`, and the shards
/// it shares them with.
fn admin_isolated(endpoints: &AdminOf, access: Access) -> (Cond, Vec<String>) {
    let which = which(endpoints);
    match access {
        Access::Own if endpoints.default => (
            Cond::admin_isolated(
                true,
                reason::OWN_ADMIN,
                "uses the operator's default Prism admin (--admin-endpoint), and no other shard \
                 does: another shard without its own spec.adminEndpoint would share it"
                    .into(),
            ),
            Vec::new(),
        ),
        Access::Own => (
            Cond::admin_isolated(
                true,
                reason::OWN_ADMIN,
                "no other shard uses this Prism admin".into(),
            ),
            Vec::new(),
        ),
        Access::Shared(with) => (
            Cond::admin_isolated(
                false,
                reason::SHARED_ADMIN,
                format!(
                    "shares {which} with {}: admin spreads namespaces over every proxy \
                     registered with it, so a namespace placed here may be served by another \
                     shard's proxy (reported as PlacedOffShard on the namespace). Give each shard \
                     its own spec.adminEndpoint to keep them apart",
                    with.join(", ")
                ),
            ),
            with,
        ),
        Access::Refused { owner, with } => (
            Cond::admin_isolated(
                false,
                reason::SHARED_ADMIN_REFUSED,
                refused(endpoints, &owner),
            ),
            with,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    /// A StatefulSet of `replicas` with `ready` of them ready and `updated` updated; its
    /// revisions differ while `rolling`.
    fn sts(replicas: i32, ready: i32, updated: i32, rolling: bool) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "prism-a", "generation": 2},
            "spec": {"replicas": replicas, "selector": {}, "template": {}},
            "status": {
                "observedGeneration": 2,
                "replicas": replicas,
                "readyReplicas": ready,
                "updatedReplicas": updated,
                "currentRevision": "r1",
                "updateRevision": if rolling { "r2" } else { "r1" },
            }
        }))
        .unwrap()
    }

    fn plugin(name: &str, version: &str) -> PrismPlugin {
        serde_json::from_value(json!({
            "apiVersion": "prism.io/v1beta1", "kind": "PrismPlugin",
            "metadata": {"name": name, "namespace": "n"},
            "spec": {
                "version": version,
                "source": {"registry": "r", "image": format!("{name}:{version}")},
                "deployment": {"type": "sidecar"}
            }
        }))
        .unwrap()
    }

    fn condition<'a>(status: &'a PrismShardStatus, type_: &str) -> (&'a str, &'a str, &'a str) {
        let c = status.conditions.iter().find(|c| c.type_ == type_).unwrap();
        (c.status.as_str(), c.reason.as_str(), c.message.as_str())
    }

    fn derived(sts: Option<&StatefulSet>, degraded: Option<Degradation>) -> PrismShardStatus {
        let plugins = [plugin("redis", "1.2.0"), plugin("kafka", "2.0.0")];
        let seen = Seen {
            statefulset: sts,
            namespaces: 4,
            plugins: &plugins,
        };
        let mut status = PrismShardStatus {
            observed_generation: Some(7),
            ..Default::default()
        };
        shard_status(&mut status, &seen, degraded, now());
        status
    }

    #[test]
    fn a_ready_statefulset_makes_a_ready_shard() {
        let sts = sts(3, 3, 3, false);
        let status = derived(Some(&sts), None);
        assert_eq!((status.replicas, status.ready_replicas), (Some(3), Some(3)));
        assert_eq!(status.namespaces, Some(4));
        let plugins: Vec<_> = status.plugins.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(plugins, ["kafka", "redis"]);
        let summary = "3/3 replicas ready, 3 updated";
        assert_eq!(condition(&status, "Ready"), ("True", "Ready", summary));
        assert_eq!(
            condition(&status, "Progressing"),
            ("False", "RolledOut", summary)
        );
        assert_eq!(condition(&status, "Degraded"), ("False", "Healthy", ""));
        assert!(
            status
                .conditions
                .iter()
                .all(|c| c.observed_generation == Some(7))
        );
    }

    #[test]
    fn a_statefulset_rolling_out_makes_a_progressing_shard() {
        let sts = sts(3, 2, 1, true);
        let status = derived(Some(&sts), None);
        let summary = "2/3 replicas ready, 1 updated, rollout in progress";
        assert_eq!(
            condition(&status, "Ready"),
            ("False", "RollingOut", summary)
        );
        assert_eq!(
            condition(&status, "Progressing"),
            ("True", "RollingOut", summary)
        );
    }

    #[test]
    fn a_missing_statefulset_is_waited_for() {
        let status = derived(None, None);
        assert_eq!((status.replicas, status.ready_replicas), (None, None));
        assert_eq!(
            condition(&status, "Ready"),
            ("False", "RollingOut", "the StatefulSet does not exist yet")
        );
    }

    #[test]
    fn a_statefulset_behind_its_spec_changes_nothing_but_degradation() {
        let plugins = [plugin("redis", "1.2.0")];
        let ready = sts(3, 3, 3, false);
        let mut status = PrismShardStatus {
            observed_generation: Some(7),
            ..Default::default()
        };
        let seen = |sts| Seen {
            statefulset: Some(sts),
            namespaces: 4,
            plugins: &plugins,
        };
        shard_status(&mut status, &seen(&ready), None, now());
        let before = status.clone();
        // Another writer bumped the spec; the StatefulSet controller has not observed it yet
        // and its status still reads as a rollout in progress.
        let mut behind = sts(3, 0, 0, true);
        behind.metadata.generation = Some(3);
        shard_status(&mut status, &seen(&behind), None, now());
        assert_eq!(status, before);
        let conflict = Degradation::new(reason::FIELD_CONFLICT, "rival owns x");
        shard_status(&mut status, &seen(&behind), Some(conflict), now());
        assert_eq!(condition(&status, "Ready"), condition(&before, "Ready"));
        assert_eq!(condition(&status, "Degraded").1, "FieldConflict");
        // Caught up: readiness follows the StatefulSet again.
        let caught_up = sts(3, 0, 0, true);
        shard_status(&mut status, &seen(&caught_up), None, now());
        assert_eq!(condition(&status, "Ready").0, "False");
    }

    #[test]
    fn a_field_conflict_degrades_a_ready_shard() {
        let sts = sts(1, 1, 1, false);
        let conflict = Degradation::new(reason::FIELD_CONFLICT, "rival owns .spec.replicas");
        let status = derived(Some(&sts), Some(conflict));
        assert_eq!(condition(&status, "Ready").0, "True");
        assert_eq!(
            condition(&status, "Degraded"),
            ("True", "FieldConflict", "rival owns .spec.replicas")
        );
    }

    #[test]
    fn an_invalid_spec_blocks_the_shard() {
        let mut status = derived(Some(&sts(1, 1, 1, false)), None);
        invalid_status(
            &mut status,
            "spec.plugins[0].name: no PrismPlugin nope",
            now(),
        );
        let why = "spec.plugins[0].name: no PrismPlugin nope";
        assert_eq!(condition(&status, "Ready"), ("False", "InvalidSpec", why));
        assert_eq!(
            condition(&status, "Progressing"),
            ("False", "InvalidSpec", "")
        );
        assert_eq!(condition(&status, "Degraded"), ("True", "InvalidSpec", why));
    }

    #[test]
    fn an_old_generation_or_missing_revision_is_not_ready() {
        let mut stale = sts(1, 1, 1, false);
        stale.metadata.generation = Some(3);
        assert!(!rollout_state(&stale).0);
        let mut fresh = sts(1, 1, 1, false);
        fresh.status.as_mut().unwrap().current_revision = None;
        fresh.status.as_mut().unwrap().update_revision = None;
        assert_eq!(
            rollout_state(&fresh),
            (
                false,
                "1/1 replicas ready, 1 updated, rollout in progress".into()
            )
        );
    }

    #[test]
    fn the_admin_of_a_shard_and_who_shares_it_are_in_status() {
        let mut status = PrismShardStatus::default();
        let list = Some(AdminOf {
            endpoints: "http://admin:8981".into(),
            default: false,
        });
        admin_status(&mut status, list.clone(), Some(Access::Own), vec![], now());
        assert_eq!(
            condition(&status, "AdminIsolated"),
            ("True", "OwnAdmin", "no other shard uses this Prism admin")
        );
        assert_eq!(
            status.admin.as_ref().unwrap().endpoints.as_deref(),
            Some("http://admin:8981")
        );
        let default = list.clone().map(|a| AdminOf { default: true, ..a });
        admin_status(
            &mut status,
            default.clone(),
            Some(Access::Own),
            vec![],
            now(),
        );
        let (_, _, message) = condition(&status, "AdminIsolated");
        assert!(message.contains("default Prism admin"), "{message}");
        let shared = Some(Access::Shared(vec!["n/c".into()]));
        admin_status(&mut status, default, shared, vec![], now());
        let (_, _, message) = condition(&status, "AdminIsolated");
        assert!(
            message.starts_with(
                "shares the operator's default Prism admin (--admin-endpoint) with n/c"
            ),
            "{message}"
        );

        let refused = Access::Refused {
            owner: "n/a".into(),
            with: vec!["n/a".into()],
        };
        admin_status(
            &mut status,
            list.clone(),
            Some(refused),
            vec!["prism-b-3".into()],
            now(),
        );
        let (state, reason, message) = condition(&status, "AdminIsolated");
        assert_eq!((state, reason), ("False", "SharedAdminRefused"));
        assert!(
            message.contains("older shard n/a") && message.contains("--allow-shared-admin"),
            "{message}"
        );
        let admin = status.admin.clone().unwrap();
        assert_eq!(admin.shared_with, ["n/a"]);
        assert_eq!(admin.stale_proxies, ["prism-b-3"]);

        admin_status(
            &mut status,
            list,
            Some(Access::Shared(vec!["n/c".into()])),
            vec![],
            now(),
        );
        let (state, reason, message) = condition(&status, "AdminIsolated");
        assert_eq!((state, reason), ("False", "SharedAdmin"));
        assert!(
            message.contains("n/c") && message.contains("PlacedOffShard"),
            "{message}"
        );

        // Without an admin the condition goes; stale proxies are still reported.
        admin_status(&mut status, None, None, vec!["prism-b-3".into()], now());
        assert!(!status.conditions.iter().any(|c| c.type_ == "AdminIsolated"));
        assert_eq!(status.admin.unwrap().stale_proxies, ["prism-b-3"]);
    }
}
