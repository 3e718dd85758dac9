//! The edge between what every route does and its protections: the forwarding headers the
//! upstream receives (`X-Forwarded-For`, `Forwarded`, ...), the client's address for a
//! protection that reads it, and the request handed on as a plain `http::Request`, as any
//! tower layer takes it.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use tower::Service;

use super::route::Routed;
use crate::layer::limit::ClientAddr;
use crate::layer::{Body, Protection};
use crate::proxy::{set_forwarded, TrustedProxies};

#[derive(Clone)]
pub struct Forward<S> {
    inner: S,
    edge: Arc<Edge>,
}

struct Edge {
    trusted: TrustedProxies,
    /// The route's protections, asked whether they read the client's address.
    protections: Arc<[Arc<dyn Protection>]>,
}

impl<S> Forward<S> {
    pub fn new(
        inner: S,
        trusted: &TrustedProxies,
        protections: Arc<[Arc<dyn Protection>]>,
    ) -> Forward<S> {
        Forward {
            inner,
            edge: Arc::new(Edge {
                trusted: trusted.clone(),
                protections,
            }),
        }
    }
}

impl<S> Service<Routed> for Forward<S>
where
    S: Service<Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, routed: Routed) -> S::Future {
        let Routed {
            mut req,
            peer,
            client,
            ..
        } = routed;
        // Only when asked: the extensions cost two allocations a request.
        if self
            .edge
            .protections
            .iter()
            .any(|p| p.reads_client_addr(&req))
        {
            req.extensions_mut().insert(ClientAddr(client));
        }
        set_forwarded(req.headers_mut(), &peer, &self.edge.trusted);
        self.inner.call(req)
    }
}
