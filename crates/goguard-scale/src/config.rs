//! `scale.toml`: where the inputs come from, the decision tree's thresholds, the HPA-style
//! stabilisation, the verification and the hooks. Plain serde data, checked once by
//! [`parse`]; every problem is one line, `file:line: field: problem`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A whole `scale.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How often the tree is evaluated (the reference's 15 s).
    #[serde(default = "d_every", with = "dur")]
    pub every: Duration,
    /// Decisions and verifications kept for `/admin/status`.
    #[serde(default = "d_history")]
    pub history: usize,
    #[serde(default)]
    pub prometheus: Option<PrometheusSource>,
    #[serde(default)]
    pub gateway: Option<GatewaySource>,
    pub inputs: Inputs,
    #[serde(default)]
    pub tree: Tree,
    #[serde(default)]
    pub scale_in: Option<ScaleIn>,
    #[serde(default)]
    pub service: Service,
    #[serde(default)]
    pub behavior: Behavior,
    #[serde(default)]
    pub verify: Verify,
    /// The hook for every action without one of its own in `hooks`.
    #[serde(default)]
    pub hook: Option<Hook>,
    /// Hooks by action: `out`, `up`, `in`.
    #[serde(default)]
    pub hooks: BTreeMap<String, Hook>,
}

/// A Prometheus server's HTTP API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusSource {
    /// `http://HOST:PORT`, with a path prefix if Prometheus runs under one.
    pub url: String,
    #[serde(default = "d_timeout", with = "dur")]
    pub timeout: Duration,
}

/// A goguard gateway's admin listener (`/metrics` and `/admin/status`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySource {
    /// `http://HOST:PORT` of the gateway's `admin` address.
    pub admin: String,
    #[serde(default = "d_timeout", with = "dur")]
    pub timeout: Duration,
}

/// Where each figure of the tree comes from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    /// CPU use as a share of the service's allotment (0.8 = 80%).
    pub cpu: Input,
    /// Requests waiting.
    pub queue: Input,
    /// Connection-pool use as a share (0.95 = 95%).
    pub pool: Input,
    /// The p95 latency in seconds, for the verification.
    pub p95: Input,
    /// The live instance count (`kube_deployment_spec_replicas`), instead of counting from
    /// `service.replicas`.
    #[serde(default)]
    pub replicas: Option<Input>,
    /// The live core count per instance, instead of counting from `service.cores`.
    #[serde(default)]
    pub cores: Option<Input>,
}

/// One figure: a PromQL query, or a figure of the gateway's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// An instant PromQL query giving one number (aggregate it: `sum`, `max`, `avg`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// A gateway figure: `queue` (requests waiting for a concurrency slot), `in_flight`,
    /// `p95`, `p99` or `p50` (from the latency histogram since the last reading).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Only this route's figures (gateway inputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Only the routes sending to this upstream (gateway inputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
}

/// The reference's decision tree (5.4).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tree {
    #[serde(default = "d_cpu_above")]
    pub cpu_above: f64,
    #[serde(default = "d_queue_above")]
    pub queue_above: f64,
    #[serde(default = "d_pool_above")]
    pub pool_above: f64,
    /// A figure within this share of its threshold is at the threshold: no change
    /// (the HPA's `--horizontal-pod-autoscaler-tolerance`, 0.1).
    #[serde(default = "d_tolerance")]
    pub tolerance: f64,
    /// Instances added when the pool is saturated (scale out).
    #[serde(default = "d_out_by")]
    pub out_by: u32,
    /// Cores added per instance otherwise (scale up).
    #[serde(default = "d_up_by")]
    pub up_by: f64,
}

impl Default for Tree {
    fn default() -> Self {
        Tree {
            cpu_above: d_cpu_above(),
            queue_above: d_queue_above(),
            pool_above: d_pool_above(),
            tolerance: d_tolerance(),
            out_by: d_out_by(),
            up_by: d_up_by(),
        }
    }
}

/// Not in the reference (it only keeps the count): instances removed when the load is low.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleIn {
    pub cpu_below: f64,
    pub queue_below: f64,
    #[serde(default = "d_in_by")]
    pub by: u32,
}

/// The service's size now and its bounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Instances at start (unless `inputs.replicas` reads them).
    #[serde(default = "d_replicas")]
    pub replicas: u32,
    /// Cores per instance at start (unless `inputs.cores` reads them).
    #[serde(default = "d_cores")]
    pub cores: f64,
    #[serde(default = "d_min_replicas")]
    pub min_replicas: u32,
    #[serde(default = "d_max_replicas")]
    pub max_replicas: u32,
    #[serde(default = "d_min_cores")]
    pub min_cores: f64,
    #[serde(default = "d_max_cores")]
    pub max_cores: f64,
}

impl Default for Service {
    fn default() -> Self {
        Service {
            replicas: d_replicas(),
            cores: d_cores(),
            min_replicas: d_min_replicas(),
            max_replicas: d_max_replicas(),
            min_cores: d_min_cores(),
            max_cores: d_max_cores(),
        }
    }
}

/// The HPA's `behavior`, and a cooldown after each action.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Behavior {
    /// No new action this long after one (default: `verify.within`).
    #[serde(default, with = "dur_opt", skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<Duration>,
    #[serde(default = "d_scale_up")]
    pub scale_up: Rules,
    #[serde(default = "d_scale_down")]
    pub scale_down: Rules,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            cooldown: None,
            scale_up: d_scale_up(),
            scale_down: d_scale_down(),
        }
    }
}

/// One direction's stabilisation window and rate limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Scale down: the highest recommendation over this window is used. Scale up: the
    /// lowest (the HPA's defaults: 5 min down, 0 up).
    #[serde(with = "dur")]
    pub window: Duration,
    /// `max`: the policy allowing the largest change wins; `min`: the smallest; `disabled`:
    /// no change in this direction.
    #[serde(default = "d_select")]
    pub select: String,
    #[serde(default)]
    pub policies: Vec<Policy>,
}

/// At most `value` of change per `period`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// `instances`, `percent` (of the instances at the period's start) or `cores`.
    #[serde(rename = "type")]
    pub kind: String,
    pub value: f64,
    #[serde(with = "dur")]
    pub period: Duration,
}

/// The check after an action: did p95 come under the bound in time?
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    #[serde(default = "d_p95_below", with = "dur")]
    pub p95_below: Duration,
    #[serde(default = "d_within", with = "dur")]
    pub within: Duration,
    #[serde(default = "d_verify_every", with = "dur")]
    pub every: Duration,
}

impl Default for Verify {
    fn default() -> Self {
        Verify {
            p95_below: d_p95_below(),
            within: d_within(),
            every: d_verify_every(),
        }
    }
}

/// Where an action goes: a command (argv, no shell) or a webhook (a JSON POST).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    /// `["kubectl", "scale", "deployment/orders", "--replicas={replicas}"]`, or one string
    /// split at spaces. Placeholders: `{replicas}`, `{cores}`, `{action}`,
    /// `{previous_replicas}`, `{previous_cores}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Argv>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    #[serde(default = "d_hook_timeout", with = "dur")]
    pub timeout: Duration,
}

/// A command as an array, or one string split at whitespace.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Argv {
    List(Vec<String>),
    Line(String),
}

impl Argv {
    pub fn words(&self) -> Vec<String> {
        match self {
            Argv::List(v) => v.clone(),
            Argv::Line(s) => s.split_whitespace().map(str::to_string).collect(),
        }
    }
}

impl Config {
    /// The cooldown after an action: `behavior.cooldown`, else the verification window.
    pub fn cooldown(&self) -> Duration {
        self.behavior.cooldown.unwrap_or(self.verify.within)
    }

    /// The hook for an action (`out`, `up`, `in`), if any.
    pub fn hook_for(&self, action: &str) -> Option<&Hook> {
        self.hooks.get(action).or(self.hook.as_ref())
    }
}

fn d_every() -> Duration {
    Duration::from_secs(15)
}
fn d_history() -> usize {
    50
}
fn d_timeout() -> Duration {
    Duration::from_secs(2)
}
fn d_cpu_above() -> f64 {
    0.75
}
fn d_queue_above() -> f64 {
    200.0
}
fn d_pool_above() -> f64 {
    0.9
}
fn d_tolerance() -> f64 {
    0.1
}
fn d_out_by() -> u32 {
    2
}
fn d_up_by() -> f64 {
    1.0
}
fn d_in_by() -> u32 {
    1
}
fn d_replicas() -> u32 {
    1
}
fn d_cores() -> f64 {
    1.0
}
fn d_min_replicas() -> u32 {
    1
}
fn d_max_replicas() -> u32 {
    100
}
fn d_min_cores() -> f64 {
    0.5
}
fn d_max_cores() -> f64 {
    64.0
}
fn d_select() -> String {
    "max".into()
}
/// The HPA's default scale-up behaviour: no window, at most +4 pods or +100% per 15 s.
fn d_scale_up() -> Rules {
    Rules {
        window: Duration::ZERO,
        select: d_select(),
        policies: vec![
            Policy {
                kind: "instances".into(),
                value: 4.0,
                period: Duration::from_secs(15),
            },
            Policy {
                kind: "percent".into(),
                value: 100.0,
                period: Duration::from_secs(15),
            },
        ],
    }
}
/// The HPA's default scale-down behaviour: a 5 min window, at most -100% per 15 s.
fn d_scale_down() -> Rules {
    Rules {
        window: Duration::from_secs(300),
        select: d_select(),
        policies: vec![Policy {
            kind: "percent".into(),
            value: 100.0,
            period: Duration::from_secs(15),
        }],
    }
}
fn d_p95_below() -> Duration {
    Duration::from_millis(200)
}
fn d_within() -> Duration {
    Duration::from_secs(60)
}
fn d_verify_every() -> Duration {
    Duration::from_secs(5)
}
fn d_hook_timeout() -> Duration {
    Duration::from_secs(30)
}

/// Durations as people write them (`15s`, `200ms`, `1m`).
mod dur {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map_err(|e| serde::de::Error::custom(format!("`{s}`: {e} (write 15s, 200ms, 1m)")))
    }
}

mod dur_opt {
    use serde::{Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::dur::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::dur::deserialize(d).map(Some)
    }
}

/// A configuration that cannot be used: each problem is `file:line: field: problem`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

/// Reads and checks a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses and checks configuration text; `name` (the file) starts each problem.
pub fn parse(text: &str, name: &str) -> Result<Config, ConfigError> {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let config: Config = toml::from_str(text).map_err(|e| {
        let (line, field) = match e.span() {
            Some(s) => (line_of(s.start), field_at(text, s.start)),
            None => (0, None),
        };
        let message = e.message().replace('\n', " ");
        ConfigError::Invalid(vec![match field {
            Some(f) if !message.contains(&f) => format!("{name}:{line}: {f}: {message}"),
            _ => format!("{name}:{line}: {message}"),
        }])
    })?;
    let problems = validate(&config);
    if problems.is_empty() {
        return Ok(config);
    }
    Err(ConfigError::Invalid(
        problems
            .into_iter()
            .map(|(field, message)| {
                let line = line_of_field(text, &field);
                format!("{name}:{line}: {field}: {message}")
            })
            .collect(),
    ))
}

/// The dotted name of the key written on the line holding `offset` (with its table's
/// header), for type errors, which toml reports by position only.
fn field_at(text: &str, offset: usize) -> Option<String> {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("");
    let key = line.split_once('=').map(|(k, _)| k.trim())?;
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    let table = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}

/// The line where a dotted field (`tree.cpu_above`, `hooks.out.webhook`) is written, or
/// its table's header, or 0.
fn line_of_field(text: &str, field: &str) -> usize {
    let (table, key) = match field.rsplit_once('.') {
        Some((t, k)) => (t, k),
        None => ("", field),
    };
    let mut current = String::new();
    let mut header_line = 0;
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.starts_with('[') {
            current = l.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            if current == field {
                return i + 1;
            }
            if current == table {
                header_line = i + 1;
            }
            continue;
        }
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        let k = k.trim();
        if current == table && k == key {
            return i + 1;
        }
        // An inline table: `cpu = { query = ... }` under [inputs].
        if let Some((t_parent, t_key)) = table.rsplit_once('.') {
            if current == t_parent && k == t_key && v.contains(key) {
                return i + 1;
            }
        } else if current.is_empty() && k == table && v.contains(key) {
            return i + 1;
        }
        if (current.is_empty() && k == field) || (format!("{current}.{k}") == table) {
            header_line = header_line.max(i + 1);
        }
    }
    header_line
}

type Problem = (String, String);

/// Checks what the types cannot: ranges, sources named by inputs, hooks.
pub fn validate(c: &Config) -> Vec<Problem> {
    let mut p: Vec<Problem> = Vec::new();
    let mut bad = |field: &str, message: String| p.push((field.to_string(), message));
    if c.every.is_zero() {
        bad("every", "must be more than 0".into());
    }
    if let Some(s) = &c.prometheus {
        if let Err(e) = check_http_url(&s.url) {
            bad("prometheus.url", e);
        }
    }
    if let Some(s) = &c.gateway {
        if let Err(e) = check_http_url(&s.admin) {
            bad("gateway.admin", e);
        }
    }
    let mut inputs: Vec<(&str, &Input)> = vec![
        ("cpu", &c.inputs.cpu),
        ("queue", &c.inputs.queue),
        ("pool", &c.inputs.pool),
        ("p95", &c.inputs.p95),
    ];
    if let Some(i) = &c.inputs.replicas {
        inputs.push(("replicas", i));
    }
    if let Some(i) = &c.inputs.cores {
        inputs.push(("cores", i));
    }
    for (name, input) in inputs {
        let field = format!("inputs.{name}");
        match (&input.query, &input.gateway) {
            (Some(_), Some(_)) => bad(&field, "give `query` or `gateway`, not both".into()),
            (None, None) => bad(
                &field,
                "give `query` (PromQL) or `gateway` (queue, in_flight, p50, p95, p99)".into(),
            ),
            (Some(q), None) => {
                if c.prometheus.is_none() {
                    bad(
                        &field,
                        "a `query` needs a [prometheus] section with its url".into(),
                    );
                }
                if q.trim().is_empty() {
                    bad(&format!("{field}.query"), "is empty".into());
                }
                if input.route.is_some() || input.upstream.is_some() {
                    bad(
                        &field,
                        "`route` and `upstream` are for gateway inputs; filter in the query".into(),
                    );
                }
            }
            (None, Some(g)) => {
                if c.gateway.is_none() {
                    bad(
                        &field,
                        "a `gateway` input needs a [gateway] section with its admin address".into(),
                    );
                }
                if !crate::gateway::FIGURES.contains(&g.as_str()) {
                    bad(
                        &format!("{field}.gateway"),
                        format!("`{g}` is not one of {}", crate::gateway::FIGURES.join(", ")),
                    );
                }
                if input.route.is_some() && input.upstream.is_some() {
                    bad(&field, "give `route` or `upstream`, not both".into());
                }
            }
        }
    }
    let t = &c.tree;
    for (f, v) in [
        ("tree.cpu_above", t.cpu_above),
        ("tree.pool_above", t.pool_above),
    ] {
        if !(v > 0.0 && v <= 1.0) {
            bad(
                f,
                format!("{v} is not a share in (0, 1] (write 0.75 for 75%)"),
            );
        }
    }
    if t.queue_above.is_nan() || t.queue_above < 0.0 {
        bad("tree.queue_above", "must be 0 or more".into());
    }
    if !(0.0..1.0).contains(&t.tolerance) {
        bad(
            "tree.tolerance",
            "must be at least 0 and below 1 (the HPA's is 0.1)".into(),
        );
    }
    if t.out_by == 0 {
        bad("tree.out_by", "must be at least 1".into());
    }
    if !positive(t.up_by) {
        bad("tree.up_by", "must be more than 0".into());
    }
    if let Some(s) = &c.scale_in {
        if !(s.cpu_below > 0.0 && s.cpu_below < t.cpu_above) {
            bad(
                "scale_in.cpu_below",
                "must be more than 0 and below tree.cpu_above".into(),
            );
        }
        if !(s.queue_below >= 0.0 && s.queue_below <= t.queue_above) {
            bad(
                "scale_in.queue_below",
                "must be between 0 and tree.queue_above".into(),
            );
        }
        if s.by == 0 {
            bad("scale_in.by", "must be at least 1".into());
        }
    }
    let s = &c.service;
    if s.min_replicas == 0 {
        bad("service.min_replicas", "must be at least 1".into());
    }
    if s.max_replicas < s.min_replicas {
        bad(
            "service.max_replicas",
            "is below service.min_replicas".into(),
        );
    }
    if s.replicas < s.min_replicas || s.replicas > s.max_replicas {
        bad(
            "service.replicas",
            format!(
                "{} is outside min_replicas..max_replicas ({}..{})",
                s.replicas, s.min_replicas, s.max_replicas
            ),
        );
    }
    if !positive(s.min_cores) {
        bad("service.min_cores", "must be more than 0".into());
    }
    if s.max_cores.is_nan() || s.max_cores < s.min_cores {
        bad("service.max_cores", "is below service.min_cores".into());
    }
    if !(s.cores >= s.min_cores && s.cores <= s.max_cores) {
        bad(
            "service.cores",
            format!(
                "{} is outside min_cores..max_cores ({}..{})",
                s.cores, s.min_cores, s.max_cores
            ),
        );
    }
    for (dir, r) in [
        ("scale_up", &c.behavior.scale_up),
        ("scale_down", &c.behavior.scale_down),
    ] {
        if !["max", "min", "disabled"].contains(&r.select.as_str()) {
            bad(
                &format!("behavior.{dir}.select"),
                format!("`{}` is not one of max, min, disabled", r.select),
            );
        }
        for (i, pol) in r.policies.iter().enumerate() {
            let f = format!("behavior.{dir}.policies");
            if !["instances", "percent", "cores"].contains(&pol.kind.as_str()) {
                bad(
                    &f,
                    format!(
                        "policy {}: type `{}` is not one of instances, percent, cores",
                        i + 1,
                        pol.kind
                    ),
                );
            }
            if !positive(pol.value) {
                bad(&f, format!("policy {}: value must be more than 0", i + 1));
            }
            if pol.period.is_zero() {
                bad(&f, format!("policy {}: period must be more than 0", i + 1));
            }
        }
    }
    if c.verify.within.is_zero() {
        bad("verify.within", "must be more than 0".into());
    }
    if c.verify.every.is_zero() {
        bad("verify.every", "must be more than 0".into());
    }
    if c.verify.p95_below.is_zero() {
        bad("verify.p95_below", "must be more than 0".into());
    }
    let mut hooks: Vec<(String, &Hook)> = Vec::new();
    if let Some(h) = &c.hook {
        hooks.push(("hook".into(), h));
    }
    for (action, h) in &c.hooks {
        if !["out", "up", "in"].contains(&action.as_str()) {
            bad(
                &format!("hooks.{action}"),
                format!("`{action}` is not an action: out, up or in"),
            );
        }
        hooks.push((format!("hooks.{action}"), h));
    }
    for (f, h) in hooks {
        match (&h.command, &h.webhook) {
            (Some(_), Some(_)) => bad(&f, "give `command` or `webhook`, not both".into()),
            (None, None) => bad(&f, "give `command` (argv) or `webhook` (URL)".into()),
            (Some(cmd), None) => {
                let words = cmd.words();
                if words.is_empty() || words[0].is_empty() {
                    bad(&format!("{f}.command"), "is empty".into());
                }
                if let Argv::Line(line) = cmd {
                    if line.contains(['"', '\'', '|', ';', '&', '$', '`']) {
                        bad(&format!("{f}.command"), "is run without a shell: quotes and shell operators are not interpreted; write it as an array of words".into());
                    }
                }
                for w in &words {
                    if let Err(e) = crate::hook::check_template(w) {
                        bad(&format!("{f}.command"), e);
                    }
                }
            }
            (None, Some(url)) => {
                if let Err(e) = check_http_url(url) {
                    bad(&format!("{f}.webhook"), e);
                }
            }
        }
        if h.timeout.is_zero() {
            bad(&format!("{f}.timeout"), "must be more than 0".into());
        }
    }
    p
}

/// More than 0, and a number (TOML can write `nan`).
fn positive(x: f64) -> bool {
    x > 0.0
}

/// An `http://HOST:PORT[/path]` URL hyper can reach.
fn check_http_url(url: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        return Err(format!(
            "`{url}`: https is not supported yet; use http:// (a local proxy, or Prometheus's own listener)"
        ));
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!("`{url}` is not an http:// URL"));
    };
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    url.parse::<http::Uri>()
        .map(|_| ())
        .map_err(|e| format!("`{url}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[prometheus]
url = "http://127.0.0.1:9090"

[inputs]
cpu = { query = "avg(cpu)" }
queue = { query = "sum(queue)" }
pool = { query = "max(pool)" }
p95 = { query = "p95" }
"#;

    #[test]
    fn defaults_are_the_reference_and_the_hpa() {
        let c = parse(MINIMAL, "scale.toml").unwrap();
        assert_eq!(c.every, Duration::from_secs(15));
        assert_eq!(c.tree.cpu_above, 0.75);
        assert_eq!(c.tree.queue_above, 200.0);
        assert_eq!(c.tree.pool_above, 0.9);
        assert_eq!(c.tree.out_by, 2);
        assert_eq!(c.tree.up_by, 1.0);
        assert_eq!(c.tree.tolerance, 0.1);
        assert_eq!(c.verify.p95_below, Duration::from_millis(200));
        assert_eq!(c.verify.within, Duration::from_secs(60));
        assert_eq!(c.behavior.scale_down.window, Duration::from_secs(300));
        assert_eq!(c.cooldown(), Duration::from_secs(60));
    }

    fn problems(text: &str) -> Vec<String> {
        match parse(text, "scale.toml") {
            Err(ConfigError::Invalid(p)) => p,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn a_bad_value_names_the_file_line_and_field() {
        let text = format!("{MINIMAL}\n[tree]\ncpu_above = 75\n");
        let p = problems(&text);
        assert_eq!(
            p,
            ["scale.toml:12: tree.cpu_above: 75 is not a share in (0, 1] (write 0.75 for 75%)"]
        );
        let text = format!("{MINIMAL}\n[verify]\nwithin = \"a minute\"\n");
        let p = problems(&text);
        assert_eq!(p.len(), 1);
        assert!(
            p[0].starts_with("scale.toml:12: verify.within: `a minute`"),
            "{p:?}"
        );
        let text = format!("{MINIMAL}\n[tree]\ncpu_abov = 0.7\n");
        let p = problems(&text);
        assert!(
            p[0].starts_with("scale.toml:12:") && p[0].contains("cpu_abov"),
            "{p:?}"
        );
    }

    #[test]
    fn inputs_need_their_source_and_hooks_their_shape() {
        let text = r#"
[inputs]
cpu = { query = "avg(cpu)" }
queue = { gateway = "queue_depth" }
pool = { query = "max(pool)", gateway = "p95" }
p95 = { }

[hooks.sideways]
command = "kubectl scale --replicas=$N"
"#;
        let p = problems(text);
        let want = [
            "scale.toml:3: inputs.cpu: a `query` needs a [prometheus] section with its url",
            "scale.toml:4: inputs.queue: a `gateway` input needs a [gateway] section with its admin address",
            "scale.toml:4: inputs.queue.gateway: `queue_depth` is not one of queue, in_flight, p50, p95, p99",
            "scale.toml:5: inputs.pool: give `query` or `gateway`, not both",
            "scale.toml:6: inputs.p95: give `query` (PromQL) or `gateway` (queue, in_flight, p50, p95, p99)",
            "scale.toml:8: hooks.sideways: `sideways` is not an action: out, up or in",
            "scale.toml:9: hooks.sideways.command: is run without a shell: quotes and shell operators are not interpreted; write it as an array of words",
        ];
        assert_eq!(p, want);
    }

    #[test]
    fn a_template_with_an_unknown_placeholder_is_refused() {
        let text =
            format!("{MINIMAL}\n[hook]\ncommand = [\"kubectl\", \"--replicas={{replica}}\"]\n");
        let p = problems(&text);
        assert_eq!(p.len(), 1);
        assert!(
            p[0].starts_with("scale.toml:12: hook.command: `{replica}`"),
            "{p:?}"
        );
    }
}
