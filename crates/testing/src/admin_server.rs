//! A stand-in for prism-admin: a wire-compatible `prism.ControlPlane` server on loopback that
//! behaves like upstream (placement by CRC32-IEEE % 256 over sorted proxy ranges, upsert,
//! FAILED_PRECONDITION without proxies, only metadata persisted) and can be made slow, failing,
//! stopped, restarted on the same port or wiped, for tests of everything that talks to admin.
//! It serves plaintext gRPC ([`AdminServer::start`]), or TLS and mutual TLS
//! ([`AdminServer::start_tls`] with a [`ServerTls`]).
//!
//! As upstream does:
//! - it partitions namespaces over **every** registered proxy, whichever shard it belongs to,
//!   and never forgets a proxy;
//! - names are global: a second create of a name overwrites the first;
//! - RevokeNamespace answers success with "Namespace revocation not yet implemented" and
//!   removes nothing;
//! - as an HA admin ([`AdminServer::start_ha`]), only the leader accepts the writes that go
//!   through Raft (RegisterProxy, CreateNamespace, RegisterLauncher). A follower forwards them
//!   as upstream's `LeaderConnectionPool` does: it dials the leader under one lock per
//!   process, so its forwarding attempts queue one behind the other; a dial that fails takes
//!   the dial time ([`FOLLOWER_DELAY`] unless [`AdminServer::set_forward_dial`]) and answers
//!   UNAVAILABLE "failed to connect to leader: context deadline exceeded", so the k-th of k
//!   concurrent writes answers after about k dial times, and a caller that gave up still
//!   holds its place in the queue. A dial that succeeds
//!   ([`AdminServer::set_leader_dialable`]) is cached and later forwards are quick. Without a
//!   leader ([`AdminServer::lose_quorum`]) a follower answers UNAVAILABLE "no leader elected"
//!   at once. A follower answers Heartbeat "Heartbeat forwarded to leader" at once and
//!   forwards it in the background (through the same lock); the leader answers "Heartbeat
//!   received". The nodes share one replicated state and the leader can be moved.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prism_admin::partition_of;
use prism_admin::proto::control_plane_server::{ControlPlane, ControlPlaneServer};
use prism_admin::proto::{
    CreateNamespaceRequest, CreateNamespaceResponse, HeartbeatAck, LauncherHeartbeatRequest,
    LauncherRegistration, LauncherRegistrationAck, NamespaceAssignment, NamespaceAssignmentAck,
    NamespaceConfig, NamespaceRevocation, NamespaceRevocationAck, PartitionRange,
    ProcessAssignment, ProcessAssignmentAck, ProcessRevocation, ProcessRevocationAck,
    ProxyHeartbeat, ProxyRegistration, ProxyRegistrationAck,
};
use std::collections::BTreeSet;

use tokio::net::TcpListener;
use tokio::sync::{Mutex as AsyncMutex, watch};
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

/// Partitions admin spreads namespaces over.
const PARTITIONS: i32 = 256;

/// How long an upstream follower's dial to the leader takes to fail (its blocking dial's
/// timeout); the default of [`AdminServer::set_forward_dial`].
pub const FOLLOWER_DELAY: Duration = Duration::from_secs(2);

/// A follower's answer to a write it could not forward, as upstream gives it.
pub const FOLLOWER_MESSAGE: &str = "failed to connect to leader: context deadline exceeded";

/// A follower's answer to a write while no leader is elected (quorum lost).
pub const NO_LEADER_MESSAGE: &str = "no leader elected";

/// The leader's answer to Heartbeat.
pub const HEARTBEAT_MESSAGE: &str = "Heartbeat received";

/// A follower's answer to Heartbeat.
pub const HEARTBEAT_FORWARDED_MESSAGE: &str = "Heartbeat forwarded to leader";

/// The value of [`Shared::leader`] while no node leads.
const NO_LEADER: usize = usize::MAX;

/// Upstream's answer to RevokeNamespace.
pub const REVOKE_MESSAGE: &str = "Namespace revocation not yet implemented";

/// What admin keeps of a namespace: its placement and the request's metadata, nothing else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredNamespace {
    /// CRC32-IEEE(name) % 256.
    pub partition: i32,
    /// Proxy whose range held the partition at the last create.
    pub proxy: String,
    /// `config.metadata` of the last create.
    pub metadata: BTreeMap<String, String>,
    /// `principal` of the last create.
    pub principal: String,
}

/// Admin's own state: what a restarted, empty admin would not have.
#[derive(Default)]
struct AdminState {
    /// Registered proxies by id (sorted, as placement needs).
    proxies: BTreeMap<String, ProxyRegistration>,
    namespaces: BTreeMap<String, StoredNamespace>,
}

/// What the test observed on the wire; survives [`AdminServer::wipe`].
#[derive(Default)]
struct CallLog {
    create_calls: usize,
    creates_by_name: BTreeMap<String, usize>,
    last_requests: BTreeMap<String, CreateNamespaceRequest>,
    /// `traceparent` metadata of the last create of each namespace, when sent.
    traceparents: BTreeMap<String, String>,
    revoked: Vec<String>,
    /// Calls by (node, RPC name), answered or not.
    calls: BTreeMap<(usize, &'static str), usize>,
    /// Writes a follower refused.
    follower_answers: usize,
    /// Writes a follower forwarded to the leader over a cached connection.
    forwarded: usize,
}

/// The state the nodes of one admin share (one node unless HA).
#[derive(Default)]
struct Shared {
    state: Mutex<AdminState>,
    log: Mutex<CallLog>,
    slow_ms: AtomicU64,
    failing: AtomicBool,
    /// Index of the node that leads.
    leader: AtomicUsize,
    /// Scheduled leader moves: (accepted CreateNamespace calls, new leader), soonest first.
    moves: Mutex<Vec<(usize, usize)>>,
    /// CreateNamespace calls accepted so far.
    accepted_creates: AtomicUsize,
    /// How long a follower's failing dial to the leader takes (`None`: [`FOLLOWER_DELAY`]).
    forward_dial: Mutex<Option<Duration>>,
    /// Whether a follower's dial to the leader succeeds.
    leader_dialable: AtomicBool,
}

/// One admin process's connections to the leader (upstream's `LeaderConnectionPool`): the
/// nodes dialed successfully, behind the one lock every forwarding attempt takes.
type ForwardPool = Arc<AsyncMutex<BTreeSet<usize>>>;

/// Locks `mutex`, ignoring poisoning by a panicked test thread.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A serving instance: dropping `stop` (or sending `true`) shuts it down.
struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

/// How the test admin speaks TLS: its serving certificate and key and, for mutual TLS, the
/// CA that client certificates must chain to (clients without one are then refused).
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// PEM of the serving certificate (chain).
    pub cert_pem: String,
    /// PEM of the serving certificate's private key.
    pub key_pem: String,
    /// PEM of the CA of client certificates; `Some` requires every client to present one.
    pub client_ca_pem: Option<String>,
}

impl ServerTls {
    fn config(&self) -> ServerTlsConfig {
        let config =
            ServerTlsConfig::new().identity(Identity::from_pem(&self.cert_pem, &self.key_pem));
        match &self.client_ca_pem {
            Some(ca) => config
                .client_ca_root(Certificate::from_pem(ca))
                .client_auth_optional(false),
            None => config,
        }
    }
}

/// The test control plane. Dropping it stops the server.
pub struct AdminServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    running: Mutex<Option<Running>>,
    tls: Option<ServerTls>,
    node: usize,
}

impl AdminServer {
    /// Starts an empty plaintext admin on an ephemeral loopback port.
    pub async fn start() -> AdminServer {
        Self::start_with(None).await
    }

    /// Starts an empty admin serving TLS (mutual TLS when `tls.client_ca_pem` is set) on an
    /// ephemeral loopback port.
    pub async fn start_tls(tls: ServerTls) -> AdminServer {
        Self::start_with(Some(tls)).await
    }

    async fn start_with(tls: Option<ServerTls>) -> AdminServer {
        Self::node(loopback().await, Arc::default(), tls, 0)
    }

    /// Starts the `nodes` nodes of an empty plaintext HA admin on ephemeral loopback ports;
    /// the first one leads. They share one state, as Raft would replicate it.
    pub async fn start_ha(nodes: usize) -> Vec<AdminServer> {
        let loopback = SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0));
        Self::start_ha_on(&vec![loopback; nodes])
            .await
            .expect("bind loopback ports")
    }

    /// Starts the nodes of an empty plaintext HA admin on `addrs` (port 0 picks one); the
    /// first one leads.
    pub async fn start_ha_on(addrs: &[SocketAddr]) -> std::io::Result<Vec<AdminServer>> {
        let shared: Arc<Shared> = Arc::default();
        let mut servers = Vec::with_capacity(addrs.len());
        for (node, addr) in addrs.iter().enumerate() {
            let listener = TcpListener::bind(addr).await?;
            servers.push(Self::node(listener, shared.clone(), None, node));
        }
        Ok(servers)
    }

    fn node(
        listener: TcpListener,
        shared: Arc<Shared>,
        tls: Option<ServerTls>,
        node: usize,
    ) -> AdminServer {
        let addr = listener.local_addr().expect("local address");
        let server = AdminServer {
            addr,
            shared,
            running: Mutex::new(None),
            tls,
            node,
        };
        server.serve(listener);
        server
    }

    /// Makes node `node` of this server's admin the leader (every node shares the choice).
    pub fn set_leader(&self, node: usize) {
        self.shared.leader.store(node, Ordering::SeqCst);
    }

    /// No node leads, as when a group lost its quorum: followers answer writes UNAVAILABLE
    /// [`NO_LEADER_MESSAGE`] at once. [`Self::set_leader`] elects one again.
    pub fn lose_quorum(&self) {
        self.shared.leader.store(NO_LEADER, Ordering::SeqCst);
    }

    /// How long a follower's failing dial to the leader takes ([`FOLLOWER_DELAY`] by default).
    pub fn set_forward_dial(&self, dial: Duration) {
        *lock(&self.shared.forward_dial) = Some(dial);
    }

    /// Whether followers' dials to the leader succeed (they fail by default, as observed
    /// upstream). A successful dial is cached per follower process, and the writes it forwards
    /// are accepted.
    pub fn set_leader_dialable(&self, dialable: bool) {
        self.shared
            .leader_dialable
            .store(dialable, Ordering::SeqCst);
    }

    /// Writes followers forwarded to the leader over a cached connection.
    pub fn forwarded(&self) -> usize {
        lock(&self.shared.log).forwarded
    }

    /// Moves the lead while calls are in flight: right after the `n`-th accepted
    /// CreateNamespace (counted from the start), node `node` leads, for each `(n, node)`.
    pub fn move_leader_at(&self, moves: &[(usize, usize)]) {
        let mut scheduled = moves.to_vec();
        scheduled.sort();
        *lock(&self.shared.moves) = scheduled;
    }

    /// The node that leads (`usize::MAX` after [`Self::lose_quorum`]).
    pub fn leader(&self) -> usize {
        self.shared.leader.load(Ordering::SeqCst)
    }

    /// Calls received by node `node` of this server's admin, by RPC name.
    pub fn calls_on(&self, node: usize) -> BTreeMap<&'static str, usize> {
        lock(&self.shared.log)
            .calls
            .iter()
            .filter(|((n, _), _)| *n == node)
            .map(|((_, rpc), count)| (*rpc, *count))
            .collect()
    }

    /// Calls received by every node of this server's admin, by RPC name.
    pub fn calls(&self) -> BTreeMap<&'static str, usize> {
        let mut total = BTreeMap::new();
        for ((_, rpc), count) in lock(&self.shared.log).calls.iter() {
            *total.entry(*rpc).or_insert(0) += count;
        }
        total
    }

    /// Writes the followers of this server's admin refused.
    pub fn follower_answers(&self) -> usize {
        lock(&self.shared.log).follower_answers
    }

    /// `host:port` of this node, as a shard's `spec.adminEndpoint` takes it.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:<port>`, or `https://…` when serving TLS.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Whether the server speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The loopback address served on (the same across restarts).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The W3C `traceparent` gRPC metadata of the last CreateNamespace of `namespace`, if it
    /// carried one.
    pub fn traceparent(&self, namespace: &str) -> Option<String> {
        lock(&self.shared.log).traceparents.get(namespace).cloned()
    }

    /// Stored namespaces: name → the metadata admin persisted.
    pub fn namespaces(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        lock(&self.shared.state)
            .namespaces
            .iter()
            .map(|(name, stored)| (name.clone(), stored.metadata.clone()))
            .collect()
    }

    /// Everything admin stored about one namespace.
    pub fn namespace(&self, name: &str) -> Option<StoredNamespace> {
        lock(&self.shared.state).namespaces.get(name).cloned()
    }

    /// CreateNamespace calls received for each name, failed ones included.
    pub fn creates_by_name(&self) -> BTreeMap<String, usize> {
        lock(&self.shared.log).creates_by_name.clone()
    }

    /// CreateNamespace calls received, failed ones included.
    pub fn create_calls(&self) -> usize {
        lock(&self.shared.log).create_calls
    }

    /// The last CreateNamespace request for `namespace` exactly as received (admin itself keeps
    /// only the metadata; this is the test's view of the wire).
    pub fn last_request(&self, namespace: &str) -> Option<CreateNamespaceRequest> {
        lock(&self.shared.log).last_requests.get(namespace).cloned()
    }

    /// Namespaces named in RevokeNamespace calls, in call order.
    pub fn revoked(&self) -> Vec<String> {
        lock(&self.shared.log).revoked.clone()
    }

    /// Registered proxy ids, sorted.
    pub fn proxies(&self) -> Vec<String> {
        lock(&self.shared.state).proxies.keys().cloned().collect()
    }

    /// Registers a proxy directly, as if it had called RegisterProxy.
    pub fn add_proxy(&self, proxy_id: &str) {
        lock(&self.shared.state).proxies.insert(
            proxy_id.to_string(),
            ProxyRegistration {
                proxy_id: proxy_id.to_string(),
                ..Default::default()
            },
        );
    }

    /// Delays every response by `delay` (zero turns it off).
    pub fn set_slow(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.slow_ms.store(millis, Ordering::SeqCst);
    }

    /// While set, every RPC answers INTERNAL.
    pub fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    /// Drops all admin state (proxies and namespaces), as an admin restarted empty. The call
    /// log is kept.
    pub fn wipe(&self) {
        *lock(&self.shared.state) = AdminState::default();
    }

    /// Whether the server is accepting connections.
    pub fn is_running(&self) -> bool {
        lock(&self.running).is_some()
    }

    /// Stops serving and closes the port; state is kept. Calls delayed by [`Self::set_slow`]
    /// end with UNAVAILABLE. No-op when stopped.
    pub async fn stop(&self) {
        let running = lock(&self.running).take();
        if let Some(Running { stop, mut task }) = running {
            let _ = stop.send(true);
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }

    /// Serves again on the same port (stopping first if running); state is kept.
    pub async fn restart(&self) {
        self.stop().await;
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("rebind {}: {error}", self.addr),
            }
        };
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let (stop, stopped) = watch::channel(false);
        let service = Service {
            shared: Arc::clone(&self.shared),
            stopped: stopped.clone(),
            node: self.node,
            // A new process: nothing dialed yet.
            forwards: ForwardPool::default(),
        };
        let mut shutdown = stopped;
        let mut builder = Server::builder();
        if let Some(tls) = &self.tls {
            builder = builder
                .tls_config(tls.config())
                .expect("the test TLS settings are valid");
        }
        let task = tokio::spawn(
            builder
                .add_service(ControlPlaneServer::new(service))
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async move {
                    // Resolves on `true` and when the sender is dropped.
                    let _ = shutdown.wait_for(|stop| *stop).await;
                }),
        );
        *lock(&self.running) = Some(Running { stop, task });
    }
}

/// An ephemeral loopback listener.
async fn loopback() -> TcpListener {
    TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind a loopback port")
}

/// The `prism.ControlPlane` implementation of one serving instance.
struct Service {
    shared: Arc<Shared>,
    stopped: watch::Receiver<bool>,
    node: usize,
    forwards: ForwardPool,
}

impl Service {
    /// Counts the call, then applies the slow and failing switches.
    async fn gate(&self, rpc: &'static str) -> Result<(), Status> {
        *lock(&self.shared.log)
            .calls
            .entry((self.node, rpc))
            .or_insert(0) += 1;
        self.gate_switches().await
    }

    /// [`Self::gate`] for a write that goes through Raft: a follower forwards it, as
    /// upstream's does ([`Self::forward`]); `Ok` when the leader takes it.
    async fn gate_write(&self, rpc: &'static str) -> Result<(), Status> {
        self.gate(rpc).await?;
        let leader = self.shared.leader.load(Ordering::SeqCst);
        if leader == self.node {
            return Ok(());
        }
        let answer = if leader == NO_LEADER {
            Err(Status::unavailable(NO_LEADER_MESSAGE))
        } else {
            // Upstream's handler goes on after its caller gave up: so does the attempt here.
            self.forward(leader)
                .await
                .unwrap_or_else(|_| Err(Status::unavailable("admin is shutting down")))
        };
        let mut log = lock(&self.shared.log);
        match answer {
            Ok(()) => log.forwarded += 1,
            Err(_) => log.follower_answers += 1,
        }
        answer
    }

    /// Starts forwarding to `leader`: takes this process's lock, then uses the cached
    /// connection, or dials (instantly when dialable, else failing after the dial time).
    /// Runs on its own, so a caller that gives up does not free its place in the queue.
    fn forward(&self, leader: usize) -> JoinHandle<Result<(), Status>> {
        let forwards = Arc::clone(&self.forwards);
        let shared = Arc::clone(&self.shared);
        let mut stopped = self.stopped.clone();
        tokio::spawn(async move {
            let mut dialed = forwards.lock().await;
            if dialed.contains(&leader) {
                return Ok(());
            }
            if shared.leader_dialable.load(Ordering::SeqCst) {
                dialed.insert(leader);
                return Ok(());
            }
            let dial = lock(&shared.forward_dial).unwrap_or(FOLLOWER_DELAY);
            tokio::select! {
                _ = tokio::time::sleep(dial) => Err(Status::unavailable(FOLLOWER_MESSAGE)),
                _ = stopped.wait_for(|stop| *stop) => {
                    Err(Status::unavailable("admin is shutting down"))
                }
            }
        })
    }

    /// Sleeps `delay`, or answers UNAVAILABLE if the server stops meanwhile.
    async fn sleep(&self, delay: Duration) -> Result<(), Status> {
        let mut stopped = self.stopped.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(()),
            _ = stopped.wait_for(|stop| *stop) => {
                Err(Status::unavailable("admin is shutting down"))
            }
        }
    }

    async fn gate_switches(&self) -> Result<(), Status> {
        let delay = Duration::from_millis(self.shared.slow_ms.load(Ordering::SeqCst));
        if !delay.is_zero() {
            self.sleep(delay).await?;
        }
        if self.shared.failing.load(Ordering::SeqCst) {
            return Err(Status::internal(
                "failed to propose to raft: injected failure",
            ));
        }
        Ok(())
    }
}

/// Seconds since the Unix epoch.
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Contiguous partition ranges over `proxies` (sorted ids): width 256/N, the last takes the rest.
fn ranges(proxies: &[&String]) -> Vec<(String, PartitionRange)> {
    let count = proxies.len() as i32;
    let width = (PARTITIONS / count.max(1)).max(1);
    proxies
        .iter()
        .enumerate()
        .map(|(index, id)| {
            let index = index as i32;
            let start = (index * width).min(PARTITIONS - 1);
            let end = if index == count - 1 {
                PARTITIONS - 1
            } else {
                (start + width - 1).min(PARTITIONS - 1)
            };
            ((*id).clone(), PartitionRange { start, end })
        })
        .collect()
}

/// The proxy whose range holds `partition`, if any proxy is registered.
fn owner(state: &AdminState, partition: i32) -> Option<String> {
    let ids: Vec<&String> = state.proxies.keys().collect();
    ranges(&ids)
        .into_iter()
        .find(|(_, range)| (range.start..=range.end).contains(&partition))
        .map(|(id, _)| id)
}

#[tonic::async_trait]
impl ControlPlane for Service {
    async fn register_proxy(
        &self,
        request: Request<ProxyRegistration>,
    ) -> Result<Response<ProxyRegistrationAck>, Status> {
        self.gate_write("RegisterProxy").await?;
        let registration = request.into_inner();
        let mut state = lock(&self.shared.state);
        let proxy_id = registration.proxy_id.clone();
        state.proxies.insert(proxy_id.clone(), registration);
        let ids: Vec<&String> = state.proxies.keys().collect();
        let partition_ranges: Vec<PartitionRange> = ranges(&ids)
            .into_iter()
            .filter(|(id, _)| *id == proxy_id)
            .map(|(_, range)| range)
            .collect();
        let initial_namespaces = state
            .namespaces
            .iter()
            .filter(|(_, ns)| {
                partition_ranges
                    .iter()
                    .any(|r| (r.start..=r.end).contains(&ns.partition))
            })
            .map(|(name, ns)| NamespaceAssignment {
                namespace: name.clone(),
                partition_id: ns.partition,
                config: Some(NamespaceConfig {
                    metadata: ns.metadata.clone(),
                    ..Default::default()
                }),
                version: 1,
            })
            .collect();
        Ok(Response::new(ProxyRegistrationAck {
            success: true,
            message: "Proxy registered successfully".into(),
            initial_namespaces,
            partition_ranges,
        }))
    }

    async fn assign_namespace(
        &self,
        _request: Request<NamespaceAssignment>,
    ) -> Result<Response<NamespaceAssignmentAck>, Status> {
        self.gate("AssignNamespace").await?;
        Ok(Response::new(NamespaceAssignmentAck {
            success: true,
            message: "Namespace assignment acknowledged".into(),
        }))
    }

    async fn create_namespace(
        &self,
        request: Request<CreateNamespaceRequest>,
    ) -> Result<Response<CreateNamespaceResponse>, Status> {
        let traceparent = request
            .metadata()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let request = request.into_inner();
        {
            let mut log = lock(&self.shared.log);
            if let Some(tp) = traceparent {
                log.traceparents.insert(request.namespace.clone(), tp);
            }
            log.create_calls += 1;
            *log.creates_by_name
                .entry(request.namespace.clone())
                .or_insert(0) += 1;
            log.last_requests
                .insert(request.namespace.clone(), request.clone());
        }
        self.gate_write("CreateNamespace").await?;
        let partition = partition_of(&request.namespace);
        let mut state = lock(&self.shared.state);
        let Some(proxy) = owner(&state, partition) else {
            return Err(Status::failed_precondition(format!(
                "no proxy assigned to partition {partition}: no proxies available"
            )));
        };
        let metadata = request.config.map(|c| c.metadata).unwrap_or_default();
        state.namespaces.insert(
            request.namespace,
            StoredNamespace {
                partition,
                proxy: proxy.clone(),
                metadata,
                principal: request.principal,
            },
        );
        drop(state);
        let accepted = self.shared.accepted_creates.fetch_add(1, Ordering::SeqCst) + 1;
        let mut moves = lock(&self.shared.moves);
        while moves.first().is_some_and(|(at, _)| *at <= accepted) {
            let (_, node) = moves.remove(0);
            self.shared.leader.store(node, Ordering::SeqCst);
        }
        Ok(Response::new(CreateNamespaceResponse {
            success: true,
            message: "Namespace created successfully".into(),
            assigned_partition: partition,
            assigned_proxy: proxy,
        }))
    }

    async fn heartbeat(
        &self,
        _request: Request<ProxyHeartbeat>,
    ) -> Result<Response<HeartbeatAck>, Status> {
        self.gate("Heartbeat").await?;
        let leader = self.shared.leader.load(Ordering::SeqCst);
        let message = if leader == self.node {
            HEARTBEAT_MESSAGE
        } else {
            if leader != NO_LEADER {
                // In the background, through the same lock as the writes.
                drop(self.forward(leader));
            }
            HEARTBEAT_FORWARDED_MESSAGE
        };
        Ok(Response::new(HeartbeatAck {
            success: true,
            message: message.into(),
            server_timestamp: now(),
        }))
    }

    async fn revoke_namespace(
        &self,
        request: Request<NamespaceRevocation>,
    ) -> Result<Response<NamespaceRevocationAck>, Status> {
        self.gate("RevokeNamespace").await?;
        let revocation = request.into_inner();
        lock(&self.shared.log)
            .revoked
            .push(revocation.namespace.clone());
        Ok(Response::new(NamespaceRevocationAck {
            success: true,
            message: REVOKE_MESSAGE.into(),
            revoked_at: now(),
        }))
    }

    async fn register_launcher(
        &self,
        _request: Request<LauncherRegistration>,
    ) -> Result<Response<LauncherRegistrationAck>, Status> {
        self.gate_write("RegisterLauncher").await?;
        Ok(Response::new(LauncherRegistrationAck {
            success: true,
            message: "Launcher registered successfully".into(),
            initial_processes: Vec::new(),
            assigned_capacity: 0,
        }))
    }

    async fn assign_process(
        &self,
        _request: Request<ProcessAssignment>,
    ) -> Result<Response<ProcessAssignmentAck>, Status> {
        self.gate("AssignProcess").await?;
        Ok(Response::new(ProcessAssignmentAck {
            success: true,
            message: "Process assignment not yet implemented".into(),
        }))
    }

    async fn launcher_heartbeat(
        &self,
        _request: Request<LauncherHeartbeatRequest>,
    ) -> Result<Response<HeartbeatAck>, Status> {
        self.gate("LauncherHeartbeat").await?;
        Ok(Response::new(HeartbeatAck {
            success: true,
            message: "Heartbeat received".into(),
            server_timestamp: now(),
        }))
    }

    async fn revoke_process(
        &self,
        _request: Request<ProcessRevocation>,
    ) -> Result<Response<ProcessRevocationAck>, Status> {
        self.gate("RevokeProcess").await?;
        Ok(Response::new(ProcessRevocationAck {
            success: true,
            message: "Process revocation not yet implemented".into(),
            stopped_at: now(),
            exit_code: 0,
        }))
    }
}
