//! prism-operator: custom resources, a pure renderer and the tools built on them for running
//! fleets of Prism data access gateways on Kubernetes.

pub mod admin;
pub mod api;
pub mod cli;
pub mod cmp;
pub mod diff;
pub mod error;
pub mod git;
pub mod operator;
pub mod render;
pub mod snapshot;
pub mod source;
