//! Status conditions kept like `meta.SetStatusCondition`: one per type, and
//! `lastTransitionTime` moves only when the status flips, so an unchanged world writes nothing.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::error::Error;

/// Every CamelCase reason the operator puts on a condition or an event.
pub mod reason {
    // Ready and Progressing.
    /// Every replica of a shard is ready on the rendered spec.
    pub const READY: &str = "Ready";
    /// Event: a shard stopped being ready.
    pub const NOT_READY: &str = "NotReady";
    /// A shard's StatefulSet, or a plugin, is moving to the rendered spec.
    pub const ROLLING_OUT: &str = "RollingOut";
    /// A shard's StatefulSet finished rolling out.
    pub const ROLLED_OUT: &str = "RolledOut";
    /// A plugin runs healthily on every shard that uses it.
    pub const INSTALLED: &str = "Installed";
    /// A plugin is not yet running healthily on every shard that uses it.
    pub const INSTALLING: &str = "Installing";
    /// A namespace is synced to Prism admin.
    pub const SYNCED: &str = "Synced";
    /// Reconciliation is paused by annotation.
    pub const PAUSED: &str = "Paused";

    // Degraded.
    /// Nothing is wrong.
    pub const HEALTHY: &str = "Healthy";
    /// The spec cannot be rendered.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// No shard can host a namespace.
    pub const UNSCHEDULABLE: &str = "Unschedulable";
    /// Another writer keeps changing fields the operator sets.
    pub const FIELD_CONFLICT: &str = "FieldConflict";
    /// The volumes of a shard would have to shrink.
    pub const STORAGE_SHRINK_REFUSED: &str = "StorageShrinkRefused";
    /// Growing the volumes of a shard failed.
    pub const STORAGE_RESIZE_FAILED: &str = "StorageResizeFailed";
    /// Objects no longer rendered could not, or may not, be deleted.
    pub const PRUNE_REFUSED: &str = "PruneRefused";
    /// A plugin rollout missed its deadline and was rolled back.
    pub const ROLLED_BACK: &str = "RolledBack";
    /// No Prism admin endpoint is configured for a namespace's shard.
    pub const NO_ADMIN_ENDPOINT: &str = "NoAdminEndpoint";
    /// The Secret with a namespace's connection string cannot be read.
    pub const SECRET_UNAVAILABLE: &str = "SecretUnavailable";
    /// The API server refused or failed a request.
    pub const API_ERROR: &str = "ApiError";
    /// A finalizer could not be added or removed.
    pub const FINALIZER_FAILED: &str = "FinalizerFailed";

    // Events only.
    /// An object no longer rendered was deleted.
    pub const PRUNED: &str = "Pruned";
    /// A shard's volume claims were expanded.
    pub const VOLUMES_EXPANDED: &str = "VolumesExpanded";
    /// A remote plugin could not be rendered.
    pub const RENDER_FAILED: &str = "RenderFailed";
    /// A namespace moved to another shard.
    pub const REPLACED: &str = "Replaced";
    /// A deleted namespace stays in Prism (reclaim policy `retain`).
    pub const RETAINED: &str = "Retained";
    /// A deleted namespace was revoked in Prism.
    pub const REVOKED: &str = "Revoked";
    /// A deleted namespace could not be revoked and was let go.
    pub const REVOKE_ABANDONED: &str = "RevokeAbandoned";
    /// A plugin rollout started.
    pub const ROLLOUT_STARTED: &str = "RolloutStarted";
    /// A shard was given a plugin's new spec.
    pub const SHARD_UPDATING: &str = "ShardUpdating";
    /// A shard runs a plugin's new spec healthily.
    pub const SHARD_UPDATED: &str = "ShardUpdated";
    /// Every shard runs a plugin's new spec healthily.
    pub const ROLLOUT_COMPLETE: &str = "RolloutComplete";
}

/// Why an object is degraded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Degradation {
    /// CamelCase reason, from [`reason`].
    pub reason: &'static str,
    /// Human message.
    pub message: String,
}

impl Degradation {
    /// A degradation with `reason` and `message`.
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

impl From<&Error> for Degradation {
    fn from(e: &Error) -> Self {
        Self::new(e.reason(), e.to_string())
    }
}

/// Sets (or adds) the condition of `type_`.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if status { "True" } else { "False" }.to_string();
    let message: String = message.into();
    let message: String = message.chars().take(32_768).collect();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Time(now);
            }
            c.status = status;
            c.reason = reason.into();
            c.message = message;
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message,
            observed_generation: generation,
            last_transition_time: Time(now),
        }),
    }
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

/// Marks reconciliation as paused by the `prism.io/reconcile: paused` annotation.
pub fn set_paused(conditions: &mut Vec<Condition>, generation: Option<i64>, now: Timestamp) {
    set(
        conditions,
        prism_api::condition::PAUSED,
        true,
        reason::PAUSED,
        "reconciliation is paused by annotation prism.io/reconcile: paused",
        generation,
        now,
    );
}

/// Removes the condition of `type_`, if present.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// Whether the condition of `type_` is `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_on_flips() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let mut cs = vec![];
        set(&mut cs, "Ready", false, "Pending", "waiting", Some(1), t0);
        set(
            &mut cs,
            "Ready",
            false,
            "Pending",
            "still waiting",
            Some(2),
            t1,
        );
        assert_eq!(cs[0].last_transition_time, Time(t0));
        assert_eq!(cs[0].message, "still waiting");
        set(&mut cs, "Ready", true, "Ready", "ok", Some(2), t1);
        assert_eq!(cs[0].last_transition_time, Time(t1));
        assert!(is_true(&cs, "Ready"));
        set(&mut cs, "Degraded", false, "Healthy", "", Some(2), t1);
        assert_eq!(
            cs.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            ["Degraded", "Ready"]
        );
        remove(&mut cs, "Degraded");
        assert_eq!(cs.len(), 1);
    }
}
