//! Sending a namespace to Prism admin: the shard's ready pods registered as proxies first,
//! then the namespace upserted with its connection string read from its Secret (never logged
//! or reported).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::Api;
use kube::{Client, ResourceExt};

use super::derive::Synced;
use crate::kit::admin::Admin;
use crate::kit::error::Error;
use crate::view::key;
use prism_admin::{AdminError, namespace_config, proto};
use prism_api::{PrismNamespace, PrismShard};
use prism_render::render::contract::{DATA_PORT, image_tag, shard_fullname};

/// Upserts the namespace into the Prism admin at `endpoints` (of `shard`), with the proxies
/// `pods`, reading its Secret through `client`.
pub async fn push(
    (client, admin): (&Client, &Admin),
    ns: &PrismNamespace,
    shard: &PrismShard,
    endpoints: Option<&str>,
    pods: &[Arc<Pod>],
) -> Result<Synced, Error> {
    let endpoints = endpoints.ok_or(Error::NoAdminEndpoint)?;
    let connection = connection_string(client, ns).await?;
    Ok(upsert(admin, ns, shard, endpoints, pods, connection.as_deref()).await?)
}

/// Reads a Secret-referenced connection string; the value is never logged or reported.
async fn connection_string(client: &Client, ns: &PrismNamespace) -> Result<Option<String>, Error> {
    let Some(from) = &ns.spec.connection_string_from else {
        return Ok(None);
    };
    let r = &from.secret_key_ref;
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns.namespace().unwrap_or_default());
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
    admin: &Admin,
    ns: &PrismNamespace,
    shard: &PrismShard,
    endpoints: &str,
    pods: &[Arc<Pod>],
    connection: Option<&str>,
) -> Result<Synced, AdminError> {
    let group = admin.group(endpoints)?;
    let shard_key = key(shard);
    for pod in pods {
        let uid = pod.uid().unwrap_or_default();
        admin
            .registration(endpoints, &uid, &shard_key, &pod.name_any())
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
            admin.forget_endpoint(endpoints);
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
