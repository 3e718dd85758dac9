//! Traffic colouring and fault injection (5.3) end to end: the gateway in process, real Go
//! upstreams, a real HTTP client, faults switched through the admin API as `goguard drill`
//! does. Times are asserted as lower bounds only; waits poll for a condition.

mod support;
#[path = "support/gate.rs"]
mod test_gate;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use goguard_gate::clock::SystemClock;
use goguard_gate::layer::colour::sign;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use support::{client, get, get_with, send, Upstream};
use test_gate::{head, wait_for, TestGate};

const KEY: &str = "drill-key-0123456789abcdef";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A gateway config: `global` goes after the head (sections of its own), `route` inside the
/// `orders` route.
fn config(up: SocketAddr, global: &str, route: &str) -> String {
    format!(
        "{}{global}\n[upstreams.orders]\ntargets = [\"{up}\"]\n[[routes]]\nname = \"orders\"\npath_prefix = \"/orders\"\nupstream = \"orders\"\n{route}\n",
        head()
    )
}

fn colour_section() -> String {
    format!("[colour]\nkey = \"{KEY}\"\n")
}

async fn start(toml: &str) -> TestGate {
    TestGate::start(toml, Arc::new(SystemClock)).await
}

/// What the service received as the colour header (`?echo-header=`).
async fn seen_colour(gate: &TestGate, mark: &[&str]) -> String {
    let headers: Vec<(&str, &str)> = mark.iter().map(|m| ("x-trace-mode", *m)).collect();
    let (s, _, body) = get_with(&gate.url("/orders/1?echo-header=X-Trace-Mode"), &headers).await;
    assert_eq!(s, 200, "{body}");
    // "X-Trace-Mode=chaos #3"
    body.split_once('=')
        .and_then(|(_, rest)| rest.split_once(" #"))
        .map(|(v, _)| v.to_string())
        .unwrap_or_else(|| panic!("unexpected echo: {body}"))
}

async fn admin(
    gate: &TestGate,
    method: Method,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let url = format!("http://{}{path}", gate.admin);
    let (s, _, text) = send(method, &url, &headers, body).await;
    let v = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (s, v)
}

/// Switches a fault on through the admin API; its id.
async fn fault_on(gate: &TestGate, body: &str) -> String {
    let (s, v) = admin(gate, Method::POST, "/admin/faults", body, Some("t0ken")).await;
    assert_eq!(s, 201, "{v}");
    assert!(
        v["expires_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{v}"
    );
    v["id"].as_str().unwrap().to_string()
}

async fn fault_off(gate: &TestGate, id: &str) {
    let path = format!("/admin/faults/{id}");
    let (s, v) = admin(gate, Method::DELETE, &path, "", Some("t0ken")).await;
    assert_eq!(s, 200, "{v}");
}

/// One request with a real client that may get no answer: the status and body, or the
/// client's error.
async fn try_send(method: Method, url: &str, body: &str) -> Result<(u16, String), String> {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = client().request(req).await.map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{e:?}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

fn metric(metrics: &str, line: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(line))
        .unwrap_or_else(|| panic!("no `{line}` in\n{metrics}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_mark_reaches_the_service_and_any_other_is_stripped() {
    let up = Upstream::start("real");
    let gate = start(&config(up.addr, &colour_section(), "")).await;
    let t = now();
    let signed = sign(KEY.as_bytes(), "chaos", t);
    assert_eq!(
        seen_colour(&gate, &[&signed]).await,
        "chaos",
        "the service sees the bare colour"
    );
    // Signed just now in another spelling of the parameters' spaces: the same.
    let spaced = signed.replace("; ", ";");
    assert_eq!(seen_colour(&gate, &[&spaced]).await, "chaos");
    // None of these reaches the service.
    let forged = sign(b"not the drill key at all", "chaos", t);
    let expired = sign(KEY.as_bytes(), "chaos", t - 600);
    let future = sign(KEY.as_bytes(), "chaos", t + 600);
    let tampered = signed.replace(&format!("t={t}"), &format!("t={}", t - 1));
    let other_colour = sign(KEY.as_bytes(), "calm", t);
    let long = format!("chaos; t={t}; sig={}", "a".repeat(500));
    for mark in [
        "chaos",
        forged.as_str(),
        expired.as_str(),
        future.as_str(),
        tampered.as_str(),
        other_colour.as_str(),
        long.as_str(),
        "chaos; t=1; sig=zz",
    ] {
        assert_eq!(seen_colour(&gate, &[mark]).await, "", "stripped: {mark}");
    }
    // Sent twice, even once signed: stripped.
    assert_eq!(seen_colour(&gate, &[&signed, "chaos"]).await, "");
    let m = gate.metrics().await;
    let marks = |result: &str| {
        metric(
            &m,
            &format!("goguard_gate_colour_marks_total{{route=\"orders\",result=\"{result}\"}}"),
        )
    };
    assert_eq!(marks("accepted_signed"), 2.0);
    assert_eq!(marks("stripped_unsigned"), 1.0);
    assert_eq!(marks("stripped_bad_signature"), 2.0, "forged, tampered");
    assert_eq!(marks("stripped_expired"), 2.0, "old, future");
    assert_eq!(marks("stripped_unknown_colour"), 1.0);
    assert_eq!(marks("stripped_malformed"), 3.0, "long, bad hex, twice");
    assert_eq!(
        metric(
            &m,
            "goguard_gate_coloured_requests_total{route=\"orders\",class=\"2xx\"}"
        ),
        2.0,
        "coloured requests are counted apart"
    );
    assert_eq!(
        gate.status().await["routes"][0]["colour"]["marks"]["accepted_signed"],
        2
    );
}

/// The README's shell one-liner signs marks the gateway accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_openssl_signing_is_accepted() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("openssl is not installed: skipped");
        return;
    }
    let up = Upstream::start("real");
    let gate = start(&config(up.addr, &colour_section(), "")).await;
    let script = r#"t=$(date +%s); sig=$(printf 'chaos:%s' "$t" | openssl dgst -sha256 -hmac "$KEY" -r | cut -d' ' -f1); echo "chaos; t=$t; sig=$sig""#;
    let out = std::process::Command::new("sh")
        .args(["-c", script])
        .env("KEY", KEY)
        .output()
        .unwrap();
    let mark = String::from_utf8(out.stdout).unwrap();
    assert_eq!(seen_colour(&gate, &[mark.trim()]).await, "chaos", "{mark}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_holds_the_key() {
    let up = Upstream::start("real");
    let file = std::env::temp_dir().join(format!("goguard-colour-key-{}", std::process::id()));
    std::fs::write(&file, format!("{KEY}\n")).unwrap();
    let global = format!("[colour]\nkey_file = {:?}\n", file.display().to_string());
    let gate = start(&config(up.addr, &global, "")).await;
    let signed = sign(KEY.as_bytes(), "chaos", now());
    assert_eq!(
        seen_colour(&gate, &[&signed]).await,
        "chaos",
        "without its newline"
    );
    // A new key in the file takes over at the next reload.
    let new_key = "another-drill-key-fedcba9876543210";
    std::fs::write(&file, new_key).unwrap();
    gate.gw.reload("test").await.unwrap();
    assert_eq!(
        seen_colour(&gate, &[&signed]).await,
        "",
        "the old key's mark"
    );
    let resigned = sign(new_key.as_bytes(), "chaos", now());
    assert_eq!(seen_colour(&gate, &[&resigned]).await, "chaos");
    // The key is not shown by /admin/config; a key given inline is hidden there.
    let (_, _, shown) = get(&format!("http://{}/admin/config", gate.admin)).await;
    assert!(!shown.contains(new_key), "{shown}");
    std::fs::remove_file(&file).unwrap();
    // A key file that cannot be read stops the gateway from starting, saying which.
    let parsed = goguard_gate::config::parse(&config(up.addr, &global, ""), "gate.toml").unwrap();
    let err = goguard_gate::Gateway::new(parsed, None, gate.dir.clone(), Arc::new(SystemClock))
        .err()
        .unwrap();
    assert!(err.starts_with("colour.key_file: "), "{err}");
    let inline = start(&config(up.addr, &colour_section(), "")).await;
    let (_, _, shown) = get(&format!("http://{}/admin/config", inline.admin)).await;
    assert!(!shown.contains(KEY) && shown.contains("(set)"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_network_colours_without_a_signature() {
    let up = Upstream::start("real");
    let gate = start(&config(
        up.addr,
        "[colour]\ntrusted_networks = [\"127.0.0.0/8\"]\nvalues = [\"chaos\", \"load-test\"]\n",
        "",
    ))
    .await;
    assert_eq!(seen_colour(&gate, &["chaos"]).await, "chaos");
    assert_eq!(seen_colour(&gate, &["Load-Test"]).await, "load-test");
    assert_eq!(
        seen_colour(&gate, &["other"]).await,
        "",
        "an unknown colour"
    );

    let other = start(&config(
        up.addr,
        "[colour]\ntrusted_networks = [\"10.0.0.0/8\"]\n",
        "",
    ))
    .await;
    assert_eq!(seen_colour(&other, &["chaos"]).await, "", "not trusted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shadow_upstream_gets_the_coloured_requests_only() {
    let real = Upstream::start("real");
    let shadow = Upstream::start("shadow");
    let global = format!(
        "{}\n[upstreams.shadow]\ntargets = [\"{}\"]\n",
        colour_section(),
        shadow.addr
    );
    // A cache in front of the real service: a coloured request passes by it.
    let route = "[routes.colour]\nshadow = \"shadow\"\n[routes.cache]\nttl = \"60s\"\n";
    let gate = start(&config(real.addr, &global, route)).await;
    let instance = |h: &http::HeaderMap| h["x-instance"].to_str().unwrap().to_string();
    for _ in 0..3 {
        let (s, h, _) = get(&gate.url("/orders/1")).await;
        assert_eq!((s.as_u16(), instance(&h)), (200, "real".into()));
    }
    let signed = sign(KEY.as_bytes(), "chaos", now());
    for _ in 0..2 {
        let (s, h, _) = get_with(&gate.url("/orders/1"), &[("x-trace-mode", &signed)]).await;
        assert_eq!((s.as_u16(), instance(&h)), (200, "shadow".into()));
    }
    // A mark not believed goes to the real service (from the cache here).
    let (_, h, _) = get_with(&gate.url("/orders/1"), &[("x-trace-mode", "chaos")]).await;
    assert_eq!(instance(&h), "real");
    assert_eq!(shadow.count().await, 2);
    assert_eq!(real.count().await, 1, "the rest came from the cache");
    let m = gate.metrics().await;
    assert_eq!(
        metric(
            &m,
            "goguard_gate_shadow_requests_total{route=\"orders\",shadow=\"shadow\"}"
        ),
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_kind_as_the_client_sees_it() {
    let up = Upstream::start("real");
    let gate = start(&config(up.addr, "", "")).await;
    let url = gate.url("/orders/1");

    // Delay: at least the delay (never less with jitter).
    let id = fault_on(
        &gate,
        r#"{"route":"orders","kind":"delay","delay":"300ms","jitter":"50ms","coloured_only":false,"ttl":"60s"}"#,
    )
    .await;
    let start = Instant::now();
    assert_eq!(get(&url).await.0, 200);
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
    fault_off(&gate, &id).await;

    // Abort: the status and body, without the service.
    let before = up.count().await;
    let id = fault_on(
        &gate,
        r#"{"route":"orders","kind":"abort","status":503,"body":"drill: orders down","coloured_only":false}"#,
    )
    .await;
    let (s, _, body) = get(&url).await;
    assert_eq!((s.as_u16(), body.as_str()), (503, "drill: orders down"));
    assert_eq!(up.count().await, before, "the service was not asked");
    fault_off(&gate, &id).await;

    // Reset: no answer at all, on the gateway's own HTTP/1 loop and on hyper's (a body).
    let id = fault_on(
        &gate,
        r#"{"route":"orders","kind":"reset","coloured_only":false}"#,
    )
    .await;
    let got = try_send(Method::GET, &url, "").await;
    assert!(
        got.as_ref().is_err_and(|e| e.contains("ConnectionReset")),
        "a TCP reset, not an answer: {got:?}"
    );
    let got = try_send(Method::POST, &url, "a body").await;
    assert!(
        got.as_ref().is_err_and(|e| e.contains("ConnectionReset")),
        "a TCP reset, not an answer: {got:?}"
    );
    // On HTTP/2 the stream is reset, and the connection serves on.
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let req = || {
        Request::get(url.as_str())
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let got = h2.request(req()).await;
    let e = format!("{:?}", got.expect_err("a reset stream, not an answer"));
    assert!(e.contains("INTERNAL_ERROR"), "{e}");
    fault_off(&gate, &id).await;
    assert_eq!(get(&url).await.0, 200, "answers again");
    assert_eq!(h2.request(req()).await.unwrap().status(), 200);

    // Bandwidth: 4000 bytes at 4000 bytes/s, the last tenth due after 0.9 s.
    let id = fault_on(
        &gate,
        r#"{"route":"orders","kind":"bandwidth","bytes_per_second":4000,"coloured_only":false}"#,
    )
    .await;
    let big = "x".repeat(4000);
    let start = Instant::now();
    let (s, _, body) = get(&gate.url(&format!("/orders/1?body={big}"))).await;
    let took = start.elapsed();
    assert_eq!((s.as_u16(), body.len()), (200, 4000));
    assert!(took >= Duration::from_millis(900), "{took:?}");
    fault_off(&gate, &id).await;

    let m = gate.metrics().await;
    for kind in ["delay", "abort", "reset", "bandwidth"] {
        let n = metric(
            &m,
            &format!("goguard_gate_faults_applied_total{{route=\"orders\",kind=\"{kind}\"}}"),
        );
        assert_eq!(n, if kind == "reset" { 3.0 } else { 1.0 }, "{kind}");
    }
    assert_eq!(
        metric(
            &m,
            "goguard_gate_requests_total{route=\"orders\",status=\"444\"}"
        ),
        3.0,
        "resets are recorded as 444"
    );
    assert_eq!(
        metric(&m, "goguard_gate_faults_active{route=\"orders\"}"),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_percentage_of_all_traffic_is_faulted() {
    let up = Upstream::start("real");
    let gate = start(&config(up.addr, "", "")).await;
    fault_on(
        &gate,
        r#"{"route":"orders","kind":"abort","status":418,"percent":50.0,"coloured_only":false}"#,
    )
    .await;
    let mut aborted = 0;
    for _ in 0..200 {
        if get(&gate.url("/orders/1")).await.0 == 418 {
            aborted += 1;
        }
    }
    // Binomial(200, 0.5): outside 60..=140 once in 10^8 runs.
    assert!((60..=140).contains(&aborted), "{aborted} of 200");
    let (_, v) = admin(&gate, Method::GET, "/admin/faults", "", None).await;
    assert_eq!(v["faults"][0]["applied"], aborted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_active_faults_lets_the_rest_pass_unfaulted() {
    let up = Upstream::start("real");
    let gate = start(&config(up.addr, "", "max_active_faults = 2")).await;
    fault_on(
        &gate,
        r#"{"route":"orders","kind":"delay","delay":"1s","coloured_only":false}"#,
    )
    .await;
    let url = gate.url("/orders/1");
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                assert_eq!(get(&url).await.0, 200);
                start.elapsed()
            })
        })
        .collect();
    let mut times = Vec::new();
    for t in tasks {
        times.push(t.await.unwrap());
    }
    let delayed = times
        .iter()
        .filter(|t| **t >= Duration::from_secs(1))
        .count();
    // Two were delayed: the others came while both slots were held (a second).
    assert_eq!(delayed, 2, "{times:?}");
    let m = gate.metrics().await;
    assert_eq!(
        metric(
            &m,
            "goguard_gate_faults_skipped_total{route=\"orders\",reason=\"max_active\"}"
        ),
        4.0
    );
    assert_eq!(
        metric(
            &m,
            "goguard_gate_faults_applied_total{route=\"orders\",kind=\"delay\"}"
        ),
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coloured_only_faults_touch_the_drill_and_expire_by_themselves() {
    let up = Upstream::start("real");
    let gate = start(&config(up.addr, &colour_section(), "")).await;
    let id = fault_on(
        &gate,
        r#"{"route":"orders","kind":"abort","status":503,"ttl":"400ms"}"#,
    )
    .await;
    let signed = sign(KEY.as_bytes(), "chaos", now());
    let url = gate.url("/orders/1");
    let (_, v) = admin(&gate, Method::GET, "/admin/faults", "", None).await;
    let listed = &v["faults"][0];
    assert_eq!(
        (
            listed["id"].as_str(),
            listed["route"].as_str(),
            listed["kind"].as_str()
        ),
        (Some(id.as_str()), Some("orders"), Some("abort"))
    );
    assert_eq!(listed["coloured_only"], true, "the default");
    // Until it expires: the drill's requests fail, the others do not.
    let (s, _, _) = get_with(&url, &[("x-trace-mode", &signed)]).await;
    assert_eq!(s, 503);
    assert_eq!(get(&url).await.0, 200, "not coloured");
    assert_eq!(
        get_with(&url, &[("x-trace-mode", "chaos")]).await.0,
        200,
        "a mark not believed does not colour"
    );
    wait_for(Duration::from_secs(10), "the fault expires", || async {
        let (_, v) = admin(&gate, Method::GET, "/admin/faults", "", None).await;
        v["faults"].as_array().is_some_and(|a| a.is_empty())
    })
    .await;
    assert_eq!(get_with(&url, &[("x-trace-mode", &signed)]).await.0, 200);
    wait_for(
        Duration::from_secs(10),
        "the expiry is an event",
        || async {
            gate.events()
                .iter()
                .any(|e| e["reason"] == "fault_expired" && e["route"] == "orders")
        },
    )
    .await;
    assert!(gate.events().iter().any(|e| e["reason"] == "fault_added"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_refuses_bad_faults_and_strangers() {
    let up = Upstream::start("real");
    let gate = start(&config(up.addr, "[faults]\nmax_ttl = \"10m\"\n", "")).await;
    let post = |body: &'static str, token: Option<&'static str>| {
        let gate = &gate;
        async move { admin(gate, Method::POST, "/admin/faults", body, token).await }
    };
    let ok = r#"{"route":"orders","kind":"reset","coloured_only":false}"#;
    assert_eq!(post(ok, None).await.0, 401);
    assert_eq!(post(ok, Some("wrong")).await.0, 401);
    let (s, _) = admin(&gate, Method::DELETE, "/admin/faults", "", None).await;
    assert_eq!(s, 401);
    let bad = [
        (
            r#"{"route":"payments","kind":"reset","coloured_only":false}"#,
            "route: no route `payments` (routes: orders)",
        ),
        (
            r#"{"route":"orders","kind":"explode","coloured_only":false}"#,
            "unknown variant `explode`",
        ),
        (
            r#"{"route":"orders","kind":"delay","coloured_only":false}"#,
            "delay: a delay fault needs `delay`",
        ),
        (
            r#"{"route":"orders","kind":"abort","coloured_only":false}"#,
            "status: an abort fault needs `status`",
        ),
        (
            r#"{"route":"orders","kind":"reset","coloured_only":false,"ttl":"1h"}"#,
            "ttl: 1h is above the maximum, 10m",
        ),
        (
            r#"{"route":"orders","kind":"reset"}"#,
            "coloured_only: no request is coloured without a [colour] section",
        ),
        (r#"{"kind":"reset"}"#, "route: missing"),
        ("not json", "the body is not a JSON object"),
    ];
    for (body, message) in bad {
        let (s, v) = post(body, Some("t0ken")).await;
        assert_eq!(s, 400, "{body}: {v}");
        let e = v["error"].as_str().unwrap();
        assert!(e.contains(message), "{body}: {e}");
    }
    let a = fault_on(&gate, ok).await;
    let b = fault_on(&gate, ok).await;
    assert_ne!(a, b);
    let (s, _) = admin(
        &gate,
        Method::DELETE,
        "/admin/faults/f999",
        "",
        Some("t0ken"),
    )
    .await;
    assert_eq!(s, 404);
    fault_off(&gate, &a).await;
    let (s, v) = admin(&gate, Method::DELETE, "/admin/faults", "", Some("t0ken")).await;
    assert_eq!((s.as_u16(), &v["removed"]), (200, &serde_json::json!(1)));
    let (_, v) = admin(&gate, Method::GET, "/admin/faults", "", None).await;
    assert_eq!(v, serde_json::json!({"faults": []}));

    // No token configured: no changes over HTTP at all.
    let no_token = head().replace("admin_token = \"t0ken\"\n", "");
    let open = start(&config(up.addr, "", "").replace(&head(), &no_token)).await;
    let (s, _) = admin(&open, Method::POST, "/admin/faults", ok, Some("t0ken")).await;
    assert_eq!(s, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_stay_with_their_route_across_reloads() {
    let up = Upstream::start("real");
    let two_routes = format!(
        "{}[[routes]]\nname = \"static\"\npath_prefix = \"/static\"\nupstream = \"orders\"\n[[routes.faults]]\nkind = \"abort\"\nstatus = 502\ncoloured_only = false\n",
        config(up.addr, "", "")
    );
    let gate = start(&two_routes).await;
    assert_eq!(
        get(&gate.url("/static/1")).await.0,
        502,
        "a configured fault"
    );
    fault_on(
        &gate,
        r#"{"route":"orders","kind":"abort","status":504,"coloured_only":false}"#,
    )
    .await;
    assert_eq!(get(&gate.url("/orders/1")).await.0, 504);
    // A reload that keeps the route keeps its fault; the configured one goes with the file.
    let path = gate.dir.join("gate.toml");
    std::fs::write(&path, config(up.addr, "", "max_active_faults = 5")).unwrap();
    gate.gw.reload("test").await.unwrap();
    assert_eq!(get(&gate.url("/orders/1")).await.0, 504);
    assert_eq!(get(&gate.url("/static/1")).await.0, 404);
    // One without the route drops it, with an event.
    let renamed = config(up.addr, "", "").replace("name = \"orders\"", "name = \"orders-v2\"");
    std::fs::write(&path, renamed).unwrap();
    gate.gw.reload("test").await.unwrap();
    assert_eq!(get(&gate.url("/orders/1")).await.0, 200);
    let (_, v) = admin(&gate, Method::GET, "/admin/faults", "", None).await;
    assert_eq!(v, serde_json::json!({"faults": []}));
    wait_for(Duration::from_secs(10), "the drop is an event", || async {
        gate.events()
            .iter()
            .any(|e| e["reason"] == "fault_dropped" && e["route"] == "orders")
    })
    .await;
}

/// The README's example, as written there (with the upstreams it names).
#[test]
fn the_readme_example_is_valid() {
    let example = r#"[colour]                             # without it, nothing is coloured and marks are not read
header = "X-Trace-Mode"
values = ["chaos"]                   # the colours accepted; the service receives `X-Trace-Mode: chaos`
key_file = "drill.key"               # or key = "..." (at least 16 bytes; `openssl rand -hex 32`)
max_age = "5m"                       # a signed mark's validity after its timestamp
max_skew = "30s"                     # how far in the future a timestamp may be
trusted_networks = ["10.0.0.0/8"]    # the services' own network: marks believed unsigned

[faults]                             # bounds of every route's faults
max_active_faults = 1000             # requests faulted at once; beyond, they pass unfaulted
default_ttl = "5m"                   # a fault switched on through the admin API ends after this ...
max_ttl = "1h"                       # ... or its own ttl, at most this

[[routes]]
name = "orders"
upstream = "orders"
max_active_faults = 50               # this route's own bound (optional)

[routes.colour]
shadow = "orders-shadow"             # coloured requests go there instead (shadow DB, no billing)

[[routes.faults]]                    # in force as long as this configuration
kind = "delay"                       # delay, abort, reset or bandwidth
delay = "200ms"
jitter = "50ms"                      # + a random 0..50 ms
percent = 100.0                      # of the requests it may apply to
coloured_only = true                 # the default: the drill's requests alone
"#;
    let text = format!(
        "[upstreams.orders]\ntargets = [\"127.0.0.1:9000\"]\n[upstreams.orders-shadow]\ntargets = [\"127.0.0.1:9001\"]\n{example}"
    );
    let c = goguard_gate::config::parse(&text, "gate.toml").unwrap_or_else(|e| panic!("{e}"));
    let r = &c.routes[0];
    assert_eq!(r.faults[0].delay, Some(Duration::from_millis(200)));
    assert_eq!(
        r.colour.as_ref().unwrap().shadow.as_deref(),
        Some("orders-shadow")
    );
    assert_eq!(c.colour.as_ref().unwrap().max_age, Duration::from_secs(300));
}

#[test]
fn bad_colour_and_fault_sections_are_refused_with_their_line() {
    let base = "[upstreams.orders]\ntargets = [\"127.0.0.1:9000\"]\n[[routes]]\nname = \"orders\"\nupstream = \"orders\"\n";
    let cases = [
        ("[colour]\nkey = \"short\"\n", "gate.toml:7: colour.key: at least 16 bytes"),
        (
            "[colour]\nkey = \"0123456789abcdef\"\nkey_file = \"k\"\n",
            "colour.key: set key or key_file, not both",
        ),
        ("[colour]\n", "colour: no request could be coloured"),
        (
            "[colour]\ntrusted_networks = [\"10.0.0.0/40\"]\n",
            "colour.trusted_networks: `10.0.0.0/40`: expected an address or a CIDR",
        ),
        (
            "[colour]\ntrusted_networks = [\"10.0.0.0/8\"]\nheader = \"X Trace\"\n",
            "colour.header: `X Trace` is not a header name",
        ),
        (
            "[colour]\ntrusted_networks = [\"10.0.0.0/8\"]\n[routes.colour]\nshadow = \"nowhere\"\n",
            "routes.0.colour.shadow: no upstream `nowhere`",
        ),
        (
            "[routes.colour]\nshadow = \"orders\"\n",
            "routes.0.colour.shadow: no request is coloured without a [colour] section",
        ),
        (
            "[[routes.faults]]\nkind = \"delay\"\ncoloured_only = false\n",
            "routes.0.faults.0.delay: a delay fault needs `delay`",
        ),
        (
            "[[routes.faults]]\nkind = \"reset\"\n",
            "routes.0.faults.0.coloured_only: no request is coloured without a [colour] section",
        ),
        (
            "[[routes.faults]]\nkind = \"reset\"\npercent = 150.0\ncoloured_only = false\n",
            "routes.0.faults.0.percent: from 0 to 100",
        ),
        (
            "[[routes.faults]]\nkind = \"abort\"\nstatus = 503\nbytes_per_second = 5\ncoloured_only = false\n",
            "routes.0.faults.0.bytes_per_second: not for an abort fault",
        ),
        ("[[routes.faults]]\nkind = \"melt\"\n", "unknown variant `melt`"),
        (
            "[colour]\ntrusted_networks = [\"10.0.0.0/8\"]\nheader = \"Host\"\n",
            "colour.header: `Host` is a header HTTP or the gateway relies on",
        ),
        (
            "max_active_faults = 0\n",
            "routes.0.max_active_faults: at least 1",
        ),
        (
            "[faults]\ndefault_ttl = \"2h\"\n",
            "faults.default_ttl: more than 0 and at most max_ttl",
        ),
    ];
    for (section, message) in cases {
        // `[routes.x]` after another table still belongs to the last route.
        let text = format!("{base}{section}");
        let err = goguard_gate::config::parse(&text, "gate.toml")
            .err()
            .unwrap_or_else(|| panic!("accepted:\n{text}"))
            .to_string();
        assert!(err.contains(message), "{message}\n--\n{err}\n--\n{text}");
    }
}
