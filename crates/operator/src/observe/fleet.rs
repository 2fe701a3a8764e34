//! The state of the fleet as metrics, read from the caches at each scrape (nothing is kept
//! between scrapes, so a series cannot go stale):
//!
//! - `prism_operator_resources{kind,state}`: how many objects of each kind are in each state;
//! - `prism_operator_condition{kind,namespace,name,type,status,reason}`: 1 for each condition
//!   in an unhealthy status (Ready, Healthy or MetricsAvailable not True; Degraded,
//!   AdminIsolated, ReconciliationPaused or Progressing True), so a healthy fleet costs no
//!   series;
//! - `prism_operator_namespace_not_active{namespace,name,state,reason}`: 1 for each
//!   PrismNamespace that is not Active;
//! - `prism_operator_plugin_shards{namespace,name,version}`: shards running each version of a
//!   plugin;
//! - `prism_operator_kind_served{kind}`: whether the cluster serves each CRD-backed child kind.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::kit::served::Served;
use crate::view::View;
use prism_api::{NamespaceState, PrismNamespace, PrismPlugin, PrismShard, condition};
use prism_render::render::contract::CRD_CHILD_KINDS;

/// Reads the caches of a [`View`] when scraped.
#[derive(Clone)]
pub struct Fleet {
    view: View,
    served: Served,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fleet")
    }
}

impl Fleet {
    /// The fleet of `view`, with the kinds `served`.
    pub fn new(view: View, served: Served) -> Self {
        Self { view, served }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct StateLabels {
    kind: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct ConditionLabels {
    kind: String,
    namespace: String,
    name: String,
    r#type: String,
    status: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct NotActiveLabels {
    namespace: String,
    name: String,
    state: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct VersionLabels {
    namespace: String,
    name: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// Every series of one scrape, counted from the objects.
#[derive(Debug, Default)]
struct Tally {
    resources: BTreeMap<StateLabels, i64>,
    conditions: Vec<ConditionLabels>,
    not_active: Vec<NotActiveLabels>,
    plugin_shards: BTreeMap<VersionLabels, i64>,
}

const NAMESPACE_STATES: [&str; 4] = ["Pending", "Active", "Failed", "Terminating"];
const SHARD_STATES: [&str; 3] = ["Ready", "NotReady", "Degraded"];
const PLUGIN_STATES: [&str; 4] = ["Idle", "Progressing", "Complete", "RolledBack"];

/// Whether a condition of `type_` with `status` says something is wrong (or moving).
fn unhealthy(type_: &str, status: &str) -> bool {
    match type_ {
        condition::READY | condition::HEALTHY | condition::METRICS_AVAILABLE => status != "True",
        condition::DEGRADED
        | condition::ADMIN_ISOLATED
        | condition::PAUSED
        | condition::PROGRESSING => status == "True",
        _ => false,
    }
}

fn status_of<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

fn is_true(conditions: &[Condition], type_: &str) -> bool {
    status_of(conditions, type_).is_some_and(|c| c.status == "True")
}

impl Tally {
    fn new() -> Self {
        let mut t = Self::default();
        for (kind, states) in [
            ("PrismNamespace", &NAMESPACE_STATES[..]),
            ("PrismShard", &SHARD_STATES[..]),
            ("PrismPlugin", &PLUGIN_STATES[..]),
        ] {
            for state in states {
                t.resources.insert(
                    StateLabels {
                        kind: kind.into(),
                        state: state.to_string(),
                    },
                    0,
                );
            }
        }
        t
    }

    fn count(&mut self, kind: &str, state: &str) {
        *self
            .resources
            .entry(StateLabels {
                kind: kind.into(),
                state: state.into(),
            })
            .or_default() += 1;
    }

    fn conditions(&mut self, kind: &str, namespace: &str, name: &str, conditions: &[Condition]) {
        for c in conditions.iter().filter(|c| unhealthy(&c.type_, &c.status)) {
            self.conditions.push(ConditionLabels {
                kind: kind.into(),
                namespace: namespace.into(),
                name: name.into(),
                r#type: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
            });
        }
    }

    fn shard(&mut self, shard: &PrismShard) {
        let conditions = shard
            .status
            .as_ref()
            .map(|s| &s.conditions[..])
            .unwrap_or_default();
        let state = if is_true(conditions, condition::DEGRADED) {
            "Degraded"
        } else if is_true(conditions, condition::READY) {
            "Ready"
        } else {
            "NotReady"
        };
        self.count("PrismShard", state);
        let ns = shard.namespace().unwrap_or_default();
        self.conditions("PrismShard", &ns, &shard.name_any(), conditions);
    }

    fn plugin(&mut self, plugin: &PrismPlugin) {
        let status = plugin.status.as_ref();
        let state = status
            .and_then(|s| s.rollout.as_ref())
            .map_or_else(|| "Idle".to_string(), |r| format!("{:?}", r.phase));
        self.count("PrismPlugin", &state);
        let (ns, name) = (plugin.namespace().unwrap_or_default(), plugin.name_any());
        let conditions = status.map(|s| &s.conditions[..]).unwrap_or_default();
        self.conditions("PrismPlugin", &ns, &name, conditions);
        for v in status.map(|s| &s.shard_versions[..]).unwrap_or_default() {
            *self
                .plugin_shards
                .entry(VersionLabels {
                    namespace: ns.clone(),
                    name: name.clone(),
                    version: v.version.clone(),
                })
                .or_default() += 1;
        }
    }

    fn namespace(&mut self, namespace: &PrismNamespace) {
        let status = namespace.status.as_ref();
        let state = status
            .and_then(|s| s.state)
            .unwrap_or(NamespaceState::Pending);
        let state = format!("{state:?}");
        self.count("PrismNamespace", &state);
        let (ns, name) = (
            namespace.namespace().unwrap_or_default(),
            namespace.name_any(),
        );
        let conditions = status.map(|s| &s.conditions[..]).unwrap_or_default();
        self.conditions("PrismNamespace", &ns, &name, conditions);
        if state != "Active" {
            let reason = status_of(conditions, condition::READY)
                .map(|c| c.reason.clone())
                .unwrap_or_default();
            self.not_active.push(NotActiveLabels {
                namespace: ns,
                name,
                state,
                reason,
            });
        }
    }
}

fn encode_family<L>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, i64)>,
) -> std::fmt::Result
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
{
    let family = Family::<L, Gauge>::default();
    for (labels, value) in series {
        family.get_or_create(&labels).set(value);
    }
    family.encode(encoder.encode_descriptor(name, help, None, family.metric_type())?)
}

impl Collector for Fleet {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let mut t = Tally::new();
        for s in self.view.shards.state() {
            t.shard(&s);
        }
        for p in self.view.plugins.state() {
            t.plugin(&p);
        }
        for n in self.view.namespaces.state() {
            t.namespace(&n);
        }
        let e = &mut encoder;
        encode_family(
            e,
            "prism_operator_resources",
            "Prism resources by kind and state",
            t.resources,
        )?;
        encode_family(
            e,
            "prism_operator_condition",
            "1 for each condition of a Prism resource in an unhealthy status",
            t.conditions.into_iter().map(|l| (l, 1)),
        )?;
        encode_family(
            e,
            "prism_operator_namespace_not_active",
            "1 for each PrismNamespace that is not Active, with its state and reason",
            t.not_active.into_iter().map(|l| (l, 1)),
        )?;
        encode_family(
            e,
            "prism_operator_plugin_shards",
            "Shards running each version of a PrismPlugin",
            t.plugin_shards,
        )?;
        encode_family(
            e,
            "prism_operator_kind_served",
            "1 when the cluster serves this CRD-backed child kind",
            CRD_CHILD_KINDS.iter().map(|(kind, ..)| {
                let labels = KindLabels {
                    kind: kind.to_string(),
                };
                (labels, i64::from(self.served.has(kind)))
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    fn cond(type_: &str, status: &str, reason: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                Timestamp::UNIX_EPOCH,
            ),
            observed_generation: None,
        }
    }

    fn shard(name: &str, conditions: Vec<Condition>) -> PrismShard {
        let mut s: PrismShard =
            serde_json::from_value(crate::view::fixture::shard("team", name, 0, None)).unwrap();
        s.status = Some(prism_api::PrismShardStatus {
            conditions,
            ..Default::default()
        });
        s
    }

    #[test]
    fn counts_states_and_lists_only_unhealthy_conditions() {
        let mut t = Tally::new();
        t.shard(&shard("a", vec![cond("Ready", "True", "Ready")]));
        t.shard(&shard(
            "b",
            vec![
                cond("Ready", "True", "Ready"),
                cond("Degraded", "True", "FieldConflict"),
            ],
        ));
        t.shard(&shard("c", vec![cond("Ready", "False", "NotReady")]));
        let count = |kind: &str, state: &str| {
            t.resources[&StateLabels {
                kind: kind.into(),
                state: state.into(),
            }]
        };
        assert_eq!(count("PrismShard", "Ready"), 1);
        assert_eq!(count("PrismShard", "Degraded"), 1);
        assert_eq!(count("PrismShard", "NotReady"), 1);
        assert_eq!(count("PrismNamespace", "Active"), 0);
        let listed: Vec<(&str, &str, &str)> = t
            .conditions
            .iter()
            .map(|c| (c.name.as_str(), c.r#type.as_str(), c.reason.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                ("b", "Degraded", "FieldConflict"),
                ("c", "Ready", "NotReady")
            ]
        );
    }

    #[test]
    fn polarity_of_each_condition_type() {
        assert!(unhealthy("Ready", "False"));
        assert!(unhealthy("Ready", "Unknown"));
        assert!(!unhealthy("Ready", "True"));
        assert!(unhealthy("Degraded", "True"));
        assert!(!unhealthy("Degraded", "False"));
        assert!(unhealthy("Progressing", "True"));
        assert!(unhealthy("MetricsAvailable", "False"));
        assert!(!unhealthy("SomethingElse", "False"));
    }
}
