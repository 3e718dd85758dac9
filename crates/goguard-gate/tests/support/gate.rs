//! The gateway under test, in process: serving on ephemeral ports with its configuration in
//! a scratch directory of its own (removed when dropped).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use goguard_gate::clock::SharedClock;
use goguard_gate::Gateway;
use tokio::net::TcpListener;

use crate::support::get;

/// A gateway serving on ephemeral ports, with its configuration in a file of its own.
pub struct TestGate {
    pub gw: Gateway,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The common head of a test configuration: ephemeral listeners, no access log.
pub fn head() -> String {
    "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nadmin_token = \"t0ken\"\n[server]\naccess_log = \"off\"\n".into()
}

impl TestGate {
    pub async fn start(toml: &str, clock: SharedClock) -> TestGate {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "goguard-gate-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gate.toml");
        std::fs::write(&path, toml).unwrap();
        let config = goguard_gate::load(&path).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        let gw = Gateway::new(config, Some(path), dir.clone(), clock).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr, admin_addr) = (listener.local_addr().unwrap(), admin.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(gw.clone().serve(listener, admin, async move {
            let _ = rx.await;
        }));
        TestGate {
            gw,
            addr,
            admin: admin_addr,
            dir,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn status(&self) -> serde_json::Value {
        let (s, _, body) = get(&format!("http://{}/admin/status", self.admin)).await;
        assert_eq!(s, 200);
        serde_json::from_str(&body).unwrap()
    }

    pub async fn metrics(&self) -> String {
        get(&format!("http://{}/metrics", self.admin)).await.2
    }

    pub fn events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }
}

impl Drop for TestGate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls an async condition until it holds (a health check, a reconnect); fails after
/// `limit`. A wait for a condition, never a sleep standing in for one.
pub async fn wait_for<F, Fut>(limit: Duration, what: &str, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !ready().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
