//! `prism-render convert`, and both API versions as inputs: the example fleets written in
//! v1alpha1 render the same objects as in v1beta1, byte for byte; converting there and back gives
//! the same files; invalid inputs fail with `validate`'s diagnostics and write nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use prism_testing::paths::root;
use prism_testing::process::{stderr, stdout};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_prism-render"))
}

fn run_in(dir: &Path, args: &[&str]) -> Output {
    bin()
        .args(args)
        .current_dir(dir)
        .env_remove("PRISM_NAMESPACE")
        .output()
        .expect("prism-render runs")
}

fn run(args: &[&str]) -> Output {
    run_in(root(), args)
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    stdout(&out)
}

const EXAMPLES: [&str; 3] = ["examples/fleet", "examples/network", "examples/adr-037"];

/// The YAML files of `dir` by name, with their text.
fn files(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// Converts `from` to `version` into `into` with `--out-dir`.
fn convert_dir(version: &str, from: &Path, into: &Path) {
    let (from, into) = (from.to_str().unwrap(), into.to_str().unwrap());
    assert_eq!(
        ok(run(&["convert", "--to", version, "--out-dir", into, from])),
        ""
    );
}

#[test]
fn each_example_renders_the_same_in_either_version() {
    let tmp = tempfile::tempdir().unwrap();
    for example in EXAMPLES {
        let alpha = tmp.path().join("alpha").join(example);
        let beta = tmp.path().join("beta").join(example);
        convert_dir("v1alpha1", &root().join(example), &alpha);
        convert_dir("v1beta1", &alpha, &beta);
        let written = files(&alpha);
        assert_eq!(written.len(), files(&root().join(example)).len());
        assert!(
            written.iter().all(|(_, t)| !t.contains("prism.io/v1beta1")),
            "{example}: every Prism document is v1alpha1"
        );
        let expected = ok(run(&["render", example]));
        for dir in [&alpha, &beta] {
            assert_eq!(
                ok(run(&["render", dir.to_str().unwrap()])),
                expected,
                "{example} from {}",
                dir.display()
            );
        }
        // A fleet mid-migration, some files in each version, renders the same too.
        let mixed = tmp.path().join("mixed").join(example);
        convert_dir("v1alpha1", &root().join(example), &mixed);
        let first = &written[0].0;
        std::fs::copy(root().join(example).join(first), mixed.join(first)).unwrap();
        assert_eq!(ok(run(&["render", mixed.to_str().unwrap()])), expected);
    }
}

#[test]
fn converting_there_and_back_gives_the_files_back() {
    let tmp = tempfile::tempdir().unwrap();
    for example in EXAMPLES {
        let (alpha, back) = (tmp.path().join("a"), tmp.path().join("b"));
        convert_dir("v1alpha1", &root().join(example), &alpha);
        convert_dir("v1beta1", &alpha, &back);
        assert_eq!(files(&back), files(&root().join(example)), "{example}");
        // Only the apiVersion lines changed: comments and layout stay.
        for ((name, a), (_, b)) in files(&alpha).iter().zip(files(&root().join(example))) {
            assert_eq!(
                a,
                &b.replace("prism.io/v1beta1", "prism.io/v1alpha1"),
                "{name}"
            );
        }
        std::fs::remove_dir_all(&alpha).unwrap();
        std::fs::remove_dir_all(&back).unwrap();
    }
}

#[test]
fn stdout_is_the_documents_in_order() {
    let out = ok(run(&["convert", "--to", "v1alpha1", "examples/fleet"]));
    let docs: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&out)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let mut names = Vec::new();
    for (_, text) in files(&root().join("examples/fleet")) {
        for d in serde_yaml::Deserializer::from_str(&text) {
            let v: serde_json::Value = serde::Deserialize::deserialize(d).unwrap();
            names.push(v["metadata"]["name"].clone());
        }
    }
    assert_eq!(
        docs.iter()
            .map(|d| d["metadata"]["name"].clone())
            .collect::<Vec<_>>(),
        names
    );
    assert!(docs.iter().all(|d| d["apiVersion"] == "prism.io/v1alpha1"));
    assert!(out.starts_with("---\n"));
}

#[test]
fn other_documents_pass_through_and_replicas_under_autoscaling_move() {
    let tmp = tempfile::tempdir().unwrap();
    let text = "apiVersion: v1\nkind: ConfigMap # untouched\nmetadata: {name: c}\ndata: {a: b}\n---\napiVersion: prism.io/v1alpha1\nkind: PrismShard\nmetadata: {name: s, namespace: prism}\nspec:\n  product: p\n  replicas: 3\n  autoscaling: {enabled: true, minReplicas: 2, maxReplicas: 5, targetRPS: 10}\n";
    std::fs::write(tmp.path().join("in.yaml"), text).unwrap();
    let beta = ok(run_in(
        tmp.path(),
        &["convert", "--to", "v1beta1", "in.yaml"],
    ));
    assert!(
        beta.starts_with(
            "---\napiVersion: v1\nkind: ConfigMap # untouched\nmetadata: {name: c}\ndata: {a: b}\n---\n"
        ),
        "{beta}"
    );
    let docs: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&beta)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(docs[1]["apiVersion"], "prism.io/v1beta1");
    assert!(docs[1]["spec"].get("replicas").is_none());
    assert_eq!(
        docs[1]["metadata"]["annotations"]["prism.io/conversion-v1alpha1"],
        r#"{"spec":{"replicas":3}}"#
    );
    // What v1alpha1 held comes back; the v1beta1 form is valid and renders.
    std::fs::write(tmp.path().join("beta.yaml"), &beta).unwrap();
    let alpha = ok(run_in(
        tmp.path(),
        &["convert", "--to", "v1alpha1", "beta.yaml"],
    ));
    let back: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&alpha)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let before: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(back, before);
}

/// The catalogue cases that read `.` (no arguments or stdin of their own).
fn catalogue_cases() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("tests/bad_inputs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && !p.join("args").exists() && !p.join("stdin").exists())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn invalid_documents_fail_as_validate_says_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut refused = 0;
    for dir in catalogue_cases() {
        let out_dir = tmp.path().join("out");
        let args = [
            "convert",
            "--to",
            "v1beta1",
            "--out-dir",
            out_dir.to_str().unwrap(),
            ".",
        ];
        let out = run_in(&dir, &args);
        if out.status.success() {
            // A fleet-level problem (plugins, placement): each file converts on its own.
            std::fs::remove_dir_all(&out_dir).unwrap();
            continue;
        }
        refused += 1;
        let expected = std::fs::read_to_string(dir.join("expected.txt")).unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", dir.display());
        assert_eq!(stderr(&out), expected, "{}", dir.display());
        assert!(stdout(&out).is_empty());
        assert!(!out_dir.exists(), "{}: wrote files", dir.display());
        let validate = run_in(&dir, &["validate", "."]);
        assert_eq!(stderr(&validate), expected, "{}", dir.display());
    }
    assert!(refused >= 50, "only {refused} cases refused");
}

#[test]
fn in_place_conversion_keeps_other_files_and_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fleet");
    std::fs::create_dir(&dir).unwrap();
    for (name, text) in files(&root().join("examples/fleet")) {
        std::fs::write(dir.join(&name), text).unwrap();
    }
    std::fs::set_permissions(
        dir.join("shards.yaml"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::fs::write(dir.join("README.md"), "notes\n").unwrap();
    let d = dir.to_str().unwrap();
    ok(run(&["convert", "--to", "v1alpha1", "--out-dir", d, d]));
    let mode = std::fs::metadata(dir.join("shards.yaml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    assert_eq!(
        std::fs::read_to_string(dir.join("README.md")).unwrap(),
        "notes\n"
    );
    assert!(
        files(&dir)
            .iter()
            .all(|(_, t)| t.contains("prism.io/v1alpha1") && !t.contains("prism.io/v1beta1"))
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn out_dir_names_and_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = out.to_str().unwrap();
    // A file PATH is written by its name; a directory's files by their paths inside it.
    ok(run(&[
        "convert",
        "--to",
        "v1alpha1",
        "--out-dir",
        o,
        "examples/fleet/shards.yaml",
        "examples/adr-037",
    ]));
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "namespace.yaml",
            "plugin.yaml",
            "plugins-for-shard.yaml",
            "shard.yaml",
            "shards.yaml"
        ]
    );
    // Two inputs for one output name.
    let clash = run(&[
        "convert",
        "--to",
        "v1alpha1",
        "--out-dir",
        o,
        "examples/fleet",
        "examples/network",
    ]);
    assert_eq!(clash.status.code(), Some(1));
    assert!(
        stderr(&clash).contains("would both be written to"),
        "{}",
        stderr(&clash)
    );
    let stdin = bin()
        .args(["convert", "--to", "v1beta1", "--out-dir", o, "-"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(stdin.status.code(), Some(1));
    assert!(
        stderr(&stdin).contains("standard input"),
        "{}",
        stderr(&stdin)
    );
    let unknown = run(&["convert", "--to", "v2", "examples/fleet"]);
    assert_eq!(unknown.status.code(), Some(2), "clap refuses it");
    let empty = run_in(tmp.path(), &["convert", "--to", "v1beta1", "out/nothing"]);
    assert_eq!(empty.status.code(), Some(1));
}
