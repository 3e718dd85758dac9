//! `goguard chaos proxy` and `goguard drill` as a user runs them: the binary, a real Redis
//! behind the proxy, the Go service of the chaos tests, a real gateway for route faults.

#[path = "../../goguard-chaos/tests/support/mod.rs"]
mod support;

#[path = "../../goguard-gate/tests/support/mod.rs"]
#[allow(unused_imports)]
mod gate_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{call, free_port, redis_server, redisapp, wait_until, Child};

const LIMIT: Duration = Duration::from_secs(20);

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("goguard-drill-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

fn goguard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_goguard"))
}

/// Starts a long-running goguard command and waits for a line of its stderr.
fn start(args: &[&str], dir: &Path, ready: &str) -> Child {
    let mut child = goguard()
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[goguard] {line}");
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + LIMIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(ready) => break,
            Ok(_) => {}
            Err(_) => panic!("no line with {ready:?} from goguard {args:?}"),
        }
    }
    Child(child)
}

/// Redis, `goguard chaos proxy` in front of it, the Go service on the proxy.
struct Stack {
    _redis: Child,
    _proxy: Child,
    _app: Child,
    admin: String,
    app: String,
}

async fn stack(dir: &Path) -> Stack {
    let (redis, port) = redis_server().await;
    let (listen, admin) = (free_port(), free_port());
    let proxy = start(
        &[
            "chaos",
            "proxy",
            "--name",
            "redis",
            "--listen",
            &format!("127.0.0.1:{listen}"),
            "--upstream",
            &format!("127.0.0.1:{port}"),
            "--admin",
            &format!("127.0.0.1:{admin}"),
        ],
        dir,
        "admin API and /metrics on",
    );
    let (app, url) = redisapp(([127, 0, 0, 1], listen).into(), "300ms");
    Stack {
        _redis: redis,
        _proxy: proxy,
        _app: app,
        admin: format!("http://127.0.0.1:{admin}"),
        app: url,
    }
}

fn scenario(s: &Stack, steps: &str) -> String {
    format!(
        r#"name = "Redis unreachable"
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
proxy = "redis"
{steps}"#,
        app = s.app,
        admin = s.admin
    )
}

async fn toxics_left(admin: &str) -> serde_json::Value {
    call("GET", &format!("{admin}/proxies/redis/toxics"), None)
        .await
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_through_the_chaos_proxy_from_the_command_line() {
    let dir = temp_dir("redis");
    let s = stack(&dir.0).await;
    std::fs::write(
        dir.0.join("drill.toml"),
        scenario(
            &s,
            "[[step]]\nname = \"Redis primary unreachable\"\nfault = { target = \"redis\", type = \"down\" }\nduration = \"1500ms\"\n",
        ),
    )
    .unwrap();
    let out = goguard()
        .args(["drill", "drill.toml", "--html", "drill.html"])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = text
        .lines()
        .find(|l| l.starts_with("Redis primary unreachable"))
        .unwrap_or_else(|| panic!("no row in\n{text}"));
    assert!(
        row.contains("redis: down") && row.contains("health failing"),
        "{row}"
    );
    assert!(row.ends_with("  ok"), "{row}");
    assert!(text.contains("1 of 1 step(s) met their targets."), "{text}");
    let html = std::fs::read_to_string(dir.0.join("drill.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("Redis primary unreachable"));
    assert_eq!(toxics_left(&s.admin).await, serde_json::json!([]));

    // A target missed: exit 1, and JSON says which.
    std::fs::write(
        dir.0.join("strict.toml"),
        scenario(
            &s,
            "[[step]]\nfault = { target = \"redis\", type = \"down\" }\nduration = \"500ms\"\ndetect_within = \"1ms\"\n",
        ),
    )
    .unwrap();
    let out = goguard()
        .args(["drill", "strict.toml", "--format", "json"])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["passed"], false);
    assert!(v["steps"][0]["verdict"]
        .as_str()
        .unwrap()
        .starts_with("detected in"));
    assert_eq!(toxics_left(&s.admin).await, serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_removes_the_fault() {
    let dir = temp_dir("sigint");
    let s = stack(&dir.0).await;
    std::fs::write(
        dir.0.join("long.toml"),
        scenario(
            &s,
            "[[step]]\nfault = { target = \"redis\", type = \"timeout\" }\nduration = \"5m\"\n",
        ),
    )
    .unwrap();
    let drill = goguard()
        .args(["drill", "long.toml"])
        .current_dir(&dir.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut drill = Child(drill);
    let admin = s.admin.clone();
    wait_until(LIMIT, "the drill set its fault", || {
        let admin = admin.clone();
        async move {
            toxics_left(&admin)
                .await
                .as_array()
                .is_some_and(|a| !a.is_empty())
        }
    })
    .await;
    let t = toxics_left(&s.admin).await;
    assert_eq!(
        t[0]["ttl"], "5m 30s",
        "a ttl a little longer than the step: {t}"
    );
    let ok = Command::new("kill")
        .args(["-INT", &drill.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let deadline = Instant::now() + LIMIT;
    let code = loop {
        if let Some(st) = drill.0.try_wait().unwrap() {
            break st.code();
        }
        assert!(Instant::now() < deadline, "the drill did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(code, Some(2));
    let mut out = String::new();
    std::io::Read::read_to_string(drill.0.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(out.contains("interrupted: interrupted (SIGINT)"), "{out}");
    assert!(out.contains("removed at the end: toxic drill-"), "{out}");
    assert_eq!(toxics_left(&s.admin).await, serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_switches_a_gateway_route_fault() {
    let dir = temp_dir("gate");
    let up = gate_support::Upstream::start("orders");
    let (listen, admin) = (free_port(), free_port());
    std::fs::write(
        dir.0.join("gate.toml"),
        format!(
            "listen = \"127.0.0.1:{listen}\"\nadmin = \"127.0.0.1:{admin}\"\nadmin_token = \"t0ken\"\n[server]\naccess_log = \"off\"\n[colour]\nheader = \"X-Trace-Mode\"\nvalues = [\"chaos\"]\nkey = \"drill-key-0123456789abcdef\"\ntrusted_networks = [\"127.0.0.0/8\"]\n[upstreams.orders]\ntargets = [\"{}\"]\n[[routes]]\nname = \"orders\"\npath_prefix = \"/orders\"\nupstream = \"orders\"\n",
            up.addr
        ),
    )
    .unwrap();
    let _gate = start(
        &["gate", "--config", "gate.toml", "--threads", "1"],
        &dir.0,
        "goguard gate is running",
    );
    std::fs::write(
        dir.0.join("drill.toml"),
        format!(
            r#"[watch]
probe = "http://127.0.0.1:{listen}/orders/1"
probe_headers = {{ "X-Trace-Mode" = "chaos" }}
every = "50ms"
window = "500ms"
[[gateway]]
name = "gate"
admin = "http://127.0.0.1:{admin}"
token_env = "DRILL_TEST_TOKEN"
[[step]]
name = "orders aborted"
fault = {{ target = "gate", route = "orders", kind = "abort", status = 503, percent = 100.0 }}
duration = "1s"
detect = {{ error_rate = 0.5 }}
detect_within = "1s"
recover_within = "2s"
"#
        ),
    )
    .unwrap();
    let out = goguard()
        .args(["drill", "drill.toml", "--format", "json"])
        .env("DRILL_TEST_TOKEN", "t0ken")
        .current_dir(&dir.0)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    let step = &v["steps"][0];
    assert_eq!(step["verdict"], "ok");
    assert_eq!(
        step["fault"],
        "gate: route orders abort status=503 percent=100.0"
    );
    assert!(step["error_rate"].as_f64().unwrap() > 0.5, "{v:#}");
    // The route serves again, and no fault is left.
    let (code, _) = support::get(&format!("http://127.0.0.1:{listen}/orders/1"))
        .await
        .unwrap();
    assert_eq!(code, 200);
    let (_, faults) = call(
        "GET",
        &format!("http://127.0.0.1:{admin}/admin/faults"),
        None,
    )
    .await;
    assert_eq!(faults["faults"], serde_json::json!([]), "no fault left");
    // A wrong token: the drill stops with the gateway's refusal, exit 2.
    let out = goguard()
        .args(["drill", "drill.toml"])
        .env("DRILL_TEST_TOKEN", "wrong")
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cannot set the fault: 401"), "{text}");
}

#[test]
fn bad_input_is_one_clear_line() {
    let dir = temp_dir("errors");
    let run = |args: &[&str]| {
        let out = goguard().args(args).current_dir(&dir.0).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )
    };
    assert_eq!(
        run(&["drill", "missing.toml"])
            .1
            .lines()
            .next()
            .unwrap()
            .split(": cannot read")
            .next(),
        Some("goguard: missing.toml")
    );
    std::fs::write(
        dir.0.join("bad.toml"),
        "[watch]\nhealth = \"http://127.0.0.1:1/healthz\"\n[[chaos]]\nname = \"redis\"\nadmin = \"http://127.0.0.1:8474\"\nproxy = \"redis\"\n[[step]]\nfault = { target = \"redis\", type = \"lag\" }\nduration = \"1s\"\n",
    )
    .unwrap();
    assert_eq!(
        run(&["drill", "bad.toml"]),
        (Some(2), "goguard: bad.toml: step[0].fault.type: `lag` is not one of latency, bandwidth, down, reset_peer, timeout, slow_close, limit_data".into())
    );
    std::fs::write(
        dir.0.join("good.toml"),
        std::fs::read_to_string(dir.0.join("bad.toml"))
            .unwrap()
            .replace("lag", "down"),
    )
    .unwrap();
    assert_eq!(
        run(&["drill", "good.toml", "--check"]),
        (Some(0), "goguard: good.toml: valid (1 step(s))".into())
    );
    std::fs::write(
        dir.0.join("chaos.toml"),
        "[[proxy]]\nname = \"redis\"\nlisten = \"127.0.0.1:0\"\nupstream = \"redis\"\n",
    )
    .unwrap();
    assert_eq!(
        run(&["chaos", "proxy", "--config", "chaos.toml"]),
        (Some(2), "goguard: chaos.toml: proxy[0].upstream: `redis` is not HOST:PORT (like 127.0.0.1:6379)".into())
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, err) = run(&[
        "chaos",
        "proxy",
        "--listen",
        &addr,
        "--upstream",
        "127.0.0.1:6379",
        "--admin",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, Some(2));
    assert!(
        err.starts_with(&format!(
            "goguard: proxy `proxy`: cannot listen on {addr}: Address already in use"
        )),
        "{err}"
    );
    let (code, err) = run(&[
        "chaos",
        "proxy",
        "--listen",
        "192.0.2.1:7000",
        "--upstream",
        "127.0.0.1:6379",
        "--admin",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, Some(2));
    assert!(
        err.starts_with("goguard: proxy `proxy`: cannot listen on 192.0.2.1:7000: "),
        "{err}"
    );
    let (code, err) = run(&[
        "chaos",
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:6379",
        "--admin",
        &addr,
    ]);
    assert_eq!(code, Some(2));
    assert!(
        err.starts_with(&format!("goguard: admin API: cannot listen on {addr}: ")),
        "{err}"
    );
}
