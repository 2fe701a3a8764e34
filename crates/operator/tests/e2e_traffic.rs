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
use prism_render::render::contract::{REQUESTS_SERIES, RPS_POD_METRIC};
use support::admin_server::AdminServer;
use support::cluster::test_namespace;
use support::fixtures::{SIDECAR_PLUGIN, namespace_yaml, shard_yaml_with};
use support::operator::{Operator, apply_yaml, install_crds, wait_object};
use support::prometheus::{Load, PrometheusServer, TrafficExporter};

const PODS: [&str; 2] = ["prism-shop-0", "prism-shop-1"];

/// The shop shard: two proxies with a 10 ms p99 SLA.
fn shard() -> String {
    shard_yaml_with("shop", "shop", 2, "  slaTier: p99_10ms\n")
}

/// The default queries with 10 s windows instead of 2 minutes, so changes show within seconds
/// (and the queries file is exercised).
fn queries_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("queries.yaml");
    std::fs::write(&path, Queries::default().with_window("10s").to_yaml()).unwrap();
    path
}

/// The one custom rule of the prometheus-adapter values in `examples/`.
fn adapter_rule() -> serde_json::Value {
    let file = support::paths::root().join("examples/prometheus-adapter/values.yaml");
    let values: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    values["rules"]["custom"][0].clone()
}

/// An instant query's result vector.
async fn query(url: &str, promql: &str) -> Vec<serde_json::Value> {
    let body = support::process::http_get(&format!(
        "{url}/api/v1/query?query={}",
        promql
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    ))
    .await
    .unwrap();
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["status"], "success", "{promql}: {answer}");
    answer["data"]["result"].as_array().unwrap().clone()
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

fn health(n: &PrismNamespace) -> Option<&'static str> {
    n.status.as_ref()?.health.map(|h| h.as_str())
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
        "/apis/prism.io/v1beta1/namespaces/{ns}/prismnamespaces"
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

/// What the phases of the traffic scenario share. Fields drop in order: the operator first.
struct Traffic {
    op: Operator,
    prometheus: PrometheusServer,
    exporter: TrafficExporter,
    client: Client,
    ns: String,
    url: String,
    namespaces: Api<PrismNamespace>,
    shards: Api<PrismShard>,
    carts: Load,
    orders: Load,
    scraping_since: std::time::Instant,
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
    let prometheus = PrometheusServer::start(exporter.port(), &pods).await;
    let scraping_since = std::time::Instant::now();
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
        apply_yaml(&client, &ns, &namespace_yaml(name, "shop")).await;
    }
    let namespaces: Api<PrismNamespace> = Api::namespaced(client.clone(), &ns);
    let shards: Api<PrismShard> = Api::namespaced(client.clone(), &ns);
    let mut t = Traffic {
        op,
        prometheus,
        exporter,
        client,
        ns,
        url,
        namespaces,
        shards,
        carts,
        orders,
        scraping_since,
    };
    figures_converge(&t).await;
    steady_traffic_writes_nothing(&t).await;
    slow_orders_are_degraded_and_ready_untouched(&t).await;
    failing_carts_are_degraded(&t).await;
    a_stopped_prometheus_is_reported_until_it_returns(&mut t).await;
}

/// Figures converge: two pods of each namespace's load.
async fn figures_converge(t: &Traffic) {
    let Traffic {
        op,
        client,
        ns,
        url,
        namespaces,
        shards,
        carts,
        orders,
        ..
    } = t;
    let (carts, orders) = (*carts, *orders);
    for (name, load) in [("carts", carts), ("orders", orders)] {
        let n = wait_object(namespaces, name, "traffic figures", op, |n| {
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
    let idle = wait_object(namespaces, "idle", "Unknown health", op, |n| {
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
    wait_object(shards, "shop", "aggregate figures", op, |s| {
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
    let shown = table(client, ns).await;
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

    // The prometheus-adapter rule (examples/prometheus-adapter) serves the HPA's pods metric
    // from the same series: its queries, as the adapter expands them, on this Prometheus.
    let rule = adapter_rule();
    assert_eq!(rule["name"]["as"], RPS_POD_METRIC);
    assert_eq!(rule["name"]["matches"], format!("^{REQUESTS_SERIES}$"));
    let series = query(url, rule["seriesQuery"].as_str().unwrap()).await;
    // Two pods × two namespaces × two codes, each with the labels the rule maps to resources.
    assert_eq!(series.len(), 8, "{series:?}");
    assert!(
        series
            .iter()
            .all(|s| s["metric"]["namespace"] == ns.as_str() && s["metric"]["pod"].is_string()),
        "{series:?}"
    );
    let pod_rps = rule["metricsQuery"]
        .as_str()
        .unwrap()
        .replace("<<.Series>>", REQUESTS_SERIES)
        .replace(
            "<<.LabelMatchers>>",
            &format!(r#"namespace="{ns}",pod=~"prism-shop-0|prism-shop-1""#),
        )
        .replace("<<.GroupBy>>", "pod")
        // The test's data spans seconds, not the rule's two minutes.
        .replace("[2m]", "[10s]");
    let per_pod = query(url, &pod_rps).await;
    assert_eq!(per_pod.len(), 2, "{per_pod:?}");
    for sample in &per_pod {
        let value: f64 = sample["value"][1].as_str().unwrap().parse().unwrap();
        assert!(near(value, 50.0, 0.1), "pod rps {value}: {sample}");
    }
}

/// Steady traffic: no status writes over several rounds, once the 10 s windows hold
/// only full traffic (rates rise over the first window after Prometheus starts).
async fn steady_traffic_writes_nothing(t: &Traffic) {
    let Traffic {
        op, scraping_since, ..
    } = t;
    let full = Duration::from_secs(14);
    tokio::time::sleep(full.saturating_sub(scraping_since.elapsed())).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let settled = traffic_writes(op).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        traffic_writes(op).await,
        settled,
        "steady traffic wrote statuses"
    );
}

/// orders slower than the SLA: Degraded, Ready untouched, carts not written.
async fn slow_orders_are_degraded_and_ready_untouched(t: &Traffic) {
    let Traffic {
        op,
        exporter,
        ns,
        namespaces,
        ..
    } = t;
    let orders = t.orders;
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
        exporter.set(ns, pod, "orders", slow);
    }
    // The p99 is written when health turns, while the 10 s window still mixes fast and slow
    // requests (a tenth slow gives 23.5 ms of the 24.85 ms to come), and again only when it moves
    // by more than the write threshold (10 %): what status holds is within that of the truth.
    let degraded = wait_object(namespaces, "orders", "Degraded by latency", op, |n| {
        health(n) == Some("Degraded")
            && n.status
                .as_ref()
                .and_then(|s| s.metrics.as_ref())
                .and_then(|m| m.p99_latency.as_deref())
                .is_some_and(|p| near(ms(p), slow.p99() * 1000.0, 0.1))
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
}

/// carts failing 5 % of requests (more than the default 1 %): Degraded.
async fn failing_carts_are_degraded(t: &Traffic) {
    let Traffic {
        op,
        exporter,
        ns,
        namespaces,
        ..
    } = t;
    let carts = t.carts;
    for pod in PODS {
        exporter.set(
            ns,
            pod,
            "carts",
            Load {
                error_share: 0.05,
                ..carts
            },
        );
    }
    let failing = wait_object(namespaces, "carts", "Degraded by errors", op, |n| {
        healthy_condition(n).is_some_and(|(_, r)| r == "ErrorRatioAboveThreshold")
    })
    .await;
    assert_eq!(health(&failing), Some("Degraded"));
}

/// Prometheus stopped: the shard says so, figures stay; back when it returns.
async fn a_stopped_prometheus_is_reported_until_it_returns(t: &mut Traffic) {
    let Traffic {
        op,
        prometheus,
        url,
        namespaces,
        shards,
        ..
    } = t;
    prometheus.stop();
    let down = wait_object(shards, "shop", "MetricsAvailable=False", op, |s| {
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
    assert!(message.contains(url.as_str()), "{message}");
    assert!(
        op.metrics()
            .await
            .contains("prism_operator_prometheus_up 0")
    );
    let kept = namespaces.get("carts").await.unwrap();
    assert!(kept.status.unwrap().metrics.is_some(), "figures are kept");
    prometheus.restart().await;
    wait_object(shards, "shop", "MetricsAvailable=True again", op, |s| {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keda_scales_and_a_pod_monitor_scrapes_a_shard() {
    let (client, ns) = test_namespace("keda").await;
    install_crds(&client).await;
    // KEDA's ScaledObject CRD and prometheus-operator's PodMonitor CRD, from their Go modules.
    for file in [
        "keda.sh_scaledobjects.yaml",
        "monitoring.coreos.com_podmonitors.yaml",
    ] {
        install_upstream_crd(&client, file).await;
    }
    let op = Operator::start(
        &ns,
        &[
            "--prometheus-url",
            "http://127.0.0.1:1",
            "--metrics-interval",
            "60s",
        ],
    )
    .await;
    apply_yaml(&client, &ns, SIDECAR_PLUGIN).await;
    let scaled = shard().replace(
        "  replicas: 2\n",
        "  autoscaling: {enabled: true, provider: keda, minReplicas: 2, maxReplicas: 8, targetRPS: 500, targetCPUUtilization: 70}\n  monitoring: {podMonitor: {interval: 15s, labels: {release: prometheus}}}\n",
    );
    apply_yaml(&client, &ns, &scaled).await;
    let get =
        |kind: &'static str, group: &'static str, version: &'static str, plural: &'static str| {
            let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
                client.clone(),
                &ns,
                &kube::core::ApiResource::from_gvk_with_plural(
                    &kube::core::GroupVersionKind::gvk(group, version, kind),
                    plural,
                ),
            );
            async move {
                support::wait_for(
                    &format!("{kind} prism-shop"),
                    Duration::from_secs(90),
                    || {
                        let api = api.clone();
                        async move {
                            api.get_opt("prism-shop")
                                .await
                                .map_err(|e| e.to_string())?
                                .ok_or_else(|| "not yet".to_string())
                        }
                    },
                )
                .await
            }
        };
    let so = get("ScaledObject", "keda.sh", "v1alpha1", "scaledobjects").await;
    let spec = &so.data["spec"];
    assert_eq!(spec["scaleTargetRef"]["kind"], "StatefulSet");
    assert_eq!(
        (
            spec["minReplicaCount"].clone(),
            spec["maxReplicaCount"].clone()
        ),
        (2.into(), 8.into())
    );
    let prometheus = &spec["triggers"][0];
    assert_eq!(prometheus["type"], "prometheus");
    assert_eq!(
        prometheus["metadata"]["serverAddress"],
        "http://127.0.0.1:1"
    );
    assert_eq!(prometheus["metadata"]["threshold"], "500");
    assert_eq!(
        prometheus["metadata"]["query"],
        format!(
            r#"sum(rate(prism_requests_total{{namespace="{ns}",pod=~"prism-shop-[0-9]+"}}[2m]))"#
        )
    );
    assert_eq!(spec["triggers"][1]["type"], "cpu");
    let monitor = get("PodMonitor", "monitoring.coreos.com", "v1", "podmonitors").await;
    assert_eq!(
        monitor.metadata.labels.as_ref().unwrap()["release"],
        "prometheus"
    );
    assert_eq!(
        monitor.data["spec"]["podMetricsEndpoints"][0]["port"],
        "metrics"
    );
    assert_eq!(
        monitor.data["spec"]["podMetricsEndpoints"][0]["interval"],
        "15s"
    );
    // KEDA owns the count: no replicas in the StatefulSet, and no HPA of ours.
    let sts: Api<k8s_openapi::api::apps::v1::StatefulSet> = Api::namespaced(client.clone(), &ns);
    let sts = sts.get("prism-shop").await.unwrap();
    let hpas: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> =
        Api::namespaced(client.clone(), &ns);
    assert!(hpas.get_opt("prism-shop").await.unwrap().is_none());
    let managed = sts.metadata.managed_fields.unwrap_or_default();
    let ours = managed
        .iter()
        .find(|m| m.manager.as_deref() == Some("prism-operator"))
        .unwrap();
    assert!(
        !ours
            .fields_v1
            .as_ref()
            .unwrap()
            .0
            .to_string()
            .contains("f:replicas"),
        "the operator does not own replicas"
    );
    drop(op);
}

/// Installs one CRD fetched by tools/crds/build.sh and waits until it is established.
async fn install_upstream_crd(client: &Client, file: &str) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let path = support::helm::upstream_crds().join(file);
    let crd: CustomResourceDefinition =
        serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let name = crd.metadata.name.clone().unwrap();
    Api::<CustomResourceDefinition>::all(client.clone())
        .patch(
            &name,
            &kube::api::PatchParams::apply("prism-tests").force(),
            &kube::api::Patch::Apply(&crd),
        )
        .await
        .unwrap();
    support::operator::wait_crd_established(client, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_over_tls_is_trusted_only_with_its_ca() {
    let exporter = TrafficExporter::start().await;
    let ca = support::pki::Ca::new("prometheus-ca");
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("ca.pem");
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&good, &ca.pem).unwrap();
    std::fs::write(&other, &support::pki::Ca::new("someone-else").pem).unwrap();
    let (client, trusted) = test_namespace("tls-trusted").await;
    let (_, untrusted) = test_namespace("tls-untrusted").await;
    install_crds(&client).await;
    let pods: Vec<(String, String)> = [&trusted, &untrusted]
        .iter()
        .map(|ns| (ns.to_string(), "prism-shop-0".to_string()))
        .collect();
    for (ns, pod) in &pods {
        exporter.set(
            ns,
            pod,
            "carts",
            Load {
                rps: 30.0,
                error_share: 0.0,
                latency: 0.004,
            },
        );
    }
    let prometheus = PrometheusServer::start_tls(exporter.port(), &pods, &ca.server()).await;
    let url = prometheus.url();
    assert!(url.starts_with("https://"));
    let queries = queries_file(dir.path());
    let mut operators = Vec::new();
    for (ns, ca_file) in [(&trusted, &good), (&untrusted, &other)] {
        let op = Operator::start(
            ns,
            &[
                "--prometheus-url",
                &url,
                "--prometheus-ca",
                ca_file.to_str().unwrap(),
                "--prometheus-queries",
                queries.to_str().unwrap(),
                "--metrics-interval",
                "2s",
            ],
        )
        .await;
        apply_yaml(&client, ns, SIDECAR_PLUGIN).await;
        apply_yaml(&client, ns, &shard().replace("replicas: 2", "replicas: 1")).await;
        apply_yaml(&client, ns, &namespace_yaml("carts", "shop")).await;
        operators.push(op);
    }
    let available = |s: &PrismShard| {
        s.status.as_ref().and_then(|st| {
            st.conditions
                .iter()
                .find(|c| c.type_ == "MetricsAvailable")
                .map(|c| (c.status.clone(), c.message.clone()))
        })
    };
    // With its CA: figures flow.
    let namespaces: Api<PrismNamespace> = Api::namespaced(client.clone(), &trusted);
    wait_object(
        &namespaces,
        "carts",
        "figures over TLS",
        &operators[0],
        |n| {
            n.status
                .as_ref()
                .and_then(|s| s.metrics.as_ref())
                .and_then(|m| m.rps)
                .is_some_and(|r| near(r as f64, 30.0, 0.1))
        },
    )
    .await;
    // With another CA: refused, and the shard says why.
    let shards: Api<PrismShard> = Api::namespaced(client.clone(), &untrusted);
    let refused = wait_object(
        &shards,
        "shop",
        "MetricsAvailable=False",
        &operators[1],
        |s| available(s).is_some_and(|(st, _)| st == "False"),
    )
    .await;
    let (_, message) = available(&refused).unwrap();
    assert!(
        message.contains(&url) && message.contains("certificate"),
        "{message}"
    );
    let untrusted_ns: Api<PrismNamespace> = Api::namespaced(client.clone(), &untrusted);
    assert!(
        untrusted_ns
            .get("carts")
            .await
            .unwrap()
            .status
            .and_then(|s| s.metrics)
            .is_none()
    );
}
