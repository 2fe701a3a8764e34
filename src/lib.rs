//! prism-operator: custom resources, a pure renderer and the tools built on them for running
//! fleets of Prism data access gateways on Kubernetes.

pub mod api;
pub mod cli;
pub mod error;
pub mod render;
pub mod source;
