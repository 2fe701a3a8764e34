//! PromQL as the chart ships it: the vector selectors of an expression, Grafana's variables
//! replaced by values a plain Prometheus accepts, the queries of a Grafana dashboard and the
//! alerting rules of a prometheus-operator PrometheusRule. Pure logic: no Prometheus involved.

use std::collections::BTreeMap;

use serde_json::Value;

/// One vector selector of an expression: `metric{label=…, …}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    /// The metric name (from `__name__="…"` when written as a matcher); empty when the
    /// selector names none, e.g. `{job="x"}`.
    pub metric: String,
    /// The label names its matchers use, in order (`__name__` excluded).
    pub labels: Vec<String>,
}

/// Aggregation operators: like functions, followed by `(`, optionally after `by (…)` or
/// `without (…)`.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// Keywords followed by a parenthesized list of label names, which are not selectors.
const LABEL_LIST_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Other words that are never metric names where they stand.
const KEYWORDS: &[&str] = &[
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
];

#[derive(Clone, Debug, PartialEq)]
enum Token {
    /// A metric name, function, keyword or label name.
    Ident(String),
    /// A quoted string, unescaped.
    Str(String),
    /// A number or a duration (`5m`, `1h30m`, `0x1f`, `1e3`).
    Number,
    /// `[…]`: a range or a subquery, skipped whole.
    Range,
    Open,
    Close,
    LBrace,
    RBrace,
    Comma,
    /// A matcher operator inside braces: `=`, `!=`, `=~`, `!~`.
    Matcher,
    /// Any other operator or symbol.
    Other,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn tokens(expr: &str) -> Vec<Token> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            _ if c.is_whitespace() => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '"' | '\'' | '`' => {
                let quote = c;
                let mut text = String::new();
                i += 1;
                while i < chars.len() && chars[i] != quote {
                    if chars[i] == '\\' && quote != '`' && i + 1 < chars.len() {
                        i += 1;
                    }
                    text.push(chars[i]);
                    i += 1;
                }
                i += 1;
                out.push(Token::Str(text));
            }
            '[' => {
                let mut depth = 0;
                while i < chars.len() {
                    match chars[i] {
                        '[' => depth += 1,
                        ']' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                i += 1;
                out.push(Token::Range);
            }
            '(' => {
                out.push(Token::Open);
                i += 1;
            }
            ')' => {
                out.push(Token::Close);
                i += 1;
            }
            '{' => {
                out.push(Token::LBrace);
                i += 1;
            }
            '}' => {
                out.push(Token::RBrace);
                i += 1;
            }
            ',' => {
                out.push(Token::Comma);
                i += 1;
            }
            '=' | '!' => {
                let next = chars.get(i + 1).copied();
                if c == '=' && next == Some('=') {
                    out.push(Token::Other);
                    i += 2;
                } else if (c == '!' && next == Some('=')) || next == Some('~') {
                    out.push(Token::Matcher);
                    i += 2;
                } else {
                    out.push(Token::Matcher);
                    i += 1;
                }
            }
            _ if c.is_ascii_digit()
                || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                // Numbers, hexadecimal numbers, exponents (1e-3) and durations (1h30m).
                let start = i;
                while i < chars.len() {
                    let d = chars[i];
                    let exponent_sign = matches!(d, '+' | '-')
                        && matches!(chars[i - 1], 'e' | 'E')
                        && chars.get(i + 1).is_some_and(char::is_ascii_digit)
                        && chars[start..i - 1]
                            .iter()
                            .all(|x| x.is_ascii_digit() || *x == '.');
                    if d.is_ascii_alphanumeric() || d == '.' || d == '_' || exponent_sign {
                        i += 1;
                    } else {
                        break;
                    }
                }
                out.push(Token::Number);
            }
            _ if is_ident_start(c) => {
                let start = i;
                while i < chars.len() && is_ident_char(chars[i]) {
                    i += 1;
                }
                out.push(Token::Ident(chars[start..i].iter().collect()));
            }
            _ => {
                out.push(Token::Other);
                i += 1;
            }
        }
    }
    out
}

/// Index just past the `)` closing the `(` at `open`.
fn skip_parens(tokens: &[Token], open: usize) -> usize {
    let mut depth = 0;
    let mut i = open;
    while i < tokens.len() {
        match tokens[i] {
            Token::Open => depth += 1,
            Token::Close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// Parses the matchers of the `{` at `open` into `selector`; returns the index past `}`.
fn matchers(tokens: &[Token], open: usize, selector: &mut Selector) -> usize {
    let mut i = open + 1;
    while i < tokens.len() && tokens[i] != Token::RBrace {
        let (Token::Ident(label) | Token::Str(label)) = &tokens[i] else {
            i += 1;
            continue;
        };
        match (tokens.get(i + 1), tokens.get(i + 2)) {
            (Some(Token::Matcher), value) => {
                if label != "__name__" {
                    selector.labels.push(label.clone());
                } else if let Some(Token::Str(name)) = value {
                    selector.metric = name.clone();
                }
                i += 3;
            }
            // Prometheus 3: a quoted metric name alone among the matchers.
            _ => {
                if selector.metric.is_empty() {
                    selector.metric = label.clone();
                }
                i += 1;
            }
        }
    }
    i + 1
}

/// Every vector selector of `expr`, in the order written (repeats kept): metric names and
/// `{…}` selectors, not function names, aggregation operators, keywords, the label lists of
/// `by`, `without`, `on`, `ignoring`, `group_left` and `group_right`, strings, numbers, or
/// what stands between `[` and `]`.
pub fn selectors(expr: &str) -> Vec<Selector> {
    let tokens = tokens(expr);
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Ident(word) => {
                let lower = word.to_ascii_lowercase();
                let next = tokens.get(i + 1);
                if LABEL_LIST_KEYWORDS.contains(&lower.as_str()) {
                    i = if next == Some(&Token::Open) {
                        skip_parens(&tokens, i + 1)
                    } else {
                        i + 1
                    };
                } else if next == Some(&Token::Open)
                    || KEYWORDS.contains(&lower.as_str())
                    || AGGREGATIONS.contains(&lower.as_str())
                {
                    // A function or aggregation (its arguments are scanned next), or a keyword.
                    i += 1;
                } else {
                    let mut selector = Selector {
                        metric: word.clone(),
                        labels: Vec::new(),
                    };
                    i += 1;
                    if tokens.get(i) == Some(&Token::LBrace) {
                        i = matchers(&tokens, i, &mut selector);
                    }
                    out.push(selector);
                }
            }
            Token::LBrace => {
                let mut selector = Selector {
                    metric: String::new(),
                    labels: Vec::new(),
                };
                i = matchers(&tokens, i, &mut selector);
                out.push(selector);
            }
            _ => i += 1,
        }
    }
    out
}

/// The values [`grafana_expr`] gives Grafana's built-in variables.
const BUILTINS: &[(&str, &str)] = &[
    ("__rate_interval", "1m"),
    ("__interval", "1m"),
    ("__interval_ms", "60000"),
    ("__range", "1h"),
    ("__range_s", "3600"),
    ("__range_ms", "3600000"),
    ("__auto", "1m"),
];

/// `expr` with Grafana's variables replaced by values valid in a plain Prometheus query:
/// `$__rate_interval`, `$__interval` and `$__auto` by `1m`, `$__range` by `1h` (and their `_s` and
/// `_ms` forms by numbers), every other variable (`$job`, `${job}`, `${job:regex}`, `[[job]]`,
/// `$datasource` …) by `.+`, which matches anything where the dashboards use variables: in `=~`
/// matchers.
pub fn grafana_expr(expr: &str) -> String {
    grafana_expr_with(expr, &[])
}

/// Like [`grafana_expr`], with the variables of `values` (name, value) replaced by those values
/// instead.
pub fn grafana_expr_with(expr: &str, values: &[(&str, &str)]) -> String {
    let value_of = |name: &str| -> String {
        values
            .iter()
            .chain(BUILTINS)
            .find(|(n, _)| *n == name)
            .map_or(".+", |(_, v)| v)
            .to_string()
    };
    let mut out = String::new();
    let mut rest = expr;
    while let Some(at) = rest.find(['$', '[']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        // `${name}` or `${name:format}`.
        if let Some(body) = tail.strip_prefix("${")
            && let Some(end) = body.find('}')
        {
            let name = body[..end].split(':').next().unwrap_or_default();
            out.push_str(&value_of(name));
            rest = &body[end + 1..];
            continue;
        }
        // `[[name]]`.
        if let Some(body) = tail.strip_prefix("[[")
            && let Some(end) = body.find("]]")
            && body[..end]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            let name = body[..end].split(':').next().unwrap_or_default();
            out.push_str(&value_of(name));
            rest = &body[end + 2..];
            continue;
        }
        // `$name`.
        if let Some(body) = tail.strip_prefix('$') {
            let len = body
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(body.len());
            if len > 0 {
                out.push_str(&value_of(&body[..len]));
                rest = &body[len..];
                continue;
            }
        }
        out.push_str(&tail[..1]);
        rest = &tail[1..];
    }
    out.push_str(rest);
    out
}

/// Every query of a Grafana dashboard as (panel title, expr), panels nested in rows (and the
/// old `rows` layout) included, in the order of the JSON. Targets without an `expr` give an
/// empty one, so a check for non-empty queries sees them.
pub fn dashboard_queries(json: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for panel in panels.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or_default();
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap_or_default();
                out.push((title.to_string(), expr.to_string()));
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&json["panels"], &mut out);
    for row in json["rows"].as_array().into_iter().flatten() {
        walk(&row["panels"], &mut out);
    }
    out
}

/// One alerting rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub name: String,
    pub expr: String,
    /// The rule's `for`, as written (`5m`), when it has one.
    pub for_: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// The alerting rules (not recording rules) of a prometheus-operator PrometheusRule, or of its
/// `spec` alone (a Prometheus rules file: `{groups: […]}`), group by group.
pub fn alert_rules(prometheus_rule: &Value) -> Vec<Alert> {
    let spec = if prometheus_rule["spec"].is_object() {
        &prometheus_rule["spec"]
    } else {
        prometheus_rule
    };
    let strings = |v: &Value| -> BTreeMap<String, String> {
        v.as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                (k.clone(), text)
            })
            .collect()
    };
    let mut out = Vec::new();
    for group in spec["groups"].as_array().into_iter().flatten() {
        for rule in group["rules"].as_array().into_iter().flatten() {
            let Some(name) = rule["alert"].as_str() else {
                continue;
            };
            let expr = match &rule["expr"] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            out.push(Alert {
                name: name.to_string(),
                expr,
                for_: rule["for"].as_str().map(str::to_string),
                labels: strings(&rule["labels"]),
                annotations: strings(&rule["annotations"]),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(metric: &str, labels: &[&str]) -> Selector {
        Selector {
            metric: metric.to_string(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
        }
    }

    fn dashboard() -> Value {
        let path = crate::paths::root().join("charts/prism-operator/files/dashboard.json");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).expect("the dashboard is JSON")
    }

    #[test]
    fn selectors_of_the_rules_expressions() {
        let job = r#"job="prism-operator-metrics""#;
        assert_eq!(
            selectors(&format!("absent(up{{{job}}} == 1)")),
            [sel("up", &["job"])]
        );
        assert_eq!(
            selectors(&format!(
                "max by (job, name) (leader_election_master_status{{{job}}}) < 1"
            )),
            [sel("leader_election_master_status", &["job"])]
        );
        let admin = format!(
            "sum by (job, endpoint) (rate(prism_operator_admin_calls_total{{{job}, outcome=~\"AdminUnavailable|AdminTimeout|AdminTlsFailed\"}}[10m]))\n  / sum by (job, endpoint) (rate(prism_operator_admin_calls_total{{{job}}}[10m]))\n> 0.5"
        );
        assert_eq!(
            selectors(&admin),
            [
                sel("prism_operator_admin_calls_total", &["job", "outcome"]),
                sel("prism_operator_admin_calls_total", &["job"]),
            ]
        );
        let stuck = format!(
            "max by (job, namespace, name, reason) (prism_operator_condition{{{job}, kind=\"PrismPlugin\", type=\"Progressing\", status=\"True\"}})\nunless on (namespace, name)\nsum by (namespace, name) (changes(prism_operator_plugin_shards{{{job}}}[30m])) > 0"
        );
        assert_eq!(
            selectors(&stuck),
            [
                sel(
                    "prism_operator_condition",
                    &["job", "kind", "type", "status"]
                ),
                sel("prism_operator_plugin_shards", &["job"]),
            ]
        );
    }

    #[test]
    fn selectors_skip_everything_that_is_not_a_selector() {
        let expr = r#"
            # a comment naming not_a_metric
            sum without (pod, instance) (rate(a_total{x="y{z}", w!~'q'}[5m:30s] offset 1h))
              / on (job) group_left (version) max(b) by (job)
              + ignoring(le) c_total{__name__="c_total"} * bool 2 and d unless e or f
              > 1e-3 + 0x1F + Inf - NaN + atan2(g, 2) + time() - label_replace(h, "dst", "$1", "src", "(.*)")
              + {__name__="i", job="j"} + {k="l"} + count_values("value", m) + topk(3, n) @ end()
              + vector(1) + sum(o) without (p) + quantile by (q) (0.9, r)
        "#;
        let metrics: Vec<String> = selectors(expr).into_iter().map(|s| s.metric).collect();
        assert_eq!(
            metrics,
            [
                "a_total", "b", "c_total", "d", "e", "f", "g", "h", "i", "", "m", "n", "o", "r"
            ]
        );
        let all = selectors(expr);
        assert_eq!(all[0].labels, ["x", "w"]);
        assert_eq!(all[2].labels, Vec::<String>::new(), "__name__ is no label");
        assert_eq!(all[8].labels, ["job"]);
        assert_eq!(all[9].labels, ["k"]);
    }

    #[test]
    fn selectors_of_the_dashboard_queries() {
        let queries = dashboard_queries(&dashboard());
        assert!(queries.len() > 20, "{queries:?}");
        for (title, expr) in &queries {
            let found = selectors(&grafana_expr(expr));
            assert!(!found.is_empty(), "{title}: {expr}");
            for s in &found {
                assert!(
                    !s.metric.is_empty() && !s.metric.contains('$'),
                    "{title}: {s:?}"
                );
            }
        }
        let p99 = queries
            .iter()
            .find(|(_, e)| e.contains("controller_runtime_reconcile_time_seconds_bucket"))
            .expect("a reconcile latency query");
        assert_eq!(
            selectors(&grafana_expr(&p99.1)),
            [sel(
                "controller_runtime_reconcile_time_seconds_bucket",
                &["job"]
            )]
        );
        let uptime = queries
            .iter()
            .find(|(_, e)| e.contains("process_start_time_seconds"))
            .expect("an uptime query");
        assert_eq!(
            selectors(&grafana_expr(&uptime.1)),
            [sel("process_start_time_seconds", &["job"])],
            "time() is a function"
        );
    }

    #[test]
    fn grafana_variables_become_plain_promql() {
        assert_eq!(
            grafana_expr(
                r#"sum(rate(x{job=~"$job", a=~"${a:regex}", b=~"[[b]]"}[$__rate_interval])) / $__range_s + $__interval_ms"#
            ),
            r#"sum(rate(x{job=~".+", a=~".+", b=~".+"}[1m])) / 3600 + 60000"#
        );
        assert_eq!(
            grafana_expr("max_over_time(x[$__range]) + y[$__interval] + z[${__rate_interval}]"),
            "max_over_time(x[1h]) + y[1m] + z[1m]"
        );
        assert_eq!(
            grafana_expr_with(r#"up{job=~"$job"}"#, &[("job", "prism-operator-metrics")]),
            r#"up{job=~"prism-operator-metrics"}"#
        );
        assert_eq!(grafana_expr("a[5m] + b"), "a[5m] + b", "nothing to replace");
        assert_eq!(grafana_expr("costs $ 5"), "costs $ 5");
    }

    #[test]
    fn dashboard_queries_reach_into_rows() {
        let dashboard = json!({
            "panels": [
                {"type": "row", "title": "open", "panels": []},
                {"type": "timeseries", "title": "A", "targets": [{"expr": "a"}, {"expr": "b"}]},
                {"type": "row", "title": "collapsed", "collapsed": true, "panels": [
                    {"type": "stat", "title": "C", "targets": [{"refId": "A"}]}
                ]}
            ],
            "rows": [{"panels": [{"title": "D", "targets": [{"expr": "d"}]}]}]
        });
        assert_eq!(
            dashboard_queries(&dashboard),
            [
                ("A".to_string(), "a".to_string()),
                ("A".to_string(), "b".to_string()),
                ("C".to_string(), String::new()),
                ("D".to_string(), "d".to_string()),
            ]
        );
    }

    #[test]
    fn alert_rules_of_a_prometheus_rule() {
        let rule = json!({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "spec": {"groups": [
                {"name": "g", "rules": [
                    {"record": "r", "expr": "sum(x)"},
                    {"alert": "A", "expr": "x > 1", "for": "5m",
                     "labels": {"severity": "warning"}, "annotations": {"summary": "s"}},
                    {"alert": "B", "expr": 1}
                ]}
            ]}
        });
        let alerts = alert_rules(&rule);
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[0].name, "A");
        assert_eq!(alerts[0].for_.as_deref(), Some("5m"));
        assert_eq!(alerts[0].labels["severity"], "warning");
        assert_eq!(alerts[0].annotations["summary"], "s");
        assert_eq!(alerts[1].expr, "1");
        assert_eq!(alerts[1].for_, None);
        assert_eq!(alert_rules(&rule["spec"]), alerts, "a rules file alike");
    }
}
