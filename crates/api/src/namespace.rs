//! `PrismNamespace`: a named data API (keyvalue, pubsub, …) served by one shard.

// `printcolumn(...)` repeats `type_ = ...` once per column, which clippy misreads as duplicates.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use schemars::{Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use super::{Health, ValueSource};

/// Desired state of a Prism namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "prism.io",
    version = "v1beta1",
    kind = "PrismNamespace",
    namespaced,
    doc = "A named Prism data API (keyvalue, pubsub, queue …) placed on one shard and synced to the Prism control plane.",
    status = "PrismNamespaceStatus",
    shortname = "pns",
    category = "prism",
    cel,
    printcolumn(name = "Backend", type_ = "string", json_path = ".spec.backend"),
    printcolumn(name = "Pattern", type_ = "string", json_path = ".spec.pattern"),
    printcolumn(name = "Shard", type_ = "string", json_path = ".status.shard"),
    printcolumn(
        name = "State",
        type_ = "string",
        description = "Active: Prism admin accepted the namespace and placed it on a proxy of its shard (not proof that the proxy serves it)",
        json_path = ".status.state"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "RPS", type_ = "integer", json_path = ".status.metrics.rps"),
    printcolumn(
        name = "P99",
        type_ = "string",
        json_path = ".status.metrics.p99Latency"
    ),
    printcolumn(name = "Health", type_ = "string", json_path = ".status.health"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new(
    "!has(self.connectionStringFrom) || !has(self.backendConfig) || !('connection_string' in self.backendConfig)"
).message("set the connection string in backendConfig.connection_string or in connectionStringFrom, not both").field_path(".connectionStringFrom"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrismNamespaceSpec {
    /// Backend serving the data, e.g. `postgres`, `redis`, `kafka`.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-_a-z0-9]*[a-z0-9])?$")
    )]
    pub backend: String,
    /// Data access pattern the namespace offers.
    pub pattern: AccessPattern,
    /// Consistency level (default `eventual`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<Consistency>,
    /// Backend settings such as `pool_size`: strings or integers (quote booleans and decimals).
    /// Credentials belong in `connectionStringFrom`, not here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "backend_config_schema")]
    pub backend_config: BTreeMap<String, serde_json::Value>,
    /// Connection string taken from a Secret at sync time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string_from: Option<ValueSource>,
    /// Response caching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caching: Option<Caching>,
    /// Request rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Which shard may host the namespace; every given field must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardSelector>,
    /// Authentication of clients of this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<NamespaceAuth>,
    /// What happens in Prism when this resource is deleted (default `retain`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reclaim_policy: Option<ReclaimPolicy>,
}

fn backend_config_schema(_: &mut SchemaGenerator) -> Schema {
    serde_json::from_value(serde_json::json!({
        "type": "object",
        "maxProperties": 64,
        "additionalProperties": { "x-kubernetes-int-or-string": true }
    }))
    .expect("static schema")
}

/// Data access patterns Prism serves.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessPattern {
    /// Key-value store.
    Keyvalue,
    /// Publish/subscribe.
    Pubsub,
    /// Work queue.
    Queue,
    /// Ordered stream.
    Stream,
    /// Per-recipient mailbox.
    Mailbox,
    /// Registry with multicast.
    MulticastRegistry,
    /// Producer of messages.
    Producer,
    /// Consumer of messages.
    Consumer,
}

/// Consistency levels.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// Linearizable reads and writes.
    Strong,
    /// Eventually consistent.
    Eventual,
    /// Causally consistent.
    Causal,
    /// Reads lag writes by a bounded time.
    BoundedStaleness,
}

/// Response caching.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("!self.enabled || has(self.ttl)").message("caching.ttl is required when caching is enabled"))]
pub struct Caching {
    /// Whether responses are cached.
    #[serde(default)]
    pub enabled: bool,
    /// How long an entry lives, e.g. `300s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub ttl: Option<String>,
}

/// Request rate limit.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// Requests per second.
    #[schemars(range(min = 1, max = 10_000_000))]
    pub rps: i64,
    /// Burst above the rate (default: equal to rps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000_000))]
    pub burst: Option<i64>,
}

/// Fields a shard must have to host the namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShardSelector {
    /// Exact shard name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: Option<String>,
    /// Shard product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub product: Option<String>,
    /// Shard feature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub feature: Option<String>,
    /// Shard SLA tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub sla_tier: Option<String>,
}

/// Client authentication for a namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceAuth {
    /// Whether clients must authenticate.
    #[serde(default)]
    pub enabled: bool,
    /// `oidc`, `jwt` or `mtls`.
    pub provider: AuthProvider,
    /// Provider settings, e.g. the issuer URL.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// Authentication providers Prism supports.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthProvider {
    /// OpenID Connect.
    Oidc,
    /// Signed JSON web tokens.
    Jwt,
    /// Mutual TLS.
    Mtls,
}

/// What deleting a PrismNamespace does in Prism.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReclaimPolicy {
    /// Leave the namespace in Prism; only the custom resource goes.
    #[default]
    Retain,
    /// Revoke the namespace in Prism before the resource goes.
    Delete,
}

/// Observed state of a Prism namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrismNamespaceStatus {
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Pending`, `Active`, `Failed` or `Terminating`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<NamespaceState>,
    /// Shard the namespace is placed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// From traffic (with `--prometheus-url`): `Healthy`, `Degraded` (p99 above the shard's
    /// SLA tier, or too many errors) or `Unknown` (no data). Also the `Healthy` condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Traffic figures from Prometheus, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<NamespaceMetrics>,
    /// Partition (0–255) Prism admin assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_partition: Option<i32>,
    /// Proxy Prism admin assigned the namespace to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_proxy: Option<String>,
    /// The admin endpoint that accepted the last write (the leader, for an HA admin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_endpoint: Option<String>,
    /// Ready, Progressing, Degraded and ReconciliationPaused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// Where a namespace stands in Prism.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum NamespaceState {
    /// Not synced yet: no shard fits, or Prism admin can be retried.
    Pending,
    /// Synced to Prism admin.
    Active,
    /// Prism admin refused it in a way retrying will not fix.
    Failed,
    /// Being revoked in Prism before the resource goes.
    Terminating,
}

impl NamespaceState {
    /// The serialized name, e.g. `Active`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Active => "Active",
            Self::Failed => "Failed",
            Self::Terminating => "Terminating",
        }
    }
}

/// Traffic figures of a namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceMetrics {
    /// Requests per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rps: Option<i64>,
    /// p99 latency, e.g. `8ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_latency: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_serialize_as_their_names() {
        for state in [
            NamespaceState::Pending,
            NamespaceState::Active,
            NamespaceState::Failed,
            NamespaceState::Terminating,
        ] {
            let json = serde_json::to_value(state).unwrap();
            assert_eq!(json, state.as_str());
            assert_eq!(
                serde_json::from_value::<NamespaceState>(json).unwrap(),
                state
            );
        }
    }
}
