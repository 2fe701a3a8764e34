//! The webhooks through the real API server. The test control plane's kube-apiserver calls the
//! operator's HTTPS endpoints (on 127.0.0.1, trusted through the CA bundle the operator injects)
//! for every write of a Prism object and for every read in the version it is not stored in:
//! - the bad-input catalogue, replayed object by object: each case the API server can see is
//!   refused, by its own schema or by the webhook in the words of `prism-render validate`;
//! - cross-object refusals (`SharedAdminRefused`, `NameConflict`) and order-of-apply warnings;
//! - objects written as v1alpha1 read as v1beta1 and back;
//! - the serving certificate and the CA renewed (short lifetimes) with no failed call;
//! - the operator down: conversion fails loudly, validation follows `failurePolicy`, and the
//!   status conditions catch what validation let through.

use prism_testing as support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use support::cluster::{cluster, test_namespace};
use support::helm::{documents, helm};
use support::operator::{Operator, install_crds, webhooks_to_loopback};
use support::paths;
use support::process::free_port;
use support::wait_for;

/// What the API server answered to one write: the warnings, or the refusal's message.
type Answer = Result<Vec<String>, String>;

fn plural(kind: &str) -> String {
    format!("{}s", kind.to_lowercase())
}

/// Sends `object` with `method` (POST creates, PUT replaces, DRY creates in a dry run: admitted
/// or not, nothing is stored) in `ns`, in its own apiVersion.
async fn write(client: &Client, method: &str, ns: &str, object: &Value) -> Answer {
    let (method, dry) = match method {
        "DRY" => ("POST", "&dryRun=All"),
        other => (other, ""),
    };
    let api_version = object["apiVersion"].as_str().unwrap_or("prism.io/v1beta1");
    let kind = object["kind"].as_str().unwrap_or("PrismShard");
    let mut url = format!("/apis/{api_version}/namespaces/{ns}/{}", plural(kind));
    if method == "PUT" {
        url.push('/');
        url.push_str(object["metadata"]["name"].as_str().unwrap());
    }
    // As `kubectl apply` sends it (its default --validate=strict): unknown fields are refused.
    url.push_str("?fieldValidation=Strict");
    url.push_str(dry);
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(kube::client::Body::from(
            serde_json::to_vec(object).unwrap(),
        ))
        .unwrap();
    let response = client.send(request).await.map_err(|e| e.to_string())?;
    let warnings = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|w| {
            let w = w.to_str().unwrap_or_default();
            let text = w.strip_prefix("299 - \"").unwrap_or(w);
            text.strip_suffix('"').unwrap_or(text).replace("\\\"", "\"")
        })
        .collect();
    let ok = response.status().is_success();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    match ok {
        true => Ok(warnings),
        false => {
            let status: Value = serde_json::from_slice(&body).unwrap_or_default();
            Err(status["message"].as_str().unwrap_or_default().to_string())
        }
    }
}

/// Reads `kind/name` in `ns` as `api_version`.
async fn read(
    client: &Client,
    api_version: &str,
    ns: &str,
    kind: &str,
    name: &str,
) -> Result<Value, String> {
    let url = format!(
        "/apis/{api_version}/namespaces/{ns}/{}/{name}",
        plural(kind)
    );
    let request = http::Request::get(url).body(Vec::new()).unwrap();
    client
        .request::<Value>(request)
        .await
        .map_err(|e| e.to_string())
}

/// The prefix the API server puts before a refusal of our webhook.
const DENIED: &str = "admission webhook \"validate.prism.io\" denied the request: ";

fn shard(ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "prism.io/v1beta1", "kind": "PrismShard",
           "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

fn namespace(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "prism.io/v1beta1", "kind": "PrismNamespace",
           "metadata": {"name": name, "namespace": ns},
           "spec": {"backend": "postgres", "pattern": "keyvalue"}})
}

/// The chart's ValidatingWebhookConfiguration, calling `port` on 127.0.0.1 instead of the
/// in-cluster Service, for namespaces labelled as this binary's test namespaces.
fn webhook_configuration(name: &str, port: u16, policy: &str) -> Value {
    let kubeconfig = std::env::temp_dir().join("unused.kubeconfig");
    let chart = documents(&helm(
        &[
            "template",
            "x",
            "charts/prism-operator",
            "--show-only",
            "templates/webhook.yaml",
        ],
        &kubeconfig,
    ));
    let mut config = chart
        .into_iter()
        .find(|d| d["kind"] == "ValidatingWebhookConfiguration")
        .expect("the chart has a ValidatingWebhookConfiguration");
    config["metadata"] = json!({"name": name});
    let hook = &mut config["webhooks"][0];
    hook["clientConfig"] = json!({"url": format!("https://127.0.0.1:{port}/validate")});
    hook["failurePolicy"] = policy.into();
    hook["namespaceSelector"] = json!({"matchLabels": {"prism-webhooks": "on"}});
    config
}

async fn label_for_webhooks(client: &Client, ns: &str) {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let patch = json!({"metadata": {"labels": {"prism-webhooks": "on"}}});
    api.patch(ns, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Starts the operator with its webhooks on `port`, its certificates in `ns`.
async fn operator(ns: &str, port: u16, extra: &[&str]) -> Operator {
    let kubeconfig = cluster().await.kubeconfig_path();
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec![
        "--lease-namespace",
        ns,
        "--webhook-addr",
        &addr,
        "--webhook-san",
        "127.0.0.1",
        "--webhook-namespace",
        ns,
        "--webhook-configuration",
        "prism-e2e",
        "--webhook-cert-lifetime",
        "36s",
        "--webhook-ca-lifetime",
        "90s",
    ];
    args.extend_from_slice(extra);
    Operator::start_with_kubeconfig(&kubeconfig, &args).await
}

/// Waits until the API server calls the webhook for `ns`: a shard with an invalid storage
/// size is refused in the webhook's words (the API server's own schema lets it through, so
/// admitting it would mean the webhook was not called). Probes with dry runs, which store
/// nothing: an admitted probe would stay in the namespace.
async fn until_webhook_answers(client: &Client, ns: &str) {
    let bad = shard(
        ns,
        "probe",
        json!({"product": "p", "storage": {"size": "10 gigabytes"}}),
    );
    wait_for(
        "the webhook to be called",
        Duration::from_secs(60),
        || async {
            match write(client, "DRY", ns, &bad).await {
                Err(m) if m.starts_with(DENIED) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

/// The documents of one catalogue case, when every one is a Prism object the API server
/// would route to the webhook; `None` for cases about YAML itself or other kinds.
fn case_objects(dir: &Path) -> Option<Vec<Value>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut objects = Vec::new();
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
    {
        let text = std::fs::read_to_string(file).ok()?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(doc).ok()?;
            if value.is_null() {
                continue;
            }
            let prism = value["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("prism.io/"))
                && ["PrismShard", "PrismPlugin", "PrismNamespace"]
                    .contains(&value["kind"].as_str()?);
            if !prism || !value["metadata"]["name"].is_string() {
                return None;
            }
            objects.push(value);
        }
    }
    (!objects.is_empty()).then_some(objects)
}

/// `path: message` of every line `prism-render validate` printed, with the places of other
/// objects (`(./plugin.yaml:3)`) left out: in the cluster they are objects, not files.
fn cli_said(expected: &str) -> Vec<String> {
    expected
        .lines()
        .filter_map(|l| l.strip_prefix("error: "))
        .map(|l| {
            let rest = l.splitn(3, ": ").collect::<Vec<_>>();
            let said = match rest.as_slice() {
                [_, path, message] => format!("{path}: {message}"),
                _ => l.to_string(),
            };
            without_places(&said)
        })
        .collect()
}

/// `text` without ` (file:line)` places.
fn without_places(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(" (") {
        let end = rest[start..].find(')').map(|e| start + e);
        let inner = end.map(|e| &rest[start + 2..e]);
        let is_place = inner.is_some_and(|i| {
            i.rsplit_once(':').is_some_and(|(f, l)| {
                !f.is_empty()
                    && !f.contains(' ')
                    && !l.is_empty()
                    && l.bytes().all(|b| b.is_ascii_digit())
            })
        });
        match (is_place, end) {
            (true, Some(e)) => {
                out.push_str(&rest[..start]);
                rest = &rest[e + 1..];
            }
            _ => {
                out.push_str(&rest[..start + 2]);
                rest = &rest[start + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `text` as if the objects of test namespace `ns` were in `default`, where the CLI puts
/// objects without a namespace.
fn in_default(text: &str, ns: &str) -> String {
    text.replace(&format!("{ns}/"), "default/")
        .replace(&format!("namespace {ns}"), "namespace default")
}

/// The catalogue's cases, in order.
fn bad_input_cases() -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(paths::root().join("tests/bad_inputs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// Waits (a few seconds at most) until the webhook's caches hold what this case created
/// before `object`: a plugin or shard created a moment ago may not have reached them yet, and
/// the webhook would then warn that it does not exist (a race the status conditions cover).
/// Probes with dry runs, which store nothing.
async fn until_cached(client: &Client, ns: &str, object: &Value, before: &[Answer]) {
    if before.iter().all(Result::is_err) {
        return;
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        match write(client, "DRY", ns, object).await {
            Ok(warnings)
                if warnings
                    .iter()
                    .any(|w| w.contains(" not found (") || w.contains("no PrismShard exists")) =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            _ => return,
        }
    }
}

/// How the cluster answered one catalogue case.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
enum Outcome {
    /// The webhook refused it with the CLI's words.
    Webhook,
    /// The API server's own schema (or its metadata rules) refused it first.
    ApiServer,
    /// Admitted, with the CLI's words as a warning (the order of apply may fix it).
    Warned,
    /// Admitted without the CLI's words: only a whole fleet shows the problem.
    Admitted,
}

async fn replay(client: &Client, dir: &Path) -> Option<(Outcome, String)> {
    let mut objects = case_objects(dir)?;
    let expected = cli_said(&std::fs::read_to_string(dir.join("expected.txt")).unwrap());
    let (_, ns) = test_namespace("bad").await;
    label_for_webhooks(client, &ns).await;
    // The API server matches the webhook's namespaceSelector against its own cache of
    // namespaces: until the label reaches it, objects here are admitted without a call.
    until_webhook_answers(client, &ns).await;
    let rank = |o: &Value| match o["kind"].as_str() {
        Some("PrismPlugin") => 0,
        Some("PrismShard") => 1,
        _ => 2,
    };
    objects.sort_by_key(rank);
    let mut seen = Vec::new();
    for mut object in objects {
        if object["metadata"].get("namespace").is_none() {
            object["metadata"]["namespace"] = ns.clone().into();
        }
        let target = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or(&ns)
            .to_string();
        until_cached(client, &target, &object, &seen).await;
        seen.push(write(client, "POST", &target, &object).await);
    }
    for answer in &seen {
        match answer {
            Err(m) if m.starts_with(DENIED) => {
                // The CLI puts objects without a namespace in `default`; here they are in ns.
                let m = in_default(m, &ns);
                let said: Vec<String> = m[DENIED.len()..].lines().map(String::from).collect();
                assert!(
                    said.iter().all(|s| expected.contains(s)),
                    "{}: the webhook said {said:?}, prism-render validate {expected:?}",
                    dir.display()
                );
                return Some((Outcome::Webhook, said.join("; ")));
            }
            Err(m) => return Some((Outcome::ApiServer, m.clone())),
            Ok(_) => {}
        }
    }
    let warned: Vec<String> = seen
        .iter()
        .flatten()
        .flatten()
        .map(|w| in_default(w, &ns))
        .filter(|w| expected.contains(w))
        .collect();
    match warned.first() {
        Some(w) => Some((Outcome::Warned, w.clone())),
        None => Some((Outcome::Admitted, format!("{seen:?}"))),
    }
}

/// Every case of the catalogue the API server can see as objects, with the layer that answers
/// it. Cases missing here are about YAML or files and never reach it as an object.
const CATALOGUE: &[(&str, Outcome)] = &[
    // Checks the CRD schema cannot express: refused by the webhook in the CLI's words.
    ("38-name-too-long", Outcome::Webhook),
    ("44-invalid-annotation-key", Outcome::Webhook),
    ("55-invalid-quantity", Outcome::Webhook),
    ("56-negative-quantity", Outcome::Webhook),
    ("60-invalid-version-requirement", Outcome::Webhook),
    ("68-sidecar-port-collision", Outcome::Webhook),
    (
        "69-sidecar-port-collides-with-proxy-metrics",
        Outcome::Webhook,
    ),
    ("70-remote-plugin-as-sidecar", Outcome::Webhook),
    // The API server's own schema, CEL rules, metadata rules or strict field validation
    // refuse these before any webhook is called (in its own words).
    ("06-duplicate-top-level-kind", Outcome::ApiServer),
    ("08-deep-nesting", Outcome::ApiServer),
    ("09-merge-key", Outcome::ApiServer),
    ("21-crlf-line-endings", Outcome::ApiServer),
    ("22-lone-cr-line-endings", Outcome::ApiServer),
    ("26-error-in-third-document", Outcome::ApiServer),
    ("35-metadata-field-typo", Outcome::ApiServer),
    ("37-empty-name", Outcome::ApiServer),
    ("39-name-ends-with-dash", Outcome::ApiServer),
    ("40-invalid-namespace", Outcome::ApiServer),
    ("42-label-value-not-a-string", Outcome::ApiServer),
    ("43-invalid-label-value", Outcome::ApiServer),
    ("47-float-for-integer", Outcome::ApiServer),
    ("48-negative-replicas", Outcome::ApiServer),
    ("49-replicas-over-limit", Outcome::ApiServer),
    ("50-port-out-of-range", Outcome::ApiServer),
    ("51-string-too-long", Outcome::ApiServer),
    ("52-null-in-list", Outcome::ApiServer),
    ("53-boolean-for-string", Outcome::ApiServer),
    ("54-list-for-object", Outcome::ApiServer),
    ("57-too-many-backend-options", Outcome::ApiServer),
    ("58-invalid-duration", Outcome::ApiServer),
    ("59-invalid-semver", Outcome::ApiServer),
    ("61-invalid-image-reference", Outcome::ApiServer),
    ("62-invalid-enum-value", Outcome::ApiServer),
    ("63-admin-endpoint-with-credentials", Outcome::ApiServer),
    ("64-invalid-secret-key", Outcome::ApiServer),
    ("65-duplicate-plugin-entry", Outcome::ApiServer),
    ("66-duplicate-backend", Outcome::ApiServer),
    ("67-duplicate-across-files", Outcome::ApiServer),
    ("71-replicas-on-sidecar-plugin", Outcome::ApiServer),
    ("72-replicas-outside-autoscaling-range", Outcome::ApiServer),
    ("73-caching-without-ttl", Outcome::ApiServer),
    ("74-secret-and-plain-connection-string", Outcome::ApiServer),
    ("76-unplaceable-other-namespace", Outcome::ApiServer),
    ("78-key-with-brackets", Outcome::ApiServer),
    ("80-expose-both", Outcome::ApiServer),
    ("81-expose-bad-hostname", Outcome::ApiServer),
    ("82-expose-route-without-parents", Outcome::ApiServer),
    ("83-network-policy-bad-peer", Outcome::ApiServer),
    // The order of apply may fix these (the plugin or shard may come later): admitted with
    // the CLI's words as a warning.
    ("23-empty-file-leaves-reference-dangling", Outcome::Warned),
    ("24-comments-only-file", Outcome::Warned),
    ("25-only-document-markers", Outcome::Warned),
    ("75-unplaceable-backend", Outcome::Warned),
    ("77-unplaceable-shard-name", Outcome::Warned),
    // Not problems of an object: YAML the API server never sees (a duplicate key, a .nan),
    // a CLI flag (-n), and a collision of rendered names only the whole render shows (the
    // operator reports it in status).
    ("05-duplicate-key", Outcome::Admitted),
    ("41-invalid-default-namespace-flag", Outcome::Admitted),
    ("46-not-a-finite-number", Outcome::Admitted),
    ("79-rendered-name-collision", Outcome::Admitted),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_calls_the_operators_webhooks() {
    let client = cluster().await.client();
    install_crds(&client).await;
    let (_, home) = test_namespace("webhooks").await;
    let (_, other) = test_namespace("webhooks-b").await;
    for ns in [&home, &other] {
        label_for_webhooks(&client, ns).await;
    }
    let port = free_port();
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let config: ValidatingWebhookConfiguration =
        serde_json::from_value(webhook_configuration("prism-e2e", port, "Fail")).unwrap();
    configs.create(&Default::default(), &config).await.unwrap();
    webhooks_to_loopback(&client, "prism-e2e", port).await;
    let mut op = operator(&home, port, &[]).await;
    until_webhook_answers(&client, &home).await;
    until_webhook_answers(&client, &other).await;

    // 1. The catalogue, case by case.
    let mut outcomes = BTreeMap::new();
    for dir in bad_input_cases() {
        if let Some((outcome, said)) = replay(&client, &dir).await {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            println!("{name}: {outcome:?}: {said}");
            outcomes.insert(name, outcome);
        }
    }
    let expected: BTreeMap<String, Outcome> =
        CATALOGUE.iter().map(|(n, o)| (n.to_string(), *o)).collect();
    assert_eq!(outcomes, expected);

    // 2. Across objects: an older shard's admin is refused; what a later apply fixes is warned.
    let admin = json!({"product": "p", "adminEndpoint": "127.0.0.1:9"});
    assert_eq!(
        write(
            &client,
            "POST",
            &home,
            &shard(&home, "owner", admin.clone())
        )
        .await,
        Ok(vec![])
    );
    wait_for(
        "the shard in the webhook's cache",
        Duration::from_secs(30),
        || async {
            match write(
                &client,
                "POST",
                &other,
                &shard(&other, "taker", admin.clone()),
            )
            .await
            {
                Err(m) if m.starts_with(DENIED) => Ok(m),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
    .contains("shares its Prism admin with the older shard");
    let refused = write(
        &client,
        "POST",
        &other,
        &shard(&other, "taker", admin.clone()),
    )
    .await;
    assert_eq!(
        refused,
        Err(format!(
            "{DENIED}shares its Prism admin with the older shard {home}/owner, and the operator \
             does not allow shared admins: none of this shard's namespaces are sent to admin. \
             Give the shard its own spec.adminEndpoint, or run the operator with \
             --allow-shared-admin"
        ))
    );
    let waiting = write(&client, "POST", &other, &namespace(&other, "early")).await;
    assert_eq!(
        waiting,
        Ok(vec![format!(
            "spec.backend: cannot be placed: no PrismShard exists in namespace {other}"
        )])
    );
    let needs = json!({"product": "p", "plugins": [{"name": "pg", "version": "1.2"}]});
    let warned = write(
        &client,
        "POST",
        &other,
        &shard(&other, "needs", needs.clone()),
    )
    .await;
    assert_eq!(
        warned,
        Ok(vec![format!(
            "spec.plugins[0].name: PrismPlugin {other}/pg not found (no PrismPlugin exists in namespace {other})"
        )])
    );

    // 3. Conversion: written as v1alpha1, read as v1beta1, and back.
    let mut old = shard(
        &home,
        "old",
        json!({"product": "p", "replicas": 3,
        "autoscaling": {"enabled": true, "minReplicas": 2, "maxReplicas": 5, "targetCPUUtilization": 70}}),
    );
    old["apiVersion"] = "prism.io/v1alpha1".into();
    assert_eq!(write(&client, "POST", &home, &old).await, Ok(vec![]));
    let beta = read(&client, "prism.io/v1beta1", &home, "PrismShard", "old")
        .await
        .unwrap();
    assert_eq!(beta["apiVersion"], "prism.io/v1beta1");
    assert!(beta["spec"].get("replicas").is_none(), "{beta}");
    let alpha = read(&client, "prism.io/v1alpha1", &home, "PrismShard", "old")
        .await
        .unwrap();
    assert_eq!(
        alpha["spec"], old["spec"],
        "the round trip keeps every field"
    );
    let mut updated = beta.clone();
    updated["spec"]["product"] = "q".into();
    assert!(write(&client, "PUT", &home, &updated).await.is_ok());
    let alpha = read(&client, "prism.io/v1alpha1", &home, "PrismShard", "old")
        .await
        .unwrap();
    assert_eq!(
        (
            alpha["spec"]["product"].clone(),
            alpha["spec"]["replicas"].clone()
        ),
        (json!("q"), json!(3))
    );

    // 4. Renewals (36 s certificates, 90 s CA): writes and converted reads all the while.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &home);
    let material = |s: Secret| {
        let d = s.data.unwrap_or_default();
        (d.get("tls.crt").cloned(), d.get("ca.key").cloned())
    };
    let first = material(secrets.get("prism-operator-webhook-cert").await.unwrap());
    let (mut certs, mut cas) = (vec![first.0.clone()], vec![first.1.clone()]);
    let (mut calls, mut failures) = (0, Vec::new());
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(100) {
        let name = format!("r{calls}");
        match write(
            &client,
            "POST",
            &home,
            &shard(&home, &name, json!({"product": "p"})),
        )
        .await
        {
            Ok(_) => {}
            Err(e) => failures.push(e),
        }
        if let Err(e) = read(&client, "prism.io/v1alpha1", &home, "PrismShard", &name).await {
            failures.push(e);
        }
        calls += 2;
        let (cert, ca) = material(secrets.get("prism-operator-webhook-cert").await.unwrap());
        if certs.last() != Some(&cert) {
            certs.push(cert);
        }
        if cas.last() != Some(&ca) {
            cas.push(ca);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    println!(
        "{calls} calls across {} certificates and {} CAs",
        certs.len(),
        cas.len()
    );
    assert_eq!(failures, Vec::<String>::new());
    assert!(certs.len() >= 3, "{} certificates", certs.len());
    assert!(cas.len() >= 2, "{} CAs", cas.len());

    // 5. Every replica serves, not only the leader: a standby, its caches warm, refuses what
    // needs them, with a certificate from the same Secret.
    op.kill();
    let elect = ["--leader-elect", "--lease-name", "prism-e2e"];
    let leader = operator(
        &home,
        port,
        &[&elect[..], &["--identity", "leader"]].concat(),
    )
    .await;
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), &home);
    wait_for(
        "the leader to hold the Lease",
        Duration::from_secs(60),
        || async {
            let lease = leases.get("prism-e2e").await.map_err(|e| e.to_string())?;
            match lease.spec.and_then(|s| s.holder_identity).as_deref() {
                Some("leader") => Ok(()),
                other => Err(format!("held by {other:?}")),
            }
        },
    )
    .await;
    let standby_port = free_port();
    let standby = operator(
        &home,
        standby_port,
        &[&elect[..], &["--identity", "standby"]].concat(),
    )
    .await;
    let to_standby = webhook_configuration("prism-e2e", standby_port, "Fail");
    configs
        .patch(
            "prism-e2e",
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&to_standby),
        )
        .await
        .unwrap();
    let by_standby = wait_for("the standby to refuse", Duration::from_secs(60), || async {
        match write(
            &client,
            "DRY",
            &other,
            &shard(&other, "taker", admin.clone()),
        )
        .await
        {
            Err(m) if m.starts_with(DENIED) => Ok(m),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(Err(by_standby), refused);
    let metrics = standby.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("leader_election_master_status{") && l.ends_with("} 0")),
        "it answered as a standby: {metrics}"
    );
    drop(standby);
    drop(leader);

    // 6. The operator down: conversion fails loudly, validation follows failurePolicy (Fail).
    op.kill();
    let converted = read(&client, "prism.io/v1alpha1", &home, "PrismShard", "owner").await;
    assert!(
        converted.is_err_and(|e| e.contains("conversion webhook")),
        "a read in the other version fails"
    );
    let down = write(
        &client,
        "POST",
        &home,
        &shard(&home, "while-down", json!({"product": "p"})),
    )
    .await;
    assert!(down.is_err_and(|e| e.contains("failed calling webhook")));

    // 7. failurePolicy Ignore: writes go through while it is down, and the conditions catch
    // what the webhook would have refused once the operator is back.
    let patch = webhook_configuration("prism-e2e", port, "Ignore");
    configs
        .patch(
            "prism-e2e",
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&patch),
        )
        .await
        .unwrap();
    wait_for(
        "writes to go through unchecked",
        Duration::from_secs(30),
        || async {
            write(
                &client,
                "POST",
                &other,
                &shard(&other, "taker", admin.clone()),
            )
            .await
            .map(drop)
        },
    )
    .await;
    let _op = operator(&home, port, &[]).await;
    let shards: Api<prism_api::PrismShard> = Api::namespaced(client.clone(), &other);
    wait_for(
        "SharedAdminRefused on the shard let in",
        Duration::from_secs(60),
        || async {
            let s = shards.get("taker").await.map_err(|e| e.to_string())?;
            let reasons: Vec<String> = s
                .status
                .iter()
                .flat_map(|s| s.conditions.iter())
                .map(|c| c.reason.clone())
                .collect();
            match reasons.iter().any(|r| r == "SharedAdminRefused") {
                true => Ok(()),
                false => Err(format!("{reasons:?}")),
            }
        },
    )
    .await;
}
