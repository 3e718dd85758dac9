//! `goguard trace`: read GODEBUG=schedtrace/scheddetail/gctrace output from a log.

use std::fmt::Write as _;
use std::path::PathBuf;

use goguard_trace::analyze::Thresholds;
use goguard_trace::Report;

use crate::dump_cmd::{emit, DumpFormat};
use crate::{pretty, EXIT_CLEAN, EXIT_FINDINGS};

#[derive(clap::Args)]
pub struct TraceArgs {
    /// The log: a file (gzipped or not) or - for standard input. Trace lines may carry log
    /// prefixes and be mixed with the program's own output.
    file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: DumpFormat,
    /// Write the report to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// GC may use this percentage of the CPU before it is an anomaly.
    #[arg(long, default_value = "10", value_name = "PERCENT")]
    gc_cpu_threshold: f64,
    /// Exit 1 when the trace shows an anomaly (for CI).
    #[arg(long)]
    fail_on_anomaly: bool,
}

/// Reads and analyses a trace log.
pub fn read_trace(path: &std::path::Path, thresholds: Thresholds) -> Result<Report, String> {
    use std::io::BufRead;
    let name = path.display().to_string();
    let reader: Box<dyn BufRead> = if name == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
        Box::new(std::io::BufReader::new(f))
    };
    let reader =
        goguard_dump::decompressing(reader).map_err(|e| format!("{name}: cannot read: {e}"))?;
    let trace =
        goguard_trace::parse_trace(reader).map_err(|e| format!("{name}: cannot read: {e}"))?;
    if trace.gc.is_empty() && trace.sched.is_empty() {
        return Err(format!(
            "{name}: no scheduler or GC trace line found (run the program with GODEBUG=schedtrace=1000,gctrace=1)"
        ));
    }
    Ok(goguard_trace::analyze(trace, thresholds))
}

pub fn run(args: TraceArgs) -> Result<u8, String> {
    let thresholds = Thresholds {
        gc_cpu_percent: args.gc_cpu_threshold,
        ..Thresholds::default()
    };
    let report = read_trace(&args.file, thresholds)?;
    let rendered = match args.format {
        DumpFormat::Json => pretty(&serde_json::to_value(&report).map_err(|e| e.to_string())?),
        DumpFormat::Html => {
            goguard_trace::html::render(&report, &format!("goguard trace: {}", args.file.display()))
        }
        DumpFormat::Text => render_text(&report),
    };
    emit(&rendered, args.output.as_deref())?;
    Ok(if args.fail_on_anomaly && !report.anomalies.is_empty() {
        EXIT_FINDINGS
    } else {
        EXIT_CLEAN
    })
}

pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    let g = &r.gc.summary;
    if g.cycles > 0 {
        let _ = writeln!(
            out,
            "GC: {} cycles ({} forced) over {:.2}s, {:.2}/s; {}% of the CPU; pauses {:.2} ms total, {:.3} ms max",
            g.cycles, g.forced, g.span_seconds, g.cycles_per_second, g.cpu_percent, g.pause_ms_total, g.pause_ms_max
        );
        let _ = writeln!(
            out,
            "    live heap {} MB -> {} MB (max {} MB, {:+.1} MB/min)",
            g.live_heap_first_mb,
            g.live_heap_last_mb,
            g.live_heap_max_mb,
            g.live_heap_mb_per_minute
        );
    }
    let s = &r.sched.summary;
    if s.samples > 0 {
        let _ = writeln!(
            out,
            "scheduler: {} samples over {:.2}s, GOMAXPROCS {}; threads {} -> {} (max {}); queued {:.1} mean, {} max",
            s.samples, s.span_seconds, s.gomaxprocs, s.threads_first, s.threads_last, s.threads_max, s.queued_mean, s.queued_max
        );
        if let (Some(first), Some(last)) = (&s.goroutines_first, &s.goroutines_last) {
            let list: Vec<String> = last
                .iter()
                .map(|(k, n)| format!("{k} {} -> {n}", first.get(k).unwrap_or(&0)))
                .collect();
            let _ = writeln!(out, "    goroutines: {}", list.join(", "));
        }
    }
    if r.anomalies.is_empty() {
        let _ = writeln!(out, "no anomaly: the trace looks healthy");
    }
    for a in &r.anomalies {
        let _ = writeln!(
            out,
            "ANOMALY {} (since {:.2}s): {}",
            a.kind, a.since, a.reason
        );
    }
    if r.bad_lines > 0 {
        let _ = writeln!(
            out,
            "({} trace lines could not be read: cut or garbled)",
            r.bad_lines
        );
    }
    out
}
