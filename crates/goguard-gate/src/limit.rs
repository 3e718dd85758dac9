//! Rate limits of 5.5 as GCRA (the generic cell rate algorithm: a token bucket kept as one
//! timestamp per key), per key at the edge and in total per route. Driven by the caller's
//! clock; memory is bounded however many keys clients invent.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::config::Rate;

/// The answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Rejected; the client may retry after this long (the `Retry-After` header).
    Deny {
        retry_after: Duration,
    },
}

/// One GCRA cell: `rate` per second with bursts of `burst` requests.
#[derive(Debug, Clone, Copy)]
pub struct Gcra {
    /// Time between requests at the sustained rate.
    interval: Duration,
    /// How far ahead of now the theoretical arrival time may run: (burst - 1) intervals.
    tolerance: Duration,
}

impl Gcra {
    /// `burst` defaults to one second's worth of the rate (at least 1).
    pub fn new(rate: Rate, burst: Option<u32>) -> Gcra {
        let interval = Duration::from_secs_f64(1.0 / rate.per_second);
        let burst = burst.unwrap_or(rate.per_second.ceil() as u32).max(1);
        Gcra {
            interval,
            tolerance: interval * (burst - 1),
        }
    }

    /// Time between requests at the sustained rate.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How far ahead of now the theoretical arrival time may run.
    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }

    /// Decides for a request at `now`, given the stored theoretical arrival time; returns the
    /// decision and the new time to store.
    fn decide(&self, tat: Option<Instant>, now: Instant) -> (Decision, Option<Instant>) {
        let tat = tat.map_or(now, |t| t.max(now));
        let ahead = tat - now;
        if ahead > self.tolerance {
            let retry_after = ahead - self.tolerance;
            return (Decision::Deny { retry_after }, Some(tat));
        }
        (Decision::Allow, Some(tat + self.interval))
    }
}

/// One limit for a whole route.
#[derive(Debug)]
pub struct Limiter {
    cell: Gcra,
    tat: Option<Instant>,
}

impl Limiter {
    pub fn new(rate: Rate, burst: Option<u32>) -> Limiter {
        Limiter {
            cell: Gcra::new(rate, burst),
            tat: None,
        }
    }

    pub fn check(&mut self, now: Instant) -> Decision {
        let (d, tat) = self.cell.decide(self.tat, now);
        self.tat = tat;
        d
    }
}

/// One limit per key (user, client address), with at most `max_keys` keys remembered.
#[derive(Debug)]
pub struct KeyedLimiter {
    cell: Gcra,
    keys: HashMap<String, Instant>,
    max_keys: usize,
}

impl KeyedLimiter {
    pub fn new(rate: Rate, burst: Option<u32>, max_keys: usize) -> KeyedLimiter {
        KeyedLimiter {
            cell: Gcra::new(rate, burst),
            keys: HashMap::new(),
            max_keys: max_keys.max(1),
        }
    }

    pub fn check(&mut self, key: &str, now: Instant) -> Decision {
        if !self.keys.contains_key(key) && self.keys.len() >= self.max_keys {
            self.make_room(now);
        }
        let (d, tat) = self.cell.decide(self.keys.get(key).copied(), now);
        if let Some(tat) = tat {
            // A known key is updated in place: no new String per request.
            match self.keys.get_mut(key) {
                Some(t) => *t = tat,
                None => {
                    self.keys.insert(key.to_string(), tat);
                }
            }
        }
        d
    }

    /// Frees room for new keys. A key whose time is past has its full burst back: forgetting
    /// it changes nothing. If every key is still busy, the tenth that looks oldest goes
    /// (bounded memory matters more than one client's exactness); freeing a tenth at once
    /// keeps the cost per new key constant under a flood of invented keys.
    fn make_room(&mut self, now: Instant) {
        self.keys.retain(|_, tat| *tat > now);
        if self.keys.len() < self.max_keys {
            return;
        }
        let mut tats: Vec<Instant> = self.keys.values().copied().collect();
        let nth = (tats.len() / 10).max(1) - 1;
        let (_, cut, _) = tats.select_nth_unstable(nth);
        let cut = *cut;
        self.keys.retain(|_, tat| *tat > cut);
    }

    /// Keys remembered (for metrics).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(s: &str) -> Rate {
        s.parse().unwrap()
    }

    fn allowed(l: &mut Limiter, now: Instant, n: usize) -> usize {
        (0..n).filter(|_| l.check(now) == Decision::Allow).count()
    }

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let t0 = Instant::now();
        let mut l = Limiter::new(rate("50/s"), Some(50));
        assert_eq!(allowed(&mut l, t0, 100), 50, "the burst");
        let Decision::Deny { retry_after } = l.check(t0) else {
            panic!("past the burst")
        };
        assert_eq!(
            retry_after,
            Duration::from_millis(20),
            "one interval at 50/s"
        );
        // 100 ms later, five more (50/s).
        assert_eq!(allowed(&mut l, t0 + Duration::from_millis(100), 100), 5);
        // A full second of quiet gives the whole burst back.
        assert_eq!(allowed(&mut l, t0 + Duration::from_secs(2), 100), 50);
    }

    #[test]
    fn the_default_burst_is_one_seconds_worth() {
        let t0 = Instant::now();
        let mut l = Limiter::new(rate("3000/m"), None);
        assert_eq!(allowed(&mut l, t0, 100), 50);
    }

    #[test]
    fn keys_are_limited_apart() {
        let t0 = Instant::now();
        let mut k = KeyedLimiter::new(rate("2/s"), Some(2), 1000);
        assert_eq!(k.check("alice", t0), Decision::Allow);
        assert_eq!(k.check("alice", t0), Decision::Allow);
        assert!(matches!(k.check("alice", t0), Decision::Deny { .. }));
        assert_eq!(
            k.check("bob", t0),
            Decision::Allow,
            "bob has his own budget"
        );
    }

    #[test]
    fn memory_stays_bounded_under_invented_keys() {
        let t0 = Instant::now();
        let mut k = KeyedLimiter::new(rate("1/s"), Some(1), 100);
        for i in 0..10_000 {
            k.check(&format!("user-{i}"), t0);
        }
        assert!(k.len() <= 100, "{}", k.len());
        // Idle keys are forgotten first: a busy user keeps being limited.
        let mut k = KeyedLimiter::new(rate("1/s"), Some(1), 2);
        assert_eq!(k.check("busy", t0), Decision::Allow);
        let later = t0 + Duration::from_secs(5);
        k.check("a", t0);
        assert_eq!(k.check("busy", later), Decision::Allow);
        k.check("c", later);
        assert!(matches!(k.check("busy", later), Decision::Deny { .. }));
    }
}
