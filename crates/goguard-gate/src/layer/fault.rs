//! Fault injection per route (5.3), as Envoy's fault filter does: a delay (fixed, or with
//! jitter), an abort with a status and a body, a reset of the connection, or a limit on the
//! answer's bandwidth, for coloured requests only ([`super::colour::Coloured`]) or for a
//! share of all of them.
//!
//! [`FaultLayer`] reads two lists: the route's static faults (its configuration) and the
//! faults switched on at run time ([`RouteFaults`], shared with whoever switches them, and
//! kept across reloads). Each expires on its own (`expires`), whether or not anyone removes
//! it. At most `max_active_faults` requests are faulted at once (per route, and over every
//! route); beyond that requests pass unfaulted, and are counted.
//!
//! A request meets at most one fault of each kind (the first that applies, in the order they
//! were switched on): the delay first, then an abort or a reset, else the answer at the
//! limited bandwidth. A route with no fault in force costs one atomic load per request.
//!
//! A reset is the one answer that is no answer: the service returns [`ResetConnection`] as
//! its error, and the server closes the connection without writing anything (with a TCP RST
//! on HTTP/1; on HTTP/2 the stream is reset).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use tower::{Layer, Service};

use super::colour::Coloured;
use super::{
    full, json, Answering, Body, BoxError, Degraded, MetricDesc, MetricKind, Problems, Protection,
    ProtectionLayer, RejectKind, Sample,
};

/// The longest delay a fault may add.
pub const MAX_DELAY: Duration = Duration::from_secs(300);
/// The longest body an abort may carry.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Delay,
    Abort,
    Reset,
    Bandwidth,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Delay, Kind::Abort, Kind::Reset, Kind::Bandwidth];

    /// `a delay`, `an abort`.
    fn with_article(self) -> &'static str {
        match self {
            Kind::Delay => "a delay",
            Kind::Abort => "an abort",
            Kind::Reset => "a reset",
            Kind::Bandwidth => "a bandwidth",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Delay => "delay",
            Kind::Abort => "abort",
            Kind::Reset => "reset",
            Kind::Bandwidth => "bandwidth",
        }
    }
}

/// One fault: `[[routes.faults]]` in the configuration, or the body of `POST /admin/faults`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub kind: Kind,
    /// `delay`: how long.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::layer::serde_duration::option"
    )]
    pub delay: Option<Duration>,
    /// `delay`: up to this much more, at random.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::layer::serde_duration::option"
    )]
    pub jitter: Option<Duration>,
    /// `abort`: the answer's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `abort`: the answer's body (text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// `bandwidth`: the answer's body at this many bytes a second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_second: Option<u64>,
    /// The share of the requests it applies to, in percent (of the coloured ones with
    /// `coloured_only`).
    #[serde(default = "hundred")]
    pub percent: f64,
    /// Only requests with a believed colour mark (the default: a drill's faults touch the
    /// drill's requests alone unless told otherwise).
    #[serde(default = "yes")]
    pub coloured_only: bool,
}

fn hundred() -> f64 {
    100.0
}
fn yes() -> bool {
    true
}

impl Rule {
    /// What serde cannot check: the fields its kind needs, and no field of another kind.
    pub fn problems(&self) -> Problems {
        let mut out: Problems = Vec::new();
        let mut needs = |field: &'static str, present: bool, kinds: &[Kind]| {
            let wanted = kinds.contains(&self.kind);
            if wanted && !present && field != "jitter" && field != "body" {
                out.push((
                    vec![field],
                    format!("{} fault needs `{field}`", self.kind.with_article()),
                ));
            }
            if !wanted && present {
                out.push((
                    vec![field],
                    format!(
                        "not for {} fault (only for {})",
                        self.kind.with_article(),
                        kinds
                            .iter()
                            .map(|k| k.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        };
        needs("delay", self.delay.is_some(), &[Kind::Delay]);
        needs("jitter", self.jitter.is_some(), &[Kind::Delay]);
        needs("status", self.status.is_some(), &[Kind::Abort]);
        needs("body", self.body.is_some(), &[Kind::Abort]);
        needs(
            "bytes_per_second",
            self.bytes_per_second.is_some(),
            &[Kind::Bandwidth],
        );
        let delay = self.delay.unwrap_or_default() + self.jitter.unwrap_or_default();
        if delay > MAX_DELAY || (self.kind == Kind::Delay && delay.is_zero()) {
            out.push((
                vec!["delay"],
                "more than 0, and with the jitter at most 5m".into(),
            ));
        }
        if let Some(s) = self.status {
            if !(200..=599).contains(&s) {
                out.push((vec!["status"], format!("{s}: a status from 200 to 599")));
            }
        }
        if self.body.as_ref().is_some_and(|b| b.len() > MAX_BODY_BYTES) {
            out.push((vec!["body"], "at most 64 KiB".into()));
        }
        if self.bytes_per_second == Some(0) {
            out.push((vec!["bytes_per_second"], "at least 1".into()));
        }
        if !(0.0..=100.0).contains(&self.percent) {
            out.push((vec!["percent"], "from 0 to 100".into()));
        }
        out
    }
}

/// A fault's error: the server must close the connection without an answer.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("fault injected: the connection is reset")]
pub struct ResetConnection;

// Named like the other layers' kinds.
#[allow(non_upper_case_globals)]
impl RejectKind {
    /// An answer given by an abort fault instead of the service's.
    pub const FaultAbort: RejectKind =
        RejectKind::new("fault_abort", StatusCode::SERVICE_UNAVAILABLE, None);
}

/// A fault in force.
#[derive(Debug)]
pub struct Fault {
    /// `f1`, or `ROUTE/INDEX` (`orders/0`) for one of the configuration.
    pub id: String,
    pub rule: Rule,
    /// When it was switched on.
    pub created: SystemTime,
    /// When it ends by itself (`None`: with its configuration).
    pub expires: Option<(Instant, SystemTime)>,
    applied: AtomicU64,
}

impl Fault {
    pub fn new(id: String, rule: Rule, ttl: Option<Duration>) -> Fault {
        let created = SystemTime::now();
        Fault {
            id,
            rule,
            created,
            expires: ttl.map(|t| (Instant::now() + t, created + t)),
            applied: AtomicU64::new(0),
        }
    }

    /// The requests it has been applied to.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    pub fn expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|(at, _)| now >= at)
    }

    /// As the admin API and the status page show it.
    pub fn to_json(&self, route: &str) -> serde_json::Value {
        let mut v = json(&self.rule);
        if let Some(o) = v.as_object_mut() {
            o.insert("id".into(), self.id.clone().into());
            o.insert("route".into(), route.into());
            o.insert(
                "created_at".into(),
                humantime::format_rfc3339_seconds(self.created)
                    .to_string()
                    .into(),
            );
            if let Some((_, wall)) = self.expires {
                o.insert(
                    "expires_at".into(),
                    humantime::format_rfc3339_seconds(wall).to_string().into(),
                );
            }
            o.insert("applied".into(), self.applied().into());
        }
        v
    }
}

/// A route's faults switched on at run time, and its counts: shared by every stack that has
/// the route (across reloads) and by whoever switches them.
#[derive(Default)]
pub struct RouteFaults {
    dynamic: ArcSwap<Vec<Arc<Fault>>>,
    /// How many are in `dynamic`: the one load a request pays when it is 0.
    count: AtomicUsize,
    /// Changes one at a time (a load and a store of `dynamic`).
    writing: Mutex<()>,
    /// Requests being faulted now.
    active: AtomicUsize,
    applied: [AtomicU64; 4],
    skipped: AtomicU64,
}

impl RouteFaults {
    pub fn new() -> Arc<RouteFaults> {
        Arc::default()
    }

    /// The faults switched on, expired ones included until they are swept.
    pub fn list(&self) -> Arc<Vec<Arc<Fault>>> {
        self.dynamic.load_full()
    }

    pub fn add(&self, fault: Arc<Fault>) {
        self.change(|v| {
            v.push(fault);
            Vec::new()
        });
    }

    /// Removes the faults `which` picks; returns them.
    pub fn remove(&self, which: impl Fn(&Fault) -> bool) -> Vec<Arc<Fault>> {
        self.change(|v| {
            let (gone, kept) = v.drain(..).partition(|f| which(f));
            *v = kept;
            gone
        })
    }

    fn change(&self, f: impl FnOnce(&mut Vec<Arc<Fault>>) -> Vec<Arc<Fault>>) -> Vec<Arc<Fault>> {
        let _one = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let mut v = (*self.dynamic.load_full()).clone();
        let out = f(&mut v);
        self.count.store(v.len(), Ordering::Release);
        self.dynamic.store(Arc::new(v));
        out
    }
}

/// How many requests may be faulted at once: a count and its bound.
#[derive(Clone)]
pub struct Bound {
    pub active: Arc<AtomicUsize>,
    pub max: usize,
}

impl Bound {
    fn take(&self) -> bool {
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }
}

/// A request's place among the faulted ones, given back when dropped.
struct Active {
    route: Arc<RouteFaults>,
    global: Arc<AtomicUsize>,
}

impl Drop for Active {
    fn drop(&mut self) {
        self.route.active.fetch_sub(1, Ordering::AcqRel);
        self.global.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Injects a route's faults.
#[derive(Clone)]
pub struct FaultLayer {
    statics: Arc<[Arc<Fault>]>,
    route: Arc<RouteFaults>,
    /// The route's bound (`max_active_faults`), on `route.active`.
    route_max: usize,
    /// The bound over every route.
    global: Bound,
}

impl FaultLayer {
    /// `statics` are the route's configured faults; `route` its run-time ones and counts.
    pub fn new(
        statics: Vec<Rule>,
        route_name: &str,
        route: Arc<RouteFaults>,
        route_max: Option<usize>,
        global: Bound,
    ) -> FaultLayer {
        let statics = statics
            .into_iter()
            .enumerate()
            .map(|(i, r)| Arc::new(Fault::new(format!("{route_name}/{i}"), r, None)))
            .collect();
        FaultLayer {
            statics,
            route,
            route_max: route_max.unwrap_or(usize::MAX),
            global,
        }
    }

    fn take_slot(&self) -> Option<Active> {
        let r = &self.route;
        let ok = r
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.route_max).then_some(n + 1)
            })
            .is_ok();
        if !ok {
            return None;
        }
        if !self.global.take() {
            r.active.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Active {
            route: r.clone(),
            global: self.global.active.clone(),
        })
    }
}

impl Protection for FaultLayer {
    fn status(&self, out: &mut Vec<(&'static str, serde_json::Value)>) {
        let now = Instant::now();
        let r = &self.route;
        let in_force: Vec<_> = self
            .statics
            .iter()
            .map(|f| (f, "config"))
            .chain(r.list().iter().map(|f| (f, "admin")))
            .filter(|(f, _)| !f.expired(now))
            .map(|(f, source)| {
                let mut v = f.to_json("");
                if let Some(o) = v.as_object_mut() {
                    o.remove("route");
                    o.insert("source".into(), source.into());
                }
                v
            })
            .collect();
        let applied: serde_json::Map<_, _> = Kind::ALL
            .iter()
            .zip(&r.applied)
            .map(|(k, n)| (k.as_str().to_string(), n.load(Ordering::Relaxed).into()))
            .collect();
        out.push((
            "faults",
            serde_json::json!({
                "in_force": in_force,
                "active": r.active.load(Ordering::Relaxed),
                "applied": applied,
                "skipped_max_active": r.skipped.load(Ordering::Relaxed),
            }),
        ));
    }

    fn samples(&self, out: &mut Vec<Sample>) {
        let r = &self.route;
        for (k, n) in Kind::ALL.iter().zip(&r.applied) {
            out.push(Sample {
                metric: "faults_applied",
                labels: vec![("kind", k.as_str().into())],
                value: n.load(Ordering::Relaxed) as f64,
            });
        }
        out.push(Sample {
            metric: "faults_active",
            labels: Vec::new(),
            value: r.active.load(Ordering::Relaxed) as f64,
        });
        out.push(Sample {
            metric: "faults_skipped",
            labels: vec![("reason", "max_active".into())],
            value: r.skipped.load(Ordering::Relaxed) as f64,
        });
        let now = Instant::now();
        let in_force = self.statics.iter().filter(|f| !f.expired(now)).count()
            + r.list().iter().filter(|f| !f.expired(now)).count();
        out.push(Sample {
            metric: "faults_in_force",
            labels: Vec::new(),
            value: in_force as f64,
        });
    }

    fn rejects(&self) -> &'static [RejectKind] {
        &[RejectKind::FaultAbort]
    }
}

impl ProtectionLayer for FaultLayer {
    const METRICS: &'static [MetricDesc] = &[
        MetricDesc {
            name: "faults_applied",
            help: "Requests a fault was applied to, by kind (delay, abort, reset, bandwidth), by route",
            kind: MetricKind::Counter,
        },
        MetricDesc {
            name: "faults_active",
            help: "Requests being faulted now (a delay or a slowed answer in progress), by route",
            kind: MetricKind::Gauge,
        },
        MetricDesc {
            name: "faults_skipped",
            help: "Requests a fault would have applied to that passed unfaulted (reason max_active: max_active_faults reached), by route",
            kind: MetricKind::Counter,
        },
        MetricDesc {
            name: "faults_in_force",
            help: "Faults switched on (configured or through the admin API, not expired), by route",
            kind: MetricKind::Gauge,
        },
    ];

    fn fork(&self) -> Self {
        self.clone()
    }
}

impl<S> Layer<S> for FaultLayer {
    type Service = FaultService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        FaultService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct FaultService<S> {
    inner: S,
    layer: FaultLayer,
}

/// The faults a request meets, at most one of each.
#[derive(Default)]
struct Chosen {
    delay: Option<Duration>,
    /// An abort's answer, or a reset (`None` inside).
    end: Option<Option<(StatusCode, Bytes)>>,
    bandwidth: Option<u64>,
}

impl<S> Service<Request<Body>> for FaultService<S>
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

    fn call(&mut self, req: Request<Body>) -> Answering {
        let l = &self.layer;
        // The common case: nothing in force, one load.
        if l.statics.is_empty() && l.route.count.load(Ordering::Acquire) == 0 {
            return self.inner.call(req);
        }
        let dynamic = l.route.dynamic.load();
        let coloured = req.extensions().get::<Coloured>().is_some();
        let now = Instant::now();
        let mut chosen = Chosen::default();
        let mut hits: Vec<&Arc<Fault>> = Vec::new();
        for f in l.statics.iter().chain(dynamic.iter()) {
            let r = &f.rule;
            if f.expired(now) || (r.coloured_only && !coloured) {
                continue;
            }
            let taken = match r.kind {
                Kind::Delay => chosen.delay.is_some(),
                Kind::Abort | Kind::Reset => chosen.end.is_some(),
                Kind::Bandwidth => chosen.bandwidth.is_some(),
            };
            if taken || (r.percent < 100.0 && fastrand::f64() * 100.0 >= r.percent) {
                continue;
            }
            match r.kind {
                Kind::Delay => {
                    let jitter = r.jitter.unwrap_or_default().mul_f64(fastrand::f64());
                    chosen.delay = Some(r.delay.unwrap_or_default() + jitter);
                }
                Kind::Abort => {
                    let status = r
                        .status
                        .and_then(|s| StatusCode::from_u16(s).ok())
                        .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                    let body = r.body.clone().unwrap_or_else(|| "fault injected\n".into());
                    chosen.end = Some(Some((status, Bytes::from(body))));
                }
                Kind::Reset => chosen.end = Some(None),
                Kind::Bandwidth => chosen.bandwidth = r.bytes_per_second,
            }
            hits.push(f);
        }
        if hits.is_empty() {
            return self.inner.call(req);
        }
        let Some(slot) = l.take_slot() else {
            l.route.skipped.fetch_add(1, Ordering::Relaxed);
            return self.inner.call(req);
        };
        for f in hits {
            f.applied.fetch_add(1, Ordering::Relaxed);
            l.route.applied[f.rule.kind as usize].fetch_add(1, Ordering::Relaxed);
        }
        drop(dynamic);
        // The inner service is called after the delay: the protections inside decide when
        // called, and must decide on the request as it arrives after it.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            if let Some(d) = chosen.delay {
                tokio::time::sleep(d).await;
            }
            match chosen.end {
                Some(Some((status, body))) => {
                    let mut r = Response::new(full(body));
                    *r.status_mut() = status;
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; charset=utf-8"),
                    );
                    r.extensions_mut().insert(Degraded(RejectKind::FaultAbort));
                    return Ok(r);
                }
                Some(None) => return Err(ResetConnection.into()),
                None => {}
            }
            let Some(bps) = chosen.bandwidth else {
                drop(slot);
                return inner.call(req).await;
            };
            let resp = inner.call(req).await?;
            Ok(resp.map(|b| Throttled::new(b, bps, slot).boxed()))
        })
    }
}

pin_project_lite::pin_project! {
    /// A body given at most `bps` bytes a second, in slices of a tenth of a second's worth;
    /// it holds the request's place among the faulted ones until it ends.
    struct Throttled {
        #[pin]
        body: Body,
        bps: u64,
        start: Option<tokio::time::Instant>,
        sent: u64,
        pending: Option<Bytes>,
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
        slot: Option<Active>,
    }
}

impl Throttled {
    fn new(body: Body, bps: u64, slot: Active) -> Throttled {
        Throttled {
            body,
            bps: bps.max(1),
            start: None,
            sent: 0,
            pending: None,
            sleep: None,
            slot: Some(slot),
        }
    }
}

impl http_body::Body for Throttled {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            if let Some(s) = this.sleep.as_mut() {
                std::task::ready!(s.as_mut().poll(cx));
                *this.sleep = None;
            }
            let mut data = match this.pending.take() {
                Some(d) => d,
                None => match std::task::ready!(this.body.as_mut().poll_frame(cx)) {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(d) if !d.is_empty() => d,
                        Ok(d) => return Poll::Ready(Some(Ok(Frame::data(d)))),
                        Err(other) => return Poll::Ready(Some(Ok(other))),
                    },
                    other => {
                        // The end (or an error): the request is no longer faulted.
                        this.slot.take();
                        return Poll::Ready(other);
                    }
                },
            };
            let now = tokio::time::Instant::now();
            let start = *this.start.get_or_insert(now);
            // The next byte may go once the bytes sent have had their time.
            let due = start + Duration::from_secs_f64(*this.sent as f64 / *this.bps as f64);
            if now < due {
                *this.pending = Some(data);
                *this.sleep = Some(Box::pin(tokio::time::sleep_until(due)));
                continue;
            }
            let slice = (*this.bps / 10).clamp(1, 64 * 1024) as usize;
            let out = data.split_to(slice.min(data.len()));
            if !data.is_empty() {
                *this.pending = Some(data);
            }
            *this.sent += out.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(out))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_none() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.body.size_hint();
        if let Some(p) = &self.pending {
            let n = p.len() as u64;
            hint.set_lower(hint.lower() + n);
            if let Some(u) = hint.upper() {
                hint.set_upper(u + n);
            }
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> Rule {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn each_kind_needs_its_fields_and_no_other() {
        assert!(
            rule("kind = \"delay\"\ndelay = \"200ms\"\njitter = \"50ms\"")
                .problems()
                .is_empty()
        );
        let p = rule("kind = \"delay\"").problems();
        assert!(p
            .iter()
            .any(|(f, m)| f == &["delay"] && m == "a delay fault needs `delay`"));
        let p = rule("kind = \"abort\"\nstatus = 503\ndelay = \"1s\"").problems();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].1.contains("not for an abort fault"), "{p:?}");
        assert!(!rule("kind = \"abort\"\nstatus = 99").problems().is_empty());
        assert!(!rule("kind = \"bandwidth\"\nbytes_per_second = 0")
            .problems()
            .is_empty());
        assert!(rule("kind = \"reset\"\npercent = 0.0")
            .problems()
            .is_empty());
        assert!(!rule("kind = \"reset\"\npercent = -1.0")
            .problems()
            .is_empty());
        assert!(!rule("kind = \"reset\"\npercent = 101.0")
            .problems()
            .is_empty());
        assert!(toml::from_str::<Rule>("kind = \"explode\"").is_err());
        let r = rule("kind = \"reset\"");
        assert!(r.coloured_only && r.percent == 100.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_body_takes_its_time() {
        let route = RouteFaults::new();
        let global = Arc::new(AtomicUsize::new(1));
        route.active.store(1, Ordering::Relaxed);
        let slot = Active {
            route: route.clone(),
            global: global.clone(),
        };
        let body = full(vec![b'x'; 1000]);
        let start = tokio::time::Instant::now();
        let t = Throttled::new(body, 500, slot);
        assert_eq!(http_body::Body::size_hint(&t).exact(), Some(1000));
        let got = t.collect().await.unwrap().to_bytes();
        assert_eq!(got.len(), 1000);
        // 20 slices of 50 bytes, the last one due at 950 bytes / 500 per second.
        assert_eq!(start.elapsed(), Duration::from_millis(1900));
        assert_eq!(global.load(Ordering::Relaxed), 0, "the slot is given back");
        assert_eq!(route.active.load(Ordering::Relaxed), 0);
    }
}
