//! The admin API, in toxiproxy's shape, and the metrics.
//!
//! | endpoint | |
//! |---|---|
//! | `GET /proxies` | every proxy by name, with its toxics |
//! | `GET /proxies/{name}` | one proxy |
//! | `POST /proxies/{name}` | `{"enabled": false}` takes it down (a `down` toxic), `true` back up |
//! | `GET /proxies/{name}/toxics` | its toxics |
//! | `POST /proxies/{name}/toxics` | adds one: `{"name", "type", "stream", "toxicity", "attributes", "ttl"}` |
//! | `GET /proxies/{name}/toxics/{toxic}` | one toxic |
//! | `DELETE /proxies/{name}/toxics/{toxic}` | removes it (204) |
//! | `DELETE /toxics`, `POST /reset` | removes every toxic of every proxy |
//! | `GET /metrics` | Prometheus text |
//!
//! [`ProxySet::admin`] answers everything but `/metrics` ([`ProxySet::metrics_text`]) from a
//! method, a path and a body, so any HTTP server can mount it under a prefix.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::proxy::Proxy;
use crate::toxic::{Kind, ToxicSpec};
use crate::{ChaosError, ProxySet};

const ENDPOINTS: &[&str] = &[
    "GET /proxies",
    "GET /proxies/{name}",
    "POST /proxies/{name} {\"enabled\": bool}",
    "GET /proxies/{name}/toxics",
    "POST /proxies/{name}/toxics",
    "GET /proxies/{name}/toxics/{toxic}",
    "DELETE /proxies/{name}/toxics/{toxic}",
    "DELETE /toxics",
    "POST /reset",
    "GET /metrics",
];

/// The largest request body the API reads.
pub const MAX_BODY: usize = 64 * 1024;

fn error(status: u16, message: impl Into<String>) -> (u16, Value) {
    (status, json!({"error": message.into(), "status": status}))
}

fn from_chaos(e: ChaosError) -> (u16, Value) {
    let status = match e {
        ChaosError::NoProxy(_) | ChaosError::NoToxic { .. } => 404,
        ChaosError::ToxicExists { .. } => 409,
        _ => 400,
    };
    error(status, e.to_string())
}

fn proxy_json(p: &Proxy) -> Value {
    let state = p.state.borrow().clone();
    json!({
        "name": p.name,
        "listen": p.listen.to_string(),
        "upstream": p.upstream,
        "enabled": !state.toxics.iter().any(|t| t.kind == Kind::Down),
        "listening": p.listening.load(Ordering::Relaxed),
        "toxics": state.toxics.iter().map(|t| t.to_json()).collect::<Vec<_>>(),
    })
}

impl ProxySet {
    /// Answers one admin request: `path` is what follows the mount point (`/proxies/redis`),
    /// a query string is ignored. The answer is a status and its JSON body (`Null` for 204).
    pub fn admin(&self, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
        let path = path.split('?').next().unwrap_or_default();
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let parsed = || -> Result<Value, (u16, Value)> {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Err(error(400, "the body is empty: send a JSON object"));
            }
            serde_json::from_slice(body)
                .map_err(|e| error(400, format!("the body is not JSON: {e}")))
        };
        match (method, parts.as_slice()) {
            ("GET", ["proxies"]) => {
                let mut all = serde_json::Map::new();
                for p in &self.inner.proxies {
                    all.insert(p.name.clone(), proxy_json(p));
                }
                (200, Value::Object(all))
            }
            ("GET", ["proxies", name]) => match self.proxy(name) {
                Some(p) => (200, proxy_json(p)),
                None => from_chaos(ChaosError::NoProxy(name.to_string())),
            },
            ("POST", ["proxies", name]) => {
                let Some(p) = self.proxy(name).cloned() else {
                    return from_chaos(ChaosError::NoProxy(name.to_string()));
                };
                let body = match parsed() {
                    Ok(b) => b,
                    Err(e) => return e,
                };
                let Some(enabled) = body.get("enabled").and_then(Value::as_bool) else {
                    return error(
                        400,
                        "only `enabled` (true or false) can be changed on a proxy",
                    );
                };
                self.set_enabled(name, enabled);
                (200, proxy_json(&p))
            }
            ("GET", ["proxies", name, "toxics"]) => match self.toxics(name) {
                Ok(t) => (200, t.iter().map(|t| t.to_json()).collect()),
                Err(e) => from_chaos(e),
            },
            ("POST", ["proxies", name, "toxics"]) => {
                if self.proxy(name).is_none() {
                    return from_chaos(ChaosError::NoProxy(name.to_string()));
                }
                let body = match parsed() {
                    Ok(b) => b,
                    Err(e) => return e,
                };
                let spec: ToxicSpec = match crate::toxic::parse_spec(&body) {
                    Ok(s) => s,
                    Err(e) => return error(400, e),
                };
                match self.add_toxic(name, spec) {
                    Ok(t) => (200, t.to_json()),
                    Err(e) => from_chaos(e),
                }
            }
            ("GET", ["proxies", name, "toxics", toxic]) => match self.toxics(name) {
                Ok(all) => match all.iter().find(|t| t.name == *toxic) {
                    Some(t) => (200, t.to_json()),
                    None => from_chaos(ChaosError::NoToxic {
                        proxy: name.to_string(),
                        toxic: toxic.to_string(),
                    }),
                },
                Err(e) => from_chaos(e),
            },
            ("DELETE", ["proxies", name, "toxics", toxic]) => {
                match self.remove_toxic(name, toxic) {
                    Ok(_) => (204, Value::Null),
                    Err(e) => from_chaos(e),
                }
            }
            ("DELETE", ["toxics"]) => (200, json!({"removed": self.reset()})),
            ("POST", ["reset"]) => {
                self.reset();
                (204, Value::Null)
            }
            (_, ["proxies"])
            | (_, ["proxies", _])
            | (_, ["proxies", _, "toxics"])
            | (_, ["proxies", _, "toxics", _])
            | (_, ["toxics"])
            | (_, ["reset"]) => error(
                405,
                format!(
                    "{method} is not allowed on {path}; endpoints: {}",
                    ENDPOINTS.join(", ")
                ),
            ),
            _ => (
                404,
                json!({"error": format!("no endpoint {path}"), "status": 404, "endpoints": ENDPOINTS}),
            ),
        }
    }

    /// toxiproxy's `enabled`: false adds a `down` toxic named `disabled`, true removes
    /// every `down` toxic.
    pub fn set_enabled(&self, proxy: &str, enabled: bool) {
        if enabled {
            while let Ok(toxics) = self.toxics(proxy) {
                let Some(t) = toxics.iter().find(|t| t.kind == Kind::Down) else {
                    break;
                };
                let _ = self.remove_toxic(proxy, &t.name);
            }
        } else if self
            .toxics(proxy)
            .is_ok_and(|t| !t.iter().any(|t| t.kind == Kind::Down))
        {
            let _ = self.add_toxic(
                proxy,
                ToxicSpec {
                    name: "disabled".into(),
                    kind: Kind::Down,
                    stream: crate::Stream::Downstream,
                    toxicity: 1.0,
                    ttl: None,
                },
            );
        }
    }

    /// The proxies' metrics in Prometheus' text format (prefix `goguard_chaos_`).
    pub fn metrics_text(&self) -> String {
        let mut out = String::new();
        let ps = &self.inner.proxies;
        let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, u64)>| {
            let _ = writeln!(out, "# HELP goguard_chaos_{name} {help}");
            let _ = writeln!(out, "# TYPE goguard_chaos_{name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(out, "goguard_chaos_{name}{{{labels}}} {v}");
            }
        };
        let per = |f: &dyn Fn(&Proxy) -> u64| -> Vec<(String, u64)> {
            ps.iter()
                .map(|p| (format!("proxy=\"{}\"", p.name), f(p)))
                .collect()
        };
        let c = |f: fn(&crate::proxy::Counters) -> &std::sync::atomic::AtomicU64| {
            per(&move |p: &Proxy| f(&p.counters).load(Ordering::Relaxed))
        };
        family(
            "connections_total",
            "counter",
            "Connections accepted",
            c(|c| &c.connections),
        );
        family(
            "connections_active",
            "gauge",
            "Connections open",
            c(|c| &c.active),
        );
        family(
            "upstream_connect_errors_total",
            "counter",
            "Connections closed because the upstream could not be reached",
            c(|c| &c.upstream_errors),
        );
        family(
            "resets_total",
            "counter",
            "Connections reset by a reset_peer toxic",
            c(|c| &c.resets),
        );
        family(
            "toxics_expired_total",
            "counter",
            "Toxics removed by their ttl",
            c(|c| &c.expired),
        );
        let mut bytes = Vec::new();
        for p in ps {
            for (dir, v) in [
                ("upstream", &p.counters.bytes_up),
                ("downstream", &p.counters.bytes_down),
            ] {
                bytes.push((
                    format!("proxy=\"{}\",direction=\"{dir}\"", p.name),
                    v.load(Ordering::Relaxed),
                ));
            }
        }
        family(
            "bytes_total",
            "counter",
            "Bytes forwarded, by direction (upstream: client to service)",
            bytes,
        );
        let mut active = Vec::new();
        for p in ps {
            let toxics = p.state.borrow().toxics.clone();
            for ty in Kind::TYPES {
                let n = toxics.iter().filter(|t| t.kind.type_name() == ty).count();
                active.push((format!("proxy=\"{}\",type=\"{ty}\"", p.name), n as u64));
            }
        }
        family("toxics_active", "gauge", "Toxics in force, by type", active);
        family(
            "listening",
            "gauge",
            "1 while the proxy accepts connections (0 while down)",
            per(&|p: &Proxy| p.listening.load(Ordering::Relaxed) as u64),
        );
        out
    }
}

/// Serves the admin API and `/metrics` on `addr` until `shutdown` resolves. Binding is done
/// before this returns its future's first poll result: an address in use is an error here.
pub async fn bind(addr: &str) -> Result<TcpListener, ChaosError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| ChaosError::AdminListen {
            addr: addr.to_string(),
            source: e,
        })
}

/// Serves the admin API on a bound listener until `shutdown` resolves.
pub async fn serve(
    set: ProxySet,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let set = set.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let set = set.clone();
                async move { Ok::<_, Infallible>(answer(&set, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The address a listener is bound to (for port 0).
pub fn local_addr(l: &TcpListener) -> Option<SocketAddr> {
    l.local_addr().ok()
}

async fn answer(set: &ProxySet, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    if method == "GET" && path == "/metrics" {
        return Response::builder()
            .header("content-type", "text/plain; version=0.0.4")
            .body(Full::new(Bytes::from(set.metrics_text())))
            .unwrap_or_default();
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return respond(error(
                413,
                format!("the body is over {MAX_BODY} bytes or was cut"),
            ))
        }
    };
    respond(set.admin(&method, &path, &body))
}

fn respond((status, body): (u16, Value)) -> Response<Full<Bytes>> {
    let text = if body.is_null() {
        String::new()
    } else {
        body.to_string() + "\n"
    };
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(text)))
        .unwrap_or_default()
}
