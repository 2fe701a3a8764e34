//! Why a placed namespace must not be sent to Prism admin: its shard may not use that admin,
//! or another PrismNamespace owns its name there; and why a namespace admin accepted is not
//! served by its shard. Pure over the view.

use kube::ResourceExt;

use super::derive::{Blocked, placed_off_shard};
use crate::decide::admin::{Access, access, name_owner};
use crate::view::View;
use prism_api::{NamespaceState, PrismNamespace, PrismShard, reason};
use prism_render::render::contract::proxy_pod;

/// Why the namespace must not be sent to the admin at `endpoints` of `shard`, if so: the
/// shard may not use that admin (`allow_shared`: the operator's `--allow-shared-admin`), or
/// another PrismNamespace owns the name there.
pub fn blocked(
    view: &View,
    allow_shared: bool,
    ns: &PrismNamespace,
    shard: &PrismShard,
    endpoints: &str,
) -> Option<Blocked> {
    if let Some(Access::Refused { owner, .. }) = access(view, shard, allow_shared) {
        let message = format!(
            "shard {} shares its Prism admin with the older shard {owner}, and the operator does \
             not allow shared admins: admin would serve this namespace from the proxies of \
             either shard. Give the shard its own spec.adminEndpoint, or run the operator with \
             --allow-shared-admin",
            shard.name_any()
        );
        return Some(Blocked {
            reason: reason::SHARED_ADMIN_REFUSED,
            message,
            state: NamespaceState::Failed,
        });
    }
    let owner = name_owner(view, ns, endpoints, allow_shared)?;
    let message = format!(
        "the name {} in Prism admin belongs to the older PrismNamespace {owner}: admin keys \
         namespaces by name alone, so this one is not sent until that one is deleted",
        ns.name_any()
    );
    Some(Blocked {
        reason: reason::NAME_CONFLICT,
        message,
        state: NamespaceState::Pending,
    })
}

/// Why the proxy admin assigned (`assigned`) does not serve `shard`, if it does not.
pub fn off_shard(view: &View, ns: &PrismNamespace, shard: &str, assigned: &str) -> Option<String> {
    if assigned.is_empty() {
        return None;
    }
    let namespace = ns.namespace().unwrap_or_default();
    let owner = match proxy_pod(assigned) {
        (pod, Some(pod_namespace)) => view
            .pod_owner(pod_namespace, pod)
            .filter(|(found, _)| found == pod_namespace),
        // Registered by an earlier release under the pod name alone.
        (pod, None) => view.pod_owner(&namespace, pod),
    };
    placed_off_shard(shard, &namespace, assigned, owner.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::fixture::{Objects, namespace, pod, shard};

    /// An assigned proxy id names its pod's namespace: a same-named pod elsewhere is another
    /// shard's, and an id without a namespace (an earlier release's) is a pod of the
    /// namespace's own.
    #[test]
    fn assigned_proxy_ids_name_their_pod_and_namespace() {
        let view = Objects(vec![
            shard("team", "s", 0, None),
            shard("other", "s", 0, None),
            pod("team", "s", "prism-s-0", true),
            pod("other", "s", "prism-s-0", true),
            pod("other", "s", "prism-s-1", true),
        ])
        .view(None);
        let ns: PrismNamespace =
            serde_json::from_value(namespace("team", "a", 0, Some("s"))).unwrap();
        let off = |id: &str| off_shard(&view, &ns, "s", id);
        assert_eq!(off("prism-s-0.team"), None);
        assert_eq!(off("prism-s-0"), None, "an earlier release's id");
        assert_eq!(off(""), None, "no proxy named");
        let elsewhere = off("prism-s-0.other").expect("another namespace's pod");
        assert!(elsewhere.contains("of shard other/s"), "{elsewhere}");
        for gone in ["prism-s-1.team", "prism-s-0.third"] {
            let why = off(gone).expect("no such pod");
            assert!(why.contains("which has no pod"), "{gone}: {why}");
        }
    }
}
