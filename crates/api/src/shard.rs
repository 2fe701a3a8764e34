//! `PrismShard`: one fleet of Prism proxies (a product, feature or SLA tier) and its plugins.

// `printcolumn(...)` repeats `type_ = ...` once per column, which clippy misreads as duplicates.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::api::networking::v1::{NetworkPolicyEgressRule, NetworkPolicyPeer};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::PluginDeploymentType;

/// Desired state of a shard: a StatefulSet of Prism proxies with their plugins.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "prism.io",
    version = "v1beta1",
    kind = "PrismShard",
    namespaced,
    doc = "A fleet of Prism proxies for one product, feature or SLA tier.",
    status = "PrismShardStatus",
    shortname = "pshard",
    category = "prism",
    cel,
    printcolumn(name = "Product", type_ = "string", json_path = ".spec.product"),
    printcolumn(name = "Feature", type_ = "string", json_path = ".spec.feature"),
    printcolumn(name = "SLA", type_ = "string", json_path = ".spec.slaTier"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".status.replicas"),
    printcolumn(
        name = "Ready-Replicas",
        type_ = "integer",
        json_path = ".status.readyReplicas"
    ),
    printcolumn(
        name = "Namespaces",
        type_ = "integer",
        json_path = ".status.namespaces"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "RPS",
        type_ = "integer",
        json_path = ".status.aggregateMetrics.totalRPS"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new(REPLICAS_RULE).message(REPLICAS_MESSAGE).field_path(".replicas"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrismShardSpec {
    /// Product this shard serves (ADR-034 sharding dimension).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub product: String,
    /// Feature within the product, when the shard is per feature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub feature: Option<String>,
    /// SLA tier, e.g. `p99_10ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([_a-z0-9]*[a-z0-9])?$")
    )]
    pub sla_tier: Option<String>,
    /// Proxy replicas, 1 when unset. Leave it unset when autoscaling is enabled: the shard
    /// then starts at `autoscaling.minReplicas` and the autoscaler owns the count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub replicas: Option<i32>,
    /// Backends this shard's namespaces may use (e.g. `postgres`, `redis`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[schemars(
        length(max = 32),
        inner(length(max = 63), regex(pattern = r"^[a-z0-9]([-_a-z0-9]*[a-z0-9])?$"))
    )]
    pub backends: Vec<String>,
    /// Compute resources of the proxy container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Plugins the proxies load, by name and version requirement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub plugins: Vec<ShardPlugin>,
    /// Horizontal autoscaling of the proxies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// Scraping of the proxies by prometheus-operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<ShardMonitoring>,
    /// Proxy container image; defaults to the operator's configured proxy image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
    /// Per-replica volume for the proxy's SQLite configuration (ADR-036).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<ShardStorage>,
    /// How clients reach the shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ShardService>,
    /// Prism admin (`prism.ControlPlane`) for this shard's namespaces: `host:port`, or the
    /// comma-separated `host:port` of every node of an HA admin (writes go to whichever node
    /// leads). Overrides the operator-wide default. Give each shard its own admin: admin
    /// spreads namespaces over every proxy registered with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 1024),
        regex(pattern = super::ADMIN_ENDPOINTS)
    )]
    pub admin_endpoint: Option<String>,
    /// How clients outside the cluster reach the shard: an Ingress or a Gateway API GRPCRoute
    /// in front of its client Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose: Option<ShardExpose>,
    /// NetworkPolicies for the shard's proxies and the remote plugins it uses; off unless
    /// enabled here or by the operator's default (`--network-policies`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<ShardNetworkPolicy>,
    /// The signal that stops the proxy container; unset: the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<StopSignal>,
}

/// The signal that stops the proxy container: `SIGINT` for upstream's proxy, which drains on
/// SIGINT and ignores SIGTERM. Needs the API server's ContainerStopSignals feature (alpha since
/// Kubernetes 1.33); where it is off, the API server drops the field, the shard says so in its
/// Degraded condition (FieldsDropped), and the image's stop signal applies. Unset: the
/// image's.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum StopSignal {
    /// Interrupt, what upstream's proxy drains on.
    Sigint,
    /// Termination, the default of most images.
    Sigterm,
    /// Quit.
    Sigquit,
    /// Hang-up.
    Sighup,
    /// User signal 1.
    Sigusr1,
    /// User signal 2.
    Sigusr2,
}

impl StopSignal {
    /// The signal's name as Kubernetes spells it, e.g. `SIGINT`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sigint => "SIGINT",
            Self::Sigterm => "SIGTERM",
            Self::Sigquit => "SIGQUIT",
            Self::Sighup => "SIGHUP",
            Self::Sigusr1 => "SIGUSR1",
            Self::Sigusr2 => "SIGUSR2",
        }
    }
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// The CEL rule of `spec.replicas` in v1beta1: one count owner, the user or the autoscaler.
pub const REPLICAS_RULE: &str =
    "!has(self.autoscaling) || !self.autoscaling.enabled || !has(self.replicas)";
/// The message of [`REPLICAS_RULE`].
pub const REPLICAS_MESSAGE: &str = "replicas must be unset when autoscaling is enabled: the shard starts at autoscaling.minReplicas and the autoscaler owns the count";

impl PrismShardSpec {
    /// The replicas a shard runs when it is not autoscaled: `replicas`, 1 when unset.
    pub fn replicas_or_default(&self) -> i32 {
        self.replicas.unwrap_or(1)
    }
}

/// One plugin a shard loads.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShardPlugin {
    /// Name of a PrismPlugin in the same namespace.
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Version requirement in Cargo's sense: `1.2.0` means `^1.2.0`.
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[\^~=<>*0-9A-Za-z., +-]+$")
    )]
    pub version: String,
    /// How the plugin runs for this shard; defaults to the plugin's own deployment type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<PluginDeploymentType>,
}

/// Who scales a shard's proxies.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AutoscalingProvider {
    /// A HorizontalPodAutoscaler; `targetRPS` needs a metrics adapter serving the pods metric
    /// `prism_requests_per_second` (see the README).
    #[default]
    Hpa,
    /// A KEDA ScaledObject with a Prometheus trigger (KEDA must be installed).
    Keda,
}

/// How a shard's proxies are scraped.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShardMonitoring {
    /// A prometheus-operator PodMonitor for the proxies' metrics port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_monitor: Option<PodMonitorSpec>,
}

/// The PodMonitor of a shard.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodMonitorSpec {
    /// Scrape interval; `30s` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = super::DURATION))]
    pub interval: Option<String>,
    /// Labels of the PodMonitor, e.g. what a Prometheus's `podMonitorSelector` asks for.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Horizontal pod autoscaling of a shard (autoscaling/v2).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("minReplicas must not exceed maxReplicas"))]
#[x_kube(validation = Rule::new("!self.enabled || has(self.targetRPS) || has(self.targetCPUUtilization)").message("autoscaling needs targetRPS or targetCPUUtilization"))]
pub struct Autoscaling {
    /// Whether the proxies are autoscaled.
    #[serde(default)]
    pub enabled: bool,
    /// `hpa` (default) or `keda`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub provider: AutoscalingProvider,
    /// Lower bound of replicas.
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,
    /// Upper bound of replicas.
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Target requests per second per pod (pods metric `prism_requests_per_second`).
    #[serde(rename = "targetRPS", default, skip_serializing_if = "Option::is_none")]
    #[schemars(rename = "targetRPS", range(min = 1))]
    pub target_rps: Option<i64>,
    /// Target average CPU utilisation in percent of the request.
    #[serde(
        rename = "targetCPUUtilization",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(rename = "targetCPUUtilization", range(min = 1, max = 100))]
    pub target_cpu_utilization: Option<i32>,
}

/// Per-replica persistent volume.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShardStorage {
    /// Requested size; defaults to `10Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Quantity>,
    /// StorageClass of the claims; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,
}

/// Client-facing Service of a shard.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShardService {
    /// `ClusterIP` (default) or `LoadBalancer` to expose the shard outside the cluster.
    #[serde(rename = "type", default)]
    pub type_: ServiceType,
    /// Annotations for the Service (e.g. load-balancer settings).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// How a shard is exposed outside the cluster: exactly one of `ingress` and `grpcRoute`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.ingress) != has(self.grpcRoute)").message("expose needs exactly one of ingress and grpcRoute"))]
pub struct ShardExpose {
    /// A `networking.k8s.io/v1` Ingress routing every path of its hosts to the shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<ShardIngress>,
    /// A Gateway API `GRPCRoute` (`gateway.networking.k8s.io/v1`, standard channel) attaching
    /// the shard to existing Gateways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_route: Option<ShardGrpcRoute>,
}

/// An Ingress in front of a shard. gRPC needs HTTP/2 to the proxies: most controllers want an
/// annotation for that (see the README for the common ones).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShardIngress {
    /// IngressClass; the cluster's default class when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub class_name: Option<String>,
    /// Host names clients use.
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[schemars(
        length(min = 1, max = 16),
        inner(length(min = 1, max = 253), regex(pattern = super::HOSTNAME))
    )]
    pub hosts: Vec<String>,
    /// Secret (`kubernetes.io/tls`, in the shard's namespace) with the certificate for every
    /// host; plaintext when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub tls_secret_name: Option<String>,
    /// Annotations of the Ingress (controller settings such as the backend protocol).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A GRPCRoute attaching a shard to Gateways.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShardGrpcRoute {
    /// The Gateways (or their listeners) the route attaches to.
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    #[schemars(length(min = 1, max = 32))]
    pub parent_refs: Vec<GatewayRef>,
    /// Host names the route matches; every host name of the listeners when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[schemars(
        length(max = 16),
        inner(length(min = 1, max = 253), regex(pattern = super::HOSTNAME))
    )]
    pub hostnames: Vec<String>,
    /// Annotations of the GRPCRoute.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A Gateway (optionally one listener of it) a route attaches to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayRef {
    /// Name of the Gateway.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Namespace of the Gateway; the shard's own when unset. Its listener must allow routes
    /// from the shard's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: Option<String>,
    /// Listener of the Gateway; every listener that allows the route when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub section_name: Option<String>,
    /// Port of the listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// NetworkPolicies of a shard. With them, the proxies accept their data port only from
/// `clients` and their metrics port only from the monitoring namespace; plugin sidecar ports
/// are not reachable from outside the pod; remote plugins accept their gRPC port only from the
/// proxies of the shards that use them. Egress stays open unless `egress` is given.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShardNetworkPolicy {
    /// Render the policies; the operator's default (`--network-policies`) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Who may reach the proxies' gRPC port (8980): NetworkPolicy peers (namespace and pod
    /// selectors, IP blocks). Pods in the shard's own namespace when empty. An Ingress
    /// controller or Gateway in front of the shard must be listed too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    #[schemars(length(max = 32))]
    pub clients: Vec<NetworkPolicyPeer>,
    /// Namespace whose pods may scrape the metrics port (9090); `monitoring` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub monitoring_namespace: Option<String>,
    /// Egress rules of the proxies. Unset: egress is not restricted. Set (even empty): only
    /// these destinations are allowed, so include DNS, Prism admin and the backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    #[schemars(length(max = 32))]
    pub egress: Option<Vec<NetworkPolicyEgressRule>>,
}

/// Kinds of client Service a shard can have.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ServiceType {
    /// Reachable inside the cluster only.
    #[default]
    ClusterIP,
    /// Exposed through the cloud load balancer.
    LoadBalancer,
}

/// Observed state of a shard.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrismShardStatus {
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Current proxy pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Proxy pods that are ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// PrismNamespaces placed on this shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<i32>,
    /// Traffic figures summed over the shard's namespaces, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate_metrics: Option<AggregateMetrics>,
    /// Plugin versions the shard currently runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<ShardPluginStatus>,
    /// The Prism admin the shard's namespaces sync to, and who else uses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<ShardAdminStatus>,
    /// Ready, Progressing, Degraded, AdminIsolated and ReconciliationPaused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// The Prism admin of a shard as the operator sees it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardAdminStatus {
    /// The admin endpoints (the shard's `spec.adminEndpoint`, else the operator's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<String>,
    /// Other shards (`namespace/name`) whose admin shares an endpoint with this one's, oldest
    /// first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_with: Vec<String>,
    /// Proxies of this shard that admin still knows (registered, or named as a namespace's
    /// assigned proxy) but whose pods are gone. Upstream admin has no way to deregister a
    /// proxy, so it keeps assigning partitions to them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stale_proxies: Vec<String>,
}

/// Traffic figures of a shard.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AggregateMetrics {
    /// Requests per second over all the shard's proxies.
    #[serde(rename = "totalRPS", default, skip_serializing_if = "Option::is_none")]
    #[schemars(rename = "totalRPS")]
    pub total_rps: Option<i64>,
    /// Mean over the shard's proxy replicas of each replica's p99 latency (over all its
    /// requests in the query window), e.g. `9ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_p99_latency: Option<String>,
}

/// The version of one plugin a shard runs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardPluginStatus {
    /// Plugin name.
    pub name: String,
    /// Version the shard's pods run.
    pub version: String,
}

#[cfg(test)]
mod tests {
    use super::StopSignal;

    #[test]
    fn stop_signals_are_spelled_as_kubernetes_spells_them() {
        use StopSignal::*;
        for signal in [Sigint, Sigterm, Sigquit, Sighup, Sigusr1, Sigusr2] {
            let json = serde_json::to_value(signal).unwrap();
            assert_eq!(json, signal.name());
            assert_eq!(serde_json::from_value::<StopSignal>(json).unwrap(), signal);
        }
        assert!(serde_json::from_str::<StopSignal>("\"SIGKILL\"").is_err());
    }
}
