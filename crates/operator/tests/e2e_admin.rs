//! Prism admin as upstream really behaves, against the operator on a real control plane: an HA
//! admin whose leader moves during a run, and shards sharing one admin (refused by default;
//! when allowed, namespaces served by another shard's proxy or by a gone pod are reported).

use prism_testing as support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use prism_admin::partition_of;
use prism_api::{NamespaceState, PrismNamespace, PrismShard};
use prism_render::render::contract::{proxy_id, shard_fullname};
use support::admin_server::AdminServer;
use support::fixtures::{SIDECAR_PLUGIN, namespace_yaml, shard_yaml};
use support::operator::{Operator, apply_yaml, crd_namespace, events_with_reason, wait_object};
use support::wait_for;

const MINUTE: Duration = Duration::from_secs(60);

fn namespace(name: &str, product: &str) -> PrismNamespace {
    serde_yaml::from_str(&namespace_yaml(name, product)).unwrap()
}

async fn apply_namespace(api: &Api<PrismNamespace>, obj: &PrismNamespace) {
    api.patch(
        &obj.name_any(),
        &PatchParams::apply("prism-tests"),
        &Patch::Apply(obj),
    )
    .await
    .unwrap();
}

/// An admin stand-in, a test namespace with the sidecar plugin, and an operator there whose
/// shards all use that admin (sharing allowed), resyncing every `resync`.
async fn on_a_shared_admin(
    prefix: &str,
    resync: &str,
) -> (AdminServer, kube::Client, String, Operator) {
    let admin = AdminServer::start().await;
    let (client, ns) = crd_namespace(prefix).await;
    let endpoint = admin.endpoint();
    let args = [
        "--admin-endpoint",
        &endpoint,
        "--allow-shared-admin",
        "--resync",
        resync,
    ];
    let op = Operator::start(&ns, &args).await;
    apply_yaml(&client, &ns, SIDECAR_PLUGIN).await;
    (admin, client, ns, op)
}

fn active(n: &PrismNamespace) -> bool {
    n.status.as_ref().and_then(|s| s.state) == Some(NamespaceState::Active)
}

/// A name whose admin partition lies in `range`, distinct per `seed`.
fn name_in(range: std::ops::RangeInclusive<i32>, seed: &str) -> String {
    (0..)
        .map(|i| format!("{seed}-{i}"))
        .find(|n| range.contains(&partition_of(n)))
        .unwrap()
}

/// How many namespaces are in `state`.
async fn count(api: &Api<PrismNamespace>, state: NamespaceState) -> usize {
    api.list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .iter()
                .filter(|n| n.status.as_ref().and_then(|s| s.state) == Some(state))
                .count()
        })
        .unwrap_or(0)
}

async fn wait_count(api: &Api<PrismNamespace>, at_least: usize, op: &Operator) {
    wait_for(&format!("{at_least} Active"), 5 * MINUTE, || {
        let api = api.clone();
        let tail = op.log_tail();
        async move {
            let active = count(&api, NamespaceState::Active).await;
            if active >= at_least {
                Ok(())
            } else {
                Err(format!("{active} Active\n{tail}"))
            }
        }
    })
    .await;
}

/// Ready=False with `reason`.
fn not_ready_for(n: &PrismNamespace, reason: &str) -> bool {
    n.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "False" && c.reason == reason)
    })
}

fn ready_message(n: &PrismNamespace) -> String {
    let status = n.status.as_ref().unwrap();
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    c.message.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ha_admin_is_followed_to_its_leader_through_two_moves() {
    let nodes = AdminServer::start_ha(3).await;
    let list = nodes
        .iter()
        .map(AdminServer::host_port)
        .collect::<Vec<_>>()
        .join(",");
    let (client, ns) = crd_namespace("admin-ha").await;
    let concurrency = 8;
    let op = Operator::start(
        &ns,
        &[
            "--admin-endpoint",
            &list,
            "--admin-timeout",
            "5s",
            "--concurrency",
            &concurrency.to_string(),
            "--resync",
            "10m",
        ],
    )
    .await;
    apply_yaml(&client, &ns, SIDECAR_PLUGIN).await;
    apply_yaml(&client, &ns, &shard_yaml("s", "p", 2)).await;
    let shards: Api<PrismShard> = Api::namespaced(client.clone(), &ns);
    wait_object(&shards, "s", "2 ready proxies", &op, |s| {
        s.status.as_ref().and_then(|st| st.ready_replicas) == Some(2)
    })
    .await;
    let api: Api<PrismNamespace> = Api::namespaced(client.clone(), &ns);
    let total = 200;
    nodes[0].move_leader_at(&[(60, 1), (130, 2)]);
    let started = Instant::now();
    futures::stream::iter(0..total)
        .map(|i| {
            let api = api.clone();
            async move { apply_namespace(&api, &namespace(&format!("ha-{i:03}"), "p")).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;

    // The leader moves twice while the namespaces sync: right after the 60th and the 130th
    // write admin accepts, so at least 70 namespaces are still to come at the second move.
    wait_count(&api, total, &op).await;
    let took = started.elapsed();
    assert_eq!(nodes[0].leader(), 2, "both moves happened");
    assert_eq!(nodes[2].namespaces().len(), total);

    let per_name = nodes[0].creates_by_name();
    let mut histogram = std::collections::BTreeMap::new();
    for n in per_name.values() {
        *histogram.entry(*n).or_insert(0) += 1;
    }
    println!("CreateNamespace calls per namespace: {histogram:?} (calls: namespaces)");
    let calls = nodes[0].calls();
    let creates = calls["CreateNamespace"];
    let registers = calls["RegisterProxy"];
    let refused = nodes[0].follower_answers();
    println!(
        "{total} namespaces over an HA admin with two leader moves (after the 60th and 130th \
         accepted write): all Active after {took:?}; {creates} CreateNamespace and \
         {registers} RegisterProxy calls ({:.2} RPCs per namespace), {refused} answered by a \
         follower",
        (creates + registers) as f64 / total as f64
    );
    // Calls in flight on the old leader when it steps down queue on its forwarding lock (as
    // upstream's do): the first answer as a follower, the rest time out. The operator counts
    // both; every other call goes straight to the leader.
    let metrics = op.metrics().await;
    let timed_out: usize = metrics
        .lines()
        .filter(|l| l.starts_with("prism_operator_admin_calls_total{"))
        .filter(|l| l.contains("rpc=\"CreateNamespace\"") && l.contains("outcome=\"AdminTimeout\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as usize;
    println!("{timed_out} CreateNamespace calls timed out on a node that had stepped down");
    assert!(
        refused + timed_out <= 2 * concurrency,
        "{refused} follower answers and {timed_out} timeouts: the leader was not kept"
    );
    // One upsert per namespace, plus one per follower answer or timeout: a namespace is not
    // sent again while nothing admin would see changed (its own status write, say), and at most
    // a few more come from pods or shards changing meanwhile.
    assert!(
        creates <= total + refused + timed_out + 10,
        "{creates} creates for {total} namespaces ({refused} follower answers, {timed_out} \
         timeouts): {histogram:?}"
    );
    assert!(registers <= 2 * 2, "{registers} registrations of 2 proxies");

    // Status names the node that accepted the write. When the leader moves once more, a
    // namespace reports the new one on its next sync, with an event.
    let some = api.get("ha-000").await.unwrap();
    let synced_by = some.status.unwrap().admin_endpoint.unwrap();
    let node = nodes
        .iter()
        .position(|n| n.endpoint() == synced_by)
        .unwrap();
    let next = (node + 1) % nodes.len();
    nodes[0].set_leader(next);
    let name = some.metadata.name.unwrap();
    let mut changed = namespace(&name, "p");
    changed.spec.rate_limit = Some(serde_json::from_str(r#"{"rps": 50}"#).unwrap());
    apply_namespace(&api, &changed).await;
    let leader = nodes[next].endpoint();
    let n = wait_object(&api, &name, "synced by the new leader", &op, |n| {
        n.status.as_ref().and_then(|s| s.admin_endpoint.as_deref()) == Some(leader.as_str())
            && n.status.as_ref().and_then(|s| s.observed_generation) == n.metadata.generation
    })
    .await;
    assert!(ready_message(&n).contains(&leader), "{}", ready_message(&n));
    wait_for("an event naming the new endpoint", MINUTE, || {
        let (client, ns, name, leader) = (client.clone(), ns.clone(), name.clone(), leader.clone());
        async move {
            let moved = events_with_reason(&client, &ns, "AdminEndpointChanged").await;
            let named = moved.iter().any(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name.as_str())
                    && e.note.as_deref().is_some_and(|t| t.contains(&leader))
            });
            match named {
                true => Ok(()),
                false => Err(format!("{moved:?}")),
            }
        }
    })
    .await;

    // The admin call metric carries the endpoint and the outcome.
    let metrics = op.metrics().await;
    let ok = format!(
        "prism_operator_admin_calls_total{{rpc=\"CreateNamespace\",endpoint=\"{leader}\",outcome=\"ok\"}}"
    );
    assert!(metrics.contains(&ok), "{ok} in\n{metrics}");
    assert!(
        metrics.contains("outcome=\"AdminUnavailable\""),
        "follower answers are counted"
    );
}

/// The proxy pod `ordinal` of shard `name`.
/// The proxy id admin knows pod `ordinal` of shard `name` in `namespace` by.
fn proxy(namespace: &str, name: &str, ordinal: u32) -> String {
    proxy_id(&format!("{}-{ordinal}", shard_fullname(name)), namespace)
}

fn admin_isolated(s: &PrismShard) -> Option<(String, String, String)> {
    s.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "AdminIsolated")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_shard_on_one_admin_is_refused_by_default() {
    let admin = AdminServer::start().await;
    let (client, ns) = crd_namespace("admin-refuse").await;
    let endpoint = admin.endpoint();
    let op = Operator::start(&ns, &["--admin-endpoint", &endpoint, "--resync", "20s"]).await;
    apply_yaml(&client, &ns, SIDECAR_PLUGIN).await;
    apply_yaml(&client, &ns, &shard_yaml("a", "p", 1)).await;
    // Creation times have a resolution of one second: make `a` the older one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    apply_yaml(&client, &ns, &shard_yaml("b", "q", 1)).await;
    let api: Api<PrismNamespace> = Api::namespaced(client.clone(), &ns);
    apply_namespace(&api, &namespace("on-a", "p")).await;
    apply_namespace(&api, &namespace("on-b", "q")).await;

    wait_object(&api, "on-a", "Active", &op, |n| {
        n.status.as_ref().and_then(|s| s.state) == Some(NamespaceState::Active)
    })
    .await;
    let refused = wait_object(&api, "on-b", "refused", &op, |n| {
        not_ready_for(n, "SharedAdminRefused")
    })
    .await;
    assert_eq!(
        refused.status.as_ref().unwrap().state,
        Some(NamespaceState::Failed)
    );
    let why = ready_message(&refused);
    assert!(why.contains(&format!("older shard {ns}/a")), "{why}");
    assert!(why.contains("--allow-shared-admin"), "{why}");
    assert!(
        !admin.namespaces().contains_key("on-b"),
        "a refused namespace is never sent"
    );
    assert!(
        !admin.proxies().contains(&proxy(&ns, "b", 0)),
        "nor are its shard's proxies"
    );

    let shards: Api<PrismShard> = Api::namespaced(client.clone(), &ns);
    let b = wait_object(&shards, "b", "refused", &op, |s| {
        admin_isolated(s).is_some_and(|c| c.1 == "SharedAdminRefused")
    })
    .await;
    assert_eq!(admin_isolated(&b).unwrap().0, "False");
    let a = wait_object(&shards, "a", "sharing reported", &op, |s| {
        admin_isolated(s).is_some_and(|c| c.1 == "SharedAdmin")
    })
    .await;
    let a_admin = a.status.unwrap().admin.unwrap();
    assert_eq!(a_admin.shared_with, [format!("{ns}/b")]);
    assert_eq!(a_admin.endpoints.as_deref(), Some(endpoint.as_str()));
    wait_for("a SharedAdminRefused warning", MINUTE, || {
        let client = client.clone();
        let ns = ns.clone();
        async move {
            match events_with_reason(&client, &ns, "SharedAdminRefused")
                .await
                .is_empty()
            {
                false => Ok(()),
                true => Err("no event yet".to_string()),
            }
        }
    })
    .await;

    // Its own admin lifts the refusal.
    let own = AdminServer::start().await;
    shards
        .patch(
            "b",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"adminEndpoint": own.host_port()}})),
        )
        .await
        .unwrap();
    wait_object(&api, "on-b", "Active", &op, |n| {
        n.status.as_ref().and_then(|s| s.state) == Some(NamespaceState::Active)
    })
    .await;
    assert!(own.namespaces().contains_key("on-b"));
    wait_object(&shards, "b", "isolated", &op, |s| {
        admin_isolated(s).is_some_and(|c| (c.0.as_str(), c.1.as_str()) == ("True", "OwnAdmin"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_admin_serving_from_the_wrong_proxy_is_reported() {
    let (admin, client, ns, op) = on_a_shared_admin("admin-shared", "20s").await;
    apply_yaml(&client, &ns, &shard_yaml("a", "p", 2)).await;
    apply_yaml(&client, &ns, &shard_yaml("b", "q", 1)).await;
    let api: Api<PrismNamespace> = Api::namespaced(client.clone(), &ns);

    // b's proxy registers first; then a's two. Sorted ids split the 256 partitions:
    // prism-a-0 0–84, prism-a-1 85–169, prism-b-0 170–255.
    apply_namespace(&api, &namespace("on-b", "q")).await;
    wait_object(&api, "on-b", "Active", &op, active).await;
    let shards: Api<PrismShard> = Api::namespaced(client.clone(), &ns);
    wait_object(&shards, "a", "2 ready proxies", &op, |s| {
        s.status.as_ref().and_then(|st| st.ready_replicas) == Some(2)
    })
    .await;
    let home = name_in(0..=84, "home");
    apply_namespace(&api, &namespace(&home, "p")).await;
    wait_object(&api, &home, "Active on a", &op, |n| {
        active(n) && n.status.as_ref().unwrap().assigned_proxy == Some(proxy(&ns, "a", 0))
    })
    .await;
    assert_eq!(
        admin.proxies(),
        [proxy(&ns, "a", 0), proxy(&ns, "a", 1), proxy(&ns, "b", 0)],
        "every proxy of both shards is registered"
    );

    // Placed on a, assigned by admin to b's proxy: not Active.
    let away = name_in(170..=255, "away");
    apply_namespace(&api, &namespace(&away, "p")).await;
    let off = wait_object(&api, &away, "placed off its shard", &op, |n| {
        not_ready_for(n, "PlacedOffShard")
    })
    .await;
    let status = off.status.clone().unwrap();
    assert_eq!(status.shard.as_deref(), Some("a"));
    assert_eq!(status.state, Some(NamespaceState::Failed));
    assert_eq!(status.assigned_proxy, Some(proxy(&ns, "b", 0)));
    let why = ready_message(&off);
    assert!(
        why.contains(&format!("proxy {} of shard {ns}/b", proxy(&ns, "b", 0))),
        "{why}"
    );
    wait_for("a PlacedOffShard warning", MINUTE, || {
        let client = client.clone();
        let ns = ns.clone();
        async move {
            let warned = events_with_reason(&client, &ns, "PlacedOffShard").await;
            match warned.iter().any(|e| e.type_.as_deref() == Some("Warning")) {
                true => Ok(()),
                false => Err("no event yet".to_string()),
            }
        }
    })
    .await;

    // Scaling a down leaves prism-a-1 registered: it is reported, and a namespace admin
    // assigns to it is not Active either.
    shards
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    let a = wait_object(&shards, "a", "its gone proxy reported", &op, |s| {
        s.status
            .as_ref()
            .and_then(|st| st.admin.as_ref())
            .is_some_and(|adm| adm.stale_proxies == [proxy(&ns, "a", 1)])
    })
    .await;
    let (status, reason, _) = admin_isolated(&a).unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "SharedAdmin"));
    let orphan = name_in(85..=169, "orphan");
    apply_namespace(&api, &namespace(&orphan, "p")).await;
    let gone = wait_object(&api, &orphan, "assigned to a gone proxy", &op, |n| {
        not_ready_for(n, "PlacedOffShard")
    })
    .await;
    let why = ready_message(&gone);
    assert!(
        why.contains(&format!("{}, which has no pod", proxy(&ns, "a", 1))),
        "{why}"
    );
}

/// A proxy new to a shared admin moves namespaces admin placed before it: the operator upserts
/// them again at once and reports the move, rather than at the next resync (ten minutes here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_moved_by_a_new_proxy_is_reported_at_once() {
    let (admin, client, ns, op) = on_a_shared_admin("admin-moved", "10m").await;
    apply_yaml(&client, &ns, &shard_yaml("a", "p", 1)).await;
    let api: Api<PrismNamespace> = Api::namespaced(client.clone(), &ns);
    // Alone, a's proxy holds every partition; once b's registers, sorted ids split them:
    // a's 0–127, b's 128–255.
    let moving = name_in(128..=255, "moving");
    apply_namespace(&api, &namespace(&moving, "p")).await;
    let placed = wait_object(&api, &moving, "Active on a", &op, active).await;
    assert_eq!(
        placed.status.unwrap().assigned_proxy,
        Some(proxy(&ns, "a", 0))
    );

    apply_yaml(&client, &ns, &shard_yaml("b", "q", 1)).await;
    apply_namespace(&api, &namespace(&name_in(0..=255, "on-b"), "q")).await;
    let moved = wait_object(&api, &moving, "moved off its shard", &op, |n| {
        not_ready_for(n, "PlacedOffShard")
    })
    .await;
    assert_eq!(
        moved.status.unwrap().assigned_proxy,
        Some(proxy(&ns, "b", 0)),
        "admin's new placement is read back"
    );
    assert_eq!(
        admin.namespace(&moving).map(|n| n.proxy),
        Some(proxy(&ns, "b", 0))
    );
}
