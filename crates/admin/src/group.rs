//! [`AdminGroup`]: the nodes of one Prism admin, followed to the one that accepts writes.
//!
//! Upstream prism-admin runs Raft: only the leader accepts `RegisterProxy` and
//! `CreateNamespace`; a follower answers UNAVAILABLE ("failed to connect to leader") after about
//! two seconds, and no RPC names the leader. A group therefore tries its endpoints in turn,
//! starting with the one that accepted the last call, and keeps whichever accepts. Every clone
//! shares that choice, so once the leader is known no call waits on a follower again.
//!
//! A follower forwards writes under one lock per process and each failed forward takes its
//! dial time, so k writes sent to it at once answer after about 2·k s. While the leader is not
//! known, callers therefore look for it one at a time: the others wait (at most one call's
//! timeout) for that search and then go straight to the leader it found.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::AdminError;
use super::client::{AdminClient, normalize_endpoint};
use super::proto::{
    CreateNamespaceRequest, CreateNamespaceResponse, NamespaceRevocation, NamespaceRevocationAck,
    ProxyRegistration, ProxyRegistrationAck,
};

/// Most endpoints one admin may list.
pub const MAX_ENDPOINTS: usize = 16;

/// An answer, with the endpoint that gave it and how many endpoints were tried.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted<T> {
    /// The answer.
    pub answer: T,
    /// The normalized endpoint that accepted the call, e.g. `http://admin-1:8981`.
    pub endpoint: String,
    /// Calls made, this one included (1 when the known leader answered).
    pub attempts: usize,
}

/// The nodes of one Prism admin. Cheap to clone; clones share the clients and the leader.
#[derive(Clone, Debug)]
pub struct AdminGroup {
    clients: Arc<[AdminClient]>,
    leader: Arc<AtomicUsize>,
    /// Whether the node at `leader` answered the last call made on it as the leader would.
    confirmed: Arc<AtomicBool>,
    /// Held by the caller looking for the leader.
    search: Arc<tokio::sync::Mutex<()>>,
}

impl AdminGroup {
    pub(crate) fn new(clients: Vec<AdminClient>) -> Self {
        assert!(!clients.is_empty(), "a group has at least one endpoint");
        Self {
            clients: clients.into(),
            leader: Arc::default(),
            confirmed: Arc::default(),
            search: Arc::default(),
        }
    }

    /// The normalized endpoints, in the order given.
    pub fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.clients.iter().map(AdminClient::endpoint)
    }

    /// The endpoint that accepted the last call (the first one before any call).
    pub fn leader(&self) -> &str {
        self.clients[self.leader.load(Ordering::Relaxed) % self.clients.len()].endpoint()
    }

    /// `CreateNamespace` on the node that accepts it.
    pub async fn create_namespace(
        &self,
        req: CreateNamespaceRequest,
    ) -> Result<Accepted<CreateNamespaceResponse>, AdminError> {
        self.on_leader(|c| {
            let req = req.clone();
            async move { c.create_namespace(req).await }
        })
        .await
    }

    /// `RegisterProxy` on the node that accepts it.
    pub async fn register_proxy(
        &self,
        req: ProxyRegistration,
    ) -> Result<Accepted<ProxyRegistrationAck>, AdminError> {
        self.on_leader(|c| {
            let req = req.clone();
            async move { c.register_proxy(req).await }
        })
        .await
    }

    /// `RevokeNamespace` on the node that accepts it.
    pub async fn revoke_namespace(
        &self,
        req: NamespaceRevocation,
    ) -> Result<Accepted<NamespaceRevocationAck>, AdminError> {
        self.on_leader(|c| {
            let req = req.clone();
            async move { c.revoke_namespace(req).await }
        })
        .await
    }

    /// Runs `call` on the known leader, then on the other endpoints in order (jumping to a
    /// leader another call found meanwhile) until one accepts or answers with an error that
    /// is not about leadership or reachability. Unless the known leader answered its last
    /// call, only one caller at a time searches (see the module documentation).
    async fn on_leader<T, F, Fut>(&self, call: F) -> Result<Accepted<T>, AdminError>
    where
        F: Fn(AdminClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, AdminError>>,
    {
        let count = self.clients.len();
        let mut tried = vec![false; count];
        let mut failures: Vec<(usize, AdminError)> = Vec::new();
        let mut _searching = None;
        let mut waited = false;
        let mut last = self.leader.load(Ordering::Relaxed) % count;
        for attempt in 1..=count {
            if count > 1 && !waited && !self.confirmed.load(Ordering::SeqCst) {
                waited = true;
                _searching = self.wait_for_search().await;
            }
            let known = self.leader.load(Ordering::Relaxed) % count;
            let next = if !tried[known] {
                known
            } else {
                match (1..count).map(|i| (last + i) % count).find(|i| !tried[*i]) {
                    Some(i) => i,
                    None => break,
                }
            };
            tried[next] = true;
            last = next;
            match call(self.clients[next].clone()).await {
                Ok(answer) => {
                    self.found(next);
                    return Ok(Accepted {
                        answer,
                        endpoint: self.clients[next].endpoint().to_string(),
                        attempts: attempt,
                    });
                }
                Err(error) if count > 1 && moves_on(&error) => {
                    if self.leader.load(Ordering::Relaxed) % count == next {
                        self.confirmed.store(false, Ordering::SeqCst);
                    }
                    failures.push((next, error));
                }
                Err(error) => {
                    // An answer that is not about leadership came from the leader's side.
                    self.found(next);
                    return Err(error);
                }
            }
        }
        Err(self.none_accepted(failures))
    }

    /// Records that node `index` answered as the leader.
    fn found(&self, index: usize) {
        self.leader.store(index, Ordering::Relaxed);
        self.confirmed.store(true, Ordering::SeqCst);
    }

    /// The search lock, once no other caller searches; `None` when the leader was found
    /// meanwhile, or after waiting one call's timeout for it (then this caller searches too).
    async fn wait_for_search(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        let wait = self.clients[0].timeout();
        let guard = tokio::time::timeout(wait, Arc::clone(&self.search).lock_owned())
            .await
            .ok()?;
        (!self.confirmed.load(Ordering::SeqCst)).then_some(guard)
    }

    fn none_accepted(&self, failures: Vec<(usize, AdminError)>) -> AdminError {
        let summary = failures
            .iter()
            .map(|(i, e)| format!("{}: {e}", self.clients[*i].endpoint()))
            .collect::<Vec<_>>()
            .join("; ");
        AdminError::NoLeader(format!(
            "none of the {} endpoints accepted the call ({summary})",
            self.clients.len()
        ))
    }
}

/// Whether a failed call is worth trying on another node: the node is a follower, is down or
/// unreachable, lost leadership while proposing, or cannot be talked to over TLS.
fn moves_on(error: &AdminError) -> bool {
    match error {
        AdminError::Unavailable(_) | AdminError::DeadlineExceeded(_) | AdminError::Tls(_) => true,
        AdminError::Internal(message) => message.contains("leader"),
        _ => false,
    }
}

/// The normalized endpoints of a comma-separated list (`host:port` each, port 8981 by
/// default), in order and without duplicates: what [`AdminPool::group`](super::AdminPool::group)
/// follows.
pub fn endpoints_of(list: &str, tls: bool) -> Result<Vec<String>, AdminError> {
    let mut endpoints: Vec<String> = Vec::new();
    for part in list.split(',') {
        let endpoint = normalize_endpoint(part, tls)?;
        if !endpoints.contains(&endpoint) {
            endpoints.push(endpoint);
        }
    }
    if endpoints.len() > MAX_ENDPOINTS {
        return Err(AdminError::InvalidEndpoint(format!(
            "{} endpoints; at most {MAX_ENDPOINTS}",
            endpoints.len()
        )));
    }
    Ok(endpoints)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_in_order_without_duplicates() {
        assert_eq!(
            endpoints_of("a:1, b:2,a:1,http://c", false).unwrap(),
            ["http://a:1", "http://b:2", "http://c:8981"]
        );
        assert_eq!(endpoints_of("a:1", true).unwrap(), ["https://a:1"]);
        for bad in ["", "a:1,", ",a:1", "a:1,,b:2", "a:1,b:x"] {
            let error = endpoints_of(bad, false).unwrap_err();
            assert_eq!(error.reason(), "InvalidAdminEndpoint", "{bad}");
        }
        let many = (0..17)
            .map(|i| format!("a{i}:1"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(endpoints_of(&many, false).is_err());
    }

    #[test]
    fn only_leadership_and_reachability_move_on() {
        assert!(moves_on(&AdminError::Unavailable(
            "failed to connect to leader: context deadline exceeded".into()
        )));
        assert!(moves_on(&AdminError::DeadlineExceeded("2s".into())));
        assert!(moves_on(&AdminError::Internal(
            "failed to propose: node is not the leader".into()
        )));
        assert!(!moves_on(&AdminError::Internal("disk full".into())));
        assert!(!moves_on(&AdminError::FailedPrecondition(
            "no proxies".into()
        )));
        assert!(!moves_on(&AdminError::Rejected("bad".into())));
    }
}
