//! The Helm chart on a real control plane (helm built from its Go module): it installs CRDs,
//! least-privilege RBAC and a restricted operator Deployment; the operator, running with exactly
//! the chart ServiceAccount's permissions (a token for it), reconciles the example fleet, and is
//! denied what the chart does not grant.

use prism_testing as support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use support::admin_server::AdminServer;
use support::cluster::{NamespaceOptions, cluster, test_namespace_with};
use support::helm::{helm, service_account_kubeconfig};
use support::operator::{
    FleetAdmins, Operator, apply_example_fleet, wait_example_fleet, webhook_args,
    webhooks_to_loopback,
};
use support::process::free_port;
use support::wait_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_installs_and_its_rbac_is_exactly_enough() {
    let kubeconfig = cluster().await.kubeconfig_path();
    let lint = helm(&["lint", "--strict", "charts/prism-operator"], &kubeconfig);
    assert!(lint.contains("0 chart(s) failed"), "{lint}");

    let (admin, release_ns) =
        test_namespace_with("prism-system", &NamespaceOptions::restricted()).await;
    helm(
        &[
            "install",
            "prism-operator",
            "charts/prism-operator",
            "--namespace",
            &release_ns,
            "--set",
            "adminTimeout=2s",
        ],
        &kubeconfig,
    );

    // The operator Deployment is admitted under restricted Pod Security and gets ready.
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &release_ns);
    wait_for(
        "the chart's operator Deployment available",
        Duration::from_secs(120),
        || {
            let deployments = deployments.clone();
            async move {
                let d = deployments
                    .get("prism-operator")
                    .await
                    .map_err(|e| e.to_string())?;
                let st = d.status.unwrap_or_default();
                if st.available_replicas == Some(2) {
                    Ok(())
                } else {
                    Err(format!("{st:?}"))
                }
            }
        },
    )
    .await;
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    let role = roles.get("prism-operator").await.unwrap();
    for rule in role.rules.unwrap_or_default() {
        let all = [
            rule.verbs.clone(),
            rule.resources.clone().unwrap_or_default(),
            rule.api_groups.clone().unwrap_or_default(),
        ]
        .concat();
        assert!(!all.iter().any(|v| v == "*"), "no wildcards: {rule:?}");
    }

    // Run the operator as the chart's ServiceAccount, on the example fleet.
    let dir = tempfile::tempdir().unwrap();
    let sa_config = dir.path().join("sa.kubeconfig");
    service_account_kubeconfig(&admin, &release_ns, "prism-operator", &sa_config).await;
    let (_, fleet_ns) = test_namespace_with("fleet", &NamespaceOptions::restricted()).await;
    let prism_admin = AdminServer::start().await;
    let endpoint = prism_admin.endpoint();
    // It serves the chart's webhooks too (on loopback: the test control plane never dials a
    // Service), keeping their certificates with the chart's permissions.
    let port = free_port();
    webhooks_to_loopback(&admin, "prism-operator", port).await;
    let mut args: Vec<String> = [
        "--leader-elect",
        "--lease-namespace",
        &release_ns,
        "--identity",
        "sa-test",
        "--admin-endpoint",
        &endpoint,
        "--resync",
        "30s",
    ]
    .map(String::from)
    .to_vec();
    args.extend(webhook_args(
        &release_ns,
        port,
        "prism-operator-webhook-cert",
        "prism-operator",
    ));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let op = Operator::start_with_kubeconfig(&sa_config, &args).await;
    let fleet_admins = FleetAdmins::start().await;
    apply_example_fleet(&admin, &fleet_ns, &fleet_admins).await;
    wait_example_fleet(&admin, &fleet_ns, &op).await;
    assert_eq!(
        fleet_admins.namespace_count(),
        12,
        "every namespace reached its shard\'s admin"
    );
    let log = std::fs::read_to_string(&op.log).unwrap();
    assert!(
        !log.contains("forbidden"),
        "the chart's permissions were not enough:\n{}",
        op.log_tail()
    );

    // And it may not do what the chart does not grant.
    let sa = Client::try_from(
        Config::from_custom_kubeconfig(
            Kubeconfig::read_from(&sa_config).unwrap(),
            &KubeConfigOptions::default(),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let denied = |r: kube::Result<()>, what: &str| match r {
        Err(kube::Error::Api(e)) if e.code == 403 => {}
        other => panic!("{what} should be forbidden, got {other:?}"),
    };
    let secrets: Api<Secret> = Api::namespaced(sa.clone(), &fleet_ns);
    denied(
        secrets.list(&ListParams::default()).await.map(drop),
        "listing Secrets",
    );
    let namespaces: Api<Namespace> = Api::all(sa.clone());
    denied(
        namespaces
            .delete(&fleet_ns, &DeleteParams::default())
            .await
            .map(drop),
        "deleting a Namespace",
    );
    let roles: Api<ClusterRole> = Api::all(sa.clone());
    denied(
        roles
            .create(&PostParams::default(), &ClusterRole::default())
            .await
            .map(drop),
        "creating a ClusterRole",
    );
    assert!(
        secrets.get("profiles-db").await.is_ok(),
        "reading a referenced Secret is allowed"
    );
}
