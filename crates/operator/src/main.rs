//! `prism-operator`: the in-cluster reconciler of Prism fleets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use prism_admin::{AdminPool, AdminTls};
use prism_api::duration_seconds;
use prism_operator::kit::context::Settings;
use prism_operator::observe;
use prism_operator::preflight;
use prism_operator::preflight::rbac::WebhookObjects;
use prism_operator::traffic::prometheus::PrometheusConfig;
use prism_operator::traffic::{Queries, TrafficSettings};
use prism_operator::webhook::WebhookConfig;
use prism_operator::webhook::certs::Want;
use prism_operator::webhook::secret::{Managed, Source};
use prism_operator::wiring::{RunConfig, Traffic, run};
use prism_render::render::DEFAULT_PROXY_IMAGE;

/// Reconciles PrismShard, PrismPlugin and PrismNamespace resources in a Kubernetes cluster.
#[derive(Parser)]
#[command(name = "prism-operator", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controllers until SIGTERM.
    Run(Box<RunArgs>),
    /// Check, without writing anything, that the operator can run here: the API server and its
    /// version, the CRDs, every permission of the identity in use, and that every configured
    /// Prism admin group has a leader. Exits 0 only when every check passes.
    Preflight(Box<PreflightArgs>),
}

#[derive(clap::Args)]
struct PreflightArgs {
    /// The namespace the operator watches (all namespaces by default).
    #[arg(long, env = "PRISM_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// The operator runs in render mode (it applies no workloads).
    #[arg(long, env = "PRISM_RENDER_MODE")]
    render_mode: bool,
    /// The operator elects a leader: check the Lease permissions too.
    #[arg(long)]
    leader_elect: bool,
    /// Namespace of the leader Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "prism-system")]
    lease_namespace: String,
    /// The operator keeps its own webhook certificates: check the permissions on their Secret
    /// (in the Lease's namespace, the operator's), the webhook configuration and the CRDs.
    #[arg(long)]
    webhook_certificates: bool,
    /// Secret of the webhook certificates.
    #[arg(long, default_value = "prism-operator-webhook-cert")]
    webhook_secret: String,
    /// ValidatingWebhookConfiguration the CA is injected into.
    #[arg(long, default_value = "prism-operator")]
    webhook_configuration: String,
    /// The operator serves /metrics to authorized callers only: check that it may create
    /// TokenReviews and SubjectAccessReviews.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    metrics_secure: bool,
    #[command(flatten)]
    admin: AdminArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "text")]
    output: Output,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

/// How to reach Prism admin (shared by `run` and `preflight`).
#[derive(clap::Args)]
struct AdminArgs {
    /// Default Prism admin (prism.ControlPlane): host:port, or the comma-separated host:port of
    /// every node of an HA admin.
    #[arg(long, env = "PRISM_ADMIN_ENDPOINT")]
    admin_endpoint: Option<String>,
    /// CA certificate (PEM) to verify Prism admin with: enables TLS.
    #[arg(long, env = "PRISM_ADMIN_CA", value_name = "FILE")]
    admin_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS with Prism admin (needs --admin-ca).
    #[arg(
        long,
        env = "PRISM_ADMIN_CLIENT_CERT",
        value_name = "FILE",
        requires = "admin_ca",
        requires = "admin_client_key"
    )]
    admin_client_cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS with Prism admin (needs --admin-client-cert).
    #[arg(
        long,
        env = "PRISM_ADMIN_CLIENT_KEY",
        value_name = "FILE",
        requires = "admin_client_cert"
    )]
    admin_client_key: Option<PathBuf>,
    /// Deadline of every call to Prism admin (above a follower's answer to a write).
    #[arg(long, default_value = "10s", value_parser = duration)]
    admin_timeout: Duration,
}

impl AdminArgs {
    /// The TLS settings, if TLS is configured.
    fn tls(&self) -> Result<Option<AdminTls>, String> {
        let Some(ca) = &self.admin_ca else {
            return Ok(None);
        };
        AdminTls::from_files(
            ca,
            self.admin_client_cert.as_deref(),
            self.admin_client_key.as_deref(),
        )
        .map(Some)
        .map_err(|e| format!("Prism admin TLS: {e}"))
    }
}

/// Traffic figures in status, from Prometheus.
#[derive(clap::Args)]
struct TrafficArgs {
    /// Prometheus HTTP API for traffic figures and health in status, e.g.
    /// `http://prometheus.monitoring.svc:9090`; none: those fields stay empty.
    #[arg(long, env = "PRISM_PROMETHEUS_URL", value_name = "URL")]
    prometheus_url: Option<String>,
    /// CA bundle (PEM) for an https Prometheus URL; the system's roots when unset.
    #[arg(long, value_name = "FILE", requires = "prometheus_url")]
    prometheus_ca: Option<PathBuf>,
    /// File with a bearer token for Prometheus (read at every query).
    #[arg(long, value_name = "FILE", requires = "prometheus_url")]
    prometheus_token_file: Option<PathBuf>,
    /// Deadline of one Prometheus query.
    #[arg(long, default_value = "10s", value_parser = duration)]
    prometheus_timeout: Duration,
    /// YAML file replacing the default PromQL (keys namespaceRPS … see docs/traffic.md).
    #[arg(long, value_name = "FILE", requires = "prometheus_url")]
    prometheus_queries: Option<PathBuf>,
    /// Time between two rounds of traffic queries.
    #[arg(long, default_value = "60s", value_parser = duration)]
    metrics_interval: Duration,
    /// Relative change a figure needs before its status is written again.
    #[arg(long, default_value_t = 0.1, value_parser = fraction)]
    metrics_threshold: f64,
    /// Error ratio above which a namespace's health is Degraded.
    #[arg(long, default_value_t = 0.01, value_parser = fraction)]
    max_error_ratio: f64,
}

impl TrafficArgs {
    /// The Prometheus client and settings, when a URL is given.
    fn config(&self) -> Result<Option<Traffic>, String> {
        let Some(url) = self.prometheus_url.clone() else {
            return Ok(None);
        };
        let queries = match &self.prometheus_queries {
            Some(file) => Queries::from_file(file)?,
            None => Queries::default(),
        };
        let prometheus = PrometheusConfig {
            url,
            ca_file: self.prometheus_ca.clone(),
            token_file: self.prometheus_token_file.clone(),
            timeout: self.prometheus_timeout,
        };
        let settings = TrafficSettings {
            queries,
            interval: self.metrics_interval.max(Duration::from_secs(1)),
            threshold: self.metrics_threshold,
            max_error_ratio: self.max_error_ratio,
        };
        Ok(Some(Traffic {
            prometheus,
            settings,
        }))
    }
}

/// The admission and conversion webhooks.
#[derive(clap::Args)]
struct WebhookArgs {
    /// Serve the validating and conversion webhooks over HTTPS on this address, e.g.
    /// `0.0.0.0:9443`; not served when unset.
    #[arg(long, env = "PRISM_WEBHOOK_ADDR", value_name = "ADDR")]
    webhook_addr: Option<SocketAddr>,
    /// Serve `tls.crt` and `tls.key` from this directory (kept by cert-manager) instead of
    /// the operator's own CA.
    #[arg(long, env = "PRISM_WEBHOOK_CERT_DIR", value_name = "DIR")]
    webhook_cert_dir: Option<PathBuf>,
    /// Secret (in the operator's namespace) holding the operator's own CA and certificate.
    #[arg(long, default_value = "prism-operator-webhook-cert")]
    webhook_secret: String,
    /// Namespace of that Secret: the operator's.
    #[arg(long, env = "POD_NAMESPACE", default_value = "prism-system")]
    webhook_namespace: String,
    /// Service the API server calls the webhooks through; the certificate names it.
    #[arg(long, default_value = prism_api::WEBHOOK_SERVICE)]
    webhook_service: String,
    /// Another name or IP address for the certificate (repeatable), e.g. `127.0.0.1` for an
    /// operator running outside the cluster.
    #[arg(long = "webhook-san", value_name = "NAME")]
    webhook_sans: Vec<String>,
    /// ValidatingWebhookConfiguration to inject the CA bundle into.
    #[arg(long, default_value = "prism-operator")]
    webhook_configuration: String,
    /// Lifetime of a serving certificate; renewed with a third left.
    #[arg(long, default_value = "2160h", value_parser = duration)]
    webhook_cert_lifetime: Duration,
    /// Lifetime of the CA; renewed with a third left (at least twice the certificate's).
    #[arg(long, default_value = "87600h", value_parser = duration)]
    webhook_ca_lifetime: Duration,
}

impl WebhookArgs {
    /// The webhook server's settings, when it is served.
    fn config(&self) -> Result<Option<WebhookConfig>, String> {
        let Some(addr) = self.webhook_addr else {
            return Ok(None);
        };
        let source = match &self.webhook_cert_dir {
            Some(dir) => Source::Files(dir.clone()),
            None => {
                if self.webhook_ca_lifetime < 2 * self.webhook_cert_lifetime {
                    return Err(
                        "--webhook-ca-lifetime must be at least twice --webhook-cert-lifetime"
                            .into(),
                    );
                }
                let (svc, ns) = (&self.webhook_service, &self.webhook_namespace);
                let mut sans = vec![
                    format!("{svc}.{ns}.svc"),
                    format!("{svc}.{ns}.svc.cluster.local"),
                    format!("{svc}.{ns}"),
                    svc.clone(),
                ];
                sans.extend(self.webhook_sans.iter().cloned());
                Source::Managed(Managed {
                    namespace: ns.clone(),
                    secret: self.webhook_secret.clone(),
                    want: Want {
                        sans,
                        lifetime: self.webhook_cert_lifetime,
                        ca_lifetime: self.webhook_ca_lifetime,
                    },
                    webhook_configuration: self.webhook_configuration.clone(),
                    crds: true,
                })
            }
        };
        Ok(Some(WebhookConfig { addr, source }))
    }
}

fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("{s:?} is not a fraction between 0 and 1, e.g. 0.1")),
    }
}

#[derive(clap::Args)]
struct RunArgs {
    /// Watch only this namespace (all namespaces by default).
    #[arg(long, env = "PRISM_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Render mode: Argo CD applies the workloads; the operator only syncs namespaces and
    /// reports status, so the two never fight over an object.
    #[arg(long, env = "PRISM_RENDER_MODE")]
    render_mode: bool,
    /// Safety-net resync of every object, e.g. `5m`.
    #[arg(long, default_value = "5m", value_parser = duration)]
    resync: Duration,
    /// Address of /metrics.
    #[arg(long, default_value = "0.0.0.0:8443", env = "PRISM_METRICS_ADDR")]
    metrics_addr: SocketAddr,
    /// Serve /metrics over HTTPS, only to callers the API server authenticates (TokenReview)
    /// and authorizes to get the non-resource URL /metrics (SubjectAccessReview); `false`
    /// serves plain HTTP to anyone. The certificate is the webhooks' when they are served,
    /// else a self-signed one made at start.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "PRISM_METRICS_SECURE")]
    metrics_secure: bool,
    /// Address of /healthz and /readyz (plain HTTP, for the kubelet).
    #[arg(long, default_value = "0.0.0.0:8081", env = "PRISM_HEALTH_ADDR")]
    health_addr: SocketAddr,
    /// Elect a leader with a Lease; only the leader writes.
    #[arg(long)]
    leader_elect: bool,
    /// Namespace of the leader Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "prism-system")]
    lease_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, default_value = "prism-operator")]
    lease_name: String,
    /// How long the Lease stays valid after its last renewal: a standby takes over once it has
    /// expired (at most this long after the leader died).
    #[arg(long, default_value = "15s", value_parser = duration)]
    lease_duration: Duration,
    /// How long before the Lease expires the leader renews it (less than --lease-duration).
    #[arg(long, default_value = "5s", value_parser = duration)]
    lease_renew_margin: Duration,
    /// Identity of this replica in the Lease and in events.
    #[arg(long, env = "POD_NAME", default_value = "prism-operator")]
    identity: String,
    /// Proxy image for shards without spec.image.
    #[arg(long, env = "PRISM_PROXY_IMAGE", default_value = DEFAULT_PROXY_IMAGE)]
    proxy_image: String,
    /// Directory of templates replacing the embedded ones by file name.
    #[arg(long, env = "PRISM_TEMPLATES")]
    templates: Option<PathBuf>,
    /// Render NetworkPolicies for shards that do not set spec.networkPolicy.enabled (and for
    /// the remote plugins they use).
    #[arg(long, env = "PRISM_NETWORK_POLICIES")]
    network_policies: bool,
    #[command(flatten)]
    traffic: TrafficArgs,
    #[command(flatten)]
    webhook: WebhookArgs,
    #[command(flatten)]
    admin: AdminArgs,
    /// Let several shards sync to one Prism admin. Admin then serves a shard's namespaces from
    /// any of their proxies; by default only the oldest shard using an admin may.
    #[arg(long, env = "PRISM_ALLOW_SHARED_ADMIN")]
    allow_shared_admin: bool,
    /// How long deleting a PrismNamespace waits for Prism admin before letting go.
    #[arg(long, default_value = "10m", value_parser = duration)]
    deletion_deadline: Duration,
    /// Reconciliations running at once per controller.
    #[arg(long, default_value_t = 4)]
    concurrency: u16,
    /// How long a request the API server turns away for load (429, 503, 504) is tried again
    /// inside the client, after its Retry-After or a jittered backoff, before the reconcile fails
    /// and the object backs off.
    #[arg(long, default_value = "10s", value_parser = duration)]
    api_retry_budget: Duration,
    /// Log format.
    #[arg(long, value_enum, default_value = "text", env = "PRISM_LOG_FORMAT")]
    log_format: LogFormat,
    /// Log filter (tracing env-filter syntax), e.g. `info` or `prism_operator=debug`.
    #[arg(long, default_value = "info", env = "RUST_LOG")]
    log_level: String,
    /// Export traces to this OTLP/gRPC endpoint (`http://collector:4317`); default: the
    /// standard OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT, else no
    /// traces. An https:// endpoint needs OTEL_EXPORTER_OTLP_CERTIFICATE (a CA bundle).
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Checks the Lease timing: whole seconds, a renew margin of at least one second and shorter
/// than the duration.
fn lease_timing(duration: Duration, margin: Duration) -> Result<(), String> {
    if margin < Duration::from_secs(1) || margin >= duration {
        return Err(format!(
            "--lease-renew-margin ({}s) must be at least 1s and less than --lease-duration ({}s)",
            margin.as_secs(),
            duration.as_secs()
        ));
    }
    Ok(())
}

fn duration(s: &str) -> Result<Duration, String> {
    duration_seconds(s)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is not a duration like 30s, 5m or 1h"))
}

/// Logs to stderr through `filter`; with a `tracer`, also the spans of the operator and its
/// admin client at info level and above, for export.
fn init_logging(format: LogFormat, filter: &str, tracer: Option<observe::traces::Tracer>) {
    use std::io::IsTerminal;
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
    };
    let spans = tracer.map(|tracer| {
        let ours = tracing_subscriber::filter::Targets::new()
            .with_target("prism_operator", tracing::Level::INFO)
            .with_target("prism_admin", tracing::Level::INFO);
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(ours)
    });
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(spans)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run_operator(*args),
        Command::Preflight(args) => preflight(*args),
    }
}

/// Makes glibc's malloc keep one arena for all threads (before any thread starts). By default
/// each thread that allocates gets an arena of its own; the operator's tasks move between the
/// runtime's threads, so an object is often freed on another thread than the one that made it
/// and every arena keeps free memory the others cannot use. With the runtime's two threads on a
/// two-core machine that was about 7 % of the operator's heap, for no measurable CPU.
///
/// Also fixes the thresholds glibc otherwise raises as the process runs: blocks of 128 KiB and
/// more (list responses, large watch events) are always mapped on their own and unmapped when
/// freed, and free memory at the top of the heap is returned from 128 KiB on.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn one_malloc_arena() {
    const M_TRIM_THRESHOLD: std::ffi::c_int = -1;
    const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
    const M_ARENA_MAX: std::ffi::c_int = -8;
    unsafe extern "C" {
        fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
    }
    // SAFETY: mallopt only changes allocator settings; it is called before other threads exist.
    unsafe {
        mallopt(M_ARENA_MAX, 1);
        mallopt(M_MMAP_THRESHOLD, 128 * 1024);
        mallopt(M_TRIM_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn one_malloc_arena() {}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn preflight(args: PreflightArgs) -> ExitCode {
    let tls = match args.admin.tls() {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = runtime();
    let checks = runtime.block_on(async {
        let admin = AdminPool::configured(args.admin.admin_timeout, tls)
            .expect("TLS settings were checked");
        let cfg = preflight::Config {
            watch_namespace: args.watch_namespace,
            lease_namespace: args.leader_elect.then(|| args.lease_namespace.clone()),
            workload_writes: !args.render_mode,
            webhook_certificates: args.webhook_certificates.then(|| {
                let objects = WebhookObjects {
                    secret: args.webhook_secret,
                    configuration: args.webhook_configuration,
                };
                (args.lease_namespace.clone(), objects)
            }),
            metrics_auth: args.metrics_secure,
            admin_endpoint: args.admin.admin_endpoint,
            admin,
        };
        let client = kube::Client::try_default()
            .await
            .map_err(|e| format!("no Kubernetes client: {e}"));
        preflight::run(client, &cfg).await
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    match args.output {
        Output::Text => print!("{}", preflight::text(&checks)),
        Output::Json => println!("{}", preflight::json(&checks)),
    }
    if checks.iter().all(|c| c.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run_operator(args: RunArgs) -> ExitCode {
    one_malloc_arena();
    let runtime = runtime();
    let trace_config =
        observe::traces::TraceConfig::from(args.otlp_endpoint.clone(), |k| std::env::var(k).ok());
    let (traces, tracer) = match &trace_config {
        Some(cfg) => {
            let _runtime = runtime.enter();
            match observe::traces::start(cfg, &args.identity) {
                Ok((traces, tracer)) => (Some(traces), Some(tracer)),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::FAILURE;
                }
            }
        }
        None => (None, None),
    };
    init_logging(args.log_format, &args.log_level, tracer);
    if let Some(cfg) = &trace_config {
        tracing::info!(endpoint = %cfg.endpoint, "exporting traces over OTLP");
    }
    let admin_tls = match args.admin.tls() {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let traffic = match args.traffic.config() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let webhook = match args.webhook.config() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = lease_timing(args.lease_duration, args.lease_renew_margin) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let config = RunConfig {
        traffic,
        webhook,
        settings: Settings {
            watch_namespace: args.watch_namespace,
            workload_writes: !args.render_mode,
            resync: args.resync,
            admin_endpoint: args.admin.admin_endpoint,
            allow_shared_admin: args.allow_shared_admin,
            admin_timeout: args.admin.admin_timeout,
            admin_tls,
            deletion_deadline: args.deletion_deadline,
        },
        proxy_image: args.proxy_image,
        network_policies: args.network_policies,
        templates: args.templates,
        metrics_addr: args.metrics_addr,
        metrics_secure: args.metrics_secure,
        health_addr: args.health_addr,
        leader_election: args.leader_elect,
        lease_namespace: args.lease_namespace,
        lease_name: args.lease_name,
        lease_duration: args.lease_duration,
        lease_renew_margin: args.lease_renew_margin,
        identity: args.identity,
        concurrency: args.concurrency.max(1),
        api_retry_budget: args.api_retry_budget,
    };
    let result = runtime.block_on(async {
        let result = run(config).await;
        if let Some(traces) = traces {
            traces.shutdown(Duration::from_secs(5)).await;
        }
        result
    });
    // Do not wait on stray blocking work (e.g. a DNS lookup) when shutting down.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Logging writes to stderr: once, in the configured format.
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--admin-timeout`, the chart's `adminTimeout` and the library's default agree.
    #[test]
    fn the_admin_timeout_default_is_the_same_everywhere() {
        let cli = Cli::try_parse_from(["prism-operator", "preflight"]).unwrap();
        let Command::Preflight(args) = cli.command else {
            unreachable!("parsed preflight")
        };
        assert_eq!(args.admin.admin_timeout, prism_admin::DEFAULT_TIMEOUT);
        let values = include_str!("../../../charts/prism-operator/values.yaml");
        let chart = values
            .lines()
            .find_map(|l| l.strip_prefix("adminTimeout: "))
            .expect("adminTimeout in values.yaml");
        assert_eq!(duration(chart).unwrap(), prism_admin::DEFAULT_TIMEOUT);
    }

    /// The run defaults of the chart are the flags' defaults, and the Lease timing is checked.
    #[test]
    fn run_defaults_match_the_chart_and_lease_timing_is_checked() {
        let cli = Cli::try_parse_from(["prism-operator", "run"]).unwrap();
        let Command::Run(args) = cli.command else {
            unreachable!("parsed run")
        };
        let values = include_str!("../../../charts/prism-operator/values.yaml");
        let value = |key: &str| {
            values
                .lines()
                .find_map(|l| l.trim_start().strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| duration(v).ok())
                .unwrap_or_else(|| panic!("{key} in values.yaml"))
        };
        assert_eq!(value("apiRetryBudget: "), args.api_retry_budget);
        assert_eq!(value("leaseDuration: "), args.lease_duration);
        assert_eq!(value("renewMargin: "), args.lease_renew_margin);
        assert!(lease_timing(args.lease_duration, args.lease_renew_margin).is_ok());
        let secs = Duration::from_secs;
        for (duration, margin) in [
            (secs(15), secs(15)),
            (secs(15), secs(0)),
            (secs(5), secs(9)),
        ] {
            let e = lease_timing(duration, margin).unwrap_err();
            assert!(e.contains("--lease-renew-margin"), "{e}");
        }
    }
}
