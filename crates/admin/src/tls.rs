//! [`AdminTls`]: TLS, and optionally mutual TLS, for the connection to Prism admin. The PEM
//! inputs are checked when the settings are used, so a wrong file fails at startup with a
//! message naming it rather than at the first call.

use std::fmt;
use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use super::AdminError;

/// How to reach Prism admin over TLS: the CA that signed admin's serving certificate and, for
/// mutual TLS, the client certificate and key to present. Cheap to clone.
///
/// Without a client identity this is server-authenticated TLS; with one, mutual TLS. Admin's
/// certificate must name the endpoint's host (DNS name or IP address) unless `domain` says
/// which name to expect instead.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminTls {
    /// PEM of the CA certificate(s) admin's serving certificate chains to.
    pub ca_pem: Vec<u8>,
    /// PEM of the client certificate (chain) for mutual TLS; needs `client_key_pem`.
    pub client_cert_pem: Option<Vec<u8>>,
    /// PEM of the client's private key (PKCS#8, PKCS#1 or SEC1); needs `client_cert_pem`.
    pub client_key_pem: Option<Vec<u8>>,
    /// Name admin's certificate must carry, when it is not the endpoint's host.
    pub domain: Option<String>,
}

impl fmt::Debug for AdminTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminTls")
            .field("ca_pem", &format_args!("<{} bytes>", self.ca_pem.len()))
            .field(
                "client_cert_pem",
                &self
                    .client_cert_pem
                    .as_ref()
                    .map(|c| format!("<{} bytes>", c.len())),
            )
            .field(
                "client_key_pem",
                &self.client_key_pem.as_ref().map(|_| "<redacted>"),
            )
            .field("domain", &self.domain)
            .finish()
    }
}

impl AdminTls {
    /// Server-authenticated TLS trusting the CA certificate(s) in `ca_pem`.
    pub fn new(ca_pem: impl Into<Vec<u8>>) -> Self {
        Self {
            ca_pem: ca_pem.into(),
            client_cert_pem: None,
            client_key_pem: None,
            domain: None,
        }
    }

    /// Mutual TLS: presents `cert_pem` (with its private key `key_pem`) to admin.
    pub fn with_client_identity(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.client_cert_pem = Some(cert_pem.into());
        self.client_key_pem = Some(key_pem.into());
        self
    }

    /// Expects admin's certificate to name `domain` instead of the endpoint's host.
    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// Reads the CA certificate and, for mutual TLS, the client certificate and key from
    /// files (e.g. a mounted Secret), and checks them. The client certificate and key go
    /// together: one without the other is an error.
    pub fn from_files(
        ca: &Path,
        client_cert: Option<&Path>,
        client_key: Option<&Path>,
    ) -> Result<Self, AdminError> {
        let read = |what: &str, path: &Path| {
            std::fs::read(path).map_err(|e| {
                AdminError::InvalidTls(format!("{what} {}: cannot read: {e}", path.display()))
            })
        };
        let mut tls = Self::new(read("CA certificate", ca)?);
        tls.client_cert_pem = client_cert
            .map(|p| read("client certificate", p))
            .transpose()?;
        tls.client_key_pem = client_key.map(|p| read("client key", p)).transpose()?;
        tls.check()?;
        Ok(tls)
    }

    /// Whether a client identity is presented (mutual TLS).
    pub fn is_mutual(&self) -> bool {
        self.client_cert_pem.is_some()
    }

    /// Checks that every PEM holds what it should and that the options fit together.
    /// Messages name what is wrong, never key material.
    pub fn check(&self) -> Result<(), AdminError> {
        let invalid = |m: String| Err(AdminError::InvalidTls(m));
        certificates("CA certificate", &self.ca_pem)?;
        match (&self.client_cert_pem, &self.client_key_pem) {
            (None, None) => {}
            (Some(cert), Some(key)) => {
                certificates("client certificate", cert)?;
                if PrivateKeyDer::from_pem_slice(key).is_err() {
                    return invalid(
                        "client key: no private key found (expected a PKCS#8, PKCS#1 or SEC1 PEM block)"
                            .into(),
                    );
                }
            }
            (Some(_), None) => {
                return invalid("a client certificate needs its private key".into());
            }
            (None, Some(_)) => {
                return invalid("a client key needs its certificate".into());
            }
        }
        if let Some(domain) = &self.domain
            && ServerName::try_from(domain.as_str()).is_err()
        {
            return invalid(format!(
                "{domain:?} is not a DNS name or IP address to verify admin's certificate against"
            ));
        }
        // What only the TLS library itself checks, e.g. that the key belongs to the certificate.
        tonic::transport::Endpoint::from_static("https://prism-admin")
            .tls_config(self.client_config())
            .map(drop)
            .map_err(|e| AdminError::InvalidTls(library_message(&e)))
    }

    /// tonic's client configuration of these settings.
    pub(crate) fn client_config(&self) -> ClientTlsConfig {
        let mut config =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(self.ca_pem.clone()));
        if let (Some(cert), Some(key)) = (&self.client_cert_pem, &self.client_key_pem) {
            config = config.identity(Identity::from_pem(cert.clone(), key.clone()));
        }
        if let Some(domain) = &self.domain {
            config = config.domain_name(domain.clone());
        }
        config
    }
}

/// The TLS library's complaint about settings, in words where it is terse.
pub(crate) fn library_message(error: &tonic::transport::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(e) = cause {
        text = format!("{text}: {e}");
        cause = e.source();
    }
    if text.contains("KeyMismatch") || text.contains("keys may not be consistent") {
        return "the client key does not belong to the client certificate".into();
    }
    if text.contains("failed to parse private key") {
        return "client key: not a usable RSA, ECDSA or Ed25519 private key".into();
    }
    text
}

/// The certificates of a PEM input; at least one.
fn certificates(what: &str, pem: &[u8]) -> Result<usize, AdminError> {
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        cert.map_err(|e| AdminError::InvalidTls(format!("{what}: not valid PEM: {e}")))?;
        count += 1;
    }
    if count == 0 {
        return Err(AdminError::InvalidTls(format!(
            "{what}: no CERTIFICATE block found"
        )));
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOT_PEM: &[u8] = b"hello";

    #[test]
    fn bad_inputs_are_named_without_key_material() {
        let error = AdminTls::new(NOT_PEM).check().unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid Prism admin TLS settings: CA certificate: no CERTIFICATE block found"
        );
        assert_eq!(error.reason(), "InvalidAdminTls");
        assert!(!error.is_retryable());
        let ca = rcgen_free_ca();
        let lone_cert = AdminTls {
            client_cert_pem: Some(ca.clone()),
            ..AdminTls::new(ca.clone())
        };
        assert!(
            lone_cert
                .check()
                .unwrap_err()
                .to_string()
                .contains("needs its private key")
        );
        let secret_key = b"-----BEGIN PRIVATE KEY-----\nhunter2\n-----END PRIVATE KEY-----\n";
        let bad_key = AdminTls::new(ca.clone()).with_client_identity(ca.clone(), &secret_key[..]);
        let shown = bad_key.check().unwrap_err().to_string();
        assert!(shown.contains("client key"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!format!("{bad_key:?}").contains("hunter2"));
        let bad_domain = AdminTls::new(ca).with_domain("not a name");
        assert!(bad_domain.check().is_err());
    }

    /// A syntactically valid certificate PEM (the content is not verified by `check`).
    fn rcgen_free_ca() -> Vec<u8> {
        b"-----BEGIN CERTIFICATE-----\nMAo=\n-----END CERTIFICATE-----\n".to_vec()
    }

    #[test]
    fn files_are_read_and_named() {
        let missing = Path::new("/nonexistent/ca.pem");
        let error = AdminTls::from_files(missing, None, None).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("CA certificate /nonexistent/ca.pem: cannot read"),
            "{error}"
        );
    }
}
