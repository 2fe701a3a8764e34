//! The thin in-cluster reconciler: watches Prism resources, renders them with the same
//! renderer as `prism-render`, applies the result with server-side apply, and reports status.
//!
//! Every controller runs the same short pipeline: observe the caches, decide with pure
//! functions, apply through [`children::apply_and_prune`], derive the status with a pure
//! function, and write it once ([`status::write`]).

pub mod admin;
pub mod apply;
pub mod children;
pub mod conditions;
pub mod conflicts;
pub mod context;
pub mod error;
pub mod metrics;
pub mod namespace;
pub mod plugin;
pub mod preflight;
pub mod prometheus;
pub mod quantity;
pub mod rbac;
pub mod rollout;
pub mod run;
pub mod served;
pub mod server;
pub mod shard;
pub mod shared;
pub mod status;
pub mod storage;
pub mod traffic;
