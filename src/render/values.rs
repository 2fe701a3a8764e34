//! Template values: everything a template sees, computed from the resources, with names,
//! labels and ports taken from [`contract`](super::contract).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::ResourceExt;
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::{
    PluginDeploymentType, PrismPlugin, PrismShard, ServiceType, ShardPlugin, duration_seconds,
};
use crate::render::contract::*;

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

/// The plugin container's environment: its name and version, then the plugin's own variables
/// (one with a rendered name takes its place).
fn plugin_env(plugin: &PrismPlugin) -> Value {
    let mut env = vec![
        json!({"name": "PRISM_PLUGIN_NAME", "value": plugin.name_any()}),
        json!({"name": "PRISM_PLUGIN_VERSION", "value": plugin.spec.version}),
    ];
    for var in &plugin.spec.deployment.env {
        let rendered = match &var.value_from {
            Some(from) => json!({"name": var.name, "valueFrom": from}),
            None => json!({"name": var.name, "value": var.value.clone().unwrap_or_default()}),
        };
        match env.iter_mut().find(|v| v["name"] == var.name.as_str()) {
            Some(slot) => *slot = rendered,
            None => env.push(rendered),
        }
    }
    Value::Array(env)
}

/// The plugin container's arguments: its configuration file when it has one, its ports, then
/// the plugin's own arguments.
fn plugin_args(plugin: &PrismPlugin, port: i32) -> Vec<String> {
    let config = plugin
        .spec
        .config_from
        .as_ref()
        .map(|_| format!("-config={PLUGIN_CONFIG_DIR}/{PLUGIN_CONFIG_FILE}"));
    config
        .into_iter()
        .chain([
            format!("-grpc-port={port}"),
            format!("-metrics-port={}", port + 1),
        ])
        .chain(plugin.spec.deployment.args.iter().cloned())
        .collect()
}

/// The Secret volume of the plugin's configuration file, named `volume`, if it has one.
fn plugin_config_volume(plugin: &PrismPlugin, volume: &str) -> Value {
    plugin
        .spec
        .config_from
        .as_ref()
        .map_or(Value::Null, |from| {
            json!({
                "name": volume,
                "secret": {
                    "secretName": from.secret_key_ref.name,
                    "items": [{"key": from.secret_key_ref.key, "path": PLUGIN_CONFIG_FILE}],
                    "defaultMode": 0o440,
                },
            })
        })
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
    volume_name: &'static str,
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
    monitoring: Option<Value>,
    expose: Value,
    network_policy: Option<Value>,
    sidecars: Vec<Value>,
    installs: Vec<Value>,
    /// The signal that stops the proxy container (`SIGINT`), when the shard names one.
    stop_signal: Option<&'static str>,
    /// The proxy's configuration file (`proxy.yaml` in the ConfigMap).
    pub config_data: String,
}

/// Whether `shard` gets NetworkPolicies: its own `networkPolicy.enabled`, else `default`.
pub fn wants_network_policies(shard: &PrismShard, default: bool) -> bool {
    shard
        .spec
        .network_policy
        .as_ref()
        .and_then(|p| p.enabled)
        .unwrap_or(default)
}

/// What the expose templates see: `ingress` or `grpc_route` (null when the shard has none).
fn expose_json(shard: &PrismShard) -> Value {
    let Some(expose) = shard.spec.expose.as_ref() else {
        return Value::Null;
    };
    json!({
        "ingress": expose.ingress.as_ref().map(|i| json!({
            "class_name": i.class_name,
            "hosts": i.hosts,
            "tls_secret_name": i.tls_secret_name,
            "annotations": i.annotations,
        })),
        "grpc_route": expose.grpc_route.as_ref().map(|r| json!({
            "parent_refs": r.parent_refs.iter().map(|p| json!({
                "name": p.name,
                "namespace": p.namespace,
                "section_name": p.section_name,
                "port": p.port,
            })).collect::<Vec<_>>(),
            "hostnames": r.hostnames,
            "annotations": r.annotations,
        })),
    })
}

/// What the shard's NetworkPolicy template sees, when it has one.
fn network_policy_json(shard: &PrismShard) -> Value {
    let policy = shard.spec.network_policy.clone().unwrap_or_default();
    let clients = match policy.clients.is_empty() {
        // Pods of the shard's own namespace.
        true => json!([{"podSelector": {}}]),
        false => serde_json::to_value(&policy.clients).expect("peers serialize"),
    };
    let mut types = vec!["Ingress"];
    if policy.egress.is_some() {
        types.push("Egress");
    }
    json!({
        "clients": clients,
        "monitoring_namespace": policy.monitoring_namespace.as_deref().unwrap_or("monitoring"),
        "policy_types": types,
        "egress": policy.egress,
    })
}

/// Builds the shard context. `plugins` must already be resolved and checked;
/// `network_policies` is the default for shards that do not say; `prometheus_url` is where
/// KEDA reads the request rate.
pub fn shard_context(
    shard: &PrismShard,
    plugins: &[PluginUse<'_>],
    default_image: &str,
    network_policies: bool,
    prometheus_url: Option<&str>,
) -> ShardContext {
    let name = shard.name_any();
    let namespace = shard.namespace().unwrap_or_default();
    let spec = &shard.spec;
    let image = spec
        .image
        .clone()
        .unwrap_or_else(|| default_image.to_string());
    let mut labels = labels(PROXY_NAME, &name, image_tag(&image), "proxy");
    labels.insert(SHARD_LABEL.into(), name.clone());
    let wiring = PluginWiring::of(plugins, &namespace);
    let autoscaling = autoscaling_json(shard, &namespace, &name, prometheus_url);
    ShardContext {
        fullname: shard_fullname(&name),
        headless_name: format!("{}-headless", shard_fullname(&name)),
        config_name: shard_fullname(&name),
        volume_name: CONFIG_VOLUME,
        selector: selector(PROXY_NAME, &name),
        monitoring: monitoring_json(shard, &labels),
        labels,
        pod_annotations: wiring.pod_annotations,
        replicas: if autoscaling.is_some() {
            None
        } else {
            Some(spec.replicas_or_default())
        },
        image,
        resources: resources_json(&spec.resources),
        proxy_env: proxy_env(&name, wiring.env, !wiring.installs.is_empty()),
        ports: json!({"data": DATA_PORT, "metrics": METRICS_PORT}),
        storage: storage_json(shard),
        service: service_json(shard),
        autoscaling,
        expose: expose_json(shard),
        network_policy: wants_network_policies(shard, network_policies)
            .then(|| network_policy_json(shard)),
        sidecars: wiring.sidecars,
        installs: wiring.installs,
        stop_signal: spec.stop_signal.map(|s| s.name()),
        config_data: config_data(shard, &name, &namespace, wiring.config_plugins),
        namespace,
    }
}

/// What a shard's plugins add to its pod and its config file.
#[derive(Default)]
struct PluginWiring {
    /// Proxy environment variables (plugin addresses) by name.
    env: BTreeMap<String, String>,
    sidecars: Vec<Value>,
    installs: Vec<Value>,
    pod_annotations: BTreeMap<String, String>,
    /// The config file's `plugins` entries.
    config_plugins: Vec<Value>,
}

impl PluginWiring {
    /// The wiring of `plugins` (of a shard in `namespace`), in plugin name order.
    fn of(plugins: &[PluginUse<'_>], namespace: &str) -> Self {
        let mut plugins: Vec<&PluginUse> = plugins.iter().collect();
        plugins.sort_by(|a, b| a.entry.name.cmp(&b.entry.name));
        let mut wiring = Self::default();
        for (i, p) in plugins.iter().enumerate() {
            wiring.add(i, p, namespace);
        }
        wiring
    }

    /// Adds the `i`th plugin.
    fn add(&mut self, i: usize, p: &PluginUse<'_>, namespace: &str) {
        let pname = p.plugin.name_any();
        let image = p.plugin.spec.source.reference();
        let port = p.port();
        self.pod_annotations.insert(
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
                self.env.insert(addr_env_name(&pname), addr.clone());
                entry["address"] = addr.into();
                self.sidecars
                    .push(sidecar_json(p.plugin, &pname, &image, port, i));
            }
            PluginDeploymentType::InProcess => {
                let target = format!("{PLUGIN_DIR}/{pname}");
                entry["path"] = target.clone().into();
                self.installs
                    .push(install_json(p.plugin, &pname, &image, target));
            }
            PluginDeploymentType::Remote => {
                let addr = format!("{}.{namespace}.svc:{port}", plugin_fullname(&pname));
                self.env.insert(addr_env_name(&pname), addr.clone());
                entry["address"] = addr.into();
            }
        }
        self.config_plugins.push(entry);
    }
}

/// The container of a sidecar plugin, the `i`th of the shard's plugins.
fn sidecar_json(plugin: &PrismPlugin, name: &str, image: &str, port: i32, i: usize) -> Value {
    let (period, timeout) = probe_timing(plugin);
    json!({
        "container": format!("plugin-{name}"),
        "image": image,
        "args": plugin_args(plugin, port),
        "env": plugin_env(plugin),
        "config_volume": plugin_config_volume(plugin, &format!("plugin-config-{i}")),
        "config_dir": PLUGIN_CONFIG_DIR,
        "port": port,
        "port_name": format!("plugin-{i}"),
        "health_service": health_service(plugin),
        "period_seconds": period,
        "timeout_seconds": timeout,
        "resources": resources_json(&plugin.spec.deployment.resources),
    })
}

/// The init container installing an in-process plugin into `target`.
fn install_json(plugin: &PrismPlugin, name: &str, image: &str, target: String) -> Value {
    let source = plugin
        .spec
        .deployment
        .artifact_path
        .as_deref()
        .unwrap_or("/plugin");
    json!({
        "container": format!("install-{name}"),
        "image": image,
        "source": format!("{}/.", source.trim_end_matches('/')),
        "target": target,
        "resources": resources_json(&plugin.spec.deployment.resources),
    })
}

/// The proxy container's environment: the pod's identity, then the `PRISM_*` variables (the
/// plugins' among them) in name order.
fn proxy_env(name: &str, mut prism_env: BTreeMap<String, String>, installs: bool) -> Vec<Value> {
    let mut env = vec![
        json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
        json!({"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}),
    ];
    prism_env.insert("PRISM_SHARD".into(), name.to_string());
    prism_env.insert("PRISM_CONFIG".into(), "/etc/prism/proxy.yaml".into());
    prism_env.insert("PRISM_DATA_DIR".into(), "/var/lib/prism".into());
    if installs {
        prism_env.insert("PRISM_PLUGIN_DIR".into(), PLUGIN_DIR.into());
    }
    env.extend(
        prism_env
            .into_iter()
            .map(|(k, v)| json!({"name": k, "value": v})),
    );
    env
}

/// What the autoscaling templates see, when the shard autoscales.
fn autoscaling_json(
    shard: &PrismShard,
    namespace: &str,
    name: &str,
    prometheus_url: Option<&str>,
) -> Option<Value> {
    shard
        .spec
        .autoscaling
        .as_ref()
        .filter(|a| a.enabled)
        .map(|a| {
            json!({
                "min_replicas": a.min_replicas,
                "max_replicas": a.max_replicas,
                "target_rps": a.target_rps,
                "target_cpu": a.target_cpu_utilization,
                "rps_query": shard_rps_query(namespace, name),
                "prometheus_url": prometheus_url,
            })
        })
}

/// What the PodMonitor template sees, when the shard has one; `labels` are the shard's.
fn monitoring_json(shard: &PrismShard, labels: &BTreeMap<String, String>) -> Option<Value> {
    let p = shard.spec.monitoring.as_ref()?.pod_monitor.as_ref()?;
    let mut monitor_labels = labels.clone();
    monitor_labels.extend(p.labels.clone());
    Some(json!({
        "interval": p.interval.as_deref().unwrap_or("30s"),
        "labels": monitor_labels,
    }))
}

/// The volume claim template's size and class.
fn storage_json(shard: &PrismShard) -> Value {
    let storage = shard.spec.storage.as_ref();
    json!({
        "size": storage.and_then(|s| s.size.as_ref()).map_or("10Gi".to_string(), |q| q.0.clone()),
        "class": storage.and_then(|s| s.storage_class_name.clone()),
    })
}

/// The client Service's type and annotations.
fn service_json(shard: &PrismShard) -> Value {
    let service = shard.spec.service.as_ref();
    json!({
        "type": match service.map(|s| s.type_).unwrap_or_default() {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::LoadBalancer => "LoadBalancer",
        },
        "annotations": service.map(|s| s.annotations.clone()).unwrap_or_default(),
    })
}

/// The proxy's config file (the ConfigMap's data), as YAML.
fn config_data(shard: &PrismShard, name: &str, namespace: &str, plugins: Vec<Value>) -> String {
    let spec = &shard.spec;
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
        "plugins": plugins,
    });
    serde_yaml::to_string(&config).expect("config serializes")
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
    config_volume: Value,
    config_dir: &'static str,
    port: i32,
    health_service: String,
    period_seconds: u64,
    timeout_seconds: u64,
    resources: Value,
    network_policy: Option<Value>,
}

impl PluginContext {
    /// Whether the plugin gets a NetworkPolicy.
    pub fn protected(&self) -> bool {
        self.network_policy.is_some()
    }
}

/// Builds the context of a remote plugin used by the shards `users` (every shard of its
/// namespace listing it). It gets a NetworkPolicy when one of them wants policies, or, used by
/// none, when that is the default.
pub fn plugin_context(
    plugin: &PrismPlugin,
    users: &[&PrismShard],
    network_policies: bool,
) -> PluginContext {
    let name = plugin.name_any();
    let mut labels = labels("prism-plugin", &name, &plugin.spec.version, "plugin");
    labels.insert(PLUGIN_LABEL.into(), name.clone());
    let port = plugin_port(plugin);
    let (period, timeout) = probe_timing(plugin);
    let protected = match users.is_empty() {
        true => network_policies,
        false => users
            .iter()
            .any(|s| wants_network_policies(s, network_policies)),
    };
    let shards: std::collections::BTreeSet<String> = users.iter().map(|s| s.name_any()).collect();
    PluginContext {
        namespace: plugin.namespace().unwrap_or_default(),
        fullname: plugin_fullname(&name),
        selector: selector("prism-plugin", &name),
        labels,
        replicas: plugin.spec.deployment.replicas.unwrap_or(2),
        image: plugin.spec.source.reference(),
        args: plugin_args(plugin, port),
        env: plugin_env(plugin),
        config_volume: plugin_config_volume(plugin, "plugin-config"),
        config_dir: PLUGIN_CONFIG_DIR,
        port,
        health_service: health_service(plugin),
        period_seconds: period,
        timeout_seconds: timeout,
        resources: resources_json(&plugin.spec.deployment.resources),
        network_policy: protected.then(|| json!({"proxy_name": PROXY_NAME, "shards": shards})),
    }
}
