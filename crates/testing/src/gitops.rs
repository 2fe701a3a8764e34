//! Argo CD's sync, for real: `gitops-sync` (built from Argo CD's gitops-engine module by
//! `tools/gitops-sync/build.sh`) applies a manifest stream to the test control plane wave by
//! wave, waiting for health between waves as Argo CD does, and reports how far it got.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;

use crate::cluster::cluster;

/// The bin dir holding `gitops-sync` (`PRISM_GITOPS_SYNC`, else built once per process by
/// `tools/gitops-sync/build.sh`).
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        crate::paths::built_dir("PRISM_GITOPS_SYNC", "tools/gitops-sync/build.sh")
            .unwrap_or_else(|e| panic!("{e}"))
    })
}

/// How far a sync got.
#[derive(Debug, Clone, Deserialize)]
pub struct SyncReport {
    /// `Succeeded`, `Failed`, `Error`, or `Running` when the sync was given up.
    pub phase: String,
    /// The operation's message, e.g. `waiting for healthy state of apps/StatefulSet/x`.
    pub message: String,
    /// `completed`, `timeout` or `gave-up`.
    pub stopped: String,
    /// The waves applied, in order (`Sync/0`, `Sync/1`, …), each once applied (before its
    /// health is waited for).
    #[serde(default)]
    pub waves: Vec<String>,
    /// Every object's result.
    #[serde(default)]
    pub resources: Vec<SyncedResource>,
}

/// One object's result in a sync.
#[derive(Debug, Clone, Deserialize)]
pub struct SyncedResource {
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// `Synced`, `SyncFailed`, …
    pub status: String,
    /// `Running` (applied, not healthy yet), `Succeeded` (healthy), `Failed` (degraded).
    pub phase: String,
    /// What gitops-engine said about it.
    pub message: String,
}

impl SyncReport {
    /// The result of `kind`/`name`, if the sync reached it.
    pub fn resource(&self, kind: &str, name: &str) -> Option<&SyncedResource> {
        self.resources
            .iter()
            .find(|r| r.kind == kind && r.name == name)
    }
}

/// What to sync and when to stop.
pub struct Sync<'a> {
    /// The application's namespace.
    pub namespace: &'a str,
    /// The manifests, a YAML stream.
    pub manifests: &'a str,
    /// An argocd-cm ConfigMap whose Lua health checks apply.
    pub health: Option<&'a Path>,
    /// Give up once this `Kind/name` has waited for health this long.
    pub give_up_on: Option<(&'a str, Duration)>,
    /// Give up after this long in any case.
    pub timeout: Duration,
}

impl Sync<'_> {
    /// Runs the sync to its end (or until it is given up) as cluster admin.
    pub async fn run(&self) -> SyncReport {
        let kubeconfig = cluster().await.kubeconfig_path();
        let dir = tempfile::tempdir().unwrap();
        let manifests = dir.path().join("manifests.yaml");
        std::fs::write(&manifests, self.manifests).unwrap();
        let mut cmd = Command::new(bin_dir().join("gitops-sync"));
        cmd.arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--namespace", self.namespace])
            .arg(format!("--timeout={}s", self.timeout.as_secs()));
        if let Some(health) = self.health {
            cmd.arg("--health").arg(health);
        }
        if let Some((object, after)) = self.give_up_on {
            cmd.args(["--give-up-on", object])
                .arg(format!("--after={}s", after.as_secs()));
        }
        cmd.arg(&manifests).stdin(Stdio::null());
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .expect("gitops-sync runs");
        assert!(
            out.status.success(),
            "gitops-sync failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "gitops-sync printed no report ({e}):\n{}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}
