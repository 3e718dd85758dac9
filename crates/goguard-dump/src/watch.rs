//! Watching a live service: every group's count over a series of dumps, and a trend test
//! that tells a leak (a count that keeps rising) from noise (a pool that breathes).

use std::collections::HashMap;

use serde::Serialize;

use crate::analyze::{Analysis, Group, Key};

/// One poll of the endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since the watch started.
    pub seconds: f64,
    /// Unix time in milliseconds.
    pub unix_ms: u128,
    /// The total goroutine count; `None` when the endpoint did not answer (a gap).
    pub total: Option<usize>,
    /// Why the endpoint did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A group's history.
#[derive(Debug, Clone, Serialize)]
pub struct GroupSeries {
    /// The group as last seen.
    #[serde(flatten)]
    pub group: Group,
    /// Its count at each sample: 0 when the dump did not hold it, `None` in a gap.
    pub counts: Vec<Option<usize>>,
    pub trend: Trend,
}

/// The verdict of the trend test on a count series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Trend {
    /// Mann-Kendall's S: concordant minus discordant pairs.
    pub s: i64,
    /// S normalised: above 1.645 a rise is significant at 95% (one-sided).
    pub z: f64,
    /// Sen's slope: the median rise per minute over all pairs of samples.
    pub per_minute: f64,
    /// A significant, positive trend that added at least [`MIN_GROWTH`] goroutines.
    pub growing: bool,
}

/// Fewer samples than this never make a trend (a test with three points proves nothing).
pub const MIN_SAMPLES: usize = 4;
/// A trend must add at least this many goroutines between the first and last sample.
pub const MIN_GROWTH: usize = 3;
/// The one-sided 95% quantile of the normal distribution.
const Z_95: f64 = 1.645;

/// Mann-Kendall's test with Sen's slope over `(seconds, value)` points, for any series (a
/// goroutine count, a live heap, a thread count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MannKendall {
    /// Concordant minus discordant pairs.
    pub s: i64,
    /// S normalised (with the correction for ties).
    pub z: f64,
    /// Sen's slope: the median change per second over all pairs.
    pub slope_per_second: f64,
}

impl MannKendall {
    pub fn of(points: &[(f64, f64)]) -> MannKendall {
        let n = points.len();
        if n < 2 {
            return MannKendall::default();
        }
        let mut s = 0i64;
        let mut slopes = Vec::with_capacity(n * (n - 1) / 2);
        for i in 0..n {
            for j in i + 1..n {
                let (ti, xi) = points[i];
                let (tj, xj) = points[j];
                s += match xj.partial_cmp(&xi) {
                    Some(std::cmp::Ordering::Greater) => 1,
                    Some(std::cmp::Ordering::Less) => -1,
                    _ => 0,
                };
                if tj > ti {
                    slopes.push((xj - xi) / (tj - ti));
                }
            }
        }
        // Variance of S with the correction for tied values.
        let mut ties: HashMap<u64, u64> = HashMap::new();
        for &(_, x) in points {
            *ties.entry(x.to_bits()).or_default() += 1;
        }
        let nf = n as f64;
        let tie_term: f64 = ties
            .values()
            .map(|&t| {
                let t = t as f64;
                t * (t - 1.0) * (2.0 * t + 5.0)
            })
            .sum();
        let var = (nf * (nf - 1.0) * (2.0 * nf + 5.0) - tie_term) / 18.0;
        let z = if var <= 0.0 || s == 0 {
            0.0
        } else {
            (s - s.signum()) as f64 / var.sqrt()
        };
        slopes.sort_by(f64::total_cmp);
        let slope_per_second = match slopes.len() {
            0 => 0.0,
            k if k % 2 == 1 => slopes[k / 2],
            k => (slopes[k / 2 - 1] + slopes[k / 2]) / 2.0,
        };
        MannKendall {
            s,
            z,
            slope_per_second,
        }
    }

    /// A rise significant at 95% (one-sided) over at least [`MIN_SAMPLES`] points.
    pub fn rising(&self, n: usize) -> bool {
        n >= MIN_SAMPLES && self.z >= Z_95 && self.slope_per_second > 0.0
    }
}

/// The trend test on a goroutine count series (gaps left out): rising, and by at least
/// [`MIN_GROWTH`] goroutines. Robust to noise: it looks at the order of every pair, not at
/// the first and last value.
pub fn trend(points: &[(f64, usize)]) -> Trend {
    let values: Vec<(f64, f64)> = points.iter().map(|&(t, x)| (t, x as f64)).collect();
    let mk = MannKendall::of(&values);
    let (first, last) = match (points.first(), points.last()) {
        (Some(f), Some(l)) => (f.1, l.1),
        _ => (0, 0),
    };
    Trend {
        s: mk.s,
        z: mk.z,
        per_minute: mk.slope_per_second * 60.0,
        growing: mk.rising(points.len()) && last.saturating_sub(first) >= MIN_GROWTH,
    }
}

/// Something that happened to the service during a watch.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Seconds since the watch started, and Unix time in milliseconds.
    pub seconds: f64,
    pub unix_ms: u128,
    pub kind: EventKind,
    /// What was seen: the error, or the goroutine ids that went back.
    pub detail: String,
}

/// What happened to the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The endpoint stopped answering.
    Disappeared,
    /// It answers again.
    Reappeared,
    /// Goroutine ids went back: a new process (ids only grow within one).
    Restarted,
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.kind {
            EventKind::Disappeared => "the endpoint stopped answering",
            EventKind::Reappeared => "the endpoint answers again",
            EventKind::Restarted => "the service restarted",
        };
        write!(f, "at {:.0}s {what}: {}", self.seconds, self.detail)
    }
}

/// Everything a watch has seen.
#[derive(Debug, Default, Serialize)]
pub struct Watch {
    pub samples: Vec<Sample>,
    /// The endpoint going away and coming back, the service restarting, in order.
    pub events: Vec<Event>,
    /// Groups in order of first appearance.
    pub groups: Vec<GroupSeries>,
    #[serde(skip)]
    index: HashMap<Key, usize>,
    /// The last analysis, for its crash, races and suspects.
    #[serde(skip)]
    pub last: Option<Analysis>,
}

impl Watch {
    /// Records a successful poll.
    pub fn record(&mut self, seconds: f64, unix_ms: u128, analysis: Analysis) {
        let at = self.samples.len();
        if let Some(gap) = self.samples.last().filter(|s| s.total.is_none()) {
            let since = self
                .events
                .iter()
                .rev()
                .find(|e| e.kind == EventKind::Disappeared)
                .map_or(gap.seconds, |e| e.seconds);
            self.push_event(
                seconds,
                unix_ms,
                EventKind::Reappeared,
                format!("after {:.0}s away", seconds - since),
            );
        }
        let before = self.last.as_ref().and_then(|a| a.max_id);
        if let (Some(before), Some(now)) = (before, analysis.max_id) {
            if now < before {
                self.push_event(
                    seconds,
                    unix_ms,
                    EventKind::Restarted,
                    format!("goroutine ids went back from {before} to {now}; counts before and after are two processes"),
                );
            }
        }
        self.samples.push(Sample {
            seconds,
            unix_ms,
            total: Some(analysis.total),
            error: None,
        });
        for g in &analysis.groups {
            let i = *self.index.entry(g.key.clone()).or_insert_with(|| {
                self.groups.push(GroupSeries {
                    group: g.clone(),
                    // Not in the earlier dumps: none of its goroutines existed then.
                    counts: self
                        .samples
                        .iter()
                        .take(at)
                        .map(|s| s.total.map(|_| 0))
                        .collect(),
                    trend: Trend::default(),
                });
                self.groups.len() - 1
            });
            let series = &mut self.groups[i];
            series.group = g.clone();
            series.counts.push(Some(g.count));
        }
        // Groups missing from this dump: their goroutines are gone.
        for series in &mut self.groups {
            if series.counts.len() == at {
                series.counts.push(Some(0));
                series.group.count = 0;
            }
        }
        self.last = Some(analysis);
        self.update_trends();
    }

    /// Records a poll the endpoint did not answer: a gap in every series.
    pub fn record_gap(&mut self, seconds: f64, unix_ms: u128, error: String) {
        if self.samples.last().is_none_or(|s| s.total.is_some()) {
            self.push_event(seconds, unix_ms, EventKind::Disappeared, error.clone());
        }
        self.samples.push(Sample {
            seconds,
            unix_ms,
            total: None,
            error: Some(error),
        });
        for series in &mut self.groups {
            series.counts.push(None);
        }
    }

    fn push_event(&mut self, seconds: f64, unix_ms: u128, kind: EventKind, detail: String) {
        self.events.push(Event {
            seconds,
            unix_ms,
            kind,
            detail,
        });
    }

    fn update_trends(&mut self) {
        for series in &mut self.groups {
            let points: Vec<(f64, usize)> = self
                .samples
                .iter()
                .zip(&series.counts)
                .filter_map(|(s, c)| c.map(|c| (s.seconds, c)))
                .collect();
            series.trend = trend(&points);
        }
    }

    /// Groups that grow, or that Go's leak profile marked leaked in the last dump, growing
    /// first. In a watch the trend decides: a flat pool of 50 idle workers is a suspect in a
    /// single dump (the count heuristic) but does not leak.
    pub fn alerts(&self) -> Vec<&GroupSeries> {
        let mut v: Vec<&GroupSeries> = self
            .groups
            .iter()
            .filter(|g| g.trend.growing || (g.group.leaked && g.group.count > 0))
            .collect();
        v.sort_by(|a, b| {
            b.trend
                .growing
                .cmp(&a.trend.growing)
                .then(b.trend.per_minute.total_cmp(&a.trend.per_minute))
                .then(b.group.count.cmp(&a.group.count))
        });
        v
    }

    /// The groups for display: growing first, then by current count.
    pub fn ranked(&self) -> Vec<&GroupSeries> {
        let mut v: Vec<&GroupSeries> = self.groups.iter().collect();
        v.sort_by(|a, b| {
            b.trend
                .growing
                .cmp(&a.trend.growing)
                .then(b.group.suspect.cmp(&a.group.suspect))
                .then(b.group.count.cmp(&a.group.count))
        });
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(counts: &[usize]) -> Vec<(f64, usize)> {
        counts
            .iter()
            .enumerate()
            .map(|(i, &c)| (i as f64 * 10.0, c))
            .collect()
    }

    #[test]
    fn a_steady_rise_is_a_trend() {
        let t = trend(&series(&[6, 8, 10, 12, 14, 16]));
        assert!(t.growing, "{t:?}");
        assert_eq!(t.s, 15);
        assert!((t.per_minute - 12.0).abs() < 1e-9, "{t:?}");
    }

    #[test]
    fn a_noisy_rise_is_still_a_trend() {
        let t = trend(&series(&[10, 12, 11, 14, 13, 16, 15, 18]));
        assert!(t.growing, "{t:?}");
    }

    #[test]
    fn noise_and_flat_lines_are_not() {
        for counts in [
            &[10, 12, 10, 11, 12, 10][..],
            &[7, 7, 7, 7, 7, 7],
            &[5, 9, 5, 9, 5, 9],
            // One jump then flat: a burst, not a leak (last - first is small relative).
            &[10, 10, 10, 10, 10, 11],
        ] {
            let t = trend(&series(counts));
            assert!(!t.growing, "{counts:?}: {t:?}");
        }
    }

    #[test]
    fn too_few_samples_never_trend() {
        assert!(!trend(&series(&[1, 5, 9])).growing);
    }

    fn analysis(dump: &str) -> Analysis {
        crate::analyze(dump).unwrap()
    }

    /// A steady pool of 50 workers blocked on a channel: a suspect by count in one dump,
    /// but its trend is flat, so the watch raises no alert.
    #[test]
    fn a_flat_pool_is_no_alert_and_a_growing_group_is() {
        let pool = |n: usize| -> String {
            (0..n)
                .map(|i| {
                    format!(
                        "goroutine {} [chan receive]:\nmain.worker(...)\n\t/src/main.go:9\ncreated by main.main in goroutine 1\n\t/src/main.go:20 +0x1\n\n",
                        i + 10
                    )
                })
                .collect()
        };
        let mut w = Watch::default();
        for i in 0..6 {
            let a = analysis(&pool(50));
            assert!(a.groups[0].suspect);
            w.record(i as f64 * 10.0, 0, a);
        }
        assert!(w.alerts().is_empty());
        let mut w = Watch::default();
        for i in 0..6 {
            w.record(i as f64 * 10.0, 0, analysis(&pool(50 + 5 * i)));
        }
        assert_eq!(w.alerts().len(), 1);
    }

    /// The endpoint going away and coming back, and goroutine ids going back, are events.
    #[test]
    fn disappearing_and_restarting_are_events() {
        let dump = |first: u64| {
            format!(
                "goroutine 1 [running]:\nmain.main()\n\t/src/main.go:5 +0x1\n\ngoroutine {first} [select]:\nmain.loop()\n\t/src/main.go:9 +0x1\ncreated by main.main in goroutine 1\n\t/src/main.go:6 +0x1\n"
            )
        };
        let mut w = Watch::default();
        w.record(0.0, 0, analysis(&dump(900)));
        w.record_gap(10.0, 0, "connection refused".into());
        w.record_gap(20.0, 0, "connection refused".into());
        w.record(30.0, 0, analysis(&dump(7)));
        let kinds: Vec<EventKind> = w.events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                EventKind::Disappeared,
                EventKind::Reappeared,
                EventKind::Restarted
            ]
        );
        assert_eq!(
            w.events[1].to_string(),
            "at 30s the endpoint answers again: after 20s away"
        );
        assert!(w.events[2].detail.contains("from 900 to 7"));
    }

    #[test]
    fn a_falling_series_is_not_growing() {
        let t = trend(&series(&[20, 18, 15, 12, 9, 5]));
        assert!(!t.growing && t.s < 0 && t.per_minute < 0.0);
    }
}
