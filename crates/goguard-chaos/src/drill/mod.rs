//! `goguard drill`: runs a scenario's steps one after the other. For each, it checks the
//! service is steady (the step's condition does not hold), sets the fault, measures when the
//! service shows it (detection), removes it after its duration, and measures when the
//! service is back (recovery), with the error rate and latency of its own probes meanwhile.
//!
//! Every fault the drill sets is removed at the end, also when it is interrupted or fails;
//! each is also set with a ttl a little longer than its step, so that a drill killed outright
//! leaves nothing behind for long.

pub mod report;
pub mod scenario;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::Notify;

use crate::http_client::HttpClient;
pub use report::{render_html, render_json, render_text};
pub use scenario::{Detect, Fault, Scenario, Step};

/// How long a fault outlives its step at most if the drill dies without removing it.
pub fn ttl_for(duration: Duration) -> Duration {
    duration + (duration / 10).max(Duration::from_secs(5))
}

/// The outcome of one step.
#[derive(Clone, Debug, Serialize)]
pub struct StepResult {
    pub name: String,
    pub fault: String,
    pub detect_by: String,
    /// When the fault was set, from the start of the drill.
    pub fault_at_ms: u64,
    /// How long it was held.
    pub fault_ms: u64,
    /// From the fault's start to the service showing it.
    pub detect_ms: Option<u64>,
    /// From the fault's end to the service being back.
    pub recover_ms: Option<u64>,
    pub detect_within_ms: Option<u64>,
    pub recover_within_ms: Option<u64>,
    /// The drill's probes from the fault's start to the recovery (or the end of the wait).
    pub probes: u64,
    pub error_rate: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Health checks that failed in the same time, of those made.
    pub health_failed: u64,
    pub health_checks: u64,
    /// Whether the step met its targets.
    pub passed: bool,
    /// `ok`, or what was missed.
    pub verdict: String,
}

/// A whole drill.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    pub started: String,
    pub steps: Vec<StepResult>,
    /// Whether every step met its targets (and the drill was not interrupted).
    pub passed: bool,
    /// Set when Ctrl-C or an error stopped the drill before its end.
    pub interrupted: Option<String>,
    /// The faults removed at the end because a step did not get to remove them.
    pub cleaned_up: Vec<String>,
    /// Faults that could not be removed (they still expire by their ttl).
    pub cleanup_failed: Vec<String>,
}

/// Runs a scenario until its end or until `cancel` resolves (Ctrl-C), then removes every
/// fault it set. `Err` only when the drill could not run at all.
pub async fn run(scenario: &Scenario, cancel: impl Future<Output = String>) -> Report {
    let client = HttpClient::new();
    let faults = Faults::default();
    let started = SystemTime::now();
    let watcher = Watcher::start(&scenario.watch, client.clone());
    let mut steps = Vec::new();
    let interrupted = {
        let body = async {
            for step in &scenario.steps {
                let result = run_step(scenario, step, &client, &faults, &watcher).await?;
                steps.push(result);
            }
            Ok::<(), String>(())
        };
        tokio::select! {
            r = body => r.err(),
            why = cancel => Some(why),
        }
    };
    let (cleaned_up, cleanup_failed) = faults.remove_all(&client).await;
    let passed = interrupted.is_none() && steps.iter().all(|s| s.passed);
    Report {
        scenario: scenario.name.clone(),
        started: humantime::format_rfc3339_seconds(started).to_string(),
        steps,
        passed,
        interrupted,
        cleaned_up,
        cleanup_failed,
    }
}

async fn run_step(
    scenario: &Scenario,
    step: &Step,
    client: &HttpClient,
    faults: &Faults,
    watcher: &Watcher,
) -> Result<StepResult, String> {
    let every = Duration::from_millis(20);
    // Steady state first: a fault on a service already failing measures nothing.
    let steady_by = Instant::now() + scenario.watch.steady_within;
    loop {
        if watcher.holds(&step.detect, Instant::now()).0 == Some(false) {
            break;
        }
        if Instant::now() >= steady_by {
            return Err(format!(
                "step `{}`: the service is not steady ({} still holds, or nothing was measured) after {} before the fault; nothing was set",
                step.name,
                step.detect.describe(),
                humantime::format_duration(scenario.watch.steady_within)
            ));
        }
        tokio::time::sleep(every).await;
    }
    let key = faults.set(client, step).await?;
    let t0 = Instant::now();
    let fault_at = watcher.since_start(t0);
    let end_fault = t0 + step.duration;
    let mut detected: Option<(Instant, String)> = None;
    while Instant::now() < end_fault {
        if detected.is_none() {
            let now = Instant::now();
            if let (Some(true), why) = watcher.holds(&step.detect, now) {
                detected = Some((now, why));
            }
        }
        tokio::time::sleep(every.min(end_fault.saturating_duration_since(Instant::now()))).await;
    }
    faults.remove(client, &key).await?;
    let t1 = Instant::now();
    // Recovery: up to twice its target (to say by how much it was missed), or 60 s.
    let wait = step.recover_within.map_or(Duration::from_secs(60), |r| {
        (r * 2).max(r + Duration::from_secs(1))
    });
    let mut recovered: Option<Instant> = None;
    while Instant::now() < t1 + wait {
        let now = Instant::now();
        if watcher.holds(&step.detect, now).0 == Some(false) {
            recovered = Some(now);
            break;
        }
        tokio::time::sleep(every).await;
    }
    let end = recovered.unwrap_or_else(Instant::now);
    let stats = watcher.stats(t0, end);
    let detect = detected.as_ref().map(|(at, _)| at.duration_since(t0));
    let recover = recovered.map(|at| at.duration_since(t1));
    let (passed, verdict) = verdict(step, detect, recover, detected.is_some(), wait);
    let ms = |d: Duration| d.as_millis() as u64;
    Ok(StepResult {
        name: step.name.clone(),
        fault: step.fault.describe(),
        detect_by: detected
            .map(|(_, why)| why)
            .unwrap_or_else(|| step.detect.describe()),
        fault_at_ms: ms(fault_at),
        fault_ms: ms(t1.duration_since(t0)),
        detect_ms: detect.map(ms),
        recover_ms: recover.map(ms),
        detect_within_ms: step.detect_within.map(ms),
        recover_within_ms: step.recover_within.map(ms),
        probes: stats.probes,
        error_rate: stats.error_rate,
        p50_ms: stats.p50_ms,
        p95_ms: stats.p95_ms,
        max_ms: stats.max_ms,
        health_failed: stats.health_failed,
        health_checks: stats.health_checks,
        passed,
        verdict,
    })
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn verdict(
    step: &Step,
    detect: Option<Duration>,
    recover: Option<Duration>,
    detected: bool,
    waited: Duration,
) -> (bool, String) {
    let mut missed = Vec::new();
    match (detect, step.detect_within) {
        (None, _) => missed.push(format!("not detected in {} of fault", secs(step.duration))),
        (Some(d), Some(max)) if d > max => {
            missed.push(format!("detected in {} > {}", secs(d), secs(max)))
        }
        _ => {}
    }
    if detected {
        match (recover, step.recover_within) {
            (None, _) => missed.push(format!("not recovered after {}", secs(waited))),
            (Some(r), Some(max)) if r > max => {
                missed.push(format!("recovered in {} > {}", secs(r), secs(max)))
            }
            _ => {}
        }
    }
    if missed.is_empty() {
        (true, "ok".into())
    } else {
        (false, missed.join("; "))
    }
}

/// The faults the drill has set and not yet removed.
#[derive(Default)]
struct Faults {
    set: Mutex<HashMap<u64, Removal>>,
    next: AtomicUsize,
    in_flight: AtomicUsize,
    settled: Notify,
}

/// How to remove one fault.
#[derive(Clone, Debug)]
struct Removal {
    what: String,
    url: String,
    token: Option<String>,
}

impl Removal {
    async fn send(&self, client: &HttpClient) -> Result<(), String> {
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        let a = client
            .request("DELETE", &self.url, &headers, None, Duration::from_secs(5))
            .await?;
        // Gone already (expired, removed by hand) is removed.
        if (200..300).contains(&a.status) || a.status == 404 {
            Ok(())
        } else {
            Err(format!(
                "DELETE {}: {} {}",
                self.url,
                a.status,
                a.body.trim()
            ))
        }
    }
}

impl Faults {
    /// Sets a step's fault; returns its key for [`Faults::remove`]. The request runs in a
    /// task of its own and registers the removal before its answer is awaited here, so a
    /// drill interrupted meanwhile still removes what it set.
    async fn set(self: &Faults, client: &HttpClient, step: &Step) -> Result<u64, String> {
        let key = self.next.fetch_add(1, Ordering::Relaxed) as u64;
        let ttl = ttl_for(step.duration);
        let ttl_text = format!("{}ms", ttl.as_millis());
        let (url, mut body, token, removal) = match &step.fault {
            Fault::Toxic { target, toxic } => {
                let name = format!("drill-{}-{}", std::process::id(), key);
                let base = format!("{}/proxies/{}/toxics", target.admin, target.proxy);
                let removal = Removal {
                    what: format!("toxic {name} on {} ({})", target.proxy, target.admin),
                    url: format!("{base}/{name}"),
                    token: None,
                };
                let mut body = toxic.clone();
                body["name"] = Value::from(name);
                (base, body, None, Some(removal))
            }
            Fault::Route { target, fault } => (
                format!("{}/admin/faults", target.admin),
                fault.clone(),
                target.token.clone(),
                None,
            ),
        };
        body["ttl"] = Value::from(ttl_text);
        // A toxic's name is ours: its removal is known before it is set.
        if let Some(r) = &removal {
            self.lock().insert(key, r.clone());
        }
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let admin = match &step.fault {
            Fault::Route { target, .. } => target.admin.clone(),
            Fault::Toxic { .. } => String::new(),
        };
        let task = {
            let client = client.clone();
            let token = token.clone();
            let url = url.clone();
            let body = body.to_string();
            tokio::spawn(async move {
                let auth = token.as_ref().map(|t| format!("Bearer {t}"));
                let headers: Vec<(&str, &str)> = auth
                    .as_deref()
                    .map(|a| vec![("authorization", a)])
                    .unwrap_or_default();
                client
                    .request("POST", &url, &headers, Some(body), Duration::from_secs(5))
                    .await
            })
        };
        let answer = self.registered(task, key, &admin, token).await;
        match answer {
            Ok(()) => Ok(key),
            Err(e) => {
                self.lock().remove(&key);
                Err(format!("step `{}`: cannot set the fault: {e}", step.name))
            }
        }
    }

    /// Awaits the request setting a fault and records how to remove a route fault (its id
    /// comes with the answer).
    async fn registered(
        &self,
        task: tokio::task::JoinHandle<Result<crate::http_client::Answer, String>>,
        key: u64,
        admin: &str,
        token: Option<String>,
    ) -> Result<(), String> {
        struct Done<'a>(&'a Faults);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
                self.0.settled.notify_waiters();
            }
        }
        let _done = Done(self);
        let answer = task
            .await
            .map_err(|e| format!("the request failed: {e}"))??;
        if !(200..300).contains(&answer.status) {
            return Err(format!("{} {}", answer.status, answer.body.trim()));
        }
        if !admin.is_empty() {
            let v: Value = serde_json::from_str(&answer.body)
                .map_err(|_| format!("the gateway's answer is not JSON: {}", answer.body.trim()))?;
            let id = v["id"]
                .as_str()
                .map(str::to_string)
                .or_else(|| v["id"].as_u64().map(|n| n.to_string()))
                .ok_or_else(|| format!("the gateway's answer has no id: {}", answer.body.trim()))?;
            self.lock().insert(
                key,
                Removal {
                    what: format!("route fault {id} on {admin}"),
                    url: format!("{admin}/admin/faults/{id}"),
                    token,
                },
            );
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Removal>> {
        self.set.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn remove(&self, client: &HttpClient, key: &u64) -> Result<(), String> {
        let Some(r) = self.lock().get(key).cloned() else {
            return Ok(());
        };
        r.send(client)
            .await
            .map_err(|e| format!("cannot remove {}: {e}", r.what))?;
        self.lock().remove(key);
        Ok(())
    }

    /// Removes whatever is left (waiting up to 5 s for requests still setting faults).
    async fn remove_all(&self, client: &HttpClient) -> (Vec<String>, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            let _ = tokio::time::timeout(Duration::from_millis(50), self.settled.notified()).await;
        }
        let left: Vec<(u64, Removal)> = self.lock().drain().collect();
        let (mut done, mut failed) = (Vec::new(), Vec::new());
        for (_, r) in left {
            let mut result = r.send(client).await;
            if result.is_err() {
                result = r.send(client).await;
            }
            match result {
                Ok(()) => done.push(r.what),
                Err(e) => failed.push(format!("{}: {e}", r.what)),
            }
        }
        (done, failed)
    }
}

/// One finished request of the watcher.
#[derive(Clone, Copy, Debug)]
struct Sample {
    sent: Instant,
    done: Instant,
    ok: bool,
}

#[derive(Default)]
struct Samples {
    health: Vec<Sample>,
    probes: Vec<Sample>,
    /// The last scrape of the metrics endpoint.
    metrics: Option<(Instant, HashMap<String, f64>)>,
}

/// The requests the drill makes on its own schedule, each with its timeout, so that a slow
/// answer never delays the next one.
struct Watcher {
    samples: Arc<Mutex<Samples>>,
    window: Duration,
    start: Instant,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Health,
    Probe,
    Metrics,
}

/// Figures over a span of the drill.
struct Stats {
    probes: u64,
    error_rate: Option<f64>,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
    max_ms: Option<f64>,
    health_failed: u64,
    health_checks: u64,
}

impl Watcher {
    fn start(w: &scenario::Watch, client: HttpClient) -> Watcher {
        let samples = Arc::new(Mutex::new(Samples::default()));
        let mut tasks = Vec::new();
        for (url, kind) in [
            (&w.health, Kind::Health),
            (&w.probe, Kind::Probe),
            (&w.metrics, Kind::Metrics),
        ] {
            let Some(url) = url.clone() else { continue };
            let (samples, client, every, timeout) =
                (samples.clone(), client.clone(), w.every, w.timeout);
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tick.tick().await;
                    let (samples, client, url) = (samples.clone(), client.clone(), url.clone());
                    tokio::spawn(async move {
                        let sent = Instant::now();
                        let answer = client.request("GET", &url, &[], None, timeout).await;
                        let done = Instant::now();
                        let mut s = samples.lock().unwrap_or_else(|e| e.into_inner());
                        match kind {
                            Kind::Metrics => {
                                if let Ok(a) = answer {
                                    if a.status == 200 {
                                        s.metrics = Some((done, parse_metrics(&a.body)));
                                    }
                                }
                            }
                            Kind::Health | Kind::Probe => {
                                let ok = answer.is_ok_and(|a| (200..300).contains(&a.status));
                                let list = if let Kind::Health = kind {
                                    &mut s.health
                                } else {
                                    &mut s.probes
                                };
                                list.push(Sample { sent, done, ok });
                            }
                        }
                    });
                }
            }));
        }
        Watcher {
            samples,
            window: w.window,
            start: Instant::now(),
            tasks,
        }
    }

    fn since_start(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.start)
    }

    /// Whether the condition holds at `now` (`None`: not measured yet), and which part.
    fn holds(&self, d: &Detect, now: Instant) -> (Option<bool>, String) {
        let s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let mut any_known = false;
        let mut all_known = true;
        let mut check = |v: Option<bool>, what: String| -> Option<String> {
            match v {
                Some(true) => Some(what),
                Some(false) => {
                    any_known = true;
                    None
                }
                None => {
                    all_known = false;
                    None
                }
            }
        };
        if d.health {
            // The newest request answered (by when it was sent: a late timeout of an older
            // request does not hide a newer answer).
            let last = s
                .health
                .iter()
                .filter(|x| x.done <= now)
                .max_by_key(|x| x.sent)
                .map(|x| !x.ok);
            if let Some(w) = check(last, "health failing".into()) {
                return (Some(true), w);
            }
        }
        let recent: Vec<&Sample> = s
            .probes
            .iter()
            .filter(|x| x.done <= now && now.duration_since(x.done) <= self.window)
            .collect();
        if let Some(limit) = d.error_rate {
            let rate = (!recent.is_empty())
                .then(|| recent.iter().filter(|x| !x.ok).count() as f64 / recent.len() as f64);
            if let Some(w) = check(
                rate.map(|r| r >= limit),
                format!("error rate {:.0}%", rate.unwrap_or(0.0) * 100.0),
            ) {
                return (Some(true), w);
            }
        }
        if let Some(limit) = d.p95 {
            let mut lat: Vec<Duration> = recent.iter().map(|x| x.done - x.sent).collect();
            lat.sort();
            let p95 = percentile(&lat, 0.95);
            if let Some(w) = check(
                p95.map(|p| p >= limit),
                format!("p95 {} ms", p95.unwrap_or_default().as_millis()),
            ) {
                return (Some(true), w);
            }
        }
        if let Some(m) = &d.metric {
            let v = s
                .metrics
                .as_ref()
                .and_then(|(_, map)| map.get(&m.series).copied());
            let holds = match &s.metrics {
                // A series that is not there is 0, as Prometheus counters start.
                Some(_) => {
                    let v = v.unwrap_or(0.0);
                    Some(m.above.is_some_and(|a| v > a) || m.below.is_some_and(|b| v < b))
                }
                None => None,
            };
            if let Some(w) = check(holds, format!("{} = {}", m.series, v.unwrap_or(0.0))) {
                return (Some(true), w);
            }
        }
        if all_known && any_known {
            (Some(false), String::new())
        } else {
            (None, String::new())
        }
    }

    /// The probes and health checks sent from `from` and answered by `to`.
    fn stats(&self, from: Instant, to: Instant) -> Stats {
        let s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let probes: Vec<&Sample> = s
            .probes
            .iter()
            .filter(|x| x.sent >= from && x.done <= to)
            .collect();
        let mut lat: Vec<Duration> = probes.iter().map(|x| x.done - x.sent).collect();
        lat.sort();
        let ms = |d: Duration| (d.as_secs_f64() * 1e5).round() / 100.0;
        let health: Vec<&Sample> = s
            .health
            .iter()
            .filter(|x| x.sent >= from && x.done <= to)
            .collect();
        Stats {
            probes: probes.len() as u64,
            error_rate: (!probes.is_empty())
                .then(|| probes.iter().filter(|x| !x.ok).count() as f64 / probes.len() as f64),
            p50_ms: percentile(&lat, 0.5).map(ms),
            p95_ms: percentile(&lat, 0.95).map(ms),
            max_ms: lat.last().copied().map(ms),
            health_failed: health.iter().filter(|x| !x.ok).count() as u64,
            health_checks: health.len() as u64,
        }
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i])
}

/// Prometheus' text format: each sample by its series as written (`name{labels}`), and
/// by its bare name when it has no labels.
pub fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut m = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The series ends at the last space outside the braces (a timestamp may follow).
        let (series, rest) = match line.rfind('}') {
            Some(close) => (&line[..=close], line[close + 1..].trim()),
            None => match line.split_once(char::is_whitespace) {
                Some((s, r)) => (s, r.trim()),
                None => continue,
            },
        };
        let value = rest.split_whitespace().next().unwrap_or_default();
        let v = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => match other.parse::<f64>() {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        m.insert(series.to_string(), v);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text() {
        let m = parse_metrics(
            "# HELP x y\nup 1\nreq_total{route=\"a\",status=\"500\"} 12 1700000000\nbad line\n",
        );
        assert_eq!(m["up"], 1.0);
        assert_eq!(m["req_total{route=\"a\",status=\"500\"}"], 12.0);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn ttl_outlives_the_step() {
        assert_eq!(ttl_for(Duration::from_secs(2)), Duration::from_secs(7));
        assert_eq!(ttl_for(Duration::from_secs(600)), Duration::from_secs(660));
    }
}
