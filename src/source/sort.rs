//! Sorting input files before they are parsed: files of Prism resources, files of other
//! Kubernetes objects (a Namespace, a Secret the namespaces reference, a ConfigMap), and files
//! that hold no Kubernetes object at all (a Helm values file, a CI workflow).
//!
//! A document is a Prism resource when its `apiVersion` is in the `prism.io` group or its
//! `kind` is a Prism kind: a misspelt kind or group alone still counts, so strict parsing
//! reports it. A file holding any Prism resource is parsed strictly, every document of it. A
//! file without one is skipped when it is valid YAML and none of its documents has an
//! `apiVersion` or a `kind`; otherwise it holds other Kubernetes objects, or YAML that cannot
//! be read: refused (parsed strictly, so its problems are reported), skipped or passed through,
//! as [`Others`] says.

use std::sync::Arc;

use serde_json::Value;

use super::Document;
use crate::api;
use crate::error::Diagnostic;

/// What to do with Kubernetes objects that are not Prism resources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Others {
    /// Refuse them (an unknown kind is most likely a misspelt Prism kind): `render`,
    /// `validate`, the Argo CD plugin.
    #[default]
    Refuse,
    /// Leave out files that hold only such objects, and say so: `diff` over a repository.
    Skip,
    /// Check them and pass them through unchanged (`--pass-through`).
    PassThrough,
}

/// An input file left out of a render, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file, named as the inputs name it.
    pub file: String,
    /// The line its first document starts on.
    pub line: usize,
    /// It holds other Kubernetes objects (true) or no Kubernetes object at all (false).
    pub other_objects: bool,
}

/// What to say about the files left out of a render (of `side`, when a diff renders two): a
/// line per reason.
pub fn left_out_notes(side: Option<&str>, skipped: &[Skipped]) -> Vec<String> {
    let side = side.map(|s| format!("{s}: ")).unwrap_or_default();
    let mut notes = Vec::new();
    for (other_objects, why) in [
        (false, "they hold no Kubernetes objects"),
        (
            true,
            "they hold Kubernetes objects that are not Prism resources (--pass-through renders them)",
        ),
    ] {
        let files: Vec<&str> = skipped
            .iter()
            .filter(|s| s.other_objects == other_objects)
            .map(|s| s.file.as_str())
            .collect();
        if !files.is_empty() {
            notes.push(format!(
                "note: {side}left out {} file(s), {why}: {}",
                files.len(),
                files.join(", ")
            ));
        }
    }
    notes
}

/// What one document looks like before it is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    /// A Prism resource, or meant to be one.
    Prism,
    /// A Kubernetes object of another kind (it has an `apiVersion` or a `kind`).
    Other,
    /// Not a Kubernetes object: valid YAML, neither `apiVersion` nor `kind` at its top level.
    NotAnObject,
    /// Not YAML this reader takes (a template with `{{ }}`, UTF-16, binary): whose it is
    /// cannot be told.
    Unreadable,
}

/// The documents of every input file, sorted.
#[derive(Debug, Default)]
pub struct Sorted {
    /// Documents to parse as Prism resources (with the problems of any others among them).
    pub prism: Vec<Document>,
    /// Documents of other Kubernetes objects to pass through.
    pub others: Vec<Document>,
    /// Files left out.
    pub skipped: Vec<Skipped>,
}

impl Sorted {
    /// Adds the documents of one file.
    pub fn add_file(&mut self, file: &str, docs: Vec<Document>, others: Others) {
        if docs.is_empty() {
            return;
        }
        let looks: Vec<Look> = docs.iter().map(look).collect();
        let line = docs[0].line;
        let skip = |other_objects| Skipped {
            file: file.to_string(),
            line,
            other_objects,
        };
        if looks.contains(&Look::Prism) {
            for (doc, look) in docs.into_iter().zip(looks) {
                match (look, others) {
                    (Look::Other, Others::PassThrough) => self.others.push(doc),
                    _ => self.prism.push(doc),
                }
            }
        } else if looks.iter().all(|l| *l == Look::NotAnObject) {
            self.skipped.push(skip(false));
        } else if others == Others::Skip {
            // Over a whole repository: templates and other unreadable files are not Prism's.
            self.skipped.push(skip(looks.contains(&Look::Other)));
        } else {
            // Parsed strictly: what cannot be read, or is no object, is reported.
            for (doc, look) in docs.into_iter().zip(looks) {
                match (look, others) {
                    (Look::Other, Others::PassThrough) => self.others.push(doc),
                    _ => self.prism.push(doc),
                }
            }
        }
    }
}

/// Sorts one document by its top-level `apiVersion` and `kind`, read from the text when they
/// are written as block keys (the usual way, and cheap), else from the parsed document.
fn look(doc: &Document) -> Look {
    let (mut api_version, mut kind) = (None, None);
    for line in doc.text.lines() {
        if let Some(v) = top_level_value(line, "apiVersion") {
            api_version = Some(v.to_string());
        } else if let Some(v) = top_level_value(line, "kind") {
            kind = Some(v.to_string());
        }
    }
    if api_version.is_none() && kind.is_none() {
        let Ok(parsed) = super::fleet::parse_yaml(doc) else {
            return Look::Unreadable;
        };
        let field = |f: &str| {
            parsed
                .get(f)
                .map(|v| v.as_str().unwrap_or_default().to_string())
        };
        api_version = field("apiVersion");
        kind = field("kind");
    }
    classify(api_version.as_deref(), kind.as_deref())
}

fn classify(api_version: Option<&str>, kind: Option<&str>) -> Look {
    let group = api_version.and_then(|v| v.rsplit_once('/')).map(|(g, _)| g);
    let prism_group = group.is_some_and(|g| g == api::GROUP || g.starts_with("prism."));
    let prism_kind =
        kind.is_some_and(|k| api::KINDS.iter().any(|p| p.eq_ignore_ascii_case(k.trim())));
    match (api_version, kind) {
        (None, None) => Look::NotAnObject,
        _ if prism_group || prism_kind => Look::Prism,
        _ => Look::Other,
    }
}

/// The plain value of `key: value` on a line with no indentation, quotes and comment removed.
fn top_level_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let quoted = format!("\"{key}\"");
    let rest = line
        .strip_prefix(key)
        .or_else(|| line.strip_prefix(quoted.as_str()))?;
    let rest = rest.trim_start().strip_prefix(':')?;
    let value = rest.split(" #").next().unwrap_or_default().trim();
    Some(value.trim_matches(|c| c == '"' || c == '\''))
}

/// A Kubernetes object passed through unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct Passed {
    /// The object as written.
    pub value: Value,
    /// Its namespace, the default one when it names none (where Argo CD and `kubectl` put a
    /// namespaced object): what its collisions with rendered objects are checked in.
    pub namespace: String,
}

/// An object passed through: checked to be a Kubernetes object with an identity.
pub fn pass_through(doc: &Arc<Document>, default_namespace: &str) -> Result<Passed, Diagnostic> {
    let value = super::fleet::parse_yaml(doc)?;
    let Some(map) = value.as_object() else {
        return Err(doc.diagnostic(
            "",
            "a document must be a mapping with apiVersion, kind and metadata",
        ));
    };
    for field in ["apiVersion", "kind"] {
        match map.get(field) {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            Some(_) => return Err(doc.diagnostic(field, "must be a non-empty string")),
            None => return Err(doc.diagnostic(field, "required field is missing")),
        }
    }
    let namespace = match map.get("metadata").and_then(|m| m.get("namespace")) {
        Some(Value::String(ns)) if !ns.is_empty() => ns.clone(),
        None | Some(Value::Null) => default_namespace.to_string(),
        Some(_) => {
            return Err(doc.diagnostic("metadata.namespace", "must be a non-empty string"));
        }
    };
    match map.get("metadata").and_then(|m| m.get("name")) {
        Some(Value::String(s)) if !s.is_empty() => {}
        Some(_) => return Err(doc.diagnostic("metadata.name", "must be a non-empty string")),
        None => {
            return Err(doc.diagnostic(
                "metadata.name",
                "required field is missing (an object passed through needs a name)",
            ));
        }
    }
    Ok(Passed { value, namespace })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(text: &str) -> Vec<Document> {
        super::super::split_documents("f.yaml", text)
    }

    #[test]
    fn documents_are_sorted_by_group_and_kind() {
        let look_of = |t: &str| look(&docs(t)[0]);
        assert_eq!(
            look_of("apiVersion: prism.io/v1beta1\nkind: PrismShard\n"),
            Look::Prism
        );
        assert_eq!(
            look_of("apiVersion: prism.io/v1\nkind: PrismShrad\n"),
            Look::Prism
        );
        assert_eq!(look_of("apiVersion: v1\nkind: PrismShard\n"), Look::Prism);
        assert_eq!(look_of("kind: prismplugin\n"), Look::Prism);
        assert_eq!(
            look_of("apiVersion: v1\nkind: ConfigMap # a map\n"),
            Look::Other
        );
        assert_eq!(look_of("\"kind\": 'Secret'\n"), Look::Other);
        assert_eq!(look_of("{apiVersion: v1, kind: ConfigMap}\n"), Look::Other);
        assert_eq!(
            look_of("{apiVersion: prism.io/v1beta1, kind: PrismShard}\n"),
            Look::Prism
        );
        assert_eq!(
            look_of("replicas: 3\nimage:\n  kind: x\n"),
            Look::NotAnObject
        );
        assert_eq!(look_of("- a\n- b\n"), Look::NotAnObject);
        assert_eq!(look_of("rules: {{ .Values.x }}: [\n"), Look::Unreadable);
        assert_eq!(look_of("a\0p\0i\0\n"), Look::Unreadable);
    }

    #[test]
    fn files_are_parsed_skipped_or_passed_through_as_asked() {
        let prism = "apiVersion: prism.io/v1beta1\nkind: PrismPlugin\n---\napiVersion: v1\nkind: ConfigMap\n";
        let other = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";
        let values = "replicaCount: 2\n";
        let template = "name: {{ .Release.Name }}: x\n";
        for (others, prism_docs, passed, skipped) in [
            (Others::Refuse, 4, 0, vec![("values.yaml", false)]),
            (
                Others::Skip,
                2,
                0,
                vec![
                    ("other.yaml", true),
                    ("values.yaml", false),
                    ("template.yaml", false),
                ],
            ),
            (Others::PassThrough, 2, 2, vec![("values.yaml", false)]),
        ] {
            let mut sorted = Sorted::default();
            for (file, text) in [
                ("prism.yaml", prism),
                ("other.yaml", other),
                ("values.yaml", values),
                ("template.yaml", template),
            ] {
                sorted.add_file(file, super::super::split_documents(file, text), others);
            }
            assert_eq!(sorted.prism.len(), prism_docs, "{others:?}");
            assert_eq!(sorted.others.len(), passed, "{others:?}");
            let got: Vec<(&str, bool)> = sorted
                .skipped
                .iter()
                .map(|s| (s.file.as_str(), s.other_objects))
                .collect();
            assert_eq!(got, skipped, "{others:?}");
        }
    }

    #[test]
    fn an_object_passed_through_needs_an_identity() {
        let check = |t: &str| pass_through(&Arc::new(docs(t).remove(0)), "dflt");
        let ok = check("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n");
        assert_eq!(ok.unwrap().namespace, "dflt");
        let ok = check("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: x}\n");
        assert_eq!(ok.unwrap().namespace, "x");
        let e = check("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n").unwrap_err();
        assert_eq!((e.path.as_str(), e.line), ("metadata.name", 3));
        let e = check("kind: ConfigMap\nmetadata: {name: c}\n").unwrap_err();
        assert_eq!(e.path, "apiVersion");
    }
}
