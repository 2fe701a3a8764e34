//! [`AdminClient`], a timeout-bounded client of `prism.ControlPlane` over plaintext, TLS or
//! mutual TLS, and [`AdminPool`], which keeps one client per admin endpoint and one
//! [`AdminGroup`] per list of endpoints.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tonic::codegen::http::Uri;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use super::error::{describe, is_tls_failure, sanitize};
use super::group::{AdminGroup, endpoints_of};
use super::proto::control_plane_client::ControlPlaneClient;
use super::proto::{
    CreateNamespaceRequest, CreateNamespaceResponse, NamespaceConfig, NamespaceRevocation,
    NamespaceRevocationAck, ProxyHeartbeat, ProxyRegistration, ProxyRegistrationAck,
};
use super::{AdminError, AdminTls};

/// Sees every admin call: its RPC, endpoint, outcome (`"ok"` or the error's reason) and
/// duration. For metrics; it never sees requests or answers.
pub type CallObserver = Arc<dyn Fn(&str, &str, &str, Duration) + Send + Sync>;

/// Adds to the gRPC metadata of every admin call, inside the call's span (e.g. the W3C trace
/// context of that span).
pub type MetadataHook = Arc<dyn Fn(&mut tonic::metadata::MetadataMap) + Send + Sync>;

/// The operator's default deadline of every admin call (`--admin-timeout`): above a
/// follower's answer to a write (about 2 s per forwarding attempt queued on it, up to 5 s
/// seen), so a follower is told from a node that does not answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Port prism-admin serves `prism.ControlPlane` on by default; used when an endpoint has none.
pub const DEFAULT_ADMIN_PORT: u16 = 8981;

/// Client of one Prism admin endpoint. Cheap to clone: clones share one HTTP/2 channel.
///
/// The channel connects lazily and reconnects by itself, so a client outlives admin restarts.
/// Every call — connecting included — is bounded by the client's timeout, which is also sent to
/// the server as the call's deadline.
#[derive(Clone)]
pub struct AdminClient {
    inner: ControlPlaneClient<Channel>,
    endpoint: Arc<str>,
    timeout: Duration,
    tls: bool,
    observer: Option<CallObserver>,
    metadata: Option<MetadataHook>,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl AdminClient {
    /// A plaintext client of `endpoint` (`host:port` or `http://host:port`; the port defaults
    /// to 8981) that connects on first use. `https://` needs TLS settings, so it is refused
    /// here: see [`Self::connect_lazy_with_tls`].
    ///
    /// Must be called within a Tokio runtime.
    pub fn connect_lazy(endpoint: &str, timeout: Duration) -> Result<Self, AdminError> {
        Self::connect(endpoint, timeout, None)
    }

    /// A client of `endpoint` (`host:port` or `https://host:port`; the port defaults to 8981)
    /// over TLS, or mutual TLS when `tls` has a client identity, that connects on first use.
    /// The settings are checked here; a handshake that fails later (an untrusted server
    /// certificate, a refused or missing client certificate) is [`AdminError::Tls`].
    ///
    /// Must be called within a Tokio runtime.
    pub fn connect_lazy_with_tls(
        endpoint: &str,
        timeout: Duration,
        tls: &AdminTls,
    ) -> Result<Self, AdminError> {
        Self::connect(endpoint, timeout, Some(tls))
    }

    fn connect(
        endpoint: &str,
        timeout: Duration,
        tls: Option<&AdminTls>,
    ) -> Result<Self, AdminError> {
        let uri = normalize_endpoint(endpoint, tls.is_some())?;
        let mut builder = Endpoint::from_shared(uri.clone())
            .map_err(|e| AdminError::InvalidEndpoint(format!("{endpoint:?}: {e}")))?;
        if let Some(tls) = tls {
            tls.check()?;
            builder = builder
                .tls_config(tls.client_config())
                .map_err(|e| AdminError::InvalidTls(sanitize(&error_chain(&e), &[])))?;
        }
        let channel = builder
            .connect_timeout(timeout)
            .timeout(timeout)
            // Drop a connection to a vanished peer within about a minute, so the channel
            // reconnects (to a new admin pod behind the Service). Kernel-level, so it does not
            // count against gRPC servers' ping policies.
            .tcp_keepalive(Some(Duration::from_secs(30)))
            .tcp_keepalive_interval(Some(Duration::from_secs(10)))
            .tcp_keepalive_retries(Some(3))
            .connect_lazy();
        Ok(Self {
            inner: ControlPlaneClient::new(channel),
            endpoint: uri.into(),
            timeout,
            tls: tls.is_some(),
            observer: None,
            metadata: None,
        })
    }

    /// The same client, reporting every call to `observer`.
    pub fn observed(mut self, observer: CallObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The same client, adding to every call's metadata with `hook`.
    pub fn with_metadata(mut self, hook: MetadataHook) -> Self {
        self.metadata = Some(hook);
        self
    }

    /// Whether the client speaks TLS to admin.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The normalized endpoint, e.g. `http://prism-admin.prism.svc:8981` (or `https://…`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The bound on every call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `CreateNamespace`: creates or replaces a namespace (admin upserts). An answer with
    /// `success = false` is [`AdminError::Rejected`].
    pub async fn create_namespace(
        &self,
        req: CreateNamespaceRequest,
    ) -> Result<CreateNamespaceResponse, AdminError> {
        let secrets = secrets_of(req.config.as_ref());
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let response = self
            .call("CreateNamespace", &secrets, req, |mut c, r| async move {
                c.create_namespace(r).await
            })
            .await?;
        if !response.success {
            return Err(AdminError::rejected(&response.message, &secrets));
        }
        Ok(response)
    }

    /// `RegisterProxy`: announces a proxy (idempotent); the answer carries its partition ranges.
    pub async fn register_proxy(
        &self,
        req: ProxyRegistration,
    ) -> Result<ProxyRegistrationAck, AdminError> {
        let response = self
            .call("RegisterProxy", &[], req, |mut c, r| async move {
                c.register_proxy(r).await
            })
            .await?;
        if !response.success {
            return Err(AdminError::rejected(&response.message, &[]));
        }
        Ok(response)
    }

    /// `RevokeNamespace`: withdraws a namespace from a proxy. Upstream admin acknowledges this
    /// without removing anything (there is no delete RPC).
    pub async fn revoke_namespace(
        &self,
        req: NamespaceRevocation,
    ) -> Result<NamespaceRevocationAck, AdminError> {
        let response = self
            .call("RevokeNamespace", &[], req, |mut c, r| async move {
                c.revoke_namespace(r).await
            })
            .await?;
        if !response.success {
            return Err(AdminError::rejected(&response.message, &[]));
        }
        Ok(response)
    }

    /// Whether this node leads its admin group. No RPC says, and upstream's followers and
    /// leader only differ on Raft writes and on Heartbeat, so this sends a Heartbeat of
    /// [`ROLE_PROBE_PROXY`], a proxy that never registers: the leader answers "Heartbeat
    /// received" (its state machine refuses the update of an unregistered proxy, so nothing
    /// changes), a follower "Heartbeat forwarded to leader", at once. Any other answer is
    /// taken as a single admin's, which leads.
    pub async fn role(&self) -> Result<Role, AdminError> {
        let heartbeat = ProxyHeartbeat {
            proxy_id: ROLE_PROBE_PROXY.to_string(),
            ..Default::default()
        };
        let ack = self
            .call("Heartbeat", &[], heartbeat, |mut c, r| async move {
                c.heartbeat(r).await
            })
            .await?;
        Ok(if ack.message.contains("forwarded") {
            Role::Follower
        } else {
            Role::Leader
        })
    }

    /// Runs one unary call under the timeout, in a span of its own (RPC, endpoint, outcome),
    /// and classifies its failure. Logs and records the RPC name, endpoint and outcome only,
    /// never the request.
    async fn call<Req, Resp, F, Fut>(
        &self,
        rpc: &'static str,
        secrets: &[&str],
        message: Req,
        send: F,
    ) -> Result<Resp, AdminError>
    where
        F: FnOnce(ControlPlaneClient<Channel>, Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        use tracing::Instrument;
        let span = tracing::info_span!(
            "admin call",
            otel.name = format!("prism.ControlPlane/{rpc}"),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = "prism.ControlPlane",
            rpc.method = rpc,
            server.address = %self.endpoint,
            outcome = tracing::field::Empty,
        );
        let result = self
            .traced_call(rpc, secrets, message, send)
            .instrument(span.clone())
            .await;
        let outcome = result.as_ref().map_or_else(AdminError::reason, |_| "ok");
        span.record("outcome", outcome);
        span.record(
            "otel.status_code",
            if result.is_ok() { "ok" } else { "error" },
        );
        result
    }

    async fn traced_call<Req, Resp, F, Fut>(
        &self,
        rpc: &'static str,
        secrets: &[&str],
        message: Req,
        send: F,
    ) -> Result<Resp, AdminError>
    where
        F: FnOnce(ControlPlaneClient<Channel>, Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let mut request = Request::new(message);
        request.set_timeout(self.timeout);
        if let Some(hook) = &self.metadata {
            hook(request.metadata_mut());
        }
        let started = Instant::now();
        let outcome = tokio::time::timeout(self.timeout, send(self.inner.clone(), request)).await;
        let result = match outcome {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => match AdminError::from_status(&status, secrets) {
                // Whichever side noticed the deadline first, say what it was.
                AdminError::DeadlineExceeded(_) => Err(AdminError::timed_out(self.timeout)),
                AdminError::Unavailable(m) | AdminError::Other(_, m)
                    if self.tls && is_tls_failure(&status, &describe(&status)) =>
                {
                    Err(AdminError::Tls(with_tls_hint(m)))
                }
                error => Err(error),
            },
            Err(_elapsed) => Err(AdminError::timed_out(self.timeout)),
        };
        let elapsed = started.elapsed();
        if let Some(observe) = &self.observer {
            let outcome = result.as_ref().map_or_else(AdminError::reason, |_| "ok");
            observe(rpc, &self.endpoint, outcome, elapsed);
        }
        let elapsed_ms = elapsed.as_millis() as u64;
        match &result {
            Ok(_) => {
                tracing::debug!(rpc, endpoint = %self.endpoint, elapsed_ms, "admin call succeeded")
            }
            Err(error) => tracing::debug!(
                rpc,
                endpoint = %self.endpoint,
                elapsed_ms,
                reason = error.reason(),
                %error,
                "admin call failed"
            ),
        }
        result
    }
}

/// The proxy id of [`AdminClient::role`]'s Heartbeat.
pub const ROLE_PROBE_PROXY: &str = "prism-operator-role-probe";

/// What a node of an admin group is, by [`AdminClient::role`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It accepts writes.
    Leader,
    /// It forwards writes to the leader, if there is one.
    Follower,
}

/// Every secret value in a namespace configuration, to scrub from server messages.
fn secrets_of(config: Option<&NamespaceConfig>) -> Vec<String> {
    config
        .into_iter()
        .flat_map(|c| c.backends.values())
        .flat_map(|b| std::iter::once(&b.connection_string).chain(b.credentials.values()))
        .filter(|s| !s.is_empty())
        .cloned()
        .collect()
}

/// A TLS failure's message with what it most likely means, when that is clear.
fn with_tls_hint(message: String) -> String {
    let hint = [
        (
            "UnknownIssuer",
            "admin's certificate is not signed by the configured CA",
        ),
        (
            "not valid for name",
            "admin's certificate does not name the endpoint's host; fix the endpoint or set the expected name",
        ),
        (
            "CertificateRequired",
            "admin requires a client certificate: configure one for mutual TLS",
        ),
        (
            "UnknownCA",
            "admin does not trust the CA of the client certificate",
        ),
        (
            "BadCertificate",
            "admin refused the client certificate",
        ),
        ("InvalidContentType", "the endpoint does not seem to speak TLS"),
    ]
    .iter()
    .find(|(marker, _)| message.contains(marker));
    match hint {
        Some((_, hint)) => format!("{message} ({hint})"),
        None => message,
    }
}

/// Every cause of `error`, joined, for a one-line message.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let shown = e.to_string();
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        cause = e.source();
    }
    text
}

/// `http://host:port` from `host[:port]` or `http://host[:port]`; with `tls`,
/// `https://host:port` from `host[:port]` or `https://host[:port]`.
pub(crate) fn normalize_endpoint(endpoint: &str, tls: bool) -> Result<String, AdminError> {
    let invalid = |why: &str| AdminError::InvalidEndpoint(format!("{endpoint:?}: {why}"));
    let trimmed = endpoint.trim();
    if trimmed.is_empty() {
        return Err(AdminError::InvalidEndpoint("empty endpoint".into()));
    }
    let scheme = if tls { "https" } else { "http" };
    let with_scheme = match trimmed.split_once("://") {
        None => format!("{scheme}://{trimmed}"),
        Some((given, _)) if given == scheme => trimmed.to_string(),
        Some(("https", _)) => {
            return Err(invalid(
                "https needs TLS settings (a CA certificate); use host:port or http://host:port for plaintext gRPC",
            ));
        }
        Some(("http", _)) => {
            return Err(invalid(
                "TLS is configured, so the endpoint cannot be http://; use host:port or https://host:port",
            ));
        }
        Some(_) => return Err(invalid(&format!("the scheme must be {scheme}"))),
    };
    let uri: Uri = with_scheme
        .parse()
        .map_err(|_| invalid("not a host:port address"))?;
    let authority = uri.authority().ok_or_else(|| invalid("no host"))?.clone();
    if authority.as_str().contains('@') {
        // Never echo user information back: it may hold a password.
        return Err(AdminError::InvalidEndpoint(
            "user information is not allowed in the admin endpoint".into(),
        ));
    }
    if authority.host().is_empty() {
        return Err(invalid("no host"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(invalid("a path or query is not allowed"));
    }
    let port = match authority.port_u16() {
        Some(port) => port,
        None if authority.as_str() == authority.host() => DEFAULT_ADMIN_PORT,
        None => return Err(invalid("the port must be a number")),
    };
    if port == 0 {
        return Err(invalid("port 0"));
    }
    Ok(format!("{scheme}://{}:{port}", authority.host()))
}

/// One [`AdminClient`] per admin endpoint, created on first use; clones share the cache.
/// Every client of a pool speaks plaintext, or TLS with the pool's [`AdminTls`].
#[derive(Clone)]
pub struct AdminPool {
    timeout: Duration,
    tls: Option<Arc<AdminTls>>,
    clients: Arc<Mutex<HashMap<String, AdminClient>>>,
    groups: Arc<Mutex<HashMap<String, AdminGroup>>>,
    observer: Option<CallObserver>,
    metadata: Option<MetadataHook>,
}

impl std::fmt::Debug for AdminPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminPool")
            .field("timeout", &self.timeout)
            .field("tls", &self.tls.is_some())
            .field("clients", &self.len())
            .finish_non_exhaustive()
    }
}

impl AdminPool {
    /// An empty pool of plaintext clients that bound every call by `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            tls: None,
            clients: Arc::default(),
            groups: Arc::default(),
            observer: None,
            metadata: None,
        }
    }

    /// The pool, reporting every call of its clients to `observer` (set before first use).
    pub fn with_observer(mut self, observer: CallObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The pool, adding to the metadata of every call of its clients with `hook` (set before
    /// first use).
    pub fn with_metadata(mut self, hook: MetadataHook) -> Self {
        self.metadata = Some(hook);
        self
    }

    /// An empty pool of clients that speak TLS (mutual TLS when `tls` has a client identity)
    /// and bound every call by `timeout`. The settings are checked here, so bad files fail
    /// at startup.
    pub fn with_tls(timeout: Duration, tls: AdminTls) -> Result<Self, AdminError> {
        tls.check()?;
        Ok(Self {
            timeout,
            tls: Some(Arc::new(tls)),
            clients: Arc::default(),
            groups: Arc::default(),
            observer: None,
            metadata: None,
        })
    }

    /// A pool of clients that speak TLS when `tls` is given (see [`Self::with_tls`]), else
    /// plaintext.
    pub fn configured(timeout: Duration, tls: Option<AdminTls>) -> Result<Self, AdminError> {
        match tls {
            Some(tls) => Self::with_tls(timeout, tls),
            None => Ok(Self::new(timeout)),
        }
    }

    /// The pool's TLS settings, if its clients speak TLS.
    pub fn tls(&self) -> Option<&AdminTls> {
        self.tls.as_deref()
    }

    /// The client of `endpoint`, shared by every caller naming the same endpoint (after
    /// normalization). Must be called within a Tokio runtime.
    pub fn client(&self, endpoint: &str) -> Result<AdminClient, AdminError> {
        let key = normalize_endpoint(endpoint, self.tls.is_some())?;
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let mut client = AdminClient::connect(&key, self.timeout, self.tls.as_deref())?;
        if let Some(observer) = &self.observer {
            client = client.observed(observer.clone());
        }
        if let Some(hook) = &self.metadata {
            client = client.with_metadata(hook.clone());
        }
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// The group of the comma-separated endpoint list `endpoints` (the nodes of one admin,
    /// one address for a single node), shared by every caller naming the same list, so all
    /// of them follow one leader. Must be called within a Tokio runtime.
    pub fn group(&self, endpoints: &str) -> Result<AdminGroup, AdminError> {
        let normalized = endpoints_of(endpoints, self.tls.is_some())?;
        let key = normalized.join(",");
        if let Some(group) = self
            .groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(group.clone());
        }
        let clients = normalized
            .iter()
            .map(|e| self.client(e))
            .collect::<Result<Vec<_>, _>>()?;
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(groups
            .entry(key)
            .or_insert_with(|| AdminGroup::new(clients))
            .clone())
    }

    /// Drops the cached client of `endpoint`, and every group holding it, if any (callers
    /// holding a clone keep it).
    pub fn forget(&self, endpoint: &str) {
        if let Ok(key) = normalize_endpoint(endpoint, self.tls.is_some()) {
            self.clients
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key);
            self.groups
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|_, g| !g.endpoints().any(|e| e == key));
        }
    }

    /// Number of cached clients.
    pub fn len(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no client is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound on every call of the pool's clients.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_normalize() {
        let ok = [
            ("prism-admin:8981", "http://prism-admin:8981"),
            ("http://10.0.0.1:9000", "http://10.0.0.1:9000"),
            (
                "http://admin.prism.svc:8981/",
                "http://admin.prism.svc:8981",
            ),
            ("admin.prism.svc", "http://admin.prism.svc:8981"),
            (" [::1]:8981 ", "http://[::1]:8981"),
        ];
        for (input, expected) in ok {
            assert_eq!(
                normalize_endpoint(input, false).unwrap(),
                expected,
                "{input}"
            );
            let tls = expected.replace("http://", "https://");
            let input = input.replace("http://", "https://");
            assert_eq!(normalize_endpoint(&input, true).unwrap(), tls, "{input}");
        }
        assert!(normalize_endpoint("http://admin:8981", true).is_err());
        for bad in [
            "",
            "https://admin:8981",
            "grpc://admin:8981",
            "admin:8981/path",
            "admin:notaport",
            "admin:0",
            "http://",
        ] {
            let error = normalize_endpoint(bad, false).unwrap_err();
            assert_eq!(error.reason(), "InvalidAdminEndpoint", "{bad}");
        }
        let error = normalize_endpoint("user:hunter2@admin:8981", false).unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[tokio::test]
    async fn pool_shares_one_client_per_endpoint() {
        let pool = AdminPool::new(Duration::from_secs(1));
        let a = pool.client("admin:8981").unwrap();
        let b = pool.client("http://admin:8981").unwrap();
        assert_eq!(a.endpoint(), b.endpoint());
        pool.client("other:8981").unwrap();
        assert_eq!(pool.len(), 2);
        assert!(pool.client("https://admin:8981").is_err());
        pool.forget("admin");
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.timeout(), Duration::from_secs(1));
        assert_eq!(a.timeout(), Duration::from_secs(1));
    }

    #[test]
    fn secrets_are_collected() {
        use super::super::proto::BackendConfig;
        let config = NamespaceConfig {
            backends: [(
                "pg".to_string(),
                BackendConfig {
                    connection_string: "postgres://x".into(),
                    credentials: [("password".to_string(), "pw".to_string())].into(),
                    ..Default::default()
                },
            )]
            .into(),
            ..Default::default()
        };
        assert_eq!(secrets_of(Some(&config)), ["postgres://x", "pw"]);
        assert!(secrets_of(None).is_empty());
    }
}
