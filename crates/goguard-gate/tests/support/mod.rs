//! What the gateway tests share: the Go upstream service (built once with the real Go
//! toolchain), a real Redis, and a real HTTP client. Also used by the binary's gate tests
//! (crates/goguard/tests/gate_cli.rs) through `#[path]`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

fn programs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../goguard-gate/tests/programs/upstream")
        .canonicalize()
        .expect("the upstream program's directory")
}

/// Builds the Go upstream once per test binary, into cargo's scratch directory for tests
/// (one file, replaced by each build: nothing piles up in the system's temp directory).
pub fn upstream_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let out = dir.join("goguard-upstream");
        // Built beside, then renamed over: another test binary may be running the old one.
        let fresh = dir.join(format!("goguard-upstream.{}", std::process::id()));
        let status = Command::new("go")
            .args(["build", "-o"])
            .arg(&fresh)
            .arg(".")
            .current_dir(programs())
            .env("GOFLAGS", "-mod=mod")
            .status()
            .expect("go is installed (scripts/test installs it)");
        assert!(status.success(), "go build of the upstream failed");
        std::fs::rename(&fresh, &out).unwrap();
        out
    })
}

/// A running instance of the Go upstream; killed when dropped.
pub struct Upstream {
    child: Child,
    pub addr: SocketAddr,
}

impl Upstream {
    pub fn start(name: &str) -> Upstream {
        Upstream::start_with(name, &[])
    }

    pub fn start_with(name: &str, flags: &[&str]) -> Upstream {
        let mut child = Command::new(upstream_binary())
            .args(["-name", name, "-listen", "127.0.0.1:0"])
            .args(flags)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the upstream");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the upstream's first line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        Upstream { child, addr }
    }

    /// `ok`, `fail` (500s, failing health checks) or `slow` with a delay.
    pub async fn mode(&self, mode: &str, delay: &str) {
        let (s, _, _) = get(&format!(
            "http://{}/control/mode?set={mode}&delay={delay}",
            self.addr
        ))
        .await;
        assert_eq!(s, 200);
    }

    /// Requests served (not counting control and health calls).
    pub async fn count(&self) -> u64 {
        let (_, _, body) = get(&format!("http://{}/control/count", self.addr)).await;
        body.trim().parse().expect("a count")
    }

    pub async fn last_hook(&self) -> String {
        get(&format!("http://{}/control/hook", self.addr)).await.2
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on loopback (bound, then released for the program under test).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A real redis-server on its own port, without persistence; killed when dropped.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
}

impl Redis {
    pub fn start() -> Redis {
        let mut r = Redis {
            child: None,
            port: free_port(),
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and waits until it answers PING.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test installs it)");
        self.child = Some(child);
        let client = redis::Client::open(self.url()).expect("url");
        wait_until(Duration::from_secs(10), "redis answers PING", || {
            client
                .get_connection_with_timeout(Duration::from_millis(200))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok()
        });
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("a Redis connection")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `ready` until it holds, failing after `limit`. This waits for a condition to
/// become true (a health check, a reconnect), it does not sleep for a guessed time.
pub fn wait_until(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// One request with a real HTTP client: the status, headers and body as text.
pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, HeaderMap, String) {
    let mut b = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let resp = client().request(req).await.expect("the gateway answers");
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.expect("the whole body").to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

pub async fn get(url: &str) -> (StatusCode, HeaderMap, String) {
    send(Method::GET, url, &[], "").await
}

pub async fn get_with(url: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, String) {
    send(Method::GET, url, headers, "").await
}
