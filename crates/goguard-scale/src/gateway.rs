//! A goguard gateway's own figures, read from its admin listener: the Prometheus text of
//! `/metrics` (`goguard_gate_in_flight{route}`, the latency histogram
//! `goguard_gate_request_duration_seconds{route}`) and the JSON of `/admin/status` (each
//! route's upstream and the requests waiting in its concurrency queue).
//!
//! A latency percentile is taken from the histogram's growth since the previous reading
//! (the first reading: since the gateway started), as `histogram_quantile` over `rate()`
//! would: recent requests, not the process's whole life.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use crate::config::Input;
use crate::http::HttpClient;
use crate::reading::Reading;

/// The figures a gateway input can name.
pub const FIGURES: [&str; 5] = ["queue", "in_flight", "p50", "p95", "p99"];

/// One sample of the text format: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the Prometheus text exposition format (comments skipped; a line that cannot be
/// read is an error naming it).
pub fn parse_text(text: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(
            parse_line(line)
                .ok_or_else(|| format!("/metrics line {}: cannot read `{line}`", i + 1))?,
        );
    }
    Ok(out)
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        let end;
        loop {
            // Skip separators.
            while let Some((_, c)) = chars.peek() {
                if *c == ',' || c.is_whitespace() {
                    chars.next();
                } else {
                    break;
                }
            }
            let (start, c) = *chars.peek()?;
            if c == '}' {
                end = start + 1;
                break;
            }
            let eq = r[start..].find('=')? + start;
            let key = r[start..eq].trim().to_string();
            while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                chars.next();
            }
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                let (_, c) = chars.next()?;
                match c {
                    '"' => break,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    c => value.push(c),
                }
            }
            labels.push((key, value));
        }
        rest = &r[end..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    if name.is_empty() {
        return None;
    }
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// What one reading of the gateway gave.
pub struct Snapshot {
    samples: Vec<Sample>,
    status: Value,
}

/// A gateway's admin listener, with the histogram readings of the previous evaluation.
pub struct GatewaySource {
    admin: String,
    timeout: Duration,
    client: HttpClient,
    previous: Mutex<HashMap<String, Vec<(f64, f64)>>>,
}

impl GatewaySource {
    pub fn new(admin: &str, timeout: Duration, client: HttpClient) -> GatewaySource {
        GatewaySource {
            admin: admin.trim_end_matches('/').to_string(),
            timeout,
            client,
            previous: Mutex::new(HashMap::new()),
        }
    }

    /// Reads `/metrics` and `/admin/status` once.
    pub async fn snapshot(&self) -> Result<Snapshot, String> {
        let metrics_url = format!("{}/metrics", self.admin);
        let status_url = format!("{}/admin/status", self.admin);
        let (m, s) = tokio::join!(
            self.client.get(&metrics_url, self.timeout),
            self.client.get(&status_url, self.timeout)
        );
        let (m, s) = (
            m.map_err(|e| format!("gateway {e}"))?,
            s.map_err(|e| format!("gateway {e}"))?,
        );
        for (url, a) in [(&metrics_url, &m), (&status_url, &s)] {
            if !(200..300).contains(&a.status) {
                return Err(format!("gateway {url}: HTTP {}", a.status));
            }
        }
        let samples =
            parse_text(&String::from_utf8_lossy(&m.body)).map_err(|e| format!("gateway {e}"))?;
        let status: Value = serde_json::from_slice(&s.body)
            .map_err(|e| format!("gateway {status_url}: not JSON: {e}"))?;
        Ok(Snapshot { samples, status })
    }

    /// One input's figure from a snapshot.
    pub fn figure(&self, snap: &Snapshot, input: &Input) -> Reading {
        let figure = input.gateway.as_deref().unwrap_or("");
        let routes = match selected_routes(&snap.status, input) {
            Ok(r) => r,
            Err(e) => return Reading::Failed(e),
        };
        match figure {
            "queue" => {
                let mut waiting = 0.0;
                let mut limited = 0;
                for r in routes_json(&snap.status) {
                    let name = r.get("name").and_then(Value::as_str).unwrap_or("");
                    if !routes.iter().any(|x| x == name) {
                        continue;
                    }
                    if let Some(w) = r
                        .get("concurrency")
                        .and_then(|c| c.get("waiting"))
                        .and_then(Value::as_f64)
                    {
                        waiting += w;
                        limited += 1;
                    }
                }
                if limited == 0 {
                    Reading::NoData(
                        "no selected route has a concurrency limit, so the gateway queues nothing"
                            .into(),
                    )
                } else {
                    Reading::Value(waiting)
                }
            }
            "in_flight" => Reading::Value(
                snap.samples
                    .iter()
                    .filter(|s| s.name == "goguard_gate_in_flight")
                    .filter(|s| {
                        s.label("route")
                            .is_some_and(|r| routes.iter().any(|x| x == r))
                    })
                    .map(|s| s.value)
                    .sum(),
            ),
            p => {
                let q = match p {
                    "p50" => 0.5,
                    "p95" => 0.95,
                    _ => 0.99,
                };
                let mut buckets: Vec<(f64, f64)> = Vec::new();
                for s in snap.samples.iter().filter(|s| {
                    s.name == "goguard_gate_request_duration_seconds_bucket"
                        && s.label("route")
                            .is_some_and(|r| routes.iter().any(|x| x == r))
                }) {
                    let Some(le) = s.label("le").and_then(|l| match l {
                        "+Inf" => Some(f64::INFINITY),
                        l => l.parse::<f64>().ok(),
                    }) else {
                        continue;
                    };
                    match buckets.iter_mut().find(|(b, _)| *b == le) {
                        Some(b) => b.1 += s.value,
                        None => buckets.push((le, s.value)),
                    }
                }
                buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                let key = format!("{figure}|{:?}|{:?}", input.route, input.upstream);
                let before = self
                    .previous
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, buckets.clone());
                let recent: Vec<(f64, f64)> = buckets
                    .iter()
                    .map(|(le, n)| {
                        let old = before
                            .as_ref()
                            .and_then(|b| b.iter().find(|(l, _)| l == le))
                            .map_or(0.0, |(_, n)| *n);
                        // A restarted gateway counts from zero again.
                        (*le, if *n >= old { n - old } else { *n })
                    })
                    .collect();
                match quantile(q, &recent) {
                    Some(v) => Reading::Value(v),
                    None if buckets.is_empty() => Reading::NoData(
                        "the gateway has no latency histogram for the selected routes".into(),
                    ),
                    None => Reading::NoData("no requests since the last reading".into()),
                }
            }
        }
    }
}

fn routes_json(status: &Value) -> impl Iterator<Item = &Value> {
    status
        .get("routes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The routes an input is about: the named one, those sending to the named upstream, or all.
fn selected_routes(status: &Value, input: &Input) -> Result<Vec<String>, String> {
    let all: Vec<(String, String)> = routes_json(status)
        .map(|r| {
            (
                r.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                r.get("upstream")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    let picked: Vec<String> = all
        .iter()
        .filter(|(name, upstream)| {
            input.route.as_deref().is_none_or(|r| r == name)
                && input.upstream.as_deref().is_none_or(|u| u == upstream)
        })
        .map(|(n, _)| n.clone())
        .collect();
    if picked.is_empty() {
        return Err(match (&input.route, &input.upstream) {
            (Some(r), _) => format!("the gateway has no route `{r}`"),
            (_, Some(u)) => format!("no route of the gateway sends to upstream `{u}`"),
            _ => "the gateway has no routes".into(),
        });
    }
    Ok(picked)
}

/// The `q` quantile of cumulative buckets `(upper bound, count)`, sorted, as Prometheus's
/// `histogram_quantile`: linear within the bucket; in the `+Inf` bucket, the highest finite
/// bound. None without observations.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev_bound = 0.0;
    let mut prev_count = 0.0;
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(prev_bound);
            }
            let in_bucket = count - prev_count;
            if in_bucket <= 0.0 {
                return Some(le);
            }
            return Some(prev_bound + (le - prev_bound) * (rank - prev_count) / in_bucket);
        }
        prev_bound = le;
        prev_count = count;
    }
    Some(prev_bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As goguard gate writes it (prometheus-client's text format).
    const METRICS: &str = r#"# HELP goguard_gate_requests Requests answered, by route and status.
# TYPE goguard_gate_requests counter
goguard_gate_requests_total{route="orders",status="200"} 40
# HELP goguard_gate_request_duration_seconds Time from the request's arrival to its response head, by route.
# TYPE goguard_gate_request_duration_seconds histogram
goguard_gate_request_duration_seconds_sum{route="orders"} 4.2
goguard_gate_request_duration_seconds_count{route="orders"} 40
goguard_gate_request_duration_seconds_bucket{le="0.1",route="orders"} 10
goguard_gate_request_duration_seconds_bucket{le="0.2",route="orders"} 30
goguard_gate_request_duration_seconds_bucket{le="0.4",route="orders"} 40
goguard_gate_request_duration_seconds_bucket{le="+Inf",route="orders"} 40
goguard_gate_request_duration_seconds_bucket{le="0.1",route="static"} 5
goguard_gate_request_duration_seconds_bucket{le="0.2",route="static"} 5
goguard_gate_request_duration_seconds_bucket{le="0.4",route="static"} 5
goguard_gate_request_duration_seconds_bucket{le="+Inf",route="static"} 5
# HELP goguard_gate_in_flight Requests in flight, by route.
# TYPE goguard_gate_in_flight gauge
goguard_gate_in_flight{route="orders"} 7
goguard_gate_in_flight{route="static"} 1
goguard_gate_upstream_target_healthy{upstream="orders",target="127.0.0.1:9000"} 1
# EOF
"#;

    fn status() -> Value {
        serde_json::json!({
            "config_version": 1,
            "routes": [
                {"name": "orders", "upstream": "orders", "concurrency": {"in_flight": 7, "max_in_flight": 7, "waiting": 230, "rejected": 3}},
                {"name": "static", "upstream": "cdn"}
            ],
            "upstreams": {}
        })
    }

    fn input(figure: &str, route: Option<&str>, upstream: Option<&str>) -> Input {
        Input {
            query: None,
            gateway: Some(figure.into()),
            route: route.map(Into::into),
            upstream: upstream.map(Into::into),
        }
    }

    #[test]
    fn the_text_format_is_read_with_escapes() {
        let s = parse_text("a_b{x=\"q\\\"uote\",y=\"z\"} 1.5 1700000000\nplain 2\n").unwrap();
        assert_eq!(s[0].name, "a_b");
        assert_eq!(s[0].label("x"), Some("q\"uote"));
        assert_eq!(s[0].value, 1.5);
        assert_eq!(s[1].value, 2.0);
        assert!(parse_text("broken{x=\"1\" 2").is_err());
    }

    #[test]
    fn figures_from_metrics_and_status() {
        let src = GatewaySource::new(
            "http://127.0.0.1:1",
            Duration::from_secs(1),
            HttpClient::new(),
        );
        let snap = Snapshot {
            samples: parse_text(METRICS).unwrap(),
            status: status(),
        };
        assert_eq!(
            src.figure(&snap, &input("queue", None, None)),
            Reading::Value(230.0)
        );
        assert_eq!(
            src.figure(&snap, &input("in_flight", None, None)),
            Reading::Value(8.0)
        );
        assert_eq!(
            src.figure(&snap, &input("in_flight", None, Some("orders"))),
            Reading::Value(7.0)
        );
        // 40 requests: rank 38 lies in (0.2, 0.4], 8 of its 10.
        let p95 = src
            .figure(&snap, &input("p95", Some("orders"), None))
            .value()
            .unwrap();
        assert!((p95 - 0.36).abs() < 1e-9, "{p95}");
        // The next reading sees only what came since: nothing.
        assert_eq!(
            src.figure(&snap, &input("p95", Some("orders"), None)),
            Reading::NoData("no requests since the last reading".into())
        );
        assert_eq!(
            src.figure(&snap, &input("queue", Some("static"), None)),
            Reading::NoData(
                "no selected route has a concurrency limit, so the gateway queues nothing".into()
            )
        );
        assert_eq!(
            src.figure(&snap, &input("p95", None, Some("payments"))),
            Reading::Failed("no route of the gateway sends to upstream `payments`".into())
        );
    }

    #[test]
    fn quantiles_as_histogram_quantile() {
        let b = [(0.1, 50.0), (0.2, 100.0), (f64::INFINITY, 100.0)];
        assert_eq!(quantile(0.5, &b), Some(0.1));
        assert!((quantile(0.75, &b).unwrap() - 0.15).abs() < 1e-9);
        assert_eq!(
            quantile(0.99, &[(0.1, 0.0), (f64::INFINITY, 10.0)]),
            Some(0.1)
        );
        assert_eq!(quantile(0.95, &[(0.1, 0.0), (f64::INFINITY, 0.0)]), None);
    }
}
