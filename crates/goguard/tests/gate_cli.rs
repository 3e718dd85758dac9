//! `goguard gate` as a user runs it: the binary, a configuration file, signals.

#[path = "../../goguard-gate/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{free_port, wait_until, Upstream};

/// A running `goguard gate --config`, stopped (SIGKILL) if the test fails before it ends.
struct Gate {
    child: Option<Child>,
    listen: String,
    admin: String,
    stderr: std::sync::mpsc::Receiver<String>,
}

/// A scratch directory for one test, removed when the test is done with it.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("goguard-gate-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

impl Gate {
    /// Starts the binary and waits for its "running" log line.
    fn start(dir: &Path, extra_args: &[&str]) -> Gate {
        let text = std::fs::read_to_string(dir.join("gate.toml")).unwrap();
        let value: toml::Value = toml::from_str(&text).unwrap();
        let listen = value["listen"].as_str().unwrap().to_string();
        let admin = value["admin"].as_str().unwrap().to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_goguard"))
            .args(["gate", "--config", "gate.toml"])
            .args(extra_args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[gate] {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let gate = Gate {
            child: Some(child),
            listen,
            admin,
            stderr: rx,
        };
        gate.wait_log("goguard gate is running");
        gate
    }

    fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line with {needle:?}"),
            }
        }
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// Waits for the process to end; its exit code.
    fn wait(&mut self) -> i32 {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "the gateway did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A blocking HTTP/1.1 GET on a fresh connection: status and body.
fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}

/// Waits until the gateway's metrics show one request in flight on route `svc`.
fn wait_in_flight(gate: &Gate) {
    wait_until(Duration::from_secs(10), "a request is in flight", || {
        let (_, body) = http_get(&gate.admin, "/metrics").unwrap();
        body.contains("goguard_gate_in_flight{route=\"svc\"} 1")
    });
}

fn version(gate: &Gate) -> u64 {
    let (_, body) = http_get(&gate.admin, "/admin/status").unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["config_version"].as_u64().unwrap()
}

fn config(dir: &Path, upstream: &str, extra: &str) {
    let text = format!(
        "listen = \"127.0.0.1:{}\"\nadmin = \"127.0.0.1:{}\"\n[server]\naccess_log = \"file:access.log\"\n{extra}\n[upstreams.svc]\ntargets = [\"{upstream}\"]\n[[routes]]\nname = \"svc\"\nupstream = \"svc\"\n",
        free_port(),
        free_port()
    );
    std::fs::write(dir.join("gate.toml"), text).unwrap();
}

#[test]
fn the_issue_example_runs_as_written() {
    // The service on 127.0.0.1:9000, the gateway on 8080 and 9901, as in the example.
    let up = Upstream::start_with("orders", &["-listen", "127.0.0.1:9000"]);
    assert_eq!(up.addr.port(), 9000);
    let dir = temp_dir("example");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/gate/gate.toml");
    std::fs::copy(example, dir.join("gate.toml")).unwrap();
    let mut gate = Gate::start(&dir, &[]);
    let (s, body) = http_get(&gate.listen, "/orders/42").unwrap();
    assert_eq!((s, body.as_str()), (200, "hello from orders\n"));
    let (s, _) = http_get(&gate.listen, "/elsewhere").unwrap();
    assert_eq!(s, 404);
    let (s, metrics) = http_get(&gate.admin, "/metrics").unwrap();
    assert_eq!(s, 200);
    assert!(
        metrics.contains("goguard_gate_requests_total{route=\"orders\",status=\"200\"} 1"),
        "{metrics}"
    );
    gate.signal("TERM");
    assert_eq!(gate.wait(), 0);
}

#[test]
fn sigterm_drains_requests_in_flight_then_exits_0() {
    let up = Upstream::start("a");
    let dir = temp_dir("drain");
    config(&dir, &up.addr.to_string(), "drain = \"10s\"");
    let mut gate = Gate::start(&dir, &[]);
    let listen = gate.listen.clone();
    let slow = std::thread::spawn(move || http_get(&listen, "/?delay=1500ms"));
    wait_in_flight(&gate);
    gate.signal("TERM");
    gate.wait_log("draining");
    // New connections are refused while the old request finishes.
    wait_until(Duration::from_secs(5), "the listener is closed", || {
        TcpStream::connect(&gate.listen).is_err()
    });
    let (s, body) = slow.join().unwrap().unwrap();
    assert_eq!((s, body.as_str()), (200, "hello from a\n"));
    assert_eq!(gate.wait(), 0);
    let log = std::fs::read_to_string(dir.join("access.log")).unwrap();
    assert!(
        log.contains("\"status\":200"),
        "the access log has the request: {log}"
    );
}

#[test]
fn the_drain_deadline_bounds_a_hung_request() {
    let up = Upstream::start("a");
    let dir = temp_dir("deadline");
    config(&dir, &up.addr.to_string(), "drain = \"300ms\"");
    let mut gate = Gate::start(&dir, &[]);
    let listen = gate.listen.clone();
    let hung = std::thread::spawn(move || http_get(&listen, "/?hang=1"));
    wait_in_flight(&gate);
    let start = Instant::now();
    gate.signal("INT");
    assert_eq!(gate.wait(), 0);
    assert!(start.elapsed() < Duration::from_secs(10));
    gate.wait_log("drain deadline passed");
    // The client is not left waiting forever: its connection is closed.
    let answer = hung.join().unwrap();
    assert!(
        answer.map_or(true, |(s, _)| s == 0),
        "no answer was made up"
    );
}

#[test]
fn sighup_and_file_changes_reload() {
    let up = Upstream::start("a");
    let dir = temp_dir("reload");
    config(&dir, &up.addr.to_string(), "");
    let gate = Gate::start(&dir, &["--watch-every", "100ms"]);
    assert_eq!(version(&gate), 1);
    let path = dir.join("gate.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("[[routes]]", "[[routes]]\n# changed")).unwrap();
    wait_until(
        Duration::from_secs(10),
        "the file change is applied",
        || version(&gate) == 2,
    );
    gate.signal("HUP");
    gate.wait_log("trigger=\"SIGHUP\"");
    assert_eq!(version(&gate), 3);
    // A broken file is refused with its line, and the gateway serves on.
    std::fs::write(
        &path,
        text.replace("targets = [", "targets = [\"nowhere\", "),
    )
    .unwrap();
    let line = gate.wait_log("configuration rejected");
    assert!(
        line.contains("gate.toml:7: upstreams.svc.targets.0: `nowhere`: expected HOST:PORT"),
        "{line}"
    );
    assert_eq!(http_get(&gate.listen, "/").unwrap().0, 200);
    assert_eq!(version(&gate), 3);
}

#[test]
fn a_slow_client_is_cut_off_by_the_header_timeout() {
    let up = Upstream::start("a");
    let dir = temp_dir("slowloris");
    config(&dir, &up.addr.to_string(), "header_timeout = \"300ms\"");
    let gate = Gate::start(&dir, &[]);
    let mut s = TcpStream::connect(&gate.listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Half a request head, then nothing.
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let start = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "closed by the gateway, not by the read timeout"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    // Others are served meanwhile.
    assert_eq!(http_get(&gate.listen, "/").unwrap().0, 200);
}

/// Runs `goguard gate ARGS` in `dir`, expecting it to refuse to start (exit 2); its stderr.
fn fails_to_start(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_goguard"))
        .arg("gate")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_second_gateway_on_the_same_address_fails_to_start() {
    // The serving threads share the port (SO_REUSEPORT); another gateway must not.
    let up = Upstream::start("a");
    let dir = temp_dir("twice");
    config(&dir, &up.addr.to_string(), "");
    let mut gate = Gate::start(&dir, &["--threads", "2"]);
    let text = std::fs::read_to_string(dir.join("gate.toml")).unwrap();
    let admin_line = format!("admin = \"{}\"", gate.admin);
    let second = text.replace(
        &admin_line,
        &format!("admin = \"127.0.0.1:{}\"", free_port()),
    );
    assert_ne!(second, text);
    std::fs::write(dir.join("second.toml"), second).unwrap();
    let err = fails_to_start(&dir, &["--config", "second.toml", "--threads", "2"]);
    assert!(
        err.contains(&format!("cannot listen on {} (listen)", gate.listen)),
        "{err}"
    );
    // The first one serves on.
    let (s, _) = http_get(&gate.listen, "/").unwrap();
    assert_eq!(s, 200);
    gate.signal("TERM");
    assert_eq!(gate.wait(), 0);
}

#[test]
fn bad_configurations_and_busy_ports_are_one_line_errors() {
    let dir = temp_dir("bad");
    std::fs::write(
        dir.join("gate.toml"),
        "listen = \"127.0.0.1:8080\"\n[[routes]]\nname = \"r\"\nupstream = \"missing\"\n",
    )
    .unwrap();
    let err = fails_to_start(&dir, &["--config", "gate.toml"]);
    assert!(
        err.contains("gate.toml:4: routes.0.upstream: no upstream `missing`"),
        "{err}"
    );

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    std::fs::write(
        dir.join("gate.toml"),
        format!(
            "listen = \"127.0.0.1:{port}\"\nadmin = \"127.0.0.1:{}\"\n",
            free_port()
        ),
    )
    .unwrap();
    let err = fails_to_start(&dir, &["--config", "gate.toml"]);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port} (listen)")),
        "{err}"
    );
}
