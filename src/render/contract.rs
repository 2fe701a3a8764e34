//! The contract between the templates, the operator and everything that reads what they make:
//! object names, labels, annotations, ports, the volume claim naming and the kinds rendered
//! (one table in [`kinds`](super::kinds), re-exported here as the operator reads it). Templates
//! get these values through their context; nothing else spells them out.

use std::collections::BTreeMap;

use crate::api::PrismPluginSpec;
use crate::render::objects::hash_json;
use serde_json::json;

/// Port the proxy serves its data-plane gRPC on.
pub const DATA_PORT: i32 = 8980;
/// Port the proxy serves metrics on.
pub const METRICS_PORT: i32 = 9090;
/// Default gRPC port of a plugin.
pub const DEFAULT_PLUGIN_PORT: i32 = 50100;
/// Where a plugin container finds its configuration file (`spec.configFrom`).
pub const PLUGIN_CONFIG_DIR: &str = "/etc/prism/plugin";
/// The name of that file.
pub const PLUGIN_CONFIG_FILE: &str = "config.yaml";
/// Where in-process plugins are installed inside shard pods.
pub const PLUGIN_DIR: &str = "/opt/prism/plugins";
/// Value of `app.kubernetes.io/managed-by` on everything rendered.
pub const MANAGED_BY: &str = "prism-operator";
/// Label naming the shard an object belongs to (the prune inventory of a shard).
pub const SHARD_LABEL: &str = "prism.io/shard";
/// Label naming the remote plugin an object belongs to.
pub const PLUGIN_LABEL: &str = "prism.io/plugin";

/// Counter of requests a proxy is expected to expose, labelled as upstream's observability
/// design (ADR-008) names them: `namespace` (the PrismNamespace; scraped, it arrives as
/// `exported_namespace`), `operation` and `status` (`success` or `error`).
pub const REQUESTS_SERIES: &str = "prism_requests_total";
/// Histogram of request latency (seconds) a proxy is expected to expose, labelled `namespace`,
/// `operation` and `backend` (ADR-008).
pub const LATENCY_SERIES: &str = "prism_request_duration_seconds";
/// The label a scraped series' own `namespace` label is renamed to, because the scrape's target
/// label `namespace` (the Kubernetes namespace) takes its name.
pub const EXPORTED_NAMESPACE_LABEL: &str = "exported_namespace";
/// Value of the requests counter's `status` label on a failed request (ADR-008).
pub const FAILED_STATUS: &str = "error";
/// The pods metric an HPA scales on (served by prometheus-adapter, see docs/traffic.md).
pub const RPS_POD_METRIC: &str = "prism_requests_per_second";

/// The id a proxy pod is registered with in Prism admin: `<pod>.<namespace>`. Admin keys proxies
/// by id alone, so the pod name would make the proxies of same-named shards in two Kubernetes
/// namespaces one record.
pub fn proxy_id(pod: &str, namespace: &str) -> String {
    format!("{pod}.{namespace}")
}

/// The pod and, when the id carries one, the Kubernetes namespace of a proxy id from admin.
/// Ids registered before they carried the namespace are bare pod names. Namespaces hold no dot,
/// so the namespace is what follows the last one.
pub fn proxy_pod(id: &str) -> (&str, Option<&str>) {
    match id.rsplit_once('.') {
        Some((pod, namespace)) if !pod.is_empty() && !namespace.is_empty() => {
            (pod, Some(namespace))
        }
        _ => (id, None),
    }
}

/// PromQL of a shard's requests per second, as scraped with `namespace` and `pod` target
/// labels (a PodMonitor, or Prometheus's Kubernetes pod discovery).
pub fn shard_rps_query(namespace: &str, shard: &str) -> String {
    format!(
        "sum(rate({REQUESTS_SERIES}{{namespace=\"{namespace}\",pod=~\"{}-[0-9]+\"}}[2m]))",
        shard_fullname(shard)
    )
}

/// Prefix of the pod-template annotations naming each plugin's version and spec fingerprint.
pub const PLUGIN_ANNOTATION_PREFIX: &str = "plugin.prism.io/";

/// Fingerprint of everything in a plugin spec that shard pods see (not the rollout policy).
pub fn plugin_fingerprint(spec: &PrismPluginSpec) -> String {
    let value = json!({
        "version": spec.version,
        "source": spec.source,
        "deployment": spec.deployment,
        "healthCheck": spec.health_check,
    });
    hash_json(&[&value])[..16].to_string()
}

/// Value of a shard pod's `plugin.prism.io/<name>` annotation: `<version>@<fingerprint>`.
pub fn plugin_annotation(spec: &PrismPluginSpec) -> String {
    format!("{}@{}", spec.version, plugin_fingerprint(spec))
}

/// Name of the StatefulSet, client Service, PDB, HPA and ConfigMap of a shard.
pub fn shard_fullname(shard: &str) -> String {
    format!("prism-{shard}")
}

/// Name of the Deployment and Service of a remote plugin.
pub fn plugin_fullname(plugin: &str) -> String {
    format!("prism-plugin-{plugin}")
}

/// The label that carries the proxy image's tag on shard objects and pods.
pub const VERSION_LABEL: &str = "app.kubernetes.io/version";

/// Recommended labels; `version` is omitted when it cannot be a label value.
pub fn labels(
    name: &str,
    instance: &str,
    version: &str,
    component: &str,
) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert("app.kubernetes.io/name".into(), name.into());
    l.insert("app.kubernetes.io/instance".into(), instance.into());
    l.insert("app.kubernetes.io/component".into(), component.into());
    l.insert("app.kubernetes.io/part-of".into(), "prism".into());
    l.insert("app.kubernetes.io/managed-by".into(), MANAGED_BY.into());
    if let Some(v) = label_value(version) {
        l.insert(VERSION_LABEL.into(), v);
    }
    l
}

/// Selector labels: name and instance only (selectors are immutable).
pub fn selector(name: &str, instance: &str) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert("app.kubernetes.io/name".into(), name.into());
    l.insert("app.kubernetes.io/instance".into(), instance.into());
    l
}

/// A string made into a valid label value (at most 63 of `[A-Za-z0-9_.-]`, alphanumeric ends).
fn label_value(s: &str) -> Option<String> {
    let mapped: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    let trimmed = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

/// The tag of an image reference (`repo:tag@digest` → `tag`), if it has one.
pub fn image_tag(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split_once(':').map_or("", |(_, tag)| tag)
}

/// Value of `app.kubernetes.io/name` on shard proxy pods and their objects.
pub const PROXY_NAME: &str = "prism-proxy";
/// Name of a shard's volume claim template (mounted at `/var/lib/prism`).
pub const CONFIG_VOLUME: &str = "config";

/// Prefix of the names of the volume claims of a shard's StatefulSet `sts`: Kubernetes names
/// them `<template>-<statefulset>-<ordinal>`.
pub fn claim_prefix(sts: &str) -> String {
    format!("{CONFIG_VOLUME}-{sts}-")
}

pub use super::kinds::{CHILD_KINDS, CRD_CHILD_KINDS};

/// Why an object of `kind` cannot be applied where its CRD is missing, naming the CRD; `None`
/// for kinds every cluster serves. The operator's condition and `prism-render
/// --kube-api-versions` say the same.
pub fn missing_crd(kind: &str, object: &str) -> Option<String> {
    let crd = super::kinds::child_kind(kind)?.crd?;
    Some(format!(
        "{object} needs the CustomResourceDefinition {} ({}), which the cluster does not \
         serve; install it, or {}",
        crd.name, crd.provider, crd.without
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_sanitised() {
        assert_eq!(
            label_value("1.2.3+build.7").as_deref(),
            Some("1.2.3_build.7")
        );
        assert_eq!(label_value("").as_deref(), None);
        assert_eq!(label_value(&"a".repeat(80)).map(|s| s.len()), Some(63));
    }

    #[test]
    fn image_tags() {
        assert_eq!(image_tag("ghcr.io/prism/proxy:1.4.0"), "1.4.0");
        assert_eq!(image_tag("localhost:5000/proxy"), "");
        assert_eq!(image_tag("proxy:2@sha256:abc"), "2");
    }

    #[test]
    fn proxy_ids_carry_the_namespace_and_read_back() {
        let id = proxy_id("prism-s-0", "team-x");
        assert_eq!(id, "prism-s-0.team-x");
        assert_ne!(id, proxy_id("prism-s-0", "team-y"));
        assert_eq!(proxy_pod(&id), ("prism-s-0", Some("team-x")));
        assert_eq!(proxy_pod("prism-s-0"), ("prism-s-0", None));
        assert_eq!(proxy_pod("a.b.team"), ("a.b", Some("team")));
        assert_eq!(proxy_pod(".x"), (".x", None));
    }
}
