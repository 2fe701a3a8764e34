//! The API server's own metrics (`GET /metrics` through the client): request counts, to measure
//! what the operator writes.

use std::collections::BTreeMap;

use kube::Client;

/// The resources the operator writes: its own kinds and what it renders.
const OPERATOR_RESOURCES: &[&str] = &[
    "configmaps",
    "services",
    "statefulsets",
    "deployments",
    "poddisruptionbudgets",
    "horizontalpodautoscalers",
    "prismshards",
    "prismplugins",
    "prismnamespaces",
];

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

/// Write requests on the resources the operator writes, by `verb resource/subresource`, from
/// the API server's `apiserver_request_total` (the controller-manager's writes of workload
/// status and scale left out).
pub async fn operator_writes(client: &Client) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for r in requests(&scrape(client).await) {
        let kcm_status = (r.subresource == "status" || r.subresource == "scale")
            && !r.resource.starts_with("prism");
        if r.is_write() && OPERATOR_RESOURCES.contains(&r.resource.as_str()) && !kcm_status {
            *out.entry(format!("{} {}/{}", r.verb, r.resource, r.subresource))
                .or_default() += r.count;
        }
    }
    out
}

/// What grew from `before` to `after` (series that did not change left out).
pub fn grown(
    after: &BTreeMap<String, f64>,
    before: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d != 0.0)
        .collect()
}
