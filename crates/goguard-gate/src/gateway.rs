//! The gateway: a [`Stack`] built from one configuration (routes, each a stack of the
//! protection layers in front of its upstream pool), and the request path through it.
//!
//! A reload builds a new `Stack` next to the running one, reusing the state of every breaker,
//! limiter, concurrency limit, upstream pool and event sink whose rule did not change, then
//! swaps it in atomically. A request holds the `Arc<Stack>` it started with until it ends.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use tower::util::{BoxCloneSyncService, Either, MapResponse};
use tower::{service_fn, Layer, ServiceExt};

use crate::access_log::{AccessLog, AccessRecord};
use crate::clock::SharedClock;
use crate::config::{BreakerScope, Config, Fallback, KeySpec, Route};
use crate::connections::WORKER_LISTS;
use crate::events::{self, AbuseDetector, EventQueue, Reason};
use crate::inbound::Inbound;
use crate::layer::breaker::{BreakerService, BreakerStatus, Fallback as FallbackService};
use crate::layer::concurrency::{ConcurrencyService, ConcurrencyStatus};
use crate::layer::limit::{request_key, ClientAddr, LimitService, LimitStatus};
use crate::layer::{
    find_rejected, full, Body, BoxError, BreakerHandle, BreakerLayer, ClientBodyError,
    ConcurrencyHandle, ConcurrencyLayer, Degraded, FailureKind, GuardedBody, LimitHandle,
    LimitLayer, UpstreamError, CLIENT_CLOSED_REQUEST,
};
use crate::metrics::{Metrics, RouteLabel, RouteReason, RouteStatus};
use crate::proxy::{match_route, set_forwarded, strip_hop_by_hop, Peer, TrustedProxies};
use crate::shared_limits::SharedLimits;
use crate::upstream::{TargetStatus, UpstreamPool};

// A route's stack, layer by layer, each optional (`Either::Right` skips it). Concrete types
// rather than boxed services: cloning one per request is a few reference counts, not an
// allocation per layer.
type WithBreaker = Either<BreakerService<UpstreamPool, Body, Body>, UpstreamPool>;
type Unguard = fn(Response<GuardedBody<Body>>) -> Response<Body>;
type WithConcurrency = Either<MapResponse<ConcurrencyService<WithBreaker>, Unguard>, WithBreaker>;
type RouteService = Either<LimitService<WithConcurrency>, WithConcurrency>;

/// The metrics every request of a route touches, resolved once from their families.
struct HotMetrics {
    latency: crate::metrics::sharded::Histogram,
    in_flight: crate::metrics::sharded::Gauge,
    ok: crate::metrics::sharded::Counter,
}

impl HotMetrics {
    fn new(metrics: &Metrics, route: &str) -> HotMetrics {
        let label = RouteLabel {
            route: route.to_string(),
        };
        HotMetrics {
            latency: metrics.latency.get_or_create(&label).clone(),
            in_flight: metrics.in_flight.get_or_create(&label).clone(),
            ok: metrics
                .requests
                .get_or_create(&RouteStatus {
                    route: route.to_string(),
                    status: 200,
                })
                .clone(),
        }
    }
}

/// A piece of state kept across reloads while its rule (compared as JSON) is unchanged.
#[derive(Clone)]
struct Kept<T> {
    rule: String,
    value: T,
}

fn fingerprint<T: serde::Serialize>(rule: &T) -> String {
    serde_json::to_string(rule).unwrap_or_default()
}

/// Reuses `old`'s value when its rule is the same, else makes a new one.
fn keep<R: serde::Serialize, T: Clone>(
    old: Option<&Kept<T>>,
    rule: &R,
    make: impl FnOnce() -> Result<T, String>,
) -> Result<Kept<T>, String> {
    let fp = fingerprint(rule);
    match old {
        Some(k) if k.rule == fp => Ok(Kept {
            rule: fp,
            value: k.value.clone(),
        }),
        _ => Ok(Kept {
            rule: fp,
            value: make()?,
        }),
    }
}

struct RouteStack {
    rule: Route,
    /// This route's latency histogram, in-flight gauge and 200 counter, looked up once.
    hot_metrics: std::sync::OnceLock<HotMetrics>,
    /// The route's stack, one per serving thread ([`crate::connections::worker`]).
    services: Vec<RouteService>,
    user_key: Option<KeySpec>,
    /// The key of the route's per-key limit.
    limit_key: Option<KeySpec>,
    breaker: Option<Kept<BreakerHandle>>,
    limit: Option<Kept<LimitHandle>>,
    concurrency: Option<Kept<ConcurrencyHandle>>,
}

impl RouteStack {
    /// Whether the per-key limit needs the client's address ([`ClientAddr`]): it keys on
    /// it, or falls back to it for a request without its key. Only then is it put in the
    /// request's extensions (two allocations a request otherwise).
    fn keys_on_client_addr<B>(&self, req: &Request<B>) -> bool {
        match &self.limit_key {
            None => false,
            Some(KeySpec::ClientAddr) => true,
            Some(spec) => request_key(spec, req).is_none(),
        }
    }
}

#[derive(Clone)]
struct EventsPart {
    queue: EventQueue,
    detector: Arc<Mutex<AbuseDetector>>,
}

/// One whole configuration, running.
pub struct Stack {
    pub config: Arc<Config>,
    pub version: u64,
    pub loaded_at: SystemTime,
    routes: Vec<RouteStack>,
    pools: BTreeMap<String, Kept<UpstreamPool>>,
    /// Breakers with `scope = "upstream"`, by upstream.
    upstream_breakers: BTreeMap<String, Kept<BreakerHandle>>,
    trusted: TrustedProxies,
    /// The request checks made before routing, with the headers this configuration uses.
    inbound: Inbound,
    events: Kept<EventsPart>,
    shared_limits: Option<Kept<SharedLimits>>,
    access_log: Kept<AccessLog>,
    clock: SharedClock,
}

/// A route's protections, for `/admin/status` and the metrics.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RouteState {
    pub name: String,
    pub upstream: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerStatus>,
    /// `route`, or `upstream` for a breaker shared by the upstream's routes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker_scope: Option<BreakerScope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<LimitStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<ConcurrencyStatus>,
}

impl Stack {
    /// Builds the stack for `config`, taking over `previous`'s state where rules are
    /// unchanged. Must run inside a tokio runtime (health checks and Redis start here).
    /// `base` is the directory relative paths (fallback files, the events file) are read
    /// from.
    pub fn build(
        config: Config,
        previous: Option<&Stack>,
        base: &Path,
        clock: SharedClock,
    ) -> Result<Stack, String> {
        let resolve = |p: &Path| -> PathBuf {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let trusted = TrustedProxies::parse(&config.server.trusted_proxies)?;
        let idle = config.server.idle_timeout;
        let mut pools = BTreeMap::new();
        for (name, rule) in &config.upstreams {
            let old = previous.and_then(|p| p.pools.get(name));
            let kept = keep(old, &(rule, idle), || {
                Ok(UpstreamPool::new(name, rule, idle, clock.clone()))
            })?;
            pools.insert(name.clone(), kept);
        }
        let events = keep(previous.map(|p| &p.events), &config.events, || {
            let e = &config.events;
            let (queue, rx) = EventQueue::new(e.queue);
            let sink = match &e.sink {
                crate::config::Sink::File(p) => crate::config::Sink::File(resolve(p)),
                other => other.clone(),
            };
            events::spawn_sink(&sink, rx, &queue)
                .map_err(|err| format!("events.sink: {sink}: {err}"))?;
            Ok(EventsPart {
                queue,
                detector: Arc::new(Mutex::new(AbuseDetector::new(
                    e.rejections,
                    e.window,
                    crate::layer::limit::MAX_KEYS,
                ))),
            })
        })?;
        let shared_limits = match &config.redis {
            Some(r) => Some(keep(
                previous.and_then(|p| p.shared_limits.as_ref()),
                r,
                || {
                    Ok(SharedLimits::new(
                        &r.url,
                        r.timeout,
                        r.fail_closed,
                        Some(events.value.queue.clone()),
                    ))
                },
            )?),
            None => None,
        };
        let access_log = keep(
            previous.map(|p| &p.access_log),
            &config.server.access_log,
            || AccessLog::open(&config.server.access_log, base),
        )?;
        let mut routes = Vec::new();
        let mut upstream_breakers: BTreeMap<String, Kept<BreakerHandle>> = BTreeMap::new();
        for r in &config.routes {
            let old = previous.and_then(|p| p.routes.iter().find(|o| o.rule.name == r.name));
            let pool = &pools
                .get(&r.upstream)
                .ok_or_else(|| format!("route {}: no upstream `{}`", r.name, r.upstream))?
                .value;
            let breaker = match &r.breaker {
                Some(rule) => {
                    let kept = if rule.scope == BreakerScope::Upstream {
                        // One breaker per upstream: made by its first route, shared by the
                        // others (validation made sure their rules agree).
                        match upstream_breakers.get(&r.upstream) {
                            Some(k) => k.clone(),
                            None => {
                                let old =
                                    previous.and_then(|p| p.upstream_breakers.get(&r.upstream));
                                let k = keep(old, rule, || {
                                    Ok(BreakerHandle::new(rule.clone(), clock.clone()))
                                })?;
                                upstream_breakers.insert(r.upstream.clone(), k.clone());
                                k
                            }
                        }
                    } else {
                        keep(old.and_then(|o| o.breaker.as_ref()), rule, || {
                            Ok(BreakerHandle::new(rule.clone(), clock.clone()))
                        })?
                    };
                    let fallback = match &r.fallback {
                        Some(f) => Some(fallback_service(f, &pools, &resolve)?),
                        None => None,
                    };
                    Some((kept, fallback))
                }
                None => None,
            };
            let limit_rule = r.limit.as_ref();
            let concurrency = match limit_rule.and_then(|l| l.concurrency.as_ref()) {
                Some(rule) => {
                    let kept = keep(old.and_then(|o| o.concurrency.as_ref()), rule, || {
                        Ok(ConcurrencyHandle::new(rule))
                    })?;
                    Some(kept)
                }
                None => None,
            };
            let limit = match limit_rule.filter(|l| l.per_key.is_some() || l.total.is_some()) {
                Some(rule) => {
                    let shared = shared_limits.as_ref().map(|k| k.value.clone());
                    let fp_rule = (rule.per_key.as_ref(), rule.total.as_ref(), shared.is_some());
                    let kept = keep(old.and_then(|o| o.limit.as_ref()), &fp_rule, || {
                        Ok(LimitHandle::new(&r.name, rule, shared, clock.clone()))
                    })?;
                    Some(kept)
                }
                None => None,
            };
            // One copy of the stack per serving thread, on handles of its own.
            let services = (0..WORKER_LISTS)
                .map(|_| {
                    route_service(
                        pool,
                        breaker.as_ref().map(|(k, f)| (&k.value, f.clone())),
                        concurrency.as_ref().map(|k| &k.value),
                        limit.as_ref().map(|k| &k.value),
                    )
                })
                .collect();
            let breaker = breaker.map(|(k, _)| k);
            let limit_key = limit_rule
                .and_then(|l| l.per_key.as_ref())
                .map(|k| k.key.clone());
            routes.push(RouteStack {
                hot_metrics: std::sync::OnceLock::new(),
                rule: r.clone(),
                services,
                user_key: config.events.user.clone().or_else(|| limit_key.clone()),
                limit_key,
                breaker,
                limit,
                concurrency,
            });
        }
        let inbound = Inbound::new(relied_on_headers(&config), config.server.max_header_bytes);
        Ok(Stack {
            inbound,
            version: previous.map_or(1, |p| p.version + 1),
            loaded_at: SystemTime::now(),
            config: Arc::new(config),
            routes,
            pools,
            upstream_breakers,
            trusted,
            events,
            shared_limits,
            access_log,
            clock,
        })
    }

    pub fn route_states(&self) -> Vec<RouteState> {
        self.routes
            .iter()
            .map(|r| RouteState {
                name: r.rule.name.clone(),
                upstream: r.rule.upstream.clone(),
                breaker: r.breaker.as_ref().map(|b| b.value.status()),
                breaker_scope: r.rule.breaker.as_ref().map(|b| b.scope),
                limit: r.limit.as_ref().map(|l| l.value.status()),
                concurrency: r.concurrency.as_ref().map(|c| c.value.status()),
            })
            .collect()
    }

    /// Records a request refused before it could be read as one (no method, no path): in
    /// the metrics (route `-`, reason `malformed`) and the access log.
    pub fn refused(&self, metrics: &Metrics, client: std::net::IpAddr, status: u16) {
        let route = "-".to_string();
        metrics
            .requests
            .get_or_create(&RouteStatus {
                route: route.clone(),
                status,
            })
            .inc();
        metrics
            .rejections
            .get_or_create(&RouteReason {
                route,
                reason: "malformed".into(),
            })
            .inc();
        self.access_log.value.write(AccessRecord {
            client,
            method: "-",
            path: "-",
            route: "-",
            status,
            duration: std::time::Duration::ZERO,
            rejected: Some("malformed"),
        });
    }

    /// Writes out the access log's queued lines (at shutdown).
    pub fn flush_access_log(&self) {
        self.access_log.value.flush();
    }

    /// Whether `ip` is a trusted proxy of this configuration.
    pub fn trusted_peer(&self, ip: std::net::IpAddr) -> bool {
        self.trusted.trusts(ip)
    }

    pub fn upstream_states(&self) -> Vec<(String, Vec<TargetStatus>)> {
        self.pools
            .iter()
            .map(|(n, p)| (n.clone(), p.value.status()))
            .collect()
    }

    /// Retries made and refused, over every upstream.
    pub fn retries(&self) -> (u64, u64) {
        self.pools.values().fold((0, 0), |(a, b), p| {
            let (x, y) = p.value.retries();
            (a + x, b + y)
        })
    }

    pub fn events_dropped(&self) -> u64 {
        self.events.value.queue.dropped()
    }

    /// Whether limits are falling back from Redis, and Redis errors, when Redis is set.
    pub fn redis_state(&self) -> Option<(bool, u64)> {
        self.shared_limits
            .as_ref()
            .map(|s| (s.value.in_fallback(), s.value.errors()))
    }

    /// Records a rejection of `user` on `route`; raises the event when it is one too many.
    fn user_rejected(&self, route: &str, user: &str, reason: Reason) {
        let now = self.clock.now();
        let event = self
            .events
            .value
            .detector
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .rejected(route, user, reason, now);
        if let Some(e) = event {
            tracing::warn!(user = %e.user, route = %e.route, reason = ?e.reason, count = e.count, "abnormal user behaviour");
            self.events.value.queue.emit(e);
        }
    }
}

/// The headers a configuration routes, limits or names users on: a client may not have them
/// removed by naming them in `Connection` (see [`crate::inbound`]).
fn relied_on_headers(config: &Config) -> Vec<http::HeaderName> {
    let mut names = Vec::new();
    let keys = config
        .routes
        .iter()
        .filter_map(|r| r.limit.as_ref()?.per_key.as_ref().map(|k| &k.key))
        .chain(config.events.user.as_ref());
    for key in keys {
        match key {
            KeySpec::Header(name) => names.push(name.clone()),
            KeySpec::Cookie(_) => names.push(header::COOKIE),
            KeySpec::Query(_) | KeySpec::ClientAddr => {}
        }
    }
    for r in &config.routes {
        names.extend(
            r.headers
                .keys()
                .filter_map(|k| http::HeaderName::from_bytes(k.as_bytes()).ok()),
        );
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    names
}

/// A route's stack of layers in front of its pool, on handles forked for one serving thread.
fn route_service(
    pool: &UpstreamPool,
    breaker: Option<(&BreakerHandle, Option<FallbackService<Body, Body>>)>,
    concurrency: Option<&ConcurrencyHandle>,
    limit: Option<&LimitHandle>,
) -> RouteService {
    let service = pool.fork();
    let service: WithBreaker = match breaker {
        Some((handle, fallback)) => {
            Either::Left(BreakerLayer::new(handle.fork(), fallback).layer(service))
        }
        None => Either::Right(service),
    };
    let service: WithConcurrency = match concurrency {
        Some(handle) => {
            let unguard: Unguard = |r| r.map(BodyExt::boxed);
            Either::Left(
                ConcurrencyLayer::new(handle.fork())
                    .layer(service)
                    .map_response(unguard),
            )
        }
        None => Either::Right(service),
    };
    match limit {
        Some(handle) => Either::Left(LimitLayer::new(handle.fork()).layer(service)),
        None => Either::Right(service),
    }
}

/// The service answering for a route while its breaker is open.
fn fallback_service(
    f: &Fallback,
    pools: &BTreeMap<String, Kept<UpstreamPool>>,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<FallbackService<Body, Body>, String> {
    if let Some(u) = &f.upstream {
        let pool = pools
            .get(u)
            .ok_or_else(|| format!("fallback: no upstream `{u}`"))?
            .value
            .clone();
        return Ok(BoxCloneSyncService::new(pool));
    }
    let body: Bytes = match (&f.body, &f.file) {
        (Some(b), _) => Bytes::from(b.clone()),
        (_, Some(p)) => {
            let path = resolve(p);
            Bytes::from(
                std::fs::read(&path)
                    .map_err(|e| format!("fallback.file: {}: {e}", path.display()))?,
            )
        }
        _ => Bytes::new(),
    };
    let mut status = StatusCode::from_u16(f.status).map_err(|e| e.to_string())?;
    let location = match &f.redirect {
        Some(to) => {
            if !status.is_redirection() {
                status = StatusCode::FOUND;
            }
            Some(HeaderValue::from_str(to).map_err(|e| format!("fallback.redirect: {e}"))?)
        }
        None => None,
    };
    let content_type = HeaderValue::from_str(&f.content_type)
        .map_err(|e| format!("fallback.content_type: {e}"))?;
    Ok(BoxCloneSyncService::new(service_fn(
        move |_req: Request<Body>| {
            let mut r = Response::new(full(body.clone()));
            *r.status_mut() = status;
            r.headers_mut()
                .insert(header::CONTENT_TYPE, content_type.clone());
            if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS
            {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            if let Some(l) = &location {
                r.headers_mut().insert(header::LOCATION, l.clone());
            }
            std::future::ready(Ok::<_, BoxError>(r))
        },
    )))
}

/// Calls a route's stack. A plain function with concrete types: inside the async handler
/// the compiler cannot prove the future `Send` for every lifetime of the boxed error.
fn call_route(
    service: RouteService,
    req: Request<Body>,
) -> impl std::future::Future<Output = Result<Response<Body>, BoxError>> + Send {
    service.oneshot(req)
}

/// Reads and discards what the client is still sending (for a few seconds at most), so that
/// it reads the answer given before its body's end (a 413, an upstream's early error) instead
/// of failing on a closed connection: nginx's lingering close.
fn drain<B>(body: B)
where
    B: http_body::Body + Send + 'static,
{
    // Dropped outside a runtime (at exit): nothing left to answer.
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let drain = async {
            let mut body = std::pin::pin!(body);
            while let Some(Ok(_)) = body.frame().await {}
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
    });
}

/// A request body that, dropped before its end (the limit reached, the upstream done with
/// it), drains the rest.
struct DrainOnDrop<B: http_body::Body + Send + 'static>(Option<B>);

impl<B> http_body::Body for DrainOnDrop<B>
where
    B: http_body::Body + Send + Unpin + 'static,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        match self.0.as_mut() {
            Some(b) => std::pin::Pin::new(b).poll_frame(cx),
            None => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0
            .as_ref()
            .map_or_else(|| http_body::SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl<B: http_body::Body + Send + 'static> Drop for DrainOnDrop<B> {
    fn drop(&mut self) {
        if let Some(b) = self.0.take() {
            if !b.is_end_stream() {
                drain(b);
            }
        }
    }
}

/// Who sent a request, as events name them: taken before the request moves on, written out
/// only for an event (a header's value is shared with the request, not copied).
enum UserKey {
    Header(HeaderValue),
    Text(String),
}

impl UserKey {
    fn of<B>(spec: &KeySpec, req: &Request<B>) -> Option<UserKey> {
        match spec {
            KeySpec::Header(name) => req
                .headers()
                .get(name)
                .filter(|v| v.to_str().is_ok_and(|t| !t.is_empty()))
                .cloned()
                .map(UserKey::Header),
            other => request_key(other, req).map(|k| UserKey::Text(k.into_owned())),
        }
    }

    fn text(&self) -> String {
        match self {
            UserKey::Header(v) => v.to_str().unwrap_or_default().to_string(),
            UserKey::Text(t) => t.clone(),
        }
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(full(format!("{text}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// What a request starts from: the running stack, and the metrics. Each serving thread
/// holds its own `Arc` of it (see [`crate::layer::Forked`]), swapped on reload.
pub struct Running {
    pub stack: Arc<Stack>,
    pub metrics: Arc<Metrics>,
}

/// What is recorded of a request (metrics, access log) once it ends: when `handle` returns,
/// or, when the client leaves first and the server drops the request, as a 499.
struct Record<'a> {
    stack: &'a Stack,
    metrics: &'a Metrics,
    start: Instant,
    client: std::net::SocketAddr,
    method: Option<http::Method>,
    path: Option<String>,
    route: Option<&'a RouteStack>,
    reason: Option<&'static str>,
    done: bool,
}

impl Record<'_> {
    fn finish(&mut self, status: u16) {
        self.done = true;
        let route_name = self.route.map_or("-", |r| r.rule.name.as_str());
        let elapsed = self.start.elapsed();
        let metrics = self.metrics;
        match self.route.and_then(|r| r.hot_metrics.get()) {
            Some(hot) => {
                hot.latency.observe(elapsed);
                if status == 200 {
                    hot.ok.inc();
                }
            }
            None => {
                metrics
                    .latency
                    .get_or_create(&RouteLabel {
                        route: route_name.to_string(),
                    })
                    .observe(elapsed);
            }
        }
        if status != 200 || self.route.is_none() {
            metrics
                .requests
                .get_or_create(&RouteStatus {
                    route: route_name.to_string(),
                    status,
                })
                .inc();
        }
        if let Some(reason) = self.reason {
            metrics
                .rejections
                .get_or_create(&RouteReason {
                    route: route_name.to_string(),
                    reason: reason.to_string(),
                })
                .inc();
        }
        if let (Some(method), Some(path)) = (self.method.take(), self.path.take()) {
            self.stack.access_log.value.write(AccessRecord {
                client: self.client.ip(),
                method: method.as_str(),
                path: &path,
                route: route_name,
                status,
                duration: elapsed,
                rejected: self.reason,
            });
        }
    }
}

impl Drop for Record<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.reason = Some("client_closed");
            self.finish(CLIENT_CLOSED_REQUEST.as_u16());
        }
    }
}

/// Handles one client request with the stack it arrived under. Never fails: every outcome,
/// including a rejection or an upstream failure, is an HTTP answer.
pub async fn handle<B>(
    running: Arc<Running>,
    mut req: Request<B>,
    peer: Peer,
) -> Result<Response<Body>, Infallible>
where
    B: http_body::Body<Data = Bytes> + Send + Sync + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let (stack, metrics) = (&running.stack, &running.metrics);
    let server = &stack.config.server;
    let logging = stack.access_log.value.enabled();
    let mut record = Record {
        stack,
        metrics,
        start: Instant::now(),
        client: peer.addr,
        method: logging.then(|| req.method().clone()),
        path: None,
        route: None,
        reason: None,
        done: false,
    };
    // Host, path and headers settled first: everything below reads the request as the
    // upstream will receive it.
    let admitted = stack
        .inbound
        .admit(&mut req, stack.trusted.trusts(peer.addr.ip()));
    record.path = logging.then(|| req.uri().path().to_string());
    let client = stack.trusted.client_addr(peer.addr, req.headers());
    record.client = client;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| crate::codec::parse_length(v.as_bytes()));
    let mut response = if let Err(refused) = admitted {
        record.reason = Some("bad_request");
        drain(req.into_body());
        let mut r = plain(refused.status, refused.reason);
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        r
    } else if declared.is_some_and(|n| n > server.max_body_bytes) {
        record.reason = Some("body_too_large");
        drain(req.into_body());
        plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
    } else {
        let (parts, body) = req.into_parts();
        // The client's body errors are told apart from the upstream's on the way
        // (ClientBodyError). A declared length is enforced by the HTTP layer; only a body
        // without one (chunked, HTTP/2 data) needs counting on the way.
        let body = if body.is_end_stream() {
            body.map_err(Into::into).boxed()
        } else if declared.is_some() {
            DrainOnDrop(Some(body))
                .map_err(|e| -> BoxError { Box::new(ClientBodyError::new(e)) })
                .boxed()
        } else {
            let limit = usize::try_from(server.max_body_bytes).unwrap_or(usize::MAX);
            Limited::new(DrainOnDrop(Some(body)).map_err(ClientBodyError::new), limit)
                .map_err(|e| -> BoxError { e })
                .boxed()
        };
        let req = Request::from_parts(parts, body);
        match match_route(stack.routes.iter().map(|r| &r.rule), &req).map(|(i, _)| i) {
            None => plain(StatusCode::NOT_FOUND, "no route for this request"),
            Some(i) => {
                let r = &stack.routes[i];
                record.route = Some(r);
                let (response, reason) = call(stack, metrics, r, req, &peer, client).await;
                record.reason = reason;
                response
            }
        }
    };
    // The gateway's own HTTP version and framing, never the upstream's (crate::codec).
    *response.version_mut() = http::Version::default();
    record.finish(response.status().as_u16());
    Ok(response)
}

/// Sends a routed request through its route's stack: the answer, and why it was turned away
/// or failed, for the metrics.
async fn call(
    stack: &Stack,
    metrics: &Metrics,
    r: &RouteStack,
    mut req: Request<Body>,
    peer: &Peer,
    client: std::net::SocketAddr,
) -> (Response<Body>, Option<&'static str>) {
    let mut reason = None;
    let hot = r
        .hot_metrics
        .get_or_init(|| HotMetrics::new(metrics, &r.rule.name));
    // Who the user is matters only to a route that can turn one away; the client's address
    // is written out only for an event.
    let user_key = (r.breaker.is_some() || r.limit.is_some())
        .then(|| r.user_key.as_ref().and_then(|k| UserKey::of(k, &req)));
    if r.keys_on_client_addr(&req) {
        req.extensions_mut().insert(ClientAddr(client));
    }
    set_forwarded(req.headers_mut(), peer, &stack.trusted);
    hot.in_flight.inc();
    let service = r.services[crate::connections::worker()].clone();
    let result = call_route(service, req).await;
    hot.in_flight.dec();
    let rejected = |why: Reason| {
        if let Some(key) = &user_key {
            let user = key
                .as_ref()
                .map_or_else(|| client.ip().to_string(), UserKey::text);
            stack.user_rejected(&r.rule.name, &user, why);
        }
    };
    let response = match result {
        Ok(mut resp) => {
            strip_hop_by_hop(resp.headers_mut());
            if let Some(Degraded(kind)) = resp.extensions().get::<Degraded>().copied() {
                reason = Some(kind.as_str());
                if let Some(event) = kind.user_event() {
                    rejected(Reason::named(event));
                }
            }
            resp
        }
        Err(e) => {
            if let Some(rj) = find_rejected(&e) {
                reason = Some(rj.kind.as_str());
                if let Some(event) = rj.kind.user_event() {
                    rejected(Reason::named(event));
                }
                rj.response()
            } else if let Some(u) = e.downcast_ref::<UpstreamError>() {
                tracing::debug!(route = %r.rule.name, error = %u, "upstream failed");
                reason = match u.kind {
                    FailureKind::BodyTooLarge => Some("body_too_large"),
                    FailureKind::ClientBody => Some("bad_request"),
                    FailureKind::ClientGone => Some("client_closed"),
                    _ => None,
                };
                let text = if u.kind.is_client_fault() {
                    format!("request body: {}", u.message)
                } else {
                    format!("upstream: {}", u.message)
                };
                plain(u.status(), &text)
            } else {
                tracing::debug!(route = %r.rule.name, error = %e, "request failed");
                plain(StatusCode::BAD_GATEWAY, "upstream request failed")
            }
        }
    };
    (response, reason)
}
