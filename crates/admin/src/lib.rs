//! The Prism control plane as the operator sees it: the generated `prism.ControlPlane` gRPC code
//! ([`proto`]), a timeout-bounded client and a per-endpoint pool ([`AdminClient`],
//! [`AdminPool`]), the nodes of an HA admin followed to their leader ([`AdminGroup`]), over
//! plaintext, TLS or mutual TLS ([`AdminTls`]), error classification ([`AdminError`]) and the
//! pure mapping of a `PrismNamespace` to a `NamespaceConfig` ([`namespace_config`],
//! [`partition_of`]).

mod client;
mod error;
mod group;
mod mapping;
pub mod proto;
mod tls;

pub use client::{
    AdminClient, AdminPool, CallObserver, DEFAULT_ADMIN_PORT, DEFAULT_TIMEOUT, MetadataHook,
    ROLE_PROBE_PROXY, Role,
};
pub use error::AdminError;
pub use group::{Accepted, AdminGroup, MAX_ENDPOINTS, endpoints_of};
pub use mapping::{
    CONNECTION_STRING_KEY, MANAGER, PARTITIONS, keys, namespace_config, partition_of, settings,
};
pub use tls::AdminTls;
