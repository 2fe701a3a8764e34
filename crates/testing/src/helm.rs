//! Helm (built from its Go module by `benches/tools/build.sh`) against the test control plane,
//! and service-account credentials as a pod would get them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Client;
use kube::api::{Api, PostParams};

use crate::cluster::cluster;
use crate::paths;

/// The bin dir holding `helm` and `kustomize` (`PRISM_TOOLS`, else built once per process by
/// `benches/tools/build.sh`).
pub fn tools() -> &'static Path {
    static TOOLS: OnceLock<PathBuf> = OnceLock::new();
    TOOLS.get_or_init(|| script_dir("PRISM_TOOLS", "benches/tools/build.sh"))
}

/// The directory of other projects' CRDs taken from their Go modules (`PRISM_CRDS`, else
/// fetched once per process by `tools/crds/build.sh`), e.g.
/// `monitoring.coreos.com_servicemonitors.yaml`.
pub fn upstream_crds() -> &'static Path {
    static CRDS: OnceLock<PathBuf> = OnceLock::new();
    CRDS.get_or_init(|| script_dir("PRISM_CRDS", "tools/crds/build.sh"))
}

/// `$var`, else the directory `script` prints on its last line ([`paths::built_dir`]).
fn script_dir(var: &str, script: &str) -> PathBuf {
    paths::built_dir(var, script).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `helm args` in the workspace root with `kubeconfig` and private Helm homes; panics with
/// its stderr unless it succeeds, else returns its stdout.
pub fn helm(args: &[&str], kubeconfig: &Path) -> String {
    let out = helm_output(args, kubeconfig);
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Runs `helm args` like [`helm`] and returns what it did, failed or not.
pub fn helm_output(args: &[&str], kubeconfig: &Path) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(tools().join("helm"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HELM_CACHE_HOME", dir.path().join("cache"))
        .env("HELM_CONFIG_HOME", dir.path().join("config"))
        .env("HELM_DATA_HOME", dir.path().join("data"))
        .current_dir(paths::root())
        .output()
        .expect("helm runs")
}

/// The YAML documents of `helm template` output, parsed.
pub fn documents(yaml: &str) -> Vec<serde_json::Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("helm printed valid YAML"))
        .filter(|v: &serde_json::Value| !v.is_null())
        .collect()
}

/// A fresh, hour-long token of ServiceAccount `ns/sa` (the TokenRequest a kubelet makes).
pub async fn service_account_token(admin: &Client, ns: &str, sa: &str) -> String {
    let api: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    let req = serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}});
    let token: TokenRequest = api
        .create_subresource("token", sa, &PostParams::default(), &req)
        .await
        .unwrap_or_else(|e| panic!("a token for ServiceAccount {ns}/{sa}: {e}"));
    token.status.and_then(|s| s.token).expect("a token")
}

/// Writes a kubeconfig that authenticates as ServiceAccount `ns/sa` with a fresh token.
pub async fn service_account_kubeconfig(admin: &Client, ns: &str, sa: &str, path: &Path) {
    let token = service_account_token(admin, ns, sa).await;
    let c = cluster().await;
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: sa\n  user:\n    token: {token}\ncontexts:\n- name: sa\n  context: {{cluster: test, user: sa}}\ncurrent-context: sa\n",
        c.server_url(),
        c.ca_cert_path().display()
    );
    std::fs::write(path, text).unwrap();
}
