//! Status conditions kept like `meta.SetStatusCondition`: one per type, and
//! `lastTransitionTime` moves only when the status flips, so an unchanged world writes nothing.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

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
        "Paused",
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
