//! What the scaler has decided and verified, shared with the admin listener: the current
//! size, the last decisions and verifications, and the Prometheus metrics.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::decide::{Action, Size};
use crate::hook::HookOutcome;
use crate::reading::Reading;

/// One evaluation: its inputs, the tree's answer, the stabilisation, and the hook.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// 1, 2, ... per run.
    pub seq: u64,
    /// Seconds since the Unix epoch.
    pub at: f64,
    pub inputs: Vec<(String, Reading)>,
    /// The tree's branch.
    pub tree: Action,
    pub reason: String,
    /// `true` when an input the tree needed had no number: nothing was decided.
    pub no_data: bool,
    pub current: Size,
    pub recommended: Size,
    pub desired: Size,
    /// What is done after the stabilisation.
    pub action: Action,
    pub stabilised_by: Vec<String>,
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook: Option<HookOutcome>,
}

impl Decision {
    /// Whether the action was taken (the hook succeeded, or a dry run).
    pub fn acted(&self) -> bool {
        self.action != Action::None && (self.dry_run || self.hook.as_ref().is_some_and(|h| h.ok))
    }

    /// The decision in one or a few lines, for people.
    pub fn text(&self) -> String {
        let inputs: Vec<String> = self
            .inputs
            .iter()
            .map(|(k, r)| format!("{k} {r}"))
            .collect();
        let mut out = if self.no_data {
            format!("no decision at {}: {}", self.current, self.reason)
        } else if self.action == Action::None {
            let mut s = format!("keep {}: {}", self.current, self.reason);
            if self.recommended != self.current {
                s.push_str(&format!(" (held back: {})", self.stabilised_by.join("; ")));
            }
            s
        } else {
            let would = if self.dry_run { "dry run: would " } else { "" };
            let mut s = format!(
                "{would}scale {} {} -> {}: {}",
                self.action.as_str(),
                self.current,
                self.desired,
                self.reason
            );
            if !self.stabilised_by.is_empty() {
                s.push_str(&format!(" (limited: {})", self.stabilised_by.join("; ")));
            }
            s
        };
        out.push_str(&format!("\n  inputs: {}", inputs.join(", ")));
        if let Some(h) = &self.hook {
            out.push_str(&format!(
                "\n  hook: {} `{}`: {} in {} ms",
                h.kind,
                h.target,
                match &h.error {
                    None => "ok".to_string(),
                    Some(e) => format!("FAILED, {e}"),
                },
                h.took_ms
            ));
            if !h.ok && !h.output.is_empty() {
                out.push_str(&format!(
                    "\n  hook output: {}",
                    h.output.replace('\n', "\n    ")
                ));
            }
        }
        out
    }
}

/// How the check after an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// p95 came under the bound within the window.
    Worked,
    /// It did not, by the window's end.
    DidNotWork,
    /// Another action came before the end.
    Superseded,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Worked => "worked",
            Verdict::DidNotWork => "did_not_work",
            Verdict::Superseded => "superseded",
        }
    }
}

/// The check of one action.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// The decision checked.
    pub decision: u64,
    pub action: Action,
    pub at: f64,
    /// Seconds from the action to the verdict.
    pub after_seconds: f64,
    pub verdict: Verdict,
    /// The last p95 read (seconds).
    pub p95: Reading,
    pub p95_below_seconds: f64,
    pub checks: u32,
    pub dry_run: bool,
}

impl Verification {
    pub fn text(&self) -> String {
        let bound = crate::num(self.p95_below_seconds * 1000.0);
        let p95 = match self.p95.value() {
            Some(v) => format!("{} ms", crate::num(v * 1000.0)),
            None => self.p95.to_string(),
        };
        match self.verdict {
            Verdict::Worked => format!(
                "verified decision {} (scale {}): worked, p95 {p95} < {bound} ms after {:.1}s",
                self.decision,
                self.action.as_str(),
                self.after_seconds
            ),
            Verdict::DidNotWork => format!(
                "verified decision {} (scale {}): did NOT work, p95 {p95}, not under {bound} ms within {:.1}s ({} checks)",
                self.decision,
                self.action.as_str(),
                self.after_seconds,
                self.checks
            ),
            Verdict::Superseded => format!(
                "decision {} (scale {}): superseded by another action after {:.1}s, p95 {p95}",
                self.decision,
                self.action.as_str(),
                self.after_seconds
            ),
        }
    }
}

/// The verification in progress.
#[derive(Debug, Clone, Serialize)]
pub struct Verifying {
    pub decision: u64,
    pub action: Action,
    pub since: f64,
    pub until: f64,
    pub checks: u32,
    pub last_p95: Option<Reading>,
}

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The scaler's metrics (prefix `goguard_scale_`).
pub struct Metrics {
    registry: Registry,
    evaluations: Counter,
    decisions: Family<Labels, Counter>,
    actions: Family<Labels, Counter>,
    verifications: Family<Labels, Counter>,
    stabilised: Family<Labels, Counter>,
    input: Family<Labels, Gauge<f64, AtomicU64>>,
    input_errors: Family<Labels, Counter>,
    replicas: Gauge,
    cores: Gauge<f64, AtomicU64>,
    verifying: Gauge,
    last_decision: Gauge<f64, AtomicU64>,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("goguard_scale");
        let m = Metrics {
            registry: Registry::default(),
            evaluations: Counter::default(),
            decisions: Family::default(),
            actions: Family::default(),
            verifications: Family::default(),
            stabilised: Family::default(),
            input: Family::default(),
            input_errors: Family::default(),
            replicas: Gauge::default(),
            cores: Gauge::default(),
            verifying: Gauge::default(),
            last_decision: Gauge::default(),
        };
        registry.register(
            "evaluations",
            "Evaluations of the decision tree",
            m.evaluations.clone(),
        );
        registry.register(
            "decisions",
            "Decisions by action after stabilisation (out, up, in, none) and no_data",
            m.decisions.clone(),
        );
        registry.register(
            "actions",
            "Actions sent to the hook, by action and result (ok, failed, dry_run)",
            m.actions.clone(),
        );
        registry.register(
            "verifications",
            "Checks after an action, by verdict (worked, did_not_work, superseded)",
            m.verifications.clone(),
        );
        registry.register(
            "stabilised",
            "Recommendations the stabilisation changed, by rule (bounds, scale-up window, scale-down window, scale-up policy, scale-down policy, cooldown)",
            m.stabilised.clone(),
        );
        registry.register(
            "input",
            "Each input's last figure (NaN without data)",
            m.input.clone(),
        );
        registry.register(
            "input_errors",
            "Readings of an input that gave no number (source unreachable, no data)",
            m.input_errors.clone(),
        );
        registry.register(
            "replicas",
            "Instances, as the scaler knows them",
            m.replicas.clone(),
        );
        registry.register(
            "cores",
            "Cores per instance, as the scaler knows them",
            m.cores.clone(),
        );
        registry.register(
            "verifying",
            "1 while an action is being verified",
            m.verifying.clone(),
        );
        registry.register(
            "last_decision_timestamp_seconds",
            "When the last decision was made",
            m.last_decision.clone(),
        );
        Metrics { registry, ..m }
    }
}

/// Shared state: written by the scaler, read by the admin listener.
pub struct Board {
    pub state: Mutex<State>,
    pub metrics: Metrics,
    history: usize,
}

/// What `/admin/status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct State {
    pub started_at: f64,
    pub every_seconds: f64,
    pub dry_run: bool,
    pub size: Size,
    pub evaluations: u64,
    pub last_action_at: Option<f64>,
    pub verifying: Option<Verifying>,
    /// Newest first.
    pub decisions: VecDeque<Decision>,
    /// Newest first.
    pub verifications: VecDeque<Verification>,
}

impl Board {
    pub fn new(size: Size, every: f64, dry_run: bool, history: usize) -> Board {
        let b = Board {
            state: Mutex::new(State {
                started_at: crate::unix_now(),
                every_seconds: every,
                dry_run,
                size,
                evaluations: 0,
                last_action_at: None,
                verifying: None,
                decisions: VecDeque::new(),
                verifications: VecDeque::new(),
            }),
            metrics: Metrics::new(),
            history: history.max(1),
        };
        b.set_size(size);
        b
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the state.
    pub fn snapshot(&self) -> State {
        self.lock().clone()
    }

    fn set_size(&self, size: Size) {
        self.metrics.replicas.set(i64::from(size.replicas));
        self.metrics.cores.set(size.cores);
    }

    pub fn record_decision(&self, d: &Decision) {
        let m = &self.metrics;
        m.evaluations.inc();
        let kind = if d.no_data {
            "no_data"
        } else {
            d.action.as_str()
        };
        m.decisions
            .get_or_create(&labels(&[("action", kind)]))
            .inc();
        for (name, r) in &d.inputs {
            let v = r.value().unwrap_or(f64::NAN);
            m.input.get_or_create(&labels(&[("input", name)])).set(v);
            if r.value().is_none() {
                m.input_errors
                    .get_or_create(&labels(&[("input", name)]))
                    .inc();
            }
        }
        for by in &d.stabilised_by {
            let rule = by.split(':').next().unwrap_or(by);
            m.stabilised.get_or_create(&labels(&[("rule", rule)])).inc();
        }
        if d.action != Action::None {
            let result = if d.dry_run {
                "dry_run"
            } else if d.acted() {
                "ok"
            } else {
                "failed"
            };
            m.actions
                .get_or_create(&labels(&[
                    ("action", d.action.as_str()),
                    ("result", result),
                ]))
                .inc();
        }
        m.last_decision.set(d.at);
        let mut s = self.lock();
        s.evaluations += 1;
        if d.acted() {
            s.size = d.desired;
            s.last_action_at = Some(d.at);
        } else {
            s.size = d.current;
        }
        self.set_size(s.size);
        s.decisions.push_front(d.clone());
        s.decisions.truncate(self.history);
    }

    pub fn set_verifying(&self, v: Option<Verifying>) {
        self.metrics.verifying.set(i64::from(v.is_some()));
        self.lock().verifying = v;
    }

    pub fn record_verification(&self, v: &Verification) {
        self.metrics
            .verifications
            .get_or_create(&labels(&[("verdict", v.verdict.as_str())]))
            .inc();
        let mut s = self.lock();
        s.verifications.push_front(v.clone());
        s.verifications.truncate(self.history);
    }

    /// The Prometheus text format.
    pub fn encode_metrics(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.metrics.registry).is_err() {
            out.push_str("# encoding failed\n");
        }
        out
    }
}
