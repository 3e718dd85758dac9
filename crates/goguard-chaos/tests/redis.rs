//! A real Redis behind the fault proxy, and a small Go service using it (standard library
//! only: RESP by hand): what the service sees of each fault, and drills run against it.

mod support;

use std::time::Duration;

use goguard_chaos::drill::{self, Scenario};
use serde_json::json;
use support::*;

const LIMIT: Duration = Duration::from_secs(10);

/// Redis, a proxy in front of it, the Go service on the proxy.
struct Stack {
    _redis: Child,
    _app: Child,
    set: goguard_chaos::ProxySet,
    admin: String,
    app: String,
}

async fn stack() -> Stack {
    let (redis, port) = redis_server().await;
    let (set, addr, admin) = proxy_to(([127, 0, 0, 1], port).into()).await;
    let (app, url) = redisapp(addr, "300ms");
    Stack {
        _redis: redis,
        _app: app,
        set,
        admin,
        app: url,
    }
}

async fn status(url: &str) -> u16 {
    get(url).await.map_or(0, |(s, _)| s)
}

async fn until_status(url: &str, want: u16, what: &str) {
    wait_until(LIMIT, what, || async { status(url).await == want }).await;
}

#[tokio::test]
async fn the_go_service_sees_each_fault_of_its_redis() {
    let s = stack().await;
    let health = format!("{}/healthz", s.app);
    assert_eq!(
        get(&format!("{}/set?key=a&value=1", s.app))
            .await
            .unwrap()
            .0,
        200
    );
    assert_eq!(
        get(&format!("{}/get?key=a", s.app)).await.unwrap(),
        (200, "1".into())
    );
    assert_eq!(status(&health).await, 200);

    // Unreachable: refused, health fails at once; back when it is removed.
    toxic(&s.admin, json!({"type": "down", "name": "outage"})).await;
    until_status(&health, 503, "health fails while Redis is down").await;
    let (_, body) = get(&format!("{}/get?key=a", s.app)).await.unwrap();
    assert!(
        body.contains("refused") || body.contains("EOF") || body.contains("reset"),
        "{body}"
    );
    call(
        "DELETE",
        &format!("{}/proxies/p/toxics/outage", s.admin),
        None,
    )
    .await;
    until_status(&health, 200, "health is back").await;

    // A black hole: the service's own 300 ms timeout fires.
    toxic(&s.admin, json!({"type": "timeout", "name": "hole"})).await;
    let (code, body) = get(&health).await.unwrap();
    assert_eq!(code, 503);
    assert!(body.contains("timeout"), "{body}");
    call(
        "DELETE",
        &format!("{}/proxies/p/toxics/hole", s.admin),
        None,
    )
    .await;
    until_status(&health, 200, "health is back after the black hole").await;

    // Latency over the service's timeout fails it; under it only slows it down.
    toxic(
        &s.admin,
        json!({"type": "latency", "name": "slow", "attributes": {"latency": "500ms"}}),
    )
    .await;
    assert_eq!(status(&health).await, 503);
    call(
        "DELETE",
        &format!("{}/proxies/p/toxics/slow", s.admin),
        None,
    )
    .await;
    toxic(
        &s.admin,
        json!({"type": "latency", "name": "slowish", "attributes": {"latency": "100ms"}}),
    )
    .await;
    let t = std::time::Instant::now();
    until_status(&health, 200, "health passes under a 100 ms latency").await;
    assert_eq!(status(&health).await, 200);
    assert!(t.elapsed() >= Duration::from_millis(100));
    call(
        "DELETE",
        &format!("{}/proxies/p/toxics/slowish", s.admin),
        None,
    )
    .await;

    // A reset: the service's pooled connections fail once, then it reconnects.
    toxic(
        &s.admin,
        json!({"type": "reset_peer", "name": "rst", "ttl": "200ms"}),
    )
    .await;
    until_status(&health, 503, "health fails on resets").await;
    until_status(&health, 200, "health is back after the reset toxic expired").await;
    assert!(s.set.toxics("p").unwrap().is_empty());
}

fn scenario(s: &Stack, steps: &str) -> Scenario {
    let text = format!(
        r#"
name = "Redis unreachable"
[watch]
health = "{app}/healthz"
probe = "{app}/get?key=a"
every = "50ms"
timeout = "1s"
window = "500ms"
[targets]
detect_within = "1s"
recover_within = "2s"
[[chaos]]
name = "redis"
admin = "{admin}"
proxy = "p"
{steps}
"#,
        app = s.app,
        admin = s.admin
    );
    Scenario::parse(&text, "test").unwrap()
}

#[tokio::test]
async fn a_drill_of_redis_unreachable_runs_in_seconds() {
    let s = stack().await;
    get(&format!("{}/set?key=a&value=1", s.app)).await.unwrap();
    let sc = scenario(
        &s,
        r#"
[[step]]
name = "Redis primary unreachable"
fault = { target = "redis", type = "down" }
duration = "1500ms"
[[step]]
name = "Redis black-holed"
fault = { target = "redis", type = "timeout" }
duration = "1500ms"
detect = { error_rate = 0.5 }
"#,
    );
    let report = drill::run(&sc, std::future::pending()).await;
    let text = drill::render_text(&report);
    assert!(report.passed, "{text}");
    assert_eq!(report.steps.len(), 2);
    for step in &report.steps {
        assert_eq!(step.verdict, "ok", "{text}");
        assert!(step.detect_ms.unwrap() <= 1000, "{text}");
        assert!(step.recover_ms.unwrap() <= 2000, "{text}");
        assert!(step.fault_ms >= 1500, "{text}");
        assert!(step.error_rate.unwrap() > 0.3, "{text}");
    }
    assert_eq!(report.steps[0].detect_by, "health failing");
    assert!(
        report.steps[1].detect_by.starts_with("error rate"),
        "{text}"
    );
    assert!(report.steps[0].health_failed > 0);
    assert!(
        text.contains("Redis primary unreachable  p: down"),
        "{text}"
    );
    assert!(text.contains("2 of 2 step(s) met their targets."), "{text}");
    assert!(
        report.cleaned_up.is_empty(),
        "each step removed its own fault"
    );
    // Nothing left behind.
    assert!(s.set.toxics("p").unwrap().is_empty());
    let (_, v) = call("GET", &format!("{}/proxies/p", s.admin), None).await;
    assert_eq!(v["toxics"], json!([]));
    // The other renderings.
    let json: serde_json::Value = serde_json::from_str(&drill::render_json(&report)).unwrap();
    assert_eq!(json["steps"][0]["verdict"], "ok");
    let html = drill::render_html(&report);
    assert!(html.contains("<svg") && html.contains("Redis primary unreachable"));
    assert!(
        !html.contains("http://") || !html.contains("src="),
        "no external assets"
    );
}

#[tokio::test]
async fn a_missed_target_fails_the_drill() {
    let s = stack().await;
    let sc = scenario(
        &s,
        r#"
[[step]]
name = "too strict"
fault = { target = "redis", type = "down" }
duration = "500ms"
detect_within = "1ms"
[[step]]
name = "unnoticed"
fault = { target = "redis", type = "latency", attributes = { latency = 20 } }
duration = "500ms"
"#,
    );
    let report = drill::run(&sc, std::future::pending()).await;
    let text = drill::render_text(&report);
    assert!(!report.passed, "{text}");
    assert!(
        report.steps[0].verdict.starts_with("detected in "),
        "{text}"
    );
    assert!(report.steps[0].verdict.contains("> 0.0 s"), "{text}");
    assert_eq!(
        report.steps[1].verdict, "not detected in 0.5 s of fault",
        "{text}"
    );
    assert!(text.contains("the drill FAILED"), "{text}");
    assert!(s.set.toxics("p").unwrap().is_empty());
}

#[tokio::test]
async fn an_interrupted_drill_removes_its_fault() {
    let s = stack().await;
    let sc = scenario(
        &s,
        r#"
[[step]]
fault = { target = "redis", type = "down" }
duration = "60s"
"#,
    );
    let set = s.set.clone();
    // Ctrl-C as soon as the fault is in place.
    let cancel = async move {
        wait_until(LIMIT, "the drill set its fault", || {
            let set = set.clone();
            async move { !set.toxics("p").unwrap().is_empty() }
        })
        .await;
        let t = &set.toxics("p").unwrap()[0];
        assert_eq!(
            t.ttl,
            Some(Duration::from_secs(66)),
            "a ttl a little over the step"
        );
        "interrupted (SIGINT)".to_string()
    };
    let report = drill::run(&sc, cancel).await;
    assert_eq!(report.interrupted.as_deref(), Some("interrupted (SIGINT)"));
    assert!(!report.passed);
    assert_eq!(report.cleaned_up.len(), 1, "{:?}", report.cleaned_up);
    assert!(report.cleaned_up[0].starts_with("toxic drill-"));
    assert!(s.set.toxics("p").unwrap().is_empty());
    until_status(&format!("{}/healthz", s.app), 200, "the service is back").await;
}
