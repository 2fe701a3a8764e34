//! Rust types, client and server for `prism.ControlPlane`, generated at build time from
//! `proto/prism/control_plane.proto`, plus the hand-written redacting `Debug` of the messages
//! that carry secrets.

use std::collections::BTreeMap;
use std::fmt;

/// The generated code, exactly as `tonic-prost-build` writes it.
#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    rustdoc::invalid_html_tags,
    rustdoc::bare_urls
)]
mod generated {
    tonic::include_proto!("prism");
}

pub use generated::*;

/// Shown instead of a secret value.
const REDACTED: &str = "<redacted>";

/// Keys of a secret map with every value hidden.
struct RedactedMap<'a>(&'a BTreeMap<String, String>);

impl fmt::Debug for RedactedMap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, REDACTED)))
            .finish()
    }
}

/// A secret string: whether it is set, never its content.
fn redacted(value: &str) -> &'static str {
    if value.is_empty() { "" } else { REDACTED }
}

impl fmt::Debug for BackendConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendConfig")
            .field("backend_type", &self.backend_type)
            .field("connection_string", &redacted(&self.connection_string))
            .field("credentials", &RedactedMap(&self.credentials))
            .field("options", &self.options)
            .finish()
    }
}

impl fmt::Debug for BackendProcessConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendProcessConfig")
            .field("backend_type", &self.backend_type)
            .field("connection_string", &redacted(&self.connection_string))
            .field("credentials", &RedactedMap(&self.credentials))
            .field("driver_options", &self.driver_options)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let backend = BackendConfig {
            backend_type: "postgres".into(),
            connection_string: "postgres://u:hunter2@db/x".into(),
            credentials: [("password".to_string(), "hunter2".to_string())].into(),
            options: [("pool_size".to_string(), "10".to_string())].into(),
        };
        let request = CreateNamespaceRequest {
            namespace: "orders".into(),
            config: Some(NamespaceConfig {
                backends: [("postgres".to_string(), backend.clone())].into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let process = BackendProcessConfig {
            backend_type: "postgres".into(),
            connection_string: backend.connection_string.clone(),
            credentials: backend.credentials.clone(),
            driver_options: BTreeMap::new(),
        };
        for text in [
            format!("{request:?}"),
            format!("{backend:#?}"),
            format!("{process:?}"),
        ] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains(REDACTED), "{text}");
        }
        assert!(format!("{request:?}").contains("pool_size"));
    }
}
