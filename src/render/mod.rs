//! The pure renderer: validated fleet → template contexts → checked Kubernetes objects.
//!
//! Nothing here talks to a cluster, reads the clock or the environment, and only
//! [`templates::renderer`] reads files (template overrides): the same inputs always give the
//! same objects, whichever tool calls it.

pub mod contract;
pub mod gateway;
pub mod keda;
pub mod kinds;
pub mod objects;
pub mod placement;
pub mod podmonitor;
pub mod resolve;
pub mod rollout;
pub mod templates;
pub mod values;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use kube::ResourceExt;
use minijinja::Environment;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;

pub use objects::{Object, ObjectId, OrderKey, RenderError, sort_objects};
pub use placement::{Placement, place};
pub use resolve::{Resolved, resolve};
pub use templates::Templates;
pub use values::PluginUse;

use crate::api::{AutoscalingProvider, PrismNamespace, PrismPlugin, PrismShard, SHARD_ANNOTATION};
use crate::error::{Diagnostic, Diagnostics};
use crate::source::sort::Passed;
use crate::source::{Document, Fleet, Located};

/// Proxy image used when a shard does not name one.
pub const DEFAULT_PROXY_IMAGE: &str = "ghcr.io/prism/prism-proxy:0.1.0";

/// Settings of a render that do not come from the resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// Proxy image for shards without `spec.image`.
    pub proxy_image: String,
    /// NetworkPolicies for shards that do not set `spec.networkPolicy.enabled`.
    pub network_policies: bool,
    /// Prometheus that KEDA ScaledObjects read the request rate from.
    pub prometheus_url: Option<String>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            proxy_image: DEFAULT_PROXY_IMAGE.into(),
            network_policies: false,
            prometheus_url: None,
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

    /// A renderer with `overrides` replacing embedded templates by file name; `dir` names where
    /// they came from in messages (`None`: no overrides).
    pub fn with_overrides(
        dir: Option<&str>,
        overrides: BTreeMap<String, String>,
        options: RenderOptions,
    ) -> Result<Self, Diagnostics> {
        let templates = match dir {
            None => Templates::embedded(),
            Some(dir) => Templates::with_overrides(overrides)
                .map_err(|m| Diagnostics::from(Diagnostic::new(dir, 0, "", m)))?,
        };
        Self::new(&templates, options).map_err(|e| {
            let file = dir
                .map(|d| Path::new(d).join(&e.template).display().to_string())
                .unwrap_or(e.template.clone());
            Diagnostic::new(file, 0, "", e.message).into()
        })
    }

    /// The embedded templates with default options.
    pub fn embedded() -> Self {
        Self::new(&Templates::embedded(), RenderOptions::default())
            .expect("embedded templates compile")
    }

    fn render(&self, template: &str, ctx: &impl Serialize) -> Result<Object, RenderError> {
        let text = self
            .env
            .get_template(template)
            .and_then(|t| t.render(minijinja::value::Serde(ctx)))
            .map_err(|e| RenderError::new(template, template_error(&e)))?;
        objects::parse_rendered(template, &text)
    }

    /// The objects of one shard: ConfigMap, Services, StatefulSet, PDB, and as asked HPA,
    /// Ingress or GRPCRoute, and NetworkPolicy. `plugins` are the plugins at the versions this
    /// shard should run.
    pub fn render_shard(
        &self,
        shard: &PrismShard,
        plugins: &[PluginUse<'_>],
    ) -> Result<Vec<Object>, RenderError> {
        let ctx = values::shard_context(
            shard,
            plugins,
            &self.options.proxy_image,
            self.options.network_policies,
            self.options.prometheus_url.as_deref(),
        );
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
        if let Some(a) = shard.spec.autoscaling.as_ref().filter(|a| a.enabled) {
            match a.provider {
                AutoscalingProvider::Hpa => out.push(self.render("shard-hpa.yaml", &ctx)?),
                AutoscalingProvider::Keda => {
                    if a.target_rps.is_some() && self.options.prometheus_url.is_none() {
                        return Err(RenderError::new(
                            "shard-scaledobject.yaml",
                            "spec.autoscaling: provider keda with targetRPS needs the Prometheus KEDA reads the request rate from: set --prometheus-url",
                        ));
                    }
                    out.push(self.render("shard-scaledobject.yaml", &ctx)?);
                }
            }
        }
        if shard
            .spec
            .monitoring
            .as_ref()
            .is_some_and(|m| m.pod_monitor.is_some())
        {
            out.push(self.render("shard-podmonitor.yaml", &ctx)?);
        }
        if let Some(expose) = &shard.spec.expose {
            if expose.ingress.is_some() {
                out.push(self.render("shard-ingress.yaml", &ctx)?);
            }
            if expose.grpc_route.is_some() {
                out.push(self.render("shard-grpcroute.yaml", &ctx)?);
            }
        }
        if values::wants_network_policies(shard, self.options.network_policies) {
            out.push(self.render("shard-networkpolicy.yaml", &ctx)?);
        }
        sort_objects(&mut out);
        Ok(out)
    }

    /// The objects of one remote plugin: Deployment, Service, PDB and, when protected,
    /// NetworkPolicy. `users` are the shards of its namespace that list it.
    pub fn render_remote_plugin(
        &self,
        plugin: &PrismPlugin,
        users: &[&PrismShard],
    ) -> Result<Vec<Object>, RenderError> {
        let ctx = values::plugin_context(plugin, users, self.options.network_policies);
        let mut deploy = self.render("plugin-deployment.yaml", &ctx)?;
        objects::stamp_config_hash(&mut deploy, &[]);
        let mut out = vec![
            deploy,
            self.render("plugin-service.yaml", &ctx)?,
            self.render("plugin-pdb.yaml", &ctx)?,
        ];
        if ctx.protected() {
            out.push(self.render("plugin-networkpolicy.yaml", &ctx)?);
        }
        sort_objects(&mut out);
        Ok(out)
    }

    /// Renders a whole fleet: its custom resources (namespaces annotated with their shard)
    /// followed by everything they become, in install order.
    pub fn render_fleet(&self, fleet: &Fleet) -> Result<Vec<Object>, Diagnostics> {
        let all = std::sync::Mutex::new(Vec::new());
        self.render_fleet_to(fleet, |o| all.lock().expect("not poisoned").push(o))?;
        let mut objects = all.into_inner().expect("not poisoned");
        sort_objects(&mut objects);
        Ok(objects)
    }

    /// Renders a whole fleet like [`Renderer::render_fleet`], handing each object to `sink` as
    /// soon as it is rendered, in no particular order and from several threads; returns the ids
    /// of every object in output order. Objects reach `sink` before the fleet is known to be
    /// good: whoever writes them must wait for `Ok`.
    pub fn render_fleet_to(
        &self,
        fleet: &Fleet,
        sink: impl Fn(Object) + Sync,
    ) -> Result<Vec<ObjectId>, Diagnostics> {
        let resolved = resolve(fleet)?;
        let waves = rollout::Waves::of(fleet);
        let mut units: Vec<Unit<'_>> = Vec::new();
        units.extend(resolved.shards.iter().map(|(s, uses)| Unit::Shard(s, uses)));
        units.extend(fleet.plugins.iter().map(Unit::Plugin));
        units.extend(
            resolved
                .remote_plugins
                .iter()
                .map(|p| Unit::RemotePlugin(p)),
        );
        units.extend(
            resolved
                .placements
                .chunks(NAMESPACES_PER_UNIT)
                .map(Unit::Namespaces),
        );
        if !fleet.others.is_empty() {
            units.push(Unit::Others(&fleet.others));
        }
        let render = |unit: &Unit<'_>| {
            let mut ids = Vec::new();
            let mut put = |o: Object, doc: &Arc<Document>| {
                ids.push((ObjectId::of(&o), Arc::clone(doc)));
                sink(o);
            };
            let problem = self.render_unit(fleet, &waves, unit, &mut put);
            (ids, problem)
        };
        let done: Vec<_> = if units.len() < PARALLEL_UNITS {
            units.iter().map(render).collect()
        } else {
            units.par_iter().map(render).collect()
        };
        let mut problems = Diagnostics::default();
        let mut ids = Vec::new();
        for (unit_ids, problem) in done {
            ids.extend(unit_ids);
            problems.0.extend(problem);
        }
        let passed: std::collections::HashSet<*const Document> = fleet
            .others
            .iter()
            .map(|o| Arc::as_ptr(&o.origin))
            .collect();
        let ids = in_order_and_unique(ids, &passed, &mut problems);
        problems.into_result(ids)
    }

    /// Renders one unit, handing its objects to `put` in the order the resources came. A
    /// shard's objects, its custom resource included, go into its rollout wave, if it has one.
    fn render_unit(
        &self,
        fleet: &Fleet,
        waves: &rollout::Waves,
        unit: &Unit<'_>,
        put: &mut dyn FnMut(Object, &Arc<Document>),
    ) -> Option<Diagnostic> {
        match unit {
            Unit::Shard(shard, uses) => {
                let wave = waves.of_shard(
                    shard
                        .value
                        .metadata
                        .namespace
                        .as_deref()
                        .unwrap_or_default(),
                    &shard.value.name_any(),
                );
                let mut put = |mut o: Object| {
                    if let Some(wave) = wave {
                        rollout::stamp_wave(&mut o, wave);
                    }
                    put(o, &shard.origin)
                };
                let problem = match self.render_shard(&shard.value, uses) {
                    Ok(objs) => {
                        objs.into_iter().for_each(&mut put);
                        None
                    }
                    Err(e) => Some(shard.diagnostic("", e.to_string())),
                };
                put(custom_resource(&shard.value));
                problem
            }
            Unit::Plugin(plugin) => {
                put(custom_resource(&plugin.value), &plugin.origin);
                None
            }
            Unit::RemotePlugin(plugin) => {
                let users = users_of(fleet, &plugin.value);
                match self.render_remote_plugin(&plugin.value, &users) {
                    Ok(objs) => {
                        objs.into_iter().for_each(|o| put(o, &plugin.origin));
                        None
                    }
                    Err(e) => Some(plugin.diagnostic("", e.to_string())),
                }
            }
            Unit::Namespaces(placed) => {
                for (ns, shard) in *placed {
                    put(placed_namespace(&ns.value, shard), &ns.origin);
                }
                None
            }
            Unit::Others(others) => {
                for o in *others {
                    put(passed_through(&o.value), &o.origin);
                }
                None
            }
        }
    }
}

/// Below this many units a render stays on one thread: starting more costs more than it saves
/// (a shard's unit takes a few hundred microseconds).
const PARALLEL_UNITS: usize = 8;

/// PrismNamespaces rendered together as one unit of work.
const NAMESPACES_PER_UNIT: usize = 256;

/// One piece of a fleet render, independent of the others.
enum Unit<'a> {
    /// A shard's objects and its custom resource.
    Shard(&'a Located<PrismShard>, &'a [PluginUse<'a>]),
    /// A plugin's custom resource.
    Plugin(&'a Located<PrismPlugin>),
    /// A remote plugin's objects.
    RemotePlugin(&'a Located<PrismPlugin>),
    /// Placed namespaces' custom resources.
    Namespaces(&'a [(&'a Located<PrismNamespace>, String)]),
    /// Other Kubernetes objects, passed through.
    Others(&'a [Located<Passed>]),
}

/// Another Kubernetes object as it is emitted: unchanged. For ordering and collisions it is in
/// the namespace it goes to.
fn passed_through(passed: &Passed) -> Object {
    let mut object = Object::from_value(objects::sort_keys(passed.value.clone()));
    object.namespace = passed.namespace.clone();
    object
}

/// A PrismNamespace as it is emitted: annotated with the shard it is placed on.
fn placed_namespace(ns: &PrismNamespace, shard: &str) -> Object {
    let mut obj = custom_resource(ns);
    let annotations = obj.value["metadata"]
        .as_object_mut()
        .expect("metadata")
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    annotations[SHARD_ANNOTATION] = Value::String(shard.to_string());
    obj.value = objects::sort_keys(obj.value);
    obj
}

/// The shards of `plugin`'s namespace that list it.
pub fn users_of<'a>(fleet: &'a Fleet, plugin: &PrismPlugin) -> Vec<&'a PrismShard> {
    let name = plugin.name_any();
    fleet
        .shards
        .iter()
        .map(|s| &s.value)
        .filter(|s| s.namespace() == plugin.namespace())
        .filter(|s| s.spec.plugins.iter().any(|p| p.name == name))
        .collect()
}

/// An input custom resource as it is emitted: without status and server-set metadata.
fn custom_resource<K: Serialize + ResourceExt>(k: &K) -> Object {
    let mut value = serde_json::to_value(k).expect("resources serialize");
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = value["metadata"].as_object_mut() {
        meta.retain(|key, _| {
            matches!(
                key.as_str(),
                "name" | "namespace" | "labels" | "annotations"
            )
        });
    }
    Object::from_value(objects::sort_keys(value))
}

/// The ids of `objects` (in the order they were rendered) in output order. Two resources
/// rendering the same object would overwrite each other: that is reported once per pair of
/// resources, naming the first object they share, in the order they were rendered.
fn in_order_and_unique(
    objects: Vec<(ObjectId, Arc<Document>)>,
    passed: &std::collections::HashSet<*const Document>,
    problems: &mut Diagnostics,
) -> Vec<ObjectId> {
    let mut objects: Vec<(usize, ObjectId, Arc<Document>)> = objects
        .into_iter()
        .enumerate()
        .map(|(i, (id, doc))| (i, id, doc))
        .collect();
    objects.sort_unstable_by(|a, b| (a.1.order(), a.0).cmp(&(b.1.order(), b.0)));
    // Each repeat with the one rendered just before it.
    let mut repeats: Vec<(usize, usize)> = (1..objects.len())
        .filter(|&i| objects[i - 1].1.order() == objects[i].1.order())
        .map(|i| (i, i - 1))
        .collect();
    repeats.sort_unstable_by_key(|&(again, _)| objects[again].0);
    let mut reported = std::collections::BTreeSet::new();
    for (again, before) in repeats {
        let (_, o, doc) = &objects[again];
        let first = &objects[before].2;
        if reported.insert((&*doc.file, doc.line, &*first.file, first.line)) {
            // An object passed through is that object; a resource renders it.
            let is = |d: &Arc<Document>| passed.contains(&Arc::as_ptr(d));
            let (verb, other, other_verb) = match (is(doc), is(first)) {
                (false, false) => ("renders", "the resource", "renders"),
                (false, true) => ("renders", "the object", "is"),
                (true, false) => ("is", "the resource", "renders"),
                (true, true) => ("is", "the object", "is"),
            };
            problems.push(doc.diagnostic(
                "metadata.name",
                format!(
                    "{verb} {}, which {other} at {}:{} {other_verb} too; rename one of them",
                    o.id(),
                    first.file,
                    first.line
                ),
            ));
        }
    }
    objects.into_iter().map(|(_, id, _)| id).collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::fleet_from_files;

    fn example_fleet() -> Fleet {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fleet");
        let files = ["plugins.yaml", "shards.yaml", "namespaces.yaml"]
            .iter()
            .map(|f| {
                (
                    f.to_string(),
                    std::fs::read_to_string(format!("{dir}/{f}")).unwrap(),
                )
            })
            .collect();
        fleet_from_files(files, "default").unwrap()
    }

    fn hash_of(fleet: &Fleet, shard: &str) -> String {
        let objects = Renderer::embedded().render_fleet(fleet).unwrap();
        let sts = objects
            .iter()
            .find(|o| o.kind == "StatefulSet" && o.name == format!("prism-{shard}"))
            .unwrap();
        sts.value["spec"]["template"]["metadata"]["annotations"][crate::api::CONFIG_HASH_ANNOTATION]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn shard_mut<'a>(fleet: &'a mut Fleet, name: &str) -> &'a mut PrismShard {
        &mut fleet
            .shards
            .iter_mut()
            .find(|s| s.value.name_any() == name)
            .unwrap()
            .value
    }

    #[test]
    fn config_hash_ignores_what_pods_do_not_see() {
        let mut fleet = example_fleet();
        let before = hash_of(&fleet, "playback-vod");
        shard_mut(&mut fleet, "playback-vod").spec.replicas = Some(7);
        shard_mut(&mut fleet, "playback-vod").spec.service = Some(crate::api::ShardService {
            type_: crate::api::ServiceType::LoadBalancer,
            annotations: Default::default(),
        });
        fleet.namespaces.truncate(3);
        assert_eq!(hash_of(&fleet, "playback-vod"), before);
    }

    #[test]
    fn config_hash_changes_with_what_pods_see() {
        let fleet = example_fleet();
        let before = hash_of(&fleet, "playback-vod");
        type Change = Box<dyn Fn(&mut Fleet)>;
        let changes: Vec<(&str, Change)> = vec![
            (
                "proxy image",
                Box::new(|f| shard_mut(f, "playback-vod").spec.image = Some("proxy:9".into())),
            ),
            (
                "resources",
                Box::new(|f| shard_mut(f, "playback-vod").spec.resources = None),
            ),
            (
                "backends (config file)",
                Box::new(|f| {
                    shard_mut(f, "playback-vod")
                        .spec
                        .backends
                        .pop()
                        .map(drop)
                        .unwrap_or(())
                }),
            ),
            (
                "plugin version",
                Box::new(|f| {
                    let p = f
                        .plugins
                        .iter_mut()
                        .find(|p| p.value.name_any() == "postgres")
                        .unwrap();
                    p.value.spec.version = "1.4.3".into();
                }),
            ),
        ];
        for (what, change) in changes {
            let mut f = fleet.clone();
            change(&mut f);
            assert_ne!(
                hash_of(&f, "playback-vod"),
                before,
                "{what} must change the hash"
            );
        }
    }

    #[test]
    fn autoscaled_shards_leave_replicas_to_the_hpa() {
        let objects = Renderer::embedded().render_fleet(&example_fleet()).unwrap();
        let sts = |name: &str| {
            objects
                .iter()
                .find(|o| o.kind == "StatefulSet" && o.name == name)
                .unwrap()
        };
        assert!(
            sts("prism-playback-live").value["spec"]
                .get("replicas")
                .is_none()
        );
        assert_eq!(sts("prism-playback-vod").value["spec"]["replicas"], 3);
        let hpas: Vec<&str> = objects
            .iter()
            .filter(|o| o.kind == "HorizontalPodAutoscaler")
            .map(|o| o.name.as_str())
            .collect();
        assert_eq!(hpas, ["prism-playback-live"]);
    }

    #[test]
    fn a_stop_signal_reaches_the_proxy_container_with_the_os_it_needs() {
        let mut fleet = example_fleet();
        shard_mut(&mut fleet, "playback-vod").spec.stop_signal =
            Some(crate::api::StopSignal::Sigint);
        let objects = Renderer::embedded().render_fleet(&fleet).unwrap();
        let pod = |name: &str| {
            let sts = objects
                .iter()
                .find(|o| o.kind == "StatefulSet" && o.name == name)
                .unwrap();
            sts.value["spec"]["template"]["spec"].clone()
        };
        let vod = pod("prism-playback-vod");
        assert_eq!(vod["os"]["name"], "linux");
        let proxy = &vod["containers"][0];
        assert_eq!(proxy["name"], "proxy");
        assert_eq!(proxy["lifecycle"]["stopSignal"], "SIGINT");
        assert_eq!(proxy["lifecycle"]["preStop"]["sleep"]["seconds"], 5);
        let live = pod("prism-playback-live");
        assert!(live.get("os").is_none());
        assert!(
            live["containers"][0]["lifecycle"]
                .get("stopSignal")
                .is_none()
        );
    }

    #[test]
    fn every_pod_is_restricted() {
        let objects = Renderer::embedded().render_fleet(&example_fleet()).unwrap();
        let mut checked = 0;
        for o in objects
            .iter()
            .filter(|o| matches!(o.kind.as_str(), "StatefulSet" | "Deployment"))
        {
            let pod = &o.value["spec"]["template"]["spec"];
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{}", o.id());
            assert_eq!(
                pod["securityContext"]["seccompProfile"]["type"],
                "RuntimeDefault"
            );
            assert_eq!(pod["automountServiceAccountToken"], false);
            let containers = pod["containers"]
                .as_array()
                .unwrap()
                .iter()
                .chain(pod["initContainers"].as_array().into_iter().flatten());
            for c in containers {
                let sc = &c["securityContext"];
                assert_eq!(
                    sc["allowPrivilegeEscalation"],
                    false,
                    "{} {}",
                    o.id(),
                    c["name"]
                );
                assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
                assert_eq!(sc["readOnlyRootFilesystem"], true);
                checked += 1;
            }
        }
        assert!(checked >= 10, "checked {checked} containers");
    }

    #[test]
    fn plugin_liveness_tolerates_what_readiness_reports() {
        let objects = Renderer::embedded().render_fleet(&example_fleet()).unwrap();
        let mut checked = 0;
        for o in objects
            .iter()
            .filter(|o| matches!(o.kind.as_str(), "StatefulSet" | "Deployment"))
        {
            let containers = o.value["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap();
            for c in containers
                .iter()
                .filter(|c| c["readinessProbe"]["grpc"].is_object())
            {
                let (ready, live) = (&c["readinessProbe"], &c["livenessProbe"]);
                // Readiness asks the plugin's own health service (NOT_SERVING while its
                // backend is down); liveness only that the process accepts connections.
                assert!(ready["grpc"]["service"].is_string(), "{}", o.id());
                assert_eq!(live["tcpSocket"]["port"], ready["grpc"]["port"]);
                assert!(live.get("grpc").is_none());
                assert!(live["failureThreshold"].as_i64() > ready["failureThreshold"].as_i64());
                checked += 1;
            }
        }
        assert!(checked >= 5, "checked {checked} plugin containers");
    }

    #[test]
    fn sidecar_port_collisions_are_rejected() {
        let mut fleet = example_fleet();
        let nats = fleet
            .plugins
            .iter_mut()
            .find(|p| p.value.name_any() == "nats")
            .unwrap();
        nats.value
            .spec
            .health_check
            .as_mut()
            .unwrap()
            .grpc
            .as_mut()
            .unwrap()
            .port = Some(8980);
        let err = Renderer::embedded()
            .render_fleet(&fleet)
            .unwrap_err()
            .to_string();
        assert!(err.contains("sidecar nats needs port 8980"), "{err}");
        assert!(err.contains("the proxy's data port"), "{err}");
    }

    /// `configFrom`, `args` and `env` reach every plugin container, sidecar or remote: the
    /// Secret key as a read-only file named in `-config`, the arguments after the rendered ones,
    /// a variable with a rendered name in its place.
    #[test]
    fn plugin_config_args_and_env_reach_the_plugin_container() {
        use crate::api::{PluginEnvVar, SecretKeySelector, ValueSource};
        let secret = |name: &str, key: &str| ValueSource {
            secret_key_ref: SecretKeySelector {
                name: name.into(),
                key: key.into(),
            },
        };
        let mut fleet = example_fleet();
        for plugin in fleet
            .plugins
            .iter_mut()
            .filter(|p| ["postgres", "kafka"].contains(&p.value.name_any().as_str()))
        {
            let spec = &mut plugin.value.spec;
            spec.config_from = Some(secret("driver", "plugin.yaml"));
            spec.deployment.args = vec!["-debug".into(), "-metrics-port=9999".into()];
            spec.deployment.env = vec![
                PluginEnvVar {
                    name: "PRISM_PLUGIN_VERSION".into(),
                    value: Some("pinned".into()),
                    value_from: None,
                },
                PluginEnvVar {
                    name: "DATABASE_URL".into(),
                    value: None,
                    value_from: Some(secret("db", "url")),
                },
            ];
        }
        let objects = Renderer::embedded().render_fleet(&fleet).unwrap();
        let mut checked = Vec::new();
        for o in objects
            .iter()
            .filter(|o| matches!(o.kind.as_str(), "StatefulSet" | "Deployment"))
        {
            let pod = &o.value["spec"]["template"]["spec"];
            let containers = pod["containers"].as_array().unwrap();
            for c in containers.iter().filter(|c| {
                c["name"] == "plugin-postgres"
                    || (o.name == "prism-plugin-kafka" && c["name"] == "plugin")
            }) {
                let port = c["ports"][0]["containerPort"].as_i64().unwrap();
                assert_eq!(
                    c["args"],
                    serde_json::json!([
                        "-config=/etc/prism/plugin/config.yaml",
                        format!("-grpc-port={port}"),
                        format!("-metrics-port={}", port + 1),
                        "-debug",
                        "-metrics-port=9999"
                    ]),
                    "{}",
                    o.id()
                );
                assert_eq!(
                    c["env"],
                    serde_json::json!([
                        {"name": "PRISM_PLUGIN_NAME", "value": c["env"][0]["value"]},
                        {"name": "PRISM_PLUGIN_VERSION", "value": "pinned"},
                        {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}}
                    ])
                );
                let mount = c["volumeMounts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|m| m["mountPath"] == "/etc/prism/plugin")
                    .expect("the config file is mounted");
                assert_eq!(mount["readOnly"], true);
                let volume = pod["volumes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|v| v["name"] == mount["name"])
                    .expect("its volume");
                assert_eq!(
                    volume["secret"],
                    serde_json::json!({"secretName": "driver", "defaultMode": 0o440,
                        "items": [{"key": "plugin.yaml", "path": "config.yaml"}]})
                );
                checked.push(o.name.clone());
            }
            // Containers of other plugins are untouched.
            for c in containers
                .iter()
                .filter(|c| c["name"] == "plugin-nats" || c["name"] == "proxy")
            {
                let args = c["args"].as_array().cloned().unwrap_or_default();
                assert!(!args.iter().any(|a| a == "-debug"), "{}", o.id());
            }
        }
        checked.sort();
        checked.dedup();
        assert!(
            checked.contains(&"prism-plugin-kafka".to_string()),
            "{checked:?}"
        );
        assert!(checked.len() >= 3, "{checked:?}");
    }
}
