//! The decision, as a pure function of the figures and time: the reference's tree gives a
//! recommendation, and the stabilisation of Kubernetes' HPA decides what is done with it.
//!
//! - **Tolerance**: a figure within `tolerance` of its threshold (0.1: 67.5%..82.5% around
//!   75%) is at the threshold and changes nothing, as the HPA ignores a ratio within 10% of
//!   its target.
//! - **Windows**: every evaluation records its recommendation. A scale-down takes the
//!   highest recommendation over `scale_down.window` (5 min), a scale-up the lowest over
//!   `scale_up.window` (0: at once), so that one quiet sample after a busy minute does not
//!   remove what the minute needed.
//! - **Policies**: at most so many instances, percent or cores of change per period,
//!   counted from the size at the period's start (`select = "max"`: the most permissive
//!   policy applies, as in the HPA).
//! - **Cooldown**: no action within `cooldown` of the last one (the verification window by
//!   default), so that an action is judged before the next.

use std::collections::VecDeque;

use serde::Serialize;

use crate::config::{Config, Rules};
use crate::num;
use crate::reading::Reading;

/// A service's size: instances and cores per instance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Size {
    pub replicas: u32,
    pub cores: f64,
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} x {} cores", self.replicas, num(self.cores))
    }
}

/// What is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Add instances (the pool is saturated: more connections are needed).
    Out,
    /// Add cores per instance.
    Up,
    /// Remove instances (`[scale_in]`, not in the reference).
    In,
    /// Keep the size.
    None,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Out => "out",
            Action::Up => "up",
            Action::In => "in",
            Action::None => "none",
        }
    }
}

/// Where a figure stands against its threshold, with the tolerance.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    Above,
    Within,
    Below,
}

fn side(x: f64, threshold: f64, tolerance: f64) -> Side {
    if x > threshold * (1.0 + tolerance) {
        Side::Above
    } else if x < threshold * (1.0 - tolerance) {
        Side::Below
    } else if tolerance == 0.0 && x > threshold {
        Side::Above
    } else {
        Side::Within
    }
}

/// The tree's answer for one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeAnswer {
    pub action: Action,
    pub reason: String,
    /// The inputs the tree needed and did not get (no decision then).
    pub missing: Vec<String>,
}

/// The reference's tree: CPU > `cpu_above` and queue > `queue_above` -> pool use >
/// `pool_above` ? out : up; otherwise keep (or scale in, with `[scale_in]`). CPU and queue
/// (and the scale-in figures) are compared with the tolerance.
pub fn tree(cfg: &Config, cpu: &Reading, queue: &Reading, pool: &Reading) -> TreeAnswer {
    let t = &cfg.tree;
    let tol = t.tolerance;
    let mut missing = Vec::new();
    for (name, r) in [("cpu", cpu), ("queue", queue)] {
        if let Some(why) = r.why() {
            missing.push(format!("{name}: {why}"));
        }
    }
    let (Some(c), Some(q)) = (cpu.value(), queue.value()) else {
        return TreeAnswer {
            action: Action::None,
            reason: format!("no decision: {}", missing.join("; ")),
            missing,
        };
    };
    let cs = side(c, t.cpu_above, tol);
    let qs = side(q, t.queue_above, tol);
    let pct = |x: f64| format!("{}%", num(x * 100.0));
    if cs == Side::Above && qs == Side::Above {
        let head = format!(
            "cpu {} > {} and queue {} > {}",
            pct(c),
            pct(t.cpu_above),
            num(q),
            num(t.queue_above)
        );
        let Some(p) = pool.value() else {
            let why = format!("pool: {}", pool.why().unwrap_or(""));
            return TreeAnswer {
                action: Action::None,
                reason: format!("{head}, but no decision: {why}"),
                missing: vec![why],
            };
        };
        // The branch between two actions is the plain comparison: the tolerance is about
        // acting on noise, and either branch acts.
        let out = p > t.pool_above;
        let (action, what) = if out {
            (
                Action::Out,
                format!(
                    "pool {} > {}: scale out by {}",
                    pct(p),
                    pct(t.pool_above),
                    t.out_by
                ),
            )
        } else {
            (
                Action::Up,
                format!(
                    "pool {} <= {}: scale up by {} core(s)",
                    pct(p),
                    pct(t.pool_above),
                    num(t.up_by)
                ),
            )
        };
        return TreeAnswer {
            action,
            reason: format!("{head}; {what}"),
            missing: vec![],
        };
    }
    if let Some(si) = &cfg.scale_in {
        if side(c, si.cpu_below, tol) == Side::Below && side(q, si.queue_below, tol) == Side::Below
        {
            return TreeAnswer {
                action: Action::In,
                reason: format!(
                    "cpu {} < {} and queue {} < {}: scale in by {}",
                    pct(c),
                    pct(si.cpu_below),
                    num(q),
                    num(si.queue_below),
                    si.by
                ),
                missing: vec![],
            };
        }
    }
    let why = |name: &str, x: String, s: Side, th: String| match s {
        Side::Above => None,
        Side::Within => Some(format!("{name} {x} is within {} of {th}", pct(tol))),
        Side::Below => Some(format!("{name} {x} <= {th}")),
    };
    let reasons: Vec<String> = [
        why("cpu", pct(c), cs, pct(t.cpu_above)),
        why("queue", num(q), qs, num(t.queue_above)),
    ]
    .into_iter()
    .flatten()
    .collect();
    TreeAnswer {
        action: Action::None,
        reason: format!("keep: {}", reasons.join(" and ")),
        missing: vec![],
    }
}

/// The size the tree's action asks for, from `current`.
pub fn recommend(cfg: &Config, action: Action, current: Size) -> Size {
    match action {
        Action::Out => Size {
            replicas: current.replicas.saturating_add(cfg.tree.out_by),
            ..current
        },
        Action::Up => Size {
            cores: current.cores + cfg.tree.up_by,
            ..current
        },
        Action::In => Size {
            replicas: current
                .replicas
                .saturating_sub(cfg.scale_in.as_ref().map_or(0, |s| s.by)),
            ..current
        },
        Action::None => current,
    }
}

/// The stabilisation's memory: recent recommendations, recent changes, the last action.
#[derive(Debug, Default, Clone)]
pub struct Stabiliser {
    /// (time in seconds, recommended size), oldest first.
    recommendations: VecDeque<(f64, Size)>,
    /// (time, change in replicas, change in cores) of each action.
    changes: VecDeque<(f64, i64, f64)>,
    last_action: Option<f64>,
}

/// What the stabilisation made of a recommendation.
#[derive(Debug, Clone, PartialEq)]
pub struct Stabilised {
    pub desired: Size,
    /// Each rule that changed the recommendation, in words.
    pub by: Vec<String>,
}

impl Stabiliser {
    /// The size to go to at `now` (seconds), from `current` and the tree's `recommended`.
    pub fn step(&mut self, cfg: &Config, now: f64, current: Size, recommended: Size) -> Stabilised {
        let mut by = Vec::new();
        let s = &cfg.service;
        let b = &cfg.behavior;
        // Bounds.
        let mut rec = Size {
            replicas: recommended.replicas.clamp(s.min_replicas, s.max_replicas),
            cores: recommended.cores.clamp(s.min_cores, s.max_cores),
        };
        if rec.replicas != recommended.replicas {
            by.push(format!(
                "bounds: instances stay within {}..{}",
                s.min_replicas, s.max_replicas
            ));
        }
        if rec.cores != recommended.cores {
            by.push(format!(
                "bounds: cores stay within {}..{}",
                num(s.min_cores),
                num(s.max_cores)
            ));
        }
        if b.scale_up.select == "disabled" {
            rec.replicas = rec.replicas.min(current.replicas);
            rec.cores = rec.cores.min(current.cores);
        }
        if b.scale_down.select == "disabled" {
            rec.replicas = rec.replicas.max(current.replicas);
            rec.cores = rec.cores.max(current.cores);
        }
        // Windows: the lowest recommendation over the scale-up window, the highest over the
        // scale-down window.
        let keep = b.scale_up.window.max(b.scale_down.window).as_secs_f64();
        while self
            .recommendations
            .front()
            .is_some_and(|(t, _)| *t < now - keep)
        {
            self.recommendations.pop_front();
        }
        self.recommendations.push_back((now, rec));
        let over = |window: f64| {
            self.recommendations
                .iter()
                .filter(move |(t, _)| *t >= now - window)
                .map(|(_, r)| *r)
        };
        let up_w = b.scale_up.window.as_secs_f64();
        let down_w = b.scale_down.window.as_secs_f64();
        let up_r = over(up_w).map(|r| r.replicas).min().unwrap_or(rec.replicas);
        let down_r = over(down_w)
            .map(|r| r.replicas)
            .max()
            .unwrap_or(rec.replicas);
        let up_c = over(up_w).map(|r| r.cores).fold(f64::INFINITY, f64::min);
        let down_c = over(down_w)
            .map(|r| r.cores)
            .fold(f64::NEG_INFINITY, f64::max);
        let mut desired = current;
        if current.replicas < up_r {
            desired.replicas = up_r;
        } else if current.replicas > down_r {
            desired.replicas = down_r;
        }
        if current.cores < up_c {
            desired.cores = up_c;
        } else if current.cores > down_c {
            desired.cores = down_c;
        }
        let secs = |w: f64| humantime::format_duration(std::time::Duration::from_secs_f64(w));
        if rec.replicas > current.replicas && desired.replicas < rec.replicas {
            by.push(format!(
                "scale-up window: the lowest recommendation over {} is {} instance(s)",
                secs(up_w),
                desired.replicas
            ));
        }
        if rec.replicas < current.replicas && desired.replicas > rec.replicas {
            by.push(format!(
                "scale-down window: the highest recommendation over {} is {} instance(s)",
                secs(down_w),
                desired.replicas
            ));
        }
        // Policies: change per period.
        let replicas_limited = self.limit_replicas(b, now, current.replicas, desired.replicas);
        if replicas_limited.0 != desired.replicas {
            by.push(replicas_limited.1);
            desired.replicas = replicas_limited.0;
        }
        let cores_limited = self.limit_cores(b, now, current.cores, desired.cores);
        if cores_limited.0 != desired.cores {
            by.push(cores_limited.1);
            desired.cores = cores_limited.0;
        }
        // Cooldown.
        if desired != current {
            if let Some(last) = self.last_action {
                let cooldown = cfg.cooldown().as_secs_f64();
                if now - last < cooldown {
                    by.push(format!(
                        "cooldown: the last action was {} ago (cooldown {})",
                        secs(now - last),
                        secs(cooldown)
                    ));
                    desired = current;
                }
            }
        }
        Stabilised { desired, by }
    }

    /// Records an action taken at `now` (the hook succeeded, or a dry run).
    pub fn acted(&mut self, now: f64, from: Size, to: Size) {
        self.changes.push_back((
            now,
            i64::from(to.replicas) - i64::from(from.replicas),
            to.cores - from.cores,
        ));
        self.last_action = Some(now);
        // Changes older than the longest period no longer limit anything.
        while self.changes.len() > 1000 {
            self.changes.pop_front();
        }
    }

    /// Seconds since the last action, if any.
    pub fn last_action(&self) -> Option<f64> {
        self.last_action
    }

    fn changed_within(&self, now: f64, period: f64) -> (i64, i64, f64, f64) {
        let mut added = 0;
        let mut removed = 0;
        let mut cores_added = 0.0;
        let mut cores_removed = 0.0;
        for &(t, dr, dc) in &self.changes {
            if t > now - period {
                if dr > 0 {
                    added += dr;
                } else {
                    removed -= dr;
                }
                if dc > 0.0 {
                    cores_added += dc;
                } else {
                    cores_removed -= dc;
                }
            }
        }
        (added, removed, cores_added, cores_removed)
    }

    fn limit_replicas(
        &self,
        b: &crate::config::Behavior,
        now: f64,
        current: u32,
        desired: u32,
    ) -> (u32, String) {
        let cur = i64::from(current);
        let want = i64::from(desired);
        if want > cur {
            let Some(limit) = self.policy_limit(&b.scale_up, now, cur, true) else {
                return (desired, String::new());
            };
            if want > limit.0 {
                let to = limit.0.max(cur) as u32;
                return (
                    to,
                    format!("scale-up policy: {} (to {to} instance(s))", limit.1),
                );
            }
        } else if want < cur {
            let Some(limit) = self.policy_limit(&b.scale_down, now, cur, false) else {
                return (desired, String::new());
            };
            if want < limit.0 {
                let to = limit.0.min(cur) as u32;
                return (
                    to,
                    format!("scale-down policy: {} (to {to} instance(s))", limit.1),
                );
            }
        }
        (desired, String::new())
    }

    /// The bound the policies of one direction set on instances, with the policy in words;
    /// None when no instance policy is set.
    fn policy_limit(&self, r: &Rules, now: f64, cur: i64, up: bool) -> Option<(i64, String)> {
        let mut limits: Vec<(i64, String)> = Vec::new();
        for p in &r.policies {
            let period = p.period.as_secs_f64();
            let (added, removed, _, _) = self.changed_within(now, period);
            // As the HPA: the size at the period's start, from both directions' changes.
            let start = cur - added + removed;
            let per = humantime::format_duration(p.period);
            let limit = match (p.kind.as_str(), up) {
                ("instances", true) => start + p.value as i64,
                ("percent", true) => (start as f64 * (1.0 + p.value / 100.0)).ceil() as i64,
                ("instances", false) => start - p.value as i64,
                ("percent", false) => (start as f64 * (1.0 - p.value / 100.0)).floor() as i64,
                _ => continue,
            };
            let unit = if p.kind == "percent" {
                "%"
            } else {
                " instance(s)"
            };
            limits.push((limit, format!("at most {}{} per {per}", num(p.value), unit)));
        }
        let most_change = (r.select == "max") == up;
        let pick = if most_change {
            limits.into_iter().max_by_key(|l| l.0)
        } else {
            limits.into_iter().min_by_key(|l| l.0)
        }?;
        Some(pick)
    }

    fn limit_cores(
        &self,
        b: &crate::config::Behavior,
        now: f64,
        current: f64,
        desired: f64,
    ) -> (f64, String) {
        let up = desired > current;
        if desired == current {
            return (desired, String::new());
        }
        let r = if up { &b.scale_up } else { &b.scale_down };
        let mut limits: Vec<(f64, String)> = Vec::new();
        for p in r.policies.iter().filter(|p| p.kind == "cores") {
            let (_, _, added, removed) = self.changed_within(now, p.period.as_secs_f64());
            let start = current - added + removed;
            let limit = if up { start + p.value } else { start - p.value };
            limits.push((
                limit,
                format!(
                    "at most {} core(s) per {}",
                    num(p.value),
                    humantime::format_duration(p.period)
                ),
            ));
        }
        let most_change = (r.select == "max") == up;
        let pick = if most_change {
            limits.into_iter().max_by(|a, b| a.0.total_cmp(&b.0))
        } else {
            limits.into_iter().min_by(|a, b| a.0.total_cmp(&b.0))
        };
        let Some((limit, words)) = pick else {
            return (desired, String::new());
        };
        let dir = if up { "scale-up" } else { "scale-down" };
        if up && desired > limit {
            let to = limit.max(current);
            (to, format!("{dir} policy: {words} (to {} cores)", num(to)))
        } else if !up && desired < limit {
            let to = limit.min(current);
            (to, format!("{dir} policy: {words} (to {} cores)", num(to)))
        } else {
            (desired, String::new())
        }
    }
}

/// The action that takes `from` to `to`.
pub fn action_between(from: Size, to: Size) -> Action {
    if to.replicas > from.replicas {
        Action::Out
    } else if to.replicas < from.replicas {
        Action::In
    } else if to.cores > from.cores {
        Action::Up
    } else {
        Action::None
    }
}

/// The whole decision at `now`: the tree, then the stabilisation. Pure apart from the
/// stabiliser's memory, so a recorded series can be replayed (see the tests).
#[derive(Debug, Default, Clone)]
pub struct Decider {
    pub stabiliser: Stabiliser,
}

/// What the decider concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub tree: TreeAnswer,
    pub recommended: Size,
    pub desired: Size,
    pub action: Action,
    pub stabilised_by: Vec<String>,
}

impl Decider {
    pub fn decide(
        &mut self,
        cfg: &Config,
        now: f64,
        current: Size,
        cpu: &Reading,
        queue: &Reading,
        pool: &Reading,
    ) -> Plan {
        let answer = tree(cfg, cpu, queue, pool);
        if !answer.missing.is_empty() {
            // No figures, no recommendation: the windows only hold what was measured.
            return Plan {
                tree: answer,
                recommended: current,
                desired: current,
                action: Action::None,
                stabilised_by: vec![],
            };
        }
        let recommended = recommend(cfg, answer.action, current);
        let st = self.stabiliser.step(cfg, now, current, recommended);
        Plan {
            action: action_between(current, st.desired),
            tree: answer,
            recommended,
            desired: st.desired,
            stabilised_by: st.by,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn config(extra: &str) -> Config {
        let text = format!(
            r#"
every = "15s"
[prometheus]
url = "http://127.0.0.1:9090"
[inputs]
cpu = {{ query = "cpu" }}
queue = {{ query = "queue" }}
pool = {{ query = "pool" }}
p95 = {{ query = "p95" }}
{extra}
"#
        );
        parse(&text, "scale.toml").unwrap()
    }

    fn v(x: f64) -> Reading {
        Reading::Value(x)
    }

    const START: Size = Size {
        replicas: 3,
        cores: 2.0,
    };

    #[test]
    fn the_reference_tree() {
        let c = config("[tree]\ntolerance = 0\n");
        let t = |cpu, q, p| tree(&c, &v(cpu), &v(q), &v(p));
        assert_eq!(t(0.8, 250.0, 0.95).action, Action::Out);
        assert_eq!(t(0.8, 250.0, 0.5).action, Action::Up);
        assert_eq!(t(0.8, 150.0, 0.95).action, Action::None);
        assert_eq!(t(0.5, 250.0, 0.95).action, Action::None);
        // Exactly at the threshold is not over it.
        assert_eq!(t(0.75, 250.0, 0.95).action, Action::None);
        assert_eq!(
            t(0.8, 250.0, 0.95).reason,
            "cpu 80% > 75% and queue 250 > 200; pool 95% > 90%: scale out by 2"
        );
        assert_eq!(
            t(0.5, 150.0, 0.95).reason,
            "keep: cpu 50% <= 75% and queue 150 <= 200"
        );
        assert_eq!(recommend(&c, Action::Out, START).replicas, 5);
        assert_eq!(recommend(&c, Action::Up, START).cores, 3.0);
    }

    #[test]
    fn the_tolerance_keeps_figures_near_a_threshold() {
        let c = config("");
        let t = |cpu, q, p| tree(&c, &v(cpu), &v(q), &v(p));
        // 80% is within 10% of 75% (67.5..82.5): keep.
        let a = t(0.8, 300.0, 0.95);
        assert_eq!(a.action, Action::None);
        assert_eq!(a.reason, "keep: cpu 80% is within 10% of 75%");
        assert_eq!(t(0.85, 300.0, 0.95).action, Action::Out);
        // 210 queued is within 10% of 200.
        assert_eq!(
            t(0.85, 210.0, 0.95).reason,
            "keep: queue 210 is within 10% of 200"
        );
        // The branch between out and up is the plain comparison.
        assert_eq!(t(0.9, 300.0, 0.92).action, Action::Out);
        assert_eq!(t(0.9, 300.0, 0.9).action, Action::Up);
    }

    #[test]
    fn missing_figures_make_no_decision() {
        let c = config("");
        let a = tree(
            &c,
            &Reading::Failed(
                "prometheus http://127.0.0.1:1/api/v1/query?query=cpu: connection refused".into(),
            ),
            &v(300.0),
            &v(0.5),
        );
        assert_eq!(a.action, Action::None);
        assert_eq!(a.missing.len(), 1);
        assert!(
            a.reason.starts_with("no decision: cpu: prometheus"),
            "{}",
            a.reason
        );
        // The pool is only needed when the first test holds.
        let a = tree(&c, &v(0.2), &v(10.0), &Reading::NoData("NaN".into()));
        assert!(a.missing.is_empty());
        let a = tree(&c, &v(0.9), &v(300.0), &Reading::NoData("NaN".into()));
        assert_eq!(a.missing, ["pool: NaN"]);
        assert_eq!(
            a.reason,
            "cpu 90% > 75% and queue 300 > 200, but no decision: pool: NaN"
        );
    }

    /// Replays a series of (cpu, queue, pool) sampled every `every` seconds, acting on each
    /// decision at once, and returns the actions taken with their times.
    fn replay(c: &Config, series: &[(f64, f64, f64)]) -> Vec<(f64, Action, Size)> {
        let mut d = Decider::default();
        let mut size = START;
        let mut acted = Vec::new();
        for (i, &(cpu, q, p)) in series.iter().enumerate() {
            let now = i as f64 * c.every.as_secs_f64();
            let plan = d.decide(c, now, size, &v(cpu), &v(q), &v(p));
            if plan.action != Action::None {
                d.stabiliser.acted(now, size, plan.desired);
                size = plan.desired;
                acted.push((now, plan.action, size));
            }
        }
        acted
    }

    /// A load that wobbles across every threshold each sample.
    fn noisy(n: usize, seed: u64) -> Vec<(f64, f64, f64)> {
        let mut x = seed;
        let mut rnd = move || {
            // xorshift: the same noise each run.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 10_000) as f64 / 10_000.0
        };
        (0..n)
            .map(|_| (0.4 + 0.55 * rnd(), 80.0 + 220.0 * rnd(), 0.8 + 0.2 * rnd()))
            .collect()
    }

    #[test]
    fn a_noisy_load_does_not_flap() {
        let c = config("[scale_in]\ncpu_below = 0.6\nqueue_below = 150\n[service]\nreplicas = 3\ncores = 2\nmax_replicas = 40\nmax_cores = 16\n");
        // An hour of 15 s samples.
        let series = noisy(240, 0x9e3779b97f4a7c15);
        let acted = replay(&c, &series);
        // Never two actions within the cooldown (60 s).
        for w in acted.windows(2) {
            assert!(w[1].0 - w[0].0 >= 60.0, "{acted:?}");
        }
        // No instance count goes up and then down (or down then up) within the 5 min
        // scale-down window.
        let replica_moves: Vec<_> = acted
            .iter()
            .filter(|a| matches!(a.1, Action::Out | Action::In))
            .collect();
        for w in replica_moves.windows(2) {
            if w[0].1 != w[1].1 {
                assert!(w[1].0 - w[0].0 >= 300.0, "flapped: {acted:?}");
            }
        }
        // Without the stabilisation, the same series flaps.
        let bare = config("[tree]\ntolerance = 0\n[scale_in]\ncpu_below = 0.6\nqueue_below = 150\n[service]\nreplicas = 3\ncores = 2\nmax_replicas = 40\nmax_cores = 16\n[behavior]\ncooldown = \"0s\"\n[behavior.scale_down]\nwindow = \"0s\"\n");
        let flaps = replay(&bare, &series);
        let reversals = flaps
            .iter()
            .filter(|a| matches!(a.1, Action::Out | Action::In))
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0].1 != w[1].1)
            .count();
        assert!(
            reversals > 10,
            "{reversals} reversals without stabilisation"
        );
        let stable_reversals = replica_moves
            .windows(2)
            .filter(|w| w[0].1 != w[1].1)
            .count();
        assert!(
            stable_reversals * 5 < reversals,
            "{stable_reversals} vs {reversals}"
        );
    }

    #[test]
    fn scale_down_takes_the_highest_recommendation_over_its_window() {
        let c = config("[scale_in]\ncpu_below = 0.3\nqueue_below = 10\n[service]\nreplicas = 6\nmax_replicas = 10\n[behavior]\ncooldown = \"0s\"\n[behavior.scale_down]\nwindow = \"1m\"\n");
        let mut d = Decider::default();
        let mut size = Size {
            replicas: 6,
            cores: 1.0,
        };
        // One busy-ish sample (keep), then quiet ones: the keep recommendation holds the
        // count for a minute.
        let samples = [
            (0.5, 50.0),
            (0.1, 0.0),
            (0.1, 0.0),
            (0.1, 0.0),
            (0.1, 0.0),
            (0.1, 0.0),
        ];
        let mut log = Vec::new();
        for (i, (cpu, q)) in samples.iter().enumerate() {
            let now = i as f64 * 15.0;
            let plan = d.decide(&c, now, size, &v(*cpu), &v(*q), &v(0.1));
            if plan.action != Action::None {
                d.stabiliser.acted(now, size, plan.desired);
                size = plan.desired;
            }
            log.push((now, plan.action, plan.stabilised_by.join("; ")));
        }
        assert_eq!(log[1].1, Action::None);
        assert_eq!(
            log[1].2,
            "scale-down window: the highest recommendation over 1m is 6 instance(s)"
        );
        assert_eq!(log[4].1, Action::None, "{log:?}");
        assert_eq!(log[5].1, Action::In, "{log:?}");
        assert_eq!(size.replicas, 5);
    }

    #[test]
    fn policies_limit_change_per_period() {
        let c = config("[tree]\nout_by = 10\ntolerance = 0\n[service]\nreplicas = 2\nmax_replicas = 50\n[behavior]\ncooldown = \"0s\"\n[behavior.scale_up]\nwindow = \"0s\"\npolicies = [{ type = \"instances\", value = 4, period = \"1m\" }, { type = \"percent\", value = 100, period = \"1m\" }]\n");
        let mut d = Decider::default();
        let mut size = Size {
            replicas: 2,
            cores: 1.0,
        };
        let mut steps = Vec::new();
        for i in 0..6 {
            let now = i as f64 * 15.0;
            let plan = d.decide(&c, now, size, &v(0.9), &v(300.0), &v(0.95));
            if plan.action != Action::None {
                d.stabiliser.acted(now, size, plan.desired);
                size = plan.desired;
            }
            steps.push((
                size.replicas,
                plan.stabilised_by.first().cloned().unwrap_or_default(),
            ));
        }
        // 2 -> 6 (+4 instances beats +100%), then nothing more until the minute is over, then
        // 6 -> 12 (+100% beats +4).
        assert_eq!(
            steps[0],
            (
                6,
                "scale-up policy: at most 4 instance(s) per 1m (to 6 instance(s))".into()
            )
        );
        assert_eq!(steps[1].0, 6);
        assert_eq!(steps[3].0, 6);
        assert_eq!(steps[4].0, 12, "{steps:?}");
    }

    #[test]
    fn the_cooldown_and_the_bounds_hold_actions_back() {
        let c = config("[tree]\ntolerance = 0\n[service]\nreplicas = 3\nmax_replicas = 6\n[behavior]\ncooldown = \"45s\"\n");
        let mut d = Decider::default();
        let mut size = START;
        let mut log = Vec::new();
        for i in 0..8 {
            let now = i as f64 * 15.0;
            let plan = d.decide(&c, now, size, &v(0.9), &v(300.0), &v(0.95));
            if plan.action != Action::None {
                d.stabiliser.acted(now, size, plan.desired);
                size = plan.desired;
            }
            log.push((
                now,
                plan.action,
                size.replicas,
                plan.stabilised_by.join("; "),
            ));
        }
        assert_eq!(log[0].1, Action::Out);
        assert_eq!(log[0].2, 5);
        assert!(
            log[1]
                .3
                .ends_with("cooldown: the last action was 15s ago (cooldown 45s)"),
            "{log:?}"
        );
        assert_eq!(log[1].2, 5);
        assert_eq!(log[3].1, Action::Out);
        assert_eq!(log[3].2, 6);
        assert!(
            log[3].3.starts_with("bounds: instances stay within 1..6"),
            "{log:?}"
        );
        assert_eq!(log[7].1, Action::None);
    }
}
