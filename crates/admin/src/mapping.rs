//! PURE translation of a [`PrismNamespace`] into the `prism.ControlPlane` namespace
//! configuration, and the placement hash upstream admin uses.
//!
//! Upstream admin persists only [`NamespaceConfig::metadata`], so everything worth seeing
//! through admin (backend, pattern, consistency, caching, rate limit, shard, origin) is mirrored
//! there under the deterministic keys in [`keys`]. Secrets never reach metadata.

use std::collections::BTreeMap;

use kube::ResourceExt;
use serde::Serialize;

use super::proto::{AuthConfig, BackendConfig, NamespaceConfig, PatternConfig};
use prism_api::{Consistency, PrismNamespace, duration_seconds};

/// Number of partitions admin spreads namespaces over.
pub const PARTITIONS: u32 = 256;

/// The `backendConfig` key that holds a connection string written in the resource.
pub const CONNECTION_STRING_KEY: &str = "connection_string";

/// Metadata keys written into [`NamespaceConfig::metadata`].
pub mod keys {
    /// Backend type, e.g. `postgres`.
    pub const BACKEND: &str = "prism.io/backend";
    /// Access pattern, e.g. `keyvalue`.
    pub const PATTERN: &str = "prism.io/pattern";
    /// Consistency level (`eventual` unless set).
    pub const CONSISTENCY: &str = "prism.io/consistency";
    /// `true` or `false`.
    pub const CACHE_ENABLED: &str = "prism.io/cache-enabled";
    /// Cache entry lifetime in whole seconds; only when caching is enabled.
    pub const CACHE_TTL_SECONDS: &str = "prism.io/cache-ttl-seconds";
    /// Requests per second; only with a rate limit.
    pub const RATE_LIMIT_RPS: &str = "prism.io/rate-limit-rps";
    /// Burst size (defaults to the rate); only with a rate limit.
    pub const RATE_LIMIT_BURST: &str = "prism.io/rate-limit-burst";
    /// Shard the namespace is placed on.
    pub const SHARD: &str = "prism.io/shard";
    /// Kubernetes namespace of the PrismNamespace resource.
    pub const K8S_NAMESPACE: &str = "prism.io/k8s-namespace";
    /// Kubernetes name of the PrismNamespace resource.
    pub const K8S_NAME: &str = "prism.io/k8s-name";
    /// Always `prism-operator`: marks namespaces this operator writes.
    pub const MANAGED_BY: &str = "prism.io/managed-by";
}

/// Keys of [`PatternConfig::settings`].
pub mod settings {
    /// Consistency level.
    pub const CONSISTENCY: &str = "consistency";
    /// `true` or `false`.
    pub const CACHE_ENABLED: &str = "cache_enabled";
    /// Cache entry lifetime in whole seconds.
    pub const CACHE_TTL_SECONDS: &str = "cache_ttl_seconds";
    /// Requests per second.
    pub const RATE_LIMIT_RPS: &str = "rate_limit_rps";
    /// Burst size.
    pub const RATE_LIMIT_BURST: &str = "rate_limit_burst";
}

/// Value of [`keys::MANAGED_BY`].
pub const MANAGER: &str = "prism-operator";

/// Partition (0–255) admin assigns a namespace: CRC32-IEEE of its name modulo 256.
pub fn partition_of(namespace: &str) -> i32 {
    // The remainder is below 256, so the cast is lossless.
    (crc32fast::hash(namespace.as_bytes()) % PARTITIONS) as i32
}

/// The `prism.ControlPlane` configuration of `ns`, placed on `shard`.
///
/// `connection_string` is the value resolved from `spec.connectionStringFrom`; without it
/// `backendConfig.connection_string` is used. It goes into the backend entry only, never into
/// metadata. Other `backendConfig` entries become backend options as strings.
pub fn namespace_config(
    ns: &PrismNamespace,
    shard: &str,
    connection_string: Option<&str>,
) -> NamespaceConfig {
    let spec = &ns.spec;
    let pattern = wire_name(&spec.pattern);
    let consistency = wire_name(&spec.consistency.unwrap_or(Consistency::Eventual));
    let caching = spec.caching.as_ref().filter(|c| c.enabled);
    let cache_ttl = caching
        .and_then(|c| c.ttl.as_deref())
        .and_then(duration_seconds);
    let rate = spec
        .rate_limit
        .as_ref()
        .map(|r| (r.rps, r.burst.unwrap_or(r.rps)));

    let mut options = BTreeMap::new();
    let mut inline_connection = None;
    for (key, value) in &spec.backend_config {
        let value = value_string(value);
        if key == CONNECTION_STRING_KEY {
            inline_connection = Some(value);
        } else {
            options.insert(key.clone(), value);
        }
    }
    let backend = BackendConfig {
        backend_type: spec.backend.clone(),
        connection_string: connection_string
            .map(str::to_string)
            .or(inline_connection)
            .unwrap_or_default(),
        credentials: BTreeMap::new(),
        options,
    };

    // What the pattern and the metadata share: (settings key, metadata key, value).
    let mut shared = vec![
        (settings::CONSISTENCY, keys::CONSISTENCY, consistency),
        (
            settings::CACHE_ENABLED,
            keys::CACHE_ENABLED,
            caching.is_some().to_string(),
        ),
    ];
    if let Some(ttl) = cache_ttl {
        shared.push((
            settings::CACHE_TTL_SECONDS,
            keys::CACHE_TTL_SECONDS,
            ttl.to_string(),
        ));
    }
    if let Some((rps, burst)) = rate {
        shared.push((
            settings::RATE_LIMIT_RPS,
            keys::RATE_LIMIT_RPS,
            rps.to_string(),
        ));
        shared.push((
            settings::RATE_LIMIT_BURST,
            keys::RATE_LIMIT_BURST,
            burst.to_string(),
        ));
    }

    let pattern_config = PatternConfig {
        pattern_name: pattern.clone(),
        settings: shared
            .iter()
            .map(|(setting, _, value)| (setting.to_string(), value.clone()))
            .collect(),
        required_interfaces: Vec::new(),
    };

    let mut metadata: BTreeMap<String, String> = shared
        .into_iter()
        .map(|(_, key, value)| (key.to_string(), value))
        .collect();
    metadata.insert(keys::BACKEND.into(), spec.backend.clone());
    metadata.insert(keys::PATTERN.into(), pattern.clone());
    metadata.insert(keys::SHARD.into(), shard.to_string());
    metadata.insert(keys::K8S_NAME.into(), ns.name_any());
    if let Some(namespace) = ns.namespace() {
        metadata.insert(keys::K8S_NAMESPACE.into(), namespace);
    }
    metadata.insert(keys::MANAGED_BY.into(), MANAGER.into());

    NamespaceConfig {
        backends: BTreeMap::from([(spec.backend.clone(), backend)]),
        patterns: BTreeMap::from([(pattern, pattern_config)]),
        auth: spec.auth.as_ref().map(|auth| AuthConfig {
            enabled: auth.enabled,
            provider: wire_name(&auth.provider),
            options: auth.options.clone(),
        }),
        metadata,
    }
}

/// The string a unit enum variant serializes to in the resource (`multicast_registry`, `oidc`).
fn wire_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        other => unreachable!("unit variants serialize to strings, got {other:?}"),
    }
}

/// A `backendConfig` value as a string: strings verbatim, anything else as compact JSON.
fn value_string(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn namespace(spec: serde_json::Value) -> PrismNamespace {
        serde_json::from_value(json!({
            "apiVersion": "prism.io/v1beta1",
            "kind": "PrismNamespace",
            "metadata": {"name": "orders", "namespace": "team-a"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn full_spec_maps_field_by_field() {
        let ns = namespace(json!({
            "backend": "postgres",
            "pattern": "multicast_registry",
            "consistency": "strong",
            "backendConfig": {"pool_size": 10, "sslmode": "require"},
            "connectionStringFrom": {"secretKeyRef": {"name": "db", "key": "url"}},
            "caching": {"enabled": true, "ttl": "5m"},
            "rateLimit": {"rps": 500, "burst": 800},
            "auth": {"enabled": true, "provider": "oidc", "options": {"issuer": "https://id"}},
        }));
        let config = namespace_config(&ns, "payments", Some("postgres://u:pw@db/orders"));

        let backend = &config.backends["postgres"];
        assert_eq!(backend.backend_type, "postgres");
        assert_eq!(backend.connection_string, "postgres://u:pw@db/orders");
        assert!(backend.credentials.is_empty());
        assert_eq!(
            backend.options,
            map(&[("pool_size", "10"), ("sslmode", "require")])
        );

        let pattern = &config.patterns["multicast_registry"];
        assert_eq!(pattern.pattern_name, "multicast_registry");
        assert!(pattern.required_interfaces.is_empty());
        assert_eq!(
            pattern.settings,
            map(&[
                ("cache_enabled", "true"),
                ("cache_ttl_seconds", "300"),
                ("consistency", "strong"),
                ("rate_limit_burst", "800"),
                ("rate_limit_rps", "500"),
            ])
        );

        let auth = config.auth.as_ref().unwrap();
        assert!(auth.enabled);
        assert_eq!(auth.provider, "oidc");
        assert_eq!(auth.options, map(&[("issuer", "https://id")]));

        assert_eq!(
            config.metadata,
            map(&[
                ("prism.io/backend", "postgres"),
                ("prism.io/cache-enabled", "true"),
                ("prism.io/cache-ttl-seconds", "300"),
                ("prism.io/consistency", "strong"),
                ("prism.io/k8s-name", "orders"),
                ("prism.io/k8s-namespace", "team-a"),
                ("prism.io/managed-by", "prism-operator"),
                ("prism.io/pattern", "multicast_registry"),
                ("prism.io/rate-limit-burst", "800"),
                ("prism.io/rate-limit-rps", "500"),
                ("prism.io/shard", "payments"),
            ])
        );
    }

    #[test]
    fn minimal_spec_gets_defaults() {
        let ns = namespace(json!({"backend": "redis", "pattern": "keyvalue"}));
        let config = namespace_config(&ns, "default", None);
        assert_eq!(config.backends["redis"].connection_string, "");
        assert!(config.backends["redis"].options.is_empty());
        assert_eq!(
            config.patterns["keyvalue"].settings,
            map(&[("cache_enabled", "false"), ("consistency", "eventual")])
        );
        assert_eq!(config.auth, None);
        assert_eq!(config.metadata["prism.io/consistency"], "eventual");
        assert_eq!(config.metadata["prism.io/cache-enabled"], "false");
        assert!(!config.metadata.contains_key("prism.io/rate-limit-rps"));
        assert!(!config.metadata.contains_key("prism.io/cache-ttl-seconds"));
    }

    #[test]
    fn burst_defaults_to_rate_and_disabled_cache_has_no_ttl() {
        let ns = namespace(json!({
            "backend": "redis", "pattern": "keyvalue",
            "caching": {"enabled": false, "ttl": "30s"},
            "rateLimit": {"rps": 50},
        }));
        let config = namespace_config(&ns, "s", None);
        assert_eq!(config.metadata["prism.io/rate-limit-burst"], "50");
        assert_eq!(config.metadata["prism.io/cache-enabled"], "false");
        assert!(!config.metadata.contains_key("prism.io/cache-ttl-seconds"));
        assert!(
            !config.patterns["keyvalue"]
                .settings
                .contains_key("cache_ttl_seconds")
        );
    }

    #[test]
    fn connection_string_stays_out_of_metadata_and_options() {
        let ns = namespace(json!({
            "backend": "postgres", "pattern": "keyvalue",
            "backendConfig": {"connection_string": "postgres://inline", "pool_size": "4"},
        }));
        let config = namespace_config(&ns, "s", None);
        let backend = &config.backends["postgres"];
        assert_eq!(backend.connection_string, "postgres://inline");
        assert_eq!(backend.options, map(&[("pool_size", "4")]));
        let resolved = namespace_config(&ns, "s", Some("postgres://secret"));
        assert_eq!(
            resolved.backends["postgres"].connection_string,
            "postgres://secret"
        );
        for config in [config, resolved] {
            assert!(
                config
                    .metadata
                    .iter()
                    .all(|(k, v)| !k.contains("connection") && !v.starts_with("postgres://")),
                "{:?}",
                config.metadata
            );
        }
    }

    #[test]
    fn mapping_is_deterministic() {
        let ns = namespace(json!({
            "backend": "kafka", "pattern": "pubsub",
            "backendConfig": {"b": 1, "a": true, "c": "x"},
        }));
        let first = namespace_config(&ns, "s", None);
        assert_eq!(first, namespace_config(&ns, "s", None));
        assert_eq!(
            first.backends["kafka"].options,
            map(&[("a", "true"), ("b", "1"), ("c", "x")])
        );
        assert_eq!(
            prost::Message::encode_to_vec(&first),
            prost::Message::encode_to_vec(&namespace_config(&ns, "s", None))
        );
    }

    #[test]
    fn partitions_follow_crc32_ieee() {
        // CRC32-IEEE("123456789") is the standard check value 0xCBF43926.
        assert_eq!(partition_of("123456789"), (0xCBF4_3926_u32 % 256) as i32);
        assert_eq!(partition_of(""), 0);
        for name in ["orders", "payments", "a", "namespace-with-a-long-name"] {
            let partition = partition_of(name);
            assert!((0..256).contains(&partition), "{name}: {partition}");
            assert_eq!(partition, partition_of(name));
        }
    }
}
