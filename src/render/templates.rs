//! The minijinja templates: embedded at build time, optionally replaced from a directory, and
//! the [`Renderer`] built from them.

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, UndefinedBehavior};

use super::{RenderOptions, Renderer};
use crate::error::Diagnostics;
use crate::source::tree::{self, DiskTree, FileTree};

/// Names of every template, each producing one object.
pub const TEMPLATE_NAMES: &[&str] = &[
    "_macros.yaml",
    "shard-configmap.yaml",
    "shard-headless-service.yaml",
    "shard-service.yaml",
    "shard-statefulset.yaml",
    "shard-pdb.yaml",
    "shard-hpa.yaml",
    "shard-scaledobject.yaml",
    "shard-podmonitor.yaml",
    "shard-ingress.yaml",
    "shard-grpcroute.yaml",
    "shard-networkpolicy.yaml",
    "plugin-deployment.yaml",
    "plugin-service.yaml",
    "plugin-pdb.yaml",
    "plugin-networkpolicy.yaml",
];

/// Template sources by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Templates(pub BTreeMap<String, String>);

impl Templates {
    /// The templates built into the binary from `templates/`.
    pub fn embedded() -> Self {
        let pairs = [
            ("_macros.yaml", include_str!("../../templates/_macros.yaml")),
            (
                "shard-configmap.yaml",
                include_str!("../../templates/shard-configmap.yaml"),
            ),
            (
                "shard-headless-service.yaml",
                include_str!("../../templates/shard-headless-service.yaml"),
            ),
            (
                "shard-service.yaml",
                include_str!("../../templates/shard-service.yaml"),
            ),
            (
                "shard-statefulset.yaml",
                include_str!("../../templates/shard-statefulset.yaml"),
            ),
            (
                "shard-pdb.yaml",
                include_str!("../../templates/shard-pdb.yaml"),
            ),
            (
                "shard-hpa.yaml",
                include_str!("../../templates/shard-hpa.yaml"),
            ),
            (
                "shard-scaledobject.yaml",
                include_str!("../../templates/shard-scaledobject.yaml"),
            ),
            (
                "shard-podmonitor.yaml",
                include_str!("../../templates/shard-podmonitor.yaml"),
            ),
            (
                "shard-ingress.yaml",
                include_str!("../../templates/shard-ingress.yaml"),
            ),
            (
                "shard-grpcroute.yaml",
                include_str!("../../templates/shard-grpcroute.yaml"),
            ),
            (
                "shard-networkpolicy.yaml",
                include_str!("../../templates/shard-networkpolicy.yaml"),
            ),
            (
                "plugin-networkpolicy.yaml",
                include_str!("../../templates/plugin-networkpolicy.yaml"),
            ),
            (
                "plugin-deployment.yaml",
                include_str!("../../templates/plugin-deployment.yaml"),
            ),
            (
                "plugin-service.yaml",
                include_str!("../../templates/plugin-service.yaml"),
            ),
            (
                "plugin-pdb.yaml",
                include_str!("../../templates/plugin-pdb.yaml"),
            ),
        ];
        Self(
            pairs
                .into_iter()
                .map(|(n, s)| (n.to_string(), s.to_string()))
                .collect(),
        )
    }

    /// The embedded templates with those in `overrides` replacing them by name.
    /// Unknown names are rejected so a misspelt override file cannot be silently ignored.
    pub fn with_overrides(overrides: BTreeMap<String, String>) -> Result<Self, String> {
        let mut templates = Self::embedded();
        for (name, source) in overrides {
            if !templates.0.contains_key(&name) {
                return Err(format!(
                    "unknown template {name:?}; templates are: {}",
                    TEMPLATE_NAMES.join(", ")
                ));
            }
            templates.0.insert(name, source);
        }
        Ok(templates)
    }

    /// A strict environment: undefined variables are errors, YAML is never HTML-escaped, and
    /// `tojson` output is safe inside YAML too (see [`tojson`]).
    pub(crate) fn environment(&self) -> Result<Environment<'static>, minijinja::Error> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.add_filter("tojson", tojson);
        for (name, source) in &self.0 {
            env.add_template_owned(name.clone(), source.clone())?;
        }
        Ok(env)
    }
}

/// Whether YAML reads `c` differently from JSON when it appears raw in a double-quoted string:
/// DEL and the C1 controls are not allowed there, and YAML 1.1 parsers (serde_yaml's included)
/// take NEL, LINE SEPARATOR and PARAGRAPH SEPARATOR for line breaks and fold them into spaces.
fn unsafe_in_yaml(c: char) -> bool {
    matches!(
        c,
        '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
    )
}

/// minijinja's `tojson`, with the characters JSON leaves raw but YAML would change or refuse
/// written as `\uXXXX` escapes (valid in both), so every value reaches the object unchanged.
fn tojson(value: &Value, indent: Option<Value>, args: Kwargs) -> Result<Value, minijinja::Error> {
    let json = minijinja::filters::tojson(value, indent, args)?;
    let Some(text) = json.as_str().filter(|t| t.contains(unsafe_in_yaml)) else {
        return Ok(json);
    };
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_in_yaml(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Ok(Value::from_safe_string(out))
}

/// A renderer with the embedded templates, or those of `dir` (a path as given on the command
/// line) replacing them by file name.
pub fn renderer(dir: Option<&Path>, options: RenderOptions) -> Result<Renderer, Diagnostics> {
    let tree = DiskTree::as_given();
    tree_renderer(dir.map(|dir| (&tree as &dyn FileTree, dir)), options)
}

/// A renderer with the embedded templates, or those of directory `dir` of `tree` replacing
/// them by file name.
pub fn tree_renderer(
    templates: Option<(&dyn FileTree, &Path)>,
    options: RenderOptions,
) -> Result<Renderer, Diagnostics> {
    match templates {
        None => Renderer::with_overrides(None, BTreeMap::new(), options),
        Some((tree, dir)) => {
            let overrides = tree::read_templates(tree, dir)?;
            Renderer::with_overrides(Some(&tree.name(dir)), overrides, options)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tojson_output_survives_yaml() {
        let env = Templates::embedded().environment().unwrap();
        for text in [
            "a\u{85}b",
            "\u{2028}--- x",
            "\u{7f}\u{9f}\u{feff}",
            "plain ü 😀",
        ] {
            let out = env
                .render_str("v: {{ s | tojson }}", minijinja::context! { s => text })
                .unwrap();
            let parsed: serde_json::Value = serde_yaml::from_str(&out).unwrap();
            assert_eq!(parsed["v"], text, "{out}");
        }
    }
}
