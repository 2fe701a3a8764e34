//! Shared helpers for integration tests: the lazily started test control plane
//! ([`cluster`]) and bounded polling ([`wait_for`]).
//!
//! Include from a test crate with `mod support;`.
#![allow(dead_code)]

pub mod admin_server;
pub mod cluster;
pub mod operator;
pub mod pki;

use std::future::Future;
use std::time::{Duration, Instant};

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
