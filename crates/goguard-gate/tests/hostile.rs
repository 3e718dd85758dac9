//! The gateway under hostile and careless input: raw bytes from a client (no HTTP library in
//! the way), an upstream that records exactly what reaches it and answers with scripted
//! bytes, and a bounded mutation fuzz of request heads. RFC 9110/9112/9113 references are
//! at each case.

mod support;
#[path = "support/gate.rs"]
mod test_gate;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use goguard_gate::clock::SystemClock;
use test_gate::{head, wait_for, TestGate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request as it reached the upstream, parsed strictly.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

type Script = Arc<dyn Fn(&Received) -> Vec<u8> + Send + Sync>;

/// An upstream on raw TCP that records every request it reads, and anything it could not
/// read as HTTP/1.1 (which would mean the gateway framed a request wrongly).
struct Recorder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Received>>>,
    garbage: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    async fn start(script: Script) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let garbage = Arc::new(Mutex::new(Vec::new()));
        let (s, g) = (seen.clone(), garbage.clone());
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve_recorded(conn, script.clone(), s.clone(), g.clone()));
            }
        });
        Recorder {
            addr,
            seen,
            garbage,
        }
    }

    /// Answers every request `200 ok`, with the target as the body.
    async fn ok() -> Recorder {
        Recorder::start(Arc::new(|r: &Received| {
            let body = r.target.clone();
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        }))
        .await
    }

    fn seen(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }

    fn assert_clean(&self) {
        let g = self.garbage.lock().unwrap();
        assert!(
            g.is_empty(),
            "the upstream read bytes that are not a request: {g:?}"
        );
    }
}

async fn serve_recorded(
    mut conn: TcpStream,
    script: Script,
    seen: Arc<Mutex<Vec<Received>>>,
    garbage: Arc<Mutex<Vec<String>>>,
) {
    let mut buf = Vec::new();
    loop {
        let req = match read_request(&mut conn, &mut buf).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            // A connection cut in the middle of a request is an upload the gateway abandoned
            // (its client's body broke), not a framing error.
            Err(e) if e.starts_with("cut") => return,
            Err(e) => {
                garbage.lock().unwrap().push(e);
                return;
            }
        };
        seen.lock().unwrap().push(req.clone());
        let answer = script(&req);
        if conn.write_all(&answer).await.is_err() {
            return;
        }
    }
}

/// One request off a connection, parsed as strictly as RFC 9112 asks of a server: `None` at
/// a clean end between requests.
async fn read_request(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Option<Received>, String> {
    let (head_len, mut req, framing) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut r = httparse::Request::new(&mut headers);
        match r.parse(buf) {
            Ok(httparse::Status::Complete(n)) => {
                let headers: Vec<(String, String)> = r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let received = Received {
                    method: r.method.unwrap_or_default().to_string(),
                    target: r.path.unwrap_or_default().to_string(),
                    headers,
                    body: Vec::new(),
                };
                let te = received.all("transfer-encoding");
                let cl = received.all("content-length");
                if !te.is_empty() && !cl.is_empty() {
                    return Err(format!(
                        "both Transfer-Encoding and Content-Length: {received:?}"
                    ));
                }
                if cl.len() > 1 {
                    return Err(format!("two Content-Lengths: {received:?}"));
                }
                let framing = match (te.first(), cl.first()) {
                    (Some(&"chunked"), _) => None,
                    (Some(t), _) => return Err(format!("Transfer-Encoding {t}")),
                    (None, Some(n)) => Some(
                        n.parse::<usize>()
                            .map_err(|_| format!("Content-Length {n:?}"))?,
                    ),
                    (None, None) => Some(0),
                };
                break (n, received, framing);
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(format!("{e}: {:?}", String::from_utf8_lossy(buf))),
        }
        if fill(conn, buf).await == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(format!("cut head: {:?}", String::from_utf8_lossy(buf)))
            };
        }
    };
    buf.drain(..head_len);
    match framing {
        Some(n) => {
            while buf.len() < n {
                if fill(conn, buf).await == 0 {
                    return Err("cut body".into());
                }
            }
            req.body = buf.drain(..n).collect();
        }
        None => loop {
            let line = take_crlf_line(conn, buf).await?;
            let size =
                usize::from_str_radix(&line, 16).map_err(|_| format!("chunk size {line:?}"))?;
            while buf.len() < size + 2 {
                if fill(conn, buf).await == 0 {
                    return Err("cut chunk".into());
                }
            }
            if &buf[size..size + 2] != b"\r\n" {
                return Err("chunk without CRLF".into());
            }
            req.body.extend(buf.drain(..size));
            buf.drain(..2);
            if size == 0 {
                break;
            }
        },
    }
    Ok(Some(req))
}

async fn take_crlf_line(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Result<String, String> {
    loop {
        if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&buf[..i]).into_owned();
            buf.drain(..i + 2);
            return Ok(line);
        }
        if fill(conn, buf).await == 0 {
            return Err("cut line".into());
        }
    }
}

async fn fill(conn: &mut TcpStream, buf: &mut Vec<u8>) -> usize {
    let mut chunk = [0u8; 8192];
    match tokio::time::timeout(Duration::from_secs(10), conn.read(&mut chunk)).await {
        Ok(Ok(n)) => {
            buf.extend_from_slice(&chunk[..n]);
            n
        }
        _ => 0,
    }
}

/// An answer as the client read it off the wire.
#[derive(Debug)]
struct Answer {
    status_line: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A raw client connection to the gateway.
struct Raw {
    conn: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        Raw {
            conn: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.conn.write_all(bytes).await.unwrap();
    }

    /// The next answer, `None` when the gateway closed the connection first. `head` says
    /// whether it answers a HEAD request (no body).
    async fn answer(&mut self, head: bool) -> Option<Answer> {
        let (n, mut answer, length, chunked) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 128];
            let mut r = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(n)) = r.parse(&self.buf) {
                let headers: Vec<(String, String)> = r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let line_end = self.buf.windows(2).position(|w| w == b"\r\n").unwrap();
                let answer = Answer {
                    status_line: String::from_utf8_lossy(&self.buf[..line_end]).into_owned(),
                    status: r.code.unwrap_or(0),
                    headers,
                    body: Vec::new(),
                };
                let cl = answer.all("content-length");
                assert!(
                    cl.len() <= 1,
                    "several Content-Lengths reached the client: {answer:?}"
                );
                let chunked = !answer.all("transfer-encoding").is_empty();
                assert!(
                    !chunked || cl.is_empty(),
                    "Content-Length beside Transfer-Encoding reached the client: {answer:?}"
                );
                let bodiless = head || [204, 304].contains(&answer.status);
                let length = if bodiless {
                    Some(0)
                } else {
                    cl.first()
                        .map(|v| v.parse::<usize>().expect("a plain length"))
                };
                break (n, answer, length, chunked && !bodiless);
            }
            if fill(&mut self.conn, &mut self.buf).await == 0 {
                return None;
            }
        };
        self.buf.drain(..n);
        if chunked {
            loop {
                let line = take_crlf_line(&mut self.conn, &mut self.buf).await.ok()?;
                let size = usize::from_str_radix(&line, 16).ok()?;
                while self.buf.len() < size + 2 {
                    if fill(&mut self.conn, &mut self.buf).await == 0 {
                        return Some(answer);
                    }
                }
                answer.body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
                if size == 0 {
                    break;
                }
            }
        } else if let Some(n) = length {
            while self.buf.len() < n {
                if fill(&mut self.conn, &mut self.buf).await == 0 {
                    break;
                }
            }
            let n = n.min(self.buf.len());
            answer.body = self.buf.drain(..n).collect();
        } else {
            while fill(&mut self.conn, &mut self.buf).await > 0 {}
            answer.body = std::mem::take(&mut self.buf);
        }
        Some(answer)
    }
}

/// One request on a connection of its own: its answer, if any.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Option<Answer> {
    let mut c = Raw::connect(addr).await;
    c.send(bytes).await;
    c.answer(bytes.starts_with(b"HEAD ")).await
}

async fn status_of(addr: SocketAddr, bytes: &[u8]) -> u16 {
    exchange(addr, bytes).await.map_or(0, |a| a.status)
}

/// The test configuration: `server` lines (in the `[server]` table) then `routes`
/// (upstreams and routes).
fn config(routes: &str, server: &str) -> String {
    format!("{}{server}\n{routes}", head())
}

/// One upstream, `u`, at `addr`, and one route, `r`, to it for every request.
fn one_route(addr: SocketAddr) -> String {
    format!("[upstreams.u]\ntargets = [\"{addr}\"]\n[[routes]]\nname = \"r\"\nupstream = \"u\"\n")
}

/// A gateway on the system clock for `routes`, with `server` lines.
async fn start(routes: &str, server: &str) -> TestGate {
    TestGate::start(&config(routes, server), Arc::new(SystemClock)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_broken_body_is_its_fault_not_the_upstreams() {
    let up = Recorder::ok().await;
    let gate = start(
        &format!(
                "[upstreams.u]\ntargets = [\"{}\"]\neject_after = 2\n[[routes]]\nname = \"orders\"\nupstream = \"u\"\n[routes.breaker]\nmin_requests = 3\nerror_ratio = 0.5\nwindow = \"60s\"\n",
                up.addr
            ),
        "",
    )
    .await;
    // RFC 9112 7.1: a chunk size is hex digits; a chunk's data ends with CRLF.
    let bad_bodies: [&[u8]; 6] = [
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"zz\r\nhello\r\n0\r\n\r\n",
        b"11111111111111111\r\nhello\r\n0\r\n\r\n",
        b"5;ext\nx\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
    ];
    for body in bad_bodies {
        let mut req =
            b"POST /orders HTTP/1.1\r\nhost: shop\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        req.extend_from_slice(body);
        let status = status_of(gate.addr, &req).await;
        assert!(
            status == 400 || status == 0,
            "a malformed chunked body is the client's error (400), got {status} for {:?}",
            String::from_utf8_lossy(body)
        );
    }
    // An upload the client abandons half way.
    for _ in 0..3 {
        let mut c = Raw::connect(gate.addr).await;
        c.send(b"POST /orders HTTP/1.1\r\nhost: shop\r\ncontent-length: 100\r\n\r\nhalf")
            .await;
        drop(c);
    }
    // The target was not ejected and the breaker did not open: valid users get through.
    wait_for(
        Duration::from_secs(5),
        "the abandoned uploads are over",
        || async { gate.metrics().await.contains("client_closed") },
    )
    .await;
    for _ in 0..5 {
        assert_eq!(
            status_of(gate.addr, b"GET /orders HTTP/1.1\r\nhost: shop\r\n\r\n").await,
            200
        );
    }
    // Every request is out of flight again, the abandoned ones too.
    let metrics = gate.metrics().await;
    let in_flight: Vec<&str> = metrics
        .lines()
        .filter(|l| l.contains("in_flight{") && l.contains("orders"))
        .collect();
    assert!(!in_flight.is_empty(), "{metrics}");
    for line in in_flight {
        assert!(line.ends_with(" 0"), "in flight after all answers: {line}");
    }
    let status = gate.status().await;
    let target = &status["upstreams"]["u"][0];
    assert_eq!(target["ejections"], 0, "{status}");
    assert_eq!(target["failures"], 0, "{status}");
    assert_eq!(
        status["routes"][0]["breaker"]["state"], "closed",
        "{status}"
    );
    let metrics = gate.metrics().await;
    assert!(metrics.contains("reason=\"bad_request\""), "{metrics}");
    up.assert_clean();
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_is_required_single_and_valid_and_the_targets_authority_wins() {
    let public = Recorder::ok().await;
    let admin = Recorder::ok().await;
    let gate = start(
        &format!(
                "[upstreams.public]\ntargets = [\"{}\"]\n[upstreams.admin]\ntargets = [\"{}\"]\n[[routes]]\nname = \"public\"\nupstream = \"public\"\n[[routes]]\nname = \"admin\"\nhost = \"admin.example\"\nupstream = \"admin\"\n",
                public.addr, admin.addr
            ),
        "",
    )
    .await;
    // RFC 9112 3.2: no Host, two, or an invalid one is a 400, and nothing is forwarded.
    for req in [
        &b"GET /x HTTP/1.1\r\n\r\n"[..],
        b"GET /x HTTP/1.1\r\nhost: a.example\r\nhost: admin.example\r\n\r\n",
        b"GET /x HTTP/1.1\r\nhost: evil.com/../x?y\r\n\r\n",
        b"GET /x HTTP/1.1\r\nhost: a @b\r\n\r\n",
        b"GET /x HTTP/1.1\r\nhost: \r\n\r\n",
        b"GET /x HTTP/1.1\r\nhost: user@admin.example\r\n\r\n",
        b"POST /x HTTP/1.1\r\ncontent-length: 2\r\n\r\nhi",
    ] {
        assert_eq!(
            status_of(gate.addr, req).await,
            400,
            "{}",
            String::from_utf8_lossy(req)
        );
    }
    assert!(public.seen().is_empty() && admin.seen().is_empty());
    // RFC 9112 3.2.2: the absolute target's authority replaces Host, and routes.
    let a = exchange(
        gate.addr,
        b"GET http://admin.example/x HTTP/1.1\r\nhost: public.example\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(a.status, 200);
    let seen = admin.seen();
    assert_eq!(seen.len(), 1, "routed on the target's host");
    assert_eq!(seen[0].header("host"), Some("admin.example"));
    assert_eq!(seen[0].all("x-forwarded-host"), ["admin.example"]);
    assert_eq!(seen[0].target, "/x");
    // A trailing dot and another case name the same host.
    for host in ["ADMIN.example.", "Admin.Example:8080"] {
        let req = format!("GET /y HTTP/1.1\r\nhost: {host}\r\n\r\n");
        assert_eq!(status_of(gate.addr, req.as_bytes()).await, 200);
    }
    assert_eq!(admin.seen().len(), 3);
    assert!(public.seen().is_empty());
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_route_as_the_service_will_see_them() {
    let orders = Recorder::ok().await;
    let other = Recorder::ok().await;
    let gate = start(
        &format!(
                "[upstreams.orders]\ntargets = [\"{}\"]\n[upstreams.other]\ntargets = [\"{}\"]\n[[routes]]\nname = \"all\"\nupstream = \"other\"\n[[routes]]\nname = \"orders\"\npath_prefix = \"/orders\"\nupstream = \"orders\"\n",
                orders.addr, other.addr
            ),
        "",
    )
    .await;
    for path in [
        "/orders/1",
        "/%6Frders/1",
        "//orders/1",
        "/x/../orders/1",
        "/%2e%2e/orders/./1",
        "/orders//1",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nhost: shop\r\n\r\n");
        assert_eq!(status_of(gate.addr, req.as_bytes()).await, 200, "{path}");
        // Also through hyper (a request with a body is not a plain one).
        let req = format!("POST {path}?q=1 HTTP/1.1\r\nhost: shop\r\ncontent-length: 1\r\n\r\nx");
        assert_eq!(status_of(gate.addr, req.as_bytes()).await, 200, "{path}");
    }
    let seen = orders.seen();
    assert_eq!(seen.len(), 12, "{seen:?}");
    for r in &seen {
        assert!(
            r.target == "/orders/1" || r.target == "/orders/1?q=1",
            "{r:?}"
        );
    }
    // Prefixes match whole segments.
    assert_eq!(
        status_of(gate.addr, b"GET /ordersXYZ HTTP/1.1\r\nhost: shop\r\n\r\n").await,
        200
    );
    assert_eq!(other.seen().len(), 1);
    assert_eq!(other.seen()[0].target, "/ordersXYZ");
    assert_eq!(
        status_of(gate.addr, b"GET /a%zz HTTP/1.1\r\nhost: shop\r\n\r\n").await,
        400
    );
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cannot_strip_what_the_gateway_routed_and_limited_on() {
    let up = Recorder::ok().await;
    let gate = start(
        &format!(
                "[upstreams.u]\ntargets = [\"{}\"]\n[[routes]]\nname = \"api\"\nupstream = \"u\"\n[routes.limit]\nper_key = {{ key = \"header:x-api-key\", rate = \"1/m\", burst = 2 }}\n",
                up.addr
            ),
        "trusted_proxies = [\"127.0.0.1\"]\n",
    )
    .await;
    let req = b"GET /a HTTP/1.1\r\nhost: shop\r\nx-api-key: k1\r\nx-forwarded-for: 203.0.113.5\r\nauthorization: Bearer t\r\nx-hop: 1\r\nconnection: x-api-key, host, x-forwarded-for, authorization, x-hop\r\n\r\n";
    let codes: Vec<u16> = futures_codes(gate.addr, req, 3).await;
    assert_eq!(
        codes,
        [200, 200, 429],
        "the key the limit used is the key forwarded"
    );
    let seen = up.seen();
    let r = &seen[0];
    assert_eq!(r.header("x-api-key"), Some("k1"));
    assert_eq!(r.header("host"), Some("shop"));
    assert_eq!(r.header("authorization"), Some("Bearer t"));
    assert_eq!(r.header("x-forwarded-for"), Some("203.0.113.5, 127.0.0.1"));
    assert_eq!(r.header("x-hop"), None, "other named headers still go");
    assert_eq!(r.header("connection"), None);
    // A client that is not a trusted proxy cannot forge its address in other headers.
    let gate2 = start(
        &format!(
            "[upstreams.u]\ntargets = [\"{}\"]\n[[routes]]\nname = \"api\"\nupstream = \"u\"\n",
            up.addr
        ),
        "",
    )
    .await;
    let forged = b"GET /b HTTP/1.1\r\nhost: shop\r\nx-real-ip: 6.6.6.6\r\ntrue-client-ip: 6.6.6.6\r\nx-forwarded-port: 1\r\nx-forwarded-prefix: /admin\r\nx_forwarded_for: 6.6.6.6\r\n\r\n";
    assert_eq!(status_of(gate2.addr, forged).await, 200);
    let r = up.seen().pop().unwrap();
    for name in [
        "x-real-ip",
        "true-client-ip",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x_forwarded_for",
    ] {
        assert_eq!(r.header(name), None, "{name} reached the upstream: {r:?}");
    }
    assert_eq!(r.header("x-forwarded-for"), Some("127.0.0.1"));
    gate.shutdown().await;
    gate2.shutdown().await;
}

async fn futures_codes(addr: SocketAddr, req: &[u8], n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(status_of(addr, req).await);
    }
    out
}

/// Scripted upstream answers by path.
fn scripted() -> Script {
    let answers: HashMap<&'static str, &'static [u8]> = HashMap::from([
        ("/dup-cl", &b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 05\r\n\r\nhello"[..]),
        ("/list-cl", b"HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\nhello"),
        ("/plus-cl", b"HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\nhello"),
        ("/differing-cl", b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!"),
        ("/204-cl", b"HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n"),
        ("/te-cl", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 100\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ("/gzip-chunked", b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ("/http10", b"HTTP/1.0 200 OK\r\ncontent-length: 5\r\n\r\nhello"),
        ("/chunk-plus", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n"),
        ("/extra", b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nPOISON"),
    ]);
    Arc::new(move |r: &Received| {
        let path = r.target.split('?').next().unwrap_or_default();
        match answers.get(path) {
            Some(a) => a.to_vec(),
            None => b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nclean".to_vec(),
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_framing_is_the_gateways_own() {
    let up = Recorder::start(scripted()).await;
    let gate = start(
        &format!(
                "[upstreams.u]\ntargets = [\"{}\"]\neject_after = 1000\n[[routes]]\nname = \"r\"\nupstream = \"u\"\n",
                up.addr
            ),
        "",
    )
    .await;
    // Both server paths: the plain loop (GET) and hyper (a request with a body).
    for (method, extra) in [("GET", ""), ("POST", "content-length: 1\r\n\r\nx")] {
        let mut client = Raw::connect(gate.addr).await;
        let ask = |path: &str| {
            let end = if extra.is_empty() { "\r\n" } else { "" };
            format!("{method} {path} HTTP/1.1\r\nhost: shop\r\n{extra}{end}")
        };
        for (path, status, body) in [
            ("/dup-cl", 200, "hello"),
            ("/list-cl", 200, "hello"),
            ("/204-cl", 204, ""),
            ("/te-cl", 200, "hello"),
            ("/http10", 200, "hello"),
            ("/extra", 200, "hello"),
            ("/next", 200, "clean"),
        ] {
            client.send(ask(path).as_bytes()).await;
            let a = client
                .answer(false)
                .await
                .unwrap_or_else(|| panic!("{method} {path}: closed"));
            assert_eq!(a.status, status, "{method} {path}: {a:?}");
            assert!(
                a.status_line.starts_with("HTTP/1.1 "),
                "{method} {path}: {a:?}"
            );
            assert_eq!(String::from_utf8_lossy(&a.body), body, "{method} {path}");
            if path == "/204-cl" || path == "/te-cl" {
                // No length on a 204; a chunked answer is relayed chunked, without the
                // length the upstream wrote beside its coding.
                assert!(a.all("content-length").is_empty(), "{a:?}");
            } else {
                assert_eq!(a.all("content-length"), [body.len().to_string()], "{a:?}");
            }
        }
        // Refused framings are the upstream's error (502).
        for path in ["/plus-cl", "/differing-cl", "/gzip-chunked"] {
            let a = exchange(gate.addr, ask(path).as_bytes()).await.unwrap();
            assert_eq!(a.status, 502, "{method} {path}: {a:?}");
        }
        // A bad chunk size in the answer cuts it; the next request is still clean.
        let _ = exchange(gate.addr, ask("/chunk-plus").as_bytes()).await;
        let a = exchange(gate.addr, ask("/next").as_bytes()).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&a.body), "clean");
    }
    up.assert_clean();
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_very_long_target_is_a_414_and_refused_heads_are_counted() {
    let up = Recorder::ok().await;
    let gate = start(&one_route(up.addr), "").await;
    let long = format!("GET /{} HTTP/1.1\r\nhost: shop\r\n\r\n", "a".repeat(70_000));
    assert_eq!(status_of(gate.addr, long.as_bytes()).await, 414);
    let many = format!(
        "GET / HTTP/1.1\r\nhost: shop\r\nx-big: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    assert_eq!(status_of(gate.addr, many.as_bytes()).await, 431);
    let broken = b"GET / HTTP/1.1\r\nhost: shop\r\nno colon here\r\n\r\n";
    assert_eq!(status_of(gate.addr, broken).await, 400);
    assert!(up.seen().is_empty());
    // What hyper refuses itself is counted and logged like every other answer.
    wait_for(
        Duration::from_secs(5),
        "hyper's refusals are counted",
        || async {
            let m = gate.metrics().await;
            m.contains("status=\"431\"")
                && m.contains("status=\"400\"")
                && m.contains("reason=\"malformed\"")
        },
    )
    .await;
    gate.shutdown().await;
}

/// A small deterministic generator (xorshift), so that a failing case can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Pieces a mutation inserts: the bytes request smuggling is made of.
const PIECES: [&[u8]; 14] = [
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"\t",
    b"\0",
    b"transfer-encoding: chunked\r\n",
    b"content-length: 5\r\n",
    b"content-length: 0\r\n",
    b"host: other\r\n",
    b"GET /smuggled HTTP/1.1\r\nhost: shop\r\n\r\n",
    b"0\r\n\r\n",
    b"connection: host, content-length\r\n",
    b"expect: 100-continue\r\n",
];

const SEEDS: [&[u8]; 5] = [
    b"GET /fuzz HTTP/1.1\r\nhost: shop\r\n\r\n",
    b"POST /fuzz HTTP/1.1\r\nhost: shop\r\ncontent-length: 5\r\n\r\nhello",
    b"POST /fuzz HTTP/1.1\r\nhost: shop\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET /fuzz HTTP/1.1\r\nhost: shop\r\n\r\nGET /fuzz2 HTTP/1.1\r\nhost: shop\r\n\r\n",
    b"GET http://shop/fuzz HTTP/1.1\r\nhost: shop\r\nconnection: keep-alive\r\n\r\n",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(out.len() + 1);
        match rng.below(4) {
            0 => {
                let piece = PIECES[rng.below(PIECES.len())];
                out.splice(at..at, piece.iter().copied());
            }
            1 if at < out.len() => {
                out.remove(at);
            }
            2 if at < out.len() => out[at] = rng.next() as u8,
            _ => {
                let end = (at + rng.below(8)).min(out.len());
                let copy: Vec<u8> = out[at..end].to_vec();
                out.splice(at..at, copy);
            }
        }
    }
    out
}

/// Mutated request heads, each on a connection of its own: the upstream must only ever see
/// requests it can read, and only those the gateway logged as forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_requests_reach_the_upstream_only_as_logged() {
    let up = Recorder::ok().await;
    let text = config(
        &format!(
            "[upstreams.u]\ntargets = [\"{}\"]\neject_after = 100000\n[[routes]]\nname = \"r\"\nupstream = \"u\"\n",
            up.addr
        ),
        "",
    )
    .replace("access_log = \"off\"", "access_log = \"file:access.log\"\nheader_timeout = \"500ms\"");
    let gate = TestGate::start(&text, Arc::new(SystemClock)).await;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    const CASES: usize = 400;
    let cases: Vec<Vec<u8>> = (0..CASES)
        .map(|_| {
            let seed = SEEDS[rng.below(SEEDS.len())];
            mutate(&mut rng, seed)
        })
        .collect();
    // Twenty at a time, each on a connection of its own.
    for batch in cases.chunks(20) {
        let mut tasks = tokio::task::JoinSet::new();
        for req in batch {
            let (req, addr) = (req.clone(), gate.addr);
            tasks.spawn(async move {
                let mut c = Raw::connect(addr).await;
                c.send(&req).await;
                // Read answers until the gateway closes or goes quiet (an unfinished head
                // waits for the header timeout): the upstream's view is what is checked.
                while let Ok(Some(_)) =
                    tokio::time::timeout(Duration::from_secs(1), c.answer(false)).await
                {
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }
    let log = gate.dir.join("access.log");
    let forwarded = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            // Answered or not (a client may leave once its request is on its way).
            .filter(|v| v["route"] == "r")
            .map(|v| {
                format!(
                    "{} {}",
                    v["method"].as_str().unwrap_or(""),
                    v["path"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
    };
    let seen: Vec<String> = up
        .seen()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.method,
                r.target.split('?').next().unwrap_or_default()
            )
        })
        .collect();
    wait_for(Duration::from_secs(5), "the access log is written", || {
        let ready = forwarded().len() >= seen.len();
        async move { ready }
    })
    .await;
    up.assert_clean();
    let mut logged = forwarded();
    for s in &seen {
        let i = logged.iter().position(|l| l == s).unwrap_or_else(|| {
            panic!("the upstream received `{s}`, which the gateway never logged")
        });
        logged.swap_remove(i);
    }
    assert!(
        !seen.is_empty(),
        "some mutated requests are still valid and forwarded"
    );
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_connection() {
    let up = Recorder::ok().await;
    let gate = start(
        &one_route(up.addr),
        "max_connections = 40\nmax_connections_per_client = 10\n",
    )
    .await;
    let from = |ip: &str| {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        let addr = gate.addr;
        async move {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind(SocketAddr::new(ip, 0)).unwrap();
            Raw {
                conn: s.connect(addr).await.unwrap(),
                buf: Vec::new(),
            }
        }
    };
    let get = b"GET / HTTP/1.1\r\nhost: shop\r\n\r\n";
    // Ten connections kept open (each answered once, so each is surely counted).
    let mut held = Vec::new();
    for _ in 0..10 {
        let mut c = from("127.0.0.1").await;
        c.send(get).await;
        assert_eq!(c.answer(false).await.unwrap().status, 200);
        held.push(c);
    }
    let mut over = from("127.0.0.1").await;
    over.send(get).await;
    assert_eq!(over.answer(false).await.unwrap().status, 503);
    let mut other = from("127.0.0.2").await;
    other.send(get).await;
    assert_eq!(
        other.answer(false).await.unwrap().status,
        200,
        "another client is served"
    );
    // Closing one makes room again.
    drop(held.pop());
    wait_for(Duration::from_secs(5), "a slot is given back", || async {
        let mut c = from("127.0.0.1").await;
        c.send(get).await;
        c.answer(false).await.is_some_and(|a| a.status == 200)
    })
    .await;
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_after_the_send_timeout() {
    const BIG: usize = 64 << 20;
    let up = Recorder::start(Arc::new(|_: &Received| {
        let mut a = format!("HTTP/1.1 200 OK\r\ncontent-length: {BIG}\r\n\r\n").into_bytes();
        a.resize(a.len() + BIG, b'x');
        a
    }))
    .await;
    let gate = start(&one_route(up.addr), "send_timeout = \"300ms\"\n").await;
    // The plain loop (GET) and hyper (a request with a body).
    for req in [
        &b"GET /big HTTP/1.1\r\nhost: shop\r\n\r\n"[..],
        b"POST /big HTTP/1.1\r\nhost: shop\r\ncontent-length: 1\r\n\r\nx",
    ] {
        let mut c = Raw::connect(gate.addr).await;
        c.send(req).await;
        // Not reading for a while: the gateway's writes stall, then it gives up.
        let mut stalled = true;
        let mut total = 0usize;
        let mut chunk = vec![0u8; 1 << 16];
        tokio::time::sleep(Duration::from_secs(2)).await;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), c.conn.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => total += n,
                Err(_) => {
                    stalled = false;
                    break;
                }
            }
        }
        assert!(stalled, "the connection ended");
        assert!(
            total < BIG,
            "the gateway closed the connection before the whole answer ({total} bytes of {BIG})"
        );
    }
    gate.shutdown().await;
}

/// An HTTP/2 connection to the gateway (prior knowledge), for requests whose `:authority`
/// is not the address connected to.
async fn h2_client(
    addr: SocketAddr,
) -> hyper::client::conn::http2::SendRequest<http_body_util::Full<bytes::Bytes>> {
    let io = hyper_util::rt::TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .unwrap();
    tokio::spawn(conn);
    send
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_are_settled_like_http1_ones() {
    let up = Recorder::ok().await;
    let gate = start(&one_route(up.addr), "").await;
    let mut h2 = h2_client(gate.addr).await;
    let mut send = |req: http::Request<http_body_util::Full<bytes::Bytes>>| {
        let fut = h2.send_request(req);
        async move { fut.await.map(|r| r.status().as_u16()) }
    };
    let get = http::Request::get("http://Shop.Example./%6Frders//1")
        .body(http_body_util::Full::default())
        .unwrap();
    assert_eq!(send(get).await.unwrap(), 200);
    let r = up.seen().pop().unwrap();
    // RFC 9113 8.3.1: the authority is the host, and the forwarding headers say so.
    assert_eq!(r.header("host"), Some("Shop.Example."));
    assert_eq!(r.header("x-forwarded-host"), Some("Shop.Example."));
    assert_eq!(r.target, "/orders/1");
    // A Host that names another authority is malformed.
    let two = http::Request::get("http://shop.example/x")
        .header("host", "admin.example")
        .body(http_body_util::Full::default())
        .unwrap();
    assert_eq!(send(two).await.unwrap(), 400);
    // DATA that disagrees with the declared length makes the request malformed: the stream
    // is reset with PROTOCOL_ERROR (RFC 9113 8.1.1), and the upstream's health is untouched.
    for _ in 0..3 {
        let short = http::Request::post("http://shop.example/upload")
            .header("content-length", "10")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                b"hello",
            )))
            .unwrap();
        let e = send(short).await.expect_err("a malformed request");
        assert!(format!("{e:?}").contains("PROTOCOL_ERROR"), "{e:?}");
    }
    let status = gate.status().await;
    assert_eq!(status["upstreams"]["u"][0]["failures"], 0, "{status}");
    assert_eq!(status["upstreams"]["u"][0]["ejections"], 0, "{status}");
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_limit_under_8_kib_holds_on_both_server_paths() {
    let up = Recorder::ok().await;
    let gate = start(&one_route(up.addr), "max_header_bytes = 1024\n").await;
    let big = "a".repeat(2000);
    // The plain loop (GET) and hyper (a body), whose own limit is at least 8 KiB.
    let get = format!("GET / HTTP/1.1\r\nhost: shop\r\nx-big: {big}\r\n\r\n");
    let post =
        format!("POST / HTTP/1.1\r\nhost: shop\r\ncontent-length: 1\r\nx-big: {big}\r\n\r\nx");
    for req in [get, post] {
        let status = status_of(gate.addr, req.as_bytes()).await;
        assert_eq!(status, 431, "{}", &req[..20]);
    }
    assert!(up.seen().is_empty());
    let ok = b"POST / HTTP/1.1\r\nhost: shop\r\ncontent-length: 1\r\n\r\nx";
    assert_eq!(status_of(gate.addr, ok).await, 200);
    gate.shutdown().await;
}
