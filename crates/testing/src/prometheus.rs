//! A real Prometheus (Debian's `prometheus` package, or `PRISM_PROMETHEUS`) on loopback,
//! scraping a [`TrafficExporter`] that serves, for each proxy pod, the series a Prism proxy is
//! expected to expose, labelled as upstream's observability design (ADR-008) names them:
//! `prism_requests_total{namespace, operation, status}` and the histogram
//! `prism_request_duration_seconds{namespace, operation, backend}`, with known rates, error
//! shares and latencies. `namespace` is the PrismNamespace. Prometheus labels each pod's series
//! with the target labels `namespace` and `pod`, as a PodMonitor would, so the exposed
//! `namespace` arrives as `exported_namespace`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;

/// Bucket bounds (seconds) of the latency histogram, as the proxy is expected to use.
pub const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Traffic of one PrismNamespace on one pod.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// Requests per second.
    pub rps: f64,
    /// Share of them that fail (status `error`).
    pub error_share: f64,
    /// Latency of every request, in seconds.
    pub latency: f64,
}

impl Load {
    /// The p99 Prometheus computes from this load's histogram: every request falls in one
    /// bucket (lower, upper], and `histogram_quantile` interpolates linearly inside it.
    pub fn p99(&self) -> f64 {
        let upper = BUCKETS
            .iter()
            .position(|b| *b >= self.latency)
            .expect("latency within the buckets");
        let lower = if upper == 0 { 0.0 } else { BUCKETS[upper - 1] };
        lower + (BUCKETS[upper] - lower) * 0.99
    }
}

/// Counters of one series set, moving at `load` since `since`.
#[derive(Debug, Clone)]
struct Series {
    load: Load,
    since: Instant,
    ok: f64,
    failed: f64,
}

impl Series {
    fn totals(&self, now: Instant) -> (f64, f64) {
        let t = now.duration_since(self.since).as_secs_f64();
        let requests = self.load.rps * t;
        (
            self.ok + requests * (1.0 - self.load.error_share),
            self.failed + requests * self.load.error_share,
        )
    }
}

type Pods = BTreeMap<(String, String), BTreeMap<String, Series>>;

/// Serves `/pods/<namespace>/<pod>` on 127.0.0.1 with the series of that pod.
pub struct TrafficExporter {
    pods: Arc<Mutex<Pods>>,
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl TrafficExporter {
    /// Starts the exporter on a free loopback port.
    pub async fn start() -> Self {
        let pods: Arc<Mutex<Pods>> = Arc::default();
        let app = Router::new()
            .route("/pods/{namespace}/{pod}", get(exposition))
            .with_state(pods.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { pods, port, task }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sets the traffic of `prism_namespace` on pod `namespace/pod` from now on (counters keep
    /// counting from where they are).
    pub fn set(&self, namespace: &str, pod: &str, prism_namespace: &str, load: Load) {
        let now = Instant::now();
        let mut pods = self.pods.lock().unwrap();
        let series = pods
            .entry((namespace.to_string(), pod.to_string()))
            .or_default();
        let (ok, failed) = series
            .get(prism_namespace)
            .map_or((0.0, 0.0), |s| s.totals(now));
        series.insert(
            prism_namespace.to_string(),
            Series {
                load,
                since: now,
                ok,
                failed,
            },
        );
    }
}

impl Drop for TrafficExporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The text exposition of one pod.
async fn exposition(
    State(pods): State<Arc<Mutex<Pods>>>,
    Path((namespace, pod)): Path<(String, String)>,
) -> String {
    let now = Instant::now();
    let pods = pods.lock().unwrap();
    let mut out = String::from(
        "# TYPE prism_requests_total counter\n# TYPE prism_request_duration_seconds histogram\n",
    );
    for (name, series) in pods.get(&(namespace, pod)).into_iter().flatten() {
        let (ok, failed) = series.totals(now);
        let requests = |status: &str, value: f64| {
            format!(
                "prism_requests_total{{namespace=\"{name}\",operation=\"get\",status=\"{status}\"}} {value}\n"
            )
        };
        out.push_str(&requests("success", ok));
        out.push_str(&requests("error", failed));
        let total = ok + failed;
        let latency = series.load.latency;
        let labels = format!("namespace=\"{name}\",operation=\"get\",backend=\"memstore\"");
        for bound in BUCKETS {
            let count = if latency <= bound { total } else { 0.0 };
            out.push_str(&format!(
                "prism_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}\n"
            ));
        }
        out.push_str(&format!(
            "prism_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {total}\n"
        ));
        out.push_str(&format!(
            "prism_request_duration_seconds_sum{{{labels}}} {}\n",
            total * latency
        ));
        out.push_str(&format!(
            "prism_request_duration_seconds_count{{{labels}}} {total}\n"
        ));
    }
    out
}

/// A Prometheus server on loopback scraping pods of a [`TrafficExporter`] every second.
pub struct PrometheusServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    tls: bool,
}

/// The Prometheus binary: `PRISM_PROMETHEUS`, else Debian's `/usr/bin/prometheus`.
pub fn prometheus_binary() -> PathBuf {
    let path = std::env::var_os("PRISM_PROMETHEUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus"));
    assert!(
        path.exists(),
        "{} not found: install Debian's prometheus package (.ci/run does) or set PRISM_PROMETHEUS",
        path.display()
    );
    path
}

impl PrometheusServer {
    /// Starts Prometheus scraping `pods` (Kubernetes namespace, pod name) from the exporter on
    /// `exporter_port`; returns once it is ready.
    pub async fn start(exporter_port: u16, pods: &[(String, String)]) -> Self {
        Self::start_with(exporter_port, pods, None, &[], None).await
    }

    /// Like [`start`](Self::start) on loopback `port`, also scraping the HTTPS endpoints of
    /// `jobs`.
    pub async fn start_scraping(
        port: u16,
        exporter_port: u16,
        pods: &[(String, String)],
        jobs: &[SecureJob],
    ) -> Self {
        Self::start_with(exporter_port, pods, None, jobs, Some(port)).await
    }

    /// Like [`start`](Self::start), serving its API over TLS with `leaf` (a loopback serving
    /// certificate).
    pub async fn start_tls(
        exporter_port: u16,
        pods: &[(String, String)],
        leaf: &crate::pki::Leaf,
    ) -> Self {
        Self::start_with(exporter_port, pods, Some(leaf), &[], None).await
    }

    async fn start_with(
        exporter_port: u16,
        pods: &[(String, String)],
        tls: Option<&crate::pki::Leaf>,
        jobs: &[SecureJob],
        port: Option<u16>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        if let Some(leaf) = tls {
            std::fs::write(dir.path().join("tls.crt"), &leaf.cert).unwrap();
            std::fs::write(dir.path().join("tls.key"), &leaf.key).unwrap();
            let web = format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
                dir.path().join("tls.crt").display(),
                dir.path().join("tls.key").display()
            );
            std::fs::write(dir.path().join("web.yml"), web).unwrap();
        }
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
        );
        for (namespace, pod) in pods {
            config.push_str(&format!(
                "- job_name: {namespace}-{pod}\n  metrics_path: /pods/{namespace}/{pod}\n  static_configs:\n  - targets: ['127.0.0.1:{exporter_port}']\n    labels: {{namespace: {namespace}, pod: {pod}}}\n"
            ));
        }
        for (i, job) in jobs.iter().enumerate() {
            config.push_str(&job.config(dir.path(), i));
        }
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let mut server = Self {
            child: None,
            port: port.unwrap_or_else(crate::process::free_port),
            dir,
            tls: tls.is_some(),
        };
        server.run().await;
        server
    }

    /// An instant query's result vector; `Err` with Prometheus's answer when it fails.
    pub async fn query(&self, promql: &str) -> Result<Vec<serde_json::Value>, String> {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let body =
            crate::process::http_get(&format!("{}/api/v1/query?query={encoded}", self.url()))
                .await?;
        let answer: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        match answer["status"] == "success" {
            true => Ok(answer["data"]["result"]
                .as_array()
                .cloned()
                .unwrap_or_default()),
            false => Err(format!("{promql}: {answer}")),
        }
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    async fn run(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("prometheus.log")).unwrap();
        let mut command = Command::new(prometheus_binary());
        if self.tls {
            command.arg(format!(
                "--web.config.file={}",
                self.dir.path().join("web.yml").display()
            ));
        }
        let child = command
            .arg(format!(
                "--config.file={}",
                self.dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        self.child = Some(child);
        // Over TLS, a listening port is the sign (the probe client speaks plain HTTP only).
        let ready = |port: u16, tls: bool| async move {
            match tls {
                true => tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok(),
                false => crate::process::http_get(&format!("http://127.0.0.1:{port}/-/ready"))
                    .await
                    .is_ok(),
            }
        };
        let started = Instant::now();
        while !ready(self.port, self.tls).await {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "Prometheus not ready within 60 s:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The end of its log.
    pub fn log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Stops it (its port is closed when this returns).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same data.
    pub async fn restart(&mut self) {
        self.stop();
        self.run().await;
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A scrape job over HTTPS with a bearer token, as a ServiceMonitor with `scheme: https`,
/// `bearerTokenFile`, `tlsConfig.{ca,serverName}` and `honorLabels: true` makes it.
#[derive(Debug, Clone)]
pub struct SecureJob {
    /// `job` label (a ServiceMonitor's is its Service's name).
    pub job: String,
    /// Loopback port of the target.
    pub port: u16,
    /// Name the certificate is checked for.
    pub server_name: String,
    /// CA the certificate is checked against (PEM).
    pub ca: String,
    /// Bearer token.
    pub token: String,
    /// Target labels, as service discovery would add them (`namespace`, `pod`, …).
    pub labels: Vec<(String, String)>,
}

impl SecureJob {
    fn config(&self, dir: &std::path::Path, i: usize) -> String {
        let ca = dir.join(format!("job-{i}-ca.crt"));
        let token = dir.join(format!("job-{i}-token"));
        std::fs::write(&ca, &self.ca).unwrap();
        std::fs::write(&token, &self.token).unwrap();
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}: {v:?}"))
            .collect();
        format!(
            "- job_name: {job}\n  scheme: https\n  honor_labels: true\n  metrics_path: /metrics\n  scrape_interval: 2s\n  scrape_timeout: 2s\n  authorization:\n    credentials_file: {token}\n  tls_config:\n    ca_file: {ca}\n    server_name: {server}\n  static_configs:\n  - targets: ['127.0.0.1:{port}']\n    labels: {{{labels}}}\n",
            job = self.job,
            token = token.display(),
            ca = ca.display(),
            server = self.server_name,
            port = self.port,
            labels = labels.join(", "),
        )
    }
}
