//! Deleting a namespace: its reclaim policy, revoking it in Prism admin, and when to stop
//! waiting for admin.

use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::Context;
use super::rules;
use crate::kit::error::Error;
use crate::kit::report::object_key;
use crate::kit::status;
use prism_admin::{Accepted, AdminError, proto};
use prism_api::{NamespaceState, PrismNamespace, PrismNamespaceStatus, ReclaimPolicy, reason};

/// Annotation that lets a deletion finish without reaching Prism admin.
pub const FORCE_DELETE: &str = "prism.io/force-delete";

/// Deletes the namespace from Prism admin per its reclaim policy.
pub async fn cleanup(ns: &PrismNamespace, ctx: &Context) -> Result<Action, Error> {
    ctx.pushes.forget(&object_key(ns));
    if ns.spec.reclaim_policy.unwrap_or_default() == ReclaimPolicy::Retain {
        let note = "reclaimPolicy is retain: the namespace stays in Prism".to_string();
        ctx.report.event(ns, false, reason::RETAINED, note).await;
        return Ok(Action::await_change());
    }
    let (old, mut status) = status::begin(ns);
    if let Some(why) = not_ours(ns, ctx, &status) {
        let note = format!("nothing revoked in Prism admin: {why}");
        ctx.report.event(ns, false, reason::NOT_REVOKED, note).await;
        return Ok(Action::await_change());
    }
    if status.state != Some(NamespaceState::Terminating) {
        status.state = Some(NamespaceState::Terminating);
        status::write(ctx, ns, &old, &status).await?;
    }
    let e = match revoke(ctx, ns, &status).await {
        Ok(accepted) => {
            let (warning, why, note) = revoke_report(&ns.name_any(), &accepted);
            ctx.report.event(ns, warning, why, note).await;
            return Ok(Action::await_change());
        }
        Err(e) => e,
    };
    let deadline = ctx.settings.deletion_deadline;
    match abandon_reason(ns, deadline, Timestamp::now()) {
        Some(why) => {
            let note =
                format!("could not revoke in Prism admin ({e}); deleting anyway because {why}");
            ctx.report
                .event(ns, true, reason::REVOKE_ABANDONED, note)
                .await;
            Ok(Action::await_change())
        }
        None => {
            let note = format!(
                "revoking in Prism admin failed: {e}; will retry until the deletion deadline"
            );
            ctx.report.event(ns, true, e.reason(), note).await;
            Err(e.into())
        }
    }
}

/// Why revoking the namespace's name in Prism admin would touch what it did not create, if
/// so: admin never accepted it (`status.adminEndpoint` records the admin that did), or the
/// name there now belongs to another PrismNamespace or its shard may not use that admin.
fn not_ours(ns: &PrismNamespace, ctx: &Context, status: &PrismNamespaceStatus) -> Option<String> {
    let blocked = || {
        let shard = ctx.view.shard(
            &ns.namespace().unwrap_or_default(),
            status.shard.as_deref()?,
        )?;
        let endpoints = ctx
            .view
            .admins
            .endpoints_of(&shard)
            .or_else(|| ctx.settings.admin_endpoint.clone())?;
        let allow_shared = ctx.settings.allow_shared_admin;
        rules::blocked(&ctx.view, allow_shared, ns, &shard, &endpoints).map(|b| b.message)
    };
    blocked().or_else(|| {
        status
            .admin_endpoint
            .is_none()
            .then(|| format!("Prism admin never accepted {}", ns.name_any()))
    })
}

/// What to report about a RevokeNamespace admin answered with success: whether it is a
/// warning, the reason and the note. Upstream answers "Namespace revocation not yet
/// implemented" and removes nothing; that is not reported as a revocation.
pub fn revoke_report(
    name: &str,
    accepted: &Accepted<proto::NamespaceRevocationAck>,
) -> (bool, &'static str, String) {
    let said = accepted.answer.message.trim();
    let endpoint = &accepted.endpoint;
    if said.to_ascii_lowercase().contains("not yet implemented")
        || said.to_ascii_lowercase().contains("not implemented")
    {
        let note = format!(
            "Prism admin {endpoint} answered RevokeNamespace with {said:?}: it removed nothing, so \
             {name} stays in admin (upstream prism-admin cannot delete namespaces)"
        );
        (true, reason::REVOKE_NOT_IMPLEMENTED, note)
    } else {
        let note = format!("revoked in Prism admin {endpoint} (reclaimPolicy delete): {said:?}");
        (false, reason::REVOKED, note)
    }
}

/// Revokes the namespace in the Prism admin of the shard it was placed on (else the
/// operator's default admin).
async fn revoke(
    ctx: &Context,
    ns: &PrismNamespace,
    status: &PrismNamespaceStatus,
) -> Result<Accepted<proto::NamespaceRevocationAck>, AdminError> {
    let shard = status
        .shard
        .as_deref()
        .and_then(|s| ctx.view.shard(&ns.namespace().unwrap_or_default(), s));
    let endpoints = shard
        .as_deref()
        .and_then(|s| ctx.view.admins.endpoints_of(s))
        .or_else(|| ctx.settings.admin_endpoint.clone())
        .ok_or_else(|| {
            AdminError::InvalidEndpoint(
                "no Prism admin endpoint is known for this namespace".into(),
            )
        })?;
    let revocation = proto::NamespaceRevocation {
        proxy_id: status.assigned_proxy.clone().unwrap_or_default(),
        namespace: ns.name_any(),
        graceful_timeout_seconds: 30,
    };
    ctx.admin
        .group(&endpoints)?
        .revoke_namespace(revocation)
        .await
}

/// Why a deletion stops waiting for Prism admin, if it does: the force-delete annotation, or
/// `deadline` passed since the deletion began.
pub fn abandon_reason(
    ns: &PrismNamespace,
    deadline: Duration,
    now: Timestamp,
) -> Option<&'static str> {
    let forced = ns.annotations().get(FORCE_DELETE).map(String::as_str) == Some("true");
    let waited = ns
        .meta()
        .deletion_timestamp
        .as_ref()
        .map(|t| now.as_second() - t.0.as_second())
        .unwrap_or(0);
    if forced {
        Some("annotation prism.io/force-delete")
    } else if waited >= deadline.as_secs() as i64 {
        Some("the deletion deadline passed")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    #[test]
    fn a_revocation_that_removed_nothing_is_not_reported_as_one() {
        let ack = |message: &str| Accepted {
            answer: proto::NamespaceRevocationAck {
                success: true,
                message: message.into(),
                revoked_at: 0,
            },
            endpoint: "http://admin-1:8981".into(),
            attempts: 1,
        };
        let (warning, why, note) =
            revoke_report("carts", &ack("Namespace revocation not yet implemented"));
        assert!(warning);
        assert_eq!(why, "RevokeNotImplemented");
        assert!(
            note.contains("\"Namespace revocation not yet implemented\""),
            "{note}"
        );
        assert!(note.contains("carts stays in admin"), "{note}");
        let (warning, why, note) = revoke_report("carts", &ack("revoked"));
        assert!(!warning);
        assert_eq!(why, "Revoked");
        assert!(note.contains("http://admin-1:8981"), "{note}");
    }

    #[test]
    fn a_deletion_stops_waiting_when_forced_or_late() {
        let ns = |annotations: serde_json::Value| -> PrismNamespace {
            serde_json::from_value(json!({
                "apiVersion": "prism.io/v1beta1", "kind": "PrismNamespace",
                "metadata": {
                    "name": "orders", "namespace": "n", "annotations": annotations,
                    "deletionTimestamp": "2023-11-14T22:13:20Z"
                },
                "spec": {"backend": "postgres", "pattern": "keyvalue"}
            }))
            .unwrap()
        };
        let deadline = Duration::from_secs(600);
        let plain = ns(json!({}));
        assert_eq!(abandon_reason(&plain, deadline, now()), None);
        let later = Timestamp::from_second(1_700_000_000 + 600).unwrap();
        assert_eq!(
            abandon_reason(&plain, deadline, later),
            Some("the deletion deadline passed")
        );
        let forced = ns(json!({"prism.io/force-delete": "true"}));
        assert_eq!(
            abandon_reason(&forced, deadline, now()),
            Some("annotation prism.io/force-delete")
        );
    }
}
