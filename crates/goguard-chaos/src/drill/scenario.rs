//! A drill's scenario file, read and checked once: every problem is reported with the file,
//! the field and what is wrong (`drill.toml: step[1].fault.type: ...`).

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// A checked scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub watch: Watch,
    pub chaos: Vec<ChaosTarget>,
    pub gateways: Vec<GatewayTarget>,
    pub steps: Vec<Step>,
}

/// What the drill watches.
#[derive(Clone, Debug)]
pub struct Watch {
    /// A health endpoint: failing is a non-2xx answer, an error or no answer in `timeout`.
    pub health: Option<String>,
    /// A URL the drill requests itself: the error rate and latency.
    pub probe: Option<String>,
    /// A Prometheus-text endpoint, read for `metric` conditions.
    pub metrics: Option<String>,
    pub every: Duration,
    pub timeout: Duration,
    /// Error rate and p95 are over this window.
    pub window: Duration,
    /// How long the service may take to be steady before a step (its condition false).
    pub steady_within: Duration,
}

/// A chaos proxy's admin API and one of its proxies.
#[derive(Clone, Debug)]
pub struct ChaosTarget {
    pub name: String,
    pub admin: String,
    pub proxy: String,
}

/// A gateway's admin API (route faults).
#[derive(Clone, Debug)]
pub struct GatewayTarget {
    pub name: String,
    pub admin: String,
    pub token: Option<String>,
}

/// The fault of a step, as it will be sent.
#[derive(Clone, Debug)]
pub enum Fault {
    /// A toxic on a chaos proxy: the JSON body of `POST /proxies/{proxy}/toxics`, without
    /// its name and ttl (the drill sets them).
    Toxic { target: ChaosTarget, toxic: Value },
    /// A route fault of a gateway: the JSON body of `POST /admin/faults` without its ttl.
    Route { target: GatewayTarget, fault: Value },
}

impl Fault {
    /// What the table shows: `redis: down`, `gate: orders abort 503`.
    pub fn describe(&self) -> String {
        match self {
            Fault::Toxic { target, toxic } => {
                let ty = toxic["type"].as_str().unwrap_or("?");
                let attrs = toxic["attributes"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", plain(v)))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                let stream = toxic["stream"].as_str().map(|s| format!(" ({s})"));
                format!(
                    "{}: {ty}{}{}",
                    target.proxy,
                    if attrs.is_empty() {
                        String::new()
                    } else {
                        format!(" {attrs}")
                    },
                    stream.unwrap_or_default()
                )
            }
            Fault::Route { target, fault } => {
                let mut s = format!(
                    "{}: route {} {}",
                    target.name,
                    fault["route"].as_str().unwrap_or("?"),
                    fault["kind"].as_str().unwrap_or("?")
                );
                for k in ["delay", "status", "percent"] {
                    if let Some(v) = fault.get(k) {
                        s.push_str(&format!(" {k}={}", plain(v)));
                    }
                }
                s
            }
        }
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// When the service shows a fault: any of these holding.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Detect {
    /// The health endpoint fails.
    pub health: bool,
    /// The probes' error rate over the window reaches this (0 to 1).
    pub error_rate: Option<f64>,
    /// The probes' p95 over the window reaches this.
    pub p95: Option<Duration>,
    /// A series of the metrics endpoint (`name` or `name{label="v"}` as written there),
    /// above or below a value.
    pub metric: Option<MetricCondition>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MetricCondition {
    pub series: String,
    pub above: Option<f64>,
    pub below: Option<f64>,
}

impl Detect {
    /// `health`, `error rate >= 50%`, ... joined with "or".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.health {
            parts.push("health failing".to_string());
        }
        if let Some(r) = self.error_rate {
            parts.push(format!("error rate >= {}%", r * 100.0));
        }
        if let Some(p) = self.p95 {
            parts.push(format!("p95 >= {}", humantime::format_duration(p)));
        }
        if let Some(m) = &self.metric {
            if let Some(a) = m.above {
                parts.push(format!("{} > {a}", m.series));
            }
            if let Some(b) = m.below {
                parts.push(format!("{} < {b}", m.series));
            }
        }
        parts.join(" or ")
    }
}

/// One step: a fault held for `duration`, with the targets it is judged on.
#[derive(Clone, Debug)]
pub struct Step {
    pub name: String,
    pub fault: Fault,
    pub duration: Duration,
    pub detect: Detect,
    pub detect_within: Option<Duration>,
    pub recover_within: Option<Duration>,
}

// The file as written.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Option<String>,
    #[serde(default)]
    watch: RawWatch,
    #[serde(default)]
    targets: RawTargets,
    #[serde(default)]
    chaos: Vec<RawChaos>,
    #[serde(default)]
    gateway: Vec<RawGateway>,
    #[serde(default)]
    step: Vec<RawStep>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWatch {
    health: Option<String>,
    probe: Option<String>,
    metrics: Option<String>,
    every: Option<String>,
    timeout: Option<String>,
    window: Option<String>,
    steady_within: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTargets {
    detect_within: Option<String>,
    recover_within: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChaos {
    name: String,
    admin: String,
    proxy: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    name: String,
    admin: String,
    token: Option<String>,
    token_env: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: Option<String>,
    fault: toml::Table,
    duration: String,
    detect: Option<toml::Value>,
    detect_within: Option<String>,
    recover_within: Option<String>,
}

enum RawDetect {
    Word(String),
    Table(RawDetectTable),
}

impl RawDetect {
    fn read(at: &str, v: &toml::Value) -> Result<RawDetect, String> {
        match v {
            toml::Value::String(s) => Ok(RawDetect::Word(s.clone())),
            toml::Value::Table(_) => {
                v.clone().try_into().map(RawDetect::Table).map_err(|e| {
                    format!("{at}.detect: {}", crate::config::one_line(&e.to_string()))
                })
            }
            other => Err(format!(
                "{at}.detect: `{other}` is not \"health\" or a table"
            )),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDetectTable {
    #[serde(default)]
    health: bool,
    error_rate: Option<f64>,
    p95: Option<String>,
    metric: Option<String>,
    above: Option<f64>,
    below: Option<f64>,
}

fn dur(
    field: &str,
    v: &Option<String>,
    default: Option<Duration>,
) -> Result<Option<Duration>, String> {
    match v {
        None => Ok(default),
        Some(s) => humantime::parse_duration(s)
            .map(Some)
            .map_err(|e| format!("{field}: `{s}` is not a duration like 500ms or 2s ({e})")),
    }
}

fn url(field: &str, v: &Option<String>) -> Result<Option<String>, String> {
    match v {
        None => Ok(None),
        Some(u) if u.starts_with("http://") && u.len() > "http://".len() => Ok(Some(u.clone())),
        Some(u) => Err(format!("{field}: `{u}` is not an http:// URL")),
    }
}

const ROUTE_FAULT_KINDS: [&str; 4] = ["delay", "abort", "reset", "bandwidth"];
const ROUTE_FAULT_FIELDS: [&str; 9] = [
    "target",
    "route",
    "kind",
    "delay",
    "jitter",
    "status",
    "percent",
    "coloured_only",
    "rate",
];

impl Scenario {
    /// Reads and checks a scenario file; the error names the file and the field.
    pub fn load(path: &Path) -> Result<Scenario, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "drill".into());
        Scenario::parse(&text, &stem).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and checks a scenario's text; `default_name` names it when it has no `name`.
    pub fn parse(text: &str, default_name: &str) -> Result<Scenario, String> {
        let raw: RawScenario =
            toml::from_str(text).map_err(|e| crate::config::one_line(&e.to_string()))?;
        let w = &raw.watch;
        let every =
            dur("watch.every", &w.every, Some(Duration::from_millis(200)))?.unwrap_or_default();
        if every < Duration::from_millis(10) {
            return Err("watch.every: must be at least 10ms".into());
        }
        let timeout =
            dur("watch.timeout", &w.timeout, Some(Duration::from_secs(1)))?.unwrap_or_default();
        if timeout.is_zero() {
            return Err("watch.timeout: must be more than 0".into());
        }
        let window =
            dur("watch.window", &w.window, Some(Duration::from_secs(1)))?.unwrap_or_default();
        if window < every {
            return Err("watch.window: must be at least watch.every".into());
        }
        let watch = Watch {
            health: url("watch.health", &w.health)?,
            probe: url("watch.probe", &w.probe)?,
            metrics: url("watch.metrics", &w.metrics)?,
            every,
            timeout,
            window,
            steady_within: dur(
                "watch.steady_within",
                &w.steady_within,
                Some(Duration::from_secs(10)),
            )?
            .unwrap_or_default(),
        };
        if watch.health.is_none() && watch.probe.is_none() && watch.metrics.is_none() {
            return Err(
                "watch: nothing to watch; give health, probe or metrics (http:// URLs)".into(),
            );
        }
        let default_detect = dur("targets.detect_within", &raw.targets.detect_within, None)?;
        let default_recover = dur("targets.recover_within", &raw.targets.recover_within, None)?;
        let mut names = HashSet::new();
        let mut chaos = Vec::new();
        for (i, c) in raw.chaos.iter().enumerate() {
            if !names.insert(c.name.clone()) {
                return Err(format!("chaos[{i}].name: `{}` is used twice", c.name));
            }
            url(&format!("chaos[{i}].admin"), &Some(c.admin.clone()))?;
            if !crate::toxic::valid_name(&c.proxy) {
                return Err(format!(
                    "chaos[{i}].proxy: `{}` is not a proxy name",
                    c.proxy
                ));
            }
            chaos.push(ChaosTarget {
                name: c.name.clone(),
                admin: c.admin.trim_end_matches('/').to_string(),
                proxy: c.proxy.clone(),
            });
        }
        let mut gateways = Vec::new();
        for (i, g) in raw.gateway.iter().enumerate() {
            if !names.insert(g.name.clone()) {
                return Err(format!("gateway[{i}].name: `{}` is used twice", g.name));
            }
            url(&format!("gateway[{i}].admin"), &Some(g.admin.clone()))?;
            let token = match (&g.token, &g.token_env) {
                (Some(_), Some(_)) => {
                    return Err(format!("gateway[{i}]: give token or token_env, not both"))
                }
                (Some(t), None) => Some(t.clone()),
                (None, Some(var)) => Some(std::env::var(var).map_err(|_| {
                    format!("gateway[{i}].token_env: the environment variable `{var}` is not set")
                })?),
                (None, None) => None,
            };
            gateways.push(GatewayTarget {
                name: g.name.clone(),
                admin: g.admin.trim_end_matches('/').to_string(),
                token,
            });
        }
        if raw.step.is_empty() {
            return Err("no [[step]] (each with a fault, a duration and what detects it)".into());
        }
        let mut steps = Vec::new();
        for (i, s) in raw.step.iter().enumerate() {
            let at = format!("step[{i}]");
            let fault = fault(&at, &s.fault, &chaos, &gateways)?;
            let duration = dur(&format!("{at}.duration"), &Some(s.duration.clone()), None)?
                .unwrap_or_default();
            if duration.is_zero() {
                return Err(format!("{at}.duration: must be more than 0"));
            }
            let raw_detect = match &s.detect {
                Some(v) => Some(RawDetect::read(&at, v)?),
                None => None,
            };
            let detect = detect(&at, raw_detect.as_ref(), &watch)?;
            steps.push(Step {
                name: s
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("step {}: {}", i + 1, fault.describe())),
                fault,
                duration,
                detect,
                detect_within: dur(
                    &format!("{at}.detect_within"),
                    &s.detect_within,
                    default_detect,
                )?,
                recover_within: dur(
                    &format!("{at}.recover_within"),
                    &s.recover_within,
                    default_recover,
                )?,
            });
        }
        Ok(Scenario {
            name: raw.name.unwrap_or_else(|| default_name.to_string()),
            watch,
            chaos,
            gateways,
            steps,
        })
    }
}

fn fault(
    at: &str,
    table: &toml::Table,
    chaos: &[ChaosTarget],
    gateways: &[GatewayTarget],
) -> Result<Fault, String> {
    let target = match table.get("target") {
        Some(toml::Value::String(t)) => t.as_str(),
        Some(_) => return Err(format!("{at}.fault.target: must be a string")),
        None => {
            return Err(format!(
                "{at}.fault.target: missing (the name of a [[chaos]] or [[gateway]])"
            ))
        }
    };
    let mut body = serde_json::to_value(table).map_err(|e| format!("{at}.fault: {e}"))?;
    if let Some(m) = body.as_object_mut() {
        m.remove("target");
    }
    if let Some(c) = chaos.iter().find(|c| c.name == target) {
        for forbidden in ["name", "ttl"] {
            if table.contains_key(forbidden) {
                return Err(format!(
                    "{at}.fault.{forbidden}: set by the drill (each fault is named after its step and expires a little after it)"
                ));
            }
        }
        crate::toxic::parse_spec(&body).map_err(|e| format!("{at}.fault.{e}"))?;
        return Ok(Fault::Toxic {
            target: c.clone(),
            toxic: body,
        });
    }
    if let Some(g) = gateways.iter().find(|g| g.name == target) {
        for key in table.keys() {
            if !ROUTE_FAULT_FIELDS.contains(&key.as_str()) {
                return Err(format!(
                    "{at}.fault.{key}: not a field of a route fault (expected {})",
                    ROUTE_FAULT_FIELDS[1..].join(", ")
                ));
            }
        }
        if !matches!(table.get("route"), Some(toml::Value::String(_))) {
            return Err(format!(
                "{at}.fault.route: missing (the gateway route's name)"
            ));
        }
        let kind = table.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        if !ROUTE_FAULT_KINDS.contains(&kind) {
            return Err(format!(
                "{at}.fault.kind: `{kind}` is not one of {}",
                ROUTE_FAULT_KINDS.join(", ")
            ));
        }
        for key in ["delay", "jitter"] {
            if let Some(v) = table.get(key) {
                let ok = v
                    .as_str()
                    .is_some_and(|s| humantime::parse_duration(s).is_ok());
                if !ok {
                    return Err(format!(
                        "{at}.fault.{key}: `{v}` is not a duration like 200ms"
                    ));
                }
            }
        }
        if kind == "delay" && !table.contains_key("delay") {
            return Err(format!(
                "{at}.fault.delay: missing (a delay fault's delay, like \"200ms\")"
            ));
        }
        if kind == "abort" {
            match table.get("status").and_then(|s| s.as_integer()) {
                Some(s) if (200..=599).contains(&s) => {}
                _ => {
                    return Err(format!(
                        "{at}.fault.status: an abort needs a status from 200 to 599"
                    ))
                }
            }
        }
        if let Some(p) = table.get("percent") {
            match p.as_float().or(p.as_integer().map(|i| i as f64)) {
                Some(p) if (0.0..=100.0).contains(&p) => {}
                _ => return Err(format!("{at}.fault.percent: `{p}` is not from 0 to 100")),
            }
        }
        return Ok(Fault::Route {
            target: g.clone(),
            fault: body,
        });
    }
    let known: Vec<&str> = chaos
        .iter()
        .map(|c| c.name.as_str())
        .chain(gateways.iter().map(|g| g.name.as_str()))
        .collect();
    Err(format!(
        "{at}.fault.target: `{target}` names no [[chaos]] or [[gateway]]{}",
        if known.is_empty() {
            " (there are none)".to_string()
        } else {
            format!(" (known: {})", known.join(", "))
        }
    ))
}

fn detect(at: &str, raw: Option<&RawDetect>, watch: &Watch) -> Result<Detect, String> {
    let d = match raw {
        None => {
            if watch.health.is_some() {
                Detect {
                    health: true,
                    ..Detect::default()
                }
            } else {
                return Err(format!(
                    "{at}.detect: missing (\"health\", or a table with error_rate, p95, or metric and above/below)"
                ));
            }
        }
        Some(RawDetect::Word(w)) if w == "health" => Detect {
            health: true,
            ..Detect::default()
        },
        Some(RawDetect::Word(w)) => {
            return Err(format!(
                "{at}.detect: `{w}` is not \"health\" (or a table with error_rate, p95, or metric and above/below)"
            ))
        }
        Some(RawDetect::Table(t)) => {
            let metric = match (&t.metric, t.above, t.below) {
                (None, None, None) => None,
                (None, _, _) => {
                    return Err(format!("{at}.detect.metric: above/below given without a metric"))
                }
                (Some(_), None, None) => {
                    return Err(format!("{at}.detect.above: a metric needs above or below"))
                }
                (Some(s), above, below) => Some(MetricCondition {
                    series: s.clone(),
                    above,
                    below,
                }),
            };
            if let Some(r) = t.error_rate {
                if !(r > 0.0 && r <= 1.0) {
                    return Err(format!("{at}.detect.error_rate: {r} is not more than 0 and at most 1"));
                }
            }
            let d = Detect {
                health: t.health,
                error_rate: t.error_rate,
                p95: dur(&format!("{at}.detect.p95"), &t.p95, None)?,
                metric,
            };
            if d == Detect::default() {
                return Err(format!("{at}.detect: empty; give health = true, error_rate, p95, or metric"));
            }
            d
        }
    };
    if d.health && watch.health.is_none() {
        return Err(format!(
            "{at}.detect: health needs watch.health (the health endpoint's URL)"
        ));
    }
    if (d.error_rate.is_some() || d.p95.is_some()) && watch.probe.is_none() {
        return Err(format!(
            "{at}.detect: error_rate and p95 need watch.probe (a URL the drill requests)"
        ));
    }
    if d.metric.is_some() && watch.metrics.is_none() {
        return Err(format!(
            "{at}.detect: metric needs watch.metrics (a Prometheus-text URL)"
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "Redis primary unreachable"
[watch]
health = "http://127.0.0.1:8080/healthz"
probe = "http://127.0.0.1:8080/get?key=a"
every = "50ms"
[targets]
detect_within = "2s"
recover_within = "3s"
[[chaos]]
name = "redis"
admin = "http://127.0.0.1:8474"
proxy = "redis"
[[gateway]]
name = "gate"
admin = "http://127.0.0.1:9901"
token = "t"
[[step]]
fault = { target = "redis", type = "down" }
duration = "2s"
[[step]]
name = "slow orders"
fault = { target = "gate", route = "orders", kind = "delay", delay = "300ms" }
duration = "1s"
detect = { p95 = "250ms" }
recover_within = "1s"
"#;

    #[test]
    fn a_good_scenario() {
        let s = Scenario::parse(GOOD, "x").unwrap();
        assert_eq!(s.name, "Redis primary unreachable");
        assert_eq!(s.steps.len(), 2);
        assert!(s.steps[0].detect.health);
        assert_eq!(s.steps[0].name, "step 1: redis: down");
        assert_eq!(s.steps[1].recover_within, Some(Duration::from_secs(1)));
        assert_eq!(s.steps[1].detect_within, Some(Duration::from_secs(2)));
        assert_eq!(
            s.steps[1].fault.describe(),
            "gate: route orders delay delay=300ms"
        );
    }

    #[test]
    fn problems_name_the_field() {
        let bad = |from: &str, to: &str| {
            assert!(GOOD.contains(from), "{from}");
            Scenario::parse(&GOOD.replacen(from, to, 1), "x").unwrap_err()
        };
        assert_eq!(
            bad("type = \"down\"", "type = \"lag\""),
            "step[0].fault.type: `lag` is not one of latency, bandwidth, down, reset_peer, timeout, slow_close, limit_data"
        );
        assert!(bad("target = \"redis\"", "target = \"mysql\"").starts_with(
            "step[0].fault.target: `mysql` names no [[chaos]] or [[gateway]] (known: redis, gate)"
        ));
        assert!(bad("duration = \"2s\"", "duration = \"2 parsecs\"")
            .starts_with("step[0].duration: `2 parsecs`"));
        assert!(
            bad("kind = \"delay\"", "kind = \"slow\"").starts_with("step[1].fault.kind: `slow`")
        );
        assert!(bad(
            "detect = { p95 = \"250ms\" }",
            "detect = { p95 = \"250ms\", colour = 1 }"
        )
        .starts_with("step[1].detect: unknown field `colour`"));
        assert!(bad(
            "probe = \"http://127.0.0.1:8080/get?key=a\"",
            "probe = \"ftp://x\""
        )
        .starts_with("watch.probe: `ftp://x` is not an http:// URL"));
        assert!(bad("name = \"redis\"\nadmin", "name = \"gate\"\nadmin")
            .starts_with("gateway[0].name: `gate` is used twice"));
    }
}
