//! Template contexts: everything a template sees, computed from the resources. Names, labels,
//! ports and plugin wiring are decided here, once, for every template.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::ResourceExt;
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::{
    PluginDeploymentType, PrismPlugin, PrismPluginSpec, PrismShard, ServiceType, ShardPlugin,
    duration_seconds,
};
use crate::render::objects::hash_json;

/// Port the proxy serves its data-plane gRPC on.
pub const DATA_PORT: i32 = 8980;
/// Port the proxy serves metrics on.
pub const METRICS_PORT: i32 = 9090;
/// Default gRPC port of a plugin.
pub const DEFAULT_PLUGIN_PORT: i32 = 50100;
/// Where in-process plugins are installed inside shard pods.
pub const PLUGIN_DIR: &str = "/opt/prism/plugins";
/// Value of `app.kubernetes.io/managed-by` on everything rendered.
pub const MANAGED_BY: &str = "prism-operator";
/// Label naming the shard an object belongs to (the prune inventory of a shard).
pub const SHARD_LABEL: &str = "prism.io/shard";
/// Label naming the remote plugin an object belongs to.
pub const PLUGIN_LABEL: &str = "prism.io/plugin";

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

/// A plugin as one shard uses it: the shard's entry, the plugin, and how it runs there.
#[derive(Debug, Clone, Copy)]
pub struct PluginUse<'a> {
    /// The shard's `spec.plugins[]` entry.
    pub entry: &'a ShardPlugin,
    /// The PrismPlugin (at the version this shard should run).
    pub plugin: &'a PrismPlugin,
    /// Effective deployment type.
    pub deployment: PluginDeploymentType,
}

impl PluginUse<'_> {
    /// The plugin's gRPC port.
    pub fn port(&self) -> i32 {
        plugin_port(self.plugin)
    }
}

/// gRPC (and health) port of a plugin.
pub fn plugin_port(plugin: &PrismPlugin) -> i32 {
    plugin
        .spec
        .health_check
        .as_ref()
        .and_then(|h| h.grpc.as_ref())
        .and_then(|g| g.port)
        .unwrap_or(DEFAULT_PLUGIN_PORT)
}

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
        l.insert("app.kubernetes.io/version".into(), v);
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

fn resources_json(r: &Option<ResourceRequirements>) -> Value {
    r.as_ref().map_or(Value::Null, |r| {
        serde_json::to_value(r).expect("resources serialize")
    })
}

/// Probe timing of a plugin: (period, timeout) in seconds.
fn probe_timing(plugin: &PrismPlugin) -> (u64, u64) {
    let hc = plugin.spec.health_check.as_ref();
    let get = |v: Option<&String>, d| v.and_then(|s| duration_seconds(s)).unwrap_or(d).max(1);
    (
        get(hc.and_then(|h| h.interval.as_ref()), 30),
        get(hc.and_then(|h| h.timeout.as_ref()), 5),
    )
}

fn health_service(plugin: &PrismPlugin) -> String {
    plugin
        .spec
        .health_check
        .as_ref()
        .and_then(|h| h.grpc.as_ref())
        .and_then(|g| g.service.clone())
        .unwrap_or_else(|| plugin.name_any())
}

fn plugin_env(plugin: &PrismPlugin) -> Value {
    json!([
        {"name": "PRISM_PLUGIN_NAME", "value": plugin.name_any()},
        {"name": "PRISM_PLUGIN_VERSION", "value": plugin.spec.version},
    ])
}

fn plugin_args(port: i32) -> Vec<String> {
    vec![
        format!("-grpc-port={port}"),
        format!("-metrics-port={}", port + 1),
    ]
}

/// `PRISM_PLUGIN_<NAME>_ADDR`.
fn addr_env_name(plugin: &str) -> String {
    format!(
        "PRISM_PLUGIN_{}_ADDR",
        plugin.to_ascii_uppercase().replace('-', "_")
    )
}

/// What the shard templates see.
#[derive(Debug, Serialize)]
pub struct ShardContext {
    namespace: String,
    fullname: String,
    headless_name: String,
    config_name: String,
    labels: BTreeMap<String, String>,
    selector: BTreeMap<String, String>,
    pod_annotations: BTreeMap<String, String>,
    replicas: Option<i32>,
    image: String,
    resources: Value,
    proxy_env: Vec<Value>,
    ports: Value,
    storage: Value,
    service: Value,
    autoscaling: Option<Value>,
    sidecars: Vec<Value>,
    installs: Vec<Value>,
    /// The proxy's configuration file (`proxy.yaml` in the ConfigMap).
    pub config_data: String,
}

/// Builds the shard context. `plugins` must already be resolved and checked.
pub fn shard_context(
    shard: &PrismShard,
    plugins: &[PluginUse<'_>],
    default_image: &str,
) -> ShardContext {
    let name = shard.name_any();
    let namespace = shard.namespace().unwrap_or_default();
    let spec = &shard.spec;
    let image = spec
        .image
        .clone()
        .unwrap_or_else(|| default_image.to_string());
    let mut labels = labels("prism-proxy", &name, image_tag(&image), "proxy");
    labels.insert(SHARD_LABEL.into(), name.clone());
    let mut plugins: Vec<&PluginUse> = plugins.iter().collect();
    plugins.sort_by(|a, b| a.entry.name.cmp(&b.entry.name));

    let mut env = vec![
        json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
        json!({"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}),
    ];
    let mut prism_env: BTreeMap<String, String> = BTreeMap::new();
    prism_env.insert("PRISM_SHARD".into(), name.clone());
    prism_env.insert("PRISM_CONFIG".into(), "/etc/prism/proxy.yaml".into());
    prism_env.insert("PRISM_DATA_DIR".into(), "/var/lib/prism".into());

    let mut sidecars = Vec::new();
    let mut installs = Vec::new();
    let mut pod_annotations = BTreeMap::new();
    let mut config_plugins = Vec::new();
    for (i, p) in plugins.iter().enumerate() {
        let pname = p.plugin.name_any();
        let image = p.plugin.spec.source.reference();
        let port = p.port();
        pod_annotations.insert(
            format!("{PLUGIN_ANNOTATION_PREFIX}{pname}"),
            plugin_annotation(&p.plugin.spec),
        );
        let mut entry = json!({
            "name": pname,
            "version": p.plugin.spec.version,
            "deployment": p.deployment.as_str(),
        });
        match p.deployment {
            PluginDeploymentType::Sidecar => {
                let addr = format!("127.0.0.1:{port}");
                prism_env.insert(addr_env_name(&pname), addr.clone());
                entry["address"] = addr.into();
                let (period, timeout) = probe_timing(p.plugin);
                sidecars.push(json!({
                    "container": format!("plugin-{pname}"),
                    "image": image,
                    "args": plugin_args(port),
                    "env": plugin_env(p.plugin),
                    "port": port,
                    "port_name": format!("plugin-{i}"),
                    "health_service": health_service(p.plugin),
                    "period_seconds": period,
                    "timeout_seconds": timeout,
                    "resources": resources_json(&p.plugin.spec.deployment.resources),
                }));
            }
            PluginDeploymentType::InProcess => {
                let target = format!("{PLUGIN_DIR}/{pname}");
                entry["path"] = target.clone().into();
                let source = p
                    .plugin
                    .spec
                    .deployment
                    .artifact_path
                    .as_deref()
                    .unwrap_or("/plugin");
                installs.push(json!({
                    "container": format!("install-{pname}"),
                    "image": image,
                    "source": format!("{}/.", source.trim_end_matches('/')),
                    "target": target,
                    "resources": resources_json(&p.plugin.spec.deployment.resources),
                }));
            }
            PluginDeploymentType::Remote => {
                let addr = format!("{}.{namespace}.svc:{port}", plugin_fullname(&pname));
                prism_env.insert(addr_env_name(&pname), addr.clone());
                entry["address"] = addr.into();
            }
        }
        config_plugins.push(entry);
    }
    if !installs.is_empty() {
        prism_env.insert("PRISM_PLUGIN_DIR".into(), PLUGIN_DIR.into());
    }
    env.extend(
        prism_env
            .into_iter()
            .map(|(k, v)| json!({"name": k, "value": v})),
    );

    let autoscaling = spec.autoscaling.as_ref().filter(|a| a.enabled).map(|a| {
        json!({
            "min_replicas": a.min_replicas,
            "max_replicas": a.max_replicas,
            "target_rps": a.target_rps,
            "target_cpu": a.target_cpu_utilization,
        })
    });
    let storage = spec.storage.as_ref();
    let service = spec.service.as_ref();
    let config = json!({
        "shard": {
            "name": name,
            "namespace": namespace,
            "product": spec.product,
            "feature": spec.feature,
            "slaTier": spec.sla_tier,
        },
        "ports": {"data": DATA_PORT, "metrics": METRICS_PORT},
        "dataDir": "/var/lib/prism",
        "backends": spec.backends,
        "plugins": config_plugins,
    });
    ShardContext {
        fullname: shard_fullname(&name),
        headless_name: format!("{}-headless", shard_fullname(&name)),
        config_name: shard_fullname(&name),
        selector: selector("prism-proxy", &name),
        labels,
        pod_annotations,
        replicas: if autoscaling.is_some() {
            None
        } else {
            Some(spec.replicas)
        },
        image,
        resources: resources_json(&spec.resources),
        proxy_env: env,
        ports: json!({"data": DATA_PORT, "metrics": METRICS_PORT}),
        storage: json!({
            "size": storage.and_then(|s| s.size.as_ref()).map_or("10Gi".to_string(), |q| q.0.clone()),
            "class": storage.and_then(|s| s.storage_class_name.clone()),
        }),
        service: json!({
            "type": match service.map(|s| s.type_).unwrap_or_default() {
                ServiceType::ClusterIP => "ClusterIP",
                ServiceType::LoadBalancer => "LoadBalancer",
            },
            "annotations": service.map(|s| s.annotations.clone()).unwrap_or_default(),
        }),
        autoscaling,
        sidecars,
        installs,
        config_data: serde_yaml::to_string(&config).expect("config serializes"),
        namespace,
    }
}

/// What the remote plugin templates see.
#[derive(Debug, Serialize)]
pub struct PluginContext {
    namespace: String,
    fullname: String,
    labels: BTreeMap<String, String>,
    selector: BTreeMap<String, String>,
    replicas: i32,
    image: String,
    args: Vec<String>,
    env: Value,
    port: i32,
    health_service: String,
    period_seconds: u64,
    timeout_seconds: u64,
    resources: Value,
}

/// Builds the context of a remote plugin.
pub fn plugin_context(plugin: &PrismPlugin) -> PluginContext {
    let name = plugin.name_any();
    let mut labels = labels("prism-plugin", &name, &plugin.spec.version, "plugin");
    labels.insert(PLUGIN_LABEL.into(), name.clone());
    let port = plugin_port(plugin);
    let (period, timeout) = probe_timing(plugin);
    PluginContext {
        namespace: plugin.namespace().unwrap_or_default(),
        fullname: plugin_fullname(&name),
        selector: selector("prism-plugin", &name),
        labels,
        replicas: plugin.spec.deployment.replicas.unwrap_or(2),
        image: plugin.spec.source.reference(),
        args: plugin_args(port),
        env: plugin_env(plugin),
        port,
        health_service: health_service(plugin),
        period_seconds: period,
        timeout_seconds: timeout,
        resources: resources_json(&plugin.spec.deployment.resources),
    }
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
}
