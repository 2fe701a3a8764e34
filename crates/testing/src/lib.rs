//! Test support shared by the tests and benchmarks of every crate (a dev-dependency only), split
//! by what it serves.
//!
//! Always there (the renderer's tests and benchmarks use these): generated fleets and their
//! Helm and Kustomize twins ([`fleet`]), Prism resources as YAML ([`fixtures`]), the repository's
//! files ([`paths`]), child processes and loopback ports ([`process`]), the benchmarks'
//! command line ([`bench`]) and the PromQL of the chart's alerts and dashboard ([`promql`]).
//!
//! With the `cluster` feature (the operator's and admin's tests): the lazily started local
//! control plane ([`cluster`]) and its request metrics ([`apiserver_metrics`]), a
//! wire-compatible Prism admin server ([`admin_server`]),
//! throw-away PKI ([`pki`]), the operator as a process ([`operator`]), helm and service-account
//! tokens ([`helm`]), the project's images and containers ([`podman`]), a real Prometheus
//! scraping known traffic ([`prometheus`]), the operator's HTTPS `/metrics` read as an
//! authorized scraper would ([`scrape`]), a real OpenTelemetry Collector recording the spans
//! it receives ([`otelcol`]), Argo CD's sync of a manifest stream through gitops-engine
//! ([`gitops`]) and bounded polling ([`wait_for`]).

pub mod bench;
pub mod fixtures;
pub mod fleet;
pub mod paths;
pub mod process;
pub mod promql;

#[cfg(feature = "cluster")]
pub mod admin_server;
#[cfg(feature = "cluster")]
pub mod apiserver_metrics;
#[cfg(feature = "cluster")]
pub mod cluster;
#[cfg(feature = "cluster")]
pub mod egress;
#[cfg(feature = "cluster")]
pub mod gitops;
#[cfg(feature = "cluster")]
pub mod helm;
#[cfg(feature = "cluster")]
pub mod operator;
#[cfg(feature = "cluster")]
pub mod otelcol;
#[cfg(feature = "cluster")]
pub mod pki;
#[cfg(feature = "cluster")]
pub mod podman;
#[cfg(feature = "cluster")]
pub mod prometheus;
#[cfg(feature = "cluster")]
pub mod scrape;

#[cfg(feature = "cluster")]
use std::future::Future;
#[cfg(feature = "cluster")]
use std::time::{Duration, Instant};

/// Polls `check` until it returns `Ok`, or panics after `timeout`.
///
/// `check` returns `Err(observation)` while the condition does not hold yet; the last
/// observation is part of the panic message, so make it describe the current state.
#[cfg(feature = "cluster")]
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    let mut interval = Duration::from_millis(100);
    loop {
        match check().await {
            Ok(value) => return value,
            Err(observation) if start.elapsed() >= timeout => {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; last observed: {observation}"
                )
            }
            Err(_) => {}
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(Duration::from_secs(1));
    }
}
