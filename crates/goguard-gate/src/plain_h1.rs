//! The gateway's own server loop for plain HTTP/1.1 requests: version 1.1, no body, a path
//! as the target. Most API traffic through a gateway is that, and hyper's server spent
//! about 2,500 instructions per request more on it than this loop does (its dispatcher and
//! buffering; `bench/gate --instructions`), a tenth of the gateway's work.
//!
//! Anything else hands the connection over to hyper, with the bytes already read, for the
//! rest of its life: a request with a body (or `Expect`, `Upgrade`), HTTP/1.0, HTTP/2's
//! preface, `CONNECT` or an absolute target, and a head that does not parse or is too
//! large. So hyper answers every error and every unusual request as it always did; this
//! loop only parses what httparse accepts and writes responses.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName};
use http::{Method, Request, Response, Uri, Version};
use http_body::Body as _;
use http_body_util::{BodyExt, Empty};
use hyper_util::server::graceful::GracefulConnection;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use crate::codec::{self, MAX_HEADERS};
use crate::drain::Graceful;
use crate::h1::{parsed_value, place, poll_read_more};
use crate::layer::Body;
use crate::timer::CoarseTimer;

/// Room left in a request's header map for the forwarding headers the gateway adds, so
/// that it does not grow (and rehash) on the way.
const ADDED_HEADERS: usize = 4;
const READ_CHUNK: usize = 8192;
/// Response bytes gathered before a write; a larger body chunk is written as it is.
const WRITE_CHUNK: usize = 16 * 1024;

/// A plain request, as the gateway's service takes it.
pub type PlainRequest = Request<Empty<Bytes>>;

/// How a plain connection ended.
pub enum Ended {
    /// Closed: by the client, on the header timeout, after `Connection: close`, on a write
    /// error, or for a drain.
    Closed,
    /// A request this loop does not serve: the connection and what was read of it.
    HandOver(Prefixed),
}

/// What a client connection is allowed.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The longest wait for a whole request head.
    pub header_timeout: Duration,
    /// The longest a write may wait for the client to read.
    pub send_timeout: Duration,
    /// The largest request head.
    pub max_head: usize,
}

/// Serves plain requests on `io` with `service` until the connection closes or a request
/// needs hyper. `closing` asks it to close once the response in progress is written (at
/// once when idle).
pub async fn serve<S, F>(
    mut io: TcpStream,
    timer: CoarseTimer,
    limits: Limits,
    closing: Arc<AtomicBool>,
    mut service: S,
) -> Ended
where
    S: FnMut(PlainRequest) -> F,
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    let Limits {
        header_timeout,
        send_timeout,
        max_head,
    } = limits;
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut wbuf = Vec::with_capacity(1024);
    let mut names = Vec::new();
    loop {
        let read = read_request(&mut io, &mut rbuf, &mut names, max_head, &closing);
        let (req, keep_alive) = match timer.timeout(header_timeout, read).await {
            Err(_) | Ok(Read::Closed) => return Ended::Closed,
            Ok(Read::Unusual) => {
                return Ended::HandOver(Prefixed {
                    read: rbuf.freeze(),
                    io,
                    send_timeout,
                    stalled: None,
                })
            }
            Ok(Read::TargetTooLong) => {
                let answer = b"HTTP/1.1 414 URI Too Long\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 30\r\nconnection: close\r\n\r\nthe request target is too long";
                let _ = timer.timeout(header_timeout, io.write_all(answer)).await;
                return Ended::Closed;
            }
            Ok(Read::Request(req, keep_alive)) => (req, keep_alive),
        };
        let head_request = req.method() == Method::HEAD;
        let answer = {
            let (mut rd, _) = io.split();
            tokio::select! {
                biased;
                answer = service(req) => answer,
                () = client_gone(&mut rd, &mut rbuf) => return Ended::Closed,
            }
        };
        let Ok(resp) = answer;
        if resp
            .extensions()
            .get::<crate::layer::fault::ResetConnection>()
            .is_some()
        {
            // A reset fault: no answer, a TCP RST.
            reset_on_close(std::os::fd::AsRawFd::as_raw_fd(&io));
            return Ended::Closed;
        }
        let keep_alive = keep_alive && !closing.load(Ordering::Relaxed);
        let out = Out {
            io: &mut io,
            timer: &timer,
            send_timeout,
            rbuf: &mut rbuf,
            wbuf: &mut wbuf,
        };
        match write_response(out, resp, head_request, keep_alive).await {
            Ok(true) if keep_alive => {}
            _ => return Ended::Closed,
        }
    }
}

/// Makes the socket's close send a TCP RST instead of a FIN (`SO_LINGER` with a zero
/// time), for a reset fault: the client sees its connection reset, with no answer. `fd` must
/// be an open socket (the connection being served).
pub fn reset_on_close(fd: std::os::fd::RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads the linger value it is given; the fd is the connection's own,
    // open while it is served.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if r != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "SO_LINGER for a reset fault");
    }
}

/// Returns when the client has closed its end (or the connection failed). Raced against
/// the answer, as hyper's server does: a client gone drops the upstream request. As in
/// hyper, it stops looking once the client has sent more (a pipelined request, kept in
/// `rbuf`): that client still waits for its answers.
async fn client_gone(rd: &mut ReadHalf<'_>, rbuf: &mut BytesMut) {
    loop {
        if !rbuf.is_empty() {
            return std::future::pending().await;
        }
        match poll_fn(|cx| poll_read_more(rd, cx, rbuf, READ_CHUNK)).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[allow(clippy::large_enum_variant)] // moved once per request; a box would allocate
enum Read {
    /// A plain request, and whether the connection may stay open after it.
    Request(PlainRequest, bool),
    /// Something for hyper; what was read is still in the buffer.
    Unusual,
    /// A request line over the head's limit: answered 414, and the connection closed.
    TargetTooLong,
    Closed,
}

/// Reads until `rbuf` starts with a whole request head, and takes it off.
async fn read_request(
    io: &mut TcpStream,
    rbuf: &mut BytesMut,
    names: &mut Vec<(HeaderName, Range<usize>)>,
    max_head: usize,
    closing: &AtomicBool,
) -> Read {
    loop {
        if !rbuf.is_empty() {
            if let Some(read) = parse_request(rbuf, names, max_head) {
                return read;
            }
        }
        // The drain flag is read in the poll: a drain wakes this task while it waits here.
        let n = poll_fn(|cx| {
            if rbuf.is_empty() && closing.load(Ordering::Relaxed) {
                return Poll::Ready(Ok(0));
            }
            poll_read_more(io, cx, rbuf, READ_CHUNK)
        })
        .await;
        match n {
            Ok(0) | Err(_) => return Read::Closed,
            Ok(_) => {}
        }
    }
}

/// A plain request off the front of `rbuf`, [`Read::Unusual`] for anything else, or `None`
/// while the head is not all there.
fn parse_request(
    rbuf: &mut BytesMut,
    names: &mut Vec<(HeaderName, Range<usize>)>,
    max_head: usize,
) -> Option<Read> {
    let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut r = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut r,
        rbuf,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(len)) if len <= max_head => len,
        Ok(httparse::Status::Partial) if rbuf.len() <= max_head => return None,
        // A request line longer than the whole head may be: its target is too long
        // (nginx's 414; hyper would say 431, as for too many header bytes).
        _ if rbuf.len() > max_head && !rbuf[..max_head].contains(&b'\n') => {
            return Some(Read::TargetTooLong)
        }
        _ => return Some(Read::Unusual),
    };
    let (Some(method), Some(path), Some(1)) = (r.method, r.path, r.version) else {
        return Some(Read::Unusual);
    };
    if method == "CONNECT" || !path.starts_with('/') {
        return Some(Read::Unusual);
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Some(Read::Unusual);
    };
    let mut keep_alive = true;
    names.clear();
    for h in r.headers.iter() {
        let Ok(name) = HeaderName::from_bytes(h.name.as_bytes()) else {
            return Some(Read::Unusual);
        };
        if name == header::CONTENT_LENGTH {
            if h.value.trim_ascii() != b"0" {
                return Some(Read::Unusual);
            }
        } else if name == header::TRANSFER_ENCODING
            || name == header::EXPECT
            || name == header::UPGRADE
        {
            return Some(Read::Unusual);
        } else if name == header::CONNECTION && codec::value_has_token(h.value, "close") {
            keep_alive = false;
        }
        names.push((name, place(rbuf, h.value)));
    }
    let path = place(rbuf, path.as_bytes());
    let head = rbuf.split_to(len).freeze();
    let Ok(uri) = Uri::from_maybe_shared(head.slice(path)) else {
        // Back in front of the rest, for hyper to refuse.
        let mut back = BytesMut::with_capacity(head.len() + rbuf.len());
        back.extend_from_slice(&head);
        back.extend_from_slice(rbuf);
        *rbuf = back;
        return Some(Read::Unusual);
    };
    let mut map = HeaderMap::with_capacity(names.len() + ADDED_HEADERS);
    for (name, value) in names.drain(..) {
        map.append(name, parsed_value(&head, value));
    }
    let mut req = Request::new(Empty::new());
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = map;
    Some(Read::Request(req, keep_alive))
}

/// How a response's body is framed on the wire.
enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// What writing a response needs of the connection.
struct Out<'a> {
    io: &'a mut TcpStream,
    /// Each write waits at most `send_timeout` for the client to read.
    timer: &'a CoarseTimer,
    send_timeout: Duration,
    /// For [`client_gone`] while the body is awaited.
    rbuf: &'a mut BytesMut,
    wbuf: &'a mut Vec<u8>,
}

/// Writes `resp`. Returns whether it went out whole and framed, so that the connection
/// can carry another; a body that fails or does not match its length closes it, and so
/// does the client leaving while the body is awaited.
async fn write_response(
    out: Out<'_>,
    resp: Response<Body>,
    head_request: bool,
    keep_alive: bool,
) -> io::Result<bool> {
    let Out {
        io,
        timer,
        send_timeout,
        rbuf,
        wbuf,
    } = out;
    let (mut rd, wr) = io.split();
    let mut sink = Sink {
        wr,
        timer,
        limit: send_timeout,
    };
    let io = &mut sink;
    let (parts, mut body) = resp.into_parts();
    wbuf.clear();
    wbuf.extend_from_slice(b"HTTP/1.1 ");
    wbuf.extend_from_slice(parts.status.as_str().as_bytes());
    wbuf.push(b' ');
    wbuf.extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
    wbuf.extend_from_slice(b"\r\n");
    let status = parts.status;
    let bodiless = head_request || codec::status_has_no_body(status);
    let (mut date, mut connection) = (false, false);
    for (name, value) in &parts.headers {
        // The framing is the body's own, never copied: only a bodiless answer (HEAD, 304)
        // keeps the length it describes, which the gateway has made one valid value.
        if name == header::TRANSFER_ENCODING || (name == header::CONTENT_LENGTH && !bodiless) {
            continue;
        } else if name == header::DATE {
            date = true;
        } else if name == header::CONNECTION {
            connection = true;
        }
        put_header(wbuf, name.as_str().as_bytes(), value.as_bytes());
    }
    let framing = if bodiless {
        Framing::None
    } else if let Some(n) = body.size_hint().exact() {
        put_header(wbuf, b"content-length", n.to_string().as_bytes());
        Framing::Length(n)
    } else {
        put_header(wbuf, b"transfer-encoding", b"chunked");
        Framing::Chunked
    };
    if !date {
        with_date(|d| put_header(wbuf, b"date", d));
    }
    if !keep_alive && !connection {
        put_header(wbuf, b"connection", b"close");
    }
    wbuf.extend_from_slice(b"\r\n");
    if matches!(framing, Framing::None) {
        io.write_all(wbuf).await?;
        return Ok(true);
    }

    let mut sent = 0u64;
    let mut trailers = None;
    loop {
        // Frames already there go out in the same write as the head.
        let ready = poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(Some(frame)),
            Poll::Pending => Poll::Ready(None),
        })
        .await;
        let frame = match ready {
            Some(frame) => frame,
            None => {
                io.write_all(wbuf).await?;
                wbuf.clear();
                tokio::select! {
                    biased;
                    frame = body.frame() => frame,
                    () = client_gone(&mut rd, rbuf) => return Ok(false),
                }
            }
        };
        let frame = match frame {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(_)) => {
                io.write_all(wbuf).await?;
                return Ok(false);
            }
        };
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                trailers = frame.into_trailers().ok();
                continue;
            }
        };
        sent += data.len() as u64;
        match framing {
            Framing::Length(n) if sent > n => {
                io.write_all(wbuf).await?;
                return Ok(false);
            }
            Framing::Chunked if data.is_empty() => continue,
            Framing::Chunked => {
                codec::put_chunk_size(wbuf, data.len());
                put_data(io, wbuf, data).await?;
                wbuf.extend_from_slice(b"\r\n");
            }
            _ => put_data(io, wbuf, data).await?,
        }
    }
    let whole = match framing {
        Framing::Chunked => {
            codec::put_chunk_size(wbuf, 0);
            for (name, value) in trailers.iter().flatten() {
                put_header(wbuf, name.as_str().as_bytes(), value.as_bytes());
            }
            wbuf.extend_from_slice(b"\r\n");
            true
        }
        Framing::Length(n) => sent == n,
        Framing::None => true,
    };
    io.write_all(wbuf).await?;
    Ok(whole)
}

fn put_header(wbuf: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    wbuf.extend_from_slice(name);
    wbuf.extend_from_slice(b": ");
    wbuf.extend_from_slice(value);
    wbuf.extend_from_slice(b"\r\n");
}

/// Body bytes after what `wbuf` holds: gathered when small, written as they are when large.
async fn put_data(io: &mut Sink<'_>, wbuf: &mut Vec<u8>, data: Bytes) -> io::Result<()> {
    if wbuf.len() + data.len() <= WRITE_CHUNK {
        wbuf.extend_from_slice(&data);
        return Ok(());
    }
    io.write_all(wbuf).await?;
    wbuf.clear();
    io.write_all(&data).await
}

/// The client's end of a connection, for writes that wait at most `limit` each for the
/// client to read (a client that never reads is closed, not kept for ever).
struct Sink<'a> {
    wr: WriteHalf<'a>,
    timer: &'a CoarseTimer,
    limit: Duration,
}

impl Sink<'_> {
    async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self.timer.timeout(self.limit, self.wr.write_all(buf)).await {
            Ok(done) => done,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }
}

/// The `Date` header's value for now, formatted once a second per thread.
fn with_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    thread_local! {
        static DATE: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((0, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs || d.1.is_empty() {
            *d = (secs, httpdate::fmt_http_date(now));
        }
        f(d.1.as_bytes())
    })
}

pin_project_lite::pin_project! {
    /// A client connection: served by [`serve`] until it hands over, then by hyper.
    #[project = ServedProj]
    pub enum Served<F, G, H> {
        Plain {
            #[pin]
            fut: F,
            closing: Arc<AtomicBool>,
            hand_over: Option<G>,
        },
        Hyper {
            #[pin]
            conn: H,
        },
    }
}

impl<F, G, H> Served<F, G, H> {
    /// `fut` is [`serve`]'s future with `closing` as its flag; `hand_over` makes hyper's
    /// connection from what it hands over.
    pub fn new(fut: F, closing: Arc<AtomicBool>, hand_over: G) -> Self {
        Served::Plain {
            fut,
            closing,
            hand_over: Some(hand_over),
        }
    }
}

impl<F, G, H> Future for Served<F, G, H>
where
    F: Future<Output = Ended>,
    G: FnOnce(Prefixed) -> H,
    H: GracefulConnection,
{
    /// Hyper's error when it ended the connection on one (a request it refused as
    /// malformed, say), for the gateway to count and log.
    type Output = Result<(), H::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let (conn, closing) = match self.as_mut().project() {
                ServedProj::Hyper { conn } => return conn.poll(cx),
                ServedProj::Plain {
                    fut,
                    closing,
                    hand_over,
                } => match fut.poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ended::Closed) => return Poll::Ready(Ok(())),
                    Poll::Ready(Ended::HandOver(io)) => {
                        let make = hand_over.take().expect("handed over once");
                        (make(io), closing.load(Ordering::Relaxed))
                    }
                },
            };
            self.set(Served::Hyper { conn });
            if closing {
                self.as_mut().finish();
            }
        }
    }
}

impl<F, G, H> Graceful for Served<F, G, H>
where
    F: Future<Output = Ended>,
    G: FnOnce(Prefixed) -> H,
    H: GracefulConnection,
{
    fn finish(self: Pin<&mut Self>) {
        match self.project() {
            ServedProj::Plain { closing, .. } => closing.store(true, Ordering::Relaxed),
            ServedProj::Hyper { conn } => conn.graceful_shutdown(),
        }
    }
}

pin_project_lite::pin_project! {
    /// A connection handed over to hyper: what was read of it first, then the socket. A
    /// write that waits longer than `send_timeout` for the client to read fails (hyper has
    /// no send timeout of its own), which closes the connection.
    pub struct Prefixed {
        read: Bytes,
        #[pin]
        io: TcpStream,
        send_timeout: Duration,
        stalled: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl Prefixed {
    /// Whether a write still pending has waited too long; arms the wait when it starts.
    fn stalled_too_long(
        stalled: &mut Option<Pin<Box<tokio::time::Sleep>>>,
        limit: Duration,
        cx: &mut Context<'_>,
    ) -> bool {
        let sleep = stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        sleep.as_mut().poll(cx).is_ready()
    }

    /// A write's outcome with the send timeout applied.
    fn timed<T>(
        poll: Poll<io::Result<T>>,
        stalled: &mut Option<Pin<Box<tokio::time::Sleep>>>,
        limit: Duration,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(r) => {
                *stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending if Self::stalled_too_long(stalled, limit, cx) => {
                Poll::Ready(Err(io::ErrorKind::TimedOut.into()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if this.read.is_empty() {
            return this.io.poll_read(cx, buf);
        }
        let n = this.read.len().min(buf.remaining());
        buf.put_slice(&this.read[..n]);
        this.read.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let poll = this.io.poll_write(cx, buf);
        Prefixed::timed(poll, this.stalled, *this.send_timeout, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let poll = this.io.poll_write_vectored(cx, bufs);
        Prefixed::timed(poll, this.stalled, *this.send_timeout, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::full;
    use http::HeaderValue;
    use std::collections::VecDeque;
    use std::sync::atomic::AtomicUsize;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    /// A body of the given frames, of unknown length.
    struct Frames(VecDeque<http_body::Frame<Bytes>>);

    impl http_body::Body for Frames {
        type Data = Bytes;
        type Error = crate::layer::BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }
    }

    /// Answers each request with its method and path as the body.
    fn echo(req: PlainRequest) -> impl Future<Output = Result<Response<Body>, Infallible>> {
        let text = format!("{} {}", req.method(), req.uri());
        async move { Ok(Response::new(full(text))) }
    }

    /// One connection served by `serve` with `service`; its client end, and how it ended.
    async fn served<S, F>(
        service: S,
        closing: Arc<AtomicBool>,
    ) -> (TcpStream, JoinHandle<Option<Bytes>>)
    where
        S: FnMut(PlainRequest) -> F + Send + 'static,
        F: Future<Output = Result<Response<Body>, Infallible>> + Send,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let timer = CoarseTimer::new();
        let ended = tokio::spawn(async move {
            let timeout = Duration::from_secs(10);
            let limits = Limits {
                header_timeout: timeout,
                send_timeout: Duration::from_secs(60),
                max_head: 8192,
            };
            match serve(server, timer, limits, closing, service).await {
                Ended::Closed => None,
                Ended::HandOver(p) => Some(p.read),
            }
        });
        (client, ended)
    }

    /// Everything the server writes until it closes.
    async fn transcript(client: &mut TcpStream) -> String {
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn pipelined_requests_are_answered_in_order_and_close_asks_to_close() {
        let (mut client, ended) = served(echo, Arc::default()).await;
        client
            .write_all(
                b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
                  HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n\
                  GET /c?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        let all = transcript(&mut client).await;
        let answers: Vec<&str> = all.split("HTTP/1.1 ").skip(1).collect();
        assert_eq!(answers.len(), 3, "{all}");
        assert!(answers[0].starts_with("200 OK\r\n"), "{all}");
        assert!(answers[0].contains("content-length: 6\r\n"), "{all}");
        assert!(answers[0].contains("date: "), "{all}");
        assert!(answers[0].ends_with("\r\n\r\nGET /a"), "{all}");
        // HEAD: the head alone.
        assert!(answers[1].ends_with("\r\n\r\n"), "{all}");
        assert!(!answers[1].contains("HEAD /b"), "{all}");
        assert!(answers[2].contains("connection: close\r\n"), "{all}");
        assert!(answers[2].ends_with("GET /c?q=1"), "{all}");
        assert_eq!(ended.await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_body_of_unknown_length_is_chunked_with_its_trailers() {
        let service = |_req: PlainRequest| async {
            let mut trailers = HeaderMap::new();
            trailers.insert("x-sum", HeaderValue::from_static("7"));
            let frames = VecDeque::from([
                http_body::Frame::data(Bytes::from("abc")),
                http_body::Frame::data(Bytes::new()),
                http_body::Frame::data(Bytes::from("defg")),
                http_body::Frame::trailers(trailers),
            ]);
            Ok(Response::new(Frames(frames).boxed()))
        };
        let (mut client, _) = served(service, Arc::default()).await;
        client
            .write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let all = transcript(&mut client).await;
        assert!(all.contains("transfer-encoding: chunked\r\n"), "{all}");
        assert!(
            all.ends_with("\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\nx-sum: 7\r\n\r\n"),
            "{all}"
        );
    }

    #[tokio::test]
    async fn requests_for_hyper_are_handed_over_with_their_bytes() {
        for unusual in [
            &b"POST /p HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"[..],
            b"PUT /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET /p HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"GET /p HTTP/1.0\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"CONNECT example.com:443 HTTP/1.1\r\n\r\n",
            b"GET http://example.com/p HTTP/1.1\r\n\r\n",
            b"GET /p HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET /\x7f HTTP/1.1\r\n\r\n",
            // httparse takes this target, http's Uri does not: put back for hyper.
            b"GET /\xff HTTP/1.1\r\n\r\n",
        ] {
            let (mut client, ended) = served(echo, Arc::default()).await;
            // A plain request first: it is answered, and only what follows is handed over.
            let mut sent = b"GET /first HTTP/1.1\r\n\r\n".to_vec();
            sent.extend_from_slice(unusual);
            client.write_all(&sent).await.unwrap();
            let read = ended.await.unwrap();
            assert_eq!(
                read.as_deref(),
                Some(unusual),
                "{}",
                String::from_utf8_lossy(unusual)
            );
            let mut answer = vec![0u8; 4096];
            let n = client.read(&mut answer).await.unwrap();
            assert!(
                String::from_utf8_lossy(&answer[..n]).ends_with("GET /first"),
                "{}",
                String::from_utf8_lossy(&answer[..n])
            );
        }
        // A head over the limit goes to hyper, which refuses it.
        let (mut client, ended) = served(echo, Arc::default()).await;
        let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "x".repeat(9000));
        client.write_all(big.as_bytes()).await.unwrap();
        assert!(ended.await.unwrap().is_some_and(|r| r.len() >= 8192));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_closed_at_the_header_timeout() {
        let (mut client, ended) = served(echo, Arc::default()).await;
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        assert_eq!(ended.await.unwrap(), None);
        assert_eq!(transcript(&mut client).await, "");
    }

    #[tokio::test]
    async fn a_client_that_leaves_drops_the_request_in_progress() {
        struct Dropped(Arc<AtomicUsize>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicUsize::new(0));
        let (started, mut waiting) = tokio::sync::mpsc::unbounded_channel();
        let d = dropped.clone();
        let service = move |_req: PlainRequest| {
            let guard = Dropped(d.clone());
            let _ = started.send(());
            async move {
                let _guard = guard;
                std::future::pending::<Result<Response<Body>, Infallible>>().await
            }
        };
        let (mut client, ended) = served(service, Arc::default()).await;
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        waiting.recv().await.unwrap();
        drop(client);
        assert_eq!(ended.await.unwrap(), None);
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_drain_closes_an_idle_connection_and_lets_a_busy_one_answer_first() {
        // Idle.
        let closing = Arc::new(AtomicBool::new(true));
        let (_client, ended) = served(echo, closing).await;
        assert_eq!(ended.await.unwrap(), None);
        // Busy: the answer goes out, saying the connection closes.
        let closing = Arc::new(AtomicBool::new(false));
        let flag = closing.clone();
        let service = move |req: PlainRequest| {
            flag.store(true, Ordering::SeqCst);
            echo(req)
        };
        let (mut client, ended) = served(service, closing).await;
        client.write_all(b"GET /x HTTP/1.1\r\n\r\n").await.unwrap();
        let all = transcript(&mut client).await;
        assert!(all.contains("connection: close\r\n"), "{all}");
        assert!(all.ends_with("GET /x"), "{all}");
        assert_eq!(ended.await.unwrap(), None);
    }
}
