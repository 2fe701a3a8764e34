//! `prism-render` as a user runs it: golden output of the examples, determinism, CRD freshness,
//! and one test per class of bad input (message, exit code, nothing on stdout).

use prism_testing::paths::root;
use prism_testing::process::{stderr, stdout};

use std::path::Path;
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_prism-render"))
}

fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .current_dir(root())
        .output()
        .expect("prism-render runs")
}

/// Compares with a golden file; `UPDATE_GOLDEN=1` rewrites it instead.
fn golden(name: &str, actual: &str) {
    let path = root().join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "{name} differs from the golden file at line {}:\n  golden: {:?}\n  actual: {:?}\n(run with UPDATE_GOLDEN=1 after reviewing the change)",
            line + 1,
            expected.lines().nth(line),
            actual.lines().nth(line)
        );
    }
}

#[test]
fn example_fleet_matches_golden_output() {
    let out = run(&["render", "examples/fleet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).is_empty());
    golden("fleet.yaml", &stdout(&out));
}

#[test]
fn upstream_plugin_example_matches_golden_output() {
    let out = run(&["render", "examples/upstream-plugin"]);
    assert!(out.status.success(), "{}", stderr(&out));
    golden("upstream-plugin.yaml", &stdout(&out));
}

#[test]
fn network_example_matches_golden_output() {
    let out = run(&["render", "examples/network"]);
    assert!(out.status.success(), "{}", stderr(&out));
    golden("network.yaml", &stdout(&out));
}

/// What `kubectl api-versions` lists on a cluster with prometheus-operator but without the
/// Gateway API, kinds included.
const WITHOUT_GATEWAY_API: &str = "v1,v1/ConfigMap,v1/Service,apps/v1,apps/v1/Deployment,apps/v1/StatefulSet,policy/v1,policy/v1/PodDisruptionBudget,autoscaling/v2,autoscaling/v2/HorizontalPodAutoscaler,networking.k8s.io/v1,networking.k8s.io/v1/Ingress,networking.k8s.io/v1/NetworkPolicy,monitoring.coreos.com/v1,monitoring.coreos.com/v1/PodMonitor";

#[test]
fn a_cluster_without_the_gateway_api_is_named_with_the_crd_to_install() {
    for command in ["render", "validate"] {
        let out = run(&[
            command,
            "examples/network",
            "--kube-api-versions",
            WITHOUT_GATEWAY_API,
        ]);
        assert_eq!(out.status.code(), Some(1), "{command}");
        assert!(stdout(&out).is_empty(), "nothing on stdout on error");
        assert_eq!(
            stderr(&out),
            "error: --kube-api-versions: GRPCRoute edge/prism-checkout (of PrismShard edge/checkout) \
             needs the CustomResourceDefinition grpcroutes.gateway.networking.k8s.io (Gateway API, \
             standard channel), which the cluster does not serve; install it, or remove \
             spec.expose.grpcRoute\n"
        );
    }
    // With the Gateway API (as a group version or as the kind) it renders, byte for byte as
    // without the check; a fleet without routes needs none.
    let plain = run(&["render", "examples/network"]);
    for served in [
        format!("{WITHOUT_GATEWAY_API},gateway.networking.k8s.io/v1"),
        format!("{WITHOUT_GATEWAY_API},gateway.networking.k8s.io/v1/GRPCRoute"),
    ] {
        let out = run(&["render", "examples/network", "--kube-api-versions", &served]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), stdout(&plain));
    }
    let fleet = run(&[
        "render",
        "examples/fleet",
        "--kube-api-versions",
        WITHOUT_GATEWAY_API,
    ]);
    assert!(fleet.status.success(), "{}", stderr(&fleet));
    // Argo CD's variable is read the same way.
    let out = bin()
        .args(["render", "examples/network"])
        .current_dir(root())
        .env("KUBE_API_VERSIONS", WITHOUT_GATEWAY_API)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("grpcroutes.gateway.networking.k8s.io"));
}

/// A shard scaled by KEDA on its request rate, on stdin.
const KEDA_SHARD: &str = "apiVersion: prism.io/v1alpha1
kind: PrismShard
metadata: {name: shop, namespace: prod}
spec:
  product: shop
  autoscaling: {enabled: true, provider: keda, minReplicas: 1, maxReplicas: 4, targetRPS: 800}
";

fn render_stdin(args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = bin()
        .args(args)
        .current_dir(root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn keda_replaces_the_hpa_and_needs_a_prometheus() {
    let out = render_stdin(&["render", "-"], KEDA_SHARD);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("provider keda with targetRPS needs the Prometheus KEDA reads the request rate from: set --prometheus-url"),
        "{}",
        stderr(&out)
    );
    let out = render_stdin(
        &[
            "render",
            "-",
            "--prometheus-url",
            "http://prometheus.monitoring.svc:9090",
        ],
        KEDA_SHARD,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("kind: ScaledObject\n"), "{text}");
    assert!(!text.contains("kind: HorizontalPodAutoscaler"), "{text}");
    for line in [
        "      query: sum(rate(prism_requests_total{namespace=\"prod\",pod=~\"prism-shop-[0-9]+\"}[2m]))",
        "      serverAddress: http://prometheus.monitoring.svc:9090",
        "      threshold: '800'",
        "  maxReplicaCount: 4",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    let sts = text
        .split("---\n")
        .find(|d| d.contains("kind: StatefulSet"))
        .unwrap();
    assert!(
        !sts.contains("\n  replicas:"),
        "KEDA owns the count:\n{sts}"
    );
    // Without the KEDA CRD in the cluster, named like the Gateway API's.
    let out = render_stdin(
        &[
            "render",
            "-",
            "--prometheus-url",
            "http://p:9090",
            "--kube-api-versions",
            WITHOUT_GATEWAY_API,
        ],
        KEDA_SHARD,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("needs the CustomResourceDefinition scaledobjects.keda.sh (KEDA), which the cluster does not serve; install it, or set spec.autoscaling.provider to hpa"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn network_policies_follow_the_shard_then_the_default() {
    let kinds = |args: &[&str]| -> Vec<String> {
        let out = run(args);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
            .split("---\n")
            .filter(|d| d.contains("kind: NetworkPolicy\n"))
            .filter_map(|d| {
                d.lines()
                    .find(|l| l.starts_with("  name: "))
                    .map(|l| l["  name: ".len()..].to_string())
            })
            .collect()
    };
    // Off by default; on for every shard (and the remote plugin they use) with the default.
    assert!(kinds(&["render", "examples/fleet"]).is_empty());
    assert_eq!(
        kinds(&["render", "examples/fleet", "--network-policies"]),
        [
            "prism-analytics-batch",
            "prism-notifications",
            "prism-playback-live",
            "prism-playback-vod",
            "prism-plugin-kafka",
        ]
    );
    // The network example enables them per shard: the default changes nothing there.
    assert_eq!(
        kinds(&["render", "examples/network"]),
        kinds(&["render", "examples/network", "--network-policies"])
    );
}

#[test]
fn adr_samples_match_golden_output() {
    let out = run(&["render", "examples/adr-037"]);
    assert!(out.status.success(), "{}", stderr(&out));
    golden("adr-037.yaml", &stdout(&out));
}

#[test]
fn json_output_is_a_list_of_the_same_objects() {
    let yaml = run(&["render", "examples/fleet"]);
    let json = run(&["render", "-o", "json", "examples/fleet"]);
    assert!(json.status.success());
    let list: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    let from_yaml: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&stdout(&yaml))
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(list["items"].as_array().unwrap(), &from_yaml);
}

/// Splits every example document into its own file and writes them in a scrambled order.
fn scrambled_copy(dir: &Path, seed: usize) {
    let mut docs = Vec::new();
    for f in ["namespaces.yaml", "plugins.yaml", "shards.yaml"] {
        let text = std::fs::read_to_string(root().join("examples/fleet").join(f)).unwrap();
        docs.extend(text.split("\n---\n").map(str::to_string));
    }
    // Fisher-Yates with a tiny LCG: a reproducible permutation per seed.
    let mut state = seed as u64;
    for i in (1..docs.len()).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        docs.swap(i, (state >> 33) as usize % (i + 1));
    }
    for (i, doc) in docs.iter().enumerate() {
        std::fs::write(dir.join(format!("{i:03}.yaml")), doc).unwrap();
    }
}

#[test]
fn output_does_not_depend_on_input_order_or_run() {
    let reference = stdout(&run(&["render", "examples/fleet"]));
    for seed in 1..4 {
        let dir = tempfile::tempdir().unwrap();
        scrambled_copy(dir.path(), seed);
        let out = run(&["render", dir.path().to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), reference, "seed {seed}");
    }
    assert_eq!(stdout(&run(&["render", "examples/fleet"])), reference);
}

#[test]
fn stdin_input_renders_like_files() {
    let text = std::fs::read_to_string(root().join("examples/adr-037/shard.yaml")).unwrap()
        + "---\n"
        + &std::fs::read_to_string(root().join("examples/adr-037/plugins-for-shard.yaml")).unwrap();
    let mut child = bin()
        .args(["render", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(stdout(&out).contains("name: prism-playback-live"));
}

#[test]
fn out_dir_gets_one_file_per_object_and_refuses_non_empty_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("rendered");
    let out = run(&[
        "render",
        "examples/fleet",
        "--out-dir",
        target.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    let mut names: Vec<String> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let stream = stdout(&run(&["render", "examples/fleet"]));
    assert_eq!(names.len(), stream.matches("---\n").count());
    assert!(
        names[0].starts_with("000-poddisruptionbudget-prism-"),
        "{}",
        names[0]
    );
    let again = run(&[
        "render",
        "examples/fleet",
        "--out-dir",
        target.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("directory is not empty"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn checked_in_crds_match_the_code() {
    let out = run(&["crds"]);
    assert!(out.status.success());
    for (name, text) in prism_api::crd_files() {
        let chart_copy = root().join("charts/prism-operator/files/crds").join(&name);
        let in_chart = std::fs::read_to_string(&chart_copy).unwrap_or_default();
        assert!(
            in_chart == text,
            "{} is stale; copy crds/{name} into charts/prism-operator/files/crds",
            chart_copy.display()
        );
        let path = root().join("crds").join(&name);
        let on_disk = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `prism-render crds --out-dir crds`",
                path.display()
            )
        });
        assert_eq!(
            on_disk, text,
            "{name} is stale; run `cargo run --bin prism-render -- crds --out-dir crds`"
        );
    }
    assert_eq!(std::fs::read_dir(root().join("crds")).unwrap().count(), 3);
}

#[test]
fn validate_summarises_a_good_fleet() {
    let out = run(&["validate", "examples/fleet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "valid: 4 shards, 4 plugins, 12 namespaces -> 44 objects\n"
    );
}

#[test]
fn explain_names_the_chosen_shard_and_the_rest() {
    let out = run(&["explain", "prism/playback-cache", "examples/fleet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("wants: product=playback, backend=redis"),
        "{text}"
    );
    assert!(
        text.contains("candidates (rendezvous score, highest wins):"),
        "{text}"
    );
    assert!(
        text.contains("analytics-batch") && text.contains("product is analytics, not playback"),
        "{text}"
    );
    let chosen = text.lines().last().unwrap();
    assert!(chosen.starts_with("  placed on: playback-"), "{chosen}");
    // The rendered namespace carries the same shard.
    let shard = chosen
        .trim_start_matches("  placed on: ")
        .split(':')
        .next()
        .unwrap();
    let rendered = stdout(&run(&["render", "examples/fleet"]));
    let doc = rendered
        .split("---\n")
        .find(|d| d.contains("name: playback-cache\n"))
        .unwrap();
    assert!(doc.contains(&format!("prism.io/shard: {shard}")), "{doc}");
}

#[test]
fn completions_are_generated() {
    let out = run(&["completions", "bash"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("prism-render"));
}

// ---- bad input: one test per class -------------------------------------------------------

const PLUGIN: &str = "apiVersion: prism.io/v1alpha1
kind: PrismPlugin
metadata:
  name: pg
spec:
  version: 1.2.0
  source: {registry: ghcr.io/prism/plugins, image: pg:1.2.0}
  deployment: {type: sidecar}
";

const SHARD: &str = "apiVersion: prism.io/v1alpha1
kind: PrismShard
metadata:
  name: s1
spec:
  product: p
  replicas: 2
  plugins:
  - name: pg
    version: \"1.2\"
";

/// Renders `files` (name, content) and returns (exit code, stdout, stderr).
fn render_files(files: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let out = bin()
        .args(["render", "."])
        .current_dir(dir.path())
        .output()
        .unwrap();
    (out.status.code(), stdout(&out), stderr(&out))
}

/// Asserts a failed render whose stderr has exactly one error line equal to `expected`.
fn assert_rejected(files: &[(&str, &str)], expected: &str) {
    let (code, out, err) = render_files(files);
    assert_eq!(code, Some(1), "stderr: {err}");
    assert!(out.is_empty(), "nothing may reach stdout, got {out:?}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        vec![format!("error: {expected}")],
        "full stderr: {err}"
    );
}

#[test]
fn malformed_yaml_names_file_and_line() {
    let text = "apiVersion: prism.io/v1alpha1\nkind: PrismShard\nmetadata:\n  name: s1\n spec: {\n";
    let (code, out, err) = render_files(&[("bad.yaml", text)]);
    assert_eq!(code, Some(1));
    assert!(out.is_empty());
    assert!(
        err.starts_with("error: ./bad.yaml:5: invalid YAML:"),
        "{err}"
    );
}

#[test]
fn unknown_field_suggests_the_right_one() {
    let shard = SHARD.replace("replicas: 2", "replicaz: 2");
    assert_rejected(
        &[("p.yaml", PLUGIN), ("s.yaml", &shard)],
        "./s.yaml:7: spec.replicaz: unknown field \"replicaz\"; did you mean \"replicas\"?",
    );
}

#[test]
fn wrong_type_names_the_field() {
    let shard = SHARD.replace("replicas: 2", "replicas: two");
    assert_rejected(
        &[("p.yaml", PLUGIN), ("s.yaml", &shard)],
        "./s.yaml:7: spec.replicas: must be an integer, got a string",
    );
}

#[test]
fn unknown_kind_is_rejected() {
    let doc = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n";
    assert_rejected(
        &[("c.yaml", doc)],
        "./c.yaml:2: kind: unknown kind \"ConfigMap\": expected PrismNamespace, PrismPlugin or PrismShard (other Kubernetes objects pass through unchanged with --pass-through, or the plugin parameter pass-through)",
    );
    // Meant to be Prism's: no hint.
    let doc = "apiVersion: prism.io/v1beta1\nkind: PrismShrad\nmetadata: {name: x}\n";
    assert_rejected(
        &[("c.yaml", doc)],
        "./c.yaml:2: kind: unknown kind \"PrismShrad\": expected PrismNamespace, PrismPlugin or PrismShard",
    );
}

/// The documents of a YAML stream.
fn documents(stream: &str) -> Vec<serde_json::Value> {
    serde_yaml::Deserializer::from_str(stream)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

/// Renders `files` in a fresh directory with `args` after `render .`.
fn render_with(files: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let out = bin()
        .args(["render", "."])
        .args(args)
        .current_dir(dir.path())
        .output()
        .unwrap();
    (out.status.code(), stdout(&out), stderr(&out))
}

const CONFIG_MAP: &str = "# Settings the team's apps read.
apiVersion: v1
kind: ConfigMap
metadata:
  name: team-settings
data:
  tier: gold
";

#[test]
fn other_objects_pass_through_unchanged_with_the_option() {
    let files = [
        ("p.yaml", PLUGIN),
        ("s.yaml", SHARD),
        ("team.yaml", CONFIG_MAP),
    ];
    let (code, _, err) = render_with(&files, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("./team.yaml:3: kind: unknown kind \"ConfigMap\""),
        "{err}"
    );

    let (code, out, err) = render_with(&files, &["--pass-through"]);
    assert_eq!(code, Some(0), "{err}");
    let docs = documents(&out);
    let passed: Vec<&serde_json::Value> = docs
        .iter()
        .filter(|d| d["metadata"]["name"] == "team-settings")
        .collect();
    assert_eq!(
        passed,
        [&serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "team-settings"}, "data": {"tier": "gold"}})],
        "passed through unchanged: no namespace added"
    );
    // In install order with the rendered objects: ConfigMaps before the StatefulSet.
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    let config = kinds.iter().position(|k| *k == "ConfigMap").unwrap();
    let sts = kinds.iter().position(|k| *k == "StatefulSet").unwrap();
    assert!(config < sts, "{kinds:?}");
    // Byte for byte the same output twice.
    assert_eq!(render_with(&files, &["--pass-through"]).1, out);
}

#[test]
fn an_object_passed_through_is_checked() {
    let base = [("p.yaml", PLUGIN), ("s.yaml", SHARD)];
    let with = |name: &str, text: &str, args: &[&str]| {
        let mut files = base.to_vec();
        files.push((name, text));
        let mut all = vec!["--pass-through"];
        all.extend_from_slice(args);
        render_with(&files, &all)
    };
    // Collides with the shard's rendered ConfigMap (the default namespace: it names none).
    let clash = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: prism-s1}\n";
    let (code, out, err) = with("clash.yaml", clash, &[]);
    assert_eq!((code, out.as_str()), (Some(1), ""), "{err}");
    assert!(
        err.contains("ConfigMap default/prism-s1, which the") && err.contains("rename one of them"),
        "{err}"
    );
    // A kind the cluster does not serve.
    let monitor =
        "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: m}\n";
    let apis = "v1,apps/v1,policy/v1,prism.io/v1beta1";
    let (code, _, err) = with("m.yaml", monitor, &["--kube-api-versions", apis]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("monitoring.coreos.com/v1 ServiceMonitor"),
        "{err}"
    );
    // No name.
    let nameless = "apiVersion: v1\nkind: Secret\nmetadata: {labels: {a: b}}\n";
    let (code, _, err) = with("x.yaml", nameless, &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with("error: ./x.yaml:3: metadata.name: required field is missing"),
        "{err}"
    );
}

#[test]
fn files_of_no_kubernetes_objects_are_left_out_with_a_note() {
    let values = "# Helm values\nreplicaCount: 2\nrules:\n  kind: x\n";
    let files = [
        ("p.yaml", PLUGIN),
        ("s.yaml", SHARD),
        ("values.yaml", values),
    ];
    let (code, out, err) = render_with(&files, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        err,
        "note: left out 1 file(s), they hold no Kubernetes objects: ./values.yaml\n"
    );
    assert_eq!(out, render_files(&files[..2]).1, "nothing of it rendered");
    // Nothing but such files is an error, not an empty render.
    let (code, out, err) = render_with(&[("values.yaml", values)], &[]);
    assert_eq!((code, out.as_str()), (Some(1), ""));
    assert_eq!(
        err,
        "error: ./values.yaml:1: holds no Kubernetes objects (no document has an apiVersion or a kind): no Prism resources to render\n"
    );
}

#[test]
fn unknown_api_version_is_rejected() {
    let plugin = PLUGIN.replace("prism.io/v1alpha1", "prism.io/v1");
    assert_rejected(
        &[("p.yaml", &plugin)],
        "./p.yaml:1: apiVersion: unsupported apiVersion \"prism.io/v1\" for PrismPlugin: expected prism.io/v1beta1 or prism.io/v1alpha1",
    );
    // Another group at a version Prism has: that version of prism.io.
    let plugin = PLUGIN.replace("prism.io/v1alpha1", "prism.example.com/v1beta1");
    assert_rejected(
        &[("p.yaml", &plugin)],
        "./p.yaml:1: apiVersion: unsupported apiVersion \"prism.example.com/v1beta1\" for PrismPlugin: expected prism.io/v1beta1",
    );
}

#[test]
fn dangling_plugin_reference_lists_what_exists() {
    let shard = SHARD.replace("- name: pg", "- name: mongo");
    assert_rejected(
        &[("p.yaml", PLUGIN), ("s.yaml", &shard)],
        "./s.yaml:9: spec.plugins[0].name: PrismPlugin default/mongo not found (PrismPlugins in default: pg)",
    );
}

#[test]
fn version_mismatch_names_both_files() {
    let shard = SHARD.replace("version: \"1.2\"", "version: \"2.0\"");
    assert_rejected(
        &[("p.yaml", PLUGIN), ("s.yaml", &shard)],
        "./s.yaml:10: spec.plugins[0].version: requires pg ^2.0, but PrismPlugin default/pg (./p.yaml:1) has version 1.2.0",
    );
}

#[test]
fn duplicate_names_point_at_the_first_definition() {
    let two = format!("{SHARD}---\n{SHARD}");
    assert_rejected(
        &[("p.yaml", PLUGIN), ("s.yaml", &two)],
        "./s.yaml:15: metadata.name: duplicate PrismShard default/s1 (first defined at ./s.yaml:1)",
    );
}

#[test]
fn cel_rule_violation_is_caught_offline() {
    let shard = format!(
        "{SHARD}  autoscaling: {{enabled: true, minReplicas: 5, maxReplicas: 3, targetRPS: 100}}\n"
    );
    let (code, out, err) = render_files(&[("p.yaml", PLUGIN), ("s.yaml", &shard)]);
    assert_eq!(code, Some(1));
    assert!(out.is_empty());
    assert!(
        err.contains("./s.yaml:11: spec.autoscaling: minReplicas must not exceed maxReplicas"),
        "{err}"
    );
}

/// An autoscaled shard without `replicas` renders in both versions; with `replicas`, v1alpha1
/// checks it against the bounds and v1beta1 refuses it.
#[test]
fn replicas_under_autoscaling_by_version() {
    let scaling = "  autoscaling: {enabled: true, minReplicas: 2, maxReplicas: 10, targetCPUUtilization: 70}\n";
    let unset = format!("{}{scaling}", SHARD.replace("  replicas: 2\n", ""));
    for version in ["v1alpha1", "v1beta1"] {
        let shard = unset.replace("v1alpha1", version);
        let (code, out, err) = render_files(&[("p.yaml", PLUGIN), ("s.yaml", &shard)]);
        assert_eq!(code, Some(0), "{version}: {err}");
        assert!(out.contains("kind: HorizontalPodAutoscaler"), "{version}");
    }
    let set = format!("{SHARD}{scaling}");
    let (code, _, err) = render_files(&[("p.yaml", PLUGIN), ("s.yaml", &set)]);
    assert_eq!(
        code,
        Some(0),
        "v1alpha1 accepts replicas within the bounds: {err}"
    );
    assert_rejected(
        &[
            ("p.yaml", PLUGIN),
            ("s.yaml", &set.replace("v1alpha1", "v1beta1")),
        ],
        "./s.yaml:7: spec.replicas: replicas must be unset when autoscaling is enabled: the shard starts at autoscaling.minReplicas and the autoscaler owns the count",
    );
}

#[test]
fn enum_violation_lists_allowed_values() {
    let ns = "apiVersion: prism.io/v1alpha1\nkind: PrismNamespace\nmetadata: {name: n}\nspec:\n  backend: postgres\n  pattern: graph\n";
    let (code, out, err) = render_files(&[("n.yaml", ns)]);
    assert_eq!(code, Some(1));
    assert!(out.is_empty());
    assert!(err.starts_with("error: ./n.yaml:6: spec.pattern: unsupported value \"graph\": must be one of \"keyvalue\""), "{err}");
}

#[test]
fn missing_required_field_is_named() {
    let shard = SHARD.replace("  product: p\n", "");
    assert_rejected(
        &[("p.yaml", PLUGIN), ("s.yaml", &shard)],
        "./s.yaml:5: spec.product: required field is missing",
    );
}

#[test]
fn unplaceable_namespace_says_why() {
    let ns = "apiVersion: prism.io/v1alpha1\nkind: PrismNamespace\nmetadata: {name: n}\nspec:\n  backend: postgres\n  pattern: keyvalue\n  shard: {product: billing}\n";
    assert_rejected(
        &[("p.yaml", PLUGIN), ("s.yaml", SHARD), ("n.yaml", ns)],
        "./n.yaml:7: spec.shard: cannot be placed: no shard matches product=billing, backend=postgres (s1: product is p, not billing)",
    );
}

#[test]
fn invalid_name_is_rejected() {
    let plugin = PLUGIN.replace("name: pg", "name: Pg_1");
    let (code, out, err) = render_files(&[("p.yaml", &plugin)]);
    assert_eq!(code, Some(1));
    assert!(out.is_empty());
    assert!(
        err.contains("./p.yaml:4: metadata.name: \"Pg_1\" is not a DNS-1123 label"),
        "{err}"
    );
}

#[test]
fn metacharacters_cannot_break_out_of_their_field() {
    // A hostile annotation value full of YAML and template syntax lands verbatim in one field.
    let nasty = "x\\n---\\nkind: Secret {{ 7*7 }} {% raw %} : - [ ] & * ! | > ' \\\" % @ `";
    let shard = SHARD.replace(
        "  replicas: 2\n",
        &format!("  replicas: 2\n  service:\n    annotations:\n      note: \"{nasty}\"\n"),
    );
    let (code, out, err) = render_files(&[("p.yaml", PLUGIN), ("s.yaml", &shard)]);
    assert_eq!(code, Some(0), "{err}");
    let docs: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&out)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let expected = "x\n---\nkind: Secret {{ 7*7 }} {% raw %} : - [ ] & * ! | > ' \" % @ `";
    let svc = docs
        .iter()
        .find(|d| d["kind"] == "Service" && d["metadata"]["name"] == "prism-s1")
        .unwrap();
    assert_eq!(svc["metadata"]["annotations"]["note"], expected);
    assert!(docs.iter().all(|d| d["kind"] != "Secret"));
}

#[test]
fn a_broken_template_override_fails_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("shard-pdb.yaml"),
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: {{ fullname | tojson }}}\nspec:\n  maxUnavailabel: 1\n",
    )
    .unwrap();
    let out = run(&[
        "render",
        "--templates",
        dir.path().to_str().unwrap(),
        "examples/adr-037",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains(
            "template shard-pdb.yaml: PodDisruptionBudget has unknown field spec.maxUnavailabel"
        ),
        "{}",
        stderr(&out)
    );
}
