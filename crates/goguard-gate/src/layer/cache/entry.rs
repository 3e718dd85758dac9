//! A cached answer ([`Stored`]): what may be stored ([`verdict`]), the body read into memory
//! up to a bound ([`read_body`]), the answer given from an entry, and the bytes an entry is
//! kept as in Redis.

use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;

use super::Rule;
use crate::layer::{full, Body, BoxError};

/// One stored answer.
#[derive(Debug)]
pub struct Stored {
    pub status: StatusCode,
    /// The answer's headers, less what is per exchange (hop-by-hop, `Date`, `Age`).
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The request headers the answer varies on (`Vary`), with the values they had.
    pub vary: Vec<(HeaderName, Option<HeaderValue>)>,
    /// An answer for something missing (a 404, a configured empty body).
    pub negative: bool,
    /// On the layer's clock.
    pub stored_at: Instant,
    pub fresh_for: Duration,
    /// How long after `fresh_for` it may still be served while it is fetched again.
    pub stale_for: Duration,
    /// Set by the request that starts its refresh: one refresh per entry.
    pub refreshing: AtomicBool,
}

/// How an entry stands at a time.
#[derive(Debug, PartialEq, Eq)]
pub enum Age {
    Fresh,
    /// Past its freshness, within stale-while-revalidate.
    Stale,
    Expired,
}

impl Stored {
    pub fn age(&self, now: Instant) -> Age {
        let age = now.saturating_duration_since(self.stored_at);
        if age < self.fresh_for {
            Age::Fresh
        } else if age < self.fresh_for + self.stale_for {
            Age::Stale
        } else {
            Age::Expired
        }
    }

    /// Whether a request may be given this answer: the headers it varies on agree.
    pub fn suits<B>(&self, req: &Request<B>) -> bool {
        self.vary
            .iter()
            .all(|(name, value)| req.headers().get(name) == value.as_ref())
    }

    /// What the entry weighs against the cache's byte bound.
    pub fn weight(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 32)
            .sum();
        self.body.len() + headers + 128
    }

    /// The answer to a request, `x-cache` saying where it came from.
    pub fn response(&self, now: Instant, how: &'static str) -> Response<Body> {
        let mut r = Response::new(full(self.body.clone()));
        *r.status_mut() = self.status;
        *r.headers_mut() = self.headers.clone();
        let age = now.saturating_duration_since(self.stored_at).as_secs();
        r.headers_mut().insert(header::AGE, age.into());
        r.headers_mut()
            .insert(X_CACHE, HeaderValue::from_static(how));
        r
    }
}

pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// Whether an answer may be stored, from its head: `Some(negative)` when it may.
pub fn verdict(rule: &Rule, head: &http::response::Parts) -> Option<bool> {
    let status = head.status.as_u16();
    let negative = rule.negative.statuses.contains(&status);
    if !negative && !rule.statuses.contains(&status) {
        return None;
    }
    if negative && rule.negative.ttl.is_zero() {
        return None;
    }
    // A shared cache never stores what is one user's (RFC 9111 3, 5.2.2.7) or what must
    // not be kept at all; a cookie being set is one user's too.
    let forbidden = head
        .headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| {
            d.trim()
                .split('=')
                .next()
                .unwrap_or("")
                .to_ascii_lowercase()
        })
        .any(|d| matches!(d.as_str(), "no-store" | "private" | "no-cache"));
    let varies_on_all = head.headers.get_all(header::VARY).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|n| n.trim() == "*"))
    });
    if forbidden || varies_on_all || head.headers.contains_key(header::SET_COOKIE) {
        return None;
    }
    Some(negative)
}

/// The request headers an answer varies on, with the request's values.
pub fn vary_of(answer: &HeaderMap, asked: &HeaderMap) -> Vec<(HeaderName, Option<HeaderValue>)> {
    answer
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .map(|n| {
            let v = asked.get(&n).cloned();
            (n, v)
        })
        .collect()
}

/// The headers kept with an entry: not those of one exchange.
pub fn kept_headers(mut headers: HeaderMap) -> HeaderMap {
    crate::proxy::strip_hop_by_hop(&mut headers);
    for h in [header::DATE, header::AGE, X_CACHE] {
        headers.remove(h);
    }
    headers
}

/// A body read into memory, or what to give the client when it could not be.
pub enum Read {
    Whole(Bytes),
    /// Longer than the bound, or with trailers: the part read, then the rest, streamed.
    Unstorable(Body),
    /// It broke after the part read: the part, then the error.
    Failed(Body),
}

/// Reads `body` whole if it holds at most `limit` bytes.
pub async fn read_body(mut body: Body, limit: usize) -> Read {
    let mut buf = BytesMut::new();
    loop {
        let (then, rest) = match body.frame().await {
            None => return Read::Whole(buf.freeze()),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if buf.len() + data.len() <= limit => {
                    buf.extend_from_slice(&data);
                    continue;
                }
                Ok(data) => (Ok(Frame::data(data)), Some(body)),
                Err(trailers) => (Ok(trailers), Some(body)),
            },
            Some(Err(e)) => {
                let part = Prefixed::body(buf.freeze(), Err(e), None);
                return Read::Failed(part);
            }
        };
        return Read::Unstorable(Prefixed::body(buf.freeze(), then, rest));
    }
}

/// Bytes already read, then a frame or an error, then the rest of the body.
struct Prefixed {
    prefix: Option<Bytes>,
    then: Option<Result<Frame<Bytes>, BoxError>>,
    rest: Option<Body>,
}

impl Prefixed {
    fn body(prefix: Bytes, then: Result<Frame<Bytes>, BoxError>, rest: Option<Body>) -> Body {
        Prefixed {
            prefix: Some(prefix).filter(|p| !p.is_empty()),
            then: Some(then),
            rest,
        }
        .boxed()
    }
}

impl http_body::Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(p) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        if let Some(t) = self.then.take() {
            return Poll::Ready(Some(t));
        }
        match &mut self.rest {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }
}

/// The wall clock in milliseconds: entries in Redis are shared by gateways whose monotonic
/// clocks have nothing in common.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An entry as kept in Redis: a version byte, the status, when it stops being fresh and when
/// it stops being served stale (wall clock, ms), the negative flag, then length-prefixed
/// headers, the varied-on request headers (a value of length `u32::MAX` for a missing one)
/// and the body. Its own format: a few lines against a dependency for base64 or a codec.
pub fn encode(e: &Stored, now: Instant) -> (Vec<u8>, Duration) {
    let age = now.saturating_duration_since(e.stored_at);
    let fresh_left = e.fresh_for.saturating_sub(age);
    let served_left = (e.fresh_for + e.stale_for).saturating_sub(age);
    let wall = unix_ms();
    let mut out = Vec::with_capacity(e.body.len() + 256);
    out.push(1u8);
    out.extend_from_slice(&e.status.as_u16().to_be_bytes());
    out.extend_from_slice(&(wall + fresh_left.as_millis() as u64).to_be_bytes());
    out.extend_from_slice(&(wall + served_left.as_millis() as u64).to_be_bytes());
    out.push(u8::from(e.negative));
    let put = |out: &mut Vec<u8>, b: &[u8]| {
        out.extend_from_slice(&(b.len() as u32).to_be_bytes());
        out.extend_from_slice(b);
    };
    out.extend_from_slice(&(e.headers.len() as u32).to_be_bytes());
    for (k, v) in &e.headers {
        put(&mut out, k.as_str().as_bytes());
        put(&mut out, v.as_bytes());
    }
    out.extend_from_slice(&(e.vary.len() as u32).to_be_bytes());
    for (k, v) in &e.vary {
        put(&mut out, k.as_str().as_bytes());
        match v {
            Some(v) => put(&mut out, v.as_bytes()),
            None => out.extend_from_slice(&u32::MAX.to_be_bytes()),
        }
    }
    out.extend_from_slice(&e.body);
    (out, served_left)
}

/// An entry read back from Redis, on the layer's clock; `None` if the bytes are not one or
/// it is past serving.
pub fn decode(b: &[u8], now: Instant) -> Option<Stored> {
    let mut r = Reader(b);
    if r.take(1)? != [1] {
        return None;
    }
    let status = StatusCode::from_u16(u16::from_be_bytes(r.take(2)?.try_into().ok()?)).ok()?;
    let fresh_until = r.u64()?;
    let served_until = r.u64()?;
    let negative = r.take(1)? == [1];
    let mut headers = HeaderMap::new();
    for _ in 0..r.u32()? {
        let k = HeaderName::from_bytes(r.field()?.ok()?).ok()?;
        let v = HeaderValue::from_bytes(r.field()?.ok()?).ok()?;
        headers.append(k, v);
    }
    let mut vary = Vec::new();
    for _ in 0..r.u32()? {
        let k = HeaderName::from_bytes(r.field()?.ok()?).ok()?;
        let v = match r.field()? {
            Ok(v) => Some(HeaderValue::from_bytes(v).ok()?),
            Err(()) => None,
        };
        vary.push((k, v));
    }
    let wall = unix_ms();
    if served_until <= wall {
        return None;
    }
    let fresh_for = Duration::from_millis(fresh_until.saturating_sub(wall));
    Some(Stored {
        status,
        headers,
        body: Bytes::copy_from_slice(r.0),
        vary,
        negative,
        stored_at: now,
        fresh_for,
        stale_for: Duration::from_millis(served_until - wall) - fresh_for,
        refreshing: AtomicBool::new(false),
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    /// A length-prefixed field; `Err` for the missing-value mark.
    fn field(&mut self) -> Option<Result<&'a [u8], ()>> {
        match self.u32()? {
            u32::MAX => Some(Err(())),
            n => self.take(n as usize).map(Ok),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_back_from_its_bytes() {
        let now = Instant::now();
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let e = Stored {
            status: StatusCode::OK,
            headers,
            body: Bytes::from_static(b"hello"),
            vary: vec![
                (
                    header::ACCEPT_LANGUAGE,
                    Some(HeaderValue::from_static("de")),
                ),
                (header::ACCEPT_ENCODING, None),
            ],
            negative: false,
            stored_at: now,
            fresh_for: Duration::from_secs(60),
            stale_for: Duration::from_secs(30),
            refreshing: AtomicBool::new(false),
        };
        let (bytes, ttl) = encode(&e, now);
        assert_eq!(ttl, Duration::from_secs(90));
        let back = decode(&bytes, now).expect("decodes");
        assert_eq!(
            (back.status, &back.body, &back.headers, &back.vary),
            (e.status, &e.body, &e.headers, &e.vary)
        );
        assert!(back.fresh_for > Duration::from_secs(59) && back.fresh_for <= e.fresh_for);
        assert!(decode(&bytes[..bytes.len() - 40], now).is_none_or(|b| b.body.len() < 5));
        assert!(decode(b"\x02junk", now).is_none());
    }

    #[tokio::test]
    async fn a_body_over_the_bound_is_given_whole_all_the_same() {
        let body = || {
            let chunks =
                ["abc", "def", "gh"].map(|c| Ok::<_, BoxError>(Frame::data(Bytes::from(c))));
            http_body_util::StreamBody::new(tokio_stream::iter(chunks)).boxed()
        };
        match read_body(body(), 8).await {
            Read::Whole(b) => assert_eq!(b, "abcdefgh"),
            _ => panic!("8 bytes fit in 8"),
        }
        match read_body(body(), 4).await {
            Read::Unstorable(rest) => {
                assert_eq!(rest.collect().await.unwrap().to_bytes(), "abcdefgh")
            }
            _ => panic!("8 bytes do not fit in 4"),
        }
    }
}
