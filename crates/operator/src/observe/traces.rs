//! Traces over OTLP/gRPC, off unless an endpoint is configured (`--otlp-endpoint`, or the
//! standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`; the other
//! `OTEL_*` variables the exporter and SDK read apply too). A reconcile is a span with its
//! object; applies, status writes and Prism admin calls are its children, and the W3C trace
//! context of each admin call travels in its gRPC metadata.
//!
//! Exporting never slows a reconcile: finished spans go into a bounded queue, a task exports
//! them in batches, and a span that finds the queue full, or whose batch the collector does
//! not take, is dropped and counted in `prism_operator_spans_dropped_total`.

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use opentelemetry::propagation::{Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, Span, SpanData, SpanExporter, SpanProcessor};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, oneshot};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Spans dropped by a full queue or a failed export.
pub static SPANS_DROPPED: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Finished spans waiting for export, at most.
pub const QUEUE: usize = 2048;
/// Spans per export, at most.
const BATCH: usize = 512;
/// How long a batch waits to fill before it is sent.
const DELAY: Duration = Duration::from_secs(1);
/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where traces go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceConfig {
    /// The collector's OTLP/gRPC endpoint, `http://host:4317` or `https://host:4317`.
    pub endpoint: String,
    /// CA bundle (PEM) an `https://` endpoint's certificate is checked against.
    pub ca: Option<PathBuf>,
}

impl TraceConfig {
    /// The configuration `flag` (or the standard variables in `env`) ask for; `None` when no
    /// endpoint is set.
    pub fn from(flag: Option<String>, env: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let non_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let endpoint = non_empty(flag)
            .or_else(|| non_empty(env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")))
            .or_else(|| non_empty(env("OTEL_EXPORTER_OTLP_ENDPOINT")))?;
        let ca = non_empty(env("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE"))
            .or_else(|| non_empty(env("OTEL_EXPORTER_OTLP_CERTIFICATE")))
            .map(PathBuf::from);
        Some(Self { endpoint, ca })
    }
}

/// The running export; [`Traces::shutdown`] sends what is queued.
pub struct Traces {
    provider: SdkTracerProvider,
    drain: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts exporting to `cfg` (within a Tokio runtime): the tracer for the subscriber's layer,
/// and the handle that flushes at shutdown. Errors name what is wrong with the settings.
pub fn start(cfg: &TraceConfig, service_instance: &str) -> anyhow::Result<(Traces, Tracer)> {
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(cfg.endpoint.clone())
        .with_timeout(EXPORT_TIMEOUT);
    if cfg.endpoint.starts_with("https://") {
        let Some(ca) = &cfg.ca else {
            anyhow::bail!(
                "traces: {} is https:// but no CA is set: set OTEL_EXPORTER_OTLP_CERTIFICATE to the CA bundle (the image has no system CA roots)",
                cfg.endpoint
            );
        };
        let pem = std::fs::read(ca)
            .map_err(|e| anyhow::anyhow!("traces: reading the CA {}: {e}", ca.display()))?;
        builder = builder.with_tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
        );
    } else if !cfg.endpoint.starts_with("http://") {
        anyhow::bail!(
            "traces: endpoint {:?} must start with http:// or https://",
            cfg.endpoint
        );
    }
    let mut exporter = builder
        .build()
        .map_err(|e| anyhow::anyhow!("traces: {e}"))?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "prism-operator".into());
    let resource = Resource::builder()
        .with_service_name(service)
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_attribute(opentelemetry::KeyValue::new(
            "service.instance.id",
            service_instance.to_string(),
        ))
        .build();
    // The exporter sends the resource with every batch; the queue never sees it.
    exporter.set_resource(&resource);
    let (tx, rx) = mpsc::channel(QUEUE);
    let (drain, drained) = oneshot::channel();
    let task = tokio::spawn(export(rx, drained, exporter));
    let provider = SdkTracerProvider::builder()
        .with_span_processor(Queue { tx })
        .with_resource(resource)
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let tracer = provider.tracer("prism-operator");
    Ok((
        Traces {
            provider,
            drain: Some(drain),
            task,
        },
        tracer,
    ))
}

/// The tracer the subscriber's layer records into.
pub type Tracer = opentelemetry_sdk::trace::Tracer;

impl Traces {
    /// Sends the spans still queued, waiting at most `timeout`.
    pub async fn shutdown(mut self, timeout: Duration) {
        if let Some(drain) = self.drain.take() {
            let _ = drain.send(());
        }
        let _ = tokio::time::timeout(timeout, &mut self.task).await;
        let _ = self.provider.shutdown();
    }
}

/// Puts the W3C trace context of the current span into gRPC metadata.
pub fn inject_context(metadata: &mut tonic::metadata::MetadataMap) {
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut Metadata(metadata));
}

struct Metadata<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for Metadata<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// Hands finished spans to the export task, dropping (and counting) what does not fit.
#[derive(Debug)]
struct Queue {
    tx: mpsc::Sender<SpanData>,
}

impl SpanProcessor for Queue {
    fn on_start(&self, _: &mut Span, _: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if self.tx.try_send(span).is_err() {
            SPANS_DROPPED.inc();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Exports batches until told to drain; then sends what is queued and stops.
async fn export(
    mut rx: mpsc::Receiver<SpanData>,
    mut drained: oneshot::Receiver<()>,
    exporter: impl SpanExporter,
) {
    let mut failing = false;
    loop {
        let first = tokio::select! {
            span = rx.recv() => match span {
                Some(span) => span,
                None => return,
            },
            _ = &mut drained => {
                let mut rest = Vec::new();
                while let Ok(span) = rx.try_recv() {
                    rest.push(span);
                }
                for batch in rest.chunks(BATCH) {
                    send(&exporter, batch.to_vec(), &mut failing).await;
                }
                return;
            }
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + DELAY;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        send(&exporter, batch, &mut failing).await;
    }
}

/// Exports one batch; a batch the collector does not take is counted as dropped. Logs when
/// exporting starts or stops failing, not for every batch.
async fn send(exporter: &impl SpanExporter, batch: Vec<SpanData>, failing: &mut bool) {
    let n = batch.len() as u64;
    let result = tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(batch)).await;
    match result {
        Ok(Ok(())) => {
            if std::mem::take(failing) {
                tracing::info!("exporting traces again");
            }
        }
        Ok(Err(e)) => {
            SPANS_DROPPED.inc_by(n);
            if !std::mem::replace(failing, true) {
                tracing::warn!(error = %e, "cannot export traces; dropping spans until it works");
            }
        }
        Err(_) => {
            SPANS_DROPPED.inc_by(n);
            if !std::mem::replace(failing, true) {
                tracing::warn!(timeout = ?EXPORT_TIMEOUT, "exporting traces timed out; dropping spans until it works");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_from_the_flag_or_the_standard_variables() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(TraceConfig::from(None, env(&[])), None);
        assert_eq!(
            TraceConfig::from(None, env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])),
            None
        );
        let both = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://all:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem"),
        ]);
        assert_eq!(
            TraceConfig::from(None, both),
            Some(TraceConfig {
                endpoint: "http://traces:4317".into(),
                ca: Some("/ca.pem".into()),
            })
        );
        assert_eq!(
            TraceConfig::from(Some("http://flag:4317".into()), both)
                .unwrap()
                .endpoint,
            "http://flag:4317"
        );
    }

    #[tokio::test]
    async fn settings_that_cannot_work_are_refused_at_start() {
        let https = TraceConfig {
            endpoint: "https://collector:4317".into(),
            ca: None,
        };
        let err = start(&https, "p").err().unwrap().to_string();
        assert!(err.contains("OTEL_EXPORTER_OTLP_CERTIFICATE"), "{err}");
        let bare = TraceConfig {
            endpoint: "collector:4317".into(),
            ca: None,
        };
        let err = start(&bare, "p").err().unwrap().to_string();
        assert!(err.contains("http:// or https://"), "{err}");
    }

    #[derive(Debug)]
    struct Stuck;

    impl SpanExporter for Stuck {
        async fn export(&self, _: Vec<SpanData>) -> OTelSdkResult {
            std::future::pending().await
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let (tx, _rx) = mpsc::channel(2);
        let queue = Queue { tx };
        let provider = SdkTracerProvider::builder()
            .with_span_processor(queue)
            .build();
        let tracer = provider.tracer("t");
        let before = SPANS_DROPPED.get();
        let started = std::time::Instant::now();
        for _ in 0..10 {
            use opentelemetry::trace::Tracer as _;
            drop(tracer.start("s"));
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(SPANS_DROPPED.get() >= before + 8);
        let _ = Stuck;
    }
}
