//! Limits shared by every gateway instance through Redis (5.5): one atomic Lua script checks
//! and updates all the GCRA cells of a request in one round trip, on Redis's own clock.
//!
//! When Redis cannot answer within the timeout, the caller falls back to its local limits
//! (or fails closed when configured). The switch is reported once each way, as a metric
//! and an event; while Redis is down it is tried again once a second, not on every request.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::events::{Event, EventQueue, Reason};
use crate::limit::Gcra;

/// GCRA over several keys at once: all allowed (and all updated) or the first denial.
/// Times are microseconds of Redis's clock, so instances never disagree about "now".
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  if tat - now > tolerance then
    return {i, tat - now - tolerance}
  end
  tats[i] = tat + interval
end
for i = 1, #KEYS do
  local ttl = math.ceil((tats[i] - now) / 1000) + 1000
  redis.call('SET', KEYS[i], string.format('%d', tats[i]), 'PX', ttl)
end
return {0, 0}
"#;

/// How long to leave Redis alone after it failed.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// A connection to the shared limits, cheap to clone.
#[derive(Clone)]
pub struct SharedLimits(Arc<Inner>);

struct Inner {
    url: String,
    timeout: Duration,
    fail_closed: bool,
    script: redis::Script,
    conn: Mutex<Option<ConnectionManager>>,
    connecting: AtomicBool,
    /// True while the local limits stand in.
    fallback: AtomicBool,
    retry_at: Mutex<Option<Instant>>,
    errors: AtomicU64,
    events: Option<EventQueue>,
}

/// Redis gave no answer in time.
#[derive(Debug)]
pub struct Unavailable;

impl SharedLimits {
    /// Starts connecting in the background; until connected, checks report `Unavailable`.
    pub fn new(
        url: &str,
        timeout: Duration,
        fail_closed: bool,
        events: Option<EventQueue>,
    ) -> SharedLimits {
        let s = SharedLimits(Arc::new(Inner {
            url: url.to_string(),
            timeout,
            fail_closed,
            script: redis::Script::new(SCRIPT),
            conn: Mutex::new(None),
            connecting: AtomicBool::new(false),
            fallback: AtomicBool::new(false),
            retry_at: Mutex::new(None),
            errors: AtomicU64::new(0),
            events,
        }));
        s.connect();
        s
    }

    /// Whether a Redis outage rejects requests instead of limiting locally.
    pub fn fail_closed(&self) -> bool {
        self.0.fail_closed
    }

    /// True while the gateway limits on its own because Redis is away.
    pub fn in_fallback(&self) -> bool {
        self.0.fallback.load(Ordering::Relaxed)
    }

    /// Calls to Redis that failed or timed out.
    pub fn errors(&self) -> u64 {
        self.0.errors.load(Ordering::Relaxed)
    }

    fn connect(&self) {
        if self.0.connecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let made = async {
                let client = redis::Client::open(me.0.url.as_str())?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(me.0.timeout.max(Duration::from_millis(200))))
                    .set_response_timeout(Some(me.0.timeout))
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(client, config).await
            }
            .await;
            match made {
                Ok(c) => *me.0.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(c),
                Err(e) => {
                    tracing::warn!(url = %me.0.url, error = %e, "cannot connect to Redis for shared limits");
                    me.failed();
                }
            }
            me.0.connecting.store(false, Ordering::Release);
        });
    }

    fn failed(&self) {
        self.0.errors.fetch_add(1, Ordering::Relaxed);
        *self.0.retry_at.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Instant::now() + RETRY_EVERY);
        if !self.0.fallback.swap(true, Ordering::AcqRel) {
            tracing::warn!(url = %self.0.url, fail_closed = self.0.fail_closed, "Redis is unreachable: shared limits are off");
            if let Some(q) = &self.0.events {
                q.emit(Event::gateway(Reason::SharedLimitsUnavailable, "*"));
            }
        }
    }

    fn succeeded(&self) {
        if self.0.fallback.swap(false, Ordering::AcqRel) {
            tracing::info!(url = %self.0.url, "Redis is back: limits are shared again");
            if let Some(q) = &self.0.events {
                q.emit(Event::gateway(Reason::SharedLimitsRecovered, "*"));
            }
        }
    }

    /// Checks the cells `(key, cell)` together: `Ok(None)` when all allow, `Ok(Some((i,
    /// retry_after)))` when cell `i` denies, `Err` when Redis did not answer.
    pub async fn check(
        &self,
        cells: &[(String, Gcra)],
    ) -> Result<Option<(usize, Duration)>, Unavailable> {
        let waiting = self
            .0
            .retry_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| Instant::now() < t);
        if waiting {
            return Err(Unavailable);
        }
        let conn = self
            .0
            .conn
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(mut conn) = conn else {
            self.connect();
            self.failed();
            return Err(Unavailable);
        };
        let mut call = self.0.script.prepare_invoke();
        for (key, cell) in cells {
            call.key(key)
                .arg(cell.interval().as_micros() as u64)
                .arg(cell.tolerance().as_micros() as u64);
        }
        let answer =
            tokio::time::timeout(self.0.timeout, call.invoke_async::<Vec<i64>>(&mut conn)).await;
        match answer {
            Ok(Ok(v)) if v.len() == 2 => {
                self.succeeded();
                Ok((v[0] > 0).then(|| {
                    (
                        (v[0] - 1) as usize,
                        Duration::from_micros(v[1].max(0) as u64),
                    )
                }))
            }
            Ok(Ok(v)) => {
                tracing::warn!(answer = ?v, "unexpected answer from the shared-limit script");
                self.failed();
                Err(Unavailable)
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "shared limit check failed");
                self.failed();
                Err(Unavailable)
            }
            Err(_) => {
                self.failed();
                Err(Unavailable)
            }
        }
    }
}
