//! [`BloomLayer`]: the first level of 5.2's defence against cache penetration. A Bloom filter
//! of the ids that exist answers a request for an id it has never seen with the route's 404,
//! without the service; an id it has seen (or one of its rare false positives) goes on.
//!
//! The filter is sized from the expected count and the false-positive rate configured (the
//! reference's fixed 2^24 bits and 3 hashes hold 1.4 million ids at 1%), and loaded from a
//! file, a URL or a Redis set. A Bloom filter cannot forget an id, so it is rebuilt whole in
//! the background every `reload_every` and swapped in atomically. A filter that cannot be
//! loaded lets every request through (it fails open) and says so: a log line, an event, a
//! metric. One too old (its rebuilds failing for `max_age`) lets everything through too: it
//! would turn away the ids created since.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use fastbloom::BloomFilter;
use http::{header, HeaderValue, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use tower::{Layer, Service};

use super::per_thread::Counter;
use super::{
    full, json, Answering, Body, BoxError, Degraded, Forked, MetricDesc, MetricKind, Problems,
    Protection, ProtectionLayer, RejectKind, Sample,
};
use crate::clock::SharedClock;
use crate::events::{Event, EventQueue, Reason};

/// `[routes.bloom]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Where the id is in a request.
    pub id: IdSpec,
    /// Where the valid ids come from, one per line (a file, a URL) or a Redis set's members.
    pub source: Source,
    #[serde(default = "default_expected")]
    pub expected_items: u64,
    #[serde(default = "default_fp")]
    pub false_positive_rate: f64,
    #[serde(default = "default_reload", with = "crate::layer::serde_duration")]
    pub reload_every: Duration,
    /// A filter not rebuilt for this long lets everything through (default: 3 reloads).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::layer::serde_duration::option"
    )]
    pub max_age: Option<Duration>,
    /// The 404's body and type: as the service answers an unknown id.
    #[serde(default = "default_body")]
    pub body: String,
    #[serde(default = "default_content_type")]
    pub content_type: String,
}

fn default_expected() -> u64 {
    1_000_000
}
fn default_fp() -> f64 {
    0.001
}
fn default_reload() -> Duration {
    Duration::from_secs(300)
}
fn default_body() -> String {
    "not found\n".into()
}
fn default_content_type() -> String {
    "text/plain; charset=utf-8".into()
}

impl Rule {
    /// What serde cannot check.
    pub fn problems(&self) -> Problems {
        let mut out: Problems = Vec::new();
        if !(self.false_positive_rate > 0.0 && self.false_positive_rate < 1.0) {
            out.push((
                vec!["false_positive_rate"],
                "more than 0 and less than 1".into(),
            ));
        }
        if self.expected_items == 0 {
            out.push((vec!["expected_items"], "at least 1".into()));
        }
        if self.reload_every.is_zero() {
            out.push((vec!["reload_every"], "more than 0".into()));
        }
        if HeaderValue::from_str(&self.content_type).is_err() {
            out.push((vec!["content_type"], "not a header value".into()));
        }
        out
    }

    fn max_age(&self) -> Duration {
        self.max_age.unwrap_or(self.reload_every * 3)
    }
}

/// Where a request's id is: `segment:N` (the path's Nth segment, from 1), `last_segment`,
/// `query:NAME` or `header:NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdSpec {
    Segment(usize),
    LastSegment,
    Query(String),
    Header(http::HeaderName),
}

impl std::str::FromStr for IdSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let expected =
            || format!("`{s}`: expected segment:N, last_segment, query:NAME or header:NAME");
        match s.split_once(':') {
            None if s == "last_segment" => Ok(IdSpec::LastSegment),
            Some(("segment", n)) => match n.parse::<usize>() {
                Ok(n) if n > 0 => Ok(IdSpec::Segment(n)),
                _ => Err(format!("`{s}`: segments count from 1")),
            },
            Some(("query", q)) if !q.is_empty() => Ok(IdSpec::Query(q.into())),
            Some(("header", h)) => http::HeaderName::from_bytes(h.as_bytes())
                .map(IdSpec::Header)
                .map_err(|_| format!("`{s}`: `{h}` is not a header name")),
            _ => Err(expected()),
        }
    }
}

impl std::fmt::Display for IdSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdSpec::Segment(n) => write!(f, "segment:{n}"),
            IdSpec::LastSegment => write!(f, "last_segment"),
            IdSpec::Query(q) => write!(f, "query:{q}"),
            IdSpec::Header(h) => write!(f, "header:{h}"),
        }
    }
}

impl IdSpec {
    /// The request's id, if it has one (a request without one is not the filter's to judge).
    pub fn of<'r, B>(&self, req: &'r Request<B>) -> Option<&'r str> {
        let mut segments = req.uri().path().split('/').filter(|s| !s.is_empty());
        let id = match self {
            IdSpec::Segment(n) => segments.nth(n - 1),
            IdSpec::LastSegment => segments.next_back(),
            IdSpec::Query(name) => req.uri().query().and_then(|q| {
                q.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v)
            }),
            IdSpec::Header(h) => req.headers().get(h).and_then(|v| v.to_str().ok()),
        };
        id.filter(|i| !i.is_empty())
    }
}

/// `file:PATH`, `http(s)://...` or `redis://HOST:PORT/set:NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(std::path::PathBuf),
    Url(String),
    RedisSet { url: String, set: String },
}

impl std::str::FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(p) = s.strip_prefix("file:").filter(|p| !p.is_empty()) {
            return Ok(Source::File(p.into()));
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            return Ok(Source::Url(s.into()));
        }
        if s.starts_with("redis://") || s.starts_with("rediss://") {
            if let Some((url, set)) = s.rsplit_once("/set:").filter(|(_, set)| !set.is_empty()) {
                return Ok(Source::RedisSet {
                    url: url.into(),
                    set: set.into(),
                });
            }
        }
        Err(format!(
            "`{s}`: expected file:PATH, an http(s) URL or redis://HOST:PORT/set:NAME"
        ))
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "file:{}", p.display()),
            Source::Url(u) => f.write_str(u),
            Source::RedisSet { url, set } => write!(f, "{url}/set:{set}"),
        }
    }
}

crate::layer::string_serde!(IdSpec);
crate::layer::string_serde!(Source);

// Named like the other layers' kinds.
#[allow(non_upper_case_globals)]
impl RejectKind {
    /// An id the filter has never seen: the route's 404. Counted against the user: a client
    /// asking for one unknown id after another is probing.
    pub const UnknownId: RejectKind =
        RejectKind::new("unknown_id", StatusCode::NOT_FOUND, Some("unknown_ids"));
}

/// A filter in force.
struct Loaded {
    filter: BloomFilter,
    items: u64,
    /// Share of the bits set.
    fill: f64,
    loaded_at: Instant,
}

impl Loaded {
    /// The false-positive rate the filter's fill gives: a random id finds all its k bits
    /// set with the probability fill^k.
    fn false_positive_rate(&self) -> f64 {
        self.fill.powi(self.filter.num_hashes() as i32)
    }
}

/// The filter of one route, shared by every clone of its service and kept across reloads
/// while the rule is unchanged. Its loader runs while the handle lives.
#[derive(Clone)]
pub struct BloomHandle(Forked<Shared>);

struct Shared {
    rule: Rule,
    /// The source with a relative file path resolved.
    source: Source,
    route: String,
    filter: ArcSwapOption<Loaded>,
    clock: SharedClock,
    events: Option<EventQueue>,
    rejected: Counter,
    passed: Counter,
    load_failures: AtomicU64,
}

/// What a status page shows of a filter.
#[derive(Debug, Clone, Serialize)]
pub struct BloomStatus {
    /// `loaded`, `loading` (nothing loaded yet: open), `stale` (too old: open).
    pub state: &'static str,
    pub items: u64,
    pub bits: u64,
    pub hashes: u32,
    pub fill_ratio: f64,
    pub false_positive_rate: f64,
    pub rejected: u64,
    pub passed: u64,
    pub load_failures: u64,
    pub loaded_seconds_ago: Option<f64>,
}

impl BloomHandle {
    /// Another handle on the same state, for one serving thread (see [`Forked`]).
    pub fn fork(&self) -> Self {
        Self(Arc::new(Arc::clone(&self.0)))
    }

    /// A filter for `route`, loading now and every `reload_every` in the background. Must
    /// run inside a tokio runtime.
    pub fn new(
        route: &str,
        rule: Rule,
        source: Source,
        clock: SharedClock,
        events: Option<EventQueue>,
    ) -> BloomHandle {
        let shared = Arc::new(Shared {
            rule,
            source,
            route: route.into(),
            filter: ArcSwapOption::empty(),
            clock,
            events,
            rejected: Counter::default(),
            passed: Counter::default(),
            load_failures: AtomicU64::new(0),
        });
        tokio::spawn(reload(Arc::downgrade(&shared)));
        BloomHandle(Arc::new(shared))
    }

    /// Whether the request may go on: `false` for an id the filter has never seen.
    fn admits<B>(&self, req: &Request<B>) -> bool {
        let s = &self.0;
        let Some(id) = s.rule.id.of(req) else {
            return true;
        };
        let guard = s.filter.load();
        let known = match guard.as_deref() {
            Some(f) if s.clock.now().saturating_duration_since(f.loaded_at) < s.rule.max_age() => {
                f.filter.contains(id)
            }
            // Nothing loaded, or too old: open.
            _ => true,
        };
        let counter = if known { &s.passed } else { &s.rejected };
        counter.inc();
        known
    }

    fn not_found(&self) -> Response<Body> {
        let rule = &self.0.rule;
        let mut r = Response::new(full(rule.body.clone()));
        *r.status_mut() = StatusCode::NOT_FOUND;
        if let Ok(v) = HeaderValue::from_str(&rule.content_type) {
            r.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        r.extensions_mut().insert(Degraded(RejectKind::UnknownId));
        r
    }

    pub fn status(&self) -> BloomStatus {
        let s = &self.0;
        let f = s.filter.load();
        let now = s.clock.now();
        let age = f
            .as_deref()
            .map(|f| now.saturating_duration_since(f.loaded_at));
        BloomStatus {
            state: match age {
                None => "loading",
                Some(a) if a >= s.rule.max_age() => "stale",
                Some(_) => "loaded",
            },
            items: f.as_deref().map_or(0, |f| f.items),
            bits: f.as_deref().map_or(0, |f| f.filter.num_bits() as u64),
            hashes: f.as_deref().map_or(0, |f| f.filter.num_hashes()),
            fill_ratio: f.as_deref().map_or(0.0, |f| f.fill),
            false_positive_rate: f.as_deref().map_or(0.0, Loaded::false_positive_rate),
            rejected: s.rejected.get(),
            passed: s.passed.get(),
            load_failures: s.load_failures.load(Ordering::Relaxed),
            loaded_seconds_ago: age.map(|a| a.as_secs_f64()),
        }
    }
}

/// Loads the filter now and every `reload_every`, until the handle is dropped.
async fn reload(shared: Weak<Shared>) {
    loop {
        let Some(s) = shared.upgrade() else { return };
        let every = s.rule.reload_every;
        match load(&s.source, &s.rule).await {
            Ok(loaded) => {
                let loaded = Loaded {
                    loaded_at: s.clock.now(),
                    ..loaded
                };
                tracing::info!(route = %s.route, items = loaded.items, fill = loaded.fill, "Bloom filter loaded");
                s.filter.store(Some(Arc::new(loaded)));
            }
            Err(e) => {
                s.load_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(route = %s.route, source = %s.source, error = %e, "cannot load the Bloom filter: unknown ids are not turned away");
                if let Some(q) = &s.events {
                    q.emit(Event::gateway(Reason::BloomUnavailable, &s.route));
                }
            }
        }
        drop(s);
        tokio::time::sleep(every).await;
    }
}

/// The ids of `source`, in a filter sized for them.
async fn load(source: &Source, rule: &Rule) -> Result<Loaded, String> {
    let ids = tokio::time::timeout(Duration::from_secs(60), read_ids(source))
        .await
        .map_err(|_| "no answer within 60 s".to_string())??;
    let expected = (rule.expected_items as usize).max(ids.len()).max(1);
    if ids.len() > rule.expected_items as usize {
        tracing::warn!(source = %source, items = ids.len(), expected = rule.expected_items, "more ids than expected_items: the filter is sized for them");
    }
    let mut filter = BloomFilter::with_false_pos(rule.false_positive_rate).expected_items(expected);
    for id in &ids {
        filter.insert(id.as_str());
    }
    let ones: u64 = filter.iter().map(|w| u64::from(w.count_ones())).sum();
    Ok(Loaded {
        fill: ones as f64 / filter.num_bits() as f64,
        items: ids.len() as u64,
        filter,
        loaded_at: Instant::now(),
    })
}

async fn read_ids(source: &Source) -> Result<Vec<String>, String> {
    let lines = |text: String| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect()
    };
    match source {
        Source::File(p) => tokio::fs::read_to_string(p)
            .await
            .map(lines)
            .map_err(|e| format!("{}: {e}", p.display())),
        Source::Url(url) => {
            let url = url.clone();
            let text = tokio::task::spawn_blocking(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(30)))
                    .build()
                    .into();
                agent
                    .get(&url)
                    .call()
                    .map_err(|e| e.to_string())?
                    .body_mut()
                    .with_config()
                    .limit(1 << 30)
                    .read_to_string()
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())??;
            Ok(lines(text))
        }
        Source::RedisSet { url, set } => members(url, set).await.map_err(|e| e.to_string()),
    }
}

/// A Redis set's members, read with SSCAN (never one SMEMBERS that blocks Redis).
async fn members(url: &str, set: &str) -> redis::RedisResult<Vec<String>> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut out = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, page): (u64, Vec<String>) = redis::cmd("SSCAN")
            .arg(set)
            .arg(cursor)
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut conn)
            .await?;
        out.extend(page);
        if next == 0 {
            return Ok(out);
        }
        cursor = next;
    }
}

/// Turns away requests for ids the filter has never seen.
#[derive(Clone)]
pub struct BloomLayer {
    handle: BloomHandle,
}

impl BloomLayer {
    pub fn new(handle: BloomHandle) -> BloomLayer {
        BloomLayer { handle }
    }
}

impl Protection for BloomLayer {
    fn status(&self, out: &mut Vec<(&'static str, serde_json::Value)>) {
        out.push(("bloom", json(&self.handle.status())));
    }

    fn samples(&self, out: &mut Vec<Sample>) {
        let s = self.handle.status();
        for (metric, value) in [
            ("bloom_rejected", s.rejected as f64),
            ("bloom_items", s.items as f64),
            ("bloom_fill_ratio", s.fill_ratio),
            ("bloom_false_positive_rate", s.false_positive_rate),
            ("bloom_load_failures", s.load_failures as f64),
            ("bloom_in_force", f64::from(u8::from(s.state == "loaded"))),
        ] {
            out.push(Sample {
                metric,
                labels: Vec::new(),
                value,
            });
        }
    }

    fn rejects(&self) -> &'static [RejectKind] {
        &[RejectKind::UnknownId]
    }

    fn reads_headers(&self, out: &mut Vec<http::HeaderName>) {
        if let IdSpec::Header(h) = &self.handle.0.rule.id {
            out.push(h.clone());
        }
    }
}

impl ProtectionLayer for BloomLayer {
    const METRICS: &'static [MetricDesc] = &[
        MetricDesc {
            name: "bloom_rejected",
            help: "Requests for ids the Bloom filter has never seen, answered 404 without the service, by route",
            kind: MetricKind::Counter,
        },
        MetricDesc {
            name: "bloom_items",
            help: "Ids in the Bloom filter in force, by route",
            kind: MetricKind::Gauge,
        },
        MetricDesc {
            name: "bloom_fill_ratio",
            help: "Share of the Bloom filter's bits set, by route",
            kind: MetricKind::Gauge,
        },
        MetricDesc {
            name: "bloom_false_positive_rate",
            help: "The false-positive rate the filter's fill gives (fill^hashes), by route",
            kind: MetricKind::Gauge,
        },
        MetricDesc {
            name: "bloom_load_failures",
            help: "Loads of the Bloom filter that failed (the route then lets unknown ids through), by route",
            kind: MetricKind::Counter,
        },
        MetricDesc {
            name: "bloom_in_force",
            help: "1 while a Bloom filter turns unknown ids away; 0 while it fails open (not loaded, or too old)",
            kind: MetricKind::Gauge,
        },
    ];

    fn fork(&self) -> Self {
        BloomLayer::new(self.handle.fork())
    }
}

impl<S> Layer<S> for BloomLayer {
    type Service = BloomService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        BloomService {
            inner,
            handle: self.handle.clone(),
        }
    }
}

#[derive(Clone)]
pub struct BloomService<S> {
    inner: S,
    handle: BloomHandle,
}

impl<S> Service<Request<Body>> for BloomService<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = BoxError, Future = Answering>,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Answering;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Answering {
        if self.handle.admits(&req) {
            return self.inner.call(req);
        }
        Box::pin(std::future::ready(Ok(self.handle.not_found())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_where_the_rule_says() {
        let r = Request::builder()
            .uri("/items/42/reviews?id=7")
            .header("x-id", "9")
            .body(())
            .unwrap();
        let id = |s: &str| s.parse::<IdSpec>().unwrap().of(&r).map(String::from);
        assert_eq!(id("segment:2").as_deref(), Some("42"));
        assert_eq!(id("last_segment").as_deref(), Some("reviews"));
        assert_eq!(id("query:id").as_deref(), Some("7"));
        assert_eq!(id("header:x-id").as_deref(), Some("9"));
        assert_eq!(id("segment:9"), None);
        assert!("segment:0".parse::<IdSpec>().is_err());
        assert!("ftp://x".parse::<Source>().is_err());
        assert!("redis://h:1/set:".parse::<Source>().is_err());
    }

    #[tokio::test]
    async fn a_filter_sized_for_its_rate_keeps_to_it() {
        let dir = std::env::temp_dir().join(format!("goguard-bloom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ids.txt");
        let ids: Vec<String> = (0..100_000).map(|i| format!("sku-{i}")).collect();
        std::fs::write(&path, ids.join("\n")).unwrap();
        let rule: Rule = toml::from_str(&format!(
            "id = \"last_segment\"\nsource = \"file:{}\"\nexpected_items = 100000\nfalse_positive_rate = 0.01",
            path.display()
        ))
        .unwrap();
        let f = load(&rule.source, &rule).await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(f.items, 100_000);
        assert!(
            ids.iter().all(|i| f.filter.contains(i.as_str())),
            "no false negative"
        );
        let false_pos = (0..100_000)
            .filter(|i| f.filter.contains(format!("other-{i}").as_str()))
            .count() as f64
            / 100_000.0;
        assert!(false_pos < 0.02, "measured {false_pos}");
        let estimated = f.false_positive_rate();
        assert!(
            estimated > 0.002 && estimated < 0.02,
            "estimated {estimated}"
        );
        assert!(f.fill > 0.3 && f.fill < 0.7, "fill {}", f.fill);
    }
}
