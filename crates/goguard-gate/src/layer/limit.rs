//! [`LimitLayer`]: the rate limits of 5.5 around any service: one per key at the edge (a
//! user's header, a cookie, a query parameter or the client's address) and one for the
//! route's total. A request over either is turned away at once with [`Rejected`] and the
//! time after which it would pass; nothing waits in a queue.
//!
//! With [`SharedLimits`] the cells live in Redis and are shared by every gateway instance;
//! when Redis is away the local cells stand in (or, `fail_closed`, the request is refused).

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, StatusCode};
use serde::{Deserialize, Serialize};
use tower::{Layer, Service};

use super::per_thread::Counter;
use super::{
    json, Body, BoxError, MetricDesc, MetricKind, Problems, Protection, ProtectionLayer,
    RejectKind, Rejected, Sample,
};
use crate::clock::SharedClock;
use crate::limit::{Decision, KeyedLimiter, Limiter};
use crate::shared_limits::SharedLimits;

/// 5.5: per key at the edge, per route behind it, and in flight.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_key: Option<KeyedRate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<RateLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<super::concurrency::Rule>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyedRate {
    pub key: KeySpec,
    pub rate: Rate,
    /// Defaults to one second's worth of the rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub rate: Rate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

/// Where the per-key limit's key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySpec {
    /// Parsed once here: a lookup by a name given as text parses it on every request.
    Header(http::HeaderName),
    Cookie(String),
    Query(String),
    ClientAddr,
}

impl std::str::FromStr for KeySpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let non_empty = |v: &str, what: &str| {
            if v.is_empty() {
                Err(format!("`{s}`: the {what} name is empty"))
            } else {
                Ok(v.to_string())
            }
        };
        match s.split_once(':') {
            Some(("header", v)) => http::HeaderName::from_bytes(non_empty(v, "header")?.as_bytes())
                .map(KeySpec::Header)
                .map_err(|_| format!("`{s}`: `{v}` is not a header name")),
            Some(("cookie", v)) => Ok(KeySpec::Cookie(non_empty(v, "cookie")?)),
            Some(("query", v)) => Ok(KeySpec::Query(non_empty(v, "query parameter")?)),
            None if s == "client_addr" => Ok(KeySpec::ClientAddr),
            _ => Err(format!(
                "`{s}`: expected header:NAME, cookie:NAME, query:NAME or client_addr"
            )),
        }
    }
}

impl KeySpec {
    /// The header the key is read from, if any (a cookie's is `Cookie`).
    pub fn header(&self) -> Option<http::HeaderName> {
        match self {
            KeySpec::Header(name) => Some(name.clone()),
            KeySpec::Cookie(_) => Some(http::header::COOKIE),
            KeySpec::Query(_) | KeySpec::ClientAddr => None,
        }
    }
}

impl std::fmt::Display for KeySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySpec::Header(n) => write!(f, "header:{n}"),
            KeySpec::Cookie(n) => write!(f, "cookie:{n}"),
            KeySpec::Query(n) => write!(f, "query:{n}"),
            KeySpec::ClientAddr => write!(f, "client_addr"),
        }
    }
}

/// `50/s`, `3000/m`, `100000/h`: a number of requests per unit of time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (n, unit) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}`: expected N/s, N/m or N/h"))?;
        let n: f64 = n
            .trim()
            .parse()
            .map_err(|_| format!("`{s}`: `{n}` is not a number"))?;
        let seconds = match unit.trim() {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => return Err(format!("`{s}`: unknown unit `{other}` (s, m or h)")),
        };
        if !(n > 0.0 && n.is_finite()) {
            return Err(format!("`{s}`: the rate must be more than zero"));
        }
        Ok(Rate {
            per_second: n / seconds,
        })
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/s", self.per_second)
    }
}

crate::layer::string_serde!(KeySpec);
crate::layer::string_serde!(Rate);

impl Rule {
    /// What serde cannot check: an empty section, and its concurrency limit's problems.
    pub fn problems(&self) -> Problems {
        let mut out: Problems = Vec::new();
        if let Some(c) = &self.concurrency {
            for (mut field, message) in c.problems() {
                field.insert(0, "concurrency");
                out.push((field, message));
            }
        }
        if self.per_key.is_none() && self.total.is_none() && self.concurrency.is_none() {
            out.push((vec![], "empty: set per_key, total or concurrency".into()));
        }
        out
    }
}

// Named like the variants of the enum they once were.
#[allow(non_upper_case_globals)]
impl RejectKind {
    /// The per-key limit (one user, one address).
    pub const RateLimitedKey: RejectKind = RejectKind::new(
        "per_key",
        StatusCode::TOO_MANY_REQUESTS,
        Some("rate_limited"),
    );
    /// The route's total rate.
    pub const RateLimitedTotal: RejectKind =
        RejectKind::new("total", StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"));
    /// Shared limits are required (`fail_closed`) and Redis is unreachable: not the user's
    /// doing.
    pub const LimitsUnavailable: RejectKind =
        RejectKind::new("limits_unavailable", StatusCode::SERVICE_UNAVAILABLE, None);
}

/// The client's address, put in the request's extensions by the server (after the
/// trusted-proxy rules): what `client_addr` keys on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// How many distinct keys a route remembers at most.
pub const MAX_KEYS: usize = 100_000;

/// The limiters' state, shared by every clone of the service and kept across reloads while
/// the rule is unchanged.
#[derive(Clone)]
pub struct LimitHandle(crate::layer::Forked<Shared>);

struct Shared {
    /// The shared limits' name in Redis: the route's, under the version's scope for a new
    /// version tried beside the running one (`v7/orders`), so that each has its own state.
    route: String,
    key: Option<KeySpec>,
    per_key: Option<KeyedLimiter>,
    total: Option<Limiter>,
    shared: Option<SharedLimits>,
    clock: SharedClock,
    /// Per serving thread (summed when read): counted on every request.
    allowed: Counter,
    rejected_key: AtomicU64,
    rejected_total: AtomicU64,
    rejected_unavailable: AtomicU64,
}

/// What a status page shows of a route's limits.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LimitStatus {
    pub allowed: u64,
    pub rejected_per_key: u64,
    pub rejected_total: u64,
    pub rejected_limits_unavailable: u64,
    /// Keys remembered by the local per-key limiter.
    pub keys: usize,
    /// `local`, `shared` (Redis) or `local_fallback` (Redis away).
    pub mode: &'static str,
}

impl LimitHandle {
    /// Another handle on the same state, for one serving thread (see [`crate::layer::Forked`]).
    pub fn fork(&self) -> Self {
        Self(Arc::new(Arc::clone(&self.0)))
    }

    pub fn new(
        route: &str,
        rule: &Rule,
        shared: Option<SharedLimits>,
        clock: SharedClock,
    ) -> LimitHandle {
        let epoch = clock.now();
        LimitHandle(Arc::new(Arc::new(Shared {
            route: route.to_string(),
            key: rule.per_key.as_ref().map(|k| k.key.clone()),
            per_key: rule
                .per_key
                .as_ref()
                .map(|k| KeyedLimiter::new(k.rate, k.burst, MAX_KEYS, epoch)),
            total: rule
                .total
                .as_ref()
                .map(|t| Limiter::new(t.rate, t.burst, epoch)),
            shared,
            clock,
            allowed: Counter::default(),
            rejected_key: AtomicU64::new(0),
            rejected_total: AtomicU64::new(0),
            rejected_unavailable: AtomicU64::new(0),
        })))
    }

    /// The per-key limit's key for a request: the configured source, or the client's address
    /// when the request does not carry it (anonymous clients are limited too).
    pub fn key_of<'r, B>(&self, req: &'r Request<B>) -> Option<Cow<'r, str>> {
        let spec = self.0.key.as_ref()?;
        Some(
            request_key(spec, req).unwrap_or_else(|| match req.extensions().get::<ClientAddr>() {
                Some(a) => Cow::Owned(format!("addr:{}", a.0.ip())),
                None => Cow::Borrowed("-"),
            }),
        )
    }

    /// Decides for one request with the given per-key key.
    pub async fn check(&self, key: Option<&str>) -> Result<(), Rejected> {
        let s = &self.0;
        let result = match &s.shared {
            Some(shared) => match self.check_shared(shared, key).await {
                Some(r) => r,
                None if shared.fail_closed() => Err(Rejected {
                    kind: RejectKind::LimitsUnavailable,
                    retry_after: Duration::from_secs(1),
                }),
                None => self.check_local(key),
            },
            None => self.check_local(key),
        };
        self.counted(result)
    }

    /// Decides at once when the limits are local; `None` when Redis must be asked (then
    /// [`LimitHandle::check`]).
    pub fn try_check(&self, key: Option<&str>) -> Option<Result<(), Rejected>> {
        if self.0.shared.is_some() {
            return None;
        }
        Some(self.counted(self.check_local(key)))
    }

    fn counted(&self, result: Result<(), Rejected>) -> Result<(), Rejected> {
        let s = &self.0;
        let counter = match &result {
            Ok(()) => {
                s.allowed.inc();
                return result;
            }
            Err(r) if r.kind == RejectKind::RateLimitedKey => &s.rejected_key,
            Err(r) if r.kind == RejectKind::RateLimitedTotal => &s.rejected_total,
            Err(_) => &s.rejected_unavailable,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    /// `None` when Redis did not answer.
    async fn check_shared(
        &self,
        shared: &SharedLimits,
        key: Option<&str>,
    ) -> Option<Result<(), Rejected>> {
        let s = &self.0;
        let mut cells = Vec::with_capacity(2);
        let mut kinds = Vec::with_capacity(2);
        if let (Some(keyed), Some(key)) = (&s.per_key, key) {
            cells.push((format!("goguard:limit:{}:key:{key}", s.route), keyed.cell()));
            kinds.push(RejectKind::RateLimitedKey);
        }
        if let Some(total) = &s.total {
            cells.push((format!("goguard:limit:{}:total", s.route), total.cell()));
            kinds.push(RejectKind::RateLimitedTotal);
        }
        if cells.is_empty() {
            return Some(Ok(()));
        }
        match shared.check(&cells).await {
            Ok(None) => Some(Ok(())),
            Ok(Some((i, retry_after))) => Some(Err(Rejected {
                kind: kinds[i.min(kinds.len() - 1)],
                retry_after,
            })),
            Err(_) => None,
        }
    }

    fn check_local(&self, key: Option<&str>) -> Result<(), Rejected> {
        let s = &self.0;
        let now = s.clock.now();
        if let (Some(keyed), Some(key)) = (&s.per_key, key) {
            let d = keyed.check(key, now);
            if let Decision::Deny { retry_after } = d {
                return Err(Rejected {
                    kind: RejectKind::RateLimitedKey,
                    retry_after,
                });
            }
        }
        if let Some(total) = &s.total {
            let d = total.check(now);
            if let Decision::Deny { retry_after } = d {
                return Err(Rejected {
                    kind: RejectKind::RateLimitedTotal,
                    retry_after,
                });
            }
        }
        Ok(())
    }

    pub fn status(&self) -> LimitStatus {
        let s = &self.0;
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LimitStatus {
            allowed: s.allowed.get(),
            rejected_per_key: n(&s.rejected_key),
            rejected_total: n(&s.rejected_total),
            rejected_limits_unavailable: n(&s.rejected_unavailable),
            keys: s.per_key.as_ref().map_or(0, KeyedLimiter::len),
            mode: match &s.shared {
                None => "local",
                Some(sh) if sh.in_fallback() => "local_fallback",
                Some(_) => "shared",
            },
        }
    }
}

/// The key named by `spec` in the request, if present and not empty (borrowed from the
/// request but for a client address).
pub fn request_key<'r, B>(spec: &KeySpec, req: &'r Request<B>) -> Option<Cow<'r, str>> {
    let value = match spec {
        KeySpec::Header(name) => req
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(Cow::Borrowed),
        KeySpec::Cookie(name) => req
            .headers()
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| k == name)
            .map(|(_, v)| Cow::Borrowed(v)),
        KeySpec::Query(name) => req.uri().query().and_then(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
                .find(|(k, _)| k == name)
                .map(|(_, v)| Cow::Borrowed(v))
        }),
        KeySpec::ClientAddr => req
            .extensions()
            .get::<ClientAddr>()
            .map(|a| Cow::Owned(a.0.ip().to_string())),
    };
    value.filter(|v| !v.is_empty())
}

/// Applies a route's rate limits to a service.
#[derive(Clone)]
pub struct LimitLayer {
    handle: LimitHandle,
}

impl LimitLayer {
    pub fn new(handle: LimitHandle) -> LimitLayer {
        LimitLayer { handle }
    }
}

impl Protection for LimitLayer {
    fn status(&self, out: &mut Vec<(&'static str, serde_json::Value)>) {
        out.push(("limit", json(&self.handle.status())));
    }

    fn samples(&self, out: &mut Vec<Sample>) {
        out.push(Sample {
            metric: "limit_keys",
            labels: Vec::new(),
            value: self.handle.status().keys as f64,
        });
    }

    fn rejects(&self) -> &'static [RejectKind] {
        &[
            RejectKind::RateLimitedKey,
            RejectKind::RateLimitedTotal,
            RejectKind::LimitsUnavailable,
        ]
    }

    fn reads_headers(&self, out: &mut Vec<http::HeaderName>) {
        out.extend(self.handle.0.key.as_ref().and_then(KeySpec::header));
    }

    fn user_key(&self) -> Option<&KeySpec> {
        self.handle.0.key.as_ref()
    }

    /// When it keys on the address, or falls back to it for a request without its key.
    fn reads_client_addr(&self, req: &Request<Body>) -> bool {
        match &self.handle.0.key {
            None => false,
            Some(KeySpec::ClientAddr) => true,
            Some(spec) => request_key(spec, req).is_none(),
        }
    }
}

impl ProtectionLayer for LimitLayer {
    const METRICS: &'static [MetricDesc] = &[MetricDesc {
        name: "limit_keys",
        help: "Keys remembered by the per-key limiter, by route",
        kind: MetricKind::Gauge,
    }];

    fn fork(&self) -> Self {
        LimitLayer::new(self.handle.fork())
    }
}

impl<S> Layer<S> for LimitLayer {
    type Service = LimitService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        LimitService {
            inner,
            handle: self.handle.clone(),
        }
    }
}

#[derive(Clone)]
pub struct LimitService<S> {
    inner: S,
    handle: LimitHandle,
}

impl<S, B> Service<Request<B>> for LimitService<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let key = self.handle.key_of(&req);
        let decided = self.handle.try_check(key.as_deref());
        // Kept (as its own string) only for a check through Redis, after the request moves.
        let key = match decided {
            Some(_) => None,
            None => key.map(Cow::into_owned),
        };
        if let Some(decided) = decided {
            // Local limits decide at once, so the inner call starts here (tower's usual
            // shape); only a check through Redis needs the inner service in the future.
            return match decided {
                Ok(()) => {
                    let call = self.inner.call(req);
                    Box::pin(async move { call.await.map_err(Into::into) })
                }
                Err(rejected) => Box::pin(async move { Err(rejected.into()) }),
            };
        }
        let handle = self.handle.clone();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            handle.check(key.as_deref()).await?;
            inner.call(req).await.map_err(Into::into)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let mut r = b.body(()).unwrap();
        r.extensions_mut()
            .insert(ClientAddr("10.0.0.7:5000".parse().unwrap()));
        r
    }

    #[test]
    fn keys_come_from_where_the_rule_says() {
        let r = req(
            "/orders?user=q1&x=2",
            &[("x-user-id", "u1"), ("cookie", "a=1; sid=c1")],
        );
        let key = |s: &str| request_key(&s.parse().unwrap(), &r);
        assert_eq!(key("header:x-user-id").as_deref(), Some("u1"));
        assert_eq!(key("cookie:sid").as_deref(), Some("c1"));
        assert_eq!(key("query:user").as_deref(), Some("q1"));
        assert_eq!(key("client_addr").as_deref(), Some("10.0.0.7"));
        assert_eq!(key("header:x-missing"), None);
    }
}
