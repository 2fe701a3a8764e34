//! Render mode's plugin rollouts as Argo CD carries them out: what `prism-render` renders for a
//! PrismPlugin with a rollout policy is synced by Argo CD's own sync code (gitops-engine, in
//! `tools/gitops-sync`) into the test control plane, with the Prism health checks Argo CD is
//! given (`argocd/argocd-cm-health.yaml`) and the operator in render mode reporting shard
//! health. One shard per wave: the first wave's shard moves, the sync waits at the second
//! (its new pods can never start), the third never changes, and reverting Git recovers.

use prism_testing as support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ResourceQuota;
use kube::Client;
use kube::api::{Api, PostParams};
use prism_render::output::to_yaml_stream;
use prism_render::render::Renderer;
use prism_render::render::rollout::SYNC_WAVE_ANNOTATION;
use prism_render::source::fleet_from_files;
use support::gitops::{Sync, SyncReport};
use support::operator::{Operator, container_image, crd_namespace};
use support::wait_for;

const MINUTE: Duration = Duration::from_secs(60);

/// The fleet at plugin `version`, whose sidecar requests `plugin_cpu`: plugin `pg` rolled out
/// one shard at a time, and shards s1, s2, s3 whose proxies request 100m, 1 and 100m CPU.
fn fleet_yaml(version: &str, plugin_cpu: &str) -> String {
    let mut yaml = format!(
        "apiVersion: prism.io/v1beta1
kind: PrismPlugin
metadata: {{name: pg}}
spec:
  version: {version}
  source: {{registry: ghcr.io/prism/plugins, image: \"pg-plugin:{version}\"}}
  deployment:
    type: sidecar
    resources: {{requests: {{cpu: {plugin_cpu}, memory: 64Mi}}}}
  healthCheck: {{grpc: {{port: 50100}}}}
  rollout: {{maxUnavailableShards: 1}}
"
    );
    for (shard, cpu) in [("s1", "100m"), ("s2", "1"), ("s3", "100m")] {
        yaml.push_str(&format!(
            "---
apiVersion: prism.io/v1beta1
kind: PrismShard
metadata: {{name: {shard}}}
spec:
  product: {shard}
  replicas: 1
  resources: {{requests: {{cpu: \"{cpu}\", memory: 64Mi}}}}
  plugins: [{{name: pg, version: \">=1\"}}]
"
        ));
    }
    yaml
}

/// What `prism-render render` prints for the fleet, in namespace `ns`.
fn rendered(ns: &str, version: &str, plugin_cpu: &str) -> String {
    let fleet = fleet_from_files(
        vec![("fleet.yaml".into(), fleet_yaml(version, plugin_cpu))],
        ns,
    )
    .unwrap();
    to_yaml_stream(&Renderer::embedded().render_fleet(&fleet).unwrap())
}

fn health_checks() -> std::path::PathBuf {
    support::paths::root().join("argocd/argocd-cm-health.yaml")
}

async fn sync(ns: &str, manifests: &str, give_up_on: Option<&str>) -> SyncReport {
    Sync {
        namespace: ns,
        manifests,
        health: Some(&health_checks()),
        // Long enough for every healthy wave on a busy machine; a shard that waits this long
        // in its wave after the waves before it went healthy has new pods that cannot start.
        give_up_on: give_up_on.map(|o| (o, Duration::from_secs(20))),
        timeout: 4 * MINUTE,
    }
    .run()
    .await
}

/// The waves a sync applied, but wave 0 (the PrismPlugin).
fn waves(report: &SyncReport) -> Vec<&str> {
    report
        .waves
        .iter()
        .map(String::as_str)
        .filter(|w| *w != "Sync/0")
        .collect()
}

async fn sts_state(client: &Client, ns: &str, shard: &str) -> (String, i32, String) {
    let sts: StatefulSet = Api::namespaced(client.clone(), ns)
        .get(&format!("prism-{shard}"))
        .await
        .unwrap();
    let image = container_image(&sts, "plugin-pg").unwrap_or_default();
    let ready = sts
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let wave = sts.metadata.annotations.unwrap_or_default()[SYNC_WAVE_ANNOTATION].clone();
    (image, ready, wave)
}

/// Waits until the StatefulSet of `shard` has its replica ready.
async fn wait_ready(client: &Client, ns: &str, shard: &str) -> (String, i32, String) {
    wait_for(&format!("prism-{shard} ready"), 2 * MINUTE, || async {
        let state = sts_state(client, ns, shard).await;
        match state.1 {
            1 => Ok(state),
            _ => Err(format!("{state:?}")),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_version_moves_wave_by_wave_and_the_sync_stops_at_an_unhealthy_wave() {
    let (client, ns) = crd_namespace("waves").await;
    // 2 CPUs of requests in all: 1.5 at version 1 (0.2 + 1.1 + 0.2), 1.9 once s1 runs version 2
    // with its 500m sidecar, 2.3 were s2 to run it too. So s2's new pod is never admitted.
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &ns);
    let quota = serde_json::json!({
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "cpu"},
        "spec": {"hard": {"requests.cpu": "2"}}
    });
    quotas
        .create(
            &PostParams::default(),
            &serde_json::from_value(quota).unwrap(),
        )
        .await
        .unwrap();
    wait_for("the quota counted", MINUTE, || {
        let quotas = quotas.clone();
        async move {
            let q = quotas.get("cpu").await.map_err(|e| e.to_string())?;
            match q.status.and_then(|s| s.used) {
                Some(used) if used.contains_key("requests.cpu") => Ok(()),
                other => Err(format!("used {other:?}")),
            }
        }
    })
    .await;
    let op = Operator::start(&ns, &["--render-mode", "--resync", "5s"]).await;

    // Version 1 everywhere: each shard in its own wave, every wave healthy.
    let v1 = rendered(&ns, "1.0.0", "100m");
    let first = sync(&ns, &v1, None).await;
    assert_eq!(
        (first.phase.as_str(), first.stopped.as_str()),
        ("Succeeded", "completed"),
        "{first:#?}\noperator log:\n{}",
        op.log_tail()
    );
    assert_eq!(waves(&first), ["Sync/1", "Sync/2", "Sync/3"]);
    // The sync waits for every wave's health but the last one's: it ends once that is applied
    // (Argo CD then shows the application Progressing until it is healthy).
    for (shard, wave) in [("s1", "1"), ("s2", "2")] {
        let (image, ready, w) = sts_state(&client, &ns, shard).await;
        assert_eq!(
            (image.as_str(), ready, w.as_str()),
            ("ghcr.io/prism/plugins/pg-plugin:1.0.0", 1, wave)
        );
    }
    let last = wait_ready(&client, &ns, "s3").await;
    assert_eq!(
        (last.0.as_str(), last.2.as_str()),
        ("ghcr.io/prism/plugins/pg-plugin:1.0.0", "3")
    );

    // Version 2: s1 moves and becomes healthy; s2 gets the new spec and waits for pods the quota
    // refuses; the sync never reaches s3.
    let v2 = rendered(&ns, "2.0.0", "500m");
    let second = sync(&ns, &v2, Some("StatefulSet/prism-s2")).await;
    assert_eq!(
        (second.phase.as_str(), second.stopped.as_str()),
        ("Running", "gave-up"),
        "{second:#?}"
    );
    // Waves 1 and 2 were applied (the hook runs after each wave is applied); wave 3 never.
    assert_eq!(waves(&second), ["Sync/1", "Sync/2"], "{second:#?}");
    assert!(
        second
            .message
            .contains("waiting for healthy state of apps/StatefulSet/prism-s2"),
        "{}",
        second.message
    );
    let s1 = second.resource("StatefulSet", "prism-s1").unwrap();
    assert_eq!(
        (s1.status.as_str(), s1.phase.as_str()),
        ("Synced", "Succeeded")
    );
    let s2 = second.resource("StatefulSet", "prism-s2").unwrap();
    assert_eq!(
        (s2.status.as_str(), s2.phase.as_str()),
        ("Synced", "Running")
    );
    assert!(
        second
            .resource("StatefulSet", "prism-s3")
            .is_none_or(|r| r.status.is_empty()),
        "{second:#?}"
    );
    let v2_image = "ghcr.io/prism/plugins/pg-plugin:2.0.0";
    let (image, ready, _) = sts_state(&client, &ns, "s1").await;
    assert_eq!((image.as_str(), ready), (v2_image, 1));
    let (image, ready, _) = sts_state(&client, &ns, "s2").await;
    assert_eq!((image.as_str(), ready), (v2_image, 0));
    let (image, ready, _) = sts_state(&client, &ns, "s3").await;
    assert_eq!(
        (image.as_str(), ready),
        ("ghcr.io/prism/plugins/pg-plugin:1.0.0", 1),
        "the third wave never changes"
    );

    // The way back is Git's: syncing version 1 again brings every shard back healthy.
    let back = sync(&ns, &v1, None).await;
    assert_eq!(
        (back.phase.as_str(), back.stopped.as_str()),
        ("Succeeded", "completed"),
        "{back:#?}"
    );
    for shard in ["s1", "s2"] {
        let (image, ready, _) = sts_state(&client, &ns, shard).await;
        assert_eq!(
            (image.as_str(), ready),
            ("ghcr.io/prism/plugins/pg-plugin:1.0.0", 1),
            "{shard}"
        );
    }
    let (image, _, _) = wait_ready(&client, &ns, "s3").await;
    assert_eq!(image, "ghcr.io/prism/plugins/pg-plugin:1.0.0");
    drop(op);
}
