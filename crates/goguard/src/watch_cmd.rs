//! `goguard watch`: poll a live service's goroutines, keep every group's count, and call a
//! leak when a count keeps rising.

use std::collections::HashSet;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use goguard_dump::watch::{GroupSeries, Watch};

use crate::dump_cmd::{emit, read_dump, DumpFormat, EndpointArgs, GroupArgs};
use crate::{pretty, EXIT_CLEAN, EXIT_FINDINGS};

#[derive(clap::Args)]
pub struct WatchArgs {
    /// The service: `http://host:port` (its /debug/pprof is found) or the full URL of a
    /// goroutine profile.
    url: String,
    /// Time between polls (`10s`, `500ms`, `1m`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    interval: Duration,
    /// Stop after this long (`30m`). Without it (or --samples) the watch runs until Ctrl-C.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Stop after this many answered polls.
    #[arg(long, value_name = "N")]
    samples: Option<usize>,
    /// Format of the final report.
    #[arg(long, value_enum, default_value = "text")]
    format: DumpFormat,
    /// Write the final report to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Show at most this many groups in the live table and the text report.
    #[arg(long, default_value = "10")]
    top: usize,
    /// Exit 1 when a group grows, or Go's leak profile marks one leaked (for CI).
    #[arg(long)]
    fail_on_leak: bool,
    #[command(flatten)]
    grouping: GroupArgs,
    #[command(flatten)]
    endpoint: EndpointArgs,
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e}"))?;
    if d.is_zero() {
        return Err(format!("`{s}`: must be more than zero"));
    }
    Ok(d)
}

/// Why the watch ended.
#[derive(Clone, Copy)]
enum Stop {
    Samples,
    Duration,
    Interrupted,
}

impl Stop {
    fn as_str(self) -> &'static str {
        match self {
            Stop::Samples => "samples",
            Stop::Duration => "duration",
            Stop::Interrupted => "interrupted",
        }
    }
}

/// The longest wait between retries while the endpoint is away.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub fn run(args: WatchArgs) -> Result<u8, String> {
    let fetcher = args.endpoint.fetcher()?;
    let options = args.grouping.options();
    // Ctrl-C ends the wait at once and still writes the report.
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .map_err(|e| format!("cannot catch Ctrl-C: {e}"))?;
    let live = std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut watch = Watch::default();
    let mut url = args.url.clone();
    let mut failures = 0u32;
    let mut answered = 0usize;
    let mut alerted: HashSet<String> = HashSet::new();
    let stop = loop {
        let seconds = start.elapsed().as_secs_f64();
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let events = watch.events.len();
        let wait = match read_dump(Path::new(&url), &fetcher, &options, None) {
            Ok(loaded) => {
                // Keep asking the endpoint that answered (no fallback chain every time).
                url = loaded.source;
                watch.record(seconds, unix_ms, loaded.analysis);
                answered += 1;
                failures = 0;
                args.interval
            }
            Err(e) => {
                // A service restarting or a network blip: mark the gap, retry later and
                // later, and keep what was seen.
                eprintln!("goguard: {e} (gap; retrying)");
                watch.record_gap(seconds, unix_ms, e);
                failures += 1;
                let backoff = args.interval.saturating_mul(1 << (failures - 1).min(10));
                backoff.min(MAX_BACKOFF.max(args.interval))
            }
        };
        // The endpoint going away or coming back, the service restarting: said once, when
        // it happens.
        for event in &watch.events[events..] {
            eprintln!("goguard: {event}");
        }
        show_progress(&watch, live, args.top);
        // Each group alerts once per verdict (leaked, then growing), not at every poll.
        for g in watch.alerts() {
            let at = g.group.top_frame.as_ref();
            let id = format!(
                "{} {} {:?}",
                g.trend.growing,
                g.group.state,
                at.map(|f| (&f.function, f.line))
            );
            if alerted.insert(id) {
                eprintln!("goguard: ALERT {}", describe(g));
            }
        }
        if args.samples.is_some_and(|n| answered >= n) {
            break Stop::Samples;
        }
        let wait = match args.duration {
            Some(d) => {
                let left = d.saturating_sub(start.elapsed());
                if left.is_zero() {
                    break Stop::Duration;
                }
                wait.min(left)
            }
            None => wait,
        };
        match stop_rx.recv_timeout(wait) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break Stop::Interrupted,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    };
    if answered == 0 {
        let last = watch
            .samples
            .last()
            .and_then(|s| s.error.clone())
            .unwrap_or_default();
        return Err(format!("{}: no poll was answered ({last})", args.url));
    }
    let report = match args.format {
        DumpFormat::Text => text_report(&watch, &url, stop, args.top),
        DumpFormat::Json => {
            let mut v = serde_json::to_value(&watch).map_err(|e| e.to_string())?;
            v["format"] = "watch".into();
            v["source"] = url.clone().into();
            v["interval_seconds"] = args.interval.as_secs_f64().into();
            v["stopped"] = stop.as_str().into();
            pretty(&v)
        }
        DumpFormat::Html => html_report(&watch, &url),
    };
    emit(&report, args.output.as_deref())?;
    Ok(if args.fail_on_leak && !watch.alerts().is_empty() {
        EXIT_FINDINGS
    } else {
        EXIT_CLEAN
    })
}

/// `[chan send] main.f (file:line)`: a group in one line.
fn describe(g: &GroupSeries) -> String {
    let at = g
        .group
        .top_frame
        .as_ref()
        .map(|f| format!("{} ({}:{})", f.function, f.file, f.line))
        .unwrap_or_default();
    let verdict = if g.trend.growing {
        format!("growing {:+.1}/min", g.trend.per_minute)
    } else {
        "leaked (Go's leak profile)".to_string()
    };
    format!("{verdict}: [{}] {at}", g.group.state)
}

/// Unicode block sparkline of a series; gaps are blank.
fn sparkline(counts: &[Option<usize>]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = counts.iter().flatten().copied().max().unwrap_or(0).max(1);
    counts
        .iter()
        .map(|c| match c {
            Some(c) => BARS[(c * 7).div_ceil(max).min(7)],
            None => ' ',
        })
        .collect()
}

/// The live view: a redrawn table on a terminal, one plain line per poll otherwise.
fn show_progress(watch: &Watch, live: bool, top: usize) {
    let Some(sample) = watch.samples.last() else {
        return;
    };
    let mut err = std::io::stderr().lock();
    if !live {
        let growing: Vec<String> = watch
            .groups
            .iter()
            .filter(|g| g.trend.growing)
            .map(|g| {
                let f = g
                    .group
                    .top_frame
                    .as_ref()
                    .map_or("?", |f| f.function.as_str());
                format!("{f} {:+.1}/min", g.trend.per_minute)
            })
            .collect();
        let total = sample
            .total
            .map_or("gap".to_string(), |t| format!("total={t}"));
        let _ = writeln!(
            err,
            "goguard: sample {} at {:.1}s {total} groups={}{}",
            watch.samples.len(),
            sample.seconds,
            watch.groups.len(),
            if growing.is_empty() {
                String::new()
            } else {
                format!(" growing: {}", growing.join(", "))
            }
        );
        return;
    }
    let _ = write!(err, "\x1b[H\x1b[2J");
    let _ = writeln!(
        err,
        "goguard watch: {} samples, {:.0}s, {} goroutines (Ctrl-C to stop and report)\n",
        watch.samples.len(),
        sample.seconds,
        sample.total.map_or("?".into(), |t| t.to_string())
    );
    let _ = writeln!(
        err,
        "{:>7} {:>9}  {:<20} {:<22} where",
        "count", "/min", "trend", "state"
    );
    for g in watch.ranked().into_iter().take(top) {
        let tail: Vec<Option<usize>> = g.counts.iter().rev().take(20).rev().copied().collect();
        let _ = writeln!(
            err,
            "{:>7} {:>+9.1}  {:<20} {:<22} {}{}",
            g.group.count,
            g.trend.per_minute,
            sparkline(&tail),
            g.group.state,
            g.group
                .top_frame
                .as_ref()
                .map_or("?", |f| f.function.as_str()),
            if g.trend.growing {
                "  GROWING"
            } else if g.group.leaked && g.group.count > 0 {
                "  LEAKED"
            } else {
                ""
            }
        );
    }
}

fn text_report(watch: &Watch, url: &str, stop: Stop, top: usize) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let gaps = watch.samples.iter().filter(|s| s.total.is_none()).count();
    let totals: Vec<usize> = watch.samples.iter().filter_map(|s| s.total).collect();
    let _ = writeln!(
        out,
        "watched {url} for {:.0}s: {} samples ({gaps} gaps), stopped by {}",
        watch.samples.last().map_or(0.0, |s| s.seconds),
        watch.samples.len(),
        stop.as_str()
    );
    let _ = writeln!(
        out,
        "goroutines: {} -> {}",
        totals.first().unwrap_or(&0),
        totals.last().unwrap_or(&0)
    );
    for event in &watch.events {
        let _ = writeln!(out, "{event}");
    }
    let alerts = watch.alerts();
    if alerts.is_empty() {
        let _ = writeln!(
            out,
            "no group grew and none was marked leaked: no leak seen"
        );
    }
    for g in watch.ranked().into_iter().take(top) {
        let counts: Vec<String> = g
            .counts
            .iter()
            .map(|c| c.map_or("-".into(), |c| c.to_string()))
            .collect();
        // A suspect by one dump's heuristics (a count, a long wait) whose trend is flat is
        // not a leak here: a watch lets the trend decide.
        let tag = if g.trend.growing {
            "GROWING"
        } else if g.group.leaked && g.group.count > 0 {
            "LEAKED"
        } else if g.group.suspect {
            "flat (a suspect in a single dump)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "\n{:>6} x [{}] {tag} {:+.1}/min  {}",
            g.group.count,
            g.group.state,
            g.trend.per_minute,
            sparkline(&g.counts)
        );
        if let Some(f) = &g.group.top_frame {
            let _ = writeln!(out, "         at {} ({}:{})", f.function, f.file, f.line);
        }
        let _ = writeln!(out, "         counts: {}", counts.join(" "));
        if g.trend.growing {
            let _ = writeln!(
                out,
                "         rising in a Mann-Kendall test (z = {:.2}, one-sided p < 0.05)",
                g.trend.z
            );
        }
        if !g.group.reason.is_empty() {
            let _ = writeln!(
                out,
                "         {}{}",
                g.group.reason,
                crate::dump_cmd::rule_hint(g.group.rule)
            );
        }
    }
    out
}

fn html_report(watch: &Watch, url: &str) -> String {
    let gaps = watch.samples.iter().filter(|s| s.total.is_none()).count();
    let growing = watch.groups.iter().filter(|g| g.trend.growing).count();
    let rows = watch
        .ranked()
        .into_iter()
        .map(|g| {
            // Gaps are drawn at the last known count.
            let mut last = 0;
            let series = g
                .counts
                .iter()
                .map(|c| {
                    last = c.unwrap_or(last);
                    last
                })
                .collect();
            goguard_dump::html::Row {
                group: &g.group,
                series: Some(series),
                note: g
                    .trend
                    .growing
                    .then(|| format!("GROWING {:+.1}/min", g.trend.per_minute)),
            }
        })
        .collect();
    goguard_dump::html::render(&goguard_dump::html::Page {
        title: format!("goguard watch: {url}"),
        summary: vec![
            ("source".into(), url.to_string()),
            (
                "samples".into(),
                format!("{} ({gaps} gaps)", watch.samples.len()),
            ),
            (
                "duration".into(),
                format!("{:.0}s", watch.samples.last().map_or(0.0, |s| s.seconds)),
            ),
            ("growing groups".into(), growing.to_string()),
        ],
        analysis: watch.last.as_ref(),
        rows,
        totals: Some(
            watch
                .samples
                .iter()
                .filter_map(|s| s.total.map(|t| (format!("+{:.0}s", s.seconds), t)))
                .collect(),
        ),
    })
}
