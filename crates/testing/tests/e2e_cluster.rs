//! End-to-end checks of the test control plane itself (see `prism_testing::cluster`): the
//! pinned Kubernetes version is served, workloads with persistent volumes become ready on the
//! kwok node, kube-controller-manager garbage-collects dependents, and Pod Security admission
//! is enforced.

use prism_testing as support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt as _};
use serde_json::json;
use support::cluster::{self, NamespaceOptions};
use support::wait_for;

const TIMEOUT: Duration = Duration::from_secs(120);
const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10";

/// The k8s.io/kubernetes version pinned by `tools/cluster/k8s/go.mod`.
fn pinned_kubernetes_version() -> &'static str {
    include_str!("../../../tools/cluster/k8s/go.mod")
        .lines()
        .find_map(|line| {
            let mut words = line
                .trim()
                .trim_start_matches("require ")
                .split_whitespace();
            (words.next() == Some("k8s.io/kubernetes")).then(|| words.next())?
        })
        .expect("tools/cluster/k8s/go.mod requires k8s.io/kubernetes")
}

/// A pod template that satisfies the `restricted` Pod Security Standard.
fn restricted_pod_template(app: &str) -> serde_json::Value {
    json!({
        "metadata": { "labels": { "app": app } },
        "spec": {
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": 65532,
                "seccompProfile": { "type": "RuntimeDefault" }
            },
            "containers": [{
                "name": "main",
                "image": PAUSE_IMAGE,
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "capabilities": { "drop": ["ALL"] }
                }
            }]
        }
    })
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": restricted_pod_template(name)
        }
    }))
    .expect("valid Deployment")
}

async fn wait_deployment_available(client: &Client, ns: &str, name: &str, replicas: i32) {
    let api = &Api::<Deployment>::namespaced(client.clone(), ns);
    wait_for(
        &format!("Deployment {ns}/{name} available"),
        TIMEOUT,
        move || async move {
            let d = api.get(name).await.map_err(|e| e.to_string())?;
            let generation = d.metadata.generation;
            let status = d.status.unwrap_or_default();
            let available = status.conditions.iter().flatten().any(|c| {
                c.type_.as_deref() == Some("Available") && c.status.as_deref() == Some("True")
            });
            if status.observed_generation >= generation
                && status.available_replicas == Some(replicas)
                && status.updated_replicas == Some(replicas)
                && available
            {
                Ok(())
            } else {
                Err(format!("{status:?}"))
            }
        },
    )
    .await;
}

#[tokio::test]
async fn apiserver_reports_the_pinned_version() {
    let client = cluster::client().await;
    let info = client.apiserver_version().await.expect("GET /version");
    let pinned = pinned_kubernetes_version();
    assert_eq!(info.git_version, pinned);
    assert_eq!(info.major, "1");
    assert_eq!(Some(info.minor.as_str()), pinned.split('.').nth(1));
    cluster::cluster().await.assert_running();
}

#[tokio::test]
async fn deployment_and_statefulset_with_volumes_become_ready() {
    let (client, ns) =
        cluster::test_namespace_with("workloads", &NamespaceOptions::restricted()).await;

    Api::<Deployment>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &deployment("web", 2))
        .await
        .expect("create Deployment");

    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": { "name": "db" },
        "spec": {
            "replicas": 3,
            "serviceName": "db",
            "selector": { "matchLabels": { "app": "db" } },
            "template": restricted_pod_template("db"),
            "volumeClaimTemplates": [{
                "metadata": { "name": "data" },
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": { "requests": { "storage": "1Gi" } }
                }
            }]
        }
    }))
    .expect("valid StatefulSet");
    let statefulsets = &Api::<StatefulSet>::namespaced(client.clone(), &ns);
    statefulsets
        .create(&PostParams::default(), &sts)
        .await
        .expect("create StatefulSet");

    wait_deployment_available(&client, &ns, "web", 2).await;
    wait_for(
        &format!("StatefulSet {ns}/db ready"),
        TIMEOUT,
        move || async move {
            let s = statefulsets.get("db").await.map_err(|e| e.to_string())?;
            let status = s.status.unwrap_or_default();
            if status.ready_replicas == Some(3) && status.current_replicas == Some(3) {
                Ok(())
            } else {
                Err(format!("{status:?}"))
            }
        },
    )
    .await;

    // Every claim is Bound (kwok's provisioner) through the default StorageClass.
    let claims = &Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns);
    let bound = wait_for("3 PVCs Bound", TIMEOUT, move || async move {
        let list = claims
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        let phases: Vec<_> = list
            .items
            .iter()
            .map(|c| {
                (
                    c.name_any(),
                    c.status.as_ref().and_then(|s| s.phase.clone()),
                )
            })
            .collect();
        if list.items.len() == 3 && phases.iter().all(|(_, p)| p.as_deref() == Some("Bound")) {
            Ok(list.items)
        } else {
            Err(format!("{phases:?}"))
        }
    })
    .await;
    let mut names: Vec<_> = bound.iter().map(|c| c.name_any()).collect();
    names.sort();
    assert_eq!(names, ["data-db-0", "data-db-1", "data-db-2"]);
    let volumes = Api::<PersistentVolume>::all(client.clone());
    for claim in &bound {
        let spec = claim.spec.as_ref().expect("PVC spec");
        assert_eq!(spec.storage_class_name.as_deref(), Some("kwok-volume"));
        let pv_name = spec
            .volume_name
            .as_deref()
            .expect("bound PVC names its volume");
        let pv = volumes.get(pv_name).await.expect("bound PV exists");
        let claim_ref = pv.spec.and_then(|s| s.claim_ref).expect("PV claimRef");
        assert_eq!(claim_ref.name.as_deref(), Some(claim.name_any().as_str()));
        assert_eq!(claim_ref.namespace.as_deref(), Some(ns.as_str()));
    }

    // Pods were scheduled onto the kwok node and marked Ready by kwok.
    let pods = Api::<Pod>::namespaced(client.clone(), &ns)
        .list(&ListParams::default().labels("app=db"))
        .await
        .expect("list pods");
    assert_eq!(pods.items.len(), 3);
    for pod in &pods.items {
        let spec = pod.spec.as_ref().expect("pod spec");
        assert_eq!(spec.node_name.as_deref(), Some(cluster::NODE_NAME));
        let status = pod.status.as_ref().expect("pod status");
        assert_eq!(
            status.phase.as_deref(),
            Some("Running"),
            "{}",
            pod.name_any()
        );
    }
    cluster::cluster().await.assert_running();
}

#[tokio::test]
async fn deleting_an_owner_garbage_collects_its_dependents() {
    let (client, ns) = cluster::test_namespace("gc").await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment("owner", 2))
        .await
        .expect("create Deployment");
    wait_deployment_available(&client, &ns, "owner", 2).await;

    let replicasets = &Api::<ReplicaSet>::namespaced(client.clone(), &ns);
    let pods = &Api::<Pod>::namespaced(client.clone(), &ns);
    let selector = &ListParams::default().labels("app=owner");
    let rs = replicasets.list(selector).await.expect("list ReplicaSets");
    assert_eq!(rs.items.len(), 1, "the Deployment owns one ReplicaSet");
    let owner_uid = deployments.get("owner").await.expect("get").uid();
    let rs_owner = rs.items[0]
        .owner_references()
        .first()
        .map(|o| o.uid.clone());
    assert_eq!(rs_owner, owner_uid);
    assert_eq!(pods.list(selector).await.expect("list Pods").items.len(), 2);

    // Background propagation: the apiserver deletes only the owner; the garbage collector in
    // kube-controller-manager deletes the ReplicaSet and its pods (kwok finalizes the pods).
    deployments
        .delete("owner", &DeleteParams::background())
        .await
        .expect("delete Deployment");
    wait_for(
        "ReplicaSet and Pods garbage-collected",
        TIMEOUT,
        move || async move {
            let rs = replicasets
                .list(selector)
                .await
                .map_err(|e| e.to_string())?;
            let pods = pods.list(selector).await.map_err(|e| e.to_string())?;
            if rs.items.is_empty() && pods.items.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} ReplicaSets, pods {:?}",
                    rs.items.len(),
                    pods.items.iter().map(|p| p.name_any()).collect::<Vec<_>>()
                ))
            }
        },
    )
    .await;
    cluster::cluster().await.assert_running();
}

#[tokio::test]
async fn pod_security_admission_rejects_privileged_pods_in_restricted_namespaces() {
    let (client, ns) = cluster::test_namespace_with("psa", &NamespaceOptions::restricted()).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let privileged: Pod = serde_json::from_value(json!({
        "metadata": { "name": "privileged" },
        "spec": { "containers": [{
            "name": "main",
            "image": PAUSE_IMAGE,
            "securityContext": { "privileged": true }
        }]}
    }))
    .expect("valid Pod");
    let err = pods
        .create(&PostParams::default(), &privileged)
        .await
        .expect_err("a privileged pod must be rejected in a restricted namespace");
    let message = err.to_string();
    assert!(message.contains("violates PodSecurity"), "{message}");

    let compliant: Pod = serde_json::from_value(json!({
        "metadata": { "name": "compliant" },
        "spec": restricted_pod_template("compliant")["spec"]
    }))
    .expect("valid Pod");
    pods.create(&PostParams::default(), &compliant)
        .await
        .expect("a restricted-compliant pod is admitted");
}

/// A webhook behind a Service (whose address is made up and must never be dialed) fails at once:
/// the API server reaches the cluster only through the loopback-only egress proxy, which refuses
/// the tunnel and writes it down.
#[tokio::test]
async fn the_api_server_never_dials_a_service_address() {
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
    use k8s_openapi::api::core::v1::{ConfigMap, Service};
    let (client, ns) = cluster::test_namespace("egress").await;
    let services = Api::<Service>::namespaced(client.clone(), &ns);
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "hook"},
        "spec": {"ports": [{"port": 443, "targetPort": 9443}], "selector": {"app": "none"}}
    }))
    .unwrap();
    let service = services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    let address = service.spec.unwrap().cluster_ip.unwrap();
    let configs = Api::<ValidatingWebhookConfiguration>::all(client.clone());
    let name = format!("egress-{ns}");
    let config: ValidatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": name},
        "webhooks": [{
            "name": "egress.prism.test",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "timeoutSeconds": 5,
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}],
            "clientConfig": {"service": {"namespace": ns, "name": "hook", "port": 443}}
        }]
    }))
    .unwrap();
    configs
        .create(&PostParams::default(), &config)
        .await
        .unwrap();
    let maps = Api::<ConfigMap>::namespaced(client.clone(), &ns);
    let map: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "m"}})).unwrap();
    let log = cluster::cluster().await.dir().join("egress-refused.log");
    let refused = wait_for("the webhook call to be refused", TIMEOUT, || async {
        match maps.create(&PostParams::default(), &map).await {
            Err(e) if e.to_string().contains("failed calling webhook") => {
                Ok(std::fs::read_to_string(&log).unwrap_or_default())
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    configs
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        refused.contains(&format!("CONNECT {address}:443")),
        "{refused}"
    );
}
