//! prism-operator against a real control plane (etcd, kube-apiserver, controller-manager,
//! scheduler, kwok nodes): shards become StatefulSets that reach ready, drift heals, pruning,
//! health-gated plugin rollouts with rollback, restarts, leader election and printer columns.

use prism_testing as support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use prism_api::{PrismPlugin, PrismShard, RolloutPhase};
use support::fixtures::{plugin_yaml, sized_shard_yaml};
use support::operator::{Operator, apply_yaml, crd_namespace};
use support::wait_for;

const MINUTE: Duration = Duration::from_secs(60);

async fn wait_shard_ready(client: &Client, ns: &str, name: &str, replicas: i32, op: &Operator) {
    let api: Api<PrismShard> = Api::namespaced(client.clone(), ns);
    wait_for(
        &format!("PrismShard {name} ready with {replicas} replicas"),
        2 * MINUTE,
        || {
            let api = api.clone();
            let tail = op.log_tail();
            async move {
                let s = api.get(name).await.map_err(|e| e.to_string())?;
                let st = s.status.clone().unwrap_or_default();
                let ready = st
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                if ready
                    && st.ready_replicas == Some(replicas)
                    && st.observed_generation == s.metadata.generation
                {
                    Ok(())
                } else {
                    Err(format!("status {st:?}\noperator log:\n{tail}"))
                }
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_lifecycle_apply_drift_and_prune() {
    let (client, ns) = crd_namespace("op-shard").await;
    let op = Operator::start(&ns, &["--resync", "20s"]).await;
    apply_yaml(&client, &ns, &plugin_yaml("pg", "1.0.0", 50100, "")).await;
    // Autoscaled: the autoscaler owns the count (v1beta1 has no replicas then); it starts at
    // minReplicas.
    let autoscaled = sized_shard_yaml(
        "a",
        2,
        &["pg"],
        "  autoscaling: {enabled: true, minReplicas: 2, maxReplicas: 4, targetCPUUtilization: 80}\n",
    )
    .replace("  replicas: 2\n", "");
    apply_yaml(&client, &ns, &autoscaled).await;

    // Every object exists and the StatefulSet reaches ready with bound volumes.
    wait_shard_ready(&client, &ns, "a", 2, &op).await;
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let svc: Api<Service> = Api::namespaced(client.clone(), &ns);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns);
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &ns);
    let set = sts.get("prism-a").await.unwrap();
    assert_eq!(
        set.spec.replicas,
        Some(2),
        "the StatefulSet starts at the HPA's floor"
    );
    assert!(svc.get("prism-a").await.is_ok() && svc.get("prism-a-headless").await.is_ok());
    assert!(pdbs.get("prism-a").await.is_ok());
    assert!(hpas.get("prism-a").await.is_ok());
    let owner = &set.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("PrismShard", "a", Some(true))
    );

    // A deleted child comes back; an edited one is put back as rendered.
    svc.delete("prism-a", &DeleteParams::default())
        .await
        .unwrap();
    let edit = serde_json::json!({"data": {"proxy.yaml": "edited: true\n"}});
    cms.patch("prism-a", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();
    wait_for("drift healed", MINUTE, || {
        let (svc, cms) = (svc.clone(), cms.clone());
        async move {
            svc.get("prism-a")
                .await
                .map_err(|e| format!("service: {e}"))?;
            let cm = cms.get("prism-a").await.map_err(|e| e.to_string())?;
            let data = cm.data.unwrap_or_default();
            if data["proxy.yaml"].contains("edited") {
                Err("config still edited".into())
            } else {
                Ok(())
            }
        }
    })
    .await;

    // Turning autoscaling off prunes the HPA and hands replicas back to the spec; a resource
    // change reaches the pod template.
    let fixed = sized_shard_yaml("a", 3, &["pg"], "").replace("cpu: 100m", "cpu: 200m");
    apply_yaml(&client, &ns, &fixed).await;
    wait_for("HPA pruned, replicas and resources applied", MINUTE, || {
        let (sts, hpas) = (sts.clone(), hpas.clone());
        async move {
            let gone =
                matches!(hpas.get("prism-a").await, Err(kube::Error::Api(e)) if e.code == 404);
            let s = sts.get("prism-a").await.map_err(|e| e.to_string())?;
            let spec = s.spec;
            let cpu = spec.template.spec.unwrap().containers[0]
                .resources
                .clone()
                .unwrap()
                .requests
                .unwrap()["cpu"]
                .0
                .clone();
            if gone && spec.replicas == Some(3) && cpu == "200m" {
                Ok(())
            } else {
                Err(format!(
                    "hpa gone {gone}, replicas {:?}, cpu {cpu}",
                    spec.replicas
                ))
            }
        }
    })
    .await;
    wait_shard_ready(&client, &ns, "a", 3, &op).await;

    // Removing the plugin from the shard removes its sidecar.
    apply_yaml(
        &client,
        &ns,
        &sized_shard_yaml("a", 3, &[], "").replace("cpu: 100m", "cpu: 200m"),
    )
    .await;
    wait_for("sidecar removed", MINUTE, || {
        let sts = sts.clone();
        async move {
            let s = sts.get("prism-a").await.map_err(|e| e.to_string())?;
            let names: Vec<String> = s
                .spec
                .template
                .spec
                .unwrap()
                .containers
                .into_iter()
                .map(|c| c.name)
                .collect();
            if names == ["proxy"] {
                Ok(())
            } else {
                Err(format!("containers {names:?}"))
            }
        }
    })
    .await;
}

/// Which shards were given the target version, in order, observed from the plugin's status.
async fn watch_rollout(
    client: &Client,
    ns: &str,
    plugin: &str,
    op: &Operator,
    until: RolloutPhase,
) -> (Vec<String>, PrismPlugin) {
    let api: Api<PrismPlugin> = Api::namespaced(client.clone(), ns);
    let mut order: Vec<String> = Vec::new();
    let start = std::time::Instant::now();
    loop {
        let p = api.get(plugin).await.unwrap();
        if let Some(r) = p.status.as_ref().and_then(|s| s.rollout.clone()) {
            assert!(
                r.in_progress.len() <= 1,
                "at most one shard at a time: {:?}",
                r.in_progress
            );
            for s in r
                .completed
                .iter()
                .cloned()
                .chain(r.in_progress.iter().map(|s| s.shard.clone()))
            {
                if !order.contains(&s) {
                    order.push(s);
                }
            }
            if r.phase == until {
                return (order, p);
            }
        }
        assert!(
            start.elapsed() < 3 * MINUTE,
            "rollout did not reach {until:?}; order so far {order:?}; status {:?}\n{}",
            p.status,
            op.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn three_shards(client: &Client, ns: &str, op: &Operator) {
    apply_yaml(client, ns, &plugin_yaml("pg", "1.0.0", 50100, "")).await;
    for s in ["s3", "s1", "s2"] {
        apply_yaml(client, ns, &sized_shard_yaml(s, 1, &["pg"], "")).await;
    }
    for s in ["s1", "s2", "s3"] {
        wait_shard_ready(client, ns, s, 1, op).await;
    }
    let api: Api<PrismPlugin> = Api::namespaced(client.clone(), ns);
    wait_for("pg 1.0.0 healthy everywhere", MINUTE, || {
        let api = api.clone();
        async move {
            let p = api.get("pg").await.map_err(|e| e.to_string())?;
            let st = p.status.unwrap_or_default();
            if st.last_healthy_version.as_deref() == Some("1.0.0") && st.installed {
                Ok(())
            } else {
                Err(format!("{st:?}"))
            }
        }
    })
    .await;
}

fn image_of(set: &StatefulSet) -> String {
    support::operator::container_image(set, "plugin-pg").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_upgrade_rolls_shard_by_shard_and_survives_a_restart() {
    let (client, ns) = crd_namespace("op-rollout").await;
    let mut op = Operator::start(&ns, &["--resync", "20s"]).await;
    three_shards(&client, &ns, &op).await;

    apply_yaml(&client, &ns, &plugin_yaml("pg", "1.1.0", 50100, "")).await;
    // Kill the operator (SIGKILL) the moment the rollout has started on the first shard.
    let api: Api<PrismPlugin> = Api::namespaced(client.clone(), &ns);
    let started = std::time::Instant::now();
    let at_kill = loop {
        let p = api.get("pg").await.unwrap();
        if let Some(r) = p
            .status
            .and_then(|s| s.rollout)
            .filter(|r| !r.in_progress.is_empty() || !r.completed.is_empty())
        {
            op.kill();
            break r;
        }
        assert!(
            started.elapsed() < 2 * MINUTE,
            "rollout never started:\n{}",
            op.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        at_kill
            .in_progress
            .iter()
            .map(|s| s.shard.as_str())
            .chain(at_kill.completed.iter().map(String::as_str))
            .collect::<Vec<_>>(),
        ["s1"]
    );
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    assert_eq!(
        image_of(&sts.get("prism-s3").await.unwrap()),
        "ghcr.io/prism/plugins/pg-plugin:1.0.0",
        "s3 must wait its turn"
    );
    // Nothing moves while no operator runs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = api
        .get("pg")
        .await
        .unwrap()
        .status
        .unwrap()
        .rollout
        .unwrap();
    assert_eq!(still.target_hash, at_kill.target_hash);
    assert!(
        still.completed.len() <= 1 && still.in_progress.iter().all(|s| s.shard == "s1"),
        "{still:?}"
    );
    let op = Operator::start(&ns, &["--resync", "20s"]).await;
    let (order, p) = watch_rollout(&client, &ns, "pg", &op, RolloutPhase::Complete).await;
    let r = p.status.as_ref().unwrap().rollout.clone().unwrap();
    assert_eq!(
        r.target_hash, at_kill.target_hash,
        "the restarted operator continued the same rollout"
    );
    assert_eq!(
        r.completed,
        ["s1", "s2", "s3"],
        "shards complete one at a time in name order"
    );
    assert_eq!(order.first().map(String::as_str), Some("s1"));
    assert_eq!(
        p.status.as_ref().unwrap().last_healthy_version.as_deref(),
        Some("1.1.0")
    );
    for s in ["s1", "s2", "s3"] {
        assert_eq!(
            image_of(&sts.get(&format!("prism-{s}")).await.unwrap()),
            "ghcr.io/prism/plugins/pg-plugin:1.1.0"
        );
    }
    let versions: Vec<(String, String)> = p
        .status
        .unwrap()
        .shard_versions
        .into_iter()
        .map(|v| (v.shard, v.version))
        .collect();
    assert_eq!(
        versions,
        [
            ("s1".into(), "1.1.0".into()),
            ("s2".into(), "1.1.0".into()),
            ("s3".into(), "1.1.0".into())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_version_is_rolled_back() {
    let (client, ns) = crd_namespace("op-rollback").await;
    let op = Operator::start(&ns, &["--resync", "20s"]).await;
    three_shards(&client, &ns, &op).await;

    // 2.0.0 asks for more CPU than any node has: its pods never schedule, never get ready.
    let broken = plugin_yaml(
        "pg",
        "1.2.0",
        50100,
        "    resources: {requests: {cpu: \"5000\"}}\n",
    );
    apply_yaml(&client, &ns, &broken).await;
    let (order, p) = watch_rollout(&client, &ns, "pg", &op, RolloutPhase::RolledBack).await;
    assert_eq!(
        order,
        ["s1"],
        "the rollout stops at the first unhealthy shard"
    );
    let st = p.status.unwrap();
    let r = st.rollout.unwrap();
    assert_eq!(r.failed_shard.as_deref(), Some("s1"));
    let degraded = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .unwrap();
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "RolledBack")
    );
    assert!(
        degraded.message.contains("shard s1 did not become healthy"),
        "{}",
        degraded.message
    );

    // Every shard is back on (or still on) the healthy version, and s1 is ready again.
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    for s in ["s1", "s2", "s3"] {
        let name = format!("prism-{s}");
        wait_for(&format!("{name} back on 1.0.0"), MINUTE, || {
            let sts = sts.clone();
            let name = name.clone();
            async move {
                let img = image_of(&sts.get(&name).await.map_err(|e| e.to_string())?);
                if img.ends_with(":1.0.0") {
                    Ok(())
                } else {
                    Err(img)
                }
            }
        })
        .await;
    }
    wait_shard_ready(&client, &ns, "s1", 1, &op).await;
    let events = support::process::http_get(&format!("http://127.0.0.1:{}/metrics", op.port))
        .await
        .unwrap();
    assert!(
        events.contains("controller_runtime_reconcile_total{controller=\"prismplugin\""),
        "{events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_writes() {
    let (client, ns) = crd_namespace("op-leader").await;
    let a = Operator::start(&ns, &["--leader-elect", "--identity", "replica-a"]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let b = Operator::start(&ns, &["--leader-elect", "--identity", "replica-b"]).await;
    apply_yaml(&client, &ns, &plugin_yaml("pg", "1.0.0", 50100, "")).await;
    apply_yaml(&client, &ns, &sized_shard_yaml("solo", 1, &["pg"], "")).await;
    wait_shard_ready(&client, &ns, "solo", 1, &a).await;
    let lease: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let holder = lease
        .get("prism-operator")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap();
    let (leader, standby) = if holder == "replica-a" {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert!(leader.writes().await > 0.0, "the leader applied the shard");
    assert_eq!(
        standby.writes().await,
        0.0,
        "the standby wrote nothing:\n{}",
        standby.metrics().await
    );
    assert!(
        standby
            .metrics()
            .await
            .contains("leader_election_master_status{name=\"prism-operator\"} 0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_operator_cleanly() {
    let (_client, ns) = crd_namespace("op-term").await;
    let mut op = Operator::start(&ns, &[]).await;
    let status = op.terminate(Duration::from_secs(10));
    let status =
        status.unwrap_or_else(|| panic!("no exit within 10 s of SIGTERM:\n{}", op.log_tail()));
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_columns_are_useful() {
    let (client, ns) = crd_namespace("op-columns").await;
    let op = Operator::start(&ns, &[]).await;
    apply_yaml(&client, &ns, &plugin_yaml("pg", "1.0.0", 50100, "")).await;
    apply_yaml(&client, &ns, &sized_shard_yaml("cols", 1, &["pg"], "")).await;
    wait_shard_ready(&client, &ns, "cols", 1, &op).await;
    // The table kubectl prints, as the API server renders it.
    for (plural, want) in [
        (
            "prismshards",
            vec![
                "Name",
                "Product",
                "Feature",
                "SLA",
                "Replicas",
                "Ready-Replicas",
                "Namespaces",
                "Ready",
                "RPS",
                "Age",
            ],
        ),
        (
            "prismplugins",
            vec![
                "Name",
                "Version",
                "Type",
                "Shards",
                "Namespaces",
                "Ready",
                "Age",
            ],
        ),
    ] {
        let req = http::Request::get(format!("/apis/prism.io/v1beta1/namespaces/{ns}/{plural}"))
            .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
            .body(Vec::new())
            .unwrap();
        let table: serde_json::Value = client.request(req).await.unwrap();
        let cols: Vec<&str> = table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(cols, want, "{plural}");
        let row = &table["rows"][0]["cells"];
        if plural == "prismshards" {
            assert_eq!(row[1], "cols");
            assert_eq!(row[5], 1, "ready replicas: {row}");
            assert_eq!(row[7], "True", "ready: {row}");
        } else {
            assert_eq!(row[1], "1.0.0");
            assert_eq!(row[2], "sidecar");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pause_annotation_stops_and_resumes_reconciling() {
    let (client, ns) = crd_namespace("op-pause").await;
    let op = Operator::start(&ns, &["--resync", "5s"]).await;
    apply_yaml(&client, &ns, &plugin_yaml("pg", "1.0.0", 50100, "")).await;
    apply_yaml(&client, &ns, &sized_shard_yaml("p", 1, &["pg"], "")).await;
    wait_shard_ready(&client, &ns, "p", 1, &op).await;

    let paused = sized_shard_yaml("p", 2, &["pg"], "").replace(
        "metadata: {name: p}",
        "metadata: {name: p, annotations: {prism.io/reconcile: paused}}",
    );
    apply_yaml(&client, &ns, &paused).await;
    let shards: Api<PrismShard> = Api::namespaced(client.clone(), &ns);
    wait_for("ReconciliationPaused condition", MINUTE, || {
        let shards = shards.clone();
        async move {
            let s = shards.get("p").await.map_err(|e| e.to_string())?;
            let paused = s
                .status
                .unwrap_or_default()
                .conditions
                .iter()
                .any(|c| c.type_ == "ReconciliationPaused" && c.status == "True");
            if paused {
                Ok(())
            } else {
                Err("not paused yet".into())
            }
        }
    })
    .await;
    // Two resyncs later the change has still not been applied.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    assert_eq!(sts.get("prism-p").await.unwrap().spec.replicas, Some(1));
    // Unpaused, it is.
    apply_yaml(&client, &ns, &sized_shard_yaml("p", 2, &["pg"], "")).await;
    wait_shard_ready(&client, &ns, "p", 2, &op).await;
    let s = shards.get("p").await.unwrap();
    assert!(
        !s.status
            .unwrap()
            .conditions
            .iter()
            .any(|c| c.type_ == "ReconciliationPaused")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_growth_is_carried_out_and_shrinking_refused() {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    use k8s_openapi::api::storage::v1::StorageClass;
    let (client, ns) = crd_namespace("op-storage").await;
    // Let the test cluster's default class expand volumes.
    let classes: Api<StorageClass> = Api::all(client.clone());
    let expand = serde_json::json!({"allowVolumeExpansion": true});
    classes
        .patch(
            "kwok-volume",
            &PatchParams::default(),
            &Patch::Merge(&expand),
        )
        .await
        .unwrap();

    let op = Operator::start(&ns, &["--resync", "10s"]).await;
    apply_yaml(&client, &ns, &plugin_yaml("pg", "1.0.0", 50100, "")).await;
    apply_yaml(
        &client,
        &ns,
        &sized_shard_yaml("v", 2, &["pg"], "  storage: {size: 1Gi}\n"),
    )
    .await;
    wait_shard_ready(&client, &ns, "v", 2, &op).await;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), &ns);
    let uids = |list: Vec<k8s_openapi::api::core::v1::Pod>| {
        let mut u: Vec<String> = list.into_iter().filter_map(|p| p.metadata.uid).collect();
        u.sort();
        u
    };
    let before = uids(
        pods.list(&kube::api::ListParams::default())
            .await
            .unwrap()
            .items,
    );

    apply_yaml(
        &client,
        &ns,
        &sized_shard_yaml("v", 2, &["pg"], "  storage: {size: 2Gi}\n"),
    )
    .await;
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    wait_for("claims and template grown to 2Gi", MINUTE, || {
        let (sts, pvcs) = (sts.clone(), pvcs.clone());
        async move {
            let s = sts.get("prism-v").await.map_err(|e| e.to_string())?;
            let vct = s.spec.volume_claim_templates.unwrap_or_default()[0]
                .spec
                .clone()
                .unwrap()
                .resources
                .unwrap()
                .requests
                .unwrap()["storage"]
                .0
                .clone();
            let claims: Vec<String> = pvcs
                .list(&kube::api::ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items
                .into_iter()
                .map(|p| {
                    p.spec.unwrap().resources.unwrap().requests.unwrap()["storage"]
                        .0
                        .clone()
                })
                .collect();
            if vct == "2Gi" && claims == ["2Gi", "2Gi"] {
                Ok(())
            } else {
                Err(format!("template {vct}, claims {claims:?}"))
            }
        }
    })
    .await;
    wait_shard_ready(&client, &ns, "v", 2, &op).await;
    let after = uids(
        pods.list(&kube::api::ListParams::default())
            .await
            .unwrap()
            .items,
    );
    assert_eq!(
        before, after,
        "the pods were orphaned and adopted, not restarted"
    );

    apply_yaml(
        &client,
        &ns,
        &sized_shard_yaml("v", 2, &["pg"], "  storage: {size: 1Gi}\n"),
    )
    .await;
    let shards: Api<PrismShard> = Api::namespaced(client.clone(), &ns);
    wait_for("shrinking refused", MINUTE, || {
        let shards = shards.clone();
        async move {
            let s = shards.get("v").await.map_err(|e| e.to_string())?;
            let c = s
                .status
                .unwrap_or_default()
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Degraded");
            match c {
                Some(c) if c.status == "True" && c.reason == "StorageShrinkRefused" => {
                    Ok(c.message)
                }
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    let s = sts.get("prism-v").await.unwrap();
    let vct = s.spec.volume_claim_templates.unwrap()[0]
        .spec
        .clone()
        .unwrap()
        .resources
        .unwrap()
        .requests
        .unwrap()["storage"]
        .0
        .clone();
    assert_eq!(vct, "2Gi", "the StatefulSet keeps its volumes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rival_field_manager_is_reported_not_fought() {
    let (client, ns) = crd_namespace("op-rival").await;
    let op = Operator::start(&ns, &["--resync", "5s"]).await;
    apply_yaml(&client, &ns, &plugin_yaml("pg", "1.0.0", 50100, "")).await;
    apply_yaml(&client, &ns, &sized_shard_yaml("r", 1, &["pg"], "")).await;
    let created = std::time::Instant::now();
    wait_shard_ready(&client, &ns, "r", 1, &op).await;
    // The rival arrives 55 s after the StatefulSet was first applied, so the conflict is under
    // way when a minute has passed since then (as on a busy machine, where becoming ready takes
    // that long): the operator must hold off for a minute from the conflict, not from its first
    // apply.
    if let Some(rest) = Duration::from_secs(55).checked_sub(created.elapsed()) {
        tokio::time::sleep(rest).await;
    }

    // Another controller keeps forcing its own value of a field the operator sets.
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let rival = {
        let sts = sts.clone();
        tokio::spawn(async move {
            let body = serde_json::json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "prism-r"}, "spec": {"revisionHistoryLimit": 3}});
            for _ in 0..60 {
                let _ = sts
                    .patch(
                        "prism-r",
                        &PatchParams::apply("rival").force(),
                        &Patch::Apply(&body),
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let shards: Api<PrismShard> = Api::namespaced(client.clone(), &ns);
    let message = wait_for("FieldConflict reported", MINUTE, || {
        let shards = shards.clone();
        async move {
            let s = shards.get("r").await.map_err(|e| e.to_string())?;
            let c = s
                .status
                .unwrap_or_default()
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Degraded");
            match c {
                Some(c) if c.reason == "FieldConflict" => Ok(c.message),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    assert!(
        message.contains("rival") && message.contains(".spec.revisionHistoryLimit"),
        "{message}"
    );
    // While the rival goes on, the operator does not keep re-applying.
    let before = op.writes_by_kind().await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after = op.writes_by_kind().await;
    rival.abort();
    let during: Vec<(String, f64)> = after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d > 0.0)
        .collect();
    let total: f64 = during.iter().map(|(_, d)| d).sum();
    assert!(
        total <= 2.0,
        "{total} writes during 8 s of conflict: {during:?}\n{}",
        op.log_tail()
    );
}
