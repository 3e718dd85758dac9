//! Summaries of a trace and the verdicts a person would draw from them.

use std::collections::BTreeMap;

use goguard_dump::watch::{trend, MannKendall};
use serde::Serialize;

use crate::parse::{GcCycle, SchedSample, Trace};

/// The thresholds of the verdicts.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// GC may use this share of the CPU since start before it is an anomaly (Go's pacer
    /// aims at 25% during a cycle; over a run a healthy service stays well under 10%).
    pub gc_cpu_percent: f64,
    /// Queued goroutines per P, with no idle P, that count as saturation.
    pub queued_per_p: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            gc_cpu_percent: 10.0,
            queued_per_p: 2.0,
        }
    }
}

/// Something wrong in the trace, with why and since when.
#[derive(Debug, Clone, Serialize)]
pub struct Anomaly {
    /// `heap_growth`, `gc_cpu`, `blocked_goroutines_growing`, `runqueue_saturated`,
    /// `thread_growth`.
    pub kind: &'static str,
    pub reason: String,
    /// Seconds since the program started when it began.
    pub since: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GcSummary {
    pub cycles: usize,
    pub forced: usize,
    /// From the first to the last cycle.
    pub span_seconds: f64,
    pub cycles_per_second: f64,
    /// The runtime's cumulative figure at the last cycle.
    pub cpu_percent: f64,
    pub pause_ms_total: f64,
    pub pause_ms_max: f64,
    pub live_heap_first_mb: f64,
    pub live_heap_last_mb: f64,
    pub live_heap_max_mb: f64,
    /// Sen's slope of the live heap across cycles.
    pub live_heap_mb_per_minute: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SchedSummary {
    pub samples: usize,
    pub span_seconds: f64,
    pub gomaxprocs: u32,
    pub threads_first: u32,
    pub threads_last: u32,
    pub threads_max: u32,
    pub queued_mean: f64,
    pub queued_max: u32,
    /// Share of samples with no idle P and a long run queue.
    pub saturated_share: f64,
    /// Goroutines by state at the first and last scheddetail sample.
    pub goroutines_first: Option<BTreeMap<String, u32>>,
    pub goroutines_last: Option<BTreeMap<String, u32>>,
}

#[derive(Debug, Serialize)]
pub struct GcReport {
    pub cycles: Vec<GcCycle>,
    pub summary: GcSummary,
}

#[derive(Debug, Serialize)]
pub struct SchedReport {
    pub samples: Vec<SchedSample>,
    pub summary: SchedSummary,
}

/// The whole reading: series, summaries and anomalies (none means healthy).
#[derive(Debug, Serialize)]
pub struct Report {
    pub gc: GcReport,
    pub sched: SchedReport,
    pub anomalies: Vec<Anomaly>,
    pub other_lines: usize,
    pub bad_lines: usize,
}

pub fn analyze(trace: Trace, thresholds: Thresholds) -> Report {
    let gc = gc_summary(&trace.gc);
    let sched = sched_summary(&trace.sched, thresholds);
    let mut anomalies = Vec::new();
    heap_growth(&trace.gc, &mut anomalies);
    gc_cpu(&trace.gc, thresholds, &mut anomalies);
    blocked_growth(&trace.sched, &mut anomalies);
    saturation(&trace.sched, &sched, thresholds, &mut anomalies);
    thread_growth(&trace.sched, &mut anomalies);
    anomalies.sort_by(|a, b| a.since.total_cmp(&b.since));
    Report {
        gc: GcReport {
            cycles: trace.gc,
            summary: gc,
        },
        sched: SchedReport {
            samples: trace.sched,
            summary: sched,
        },
        anomalies,
        other_lines: trace.other_lines,
        bad_lines: trace.bad_lines,
    }
}

fn gc_summary(cycles: &[GcCycle]) -> GcSummary {
    let (Some(first), Some(last)) = (cycles.first(), cycles.last()) else {
        return GcSummary::default();
    };
    let span = last.at_seconds - first.at_seconds;
    let live: Vec<(f64, f64)> = cycles
        .iter()
        .map(|c| (c.at_seconds, c.heap_live_mb))
        .collect();
    GcSummary {
        cycles: cycles.len(),
        forced: cycles.iter().filter(|c| c.forced).count(),
        span_seconds: span,
        cycles_per_second: if span > 0.0 {
            (cycles.len() - 1) as f64 / span
        } else {
            0.0
        },
        cpu_percent: last.cpu_percent,
        pause_ms_total: cycles.iter().map(GcCycle::pause_ms).sum(),
        pause_ms_max: cycles.iter().map(GcCycle::pause_ms).fold(0.0, f64::max),
        live_heap_first_mb: first.heap_live_mb,
        live_heap_last_mb: last.heap_live_mb,
        live_heap_max_mb: cycles.iter().map(|c| c.heap_live_mb).fold(0.0, f64::max),
        live_heap_mb_per_minute: MannKendall::of(&live).slope_per_second * 60.0,
    }
}

fn sched_summary(samples: &[SchedSample], t: Thresholds) -> SchedSummary {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return SchedSummary::default();
    };
    let detailed: Vec<&SchedSample> = samples.iter().filter(|s| s.goroutines.is_some()).collect();
    SchedSummary {
        samples: samples.len(),
        span_seconds: (last.at_ms - first.at_ms.min(last.at_ms)) as f64 / 1000.0,
        gomaxprocs: last.gomaxprocs,
        threads_first: first.threads,
        threads_last: last.threads,
        threads_max: samples.iter().map(|s| s.threads).max().unwrap_or(0),
        queued_mean: samples.iter().map(|s| s.queued() as f64).sum::<f64>() / samples.len() as f64,
        queued_max: samples.iter().map(SchedSample::queued).max().unwrap_or(0),
        saturated_share: samples.iter().filter(|s| saturated(s, t)).count() as f64
            / samples.len() as f64,
        goroutines_first: detailed.first().and_then(|s| s.goroutines.clone()),
        goroutines_last: detailed.last().and_then(|s| s.goroutines.clone()),
    }
}

fn saturated(s: &SchedSample, t: Thresholds) -> bool {
    s.idleprocs == 0 && s.queued() as f64 >= t.queued_per_p * s.gomaxprocs.max(1) as f64
}

/// Live heap rising across the whole run and still rising over its second half: memory
/// kept from one collection to the next, not a warm-up that levels off.
fn heap_growth(cycles: &[GcCycle], out: &mut Vec<Anomaly>) {
    let points: Vec<(f64, f64)> = cycles
        .iter()
        .map(|c| (c.at_seconds, c.heap_live_mb))
        .collect();
    if points.len() < 6 {
        return;
    }
    let half = &points[points.len() / 2..];
    let whole = MannKendall::of(&points);
    let late = MannKendall::of(half);
    let (first, last) = (points[0].1, points[points.len() - 1].1);
    if whole.rising(points.len())
        && late.rising(half.len())
        && last >= first * 1.5
        && last - first >= 2.0
    {
        out.push(Anomaly {
            kind: "heap_growth",
            reason: format!(
                "the live heap after each GC rose from {first} MB to {last} MB over {} cycles ({:+.1} MB/min) and was still rising at the end: memory survives collections (leaked goroutines pinning their data, a map or cache that only grows)",
                points.len(),
                whole.slope_per_second * 60.0
            ),
            since: points[0].0,
        });
    }
}

fn gc_cpu(cycles: &[GcCycle], t: Thresholds, out: &mut Vec<Anomaly>) {
    let Some(last) = cycles.last() else {
        return;
    };
    if cycles.len() >= 3 && last.cpu_percent > t.gc_cpu_percent {
        let since = cycles
            .iter()
            .find(|c| c.cpu_percent > t.gc_cpu_percent)
            .map_or(0.0, |c| c.at_seconds);
        out.push(Anomaly {
            kind: "gc_cpu",
            reason: format!(
                "GC used {}% of the CPU since the start (threshold {}%): the program allocates faster than it should; reduce allocations or raise GOGC/GOMEMLIMIT",
                last.cpu_percent, t.gc_cpu_percent
            ),
            since,
        });
    }
}

/// States a goroutine does not choose to leave: everything but running, runnable, syscall
/// and the runtime's own idle helpers.
fn is_blocked(state: &str) -> bool {
    !matches!(state, "running" | "runnable" | "syscall" | "idle")
        && !state.contains("(idle)")
        && !state.starts_with("GC ")
        && !state.contains("finalizer")
        && state != "cleanup wait"
}

fn blocked_growth(samples: &[SchedSample], out: &mut Vec<Anomaly>) {
    let points: Vec<(f64, usize, &BTreeMap<String, u32>)> = samples
        .iter()
        .filter_map(|s| {
            let g = s.goroutines.as_ref()?;
            let blocked = g
                .iter()
                .filter(|(k, _)| is_blocked(k))
                .map(|(_, n)| *n as usize)
                .sum();
            Some((s.at_ms as f64 / 1000.0, blocked, g))
        })
        .collect();
    let series: Vec<(f64, usize)> = points.iter().map(|p| (p.0, p.1)).collect();
    let t = trend(&series);
    if !t.growing {
        return;
    }
    let (first, last) = (points[0].2, points[points.len() - 1].2);
    // Which states grew the most.
    let mut grew: Vec<(String, i64)> = last
        .iter()
        .filter(|(k, _)| is_blocked(k))
        .map(|(k, n)| (k.clone(), *n as i64 - *first.get(k).unwrap_or(&0) as i64))
        .filter(|(_, d)| *d > 0)
        .collect();
    grew.sort_by_key(|g| std::cmp::Reverse(g.1));
    let list: Vec<String> = grew
        .iter()
        .take(3)
        .map(|(k, d)| format!("{k} +{d}"))
        .collect();
    out.push(Anomaly {
        kind: "blocked_goroutines_growing",
        reason: format!(
            "blocked goroutines rose from {} to {} ({:+.1}/min; {}): a goroutine leak; take a dump (goguard dump) to see where they wait",
            series[0].1,
            series[series.len() - 1].1,
            t.per_minute,
            list.join(", ")
        ),
        since: points[0].0,
    });
}

fn saturation(
    samples: &[SchedSample],
    summary: &SchedSummary,
    t: Thresholds,
    out: &mut Vec<Anomaly>,
) {
    if samples.len() >= 3 && summary.saturated_share >= 0.5 {
        let since = samples
            .iter()
            .find(|s| saturated(s, t))
            .map_or(0.0, |s| s.at_ms as f64 / 1000.0);
        out.push(Anomaly {
            kind: "runqueue_saturated",
            reason: format!(
                "in {:.0}% of samples no P was idle and {} or more goroutines per P waited to run (up to {} queued, GOMAXPROCS={}): more runnable work than CPUs; the latency you see is queueing",
                summary.saturated_share * 100.0,
                t.queued_per_p,
                summary.queued_max,
                summary.gomaxprocs
            ),
            since,
        });
    }
}

fn thread_growth(samples: &[SchedSample], out: &mut Vec<Anomaly>) {
    let points: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| (s.at_ms as f64 / 1000.0, s.threads as f64))
        .collect();
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return;
    };
    let mk = MannKendall::of(&points);
    if mk.rising(points.len())
        && last.threads >= first.threads * 2
        && last.threads - first.threads >= 10
    {
        out.push(Anomaly {
            kind: "thread_growth",
            reason: format!(
                "OS threads grew from {} to {}: goroutines blocked in system calls or cgo each hold a thread, or LockOSThread without UnlockOSThread",
                first.threads, last.threads
            ),
            since: points[0].0,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cycle(at: f64, live: f64, cpu: f64) -> GcCycle {
        GcCycle {
            at_seconds: at,
            heap_live_mb: live,
            cpu_percent: cpu,
            clock_ms: vec![0.1, 1.0, 0.1],
            goal_mb: live * 2.0,
            ..GcCycle::default()
        }
    }

    fn kinds(r: &Report) -> Vec<&str> {
        r.anomalies.iter().map(|a| a.kind).collect()
    }

    #[test]
    fn a_steadily_growing_heap_is_an_anomaly_and_a_plateau_is_not() {
        let growing: Vec<GcCycle> = (0..10)
            .map(|i| cycle(i as f64, 4.0 + 3.0 * i as f64, 2.0))
            .collect();
        let r = analyze(
            Trace {
                gc: growing,
                ..Trace::default()
            },
            Thresholds::default(),
        );
        assert_eq!(kinds(&r), ["heap_growth"]);
        // Warm-up then flat: rising overall, not in the second half.
        let plateau: Vec<GcCycle> = [4.0, 8.0, 12.0, 15.0, 15.0, 14.0, 15.0, 15.0, 14.0, 15.0]
            .iter()
            .enumerate()
            .map(|(i, &l)| cycle(i as f64, l, 2.0))
            .collect();
        let r = analyze(
            Trace {
                gc: plateau,
                ..Trace::default()
            },
            Thresholds::default(),
        );
        assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
    }

    #[test]
    fn gc_cpu_over_the_threshold() {
        let cycles: Vec<GcCycle> = (0..4)
            .map(|i| cycle(i as f64, 5.0, 8.0 + 2.0 * i as f64))
            .collect();
        let r = analyze(
            Trace {
                gc: cycles,
                ..Trace::default()
            },
            Thresholds::default(),
        );
        assert_eq!(kinds(&r), ["gc_cpu"]);
        assert_eq!(r.anomalies[0].since, 2.0);
    }

    #[test]
    fn saturated_run_queues() {
        let s = |at: u64, idle: u32, q: u32| SchedSample {
            at_ms: at,
            gomaxprocs: 2,
            idleprocs: idle,
            runqueue: q,
            ..SchedSample::default()
        };
        let r = analyze(
            Trace {
                sched: vec![s(0, 1, 0), s(1000, 0, 9), s(2000, 0, 12), s(3000, 0, 7)],
                ..Trace::default()
            },
            Thresholds::default(),
        );
        assert_eq!(kinds(&r), ["runqueue_saturated"]);
        assert_eq!(r.anomalies[0].since, 1.0);
    }
}
