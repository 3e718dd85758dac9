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
