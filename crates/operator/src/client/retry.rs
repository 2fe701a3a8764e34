//! Requests the API server turns away for load (429 from API Priority and Fairness, 503, 504)
//! are tried again after the server's `Retry-After` or a jittered exponential backoff, whichever
//! is longer, while the request's time budget lasts. Out of budget, the last answer is returned:
//! the reconcile fails and its object goes back to the controller's per-object backoff, so no
//! object is held inside the client for long and the controller decides when to try again.
//! A request whose body cannot be replayed (a stream) is not retried.
//!
//! API Priority and Fairness asks for longer waits the more a flow is rejected (1, 2, 4 … 32 s).
//! The latest such request is kept in a [`ServerBackoff`] that the controllers' per-object
//! backoff heeds: an object turned away is not tried again before the server asked.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderMap, Request, Response, StatusCode};
use kube::client::Body;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt as _};

use crate::kit::jitter;
use crate::observe::metrics::{Histograms, Metrics, RetryLabels, VerbLabels};

/// The first wait before a retry; it doubles per retry up to [`CAP`].
pub const FIRST: Duration = Duration::from_millis(200);
/// The longest backoff between two attempts (a longer `Retry-After` is honoured).
pub const CAP: Duration = Duration::from_secs(5);

/// When to try a turned-away request again.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    budget: Duration,
}

impl Policy {
    /// Retries within `budget` of a request's first attempt.
    pub fn new(budget: Duration) -> Self {
        Self { budget }
    }

    /// How long to wait before trying again after answer `status` (with the server's
    /// `retry_after`) to attempt `attempt` (0 the first), `elapsed` after the first began;
    /// `None`: return this answer. A wait is never shorter than `Retry-After`, and never ends
    /// past the budget.
    pub fn wait(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        attempt: u32,
        elapsed: Duration,
    ) -> Option<Duration> {
        let turned_away = matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT
        );
        if !turned_away {
            return None;
        }
        let backoff = FIRST.saturating_mul(1 << attempt.min(16)).min(CAP);
        let backoff = jitter::shorten(backoff, 0.5);
        let wait = retry_after.map_or(backoff, |r| r.max(backoff));
        (elapsed.saturating_add(wait) <= self.budget).then_some(wait)
    }
}

/// Until when the API server asked this client to hold back (the furthest `Retry-After` of its
/// recent answers), shared by the client and the controllers' backoff.
#[derive(Debug, Clone, Default)]
pub struct ServerBackoff(Arc<Mutex<Option<Instant>>>);

impl ServerBackoff {
    /// The server asked to come back after `wait`.
    pub fn asked(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut held = self.0.lock().expect("not poisoned");
        *held = Some(held.map_or(until, |u| u.max(until)));
    }

    /// How much longer the server asked to hold back (zero when it did not, or no longer).
    pub fn remaining(&self) -> Duration {
        let held = *self.0.lock().expect("not poisoned");
        held.map_or(Duration::ZERO, |u| {
            u.saturating_duration_since(Instant::now())
        })
    }
}

/// `Retry-After` in seconds (the form the API server sends; a date is ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse().ok().map(Duration::from_secs)
}

/// A copy of `request` to send again, if its body can be replayed.
fn replay(request: &Request<Body>) -> Option<Request<Body>> {
    let body = request.body().try_clone()?;
    let mut copy = Request::new(body);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    Some(copy)
}

/// Retries with a [`Policy`]; counts the retries (`rest_client_request_retries_total`) and
/// each request's time in the client (`prism_operator_api_client_seconds`).
#[derive(Clone)]
pub struct RetryLayer {
    policy: Policy,
    server: ServerBackoff,
    host: String,
    retries: Family<RetryLabels, Counter>,
    durations: Histograms<VerbLabels>,
}

impl RetryLayer {
    /// Retries requests to `host` with `policy`, counted in `metrics`; what the server asks is
    /// kept in `server`.
    pub fn new(policy: Policy, server: ServerBackoff, host: String, metrics: &Metrics) -> Self {
        Self {
            policy,
            server,
            host,
            retries: metrics.retries.clone(),
            durations: metrics.client_durations.clone(),
        }
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retrying<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Retrying {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service whose turned-away requests are retried.
#[derive(Clone)]
pub struct Retrying<S> {
    inner: S,
    layer: RetryLayer,
}

impl<S, B> Service<Request<Body>> for Retrying<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The service that was polled ready takes the first attempt; later ones wait for a
        // clone to be ready.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let layer = self.layer.clone();
        Box::pin(async move {
            let started = Instant::now();
            let verb = request.method().as_str().to_string();
            let mut request = request;
            let mut attempt = 0;
            let result = loop {
                let again = replay(&request);
                let result = inner.call(request).await;
                let Ok(answer) = &result else {
                    break result;
                };
                let asked = retry_after(answer.headers());
                if let Some(asked) = asked
                    && answer.status() == StatusCode::TOO_MANY_REQUESTS
                {
                    layer.server.asked(asked);
                }
                let wait = layer
                    .policy
                    .wait(answer.status(), asked, attempt, started.elapsed());
                let (Some(wait), Some(again)) = (wait, again) else {
                    break result;
                };
                layer
                    .retries
                    .get_or_create(&RetryLabels {
                        code: answer.status().as_str().to_string(),
                        verb: verb.clone(),
                        host: layer.host.clone(),
                    })
                    .inc();
                drop(result);
                tokio::time::sleep(wait).await;
                attempt += 1;
                if let Err(e) = inner.ready().await {
                    break Err(e);
                }
                request = again;
            };
            layer
                .durations
                .get_or_create(&VerbLabels {
                    verb,
                    host: layer.host.clone(),
                })
                .observe(started.elapsed().as_secs_f64());
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use crate::observe::exposition::Format;

    const BUDGET: Duration = Duration::from_secs(10);

    #[test]
    fn only_answers_that_mean_load_are_retried() {
        let p = Policy::new(BUDGET);
        for code in [200, 201, 400, 404, 409, 422, 500] {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(p.wait(status, None, 0, Duration::ZERO), None, "{code}");
        }
        for code in [429, 503, 504] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(p.wait(status, None, 0, Duration::ZERO).is_some(), "{code}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap_and_honours_retry_after() {
        let p = Policy::new(Duration::from_secs(3600));
        let tm = StatusCode::TOO_MANY_REQUESTS;
        for attempt in 0..12 {
            let full = FIRST.saturating_mul(1 << attempt).min(CAP);
            let waits: Vec<Duration> = (0..200)
                .map(|_| p.wait(tm, None, attempt, Duration::ZERO).unwrap())
                .collect();
            assert!(
                waits.iter().all(|w| *w <= full && *w >= full / 2),
                "{waits:?}"
            );
            // Jittered: two hundred waits are not all the same.
            assert!(waits.iter().any(|w| *w != waits[0]), "attempt {attempt}");
        }
        let server = Some(Duration::from_secs(3));
        assert_eq!(p.wait(tm, server, 0, Duration::ZERO), server);
        // A backoff longer than Retry-After wins.
        let wait = p.wait(tm, Some(Duration::from_secs(1)), 10, Duration::ZERO);
        assert!(wait.unwrap() >= CAP / 2);
    }

    #[test]
    fn no_wait_ends_past_the_budget() {
        let p = Policy::new(BUDGET);
        let tm = StatusCode::TOO_MANY_REQUESTS;
        let one = Some(Duration::from_secs(1));
        assert_eq!(p.wait(tm, one, 0, Duration::from_secs(9)), one);
        assert_eq!(p.wait(tm, one, 0, Duration::from_millis(9001)), None);
        // Without Retry-After the backoff alone must fit: 5 s at most, 2.5 s at least.
        assert_eq!(p.wait(tm, None, 10, Duration::from_millis(7600)), None);
        assert_eq!(
            p.wait(tm, Some(Duration::from_secs(11)), 0, Duration::ZERO),
            None
        );
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2026 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    /// A server that answers 429 with `Retry-After: 1` to the first `throttled` requests.
    fn answering(
        throttled: u32,
    ) -> (
        impl Service<
            Request<Body>,
            Response = Response<String>,
            Error = std::convert::Infallible,
            Future = impl Send,
        > + Clone
        + Send
        + 'static,
        Arc<AtomicU32>,
    ) {
        let calls = Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let svc = tower::service_fn(move |r: Request<Body>| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                assert_eq!(r.uri().path(), "/apis/prism.io/v1alpha1/prismshards");
                let answer = match n < throttled {
                    true => Response::builder().status(429).header("retry-after", "1"),
                    false => Response::builder().status(200),
                };
                Ok(answer.body(String::new()).unwrap())
            }
        });
        (svc, calls)
    }

    fn request() -> Request<Body> {
        Request::post("/apis/prism.io/v1alpha1/prismshards")
            .body(Body::from(b"{}".to_vec()))
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_request_is_sent_again_after_retry_after() {
        let metrics = Metrics::new();
        let server = ServerBackoff::default();
        let layer = RetryLayer::new(
            Policy::new(BUDGET),
            server.clone(),
            "api:6443".into(),
            &metrics,
        );
        let (svc, calls) = answering(3);
        let started = Instant::now();
        let answer = layer.layer(svc).oneshot(request()).await.unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        // Three waits of the server's one second (longer than the first backoffs).
        assert!(
            started.elapsed() >= Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        let text = metrics.encode(Format::Text);
        let line = r#"rest_client_request_retries_total{code="429",verb="POST",host="api:6443"} 3"#;
        assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn out_of_budget_the_last_answer_is_returned() {
        let metrics = Metrics::new();
        let server = ServerBackoff::default();
        let budget = Duration::from_millis(2500);
        let layer = RetryLayer::new(
            Policy::new(budget),
            server.clone(),
            "api:6443".into(),
            &metrics,
        );
        let (svc, calls) = answering(u32::MAX);
        let started = Instant::now();
        let answer = layer.layer(svc).oneshot(request()).await.unwrap();
        assert_eq!(answer.status(), 429);
        // Waits of one second each: attempts at 0, 1 and 2 s; a third wait would end past 2.5 s.
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(started.elapsed() <= budget, "{:?}", started.elapsed());
        let text = metrics.encode(Format::Text);
        let line = r#"prism_operator_api_client_seconds_count{verb="POST",host="api:6443"} 1"#;
        assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
        // The server's last Retry-After is kept for the controllers' backoff, and runs out.
        assert_eq!(server.remaining(), Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(server.remaining(), Duration::from_millis(600));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(server.remaining(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn the_server_backoff_keeps_the_furthest_ask() {
        let server = ServerBackoff::default();
        assert_eq!(server.remaining(), Duration::ZERO);
        server.asked(Duration::from_secs(32));
        server.asked(Duration::from_secs(1));
        assert_eq!(server.remaining(), Duration::from_secs(32));
    }
}
