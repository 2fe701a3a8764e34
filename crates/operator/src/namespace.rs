//! PrismNamespace controller: places each namespace on a shard with the renderer's placement
//! function and upserts it into that shard's Prism admin (`prism.ControlPlane/CreateNamespace`),
//! registering the shard's ready pods as proxies first. Admin failures become conditions,
//! Warning events and per-object backoff; a periodic resync re-creates what an emptied admin
//! lost. Deletion goes through a finalizer and the namespace's reclaim policy.
//!
//! One sync: observe the shards and their ready pods, place the namespace (pure), push it to
//! Prism admin, derive the status (pure), write it once.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};

use super::admin::{self, Access};
use super::conditions::{Cond, Outcome, reason, set_outcome};
use super::context::{Ctx, object_key};
use super::error::Error;
use super::status;
use prism_admin::{Accepted, AdminError, namespace_config, proto};
use prism_api::{NamespaceState, PrismNamespace, PrismNamespaceStatus, PrismShard, ReclaimPolicy};
use prism_render::render::contract::{DATA_PORT, image_tag, shard_fullname};
use prism_render::render::placement::place;

/// Controller name in metrics and logs.
pub const CONTROLLER: &str = "prismnamespace";
/// Finalizer that lets deletion reach Prism admin first.
pub const FINALIZER: &str = "prism.io/namespace-sync";
/// Annotation that lets a deletion finish without reaching Prism admin.
pub const FORCE_DELETE: &str = "prism.io/force-delete";
/// How often a namespace waiting for another one's name looks again.
const NAME_RECHECK: Duration = Duration::from_secs(10);

/// The answer of a write Prism admin accepted.
type Synced = Accepted<proto::CreateNamespaceResponse>;

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

/// Reconciles one namespace.
#[tracing::instrument(skip_all, fields(object = %object_key(&*ns)))]
pub async fn reconcile(ns: Arc<PrismNamespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let api: Api<PrismNamespace> =
        Api::namespaced(ctx.client.clone(), &ns.namespace().unwrap_or_default());
    let run = finalizer(&api, FINALIZER, ns.clone(), |event| async {
        match event {
            Finalizer::Apply(ns) => sync(&ns, &ctx).await,
            Finalizer::Cleanup(ns) => cleanup(&ns, &ctx).await,
        }
    });
    let run = async { run.await.map_err(Error::from) };
    ctx.measured(CONTROLLER, &object_key(&*ns), run).await
}

/// Backs off per object after a failure.
pub fn error_policy(ns: Arc<PrismNamespace>, err: &Error, ctx: Arc<Ctx>) -> Action {
    ctx.retry_later(&object_key(&*ns), err)
}

async fn sync(ns: &PrismNamespace, ctx: &Ctx) -> Result<Action, Error> {
    let (old, mut status) = status::begin(ns);
    if let Some(action) = status::pause_if_paused(ctx, ns, &old, &mut status).await? {
        return Ok(action);
    }
    let now = Timestamp::now();
    let shards = live_shards(ctx, ns);
    let placement = match place(ns, shards.iter().map(|s| &**s)) {
        Ok(placement) => placement,
        Err(why) => {
            unschedulable_status(&mut status, &why, now);
            if status::write(ctx, ns, &old, &status).await? {
                ctx.event(ns, true, reason::UNSCHEDULABLE, why).await;
            }
            return Ok(Action::requeue(ctx.settings.resync));
        }
    };
    let shard = shards
        .iter()
        .find(|s| s.name_any() == placement.shard)
        .expect("placed on a listed shard");
    if let Some(previous) = old.shard.as_deref().filter(|p| *p != placement.shard) {
        let note = format!(
            "moved from shard {previous} to {} ({placement})",
            placement.shard
        );
        ctx.event(ns, false, reason::REPLACED, note).await;
    }
    let pods = ready_pods(ctx, &ns.namespace().unwrap_or_default(), &placement.shard);
    let instances: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
    let endpoints = admin::endpoints_of(ctx, shard);
    if let Some(blocked) = endpoints
        .as_deref()
        .and_then(|e| blocked(ctx, ns, shard, e))
    {
        blocked_status(&mut status, &placement.shard, instances, &blocked, now);
        if status::write(ctx, ns, &old, &status).await? {
            ctx.event(ns, true, blocked.reason, blocked.message.clone())
                .await;
        }
        let recheck = match blocked.reason {
            reason::NAME_CONFLICT => NAME_RECHECK.min(ctx.settings.resync),
            _ => ctx.settings.resync,
        };
        return Ok(Action::requeue(recheck));
    }
    let key = object_key(ns);
    let inputs = push_inputs(ns, shard, endpoints.as_deref(), &pods);
    if status.observed_generation == old.observed_generation
        && ctx.pushed_recently(&key, inputs, ctx.settings.resync)
    {
        // Nothing admin would see changed since the last upsert within the resync period (this
        // reconcile came from our own status write, say): no call.
        return Ok(Action::requeue(ctx.settings.resync));
    }
    let synced = push(ctx, ns, shard, endpoints.as_deref(), &pods).await;
    let off_shard = synced
        .as_ref()
        .ok()
        .and_then(|s| off_shard(ctx, ns, &placement.shard, &s.answer.assigned_proxy));
    placed_status(
        &mut status,
        &placement.shard,
        instances,
        &synced,
        off_shard.as_deref(),
        now,
    );
    let action = match &synced {
        Ok(accepted) => {
            let previous = old.admin_endpoint.as_deref();
            if previous.is_some_and(|p| p != accepted.endpoint) {
                let note = format!(
                    "Prism admin {} accepted the write after {} attempt(s); the last one before was {}",
                    accepted.endpoint,
                    accepted.attempts,
                    previous.unwrap_or_default()
                );
                ctx.event(ns, false, reason::ADMIN_ENDPOINT_CHANGED, note)
                    .await;
            }
            Action::requeue(ctx.settings.resync)
        }
        Err(e) => {
            let note = match &endpoints {
                Some(list) => format!("{e} (admin {list})"),
                None => e.to_string(),
            };
            ctx.event(ns, true, e.reason(), note).await;
            Action::requeue(ctx.backoff(&object_key(ns)))
        }
    };
    if status::write(ctx, ns, &old, &status).await?
        && let (Some(why), Ok(_)) = (&off_shard, &synced)
    {
        ctx.event(ns, true, reason::PLACED_OFF_SHARD, why.clone())
            .await;
    }
    if synced.is_ok() {
        ctx.record_push(&key, inputs);
    }
    Ok(action)
}

/// A fingerprint of everything an upsert sends or depends on, but the Secret's value (read at
/// each upsert; a changed Secret reaches admin with the next resync): the namespace's spec
/// generation, its shard and the shard's spec generation, the admin endpoints and the ready
/// proxy pods.
fn push_inputs(
    ns: &PrismNamespace,
    shard: &PrismShard,
    endpoints: Option<&str>,
    pods: &[Arc<Pod>],
) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (ns.uid(), ns.metadata.generation).hash(&mut hasher);
    (shard.uid(), shard.metadata.generation, endpoints).hash(&mut hasher);
    for pod in pods {
        (pod.name_any(), pod.uid()).hash(&mut hasher);
    }
    hasher.finish()
}

/// Why the namespace must not be sent to the admin at `endpoints` of `shard`, if so: the
/// shard may not use that admin, or another PrismNamespace owns the name there.
fn blocked(ctx: &Ctx, ns: &PrismNamespace, shard: &PrismShard, endpoints: &str) -> Option<Blocked> {
    if let Some(Access::Refused { owner, .. }) = admin::access(ctx, shard) {
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
    let owner = admin::name_owner(ctx, ns, endpoints)?;
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

/// The status of a namespace placed on `shard` that is not sent to admin.
pub fn blocked_status(
    status: &mut PrismNamespaceStatus,
    shard: &str,
    instances: Vec<String>,
    blocked: &Blocked,
    now: Timestamp,
) {
    status.shard = Some(shard.to_string());
    status.prism_instances = instances;
    status.state = Some(blocked.state);
    let outcome = Outcome::failed(blocked.reason, blocked.message.clone());
    set_outcome(
        &mut status.conditions,
        outcome,
        status.observed_generation,
        now,
    );
}

/// Why the proxy admin assigned (`assigned`) does not serve `shard`, if it does not.
fn off_shard(ctx: &Ctx, ns: &PrismNamespace, shard: &str, assigned: &str) -> Option<String> {
    if assigned.is_empty() {
        return None;
    }
    let namespace = ns.namespace().unwrap_or_default();
    let owner = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.name_any() == assigned)
        .map(|p| {
            let shard = p.labels().get(INSTANCE_LABEL).cloned().unwrap_or_default();
            (p.namespace().unwrap_or_default(), shard)
        })
        .min_by_key(|(n, _)| *n != namespace);
    placed_off_shard(shard, &namespace, assigned, owner.as_ref())
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

/// The shards in the namespace's Kubernetes namespace that are not being deleted.
fn live_shards(ctx: &Ctx, ns: &PrismNamespace) -> Vec<Arc<PrismShard>> {
    ctx.shards
        .state()
        .into_iter()
        .filter(|s| s.namespace() == ns.namespace() && s.metadata.deletion_timestamp.is_none())
        .collect()
}

/// The status of a namespace no shard can host.
pub fn unschedulable_status(status: &mut PrismNamespaceStatus, why: &str, now: Timestamp) {
    status.state = Some(NamespaceState::Pending);
    status.prism_instances.clear();
    let outcome = Outcome::failed(reason::UNSCHEDULABLE, why);
    set_outcome(
        &mut status.conditions,
        outcome,
        status.observed_generation,
        now,
    );
}

/// The status of a namespace placed on `shard` (with proxy pods `instances`) after pushing it
/// to Prism admin came to `synced`; `off_shard` says why the proxy admin assigned does not
/// serve the shard, if it does not.
pub fn placed_status(
    status: &mut PrismNamespaceStatus,
    shard: &str,
    instances: Vec<String>,
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
    status.prism_instances = instances;
    let outcome = match synced {
        Ok(accepted) => {
            let resp = &accepted.answer;
            status.assigned_partition = Some(resp.assigned_partition);
            status.assigned_proxy = Some(resp.assigned_proxy.clone()).filter(|p| !p.is_empty());
            status.admin_endpoint = Some(accepted.endpoint.clone());
            status.health = None;
            match off_shard {
                Some(why) => {
                    status.state = Some(NamespaceState::Failed);
                    Outcome::failed(reason::PLACED_OFF_SHARD, why)
                }
                None => {
                    status.state = Some(NamespaceState::Active);
                    Outcome {
                        ready: Cond::ready(
                            reason::SYNCED,
                            format!(
                                "synced to Prism admin {} on shard {shard}",
                                accepted.endpoint
                            ),
                        ),
                        progressing: None,
                        degraded: Cond::not_degraded(reason::SYNCED),
                    }
                }
            }
        }
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

/// The label that names a proxy pod's shard.
const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// Ready proxy pods of `shard`, sorted by name.
fn ready_pods(ctx: &Ctx, namespace: &str, shard: &str) -> Vec<Arc<Pod>> {
    let mut pods: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(namespace))
        .filter(|p| p.labels().get(INSTANCE_LABEL).map(String::as_str) == Some(shard))
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .collect();
    pods.sort_by_key(|p| p.name_any());
    pods
}

/// Upserts the namespace into the Prism admin at `endpoints` (of `shard`), with the proxies
/// `pods`.
async fn push(
    ctx: &Ctx,
    ns: &PrismNamespace,
    shard: &PrismShard,
    endpoints: Option<&str>,
    pods: &[Arc<Pod>],
) -> Result<Synced, Error> {
    let endpoints = endpoints.ok_or(Error::NoAdminEndpoint)?;
    let connection = connection_string(ctx, ns).await?;
    Ok(upsert(ctx, ns, shard, endpoints, pods, connection.as_deref()).await?)
}

/// Reads a Secret-referenced connection string; the value is never logged or reported.
async fn connection_string(ctx: &Ctx, ns: &PrismNamespace) -> Result<Option<String>, Error> {
    let Some(from) = &ns.spec.connection_string_from else {
        return Ok(None);
    };
    let r = &from.secret_key_ref;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns.namespace().unwrap_or_default());
    let secret = match api.get_opt(&r.name).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(Error::Secret(format!("Secret {} not found", r.name))),
        Err(e) => {
            let why = format!("reading Secret {}: {}", r.name, status_reason(&e));
            return Err(Error::Secret(why));
        }
    };
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&r.key))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(&r.key))
                .map(|s| s.clone().into_bytes())
        })
        .ok_or_else(|| Error::Secret(format!("Secret {} has no key {}", r.name, r.key)))?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| Error::Secret(format!("Secret {} key {} is not UTF-8", r.name, r.key)))
}

/// An API error without its (possibly object-echoing) body.
fn status_reason(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.reason, s.code),
        other => other.to_string(),
    }
}

/// Registers the shard's ready pods as proxies (idempotent), then upserts the namespace, on
/// whichever node of the admin at `endpoints` accepts writes.
async fn upsert(
    ctx: &Ctx,
    ns: &PrismNamespace,
    shard: &PrismShard,
    endpoints: &str,
    pods: &[Arc<Pod>],
    connection: Option<&str>,
) -> Result<Synced, AdminError> {
    let group = ctx.admin.group(endpoints)?;
    let shard_key = admin::key(shard);
    for pod in pods {
        let uid = pod.uid().unwrap_or_default();
        ctx.registration(endpoints, &uid, &shard_key, &pod.name_any())
            .ensure(|| async {
                group.register_proxy(registration(shard, pod)).await?;
                Ok(())
            })
            .await?;
    }
    let request = proto::CreateNamespaceRequest {
        namespace: ns.name_any(),
        requesting_proxy: pods.first().map(|p| p.name_any()).unwrap_or_default(),
        config: Some(namespace_config(ns, &shard.name_any(), connection)),
        principal: prism_admin::MANAGER.to_string(),
    };
    match group.create_namespace(request).await {
        Err(e @ AdminError::FailedPrecondition(_)) => {
            // Admin may have restarted empty: register the proxies again next time.
            ctx.forget_endpoint(endpoints);
            Err(e)
        }
        other => other,
    }
}

/// The proxy registration of one of the shard's pods.
fn registration(shard: &PrismShard, pod: &Pod) -> proto::ProxyRegistration {
    let proxy = pod.name_any();
    let shard_name = shard.name_any();
    let k8s_ns = shard.namespace().unwrap_or_default();
    let image = shard.spec.image.clone().unwrap_or_default();
    proto::ProxyRegistration {
        proxy_id: proxy.clone(),
        address: format!(
            "{proxy}.{}-headless.{k8s_ns}.svc:{DATA_PORT}",
            shard_fullname(&shard_name)
        ),
        region: String::new(),
        version: image_tag(&image).to_string(),
        capabilities: shard.spec.backends.clone(),
        metadata: [("prism.io/shard".to_string(), shard_name)]
            .into_iter()
            .collect(),
    }
}

async fn cleanup(ns: &PrismNamespace, ctx: &Ctx) -> Result<Action, Error> {
    ctx.forget_push(&object_key(ns));
    if ns.spec.reclaim_policy.unwrap_or_default() == ReclaimPolicy::Retain {
        let note = "reclaimPolicy is retain: the namespace stays in Prism".to_string();
        ctx.event(ns, false, reason::RETAINED, note).await;
        return Ok(Action::await_change());
    }
    let (old, mut status) = status::begin(ns);
    if status.state != Some(NamespaceState::Terminating) {
        status.state = Some(NamespaceState::Terminating);
        status::write(ctx, ns, &old, &status).await?;
    }
    let e = match revoke(ctx, ns, &status).await {
        Ok(accepted) => {
            let (warning, why, note) = revoke_report(&ns.name_any(), &accepted);
            ctx.event(ns, warning, why, note).await;
            return Ok(Action::await_change());
        }
        Err(e) => e,
    };
    let deadline = ctx.settings.deletion_deadline;
    match abandon_reason(ns, deadline, Timestamp::now()) {
        Some(why) => {
            let note =
                format!("could not revoke in Prism admin ({e}); deleting anyway because {why}");
            ctx.event(ns, true, reason::REVOKE_ABANDONED, note).await;
            Ok(Action::await_change())
        }
        None => {
            let note = format!(
                "revoking in Prism admin failed: {e}; will retry until the deletion deadline"
            );
            ctx.event(ns, true, e.reason(), note).await;
            Err(e.into())
        }
    }
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
    ctx: &Ctx,
    ns: &PrismNamespace,
    status: &PrismNamespaceStatus,
) -> Result<Accepted<proto::NamespaceRevocationAck>, AdminError> {
    let shard = status.shard.as_deref().and_then(|s| {
        ctx.shards
            .state()
            .into_iter()
            .find(|x| x.name_any() == s && x.namespace() == ns.namespace())
    });
    let endpoints = shard
        .as_deref()
        .and_then(|s| admin::endpoints_of(ctx, s))
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
        status.prism_instances = vec!["prism-a-0".into()];
        unschedulable_status(&mut status, "no shard has sla_tier gold", now());
        assert_eq!(status.state, Some(NamespaceState::Pending));
        assert!(status.prism_instances.is_empty());
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
        let pods = vec!["prism-a-0".to_string()];
        placed_status(&mut status, "a", pods, &synced(7, "prism-a-0"), None, now());
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
                "synced to Prism admin http://admin-1:8981 on shard a"
            )
        );
        assert_eq!(condition(&status, "Degraded"), ("False", "Synced", ""));
    }

    #[test]
    fn admin_errors_leave_it_pending_or_failed() {
        let mut status = draft();
        let down = Err(Error::from(AdminError::Unavailable("refused".into())));
        placed_status(&mut status, "a", vec![], &down, None, now());
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
        placed_status(&mut status, "a", vec![], &rejected, None, now());
        assert_eq!(status.state, Some(NamespaceState::Failed));
        assert_eq!(condition(&status, "Degraded").1, "AdminRejected");
        let secret = Err(Error::Secret("Secret orders-db has no key nope".into()));
        placed_status(&mut status, "a", vec![], &secret, None, now());
        assert_eq!(status.state, Some(NamespaceState::Pending));
        assert_eq!(
            condition(&status, "Ready"),
            (
                "False",
                "SecretUnavailable",
                "Secret orders-db has no key nope"
            )
        );
        placed_status(
            &mut status,
            "a",
            vec![],
            &Err(Error::NoAdminEndpoint),
            None,
            now(),
        );
        assert_eq!(status.state, Some(NamespaceState::Failed));
    }

    #[test]
    fn moving_shards_forgets_the_old_assignment() {
        let mut status = draft();
        placed_status(
            &mut status,
            "a",
            vec![],
            &synced(7, "prism-a-0"),
            None,
            now(),
        );
        let down = Err(Error::from(AdminError::Unavailable("refused".into())));
        placed_status(&mut status, "b", vec![], &down, None, now());
        assert_eq!(status.shard.as_deref(), Some("b"));
        assert_eq!(status.assigned_partition, None);
        assert_eq!(status.assigned_proxy, None);
        // Staying on the same shard keeps what admin assigned.
        placed_status(&mut status, "b", vec![], &synced(9, ""), None, now());
        placed_status(&mut status, "b", vec![], &down, None, now());
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
        let pods = vec!["prism-a-0".to_string()];
        placed_status(
            &mut status,
            "a",
            pods,
            &synced(7, "prism-b-1"),
            Some(&why),
            now(),
        );
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
        blocked_status(&mut status, "a", vec!["prism-a-0".into()], &blocked, now());
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
                "apiVersion": "prism.io/v1alpha1", "kind": "PrismNamespace",
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
