//! The gateway: a [`Stack`] built from one configuration, and the request path through it.
//!
//! A request first meets the front, the same for every route ([`handle`]): the checks of its
//! head ([`crate::inbound`]), the body limit ([`body`]) and the choice of its route. Its
//! route's stack does the rest ([`route`]): the route's protections over its upstream pool,
//! and around them what every route does (the record, the answers, the events about users,
//! the forwarding headers), each a layer in its own file.
//!
//! A reload builds a new `Stack` next to the running one, reusing the state of every breaker,
//! limiter, concurrency limit, upstream pool and event sink whose rule did not change, then
//! swaps it in atomically. A request holds the `Arc<Stack>` it started with until it ends.

mod answer;
mod body;
pub mod faults;
mod forward;
mod observe;
mod protections;
mod route;
mod user_events;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};

use crate::access_log::{AccessLog, AccessRecord};
use crate::clock::SharedClock;
use crate::config::{Config, KeySpec};
use crate::events::{self, AbuseDetector, EventQueue};
use crate::inbound::Inbound;
use crate::layer::{Body, BoxError, BreakerHandle, MetricDesc, Sample};
use crate::metrics::{Metrics, RequestMetrics, RouteReason, RouteStatus};
use crate::proxy::{match_route, Peer, TrustedProxies};
use crate::redis_link::{LinkRole, RedisLink};
use crate::shared_limits::SharedLimits;
use crate::upstream::{TargetStatus, UpstreamPool};
use answer::plain;
use body::{drain, BodyLimit};
use observe::Recorder;
use route::{Around, RouteStack, Routed};

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

/// The caches leave Redis alone for a quarter of a second after a failure, then twice as
/// long at each failure in a row, up to 8 s.
const CACHE_REDIS: LinkRole = LinkRole {
    name: "the cache's second level",
    lost: events::Reason::CacheRedisUnavailable,
    back: events::Reason::CacheRedisRecovered,
    pause: (Duration::from_millis(250), Duration::from_secs(8)),
};

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
    body_limit: BodyLimit,
    events: Kept<EventsPart>,
    shared_limits: Option<Kept<SharedLimits>>,
    /// The caches' link to Redis (their second level and fill lock).
    cache_redis: Option<Kept<RedisLink>>,
    access_log: Kept<AccessLog>,
    /// The record of the requests no route takes (route `-`).
    unrouted: Recorder,
    /// The faults switched on at run time, handed from each stack to the next.
    faults: Arc<faults::FaultBoard>,
}

/// A route's protections, for `/admin/status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RouteState {
    pub name: String,
    pub upstream: String,
    /// Each protection's entries (`breaker` and `breaker_scope`, `concurrency`, `limit`), in
    /// the order of its layer.
    #[serde(flatten)]
    pub protections: Entries,
}

/// Status entries, written as the fields of the object that holds them.
#[derive(Debug, Clone, Default)]
pub struct Entries(pub Vec<(&'static str, serde_json::Value)>);

impl serde::Serialize for Entries {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Stack {
    /// Builds the stack for `config`, taking over `previous`'s state where rules are
    /// unchanged. Must run inside a tokio runtime (health checks and Redis start here).
    /// `base` is the directory relative paths (fallback files, the events file) are read
    /// from; the routes record their requests into `metrics`.
    pub fn build(
        config: Config,
        previous: Option<&Stack>,
        base: &Path,
        clock: SharedClock,
        metrics: &RequestMetrics,
    ) -> Result<Stack, String> {
        Stack::build_with(config, previous, true, base, clock, metrics)
    }

    /// A stack to run beside `running` during a gray release: it shares the upstream pools,
    /// the event sink, the access log and the Redis links, but its protections (breakers,
    /// limits, caches) start with state of their own, so that the slice's traffic neither
    /// reads nor moves the rest's.
    pub fn build_beside(
        config: Config,
        running: &Stack,
        base: &Path,
        clock: SharedClock,
        metrics: &RequestMetrics,
    ) -> Result<Stack, String> {
        Stack::build_with(config, Some(running), false, base, clock, metrics)
    }

    /// Sends an event about the gateway to the sink.
    pub fn emit(&self, event: crate::events::Event) {
        self.events.value.queue.emit(event);
    }

    fn build_with(
        config: Config,
        previous: Option<&Stack>,
        take_over: bool,
        base: &Path,
        clock: SharedClock,
        metrics: &RequestMetrics,
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
        let cache_redis = match &config.redis {
            Some(r)
                if config
                    .routes
                    .iter()
                    .any(|rt| rt.cache.as_ref().is_some_and(|c| c.shared)) =>
            {
                Some(keep(
                    previous.and_then(|p| p.cache_redis.as_ref()),
                    r,
                    || {
                        Ok(RedisLink::new(
                            &r.url,
                            r.timeout,
                            CACHE_REDIS,
                            Some(events.value.queue.clone()),
                        ))
                    },
                )?)
            }
            _ => None,
        };
        let access_log = keep(
            previous.map(|p| &p.access_log),
            &config.server.access_log,
            || AccessLog::open(&config.server.access_log, base),
        )?;
        // The board goes on to every later stack, and to a gray release's: a drill's
        // faults apply to both versions.
        let faults = previous.map_or_else(Default::default, |p| p.faults.clone());
        let colour_key = match &config.colour {
            Some(c) => colour_key(c, &resolve)?,
            None => None,
        };
        let mut parts = protections::Parts {
            faults: &faults,
            colour: config.colour.as_ref().map(|c| (c, colour_key.as_deref())),
            fault_settings: &config.faults,
            previous: previous.filter(|_| take_over),
            pools: &pools,
            resolve: &resolve,
            clock: &clock,
            shared_limits: shared_limits.as_ref().map(|k| &k.value),
            cache_redis: cache_redis.as_ref(),
            events: &events.value.queue,
            upstream_breakers: BTreeMap::new(),
            shared_scope: if take_over {
                String::new()
            } else {
                format!("v{}/", previous.map_or(1, |p| p.version + 1))
            },
        };
        let around = Around {
            trusted: &trusted,
            events: &events.value,
            user_key: config.events.user.as_ref(),
            metrics,
            access_log: &access_log.value,
            clock: &clock,
        };
        let routes = config
            .routes
            .iter()
            .map(|r| RouteStack::build(r, &mut parts, &around))
            .collect::<Result<Vec<_>, _>>()?;
        let upstream_breakers = parts.upstream_breakers;
        let inbound = Inbound::new(
            relied_on_headers(&config, &routes),
            config.server.max_header_bytes,
        );
        Ok(Stack {
            inbound,
            body_limit: BodyLimit::new(config.server.max_body_bytes),
            unrouted: Recorder::unrouted(metrics, &access_log.value),
            version: previous.map_or(1, |p| p.version + 1),
            loaded_at: SystemTime::now(),
            config: Arc::new(config),
            routes,
            pools,
            upstream_breakers,
            trusted,
            events,
            shared_limits,
            cache_redis,
            access_log,
            faults,
        })
    }

    /// The faults switched on at run time.
    pub fn faults(&self) -> &faults::FaultBoard {
        &self.faults
    }

    /// The names of the routes, in order.
    pub fn route_names(&self) -> Vec<&str> {
        self.routes.iter().map(|r| r.rule.name.as_str()).collect()
    }

    pub fn route_states(&self) -> Vec<RouteState> {
        self.routes
            .iter()
            .map(|r| {
                let mut entries = Vec::new();
                for p in &r.protections {
                    p.status(&mut entries);
                }
                RouteState {
                    name: r.rule.name.clone(),
                    upstream: r.rule.upstream.clone(),
                    protections: Entries(entries),
                }
            })
            .collect()
    }

    /// The metrics the protections report (every route lists them all, had or not), and
    /// each route's values of them.
    pub fn protection_metrics(&self) -> (&[&'static MetricDesc], Vec<(String, Sample)>) {
        let descs = self.routes.first().map_or(&[][..], |r| &r.metrics[..]);
        let mut values = Vec::new();
        for r in &self.routes {
            let mut samples = Vec::new();
            for p in &r.protections {
                p.samples(&mut samples);
            }
            values.extend(samples.into_iter().map(|s| (r.rule.name.clone(), s)));
        }
        (descs, values)
    }

    /// Records a request refused before it could be read as one (no method, no path): in
    /// the metrics (route `-`, reason `malformed`) and the access log.
    pub fn refused(&self, metrics: &Metrics, client: std::net::IpAddr, status: u16) {
        let route = "-".to_string();
        metrics
            .request
            .requests
            .get_or_create(&RouteStatus {
                route: route.clone(),
                status,
            })
            .inc();
        metrics
            .request
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
}

/// The colour key's bytes: `key`, or `key_file`'s content without one trailing newline.
fn colour_key(
    c: &crate::config::Colour,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<Option<Vec<u8>>, String> {
    match (&c.key, &c.key_file) {
        (Some(k), _) => Ok(Some(k.as_bytes().to_vec())),
        (None, Some(p)) => {
            let path = resolve(p);
            let mut key = std::fs::read(&path)
                .map_err(|e| format!("colour.key_file: {}: {e}", path.display()))?;
            for end in [b'\n', b'\r'] {
                if key.last() == Some(&end) {
                    key.pop();
                }
            }
            if key.len() < crate::layer::colour::MIN_KEY_BYTES {
                return Err(format!(
                    "colour.key_file: {}: the key is shorter than {} bytes",
                    path.display(),
                    crate::layer::colour::MIN_KEY_BYTES
                ));
            }
            Ok(Some(key))
        }
        (None, None) => Ok(None),
    }
}

/// The headers a configuration routes, limits or names users on: a client may not have them
/// removed by naming them in `Connection` (see [`crate::inbound`]).
fn relied_on_headers(config: &Config, routes: &[RouteStack]) -> Vec<http::HeaderName> {
    let mut names: Vec<http::HeaderName> = config
        .events
        .user
        .iter()
        .filter_map(KeySpec::header)
        .collect();
    for r in routes {
        for p in &r.protections {
            p.reads_headers(&mut names);
        }
        names.extend(
            r.rule
                .headers
                .keys()
                .filter_map(|k| http::HeaderName::from_bytes(k.as_bytes()).ok()),
        );
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    names
}

/// What a request starts from: the running stack, and the metrics. Each serving thread
/// holds its own `Arc` of it (see [`crate::layer::Forked`]), swapped on reload.
pub struct Running {
    pub stack: Arc<Stack>,
    pub metrics: Arc<Metrics>,
    /// A new version being rolled out beside `stack` to a slice of the users.
    pub gray: Option<Arc<crate::gray::Rollout>>,
}

/// An answer the front gives itself, and why (for the record).
struct Refused {
    status: StatusCode,
    text: &'static str,
    reason: Option<&'static str>,
    /// Whether the connection closes after it (a head the gateway cannot trust).
    close: bool,
}

impl Refused {
    fn response(&self) -> Response<Body> {
        let mut r = plain(self.status, self.text);
        if self.close {
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        r
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
    // During a gray release the request's user decides which version serves it, whole.
    let gray = running.gray.as_ref().map(|g| {
        let client = running.stack.trusted.client_addr(peer.addr, req.headers());
        let user = g.user(&req, client.ip());
        let on_new = g.takes(&user);
        // Boxed: the request's future stays as small as without a gray release.
        Box::new((user, on_new, Instant::now()))
    });
    let stack = match (&running.gray, &gray) {
        (Some(g), Some(user)) if user.1 => &g.candidate,
        _ => &running.stack,
    };
    let mut record = Recorder::record(&stack.unrouted, peer.addr, req.method());
    // Host, path and headers settled first: everything below reads the request as the
    // upstream will receive it.
    let admitted = stack
        .inbound
        .admit(&mut req, stack.trusted.trusts(peer.addr.ip()));
    let client = stack.trusted.client_addr(peer.addr, req.headers());
    record.admitted(&req, client);
    let mut response = match stack.front(admitted, req) {
        Err(refused) => {
            record.reason = refused.reason;
            refused.response()
        }
        Ok((route, req)) => {
            // The route's stack records it from here, as its own.
            let (start, client, logged) = record.hand_over();
            let routed = Routed {
                req,
                peer,
                client,
                start,
                logged,
            };
            match route.call(routed).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    };
    // The gateway's own HTTP version and framing, never the upstream's (crate::codec).
    *response.version_mut() = http::Version::default();
    record.finish(response.status().as_u16());
    if let (Some(g), Some(user)) = (&running.gray, gray) {
        let (user, on_new, start) = *user;
        g.record(user, on_new, response.status().as_u16(), start.elapsed());
    }
    Ok(response)
}

impl Stack {
    /// The front: a request whose head was refused, whose declared body is too large or that
    /// no route takes is answered here; any other goes on, with the gateway's body, to its
    /// route.
    fn front<B>(
        &self,
        admitted: Result<(), crate::inbound::Refused>,
        req: Request<B>,
    ) -> Result<(&RouteStack, Request<Body>), Refused>
    where
        B: http_body::Body<Data = Bytes> + Send + Sync + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        if let Err(refused) = admitted {
            drain(req.into_body());
            return Err(Refused {
                status: refused.status,
                text: refused.reason,
                reason: Some("bad_request"),
                close: true,
            });
        }
        let req = self.body_limit.apply(req)?;
        match match_route(self.routes.iter().map(|r| &r.rule), &req) {
            Some((i, _)) => Ok((&self.routes[i], req)),
            None => Err(Refused {
                status: StatusCode::NOT_FOUND,
                text: "no route for this request",
                reason: None,
                close: false,
            }),
        }
    }
}
