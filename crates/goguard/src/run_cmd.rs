//! `goguard run`: run a Go program under the three instruments of the reference's chapter 1
//! (scheduler/GC traces, the race detector, goroutine dumps) and report what they show.
//!
//! The program's output passes through unchanged while a copy is kept for the report. The
//! program runs in its own process group, so a timeout or Ctrl-C reaches everything it
//! started and nothing is left behind.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use goguard_run::RunReport;

use crate::dump_cmd::{emit, finding_line, rule_hint, DumpFormat};
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

pub fn run(args: RunArgs) -> Result<u8, String> {
    let command = if args.race {
        goguard_run::with_race(args.command.clone())
    } else {
        args.command.clone()
    };
    let spec = goguard_run::Spec {
        command,
        env: goguard_run::instrument_env(args.sched, args.scheddetail, args.gc),
        timeout: args.timeout,
        dump_at: args.dump_at.clone(),
        pprof: args.pprof.clone(),
        passthrough: true,
        trace: args.sched.is_some() || args.gc,
        grace: QUIT_GRACE,
    };
    // Ctrl-C goes to the program's whole group; the report is still written.
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let _ = ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    });
    let mut report = goguard_run::run(&spec, Some(&stop_rx))?.report;
    attach_source(&args, &mut report);
    write_report(&args, &report)?;
    Ok(if report.found() {
        EXIT_FOUND
    } else {
        u8::try_from(report.exit_code).unwrap_or(1)
    })
}

/// Static findings for the functions in the suspect stacks (see `goguard dump --source`).
fn attach_source(args: &RunArgs, report: &mut RunReport) {
    let dir = args.source.clone().unwrap_or_else(|| PathBuf::from("."));
    let Ok(map) = goguard_dump::source::SourceMap::new(&dir) else {
        return;
    };
    for d in &mut report.dumps {
        let _ = goguard_dump::source::attach(&mut d.analysis, &map);
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
    if let Ok(found) = goguard_dump::source::findings_in_stacks(&map, &stacks) {
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
            let _ = writeln!(out, "    {}", finding_line(f));
        }
    }
    for p in &r.panics {
        let at =
            p.at.as_ref()
                .map(|f| format!(" at {} ({}:{})", f.function, f.file, f.line))
                .unwrap_or_default();
        let _ = writeln!(out, "{}{at}", p.message);
        if !p.explanation.is_empty() {
            let _ = writeln!(out, "    {}{}", p.explanation, rule_hint(p.rule));
        }
    }
    for g in &r.leaks {
        let at = g
            .top_frame
            .as_ref()
            .map(|f| format!("{} ({}:{})", f.function, f.file, f.line))
            .unwrap_or_default();
        let _ = writeln!(out, "LEAK SUSPECT {} x [{}] at {at}", g.count, g.state);
        let _ = writeln!(out, "    {}{}", g.reason, rule_hint(g.rule));
        for f in &g.findings {
            let _ = writeln!(out, "    {}", finding_line(f));
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

    #[test]
    fn arguments_parse() {
        let cli = Cli::parse_from([
            "run",
            "--race",
            "--sched",
            "500ms",
            "--scheddetail",
            "--gc",
            "--dump-at",
            "1s,2s",
            "--",
            "go",
            "test",
            "./...",
        ]);
        assert!(cli.run.race && cli.run.scheddetail && cli.run.gc);
        assert_eq!(
            cli.run.dump_at,
            [Duration::from_secs(1), Duration::from_secs(2)]
        );
        assert_eq!(cli.run.command, ["go", "test", "./..."]);
    }
}
