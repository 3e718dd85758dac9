//! The gateway end to end, in process: real Go upstreams, a real HTTP client, a real Redis.
//! Where time matters (a breaker's open period, a limit's refill) the gateway runs on a
//! manual clock that the test moves.

mod support;
#[path = "support/gate.rs"]
mod test_gate;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use goguard_gate::clock::{ManualClock, SharedClock, SystemClock};
use http::Method;
use support::{get, get_with, send, Redis, Upstream};
use test_gate::{head, wait_for, TestGate};

fn manual() -> (ManualClock, SharedClock) {
    let c = ManualClock::new();
    (c.clone(), Arc::new(c))
}

async fn statuses(gate: &TestGate, path: &str, n: usize, headers: &[(&str, &str)]) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(get_with(&gate.url(path), headers).await.0.as_u16());
    }
    out
}

fn count(codes: &[u16], code: u16) -> usize {
    codes.iter().filter(|c| **c == code).count()
}

fn breaker_config(up: SocketAddr, breaker: &str, fallback: &str) -> String {
    format!(
        "{}[upstreams.orders]\ntargets = [\"{up}\"]\neject_after = 1000\n[[routes]]\nname = \"orders\"\npath_prefix = \"/orders\"\nupstream = \"orders\"\n[routes.breaker]\n{breaker}\n{fallback}\n[events]\nrejections = 5\nwindow = \"10s\"\nuser = \"header:x-user-id\"\n",
        head()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_trips_half_opens_and_recovers() {
    let up = Upstream::start("a");
    let (clock, shared) = manual();
    let gate = TestGate::start(
        &breaker_config(
            up.addr,
            "window = \"10s\"\nmin_requests = 20\nerror_ratio = 0.5\nopen_for = \"10s\"\nhalf_open_probes = 3",
            "[routes.fallback]\nstatus = 503\nbody = \"Service busy, please retry shortly.\"",
        ),
        shared,
    )
    .await;
    up.mode("fail", "").await;
    let codes = statuses(&gate, "/orders/1", 20, &[("x-user-id", "u1")]).await;
    assert_eq!(count(&codes, 500), 20, "the upstream's errors pass through");
    assert_eq!(gate.status().await["routes"][0]["breaker"]["state"], "open");

    // Open: the fallback answers and the upstream is spared.
    let before = up.count().await;
    let (s, h, body) = get_with(&gate.url("/orders/1"), &[("x-user-id", "u1")]).await;
    assert_eq!(
        (s.as_u16(), body.as_str()),
        (503, "Service busy, please retry shortly.")
    );
    assert_eq!(h["retry-after"], "1");
    statuses(&gate, "/orders/1", 10, &[("x-user-id", "u1")]).await;
    assert_eq!(up.count().await, before, "no request reached the upstream");
    let events = gate.events();
    assert!(
        events
            .iter()
            .any(|e| e["user"] == "u1" && e["reason"] == "breaker_open"),
        "a user who keeps hitting the open breaker is reported: {events:?}"
    );

    // After open_for: half-open lets 3 probes through; a failed probe re-opens.
    clock.advance(Duration::from_secs(10));
    assert_eq!(get(&gate.url("/orders/1")).await.0, 500, "a probe");
    assert_eq!(gate.status().await["routes"][0]["breaker"]["state"], "open");
    clock.advance(Duration::from_secs(10));
    up.mode("ok", "").await;
    let codes = statuses(&gate, "/orders/1", 3, &[]).await;
    assert_eq!(codes, [200, 200, 200]);
    let status = gate.status().await;
    let b = &status["routes"][0]["breaker"];
    assert_eq!(b["state"], "closed");
    assert_eq!(b["transitions_to_open"], 2);
    assert_eq!(b["transitions_to_half_open"], 2);
    assert_eq!(b["transitions_to_closed"], 1);
    let metrics = gate.metrics().await;
    assert!(
        metrics.contains("goguard_gate_breaker_transitions_total{route=\"orders\",to=\"open\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("goguard_gate_breaker_state{route=\"orders\",state=\"closed\"} 1"));
    // Every request answered is in the latency histogram, whose buckets add up to its
    // count; none is left in flight.
    let value = |line: &str| -> u64 {
        let found = metrics.lines().find(|l| l.starts_with(line));
        found
            .unwrap_or_else(|| panic!("{line}\n{metrics}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let answered: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("goguard_gate_requests_total{route=\"orders\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    let count = value("goguard_gate_request_duration_seconds_count{route=\"orders\"}");
    assert_eq!(count, answered);
    assert!(count > 0);
    assert_eq!(
        value("goguard_gate_request_duration_seconds_bucket{le=\"+Inf\",route=\"orders\"}"),
        count
    );
    assert_eq!(value("goguard_gate_in_flight{route=\"orders\"}"), 0);
    // The target's own figures: none in flight, and no more requests than were answered
    // (the breaker's rejections never reached it).
    let status = gate.status().await;
    let target = &status["upstreams"]["orders"][0];
    assert_eq!(target["in_flight"], 0, "{target}");
    let sent = target["requests"].as_u64().unwrap();
    assert!(sent > 0 && sent <= answered, "{sent} of {answered}");
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_under_the_traffic_floor_do_not_trip() {
    // 5.1's pair: 100% errors, but 40 calls in a 10 s window is under the 5/s floor.
    let up = Upstream::start("a");
    let (_clock, shared) = manual();
    let gate = TestGate::start(
        &breaker_config(
            up.addr,
            "window = \"10s\"\nmin_rps = 5\nerror_ratio = 0.5\nopen_for = \"10s\"",
            "",
        ),
        shared,
    )
    .await;
    up.mode("fail", "").await;
    let codes = statuses(&gate, "/orders/1", 49, &[]).await;
    assert_eq!(count(&codes, 500), 49);
    assert_eq!(
        gate.status().await["routes"][0]["breaker"]["state"],
        "closed"
    );
    assert_eq!(up.count().await, 49, "every call reached the upstream");
    // The 50th reaches the floor: now it trips, and with no fallback the answer is a 503.
    get(&gate.url("/orders/1")).await;
    assert_eq!(gate.status().await["routes"][0]["breaker"]["state"], "open");
    let (s, h, _) = get(&gate.url("/orders/1")).await;
    assert_eq!(s, 503);
    assert_eq!(h["retry-after"], "10", "until the breaker half-opens");
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_calls_trip_the_slow_ratio_strategy() {
    let up = Upstream::start("a");
    let gate = TestGate::start(
        &breaker_config(
            up.addr,
            "window = \"60s\"\nmin_requests = 4\nslow_call = \"50ms\"\nslow_ratio = 0.5",
            "[routes.fallback]\nredirect = \"https://status.example.com/\"",
        ),
        Arc::new(SystemClock),
    )
    .await;
    let codes = statuses(&gate, "/orders/1?delay=100ms", 4, &[]).await;
    assert_eq!(codes, [200; 4], "slow, not failing");
    let (s, h, _) = get(&gate.url("/orders/1")).await;
    assert_eq!(s, 302, "the degrade page");
    assert_eq!(h["location"], "https://status.example.com/");
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_upstream_serves_while_open_and_4xx_are_not_errors() {
    let up = Upstream::start("main");
    let degraded = Upstream::start("degraded");
    let toml = format!(
        "{}[upstreams.main]\ntargets = [\"{}\"]\n[upstreams.degraded]\ntargets = [\"{}\"]\n[[routes]]\nname = \"r\"\nupstream = \"main\"\n[routes.breaker]\nmin_requests = 5\nerror_ratio = 0.5\n[routes.fallback]\nupstream = \"degraded\"\n",
        head(),
        up.addr,
        degraded.addr
    );
    let gate = TestGate::start(&toml, manual().1).await;
    let codes = statuses(&gate, "/x?status=404", 5, &[]).await;
    assert_eq!(codes, [404; 5]);
    let codes = statuses(&gate, "/x?status=429", 5, &[]).await;
    assert_eq!(codes, [429; 5]);
    assert_eq!(
        gate.status().await["routes"][0]["breaker"]["state"],
        "closed",
        "4xx and 429 are the client's doing"
    );
    statuses(&gate, "/x?status=500", 10, &[]).await;
    let (s, h, body) = get(&gate.url("/x")).await;
    assert_eq!(
        (s.as_u16(), h["x-instance"].to_str().unwrap()),
        (200, "degraded")
    );
    assert_eq!(body, "hello from degraded\n");
    gate.shutdown().await;
}

fn limit_config(up: SocketAddr, limit: &str, extra: &str) -> String {
    format!(
        "{}{extra}[upstreams.orders]\ntargets = [\"{up}\"]\n[[routes]]\nname = \"orders\"\nupstream = \"orders\"\n[routes.limit]\n{limit}\n[events]\nrejections = 3\n",
        head()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_and_total_limits_answer_429_with_retry_after() {
    let up = Upstream::start("a");
    let (clock, shared) = manual();
    let gate = TestGate::start(
        &limit_config(
            up.addr,
            "per_key = { key = \"header:x-user-id\", rate = \"5/s\", burst = 5 }\ntotal = { rate = \"8/s\", burst = 8 }",
            "",
        ),
        shared,
    )
    .await;
    let alice = statuses(&gate, "/", 7, &[("x-user-id", "alice")]).await;
    assert_eq!(alice, [200, 200, 200, 200, 200, 429, 429]);
    let (s, h, _) = get_with(&gate.url("/"), &[("x-user-id", "alice")]).await;
    assert_eq!((s.as_u16(), h["retry-after"].to_str().unwrap()), (429, "1"));
    // Bob has his own budget, but the route's total of 8 is reached after 3 of his.
    let bob = statuses(&gate, "/", 4, &[("x-user-id", "bob")]).await;
    assert_eq!(bob, [200, 200, 200, 429]);
    // A second later both budgets are back.
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        get_with(&gate.url("/"), &[("x-user-id", "alice")]).await.0,
        200
    );
    let status = gate.status().await;
    let l = &status["routes"][0]["limit"];
    assert_eq!(
        (
            l["allowed"].as_u64(),
            l["rejected_per_key"].as_u64(),
            l["rejected_total"].as_u64()
        ),
        (Some(9), Some(3), Some(1))
    );
    let events = gate.events();
    assert!(
        events
            .iter()
            .any(|e| e["user"] == "alice" && e["reason"] == "rate_limited" && e["count"] == 3),
        "{events:?}"
    );
    assert!(gate
        .metrics()
        .await
        .contains("goguard_gate_rejections_total{route=\"orders\",reason=\"per_key\"} 3"));
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_addr_keys_believe_only_trusted_proxies() {
    let up = Upstream::start("a");
    let (clock, shared) = manual();
    // Loopback is a trusted proxy here: the address comes from X-Forwarded-For.
    let gate = TestGate::start(
        &limit_config(
            up.addr,
            "per_key = { key = \"client_addr\", rate = \"2/s\", burst = 2 }",
            "trusted_proxies = [\"127.0.0.0/8\"]\n",
        ),
        shared.clone(),
    )
    .await;
    let a = statuses(&gate, "/", 3, &[("x-forwarded-for", "198.51.100.1")]).await;
    let b = statuses(&gate, "/", 2, &[("x-forwarded-for", "198.51.100.2")]).await;
    assert_eq!((a, b), (vec![200, 200, 429], vec![200, 200]));
    let (_, _, body) = get_with(
        &gate.url("/?echo=1"),
        &[("x-forwarded-for", "198.51.100.3")],
    )
    .await;
    let echo: serde_json::Value = serde_json::from_str(&body).expect(&body);
    assert_eq!(
        echo["headers"]["X-Forwarded-For"][0],
        "198.51.100.3, 127.0.0.1"
    );
    gate.shutdown().await;

    // Untrusted: a client cannot pick its key (or its forwarded address) with a header.
    let gate = TestGate::start(
        &limit_config(
            up.addr,
            "per_key = { key = \"client_addr\", rate = \"2/s\", burst = 2 }",
            "",
        ),
        shared,
    )
    .await;
    let mut codes = Vec::new();
    for i in 0..3 {
        let xff = format!("203.0.113.{i}");
        codes.push(
            get_with(&gate.url("/"), &[("x-forwarded-for", &xff)])
                .await
                .0
                .as_u16(),
        );
    }
    assert_eq!(codes, [200, 200, 429]);
    clock.advance(Duration::from_secs(1));
    let (_, _, body) = get_with(&gate.url("/?echo=1"), &[("x-forwarded-for", "6.6.6.6")]).await;
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["headers"]["X-Forwarded-For"][0], "127.0.0.1");
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_the_key_are_limited_by_the_client_address() {
    let up = Upstream::start("a");
    let (_clock, shared) = manual();
    let gate = TestGate::start(
        &limit_config(
            up.addr,
            "per_key = { key = \"header:x-user-id\", rate = \"2/s\", burst = 2 }",
            "trusted_proxies = [\"127.0.0.0/8\"]\n",
        ),
        shared,
    )
    .await;
    // Anonymous requests from one address share its budget; another address and a user
    // with the key have their own.
    let one = statuses(&gate, "/", 3, &[("x-forwarded-for", "198.51.100.1")]).await;
    let two = statuses(&gate, "/", 2, &[("x-forwarded-for", "198.51.100.2")]).await;
    let user = statuses(
        &gate,
        "/",
        2,
        &[("x-forwarded-for", "198.51.100.1"), ("x-user-id", "u")],
    )
    .await;
    assert_eq!(
        (one, two, user),
        (vec![200, 200, 429], vec![200, 200], vec![200, 200])
    );
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_limit_sheds_at_once_beyond_its_bounded_queue() {
    let up = Upstream::start("a");
    let gate = TestGate::start(
        &limit_config(
            up.addr,
            "concurrency = { max_in_flight = 1, queue = 1, queue_wait = \"50ms\" }",
            "",
        ),
        Arc::new(SystemClock),
    )
    .await;
    // One request holds the only slot (the upstream answers after 3 s).
    let slow = tokio::spawn(support::get(Box::leak(
        gate.url("/?delay=3s").into_boxed_str(),
    )));
    wait_for(
        Duration::from_secs(5),
        "the slow request is in flight",
        || async { gate.status().await["routes"][0]["concurrency"]["in_flight"] == 1 },
    )
    .await;
    // The next waits up to 50 ms in the queue of one, then gets a 503 with Retry-After.
    let (s, h, _) = get(&gate.url("/")).await;
    assert_eq!((s.as_u16(), h["retry-after"].to_str().unwrap()), (503, "1"));
    let c = &gate.status().await["routes"][0]["concurrency"];
    assert_eq!(
        (c["rejected"].as_u64(), c["waiting"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(
        slow.await.unwrap().0,
        200,
        "the request in flight is not disturbed"
    );
    assert_eq!(get(&gate.url("/")).await.0, 200, "the slot is free again");
    gate.shutdown().await;
}

fn pool_config(targets: &[String], upstream_extra: &str) -> String {
    let list: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "{}[upstreams.svc]\ntargets = [{}]\n{upstream_extra}\n[[routes]]\nname = \"svc\"\nupstream = \"svc\"\n",
        head(),
        list.join(", ")
    )
}

/// Upstreams `a` and `b` behind one route, with `extra` in the upstream's table.
async fn two_targets(extra: &str, clock: SharedClock) -> (Upstream, Upstream, TestGate) {
    let a = Upstream::start("a");
    let b = Upstream::start("b");
    let gate = TestGate::start(
        &pool_config(&[a.addr.to_string(), b.addr.to_string()], extra),
        clock,
    )
    .await;
    (a, b, gate)
}

async fn instances(gate: &TestGate, n: usize, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        let (_, h, _) = get(&gate.url(path)).await;
        out.push(
            h.get("x-instance")
                .map_or("-".into(), |v| v.to_str().unwrap().to_string()),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_then_passive_ejection_of_a_failing_target() {
    let (clock, shared) = manual();
    let (a, _b, gate) = two_targets(
        "eject_after = 3\neject_for = \"30s\"\n[upstreams.svc.retry]\nattempts = 0",
        shared,
    )
    .await;
    let seen = instances(&gate, 4, "/").await;
    assert_eq!(seen, ["a", "b", "a", "b"]);
    a.mode("fail", "").await;
    // Three failures in a row on a: ejected; everything goes to b.
    let codes = statuses(&gate, "/", 6, &[]).await;
    assert_eq!(count(&codes, 500), 3);
    assert_eq!(instances(&gate, 4, "/").await, ["b"; 4]);
    let status = gate.status().await;
    assert_eq!(status["upstreams"]["svc"][0]["ejected"], true);
    assert!(gate.metrics().await.contains(&format!(
        "goguard_gate_upstream_target_ejected{{upstream=\"svc\",target=\"{}\"}} 1",
        a.addr
    )));
    // After eject_for, a is tried again.
    a.mode("ok", "").await;
    clock.advance(Duration::from_secs(30));
    let seen = instances(&gate, 4, "/").await;
    assert!(seen.contains(&"a".to_string()), "{seen:?}");
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_request_avoids_the_busy_target() {
    let (_a, b, gate) = two_targets("balance = \"least_request\"", manual().1).await;
    // b turns slow (2 s per answer). Ten requests go out one after the other, each once the
    // previous one has been given a target and a has nothing in flight (it answers in a
    // millisecond; one still in flight there would tie with b's and make the pick a coin
    // toss): b keeps what it gets in flight, so after b's first P2C sends the rest to a.
    // Round-robin would send five to b.
    b.mode("slow", "2s").await;
    let mut all = Vec::new();
    for k in 0..10u64 {
        let url = gate.url("/");
        all.push(tokio::spawn(async move {
            let (_, h, _) = get(&url).await;
            h["x-instance"].to_str().unwrap().to_string()
        }));
        wait_for(
            Duration::from_secs(5),
            "the request has a target and the fast target is idle",
            || async {
                let s = gate.status().await;
                let t = s["upstreams"]["svc"].as_array().unwrap().clone();
                t.iter()
                    .map(|t| t["requests"].as_u64().unwrap())
                    .sum::<u64>()
                    == k + 1
                    && t.iter().any(|t| t["in_flight"] == 0)
            },
        )
        .await;
    }
    let mut seen = Vec::new();
    for t in all {
        seen.push(t.await.unwrap());
    }
    let to_b = seen.iter().filter(|s| *s == "b").count();
    assert!(to_b <= 2, "P2C keeps away from the busy target: {seen:?}");
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_take_a_sick_target_out_and_back() {
    let (a, _b, gate) = two_targets(
        "[upstreams.svc.health]\npath = \"/health\"\ninterval = \"50ms\"\ntimeout = \"500ms\"",
        manual().1,
    )
    .await;
    a.mode("fail", "").await;
    wait_for(Duration::from_secs(5), "a is unhealthy", || async {
        gate.status().await["upstreams"]["svc"][0]["healthy"] == false
    })
    .await;
    assert_eq!(instances(&gate, 4, "/").await, ["b"; 4]);
    a.mode("ok", "").await;
    wait_for(Duration::from_secs(5), "a is healthy again", || async {
        gate.status().await["upstreams"]["svc"][0]["healthy"] == true
    })
    .await;
    assert!(instances(&gate, 4, "/").await.contains(&"a".to_string()));
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_requests_are_retried_elsewhere_within_the_budget() {
    let b = Upstream::start("b");
    // Nothing listens on the first target.
    let dead = format!("127.0.0.1:{}", support::free_port());
    let gate = TestGate::start(
        &pool_config(
            &[dead, b.addr.to_string()],
            "eject_after = 1000\n[upstreams.svc.retry]\nattempts = 1\nbudget_ratio = 0.0",
        ),
        manual().1,
    )
    .await;
    // A POST with a body is never sent twice, even with budget to spare.
    let mut posts = Vec::new();
    for _ in 0..4 {
        posts.push(
            send(Method::POST, &gate.url("/"), &[], "order=1")
                .await
                .0
                .as_u16(),
        );
    }
    assert_eq!(posts, [502, 200, 502, 200]);
    assert!(gate
        .metrics()
        .await
        .contains("goguard_gate_retries_total 0"));
    // GETs that hit the dead target are retried on b, until the budget's minimum of 10
    // retries is spent (a ratio of 0 adds nothing to it); then the dead target's 502 shows.
    let codes = statuses(&gate, "/", 20, &[]).await;
    assert_eq!(codes[..10], [200; 10]);
    assert_eq!(count(&codes[10..], 502), 5, "the budget ran out: {codes:?}");
    let metrics = gate.metrics().await;
    assert!(
        metrics.contains("goguard_gate_retries_total 10"),
        "{metrics}"
    );
    assert!(metrics.contains("goguard_gate_retries_refused_by_budget_total 5"));
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_answer_504_and_count_for_the_breaker() {
    let up = Upstream::start("a");
    let toml = format!(
        "{}[upstreams.svc]\ntargets = [\"{}\"]\nrequest_timeout = \"200ms\"\n[[routes]]\nname = \"svc\"\nupstream = \"svc\"\n[routes.breaker]\nmin_requests = 2\nerror_ratio = 1.0\n",
        head(),
        up.addr
    );
    let gate = TestGate::start(&toml, manual().1).await;
    let (s, _, body) = get(&gate.url("/?hang=1")).await;
    assert_eq!(s, 504, "{body}");
    get(&gate.url("/?hang=1")).await;
    assert_eq!(gate.status().await["routes"][0]["breaker"]["state"], "open");
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_hop_by_hop_are_dropped_and_bodies_stream() {
    let up = Upstream::start("a");
    let toml = format!(
        "{}max_body_bytes = 1048576\n[upstreams.svc]\ntargets = [\"{}\"]\n[[routes]]\nname = \"svc\"\nupstream = \"svc\"\n",
        head(),
        up.addr
    );
    let gate = TestGate::start(&toml, manual().1).await;
    let (_, _, body) = get_with(
        &gate.url("/?echo=1"),
        &[
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("proxy-authorization", "Basic x"),
            ("x-kept", "yes"),
        ],
    )
    .await;
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    let h = echo["headers"].as_object().unwrap();
    assert!(
        !h.contains_key("X-Hop") && !h.contains_key("Proxy-Authorization"),
        "{h:?}"
    );
    assert_eq!(h["X-Kept"][0], "yes");
    assert_eq!(h["X-Forwarded-Proto"][0], "http");
    assert!(h["Forwarded"][0]
        .as_str()
        .unwrap()
        .starts_with("for=127.0.0.1;proto=http"));

    // A streamed answer arrives chunk by chunk: the first chunk is read while the upstream
    // still waits 30 s before the next one.
    let req = http::Request::get(gate.url("/?chunks=2&every=30s"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = support::client().request(req).await.unwrap();
    let mut body = resp.into_body();
    use http_body_util::BodyExt;
    let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("the first chunk is not held back")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "chunk 0\n");
    drop(body);

    // Bodies over the limit: 413, declared or streamed.
    let big = "x".repeat(2 * 1024 * 1024);
    let (s, _, _) = send(Method::PUT, &gate.url("/?echo=1"), &[], &big).await;
    assert_eq!(s, 413);
    let stream = futures_stream(big.clone());
    let req = http::Request::put(gate.url("/?echo=1"))
        .body(stream)
        .unwrap();
    let resp = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http()
        .request(req)
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    // Under the limit, a streamed upload arrives whole.
    let half = "y".repeat(512 * 1024);
    let req = http::Request::put(gate.url("/?echo=1"))
        .body(futures_stream(half))
        .unwrap();
    let resp = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http()
        .request(req)
        .await
        .unwrap();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let echo: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(echo["body"], 512 * 1024);
    gate.shutdown().await;
}

type Frames = std::vec::IntoIter<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>;

/// A request body sent in 64 KiB chunks with no length: chunked transfer encoding.
fn futures_stream(text: String) -> http_body_util::StreamBody<tokio_stream::Iter<Frames>> {
    let frames: Vec<_> = text
        .into_bytes()
        .chunks(64 * 1024)
        .map(|c| Ok(http_body::Frame::data(bytes::Bytes::copy_from_slice(c))))
        .collect();
    http_body_util::StreamBody::new(tokio_stream::iter(frames))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_reused_and_closed_ones_replaced() {
    let up = Upstream::start("a");
    let toml = pool_config(&[up.addr.to_string()], "");
    let gate = TestGate::start(&toml, manual().1).await;
    // The upstream's view of where each request came from: one port per connection.
    let remotes = |n: usize| {
        let url = gate.url("/?echo=1");
        async move {
            let mut seen = Vec::new();
            for _ in 0..n {
                let (s, _, body) = get(&url).await;
                assert_eq!(s, 200, "{body}");
                let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
                seen.push(echo["remote"].as_str().unwrap().to_string());
            }
            seen
        }
    };
    let first = remotes(5).await;
    assert!(
        first.iter().all(|r| *r == first[0]),
        "one after another, the requests share one connection: {first:?}"
    );
    // The service closes its idle connections (a restart, its idle timeout): the next
    // requests get new ones, not errors.
    let (s, _, _) = get(&format!("http://{}/control/close-idle", up.addr)).await;
    assert_eq!(s, 200);
    let after = remotes(5).await;
    assert!(
        after.iter().all(|r| *r != first[0]),
        "{first:?} then {after:?}"
    );
    assert!(after.iter().all(|r| *r == after[0]), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_with_prior_knowledge_both_sides() {
    let up = Upstream::start_with("h2", &["-h2c"]);
    let toml = format!(
        "{}[upstreams.svc]\ntargets = [\"{}\"]\nhttp2 = true\n[[routes]]\nname = \"svc\"\nupstream = \"svc\"\n",
        head(),
        up.addr
    );
    let gate = TestGate::start(&toml, manual().1).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = http::Request::get(gate.url("/?echo=1"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2, "client to gateway");
    use http_body_util::BodyExt;
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let echo: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(echo["proto"], "HTTP/2.0", "gateway to upstream");
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_fails_no_request_and_keeps_unchanged_state() {
    let a = Upstream::start("a");
    let b = Upstream::start("b");
    let (clock, shared) = manual();
    let config = |target: SocketAddr, ratio: &str| {
        format!(
            "{}[upstreams.svc]\ntargets = [\"{target}\"]\n[[routes]]\nname = \"svc\"\nupstream = \"svc\"\n[[routes]]\nname = \"tripped\"\npath_prefix = \"/tripped\"\nupstream = \"svc\"\n[routes.breaker]\nmin_requests = 2\nerror_ratio = {ratio}\nopen_for = \"1h\"\n",
            head()
        )
    };
    let gate = TestGate::start(&config(a.addr, "0.5"), shared).await;
    // Trip the second route's breaker; its rule will not change across the reloads.
    statuses(&gate, "/tripped?status=500", 2, &[]).await;
    assert_eq!(gate.status().await["routes"][1]["breaker"]["state"], "open");

    // Four clients loop while the configuration flips between two upstreams 20 times.
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let url = gate.url("/work");
        let (stop, done) = (stop.clone(), done.clone());
        clients.push(tokio::spawn(async move {
            let mut codes = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (s, h, _) = get(&url).await;
                codes.push((s.as_u16(), h["x-instance"].to_str().unwrap().to_string()));
                done.fetch_add(1, Ordering::Relaxed);
            }
            codes
        }));
    }
    let path = gate.dir.join("gate.toml");
    for i in 0..20 {
        let target = if i % 2 == 0 { b.addr } else { a.addr };
        std::fs::write(&path, config(target, "0.5")).unwrap();
        let v = gate.gw.reload("test").await.unwrap();
        assert_eq!(v, i + 2);
        // Let the clients make some requests on this version before the next swap.
        let seen = done.load(Ordering::Relaxed);
        wait_for(
            Duration::from_secs(5),
            "requests on the new version",
            || {
                let n = done.load(Ordering::Relaxed);
                async move { n >= seen + 8 }
            },
        )
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for c in clients {
        all.extend(c.await.unwrap());
    }
    assert!(all.len() >= 160, "the clients ran: {}", all.len());
    assert!(
        all.iter().all(|(s, _)| *s == 200),
        "no failed request: {:?}",
        all.iter().filter(|(s, _)| *s != 200).collect::<Vec<_>>()
    );
    assert!(
        all.iter().any(|(_, i)| i == "b"),
        "the new upstream took traffic"
    );
    let status = gate.status().await;
    assert_eq!(status["config_version"], 21);
    assert_eq!(
        status["routes"][1]["breaker"]["state"], "open",
        "the unchanged breaker kept its state"
    );

    // A changed rule starts afresh.
    std::fs::write(&path, config(a.addr, "0.9")).unwrap();
    gate.gw.reload("test").await.unwrap();
    assert_eq!(
        gate.status().await["routes"][1]["breaker"]["state"],
        "closed"
    );
    clock.advance(Duration::from_secs(1));
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_configuration_is_kept_out() {
    let up = Upstream::start("a");
    let good = format!(
        "{}[upstreams.svc]\ntargets = [\"{}\"]\n[[routes]]\nname = \"svc\"\nupstream = \"svc\"\n",
        head(),
        up.addr
    );
    let gate = TestGate::start(&good, manual().1).await;
    let path = gate.dir.join("gate.toml");
    std::fs::write(
        &path,
        good.replace("upstream = \"svc\"", "upstream = \"nope\""),
    )
    .unwrap();
    let err = gate.gw.reload("test").await.unwrap_err();
    assert_eq!(
        err,
        format!(
            "{}:10: routes.0.upstream: no upstream `nope` (define [upstreams.nope])",
            path.display()
        )
    );
    // Over HTTP: a token is required; with it, the same refusal and the version unchanged.
    let reload = format!("http://{}/admin/reload", gate.admin);
    let (s, _, _) = send(Method::POST, &reload, &[], "").await;
    assert_eq!(s, 401);
    let (s, _, _) = send(
        Method::POST,
        &reload,
        &[("authorization", "Bearer wrong")],
        "",
    )
    .await;
    assert_eq!(s, 401);
    let (s, _, body) = send(
        Method::POST,
        &reload,
        &[("authorization", "Bearer t0ken")],
        "",
    )
    .await;
    assert_eq!(s, 422);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("routes.0.upstream"),
        "{v}"
    );
    assert_eq!(v["config_version"], 1);
    assert_eq!(
        get(&gate.url("/")).await.0,
        200,
        "the running configuration serves on"
    );
    assert!(gate
        .metrics()
        .await
        .contains("goguard_gate_config_reloads_total{result=\"rejected\"} 2"));
    // A fixed file is taken.
    std::fs::write(&path, &good).unwrap();
    let (s, _, body) = send(
        Method::POST,
        &reload,
        &[("authorization", "Bearer t0ken")],
        "",
    )
    .await;
    assert_eq!(
        (s.as_u16(), body.contains("\"config_version\": 2")),
        (200, true),
        "{body}"
    );
    gate.shutdown().await;
}

fn shared_config(up: SocketAddr, redis: &str, fail_closed: bool) -> String {
    format!(
        "{}[redis]\nurl = \"{redis}\"\nfail_closed = {fail_closed}\ntimeout = \"200ms\"\n[upstreams.svc]\ntargets = [\"{up}\"]\n[[routes]]\nname = \"svc\"\nupstream = \"svc\"\n[routes.limit]\nper_key = {{ key = \"header:x-user-id\", rate = \"1/h\", burst = 10 }}\n",
        head()
    )
}

async fn wait_shared(gate: &TestGate, mode: &str) {
    wait_for(
        Duration::from_secs(10),
        &format!("limits are {mode}"),
        || async {
            // A request from a throwaway user moves the state machine along.
            get_with(&gate.url("/"), &[("x-user-id", "probe")]).await;
            gate.status().await["routes"][0]["limit"]["mode"] == mode
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_limits_through_redis_and_survive_its_loss() {
    let mut redis = Redis::start();
    let up = Upstream::start("a");
    let one = TestGate::start(
        &shared_config(up.addr, &redis.url(), false),
        Arc::new(SystemClock),
    )
    .await;
    let two = TestGate::start(
        &shared_config(up.addr, &redis.url(), false),
        Arc::new(SystemClock),
    )
    .await;
    wait_shared(&one, "shared").await;
    wait_shared(&two, "shared").await;
    // Ten for carol in all, whichever instance she reaches.
    let mut codes = Vec::new();
    for i in 0..20 {
        let gate = if i % 2 == 0 { &one } else { &two };
        codes.push(
            get_with(&gate.url("/"), &[("x-user-id", "carol")])
                .await
                .0
                .as_u16(),
        );
    }
    assert_eq!(count(&codes, 200), 10, "{codes:?}");
    assert_eq!(count(&codes, 429), 10);
    let mut conn = redis.connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("goguard:limit:*")
        .query(&mut conn)
        .unwrap();
    assert!(
        keys.contains(&"goguard:limit:svc:key:carol".to_string()),
        "{keys:?}"
    );

    // Redis dies: each instance limits on its own (carol's local budget is fresh).
    redis.kill();
    let (s, _, _) = get_with(&one.url("/"), &[("x-user-id", "carol")]).await;
    assert_eq!(s, 200, "served with local limits");
    wait_shared(&one, "local_fallback").await;
    assert!(one
        .metrics()
        .await
        .contains("goguard_gate_redis_fallback 1"));
    let events = one.events();
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "shared_limits_unavailable"),
        "{events:?}"
    );
    // It comes back: shared again, and said so.
    redis.restart();
    wait_shared(&one, "shared").await;
    assert!(one
        .metrics()
        .await
        .contains("goguard_gate_redis_fallback 0"));
    wait_for(
        Duration::from_secs(5),
        "the recovery event is written",
        || async {
            one.events()
                .iter()
                .any(|e| e["reason"] == "shared_limits_recovered")
        },
    )
    .await;
    one.shutdown().await;
    two.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_refuses_while_redis_is_away() {
    let mut redis = Redis::start();
    let up = Upstream::start("a");
    let gate = TestGate::start(
        &shared_config(up.addr, &redis.url(), true),
        Arc::new(SystemClock),
    )
    .await;
    wait_shared(&gate, "shared").await;
    redis.kill();
    wait_for(Duration::from_secs(10), "requests are refused", || async {
        get_with(&gate.url("/"), &[("x-user-id", "dave")]).await.0 == 503
    })
    .await;
    let (s, h, body) = get_with(&gate.url("/"), &[("x-user-id", "dave")]).await;
    assert_eq!(
        (s.as_u16(), h["retry-after"].to_str().unwrap()),
        (503, "1"),
        "{body}"
    );
    assert!(body.contains("limits_unavailable"));
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_a_redis_stream_and_a_webhook() {
    let redis = Redis::start();
    let up = Upstream::start("a");
    let hook = Upstream::start("hook");
    for sink in [
        format!("{}/stream:goguard-events", redis.url()),
        format!("http://{}/hook", hook.addr),
    ] {
        let toml = limit_config(
            up.addr,
            "per_key = { key = \"header:x-user-id\", rate = \"1/h\", burst = 1 }",
            "",
        )
        .replace("[events]\n", &format!("[events]\nsink = \"{sink}\"\n"));
        let gate = TestGate::start(&toml, manual().1).await;
        let codes = statuses(&gate, "/", 4, &[("x-user-id", "eve")]).await;
        assert_eq!(codes, [200, 429, 429, 429]);
        if sink.starts_with("redis") {
            let mut conn = redis.connection();
            wait_for(Duration::from_secs(5), "the event is in the stream", || {
                let n: u64 = redis::cmd("XLEN")
                    .arg("goguard-events")
                    .query(&mut conn)
                    .unwrap();
                async move { n == 1 }
            })
            .await;
            let entries: redis::Value = redis::cmd("XRANGE")
                .arg("goguard-events")
                .arg("-")
                .arg("+")
                .query(&mut conn)
                .unwrap();
            let text = format!("{entries:?}");
            assert!(
                text.contains("eve") && text.contains("rate_limited"),
                "{text}"
            );
        } else {
            wait_for(Duration::from_secs(5), "the webhook is called", || async {
                hook.last_hook().await.contains("\"user\":\"eve\"")
            })
            .await;
        }
        gate.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_get_an_explicit_503() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::start("a");
    let toml = format!(
        "{}max_connections = 1\n[upstreams.svc]\ntargets = [\"{}\"]\n[[routes]]\nname = \"svc\"\nupstream = \"svc\"\n",
        head(),
        up.addr
    );
    let gate = TestGate::start(&toml, manual().1).await;
    // The first connection stays open (kept alive after its request).
    let mut first = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    first
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    first.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    let mut second = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    let mut answer = String::new();
    second.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("Retry-After: 1"));
    drop(first);
    // Once the gateway has seen the first connection close, a new one is served. (A raw
    // probe: a refused connection may be reset, which a client library reports as an error.)
    wait_for(Duration::from_secs(5), "the slot is free again", || async {
        let Ok(mut c) = tokio::net::TcpStream::connect(gate.addr).await else {
            return false;
        };
        let mut answer = String::new();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .is_ok()
            && c.read_to_string(&mut answer).await.is_ok()
            && answer.starts_with("HTTP/1.1 200")
    })
    .await;
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_scoped_breaker_is_shared_by_its_routes() {
    let up = Upstream::start("a");
    let breaker = "[routes.breaker]\nscope = \"upstream\"\nmin_requests = 4\nerror_ratio = 0.5\n";
    let toml = format!(
        "{}[upstreams.svc]\ntargets = [\"{}\"]\n[[routes]]\nname = \"r1\"\npath_prefix = \"/one\"\nupstream = \"svc\"\n{breaker}[[routes]]\nname = \"r2\"\npath_prefix = \"/two\"\nupstream = \"svc\"\n{breaker}",
        head(),
        up.addr
    );
    let gate = TestGate::start(&toml, manual().1).await;
    // Failures on /one open the upstream's breaker: /two is spared the sick upstream too.
    statuses(&gate, "/one?status=500", 4, &[]).await;
    let (s, _, _) = get(&gate.url("/two")).await;
    assert_eq!(s, 503);
    let status = gate.status().await;
    assert_eq!(status["routes"][1]["breaker"]["state"], "open");
    assert_eq!(status["routes"][1]["breaker_scope"], "upstream");
    gate.shutdown().await;
    // Two routes cannot give one upstream breaker two rules.
    let bad = toml.replacen("error_ratio = 0.5", "error_ratio = 0.9", 1);
    let err = goguard_gate::config::parse(&bad, "gate.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "routes.1.breaker: the upstream-scoped breaker of `svc` differs from route r1's"
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_client_leaves_is_no_longer_in_flight() {
    use tokio::io::AsyncWriteExt;
    let up = Upstream::start("a");
    let gate = TestGate::start(
        &format!(
            "{}[upstreams.orders]\ntargets = [\"{}\"]\n[[routes]]\nname = \"orders\"\npath_prefix = \"/orders\"\nupstream = \"orders\"\n",
            head(),
            up.addr
        ),
        Arc::new(SystemClock),
    )
    .await;
    let in_flight = |metrics: String| {
        metrics
            .lines()
            .find(|l| l.contains("in_flight{") && l.contains("orders"))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_string)
    };
    // The upstream holds the request until the gateway gives up on it.
    let mut client = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    client
        .write_all(b"GET /orders/1?hang=1 HTTP/1.1\r\nhost: shop\r\n\r\n")
        .await
        .unwrap();
    wait_for(
        Duration::from_secs(5),
        "the request is in flight",
        || async { in_flight(gate.metrics().await).as_deref() == Some("1") },
    )
    .await;
    drop(client);
    wait_for(
        Duration::from_secs(5),
        "the abandoned request is out of flight",
        || async { in_flight(gate.metrics().await).as_deref() == Some("0") },
    )
    .await;
    assert!(gate.metrics().await.contains("client_closed"));
}

/// Without `admin_token` in the configuration, reloads and gray commands over HTTP are
/// refused with a 403 that says what to set, whatever Authorization header comes with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_without_a_configured_token_are_forbidden() {
    let up = Upstream::start("a");
    let toml = format!(
        "{}[upstreams.svc]\ntargets = [\"{}\"]\n[[routes]]\nname = \"svc\"\nupstream = \"svc\"\n",
        head().replace("admin_token = \"t0ken\"\n", ""),
        up.addr
    );
    let gate = TestGate::start(&toml, manual().1).await;
    for path in ["/admin/reload", "/admin/gray/pause"] {
        for auth in [&[][..], &[("authorization", "Bearer t0ken")][..]] {
            let url = format!("http://{}{path}", gate.admin);
            let (s, _, body) = send(Method::POST, &url, auth, "").await;
            assert_eq!(s, 403, "{path}: {body}");
            assert!(
                body.contains("set admin_token in the configuration to allow reloads and gray commands over HTTP"),
                "{path}: {body}"
            );
        }
    }
}
