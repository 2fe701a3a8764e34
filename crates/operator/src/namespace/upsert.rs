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
use prism_render::render::contract::{
    DATA_PORT, VERSION_LABEL, image_tag, proxy_id, shard_fullname,
};

/// Upserts the namespace into the Prism admin at `endpoints` (of `shard`), with the proxies
/// `pods`, reading its Secret through `client`.
pub async fn push(
    (client, admin): (&Client, &Admin),
    ns: &PrismNamespace,
    shard: &PrismShard,
    endpoints: Option<&str>,
    pods: &[Arc<Pod>],
) -> Result<Pushed, Error> {
    let endpoints = endpoints.ok_or(Error::NoAdminEndpoint)?;
    let connection = connection_string(client, ns).await?;
    Ok(upsert(admin, ns, shard, endpoints, pods, connection.as_deref()).await?)
}

/// What admin answered an upsert, and [`Admin::proxy_epoch`] as the namespace was sent: once
/// its own proxies were registered, before `CreateNamespace`. A proxy admin accepts after that
/// moves the epoch on, so the namespace is sent again.
#[derive(Debug)]
pub struct Pushed {
    /// Admin's answer and the node that gave it.
    pub synced: Synced,
    /// The proxies admin knew, as an epoch.
    pub epoch: u64,
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
) -> Result<Pushed, AdminError> {
    let group = admin.group(endpoints)?;
    let shard_key = key(shard);
    for pod in pods {
        let uid = pod.uid().unwrap_or_default();
        admin
            .registration(endpoints, &uid, &shard_key, &pod.name_any())
            .ensure(|| async {
                group.register_proxy(registration(shard, pod)).await?;
                admin.proxy_registered(endpoints);
                Ok(())
            })
            .await?;
    }
    let epoch = admin.proxy_epoch(endpoints);
    let request = proto::CreateNamespaceRequest {
        namespace: ns.name_any(),
        requesting_proxy: pods.first().map(|p| pod_proxy_id(p)).unwrap_or_default(),
        config: Some(namespace_config(ns, &shard.name_any(), connection)),
        principal: prism_admin::MANAGER.to_string(),
    };
    match group.create_namespace(request).await {
        Err(e @ AdminError::FailedPrecondition(_)) => {
            // Admin may have restarted empty: register the proxies again next time.
            admin.forget_endpoint(endpoints);
            Err(e)
        }
        other => other.map(|synced| Pushed { synced, epoch }),
    }
}

/// The id `pod` is registered with in admin.
fn pod_proxy_id(pod: &Pod) -> String {
    proxy_id(&pod.name_any(), &pod.namespace().unwrap_or_default())
}

/// The proxy registration of one of the shard's pods. Its version is the one the pod runs:
/// the proxy image's tag, which the pod carries as `app.kubernetes.io/version` whether the
/// shard names the image or the operator's default applies (the tag of the shard's image
/// when the label is missing).
fn registration(shard: &PrismShard, pod: &Pod) -> proto::ProxyRegistration {
    let proxy = pod.name_any();
    let shard_name = shard.name_any();
    let k8s_ns = shard.namespace().unwrap_or_default();
    let image = shard.spec.image.clone().unwrap_or_default();
    let version = pod
        .labels()
        .get(VERSION_LABEL)
        .cloned()
        .unwrap_or_else(|| image_tag(&image).to_string());
    proto::ProxyRegistration {
        proxy_id: pod_proxy_id(pod),
        address: format!(
            "{proxy}.{}-headless.{k8s_ns}.svc:{DATA_PORT}",
            shard_fullname(&shard_name)
        ),
        region: String::new(),
        version,
        capabilities: shard.spec.backends.clone(),
        metadata: [("prism.io/shard".to_string(), shard_name)]
            .into_iter()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::kit::mock_api::{self, lines};
    use crate::observe::metrics::Metrics;
    use crate::view::fixture::{pod, shard};
    use prism_testing::admin_server::AdminServer;
    use serde_json::json;

    const VALUE: &str = "postgres://orders:s3cr3t@db:5432/orders";

    fn ns() -> PrismNamespace {
        serde_json::from_value(json!({
            "apiVersion": "prism.io/v1beta1", "kind": "PrismNamespace",
            "metadata": {"name": "orders", "namespace": "team", "uid": "u1"},
            "spec": {"backend": "postgres", "pattern": "keyvalue",
                     "connectionStringFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
        }))
        .unwrap()
    }

    fn secret(data: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "db", "namespace": "team"}, "data": data})
    }

    fn base64(text: &str) -> String {
        let bytes = k8s_openapi::ByteString(text.as_bytes().to_vec());
        serde_json::to_value(bytes)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    fn pods() -> Vec<Arc<Pod>> {
        ["prism-s-0", "prism-s-1"]
            .iter()
            .map(|name| Arc::new(serde_json::from_value(pod("team", "s", name, true)).unwrap()))
            .collect()
    }

    fn admin() -> Admin {
        Admin::new(Duration::from_secs(5), None, Arc::new(Metrics::new())).unwrap()
    }

    #[test]
    fn a_proxy_registers_the_version_its_pod_runs() {
        let shard: PrismShard = serde_json::from_value(shard("team", "s", 0, None)).unwrap();
        assert_eq!(
            shard.spec.image, None,
            "the operator's default image applies"
        );
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "prism-s-0", "namespace": "team",
                         "labels": {"app.kubernetes.io/version": "0.4.1"}}
        }))
        .unwrap();
        assert_eq!(registration(&shard, &pod).version, "0.4.1");
        let unlabelled: Pod =
            serde_json::from_value(json!({"metadata": {"name": "prism-s-0"}})).unwrap();
        let mut named = shard.clone();
        named.spec.image = Some("registry.example/prism-proxy:0.5.0@sha256:ab".into());
        assert_eq!(registration(&named, &unlabelled).version, "0.5.0");
    }

    /// The shard's ready pods are registered as proxies, then the namespace is created with
    /// the connection string read from its Secret; the Secret is read once, nothing written.
    #[tokio::test]
    async fn the_proxies_are_registered_then_the_namespace_sent_with_its_secret() {
        let server = AdminServer::start().await;
        let (client, calls) = mock_api::serve(|_| (200, secret(json!({"url": base64(VALUE)}))));
        let admin = admin();
        let shard: PrismShard = serde_json::from_value(shard("team", "s", 0, None)).unwrap();
        let endpoints = server.host_port();
        let pushed = push((&client, &admin), &ns(), &shard, Some(&endpoints), &pods())
            .await
            .expect("synced");
        let synced = pushed.synced;
        assert_eq!(pushed.epoch, 2, "sent once both proxies were registered");
        assert_eq!(lines(&calls), ["GET /api/v1/namespaces/team/secrets/db"]);
        assert_eq!(server.proxies(), ["prism-s-0.team", "prism-s-1.team"]);
        let request = server.last_request("orders").expect("created");
        let config = request.config.expect("a config");
        let backends: Vec<&str> = config
            .backends
            .values()
            .map(|b| b.connection_string.as_str())
            .collect();
        assert_eq!(backends, [VALUE]);
        assert_eq!(request.requesting_proxy, "prism-s-0.team");
        assert!(
            ["prism-s-0.team", "prism-s-1.team"].contains(&synced.answer.assigned_proxy.as_str())
        );
        assert_eq!(
            admin.registered_proxies("team/s"),
            ["prism-s-0", "prism-s-1"]
        );
        // A second upsert registers nobody again.
        push((&client, &admin), &ns(), &shard, Some(&endpoints), &pods())
            .await
            .expect("synced again");
        assert_eq!(server.calls().get("RegisterProxy"), Some(&2));
        server.stop().await;
    }

    /// A Secret that is missing, lacks the key, or cannot be read stops the upsert before
    /// admin is called; the message names the Secret and key, never a value.
    #[tokio::test]
    async fn a_secret_that_cannot_be_read_sends_nothing() {
        let server = AdminServer::start().await;
        let shard: PrismShard = serde_json::from_value(shard("team", "s", 0, None)).unwrap();
        let endpoints = server.host_port();
        let cases = [
            (
                Some(secret(json!({"other": base64(VALUE)}))),
                "Secret db has no key url",
            ),
            (None, "Secret db not found"),
        ];
        for (found, want) in cases {
            let (client, _) = mock_api::serve(move |_| match &found {
                Some(s) => (200, s.clone()),
                None => mock_api::status(404, "NotFound", "secrets \"db\" not found"),
            });
            let admin = admin();
            let err = push((&client, &admin), &ns(), &shard, Some(&endpoints), &pods())
                .await
                .expect_err("refused");
            assert_eq!(err.to_string(), want);
            assert_eq!(err.reason(), "SecretUnavailable");
            assert!(!err.to_string().contains("s3cr3t"));
        }
        assert_eq!(server.create_calls(), 0);
        assert!(server.proxies().is_empty());
        server.stop().await;
    }

    /// Without an admin endpoint nothing is read or sent.
    #[tokio::test]
    async fn no_endpoint_no_calls() {
        let (client, calls) = mock_api::serve(|_| mock_api::status(500, "", ""));
        let shard: PrismShard = serde_json::from_value(shard("team", "s", 0, None)).unwrap();
        let err = push((&client, &admin()), &ns(), &shard, None, &pods())
            .await
            .expect_err("no endpoint");
        assert!(matches!(err, Error::NoAdminEndpoint));
        assert!(lines(&calls).is_empty());
    }
}
