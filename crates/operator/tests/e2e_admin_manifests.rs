//! The example that runs upstream's Prism admin beside the operator
//! (`examples/prism-admin/admin.yaml`: a three-node Raft group as a StatefulSet, a headless and a
//! client Service, a PodDisruptionBudget) on the real API server, in a namespace enforcing the
//! restricted Pod Security profile. Every object passes a server-side dry run as written (the
//! file names no namespace). The profile is enforced on Pods only, and a StatefulSet is admitted
//! whatever its template holds, so the Pod the StatefulSet controller would make of the template
//! (`prism-admin-0`, with its claim's volume) is dry-run too and admitted, while the same Pod
//! allowed to escalate privileges is refused: the namespace really enforces the profile. The
//! objects fit together: three replicas started in parallel; the headless Service (no cluster
//! IP, names published before readiness) and the PodDisruptionBudget (one node at a time) select
//! the pods; every port a Service names is a port of the pod, on the headless Service with the
//! same number (a pod's DNS name has no port mapping); admin listens on 8980, where followers
//! forward writes; each node advertises its own name under the headless Service, and the peer
//! list names every node; the Raft data directory is on the claim's volume.

use prism_testing as support;

use std::collections::BTreeMap;

use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};
use support::cluster::{NamespaceOptions, test_namespace_with};

/// The example, relative to the repository's root.
const EXAMPLE: &str = "examples/prism-admin/admin.yaml";
/// The port a follower forwards writes to: the leader's host on 8980, hard-coded upstream.
const FORWARD_PORT: i64 = 8980;

/// Every document of the example.
fn documents() -> Vec<Value> {
    let path = support::paths::root().join(EXAMPLE);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            serde::Deserialize::deserialize(doc).unwrap_or_else(|e| panic!("{EXAMPLE}: {e}"))
        })
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().expect("a kind")
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().expect("a name")
}

/// The only object of kind `wanted` among `docs` for which `pick` holds.
fn the<'a>(docs: &'a [Value], wanted: &str, pick: impl Fn(&Value) -> bool) -> &'a Value {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|&d| kind(d) == wanted && pick(d))
        .collect();
    assert_eq!(found.len(), 1, "one {wanted} of that sort in {EXAMPLE}");
    found[0]
}

/// The API resource of `doc`, from its apiVersion and kind.
fn resource(doc: &Value) -> ApiResource {
    let api_version = doc["apiVersion"].as_str().expect("an apiVersion");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind(doc)))
}

/// Server-side apply of `doc` in `ns` with dryRun=All.
async fn dry_run(client: &Client, ns: &str, doc: &Value) -> Result<DynamicObject, kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource(doc));
    let mut body = doc.clone();
    body["metadata"]["namespace"] = json!(ns);
    let params = PatchParams::apply("prism-tests").dry_run();
    let result = api.patch(name(doc), &params, &Patch::Apply(&body)).await;
    // A dry run stores nothing.
    assert!(
        api.get_opt(name(doc)).await.unwrap().is_none(),
        "the dry run of {} {} stored it",
        kind(doc),
        name(doc)
    );
    result
}

/// The dry run of `doc` is accepted; panics with the API server's answer otherwise.
async fn accepted(client: &Client, ns: &str, doc: &Value) {
    if let Err(e) = dry_run(client, ns, doc).await {
        panic!(
            "{} {} fails a server-side dry run under restricted Pod Security: {e}\n{doc:#}",
            kind(doc),
            name(doc)
        );
    }
}

/// A label map (`metadata.labels`, a selector's `matchLabels` or a Service's `selector`).
fn labels(map: &Value) -> BTreeMap<&str, &str> {
    let mut out = BTreeMap::new();
    for (key, value) in map.as_object().into_iter().flatten() {
        out.insert(
            key.as_str(),
            value.as_str().expect("a label value is a string"),
        );
    }
    out
}

/// `selector` is not empty and each of its labels is among `pod`'s.
fn selects(selector: &BTreeMap<&str, &str>, pod: &BTreeMap<&str, &str>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| pod.get(k) == Some(v))
}

/// The Pod the StatefulSet controller makes for `ordinal`: the template's labels and spec, a
/// volume per claim template (claim `<template>-<pod>`), and the hostname and subdomain that
/// give the pod its name under the headless Service.
fn pod_of(sts: &Value, ordinal: u64) -> Value {
    let pod = format!("{}-{ordinal}", name(sts));
    let spec = &sts["spec"];
    let mut pod_spec = spec["template"]["spec"].clone();
    let mut volumes = pod_spec["volumes"].as_array().cloned().unwrap_or_default();
    for claim in spec["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
    {
        volumes.push(json!({
            "name": name(claim),
            "persistentVolumeClaim": {"claimName": format!("{}-{pod}", name(claim))},
        }));
    }
    pod_spec["volumes"] = Value::Array(volumes);
    pod_spec["hostname"] = json!(pod);
    pod_spec["subdomain"] = spec["serviceName"].clone();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod, "labels": spec["template"]["metadata"]["labels"]},
        "spec": pod_spec,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_admin_example_passes_a_dry_run_under_restricted_pod_security() {
    let (client, ns) = test_namespace_with("prism-admin", &NamespaceOptions::restricted()).await;
    let docs = documents();
    assert_eq!(
        docs.len(),
        4,
        "two Services, a StatefulSet, a PodDisruptionBudget"
    );

    // Every object as written: no namespace (`kubectl apply -n` places it), admitted.
    for doc in &docs {
        assert!(
            doc["metadata"]["namespace"].is_null(),
            "{} {} names a namespace",
            kind(doc),
            name(doc)
        );
        accepted(&client, &ns, doc).await;
    }
    let sts = the(&docs, "StatefulSet", |_| true);
    let pdb = the(&docs, "PodDisruptionBudget", |_| true);
    let headless = the(&docs, "Service", |s| s["spec"]["clusterIP"] == "None");
    let clients = the(&docs, "Service", |s| s["spec"]["clusterIP"] != "None");

    // The Pod the profile is enforced on, made of the StatefulSet's template, is admitted...
    let pod = pod_of(sts, 0);
    assert_eq!(name(&pod), "prism-admin-0");
    accepted(&client, &ns, &pod).await;
    // ...and the same Pod breaking the profile is refused: the namespace enforces it.
    let mut escalating = pod.clone();
    escalating["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] =
        json!(true);
    match dry_run(&client, &ns, &escalating).await {
        Err(kube::Error::Api(e)) => assert!(
            e.code == 403
                && e.message.contains("PodSecurity")
                && e.message.contains("allowPrivilegeEscalation"),
            "refused for another reason than the restricted profile: {e:?}"
        ),
        Ok(_) => panic!("the restricted namespace admits a pod that may escalate privileges"),
        Err(e) => panic!("the dry run failed otherwise: {e}"),
    }

    // Three Raft nodes, started together (a node that sees no leader within 5 s exits), named
    // under the headless Service.
    let spec = &sts["spec"];
    assert_eq!(spec["replicas"], 3);
    assert_eq!(spec["podManagementPolicy"], "Parallel");
    assert_eq!(spec["serviceName"], name(headless));
    let template = &spec["template"];
    let pod_labels = labels(&template["metadata"]["labels"]);
    assert!(
        selects(&labels(&spec["selector"]["matchLabels"]), &pod_labels),
        "the StatefulSet's selector and its pods' labels {pod_labels:?}"
    );

    // The PodDisruptionBudget covers exactly these pods, one at a time.
    assert!(pdb["spec"]["selector"]["matchExpressions"].is_null());
    assert!(
        selects(
            &labels(&pdb["spec"]["selector"]["matchLabels"]),
            &pod_labels
        ),
        "PodDisruptionBudget {} does not select the pods {pod_labels:?}",
        name(pdb)
    );
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);

    // Both Services select the pods; the headless one publishes names before readiness.
    assert_eq!(headless["spec"]["publishNotReadyAddresses"], true);
    for service in [headless, clients] {
        assert!(
            selects(&labels(&service["spec"]["selector"]), &pod_labels),
            "Service {} does not select the pods {pod_labels:?}",
            name(service)
        );
    }

    // Every port a Service names is a port of the pod; on the headless Service, whose names
    // lead straight to the pods, with the same number.
    let pod_spec = &template["spec"];
    let containers = pod_spec["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    let mut ports: BTreeMap<&str, i64> = BTreeMap::new();
    for port in container["ports"].as_array().expect("container ports") {
        ports.insert(
            port["name"].as_str().expect("a named container port"),
            port["containerPort"].as_i64().expect("a port number"),
        );
    }
    let mut headless_ports: BTreeMap<&str, i64> = BTreeMap::new();
    for (service, is_headless) in [(headless, true), (clients, false)] {
        for port in service["spec"]["ports"].as_array().expect("Service ports") {
            let number = port["port"].as_i64().expect("a port number");
            let target = match &port["targetPort"] {
                Value::String(named) => *ports.get(named.as_str()).unwrap_or_else(|| {
                    panic!(
                        "Service {} port {}: the pod has no port named {named}: {ports:?}",
                        name(service),
                        port["name"]
                    )
                }),
                Value::Null => number,
                other => other.as_i64().expect("a port number"),
            };
            assert!(
                ports.values().any(|p| *p == target),
                "Service {} port {}: the pod has no port {target}: {ports:?}",
                name(service),
                port["name"]
            );
            if is_headless {
                assert_eq!(number, target, "headless Service port {}", port["name"]);
                headless_ports.insert(port["name"].as_str().expect("a named port"), number);
            }
        }
    }

    // The command line: admin listens where followers forward writes, and the headless Service
    // serves that port.
    let mut words = Vec::new();
    for key in ["command", "args"] {
        for word in container[key].as_array().expect(key) {
            words.push(word.as_str().expect("command and args are strings"));
        }
    }
    let script = words.join(" ");
    assert!(
        script.contains(&format!("--grpc-port {FORWARD_PORT}")),
        "admin does not listen on {FORWARD_PORT}: {script}"
    );
    assert!(
        headless_ports.values().any(|p| *p == FORWARD_PORT),
        "the headless Service does not serve {FORWARD_PORT}: {headless_ports:?}"
    );
    let raft = *headless_ports
        .get("raft")
        .expect("a raft port on the headless Service");

    // Each node advertises its own name under the headless Service, from env fieldRefs defined
    // before the variables that expand them.
    let env = container["env"].as_array().expect("env");
    let position = |var: &str| {
        env.iter()
            .position(|e| e["name"] == var)
            .unwrap_or_else(|| panic!("no env variable {var}: {env:#?}"))
    };
    let pod_name = position("POD_NAME");
    assert_eq!(
        env[pod_name]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    let pod_namespace = position("POD_NAMESPACE");
    assert_eq!(
        env[pod_namespace]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    let headless_name = name(headless);
    let holding = |value: &str| {
        let at = env
            .iter()
            .position(|e| e["value"] == value)
            .unwrap_or_else(|| panic!("no env variable holds {value}: {env:#?}"));
        assert!(
            at > pod_name && at > pod_namespace,
            "{value} is defined before POD_NAME or POD_NAMESPACE, which it expands"
        );
        env[at]["name"].as_str().expect("an env name").to_string()
    };
    let advertised = format!("$(POD_NAME).{headless_name}.$(POD_NAMESPACE).svc:{raft}");
    let advertise = holding(&advertised);
    assert!(
        script.contains(&format!("--advertise-addr \"${advertise}\"")),
        "--advertise-addr is not {advertise}: {script}"
    );

    // The peer list names every node (id = ordinal + 1) by the same names, and the id each node
    // takes is its ordinal + 1.
    let replicas = spec["replicas"].as_u64().expect("replicas");
    let peers: Vec<String> = (0..replicas)
        .map(|i| {
            format!(
                "{}={}-{i}.{headless_name}.$(POD_NAMESPACE).svc:{raft}",
                i + 1,
                name(sts)
            )
        })
        .collect();
    let cluster = holding(&peers.join(","));
    assert!(
        script.contains(&format!("--cluster \"${cluster}\"")),
        "--cluster is not {cluster}: {script}"
    );
    assert!(
        script.contains(r#"--raft-id "$$(( ${POD_NAME##*-} + 1 ))""#),
        "the Raft id is not the ordinal + 1: {script}"
    );

    // The Raft data directory and the database are on the claim's volume.
    let claims = spec["volumeClaimTemplates"]
        .as_array()
        .expect("volumeClaimTemplates");
    assert_eq!(claims.len(), 1);
    let mount = container["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["name"] == name(&claims[0]))
        .unwrap_or_else(|| panic!("the claim {} is not mounted", name(&claims[0])));
    let data = mount["mountPath"].as_str().expect("a mount path");
    for flag in [
        format!("--data-dir {data}/"),
        format!("--db sqlite://{data}/"),
    ] {
        assert!(script.contains(&flag), "no {flag} in {script}");
    }
    // Upstream's image runs as Alpine's nobody.
    assert_eq!(pod_spec["securityContext"]["runAsUser"], 65534);
    assert_eq!(pod_spec["securityContext"]["runAsGroup"], 65534);
}
