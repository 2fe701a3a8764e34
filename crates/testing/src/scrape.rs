//! Reading the operator's HTTPS `/metrics` as the chart's ServiceMonitor does: the operator's
//! certificate checked against the CA in its webhook Secret, for the metrics Service's name,
//! with a service account's token.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};

use crate::helm::service_account_token;
use crate::process::{HttpResponse, https_get};
use crate::wait_for;

/// A scraper of one operator's HTTPS `/metrics`.
pub struct Scraper {
    port: u16,
    server_name: String,
    ca: String,
}

impl Scraper {
    /// Scrapes 127.0.0.1:`port` as `server_name`, trusting the `ca.crt` of Secret `ns/secret`
    /// (waiting for it to exist).
    pub async fn new(admin: &Client, ns: &str, secret: &str, server_name: &str, port: u16) -> Self {
        let secrets: Api<Secret> = Api::namespaced(admin.clone(), ns);
        let secrets = &secrets;
        let ca = wait_for(
            &format!("Secret {ns}/{secret} with ca.crt"),
            Duration::from_secs(60),
            || async move {
                let s = secrets.get(secret).await.map_err(|e| e.to_string())?;
                s.data
                    .and_then(|d| d.get("ca.crt").cloned())
                    .map(|b| String::from_utf8(b.0).unwrap())
                    .ok_or_else(|| "no ca.crt yet".to_string())
            },
        )
        .await;
        Self {
            port,
            server_name: server_name.to_string(),
            ca,
        }
    }

    /// `GET /metrics` with `token` (none: anonymous) and `accept`.
    pub async fn get(
        &self,
        token: Option<&str>,
        accept: Option<&str>,
    ) -> Result<HttpResponse, String> {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = Vec::new();
        if let Some(b) = &bearer {
            headers.push(("Authorization", b.as_str()));
        }
        if let Some(a) = accept {
            headers.push(("Accept", a));
        }
        https_get(self.port, "/metrics", &self.server_name, &self.ca, &headers).await
    }

    /// The CA PEM the certificate is checked against.
    pub fn ca(&self) -> &str {
        &self.ca
    }
}

/// The token of a new ServiceAccount `ns/name`, bound to ClusterRole `role` when given.
pub async fn scraper_token(admin: &Client, ns: &str, name: &str, role: Option<&str>) -> String {
    let apply = PatchParams::apply("prism-tests").force();
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    let account = serde_json::json!({
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name},
    });
    accounts
        .patch(name, &apply, &Patch::Apply(&account))
        .await
        .unwrap_or_else(|e| panic!("ServiceAccount {ns}/{name}: {e}"));
    if let Some(role) = role {
        let binding_name = format!("{ns}-{name}");
        let binding = serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": binding_name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
        });
        Api::<ClusterRoleBinding>::all(admin.clone())
            .patch(&binding_name, &apply, &Patch::Apply(&binding))
            .await
            .unwrap_or_else(|e| panic!("ClusterRoleBinding {binding_name}: {e}"));
    }
    service_account_token(admin, ns, name).await
}
