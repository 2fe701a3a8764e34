//! How the operator is watched: its metrics (controller-runtime's names beside the Prism
//! ones, the process, the fleet's state), the `/metrics` endpoint and who may read it, and
//! the traces of its reconciles.
//!
//! - [`metrics`]: the registry and what the controllers record;
//! - [`fleet`], [`process`]: collectors read at each scrape;
//! - [`exposition`]: OpenMetrics or the Prometheus text format, as the scraper asks;
//! - [`auth`], [`serve`]: `/metrics` over HTTPS to authorized scrapers;
//! - [`traces`]: OTLP export of reconcile spans.

pub mod auth;
pub mod exposition;
pub mod fleet;
pub mod metrics;
pub mod process;
pub mod serve;
pub mod traces;
