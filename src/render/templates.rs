//! The minijinja templates: embedded at build time, optionally replaced from a directory.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};

/// Names of every template, each producing one object.
pub const TEMPLATE_NAMES: &[&str] = &[
    "_macros.yaml",
    "shard-configmap.yaml",
    "shard-headless-service.yaml",
    "shard-service.yaml",
    "shard-statefulset.yaml",
    "shard-pdb.yaml",
    "shard-hpa.yaml",
    "plugin-deployment.yaml",
    "plugin-service.yaml",
    "plugin-pdb.yaml",
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

    /// A strict environment: undefined variables are errors, YAML is never HTML-escaped.
    pub(crate) fn environment(&self) -> Result<Environment<'static>, minijinja::Error> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        for (name, source) in &self.0 {
            env.add_template_owned(name.clone(), source.clone())?;
        }
        Ok(env)
    }
}
