//! The operator's Kubernetes client: every attempt counted as client-go counts it
//! ([`counted`]), and requests the API server turns away for load retried only within a time
//! budget ([`retry`]), in place of the client library's own retries (up to 15, with waits of
//! up to 1000 s, which would hold an object's reconcile for many minutes).

pub mod counted;
pub mod retry;

use std::time::Duration;

use kube::client::{Body, ClientBuilder};
use kube::{Client, Config};
use tower::buffer::BufferLayer;

use crate::observe::metrics::Metrics;

/// Requests queued for the client's connection pool.
const BUFFER: usize = 1024;

/// A client for the inferred configuration (in cluster, or `KUBECONFIG`): each attempt counted
/// in `metrics`, a turned-away request retried for at most `retry_budget`; how long the server
/// asked it to hold back is kept in `server`.
pub async fn client(
    metrics: &Metrics,
    retry_budget: Duration,
    server: &retry::ServerBackoff,
) -> Result<Client, kube::Error> {
    let mut config = Config::infer().await.map_err(kube::Error::InferConfig)?;
    config.default_retry = false;
    let host = config
        .cluster_url
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let counted = counted::RequestMetrics::new(host.clone(), metrics);
    let retrying = retry::RetryLayer::new(
        retry::Policy::new(retry_budget),
        server.clone(),
        host,
        metrics,
    );
    Ok(ClientBuilder::try_from(config)?
        .with_layer(&counted)
        .with_layer(&BufferLayer::<http::Request<Body>>::new(BUFFER))
        .with_layer(&retrying)
        .build())
}
