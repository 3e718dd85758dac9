//! HTTP/1.1 connections to one target ([`crate::h1`]): an idle list per serving thread,
//! most recently used first. A response's body hands its connection back when it ends; a
//! body dropped before its end closes the connection (HTTP/1 cannot abandon a response half
//! read).
//!
//! Why not hyper_util's pooled client: it hands a connection back through a task spawned for
//! each request, and keys its pool by a URI built for each request. On `bench/gate` that cost
//! about 7 µs of CPU per request, a third of the gateway's own work.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Response;
use http_body::Body as _;
use tokio::net::TcpStream;

use crate::h1::{self, Conn, ResponseBody};
use crate::layer::{full, Body};

/// The most idle connections kept per target and serving thread; more are closed when they
/// come back.
const MAX_IDLE: usize = 1024;

/// Idle lists per target: one per serving thread (see [`set_worker`]), up to this many.
pub const WORKER_LISTS: usize = 16;

thread_local! {
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Marks the current thread as serving thread `i` (each with its own single-threaded
/// runtime). A connection's task runs on the runtime that opened it, so a thread takes its
/// connections from its own idle list: a request and its connection stay on one thread. On
/// a multi-threaded runtime every thread is 0 and shares one list.
pub fn set_worker(i: usize) {
    WORKER.with(|w| w.set(i % WORKER_LISTS));
}

/// The serving thread this is (see [`set_worker`]).
pub fn worker() -> usize {
    WORKER.with(|w| w.get())
}

/// Why a request did not get a response head.
#[derive(Debug)]
pub enum SendError {
    /// No connection: refused, unreachable or not within the connect timeout.
    Connect(String),
    /// The exchange failed on a connection.
    Http(h1::Error),
}

pub struct Connections {
    addr: String,
    connect_timeout: Duration,
    idle_timeout: Duration,
    idle: [Mutex<Vec<Idle>>; WORKER_LISTS],
}

struct Idle {
    conn: Conn,
    /// When it became idle, in [`coarse_ms`].
    since: u64,
}

/// Milliseconds on a clock that is cheap to read: Linux's coarse monotonic clock (a few
/// milliseconds of resolution, read from memory). Idle timeouts are seconds; the precise
/// clock cost 2% of the gateway's CPU on the two reads each request made of it here.
fn coarse_ms() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes the timespec it is given, nothing else.
        if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) } == 0 {
            return ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000;
        }
    }
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle: usize = self
            .idle
            .iter()
            .map(|l| l.lock().map_or(0, |i| i.len()))
            .sum();
        f.debug_struct("Connections")
            .field("addr", &self.addr)
            .field("idle", &idle)
            .finish()
    }
}

impl Connections {
    pub fn new(addr: &str, connect_timeout: Duration, idle_timeout: Duration) -> Arc<Self> {
        Arc::new(Connections {
            addr: addr.to_string(),
            connect_timeout,
            idle_timeout,
            idle: std::array::from_fn(|_| Mutex::new(Vec::new())),
        })
    }

    /// Sends the request (origin-form URI, with a Host header) on an idle connection, or a
    /// new one. An idle connection the upstream closed as the request went out (a race no
    /// client can avoid) gets the request again on another, when nothing of it can have
    /// reached the service (its head was not written) or repeating it is safe (an
    /// idempotent method without a body).
    /// The answer's body gives its connection to `back` when it ends (normally on to
    /// [`Connections::give_back`]).
    pub async fn send<R: h1::Reuse>(
        &self,
        parts: &http::request::Parts,
        body: Body,
        back: R,
    ) -> Result<Response<ResponseBody<R>>, SendError> {
        let idempotent = crate::upstream::is_idempotent(&parts.method) && body.is_end_stream();
        let mut body = Some(body);
        loop {
            let (mut conn, fresh) = match self.take(worker()) {
                Some(c) => (c, false),
                None => (self.connect().await?, true),
            };
            let b = body.take().unwrap_or_else(|| full(bytes::Bytes::new()));
            match conn.exchange(parts, b).await {
                Ok(head) => {
                    let body = ResponseBody::new(conn, &head, back);
                    return Ok(Response::from_parts(head.parts, body));
                }
                Err((e, unsent)) => {
                    let again =
                        !fresh && e.closed_before_response() && (unsent.is_some() || idempotent);
                    if !again {
                        return Err(SendError::Http(e));
                    }
                    body = unsent;
                }
            }
        }
    }

    /// The most recently used idle connection still open and not idle for too long.
    fn take(&self, worker: usize) -> Option<Conn> {
        let mut idle = self.idle[worker].lock().unwrap_or_else(|e| e.into_inner());
        let now = coarse_ms();
        while let Some(i) = idle.pop() {
            if i.conn.is_clean() && self.fresh(i.since, now) {
                return Some(i.conn);
            }
        }
        None
    }

    /// Whether a connection idle since `since` is still within the idle timeout.
    fn fresh(&self, since: u64, now: u64) -> bool {
        u128::from(now.saturating_sub(since)) < self.idle_timeout.as_millis()
    }

    /// Puts a connection that can carry another request on this thread's idle list.
    pub fn give_back(&self, conn: Conn) {
        let worker = worker();
        let mut idle = self.idle[worker].lock().unwrap_or_else(|e| e.into_inner());
        let now = coarse_ms();
        // The oldest sit at the front: close those idle too long, a few at a time.
        let stale = idle
            .iter()
            .take(4)
            .take_while(|i| !self.fresh(i.since, now))
            .count();
        idle.drain(..stale);
        if idle.len() < MAX_IDLE {
            idle.push(Idle { conn, since: now });
        }
    }

    /// Closes the connections idle for longer than the idle timeout, or closed by the
    /// upstream.
    pub fn sweep(&self) {
        for list in &self.idle {
            let mut idle = list.lock().unwrap_or_else(|e| e.into_inner());
            let now = coarse_ms();
            idle.retain(|i| i.conn.is_clean() && self.fresh(i.since, now));
        }
    }

    async fn connect(&self) -> Result<Conn, SendError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| {
                SendError::Connect(format!(
                    "{}: no connection within {:?}",
                    self.addr, self.connect_timeout
                ))
            })?
            .map_err(|e| SendError::Connect(format!("{}: {e}", self.addr)))?;
        let _ = stream.set_nodelay(true);
        Ok(Conn::new(stream))
    }
}

/// Open client connections per address, so that one address cannot take every connection
/// the gateway allows (250 idle connections from one client used to lock others out).
/// Touched once when a connection opens and once when it closes, never per request.
#[derive(Default)]
pub struct PerClient(Arc<Mutex<std::collections::HashMap<std::net::IpAddr, u32>>>);

/// A connection's place in its address's count, given back when dropped.
pub struct ClientSlot(
    Arc<Mutex<std::collections::HashMap<std::net::IpAddr, u32>>>,
    std::net::IpAddr,
);

impl PerClient {
    /// A slot for one more connection from `ip`, `None` when it has `limit` open already.
    pub fn open(&self, ip: std::net::IpAddr, limit: u32) -> Option<ClientSlot> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(ClientSlot(self.0.clone(), ip))
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.1);
            }
        }
    }
}
