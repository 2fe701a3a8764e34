//! The admin client against the test control plane, over real TCP on loopback: placement,
//! upsert, metadata-only persistence and every failure class the operator reacts to.

#[allow(dead_code)]
use prism_testing::admin_server;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use std::time::{Duration, Instant};

use admin_server::AdminServer;
use prism_admin::proto::{
    CreateNamespaceRequest, NamespaceConfig, NamespaceRevocation, ProxyRegistration,
};
use prism_admin::{AdminClient, AdminError, AdminPool, namespace_config, partition_of};
use prism_api::{Consistency, PrismNamespace, RateLimit};

const TIMEOUT: Duration = Duration::from_secs(2);
const SECRET: &str = "postgres://orders:hunter2@db.team-a.svc:5432/orders";

/// CRC32-IEEE bit by bit, independent of the code under test.
fn crc32_ieee(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn request(namespace: &str, config: NamespaceConfig) -> CreateNamespaceRequest {
    CreateNamespaceRequest {
        namespace: namespace.into(),
        requesting_proxy: "prism-operator".into(),
        config: Some(config),
        principal: "prism-operator".into(),
    }
}

fn labelled(backend: &str) -> NamespaceConfig {
    NamespaceConfig {
        metadata: [("prism.io/backend".to_string(), backend.to_string())].into(),
        ..Default::default()
    }
}

fn registration(proxy_id: &str) -> ProxyRegistration {
    ProxyRegistration {
        proxy_id: proxy_id.into(),
        address: format!("{proxy_id}.prism.svc:8980"),
        region: "local".into(),
        version: "0.1.0".into(),
        capabilities: vec!["keyvalue".into()],
        metadata: Default::default(),
    }
}

fn orders() -> PrismNamespace {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "prism.io/v1beta1",
        "kind": "PrismNamespace",
        "metadata": {"name": "orders", "namespace": "team-a"},
        "spec": {
            "backend": "postgres",
            "pattern": "keyvalue",
            "backendConfig": {"pool_size": 10},
            "connectionStringFrom": {"secretKeyRef": {"name": "orders-db", "key": "url"}},
            "caching": {"enabled": true, "ttl": "300s"},
        },
    }))
    .unwrap()
}

async fn started() -> (AdminServer, AdminClient) {
    let server = AdminServer::start().await;
    let client = AdminClient::connect_lazy(&server.endpoint(), TIMEOUT).unwrap();
    (server, client)
}

#[tokio::test]
async fn create_before_any_proxy_registers_is_failed_precondition() {
    let server = AdminServer::start().await;
    // The bare host:port form.
    let endpoint = server.endpoint().replace("http://", "");
    let client = AdminClient::connect_lazy(&endpoint, TIMEOUT).unwrap();

    let error = client
        .create_namespace(request("orders", labelled("postgres")))
        .await
        .unwrap_err();
    assert!(
        matches!(error, AdminError::FailedPrecondition(_)),
        "{error}"
    );
    assert_eq!(error.reason(), "NoProxyRegistered");
    assert!(error.is_retryable());
    assert!(server.namespaces().is_empty());
    assert_eq!(server.create_calls(), 1);

    client
        .register_proxy(registration("proxy-a"))
        .await
        .unwrap();
    let created = client
        .create_namespace(request("orders", labelled("postgres")))
        .await
        .unwrap();
    assert!(created.success);
    assert_eq!(created.assigned_proxy, "proxy-a");
    assert_eq!(server.create_calls(), 2);
}

#[tokio::test]
async fn placement_follows_crc32_and_sorted_proxy_ranges() {
    assert_eq!(crc32_ieee(b"123456789"), 0xCBF4_3926);
    let (server, client) = started().await;

    let first = client
        .register_proxy(registration("proxy-c"))
        .await
        .unwrap();
    assert_eq!(
        first
            .partition_ranges
            .iter()
            .map(|r| (r.start, r.end))
            .collect::<Vec<_>>(),
        [(0, 255)]
    );
    client
        .register_proxy(registration("proxy-a"))
        .await
        .unwrap();
    client
        .register_proxy(registration("proxy-b"))
        .await
        .unwrap();
    // Registering again is idempotent; the ranges are contiguous over the sorted ids.
    let again = client
        .register_proxy(registration("proxy-b"))
        .await
        .unwrap();
    assert_eq!(
        again
            .partition_ranges
            .iter()
            .map(|r| (r.start, r.end))
            .collect::<Vec<_>>(),
        [(85, 169)]
    );
    assert_eq!(server.proxies(), ["proxy-a", "proxy-b", "proxy-c"]);

    let sorted = ["proxy-a", "proxy-b", "proxy-c"];
    let mut owners = BTreeSet::new();
    for i in 0..24 {
        let name = format!("namespace-{i}");
        let expected_partition = (crc32_ieee(name.as_bytes()) % 256) as i32;
        let expected_proxy = sorted[(expected_partition as usize / 85).min(2)];
        assert_eq!(partition_of(&name), expected_partition, "{name}");

        let created = client
            .create_namespace(request(&name, labelled("redis")))
            .await
            .unwrap();
        assert_eq!(created.assigned_partition, expected_partition, "{name}");
        assert_eq!(created.assigned_proxy, expected_proxy, "{name}");
        let stored = server.namespace(&name).unwrap();
        assert_eq!(
            (stored.partition, stored.proxy.as_str()),
            (expected_partition, expected_proxy)
        );
        owners.insert(created.assigned_proxy);
    }
    assert_eq!(owners.len(), 3, "every proxy owns some namespace");

    // A proxy registering late learns the namespaces already in its range.
    let ack = client
        .register_proxy(registration("proxy-a"))
        .await
        .unwrap();
    let range = &ack.partition_ranges[0];
    assert!(!ack.initial_namespaces.is_empty());
    for assignment in &ack.initial_namespaces {
        assert!((range.start..=range.end).contains(&assignment.partition_id));
        assert_eq!(
            assignment.config.as_ref().unwrap().metadata["prism.io/backend"],
            "redis"
        );
    }
}

#[tokio::test]
async fn upsert_replaces_metadata_and_only_metadata_is_persisted() {
    let (server, client) = started().await;
    client
        .register_proxy(registration("proxy-a"))
        .await
        .unwrap();
    client
        .register_proxy(registration("proxy-b"))
        .await
        .unwrap();

    let mut ns = orders();
    let config = namespace_config(&ns, "shard-a", Some(SECRET));
    let created = client
        .create_namespace(request("orders", config.clone()))
        .await
        .unwrap();
    assert_eq!(created.assigned_partition, partition_of("orders"));

    // The connection string crossed the wire…
    let received = server.last_request("orders").unwrap();
    assert_eq!(
        received.config.unwrap().backends["postgres"].connection_string,
        SECRET
    );
    // …but admin kept the metadata alone, which holds no secret.
    let stored = server.namespace("orders").unwrap();
    assert_eq!(stored.metadata, config.metadata);
    assert_eq!(stored.principal, "prism-operator");
    assert_eq!(stored.metadata["prism.io/shard"], "shard-a");
    assert_eq!(stored.metadata["prism.io/cache-ttl-seconds"], "300");
    assert!(
        stored
            .metadata
            .iter()
            .all(|(k, v)| !k.contains("hunter2") && !v.contains("hunter2")),
        "{:?}",
        stored.metadata
    );

    ns.spec.consistency = Some(Consistency::Strong);
    ns.spec.rate_limit = Some(RateLimit {
        rps: 100,
        burst: None,
    });
    let updated_config = namespace_config(&ns, "shard-a", Some(SECRET));
    let updated = client
        .create_namespace(request("orders", updated_config.clone()))
        .await
        .unwrap();
    assert_eq!(
        (updated.assigned_partition, &updated.assigned_proxy),
        (created.assigned_partition, &created.assigned_proxy)
    );
    assert_eq!(server.namespaces().len(), 1);
    assert_eq!(server.create_calls(), 2);
    let metadata = &server.namespaces()["orders"];
    assert_eq!(metadata, &updated_config.metadata);
    assert_eq!(metadata["prism.io/consistency"], "strong");
    assert_eq!(metadata["prism.io/rate-limit-rps"], "100");
    assert_eq!(metadata["prism.io/rate-limit-burst"], "100");
}

#[tokio::test]
async fn slow_admin_times_out_within_the_configured_timeout() {
    let timeout = Duration::from_millis(300);
    let server = AdminServer::start().await;
    let client = AdminClient::connect_lazy(&server.endpoint(), timeout).unwrap();
    server.add_proxy("proxy-a");
    server.set_slow(Duration::from_secs(5));

    let started = Instant::now();
    let error = client
        .create_namespace(request("orders", labelled("postgres")))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(error, AdminError::DeadlineExceeded(_)), "{error}");
    assert_eq!(error.reason(), "AdminTimeout");
    assert!(error.is_retryable());
    assert!(elapsed < timeout * 2, "took {elapsed:?}");

    let started = Instant::now();
    let error = client
        .register_proxy(registration("proxy-b"))
        .await
        .unwrap_err();
    assert!(matches!(error, AdminError::DeadlineExceeded(_)), "{error}");
    assert!(
        started.elapsed() < timeout * 2,
        "took {:?}",
        started.elapsed()
    );

    server.set_slow(Duration::ZERO);
    let created = client
        .create_namespace(request("orders", labelled("postgres")))
        .await
        .unwrap();
    assert_eq!(created.assigned_proxy, "proxy-a");
}

#[tokio::test]
async fn down_admin_is_unavailable_and_the_same_client_recovers_after_restart() {
    let (server, client) = started().await;
    client
        .register_proxy(registration("proxy-a"))
        .await
        .unwrap();
    client
        .create_namespace(request("orders", labelled("postgres")))
        .await
        .unwrap();

    server.stop().await;
    assert!(!server.is_running());
    for _ in 0..2 {
        let started = Instant::now();
        let error = client
            .create_namespace(request("orders", labelled("redis")))
            .await
            .unwrap_err();
        assert!(matches!(error, AdminError::Unavailable(_)), "{error}");
        assert_eq!(error.reason(), "AdminUnavailable");
        assert!(error.is_retryable());
        assert!(started.elapsed() < TIMEOUT * 2);
    }

    server.restart().await;
    let updated = client
        .create_namespace(request("orders", labelled("redis")))
        .await
        .unwrap();
    assert_eq!(updated.assigned_proxy, "proxy-a");
    assert_eq!(server.namespaces()["orders"]["prism.io/backend"], "redis");
    assert_eq!(server.endpoint(), client.endpoint());
}

#[tokio::test]
async fn wiped_admin_forgets_proxies_and_namespaces() {
    let (server, client) = started().await;
    client
        .register_proxy(registration("proxy-a"))
        .await
        .unwrap();
    client
        .create_namespace(request("orders", labelled("postgres")))
        .await
        .unwrap();

    server.wipe();
    assert!(server.namespaces().is_empty());
    assert!(server.proxies().is_empty());
    let error = client
        .create_namespace(request("orders", labelled("postgres")))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "NoProxyRegistered");

    client
        .register_proxy(registration("proxy-a"))
        .await
        .unwrap();
    client
        .create_namespace(request("orders", labelled("postgres")))
        .await
        .unwrap();
    assert_eq!(server.namespaces().len(), 1);
}

#[tokio::test]
async fn internal_errors_are_classified() {
    let (server, client) = started().await;
    server.add_proxy("proxy-a");
    server.set_failing(true);

    let error = client
        .create_namespace(request(
            "orders",
            namespace_config(&orders(), "s", Some(SECRET)),
        ))
        .await
        .unwrap_err();
    assert!(matches!(error, AdminError::Internal(_)), "{error}");
    assert_eq!(error.reason(), "AdminError");
    assert!(error.is_retryable());
    assert!(!error.to_string().contains("hunter2"));
    let error = client
        .register_proxy(registration("proxy-b"))
        .await
        .unwrap_err();
    assert!(matches!(error, AdminError::Internal(_)), "{error}");
    assert!(server.namespaces().is_empty());

    server.set_failing(false);
    client
        .create_namespace(request("orders", labelled("postgres")))
        .await
        .unwrap();
}

#[tokio::test]
async fn revoke_is_acknowledged_as_upstream_does_and_removes_nothing() {
    let (server, client) = started().await;
    server.add_proxy("proxy-a");
    let created = client
        .create_namespace(request("orders", labelled("postgres")))
        .await
        .unwrap();

    let ack = client
        .revoke_namespace(NamespaceRevocation {
            proxy_id: created.assigned_proxy,
            namespace: "orders".into(),
            graceful_timeout_seconds: 30,
        })
        .await
        .unwrap();
    assert!(ack.success);
    assert!(ack.revoked_at > 0);
    assert_eq!(ack.message, admin_server::REVOKE_MESSAGE);
    assert_eq!(server.revoked(), ["orders"]);
    assert!(
        server.namespaces().contains_key("orders"),
        "upstream deletes nothing"
    );
}

/// The `host:port` list of an HA admin's nodes.
fn list(nodes: &[AdminServer]) -> String {
    nodes
        .iter()
        .map(AdminServer::host_port)
        .collect::<Vec<_>>()
        .join(",")
}

#[tokio::test]
async fn a_follower_answers_writes_as_upstream_does() {
    let nodes = AdminServer::start_ha(3).await;
    let follower = AdminClient::connect_lazy(&nodes[1].endpoint(), Duration::from_secs(5)).unwrap();
    let started = Instant::now();
    let error = follower
        .register_proxy(registration("proxy-a"))
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert_eq!(
        error,
        AdminError::Unavailable(admin_server::FOLLOWER_MESSAGE.into()),
        "{error}"
    );
    assert!(waited >= admin_server::FOLLOWER_DELAY, "{waited:?}");
    // A client whose deadline is shorter than the follower's forwarding attempt times out.
    let short =
        AdminClient::connect_lazy(&nodes[2].endpoint(), Duration::from_millis(500)).unwrap();
    let error = short
        .create_namespace(request("orders", labelled("redis")))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "AdminTimeout", "{error}");
    // The leader accepts; the state is shared, as Raft replicates it.
    let leader = AdminClient::connect_lazy(&nodes[0].endpoint(), TIMEOUT).unwrap();
    leader
        .register_proxy(registration("proxy-a"))
        .await
        .unwrap();
    assert_eq!(nodes[2].proxies(), ["proxy-a"]);
}

#[tokio::test]
async fn a_group_finds_the_leader_keeps_it_and_follows_it_when_it_moves() {
    let nodes = AdminServer::start_ha(3).await;
    nodes[0].set_leader(2);
    let pool = AdminPool::new(Duration::from_secs(5));
    let group = pool.group(&list(&nodes)).unwrap();
    assert_eq!(group.endpoints().count(), 3);

    // First write: two followers wait their ~2 s each, the third node accepts.
    let started = Instant::now();
    let accepted = group.register_proxy(registration("proxy-a")).await.unwrap();
    assert_eq!(accepted.endpoint, nodes[2].endpoint());
    assert_eq!(accepted.attempts, 3);
    assert!(started.elapsed() >= 2 * admin_server::FOLLOWER_DELAY);

    // The leader is known: no call waits on a follower again, and every caller naming the
    // same list (in any spelling) shares the knowledge.
    let again = pool
        .group(&list(&nodes).replace("127.0.0.1", "http://127.0.0.1"))
        .unwrap();
    for i in 0..20 {
        let name = format!("ns-{i}");
        let accepted = again
            .create_namespace(request(&name, labelled("redis")))
            .await
            .unwrap();
        assert_eq!(
            (accepted.endpoint.as_str(), accepted.attempts),
            (nodes[2].endpoint().as_str(), 1)
        );
    }
    assert_eq!(nodes[0].calls_on(0).get("CreateNamespace"), None);
    assert_eq!(nodes[0].calls_on(1).get("CreateNamespace"), None);
    assert_eq!(nodes[0].calls_on(2)["CreateNamespace"], 20);

    // The leader moves: one call pays one follower answer, then the new leader is kept.
    nodes[0].set_leader(0);
    let accepted = group
        .create_namespace(request("moved", labelled("redis")))
        .await
        .unwrap();
    assert_eq!(
        (accepted.endpoint.as_str(), accepted.attempts),
        (nodes[0].endpoint().as_str(), 2)
    );
    let accepted = group
        .create_namespace(request("kept", labelled("redis")))
        .await
        .unwrap();
    assert_eq!(accepted.attempts, 1);
    assert_eq!(group.leader(), nodes[0].endpoint());

    // A node that is down is skipped like a follower.
    nodes[0].stop().await;
    nodes[0].set_leader(1);
    let accepted = group
        .create_namespace(request("down", labelled("redis")))
        .await
        .unwrap();
    assert_eq!(accepted.endpoint, nodes[1].endpoint());
    assert_eq!(nodes[1].namespaces().len(), 23);

    // No node accepts: one error that names every endpoint and what it said.
    nodes[0].set_leader(0);
    let error = group
        .create_namespace(request("none", labelled("redis")))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "AdminNoLeader");
    assert!(error.is_retryable());
    let text = error.to_string();
    for node in &nodes {
        assert!(text.contains(&node.endpoint()), "{text}");
    }
    assert!(text.contains(admin_server::FOLLOWER_MESSAGE), "{text}");

    // An answer from the leader that is not about leadership is final.
    nodes[0].restart().await;
    nodes[0].wipe();
    let error = group
        .create_namespace(request("no-proxy", labelled("redis")))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "NoProxyRegistered");
}

#[tokio::test]
async fn a_followers_forwarding_attempts_queue_on_one_lock() {
    const K: u32 = 4;
    let dial = Duration::from_millis(800);
    let nodes = AdminServer::start_ha(3).await;
    nodes[0].set_forward_dial(dial);
    let follower =
        AdminClient::connect_lazy(&nodes[1].endpoint(), Duration::from_secs(60)).unwrap();

    // K concurrent writes: the k-th answers after about k dial times.
    let started = Instant::now();
    let mut took: Vec<Duration> = futures::future::join_all((0..K).map(|i| {
        let follower = follower.clone();
        async move {
            let error = follower
                .create_namespace(request(&format!("q-{i}"), labelled("redis")))
                .await
                .unwrap_err();
            assert_eq!(
                error,
                AdminError::Unavailable(admin_server::FOLLOWER_MESSAGE.into())
            );
            started.elapsed()
        }
    }))
    .await;
    took.sort();
    println!("{K} concurrent writes to a follower answered after {took:?}");
    for (k, took) in (1..=K).zip(&took) {
        assert!(*took >= dial * k, "answer {k} after {took:?}");
    }
    assert!(took[K as usize - 1] < dial * K + Duration::from_secs(20));

    // A caller that gives up keeps its place: the next write still waits for its dial.
    let impatient =
        AdminClient::connect_lazy(&nodes[1].endpoint(), Duration::from_millis(100)).unwrap();
    let error = impatient
        .register_proxy(registration("gave-up"))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "AdminTimeout", "{error}");
    let started = Instant::now();
    follower
        .register_proxy(registration("behind"))
        .await
        .unwrap_err();
    let behind = started.elapsed();
    println!("a write behind one abandoned attempt answered after {behind:?}");
    assert!(behind >= dial + dial / 2, "{behind:?}");

    // Without a leader, a follower answers at once.
    nodes[0].lose_quorum();
    let started = Instant::now();
    let error = follower
        .register_proxy(registration("x"))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        AdminError::Unavailable(admin_server::NO_LEADER_MESSAGE.into())
    );
    assert!(started.elapsed() < dial, "{:?}", started.elapsed());
    nodes[0].set_leader(0);

    // A dial that succeeds is cached; every forward is then accepted.
    nodes[0].set_leader_dialable(true);
    let started = Instant::now();
    for i in 0..5 {
        follower
            .register_proxy(registration(&format!("proxy-{i}")))
            .await
            .unwrap();
    }
    assert!(started.elapsed() < dial * 5, "{:?}", started.elapsed());
    assert_eq!(nodes[0].forwarded(), 5);
    assert_eq!(nodes[2].proxies().len(), 5);
    assert!(nodes[0].proxies().iter().all(|p| p.starts_with("proxy-")));
}

#[tokio::test]
async fn concurrent_writes_through_a_group_whose_first_node_follows_reach_the_leader() {
    const K: usize = 6;
    let nodes = AdminServer::start_ha(3).await;
    nodes[0].set_leader(1);
    nodes[0].add_proxy("proxy-a");
    let outcomes: Arc<Mutex<Vec<(String, String, Duration)>>> = Arc::default();
    let seen = outcomes.clone();
    let pool = AdminPool::new(prism_admin::DEFAULT_TIMEOUT).with_observer(Arc::new(
        move |_rpc: &str, endpoint: &str, outcome: &str, took: Duration| {
            seen.lock()
                .unwrap()
                .push((endpoint.to_string(), outcome.to_string(), took));
        },
    ));
    let group = pool.group(&list(&nodes)).unwrap();
    assert_eq!(
        group.leader(),
        nodes[0].endpoint(),
        "the follower is tried first"
    );

    let started = Instant::now();
    let accepted = futures::future::join_all((0..K).map(|i| {
        let group = group.clone();
        async move {
            group
                .create_namespace(request(&format!("ns-{i}"), labelled("redis")))
                .await
        }
    }))
    .await;
    let took = started.elapsed();
    let outcomes = outcomes.lock().unwrap().clone();
    println!("{K} concurrent writes took {took:?}; calls: {outcomes:?}");
    for answer in &accepted {
        let answer = answer.as_ref().unwrap();
        assert_eq!(answer.endpoint, nodes[1].endpoint());
    }
    assert_eq!(nodes[1].namespaces().len(), K);
    // Only one write waited on the follower: no caller timed out, none queued behind another.
    let on_follower: Vec<_> = outcomes
        .iter()
        .filter(|(endpoint, _, _)| *endpoint == nodes[0].endpoint())
        .collect();
    assert_eq!(on_follower.len(), 1, "{outcomes:?}");
    assert_eq!(on_follower[0].1, "AdminUnavailable", "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|(_, outcome, _)| outcome != "AdminTimeout"),
        "{outcomes:?}"
    );
    assert!(took >= admin_server::FOLLOWER_DELAY, "{took:?}");
    assert!(
        took < prism_admin::DEFAULT_TIMEOUT + Duration::from_secs(20),
        "{took:?}"
    );
}

#[tokio::test]
async fn every_registered_proxy_takes_partitions_whatever_its_shard() {
    let server = AdminServer::start().await;
    let client = AdminClient::connect_lazy(&server.endpoint(), TIMEOUT).unwrap();
    client
        .register_proxy(registration("prism-a-0"))
        .await
        .unwrap();
    client
        .register_proxy(registration("prism-b-0"))
        .await
        .unwrap();
    let owners: BTreeSet<String> = (0..64)
        .map(|i| format!("ns-{i}"))
        .map(|name| {
            let client = client.clone();
            async move {
                client
                    .create_namespace(request(&name, labelled("redis")))
                    .await
                    .unwrap()
                    .assigned_proxy
            }
        })
        .collect::<futures::stream::FuturesOrdered<_>>()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect();
    assert_eq!(
        owners,
        BTreeSet::from(["prism-a-0".to_string(), "prism-b-0".to_string()])
    );
    // Names are global: a second create of a name replaces the first one's metadata.
    client
        .create_namespace(request("carts", labelled("redis")))
        .await
        .unwrap();
    client
        .create_namespace(request("carts", labelled("postgres")))
        .await
        .unwrap();
    assert_eq!(server.namespaces()["carts"]["prism.io/backend"], "postgres");
}

#[tokio::test]
async fn pool_hands_out_working_shared_clients() {
    let server = AdminServer::start().await;
    server.add_proxy("proxy-a");
    let pool = AdminPool::new(TIMEOUT);
    let endpoint = server.endpoint();
    let bare = endpoint.replace("http://", "");

    pool.client(&endpoint)
        .unwrap()
        .create_namespace(request("a", labelled("redis")))
        .await
        .unwrap();
    pool.client(&bare)
        .unwrap()
        .create_namespace(request("b", labelled("redis")))
        .await
        .unwrap();
    assert_eq!(pool.len(), 1);
    assert_eq!(server.namespaces().len(), 2);

    let error = pool.client("https://127.0.0.1:1").unwrap_err();
    assert_eq!(error.reason(), "InvalidAdminEndpoint");
    assert!(!error.is_retryable());
}
