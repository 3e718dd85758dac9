//! The configuration from a config centre (5.6): one key of etcd, read at start and watched.
//!
//! etcd 3.4 serves its API as JSON over HTTP (the gRPC gateway: `/v3/kv/range`, `/v3/watch`,
//! keys and values in base64, 64-bit numbers as strings), which the gateway speaks with the
//! hyper client it already has: no gRPC stack, no client crate. A watch is one long POST whose
//! answer streams one JSON object per change.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};

use crate::layer::serde_duration as human_duration;
use crate::layer::Problems;

/// `[source]`: the etcd key holding the configuration (a whole gate.toml).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// etcd's client URLs (`http://127.0.0.1:2379`), tried in turn.
    pub etcd: Vec<String>,
    /// The key whose value is the configuration.
    pub key: String,
    /// The longest a read of the key may take.
    #[serde(default = "default_timeout", with = "human_duration")]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(2)
}

impl Source {
    pub fn problems(&self) -> Problems {
        let mut out: Problems = Vec::new();
        if self.etcd.is_empty() {
            out.push((vec!["etcd"], "name at least one endpoint".into()));
        }
        for e in &self.etcd {
            let ok = e
                .strip_prefix("http://")
                .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'));
            if !ok {
                out.push((
                    vec!["etcd"],
                    format!("`{e}`: expected http://HOST:PORT (etcd's client URL)"),
                ));
            }
        }
        if self.key.is_empty() {
            out.push((vec!["key"], "the key is empty".into()));
        }
        out
    }

    /// Where the text came from, for error messages: `etcd:KEY@REVISION`.
    pub fn name(&self, revision: i64) -> String {
        format!("etcd:{}@{revision}", self.key)
    }
}

/// One version of the key: its value (`None`: deleted) and the revision that wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub value: Option<String>,
    pub revision: i64,
}

/// A client of one key on an etcd cluster.
pub struct Etcd {
    source: Source,
    client: Client<HttpConnector, Full<Bytes>>,
    /// The endpoint in use; the next after a failure.
    at: usize,
}

#[derive(Deserialize)]
struct Header {
    #[serde(default, deserialize_with = "number")]
    revision: i64,
}

#[derive(Deserialize)]
struct Kv {
    #[serde(default)]
    value: String,
    #[serde(default, deserialize_with = "number")]
    mod_revision: i64,
}

#[derive(Deserialize)]
struct Range {
    header: Header,
    #[serde(default)]
    kvs: Vec<Kv>,
}

#[derive(Deserialize)]
struct WatchEvent {
    #[serde(default, rename = "type")]
    kind: String,
    kv: Kv,
}

#[derive(Deserialize)]
struct WatchResult {
    #[serde(default)]
    events: Vec<WatchEvent>,
    #[serde(default, deserialize_with = "number")]
    compact_revision: i64,
    #[serde(default)]
    canceled: bool,
}

/// etcd's JSON writes 64-bit numbers as strings.
fn number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        S(String),
        I(i64),
    }
    match N::deserialize(d)? {
        N::I(i) => Ok(i),
        N::S(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn text(kv: &Kv) -> Result<String, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&kv.value)
        .map_err(|e| format!("etcd sent a value that is not base64: {e}"))?;
    String::from_utf8(bytes).map_err(|_| "the value is not UTF-8 text".into())
}

impl Etcd {
    pub fn new(source: Source) -> Etcd {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(source.timeout));
        // A cluster that vanishes without closing the connection (a cable, not a restart)
        // is noticed by the kernel's keepalive probes: after 10 s of silence, three probes
        // 5 s apart (the kernel's defaults would take 11 minutes).
        connector.set_keepalive(Some(Duration::from_secs(10)));
        connector.set_keepalive_interval(Some(Duration::from_secs(5)));
        connector.set_keepalive_retries(Some(3));
        connector.set_nodelay(true);
        Etcd {
            source,
            client: Client::builder(TokioExecutor::new()).build(connector),
            at: 0,
        }
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    fn endpoint(&self) -> &str {
        &self.source.etcd[self.at % self.source.etcd.len().max(1)]
    }

    /// After a failure, the next endpoint.
    pub fn rotate(&mut self) {
        self.at = self.at.wrapping_add(1);
    }

    async fn post(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<hyper::body::Incoming, String> {
        let url = format!("{}{path}", self.endpoint());
        let req = Request::builder()
            .method(Method::POST)
            .uri(&url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| format!("{url}: {e}"))?;
        let resp = tokio::time::timeout(self.source.timeout, self.client.request(req))
            .await
            .map_err(|_| format!("{url}: no answer within {:?}", self.source.timeout))?
            .map_err(|e| format!("{url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("{url}: {}", resp.status()));
        }
        Ok(resp.into_body())
    }

    /// The key's current version, and the cluster's revision (a watch starts after it).
    pub async fn get(&self) -> Result<(Version, i64), String> {
        let body = self
            .post(
                "/v3/kv/range",
                serde_json::json!({ "key": b64(self.source.key.as_bytes()) }),
            )
            .await?;
        let bytes = tokio::time::timeout(self.source.timeout, body.collect())
            .await
            .map_err(|_| format!("{}: the answer stalled", self.endpoint()))?
            .map_err(|e| format!("{}: {e}", self.endpoint()))?
            .to_bytes();
        let range: Range = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}: not etcd's answer: {e}", self.endpoint()))?;
        let version = match range.kvs.first() {
            Some(kv) => Version {
                value: Some(text(kv)?),
                revision: kv.mod_revision,
            },
            None => Version {
                value: None,
                revision: range.header.revision,
            },
        };
        Ok((version, range.header.revision))
    }

    /// Watches the key from revision `from` on: [`Watch::next`] gives each new version.
    pub async fn watch(&self, from: i64) -> Result<Watch, String> {
        let request = serde_json::json!({
            "create_request": {
                "key": b64(self.source.key.as_bytes()),
                "start_revision": from.to_string(),
            }
        });
        let body = self.post("/v3/watch", request).await?;
        Ok(Watch {
            endpoint: self.endpoint().to_string(),
            key: self.source.key.clone(),
            body,
            buf: Vec::new(),
            ready: std::collections::VecDeque::new(),
        })
    }
}

/// A watch of the key: one long answer streaming a JSON object per change.
pub struct Watch {
    endpoint: String,
    key: String,
    body: hyper::body::Incoming,
    buf: Vec<u8>,
    ready: std::collections::VecDeque<Version>,
}

impl Watch {
    /// The next version of the key; an error when the stream ends or fails (the caller
    /// reads the key again and watches from there).
    pub async fn next(&mut self) -> Result<Version, String> {
        let at = &self.endpoint;
        loop {
            if let Some(v) = self.ready.pop_front() {
                return Ok(v);
            }
            let frame = match self.body.frame().await {
                None => return Err(format!("{at}: the watch ended")),
                Some(Err(e)) => return Err(format!("{at}: the watch broke: {e}")),
                Some(Ok(f)) => f,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            self.buf.extend_from_slice(&data);
            // One JSON object per message; a chunk may hold part of one, or several.
            let (used, messages) = complete_messages(&self.buf)
                .map_err(|e| format!("{at}: not etcd's watch stream: {e}"))?;
            self.buf.drain(..used);
            for m in messages {
                let Some(result) = m.get("result") else {
                    return Err(format!("{at}: the watch failed: {m}"));
                };
                let result: WatchResult = serde_json::from_value(result.clone())
                    .map_err(|e| format!("{at}: not etcd's watch message: {e}"))?;
                if result.compact_revision > 0 || result.canceled {
                    return Err(format!(
                        "{at}: the watch was cancelled (compacted at revision {})",
                        result.compact_revision
                    ));
                }
                for e in result.events {
                    let value = if e.kind == "DELETE" {
                        None
                    } else {
                        match text(&e.kv) {
                            Ok(t) => Some(t),
                            Err(err) => {
                                tracing::error!(key = %self.key, error = %err, "config centre: unreadable value");
                                continue;
                            }
                        }
                    };
                    self.ready.push_back(Version {
                        value,
                        revision: e.kv.mod_revision,
                    });
                }
            }
        }
    }
}

/// The whole JSON messages at the start of `buf`, and the bytes they take (a message cut
/// at the end waits for the rest).
fn complete_messages(buf: &[u8]) -> Result<(usize, Vec<serde_json::Value>), serde_json::Error> {
    let mut stream = serde_json::Deserializer::from_slice(buf).into_iter::<serde_json::Value>();
    let mut used = 0;
    let mut messages = Vec::new();
    while let Some(item) = stream.next() {
        match item {
            Ok(v) => {
                used = stream.byte_offset();
                messages.push(v);
            }
            Err(e) if e.is_eof() => break,
            Err(e) => return Err(e),
        }
    }
    Ok((used, messages))
}

/// Waits after failures in a row: a quarter of a second, then twice as long each time, up
/// to 8 s, with a random tenth more so that gateways do not come back all at once.
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: Duration::from_millis(250),
        }
    }
}

impl Backoff {
    pub fn reset(&mut self) {
        *self = Backoff::default();
    }

    /// The wait before the next attempt; the one after is twice as long.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(8));
        wait + wait.mul_f64(fastrand::f64() / 10.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_needs_an_http_endpoint_and_a_key() {
        let s = Source {
            etcd: vec!["127.0.0.1:2379".into()],
            key: String::new(),
            timeout: default_timeout(),
        };
        let p = s.problems();
        assert_eq!(p.len(), 2, "{p:?}");
    }

    #[test]
    fn backoff_doubles_up_to_eight_seconds() {
        let mut b = Backoff::default();
        let waits: Vec<u128> = (0..8).map(|_| b.next_wait().as_millis()).collect();
        assert!(waits[0] >= 250 && waits[0] < 280, "{waits:?}");
        assert!(waits[1] >= 500 && waits[1] < 560, "{waits:?}");
        assert!(waits[7] >= 8000 && waits[7] < 8810, "{waits:?}");
    }

    #[test]
    fn a_message_cut_in_two_waits_for_its_end() {
        let (used, m) = complete_messages(b"{\"result\":{}}\n{\"resu").unwrap();
        assert_eq!((used, m.len()), (13, 1));
        assert!(complete_messages(b"{\"a\":1}\n]").is_err());
    }

    #[test]
    fn revisions_come_as_strings() {
        let r: Range = serde_json::from_str(
            r#"{"header":{"revision":"7"},"kvs":[{"key":"YQ==","value":"aGk=","mod_revision":"6"}]}"#,
        )
        .unwrap();
        assert_eq!((r.header.revision, r.kvs[0].mod_revision), (7, 6));
        assert_eq!(text(&r.kvs[0]).unwrap(), "hi");
    }
}
