//! An idle operator writes nothing: with the example fleet reconciled, a window spanning more
//! than two full resyncs shows zero write requests for the operator's resources in the API
//! server's own request metrics. (Its own test binary, so no other test writes meanwhile.)

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use prism_operator::api::{PrismNamespace, PrismPlugin, PrismShard};
use support::admin_server::AdminServer;
use support::cluster::{NamespaceOptions, test_namespace_with};
use support::operator::{Operator, apply_yaml, example, install_crds};
use support::wait_for;

const OURS: &[&str] = &[
    "configmaps",
    "services",
    "statefulsets",
    "deployments",
    "poddisruptionbudgets",
    "horizontalpodautoscalers",
    "prismshards",
    "prismplugins",
    "prismnamespaces",
];

/// `apiserver_request_total` by (verb, resource, subresource) for write verbs on our resources.
async fn writes(client: &Client) -> BTreeMap<String, f64> {
    let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(req).await.unwrap();
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let label = |k: &str| {
            line.split(&format!("{k}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("")
                .to_string()
        };
        let (verb, resource, sub) = (label("verb"), label("resource"), label("subresource"));
        let write = matches!(
            verb.as_str(),
            "APPLY" | "PATCH" | "POST" | "PUT" | "DELETE" | "DELETECOLLECTION"
        );
        // The controller-manager, not the operator, writes workload status.
        let kcm_status = (sub == "status" || sub == "scale") && !resource.starts_with("prism");
        if write && OURS.contains(&resource.as_str()) && !kcm_status {
            let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            *out.entry(format!("{verb} {resource}/{sub}")).or_default() += n;
        }
    }
    out
}

fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_operator_makes_no_writes_over_full_resyncs() {
    let (client, ns) = test_namespace_with("idle", &NamespaceOptions::restricted()).await;
    install_crds(&client).await;
    let admin = AdminServer::start().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for name in ["profiles-db", "history-db", "resume-db", "reports-db"] {
        let mut s = Secret::default();
        s.metadata.name = Some(name.into());
        s.string_data = Some(
            [(
                "connection-string".to_string(),
                format!("postgres://{name}"),
            )]
            .into_iter()
            .collect(),
        );
        secrets.create(&PostParams::default(), &s).await.unwrap();
    }
    let endpoint = admin.endpoint();
    let op = Operator::start(&ns, &["--resync", "8s", "--admin-endpoint", &endpoint]).await;
    // The example fleet, on the cluster's default storage class.
    for f in ["plugins.yaml", "shards.yaml", "namespaces.yaml"] {
        let text = example(&format!("fleet/{f}")).replace("    storageClassName: ssd\n", "");
        apply_yaml(&client, &ns, &text).await;
    }
    let shards: Api<PrismShard> = Api::namespaced(client.clone(), &ns);
    let plugins: Api<PrismPlugin> = Api::namespaced(client.clone(), &ns);
    let namespaces: Api<PrismNamespace> = Api::namespaced(client.clone(), &ns);
    wait_for("the example fleet reconciled", Duration::from_secs(240), || {
        let (shards, plugins, namespaces) = (shards.clone(), plugins.clone(), namespaces.clone());
        let tail = op.log_tail();
        async move {
            let lp = ListParams::default();
            let ready = |c: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]| c.iter().any(|c| c.type_ == "Ready" && c.status == "True");
            let s = shards.list(&lp).await.map_err(|e| e.to_string())?.items;
            let p = plugins.list(&lp).await.map_err(|e| e.to_string())?.items;
            let n = namespaces.list(&lp).await.map_err(|e| e.to_string())?.items;
            let s_ok = s.iter().filter(|x| x.status.as_ref().is_some_and(|st| ready(&st.conditions))).count();
            let p_ok = p.iter().filter(|x| x.status.as_ref().is_some_and(|st| ready(&st.conditions))).count();
            let n_ok = n.iter().filter(|x| x.status.as_ref().and_then(|st| st.state.as_deref()) == Some("Active")).count();
            if (s_ok, p_ok, n_ok) == (4, 4, 12) { Ok(()) } else { Err(format!("ready shards {s_ok}/4, plugins {p_ok}/4, active namespaces {n_ok}/12\n{tail}")) }
        }
    })
    .await;
    // The HPA grows playback-live from the StatefulSet default to its minimum of 3.
    wait_for(
        "playback-live at the HPA's minimum",
        Duration::from_secs(120),
        || {
            let shards = shards.clone();
            async move {
                let st = shards
                    .get("playback-live")
                    .await
                    .map_err(|e| e.to_string())?
                    .status
                    .unwrap_or_default();
                if st.ready_replicas == Some(3) && st.replicas == Some(3) {
                    Ok(())
                } else {
                    Err(format!("{st:?}"))
                }
            }
        },
    )
    .await;
    // Let the last status writes and their watch events settle.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before = writes(&client).await;
    let ops_before = op.metrics().await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let after = writes(&client).await;
    let ops_after = op.metrics().await;

    let delta: BTreeMap<&String, f64> = after
        .iter()
        .map(|(k, v)| (k, v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d != 0.0)
        .collect();
    let reconciles = metric(&ops_after, "prism_operator_reconcile_total")
        - metric(&ops_before, "prism_operator_reconcile_total");
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
    let own = metric(&ops_after, "prism_operator_object_writes_total")
        - metric(&ops_before, "prism_operator_object_writes_total");
    assert_eq!(own, 0.0, "the operator's own write counter agrees");
}
