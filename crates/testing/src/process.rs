//! Child processes and loopback ports: a command's output as text, free ports, plain HTTP GETs.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Duration;

use crate::paths;

/// A command's stdout as text (panics unless it is UTF-8).
pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

/// A command's stderr as text (panics unless it is UTF-8).
pub fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("utf-8 stderr")
}

/// The binary `bin` of the workspace package `package`, built once per test process into the
/// running test's target dir with its profile (debug, or release for benchmarks), so no test runs
/// a stale binary; cargo returns at once when it is up to date.
pub fn cargo_binary(package: &str, bin: &str) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(bin) {
        return path.clone();
    }
    // A running test is <target>/<profile>/deps/<name>; a binary <target>/<profile>/<name>.
    let exe = std::env::current_exe().expect("test executable");
    let parent = exe.parent().expect("<target>/<profile>");
    let profile_dir = match parent.file_name() {
        Some(name) if name == "deps" => parent.parent().expect("<target>/<profile>"),
        _ => parent,
    };
    let target = profile_dir.parent().expect("<target>");
    let mut build = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    build
        .args(["build", "--quiet", "-p", package, "--bin", bin])
        .arg("--target-dir")
        .arg(target)
        .current_dir(paths::root());
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "building {bin} failed: {status}");
    let path = profile_dir.join(bin);
    built.insert(bin.to_string(), path.clone());
    path
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `N` distinct free loopback ports (held open together so they differ).
pub fn free_ports<const N: usize>() -> Result<[u16; N], String> {
    let mut listeners = Vec::with_capacity(N);
    for _ in 0..N {
        listeners.push(
            TcpListener::bind("127.0.0.1:0").map_err(|e| format!("binding 127.0.0.1:0: {e}"))?,
        );
    }
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr().map_err(|e| e.to_string())?.port();
    }
    Ok(ports)
}

/// An HTTP response, read whole.
#[cfg(feature = "cluster")]
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: String,
}

#[cfg(feature = "cluster")]
impl HttpResponse {
    /// The value of header `name` (lower case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn parse(raw: &[u8]) -> Result<Self, String> {
        let text = String::from_utf8_lossy(raw).to_string();
        let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP header")?;
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("no status line in {head:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        // Bodies may be chunked; de-chunk if needed.
        let body = if chunked {
            let mut out = String::new();
            let mut rest = body;
            while let Some((size, after)) = rest.split_once("\r\n") {
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                if n == 0 || after.len() < n {
                    break;
                }
                out.push_str(&after[..n]);
                rest = after[n..].trim_start_matches("\r\n");
            }
            out
        } else {
            body.to_string()
        };
        Ok(Self {
            status,
            headers,
            body,
        })
    }
}

/// An HTTPS GET of `path` on 127.0.0.1:`port`: the server's certificate must be valid for
/// `server_name` and signed by `ca_pem`; `headers` are sent as given (e.g. `Authorization`,
/// `Accept`). The response whatever its status.
#[cfg(feature = "cluster")]
pub async fn https_get(
    port: u16,
    path: &str,
    server_name: &str,
    ca_pem: &str,
    headers: &[(&str, &str)],
) -> Result<HttpResponse, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.map_err(|e| format!("CA PEM: {e}"))?)
            .map_err(|e| format!("CA: {e}"))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect 127.0.0.1:{port}: {e}"))?;
    let name = ServerName::try_from(server_name.to_string()).map_err(|e| e.to_string())?;
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake with 127.0.0.1:{port} as {server_name}: {e}"))?;
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    // A server may close without close_notify; what was read is the response.
    let _ = tls.read_to_end(&mut buf).await;
    HttpResponse::parse(&buf)
}

/// A plain HTTP GET on loopback; the body on 2xx.
#[cfg(feature = "cluster")]
pub async fn http_get(url: &str) -> Result<String, String> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|e| e.to_string())?;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    stream
        .read_to_end(&mut buf)
        .await
        .map_err(|e| e.to_string())?;
    let response = HttpResponse::parse(&buf)?;
    match response.status {
        200..=299 => Ok(response.body),
        status => Err(format!("HTTP {status}")),
    }
}

/// A minimal blocking HTTP/1.0 GET of `path` on 127.0.0.1:`port` (etcd's plain-HTTP health
/// endpoint): the whole response, head included, whatever its status.
pub fn http_get_blocking(port: u16, path: &str) -> Result<String, String> {
    let timeout = Some(Duration::from_secs(2));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(timeout)
        .map_err(|e| e.to_string())?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .map_err(|e| format!("GET {path}: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("GET {path}: {e}"))?;
    Ok(response)
}

/// The workspace's `prism-operator` binary, built once per test process with the profile the
/// tests run under (debug, or release for benchmarks), so no test runs a stale operator.
/// `PRISM_OPERATOR_BIN` names a prebuilt binary instead.
pub fn operator_binary() -> PathBuf {
    match std::env::var_os("PRISM_OPERATOR_BIN") {
        Some(path) => PathBuf::from(path),
        None => cargo_binary("prism-operator", "prism-operator"),
    }
}
