//! [`ConcurrencyLayer`]: at most `max_in_flight` requests inside, at most `queue` more waiting
//! for a slot, each for at most `queue_wait`. Anything beyond is turned away at once with
//! [`Rejected`] (`concurrency`, a 503): the queue is bounded in length and in time, so an
//! overload sheds load instead of piling up latency.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use super::{
    json, BoxError, GuardedBody, Problems, Protection, ProtectionLayer, RejectKind, Rejected,
};

/// At most `max_in_flight` requests inside, `queue` more waiting for at most `queue_wait`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub max_in_flight: u32,
    /// Requests that may wait for a slot (bounded; more are rejected at once).
    #[serde(default)]
    pub queue: u32,
    #[serde(default = "default_queue_wait", with = "crate::layer::serde_duration")]
    pub queue_wait: Duration,
}

fn default_queue_wait() -> Duration {
    Duration::from_millis(100)
}

impl Rule {
    /// What serde cannot check: a limit that lets nothing in.
    pub fn problems(&self) -> Problems {
        if self.max_in_flight == 0 {
            return vec![(vec!["max_in_flight"], "at least 1".into())];
        }
        Vec::new()
    }
}

// Named like the variant of the enum it once was.
#[allow(non_upper_case_globals)]
impl RejectKind {
    /// Too many requests in flight and the wait queue full or timed out.
    pub const Overloaded: RejectKind =
        RejectKind::new("concurrency", StatusCode::SERVICE_UNAVAILABLE, None);
}

/// The slots, shared by every clone of the service and kept across reloads while the rule is
/// unchanged.
#[derive(Clone)]
pub struct ConcurrencyHandle(crate::layer::Forked<Shared>);

struct Shared {
    slots: Arc<Semaphore>,
    max: usize,
    queue: usize,
    queue_wait: Duration,
    waiting: AtomicUsize,
    rejected: AtomicU64,
}

/// What a status page shows of a concurrency limit.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConcurrencyStatus {
    pub in_flight: usize,
    pub max_in_flight: usize,
    pub waiting: usize,
    pub rejected: u64,
}

impl ConcurrencyHandle {
    /// Another handle on the same state, for one serving thread (see [`crate::layer::Forked`]).
    pub fn fork(&self) -> Self {
        Self(Arc::new(Arc::clone(&self.0)))
    }

    pub fn new(rule: &Rule) -> ConcurrencyHandle {
        let max = rule.max_in_flight.max(1) as usize;
        ConcurrencyHandle(Arc::new(Arc::new(Shared {
            slots: Arc::new(Semaphore::new(max)),
            max,
            queue: rule.queue as usize,
            queue_wait: rule.queue_wait,
            waiting: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
        })))
    }

    /// A slot, at once or after a bounded wait.
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, Rejected> {
        let s = &self.0;
        if let Ok(p) = s.slots.clone().try_acquire_owned() {
            return Ok(p);
        }
        let overloaded = Rejected {
            kind: RejectKind::Overloaded,
            retry_after: Duration::from_secs(1),
        };
        // Join the queue only if there is room in it.
        let joined = s
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w < s.queue).then_some(w + 1)
            })
            .is_ok();
        if !joined {
            s.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(overloaded);
        }
        let got = tokio::time::timeout(s.queue_wait, s.slots.clone().acquire_owned()).await;
        s.waiting.fetch_sub(1, Ordering::AcqRel);
        match got {
            Ok(Ok(p)) => Ok(p),
            _ => {
                s.rejected.fetch_add(1, Ordering::Relaxed);
                Err(overloaded)
            }
        }
    }

    pub fn status(&self) -> ConcurrencyStatus {
        let s = &self.0;
        ConcurrencyStatus {
            in_flight: s.max - s.slots.available_permits(),
            max_in_flight: s.max,
            waiting: s.waiting.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
        }
    }
}

/// Applies a concurrency limit to a service.
#[derive(Clone)]
pub struct ConcurrencyLayer {
    handle: ConcurrencyHandle,
}

impl ConcurrencyLayer {
    pub fn new(handle: ConcurrencyHandle) -> ConcurrencyLayer {
        ConcurrencyLayer { handle }
    }
}

impl Protection for ConcurrencyLayer {
    fn status(&self, out: &mut Vec<(&'static str, serde_json::Value)>) {
        out.push(("concurrency", json(&self.handle.status())));
    }

    fn rejects(&self) -> &'static [RejectKind] {
        &[RejectKind::Overloaded]
    }
}

impl ProtectionLayer for ConcurrencyLayer {
    fn fork(&self) -> Self {
        ConcurrencyLayer::new(self.handle.fork())
    }
}

impl<S> Layer<S> for ConcurrencyLayer {
    type Service = ConcurrencyService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ConcurrencyService {
            inner,
            handle: self.handle.clone(),
        }
    }
}

#[derive(Clone)]
pub struct ConcurrencyService<S> {
    inner: S,
    handle: ConcurrencyHandle,
}

impl<S, B, R> Service<Request<B>> for ConcurrencyService<S>
where
    S: Service<Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    B: Send + 'static,
    R: http_body::Body + Send + 'static,
{
    type Response = http::Response<GuardedBody<R>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let handle = self.handle.clone();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let permit = handle.acquire().await?;
            let resp = inner.call(req).await.map_err(Into::into)?;
            // The slot is held until the response body is done: a streamed answer is still
            // in flight.
            Ok(resp.map(|body| GuardedBody::new(body, permit)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_queue_is_bounded_in_length_and_time() {
        let h = ConcurrencyHandle::new(&Rule {
            max_in_flight: 1,
            queue: 1,
            queue_wait: Duration::from_millis(100),
        });
        let first = h.acquire().await.expect("a free slot");
        // One may wait; a second waiter is refused at once.
        let h2 = h.clone();
        let waiter = tokio::spawn(async move { h2.acquire().await.map(|_| ()) });
        tokio::task::yield_now().await;
        assert_eq!(h.status().waiting, 1);
        assert_eq!(h.acquire().await.unwrap_err().kind, RejectKind::Overloaded);
        // The waiter gives up after queue_wait (paused time moves only as needed).
        assert_eq!(
            waiter.await.unwrap().unwrap_err().kind,
            RejectKind::Overloaded
        );
        drop(first);
        assert!(h.acquire().await.is_ok(), "the slot is free again");
        assert_eq!(h.status().rejected, 2);
    }
}
