//! An idle operator writes nothing: with the example fleet reconciled and steady traffic in a
//! real Prometheus (so the traffic writer owns figures and health), and a shard asking for a
//! field the API server drops, a window spanning more than two full resyncs shows zero write
//! requests for the operator's resources in the API server's
//! own request metrics. (Its own test binary, so no other test writes meanwhile.)

use prism_testing as support;

use std::time::Duration;

use kube::api::Api;
use prism_api::{Health, PrismNamespace, PrismShard};
use prism_operator::traffic::Queries;
use support::admin_server::AdminServer;
use support::apiserver_metrics;
use support::fixtures::{SIDECAR_PLUGIN, shard_yaml_with};
use support::operator::{
    FleetAdmins, Operator, apply_example_fleet, apply_yaml, crd_namespace, example_shards,
    wait_example_fleet, wait_object,
};
use support::prometheus::{Load, PrometheusServer, TrafficExporter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_operator_makes_no_writes_over_full_resyncs() {
    let (client, ns) = crd_namespace("idle").await;
    let admin = AdminServer::start().await;
    let endpoint = admin.endpoint();
    // Steady traffic for two namespaces on a proxy pod; Prometheus scrapes every proxy pod the
    // example's shards can have.
    let exporter = TrafficExporter::start().await;
    let load = Load {
        rps: 20.0,
        error_share: 0.0,
        latency: 0.004,
    };
    for name in ["user-profiles", "watch-history"] {
        exporter.set(&ns, "prism-playback-live-0", name, load);
    }
    let pods: Vec<(String, String)> = example_shards()
        .iter()
        .flat_map(|shard| (0..3).map(move |i| format!("prism-{shard}-{i}")))
        .map(|pod| (ns.clone(), pod))
        .collect();
    let prometheus = PrometheusServer::start(exporter.port(), &pods).await;
    let dir = tempfile::tempdir().unwrap();
    let queries = dir.path().join("queries.yaml");
    std::fs::write(&queries, Queries::default().with_window("10s").to_yaml()).unwrap();
    let url = prometheus.url();
    let op = Operator::start(
        &ns,
        &[
            "--resync",
            "8s",
            "--admin-endpoint",
            &endpoint,
            "--prometheus-url",
            &url,
            "--prometheus-queries",
            queries.to_str().unwrap(),
            "--metrics-interval",
            "2s",
        ],
    )
    .await;
    let fleet_admins = FleetAdmins::start().await;
    apply_example_fleet(&client, &ns, &fleet_admins).await;
    wait_example_fleet(&client, &ns, &op).await;
    assert_eq!(
        fleet_admins.namespace_count(),
        12,
        "every namespace reached its shard\'s admin"
    );
    // Quantities in spellings the API server stores differently: exponent forms, which it
    // keeps as "10G", "250M" and "500M". What was rendered and what is stored still agree.
    let spelled = shard_yaml_with(
        "spelled",
        "spelled",
        1,
        "  storage: {size: \"1e10\"}\n  resources: {requests: {memory: \"2.5e8\"}, limits: {memory: \"5E8\"}}\n  stopSignal: SIGINT\n",
    );
    apply_yaml(&client, &ns, &format!("{SIDECAR_PLUGIN}---\n{spelled}")).await;
    let shards: Api<PrismShard> = Api::namespaced(client.clone(), &ns);
    let ready = |want: i32| {
        move |s: &PrismShard| {
            s.status
                .as_ref()
                .is_some_and(|st| st.ready_replicas == Some(want) && st.replicas == Some(want))
        }
    };
    wait_object(&shards, "spelled", "ready", &op, ready(1)).await;
    // A stop signal this API server drops (its ContainerStopSignals gate is off): said once in
    // the shard's Degraded condition, not applied at every resync.
    wait_object(&shards, "spelled", "Degraded: FieldsDropped", &op, |s| {
        s.status.as_ref().is_some_and(|st| {
            st.conditions.iter().any(|c| {
                c.type_ == "Degraded"
                    && c.status == "True"
                    && c.reason == "FieldsDropped"
                    && c.message
                        .contains("spec.template.spec.containers[0].lifecycle.stopSignal")
            })
        })
    })
    .await;
    // The HPA grows playback-live from the StatefulSet default to its minimum of 3.
    wait_object(
        &shards,
        "playback-live",
        "at the HPA's minimum",
        &op,
        ready(3),
    )
    .await;
    // The traffic writer has given both namespaces figures and health.
    let namespaces: Api<PrismNamespace> = Api::namespaced(client.clone(), &ns);
    for name in ["user-profiles", "watch-history"] {
        wait_object(&namespaces, name, "Healthy with figures", &op, |n| {
            n.status.as_ref().is_some_and(|st| {
                st.health == Some(Health::Healthy)
                    && st
                        .metrics
                        .as_ref()
                        .and_then(|m| m.rps)
                        .is_some_and(|rps| rps > 0)
            })
        })
        .await;
    }
    // Let the last status writes and their watch events settle.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before = apiserver_metrics::operator_writes(&client).await;
    let ops_before = op.metrics().await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let after = apiserver_metrics::operator_writes(&client).await;
    let ops_after = op.metrics().await;

    let delta = apiserver_metrics::grown(&after, &before);
    let reconciles = apiserver_metrics::sum(&ops_after, "controller_runtime_reconcile_total")
        - apiserver_metrics::sum(&ops_before, "controller_runtime_reconcile_total");
    println!(
        "idle window of 20 s: {reconciles} reconciliations, API writes on operator resources: {delta:?}"
    );
    assert!(
        reconciles >= 20.0,
        "the window spans full resyncs of every object ({reconciles} reconciliations)"
    );
    assert!(
        delta.is_empty(),
        "writes while idle: {delta:?}\n{}",
        op.log_tail()
    );
    let own = apiserver_metrics::sum(&ops_after, "prism_operator_object_writes_total")
        - apiserver_metrics::sum(&ops_before, "prism_operator_object_writes_total");
    assert_eq!(own, 0.0, "the operator's own write counter agrees");
}
