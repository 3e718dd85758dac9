//! A request's record: its metrics (requests by status, latency, in flight, rejections) and its
//! access log line, once it ends, or as a 499 when the client leaves first and the server
//! drops it. [`Observe`] is the outermost layer of a route's stack; the front records the
//! requests no route took the same way (route `-`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Method, Request, Response};
use tower::Service;

use super::answer::Answered;
use super::route::{After, Around, Finish, Routed};
use crate::access_log::{AccessLog, AccessRecord};
use crate::config::Route;
use crate::layer::{Body, CLIENT_CLOSED_REQUEST};
use crate::metrics::{sharded, RequestMetrics, RouteLabel, RouteReason, RouteStatus};

/// Where the records of one route's requests go.
pub struct Recorder {
    /// The route's name; `-` for requests no route took.
    route: String,
    metrics: RequestMetrics,
    /// A route's latency histogram, in-flight gauge and 200 counter, looked up at its first
    /// request. None for `-`, whose series appear only as its requests need them.
    hot: Option<OnceLock<Hot>>,
    log: AccessLog,
}

/// The metrics every request of a route touches, resolved once from their families.
struct Hot {
    latency: sharded::Histogram,
    in_flight: sharded::Gauge,
    ok: sharded::Counter,
}

impl Recorder {
    /// The recorder of a route's requests.
    pub fn route(r: &Route, around: &Around) -> Arc<Recorder> {
        Arc::new(Recorder {
            route: r.name.clone(),
            metrics: around.metrics.clone(),
            hot: Some(OnceLock::new()),
            log: around.access_log.clone(),
        })
    }

    /// The recorder of the requests no route took.
    pub fn unrouted(metrics: &RequestMetrics, log: &AccessLog) -> Recorder {
        Recorder {
            route: "-".into(),
            metrics: metrics.clone(),
            hot: None,
            log: log.clone(),
        }
    }

    fn hot(&self) -> Option<&Hot> {
        let hot = self.hot.as_ref()?;
        Some(hot.get_or_init(|| {
            let label = RouteLabel {
                route: self.route.clone(),
            };
            Hot {
                latency: self.metrics.latency.get_or_create(&label).clone(),
                in_flight: self.metrics.in_flight.get_or_create(&label).clone(),
                ok: self
                    .metrics
                    .requests
                    .get_or_create(&RouteStatus {
                        route: self.route.clone(),
                        status: 200,
                    })
                    .clone(),
            }
        }))
    }

    /// A record of a request arriving now; its method is kept when the log is on.
    pub fn record<R: Deref<Target = Recorder>>(
        this: R,
        client: SocketAddr,
        method: &Method,
    ) -> Record<R> {
        let method = this.log.enabled().then(|| method.clone());
        Record {
            recorder: this,
            start: Instant::now(),
            client,
            logged: method.map(|m| (m, String::new())),
            reason: None,
            done: false,
        }
    }
}

/// One request's record, written when it is finished, or dropped unfinished (a 499).
pub struct Record<R: Deref<Target = Recorder>> {
    recorder: R,
    start: Instant,
    client: SocketAddr,
    /// Method and path, when the access log is on.
    logged: Option<(Method, String)>,
    /// Why the request was turned away or failed, for the metrics and the log.
    pub reason: Option<&'static str>,
    done: bool,
}

impl<R: Deref<Target = Recorder>> Record<R> {
    /// The request as the front settled it: its normalised path, its client's address.
    pub fn admitted<B>(&mut self, req: &Request<B>, client: SocketAddr) {
        if let Some((_, path)) = &mut self.logged {
            *path = req.uri().path().to_string();
        }
        self.client = client;
    }

    /// Leaves the request to its route's record: when it arrived, its client and what the
    /// log needs.
    pub fn hand_over(&mut self) -> (Instant, SocketAddr, Option<(Method, String)>) {
        self.done = true;
        (self.start, self.client, self.logged.take())
    }

    /// Records the request with its answer's status (nothing once handed over).
    pub fn finish(&mut self, status: u16) {
        if self.done {
            return;
        }
        self.done = true;
        let r = &*self.recorder;
        let elapsed = self.start.elapsed();
        match r.hot() {
            Some(hot) => {
                hot.latency.observe(elapsed);
                if status == 200 {
                    hot.ok.inc();
                }
            }
            None => {
                r.metrics
                    .latency
                    .get_or_create(&RouteLabel {
                        route: r.route.clone(),
                    })
                    .observe(elapsed);
            }
        }
        if status != 200 || r.hot.is_none() {
            r.metrics
                .requests
                .get_or_create(&RouteStatus {
                    route: r.route.clone(),
                    status,
                })
                .inc();
        }
        if let Some(reason) = self.reason {
            r.metrics
                .rejections
                .get_or_create(&RouteReason {
                    route: r.route.clone(),
                    reason: reason.to_string(),
                })
                .inc();
        }
        if let Some((method, path)) = self.logged.take() {
            r.log.write(AccessRecord {
                client: self.client.ip(),
                method: method.as_str(),
                path: &path,
                route: &r.route,
                status,
                duration: elapsed,
                rejected: self.reason,
            });
        }
    }
}

impl<R: Deref<Target = Recorder>> Drop for Record<R> {
    fn drop(&mut self) {
        if !self.done {
            // The client left before its answer's head was ready: out of flight too.
            if let Some(hot) = self.recorder.hot() {
                hot.in_flight.dec();
            }
            self.reason = Some("client_closed");
            self.finish(CLIENT_CLOSED_REQUEST.as_u16());
        }
    }
}

/// The outermost layer of a route's stack: counts the request in flight, and records it.
#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    recorder: Arc<Recorder>,
}

impl<S> Observe<S> {
    pub fn new(inner: S, recorder: Arc<Recorder>) -> Observe<S> {
        Observe { inner, recorder }
    }
}

impl<S> Service<Routed> for Observe<S>
where
    S: Service<Routed, Response = Answered, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = After<S::Future, Record<Arc<Recorder>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut routed: Routed) -> Self::Future {
        if let Some(hot) = self.recorder.hot() {
            hot.in_flight.inc();
        }
        let record = Record {
            recorder: self.recorder.clone(),
            start: routed.start,
            client: routed.client,
            logged: routed.logged.take(),
            reason: None,
            done: false,
        };
        After::new(self.inner.call(routed), record)
    }
}

impl Finish<Result<Answered, Infallible>> for Record<Arc<Recorder>> {
    type Output = Result<Response<Body>, Infallible>;

    fn finish(mut self, out: Result<Answered, Infallible>) -> Self::Output {
        let Answered { response, reason } = out?;
        // Out of flight when the answer's head is ready, as the latency.
        if let Some(hot) = self.recorder.hot() {
            hot.in_flight.dec();
        }
        self.reason = reason;
        Record::finish(&mut self, response.status().as_u16());
        Ok(response)
    }
}
