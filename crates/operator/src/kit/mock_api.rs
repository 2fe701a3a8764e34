//! A Kubernetes API answered in process, for unit tests of what the operator sends it: every
//! request is recorded as `METHOD path?query` and answered by a function of the request.

use std::pin::pin;
use std::sync::{Arc, Mutex};

use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::Value;
use tower_test::mock;

/// One request the operator made: method, path with query, and JSON body (`Null` if none).
#[derive(Debug, Clone)]
pub struct Call {
    /// `GET`, `PATCH`, …
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// The body, parsed.
    pub body: Value,
}

/// The requests served so far.
pub type Calls = Arc<Mutex<Vec<Call>>>;

/// A client of an API that answers each request with `answer(call)`: (status, body).
pub fn serve(answer: impl Fn(&Call) -> (u16, Value) + Send + 'static) -> (Client, Calls) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let calls = Calls::default();
    let seen = calls.clone();
    tokio::spawn(async move {
        let mut handle = pin!(handle);
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().to_string();
            let uri = request.uri().to_string();
            let bytes = request
                .into_body()
                .collect_bytes()
                .await
                .unwrap_or_default();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let call = Call { method, uri, body };
            let (status, answer) = answer(&call);
            seen.lock().expect("not poisoned").push(call);
            let response = Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&answer).expect("JSON")))
                .expect("a response");
            send.send_response(response);
        }
    });
    (Client::new(service, "default"), calls)
}

/// A `Status` answer of `code` with `reason`.
pub fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": if code < 300 { "Success" } else { "Failure" },
        "reason": reason, "message": message, "code": code,
    });
    (code, body)
}

/// `METHOD path` of every call (queries dropped), in order.
pub fn lines(calls: &Calls) -> Vec<String> {
    calls
        .lock()
        .expect("not poisoned")
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c.method,
                c.uri.split('?').next().unwrap_or_default()
            )
        })
        .collect()
}
