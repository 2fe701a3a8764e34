//! Test support shared by the integration tests and benchmarks (a dev-dependency only): the
//! lazily started local control plane ([`cluster`]), a wire-compatible Prism admin server
//! ([`admin_server`]), throw-away PKI ([`pki`]), the operator as a process ([`operator`]),
//! generated fleets ([`fleet`]), helm and service-account tokens ([`helm`]), the project's
//! images and containers ([`podman`]), a real Prometheus scraping known traffic
//! ([`prometheus`]) and bounded polling ([`wait_for`]).

pub mod admin_server;
pub mod cluster;
pub mod fleet;
pub mod helm;
pub mod operator;
pub mod pki;
pub mod podman;
pub mod prometheus;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The root of the workspace (where `examples/`, `tests/` and `charts/` are).
pub fn workspace_root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// Polls `check` until it returns `Ok`, or panics after `timeout`.
///
/// `check` returns `Err(observation)` while the condition does not hold yet; the last
/// observation is part of the panic message, so make it describe the current state.
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
