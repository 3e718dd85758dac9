//! Gray release of a new configuration (5.6): the new version serves a slice of the users
//! first, chosen by a consistent hash of the user key (one user sees one version), beside the
//! running one, each with its own breaker and limit state. Over a watch window the slice's
//! error ratio and latency are compared with the rest's, and the service's GC pause with its
//! value before the rollout; the slice grows step by step while every gate holds, and the
//! new version is dropped at the first failure.
//!
//! This module holds the rule, the slice, what is measured and the verdict; the gateway
//! ([`crate::server`]) runs the steps.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use crate::config::KeySpec;
use crate::gateway::Stack;
use crate::layer::serde_duration as human_duration;
use crate::layer::Problems;

/// `[gray]`: how a new version is rolled out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rule {
    /// Who a user is (`header:x-user-id`, `cookie:NAME`, `query:NAME`, `client_addr`).
    /// Default: `[events] user`, else the client's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<KeySpec>,
    /// The shares of users on the new version, step by step; all of them after the last.
    pub steps: Vec<f64>,
    /// How long each step is watched before the next.
    #[serde(with = "human_duration")]
    pub window: Duration,
    /// How often the gates are checked within a window (a failure rolls back at once).
    #[serde(with = "human_duration")]
    pub check_every: Duration,
    /// Requests the slice needs in a window before it is judged.
    pub min_requests: u64,
    /// The slice's error ratio (5xx and 429) may exceed the rest's by this much.
    pub max_error_increase: f64,
    /// The latency percentile compared (0.99: p99).
    pub latency_quantile: f64,
    /// The slice's percentile may be this many times the rest's ...
    pub max_latency_ratio: f64,
    /// ... plus this (below it, differences are noise).
    #[serde(with = "human_duration")]
    pub latency_slack: Duration,
    /// The service's Prometheus endpoint, for `go_gc_duration_seconds`; no GC gate without.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gc_metrics: Option<String>,
    /// The mean GC pause in a window may be this many times the mean before the rollout ...
    pub max_gc_ratio: f64,
    /// ... plus this.
    #[serde(with = "human_duration")]
    pub gc_slack: Duration,
}

impl Default for Rule {
    fn default() -> Self {
        Rule {
            key: None,
            steps: vec![0.005, 0.05, 0.5],
            window: Duration::from_secs(300),
            check_every: Duration::from_secs(1),
            min_requests: 20,
            max_error_increase: 0.01,
            latency_quantile: 0.99,
            max_latency_ratio: 1.5,
            latency_slack: Duration::from_millis(5),
            gc_metrics: None,
            max_gc_ratio: 1.5,
            gc_slack: Duration::from_micros(500),
        }
    }
}

impl Rule {
    pub fn problems(&self) -> Problems {
        let mut out: Problems = Vec::new();
        if self.steps.is_empty() {
            out.push((
                vec!["steps"],
                "name at least one share, e.g. [0.005]".into(),
            ));
        }
        if self.steps.iter().any(|s| !(*s > 0.0 && *s < 1.0)) {
            out.push((
                vec!["steps"],
                "each share must be more than 0 and less than 1 (all users come after the last)"
                    .into(),
            ));
        }
        if self.steps.windows(2).any(|w| w[1] <= w[0]) {
            out.push((vec!["steps"], "the shares must grow".into()));
        }
        if self.window.is_zero() {
            out.push((vec!["window"], "must be more than 0".into()));
        }
        if self.check_every.is_zero() {
            out.push((vec!["check_every"], "must be more than 0".into()));
        }
        if !(0.0..1.0).contains(&self.max_error_increase) {
            out.push((
                vec!["max_error_increase"],
                "must be at least 0 and less than 1".into(),
            ));
        }
        if !(self.latency_quantile > 0.0 && self.latency_quantile < 1.0) {
            out.push((
                vec!["latency_quantile"],
                "must be more than 0 and less than 1".into(),
            ));
        }
        if self.max_latency_ratio < 1.0 {
            out.push((vec!["max_latency_ratio"], "must be at least 1".into()));
        }
        if self.max_gc_ratio < 1.0 {
            out.push((vec!["max_gc_ratio"], "must be at least 1".into()));
        }
        if let Some(u) = &self.gc_metrics {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                out.push((
                    vec!["gc_metrics"],
                    format!("`{u}`: expected an http:// URL"),
                ));
            }
        }
        out
    }
}

/// The slices a user key hashes into.
pub const SLICES: u32 = 1_000_000;

/// The user's slice, `0..SLICES`: the same for a key on every gateway and every run (FNV-1a,
/// then a finaliser that spreads similar keys).
pub fn slice_of(key: &str) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h % u64::from(SLICES)) as u32
}

/// The slices a share covers: a user is in it when its slice is below. A larger share covers
/// every user of a smaller one.
pub fn slices(share: f64) -> u32 {
    (share * f64::from(SLICES)).round() as u32
}

/// Whether a user is on the new version at `share`.
pub fn in_share(key: &str, share: f64) -> bool {
    slice_of(key) < slices(share)
}

const BUCKETS: usize = 160;

/// Latency buckets, four per octave of microseconds (a quantile within 19%).
fn bucket(d: Duration) -> usize {
    let us = d.as_micros().min(u128::from(u64::MAX)) as u64;
    if us < 8 {
        return us as usize;
    }
    let octave = 63 - us.leading_zeros() as usize;
    let sub = ((us >> (octave - 2)) & 3) as usize;
    (octave * 4 + sub).min(BUCKETS - 1)
}

/// The upper bound of a bucket.
fn bucket_top(i: usize) -> Duration {
    if i < 8 {
        return Duration::from_micros(i as u64 + 1);
    }
    let (octave, sub) = (i / 4, (i % 4) as u64);
    Duration::from_micros((5 + sub) << (octave - 2))
}

/// One version's requests in a window.
pub struct Side {
    requests: AtomicU64,
    errors: AtomicU64,
    latency: Box<[AtomicU64]>,
}

impl Default for Side {
    fn default() -> Self {
        Side {
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Side {
    fn record(&self, error: bool, took: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.latency[bucket(took)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn error_ratio(&self) -> f64 {
        let n = self.requests();
        if n == 0 {
            0.0
        } else {
            self.errors.load(Ordering::Relaxed) as f64 / n as f64
        }
    }

    /// The latency under which `q` of the requests were answered (a bucket's top).
    pub fn quantile(&self, q: f64) -> Duration {
        let counts: Vec<u64> = self
            .latency
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_top(i);
            }
        }
        bucket_top(BUCKETS - 1)
    }

    fn status(&self, q: f64) -> SideStatus {
        SideStatus {
            requests: self.requests(),
            errors: self.errors.load(Ordering::Relaxed),
            error_ratio: self.error_ratio(),
            latency_ms: self.quantile(q).as_secs_f64() * 1000.0,
        }
    }
}

/// The figures of one window: the new version's slice and the rest.
#[derive(Default)]
pub struct Window {
    pub new: Side,
    pub old: Side,
}

/// What each user saw during a rollout.
#[derive(Default, Clone, Copy)]
struct Seen {
    on_new: bool,
    error_on_new: bool,
}

/// Users remembered per rollout; past it, new users are not counted (the figures say so).
const MAX_USERS: usize = 200_000;

/// The GC pause figures of the service: `go_gc_duration_seconds`' sum and count.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct GcReading {
    pub sum: f64,
    pub count: f64,
}

impl GcReading {
    /// Reads the service's Prometheus text (blocking: call off the runtime).
    pub fn scrape(url: &str) -> Result<GcReading, String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .into();
        let text = agent
            .get(url)
            .call()
            .and_then(|mut r| r.body_mut().read_to_string())
            .map_err(|e| format!("{url}: {e}"))?;
        GcReading::parse(&text).ok_or_else(|| format!("{url}: no go_gc_duration_seconds"))
    }

    pub fn parse(text: &str) -> Option<GcReading> {
        let value = |name: &str| {
            text.lines().find_map(|l| {
                let rest = l.strip_prefix(name)?;
                // `name value` or `name{labels} value`.
                let rest = match rest.strip_prefix('{') {
                    Some(r) => r.split_once('}')?.1,
                    None => rest,
                };
                rest.split_whitespace().next()?.parse::<f64>().ok()
            })
        };
        Some(GcReading {
            sum: value("go_gc_duration_seconds_sum")?,
            count: value("go_gc_duration_seconds_count")?,
        })
    }

    /// The mean pause of the collections between `before` and this reading.
    pub fn mean_since(&self, before: &GcReading) -> Option<f64> {
        let n = self.count - before.count;
        (n > 0.0).then(|| (self.sum - before.sum) / n)
    }
}

/// The GC gate's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcStatus {
    /// The mean pause before the rollout, in ms.
    pub before_ms: Option<f64>,
    /// The mean pause in the last window judged, in ms.
    pub window_ms: Option<f64>,
    #[serde(skip)]
    pub start: Option<GcReading>,
    #[serde(skip)]
    pub last: Option<GcReading>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A rollout in progress: the new version's stack beside the running one.
pub struct Rollout {
    pub rule: Rule,
    pub candidate: Arc<Stack>,
    /// The version it would replace.
    pub from_version: u64,
    pub trigger: String,
    key: KeySpec,
    /// The slices on the new version (of [`SLICES`]).
    covered: AtomicU32,
    /// The step (index in `rule.steps`).
    pub step: AtomicU32,
    pub paused: AtomicBool,
    /// Set when it ends (promoted, rolled back, superseded): its driver stops.
    pub ended: AtomicBool,
    pub window: ArcSwap<Window>,
    /// When the window began, on the gateway's clock.
    pub since: Mutex<Instant>,
    users: Mutex<HashMap<String, Seen>>,
    pub gc: Mutex<GcStatus>,
    /// Wakes the driver early (an admin command).
    pub poke: tokio::sync::Notify,
}

impl Rollout {
    pub fn new(
        rule: Rule,
        key: KeySpec,
        candidate: Arc<Stack>,
        from_version: u64,
        trigger: &str,
        now: Instant,
    ) -> Rollout {
        let first = rule.steps.first().copied().unwrap_or(0.005);
        Rollout {
            rule,
            candidate,
            from_version,
            trigger: trigger.to_string(),
            key,
            covered: AtomicU32::new(slices(first)),
            step: AtomicU32::new(0),
            paused: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            window: ArcSwap::from_pointee(Window::default()),
            since: Mutex::new(now),
            users: Mutex::new(HashMap::new()),
            gc: Mutex::new(GcStatus::default()),
            poke: tokio::sync::Notify::new(),
        }
    }

    pub fn version(&self) -> u64 {
        self.candidate.version
    }

    /// The share of users on the new version now.
    pub fn share(&self) -> f64 {
        f64::from(self.covered.load(Ordering::Relaxed)) / f64::from(SLICES)
    }

    /// Who the request's user is: its key, else the client's address.
    pub fn user<B>(&self, req: &http::Request<B>, client: std::net::IpAddr) -> String {
        crate::layer::limit::request_key(&self.key, req)
            .map(|k| k.into_owned())
            .unwrap_or_else(|| client.to_string())
    }

    /// Whether the user is on the new version.
    pub fn takes(&self, user: &str) -> bool {
        slice_of(user) < self.covered.load(Ordering::Relaxed)
    }

    /// Records a request's outcome: the window's figures and the user's.
    pub fn record(&self, user: String, on_new: bool, status: u16, took: Duration) {
        let error = status >= 500 || status == 429;
        let w = self.window.load();
        if on_new {
            w.new.record(error, took);
        } else {
            w.old.record(error, took);
        }
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let len = users.len();
        let seen = match users.get_mut(&user) {
            Some(s) => s,
            None if len < MAX_USERS => users.entry(user).or_default(),
            None => return,
        };
        seen.on_new |= on_new;
        seen.error_on_new |= on_new && error;
    }

    /// Moves to step `i` (a new window).
    pub fn enter_step(&self, i: usize, now: Instant) {
        if let Some(s) = self.rule.steps.get(i) {
            self.covered.store(slices(*s), Ordering::Relaxed);
        }
        self.step.store(i as u32, Ordering::Relaxed);
        self.restart_window(now);
    }

    pub fn restart_window(&self, now: Instant) {
        self.window.store(Arc::new(Window::default()));
        *self.since.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }

    /// The error and latency gates on the window so far: `Ok(true)` when they hold,
    /// `Ok(false)` while the slice has too few requests to judge, the failure otherwise.
    pub fn traffic_gates(&self) -> Result<bool, String> {
        let w = self.window.load();
        let r = &self.rule;
        if w.new.requests() < r.min_requests.max(1) {
            return Ok(false);
        }
        let (new, old) = (w.new.error_ratio(), w.old.error_ratio());
        if new > old + r.max_error_increase {
            return Err(format!(
                "error ratio {new:.3} on the new version, {old:.3} on the rest (at most +{})",
                r.max_error_increase
            ));
        }
        if w.old.requests() >= r.min_requests.max(1) {
            let q = r.latency_quantile;
            let (new, old) = (w.new.quantile(q), w.old.quantile(q));
            let limit = old.mul_f64(r.max_latency_ratio) + r.latency_slack;
            if new > limit {
                return Err(format!(
                    "p{} latency {:.1} ms on the new version, {:.1} ms on the rest (at most {:.1} ms)",
                    q * 100.0,
                    new.as_secs_f64() * 1000.0,
                    old.as_secs_f64() * 1000.0,
                    limit.as_secs_f64() * 1000.0
                ));
            }
        }
        Ok(true)
    }

    /// The GC gate at a window's end, on a new reading (`None`: no gate configured).
    pub fn gc_gate(&self, reading: Option<Result<GcReading, String>>) -> Result<(), String> {
        let Some(reading) = reading else {
            return Ok(());
        };
        let mut gc = self.gc.lock().unwrap_or_else(|e| e.into_inner());
        let now = match reading {
            Ok(r) => r,
            Err(e) => {
                gc.error = Some(e.clone());
                return Err(format!("GC pause unreadable: {e}"));
            }
        };
        gc.error = None;
        let last = gc.last.replace(now);
        let before = gc.before_ms;
        let (Some(last), Some(before)) = (last, before) else {
            return Ok(());
        };
        let Some(mean) = now.mean_since(&last) else {
            // No collection in the window: nothing paused.
            gc.window_ms = Some(0.0);
            return Ok(());
        };
        let mean_ms = mean * 1000.0;
        gc.window_ms = Some(mean_ms);
        let limit = before * self.rule.max_gc_ratio + self.rule.gc_slack.as_secs_f64() * 1000.0;
        if mean_ms > limit {
            return Err(format!(
                "mean GC pause {mean_ms:.2} ms in the window, {before:.2} ms before (at most {limit:.2} ms)"
            ));
        }
        Ok(())
    }

    /// The GC reading before the rollout.
    pub fn gc_start(&self, reading: Result<GcReading, String>) {
        let mut gc = self.gc.lock().unwrap_or_else(|e| e.into_inner());
        match reading {
            Ok(r) => {
                gc.before_ms = Some(if r.count > 0.0 {
                    r.sum / r.count * 1000.0
                } else {
                    0.0
                });
                gc.start = Some(r);
                gc.last = Some(r);
            }
            Err(e) => gc.error = Some(e),
        }
    }

    /// Users seen during the rollout, those sent to the new version, and those of them
    /// who got an error there.
    pub fn users(&self) -> (u64, u64, u64) {
        let users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let on_new = users.values().filter(|s| s.on_new).count() as u64;
        let errors = users.values().filter(|s| s.error_on_new).count() as u64;
        (users.len() as u64, on_new, errors)
    }

    pub fn status(&self, now: Instant) -> RolloutStatus {
        let w = self.window.load();
        let q = self.rule.latency_quantile;
        let (seen, on_new, errors) = self.users();
        let since = *self.since.lock().unwrap_or_else(|e| e.into_inner());
        RolloutStatus {
            version: self.version(),
            from_version: self.from_version,
            trigger: self.trigger.clone(),
            state: if self.paused.load(Ordering::Relaxed) {
                "paused"
            } else {
                "watching"
            },
            step: self.step.load(Ordering::Relaxed) as usize + 1,
            steps: self.rule.steps.clone(),
            share: self.share(),
            window_seconds: self.rule.window.as_secs_f64(),
            window_elapsed_seconds: now.saturating_duration_since(since).as_secs_f64(),
            new: w.new.status(q),
            old: w.old.status(q),
            gc: self
                .rule
                .gc_metrics
                .as_ref()
                .map(|_| self.gc.lock().unwrap_or_else(|e| e.into_inner()).clone()),
            users_seen: seen,
            users_on_new: on_new,
            users_with_errors_on_new: errors,
            routes: self.candidate.route_states(),
        }
    }

    /// How it ended, with the users it touched.
    pub fn outcome(&self, result: &'static str, reason: &str) -> Outcome {
        let (seen, on_new, errors) = self.users();
        Outcome {
            version: self.version(),
            result,
            reason: reason.to_string(),
            share: self.share(),
            users_seen: seen,
            users_on_new: on_new,
            users_with_errors_on_new: errors,
            share_of_users: if seen == 0 {
                0.0
            } else {
                on_new as f64 / seen as f64
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SideStatus {
    pub requests: u64,
    pub errors: u64,
    pub error_ratio: f64,
    /// The rule's latency percentile.
    pub latency_ms: f64,
}

/// A rollout in `/admin/status`.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutStatus {
    pub version: u64,
    pub from_version: u64,
    pub trigger: String,
    pub state: &'static str,
    /// 1 for the first share.
    pub step: usize,
    pub steps: Vec<f64>,
    pub share: f64,
    pub window_seconds: f64,
    pub window_elapsed_seconds: f64,
    pub new: SideStatus,
    pub old: SideStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gc: Option<GcStatus>,
    pub users_seen: u64,
    pub users_on_new: u64,
    pub users_with_errors_on_new: u64,
    /// The new version's routes and the state of their protections (the running version's
    /// are in the status's `routes`).
    pub routes: Vec<crate::gateway::RouteState>,
}

/// How a rollout ended.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub version: u64,
    /// `promoted`, `rolled_back`, `aborted` or `superseded`.
    pub result: &'static str,
    pub reason: String,
    /// The share of traffic it had reached.
    pub share: f64,
    pub users_seen: u64,
    /// Users whose requests the new version served.
    pub users_on_new: u64,
    pub users_with_errors_on_new: u64,
    /// `users_on_new / users_seen`.
    pub share_of_users: f64,
}

/// The rollouts' record, for the status and the metrics.
#[derive(Default)]
pub struct Board {
    pub current: Mutex<Option<Arc<Rollout>>>,
    history: Mutex<VecDeque<String>>,
    pub last: Mutex<Option<Outcome>>,
    pub steps: AtomicU64,
    pub promoted: AtomicU64,
    pub rolled_back: AtomicU64,
}

/// Lines of history kept.
const HISTORY: usize = 50;

/// `gray` in `/admin/status`.
#[derive(Debug, Clone, Serialize)]
pub struct BoardStatus {
    pub rollout: Option<RolloutStatus>,
    pub last: Option<Outcome>,
    pub history: Vec<String>,
}

impl Board {
    pub fn current(&self) -> Option<Arc<Rollout>> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A line of history (and the log).
    pub fn note(&self, line: String) {
        tracing::info!("gray release: {line}");
        let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if h.len() == HISTORY {
            h.pop_front();
        }
        h.push_back(line);
    }

    pub fn status(&self, now: Instant) -> BoardStatus {
        BoardStatus {
            rollout: self.current().map(|r| r.status(now)),
            last: self.last.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            history: self
                .history
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned()
                .collect(),
        }
    }
}

/// A share as people write it: 0.005 -> `0.5%`.
pub fn percent(share: f64) -> String {
    format!("{}%", (share * 1000.0).round() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_spread_and_nested() {
        let users: Vec<String> = (0..100_000).map(|i| format!("user-{i}")).collect();
        let at = |share: f64| users.iter().filter(|u| in_share(u, share)).count();
        let (a, b, c) = (at(0.005), at(0.05), at(0.5));
        assert!((400..600).contains(&a), "0.5%: {a}");
        assert!((4_500..5_500).contains(&b), "5%: {b}");
        assert!((49_000..51_000).contains(&c), "50%: {c}");
        assert!(users
            .iter()
            .filter(|u| in_share(u, 0.005))
            .all(|u| in_share(u, 0.05)));
    }

    #[test]
    fn latency_quantiles_come_from_the_buckets() {
        let s = Side::default();
        for _ in 0..99 {
            s.record(false, Duration::from_millis(2));
        }
        s.record(true, Duration::from_millis(100));
        let p50 = s.quantile(0.5);
        assert!(p50 >= Duration::from_millis(2) && p50 < Duration::from_micros(2_400));
        let p999 = s.quantile(0.999);
        assert!(p999 >= Duration::from_millis(100) && p999 < Duration::from_millis(120));
        assert!((s.error_ratio() - 0.01).abs() < 1e-9);
        for us in [0u64, 7, 8, 9, 1000, 123_456_789] {
            let d = Duration::from_micros(us);
            assert!(bucket_top(bucket(d)) > d, "{us}");
        }
    }

    #[test]
    fn the_gc_figures_come_from_prometheus_text() {
        let text = "# HELP go_gc_duration_seconds x\ngo_gc_duration_seconds{quantile=\"0\"} 1e-05\ngo_gc_duration_seconds_sum 0.004\ngo_gc_duration_seconds_count 4\n";
        let r = GcReading::parse(text).unwrap();
        assert_eq!((r.sum, r.count), (0.004, 4.0));
        let later = GcReading {
            sum: 0.104,
            count: 6.0,
        };
        assert!((later.mean_since(&r).unwrap() - 0.05).abs() < 1e-12);
    }

    #[test]
    fn a_rule_is_checked() {
        let r = Rule {
            steps: vec![0.5, 0.05, 1.0],
            ..Rule::default()
        };
        assert_eq!(r.problems().len(), 2, "{:?}", r.problems());
        assert!(Rule::default().problems().is_empty());
    }
}
