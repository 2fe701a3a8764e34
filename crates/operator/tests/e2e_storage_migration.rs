//! Upgrading from the release that stored `v1alpha1` (this repository's history, installed with
//! its own chart) to this one: objects written before the upgrade are read and written as
//! `v1beta1` after it; the operator moves every stored object to `v1beta1` and trims each CRD's
//! `status.storedVersions`, surviving a SIGKILL in the middle; and nothing is lost.

use prism_testing as support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::ApiResource;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use support::cluster::{cluster, test_namespace};
use support::helm::helm;
use support::operator::{Operator, webhook_args, webhooks_to_loopback};
use support::paths;
use support::process::free_port;
use support::wait_for;

/// The last commit whose chart stored `v1alpha1` only.
const PREVIOUS_RELEASE: &str = "2091c7d274c0afe2a3d74bb2b27ee00bc99b230e";

const KINDS: [(&str, &str); 3] = [
    ("PrismPlugin", "prismplugins"),
    ("PrismShard", "prismshards"),
    ("PrismNamespace", "prismnamespaces"),
];

fn api(client: &Client, ns: &str, version: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let resource = ApiResource {
        group: "prism.io".into(),
        version: version.into(),
        api_version: format!("prism.io/{version}"),
        kind: kind.into(),
        plural: plural.into(),
    };
    Api::namespaced_with(client.clone(), ns, &resource)
}

/// The previous release's chart, from git history.
fn previous_chart(into: &std::path::Path) -> std::path::PathBuf {
    let archive = Command::new("git")
        .args([
            "archive",
            "--format=tar",
            PREVIOUS_RELEASE,
            "charts/prism-operator",
        ])
        .current_dir(paths::root())
        .output()
        .expect("git runs");
    assert!(
        archive.status.success(),
        "the previous release is in this repository's history (a full clone): {}",
        String::from_utf8_lossy(&archive.stderr)
    );
    let mut tar = Command::new("tar")
        .args(["-x", "-C"])
        .arg(into)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(tar.stdin.as_mut().unwrap(), &archive.stdout).unwrap();
    assert!(tar.wait().unwrap().success());
    into.join("charts/prism-operator")
}

/// Objects in `ns` as v1alpha1: plugins, shards (some autoscaled with replicas, which v1beta1
/// cannot hold) and namespaces.
fn fleet(ns: &str, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(
            json!({"apiVersion": "prism.io/v1alpha1", "kind": "PrismPlugin",
            "metadata": {"name": format!("plugin-{i}"), "namespace": ns},
            "spec": {"version": "1.2.0", "source": {"registry": "r", "image": "pg:1.2.0"},
                     "deployment": {"type": "sidecar"}}}),
        );
        let mut spec = json!({"product": format!("p{i}"), "replicas": 3});
        if i % 2 == 0 {
            spec["autoscaling"] = json!({"enabled": true, "minReplicas": 2, "maxReplicas": 5,
                                         "targetCPUUtilization": 70});
        }
        out.push(
            json!({"apiVersion": "prism.io/v1alpha1", "kind": "PrismShard",
            "metadata": {"name": format!("shard-{i}"), "namespace": ns}, "spec": spec}),
        );
        out.push(
            json!({"apiVersion": "prism.io/v1alpha1", "kind": "PrismNamespace",
            "metadata": {"name": format!("ns-{i}"), "namespace": ns},
            "spec": {"backend": "postgres", "pattern": "keyvalue",
                     "shard": {"product": format!("p{i}")}}}),
        );
    }
    out
}

/// Every object of `ns` read as `version`: kind/name → spec. Fails if any read fails.
async fn specs(
    client: &Client,
    ns: &str,
    version: &str,
) -> Result<BTreeMap<String, Value>, String> {
    let mut out = BTreeMap::new();
    for (kind, plural) in KINDS {
        let list = api(client, ns, version, kind, plural)
            .list(&ListParams::default())
            .await
            .map_err(|e| format!("{kind}: {e}"))?;
        for o in list.items {
            out.insert(format!("{kind}/{}", o.name_any()), o.data["spec"].clone());
        }
    }
    Ok(out)
}

/// Every object of `names` read from etcd (a GET) as `version`: kind/name → spec.
async fn stored(
    client: &Client,
    ns: &str,
    version: &str,
    names: &BTreeMap<String, Value>,
) -> Result<BTreeMap<String, Value>, String> {
    let mut out = BTreeMap::new();
    for key in names.keys() {
        let (kind, name) = key.split_once('/').unwrap();
        let plural = KINDS.iter().find(|(k, _)| *k == kind).unwrap().1;
        let object = api(client, ns, version, kind, plural)
            .get(name)
            .await
            .map_err(|e| format!("{key}: {e}"))?;
        out.insert(key.clone(), object.data["spec"].clone());
    }
    Ok(out)
}

async fn stored_versions(client: &Client) -> BTreeMap<String, Vec<String>> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut out = BTreeMap::new();
    for crd in prism_api::crds() {
        let live = crds.get(&crd.name_any()).await.unwrap();
        out.insert(
            crd.name_any(),
            live.status
                .and_then(|s| s.stored_versions)
                .unwrap_or_default(),
        );
    }
    out
}

async fn operator(release_ns: &str, port: u16) -> Operator {
    let kubeconfig = cluster().await.kubeconfig_path();
    let mut args = vec!["--lease-namespace".to_string(), release_ns.to_string()];
    args.extend(webhook_args(
        release_ns,
        port,
        "prism-operator-webhook-cert",
        "prism-operator",
    ));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Operator::start_with_kubeconfig(&kubeconfig, &args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_moves_storage_to_v1beta1_and_loses_nothing() {
    let c = cluster().await;
    let kubeconfig = c.kubeconfig_path();
    let client = c.client();
    let (_, release_ns) = test_namespace("prism-system").await;
    let (_, ns) = test_namespace("fleet").await;
    let dir = tempfile::tempdir().unwrap();
    let old_chart = previous_chart(dir.path());
    let release = [
        "prism-operator",
        "--namespace",
        &release_ns,
        "--set",
        "replicaCount=0",
    ];
    helm(
        &[
            &["install"],
            &release[..1],
            &[old_chart.to_str().unwrap()],
            &release[1..],
        ]
        .concat(),
        &kubeconfig,
    );
    assert!(
        stored_versions(&client)
            .await
            .values()
            .all(|v| v == &["v1alpha1"])
    );

    // Written by users of the previous release.
    let objects = fleet(&ns, 40);
    for o in &objects {
        let (kind, plural) = KINDS.iter().find(|(k, _)| o["kind"] == *k).unwrap();
        let o: DynamicObject = serde_json::from_value(o.clone()).unwrap();
        api(&client, &ns, "v1alpha1", kind, plural)
            .create(&Default::default(), &o)
            .await
            .unwrap();
    }
    let before = specs(&client, &ns, "v1alpha1").await.unwrap();
    assert_eq!(before.len(), objects.len());

    helm(
        &[
            &["upgrade"],
            &release[..1],
            &["charts/prism-operator"],
            &release[1..],
        ]
        .concat(),
        &kubeconfig,
    );
    let port = free_port();
    webhooks_to_loopback(&client, "prism-operator", port).await;
    // No webhook yet: objects stored as v1alpha1 cannot be read as v1beta1 (what proves the
    // storage version at the end).
    let unconverted = stored(&client, &ns, "v1beta1", &before).await;
    assert!(
        unconverted
            .as_ref()
            .is_err_and(|e| e.contains("conversion webhook")),
        "{unconverted:?}"
    );
    let mut op = operator(&release_ns, port).await;

    // Read and written as v1beta1 after the upgrade; still v1alpha1 to those who ask.
    let as_beta = wait_for("v1beta1 reads", Duration::from_secs(60), || {
        specs(&client, &ns, "v1beta1")
    })
    .await;
    assert_eq!(as_beta.len(), before.len());
    assert!(
        as_beta["PrismShard/shard-0"].get("replicas").is_none(),
        "autoscaled: the autoscaler owns replicas"
    );
    assert_eq!(as_beta["PrismShard/shard-1"]["replicas"], 3);

    // SIGKILL while objects are being rewritten: one kind done, the others not yet.
    wait_for("one CRD trimmed", Duration::from_secs(120), || async {
        let stored = stored_versions(&client).await;
        let trimmed = stored.values().filter(|v| *v == &["v1beta1"]).count();
        match trimmed {
            0 => Err(format!("{stored:?}")),
            _ => Ok(()),
        }
    })
    .await;
    op.kill();
    let at_kill = stored_versions(&client).await;
    println!("killed with storedVersions {at_kill:?}");
    assert!(
        at_kill
            .values()
            .any(|v| v.contains(&"v1alpha1".to_string())),
        "killed in the middle: not every CRD is trimmed yet"
    );

    let op = operator(&release_ns, port).await;
    wait_for(
        "storedVersions trimmed",
        Duration::from_secs(120),
        || async {
            let stored = stored_versions(&client).await;
            match stored.values().all(|v| v == &["v1beta1"]) {
                true => Ok(()),
                false => Err(format!("{stored:?}")),
            }
        },
    )
    .await;
    let after_alpha = specs(&client, &ns, "v1alpha1").await.unwrap();
    assert_eq!(after_alpha, before, "every object, every field, as written");
    drop(op);

    // With no webhook, reading from etcd in v1beta1 needs no conversion only for objects
    // stored as v1beta1: every one is. (Lists may come from the API server's watch cache, which
    // holds objects converted while the webhook answered; a GET reads etcd.)
    let stored_beta = stored(&client, &ns, "v1beta1", &before)
        .await
        .expect("all stored as v1beta1");
    assert_eq!(stored_beta, as_beta);
    let loud = stored(&client, &ns, "v1alpha1", &before).await;
    assert!(
        loud.as_ref()
            .is_err_and(|e| e.contains("conversion webhook")),
        "{loud:?}"
    );
}
