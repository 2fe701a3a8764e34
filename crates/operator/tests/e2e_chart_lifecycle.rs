//! The chart over its life in a cluster: `helm upgrade` upgrades the CRDs (they are templates,
//! not `crds/` files) without touching existing objects; `helm uninstall` removes the operator
//! and keeps every CRD and custom resource; the operator's replicas survive a drain of every
//! node (PodDisruptionBudget, spread over nodes); the optional ServiceMonitor is valid for
//! prometheus-operator's CRD, taken from its Go module.

use prism_testing as support;

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DynamicObject, EvictParams, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use prism_api::PrismShard;
use serde_json::{Value, json};
use support::cluster::{NamespaceOptions, cluster, test_namespace, test_namespace_with};
use support::helm::{documents, helm, upstream_crds};
use support::operator::{apply_yaml, example, wait_crd_established};
use support::{paths, wait_for};

const PRISM_CRDS: [&str; 3] = [
    "prismshards.prism.io",
    "prismplugins.prism.io",
    "prismnamespaces.prism.io",
];

/// A copy of the chart whose PrismShard CRD has one more spec field, `upgradeProbe`.
fn chart_with_new_field(dir: &Path) -> std::path::PathBuf {
    let chart = dir.join("prism-operator");
    let src = paths::root().join("charts/prism-operator");
    copy_dir(&src, &chart);
    let file = chart.join("files/crds/prism.io_prismshards.yaml");
    let mut crd: Value = serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    for version in crd["spec"]["versions"].as_array_mut().unwrap() {
        let spec = &mut version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        assert!(spec.is_object(), "the PrismShard CRD has spec properties");
        spec["upgradeProbe"] = json!({"type": "string", "description": "Added by the upgrade."});
    }
    std::fs::write(&file, serde_yaml::to_string(&crd).unwrap()).unwrap();
    chart
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Sets `spec.upgradeProbe` on shard `ns/name` with a merge patch; what the API server kept.
async fn probe(client: &Client, ns: &str, name: &str) -> Option<String> {
    let raw: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<PrismShard>(&()));
    let patch = json!({"spec": {"upgradeProbe": "served"}});
    let obj = raw
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    obj.data["spec"]["upgradeProbe"]
        .as_str()
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_upgrades_the_crds_and_uninstall_keeps_them_and_every_resource() {
    let kubeconfig = cluster().await.kubeconfig_path();
    let (admin, release_ns) =
        test_namespace_with("prism-system", &NamespaceOptions::restricted()).await;
    // No operator runs here to answer a validating webhook (the chart's operator pods are
    // kwok's); objects are written in the stored version, so no conversion is needed either.
    let release = ["prism-operator", "--namespace", &release_ns];
    let values = ["--set", "webhook.validating.enabled=false"];
    helm(
        &[
            &["install"],
            &release[..],
            &values,
            &["charts/prism-operator"],
        ]
        .concat(),
        &kubeconfig,
    );
    for crd in PRISM_CRDS {
        wait_crd_established(&admin, crd).await;
    }

    let (_, fleet_ns) = test_namespace("fleet").await;
    apply_yaml(&admin, &fleet_ns, &example("fleet/shards.yaml")).await;
    let shards: Api<PrismShard> = Api::namespaced(admin.clone(), &fleet_ns);
    let before: Vec<PrismShard> = shards.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(before.len(), 4);
    let probed = before[0].metadata.name.clone().unwrap();
    assert_eq!(
        probe(&admin, &fleet_ns, &probed).await,
        None,
        "the installed CRD prunes a field it does not know"
    );

    // Upgrade to a chart whose CRD has the field: it is served at once.
    let dir = tempfile::tempdir().unwrap();
    let chart = chart_with_new_field(dir.path());
    helm(
        &[
            &["upgrade"],
            &release[..],
            &values,
            &[chart.to_str().unwrap()],
        ]
        .concat(),
        &kubeconfig,
    );
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let upgraded = serde_json::to_value(crds.get("prismshards.prism.io").await.unwrap()).unwrap();
    for version in upgraded["spec"]["versions"].as_array().unwrap() {
        assert!(
            version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
                ["upgradeProbe"]
                .is_object(),
            "helm upgrade upgraded the CRD ({})",
            version["name"]
        );
    }
    wait_for("the new field served", Duration::from_secs(30), || async {
        match probe(&admin, &fleet_ns, &probed).await {
            Some(v) if v == "served" => Ok(()),
            other => Err(format!("spec.upgradeProbe read back as {other:?}")),
        }
    })
    .await;
    // Every other object is untouched: same resourceVersion, same spec.
    for old in &before[1..] {
        let name = old.metadata.name.as_deref().unwrap();
        let now = shards.get(name).await.unwrap();
        assert_eq!(now.metadata.resource_version, old.metadata.resource_version);
        assert_eq!(
            serde_json::to_value(&now.spec).unwrap(),
            serde_json::to_value(&old.spec).unwrap()
        );
    }

    // Uninstall: the operator goes, the CRDs and every resource stay.
    helm(&[&["uninstall"], &release[..]].concat(), &kubeconfig);
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &release_ns);
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), &release_ns);
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    wait_for("the operator removed", Duration::from_secs(60), || async {
        let left = (
            deployments
                .get_opt("prism-operator")
                .await
                .map_err(|e| e.to_string())?,
            accounts
                .get_opt("prism-operator")
                .await
                .map_err(|e| e.to_string())?,
            roles
                .get_opt("prism-operator")
                .await
                .map_err(|e| e.to_string())?,
        );
        match left {
            (None, None, None) => Ok(()),
            other => Err(format!("still there: {other:?}")),
        }
    })
    .await;
    for crd in PRISM_CRDS {
        assert!(crds.get_opt(crd).await.unwrap().is_some(), "{crd} kept");
    }
    // Listed untyped: the typed PrismShard of this build rejects the field it does not know.
    let raw: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        &fleet_ns,
        &ApiResource::erase::<PrismShard>(&()),
    );
    let after = raw.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(after.len(), before.len(), "every PrismShard kept");
    assert_eq!(
        probe(&admin, &fleet_ns, &probed).await.as_deref(),
        Some("served")
    );

    // The kept CRDs still carry the release's ownership: installing again adopts them.
    helm(
        &[
            &["install"],
            &release[..],
            &values,
            &["charts/prism-operator"],
        ]
        .concat(),
        &kubeconfig,
    );
    assert_eq!(
        raw.list(&ListParams::default()).await.unwrap().items.len(),
        4
    );
}

async fn set_unschedulable(nodes: &Api<Node>, name: &str, cordoned: bool) {
    nodes
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"unschedulable": cordoned}})),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_every_node_leaves_one_operator_replica() {
    let c = cluster().await;
    c.add_node("kwok-node-1").await;
    let kubeconfig = c.kubeconfig_path();
    let (admin, ns) = test_namespace_with("prism-drain", &NamespaceOptions::restricted()).await;
    // The other test's release owns the CRDs and the ClusterRole named after the chart.
    helm(
        &[
            "install",
            "drain",
            "charts/prism-operator",
            "--namespace",
            &ns,
            "--set",
            "crds.install=false",
            "--set",
            "webhook.validating.enabled=false",
        ],
        &kubeconfig,
    );
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(admin.clone(), &ns);
    let selector = ListParams::default().labels("app.kubernetes.io/name=prism-operator");
    // Both replicas running, on different nodes, and the budget computed.
    let placed = wait_for(
        "two ready replicas and an enforced budget",
        Duration::from_secs(120),
        || {
            let (pods, pdbs, selector) = (pods.clone(), pdbs.clone(), selector.clone());
            async move {
                let list = pods.list(&selector).await.map_err(|e| e.to_string())?.items;
                let ready: Vec<(String, String)> = list
                    .iter()
                    .filter(|p| {
                        p.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| {
                                c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                    })
                    .map(|p| {
                        let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
                        (p.metadata.name.clone().unwrap(), node.unwrap_or_default())
                    })
                    .collect();
                let pdb = pdbs
                    .get("drain-prism-operator")
                    .await
                    .map_err(|e| e.to_string())?;
                let allowed = pdb.status.as_ref().and_then(|s| s.disruptions_allowed);
                if ready.len() == 2 && list.len() == 2 && allowed == Some(1) {
                    Ok(ready)
                } else {
                    Err(format!(
                        "ready pods {ready:?} of {}, disruptions allowed {allowed:?}",
                        list.len()
                    ))
                }
            }
        },
    )
    .await;
    assert_ne!(
        placed[0].1, placed[1].1,
        "the two replicas share a node: {placed:?}"
    );

    // Drain both nodes at once: cordon both, then evict each replica.
    let nodes: Api<Node> = Api::all(admin.clone());
    for (_, node) in &placed {
        set_unschedulable(&nodes, node, true).await;
    }
    // A client that reports a refused eviction (429) at once: kube's default retries them.
    let mut config = c.config().clone();
    config.default_retry = false;
    let evictions: Api<Pod> = Api::namespaced(Client::try_from(config).unwrap(), &ns);
    let first = evictions.evict(&placed[0].0, &EvictParams::default()).await;
    let second = evictions.evict(&placed[1].0, &EvictParams::default()).await;
    for (_, node) in &placed {
        set_unschedulable(&nodes, node, false).await;
    }
    first.expect("the first replica may be evicted");
    match second {
        Err(kube::Error::Api(e)) if e.code == 429 => {
            assert!(e.message.contains("disruption budget"), "{}", e.message)
        }
        other => panic!("evicting the second replica must be refused, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_monitor_is_valid_for_prometheus_operator() {
    let kubeconfig = cluster().await.kubeconfig_path();
    let admin = support::cluster::client().await;
    // Off by default.
    let docs = documents(&helm(
        &["template", "prism-operator", "charts/prism-operator"],
        &kubeconfig,
    ));
    assert!(!docs.iter().any(|d| d["kind"] == "ServiceMonitor"));

    // prometheus-operator's own CRD, from its Go module.
    let file = upstream_crds().join("monitoring.coreos.com_servicemonitors.yaml");
    let crd: CustomResourceDefinition =
        serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    crds.patch(
        "servicemonitors.monitoring.coreos.com",
        &PatchParams::apply("prism-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();
    wait_crd_established(&admin, "servicemonitors.monitoring.coreos.com").await;

    let (_, ns) = test_namespace("monitoring").await;
    let docs = documents(&helm(
        &[
            "template",
            "prism-operator",
            "charts/prism-operator",
            "--namespace",
            &ns,
            "--set",
            "serviceMonitor.enabled=true",
            "--set",
            "serviceMonitor.labels.release=prometheus",
        ],
        &kubeconfig,
    ));
    let monitor = docs
        .iter()
        .find(|d| d["kind"] == "ServiceMonitor")
        .expect("a ServiceMonitor when enabled");
    // Strict validation: a field the CRD does not define is an error, not silently dropped.
    let gvk = GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor");
    let api: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), &ns, &ApiResource::from_gvk(&gvk));
    let name = monitor["metadata"]["name"].as_str().unwrap();
    let strict = PatchParams::apply("prism-tests").validation_strict();
    let stored = api
        .patch(name, &strict, &Patch::Apply(monitor))
        .await
        .unwrap_or_else(|e| panic!("the ServiceMonitor is rejected: {e}"));
    assert_eq!(stored.data["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(stored.metadata.labels.unwrap()["release"], "prometheus");
    // And the negative: strict validation does catch a misspelt field.
    let mut bad = monitor.clone();
    bad["spec"]["endpoints"][0]["intervall"] = json!("30s");
    assert!(api.patch(name, &strict, &Patch::Apply(&bad)).await.is_err());

    // It selects the chart's metrics Service by its labels and port name.
    let service = docs
        .iter()
        .find(|d| d["kind"] == "Service")
        .expect("the metrics Service");
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&service["metadata"]["labels"][k], v, "Service label {k}");
    }
    assert_eq!(service["spec"]["ports"][0]["name"], "metrics");
    assert_eq!(monitor["spec"]["namespaceSelector"]["matchNames"][0], ns);
}
