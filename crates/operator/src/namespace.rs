//! PrismNamespace controller: places each namespace on a shard with the renderer's placement
//! function and upserts it into that shard's Prism admin (`prism.ControlPlane/CreateNamespace`),
//! registering the shard's ready pods as proxies first. Admin failures become conditions,
//! Warning events and per-object backoff; a periodic resync re-creates what an emptied admin
//! lost. Deletion goes through a finalizer and the namespace's reclaim policy.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};

use super::conditions::{remove, set, set_paused};
use super::context::{Ctx, object_key, paused};
use super::error::Error;
use prism_admin::{AdminError, namespace_config, proto};
use prism_api::{
    NamespaceState, PrismNamespace, PrismNamespaceStatus, PrismShard, ReclaimPolicy, condition,
};
use prism_render::render::contract::{DATA_PORT, image_tag, shard_fullname};
use prism_render::render::placement::place;

/// Controller name in metrics and logs.
pub const CONTROLLER: &str = "prismnamespace";
/// Finalizer that lets deletion reach Prism admin first.
pub const FINALIZER: &str = "prism.io/namespace-sync";
/// Annotation that lets a deletion finish without reaching Prism admin.
pub const FORCE_DELETE: &str = "prism.io/force-delete";

/// Reconciles one namespace.
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

/// Ready proxy pods of `shard`, sorted by name.
fn ready_pods(ctx: &Ctx, namespace: &str, shard: &str) -> Vec<Arc<Pod>> {
    let mut pods: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(namespace))
        .filter(|p| {
            p.labels()
                .get("app.kubernetes.io/instance")
                .map(String::as_str)
                == Some(shard)
        })
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

/// Where the namespace's shard's admin is: the shard's own endpoint, else the operator's.
fn admin_endpoint(ctx: &Ctx, shard: &PrismShard) -> Option<String> {
    shard
        .spec
        .admin_endpoint
        .clone()
        .or_else(|| ctx.settings.admin_endpoint.clone())
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

async fn sync(ns: &PrismNamespace, ctx: &Ctx) -> Result<Action, Error> {
    let k8s_ns = ns.namespace().unwrap_or_default();
    let generation = ns.metadata.generation;
    let now = Timestamp::now();
    let old = ns.status.clone().unwrap_or_default();
    let mut status = old.clone();
    status.observed_generation = generation;
    if paused(ns) {
        set_paused(&mut status.conditions, generation, now);
        write_status(ctx, ns, &old, &status).await?;
        return Ok(Action::await_change());
    }
    remove(&mut status.conditions, condition::PAUSED);

    let shards: Vec<Arc<PrismShard>> = ctx
        .shards
        .state()
        .into_iter()
        .filter(|s| {
            s.namespace().as_deref() == Some(k8s_ns.as_str())
                && s.metadata.deletion_timestamp.is_none()
        })
        .collect();
    let placement = match place(ns, shards.iter().map(|s| &**s)) {
        Ok(p) => p,
        Err(why) => {
            status.state = Some(NamespaceState::Pending);
            status.prism_instances.clear();
            set(
                &mut status.conditions,
                condition::READY,
                false,
                "Unschedulable",
                why.clone(),
                generation,
                now,
            );
            set(
                &mut status.conditions,
                condition::DEGRADED,
                true,
                "Unschedulable",
                why.clone(),
                generation,
                now,
            );
            if write_status(ctx, ns, &old, &status).await? {
                ctx.event(ns, true, "Unschedulable", why).await;
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
        ctx.event(ns, false, "Replaced", note).await;
        status.assigned_partition = None;
        status.assigned_proxy = None;
    }
    status.shard = Some(placement.shard.clone());
    let pods = ready_pods(ctx, &k8s_ns, &placement.shard);
    status.prism_instances = pods.iter().map(|p| p.name_any()).collect();

    let outcome = match admin_endpoint(ctx, shard) {
        None => Err(Error::NoAdminEndpoint),
        Some(endpoint) => match connection_string(ctx, ns).await {
            Err(e) => Err(e),
            Ok(conn) => upsert(ctx, ns, shard, &endpoint, &pods, conn.as_deref())
                .await
                .map_err(Error::from),
        },
    }
    .map_err(|e| (e.reason(), e.to_string(), e.is_retryable()));
    let action = match outcome {
        Ok(resp) => {
            status.state = Some(NamespaceState::Active);
            status.assigned_partition = Some(resp.assigned_partition);
            status.assigned_proxy = Some(resp.assigned_proxy).filter(|p| !p.is_empty());
            status.health = None;
            let msg = format!("synced to Prism admin on shard {}", placement.shard);
            set(
                &mut status.conditions,
                condition::READY,
                true,
                "Synced",
                msg,
                generation,
                now,
            );
            set(
                &mut status.conditions,
                condition::DEGRADED,
                false,
                "Synced",
                "",
                generation,
                now,
            );
            ctx.succeeded(&object_key(ns));
            Action::requeue(ctx.settings.resync)
        }
        Err((reason, why, retryable)) => {
            status.state = Some(if retryable {
                NamespaceState::Pending
            } else {
                NamespaceState::Failed
            });
            set(
                &mut status.conditions,
                condition::READY,
                false,
                reason,
                why.clone(),
                generation,
                now,
            );
            set(
                &mut status.conditions,
                condition::DEGRADED,
                true,
                reason,
                why.clone(),
                generation,
                now,
            );
            ctx.event(ns, true, reason, why).await;
            Action::requeue(ctx.backoff(&object_key(ns)))
        }
    };
    write_status(ctx, ns, &old, &status).await?;
    Ok(action)
}

/// Registers the shard's ready pods as proxies (idempotent), then upserts the namespace.
async fn upsert(
    ctx: &Ctx,
    ns: &PrismNamespace,
    shard: &PrismShard,
    endpoint: &str,
    pods: &[Arc<Pod>],
    connection: Option<&str>,
) -> Result<proto::CreateNamespaceResponse, AdminError> {
    let client = ctx.admin.client(endpoint)?;
    let shard_name = shard.name_any();
    let k8s_ns = shard.namespace().unwrap_or_default();
    let image = shard.spec.image.clone().unwrap_or_default();
    for pod in pods {
        let proxy = pod.name_any();
        let uid = pod.uid().unwrap_or_default();
        if !ctx.mark_registered(endpoint, &uid) {
            continue;
        }
        let reg = proto::ProxyRegistration {
            proxy_id: proxy.clone(),
            address: format!(
                "{proxy}.{}-headless.{k8s_ns}.svc:{DATA_PORT}",
                shard_fullname(&shard_name)
            ),
            region: String::new(),
            version: image_tag(&image).to_string(),
            capabilities: shard.spec.backends.clone(),
            metadata: [("prism.io/shard".to_string(), shard_name.clone())]
                .into_iter()
                .collect(),
        };
        if let Err(e) = client.register_proxy(reg).await {
            ctx.forget_registered(endpoint, &uid);
            return Err(e);
        }
    }
    let request = proto::CreateNamespaceRequest {
        namespace: ns.name_any(),
        requesting_proxy: pods.first().map(|p| p.name_any()).unwrap_or_default(),
        config: Some(namespace_config(ns, &shard_name, connection)),
        principal: prism_admin::MANAGER.to_string(),
    };
    match client.create_namespace(request).await {
        Err(e @ AdminError::FailedPrecondition(_)) => {
            // Admin may have restarted empty: register the proxies again next time.
            ctx.forget_endpoint(endpoint);
            Err(e)
        }
        other => other,
    }
}

async fn cleanup(ns: &PrismNamespace, ctx: &Ctx) -> Result<Action, Error> {
    let policy = ns.spec.reclaim_policy.unwrap_or_default();
    if policy == ReclaimPolicy::Retain {
        ctx.event(
            ns,
            false,
            "Retained",
            "reclaimPolicy is retain: the namespace stays in Prism".to_string(),
        )
        .await;
        return Ok(Action::await_change());
    }
    let old = ns.status.clone().unwrap_or_default();
    let mut status = old.clone();
    if status.state != Some(NamespaceState::Terminating) {
        status.state = Some(NamespaceState::Terminating);
        status.observed_generation = ns.metadata.generation;
        write_status(ctx, ns, &old, &status).await?;
    }
    let shard = status.shard.as_deref().and_then(|s| {
        ctx.shards
            .state()
            .into_iter()
            .find(|x| x.name_any() == s && x.namespace() == ns.namespace())
    });
    let endpoint = shard
        .as_deref()
        .and_then(|s| admin_endpoint(ctx, s))
        .or_else(|| ctx.settings.admin_endpoint.clone());
    let revoked = match endpoint {
        None => Err(AdminError::InvalidEndpoint(
            "no Prism admin endpoint is known for this namespace".into(),
        )),
        Some(endpoint) => match ctx.admin.client(&endpoint) {
            Err(e) => Err(e),
            Ok(client) => client
                .revoke_namespace(proto::NamespaceRevocation {
                    proxy_id: status.assigned_proxy.clone().unwrap_or_default(),
                    namespace: ns.name_any(),
                    graceful_timeout_seconds: 30,
                })
                .await
                .map(drop),
        },
    };
    match revoked {
        Ok(()) => {
            ctx.event(
                ns,
                false,
                "Revoked",
                "revoked in Prism admin (reclaimPolicy delete)".to_string(),
            )
            .await;
            Ok(Action::await_change())
        }
        Err(e) => {
            let forced = ns.annotations().get(FORCE_DELETE).map(String::as_str) == Some("true");
            let waited = ns
                .meta()
                .deletion_timestamp
                .as_ref()
                .map(|t| Timestamp::now().as_second() - t.0.as_second())
                .unwrap_or(0);
            if forced || waited >= ctx.settings.deletion_deadline.as_secs() as i64 {
                let why = if forced {
                    "annotation prism.io/force-delete"
                } else {
                    "the deletion deadline passed"
                };
                ctx.event(
                    ns,
                    true,
                    "RevokeAbandoned",
                    format!("could not revoke in Prism admin ({e}); deleting anyway because {why}"),
                )
                .await;
                Ok(Action::await_change())
            } else {
                ctx.event(ns, true, e.reason(), format!("revoking in Prism admin failed: {e}; will retry until the deletion deadline")).await;
                Err(e.into())
            }
        }
    }
}

/// Writes the status when it changed; returns whether it did.
async fn write_status(
    ctx: &Ctx,
    ns: &PrismNamespace,
    old: &PrismNamespaceStatus,
    new: &PrismNamespaceStatus,
) -> Result<bool, Error> {
    if old == new {
        return Ok(false);
    }
    ctx.patch_status(ns, new).await?;
    Ok(true)
}
