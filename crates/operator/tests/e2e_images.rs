//! The container images, built by `images/build.sh` and run with podman: the operator image
//! runs exactly as the chart's Deployment describes it against the test control plane; the
//! plugin image renders like the host binary; both are tagged as the chart and Argo CD files
//! refer to them, labelled, small and reproducible.

use prism_testing as support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::admin_server::AdminServer;
use support::cluster::{NamespaceOptions, cluster, test_namespace_with};
use support::helm::{documents, helm, service_account_token};
use support::operator::{
    FleetAdmins, WEBHOOKS_SERVING, apply_example_fleet, wait_example_fleet_logged,
    webhooks_to_loopback,
};
use support::podman::{Container, build_images, images, podman_ok};
use support::process::{free_port, http_get};
use support::{paths, wait_for};

/// The host's `prism-render`, built with the workspace.
fn render() -> std::path::PathBuf {
    support::process::cargo_binary("prism-render", "prism-render")
}

/// The one object of `kind` in `docs`.
fn only<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} rendered");
    found[0]
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// `podman run` options for a pod's single container, as a kubelet would run it on the host
/// network: user and group, read-only root filesystem, capabilities, no privilege escalation,
/// the container's env (fieldRefs resolved for `pod`/`namespace`), the in-cluster service
/// variables, the service-account mount, the image and its args.
fn run_options(
    pod_spec: &Value,
    pod: (&str, &str),
    api: (&str, u16),
    service_account_dir: &Path,
) -> Vec<String> {
    let containers = pod_spec["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "one container");
    let c = &containers[0];
    let (pod_sc, sc) = (&pod_spec["securityContext"], &c["securityContext"]);
    let pick = |key: &str| -> Value {
        if sc[key].is_null() {
            pod_sc[key].clone()
        } else {
            sc[key].clone()
        }
    };
    let user = pick("runAsUser").as_i64().expect("runAsUser set");
    let group = pick("runAsGroup").as_i64().expect("runAsGroup set");
    let mut args: Vec<String> = vec![
        "--network=host".into(),
        format!("--user={user}:{group}"),
        format!(
            "--stop-timeout={}",
            pod_spec["terminationGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(30)
        ),
    ];
    if sc["readOnlyRootFilesystem"] == true {
        // Like a kubelet: nothing writable, not even the tmpfs podman would add.
        args.extend(["--read-only".into(), "--read-only-tmpfs=false".into()]);
    }
    if sc["allowPrivilegeEscalation"] == false {
        args.push("--security-opt=no-new-privileges".into());
    }
    for cap in strings(&sc["capabilities"]["drop"]) {
        args.push(format!("--cap-drop={cap}"));
    }
    for e in c["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap();
        let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            Some("metadata.name") => pod.0.to_string(),
            Some("metadata.namespace") => pod.1.to_string(),
            Some(other) => panic!("env {name}: fieldRef {other} not modelled"),
            None => e["value"].as_str().expect("env value or fieldRef").into(),
        };
        args.push(format!("--env={name}={value}"));
    }
    assert_eq!(
        pod_spec["enableServiceLinks"], false,
        "only the kubernetes service variables are injected"
    );
    args.push(format!("--env=KUBERNETES_SERVICE_HOST={}", api.0));
    args.push(format!("--env=KUBERNETES_SERVICE_PORT={}", api.1));
    args.push(format!(
        "--volume={}:/var/run/secrets/kubernetes.io/serviceaccount:ro",
        service_account_dir.display()
    ));
    if let Some(command) = c["command"].as_array() {
        args.push(format!(
            "--entrypoint={}",
            serde_json::to_string(command).unwrap()
        ));
    }
    args.push(c["image"].as_str().unwrap().to_string());
    args.extend(strings(&c["args"]));
    args
}

/// The files a kubelet projects into `/var/run/secrets/kubernetes.io/serviceaccount`, readable
/// by the container's user.
fn service_account_files(dir: &Path, token: &str, ca: &Path, namespace: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(dir.join("token"), token).unwrap();
    std::fs::copy(ca, dir.join("ca.crt")).unwrap();
    std::fs::write(dir.join("namespace"), namespace).unwrap();
    for f in ["token", "ca.crt", "namespace"] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_image_runs_as_the_chart_deploys_it() {
    let images = images();
    let c = cluster().await;
    let kubeconfig = c.kubeconfig_path();
    let (admin, release_ns) =
        test_namespace_with("prism-system", &NamespaceOptions::restricted()).await;
    let prism_admin = AdminServer::start().await;
    let port = free_port().to_string();
    let webhook_port = free_port();
    let values = [
        format!("metrics.port={port}"),
        // The host network is the container's: listen on loopback only.
        "metrics.bindAddress=127.0.0.1".into(),
        format!("adminEndpoint={}", prism_admin.endpoint()),
        "adminTimeout=2s".into(),
        "resync=30s".into(),
        format!("webhook.port={webhook_port}"),
        "webhook.bindAddress=127.0.0.1".into(),
        "webhook.extraSANs={127.0.0.1}".into(),
    ];
    let mut args = vec![
        "prism-operator",
        "charts/prism-operator",
        "--namespace",
        &release_ns,
    ];
    for v in &values {
        args.extend(["--set", v]);
    }
    // The chart's RBAC and ServiceAccount in the cluster, and its Deployment as rendered.
    helm(&[&["install"], &args[..]].concat(), &kubeconfig);
    let docs = documents(&helm(&[&["template"], &args[..]].concat(), &kubeconfig));
    let deployment = only(&docs, "Deployment");
    let pod_spec = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod_spec["containers"][0]["image"], images.operator,
        "the chart deploys the image images/build.sh builds"
    );

    let sa_dir = tempfile::tempdir().unwrap();
    let sa = pod_spec["serviceAccountName"].as_str().unwrap();
    let token = service_account_token(&admin, &release_ns, sa).await;
    service_account_files(sa_dir.path(), &token, &c.ca_cert_path(), &release_ns);
    let api_port: u16 = c.server_url().rsplit_once(':').unwrap().1.parse().unwrap();
    let options = run_options(
        pod_spec,
        ("prism-operator-7d9f8-image", &release_ns),
        ("127.0.0.1", api_port),
        sa_dir.path(),
    );
    let container = Container::run(&format!("prism-e2e-operator-{port}"), &options);

    // Probes on the port the chart declares.
    let probe_port = pod_spec["containers"][0]["ports"][0]["containerPort"]
        .as_i64()
        .unwrap();
    assert_eq!(probe_port.to_string(), port);
    let base = format!("http://127.0.0.1:{port}");
    wait_for(
        "the container serving /healthz",
        Duration::from_secs(60),
        || {
            let url = format!("{base}/healthz");
            let state = container.inspect("{{.State.Status}}");
            let logs = container.logs();
            async move {
                http_get(&url)
                    .await
                    .map_err(|e| format!("{e}; container {state}; logs:\n{logs}"))
            }
        },
    )
    .await;

    // The image keeps its own webhook certificates (no HOME, no shell, no CA roots needed) and
    // serves the webhooks the chart registered, here reached on loopback.
    webhooks_to_loopback(&admin, "prism-operator", webhook_port).await;
    wait_for(
        "the container serving its webhooks",
        Duration::from_secs(60),
        || {
            let logs = container.logs();
            async move {
                match logs.contains(WEBHOOKS_SERVING) {
                    true => Ok(()),
                    false => Err(format!("logs:\n{logs}")),
                }
            }
        },
    )
    .await;
    let (_, fleet_ns) = test_namespace_with("fleet", &NamespaceOptions::restricted()).await;
    let fleet_admins = FleetAdmins::start().await;
    apply_example_fleet(&admin, &fleet_ns, &fleet_admins).await;
    wait_example_fleet_logged(&admin, &fleet_ns, || container.logs()).await;
    assert_eq!(
        fleet_admins.namespace_count(),
        12,
        "every namespace reached its shard\'s admin"
    );
    let resource = kube::core::ApiResource::erase::<prism_api::PrismShard>(&());
    let shards: kube::Api<kube::core::DynamicObject> =
        kube::Api::namespaced_with(admin.clone(), &fleet_ns, &resource);
    let bad: kube::core::DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": prism_api::API_VERSION, "kind": "PrismShard", "metadata": {"name": "bad"},
        "spec": {"product": "p", "storage": {"size": "10 gigabytes"}}
    }))
    .unwrap();
    let refused = shards
        .create(&Default::default(), &bad)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains(
            "admission webhook \"validate.prism.io\" denied the request: spec.storage.size"
        ),
        "{refused}"
    );
    http_get(&format!("{base}/readyz"))
        .await
        .expect("/readyz once leading and synced");
    let metrics = http_get(&format!("{base}/metrics")).await.unwrap();
    assert!(
        metrics.contains("prism_operator_reconcile_total{controller=\"prismshard\""),
        "{metrics}"
    );
    let logs = container.logs();
    assert!(!logs.contains("forbidden"), "{logs}");
    assert!(
        !logs.contains("postgres://"),
        "no connection string in logs"
    );

    // SIGTERM as PID 1: a clean exit well within the grace period.
    let grace = pod_spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    let started = Instant::now();
    podman_ok(&["stop", "--time", &grace.to_string(), &container.name]);
    let took = started.elapsed();
    assert_eq!(
        container.inspect("{{.State.ExitCode}}"),
        "0",
        "exit status after SIGTERM; logs:\n{}",
        container.logs()
    );
    assert!(
        took < Duration::from_secs(grace),
        "stopping took {took:?} of a {grace} s grace period"
    );
}

/// `prism-render render` arguments the plugin and the host run alike.
const RENDER_ARGS: [&str; 5] = [
    "render",
    "-n",
    "prism",
    "--proxy-image",
    "proxy.example/p:1",
];

#[test]
fn the_plugin_image_renders_like_the_host_binary() {
    let images = images();
    let examples = paths::root().join("examples/fleet");
    let host = std::process::Command::new(render())
        .args(RENDER_ARGS)
        .arg(".")
        .current_dir(&examples)
        .output()
        .unwrap();
    assert!(host.status.success());

    // As the sidecar runs: its own user, nothing writable but /tmp, the app read-only.
    let out = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(out.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let name = format!("prism-e2e-render-{}", std::process::id());
    let mut run = vec![
        "--network=none".to_string(),
        "--read-only".into(),
        "--read-only-tmpfs=false".into(),
        "--tmpfs=/tmp:rw,size=64m".into(),
        "--cap-drop=ALL".into(),
        "--security-opt=no-new-privileges".into(),
        format!("--volume={}:/app:ro", examples.display()),
        format!("--volume={}:/out", out.path().display()),
        "--workdir=/app".into(),
        images.render.clone(),
    ];
    run.extend(RENDER_ARGS.iter().map(|s| s.to_string()));
    run.extend([".".into(), "--out-dir".into(), "/out/manifests".into()]);
    let container = Container::run(&name, &run);
    let code = podman_ok(&["wait", &container.name]);
    assert_eq!(code.trim(), "0", "{}", container.logs());

    // Written as 999, byte-identical to what the host printed.
    let dir = out.path().join("manifests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&dir).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (999, 999), "written by user 999");
    }
    let host_dir = tempfile::tempdir().unwrap();
    let host_out = std::process::Command::new(render())
        .args(RENDER_ARGS)
        .arg(".")
        .args(["--out-dir", host_dir.path().join("m").to_str().unwrap()])
        .current_dir(&examples)
        .output()
        .unwrap();
    assert!(host_out.status.success());
    for f in &files {
        let theirs = std::fs::read(host_dir.path().join("m").join(f.file_name().unwrap()))
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(
            std::fs::read(f).unwrap() == theirs,
            "{} differs",
            f.display()
        );
    }
    assert_eq!(
        files.len(),
        std::fs::read_dir(host_dir.path().join("m"))
            .unwrap()
            .count()
    );

    // And to stdout, as `cmp generate` answers the plugin server.
    let mut run = vec![
        "--network=none".to_string(),
        "--read-only".into(),
        "--read-only-tmpfs=false".into(),
        format!("--volume={}:/app:ro", examples.display()),
        "--workdir=/app".into(),
        images.render.clone(),
    ];
    run.extend(RENDER_ARGS.iter().map(|s| s.to_string()));
    run.push(".".into());
    let run: Vec<&str> = run.iter().map(String::as_str).collect();
    let stdout = podman_ok(&[&["run", "--rm"], &run[..]].concat());
    assert!(
        stdout.as_bytes() == host.stdout,
        "the image printed other bytes than the host binary"
    );
}

fn labels(image: &str) -> BTreeMap<String, String> {
    serde_json::from_str(&podman_ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .Labels}}",
        image,
    ]))
    .unwrap()
}

fn image_field(image: &str, format: &str) -> String {
    podman_ok(&["image", "inspect", "--format", format, image])
        .trim()
        .to_string()
}

#[test]
fn the_images_are_tagged_labelled_small_and_reproducible() {
    let images = images();
    let version = env!("CARGO_PKG_VERSION");
    // Tagged as the chart and the Argo CD sidecar patch refer to them.
    let chart: Value = serde_yaml::from_str(
        &std::fs::read_to_string(paths::root().join("charts/prism-operator/values.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        images.operator,
        format!(
            "{}:{version}",
            chart["image"]["repository"].as_str().unwrap()
        )
    );
    let sidecar =
        std::fs::read_to_string(paths::root().join("argocd/repo-server-sidecar.yaml")).unwrap();
    assert!(
        sidecar.contains(&format!("image: {}\n", images.render)),
        "argocd/repo-server-sidecar.yaml names {}",
        images.render
    );

    let printed = podman_ok(&[
        "run",
        "--rm",
        "--network=none",
        &images.operator,
        "--version",
    ]);
    assert_eq!(printed.trim(), format!("prism-operator {version}"));
    let printed = podman_ok(&["run", "--rm", "--network=none", &images.render, "--version"]);
    assert_eq!(printed.trim(), format!("prism-render {version}"));

    let revision = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(paths::root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_string());
    for (image, user) in [
        (&images.operator, "65532:65532"),
        (&images.render, "999:999"),
    ] {
        assert_eq!(image_field(image, "{{.User}}"), user, "{image}");
        let l = labels(image);
        assert_eq!(
            l["org.opencontainers.image.source"],
            "https://github.com/prism/prism-operator"
        );
        assert_eq!(l["org.opencontainers.image.version"], version);
        if let Some(rev) = &revision {
            assert!(
                l["org.opencontainers.image.revision"].starts_with(rev.as_str()),
                "{l:?}"
            );
        }
        // One static binary and nothing else.
        let size: u64 = image_field(image, "{{.Size}}").parse().unwrap();
        assert!(size < 48 << 20, "{image} is {size} bytes");
    }

    // Built again without any cache: the same image IDs.
    let ids =
        |refs: &[&str]| -> Vec<String> { refs.iter().map(|r| image_field(r, "{{.Id}}")).collect() };
    let before = ids(&[&images.operator, &images.render]);
    let again = build_images(&["--no-cache"]);
    assert_eq!(
        again.lines().collect::<Vec<_>>(),
        [images.operator.as_str(), images.render.as_str()]
    );
    assert_eq!(ids(&[&images.operator, &images.render]), before);
}
