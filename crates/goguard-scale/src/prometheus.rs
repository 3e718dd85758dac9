//! A Prometheus server's HTTP API: `GET /api/v1/query?query=...`, an instant query that must
//! give one number. The answer is read strictly: a vector of one series or a scalar is a
//! number; an empty vector, NaN or an infinity is "no data"; several series, a range
//! vector, a string or an error answer are errors naming the problem.

use std::time::Duration;

use serde_json::Value;

use crate::http::HttpClient;
use crate::reading::Reading;

/// Asks `base`'s Prometheus for `query`, now.
pub async fn query(client: &HttpClient, base: &str, query: &str, timeout: Duration) -> Reading {
    let url = format!(
        "{}/api/v1/query?query={}",
        base.trim_end_matches('/'),
        encode(query)
    );
    match client.get(&url, timeout).await {
        Err(e) => Reading::Failed(format!("prometheus {e}")),
        Ok(a) => parse_answer(a.status, &a.body),
    }
}

/// Reads an answer of `/api/v1/query` (status and body).
pub fn parse_answer(status: u16, body: &[u8]) -> Reading {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        let text = String::from_utf8_lossy(body);
        let text: String = text.chars().take(120).collect();
        return Reading::Failed(format!(
            "prometheus answered HTTP {status} without JSON: {}",
            text.trim()
        ));
    };
    match v.get("status").and_then(Value::as_str) {
        Some("success") => {}
        Some("error") => {
            let kind = v
                .get("errorType")
                .and_then(Value::as_str)
                .unwrap_or("error");
            let why = v
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            return Reading::Failed(format!("prometheus: {kind}: {why}"));
        }
        _ => {
            return Reading::Failed(format!(
                "prometheus answered HTTP {status} without a status field"
            ))
        }
    }
    let Some(data) = v.get("data") else {
        return Reading::Failed("prometheus: an answer without data".into());
    };
    let result = data.get("result");
    match data.get("resultType").and_then(Value::as_str) {
        Some("vector") => {
            let Some(series) = result.and_then(Value::as_array) else {
                return Reading::Failed("prometheus: a vector without a result list".into());
            };
            match series.as_slice() {
                [] => Reading::NoData("the query matched no series".into()),
                [one] => sample(one.get("value")),
                many => Reading::Failed(format!(
                    "the query gave {} series ({}); aggregate it to one (sum, max, avg)",
                    many.len(),
                    many.iter()
                        .take(3)
                        .map(|s| labels(s.get("metric")))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
        Some("scalar") => sample(result),
        Some("matrix") => Reading::Failed(
            "the query gave a range vector; use an instant query (no [5m] selector at its end)"
                .into(),
        ),
        Some(other) => Reading::Failed(format!("the query gave a {other}, not a number")),
        None => Reading::Failed("prometheus: an answer without resultType".into()),
    }
}

/// `[timestamp, "value"]`.
fn sample(v: Option<&Value>) -> Reading {
    let Some([_, value]) = v.and_then(Value::as_array).map(Vec::as_slice) else {
        return Reading::Failed("prometheus: a sample that is not [time, value]".into());
    };
    let Some(text) = value.as_str() else {
        return Reading::Failed("prometheus: a sample value that is not a string".into());
    };
    match text {
        "NaN" => Reading::number(f64::NAN),
        "+Inf" | "Inf" => Reading::number(f64::INFINITY),
        "-Inf" => Reading::number(f64::NEG_INFINITY),
        _ => match text.parse::<f64>() {
            Ok(x) => Reading::number(x),
            Err(_) => Reading::Failed(format!("prometheus: `{text}` is not a number")),
        },
    }
}

fn labels(m: Option<&Value>) -> String {
    let Some(m) = m.and_then(Value::as_object) else {
        return "{}".into();
    };
    let inner: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap_or("")))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// Percent-encodes a query parameter (RFC 3986 unreserved characters stay).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &str) -> Reading {
        parse_answer(200, body.as_bytes())
    }

    #[test]
    fn one_series_and_a_scalar_are_numbers() {
        assert_eq!(
            read(
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.1,"0.82"]}]}}"#
            ),
            Reading::Value(0.82)
        );
        assert_eq!(
            read(
                r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.1,"250"]}}"#
            ),
            Reading::Value(250.0)
        );
    }

    #[test]
    fn empty_nan_and_infinity_are_no_data() {
        assert_eq!(
            read(r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#),
            Reading::NoData("the query matched no series".into())
        );
        assert_eq!(
            read(
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}"#
            ),
            Reading::NoData("NaN".into())
        );
        assert_eq!(
            read(r#"{"status":"success","data":{"resultType":"scalar","result":[1,"+Inf"]}}"#),
            Reading::NoData("+Inf".into())
        );
    }

    #[test]
    fn everything_else_is_an_error_that_says_what() {
        let two = read(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"pod":"a"},"value":[1,"1"]},{"metric":{"pod":"b"},"value":[1,"2"]}]}}"#,
        );
        assert_eq!(
            two,
            Reading::Failed("the query gave 2 series ({pod=\"a\"}, {pod=\"b\"}); aggregate it to one (sum, max, avg)".into())
        );
        assert!(matches!(
            read(r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#),
            Reading::Failed(w) if w.contains("range vector")
        ));
        assert_eq!(
            parse_answer(
                400,
                br#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#
            ),
            Reading::Failed("prometheus: bad_data: parse error at char 5".into())
        );
        assert!(matches!(
            parse_answer(502, b"<html>Bad Gateway</html>"),
            Reading::Failed(w) if w == "prometheus answered HTTP 502 without JSON: <html>Bad Gateway</html>"
        ));
        assert!(matches!(
            read(r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"lots"]}]}}"#),
            Reading::Failed(w) if w.contains("`lots` is not a number")
        ));
        assert!(matches!(
            read(
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1]}]}}"#
            ),
            Reading::Failed(_)
        ));
    }

    #[test]
    fn queries_are_encoded() {
        assert_eq!(
            encode(r#"sum(rate(x{job="a b"}[1m]))"#),
            "sum%28rate%28x%7Bjob%3D%22a%20b%22%7D%5B1m%5D%29%29"
        );
    }
}
