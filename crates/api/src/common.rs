//! Schema pieces shared by the Prism resources: conditions, secret references, name rules.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

/// A DNS-1123 label: lower-case alphanumerics and `-`, starting and ending alphanumeric.
pub const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A semantic version (semver.org 2.0), without a leading `v`.
pub const SEMVER: &str =
    r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$";
/// A Cargo-style version requirement: `1.2.0` means `^1.2.0`; operators and lists are allowed.
pub const SEMVER_REQ: &str = r"^[\^~=<>*0-9A-Za-z., +-]+$";
/// A duration such as `300s`, `5m`, `1h30m` or `250ms`.
pub const DURATION: &str = r"^([0-9]+(ms|s|m|h))+$";
/// Pattern of an admin endpoint list: `host:port`, or up to 16 separated by commas.
pub const ADMIN_ENDPOINTS: &str = r"^[A-Za-z0-9.-]+:[0-9]{1,5}(,[A-Za-z0-9.-]+:[0-9]{1,5}){0,15}$";
/// A DNS host name, optionally with a leading `*.` wildcard, lower case.
pub const HOSTNAME: &str =
    r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// Longest name of a shard or plugin: leaves room for `prism-`/`prism-plugin-` prefixes,
/// `-headless` suffixes and the controller-revision hash within the 63-character label limit.
pub const MAX_UNIT_NAME: usize = 40;

/// Reference to one key of a Secret in the resource's own namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeySelector {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// A value taken from elsewhere instead of written in the resource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValueSource {
    /// The value is the content of this Secret key, in the resource's own namespace; it is never
    /// copied into rendered objects, status, events or logs.
    pub secret_key_ref: SecretKeySelector,
}

/// Status conditions as a list-map keyed by `type`, so server-side apply merges them per type.
pub fn conditions_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = <Vec<Condition>>::json_schema(generator);
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema
}

/// Condition types every Prism resource reports.
pub mod condition {
    /// The resource is fully reconciled and serving.
    pub const READY: &str = "Ready";
    /// A change is being rolled out.
    pub const PROGRESSING: &str = "Progressing";
    /// Something is wrong that needs attention.
    pub const DEGRADED: &str = "Degraded";
    /// Reconciliation is paused by the `prism.io/reconcile: paused` annotation.
    pub const PAUSED: &str = "ReconciliationPaused";
    /// A shard is the only one using its Prism admin (shards only).
    pub const ADMIN_ISOLATED: &str = "AdminIsolated";
    /// A namespace's traffic is within its shard's SLA and error budget (namespaces only).
    pub const HEALTHY: &str = "Healthy";
    /// Prometheus answers the traffic queries (shards only, when traffic is configured).
    pub const METRICS_AVAILABLE: &str = "MetricsAvailable";
}

/// From traffic (with `--prometheus-url`): `Healthy`, `Degraded` (p99 above the shard's SLA
/// tier, or too many errors) or `Unknown` (no data). Also the `Healthy` condition.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Health {
    /// Latency and errors within bounds.
    Healthy,
    /// Latency above the SLA, or too many errors.
    Degraded,
    /// No traffic figures.
    Unknown,
}

impl Health {
    /// The word written to `status.health`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "Healthy",
            Self::Degraded => "Degraded",
            Self::Unknown => "Unknown",
        }
    }
}

/// Annotation that pauses reconciliation of one object when set to `paused`.
pub const PAUSE_ANNOTATION: &str = "prism.io/reconcile";
/// Annotation carrying the shard a PrismNamespace was placed on.
pub const SHARD_ANNOTATION: &str = "prism.io/shard";
/// Annotation on pod templates: SHA-256 of everything the pod sees.
pub const CONFIG_HASH_ANNOTATION: &str = "prism.io/config-hash";

/// Seconds in a duration string such as `1h30m`, `300s` or `250ms` (rounded up to whole
/// seconds); `None` when the string is not a duration.
pub fn duration_seconds(text: &str) -> Option<u64> {
    let mut millis: u64 = 0;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            match rest.chars().next()? {
                's' => (1_000, 1),
                'm' => (60_000, 1),
                'h' => (3_600_000, 1),
                _ => return None,
            }
        };
        millis = millis.checked_add(n.checked_mul(unit)?)?;
        rest = &rest[len..];
    }
    Some(millis.div_ceil(1000))
}

#[cfg(test)]
mod tests {
    use super::{Health, duration_seconds};

    #[test]
    fn health_serializes_as_its_word() {
        for health in [Health::Healthy, Health::Degraded, Health::Unknown] {
            let json = serde_json::to_value(health).unwrap();
            assert_eq!(json, health.as_str());
            assert_eq!(serde_json::from_value::<Health>(json).unwrap(), health);
        }
        assert!(serde_json::from_value::<Health>("Warning".into()).is_err());
    }

    #[test]
    fn parses_durations() {
        assert_eq!(duration_seconds("300s"), Some(300));
        assert_eq!(duration_seconds("1h30m"), Some(5400));
        assert_eq!(duration_seconds("250ms"), Some(1));
        assert_eq!(duration_seconds("5"), None);
        assert_eq!(duration_seconds("5d"), None);
        assert_eq!(duration_seconds(""), None);
    }
}
