//! The renderer's output against a real API server: the CRDs install and become Established,
//! every rendered example object passes a server-side dry-run apply, invalid resources are
//! rejected with the same OpenAPI and CEL messages `prism-render` gives offline, and a rendered
//! shard applied for real in a namespace enforcing the `restricted` Pod Security level reaches
//! its ready replicas.

use prism_testing as support;

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use support::cluster::{NamespaceOptions, test_namespace_with};
use support::operator::install_crds;
use support::wait_for;

/// The workspace's `prism-render`, built with the workspace.
fn render() -> std::path::PathBuf {
    support::process::cargo_binary("prism-render", "prism-render")
}

/// `prism-render render` of an example directory, as JSON objects, moved into `namespace`.
fn rendered(dir: &str, namespace: &str) -> Vec<serde_json::Value> {
    let out = Command::new(render())
        .args(["render", "-n", namespace, dir])
        .current_dir(support::paths::root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)
        .unwrap()
        .replace("namespace: prism\n", &format!("namespace: {namespace}\n"));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

fn api_for(client: &Client, obj: &serde_json::Value) -> Api<DynamicObject> {
    let (group, version) = obj["apiVersion"]
        .as_str()
        .unwrap()
        .split_once('/')
        .unwrap_or(("", obj["apiVersion"].as_str().unwrap()));
    let kind = obj["kind"].as_str().unwrap();
    let plural = format!("{}s", kind.to_ascii_lowercase());
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), &plural);
    Api::namespaced_with(
        client.clone(),
        obj["metadata"]["namespace"].as_str().unwrap(),
        &ar,
    )
}

async fn apply(client: &Client, obj: &serde_json::Value, dry_run: bool) -> Result<(), String> {
    let mut params = PatchParams::apply("prism-tests").force();
    params.dry_run = dry_run;
    api_for(client, obj)
        .patch(
            obj["metadata"]["name"].as_str().unwrap(),
            &params,
            &Patch::Apply(obj),
        )
        .await
        .map(drop)
        .map_err(|e| match e {
            kube::Error::Api(s) => s.message,
            other => other.to_string(),
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rendered_example_object_passes_a_server_side_dry_run() {
    let (client, ns) = test_namespace_with("dry-run", &NamespaceOptions::restricted()).await;
    install_crds(&client).await;
    let mut checked = 0;
    for dir in [
        "examples/fleet",
        "examples/adr-037",
        "examples/upstream-plugin",
    ] {
        for obj in rendered(dir, &ns) {
            let id = format!("{} {}", obj["kind"], obj["metadata"]["name"]);
            apply(&client, &obj, true)
                .await
                .unwrap_or_else(|e| panic!("{dir}: {id} rejected: {e}"));
            checked += 1;
        }
    }
    assert!(checked >= 50, "checked {checked} objects");
}

/// A resource that both the API server and `prism-render validate` must reject, and the message
/// each must give.
struct Invalid {
    yaml: &'static str,
    server_says: &'static str,
    offline_says: &'static str,
}

const INVALID: &[Invalid] = &[
    Invalid {
        yaml: "apiVersion: prism.io/v1alpha1\nkind: PrismShard\nmetadata: {name: bad-hpa}\nspec:\n  product: p\n  replicas: 3\n  autoscaling: {enabled: true, minReplicas: 5, maxReplicas: 2, targetRPS: 10}\n",
        server_says: "minReplicas must not exceed maxReplicas",
        offline_says: "spec.autoscaling: minReplicas must not exceed maxReplicas",
    },
    Invalid {
        yaml: "apiVersion: prism.io/v1alpha1\nkind: PrismShard\nmetadata: {name: bad-replicas}\nspec:\n  product: p\n  replicas: 0\n",
        server_says: "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
        offline_says: "spec.replicas: must be at least 1, got 0",
    },
    Invalid {
        yaml: "apiVersion: prism.io/v1alpha1\nkind: PrismNamespace\nmetadata: {name: bad-pattern}\nspec:\n  backend: postgres\n  pattern: graph\n",
        server_says: "spec.pattern: Unsupported value: \"graph\"",
        offline_says: "spec.pattern: unsupported value \"graph\"",
    },
    Invalid {
        yaml: "apiVersion: prism.io/v1alpha1\nkind: PrismNamespace\nmetadata: {name: bad-secret}\nspec:\n  backend: postgres\n  pattern: keyvalue\n  backendConfig: {connection_string: x}\n  connectionStringFrom: {secretKeyRef: {name: s, key: k}}\n",
        server_says: "set the connection string in backendConfig.connection_string or in connectionStringFrom, not both",
        offline_says: "set the connection string in backendConfig.connection_string or in connectionStringFrom, not both",
    },
    Invalid {
        yaml: "apiVersion: prism.io/v1alpha1\nkind: PrismPlugin\nmetadata: {name: bad-replicas}\nspec:\n  version: 1.0.0\n  source: {registry: r, image: i}\n  deployment: {type: sidecar, replicas: 2}\n",
        server_says: "replicas applies to remote plugins only",
        offline_says: "spec.deployment: replicas applies to remote plugins only",
    },
    Invalid {
        yaml: "apiVersion: prism.io/v1beta1\nkind: PrismPlugin\nmetadata: {name: bad-env}\nspec:\n  version: 1.0.0\n  source: {registry: r, image: i}\n  deployment:\n    type: sidecar\n    env: [{name: DSN, value: x, valueFrom: {secretKeyRef: {name: s, key: k}}}]\n",
        server_says: "an environment variable needs exactly one of value and valueFrom",
        offline_says: "spec.deployment.env[0]: an environment variable needs exactly one of value and valueFrom",
    },
    Invalid {
        yaml: "apiVersion: prism.io/v1beta1\nkind: PrismPlugin\nmetadata: {name: bad-config}\nspec:\n  version: 1.0.0\n  source: {registry: r, image: i}\n  deployment: {type: in-process}\n  configFrom: {secretKeyRef: {name: s, key: k}}\n",
        server_says: "configFrom applies to plugins that run as a container (sidecar or remote)",
        offline_says: "spec.configFrom: configFrom applies to plugins that run as a container (sidecar or remote)",
    },
    Invalid {
        yaml: "apiVersion: prism.io/v1alpha1\nkind: PrismPlugin\nmetadata: {name: bad-version}\nspec:\n  version: v1\n  source: {registry: r, image: i}\n  deployment: {type: sidecar}\n",
        server_says: "spec.version: Invalid value: \"v1\"",
        offline_says: "spec.version: \"v1\" is not a semantic version",
    },
    Invalid {
        yaml: "apiVersion: prism.io/v1alpha1\nkind: PrismShard\nmetadata: {name: bad-backends}\nspec:\n  product: p\n  backends: [pg, pg]\n",
        server_says: ".spec.backends: duplicate entries for key [=\"pg\"]",
        offline_says: "spec.backends[1]: duplicate value \"pg\"",
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_resources_are_rejected_online_and_offline_alike() {
    let (client, ns) = test_namespace_with("invalid", &NamespaceOptions::default()).await;
    install_crds(&client).await;
    for case in INVALID {
        let mut obj: serde_json::Value = serde_yaml::from_str(case.yaml).unwrap();
        obj["metadata"]["namespace"] = ns.clone().into();
        let err = apply(&client, &obj, false).await.expect_err(case.yaml);
        assert!(
            err.contains(case.server_says),
            "server said {err:?}, expected {:?}",
            case.server_says
        );

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("in.yaml"), case.yaml).unwrap();
        let out = Command::new(render())
            .args(["validate", "."])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(case.offline_says),
            "prism-render said {stderr:?}, expected {:?}",
            case.offline_says
        );
    }
}

async fn apply_shard_objects(client: &Client, ns: &str, shard: &str) {
    for obj in rendered("examples/fleet", ns) {
        let owned = obj["metadata"]["labels"]["prism.io/shard"] == shard;
        if owned {
            apply(client, &obj, false).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rendered_shard_reaches_ready_under_restricted_pod_security() {
    let (client, ns) = test_namespace_with("rendered", &NamespaceOptions::restricted()).await;
    apply_shard_objects(&client, &ns, "playback-vod").await;
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    wait_for("prism-playback-vod ready", Duration::from_secs(120), || {
        let sts = sts.clone();
        async move {
            let s = sts
                .get("prism-playback-vod")
                .await
                .map_err(|e| e.to_string())?;
            let st = s.status.unwrap_or_default();
            if st.ready_replicas == Some(3) {
                Ok(())
            } else {
                Err(format!("{st:?}"))
            }
        }
    })
    .await;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let bound = pvcs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"))
        .count();
    assert_eq!(bound, 3, "one bound volume per replica");
}
