//! The chart's monitoring and network extras, rendered with helm (no cluster): the
//! PrometheusRule's alerts pass `promtool check rules` and fire or stay silent as
//! `tests/promtool/alerts_test.yaml` expects (Debian's promtool, the real rule engine), each with
//! a severity, a summary, a description and a runbook section in docs/alerts.md; the Grafana
//! dashboard's ConfigMap holds a dashboard whose every panel queries metrics the operator (or a
//! Prism proxy) serves, in queries promtool parses; the NetworkPolicy selects the operator's pods
//! with the expected ports.

use prism_testing as support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::helm::{documents, helm};
use support::paths;
use support::promql::{alert_rules, dashboard_queries, grafana_expr, selectors};

const RELEASE: &str = "prism-operator";
const NAMESPACE: &str = "prism-system";
/// The job label of the operator's series: the metrics Service's name.
const JOB: &str = "prism-operator-metrics";
const RUNBOOKS: &str = "https://github.com/prism/prism-operator/blob/main/docs/alerts.md";

/// Every series the operator serves on /metrics, and the proxies' traffic series: what alerts
/// and dashboard panels may query.
const CATALOGUE: &[&str] = &[
    "up",
    "controller_runtime_reconcile_total",
    "controller_runtime_reconcile_errors_total",
    "controller_runtime_terminal_reconcile_errors_total",
    "controller_runtime_reconcile_time_seconds_bucket",
    "controller_runtime_reconcile_time_seconds_sum",
    "controller_runtime_reconcile_time_seconds_count",
    "controller_runtime_active_workers",
    "controller_runtime_max_concurrent_reconciles",
    "rest_client_requests_total",
    "rest_client_request_duration_seconds_bucket",
    "leader_election_master_status",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
    "prism_operator_reconcile_errors_total",
    "prism_operator_object_writes_total",
    "prism_operator_admin_calls_total",
    "prism_operator_admin_call_duration_seconds_bucket",
    "prism_operator_prometheus_up",
    "prism_operator_resources",
    "prism_operator_condition",
    "prism_operator_namespace_not_active",
    "prism_operator_plugin_shards",
    "prism_operator_kind_served",
    "prism_operator_spans_dropped_total",
    "prism_requests_total",
    "prism_request_duration_seconds_bucket",
];

/// Series of Prism proxies, scraped by their PodMonitor: not the operator's job.
const PROXY_SERIES: &[&str] = &[
    "prism_requests_total",
    "prism_request_duration_seconds_bucket",
];

/// `helm template` of the chart as [`RELEASE`] in [`NAMESPACE`] with `--set` for each of `sets`.
fn render(sets: &[&str]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    // `helm template` talks to no cluster; a kubeconfig that does not exist proves it.
    let kubeconfig = dir.path().join("no-cluster.kubeconfig");
    let mut args = vec![
        "template",
        RELEASE,
        "charts/prism-operator",
        "--namespace",
        NAMESPACE,
    ];
    for set in sets {
        args.extend(["--set", *set]);
    }
    documents(&helm(&args, &kubeconfig))
}

fn only<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} rendered");
    found[0]
}

/// promtool: `PRISM_PROMTOOL`, else Debian's `/usr/bin/promtool` (package prometheus).
fn promtool() -> PathBuf {
    let path = std::env::var_os("PRISM_PROMTOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/promtool"));
    assert!(
        path.exists(),
        "{} not found: install Debian's prometheus package (.ci/run does) or set PRISM_PROMTOOL",
        path.display()
    );
    path
}

/// Runs promtool with `args` in `dir`; panics with everything it printed unless it succeeds.
fn run_promtool(args: &[&str], dir: &Path) -> String {
    let out = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

fn unit_tests_path() -> PathBuf {
    paths::root().join("crates/operator/tests/promtool/alerts_test.yaml")
}

/// The promtool unit-test file, parsed.
fn unit_tests() -> Value {
    let text = std::fs::read_to_string(unit_tests_path()).unwrap();
    serde_yaml::from_str(&text).expect("alerts_test.yaml is YAML")
}

/// GitHub's anchors of the headings of a Markdown file (outside code blocks).
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut fenced = false;
    let mut out = BTreeSet::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let text = line.trim_start_matches('#').trim();
        out.insert(
            text.to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
                .map(|c| if c == ' ' { '-' } else { c })
                .collect(),
        );
    }
    out
}

#[test]
fn chart_alerts_pass_promtool_check_and_unit_tests() {
    let docs = render(&["prometheusRule.enabled=true"]);
    let rule = only(&docs, "PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["metadata"]["namespace"], NAMESPACE);

    let dir = tempfile::tempdir().unwrap();
    let rules = serde_yaml::to_string(&rule["spec"]).unwrap();
    std::fs::write(dir.path().join("prometheus-rule.yaml"), &rules).unwrap();
    let mut tests = unit_tests();
    tests["rule_files"] = serde_json::json!(["prometheus-rule.yaml"]);
    std::fs::write(
        dir.path().join("alerts_test.yaml"),
        serde_yaml::to_string(&tests).unwrap(),
    )
    .unwrap();

    let checked = run_promtool(&["check", "rules", "prometheus-rule.yaml"], dir.path());
    let count = alert_rules(rule).len();
    assert!(
        checked.contains(&format!("SUCCESS: {count} rules found")),
        "{checked}"
    );
    let tested = run_promtool(&["test", "rules", "alerts_test.yaml"], dir.path());
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn chart_alerts_have_severity_annotations_and_a_runbook_section() {
    let docs = render(&["prometheusRule.enabled=true"]);
    let alerts = alert_rules(only(&docs, "PrometheusRule"));
    let names: Vec<&str> = alerts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "PrismOperatorDown",
            "PrismOperatorNoLeader",
            "PrismOperatorReconcileErrors",
            "PrismNamespaceNotActive",
            "PrismShardNotReady",
            "PrismShardDegraded",
            "PrismAdminUnreachable",
            "PrismAdminNoLeader",
            "PrismOperatorPrometheusUnreachable",
            "PrismPluginRolledBack",
            "PrismPluginRolloutStuck",
            "PrismFieldConflict",
            "PrismCRDMissing",
        ]
    );
    let runbooks = std::fs::read_to_string(paths::root().join("docs/alerts.md")).unwrap();
    let sections = anchors(&runbooks);
    for alert in &alerts {
        let name = &alert.name;
        assert!(
            matches!(
                alert.labels.get("severity").map(String::as_str),
                Some("critical" | "warning")
            ),
            "{name}: severity critical or warning: {:?}",
            alert.labels
        );
        for key in ["summary", "description"] {
            let text = alert.annotations.get(key).map(String::as_str);
            assert!(
                text.is_some_and(|t| !t.trim().is_empty() && !t.contains("%for%")),
                "{name}: {key}: {text:?}"
            );
        }
        let url = alert
            .annotations
            .get("runbook_url")
            .unwrap_or_else(|| panic!("{name}: a runbook_url"));
        let anchor = url
            .strip_prefix(&format!("{RUNBOOKS}#"))
            .unwrap_or_else(|| panic!("{name}: runbook_url {url} is not under {RUNBOOKS}#"));
        assert_eq!(
            anchor,
            name.to_lowercase(),
            "{name}: the anchor of its name"
        );
        assert!(
            sections.contains(anchor),
            "{name}: docs/alerts.md has no section #{anchor}"
        );
        // Every selector names a catalogue metric and this release's job.
        for s in selectors(&alert.expr) {
            assert!(
                CATALOGUE.contains(&s.metric.as_str()),
                "{name}: {} is not a metric the operator serves",
                s.metric
            );
            assert!(
                s.labels.iter().any(|l| l == "job"),
                "{name}: {} without a job matcher",
                s.metric
            );
        }
        assert!(
            alert.expr.contains(&format!("job=\"{JOB}\"")),
            "{name}: {}",
            alert.expr
        );
    }
}

#[test]
fn chart_alerts_each_have_a_firing_and_a_silent_promtool_case() {
    let docs = render(&["prometheusRule.enabled=true"]);
    let alerts = alert_rules(only(&docs, "PrometheusRule"));
    let tests = unit_tests();
    assert_eq!(
        tests["rule_files"],
        serde_json::json!(["prometheus-rule.yaml"])
    );
    // alert name -> (cases where it fires, cases where it is expected silent)
    let mut cases: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for test in tests["tests"].as_array().expect("tests") {
        for case in test["alert_rule_test"].as_array().into_iter().flatten() {
            let name = case["alertname"]
                .as_str()
                .expect("an alertname")
                .to_string();
            let expected = case["exp_alerts"].as_array().map_or(0, Vec::len);
            let entry = cases.entry(name).or_default();
            if expected > 0 {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
    }
    for alert in &alerts {
        let (firing, silent) = cases.get(&alert.name).copied().unwrap_or_default();
        assert!(
            firing > 0 && silent > 0,
            "{}: {firing} firing and {silent} silent cases in {}",
            alert.name,
            unit_tests_path().display()
        );
    }
    let known: BTreeSet<&str> = alerts.iter().map(|a| a.name.as_str()).collect();
    for name in cases.keys() {
        assert!(
            known.contains(name.as_str()),
            "{name} is tested but not an alert"
        );
    }
}

#[test]
fn chart_alerts_overrides_and_defaults() {
    // Off by default, like the dashboard and the NetworkPolicy.
    let docs = render(&[]);
    for kind in ["PrometheusRule", "NetworkPolicy"] {
        assert!(
            !docs.iter().any(|d| d["kind"] == kind),
            "no {kind} by default"
        );
    }
    assert!(
        !docs.iter().any(
            |d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "prism-operator-dashboard"
        ),
        "no dashboard by default"
    );

    let docs = render(&[
        "prometheusRule.enabled=true",
        "prometheusRule.labels.release=kube-prometheus",
        "prometheusRule.alertLabels.team=prism",
        "prometheusRule.runbookBaseURL=https://wiki.example.com/prism/",
        "prometheusRule.alerts.PrismNamespaceNotActive.for=2h",
        "prometheusRule.alerts.PrismAdminUnreachable.severity=warning",
        "prometheusRule.alerts.PrismCRDMissing.enabled=false",
        "leaderElection.enabled=false",
    ]);
    let rule = only(&docs, "PrometheusRule");
    assert_eq!(rule["metadata"]["labels"]["release"], "kube-prometheus");
    let alerts = alert_rules(rule);
    let by_name: BTreeMap<&str, _> = alerts.iter().map(|a| (a.name.as_str(), a)).collect();
    assert!(!by_name.contains_key("PrismCRDMissing"), "disabled");
    assert!(
        !by_name.contains_key("PrismOperatorNoLeader"),
        "no leader election, no leader alert"
    );
    let not_active = by_name["PrismNamespaceNotActive"];
    assert_eq!(not_active.for_.as_deref(), Some("2h"));
    assert!(
        not_active.annotations["description"].contains("for 2h"),
        "{:?}",
        not_active.annotations
    );
    assert_eq!(
        by_name["PrismAdminUnreachable"].labels["severity"],
        "warning"
    );
    for alert in &alerts {
        assert_eq!(alert.labels["team"], "prism", "{}", alert.name);
        assert_eq!(
            alert.annotations["runbook_url"],
            format!(
                "https://wiki.example.com/prism#{}",
                alert.name.to_lowercase()
            )
        );
    }
}

/// Every panel of a dashboard, rows' nested panels included, rows themselves excluded.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            if panel["type"] != "row" {
                out.push(panel);
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

#[test]
fn chart_dashboard_configmap_queries_catalogue_metrics() {
    let docs = render(&[
        "grafanaDashboard.enabled=true",
        "grafanaDashboard.namespace=monitoring",
        "grafanaDashboard.annotations.grafana_folder=Prism",
    ]);
    let map = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "prism-operator-dashboard")
        .expect("the dashboard ConfigMap");
    assert_eq!(map["metadata"]["namespace"], "monitoring");
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(map["metadata"]["annotations"]["grafana_folder"], "Prism");
    let text = map["data"]["prism-operator.json"]
        .as_str()
        .expect("the dashboard under prism-operator.json");
    let dashboard: Value = serde_json::from_str(text).expect("dashboard JSON");
    assert!(dashboard["title"].is_string() && dashboard["uid"].is_string());

    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    let variable = |name: &str| {
        variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("a {name} variable"))
    };
    assert_eq!(variable("datasource")["type"], "datasource");
    assert_eq!(variable("datasource")["query"], "prometheus");
    assert_eq!(variable("job")["type"], "query");

    let all = panels(&dashboard);
    assert!(all.len() >= 20, "{} panels", all.len());
    for panel in &all {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "a panel without a title: {panel}");
        let exprs: Vec<&str> = panel["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["expr"].as_str())
            .filter(|e| !e.trim().is_empty())
            .collect();
        assert!(!exprs.is_empty(), "{title}: no target with an expr");
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{title}: the datasource variable"
        );
    }

    let queries = dashboard_queries(&dashboard);
    let mut seen = BTreeSet::new();
    for (title, expr) in &queries {
        assert!(!expr.trim().is_empty(), "{title}: an empty expr");
        let plain = grafana_expr(expr);
        assert!(!plain.contains('$'), "{title}: {plain}");
        let found = selectors(&plain);
        assert!(!found.is_empty(), "{title}: no selector in {expr}");
        for s in found {
            assert!(
                CATALOGUE.contains(&s.metric.as_str()),
                "{title}: {} is not a metric the operator or a proxy serves",
                s.metric
            );
            if !PROXY_SERIES.contains(&s.metric.as_str()) {
                assert!(
                    s.labels.iter().any(|l| l == "job"),
                    "{title}: {} without the job variable",
                    s.metric
                );
            }
            seen.insert(s.metric);
        }
    }
    // Every query parses as Prometheus's own parser sees it: as recording rules for promtool.
    let rules = serde_json::json!({"groups": [{
        "name": "dashboard",
        "rules": queries.iter().enumerate().map(|(i, (_, expr))| serde_json::json!({
            "record": format!("dashboard:query_{i}"),
            "expr": grafana_expr(expr),
        })).collect::<Vec<_>>(),
    }]});
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dashboard-queries.yaml"),
        serde_yaml::to_string(&rules).unwrap(),
    )
    .unwrap();
    let checked = run_promtool(&["check", "rules", "dashboard-queries.yaml"], dir.path());
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", queries.len())),
        "{checked}"
    );

    // The fleet, reconciliation, admin, rollout, traffic and process panels all have data.
    for metric in [
        "prism_operator_resources",
        "prism_operator_namespace_not_active",
        "controller_runtime_reconcile_total",
        "controller_runtime_reconcile_time_seconds_bucket",
        "prism_operator_object_writes_total",
        "prism_operator_admin_calls_total",
        "prism_operator_admin_call_duration_seconds_bucket",
        "prism_operator_plugin_shards",
        "prism_requests_total",
        "prism_request_duration_seconds_bucket",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "leader_election_master_status",
    ] {
        assert!(seen.contains(metric), "no panel queries {metric}");
    }

    // The label's value can be changed.
    let docs = render(&[
        "grafanaDashboard.enabled=true",
        "grafanaDashboard.labelValue=prism",
    ]);
    let map = only(&docs, "ConfigMap");
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "prism");
    assert_eq!(map["metadata"]["namespace"], NAMESPACE);
}

/// (port, protocol) of a list of NetworkPolicy ports.
fn ports(rule: &Value) -> BTreeSet<(i64, String)> {
    rule["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["port"].as_i64().expect("a numeric port"),
                p["protocol"].as_str().unwrap_or("TCP").to_string(),
            )
        })
        .collect()
}

fn tcp(list: &[i64]) -> BTreeSet<(i64, String)> {
    list.iter().map(|p| (*p, "TCP".to_string())).collect()
}

#[test]
fn chart_network_policy_selects_the_operator_with_its_ports() {
    let docs = render(&["networkPolicy.enabled=true"]);
    let policy = only(&docs, "NetworkPolicy");
    let deployment = only(&docs, "Deployment");
    assert_eq!(policy["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"], deployment["spec"]["selector"]["matchLabels"],
        "selects exactly the operator's pods"
    );
    assert_eq!(
        policy["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );

    let ingress = policy["spec"]["ingress"].as_array().expect("ingress rules");
    let webhook = ingress
        .iter()
        .find(|r| ports(r) == tcp(&[9443]))
        .expect("the webhook port");
    assert!(webhook.get("from").is_none(), "webhooks from anywhere");
    let metrics = ingress
        .iter()
        .find(|r| ports(r) == tcp(&[8443]))
        .expect("the metrics port");
    assert_eq!(
        metrics["from"],
        serde_json::json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]),
        "metrics only from the monitoring namespace"
    );
    assert!(
        ingress.iter().any(|r| ports(r) == tcp(&[8081])),
        "the health port"
    );
    assert_eq!(ingress.len(), 3, "{ingress:?}");
    // The container ports the Deployment names are the ones admitted.
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let admitted: BTreeSet<i64> = ingress.iter().flat_map(ports).map(|(p, _)| p).collect();
    for port in container["ports"].as_array().into_iter().flatten() {
        let number = port["containerPort"].as_i64().unwrap();
        assert!(admitted.contains(&number), "container port {port} admitted");
    }

    let egress = policy["spec"]["egress"].as_array().expect("egress rules");
    let egress_ports: Vec<BTreeSet<(i64, String)>> = egress.iter().map(ports).collect();
    for expected in [
        tcp(&[443, 6443]),
        tcp(&[8981]),
        tcp(&[9090]),
        tcp(&[4317]),
        [(53, "UDP".to_string()), (53, "TCP".to_string())]
            .into_iter()
            .collect(),
    ] {
        assert!(
            egress_ports.contains(&expected),
            "egress to {expected:?}: {egress_ports:?}"
        );
    }
    assert_eq!(egress.len(), 5, "{egress:?}");
    let dns = &egress[egress_ports
        .iter()
        .position(|p| p.contains(&(53, "UDP".into())))
        .unwrap()];
    assert_eq!(
        dns["to"][0]["podSelector"]["matchLabels"]["k8s-app"],
        "kube-dns"
    );

    // Peers and CIDRs narrow a rule; extra rules are appended.
    let docs = render(&[
        "networkPolicy.enabled=true",
        "networkPolicy.egress.apiServer.cidrs={10.0.0.10/32,10.0.0.11/32}",
        "networkPolicy.egress.admin.ports={8981,8982}",
        "networkPolicy.egress.admin.to[0].namespaceSelector.matchLabels.prism\\.io/admin=enabled",
        "networkPolicy.ingress.webhook.from[0].ipBlock.cidr=172.16.0.0/12",
        "networkPolicy.ingress.extra[0].ports[0].port=9000",
    ]);
    let policy = only(&docs, "NetworkPolicy");
    let egress = policy["spec"]["egress"].as_array().unwrap();
    let api = egress
        .iter()
        .find(|r| ports(r) == tcp(&[443, 6443]))
        .unwrap();
    assert_eq!(
        api["to"],
        serde_json::json!([{"ipBlock": {"cidr": "10.0.0.10/32"}}, {"ipBlock": {"cidr": "10.0.0.11/32"}}])
    );
    let admin = egress
        .iter()
        .find(|r| ports(r) == tcp(&[8981, 8982]))
        .unwrap();
    assert_eq!(
        admin["to"][0]["namespaceSelector"]["matchLabels"]["prism.io/admin"],
        "enabled"
    );
    let ingress = policy["spec"]["ingress"].as_array().unwrap();
    let webhook = ingress.iter().find(|r| ports(r) == tcp(&[9443])).unwrap();
    assert_eq!(webhook["from"][0]["ipBlock"]["cidr"], "172.16.0.0/12");
    assert_eq!(ingress.len(), 4);
}
