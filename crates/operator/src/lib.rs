//! The thin in-cluster reconciler: watches Prism resources, renders them with the same
//! renderer as `prism-render`, applies the result with server-side apply, and reports status.
//!
//! Every controller runs the same short pipeline: observe the [`view`] of the caches, decide
//! with pure functions ([`decide`]), apply through [`kit::children::apply_and_prune`],
//! derive the status with a pure function, and write it once ([`kit::status::write`]).
//!
//! - [`wiring`]: the process: caches, leadership, controllers and their triggers, the HTTP
//!   server;
//! - [`kit`]: what every controller uses;
//! - [`view`]: every read of the caches, with indexes;
//! - [`decide`]: pure rules (admin access and name ownership, the rollout state machine);
//! - [`shard`], [`plugin`], [`namespace`]: one controller each;
//! - [`client`]: the Kubernetes client: its requests counted, throttled ones retried within a
//!   budget;
//! - [`observe`]: metrics, who may read them, and traces;
//! - [`traffic`]: traffic figures and health from Prometheus;
//! - [`migrate`]: moving stored objects to the storage version;
//! - [`preflight`]: the `preflight` command and the operator's permissions;
//! - [`webhook`]: the admission and conversion webhooks, and their certificates.

pub mod client;
pub mod decide;
pub mod kit;
pub mod migrate;
pub mod namespace;
pub mod observe;
pub mod plugin;
pub mod preflight;
pub mod shard;
pub mod traffic;
pub mod view;
pub mod webhook;
pub mod wiring;
