//! A shard's stop signal on an API server with the ContainerStopSignals feature gate on (its own
//! test binary, so its own control plane): the StatefulSet and the pods the controller-manager
//! makes from it carry `lifecycle.stopSignal` (with the `os.name` the field requires), the shard
//! is not degraded, and taking the field out of the shard takes it off the StatefulSet. Where the
//! gate is off, e2e_idle holds such a shard: reported, not applied again.

use prism_testing as support;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use prism_api::PrismShard;
use support::admin_server::AdminServer;
use support::cluster::cluster_with_gates;
use support::fixtures::{SIDECAR_PLUGIN, shard_yaml, shard_yaml_with};
use support::operator::{Operator, apply_yaml, crd_namespace, wait_object};

/// The proxy container's stop signal in a pod spec, and the pod's OS.
fn stop_signal(spec: &k8s_openapi::api::core::v1::PodSpec) -> (Option<String>, Option<String>) {
    let proxy = spec.containers.iter().find(|c| c.name == "proxy");
    let signal = proxy.and_then(|c| c.lifecycle.as_ref()?.stop_signal.clone());
    (signal, spec.os.as_ref().map(|os| os.name.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_stops_its_proxies_with_the_signal_it_names() {
    cluster_with_gates("ContainerStopSignals=true").await;
    let (client, ns) = crd_namespace("stop").await;
    let admin = AdminServer::start().await;
    let endpoint = admin.endpoint();
    let op = Operator::start(&ns, &["--admin-endpoint", &endpoint, "--resync", "10s"]).await;
    let quiet = shard_yaml_with("quiet", "quiet", 1, "  stopSignal: SIGINT\n");
    apply_yaml(&client, &ns, &format!("{SIDECAR_PLUGIN}---\n{quiet}")).await;

    let shards: Api<PrismShard> = Api::namespaced(client.clone(), &ns);
    let shard = wait_object(&shards, "quiet", "ready", &op, |s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.ready_replicas == Some(1))
    })
    .await;
    let degraded = shard
        .status
        .unwrap_or_default()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Degraded");
    assert!(
        degraded.as_ref().is_none_or(|c| c.status == "False"),
        "{degraded:?}"
    );
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let set = sets.get("prism-quiet").await.unwrap();
    let template = set.spec.template.spec.unwrap();
    let expected = (Some("SIGINT".to_string()), Some("linux".to_string()));
    assert_eq!(stop_signal(&template), expected, "the StatefulSet");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod = pods.get("prism-quiet-0").await.unwrap();
    assert_eq!(stop_signal(&pod.spec.unwrap()), expected, "its pod");

    // Without the field the StatefulSet loses it (and the OS it needed).
    apply_yaml(&client, &ns, &shard_yaml("quiet", "quiet", 1)).await;
    support::wait_for(
        "the stop signal gone from the StatefulSet",
        std::time::Duration::from_secs(60),
        || {
            let sets = sets.clone();
            let tail = op.log_tail();
            async move {
                let set = sets.get("prism-quiet").await.map_err(|e| e.to_string())?;
                match stop_signal(&set.spec.template.spec.unwrap()) {
                    (None, None) => Ok(()),
                    other => Err(format!("{other:?}\n{tail}")),
                }
            }
        },
    )
    .await;
}
