//! [`BreakerLayer`]: the circuit breaker of 5.1 around any service. Calls are counted in the
//! breaker's window by outcome; while it is open, requests go to the fallback service when
//! there is one, or fail at once with [`Rejected`] (`breaker_open`).
//!
//! The busy path shares no lock between threads: a closed breaker admits on a flag, and
//! counts successes per thread; the window is checked, under the breaker's lock,
//! at each call that fails or is slow.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

use super::per_thread::PerThread;
use super::{
    json, BoxError, Degraded, FailureKind, MetricDesc, MetricKind, Problems, Protection,
    ProtectionLayer, RejectKind, Rejected, Sample, UpstreamError,
};
use crate::breaker::{BucketClock, CircuitBreaker, Outcome, State, Window};
use crate::clock::SharedClock;

/// 5.1: trips only when the window holds enough traffic AND the error (or slow) ratio is
/// reached.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default = "default_window", with = "crate::layer::serde_duration")]
    pub window: Duration,
    /// Time buckets in the window.
    #[serde(default = "default_buckets")]
    pub buckets: u32,
    /// The throughput floor, in requests per second over the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_rps: Option<f64>,
    /// The floor as a request count over the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_ratio: Option<f64>,
    /// A call slower than this counts as slow.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::layer::serde_duration::option"
    )]
    pub slow_call: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_ratio: Option<f64>,
    #[serde(default = "default_open_for", with = "crate::layer::serde_duration")]
    pub open_for: Duration,
    /// When set, each consecutive trip doubles `open_for` up to this.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::layer::serde_duration::option"
    )]
    pub open_for_max: Option<Duration>,
    #[serde(default = "default_probes")]
    pub half_open_probes: u32,
    #[serde(default)]
    pub errors: ErrorClasses,
    /// `route` (default): this route's own breaker. `upstream`: one breaker for the upstream,
    /// shared by every route that sends to it with the same rule.
    #[serde(default)]
    pub scope: Scope,
}

impl Rule {
    /// Whether a call that took `latency` counts as slow.
    pub fn is_slow(&self, latency: Duration) -> bool {
        self.slow_call.is_some_and(|s| latency > s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    #[default]
    Route,
    Upstream,
}

fn default_window() -> Duration {
    Duration::from_secs(30)
}
fn default_buckets() -> u32 {
    10
}
fn default_open_for() -> Duration {
    Duration::from_secs(10)
}
fn default_probes() -> u32 {
    5
}

/// What counts as an error for the breaker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ErrorClasses {
    pub status_5xx: bool,
    pub timeouts: bool,
    pub connect_failures: bool,
    /// Extra statuses counted as errors (4xx and 429 are not, by default).
    pub statuses: Vec<u16>,
}

impl Default for ErrorClasses {
    fn default() -> Self {
        ErrorClasses {
            status_5xx: true,
            timeouts: true,
            connect_failures: true,
            statuses: Vec::new(),
        }
    }
}

impl Rule {
    /// What serde cannot check: a breaker that could never trip or never close again.
    pub fn problems(&self) -> Problems {
        let mut out: Problems = Vec::new();
        if self.error_ratio.is_none() && self.slow_ratio.is_none() {
            out.push((
                vec![],
                "set error_ratio, slow_ratio or both: otherwise it never trips".into(),
            ));
        }
        for (key, v) in [
            ("error_ratio", self.error_ratio),
            ("slow_ratio", self.slow_ratio),
        ] {
            if v.is_some_and(|v| !(v > 0.0 && v <= 1.0)) {
                out.push((vec![key], "must be more than 0 and at most 1".into()));
            }
        }
        if self.slow_ratio.is_some() != self.slow_call.is_some() {
            out.push((
                vec!["slow_call"],
                "slow_call and slow_ratio go together".into(),
            ));
        }
        if self.min_rps.is_none() && self.min_requests.is_none() {
            out.push((
                vec![],
                "set min_rps or min_requests: without a traffic floor a quiet hour's single error trips it (5.1)".into(),
            ));
        }
        if self.buckets == 0 || self.window.is_zero() {
            out.push((
                vec!["window"],
                "the window needs a length and at least one bucket".into(),
            ));
        }
        if self.half_open_probes == 0 {
            out.push((vec!["half_open_probes"], "at least one probe".into()));
        }
        if self.open_for_max.is_some_and(|m| m < self.open_for) {
            out.push((vec!["open_for_max"], "must be at least open_for".into()));
        }
        out
    }
}

// Named like the variant of the enum it once was.
#[allow(non_upper_case_globals)]
impl RejectKind {
    /// The breaker is open: without a fallback the request is refused; with one, the
    /// fallback's answer is marked [`Degraded`] with this kind.
    pub const BreakerOpen: RejectKind = RejectKind::new(
        "breaker_open",
        StatusCode::SERVICE_UNAVAILABLE,
        Some("breaker_open"),
    );
}

/// The breaker's state, shared by every clone of the service and kept across reloads while
/// its rule is unchanged.
#[derive(Clone)]
pub struct BreakerHandle(crate::layer::Forked<Shared>);

struct Shared {
    breaker: Mutex<CircuitBreaker>,
    /// Successes of a closed breaker, counted by each thread on a line of its own
    /// and carried into the breaker's window when the thread moves to the next bucket, or
    /// when the window is read (at a failure, for the status page): most calls succeed,
    /// and a lock shared by all threads on each would bounce between them.
    successes: PerThread<Mutex<Successes>>,
    /// The breaker's buckets, for counting a success without its lock.
    buckets: BucketClock,
    /// Whether the breaker was closed when last left: a closed breaker admits every
    /// request, so admission reads this instead of taking the lock shared by all threads.
    closed: AtomicBool,
    clock: SharedClock,
    /// The breaker's rule: what counts as an error, what as slow.
    rule: Rule,
    /// Transitions into closed, open and half-open.
    transitions: [AtomicU64; 3],
    rejected: AtomicU64,
}

/// One thread's successes in one bucket of the window.
#[derive(Default)]
struct Successes {
    bucket: u64,
    count: u64,
}

/// What a status page shows of a breaker.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BreakerStatus {
    /// `closed`, `open` or `half_open`.
    pub state: &'static str,
    /// Seconds until an open breaker half-opens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opens_in_seconds: Option<f64>,
    pub window_requests: u64,
    pub window_errors: u64,
    pub window_slow: u64,
    pub error_ratio: f64,
    pub transitions_to_open: u64,
    pub transitions_to_half_open: u64,
    pub transitions_to_closed: u64,
    pub rejected: u64,
}

fn state_index(s: State) -> usize {
    match s {
        State::Closed => 0,
        State::Open { .. } => 1,
        State::HalfOpen { .. } => 2,
    }
}

/// The state's name, as in metrics and status (`closed`, `open`, `half_open`).
pub fn state_name(s: State) -> &'static str {
    ["closed", "open", "half_open"][state_index(s)]
}

impl BreakerHandle {
    /// Another handle on the same state, for one serving thread (see [`crate::layer::Forked`]).
    pub fn fork(&self) -> Self {
        Self(Arc::new(Arc::clone(&self.0)))
    }

    pub fn new(rule: Rule, clock: SharedClock) -> BreakerHandle {
        let breaker = CircuitBreaker::new(rule.clone(), clock.now());
        BreakerHandle(Arc::new(Arc::new(Shared {
            buckets: breaker.bucket_clock(),
            rule,
            breaker: Mutex::new(breaker),
            successes: PerThread::default(),
            closed: AtomicBool::new(true),
            clock,
            transitions: Default::default(),
            rejected: AtomicU64::new(0),
        })))
    }

    /// Runs `f` on the breaker, its window holding every success counted so far, and counts
    /// the transition it made, if any.
    fn with<T>(&self, f: impl FnOnce(&mut CircuitBreaker, std::time::Instant) -> T) -> T {
        let now = self.0.clock.now();
        let mut b = self.0.breaker.lock().unwrap_or_else(|e| e.into_inner());
        // The breaker's lock, then each shard's: the success path never holds both.
        for shard in self.0.successes.iter() {
            let mut s = shard.lock().unwrap_or_else(|e| e.into_inner());
            if s.count > 0 {
                b.add_successes(s.bucket, s.count, now);
                s.count = 0;
            }
        }
        let before = state_index(b.stored_state());
        let out = f(&mut b, now);
        let after = state_index(b.state(now));
        if before != after {
            self.0.transitions[after].fetch_add(1, Ordering::Relaxed);
            self.0.closed.store(after == 0, Ordering::Release);
        }
        out
    }

    /// Admits a request (the time it was admitted, to measure it from), or says how long
    /// until the breaker lets requests through again.
    pub fn admit(&self) -> Result<std::time::Instant, Duration> {
        if self.0.closed.load(Ordering::Acquire) {
            return Ok(self.0.clock.now());
        }
        self.with(|b, now| {
            if b.admit(now) {
                Ok(now)
            } else {
                match b.state(now) {
                    State::Open { until } => Err(until - now),
                    _ => Err(Duration::from_secs(1)),
                }
            }
        })
    }

    /// Records the outcome of a request admitted at `start`.
    fn record(&self, outcome: Option<Outcome>, start: std::time::Instant) {
        if self.0.closed.load(Ordering::Acquire) {
            match outcome {
                // Only a half-open breaker has probe slots to give back.
                None => return,
                Some(Outcome::Success) if self.count_success(start) => return,
                _ => {}
            }
        }
        self.with(|b, now| match outcome {
            Some(o) => b.record(now, o, now.saturating_duration_since(start)),
            None => b.cancel_probe(),
        })
    }

    /// Counts a success of a closed breaker in the thread's own shard; `false` when the
    /// call was slow (the window must then be checked, under the lock).
    fn count_success(&self, start: std::time::Instant) -> bool {
        let now = self.0.clock.now();
        if self.0.rule.is_slow(now.saturating_duration_since(start)) {
            return false;
        }
        let bucket = self.0.buckets.index(now);
        let carried = {
            let mut s = self
                .0
                .successes
                .mine()
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let carried = (s.bucket != bucket && s.count > 0).then_some((s.bucket, s.count));
            if s.bucket != bucket {
                *s = Successes { bucket, count: 0 };
            }
            s.count += 1;
            carried
        };
        if let Some((old, n)) = carried {
            let mut b = self.0.breaker.lock().unwrap_or_else(|e| e.into_inner());
            b.add_successes(old, n, now);
        }
        true
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.with(|b, now| b.state(now))
    }

    /// The state and the window's figures.
    pub fn status(&self) -> BreakerStatus {
        let (state, w): (State, Window) = self.with(|b, now| (b.state(now), b.window(now)));
        let now = self.0.clock.now();
        let t = |i: usize| self.0.transitions[i].load(Ordering::Relaxed);
        BreakerStatus {
            state: state_name(state),
            opens_in_seconds: match state {
                State::Open { until } => Some((until - now.min(until)).as_secs_f64()),
                _ => None,
            },
            window_requests: w.total,
            window_errors: w.errors,
            window_slow: w.slow,
            error_ratio: if w.total == 0 {
                0.0
            } else {
                w.errors as f64 / w.total as f64
            },
            transitions_to_closed: t(0),
            transitions_to_open: t(1),
            transitions_to_half_open: t(2),
            rejected: self.0.rejected.load(Ordering::Relaxed),
        }
    }
}

/// How a call ended, as the rule's error classes count it; `None` when it says nothing about
/// the upstream (a protection further in turned it away).
pub fn classify<B>(
    classes: &ErrorClasses,
    result: &Result<Response<B>, BoxError>,
) -> Option<Outcome> {
    let error = match result {
        Ok(r) => {
            let s = r.status().as_u16();
            (classes.status_5xx && (500..=599).contains(&s)) || classes.statuses.contains(&s)
        }
        Err(e) => {
            if e.is::<Rejected>() {
                return None;
            }
            match e.downcast_ref::<UpstreamError>().map(|u| u.kind) {
                Some(FailureKind::Timeout) => classes.timeouts,
                Some(FailureKind::Connect) => classes.connect_failures,
                Some(k) if k.is_client_fault() => return None,
                _ => true,
            }
        }
    };
    Some(if error {
        Outcome::Error
    } else {
        Outcome::Success
    })
}

/// A service answering for the upstream while the breaker is open.
pub type Fallback<B, R> = BoxCloneSyncService<Request<B>, Response<R>, BoxError>;

/// Wraps a service in a circuit breaker.
pub struct BreakerLayer<B, R> {
    handle: BreakerHandle,
    /// Shared: a request clones the service only when it needs it (the breaker is open).
    fallback: Option<Arc<Fallback<B, R>>>,
}

impl<B, R> Clone for BreakerLayer<B, R> {
    fn clone(&self) -> Self {
        BreakerLayer {
            handle: self.handle.clone(),
            fallback: self.fallback.clone(),
        }
    }
}

impl<B, R> BreakerLayer<B, R> {
    pub fn new(handle: BreakerHandle, fallback: Option<Fallback<B, R>>) -> Self {
        BreakerLayer {
            handle,
            fallback: fallback.map(Arc::new),
        }
    }
}

impl<B, R> Protection for BreakerLayer<B, R>
where
    Fallback<B, R>: Send + Sync,
{
    fn status(&self, out: &mut Vec<(&'static str, serde_json::Value)>) {
        out.push(("breaker", json(&self.handle.status())));
        out.push(("breaker_scope", json(&self.handle.0.rule.scope)));
    }

    fn samples(&self, out: &mut Vec<Sample>) {
        let b = self.handle.status();
        for s in ["closed", "open", "half_open"] {
            out.push(Sample {
                metric: "breaker_state",
                labels: vec![("state", s.to_string())],
                value: f64::from(u8::from(b.state == s)),
            });
        }
        for (to, n) in [
            ("open", b.transitions_to_open),
            ("half_open", b.transitions_to_half_open),
            ("closed", b.transitions_to_closed),
        ] {
            out.push(Sample {
                metric: "breaker_transitions",
                labels: vec![("to", to.to_string())],
                value: n as f64,
            });
        }
    }

    fn rejects(&self) -> &'static [RejectKind] {
        &[RejectKind::BreakerOpen]
    }
}

impl<B: 'static, R: 'static> ProtectionLayer for BreakerLayer<B, R>
where
    Fallback<B, R>: Send + Sync,
{
    const METRICS: &'static [MetricDesc] = &[
        MetricDesc {
            name: "breaker_state",
            help: "1 for the breaker's current state (closed, open, half_open), by route",
            kind: MetricKind::Gauge,
        },
        MetricDesc {
            name: "breaker_transitions",
            help: "Breaker state changes, by route and new state",
            kind: MetricKind::Counter,
        },
    ];

    fn fork(&self) -> Self {
        BreakerLayer {
            handle: self.handle.fork(),
            fallback: self.fallback.clone(),
        }
    }
}

impl<S, B, R> Layer<S> for BreakerLayer<B, R> {
    type Service = BreakerService<S, B, R>;
    fn layer(&self, inner: S) -> Self::Service {
        BreakerService {
            inner,
            handle: self.handle.clone(),
            fallback: self.fallback.clone(),
        }
    }
}

pub struct BreakerService<S, B, R> {
    inner: S,
    handle: BreakerHandle,
    fallback: Option<Arc<Fallback<B, R>>>,
}

impl<S: Clone, B, R> Clone for BreakerService<S, B, R> {
    fn clone(&self) -> Self {
        BreakerService {
            inner: self.inner.clone(),
            handle: self.handle.clone(),
            fallback: self.fallback.clone(),
        }
    }
}

/// Reports a call that ended without a verdict (dropped) as such, so a half-open probe slot
/// is never lost.
struct Pending {
    handle: Option<BreakerHandle>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.with(|b, _| b.cancel_probe());
        }
    }
}

impl<S, B, R> Service<Request<B>> for BreakerService<S, B, R>
where
    S: Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    B: Send + 'static,
    R: Send + 'static,
{
    type Response = Response<R>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let handle = self.handle.clone();
        let start = match handle.admit() {
            Ok(start) => start,
            Err(retry_after) => {
                handle.0.rejected.fetch_add(1, Ordering::Relaxed);
                return match &self.fallback {
                    Some(f) => {
                        let answer = Fallback::clone(f).oneshot(req);
                        Box::pin(async move {
                            let mut r = answer.await?;
                            r.extensions_mut().insert(Degraded(RejectKind::BreakerOpen));
                            Ok(r)
                        })
                    }
                    None => Box::pin(std::future::ready(Err(Rejected {
                        kind: RejectKind::BreakerOpen,
                        retry_after,
                    }
                    .into()))),
                };
            }
        };
        // Set before the call starts: a call dropped at any point reports, and a half-open
        // probe slot is never lost.
        let mut pending = Pending {
            handle: Some(handle),
        };
        let call = self.inner.call(req);
        Box::pin(async move {
            let result = call.await.map_err(Into::into);
            if let Some(handle) = pending.handle.take() {
                let outcome = classify(&handle.0.rule.errors, &result);
                handle.record(outcome, start);
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    /// A breaker on a manual clock: a 10 s window of 10 buckets, tripping at 50% errors
    /// once it holds 100 calls.
    fn breaker() -> (BreakerHandle, ManualClock) {
        let text = "[[routes]]\nname = \"r\"\nupstream = \"u\"\n[routes.breaker]\nwindow = \"10s\"\nmin_requests = 100\nerror_ratio = 0.5\n[upstreams.u]\ntargets = [\"127.0.0.1:9000\"]\n";
        let rule = crate::config::parse(text, "t").unwrap().routes[0]
            .breaker
            .clone()
            .unwrap();
        let clock = ManualClock::new();
        (BreakerHandle::new(rule, Arc::new(clock.clone())), clock)
    }

    fn call(b: &BreakerHandle, outcome: Outcome) {
        let start = b.admit().expect("closed");
        b.record(Some(outcome), start);
    }

    #[test]
    fn successes_counted_on_each_thread_all_reach_the_window() {
        let (b, clock) = breaker();
        std::thread::scope(|s| {
            for t in 0..4 {
                let b = b.fork();
                s.spawn(move || {
                    crate::connections::set_worker(t);
                    for _ in 0..250 {
                        call(&b, Outcome::Success);
                    }
                });
            }
        });
        assert_eq!(b.status().window_requests, 1000);
        // Counted in the bucket they happened in: a window later they are gone.
        clock.advance(Duration::from_secs(5));
        call(&b, Outcome::Success);
        assert_eq!(b.status().window_requests, 1001);
        clock.advance(Duration::from_secs(6));
        assert_eq!(b.status().window_requests, 1);
    }

    #[test]
    fn the_floor_reached_by_successes_trips_at_the_next_failure() {
        let (b, _clock) = breaker();
        for _ in 0..50 {
            call(&b, Outcome::Success);
        }
        for _ in 0..49 {
            call(&b, Outcome::Error);
        }
        // 99 calls: under the floor of 100, whatever the ratio.
        assert_eq!(b.state(), State::Closed);
        call(&b, Outcome::Error);
        assert!(matches!(b.state(), State::Open { .. }), "{:?}", b.status());
        assert!(b.admit().is_err());
    }
}
