//! The test control plane starts a component again when it exits on its own, as the kubelet
//! does for a real control plane's static pods (kube-scheduler exits when it finds its cache
//! inconsistent). Its own binary: the crash it causes is recorded for the whole control plane.

use prism_testing as support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;
use support::cluster::{self, NamespaceOptions};
use support::wait_for;

#[tokio::test]
async fn a_component_that_exits_is_started_again_and_schedules_pods() {
    let (client, ns) =
        cluster::test_namespace_with("restarts", &NamespaceOptions::restricted()).await;
    let cluster = cluster::cluster().await;
    let before = cluster.pid("kube-scheduler");
    // SIGKILL from outside, as an exit the harness did not ask for.
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &before.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    wait_for(
        "kube-scheduler started again",
        Duration::from_secs(30),
        || async {
            (cluster.pid("kube-scheduler") != before)
                .then_some(())
                .ok_or("same pid".to_string())
        },
    )
    .await;
    let crashes = cluster.crashes();
    assert!(
        crashes.len() == 1 && crashes[0].starts_with("kube-scheduler ("),
        "{crashes:?}"
    );
    // The new scheduler works: a pod created after the crash is bound to the kwok node.
    let pods: Api<Pod> = Api::namespaced(client, &ns);
    let pod = serde_json::from_value(json!({
        "metadata": {"name": "after-the-crash"},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10",
                            "securityContext": {"allowPrivilegeEscalation": false,
                                                "capabilities": {"drop": ["ALL"]}}}]
        }
    }))
    .expect("a pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("pod created");
    let pods = &pods;
    wait_for(
        "the pod bound to a node",
        Duration::from_secs(60),
        || async move {
            let pod = pods
                .get("after-the-crash")
                .await
                .map_err(|e| e.to_string())?;
            pod.spec
                .and_then(|s| s.node_name)
                .filter(|n| n == cluster::NODE_NAME)
                .map(drop)
                .ok_or_else(|| "not scheduled yet".to_string())
        },
    )
    .await;
    let report = std::panic::catch_unwind(|| cluster.assert_running());
    assert!(report.is_err(), "assert_running reports the crash");
}
