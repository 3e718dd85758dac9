//! The client's answer when a route's stack did not give one: a protection's rejection becomes
//! its 429 or 503 with `Retry-After` ([`crate::layer::Rejected::response`]), an upstream
//! failure its 502, 504, 413, 400 or 499, and the reason is passed out for the record.
//! An upstream's own answer loses its hop-by-hop headers.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{header, HeaderValue, Response, StatusCode};
use tower::Service;

use super::route::{After, Finish, Routed};
use crate::layer::fault::ResetConnection;
use crate::layer::{find_rejected, full, Body, BoxError, Degraded, FailureKind, UpstreamError};

/// The status recorded for a request answered by closing its connection (nginx's 444).
pub const NO_ANSWER: StatusCode = match StatusCode::from_u16(444) {
    Ok(s) => s,
    Err(_) => panic!("444 is a status code"),
};
use crate::proxy::strip_hop_by_hop;

/// An answer, and why the request was turned away or failed, if it was.
pub struct Answered {
    pub response: Response<Body>,
    pub reason: Option<&'static str>,
}

/// Turns what a route's inner stack returns into the client's answer.
#[derive(Clone)]
pub struct Answer<S> {
    inner: S,
    /// The route's name, for the debug log of failures.
    route: Arc<str>,
}

impl<S> Answer<S> {
    pub fn new(inner: S, route: &str) -> Answer<S> {
        Answer {
            inner,
            route: route.into(),
        }
    }
}

impl<S> Service<Routed> for Answer<S>
where
    S: Service<Routed, Response = Response<Body>, Error = BoxError>,
{
    type Response = Answered;
    type Error = Infallible;
    type Future = After<S::Future, Route>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The protections and the pool are always ready (they decide when called): only a
        // wait would be passed on, there is no failure to answer for here.
        self.inner.poll_ready(cx).map(|_| Ok(()))
    }

    fn call(&mut self, routed: Routed) -> Self::Future {
        After::new(self.inner.call(routed), Route(self.route.clone()))
    }
}

/// The route a call was for.
pub struct Route(Arc<str>);

impl Finish<Result<Response<Body>, BoxError>> for Route {
    type Output = Result<Answered, Infallible>;

    fn finish(self, out: Result<Response<Body>, BoxError>) -> Self::Output {
        Ok(answer(&self.0, out))
    }
}

fn answer(route: &str, result: Result<Response<Body>, BoxError>) -> Answered {
    let (response, reason) = match result {
        Ok(mut resp) => {
            strip_hop_by_hop(resp.headers_mut());
            // A fallback's answer stands for a rejection.
            let reason = resp.extensions().get::<Degraded>().map(|d| d.0.as_str());
            (resp, reason)
        }
        Err(e) => {
            if let Some(rj) = find_rejected(&e) {
                (rj.response(), Some(rj.kind.as_str()))
            } else if e.is::<ResetConnection>() {
                // No answer: the server closes the connection on seeing the mark. The
                // record says 444, nginx's status for a connection closed unanswered.
                let mut r = plain(NO_ANSWER, "connection reset");
                r.extensions_mut().insert(ResetConnection);
                (r, Some("fault_reset"))
            } else if let Some(u) = e.downcast_ref::<UpstreamError>() {
                tracing::debug!(route = %route, error = %u, "upstream failed");
                let reason = match u.kind {
                    FailureKind::BodyTooLarge => Some("body_too_large"),
                    FailureKind::ClientBody => Some("bad_request"),
                    FailureKind::ClientGone => Some("client_closed"),
                    _ => None,
                };
                let text = if u.kind.is_client_fault() {
                    format!("request body: {}", u.message)
                } else {
                    format!("upstream: {}", u.message)
                };
                (plain(u.status(), &text), reason)
            } else {
                tracing::debug!(route = %route, error = %e, "request failed");
                (
                    plain(StatusCode::BAD_GATEWAY, "upstream request failed"),
                    None,
                )
            }
        }
    };
    Answered { response, reason }
}

/// A one-line text answer.
pub fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(full(format!("{text}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
