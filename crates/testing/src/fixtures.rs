//! Prism resources as YAML for the end-to-end tests and benchmarks: a sidecar plugin, shards and
//! namespaces.

/// A sidecar PrismPlugin `pg` at 1.0.0, for shards that list `{name: pg, version: "1"}`.
pub const SIDECAR_PLUGIN: &str = "apiVersion: prism.io/v1beta1
kind: PrismPlugin
metadata: {name: pg}
spec:
  version: 1.0.0
  source: {registry: ghcr.io/prism/plugins, image: pg-plugin:1.0.0}
  deployment: {type: sidecar}
";

/// A PrismShard `name` of `product` with `replicas` proxies, loading [`SIDECAR_PLUGIN`].
pub fn shard_yaml(name: &str, product: &str, replicas: u32) -> String {
    shard_yaml_with(name, product, replicas, "")
}

/// [`shard_yaml`] with `extra` lines (indented by two spaces) at the end of its spec.
pub fn shard_yaml_with(name: &str, product: &str, replicas: u32, extra: &str) -> String {
    format!(
        "apiVersion: prism.io/v1beta1
kind: PrismShard
metadata: {{name: {name}}}
spec:
  product: {product}
  replicas: {replicas}
  backends: [postgres]
  plugins: [{{name: pg, version: \"1\"}}]
{extra}"
    )
}

/// A keyvalue-on-postgres PrismNamespace `name` placed by `product`.
pub fn namespace_yaml(name: &str, product: &str) -> String {
    namespace_yaml_with(name, product, "")
}

/// [`namespace_yaml`] with `extra` lines (indented by two spaces) at the end of its spec.
pub fn namespace_yaml_with(name: &str, product: &str, extra: &str) -> String {
    format!(
        "apiVersion: prism.io/v1beta1
kind: PrismNamespace
metadata: {{name: {name}}}
spec:
  backend: postgres
  pattern: keyvalue
  shard: {{product: {product}}}
{extra}"
    )
}

/// A sidecar PrismPlugin `name` at `version`, with `extra` deployment lines, health-checked by
/// gRPC on `port`, given 20 s to roll out.
pub fn plugin_yaml(name: &str, version: &str, port: u16, extra: &str) -> String {
    format!(
        "apiVersion: prism.io/v1beta1
kind: PrismPlugin
metadata: {{name: {name}}}
spec:
  version: {version}
  source: {{registry: ghcr.io/prism/plugins, image: \"{name}-plugin:{version}\"}}
  deployment:
    type: sidecar
{extra}  healthCheck: {{grpc: {{port: {port}}}}}
  rollout: {{progressDeadline: 20s}}
"
    )
}

/// A PrismShard `name` (its own product) with `replicas` proxies of small requests, loading
/// `plugins` at version 1, with `extra` spec lines.
pub fn sized_shard_yaml(name: &str, replicas: u32, plugins: &[&str], extra: &str) -> String {
    let mut list = String::new();
    for p in plugins {
        list.push_str(&format!("  - {{name: {p}, version: \"1\"}}\n"));
    }
    let plugins = if plugins.is_empty() {
        String::new()
    } else {
        format!("  plugins:\n{list}")
    };
    format!(
        "apiVersion: prism.io/v1beta1
kind: PrismShard
metadata: {{name: {name}}}
spec:
  product: {name}
  replicas: {replicas}
  resources: {{requests: {{cpu: 100m, memory: 128Mi}}}}
{plugins}{extra}"
    )
}
