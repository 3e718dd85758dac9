//! The protections as `tower::Layer`s. Each is usable on its own in any tower-based Rust
//! service (hyper, axum, tonic): it wraps a `Service<http::Request<B>>`, and turns a request
//! away with a [`Rejected`] error that says why and when to retry. The gateway stacks them
//! in front of its upstream client and turns `Rejected` into a 429 or 503 answer.
//!
//! Each layer's file holds its rule too (the configuration section the gateway embeds, with
//! its checks): a layer needs nothing of the gateway's.

pub mod bloom;
pub mod breaker;
pub mod cache;
pub mod colour;
pub mod concurrency;
pub mod fault;
pub mod limit;
pub mod per_thread;
pub mod serde_duration;

use std::time::Duration;

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::{BodyExt, Full};

pub use bloom::{BloomHandle, BloomLayer};
pub use breaker::{BreakerHandle, BreakerLayer};
pub use cache::{CacheHandle, CacheLayer};
pub use colour::{ColourHandle, ColourLayer, ShadowLayer};
pub use concurrency::{ConcurrencyHandle, ConcurrencyLayer};
pub use fault::{FaultLayer, RouteFaults};
pub use limit::{LimitHandle, LimitLayer};

/// Serde for a type read from and written as text (its `FromStr` and `Display`).
macro_rules! string_serde {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use string_serde;

/// A rule's problems that its types cannot express, each with the path of the field in the
/// rule's section (empty: the section itself) and the message.
pub type Problems = Vec<(Vec<&'static str>, String)>;

/// The error type of the layers' services (tower's convention).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// State shared by every serving thread, behind a reference count of one thread's own.
/// Handles clone per request; on one shared count two threads bounced its cache line
/// between them several times per request (about 2 µs of CPU on `bench/gate`). Each thread
/// gets a handle of its own (`fork`), whose clones touch only its outer count.
#[allow(clippy::redundant_allocation)]
pub type Forked<T> = std::sync::Arc<std::sync::Arc<T>>;

/// The future of a protection's call: boxed, as a layer written with `async` has it.
pub type Answering =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, BoxError>> + Send>>;

/// The body the gateway moves around: streamed, boxed.
pub type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// A metric a protection reports for each route that has it; the service adds its prefix and
/// the `route` label.
#[derive(Debug)]
pub struct MetricDesc {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Gauge,
    Counter,
}

/// One value of a protection's metric, with its labels besides `route`.
#[derive(Debug, Clone)]
pub struct Sample {
    pub metric: &'static str,
    pub labels: Vec<(&'static str, String)>,
    /// A count, or a ratio for a gauge (a Bloom filter's fill).
    pub value: f64,
}

/// What a service built of these layers asks of a protection besides its layer: how it is
/// doing, and what of a request it reads. Implemented by each layer, on the state its copies
/// share.
pub trait Protection: Send + Sync {
    /// Its entries in a status page, as (key, value).
    fn status(&self, out: &mut Vec<(&'static str, serde_json::Value)>);

    /// Its metrics' values now (the metrics are [`ProtectionLayer::METRICS`]).
    fn samples(&self, _out: &mut Vec<Sample>) {}

    /// The rejections it gives.
    fn rejects(&self) -> &'static [RejectKind];

    /// The request headers it reads: a client must not be able to have them removed on the
    /// way (by naming them in `Connection`).
    fn reads_headers(&self, _out: &mut Vec<http::HeaderName>) {}

    /// The key it tells users apart by, if it has one.
    fn user_key(&self) -> Option<&limit::KeySpec> {
        None
    }

    /// Whether it needs the request's client address ([`limit::ClientAddr`] in the
    /// extensions). A service puts it there only when asked: it costs two allocations.
    fn reads_client_addr(&self, _req: &http::Request<Body>) -> bool {
        false
    }
}

/// A protection's layer, as a service with several serving threads builds it: once per route,
/// then a copy for each thread.
pub trait ProtectionLayer: Protection + Sized + 'static {
    /// The metrics of its [`Protection::samples`]. A service lists them whether or not a
    /// route has the protection.
    const METRICS: &'static [MetricDesc] = &[];

    /// A copy for one serving thread, on a handle of its own ([`Forked`]).
    fn fork(&self) -> Self;
}

/// A status entry's value.
fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// A body with the given bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pin_project_lite::pin_project! {
    /// A response body that keeps something alive (a concurrency slot, an in-flight count)
    /// until the body is finished or dropped: a streamed answer is still in flight.
    pub struct GuardedBody<B> {
        #[pin]
        body: B,
        guard: Box<dyn Send + Sync>,
    }
}

impl<B> GuardedBody<B> {
    pub fn new(body: B, guard: impl Send + Sync + 'static) -> GuardedBody<B> {
        GuardedBody {
            body,
            guard: Box::new(guard),
        }
    }
}

impl<B: http_body::Body> http_body::Body for GuardedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Why a protection turned a request away. Each layer defines the kinds it gives, as
/// constants in its own file (`RejectKind::BreakerOpen` is the breaker's): a new layer adds
/// its kinds without touching a list here, and whoever answers for a rejection reads all it
/// needs from the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RejectKind {
    name: &'static str,
    status: StatusCode,
    user_event: Option<&'static str>,
}

impl RejectKind {
    /// `name` labels the rejection in metrics and answers; `status` is the answer's (429 for
    /// a limit the client can respect, 503 for overload or a sick service); `user_event`,
    /// when the rejection counts against the user who sent the request, is the reason named
    /// in an "abnormal user" event.
    pub const fn new(
        name: &'static str,
        status: StatusCode,
        user_event: Option<&'static str>,
    ) -> RejectKind {
        RejectKind {
            name,
            status,
            user_event,
        }
    }

    /// The label used in metrics and events.
    pub fn as_str(self) -> &'static str {
        self.name
    }

    /// The status of the answer.
    pub fn status(self) -> StatusCode {
        self.status
    }

    /// The reason of the event when the rejection counts against the user.
    pub fn user_event(self) -> Option<&'static str> {
        self.user_event
    }
}

/// Marks an answer given instead of the service's (a fallback's), with the rejection it
/// stands for.
#[derive(Debug, Clone, Copy)]
pub struct Degraded(pub RejectKind);

/// A request turned away by a protection, before it reached the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("request rejected: {}", kind.as_str())]
pub struct Rejected {
    pub kind: RejectKind,
    /// When the client may try again (`Retry-After`).
    pub retry_after: Duration,
}

impl Rejected {
    /// 429 for a limit the client can respect, 503 for the gateway's own overload (the
    /// kind says).
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The answer to send: the status, `Retry-After` in whole seconds (rounded up, at least
    /// 1), and a one-line body.
    pub fn response(&self) -> Response<Body> {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        let mut r = Response::new(full(format!(
            "{}: {}\n",
            self.status().canonical_reason().unwrap_or(""),
            self.kind.as_str()
        )));
        *r.status_mut() = self.status();
        r.headers_mut()
            .insert(header::RETRY_AFTER, secs.max(1).into());
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    }
}

/// How a call to an upstream failed without an answer: the breaker counts these by kind, and
/// the gateway answers 502 or 504.
#[derive(Debug, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct UpstreamError {
    pub kind: FailureKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No connection could be made (refused, unreachable, connect timeout).
    Connect,
    /// No answer within the request timeout.
    Timeout,
    /// The connection broke, or the answer was not HTTP.
    Protocol,
    /// The client's request body was over the limit.
    BodyTooLarge,
    /// The client's request body was malformed (an invalid chunk, a length that disagrees
    /// with the data): the client's fault, not the upstream's.
    ClientBody,
    /// The client went away in the middle of its request body.
    ClientGone,
}

impl FailureKind {
    /// Whether the client caused the failure: it says nothing of the upstream's health, so
    /// neither the breaker nor the upstream's ejection counts it.
    pub fn is_client_fault(self) -> bool {
        matches!(
            self,
            FailureKind::BodyTooLarge | FailureKind::ClientBody | FailureKind::ClientGone
        )
    }
}

/// An error of the client's request body as the gateway received it (wrapping the server's
/// own error), so that a failure it causes on the way to the upstream is told apart from
/// the upstream's.
#[derive(Debug, thiserror::Error)]
#[error("the client's request body: {source}")]
pub struct ClientBodyError {
    /// The client closed its connection before the body's end.
    pub gone: bool,
    pub source: BoxError,
}

impl ClientBodyError {
    /// Wraps a server's body error; a hyper error for a connection closed before the
    /// message's end (or reset) means the client left, any other that the body was invalid.
    pub fn new(source: impl Into<BoxError>) -> ClientBodyError {
        let source = source.into();
        let gone = match source.downcast_ref::<hyper::Error>() {
            Some(e) => {
                e.is_incomplete_message()
                    || e.is_canceled()
                    || e.is_closed()
                    || std::error::Error::source(e)
                        .and_then(|s| s.downcast_ref::<std::io::Error>())
                        .is_some_and(|io| {
                            matches!(
                                io.kind(),
                                std::io::ErrorKind::ConnectionReset
                                    | std::io::ErrorKind::BrokenPipe
                                    | std::io::ErrorKind::UnexpectedEof
                            )
                        })
            }
            None => false,
        };
        ClientBodyError { gone, source }
    }
}

impl UpstreamError {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> UpstreamError {
        UpstreamError {
            kind,
            message: message.into(),
        }
    }

    /// 502 when the upstream could not be reached or broke, 504 when it did not answer in
    /// time, 413 when the client sent too much, 400 when its body was malformed, and 499
    /// (nginx's "client closed request", for the log: nobody reads it) when it left.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            FailureKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            FailureKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            FailureKind::ClientBody => StatusCode::BAD_REQUEST,
            FailureKind::ClientGone => CLIENT_CLOSED_REQUEST,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

/// The status logged for a request whose client left before its answer (nginx's 499).
pub const CLIENT_CLOSED_REQUEST: StatusCode = match StatusCode::from_u16(499) {
    Ok(s) => s,
    Err(_) => panic!("499 is a status code"),
};

/// Finds a [`Rejected`] in an error returned by a stack of layers.
pub fn find_rejected(e: &BoxError) -> Option<Rejected> {
    e.downcast_ref::<Rejected>().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up() {
        let r = Rejected {
            kind: RejectKind::RateLimitedKey,
            retry_after: Duration::from_millis(1200),
        };
        let resp = r.response();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
        let r = Rejected {
            kind: RejectKind::Overloaded,
            retry_after: Duration::ZERO,
        };
        assert_eq!(r.response().status(), 503);
        assert_eq!(r.response().headers()[header::RETRY_AFTER], "1");
    }
}
