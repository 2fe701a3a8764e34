//! `prism-render convert`: Prism resources rewritten at another API version, in place in their
//! files. Every Prism document is first checked as `validate` checks it (YAML, schema and CEL
//! rules of its own version, metadata, duplicates), then converted with
//! [`prism_api::convert`]; other documents stay as they are. Fleet-wide checks (plugins,
//! placement) are `validate`'s: a file converts on its own.
//!
//! A document whose conversion only changes its `apiVersion` is edited on that one line, so its
//! comments and layout stay; one whose fields move (a v1alpha1 `replicas` of an autoscaled
//! shard into the conversion annotation, say) is written anew. Every file written is read back
//! and must hold exactly the converted documents.

use serde_json::Value;

use crate::api;
use crate::error::Diagnostics;
use crate::output::yaml;
use crate::source::{Document, SourceFile, locate, parse_fleet, split_documents};

/// One input file, converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertedFile {
    /// The file's name, as read.
    pub name: String,
    /// The whole file, converted: what `--out-dir` writes.
    pub text: String,
    /// Its documents, converted, in order: what the YAML stream holds.
    pub documents: Vec<String>,
}

/// The `apiVersion` that `version` names: `v1beta1`, `v1alpha1`, or either in full.
pub fn api_version(version: &str) -> Option<&'static str> {
    api::API_VERSIONS
        .into_iter()
        .find(|v| *v == version || v.rsplit('/').next() == Some(version))
}

/// Converts the Prism documents of `files` to `to` (`prism.io/v1beta1` or
/// `prism.io/v1alpha1`); `namespace` is the namespace of objects without one, as in
/// `validate`. Nothing is returned unless every Prism document is valid.
pub fn convert_files(
    files: &[SourceFile],
    to: &str,
    namespace: &str,
) -> Result<Vec<ConvertedFile>, Diagnostics> {
    let split: Vec<Vec<(Document, Option<Value>)>> = files
        .iter()
        .map(|(name, text)| {
            split_documents(name, text)
                .into_iter()
                .map(|doc| {
                    let value = serde_yaml::from_str::<Value>(&doc.text).ok();
                    (doc, value)
                })
                .collect()
        })
        .collect();
    let prism: Vec<Document> = split
        .iter()
        .flatten()
        .filter(|(_, value)| is_prism(value.as_ref()))
        .map(|(doc, _)| doc.clone())
        .collect();
    parse_fleet(prism, namespace)?;
    let mut problems = Diagnostics::default();
    let mut out = Vec::with_capacity(files.len());
    for ((name, text), docs) in files.iter().zip(split) {
        let mut converted = Vec::with_capacity(docs.len());
        for (doc, value) in docs {
            let value = value.expect("every document parsed: validation passed");
            if !is_prism(Some(&value)) {
                converted.push((doc, None, value));
                continue;
            }
            match api::convert(&value, to) {
                Ok(new) if new == value => converted.push((doc, None, value)),
                Ok(new) => {
                    let edited = edit(&doc, &value, &new);
                    converted.push((doc, Some(edited), new));
                }
                Err(e) => problems.push(doc.diagnostic("", e.to_string())),
            }
        }
        out.push(assemble(name, text, converted));
    }
    problems.into_result(out)
}

/// Whether a document is Prism's to convert: a mapping of a Prism kind or of the `prism.io`
/// group, or one that is no mapping or no YAML at all (validation says why). Every other
/// document is some other object, and stays as it is.
fn is_prism(value: Option<&Value>) -> bool {
    let Some(value) = value.filter(|v| v.is_object()) else {
        return true;
    };
    let kind = value.get("kind").and_then(Value::as_str);
    let group = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .and_then(|v| v.rsplit_once('/'))
        .map(|(group, _)| group);
    kind.is_some_and(|k| api::KINDS.contains(&k)) || group == Some(api::GROUP)
}

/// The converted text of `doc` (whose value was `old`, and is `new`): its `apiVersion` line
/// edited when nothing else changed and the edit reads back as `new`; else `new` written anew.
fn edit(doc: &Document, old: &Value, new: &Value) -> String {
    let mut relabeled = old.clone();
    relabeled["apiVersion"] = new["apiVersion"].clone();
    if relabeled == *new
        && let (Some(from), Some(to)) = (old["apiVersion"].as_str(), new["apiVersion"].as_str())
    {
        let at = locate::line_of(&doc.text, "apiVersion");
        let mut lines: Vec<String> = doc.text.split_inclusive('\n').map(String::from).collect();
        if let Some(line) = lines.get_mut(at.wrapping_sub(1))
            && line.matches(from).count() == 1
        {
            *line = line.replacen(from, to, 1);
            let text = lines.concat();
            if serde_yaml::from_str::<Value>(&text).ok().as_ref() == Some(new) {
                return text;
            }
        }
    }
    yaml::to_string(new)
}

/// A file from its documents, each with its new text (if it changed) and value: the file's
/// own text with each changed document's text replaced, when that reads back as the new
/// values; else the documents as a stream.
fn assemble(name: &str, text: &str, docs: Vec<(Document, Option<String>, Value)>) -> ConvertedFile {
    let documents: Vec<String> = docs
        .iter()
        .map(|(doc, new, _)| ended(new.as_deref().unwrap_or(&doc.text)))
        .collect();
    let values: Vec<&Value> = docs.iter().map(|(_, _, v)| v).collect();
    let spliced = splice(text, &docs).filter(|t| reads_as(name, t, &values));
    let text = spliced.unwrap_or_else(|| stream(&documents));
    debug_assert!(reads_as(name, &text, &values), "{name} converts faithfully");
    ConvertedFile {
        name: name.to_string(),
        text,
        documents,
    }
}

/// `text` with the text of every changed document replaced; `None` when a document's text is
/// not where its line says in `text` (a byte-order mark, content on a `---` line).
fn splice(text: &str, docs: &[(Document, Option<String>, Value)]) -> Option<String> {
    let starts: Vec<usize> = std::iter::once(0)
        .chain(text.split_inclusive('\n').scan(0, |at, line| {
            *at += line.len();
            Some(*at)
        }))
        .collect();
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    for (doc, new, _) in docs {
        let Some(new) = new else { continue };
        let start = *starts.get(doc.line - 1)?;
        if start < done || !text[start..].starts_with(doc.text.as_ref()) {
            return None;
        }
        out.push_str(&text[done..start]);
        out.push_str(&ended(new));
        done = start + doc.text.len();
    }
    out.push_str(&text[done..]);
    Some(out)
}

/// Whether `text` holds exactly the documents `values`.
fn reads_as(name: &str, text: &str, values: &[&Value]) -> bool {
    let docs = split_documents(name, text);
    docs.len() == values.len()
        && docs.iter().zip(values).all(|(doc, value)| {
            serde_yaml::from_str::<Value>(&doc.text).ok().as_ref() == Some(*value)
        })
}

/// `text` ending with a line break.
fn ended(text: &str) -> String {
    if text.is_empty() || text.ends_with('\n') {
        text.to_string()
    } else {
        format!("{text}\n")
    }
}

/// Documents as one YAML stream: `---` before each, or `...` before one that starts with
/// directives (which carry their own `---`).
pub fn stream(documents: &[String]) -> String {
    let mut out = String::new();
    for (i, doc) in documents.iter().enumerate() {
        match (doc.starts_with('%'), i) {
            (true, 0) => {}
            (true, _) => out.push_str("...\n"),
            (false, _) => out.push_str("---\n"),
        }
        out.push_str(doc);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALPHA_SHARD: &str = "# the shard\napiVersion: prism.io/v1alpha1  # old\nkind: PrismShard\nmetadata: {name: s}\nspec:\n  product: p # the product\n  replicas: 2\n";

    fn convert(text: &str, to: &str) -> Result<ConvertedFile, Diagnostics> {
        convert_files(&[("f.yaml".into(), text.into())], to, "default").map(|mut f| f.remove(0))
    }

    #[test]
    fn versions_by_short_or_full_name() {
        assert_eq!(api_version("v1beta1"), Some("prism.io/v1beta1"));
        assert_eq!(api_version("prism.io/v1alpha1"), Some("prism.io/v1alpha1"));
        assert_eq!(api_version("v2"), None);
    }

    #[test]
    fn an_api_version_change_keeps_comments_and_layout() {
        let out = convert(ALPHA_SHARD, api::API_VERSION).unwrap();
        assert_eq!(
            out.text,
            ALPHA_SHARD.replace("prism.io/v1alpha1", "prism.io/v1beta1")
        );
        assert_eq!(out.documents, std::slice::from_ref(&out.text));
    }

    #[test]
    fn other_documents_and_comment_only_parts_stay() {
        let text = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\n---\n# nothing here\n---\n{ALPHA_SHARD}...\n"
        );
        let out = convert(&text, api::API_VERSION).unwrap();
        assert_eq!(
            out.text,
            text.replace("prism.io/v1alpha1", "prism.io/v1beta1")
        );
        assert_eq!(out.documents.len(), 2);
        assert_eq!(
            out.documents[0],
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
        );
    }

    #[test]
    fn moved_fields_write_the_document_anew() {
        let text = "apiVersion: prism.io/v1alpha1\nkind: PrismShard\nmetadata: {name: s}\nspec:\n  product: p\n  replicas: 3\n  autoscaling: {enabled: true, minReplicas: 2, maxReplicas: 5, targetRPS: 10}\n---\napiVersion: prism.io/v1alpha1\nkind: PrismPlugin # kept\nmetadata: {name: p}\nspec: {version: 1.0.0, source: {registry: r, image: i}, deployment: {type: sidecar}}\n";
        let out = convert(text, api::API_VERSION).unwrap();
        let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&out.text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        assert_eq!(
            docs[0]["metadata"]["annotations"][api::CONVERSION_ANNOTATION],
            r#"{"spec":{"replicas":3}}"#
        );
        assert!(docs[0]["spec"].get("replicas").is_none());
        assert!(
            out.text.contains("kind: PrismPlugin # kept\n"),
            "{}",
            out.text
        );
        // And back: the same objects as before.
        let back = convert(&out.text, api::v1alpha1::API_VERSION).unwrap();
        let again: Vec<Value> = serde_yaml::Deserializer::from_str(&back.text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        let before: Vec<Value> = serde_yaml::Deserializer::from_str(text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        assert_eq!(again, before);
    }

    #[test]
    fn documents_at_the_version_stay_as_written() {
        let text = ALPHA_SHARD.replace("prism.io/v1alpha1", "prism.io/v1beta1");
        let out = convert(&text, api::API_VERSION).unwrap();
        assert_eq!(out.text, text);
    }

    #[test]
    fn invalid_documents_are_refused_as_validate_refuses_them() {
        let text = ALPHA_SHARD.replace("replicas: 2", "replicas: 0");
        let err = convert(&text, api::API_VERSION).unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.yaml:7: spec.replicas: must be at least 1, got 0"
        );
    }

    #[test]
    fn a_document_on_its_marker_line_is_still_converted() {
        let text = "--- {apiVersion: prism.io/v1alpha1, kind: PrismPlugin, metadata: {name: p}, spec: {version: 1.0.0, source: {registry: r, image: i}, deployment: {type: sidecar}}}\n";
        let out = convert(text, api::API_VERSION).unwrap();
        assert!(out.text.contains("prism.io/v1beta1"), "{}", out.text);
        assert!(!out.text.contains("v1alpha1"), "{}", out.text);
    }

    #[test]
    fn streams_separate_documents() {
        let docs = ["a: 1\n".to_string(), "%YAML 1.2\n---\nb: 2\n".to_string()];
        assert_eq!(stream(&docs), "---\na: 1\n...\n%YAML 1.2\n---\nb: 2\n");
    }
}
