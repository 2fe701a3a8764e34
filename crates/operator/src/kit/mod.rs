//! The machinery every controller uses: the context, applying and pruning children, status
//! conditions and their one write per reconcile, events and backoff, errors, metrics, and
//! the readiness of the workloads the operator renders.

pub mod admin;
pub mod apply;
pub mod children;
pub mod conflicts;
pub mod context;
pub mod dropped;
pub mod error;
pub mod events;
pub mod jitter;
#[cfg(test)]
pub mod mock_api;
pub mod outcome;
pub mod quantity;
pub mod report;
pub mod served;
pub mod status;
pub mod unseen;
pub mod workload;
