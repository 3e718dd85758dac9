//! `server.max_body_bytes`, at the front: a declared length over it is refused at once
//! (413); a body without one is counted on its way and cut at the limit, which fails the
//! upstream call as the client's fault (413 too). The client's body errors are told apart
//! from the upstream's on the way ([`ClientBodyError`]).

use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Limited};

use super::Refused;
use crate::layer::{Body, BoxError, ClientBodyError};

pub struct BodyLimit {
    max: u64,
}

impl BodyLimit {
    pub fn new(max: u64) -> BodyLimit {
        BodyLimit { max }
    }

    /// The request with its body made the gateway's, or the 413 for a declared length over
    /// the limit.
    pub fn apply<B>(&self, req: Request<B>) -> Result<Request<Body>, Refused>
    where
        B: http_body::Body<Data = Bytes> + Send + Sync + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| crate::codec::parse_length(v.as_bytes()));
        if declared.is_some_and(|n| n > self.max) {
            drain(req.into_body());
            return Err(Refused {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                text: "request body too large",
                reason: Some("body_too_large"),
                close: false,
            });
        }
        let (parts, body) = req.into_parts();
        // A declared length is enforced by the HTTP layer; only a body without one
        // (chunked, HTTP/2 data) needs counting on the way.
        let body = if body.is_end_stream() {
            body.map_err(Into::into).boxed()
        } else if declared.is_some() {
            DrainOnDrop(Some(body))
                .map_err(|e| -> BoxError { Box::new(ClientBodyError::new(e)) })
                .boxed()
        } else {
            let limit = usize::try_from(self.max).unwrap_or(usize::MAX);
            Limited::new(DrainOnDrop(Some(body)).map_err(ClientBodyError::new), limit)
                .map_err(|e| -> BoxError { e })
                .boxed()
        };
        Ok(Request::from_parts(parts, body))
    }
}

/// Reads and discards what the client is still sending (for a few seconds at most), so that
/// it reads the answer given before its body's end (a 413, an upstream's early error) instead
/// of failing on a closed connection: nginx's lingering close.
pub fn drain<B>(body: B)
where
    B: http_body::Body + Send + 'static,
{
    // Dropped outside a runtime (at exit): nothing left to answer.
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let drain = async {
            let mut body = std::pin::pin!(body);
            while let Some(Ok(_)) = body.frame().await {}
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
    });
}

/// A request body that, dropped before its end (the limit reached, the upstream done with
/// it), drains the rest.
struct DrainOnDrop<B: http_body::Body + Send + 'static>(Option<B>);

impl<B> http_body::Body for DrainOnDrop<B>
where
    B: http_body::Body + Send + Unpin + 'static,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        match self.0.as_mut() {
            Some(b) => std::pin::Pin::new(b).poll_frame(cx),
            None => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0
            .as_ref()
            .map_or_else(|| http_body::SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl<B: http_body::Body + Send + 'static> Drop for DrainOnDrop<B> {
    fn drop(&mut self) {
        if let Some(b) = self.0.take() {
            if !b.is_end_stream() {
                drain(b);
            }
        }
    }
}
