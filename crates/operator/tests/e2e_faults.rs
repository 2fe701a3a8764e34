//! Faults on a real control plane: the API server is killed mid-reconcile and comes back; the
//! operator's watches drop and re-open, and it converges with nothing lost or duplicated.
//! (Its own test binary: the restart would disturb other tests.)

use prism_testing as support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams};
use prism_api::PrismShard;
use support::cluster::cluster;
use support::operator::{Operator, apply_yaml, crd_namespace};
use support::wait_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_survives_an_api_server_crash() {
    let (client, ns) = crd_namespace("faults").await;
    let op = Operator::start(&ns, &["--resync", "10s"]).await;
    apply_yaml(&client, &ns, "apiVersion: prism.io/v1beta1\nkind: PrismPlugin\nmetadata: {name: pg}\nspec:\n  version: 1.0.0\n  source: {registry: r.io/p, image: pg:1}\n  deployment: {type: sidecar}\n").await;
    let shard = |i: usize| {
        format!(
            "apiVersion: prism.io/v1beta1\nkind: PrismShard\nmetadata: {{name: s{i}}}\nspec:\n  product: p{i}\n  replicas: 2\n  plugins: [{{name: pg, version: \"1\"}}]\n"
        )
    };
    for i in 0..6 {
        apply_yaml(&client, &ns, &shard(i)).await;
    }
    // Mid-reconcile: as soon as the first StatefulSet exists, the API server crashes.
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    wait_for("a first StatefulSet", Duration::from_secs(60), || {
        let sts = sts.clone();
        async move {
            let n = sts
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items
                .len();
            if n > 0 {
                Ok(())
            } else {
                Err("none yet".into())
            }
        }
    })
    .await;
    let c = cluster().await;
    c.restart_api_server().await;
    // Shards created while it is down are not lost either.
    let client = c.client();
    for i in 6..8 {
        apply_yaml(&client, &ns, &shard(i)).await;
    }
    let shards: Api<PrismShard> = Api::namespaced(client.clone(), &ns);
    wait_for("all 8 shards ready", Duration::from_secs(180), || {
        let shards = shards.clone();
        let tail = op.log_tail();
        async move {
            let list = shards
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items;
            let ready = list
                .iter()
                .filter(|s| {
                    s.status.as_ref().is_some_and(|st| {
                        st.conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                            && st.ready_replicas == Some(2)
                    })
                })
                .count();
            if ready == 8 {
                Ok(())
            } else {
                Err(format!("{ready}/8 ready\n{tail}"))
            }
        }
    })
    .await;
    // Exactly one StatefulSet and two Services per shard: nothing duplicated, nothing missing.
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let svc: Api<Service> = Api::namespaced(client.clone(), &ns);
    let mut names: Vec<String> = sts
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    names.sort();
    assert_eq!(
        names,
        (0..8).map(|i| format!("prism-s{i}")).collect::<Vec<_>>()
    );
    assert_eq!(
        svc.list(&ListParams::default()).await.unwrap().items.len(),
        16
    );
    assert!(
        op.metrics()
            .await
            .contains("controller_runtime_reconcile_total"),
        "the same operator process is still serving"
    );
}
