//! PrismNamespace sync on a real control plane against a wire-compatible `prism.ControlPlane`
//! server on loopback: placement, upserts, proxies, outages, an emptied admin, deletion with
//! both reclaim policies, re-placement, secret hygiene, and 1,000 namespaces.

use prism_testing as support;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use prism_admin::partition_of;
use prism_api::{NamespaceState, PrismNamespace};
use prism_render::render::contract::proxy_id;
use support::admin_server::AdminServer;
use support::fixtures::{SIDECAR_PLUGIN, namespace_yaml_with, shard_yaml};
use support::operator::{Operator, apply_yaml, crd_namespace};
use support::wait_for;

const MINUTE: Duration = Duration::from_secs(60);

/// A PrismNamespace with strong consistency, a pool size and a rate limit, and `extra` spec lines.
fn namespace(name: &str, product: &str, extra: &str) -> String {
    namespace_yaml_with(
        name,
        product,
        &format!(
            "  consistency: strong\n  backendConfig: {{pool_size: 20}}\n  rateLimit: {{rps: 100}}\n{extra}"
        ),
    )
}

async fn setup(prefix: &str, admin: &AdminServer, extra: &[&str]) -> (Client, String, Operator) {
    let (client, ns) = crd_namespace(prefix).await;
    let endpoint = admin.endpoint();
    let mut args = vec![
        "--admin-endpoint",
        endpoint.as_str(),
        "--admin-timeout",
        "2s",
    ];
    if !extra.contains(&"--resync") {
        args.extend_from_slice(&["--resync", "5s"]);
    }
    args.extend_from_slice(extra);
    let op = Operator::start(&ns, &args).await;
    (client, ns, op)
}

async fn wait_state(
    client: &Client,
    ns: &str,
    name: &str,
    state: &str,
    op: &Operator,
) -> PrismNamespace {
    let api: Api<PrismNamespace> = Api::namespaced(client.clone(), ns);
    wait_for(
        &format!("PrismNamespace {name} {state}"),
        2 * MINUTE,
        || {
            let api = api.clone();
            let tail = op.log_tail();
            async move {
                let n = api.get(name).await.map_err(|e| e.to_string())?;
                let st = n.status.clone().unwrap_or_default();
                if st.state.map(NamespaceState::as_str) == Some(state)
                    && st.observed_generation == n.metadata.generation
                {
                    Ok(n)
                } else {
                    Err(format!("status {st:?}\n{tail}"))
                }
            }
        },
    )
    .await
}

fn condition(n: &PrismNamespace, type_: &str) -> (String, String, String) {
    let c = n
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap();
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_becomes_active_with_its_config_and_follows_updates() {
    let admin = AdminServer::start().await;
    let (client, ns, op) = setup("ns-sync", &admin, &[]).await;
    apply_yaml(&client, &ns, SIDECAR_PLUGIN).await;
    apply_yaml(&client, &ns, &shard_yaml("play", "playback", 2)).await;
    apply_yaml(&client, &ns, &namespace("user-profiles", "playback", "")).await;

    wait_state(&client, &ns, "user-profiles", "Active", &op).await;
    // Active as soon as one proxy is ready; both are registered with admin once both are.
    let api: Api<PrismNamespace> = Api::namespaced(client.clone(), &ns);
    let both = [proxy_id("prism-play-0", &ns), proxy_id("prism-play-1", &ns)];
    wait_for("both proxies registered", MINUTE, || {
        let proxies = admin.proxies();
        let both = both.clone();
        async move {
            if proxies == both {
                Ok(())
            } else {
                Err(format!("{proxies:?}"))
            }
        }
    })
    .await;
    let n = api.get("user-profiles").await.unwrap();
    let st = n.status.clone().unwrap();
    assert_eq!(st.shard.as_deref(), Some("play"));
    assert_eq!(st.assigned_partition, Some(partition_of("user-profiles")));
    assert!(
        st.assigned_proxy
            .as_deref()
            .is_some_and(|p| p.starts_with("prism-play-")),
        "{st:?}"
    );
    assert_eq!(condition(&n, "Ready").0, "True");
    let proxies = admin.proxies();
    assert_eq!(
        proxies,
        [proxy_id("prism-play-0", &ns), proxy_id("prism-play-1", &ns)],
        "ready pods registered as proxies"
    );
    let meta = admin.namespaces()["user-profiles"].clone();
    assert_eq!(meta["prism.io/backend"], "postgres");
    assert_eq!(meta["prism.io/pattern"], "keyvalue");
    assert_eq!(meta["prism.io/consistency"], "strong");
    assert_eq!(meta["prism.io/rate-limit-rps"], "100");
    assert_eq!(meta["prism.io/shard"], "play");
    assert_eq!(meta["prism.io/k8s-namespace"], ns);
    let wire = admin.last_request("user-profiles").unwrap();
    let cfg = wire.config.unwrap();
    assert_eq!(cfg.backends["postgres"].options["pool_size"], "20");

    // An update is upserted again.
    apply_yaml(
        &client,
        &ns,
        &namespace("user-profiles", "playback", "").replace("rps: 100", "rps: 250"),
    )
    .await;
    wait_for("rate limit updated at admin", MINUTE, || {
        let admin = &admin;
        async move {
            let v = admin.namespaces()["user-profiles"]["prism.io/rate-limit-rps"].clone();
            if v == "250" { Ok(()) } else { Err(v) }
        }
    })
    .await;
    // The shard counts it.
    let shards: Api<prism_api::PrismShard> = Api::namespaced(client.clone(), &ns);
    wait_for("shard counts its namespace", MINUTE, || {
        let shards = shards.clone();
        async move {
            let s = shards.get("play").await.map_err(|e| e.to_string())?;
            let n = s.status.and_then(|s| s.namespaces);
            if n == Some(1) {
                Ok(())
            } else {
                Err(format!("{n:?}"))
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_proxy_yet_then_active_once_pods_are_ready() {
    let admin = AdminServer::start().await;
    let (client, ns, op) = setup("ns-noproxy", &admin, &[]).await;
    apply_yaml(&client, &ns, SIDECAR_PLUGIN).await;
    // A paused shard has no pods, so no proxy can register.
    apply_yaml(
        &client,
        &ns,
        &shard_yaml("later", "p", 1).replace(
            "{name: later}",
            "{name: later, annotations: {prism.io/reconcile: paused}}",
        ),
    )
    .await;
    apply_yaml(&client, &ns, &namespace("orders", "p", "")).await;
    let n = wait_state(&client, &ns, "orders", "Pending", &op).await;
    let (status, reason, message) = condition(&n, "Ready");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "NoProxyRegistered"),
        "{message}"
    );
    // Unpause: pods come up, get registered, and the namespace goes live.
    apply_yaml(&client, &ns, &shard_yaml("later", "p", 1)).await;
    let n = wait_state(&client, &ns, "orders", "Active", &op).await;
    assert_eq!(
        n.status.unwrap().assigned_proxy.as_deref(),
        Some(proxy_id("prism-later-0", &ns).as_str())
    );
    assert!(admin.namespaces().contains_key("orders"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outages_and_an_emptied_admin_converge() {
    let admin = AdminServer::start().await;
    let (client, ns, op) = setup("ns-outage", &admin, &[]).await;
    apply_yaml(&client, &ns, SIDECAR_PLUGIN).await;
    apply_yaml(&client, &ns, &shard_yaml("s", "p", 1)).await;
    apply_yaml(&client, &ns, &namespace("first", "p", "")).await;
    wait_state(&client, &ns, "first", "Active", &op).await;

    // Admin down: a new namespace waits with a reason; nothing is lost when it returns.
    admin.stop().await;
    apply_yaml(&client, &ns, &namespace("second", "p", "")).await;
    let n = wait_state(&client, &ns, "second", "Pending", &op).await;
    assert_eq!(condition(&n, "Ready").1, "AdminUnavailable");
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let warned = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .any(|e| {
            e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some("AdminUnavailable")
        });
    assert!(warned, "a Warning event explains the outage");
    admin.restart().await;
    wait_state(&client, &ns, "second", "Active", &op).await;

    // Admin errors, then recovers.
    admin.set_failing(true);
    apply_yaml(&client, &ns, &namespace("third", "p", "")).await;
    let n = wait_state(&client, &ns, "third", "Pending", &op).await;
    assert_eq!(condition(&n, "Ready").1, "AdminError");
    admin.set_failing(false);
    wait_state(&client, &ns, "third", "Active", &op).await;

    // Slow admin: calls time out (2 s), then succeed once it is fast again.
    admin.set_slow(Duration::from_secs(4));
    apply_yaml(&client, &ns, &namespace("fourth", "p", "")).await;
    let n = wait_state(&client, &ns, "fourth", "Pending", &op).await;
    assert_eq!(condition(&n, "Ready").1, "AdminTimeout");
    admin.set_slow(Duration::ZERO);
    wait_state(&client, &ns, "fourth", "Active", &op).await;

    // Admin restarted with empty state: the periodic resync re-creates everything.
    admin.wipe();
    assert!(admin.namespaces().is_empty());
    wait_for("admin repopulated", MINUTE, || {
        let admin = &admin;
        async move {
            let names: Vec<String> = admin.namespaces().keys().cloned().collect();
            if names == ["first", "fourth", "second", "third"] {
                Ok(())
            } else {
                Err(format!("{names:?}"))
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_follows_the_reclaim_policy() {
    let admin = AdminServer::start().await;
    let (client, ns, op) = setup("ns-delete", &admin, &["--deletion-deadline", "15s"]).await;
    apply_yaml(&client, &ns, SIDECAR_PLUGIN).await;
    apply_yaml(&client, &ns, &shard_yaml("s", "p", 1)).await;
    apply_yaml(&client, &ns, &namespace("keep-me", "p", "")).await;
    apply_yaml(
        &client,
        &ns,
        &namespace("drop-me", "p", "  reclaimPolicy: delete\n"),
    )
    .await;
    apply_yaml(
        &client,
        &ns,
        &namespace("stuck", "p", "  reclaimPolicy: delete\n"),
    )
    .await;
    for n in ["keep-me", "drop-me", "stuck"] {
        let obj = wait_state(&client, &ns, n, "Active", &op).await;
        assert!(
            obj.finalizers()
                .contains(&"prism.io/namespace-sync".to_string())
        );
    }
    let api: Api<PrismNamespace> = Api::namespaced(client.clone(), &ns);
    api.delete("keep-me", &DeleteParams::default())
        .await
        .unwrap();
    api.delete("drop-me", &DeleteParams::default())
        .await
        .unwrap();
    for n in ["keep-me", "drop-me"] {
        wait_for(&format!("{n} deleted"), MINUTE, || {
            let api = api.clone();
            async move {
                match api.get_opt(n).await.map_err(|e| e.to_string())? {
                    None => Ok(()),
                    Some(o) => Err(format!("{:?}", o.status)),
                }
            }
        })
        .await;
    }
    // Revoking is idempotent; a deletion may revoke more than once before the finalizer goes.
    let mut revoked = admin.revoked();
    revoked.dedup();
    assert_eq!(
        revoked,
        ["drop-me"],
        "retain leaves Prism alone; delete revokes"
    );
    assert!(admin.namespaces().contains_key("keep-me"));
    // Admin answers as upstream does: success, "not yet implemented", nothing removed. That
    // is reported as it is, never as a revocation.
    assert!(admin.namespaces().contains_key("drop-me"));
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let reasons: Vec<(String, String, String)> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("drop-me"))
        .map(|e| {
            (
                e.reason.unwrap_or_default(),
                e.type_.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        reasons.iter().any(|(r, t, n)| r == "RevokeNotImplemented"
            && t == "Warning"
            && n.contains("\"Namespace revocation not yet implemented\"")
            && n.contains("drop-me stays in admin")),
        "{reasons:?}"
    );
    assert!(
        !reasons.iter().any(|(r, _, _)| r == "Revoked"),
        "{reasons:?}"
    );

    // With admin down, deletion waits (Terminating) but not forever: the deadline lets go.
    admin.stop().await;
    api.delete("stuck", &DeleteParams::default()).await.unwrap();
    let n = wait_state(&client, &ns, "stuck", "Terminating", &op).await;
    assert!(n.metadata.deletion_timestamp.is_some());
    wait_for("stuck deleted after the deadline", MINUTE, || {
        let api = api.clone();
        async move {
            if api
                .get_opt("stuck")
                .await
                .map_err(|e| e.to_string())?
                .is_none()
            {
                Ok(())
            } else {
                Err("still there".into())
            }
        }
    })
    .await;
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let abandoned = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .any(|e| e.reason.as_deref() == Some("RevokeAbandoned"));
    assert!(abandoned, "giving up is reported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_shard_moves_its_namespaces() {
    // One admin per shard: a shared one would serve the namespace from either shard's proxies.
    let admin = AdminServer::start().await;
    let admin_b = AdminServer::start().await;
    let (client, ns, op) = setup("ns-move", &admin, &[]).await;
    apply_yaml(&client, &ns, SIDECAR_PLUGIN).await;
    apply_yaml(&client, &ns, &shard_yaml("a", "p", 1)).await;
    let b = shard_yaml("b", "p", 1) + &format!("  adminEndpoint: {}\n", admin_b.host_port());
    apply_yaml(&client, &ns, &b).await;
    apply_yaml(&client, &ns, &namespace("mover", "p", "")).await;
    let n = wait_state(&client, &ns, "mover", "Active", &op).await;
    let from = n.status.unwrap().shard.unwrap();
    let to = if from == "a" { "b" } else { "a" };
    let shards: Api<prism_api::PrismShard> = Api::namespaced(client.clone(), &ns);
    shards
        .delete(&from, &DeleteParams::default())
        .await
        .unwrap();
    let api: Api<PrismNamespace> = Api::namespaced(client.clone(), &ns);
    wait_for("re-placed", 2 * MINUTE, || {
        let api = api.clone();
        async move {
            let st = api
                .get("mover")
                .await
                .map_err(|e| e.to_string())?
                .status
                .unwrap_or_default();
            if st.shard.as_deref() == Some(to) && st.state == Some(NamespaceState::Active) {
                Ok(())
            } else {
                Err(format!("{st:?}"))
            }
        }
    })
    .await;
    let target = if to == "b" { &admin_b } else { &admin };
    assert_eq!(target.namespaces()["mover"]["prism.io/shard"], to);
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let note = format!("moved from shard {from} to {to}");
    let moved = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .any(|e| {
            e.reason.as_deref() == Some("Replaced")
                && e.note.as_deref().is_some_and(|n| n.starts_with(&note))
        });
    assert!(moved, "an event says from where to where");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_connection_strings_reach_admin_and_nothing_else() {
    let admin = AdminServer::start().await;
    let (client, ns, op) = setup("ns-secret", &admin, &[]).await;
    let value = "postgres://app:s3cr3t-Pa55w0rd@db.internal:5432/orders";
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let mut secret = Secret::default();
    secret.metadata.name = Some("orders-db".into());
    secret.string_data = Some(
        [("url".to_string(), value.to_string())]
            .into_iter()
            .collect(),
    );
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    apply_yaml(&client, &ns, SIDECAR_PLUGIN).await;
    apply_yaml(&client, &ns, &shard_yaml("s", "p", 1)).await;
    let with_secret = namespace(
        "orders",
        "p",
        "  connectionStringFrom: {secretKeyRef: {name: orders-db, key: url}}\n",
    );
    apply_yaml(&client, &ns, &with_secret).await;
    // A missing key is reported without the value.
    apply_yaml(
        &client,
        &ns,
        &namespace(
            "broken",
            "p",
            "  connectionStringFrom: {secretKeyRef: {name: orders-db, key: nope}}\n",
        ),
    )
    .await;
    let n = wait_state(&client, &ns, "orders", "Active", &op).await;
    let wire = admin.last_request("orders").unwrap();
    assert_eq!(
        wire.config.unwrap().backends["postgres"].connection_string,
        value
    );
    assert!(
        !format!("{:?}", admin.namespaces()).contains("s3cr3t"),
        "admin persists no secret"
    );
    let b = wait_state(&client, &ns, "broken", "Pending", &op).await;
    assert_eq!(condition(&b, "Ready").2, "Secret orders-db has no key nope");

    let status =
        serde_json::to_string(&n.status).unwrap() + &serde_json::to_string(&b.status).unwrap();
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let events =
        serde_json::to_string(&events.list(&ListParams::default()).await.unwrap().items).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let log = std::fs::read_to_string(&op.log).unwrap();
    for (place, text) in [
        ("status", &status),
        ("events", &events),
        ("operator log", &log),
    ] {
        assert!(
            !text.contains("s3cr3t"),
            "the secret leaked into the {place}"
        );
    }
    assert!(log.len() > 200, "the log was actually written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_namespaces_all_become_active() {
    let admin = AdminServer::start().await;
    let (client, ns, op) = setup(
        "ns-scale",
        &admin,
        &["--concurrency", "16", "--resync", "10m"],
    )
    .await;
    apply_yaml(&client, &ns, SIDECAR_PLUGIN).await;
    apply_yaml(&client, &ns, &shard_yaml("s", "p", 2)).await;
    let api: Api<PrismNamespace> = Api::namespaced(client.clone(), &ns);
    let started = Instant::now();
    let creates = futures::stream::iter(0..1000).map(|i| {
        let api = api.clone();
        async move {
            let obj: PrismNamespace =
                serde_yaml::from_str(&namespace(&format!("ns-{i:04}"), "p", "")).unwrap();
            api.patch(
                &obj.name_any(),
                &PatchParams::apply("prism-tests"),
                &Patch::Apply(&obj),
            )
            .await
            .unwrap();
        }
    });
    use futures::StreamExt;
    creates.buffer_unordered(16).collect::<Vec<_>>().await;
    let created = started.elapsed();
    let n = wait_for("1,000 namespaces Active", 10 * MINUTE, || {
        let api = api.clone();
        let tail = op.log_tail();
        async move {
            let list = api
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let active = list
                .items
                .iter()
                .filter(|n| n.status.as_ref().and_then(|s| s.state) == Some(NamespaceState::Active))
                .count();
            if active == 1000 {
                Ok(active)
            } else {
                Err(format!("{active}/1000 active\n{tail}"))
            }
        }
    })
    .await;
    let total = started.elapsed();
    assert_eq!(n, 1000);
    assert_eq!(admin.namespaces().len(), 1000);
    println!("1,000 PrismNamespaces: created in {created:?}, all Active after {total:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_sync_over_mutual_tls() {
    use support::admin_server::ServerTls;
    use support::pki::Ca;
    let ca = Ca::new("prism-admin-ca");
    let clients = Ca::new("prism-clients");
    let serving = ca.server();
    let admin = AdminServer::start_tls(ServerTls {
        cert_pem: serving.cert.clone(),
        key_pem: serving.key.clone(),
        client_ca_pem: Some(clients.pem.clone()),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let client_cert = clients.client();
    let files = [
        ("ca.pem", &ca.pem),
        ("client.pem", &client_cert.cert),
        ("client.key", &client_cert.key),
    ];
    for (name, pem) in files {
        std::fs::write(dir.path().join(name), pem).unwrap();
    }
    let p = |f: &str| dir.path().join(f).display().to_string();
    let (ca_path, cert_path, key_path) = (p("ca.pem"), p("client.pem"), p("client.key"));
    let (client, ns, op) = setup(
        "ns-mtls",
        &admin,
        &[
            "--admin-ca",
            &ca_path,
            "--admin-client-cert",
            &cert_path,
            "--admin-client-key",
            &key_path,
        ],
    )
    .await;
    apply_yaml(&client, &ns, SIDECAR_PLUGIN).await;
    apply_yaml(&client, &ns, &shard_yaml("s", "p", 1)).await;
    apply_yaml(&client, &ns, &namespace("secure", "p", "")).await;
    wait_state(&client, &ns, "secure", "Active", &op).await;
    assert!(admin.namespaces().contains_key("secure"));
}
