//! The read-through cache of 5.2 end to end: a real Go upstream that counts what reaches it,
//! a real HTTP client, a real Redis for the shared level; freshness on a manual clock.

mod support;
#[path = "support/gate.rs"]
mod test_gate;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use goguard_gate::clock::{ManualClock, SharedClock};
use support::{get, get_with, Redis, Upstream};
use test_gate::{head, wait_for, TestGate};

fn manual() -> (ManualClock, SharedClock) {
    let c = ManualClock::new();
    (c.clone(), Arc::new(c))
}

fn config(up: SocketAddr, cache: &str, extra: &str) -> String {
    format!(
        "{}{extra}[upstreams.items]\ntargets = [\"{up}\"]\n[[routes]]\nname = \"items\"\npath_prefix = \"/items\"\nupstream = \"items\"\n[routes.cache]\n{cache}\n",
        head()
    )
}

/// `n` GETs of `path` at once, each on a connection of its own: each answer's status,
/// `x-cache` and body.
async fn at_once(gate: &TestGate, path: &str, n: usize) -> Vec<(u16, String, String)> {
    let mut calls = Vec::new();
    for _ in 0..n {
        calls.push(tokio::spawn(fetch(gate.addr, path.to_string())));
    }
    let mut out = Vec::new();
    for c in calls {
        out.push(c.await.unwrap());
    }
    out
}

/// One GET as a minimal HTTP/1.1 client writes it, on a connection closed after the
/// answer.
async fn fetch(addr: SocketAddr, path: String) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(len) = resp.parse(&raw).unwrap() else {
        panic!("a partial answer: {raw:?}");
    };
    let how = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("x-cache"))
        .map_or(String::new(), |h| {
            String::from_utf8_lossy(h.value).into_owned()
        });
    let body = String::from_utf8_lossy(&raw[len..]).into_owned();
    (resp.code.unwrap_or(0), how, body)
}

fn x_cache(h: &http::HeaderMap) -> &str {
    h.get("x-cache").map_or("", |v| v.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_key_goes_to_the_service_once_and_again_only_after_its_ttl() {
    let up = Upstream::start("db");
    let (clock, shared) = manual();
    let gate = TestGate::start(
        &config(
            up.addr,
            "ttl = \"60s\"\njitter = \"5s\"\nlock_timeout = \"5s\"",
            "",
        ),
        shared,
    )
    .await;
    // 50 clients ask for one key while the service takes 300 ms to answer it.
    let answers = at_once(&gate, "/items/1?delay=300ms", 50).await;
    assert!(
        answers
            .iter()
            .all(|(s, _, b)| *s == 200 && b == "hello from db\n"),
        "{answers:?}"
    );
    assert_eq!(up.count().await, 1, "one request reached the service");
    assert_eq!(answers.iter().filter(|a| a.1 == "MISS").count(), 1);
    assert_eq!(answers.iter().filter(|a| a.1 == "HIT").count(), 49);
    let status = gate.status().await;
    let cache = &status["routes"][0]["cache"];
    // 50 found no entry; 49 of them waited for the one that asked the service.
    assert_eq!(
        (cache["misses"].as_u64(), cache["waited"].as_u64()),
        (Some(50), Some(49)),
        "{cache}"
    );

    // Fresh for 60 s plus at most 5 of jitter.
    clock.advance(Duration::from_secs(59));
    let (_, h, _) = get(&gate.url("/items/1?delay=300ms")).await;
    assert_eq!((x_cache(&h), up.count().await), ("HIT", 1));
    assert!(h["age"].to_str().unwrap().parse::<u64>().unwrap() >= 59);
    clock.advance(Duration::from_secs(7));
    let (_, h, _) = get(&gate.url("/items/1?delay=300ms")).await;
    assert_eq!((x_cache(&h), up.count().await), ("MISS", 2));
    let metrics = gate.metrics().await;
    assert!(
        metrics.contains("goguard_gate_cache_lookups_total{route=\"items\",result=\"hit\"} 1"),
        "{metrics}"
    );
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_go_to_the_service_themselves_after_the_lock_timeout() {
    let up = Upstream::start("db");
    let gate = TestGate::start(&config(up.addr, "lock_timeout = \"50ms\"", ""), manual().1).await;
    let answers = at_once(&gate, "/items/1?delay=1s", 5).await;
    assert!(answers.iter().all(|a| a.0 == 200), "{answers:?}");
    // Had they waited for the fill, only the first would have reached the service.
    assert_eq!(up.count().await, 5);
    let status = gate.status().await;
    assert_eq!(status["routes"][0]["cache"]["gave_up_waiting"], 4);
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_objects_are_cached_for_the_negative_ttl() {
    let up = Upstream::start("db");
    let (clock, shared) = manual();
    let gate = TestGate::start(
        &config(
            up.addr,
            "ttl = \"10s\"\njitter = \"0s\"\n[routes.cache.negative]\nttl = \"5m\"\njitter = \"60s\"\nempty_bodies = [\"{}\"]",
            "",
        ),
        shared,
    )
    .await;
    for _ in 0..3 {
        assert_eq!(get(&gate.url("/items/9?status=404")).await.0, 404);
        assert_eq!(get(&gate.url("/items/8?body={}")).await.2, "{}");
    }
    assert_eq!(up.count().await, 2, "one request per missing id");
    // Past the positive TTL, the negative entries still stand; past 6 minutes none does.
    clock.advance(Duration::from_secs(299));
    let (s, h, _) = get(&gate.url("/items/9?status=404")).await;
    assert_eq!((s.as_u16(), x_cache(&h)), (404, "HIT"));
    clock.advance(Duration::from_secs(62));
    get(&gate.url("/items/9?status=404")).await;
    get(&gate.url("/items/8?body={}")).await;
    assert_eq!(up.count().await, 4);
    let status = gate.status().await;
    assert_eq!(status["routes"][0]["cache"]["negative_hits"], 5);
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_shared_cache_must_not_store_goes_to_the_service_every_time() {
    let up = Upstream::start("db");
    let gate = TestGate::start(&config(up.addr, "", ""), manual().1).await;
    let not_stored = [
        "/items/1?set=Cache-Control:no-store",
        "/items/2?set=Cache-Control:max-age=60,%20private",
        "/items/3?set=Set-Cookie:sid=1",
        "/items/4?set=Vary:*",
        "/items/5?status=500",
        "/items/6?status=206",
    ];
    for path in not_stored {
        for _ in 0..2 {
            let (_, h, _) = get(&gate.url(path)).await;
            assert_eq!(x_cache(&h), "", "{path}");
        }
    }
    assert_eq!(up.count().await, 12);
    // Authorization: one user's answer; a HEAD or a POST is not answered from the cache.
    get(&gate.url("/items/7")).await;
    let (_, h, _) = get_with(&gate.url("/items/7"), &[("authorization", "Bearer x")]).await;
    assert_eq!(x_cache(&h), "");
    let (_, h, _) = support::send(http::Method::POST, &gate.url("/items/7"), &[], "").await;
    assert_eq!(x_cache(&h), "");
    // A session cookie: the answer may be one user's even if the service did not say so.
    let (_, h, _) = get_with(&gate.url("/items/7"), &[("cookie", "sid=alice")]).await;
    assert_eq!(x_cache(&h), "");
    assert_eq!(up.count().await, 16);
    let status = gate.status().await;
    assert_eq!(status["routes"][0]["cache"]["uncacheable"], 12);
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_the_answers_do_not_depend_on_can_be_let_through() {
    let up = Upstream::start("db");
    let gate = TestGate::start(&config(up.addr, "with_cookies = true", ""), manual().1).await;
    get(&gate.url("/items/8")).await;
    let (_, h, _) = get_with(&gate.url("/items/8"), &[("cookie", "_ga=1")]).await;
    assert_eq!(x_cache(&h), "HIT");
    assert_eq!(up.count().await, 1);
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_keeps_one_language_from_getting_anothers_answer() {
    let up = Upstream::start("db");
    let gate = TestGate::start(&config(up.addr, "", ""), manual().1).await;
    let path = "/items/1?set=Vary:Accept-Language&echo-header=Accept-Language";
    let de = get_with(&gate.url(path), &[("accept-language", "de")])
        .await
        .2;
    assert_eq!(de, "Accept-Language=de #1\n");
    let again = get_with(&gate.url(path), &[("accept-language", "de")]).await;
    assert_eq!((again.2.as_str(), x_cache(&again.1)), (de.as_str(), "HIT"));
    let fr = get_with(&gate.url(path), &[("accept-language", "fr")])
        .await
        .2;
    assert_eq!(fr, "Accept-Language=fr #2\n");
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_answers_at_once_while_one_request_refreshes() {
    let up = Upstream::start("db");
    let (clock, shared) = manual();
    let gate = TestGate::start(
        &config(
            up.addr,
            "key = \"{path}\"\nttl = \"10s\"\njitter = \"0s\"\nstale_while_revalidate = \"30s\"",
            "",
        ),
        shared,
    )
    .await;
    let path = "/items/1?echo-header=X-Any";
    assert_eq!(get(&gate.url(path)).await.2, "X-Any= #1\n");
    // The key is the path alone: another query is the same entry.
    let (_, h, b) = get(&gate.url("/items/1?other=1")).await;
    assert_eq!((x_cache(&h), b.as_str()), ("HIT", "X-Any= #1\n"));
    clock.advance(Duration::from_secs(11));
    // The first request past the TTL gets the stale answer at once and starts the refresh;
    // the ones after it get the stale answer too, or the refreshed one once it is stored
    // (how many come before depends on the refresh's speed), never a second refresh.
    let (_, h, b) = get(&gate.url(path)).await;
    assert_eq!((x_cache(&h), b.as_str()), ("STALE", "X-Any= #1\n"));
    wait_for(Duration::from_secs(5), "the refresh is stored", || async {
        let (_, h, b) = get(&gate.url(path)).await;
        assert!(
            matches!(
                (x_cache(&h), b.as_str()),
                ("STALE", "X-Any= #1\n") | ("HIT", "X-Any= #2\n")
            ),
            "{} {b}",
            x_cache(&h)
        );
        b == "X-Any= #2\n"
    })
    .await;
    assert_eq!(up.count().await, 2, "one refresh");
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cache_settings_name_their_field() {
    let text = config("127.0.0.1:1".parse().unwrap(), "key = \"{pth}\"", "");
    let err = goguard_gate::config::parse(&text, "gate.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("gate.toml:") && err.contains("unknown `{pth}`"),
        "{err}"
    );
    let text = config(
        "127.0.0.1:1".parse().unwrap(),
        "statuses = [200, 404]\nmax_entry_bytes = 0",
        "",
    );
    let err = goguard_gate::config::parse(&text, "gate.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("routes.0.cache.negative.statuses: 404 is in statuses too"),
        "{err}"
    );
    assert!(
        err.contains("routes.0.cache.max_entry_bytes: more than 0"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_share_entries_through_redis_and_one_fills_under_its_lock() {
    let up = Upstream::start("db");
    let mut redis = Redis::start();
    let extra = format!("[redis]\nurl = \"{}\"\ntimeout = \"200ms\"\n", redis.url());
    // The key without the host: the two gateways listen on ports of their own.
    let toml = config(
        up.addr,
        "key = \"{path}?{query}\"\nlock_timeout = \"3s\"",
        &extra,
    );
    let a = TestGate::start(&toml, manual().1).await;
    let b = TestGate::start(&toml, manual().1).await;
    // Ready when each gateway's entries reach Redis (a poll, as wait_for's).
    let mut conn = redis.connection();
    for (g, tag) in [(&a, "a"), (&b, "b")] {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        for n in 0.. {
            let path = format!("/items/0?w={tag}{n}");
            get(&g.url(&path)).await;
            let stored: bool = redis::cmd("EXISTS")
                // The key: the path, the separator that ends a value from the request, `?`,
                // the query.
                .arg(format!("goguard:cache:items:/items/0\u{1f}?w={tag}{n}"))
                .query(&mut conn)
                .unwrap();
            if stored {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the cache never reached Redis"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let before = up.count().await;
    // 20 clients on each gateway, one key, a 500 ms service.
    let (x, y) = tokio::join!(
        at_once(&a, "/items/1?delay=500ms", 20),
        at_once(&b, "/items/1?delay=500ms", 20)
    );
    assert!(x.iter().chain(&y).all(|r| r.0 == 200), "{x:?} {y:?}");
    assert_eq!(up.count().await - before, 1, "one fill for both gateways");
    let shared_hits =
        |s: &serde_json::Value| s["routes"][0]["cache"]["shared_hits"].as_u64().unwrap();
    assert_eq!(
        shared_hits(&a.status().await) + shared_hits(&b.status().await),
        1
    );

    // Redis gone: the cache works from memory, nothing fails, and it is said loudly.
    redis.kill();
    let before = up.count().await;
    for i in 2..6 {
        let (s, _, _) = get(&a.url(&format!("/items/{i}"))).await;
        assert_eq!(s, 200);
    }
    assert_eq!(up.count().await - before, 4);
    assert_eq!(get(&a.url("/items/2")).await.0, 200);
    assert_eq!(up.count().await - before, 4, "still served from memory");
    wait_for(Duration::from_secs(5), "the loss is reported", || async {
        let status = a.status().await;
        status["routes"][0]["cache"]["mode"] == "memory_fallback"
            && a.events()
                .iter()
                .any(|e| e["reason"] == "cache_redis_unavailable")
    })
    .await;
    assert!(a
        .metrics()
        .await
        .contains("goguard_gate_cache_redis_down{route=\"items\"} 1"));
    // Back: shared again, after its pause.
    redis.restart();
    wait_for(
        Duration::from_secs(20),
        "the cache is shared again",
        || async {
            get(&a.url(&format!("/items/{}", fastrand::u32(100..1_000_000)))).await;
            a.status().await["routes"][0]["cache"]["mode"] == "shared"
        },
    )
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

fn bloom_config(up: SocketAddr, routes: &[(&str, &str)], extra: &str) -> String {
    let mut out = format!("{}{extra}[upstreams.items]\ntargets = [\"{up}\"]\n", head());
    for (name, bloom) in routes {
        out += &format!(
            "[[routes]]\nname = \"{name}\"\npath_prefix = \"/{name}\"\nupstream = \"items\"\n[routes.bloom]\nid = \"segment:2\"\nexpected_items = 1000\n{bloom}\n"
        );
    }
    out
}

async fn bloom_state(gate: &TestGate, route: usize) -> serde_json::Value {
    gate.status().await["routes"][route]["bloom"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_get_the_routes_404_without_the_service_until_the_filter_learns_them() {
    let up = Upstream::start("db");
    let dir = std::env::temp_dir().join(format!("goguard-bloom-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ids = dir.join("ids.txt");
    let known: Vec<String> = (1..=100).map(|i| i.to_string()).collect();
    std::fs::write(&ids, known.join("\n")).unwrap();
    let bloom = format!(
        "source = \"file:{}\"\nreload_every = \"100ms\"\nbody = '{{\"error\":\"no such item\"}}'\ncontent_type = \"application/json\"",
        ids.display()
    );
    let gate = TestGate::start(&bloom_config(up.addr, &[("items", &bloom)], ""), manual().1).await;
    wait_for(Duration::from_secs(5), "the filter is loaded", || async {
        bloom_state(&gate, 0).await["state"] == "loaded"
    })
    .await;
    assert_eq!(get(&gate.url("/items/5")).await.0, 200);
    assert_eq!(
        get(&gate.url("/items")).await.0,
        200,
        "no id: not the filter's to judge"
    );
    let (s, h, body) = get(&gate.url("/items/5000")).await;
    assert_eq!(
        (s.as_u16(), body.as_str()),
        (404, "{\"error\":\"no such item\"}")
    );
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(
        up.count().await,
        2,
        "the unknown id never reached the service"
    );
    let b = bloom_state(&gate, 0).await;
    assert_eq!(
        (b["items"].as_u64(), b["rejected"].as_u64()),
        (Some(100), Some(1)),
        "{b}"
    );
    let fill = b["fill_ratio"].as_f64().unwrap();
    assert!(fill > 0.0 && fill < 0.5, "{b}");
    let metrics = gate.metrics().await;
    for line in [
        "goguard_gate_bloom_rejected_total{route=\"items\"} 1",
        "goguard_gate_rejections_total{route=\"items\",reason=\"unknown_id\"} 1",
        "goguard_gate_bloom_in_force{route=\"items\"} 1",
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
    let fp: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("goguard_gate_bloom_false_positive_rate{route=\"items\"} "))
        .expect("the estimated false-positive rate")
        .parse()
        .unwrap();
    assert!(
        fp > 0.0 && fp < 0.001,
        "100 ids in a filter for 1000 at 0.1%: {fp}"
    );
    // A new id: the next rebuild takes it in.
    std::fs::write(&ids, format!("{}\n5000\n", known.join("\n"))).unwrap();
    wait_for(
        Duration::from_secs(5),
        "the rebuilt filter knows 5000",
        || async { get(&gate.url("/items/5000")).await.0 == 200 },
    )
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_that_cannot_be_loaded_fails_open_and_says_so() {
    let up = Upstream::start("db");
    let gate = TestGate::start(
        &bloom_config(
            up.addr,
            &[(
                "items",
                "source = \"file:no-such-ids.txt\"\nreload_every = \"1h\"",
            )],
            "",
        ),
        manual().1,
    )
    .await;
    wait_for(
        Duration::from_secs(5),
        "the failure is reported",
        || async {
            gate.events()
                .iter()
                .any(|e| e["reason"] == "bloom_unavailable" && e["route"] == "items")
        },
    )
    .await;
    assert_eq!(
        get(&gate.url("/items/5000")).await.0,
        200,
        "open, not closed"
    );
    assert_eq!(up.count().await, 1);
    let metrics = gate.metrics().await;
    assert!(
        metrics.contains("goguard_gate_bloom_load_failures_total{route=\"items\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("goguard_gate_bloom_in_force{route=\"items\"} 0"));
    assert_eq!(bloom_state(&gate, 0).await["state"], "loading");
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_come_from_a_redis_set_or_a_url() {
    let up = Upstream::start("db");
    let list = Upstream::start("ids");
    let redis = Redis::start();
    let mut conn = redis.connection();
    redis::cmd("SADD")
        .arg("valid-ids")
        .arg(&["a", "b", "c"])
        .query::<()>(&mut conn)
        .unwrap();
    let from_redis = format!("source = \"{}/set:valid-ids\"", redis.url());
    let from_url = format!(
        "source = \"http://{}/ids?body=x%0Ay%0A%23%20a%20comment\"",
        list.addr
    );
    let gate = TestGate::start(
        &bloom_config(up.addr, &[("items", &from_redis), ("skus", &from_url)], ""),
        manual().1,
    )
    .await;
    wait_for(
        Duration::from_secs(5),
        "both filters are loaded",
        || async {
            bloom_state(&gate, 0).await["state"] == "loaded"
                && bloom_state(&gate, 1).await["state"] == "loaded"
        },
    )
    .await;
    let codes = [
        get(&gate.url("/items/a")).await.0,
        get(&gate.url("/items/x")).await.0,
        get(&gate.url("/skus/y")).await.0,
        get(&gate.url("/skus/a")).await.0,
    ];
    assert_eq!(codes.map(|c| c.as_u16()), [200, 404, 200, 404]);
    assert_eq!(
        bloom_state(&gate, 1).await["items"],
        2,
        "the comment is not an id"
    );
    assert_eq!(up.count().await, 2);
    gate.shutdown().await;
}
