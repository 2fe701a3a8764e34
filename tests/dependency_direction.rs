//! The crates follow the dependency arrows: `prism-api` <- `prism-render` <- `prism-admin`,
//! `prism-operator`. What CI and the Argo CD sidecar run (`prism-render`) must not compile a
//! cluster client, a gRPC stack or an async runtime; the API types compile neither a template
//! engine nor git. Proved with `cargo tree` over the lock file, build dependencies included.
//! The renderer's own tests and benchmarks do not bring the operator or a cluster client either:
//! the end-to-end tests of the operator and admin live in those crates.

use std::collections::BTreeSet;
use std::process::Command;

/// The crates `package` compiles (normal and build dependencies, every feature as resolved).
fn compiled(package: &str) -> BTreeSet<String> {
    tree(package, "normal,build")
}

/// The crates `package`'s tests and benchmarks compile (its dev dependencies too).
fn compiled_for_tests(package: &str) -> BTreeSet<String> {
    tree(package, "normal,build,dev")
}

fn tree(package: &str, edges: &str) -> BTreeSet<String> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["tree", "--locked", "--offline", "-p", package])
        .args(["-e", edges, "--prefix", "none", "--format", "{p}"])
        .current_dir(prism_testing::paths::root())
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn assert_none_of(package: &str, forbidden: &[&str]) {
    let crates = compiled(package);
    let found: Vec<&&str> = forbidden.iter().filter(|f| crates.contains(**f)).collect();
    assert!(found.is_empty(), "{package} compiles {found:?}");
}

#[test]
fn prism_render_tests_bring_no_operator_admin_or_cluster_client() {
    let crates = compiled_for_tests("prism-render");
    assert!(crates.contains("prism-testing") && crates.contains("criterion"));
    let forbidden = [
        "prism-operator",
        "prism-admin",
        "kube-client",
        "kube-runtime",
        "tonic",
        "tokio",
        "hyper",
    ];
    let found: Vec<&&str> = forbidden.iter().filter(|f| crates.contains(**f)).collect();
    assert!(
        found.is_empty(),
        "prism-render's tests and benchmarks compile {found:?}"
    );
}

#[test]
fn prism_render_compiles_no_cluster_client_grpc_or_runtime() {
    let crates = compiled("prism-render");
    assert!(crates.contains("prism-api") && crates.contains("minijinja"));
    assert_none_of(
        "prism-render",
        &[
            "kube-client",
            "kube-runtime",
            "tonic",
            "tokio",
            "hyper",
            "tower",
            "prost",
            "prism-admin",
            "prism-operator",
        ],
    );
}

#[test]
fn the_api_types_stand_alone() {
    assert_none_of(
        "prism-api",
        &[
            "prism-render",
            "minijinja",
            "git2",
            "kube-client",
            "kube-runtime",
            "tonic",
            "tokio",
        ],
    );
}

#[test]
fn the_admin_client_needs_no_kubernetes_client_or_renderer() {
    let crates = compiled("prism-admin");
    assert!(crates.contains("tonic"));
    assert_none_of(
        "prism-admin",
        &[
            "kube-client",
            "kube-runtime",
            "prism-render",
            "minijinja",
            "git2",
        ],
    );
}

#[test]
fn only_the_operator_brings_the_client_and_runtime() {
    let crates = compiled("prism-operator");
    for needed in ["kube-client", "kube-runtime", "prism-render", "prism-admin"] {
        assert!(crates.contains(needed), "prism-operator lacks {needed}");
    }
}
