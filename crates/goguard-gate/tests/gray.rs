//! Gray release of a new configuration (5.6), end to end: real Go upstreams, a real HTTP
//! client, a real etcd. A new version serves a slice of the users beside the running one;
//! it is promoted step by step while its gates hold and rolled back at the first failure.
//! Windows are moved on a manual clock where the test decides when one ends, and are short
//! on the system clock with etcd.

#[path = "support/etcd.rs"]
mod etcd;
mod support;
#[path = "support/gate.rs"]
mod test_gate;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use goguard_gate::clock::{ManualClock, SharedClock, SystemClock};
use goguard_gate::gray::in_share;
use http::Method;
use support::{get, get_with, send, Upstream};
use test_gate::{head, wait_for, TestGate};

const LIMIT: Duration = Duration::from_secs(20);

fn users(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user-{i}")).collect()
}

/// One request per user; the statuses and bodies.
async fn round(gate: &TestGate, users: &[String]) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    for u in users {
        let (s, _, body) = get_with(&gate.url("/orders/1"), &[("x-user-id", u)]).await;
        out.push((s.as_u16(), body));
    }
    out
}

async fn admin_post(gate: &TestGate, path: &str) -> (u16, String) {
    let (s, _, body) = send(
        Method::POST,
        &format!("http://{}{path}", gate.admin),
        &[("authorization", "Bearer t0ken")],
        "",
    )
    .await;
    (s.as_u16(), body)
}

fn gray(extra: &str) -> String {
    format!("[gray]\nkey = \"header:x-user-id\"\nsteps = [0.1, 0.5]\nwindow = \"10s\"\ncheck_every = \"20ms\"\nmin_requests = 10\nlatency_slack = \"20ms\"\n{extra}\n")
}

fn config(up: SocketAddr, route_extra: &str, gray_extra: &str) -> String {
    format!(
        "{}[events]\nsink = \"file:events.jsonl\"\n[upstreams.orders]\ntargets = [\"{up}\"]\neject_after = 1000\n[[routes]]\nname = \"orders\"\npath_prefix = \"/orders\"\nupstream = \"orders\"\n{route_extra}\n{}",
        head(),
        gray(gray_extra)
    )
}

async fn gray_status(gate: &TestGate) -> serde_json::Value {
    gate.status().await["gray"].clone()
}

/// Waits until the last rollout has ended, and returns how.
async fn ended(gate: &TestGate) -> serde_json::Value {
    wait_for(LIMIT, "the rollout ends", || async {
        gray_status(gate).await["rollout"].is_null()
    })
    .await;
    gray_status(gate).await["last"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_rejecting_half_the_slice_rolls_back_within_the_window() {
    let up = Upstream::start("a");
    let clock = ManualClock::new();
    let shared: SharedClock = Arc::new(clock.clone());
    let gate = TestGate::start(&config(up.addr, "", ""), shared).await;
    let all = users(200);
    let slice: Vec<&String> = all.iter().filter(|u| in_share(u, 0.1)).collect();
    let k = slice.len();
    assert!(k >= 10, "the slice holds {k} of 200 users");
    // The new version's limit lets half of the slice's requests through (the clock does not
    // move: no refill).
    let bad = config(
        up.addr,
        &format!(
            "[routes.limit]\ntotal = {{ rate = \"1/s\", burst = {} }}",
            k / 2
        ),
        "",
    );
    std::fs::write(gate.dir.join("gate.toml"), bad).unwrap();
    let v = gate.gw.reload("test").await.unwrap();
    assert_eq!(v, 2);
    let g = gray_status(&gate).await;
    assert_eq!(g["rollout"]["version"], 2);
    assert_eq!(g["rollout"]["share"], 0.1);
    assert_eq!(
        gate.status().await["config_version"],
        1,
        "version 1 still runs"
    );
    // Held while the users come, so that every one of them meets the version it hashes to.
    assert_eq!(admin_post(&gate, "/admin/gray/pause").await.0, 200);
    let answers = round(&gate, &all).await;
    let rejected = answers.iter().filter(|(s, _)| *s == 429).count();
    assert!(
        (k / 2 - 1..=k / 2 + 1).contains(&(k - rejected)),
        "the limit passed {} of the slice's {k}",
        k - rejected
    );
    for (u, (s, _)) in all.iter().zip(&answers) {
        if !in_share(u, 0.1) {
            assert_eq!(*s, 200, "{u} is not in the slice");
        }
    }
    let rollout = gray_status(&gate).await["rollout"].clone();
    assert!(
        !rollout["routes"][0]["limit"].is_null(),
        "the new version's limit, in its own state: {rollout}"
    );
    assert!(
        gate.status().await["routes"][0]["limit"].is_null(),
        "the running version has no limit"
    );
    assert_eq!(rollout["new"]["errors"], rejected as u64);
    assert_eq!(rollout["old"]["errors"], 0);
    assert_eq!(admin_post(&gate, "/admin/gray/resume").await.0, 200);
    let last = ended(&gate).await;
    assert_eq!(last["result"], "rolled_back", "{last}");
    assert!(
        last["reason"].as_str().unwrap().contains("error ratio"),
        "{last}"
    );
    // The exact users affected: those the hash put in the slice.
    assert_eq!(last["users_seen"], 200);
    assert_eq!(last["users_on_new"], k as u64);
    assert_eq!(last["users_with_errors_on_new"], rejected as u64);
    assert_eq!(last["share_of_users"], k as f64 / 200.0);
    // Back on version 1 for everyone, without the limit.
    assert_eq!(gate.status().await["config_version"], 1);
    assert!(round(&gate, &all).await.iter().all(|(s, _)| *s == 200));
    let history = gray_status(&gate).await["history"].clone();
    assert!(history.to_string().contains("rolled back"), "{history}");
    let metrics = gate.metrics().await;
    assert!(
        metrics.contains("goguard_gate_gray_transitions_total{to=\"rolled_back\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains(&format!("goguard_gate_gray_last_users_on_new {k}")));
    wait_for(LIMIT, "the rollback's event is written", || async {
        gate.events()
            .iter()
            .any(|e| e["reason"] == "gray_rolled_back" && e["count"] == k as u64)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_change_promotes_step_by_step_and_a_slow_route_rolls_back() {
    let fast = Upstream::start("fast");
    let slow = Upstream::start("slow");
    slow.mode("slow", "60ms").await;
    let clock = ManualClock::new();
    let shared: SharedClock = Arc::new(clock.clone());
    let gate = TestGate::start(&config(fast.addr, "", ""), shared).await;
    let all = users(300);

    // A good change: a breaker that does not trip.
    let good = config(
        fast.addr,
        "[routes.breaker]\nwindow = \"10s\"\nmin_requests = 1000\nerror_ratio = 0.5",
        "",
    );
    std::fs::write(gate.dir.join("gate.toml"), good).unwrap();
    assert_eq!(gate.gw.reload("test").await.unwrap(), 2);
    assert!(round(&gate, &all).await.iter().all(|(s, _)| *s == 200));
    clock.advance(Duration::from_secs(10));
    wait_for(LIMIT, "the rollout takes its second step", || async {
        gray_status(&gate).await["rollout"]["share"] == 0.5
    })
    .await;
    assert!(round(&gate, &all).await.iter().all(|(s, _)| *s == 200));
    clock.advance(Duration::from_secs(10));
    let last = ended(&gate).await;
    assert_eq!(last["result"], "promoted", "{last}");
    let on_new = all.iter().filter(|u| in_share(u, 0.5)).count();
    assert_eq!(last["users_on_new"], on_new as u64);
    let status = gate.status().await;
    assert_eq!(status["config_version"], 2);
    assert_eq!(status["routes"][0]["breaker"]["state"], "closed");

    // A bad change: the route to a slow service.
    let bad = config(slow.addr, "", "");
    std::fs::write(gate.dir.join("gate.toml"), bad).unwrap();
    assert_eq!(gate.gw.reload("test").await.unwrap(), 3);
    assert_eq!(admin_post(&gate, "/admin/gray/pause").await.0, 200);
    let answers = round(&gate, &all).await;
    for (u, (s, body)) in all.iter().zip(&answers) {
        assert_eq!(*s, 200);
        let expected = if in_share(u, 0.1) { "slow" } else { "fast" };
        assert_eq!(body.trim(), format!("hello from {expected}"), "{u}");
    }
    assert_eq!(admin_post(&gate, "/admin/gray/resume").await.0, 200);
    let last = ended(&gate).await;
    assert_eq!(last["result"], "rolled_back", "{last}");
    assert!(
        last["reason"].as_str().unwrap().contains("latency"),
        "{last}"
    );
    let k = all.iter().filter(|u| in_share(u, 0.1)).count();
    assert_eq!(last["users_on_new"], k as u64);
    assert_eq!(gate.status().await["config_version"], 2);
    let history = gray_status(&gate).await["history"].to_string();
    for line in [
        "serves 10% of the users",
        "50% of the users now",
        "promoted",
        "rolled back",
    ] {
        assert!(history.contains(line), "{line}: {history}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longer_gc_pauses_roll_back_and_the_admin_api_promotes() {
    let up = Upstream::start("a");
    let clock = ManualClock::new();
    let shared: SharedClock = Arc::new(clock.clone());
    let metrics = format!("gc_metrics = \"http://{}/metrics\"", up.addr);
    // Collections before the rollout: its baseline.
    get(&format!("http://{}/control/gc?run=3", up.addr)).await;
    let gate = TestGate::start(&config(up.addr, "", &metrics), shared).await;
    let all = users(300);
    let next = config(
        up.addr,
        "[routes.breaker]\nwindow = \"10s\"\nmin_requests = 1000\nerror_ratio = 0.5",
        &metrics,
    );
    std::fs::write(gate.dir.join("gate.toml"), &next).unwrap();
    gate.gw.reload("test").await.unwrap();
    assert!(gray_status(&gate).await["rollout"]["gc"]["before_ms"].is_number());
    // The service's collections now pause 50 ms longer each.
    get(&format!("http://{}/control/gc?extra=50ms&run=2", up.addr)).await;
    round(&gate, &all).await;
    clock.advance(Duration::from_secs(10));
    let last = ended(&gate).await;
    assert_eq!(last["result"], "rolled_back", "{last}");
    assert!(
        last["reason"].as_str().unwrap().contains("GC pause"),
        "{last}"
    );
    assert_eq!(gate.status().await["config_version"], 1);

    // The same change again, promoted by hand at its first step.
    gate.gw.reload("test").await.unwrap();
    let (s, body) = admin_post(&gate, "/admin/gray/promote").await;
    assert_eq!(s, 200, "{body}");
    let last = ended(&gate).await;
    assert_eq!(last["result"], "promoted");
    assert_eq!(gate.status().await["config_version"], 2);
    assert_eq!(
        admin_post(&gate, "/admin/gray/abort").await.0,
        409,
        "nothing to abort"
    );
}

fn etcd_config(up: SocketAddr, window: &str) -> String {
    format!(
        "{}[events]\nsink = \"file:events.jsonl\"\n[upstreams.orders]\ntargets = [\"{up}\"]\n[[routes]]\nname = \"orders\"\npath_prefix = \"/orders\"\nupstream = \"orders\"\n[gray]\nkey = \"header:x-user-id\"\nsteps = [0.5]\nwindow = \"{window}\"\ncheck_every = \"20ms\"\nmin_requests = 5\nlatency_slack = \"50ms\"\n",
        head()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_from_etcd_roll_out_and_the_last_good_one_outlives_etcd() {
    let mut etcd = etcd::Etcd::start();
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let key = "/goguard/gate";
    etcd.put(key, &etcd_config(a.addr, "200ms")).await;
    let file = format!(
        "{}[source]\netcd = [\"{}\"]\nkey = \"{key}\"\n",
        head(),
        etcd.url()
    );
    let gate = TestGate::start(&file, Arc::new(SystemClock)).await;
    let _watch = tokio::spawn(gate.gw.clone().watch(None));
    // The first version read replaces the file's stand-in at once.
    wait_for(LIMIT, "etcd's first version serves", || async {
        get(&gate.url("/orders/1")).await.2.trim() == "hello from a"
    })
    .await;
    assert_eq!(gate.status().await["config_source"], format!("etcd:{key}"));

    // A new version rolls out to half of the users, then to all.
    etcd.put(key, &etcd_config(b.addr, "200ms")).await;
    wait_for(LIMIT, "the new version rolls out", || async {
        gray_status(&gate).await["rollout"]["version"] == 3
    })
    .await;
    let all = users(40);
    // Held while the users come, so that each meets the version it hashes to.
    assert_eq!(admin_post(&gate, "/admin/gray/pause").await.0, 200);
    let answers = round(&gate, &all).await;
    for (u, (_, body)) in all.iter().zip(&answers) {
        let expected = if in_share(u, 0.5) { "b" } else { "a" };
        assert_eq!(
            body.trim(),
            format!("hello from {expected}"),
            "{u}: one user, one version"
        );
    }
    assert_eq!(admin_post(&gate, "/admin/gray/resume").await.0, 200);
    // The window is 200 ms of the system clock: traffic until it ends and the gates pass.
    wait_for(LIMIT, "the new version is promoted", || async {
        round(&gate, &all[..10]).await;
        gray_status(&gate).await["last"]["result"] == "promoted"
    })
    .await;
    assert_eq!(gate.status().await["config_version"], 3);
    assert!(round(&gate, &all)
        .await
        .iter()
        .all(|(_, b)| b.trim() == "hello from b"));

    // An invalid version is refused, naming the key and its line; version 3 stays.
    let before = gate.metrics().await;
    assert!(before.contains("goguard_gate_config_reloads_total{result=\"rejected\"} 0"));
    etcd.put(key, "listen = 5\n").await;
    wait_for(LIMIT, "the invalid version is refused", || async {
        gate.metrics()
            .await
            .contains("goguard_gate_config_reloads_total{result=\"rejected\"} 1")
    })
    .await;
    assert_eq!(gate.status().await["config_version"], 3);

    // etcd goes away: the last good configuration serves, the loss is an event; it comes
    // back, the gateway reconnects and follows the key again.
    etcd.kill();
    wait_for(LIMIT, "the loss of etcd is reported", || async {
        gate.events()
            .iter()
            .any(|e| e["reason"] == "config_center_unavailable")
    })
    .await;
    assert_eq!(get(&gate.url("/orders/1")).await.2.trim(), "hello from b");
    etcd.restart();
    wait_for(LIMIT, "the gateway is back on etcd", || async {
        gate.events()
            .iter()
            .any(|e| e["reason"] == "config_center_recovered")
    })
    .await;
    etcd.put(key, &etcd_config(a.addr, "1h")).await;
    wait_for(LIMIT, "the next version rolls out", || async {
        gray_status(&gate).await["rollout"]["share"] == 0.5
    })
    .await;
    let (s, body) = admin_post(&gate, "/admin/gray/abort").await;
    assert_eq!(s, 200, "{body}");
    let last = ended(&gate).await;
    assert_eq!(last["result"], "aborted");
    assert!(round(&gate, &all)
        .await
        .iter()
        .all(|(_, b)| b.trim() == "hello from b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_versions_shared_limits_count_apart_in_redis() {
    let up = Upstream::start("a");
    let redis = support::Redis::start();
    let limited = |burst: u32| {
        config(
            up.addr,
            &format!("[routes.limit]\ntotal = {{ rate = \"1/s\", burst = {burst} }}"),
            "",
        )
        .replace(
            "[events]",
            &format!("[redis]\nurl = \"{}\"\n[events]", redis.url()),
        )
    };
    let clock = ManualClock::new();
    let gate = TestGate::start(&limited(1000), Arc::new(clock.clone())).await;
    let all = users(50);
    round(&gate, &all).await;
    std::fs::write(gate.dir.join("gate.toml"), limited(999)).unwrap();
    assert_eq!(gate.gw.reload("test").await.unwrap(), 2);
    assert_eq!(admin_post(&gate, "/admin/gray/pause").await.0, 200);
    // The running version's bucket and the new version's are two keys: the slice's
    // requests do not spend the running version's tokens, nor the other way round. Each
    // version's limits reach Redis once its link is up (until then they count locally), so
    // the rounds go on until both keys are there.
    let mut conn = redis.connection();
    let deadline = std::time::Instant::now() + LIMIT;
    let seen = loop {
        round(&gate, &all).await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("goguard:limit:*")
            .query(&mut conn)
            .unwrap();
        let both = keys.iter().any(|k| k == "goguard:limit:orders:total")
            && keys.iter().any(|k| k == "goguard:limit:v2/orders:total");
        if both {
            break keys;
        }
        assert!(std::time::Instant::now() < deadline, "{keys:?}");
    };
    assert_eq!(
        seen.iter().filter(|k| k.ends_with("orders:total")).count(),
        2,
        "{seen:?}"
    );
    gate.shutdown().await;
}
