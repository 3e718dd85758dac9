//! An upstream: its targets, how one is chosen for a request, how failing targets are
//! ejected (passively, by consecutive failures, and actively, by health checks), timeouts,
//! and retries of idempotent requests within a budget. It is a `tower::Service` sending a
//! prepared request to one target: HTTP/1.1 on each target's own idle list of connections
//! ([`crate::connections`]), HTTP/2 with prior knowledge on hyper's pooled client (one
//! multiplexed connection per target).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::clock::SharedClock;
use crate::config::{Balance, Upstream as Rule};
use crate::connections::{Connections, SendError, WORKER_LISTS};
use crate::h1::{Conn, Reuse};
use crate::layer::{
    full, Body, BoxError, ClientBodyError, FailureKind, GuardedBody, UpstreamError,
};
use crate::metrics::sharded::{Counter, Gauge};
use crate::timer::CoarseTimer;

/// One instance of the upstream service.
#[derive(Debug)]
pub struct Target {
    pub addr: String,
    /// `addr` parsed once, for the request URIs.
    authority: Option<http::uri::Authority>,
    /// `addr` as a Host header, for requests that arrived without one (HTTP/2).
    host: Option<http::HeaderValue>,
    /// Its HTTP/1.1 connections.
    conns: Arc<Connections>,
    /// Counted per serving thread (summed when read): written twice by every request, a
    /// single atomic would bounce between threads.
    in_flight: Gauge,
    consecutive_failures: AtomicU32,
    ejected_until: Mutex<Option<Instant>>,
    /// The last active health check's verdict (true until one fails).
    healthy: AtomicBool,
    requests: Counter,
    failures: AtomicU64,
    ejections: AtomicU64,
}

/// What a status page shows of a target.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetStatus {
    pub addr: String,
    pub healthy: bool,
    pub ejected: bool,
    pub in_flight: u32,
    pub requests: u64,
    pub failures: u64,
    pub ejections: u64,
}

/// A pool of targets behind one name, cheap to clone; kept across reloads while the
/// upstream's rule is unchanged (with its connections and health).
#[derive(Clone)]
pub struct UpstreamPool(crate::layer::Forked<Inner>);

struct Inner {
    name: String,
    rule: Rule,
    targets: Vec<Target>,
    /// The pooled client for HTTP/2 upstreams.
    h2: Option<Client<HttpConnector, Body>>,
    next: AtomicUsize,
    /// Retry budget in thousandths of a retry.
    budget: AtomicU64,
    retries: AtomicU64,
    retries_refused: AtomicU64,
    clock: SharedClock,
    /// The request timeout's timers, one per serving thread (as the idle lists): a
    /// timeout on tokio's timer cost 3% of the gateway's instructions per request.
    timers: [CoarseTimer; WORKER_LISTS],
}

/// Retries always allowed before the budget's ratio has anything to work on.
const MIN_BUDGET: u64 = 10_000;
/// The most the budget saves up (in thousandths).
const MAX_BUDGET: u64 = 100_000;

impl UpstreamPool {
    /// Another handle on the same state, for one serving thread (see [`crate::layer::Forked`]).
    pub fn fork(&self) -> Self {
        Self(Arc::new(Arc::clone(&self.0)))
    }

    /// A pool for the rule; health checks (when configured) start at once, on the current
    /// tokio runtime, and stop when the pool is dropped.
    pub fn new(name: &str, rule: &Rule, idle_timeout: Duration, clock: SharedClock) -> Self {
        let h2 = rule.http2.then(|| {
            let mut connector = HttpConnector::new();
            connector.set_connect_timeout(Some(rule.connect_timeout));
            connector.set_nodelay(true);
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(idle_timeout)
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .http2_only(true)
                .build(connector)
        });
        let pool = UpstreamPool(Arc::new(Arc::new(Inner {
            name: name.to_string(),
            rule: rule.clone(),
            targets: rule
                .targets
                .iter()
                .map(|addr| Target {
                    addr: addr.clone(),
                    authority: addr.parse().ok(),
                    host: http::HeaderValue::from_str(addr).ok(),
                    conns: Connections::new(addr, rule.connect_timeout, idle_timeout),
                    in_flight: Gauge::default(),
                    consecutive_failures: AtomicU32::new(0),
                    ejected_until: Mutex::new(None),
                    healthy: AtomicBool::new(true),
                    requests: Counter::default(),
                    failures: AtomicU64::new(0),
                    ejections: AtomicU64::new(0),
                })
                .collect(),
            h2,
            next: AtomicUsize::new(0),
            budget: AtomicU64::new(MIN_BUDGET),
            retries: AtomicU64::new(0),
            retries_refused: AtomicU64::new(0),
            clock,
            timers: Default::default(),
        })));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            if rule.health.is_some() {
                runtime.spawn(health_checks(Arc::downgrade(&*pool.0)));
            }
            if !rule.http2 {
                runtime.spawn(close_idle(Arc::downgrade(&*pool.0), idle_timeout));
            }
        }
        pool
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Each target's state.
    pub fn status(&self) -> Vec<TargetStatus> {
        let now = self.0.clock.now();
        self.0
            .targets
            .iter()
            .map(|t| TargetStatus {
                addr: t.addr.clone(),
                healthy: t.healthy.load(Ordering::Relaxed),
                ejected: is_ejected(t, now),
                in_flight: u32::try_from(t.in_flight.get()).unwrap_or(0),
                requests: t.requests.get(),
                failures: t.failures.load(Ordering::Relaxed),
                ejections: t.ejections.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Retries made, and retries the budget refused.
    pub fn retries(&self) -> (u64, u64) {
        (
            self.0.retries.load(Ordering::Relaxed),
            self.0.retries_refused.load(Ordering::Relaxed),
        )
    }

    fn available(&self, t: &Target, now: Instant) -> bool {
        t.healthy.load(Ordering::Relaxed) && !is_ejected(t, now)
    }

    /// The target for the next attempt. When none is available every target is a candidate
    /// (trying a possibly sick one beats refusing everyone: Envoy's panic routing).
    /// `avoid` is the target a retry just failed on: it is chosen again only when it is the
    /// only one left.
    fn pick(&self, avoid: Option<usize>) -> usize {
        let targets = &self.0.targets;
        let n = targets.len();
        if n == 1 {
            return 0;
        }
        let now = self.0.clock.now();
        let usable = |i: usize| Some(i) != avoid && self.available(&targets[i], now);
        match self.0.rule.balance {
            Balance::RoundRobin => {
                let start = self.0.next.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|i| (start + i) % n)
                    .find(|&i| usable(i))
                    .unwrap_or(start % n)
            }
            Balance::LeastRequest => {
                // Power of two choices among the available targets (all of them when none
                // is), counted and indexed in place: no allocation per request.
                let available = (0..n).filter(|&i| usable(i)).count();
                let (len, nth): (usize, &dyn Fn(usize) -> usize) = if available == 0 {
                    (n, &|k| k)
                } else {
                    (available, &|k| {
                        (0..n).filter(|&i| usable(i)).nth(k).unwrap_or(0)
                    })
                };
                // Two different candidates (with two targets, always both).
                let i = fastrand::usize(..len);
                let j = (i + 1 + fastrand::usize(..len.max(2) - 1)) % len;
                let (a, b) = (nth(i), nth(j));
                let load = |i: usize| targets[i].in_flight.get();
                if load(b) < load(a) {
                    b
                } else {
                    a
                }
            }
        }
    }

    fn outcome(&self, i: usize, failed: bool) {
        let t = &self.0.targets[i];
        if !failed {
            // Read first: a store on every request would bounce the line between threads.
            if t.consecutive_failures.load(Ordering::Relaxed) != 0 {
                t.consecutive_failures.store(0, Ordering::Relaxed);
            }
            return;
        }
        t.failures.fetch_add(1, Ordering::Relaxed);
        let n = t.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.0.rule.eject_after.max(1) {
            let now = self.0.clock.now();
            t.consecutive_failures.store(0, Ordering::Relaxed);
            *t.ejected_until.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(now + self.0.rule.eject_for);
            t.ejections.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(upstream = %self.0.name, target = %t.addr, failures = n, eject_for = ?self.0.rule.eject_for, "target ejected");
        }
    }

    /// May this request be retried? Takes one retry from the budget if so.
    fn take_retry(&self) -> bool {
        let ok = self
            .0
            .budget
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| b.checked_sub(1000))
            .is_ok();
        if ok {
            self.0.retries.fetch_add(1, Ordering::Relaxed);
        } else {
            self.0.retries_refused.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    fn deposit(&self) {
        // A full budget (the usual case) is left alone: no write shared between threads.
        if self.0.budget.load(Ordering::Relaxed) >= MAX_BUDGET {
            return;
        }
        let add = (self.0.rule.retry.budget_ratio * 1000.0) as u64;
        let _ = self
            .0
            .budget
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some((b + add).min(MAX_BUDGET))
            });
    }

    /// Sends the request (already prepared by the proxy: headers cleaned, forwarded-for set)
    /// to a target, retrying where that is safe.
    pub async fn send(self, req: Request<Body>) -> Result<Response<Body>, BoxError> {
        self.deposit();
        let (mut parts, body) = req.into_parts();
        // Only a request with no body can be sent again: a streamed body is gone once sent.
        let replayable = is_idempotent(&parts.method) && http_body::Body::is_end_stream(&body);
        let empty_body = body_was_empty(&parts);
        // An HTTP/1.1 attempt borrows the head; HTTP/2 builds a request for each attempt.
        let client_host =
            parts.headers.contains_key(http::header::HOST) || parts.uri.authority().is_some();
        if self.0.h2.is_none() {
            origin_form(&mut parts);
        }
        let mut body = Some(body);
        let mut attempt = 0;
        let mut failed_on = None;
        loop {
            let i = self.pick(failed_on);
            failed_on = Some(i);
            let target = &self.0.targets[i];
            let b = match body.take() {
                Some(b) => b,
                None => full(Bytes::new()),
            };
            if !client_host && self.0.h2.is_none() {
                // No Host from the client (an HTTP/2 request without an authority): the
                // target's address.
                if let Some(host) = &target.host {
                    parts.headers.insert(http::header::HOST, host.clone());
                }
            }
            target.requests.inc();
            target.in_flight.inc();
            let in_flight = InFlight(self.0.clone(), i);
            let back = PoolBack(self.0.clone(), i);
            let timer = &self.0.timers[crate::connections::worker()];
            // Built in place: an attempt kept in a local first takes room of its own in
            // this future's state, which is then copied on every request.
            let result = timer
                .timeout(
                    self.0.rule.request_timeout,
                    self.0.send_once(i, &parts, b, back),
                )
                .await;
            let error = match result {
                Ok(Ok(resp)) => {
                    let status = resp.status();
                    self.outcome(i, status.is_server_error());
                    let retry_status = matches!(
                        status,
                        StatusCode::BAD_GATEWAY
                            | StatusCode::SERVICE_UNAVAILABLE
                            | StatusCode::GATEWAY_TIMEOUT
                    );
                    if replayable
                        && retry_status
                        && attempt < self.0.rule.retry.attempts
                        && self.take_retry()
                    {
                        attempt += 1;
                        continue;
                    }
                    let resp = resp.map(|b| GuardedBody::new(b, in_flight).boxed());
                    return Ok(resp);
                }
                Ok(Err(e)) => e,
                Err(_) => UpstreamError::new(
                    FailureKind::Timeout,
                    format!(
                        "{} did not answer within {:?}",
                        target.addr, self.0.rule.request_timeout
                    ),
                ),
            };
            drop(in_flight);
            if error.kind.is_client_fault() {
                // The client's body broke: nothing to say of the target, nothing to retry.
                return Err(Box::new(error));
            }
            self.outcome(i, true);
            // A refused connection never reached the service: safe to try elsewhere.
            let safe = replayable || (error.kind == FailureKind::Connect && empty_body);
            if safe
                && error.kind != FailureKind::Timeout
                && attempt < self.0.rule.retry.attempts
                && self.take_retry()
            {
                attempt += 1;
                continue;
            }
            return Err(Box::new(error));
        }
    }
}

/// The request line of an HTTP/1.1 request on a connection of our own: the origin form
/// (path and query).
fn origin_form(parts: &mut http::request::Parts) {
    if parts.uri.authority().is_some() || parts.uri.scheme().is_some() {
        if let Some(host) = parts
            .uri
            .authority()
            .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
        {
            // The client's authority (HTTP/2, or an absolute URI) is the Host.
            parts.headers.entry(http::header::HOST).or_insert(host);
        }
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        parts.uri = Uri::from(path);
    }
    parts.version = Version::HTTP_11;
}

/// An HTTP/2 request to a target (a copy of the head, which a retry may need again): the
/// absolute URI, no Host header.
fn h2_request(
    parts: &http::request::Parts,
    target: &Target,
    body: Body,
) -> Result<Request<Body>, UpstreamError> {
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.headers_mut() = parts.headers.clone();
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    let uri = match &target.authority {
        Some(a) => {
            let mut u = http::uri::Parts::default();
            u.scheme = Some(http::uri::Scheme::HTTP);
            u.authority = Some(a.clone());
            u.path_and_query = Some(path);
            Uri::from_parts(u).map_err(|e| e.to_string())
        }
        None => format!("http://{}{path}", target.addr)
            .parse::<Uri>()
            .map_err(|e| e.to_string()),
    };
    *req.uri_mut() = uri.map_err(|e| UpstreamError::new(FailureKind::Protocol, e))?;
    *req.version_mut() = Version::HTTP_2;
    // HTTP/2 carries the authority as a pseudo-header; a Host header would disagree.
    req.headers_mut().remove(http::header::HOST);
    Ok(req)
}

impl Inner {
    /// One attempt on target `i`, up to the response head.
    async fn send_once(
        &self,
        i: usize,
        parts: &http::request::Parts,
        body: Body,
        back: PoolBack,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        match &self.h2 {
            Some(client) => {
                let req = h2_request(parts, &self.targets[i], body)?;
                let head = parts.method == Method::HEAD;
                match client.request(req).await {
                    Ok(mut resp) => {
                        // As for HTTP/1.1 (crate::h1): the gateway's framing, one length.
                        let status = resp.status();
                        let length = http_body::Body::size_hint(resp.body()).exact();
                        let bodiless = head || crate::codec::status_has_no_body(status);
                        crate::codec::set_response_length(
                            resp.headers_mut(),
                            status,
                            bodiless,
                            length,
                        );
                        Ok(resp.map(UpstreamBody::H2))
                    }
                    Err(e) => Err(classify_error(&e, e.is_connect())),
                }
            }
            None => match self.targets[i].conns.send(parts, body, back).await {
                Ok(resp) => Ok(resp.map(UpstreamBody::H1)),
                Err(SendError::Connect(message)) => {
                    Err(UpstreamError::new(FailureKind::Connect, message))
                }
                Err(SendError::Http(e)) => Err(classify_error(&e, false)),
            },
        }
    }
}

/// Where an HTTP/1.1 connection goes back to: its target's idle lists (through the pool
/// handle of the request's thread: no count shared between threads is touched).
struct PoolBack(crate::layer::Forked<Inner>, usize);

impl Reuse for PoolBack {
    fn reuse(self, conn: Conn) {
        self.0.targets[self.1].conns.give_back(conn);
    }
}

/// A response body from either kind of connection.
enum UpstreamBody {
    H1(crate::h1::ResponseBody<PoolBack>),
    H2(Incoming),
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamBody::H1(b) => Pin::new(b).poll_frame(cx).map_err(BoxError::from),
            UpstreamBody::H2(b) => Pin::new(b).poll_frame(cx).map_err(BoxError::from),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::H1(b) => b.is_end_stream(),
            UpstreamBody::H2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::H1(b) => b.size_hint(),
            UpstreamBody::H2(b) => b.size_hint(),
        }
    }
}

fn body_was_empty(parts: &http::request::Parts) -> bool {
    parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .is_some_and(|v| v == "0")
        || (!parts.headers.contains_key(http::header::CONTENT_LENGTH)
            && !parts.headers.contains_key(http::header::TRANSFER_ENCODING)
            && parts.method != Method::POST
            && parts.method != Method::PATCH)
}

/// Counts a request in its target's in-flight figure until its response body is done.
struct InFlight(crate::layer::Forked<Inner>, usize);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.targets[self.1].in_flight.dec();
    }
}

fn is_ejected(t: &Target, now: Instant) -> bool {
    t.ejected_until
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_some_and(|until| now < until)
}

/// GET, HEAD, OPTIONS, TRACE, PUT and DELETE may be repeated (RFC 9110 9.2.2).
pub fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// What kind of failure an HTTP error is; `connect` when no connection was made.
fn classify_error(e: &(dyn std::error::Error + 'static), connect: bool) -> UpstreamError {
    let mut source = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return UpstreamError::new(FailureKind::BodyTooLarge, "request body over the limit");
        }
        if let Some(c) = s.downcast_ref::<ClientBodyError>() {
            let kind = if c.gone {
                FailureKind::ClientGone
            } else {
                FailureKind::ClientBody
            };
            return UpstreamError::new(kind, c.to_string());
        }
        source = s.source();
    }
    let kind = if connect {
        FailureKind::Connect
    } else {
        FailureKind::Protocol
    };
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    UpstreamError::new(kind, message)
}

/// Closes idle HTTP/1.1 connections past the idle timeout until the pool is gone.
async fn close_idle(pool: Weak<Inner>, idle_timeout: Duration) {
    let every = (idle_timeout / 2).max(Duration::from_secs(1));
    loop {
        tokio::time::sleep(every).await;
        let Some(inner) = pool.upgrade() else { return };
        for t in &inner.targets {
            t.conns.sweep();
        }
    }
}

/// Probes every target at the rule's interval until the pool is gone.
async fn health_checks(pool: Weak<Inner>) {
    loop {
        let Some(inner) = pool.upgrade() else { return };
        let Some(check) = inner.rule.health.clone() else {
            return;
        };
        for (i, t) in inner.targets.iter().enumerate() {
            let probe = async {
                let req = health_request(t, &check.path)?;
                let (parts, body) = req.into_parts();
                let back = PoolBack(Arc::new(inner.clone()), i);
                let resp = inner.send_once(i, &parts, body, back).await.ok()?;
                let ok = resp.status().is_success();
                // Read to the end, so that the connection can be used again.
                resp.into_body().collect().await.ok()?;
                Some(ok)
            };
            let ok = matches!(
                tokio::time::timeout(check.timeout, probe).await,
                Ok(Some(true))
            );
            let was = t.healthy.swap(ok, Ordering::Relaxed);
            if was != ok {
                tracing::warn!(upstream = %inner.name, target = %t.addr, healthy = ok, "health check changed");
            }
        }
        let interval = check.interval;
        drop(inner);
        tokio::time::sleep(interval).await;
    }
}

/// The health check's GET for a target.
fn health_request(t: &Target, path: &str) -> Option<Request<Body>> {
    Request::get(path)
        .header(http::header::HOST, t.addr.as_str())
        .body(full(Bytes::new()))
        .ok()
}

impl tower::Service<Request<Body>> for UpstreamPool {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // The handle moves into the future (no wrapping block holding a second copy of the
        // request).
        Box::pin(self.clone().send(req))
    }
}
