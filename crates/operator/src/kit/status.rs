//! The status every controller writes once per reconcile: drafted from the current one, marked
//! paused when the object is, and written only when it changed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Resource;
use kube::core::object::HasStatus;
use kube::runtime::controller::Action;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::context::{Ctx, paused};
use super::error::Error;
use super::outcome::{self, Cond};
use prism_api::{PrismNamespaceStatus, PrismPluginStatus, PrismShardStatus, condition, reason};

/// What every Prism status has.
pub trait Observed: Clone + Default + PartialEq + Serialize {
    /// The conditions.
    fn conditions(&self) -> &[Condition];
    /// The conditions, to change them.
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;
    /// Records the generation the status describes.
    fn observe(&mut self, generation: Option<i64>);
    /// The status without what the traffic writer owns (figures, health and their
    /// conditions): the part a controller compares and writes, so that it neither writes
    /// because traffic moved nor takes those fields over.
    fn controller_part(&self) -> Self;
}

macro_rules! observed {
    ($($status:ty),*) => {$(
        impl Observed for $status {
            fn conditions(&self) -> &[Condition] {
                &self.conditions
            }
            fn conditions_mut(&mut self) -> &mut Vec<Condition> {
                &mut self.conditions
            }
            fn observe(&mut self, generation: Option<i64>) {
                self.observed_generation = generation;
            }
            fn controller_part(&self) -> Self {
                let mut part = self.clone();
                part.clear_traffic();
                part
            }
        }
    )*};
}
observed!(PrismShardStatus, PrismPluginStatus, PrismNamespaceStatus);

/// The fields of `PrismNamespaceStatus` and `PrismShardStatus` only the traffic writer sets.
trait TrafficOwned {
    fn clear_traffic(&mut self);
}

impl TrafficOwned for PrismNamespaceStatus {
    fn clear_traffic(&mut self) {
        self.metrics = None;
        self.health = None;
        self.conditions.retain(|c| c.type_ != condition::HEALTHY);
    }
}

impl TrafficOwned for PrismPluginStatus {
    fn clear_traffic(&mut self) {}
}

impl TrafficOwned for PrismShardStatus {
    fn clear_traffic(&mut self) {
        self.aggregate_metrics = None;
        self.conditions
            .retain(|c| c.type_ != condition::METRICS_AVAILABLE);
    }
}

/// A Prism resource whose status a controller writes.
pub trait Reconciled:
    Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + HasStatus<Status: Observed>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
{
}

impl<K> Reconciled for K where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + HasStatus<Status: Observed>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
{
}

/// The status `obj` has, and the draft of the next one (observing the current generation).
pub fn begin<K: Reconciled>(obj: &K) -> (K::Status, K::Status) {
    let old = obj.status().cloned().unwrap_or_default();
    let mut new = old.clone();
    new.observe(obj.meta().generation);
    (old, new)
}

/// When `obj` is paused by annotation: marks its status so, writes it if that changed and
/// returns the action to wait with. Otherwise drops the paused mark from the draft.
pub async fn pause_if_paused<K: Reconciled>(
    ctx: &Ctx,
    obj: &K,
    old: &K::Status,
    new: &mut K::Status,
) -> Result<Option<Action>, Error> {
    let now = jiff::Timestamp::now();
    if !mark_paused(new, paused(obj), obj.meta().generation, now) {
        return Ok(None);
    }
    write(ctx, obj, old, new).await?;
    Ok(Some(Action::await_change()))
}

/// Marks the draft paused when `paused`, else drops the mark; returns `paused`.
pub fn mark_paused<S: Observed>(
    new: &mut S,
    paused: bool,
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> bool {
    match paused {
        true => outcome::set(new.conditions_mut(), Cond::paused(), generation, now),
        false => outcome::remove(new.conditions_mut(), condition::PAUSED),
    }
    paused
}

/// Writes `new` when its controller part differs from `old`'s (what the traffic writer owns is
/// neither compared nor sent); returns whether it did.
pub async fn write<K: Reconciled>(
    ctx: &Ctx,
    obj: &K,
    old: &K::Status,
    new: &K::Status,
) -> Result<bool, Error> {
    Ok(send(ctx, obj, old, new, false).await? == Written::Written)
}

/// What writing a status that holds state came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Nothing changed: not written.
    Unchanged,
    /// Written.
    Written,
    /// Not written: the object changed since it was read (the cache is behind a write).
    Stale,
}

/// [`write`] for a status that is state, not only observation (a plugin's rollout): sent
/// with the `resourceVersion` it was derived from, so a reconcile that read a cache still
/// behind the last write cannot set the state back.
pub async fn write_over<K: Reconciled>(
    ctx: &Ctx,
    obj: &K,
    old: &K::Status,
    new: &K::Status,
) -> Result<Written, Error> {
    send(ctx, obj, old, new, true).await
}

/// Writes `new` when its controller part differs from `old`'s (`over`: only over the
/// `resourceVersion` `obj` was read at), with a Warning event when a problem begins. Traced
/// as a span `status write`, with `written` saying whether it wrote.
#[tracing::instrument(
    name = "status write",
    skip_all,
    fields(otel.name = format!("status write {}", K::kind(&())), written = tracing::field::Empty)
)]
async fn send<K: Reconciled>(
    ctx: &Ctx,
    obj: &K,
    old: &K::Status,
    new: &K::Status,
    over: bool,
) -> Result<Written, Error> {
    let (old, new) = (&old.controller_part(), &new.controller_part());
    if old == new {
        tracing::Span::current().record("written", false);
        return Ok(Written::Unchanged);
    }
    if tracing::enabled!(tracing::Level::DEBUG) {
        tracing::debug!(fields = %changed_fields(old, new), "status changed");
    }
    let sent = match over {
        true => ctx.report.patch_status_over(obj, new).await,
        false => ctx.report.patch_status(obj, new).await,
    };
    match sent {
        Err(Error::Kube(kube::Error::Api(e))) if over && e.code == 409 => {
            tracing::debug!("status not written: the object changed since it was read");
            tracing::Span::current().record("written", false);
            return Ok(Written::Stale);
        }
        other => other?,
    }
    tracing::Span::current().record("written", true);
    if let Some((why, message)) = problem_begun(old.conditions(), new.conditions()) {
        ctx.report.event(obj, true, why, message.to_string()).await;
    }
    Ok(Written::Written)
}

/// The top-level fields of a status that differ between `old` and `new` (conditions by type),
/// for the log.
fn changed_fields<S: Serialize>(old: &S, new: &S) -> String {
    let (old, new) = (
        serde_json::to_value(old).unwrap_or_default(),
        serde_json::to_value(new).unwrap_or_default(),
    );
    let empty = serde_json::Map::new();
    let (o, n) = (
        old.as_object().unwrap_or(&empty),
        new.as_object().unwrap_or(&empty),
    );
    let mut changed: Vec<String> = o
        .keys()
        .chain(n.keys().filter(|k| !o.contains_key(*k)))
        .filter(|k| o.get(*k) != n.get(*k))
        .map(|k| match (k.as_str(), o.get(k), n.get(k)) {
            ("conditions", Some(a), Some(b)) => {
                let by_type = |v: &serde_json::Value, t: &serde_json::Value| {
                    v.as_array()
                        .and_then(|cs| cs.iter().find(|c| &c["type"] == t).cloned())
                };
                let types: Vec<String> = b
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| by_type(a, &c["type"]).as_ref() != Some(*c))
                    .map(|c| c["type"].as_str().unwrap_or_default().to_string())
                    .collect();
                format!("conditions[{}]", types.join(","))
            }
            (_, a, b) => format!("{k}: {} -> {}", short(a), short(b)),
        })
        .collect();
    changed.sort();
    changed.join("; ")
}

fn short(v: Option<&serde_json::Value>) -> String {
    let text = v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
    match text.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

/// Degradations announced by a Warning event when they begin.
const ANNOUNCED: &[&str] = &[
    reason::FIELD_CONFLICT,
    reason::FIELDS_DROPPED,
    reason::CRD_MISSING,
];

/// The reason and message of an announced degradation (a field conflict, a missing CRD) that
/// `new` reports and `old` did not (or with another message): it is announced once when it
/// begins, not on every reconcile it lasts.
pub fn problem_begun<'a>(old: &[Condition], new: &'a [Condition]) -> Option<(&'a str, &'a str)> {
    fn problem(cs: &[Condition]) -> Option<(&str, &str)> {
        cs.iter()
            .find(|c| {
                c.type_ == condition::DEGRADED
                    && c.status == "True"
                    && ANNOUNCED.contains(&c.reason.as_str())
            })
            .map(|c| (c.reason.as_str(), c.message.as_str()))
    }
    let now = problem(new)?;
    (problem(old) != Some(now)).then_some(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit::outcome::{Degradation, Outcome, set_outcome};

    /// A controller neither compares nor sends the traffic writer's fields: figures, health
    /// and their conditions.
    #[test]
    fn the_controller_part_leaves_traffic_out() {
        let now = jiff::Timestamp::from_second(1_000).unwrap();
        let mut ns = PrismNamespaceStatus::default();
        set_outcome(
            &mut ns.conditions,
            Outcome::failed(reason::INVALID_SPEC, "bad"),
            Some(1),
            now,
        );
        let ours = ns.clone();
        ns.health = Some(prism_api::Health::Healthy);
        ns.metrics = Some(prism_api::NamespaceMetrics {
            rps: Some(20),
            p99_latency: Some("4ms".into()),
        });
        outcome::set(
            &mut ns.conditions,
            Cond::of(
                condition::HEALTHY,
                outcome::Truth::True,
                "WithinSLA",
                "fine".into(),
            ),
            Some(1),
            now,
        );
        assert_eq!(ns.controller_part(), ours);

        let mut shard = PrismShardStatus::default();
        set_outcome(
            &mut shard.conditions,
            Outcome::failed(reason::INVALID_SPEC, "bad"),
            Some(1),
            now,
        );
        let ours = shard.clone();
        shard.aggregate_metrics = Some(Default::default());
        outcome::set(
            &mut shard.conditions,
            Cond::of(
                condition::METRICS_AVAILABLE,
                outcome::Truth::True,
                "PrometheusAnswers",
                "up".into(),
            ),
            Some(1),
            now,
        );
        assert_eq!(shard.controller_part(), ours);
    }

    #[test]
    fn pausing_marks_the_status_and_leaves_the_trio_alone() {
        let now = jiff::Timestamp::from_second(1_000).unwrap();
        let mut status = PrismShardStatus::default();
        let outcome = Outcome::blocked(reason::INVALID_SPEC, "bad");
        set_outcome(&mut status.conditions, outcome, Some(1), now);
        let before = status.conditions.clone();
        assert!(mark_paused(&mut status, true, Some(2), now));
        let paused: Vec<_> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            paused,
            ["Degraded", "Progressing", "Ready", "ReconciliationPaused"]
        );
        assert!(!mark_paused(&mut status, false, Some(2), now));
        assert_eq!(status.conditions, before);
    }

    #[test]
    fn conflicts_and_missing_crds_are_announced_when_they_begin_only() {
        let now = jiff::Timestamp::from_second(1_000).unwrap();
        let with = |degraded: Option<Degradation>| {
            let mut status = PrismShardStatus::default();
            let outcome = Outcome {
                ready: Cond::ready(reason::READY, "3/3"),
                progressing: None,
                degraded: Cond::degraded_by(degraded),
            };
            set_outcome(&mut status.conditions, outcome, Some(1), now);
            status.conditions
        };
        let healthy = with(None);
        let rival = with(Some(Degradation::new(
            reason::FIELD_CONFLICT,
            "rival owns x",
        )));
        let other = with(Some(Degradation::new(
            reason::FIELD_CONFLICT,
            "rival owns y",
        )));
        let refused = with(Some(Degradation::new(reason::PRUNE_REFUSED, "no")));
        let missing = with(Some(Degradation::new(reason::CRD_MISSING, "no CRD")));
        let x = Some((reason::FIELD_CONFLICT, "rival owns x"));
        assert_eq!(problem_begun(&healthy, &rival), x);
        assert_eq!(problem_begun(&refused, &rival), x);
        assert_eq!(problem_begun(&rival, &rival), None);
        assert_eq!(
            problem_begun(&rival, &other),
            Some((reason::FIELD_CONFLICT, "rival owns y"))
        );
        assert_eq!(problem_begun(&rival, &healthy), None);
        assert_eq!(
            problem_begun(&healthy, &missing),
            Some((reason::CRD_MISSING, "no CRD"))
        );
        assert_eq!(problem_begun(&refused, &healthy), None);
    }
}
