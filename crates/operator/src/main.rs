//! `prism-operator`: the in-cluster reconciler of Prism fleets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use prism_admin::AdminTls;
use prism_api::duration_seconds;
use prism_operator::context::Settings;
use prism_operator::run::{RunConfig, run};
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
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080", env = "PRISM_METRICS_ADDR")]
    metrics_addr: SocketAddr,
    /// Elect a leader with a Lease; only the leader writes.
    #[arg(long)]
    leader_elect: bool,
    /// Namespace of the leader Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "prism-system")]
    lease_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, default_value = "prism-operator")]
    lease_name: String,
    /// Identity of this replica in the Lease and in events.
    #[arg(long, env = "POD_NAME", default_value = "prism-operator")]
    identity: String,
    /// Proxy image for shards without spec.image.
    #[arg(long, env = "PRISM_PROXY_IMAGE", default_value = DEFAULT_PROXY_IMAGE)]
    proxy_image: String,
    /// Directory of templates replacing the embedded ones by file name.
    #[arg(long, env = "PRISM_TEMPLATES")]
    templates: Option<PathBuf>,
    /// Default Prism admin (prism.ControlPlane) endpoint, host:port.
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
    /// Deadline of every call to Prism admin.
    #[arg(long, default_value = "5s", value_parser = duration)]
    admin_timeout: Duration,
    /// How long deleting a PrismNamespace waits for Prism admin before letting go.
    #[arg(long, default_value = "10m", value_parser = duration)]
    deletion_deadline: Duration,
    /// Reconciliations running at once per controller.
    #[arg(long, default_value_t = 4)]
    concurrency: u16,
    /// Log format.
    #[arg(long, value_enum, default_value = "text", env = "PRISM_LOG_FORMAT")]
    log_format: LogFormat,
    /// Log filter (tracing env-filter syntax), e.g. `info` or `prism_operator=debug`.
    #[arg(long, default_value = "info", env = "RUST_LOG")]
    log_level: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn duration(s: &str) -> Result<Duration, String> {
    duration_seconds(s)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is not a duration like 30s, 5m or 1h"))
}

fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Run(args) = cli.command;
    init_logging(args.log_format, &args.log_level);
    let admin_tls = match &args.admin_ca {
        None => None,
        Some(ca) => match AdminTls::from_files(
            ca,
            args.admin_client_cert.as_deref(),
            args.admin_client_key.as_deref(),
        ) {
            Ok(tls) => Some(tls),
            Err(e) => {
                eprintln!("error: Prism admin TLS: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let config = RunConfig {
        settings: Settings {
            watch_namespace: args.watch_namespace,
            workload_writes: !args.render_mode,
            resync: args.resync,
            admin_endpoint: args.admin_endpoint,
            admin_timeout: args.admin_timeout,
            admin_tls,
            deletion_deadline: args.deletion_deadline,
        },
        proxy_image: args.proxy_image,
        templates: args.templates,
        metrics_addr: args.metrics_addr,
        leader_election: args.leader_elect,
        lease_namespace: args.lease_namespace,
        lease_name: args.lease_name,
        identity: args.identity,
        concurrency: args.concurrency.max(1),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(run(config));
    // Do not wait on stray blocking work (e.g. a DNS lookup) when shutting down.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
