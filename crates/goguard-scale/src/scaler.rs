//! The loop: every `every`, read the inputs, decide, send an action to its hook, and after
//! an action check p95 every `verify.every` until it is under the bound or the window is
//! over. Nothing in it is fatal: an unreachable source is "no data", a failing hook is a
//! failed action, and the next evaluation comes on time.

use std::future::Future;
use std::sync::Arc;

use tokio::time::Instant;

use crate::board::{Board, Decision, Verdict, Verification, Verifying};
use crate::config::{Config, Input};
use crate::decide::{Action, Decider, Size};
use crate::gateway::{GatewaySource, Snapshot};
use crate::http::HttpClient;
use crate::reading::Reading;
use crate::{hook, num, prometheus, unix_now};

/// Reads the inputs: Prometheus queries and the gateway's figures.
pub struct Sources {
    cfg: Arc<Config>,
    client: HttpClient,
    gateway: Option<GatewaySource>,
}

impl Sources {
    pub fn new(cfg: Arc<Config>, client: HttpClient) -> Sources {
        let gateway = cfg
            .gateway
            .as_ref()
            .map(|g| GatewaySource::new(&g.admin, g.timeout, client.clone()));
        Sources {
            cfg,
            client,
            gateway,
        }
    }

    /// Reads the named inputs, all at once (one gateway reading shared by its inputs).
    pub async fn read(&self, names: &[&'static str]) -> Vec<(String, Reading)> {
        let inputs: Vec<(&'static str, &Input)> = names
            .iter()
            .filter_map(|n| input(&self.cfg, n).map(|i| (*n, i)))
            .collect();
        let snapshot: Option<Result<Snapshot, String>> = match &self.gateway {
            Some(g) if inputs.iter().any(|(_, i)| i.gateway.is_some()) => Some(g.snapshot().await),
            _ => None,
        };
        let reads = inputs.iter().map(|(name, i)| {
            let snapshot = &snapshot;
            async move {
                let r = if let Some(q) = &i.query {
                    match &self.cfg.prometheus {
                        Some(p) => prometheus::query(&self.client, &p.url, q, p.timeout).await,
                        None => Reading::Failed("no [prometheus] section".into()),
                    }
                } else {
                    match (snapshot, &self.gateway) {
                        (Some(Ok(s)), Some(g)) => g.figure(s, i),
                        (Some(Err(e)), _) => Reading::Failed(e.clone()),
                        _ => Reading::Failed("no [gateway] section".into()),
                    }
                };
                (name.to_string(), r)
            }
        });
        futures_join_all(reads).await
    }
}

/// Runs futures concurrently and keeps their order (the few inputs of one evaluation).
async fn futures_join_all<F: Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out = Vec::with_capacity(set.len());
    // Polled together: each is an HTTP exchange with its own timeout.
    let mut pending: Vec<_> = set.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.extend(results.into_iter().flatten());
    out
}

fn input<'a>(cfg: &'a Config, name: &str) -> Option<&'a Input> {
    match name {
        "cpu" => Some(&cfg.inputs.cpu),
        "queue" => Some(&cfg.inputs.queue),
        "pool" => Some(&cfg.inputs.pool),
        "p95" => Some(&cfg.inputs.p95),
        "replicas" => cfg.inputs.replicas.as_ref(),
        "cores" => cfg.inputs.cores.as_ref(),
        _ => None,
    }
}

struct Pending {
    verifying: Verifying,
    started: Instant,
    deadline: Instant,
    next_check: Instant,
    dry_run: bool,
}

/// The scaler: its configuration, sources, memory and board.
pub struct Scaler {
    cfg: Arc<Config>,
    sources: Sources,
    client: HttpClient,
    decider: Decider,
    size: Size,
    dry_run: bool,
    board: Arc<Board>,
    origin: Instant,
    seq: u64,
    pending: Option<Pending>,
}

impl Scaler {
    pub fn new(cfg: Config, dry_run: bool) -> Scaler {
        let cfg = Arc::new(cfg);
        let client = HttpClient::new();
        let size = Size {
            replicas: cfg.service.replicas,
            cores: cfg.service.cores,
        };
        let board = Arc::new(Board::new(
            size,
            cfg.every.as_secs_f64(),
            dry_run,
            cfg.history,
        ));
        Scaler {
            sources: Sources::new(cfg.clone(), client.clone()),
            cfg,
            client,
            decider: Decider::default(),
            size,
            dry_run,
            board,
            origin: Instant::now(),
            seq: 0,
            pending: None,
        }
    }

    /// The board the admin listener shows.
    pub fn board(&self) -> Arc<Board> {
        self.board.clone()
    }

    /// One evaluation: read, decide, act. Returns the decision (also on the board and in
    /// the log).
    pub async fn evaluate(&mut self) -> Decision {
        // One instant for the decision: the cooldown and the verification window both
        // count from it, so the verification ends before the next action can come.
        let started = Instant::now();
        let now = started.duration_since(self.origin).as_secs_f64();
        let mut names = vec!["cpu", "queue", "pool", "p95"];
        if self.cfg.inputs.replicas.is_some() {
            names.push("replicas");
        }
        if self.cfg.inputs.cores.is_some() {
            names.push("cores");
        }
        let inputs = self.sources.read(&names).await;
        let get = |n: &str| {
            inputs
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, r)| r.clone())
                .unwrap_or_else(|| Reading::NoData("not configured".into()))
        };
        // The live size when it is read, else what the scaler counted.
        let mut current = self.size;
        if let Some(r) = get("replicas").value() {
            if r >= 0.0 {
                current.replicas = r.round() as u32;
            }
        }
        if let Some(c) = get("cores").value() {
            if c > 0.0 {
                current.cores = c;
            }
        }
        let plan = self.decider.decide(
            &self.cfg,
            now,
            current,
            &get("cpu"),
            &get("queue"),
            &get("pool"),
        );
        self.seq += 1;
        let mut d = Decision {
            seq: self.seq,
            at: unix_now(),
            inputs,
            tree: plan.tree.action,
            reason: plan.tree.reason.clone(),
            no_data: !plan.tree.missing.is_empty(),
            current,
            recommended: plan.recommended,
            desired: plan.desired,
            action: plan.action,
            stabilised_by: plan.stabilised_by.clone(),
            dry_run: self.dry_run,
            hook: None,
        };
        if plan.action != Action::None && !self.dry_run {
            d.hook = Some(self.run_hook(&d).await);
        }
        if d.acted() {
            self.decider.stabiliser.acted(now, current, plan.desired);
            self.size = plan.desired;
            self.start_verification(&d, started);
        } else {
            self.size = current;
        }
        log_decision(&d);
        self.board.record_decision(&d);
        d
    }

    async fn run_hook(&self, d: &Decision) -> hook::HookOutcome {
        let action = d.action.as_str();
        let Some(h) = self.cfg.hook_for(action) else {
            return hook::HookOutcome {
                kind: "command",
                target: String::new(),
                ok: false,
                status: None,
                output: String::new(),
                error: Some(format!(
                    "no hook for `{action}`: set [hook] or [hooks.{action}] (or run with --dry-run)"
                )),
                took_ms: 0,
            };
        };
        let vars = [
            ("replicas", d.desired.replicas.to_string()),
            ("cores", num(d.desired.cores)),
            ("action", action.to_string()),
            ("previous_replicas", d.current.replicas.to_string()),
            ("previous_cores", num(d.current.cores)),
        ];
        let body = serde_json::to_value(d).unwrap_or_default();
        hook::run(h, &vars, &body, &self.client).await
    }

    fn start_verification(&mut self, d: &Decision, now: Instant) {
        if let Some(p) = self.pending.take() {
            self.finish(p, Verdict::Superseded, None);
        }
        let v = &self.cfg.verify;
        let verifying = Verifying {
            decision: d.seq,
            action: d.action,
            since: unix_now(),
            until: unix_now() + v.within.as_secs_f64(),
            checks: 0,
            last_p95: None,
        };
        self.board.set_verifying(Some(verifying.clone()));
        self.pending = Some(Pending {
            verifying,
            started: now,
            deadline: now + v.within,
            next_check: now + v.every.min(v.within),
            dry_run: d.dry_run,
        });
    }

    fn finish(&mut self, p: Pending, verdict: Verdict, _reason: Option<String>) -> Verification {
        let v = Verification {
            decision: p.verifying.decision,
            action: p.verifying.action,
            at: unix_now(),
            after_seconds: p.started.elapsed().as_secs_f64(),
            verdict,
            p95: p
                .verifying
                .last_p95
                .clone()
                .unwrap_or_else(|| Reading::NoData("not read yet".into())),
            p95_below_seconds: self.cfg.verify.p95_below.as_secs_f64(),
            checks: p.verifying.checks,
            dry_run: p.dry_run,
        };
        match verdict {
            Verdict::Worked => tracing::info!(
                decision = v.decision,
                action = v.action.as_str(),
                verdict = verdict.as_str(),
                p95 = %v.p95,
                after_seconds = v.after_seconds,
                "{}",
                v.text()
            ),
            _ => tracing::warn!(
                decision = v.decision,
                action = v.action.as_str(),
                verdict = verdict.as_str(),
                p95 = %v.p95,
                after_seconds = v.after_seconds,
                "{}",
                v.text()
            ),
        }
        self.board.record_verification(&v);
        self.board.set_verifying(None);
        v
    }

    /// One check of the action being verified, if one is due.
    async fn check(&mut self) -> Option<Verification> {
        let due = self.pending.as_ref()?.next_check;
        if Instant::now() < due {
            return None;
        }
        let p95 = self
            .sources
            .read(&["p95"])
            .await
            .pop()
            .map(|(_, r)| r)
            .unwrap_or_else(|| Reading::NoData("not configured".into()));
        let bound = self.cfg.verify.p95_below.as_secs_f64();
        let every = self.cfg.verify.every;
        let mut p = self.pending.take()?;
        p.verifying.checks += 1;
        p.verifying.last_p95 = Some(p95.clone());
        let now = Instant::now();
        if p95.value().is_some_and(|v| v < bound) {
            return Some(self.finish(p, Verdict::Worked, None));
        }
        if now >= p.deadline {
            return Some(self.finish(p, Verdict::DidNotWork, None));
        }
        tracing::debug!(decision = p.verifying.decision, p95 = %p95, "p95 not under the bound yet");
        p.next_check = (now + every).min(p.deadline);
        self.board.set_verifying(Some(p.verifying.clone()));
        self.pending = Some(p);
        None
    }

    /// Evaluates every `every` and verifies actions until `shutdown` resolves.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let every = self.cfg.every;
        let mut next_eval = Instant::now();
        loop {
            let wake = match &self.pending {
                Some(p) => next_eval.min(p.next_check),
                None => next_eval,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = &mut shutdown => break,
            }
            // The verification first: at its window's end it is judged before the next
            // evaluation may act again.
            self.check().await;
            if Instant::now() >= next_eval {
                self.evaluate().await;
                // On time, or at once when an evaluation took longer than `every`.
                next_eval += every;
                if next_eval < Instant::now() {
                    next_eval = Instant::now() + every;
                }
            }
        }
    }
}

fn log_decision(d: &Decision) {
    let inputs: Vec<String> = d.inputs.iter().map(|(k, r)| format!("{k}={r}")).collect();
    let inputs = inputs.join(" ");
    let hook_ok = d.hook.as_ref().map(|h| h.ok);
    let hook_error = d.hook.as_ref().and_then(|h| h.error.clone());
    let text = d.text();
    let headline = text.lines().next().unwrap_or("");
    if d.no_data || hook_ok == Some(false) {
        tracing::warn!(
            seq = d.seq,
            action = d.action.as_str(),
            tree = d.tree.as_str(),
            no_data = d.no_data,
            replicas = d.desired.replicas,
            cores = d.desired.cores,
            inputs = %inputs,
            hook_ok,
            hook_error,
            "{headline}"
        );
    } else {
        tracing::info!(
            seq = d.seq,
            action = d.action.as_str(),
            tree = d.tree.as_str(),
            replicas = d.desired.replicas,
            cores = d.desired.cores,
            inputs = %inputs,
            stabilised_by = %d.stabilised_by.join("; "),
            dry_run = d.dry_run,
            hook_ok,
            "{headline}"
        );
    }
}
