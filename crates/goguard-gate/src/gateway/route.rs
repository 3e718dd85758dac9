//! A route's stack: its protections over the upstream pool, and around them what every route
//! does, one copy per serving thread. [`RouteStack::build`] is the one place it is put
//! together.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use http::{Method, Request, Response};
use http_body_util::BodyExt;
use tower::{Layer, Service, ServiceBuilder};

use super::answer::Answer;
use super::forward::Forward;
use super::observe::{Observe, Recorder};
use super::protections::{self, Parts};
use super::user_events::UserEvents;
use super::Stack;
use crate::config::Route;
use crate::connections::WORKER_LISTS;
use crate::layer::{Body, BoxError, GuardedBody, MetricDesc, Protection, ProtectionLayer};
use crate::proxy::Peer;
use crate::upstream::UpstreamPool;

/// A request a route took, with what the front learned of it.
pub struct Routed {
    pub req: Request<Body>,
    /// The connection's peer, for the forwarding headers.
    pub peer: Peer,
    /// The client's address (the peer, or what a trusted proxy says).
    pub client: std::net::SocketAddr,
    /// When the request arrived, before the front's checks.
    pub start: Instant,
    /// Its method and path for the access log; `None` when the log is off.
    pub logged: Option<(Method, String)>,
}

/// A route, running.
pub struct RouteStack {
    pub rule: Route,
    /// The route's stack, one per serving thread ([`crate::connections::worker`]). Called by
    /// its thread only, so the lock is never waited for: it costs less than cloning the
    /// stack for each call, tower's usual way to call a service through a shared reference.
    services: Vec<Mutex<RouteService>>,
    /// Its protections, from the upstream out: their status, metrics and what they read.
    pub protections: Vec<Arc<dyn Protection>>,
    /// The metrics protections report, whether or not this route has them.
    pub metrics: Vec<&'static MetricDesc>,
    /// Its protections' states, for the next stack to take over ([`protections::Keep`]).
    pub kept: Vec<protections::KeptState>,
}

/// What every route does around its protections, from the client in: the record (metrics,
/// access log), the answers for rejections and failures, the users turned away, the
/// forwarding headers. Named types: the request's future is awaited in place, not boxed.
type RouteService = Observe<Answer<UserEvents<Forward<DynProtections>>>>;

/// A route's protections over its pool. Their types change with every protection added
/// (each wraps the next): behind one box per serving thread, built once. Their futures are
/// boxed already, so calling through the box costs no allocation.
type DynProtections = Box<
    dyn Service<Request<Body>, Response = Response<Body>, Error = BoxError, Future = Answering>
        + Send,
>;

pub use crate::layer::Answering;

/// A route's answer, on its way to the client.
pub type RouteFuture = <RouteService as Service<Routed>>::Future;

impl RouteStack {
    /// Builds the route's stack, taking over its protections' states from the previous
    /// stack's route of the same name where their rules are unchanged.
    pub fn build(r: &Route, parts: &mut Parts, around: &Around) -> Result<RouteStack, String> {
        let pool = &parts
            .pools
            .get(&r.upstream)
            .ok_or_else(|| format!("route {}: no upstream `{}`", r.name, r.upstream))?
            .value;
        let mut keep = parts.keep_for(&r.name);
        // The protections from the upstream out: a request meets them in the opposite
        // order. A new protection is its layer, its section of the route's configuration,
        // and one line here.
        let inner = Protections::on(pool)
            .push(protections::breaker(r, parts, &mut keep)?)
            .push(protections::concurrency(r, &mut keep)?)
            .push(protections::cache(r, parts, &mut keep)?)
            .push(protections::bloom(r, parts, &mut keep)?)
            .push(protections::limit(r, parts, &mut keep)?)
            .push(protections::shadow(r, parts, &mut keep)?)
            .push(protections::fault(r, parts)?)
            .push(protections::colour(parts, &mut keep)?);
        let user_key = around
            .user_key
            .cloned()
            .or_else(|| inner.protections.iter().find_map(|p| p.user_key().cloned()));
        // Who the user is matters only to a route that can turn one away.
        let users = inner
            .protections
            .iter()
            .flat_map(|p| p.rejects())
            .any(|k| k.user_event().is_some())
            .then_some(user_key);
        let protections: Arc<[Arc<dyn Protection>]> = inner.protections.clone().into();
        let services = inner
            .services
            .into_iter()
            .map(|inner| {
                let route = ServiceBuilder::new()
                    .layer_fn(|s| Observe::new(s, Recorder::route(r, around)))
                    .layer_fn(|s| Answer::new(s, &r.name))
                    .layer_fn(|s| UserEvents::new(s, r, users.clone(), around))
                    .layer_fn(|s| Forward::new(s, around.trusted, protections.clone()))
                    .service(Box::new(inner) as DynProtections);
                Mutex::new(route)
            })
            .collect();
        Ok(RouteStack {
            rule: r.clone(),
            services,
            protections: inner.protections,
            metrics: inner.metrics,
            kept: keep.into_kept(),
        })
    }

    /// Sends a request through the calling thread's copy of the stack.
    pub fn call(&self, routed: Routed) -> RouteFuture {
        let mut service = self.services[crate::connections::worker()]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // A route's layers decide when called, never before: each is ready at once (the
        // protections' contract, see `Protections::push`), and the call is made here.
        let ready = service.poll_ready(&mut Context::from_waker(Waker::noop()));
        debug_assert!(ready.is_ready(), "a route's stack is always ready");
        service.call(routed)
    }
}

/// What every route's stack is built with besides its own rule.
pub struct Around<'a> {
    pub trusted: &'a crate::proxy::TrustedProxies,
    pub events: &'a super::EventsPart,
    /// `[events] user`: who the user is, when not the route's per-key limit key.
    pub user_key: Option<&'a crate::config::KeySpec>,
    pub metrics: &'a crate::metrics::RequestMetrics,
    pub access_log: &'a crate::access_log::AccessLog,
    pub clock: &'a crate::clock::SharedClock,
}

/// A protection whose answers carry a body of their own (a concurrency slot held until the
/// body ends), with the gateway's body instead.
pub struct BoxedBody<L>(pub L);

impl<L: Layer<S>, S> Layer<S> for BoxedBody<L> {
    type Service = BoxedBodyService<L::Service>;

    fn layer(&self, inner: S) -> Self::Service {
        BoxedBodyService(self.0.layer(inner))
    }
}

#[derive(Clone)]
pub struct BoxedBodyService<S>(S);

impl<S> Service<Request<Body>> for BoxedBodyService<S>
where
    S: Service<Request<Body>, Response = Response<GuardedBody<Body>>, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Answering;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Answering {
        boxed_body(self.0.call(req))
    }
}

/// A plain function over a named future type: inside `call` the compiler cannot prove the
/// future `Send` for every lifetime of the boxed error.
fn boxed_body<F>(call: F) -> Answering
where
    F: Future<Output = Result<Response<GuardedBody<Body>>, BoxError>> + Send + 'static,
{
    Box::pin(async move { Ok(call.await?.map(BodyExt::boxed)) })
}

impl<L: Protection> Protection for BoxedBody<L> {
    fn status(&self, out: &mut Vec<(&'static str, serde_json::Value)>) {
        self.0.status(out)
    }

    fn samples(&self, out: &mut Vec<crate::layer::Sample>) {
        self.0.samples(out)
    }

    fn rejects(&self) -> &'static [crate::layer::RejectKind] {
        self.0.rejects()
    }

    fn reads_headers(&self, out: &mut Vec<http::HeaderName>) {
        self.0.reads_headers(out)
    }

    fn user_key(&self) -> Option<&crate::config::KeySpec> {
        self.0.user_key()
    }

    fn reads_client_addr(&self, req: &Request<Body>) -> bool {
        self.0.reads_client_addr(req)
    }
}

impl<L: ProtectionLayer> ProtectionLayer for BoxedBody<L> {
    const METRICS: &'static [MetricDesc] = L::METRICS;

    fn fork(&self) -> Self {
        BoxedBody(self.0.fork())
    }
}

/// A protection's service over `S`, or `S` alone on a route without the protection. Unlike
/// tower's `Either`, its future is the one both sides give, not a third type around them.
#[derive(Clone)]
pub enum Optional<P, S> {
    With(P),
    Without(S),
}

impl<P, S> Service<Request<Body>> for Optional<P, S>
where
    P: Service<Request<Body>, Response = Response<Body>, Error = BoxError, Future = Answering>,
    S: Service<Request<Body>, Response = Response<Body>, Error = BoxError, Future = Answering>,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Answering;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Optional::With(p) => p.poll_ready(cx),
            Optional::Without(s) => s.poll_ready(cx),
        }
    }

    fn call(&mut self, req: Request<Body>) -> Answering {
        match self {
            Optional::With(p) => p.call(req),
            Optional::Without(s) => s.call(req),
        }
    }
}

/// A route's protections over its pool, one copy per serving thread, built from the pool
/// out.
struct Protections<S> {
    services: Vec<S>,
    protections: Vec<Arc<dyn Protection>>,
    metrics: Vec<&'static MetricDesc>,
}

impl Protections<UpstreamPool> {
    fn on(pool: &UpstreamPool) -> Self {
        Protections {
            services: (0..WORKER_LISTS).map(|_| pool.fork()).collect(),
            protections: Vec::new(),
            metrics: Vec::new(),
        }
    }
}

impl<S> Protections<S> {
    /// Wraps each copy in `layer` when the route has it, on a handle of the copy's thread.
    /// A protection's service answers with the gateway's body and a boxed future, and is
    /// ready at once: it decides what to do with a request when called.
    fn push<L>(self, layer: Option<L>) -> Protections<Optional<L::Service, S>>
    where
        L: ProtectionLayer + Layer<S>,
        L::Service:
            Service<Request<Body>, Response = Response<Body>, Error = BoxError, Future = Answering>,
    {
        let Protections {
            services,
            mut protections,
            mut metrics,
        } = self;
        metrics.extend(L::METRICS);
        let services = match layer {
            None => services.into_iter().map(Optional::Without).collect(),
            Some(layer) => {
                let services = services
                    .into_iter()
                    .map(|s| Optional::With(layer.fork().layer(s)))
                    .collect();
                protections.push(Arc::new(layer));
                services
            }
        };
        Protections {
            services,
            protections,
            metrics,
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner call's future, then [`Finish::finish`] on its output with what a layer kept
    /// of the request: a layer's future without a box of its own.
    pub struct After<F, K> {
        #[pin]
        call: F,
        kept: Option<K>,
    }
}

impl<F, K> After<F, K> {
    pub fn new(call: F, kept: K) -> Self {
        After {
            call,
            kept: Some(kept),
        }
    }
}

/// What a layer does with its inner call's output.
pub trait Finish<T> {
    type Output;
    fn finish(self, out: T) -> Self::Output;
}

impl<F: Future, K: Finish<F::Output>> Future for After<F, K> {
    type Output = K::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<K::Output> {
        let this = self.project();
        let out = std::task::ready!(this.call.poll(cx));
        let kept = this.kept.take().expect("After polled after its end");
        Poll::Ready(kept.finish(out))
    }
}

impl Stack {
    /// The route of that name, in this stack.
    pub(super) fn route_named(&self, name: &str) -> Option<&RouteStack> {
        self.routes.iter().find(|r| r.rule.name == name)
    }
}
