//! `gate.toml`: the gateway's configuration.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! admin  = "127.0.0.1:9901"
//!
//! [upstreams.orders]
//! targets = ["127.0.0.1:9000"]
//!
//! [[routes]]
//! name = "orders"
//! path_prefix = "/orders"
//! upstream = "orders"
//!
//! [routes.breaker]
//! window = "30s"
//! min_rps = 800
//! error_ratio = 0.15
//! ```
//!
//! Parsing is in two steps: serde reads the shape (types, unknown fields), then `validate`
//! checks what serde cannot (references between sections, ranges, combinations). Both kinds
//! of error are reported with the file, the line and the field's path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::layer::serde_duration as human_duration;
use crate::layer::string_serde;

// Each protection's section is its layer's rule (a layer reads its own configuration).
pub use crate::layer::bloom::Rule as Bloom;
pub use crate::layer::breaker::{ErrorClasses, Rule as Breaker, Scope as BreakerScope};
pub use crate::layer::cache::Rule as Cache;
pub use crate::layer::colour::{RouteRule as RouteColour, Rule as Colour};
pub use crate::layer::concurrency::Rule as Concurrency;
pub use crate::layer::fault::Rule as Fault;
pub use crate::layer::limit::{KeySpec, KeyedRate, Rate, RateLimit, Rule as Limit};

/// A configuration that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// One or more problems, each `file:line: field: message`.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where clients connect.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Metrics, status and reload. Loopback by default; elsewhere it needs `admin_token`.
    #[serde(default = "default_admin")]
    pub admin: SocketAddr,
    /// Required for mutating admin calls (reload), and for a non-loopback admin address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    #[serde(default)]
    pub server: Server,
    #[serde(default)]
    pub upstreams: BTreeMap<String, Upstream>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub events: Events,
    /// Shared limits across gateway instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<Redis>,
    /// Where new versions of the configuration come from besides this file (a config
    /// centre); only the file read at start may name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::config_center::Source>,
    /// How a new version is rolled out: to a slice of the users first, watched, then step by
    /// step to all of them (5.6). Without it a new version applies to every request at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gray: Option<crate::gray::Rule>,
    /// Traffic colouring (5.3): which header marks a drill's requests, and who may set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colour: Option<Colour>,
    /// Fault injection (5.3): the bounds of the faults switched on at run time.
    #[serde(default)]
    pub faults: Faults,
}

/// `[faults]`: what holds for every route's faults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Requests faulted at once over every route; beyond, requests pass unfaulted.
    pub max_active_faults: u32,
    /// How long a fault switched on through the admin API lasts when it names no `ttl`.
    #[serde(with = "human_duration")]
    pub default_ttl: Duration,
    /// The longest `ttl` the admin API accepts.
    #[serde(with = "human_duration")]
    pub max_ttl: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            max_active_faults: 1000,
            default_ttl: Duration::from_secs(300),
            max_ttl: Duration::from_secs(3600),
        }
    }
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:8080".parse().expect("constant")
}

fn default_admin() -> SocketAddr {
    "127.0.0.1:9901".parse().expect("constant")
}

/// Limits on what clients may send, and timeouts against slow clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// The longest wait for a request head, on a new connection and between the requests of
    /// a kept-alive one: slow clients (slowloris) and idle HTTP/1 connections are closed
    /// after it.
    #[serde(with = "human_duration")]
    pub header_timeout: Duration,
    /// Idle connections to upstreams are closed after this; HTTP/2 clients are pinged at
    /// half of it.
    #[serde(with = "human_duration")]
    pub idle_timeout: Duration,
    pub max_header_bytes: u64,
    pub max_body_bytes: u64,
    /// Proxies whose `X-Forwarded-For`/`Forwarded` are believed (addresses or CIDRs).
    pub trusted_proxies: Vec<String>,
    /// How long a shutdown waits for in-flight requests.
    #[serde(with = "human_duration")]
    pub drain: Duration,
    /// One JSON line per request: `stdout`, `stderr`, `file:PATH` or `off`.
    pub access_log: String,
    /// Client connections open at once; one more is answered 503 and closed.
    pub max_connections: u32,
    /// Client connections one address may hold open (trusted proxies are not counted); one
    /// more is answered 503 and closed. Default: a quarter of `max_connections`, at most 256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_client: Option<u32>,
    /// The longest a write to a client may wait for the client to read (nginx's
    /// `send_timeout`, between two writes, not for the whole answer); then the connection
    /// is closed.
    #[serde(with = "human_duration")]
    pub send_timeout: Duration,
}

impl Server {
    /// `max_connections_per_client`, or its default.
    pub fn per_client_limit(&self) -> u32 {
        self.max_connections_per_client
            .unwrap_or_else(|| (self.max_connections / 4).clamp(1, 256))
    }
}

impl Default for Server {
    fn default() -> Self {
        Server {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 64 * 1024,
            max_body_bytes: 10 * 1024 * 1024,
            trusted_proxies: Vec::new(),
            drain: Duration::from_secs(30),
            access_log: "stdout".into(),
            max_connections: 10_000,
            max_connections_per_client: None,
            send_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    #[default]
    RoundRobin,
    /// Power of two choices on in-flight requests.
    LeastRequest,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// `host:port` of each instance.
    pub targets: Vec<String>,
    #[serde(default)]
    pub balance: Balance,
    /// HTTP/2 with prior knowledge instead of HTTP/1.1.
    #[serde(default)]
    pub http2: bool,
    #[serde(default = "default_connect_timeout", with = "human_duration")]
    pub connect_timeout: Duration,
    #[serde(default = "default_request_timeout", with = "human_duration")]
    pub request_timeout: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthCheck>,
    /// Passive ejection: a target failing this many times in a row is skipped for `eject_for`.
    #[serde(default = "default_eject_after")]
    pub eject_after: u32,
    #[serde(default = "default_eject_for", with = "human_duration")]
    pub eject_for: Duration,
    #[serde(default)]
    pub retry: Retry,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(15)
}
fn default_eject_after() -> u32 {
    5
}
fn default_eject_for() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub path: String,
    #[serde(default = "default_health_interval", with = "human_duration")]
    pub interval: Duration,
    #[serde(default = "default_connect_timeout", with = "human_duration")]
    pub timeout: Duration,
}

fn default_health_interval() -> Duration {
    Duration::from_secs(5)
}

/// Retries of idempotent requests only, within a budget.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retry {
    pub attempts: u32,
    /// Retries may add at most this share of the requests (Envoy's retry budget).
    pub budget_ratio: f64,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 1,
            budget_ratio: 0.2,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub name: String,
    #[serde(default = "default_prefix")]
    pub path_prefix: String,
    /// How `path_prefix` matches: whole segments (`/orders` matches `/orders` and
    /// `/orders/1`, not `/ordersXYZ`), or as a plain string.
    #[serde(default, skip_serializing_if = "PrefixMatch::is_default")]
    pub prefix_match: PrefixMatch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Header name -> required value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    pub upstream: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<Breaker>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<Limit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
    /// A read-through cache for GET requests (5.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<Cache>,
    /// A Bloom filter of the ids that exist: unknown ones get a 404 without the service (5.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bloom: Option<Bloom>,
    /// Requests of this route faulted at once (besides `[faults] max_active_faults`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active_faults: Option<u32>,
    /// What the route does with coloured requests (its shadow upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colour: Option<RouteColour>,
    /// Faults in force as long as this configuration (5.3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<Fault>,
}

fn default_prefix() -> String {
    "/".into()
}

/// How a route's `path_prefix` matches a (normalised) path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PrefixMatch {
    /// Whole path segments; a prefix ending in `/` matches anything under it.
    #[default]
    Segment,
    /// Any path starting with the prefix's characters.
    String,
}

impl PrefixMatch {
    fn is_default(&self) -> bool {
        *self == PrefixMatch::Segment
    }

    pub fn matches(self, prefix: &str, path: &str) -> bool {
        match path.strip_prefix(prefix) {
            None => false,
            Some(rest) => {
                self == PrefixMatch::String
                    || rest.is_empty()
                    || rest.starts_with('/')
                    || prefix.ends_with('/')
            }
        }
    }
}

/// What a route answers when its breaker is open.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fallback {
    #[serde(default = "default_fallback_status")]
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<String>,
    /// Another upstream that serves a degraded answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    #[serde(default = "default_content_type")]
    pub content_type: String,
}

fn default_fallback_status() -> u16 {
    503
}
fn default_content_type() -> String {
    "text/plain; charset=utf-8".into()
}

/// Where "abnormal user behaviour" events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    File(PathBuf),
    /// `redis://host:port/stream:NAME`: XADD to that stream.
    RedisStream {
        url: String,
        stream: String,
    },
    Webhook(String),
}

impl std::str::FromStr for Sink {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err(format!("`{s}`: the file path is empty"));
            }
            return Ok(Sink::File(path.into()));
        }
        if s.starts_with("redis://") || s.starts_with("rediss://") {
            let (url, stream) = s
                .rsplit_once("/stream:")
                .ok_or_else(|| format!("`{s}`: expected redis://HOST:PORT/stream:NAME"))?;
            if stream.is_empty() {
                return Err(format!("`{s}`: the stream name is empty"));
            }
            return Ok(Sink::RedisStream {
                url: url.to_string(),
                stream: stream.to_string(),
            });
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            return Ok(Sink::Webhook(s.to_string()));
        }
        Err(format!(
            "`{s}`: expected file:PATH, redis://HOST:PORT/stream:NAME or an http(s) URL"
        ))
    }
}

impl std::fmt::Display for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sink::File(p) => write!(f, "file:{}", p.display()),
            Sink::RedisStream { url, stream } => write!(f, "{url}/stream:{stream}"),
            Sink::Webhook(u) => write!(f, "{u}"),
        }
    }
}

string_serde!(Sink);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Events {
    pub sink: Sink,
    /// Events waiting to be written; more are dropped (and counted), never waited for.
    pub queue: usize,
    /// A user is abnormal after this many rejections (limit or open breaker) ...
    pub rejections: u32,
    /// ... within this window.
    #[serde(with = "human_duration")]
    pub window: Duration,
    /// Who "the user" is in events: by default the route's per-key limit key, else the
    /// client's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<KeySpec>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            sink: Sink::File("events.jsonl".into()),
            queue: 1024,
            rejections: 20,
            window: Duration::from_secs(10),
            user: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redis {
    pub url: String,
    /// When Redis is unreachable: reject (true) or fall back to local limits (false).
    #[serde(default)]
    pub fail_closed: bool,
    #[serde(default = "default_redis_timeout", with = "human_duration")]
    pub timeout: Duration,
}

fn default_redis_timeout() -> Duration {
    Duration::from_millis(50)
}

/// Reads, parses and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses and validates configuration text; `name` is used in error messages.
pub fn parse(text: &str, name: &str) -> Result<Config, ConfigError> {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let config: Config = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(s.start));
        ConfigError::Invalid(vec![format!(
            "{name}:{line}: {}",
            e.message().replace('\n', " ")
        )])
    })?;
    let problems = validate(&config);
    if problems.is_empty() {
        return Ok(config);
    }
    let doc = toml_edit::ImDocument::parse(text.to_string()).ok();
    Err(ConfigError::Invalid(
        problems
            .into_iter()
            .map(|(field, message)| {
                let line = doc
                    .as_ref()
                    .and_then(|d| span_of(d, &field))
                    .map_or(0, line_of);
                format!("{name}:{line}: {}: {message}", field.join("."))
            })
            .collect(),
    ))
}

/// The byte offset of a field, by its path (`routes.0.breaker.error_ratio`), or of the
/// deepest part of the path that exists.
fn span_of(doc: &toml_edit::ImDocument<String>, path: &[String]) -> Option<usize> {
    span_in_table(doc.as_table(), path)
}

fn span_in_table(t: &toml_edit::Table, path: &[String]) -> Option<usize> {
    let here = t.span().map(|s| s.start);
    let Some((first, rest)) = path.split_first() else {
        return here;
    };
    t.get(first).and_then(|i| span_in_item(i, rest)).or(here)
}

fn span_in_item(item: &toml_edit::Item, path: &[String]) -> Option<usize> {
    use toml_edit::Item;
    let here = item.span().map(|s| s.start);
    let Some((first, rest)) = path.split_first() else {
        return here;
    };
    let deeper = match item {
        Item::Table(t) => t.get(first).and_then(|i| span_in_item(i, rest)),
        Item::ArrayOfTables(a) => first
            .parse::<usize>()
            .ok()
            .and_then(|i| a.get(i))
            .and_then(|t| span_in_table(t, rest)),
        Item::Value(v) => return span_in_value(v, path),
        Item::None => None,
    };
    deeper.or(here)
}

fn span_in_value(v: &toml_edit::Value, path: &[String]) -> Option<usize> {
    use toml_edit::Value;
    let here = v.span().map(|s| s.start);
    let Some((first, rest)) = path.split_first() else {
        return here;
    };
    let deeper = match v {
        Value::InlineTable(t) => t.get(first).and_then(|x| span_in_value(x, rest)),
        Value::Array(a) => first
            .parse::<usize>()
            .ok()
            .and_then(|i| a.get(i))
            .and_then(|x| span_in_value(x, rest)),
        _ => None,
    };
    deeper.or(here)
}

type Problem = (Vec<String>, String);

fn field(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| p.to_string()).collect()
}

/// Checks what the types cannot: references, ranges and combinations.
pub fn validate(c: &Config) -> Vec<Problem> {
    let mut out: Vec<Problem> = Vec::new();
    if c.listen == c.admin && c.listen.port() != 0 {
        out.push((
            field(&["admin"]),
            "the admin listener cannot share the client listener's address".into(),
        ));
    }
    if !c.admin.ip().is_loopback() && c.admin_token.is_none() {
        out.push((
            field(&["admin"]),
            format!("`{}` is not a loopback address: set `admin_token` so that others cannot reload the gateway", c.admin),
        ));
    }
    if let Err(e) = crate::proxy::TrustedProxies::parse(&c.server.trusted_proxies) {
        out.push((field(&["server", "trusted_proxies"]), e));
    }
    let log = c.server.access_log.as_str();
    if !matches!(log, "stdout" | "stderr" | "off")
        && log.strip_prefix("file:").is_none_or(str::is_empty)
    {
        out.push((
            field(&["server", "access_log"]),
            format!("`{log}`: expected stdout, stderr, off or file:PATH"),
        ));
    }
    for (name, u) in &c.upstreams {
        if u.targets.is_empty() {
            out.push((field(&["upstreams", name, "targets"]), "no target".into()));
        }
        for (i, t) in u.targets.iter().enumerate() {
            let ok = t.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if !ok {
                out.push((
                    field(&["upstreams", name, "targets", &i.to_string()]),
                    format!("`{t}`: expected HOST:PORT"),
                ));
            }
        }
        if !(0.0..=1.0).contains(&u.retry.budget_ratio) {
            out.push((
                field(&["upstreams", name, "retry", "budget_ratio"]),
                "must be between 0 and 1".into(),
            ));
        }
        if let Some(h) = &u.health {
            if !h.path.starts_with('/') {
                out.push((
                    field(&["upstreams", name, "health", "path"]),
                    "must start with /".into(),
                ));
            }
        }
    }
    let mut names = std::collections::HashSet::new();
    for (i, r) in c.routes.iter().enumerate() {
        let at = |rest: &[&str]| {
            let mut f = vec!["routes".to_string(), i.to_string()];
            f.extend(rest.iter().map(|s| s.to_string()));
            f
        };
        if !names.insert(r.name.as_str()) {
            out.push((
                at(&["name"]),
                format!("route `{}` is defined twice", r.name),
            ));
        }
        if !c.upstreams.contains_key(&r.upstream) {
            out.push((
                at(&["upstream"]),
                format!(
                    "no upstream `{}` (define [upstreams.{}])",
                    r.upstream, r.upstream
                ),
            ));
        }
        if !r.path_prefix.starts_with('/') {
            out.push((at(&["path_prefix"]), "must start with /".into()));
        }
        let sections = [
            ("breaker", r.breaker.as_ref().map(Breaker::problems)),
            ("limit", r.limit.as_ref().map(Limit::problems)),
            ("cache", r.cache.as_ref().map(Cache::problems)),
            ("bloom", r.bloom.as_ref().map(Bloom::problems)),
        ];
        for (section, problems) in sections {
            for (rest, message) in problems.into_iter().flatten() {
                out.push((at(&[&[section][..], &rest].concat()), message));
            }
        }
        for (j, f) in r.faults.iter().enumerate() {
            for (rest, message) in f.problems() {
                out.push((
                    at(&[&["faults", &j.to_string()][..], &rest].concat()),
                    message,
                ));
            }
            if f.coloured_only && c.colour.is_none() {
                out.push((
                    at(&["faults", &j.to_string(), "coloured_only"]),
                    "no request is coloured without a [colour] section: add one, or set coloured_only = false".into(),
                ));
            }
        }
        if r.max_active_faults == Some(0) {
            out.push((at(&["max_active_faults"]), "at least 1".into()));
        }
        if let Some(shadow) = r.colour.as_ref().and_then(|rc| rc.shadow.as_ref()) {
            if c.colour.is_none() {
                out.push((
                    at(&["colour", "shadow"]),
                    "no request is coloured without a [colour] section".into(),
                ));
            }
            if !c.upstreams.contains_key(shadow) {
                out.push((
                    at(&["colour", "shadow"]),
                    format!("no upstream `{shadow}` (define [upstreams.{shadow}])"),
                ));
            } else if *shadow == r.upstream {
                out.push((
                    at(&["colour", "shadow"]),
                    "the shadow is the route's own upstream".into(),
                ));
            }
        }
        if let Some(f) = &r.fallback {
            let kinds = [
                f.body.is_some(),
                f.file.is_some(),
                f.redirect.is_some(),
                f.upstream.is_some(),
            ]
            .iter()
            .filter(|x| **x)
            .count();
            if kinds > 1 {
                out.push((
                    at(&["fallback"]),
                    "choose one of body, file, redirect or upstream".into(),
                ));
            }
            if !(100..=599).contains(&f.status) {
                out.push((
                    at(&["fallback", "status"]),
                    format!("{} is not an HTTP status", f.status),
                ));
            }
            if let Some(u) = &f.upstream {
                if !c.upstreams.contains_key(u) {
                    out.push((at(&["fallback", "upstream"]), format!("no upstream `{u}`")));
                }
            }
            if f.redirect.is_some() && !(300..=399).contains(&f.status) && f.status != 503 {
                out.push((
                    at(&["fallback", "status"]),
                    "a redirect needs a 3xx status".into(),
                ));
            }
        }
    }
    // An upstream-scoped breaker is one breaker: its routes must agree on the rule.
    let mut upstream_rules: std::collections::HashMap<&str, (usize, String)> = Default::default();
    for (i, r) in c.routes.iter().enumerate() {
        let Some(b) = r
            .breaker
            .as_ref()
            .filter(|b| b.scope == BreakerScope::Upstream)
        else {
            continue;
        };
        let rule = serde_json::to_string(b).unwrap_or_default();
        match upstream_rules.get(r.upstream.as_str()) {
            Some((first, other)) if *other != rule => out.push((
                field(&["routes", &i.to_string(), "breaker"]),
                format!(
                    "the upstream-scoped breaker of `{}` differs from route {}'s: routes sharing an upstream's breaker must give the same rule",
                    r.upstream, c.routes[*first].name
                ),
            )),
            Some(_) => {}
            None => {
                upstream_rules.insert(&r.upstream, (i, rule));
            }
        }
    }
    if c.events.queue == 0 {
        out.push((field(&["events", "queue"]), "at least 1".into()));
    }
    if let Some(r) = &c.redis {
        if !(r.url.starts_with("redis://") || r.url.starts_with("rediss://")) {
            out.push((
                field(&["redis", "url"]),
                format!("`{}`: expected redis://HOST:PORT", r.url),
            ));
        }
    }
    if c.faults.max_active_faults == 0 {
        out.push((field(&["faults", "max_active_faults"]), "at least 1".into()));
    }
    if c.faults.default_ttl.is_zero() || c.faults.default_ttl > c.faults.max_ttl {
        out.push((
            field(&["faults", "default_ttl"]),
            "more than 0 and at most max_ttl".into(),
        ));
    }
    for (section, problems) in [
        ("source", c.source.as_ref().map(|s| s.problems())),
        ("gray", c.gray.as_ref().map(|g| g.problems())),
        ("colour", c.colour.as_ref().map(|g| g.problems())),
    ] {
        for (path, message) in problems.unwrap_or_default() {
            let mut f = vec![section.to_string()];
            f.extend(path.iter().map(|p| p.to_string()));
            out.push((f, message));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the gateway issue, as written.
    pub const EXAMPLE: &str = r#"listen = "127.0.0.1:8080"
admin  = "127.0.0.1:9901"          # metrics, status, reload; loopback only by default

[upstreams.orders]
targets = ["127.0.0.1:9000"]

[[routes]]
name = "orders"
path_prefix = "/orders"
upstream = "orders"

[routes.breaker]                    # 5.1: open only when BOTH hold over the window
window = "30s"
min_rps = 800                        # throughput floor: quiet hours never trip it
error_ratio = 0.15
open_for = "10s"                     # then half-open
half_open_probes = 5

[routes.limit]                       # 5.5: per user at the edge, per resource behind it
per_key = { key = "header:x-user-id", rate = "50/s", burst = 50 }
total   = { rate = "3000/s" }

[routes.fallback]                    # 5.5: when the breaker is open
status = 503
body = "Service busy, please retry shortly."

[events]                             # 5.5: abnormal-user events for risk control
sink = "file:events.jsonl"           # or "redis://127.0.0.1:6379/stream:goguard-events", or an http(s) webhook
"#;

    #[test]
    fn the_issue_example_is_valid() {
        let c = parse(EXAMPLE, "gate.toml").unwrap();
        let r = &c.routes[0];
        let b = r.breaker.as_ref().unwrap();
        assert_eq!(
            (b.window, b.min_rps, b.error_ratio),
            (Duration::from_secs(30), Some(800.0), Some(0.15))
        );
        let l = r.limit.as_ref().unwrap();
        let pk = l.per_key.as_ref().unwrap();
        assert_eq!(
            pk.key,
            KeySpec::Header(http::HeaderName::from_static("x-user-id"))
        );
        assert_eq!((pk.rate.per_second, pk.burst), (50.0, Some(50)));
        assert_eq!(l.total.as_ref().unwrap().rate.per_second, 3000.0);
        assert_eq!(c.events.sink, Sink::File("events.jsonl".into()));
        assert_eq!(r.fallback.as_ref().unwrap().status, 503);
    }

    #[test]
    fn shape_errors_name_the_line() {
        let text = EXAMPLE.replace("error_ratio = 0.15", "error_ratio = \"high\"");
        let err = parse(&text, "gate.toml").unwrap_err().to_string();
        assert!(err.starts_with("gate.toml:15: "), "{err}");
        let text = EXAMPLE.replace("window = \"30s\"", "window = \"30 parsecs\"");
        let err = parse(&text, "gate.toml").unwrap_err().to_string();
        assert!(
            err.starts_with("gate.toml:13: ") && err.contains("30 parsecs"),
            "{err}"
        );
        let text = EXAMPLE.replace("min_rps = 800", "min_rsp = 800");
        let err = parse(&text, "gate.toml").unwrap_err().to_string();
        assert!(err.contains("min_rsp"), "unknown fields are refused: {err}");
    }

    #[test]
    fn meaning_errors_name_the_line_and_field() {
        let text = EXAMPLE.replace("upstream = \"orders\"", "upstream = \"order\"");
        let err = parse(&text, "gate.toml").unwrap_err().to_string();
        assert_eq!(
            err,
            "gate.toml:10: routes.0.upstream: no upstream `order` (define [upstreams.order])"
        );
        let text = EXAMPLE.replace("error_ratio = 0.15", "error_ratio = 1.5");
        let err = parse(&text, "gate.toml").unwrap_err().to_string();
        assert_eq!(
            err,
            "gate.toml:15: routes.0.breaker.error_ratio: must be more than 0 and at most 1"
        );
        let text = EXAMPLE.replace("rate = \"50/s\"", "rate = \"50/fortnight\"");
        let err = parse(&text, "gate.toml").unwrap_err().to_string();
        assert!(
            err.starts_with("gate.toml:20: ") && err.contains("unknown unit"),
            "{err}"
        );
        let text = EXAMPLE.replace(
            "min_rps = 800                        # throughput floor: quiet hours never trip it\n",
            "",
        );
        let err = parse(&text, "gate.toml").unwrap_err().to_string();
        assert!(
            err.contains("routes.0.breaker: set min_rps or min_requests"),
            "{err}"
        );
        let text = EXAMPLE.replace("admin  = \"127.0.0.1:9901\"", "admin  = \"0.0.0.0:9901\"");
        let err = parse(&text, "gate.toml").unwrap_err().to_string();
        assert!(
            err.starts_with("gate.toml:2: admin: ") && err.contains("admin_token"),
            "{err}"
        );
    }

    #[test]
    fn the_effective_config_reads_back_the_same() {
        let c = parse(EXAMPLE, "gate.toml").unwrap();
        let text = toml::to_string_pretty(&c).unwrap();
        let again = parse(&text, "effective.toml").unwrap();
        assert_eq!(toml::to_string_pretty(&again).unwrap(), text);
    }

    #[test]
    fn values() {
        assert_eq!("3000/m".parse::<Rate>().unwrap().per_second, 50.0);
        assert!("0/s".parse::<Rate>().is_err());
        assert_eq!(
            "client_addr".parse::<KeySpec>().unwrap(),
            KeySpec::ClientAddr
        );
        assert!("header:".parse::<KeySpec>().is_err());
        assert!("header:x user".parse::<KeySpec>().is_err());
        assert_eq!(
            "header:X-User-Id".parse::<KeySpec>().unwrap(),
            KeySpec::Header(http::HeaderName::from_static("x-user-id")),
            "header names are case-insensitive"
        );
        assert_eq!(
            "redis://127.0.0.1:6379/stream:goguard-events"
                .parse::<Sink>()
                .unwrap(),
            Sink::RedisStream {
                url: "redis://127.0.0.1:6379".into(),
                stream: "goguard-events".into()
            }
        );
        assert!("ftp://x".parse::<Sink>().is_err());
    }
}
