//! prism-operator at fleet scale on the real control plane: time until every shard is Ready and
//! every namespace Active, the operator's peak RSS and CPU seconds, API requests by verb during
//! creation and during one idle resync, and PrismNamespace create → Active latency. Then a
//! failover: a second replica stands by with its caches synced, the leader is SIGKILLed, a
//! namespace is created; the time until the new leader's first write and the requests it sends
//! in its first minute.
//!
//! `cargo bench -p prism-operator --bench operator_scale -- [--shards 200] [--replicas 3] [--namespaces 2000]`;
//! `--smoke`, and any run under `cargo test`, uses a tiny fleet so the code cannot rot.

use prism_testing as support;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use prism_api::{NamespaceState, PrismNamespace, PrismPlugin, PrismShard, condition};
use prism_operator::kit::outcome::is_true;
use support::admin_server::AdminServer;
use support::apiserver_metrics;
use support::bench::{self, BenchArgs};
use support::cluster::{NamespaceOptions, test_namespace_with};
use support::operator::{Operator, apply_yaml, install_crds};

struct Args {
    shards: usize,
    replicas: usize,
    namespaces: usize,
    resync: u64,
}

fn args() -> Args {
    let argv = BenchArgs::from_env();
    let get = |name: &str, default: usize| argv.get(name, default);
    let smoke = argv.smoke();
    if smoke {
        Args {
            shards: 3,
            replicas: 1,
            namespaces: 30,
            resync: 10,
        }
    } else {
        Args {
            shards: get("--shards", 200),
            replicas: get("--replicas", 3),
            namespaces: get("--namespaces", 2000),
            resync: get("--resync", 30) as u64,
        }
    }
}

/// `apiserver_request_total` summed by verb.
async fn requests_by_verb(client: &Client) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for r in apiserver_metrics::requests(&apiserver_metrics::scrape(client).await) {
        *out.entry(r.verb).or_default() += r.count;
    }
    out
}

fn delta(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>) -> String {
    let parts: Vec<String> = after
        .iter()
        .map(|(k, v)| (k, v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d > 0.0)
        .map(|(k, d)| format!("{k} {d:.0}"))
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// (peak RSS in MiB, CPU seconds) of a process.
fn usage(pid: u32) -> (f64, f64) {
    (bench::proc_mib(pid, "VmHWM"), bench::cpu_seconds(pid))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// The Lease duration of the replicas (the operator's default).
const LEASE_SECS: u64 = 15;

/// The flags of one replica named `identity`.
fn replica_args<'a>(identity: &'a str, resync: &'a str) -> [&'a str; 7] {
    [
        "--concurrency",
        "16",
        "--resync",
        resync,
        "--leader-elect",
        "--identity",
        identity,
    ]
}

/// What a failover cost.
struct Failover {
    /// From the SIGKILL to the new leader's first write.
    first_write: Duration,
    /// From the SIGKILL to the namespace created after it being Active.
    active: Duration,
    /// Requests of the new leader in the minute after the kill, by method.
    requests: String,
}

/// Starts a standby, waits until its caches hold the fleet, SIGKILLs `leader`, creates one
/// namespace, and measures the takeover.
async fn failover(client: &Client, ns: &str, resync: &str, mut leader: Operator) -> Failover {
    let standby = Operator::start(ns, &replica_args("standby", resync)).await;
    let shards = Api::<PrismShard>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .len() as f64;
    let cached = |text: &str| {
        support::operator::metric_sum(text, "prism_operator_resources", &[r#"kind="PrismShard""#])
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    while cached(&standby.metrics().await) < shards {
        assert!(
            Instant::now() < deadline,
            "the standby's caches never held the fleet"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let methods = ["GET", "PATCH", "POST", "PUT", "DELETE"];
    let by_method = |text: &str| -> Vec<f64> {
        methods
            .iter()
            .map(|m| {
                let label = format!(r#"method="{m}""#);
                support::operator::metric_sum(text, "rest_client_requests_total", &[&label])
            })
            .collect()
    };
    let before = by_method(&standby.metrics().await);
    leader.kill();
    let killed = Instant::now();
    let namespaces: Api<PrismNamespace> = Api::namespaced(client.clone(), ns);
    let obj: PrismNamespace = serde_yaml::from_str(
        "apiVersion: prism.io/v1beta1\nkind: PrismNamespace\nmetadata: {name: ns-failover}\nspec:\n  backend: postgres\n  pattern: keyvalue\n  shard: {name: s0000}\n",
    )
    .unwrap();
    namespaces
        .patch(
            "ns-failover",
            &PatchParams::apply("bench"),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap();
    let (mut first_write, mut active) = (None, None);
    while first_write.is_none() || active.is_none() {
        assert!(
            killed.elapsed() < Duration::from_secs(120),
            "no takeover within 120 s\n{}",
            standby.log_tail()
        );
        if first_write.is_none() && standby.writes().await > 0.0 {
            first_write = Some(killed.elapsed());
        }
        let state = namespaces
            .get("ns-failover")
            .await
            .ok()
            .and_then(|n| n.status?.state);
        if active.is_none() && state == Some(NamespaceState::Active) {
            active = Some(killed.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(killed.elapsed())).await;
    let after = by_method(&standby.metrics().await);
    let requests = methods
        .iter()
        .zip(after.iter().zip(&before))
        .filter(|(_, (a, b))| *a > *b)
        .map(|(m, (a, b))| format!("{m} {}", a - b))
        .collect::<Vec<_>>()
        .join(", ");
    Failover {
        first_write: first_write.unwrap(),
        active: active.unwrap(),
        requests,
    }
}

fn main() {
    let a = args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(a));
}

async fn run(a: Args) {
    let (client, ns) = test_namespace_with("scale", &NamespaceOptions::default()).await;
    install_crds(&client).await;
    // One Prism admin per shard, the layout that keeps shards apart (admin spreads namespaces
    // over every proxy registered with it).
    let mut admins = Vec::with_capacity(a.shards);
    for _ in 0..a.shards {
        admins.push(AdminServer::start().await);
    }
    let endpoints: Vec<String> = admins.iter().map(AdminServer::host_port).collect();
    let resync = format!("{}s", a.resync);
    let op = Operator::start(&ns, &replica_args("first", &resync)).await;
    apply_yaml(&client, &ns, "apiVersion: prism.io/v1beta1\nkind: PrismPlugin\nmetadata: {name: pg}\nspec:\n  version: 1.0.0\n  source: {registry: ghcr.io/prism/plugins, image: pg:1.0.0}\n  deployment: {type: sidecar}\n").await;

    // Record when each namespace first shows Active.
    let namespaces: Api<PrismNamespace> = Api::namespaced(client.clone(), &ns);
    let active_at = std::sync::Arc::new(std::sync::Mutex::new(HashMap::<String, Instant>::new()));
    let recorder = {
        let active_at = active_at.clone();
        let stream = watcher(namespaces.clone(), watcher::Config::default()).applied_objects();
        tokio::spawn(async move {
            let _ = stream
                .try_for_each(|n| {
                    if n.status.as_ref().and_then(|s| s.state) == Some(NamespaceState::Active) {
                        active_at
                            .lock()
                            .unwrap()
                            .entry(n.name_any())
                            .or_insert_with(Instant::now);
                    }
                    futures::future::ready(Ok(()))
                })
                .await;
        })
    };

    let before = requests_by_verb(&client).await;
    let started = Instant::now();
    let shards: Api<PrismShard> = Api::namespaced(client.clone(), &ns);
    futures::stream::iter(0..a.shards)
        .map(|i| {
            let shards = shards.clone();
            let endpoint = endpoints[i].clone();
            async move {
                let obj: PrismShard = serde_yaml::from_str(&format!(
                    "apiVersion: prism.io/v1beta1\nkind: PrismShard\nmetadata: {{name: s{i:04}}}\nspec:\n  product: p{}\n  replicas: {}\n  backends: [postgres]\n  plugins: [{{name: pg, version: \"1\"}}]\n  adminEndpoint: {endpoint}\n",
                    i % 20,
                    a.replicas
                ))
                .unwrap();
                shards.patch(&obj.name_any(), &PatchParams::apply("bench"), &Patch::Apply(&obj)).await.unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let created: std::sync::Arc<std::sync::Mutex<HashMap<String, Instant>>> = Default::default();
    futures::stream::iter(0..a.namespaces)
        .map(|i| {
            let (namespaces, created) = (namespaces.clone(), created.clone());
            async move {
                let name = format!("ns-{i:05}");
                let obj: PrismNamespace = serde_yaml::from_str(&format!(
                    "apiVersion: prism.io/v1beta1\nkind: PrismNamespace\nmetadata: {{name: {name}}}\nspec:\n  backend: postgres\n  pattern: keyvalue\n  shard: {{name: s{:04}}}\n",
                    i % a.shards
                ))
                .unwrap();
                let t = Instant::now();
                namespaces.patch(&name, &PatchParams::apply("bench"), &Patch::Apply(&obj)).await.unwrap();
                created.lock().unwrap().insert(name, t);
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let creation_done = started.elapsed();

    // Everything Ready / Active.
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let lp = ListParams::default();
        let ready = shards
            .list(&lp)
            .await
            .unwrap()
            .items
            .iter()
            .filter(|s| {
                s.status.as_ref().is_some_and(|st| {
                    st.ready_replicas == Some(a.replicas as i32)
                        && is_true(&st.conditions, condition::READY)
                })
            })
            .count();
        let active = active_at.lock().unwrap().len();
        if ready == a.shards && active == a.namespaces {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not converged: {ready}/{} shards, {active}/{} namespaces\n{}",
            a.shards,
            a.namespaces,
            op.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let converged = started.elapsed();
    // Then until what the operator derives from them has caught up: the counts of the last
    // namespaces placed (each shard's `status.namespaces`, the plugin's `status.namespacesUsing`)
    // and the plugin's verdict on its shards (installed and Ready once the last shard is). Until
    // then the operator is still converging, not idle.
    let plugins: Api<PrismPlugin> = Api::namespaced(client.clone(), &ns);
    loop {
        let lp = ListParams::default();
        let counted = shards
            .list(&lp)
            .await
            .unwrap()
            .items
            .iter()
            .filter(|s| {
                let k: usize = s.name_any()[1..].parse().unwrap_or(usize::MAX);
                let placed = (0..a.namespaces).filter(|i| i % a.shards == k).count();
                s.status.as_ref().and_then(|st| st.namespaces) == Some(placed as i32)
            })
            .count();
        let plugin = plugins.get("pg").await.ok().and_then(|p| p.status);
        let using = plugin.as_ref().and_then(|st| st.namespaces_using);
        let installed = plugin
            .as_ref()
            .is_some_and(|st| st.installed && is_true(&st.conditions, condition::READY));
        if counted == a.shards && using == Some(a.namespaces as i32) && installed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not caught up: {counted}/{} shards' counts, plugin {using:?}/{} namespaces, installed and Ready {installed}\n{}",
            a.shards,
            a.namespaces,
            op.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let settled = started.elapsed();
    let after_create = requests_by_verb(&client).await;
    let writes_create = op.writes_by_kind().await;
    let (rss_create, cpu_create) = usage(op.pid());
    let log_at_converge = std::fs::metadata(&op.log).map(|m| m.len()).unwrap_or(0);

    // One full idle resync.
    tokio::time::sleep(Duration::from_secs(a.resync + 5)).await;
    let after_idle = requests_by_verb(&client).await;
    let idle_writes = delta(&op.writes_by_kind().await, &writes_create);
    let (rss_peak, cpu_total) = usage(op.pid());
    let log = std::fs::read(&op.log).unwrap_or_default();
    let failover = failover(&client, &ns, &resync, op).await;
    recorder.abort();

    let mut latencies: Vec<Duration> = {
        let created = created.lock().unwrap();
        let active = active_at.lock().unwrap();
        created
            .iter()
            .filter_map(|(n, t)| active.get(n).map(|a| a.saturating_duration_since(*t)))
            .collect()
    };
    latencies.sort();
    println!(
        "## prism-operator at scale: {} shards x {} replicas, {} namespaces",
        a.shards, a.replicas, a.namespaces
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| resources created (client side) | {:.1} s |",
        creation_done.as_secs_f64()
    );
    println!(
        "| all shards Ready and namespaces Active | {:.1} s |",
        converged.as_secs_f64()
    );
    println!(
        "| shards' and plugin's namespace counts caught up, plugin installed | {:.1} s |",
        settled.as_secs_f64()
    );
    println!(
        "| namespace create -> Active p50 / p99 | {:.2} s / {:.2} s |",
        percentile(&latencies, 0.5).as_secs_f64(),
        percentile(&latencies, 0.99).as_secs_f64()
    );
    println!(
        "| operator peak RSS (VmHWM) | {rss_peak:.1} MiB (at convergence {rss_create:.1} MiB) |"
    );
    println!(
        "| operator CPU | {cpu_create:.1} s to converge, {:.1} s during the idle resync |",
        cpu_total - cpu_create
    );
    println!(
        "| API requests during creation (all clients) | {} |",
        delta(&after_create, &before)
    );
    println!(
        "| API requests during one idle resync of {} s (all clients) | {} |",
        a.resync + 5,
        delta(&after_idle, &after_create)
    );
    println!(
        "| operator writes during the idle resync (its own counter, by kind and operation) | {idle_writes} |"
    );
    println!(
        "| failover: SIGKILL of the leader to the standby's first write (Lease {LEASE_SECS} s) | {:.1} s (namespace created after the kill Active at {:.1} s) |",
        failover.first_write.as_secs_f64(),
        failover.active.as_secs_f64()
    );
    println!(
        "| failover: requests of the new leader in its first minute, by method | {} |",
        failover.requests
    );
    if idle_writes != "none" {
        // Which objects: the operator's own log lines of what it wrote since convergence.
        let since =
            String::from_utf8_lossy(&log[(log_at_converge as usize).min(log.len())..]).into_owned();
        let wrote: Vec<&str> = since
            .lines()
            .filter(|l| {
                [
                    "applied",
                    "status written",
                    "status changed",
                    "deleted",
                    "event",
                ]
                .iter()
                .any(|w| l.contains(w))
            })
            .collect();
        eprintln!(
            "operator writes after convergence ({} log lines, last 60):",
            wrote.len()
        );
        for line in &wrote[wrote.len().saturating_sub(60)..] {
            eprintln!("  {line}");
        }
    }
}
