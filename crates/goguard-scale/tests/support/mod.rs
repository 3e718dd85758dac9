//! What the scaling tests share: the Go service whose figures a test sets
//! (`programs/loadsim`, built once with the real Go toolchain) and a real Prometheus
//! scraping it. Also used by the binary's tests (crates/goguard/tests/scale_cli.rs) through
//! `#[path]`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use goguard_scale::http::HttpClient;

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
            .current_dir(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../goguard-scale/tests/programs/loadsim"),
            )
            .env("GOFLAGS", "-mod=mod")
            .status()
            .expect("go is installed (scripts/test installs it)");
        assert!(status.success(), "go build of loadsim failed");
        std::fs::rename(&fresh, &out).unwrap();
        out
    })
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The Go service; killed when dropped.
pub struct Service {
    child: Child,
    pub addr: String,
}

impl Service {
    pub fn start() -> Service {
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

    pub async fn set(&self, query: &str) {
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
    pub async fn hooks(&self) -> (u32, String) {
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
pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    pub url: String,
}

impl Prometheus {
    pub async fn start(target: &str) -> Prometheus {
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

    pub async fn query(&self, q: &str) -> Option<f64> {
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
    pub async fn wait_for(&self, q: &str, ok: impl Fn(f64) -> bool) {
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
    pub async fn drive(&self, svc: &Service, cpu: f64, queue: f64, pool: f64, p95: f64) {
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
