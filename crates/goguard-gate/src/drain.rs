//! Telling a serving thread's client connections to finish their requests and close, and
//! waiting until they have: the graceful drain on shutdown.
//!
//! Why not hyper_util's `GracefulShutdown`: its signal is a watch future polled on every
//! poll of every connection, which takes a lock to register the task's waker each time
//! (about 2% of the gateway's instructions per request on `bench/gate`). Here a connection
//! registers its task's waker once, again only if the waker changes, and reads the drain
//! flag with one atomic load.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use hyper_util::server::graceful::GracefulConnection;
use slab::Slab;
use tokio::sync::Notify;

/// A connection that can be asked to finish: close after the response in progress (at once
/// when idle), or send HTTP/2's GOAWAY.
pub trait Graceful: Future {
    fn finish(self: Pin<&mut Self>);
}

impl<C: GracefulConnection> Graceful for C {
    fn finish(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// The connections of one accept loop.
#[derive(Clone, Default)]
pub struct Drain(Arc<Shared>);

#[derive(Default)]
struct Shared {
    draining: AtomicBool,
    /// Each watched connection's task waker (none until first polled), in a slot of its
    /// own.
    conns: Mutex<Slab<Option<Waker>>>,
    /// Told when the last connection ends during a drain.
    done: Notify,
}

impl Drain {
    pub fn new() -> Drain {
        Drain::default()
    }

    /// Watches a connection: once [`Drain::start`] is called, it is asked to finish.
    pub fn watch<C: Graceful>(&self, conn: C) -> Watched<C> {
        let key = self.0.conns().insert(None);
        Watched {
            conn,
            drain: Arc::clone(&self.0),
            key,
            registered: None,
            shutting_down: false,
        }
    }

    /// The connections still open.
    pub fn open(&self) -> usize {
        self.0.conns().len()
    }

    /// Asks every watched connection to finish (HTTP/1: close after the response in
    /// progress, or at once when idle; HTTP/2: GOAWAY) and waits until all have ended.
    pub async fn start(&self) {
        self.0.draining.store(true, Ordering::SeqCst);
        for waker in self.0.conns().iter().filter_map(|(_, w)| w.as_ref()) {
            waker.wake_by_ref();
        }
        loop {
            let done = self.0.done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.open() == 0 {
                return;
            }
            done.await;
        }
    }
}

impl Shared {
    fn conns(&self) -> std::sync::MutexGuard<'_, Slab<Option<Waker>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pin_project_lite::pin_project! {
    /// A connection that finishes gracefully when its [`Drain`] starts.
    pub struct Watched<C> {
        #[pin]
        conn: C,
        drain: Arc<Shared>,
        key: usize,
        // The waker last registered, to register again only when the task's changes.
        registered: Option<Waker>,
        shutting_down: bool,
    }

    impl<C> PinnedDrop for Watched<C> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let mut w = this.drain.conns();
            w.remove(*this.key);
            if w.is_empty() && this.drain.draining.load(Ordering::SeqCst) {
                this.drain.done.notify_waiters();
            }
        }
    }
}

impl<C: Graceful> Future for Watched<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if !this
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            let waker = cx.waker().clone();
            this.drain.conns()[*this.key] = Some(waker.clone());
            *this.registered = Some(waker);
        }
        // Read after registering: a drain that starts after this load wakes the waker just
        // registered, so the flag is seen on the next poll.
        if !*this.shutting_down && this.drain.draining.load(Ordering::SeqCst) {
            *this.shutting_down = true;
            this.conn.as_mut().finish();
        }
        this.conn.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use http::{Request, Response};
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// Serves each accepted connection with HTTP/1.1 under the drain, answering after
    /// `delay`; says on `started` when a request has reached the service.
    async fn serve(
        listener: TcpListener,
        drain: Drain,
        delay: Duration,
        started: tokio::sync::mpsc::UnboundedSender<()>,
    ) {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let started = started.clone();
            let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
                let _ = started.send(());
                async move {
                    tokio::time::sleep(delay).await;
                    Ok::<_, std::convert::Infallible>(Response::new(String::from("done")))
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            let conn = drain.watch(conn);
            tokio::spawn(conn);
        }
    }

    #[tokio::test]
    async fn an_idle_connection_closes_and_a_busy_one_finishes_its_response_first() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let drain = Drain::new();
        let (started, mut requests) = tokio::sync::mpsc::unbounded_channel();
        let delay = Duration::from_millis(200);
        tokio::spawn(serve(listener, drain.clone(), delay, started));

        let mut idle = TcpStream::connect(addr).await.unwrap();
        let mut busy = TcpStream::connect(addr).await.unwrap();
        busy.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        requests.recv().await.unwrap();
        // The idle one is accepted (and watched) first: the loop takes them in order.
        assert_eq!(drain.open(), 2);
        tokio::time::timeout(Duration::from_secs(10), drain.start())
            .await
            .expect("both connections end");
        assert_eq!(drain.open(), 0);

        let mut answer = String::new();
        busy.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("done"), "{answer}");
        let mut rest = Vec::new();
        assert_eq!(
            idle.read_to_end(&mut rest).await.unwrap(),
            0,
            "closed unanswered"
        );
    }

    #[tokio::test]
    async fn a_drain_with_nothing_open_returns_at_once() {
        Drain::new().start().await;
    }
}
