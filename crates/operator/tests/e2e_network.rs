//! Exposing and protecting shards on a real API server: the network example's GRPCRoute waits
//! for the Gateway API CRDs (a condition naming the CRD, no apply loop), is applied the moment
//! they are installed (taken from the `sigs.k8s.io/gateway-api` Go module, standard channel),
//! and is pruned with `spec.expose`; the NetworkPolicies are admitted and select exactly the
//! intended pods, as the API server itself evaluates their selectors (there is no CNI here to
//! filter packets). Installing CRDs changes the whole control plane, so this binary has its own.

use prism_testing as support;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use prism_api::PrismShard;
use serde_json::json;
use support::cluster::test_namespace;
use support::helm::upstream_crds;
use support::operator::{
    Operator, apply_yaml, events_with_reason, install_crds, wait_crd_established, wait_object,
};

const GATEWAY_CRDS: [&str; 5] = [
    "gatewayclasses",
    "gateways",
    "grpcroutes",
    "httproutes",
    "referencegrants",
];

/// The network example's plugins and shards without admin endpoints: nothing here talks to a
/// Prism admin, and the cluster DNS names in the example are not resolved.
fn network_example() -> String {
    let root = support::paths::root().join("examples/network");
    ["plugins.yaml", "shards.yaml"]
        .iter()
        .map(|f| std::fs::read_to_string(root.join(f)).unwrap())
        .collect::<Vec<_>>()
        .join("\n---\n")
        .lines()
        .filter(|l| !l.trim_start().starts_with("adminEndpoint:"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn grpc_routes() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "GRPCRoute"),
        "grpcroutes",
    )
}

/// `matchLabels` and `matchExpressions` as a label selector string the API server evaluates.
fn selector(s: &LabelSelector) -> String {
    let mut parts: Vec<String> = s
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in s.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => panic!("operator {other}"),
        });
    }
    parts.join(",")
}

/// Pods (`namespace/name`) the API server selects with `s` in `namespace`.
async fn pods_selected(client: &Client, namespace: &str, s: &LabelSelector) -> BTreeSet<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    pods.list(&ListParams::default().labels(&selector(s)))
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| format!("{namespace}/{}", p.name_any()))
        .collect()
}

/// Pods a NetworkPolicy peer admits, in the policy's namespace `own`: the namespaces its
/// namespace selector picks (or `own`), then the pods its pod selector picks there (or all).
async fn peer_pods(client: &Client, own: &str, peer: &NetworkPolicyPeer) -> BTreeSet<String> {
    let namespaces: Vec<String> = match &peer.namespace_selector {
        None => vec![own.to_string()],
        Some(s) => Api::<Namespace>::all(client.clone())
            .list(&ListParams::default().labels(&selector(s)))
            .await
            .unwrap()
            .items
            .iter()
            .map(|n| n.name_any())
            .collect(),
    };
    let all = LabelSelector::default();
    let mut out = BTreeSet::new();
    for ns in namespaces {
        let s = peer.pod_selector.as_ref().unwrap_or(&all);
        out.extend(pods_selected(client, &ns, s).await);
    }
    out
}

/// Creates a bare pod `name` labelled `labels` in `namespace` (it need not run).
async fn pod(client: &Client, namespace: &str, name: &str, labels: serde_json::Value) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "client:1"}]}
    }))
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
}

/// Labels a namespace.
async fn label_namespace(client: &Client, name: &str, labels: serde_json::Value) {
    Api::<Namespace>::all(client.clone())
        .patch(
            name,
            &PatchParams::apply("prism-tests"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})),
        )
        .await
        .unwrap();
}

async fn policy(client: &Client, ns: &str, name: &str) -> NetworkPolicy {
    Api::<NetworkPolicy>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("NetworkPolicy {name}: {e}"))
}

/// Waits until `pods` of a workload exist (the StatefulSet or ReplicaSet controller made them).
async fn wait_pods(client: &Client, ns: &str, selector: &str, count: usize) -> BTreeSet<String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    support::wait_for(
        &format!("{count} pods {selector}"),
        Duration::from_secs(120),
        || {
            let api = api.clone();
            async move {
                let pods = api
                    .list(&ListParams::default().labels(selector))
                    .await
                    .map_err(|e| e.to_string())?;
                let names: BTreeSet<String> = pods
                    .items
                    .iter()
                    .map(|p| format!("{ns}/{}", p.name_any()))
                    .collect();
                if names.len() == count {
                    Ok(names)
                } else {
                    Err(format!("{} pods: {names:?}", names.len()))
                }
            }
        },
    )
    .await
}

fn degraded(shard: &PrismShard) -> Option<(String, String, String)> {
    let c = shard
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_wait_for_their_crd_and_policies_select_exactly_their_pods() {
    let (client, ns) = test_namespace("edge").await;
    install_crds(&client).await;
    // The example's PodMonitor needs prometheus-operator's CRD; the Gateway API comes later.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let podmonitors = upstream_crds().join("monitoring.coreos.com_podmonitors.yaml");
    let crd: CustomResourceDefinition =
        serde_yaml::from_str(&std::fs::read_to_string(&podmonitors).unwrap()).unwrap();
    crds.patch(
        &crd.name_any(),
        &PatchParams::apply("prism-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();
    wait_crd_established(&client, "podmonitors.monitoring.coreos.com").await;
    let op = Operator::start(&ns, &["--resync", "60s"]).await;
    apply_yaml(&client, &ns, &network_example()).await;
    let shards: Api<PrismShard> = Api::namespaced(client.clone(), &ns);

    missing_gateway_api_is_reported_once(&client, &ns, &shards, &op).await;
    let routes = the_route_follows_the_gateway_api(&client, &ns, &shards, &op, &crds).await;
    every_rendered_object_passes_a_dry_run(&client, &ns).await;
    policies_select_exactly_their_pods(&client, &ns).await;
    dropping_expose_and_policies_prunes_them(&client, &ns, &shards, &routes).await;
    a_shard_that_drops_the_plugin_loses_access(&client, &ns, &shards).await;
}

/// The CRD of GRPCRoute.
const GRPCROUTES: &str = "grpcroutes.gateway.networking.k8s.io";

/// No Gateway API: the shard says which CRD is missing; everything else is applied.
async fn missing_gateway_api_is_reported_once(
    client: &Client,
    ns: &str,
    shards: &Api<PrismShard>,
    op: &Operator,
) {
    let crd = GRPCROUTES;
    let shard = wait_object(shards, "checkout", "CRDMissing", op, |s| {
        degraded(s).is_some_and(|(st, r, _)| st == "True" && r == "CRDMissing")
    })
    .await;
    let (_, _, message) = degraded(&shard).unwrap();
    assert_eq!(
        message,
        format!(
            "GRPCRoute {ns}/prism-checkout needs the CustomResourceDefinition {crd} (Gateway API, \
             standard channel), which the cluster does not serve; install it, or remove \
             spec.expose.grpcRoute"
        )
    );
    for name in [
        "prism-checkout",
        "prism-events",
        "prism-reports",
        "prism-plugin-kafka",
    ] {
        policy(client, ns, name).await;
    }
    let ingresses: Api<k8s_openapi::api::networking::v1::Ingress> =
        Api::namespaced(client.clone(), ns);
    let ingress = ingresses.get("prism-events").await.unwrap();
    let backend = ingress.spec.unwrap().rules.unwrap()[0]
        .http
        .clone()
        .unwrap()
        .paths[0]
        .backend
        .service
        .clone()
        .unwrap();
    assert_eq!(backend.name, "prism-events");
    assert_eq!(backend.port.unwrap().number, Some(8980));
    // Not an apply loop: nothing was sent for the route, and it was announced once, even
    // across resyncs of every shard.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let writes = op.writes_by_kind().await;
    assert!(!writes.contains_key("GRPCRoute"), "{writes:?}");
    let announced = events_with_reason(client, ns, "CRDMissing").await;
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(announced[0].note.as_deref(), Some(message.as_str()));
}

/// The Gateway API CRDs (standard channel) from their Go module: the running operator
/// notices within its discovery interval and applies the route.
async fn the_route_follows_the_gateway_api(
    client: &Client,
    ns: &str,
    shards: &Api<PrismShard>,
    op: &Operator,
    crds: &Api<CustomResourceDefinition>,
) -> Api<DynamicObject> {
    let installed = std::time::Instant::now();
    for plural in GATEWAY_CRDS {
        let file = upstream_crds().join(format!("gateway.networking.k8s.io_{plural}.yaml"));
        let crd: CustomResourceDefinition =
            serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        crds.patch(
            &crd.name_any(),
            &PatchParams::apply("prism-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
    }
    wait_crd_established(client, GRPCROUTES).await;
    let routes: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &grpc_routes());
    let route = support::wait_for("GRPCRoute prism-checkout", Duration::from_secs(90), || {
        let routes = routes.clone();
        async move {
            routes
                .get_opt("prism-checkout")
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "not there".to_string())
        }
    })
    .await;
    eprintln!(
        "GRPCRoute applied {:.1} s after the Gateway API CRDs were installed",
        installed.elapsed().as_secs_f64()
    );
    assert_eq!(
        route.data["spec"]["parentRefs"],
        json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public", "namespace": "gateways", "sectionName": "grpc-tls"}])
    );
    assert_eq!(
        route.data["spec"]["rules"][0]["backendRefs"][0]["name"],
        "prism-checkout"
    );
    assert_eq!(
        route.data["spec"]["hostnames"],
        json!(["checkout.prism.example.com"])
    );
    wait_object(shards, "checkout", "no longer degraded", op, |s| {
        degraded(s).is_some_and(|(st, _, _)| st == "False")
    })
    .await;
    routes
}

/// Every object prism-render makes of the example passes a server-side dry run, the
/// route included, against the real CRD.
async fn every_rendered_object_passes_a_dry_run(client: &Client, ns: &str) {
    let fleet =
        prism_render::source::load_fleet(&[support::paths::root().join("examples/network")], ns)
            .unwrap();
    let objects = prism_render::render::Renderer::embedded()
        .render_fleet(&fleet)
        .unwrap();
    let mut dry_run = 0;
    for o in objects
        .iter()
        .filter(|o| !o.api_version.starts_with("prism.io/"))
    {
        let ar = prism_operator::kit::apply::api_resource(&o.api_version, &o.kind).unwrap();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        let mut params = PatchParams::apply("prism-dry-run").force();
        params.dry_run = true;
        let mut value = o.value.clone();
        value["metadata"]["namespace"] = json!(ns);
        api.patch(&o.name, &params, &Patch::Apply(&value))
            .await
            .unwrap_or_else(|e| panic!("{} fails a server-side dry run: {e}", o.id()));
        dry_run += 1;
    }
    assert!(dry_run >= 20, "{dry_run} objects");
}

/// What the policies select, evaluated by the API server against the pods the
/// StatefulSet and Deployment controllers made, plus client pods made here.
async fn policies_select_exactly_their_pods(client: &Client, ns: &str) {
    let checkout = wait_pods(client, ns, "app.kubernetes.io/instance=checkout", 3).await;
    let events = wait_pods(client, ns, "app.kubernetes.io/instance=events", 2).await;
    let reports = wait_pods(client, ns, "app.kubernetes.io/instance=reports", 2).await;
    let kafka = wait_pods(client, ns, "app.kubernetes.io/instance=kafka", 2).await;
    // The plugin's probes as admitted: readiness asks its gRPC health service, liveness only
    // that it accepts connections, and tolerates longer.
    let deploy = Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), ns)
        .get("prism-plugin-kafka")
        .await
        .unwrap();
    let plugin = &deploy.spec.template.spec.unwrap().containers[0];
    let (ready, live) = (
        plugin.readiness_probe.clone().unwrap(),
        plugin.liveness_probe.clone().unwrap(),
    );
    assert_eq!(ready.grpc.unwrap().service.as_deref(), Some("kafka"));
    assert_eq!(live.tcp_socket.unwrap().port, IntOrString::Int(50300));
    assert!(live.grpc.is_none() && live.failure_threshold > ready.failure_threshold);
    let (_, apps) = test_namespace("apps").await;
    let (_, others) = test_namespace("others").await;
    let (_, monitoring) = test_namespace("monitoring").await;
    label_namespace(client, &apps, json!({"prism.io/client": "true"})).await;
    for (namespace, name, component) in [
        (apps.as_str(), "producer", "producer"),
        (apps.as_str(), "consumer", "consumer"),
        (others.as_str(), "producer", "producer"),
        (ns, "neighbour", "web"),
        (monitoring.as_str(), "prometheus", "prometheus"),
    ] {
        pod(
            client,
            namespace,
            name,
            json!({"app.kubernetes.io/component": component}),
        )
        .await;
    }

    // A shard's policy selects its own proxies and nothing else.
    for (name, pods) in [
        ("prism-checkout", &checkout),
        ("prism-events", &events),
        ("prism-reports", &reports),
    ] {
        let spec = policy(client, ns, name).await.spec.unwrap();
        let selected = pods_selected(client, ns, spec.pod_selector.as_ref().unwrap()).await;
        assert_eq!(&selected, pods, "{name} selects");
        // gRPC from the clients, metrics from the monitoring namespace: no other port (the
        // sidecars' included) is open to anything outside the pod.
        let ports: Vec<Option<IntOrString>> = spec
            .ingress
            .unwrap()
            .iter()
            .flat_map(|r| r.ports.clone().unwrap())
            .map(|p| p.port)
            .collect();
        assert_eq!(
            ports,
            [Some(IntOrString::Int(8980)), Some(IntOrString::Int(9090))],
            "{name}"
        );
        assert_eq!(
            spec.policy_types.unwrap().contains(&"Egress".to_string()),
            name == "prism-reports",
            "{name}: egress is restricted only where configured"
        );
    }
    // events: producers in client namespaces only (not the consumer, not other namespaces).
    let events_policy = policy(client, ns, "prism-events").await.spec.unwrap();
    let grpc_from = events_policy.ingress.as_ref().unwrap()[0]
        .from
        .clone()
        .unwrap();
    assert_eq!(
        peer_pods(client, ns, &grpc_from[0]).await,
        BTreeSet::from([format!("{apps}/producer")])
    );
    // reports names no clients: pods of its own namespace, which are the shards' and
    // plugin's pods and the neighbour.
    let reports_policy = policy(client, ns, "prism-reports").await.spec.unwrap();
    let reports_from = reports_policy.ingress.as_ref().unwrap()[0]
        .from
        .clone()
        .unwrap();
    let own = peer_pods(client, ns, &reports_from[0]).await;
    assert!(
        own.contains(&format!("{ns}/neighbour"))
            && own.iter().all(|p| p.starts_with(&format!("{ns}/")))
    );
    // checkout's metrics port: only the monitoring namespace `monitoring` (the test's is
    // another name, so nothing), and reports' the `observability` one.
    let checkout_policy = policy(client, ns, "prism-checkout").await.spec.unwrap();
    let metrics_from = checkout_policy.ingress.as_ref().unwrap()[1]
        .from
        .clone()
        .unwrap();
    assert_eq!(
        metrics_from[0]
            .namespace_selector
            .as_ref()
            .unwrap()
            .match_labels,
        Some(
            [(
                "kubernetes.io/metadata.name".to_string(),
                "monitoring".to_string()
            )]
            .into()
        )
    );
    assert!(
        !peer_pods(client, ns, &metrics_from[0])
            .await
            .contains(&format!("{monitoring}/prometheus"))
    );
    let mut as_monitoring = metrics_from[0].clone();
    as_monitoring
        .namespace_selector
        .as_mut()
        .unwrap()
        .match_labels = Some(
        [(
            "kubernetes.io/metadata.name".to_string(),
            monitoring.clone(),
        )]
        .into(),
    );
    assert_eq!(
        peer_pods(client, ns, &as_monitoring).await,
        BTreeSet::from([format!("{monitoring}/prometheus")])
    );
    // The remote plugin: its own pods, reachable only from the proxies of events and reports
    // (the shards that use it), not from checkout's or anyone else.
    let plugin_policy = policy(client, ns, "prism-plugin-kafka").await.spec.unwrap();
    assert_eq!(
        pods_selected(client, ns, plugin_policy.pod_selector.as_ref().unwrap()).await,
        kafka
    );
    let rules = plugin_policy.ingress.unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0].ports.as_ref().unwrap()[0].port,
        Some(IntOrString::Int(50300))
    );
    let users: BTreeSet<String> = events.union(&reports).cloned().collect();
    assert_eq!(
        peer_pods(client, ns, &rules[0].from.as_ref().unwrap()[0]).await,
        users
    );
}

/// Removing expose prunes the route; turning policies off prunes the shard's policy.
/// The plugin keeps its policy while other shards using it want one.
async fn dropping_expose_and_policies_prunes_them(
    client: &Client,
    ns: &str,
    shards: &Api<PrismShard>,
    routes: &Api<DynamicObject>,
) {
    shards
        .patch(
            "checkout",
            &PatchParams::apply("prism-tests"),
            &Patch::Merge(json!({"spec": {"expose": null, "networkPolicy": {"enabled": false}}})),
        )
        .await
        .unwrap();
    let gone = |what: &'static str, api: Api<DynamicObject>| async move {
        support::wait_for(what, Duration::from_secs(90), || {
            let api = api.clone();
            async move {
                match api
                    .get_opt("prism-checkout")
                    .await
                    .map_err(|e| e.to_string())?
                {
                    None => Ok(()),
                    Some(_) => Err("still there".to_string()),
                }
            }
        })
        .await
    };
    gone("GRPCRoute pruned", routes.clone()).await;
    let policies = ApiResource::erase::<NetworkPolicy>(&());
    gone(
        "NetworkPolicy pruned",
        Api::namespaced_with(client.clone(), ns, &policies),
    )
    .await;
    // Deletions are announced, each in an Event of its own note.
    let pruned = events_with_reason(client, ns, "Pruned").await;
    assert!(
        pruned.iter().any(|e| e
            .note
            .as_deref()
            .is_some_and(|n| n.contains(&format!("{ns}/prism-checkout: no longer rendered")))),
        "{pruned:?}"
    );
    policy(client, ns, "prism-plugin-kafka").await;
}

/// A shard that stops using the remote plugin loses access to it.
async fn a_shard_that_drops_the_plugin_loses_access(
    client: &Client,
    ns: &str,
    shards: &Api<PrismShard>,
) {
    shards
        .patch(
            "reports",
            &PatchParams::apply("prism-tests"),
            &Patch::Merge(json!({"spec": {"plugins": []}})),
        )
        .await
        .unwrap();
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
    support::wait_for(
        "kafka reachable from events only",
        Duration::from_secs(90),
        || {
            let policies = policies.clone();
            async move {
                let p = policies
                    .get("prism-plugin-kafka")
                    .await
                    .map_err(|e| e.to_string())?;
                let from = &p.spec.unwrap().ingress.unwrap()[0].from.clone().unwrap()[0];
                let values = from
                    .pod_selector
                    .as_ref()
                    .unwrap()
                    .match_expressions
                    .as_ref()
                    .unwrap()[0]
                    .values
                    .clone();
                match values.as_deref() {
                    Some([only]) if only == "events" => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await;
}
