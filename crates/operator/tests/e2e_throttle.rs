//! The operator squeezed by API Priority and Fairness: a FlowSchema puts every request of the
//! operator's ServiceAccount on a priority level of its own with one seat (its share of the
//! server's 600 is made tiny by a ballast level that lends all of its seats to the others),
//! nothing borrowed, everything else rejected at once with 429. While so squeezed, a fleet of
//! 20 shards (each with its own Prism admin) and 200 PrismNamespaces is created. The operator
//! must back off (jittered, within its client's retry budget, then per object as long as the
//! server asks), count the errors as throttled, keep its request rate bounded, and converge
//! once the squeeze is lifted. The test's own client (system:masters) is exempt.

use prism_testing as support;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::flowcontrol::v1::{FlowSchema, PriorityLevelConfiguration};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use prism_api::{NamespaceState, PrismNamespace, PrismShard};
use support::admin_server::AdminServer;
use support::cluster::{NamespaceOptions, test_namespace_with};
use support::fixtures::{SIDECAR_PLUGIN, namespace_yaml, shard_yaml_with};
use support::helm::service_account_kubeconfig;
use support::operator::{Operator, apply_yaml, install_crds};
use support::wait_for;

/// Shares of the ballast level: with them, one share of the server's 600 seats rounds up to one.
const BALLAST_SHARES: i32 = 10_000;
const SHARDS: usize = 20;
const NAMESPACES_PER_SHARD: usize = 10;
/// The operator's retry budget in this test; every request's time in the client must stay
/// within it plus one answer (the histogram bucket of 8.192 s).
const BUDGET: &str = "5s";
const BUDGET_BUCKET: &str = r#"le="8.192""#;
/// How long the fleet stays squeezed after it was created.
const SQUEEZE: Duration = Duration::from_secs(60);
/// Requests per second the operator may send on average while squeezed, useful work included
/// (one seat still lets most of the fleet through).
const MAX_RATE: f64 = 60.0;
/// Answers of 429 per object per minute of squeeze. Each object is tried again only after the
/// server's Retry-After (1 s at first, growing to 32 s); without backoff a rejected request
/// comes back within milliseconds, hundreds of times a minute.
const MAX_REJECTED_PER_OBJECT_MINUTE: f64 = 5.0;
const SQUEEZE_NAME: &str = "prism-operator-squeeze";
const BALLAST_NAME: &str = "prism-operator-ballast";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn squeezed_by_priority_and_fairness_it_backs_off_and_converges() {
    let (client, ns) = test_namespace_with("throttled", &NamespaceOptions::restricted()).await;
    install_crds(&client).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = operator_account(&client, &ns, &dir.path().join("sa.kubeconfig")).await;
    let mut admins = Vec::new();
    for _ in 0..SHARDS {
        admins.push(AdminServer::start().await);
    }
    let op = Operator::start_with_kubeconfig(
        &kubeconfig,
        &[
            "--watch-namespace",
            &ns,
            "--lease-namespace",
            &ns,
            "--api-retry-budget",
            BUDGET,
        ],
    )
    .await;
    squeeze(&client, &ns).await;
    let squeezed = sa_client(&kubeconfig).await;
    wait_for(
        "the operator's ServiceAccount rejected with 429",
        Duration::from_secs(60),
        || rejected(&squeezed, &ns),
    )
    .await;

    let requests_before = op.metric_sum("rest_client_requests_total", &[]).await;
    let started = Instant::now();
    apply_yaml(&client, &ns, SIDECAR_PLUGIN).await;
    for (s, admin) in admins.iter().enumerate() {
        let admin = format!("  adminEndpoint: {}\n", admin.host_port());
        let shard = shard_yaml_with(&format!("s{s}"), &format!("p{s}"), 1, &admin);
        apply_yaml(&client, &ns, &shard).await;
        for n in 0..NAMESPACES_PER_SHARD {
            let name = format!("ns-{s}-{n}");
            apply_yaml(&client, &ns, &namespace_yaml(&name, &format!("p{s}"))).await;
        }
    }
    tokio::time::sleep(SQUEEZE).await;
    let metrics = op.metrics().await;
    let elapsed = started.elapsed().as_secs_f64();
    let sum = |name: &str, labels: &[&str]| support::operator::metric_sum(&metrics, name, labels);
    let requests = sum("rest_client_requests_total", &[]) - requests_before;
    let rejected = sum("rest_client_requests_total", &[r#"code="429""#]);
    let retries = sum("rest_client_request_retries_total", &[r#"code="429""#]);
    let throttled = sum(
        "prism_operator_reconcile_errors_total",
        &[r#"reason="throttled""#],
    );
    let rate = requests / elapsed;
    let objects = (1 + SHARDS + SHARDS * NAMESPACES_PER_SHARD) as f64;
    let rejected_rate = rejected / objects / (elapsed / 60.0);
    eprintln!(
        "squeezed for {elapsed:.0} s: {requests} requests ({rate:.1}/s), {rejected} answered 429 \
         ({rejected_rate:.2} per object per minute), {retries} retried in the client, \
         {throttled} reconciles failed throttled"
    );
    assert!(rejected > 0.0, "the operator was never turned away");
    assert!(retries > 0.0, "no 429 was retried in the client");
    assert!(throttled > 0.0, "no reconcile error counted as throttled");
    assert!(
        rate <= MAX_RATE,
        "{rate:.1} requests/s while squeezed: a hot loop (at most {MAX_RATE})"
    );
    assert!(
        rejected_rate <= MAX_REJECTED_PER_OBJECT_MINUTE,
        "{rejected_rate:.2} rejections per object per minute: not backing off \
         (at most {MAX_REJECTED_PER_OBJECT_MINUTE})"
    );
    let active = active_namespaces(&client, &ns).await;
    eprintln!("{active} namespaces Active through the squeeze");

    lift(&client).await;
    let namespaces: Api<PrismNamespace> = Api::namespaced(client.clone(), &ns);
    let shards: Api<PrismShard> = Api::namespaced(client.clone(), &ns);
    wait_for(
        "the fleet converged after the squeeze",
        Duration::from_secs(300),
        || {
            let (namespaces, shards) = (namespaces.clone(), shards.clone());
            let tail = op.log_tail();
            async move {
                let lp = ListParams::default();
                let ready =
                    |c: &[Condition]| c.iter().any(|c| c.type_ == "Ready" && c.status == "True");
                let s = shards.list(&lp).await.map_err(|e| e.to_string())?.items;
                let n = namespaces.list(&lp).await.map_err(|e| e.to_string())?.items;
                let s_ok = s
                    .iter()
                    .filter(|x| x.status.as_ref().is_some_and(|st| ready(&st.conditions)))
                    .count();
                let n_ok = n
                    .iter()
                    .filter(|x| {
                        x.status.as_ref().and_then(|st| st.state) == Some(NamespaceState::Active)
                    })
                    .count();
                match (s_ok, n_ok) == (SHARDS, SHARDS * NAMESPACES_PER_SHARD) {
                    true => Ok(()),
                    false => Err(format!(
                        "ready shards {s_ok}/{SHARDS}, active namespaces {n_ok}\n{tail}"
                    )),
                }
            }
        },
    )
    .await;
    eprintln!(
        "converged {:.0} s after the squeeze was lifted",
        started.elapsed().as_secs_f64() - elapsed
    );
    for admin in &admins {
        assert_eq!(admin.namespaces().len(), NAMESPACES_PER_SHARD);
    }

    // No request spent longer in the client than the budget and its last answer.
    let metrics = op.metrics().await;
    let sum = |name: &str, labels: &[&str]| support::operator::metric_sum(&metrics, name, labels);
    let count = sum("prism_operator_api_client_seconds_count", &[]);
    let within = sum("prism_operator_api_client_seconds_bucket", &[BUDGET_BUCKET]);
    assert!(count > 0.0);
    assert_eq!(
        within, count,
        "requests held in the client past the {BUDGET} budget"
    );
}

/// A ServiceAccount bound to cluster-admin (not in system:masters, so APF applies to it) and a
/// kubeconfig with its token at `path`.
async fn operator_account(client: &Client, ns: &str, path: &std::path::Path) -> std::path::PathBuf {
    let sa: ServiceAccount = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "prism-operator", "namespace": ns},
    }))
    .unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &sa)
        .await
        .unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("prism-operator-{ns}")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "prism-operator", "namespace": ns}],
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    service_account_kubeconfig(client, ns, "prism-operator", path).await;
    path.to_path_buf()
}

/// One seat for the operator's ServiceAccount, nothing borrowed, the rest rejected.
async fn squeeze(client: &Client, ns: &str) {
    let ballast: PriorityLevelConfiguration = serde_json::from_value(serde_json::json!({
        "metadata": {"name": BALLAST_NAME},
        "spec": {"type": "Limited", "limited": {
            "nominalConcurrencyShares": BALLAST_SHARES,
            "lendablePercent": 100,
            "limitResponse": {"type": "Reject"},
        }},
    }))
    .unwrap();
    Api::<PriorityLevelConfiguration>::all(client.clone())
        .create(&PostParams::default(), &ballast)
        .await
        .unwrap();
    let level: PriorityLevelConfiguration = serde_json::from_value(serde_json::json!({
        "metadata": {"name": SQUEEZE_NAME},
        "spec": {"type": "Limited", "limited": {
            "nominalConcurrencyShares": 1,
            "lendablePercent": 0,
            "borrowingLimitPercent": 0,
            "limitResponse": {"type": "Reject"},
        }},
    }))
    .unwrap();
    Api::<PriorityLevelConfiguration>::all(client.clone())
        .create(&PostParams::default(), &level)
        .await
        .unwrap();
    let schema: FlowSchema = serde_json::from_value(serde_json::json!({
        "metadata": {"name": SQUEEZE_NAME},
        "spec": {
            "priorityLevelConfiguration": {"name": SQUEEZE_NAME},
            "matchingPrecedence": 100,
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [{
                "subjects": [{"kind": "ServiceAccount", "serviceAccount": {"name": "prism-operator", "namespace": ns}}],
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"], "namespaces": ["*"], "clusterScope": true}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            }],
        },
    }))
    .unwrap();
    Api::<FlowSchema>::all(client.clone())
        .create(&PostParams::default(), &schema)
        .await
        .unwrap();
}

/// Removes the squeeze: the ServiceAccount's requests fall back to the default FlowSchemas.
async fn lift(client: &Client) {
    let dp = DeleteParams::default();
    Api::<FlowSchema>::all(client.clone())
        .delete(SQUEEZE_NAME, &dp)
        .await
        .unwrap();
    for level in [SQUEEZE_NAME, BALLAST_NAME] {
        Api::<PriorityLevelConfiguration>::all(client.clone())
            .delete(level, &dp)
            .await
            .unwrap();
    }
}

/// A client with the operator's token and no retries of its own.
async fn sa_client(kubeconfig: &std::path::Path) -> Client {
    let mut config = Config::from_custom_kubeconfig(
        Kubeconfig::read_from(kubeconfig).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    config.default_retry = false;
    Client::try_from(config).unwrap()
}

/// Ok once one of twenty concurrent reads with the squeezed account gets a 429.
async fn rejected(client: &Client, ns: &str) -> Result<(), String> {
    let api: Api<PrismNamespace> = Api::namespaced(client.clone(), ns);
    let reads = (0..20).map(|_| {
        let api = api.clone();
        async move { api.list(&ListParams::default()).await }
    });
    let results = futures::future::join_all(reads).await;
    match results
        .iter()
        .any(|r| matches!(r, Err(kube::Error::Api(s)) if s.code == 429))
    {
        true => Ok(()),
        false => Err("20 concurrent reads, none rejected".into()),
    }
}

async fn active_namespaces(client: &Client, ns: &str) -> usize {
    let api: Api<PrismNamespace> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|n| n.status.as_ref().and_then(|s| s.state) == Some(NamespaceState::Active))
        .count()
}
