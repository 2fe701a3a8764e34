//! The Argo CD config management plugin contract, played from the plugin server's side: read
//! `argocd/plugin.yaml` as the sidecar does, run its commands by argv (no shell) in a copy of an
//! app directory with the environment Argo CD documents for each call, and hold the output to
//! what Argo CD accepts. Also the sidecar wiring, the health checks and prompt exit on SIGTERM.

use prism_testing::paths::root;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_prism-render");
const APP_PATH: &str = "apps/fleet";
const REVISION: &str = "8d3f1c2b7a6e5d4c3b2a19080706050403020100";

fn yaml_file(rel: &str) -> Value {
    let text = std::fs::read_to_string(root().join(rel)).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn plugin() -> Value {
    yaml_file("argocd/plugin.yaml")
}

/// argv of a plugin.yaml command (`command` then `args`), with `prism-render` resolved to the
/// binary under test, as the sidecar's exec would resolve it on PATH.
fn argv(command: &Value) -> Vec<String> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|s| s.as_str().expect("argv entries are strings").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut argv = strings(&command["command"]);
    argv.extend(strings(&command["args"]));
    assert!(!argv.is_empty(), "command must not be empty: {command}");
    assert_eq!(argv[0], "prism-render");
    argv[0] = BIN.to_string();
    argv
}

/// The sidecar's own environment: what the plugin server passes on before Argo CD's entries.
fn sidecar_env() -> Vec<(String, String)> {
    vec![
        ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
        ("HOME".into(), "/home/argocd".into()),
    ]
}

/// What GenerateManifest passes: every build variable, the cluster's version and APIs.
fn generate_env() -> Vec<(String, String)> {
    let mut env = sidecar_env();
    let apis = [
        "apps/v1",
        "apps/v1/Deployment",
        "apps/v1/StatefulSet",
        "autoscaling/v2",
        "autoscaling/v2/HorizontalPodAutoscaler",
        "policy/v1",
        "policy/v1/PodDisruptionBudget",
        "prism.io/v1alpha1",
        "prism.io/v1alpha1/PrismNamespace",
        "prism.io/v1alpha1/PrismPlugin",
        "prism.io/v1alpha1/PrismShard",
        "prism.io/v1beta1",
        "prism.io/v1beta1/PrismNamespace",
        "prism.io/v1beta1/PrismPlugin",
        "prism.io/v1beta1/PrismShard",
        "v1",
        "v1/ConfigMap",
        "v1/Service",
    ];
    for (k, v) in [
        ("ARGOCD_APP_NAME", "prism-fleet"),
        ("ARGOCD_APP_NAMESPACE", "prism"),
        ("ARGOCD_APP_PROJECT_NAME", "default"),
        ("ARGOCD_APP_REVISION", REVISION),
        ("ARGOCD_APP_REVISION_SHORT", &REVISION[..7]),
        ("ARGOCD_APP_REVISION_SHORT_8", &REVISION[..8]),
        (
            "ARGOCD_APP_SOURCE_REPO_URL",
            "https://git.example.com/fleet.git",
        ),
        ("ARGOCD_APP_SOURCE_PATH", APP_PATH),
        ("ARGOCD_APP_SOURCE_TARGET_REVISION", "main"),
        ("KUBE_VERSION", "1.31.4"),
        ("KUBE_API_VERSIONS", &apis.join(",")),
        ("ARGOCD_ENV_UNRELATED", "ignored"),
        ("ARGOCD_APP_PARAMETERS", "[]"),
    ] {
        env.push((k.into(), v.into()));
    }
    env
}

/// What GetParametersAnnouncement passes: far less.
fn parameters_env() -> Vec<(String, String)> {
    let mut env = sidecar_env();
    for (k, v) in [
        ("ARGOCD_APP_NAME", "prism-fleet"),
        (
            "ARGOCD_APP_SOURCE_REPO_URL",
            "https://git.example.com/fleet.git",
        ),
        ("ARGOCD_APP_SOURCE_PATH", APP_PATH),
        ("ARGOCD_APP_SOURCE_TARGET_REVISION", "main"),
        ("ARGOCD_ENV_PRISM_PROXY_IMAGE", "proxy.example/prism:9"),
        ("ARGOCD_APP_PARAMETERS", "[]"),
    ] {
        env.push((k.into(), v.into()));
    }
    env
}

fn with(mut env: Vec<(String, String)>, key: &str, value: &str) -> Vec<(String, String)> {
    env.retain(|(k, _)| k != key);
    env.push((key.into(), value.into()));
    env
}

/// A copy of an example app directory inside a fresh work dir, as the sidecar unpacks it
/// (the whole repository, `.git` included when not excluded); returns (work dir, app dir).
fn unpack(example: &str) -> (tempfile::TempDir, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let app = work.path().join(APP_PATH);
    std::fs::create_dir_all(&app).unwrap();
    for entry in std::fs::read_dir(root().join(example)).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, app.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::create_dir_all(work.path().join(".git")).unwrap();
    std::fs::write(work.path().join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    // Hidden entries are never inputs, even when the app directory is the repository root.
    std::fs::create_dir_all(app.join(".git")).unwrap();
    std::fs::write(app.join(".git/junk.yaml"), "{{ not: yaml").unwrap();
    (work, app)
}

fn exec(argv: &[String], dir: &Path, env: &[(String, String)]) -> Output {
    Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .expect("plugin command runs")
}

fn generate(dir: &Path, env: &[(String, String)]) -> Output {
    exec(&argv(&plugin()["spec"]["generate"]), dir, env)
}

fn render(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("render")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8")
}

/// Splits a YAML stream the way Argo CD does (blank and null documents skipped) and checks
/// every document is an object Argo CD can track.
fn objects(stream: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(stream) {
        let value: Value = serde::Deserialize::deserialize(doc).expect("valid YAML document");
        if value.is_null() {
            continue;
        }
        for field in ["apiVersion", "kind"] {
            assert!(value[field].is_string(), "{field} missing in {value}");
        }
        assert!(value["metadata"]["name"].is_string(), "name missing");
        out.push(value);
    }
    out
}

#[test]
fn plugin_yaml_is_what_the_sidecar_expects() {
    let p = plugin();
    assert_eq!(p["apiVersion"], "argoproj.io/v1alpha1");
    assert_eq!(p["kind"], "ConfigManagementPlugin");
    assert_eq!(p["metadata"]["name"], "prism-render");
    assert_eq!(p["spec"]["version"], "v1");
    // Argo CD ignores unknown keys silently, so a misspelt one would be lost without a word.
    let known = [
        "version",
        "init",
        "generate",
        "discover",
        "parameters",
        "preserveFileMode",
        "provideGitCreds",
    ];
    for key in p["spec"].as_object().unwrap().keys() {
        assert!(known.contains(&key.as_str()), "unknown spec key {key}");
    }
    assert!(
        p["spec"].get("discover").is_none(),
        "no discovery: Applications name the plugin"
    );
    assert_eq!(
        argv(&p["spec"]["generate"])[1..],
        ["cmp".to_string(), "generate".to_string()]
    );
    assert_eq!(
        argv(&p["spec"]["parameters"]["dynamic"])[1..],
        ["cmp".to_string(), "parameters".to_string()]
    );
    // Both commands are real subcommands: their --help succeeds where a made-up one fails.
    for cmd in [&p["spec"]["generate"], &p["spec"]["parameters"]["dynamic"]] {
        let mut a = argv(cmd);
        a.push("--help".into());
        let out = exec(&a, root(), &sidecar_env());
        assert!(out.status.success(), "{a:?}: {}", text(&out.stderr));
    }
    let bogus = exec(
        &[BIN.into(), "cmp".into(), "nonsense".into(), "--help".into()],
        root(),
        &sidecar_env(),
    );
    assert!(!bogus.status.success());
}

#[test]
fn the_example_application_names_the_plugin_with_its_version() {
    let p = plugin();
    let app = yaml_file("argocd/application.yaml");
    let expected = format!(
        "{}-{}",
        p["metadata"]["name"].as_str().unwrap(),
        p["spec"]["version"].as_str().unwrap()
    );
    assert_eq!(app["spec"]["source"]["plugin"]["name"], expected.as_str());
    assert_eq!(expected, "prism-render-v1");
    // Its parameters are ones the plugin announces.
    let announced: Vec<Value> = serde_json::from_slice(
        &exec(
            &argv(&p["spec"]["parameters"]["dynamic"]),
            root(),
            &parameters_env(),
        )
        .stdout,
    )
    .unwrap();
    for param in app["spec"]["source"]["plugin"]["parameters"]
        .as_array()
        .unwrap()
    {
        assert!(
            announced.iter().any(|a| a["name"] == param["name"]),
            "{param}"
        );
    }
}

#[test]
fn the_sidecar_patch_follows_the_documented_wiring() {
    let kustomization = yaml_file("argocd/kustomization.yaml");
    let patches: Vec<&str> = kustomization["patches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    for file in &patches {
        assert!(root().join("argocd").join(file).is_file(), "{file}");
    }
    let generator = &kustomization["configMapGenerator"][0];
    assert_eq!(generator["files"][0], "plugin.yaml");
    assert_eq!(generator["options"]["disableNameSuffixHash"], true);
    let config_map = generator["name"].as_str().unwrap();

    let deploy = yaml_file("argocd/repo-server-sidecar.yaml");
    assert_eq!(deploy["metadata"]["name"], "argocd-repo-server");
    let pod = &deploy["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["command"][0], "/var/run/argocd/argocd-cmp-server");
    assert_eq!(c["securityContext"]["runAsNonRoot"], true);
    assert_eq!(c["securityContext"]["runAsUser"], 999);
    assert_eq!(c["securityContext"]["runAsGroup"], 999, "never group 0");
    let mounts: BTreeMap<&str, &Value> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["mountPath"].as_str().unwrap(), m))
        .collect();
    assert_eq!(mounts["/var/run/argocd"]["name"], "var-files");
    assert_eq!(mounts["/home/argocd/cmp-server/plugins"]["name"], "plugins");
    let config = mounts["/home/argocd/cmp-server/config/plugin.yaml"];
    assert_eq!(config["subPath"], "plugin.yaml");
    let volume = |name: &Value| {
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| &v["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(volume(&config["name"])["configMap"]["name"], config_map);
    // A private /tmp, not the repo-server's.
    let tmp = mounts["/tmp"];
    assert!(volume(&tmp["name"])["emptyDir"].is_object());
    assert_ne!(tmp["name"], "tmp");

    let params = yaml_file("argocd/argocd-cmd-params-cm.yaml");
    assert_eq!(params["data"]["reposerver.plugin.tar.exclusions"], ".git/*");
}

#[test]
fn generate_renders_the_app_dir_like_render() {
    let (_work, app) = unpack("examples/fleet");
    let out = generate(&app, &generate_env());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let stream = text(&out.stdout);
    let objs = objects(&stream);
    assert!(objs.len() > 20, "{} objects", objs.len());
    // The same bytes as `render` of the same directory with the same settings.
    let rendered = render(&app, &["-n", "prism", "."]);
    assert!(rendered.status.success());
    assert_eq!(stream, text(&rendered.stdout));
    // And again: the output is a function of the files and the settings only.
    assert_eq!(generate(&app, &generate_env()).stdout, out.stdout);
}

#[test]
fn parameters_work_with_the_reduced_environment() {
    let (_work, app) = unpack("examples/fleet");
    let out = exec(
        &argv(&plugin()["spec"]["parameters"]["dynamic"]),
        &app,
        &parameters_env(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let list = list.as_array().expect("a JSON array");
    assert!(!list.is_empty());
    let keys = [
        "name",
        "title",
        "tooltip",
        "required",
        "itemType",
        "collectionType",
        "string",
        "array",
        "map",
    ];
    let strings = |v: &Value| v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
    let mut names = Vec::new();
    for p in list {
        let map = p.as_object().expect("announcements are objects");
        for (k, v) in map {
            assert!(keys.contains(&k.as_str()), "unknown key {k}");
            match k.as_str() {
                "required" => assert!(v.is_boolean()),
                "array" => assert!(strings(v), "{v}"),
                "map" => assert!(v.as_object().unwrap().values().all(Value::is_string)),
                _ => assert!(v.is_string(), "{k} must be a string: {v}"),
            }
        }
        let collection = p["collectionType"].as_str().unwrap_or("string");
        assert!(["string", "array", "map"].contains(&collection));
        if collection != "string" {
            assert!(
                p.get(collection).is_some(),
                "{p} needs its {collection} value"
            );
        }
        names.push(p["name"].as_str().unwrap().to_string());
    }
    let mut unique = names.clone();
    unique.dedup();
    assert_eq!(unique, names);
    // The plugin env shows up as the default.
    let image = list.iter().find(|p| p["name"] == "proxy-image").unwrap();
    assert_eq!(image["string"], "proxy.example/prism:9");
    // Every announced parameter, sent back with its announced value, is accepted.
    let echo: Vec<Value> = list
        .iter()
        .map(|p| {
            let kind = p["collectionType"].as_str().unwrap_or("string");
            serde_json::json!({"name": p["name"], kind: p[kind]})
        })
        .collect();
    let env = with(
        generate_env(),
        "ARGOCD_APP_PARAMETERS",
        &serde_json::to_string(&echo).unwrap(),
    );
    let out = generate(&app, &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn parameters_change_the_output() {
    let (_work, app) = unpack("examples/fleet");
    let all = generate(&app, &generate_env());
    let env = with(
        generate_env(),
        "ARGOCD_APP_PARAMETERS",
        r#"[{"name":"paths","array":["plugins.yaml","shards.yaml"]}]"#,
    );
    let some = generate(&app, &env);
    assert!(some.status.success(), "{}", text(&some.stderr));
    assert_ne!(some.stdout, all.stdout);
    assert!(!text(&some.stdout).contains("kind: PrismNamespace"));
    let rendered = render(&app, &["-n", "prism", "plugins.yaml", "shards.yaml"]);
    assert_eq!(some.stdout, rendered.stdout);
}

/// The example fleet without `metadata.namespace` and `spec.image`, so defaults show.
fn unpack_bare_fleet() -> (tempfile::TempDir, PathBuf) {
    let (work, app) = unpack("examples/fleet");
    for f in ["namespaces.yaml", "plugins.yaml", "shards.yaml"] {
        let path = app.join(f);
        let text = std::fs::read_to_string(&path).unwrap();
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| *l != "  namespace: prism" && !l.starts_with("  image: ghcr.io/prism"))
            .collect();
        std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    }
    (work, app)
}

fn namespaces_of(out: &Output) -> Vec<String> {
    let mut ns: Vec<String> = objects(&text(&out.stdout))
        .iter()
        .map(|o| o["metadata"]["namespace"].as_str().unwrap().to_string())
        .collect();
    ns.dedup();
    ns
}

#[test]
fn parameters_json_is_authoritative_over_flattened_ones() {
    let (_work, app) = unpack_bare_fleet();
    // Destination namespace by default.
    assert_eq!(namespaces_of(&generate(&app, &generate_env())), ["prism"]);
    // PARAM_* alone is read …
    let mut env = generate_env();
    env.retain(|(k, _)| k != "ARGOCD_APP_PARAMETERS");
    env.push(("PARAM_NAMESPACE".into(), "team-b".into()));
    assert_eq!(namespaces_of(&generate(&app, &env)), ["team-b"]);
    // … but ARGOCD_APP_PARAMETERS, when present, is exact.
    let env = with(
        env,
        "ARGOCD_APP_PARAMETERS",
        r#"[{"name":"namespace","string":"team-a"},{"name":"proxy-image","string":"registry.example/proxy:7"}]"#,
    );
    let out = generate(&app, &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(namespaces_of(&out), ["team-a"]);
    assert!(text(&out.stdout).contains("image: registry.example/proxy:7"));
    // The flags CI uses give the same bytes without any Argo CD variable.
    let flags = Command::new(BIN)
        .args(["cmp", "generate", "--app-namespace", "prism", "--parameters"])
        .arg(r#"[{"name":"namespace","string":"team-a"},{"name":"proxy-image","string":"registry.example/proxy:7"}]"#)
        .current_dir(&app)
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(flags.stdout, out.stdout, "{}", text(&flags.stderr));
    let rendered = render(
        &app,
        &[
            "-n",
            "team-a",
            "--proxy-image",
            "registry.example/proxy:7",
            ".",
        ],
    );
    assert_eq!(rendered.stdout, out.stdout);
}

fn assert_fails(out: &Output, expected: &str) {
    let err = text(&out.stderr);
    assert!(!out.status.success(), "expected failure, got success");
    assert!(out.stdout.is_empty(), "stdout must be empty on failure");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(expected), "expected {expected:?} in {err:?}");
}

#[test]
fn an_empty_app_dir_is_an_error_not_an_empty_manifest() {
    let work = tempfile::tempdir().unwrap();
    let out = generate(work.path(), &generate_env());
    assert_fails(&out, "no YAML files found");
    assert_eq!(text(&out.stderr).lines().count(), 1);
    std::fs::write(work.path().join("README.md"), "# nothing here\n").unwrap();
    assert_fails(
        &generate(work.path(), &generate_env()),
        "no YAML files found",
    );
    std::fs::write(work.path().join("empty.yaml"), "# only a comment\n").unwrap();
    assert_fails(
        &generate(work.path(), &generate_env()),
        "refusing to return no objects",
    );
}

#[test]
fn errors_name_the_repository_file_and_keep_secrets_out() {
    let (_work, app) = unpack("examples/fleet");
    let shards = app.join("shards.yaml");
    let text_before = std::fs::read_to_string(&shards).unwrap();
    std::fs::write(
        &shards,
        text_before.replacen("replicas: 3", "replicas: many", 1),
    )
    .unwrap();
    let env = with(generate_env(), "ARGOCD_ENV_DB_PASSWORD", "hunter2-secret");
    let out = generate(&app, &env);
    assert_fails(
        &out,
        &format!("{}:{APP_PATH}/shards.yaml:", &REVISION[..12]),
    );
    assert!(text(&out.stderr).contains("spec.replicas"));
    assert!(!text(&out.stderr).contains("hunter2"));

    std::fs::write(&shards, text_before).unwrap();
    let env = with(
        generate_env(),
        "ARGOCD_APP_PARAMETERS",
        r#"[{"name":"paths","map":{"token":"hunter2-secret"}}]"#,
    );
    let out = generate(&app, &env);
    assert_fails(&out, "parameter \"paths\" must be a list");
    assert!(!text(&out.stderr).contains("hunter2"));
    let env = with(generate_env(), "ARGOCD_APP_PARAMETERS", "[{hunter2-secret");
    assert_fails(
        &generate(&app, &env),
        "ARGOCD_APP_PARAMETERS: not valid JSON",
    );
    let env = with(
        generate_env(),
        "ARGOCD_APP_PARAMETERS",
        r#"[{"name":"templates","string":"../../../../etc"}]"#,
    );
    assert_fails(&generate(&app, &env), "inside the app directory");
}

#[test]
fn an_application_without_parameters_renders_as_argo_cd_calls_it() {
    // Argo CD sends `null` for an Application that names the plugin and sets no parameters
    // (and for `parameters: []`); an absent variable and `[]` mean the same.
    let (_work, app) = unpack("examples/fleet");
    let mut bare = generate_env();
    bare.retain(|(k, _)| k != "ARGOCD_APP_PARAMETERS");
    let expected = generate(&app, &bare);
    assert!(expected.status.success(), "{}", text(&expected.stderr));
    assert!(!expected.stdout.is_empty());
    for parameters in ["null", " null\n", "[]"] {
        let out = generate(
            &app,
            &with(bare.clone(), "ARGOCD_APP_PARAMETERS", parameters),
        );
        assert!(
            out.status.success(),
            "{parameters:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(out.stdout, expected.stdout, "{parameters:?}");
    }
    let out = generate(&app, &with(bare, "ARGOCD_APP_PARAMETERS", "{}"));
    assert_fails(
        &out,
        "ARGOCD_APP_PARAMETERS: must be a JSON array of parameters",
    );
}

#[test]
fn errors_name_the_parameter_and_the_rule_never_the_value() {
    let (_work, app) = unpack("examples/fleet");
    let param = |name: &str, value: &str| {
        let json = serde_json::json!([{"name": name, "string": value}]).to_string();
        generate(&app, &with(generate_env(), "ARGOCD_APP_PARAMETERS", &json))
    };
    let cases = [
        (
            param("namespace", "Bad_NS_s3cr3t"),
            "parameter \"namespace\": the namespace must be a DNS-1123 label",
        ),
        (
            param("templates", "../../s3cr3t"),
            "parameter \"templates\": must be a relative path inside the app directory",
        ),
        (
            param("proxy-image", "img s3cr3t"),
            "parameter \"proxy-image\": the proxy image must be an image reference",
        ),
        // Valid paths that name nothing: the parameter is named, the value is not, not even
        // as a file location.
        (
            param("templates", "s3cr3t-dir"),
            "parameter \"templates\": names no directory of the app directory",
        ),
        (
            generate(
                &app,
                &with(
                    generate_env(),
                    "ARGOCD_APP_PARAMETERS",
                    &serde_json::json!([{"name": "paths", "array": ["plugins.yaml", "s3cr3t.yaml"]}])
                        .to_string(),
                ),
            ),
            "parameter \"paths\" item 1: names nothing in the app directory",
        ),
        (
            param("pass-through", "s3cr3t"),
            "parameter \"pass-through\" must be true or false",
        ),
        (
            generate(
                &app,
                &with(
                    generate_env(),
                    "ARGOCD_ENV_PRISM_NAMESPACE",
                    "Bad_NS_s3cr3t",
                ),
            ),
            "ARGOCD_ENV_PRISM_NAMESPACE: the namespace must be a DNS-1123 label",
        ),
        (
            generate(
                &app,
                &with(generate_env(), "ARGOCD_APP_NAMESPACE", "Bad_NS_s3cr3t"),
            ),
            "ARGOCD_APP_NAMESPACE (the destination namespace): the namespace must be",
        ),
    ];
    for (out, expected) in cases {
        assert_fails(&out, expected);
        assert!(
            !text(&out.stderr).contains("s3cr3t"),
            "{}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stderr).lines().count(), 1);
    }
}

#[test]
fn other_manifests_pass_through_with_the_parameter_and_values_files_are_left_out() {
    let (_work, app) = unpack("examples/fleet");
    std::fs::write(
        app.join("settings.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: team-settings}\ndata: {tier: gold}\n",
    )
    .unwrap();
    std::fs::write(
        app.join("values.yaml"),
        "replicaCount: 2\nimage: {tag: x}\n",
    )
    .unwrap();
    let strict = generate(&app, &generate_env());
    assert_fails(
        &strict,
        "settings.yaml:2: kind: unknown kind \"ConfigMap\": expected PrismNamespace, PrismPlugin or PrismShard (other Kubernetes objects pass through unchanged with --pass-through, or the plugin parameter pass-through)",
    );
    let json = r#"[{"name":"pass-through","string":"true"}]"#;
    let passed = generate(&app, &with(generate_env(), "ARGOCD_APP_PARAMETERS", json));
    assert!(passed.status.success(), "{}", text(&passed.stderr));
    let all = objects(&text(&passed.stdout));
    let config = all
        .iter()
        .find(|o| o["metadata"]["name"] == "team-settings")
        .expect("the ConfigMap passes through");
    assert_eq!(
        config,
        &serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "team-settings"}, "data": {"tier": "gold"}}),
        "unchanged"
    );
    assert!(
        text(&passed.stderr).contains("left out 1 file(s), they hold no Kubernetes objects:")
            && text(&passed.stderr).contains("values.yaml"),
        "{}",
        text(&passed.stderr)
    );
}

#[test]
fn the_target_cluster_is_checked() {
    let (_work, app) = unpack("examples/fleet");
    let old = with(generate_env(), "KUBE_VERSION", "1.29.7");
    assert_fails(
        &generate(&app, &old),
        "KUBE_VERSION: Kubernetes 1.29 is too old",
    );
    let apis = "apps/v1,apps/v1/StatefulSet,apps/v1/Deployment,policy/v1,v1,v1/Service,v1/ConfigMap,autoscaling/v1,autoscaling/v1/HorizontalPodAutoscaler";
    let no_hpa_v2 = with(generate_env(), "KUBE_API_VERSIONS", apis);
    assert_fails(
        &generate(&app, &no_hpa_v2),
        "the cluster does not serve autoscaling/v2 HorizontalPodAutoscaler",
    );
}

#[test]
fn template_overrides_inside_the_app_dir_are_not_inputs() {
    let (_work, app) = unpack("examples/fleet");
    let templates = app.join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    let pdb = std::fs::read_to_string(root().join("templates/shard-pdb.yaml")).unwrap();
    std::fs::write(
        templates.join("shard-pdb.yaml"),
        pdb.replace("metadata:", "metadata:\n  annotations: {team: video}"),
    )
    .unwrap();
    let env = with(
        generate_env(),
        "ARGOCD_APP_PARAMETERS",
        r#"[{"name":"templates","string":"templates"}]"#,
    );
    let out = generate(&app, &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pdbs: Vec<Value> = objects(&text(&out.stdout))
        .into_iter()
        .filter(|o| {
            o["kind"] == "PodDisruptionBudget"
                && o["metadata"]["labels"]["app.kubernetes.io/component"] == "proxy"
        })
        .collect();
    assert!(!pdbs.is_empty());
    for p in pdbs {
        assert_eq!(p["metadata"]["annotations"]["team"], "video", "{p}");
    }
}

/// Waits up to `limit` for `child` to end; kills it and fails when it does not.
fn ends_within(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running {limit:?} after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn sigterm(child: &Child) {
    // SAFETY: sends a signal to a child process this test started and has not reaped yet.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
}

/// Starts `cmd`, checks it is stuck, sends SIGTERM and expects it to die of it promptly.
fn assert_dies_on_sigterm(mut cmd: Command) {
    use std::os::unix::process::ExitStatusExt;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the command should be blocked"
    );
    let sent = Instant::now();
    sigterm(&child);
    let status = ends_within(&mut child, Duration::from_secs(5));
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "{:?}",
        sent.elapsed()
    );
}

/// An app dir whose reading blocks: `stuck.yaml` is a FIFO nobody writes to.
fn stuck_app() -> (tempfile::TempDir, PathBuf) {
    let (work, app) = unpack("examples/fleet");
    let fifo = app.join("stuck.yaml");
    let ok = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(ok.success());
    (work, app)
}

#[test]
fn sigterm_ends_generate_promptly() {
    let (_work, app) = stuck_app();
    let argv = argv(&plugin()["spec"]["generate"]);
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(&app)
        .env_clear()
        .envs(generate_env());
    assert_dies_on_sigterm(cmd);
}

#[test]
fn sigterm_ends_generate_even_when_the_parent_ignored_it() {
    let (_work, app) = stuck_app();
    // The shell ignores SIGTERM and execs the plugin, which inherits the ignored disposition.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("trap '' TERM; exec \"$0\" cmp generate")
        .arg(BIN)
        .current_dir(&app)
        .env_clear()
        .envs(generate_env());
    assert_dies_on_sigterm(cmd);
}

#[test]
fn sigterm_ends_a_read_of_standard_input() {
    let mut cmd = Command::new(BIN);
    cmd.args(["render", "-"]).stdin(Stdio::piped());
    assert_dies_on_sigterm(cmd);
}

/// A Lua 5.1 interpreter (Argo CD runs health checks with gopher-lua, a Lua 5.1).
fn lua() -> Option<&'static str> {
    ["lua5.1", "lua"].into_iter().find(|l| {
        Command::new(l)
            .args(["-e", "assert(_VERSION == 'Lua 5.1')"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// A JSON value as a Lua table constructor.
fn lua_value(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(lua_value).collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("[{k:?}] = {}", lua_value(v)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

#[test]
fn health_checks_map_conditions_to_argo_cd_health() {
    let cm = yaml_file("argocd/argocd-cm-health.yaml");
    let scripts: Vec<&str> = ["PrismShard", "PrismPlugin", "PrismNamespace"]
        .iter()
        .map(|k| {
            cm["data"][format!("resource.customizations.health.prism.io_{k}")]
                .as_str()
                .unwrap_or_else(|| panic!("no health check for {k}"))
        })
        .collect();
    assert!(scripts.windows(2).all(|w| w[0] == w[1]));
    // .ci/run installs lua5.1, so in CI the scripts always run.
    let Some(lua) = lua() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "no Lua 5.1 interpreter in CI: apt-get install lua5.1"
        );
        eprintln!("not running the health checks: no Lua 5.1 interpreter (apt-get install lua5.1)");
        return;
    };
    let cond = |t: &str, s: &str, generation: i64| serde_json::json!({"type": t, "status": s, "reason": "R", "message": format!("{t} is {s}"), "observedGeneration": generation});
    let cases = [
        (serde_json::json!(null), "Progressing"),
        (
            serde_json::json!({"observedGeneration": 1, "conditions": [cond("Ready", "True", 1)]}),
            "Progressing",
        ),
        (
            serde_json::json!({"observedGeneration": 2, "conditions": [cond("Ready", "True", 2)]}),
            "Healthy",
        ),
        (
            serde_json::json!({"observedGeneration": 2, "conditions": [cond("Ready", "True", 1)]}),
            "Progressing",
        ),
        (
            serde_json::json!({"observedGeneration": 2, "conditions": [cond("Ready", "False", 2)]}),
            "Degraded",
        ),
        (
            serde_json::json!({"observedGeneration": 2, "conditions": [cond("Ready", "False", 2), cond("Progressing", "True", 2)]}),
            "Progressing",
        ),
        (
            serde_json::json!({"observedGeneration": 2, "conditions": [cond("Ready", "True", 2), cond("Degraded", "True", 2)]}),
            "Degraded",
        ),
        (
            serde_json::json!({"observedGeneration": 1, "conditions": [cond("ReconciliationPaused", "True", 1)]}),
            "Suspended",
        ),
        (
            serde_json::json!({"observedGeneration": 2, "conditions": []}),
            "Progressing",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let check = |obj: &Value, script: &str| {
        let program = format!(
            "obj = {}\nlocal function check()\n{}\nend\nlocal hs = check()\nio.write(hs.status, '\\t', hs.message or '')\n",
            lua_value(obj),
            script
        );
        let file = dir.path().join("check.lua");
        std::fs::write(&file, program).unwrap();
        let out = Command::new(lua).arg(&file).output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    // Argo CD picks a script by group and kind: each must judge both versions, with the status
    // fields only one of them has, alike.
    let versions = [
        (
            "prism.io/v1alpha1",
            serde_json::json!({"health": "Warning", "prismInstances": ["prism-a-0", "prism-a-1"]}),
        ),
        (
            "prism.io/v1beta1",
            serde_json::json!({"health": "Degraded"}),
        ),
    ];
    for ((kind, script), (api_version, extra)) in ["PrismShard", "PrismPlugin", "PrismNamespace"]
        .into_iter()
        .zip(&scripts)
        .flat_map(|k| versions.iter().map(move |v| (k, v)))
    {
        for (status, expected) in &cases {
            let mut obj = serde_json::json!({
                "apiVersion": api_version, "kind": kind,
                "metadata": {"name": "a", "namespace": "prism", "generation": 2}
            });
            if !status.is_null() {
                obj["status"] = status.clone();
                if kind == "PrismNamespace" {
                    obj["status"]
                        .as_object_mut()
                        .unwrap()
                        .extend(extra.as_object().unwrap().clone());
                }
            }
            let result = check(&obj, script);
            let (health, message) = result.split_once('\t').unwrap();
            assert_eq!(
                health, *expected,
                "{api_version} {kind}, status {status}: {message}"
            );
            assert!(!message.is_empty());
        }
    }
}
