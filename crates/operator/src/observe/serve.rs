//! The `/metrics` endpoint: over HTTPS to callers the API server authenticates and authorizes
//! ([`super::auth`]), or, when asked for, plain HTTP to anyone. The certificate is the
//! webhooks' own when they are served (the chart puts the metrics Service's names in it);
//! otherwise one made at start for this process alone, which scrapers cannot verify.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::auth::{Authorizer, Decision};
use super::exposition::Format;
use super::metrics::Metrics;
use crate::webhook::tls::{self, Certificate};

/// How `/metrics` is served.
pub enum Access {
    /// Plain HTTP, to anyone.
    Open,
    /// HTTPS with `certificate`, to callers `authorizer` allows.
    Secure {
        /// The serving certificate.
        certificate: Arc<Certificate>,
        /// Who may scrape.
        authorizer: Arc<Authorizer>,
    },
}

#[derive(Clone)]
struct Endpoint {
    metrics: Arc<Metrics>,
    authorizer: Option<Arc<Authorizer>>,
}

/// Serves `/metrics` on `addr` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    access: Access,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    match access {
        Access::Open => {
            let app = router(metrics, None);
            tracing::info!(%addr, "serving /metrics over HTTP");
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Access::Secure {
            certificate,
            authorizer,
        } => {
            let app = router(metrics, Some(authorizer));
            let acceptor =
                tokio_rustls::TlsAcceptor::from(Arc::new(tls::server_config(certificate)));
            tracing::info!(%addr, "serving /metrics over HTTPS to authorized scrapers");
            tls::serve(listener, acceptor, app, shutdown).await;
            Ok(())
        }
    }
}

fn router(metrics: Arc<Metrics>, authorizer: Option<Arc<Authorizer>>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(Endpoint {
            metrics,
            authorizer,
        })
}

async fn scrape(State(e): State<Endpoint>, headers: HeaderMap) -> Response {
    if let Some(authorizer) = &e.authorizer {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match authorizer.decide(authorization).await {
            Ok(Decision::Allowed) => {}
            Ok(Decision::Unauthenticated) => {
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer")],
                    "Unauthorized: a bearer token the API server accepts is required\n",
                )
                    .into_response();
            }
            Ok(Decision::Forbidden { user }) => {
                return (
                    StatusCode::FORBIDDEN,
                    format!("Forbidden: user {user:?} may not get the non-resource URL /metrics\n"),
                )
                    .into_response();
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot ask the API server who scrapes /metrics");
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "cannot reach the API server to check the caller\n",
                )
                    .into_response();
            }
        }
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    (
        [(header::CONTENT_TYPE, format.content_type())],
        e.metrics.encode(format),
    )
        .into_response()
}

/// A certificate for `names`, made now and kept in memory only.
pub fn self_signed(names: Vec<String>) -> anyhow::Result<Arc<Certificate>> {
    let made = rcgen::generate_simple_self_signed(names)?;
    let certificate = Certificate::default();
    certificate.load(&made.cert.pem(), &made.signing_key.serialize_pem())?;
    Ok(Arc::new(certificate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[tokio::test]
    async fn open_endpoint_negotiates_the_format() {
        let app = router(Arc::new(Metrics::new()), None);
        let get = |accept: Option<&str>| {
            let mut r = http::Request::get("/metrics");
            if let Some(a) = accept {
                r = r.header(header::ACCEPT, a);
            }
            r.body(axum::body::Body::empty()).unwrap()
        };
        let om = app
            .clone()
            .oneshot(get(Some("application/openmetrics-text;version=1.0.0")))
            .await
            .unwrap();
        assert_eq!(
            om.headers()[header::CONTENT_TYPE],
            Format::OpenMetrics.content_type()
        );
        let body = om.into_body().collect().await.unwrap().to_bytes();
        assert!(body.ends_with(b"# EOF\n"));
        let text = app.oneshot(get(None)).await.unwrap();
        assert_eq!(
            text.headers()[header::CONTENT_TYPE],
            Format::Text.content_type()
        );
        let body = text.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(!body.contains("# EOF"));
        assert!(
            body.contains("# TYPE prism_operator_spans_dropped_total counter"),
            "{body}"
        );
    }

    #[test]
    fn self_signed_certificate_loads() {
        assert!(self_signed(vec!["localhost".into()]).unwrap().is_loaded());
    }
}
