//! `prism-operator preflight`: checks, without writing anything, that the operator can run with
//! the identity and settings in use: the API server and its version, the three CRDs (installed,
//! established, and the ones this binary serves), every permission (SelfSubjectAccessReview),
//! and every configured Prism admin group (the endpoint list a shard or the operator uses)
//! answering gRPC with the configured TLS and having a leader that accepts writes.

use std::collections::BTreeMap;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde::Serialize;
use serde_json::Value;

pub mod rbac;

use crate::view::key;
use prism_admin::{AdminPool, Role};
use prism_api::PrismShard;
use rbac::{Needs, Permission, Scope, permissions};

/// Oldest Kubernetes minor release supported: CRD validation rules (CEL) are GA since 1.29 and
/// the operator is tested on current releases.
pub const MIN_KUBERNETES: (u32, u32) = (1, 30);

/// What to check.
#[derive(Debug, Clone)]
pub struct Config {
    /// Namespace the operator watches (every namespace when `None`).
    pub watch_namespace: Option<String>,
    /// Namespace of the leader-election Lease, when electing.
    pub lease_namespace: Option<String>,
    /// Workloads are applied (not render mode).
    pub workload_writes: bool,
    /// The operator's namespace and the objects of its own webhook certificates, when it
    /// keeps them.
    pub webhook_certificates: Option<(String, rbac::WebhookObjects)>,
    /// `/metrics` is served to authorized callers only (TokenReview, SubjectAccessReview).
    pub metrics_auth: bool,
    /// The operator's default admin endpoints.
    pub admin_endpoint: Option<String>,
    /// Clients for admin, with the configured timeout and TLS.
    pub admin: AdminPool,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked, e.g. `crd prismshards.prism.io`.
    pub check: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub message: String,
    /// For an admin group: how many nodes answer and which leads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Nodes>,
}

/// The nodes of one admin group, as preflight found them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nodes {
    /// Endpoints listed.
    pub listed: usize,
    /// Endpoints that answered.
    pub answering: usize,
    /// The endpoint that accepts writes, if one does.
    pub leader: Option<String>,
}

impl Check {
    fn pass(check: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            ok: true,
            message: message.into(),
            nodes: None,
        }
    }

    fn fail(check: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            ok: false,
            message: message.into(),
            nodes: None,
        }
    }
}

/// Runs every check; `client` is `Err` with why when no client could be built.
pub async fn run(client: Result<Client, String>, cfg: &Config) -> Vec<Check> {
    let mut checks = Vec::new();
    let client = match client {
        Ok(client) => client,
        Err(why) => {
            checks.push(Check::fail("kubernetes-api", why));
            checks.extend(admin(cfg, &[]).await);
            return checks;
        }
    };
    let (api, reachable) = api_server(&client).await;
    checks.push(api);
    if !reachable {
        checks.extend(admin(cfg, &[]).await);
        return checks;
    }
    checks.extend(crds(&client).await);
    checks.push(access(&client, cfg).await);
    let shards = shards(&client, cfg).await;
    checks.extend(admin(cfg, &shards).await);
    checks
}

/// The API server answers (the flag), with a supported version (the check).
async fn api_server(client: &Client) -> (Check, bool) {
    const NAME: &str = "kubernetes-api";
    let info = match client.apiserver_version().await {
        Ok(info) => info,
        Err(e) => return (Check::fail(NAME, format!("unreachable: {e}")), false),
    };
    let minor: u32 = info
        .minor
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or(0);
    let major: u32 = info.major.parse().unwrap_or(0);
    let (min_major, min_minor) = MIN_KUBERNETES;
    let version = format!("Kubernetes {}", info.git_version);
    let check = if (major, minor) >= MIN_KUBERNETES {
        Check::pass(
            NAME,
            format!("{version}, supported (>= {min_major}.{min_minor})"),
        )
    } else {
        Check::fail(
            NAME,
            format!("{version} is older than the oldest supported, {min_major}.{min_minor}"),
        )
    };
    (check, true)
}

/// Each CRD installed, established and identical to this binary's.
async fn crds(client: &Client) -> Vec<Check> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut checks = Vec::new();
    for ours in prism_api::crds() {
        let name = ours.name_any();
        let check = format!("crd {name}");
        let theirs = match api.get_opt(&name).await {
            Ok(Some(crd)) => crd,
            Ok(None) => {
                checks.push(Check::fail(
                    check,
                    "not installed: kubectl apply -f crds/ (or install the Helm chart)",
                ));
                continue;
            }
            Err(e) => {
                checks.push(Check::fail(
                    check,
                    format!("cannot read it: {}", api_error(&e)),
                ));
                continue;
            }
        };
        let established = theirs
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
        let ours_spec = installed_anywhere(&ours.spec);
        let theirs_spec = installed_anywhere(&theirs.spec);
        checks.push(match difference(&ours_spec, &theirs_spec, "spec") {
            Some(at) => Check::fail(
                check,
                format!(
                    "differs from the one this binary serves, at {at}: apply crds/ of this release"
                ),
            ),
            None if !established => Check::fail(check, "installed but not established yet"),
            None => Check::pass(check, "installed, established, identical to this binary's"),
        });
    }
    checks
}

/// A CRD's spec without what each installation sets for itself: where the conversion webhook
/// is (the release's Service, or a URL) and the CA bundle injected into it.
fn installed_anywhere(
    spec: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinitionSpec,
) -> Value {
    let mut spec = serde_json::to_value(spec).expect("CRDs serialize");
    if let Some(webhook) = spec
        .pointer_mut("/conversion/webhook")
        .and_then(Value::as_object_mut)
    {
        webhook.remove("clientConfig");
    }
    spec
}

/// The first path where `theirs` differs from `ours`. Fields the API server adds by default
/// (present only in `theirs`) are allowed, except inside schemas, which must be equal.
pub fn difference(ours: &Value, theirs: &Value, path: &str) -> Option<String> {
    let strict = path.ends_with(".schema") || path.contains(".schema.");
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let here = format!("{path}.{key}");
                match b.get(key) {
                    Some(other) => {
                        if let Some(at) = difference(value, other, &here) {
                            return Some(at);
                        }
                    }
                    None if value.is_null() => {}
                    None => return Some(format!("{here} (missing)")),
                }
            }
            if strict && let Some(key) = b.keys().find(|k| !a.contains_key(*k)) {
                return Some(format!("{path}.{key} (not in this binary's)"));
            }
            None
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                return Some(format!("{path} ({} items, expected {})", b.len(), a.len()));
            }
            a.iter()
                .zip(b)
                .enumerate()
                .find_map(|(i, (x, y))| difference(x, y, &format!("{path}[{i}]")))
        }
        (a, b) if a == b => None,
        _ => Some(path.to_string()),
    }
}

/// Every permission granted to the identity in use.
async fn access(client: &Client, cfg: &Config) -> Check {
    const NAME: &str = "permissions";
    let needs = Needs {
        workload_writes: cfg.workload_writes,
        leader_election: cfg.lease_namespace.is_some(),
        webhook_certificates: cfg.webhook_certificates.clone().map(|(_, w)| w),
        metrics_auth: cfg.metrics_auth,
        one_namespace: cfg.watch_namespace.is_some(),
    };
    let wanted = permissions(needs);
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut missing: Vec<String> = Vec::new();
    for permission in &wanted {
        let namespace = match permission.scope {
            Scope::Watched => cfg.watch_namespace.clone(),
            Scope::Lease => cfg.lease_namespace.clone(),
            Scope::Operator => cfg.webhook_certificates.clone().map(|(ns, _)| ns),
            Scope::Cluster => None,
        };
        let review = review(permission, namespace.clone());
        match api.create(&PostParams::default(), &review).await {
            Ok(answer) if answer.status.as_ref().is_some_and(|s| s.allowed) => {}
            Ok(_) => missing.push(match namespace {
                Some(ns) => format!("{permission} in {ns}"),
                None if permission.scope == Scope::Cluster => permission.to_string(),
                None => format!("{permission} in all namespaces"),
            }),
            Err(e) => {
                return Check::fail(NAME, format!("cannot review access: {}", api_error(&e)));
            }
        }
    }
    match missing.len() {
        0 => Check::pass(NAME, format!("all {} granted", wanted.len())),
        n => Check::fail(
            NAME,
            format!("{n} of {} missing: {}", wanted.len(), missing.join(", ")),
        ),
    }
}

fn review(permission: &Permission, namespace: Option<String>) -> SelfSubjectAccessReview {
    let (resource, subresource) = match permission.resource.split_once('/') {
        Some((r, s)) => (r.to_string(), Some(s.to_string())),
        None => (permission.resource.clone(), None),
    };
    SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some(permission.group.clone()),
                resource: Some(resource),
                subresource,
                verb: Some(permission.verb.clone()),
                name: permission.name.clone(),
                namespace,
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Shards and their admin endpoints, where they can be listed.
async fn shards(client: &Client, cfg: &Config) -> Vec<(String, String)> {
    let api: Api<PrismShard> = match &cfg.watch_namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    api.list(&ListParams::default())
        .await
        .map(|list| {
            list.items
                .into_iter()
                .filter_map(|s| {
                    let endpoints = s.spec.admin_endpoint.clone()?;
                    Some((key(&s), endpoints))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every configured admin group (the default one and the shards' own) has a leader: a node
/// that answers gRPC and accepts writes.
pub async fn admin(cfg: &Config, shards: &[(String, String)]) -> Vec<Check> {
    let tls = cfg.admin.tls().is_some();
    let mut users: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
    let lists = cfg
        .admin_endpoint
        .iter()
        .map(|list| ("the default (--admin-endpoint)".to_string(), list.clone()))
        .chain(shards.iter().cloned());
    let mut checks = Vec::new();
    for (user, list) in lists {
        match prism_admin::endpoints_of(&list, tls) {
            Ok(endpoints) => users.entry(endpoints).or_default().push(user),
            Err(e) => checks.push(Check::fail(
                format!("admin {list}"),
                format!("{e} (used by {user})"),
            )),
        }
    }
    if users.is_empty() && checks.is_empty() {
        checks.push(Check::fail(
            "admin",
            "no Prism admin endpoint is configured: set --admin-endpoint, or spec.adminEndpoint on every shard",
        ));
    }
    let transport = if tls { "over TLS" } else { "in plaintext" };
    for (endpoints, used_by) in users {
        let roles = futures::future::join_all(endpoints.iter().map(|endpoint| async move {
            let role = match cfg.admin.client(endpoint) {
                Ok(client) => client.role().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            (endpoint.clone(), role)
        }))
        .await;
        let check = group(&format!("admin {}", endpoints.join(",")), &roles, transport);
        checks.push(Check {
            message: format!("{}; used by {}", check.message, used_by.join(", ")),
            ..check
        });
    }
    checks
}

/// The check of one admin group from what each of its nodes said it is (or why it did not
/// answer): pass when exactly one node leads.
pub fn group(check: &str, roles: &[(String, Result<Role, String>)], transport: &str) -> Check {
    let address = |endpoint: &str| {
        endpoint
            .split_once("://")
            .map_or(endpoint, |(_, rest)| rest)
            .to_string()
    };
    let listed = roles.len();
    let answering = roles.iter().filter(|(_, r)| r.is_ok()).count();
    let leaders: Vec<String> = roles
        .iter()
        .filter(|(_, r)| *r == Ok(Role::Leader))
        .map(|(e, _)| address(e))
        .collect();
    let silent: Vec<String> = roles
        .iter()
        .filter_map(|(e, r)| r.as_ref().err().map(|why| format!("{}: {why}", address(e))))
        .collect();
    let answer = |n: usize| if n == 1 { "answers" } else { "answer" };
    let mut message = match (answering, leaders.as_slice()) {
        (0, _) if listed == 1 => "does not answer".to_string(),
        (0, _) => format!("none of the {listed} nodes answers"),
        (_, [leader]) => format!(
            "leader {leader}; {answering} of {listed} {} {} gRPC {transport}",
            if listed == 1 { "node" } else { "nodes" },
            answer(answering)
        ),
        (_, []) => format!(
            "{answering} {} {}, none accepts writes (no leader)",
            if answering == 1 { "node" } else { "nodes" },
            answer(answering)
        ),
        (_, many) => format!(
            "{} nodes accept writes ({}): they are not the nodes of one admin",
            many.len(),
            many.join(", ")
        ),
    };
    if !silent.is_empty() {
        message.push_str(&format!(" ({})", silent.join("; ")));
    }
    Check {
        check: check.to_string(),
        ok: leaders.len() == 1,
        message,
        nodes: Some(Nodes {
            listed,
            answering,
            leader: (leaders.len() == 1).then(|| leaders[0].clone()),
        }),
    }
}

/// An API error without its body.
fn api_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({}): {}", s.reason, s.code, s.message),
        other => other.to_string(),
    }
}

/// The checks as text, one line per check, then a summary line.
pub fn text(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.check.len()).max().unwrap_or(0);
    let mut out = String::new();
    for c in checks {
        let mark = if c.ok { "PASS" } else { "FAIL" };
        out.push_str(&format!("{mark}  {:width$}  {}\n", c.check, c.message));
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    out.push_str(&format!(
        "{} checks: {} passed, {failed} failed\n",
        checks.len(),
        checks.len() - failed
    ));
    out
}

/// The checks as JSON: `{"ok": bool, "checks": [{"check", "ok", "message"}]}`.
pub fn json(checks: &[Check]) -> String {
    let ok = checks.iter().all(|c| c.ok);
    serde_json::to_string_pretty(&serde_json::json!({"ok": ok, "checks": checks}))
        .expect("checks serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_defaults_pass_and_schema_changes_do_not() {
        let ours = json!({"names": {"kind": "PrismShard"}, "versions": [{"schema": {"openAPIV3Schema": {"type": "object"}}}]});
        let defaulted = json!({"names": {"kind": "PrismShard", "listKind": "PrismShardList"}, "conversion": {"strategy": "None"}, "versions": [{"schema": {"openAPIV3Schema": {"type": "object"}}}]});
        assert_eq!(difference(&ours, &defaulted, "spec"), None);
        let extra = json!({"names": {"kind": "PrismShard"}, "versions": [{"schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]});
        assert_eq!(
            difference(&ours, &extra, "spec").as_deref(),
            Some(
                "spec.versions[0].schema.openAPIV3Schema.x-kubernetes-preserve-unknown-fields (not in this binary's)"
            )
        );
        let renamed = json!({"names": {"kind": "Shard"}, "versions": [{"schema": {"openAPIV3Schema": {"type": "object"}}}]});
        assert_eq!(
            difference(&ours, &renamed, "spec").as_deref(),
            Some("spec.names.kind")
        );
        let two = json!({"names": {"kind": "PrismShard"}, "versions": [{}, {}]});
        assert_eq!(
            difference(&ours, &two, "spec").as_deref(),
            Some("spec.versions (2 items, expected 1)")
        );
    }

    /// Preflight's admin checks of `lists`, as the operator's default endpoint list(s).
    async fn admin_checks(lists: &[String]) -> Vec<Check> {
        let shards: Vec<(String, String)> = lists
            .iter()
            .map(|l| ("fleet/own".to_string(), l.clone()))
            .collect();
        let cfg = Config {
            watch_namespace: None,
            lease_namespace: None,
            workload_writes: true,
            webhook_certificates: None,
            metrics_auth: false,
            admin_endpoint: None,
            admin: AdminPool::new(std::time::Duration::from_secs(2)),
        };
        admin(&cfg, &shards).await
    }

    fn list(nodes: &[prism_testing::admin_server::AdminServer]) -> String {
        let hosts: Vec<String> = nodes.iter().map(|n| n.host_port()).collect();
        hosts.join(",")
    }

    #[tokio::test]
    async fn an_admin_group_passes_with_a_leader_and_fails_without_one() {
        use prism_testing::admin_server::AdminServer;
        let nodes = AdminServer::start_ha(3).await;
        nodes[0].set_leader(1);
        let lists = [list(&nodes)];

        // One node of three dead: writes still work through the leader.
        nodes[2].stop().await;
        let checks = admin_checks(&lists).await;
        assert_eq!(checks.len(), 1, "{checks:?}");
        let check = &checks[0];
        let leader = nodes[1].host_port();
        assert!(check.ok, "{check:?}");
        assert!(
            check
                .message
                .starts_with(&format!("leader {leader}; 2 of 3 nodes answer")),
            "{check:?}"
        );
        assert!(check.message.contains(&nodes[2].host_port()), "{check:?}");
        assert!(check.message.ends_with("used by fleet/own"), "{check:?}");
        let endpoints: Vec<String> = nodes.iter().map(|n| n.endpoint()).collect();
        assert_eq!(check.check, format!("admin {}", endpoints.join(",")));
        let json: Value = serde_json::from_str(&json(&checks)).unwrap();
        assert_eq!(
            json["checks"][0]["nodes"],
            json!({"listed": 3, "answering": 2, "leader": leader})
        );

        // Every node answers but none leads: no write can succeed.
        nodes[2].restart().await;
        nodes[0].lose_quorum();
        let check = &admin_checks(&lists).await[0];
        assert!(!check.ok, "{check:?}");
        assert!(
            check
                .message
                .starts_with("3 nodes answer, none accepts writes (no leader)"),
            "{check:?}"
        );

        // Quorum lost: two of three dead, the survivor answers without a leader.
        nodes[1].stop().await;
        nodes[2].stop().await;
        let check = &admin_checks(&lists).await[0];
        assert!(!check.ok, "{check:?}");
        assert!(
            check
                .message
                .starts_with("1 node answers, none accepts writes (no leader)"),
            "{check:?}"
        );
        assert_eq!(
            check.nodes,
            Some(Nodes {
                listed: 3,
                answering: 1,
                leader: None
            })
        );

        // Nothing answers.
        nodes[0].stop().await;
        let check = &admin_checks(&lists).await[0];
        assert!(!check.ok, "{check:?}");
        assert!(
            check.message.starts_with("none of the 3 nodes answers"),
            "{check:?}"
        );

        // A single admin leads itself; preflight changed nothing in any of them.
        let single = AdminServer::start().await;
        let check = &admin_checks(&[single.host_port()]).await[0];
        assert!(check.ok, "{check:?}");
        assert!(
            check.message.starts_with(&format!(
                "leader {}; 1 of 1 node answers gRPC in plaintext",
                single.host_port()
            )),
            "{check:?}"
        );
        for admin in [&single, &nodes[0]] {
            assert!(admin.proxies().is_empty() && admin.namespaces().is_empty());
            assert!(
                admin.calls().keys().all(|rpc| *rpc == "Heartbeat"),
                "{:?}",
                admin.calls()
            );
        }
    }

    #[test]
    fn two_leaders_are_not_one_admin() {
        let roles = [
            ("http://a:1".to_string(), Ok(Role::Leader)),
            ("http://b:1".to_string(), Ok(Role::Leader)),
        ];
        let check = group("admin x", &roles, "in plaintext");
        assert!(!check.ok);
        assert!(check.message.contains("a:1, b:1"), "{check:?}");
    }

    #[test]
    fn output_is_one_line_per_check_and_a_summary() {
        let checks = vec![
            Check::pass("kubernetes-api", "Kubernetes v1.37.2"),
            Check::fail("crd prismshards.prism.io", "not installed"),
        ];
        let text = text(&checks);
        assert_eq!(text.lines().count(), 3);
        assert!(
            text.starts_with("PASS  kubernetes-api            Kubernetes v1.37.2\n"),
            "{text}"
        );
        assert!(text.ends_with("2 checks: 1 passed, 1 failed\n"), "{text}");
        let json: Value = serde_json::from_str(&json(&checks)).unwrap();
        assert_eq!(json["ok"], false);
        assert_eq!(json["checks"][1]["check"], "crd prismshards.prism.io");
    }
}
