//! `prism-operator preflight` on a real control plane, as the chart's ServiceAccount: all green
//! after `helm install`, and each failure class red with a clear line (API server unreachable,
//! CRD missing or stale, a permission removed, admin down, an admin group without a leader),
//! without changing admin. The chart's roles grant exactly the permissions the operator's table
//! lists.

use prism_testing as support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use prism_operator::preflight::rbac::{Needs, WebhookObjects, permissions};
use support::admin_server::AdminServer;
use support::cluster::{NamespaceOptions, cluster, test_namespace_with};
use support::helm::{documents, helm, service_account_kubeconfig};
use support::operator::{apply_yaml, install_crds, operator_binary};

/// Runs `prism-operator preflight` with `args` as `kubeconfig`: exit code and stdout.
fn preflight(kubeconfig: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(operator_binary())
        .arg("preflight")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("POD_NAMESPACE")
        .output()
        .expect("prism-operator runs");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "nothing on stderr: {stderr}");
    (out.status.code().unwrap_or(-1), stdout)
}

/// The one line of `check`.
fn line<'a>(out: &'a str, check: &str) -> &'a str {
    out.lines()
        .find(|l| l[6..].starts_with(check))
        .unwrap_or_else(|| panic!("no line for {check} in\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_is_green_with_the_chart_and_red_for_each_failure() {
    let c = cluster().await;
    let kubeconfig = c.kubeconfig_path();
    let (admin_client, release_ns) =
        test_namespace_with("prism-system", &NamespaceOptions::restricted()).await;
    // No operator answers a validating webhook here.
    let install = [
        "prism-operator",
        "charts/prism-operator",
        "--namespace",
        &release_ns,
        "--set",
        "webhook.validating.enabled=false",
    ];
    helm(&[&["install"], &install[..]].concat(), &kubeconfig);
    let dir = tempfile::tempdir().unwrap();
    let sa = dir.path().join("sa.kubeconfig");
    service_account_kubeconfig(&admin_client, &release_ns, "prism-operator", &sa).await;

    let prism_admin = AdminServer::start().await;
    // An HA admin with one node of three down: writes still work through the leader.
    let ha = AdminServer::start_ha(3).await;
    ha[0].set_leader(1);
    ha[2].stop().await;
    let (_, fleet_ns) = test_namespace_with("fleet", &NamespaceOptions::restricted()).await;
    let shard = format!(
        "apiVersion: prism.io/v1beta1
kind: PrismShard
metadata: {{name: own}}
spec:
  product: p
  backends: [postgres]
  adminEndpoint: {},{},{}
",
        ha[0].host_port(),
        ha[1].host_port(),
        ha[2].host_port()
    );
    apply_yaml(&admin_client, &fleet_ns, &shard).await;
    let endpoint = prism_admin.endpoint();
    let args = [
        "--admin-endpoint",
        endpoint.as_str(),
        "--admin-timeout",
        "2s",
        "--leader-elect",
        "--lease-namespace",
        release_ns.as_str(),
        // The chart's own certificates: their Secret, webhook configuration and CRDs.
        "--webhook-certificates",
        "--webhook-secret",
        "prism-operator-webhook-cert",
        "--webhook-configuration",
        "prism-operator",
    ];

    // All green, one line per check.
    let (code, out) = preflight(&sa, &args);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.lines()
            .all(|l| l.starts_with("PASS") || l.contains("0 failed")),
        "{out}"
    );
    assert!(
        line(&out, "kubernetes-api").contains("Kubernetes v1."),
        "{out}"
    );
    for crd in ["prismnamespaces", "prismplugins", "prismshards"] {
        assert!(
            line(&out, &format!("crd {crd}.prism.io")).contains("identical"),
            "{out}"
        );
    }
    assert!(line(&out, "permissions").contains("all "), "{out}");
    assert!(
        line(&out, &format!("admin {endpoint}")).contains("default"),
        "{out}"
    );
    let group = format!(
        "admin {},{},{}",
        ha[0].endpoint(),
        ha[1].endpoint(),
        ha[2].endpoint()
    );
    let own = line(&out, &group);
    assert!(own.contains(&format!("{fleet_ns}/own")), "{own}");
    assert!(
        own.contains(&format!(
            "leader {}; 2 of 3 nodes answer",
            ha[1].host_port()
        )),
        "{own}"
    );
    println!("{out}");
    let (code, json) = preflight(&sa, &[&args[..], &["-o", "json"]].concat());
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["ok"], true);
    let nodes = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == group.as_str())
        .map(|c| c["nodes"].clone());
    assert_eq!(
        nodes,
        Some(serde_json::json!({"listed": 3, "answering": 2, "leader": ha[1].host_port()}))
    );
    assert_eq!(
        json["checks"].as_array().unwrap().len(),
        out.lines().count() - 1
    );
    // Only the role probe (a Heartbeat of a proxy that never registers) reached admin.
    for admin in [&prism_admin, &ha[0]] {
        assert!(
            admin.calls().keys().all(|rpc| *rpc == "Heartbeat"),
            "{:?}",
            admin.calls()
        );
        assert!(admin.proxies().is_empty() && admin.namespaces().is_empty());
    }

    // Quorum lost: the survivor answers but no node accepts writes.
    ha[1].stop().await;
    ha[0].lose_quorum();
    let (code, out) = preflight(&sa, &args);
    assert_eq!(code, 1, "{out}");
    let lost = line(&out, &group);
    assert!(
        lost.starts_with("FAIL")
            && lost.contains("1 node answers, none accepts writes (no leader)"),
        "{lost}"
    );
    ha[1].restart().await;
    ha[0].set_leader(1);

    // Admin down.
    prism_admin.stop().await;
    let (code, out) = preflight(&sa, &args);
    assert_eq!(code, 1, "{out}");
    let down = line(&out, &format!("admin {endpoint}"));
    assert!(
        down.starts_with("FAIL") && down.contains("unavailable"),
        "{down}"
    );
    assert!(out.ends_with("1 failed\n"), "{out}");
    prism_admin.restart().await;

    // A permission removed from the chart's role.
    let roles: Api<ClusterRole> = Api::all(admin_client.clone());
    let role = roles.get("prism-operator").await.unwrap();
    let mut trimmed = role.clone();
    trimmed
        .rules
        .as_mut()
        .unwrap()
        .retain(|r| r.resources.as_deref() != Some(&["pods".to_string()]));
    trimmed.metadata.managed_fields = None;
    roles
        .replace("prism-operator", &Default::default(), &trimmed)
        .await
        .unwrap();
    let (code, out) = preflight(&sa, &args);
    assert_eq!(code, 1, "{out}");
    let perms = line(&out, "permissions");
    assert!(perms.starts_with("FAIL"), "{perms}");
    for verb in ["get", "list", "watch"] {
        assert!(
            perms.contains(&format!("{verb} pods in all namespaces")),
            "{perms}"
        );
    }
    let mut restored = roles.get("prism-operator").await.unwrap();
    restored.rules = role.rules.clone();
    roles
        .replace("prism-operator", &Default::default(), &restored)
        .await
        .unwrap();
    assert_eq!(preflight(&sa, &args).0, 0);

    // A stale CRD (a field this binary does not know), then a missing one.
    let crds: Api<CustomResourceDefinition> = Api::all(admin_client.clone());
    let patch = serde_json::json!([{
        "op": "add",
        "path": "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/legacyField",
        "value": {"type": "string"}
    }]);
    crds.patch(
        "prismshards.prism.io",
        &PatchParams::default(),
        &Patch::Json::<()>(serde_json::from_value(patch).unwrap()),
    )
    .await
    .unwrap();
    let (code, out) = preflight(&sa, &args);
    assert_eq!(code, 1, "{out}");
    let stale = line(&out, "crd prismshards.prism.io");
    assert!(
        stale.starts_with("FAIL") && stale.contains("differs") && stale.contains("legacyField"),
        "{stale}"
    );
    crds.delete("prismplugins.prism.io", &DeleteParams::default())
        .await
        .unwrap();
    support::wait_for("the CRD gone", std::time::Duration::from_secs(60), || {
        let crds = crds.clone();
        async move {
            match crds.get_opt("prismplugins.prism.io").await {
                Ok(None) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    let (code, out) = preflight(&sa, &args);
    assert_eq!(code, 1, "{out}");
    let missing = line(&out, "crd prismplugins.prism.io");
    assert!(
        missing.starts_with("FAIL") && missing.contains("not installed"),
        "{missing}"
    );
    install_crds(&admin_client).await;

    // The API server unreachable.
    let nowhere = dir.path().join("nowhere.kubeconfig");
    let text = std::fs::read_to_string(&sa).unwrap();
    let server = c.server_url();
    let port = support::process::free_port();
    std::fs::write(
        &nowhere,
        text.replace(server, &format!("https://127.0.0.1:{port}")),
    )
    .unwrap();
    let (code, out) = preflight(&nowhere, &args);
    assert_eq!(code, 1, "{out}");
    assert!(
        line(&out, "kubernetes-api").contains("unreachable"),
        "{out}"
    );
    assert!(
        line(&out, &format!("admin {endpoint}")).starts_with("PASS"),
        "{out}"
    );
}

/// `(group, resource, verb, name)` of every rule in `docs` of kind Role or ClusterRole.
fn granted(docs: &[serde_json::Value]) -> BTreeSet<(String, String, String, Option<String>)> {
    let mut out = BTreeSet::new();
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    for doc in docs
        .iter()
        .filter(|d| matches!(d["kind"].as_str(), Some("Role" | "ClusterRole")))
    {
        for rule in doc["rules"].as_array().unwrap() {
            let names = strings(&rule["resourceNames"]);
            let names: Vec<Option<String>> = match names.is_empty() {
                true => vec![None],
                false => names.into_iter().map(Some).collect(),
            };
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    for verb in strings(&rule["verbs"]) {
                        for name in &names {
                            out.insert((
                                group.clone(),
                                resource.clone(),
                                verb.clone(),
                                name.clone(),
                            ));
                        }
                    }
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_grants_exactly_the_permissions_preflight_checks() {
    let kubeconfig = cluster().await.kubeconfig_path();
    let chart = documents(&helm(
        &["template", "x", "charts/prism-operator"],
        &kubeconfig,
    ));
    let wanted = |one_namespace| -> BTreeSet<_> {
        permissions(Needs {
            workload_writes: true,
            leader_election: true,
            webhook_certificates: Some(WebhookObjects {
                secret: "x-prism-operator-webhook-cert".into(),
                configuration: "x-prism-operator".into(),
            }),
            metrics_auth: true,
            one_namespace,
        })
        .into_iter()
        .map(|p| (p.group, p.resource, p.verb, p.name))
        .collect()
    };
    assert_eq!(granted(&chart), wanted(false));
    // One watched namespace: a Role there, and reading shards and namespaces everywhere.
    let one = documents(&helm(
        &[
            "template",
            "x",
            "charts/prism-operator",
            "--set",
            "watchNamespace=team",
        ],
        &kubeconfig,
    ));
    assert_eq!(granted(&one), wanted(true));
    let everywhere = one
        .iter()
        .filter(|d| d["kind"] == "ClusterRole")
        .flat_map(|d| d["rules"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["apiGroups"][0] == "prism.io")
        .collect::<Vec<_>>();
    assert_eq!(everywhere.len(), 1, "{everywhere:?}");
    assert_eq!(
        everywhere[0]["verbs"],
        serde_json::json!(["list", "watch"]),
        "read only"
    );
}
