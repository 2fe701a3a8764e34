//! `prism-operator`: the in-cluster reconciler of Prism fleets.

use clap::Parser;

/// Reconciles PrismShard, PrismPlugin and PrismNamespace resources in a Kubernetes cluster.
#[derive(Parser)]
#[command(name = "prism-operator", version, about)]
struct Cli {}

fn main() {
    Cli::parse();
    println!("prism-operator {}", env!("CARGO_PKG_VERSION"));
}
