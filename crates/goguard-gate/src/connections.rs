//! HTTP/1.1 connections to one target, on hyper's connection API: an idle list, most
//! recently used first, each connection driven by its own task. A response's body hands its
//! connection back when it ends; a body dropped before its end closes the connection (HTTP/1
//! cannot abandon a response half read).
//!
//! Why not hyper_util's pooled client: it hands a connection back through a task spawned for
//! each request, and keys its pool by a URI built for each request. On `bench/gate` that cost
//! about 7 µs of CPU per request, a third of the gateway's own work.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::layer::Body;

/// The most idle connections kept per target and serving thread; more are closed when they
/// come back.
const MAX_IDLE: usize = 1024;

/// Idle lists per target: one per serving thread (see [`set_worker`]), up to this many.
const WORKER_LISTS: usize = 16;

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

fn worker() -> usize {
    WORKER.with(|w| w.get())
}

/// Why a request did not get a response head.
#[derive(Debug)]
pub enum SendError {
    /// No connection: refused, unreachable or not within the connect timeout.
    Connect(String),
    /// The connection failed after the request was (at least partly) written.
    Http(hyper::Error),
}

pub struct Connections {
    addr: String,
    connect_timeout: Duration,
    idle_timeout: Duration,
    idle: [Mutex<Vec<Idle>>; WORKER_LISTS],
}

struct Idle {
    sender: http1::SendRequest<Body>,
    since: Instant,
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
    /// new one. A request that an idle connection closed under it before taking it is sent
    /// again on another: it never left.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<Body>,
    ) -> Result<Response<Pooled>, SendError> {
        loop {
            let worker = worker();
            let (mut sender, fresh) = match self.take(worker) {
                Some(s) => (s, false),
                None => (self.connect().await?, true),
            };
            if sender.ready().await.is_err() {
                if fresh {
                    return Err(SendError::Connect(format!(
                        "{}: connection closed at once",
                        self.addr
                    )));
                }
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let pool = self.clone();
                    return Ok(resp.map(|body| Pooled {
                        body,
                        back: Some((sender, pool, worker)),
                    }));
                }
                Err(mut e) => match e.take_message() {
                    Some(again) if !fresh => req = again,
                    _ => return Err(SendError::Http(e.into_error())),
                },
            }
        }
    }

    /// The most recently used idle connection still open and not idle for too long.
    fn take(&self, worker: usize) -> Option<http1::SendRequest<Body>> {
        let mut idle = self.idle[worker].lock().unwrap_or_else(|e| e.into_inner());
        while let Some(i) = idle.pop() {
            if !i.sender.is_closed() && i.since.elapsed() < self.idle_timeout {
                return Some(i.sender);
            }
        }
        None
    }

    fn give_back(&self, sender: http1::SendRequest<Body>, worker: usize) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle[worker].lock().unwrap_or_else(|e| e.into_inner());
        // The oldest sit at the front: close those idle too long, a few at a time.
        let stale = idle
            .iter()
            .take(4)
            .take_while(|i| i.since.elapsed() >= self.idle_timeout)
            .count();
        idle.drain(..stale);
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Closes the connections idle for longer than the idle timeout.
    pub fn sweep(&self) {
        for list in &self.idle {
            let mut idle = list.lock().unwrap_or_else(|e| e.into_inner());
            idle.retain(|i| !i.sender.is_closed() && i.since.elapsed() < self.idle_timeout);
        }
    }

    async fn connect(&self) -> Result<http1::SendRequest<Body>, SendError> {
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
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| SendError::Connect(format!("{}: {e}", self.addr)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }
}

/// A response body that gives its connection back to the idle list when it ends.
pub struct Pooled {
    body: Incoming,
    /// The connection, its pool and the idle list it came from.
    back: Option<(http1::SendRequest<Body>, Arc<Connections>, usize)>,
}

impl Pooled {
    fn give_back(&mut self) {
        if let Some((sender, pool, worker)) = self.back.take() {
            pool.give_back(sender, worker);
        }
    }
}

impl http_body::Body for Pooled {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.give_back(),
            Poll::Ready(Some(Ok(_))) if self.body.is_end_stream() => self.give_back(),
            Poll::Ready(Some(Err(_))) => self.back = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        // Read to its end (or empty from the start): the connection can carry another.
        if self.body.is_end_stream() {
            self.give_back();
        }
    }
}
