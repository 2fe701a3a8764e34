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
//! Used by `benches/render.rs`, `benches/gen_fleet.rs` and `tests/bench_fair.rs`. The generator
//! is here; the Helm values in [`helm`], the Kustomize tree in [`kustomize`].

mod helm;
mod kustomize;

pub use kustomize::kustomize_tree;

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
                args: Vec::new(),
                env: Vec::new(),
            },
            health_check,
            rollout: rng.chance(50).then(|| RolloutPolicy {
                max_unavailable_shards: Some(rng.range(1, 3) as i32),
                progress_deadline: Some(rng.pick(&["5m", "10m", "30m"]).to_string()),
            }),
            config_from: None,
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
            // v1beta1: an autoscaled shard leaves the count to its autoscaler.
            replicas: autoscaling.is_none().then_some(replicas),
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
            stop_signal: None,
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
