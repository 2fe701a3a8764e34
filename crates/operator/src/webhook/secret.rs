//! Where the webhook's certificates live and go: the Secret every replica reads and renews,
//! and the CA bundle injected into the webhook configuration and the CRDs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use time::OffsetDateTime;

use super::certs::{Material, Want, plan, valid_bundle};
use super::tls::Certificate;
use prism_render::render::contract::MANAGED_BY;

/// Where the serving certificate comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The operator keeps its own CA and certificate in a Secret and injects the CA.
    Managed(Managed),
    /// Files another issuer keeps up to date (cert-manager, mounted from its Secret):
    /// `tls.crt` and `tls.key` in this directory, reread when they change.
    Files(PathBuf),
}

/// The operator's own certificates.
#[derive(Debug, Clone)]
pub struct Managed {
    /// Namespace of the Secret (the operator's).
    pub namespace: String,
    /// Name of the Secret.
    pub secret: String,
    /// What the certificates must be.
    pub want: Want,
    /// ValidatingWebhookConfiguration to inject the CA bundle into.
    pub webhook_configuration: String,
    /// Inject the CA bundle into the Prism CRDs' conversion settings too.
    pub crds: bool,
}

const CA_CRT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const TLS_CRT: &str = "tls.crt";
const TLS_KEY: &str = "tls.key";

fn material(secret: &Secret) -> Option<Material> {
    let data = secret.data.as_ref()?;
    let text = |k: &str| String::from_utf8(data.get(k)?.0.clone()).ok();
    Some(Material {
        ca_bundle: text(CA_CRT)?,
        ca_key: text(CA_KEY)?,
        cert: text(TLS_CRT)?,
        key: text(TLS_KEY)?,
    })
}

fn data(m: &Material) -> BTreeMap<String, ByteString> {
    [
        (CA_CRT, &m.ca_bundle),
        (CA_KEY, &m.ca_key),
        (TLS_CRT, &m.cert),
        (TLS_KEY, &m.key),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.clone().into_bytes())))
    .collect()
}

/// One round: renews what is due in the Secret, serves its certificate, and injects its CA
/// bundle. A lost write race is not an error: the next round reads the winner's.
pub async fn round(client: &Client, m: &Managed, certificate: &Certificate) -> anyhow::Result<()> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &m.namespace);
    let existing = api.get_opt(&m.secret).await?;
    let have = existing.as_ref().and_then(material);
    let now = OffsetDateTime::now_utc();
    let current = match plan(now, have.as_ref(), &m.want)? {
        None => have.expect("nothing is due only when the Secret holds material"),
        Some(next) => match write(&api, m, existing, &next).await? {
            true => {
                tracing::info!(secret = %m.secret, "webhook certificates renewed");
                next
            }
            false => return Ok(()),
        },
    };
    if certificate.load(&current.cert, &current.key)? {
        tracing::info!("serving the webhook certificate from the Secret");
    }
    inject(client, m, &valid_bundle(&current.ca_bundle, now)).await
}

/// Writes `next` over what was read; `false` when another replica wrote first.
async fn write(
    api: &Api<Secret>,
    m: &Managed,
    existing: Option<Secret>,
    next: &Material,
) -> anyhow::Result<bool> {
    let result = match existing {
        Some(mut secret) => {
            secret.data = Some(data(next));
            api.replace(&m.secret, &PostParams::default(), &secret)
                .await
        }
        None => {
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(m.secret.clone()),
                    namespace: Some(m.namespace.clone()),
                    labels: Some(BTreeMap::from([(
                        "app.kubernetes.io/managed-by".to_string(),
                        MANAGED_BY.to_string(),
                    )])),
                    ..Default::default()
                },
                type_: Some("kubernetes.io/tls".into()),
                data: Some(data(next)),
                ..Default::default()
            };
            api.create(&PostParams::default(), &secret).await
        }
    };
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Puts `bundle` into every webhook of the configuration and, when asked, the conversion
/// settings of every Prism CRD that converts by webhook. Missing objects are skipped: the
/// chart may not install them (cert-manager, or webhooks off).
async fn inject(client: &Client, m: &Managed, bundle: &str) -> anyhow::Result<()> {
    let bundle = ByteString(bundle.as_bytes().to_vec());
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    if let Some(mut config) = configs.get_opt(&m.webhook_configuration).await? {
        let mut changed = false;
        for hook in config.webhooks.iter_mut().flatten() {
            if hook.client_config.ca_bundle.as_ref() != Some(&bundle) {
                hook.client_config.ca_bundle = Some(bundle.clone());
                changed = true;
            }
        }
        if changed {
            replace(&configs, &config.name_any(), &config).await?;
            tracing::info!(configuration = %m.webhook_configuration, "CA bundle injected");
        }
    }
    if !m.crds {
        return Ok(());
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in prism_api::crds().iter().map(|c| c.name_any()) {
        let Some(mut crd) = crds.get_opt(&name).await? else {
            continue;
        };
        let Some(hook) = crd
            .spec
            .conversion
            .as_mut()
            .filter(|c| c.strategy == "Webhook")
            .and_then(|c| c.webhook.as_mut())
            .and_then(|w| w.client_config.as_mut())
        else {
            continue;
        };
        if hook.ca_bundle.as_ref() != Some(&bundle) {
            hook.ca_bundle = Some(bundle.clone());
            replace(&crds, &name, &crd).await?;
            tracing::info!(crd = %name, "CA bundle injected");
        }
    }
    Ok(())
}

async fn replace<K>(api: &Api<K>, name: &str, object: &K) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.replace(name, &PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()), // changed meanwhile: next round
        Err(e) => Err(e.into()),
    }
}

/// Keeps the certificate current until the process ends: managed rounds every
/// [`Want::period`], or files reread every ten seconds.
pub async fn keep(client: Client, source: Source, certificate: Arc<Certificate>) {
    loop {
        let period = match &source {
            Source::Managed(m) => {
                if let Err(e) = round(&client, m, &certificate).await {
                    tracing::warn!(error = %format!("{e:#}"), "webhook certificates");
                }
                m.want.period()
            }
            Source::Files(dir) => {
                if let Err(e) = load_files(dir, &certificate) {
                    tracing::warn!(error = %format!("{e:#}"), "webhook certificate files");
                }
                std::time::Duration::from_secs(10)
            }
        };
        tokio::time::sleep(period).await;
    }
}

/// Serves `tls.crt` and `tls.key` of `dir` (a mounted Secret).
pub fn load_files(dir: &std::path::Path, certificate: &Certificate) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f)).with_context(|| format!("{}", dir.join(f).display()))
    };
    if certificate.load(&read(TLS_CRT)?, &read(TLS_KEY)?)? {
        tracing::info!(dir = %dir.display(), "serving the webhook certificate from files");
    }
    Ok(())
}
