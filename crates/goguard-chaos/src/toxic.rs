//! Toxics: the faults a proxy adds to its connections, in toxiproxy's JSON shape
//! (`{"name", "type", "stream", "toxicity", "attributes"}`) with one addition, `ttl`.
//!
//! Durations are accepted as toxiproxy writes them (a number of milliseconds) or as text
//! (`"200ms"`, `"2s"`); bandwidth as toxiproxy's `rate` (KB/s) or `bytes_per_second`.

use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde_json::{Map, Value};

/// Which way the data a toxic acts on flows, in toxiproxy's words: `upstream` is from the
/// client to the upstream service, `downstream` its answers back to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Upstream,
    Downstream,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

/// What a toxic does.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// Each chunk of data is held `latency` ± up to `jitter` (uniform) before it is sent on.
    Latency { latency: Duration, jitter: Duration },
    /// At most this many bytes per second.
    Bandwidth { bytes_per_second: u64 },
    /// The proxy refuses new connections (its listener is closed) and closes existing ones.
    Down,
    /// Each connection is reset (TCP RST to the client: `SO_LINGER` 0, then close) after
    /// `timeout` (0: at once).
    ResetPeer { timeout: Duration },
    /// A black hole: data on the stream is swallowed, nothing answers; the connection is
    /// closed after `timeout` when it is not 0.
    Timeout { timeout: Duration },
    /// The close (FIN) of the stream is delayed by `delay`.
    SlowClose { delay: Duration },
    /// The connection is closed once `bytes` have passed on the stream.
    LimitData { bytes: u64 },
}

impl Kind {
    /// The `type` of the toxic in the API.
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Latency { .. } => "latency",
            Kind::Bandwidth { .. } => "bandwidth",
            Kind::Down => "down",
            Kind::ResetPeer { .. } => "reset_peer",
            Kind::Timeout { .. } => "timeout",
            Kind::SlowClose { .. } => "slow_close",
            Kind::LimitData { .. } => "limit_data",
        }
    }

    /// Every type, for the metrics and the errors.
    pub const TYPES: [&'static str; 7] = [
        "latency",
        "bandwidth",
        "down",
        "reset_peer",
        "timeout",
        "slow_close",
        "limit_data",
    ];

    fn attributes(&self) -> Value {
        let ms = |d: &Duration| Value::from(d.as_millis() as u64);
        match self {
            Kind::Latency { latency, jitter } => {
                serde_json::json!({"latency": ms(latency), "jitter": ms(jitter)})
            }
            Kind::Bandwidth { bytes_per_second } => serde_json::json!({
                "rate": bytes_per_second / 1000,
                "bytes_per_second": bytes_per_second,
            }),
            Kind::Down => serde_json::json!({}),
            Kind::ResetPeer { timeout } | Kind::Timeout { timeout } => {
                serde_json::json!({"timeout": ms(timeout)})
            }
            Kind::SlowClose { delay } => serde_json::json!({"delay": ms(delay)}),
            Kind::LimitData { bytes } => serde_json::json!({"bytes": bytes}),
        }
    }
}

/// One toxic on one proxy.
#[derive(Clone, Debug)]
pub struct Toxic {
    /// Unique in the process: a connection remembers its decisions about a toxic by it.
    pub id: u64,
    pub name: String,
    pub kind: Kind,
    pub stream: Stream,
    /// The share of connections it applies to, 0 to 1 (toxiproxy's `toxicity`).
    pub toxicity: f64,
    /// It removes itself after this long.
    pub ttl: Option<Duration>,
    pub added: SystemTime,
    pub added_at: Instant,
}

impl Toxic {
    /// The toxic as the API shows it (toxiproxy's shape, with `ttl` and `expires_in`).
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::json!({
            "name": self.name,
            "type": self.kind.type_name(),
            "stream": self.stream.as_str(),
            "toxicity": self.toxicity,
            "attributes": self.kind.attributes(),
        });
        if let Some(ttl) = self.ttl {
            v["ttl"] = Value::from(humantime::format_duration(ttl).to_string());
            let left = ttl.saturating_sub(self.added_at.elapsed());
            v["expires_in_ms"] = Value::from(left.as_millis() as u64);
        }
        v
    }
}

/// A toxic as posted, checked: everything but its id and times.
#[derive(Clone, Debug, PartialEq)]
pub struct ToxicSpec {
    pub name: String,
    pub kind: Kind,
    pub stream: Stream,
    pub toxicity: f64,
    pub ttl: Option<Duration>,
}

/// Reads a posted toxic. The error says which field is wrong and why.
pub fn parse_spec(body: &Value) -> Result<ToxicSpec, String> {
    let obj = body
        .as_object()
        .ok_or("the body must be a JSON object like {\"type\": \"latency\", \"attributes\": {\"latency\": 200}}")?;
    for key in obj.keys() {
        if !matches!(
            key.as_str(),
            "name" | "type" | "stream" | "toxicity" | "attributes" | "ttl"
        ) {
            return Err(format!(
                "unknown field `{key}` (expected name, type, stream, toxicity, attributes, ttl)"
            ));
        }
    }
    let type_name = match obj.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(_) => return Err("type: must be a string".into()),
        None => return Err(format!("type: missing (one of {})", Kind::TYPES.join(", "))),
    };
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => Stream::Downstream,
        Some(Value::String(s)) if s == "downstream" => Stream::Downstream,
        Some(Value::String(s)) if s == "upstream" => Stream::Upstream,
        Some(other) => {
            return Err(format!(
                "stream: `{}` is not upstream or downstream",
                plain(other)
            ))
        }
    };
    let toxicity = match obj.get("toxicity") {
        None | Some(Value::Null) => 1.0,
        Some(v) => match v.as_f64() {
            Some(t) if (0.0..=1.0).contains(&t) => t,
            _ => {
                return Err(format!(
                    "toxicity: `{}` is not a number from 0 to 1",
                    plain(v)
                ))
            }
        },
    };
    let ttl = match obj.get("ttl") {
        None | Some(Value::Null) => None,
        Some(v) => match duration(v) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => return Err("ttl: must be more than 0 (leave it out for no expiry)".into()),
            Err(e) => return Err(format!("ttl: {e}")),
        },
    };
    let empty = Map::new();
    let attrs = match obj.get("attributes") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err("attributes: must be an object".into()),
    };
    let kind = parse_kind(type_name, attrs)?;
    let name = match obj.get("name") {
        None | Some(Value::Null) => format!("{}_{}", type_name, stream.as_str()),
        Some(Value::String(n)) if valid_name(n) => n.clone(),
        Some(other) => {
            return Err(format!(
                "name: `{}` must be 1 to 100 letters, digits, `-`, `_` or `.`",
                plain(other)
            ))
        }
    };
    Ok(ToxicSpec {
        name,
        kind,
        stream,
        toxicity,
        ttl,
    })
}

/// Names go into URL paths: keep them plain.
pub fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 100
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn parse_kind(type_name: &str, attrs: &Map<String, Value>) -> Result<Kind, String> {
    let allowed: &[&str] = match type_name {
        "latency" => &["latency", "jitter"],
        "bandwidth" => &["rate", "bytes_per_second"],
        "down" => &[],
        "reset_peer" | "timeout" => &["timeout"],
        "slow_close" => &["delay"],
        "limit_data" => &["bytes"],
        other => {
            return Err(format!(
                "type: `{other}` is not one of {}",
                Kind::TYPES.join(", ")
            ))
        }
    };
    for key in attrs.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(if allowed.is_empty() {
                format!("attributes.{key}: a {type_name} toxic has no attributes")
            } else {
                format!(
                    "attributes.{key}: not an attribute of {type_name} (expected {})",
                    allowed.join(", ")
                )
            });
        }
    }
    let dur = |key: &str| -> Result<Duration, String> {
        match attrs.get(key) {
            None | Some(Value::Null) => Ok(Duration::ZERO),
            Some(v) => duration(v).map_err(|e| format!("attributes.{key}: {e}")),
        }
    };
    let count = |key: &str| -> Result<Option<u64>, String> {
        match attrs.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("attributes.{key}: `{}` is not a whole number", plain(v))),
        }
    };
    Ok(match type_name {
        "latency" => {
            let latency = dur("latency")?;
            let jitter = dur("jitter")?;
            if latency.is_zero() && jitter.is_zero() {
                return Err(
                    "attributes.latency: missing or 0 (a latency like 200 or \"200ms\")".into(),
                );
            }
            Kind::Latency { latency, jitter }
        }
        "bandwidth" => {
            let bytes_per_second = match (count("rate")?, count("bytes_per_second")?) {
                (Some(_), Some(_)) => {
                    return Err(
                        "attributes: give rate (KB/s, as toxiproxy) or bytes_per_second, not both"
                            .into(),
                    )
                }
                (Some(kb), None) => kb.saturating_mul(1000),
                (None, Some(b)) => b,
                (None, None) => {
                    return Err(
                        "attributes.rate: missing (KB/s, as toxiproxy; or bytes_per_second)".into(),
                    )
                }
            };
            if bytes_per_second == 0 {
                return Err(
                    "attributes.rate: must be more than 0 (use timeout for no data at all)".into(),
                );
            }
            Kind::Bandwidth { bytes_per_second }
        }
        "down" => Kind::Down,
        "reset_peer" => Kind::ResetPeer {
            timeout: dur("timeout")?,
        },
        "timeout" => Kind::Timeout {
            timeout: dur("timeout")?,
        },
        "slow_close" => {
            let delay = dur("delay")?;
            if delay.is_zero() {
                return Err(
                    "attributes.delay: missing or 0 (a delay like 500 or \"500ms\")".into(),
                );
            }
            Kind::SlowClose { delay }
        }
        _ => match count("bytes")? {
            Some(bytes) => Kind::LimitData { bytes },
            None => return Err("attributes.bytes: missing (the bytes to let through)".into()),
        },
    })
}

/// A duration as toxiproxy writes it (milliseconds) or as text (`"1.5s"`, `"200ms"`).
pub fn duration(v: &Value) -> Result<Duration, String> {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(ms) if ms >= 0.0 && ms.is_finite() && ms < 1e12 => {
                Ok(Duration::from_secs_f64(ms / 1000.0))
            }
            _ => Err(format!("`{n}` is not a number of milliseconds")),
        },
        Value::String(s) => humantime::parse_duration(s)
            .map_err(|e| format!("`{s}` is not a duration like 200ms or 2s ({e})")),
        other => Err(format!(
            "`{}` is not a duration (milliseconds, or text like \"200ms\")",
            plain(other)
        )),
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn toxiproxy_shape_and_defaults() {
        let s = parse_spec(
            &json!({"type": "latency", "attributes": {"latency": 100, "jitter": "20ms"}}),
        )
        .unwrap();
        assert_eq!(s.name, "latency_downstream");
        assert_eq!(s.stream, Stream::Downstream);
        assert_eq!(
            s.kind,
            Kind::Latency {
                latency: Duration::from_millis(100),
                jitter: Duration::from_millis(20)
            }
        );
        let s = parse_spec(&json!({"type": "bandwidth", "stream": "upstream", "attributes": {"rate": 5}, "ttl": "2s"}))
            .unwrap();
        assert_eq!(
            s.kind,
            Kind::Bandwidth {
                bytes_per_second: 5000
            }
        );
        assert_eq!(s.ttl, Some(Duration::from_secs(2)));
    }

    #[test]
    fn errors_name_the_field() {
        let e = |v: Value| parse_spec(&v).unwrap_err();
        assert!(e(json!({"type": "lag"})).starts_with("type: `lag` is not one of latency"));
        assert!(e(json!({"type": "latency"})).starts_with("attributes.latency: missing"));
        assert!(
            e(json!({"type": "latency", "attributes": {"latency": "soon"}}))
                .starts_with("attributes.latency: `soon` is not a duration")
        );
        assert!(e(json!({"type": "down", "attributes": {"x": 1}})).contains("has no attributes"));
        assert!(e(json!({"type": "down", "stream": "sideways"})).starts_with("stream:"));
        assert!(e(json!({"type": "down", "toxicity": 2})).starts_with("toxicity:"));
        assert!(e(json!({"type": "down", "ttl": 0})).starts_with("ttl:"));
        assert!(e(json!({"type": "down", "name": "a/b"})).starts_with("name:"));
        assert!(e(json!({"type": "down", "colour": 1})).starts_with("unknown field `colour`"));
        assert!(e(json!([1])).starts_with("the body must be a JSON object"));
    }
}
