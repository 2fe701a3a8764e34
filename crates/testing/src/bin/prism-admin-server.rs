//! `prism-admin-server`: the in-repo, wire-compatible `prism.ControlPlane` server on its own,
//! behaving as upstream prism-admin does (see `prism_testing::admin_server`), for trying the
//! operator without a real Prism. Serves until Ctrl-C.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use prism_testing::admin_server::AdminServer;

/// Serves a stand-in for prism-admin (`prism.ControlPlane`, plaintext gRPC).
#[derive(Parser)]
#[command(name = "prism-admin-server", version, about)]
struct Args {
    /// Address of the first node (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8981")]
    listen: SocketAddr,
    /// Nodes of an HA admin: the first one leads; the others answer writes as upstream
    /// followers do. Each node after the first listens on the next port (or a free one).
    #[arg(long, default_value_t = 1)]
    nodes: u16,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let addrs: Vec<SocketAddr> = (0..args.nodes.max(1))
        .map(|node| {
            let mut addr = args.listen;
            if addr.port() != 0 {
                addr.set_port(addr.port().saturating_add(node));
            }
            addr
        })
        .collect();
    let servers = match AdminServer::start_ha_on(&addrs).await {
        Ok(servers) => servers,
        Err(e) => {
            eprintln!("error: listening on {addrs:?}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let list: Vec<String> = servers.iter().map(AdminServer::host_port).collect();
    println!("prism-admin-server: serving prism.ControlPlane");
    println!("admin endpoint: {}", list.join(","));
    if servers.len() > 1 {
        println!("(HA: node 0 leads; the others answer writes as followers)");
    }
    println!("Ctrl-C to stop");
    let _ = tokio::signal::ctrl_c().await;
    for server in &servers {
        server.stop().await;
    }
    ExitCode::SUCCESS
}
