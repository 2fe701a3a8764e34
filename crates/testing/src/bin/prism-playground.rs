//! `prism-playground`: the operator's main job on this machine, without a cluster. Starts the
//! local control plane the tests use (etcd, kube-apiserver, controller-manager, scheduler, kwok
//! on 127.0.0.1), installs the CRDs, runs `prism-operator` against it, applies the example fleet
//! into namespace `prism` and prints the kubeconfig to use with kubectl. Prism admin is the
//! in-repo stand-in (one per shard, as the example lays them out), or the endpoints given.
//! Ctrl-C (or SIGTERM) stops everything it started.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, PostParams};
use prism_api::{NamespaceState, PrismNamespace};
use prism_testing::cluster::cluster;
use prism_testing::operator::{
    FleetAdmins, Operator, apply_example_fleet, apply_example_fleet_with, install_crds,
};
use tokio::signal::unix::{SignalKind, signal};

/// Namespace the example fleet goes into.
const NAMESPACE: &str = "prism";

/// Runs the operator on a local control plane with the example fleet.
#[derive(Parser)]
#[command(name = "prism-playground", version, about)]
struct Args {
    /// Prism admin for every shard: host:port, or the comma-separated nodes of an HA admin
    /// (a real prism-admin, say). Several shards then share it (--allow-shared-admin), and
    /// namespaces admin serves from another shard's proxy are reported as PlacedOffShard.
    /// Default: an in-repo admin server per shard.
    #[arg(long)]
    admin_endpoint: Option<String>,
    /// Extra arguments for `prism-operator run`, e.g. `--resync=1m`.
    #[arg(long = "operator-arg", value_name = "ARG")]
    operator_args: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut stop = signal(SignalKind::terminate()).expect("SIGTERM handler");
    eprintln!("starting the local control plane (the first run builds it from Go modules)…");
    let c = cluster().await;
    let client = c.client();
    install_crds(&client).await;
    let mut ns = Namespace::default();
    ns.metadata.name = Some(NAMESPACE.into());
    ns.metadata.labels = Some(
        [(
            "pod-security.kubernetes.io/enforce".to_string(),
            "restricted".to_string(),
        )]
        .into(),
    );
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("creating namespace prism");

    let admins = match &args.admin_endpoint {
        Some(_) => None,
        None => Some(FleetAdmins::start().await),
    };
    let mut operator_args: Vec<&str> = Vec::new();
    if args.admin_endpoint.is_some() {
        operator_args.push("--allow-shared-admin");
    }
    operator_args.extend(args.operator_args.iter().map(String::as_str));
    let op = Operator::start(NAMESPACE, &operator_args).await;
    match (&admins, &args.admin_endpoint) {
        (Some(admins), _) => apply_example_fleet(&client, NAMESPACE, admins).await,
        (None, Some(list)) => apply_example_fleet_with(&client, NAMESPACE, &|_| list.clone()).await,
        (None, None) => unreachable!("one of the two is set"),
    }

    println!("control plane: {}", c.server_url());
    match &admins {
        Some(admins) => {
            for shard in admins.by_shard.keys() {
                println!("prism admin of {shard}: {}", admins.endpoints(shard));
            }
        }
        None => println!(
            "prism admin of every shard: {}",
            args.admin_endpoint.unwrap()
        ),
    }
    println!("operator log: {}", op.log.display());
    println!("KUBECONFIG={}", c.kubeconfig_path().display());
    println!(
        "try: KUBECONFIG={} kubectl get prismshards,prismnamespaces -n {NAMESPACE}",
        c.kubeconfig_path().display()
    );
    println!("Ctrl-C stops everything");

    let namespaces: Api<PrismNamespace> = Api::namespaced(client.clone(), NAMESPACE);
    let mut reported = None;
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = stop.recv() => break,
            _ = tick.tick() => {
                let summary = summary(&namespaces).await;
                if reported.as_ref() != Some(&summary) {
                    println!("{summary}");
                    reported = Some(summary);
                }
            }
        }
    }
    eprintln!("stopping…");
    drop(op);
    drop(admins);
    // The control plane stops when the process exits.
    ExitCode::SUCCESS
}

/// `namespaces: N Active, M other` of the fleet.
async fn summary(api: &Api<PrismNamespace>) -> String {
    let Ok(list) = api.list(&ListParams::default()).await else {
        return "namespaces: unknown (API server not answering)".into();
    };
    let active = list
        .items
        .iter()
        .filter(|n| n.status.as_ref().and_then(|s| s.state) == Some(NamespaceState::Active))
        .count();
    format!(
        "namespaces: {active} of {} Active{}",
        list.items.len(),
        if active == list.items.len() && active > 0 {
            " (fleet ready)"
        } else {
            ""
        }
    )
}
