//! Fleet validation across objects: every shard's plugins exist, carry a version the shard
//! accepts, can run the way the shard asks, and do not collide on ports; every namespace has
//! a shard. Errors name both files involved.

use std::collections::BTreeMap;

use kube::ResourceExt;
use semver::{Version, VersionReq};

use super::context::{DATA_PORT, METRICS_PORT, PluginUse};
use super::placement::{Placement, place};
use crate::api::{PluginDeploymentType, PrismNamespace, PrismPlugin, PrismShard};
use crate::error::Diagnostics;
use crate::source::{Fleet, Located};

/// A fleet whose references all resolve.
#[derive(Debug)]
pub struct Resolved<'a> {
    /// Each shard with the plugins it uses.
    pub shards: Vec<(&'a Located<PrismShard>, Vec<PluginUse<'a>>)>,
    /// Plugins that run remotely (their own Deployment).
    pub remote_plugins: Vec<&'a Located<PrismPlugin>>,
    /// Each namespace with its placement.
    pub placements: Vec<(&'a Located<PrismNamespace>, Placement)>,
}

/// Checks the whole fleet; reports every problem found.
pub fn resolve(fleet: &Fleet) -> Result<Resolved<'_>, Diagnostics> {
    let mut problems = Diagnostics::default();
    let plugins: BTreeMap<(String, String), &Located<PrismPlugin>> = fleet
        .plugins
        .iter()
        .map(|p| {
            (
                (p.value.namespace().unwrap_or_default(), p.value.name_any()),
                p,
            )
        })
        .collect();
    let mut shards = Vec::new();
    for shard in &fleet.shards {
        let ns = shard.value.namespace().unwrap_or_default();
        let mut uses = Vec::new();
        for (i, entry) in shard.value.spec.plugins.iter().enumerate() {
            let at = |field: &str| format!("spec.plugins[{i}].{field}");
            let Some(plugin) = plugins.get(&(ns.clone(), entry.name.clone())) else {
                let available: Vec<&str> = plugins
                    .keys()
                    .filter(|(n, _)| *n == ns)
                    .map(|(_, p)| p.as_str())
                    .collect();
                let hint = if available.is_empty() {
                    format!("no PrismPlugin exists in namespace {ns}")
                } else {
                    format!("PrismPlugins in {ns}: {}", available.join(", "))
                };
                problems.push(shard.diagnostic(
                    &at("name"),
                    format!("PrismPlugin {ns}/{} not found ({hint})", entry.name),
                ));
                continue;
            };
            match check_use(shard, plugin, i) {
                Ok(deployment) => uses.push(PluginUse {
                    entry,
                    plugin: &plugin.value,
                    deployment,
                }),
                Err(d) => problems.0.extend(d.0),
            }
        }
        check_ports(shard, &uses, &mut problems);
        shards.push((shard, uses));
    }
    let remote_plugins = fleet
        .plugins
        .iter()
        .filter(|p| p.value.spec.deployment.type_ == PluginDeploymentType::Remote)
        .collect();
    let mut placements = Vec::new();
    for ns in &fleet.namespaces {
        match place(&ns.value, fleet.shards.iter().map(|s| &s.value)) {
            Ok(p) => placements.push((ns, p)),
            Err(why) => {
                let field = if ns.value.spec.shard.is_some() {
                    "spec.shard"
                } else {
                    "spec.backend"
                };
                problems.push(ns.diagnostic(field, format!("cannot be placed: {why}")));
            }
        }
    }
    problems.into_result(Resolved {
        shards,
        remote_plugins,
        placements,
    })
}

/// Checks one shard plugin entry against its PrismPlugin; returns the effective deployment.
fn check_use(
    shard: &Located<PrismShard>,
    plugin: &Located<PrismPlugin>,
    i: usize,
) -> Result<PluginDeploymentType, Diagnostics> {
    let entry = &shard.value.spec.plugins[i];
    let at = |field: &str| format!("spec.plugins[{i}].{field}");
    let mut problems = Diagnostics::default();
    let pid = format!(
        "PrismPlugin {}/{} ({})",
        plugin.value.namespace().unwrap_or_default(),
        plugin.value.name_any(),
        plugin.place()
    );
    match (
        VersionReq::parse(&entry.version),
        Version::parse(&plugin.value.spec.version),
    ) {
        (Err(e), _) => problems.push(shard.diagnostic(
            &at("version"),
            format!("{:?} is not a version requirement: {e}", entry.version),
        )),
        (_, Err(e)) => {
            problems.push(plugin.diagnostic("spec.version", format!("not a semantic version: {e}")))
        }
        (Ok(req), Ok(v)) if !req.matches(&v) => problems.push(shard.diagnostic(
            &at("version"),
            format!("requires {} {req}, but {pid} has version {v}", entry.name),
        )),
        _ => {}
    }
    let own = plugin.value.spec.deployment.type_;
    let wanted = entry.deployment.unwrap_or(own);
    let remote = PluginDeploymentType::Remote;
    if (own == remote) != (wanted == remote) {
        let why = if own == remote {
            format!(
                "{pid} is a remote plugin; it cannot run as {}",
                wanted.as_str()
            )
        } else {
            format!(
                "{pid} is a {} plugin; set its deployment.type to remote to run it remotely",
                own.as_str()
            )
        };
        problems.push(shard.diagnostic(&at("deployment"), why));
    }
    problems.into_result(wanted)
}

/// Sidecars share the pod's network: their ports (gRPC and gRPC+1 for metrics) must not
/// collide with each other or with the proxy's.
fn check_ports(shard: &Located<PrismShard>, uses: &[PluginUse<'_>], problems: &mut Diagnostics) {
    let mut taken: BTreeMap<i32, String> = BTreeMap::new();
    taken.insert(DATA_PORT, "the proxy's data port".into());
    taken.insert(METRICS_PORT, "the proxy's metrics port".into());
    for u in uses
        .iter()
        .filter(|u| u.deployment == PluginDeploymentType::Sidecar)
    {
        let index = shard
            .value
            .spec
            .plugins
            .iter()
            .position(|e| e.name == u.entry.name)
            .unwrap_or(0);
        for port in [u.port(), u.port() + 1] {
            let owner = format!("sidecar {}", u.entry.name);
            if let Some(other) = taken.insert(port, owner) {
                problems.push(shard.diagnostic(
                    &format!("spec.plugins[{index}].name"),
                    format!(
                        "sidecar {} needs port {port} (gRPC {} and metrics {}), already used by {other}; give the PrismPlugin another healthCheck.grpc.port",
                        u.entry.name,
                        u.port(),
                        u.port() + 1
                    ),
                ));
            }
        }
    }
}
