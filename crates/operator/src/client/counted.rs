//! Counts every attempt of a request to the Kubernetes API as client-go does:
//! `rest_client_requests_total{code,method,host}` (`code` is `<error>` when no response came)
//! and `rest_client_request_duration_seconds{verb,host}` (time to the response's headers).
//! The layer sits inside the retries of [`super::retry`]: a retried request is counted once per
//! attempt, with each attempt's answer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tower::{Layer, Service};

use crate::observe::metrics::{Histograms, Metrics, RequestLabels, VerbLabels};

/// Counts requests into the two families.
#[derive(Clone)]
pub struct RequestMetrics {
    host: String,
    requests: Family<RequestLabels, Counter>,
    durations: Histograms<VerbLabels>,
}

impl RequestMetrics {
    /// Counts requests to `host` in `metrics`.
    pub fn new(host: String, metrics: &Metrics) -> Self {
        Self {
            host,
            requests: metrics.requests.clone(),
            durations: metrics.request_durations.clone(),
        }
    }
}

impl<S> Layer<S> for RequestMetrics {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Counted {
            inner,
            metrics: self.clone(),
        }
    }
}

/// A service whose requests are counted.
#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
    metrics: RequestMetrics,
}

impl<S, B, R> Service<Request<B>> for Counted<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let method = request.method().as_str().to_string();
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = response.await;
            let code = match &result {
                Ok(r) => r.status().as_str().to_string(),
                Err(_) => "<error>".to_string(),
            };
            metrics
                .durations
                .get_or_create(&VerbLabels {
                    verb: method.clone(),
                    host: metrics.host.clone(),
                })
                .observe(started.elapsed().as_secs_f64());
            metrics
                .requests
                .get_or_create(&RequestLabels {
                    code,
                    method,
                    host: metrics.host.clone(),
                })
                .inc();
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::exposition::Format;

    #[tokio::test]
    async fn counts_each_request_by_code_and_method() {
        let metrics = Metrics::new();
        let layer = RequestMetrics::new("10.0.0.1:6443".into(), &metrics);
        let answer = |code: u16| {
            let svc = tower::service_fn(move |_: Request<()>| async move {
                Ok::<_, std::convert::Infallible>(
                    Response::builder().status(code).body(()).unwrap(),
                )
            });
            layer.layer(svc)
        };
        let get = || Request::get("/api").body(()).unwrap();
        answer(200).call(get()).await.unwrap();
        answer(200).call(get()).await.unwrap();
        answer(429)
            .call(Request::patch("/apis").body(()).unwrap())
            .await
            .unwrap();
        let text = metrics.encode(Format::Text);
        for line in [
            r#"rest_client_requests_total{code="200",method="GET",host="10.0.0.1:6443"} 2"#,
            r#"rest_client_requests_total{code="429",method="PATCH",host="10.0.0.1:6443"} 1"#,
            r#"rest_client_request_duration_seconds_count{verb="GET",host="10.0.0.1:6443"} 2"#,
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
        }
    }
}
