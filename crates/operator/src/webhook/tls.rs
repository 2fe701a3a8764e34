//! The operator's serving certificate (webhooks and metrics), swapped in place when it is
//! renewed: every new TLS handshake uses the current one, connections already open keep
//! theirs. And the HTTPS accept loop both servers run.

use std::sync::{Arc, RwLock};

use rustls::crypto::ring::sign::any_supported_type;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The certificate the server presents; empty until the first one is loaded.
#[derive(Debug, Default)]
pub struct Certificate {
    current: RwLock<Option<(String, Arc<CertifiedKey>)>>,
}

impl Certificate {
    /// Loads `cert_pem` (the chain) and `key_pem`, unless they are the ones already served.
    /// Returns whether the served certificate changed.
    pub fn load(&self, cert_pem: &str, key_pem: &str) -> anyhow::Result<bool> {
        let fingerprint = format!("{cert_pem}{key_pem}");
        if let Some((current, _)) = &*self.current.read().expect("lock")
            && *current == fingerprint
        {
            return Ok(false);
        }
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("webhook certificate: {e}"))?;
        anyhow::ensure!(
            !chain.is_empty(),
            "webhook certificate: no certificate in PEM"
        );
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("webhook private key: {e}"))?;
        let key = any_supported_type(&key).map_err(|e| anyhow::anyhow!("webhook key: {e}"))?;
        let certified = Arc::new(CertifiedKey::new(chain, key));
        *self.current.write().expect("lock") = Some((fingerprint, certified));
        Ok(true)
    }

    /// Whether a certificate is loaded.
    pub fn is_loaded(&self) -> bool {
        self.current.read().expect("lock").is_some()
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current
            .read()
            .expect("lock")
            .as_ref()
            .map(|(_, k)| k.clone())
    }
}

/// A TLS server configuration presenting `certificate` (HTTP/1.1 only).
pub fn server_config(certificate: Arc<Certificate>) -> rustls::ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default TLS versions")
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// Serves `app` over TLS on `listener` until `shutdown` resolves. A failed handshake (a probe,
/// a client without our CA) only closes that connection.
pub async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept");
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let service = TowerToHyperService::new(app);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
