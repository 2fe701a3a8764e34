//! A real OpenTelemetry Collector on loopback that receives traces over OTLP/gRPC and writes
//! them to a file, so a test can read back the spans a process exported.
//!
//! The collector is built from its Go modules by `tools/otelcol/build.sh` (the OTLP receiver and
//! the file exporter only); `PRISM_OTELCOL` names its bin dir instead. Each [`Collector`] runs
//! its own process on a free 127.0.0.1 port with a private temp dir holding its config, its log
//! (stderr) and `spans.json`, the file exporter's OTLP/JSON output: one
//! `ExportTraceServiceRequest` per line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// One span as the collector received it, every value rendered as a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// The parent's span ID; `None` for a root span.
    pub parent_span_id: Option<String>,
    /// The operation's name.
    pub name: String,
    /// `Internal`, `Server`, `Client`, `Producer` or `Consumer`; `None` when unspecified.
    pub kind: Option<String>,
    /// The span's attributes.
    pub attributes: BTreeMap<String, String>,
    /// The attributes of the resource that sent it (`service.name`, ...).
    pub resource: BTreeMap<String, String>,
    /// `Ok` or `Error`; `None` when unset.
    pub status_code: Option<String>,
}

impl Span {
    /// Whether `parent` is this span's parent (same trace, parent span ID).
    pub fn is_child_of(&self, parent: &Span) -> bool {
        self.trace_id == parent.trace_id
            && self.parent_span_id.as_deref() == Some(parent.span_id.as_str())
    }
}

/// The bin dir holding `otelcol`: `PRISM_OTELCOL`, else what `tools/otelcol/build.sh` prints on
/// its last line (built once per process; a cold build shows its progress on stderr).
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        crate::paths::built_dir("PRISM_OTELCOL", "tools/otelcol/build.sh")
            .unwrap_or_else(|e| panic!("{e}"))
    })
}

/// The collector binary, `otelcol` in [`bin_dir`].
pub fn otelcol_binary() -> PathBuf {
    let path = bin_dir().join("otelcol");
    assert!(
        path.is_file(),
        "{} not found: run tools/otelcol/build.sh (or fix PRISM_OTELCOL)",
        path.display()
    );
    path
}

/// A collector process receiving OTLP/gRPC on 127.0.0.1 and writing every trace it gets to
/// `spans.json` in its temp dir; killed when dropped.
pub struct Collector {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    tls: bool,
}

impl Collector {
    /// Starts a collector on a free loopback port; returns once the port accepts connections.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Like [`start`](Self::start), receiving over TLS with `leaf` (a loopback serving
    /// certificate): the endpoint is `https://127.0.0.1:PORT`.
    pub async fn start_tls(leaf: &crate::pki::Leaf) -> Self {
        Self::start_with(Some(leaf)).await
    }

    async fn start_with(tls: Option<&crate::pki::Leaf>) -> Self {
        let binary = otelcol_binary();
        let dir = tempfile::tempdir().unwrap();
        let port = crate::process::free_port();
        let spans = dir.path().join("spans.json");
        let tls = match tls {
            Some(leaf) => {
                let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
                std::fs::write(&cert, &leaf.cert).unwrap();
                std::fs::write(&key, &leaf.key).unwrap();
                format!(
                    "\n        tls:\n          cert_file: {}\n          key_file: {}",
                    serde_json::to_string(&cert.display().to_string()).unwrap(),
                    serde_json::to_string(&key.display().to_string()).unwrap()
                )
            }
            None => String::new(),
        };
        // `metrics: level: none` keeps the collector from serving its own metrics on
        // localhost:8888, where every collector after the first would fail to bind.
        let config = format!(
            "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{port}{tls}
exporters:
  file:
    path: {path}
    format: json
    flush_interval: 100ms
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file]
",
            path = serde_json::to_string(&spans.display().to_string()).unwrap(),
        );
        let config_path = dir.path().join("otelcol.yaml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("otelcol.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config=file:{}", config_path.display()))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("otelcol starts");
        let mut collector = Self {
            child,
            port,
            dir,
            tls: !tls.is_empty(),
        };
        collector.wait_ready().await;
        collector
    }

    async fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "otelcol exited ({status}) before listening:\n{}",
                    self.log_tail()
                );
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "otelcol not listening on 127.0.0.1:{} within 60 s:\n{}",
                self.port,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The OTLP/gRPC endpoint, `http://127.0.0.1:PORT` (`https://` over TLS).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The file the spans are written to.
    pub fn spans_path(&self) -> PathBuf {
        self.dir.path().join("spans.json")
    }

    /// The end of its log (stderr).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("otelcol.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Every span written so far, in the order received (a line still being written is left
    /// for the next call).
    pub fn spans(&self) -> Vec<Span> {
        let path = self.spans_path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        parse_lines(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Polls [`spans`](Self::spans) until `pred` holds for them and returns them; panics after
    /// `timeout`, naming `what`, the spans seen and the end of the collector's log.
    pub async fn wait_spans(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&[Span]) -> bool,
    ) -> Vec<Span> {
        let started = Instant::now();
        loop {
            let spans = self.spans();
            if pred(&spans) {
                return spans;
            }
            if started.elapsed() >= timeout {
                let seen: Vec<String> = spans
                    .iter()
                    .map(|s| format!("{} ({}/{})", s.name, s.trace_id, s.span_id))
                    .collect();
                panic!(
                    "timed out after {timeout:?} waiting for {what}; {} spans: [{}]\notelcol log:\n{}",
                    spans.len(),
                    seen.join(", "),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The spans of the file exporter's output, line by line; text after the last newline (a line
/// still being written) is left out.
pub fn parse_lines(text: &str) -> Result<Vec<Span>, String> {
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    let mut spans = Vec::new();
    for line in complete.lines().filter(|line| !line.trim().is_empty()) {
        spans.extend(parse_line(line).map_err(|e| format!("{e}: {line}"))?);
    }
    Ok(spans)
}

/// The spans of one line of the file exporter's output (an OTLP/JSON
/// `ExportTraceServiceRequest`).
pub fn parse_line(line: &str) -> Result<Vec<Span>, String> {
    let request: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let mut spans = Vec::new();
    for resource_spans in array(&request, "resourceSpans") {
        let resource = attributes(&resource_spans["resource"]);
        for scope_spans in array(resource_spans, "scopeSpans") {
            for span in array(scope_spans, "spans") {
                spans.push(Span {
                    trace_id: string(span, "traceId")
                        .ok_or_else(|| format!("a span without traceId: {span}"))?,
                    span_id: string(span, "spanId")
                        .ok_or_else(|| format!("a span without spanId: {span}"))?,
                    parent_span_id: string(span, "parentSpanId").filter(|id| !id.is_empty()),
                    name: string(span, "name").unwrap_or_default(),
                    kind: span_kind(&span["kind"]),
                    attributes: attributes(span),
                    resource: resource.clone(),
                    status_code: status_code(&span["status"]["code"]),
                });
            }
        }
    }
    Ok(spans)
}

fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value[key].as_array().map(Vec::as_slice).unwrap_or_default()
}

fn string(value: &Value, key: &str) -> Option<String> {
    value[key].as_str().map(str::to_string)
}

/// `attributes` of a span or resource, each value rendered as a string.
fn attributes(value: &Value) -> BTreeMap<String, String> {
    array(value, "attributes")
        .iter()
        .filter_map(|kv| Some((kv["key"].as_str()?.to_string(), render(&kv["value"]))))
        .collect()
}

/// An OTLP `AnyValue` as a string: strings as they are, numbers and booleans as written, bytes
/// as base64, arrays and maps as JSON of their rendered values.
fn render(value: &Value) -> String {
    if let Some(v) = value.get("stringValue") {
        return v.as_str().unwrap_or_default().to_string();
    }
    if let Some(v) = value.get("arrayValue") {
        let items: Vec<String> = array(v, "values").iter().map(render).collect();
        return serde_json::to_string(&items).unwrap();
    }
    if let Some(v) = value.get("kvlistValue") {
        let map: BTreeMap<String, String> = array(v, "values")
            .iter()
            .filter_map(|kv| Some((kv["key"].as_str()?.to_string(), render(&kv["value"]))))
            .collect();
        return serde_json::to_string(&map).unwrap();
    }
    for key in ["intValue", "boolValue", "doubleValue", "bytesValue"] {
        match value.get(key) {
            Some(Value::String(s)) => return s.clone(),
            Some(v) => return v.to_string(),
            None => {}
        }
    }
    String::new()
}

/// OTLP `SpanKind`, as a number or an enum name.
fn span_kind(value: &Value) -> Option<String> {
    let kind = match value {
        Value::Number(n) => match n.as_u64()? {
            1 => "Internal",
            2 => "Server",
            3 => "Client",
            4 => "Producer",
            5 => "Consumer",
            _ => return None,
        },
        Value::String(s) => match s.as_str() {
            "SPAN_KIND_INTERNAL" => "Internal",
            "SPAN_KIND_SERVER" => "Server",
            "SPAN_KIND_CLIENT" => "Client",
            "SPAN_KIND_PRODUCER" => "Producer",
            "SPAN_KIND_CONSUMER" => "Consumer",
            _ => return None,
        },
        _ => return None,
    };
    Some(kind.to_string())
}

/// OTLP `Status.code`, as a number or an enum name.
fn status_code(value: &Value) -> Option<String> {
    let code = match value {
        Value::Number(n) => match n.as_u64()? {
            1 => "Ok",
            2 => "Error",
            _ => return None,
        },
        Value::String(s) => match s.as_str() {
            "STATUS_CODE_OK" => "Ok",
            "STATUS_CODE_ERROR" => "Error",
            _ => return None,
        },
        _ => return None,
    };
    Some(code.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two lines the collector wrote for an OpenTelemetry Go SDK client: a child span (an error)
    /// exported before its parent (a server span with attributes of every scalar type).
    const LINES: &str = concat!(
        r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"pid.fake","value":{"intValue":"7"}},{"key":"service.name","value":{"stringValue":"otlpsend"}}]},"scopeSpans":[{"scope":{"name":"otlpsend"},"spans":[{"traceId":"2af505dfb555dc761a91e9f10a275a3d","spanId":"33aacfa41c93af0b","parentSpanId":"a63d17cb05e48003","flags":257,"name":"admin.call","kind":3,"startTimeUnixNano":"1796626999464160481","endTimeUnixNano":"1796626999474325101","status":{"message":"boom","code":2}}]}]}]}"#,
        "\n",
        r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"pid.fake","value":{"intValue":"7"}},{"key":"service.name","value":{"stringValue":"otlpsend"}}]},"scopeSpans":[{"scope":{"name":"otlpsend"},"spans":[{"traceId":"2af505dfb555dc761a91e9f10a275a3d","spanId":"a63d17cb05e48003","flags":257,"name":"reconcile","kind":2,"startTimeUnixNano":"1796626999464152869","endTimeUnixNano":"1796626999476761560","attributes":[{"key":"prism.namespace","value":{"stringValue":"ns-a"}},{"key":"attempt","value":{"intValue":"3"}},{"key":"dry","value":{"boolValue":true}},{"key":"ratio","value":{"doubleValue":0.25}}],"status":{"code":1}}]}]}]}"#,
        "\n",
    );

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_the_file_exporters_lines() {
        let spans = parse_lines(LINES).unwrap();
        let resource = map(&[("pid.fake", "7"), ("service.name", "otlpsend")]);
        assert_eq!(
            spans,
            vec![
                Span {
                    trace_id: "2af505dfb555dc761a91e9f10a275a3d".into(),
                    span_id: "33aacfa41c93af0b".into(),
                    parent_span_id: Some("a63d17cb05e48003".into()),
                    name: "admin.call".into(),
                    kind: Some("Client".into()),
                    attributes: BTreeMap::new(),
                    resource: resource.clone(),
                    status_code: Some("Error".into()),
                },
                Span {
                    trace_id: "2af505dfb555dc761a91e9f10a275a3d".into(),
                    span_id: "a63d17cb05e48003".into(),
                    parent_span_id: None,
                    name: "reconcile".into(),
                    kind: Some("Server".into()),
                    attributes: map(&[
                        ("prism.namespace", "ns-a"),
                        ("attempt", "3"),
                        ("dry", "true"),
                        ("ratio", "0.25"),
                    ]),
                    resource,
                    status_code: Some("Ok".into()),
                },
            ]
        );
        assert!(spans[0].is_child_of(&spans[1]));
        assert!(!spans[1].is_child_of(&spans[0]));
    }

    #[test]
    fn leaves_out_a_line_being_written() {
        let (first, second) = LINES.split_once('\n').unwrap();
        let partial = format!("{first}\n{}", &second[..40]);
        let spans = parse_lines(&partial).unwrap();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].name, "admin.call");
        assert_eq!(parse_lines(&second[..40]).unwrap(), vec![]);
        assert_eq!(parse_lines("").unwrap(), vec![]);
    }

    #[test]
    fn renders_empty_parents_unset_status_and_nested_values() {
        let line = r#"{"resourceSpans":[{"resource":{},"scopeSpans":[{"scope":{},"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","parentSpanId":"","name":"root","kind":0,"attributes":[{"key":"list","value":{"arrayValue":{"values":[{"stringValue":"a"},{"intValue":"1"}]}}},{"key":"map","value":{"kvlistValue":{"values":[{"key":"k","value":{"boolValue":false}}]}}},{"key":"bytes","value":{"bytesValue":"AQI="}},{"key":"empty","value":{}}],"status":{}}]}]}]}"#;
        let spans = parse_line(line).unwrap();
        assert_eq!(spans.len(), 1);
        let span = &spans[0];
        assert_eq!(span.parent_span_id, None);
        assert_eq!(span.kind, None);
        assert_eq!(span.status_code, None);
        assert!(span.resource.is_empty());
        assert_eq!(
            span.attributes,
            map(&[
                ("list", r#"["a","1"]"#),
                ("map", r#"{"k":"false"}"#),
                ("bytes", "AQI="),
                ("empty", ""),
            ])
        );
        assert!(parse_line("{not json").is_err());
        assert!(
            parse_line(r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"x"}]}]}]}"#).is_err()
        );
    }
}
