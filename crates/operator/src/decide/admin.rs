//! Which Prism admin a shard syncs to, and who else uses it: pure rules over the [`View`].
//!
//! Upstream admin partitions namespaces over every proxy registered with it and keys
//! namespaces by bare name. So two shards with one admin serve each other's namespaces, and
//! two PrismNamespaces of one name in different Kubernetes namespaces overwrite each other.
//! The rules here keep both from happening silently:
//! - an admin belongs to the oldest shard (creation time, then name) naming any of its
//!   endpoints; other shards are refused unless the operator allows sharing;
//! - a name in an admin belongs to the oldest PrismNamespace with that name reaching it; the
//!   others wait, and are never sent.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use kube::ResourceExt;

use crate::view::{View, by_age, key};
use prism_api::{PrismNamespace, PrismShard};
use prism_render::render::contract::{proxy_id, proxy_pod, shard_fullname};

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

/// How `shard` may use its admin (`None`: it has none); `allow_shared`: the operator's
/// `--allow-shared-admin`.
pub fn access(view: &View, shard: &PrismShard, allow_shared: bool) -> Option<Access> {
    let endpoints = view.admins.endpoint_set(&view.admins.endpoints_of(shard)?);
    let me = key(shard);
    let users: Vec<String> = view
        .admin_users(&endpoints)
        .iter()
        .map(|s| key(&**s))
        .collect();
    let others: Vec<String> = users.iter().filter(|k| **k != me).cloned().collect();
    Some(match users.first() {
        _ if others.is_empty() => Access::Own,
        _ if allow_shared => Access::Shared(others),
        Some(owner) if *owner == me => Access::Shared(others),
        Some(owner) => Access::Refused {
            owner: owner.clone(),
            with: others,
        },
        None => Access::Own, // not in the cache yet: nobody else is either
    })
}

/// The PrismNamespace that owns `ns`'s name in the admin it reaches through `endpoints`: the
/// oldest other one with the same name, in another Kubernetes namespace, reaching an admin
/// that shares an endpoint through a shard that may use it (`allow_shared`: the operator's
/// `--allow-shared-admin`), so that the owner is one that can be sent. `None` when `ns` owns
/// it.
pub fn name_owner(
    view: &View,
    ns: &PrismNamespace,
    endpoints: &str,
    allow_shared: bool,
) -> Option<String> {
    let mine = view.admins.endpoint_set(endpoints);
    view.named(&ns.name_any())
        .into_iter()
        .filter(|o| o.namespace() != ns.namespace())
        .filter(|o| by_age(&**o, ns) == Ordering::Less)
        .filter(|o| {
            view.shard_of(o).is_some_and(|s| {
                let refused =
                    matches!(access(view, &s, allow_shared), Some(Access::Refused { .. }));
                !refused
                    && view
                        .admins
                        .endpoints_of(&s)
                        .is_some_and(|list| !view.admins.endpoint_set(&list).is_disjoint(&mine))
            })
        })
        .min_by(|a, b| by_age(&**a, &**b))
        .map(|o| key(&*o))
}

/// Proxies of `shard` that admin knows but that have no pod: `registered` by this operator
/// (pod names), or named as the assigned proxy of a namespace placed on the shard. Proxy ids as
/// admin knows them, sorted.
pub fn stale_proxies(view: &View, shard: &PrismShard, registered: Vec<String>) -> Vec<String> {
    let namespace = shard.namespace().unwrap_or_default();
    let name = shard.name_any();
    let prefix = format!("{}-", shard_fullname(&name));
    let ordinal = |p: &str| {
        p.strip_prefix(&prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let mine = |id: &String| {
        let (pod, pod_namespace) = proxy_pod(id);
        ordinal(pod) && pod_namespace.is_none_or(|n| n == namespace)
    };
    let pods = view.pod_names(&namespace);
    let live = |id: &String| pods.contains(proxy_pod(id).0);
    let assigned = view.assigned_proxies(&namespace, &name);
    let known: BTreeSet<String> = registered
        .iter()
        .map(|pod| proxy_id(pod, &namespace))
        .chain(assigned.into_iter().filter(mine))
        .collect();
    known.into_iter().filter(|id| !live(id)).collect()
}
