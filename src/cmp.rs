//! The Argo CD config management plugin side of `prism-render`: the environment Argo CD gives
//! `cmp generate` and `cmp parameters`, the parameters the plugin announces, how parameters and
//! the Application's plugin env become render settings, and checks against the target cluster.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::error::{Diagnostic, Diagnostics};
use crate::job::{Inputs, Job, TemplateSource};
use crate::output::YamlStream;
use crate::render::contract::missing_crd;
use crate::render::{ObjectId, RenderOptions};
use crate::source::tree::{DiskTree, Entry, FileTree, normalize};
use crate::source::{Others, Skipped};

/// Parameter: namespace for resources that set none.
pub const NAMESPACE: &str = "namespace";
/// Parameter: proxy image for shards that name none.
pub const PROXY_IMAGE: &str = "proxy-image";
/// Parameter: directory of template overrides inside the app directory.
pub const TEMPLATES: &str = "templates";
/// Parameter: files or directories inside the app directory to render.
pub const PATHS: &str = "paths";
/// Parameter: `true` passes Kubernetes objects that are not Prism resources through.
pub const PASS_THROUGH: &str = "pass-through";

/// Plugin env (`spec.source.plugin.env`, seen as `ARGOCD_ENV_<NAME>`) the plugin reads; each
/// mirrors the `prism-render` option of the same `PRISM_*` environment variable.
pub const ENV_NAMESPACE: &str = "PRISM_NAMESPACE";
/// See [`ENV_NAMESPACE`].
pub const ENV_PROXY_IMAGE: &str = "PRISM_PROXY_IMAGE";
/// See [`ENV_NAMESPACE`].
pub const ENV_TEMPLATES: &str = "PRISM_TEMPLATES";

/// Oldest Kubernetes the rendered objects work on: the proxy's preStop `sleep` action is on
/// by default from 1.30.
pub const MIN_KUBE_VERSION: (u64, u64) = (1, 30);

/// What Argo CD tells the plugin about the Application (or what CI passes as flags instead).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppEnv {
    /// `ARGOCD_APP_NAME`.
    pub app_name: Option<String>,
    /// `ARGOCD_APP_NAMESPACE`: the destination namespace.
    pub app_namespace: Option<String>,
    /// `ARGOCD_APP_REVISION`: the commit being rendered.
    pub revision: Option<String>,
    /// `ARGOCD_APP_SOURCE_PATH`: the app directory's path inside the repository.
    pub source_path: Option<String>,
    /// `KUBE_VERSION`, e.g. `1.31.2`.
    pub kube_version: Option<String>,
    /// `KUBE_API_VERSIONS`: comma-separated `group/version` and `group/version/Kind`.
    pub kube_api_versions: Option<String>,
    /// `ARGOCD_ENV_<NAME>` values by `NAME`.
    pub env: BTreeMap<String, String>,
    /// `ARGOCD_APP_PARAMETERS`: the parameters set on the Application, as JSON.
    pub parameters: Option<String>,
    /// `PARAM_<NAME>` values by `NAME`: the flattened parameters, used only when
    /// `ARGOCD_APP_PARAMETERS` is absent.
    pub flat_parameters: BTreeMap<String, String>,
}

impl AppEnv {
    /// Takes `ARGOCD_ENV_*` and `PARAM_*` from environment variables (other fields come from
    /// flags, which read their own variables). Empty values count as unset.
    pub fn collect_env(&mut self, vars: impl IntoIterator<Item = (String, String)>) {
        for (name, value) in vars {
            if let Some(n) = name.strip_prefix("ARGOCD_ENV_") {
                self.env.insert(n.to_string(), value);
            } else if let Some(n) = name.strip_prefix("PARAM_") {
                self.flat_parameters.insert(n.to_string(), value);
            }
        }
    }
}

/// A directory of template overrides and who chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatesDir {
    /// Set for the whole plugin (`--templates`, `PRISM_TEMPLATES`): any path.
    Plugin(PathBuf),
    /// Set by an Application: a normalised path inside the app directory, and what set it
    /// (for messages, which never repeat the value).
    App(PathBuf, String),
}

/// Everything a render needs besides the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Namespace for resources without `metadata.namespace`.
    pub namespace: String,
    /// Proxy image for shards without `spec.image`.
    pub proxy_image: String,
    /// Template overrides.
    pub templates: Option<TemplatesDir>,
    /// Normalised paths inside the app directory to render (the root by default).
    pub paths: Vec<PathBuf>,
    /// NetworkPolicies for shards that do not say (the sidecar's `--network-policies`).
    pub network_policies: bool,
    /// Prometheus for KEDA triggers (the sidecar's `--prometheus-url`).
    pub prometheus_url: Option<String>,
    /// Pass other Kubernetes objects through (the sidecar's `--pass-through`, or the
    /// parameter).
    pub pass_through: bool,
}

impl Settings {
    /// Plugin-wide settings: from `prism-render`'s own options.
    pub fn new(namespace: String, proxy_image: String, templates: Option<PathBuf>) -> Self {
        Self {
            namespace,
            proxy_image,
            templates: templates.map(TemplatesDir::Plugin),
            paths: vec![PathBuf::new()],
            network_policies: false,
            prometheus_url: None,
            pass_through: false,
        }
    }
}

/// The kinds of parameter values Argo CD sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamValue {
    /// `"string": "…"`.
    String(String),
    /// `"array": ["…"]`.
    Array(Vec<String>),
    /// `"map": {"…": "…"}`.
    Map(BTreeMap<String, String>),
}

/// The parameters the plugin understands: name, whether it is a list, title, tooltip.
const ANNOUNCED: &[(&str, bool, &str, &str)] = &[
    (
        NAMESPACE,
        false,
        "Default namespace",
        "Namespace for Prism resources that do not set metadata.namespace. Empty: the Application's destination namespace.",
    ),
    (
        PROXY_IMAGE,
        false,
        "Proxy image",
        "Prism proxy image for shards that do not set spec.image.",
    ),
    (
        TEMPLATES,
        false,
        "Template overrides",
        "Directory inside the app directory whose templates replace the built-in ones by file name. Empty: built-in templates only.",
    ),
    (
        PATHS,
        true,
        "Paths",
        "Files or directories inside the app directory to render. Empty: the whole app directory.",
    ),
    (
        PASS_THROUGH,
        false,
        "Pass other objects through",
        "true: Kubernetes objects that are not Prism resources (a Namespace, a Secret, a ConfigMap) are checked and passed through unchanged. false: they are an error, which catches a misspelt kind.",
    ),
];

/// `PARAM_<NAME>` form of a parameter name, as Argo CD flattens it.
fn flat_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            let c = c.to_ascii_uppercase();
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Parses `ARGOCD_APP_PARAMETERS`. Argo CD sends `null` for an Application without parameters
/// (also for `parameters: []`): that is no parameters. Messages never repeat values: they may
/// be secret.
pub fn parse_parameters(json: &str) -> Result<Vec<(String, ParamValue)>, String> {
    let what = "ARGOCD_APP_PARAMETERS";
    let value: Value = serde_json::from_str(json).map_err(|e| {
        format!(
            "{what}: not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => return Err(format!("{what}: must be a JSON array of parameters")),
    };
    let strings = |v: &Value| -> Option<Vec<String>> {
        v.as_array()?
            .iter()
            .map(|s| s.as_str().map(String::from))
            .collect()
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(name) = item.get("name").and_then(Value::as_str) else {
            return Err(format!("{what}[{i}]: needs a string \"name\""));
        };
        let bad = |kind: &str| format!("{what}: parameter {name:?}: \"{kind}\" has the wrong type");
        let value = if let Some(v) = item.get("string") {
            ParamValue::String(v.as_str().ok_or_else(|| bad("string"))?.to_string())
        } else if let Some(v) = item.get("array") {
            ParamValue::Array(strings(v).ok_or_else(|| bad("array"))?)
        } else if let Some(v) = item.get("map") {
            let map = v
                .as_object()
                .and_then(|m| {
                    m.iter()
                        .map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect::<Option<BTreeMap<_, _>>>()
                })
                .ok_or_else(|| bad("map"))?;
            ParamValue::Map(map)
        } else {
            return Err(format!(
                "{what}: parameter {name:?} has no \"string\", \"array\" or \"map\" value"
            ));
        };
        out.push((name.to_string(), value));
    }
    Ok(out)
}

/// The parameters set for this render: `ARGOCD_APP_PARAMETERS` when present (it is exact),
/// otherwise the known ones found among the flattened `PARAM_*`.
pub fn parameters(app: &AppEnv) -> Result<Vec<(String, ParamValue)>, String> {
    if let Some(json) = app.parameters.as_deref().filter(|j| !j.trim().is_empty()) {
        return parse_parameters(json);
    }
    let mut out = Vec::new();
    for (name, is_list, _, _) in ANNOUNCED {
        let flat = flat_name(name);
        if *is_list {
            let items: Vec<String> = (0..)
                .map_while(|i| app.flat_parameters.get(&format!("{flat}_{i}")).cloned())
                .collect();
            if !items.is_empty() {
                out.push((name.to_string(), ParamValue::Array(items)));
            }
        } else if let Some(v) = app.flat_parameters.get(&flat) {
            out.push((name.to_string(), ParamValue::String(v.clone())));
        }
    }
    Ok(out)
}

/// Whether `s` is a DNS-1123 label (a valid namespace name).
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn app_path(what: &str, value: &str) -> Result<PathBuf, String> {
    normalize(std::path::Path::new(value))
        .map_err(|_| format!("{what}: must be a relative path inside the app directory"))
}

/// Applies, in rising order of precedence, the destination namespace, the plugin env
/// (`ARGOCD_ENV_PRISM_*`) and the parameters to the plugin-wide `base` settings. Empty values
/// leave a setting alone.
pub fn settings(base: Settings, app: &AppEnv) -> Result<Settings, String> {
    let mut s = base;
    // Where the namespace and proxy image came from, for messages (values are never repeated).
    let mut namespace_from = "--namespace".to_string();
    let mut image_from = "--proxy-image".to_string();
    if let Some(ns) = app.app_namespace.as_deref().filter(|v| !v.is_empty()) {
        s.namespace = ns.to_string();
        namespace_from = "ARGOCD_APP_NAMESPACE (the destination namespace)".into();
    }
    for (name, value) in &app.env {
        if !name.starts_with("PRISM_") || value.is_empty() {
            continue;
        }
        let what = format!("ARGOCD_ENV_{name}");
        match name.as_str() {
            ENV_NAMESPACE => {
                s.namespace = value.clone();
                namespace_from = what;
            }
            ENV_PROXY_IMAGE => {
                s.proxy_image = value.clone();
                image_from = what;
            }
            ENV_TEMPLATES => {
                s.templates = Some(TemplatesDir::App(app_path(&what, value)?, what.clone()))
            }
            _ => {
                return Err(format!(
                    "{what}: unknown setting; the plugin reads ARGOCD_ENV_{ENV_NAMESPACE}, ARGOCD_ENV_{ENV_PROXY_IMAGE} and ARGOCD_ENV_{ENV_TEMPLATES}"
                ));
            }
        }
    }
    for (name, value) in parameters(app)? {
        let what = format!("parameter {name:?}");
        let Some((_, is_list, _, _)) = ANNOUNCED.iter().find(|p| p.0 == name) else {
            let known: Vec<&str> = ANNOUNCED.iter().map(|p| p.0).collect();
            return Err(format!(
                "unknown parameter {name:?}; the plugin's parameters are {}",
                known.join(", ")
            ));
        };
        match (value, is_list) {
            (ParamValue::String(v), false) if v.is_empty() => {}
            (ParamValue::String(v), false) => match name.as_str() {
                NAMESPACE => {
                    s.namespace = v;
                    namespace_from = what;
                }
                PROXY_IMAGE => {
                    s.proxy_image = v;
                    image_from = what;
                }
                PASS_THROUGH => {
                    s.pass_through = match v.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(format!("{what} must be true or false")),
                    }
                }
                _ => s.templates = Some(TemplatesDir::App(app_path(&what, &v)?, what)),
            },
            (ParamValue::Array(items), true) => {
                let items: Vec<&String> = items.iter().filter(|i| !i.is_empty()).collect();
                if !items.is_empty() {
                    s.paths = items
                        .into_iter()
                        .map(|i| app_path(&what, i))
                        .collect::<Result<_, _>>()?;
                }
            }
            (_, true) => return Err(format!("{what} must be a list of strings (\"array\")")),
            (_, false) => return Err(format!("{what} must be a string")),
        }
    }
    if !is_dns_label(&s.namespace) {
        return Err(format!(
            "{namespace_from}: the namespace must be a DNS-1123 label (at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit)"
        ));
    }
    if s.proxy_image.trim().is_empty() || s.proxy_image.contains(char::is_whitespace) {
        return Err(format!(
            "{image_from}: the proxy image must be an image reference without white space"
        ));
    }
    Ok(s)
}

/// The JSON array of parameter announcements for `cmp parameters`. Argo CD gives this call
/// only the app name, repository, path, target revision, plugin env and parameters, so
/// defaults come from the plugin's own options and the plugin env.
pub fn announcement(base: &Settings, app: &AppEnv) -> String {
    let env = |name: &str| app.env.get(name).filter(|v| !v.is_empty()).cloned();
    let templates = env(ENV_TEMPLATES).unwrap_or_else(|| match &base.templates {
        Some(TemplatesDir::Plugin(p) | TemplatesDir::App(p, _)) => p.display().to_string(),
        None => String::new(),
    });
    let default = |name: &str| match name {
        NAMESPACE => env(ENV_NAMESPACE).unwrap_or_default(),
        PROXY_IMAGE => env(ENV_PROXY_IMAGE).unwrap_or_else(|| base.proxy_image.clone()),
        TEMPLATES => templates.clone(),
        _ => base.pass_through.to_string(),
    };
    let list: Vec<Value> = ANNOUNCED
        .iter()
        .map(|(name, is_list, title, tooltip)| {
            let mut p = json!({"name": name, "title": title, "tooltip": tooltip});
            if *is_list {
                p["collectionType"] = json!("array");
                p["array"] = json!([]);
            } else {
                p["collectionType"] = json!("string");
                p["string"] = json!(default(name));
            }
            p
        })
        .collect();
    let mut out = serde_json::to_string_pretty(&list).expect("announcements serialize");
    out.push('\n');
    out
}

fn problem(file: &str, message: impl Into<String>) -> Diagnostics {
    Diagnostic::new(file, 0, "", message).into()
}

/// Where files of the app directory are said to be: `REV:path/in/repo` when Argo CD says.
fn shown_prefix(app: &AppEnv) -> String {
    let path = app
        .source_path
        .as_deref()
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty() && *p != ".")
        .unwrap_or("");
    match app.revision.as_deref().filter(|r| !r.is_empty()) {
        Some(rev) => {
            let is_sha = rev.len() >= 40 && rev.bytes().all(|b| b.is_ascii_hexdigit());
            let rev = if is_sha { &rev[..12] } else { rev };
            format!("{rev}:{path}")
        }
        None => path.to_string(),
    }
}

/// `cmp generate`: renders the app directory (the current directory) with the Argo CD
/// environment into a YAML stream, exactly as `prism-render render` renders the same files with
/// the same settings, with the input files it left out. No objects is an error: Argo CD would
/// prune everything.
pub fn generate(base: Settings, app: &AppEnv) -> Result<(YamlStream, Vec<Skipped>), Diagnostics> {
    let s = settings(base, app).map_err(|m| problem("prism-render", m))?;
    let prefix = shown_prefix(app);
    let tree = DiskTree::new(".", prefix.clone());
    let app_dir = tree.name(&PathBuf::new());
    // A directory the Application names must be there; the error says who named it, not what.
    if let Some(TemplatesDir::App(dir, from)) = &s.templates
        && !matches!(tree.entry(dir), Ok(Entry::Dir { .. }))
    {
        return Err(problem(
            &app_dir,
            format!("{from}: names no directory of the app directory"),
        ));
    }
    let dir = s.templates.as_ref().map(|d| match d {
        TemplatesDir::App(dir, _) | TemplatesDir::Plugin(dir) => dir.as_path(),
    });
    // An app's directory is normalised already; the plugin's is inside when it normalises.
    let templates = TemplateSource::of(dir, |dir| Ok::<_, Diagnostics>(normalize(dir).ok()))?;
    let job = Job {
        inputs: Inputs::Tree {
            tree: &tree,
            paths: s.paths.clone(),
        },
        templates,
        namespace: s.namespace.clone(),
        options: RenderOptions {
            proxy_image: s.proxy_image.clone(),
            network_policies: s.network_policies,
            prometheus_url: s.prometheus_url.clone(),
        },
        others: match s.pass_through {
            true => Others::PassThrough,
            false => Others::Refuse,
        },
    };
    let app_name = app.app_name.as_deref().unwrap_or("the app");
    let so = format!("nothing to render for {app_name}");
    let rendered = job.stream()?;
    let skipped = rendered.skipped.clone();
    let stream = rendered.found(&job, Some(&so), |missing| {
        // Only the paths parameter names paths: say which item, never its value.
        let item = s
            .paths
            .iter()
            .position(|p| p == missing)
            .unwrap_or_default();
        problem(
            &app_dir,
            format!("parameter \"{PATHS}\" item {item}: names nothing in the app directory"),
        )
    })?;
    if stream.ids.is_empty() {
        return Err(problem(
            &tree.name(&PathBuf::new()),
            format!(
                "no Prism resources in the YAML files: refusing to return no objects for {app_name} (Argo CD would prune everything)"
            ),
        ));
    }
    check_cluster(
        &stream.ids,
        app.kube_version.as_deref(),
        app.kube_api_versions.as_deref(),
    )?;
    Ok((stream, skipped))
}

/// Parses `1.31.2`, `v1.31.2+k3s1` … into (major, minor).
fn major_minor(version: &str) -> Option<(u64, u64)> {
    let v = version.trim().trim_start_matches('v');
    let mut parts = v.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.trim_end_matches('+').parse().ok()?;
    Some((major, minor))
}

/// Checks the objects against the target cluster Argo CD describes: its version must be new
/// enough and every `apiVersion`/`kind` must be served ([`check_api_versions`]).
pub fn check_cluster(
    objects: &[ObjectId],
    kube_version: Option<&str>,
    api_versions: Option<&str>,
) -> Result<(), Diagnostics> {
    let mut problems = Diagnostics::default();
    if let Some(v) = kube_version.filter(|v| !v.trim().is_empty()) {
        match major_minor(v) {
            None => problems.push(Diagnostic::new(
                "KUBE_VERSION",
                0,
                "",
                format!("{v:?} is not a Kubernetes version such as 1.31.2"),
            )),
            Some(have) if have < MIN_KUBE_VERSION => problems.push(Diagnostic::new(
                "KUBE_VERSION",
                0,
                "",
                format!(
                    "Kubernetes {}.{} is too old: the rendered objects need {}.{} or newer",
                    have.0, have.1, MIN_KUBE_VERSION.0, MIN_KUBE_VERSION.1
                ),
            )),
            Some(_) => {}
        }
    }
    if let Some(list) = api_versions {
        problems
            .0
            .extend(check_api_versions(objects, list, "KUBE_API_VERSIONS").0);
    }
    problems.into_result(())
}

/// Checks that the cluster serves every object's `apiVersion` and `kind`, as `list` (Argo
/// CD's `KUBE_API_VERSIONS` form: comma-separated `group/version` and `group/version/Kind`)
/// says; `source` names the list in messages. Prism kinds are not checked: their CRDs may be
/// installed by the same sync. A kind served by another project's CRD (GRPCRoute) names that
/// CRD. An empty list checks nothing.
pub fn check_api_versions(objects: &[ObjectId], list: &str, source: &str) -> Diagnostics {
    let mut problems = Diagnostics::default();
    let served: std::collections::BTreeSet<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if served.is_empty() {
        return problems;
    }
    // Kind-level entries (`apps/v1/StatefulSet`, `v1/Service`) are the precise ones; a bare
    // `group/version` is enough only when the list names no kinds of it.
    let names_kinds = |gv: &str| {
        served.iter().any(|s| {
            s.strip_prefix(gv)
                .and_then(|r| r.strip_prefix('/'))
                .is_some_and(|k| k.starts_with(|c: char| c.is_ascii_uppercase()))
        })
    };
    let mut missing: BTreeMap<String, (String, &ObjectId)> = BTreeMap::new();
    for o in objects {
        let group = o.api_version.rsplit_once('/').map_or("", |(g, _)| g);
        if group == crate::api::GROUP {
            continue;
        }
        let gvk = format!("{}/{}", o.api_version, o.kind);
        let ok = served.contains(gvk.as_str())
            || (served.contains(o.api_version.as_str()) && !names_kinds(&o.api_version));
        if !ok {
            missing
                .entry(format!("{} {}", o.api_version, o.kind))
                .or_insert_with(|| (o.kind.clone(), o));
        }
    }
    for (gvk, (kind, o)) in missing {
        let object = format!("{}/{}", o.namespace, o.name);
        let owner = o
            .shard
            .as_ref()
            .map(|shard| format!("{kind} {object} (of PrismShard {}/{shard})", o.namespace));
        let message = match missing_crd(&kind, owner.as_deref().unwrap_or(&object)) {
            Some(m) => m,
            None => format!("the cluster does not serve {gvk}, which {object} needs"),
        };
        problems.push(Diagnostic::new(source, 0, "", message));
    }
    problems
}

/// Makes SIGTERM end the process at once, even when the parent started it with SIGTERM ignored
/// or blocked: Argo CD stops a plugin that runs past its deadline with SIGTERM.
#[cfg(unix)]
pub fn default_sigterm() {
    // SAFETY: resetting a signal to its default action and unblocking it in this thread's mask
    // touch no memory of ours; no handler is installed.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, set.as_ptr(), std::ptr::null_mut());
    }
}

/// Does nothing where there are no signals.
#[cfg(not(unix))]
pub fn default_sigterm() {}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Settings {
        Settings::new("default".into(), "proxy:1".into(), None)
    }

    #[test]
    fn later_sources_win() {
        let mut app = AppEnv {
            app_namespace: Some("dest".into()),
            ..Default::default()
        };
        assert_eq!(settings(base(), &app).unwrap().namespace, "dest");
        app.collect_env([
            ("ARGOCD_ENV_PRISM_NAMESPACE".to_string(), "env".to_string()),
            ("PARAM_NAMESPACE".to_string(), "flat".to_string()),
            ("PARAM_PATHS_0".to_string(), "a".to_string()),
            ("PARAM_PATHS_1".to_string(), "./b/".to_string()),
        ]);
        let s = settings(base(), &app).unwrap();
        assert_eq!(s.namespace, "flat");
        assert_eq!(s.paths, [PathBuf::from("a"), PathBuf::from("b")]);
        // The JSON form is authoritative: PARAM_* is ignored when it is present.
        app.parameters = Some(r#"[{"name":"proxy-image","string":"proxy:2"}]"#.into());
        let s = settings(base(), &app).unwrap();
        assert_eq!(
            (s.namespace.as_str(), s.proxy_image.as_str()),
            ("env", "proxy:2")
        );
        assert_eq!(s.paths, [PathBuf::new()]);
    }

    #[test]
    fn rejects_bad_parameters_without_echoing_values() {
        let with = |json: &str| {
            let app = AppEnv {
                parameters: Some(json.into()),
                ..Default::default()
            };
            settings(base(), &app).unwrap_err()
        };
        assert!(with(r#"[{"name":"namespce","string":"x"}]"#).contains("unknown parameter"));
        let e = with(r#"[{"name":"paths","string":"s3cr3t"}]"#);
        assert!(e.contains("must be a list") && !e.contains("s3cr3t"), "{e}");
        let e = with(r#"{"s3cr3t": 1"#);
        assert!(e.contains("not valid JSON") && !e.contains("s3cr3t"), "{e}");
        assert!(with(r#"[{"name":"templates","string":"../x"}]"#).contains("inside the app"));
        assert!(with(r#"[{"name":"namespace","string":"Bad_NS"}]"#).contains("namespace"));
    }

    #[test]
    fn announcements_follow_the_schema() {
        let app = AppEnv {
            env: [(ENV_PROXY_IMAGE.to_string(), "proxy:env".to_string())].into(),
            ..Default::default()
        };
        let list: Vec<Value> = serde_json::from_str(&announcement(&base(), &app)).unwrap();
        assert_eq!(list.len(), ANNOUNCED.len());
        assert_eq!(list[1]["string"], "proxy:env");
        assert_eq!(list[3]["collectionType"], "array");
    }

    #[test]
    fn cluster_checks() {
        let objects = vec![ObjectId::of(&crate::render::Object::from_value(json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "h", "namespace": "prism"}
        })))];
        assert!(check_cluster(&objects, Some("1.31.0"), Some("v1,autoscaling/v2")).is_ok());
        assert!(check_cluster(&objects, Some("v1.30.4+k3s1"), None).is_ok());
        let e = check_cluster(&objects, Some("1.29.9"), Some("v1,autoscaling/v1"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("too old") && e.contains("autoscaling/v2 HorizontalPodAutoscaler"));
        let kinds = "autoscaling/v2,autoscaling/v2/Scale";
        assert!(check_cluster(&objects, None, Some(kinds)).is_err());
    }

    #[test]
    fn revision_and_path_name_the_files() {
        let app = AppEnv {
            revision: Some("0123456789abcdef0123456789abcdef01234567".into()),
            source_path: Some("apps/prod".into()),
            ..Default::default()
        };
        assert_eq!(shown_prefix(&app), "0123456789ab:apps/prod");
    }
}
