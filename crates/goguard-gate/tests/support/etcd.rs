//! A real etcd for the gateway's config-centre tests (kept apart from `mod.rs`, which the
//! binary's tests share and which does not need base64).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use http::Method;

use crate::support::{free_port, send, wait_until};

/// A real etcd (Debian's etcd-server, 3.4) on free ports, its data in a directory of its own
/// under cargo's scratch directory; killed, and its data removed, when dropped.
pub struct Etcd {
    child: Option<Child>,
    pub port: u16,
    peer: u16,
    dir: PathBuf,
}

impl Etcd {
    pub fn start() -> Etcd {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "etcd-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let mut e = Etcd {
            child: None,
            port: free_port(),
            peer: free_port(),
            dir,
        };
        e.restart();
        e
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same ports and data, and waits until it reports itself healthy.
    pub fn restart(&mut self) {
        let client = self.url();
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let child = Command::new("etcd")
            .arg("--name=test")
            .arg(format!("--data-dir={}", self.dir.display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=test={peer}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd is installed (scripts/test installs etcd-server)");
        self.child = Some(child);
        let port = self.port;
        wait_until(
            Duration::from_secs(20),
            "etcd reports itself healthy",
            || {
                use std::io::{Read, Write};
                let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                    return false;
                };
                let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                let _ = s.write_all(b"GET /health HTTP/1.0\r\n\r\n");
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                out.contains("\"health\":\"true\"")
            },
        );
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Writes a key through etcd's JSON gateway, as any client would.
    pub async fn put(&self, key: &str, value: &str) {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        let body = serde_json::json!({"key": b64(key), "value": b64(value)}).to_string();
        let (s, _, answer) = send(
            Method::POST,
            &format!("{}/v3/kv/put", self.url()),
            &[("content-type", "application/json")],
            &body,
        )
        .await;
        assert_eq!(s, 200, "etcd put: {answer}");
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
