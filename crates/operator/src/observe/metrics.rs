//! The operator's metrics registry. Where a metric means what controller-runtime's or
//! client-go's does, it carries their name and labels, so the dashboards and alerts written for
//! kubebuilder operators work unchanged:
//!
//! - `controller_runtime_reconcile_total{controller,result}`, `..._reconcile_errors_total`,
//!   `..._terminal_reconcile_errors_total`, `..._reconcile_time_seconds`,
//!   `..._active_workers`, `..._max_concurrent_reconciles`;
//! - `rest_client_requests_total{code,method,host}`, `rest_client_request_duration_seconds`,
//!   `rest_client_request_retries_total{code,verb,host}` ([`crate::client`]);
//! - `leader_election_master_status{name}`;
//! - `process_*` ([`super::process`]).
//!
//! The Prism-specific ones are prefixed `prism_operator_`: errors by reason, writes by kind,
//! the time requests spend in the Kubernetes client (its retries included),
//! Prism admin calls, the Prometheus of the traffic figures, dropped spans, and the state of
//! the fleet read from the caches at each scrape ([`super::fleet`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::exposition::Format;

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameLabels {
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RetryLabels {
    pub code: String,
    pub verb: String,
    pub host: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub code: String,
    pub method: String,
    pub host: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct VerbLabels {
    pub verb: String,
    pub host: String,
}

/// A gauge without labels that is exposed only once it is first set.
#[derive(Debug, Clone)]
struct Lazy {
    name: &'static str,
    help: &'static str,
    value: Arc<AtomicI64>,
}

impl Lazy {
    const UNSET: i64 = i64::MIN;

    fn new(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            value: Arc::new(AtomicI64::new(Self::UNSET)),
        }
    }

    fn set(&self, v: i64) {
        self.value.store(v, Ordering::Relaxed);
    }
}

impl Collector for Lazy {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let v = self.value.load(Ordering::Relaxed);
        if v == Self::UNSET {
            return Ok(());
        }
        let g = ConstGauge::new(v);
        g.encode(encoder.encode_descriptor(self.name, self.help, None, g.metric_type())?)
    }
}

pub(crate) type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// 1 ms to about 33 s, doubling.
fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn histograms<L: Clone + std::hash::Hash + Eq>() -> Histograms<L> {
    Family::new_with_constructor(seconds_histogram as fn() -> Histogram)
}

/// All metrics of the operator.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_errors: Family<ControllerLabels, Counter>,
    terminal_errors: Family<ControllerLabels, Counter>,
    durations: Histograms<ControllerLabels>,
    active: Family<ControllerLabels, Gauge>,
    max_concurrent: Family<ControllerLabels, Gauge>,
    leader: Family<NameLabels, Gauge>,
    pub(crate) requests: Family<RequestLabels, Counter>,
    pub(crate) request_durations: Histograms<VerbLabels>,
    pub(crate) retries: Family<RetryLabels, Counter>,
    pub(crate) client_durations: Histograms<VerbLabels>,
    errors: Family<ErrorLabels, Counter>,
    writes: Family<KindLabels, Counter>,
    admin_calls: Family<AdminCallLabels, Counter>,
    admin_durations: Histograms<AdminEndpointLabels>,
    prometheus_up: Lazy,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered (no collectors yet).
    pub fn new() -> Self {
        let mut m = Self {
            registry: Registry::default(),
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            terminal_errors: Family::default(),
            durations: histograms(),
            active: Family::default(),
            max_concurrent: Family::default(),
            leader: Family::default(),
            requests: Family::default(),
            request_durations: histograms(),
            retries: Family::default(),
            client_durations: histograms(),
            errors: Family::default(),
            writes: Family::default(),
            admin_calls: Family::default(),
            admin_durations: histograms(),
            prometheus_up: Lazy::new(
                "prism_operator_prometheus_up",
                "1 when the last round of traffic queries to Prometheus succeeded (on the replica that runs them)",
            ),
        };
        let r = &mut m.registry;
        r.register(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            m.reconciles.clone(),
        );
        r.register(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            m.reconcile_errors.clone(),
        );
        r.register(
            "controller_runtime_terminal_reconcile_errors",
            "Total number of reconciliation errors that retrying cannot fix, per controller",
            m.terminal_errors.clone(),
        );
        r.register(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            m.durations.clone(),
        );
        r.register(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            m.active.clone(),
        );
        r.register(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller",
            m.max_concurrent.clone(),
        );
        r.register(
            "leader_election_master_status",
            "1 while this replica leads, 0 while it stands by",
            m.leader.clone(),
        );
        r.register(
            "rest_client_requests",
            "Number of HTTP requests to the Kubernetes API, partitioned by status code, method, and host",
            m.requests.clone(),
        );
        r.register(
            "rest_client_request_duration_seconds",
            "Request latency to the Kubernetes API in seconds, by verb and host",
            m.request_durations.clone(),
        );
        r.register(
            "rest_client_request_retries",
            "Requests to the Kubernetes API retried after the server turned them away for load (429, 503, 504), by the code that was retried, verb and host",
            m.retries.clone(),
        );
        r.register(
            "prism_operator_api_client_seconds",
            "Time a request to the Kubernetes API spent in the client to its last answer, retries and the waits between them included, by verb and host",
            m.client_durations.clone(),
        );
        r.register(
            "prism_operator_reconcile_errors",
            "Reconciliations that returned an error, by controller and where the error came from",
            m.errors.clone(),
        );
        r.register(
            "prism_operator_object_writes",
            "Writes to the API server by kind and operation",
            m.writes.clone(),
        );
        r.register(
            "prism_operator_admin_calls",
            "Calls to Prism admin by RPC, endpoint and outcome (ok, or the failure's reason)",
            m.admin_calls.clone(),
        );
        r.register(
            "prism_operator_admin_call_duration_seconds",
            "Time Prism admin took to answer, by RPC and endpoint",
            m.admin_durations.clone(),
        );
        r.register_collector(Box::new(m.prometheus_up.clone()));
        r.register(
            "prism_operator_spans_dropped",
            "Trace spans dropped because the export queue was full or the collector did not take them",
            super::traces::SPANS_DROPPED.clone(),
        );
        m
    }

    /// Declares the controllers, their worker limit and the reasons their errors are counted
    /// under: their series start at zero, so rates and alerts see them before the first
    /// reconcile.
    pub fn controllers(&self, names: &[&str], workers: u16, reasons: &[&str]) {
        for name in names {
            for reason in reasons {
                let _ = self.errors.get_or_create(&ErrorLabels {
                    controller: name.to_string(),
                    reason: reason.to_string(),
                });
            }
            let labels = ControllerLabels {
                controller: name.to_string(),
            };
            for result in ["success", "error"] {
                let _ = self.reconciles.get_or_create(&result_labels(name, result));
            }
            let _ = self.reconcile_errors.get_or_create(&labels);
            let _ = self.terminal_errors.get_or_create(&labels);
            let _ = self.durations.get_or_create(&labels);
            let _ = self.active.get_or_create(&labels);
            self.max_concurrent
                .get_or_create(&labels)
                .set(i64::from(workers));
        }
    }

    /// Adds a collector read at each scrape (process, fleet state).
    pub fn collect(&mut self, collector: impl Collector) {
        self.registry.register_collector(Box::new(collector));
    }

    /// Counts one call to Prism admin.
    pub fn admin_call(&self, rpc: &str, endpoint: &str, outcome: &str, took: Duration) {
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

    /// The exposition of every metric in `format`.
    pub fn encode(&self, format: Format) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("metrics encode");
        match format {
            Format::OpenMetrics => out,
            Format::Text => super::exposition::text_format(&out),
        }
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

    /// Records whether this replica leads, under the Lease's `name`.
    pub fn set_leader(&self, name: &str, leading: bool) {
        self.leader
            .get_or_create(&NameLabels {
                name: name.to_string(),
            })
            .set(i64::from(leading));
    }

    /// Records whether the last round of traffic queries succeeded.
    pub fn prometheus_up(&self, up: bool) {
        self.prometheus_up.set(i64::from(up));
    }
}

fn result_labels(controller: &str, result: &str) -> ResultLabels {
    ResultLabels {
        controller: controller.to_string(),
        result: result.to_string(),
    }
}

/// How a reconciliation failed, for its counters.
#[derive(Debug, Clone, Copy)]
pub struct Failure<'a> {
    /// The `reason` label of `prism_operator_reconcile_errors_total`.
    pub label: &'a str,
    /// Whether retrying without a change cannot help.
    pub terminal: bool,
}

/// Measures one reconciliation; records its result when finished.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    labels: ControllerLabels,
    started: Instant,
}

impl ReconcileTimer<'_> {
    /// Records the outcome: success, or an error counted under its reason.
    pub fn finish(self, outcome: Result<(), Failure<'_>>) {
        let m = self.metrics;
        let controller = &self.labels.controller;
        let result = if outcome.is_ok() { "success" } else { "error" };
        m.reconciles
            .get_or_create(&result_labels(controller, result))
            .inc();
        if let Err(failure) = outcome {
            m.reconcile_errors.get_or_create(&self.labels).inc();
            if failure.terminal {
                m.terminal_errors.get_or_create(&self.labels).inc();
            }
            m.errors
                .get_or_create(&ErrorLabels {
                    controller: controller.clone(),
                    reason: failure.label.to_string(),
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

    fn has(text: &str, line: &str) {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in:\n{text}"
        );
    }

    #[test]
    fn serves_controller_runtime_names_beside_prism_ones() {
        let m = Metrics::new();
        m.controllers(&["prismshard", "prismplugin"], 4, &["admin", "api"]);
        m.start("prismshard").finish(Ok(()));
        let fail = |terminal| Failure {
            label: "admin",
            terminal,
        };
        m.start("prismshard").finish(Err(fail(false)));
        m.start("prismshard").finish(Err(fail(true)));
        m.write("StatefulSet", "apply");
        m.set_leader("prism-operator", true);
        let text = m.encode(Format::Text);
        for line in [
            r#"controller_runtime_reconcile_total{controller="prismshard",result="success"} 1"#,
            r#"controller_runtime_reconcile_total{controller="prismshard",result="error"} 2"#,
            r#"controller_runtime_reconcile_total{controller="prismplugin",result="success"} 0"#,
            r#"controller_runtime_reconcile_errors_total{controller="prismshard"} 2"#,
            r#"controller_runtime_terminal_reconcile_errors_total{controller="prismshard"} 1"#,
            r#"controller_runtime_reconcile_time_seconds_count{controller="prismshard"} 3"#,
            r#"controller_runtime_active_workers{controller="prismshard"} 0"#,
            r#"controller_runtime_max_concurrent_reconciles{controller="prismplugin"} 4"#,
            r#"prism_operator_reconcile_errors_total{controller="prismshard",reason="admin"} 2"#,
            r#"prism_operator_reconcile_errors_total{controller="prismplugin",reason="api"} 0"#,
            r#"prism_operator_object_writes_total{kind="StatefulSet",operation="apply"} 1"#,
            r#"leader_election_master_status{name="prism-operator"} 1"#,
        ] {
            has(&text, line);
        }
    }

    #[test]
    fn prometheus_up_exists_only_once_set() {
        let m = Metrics::new();
        assert!(
            !m.encode(Format::Text)
                .contains("\nprism_operator_prometheus_up")
        );
        m.prometheus_up(false);
        has(&m.encode(Format::Text), "prism_operator_prometheus_up 0");
    }
}
