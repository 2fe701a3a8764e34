//! Traffic and health in status, from Prometheus.
//!
//! Every `--metrics-interval` one round of fleet-wide queries (five, whatever the number of
//! namespaces) gives each PrismNamespace its requests per second, p99 latency and error ratio,
//! and each shard its total and the mean of its replicas' p99. A status is written only when a
//! figure moved by more than the relative threshold, appeared or went, or health changed, so
//! steady traffic costs no writes. Health is its own field and `Healthy` condition; traffic
//! never touches `Ready`. When Prometheus does not answer, shards say so in `MetricsAvailable`,
//! namespaces keep their last figures, and the next round comes sooner (backoff up to the
//! interval). This runs beside the controllers: no reconcile waits on Prometheus.

mod health;
pub mod prometheus;
mod queries;
mod round;
mod writer;

pub use health::{Health, latency, moved, namespace_view, sla_seconds};
pub use queries::{Queries, TrafficSettings};
pub use round::{NamespaceTraffic, Round, ShardTraffic, query_round};
pub use writer::{FIELD_MANAGER, run};
