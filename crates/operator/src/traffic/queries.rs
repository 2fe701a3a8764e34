//! The PromQL of one round of traffic figures, and the settings of the rounds.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use prism_render::render::contract::{
    EXPORTED_NAMESPACE_LABEL, FAILED_STATUS, LATENCY_SERIES, REQUESTS_SERIES,
};

/// The PromQL of one round. Every query returns an instant vector labelled `namespace` (the
/// Kubernetes namespace) and `prism_namespace` (the PrismNamespace) or `shard`.
///
/// The defaults read the series as upstream's design labels them (ADR-008): the proxy names the
/// PrismNamespace `namespace`, which the scrape renames `exported_namespace`, and marks failures
/// `status="error"`. A series that carries `prism_namespace` itself keeps it.
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
/// Copies the PrismNamespace from `exported_namespace` to `prism_namespace`.
fn with_prism_namespace(expr: &str) -> String {
    format!(
        r#"label_replace({expr}, "prism_namespace", "$1", "{EXPORTED_NAMESPACE_LABEL}", "(.+)")"#
    )
}

/// Adds the `shard` label from the pod name.
fn with_shard(expr: &str) -> String {
    format!(r#"label_replace({expr}, "shard", "$1", "pod", "prism-(.+)-[0-9]+")"#)
}

/// Requests per second of each PrismNamespace, `matching` extra selectors.
fn namespace_rate(matching: &str) -> String {
    format!(
        "sum by (namespace, prism_namespace) ({})",
        with_prism_namespace(&format!(
            "rate({REQUESTS_SERIES}{{{PROXY_PODS}{matching}}}[2m])"
        ))
    )
}

fn default_namespace_rps() -> String {
    namespace_rate("")
}

fn default_namespace_p99() -> String {
    format!(
        "histogram_quantile(0.99, sum by (namespace, prism_namespace, le) ({}))",
        with_prism_namespace(&format!(
            "rate({LATENCY_SERIES}_bucket{{{PROXY_PODS}}}[2m])"
        ))
    )
}

fn default_namespace_error_ratio() -> String {
    format!(
        "{} / {}",
        namespace_rate(&format!(r#", status="{FAILED_STATUS}""#)),
        namespace_rate("")
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

#[cfg(test)]
mod tests {
    use super::*;

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
        for query in [&q.namespace_rps, &q.namespace_p99, &q.namespace_error_ratio] {
            assert!(query.contains(r#""prism_namespace", "$1", "exported_namespace""#));
        }
        assert!(q.namespace_error_ratio.contains(r#"status="error""#));
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
