//! One fill per key in one gateway (single flight): the first request for a missing key
//! leads and goes to the service; the others wait on the leader's channel for what it
//! stored.
//!
//! Why not moka's own loader coalescing (`try_get_with`): its waiters queue on a read-write
//! lock that hands itself from one waiter to the next, so a fill waited on by a thousand
//! requests wakes them one after another, one scheduler round each. Measured with
//! `bench/cache/run` (1,000 connections on one key): the leader's fill took 20-70 ms, and
//! still most waiters were not woken within the 150 ms `lock_timeout` and went to the
//! service themselves (about 230 lookups at each expiry instead of one). A `watch` channel
//! wakes every waiter at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// What a fill gives its waiters: the entry, once stored. A fill that stored nothing (the
/// answer could not be stored, the service failed, the leader's client went away) closes
/// its channel without a value, and the waiters go on by themselves.
pub type Filled<T> = watch::Receiver<Option<T>>;

/// The fills in progress, by key.
pub struct Flights<T> {
    fills: Mutex<HashMap<Arc<str>, Filled<T>>>,
}

impl<T> Default for Flights<T> {
    fn default() -> Self {
        Flights {
            fills: Mutex::new(HashMap::new()),
        }
    }
}

/// A request's part in a key's fill.
pub enum Turn<'a, T> {
    /// It fills the key, and tells the others with [`Leading::done`].
    Lead(Leading<'a, T>),
    /// Another request fills it: wait on this.
    Wait(Filled<T>),
}

/// The leader's hold on a fill. Dropped (done, or the leader's request gone), the key is
/// free again and the waiters still waiting are told.
pub struct Leading<'a, T> {
    flights: &'a Flights<T>,
    key: Arc<str>,
    filled: watch::Sender<Option<T>>,
}

impl<T> Flights<T> {
    /// Joins the fill of `key`, or starts it.
    pub fn join(&self, key: &Arc<str>) -> Turn<'_, T> {
        let mut fills = self.fills.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(filled) = fills.get(key) {
            return Turn::Wait(filled.clone());
        }
        let (tx, rx) = watch::channel(None);
        fills.insert(key.clone(), rx);
        Turn::Lead(Leading {
            flights: self,
            key: key.clone(),
            filled: tx,
        })
    }

    /// How many keys are being filled.
    #[cfg(test)]
    fn in_progress(&self) -> usize {
        self.fills.lock().unwrap().len()
    }
}

impl<T> Leading<'_, T> {
    /// Gives the waiters what was stored (they wake together), and frees the key. Call it
    /// after the entry is in the cache, so that a request coming after the key is freed
    /// finds it there.
    pub fn done(self, stored: Option<T>) {
        if let Some(v) = stored {
            self.filled.send_replace(Some(v));
        }
    }
}

impl<T> Drop for Leading<'_, T> {
    fn drop(&mut self) {
        // Only the leader removes its key, and nobody adds one while it is there: the key's
        // fill in the map is this one.
        let mut fills = self.flights.fills.lock().unwrap_or_else(|e| e.into_inner());
        fills.remove(&self.key);
    }
}

/// Waits for a fill to be stored, up to `bound`: `None` when it stored nothing or took too
/// long.
pub async fn wait<T: Clone>(mut filled: Filled<T>, bound: std::time::Duration) -> Option<T> {
    match tokio::time::timeout(bound, filled.wait_for(Option::is_some)).await {
        Ok(Ok(v)) => v.clone(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[tokio::test]
    async fn the_first_leads_and_the_others_get_what_it_stored() {
        let flights = Flights::<u32>::default();
        let Turn::Lead(lead) = flights.join(&key("a")) else {
            panic!("the first request must lead");
        };
        let waiters: Vec<_> = (0..100)
            .map(|_| match flights.join(&key("a")) {
                Turn::Wait(f) => tokio::spawn(wait(f, Duration::from_secs(30))),
                Turn::Lead(_) => panic!("one leader per key"),
            })
            .collect();
        // Another key is filled apart.
        assert!(matches!(flights.join(&key("b")), Turn::Lead(_)));
        lead.done(Some(7));
        for w in waiters {
            assert_eq!(w.await.unwrap(), Some(7));
        }
        assert_eq!(flights.in_progress(), 0, "done frees the key");
        assert!(matches!(flights.join(&key("a")), Turn::Lead(_)));
    }

    #[tokio::test]
    async fn a_fill_that_stores_nothing_or_whose_leader_goes_away_releases_its_waiters() {
        let flights = Flights::<u32>::default();
        for stored_nothing in [true, false] {
            let Turn::Lead(lead) = flights.join(&key("a")) else {
                panic!("the first request must lead");
            };
            let Turn::Wait(f) = flights.join(&key("a")) else {
                panic!("the second request must wait");
            };
            let waiter = tokio::spawn(wait(f, Duration::from_secs(30)));
            if stored_nothing {
                lead.done(None);
            } else {
                drop(lead);
            }
            assert_eq!(waiter.await.unwrap(), None);
            assert_eq!(flights.in_progress(), 0);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_waits_no_longer_than_its_bound() {
        let flights = Flights::<u32>::default();
        let _lead = flights.join(&key("a"));
        let Turn::Wait(f) = flights.join(&key("a")) else {
            panic!("the second request must wait");
        };
        let started = tokio::time::Instant::now();
        assert_eq!(wait(f, Duration::from_millis(150)).await, None);
        assert_eq!(started.elapsed(), Duration::from_millis(150));
    }
}
