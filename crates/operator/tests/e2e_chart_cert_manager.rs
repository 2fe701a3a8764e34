//! The chart's cert-manager mode (`webhook.certManager.enabled`) against cert-manager's own
//! CRDs, taken from its Go module by tools/crds/build.sh: every Issuer and Certificate the chart
//! renders passes a server-side dry run on the real control plane, with the chart's own
//! self-signed CA and with a ClusterIssuer given, while a broken Certificate is refused by the
//! same dry run; the CA injector's annotations (ValidatingWebhookConfiguration, the three Prism
//! CRDs) name the serving Certificate, whose Secret the Deployment mounts; and the operator is
//! granted nothing on Secrets but `get`.

use prism_testing as support;

use std::collections::BTreeSet;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use support::cluster::{cluster, test_namespace};
use support::helm::{documents, helm, upstream_crds};
use support::operator::wait_crd_established;

const RELEASE: &str = "edge";
/// The chart's full name for [`RELEASE`].
const FULLNAME: &str = "edge-prism-operator";
const INJECT: &str = "cert-manager.io/inject-ca-from";
const PRISM_CRDS: [&str; 3] = [
    "prismnamespaces.prism.io",
    "prismplugins.prism.io",
    "prismshards.prism.io",
];

/// Installs cert-manager's Certificate and Issuer CRDs (from its Go module) and waits until
/// they are established.
async fn install_cert_manager_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for file in [
        "cert-manager.io_certificates.yaml",
        "cert-manager.io_issuers.yaml",
    ] {
        let path = upstream_crds().join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run tools/crds/build.sh)", path.display()));
        let crd: CustomResourceDefinition = serde_yaml::from_str(&text).unwrap();
        assert_eq!(crd.spec.group, "cert-manager.io", "{file}");
        let name = crd.metadata.name.clone().unwrap();
        api.patch(
            &name,
            &PatchParams::apply("prism-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("installing CRD {name}: {e}"));
        wait_crd_established(client, &name).await;
    }
}

/// `helm template` of the chart as release [`RELEASE`] in `ns`, with `--set` for each of `sets`.
async fn render(ns: &str, sets: &[&str]) -> Vec<Value> {
    let kubeconfig = cluster().await.kubeconfig_path();
    let mut args = vec![
        "template",
        RELEASE,
        "charts/prism-operator",
        "--namespace",
        ns,
    ];
    for set in sets {
        args.extend(["--set", *set]);
    }
    documents(&helm(&args, &kubeconfig))
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().expect("a name")
}

/// Server-side apply of `doc` (a cert-manager.io/v1 object in `ns`) with dryRun=All.
async fn dry_run(client: &Client, ns: &str, doc: &Value) -> Result<DynamicObject, kube::Error> {
    assert_eq!(doc["apiVersion"], "cert-manager.io/v1", "{doc}");
    let kind = doc["kind"].as_str().unwrap();
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("cert-manager.io", "v1", kind));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let params = PatchParams::apply("prism-tests").dry_run();
    let result = api.patch(name(doc), &params, &Patch::Apply(doc)).await;
    // A dry run stores nothing.
    assert!(
        api.get_opt(name(doc)).await.unwrap().is_none(),
        "the dry run of {kind} {} stored it",
        name(doc)
    );
    result
}

/// Dry-runs every cert-manager.io object of `docs` and asserts that the API server accepts it
/// unchanged; returns how many there were of each kind.
async fn all_accepted(client: &Client, ns: &str, docs: &[Value]) -> (usize, usize) {
    let ours: Vec<&Value> = docs
        .iter()
        .filter(|d| {
            d["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("cert-manager.io/"))
        })
        .collect();
    for doc in &ours {
        assert_eq!(doc["metadata"]["namespace"], ns, "{doc}");
        let accepted = dry_run(client, ns, doc).await.unwrap_or_else(|e| {
            panic!(
                "cert-manager's CRD refuses {} {}: {e}\n{doc:#}",
                doc["kind"],
                name(doc)
            )
        });
        assert_eq!(accepted.data["spec"], doc["spec"], "{}", name(doc));
    }
    (
        ours.iter().filter(|d| d["kind"] == "Issuer").count(),
        ours.iter().filter(|d| d["kind"] == "Certificate").count(),
    )
}

/// The dry run refuses `doc` with a message containing `why`. (A field the schema does not
/// declare fails server-side apply's typed patch, which the API server answers with 500; a
/// schema violation is 422.)
async fn refused(client: &Client, ns: &str, doc: &Value, why: &str) {
    match dry_run(client, ns, doc).await {
        Err(kube::Error::Api(e)) => {
            assert!(
                [422, 500].contains(&e.code) && e.message.contains(why),
                "refused for another reason than {why:?}: {e:?}"
            );
            println!("refused as expected: {}", e.message);
        }
        Ok(_) => panic!("the dry run accepts a broken Certificate:\n{doc:#}"),
        Err(e) => panic!("the dry run failed otherwise: {e}"),
    }
}

/// Every verb any Role or ClusterRole of `docs` grants on Secrets.
fn secret_verbs(docs: &[Value]) -> BTreeSet<String> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    docs.iter()
        .filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole")
        .flat_map(|d| d["rules"].as_array().cloned().unwrap_or_default())
        .filter(|rule| {
            let groups = strings(&rule["apiGroups"]);
            let resources = strings(&rule["resources"]);
            groups.iter().any(|g| g.is_empty() || g == "*")
                && resources.iter().any(|r| r == "secrets" || r == "*")
        })
        .flat_map(|rule| strings(&rule["verbs"]))
        .collect()
}

/// The checks both cert-manager setups share: the serving Certificate is the one the CA
/// injector is told about, for the webhook Service's name, and its Secret is what the operator
/// serves from; no Secret permission but `get`. Returns the serving Certificate.
fn check_wiring<'a>(docs: &'a [Value], ns: &str) -> &'a Value {
    let serving = format!("{FULLNAME}-webhook");
    let inject = format!("{ns}/{serving}");
    let certificate = of_kind(docs, "Certificate")
        .into_iter()
        .find(|c| name(c) == serving && c["metadata"]["namespace"] == ns)
        .unwrap_or_else(|| panic!("no Certificate {inject} among {docs:#?}"));
    let tls_secret = format!("{FULLNAME}-webhook-tls");
    assert_eq!(certificate["spec"]["secretName"], tls_secret.as_str());

    // The CA injector fills in the ValidatingWebhookConfiguration and the CRDs' conversion.
    let webhooks = of_kind(docs, "ValidatingWebhookConfiguration");
    assert_eq!(webhooks.len(), 1);
    assert_eq!(
        webhooks[0]["metadata"]["annotations"][INJECT],
        inject.as_str()
    );
    let service = &webhooks[0]["webhooks"][0]["clientConfig"]["service"];
    assert_eq!(service["namespace"], ns);
    let dns = format!("{}.{ns}.svc", service["name"].as_str().unwrap());
    assert!(
        certificate["spec"]["dnsNames"]
            .as_array()
            .unwrap()
            .contains(&json!(dns)),
        "the Certificate covers {dns}: {certificate:#}"
    );
    let crds = of_kind(docs, "CustomResourceDefinition");
    let names: BTreeSet<&str> = crds.iter().map(|c| name(c)).collect();
    assert_eq!(names, BTreeSet::from(PRISM_CRDS));
    // A CRD's CA goes into its conversion webhook: every CRD serving more than one version has
    // one, and each one that has one carries the annotation (the chart annotates exactly those).
    for crd in crds {
        let served = crd["spec"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["served"] == true)
            .count();
        let webhook = crd["spec"]["conversion"]["strategy"] == "Webhook";
        assert!(
            webhook || served == 1,
            "{} serves {served} versions without a conversion webhook",
            name(crd)
        );
        if webhook {
            assert_eq!(
                crd["metadata"]["annotations"][INJECT],
                inject.as_str(),
                "{}",
                name(crd)
            );
            let conversion = &crd["spec"]["conversion"]["webhook"]["clientConfig"]["service"];
            assert_eq!(conversion["name"], service["name"], "{}", name(crd));
            assert_eq!(conversion["namespace"], ns, "{}", name(crd));
        } else {
            assert!(
                crd["metadata"]["annotations"][INJECT].is_null(),
                "{}: nothing to inject into",
                name(crd)
            );
            println!("{} has no conversion webhook (one version)", name(crd));
        }
    }

    // cert-manager writes the Secret: the operator only reads Secrets (a PrismNamespace's key).
    assert_eq!(secret_verbs(docs), BTreeSet::from(["get".to_string()]));
    assert!(
        !docs.iter().any(|d| d["kind"] == "Secret"),
        "the chart renders no Secret"
    );

    // The Deployment mounts the Certificate's Secret where --webhook-cert-dir points.
    let deployments = of_kind(docs, "Deployment");
    assert_eq!(deployments.len(), 1);
    let pod = &deployments[0]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let cert_dir = args
        .iter()
        .find_map(|a| a.strip_prefix("--webhook-cert-dir="))
        .unwrap_or_else(|| panic!("no --webhook-cert-dir in {args:?}"));
    assert!(
        !args
            .iter()
            .any(|a| a.starts_with("--webhook-secret") || a.starts_with("--webhook-configuration")),
        "the operator keeps no certificate of its own: {args:?}"
    );
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["secret"]["secretName"] == tls_secret.as_str())
        .unwrap_or_else(|| panic!("no volume of Secret {tls_secret}: {pod:#}"));
    let keys: BTreeSet<&str> = volume["secret"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, BTreeSet::from(["tls.crt", "tls.key"]));
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .unwrap_or_else(|| panic!("volume {} is not mounted", volume["name"]));
    assert_eq!(mount["mountPath"], cert_dir);
    assert_eq!(mount["readOnly"], true);
    certificate
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_s_own_ca_passes_cert_manager_s_crds() {
    let (client, ns) = test_namespace("cert-manager-own-ca").await;
    install_cert_manager_crds(&client).await;
    let docs = render(&ns, &["webhook.certManager.enabled=true"]).await;

    // A self-signed Issuer, the CA Certificate it signs, a CA Issuer of that Secret, and the
    // serving Certificate that CA Issuer signs.
    let (issuers, certificates) = all_accepted(&client, &ns, &docs).await;
    assert_eq!((issuers, certificates), (2, 2));
    let issuer = |n: &str| {
        of_kind(&docs, "Issuer")
            .into_iter()
            .find(|i| name(i) == n)
            .unwrap_or_else(|| panic!("no Issuer {n}"))
    };
    let certificate = |n: &str| {
        of_kind(&docs, "Certificate")
            .into_iter()
            .find(|c| name(c) == n)
            .unwrap_or_else(|| panic!("no Certificate {n}"))
    };
    let selfsigned = issuer(&format!("{FULLNAME}-selfsigned"));
    assert_eq!(selfsigned["spec"], json!({"selfSigned": {}}));
    let ca = certificate(&format!("{FULLNAME}-webhook-ca"));
    assert_eq!(ca["spec"]["isCA"], true);
    assert_eq!(
        ca["spec"]["issuerRef"],
        json!({"kind": "Issuer", "name": name(selfsigned)})
    );
    let ca_issuer = issuer(&format!("{FULLNAME}-webhook-ca"));
    assert_eq!(
        ca_issuer["spec"]["ca"]["secretName"],
        ca["spec"]["secretName"]
    );
    let serving = check_wiring(&docs, &ns);
    assert_eq!(
        serving["spec"]["issuerRef"],
        json!({"kind": "Issuer", "name": name(ca_issuer)})
    );

    // The same dry run does refuse a broken Certificate, so the acceptances above mean something.
    let mut unknown = serving.clone();
    unknown["spec"]["secretNme"] = json!("typo");
    refused(
        &client,
        &ns,
        &unknown,
        ".spec.secretNme: field not declared in schema",
    )
    .await;
    let mut no_secret = serving.clone();
    no_secret["spec"]
        .as_object_mut()
        .unwrap()
        .remove("secretName");
    refused(&client, &ns, &no_secret, "spec.secretName: Required value").await;
    let mut bad_key = serving.clone();
    bad_key["spec"]["privateKey"]["algorithm"] = json!("DSA");
    refused(
        &client,
        &ns,
        &bad_key,
        "spec.privateKey.algorithm: Unsupported value",
    )
    .await;

    // Without cert-manager the operator keeps its own Secret: the check above would notice.
    let own = render(&ns, &[]).await;
    assert!(secret_verbs(&own).contains("create"), "{own:#?}");
    assert!(of_kind(&own, "Certificate").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_cluster_issuer_passes_cert_manager_s_crds() {
    let (client, ns) = test_namespace("cert-manager-issuer").await;
    install_cert_manager_crds(&client).await;
    let docs = render(
        &ns,
        &[
            "webhook.certManager.enabled=true",
            "webhook.certManager.issuerRef.kind=ClusterIssuer",
            "webhook.certManager.issuerRef.name=internal-ca",
        ],
    )
    .await;

    // Only the serving Certificate, signed by the given issuer: no CA of the chart's own.
    let (issuers, certificates) = all_accepted(&client, &ns, &docs).await;
    assert_eq!((issuers, certificates), (0, 1));
    let serving = check_wiring(&docs, &ns);
    assert_eq!(
        serving["spec"]["issuerRef"],
        json!({"kind": "ClusterIssuer", "name": "internal-ca"})
    );

    let mut unknown = serving.clone();
    unknown["spec"]["issuerRef"]["namespace"] = json!(ns);
    refused(
        &client,
        &ns,
        &unknown,
        ".spec.issuerRef.namespace: field not declared in schema",
    )
    .await;
}
