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

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use kube::{Resource, ResourceExt};
use serde::Deserialize;
use serde_json::json;

use super::context::Ctx;
use super::error::Error;
use super::prometheus::{Prometheus, QueryError, Sample};
use prism_api::{AggregateMetrics, NamespaceMetrics, PrismNamespace, PrismShard};
use prism_render::render::contract::{LATENCY_SERIES, REQUESTS_SERIES};

/// Field manager of the traffic figures (apart from the reconcilers' status).
pub const FIELD_MANAGER: &str = "prism-operator-traffic";
/// Condition type of a namespace's health.
pub const HEALTHY: &str = "Healthy";
/// Condition type of a shard: whether Prometheus answers.
pub const METRICS_AVAILABLE: &str = "MetricsAvailable";

/// The PromQL of one round. Every query returns an instant vector labelled `namespace` (the
/// Kubernetes namespace) and `prism_namespace` (the PrismNamespace) or `shard`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Queries {
    /// Requests per second of each namespace.
    #[serde(rename = "namespaceRPS", default = "default_namespace_rps")]
    pub namespace_rps: String,
    /// p99 latency of each namespace, in seconds.
    #[serde(default = "default_namespace_p99")]
    pub namespace_p99: String,
    /// Share (0–1) of each namespace's requests that failed.
    #[serde(default = "default_namespace_error_ratio")]
    pub namespace_error_ratio: String,
    /// Requests per second of each shard.
    #[serde(rename = "shardRPS", default = "default_shard_rps")]
    pub shard_rps: String,
    /// Mean over each shard's replicas of the replica's p99 latency, in seconds.
    #[serde(default = "default_shard_avg_p99")]
    pub shard_avg_p99: String,
}

/// Proxy pods: `prism-<shard>-<ordinal>`.
const PROXY_PODS: &str = r#"pod=~"prism-.+-[0-9]+""#;
/// Adds the `shard` label from the pod name.
fn with_shard(expr: &str) -> String {
    format!(r#"label_replace({expr}, "shard", "$1", "pod", "prism-(.+)-[0-9]+")"#)
}

fn default_namespace_rps() -> String {
    format!("sum by (namespace, prism_namespace) (rate({REQUESTS_SERIES}{{{PROXY_PODS}}}[2m]))")
}

fn default_namespace_p99() -> String {
    format!(
        "histogram_quantile(0.99, sum by (namespace, prism_namespace, le) (rate({LATENCY_SERIES}_bucket{{{PROXY_PODS}}}[2m])))"
    )
}

fn default_namespace_error_ratio() -> String {
    format!(
        r#"sum by (namespace, prism_namespace) (rate({REQUESTS_SERIES}{{{PROXY_PODS}, code!="OK"}}[2m])) / sum by (namespace, prism_namespace) (rate({REQUESTS_SERIES}{{{PROXY_PODS}}}[2m]))"#
    )
}

fn default_shard_rps() -> String {
    format!(
        "sum by (namespace, shard) ({})",
        with_shard(&format!("rate({REQUESTS_SERIES}{{{PROXY_PODS}}}[2m])"))
    )
}

fn default_shard_avg_p99() -> String {
    format!(
        "avg by (namespace, shard) ({})",
        with_shard(&format!(
            "histogram_quantile(0.99, sum by (namespace, pod, le) (rate({LATENCY_SERIES}_bucket{{{PROXY_PODS}}}[2m])))"
        ))
    )
}

impl Default for Queries {
    fn default() -> Self {
        Self {
            namespace_rps: default_namespace_rps(),
            namespace_p99: default_namespace_p99(),
            namespace_error_ratio: default_namespace_error_ratio(),
            shard_rps: default_shard_rps(),
            shard_avg_p99: default_shard_avg_p99(),
        }
    }
}

impl Queries {
    /// The same queries over `window` (e.g. `10s`) instead of the defaults' two minutes.
    pub fn with_window(&self, window: &str) -> Self {
        let w = |q: &String| q.replace("[2m]", &format!("[{window}]"));
        Self {
            namespace_rps: w(&self.namespace_rps),
            namespace_p99: w(&self.namespace_p99),
            namespace_error_ratio: w(&self.namespace_error_ratio),
            shard_rps: w(&self.shard_rps),
            shard_avg_p99: w(&self.shard_avg_p99),
        }
    }

    /// The queries as the YAML `--prometheus-queries` reads.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("queries serialize")
    }

    /// Reads queries from a YAML file (keys as in [`Queries`]); missing keys keep their default.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Settings of the traffic figures.
#[derive(Debug, Clone)]
pub struct TrafficSettings {
    /// The queries.
    pub queries: Queries,
    /// Time between rounds.
    pub interval: Duration,
    /// Relative change (0.1 = 10 %) a figure must exceed to be written.
    pub threshold: f64,
    /// Error ratio above which a namespace is Degraded.
    pub max_error_ratio: f64,
}

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

/// The p99 latency an SLA tier promises, in seconds: `p99_10ms` → 0.010, `p99_2s` → 2.
pub fn sla_seconds(tier: &str) -> Option<f64> {
    let limit = tier.strip_prefix("p99_")?;
    let (number, scale) = match limit.strip_suffix("ms") {
        Some(n) => (n, 1e-3),
        None => (limit.strip_suffix('s')?, 1.0),
    };
    number.parse::<u32>().ok().map(|n| f64::from(n) * scale)
}

/// A latency as status shows it: milliseconds with at most one decimal, e.g. `9.9ms`, `250ms`.
pub fn latency(seconds: f64) -> String {
    let ms = (seconds * 10_000.0).round() / 10.0;
    if ms.fract() == 0.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{ms:.1}ms")
    }
}

/// Parses what [`latency`] wrote back into seconds.
fn parse_latency(text: &str) -> Option<f64> {
    text.strip_suffix("ms")?
        .parse::<f64>()
        .ok()
        .map(|ms| ms / 1000.0)
}

/// Health of a namespace and its `Healthy` condition (status, reason, message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// `Healthy`, `Degraded` or `Unknown`.
    pub health: &'static str,
    /// Condition status: `True`, `False` or `Unknown`.
    pub status: &'static str,
    /// CamelCase reason.
    pub reason: &'static str,
    /// Human message.
    pub message: String,
}

/// What a namespace's status says about its traffic: figures (none without data) and health.
/// `sla` is its shard's p99 promise in seconds; `max_errors` the tolerated error ratio.
pub fn namespace_view(
    t: Option<&NamespaceTraffic>,
    sla: Option<f64>,
    max_errors: f64,
) -> (Option<NamespaceMetrics>, Health) {
    let Some(t) = t.filter(|t| t.rps.is_some()) else {
        let health = Health {
            health: "Unknown",
            status: "Unknown",
            reason: "NoTrafficData",
            message: "Prometheus has no request series for this namespace".into(),
        };
        return (None, health);
    };
    let metrics = NamespaceMetrics {
        rps: t.rps.map(|r| r.round() as i64),
        p99_latency: t.p99.map(latency),
    };
    let slow = t.p99.zip(sla).filter(|(p99, sla)| p99 > sla);
    let failing = t.errors.filter(|e| *e > max_errors);
    let health = match (slow, failing) {
        (Some((p99, sla)), _) => Health {
            health: "Degraded",
            status: "False",
            reason: "LatencyAboveSLA",
            message: format!(
                "p99 latency {} is above the {} its shard's SLA tier allows",
                latency(p99),
                latency(sla)
            ),
        },
        (None, Some(e)) => Health {
            health: "Degraded",
            status: "False",
            reason: "ErrorRatioAboveThreshold",
            message: format!(
                "{:.1} % of requests fail (more than {:.1} %)",
                e * 100.0,
                max_errors * 100.0
            ),
        },
        (None, None) => Health {
            health: "Healthy",
            status: "True",
            reason: "WithinSLA",
            message: match (t.p99, sla) {
                (Some(p99), Some(sla)) => format!(
                    "p99 latency {} within {}, errors within {:.1} %",
                    latency(p99),
                    latency(sla),
                    max_errors * 100.0
                ),
                _ => format!("errors within {:.1} %", max_errors * 100.0),
            },
        },
    };
    (Some(metrics), health)
}

/// Whether a figure changed enough to be written: it appeared, went, or moved by more than
/// `threshold` relative to the value written.
pub fn moved(written: Option<f64>, now: Option<f64>, threshold: f64) -> bool {
    match (written, now) {
        (None, None) => false,
        (Some(old), Some(new)) => {
            let base = old.abs().max(f64::EPSILON);
            (new - old).abs() / base > threshold
        }
        _ => true,
    }
}

fn rps_of(m: Option<&NamespaceMetrics>) -> Option<f64> {
    m.and_then(|m| m.rps).map(|r| r as f64)
}

fn p99_of(m: Option<&NamespaceMetrics>) -> Option<f64> {
    m.and_then(|m| m.p99_latency.as_deref())
        .and_then(parse_latency)
}

/// Whether the namespace's status must be written for `view`.
pub fn namespace_needs_write(
    ns: &PrismNamespace,
    metrics: Option<&NamespaceMetrics>,
    health: &Health,
    threshold: f64,
) -> bool {
    let status = ns.status.as_ref();
    let old = status.and_then(|s| s.metrics.as_ref());
    let cond = status.and_then(|s| s.conditions.iter().find(|c| c.type_ == HEALTHY));
    status.and_then(|s| s.health.as_deref()) != Some(health.health)
        || cond.is_none_or(|c| c.reason != health.reason)
        || moved(rps_of(old), rps_of(metrics), threshold)
        || moved(p99_of(old), p99_of(metrics), threshold)
}

/// A condition with its transition time kept when its status did not change.
fn condition(
    old: &[Condition],
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let kept = old
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone());
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: kept.unwrap_or(Time(now)),
    }
}

/// Runs rounds until the task is dropped.
pub async fn run(ctx: Arc<Ctx>, prometheus: Prometheus, settings: TrafficSettings) {
    let mut backoff = Duration::from_secs(5);
    loop {
        let wait = match query_round(&prometheus, &settings.queries).await {
            Ok(round) => {
                ctx.metrics.prometheus_up(true);
                backoff = Duration::from_secs(5);
                write_round(&ctx, &round, &settings).await;
                settings.interval
            }
            Err(e) => {
                ctx.metrics.prometheus_up(false);
                tracing::warn!(error = %e, "traffic figures: Prometheus query failed");
                shards_unavailable(&ctx, &e.to_string()).await;
                let wait = backoff.min(settings.interval);
                backoff = (backoff * 2).min(settings.interval);
                wait
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// Writes what changed enough, a few objects at a time.
async fn write_round(ctx: &Ctx, round: &Round, settings: &TrafficSettings) {
    let now = Timestamp::now();
    let shards: BTreeMap<(String, String), Arc<PrismShard>> = ctx
        .shards
        .state()
        .into_iter()
        .map(|s| ((s.namespace().unwrap_or_default(), s.name_any()), s))
        .collect();
    let mut namespace_writes = Vec::new();
    for ns in ctx.namespaces.state() {
        let key = (ns.namespace().unwrap_or_default(), ns.name_any());
        let shard = ns.status.as_ref().and_then(|s| s.shard.clone());
        let sla = shard
            .and_then(|s| shards.get(&(key.0.clone(), s)))
            .and_then(|s| s.spec.sla_tier.as_deref().and_then(sla_seconds));
        let (metrics, health) =
            namespace_view(round.namespaces.get(&key), sla, settings.max_error_ratio);
        if namespace_needs_write(&ns, metrics.as_ref(), &health, settings.threshold) {
            tracing::debug!(
                namespace = %key.0, name = %key.1,
                written = ?ns.status.as_ref().and_then(|s| s.metrics.as_ref()),
                now = ?metrics, health = health.health,
                "traffic figures moved"
            );
            namespace_writes.push((ns, metrics, health));
        }
    }
    futures::stream::iter(namespace_writes)
        .map(|(ns, metrics, health)| write_namespace(ctx, ns, metrics, health, now))
        .buffer_unordered(8)
        .for_each(|()| futures::future::ready(()))
        .await;
    let mut shard_writes = Vec::new();
    for (key, shard) in shards {
        let t = round.shards.get(&key).copied().unwrap_or_default();
        let aggregate = (t.rps.is_some() || t.avg_p99.is_some()).then(|| AggregateMetrics {
            total_rps: t.rps.map(|r| r.round() as i64),
            avg_p99_latency: t.avg_p99.map(latency),
        });
        if shard_needs_write(&shard, aggregate.as_ref(), true, settings.threshold) {
            shard_writes.push((shard, aggregate));
        }
    }
    futures::stream::iter(shard_writes)
        .map(|(shard, aggregate)| {
            let message = "Prometheus answered the last round of traffic queries".to_string();
            write_shard(ctx, shard, Some(aggregate), true, message, now)
        })
        .buffer_unordered(8)
        .for_each(|()| futures::future::ready(()))
        .await;
}

/// Marks every shard's `MetricsAvailable` false (figures are kept).
async fn shards_unavailable(ctx: &Ctx, why: &str) {
    let now = Timestamp::now();
    for shard in ctx.shards.state() {
        let cond = shard
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == METRICS_AVAILABLE));
        if cond.is_some_and(|c| c.status == "False" && c.message == why) {
            continue;
        }
        write_shard(ctx, shard, None, false, why.to_string(), now).await;
    }
}

/// Whether a shard's aggregate figures or its `MetricsAvailable` must be written.
pub fn shard_needs_write(
    shard: &PrismShard,
    aggregate: Option<&AggregateMetrics>,
    available: bool,
    threshold: f64,
) -> bool {
    let status = shard.status.as_ref();
    let old = status.and_then(|s| s.aggregate_metrics.as_ref());
    let cond = status.and_then(|s| s.conditions.iter().find(|c| c.type_ == METRICS_AVAILABLE));
    let total = |m: Option<&AggregateMetrics>| m.and_then(|m| m.total_rps).map(|r| r as f64);
    let p99 = |m: Option<&AggregateMetrics>| {
        m.and_then(|m| m.avg_p99_latency.as_deref())
            .and_then(parse_latency)
    };
    cond.is_none_or(|c| (c.status == "True") != available)
        || moved(total(old), total(aggregate), threshold)
        || moved(p99(old), p99(aggregate), threshold)
}

async fn write_namespace(
    ctx: &Ctx,
    ns: Arc<PrismNamespace>,
    metrics: Option<NamespaceMetrics>,
    health: Health,
    now: Timestamp,
) {
    let old = ns
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let cond = condition(
        old,
        HEALTHY,
        health.status,
        health.reason,
        &health.message,
        ns.meta().generation,
        now,
    );
    let status = json!({"metrics": metrics, "health": health.health, "conditions": [cond]});
    apply_status(ctx, &*ns, &status).await;
}

async fn write_shard(
    ctx: &Ctx,
    shard: Arc<PrismShard>,
    aggregate: Option<Option<AggregateMetrics>>,
    available: bool,
    message: String,
    now: Timestamp,
) {
    let old = shard
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let (status, reason) = match available {
        true => ("True", "PrometheusAnswers"),
        false => ("False", "PrometheusUnavailable"),
    };
    let cond = condition(
        old,
        METRICS_AVAILABLE,
        status,
        reason,
        &message,
        shard.meta().generation,
        now,
    );
    let mut status = json!({"conditions": [cond]});
    match aggregate {
        // Not asked: keep what this manager wrote (SSA keeps fields it is sent again).
        None => {
            if let Some(m) = shard
                .status
                .as_ref()
                .and_then(|s| s.aggregate_metrics.clone())
            {
                status["aggregateMetrics"] = json!(m);
            }
        }
        Some(m) => status["aggregateMetrics"] = json!(m),
    }
    apply_status(ctx, &*shard, &status).await;
}

/// Writes `status` of `obj` as this manager; an object gone meanwhile is no error.
async fn apply_status<K>(ctx: &Ctx, obj: &K, status: &serde_json::Value)
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match ctx
        .patch_status_as(obj, status, FIELD_MANAGER, "traffic")
        .await
    {
        Ok(()) => {}
        Err(Error::Kube(kube::Error::Api(e))) if e.code == 404 => {}
        Err(e) => {
            let (kind, name) = (K::kind(&()), obj.name_any());
            tracing::warn!(error = %e, %kind, %name, "writing traffic figures failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sla_tiers_and_latencies() {
        assert_eq!(sla_seconds("p99_10ms"), Some(0.010));
        assert_eq!(sla_seconds("p99_2s"), Some(2.0));
        assert_eq!(sla_seconds("gold"), None);
        assert_eq!(sla_seconds("p99_fast"), None);
        assert_eq!(latency(0.00995), "10ms");
        assert_eq!(latency(0.00912), "9.1ms");
        assert_eq!(latency(0.25), "250ms");
        assert_eq!(parse_latency("9.1ms"), Some(0.0091));
    }

    #[test]
    fn health_follows_the_sla_and_the_error_ratio() {
        let t = |rps, p99, errors| NamespaceTraffic {
            rps: Some(rps),
            p99: Some(p99),
            errors: Some(errors),
        };
        let (m, h) = namespace_view(Some(&t(100.4, 0.008, 0.0)), Some(0.010), 0.01);
        assert_eq!(
            m,
            Some(NamespaceMetrics {
                rps: Some(100),
                p99_latency: Some("8ms".into())
            })
        );
        assert_eq!(
            (h.health, h.status, h.reason),
            ("Healthy", "True", "WithinSLA")
        );
        let (_, h) = namespace_view(Some(&t(100.0, 0.012, 0.0)), Some(0.010), 0.01);
        assert_eq!((h.health, h.reason), ("Degraded", "LatencyAboveSLA"));
        assert_eq!(
            h.message,
            "p99 latency 12ms is above the 10ms its shard's SLA tier allows"
        );
        let (_, h) = namespace_view(Some(&t(100.0, 0.008, 0.05)), Some(0.010), 0.01);
        assert_eq!(
            (h.health, h.reason),
            ("Degraded", "ErrorRatioAboveThreshold")
        );
        let (_, h) = namespace_view(Some(&t(100.0, 0.5, 0.0)), None, 0.01);
        assert_eq!(h.health, "Healthy", "no SLA tier: latency is not judged");
        let (m, h) = namespace_view(None, Some(0.01), 0.01);
        assert_eq!((m, h.health, h.status), (None, "Unknown", "Unknown"));
    }

    #[test]
    fn only_real_moves_are_written() {
        assert!(!moved(Some(100.0), Some(109.0), 0.1));
        assert!(moved(Some(100.0), Some(111.0), 0.1));
        assert!(moved(Some(100.0), Some(89.0), 0.1));
        assert!(moved(None, Some(1.0), 0.1));
        assert!(moved(Some(1.0), None, 0.1));
        assert!(!moved(None, None, 0.1));
        assert!(moved(Some(0.0), Some(1.0), 0.1));
        assert!(!moved(Some(0.0), Some(0.0), 0.1));
    }

    #[test]
    fn default_queries_group_by_what_status_needs() {
        let q = Queries::default();
        for (query, by) in [
            (&q.namespace_rps, "prism_namespace"),
            (&q.namespace_p99, "prism_namespace"),
            (&q.namespace_error_ratio, "prism_namespace"),
            (&q.shard_rps, "shard"),
            (&q.shard_avg_p99, "shard"),
        ] {
            assert!(query.contains(&format!("by (namespace, {by}")), "{query}");
        }
        assert!(q.namespace_rps.contains("prism_requests_total"));
        let short = q.with_window("10s");
        assert!(short.shard_avg_p99.contains("[10s]") && !short.shard_avg_p99.contains("[2m]"));
        assert_eq!(
            serde_yaml::from_str::<Queries>(&short.to_yaml()).unwrap(),
            short
        );
        assert!(
            q.namespace_p99
                .contains("prism_request_duration_seconds_bucket")
        );
    }
}
