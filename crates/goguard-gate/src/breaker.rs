//! The circuit breaker of 5.1: it opens only when the window holds enough traffic AND the
//! error (or slow-call) ratio reaches its threshold, so quiet hours never trip it.
//!
//! The state machine is plain data driven by the caller's clock (`Instant`s passed in), so
//! it is tested without sleeping and shared by a tower layer later.
//!
//! | goguard | Sentinel circuit-breaker rule | Envoy admission control |
//! |---|---|---|
//! | `window` | `statIntervalMs` | `sampling_window` |
//! | `min_requests` / `min_rps` | `minRequestAmount` | `rps_threshold` |
//! | `error_ratio` | `count` with `ERROR_RATIO` grade | `sr_threshold` (success rate = 1 - error_ratio) |
//! | `slow_call`, `slow_ratio` | `SLOW_REQUEST_RATIO` grade: `count` (max RT), `slowRatioThreshold` | none |
//! | `open_for` | `timeWindow` | none (it sheds probabilistically instead of opening) |
//! | `half_open_probes` | one probe request | none |

use std::time::{Duration, Instant};

use crate::layer::breaker::Rule;

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    /// Rejecting until the instant, then half-open.
    Open {
        until: Instant,
    },
    /// Letting `probes` requests through; all must succeed to close.
    HalfOpen {
        admitted: u32,
        succeeded: u32,
    },
}

/// How a call ended, as the breaker counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Error,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// The bucket's start, in bucket units since the breaker's epoch.
    index: u64,
    total: u64,
    errors: u64,
    slow: u64,
}

/// Window figures, for status pages and tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub total: u64,
    pub errors: u64,
    pub slow: u64,
}

/// One breaker (per route or per upstream).
/// Which time bucket an instant falls in: fixed for a breaker's life, so that callers can
/// count successes without its lock (see [`CircuitBreaker::add_successes`]).
#[derive(Debug, Clone, Copy)]
pub struct BucketClock {
    epoch: Instant,
    /// A bucket's length in nanoseconds.
    len: u128,
}

impl BucketClock {
    /// The bucket `now` falls in, counted from the breaker's creation.
    pub fn index(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.epoch).as_nanos() / self.len) as u64
    }
}

#[derive(Debug)]
pub struct CircuitBreaker {
    rule: Rule,
    clock: BucketClock,
    buckets: Vec<Bucket>,
    state: State,
    /// Consecutive trips without a full close, for a growing `open_for`.
    trips: u32,
}

impl CircuitBreaker {
    pub fn new(rule: Rule, now: Instant) -> CircuitBreaker {
        let n = rule.buckets.max(1) as usize;
        let len = (rule.window / rule.buckets.max(1)).as_nanos().max(1);
        CircuitBreaker {
            rule,
            clock: BucketClock { epoch: now, len },
            buckets: vec![Bucket::default(); n],
            state: State::Closed,
            trips: 0,
        }
    }

    /// How it cuts time into buckets.
    pub fn bucket_clock(&self) -> BucketClock {
        self.clock
    }

    fn bucket_index(&self, now: Instant) -> u64 {
        self.clock.index(now)
    }

    /// Adds `n` successes counted elsewhere into bucket `index`, when that bucket is still in
    /// the window ending now. They cannot trip the breaker: the window is checked again at
    /// the next call that fails or is slow.
    pub fn add_successes(&mut self, index: u64, n: u64, now: Instant) {
        let current = self.bucket_index(now);
        let len = self.buckets.len() as u64;
        if self.state != State::Closed || index > current || index + len <= current {
            return;
        }
        let b = &mut self.buckets[(index % len) as usize];
        if b.index > index {
            return; // the slot already holds a later bucket
        }
        if b.index != index {
            *b = Bucket {
                index,
                ..Bucket::default()
            };
        }
        b.total += n;
    }

    /// The traffic in the window ending now.
    pub fn window(&self, now: Instant) -> Window {
        let current = self.bucket_index(now);
        let n = self.buckets.len() as u64;
        let mut w = Window {
            total: 0,
            errors: 0,
            slow: 0,
        };
        for b in &self.buckets {
            if b.index + n > current && b.index <= current {
                w.total += b.total;
                w.errors += b.errors;
                w.slow += b.slow;
            }
        }
        w
    }

    /// The state as last stored, without moving open to half-open.
    pub fn stored_state(&self) -> State {
        self.state
    }

    /// The state, moving open to half-open when its time is up.
    pub fn state(&mut self, now: Instant) -> State {
        if let State::Open { until } = self.state {
            if now >= until {
                self.state = State::HalfOpen {
                    admitted: 0,
                    succeeded: 0,
                };
            }
        }
        self.state
    }

    /// May a request go through? Half-open admits only the probes.
    pub fn admit(&mut self, now: Instant) -> bool {
        match self.state(now) {
            State::Closed => true,
            State::Open { .. } => false,
            State::HalfOpen {
                admitted,
                succeeded,
            } => {
                if admitted < self.rule.half_open_probes {
                    self.state = State::HalfOpen {
                        admitted: admitted + 1,
                        succeeded,
                    };
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Gives back a half-open probe slot whose call ended without a verdict (the client went
    /// away, or a protection further in turned it away), so the breaker is not left waiting
    /// for a probe that will never report.
    pub fn cancel_probe(&mut self) {
        if let State::HalfOpen {
            admitted,
            succeeded,
        } = self.state
        {
            self.state = State::HalfOpen {
                admitted: admitted.saturating_sub(1).max(succeeded),
                succeeded,
            };
        }
    }

    /// The rule it runs.
    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    /// Records the end of an admitted call.
    pub fn record(&mut self, now: Instant, outcome: Outcome, latency: Duration) {
        let slow = self.rule.is_slow(latency);
        match self.state(now) {
            State::HalfOpen {
                admitted,
                succeeded,
            } => {
                if outcome == Outcome::Error || slow {
                    self.trip(now);
                } else if succeeded + 1 >= self.rule.half_open_probes {
                    self.close();
                } else {
                    self.state = State::HalfOpen {
                        admitted,
                        succeeded: succeeded + 1,
                    };
                }
            }
            State::Open { .. } => {}
            State::Closed => {
                self.count(now, outcome, slow);
                if self.should_trip(now) {
                    self.trip(now);
                }
            }
        }
    }

    fn count(&mut self, now: Instant, outcome: Outcome, slow: bool) {
        let index = self.bucket_index(now);
        let n = self.buckets.len();
        let b = &mut self.buckets[(index % n as u64) as usize];
        if b.index != index {
            *b = Bucket {
                index,
                ..Bucket::default()
            };
        }
        b.total += 1;
        b.errors += u64::from(outcome == Outcome::Error);
        b.slow += u64::from(slow);
    }

    /// Enough traffic AND a ratio at its threshold.
    fn should_trip(&self, now: Instant) -> bool {
        let w = self.window(now);
        if w.total == 0 {
            return false;
        }
        let window_secs = self.rule.window.as_secs_f64().max(f64::MIN_POSITIVE);
        let enough = self.rule.min_requests.is_none_or(|m| w.total >= m)
            && self
                .rule
                .min_rps
                .is_none_or(|r| w.total as f64 / window_secs >= r);
        if !enough {
            return false;
        }
        let ratio = |k: u64| k as f64 / w.total as f64;
        self.rule.error_ratio.is_some_and(|t| ratio(w.errors) >= t)
            || self.rule.slow_ratio.is_some_and(|t| ratio(w.slow) >= t)
    }

    fn trip(&mut self, now: Instant) {
        // open_for doubles with each trip in a row, up to open_for_max when set.
        let factor = 2u32.saturating_pow(self.trips.min(16));
        let open_for = match self.rule.open_for_max {
            Some(max) => (self.rule.open_for * factor).min(max),
            None => self.rule.open_for,
        };
        self.trips = self.trips.saturating_add(1);
        self.state = State::Open {
            until: now + open_for,
        };
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.trips = 0;
        // A fresh window: the errors that tripped it are history. (The bucket clock stays:
        // indexes callers computed from it stay valid.)
        self.buckets.iter_mut().for_each(|b| *b = Bucket::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule: 30 s window, 800 req/s floor, 15% errors, open 10 s, 5 probes.
    fn rule() -> Rule {
        let text = "[[routes]]\nname = \"r\"\nupstream = \"u\"\n[routes.breaker]\nwindow = \"30s\"\nmin_rps = 800\nerror_ratio = 0.15\nopen_for = \"10s\"\nhalf_open_probes = 5\n[upstreams.u]\ntargets = [\"127.0.0.1:9000\"]\n";
        let c = crate::config::parse(text, "t").unwrap();
        c.routes[0].breaker.clone().unwrap()
    }

    /// Sends `n` calls spread over `secs` seconds from `start`, `errors_per_100` failing.
    fn traffic(
        b: &mut CircuitBreaker,
        start: Instant,
        secs: u64,
        n: u64,
        errors_per_100: u64,
    ) -> Instant {
        let step = Duration::from_secs(secs) / n as u32;
        let mut now = start;
        for i in 0..n {
            if b.admit(now) {
                let outcome = if i % 100 < errors_per_100 {
                    Outcome::Error
                } else {
                    Outcome::Success
                };
                b.record(now, outcome, Duration::from_millis(5));
            }
            now += step;
        }
        now
    }

    #[test]
    fn errors_under_the_traffic_floor_never_trip() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(rule(), t0);
        // 500 req/s for 30 s with half of them failing: a quiet hour, not an outage.
        let now = traffic(&mut b, t0, 30, 15_000, 50);
        assert_eq!(b.state(now), State::Closed);
    }

    #[test]
    fn a_busy_window_with_errors_trips_then_recovers_through_half_open() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(rule(), t0);
        // 1000 req/s, 20% errors: trips once the window holds 800 req/s worth.
        let now = traffic(&mut b, t0, 30, 30_000, 20);
        let State::Open { until } = b.state(now) else {
            panic!("should be open: {:?}", b.state(now));
        };
        assert!(!b.admit(now));
        // After open_for: half-open, five probes, then closed.
        let later = until + Duration::from_millis(1);
        for _ in 0..5 {
            assert!(b.admit(later));
        }
        assert!(!b.admit(later), "only the probes get through");
        for _ in 0..5 {
            b.record(later, Outcome::Success, Duration::from_millis(5));
        }
        assert_eq!(b.state(later), State::Closed);
    }

    #[test]
    fn healthy_traffic_stays_closed() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(rule(), t0);
        let now = traffic(&mut b, t0, 30, 30_000, 10);
        assert_eq!(b.state(now), State::Closed);
        assert!(b.window(now).total > 20_000);
    }

    #[test]
    fn a_failed_probe_reopens_for_longer_when_growing() {
        let mut r = rule();
        r.open_for_max = Some(Duration::from_secs(60));
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(r, t0);
        let now = traffic(&mut b, t0, 30, 30_000, 30);
        let State::Open { until } = b.state(now) else {
            panic!()
        };
        assert!(
            until - now <= Duration::from_secs(10),
            "the first trip opens for open_for"
        );
        let probe = until + Duration::from_millis(1);
        assert!(b.admit(probe));
        b.record(probe, Outcome::Error, Duration::from_millis(5));
        let State::Open { until: again } = b.state(probe) else {
            panic!("a failed probe re-opens")
        };
        assert_eq!(again - probe, Duration::from_secs(20), "open_for doubles");
    }

    #[test]
    fn successes_counted_elsewhere_join_the_window_while_their_bucket_is_in_it() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(rule(), t0);
        // The rule's 30 s window has 10 buckets of 3 s.
        let now = t0 + Duration::from_secs(31);
        let current = b.bucket_clock().index(now);
        b.add_successes(current, 40, now);
        b.add_successes(current - 9, 2, now);
        b.add_successes(current - 10, 1000, now); // out of the window
        b.add_successes(current + 1, 1000, now); // not yet
        b.record(now, Outcome::Error, Duration::from_millis(5));
        assert_eq!(
            b.window(now),
            Window {
                total: 43,
                errors: 1,
                slow: 0
            }
        );
    }

    #[test]
    fn slow_calls_trip_the_slow_ratio() {
        let mut r = rule();
        r.error_ratio = None;
        r.slow_call = Some(Duration::from_millis(500));
        r.slow_ratio = Some(0.5);
        r.min_rps = None;
        r.min_requests = Some(100);
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(r, t0);
        let mut now = t0;
        for i in 0..200 {
            assert!(b.admit(now) || i >= 100);
            let latency = Duration::from_millis(if i % 2 == 0 { 900 } else { 10 });
            b.record(now, Outcome::Success, latency);
            now += Duration::from_millis(10);
        }
        assert!(matches!(b.state(now), State::Open { .. }));
    }
}
