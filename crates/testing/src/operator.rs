//! Running `prism-operator` against the test control plane: CRDs installed once per test
//! binary, operator processes that stop with their guard, applying example resources, and
//! reading the operator's metrics.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::ApiResource;
use kube::{Client, Resource};
use prism_api::{NamespaceState, PrismNamespace, PrismPlugin, PrismShard};
use serde::Deserialize;
use tokio::sync::OnceCell;

use crate::cluster::cluster;
use crate::process::http_get;
use crate::wait_for;

/// Installs the CRDs (once per test binary) and waits until they are Established.
pub async fn install_crds(client: &Client) {
    static DONE: OnceCell<()> = OnceCell::const_new();
    DONE.get_or_init(|| async {
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in prism_api::crds() {
            let name = crd.metadata.name.clone().unwrap();
            api.patch(
                &name,
                &PatchParams::apply("prism-tests").force(),
                &Patch::Apply(&crd),
            )
            .await
            .unwrap_or_else(|e| panic!("installing CRD {name}: {e}"));
        }
        for crd in prism_api::crds() {
            wait_crd_established(client, crd.metadata.name.as_deref().unwrap()).await;
        }
    })
    .await;
}

/// Waits until CustomResourceDefinition `name` is Established (its kind is served).
pub async fn wait_crd_established(client: &Client, name: &str) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let api = &api;
    wait_for(
        &format!("CRD {name} Established"),
        Duration::from_secs(60),
        || async move {
            let crd = api.get(name).await.map_err(|e| e.to_string())?;
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                Ok(())
            } else {
                Err("not established".to_string())
            }
        },
    )
    .await;
}

/// A fresh test namespace enforcing the `restricted` Pod Security level, with the CRDs
/// installed: where most operator tests start.
pub async fn crd_namespace(prefix: &str) -> (Client, String) {
    let (client, ns) = crate::cluster::test_namespace_with(
        prefix,
        &crate::cluster::NamespaceOptions::restricted(),
    )
    .await;
    install_crds(&client).await;
    (client, ns)
}

pub use crate::process::operator_binary;

/// What the operator logs once its webhooks serve their first certificate.
pub const WEBHOOKS_SERVING: &str = "serving the webhooks over HTTPS";

/// A running operator process; killed when dropped.
pub struct Operator {
    child: Option<Child>,
    /// Port of its /metrics (plain HTTP unless started with `--metrics-secure=true`).
    pub port: u16,
    /// Port of its /healthz and /readyz.
    pub health_port: u16,
    /// Where its logs go.
    pub log: PathBuf,
}

impl Operator {
    /// Starts `prism-operator run` watching `namespace` with extra `args`, as cluster admin.
    pub async fn start(namespace: &str, args: &[&str]) -> Operator {
        let kubeconfig = cluster().await.kubeconfig_path();
        let mut all = vec![
            "--watch-namespace",
            namespace,
            "--lease-namespace",
            namespace,
        ];
        all.extend_from_slice(args);
        Self::start_with_kubeconfig(&kubeconfig, &all).await
    }

    /// Starts `prism-operator run` with `args`, authenticating with `kubeconfig`.
    pub async fn start_with_kubeconfig(kubeconfig: &std::path::Path, args: &[&str]) -> Operator {
        let c = cluster().await;
        let [port, health_port] = crate::process::free_ports().unwrap();
        let log = c.dir().join(format!("operator-{port}.log"));
        let file = std::fs::File::create(&log).unwrap();
        // Plain metrics unless the test asks for the secure ones.
        let secure = args.iter().any(|a| a.starts_with("--metrics-secure"));
        let child = Command::new(operator_binary())
            .arg("run")
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(["--health-addr", &format!("127.0.0.1:{health_port}")])
            .args((!secure).then_some("--metrics-secure=false"))
            .args(["--log-level", "info,prism_operator=debug"])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("POD_NAMESPACE")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("prism-operator starts");
        let mut op = Operator {
            child: Some(child),
            port,
            health_port,
            log,
        };
        let url = format!("http://127.0.0.1:{health_port}/healthz");
        // With webhooks, also until they serve their first certificate.
        let webhooks = args.contains(&"--webhook-addr");
        let started = std::time::Instant::now();
        loop {
            let serving = http_get(&url).await.is_ok()
                && (!webhooks
                    || std::fs::read_to_string(&op.log)
                        .is_ok_and(|log| log.contains(WEBHOOKS_SERVING)));
            if serving {
                break;
            }
            if let Some(status) = op.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!(
                    "prism-operator exited with {status} before serving:\n{}",
                    op.log_tail()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "prism-operator did not serve /healthz (and its webhooks) within 90 s:\n{}",
                op.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        op
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or_default()
    }

    /// Its current metrics text.
    pub async fn metrics(&self) -> String {
        http_get(&format!("http://127.0.0.1:{}/metrics", self.port))
            .await
            .unwrap_or_default()
    }

    /// Sum of `prism_operator_object_writes_total` over all kinds.
    pub async fn writes(&self) -> f64 {
        self.writes_by_kind().await.values().sum()
    }

    /// `prism_operator_object_writes_total` by its labels (`{kind="…",operation="…"}`).
    pub async fn writes_by_kind(&self) -> std::collections::BTreeMap<String, f64> {
        self.metrics()
            .await
            .lines()
            .filter_map(|l| l.strip_prefix("prism_operator_object_writes_total"))
            .filter_map(|l| {
                let (labels, value) = l.rsplit_once(' ')?;
                Some((labels.to_string(), value.parse::<f64>().ok()?))
            })
            .collect()
    }

    /// The sum of the samples of metric `name` whose labels contain every one of `labels`
    /// (each written `key="value"`).
    pub async fn metric_sum(&self, name: &str, labels: &[&str]) -> f64 {
        metric_sum(&self.metrics().await, name, labels)
    }

    /// The tail of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(
            std::env::var("PRISM_LOG_TAIL")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(30),
        )..]
            .join("\n")
    }

    /// Kills the process (SIGKILL: no graceful shutdown) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for a clean exit; returns its exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let start = std::time::Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = c.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The API resource of a Prism kind.
pub fn prism_resource(kind: &str) -> ApiResource {
    match kind {
        "PrismShard" => ApiResource::erase::<PrismShard>(&()),
        "PrismPlugin" => ApiResource::erase::<PrismPlugin>(&()),
        "PrismNamespace" => ApiResource::erase::<PrismNamespace>(&()),
        other => panic!("not a Prism kind: {other}"),
    }
}

/// Applies YAML documents (Prism resources) into `namespace`, as field manager `prism-tests`.
pub async fn apply_yaml(client: &Client, namespace: &str, yaml: &str) {
    try_apply_yaml(client, namespace, yaml)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// [`apply_yaml`], saying which object the API server refused instead of panicking.
pub async fn try_apply_yaml(client: &Client, namespace: &str, yaml: &str) -> Result<(), String> {
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let mut value: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
        if value.is_null() {
            continue;
        }
        value["metadata"]["namespace"] = namespace.into();
        let kind = value["kind"].as_str().unwrap().to_string();
        let name = value["metadata"]["name"].as_str().unwrap().to_string();
        let ar = prism_resource(&kind);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
        api.patch(
            &name,
            &PatchParams::apply("prism-tests").force(),
            &Patch::Apply(&value),
        )
        .await
        .map_err(|e| format!("applying {kind} {name}: {e}"))?;
    }
    Ok(())
}

/// The sum of the samples of metric `name` in the exposition `text` whose labels contain every
/// one of `labels` (each written `key="value"`).
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (series, value) = rest.rsplit_once(' ')?;
            let set = match series.strip_prefix('{') {
                Some(set) => set.strip_suffix('}')?,
                None if series.is_empty() => "",
                None => return None,
            };
            let pairs: Vec<&str> = set.split(',').collect();
            labels
                .iter()
                .all(|l| pairs.contains(l))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// The image of container `container` in a StatefulSet's pod template, if it has one.
pub fn container_image(set: &StatefulSet, container: &str) -> Option<String> {
    set.spec
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == container)?
        .image
        .clone()
}

/// Example file content with every `namespace: prism` line removed (tests set their own).
pub fn example(path: &str) -> String {
    let full = format!("{}/examples/{path}", crate::paths::root().display());
    std::fs::read_to_string(&full)
        .unwrap_or_else(|e| panic!("{full}: {e}"))
        .lines()
        .filter(|l| l.trim() != "namespace: prism")
        .collect::<Vec<_>>()
        .join("\n")
}

/// `Resource::kind` of K, for messages.
pub fn kind_of<K: Resource<DynamicType = ()>>() -> String {
    K::kind(&()).to_string()
}

/// The Prism admins of the example fleet, as test servers on loopback: one per shard, as the
/// example lays them out, and three nodes for the shard that lists three (the first leads).
pub struct FleetAdmins {
    /// The nodes of each shard's admin, by shard name.
    pub by_shard: std::collections::BTreeMap<String, Vec<crate::admin_server::AdminServer>>,
}

/// The names of the example fleet's shards (`examples/fleet/shards.yaml`).
pub fn example_shards() -> Vec<String> {
    example_admin_endpoints()
        .into_iter()
        .map(|(shard, _)| shard)
        .collect()
}

impl FleetAdmins {
    /// Starts an admin for every shard of `examples/fleet/shards.yaml`.
    pub async fn start() -> Self {
        Self::start_except(&[]).await
    }

    /// Starts an admin for every example shard but those in `given` (which have one already).
    pub async fn start_except(given: &[&str]) -> Self {
        let mut by_shard = std::collections::BTreeMap::new();
        for (shard, endpoints) in example_admin_endpoints() {
            if given.contains(&shard.as_str()) {
                continue;
            }
            let nodes = endpoints.split(',').count();
            let servers = match nodes {
                1 => vec![crate::admin_server::AdminServer::start().await],
                n => crate::admin_server::AdminServer::start_ha(n).await,
            };
            by_shard.insert(shard, servers);
        }
        Self { by_shard }
    }

    /// The `spec.adminEndpoint` of `shard`: its nodes' `host:port`, comma-separated.
    pub fn endpoints(&self, shard: &str) -> String {
        self.by_shard[shard]
            .iter()
            .map(|s| s.host_port())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Namespaces stored over all admins.
    pub fn namespace_count(&self) -> usize {
        self.by_shard
            .values()
            .map(|nodes| nodes[0].namespaces().len())
            .sum()
    }
}

/// `(shard, spec.adminEndpoint)` of every example shard.
fn example_admin_endpoints() -> Vec<(String, String)> {
    serde_yaml::Deserializer::from_str(&example("fleet/shards.yaml"))
        .map(|doc| {
            let shard = serde_yaml::Value::deserialize(doc).expect("example shard parses");
            let name = shard["metadata"]["name"]
                .as_str()
                .expect("a name")
                .to_string();
            let endpoints = shard["spec"]["adminEndpoint"]
                .as_str()
                .unwrap_or_else(|| panic!("example shard {name} names its admin"))
                .to_string();
            (name, endpoints)
        })
        .collect()
}

/// Applies the example fleet (`examples/fleet`) into `namespace` on the cluster's default
/// storage class, with the Secrets its namespaces reference, each shard pointing at its admin
/// in `admins`.
pub async fn apply_example_fleet(client: &Client, namespace: &str, admins: &FleetAdmins) {
    apply_example_fleet_with(client, namespace, &|shard| admins.endpoints(shard)).await
}

/// [`apply_example_fleet`] with the `spec.adminEndpoint` of each shard from `endpoints`.
pub async fn apply_example_fleet_with(
    client: &Client,
    namespace: &str,
    endpoints: &dyn Fn(&str) -> String,
) {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::PostParams;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for name in ["profiles-db", "history-db", "resume-db", "reports-db"] {
        let mut s = Secret::default();
        s.metadata.name = Some(name.into());
        s.string_data = Some(
            [(
                "connection-string".to_string(),
                format!("postgres://{name}"),
            )]
            .into_iter()
            .collect(),
        );
        secrets.create(&PostParams::default(), &s).await.unwrap();
    }
    for f in ["plugins.yaml", "shards.yaml", "namespaces.yaml"] {
        let mut text = example(&format!("fleet/{f}")).replace("    storageClassName: ssd\n", "");
        for (shard, example) in example_admin_endpoints() {
            text = text.replace(&example, &endpoints(&shard));
        }
        apply_yaml(client, namespace, &text).await;
    }
}

/// Waits until the example fleet in `namespace` is reconciled: 4 shards and 4 plugins Ready,
/// 12 namespaces Active.
pub async fn wait_example_fleet(client: &Client, namespace: &str, op: &Operator) {
    wait_example_fleet_logged(client, namespace, || op.log_tail()).await
}

/// [`wait_example_fleet`] for an operator that is not an [`Operator`] (a container, say):
/// `log_tail` gives its recent logs for the timeout message.
pub async fn wait_example_fleet_logged(
    client: &Client,
    namespace: &str,
    log_tail: impl Fn() -> String,
) {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
    use kube::api::ListParams;
    let shards: Api<PrismShard> = Api::namespaced(client.clone(), namespace);
    let plugins: Api<PrismPlugin> = Api::namespaced(client.clone(), namespace);
    let namespaces: Api<PrismNamespace> = Api::namespaced(client.clone(), namespace);
    wait_for("the example fleet reconciled", Duration::from_secs(240), || {
        let (shards, plugins, namespaces) = (shards.clone(), plugins.clone(), namespaces.clone());
        let tail = log_tail();
        async move {
            let lp = ListParams::default();
            let ready = |c: &[Condition]| c.iter().any(|c| c.type_ == "Ready" && c.status == "True");
            let s = shards.list(&lp).await.map_err(|e| e.to_string())?.items;
            let p = plugins.list(&lp).await.map_err(|e| e.to_string())?.items;
            let n = namespaces.list(&lp).await.map_err(|e| e.to_string())?.items;
            let s_ok = s.iter().filter(|x| x.status.as_ref().is_some_and(|st| ready(&st.conditions))).count();
            let p_ok = p.iter().filter(|x| x.status.as_ref().is_some_and(|st| ready(&st.conditions))).count();
            let n_ok = n
                .iter()
                .filter(|x| x.status.as_ref().and_then(|st| st.state) == Some(NamespaceState::Active))
                .count();
            if (s_ok, p_ok, n_ok) == (4, 4, 12) {
                Ok(())
            } else {
                Err(format!("ready shards {s_ok}/4, plugins {p_ok}/4, active namespaces {n_ok}/12\n{tail}"))
            }
        }
    })
    .await;
}

/// Waits up to two minutes until the object `name` satisfies `check` and returns it; the
/// timeout message has its status and the operator's log tail.
pub async fn wait_object<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    op: &Operator,
    check: impl Fn(&K) -> bool,
) -> K
where
    K: Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    wait_for(&format!("{name}: {what}"), Duration::from_secs(120), || {
        let api = api.clone();
        let tail = op.log_tail();
        let check = &check;
        async move {
            let obj = api.get(name).await.map_err(|e| e.to_string())?;
            if check(&obj) {
                Ok(obj)
            } else {
                let status = serde_json::to_value(&obj).unwrap_or_default()["status"].clone();
                Err(format!("status {status}\n{tail}"))
            }
        }
    })
    .await
}

/// The events in `namespace` with `reason`.
pub async fn events_with_reason(
    client: &Client,
    namespace: &str,
    reason: &str,
) -> Vec<k8s_openapi::api::events::v1::Event> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), namespace);
    api.list(&kube::api::ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}

/// Points the webhooks a chart registered (the ValidatingWebhookConfiguration `configuration`
/// and the Prism CRDs' conversion, at the release's Service, whose address the test control
/// plane never dials) at an operator serving them on 127.0.0.1:`port`.
pub async fn webhooks_to_loopback(client: &Client, configuration: &str, port: u16) {
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in prism_api::crds() {
        let name = crd.metadata.name.unwrap();
        let patch = serde_json::json!({"spec": {"conversion": {"webhook": {"clientConfig": {
            "service": null, "url": format!("https://127.0.0.1:{port}/convert")}}}}});
        crds.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("pointing {name} at 127.0.0.1:{port}: {e}"));
    }
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    if let Some(mut config) = configs.get_opt(configuration).await.unwrap() {
        for hook in config.webhooks.iter_mut().flatten() {
            hook.client_config.service = None;
            hook.client_config.url = Some(format!("https://127.0.0.1:{port}/validate"));
        }
        configs
            .replace(configuration, &Default::default(), &config)
            .await
            .unwrap();
    }
}

/// `prism-operator run` arguments serving the webhooks on 127.0.0.1:`port`, with the
/// certificates in Secret `secret` of `namespace` and the CA injected into `configuration`.
pub fn webhook_args(namespace: &str, port: u16, secret: &str, configuration: &str) -> Vec<String> {
    [
        "--webhook-addr",
        &format!("127.0.0.1:{port}"),
        "--webhook-san",
        "127.0.0.1",
        "--webhook-namespace",
        namespace,
        "--webhook-secret",
        secret,
        "--webhook-configuration",
        configuration,
    ]
    .map(String::from)
    .to_vec()
}
