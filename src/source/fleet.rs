//! Strict parsing of documents into the three Prism kinds, with every problem located.

use std::collections::HashMap;
use std::sync::Arc;

use kube::ResourceExt;
use rayon::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::schema::{self, Schemas, quote, shown, unknown_field_message};
use super::{Document, locate, rules};
use crate::api::{self, MAX_UNIT_NAME, PrismNamespace, PrismPlugin, PrismShard};
use crate::error::{Diagnostic, Diagnostics};

/// A parsed object and the document it came from.
#[derive(Debug, Clone)]
pub struct Located<T> {
    /// The object, with `metadata.namespace` filled in.
    pub value: T,
    /// Where it was written.
    pub origin: Arc<Document>,
}

impl<T> Located<T> {
    /// A diagnostic for field `path` of this object.
    pub fn diagnostic(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        self.origin.diagnostic(path, message)
    }

    /// Places `problem`, found at a field of this object, at the file line of that field.
    pub fn locate(&self, problem: Diagnostic) -> Diagnostic {
        self.origin.locate(problem)
    }

    /// `file:line` of the object's document.
    pub fn place(&self) -> String {
        format!("{}:{}", self.origin.file, self.origin.line)
    }
}

/// Every Prism object of one render, each list sorted by namespace and name; the other
/// Kubernetes objects passed through with them, and the input files left out.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    /// PrismShards.
    pub shards: Vec<Located<PrismShard>>,
    /// PrismPlugins.
    pub plugins: Vec<Located<PrismPlugin>>,
    /// PrismNamespaces.
    pub namespaces: Vec<Located<PrismNamespace>>,
    /// Other Kubernetes objects, passed through unchanged (`--pass-through`), in input order.
    pub others: Vec<Located<super::sort::Passed>>,
    /// Input files left out: they hold no Kubernetes object, or (when diffing) only
    /// objects that are not Prism resources.
    pub skipped: Vec<super::sort::Skipped>,
}

/// `metadata` fields an input may carry.
const METADATA_FIELDS: &[&str] = &[
    "name",
    "namespace",
    "labels",
    "annotations",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "finalizers",
    "ownerReferences",
    "managedFields",
    "generateName",
    "selfLink",
];

/// Parses every document into the fleet; objects without a namespace get `default_namespace`.
/// All problems of all documents are reported together, in document order. Large inputs are
/// parsed on every core.
pub fn parse_fleet(docs: Vec<Document>, default_namespace: &str) -> Result<Fleet, Diagnostics> {
    let schemas = Schemas::new();
    let parse = |doc: Document| parse_one(Arc::new(doc), &schemas, default_namespace);
    let parsed: Vec<Parsed> = if docs.len() < PARALLEL_DOCUMENTS {
        docs.into_iter().map(parse).collect()
    } else {
        docs.into_par_iter().map(parse).collect()
    };
    let count = |k: &str| parsed.iter().filter(|p| p.kind() == Some(k)).count();
    let mut fleet = Fleet {
        shards: Vec::with_capacity(count("PrismShard")),
        plugins: Vec::with_capacity(count("PrismPlugin")),
        namespaces: Vec::with_capacity(count("PrismNamespace")),
        ..Fleet::default()
    };
    let mut problems = Diagnostics::default();
    let mut seen: HashMap<(String, String, String), String> = HashMap::new();
    for p in parsed {
        problems.0.extend(p.problems);
        let Some((kind, ns, name)) = p.identity else {
            continue;
        };
        let doc = p.origin;
        let here = format!("{}:{}", doc.file, doc.line);
        if let Some(first) = seen.insert((kind.clone(), ns.clone(), name.clone()), here) {
            problems.push(doc.diagnostic(
                "metadata.name",
                format!("duplicate {kind} {ns}/{name} (first defined at {first})"),
            ));
            continue;
        }
        match p.typed {
            None => {}
            Some(Err(d)) => problems.push(d),
            Some(Ok(Typed::Shard(v))) => fleet.shards.push(Located {
                value: *v,
                origin: doc,
            }),
            Some(Ok(Typed::Plugin(v))) => fleet.plugins.push(Located {
                value: *v,
                origin: doc,
            }),
            Some(Ok(Typed::Namespace(v))) => fleet.namespaces.push(Located {
                value: *v,
                origin: doc,
            }),
        }
    }
    fleet.shards.sort_unstable_by(by_key);
    fleet.plugins.sort_unstable_by(by_key);
    fleet.namespaces.sort_unstable_by(by_key);
    problems.into_result(fleet)
}

/// Below this many documents parsing stays on one thread. A document takes 50–100 µs to check,
/// starting the worker threads a fraction of a millisecond: a 10-shard fleet (116 documents)
/// already starts faster on two cores.
const PARALLEL_DOCUMENTS: usize = 32;

/// One document parsed on its own, before it meets the others.
pub(super) struct Parsed {
    origin: Arc<Document>,
    /// Kind, namespace and name, when the document got that far.
    identity: Option<(String, String, String)>,
    /// Its problems.
    pub(super) problems: Vec<Diagnostic>,
    /// The typed object, when it has no problems so far.
    pub(super) typed: Option<Result<Typed, Diagnostic>>,
}

impl Parsed {
    fn kind(&self) -> Option<&str> {
        match &self.typed {
            Some(Ok(_)) => self.identity.as_ref().map(|(k, _, _)| k.as_str()),
            _ => None,
        }
    }
}

/// A typed Prism object (boxed: they are large, and move through vectors).
pub enum Typed {
    /// A PrismShard.
    Shard(Box<PrismShard>),
    /// A PrismPlugin.
    Plugin(Box<PrismPlugin>),
    /// A PrismNamespace.
    Namespace(Box<PrismNamespace>),
}

pub(super) fn parse_one(doc: Arc<Document>, schemas: &Schemas, default_namespace: &str) -> Parsed {
    let mut problems = Diagnostics::default();
    let parsed = parse_document(&doc, schemas, default_namespace, &mut problems);
    let mut out = Parsed {
        origin: doc,
        identity: None,
        problems: problems.0,
        typed: None,
    };
    let Some((kind, value)) = parsed else {
        return out;
    };
    let field = |f: &str| {
        value["metadata"][f]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let identity = (kind, field("namespace"), field("name"));
    if out.problems.is_empty() {
        let doc = &out.origin;
        // The renderer works on v1beta1: a v1alpha1 document, valid as such, is converted.
        let value = match api::convert(&value, api::API_VERSION) {
            Ok(value) => value,
            Err(e) => {
                out.typed = Some(Err(doc.diagnostic("", e.to_string())));
                out.identity = Some(identity);
                return out;
            }
        };
        out.typed = Some(match identity.0.as_str() {
            "PrismShard" => typed(doc, value).map(Typed::Shard),
            "PrismPlugin" => typed(doc, value).map(Typed::Plugin),
            _ => typed(doc, value).map(Typed::Namespace),
        });
    }
    out.identity = Some(identity);
    out
}

fn by_key<K: ResourceExt>(a: &Located<K>, b: &Located<K>) -> std::cmp::Ordering {
    let (a, b) = (a.value.meta(), b.value.meta());
    (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name))
}

fn typed<K: DeserializeOwned>(doc: &Document, value: Value) -> Result<Box<K>, Diagnostic> {
    serde_path_to_error::deserialize::<_, K>(value)
        .map(Box::new)
        .map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            doc.diagnostic(&path, e.into_inner().to_string())
        })
}

/// Parses and validates one document; returns its kind and JSON form when it is usable.
/// A document's YAML, after the checks of its shape (nesting, aliases, tags …); a problem is
/// placed at its line in the file.
pub(super) fn parse_yaml(doc: &Document) -> Result<Value, Diagnostic> {
    if let Err(p) = locate::check_shape(&doc.text, doc.line) {
        return Err(p.in_file(doc.file.as_ref(), doc.line));
    }
    serde_yaml::from_str(&doc.text).map_err(|e| {
        // The parser may point just past the end of the text; keep to its last line (as it
        // counts lines: a lone CR, NEL, LS and PS end one too).
        let breaks = ['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'];
        let text = doc.text.replace("\r\n", "\n");
        let ends_open = !text.ends_with(breaks);
        let last = (text.matches(breaks).count() + usize::from(ends_open)).max(1);
        let at = e.location().map_or(1, |l| l.line()).clamp(1, last);
        Diagnostic::new(
            doc.file.as_ref(),
            doc.line + at - 1,
            "",
            yaml_message(&e, doc.line, doc.text.lines().nth(at - 1)),
        )
    })
}

fn parse_document(
    doc: &Document,
    schemas: &Schemas,
    default_namespace: &str,
    problems: &mut Diagnostics,
) -> Option<(String, Value)> {
    let mut value = match parse_yaml(doc) {
        Ok(v) => v,
        Err(p) => {
            problems.push(p);
            return None;
        }
    };
    let Some(map) = value.as_object_mut() else {
        problems.push(doc.diagnostic(
            "",
            format!(
                "a document must be a mapping with apiVersion, kind and metadata, got {}",
                schema::type_name(&value)
            ),
        ));
        return None;
    };
    let kind = match map.get("kind") {
        Some(Value::String(k)) if schemas.knows(k) => k.clone(),
        Some(Value::String(k)) => {
            // A kind that is not meant to be Prism's may be meant to pass through.
            let prism_group = map
                .get("apiVersion")
                .and_then(Value::as_str)
                .is_some_and(|v| v.starts_with(&format!("{}/", api::GROUP)));
            let hint = match prism_group || k.to_ascii_lowercase().starts_with("prism") {
                true => "",
                false => {
                    " (other Kubernetes objects pass through unchanged with --pass-through, or the plugin parameter pass-through)"
                }
            };
            problems.push(doc.diagnostic(
                "kind",
                format!(
                    "unknown kind {}: expected PrismNamespace, PrismPlugin or PrismShard{hint}",
                    quote(k)
                ),
            ));
            return None;
        }
        Some(_) => {
            problems.push(doc.diagnostic("kind", "must be a string"));
            return None;
        }
        None => {
            problems.push(doc.diagnostic("kind", "required field is missing"));
            return None;
        }
    };
    let version = match map.get("apiVersion") {
        Some(Value::String(v)) if api::API_VERSIONS.contains(&v.as_str()) => {
            v.rsplit('/').next().unwrap_or_default().to_string()
        }
        Some(v) => {
            problems.push(doc.diagnostic(
                "apiVersion",
                format!(
                    "unsupported apiVersion {} for {kind}: expected {}",
                    shown(v),
                    expected_api_version(v)
                ),
            ));
            return None;
        }
        None => {
            problems.push(doc.diagnostic("apiVersion", "required field is missing"));
            return None;
        }
    };
    let max_name = if kind == "PrismNamespace" {
        63
    } else {
        MAX_UNIT_NAME
    };
    check_metadata(
        doc,
        map.get_mut("metadata"),
        max_name,
        default_namespace,
        problems,
    );
    for e in schemas.validate(&kind, &version, &value) {
        problems.push(doc.locate(e));
    }
    for (path, quantity) in rules::quantities(&kind, &value) {
        if let Some(why) = rules::quantity_problem(quantity) {
            problems.push(doc.diagnostic(&path, why));
        }
    }
    if let Some(annotations) = value["spec"]["service"]["annotations"].as_object()
        && kind == "PrismShard"
        && annotations.values().all(Value::is_string)
    {
        let path = "spec.service.annotations";
        for (key, why) in rules::string_map_problems(annotations, false) {
            let at = key.map_or(path.to_string(), |k| format!("{path}.{k}"));
            problems.push(doc.diagnostic(&at, why));
        }
    }
    Some((kind, value))
}

/// What to write instead of the apiVersion `given`: the Prism group at the version it names,
/// when that is one; else the versions there are, newest first.
fn expected_api_version(given: &Value) -> String {
    let version = given
        .as_str()
        .and_then(|v| v.rsplit_once('/'))
        .map(|(_, version)| version);
    match api::API_VERSIONS
        .iter()
        .find(|v| v.rsplit('/').next() == version)
    {
        Some(same_version) => same_version.to_string(),
        None => format!("{} or {}", api::API_VERSION, api::v1alpha1::API_VERSION),
    }
}

fn check_metadata(
    doc: &Document,
    metadata: Option<&mut Value>,
    max_name: usize,
    default_namespace: &str,
    problems: &mut Diagnostics,
) {
    let Some(Value::Object(meta)) = metadata else {
        problems.push(doc.diagnostic(
            "metadata",
            "required field is missing (metadata.name is needed)",
        ));
        return;
    };
    for key in meta.keys() {
        if !METADATA_FIELDS.contains(&key.as_str()) {
            problems.push(doc.diagnostic(
                &format!("metadata.{key}"),
                unknown_field_message(key, METADATA_FIELDS),
            ));
        }
    }
    match meta.get("name") {
        Some(Value::String(name)) => {
            if let Some(why) = dns_label_problem(name, max_name) {
                problems.push(doc.diagnostic("metadata.name", why));
            }
        }
        Some(_) => problems.push(doc.diagnostic("metadata.name", "must be a string")),
        None => problems.push(doc.diagnostic("metadata.name", "required field is missing")),
    }
    match meta.get("namespace") {
        Some(Value::String(ns)) => {
            if let Some(why) = dns_label_problem(ns, 63) {
                problems.push(doc.diagnostic("metadata.namespace", why));
            }
        }
        Some(_) => problems.push(doc.diagnostic("metadata.namespace", "must be a string")),
        None => {
            if let Some(why) = dns_label_problem(default_namespace, 63) {
                problems.push(doc.diagnostic(
                    "metadata",
                    format!("no metadata.namespace, and the default namespace is not valid: {why}"),
                ));
            }
            meta.insert("namespace".into(), Value::String(default_namespace.into()));
        }
    }
    for field in ["labels", "annotations"] {
        match meta.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    if !v.is_string() {
                        problems.push(doc.diagnostic(
                            &format!("metadata.{field}.{k}"),
                            "values must be strings (quote numbers and booleans)",
                        ));
                    }
                }
                if m.values().all(Value::is_string) {
                    for (key, why) in rules::string_map_problems(m, field == "labels") {
                        let at = key.map_or(format!("metadata.{field}"), |k| {
                            format!("metadata.{field}.{k}")
                        });
                        problems.push(doc.diagnostic(&at, why));
                    }
                }
            }
            Some(_) => problems
                .push(doc.diagnostic(&format!("metadata.{field}"), "must be a map of strings")),
        }
    }
}

/// Why `name` is not a DNS-1123 label of at most `max` characters, if it is not.
pub fn dns_label_problem(name: &str, max: usize) -> Option<String> {
    let valid_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ends_ok = name
        .bytes()
        .next()
        .zip(name.bytes().last())
        .is_some_and(|(a, z)| a != b'-' && z != b'-');
    if name.is_empty() {
        Some("must not be empty".into())
    } else if name.len() > max {
        Some(format!(
            "{} is {} characters; at most {max} are allowed",
            quote(name),
            name.len()
        ))
    } else if !valid_chars || !ends_ok {
        Some(format!(
            "{} is not a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit",
            quote(name)
        ))
    } else {
        None
    }
}

/// serde_yaml's message without its positions (the diagnostic carries the line; a second
/// position, where the construct being scanned started, is kept as a file line: the document
/// starts at file line `start`), with a hint when `line`, the line the message points at, is
/// indented with a tab.
fn yaml_message(e: &serde_yaml::Error, start: usize, line: Option<&str>) -> String {
    static POSITION: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let position = POSITION
        .get_or_init(|| regex::Regex::new(r" at line (\d+) column \d+").expect("valid regex"));
    let text = e.to_string();
    let mut out = String::new();
    let mut rest = 0;
    for (i, found) in position.captures_iter(&text).enumerate() {
        let whole = found.get(0).expect("a match");
        out.push_str(&text[rest..whole.start()]);
        rest = whole.end();
        // The first position is the diagnostic's line; later ones are context.
        if i > 0 {
            let relative: usize = found[1].parse().unwrap_or(1);
            out.push_str(&format!(" started on line {}", start + relative.max(1) - 1));
        }
    }
    out.push_str(&text[rest..]);
    let tab =
        !out.contains("tab") && line.is_some_and(|l| l.trim_start_matches(' ').starts_with('\t'));
    let hint = if tab {
        " (tabs must not be used for indentation)"
    } else {
        ""
    };
    format!("invalid YAML: {out}{hint}")
}
