//! `PrismPlugin`: a backend driver that shards load as a sidecar, in-process, or remotely.

// `printcolumn(...)` repeats `type_ = ...` once per column, which clippy misreads as duplicates.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::ValueSource;

/// Desired state of a plugin: which image at which version, and how it runs.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "prism.io",
    version = "v1beta1",
    kind = "PrismPlugin",
    namespaced,
    doc = "A Prism backend plugin at a version, run as a sidecar, in-process or remote.",
    status = "PrismPluginStatus",
    shortname = "pplugin",
    category = "prism",
    cel,
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version"),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.deployment.type"),
    printcolumn(name = "Shards", type_ = "string", json_path = ".status.shards"),
    printcolumn(
        name = "Namespaces",
        type_ = "integer",
        json_path = ".status.namespacesUsing"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("!has(self.configFrom) || self.deployment.type != 'in-process'").message("configFrom applies to plugins that run as a container (sidecar or remote)").field_path(".configFrom"))]
pub struct PrismPluginSpec {
    /// Semantic version of the plugin; shards' requirements must accept it.
    #[schemars(
        length(min = 5, max = 64),
        regex(
            pattern = r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"
        )
    )]
    pub version: String,
    /// Where the plugin image comes from.
    pub source: PluginSource,
    /// How the plugin runs.
    pub deployment: PluginDeployment,
    /// gRPC health check of the plugin server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// How a new version rolls out across the shards that use the plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutPolicy>,
    /// The plugin runtime's configuration file, from a Secret key: upstream's `-config` YAML
    /// (`plugin`, `control_plane`, and `backend` with the driver's own settings, such as the
    /// postgres driver's `database_url`). Mounted read-only into the plugin container, which is
    /// started with `-config=/etc/prism/plugin/config.yaml`; never copied into rendered objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_from: Option<ValueSource>,
}

/// Image of a plugin.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginSource {
    /// Registry and repository prefix, e.g. `ghcr.io/prism/plugins`.
    #[schemars(
        length(min = 1, max = 255),
        regex(pattern = r"^[a-z0-9]([-a-z0-9._:]*[a-z0-9])?(/[a-z0-9]([-a-z0-9._]*[a-z0-9])?)*$")
    )]
    pub registry: String,
    /// Image name with tag or digest, e.g. `mongodb-plugin:1.0.0`.
    #[schemars(
        length(min = 1, max = 255),
        regex(
            pattern = r"^[a-z0-9]([-a-z0-9._/]*[a-z0-9])?(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
        )
    )]
    pub image: String,
}

impl PluginSource {
    /// Full image reference: `registry/image`.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.registry, self.image)
    }
}

/// How a plugin runs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("!has(self.replicas) || self.type == 'remote'").message("replicas applies to remote plugins only"))]
#[x_kube(validation = Rule::new("!has(self.artifactPath) || self.type == 'in-process'").message("artifactPath applies to in-process plugins only"))]
#[x_kube(validation = Rule::new("(!has(self.args) && !has(self.env)) || self.type != 'in-process'").message("args and env apply to plugins that run as a container (sidecar or remote)"))]
pub struct PluginDeployment {
    /// `sidecar`, `in-process` or `remote`.
    #[serde(rename = "type")]
    pub type_: PluginDeploymentType,
    /// Compute resources of the plugin container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Replicas of a remote plugin's Deployment (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub replicas: Option<i32>,
    /// Directory in the plugin image that an in-process plugin is copied from (default `/plugin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^/[^\x00]*$"))]
    pub artifact_path: Option<String>,
    /// Arguments after the rendered ones (`-config`, `-grpc-port`, `-metrics-port`). Go's flag
    /// package keeps the last of a repeated flag, so these also override the defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 4096)))]
    pub args: Vec<String>,
    /// Environment variables of the plugin container, after the rendered ones
    /// (`PRISM_PLUGIN_NAME`, `PRISM_PLUGIN_VERSION`); one with a rendered name replaces it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub env: Vec<PluginEnvVar>,
}

/// One environment variable of a plugin container: a literal setting, or a Secret key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.value) != has(self.valueFrom)").message("an environment variable needs exactly one of value and valueFrom"))]
pub struct PluginEnvVar {
    /// Name of the variable.
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$")
    )]
    pub name: String,
    /// Literal value, for settings: a secret belongs in `valueFrom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub value: Option<String>,
    /// The value is the content of this Secret key, read by the kubelet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueSource>,
}

/// The three ways a plugin can run.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum PluginDeploymentType {
    /// A container next to the proxy in every shard pod.
    Sidecar,
    /// Copied into a shared volume by an init container; the proxy loads it.
    InProcess,
    /// Its own Deployment and Service; shards get its address.
    Remote,
}

impl PluginDeploymentType {
    /// The spelling used in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sidecar => "sidecar",
            Self::InProcess => "in-process",
            Self::Remote => "remote",
        }
    }
}

/// gRPC health checking of a plugin (grpc.health.v1).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    /// Port and service of the health check; the port is also the plugin's serving port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcHealthCheck>,
    /// Time between checks, e.g. `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub interval: Option<String>,
    /// Time a check may take, e.g. `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub timeout: Option<String>,
}

/// The gRPC endpoint of a plugin.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcHealthCheck {
    /// Port the plugin serves gRPC and health on (default 50100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Service name to check; Prism plugins register their health under their own name,
    /// which is the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub service: Option<String>,
}

/// Rollout of a new plugin version across shards.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutPolicy {
    /// Shards updated at the same time (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max_unavailable_shards: Option<i32>,
    /// Time a shard has to become healthy on the new version before it is rolled back
    /// (default `10m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub progress_deadline: Option<String>,
}

/// Observed state of a plugin.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrismPluginStatus {
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Whether every shard using the plugin runs the desired version.
    #[serde(default)]
    pub installed: bool,
    /// Shards that use the plugin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<String>,
    /// PrismNamespaces placed on those shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces_using: Option<i32>,
    /// The version each shard runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shard_versions: Vec<ShardVersion>,
    /// The last version every shard ran healthily: the rollback target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_healthy_version: Option<String>,
    /// The spec of that version: shards not yet (or no longer) on a new version render this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_healthy_spec: Option<PrismPluginSpec>,
    /// Progress of the current or last rollout; survives operator restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
    /// Ready, Progressing, Degraded and ReconciliationPaused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// Version a shard runs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardVersion {
    /// Shard name.
    pub shard: String,
    /// Plugin version running there.
    pub version: String,
}

/// Where a rollout stands.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// Fingerprint of the spec being rolled out (a new spec starts a new rollout).
    pub target_hash: String,
    /// Version being rolled out.
    pub target_version: String,
    /// Image being rolled out.
    pub target_image: String,
    /// `Progressing`, `Complete` or `RolledBack`.
    pub phase: RolloutPhase,
    /// Shards already on the target version and healthy, in rollout order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub completed: Vec<String>,
    /// Shards being updated now, with when each started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_progress: Vec<RolloutStep>,
    /// Shard that failed its health gate, when rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_shard: Option<String>,
    /// Why the rollout stopped, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Phases of a rollout.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RolloutPhase {
    /// Shards are moving to the target one budget at a time.
    Progressing,
    /// Every shard runs the target healthily.
    Complete,
    /// A shard missed its deadline; every shard is back on the last healthy version.
    RolledBack,
}

/// One shard being moved to the target.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStep {
    /// Shard name.
    pub shard: String,
    /// When the shard was given the target (its deadline counts from here).
    pub started_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
}
