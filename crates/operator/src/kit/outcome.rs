//! Status conditions kept like `meta.SetStatusCondition`: one per type, and
//! `lastTransitionTime` moves only when the status flips, so an unchanged world writes nothing.
//!
//! Controllers say what they found with named constructors ([`Cond::ready`],
//! [`Cond::degraded`], …) and set the Ready / Progressing / Degraded trio at once from an
//! [`Outcome`]. Every reason the operator uses is in [`reason`].

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use prism_api::{condition, reason};

/// The status of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    /// `True`.
    True,
    /// `False`.
    False,
    /// `Unknown`.
    Unknown,
}

impl Truth {
    /// The word the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

impl From<bool> for Truth {
    fn from(b: bool) -> Self {
        if b { Self::True } else { Self::False }
    }
}

/// One condition to set, before it gets its generation and transition time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    /// Condition type, e.g. `Ready`.
    pub type_: &'static str,
    /// `True`, `False` or `Unknown`.
    pub status: Truth,
    /// CamelCase reason, from [`prism_api::reason`].
    pub reason: &'static str,
    /// Human message.
    pub message: String,
}

impl Cond {
    fn new(type_: &'static str, status: bool, reason: &'static str, message: String) -> Self {
        Self::of(type_, Truth::from(status), reason, message)
    }

    /// A condition of `type_` with `status`, `reason` and `message`.
    pub fn of(type_: &'static str, status: Truth, reason: &'static str, message: String) -> Self {
        Self {
            type_,
            status,
            reason,
            message,
        }
    }

    /// `Ready=True`.
    pub fn ready(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(condition::READY, true, reason, message.into())
    }

    /// `Ready=False`.
    pub fn not_ready(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(condition::READY, false, reason, message.into())
    }

    /// `Progressing=True`.
    pub fn progressing(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(condition::PROGRESSING, true, reason, message.into())
    }

    /// `Progressing=False`.
    pub fn not_progressing(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(condition::PROGRESSING, false, reason, message.into())
    }

    /// `Degraded=True`.
    pub fn degraded(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(condition::DEGRADED, true, reason, message.into())
    }

    /// `Degraded=False` with `reason` and no message.
    pub fn not_degraded(reason: &'static str) -> Self {
        Self::new(condition::DEGRADED, false, reason, String::new())
    }

    /// `Degraded=False`, reason `Healthy`.
    pub fn healthy() -> Self {
        Self::not_degraded(reason::HEALTHY)
    }

    /// `Degraded=True` for `problem`, else `Healthy`.
    pub fn degraded_by(problem: Option<Degradation>) -> Self {
        match problem {
            Some(p) => Self::degraded(p.reason, p.message),
            None => Self::healthy(),
        }
    }

    /// `AdminIsolated` of a shard: whether it is the only one using its Prism admin.
    pub fn admin_isolated(isolated: bool, reason: &'static str, message: String) -> Self {
        Self::new(condition::ADMIN_ISOLATED, isolated, reason, message)
    }

    /// The paused condition of the `prism.io/reconcile: paused` annotation.
    pub fn paused() -> Self {
        Self::new(
            condition::PAUSED,
            true,
            reason::PAUSED,
            "reconciliation is paused by annotation prism.io/reconcile: paused".into(),
        )
    }
}

/// Why an object is degraded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Degradation {
    /// CamelCase reason, from [`prism_api::reason`].
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

/// Where an object stands after a reconcile: the Ready / Progressing / Degraded trio.
/// `progressing: None` leaves Progressing alone (namespaces have none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The Ready condition.
    pub ready: Cond,
    /// The Progressing condition, if the kind has one.
    pub progressing: Option<Cond>,
    /// The Degraded condition.
    pub degraded: Cond,
}

impl Outcome {
    /// Stopped by `reason` before anything was applied: not ready, not progressing, degraded.
    pub fn blocked(reason: &'static str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            ready: Cond::not_ready(reason, message.clone()),
            progressing: Some(Cond::not_progressing(reason, "")),
            degraded: Cond::degraded(reason, message),
        }
    }

    /// Not ready and degraded for `reason`; Progressing is left alone.
    pub fn failed(reason: &'static str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            ready: Cond::not_ready(reason, message.clone()),
            progressing: None,
            degraded: Cond::degraded(reason, message),
        }
    }
}

/// Sets (or adds) `cond`.
pub fn set(conditions: &mut Vec<Condition>, cond: Cond, generation: Option<i64>, now: Timestamp) {
    let status = cond.status.as_str().to_string();
    let message: String = cond.message.chars().take(32_768).collect();
    match conditions.iter_mut().find(|c| c.type_ == cond.type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Time(now);
            }
            c.status = status;
            c.reason = cond.reason.into();
            c.message = message;
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: cond.type_.into(),
            status,
            reason: cond.reason.into(),
            message,
            observed_generation: generation,
            last_transition_time: Time(now),
        }),
    }
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

/// Sets the Ready / Progressing / Degraded trio of `outcome`.
pub fn set_outcome(
    conditions: &mut Vec<Condition>,
    outcome: Outcome,
    generation: Option<i64>,
    now: Timestamp,
) {
    set(conditions, outcome.ready, generation, now);
    if let Some(progressing) = outcome.progressing {
        set(conditions, progressing, generation, now);
    }
    set(conditions, outcome.degraded, generation, now);
}

/// Removes the condition of `type_`, if present.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// Whether there is a condition of `type_`.
pub fn has(conditions: &[Condition], type_: &str) -> bool {
    conditions.iter().any(|c| c.type_ == type_)
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

    fn find<'a>(cs: &'a [Condition], type_: &str) -> (&'a str, &'a str, &'a str) {
        let c = cs.iter().find(|c| c.type_ == type_).expect(type_);
        (c.status.as_str(), c.reason.as_str(), c.message.as_str())
    }

    #[test]
    fn transition_time_moves_only_on_flips() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let mut cs = vec![];
        set(&mut cs, Cond::not_ready("Pending", "waiting"), Some(1), t0);
        set(
            &mut cs,
            Cond::not_ready("Pending", "still waiting"),
            Some(2),
            t1,
        );
        assert_eq!(cs[0].last_transition_time, Time(t0));
        assert_eq!(cs[0].message, "still waiting");
        set(&mut cs, Cond::ready("Ready", "ok"), Some(2), t1);
        assert_eq!(cs[0].last_transition_time, Time(t1));
        assert!(is_true(&cs, "Ready"));
        set(&mut cs, Cond::healthy(), Some(2), t1);
        assert_eq!(
            cs.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            ["Degraded", "Ready"]
        );
        remove(&mut cs, "Degraded");
        assert_eq!(cs.len(), 1);
    }

    #[test]
    fn a_blocked_outcome_sets_the_whole_trio() {
        let now = Timestamp::from_second(1_000).unwrap();
        let mut cs = vec![];
        let outcome = Outcome::blocked(reason::INVALID_SPEC, "spec.plugins[0]: unknown");
        set_outcome(&mut cs, outcome, Some(3), now);
        assert_eq!(
            find(&cs, "Ready"),
            ("False", "InvalidSpec", "spec.plugins[0]: unknown")
        );
        assert_eq!(find(&cs, "Progressing"), ("False", "InvalidSpec", ""));
        assert_eq!(
            find(&cs, "Degraded"),
            ("True", "InvalidSpec", "spec.plugins[0]: unknown")
        );
        assert!(cs.iter().all(|c| c.observed_generation == Some(3)));
    }

    #[test]
    fn a_failed_outcome_leaves_progressing_alone() {
        let now = Timestamp::from_second(1_000).unwrap();
        let mut cs = vec![];
        set_outcome(
            &mut cs,
            Outcome::failed(reason::UNSCHEDULABLE, "no shard"),
            None,
            now,
        );
        assert_eq!(cs.len(), 2);
        assert_eq!(find(&cs, "Degraded"), ("True", "Unschedulable", "no shard"));
    }

    #[test]
    fn a_conflict_degrades_and_its_absence_is_healthy() {
        let conflict = Degradation::new(reason::FIELD_CONFLICT, "rival owns .spec.replicas");
        assert_eq!(
            Cond::degraded_by(Some(conflict)),
            Cond::degraded("FieldConflict", "rival owns .spec.replicas")
        );
        assert_eq!(Cond::degraded_by(None), Cond::not_degraded("Healthy"));
        let paused = Cond::paused();
        assert_eq!(
            (paused.type_, paused.reason),
            ("ReconciliationPaused", "Paused")
        );
    }
}
