//! Prometheus metrics named like controller-runtime's, so dashboards and alerts carry over:
//! `prism_operator_reconcile_total{controller,result}`, `..._reconcile_errors_total{controller,reason}`,
//! `..._reconcile_time_seconds`, `..._active_workers`, plus applies and leadership.

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    controller: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    controller: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdminCallLabels {
    rpc: String,
    endpoint: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdminEndpointLabels {
    rpc: String,
    endpoint: String,
}

fn reconcile_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// All metrics of the operator.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    durations: Family<ControllerLabels, Histogram, fn() -> Histogram>,
    active: Family<ControllerLabels, Gauge>,
    writes: Family<KindLabels, Counter>,
    leader: Gauge,
    prometheus_up: Gauge,
    admin_calls: Family<AdminCallLabels, Counter>,
    admin_durations: Family<AdminEndpointLabels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("prism_operator");
        let reconciles = Family::<ResultLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let durations =
            Family::<ControllerLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                reconcile_histogram as fn() -> Histogram,
            );
        let active = Family::<ControllerLabels, Gauge>::default();
        let writes = Family::<KindLabels, Counter>::default();
        let leader = Gauge::default();
        let prometheus_up = Gauge::default();
        let admin_calls = Family::<AdminCallLabels, Counter>::default();
        let admin_durations =
            Family::<AdminEndpointLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                reconcile_histogram as fn() -> Histogram,
            );
        registry.register(
            "admin_calls",
            "Calls to Prism admin by RPC, endpoint and outcome (ok, or the failure's reason)",
            admin_calls.clone(),
        );
        registry.register(
            "admin_call_duration_seconds",
            "Time Prism admin took to answer, by RPC and endpoint",
            admin_durations.clone(),
        );
        registry.register(
            "reconcile",
            "Reconciliations by controller and result",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciliations that returned an error, by where it came from",
            errors.clone(),
        );
        registry.register(
            "reconcile_time_seconds",
            "Time spent in reconciliations",
            durations.clone(),
        );
        registry.register(
            "active_workers",
            "Reconciliations in flight",
            active.clone(),
        );
        registry.register(
            "object_writes",
            "Writes to the API server by kind and operation",
            writes.clone(),
        );
        registry.register(
            "leader_election_master_status",
            "1 while this replica leads",
            leader.clone(),
        );
        registry.register(
            "prometheus_up",
            "1 when the last round of traffic queries to Prometheus succeeded",
            prometheus_up.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            durations,
            active,
            writes,
            leader,
            prometheus_up,
            admin_calls,
            admin_durations,
        }
    }

    /// Counts one call to Prism admin.
    pub fn admin_call(&self, rpc: &str, endpoint: &str, outcome: &str, took: std::time::Duration) {
        self.admin_calls
            .get_or_create(&AdminCallLabels {
                rpc: rpc.to_string(),
                endpoint: endpoint.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.admin_durations
            .get_or_create(&AdminEndpointLabels {
                rpc: rpc.to_string(),
                endpoint: endpoint.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("metrics encode");
        out
    }

    /// Starts timing one reconciliation of `controller`.
    pub fn start(&self, controller: &str) -> ReconcileTimer<'_> {
        let labels = ControllerLabels {
            controller: controller.to_string(),
        };
        self.active.get_or_create(&labels).inc();
        ReconcileTimer {
            metrics: self,
            labels,
            started: Instant::now(),
        }
    }

    /// Counts a write (`apply`, `delete`, `status`, …) of `kind`.
    pub fn write(&self, kind: &str, operation: &str) {
        self.writes
            .get_or_create(&KindLabels {
                kind: kind.to_string(),
                operation: operation.to_string(),
            })
            .inc();
    }

    /// Records whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Records whether the last round of traffic queries succeeded.
    pub fn prometheus_up(&self, up: bool) {
        self.prometheus_up.set(i64::from(up));
    }
}

/// Measures one reconciliation; records its result when finished.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    labels: ControllerLabels,
    started: Instant,
}

impl ReconcileTimer<'_> {
    /// Records the outcome: success, or an error counted under its `reason` label.
    pub fn finish(self, outcome: Result<(), &str>) {
        let m = self.metrics;
        m.reconciles
            .get_or_create(&ResultLabels {
                controller: self.labels.controller.clone(),
                result: if outcome.is_ok() { "success" } else { "error" }.to_string(),
            })
            .inc();
        if let Err(reason) = outcome {
            m.errors
                .get_or_create(&ErrorLabels {
                    controller: self.labels.controller.clone(),
                    reason: reason.to_string(),
                })
                .inc();
        }
        m.durations
            .get_or_create(&self.labels)
            .observe(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics.active.get_or_create(&self.labels).dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_controller_runtime_style_names() {
        let m = Metrics::new();
        m.start("prismshard").finish(Ok(()));
        m.start("prismshard").finish(Err("admin"));
        m.write("StatefulSet", "apply");
        let text = m.encode();
        assert!(
            text.contains(
                "prism_operator_reconcile_total{controller=\"prismshard\",result=\"success\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "prism_operator_reconcile_errors_total{controller=\"prismshard\",reason=\"admin\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "prism_operator_reconcile_time_seconds_count{controller=\"prismshard\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("prism_operator_active_workers{controller=\"prismshard\"} 0"),
            "{text}"
        );
        assert!(
            text.contains(
                "prism_operator_object_writes_total{kind=\"StatefulSet\",operation=\"apply\"} 1"
            ),
            "{text}"
        );
    }
}
