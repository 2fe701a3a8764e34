//! The pure renderer: validated fleet → template contexts → checked Kubernetes objects.
//!
//! Nothing here talks to a cluster, reads the clock, the environment or the file system:
//! the same inputs always give the same objects, whichever tool calls it.

pub mod context;
pub mod objects;
pub mod placement;
pub mod resolve;
pub mod templates;

use std::collections::BTreeMap;

use kube::ResourceExt;
use minijinja::Environment;
use serde::Serialize;
use serde_json::Value;

pub use context::PluginUse;
pub use objects::{Object, RenderError, sort_objects};
pub use placement::{Placement, place};
pub use resolve::{Resolved, resolve};
pub use templates::Templates;

use crate::api::{PrismPlugin, PrismShard, SHARD_ANNOTATION};
use crate::error::{Diagnostic, Diagnostics};
use crate::source::Fleet;

/// Proxy image used when a shard does not name one.
pub const DEFAULT_PROXY_IMAGE: &str = "ghcr.io/prism/prism-proxy:0.1.0";

/// Settings of a render that do not come from the resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// Proxy image for shards without `spec.image`.
    pub proxy_image: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            proxy_image: DEFAULT_PROXY_IMAGE.into(),
        }
    }
}

/// Renders units with one set of compiled templates.
pub struct Renderer {
    env: Environment<'static>,
    options: RenderOptions,
}

impl Renderer {
    /// Compiles `templates`; a syntax error names the template and line.
    pub fn new(templates: &Templates, options: RenderOptions) -> Result<Self, RenderError> {
        let env = templates
            .environment()
            .map_err(|e| RenderError::new(e.name().unwrap_or("?"), template_error(&e)))?;
        Ok(Self { env, options })
    }

    /// The embedded templates with default options.
    pub fn embedded() -> Self {
        Self::new(&Templates::embedded(), RenderOptions::default()).expect("embedded templates compile")
    }

    fn render(&self, template: &str, ctx: &impl Serialize) -> Result<Object, RenderError> {
        let text = self
            .env
            .get_template(template)
            .and_then(|t| t.render(minijinja::value::Serde(ctx)))
            .map_err(|e| RenderError::new(template, template_error(&e)))?;
        objects::parse_rendered(template, &text)
    }

    /// The objects of one shard: ConfigMap, Services, StatefulSet, PDB and (with autoscaling)
    /// HPA. `plugins` are the plugins at the versions this shard should run.
    pub fn render_shard(&self, shard: &PrismShard, plugins: &[PluginUse<'_>]) -> Result<Vec<Object>, RenderError> {
        let ctx = context::shard_context(shard, plugins, &self.options.proxy_image);
        let config = self.render("shard-configmap.yaml", &ctx)?;
        let mut sts = self.render("shard-statefulset.yaml", &ctx)?;
        objects::stamp_config_hash(&mut sts, &[&config.value["data"]]);
        let mut out = vec![
            config,
            self.render("shard-headless-service.yaml", &ctx)?,
            self.render("shard-service.yaml", &ctx)?,
            sts,
            self.render("shard-pdb.yaml", &ctx)?,
        ];
        if shard.spec.autoscaling.as_ref().is_some_and(|a| a.enabled) {
            out.push(self.render("shard-hpa.yaml", &ctx)?);
        }
        sort_objects(&mut out);
        Ok(out)
    }

    /// The objects of one remote plugin: Deployment, Service and PDB.
    pub fn render_remote_plugin(&self, plugin: &PrismPlugin) -> Result<Vec<Object>, RenderError> {
        let ctx = context::plugin_context(plugin);
        let mut deploy = self.render("plugin-deployment.yaml", &ctx)?;
        objects::stamp_config_hash(&mut deploy, &[]);
        let mut out = vec![
            deploy,
            self.render("plugin-service.yaml", &ctx)?,
            self.render("plugin-pdb.yaml", &ctx)?,
        ];
        sort_objects(&mut out);
        Ok(out)
    }

    /// Renders a whole fleet: its custom resources (namespaces annotated with their shard)
    /// followed by everything they become, in install order.
    pub fn render_fleet(&self, fleet: &Fleet) -> Result<Vec<Object>, Diagnostics> {
        let resolved = resolve(fleet)?;
        let mut problems = Diagnostics::default();
        let mut out = Vec::new();
        for (shard, uses) in &resolved.shards {
            match self.render_shard(&shard.value, uses) {
                Ok(objs) => out.extend(objs),
                Err(e) => problems.push(shard.diagnostic("", e.to_string())),
            }
            out.push(custom_resource(&shard.value));
        }
        for plugin in &fleet.plugins {
            out.push(custom_resource(&plugin.value));
        }
        for plugin in &resolved.remote_plugins {
            match self.render_remote_plugin(&plugin.value) {
                Ok(objs) => out.extend(objs),
                Err(e) => problems.push(plugin.diagnostic("", e.to_string())),
            }
        }
        for (ns, placement) in &resolved.placements {
            let mut obj = custom_resource(&ns.value);
            let annotations = obj.value["metadata"]
                .as_object_mut()
                .expect("metadata")
                .entry("annotations")
                .or_insert_with(|| Value::Object(Default::default()));
            annotations[SHARD_ANNOTATION] = Value::String(placement.shard.clone());
            obj.value = objects::sort_keys(obj.value);
            out.push(obj);
        }
        check_unique(&out, fleet, &mut problems);
        sort_objects(&mut out);
        problems.into_result(out)
    }
}

/// An input custom resource as it is emitted: without status and server-set metadata.
fn custom_resource<K: Serialize + ResourceExt>(k: &K) -> Object {
    let mut value = serde_json::to_value(k).expect("resources serialize");
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = value["metadata"].as_object_mut() {
        meta.retain(|key, _| matches!(key.as_str(), "name" | "namespace" | "labels" | "annotations"));
    }
    Object::from_value(objects::sort_keys(value))
}

/// Two units rendering the same object would overwrite each other: report it.
fn check_unique(objects: &[Object], fleet: &Fleet, problems: &mut Diagnostics) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, o) in objects.iter().enumerate() {
        if let Some(first) = seen.insert(o.id(), i) {
            let origin = |obj: &Object| -> String {
                let owner = obj.value["metadata"]["labels"]["prism.io/shard"]
                    .as_str()
                    .map(|s| format!("PrismShard {s}"))
                    .or_else(|| {
                        obj.value["metadata"]["labels"]["prism.io/plugin"]
                            .as_str()
                            .map(|p| format!("PrismPlugin {p}"))
                    })
                    .unwrap_or_else(|| obj.id());
                owner
            };
            let file = fleet.shards.first().map(|s| s.origin.file.to_string()).unwrap_or_default();
            problems.push(Diagnostic::new(
                file,
                0,
                "",
                format!(
                    "{} is rendered twice, by {} and by {}; rename one of them",
                    o.id(),
                    origin(&objects[first]),
                    origin(o)
                ),
            ));
        }
    }
}

/// A minijinja error on one line, with the template line when known.
fn template_error(e: &minijinja::Error) -> String {
    let mut msg = e.to_string();
    if let Some(line) = e.line() {
        msg = format!("line {line}: {msg}");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

/// The whole fleet as one YAML stream (`---` before every document).
pub fn to_yaml_stream(objects: &[Object]) -> String {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&o.value).expect("objects serialize"));
    }
    out
}

/// The whole fleet as a `v1` `List` in JSON.
pub fn to_json_list(objects: &[Object]) -> String {
    let items: Vec<&Value> = objects.iter().map(|o| &o.value).collect();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    let mut s = serde_json::to_string_pretty(&list).expect("objects serialize");
    s.push('\n');
    s
}
