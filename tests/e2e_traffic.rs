//! Traffic figures and health in status, from a real Prometheus (Debian's package) scraping a
//! loopback exporter with known rates, error shares and latencies: statuses converge to the
//! expected figures, steady traffic writes nothing, a latency above the SLA or too many errors
//! turn health Degraded without touching Ready, and a stopped Prometheus is a shard condition
//! that clears when it returns.

use prism_testing as support;

use std::time::Duration;

use kube::Client;
use kube::api::Api;
use prism_api::{PrismNamespace, PrismShard};
use prism_operator::traffic::Queries;
use support::admin_server::AdminServer;
use support::cluster::test_namespace;
use support::operator::{Operator, SIDECAR_PLUGIN, apply_yaml, install_crds, wait_object};
use support::prometheus::{Load, PrometheusServer, TrafficExporter};

const PODS: [&str; 2] = ["prism-shop-0", "prism-shop-1"];

fn shard() -> String {
    "apiVersion: prism.io/v1alpha1
kind: PrismShard
metadata: {name: shop}
spec:
  product: shop
  slaTier: p99_10ms
  replicas: 2
  backends: [postgres]
  plugins: [{name: pg, version: \"1\"}]
"
    .into()
}

fn namespace(name: &str) -> String {
    format!(
        "apiVersion: prism.io/v1alpha1
kind: PrismNamespace
metadata: {{name: {name}}}
spec: {{backend: postgres, pattern: keyvalue, shard: {{product: shop}}}}
"
    )
}

/// The default queries with 10 s windows instead of 2 minutes, so changes show within seconds
/// (and the queries file is exercised).
fn queries_file(dir: &std::path::Path) -> std::path::PathBuf {
    let q = Queries::default();
    let yaml = [
        ("namespaceRPS", &q.namespace_rps),
        ("namespaceP99", &q.namespace_p99),
        ("namespaceErrorRatio", &q.namespace_error_ratio),
        ("shardRPS", &q.shard_rps),
        ("shardAvgP99", &q.shard_avg_p99),
    ]
    .iter()
    .map(|(k, v)| {
        format!(
            "{k}: {}\n",
            serde_json::to_string(&v.replace("[2m]", "[10s]")).unwrap()
        )
    })
    .collect::<String>();
    let path = dir.join("queries.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Milliseconds of a status latency such as `9.9ms`.
fn ms(text: &str) -> f64 {
    text.strip_suffix("ms").unwrap().parse().unwrap()
}

fn near(actual: f64, expected: f64, tolerance: f64) -> bool {
    (actual - expected).abs() <= expected * tolerance
}

fn healthy_condition(n: &PrismNamespace) -> Option<(String, String)> {
    let c = n
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Healthy")?;
    Some((c.status.clone(), c.reason.clone()))
}

fn health(n: &PrismNamespace) -> Option<&str> {
    n.status.as_ref()?.health.as_deref()
}

/// Traffic status writes so far (`operation="traffic"`), of namespaces.
async fn traffic_writes(op: &Operator) -> f64 {
    op.writes_by_kind()
        .await
        .iter()
        .filter(|(labels, _)| labels.contains("PrismNamespace") && labels.contains("traffic"))
        .map(|(_, v)| v)
        .sum()
}

/// `kubectl get pns` as the API server renders the table.
async fn table(client: &Client, ns: &str) -> String {
    let req = http::Request::get(format!(
        "/apis/prism.io/v1alpha1/namespaces/{ns}/prismnamespaces"
    ))
    .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
    .body(Vec::new())
    .unwrap();
    let table: serde_json::Value = client.request(req).await.unwrap();
    let mut lines = vec![
        table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_uppercase())
            .collect::<Vec<_>>(),
    ];
    for row in table["rows"].as_array().unwrap() {
        lines.push(
            row["cells"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| match c {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => "<none>".into(),
                    other => other.to_string(),
                })
                .collect(),
        );
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l.get(i).map_or(0, |c| c.len()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    lines
        .iter()
        .map(|l| {
            l.iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}   "))
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_traffic_and_health_from_prometheus() {
    let (client, ns) = test_namespace("traffic").await;
    install_crds(&client).await;
    let admin = AdminServer::start().await;
    let exporter = TrafficExporter::start().await;
    let carts = Load {
        rps: 40.0,
        error_share: 0.0,
        latency: 0.004,
    };
    let orders = Load {
        rps: 10.0,
        error_share: 0.0,
        latency: 0.008,
    };
    for pod in PODS {
        exporter.set(&ns, pod, "carts", carts);
        exporter.set(&ns, pod, "orders", orders);
    }
    let pods: Vec<(String, String)> = PODS.iter().map(|p| (ns.clone(), p.to_string())).collect();
    let mut prometheus = PrometheusServer::start(exporter.port(), &pods).await;
    let dir = tempfile::tempdir().unwrap();
    let queries = queries_file(dir.path());
    let url = prometheus.url();
    let op = Operator::start(
        &ns,
        &[
            "--admin-endpoint",
            &admin.endpoint(),
            "--prometheus-url",
            &url,
            "--prometheus-queries",
            queries.to_str().unwrap(),
            "--metrics-interval",
            "2s",
            "--resync",
            "10m",
        ],
    )
    .await;
    apply_yaml(&client, &ns, SIDECAR_PLUGIN).await;
    apply_yaml(&client, &ns, &shard()).await;
    for name in ["carts", "orders", "idle"] {
        apply_yaml(&client, &ns, &namespace(name)).await;
    }
    let namespaces: Api<PrismNamespace> = Api::namespaced(client.clone(), &ns);
    let shards: Api<PrismShard> = Api::namespaced(client.clone(), &ns);

    // 1. Figures converge: two pods of each namespace's load.
    for (name, load) in [("carts", carts), ("orders", orders)] {
        let n = wait_object(&namespaces, name, "traffic figures", &op, |n| {
            n.status
                .as_ref()
                .and_then(|s| s.metrics.as_ref())
                .is_some_and(|m| {
                    m.rps.is_some_and(|r| near(r as f64, 2.0 * load.rps, 0.1))
                        && m.p99_latency
                            .as_deref()
                            .is_some_and(|p| near(ms(p), load.p99() * 1000.0, 0.05))
                })
                && health(n) == Some("Healthy")
        })
        .await;
        assert_eq!(
            healthy_condition(&n),
            Some(("True".into(), "WithinSLA".into()))
        );
    }
    let idle = wait_object(&namespaces, "idle", "Unknown health", &op, |n| {
        health(n) == Some("Unknown")
    })
    .await;
    assert!(idle.status.as_ref().unwrap().metrics.is_none());
    assert_eq!(
        healthy_condition(&idle),
        Some(("Unknown".into(), "NoTrafficData".into()))
    );
    // The shard: total requests, and the mean of its two replicas' p99 (each replica serves
    // 40 rps in the 2.5–5 ms bucket and 10 in the 5–10 ms one: 5 + 5 × (49.5 − 40) / 10 ms).
    let replica_p99 = 5.0 + 5.0 * (0.99 * 50.0 - 40.0) / 10.0;
    wait_object(&shards, "shop", "aggregate figures", &op, |s| {
        s.status
            .as_ref()
            .and_then(|s| s.aggregate_metrics.as_ref())
            .is_some_and(|m| {
                m.total_rps.is_some_and(|r| near(r as f64, 100.0, 0.1))
                    && m.avg_p99_latency
                        .as_deref()
                        .is_some_and(|p| near(ms(p), replica_p99, 0.05))
            })
            && s.status.as_ref().is_some_and(|st| {
                st.conditions
                    .iter()
                    .any(|c| c.type_ == "MetricsAvailable" && c.status == "True")
            })
    })
    .await;
    let shown = table(&client, &ns).await;
    eprintln!("kubectl get pns:\n{shown}");
    let header: Vec<&str> = shown.lines().next().unwrap().split_whitespace().collect();
    assert!(
        header.ends_with(&["READY", "RPS", "P99", "HEALTH", "AGE"]),
        "{shown}"
    );
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("carts") && l.contains("Healthy")),
        "{shown}"
    );

    // 2. Steady traffic: no status writes over several rounds.
    let settled = traffic_writes(&op).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        traffic_writes(&op).await,
        settled,
        "steady traffic wrote statuses"
    );

    // 3. orders slower than the SLA: Degraded, Ready untouched, carts not written.
    let carts_before = namespaces.get("carts").await.unwrap();
    let orders_ready = |n: &PrismNamespace| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready").cloned())
    };
    let ready_before = orders_ready(&namespaces.get("orders").await.unwrap());
    let slow = Load {
        latency: 0.02,
        ..orders
    };
    for pod in PODS {
        exporter.set(&ns, pod, "orders", slow);
    }
    let degraded = wait_object(&namespaces, "orders", "Degraded by latency", &op, |n| {
        health(n) == Some("Degraded")
            && n.status
                .as_ref()
                .and_then(|s| s.metrics.as_ref())
                .and_then(|m| m.p99_latency.as_deref())
                .is_some_and(|p| near(ms(p), slow.p99() * 1000.0, 0.05))
    })
    .await;
    assert_eq!(
        healthy_condition(&degraded),
        Some(("False".into(), "LatencyAboveSLA".into()))
    );
    assert_eq!(
        orders_ready(&degraded),
        ready_before,
        "traffic never touches Ready"
    );
    let carts_after = namespaces.get("carts").await.unwrap();
    assert_eq!(
        carts_after.metadata.resource_version, carts_before.metadata.resource_version,
        "carts' traffic did not move: its status is not written"
    );

    // 4. carts failing 5 % of requests (more than the default 1 %): Degraded.
    for pod in PODS {
        exporter.set(
            &ns,
            pod,
            "carts",
            Load {
                error_share: 0.05,
                ..carts
            },
        );
    }
    let failing = wait_object(&namespaces, "carts", "Degraded by errors", &op, |n| {
        healthy_condition(n).is_some_and(|(_, r)| r == "ErrorRatioAboveThreshold")
    })
    .await;
    assert_eq!(health(&failing), Some("Degraded"));

    // 5. Prometheus stopped: the shard says so, figures stay; back when it returns.
    prometheus.stop();
    let down = wait_object(&shards, "shop", "MetricsAvailable=False", &op, |s| {
        s.status.as_ref().is_some_and(|st| {
            st.conditions.iter().any(|c| {
                c.type_ == "MetricsAvailable"
                    && c.status == "False"
                    && c.reason == "PrometheusUnavailable"
            })
        })
    })
    .await;
    let message = &down
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "MetricsAvailable")
        .unwrap()
        .message;
    assert!(message.contains(&url), "{message}");
    assert!(
        op.metrics()
            .await
            .contains("prism_operator_prometheus_up 0")
    );
    let kept = namespaces.get("carts").await.unwrap();
    assert!(kept.status.unwrap().metrics.is_some(), "figures are kept");
    prometheus.restart().await;
    wait_object(&shards, "shop", "MetricsAvailable=True again", &op, |s| {
        s.status.as_ref().is_some_and(|st| {
            st.conditions
                .iter()
                .any(|c| c.type_ == "MetricsAvailable" && c.status == "True")
        })
    })
    .await;
    assert!(
        op.metrics()
            .await
            .contains("prism_operator_prometheus_up 1")
    );
}
