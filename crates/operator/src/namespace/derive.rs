//! The status of a namespace, derived from where it was placed and what Prism admin said.
//! Pure.

use jiff::Timestamp;

use crate::kit::error::Error;
use crate::kit::outcome::{Cond, Outcome, set_outcome};
use prism_admin::{Accepted, proto};
use prism_api::{NamespaceState, PrismNamespaceStatus, reason};

/// The answer of a write Prism admin accepted.
pub type Synced = Accepted<proto::CreateNamespaceResponse>;

/// Why a placed namespace is not sent to Prism admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// CamelCase reason.
    pub reason: &'static str,
    /// What is wrong and what to do.
    pub message: String,
    /// The state to report.
    pub state: NamespaceState,
}

/// The status of a namespace placed on `shard` that is not sent to admin.
pub fn blocked_status(
    status: &mut PrismNamespaceStatus,
    shard: &str,
    blocked: &Blocked,
    now: Timestamp,
) {
    status.shard = Some(shard.to_string());
    status.state = Some(blocked.state);
    let outcome = Outcome::failed(blocked.reason, blocked.message.clone());
    set_outcome(
        &mut status.conditions,
        outcome,
        status.observed_generation,
        now,
    );
}

/// Why proxy `assigned` (whose pod belongs to shard `owner`, `(namespace, shard)`, or to no
/// pod) does not serve a namespace placed on `shard` in `namespace`, if it does not. Pure.
pub fn placed_off_shard(
    shard: &str,
    namespace: &str,
    assigned: &str,
    owner: Option<&(String, String)>,
) -> Option<String> {
    match owner {
        Some((n, s)) if n == namespace && s == shard => None,
        Some((n, s)) => Some(format!(
            "Prism admin assigned it to proxy {assigned} of shard {n}/{s}, not to shard {shard}: \
             the admin is shared, and it spreads namespaces over every proxy registered with it"
        )),
        None => Some(format!(
            "Prism admin assigned it to proxy {assigned}, which has no pod: admin keeps proxies \
             registered after their pods are gone (see status.admin.staleProxies of shard \
             {shard})"
        )),
    }
}

/// The status of a namespace no shard can host.
pub fn unschedulable_status(status: &mut PrismNamespaceStatus, why: &str, now: Timestamp) {
    status.state = Some(NamespaceState::Pending);
    let outcome = Outcome::failed(reason::UNSCHEDULABLE, why);
    set_outcome(
        &mut status.conditions,
        outcome,
        status.observed_generation,
        now,
    );
}

/// The status of a namespace placed on `shard` after pushing it to Prism admin came to
/// `synced`; `off_shard` says why the proxy admin assigned does not
/// serve the shard, if it does not.
pub fn placed_status(
    status: &mut PrismNamespaceStatus,
    shard: &str,
    synced: &Result<Synced, Error>,
    off_shard: Option<&str>,
    now: Timestamp,
) {
    if status
        .shard
        .as_deref()
        .is_some_and(|previous| previous != shard)
    {
        status.assigned_partition = None;
        status.assigned_proxy = None;
        status.admin_endpoint = None;
    }
    status.shard = Some(shard.to_string());
    let outcome = match synced {
        Ok(accepted) => accepted_outcome(status, shard, accepted, off_shard),
        Err(e) => {
            status.state = Some(match e.is_retryable() {
                true => NamespaceState::Pending,
                false => NamespaceState::Failed,
            });
            Outcome::failed(e.reason(), e.to_string())
        }
    };
    set_outcome(
        &mut status.conditions,
        outcome,
        status.observed_generation,
        now,
    );
}

/// What admin assigned, in status, and the trio of a namespace admin accepted: Active, or
/// Failed when `off_shard` says the proxy it assigned is not one of the shard's.
fn accepted_outcome(
    status: &mut PrismNamespaceStatus,
    shard: &str,
    accepted: &Synced,
    off_shard: Option<&str>,
) -> Outcome {
    let resp = &accepted.answer;
    status.assigned_partition = Some(resp.assigned_partition);
    status.assigned_proxy = Some(resp.assigned_proxy.clone()).filter(|p| !p.is_empty());
    status.admin_endpoint = Some(accepted.endpoint.clone());
    if let Some(why) = off_shard {
        status.state = Some(NamespaceState::Failed);
        return Outcome::failed(reason::PLACED_OFF_SHARD, why);
    }
    status.state = Some(NamespaceState::Active);
    let message = match status.assigned_proxy.as_deref() {
        Some(proxy) => format!(
            "accepted by Prism admin {} and placed on proxy {proxy} of shard {shard}",
            accepted.endpoint
        ),
        None => format!(
            "accepted by Prism admin {} for shard {shard}, no proxy assigned",
            accepted.endpoint
        ),
    };
    Outcome {
        ready: Cond::ready(reason::SYNCED, message),
        progressing: None,
        degraded: Cond::not_degraded(reason::SYNCED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prism_admin::AdminError;

    fn now() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    fn draft() -> PrismNamespaceStatus {
        PrismNamespaceStatus {
            observed_generation: Some(2),
            ..Default::default()
        }
    }

    fn condition<'a>(status: &'a PrismNamespaceStatus, type_: &str) -> (&'a str, &'a str, &'a str) {
        let c = status.conditions.iter().find(|c| c.type_ == type_).unwrap();
        (c.status.as_str(), c.reason.as_str(), c.message.as_str())
    }

    fn synced(partition: i32, proxy: &str) -> Result<Synced, Error> {
        Ok(Accepted {
            answer: proto::CreateNamespaceResponse {
                success: true,
                assigned_partition: partition,
                assigned_proxy: proxy.into(),
                ..Default::default()
            },
            endpoint: "http://admin-1:8981".into(),
            attempts: 1,
        })
    }

    #[test]
    fn a_namespace_no_shard_fits_is_unschedulable() {
        let mut status = draft();
        unschedulable_status(&mut status, "no shard has sla_tier gold", now());
        assert_eq!(status.state, Some(NamespaceState::Pending));
        let why = "no shard has sla_tier gold";
        assert_eq!(condition(&status, "Ready"), ("False", "Unschedulable", why));
        assert_eq!(
            condition(&status, "Degraded"),
            ("True", "Unschedulable", why)
        );
        assert!(!status.conditions.iter().any(|c| c.type_ == "Progressing"));
    }

    #[test]
    fn a_synced_namespace_is_active() {
        let mut status = draft();
        placed_status(&mut status, "a", &synced(7, "prism-a-0"), None, now());
        assert_eq!(status.state, Some(NamespaceState::Active));
        assert_eq!(status.shard.as_deref(), Some("a"));
        assert_eq!(status.assigned_partition, Some(7));
        assert_eq!(status.assigned_proxy.as_deref(), Some("prism-a-0"));
        assert_eq!(
            status.admin_endpoint.as_deref(),
            Some("http://admin-1:8981")
        );
        assert_eq!(
            condition(&status, "Ready"),
            (
                "True",
                "Synced",
                "accepted by Prism admin http://admin-1:8981 and placed on proxy prism-a-0 of \
                 shard a"
            )
        );
        assert_eq!(condition(&status, "Degraded"), ("False", "Synced", ""));
    }

    #[test]
    fn admin_errors_leave_it_pending_or_failed() {
        let mut status = draft();
        let down = Err(Error::from(AdminError::Unavailable("refused".into())));
        placed_status(&mut status, "a", &down, None, now());
        assert_eq!(status.state, Some(NamespaceState::Pending));
        assert_eq!(
            condition(&status, "Ready"),
            (
                "False",
                "AdminUnavailable",
                "Prism admin is unavailable: refused"
            )
        );
        let rejected = Err(Error::from(AdminError::Rejected("bad config".into())));
        placed_status(&mut status, "a", &rejected, None, now());
        assert_eq!(status.state, Some(NamespaceState::Failed));
        assert_eq!(condition(&status, "Degraded").1, "AdminRejected");
        let secret = Err(Error::Secret("Secret orders-db has no key nope".into()));
        placed_status(&mut status, "a", &secret, None, now());
        assert_eq!(status.state, Some(NamespaceState::Pending));
        assert_eq!(
            condition(&status, "Ready"),
            (
                "False",
                "SecretUnavailable",
                "Secret orders-db has no key nope"
            )
        );
        placed_status(&mut status, "a", &Err(Error::NoAdminEndpoint), None, now());
        assert_eq!(status.state, Some(NamespaceState::Failed));
    }

    #[test]
    fn moving_shards_forgets_the_old_assignment() {
        let mut status = draft();
        placed_status(&mut status, "a", &synced(7, "prism-a-0"), None, now());
        let down = Err(Error::from(AdminError::Unavailable("refused".into())));
        placed_status(&mut status, "b", &down, None, now());
        assert_eq!(status.shard.as_deref(), Some("b"));
        assert_eq!(status.assigned_partition, None);
        assert_eq!(status.assigned_proxy, None);
        // Staying on the same shard keeps what admin assigned.
        placed_status(&mut status, "b", &synced(9, ""), None, now());
        placed_status(&mut status, "b", &down, None, now());
        assert_eq!(status.assigned_partition, Some(9));
        assert_eq!(status.assigned_proxy, None);
    }

    #[test]
    fn a_namespace_served_by_another_shard_is_not_active() {
        let mine = ("team-a".to_string(), "a".to_string());
        assert_eq!(
            placed_off_shard("a", "team-a", "prism-a-0", Some(&mine)),
            None
        );
        let other = ("team-a".to_string(), "b".to_string());
        let why = placed_off_shard("a", "team-a", "prism-b-1", Some(&other)).unwrap();
        assert!(why.contains("proxy prism-b-1 of shard team-a/b"), "{why}");
        let gone = placed_off_shard("a", "team-a", "prism-a-2", None).unwrap();
        assert!(gone.contains("prism-a-2, which has no pod"), "{gone}");

        let mut status = draft();
        placed_status(&mut status, "a", &synced(7, "prism-b-1"), Some(&why), now());
        assert_eq!(status.state, Some(NamespaceState::Failed));
        assert_eq!(status.assigned_proxy.as_deref(), Some("prism-b-1"));
        assert_eq!(
            condition(&status, "Ready"),
            ("False", "PlacedOffShard", why.as_str())
        );
        assert_eq!(condition(&status, "Degraded").1, "PlacedOffShard");
    }

    #[test]
    fn a_blocked_namespace_says_why_and_keeps_its_placement() {
        let mut status = draft();
        let blocked = Blocked {
            reason: reason::NAME_CONFLICT,
            message: "the name carts belongs to team-a/carts".into(),
            state: NamespaceState::Pending,
        };
        blocked_status(&mut status, "a", &blocked, now());
        assert_eq!(status.state, Some(NamespaceState::Pending));
        assert_eq!(status.shard.as_deref(), Some("a"));
        assert_eq!(
            condition(&status, "Ready"),
            (
                "False",
                "NameConflict",
                "the name carts belongs to team-a/carts"
            )
        );
    }
}
