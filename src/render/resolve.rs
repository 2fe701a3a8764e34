//! Fleet validation across objects: every shard's plugins exist, carry a version the shard
//! accepts, can run the way the shard asks, and do not collide on ports; every namespace has
//! a shard. Offline, errors name both files involved; in the cluster, both objects.

use std::collections::BTreeMap;

use kube::ResourceExt;
use semver::{Version, VersionReq};

use super::contract::{DATA_PORT, METRICS_PORT};
use super::placement::choose;
use super::values::PluginUse;
use crate::api::{PluginDeploymentType, PrismNamespace, PrismPlugin, PrismShard, ShardPlugin};
use crate::error::{Diagnostic, Diagnostics};
use crate::source::{Fleet, Located};

/// A plugin as a shard finds it: the object and how to name it in messages
/// (e.g. `PrismPlugin prod/pg (plugins.yaml:3)`).
pub type Found<'a> = (&'a PrismPlugin, String);

/// Resolves and checks the plugins of `shard`. `lookup` finds a plugin by name in the shard's
/// namespace; `available` lists the names there (for hints).
pub fn shard_plugins<'a>(
    shard: &'a PrismShard,
    lookup: impl Fn(&str) -> Option<Found<'a>>,
    available: &[String],
) -> Result<Vec<PluginUse<'a>>, Vec<Diagnostic>> {
    let ns = shard.namespace().unwrap_or_default();
    let mut problems = Vec::new();
    let mut uses = Vec::new();
    for (i, entry) in shard.spec.plugins.iter().enumerate() {
        let Some((plugin, described)) = lookup(&entry.name) else {
            let hint = if available.is_empty() {
                format!("no PrismPlugin exists in namespace {ns}")
            } else {
                format!("PrismPlugins in {ns}: {}", available.join(", "))
            };
            problems.push(Diagnostic::at(
                format!("spec.plugins[{i}].name"),
                format!("PrismPlugin {ns}/{} not found ({hint})", entry.name),
            ));
            continue;
        };
        match check_use(entry, i, plugin, &described) {
            Ok(deployment) => uses.push(PluginUse {
                entry,
                plugin,
                deployment,
            }),
            Err(p) => problems.extend(p),
        }
    }
    problems.extend(check_ports(shard, &uses));
    if problems.is_empty() {
        Ok(uses)
    } else {
        Err(problems)
    }
}

/// Whether `version` satisfies the requirement `req` (Cargo semantics); `None` if either
/// does not parse.
pub fn satisfies(req: &str, version: &str) -> Option<bool> {
    Some(
        VersionReq::parse(req)
            .ok()?
            .matches(&Version::parse(version).ok()?),
    )
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
        let available: Vec<String> = plugins
            .keys()
            .filter(|(n, _)| *n == ns)
            .map(|(_, p)| p.clone())
            .collect();
        let lookup = |name: &str| {
            plugins.get(&(ns.clone(), name.to_string())).map(|p| {
                let described = format!("PrismPlugin {ns}/{name} ({})", p.place());
                (&p.value, described)
            })
        };
        match shard_plugins(&shard.value, lookup, &available) {
            Ok(uses) => shards.push((shard, uses)),
            Err(found) => {
                for p in found {
                    problems.push(shard.locate(p));
                }
            }
        }
    }
    let remote_plugins = fleet
        .plugins
        .iter()
        .filter(|p| p.value.spec.deployment.type_ == PluginDeploymentType::Remote)
        .collect();
    // Only shards of a namespace's own Kubernetes namespace can host it: look at those alone
    // (the same result as offering every shard, without a fleet-wide scan per namespace).
    let mut shards_by_namespace: BTreeMap<Option<String>, Vec<&PrismShard>> = BTreeMap::new();
    for shard in &fleet.shards {
        shards_by_namespace
            .entry(shard.value.namespace())
            .or_default()
            .push(&shard.value);
    }
    let mut placements = Vec::new();
    for ns in &fleet.namespaces {
        let shards = shards_by_namespace
            .get(&ns.value.namespace())
            .map_or(&[][..], Vec::as_slice);
        match placement(&ns.value, shards) {
            Ok(shard) => placements.push((ns, shard)),
            Err(problem) => problems.push(ns.locate(problem)),
        }
    }
    problems.into_result(Resolved {
        shards,
        remote_plugins,
        placements,
    })
}

/// The shard `ns` is placed on among `shards` (those of its Kubernetes namespace), or why it
/// cannot be placed, at the field that says where it wants to go.
pub fn placement(ns: &PrismNamespace, shards: &[&PrismShard]) -> Result<String, Diagnostic> {
    choose(ns, shards).map_err(|why| {
        let field = if ns.spec.shard.is_some() {
            "spec.shard"
        } else {
            "spec.backend"
        };
        Diagnostic::at(field, format!("cannot be placed: {why}"))
    })
}

/// A fleet whose references all resolve.
#[derive(Debug)]
pub struct Resolved<'a> {
    /// Each shard with the plugins it uses.
    pub shards: Vec<(&'a Located<PrismShard>, Vec<PluginUse<'a>>)>,
    /// Plugins that run remotely (their own Deployment).
    pub remote_plugins: Vec<&'a Located<PrismPlugin>>,
    /// Each namespace with the shard it is placed on.
    pub placements: Vec<(&'a Located<PrismNamespace>, String)>,
}

/// Checks one shard plugin entry against its PrismPlugin; returns the effective deployment.
fn check_use(
    entry: &ShardPlugin,
    i: usize,
    plugin: &PrismPlugin,
    described: &str,
) -> Result<PluginDeploymentType, Vec<Diagnostic>> {
    let at = |field: &str| format!("spec.plugins[{i}].{field}");
    let mut problems = Vec::new();
    match (
        VersionReq::parse(&entry.version),
        Version::parse(&plugin.spec.version),
    ) {
        (Err(e), _) => problems.push(Diagnostic::at(
            at("version"),
            format!("{:?} is not a version requirement: {e}", entry.version),
        )),
        (_, Err(e)) => problems.push(Diagnostic::at(
            at("version"),
            format!("{described} has an invalid version: {e}"),
        )),
        (Ok(req), Ok(v)) if !req.matches(&v) => problems.push(Diagnostic::at(
            at("version"),
            format!(
                "requires {} {req}, but {described} has version {v}",
                entry.name
            ),
        )),
        _ => {}
    }
    let own = plugin.spec.deployment.type_;
    let wanted = entry.deployment.unwrap_or(own);
    let remote = PluginDeploymentType::Remote;
    if (own == remote) != (wanted == remote) {
        let why = if own == remote {
            format!(
                "{described} is a remote plugin; it cannot run as {}",
                wanted.as_str()
            )
        } else {
            format!(
                "{described} is a {} plugin; set its deployment.type to remote to run it remotely",
                own.as_str()
            )
        };
        problems.push(Diagnostic::at(at("deployment"), why));
    }
    if problems.is_empty() {
        Ok(wanted)
    } else {
        Err(problems)
    }
}

/// Sidecars share the pod's network: their ports (gRPC and gRPC+1 for metrics) must not
/// collide with each other or with the proxy's.
fn check_ports(shard: &PrismShard, uses: &[PluginUse<'_>]) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    let mut taken: BTreeMap<i32, String> = BTreeMap::new();
    taken.insert(DATA_PORT, "the proxy's data port".into());
    taken.insert(METRICS_PORT, "the proxy's metrics port".into());
    for u in uses
        .iter()
        .filter(|u| u.deployment == PluginDeploymentType::Sidecar)
    {
        let index = shard
            .spec
            .plugins
            .iter()
            .position(|e| e.name == u.entry.name)
            .unwrap_or(0);
        for port in [u.port(), u.port() + 1] {
            let owner = format!("sidecar {}", u.entry.name);
            if let Some(other) = taken.insert(port, owner) {
                problems.push(Diagnostic::at(
                    format!("spec.plugins[{index}].name"),
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
    problems
}
