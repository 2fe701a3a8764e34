//! The three custom resources of `prism.io/v1alpha1` and the types they share.
//!
//! Everything the API server validates is declared here once: OpenAPI constraints through
//! `schemars` attributes and CEL rules through `x_kube`. The generated CRDs in `crds/` come from
//! these types, and `prism-render validate` checks inputs against the very same schemas.

mod common;
mod namespace;
mod plugin;
mod shard;

pub use common::*;
pub use namespace::*;
pub use plugin::*;
pub use shard::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of every Prism resource.
pub const GROUP: &str = "prism.io";
/// The one served and stored version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` string of every Prism resource.
pub const API_VERSION: &str = "prism.io/v1alpha1";

/// The CRDs of all three kinds, in a stable order (by kind).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![PrismNamespace::crd(), PrismPlugin::crd(), PrismShard::crd()]
}
