//! Rate limits of 5.5 as GCRA (the generic cell rate algorithm: a token bucket kept as one
//! timestamp per key), per key at the edge and in total per route. Driven by the caller's
//! clock; memory is bounded however many keys clients invent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use crate::layer::limit::Rate;

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
}

/// A theoretical arrival time kept as nanoseconds after an epoch, in an atomic: requests on
/// different threads decide without a lock (a compare-and-swap; a loser retries with the
/// winner's time).
#[derive(Debug)]
struct Cell {
    tat: AtomicU64,
}

impl Cell {
    fn new(tat: u64) -> Cell {
        Cell {
            tat: AtomicU64::new(tat),
        }
    }

    fn check(&self, gcra: &Gcra, now: u64) -> Decision {
        let interval = nanos(gcra.interval);
        let tolerance = nanos(gcra.tolerance);
        let mut current = self.tat.load(Ordering::Acquire);
        loop {
            let tat = current.max(now);
            let ahead = tat - now;
            if ahead > tolerance {
                return Decision::Deny {
                    retry_after: Duration::from_nanos(ahead - tolerance),
                };
            }
            match self.tat.compare_exchange_weak(
                current,
                tat + interval,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Decision::Allow,
                Err(actual) => current = actual,
            }
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `now` as nanoseconds after `epoch` (0 for an earlier instant).
fn since(epoch: Instant, now: Instant) -> u64 {
    nanos(now.saturating_duration_since(epoch))
}

/// One limit for a whole route. `epoch` is any instant no later than the first `now`.
#[derive(Debug)]
pub struct Limiter {
    cell: Gcra,
    epoch: Instant,
    tat: Cell,
}

impl Limiter {
    pub fn new(rate: Rate, burst: Option<u32>, epoch: Instant) -> Limiter {
        Limiter {
            cell: Gcra::new(rate, burst),
            epoch,
            tat: Cell::new(0),
        }
    }

    pub fn check(&self, now: Instant) -> Decision {
        self.tat.check(&self.cell, since(self.epoch, now))
    }

    /// The rate and burst it enforces (for Redis, when the limits are shared).
    pub fn cell(&self) -> Gcra {
        self.cell
    }
}

/// One limit per key (user, client address), with at most `max_keys` keys remembered. A
/// known key decides under a shared (read) lock; only a new key takes the write lock.
#[derive(Debug)]
pub struct KeyedLimiter {
    cell: Gcra,
    epoch: Instant,
    keys: RwLock<HashMap<String, Cell>>,
    max_keys: usize,
}

impl KeyedLimiter {
    pub fn new(rate: Rate, burst: Option<u32>, max_keys: usize, epoch: Instant) -> KeyedLimiter {
        KeyedLimiter {
            cell: Gcra::new(rate, burst),
            epoch,
            keys: RwLock::new(HashMap::new()),
            max_keys: max_keys.max(1),
        }
    }

    pub fn check(&self, key: &str, now: Instant) -> Decision {
        let now = since(self.epoch, now);
        {
            let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = keys.get(key) {
                return c.check(&self.cell, now);
            }
        }
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if !keys.contains_key(key) && keys.len() >= self.max_keys {
            make_room(&mut keys, self.max_keys, now);
        }
        keys.entry(key.to_string())
            .or_insert_with(|| Cell::new(0))
            .check(&self.cell, now)
    }

    /// The rate and burst it enforces on each key (for Redis, when the limits are shared).
    pub fn cell(&self) -> Gcra {
        self.cell
    }

    /// Keys remembered (for metrics).
    pub fn len(&self) -> usize {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Frees room for new keys. A key whose time is past has its full burst back: forgetting it
/// changes nothing. If every key is still busy, the tenth that looks oldest goes (bounded
/// memory matters more than one client's exactness); freeing a tenth at once keeps the cost
/// per new key constant under a flood of invented keys.
fn make_room(keys: &mut HashMap<String, Cell>, max_keys: usize, now: u64) {
    let tat = |c: &Cell| c.tat.load(Ordering::Acquire);
    keys.retain(|_, c| tat(c) > now);
    if keys.len() < max_keys {
        return;
    }
    let mut tats: Vec<u64> = keys.values().map(tat).collect();
    let nth = (tats.len() / 10).max(1) - 1;
    let (_, cut, _) = tats.select_nth_unstable(nth);
    let cut = *cut;
    keys.retain(|_, c| tat(c) > cut);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(s: &str) -> Rate {
        s.parse().unwrap()
    }

    fn allowed(l: &Limiter, now: Instant, n: usize) -> usize {
        (0..n).filter(|_| l.check(now) == Decision::Allow).count()
    }

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let t0 = Instant::now();
        let l = Limiter::new(rate("50/s"), Some(50), t0);
        assert_eq!(allowed(&l, t0, 100), 50, "the burst");
        let Decision::Deny { retry_after } = l.check(t0) else {
            panic!("past the burst")
        };
        assert_eq!(
            retry_after,
            Duration::from_millis(20),
            "one interval at 50/s"
        );
        // 100 ms later, five more (50/s).
        assert_eq!(allowed(&l, t0 + Duration::from_millis(100), 100), 5);
        // A full second of quiet gives the whole burst back.
        assert_eq!(allowed(&l, t0 + Duration::from_secs(2), 100), 50);
    }

    #[test]
    fn threads_racing_for_one_burst_get_exactly_the_burst() {
        let t0 = Instant::now();
        let l = Limiter::new(rate("1/s"), Some(1000), t0);
        let k = KeyedLimiter::new(rate("1/s"), Some(1000), 100, t0);
        let (total, keyed) = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        let keyed = (0..1000)
                            .filter(|_| k.check("one", t0) == Decision::Allow)
                            .count();
                        (allowed(&l, t0, 1000), keyed)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap())
                .fold((0, 0), |(a, b), (x, y)| (a + x, b + y))
        });
        assert_eq!(total, 1000, "no request allowed twice, none lost");
        assert_eq!(keyed, 1000);
    }

    #[test]
    fn the_default_burst_is_one_seconds_worth() {
        let t0 = Instant::now();
        let l = Limiter::new(rate("3000/m"), None, t0);
        assert_eq!(allowed(&l, t0, 100), 50);
    }

    #[test]
    fn keys_are_limited_apart() {
        let t0 = Instant::now();
        let k = KeyedLimiter::new(rate("2/s"), Some(2), 1000, t0);
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
        let k = KeyedLimiter::new(rate("1/s"), Some(1), 100, t0);
        for i in 0..10_000 {
            k.check(&format!("user-{i}"), t0);
        }
        assert!(k.len() <= 100, "{}", k.len());
        // Idle keys are forgotten first: a busy user keeps being limited.
        let k = KeyedLimiter::new(rate("1/s"), Some(1), 2, t0);
        assert_eq!(k.check("busy", t0), Decision::Allow);
        let later = t0 + Duration::from_secs(5);
        k.check("a", t0);
        assert_eq!(k.check("busy", later), Decision::Allow);
        k.check("c", later);
        assert!(matches!(k.check("busy", later), Decision::Deny { .. }));
    }
}
