//! Teams sharing one Prism admin: names are global in admin, so a PrismNamespace whose name an
//! older one in another Kubernetes namespace already holds there waits (NameConflict) and is
//! never sent; deleting it revokes nothing; when the owner is deleted it takes over. A name
//! never belongs to a namespace that cannot be sent (its shard refused the admin). Operators
//! that each watch one namespace keep both rules across namespaces. Most operators here watch
//! every namespace, so this binary has a control plane of its own and runs its scenarios one
//! after the other.

use prism_testing as support;

use std::time::Duration;

use kube::api::{Api, DeleteParams};
use prism_admin::keys;
use prism_api::{NamespaceState, PrismNamespace};
use prism_render::render::contract::proxy_id;
use support::admin_server::AdminServer;
use support::cluster::{NamespaceOptions, cluster, test_namespace_with};
use support::fixtures::{
    SIDECAR_PLUGIN, namespace_yaml, namespace_yaml_with, shard_yaml, shard_yaml_with,
};
use support::operator::{Operator, apply_yaml, events_with_reason, install_crds, wait_object};

/// A team's plugin and its one shop shard.
fn team(shard: &str) -> String {
    format!("{SIDECAR_PLUGIN}---\n{}", shard_yaml(shard, "shop", 1))
}

fn state(n: &PrismNamespace) -> Option<NamespaceState> {
    n.status.as_ref().and_then(|s| s.state)
}

/// `reclaimPolicy: delete`: deleting the namespace revokes it in admin, if it is its own.
const RECLAIM_DELETE: &str = "  reclaimPolicy: delete\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_in_a_shared_admin() {
    the_older_of_two_same_named_namespaces_keeps_the_name_in_admin().await;
    a_namespace_that_cannot_be_sent_holds_no_name_and_revokes_nothing().await;
    same_named_shards_in_two_namespaces_are_two_proxies().await;
    operators_of_one_namespace_each_keep_the_rules_across_namespaces().await;
}

async fn the_older_of_two_same_named_namespaces_keeps_the_name_in_admin() {
    let admin = AdminServer::start().await;
    let (client, team_a) = test_namespace_with("team-a", &NamespaceOptions::restricted()).await;
    let (_, team_b) = test_namespace_with("team-b", &NamespaceOptions::restricted()).await;
    install_crds(&client).await;
    let kubeconfig = cluster().await.kubeconfig_path();
    let endpoint = admin.endpoint();
    // Both teams' shards use the operator's admin: sharing allowed, as names are the point.
    let op = Operator::start_with_kubeconfig(
        &kubeconfig,
        &[
            "--lease-namespace",
            &team_a,
            "--admin-endpoint",
            &endpoint,
            "--allow-shared-admin",
            "--resync",
            "30s",
        ],
    )
    .await;
    apply_yaml(&client, &team_a, &team("a")).await;
    apply_yaml(&client, &team_b, &team("b")).await;
    // A name admin assigns to team-b's proxy once both are registered (prism-a-0 takes
    // partitions 0–127, prism-b-0 128–255); until then only team-a's proxy exists.
    let name = (0..)
        .map(|i| format!("carts-{i}"))
        .find(|n| prism_admin::partition_of(n) >= 128)
        .unwrap();
    let a: Api<PrismNamespace> = Api::namespaced(client.clone(), &team_a);
    let b: Api<PrismNamespace> = Api::namespaced(client.clone(), &team_b);
    apply_yaml(&client, &team_a, &namespace_yaml(&name, "shop")).await;
    wait_object(&a, &name, "Active", &op, |n| {
        state(n) == Some(NamespaceState::Active)
    })
    .await;
    // Creation times have a resolution of one second: team-b's is the younger.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let younger = namespace_yaml_with(&name, "shop", RECLAIM_DELETE);
    apply_yaml(&client, &team_b, &younger).await;
    let conflict = |n: &PrismNamespace| {
        n.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "False" && c.reason == "NameConflict")
        })
    };
    wait_object(&b, &name, "NameConflict", &op, conflict).await;
    // Deleted, the waiting one revokes nothing: the name in admin is team-a's.
    b.delete(&name, &DeleteParams::default()).await.unwrap();
    wait_gone(&b, &name).await;
    assert_eq!(admin.revoked(), Vec::<String>::new(), "nothing revoked");
    assert_eq!(admin.namespaces()[&name][keys::K8S_NAMESPACE], team_a);
    let said = notes(&client, &team_b, "NotRevoked").await;
    assert!(
        said.iter().any(|m| m.contains(&format!("{team_a}/{name}"))),
        "the event names the owner: {said:?}"
    );
    apply_yaml(&client, &team_b, &younger).await;

    let waiting = wait_object(&b, &name, "NameConflict", &op, conflict).await;
    assert_eq!(state(&waiting), Some(NamespaceState::Pending));
    let message = &waiting.status.as_ref().unwrap().conditions[0].message;
    let owner = format!("{team_a}/{name}");
    assert!(
        waiting
            .status
            .as_ref()
            .unwrap()
            .conditions
            .iter()
            .any(|c| c.message.contains(&owner)),
        "the owner is named: {message}"
    );
    let sent_by = |admin: &AdminServer| {
        admin
            .last_request(&name)
            .and_then(|r| r.config)
            .map(|c| c.metadata[keys::K8S_NAMESPACE].clone())
    };
    assert_eq!(sent_by(&admin).as_deref(), Some(team_a.as_str()));
    // It stays unsent over a resync of both (the operator resyncs every 30 s, rechecks a
    // conflict every 10 s).
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        sent_by(&admin).as_deref(),
        Some(team_a.as_str()),
        "never sent"
    );
    assert_eq!(admin.namespaces()[&name][keys::K8S_NAMESPACE], team_a);
    let warned = !events_with_reason(&client, &team_b, "NameConflict")
        .await
        .is_empty();
    assert!(warned, "a Warning event names the conflict");

    // The owner goes (its config stays in admin: reclaimPolicy retain); team-b takes over.
    a.delete(&name, &DeleteParams::default()).await.unwrap();
    let taken = wait_object(&b, &name, "Active", &op, |n| {
        state(n) == Some(NamespaceState::Active)
    })
    .await;
    assert_eq!(sent_by(&admin).as_deref(), Some(team_b.as_str()));
    assert_eq!(admin.namespaces()[&name][keys::K8S_NAMESPACE], team_b);
    assert_eq!(
        taken.status.unwrap().assigned_proxy.as_deref(),
        Some(proxy_id("prism-b-0", &team_b).as_str()),
        "served by team-b's own proxy"
    );
}

/// Waits until `name` is gone (its finalizer done).
async fn wait_gone(api: &Api<PrismNamespace>, name: &str) {
    support::wait_for(
        &format!("{name} deleted"),
        Duration::from_secs(60),
        || async move {
            match api.get_opt(name).await {
                Ok(None) => Ok(()),
                Ok(Some(n)) => Err(format!("still there: {:?}", n.status)),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;
}

/// team-c's shard owns the admin; team-d's, younger, names it too and is refused. team-d's
/// `dup2` is the older namespace of that name but can never be sent, so team-c's goes Active
/// with the name; deleting team-d's revokes nothing.
async fn a_namespace_that_cannot_be_sent_holds_no_name_and_revokes_nothing() {
    let admin = AdminServer::start().await;
    let (client, team_c) = test_namespace_with("team-c", &NamespaceOptions::restricted()).await;
    let (_, team_d) = test_namespace_with("team-d", &NamespaceOptions::restricted()).await;
    let kubeconfig = cluster().await.kubeconfig_path();
    // No default admin and no sharing: each shard names the admin itself.
    let op = Operator::start_with_kubeconfig(
        &kubeconfig,
        &["--lease-namespace", &team_c, "--resync", "30s"],
    )
    .await;
    let endpoint = format!("  adminEndpoint: {}\n", admin.host_port());
    let shard = |name: &str| {
        format!(
            "{SIDECAR_PLUGIN}---\n{}",
            shard_yaml_with(name, "shop", 1, &endpoint)
        )
    };
    apply_yaml(&client, &team_c, &shard("c")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    apply_yaml(&client, &team_d, &shard("d")).await;
    let d: Api<PrismNamespace> = Api::namespaced(client.clone(), &team_d);
    let c: Api<PrismNamespace> = Api::namespaced(client.clone(), &team_c);
    apply_yaml(
        &client,
        &team_d,
        &namespace_yaml_with("dup2", "shop", RECLAIM_DELETE),
    )
    .await;
    wait_object(&d, "dup2", "SharedAdminRefused", &op, |n| {
        n.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.reason == "SharedAdminRefused")
        })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    apply_yaml(&client, &team_c, &namespace_yaml("dup2", "shop")).await;
    let active = wait_object(&c, "dup2", "Active", &op, |n| {
        state(n) == Some(NamespaceState::Active)
    })
    .await;
    assert_eq!(admin.namespaces()["dup2"][keys::K8S_NAMESPACE], team_c);
    assert_eq!(
        active.status.unwrap().assigned_proxy.as_deref(),
        Some(proxy_id("prism-c-0", &team_c).as_str())
    );

    d.delete("dup2", &DeleteParams::default()).await.unwrap();
    wait_gone(&d, "dup2").await;
    assert_eq!(admin.revoked(), Vec::<String>::new(), "nothing revoked");
    assert_eq!(admin.namespaces()["dup2"][keys::K8S_NAMESPACE], team_c);
    let said = notes(&client, &team_d, "NotRevoked").await;
    assert!(
        said.iter()
            .any(|m| m.contains(&format!("older shard {team_c}/c"))),
        "the event says why: {said:?}"
    );
}

/// Shards named `s` in team-x and team-y share an admin (allowed): their pods are both
/// `prism-s-0`, but admin keys proxies by id, so each registers as `prism-s-0.<namespace>` and
/// admin keeps two proxies. A team-x namespace admin assigns to team-y's proxy is reported, not
/// Active.
async fn same_named_shards_in_two_namespaces_are_two_proxies() {
    let admin = AdminServer::start().await;
    let (client, team_x) = test_namespace_with("team-x", &NamespaceOptions::restricted()).await;
    let (_, team_y) = test_namespace_with("team-y", &NamespaceOptions::restricted()).await;
    let kubeconfig = cluster().await.kubeconfig_path();
    let op = Operator::start_with_kubeconfig(
        &kubeconfig,
        &["--lease-namespace", &team_x, "--allow-shared-admin"],
    )
    .await;
    let endpoint = format!("  adminEndpoint: {}\n", admin.host_port());
    let team_s = format!(
        "{SIDECAR_PLUGIN}---\n{}",
        shard_yaml_with("s", "shop", 1, &endpoint)
    );
    apply_yaml(&client, &team_x, &team_s).await;
    apply_yaml(&client, &team_y, &team_s).await;
    let x: Api<PrismNamespace> = Api::namespaced(client.clone(), &team_x);
    let y: Api<PrismNamespace> = Api::namespaced(client.clone(), &team_y);
    let active = |n: &PrismNamespace| state(n) == Some(NamespaceState::Active);
    // Sorted, the ids split the partitions: team-x's proxy 0–127, team-y's 128–255.
    let (id_x, id_y) = (
        proxy_id("prism-s-0", &team_x),
        proxy_id("prism-s-0", &team_y),
    );
    let named = |range: std::ops::RangeInclusive<i32>, stem: &str| {
        (0..)
            .map(|i| format!("{stem}-{i}"))
            .find(|n| range.contains(&prism_admin::partition_of(n)))
            .unwrap()
    };
    // Names are global in admin: each namespace has its own.
    let (near, far, away) = (
        named(0..=127, "near"),
        named(128..=255, "far"),
        named(128..=255, "away"),
    );
    apply_yaml(&client, &team_y, &namespace_yaml(&far, "shop")).await;
    wait_object(&y, &far, "Active", &op, active).await;
    apply_yaml(&client, &team_x, &namespace_yaml(&near, "shop")).await;
    let home = wait_object(&x, &near, "Active", &op, active).await;
    assert_eq!(admin.proxies(), [id_x.clone(), id_y.clone()], "two proxies");
    assert_eq!(home.status.unwrap().assigned_proxy, Some(id_x));

    apply_yaml(&client, &team_x, &namespace_yaml(&away, "shop")).await;
    let away = wait_object(&x, &away, "PlacedOffShard", &op, |n| {
        n.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.reason == "PlacedOffShard")
        })
    })
    .await;
    let status = away.status.unwrap();
    assert_eq!(status.assigned_proxy.as_deref(), Some(id_y.as_str()));
    let why = &status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .message;
    assert!(why.contains(&format!("of shard {team_y}/s")), "{why}");
}

/// Two operators, each watching one team's namespace and using the same default admin (which
/// neither names in its shards). Each learns the other's shards' admin from their status:
/// with sharing allowed, team-f's younger `orders` waits on team-e's (`NameConflict`) and is
/// never sent; without it, team-h's shard, younger than team-g's, is refused the admin.
async fn operators_of_one_namespace_each_keep_the_rules_across_namespaces() {
    let (shared, alone) = (AdminServer::start().await, AdminServer::start().await);
    let mut teams = Vec::new();
    for prefix in ["team-e", "team-f", "team-g", "team-h"] {
        teams.push(test_namespace_with(prefix, &NamespaceOptions::restricted()).await);
    }
    let client = teams[0].0.clone();
    let [e, f, g, h] = [0, 1, 2, 3].map(|i| teams[i].1.clone());
    let (shared_endpoint, alone_endpoint) = (shared.endpoint(), alone.endpoint());
    let sharing = ["--admin-endpoint", &shared_endpoint, "--allow-shared-admin"];
    let (op_e, op_f) = (
        Operator::start(&e, &sharing).await,
        Operator::start(&f, &sharing).await,
    );
    let owning = ["--admin-endpoint", &alone_endpoint];
    let (op_g, op_h) = (
        Operator::start(&g, &owning).await,
        Operator::start(&h, &owning).await,
    );
    let reported = |n: &prism_api::PrismShard| {
        n.status
            .as_ref()
            .and_then(|s| s.admin.as_ref())
            .is_some_and(|a| a.endpoints.is_some())
    };
    for (namespace, shard, op) in [(&e, "e", &op_e), (&g, "g", &op_g)] {
        apply_yaml(&client, namespace, &team(shard)).await;
        let shards: Api<prism_api::PrismShard> = Api::namespaced(client.clone(), namespace);
        wait_object(&shards, shard, "its admin in status", op, reported).await;
    }
    // A name admin gives team-e's proxy (partitions 0–127 once both teams' are registered).
    let name = (0..)
        .map(|i| format!("orders-{i}"))
        .find(|n| prism_admin::partition_of(n) < 128)
        .unwrap();
    let active = |n: &PrismNamespace| state(n) == Some(NamespaceState::Active);
    apply_yaml(&client, &e, &namespace_yaml(&name, "shop")).await;
    let in_e: Api<PrismNamespace> = Api::namespaced(client.clone(), &e);
    wait_object(&in_e, &name, "Active", &op_e, active).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for (namespace, shard) in [(&f, "f"), (&h, "h")] {
        apply_yaml(&client, namespace, &team(shard)).await;
    }
    apply_yaml(&client, &f, &namespace_yaml(&name, "shop")).await;
    let in_f: Api<PrismNamespace> = Api::namespaced(client.clone(), &f);
    let waiting = wait_object(&in_f, &name, "NameConflict", &op_f, |n| {
        ready_reason(n) == Some("NameConflict")
    })
    .await;
    let owner = format!("{e}/{name}");
    assert!(
        format!("{:?}", waiting.status).contains(&owner),
        "the owner is named: {:?}",
        waiting.status
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        shared.namespaces()[&name][keys::K8S_NAMESPACE],
        e,
        "never sent"
    );

    apply_yaml(&client, &h, &namespace_yaml("served", "shop")).await;
    let in_h: Api<PrismNamespace> = Api::namespaced(client.clone(), &h);
    let refused = wait_object(&in_h, "served", "SharedAdminRefused", &op_h, |n| {
        ready_reason(n) == Some("SharedAdminRefused")
    })
    .await;
    assert!(
        format!("{:?}", refused.status).contains(&format!("older shard {g}/g")),
        "{:?}",
        refused.status
    );
    assert!(alone.namespace("served").is_none(), "never sent");
}

/// The reason of a PrismNamespace's Ready condition.
fn ready_reason(n: &PrismNamespace) -> Option<&str> {
    n.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.reason.as_str())
    })
}

/// The notes of the events with `reason` in `namespace`.
async fn notes(client: &kube::Client, namespace: &str, reason: &str) -> Vec<String> {
    events_with_reason(client, namespace, reason)
        .await
        .into_iter()
        .filter_map(|e| e.note)
        .collect()
}
