//! The trace report as one self-contained page: summaries, anomalies, and charts of the
//! heap, GC pauses and CPU, goroutines by state and run queues.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use goguard_dump::html::{escape, page_start, xy_chart, Series};

use crate::analyze::Report;

const COLORS: &[&str] = &[
    "#c33", "#36c", "#393", "#c80", "#939", "#088", "#666", "#a52",
];

pub fn render(report: &Report, title: &str) -> String {
    let mut out = page_start(title);
    if report.anomalies.is_empty() {
        out.push_str(
            "<p class=\"healthy\" id=\"verdict\">No anomaly: the trace looks healthy.</p>\n",
        );
    } else {
        out.push_str("<section class=\"crash\" id=\"verdict\"><h2>Anomalies</h2><ul>");
        for a in &report.anomalies {
            let _ = write!(
                out,
                "<li><b>{}</b> since {:.2}s: {}</li>",
                a.kind,
                a.since,
                escape(&a.reason)
            );
        }
        out.push_str("</ul></section>\n");
    }
    let g = &report.gc.summary;
    let s = &report.sched.summary;
    let _ = write!(
        out,
        "<dl class=\"summary\"><dt>GC cycles</dt><dd>{} ({} forced, {:.2}/s)</dd>\
         <dt>GC CPU</dt><dd>{}%</dd><dt>pauses</dt><dd>{:.2} ms total, {:.3} ms max</dd>\
         <dt>live heap</dt><dd>{} MB -> {} MB (max {} MB, {:+.1} MB/min)</dd>\
         <dt>scheduler samples</dt><dd>{} (GOMAXPROCS {})</dd>\
         <dt>threads</dt><dd>{} -> {} (max {})</dd>\
         <dt>queued goroutines</dt><dd>{:.1} mean, {} max</dd></dl>",
        g.cycles,
        g.forced,
        g.cycles_per_second,
        g.cpu_percent,
        g.pause_ms_total,
        g.pause_ms_max,
        g.live_heap_first_mb,
        g.live_heap_last_mb,
        g.live_heap_max_mb,
        g.live_heap_mb_per_minute,
        s.samples,
        s.gomaxprocs,
        s.threads_first,
        s.threads_last,
        s.threads_max,
        s.queued_mean,
        s.queued_max
    );
    out.push('\n');
    let cycles = &report.gc.cycles;
    if !cycles.is_empty() {
        out.push_str("<h2>Garbage collector</h2>\n");
        let series =
            |name: &'static str, color: &'static str, f: fn(&crate::GcCycle) -> f64| Series {
                name,
                color,
                points: cycles.iter().map(|c| (c.at_seconds, f(c))).collect(),
            };
        out.push_str(&xy_chart(
            "heap after GC (live) and the next goal",
            "s",
            "MB",
            &[
                series("live", "#c33", |c| c.heap_live_mb),
                series("goal", "#36c", |c| c.goal_mb),
                series("peak", "#999", |c| c.heap_peak_mb),
            ],
        ));
        out.push_str(&xy_chart(
            "stop-the-world pause per cycle",
            "s",
            "ms",
            &[series("pause", "#c80", crate::GcCycle::pause_ms)],
        ));
        out.push_str(&xy_chart(
            "GC share of CPU since start",
            "s",
            "%",
            &[series("GC CPU", "#939", |c| c.cpu_percent)],
        ));
    }
    let samples = &report.sched.samples;
    if !samples.is_empty() {
        out.push_str("<h2>Scheduler</h2>\n");
        let t = |ms: u64| ms as f64 / 1000.0;
        out.push_str(&xy_chart(
            "run queues (global + local) and threads",
            "s",
            "",
            &[
                Series {
                    name: "queued",
                    color: "#c33",
                    points: samples
                        .iter()
                        .map(|s| (t(s.at_ms), s.queued() as f64))
                        .collect(),
                },
                Series {
                    name: "threads",
                    color: "#36c",
                    points: samples
                        .iter()
                        .map(|s| (t(s.at_ms), s.threads as f64))
                        .collect(),
                },
                Series {
                    name: "idle Ps",
                    color: "#393",
                    points: samples
                        .iter()
                        .map(|s| (t(s.at_ms), s.idleprocs as f64))
                        .collect(),
                },
            ],
        ));
        let states: BTreeSet<&String> = samples
            .iter()
            .filter_map(|s| s.goroutines.as_ref())
            .flat_map(|g| g.keys())
            .collect();
        if !states.is_empty() {
            let series: Vec<Series> = states
                .iter()
                .enumerate()
                .map(|(i, state)| Series {
                    name: state.as_str(),
                    color: COLORS[i % COLORS.len()],
                    points: samples
                        .iter()
                        .filter_map(|s| {
                            let g = s.goroutines.as_ref()?;
                            Some((t(s.at_ms), *g.get(*state).unwrap_or(&0) as f64))
                        })
                        .collect(),
                })
                .collect();
            out.push_str(&xy_chart(
                "goroutines by state (scheddetail)",
                "s",
                "",
                &series,
            ));
        }
    }
    out.push_str("<script>document.body.dataset.ready = '1';</script></body></html>\n");
    out
}
