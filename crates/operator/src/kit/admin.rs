//! The operator's side of Prism admin: the client pool, and which pods each admin already
//! knows as proxies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc;
use prism_admin::{AdminError, AdminGroup, AdminPool, AdminTls};

use crate::observe::metrics::Metrics;

/// Clients of every Prism admin, and the proxy registrations made with each.
pub struct Admin {
    pool: AdminPool,
    registered: Mutex<Registrations>,
    proxies: ProxyChanges,
}

/// How often each admin endpoint accepted a proxy it did not know, and who hears of it. Admin
/// spreads namespaces over every proxy it knows, so a new proxy can move namespaces placed
/// before it: they must be upserted again to learn where they went.
struct ProxyChanges {
    epochs: Mutex<HashMap<String, u64>>,
    tell: mpsc::UnboundedSender<String>,
    hear: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
}

impl Default for ProxyChanges {
    fn default() -> Self {
        let (tell, hear) = mpsc::unbounded();
        Self {
            epochs: Mutex::default(),
            tell,
            hear: Mutex::new(Some(hear)),
        }
    }
}

/// Proxy registrations with each admin (by its endpoint list), by pod UID.
type Registrations = HashMap<String, HashMap<String, Registration>>;

/// One pod's registration as a proxy with one admin.
#[derive(Clone)]
pub struct Registration {
    /// Key of the pod's shard (`namespace/name`).
    shard: String,
    /// Proxy id (the pod's name).
    proxy: String,
    /// Set once admin accepted it. Every upsert that needs the proxy waits on the same cell,
    /// so none reaches admin while the registration is still in flight (admin would place the
    /// namespace over the proxies it knows so far); a failed attempt leaves it unset for the
    /// next caller to retry.
    done: Arc<tokio::sync::OnceCell<()>>,
}

impl Registration {
    /// Registers with `register` unless that already succeeded, waiting for an attempt in
    /// flight.
    pub async fn ensure<F, Fut, E>(&self, register: F) -> Result<(), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        self.done.get_or_try_init(register).await.map(|_| ())
    }
}

impl Admin {
    /// Clients with `timeout` per call and `tls`, each call counted in `metrics` and carrying
    /// the trace context of its span.
    pub fn new(
        timeout: Duration,
        tls: Option<AdminTls>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, AdminError> {
        let pool = AdminPool::configured(timeout, tls)?
            .with_observer(Arc::new(
                move |rpc: &str, endpoint: &str, outcome: &str, took: Duration| {
                    metrics.admin_call(rpc, endpoint, outcome, took)
                },
            ))
            // The trace context of the call's span, when traces are exported.
            .with_metadata(Arc::new(crate::observe::traces::inject_context));
        Ok(Self {
            pool,
            registered: Mutex::default(),
            proxies: ProxyChanges::default(),
        })
    }

    /// The normalized endpoints of a list (as the view compares them), so that two spellings
    /// of one admin share their epochs; an unparsable list stands for itself.
    fn endpoint_keys(&self, endpoints: &str) -> Vec<String> {
        prism_admin::endpoints_of(endpoints, self.pool.tls().is_some())
            .unwrap_or_else(|_| vec![endpoints.to_string()])
    }

    /// Notes that the admin at `endpoints` accepted a proxy registration.
    pub fn proxy_registered(&self, endpoints: &str) {
        let keys = self.endpoint_keys(endpoints);
        let mut epochs = self.proxies.epochs.lock().expect("not poisoned");
        for endpoint in keys {
            *epochs.entry(endpoint).or_default() += 1;
        }
        // Nobody listening (tests, preflight) is fine.
        let _ = self.proxies.tell.unbounded_send(endpoints.to_string());
    }

    /// A number that changes whenever the admin at `endpoints` accepts a proxy registration.
    pub fn proxy_epoch(&self, endpoints: &str) -> u64 {
        let keys = self.endpoint_keys(endpoints);
        let epochs = self.proxies.epochs.lock().expect("not poisoned");
        keys.iter().filter_map(|e| epochs.get(e)).sum()
    }

    /// The endpoint lists of admins as they accept proxy registrations; `None` after the first
    /// call.
    pub fn proxy_registrations(&self) -> Option<mpsc::UnboundedReceiver<String>> {
        self.proxies.hear.lock().expect("not poisoned").take()
    }

    /// The admin at the comma-separated `endpoints` (the nodes of one admin).
    pub fn group(&self, endpoints: &str) -> Result<AdminGroup, AdminError> {
        self.pool.group(endpoints)
    }

    /// The registration of pod `uid` (proxy `proxy` of shard `shard`, `namespace/name`) with
    /// the admin at `endpoints`: one per pod and admin, shared by every upsert that needs it.
    pub fn registration(
        &self,
        endpoints: &str,
        uid: &str,
        shard: &str,
        proxy: &str,
    ) -> Registration {
        self.registered
            .lock()
            .expect("not poisoned")
            .entry(endpoints.to_string())
            .or_default()
            .entry(uid.to_string())
            .or_insert_with(|| Registration {
                shard: shard.to_string(),
                proxy: proxy.to_string(),
                done: Arc::default(),
            })
            .clone()
    }

    /// Forgets every registration with the admin at `endpoints` (it may have lost its state).
    pub fn forget_endpoint(&self, endpoints: &str) {
        self.registered
            .lock()
            .expect("not poisoned")
            .remove(endpoints);
    }

    /// Proxies of `shard` (`namespace/name`) this process registered with any admin, sorted.
    pub fn registered_proxies(&self, shard: &str) -> Vec<String> {
        let registered = self.registered.lock().expect("not poisoned");
        let mut proxies: Vec<String> = registered
            .values()
            .flat_map(|pods| pods.values())
            .filter(|r| r.shard == shard && r.done.initialized())
            .map(|r| r.proxy.clone())
            .collect();
        proxies.sort();
        proxies.dedup();
        proxies
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn registration() -> Registration {
        Registration {
            shard: "team/s".into(),
            proxy: "prism-s-1".into(),
            done: Arc::default(),
        }
    }

    /// Every spelling of an admin's endpoints moves with its proxies; other admins do not, and
    /// registrations are heard once.
    #[test]
    fn proxy_epochs_follow_the_admin_not_its_spelling() {
        let admin = Admin::new(
            std::time::Duration::from_secs(1),
            None,
            Arc::new(crate::observe::metrics::Metrics::new()),
        )
        .unwrap();
        let mut heard = admin.proxy_registrations().expect("the first taker hears");
        assert!(admin.proxy_registrations().is_none());
        admin.proxy_registered("127.0.0.1:8981,127.0.0.2:8981");
        assert_eq!(admin.proxy_epoch("http://127.0.0.1:8981"), 1);
        assert_eq!(admin.proxy_epoch(" 127.0.0.2:8981 "), 1);
        assert_eq!(admin.proxy_epoch("127.0.0.3:8981"), 0);
        assert_eq!(
            heard.try_recv().ok().as_deref(),
            Some("127.0.0.1:8981,127.0.0.2:8981")
        );
    }

    /// An upsert that needs a proxy whose registration another upsert has in flight waits for
    /// it (admin would otherwise place the namespace without that proxy) and does not register
    /// it again.
    #[tokio::test]
    async fn a_registration_in_flight_is_waited_for_not_skipped() {
        let reg = registration();
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let (finish, finish_rx) = tokio::sync::oneshot::channel::<()>();
        let first = tokio::spawn({
            let reg = reg.clone();
            async move {
                reg.ensure(|| async {
                    started_tx.send(()).unwrap();
                    finish_rx.await.unwrap();
                    Ok::<(), ()>(())
                })
                .await
            }
        });
        started.await.unwrap();
        let calls = AtomicUsize::new(0);
        let second = reg.ensure(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<(), ()>(())
        });
        tokio::pin!(second);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut second)
                .await
                .is_err(),
            "went ahead while the registration was in flight"
        );
        finish.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Ok(()));
        assert_eq!(second.await, Ok(()));
        assert_eq!(calls.load(Ordering::SeqCst), 0, "registered twice");
    }

    /// A failed registration is tried again by the next upsert; a successful one never.
    #[tokio::test]
    async fn a_failed_registration_is_retried_and_a_done_one_is_not() {
        let reg = registration();
        let calls = AtomicUsize::new(0);
        let attempt = |ok: bool| {
            let calls = &calls;
            move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                if ok { Ok(()) } else { Err("unavailable") }
            }
        };
        assert_eq!(reg.ensure(attempt(false)).await, Err("unavailable"));
        assert!(!reg.done.initialized());
        assert_eq!(reg.ensure(attempt(true)).await, Ok(()));
        assert_eq!(reg.ensure(attempt(false)).await, Ok(()));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
