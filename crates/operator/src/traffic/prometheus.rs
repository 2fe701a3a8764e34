//! A small client of the Prometheus HTTP API: instant queries (`GET /api/v1/query`) over HTTP
//! or HTTPS (a CA file, else the system's roots), with an optional bearer token read from a
//! file at every query (so a rotated token is picked up). Only vector results are understood.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;

/// How the operator reaches Prometheus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrometheusConfig {
    /// Base URL, e.g. `http://prometheus.monitoring.svc:9090` (a path prefix is kept).
    pub url: String,
    /// CA bundle (PEM) for an `https` URL; the system's roots when unset.
    pub ca_file: Option<PathBuf>,
    /// File holding a bearer token, read at every query.
    pub token_file: Option<PathBuf>,
    /// Deadline of one query.
    pub timeout: Duration,
}

/// One element of an instant vector: its labels and value (NaN and infinities included).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// Why a query gave no result.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Prometheus could not be reached, or did not answer in time.
    #[error("Prometheus at {url} is unreachable: {reason}")]
    Unreachable {
        /// Base URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// Prometheus answered with an error (e.g. a bad query).
    #[error("Prometheus rejected the query ({status}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Its `error` field, or the body.
        message: String,
    },
    /// The client could not be set up (a bad URL or CA file).
    #[error("{0}")]
    Config(String),
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// A Prometheus HTTP API client.
#[derive(Clone)]
pub struct Prometheus {
    config: PrometheusConfig,
    client: Client<Https, Empty<Bytes>>,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus")
            .field("url", &self.config.url)
            .finish()
    }
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: Vec<VectorItem>,
}

#[derive(Deserialize)]
struct VectorItem {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// The certificates of a PEM CA bundle.
fn ca_roots(file: &std::path::Path) -> Result<rustls::RootCertStore, QueryError> {
    let unreadable =
        |e: &dyn std::fmt::Display| QueryError::Config(format!("{}: {e}", file.display()));
    let certs = CertificateDer::pem_file_iter(file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| unreadable(&e))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| unreadable(&e))?;
    }
    Ok(roots)
}

impl Prometheus {
    /// A client for `config`; fails on a URL that is not http(s) or an unreadable CA file.
    pub fn new(config: PrometheusConfig) -> Result<Self, QueryError> {
        let uri: http::Uri = config
            .url
            .parse()
            .map_err(|e| QueryError::Config(format!("--prometheus-url: {e}")))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(QueryError::Config(
                "--prometheus-url must start with http:// or https://".into(),
            ));
        }
        let https = uri.scheme_str() == Some("https");
        let provider = || rustls::crypto::ring::default_provider();
        let with_roots = |roots: rustls::RootCertStore| {
            Ok::<_, QueryError>(
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider()))
                        .with_safe_default_protocol_versions()
                        .map_err(|e| QueryError::Config(e.to_string()))?
                        .with_root_certificates(roots)
                        .with_no_client_auth(),
                ),
            )
        };
        let tls = match (&config.ca_file, https) {
            (Some(file), _) => with_roots(ca_roots(file)?)?,
            // Plain http needs no roots: the image has none, and must not need them.
            (None, false) => with_roots(rustls::RootCertStore::empty())?,
            (None, true) => hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_native_roots(provider())
                .map_err(|e| {
                    QueryError::Config(format!(
                        "--prometheus-url is https:// but no --prometheus-ca is set, and the \
                         system CA roots are unusable ({e}; the operator image has none): set \
                         --prometheus-ca (chart prometheus.caConfigMap)"
                    ))
                })?,
        };
        let connector = tls.https_or_http().enable_http1().build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self { config, client })
    }

    /// The base URL, for messages.
    pub fn url(&self) -> &str {
        &self.config.url
    }

    /// Runs an instant query; its result must be a vector.
    pub async fn query(&self, promql: &str) -> Result<Vec<Sample>, QueryError> {
        let unreachable = |reason: String| QueryError::Unreachable {
            url: self.config.url.clone(),
            reason,
        };
        let url = format!(
            "{}/api/v1/query?query={}",
            self.config.url.trim_end_matches('/'),
            utf8_percent_encode(promql, NON_ALPHANUMERIC)
        );
        let mut request = http::Request::get(url);
        if let Some(file) = &self.config.token_file {
            let token = std::fs::read_to_string(file)
                .map_err(|e| QueryError::Config(format!("{}: {e}", file.display())))?;
            request = request.header("Authorization", format!("Bearer {}", token.trim()));
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| QueryError::Config(e.to_string()))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                let mut reason = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    reason.push_str(&format!(": {s}"));
                    source = s.source();
                }
                unreachable(reason)
            })?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| unreachable(e.to_string()))?
                .to_bytes();
            Ok::<_, QueryError>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.config.timeout, exchange)
            .await
            .map_err(|_| unreachable(format!("no answer within {:?}", self.config.timeout)))??;
        parse_answer(status, &body)
    }
}

/// Reads an API answer: the samples of a vector, or why there are none.
fn parse_answer(status: u16, body: &[u8]) -> Result<Vec<Sample>, QueryError> {
    let answer: Answer = serde_json::from_slice(body).map_err(|_| QueryError::Rejected {
        status,
        message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    })?;
    if answer.status != "success" {
        return Err(QueryError::Rejected {
            status,
            message: answer.error.unwrap_or_default(),
        });
    }
    let data = answer.data.ok_or_else(|| QueryError::Rejected {
        status,
        message: "no data in the answer".into(),
    })?;
    if data.result_type != "vector" {
        return Err(QueryError::Rejected {
            status,
            message: format!("the query gives a {}, not a vector", data.result_type),
        });
    }
    Ok(data
        .result
        .into_iter()
        .map(|item| Sample {
            labels: item.metric,
            // Prometheus writes NaN and ±Inf as "NaN", "+Inf", "-Inf": Rust parses all three.
            value: item.value.1.parse().unwrap_or(f64::NAN),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_read_with_special_values() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"namespace":"a","prism_namespace":"x"},"value":[1700000000.1,"12.5"]},
            {"metric":{"namespace":"a","prism_namespace":"y"},"value":[1700000000.1,"NaN"]},
            {"metric":{},"value":[1700000000.1,"+Inf"]}]}}"#;
        let samples = parse_answer(200, body).unwrap();
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].labels["prism_namespace"], "x");
        assert_eq!(samples[0].value, 12.5);
        assert!(samples[1].value.is_nan());
        assert_eq!(samples[2].value, f64::INFINITY);
    }

    #[test]
    fn errors_say_what_prometheus_said() {
        let body = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 4"}"#;
        let e = parse_answer(400, body).unwrap_err().to_string();
        assert_eq!(
            e,
            "Prometheus rejected the query (400): parse error at char 4"
        );
        let e = parse_answer(502, b"<html>bad gateway</html>")
            .unwrap_err()
            .to_string();
        assert!(e.contains("(502)") && e.contains("bad gateway"), "{e}");
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(
            parse_answer(200, matrix)
                .unwrap_err()
                .to_string()
                .contains("matrix")
        );
    }
}
