//! One round of queries: the figures of every namespace and shard, by Kubernetes namespace and
//! name.

use std::collections::HashMap;

use super::prometheus::{Prometheus, QueryError, Sample};
use super::queries::Queries;

/// What one round found for a namespace. Figures absent from the answers are `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NamespaceTraffic {
    /// Requests per second.
    pub rps: Option<f64>,
    /// p99 latency in seconds.
    pub p99: Option<f64>,
    /// Error ratio.
    pub errors: Option<f64>,
}

/// What one round found for a shard.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ShardTraffic {
    /// Requests per second.
    pub rps: Option<f64>,
    /// Mean of the replicas' p99 latencies, in seconds.
    pub avg_p99: Option<f64>,
}

/// One round: figures by (Kubernetes namespace, name).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Round {
    /// By PrismNamespace.
    pub namespaces: HashMap<(String, String), NamespaceTraffic>,
    /// By shard.
    pub shards: HashMap<(String, String), ShardTraffic>,
}

/// Finite values of `samples` by (`namespace`, `by`) label.
fn by_key(samples: Vec<Sample>, by: &str) -> impl Iterator<Item = ((String, String), f64)> {
    samples.into_iter().filter_map(move |s| {
        let ns = s.labels.get("namespace")?.clone();
        let name = s.labels.get(by)?.clone();
        s.value.is_finite().then_some(((ns, name), s.value))
    })
}

/// Runs the five queries of one round.
pub async fn query_round(prometheus: &Prometheus, q: &Queries) -> Result<Round, QueryError> {
    let (rps, p99, errors, shard_rps, shard_p99) = futures::try_join!(
        prometheus.query(&q.namespace_rps),
        prometheus.query(&q.namespace_p99),
        prometheus.query(&q.namespace_error_ratio),
        prometheus.query(&q.shard_rps),
        prometheus.query(&q.shard_avg_p99),
    )?;
    let mut round = Round::default();
    for (key, v) in by_key(rps, "prism_namespace") {
        round.namespaces.entry(key).or_default().rps = Some(v);
    }
    for (key, v) in by_key(p99, "prism_namespace") {
        round.namespaces.entry(key).or_default().p99 = Some(v);
    }
    for (key, v) in by_key(errors, "prism_namespace") {
        round.namespaces.entry(key).or_default().errors = Some(v);
    }
    for (key, v) in by_key(shard_rps, "shard") {
        round.shards.entry(key).or_default().rps = Some(v);
    }
    for (key, v) in by_key(shard_p99, "shard") {
        round.shards.entry(key).or_default().avg_p99 = Some(v);
    }
    Ok(round)
}
