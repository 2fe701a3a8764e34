//! The API server's own metrics (`GET /metrics` through the client): request counts, to measure
//! what the operator writes.

use kube::Client;

/// One `apiserver_request_total` series.
#[derive(Debug, Clone, PartialEq)]
pub struct Requests {
    pub verb: String,
    pub resource: String,
    pub subresource: String,
    pub count: f64,
}

impl Requests {
    /// Whether the verb writes (apply, patch, create, update, delete).
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "APPLY" | "PATCH" | "POST" | "PUT" | "DELETE" | "DELETECOLLECTION"
        )
    }
}

/// The API server's metrics as text.
pub async fn scrape(client: &Client) -> String {
    let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
    client.request_text(req).await.unwrap()
}

/// Every `apiserver_request_total` series of `text`.
pub fn requests(text: &str) -> Vec<Requests> {
    text.lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .map(|line| {
            let label = |k: &str| {
                line.split(&format!("{k}=\""))
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .unwrap_or("")
                    .to_string()
            };
            Requests {
                verb: label("verb"),
                resource: label("resource"),
                subresource: label("subresource"),
                count: line.rsplit(' ').next().unwrap().parse().unwrap_or(0.0),
            }
        })
        .collect()
}

/// The sum of the samples of every series of `text` (any Prometheus text exposition: the API
/// server's or the operator's) whose line starts with `prefix` (a metric name, with or without
/// some of its labels).
pub fn sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
