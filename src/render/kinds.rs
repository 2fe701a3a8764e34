//! The kinds templates may render, one row each: what the operator applies, watches and needs
//! RBAC for, how a rendered object of the kind is checked, and for kinds served only where a
//! CRD is installed, which CRD and how a shard does without. Helm's install order, which puts
//! every object in the output, is here too.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::gateway::{GRPCROUTE_CRD, GrpcRoute};
use super::keda::{SCALEDOBJECT_CRD, ScaledObject};
use super::podmonitor::{PODMONITOR_CRD, PodMonitor};

/// A kind rendered from the templates and applied by the operator.
#[derive(Debug, Clone, Copy)]
pub struct ChildKind {
    /// `apiVersion`.
    pub api_version: &'static str,
    /// `kind`.
    pub kind: &'static str,
    /// The resource's plural name.
    pub plural: &'static str,
    /// Parses a rendered object into the kind's type and back, so that fields the type does
    /// not know go missing.
    pub round_trip: fn(&Value) -> Result<Value, String>,
    /// The CRD serving the kind, for kinds that not every cluster serves.
    pub crd: Option<Crd>,
}

/// The CustomResourceDefinition a child kind needs.
#[derive(Debug, Clone, Copy)]
pub struct Crd {
    /// Its name.
    pub name: &'static str,
    /// What provides it.
    pub provider: &'static str,
    /// How a shard does without the kind.
    pub without: &'static str,
}

const fn kind(
    api_version: &'static str,
    kind: &'static str,
    plural: &'static str,
    round_trip: fn(&Value) -> Result<Value, String>,
) -> ChildKind {
    ChildKind {
        api_version,
        kind,
        plural,
        round_trip,
        crd: None,
    }
}

const fn needs_crd(
    k: ChildKind,
    name: &'static str,
    provider: &'static str,
    without: &'static str,
) -> ChildKind {
    ChildKind {
        crd: Some(Crd {
            name,
            provider,
            without,
        }),
        ..k
    }
}

/// Every kind templates may render, one row each.
pub const KINDS: &[ChildKind] = &[
    kind("v1", "ConfigMap", "configmaps", round_trip::<ConfigMap>),
    kind("v1", "Service", "services", round_trip::<Service>),
    kind(
        "apps/v1",
        "StatefulSet",
        "statefulsets",
        round_trip::<StatefulSet>,
    ),
    kind(
        "apps/v1",
        "Deployment",
        "deployments",
        round_trip::<Deployment>,
    ),
    kind(
        "policy/v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        round_trip::<PodDisruptionBudget>,
    ),
    kind(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        round_trip::<HorizontalPodAutoscaler>,
    ),
    kind(
        "networking.k8s.io/v1",
        "Ingress",
        "ingresses",
        round_trip::<Ingress>,
    ),
    kind(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "networkpolicies",
        round_trip::<NetworkPolicy>,
    ),
    needs_crd(
        kind(
            "gateway.networking.k8s.io/v1",
            "GRPCRoute",
            "grpcroutes",
            round_trip::<GrpcRoute>,
        ),
        GRPCROUTE_CRD,
        "Gateway API, standard channel",
        "remove spec.expose.grpcRoute",
    ),
    needs_crd(
        kind(
            "keda.sh/v1alpha1",
            "ScaledObject",
            "scaledobjects",
            round_trip::<ScaledObject>,
        ),
        SCALEDOBJECT_CRD,
        "KEDA",
        "set spec.autoscaling.provider to hpa",
    ),
    needs_crd(
        kind(
            "monitoring.coreos.com/v1",
            "PodMonitor",
            "podmonitors",
            round_trip::<PodMonitor>,
        ),
        PODMONITOR_CRD,
        "prometheus-operator",
        "remove spec.monitoring.podMonitor",
    ),
];

/// Helm's install order of kinds; kinds not listed go after, alphabetically.
const INSTALL_ORDER: &[&str] = &[
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// Position of `kind` in [`INSTALL_ORDER`]; kinds not listed (the custom resources, and
/// child kinds Helm does not know, such as GRPCRoute) all rank after it.
pub fn install_rank(kind: &str) -> usize {
    INSTALL_ORDER
        .iter()
        .position(|o| *o == kind)
        .unwrap_or(INSTALL_ORDER.len())
}

/// The row of `kind`.
pub fn child_kind(kind: &str) -> Option<&'static ChildKind> {
    KINDS.iter().find(|k| k.kind == kind)
}

/// [`KINDS`] as (apiVersion, kind, plural).
pub const CHILD_KINDS: &[(&str, &str, &str)] = &child_kinds::<{ KINDS.len() }>();

/// The kinds of [`KINDS`] served only where their CRD is installed: (kind, CRD name, what
/// provides it, how a shard does without).
pub const CRD_CHILD_KINDS: &[(&str, &str, &str, &str)] = &crd_child_kinds::<{ crd_kinds() }>();

const fn child_kinds<const N: usize>() -> [(&'static str, &'static str, &'static str); N] {
    let mut out = [("", "", ""); N];
    let mut i = 0;
    while i < N {
        out[i] = (KINDS[i].api_version, KINDS[i].kind, KINDS[i].plural);
        i += 1;
    }
    out
}

const fn crd_kinds() -> usize {
    let (mut n, mut i) = (0, 0);
    while i < KINDS.len() {
        if KINDS[i].crd.is_some() {
            n += 1;
        }
        i += 1;
    }
    n
}

#[allow(clippy::type_complexity)]
const fn crd_child_kinds<const N: usize>()
-> [(&'static str, &'static str, &'static str, &'static str); N] {
    let mut out = [("", "", "", ""); N];
    let (mut n, mut i) = (0, 0);
    while i < KINDS.len() {
        if let Some(crd) = KINDS[i].crd {
            out[n] = (KINDS[i].kind, crd.name, crd.provider, crd.without);
            n += 1;
        }
        i += 1;
    }
    out
}

fn round_trip<K: DeserializeOwned + Serialize>(v: &Value) -> Result<Value, String> {
    let typed: K = serde_path_to_error::deserialize(v)
        .map_err(|e| format!("field {}: {}", e.path(), e.inner()))?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_kind_and_the_operator_tables_follow_the_rows() {
        let mut names: Vec<&str> = KINDS.iter().map(|k| k.kind).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KINDS.len());
        let rows: Vec<_> = KINDS
            .iter()
            .map(|k| (k.api_version, k.kind, k.plural))
            .collect();
        assert_eq!(rows, CHILD_KINDS);
        let crds: Vec<_> = KINDS
            .iter()
            .filter_map(|k| k.crd.map(|c| (k.kind, c.name, c.provider, c.without)))
            .collect();
        assert_eq!(crds, CRD_CHILD_KINDS);
    }
}
