//! goguard scale against a real Prometheus (the Debian package's /usr/bin/prometheus,
//! started by each test on a free port with its own data directory) scraping a small Go
//! service (tests/programs/loadsim, built with the real Go toolchain) whose figures the test
//! sets: decisions, stabilisation, verification, failing hooks, and an unreachable
//! Prometheus.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use goguard_scale::http::HttpClient;
use goguard_scale::{parse, Action, Scaler, Verdict};

/// Builds the Go service once per test binary.
fn loadsim_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let out = dir.join("goguard-scale-loadsim");
        let fresh = dir.join(format!("goguard-scale-loadsim.{}", std::process::id()));
        let status = Command::new("go")
            .args(["build", "-o"])
            .arg(&fresh)
            .arg(".")
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/loadsim"))
            .env("GOFLAGS", "-mod=mod")
            .status()
            .expect("go is installed (scripts/test installs it)");
        assert!(status.success(), "go build of loadsim failed");
        std::fs::rename(&fresh, &out).unwrap();
        out
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The Go service; killed when dropped.
struct Service {
    child: Child,
    addr: String,
}

impl Service {
    fn start() -> Service {
        let mut child = Command::new(loadsim_binary())
            .args(["-listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start loadsim");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Service { child, addr }
    }

    async fn set(&self, query: &str) {
        let a = HttpClient::new()
            .get(
                &format!("http://{}/set?{query}", self.addr),
                Duration::from_secs(2),
            )
            .await
            .unwrap();
        assert_eq!(a.status, 200);
    }

    /// Webhooks received, and the last one's body.
    async fn hooks(&self) -> (u32, String) {
        let a = HttpClient::new()
            .get(
                &format!("http://{}/hooks", self.addr),
                Duration::from_secs(2),
            )
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&a.body).to_string();
        let (n, body) = text.split_once('\n').unwrap();
        (n.parse().unwrap(), body.to_string())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real Prometheus scraping `targets` every 500 ms; killed and its data removed when
/// dropped.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl Prometheus {
    async fn start(target: &str) -> Prometheus {
        let port = free_port();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("prometheus-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 500ms\n  scrape_timeout: 400ms\nscrape_configs:\n  - job_name: orders\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let child = Command::new("/usr/bin/prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("/usr/bin/prometheus (scripts/test installs the Debian package)");
        let p = Prometheus {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        };
        // Its first scrape comes after service discovery's first update (about 5 s).
        p.wait_for("max(orders_cpu_ratio)", |_| true).await;
        p
    }

    async fn query(&self, q: &str) -> Option<f64> {
        let r = goguard_scale::prometheus::query(
            &HttpClient::new(),
            &self.url,
            q,
            Duration::from_secs(2),
        )
        .await;
        r.value()
    }

    /// Polls until the query's value satisfies `ok` (a scrape has seen what the test set).
    async fn wait_for(&self, q: &str, ok: impl Fn(f64) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.query(q).await.is_some_and(&ok) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus never showed the figure for {q}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sets the service's figures and waits until Prometheus has scraped them.
    async fn drive(&self, svc: &Service, cpu: f64, queue: f64, pool: f64, p95: f64) {
        svc.set(&format!("cpu={cpu}&queue={queue}&pool={pool}&p95={p95}"))
            .await;
        let close = |want: f64| move |v: f64| (v - want).abs() < 1e-9;
        self.wait_for("max(orders_cpu_ratio)", close(cpu)).await;
        self.wait_for("max(orders_queue_depth)", close(queue)).await;
        self.wait_for("max(orders_redis_pool_usage)", close(pool))
            .await;
        self.wait_for("max(orders_p95_seconds)", close(p95)).await;
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A scale.toml reading the Go service's figures through Prometheus; `extra` is appended.
fn config(prometheus: &str, extra: &str) -> goguard_scale::Config {
    let text = format!(
        r#"
every = "250ms"

[prometheus]
url = "{prometheus}"
timeout = "1s"

[inputs]
cpu = {{ query = 'max(orders_cpu_ratio{{job="orders"}})' }}
queue = {{ query = 'sum(orders_queue_depth)' }}
pool = {{ query = 'max(orders_redis_pool_usage)' }}
p95 = {{ query = 'max(orders_p95_seconds)' }}

[service]
replicas = 3
cores = 2

{extra}
"#
    );
    parse(&text, "scale.toml").unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn decisions_out_up_and_none() {
    let svc = Service::start();
    let prom = Prometheus::start(&svc.addr).await;
    let cfg = config(
        &prom.url,
        &format!(
            "[behavior]\ncooldown = \"0s\"\n[hook]\nwebhook = \"http://{}/hook\"\ntimeout = \"2s\"\n",
            svc.addr
        ),
    );
    let mut scaler = Scaler::new(cfg, false);

    // CPU 90%, 300 queued, pool 95%: scale out by 2.
    prom.drive(&svc, 0.9, 300.0, 0.95, 0.3).await;
    let d = scaler.evaluate().await;
    assert_eq!(d.action, Action::Out, "{}", d.text());
    assert_eq!((d.current.replicas, d.desired.replicas), (3, 5));
    assert_eq!(
        d.reason,
        "cpu 90% > 75% and queue 300 > 200; pool 95% > 90%: scale out by 2"
    );
    assert!(d.hook.as_ref().unwrap().ok, "{}", d.text());
    let (n, body) = svc.hooks().await;
    assert_eq!(n, 1);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["action"], "out");
    assert_eq!(body["desired"]["replicas"], 5);
    assert_eq!(
        body["inputs"][0],
        serde_json::json!(["cpu", {"value": 0.9}])
    );

    // The pool has room: scale up by a core.
    prom.drive(&svc, 0.9, 300.0, 0.5, 0.3).await;
    let d = scaler.evaluate().await;
    assert_eq!(d.action, Action::Up, "{}", d.text());
    assert_eq!(d.current.replicas, 5);
    assert_eq!((d.current.cores, d.desired.cores), (2.0, 3.0));
    assert_eq!(svc.hooks().await.0, 2);

    // CPU 40%: keep.
    prom.drive(&svc, 0.4, 300.0, 0.5, 0.3).await;
    let d = scaler.evaluate().await;
    assert_eq!(d.action, Action::None);
    assert_eq!(d.reason, "keep: cpu 40% <= 75%");
    assert!(d.hook.is_none());
    assert_eq!(svc.hooks().await.0, 2);
    let state = scaler.board().snapshot();
    assert_eq!((state.size.replicas, state.size.cores), (5, 3.0));
    assert_eq!(state.decisions.len(), 3);
}

#[tokio::test]
async fn a_load_going_up_and_down_does_not_flap() {
    let svc = Service::start();
    let prom = Prometheus::start(&svc.addr).await;
    let scale_in = "[scale_in]\ncpu_below = 0.5\nqueue_below = 100\n";
    // Two scalers on the same figures, at the same moments, in dry-run mode: one with the
    // defaults (tolerance 0.1, 5 min scale-down window, cooldown = the 1 min verification
    // window), one without any stabilisation.
    let mut stable = Scaler::new(config(&prom.url, scale_in), true);
    let mut bare = Scaler::new(
        config(
            &prom.url,
            &format!("{scale_in}[tree]\ntolerance = 0\n[behavior]\ncooldown = \"0s\"\n[behavior.scale_down]\nwindow = \"0s\"\n[behavior.scale_up]\nwindow = \"0s\"\npolicies = []\n"),
        ),
        true,
    );
    for i in 0..6 {
        if i % 2 == 0 {
            prom.drive(&svc, 0.95, 300.0, 0.95, 0.3).await;
        } else {
            prom.drive(&svc, 0.2, 20.0, 0.3, 0.05).await;
        }
        stable.evaluate().await;
        bare.evaluate().await;
    }
    let actions = |s: &Scaler| {
        let mut v: Vec<Action> = s
            .board()
            .snapshot()
            .decisions
            .iter()
            .map(|d| d.action)
            .filter(|a| *a != Action::None)
            .collect();
        v.reverse();
        v
    };
    assert_eq!(
        actions(&bare),
        [
            Action::Out,
            Action::In,
            Action::Out,
            Action::In,
            Action::Out,
            Action::In
        ]
    );
    assert_eq!(actions(&stable), [Action::Out]);
    let st = stable.board().snapshot();
    assert_eq!(st.size.replicas, 5);
    // The quiet samples were recommendations to scale in, held by the window.
    let held: Vec<&str> = st
        .decisions
        .iter()
        .filter(|d| d.tree == Action::In)
        .flat_map(|d| d.stabilised_by.iter().map(String::as_str))
        .collect();
    assert_eq!(held.len(), 3, "{held:?}");
    assert!(held
        .iter()
        .all(|h| h.starts_with("scale-down window: the highest recommendation over 5m is 5")));
    // The busy ones after the first action waited for the cooldown.
    let cooled = st
        .decisions
        .iter()
        .filter(|d| d.tree == Action::Out && d.action == Action::None)
        .count();
    assert_eq!(cooled, 2);
}

/// Runs the scaler's loop until the returned sender is dropped.
fn run(scaler: Scaler) -> tokio::sync::oneshot::Sender<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(scaler.run(async move {
        let _ = stopped.await;
    }));
    stop
}

async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verification_says_whether_the_action_worked() {
    let svc = Service::start();
    let prom = Prometheus::start(&svc.addr).await;
    let verify = "[verify]\np95_below = \"200ms\"\nwithin = \"2s\"\nevery = \"100ms\"\n";
    // The service's p95 falls to 120 ms when it receives the scaling webhook.
    svc.set("after_p95=0.12").await;
    prom.drive(&svc, 0.9, 300.0, 0.95, 0.3).await;
    let cfg = config(
        &prom.url,
        &format!("{verify}[hook]\nwebhook = \"http://{}/hook\"\n", svc.addr),
    );
    let scaler = Scaler::new(cfg, false);
    let board = scaler.board();
    let stop = run(scaler);
    let v = until("a verification", || {
        board.snapshot().verifications.front().cloned()
    })
    .await;
    assert_eq!(v.verdict, Verdict::Worked, "{}", v.text());
    assert_eq!(v.decision, 1);
    assert_eq!(v.action, Action::Out);
    assert!(v.p95.value().unwrap() < 0.2);
    assert!(v.after_seconds < 2.0);
    drop(stop);

    // Now the webhook changes nothing: p95 stays at 300 ms for the 2 s window.
    let svc = Service::start();
    let prom = Prometheus::start(&svc.addr).await;
    prom.drive(&svc, 0.9, 300.0, 0.95, 0.3).await;
    let cfg = config(
        &prom.url,
        &format!("{verify}[hook]\nwebhook = \"http://{}/hook\"\n", svc.addr),
    );
    let scaler = Scaler::new(cfg, false);
    let board = scaler.board();
    let stop = run(scaler);
    let v = until("a verification", || {
        board.snapshot().verifications.front().cloned()
    })
    .await;
    assert_eq!(v.verdict, Verdict::DidNotWork, "{}", v.text());
    assert_eq!(v.p95.value(), Some(0.3));
    assert!(v.after_seconds >= 2.0 && v.checks >= 5, "{}", v.text());
    assert!(
        v.text()
            .contains("did NOT work, p95 300 ms, not under 200 ms within"),
        "{}",
        v.text()
    );
    // The cooldown (the 2 s window) is over: the still-busy service gets the next action.
    until("a second action", || {
        board
            .snapshot()
            .decisions
            .iter()
            .filter(|d| d.acted())
            .nth(1)
            .cloned()
    })
    .await;
    drop(stop);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_hooks_are_reported_and_the_loop_goes_on() {
    let svc = Service::start();
    let prom = Prometheus::start(&svc.addr).await;
    prom.drive(&svc, 0.9, 300.0, 0.95, 0.3).await;

    // A command that exits 1: every evaluation tries again, nothing is counted as done.
    let cfg = config(
        &prom.url,
        "[hook]\ncommand = [\"sh\", \"-c\", \"echo deployment orders not found >&2; exit 1\", \"{replicas}\"]\ntimeout = \"2s\"\n",
    );
    let scaler = Scaler::new(cfg, false);
    let board = scaler.board();
    let stop = run(scaler);
    let state = until("three failed actions", || {
        let s = board.snapshot();
        (s.decisions.len() >= 3).then_some(s)
    })
    .await;
    drop(stop);
    for d in &state.decisions {
        assert_eq!(d.action, Action::Out);
        let h = d.hook.as_ref().unwrap();
        assert!(!h.ok);
        assert_eq!(h.status, Some(1));
        assert_eq!(h.output, "deployment orders not found");
        assert_eq!(
            h.target,
            "sh -c echo deployment orders not found >&2; exit 1 5"
        );
        assert!(d.text().contains("hook: command"), "{}", d.text());
        assert!(
            d.text().contains("FAILED, exited with status 1"),
            "{}",
            d.text()
        );
    }
    assert_eq!(state.size.replicas, 3);
    assert!(state.verifying.is_none());
    assert!(board
        .encode_metrics()
        .contains("goguard_scale_actions_total{action=\"out\",result=\"failed\"}"));

    // A webhook nobody listens on, then one answering 500.
    let closed = free_port();
    let mut scaler = Scaler::new(
        config(
            &prom.url,
            &format!("[hook]\nwebhook = \"http://127.0.0.1:{closed}/scale\"\ntimeout = \"1s\"\n"),
        ),
        false,
    );
    let d = scaler.evaluate().await;
    let h = d.hook.unwrap();
    assert!(!h.ok);
    assert!(
        h.error.as_deref().unwrap().contains("onnection refused"),
        "{h:?}"
    );
    let d = scaler.evaluate().await;
    assert_eq!(d.action, Action::Out, "a failed action is tried again");
    svc.set("hook_status=500").await;
    let mut scaler = Scaler::new(
        config(
            &prom.url,
            &format!("[hooks.out]\nwebhook = \"http://{}/hook\"\n", svc.addr),
        ),
        false,
    );
    let h = scaler.evaluate().await.hook.unwrap();
    assert_eq!((h.ok, h.status), (false, Some(500)));
    assert_eq!(h.error.as_deref(), Some("answered HTTP 500"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_prometheus_is_no_data_and_the_admin_api_says_so() {
    let closed = free_port();
    let cfg = config(&format!("http://127.0.0.1:{closed}"), "");
    let scaler = Scaler::new(cfg, false);
    let board = scaler.board();
    let listener = goguard_scale::admin::bind("127.0.0.1:0").await.unwrap();
    let admin = listener.local_addr().unwrap();
    tokio::spawn(goguard_scale::admin::serve(listener, board.clone()));
    let stop = run(scaler);
    let state = until("three evaluations", || {
        let s = board.snapshot();
        (s.decisions.len() >= 3).then_some(s)
    })
    .await;
    for d in &state.decisions {
        assert!(d.no_data);
        assert_eq!(d.action, Action::None);
        assert!(
            d.reason.starts_with(&format!(
                "no decision: cpu: prometheus http://127.0.0.1:{closed}/api/v1/query?query="
            )),
            "{}",
            d.reason
        );
        assert!(d.reason.contains("onnection refused"), "{}", d.reason);
    }
    let client = HttpClient::new();
    let metrics = client
        .get(&format!("http://{admin}/metrics"), Duration::from_secs(2))
        .await
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.body).to_string();
    assert!(
        metrics.contains("goguard_scale_decisions_total{action=\"no_data\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("goguard_scale_input{input=\"cpu\"} NaN"),
        "{metrics}"
    );
    assert!(metrics.contains("goguard_scale_replicas 3"), "{metrics}");
    let status = client
        .get(
            &format!("http://{admin}/admin/status"),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
    assert_eq!(status["size"]["replicas"], 3);
    assert_eq!(status["decisions"][0]["no_data"], true);
    assert!(status["decisions"][0]["inputs"][0][1]["error"]
        .as_str()
        .unwrap()
        .contains("onnection refused"));
    drop(stop);
}
