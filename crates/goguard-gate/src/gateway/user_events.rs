//! The users a route's protections turn away (5.5): each rejection that counts against the
//! user (a kind with a `user_event`, or a fallback's answer standing for one) is counted by
//! the abuse detector, which raises an "abnormal user behaviour" event at the threshold.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response};
use tower::Service;

use super::route::{After, Around, Finish, Routed};
use crate::clock::SharedClock;
use crate::config::{KeySpec, Route};
use crate::events::{AbuseDetector, EventQueue, Reason};
use crate::layer::limit::request_key;
use crate::layer::{find_rejected, Body, BoxError, Degraded};

/// Reports the users a route's protections turn away.
#[derive(Clone)]
pub struct UserEvents<S> {
    inner: S,
    /// `None` for a route whose protections never turn a user away.
    users: Option<Arc<Users>>,
}

/// A route's users, as events name them.
struct Users {
    route: String,
    /// What names the user; without it (or without it in a request), the client's address.
    key: Option<KeySpec>,
    queue: EventQueue,
    detector: Arc<Mutex<AbuseDetector>>,
    clock: SharedClock,
}

impl<S> UserEvents<S> {
    /// `users`: whether the route's protections can turn a user away, and if so what names
    /// one.
    pub fn new(
        inner: S,
        r: &Route,
        users: Option<Option<KeySpec>>,
        around: &Around,
    ) -> UserEvents<S> {
        UserEvents {
            inner,
            users: users.map(|key| {
                Arc::new(Users {
                    route: r.name.clone(),
                    key,
                    queue: around.events.queue.clone(),
                    detector: around.events.detector.clone(),
                    clock: around.clock.clone(),
                })
            }),
        }
    }
}

impl<S> Service<Routed> for UserEvents<S>
where
    S: Service<Routed, Response = Response<Body>, Error = BoxError>,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = After<S::Future, Option<Pending>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, routed: Routed) -> Self::Future {
        // Taken before the request moves on; written out only for an event.
        let pending = self.users.as_ref().map(|users| Pending {
            key: users.key.as_ref().and_then(|k| UserKey::of(k, &routed.req)),
            client: routed.client,
            users: users.clone(),
        });
        After::new(self.inner.call(routed), pending)
    }
}

/// A request of a route that can turn users away, on its way.
pub struct Pending {
    key: Option<UserKey>,
    client: SocketAddr,
    users: Arc<Users>,
}

impl Finish<Result<Response<Body>, BoxError>> for Option<Pending> {
    type Output = Result<Response<Body>, BoxError>;

    fn finish(self, out: Self::Output) -> Self::Output {
        let Some(p) = self else {
            return out;
        };
        let kind = match &out {
            Ok(resp) => resp.extensions().get::<Degraded>().map(|d| d.0),
            Err(e) => find_rejected(e).map(|r| r.kind),
        };
        if let Some(event) = kind.and_then(|k| k.user_event()) {
            let user = p
                .key
                .as_ref()
                .map_or_else(|| p.client.ip().to_string(), UserKey::text);
            p.users.rejected(&user, Reason::named(event));
        }
        out
    }
}

impl Users {
    /// Counts a rejection of `user`; raises the event when it is one too many.
    fn rejected(&self, user: &str, reason: Reason) {
        let now = self.clock.now();
        let event = self
            .detector
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .rejected(&self.route, user, reason, now);
        if let Some(e) = event {
            tracing::warn!(user = %e.user, route = %e.route, reason = ?e.reason, count = e.count, "abnormal user behaviour");
            self.queue.emit(e);
        }
    }
}

/// Who sent a request, as events name them: taken before the request moves on, written out
/// only for an event (a header's value is shared with the request, not copied).
enum UserKey {
    Header(HeaderValue),
    Text(String),
}

impl UserKey {
    fn of<B>(spec: &KeySpec, req: &Request<B>) -> Option<UserKey> {
        match spec {
            KeySpec::Header(name) => req
                .headers()
                .get(name)
                .filter(|v| v.to_str().is_ok_and(|t| !t.is_empty()))
                .cloned()
                .map(UserKey::Header),
            other => request_key(other, req).map(|k| UserKey::Text(k.into_owned())),
        }
    }

    fn text(&self) -> String {
        match self {
            UserKey::Header(v) => v.to_str().unwrap_or_default().to_string(),
            UserKey::Text(t) => t.clone(),
        }
    }
}
