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
pub struct AccessLog(Option<(SyncSender<String>, Arc<AtomicU64>)>);

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
        let (tx, rx) = sync_channel::<String>(QUEUE);
        std::thread::spawn(move || {
            let mut out = std::io::BufWriter::new(out);
            while let Ok(line) = rx.recv() {
                let _ = out.write_all(line.as_bytes());
                // Write what is queued, then flush once: a burst costs one write.
                for more in rx.try_iter() {
                    let _ = out.write_all(more.as_bytes());
                }
                let _ = out.flush();
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
        if tx.try_send(format!("{line}\n")).is_err() {
            dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lines dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.0
            .as_ref()
            .map_or(0, |(_, d)| d.load(Ordering::Relaxed))
    }
}
