//! The admission and conversion webhooks, served over HTTPS by every replica (not only the
//! leader) from the moment the process starts: the API server calls them for every write of
//! a Prism object, and for every read in a version other than the stored one.
//!
//! - `POST /validate`: the validating webhook ([`admission`]);
//! - `POST /convert`: the CRD conversion webhook ([`conversion`]).
//!
//! The certificate comes from [`secret`]: the operator's own CA, kept in a Secret and renewed
//! in place ([`certs`]), or files another issuer keeps (cert-manager).

pub mod admission;
pub mod certs;
mod conversion;
pub mod secret;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use futures::FutureExt;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::kit::context::Ctx;
use admission::Caches;
use secret::Source;
use tls::Certificate;

/// How the webhooks are served.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Address of the HTTPS server.
    pub addr: SocketAddr,
    /// Where its certificate comes from.
    pub source: Source,
}

/// Serves the webhooks until `shutdown` resolves. Listens first (a handshake fails until a
/// certificate is loaded), then loads the first certificate, waiting for the API server if it
/// must, and injects its CA: the API server is never pointed at a closed port. Returns once
/// the first certificate is served.
/// `certificate` is filled here; the metrics server shares it.
pub async fn start(
    ctx: Arc<Ctx>,
    cfg: WebhookConfig,
    certificate: Arc<Certificate>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(certificate.clone())));
    let app = Router::new()
        .route("/validate", post(validate))
        .route(prism_api::CONVERSION_PATH, post(conversion::convert))
        .with_state(ctx.clone());
    let listener = TcpListener::bind(cfg.addr).await?;
    let server = tokio::spawn(tls::serve(listener, acceptor, app, shutdown));
    first_certificate(&ctx, &cfg.source, &certificate).await?;
    tokio::spawn(secret::keep(
        ctx.client.clone(),
        cfg.source.clone(),
        certificate,
    ));
    tracing::info!(addr = %cfg.addr, "serving the webhooks over HTTPS");
    Ok(server)
}

async fn first_certificate(
    ctx: &Ctx,
    source: &Source,
    certificate: &Certificate,
) -> anyhow::Result<()> {
    match source {
        Source::Files(dir) => secret::load_files(dir, certificate),
        Source::Managed(m) => loop {
            match secret::round(&ctx.client, m, certificate).await {
                Ok(()) if certificate.is_loaded() => return Ok(()),
                Ok(()) => {} // lost the race to create the Secret: read the winner's
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "webhook certificates"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        },
    }
}

/// Whether every Prism cache has listed its objects.
fn caches(ctx: &Ctx) -> Caches {
    let view = &ctx.view;
    let ready = [
        view.shards.wait_until_ready().now_or_never(),
        view.plugins.wait_until_ready().now_or_never(),
        view.namespaces.wait_until_ready().now_or_never(),
    ];
    match ready.iter().all(|r| matches!(r, Some(Ok(())))) {
        true => Caches::Synced,
        false => Caches::Loading,
    }
}

async fn validate(
    State(ctx): State<Arc<Ctx>>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(request) => request,
        Err(e) => return Json(AdmissionResponse::invalid(e.to_string()).into_review()),
    };
    let verdict = admission::review(
        &ctx.view,
        ctx.settings.allow_shared_admin,
        caches(&ctx),
        &request,
    );
    tracing::debug!(
        kind = %request.kind.kind,
        name = %request.name,
        namespace = request.namespace.as_deref().unwrap_or_default(),
        refused = !verdict.refusals.is_empty(),
        warnings = verdict.warnings.len(),
        "admission"
    );
    Json(verdict.respond(&request).into_review())
}
