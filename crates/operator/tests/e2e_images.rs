//! The container images, built by `images/build.sh` and run with podman: the operator image
//! runs exactly as the chart's Deployment describes it against the test control plane; the
//! plugin image renders like the host binary; both are tagged as the chart and Argo CD files
//! refer to them, labelled, small and reproducible.

use prism_testing as support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::admin_server::AdminServer;
use support::cluster::{NamespaceOptions, cluster, test_namespace_with};
use support::helm::{documents, helm, service_account_token};
use support::operator::{
    FleetAdmins, WEBHOOKS_SERVING, apply_example_fleet, wait_example_fleet_logged,
    webhooks_to_loopback,
};
use support::podman::{Container, build_images, images, podman_ok};
use support::process::{free_port, http_get};
use support::scrape::{Scraper, scraper_token};
use support::{paths, wait_for};

/// The host's `prism-render`, built with the workspace.
fn render() -> std::path::PathBuf {
    support::process::cargo_binary("prism-render", "prism-render")
}

/// The one object of `kind` in `docs`.
fn only<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} rendered");
    found[0]
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// `podman run` options for a pod's single container, as a kubelet would run it on the host
/// network: user and group, read-only root filesystem, capabilities, no privilege escalation,
/// the container's env (fieldRefs resolved for `pod`/`namespace`), the in-cluster service
/// variables, the service-account mount, the other `volumes` (see [`project_volumes`]), the
/// image and its args.
fn run_options(
    pod_spec: &Value,
    pod: (&str, &str),
    api: (&str, u16),
    service_account_dir: &Path,
    volumes: &[String],
) -> Vec<String> {
    let containers = pod_spec["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "one container");
    let c = &containers[0];
    let (pod_sc, sc) = (&pod_spec["securityContext"], &c["securityContext"]);
    let pick = |key: &str| -> Value {
        if sc[key].is_null() {
            pod_sc[key].clone()
        } else {
            sc[key].clone()
        }
    };
    let user = pick("runAsUser").as_i64().expect("runAsUser set");
    let group = pick("runAsGroup").as_i64().expect("runAsGroup set");
    let mut args: Vec<String> = vec![
        "--network=host".into(),
        format!("--user={user}:{group}"),
        format!(
            "--stop-timeout={}",
            pod_spec["terminationGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(30)
        ),
    ];
    if sc["readOnlyRootFilesystem"] == true {
        // Like a kubelet: nothing writable, not even the tmpfs podman would add.
        args.extend(["--read-only".into(), "--read-only-tmpfs=false".into()]);
    }
    if sc["allowPrivilegeEscalation"] == false {
        args.push("--security-opt=no-new-privileges".into());
    }
    for cap in strings(&sc["capabilities"]["drop"]) {
        args.push(format!("--cap-drop={cap}"));
    }
    for e in c["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap();
        let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            Some("metadata.name") => pod.0.to_string(),
            Some("metadata.namespace") => pod.1.to_string(),
            Some(other) => panic!("env {name}: fieldRef {other} not modelled"),
            None => e["value"].as_str().expect("env value or fieldRef").into(),
        };
        args.push(format!("--env={name}={value}"));
    }
    assert_eq!(
        pod_spec["enableServiceLinks"], false,
        "only the kubernetes service variables are injected"
    );
    args.push(format!("--env=KUBERNETES_SERVICE_HOST={}", api.0));
    args.push(format!("--env=KUBERNETES_SERVICE_PORT={}", api.1));
    args.push(format!(
        "--volume={}:/var/run/secrets/kubernetes.io/serviceaccount:ro",
        service_account_dir.display()
    ));
    args.extend(volumes.iter().cloned());
    if let Some(command) = c["command"].as_array() {
        args.push(format!(
            "--entrypoint={}",
            serde_json::to_string(command).unwrap()
        ));
    }
    args.push(c["image"].as_str().unwrap().to_string());
    args.extend(strings(&c["args"]));
    args
}

/// The ConfigMap and Secret volumes the container mounts, projected as a kubelet does: the
/// items (or every key) of the object in namespace `ns`, read from the cluster, written under
/// `dir`, readable by any user; returns the `--volume` options mounting them read-only.
async fn project_volumes(
    client: &kube::Client,
    ns: &str,
    pod_spec: &Value,
    dir: &Path,
) -> Vec<String> {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use std::os::unix::fs::PermissionsExt;
    let mut options = Vec::new();
    let mounts = pod_spec["containers"][0]["volumeMounts"]
        .as_array()
        .cloned();
    for mount in mounts.unwrap_or_default() {
        let name = mount["name"].as_str().unwrap();
        let volume = pod_spec["volumes"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["name"] == name))
            .unwrap_or_else(|| panic!("volume {name} of a mount"));
        let (data, items): (BTreeMap<String, Vec<u8>>, &Value) =
            if let Some(name) = volume["configMap"]["name"].as_str() {
                let cm = kube::Api::<ConfigMap>::namespaced(client.clone(), ns)
                    .get(name)
                    .await
                    .unwrap_or_else(|e| panic!("ConfigMap {ns}/{name}: {e}"));
                let data = cm.data.unwrap_or_default().into_iter();
                (
                    data.map(|(k, v)| (k, v.into_bytes())).collect(),
                    &volume["configMap"]["items"],
                )
            } else if let Some(name) = volume["secret"]["secretName"].as_str() {
                let secret = kube::Api::<Secret>::namespaced(client.clone(), ns)
                    .get(name)
                    .await
                    .unwrap_or_else(|e| panic!("Secret {ns}/{name}: {e}"));
                let data = secret.data.unwrap_or_default().into_iter();
                (
                    data.map(|(k, v)| (k, v.0)).collect(),
                    &volume["secret"]["items"],
                )
            } else {
                panic!("volume {volume}: only configMap and secret volumes are modelled");
            };
        let files: Vec<(String, String)> = match items.as_array() {
            Some(items) => items
                .iter()
                .map(|i| {
                    (
                        i["key"].as_str().unwrap().into(),
                        i["path"].as_str().unwrap().into(),
                    )
                })
                .collect(),
            None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
        };
        let host = dir.join(name);
        std::fs::create_dir_all(&host).unwrap();
        for (key, path) in files {
            let bytes = data
                .get(&key)
                .unwrap_or_else(|| panic!("volume {name}: no key {key}"));
            std::fs::write(host.join(&path), bytes).unwrap();
            std::fs::set_permissions(host.join(&path), std::fs::Permissions::from_mode(0o644))
                .unwrap();
        }
        std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mount_path = mount["mountPath"].as_str().unwrap();
        options.push(format!("--volume={}:{mount_path}:ro", host.display()));
    }
    options
}

/// The files a kubelet projects into `/var/run/secrets/kubernetes.io/serviceaccount`, readable
/// by the container's user.
fn service_account_files(dir: &Path, token: &str, ca: &Path, namespace: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(dir.join("token"), token).unwrap();
    std::fs::copy(ca, dir.join("ca.crt")).unwrap();
    std::fs::write(dir.join("namespace"), namespace).unwrap();
    for f in ["token", "ca.crt", "namespace"] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_image_runs_as_the_chart_deploys_it() {
    let images = images();
    let c = cluster().await;
    let kubeconfig = c.kubeconfig_path();
    let (admin, release_ns) =
        test_namespace_with("prism-system", &NamespaceOptions::restricted()).await;
    let prism_admin = AdminServer::start().await;
    let port = free_port().to_string();
    let metrics_port = free_port();
    let webhook_port = free_port();
    let values = [
        format!("health.port={port}"),
        // The host network is the container's: listen on loopback only.
        "health.bindAddress=127.0.0.1".into(),
        format!("metrics.port={metrics_port}"),
        "metrics.bindAddress=127.0.0.1".into(),
        format!("adminEndpoint={}", prism_admin.endpoint()),
        "adminTimeout=2s".into(),
        "resync=30s".into(),
        format!("webhook.port={webhook_port}"),
        "webhook.bindAddress=127.0.0.1".into(),
        "webhook.extraSANs={127.0.0.1}".into(),
    ];
    let mut args = vec![
        "prism-operator",
        "charts/prism-operator",
        "--namespace",
        &release_ns,
    ];
    for v in &values {
        args.extend(["--set", v]);
    }
    // The chart's RBAC and ServiceAccount in the cluster, and its Deployment as rendered.
    helm(&[&["install"], &args[..]].concat(), &kubeconfig);
    let docs = documents(&helm(&[&["template"], &args[..]].concat(), &kubeconfig));
    let deployment = only(&docs, "Deployment");
    let pod_spec = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod_spec["containers"][0]["image"], images.operator,
        "the chart deploys the image images/build.sh builds"
    );

    let sa_dir = tempfile::tempdir().unwrap();
    let sa = pod_spec["serviceAccountName"].as_str().unwrap();
    let token = service_account_token(&admin, &release_ns, sa).await;
    service_account_files(sa_dir.path(), &token, &c.ca_cert_path(), &release_ns);
    let api_port: u16 = c.server_url().rsplit_once(':').unwrap().1.parse().unwrap();
    assert!(
        pod_spec["volumes"].is_null(),
        "no volumes by default: {pod_spec}"
    );
    let options = run_options(
        pod_spec,
        ("prism-operator-7d9f8-image", &release_ns),
        ("127.0.0.1", api_port),
        sa_dir.path(),
        &[],
    );
    let container = Container::run(&format!("prism-e2e-operator-{port}"), &options);

    // Probes on the port the chart declares.
    let container_spec = &pod_spec["containers"][0];
    assert_eq!(container_spec["livenessProbe"]["httpGet"]["port"], "health");
    let probe_port = container_spec["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "health")
        .expect("a port named health")["containerPort"]
        .as_i64()
        .unwrap();
    assert_eq!(probe_port.to_string(), port);
    let base = format!("http://127.0.0.1:{port}");
    wait_for(
        "the container serving /healthz",
        Duration::from_secs(60),
        || {
            let url = format!("{base}/healthz");
            let state = container.inspect("{{.State.Status}}");
            let logs = container.logs();
            async move {
                http_get(&url)
                    .await
                    .map_err(|e| format!("{e}; container {state}; logs:\n{logs}"))
            }
        },
    )
    .await;

    // The image keeps its own webhook certificates (no HOME, no shell, no CA roots needed) and
    // serves the webhooks the chart registered, here reached on loopback.
    webhooks_to_loopback(&admin, "prism-operator", webhook_port).await;
    wait_for(
        "the container serving its webhooks",
        Duration::from_secs(60),
        || {
            let logs = container.logs();
            async move {
                match logs.contains(WEBHOOKS_SERVING) {
                    true => Ok(()),
                    false => Err(format!("logs:\n{logs}")),
                }
            }
        },
    )
    .await;
    let (_, fleet_ns) = test_namespace_with("fleet", &NamespaceOptions::restricted()).await;
    let fleet_admins = FleetAdmins::start().await;
    apply_example_fleet(&admin, &fleet_ns, &fleet_admins).await;
    wait_example_fleet_logged(&admin, &fleet_ns, || container.logs()).await;
    assert_eq!(
        fleet_admins.namespace_count(),
        12,
        "every namespace reached its shard\'s admin"
    );
    let resource = kube::core::ApiResource::erase::<prism_api::PrismShard>(&());
    let shards: kube::Api<kube::core::DynamicObject> =
        kube::Api::namespaced_with(admin.clone(), &fleet_ns, &resource);
    let bad: kube::core::DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": prism_api::API_VERSION, "kind": "PrismShard", "metadata": {"name": "bad"},
        "spec": {"product": "p", "storage": {"size": "10 gigabytes"}}
    }))
    .unwrap();
    let refused = shards
        .create(&Default::default(), &bad)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains(
            "admission webhook \"validate.prism.io\" denied the request: spec.storage.size"
        ),
        "{refused}"
    );
    http_get(&format!("{base}/readyz"))
        .await
        .expect("/readyz once leading and synced");
    // /metrics over HTTPS with the certificate the image keeps, checked as the chart's
    // ServiceMonitor checks it; only for a token the API server accepts and authorizes.
    let scraper = Scraper::new(
        &admin,
        &release_ns,
        "prism-operator-webhook-cert",
        &format!("prism-operator-metrics.{release_ns}.svc"),
        metrics_port,
    )
    .await;
    let anonymous = scraper.get(None, None).await.unwrap();
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    let stranger = scraper_token(&admin, &release_ns, "stranger", None).await;
    let refused = scraper.get(Some(&stranger), None).await.unwrap();
    assert_eq!(refused.status, 403, "{}", refused.body);
    let reader = scraper_token(
        &admin,
        &release_ns,
        "reader",
        Some("prism-operator-metrics-reader"),
    )
    .await;
    let metrics = scraper.get(Some(&reader), None).await.unwrap();
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    assert!(
        metrics
            .body
            .contains("controller_runtime_reconcile_total{controller=\"prismshard\""),
        "{}",
        metrics.body
    );
    let logs = container.logs();
    assert!(!logs.contains("forbidden"), "{logs}");
    assert!(
        !logs.contains("postgres://"),
        "no connection string in logs"
    );

    // SIGTERM as PID 1: a clean exit well within the grace period.
    let grace = pod_spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    let started = Instant::now();
    podman_ok(&["stop", "--time", &grace.to_string(), &container.name]);
    let took = started.elapsed();
    assert_eq!(
        container.inspect("{{.State.ExitCode}}"),
        "0",
        "exit status after SIGTERM; logs:\n{}",
        container.logs()
    );
    assert!(
        took < Duration::from_secs(grace),
        "stopping took {took:?} of a {grace} s grace period"
    );
    drop(container);

    let release = Release {
        args: args.iter().map(|a| a.to_string()).collect(),
        kubeconfig,
        admin,
        ns: release_ns,
        api_port,
        service_account_dir: sa_dir.path(),
    };
    traces_over_tls_and_plain_metrics(&release).await;
    each_value_that_changes_the_arguments(&release).await;
}

/// The chart installed in the first configuration, whose RBAC the next one runs with.
struct Release<'a> {
    /// `helm install` arguments after the verb: release, chart, namespace, values.
    args: Vec<String>,
    kubeconfig: std::path::PathBuf,
    admin: kube::Client,
    ns: String,
    api_port: u16,
    service_account_dir: &'a Path,
}

/// The image as the chart deploys it with plain `/metrics`, traces to an OTLP endpoint over TLS and an https
/// Prometheus with a bearer token: each CA and the token read from the volumes the chart mounts
/// (the image has no CA roots), spans arriving at a real collector, the traffic queries
/// answered.
async fn traces_over_tls_and_plain_metrics(release: &Release<'_>) {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use support::otelcol::Collector;
    use support::prometheus::{PrometheusServer, TrafficExporter};
    let (admin, ns) = (&release.admin, &release.ns);
    let ca = support::pki::Ca::new("observability");
    let collector = Collector::start_tls(&ca.server()).await;
    let exporter = TrafficExporter::start().await;
    let prometheus = PrometheusServer::start_tls(exporter.port(), &[], &ca.server()).await;
    assert!(
        prometheus.url().starts_with("https://"),
        "{}",
        prometheus.url()
    );
    let params = kube::api::PostParams::default();
    let config_maps = kube::Api::<ConfigMap>::namespaced(admin.clone(), ns);
    for name in ["otlp-ca", "prometheus-ca"] {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name}, "data": {"ca.crt": ca.pem}
        }))
        .unwrap();
        config_maps.create(&params, &cm).await.unwrap();
    }
    let token: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "prometheus-token"}, "stringData": {"token": "scrape-me"}
    }))
    .unwrap();
    kube::Api::<Secret>::namespaced(admin.clone(), ns)
        .create(&params, &token)
        .await
        .unwrap();

    let [health_port, metrics_port] = support::process::free_ports().unwrap();
    let values = [
        "metrics.secure=false".to_string(),
        format!("metrics.port={metrics_port}"),
        format!("health.port={health_port}"),
        format!("tracing.otlpEndpoint={}", collector.endpoint()),
        "tracing.caConfigMap=otlp-ca".into(),
        format!("prometheus.url={}", prometheus.url()),
        "prometheus.interval=2s".into(),
        "prometheus.caConfigMap=prometheus-ca".into(),
        "prometheus.tokenSecret=prometheus-token".into(),
    ];
    let mut args: Vec<&str> = release.args.iter().map(String::as_str).collect();
    for v in &values {
        args.extend(["--set", v]);
    }
    // The release's RBAC and Secrets stay as installed; these values change only the pod.
    let docs = documents(&helm(
        &[&["template"], &args[..]].concat(),
        &release.kubeconfig,
    ));
    let pod_spec = &only(&docs, "Deployment")["spec"]["template"]["spec"];
    let volumes_dir = tempfile::tempdir().unwrap();
    let volumes = project_volumes(admin, ns, pod_spec, volumes_dir.path()).await;
    assert_eq!(volumes.len(), 3, "{volumes:?}");
    let options = run_options(
        pod_spec,
        ("prism-operator-7d9f8-traced", ns),
        ("127.0.0.1", release.api_port),
        release.service_account_dir,
        &volumes,
    );
    let container = Container::run(&format!("prism-e2e-operator-{health_port}"), &options);

    // Plain HTTP for anyone, with the figures of the https Prometheus.
    let url = format!("http://127.0.0.1:{metrics_port}/metrics");
    wait_for(
        "plain /metrics with the traffic queries answered",
        Duration::from_secs(90),
        || {
            let url = url.clone();
            let logs = container.logs();
            async move {
                let body = http_get(&url)
                    .await
                    .map_err(|e| format!("{e}; logs:\n{logs}"))?;
                match body.lines().any(|l| l == "prism_operator_prometheus_up 1") {
                    true => Ok(()),
                    false => Err(format!(
                        "no prism_operator_prometheus_up 1 in:\n{body}\nlogs:\n{logs}"
                    )),
                }
            }
        },
    )
    .await;
    // The fleet's shards, reconciled again at start, traced over TLS.
    let spans = collector
        .wait_spans(
            "a reconcile span from the image",
            Duration::from_secs(90),
            |spans| spans.iter().any(|s| s.name == "reconcile PrismShard"),
        )
        .await;
    let reconcile = spans
        .iter()
        .find(|s| s.name == "reconcile PrismShard")
        .unwrap();
    assert_eq!(
        reconcile.resource.get("service.name").map(String::as_str),
        Some("prism-operator"),
        "{reconcile:?}"
    );
    let logs = container.logs();
    assert!(
        !logs.contains("scrape-me"),
        "the token in the logs:\n{logs}"
    );
    podman_ok(&["stop", "--time", "30", &container.name]);
    assert_eq!(
        container.inspect("{{.State.ExitCode}}"),
        "0",
        "exit status after SIGTERM; logs:\n{}",
        container.logs()
    );
}

/// The image as the chart deploys it with each value that changes the container's arguments
/// on its own: Prometheus over plain http without a CA (the image has no CA roots and must not
/// need them), network policies, render mode, one watched namespace, mutual TLS to Prism admin
/// (a namespace reaches an admin that takes only the chart's client certificate). Each one
/// becomes ready and stops cleanly. An https Prometheus without a CA is refused at start, said
/// once.
async fn each_value_that_changes_the_arguments(release: &Release<'_>) {
    use support::prometheus::{PrometheusServer, TrafficExporter};
    let tls_admin = admin_with_client_certificates(release).await;
    let exporter = TrafficExporter::start().await;
    let prometheus = PrometheusServer::start(exporter.port(), &[]).await;
    assert!(
        prometheus.url().starts_with("http://"),
        "{}",
        prometheus.url()
    );
    let cases: [(&str, Vec<String>, &str); 5] = [
        (
            "prometheus",
            vec![
                format!("prometheus.url={}", prometheus.url()),
                "prometheus.interval=2s".into(),
            ],
            "prism_operator_prometheus_up 1",
        ),
        ("policies", vec!["networkPolicies=true".into()], ""),
        ("render", vec!["renderMode=true".into()], ""),
        ("watch", vec![format!("watchNamespace={}", release.ns)], ""),
        (
            "admin-tls",
            vec![
                format!("adminEndpoint={}", tls_admin.endpoint()),
                "adminTLS.caConfigMap=admin-ca".into(),
                "adminTLS.clientSecret=admin-client".into(),
            ],
            "",
        ),
    ];
    for (case, values, metric) in cases {
        let [health_port, metrics_port, webhook_port] = support::process::free_ports().unwrap();
        let mut all = vec![
            "metrics.secure=false".to_string(),
            format!("metrics.port={metrics_port}"),
            format!("health.port={health_port}"),
            format!("webhook.port={webhook_port}"),
        ];
        all.extend(values.iter().cloned());
        let mut args: Vec<&str> = release.args.iter().map(String::as_str).collect();
        for v in &all {
            args.extend(["--set", v]);
        }
        let docs = documents(&helm(
            &[&["template"], &args[..]].concat(),
            &release.kubeconfig,
        ));
        let pod_spec = &only(&docs, "Deployment")["spec"]["template"]["spec"];
        let volumes_dir = tempfile::tempdir().unwrap();
        let volumes =
            project_volumes(&release.admin, &release.ns, pod_spec, volumes_dir.path()).await;
        let options = run_options(
            pod_spec,
            (&format!("prism-operator-7d9f8-{case}"), &release.ns),
            ("127.0.0.1", release.api_port),
            release.service_account_dir,
            &volumes,
        );
        let container = Container::run(&format!("prism-e2e-operator-{health_port}"), &options);
        let ready = format!("http://127.0.0.1:{health_port}/readyz");
        let metrics = format!("http://127.0.0.1:{metrics_port}/metrics");
        wait_for(
            &format!(
                "{case}: ready{}",
                if metric.is_empty() {
                    ""
                } else {
                    ", with its metric"
                }
            ),
            Duration::from_secs(90),
            || {
                let (ready, metrics) = (ready.clone(), metrics.clone());
                let state = container.inspect("{{.State.Status}}");
                let logs = container.logs();
                async move {
                    let fail = |e: String| format!("{e}; container {state}; logs:\n{logs}");
                    http_get(&ready).await.map_err(fail)?;
                    if metric.is_empty() {
                        return Ok(());
                    }
                    let body = http_get(&metrics).await.map_err(fail)?;
                    match body.lines().any(|l| l == metric) {
                        true => Ok(()),
                        false => Err(fail(format!("no {metric}"))),
                    }
                }
            },
        )
        .await;
        if case == "admin-tls" {
            assert_eq!(volumes.len(), 2, "{volumes:?}");
            webhooks_to_loopback(&release.admin, "prism-operator", webhook_port).await;
            namespace_reaches(&tls_admin, || container.logs()).await;
        }
        podman_ok(&["stop", "--time", "30", &container.name]);
        assert_eq!(
            container.inspect("{{.State.ExitCode}}"),
            "0",
            "{case}: exit status after SIGTERM; logs:\n{}",
            container.logs()
        );
    }

    // A client certificate without a CA to check admin with: refused by the chart itself.
    let mut args: Vec<&str> = release.args.iter().map(String::as_str).collect();
    args.extend(["--set", "adminTLS.clientSecret=admin-client"]);
    let out = support::helm::helm_output(&[&["template"], &args[..]].concat(), &release.kubeconfig);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && said.contains("adminTLS.clientSecret (mutual TLS) needs adminTLS.caConfigMap"),
        "{said}"
    );

    // https without a CA: refused before anything starts, in one line.
    let out = support::podman::output(&[
        "run",
        "--rm",
        "--network=none",
        &images().operator,
        "run",
        "--prometheus-url=https://127.0.0.1:9",
    ]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert_eq!(
        said.matches("is https:// but no --prometheus-ca is set")
            .count(),
        1,
        "the fatal error, once:\n{said}"
    );
}

/// An admin serving mutual TLS, whose CA and the client certificate it takes the release's
/// namespace holds as the ConfigMap `admin-ca` and the `kubernetes.io/tls` Secret
/// `admin-client`.
async fn admin_with_client_certificates(release: &Release<'_>) -> AdminServer {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use support::admin_server::ServerTls;
    let (ca, clients) = (
        support::pki::Ca::new("admin"),
        support::pki::Ca::new("clients"),
    );
    let serving = ca.server();
    let admin = AdminServer::start_tls(ServerTls {
        cert_pem: serving.cert,
        key_pem: serving.key,
        client_ca_pem: Some(clients.pem.clone()),
    })
    .await;
    let client = clients.client();
    let params = kube::api::PostParams::default();
    let config_map: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "admin-ca"}, "data": {"ca.crt": ca.pem}
    }))
    .unwrap();
    kube::Api::<ConfigMap>::namespaced(release.admin.clone(), &release.ns)
        .create(&params, &config_map)
        .await
        .unwrap();
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "admin-client"}, "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": client.cert, "tls.key": client.key}
    }))
    .unwrap();
    kube::Api::<Secret>::namespaced(release.admin.clone(), &release.ns)
        .create(&params, &secret)
        .await
        .unwrap();
    admin
}

/// A shard without an admin of its own and a namespace on it, in a new Kubernetes namespace:
/// the namespace reaches `admin`, the operator's default.
async fn namespace_reaches(admin: &AdminServer, logs: impl Fn() -> String) {
    use support::fixtures::{SIDECAR_PLUGIN, namespace_yaml, shard_yaml};
    let (client, ns) = test_namespace_with("admin-tls", &NamespaceOptions::restricted()).await;
    for yaml in [
        SIDECAR_PLUGIN.to_string(),
        shard_yaml("s", "p", 1),
        namespace_yaml("secure", "p"),
    ] {
        support::operator::apply_yaml(&client, &ns, &yaml).await;
    }
    wait_for(
        "the namespace in admin, over mutual TLS",
        Duration::from_secs(90),
        || {
            let held = admin.namespaces().contains_key("secure");
            let logs = logs();
            async move {
                match held {
                    true => Ok(()),
                    false => Err(format!("not in admin; logs:\n{logs}")),
                }
            }
        },
    )
    .await;
}

/// `prism-render render` arguments the plugin and the host run alike.
const RENDER_ARGS: [&str; 5] = [
    "render",
    "-n",
    "prism",
    "--proxy-image",
    "proxy.example/p:1",
];

#[test]
fn the_plugin_image_renders_like_the_host_binary() {
    let images = images();
    let examples = paths::root().join("examples/fleet");
    let host = std::process::Command::new(render())
        .args(RENDER_ARGS)
        .arg(".")
        .current_dir(&examples)
        .output()
        .unwrap();
    assert!(host.status.success());

    // As the sidecar runs: its own user, nothing writable but /tmp, the app read-only.
    let out = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(out.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let name = format!("prism-e2e-render-{}", std::process::id());
    let mut run = vec![
        "--network=none".to_string(),
        "--read-only".into(),
        "--read-only-tmpfs=false".into(),
        "--tmpfs=/tmp:rw,size=64m".into(),
        "--cap-drop=ALL".into(),
        "--security-opt=no-new-privileges".into(),
        format!("--volume={}:/app:ro", examples.display()),
        format!("--volume={}:/out", out.path().display()),
        "--workdir=/app".into(),
        images.render.clone(),
    ];
    run.extend(RENDER_ARGS.iter().map(|s| s.to_string()));
    run.extend([".".into(), "--out-dir".into(), "/out/manifests".into()]);
    let container = Container::run(&name, &run);
    let code = podman_ok(&["wait", &container.name]);
    assert_eq!(code.trim(), "0", "{}", container.logs());

    // Written as 999, byte-identical to what the host printed.
    let dir = out.path().join("manifests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&dir).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (999, 999), "written by user 999");
    }
    let host_dir = tempfile::tempdir().unwrap();
    let host_out = std::process::Command::new(render())
        .args(RENDER_ARGS)
        .arg(".")
        .args(["--out-dir", host_dir.path().join("m").to_str().unwrap()])
        .current_dir(&examples)
        .output()
        .unwrap();
    assert!(host_out.status.success());
    for f in &files {
        let theirs = std::fs::read(host_dir.path().join("m").join(f.file_name().unwrap()))
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(
            std::fs::read(f).unwrap() == theirs,
            "{} differs",
            f.display()
        );
    }
    assert_eq!(
        files.len(),
        std::fs::read_dir(host_dir.path().join("m"))
            .unwrap()
            .count()
    );

    // And to stdout, as `cmp generate` answers the plugin server.
    let mut run = vec![
        "--network=none".to_string(),
        "--read-only".into(),
        "--read-only-tmpfs=false".into(),
        format!("--volume={}:/app:ro", examples.display()),
        "--workdir=/app".into(),
        images.render.clone(),
    ];
    run.extend(RENDER_ARGS.iter().map(|s| s.to_string()));
    run.push(".".into());
    let run: Vec<&str> = run.iter().map(String::as_str).collect();
    let stdout = podman_ok(&[&["run", "--rm"], &run[..]].concat());
    assert!(
        stdout.as_bytes() == host.stdout,
        "the image printed other bytes than the host binary"
    );
}

fn labels(image: &str) -> BTreeMap<String, String> {
    serde_json::from_str(&podman_ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .Labels}}",
        image,
    ]))
    .unwrap()
}

fn image_field(image: &str, format: &str) -> String {
    podman_ok(&["image", "inspect", "--format", format, image])
        .trim()
        .to_string()
}

#[test]
fn the_images_are_tagged_labelled_small_and_reproducible() {
    let images = images();
    let version = env!("CARGO_PKG_VERSION");
    // Tagged as the chart and the Argo CD sidecar patch refer to them.
    let chart: Value = serde_yaml::from_str(
        &std::fs::read_to_string(paths::root().join("charts/prism-operator/values.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        images.operator,
        format!(
            "{}:{version}",
            chart["image"]["repository"].as_str().unwrap()
        )
    );
    let sidecar =
        std::fs::read_to_string(paths::root().join("argocd/repo-server-sidecar.yaml")).unwrap();
    assert!(
        sidecar.contains(&format!("image: {}\n", images.render)),
        "argocd/repo-server-sidecar.yaml names {}",
        images.render
    );

    let printed = podman_ok(&[
        "run",
        "--rm",
        "--network=none",
        &images.operator,
        "--version",
    ]);
    assert_eq!(printed.trim(), format!("prism-operator {version}"));
    let printed = podman_ok(&["run", "--rm", "--network=none", &images.render, "--version"]);
    assert_eq!(printed.trim(), format!("prism-render {version}"));

    let revision = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(paths::root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_string());
    for (image, user) in [
        (&images.operator, "65532:65532"),
        (&images.render, "999:999"),
    ] {
        assert_eq!(image_field(image, "{{.User}}"), user, "{image}");
        let l = labels(image);
        assert_eq!(
            l["org.opencontainers.image.source"],
            "https://github.com/prism/prism-operator"
        );
        assert_eq!(l["org.opencontainers.image.version"], version);
        if let Some(rev) = &revision {
            assert!(
                l["org.opencontainers.image.revision"].starts_with(rev.as_str()),
                "{l:?}"
            );
        }
        // One static binary and nothing else.
        let size: u64 = image_field(image, "{{.Size}}").parse().unwrap();
        assert!(size < 48 << 20, "{image} is {size} bytes");
    }

    // Built again without any cache: the same image IDs.
    let ids =
        |refs: &[&str]| -> Vec<String> { refs.iter().map(|r| image_field(r, "{{.Id}}")).collect() };
    let before = ids(&[&images.operator, &images.render]);
    let again = build_images(&["--no-cache"]);
    assert_eq!(
        again.lines().collect::<Vec<_>>(),
        [images.operator.as_str(), images.render.as_str()]
    );
    assert_eq!(ids(&[&images.operator, &images.render]), before);
}
