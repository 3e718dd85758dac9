//! The access log: one JSON line per request, written by a thread behind a bounded queue so
//! a slow disk or a blocked terminal never slows a request (lines that do not fit are
//! dropped and counted).

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One request, as logged.
pub struct AccessRecord<'a> {
    pub client: IpAddr,
    pub method: &'a str,
    pub path: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub duration: Duration,
    /// The protection that answered instead of the upstream, if any.
    pub rejected: Option<&'a str>,
}

/// Where access lines go; `off` costs nothing.
#[derive(Clone)]
pub struct AccessLog(Option<(SyncSender<Msg>, Arc<AtomicU64>)>);

/// What the writer thread is sent.
enum Msg {
    Line(String),
    /// Everything sent before is written: say so on the channel.
    Flush(SyncSender<()>),
}

/// Lines waiting for the writer.
const QUEUE: usize = 16_384;

impl AccessLog {
    /// `stdout`, `stderr`, `off` or `file:PATH` (relative to `base`).
    pub fn open(spec: &str, base: &Path) -> Result<AccessLog, String> {
        let out: Box<dyn Write + Send> = match spec {
            "off" => return Ok(AccessLog(None)),
            "stdout" => Box::new(std::io::stdout()),
            "stderr" => Box::new(std::io::stderr()),
            other => {
                let p = other
                    .strip_prefix("file:")
                    .ok_or_else(|| format!("server.access_log: `{other}`"))?;
                let path = base.join(p);
                Box::new(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .map_err(|e| format!("server.access_log: {}: {e}", path.display()))?,
                )
            }
        };
        let (tx, rx) = sync_channel::<Msg>(QUEUE);
        std::thread::spawn(move || {
            let mut out = std::io::BufWriter::new(out);
            let mut waiting = Vec::new();
            while let Ok(first) = rx.recv() {
                // Write what is queued, then flush once: a burst costs one write.
                for msg in std::iter::once(first).chain(rx.try_iter()) {
                    match msg {
                        Msg::Line(line) => {
                            let _ = out.write_all(line.as_bytes());
                        }
                        Msg::Flush(done) => waiting.push(done),
                    }
                }
                let _ = out.flush();
                for done in waiting.drain(..) {
                    let _ = done.try_send(());
                }
            }
        });
        Ok(AccessLog(Some((tx, Arc::new(AtomicU64::new(0))))))
    }

    /// False for `off`: the caller can skip gathering the record.
    pub fn enabled(&self) -> bool {
        self.0.is_some()
    }

    pub fn write(&self, r: AccessRecord) {
        let Some((tx, dropped)) = &self.0 else {
            return;
        };
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let line = serde_json::json!({
            "ts": (ts * 1000.0).round() / 1000.0,
            "client": r.client.to_string(),
            "method": r.method,
            "path": r.path,
            "route": r.route,
            "status": r.status,
            "ms": (r.duration.as_secs_f64() * 1e6).round() / 1e3,
            "rejected": r.rejected,
        });
        if tx.try_send(Msg::Line(format!("{line}\n"))).is_err() {
            dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits (a second at most) until every line queued so far is written: at shutdown, so
    /// that the last requests' lines do not go with the process.
    pub fn flush(&self) {
        let Some((tx, _)) = &self.0 else {
            return;
        };
        let (done, written) = sync_channel(1);
        if tx.send(Msg::Flush(done)).is_ok() {
            let _ = written.recv_timeout(Duration::from_secs(1));
        }
    }

    /// Lines dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.0
            .as_ref()
            .map_or(0, |(_, d)| d.load(Ordering::Relaxed))
    }
}
