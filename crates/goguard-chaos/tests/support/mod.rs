//! What the proxy tests share: an echo server to put behind a proxy, and a proxy set with
//! its admin API on a free port.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use goguard_chaos::{ProxyConfig, ProxySet};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP echo server: each connection gets back what it sends, and is closed after the
/// client closes its side.
pub async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A proxy named `p` in front of `upstream`, with its admin API served; returns the set,
/// the proxy's address and the admin's base URL.
pub async fn proxy_to(upstream: SocketAddr) -> (ProxySet, SocketAddr, String) {
    let set = ProxySet::start(vec![ProxyConfig {
        name: "p".into(),
        listen: "127.0.0.1:0".into(),
        upstream: upstream.to_string(),
    }])
    .await
    .unwrap();
    let admin = goguard_chaos::admin::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = admin.local_addr().unwrap();
    tokio::spawn(goguard_chaos::admin::serve(
        set.clone(),
        admin,
        std::future::pending(),
    ));
    let addr = set.listen_addr("p").unwrap();
    (set, addr, format!("http://{admin_addr}"))
}

/// An admin call through HTTP: the status and the JSON body (Null when empty).
pub async fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let a = goguard_chaos::http_client::HttpClient::new()
        .request(
            method,
            url,
            &[],
            body.map(|b| b.to_string()),
            Duration::from_secs(5),
        )
        .await
        .expect("the admin API answers");
    let v = if a.body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&a.body).unwrap_or(Value::String(a.body))
    };
    (a.status, v)
}

/// Adds a toxic through the API.
pub async fn toxic(admin: &str, body: Value) {
    let (s, v) = call("POST", &format!("{admin}/proxies/p/toxics"), Some(body)).await;
    assert_eq!(s, 200, "{v}");
}

/// One round trip on a connection: writes `msg`, reads as many bytes back.
pub async fn round_trip(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    s.write_all(msg).await?;
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got).await?;
    Ok(got)
}

/// Polls `ready` every 20 ms until it holds, failing after `limit`: waits for a state to be
/// reached, it does not sleep for a guessed time.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !ready().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether the proxy's listener is open, as the API says.
pub async fn listening(admin: &str) -> bool {
    let (_, v) = call("GET", &format!("{admin}/proxies/p"), None).await;
    v["listening"].as_bool().unwrap()
}

/// Builds the Go service of the Redis tests once per test binary, into cargo's scratch
/// directory for tests.
pub fn redisapp_binary() -> &'static std::path::Path {
    use std::path::{Path, PathBuf};
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let out = dir.join("goguard-redisapp");
        // Built beside, then renamed over: another test binary may be running the old one.
        let fresh = dir.join(format!("goguard-redisapp.{}", std::process::id()));
        let status = std::process::Command::new("go")
            .args(["build", "-o"])
            .arg(&fresh)
            .arg(".")
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/redisapp"))
            .env("GOFLAGS", "-mod=mod")
            .status()
            .expect("go is installed (scripts/test installs it)");
        assert!(status.success(), "go build of redisapp failed");
        std::fs::rename(&fresh, &out).unwrap();
        out
    })
}

/// A child process killed when dropped.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free TCP port on loopback (bound, then released for the program under test).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A real redis-server on its own port, without persistence, answering PING.
pub async fn redis_server() -> (Child, u16) {
    let port = free_port();
    let child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is installed (scripts/test installs it)");
    let child = Child(child);
    wait_until(
        Duration::from_secs(10),
        "redis answers PING",
        || async move {
            let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
                return false;
            };
            let mut buf = [0u8; 7];
            s.write_all(b"PING\r\n").await.is_ok()
                && tokio::time::timeout(Duration::from_secs(1), s.read_exact(&mut buf))
                    .await
                    .is_ok_and(|r| r.is_ok() && &buf == b"+PONG\r\n")
        },
    )
    .await;
    (child, port)
}

/// The Go service, using Redis at `redis` with this timeout per call; returns it and its
/// base URL.
pub fn redisapp(redis: SocketAddr, timeout: &str) -> (Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(redisapp_binary())
        .args([
            "-listen",
            "127.0.0.1:0",
            "-redis",
            &redis.to_string(),
            "-timeout",
            timeout,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start redisapp");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("redisapp's first line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    (Child(child), format!("http://{addr}"))
}

/// A GET with a real client: the status and body (an error when nothing answered).
pub async fn get(url: &str) -> Result<(u16, String), String> {
    goguard_chaos::http_client::HttpClient::new()
        .request("GET", url, &[], None, Duration::from_secs(5))
        .await
        .map(|a| (a.status, a.body))
}
