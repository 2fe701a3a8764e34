//! Synthetic Prism fleets for the benchmarks and the fairness test: N shards, M plugins per
//! Kubernetes namespace and K PrismNamespaces, reproducible from a seed (a small LCG, no
//! external RNG), plus the inputs the same fleet needs for Helm (`benches/helm-fleet`) and
//! Kustomize.
//!
//! Shape of a fleet (see BENCHMARKS.md):
//! - shards come in products of 4 (features `live`, `vod`, `batch`, `edge`), 10 products per
//!   Kubernetes namespace (`prism-<team>`), so 40 shards per Kubernetes namespace;
//! - every Kubernetes namespace has M plugins (3 ≤ M ≤ 12) cycling through the deployment
//!   types sidecar, in-process and remote; each shard loads 1–3 of them with a version
//!   requirement the plugin satisfies and serves their backends; about a third autoscale;
//! - PrismNamespace j targets shard j mod N with one of its backends and a selector drawn from
//!   product, product+feature, name, product+slaTier or none, so every namespace is placeable
//!   and many go through rendezvous hashing among several candidates.
//!
//! Used by `benches/render.rs`, `benches/gen_fleet.rs` and `tests/bench_fair.rs`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use prism_api::{
    AccessPattern, AuthProvider, Autoscaling, Caching, Consistency, GrpcHealthCheck, HealthCheck,
    NamespaceAuth, PluginDeployment, PluginDeploymentType, PluginSource, PrismNamespace,
    PrismNamespaceSpec, PrismPlugin, PrismPluginSpec, PrismShard, PrismShardSpec, RateLimit,
    ReclaimPolicy, RolloutPolicy, SecretKeySelector, ServiceType, ShardPlugin, ShardSelector,
    ShardService, ShardStorage, ValueSource,
};
use serde_json::{Value, json};

/// Shards per product (one per feature).
pub const SHARDS_PER_PRODUCT: usize = 4;
/// Products per Kubernetes namespace.
pub const PRODUCTS_PER_NAMESPACE: usize = 10;
/// Shards per Kubernetes namespace.
pub const SHARDS_PER_K8S_NAMESPACE: usize = SHARDS_PER_PRODUCT * PRODUCTS_PER_NAMESPACE;
/// Proxy image of shards without `spec.image` (prism-render's default; the Helm chart's too).
pub const DEFAULT_PROXY_IMAGE: &str = prism_render::render::DEFAULT_PROXY_IMAGE;

const TEAMS: &[&str] = &[
    "media", "commerce", "identity", "growth", "platform", "data", "social", "search",
];
const PRODUCTS: &[&str] = &[
    "playback",
    "catalog",
    "billing",
    "profiles",
    "ads",
    "messaging",
    "analytics",
    "payments",
    "reviews",
    "inventory",
];
const FEATURES: &[&str] = &["live", "vod", "batch", "edge"];
const TIERS: &[&str] = &["p99_10ms", "p99_50ms", "p99_100ms"];
/// Plugin (and backend) names in catalogue order; plugin i runs as `TYPES[i % 3]`.
const CATALOGUE: &[&str] = &[
    "postgres",
    "redis",
    "kafka",
    "nats",
    "mongodb",
    "cassandra",
    "mysql",
    "memcached",
    "pulsar",
    "dynamodb",
    "etcd",
    "clickhouse",
];
const TYPES: &[PluginDeploymentType] = &[
    PluginDeploymentType::Sidecar,
    PluginDeploymentType::InProcess,
    PluginDeploymentType::Remote,
];
const DATA_WORDS: &[&str] = &[
    "user-profiles",
    "sessions",
    "orders",
    "carts",
    "events",
    "history",
    "tokens",
    "feeds",
    "inbox",
    "devices",
    "audit",
    "metrics",
];

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetParams {
    /// PrismShards.
    pub shards: usize,
    /// PrismPlugins per Kubernetes namespace (3–12).
    pub plugins: usize,
    /// PrismNamespaces in total.
    pub namespaces: usize,
    /// Seed of the generator.
    pub seed: u64,
}

impl FleetParams {
    /// `shards` shards, 6 plugins per Kubernetes namespace, 10 namespaces per shard, seed 1.
    pub fn new(shards: usize) -> Self {
        Self {
            shards,
            plugins: 6,
            namespaces: shards * 10,
            seed: 1,
        }
    }
}

/// A 64-bit linear congruential generator (Knuth's MMIX constants); the high bits are used.
#[derive(Debug, Clone)]
pub struct Lcg(u64);

impl Lcg {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut g = Self(seed ^ 0x9E37_79B9_7F4A_7C15);
        g.next_u32();
        g
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 32) as u32
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u32() as u64 * n as u64) >> 32) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as usize) as i64
    }

    /// True with `percent`% probability.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// One element of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A generated fleet, each list sorted by Kubernetes namespace and name.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// PrismShards.
    pub shards: Vec<PrismShard>,
    /// PrismPlugins.
    pub plugins: Vec<PrismPlugin>,
    /// PrismNamespaces.
    pub namespaces: Vec<PrismNamespace>,
}

fn quantity(s: &str) -> Quantity {
    Quantity(s.to_string())
}

fn resources(cpu: (&str, &str), memory: (&str, &str)) -> ResourceRequirements {
    let pair = |cpu: &str, mem: &str| {
        BTreeMap::from([
            ("cpu".to_string(), quantity(cpu)),
            ("memory".to_string(), quantity(mem)),
        ])
    };
    ResourceRequirements {
        requests: Some(pair(cpu.0, memory.0)),
        limits: Some(pair(cpu.1, memory.1)),
        ..Default::default()
    }
}

/// Name of the `t`-th Kubernetes namespace.
pub fn k8s_namespace(t: usize) -> String {
    let team = TEAMS[t % TEAMS.len()];
    match t / TEAMS.len() {
        0 => format!("prism-{team}"),
        n => format!("prism-{team}-{}", n + 1),
    }
}

struct PluginInfo {
    name: String,
    version: (u64, u64, u64),
}

/// Generates the fleet described by `p`. Panics on parameters it cannot honour.
pub fn generate(p: &FleetParams) -> Fleet {
    assert!(p.shards >= 1, "at least one shard");
    assert!(
        (3..=CATALOGUE.len()).contains(&p.plugins),
        "plugins per namespace must be 3..={}",
        CATALOGUE.len()
    );
    let mut rng = Lcg::new(p.seed);
    let teams = p.shards.div_ceil(SHARDS_PER_K8S_NAMESPACE);
    let mut plugins = Vec::new();
    let mut catalogues: Vec<Vec<PluginInfo>> = Vec::new();
    for t in 0..teams {
        let ns = k8s_namespace(t);
        let mut infos = Vec::new();
        for (i, name) in CATALOGUE.iter().take(p.plugins).enumerate() {
            let version = (
                rng.range(0, 3) as u64,
                rng.range(0, 12) as u64,
                rng.range(0, 9) as u64,
            );
            plugins.push(plugin(&mut rng, &ns, name, i, version));
            infos.push(PluginInfo {
                name: name.to_string(),
                version,
            });
        }
        catalogues.push(infos);
    }

    let mut shards = Vec::with_capacity(p.shards);
    for i in 0..p.shards {
        let t = i / SHARDS_PER_K8S_NAMESPACE;
        shards.push(shard(&mut rng, i, &k8s_namespace(t), &catalogues[t]));
    }

    let mut namespaces = Vec::with_capacity(p.namespaces);
    for j in 0..p.namespaces {
        namespaces.push(namespace(&mut rng, j, &shards[j % p.shards]));
    }

    let key = |ns: Option<String>, name: String| (ns.unwrap_or_default(), name);
    shards.sort_by_key(|s| key(s.namespace(), s.name_any()));
    plugins.sort_by_key(|s| key(s.namespace(), s.name_any()));
    namespaces.sort_by_key(|s| key(s.namespace(), s.name_any()));
    Fleet {
        shards,
        plugins,
        namespaces,
    }
}

fn plugin(
    rng: &mut Lcg,
    ns: &str,
    name: &str,
    index: usize,
    (major, minor, patch): (u64, u64, u64),
) -> PrismPlugin {
    let type_ = TYPES[index % TYPES.len()];
    let version = format!("{major}.{minor}.{patch}");
    let res = match type_ {
        PluginDeploymentType::Sidecar => resources(("250m", "1"), ("256Mi", "512Mi")),
        PluginDeploymentType::InProcess => resources(("50m", "200m"), ("32Mi", "64Mi")),
        PluginDeploymentType::Remote => resources(("500m", "2"), ("512Mi", "1Gi")),
    };
    // Distinct ports per namespace, so the sidecars of one pod never collide.
    let port = 50100 + 100 * index as i32;
    let health_check = match type_ {
        PluginDeploymentType::InProcess if rng.chance(50) => None,
        _ => Some(HealthCheck {
            grpc: Some(GrpcHealthCheck {
                port: Some(port),
                service: rng.chance(25).then(|| format!("prism.plugin.{name}")),
            }),
            interval: rng
                .chance(70)
                .then(|| rng.pick(&["5s", "10s", "15s", "1m"]).to_string()),
            timeout: rng
                .chance(60)
                .then(|| rng.pick(&["500ms", "2s", "3s"]).to_string()),
        }),
    };
    let mut p = PrismPlugin::new(
        name,
        PrismPluginSpec {
            version: version.clone(),
            source: PluginSource {
                registry: "ghcr.io/prism/plugins".into(),
                image: format!("{name}-plugin:{version}"),
            },
            deployment: PluginDeployment {
                type_,
                resources: Some(res),
                replicas: (type_ == PluginDeploymentType::Remote).then(|| rng.range(2, 4) as i32),
                artifact_path: (type_ == PluginDeploymentType::InProcess && rng.chance(50))
                    .then(|| "/opt/plugin".to_string()),
            },
            health_check,
            rollout: rng.chance(50).then(|| RolloutPolicy {
                max_unavailable_shards: Some(rng.range(1, 3) as i32),
                progress_deadline: Some(rng.pick(&["5m", "10m", "30m"]).to_string()),
            }),
        },
    );
    p.metadata.namespace = Some(ns.to_string());
    p
}

fn shard(rng: &mut Lcg, i: usize, ns: &str, catalogue: &[PluginInfo]) -> PrismShard {
    let local = i % SHARDS_PER_K8S_NAMESPACE;
    let product = PRODUCTS[local / SHARDS_PER_PRODUCT];
    let feature = FEATURES[local % SHARDS_PER_PRODUCT];
    let name = format!("{product}-{feature}");

    let count = rng.range(1, 3) as usize;
    let mut chosen: Vec<usize> = Vec::new();
    while chosen.len() < count {
        let c = rng.below(catalogue.len());
        if !chosen.contains(&c) {
            chosen.push(c);
        }
    }
    let plugins: Vec<ShardPlugin> = chosen
        .iter()
        .map(|&c| {
            let info = &catalogue[c];
            let (major, minor, patch) = info.version;
            let version = match rng.below(4) {
                0 => format!("{major}.{minor}"),
                1 => format!("{major}"),
                2 => format!("~{major}.{minor}"),
                _ => format!("{major}.{minor}.{patch}"),
            };
            ShardPlugin {
                name: info.name.clone(),
                version,
                deployment: None,
            }
        })
        .collect();
    let backends = plugins.iter().map(|p| p.name.clone()).collect();

    let replicas = rng.range(2, 6) as i32;
    let autoscaling = rng.chance(33).then(|| {
        let cpu = rng.chance(40);
        Autoscaling {
            enabled: true,
            provider: Default::default(),
            min_replicas: 2,
            max_replicas: rng.range(10, 30) as i32,
            target_rps: (!cpu || rng.chance(50)).then(|| rng.range(2, 20) * 500),
            target_cpu_utilization: cpu.then(|| rng.range(50, 80) as i32),
        }
    });
    let size = rng.pick(&[("1", "2Gi", "2", "4Gi"), ("2", "4Gi", "4", "8Gi")]);
    let mut s = PrismShard::new(
        &name,
        PrismShardSpec {
            product: product.into(),
            feature: Some(feature.into()),
            sla_tier: Some(rng.pick(TIERS).to_string()),
            replicas,
            backends,
            resources: Some(resources((size.0, size.2), (size.1, size.3))),
            plugins,
            autoscaling,
            image: rng
                .chance(85)
                .then(|| format!("ghcr.io/prism/prism-proxy:0.4.{}", rng.range(0, 3))),
            storage: rng.chance(50).then(|| ShardStorage {
                size: Some(quantity(rng.pick::<&str>(&["10Gi", "20Gi", "50Gi"]))),
                storage_class_name: rng.chance(50).then(|| "ssd".to_string()),
            }),
            service: if rng.chance(20) {
                Some(ShardService {
                    type_: ServiceType::LoadBalancer,
                    annotations: BTreeMap::from([(
                        "service.beta.kubernetes.io/aws-load-balancer-internal".to_string(),
                        "true".to_string(),
                    )]),
                })
            } else {
                None
            },
            admin_endpoint: None,
            expose: None,
            network_policy: None,
            monitoring: None,
        },
    );
    s.metadata.namespace = Some(ns.to_string());
    s
}

fn namespace(rng: &mut Lcg, j: usize, target: &PrismShard) -> PrismNamespace {
    let spec = &target.spec;
    let backend = rng.pick(&spec.backends).clone();
    let pattern = match backend.as_str() {
        "kafka" | "pulsar" => *rng.pick(&[
            AccessPattern::Producer,
            AccessPattern::Consumer,
            AccessPattern::Stream,
        ]),
        "nats" => *rng.pick(&[AccessPattern::Pubsub, AccessPattern::Queue]),
        "redis" | "memcached" => *rng.pick(&[
            AccessPattern::Keyvalue,
            AccessPattern::Mailbox,
            AccessPattern::MulticastRegistry,
        ]),
        _ => AccessPattern::Keyvalue,
    };
    let selector = match rng.below(100) {
        0..40 => Some(ShardSelector {
            product: Some(spec.product.clone()),
            ..Default::default()
        }),
        40..65 => Some(ShardSelector {
            product: Some(spec.product.clone()),
            feature: spec.feature.clone(),
            ..Default::default()
        }),
        65..80 => Some(ShardSelector {
            name: Some(target.name_any()),
            ..Default::default()
        }),
        80..90 => Some(ShardSelector {
            product: Some(spec.product.clone()),
            sla_tier: spec.sla_tier.clone(),
            ..Default::default()
        }),
        _ => None,
    };
    let name = format!("{}-{j:05}", rng.pick(DATA_WORDS));
    let sql = matches!(
        backend.as_str(),
        "postgres" | "mysql" | "mongodb" | "cassandra" | "clickhouse"
    );
    let mut backend_config = BTreeMap::new();
    if sql {
        backend_config.insert("pool_size".to_string(), json!(rng.range(4, 32)));
    } else if rng.chance(50) {
        backend_config.insert("prefix".to_string(), json!(format!("{name}/")));
    }
    let mut n = PrismNamespace::new(
        &name,
        PrismNamespaceSpec {
            backend,
            pattern,
            consistency: Some(*rng.pick(&[
                Consistency::Strong,
                Consistency::Eventual,
                Consistency::Causal,
            ])),
            backend_config,
            connection_string_from: sql.then(|| ValueSource {
                secret_key_ref: SecretKeySelector {
                    name: format!("{name}-db"),
                    key: "connection-string".into(),
                },
            }),
            caching: rng.chance(30).then(|| Caching {
                enabled: true,
                ttl: Some(rng.pick(&["60s", "300s", "1h"]).to_string()),
            }),
            rate_limit: rng.chance(50).then(|| RateLimit {
                rps: rng.range(1, 100) * 500,
                burst: None,
            }),
            shard: selector,
            auth: rng.chance(10).then(|| NamespaceAuth {
                enabled: true,
                provider: AuthProvider::Oidc,
                options: BTreeMap::from([(
                    "issuer".to_string(),
                    "https://auth.example.com".to_string(),
                )]),
            }),
            reclaim_policy: rng.chance(20).then_some(ReclaimPolicy::Delete),
        },
    );
    n.metadata.namespace = target.namespace();
    if rng.chance(10) {
        n.metadata.labels = Some(BTreeMap::from([(
            "team".to_string(),
            target.namespace().unwrap_or_default(),
        )]));
    }
    n
}

/// A custom resource as its input document: without status, keys in serde's order.
pub fn resource_value<K: serde::Serialize>(k: &K) -> Value {
    let mut v = serde_json::to_value(k).expect("resources serialize");
    if let Some(map) = v.as_object_mut() {
        map.remove("status");
    }
    v
}

fn yaml_stream<'a>(header: &str, docs: impl Iterator<Item = &'a Value>) -> String {
    let mut out = format!("# {header}\n");
    for d in docs {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(d).expect("YAML serializes"));
    }
    out
}

impl Fleet {
    /// Generates the fleet of `params`.
    pub fn new(params: &FleetParams) -> Self {
        generate(params)
    }

    /// Kubernetes namespaces in use, sorted.
    pub fn k8s_namespaces(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .shards
            .iter()
            .filter_map(|s| s.namespace())
            .chain(self.plugins.iter().filter_map(|p| p.namespace()))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The fleet as input files: `<k8s-namespace>/{plugins,shards,namespaces}.yaml`.
    pub fn files(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for ns in self.k8s_namespaces() {
            let inside = |v: Option<String>| v.as_deref() == Some(ns.as_str());
            let plugins: Vec<Value> = self
                .plugins
                .iter()
                .filter(|p| inside(p.namespace()))
                .map(resource_value)
                .collect();
            let shards: Vec<Value> = self
                .shards
                .iter()
                .filter(|p| inside(p.namespace()))
                .map(resource_value)
                .collect();
            let namespaces: Vec<Value> = self
                .namespaces
                .iter()
                .filter(|p| inside(p.namespace()))
                .map(resource_value)
                .collect();
            out.push((
                format!("{ns}/plugins.yaml"),
                yaml_stream("Generated PrismPlugins", plugins.iter()),
            ));
            out.push((
                format!("{ns}/shards.yaml"),
                yaml_stream("Generated PrismShards", shards.iter()),
            ));
            out.push((
                format!("{ns}/namespaces.yaml"),
                yaml_stream("Generated PrismNamespaces", namespaces.iter()),
            ));
        }
        out
    }

    /// The fleet as one YAML stream, as the CLI reads it from stdin.
    pub fn stream(&self) -> String {
        let mut out = String::new();
        for (_, text) in self.files() {
            out.push_str(&text);
        }
        out
    }

    /// The values file of `benches/helm-fleet`: the same resources, as data.
    pub fn helm_values(&self) -> String {
        let values = json!({
            "proxyImage": DEFAULT_PROXY_IMAGE,
            "plugins": self.plugins.iter().map(resource_value).collect::<Vec<_>>(),
            "shards": self.shards.iter().map(resource_value).collect::<Vec<_>>(),
            "namespaces": self.namespaces.iter().map(resource_value).collect::<Vec<_>>(),
        });
        let mut out = String::from(
            "# Generated by benches/gen_fleet.rs from the same fleet as the PrismShard/PrismPlugin/\n# PrismNamespace files beside it.\n",
        );
        out.push_str(&serde_yaml::to_string(&values).expect("YAML serializes"));
        out
    }

    /// A one-line summary: counts by kind and deployment type.
    pub fn summary(&self) -> String {
        let mut types = BTreeMap::new();
        for p in &self.plugins {
            *types.entry(p.spec.deployment.type_.as_str()).or_insert(0) += 1;
        }
        let autoscaled = self
            .shards
            .iter()
            .filter(|s| s.spec.autoscaling.as_ref().is_some_and(|a| a.enabled))
            .count();
        let mut s = format!(
            "{} shards ({} autoscaled), {} plugins (",
            self.shards.len(),
            autoscaled,
            self.plugins.len()
        );
        for (i, (t, n)) in types.iter().enumerate() {
            let _ = write!(s, "{}{n} {t}", if i > 0 { ", " } else { "" });
        }
        let _ = write!(
            s,
            "), {} namespaces in {} Kubernetes namespaces",
            self.namespaces.len(),
            self.k8s_namespaces().len()
        );
        s
    }
}

/// Renders `fleet` with the library, as `prism-render render` does.
pub fn render(fleet: &Fleet) -> Result<Vec<prism_render::render::Object>, String> {
    let parsed = prism_render::source::fleet_from_files(fleet.files(), "default")
        .map_err(|e| e.to_string())?;
    prism_render::render::Renderer::embedded()
        .render_fleet(&parsed)
        .map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// Kustomize: the same objects from a base, a component and one overlay per shard and remote
// plugin. Kustomize cannot resolve plugins, place namespaces or hash pod templates, so those
// results are pre-expanded from prism-render's output into the overlays' patches; Kustomize
// loads every overlay with its base, merges the patches (strategic merge and JSON 6902),
// renames objects and fixes the references to them, sets namespaces and adds labels.

/// Kustomize's `apiVersion` of a kustomization.
const KUSTOMIZE_API: &str = "kustomize.config.k8s.io/v1beta1";

const BASE_SHARD: &[(&str, &str)] = &[
    (
        "kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- configmap.yaml
- headless-service.yaml
- service.yaml
- statefulset.yaml
- pdb.yaml
",
    ),
    (
        "configmap.yaml",
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: prism
  labels:
    app.kubernetes.io/name: prism-proxy
    app.kubernetes.io/component: proxy
    app.kubernetes.io/part-of: prism
    app.kubernetes.io/managed-by: prism-operator
data:
  proxy.yaml: \"\"
",
    ),
    (
        "headless-service.yaml",
        "apiVersion: v1
kind: Service
metadata:
  name: prism-headless
  labels:
    app.kubernetes.io/name: prism-proxy
    app.kubernetes.io/component: proxy
    app.kubernetes.io/part-of: prism
    app.kubernetes.io/managed-by: prism-operator
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector:
    app.kubernetes.io/name: prism-proxy
  ports:
  - name: grpc
    port: 8980
    targetPort: grpc
    protocol: TCP
  - name: metrics
    port: 9090
    targetPort: metrics
    protocol: TCP
",
    ),
    (
        "service.yaml",
        "apiVersion: v1
kind: Service
metadata:
  name: prism
  labels:
    app.kubernetes.io/name: prism-proxy
    app.kubernetes.io/component: proxy
    app.kubernetes.io/part-of: prism
    app.kubernetes.io/managed-by: prism-operator
spec:
  type: ClusterIP
  selector:
    app.kubernetes.io/name: prism-proxy
  ports:
  - name: grpc
    port: 8980
    targetPort: grpc
    protocol: TCP
    appProtocol: kubernetes.io/h2c
",
    ),
    (
        "pdb.yaml",
        "apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: prism
  labels:
    app.kubernetes.io/name: prism-proxy
    app.kubernetes.io/component: proxy
    app.kubernetes.io/part-of: prism
    app.kubernetes.io/managed-by: prism-operator
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: prism-proxy
",
    ),
    (
        "statefulset.yaml",
        "apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: prism
  labels:
    app.kubernetes.io/name: prism-proxy
    app.kubernetes.io/component: proxy
    app.kubernetes.io/part-of: prism
    app.kubernetes.io/managed-by: prism-operator
spec:
  serviceName: prism-headless
  podManagementPolicy: Parallel
  revisionHistoryLimit: 10
  updateStrategy:
    type: RollingUpdate
  persistentVolumeClaimRetentionPolicy:
    whenDeleted: Retain
    whenScaled: Retain
  selector:
    matchLabels:
      app.kubernetes.io/name: prism-proxy
  template:
    metadata:
      labels:
        app.kubernetes.io/name: prism-proxy
        app.kubernetes.io/component: proxy
        app.kubernetes.io/part-of: prism
        app.kubernetes.io/managed-by: prism-operator
    spec:
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: 45
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        fsGroup: 65532
        fsGroupChangePolicy: OnRootMismatch
        seccompProfile:
          type: RuntimeDefault
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: ScheduleAnyway
        labelSelector:
          matchLabels:
            app.kubernetes.io/name: prism-proxy
      - maxSkew: 1
        topologyKey: topology.kubernetes.io/zone
        whenUnsatisfiable: ScheduleAnyway
        labelSelector:
          matchLabels:
            app.kubernetes.io/name: prism-proxy
      containers:
      - name: proxy
        image: proxy
        imagePullPolicy: IfNotPresent
        ports:
        - name: grpc
          containerPort: 8980
          protocol: TCP
        - name: metrics
          containerPort: 9090
          protocol: TCP
        startupProbe:
          tcpSocket:
            port: grpc
          periodSeconds: 2
          failureThreshold: 60
        readinessProbe:
          tcpSocket:
            port: grpc
          periodSeconds: 5
          failureThreshold: 2
        livenessProbe:
          tcpSocket:
            port: grpc
          periodSeconds: 10
          failureThreshold: 3
        lifecycle:
          preStop:
            sleep:
              seconds: 5
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          runAsNonRoot: true
          capabilities:
            drop: [ALL]
          seccompProfile:
            type: RuntimeDefault
        volumeMounts:
        - name: config
          mountPath: /var/lib/prism
        - name: proxy-config
          mountPath: /etc/prism
          readOnly: true
        - name: tmp
          mountPath: /tmp
      volumes:
      - name: proxy-config
        configMap:
          name: prism
      - name: tmp
        emptyDir:
          sizeLimit: 256Mi
  volumeClaimTemplates:
  - apiVersion: v1
    kind: PersistentVolumeClaim
    metadata:
      name: config
      labels:
        app.kubernetes.io/name: prism-proxy
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 10Gi
",
    ),
];

const AUTOSCALING_COMPONENT: &[(&str, &str)] = &[
    (
        "kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
resources:
- hpa.yaml
",
    ),
    (
        "hpa.yaml",
        "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: prism
  labels:
    app.kubernetes.io/name: prism-proxy
    app.kubernetes.io/component: proxy
    app.kubernetes.io/part-of: prism
    app.kubernetes.io/managed-by: prism-operator
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: StatefulSet
    name: prism
  minReplicas: 1
  maxReplicas: 1
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 300
      policies:
      - type: Pods
        value: 1
        periodSeconds: 60
",
    ),
];

const BASE_PLUGIN: &[(&str, &str)] = &[
    (
        "kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- deployment.yaml
- service.yaml
- pdb.yaml
",
    ),
    (
        "deployment.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: prism-plugin
  labels:
    app.kubernetes.io/name: prism-plugin
    app.kubernetes.io/component: plugin
    app.kubernetes.io/part-of: prism
    app.kubernetes.io/managed-by: prism-operator
spec:
  replicas: 2
  revisionHistoryLimit: 10
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: prism-plugin
  template:
    metadata:
      labels:
        app.kubernetes.io/name: prism-plugin
        app.kubernetes.io/component: plugin
        app.kubernetes.io/part-of: prism
        app.kubernetes.io/managed-by: prism-operator
    spec:
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: 30
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        fsGroup: 65532
        fsGroupChangePolicy: OnRootMismatch
        seccompProfile:
          type: RuntimeDefault
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: ScheduleAnyway
        labelSelector:
          matchLabels:
            app.kubernetes.io/name: prism-plugin
      containers:
      - name: plugin
        image: plugin
        imagePullPolicy: IfNotPresent
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          runAsNonRoot: true
          capabilities:
            drop: [ALL]
          seccompProfile:
            type: RuntimeDefault
        volumeMounts:
        - name: tmp
          mountPath: /tmp
      volumes:
      - name: tmp
        emptyDir:
          sizeLimit: 256Mi
",
    ),
    (
        "service.yaml",
        "apiVersion: v1
kind: Service
metadata:
  name: prism-plugin
  labels:
    app.kubernetes.io/name: prism-plugin
    app.kubernetes.io/component: plugin
    app.kubernetes.io/part-of: prism
    app.kubernetes.io/managed-by: prism-operator
spec:
  type: ClusterIP
  selector:
    app.kubernetes.io/name: prism-plugin
",
    ),
    (
        "pdb.yaml",
        "apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: prism-plugin
  labels:
    app.kubernetes.io/name: prism-plugin
    app.kubernetes.io/component: plugin
    app.kubernetes.io/part-of: prism
    app.kubernetes.io/managed-by: prism-operator
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: prism-plugin
",
    ),
];

/// A strategic-merge patch of the object `kind`/`from` that also renames it.
fn rename_patch(api_version: &str, kind: &str, from: &str, body: Value) -> Value {
    let mut patch = json!({"apiVersion": api_version, "kind": kind});
    if let (Some(p), Some(b)) = (patch.as_object_mut(), body.as_object()) {
        p.extend(b.clone());
    }
    json!({
        "target": {"kind": kind, "name": from},
        "options": {"allowNameChange": true},
        "patch": serde_yaml::to_string(&patch).expect("YAML serializes"),
    })
}

fn labels_entries(instance: &str, extra: &Value) -> Value {
    json!([
        {"pairs": {"app.kubernetes.io/instance": instance}, "includeSelectors": true},
        {"pairs": extra, "includeTemplates": true},
    ])
}

fn kustomization(body: Value) -> String {
    let mut k = json!({"apiVersion": KUSTOMIZE_API, "kind": "Kustomization"});
    if let (Some(m), Some(b)) = (k.as_object_mut(), body.as_object()) {
        m.extend(b.clone());
    }
    serde_yaml::to_string(&k).expect("YAML serializes")
}

/// The Kustomize tree of `fleet`: `kustomization.yaml` at the top, `base/shard`,
/// `base/plugin`, `components/autoscaling`, `shards/<ns>/<shard>/kustomization.yaml`,
/// `plugins/<ns>/<plugin>/kustomization.yaml` and `resources/<ns>.yaml` (the custom resources,
/// namespaces annotated with their placement). `kustomize build` of the top gives the objects
/// prism-render renders.
pub fn kustomize_tree(fleet: &Fleet) -> Result<Vec<(String, String)>, String> {
    let objects = render(fleet)?;
    let find = |kind: &str, ns: &str, name: &str| -> Result<&Value, String> {
        objects
            .iter()
            .find(|o| o.kind == kind && o.namespace == ns && o.name == name)
            .map(|o| &o.value)
            .ok_or(format!("prism-render rendered no {kind} {ns}/{name}"))
    };
    let mut files: Vec<(String, String)> = Vec::new();
    let add = |dir: &str, set: &[(&str, &str)], files: &mut Vec<(String, String)>| {
        for (name, text) in set {
            files.push((format!("{dir}/{name}"), text.to_string()));
        }
    };
    add("base/shard", BASE_SHARD, &mut files);
    add("base/plugin", BASE_PLUGIN, &mut files);
    add("components/autoscaling", AUTOSCALING_COMPONENT, &mut files);

    let mut top: Vec<String> = Vec::new();
    for ns in fleet.k8s_namespaces() {
        let mut crs = String::from("# Custom resources, namespaces with their placement.\n");
        for o in objects
            .iter()
            .filter(|o| o.namespace == ns && o.kind.starts_with("Prism"))
        {
            crs.push_str("---\n");
            crs.push_str(&serde_yaml::to_string(&o.value).expect("YAML serializes"));
        }
        files.push((format!("resources/{ns}.yaml"), crs));
        top.push(format!("resources/{ns}.yaml"));
    }

    for shard in &fleet.shards {
        let ns = shard.namespace().unwrap_or_default();
        let name = shard.name_any();
        let full = format!("prism-{name}");
        let sts = find("StatefulSet", &ns, &full)?;
        let cm = find("ConfigMap", &ns, &full)?;
        let svc = find("Service", &ns, &full)?;
        let labels = &sts["metadata"]["labels"];
        let mut extra = json!({"prism.io/shard": name});
        if let Some(v) = labels.get("app.kubernetes.io/version") {
            extra["app.kubernetes.io/version"] = v.clone();
        }

        let pod = &sts["spec"]["template"]["spec"];
        let rendered_proxy = &pod["containers"][0];
        let mut proxy = json!({"name": "proxy", "image": rendered_proxy["image"], "env": rendered_proxy["env"]});
        if let Some(r) = rendered_proxy.get("resources") {
            proxy["resources"] = r.clone();
        }
        let mut pod_patch = json!({});
        if let Some(init) = pod.get("initContainers") {
            // New list items would go first: give the whole lists, in order.
            pod_patch["initContainers"] = init.clone();
            pod_patch["volumes"] = pod["volumes"].clone();
            proxy["volumeMounts"] = rendered_proxy["volumeMounts"].clone();
        }
        if pod_patch.get("volumes").is_none() {
            // References are given with their new names: the top-level build would find
            // every shard's base name ambiguous.
            pod_patch["volumes"] = json!([{"name": "proxy-config", "configMap": {"name": full}}]);
        }
        let mut containers = vec![proxy];
        containers.extend(
            pod["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .skip(1)
                .cloned(),
        );
        pod_patch["containers"] = Value::Array(containers);
        let mut sts_spec = json!({
            "serviceName": format!("{full}-headless"),
            "template": {
                "metadata": {"annotations": sts["spec"]["template"]["metadata"]["annotations"]},
                "spec": pod_patch,
            },
        });
        if let Some(r) = sts["spec"].get("replicas") {
            sts_spec["replicas"] = r.clone();
        }
        let mut svc_meta = json!({"name": full});
        if let Some(a) = svc["metadata"].get("annotations") {
            svc_meta["annotations"] = a.clone();
        }
        let mut patches = vec![
            rename_patch(
                "apps/v1",
                "StatefulSet",
                "prism",
                json!({"metadata": {"name": full}, "spec": sts_spec}),
            ),
            rename_patch(
                "v1",
                "ConfigMap",
                "prism",
                json!({"metadata": {"name": full}, "data": cm["data"]}),
            ),
            rename_patch(
                "v1",
                "Service",
                "prism",
                json!({"metadata": svc_meta, "spec": {"type": svc["spec"]["type"]}}),
            ),
            rename_patch(
                "v1",
                "Service",
                "prism-headless",
                json!({"metadata": {"name": format!("{full}-headless")}}),
            ),
            rename_patch(
                "policy/v1",
                "PodDisruptionBudget",
                "prism",
                json!({"metadata": {"name": full}}),
            ),
        ];
        // The claim template list has no merge key: edit it in place.
        let claim = &sts["spec"]["volumeClaimTemplates"][0]["spec"];
        let mut ops = Vec::new();
        if claim["resources"]["requests"]["storage"] != "10Gi" {
            ops.push(json!({"op": "replace", "path": "/spec/volumeClaimTemplates/0/spec/resources/requests/storage", "value": claim["resources"]["requests"]["storage"]}));
        }
        if let Some(class) = claim.get("storageClassName") {
            ops.push(json!({"op": "add", "path": "/spec/volumeClaimTemplates/0/spec/storageClassName", "value": class}));
        }
        if !ops.is_empty() {
            patches.push(json!({
                "target": {"kind": "StatefulSet", "name": "prism"},
                "patch": serde_json::to_string(&ops).expect("JSON serializes"),
            }));
        }
        let mut body = json!({
            "namespace": ns,
            "resources": ["../../../base/shard"],
            "labels": labels_entries(&name, &extra),
        });
        if let Ok(hpa) = find("HorizontalPodAutoscaler", &ns, &full) {
            body["components"] = json!(["../../../components/autoscaling"]);
            patches.push(rename_patch(
                "autoscaling/v2",
                "HorizontalPodAutoscaler",
                "prism",
                json!({"metadata": {"name": full}, "spec": {
                    "scaleTargetRef": {"name": full},
                    "minReplicas": hpa["spec"]["minReplicas"],
                    "maxReplicas": hpa["spec"]["maxReplicas"],
                    "metrics": hpa["spec"]["metrics"],
                }}),
            ));
        }
        body["patches"] = Value::Array(patches);
        let dir = format!("shards/{ns}/{name}");
        files.push((format!("{dir}/kustomization.yaml"), kustomization(body)));
        top.push(dir);
    }

    for plugin in fleet
        .plugins
        .iter()
        .filter(|p| p.spec.deployment.type_ == PluginDeploymentType::Remote)
    {
        let ns = plugin.namespace().unwrap_or_default();
        let name = plugin.name_any();
        let full = format!("prism-plugin-{name}");
        let deploy = find("Deployment", &ns, &full)?;
        let svc = find("Service", &ns, &full)?;
        let labels = &deploy["metadata"]["labels"];
        let mut extra = json!({"prism.io/plugin": name});
        if let Some(v) = labels.get("app.kubernetes.io/version") {
            extra["app.kubernetes.io/version"] = v.clone();
        }
        let c = &deploy["spec"]["template"]["spec"]["containers"][0];
        let mut container = json!({"name": "plugin"});
        for field in [
            "image",
            "args",
            "env",
            "ports",
            "readinessProbe",
            "livenessProbe",
            "resources",
        ] {
            if let Some(v) = c.get(field) {
                container[field] = v.clone();
            }
        }
        let patches = vec![
            rename_patch(
                "apps/v1",
                "Deployment",
                "prism-plugin",
                json!({"metadata": {"name": full}, "spec": {
                    "replicas": deploy["spec"]["replicas"],
                    "template": {
                        "metadata": {"annotations": deploy["spec"]["template"]["metadata"]["annotations"]},
                        "spec": {"containers": [container]},
                    },
                }}),
            ),
            rename_patch(
                "v1",
                "Service",
                "prism-plugin",
                json!({"metadata": {"name": full}, "spec": {"ports": svc["spec"]["ports"]}}),
            ),
            rename_patch(
                "policy/v1",
                "PodDisruptionBudget",
                "prism-plugin",
                json!({"metadata": {"name": full}}),
            ),
        ];
        let body = json!({
            "namespace": ns,
            "resources": ["../../../base/plugin"],
            "labels": labels_entries(&name, &extra),
            "patches": patches,
        });
        let dir = format!("plugins/{ns}/{name}");
        files.push((format!("{dir}/kustomization.yaml"), kustomization(body)));
        top.push(dir);
    }
    files.push((
        "kustomization.yaml".into(),
        kustomization(json!({"resources": top})),
    ));
    Ok(files)
}
