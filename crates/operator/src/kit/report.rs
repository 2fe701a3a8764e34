//! What a reconcile tells the world besides its objects: events, status writes, and the
//! reconcile's own accounting (metrics and per-object backoff).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;

use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::apply::FIELD_MANAGER;
use super::error::Error;
use super::events::Events;
use crate::client::retry::ServerBackoff;
use crate::observe::metrics::{Failure, Metrics};

/// Events, status writes and reconcile accounting, shared by every controller.
pub struct Report {
    client: Client,
    events: Events,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    failures: Failures,
    server: ServerBackoff,
}

impl Report {
    /// A report writing through `client`, publishing with `events`, counting in `metrics`.
    pub fn new(client: Client, events: Events, metrics: Arc<Metrics>) -> Self {
        Self {
            client,
            events,
            metrics,
            failures: Failures::default(),
            server: ServerBackoff::default(),
        }
    }

    /// Objects the API server turned away for load wait at least as long as it asked in
    /// `server` (the client's record of its `Retry-After`).
    pub fn heeding(mut self, server: ServerBackoff) -> Self {
        self.server = server;
        self
    }

    /// Publishes an event about `obj`; failures to publish are logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let note: String = note.chars().take(1000).collect();
        let regarding = obj.object_ref(&());
        if let Err(e) = self
            .events
            .publish(&regarding, warning, reason, &note)
            .await
        {
            tracing::warn!(error = %e, "publishing event failed");
        } else {
            self.metrics.write("Event", "create");
        }
    }

    /// Replaces the status of `obj` with `status` (server-side apply of the status subresource).
    pub async fn patch_status<K, S>(&self, obj: &K, status: &S) -> Result<(), Error>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
        S: Serialize,
    {
        self.patch_status_as(obj, status, FIELD_MANAGER, "status")
            .await
    }

    /// [`patch_status`](Self::patch_status) as field manager `manager`, counted as `operation`
    /// in the write metric: the fields `status` holds are this manager's, others stay as they
    /// are.
    pub async fn patch_status_as<K, S>(
        &self,
        obj: &K,
        status: &S,
        manager: &str,
        operation: &str,
    ) -> Result<(), Error>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
        S: Serialize,
    {
        self.apply_status(obj, status, manager, operation, None)
            .await
    }

    /// [`patch_status`](Self::patch_status) only over the object as `obj` holds it: the API
    /// server refuses it (409 Conflict) when the object has changed since (its
    /// `resourceVersion` is sent as a precondition).
    pub async fn patch_status_over<K, S>(&self, obj: &K, status: &S) -> Result<(), Error>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
        S: Serialize,
    {
        let read = obj.resource_version();
        self.apply_status(obj, status, FIELD_MANAGER, "status", read)
            .await
    }

    /// Applies `status` to `obj`'s status subresource as `manager`, with `resourceVersion`
    /// `precondition` when given.
    async fn apply_status<K, S>(
        &self,
        obj: &K,
        status: &S,
        manager: &str,
        operation: &str,
        precondition: Option<String>,
    ) -> Result<(), Error>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
        S: Serialize,
    {
        let mut body = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        if let Some(version) = precondition {
            body["metadata"] = serde_json::json!({"resourceVersion": version});
        }
        let api: Api<K> =
            Api::namespaced(self.client.clone(), &obj.namespace().unwrap_or_default());
        api.patch_status(
            &obj.name_any(),
            &PatchParams::apply(manager).force(),
            &Patch::Apply(body),
        )
        .await?;
        self.metrics.write(&K::kind(&()), operation);
        tracing::debug!(kind = %K::kind(&()), name = %obj.name_any(), operation, "status written");
        Ok(())
    }

    /// Counts a failure of `key` and returns how long to wait before the next try:
    /// 1 s doubling per consecutive failure to at most 256 s, less up to a fifth at random.
    pub fn backoff(&self, key: &str) -> Duration {
        self.failures.failed(key)
    }

    /// Runs one reconciliation of `obj` for `controller` in its trace span: times it, counts
    /// its result, and forgets the object's failures when it succeeds.
    pub async fn measured<K: Resource<DynamicType = ()>>(
        &self,
        controller: &str,
        obj: &K,
        reconcile: impl std::future::Future<Output = Result<Action, Error>>,
    ) -> Result<Action, Error> {
        let key = &object_key(obj);
        if let Some(wait) = self.failures.held(key) {
            // Watch events would bring it back sooner than the API server asked.
            tracing::debug!(object = %key, retry_in = ?wait, "held back: the API server asked to wait");
            return Ok(Action::requeue(wait));
        }
        let timer = self.metrics.start(controller);
        let before = self.failures.count(key);
        let result = reconcile.instrument(reconcile_span(controller, obj)).await;
        timer.finish(result.as_ref().map(drop).map_err(|e| Failure {
            label: e.metric_label(),
            terminal: !e.is_retryable(),
        }));
        if result.is_ok() {
            self.failures.settle(key, before);
        }
        result
    }

    /// What every controller does after a failure: log it and back off per object. An object
    /// the API server turned away for load waits what the server asked instead (its longest
    /// `Retry-After` still running), lengthened by up to a fifth at random so the objects it
    /// turned away together do not come back together, and is held back that long: events
    /// about it (often its own children changing) do not reconcile it sooner. Once the server
    /// stops asking, objects come back within that wait rather than after a doubled backoff.
    pub fn retry_later<K: Resource<DynamicType = ()>>(&self, obj: &K, err: &Error) -> Action {
        let key = object_key(obj);
        let asked = self.server.remaining();
        let wait = match (err.throttled(), asked.is_zero()) {
            (true, false) => {
                let wait = super::jitter::lengthen(asked, 0.2);
                self.failures.hold(&key, wait);
                wait
            }
            // Turned away after the server's ask ran out (waited within the retry budget):
            // the usual backoff, but never longer than the server ever asks.
            (true, true) => throttled_backoff(self.backoff(&key)),
            (false, _) => self.backoff(&key),
        };
        tracing::warn!(object = %key, error = %err, retry_in = ?wait, "reconcile failed");
        Action::requeue(wait)
    }
}

/// The root span of one reconciliation: `reconcile <Kind>`, with the object.
fn reconcile_span<K: Resource<DynamicType = ()>>(controller: &str, obj: &K) -> tracing::Span {
    let meta = obj.meta();
    tracing::info_span!(
        "reconcile",
        otel.name = format!("reconcile {}", K::kind(&())),
        controller,
        object = %object_key(obj),
        k8s.namespace.name = meta.namespace.as_deref().unwrap_or_default(),
        k8s.object.name = meta.name.as_deref().unwrap_or_default(),
        k8s.object.generation = meta.generation.unwrap_or_default(),
    )
}

/// The longest per-object backoff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(256);

/// The longest `Retry-After` API Priority and Fairness gives: a throttled object never backs
/// off longer (else, once the squeeze is lifted, it would wait minutes for nothing).
pub const THROTTLED_CAP: Duration = Duration::from_secs(32);

/// A throttled object's `backoff`, at most [`THROTTLED_CAP`] (less up to a fifth at random).
fn throttled_backoff(backoff: Duration) -> Duration {
    match backoff > THROTTLED_CAP {
        true => super::jitter::shorten(THROTTLED_CAP, 0.2),
        false => backoff,
    }
}

/// Consecutive failures per object, for per-object exponential backoff, and until when an
/// object the API server turned away is held back.
#[derive(Debug, Default)]
pub struct Failures(Mutex<HashMap<String, ObjectFailures>>);

#[derive(Debug, Default)]
struct ObjectFailures {
    count: u32,
    held_until: Option<Instant>,
}

impl Failures {
    /// Counts a failure of `key`; how long to wait before the next try: 1 s doubling per
    /// consecutive failure to at most [`MAX_BACKOFF`] (256 s), less up to a fifth at random,
    /// so that objects that failed together do not all come back at once.
    pub fn failed(&self, key: &str) -> Duration {
        let mut failures = self.0.lock().expect("not poisoned");
        let f = failures.entry(key.to_string()).or_default();
        f.count = f.count.saturating_add(1);
        let full = Duration::from_secs(1u64 << (f.count - 1).min(8)).min(MAX_BACKOFF);
        super::jitter::shorten(full, 0.2)
    }

    /// Holds `key` back for `wait`: until then it is not reconciled, whatever triggers it.
    pub fn hold(&self, key: &str, wait: Duration) {
        let mut failures = self.0.lock().expect("not poisoned");
        failures.entry(key.to_string()).or_default().held_until = Some(Instant::now() + wait);
    }

    /// How much longer `key` is held back, if it is.
    pub fn held(&self, key: &str) -> Option<Duration> {
        let failures = self.0.lock().expect("not poisoned");
        let until = failures.get(key)?.held_until?;
        until
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }

    /// Consecutive failures of `key` so far.
    pub fn count(&self, key: &str) -> u32 {
        self.0
            .lock()
            .expect("not poisoned")
            .get(key)
            .map_or(0, |f| f.count)
    }

    /// Forgets the failures of `key`.
    pub fn succeeded(&self, key: &str) {
        self.0.lock().expect("not poisoned").remove(key);
    }

    /// After a reconcile of `key` that returned Ok: forgets its failures unless the reconcile
    /// itself counted one (a failure reported in status and retried with backoff, such as
    /// Prism admin being down, still returns Ok). `before`: [`count`](Self::count) before it.
    pub fn settle(&self, key: &str, before: u32) {
        if self.count(key) <= before {
            self.succeeded(key);
        }
    }
}

/// `Kind/namespace/name` of an object: its key for backoff and logs.
pub fn object_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttled_object_backs_off_no_longer_than_the_server_ever_asks() {
        let f = Failures::default();
        let waits: Vec<Duration> = (0..10).map(|_| throttled_backoff(f.failed("a"))).collect();
        assert!(
            waits[..5].iter().all(|w| *w < Duration::from_secs(17)),
            "{waits:?}"
        );
        assert!(
            waits[5..]
                .iter()
                .all(|w| *w <= THROTTLED_CAP && *w >= THROTTLED_CAP.mul_f64(0.8)),
            "{waits:?}"
        );
    }

    #[test]
    fn backoff_doubles_per_failure_and_survives_soft_failures() {
        // The full wait of each consecutive failure, and the jittered one within a fifth of it.
        let within = |wait: Duration, full: u64| {
            let full = Duration::from_secs(full);
            wait <= full && wait >= full.mul_f64(0.8)
        };
        let f = Failures::default();
        for full in [1, 2, 4, 8, 16, 32, 64, 128, 256, 256] {
            let wait = f.failed("a");
            assert!(within(wait, full), "{wait:?} for {full} s");
        }
        f.succeeded("a");
        // A reconcile that reports a failure in status and requeues with backoff returns Ok:
        // its failure count must not be forgotten.
        let before = f.count("a");
        assert!(within(f.failed("a"), 1));
        f.settle("a", before);
        let before = f.count("a");
        assert!(within(f.failed("a"), 2));
        f.settle("a", before);
        // A reconcile that succeeded without counting a failure forgets them.
        let before = f.count("a");
        f.settle("a", before);
        assert_eq!(f.count("a"), 0);
        // An object held back stays so for its wait, then is free again.
        assert_eq!(f.held("b"), None);
        f.hold("b", Duration::from_secs(60));
        assert!(f.held("b").is_some_and(|d| d > Duration::from_secs(59)));
        f.hold("b", Duration::ZERO);
        assert_eq!(f.held("b"), None);
        f.hold("c", Duration::from_secs(60));
        f.succeeded("c");
        assert_eq!(f.held("c"), None);
        // Objects failing together come back spread out.
        let waits: Vec<Duration> = (0..50).map(|i| f.failed(&i.to_string())).collect();
        assert!(waits.iter().any(|w| *w != waits[0]), "{waits:?}");
    }
}
