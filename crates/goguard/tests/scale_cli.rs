//! `goguard scale` as a user runs it: the binary, a scale.toml, a real Prometheus and a real
//! goguard gate as the sources, signals.

#[path = "../../goguard-gate/tests/support/mod.rs"]
mod gate_support;
#[path = "../../goguard-scale/tests/support/mod.rs"]
mod scale_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use gate_support::Upstream;
use scale_support::{free_port, Prometheus, Service};

/// A scratch directory for one test, removed when the test is done with it.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("goguard-scale-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

fn goguard(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_goguard"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn get_json(url: &str) -> Option<serde_json::Value> {
    let a = goguard_scale::http::HttpClient::new()
        .get(url, Duration::from_secs(2))
        .await
        .ok()?;
    serde_json::from_slice(&a.body).ok()
}

#[test]
fn a_bad_configuration_is_one_line_naming_file_line_and_field() {
    let dir = temp_dir("bad");
    std::fs::write(
        dir.0.join("scale.toml"),
        "[prometheus]\nurl = \"http://127.0.0.1:9090\"\n[inputs]\ncpu = { query = \"cpu\" }\nqueue = { query = \"q\" }\npool = { query = \"p\" }\np95 = { query = \"l\" }\n[tree]\ncpu_above = 75\n",
    )
    .unwrap();
    let out = goguard(&dir.0, &["scale", "--config", "scale.toml", "--once"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "goguard: scale.toml:9: tree.cpu_above: 75 is not a share in (0, 1] (write 0.75 for 75%)\n"
    );
    let out = goguard(&dir.0, &["scale", "--config", "missing.toml", "--once"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("goguard: missing.toml: cannot read: ")
    );
}

/// CPU and pool from Prometheus (scraping the Go service), the queue and p95 from a real
/// goguard gate holding 250 requests in its concurrency queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_reads_prometheus_and_the_gateway_and_prints_the_decision() {
    let dir = temp_dir("once");
    let svc = Service::start();
    let prom = Prometheus::start(&svc.addr).await;
    prom.drive(&svc, 0.9, 0.0, 0.95, 0.0).await;

    let up = Upstream::start("orders");
    let (listen, admin) = (free_port(), free_port());
    std::fs::write(
        dir.0.join("gate.toml"),
        format!(
            "listen = \"127.0.0.1:{listen}\"\nadmin = \"127.0.0.1:{admin}\"\n[server]\naccess_log = \"off\"\n[upstreams.orders]\ntargets = [\"{}\"]\n[[routes]]\nname = \"orders\"\nupstream = \"orders\"\n[routes.limit]\nconcurrency = {{ max_in_flight = 1, queue = 400, queue_wait = \"30s\" }}\n",
            up.addr
        ),
    )
    .unwrap();
    let _gate = Running(
        Command::new(env!("CARGO_BIN_EXE_goguard"))
            .args(["gate", "--config", "gate.toml", "--threads", "1"])
            .current_dir(&dir.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let status_url = format!("http://127.0.0.1:{admin}/admin/status");
    until("the gateway", async || get_json(&status_url).await).await;
    // Twenty quick requests for the latency histogram, then 250 that wait.
    for _ in 0..20 {
        let (s, _, _) = gate_support::get(&format!("http://127.0.0.1:{listen}/?delay=2ms")).await;
        assert_eq!(s, 200);
    }
    for _ in 0..250 {
        let url: &'static str =
            Box::leak(format!("http://127.0.0.1:{listen}/?delay=30s").into_boxed_str());
        tokio::spawn(gate_support::get(url));
    }
    until("249 requests queued", async || {
        let s = get_json(&status_url).await?;
        (s["routes"][0]["concurrency"]["waiting"].as_u64()? == 249).then_some(())
    })
    .await;

    std::fs::write(
        dir.0.join("scale.toml"),
        format!(
            r#"
[prometheus]
url = "{}"
[gateway]
admin = "http://127.0.0.1:{admin}"
[inputs]
cpu = {{ query = 'max(orders_cpu_ratio)' }}
queue = {{ gateway = "queue", route = "orders" }}
pool = {{ query = 'max(orders_redis_pool_usage)' }}
p95 = {{ gateway = "p95", upstream = "orders" }}
[service]
replicas = 3
cores = 2
"#,
            prom.url
        ),
    )
    .unwrap();
    let out = goguard(
        &dir.0,
        &[
            "scale",
            "--config",
            "scale.toml",
            "--once",
            "--dry-run",
            "--format",
            "json",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(d["action"], "out");
    assert_eq!(d["dry_run"], true);
    assert_eq!(d["desired"]["replicas"], 5);
    assert_eq!(
        d["reason"],
        "cpu 90% > 75% and queue 249 > 200; pool 95% > 90%: scale out by 2"
    );
    assert_eq!(d["inputs"]["queue"], serde_json::json!({"value": 249.0}));
    // The twenty answered requests took 2 ms and a little more.
    let p95 = d["inputs"]["p95"]["value"].as_f64().unwrap();
    assert!(p95 > 0.001 && p95 < 0.2, "{p95}");

    let out = goguard(
        &dir.0,
        &["scale", "--config", "scale.toml", "--once", "--dry-run"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("dry run: would scale out 3 instances x 2 cores -> 5 instances x 2 cores: cpu 90% > 75% and queue 249 > 200"),
        "{text}"
    );
    assert!(
        text.contains("\n  inputs: cpu 0.9, queue 249, pool 0.95, p95 0."),
        "{text}"
    );
}

/// The loop runs, serves its admin API, survives an unreachable Prometheus and stops on
/// SIGTERM with 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_serves_its_status_and_stops_on_sigterm() {
    let dir = temp_dir("loop");
    let (closed, admin) = (free_port(), free_port());
    std::fs::write(
        dir.0.join("scale.toml"),
        format!(
            "every = \"100ms\"\n[prometheus]\nurl = \"http://127.0.0.1:{closed}\"\n[inputs]\ncpu = {{ query = \"cpu\" }}\nqueue = {{ query = \"q\" }}\npool = {{ query = \"p\" }}\np95 = {{ query = \"l\" }}\n"
        ),
    )
    .unwrap();
    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_goguard"))
            .args(["scale", "--config", "scale.toml", "--admin"])
            .arg(format!("127.0.0.1:{admin}"))
            .args(["--log-json"])
            .current_dir(&dir.0)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{admin}/admin/status");
    let status = until("three decisions", async || {
        let s = get_json(&url).await?;
        (s["decisions"].as_array()?.len() >= 3).then_some(s)
    })
    .await;
    assert_eq!(status["decisions"][0]["no_data"], true);
    let ok = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let code = child.0.wait().unwrap();
    assert_eq!(code.code(), Some(0), "{stderr}");
    // Each decision is a JSON line with its inputs.
    let line = stderr
        .lines()
        .find(|l| l.contains("no decision"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["level"], "WARN");
    assert_eq!(v["fields"]["no_data"], true);
    assert!(v["fields"]["inputs"]
        .as_str()
        .unwrap()
        .contains("onnection refused"));
}
