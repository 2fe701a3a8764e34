//! What the figures say: a namespace's health against its shard's SLA tier and the error
//! budget, and whether a figure moved enough to be written. Pure.

use super::round::NamespaceTraffic;
use crate::kit::outcome::Truth;
use prism_api::{
    AggregateMetrics, Health as State, NamespaceMetrics, PrismNamespace, PrismShard, condition,
    reason,
};

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
pub fn parse_latency(text: &str) -> Option<f64> {
    text.strip_suffix("ms")?
        .parse::<f64>()
        .ok()
        .map(|ms| ms / 1000.0)
}

/// Health of a namespace and its `Healthy` condition (status, reason, message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// `status.health`.
    pub health: State,
    /// Status of the `Healthy` condition.
    pub status: Truth,
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
            health: State::Unknown,
            status: Truth::Unknown,
            reason: reason::NO_TRAFFIC_DATA,
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
            health: State::Degraded,
            status: Truth::False,
            reason: reason::LATENCY_ABOVE_SLA,
            message: format!(
                "p99 latency {} is above the {} its shard's SLA tier allows",
                latency(p99),
                latency(sla)
            ),
        },
        (None, Some(e)) => Health {
            health: State::Degraded,
            status: Truth::False,
            reason: reason::ERROR_RATIO_ABOVE_THRESHOLD,
            message: format!(
                "{:.1} % of requests fail (more than {:.1} %)",
                e * 100.0,
                max_errors * 100.0
            ),
        },
        (None, None) => Health {
            health: State::Healthy,
            status: Truth::True,
            reason: reason::WITHIN_SLA,
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
    let cond = status.and_then(|s| s.conditions.iter().find(|c| c.type_ == condition::HEALTHY));
    status.and_then(|s| s.health) != Some(health.health)
        || cond.is_none_or(|c| c.reason != health.reason)
        || moved(rps_of(old), rps_of(metrics), threshold)
        || moved(p99_of(old), p99_of(metrics), threshold)
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
    let cond = status.and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == condition::METRICS_AVAILABLE)
    });
    let total = |m: Option<&AggregateMetrics>| m.and_then(|m| m.total_rps).map(|r| r as f64);
    let p99 = |m: Option<&AggregateMetrics>| {
        m.and_then(|m| m.avg_p99_latency.as_deref())
            .and_then(parse_latency)
    };
    cond.is_none_or(|c| (c.status == "True") != available)
        || moved(total(old), total(aggregate), threshold)
        || moved(p99(old), p99(aggregate), threshold)
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
            (State::Healthy, Truth::True, "WithinSLA")
        );
        let (_, h) = namespace_view(Some(&t(100.0, 0.012, 0.0)), Some(0.010), 0.01);
        assert_eq!((h.health, h.reason), (State::Degraded, "LatencyAboveSLA"));
        assert_eq!(
            h.message,
            "p99 latency 12ms is above the 10ms its shard's SLA tier allows"
        );
        let (_, h) = namespace_view(Some(&t(100.0, 0.008, 0.05)), Some(0.010), 0.01);
        assert_eq!(
            (h.health, h.reason),
            (State::Degraded, "ErrorRatioAboveThreshold")
        );
        let (_, h) = namespace_view(Some(&t(100.0, 0.5, 0.0)), None, 0.01);
        assert_eq!(
            h.health,
            State::Healthy,
            "no SLA tier: latency is not judged"
        );
        let (m, h) = namespace_view(None, Some(0.01), 0.01);
        assert_eq!(
            (m, h.health, h.status),
            (None, State::Unknown, Truth::Unknown)
        );
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
}
