//! Each toxic as a real client sees it through the proxy, with a real echo server behind.
//! Waits are bounded by client timeouts or by polling the admin API, never by sleeping.

mod support;

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn forwards_both_ways_without_toxics() {
    let (_set, addr, _) = proxy_to(echo_server().await).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert_eq!(round_trip(&mut c, b"hello").await.unwrap(), b"hello");
    let big = vec![7u8; 1 << 20];
    assert_eq!(round_trip(&mut c, &big).await.unwrap(), big);
}

#[tokio::test]
async fn latency_delays_new_and_existing_connections() {
    let (_set, addr, admin) = proxy_to(echo_server().await).await;
    let mut existing = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut existing, b"warm").await.unwrap();
    toxic(
        &admin,
        json!({"type": "latency", "attributes": {"latency": 200, "jitter": "20ms"}}),
    )
    .await;
    for c in [&mut existing, &mut TcpStream::connect(addr).await.unwrap()] {
        let t = Instant::now();
        timeout(LIMIT, round_trip(c, b"ping"))
            .await
            .unwrap()
            .unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(180),
            "{:?}",
            t.elapsed()
        );
    }
    // Both directions: 2 x 100 ms.
    let (_, v) = call(
        "DELETE",
        &format!("{admin}/proxies/p/toxics/latency_downstream"),
        None,
    )
    .await;
    assert!(v.is_null());
    toxic(
        &admin,
        json!({"type": "latency", "stream": "upstream", "attributes": {"latency": "100ms"}}),
    )
    .await;
    toxic(
        &admin,
        json!({"type": "latency", "stream": "downstream", "attributes": {"latency": "100ms"}}),
    )
    .await;
    let t = Instant::now();
    timeout(LIMIT, round_trip(&mut existing, b"ping"))
        .await
        .unwrap()
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn bandwidth_bounds_the_time_of_a_transfer() {
    let (_set, addr, admin) = proxy_to(echo_server().await).await;
    toxic(
        &admin,
        json!({"type": "bandwidth", "attributes": {"bytes_per_second": 40000}}),
    )
    .await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let data = vec![1u8; 40000];
    let t = Instant::now();
    let got = timeout(LIMIT, round_trip(&mut c, &data))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), data.len());
    // 40,000 bytes at 40,000 B/s: at least a second.
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn reset_peer_is_seen_as_connection_reset() {
    let (_set, addr, admin) = proxy_to(echo_server().await).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut c, b"before").await.unwrap();
    toxic(&admin, json!({"type": "reset_peer"})).await;
    let mut buf = [0u8; 16];
    let err = timeout(LIMIT, c.read(&mut buf))
        .await
        .expect("the reset comes")
        .expect_err("a reset, not data or a clean close");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    // A new connection is reset after the toxic's timeout.
    let mut c = TcpStream::connect(addr).await.unwrap();
    let _ = c.write_all(b"x").await;
    let r = timeout(LIMIT, c.read(&mut buf))
        .await
        .expect("the reset comes");
    assert_eq!(r.expect_err("reset").kind(), ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn down_refuses_new_connections_and_closes_existing_ones() {
    let (_set, addr, admin) = proxy_to(echo_server().await).await;
    let mut existing = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut existing, b"up").await.unwrap();
    toxic(&admin, json!({"type": "down", "name": "outage"})).await;
    let mut buf = [0u8; 8];
    let n = timeout(LIMIT, existing.read(&mut buf))
        .await
        .expect("closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "the existing connection is closed");
    wait_until(LIMIT, "the listener is closed", || async {
        !listening(&admin).await
    })
    .await;
    let err = TcpStream::connect(addr).await.expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    // toxiproxy's spelling works too, and up again serves.
    let (s, v) = call(
        "POST",
        &format!("{admin}/proxies/p"),
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!((s, v["enabled"].as_bool()), (200, Some(true)));
    wait_until(LIMIT, "the listener is open", || async {
        listening(&admin).await
    })
    .await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert_eq!(round_trip(&mut c, b"back").await.unwrap(), b"back");
    let (s, _) = call(
        "POST",
        &format!("{admin}/proxies/p"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(s, 200);
    wait_until(LIMIT, "the listener is closed", || async {
        !listening(&admin).await
    })
    .await;
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn timeout_swallows_data_and_closes_after_its_timeout() {
    let (_set, addr, admin) = proxy_to(echo_server().await).await;
    toxic(&admin, json!({"type": "timeout", "name": "hole"})).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"anyone?").await.unwrap();
    let mut buf = [0u8; 8];
    assert!(
        timeout(Duration::from_millis(700), c.read(&mut buf))
            .await
            .is_err(),
        "a black hole never answers"
    );
    call("DELETE", &format!("{admin}/proxies/p/toxics/hole"), None).await;
    // Gone: what is sent now is answered (what was swallowed stays lost).
    assert_eq!(
        timeout(LIMIT, round_trip(&mut c, b"now"))
            .await
            .unwrap()
            .unwrap(),
        b"now"
    );

    toxic(
        &admin,
        json!({"type": "timeout", "attributes": {"timeout": 300}}),
    )
    .await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let t = Instant::now();
    c.write_all(b"hello").await.unwrap();
    let r = timeout(LIMIT, c.read(&mut buf))
        .await
        .expect("closed within the limit");
    assert!(matches!(r, Ok(0)) || r.is_err(), "closed, no data: {r:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(280),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn slow_close_delays_the_close() {
    let (_set, addr, admin) = proxy_to(echo_server().await).await;
    toxic(
        &admin,
        json!({"type": "slow_close", "attributes": {"delay": "300ms"}}),
    )
    .await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut c, b"bye").await.unwrap();
    let t = Instant::now();
    c.shutdown().await.unwrap();
    let mut buf = [0u8; 8];
    let n = timeout(LIMIT, c.read(&mut buf)).await.unwrap().unwrap();
    assert_eq!(n, 0);
    assert!(
        t.elapsed() >= Duration::from_millis(280),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn limit_data_closes_after_its_bytes() {
    let (_set, addr, admin) = proxy_to(echo_server().await).await;
    toxic(
        &admin,
        json!({"type": "limit_data", "attributes": {"bytes": 10}}),
    )
    .await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(&[b'a'; 100]).await.unwrap();
    let mut got = Vec::new();
    let _ = timeout(LIMIT, c.read_to_end(&mut got))
        .await
        .expect("closed");
    assert_eq!(got, vec![b'a'; 10]);
}

#[tokio::test]
async fn a_toxic_with_a_ttl_removes_itself() {
    let (_set, addr, admin) = proxy_to(echo_server().await).await;
    toxic(
        &admin,
        json!({"type": "latency", "attributes": {"latency": 50}, "ttl": "300ms"}),
    )
    .await;
    let (_, v) = call("GET", &format!("{admin}/proxies/p/toxics"), None).await;
    assert_eq!(v[0]["ttl"], "300ms");
    assert!(v[0]["expires_in_ms"].as_u64().unwrap() <= 300);
    wait_until(LIMIT, "the toxic expired", || async {
        let (_, v) = call("GET", &format!("{admin}/proxies/p/toxics"), None).await;
        v.as_array().unwrap().is_empty()
    })
    .await;
    let (_, text) = call("GET", &format!("{admin}/metrics"), None).await;
    let text = text.as_str().unwrap().to_string();
    assert!(
        text.contains("goguard_chaos_toxics_expired_total{proxy=\"p\"} 1"),
        "{text}"
    );
    let mut c = TcpStream::connect(addr).await.unwrap();
    let t = Instant::now();
    round_trip(&mut c, b"fast").await.unwrap();
    assert!(t.elapsed() < Duration::from_millis(50));
}

#[tokio::test]
async fn admin_api_errors_are_clear() {
    let (_set, _, admin) = proxy_to(echo_server().await).await;
    let post = |body: &'static str| {
        let admin = admin.clone();
        async move {
            let a = goguard_chaos::http_client::HttpClient::new()
                .request(
                    "POST",
                    &format!("{admin}/proxies/p/toxics"),
                    &[],
                    Some(body.into()),
                    LIMIT,
                )
                .await
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
            (
                a.status,
                v["error"].as_str().unwrap_or_default().to_string(),
            )
        }
    };
    let (s, e) = post("{not json").await;
    assert_eq!(s, 400);
    assert!(e.starts_with("the body is not JSON"), "{e}");
    let (s, e) = post(r#"{"type": "lag"}"#).await;
    assert_eq!((s, e.as_str()), (400, "type: `lag` is not one of latency, bandwidth, down, reset_peer, timeout, slow_close, limit_data"));
    let (s, e) = post(r#"{"type": "latency", "attributes": {"latency": -5}}"#).await;
    assert_eq!(s, 400);
    assert!(e.starts_with("attributes.latency:"), "{e}");
    let (s, e) = post("").await;
    assert_eq!(
        (s, e.as_str()),
        (400, "the body is empty: send a JSON object")
    );
    assert_eq!(post(r#"{"type": "down"}"#).await.0, 200);
    let (s, e) = post(r#"{"type": "down"}"#).await;
    assert_eq!(
        (s, e.as_str()),
        (409, "proxy `p` already has a toxic named `down_downstream`")
    );
    let (s, v) = call(
        "POST",
        &format!("{admin}/proxies/nope/toxics"),
        Some(json!({"type": "down"})),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str().unwrap()),
        (404, "no proxy named `nope`")
    );
    let (s, v) = call("DELETE", &format!("{admin}/proxies/p/toxics/nope"), None).await;
    assert_eq!(
        (s, v["error"].as_str().unwrap()),
        (404, "proxy `p` has no toxic named `nope`")
    );
    let (s, _) = call("PUT", &format!("{admin}/proxies/p/toxics"), None).await;
    assert_eq!(s, 405);
    let (s, v) = call("GET", &format!("{admin}/nothing"), None).await;
    assert_eq!(s, 404);
    assert!(v["endpoints"].as_array().unwrap().len() > 5);
    let (s, v) = call(
        "POST",
        &format!("{admin}/proxies/p"),
        Some(json!({"upstream": "x:1"})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    // Reset all.
    let (s, v) = call("DELETE", &format!("{admin}/toxics"), None).await;
    assert_eq!((s, v["removed"].as_u64()), (200, Some(1)));
    let (_, v) = call("GET", &format!("{admin}/proxies"), None).await;
    assert_eq!(v["p"]["toxics"], json!([]));
    assert_eq!(v["p"]["enabled"], json!(true));
}

#[tokio::test]
async fn metrics_count_connections_bytes_and_toxics() {
    let (set, addr, admin) = proxy_to(echo_server().await).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut c, b"12345").await.unwrap();
    toxic(
        &admin,
        json!({"type": "latency", "attributes": {"latency": 1}}),
    )
    .await;
    let text = set.metrics_text();
    for line in [
        "goguard_chaos_connections_total{proxy=\"p\"} 1",
        "goguard_chaos_connections_active{proxy=\"p\"} 1",
        "goguard_chaos_bytes_total{proxy=\"p\",direction=\"upstream\"} 5",
        "goguard_chaos_bytes_total{proxy=\"p\",direction=\"downstream\"} 5",
        "goguard_chaos_toxics_active{proxy=\"p\",type=\"latency\"} 1",
        "goguard_chaos_toxics_active{proxy=\"p\",type=\"down\"} 0",
        "goguard_chaos_listening{proxy=\"p\"} 1",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
}

#[tokio::test]
async fn start_errors_name_the_proxy_and_address() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = goguard_chaos::ProxySet::start(vec![goguard_chaos::ProxyConfig {
        name: "redis".into(),
        listen: addr.clone(),
        upstream: "127.0.0.1:6379".into(),
    }])
    .await
    .err()
    .unwrap();
    assert!(
        err.to_string()
            .starts_with(&format!("proxy `redis`: cannot listen on {addr}: ")),
        "{err}"
    );
}
