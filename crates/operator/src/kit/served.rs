//! Child kinds that exist only where another project's CRD is installed (GRPCRoute, from the
//! Gateway API). The operator asks discovery at start and then every [`POLL`]: an object of a
//! kind the cluster does not serve is not applied (its owner reports the missing CRD instead),
//! and the kind's caches and triggers start the moment it is served, without a restart.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use kube::Client;
use tokio::sync::watch;

use prism_render::render::contract::{CHILD_KINDS, CRD_CHILD_KINDS};

/// How often discovery is asked again.
pub const POLL: Duration = Duration::from_secs(10);

/// The CRD child kinds the cluster serves now.
#[derive(Clone)]
pub struct Served(Arc<watch::Sender<BTreeSet<String>>>);

impl Default for Served {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(BTreeSet::new())))
    }
}

/// Whether `kind` is served only where its CRD is installed.
pub fn needs_crd(kind: &str) -> bool {
    CRD_CHILD_KINDS.iter().any(|(k, ..)| *k == kind)
}

impl Served {
    /// Whether objects of `kind` can be applied now (built-in kinds always can).
    pub fn has(&self, kind: &str) -> bool {
        !needs_crd(kind) || self.0.borrow().contains(kind)
    }

    /// Resolves once `kind` is served (at once for built-in kinds).
    pub fn until(&self, kind: &str) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.subscribe();
        let kind = kind.to_string();
        async move {
            if needs_crd(&kind) {
                let _ = rx.wait_for(|served| served.contains(&kind)).await;
            }
        }
    }

    /// Yields each time a kind starts being served.
    pub fn arrivals(&self) -> impl Stream<Item = ()> + Send + 'static {
        let rx = self.0.subscribe();
        futures::stream::unfold(rx, |mut rx| async move {
            let before = rx.borrow_and_update().clone();
            loop {
                rx.changed().await.ok()?;
                if !rx.borrow_and_update().is_subset(&before) {
                    return Some(((), rx));
                }
            }
        })
    }

    /// Records whether `kind` is served; logs a change.
    fn set(&self, kind: &str, served: bool) {
        self.0.send_if_modified(|kinds| {
            let changed = match served {
                true => kinds.insert(kind.to_string()),
                false => kinds.remove(kind),
            };
            if changed {
                tracing::info!(kind, served, "CRD child kind availability changed");
            }
            changed
        });
    }
}

/// Asks discovery which CRD child kinds are served; a failed request leaves what was known.
pub async fn discover(client: &Client, served: &Served) {
    for (api_version, kind, plural) in CHILD_KINDS.iter().filter(|(_, k, _)| needs_crd(k)) {
        match client.list_api_group_resources(api_version).await {
            Ok(list) => served.set(kind, list.resources.iter().any(|r| r.name == *plural)),
            Err(kube::Error::Api(e)) if e.code == 404 => served.set(kind, false),
            Err(e) => tracing::warn!(kind, error = %e, "discovery failed"),
        }
    }
}

/// Asks discovery every [`POLL`], forever.
pub async fn keep_discovering(client: Client, served: Served) {
    loop {
        tokio::time::sleep(POLL).await;
        discover(&client, &served).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{FutureExt, StreamExt};

    #[tokio::test]
    async fn built_in_kinds_are_always_served_and_crd_kinds_once_discovered() {
        let served = Served::default();
        assert!(served.has("StatefulSet") && served.has("NetworkPolicy"));
        assert!(!served.has("GRPCRoute"));
        served.until("ConfigMap").now_or_never().expect("at once");
        let route = served.until("GRPCRoute");
        let mut arrivals = Box::pin(served.arrivals());
        assert!(arrivals.next().now_or_never().is_none());
        served.set("GRPCRoute", true);
        assert!(served.has("GRPCRoute"));
        tokio::time::timeout(Duration::from_secs(5), route)
            .await
            .unwrap();
        assert_eq!(arrivals.next().await, Some(()));
        // Going away is no arrival; coming back is.
        served.set("GRPCRoute", false);
        assert!(!served.has("GRPCRoute"));
        assert!(arrivals.next().now_or_never().is_none());
        served.set("GRPCRoute", true);
        assert_eq!(arrivals.next().await, Some(()));
    }
}
