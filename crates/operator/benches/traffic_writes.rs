//! The write budget of traffic figures: status writes per round of Prometheus queries at fleet
//! scale, with steady traffic and with a share of namespaces whose traffic moves. Debian's
//! Prometheus scrapes a loopback exporter standing in for every proxy pod.
//!
//! `cargo bench -p prism-operator --bench traffic_writes -- [--shards 10] [--replicas 2] [--namespaces 2000]
//! [--interval 5] [--rounds 6] [--moving 0.05]`; `--smoke`, and any run under `cargo test`,
//! uses a tiny fleet so the code cannot rot.

use prism_testing as support;

use std::time::{Duration, Instant};

use kube::api::{Api, ListParams};
use prism_api::PrismNamespace;
use prism_operator::traffic::Queries;
use support::bench::BenchArgs;
use support::cluster::test_namespace;
use support::fixtures::{SIDECAR_PLUGIN, namespace_yaml, shard_yaml_with};
use support::operator::{Operator, apply_yaml, install_crds};
use support::prometheus::{Load, PrometheusServer, TrafficExporter};

struct Args {
    shards: usize,
    replicas: usize,
    namespaces: usize,
    interval: u64,
    rounds: u64,
    moving: f64,
}

fn args() -> Args {
    let argv = BenchArgs::from_env();
    let get = |name: &str, default: f64| argv.get(name, default);
    let smoke = argv.smoke();
    if smoke {
        Args {
            shards: 2,
            replicas: 1,
            namespaces: 20,
            interval: 2,
            rounds: 3,
            moving: 0.1,
        }
    } else {
        Args {
            shards: get("--shards", 10.0) as usize,
            replicas: get("--replicas", 2.0) as usize,
            namespaces: get("--namespaces", 2000.0) as usize,
            interval: get("--interval", 5.0) as u64,
            rounds: get("--rounds", 6.0) as u64,
            moving: get("--moving", 0.05),
        }
    }
}

/// Traffic status writes of namespaces so far.
async fn writes(op: &Operator) -> f64 {
    op.writes_by_kind()
        .await
        .iter()
        .filter(|(l, _)| l.contains("PrismNamespace") && l.contains("traffic"))
        .map(|(_, v)| v)
        .sum()
}

fn load(j: usize, factor: f64) -> Load {
    Load {
        rps: (10 + j % 50) as f64 * factor,
        error_share: 0.0,
        latency: 0.004,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let (client, ns) = test_namespace("traffic-bench").await;
    install_crds(&client).await;
    let exporter = TrafficExporter::start().await;
    let shard_of = |j: usize| format!("s{}", j % a.shards);
    let replicas = a.replicas;
    let pods =
        move |s: &str| -> Vec<String> { (0..replicas).map(|r| format!("prism-{s}-{r}")).collect() };
    for j in 0..a.namespaces {
        for pod in pods(&shard_of(j)) {
            exporter.set(&ns, &pod, &format!("ns-{j}"), load(j, 1.0));
        }
    }
    let targets: Vec<(String, String)> = (0..a.shards)
        .flat_map(|s| pods(&format!("s{s}")))
        .map(|p| (ns.clone(), p))
        .collect();
    let prometheus = PrometheusServer::start(exporter.port(), &targets).await;
    let scraping_since = Instant::now();
    // The windows relate to the interval as the defaults do (2 minutes, 60 s).
    let window = (2 * a.interval).max(10);
    let dir = tempfile::tempdir().unwrap();
    let queries = dir.path().join("queries.yaml");
    let windowed = Queries::default().with_window(&format!("{window}s"));
    std::fs::write(&queries, windowed.to_yaml()).unwrap();
    let interval = a.interval.to_string();
    let op = Operator::start(
        &ns,
        &[
            "--prometheus-url",
            &prometheus.url(),
            "--prometheus-queries",
            queries.to_str().unwrap(),
            "--metrics-interval",
            &format!("{interval}s"),
            "--resync",
            "30m",
        ],
    )
    .await;
    apply_yaml(&client, &ns, SIDECAR_PLUGIN).await;
    for s in 0..a.shards {
        apply_yaml(
            &client,
            &ns,
            &shard_yaml_with(
                &format!("s{s}"),
                &format!("s{s}"),
                a.replicas as u32,
                "  slaTier: p99_10ms\n",
            ),
        )
        .await;
    }
    let started = Instant::now();
    for j in 0..a.namespaces {
        apply_yaml(
            &client,
            &ns,
            &namespace_yaml(&format!("ns-{j}"), &shard_of(j)),
        )
        .await;
    }
    let api: Api<PrismNamespace> = Api::namespaced(client.clone(), &ns);
    support::wait_for(
        "every namespace with figures",
        Duration::from_secs(600),
        || {
            let api = api.clone();
            async move {
                let list = api
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| e.to_string())?;
                let filled = list
                    .items
                    .iter()
                    .filter(|n| n.status.as_ref().is_some_and(|s| s.metrics.is_some()))
                    .count();
                if filled == a.namespaces {
                    Ok(())
                } else {
                    Err(format!("{filled} filled"))
                }
            }
        },
    )
    .await;
    let filled_after = started.elapsed();
    let first = writes(&op).await;
    // Rates rise over the first window after Prometheus starts (less data than the window):
    // let the windows fill, then count steady rounds.
    let settled = Duration::from_secs(window + 2 * a.interval);
    tokio::time::sleep(settled.saturating_sub(scraping_since.elapsed())).await;
    // On a busy machine scrapes lag and the windows fill later: wait until two rounds pass
    // without a write. An operator that wrote unchanged figures every round never gets there.
    let quiet_by = Instant::now() + Duration::from_secs(120);
    loop {
        let before = writes(&op).await;
        tokio::time::sleep(Duration::from_secs(2 * a.interval)).await;
        if writes(&op).await == before {
            break;
        }
        assert!(
            Instant::now() < quiet_by,
            "figures never settled while traffic was steady"
        );
    }
    let before_steady = writes(&op).await;
    tokio::time::sleep(Duration::from_secs(a.interval * a.rounds)).await;
    let steady = writes(&op).await - before_steady;
    // A share of namespaces gets 50 % more traffic.
    let every = (1.0 / a.moving).round().max(1.0) as usize;
    let moved: Vec<usize> = (0..a.namespaces).step_by(every).collect();
    for &j in &moved {
        for pod in pods(&shard_of(j)) {
            exporter.set(&ns, &pod, &format!("ns-{j}"), load(j, 1.5));
        }
    }
    let before_move = writes(&op).await;
    tokio::time::sleep(Duration::from_secs(
        (a.interval * a.rounds).max(window + 2 * a.interval),
    ))
    .await;
    let moving = writes(&op).await - before_move;
    println!(
        "traffic_writes: {} namespaces on {} shards × {} replicas, a round every {} s, {window} s windows",
        a.namespaces, a.shards, a.replicas, a.interval
    );
    println!(
        "  first fill: {first} namespace status writes, every namespace filled {:.1} s after creation began",
        filled_after.as_secs_f64()
    );
    println!(
        "  steady traffic: {steady} writes in {} rounds ({:.2} per round)",
        a.rounds,
        steady / a.rounds as f64
    );
    println!(
        "  {} namespaces ({:.0} %) with traffic up 50 %: {moving} writes until settled ({:.2} per moved namespace, as the window catches up)",
        moved.len(),
        a.moving * 100.0,
        moving / moved.len() as f64
    );
    if steady > 0.0 {
        let log = std::fs::read_to_string(&op.log).unwrap_or_default();
        let moved: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("traffic figures moved"))
            .collect();
        eprintln!("{}", moved[moved.len().saturating_sub(12)..].join("\n"));
    }
    assert!(
        first >= a.namespaces as f64,
        "every namespace is written once at first"
    );
    assert_eq!(steady, 0.0, "steady traffic writes nothing");
    assert!(
        moving >= moved.len() as f64,
        "every moved namespace is written"
    );
    // Each moved namespace is written while its window catches up with the new rate: a step
    // above the 10 % threshold per round, at most one per round of the window.
    let ramp = (window as f64 / a.interval as f64).ceil() + 1.0;
    assert!(
        moving <= ramp * moved.len() as f64,
        "only moved namespaces are written, a few times while the window catches up"
    );
}
