//! `prism-playground`: the operator's main job on this machine, without a cluster. Starts the
//! local control plane the tests use (etcd, kube-apiserver, controller-manager, scheduler, kwok
//! on 127.0.0.1), installs the CRDs, runs `prism-operator` against it, applies the example fleet
//! into namespace `prism` and prints the kubeconfig to use with kubectl. Each shard has its own
//! Prism admin: the one given for it (a real prism-admin, say), else an in-repo stand-in.
//! Ctrl-C (or SIGTERM) stops everything it started.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, PostParams};
use prism_api::{NamespaceState, PrismNamespace};
use prism_testing::cluster::cluster;
use prism_testing::operator::{
    FleetAdmins, Operator, apply_example_fleet_with, example_shards, install_crds,
};
use tokio::signal::unix::{SignalKind, signal};

/// Namespace the example fleet goes into.
const NAMESPACE: &str = "prism";

/// Runs the operator on a local control plane with the example fleet.
#[derive(Parser)]
#[command(name = "prism-playground", version, about)]
struct Args {
    /// The Prism admin of one shard, as SHARD=ENDPOINTS: host:port, or the comma-separated
    /// nodes of an HA admin (a real prism-admin group, say). Repeatable, one per shard: an admin
    /// serving several shards would spread each shard's namespaces over every shard's proxies.
    /// Shards not named get an in-repo admin each.
    #[arg(long = "admin-endpoint", value_name = "SHARD=ENDPOINTS", value_parser = shard_admin)]
    admin_endpoints: Vec<(String, String)>,
    /// Extra arguments for `prism-operator run`, e.g. `--resync=1m`.
    #[arg(long = "operator-arg", value_name = "ARG")]
    operator_args: Vec<String>,
}

/// Parses `SHARD=ENDPOINTS`.
fn shard_admin(arg: &str) -> Result<(String, String), String> {
    let shards = example_shards();
    let Some((shard, endpoints)) = arg.split_once('=') else {
        return Err(format!(
            "name the shard: SHARD=ENDPOINTS, one admin per shard (shards: {})",
            shards.join(", ")
        ));
    };
    if !shards.iter().any(|s| s == shard) {
        return Err(format!(
            "no shard {shard:?} in the example fleet (shards: {})",
            shards.join(", ")
        ));
    }
    if endpoints.split(',').any(|e| e.trim().is_empty()) {
        return Err(format!("no admin endpoint for shard {shard}"));
    }
    Ok((shard.to_string(), endpoints.to_string()))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let given: BTreeMap<String, String> = args.admin_endpoints.iter().cloned().collect();
    if given.len() < args.admin_endpoints.len() {
        eprintln!("error: --admin-endpoint names a shard twice: one admin per shard");
        return ExitCode::from(2);
    }
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

    let own: Vec<&str> = given.keys().map(String::as_str).collect();
    let admins = FleetAdmins::start_except(&own).await;
    let operator_args: Vec<&str> = args.operator_args.iter().map(String::as_str).collect();
    let op = Operator::start(NAMESPACE, &operator_args).await;
    let endpoints = |shard: &str| match given.get(shard) {
        Some(list) => list.clone(),
        None => admins.endpoints(shard),
    };
    apply_example_fleet_with(&client, NAMESPACE, &endpoints).await;

    println!("control plane: {}", c.server_url());
    for shard in example_shards() {
        println!("prism admin of {shard}: {}", endpoints(&shard));
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
