//! Two teams, one Prism admin: names are global in admin, so a PrismNamespace whose name an
//! older one in another Kubernetes namespace already holds there waits (NameConflict) and is
//! never sent; when the owner is deleted it takes over. One operator watches every namespace,
//! so this binary has a control plane of its own.

use prism_testing as support;

use std::time::Duration;

use kube::api::{Api, DeleteParams};
use prism_admin::keys;
use prism_api::{NamespaceState, PrismNamespace};
use support::admin_server::AdminServer;
use support::cluster::{NamespaceOptions, cluster, test_namespace_with};
use support::fixtures::{SIDECAR_PLUGIN, namespace_yaml, shard_yaml};
use support::operator::{Operator, apply_yaml, events_with_reason, install_crds, wait_object};

/// A team's plugin and its one shop shard.
fn team(shard: &str) -> String {
    format!("{SIDECAR_PLUGIN}---\n{}", shard_yaml(shard, "shop", 1))
}

fn state(n: &PrismNamespace) -> Option<NamespaceState> {
    n.status.as_ref().and_then(|s| s.state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
    apply_yaml(&client, &team_b, &namespace_yaml(&name, "shop")).await;

    let waiting = wait_object(&b, &name, "NameConflict", &op, |n| {
        n.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "False" && c.reason == "NameConflict")
        })
    })
    .await;
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
        Some("prism-b-0"),
        "served by team-b's own proxy"
    );
}
