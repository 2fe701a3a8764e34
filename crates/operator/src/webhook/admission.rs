//! What the validating webhook decides about one PrismShard, PrismPlugin or PrismNamespace.
//!
//! Three layers, in order:
//! 1. the object on its own, by the code `prism-render validate` runs on a document of it
//!    ([`check_object`]): any problem refuses it, in the CLI's words;
//! 2. what would otherwise end in a `SharedAdminRefused` or `NameConflict` condition, against
//!    the operator's caches: refused, in the condition's words;
//! 3. what depends on the order objects are applied in (a plugin not created yet, a version no
//!    PrismPlugin has yet, no shard to place a namespace on yet): allowed, with a warning in
//!    the CLI's words. A GitOps sync that applies namespaces before shards is never refused.
//!
//! While the caches are still loading, only the first layer runs; the response says so in a
//! warning, and the status conditions report what the other two would have found.

use kube::ResourceExt;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use serde_json::Value;

use crate::decide::admin::{Access, access};
use crate::namespace::rules::blocked;
use crate::shard::{admin_of, refused};
use crate::view::View;
use prism_api::{PrismNamespace, PrismShard};
use prism_render::error::Diagnostic;
use prism_render::render::resolve::{placement, satisfies, shard_plugins};
use prism_render::source::{Typed, check_object};

/// What the caches allow the webhook to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caches {
    /// Listed: every check runs.
    Synced,
    /// Still loading: only the object on its own is checked.
    Loading,
}

/// The warning added while the caches load.
pub const LOADING: &str = "the operator's caches are still loading, so this object was checked \
     on its own: shared admins, name conflicts, plugins and placement are reported in its status \
     conditions";

/// The decision about one object: refusals (none: allowed) and warnings.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Why it is refused, one line each.
    pub refusals: Vec<String>,
    /// What the user should know, one line each.
    pub warnings: Vec<String>,
}

impl Verdict {
    /// The admission response to `request`.
    pub fn respond(self, request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let mut response = AdmissionResponse::from(request);
        if !self.refusals.is_empty() {
            response = response.deny(self.refusals.join("\n"));
        }
        if !self.warnings.is_empty() {
            response.warnings = Some(self.warnings);
        }
        response
    }
}

/// A problem as the CLI prints it, without the file and line: `path: message`.
pub fn said(problem: &Diagnostic) -> String {
    if problem.path.is_empty() {
        problem.message.clone()
    } else {
        format!("{}: {}", problem.path, problem.message)
    }
}

/// Decides about the object of `request`.
pub fn review(
    view: &View,
    allow_shared: bool,
    caches: Caches,
    request: &AdmissionRequest<DynamicObject>,
) -> Verdict {
    let Some(object) = &request.object else {
        return Verdict::default();
    };
    if !matches!(request.operation, Operation::Create | Operation::Update)
        || object.metadata.deletion_timestamp.is_some()
        || unchanged(object, request.old_object.as_ref())
    {
        return Verdict::default();
    }
    let json = serde_json::to_value(object).unwrap_or(Value::Null);
    let namespace = request.namespace.clone().unwrap_or_default();
    let typed = match check_object(&json, &namespace) {
        Ok(typed) => typed,
        Err(problems) => {
            return Verdict {
                refusals: problems.iter().map(said).collect(),
                warnings: Vec::new(),
            };
        }
    };
    if caches == Caches::Loading {
        return Verdict {
            refusals: Vec::new(),
            warnings: vec![LOADING.into()],
        };
    }
    match typed {
        Typed::Shard(shard) => shard_verdict(view, allow_shared, &shard),
        Typed::Namespace(ns) => namespace_verdict(view, allow_shared, &ns),
        Typed::Plugin(_) => Verdict::default(),
    }
}

/// An update that leaves what the webhook checks alone (spec, labels, annotations): a
/// finalizer or an owner reference changing. Never refused, so that an object admitted
/// before a rule existed can still be deleted.
fn unchanged(object: &DynamicObject, old: Option<&DynamicObject>) -> bool {
    old.is_some_and(|old| {
        old.data.get("spec") == object.data.get("spec")
            && old.metadata.labels == object.metadata.labels
            && old.metadata.annotations == object.metadata.annotations
    })
}

/// A shard: refused when it takes an older shard's admin; warned about plugins that do not
/// resolve yet; refused for plugin problems that no later apply fixes (ports, deployment).
fn shard_verdict(view: &View, allow_shared: bool, shard: &PrismShard) -> Verdict {
    let mut verdict = Verdict::default();
    if let (Some(Access::Refused { owner, .. }), Some(endpoints)) =
        (access(view, shard, allow_shared), admin_of(view, shard))
    {
        verdict.refusals.push(refused(&endpoints, &owner));
    }
    let ns = shard.namespace().unwrap_or_default();
    let available = view.plugin_names(&ns);
    let found: Vec<_> = shard
        .spec
        .plugins
        .iter()
        .map(|entry| view.plugin(&ns, &entry.name))
        .collect();
    let lookup = |name: &str| {
        let i = shard.spec.plugins.iter().position(|e| e.name == name)?;
        let plugin = found[i].as_deref()?;
        Some((plugin, format!("PrismPlugin {ns}/{name}")))
    };
    let Err(problems) = shard_plugins(shard, lookup, &available) else {
        return verdict;
    };
    for problem in &problems {
        match pending(shard, &found, &problem.path) {
            true => verdict.warnings.push(said(problem)),
            false => verdict.refusals.push(said(problem)),
        }
    }
    verdict
}

/// Whether the plugin problem at `path` may be fixed by applying a PrismPlugin later: the
/// plugin does not exist yet, or no version it has satisfies the requirement yet.
fn pending(
    shard: &PrismShard,
    found: &[Option<std::sync::Arc<prism_api::PrismPlugin>>],
    path: &str,
) -> bool {
    shard.spec.plugins.iter().enumerate().any(|(i, entry)| {
        let at = format!("spec.plugins[{i}].");
        let Some(field) = path.strip_prefix(&at) else {
            return false;
        };
        match &found[i] {
            None => true,
            Some(plugin) => {
                field == "version" && satisfies(&entry.version, &plugin.spec.version) == Some(false)
            }
        }
    })
}

/// A namespace: refused when it would be blocked from admin (its shard's admin is refused,
/// or an older PrismNamespace owns its name there); warned about when no shard takes it yet.
fn namespace_verdict(view: &View, allow_shared: bool, ns: &PrismNamespace) -> Verdict {
    let mut verdict = Verdict::default();
    let shards = view.live_shards(&ns.namespace().unwrap_or_default());
    let refs: Vec<&PrismShard> = shards.iter().map(|s| &**s).collect();
    let shard = match placement(ns, &refs) {
        Ok(name) => shards.iter().find(|s| s.name_any() == name).cloned(),
        Err(problem) => {
            verdict.warnings.push(said(&problem));
            None
        }
    };
    let Some(shard) = shard else {
        return verdict;
    };
    let Some(endpoints) = view.admins.endpoints_of(&shard) else {
        return verdict;
    };
    if let Some(b) = blocked(view, allow_shared, ns, &shard, &endpoints) {
        verdict.refusals.push(b.message);
    }
    verdict
}

#[cfg(test)]
mod tests;
