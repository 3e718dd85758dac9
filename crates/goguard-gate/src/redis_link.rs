//! One gateway's link to Redis, for whoever shares state there (the shared limits, the
//! cache's second level): a connection made in the background, every call bounded by a
//! timeout, and after a failure a pause before Redis is asked again, so that an outage costs
//! requests no waiting. The loss and the return are each reported once, in the log and as an
//! event; calls that failed are counted.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::events::{Event, EventQueue, Reason};

/// How a link tells of itself: its name in the log, the events of its loss and return, and
/// the pause after a failure (doubling from the first to the second while Redis stays away).
#[derive(Clone, Copy)]
pub struct LinkRole {
    pub name: &'static str,
    pub lost: Reason,
    pub back: Reason,
    pub pause: (Duration, Duration),
}

/// A link to one Redis, cheap to clone.
#[derive(Clone)]
pub struct RedisLink(Arc<Inner>);

struct Inner {
    url: String,
    timeout: Duration,
    role: LinkRole,
    conn: Mutex<Option<ConnectionManager>>,
    connecting: AtomicBool,
    /// True from a failure until the next call that succeeds.
    down: AtomicBool,
    /// No call before this; and the pause to wait after the next failure.
    retry: Mutex<(Option<Instant>, Duration)>,
    errors: AtomicU64,
    events: Option<EventQueue>,
}

/// Redis gave no answer in time, failed, or is being left alone after a failure.
#[derive(Debug)]
pub struct Unavailable;

impl RedisLink {
    /// Starts connecting in the background; until connected, calls are `Unavailable`. Must
    /// run inside a tokio runtime.
    pub fn new(
        url: &str,
        timeout: Duration,
        role: LinkRole,
        events: Option<EventQueue>,
    ) -> RedisLink {
        let link = RedisLink(Arc::new(Inner {
            url: url.to_string(),
            timeout,
            role,
            conn: Mutex::new(None),
            connecting: AtomicBool::new(false),
            down: AtomicBool::new(false),
            retry: Mutex::new((None, role.pause.0)),
            errors: AtomicU64::new(0),
            events,
        }));
        link.connect();
        link
    }

    /// The longest a call waits for Redis.
    pub fn timeout(&self) -> Duration {
        self.0.timeout
    }

    /// True while Redis is away (from a failure to the next success).
    pub fn is_down(&self) -> bool {
        self.0.down.load(Ordering::Relaxed)
    }

    /// Calls that failed or timed out.
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
                    tracing::warn!(url = %me.0.url, error = %e, "cannot connect to Redis for {}", me.0.role.name);
                    me.failed();
                }
            }
            me.0.connecting.store(false, Ordering::Release);
        });
    }

    /// Runs `call` on the connection within the timeout. `Unavailable` at once while the
    /// link pauses after a failure or is still connecting.
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T, Unavailable>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let pausing = {
            let retry = self.0.retry.lock().unwrap_or_else(|e| e.into_inner());
            retry.0.is_some_and(|t| Instant::now() < t)
        };
        if pausing {
            return Err(Unavailable);
        }
        let conn = self
            .0
            .conn
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(conn) = conn else {
            self.connect();
            self.failed();
            return Err(Unavailable);
        };
        match tokio::time::timeout(self.0.timeout, call(conn)).await {
            Ok(Ok(v)) => {
                self.succeeded();
                Ok(v)
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "Redis call for {} failed", self.0.role.name);
                self.failed();
                Err(Unavailable)
            }
            Err(_) => {
                self.failed();
                Err(Unavailable)
            }
        }
    }

    /// Counts a failure (a call, or an answer the caller could not use) and pauses the link.
    pub fn failed(&self) {
        self.0.errors.fetch_add(1, Ordering::Relaxed);
        {
            let mut retry = self.0.retry.lock().unwrap_or_else(|e| e.into_inner());
            let pause = retry.1;
            *retry = (
                Some(Instant::now() + pause),
                (pause * 2).min(self.0.role.pause.1),
            );
        }
        if !self.0.down.swap(true, Ordering::AcqRel) {
            tracing::warn!(url = %self.0.url, "Redis is unreachable: {} is off", self.0.role.name);
            if let Some(q) = &self.0.events {
                q.emit(Event::gateway(self.0.role.lost, "*"));
            }
        }
    }

    fn succeeded(&self) {
        if self.0.down.swap(false, Ordering::AcqRel) {
            self.0.retry.lock().unwrap_or_else(|e| e.into_inner()).1 = self.0.role.pause.0;
            tracing::info!(url = %self.0.url, "Redis is back: {} is on again", self.0.role.name);
            if let Some(q) = &self.0.events {
                q.emit(Event::gateway(self.0.role.back, "*"));
            }
        }
    }
}
