//! Which Prism admin a shard syncs to, and who else uses it.
//!
//! Upstream admin partitions namespaces over every proxy registered with it and keys
//! namespaces by bare name. So two shards with one admin serve each other's namespaces, and
//! two PrismNamespaces of one name in different Kubernetes namespaces overwrite each other.
//! The rules here keep both from happening silently:
//! - an admin belongs to the oldest shard (creation time, then UID) naming any of its
//!   endpoints; other shards are refused unless the operator allows sharing;
//! - a name in an admin belongs to the oldest PrismNamespace with that name reaching it; the
//!   others wait, and are never sent.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::sync::Arc;

use kube::{Resource, ResourceExt};

use super::context::Ctx;
use prism_api::{PrismNamespace, PrismShard};
use prism_render::render::placement::place;

/// How a shard may use its admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No other shard uses any of its endpoints.
    Own,
    /// Other shards (`namespace/name`, oldest first) use it too, and the operator allows it.
    Shared(Vec<String>),
    /// An older shard (`namespace/name`) uses it; sharing is not allowed.
    Refused {
        /// The shard that owns the admin.
        owner: String,
        /// Every other shard using it, oldest first.
        with: Vec<String>,
    },
}

/// The comma-separated admin endpoints of `shard`: its own, else the operator's default.
pub fn endpoints_of(ctx: &Ctx, shard: &PrismShard) -> Option<String> {
    shard
        .spec
        .admin_endpoint
        .clone()
        .or_else(|| ctx.settings.admin_endpoint.clone())
}

/// The normalized endpoints of a list; an unparsable list stands for itself.
fn endpoint_set(ctx: &Ctx, list: &str) -> BTreeSet<String> {
    match prism_admin::endpoints_of(list, ctx.settings.admin_tls.is_some()) {
        Ok(endpoints) => endpoints.into_iter().collect(),
        Err(_) => [list.to_string()].into(),
    }
}

/// `namespace/name`.
pub fn key<K: Resource>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Older first: creation time, then UID.
fn by_age<K: Resource>(a: &K, b: &K) -> Ordering {
    let created = |o: &K| o.meta().creation_timestamp.as_ref().map(|t| t.0);
    created(a)
        .cmp(&created(b))
        .then_with(|| a.meta().uid.cmp(&b.meta().uid))
}

/// Live shards (any Kubernetes namespace) sharing an admin endpoint with `endpoints`, oldest
/// first, `shard` itself included.
fn users(ctx: &Ctx, endpoints: &BTreeSet<String>) -> Vec<Arc<PrismShard>> {
    let mut users: Vec<Arc<PrismShard>> = ctx
        .shards
        .state()
        .into_iter()
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .filter(|s| {
            endpoints_of(ctx, s)
                .is_some_and(|list| !endpoint_set(ctx, &list).is_disjoint(endpoints))
        })
        .collect();
    users.sort_by(|a, b| by_age(&**a, &**b));
    users
}

/// How `shard` may use its admin (`None`: it has none).
pub fn access(ctx: &Ctx, shard: &PrismShard) -> Option<Access> {
    let endpoints = endpoint_set(ctx, &endpoints_of(ctx, shard)?);
    let me = key(shard);
    let users: Vec<String> = users(ctx, &endpoints).iter().map(|s| key(&**s)).collect();
    let others: Vec<String> = users.iter().filter(|k| **k != me).cloned().collect();
    Some(match users.first() {
        _ if others.is_empty() => Access::Own,
        _ if ctx.settings.allow_shared_admin => Access::Shared(others),
        Some(owner) if *owner == me => Access::Shared(others),
        Some(owner) => Access::Refused {
            owner: owner.clone(),
            with: others,
        },
        None => Access::Own, // not in the cache yet: nobody else is either
    })
}

/// The shard a namespace is (or would be) placed on.
fn shard_of(ctx: &Ctx, ns: &PrismNamespace) -> Option<Arc<PrismShard>> {
    let shards: Vec<Arc<PrismShard>> = ctx
        .shards
        .state()
        .into_iter()
        .filter(|s| s.namespace() == ns.namespace() && s.metadata.deletion_timestamp.is_none())
        .collect();
    let name = match ns.status.as_ref().and_then(|s| s.shard.clone()) {
        Some(name) => name,
        None => place(ns, shards.iter().map(|s| &**s)).ok()?.shard,
    };
    shards.into_iter().find(|s| s.name_any() == name)
}

/// The PrismNamespace that owns `ns`'s name in the admin it reaches through `endpoints`: the
/// oldest other one with the same name, in another Kubernetes namespace, reaching an admin
/// that shares an endpoint. `None` when `ns` owns it.
pub fn name_owner(ctx: &Ctx, ns: &PrismNamespace, endpoints: &str) -> Option<String> {
    let mine = endpoint_set(ctx, endpoints);
    let name = ns.name_any();
    ctx.namespaces
        .state()
        .into_iter()
        .filter(|o| o.name_any() == name && o.namespace() != ns.namespace())
        .filter(|o| by_age(&**o, ns) == Ordering::Less)
        .filter(|o| {
            shard_of(ctx, o)
                .and_then(|s| endpoints_of(ctx, &s))
                .is_some_and(|list| !endpoint_set(ctx, &list).is_disjoint(&mine))
        })
        .min_by(|a, b| by_age(&**a, &**b))
        .map(|o| key(&*o))
}

/// Proxies of `shard` that admin knows but that have no pod: registered by this operator, or
/// named as the assigned proxy of a namespace placed on the shard. Sorted.
pub fn stale_proxies(ctx: &Ctx, shard: &PrismShard) -> Vec<String> {
    let namespace = shard.namespace();
    let name = shard.name_any();
    let pods: BTreeSet<String> = ctx
        .pods
        .state()
        .iter()
        .filter(|p| p.namespace() == namespace)
        .map(|p| p.name_any())
        .collect();
    let assigned = ctx
        .namespaces
        .state()
        .into_iter()
        .filter(|n| n.namespace() == namespace)
        .filter_map(|n| n.status.clone())
        .filter(|s| s.shard.as_deref() == Some(name.as_str()))
        .filter_map(|s| s.assigned_proxy);
    let prefix = format!("{}-", prism_render::render::contract::shard_fullname(&name));
    let known: BTreeSet<String> = ctx
        .registered_proxies(&key(shard))
        .into_iter()
        .chain(assigned.filter(|p| {
            p.strip_prefix(&prefix)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        }))
        .collect();
    known.difference(&pods).cloned().collect()
}
