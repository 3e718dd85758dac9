//! [`CacheLayer`]: a read-through cache for GET requests (5.2), in front of the service that
//! would answer them. An answer is kept by a key made from the request ([`key`]), for its
//! TTL plus a random jitter so that entries filled together do not expire together; answers
//! for a missing object (a 404, a configured empty body) are kept too, for their own TTL
//! (negative caching: a wave of requests for unknown ids costs the service one request per
//! id, not one per request).
//!
//! A miss is filled once per key: concurrent requests for the key wait for the one that
//! went to the service ([`flight`]), for at most `lock_timeout`, then go themselves. With Redis the entries have a second level shared by every gateway, and a
//! Redis lock makes one gateway fill while the others wait ([`shared`]). Nobody waits
//! without bound, and when Redis is away the cache works on its first level alone.
//!
//! What is stored follows a shared cache's rules (RFC 9111): the statuses configured, no
//! `Cache-Control: no-store`, `private` or `no-cache`, no `Set-Cookie`, not `Vary: *`; a
//! stored answer is given only to requests whose headers named in its `Vary` agree. Requests
//! with `Authorization` pass by the cache.

pub mod entry;
pub mod flight;
pub mod key;
pub mod shared;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Method, Request, Response};
use moka::future::Cache;
use serde::{Deserialize, Serialize};
use tower::{Layer, Service};

use super::per_thread::Counter;
use super::{
    json, Answering, Body, BoxError, Forked, MetricDesc, MetricKind, Problems, Protection,
    ProtectionLayer, RejectKind, Sample,
};
use crate::clock::SharedClock;
use crate::redis_link::RedisLink;
use entry::{read_body, vary_of, verdict, Age, Read, Stored};
use flight::{Flights, Turn};
pub use key::KeyTemplate;
use shared::{Lock, SecondLevel};

/// `[routes.cache]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// What tells answers apart (see [`key`]).
    #[serde(default)]
    pub key: KeyTemplate,
    #[serde(default = "default_ttl", with = "crate::layer::serde_duration")]
    pub ttl: Duration,
    /// Up to this much is added to each entry's TTL, at random.
    #[serde(default = "default_jitter", with = "crate::layer::serde_duration")]
    pub jitter: Duration,
    /// The statuses stored (the negative ones are `negative.statuses`).
    #[serde(default = "default_statuses")]
    pub statuses: Vec<u16>,
    #[serde(default)]
    pub negative: Negative,
    #[serde(default = "default_max_entries")]
    pub max_entries: u64,
    /// The bytes of all entries (bodies and headers).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// A longer answer passes by the cache.
    #[serde(default = "default_max_entry_bytes")]
    pub max_entry_bytes: u64,
    /// One request per key to the service at a time; the others wait for its answer.
    #[serde(default = "yes")]
    pub coalesce: bool,
    /// The longest a request waits for another's fill, and the Redis lock's time: set it
    /// below the service's p99.
    #[serde(
        default = "default_lock_timeout",
        with = "crate::layer::serde_duration"
    )]
    pub lock_timeout: Duration,
    /// How long past its TTL an entry is still given while one request fetches it again.
    #[serde(default, with = "crate::layer::serde_duration")]
    pub stale_while_revalidate: Duration,
    /// Whether the entries have a second level in Redis when `[redis]` is set.
    #[serde(default = "yes")]
    pub shared: bool,
    /// Whether requests carrying a `Cookie` may be answered from the cache. Off by default,
    /// as in Varnish: an answer built from one user's session that the service forgot to
    /// mark `private` would be given to everyone. Turn it on for cookies the answers do not
    /// depend on (analytics), or name the cookie in the key.
    #[serde(default)]
    pub with_cookies: bool,
}

/// `[routes.cache.negative]`: answers for a missing object.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Negative {
    /// `0s` stores none.
    #[serde(with = "crate::layer::serde_duration")]
    pub ttl: Duration,
    #[serde(with = "crate::layer::serde_duration")]
    pub jitter: Duration,
    pub statuses: Vec<u16>,
    /// Bodies of a stored status that mean "nothing there" (`{}`, `null`): kept for the
    /// negative TTL.
    pub empty_bodies: Vec<String>,
}

impl Default for Negative {
    fn default() -> Self {
        Negative {
            ttl: Duration::from_secs(300),
            jitter: Duration::from_secs(60),
            statuses: vec![404],
            empty_bodies: Vec::new(),
        }
    }
}

fn default_ttl() -> Duration {
    Duration::from_secs(60)
}
fn default_jitter() -> Duration {
    Duration::from_secs(6)
}
fn default_statuses() -> Vec<u16> {
    vec![200, 203, 301, 308, 410]
}
fn default_max_entries() -> u64 {
    100_000
}
fn default_max_bytes() -> u64 {
    256 << 20
}
fn default_max_entry_bytes() -> u64 {
    1 << 20
}
fn default_lock_timeout() -> Duration {
    Duration::from_millis(150)
}
fn yes() -> bool {
    true
}

impl Rule {
    /// What serde cannot check.
    pub fn problems(&self) -> Problems {
        let mut out: Problems = Vec::new();
        if self.ttl.is_zero() {
            out.push((vec!["ttl"], "more than 0".into()));
        }
        for (field, list) in [
            (vec!["statuses"], &self.statuses),
            (vec!["negative", "statuses"], &self.negative.statuses),
        ] {
            if let Some(s) = list
                .iter()
                .find(|s| !(200..=599).contains(*s) || **s == 206)
            {
                out.push((
                    field,
                    format!("{s}: only whole answers (2xx but 206, 3xx, 4xx, 5xx)"),
                ));
            }
        }
        if let Some(s) = self
            .statuses
            .iter()
            .find(|s| self.negative.statuses.contains(s))
        {
            out.push((
                vec!["negative", "statuses"],
                format!("{s} is in statuses too: an answer is either stored or negative"),
            ));
        }
        if self.max_entries == 0 {
            out.push((vec!["max_entries"], "at least 1".into()));
        }
        if self.max_entry_bytes == 0 || self.max_entry_bytes > self.max_bytes {
            out.push((
                vec!["max_entry_bytes"],
                format!("more than 0 and at most max_bytes ({})", self.max_bytes),
            ));
        }
        if self.coalesce && self.lock_timeout.is_zero() {
            out.push((
                vec!["lock_timeout"],
                "more than 0 (or coalesce = false)".into(),
            ));
        }
        out
    }
}

/// What the cache did for the requests it was asked.
#[derive(Default)]
struct Counts {
    hit: Counter,
    negative_hit: Counter,
    stale: Counter,
    miss: Counter,
    /// Filled from the second level (another gateway's answer).
    shared_hit: Counter,
    bypass: Counter,
    /// Requests that waited for another's fill and got it.
    waited: Counter,
    /// Requests that waited their bound, or whose fill could not be shared, and went on.
    gave_up: Counter,
    uncacheable: Counter,
}

/// The cache of one route, shared by every clone of its service and kept across reloads
/// while the rule is unchanged.
#[derive(Clone)]
pub struct CacheHandle(Forked<Shared>);

struct Shared {
    rule: Rule,
    store: Cache<Arc<str>, Arc<Stored>>,
    flights: Flights<Arc<Stored>>,
    second: Option<SecondLevel>,
    empty_bodies: Vec<Bytes>,
    clock: SharedClock,
    counts: Counts,
}

/// Entries leave the memory when they can no longer be given: `fresh_for + stale_for` (on
/// real time; freshness itself is judged on the layer's clock).
struct ServedFor;

impl moka::Expiry<Arc<str>, Arc<Stored>> for ServedFor {
    fn expire_after_create(&self, _: &Arc<str>, v: &Arc<Stored>, _: Instant) -> Option<Duration> {
        Some(v.fresh_for + v.stale_for)
    }

    fn expire_after_update(
        &self,
        _: &Arc<str>,
        v: &Arc<Stored>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.fresh_for + v.stale_for)
    }
}

/// What a request to the service gave.
enum Fetched {
    Stored(Arc<Stored>),
    /// Given as it came, not stored.
    Passed(Result<Response<Body>, BoxError>),
}

/// What a status page shows of a cache.
#[derive(Debug, Clone, Serialize)]
pub struct CacheStatus {
    pub entries: u64,
    pub bytes: u64,
    pub hits: u64,
    pub negative_hits: u64,
    pub stale_hits: u64,
    pub misses: u64,
    pub shared_hits: u64,
    pub bypassed: u64,
    pub waited: u64,
    pub gave_up_waiting: u64,
    pub uncacheable: u64,
    /// `memory`, `shared` (Redis as a second level) or `memory_fallback` (Redis away).
    pub mode: &'static str,
}

impl CacheHandle {
    /// Another handle on the same state, for one serving thread (see [`Forked`]).
    pub fn fork(&self) -> Self {
        Self(Arc::new(Arc::clone(&self.0)))
    }

    /// A cache for `route`; with `redis`, entries are shared through it.
    pub fn new(
        route: &str,
        rule: Rule,
        redis: Option<RedisLink>,
        clock: SharedClock,
    ) -> CacheHandle {
        // One bound in moka, two in the rule: each entry weighs at least max_bytes /
        // max_entries, so the byte bound also holds the count under max_entries.
        let floor = (rule.max_bytes / rule.max_entries.max(1)).max(1);
        let store = Cache::builder()
            .max_capacity(rule.max_bytes)
            .weigher(move |k: &Arc<str>, v: &Arc<Stored>| {
                ((k.len() + v.weight()) as u64).clamp(floor, u64::from(u32::MAX)) as u32
            })
            .expire_after(ServedFor)
            .build();
        CacheHandle(Arc::new(Arc::new(Shared {
            empty_bodies: rule
                .negative
                .empty_bodies
                .iter()
                .map(|b| Bytes::from(b.clone()))
                .collect(),
            second: redis.map(|link| SecondLevel::new(link, route)),
            rule,
            store,
            flights: Flights::default(),
            clock,
            counts: Counts::default(),
        })))
    }

    pub fn status(&self) -> CacheStatus {
        let s = &self.0;
        let c = &s.counts;
        CacheStatus {
            entries: s.store.entry_count(),
            bytes: s.store.weighted_size(),
            hits: c.hit.get(),
            negative_hits: c.negative_hit.get(),
            stale_hits: c.stale.get(),
            misses: c.miss.get(),
            shared_hits: c.shared_hit.get(),
            bypassed: c.bypass.get(),
            waited: c.waited.get(),
            gave_up_waiting: c.gave_up.get(),
            uncacheable: c.uncacheable.get(),
            mode: match &s.second {
                None => "memory",
                Some(l) if l.link().is_down() => "memory_fallback",
                Some(_) => "shared",
            },
        }
    }

    /// Whether a request may be answered from the cache at all: a GET that carries no
    /// credentials (RFC 9111 3.5: `Authorization`; and a session `Cookie` unless the rule
    /// says cookies do not matter), and no drill's colour (a drill's request must reach the
    /// service, and its answer, maybe from shadow stores, must not be given to others).
    fn takes(&self, req: &Request<Body>) -> bool {
        req.method() == Method::GET
            && !req.headers().contains_key(header::AUTHORIZATION)
            && (self.0.rule.with_cookies || !req.headers().contains_key(header::COOKIE))
            && req
                .extensions()
                .get::<crate::layer::colour::Coloured>()
                .is_none()
    }

    /// Answers a GET: from the entry while fresh (or stale, within stale-while-revalidate),
    /// else from a fill.
    async fn serve<S>(
        self,
        key: Arc<str>,
        req: Request<Body>,
        inner: S,
    ) -> Result<Response<Body>, BoxError>
    where
        S: Inner,
    {
        let s = &self.0;
        if let Some(e) = s.store.get(&key).await {
            let now = s.clock.now();
            if e.suits(&req) {
                match e.age(now) {
                    Age::Fresh => {
                        let counter = if e.negative {
                            &s.counts.negative_hit
                        } else {
                            &s.counts.hit
                        };
                        counter.inc();
                        return Ok(e.response(now, "HIT"));
                    }
                    Age::Stale => {
                        s.counts.stale.inc();
                        self.refresh(key, &e, &req, inner);
                        return Ok(e.response(now, "STALE"));
                    }
                    Age::Expired => {}
                }
            }
        }
        s.counts.miss.inc();
        if !s.rule.coalesce {
            return self.alone(&key, req, inner).await;
        }
        self.fill(key, req, inner).await
    }

    /// A miss, filled once for every request waiting on the key: the first goes to the
    /// service ([`flight`]), the others wait for what it stored up to `lock_timeout`, then
    /// go themselves.
    async fn fill<S>(
        &self,
        key: Arc<str>,
        req: Request<Body>,
        inner: S,
    ) -> Result<Response<Body>, BoxError>
    where
        S: Inner,
    {
        let s = &self.0;
        let filled = match s.flights.join(&key) {
            Turn::Lead(lead) => {
                // A fill that ended between this request's look and its turn.
                if let Some(e) = self.fresh(&key, &req).await {
                    lead.done(Some(e.clone()));
                    s.counts.waited.inc();
                    return Ok(e.response(s.clock.now(), "HIT"));
                }
                return match self.load(&key, req, inner).await {
                    Fetched::Stored(e) => {
                        s.store.insert(key.clone(), e.clone()).await;
                        lead.done(Some(e.clone()));
                        Ok(e.response(s.clock.now(), "MISS"))
                    }
                    Fetched::Passed(answer) => {
                        lead.done(None);
                        answer
                    }
                };
            }
            Turn::Wait(filled) => flight::wait(filled, s.rule.lock_timeout).await,
        };
        match filled.filter(|e| e.suits(&req)) {
            Some(e) => {
                s.counts.waited.inc();
                Ok(e.response(s.clock.now(), "HIT"))
            }
            None => {
                s.counts.gave_up.inc();
                self.alone(&key, req, inner).await
            }
        }
    }

    /// The key's entry if it may be given to `req` as fresh.
    async fn fresh(&self, key: &Arc<str>, req: &Request<Body>) -> Option<Arc<Stored>> {
        let e = self.0.store.get(key).await?;
        (e.age(self.0.clock.now()) == Age::Fresh && e.suits(req)).then_some(e)
    }

    /// The leader's fill: the second level's entry, or the service's answer, under the
    /// Redis lock when there is one.
    async fn load<S>(&self, key: &str, req: Request<Body>, inner: S) -> Fetched
    where
        S: Inner,
    {
        let s = &self.0;
        let Some(second) = &s.second else {
            return self.fetch(key, req, inner).await;
        };
        let fresh = |e: &Stored| e.age(s.clock.now()) == Age::Fresh && e.suits(&req);
        if let Some(e) = second.get(key, s.clock.now()).await.filter(|e| fresh(e)) {
            s.counts.shared_hit.inc();
            return Fetched::Stored(Arc::new(e));
        }
        match second.lock(key, s.rule.lock_timeout).await {
            Lock::Taken(token) => {
                let r = self.fetch(key, req, inner).await;
                second.unlock(key, token).await;
                r
            }
            Lock::Held => {
                let waited = second
                    .wait(key, s.rule.lock_timeout, || s.clock.now())
                    .await
                    .filter(|e| fresh(e));
                match waited {
                    Some(e) => {
                        s.counts.shared_hit.inc();
                        Fetched::Stored(Arc::new(e))
                    }
                    None => {
                        s.counts.gave_up.inc();
                        self.fetch(key, req, inner).await
                    }
                }
            }
            Lock::Unknown => self.fetch(key, req, inner).await,
        }
    }

    /// A request that goes to the service on its own (no coalescing, or a waiter that gave
    /// up); what can be stored is.
    async fn alone<S>(
        &self,
        key: &Arc<str>,
        req: Request<Body>,
        inner: S,
    ) -> Result<Response<Body>, BoxError>
    where
        S: Inner,
    {
        match self.fetch(key, req, inner).await {
            Fetched::Stored(e) => {
                self.0.store.insert(key.clone(), e.clone()).await;
                Ok(e.response(self.0.clock.now(), "MISS"))
            }
            Fetched::Passed(answer) => answer,
        }
    }

    /// Asks the service, and stores the answer (in the second level too) when it may be.
    async fn fetch<S>(&self, key: &str, req: Request<Body>, mut inner: S) -> Fetched
    where
        S: Inner,
    {
        let s = &self.0;
        let asked = req.headers().clone();
        let (head, body) = match inner.call(req).await {
            Ok(r) => r.into_parts(),
            Err(e) => return Fetched::Passed(Err(e)),
        };
        let declared = head
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let negative = match verdict(&s.rule, &head) {
            Some(n) if declared.is_none_or(|n| n <= s.rule.max_entry_bytes) => n,
            _ => {
                s.counts.uncacheable.inc();
                return Fetched::Passed(Ok(Response::from_parts(head, body)));
            }
        };
        let bytes = match read_body(body, s.rule.max_entry_bytes as usize).await {
            Read::Whole(b) => b,
            Read::Unstorable(b) | Read::Failed(b) => {
                s.counts.uncacheable.inc();
                return Fetched::Passed(Ok(Response::from_parts(head, b)));
            }
        };
        let negative = negative || s.empty_bodies.contains(&bytes);
        let now = s.clock.now();
        let e = Arc::new(self.stored(head, bytes, negative, &asked, now));
        if let Some(second) = &s.second {
            second.put(key, &e, now).await;
        }
        Fetched::Stored(e)
    }

    /// An entry for an answer, with its TTL drawn now.
    fn stored(
        &self,
        head: http::response::Parts,
        body: Bytes,
        negative: bool,
        asked: &http::HeaderMap,
        now: Instant,
    ) -> Stored {
        let rule = &self.0.rule;
        let (ttl, jitter) = match negative {
            true => (rule.negative.ttl, rule.negative.jitter),
            false => (rule.ttl, rule.jitter),
        };
        let jitter = Duration::from_millis(fastrand::u64(0..=jitter.as_millis() as u64));
        Stored {
            status: head.status,
            vary: vary_of(&head.headers, asked),
            headers: entry::kept_headers(head.headers),
            body,
            negative,
            stored_at: now,
            fresh_for: ttl + jitter,
            stale_for: rule.stale_while_revalidate,
            refreshing: AtomicBool::new(false),
        }
    }

    /// Fetches a stale entry again in the background, once.
    fn refresh<S>(&self, key: Arc<str>, e: &Arc<Stored>, req: &Request<Body>, inner: S)
    where
        S: Inner,
    {
        if e.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut again = Request::new(crate::layer::full(Bytes::new()));
        *again.uri_mut() = req.uri().clone();
        *again.headers_mut() = req.headers().clone();
        let me = self.clone();
        let old = e.clone();
        tokio::spawn(async move {
            match me.fetch(&key, again, inner).await {
                Fetched::Stored(new) => me.0.store.insert(key, new).await,
                // The next request tries again.
                Fetched::Passed(_) => old.refreshing.store(false, Ordering::Release),
            }
        });
    }
}

/// The service behind the cache, as its filling methods take it.
pub trait Inner:
    Service<Request<Body>, Response = Response<Body>, Error = BoxError, Future = Answering>
    + Send
    + 'static
{
}

impl<S> Inner for S where
    S: Service<Request<Body>, Response = Response<Body>, Error = BoxError, Future = Answering>
        + Send
        + 'static
{
}

/// Caches a service's answers to GET requests.
#[derive(Clone)]
pub struct CacheLayer {
    handle: CacheHandle,
}

impl CacheLayer {
    pub fn new(handle: CacheHandle) -> CacheLayer {
        CacheLayer { handle }
    }
}

impl Protection for CacheLayer {
    fn status(&self, out: &mut Vec<(&'static str, serde_json::Value)>) {
        out.push(("cache", json(&self.handle.status())));
    }

    fn samples(&self, out: &mut Vec<Sample>) {
        let s = self.handle.status();
        for (result, n) in [
            ("hit", s.hits),
            ("negative_hit", s.negative_hits),
            ("stale", s.stale_hits),
            ("miss", s.misses),
            ("shared_hit", s.shared_hits),
            ("bypass", s.bypassed),
        ] {
            out.push(Sample {
                metric: "cache_lookups",
                labels: vec![("result", result.into())],
                value: n as f64,
            });
        }
        for (outcome, n) in [("filled", s.waited), ("gave_up", s.gave_up_waiting)] {
            out.push(Sample {
                metric: "cache_waits",
                labels: vec![("outcome", outcome.into())],
                value: n as f64,
            });
        }
        out.push(Sample {
            metric: "cache_uncacheable",
            labels: Vec::new(),
            value: s.uncacheable as f64,
        });
        out.push(Sample {
            metric: "cache_entries",
            labels: Vec::new(),
            value: s.entries as f64,
        });
        out.push(Sample {
            metric: "cache_bytes",
            labels: Vec::new(),
            value: s.bytes as f64,
        });
        out.push(Sample {
            metric: "cache_redis_down",
            labels: Vec::new(),
            value: f64::from(u8::from(s.mode == "memory_fallback")),
        });
    }

    fn rejects(&self) -> &'static [RejectKind] {
        &[]
    }

    fn reads_headers(&self, out: &mut Vec<http::HeaderName>) {
        out.extend(self.handle.0.rule.key.headers().cloned());
    }
}

impl ProtectionLayer for CacheLayer {
    const METRICS: &'static [MetricDesc] = &[
        MetricDesc {
            name: "cache_lookups",
            help: "GET requests by what the cache did (hit, negative_hit, stale, miss, shared_hit, bypass), by route",
            kind: MetricKind::Counter,
        },
        MetricDesc {
            name: "cache_waits",
            help: "Requests that waited for another's fill of their key, by outcome (filled, gave_up), by route",
            kind: MetricKind::Counter,
        },
        MetricDesc {
            name: "cache_uncacheable",
            help: "Answers the cache could not store (status, Cache-Control, Set-Cookie, Vary: *, size), by route",
            kind: MetricKind::Counter,
        },
        MetricDesc {
            name: "cache_entries",
            help: "Entries in the cache's memory, by route",
            kind: MetricKind::Gauge,
        },
        MetricDesc {
            name: "cache_bytes",
            help: "Bytes the cache's memory holds (as weighed against max_bytes), by route",
            kind: MetricKind::Gauge,
        },
        MetricDesc {
            name: "cache_redis_down",
            help: "1 while the cache's second level (Redis) is away and the cache works in memory alone",
            kind: MetricKind::Gauge,
        },
    ];

    fn fork(&self) -> Self {
        CacheLayer::new(self.handle.fork())
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = CacheService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CacheService {
            inner,
            handle: self.handle.clone(),
        }
    }
}

#[derive(Clone)]
pub struct CacheService<S> {
    inner: S,
    handle: CacheHandle,
}

impl<S> Service<Request<Body>> for CacheService<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = BoxError, Future = Answering>
        + Clone
        + Send
        + 'static,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Answering;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        if !self.handle.takes(&req) {
            self.handle.0.counts.bypass.inc();
            return self.inner.call(req);
        }
        let key: Arc<str> = self.handle.0.rule.key.key(&req).into();
        let handle = self.handle.clone();
        let inner = self.inner.clone();
        Box::pin(handle.serve(key, req, inner))
    }
}
