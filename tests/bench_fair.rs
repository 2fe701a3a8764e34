//! The render comparison (benches/compare.sh) is fair only if Helm and Kustomize produce the same
//! objects as prism-render. This test renders generated fleets three ways and compares the
//! results as multisets of JSON values.
//!
//! Ignored, because they carry no object content: YAML comments (Helm's `# Source:` lines),
//! document order, key order and YAML layout (quoting, flow or block style). Nothing else: the
//! custom resources, labels, config hashes and plugin fingerprints must all match.
//!
//! helm and kustomize are built from their Go modules by `benches/tools/build.sh` on first use
//! (cached outside the repository; see BENCHMARKS.md).

use prism_testing::{fleet, paths};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use fleet::{Fleet, FleetParams};
use serde::Deserialize;
use serde_json::Value;

/// The bin dir with helm and kustomize, built once per test process.
fn tools() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Command::new("bash")
            .arg(paths::root().join("benches/tools/build.sh"))
            .output()
            .expect("run benches/tools/build.sh");
        assert!(
            out.status.success(),
            "benches/tools/build.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).expect("UTF-8");
        PathBuf::from(stdout.lines().last().expect("bin dir line").trim())
    })
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn write_all(root: &Path, files: &[(String, String)]) {
    for (name, text) in files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// Every document of a YAML stream as JSON; empty documents are skipped.
fn documents(stream: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(stream)
        .map(|d| Value::deserialize(d).expect("valid YAML document"))
        .filter(|v| !v.is_null())
        .collect()
}

fn id(v: &Value) -> String {
    format!(
        "{} {}/{}",
        v["kind"].as_str().unwrap_or("?"),
        v["metadata"]["namespace"].as_str().unwrap_or(""),
        v["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// First path at which two values differ, with both sides.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                let p = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(l), Some(r)) => first_difference(l, r, &p),
                    (l, r) => Some(format!("{p}: {l:?} vs {r:?}")),
                }
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (l, r))| first_difference(l, r, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{path}: {a} vs {b}")),
    }
}

/// Removes the sync-wave annotation (and annotations it leaves empty) from every document;
/// returns how many had one.
fn without_sync_waves(docs: &mut [Value]) -> usize {
    let mut waved = 0;
    for d in docs {
        let Some(meta) = d["metadata"].as_object_mut() else {
            continue;
        };
        let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) else {
            continue;
        };
        if annotations.remove("argocd.argoproj.io/sync-wave").is_some() {
            waved += 1;
        }
        if annotations.is_empty() {
            meta.remove("annotations");
        }
    }
    waved
}

/// Panics with a readable report unless `got` holds the same objects as `want`.
fn assert_same_objects(tool: &str, want: &[Value], got: &[Value]) {
    let index = |docs: &[Value]| -> BTreeMap<String, Vec<Value>> {
        let mut m: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for d in docs {
            m.entry(id(d)).or_default().push(d.clone());
        }
        m
    };
    let (w, g) = (index(want), index(got));
    let mut problems = Vec::new();
    for (k, wv) in &w {
        match g.get(k) {
            None => problems.push(format!("missing from {tool}: {k}")),
            Some(gv) if gv.len() != wv.len() => problems.push(format!(
                "{k}: {} from prism-render, {} from {tool}",
                wv.len(),
                gv.len()
            )),
            Some(gv) => {
                for (a, b) in wv.iter().zip(gv) {
                    if let Some(d) = first_difference(a, b, "") {
                        problems.push(format!("{k} differs (prism-render vs {tool}) at {d}"));
                    }
                }
            }
        }
    }
    for k in g.keys().filter(|k| !w.contains_key(*k)) {
        problems.push(format!("only from {tool}: {k}"));
    }
    assert!(
        problems.is_empty(),
        "{tool} does not produce prism-render's objects ({} problems):\n{}",
        problems.len(),
        problems
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Renders `params` with prism-render, Helm and Kustomize and compares the objects.
fn check(params: FleetParams) {
    let bin = tools();
    let fleet = Fleet::new(&params);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let prefixed = |prefix: &str, files: Vec<(String, String)>| -> Vec<(String, String)> {
        files
            .into_iter()
            .map(|(n, t)| (format!("{prefix}/{n}"), t))
            .collect()
    };
    write_all(root, &prefixed("fleet", fleet.files()));
    write_all(root, &[("helm-values.yaml".into(), fleet.helm_values())]);
    write_all(
        root,
        &prefixed("kustomize", fleet::kustomize_tree(&fleet).unwrap()),
    );

    let mut prism = documents(&run(Command::new(env!("CARGO_BIN_EXE_prism-render"))
        .arg("render")
        .arg(root.join("fleet"))));
    // Argo CD sync waves order render mode's plugin rollouts; the Helm and Kustomize twins do
    // not model rollouts, so the waves are left out of the comparison (on every side).
    let waves = without_sync_waves(&mut prism);
    assert!(
        waves > 0,
        "the generated fleet has plugins with a rollout policy"
    );
    assert_eq!(
        prism.len(),
        fleet::render(&fleet).unwrap().len(),
        "the CLI and the library disagree"
    );
    let kinds = |docs: &[Value]| -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for d in docs {
            *m.entry(d["kind"].as_str().unwrap_or("?").to_string())
                .or_insert(0) += 1;
        }
        m
    };
    let counts = kinds(&prism);
    for kind in [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "PrismNamespace",
        "PrismPlugin",
        "PrismShard",
        "Service",
        "StatefulSet",
    ] {
        assert!(counts.contains_key(kind), "no {kind} in {counts:?}");
    }

    let mut helm = documents(&run(Command::new(bin.join("helm"))
        .args(["template", "fleet"])
        .arg(paths::root().join("benches/helm-fleet"))
        .arg("-f")
        .arg(root.join("helm-values.yaml"))));
    without_sync_waves(&mut helm);
    assert_same_objects("helm template", &prism, &helm);

    let mut kustomize = documents(&run(Command::new(bin.join("kustomize"))
        .arg("build")
        .arg(root.join("kustomize"))));
    // The Kustomize twin patches some objects with what prism-render rendered (annotations
    // included), so its output can carry waves too.
    without_sync_waves(&mut kustomize);
    assert_same_objects("kustomize build", &prism, &kustomize);
}

#[test]
fn helm_and_kustomize_render_the_same_objects() {
    // Two Kubernetes namespaces (the second partly filled), the default plugin catalogue.
    check(FleetParams {
        shards: 52,
        ..FleetParams::new(52)
    });
}

#[test]
fn same_objects_with_every_plugin_and_another_seed() {
    check(FleetParams {
        shards: 16,
        plugins: 12,
        namespaces: 90,
        seed: 7,
    });
}
