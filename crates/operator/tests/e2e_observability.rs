//! The operator as a platform team watches it, against the real things: `/metrics` over HTTPS
//! open only to callers the test API server authenticates and authorizes, in the format the
//! scraper asks for; a real Prometheus scraping it with the chart's ServiceMonitor settings,
//! where every expression of the chart's alerts and every query of its dashboard finds its
//! series; and the spans of a namespace sync arriving at a real OpenTelemetry Collector with
//! their parents, attributes and no secret, while a collector that is gone slows nothing.

use prism_testing as support;

use std::collections::BTreeSet;
use std::time::Duration;

use kube::Client;
use kube::api::Api;
use prism_api::{NamespaceState, PrismNamespace};
use serde_json::Value;
use support::admin_server::AdminServer;
use support::cluster::cluster;
use support::fixtures::{SIDECAR_PLUGIN, namespace_yaml, namespace_yaml_with, shard_yaml_with};
use support::helm::{documents, helm};
use support::operator::{Operator, apply_yaml, crd_namespace, webhook_args};
use support::otelcol::{Collector, Span};
use support::process::free_port;
use support::prometheus::{Load, PrometheusServer, SecureJob, TrafficExporter};
use support::scrape::{Scraper, scraper_token};
use support::{promql, wait_for};

/// The chart's release name in this test: the metrics Service, and so Prometheus's `job`, is
/// `prism-operator-metrics`.
const JOB: &str = "prism-operator-metrics";
const SECRET: &str = "prism-operator-webhook-cert";
const PODS: [&str; 2] = ["prism-shop-0", "prism-shop-1"];
const SECRET_VALUE: &str = "s3cr3t-p4ss";

/// The chart rendered with its alerts and dashboard, for namespace `ns`.
fn chart(ns: &str) -> Vec<Value> {
    // `helm template` talks to no cluster; a kubeconfig that does not exist proves it.
    let kubeconfig = std::env::temp_dir().join("prism-e2e-no-cluster.kubeconfig");
    documents(&helm(
        &[
            "template",
            "prism-operator",
            "charts/prism-operator",
            "--namespace",
            ns,
            "--set",
            "prometheusRule.enabled=true",
            "--set",
            "grafanaDashboard.enabled=true",
            "--set",
            "serviceMonitor.enabled=true",
        ],
        &kubeconfig,
    ))
}

/// How the chart's ServiceMonitor says Prometheus scrapes the operator.
struct Monitor {
    /// The `job` label: the name of the Service the ServiceMonitor selects.
    job: String,
    /// The name the serving certificate is checked for.
    server_name: String,
    /// The Secret and key holding the CA that certificate is checked against.
    ca_secret: String,
    ca_key: String,
}

impl Monitor {
    /// Reads the ServiceMonitor of the rendered chart: HTTPS with the scraper's own
    /// service-account token and honored labels, from the Service its selector picks.
    fn of(docs: &[Value]) -> Self {
        let monitor = docs
            .iter()
            .find(|d| d["kind"] == "ServiceMonitor")
            .expect("the chart's ServiceMonitor");
        let endpoints = monitor["spec"]["endpoints"].as_array().unwrap();
        assert_eq!(endpoints.len(), 1, "{monitor}");
        let endpoint = &endpoints[0];
        assert_eq!(endpoint["scheme"], "https", "{endpoint}");
        assert_eq!(endpoint["path"], "/metrics", "{endpoint}");
        assert_eq!(endpoint["honorLabels"], true, "{endpoint}");
        assert_eq!(
            endpoint["bearerTokenFile"], "/var/run/secrets/kubernetes.io/serviceaccount/token",
            "{endpoint}"
        );
        let selector = monitor["spec"]["selector"]["matchLabels"]
            .as_object()
            .unwrap();
        let services: Vec<&Value> = docs
            .iter()
            .filter(|d| {
                d["kind"] == "Service"
                    && selector
                        .iter()
                        .all(|(k, v)| &d["metadata"]["labels"][k] == v)
                    && d["spec"]["ports"]
                        .as_array()
                        .is_some_and(|ports| ports.iter().any(|p| p["name"] == endpoint["port"]))
            })
            .collect();
        assert_eq!(services.len(), 1, "the Service of the ServiceMonitor");
        let tls = &endpoint["tlsConfig"];
        Self {
            job: services[0]["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_string(),
            server_name: tls["serverName"].as_str().unwrap().to_string(),
            ca_secret: tls["ca"]["secret"]["name"].as_str().unwrap().to_string(),
            ca_key: tls["ca"]["secret"]["key"].as_str().unwrap().to_string(),
        }
    }
}

/// Everything the test runs; dropped operator first.
struct Fleet {
    op: Operator,
    prometheus: PrometheusServer,
    _exporter: TrafficExporter,
    collector: Collector,
    admin: AdminServer,
    client: Client,
    ns: String,
    scraper: Scraper,
    /// A token bound to the chart's metrics-reader ClusterRole (Prometheus's).
    reader: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_can_be_watched_with_real_prometheus_and_a_real_collector() {
    let f = start().await;
    metrics_are_served_to_authorized_scrapers_only(&f).await;
    the_text_format_passes_promtool(&f).await;
    fleet_converges(&f).await;
    every_alert_and_dashboard_query_finds_its_series(&f).await;
    a_namespace_sync_is_traced_end_to_end(&f).await;
    a_gone_collector_slows_nothing(f).await;
}

async fn start() -> Fleet {
    let (client, ns) = crd_namespace("observe").await;
    let admin = AdminServer::start().await;
    let collector = Collector::start().await;
    let exporter = TrafficExporter::start().await;
    let load = Load {
        rps: 20.0,
        error_share: 0.0,
        latency: 0.004,
    };
    for pod in PODS {
        exporter.set(&ns, pod, "carts", load);
    }
    let [prometheus_port, webhook_port] = support::process::free_ports().unwrap();
    let kubeconfig = cluster().await.kubeconfig_path();
    let monitor = Monitor::of(&chart(&ns));
    // The operator keeps the Secret the ServiceMonitor reads the CA from.
    assert_eq!(monitor.ca_secret, SECRET);
    assert_eq!(monitor.ca_key, "ca.crt");
    assert_eq!(monitor.job, JOB);
    let server_name = monitor.server_name.clone();
    let prometheus_url = format!("http://127.0.0.1:{prometheus_port}");
    let endpoint = collector.endpoint();
    let mut args: Vec<String> = webhook_args(&ns, webhook_port, SECRET, "prism-e2e-observe");
    args.extend(
        [
            "--watch-namespace",
            &ns,
            "--lease-namespace",
            &ns,
            "--leader-elect",
            "--lease-name",
            "prism-operator",
            "--metrics-secure=true",
            "--webhook-san",
            &server_name,
            "--admin-endpoint",
            &admin.endpoint(),
            "--prometheus-url",
            &prometheus_url,
            "--metrics-interval",
            "2s",
            "--otlp-endpoint",
            &endpoint,
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let op = Operator::start_with_kubeconfig(&kubeconfig, &args).await;
    let scraper = Scraper::new(&client, &ns, SECRET, &server_name, op.port).await;
    let reader = scraper_token(
        &client,
        &ns,
        "prometheus",
        Some("prism-operator-metrics-reader"),
    )
    .await;
    install_reader_role(&client, &ns).await;
    let pods: Vec<(String, String)> = PODS.iter().map(|p| (ns.clone(), p.to_string())).collect();
    let job = SecureJob {
        job: monitor.job.clone(),
        port: op.port,
        server_name: server_name.clone(),
        ca: scraper.ca().to_string(),
        token: reader.clone(),
        labels: vec![
            ("namespace".into(), ns.clone()),
            ("pod".into(), "prism-operator-0".into()),
            ("service".into(), monitor.job),
        ],
    };
    let prometheus =
        PrometheusServer::start_scraping(prometheus_port, exporter.port(), &pods, &[job]).await;
    Fleet {
        op,
        prometheus,
        _exporter: exporter,
        collector,
        admin,
        client,
        ns,
        scraper,
        reader,
    }
}

/// The chart's metrics-reader ClusterRole, as the chart installs it.
async fn install_reader_role(client: &Client, ns: &str) {
    use k8s_openapi::api::rbac::v1::ClusterRole;
    use kube::api::{Patch, PatchParams};
    let role = chart(ns)
        .into_iter()
        .find(|d| {
            d["kind"] == "ClusterRole" && d["metadata"]["name"] == "prism-operator-metrics-reader"
        })
        .expect("the chart's metrics-reader ClusterRole");
    Api::<ClusterRole>::all(client.clone())
        .patch(
            "prism-operator-metrics-reader",
            &PatchParams::apply("prism-tests").force(),
            &Patch::Apply(&role),
        )
        .await
        .unwrap();
}

/// Anonymous → 401, a token without the role → 403, with it → 200; OpenMetrics when asked.
async fn metrics_are_served_to_authorized_scrapers_only(f: &Fleet) {
    let anonymous = f.scraper.get(None, None).await.unwrap();
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert_eq!(anonymous.header("www-authenticate"), Some("Bearer"));
    let garbage = f.scraper.get(Some("not-a-token"), None).await.unwrap();
    assert_eq!(garbage.status, 401, "{}", garbage.body);
    let stranger = scraper_token(&f.client, &f.ns, "stranger", None).await;
    let refused = f.scraper.get(Some(&stranger), None).await.unwrap();
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("stranger"), "{}", refused.body);
    assert!(
        !refused.body.contains("controller_runtime"),
        "{}",
        refused.body
    );

    let reader = &f.reader;
    let text = f.scraper.get(Some(reader), None).await.unwrap();
    assert_eq!(text.status, 200, "{}", text.body);
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(!text.body.contains("# EOF"));
    let om = f
        .scraper
        .get(
            Some(reader),
            Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
        )
        .await
        .unwrap();
    assert_eq!(om.status, 200);
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(om.body.ends_with("# EOF\n"), "{}", om.body);
    for name in [
        "controller_runtime_reconcile_total",
        "controller_runtime_reconcile_time_seconds_bucket",
        "rest_client_requests_total",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
        "leader_election_master_status",
        "prism_operator_resources",
    ] {
        assert!(
            text.body.lines().any(|l| l.starts_with(name)),
            "{name} missing:\n{}",
            text.body
        );
    }
}

/// `promtool check metrics` (Prometheus's own linter of the text format) finds nothing.
async fn the_text_format_passes_promtool(f: &Fleet) {
    use std::io::Write;
    let reader = &f.reader;
    let text = f.scraper.get(Some(reader), None).await.unwrap().body;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package) runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A healthy shard with traffic, a plugin, two Active namespaces, and a shard whose admin is
/// unreachable with a namespace that cannot become Active (the series alerts fire on).
async fn fleet_converges(f: &Fleet) {
    let (client, ns) = (&f.client, &f.ns);
    let closed = free_port();
    let db: k8s_openapi::api::core::v1::Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "carts-db"},
        "stringData": {"url": format!("postgres://app:{SECRET_VALUE}@db:5432/carts")},
    }))
    .unwrap();
    Api::namespaced(client.clone(), ns)
        .create(&Default::default(), &db)
        .await
        .unwrap();
    apply_yaml(client, ns, SIDECAR_PLUGIN).await;
    apply_yaml(client, ns, &shard_yaml_with("shop", "shop", 2, "")).await;
    apply_yaml(
        client,
        ns,
        &shard_yaml_with(
            "broken",
            "broken",
            1,
            &format!("  adminEndpoint: 127.0.0.1:{closed}\n"),
        ),
    )
    .await;
    apply_yaml(
        client,
        ns,
        &namespace_yaml_with(
            "carts",
            "shop",
            "  connectionStringFrom: {secretKeyRef: {name: carts-db, key: url}}\n",
        ),
    )
    .await;
    apply_yaml(client, ns, &namespace_yaml("orders", "shop")).await;
    apply_yaml(client, ns, &namespace_yaml("stuck", "broken")).await;
    let namespaces: Api<PrismNamespace> = Api::namespaced(client.clone(), ns);
    let namespaces = &namespaces;
    wait_for(
        "carts and orders Active",
        Duration::from_secs(120),
        || async move {
            let mut states = Vec::new();
            for name in ["carts", "orders"] {
                let n = namespaces.get(name).await.map_err(|e| e.to_string())?;
                states.push(n.status.and_then(|s| s.state));
            }
            match states.iter().all(|s| *s == Some(NamespaceState::Active)) {
                true => Ok(()),
                false => Err(format!("{states:?}\n{}", f.op.log_tail())),
            }
        },
    )
    .await;
}

/// Polls `promql` until it returns a series.
async fn series(p: &PrometheusServer, what: &str, promql: &str) -> Vec<Value> {
    wait_for(what, Duration::from_secs(90), || async move {
        match p.query(promql).await {
            Ok(r) if !r.is_empty() => Ok(r),
            Ok(_) => Err(format!("{promql}: no series")),
            Err(e) => Err(e),
        }
    })
    .await
}

/// Every metric an alert or panel reads is scraped (with the labels it matches on), every
/// alert expression evaluates, and every dashboard query returns data.
async fn every_alert_and_dashboard_query_finds_its_series(f: &Fleet) {
    let p = &f.prometheus;
    series(
        p,
        "the operator scraped",
        &format!("up{{job=\"{JOB}\"}} == 1"),
    )
    .await;
    // The series the state alerts fire on exist once the fleet is as built.
    for (what, promql) in [
        (
            "the stuck namespace",
            "prism_operator_namespace_not_active{name=\"stuck\"}",
        ),
        (
            "admin failures",
            "prism_operator_admin_calls_total{outcome=\"AdminUnavailable\"}",
        ),
        ("the traffic rounds", "prism_operator_prometheus_up == 1"),
        ("plugin versions", "prism_operator_plugin_shards"),
        ("the leader", "leader_election_master_status == 1"),
        ("proxy traffic", "rate(prism_requests_total[10s]) > 0"),
    ] {
        series(p, what, promql).await;
    }
    let docs = chart(&f.ns);
    let rule = docs
        .iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .expect("the chart's PrometheusRule");
    let alerts = promql::alert_rules(rule);
    assert!(alerts.len() >= 10, "{} alerts", alerts.len());
    let mut checked = BTreeSet::new();
    for alert in &alerts {
        p.query(&alert.expr)
            .await
            .unwrap_or_else(|e| panic!("alert {}: {e}", alert.name));
        for selector in promql::selectors(&alert.expr) {
            if checked.insert((selector.metric.clone(), selector.labels.clone())) {
                has_series(p, &format!("alert {}", alert.name), &selector).await;
            }
        }
    }
    let dashboard = docs
        .iter()
        .find(|d| {
            d["kind"] == "ConfigMap" && d["metadata"]["labels"]["grafana_dashboard"].is_string()
        })
        .expect("the chart's dashboard ConfigMap");
    let json = dashboard["data"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .and_then(Value::as_str)
        .unwrap();
    let json: Value = serde_json::from_str(json).unwrap();
    let queries = promql::dashboard_queries(&json);
    assert!(queries.len() >= 20, "{} queries", queries.len());
    for (title, expr) in queries {
        let expr = promql::grafana_expr_with(&expr, &[("job", JOB)]);
        series(p, &format!("panel {title:?}"), &expr).await;
    }
}

/// `selector`'s metric is scraped, with every label its matchers use.
async fn has_series(p: &PrometheusServer, what: &str, selector: &promql::Selector) {
    let found = series(
        p,
        &format!("{what}: {}", selector.metric),
        &format!("{{__name__=\"{}\"}}", selector.metric),
    )
    .await;
    for label in &selector.labels {
        assert!(
            found.iter().any(|s| s["metric"].get(label).is_some()),
            "{what}: no series of {} has label {label}: {found:?}",
            selector.metric
        );
    }
}

/// The namespace sync of `orders`: a reconcile span with the object, a child span for the
/// admin call (whose trace context admin received) and one for the status write; nothing
/// secret anywhere.
async fn a_namespace_sync_is_traced_end_to_end(f: &Fleet) {
    let is_reconcile_of = |s: &Span, name: &str| {
        s.name == "reconcile PrismNamespace"
            && s.attributes.get("k8s.object.name").map(String::as_str) == Some(name)
    };
    // The sync that admin accepted (earlier tries may have met admin without proxies yet).
    let accepted = |spans: &[Span]| -> Option<(Span, Span)> {
        spans.iter().find_map(|r| {
            let call = spans.iter().find(|c| {
                c.is_child_of(r)
                    && c.name == "prism.ControlPlane/CreateNamespace"
                    && c.attributes.get("outcome").map(String::as_str) == Some("ok")
            })?;
            is_reconcile_of(r, "orders").then(|| (r.clone(), call.clone()))
        })
    };
    let spans = f
        .collector
        .wait_spans(
            "a traced sync of orders that admin accepted",
            Duration::from_secs(60),
            |spans: &[Span]| accepted(spans).is_some(),
        )
        .await;
    let (reconcile, call) = accepted(&spans).unwrap();
    let reconcile = &reconcile;
    assert_eq!(reconcile.parent_span_id, None, "a reconcile is a root span");
    assert_eq!(
        reconcile.attributes.get("controller").map(String::as_str),
        Some("prismnamespace")
    );
    assert_eq!(reconcile.attributes.get("k8s.namespace.name"), Some(&f.ns));
    assert_eq!(
        reconcile.resource.get("service.name").map(String::as_str),
        Some("prism-operator")
    );
    // A failed call is an error span with its reason.
    for failed in spans.iter().filter(|c| {
        c.name.starts_with("prism.ControlPlane/")
            && c.attributes.get("outcome").is_some_and(|o| o != "ok")
    }) {
        assert_eq!(failed.status_code.as_deref(), Some("Error"), "{failed:?}");
    }
    let children: Vec<&Span> = spans.iter().filter(|c| c.is_child_of(reconcile)).collect();
    assert_eq!(call.kind.as_deref(), Some("Client"));
    assert_eq!(
        call.attributes.get("rpc.system").map(String::as_str),
        Some("grpc")
    );
    assert_eq!(call.status_code.as_deref(), Some("Ok"));
    let address = call.attributes.get("server.address").unwrap();
    assert!(address.contains(&f.admin.host_port()), "{address}");
    assert!(
        children
            .iter()
            .any(|c| c.name == "status write PrismNamespace"),
        "children of the reconcile: {:?}",
        children.iter().map(|c| &c.name).collect::<Vec<_>>()
    );
    // Admin received the trace context of the call's own span, in the sync's trace.
    let traceparent = f
        .admin
        .traceparent("orders")
        .expect("a traceparent sent to admin");
    let parts: Vec<String> = traceparent.split('-').map(String::from).collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[0], "00", "{traceparent}");
    let (trace, span) = (parts[1].clone(), parts[2].clone());
    let spans = f
        .collector
        .wait_spans(
            "the span named by admin's traceparent",
            Duration::from_secs(30),
            |spans: &[Span]| spans.iter().any(|s| s.span_id == span),
        )
        .await;
    let sent = spans.iter().find(|s| s.span_id == span).unwrap();
    assert_eq!(sent.trace_id, trace, "{traceparent}");
    assert_eq!(sent.name, "prism.ControlPlane/CreateNamespace");
    let parent = spans
        .iter()
        .find(|p| sent.is_child_of(p))
        .expect("the call's reconcile");
    assert!(is_reconcile_of(parent, "orders"), "{parent:?}");
    // The carts namespace's connection string went to admin, never into a span.
    f.collector
        .wait_spans(
            "a traced sync of carts",
            Duration::from_secs(60),
            |spans: &[Span]| spans.iter().any(|s| is_reconcile_of(s, "carts")),
        )
        .await;
    let raw = std::fs::read_to_string(f.collector.spans_path()).unwrap();
    assert!(
        !raw.contains(SECRET_VALUE),
        "a secret in the exported spans"
    );
    assert!(
        !raw.contains("postgres://"),
        "a connection string in the exported spans"
    );
    // A shard's reconcile holds a span for each server-side apply of its objects.
    let applied = |spans: &[Span]| {
        spans.iter().any(|r| {
            r.name == "reconcile PrismShard"
                && r.attributes.get("k8s.object.name").map(String::as_str) == Some("shop")
                && spans
                    .iter()
                    .any(|c| c.is_child_of(r) && c.name == "apply StatefulSet")
        })
    };
    f.collector
        .wait_spans(
            "a reconcile of shard shop with the apply of its StatefulSet",
            Duration::from_secs(60),
            applied,
        )
        .await;
}

/// With the collector gone, namespaces still become Active and the spans that cannot be sent
/// are counted as dropped.
async fn a_gone_collector_slows_nothing(f: Fleet) {
    let Fleet {
        op,
        collector,
        client,
        ns,
        scraper,
        reader,
        ..
    } = f;
    drop(collector);
    let f = Gone {
        client,
        ns,
        scraper,
        reader,
    };
    for i in 0..5 {
        apply_yaml(
            &f.client,
            &f.ns,
            &namespace_yaml(&format!("late-{i}"), "shop"),
        )
        .await;
    }
    let namespaces: Api<PrismNamespace> = Api::namespaced(f.client.clone(), &f.ns);
    let namespaces = &namespaces;
    wait_for(
        "the late namespaces Active without a collector",
        Duration::from_secs(60),
        || async move {
            let mut pending = Vec::new();
            for i in 0..5 {
                let n = namespaces
                    .get(&format!("late-{i}"))
                    .await
                    .map_err(|e| e.to_string())?;
                if n.status.and_then(|s| s.state) != Some(NamespaceState::Active) {
                    pending.push(i);
                }
            }
            match pending.is_empty() {
                true => Ok(()),
                false => Err(format!("pending: {pending:?}")),
            }
        },
    )
    .await;
    let scraper = &f.scraper;
    let reader = f.reader.as_str();
    wait_for(
        "dropped spans counted",
        Duration::from_secs(60),
        || async move {
            let text = scraper.get(Some(reader), None).await?.body;
            let dropped: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix("prism_operator_spans_dropped_total "))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            match dropped > 0.0 {
                true => Ok(()),
                false => Err(format!("dropped = {dropped}")),
            }
        },
    )
    .await;
    drop(op);
}

/// What the last phase still uses.
struct Gone {
    client: Client,
    ns: String,
    scraper: Scraper,
    reader: String,
}
