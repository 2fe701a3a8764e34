//! prometheus-operator's `PodMonitor` (`monitoring.coreos.com/v1`) as far as templates may
//! render it, checked like every other kind (unknown fields rejected).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};

/// Name of the CustomResourceDefinition serving PodMonitor.
pub const PODMONITOR_CRD: &str = "podmonitors.monitoring.coreos.com";

/// A PodMonitor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodMonitor {
    /// `monitoring.coreos.com/v1`.
    pub api_version: String,
    /// `PodMonitor`.
    pub kind: String,
    /// Object metadata.
    pub metadata: ObjectMeta,
    /// Which pods, and how to scrape them.
    pub spec: PodMonitorSpec,
}

/// The spec of a PodMonitor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodMonitorSpec {
    /// The pods.
    pub selector: LabelSelector,
    /// Their endpoints.
    pub pod_metrics_endpoints: Vec<Endpoint>,
    /// Namespaces to look in (the PodMonitor's own when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<BTreeMap<String, serde_json::Value>>,
}

/// One scraped endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endpoint {
    /// Container port name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// HTTP path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Scrape interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Scrape timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_timeout: Option<String>,
}
