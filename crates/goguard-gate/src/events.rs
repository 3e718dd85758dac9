//! "Abnormal user behaviour" events of 5.5: a user who keeps hitting a limit or an open
//! breaker is reported to risk control. Events go through a bounded queue: a request never
//! waits for a sink, and what does not fit is dropped and counted.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::config::Sink;

/// Why a request of the user was turned away (a protection names its own: a rejection's
/// `user_event`), or what happened to the gateway: the name written in the event.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reason(&'static str);

// Named like the variants of the enum it once was.
#[allow(non_upper_case_globals)]
impl Reason {
    pub const RateLimited: Reason = Reason("rate_limited");
    pub const BreakerOpen: Reason = Reason("breaker_open");
    /// The gateway lost Redis and limits each instance on its own (or fails closed).
    pub const SharedLimitsUnavailable: Reason = Reason("shared_limits_unavailable");
    /// Redis is back: the limits are shared again.
    pub const SharedLimitsRecovered: Reason = Reason("shared_limits_recovered");
    /// The cache lost its second level in Redis and works in memory alone.
    pub const CacheRedisUnavailable: Reason = Reason("cache_redis_unavailable");
    /// Redis is back: the cache's entries are shared again.
    pub const CacheRedisRecovered: Reason = Reason("cache_redis_recovered");
    /// A route's Bloom filter could not be loaded: unknown ids are let through.
    pub const BloomUnavailable: Reason = Reason("bloom_unavailable");

    /// The reason of that name (`rate_limited`).
    pub const fn named(name: &'static str) -> Reason {
        Reason(name)
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

/// As the log has always shown it: `RateLimited`.
impl std::fmt::Debug for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for word in self.0.split('_') {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                write!(f, "{}{}", first.to_ascii_uppercase(), chars.as_str())?;
            }
        }
        Ok(())
    }
}

impl Event {
    /// An event about the gateway itself rather than a user (`user` is `-`).
    pub fn gateway(reason: Reason, route: &str) -> Event {
        Event {
            unix_ms: unix_ms(),
            user: "-".into(),
            route: route.into(),
            reason,
            count: 1,
            window_seconds: 0.0,
            detail: String::new(),
        }
    }
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// One event, as written to the sink (one JSON object per line).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub unix_ms: u128,
    pub user: String,
    pub route: String,
    pub reason: Reason,
    /// Rejections counted in the window.
    pub count: u32,
    pub window_seconds: f64,
    /// What happened, in words, for events about the gateway (a gray release's step).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Counts rejections per (route, user, reason) and raises one event when a user reaches the
/// threshold within the window; the next can come only in a later window.
#[derive(Debug)]
pub struct AbuseDetector {
    threshold: u32,
    window: Duration,
    max_users: usize,
    seen: HashMap<(String, String, Reason), (Instant, u32)>,
}

impl AbuseDetector {
    pub fn new(threshold: u32, window: Duration, max_users: usize) -> AbuseDetector {
        AbuseDetector {
            threshold: threshold.max(1),
            window,
            max_users: max_users.max(1),
            seen: HashMap::new(),
        }
    }

    /// Records a rejection; returns the event when this one reaches the threshold.
    pub fn rejected(
        &mut self,
        route: &str,
        user: &str,
        reason: Reason,
        now: Instant,
    ) -> Option<Event> {
        let key = (route.to_string(), user.to_string(), reason);
        if !self.seen.contains_key(&key) && self.seen.len() >= self.max_users {
            // Bounded memory: windows that are over count for nothing.
            let window = self.window;
            self.seen
                .retain(|_, (start, _)| now.duration_since(*start) < window);
            if self.seen.len() >= self.max_users {
                return None;
            }
        }
        let entry = self.seen.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        (entry.1 == self.threshold).then(|| Event {
            unix_ms: unix_ms(),
            user: user.to_string(),
            route: route.to_string(),
            reason,
            count: entry.1,
            window_seconds: self.window.as_secs_f64(),
            detail: String::new(),
        })
    }
}

/// The sending side of the bounded event queue; cheap to clone into every request path.
#[derive(Clone)]
pub struct EventQueue {
    tx: SyncSender<Event>,
    dropped: Arc<AtomicU64>,
}

impl EventQueue {
    /// A queue holding at most `capacity` events, and its receiving side for a sink.
    pub fn new(capacity: usize) -> (EventQueue, Receiver<Event>) {
        let (tx, rx) = sync_channel(capacity.max(1));
        (
            EventQueue {
                tx,
                dropped: Arc::new(AtomicU64::new(0)),
            },
            rx,
        )
    }

    /// Hands the event over, or drops it (counted) when the queue is full or the sink gone.
    /// Never blocks.
    pub fn emit(&self, event: Event) {
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Events dropped so far (a metric).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Writes events as JSON lines to a file (appending), until the queue's senders are gone.
pub fn spawn_file_sink(
    path: &Path,
    rx: Receiver<Event>,
) -> std::io::Result<std::thread::JoinHandle<std::io::Result<()>>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    Ok(std::thread::spawn(move || {
        let mut out = std::io::BufWriter::new(file);
        for event in rx {
            serde_json::to_writer(&mut out, &event)?;
            out.write_all(b"\n")?;
            out.flush()?;
        }
        Ok(())
    }))
}

/// Starts the sink's writer thread. Events it cannot deliver (the file, Redis or the webhook
/// failing) are counted with the queue's drops and logged, never retried in a loop.
pub fn spawn_sink(
    sink: &Sink,
    rx: Receiver<Event>,
    queue: &EventQueue,
) -> std::io::Result<std::thread::JoinHandle<std::io::Result<()>>> {
    let dropped = queue.dropped.clone();
    match sink.clone() {
        Sink::File(path) => spawn_file_sink(&path, rx),
        Sink::RedisStream { url, stream } => Ok(std::thread::spawn(move || {
            redis_stream_sink(&url, &stream, rx, &dropped);
            Ok(())
        })),
        Sink::Webhook(url) => Ok(std::thread::spawn(move || {
            webhook_sink(&url, rx, &dropped);
            Ok(())
        })),
    }
}

/// The longest a Redis stream of events grows (approximately trimmed).
const STREAM_MAXLEN: u64 = 100_000;

fn redis_stream_sink(url: &str, stream: &str, rx: Receiver<Event>, dropped: &AtomicU64) {
    let client = match redis::Client::open(url) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(url, error = %e, "event sink: bad Redis URL");
            rx.into_iter()
                .for_each(|_| _ = dropped.fetch_add(1, Ordering::Relaxed));
            return;
        }
    };
    let mut conn: Option<redis::Connection> = None;
    for event in rx {
        if conn.is_none() {
            conn = client
                .get_connection_with_timeout(Duration::from_secs(1))
                .inspect_err(|e| tracing::warn!(url, error = %e, "event sink: cannot reach Redis"))
                .ok();
        }
        let Some(c) = conn.as_mut() else {
            dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let sent: redis::RedisResult<String> = redis::cmd("XADD")
            .arg(stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(STREAM_MAXLEN)
            .arg("*")
            .arg("user")
            .arg(&event.user)
            .arg("route")
            .arg(&event.route)
            .arg("reason")
            .arg(
                serde_json::to_value(event.reason).map_or(String::new(), |v| {
                    v.as_str().unwrap_or_default().to_string()
                }),
            )
            .arg("count")
            .arg(event.count)
            .arg("window_seconds")
            .arg(event.window_seconds)
            .arg("unix_ms")
            .arg(event.unix_ms as u64)
            .query(c);
        if let Err(e) = sent {
            tracing::warn!(stream, error = %e, "event sink: XADD failed");
            dropped.fetch_add(1, Ordering::Relaxed);
            conn = None;
        }
    }
}

fn webhook_sink(url: &str, rx: Receiver<Event>, dropped: &AtomicU64) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    for event in rx {
        let body = serde_json::to_string(&event).unwrap_or_default();
        let sent = agent
            .post(url)
            .header("content-type", "application/json")
            .send(body.as_bytes());
        if let Err(e) = sent {
            tracing::warn!(url, error = %e, "event sink: webhook failed");
            dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_when_a_user_reaches_the_threshold_in_the_window() {
        let t0 = Instant::now();
        let mut d = AbuseDetector::new(3, Duration::from_secs(10), 1000);
        assert!(d
            .rejected("orders", "alice", Reason::RateLimited, t0)
            .is_none());
        assert!(d
            .rejected("orders", "alice", Reason::RateLimited, t0)
            .is_none());
        let e = d
            .rejected("orders", "alice", Reason::RateLimited, t0)
            .unwrap();
        assert_eq!(
            (e.user.as_str(), e.route.as_str(), e.count),
            ("alice", "orders", 3)
        );
        assert!(
            d.rejected("orders", "alice", Reason::RateLimited, t0)
                .is_none(),
            "once per window"
        );
        // Another user, another reason, or a later window count apart.
        assert!(d
            .rejected("orders", "bob", Reason::RateLimited, t0)
            .is_none());
        let later = t0 + Duration::from_secs(11);
        for _ in 0..2 {
            assert!(d
                .rejected("orders", "alice", Reason::RateLimited, later)
                .is_none());
        }
        assert!(d
            .rejected("orders", "alice", Reason::RateLimited, later)
            .is_some());
    }

    #[test]
    fn rejections_spread_over_windows_raise_nothing() {
        let t0 = Instant::now();
        let mut d = AbuseDetector::new(3, Duration::from_secs(10), 1000);
        for i in 0..10 {
            let at = t0 + Duration::from_secs(6 * i);
            assert!(d
                .rejected("orders", "carol", Reason::BreakerOpen, at)
                .is_none());
        }
    }

    fn event(user: &str) -> Event {
        Event {
            unix_ms: 1,
            user: user.into(),
            route: "orders".into(),
            reason: Reason::BreakerOpen,
            count: 20,
            detail: String::new(),
            window_seconds: 10.0,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let (q, rx) = EventQueue::new(2);
        for i in 0..5 {
            q.emit(event(&format!("u{i}")));
        }
        assert_eq!(q.dropped(), 3);
        assert_eq!(rx.try_iter().count(), 2);
        drop(rx);
        q.emit(event("late"));
        assert_eq!(q.dropped(), 4, "a sink that is gone counts as a drop too");
    }

    #[test]
    fn the_file_sink_writes_json_lines() {
        let dir = std::env::temp_dir().join(format!("goguard-events-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let _ = std::fs::remove_file(&path);
        let (q, rx) = EventQueue::new(16);
        let writer = spawn_file_sink(&path, rx).unwrap();
        q.emit(event("alice"));
        q.emit(event("bob"));
        drop(q);
        writer.join().unwrap().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let users: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["user"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(users, ["alice", "bob"]);
        assert!(text.contains("\"reason\":\"breaker_open\""));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
