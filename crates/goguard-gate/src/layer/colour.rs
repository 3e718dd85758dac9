//! Traffic colouring (5.3): a header (`X-Trace-Mode: chaos`) marks a request as a drill's.
//!
//! [`ColourLayer`] believes a mark only when it is signed with the configured key (HMAC-SHA256
//! over the colour and a Unix timestamp, valid for `max_age`) or when the client's address is
//! in `trusted_networks`; any other mark is removed before the request goes on, so no client
//! can have faults injected or reach a shadow service by sending the header. A believed mark
//! goes on as the bare colour (`X-Trace-Mode: chaos`: what the service and its own
//! downstream calls read) and as [`Coloured`] in the request's extensions, for the layers
//! inside (faults, the shadow upstream, the cache, which lets coloured requests pass by).
//!
//! The signed form, parsed strictly (one header, at most 256 bytes, exactly these three
//! parts in this order, spaces allowed only around `;`):
//!
//! ```text
//! X-Trace-Mode: chaos; t=1733412345; sig=<64 hex digits>
//! sig = hex(HMAC-SHA256(key, "chaos:1733412345"))
//! ```
//!
//! [`ShadowLayer`] sends coloured requests to another service (the route's `shadow`
//! upstream) instead of the inner one.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use http::{HeaderName, HeaderValue, Request, Response};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

use super::limit::ClientAddr;
use super::{
    json, Answering, Body, BoxError, MetricDesc, MetricKind, Problems, Protection, ProtectionLayer,
    RejectKind, Sample, UpstreamError,
};

/// The longest colour header accepted; a longer one is stripped unread.
pub const MAX_HEADER_BYTES: usize = 256;
/// The longest colour value (`chaos`).
pub const MAX_VALUE_BYTES: usize = 32;
/// The shortest key accepted: HMAC-SHA256's security rests on it.
pub const MIN_KEY_BYTES: usize = 16;

/// Headers that cannot be the colour's.
const RESERVED: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "content-type",
    "expect",
    "authorization",
    "cookie",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
];

/// `[colour]`: which header marks a drill's requests, and who may set it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The header (case-insensitive).
    #[serde(default = "default_header")]
    pub header: String,
    /// The colours accepted (`chaos`); a mark with another is stripped.
    #[serde(default = "default_values")]
    pub values: Vec<String>,
    /// The HMAC key, as text (at least 16 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A file holding the key (relative to the configuration file; one trailing newline is
    /// not part of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// How long a signed mark is valid after its timestamp.
    #[serde(default = "default_max_age", with = "crate::layer::serde_duration")]
    pub max_age: Duration,
    /// How far in the future a timestamp may be (clocks disagree a little).
    #[serde(default = "default_max_skew", with = "crate::layer::serde_duration")]
    pub max_skew: Duration,
    /// Clients whose marks are believed unsigned (addresses or CIDRs): the services' own
    /// network, so that a coloured request's downstream calls stay coloured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_networks: Vec<String>,
}

fn default_header() -> String {
    "X-Trace-Mode".into()
}
fn default_values() -> Vec<String> {
    vec!["chaos".into()]
}
fn default_max_age() -> Duration {
    Duration::from_secs(300)
}
fn default_max_skew() -> Duration {
    Duration::from_secs(30)
}

/// `[routes.colour]`: what a route does with coloured requests.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// The upstream coloured requests go to instead of the route's (shadow stores, no
    /// billing). They skip the route's limits, Bloom filter, cache and breaker, which are
    /// the real service's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<String>,
}

/// Whether a colour is well formed: 1 to 32 letters, digits, `-`, `_` or `.`.
pub fn valid_colour(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_VALUE_BYTES
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl Rule {
    /// What serde cannot check.
    pub fn problems(&self) -> Problems {
        let mut out: Problems = Vec::new();
        match HeaderName::from_bytes(self.header.as_bytes()) {
            Err(_) => out.push((
                vec!["header"],
                format!("`{}` is not a header name", self.header),
            )),
            // Removed from requests whenever not believed: never one HTTP or the gateway
            // relies on.
            Ok(h) if RESERVED.contains(&h.as_str()) => out.push((
                vec!["header"],
                format!(
                    "`{}` is a header HTTP or the gateway relies on",
                    self.header
                ),
            )),
            Ok(_) => {}
        }
        if self.values.is_empty() {
            out.push((vec!["values"], "at least one colour".into()));
        }
        for v in &self.values {
            if !valid_colour(v) {
                out.push((
                    vec!["values"],
                    format!("`{v}`: 1 to 32 letters, digits, `-`, `_` or `.`"),
                ));
            }
        }
        match (&self.key, &self.key_file) {
            (Some(_), Some(_)) => out.push((vec!["key"], "set key or key_file, not both".into())),
            (Some(k), None) if k.len() < MIN_KEY_BYTES => out.push((
                vec!["key"],
                format!("at least {MIN_KEY_BYTES} bytes (a random one: `openssl rand -hex 32`)"),
            )),
            (None, None) if self.trusted_networks.is_empty() => out.push((
                vec![],
                "no request could be coloured: set key (or key_file) for signed marks, or trusted_networks".into(),
            )),
            _ => {}
        }
        if self.max_age.is_zero() {
            out.push((vec!["max_age"], "more than 0".into()));
        }
        if self.max_skew > self.max_age {
            out.push((vec!["max_skew"], "at most max_age".into()));
        }
        if let Err(e) = Networks::parse(&self.trusted_networks) {
            out.push((vec!["trusted_networks"], e));
        }
        out
    }
}

/// Networks given as addresses or CIDRs.
#[derive(Debug, Clone, Default)]
pub struct Networks(Vec<ipnet::IpNet>);

impl Networks {
    pub fn parse(list: &[String]) -> Result<Networks, String> {
        list.iter()
            .map(|s| {
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("`{s}`: expected an address or a CIDR (10.0.0.0/8)"))
            })
            .collect::<Result<_, _>>()
            .map(Networks)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client on an IPv6 socket is written ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|n| n.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A believed mark, in a request's extensions: the colour (`chaos`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coloured(pub Arc<str>);

/// What became of a colour header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Believed: signed with the key, within its validity.
    Signed,
    /// Believed: from a trusted network.
    Trusted,
    /// Stripped: a bare colour from an untrusted client.
    Unsigned,
    /// Stripped: a signature that is not the key's.
    BadSignature,
    /// Stripped: a timestamp older than `max_age`, or too far in the future.
    Expired,
    /// Stripped: not of the form, too long, or sent twice.
    Malformed,
    /// Stripped: a colour the configuration does not name.
    UnknownColour,
}

impl Verdict {
    const ALL: [Verdict; 7] = [
        Verdict::Signed,
        Verdict::Trusted,
        Verdict::Unsigned,
        Verdict::BadSignature,
        Verdict::Expired,
        Verdict::Malformed,
        Verdict::UnknownColour,
    ];

    /// The label in metrics and the status page.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Signed => "accepted_signed",
            Verdict::Trusted => "accepted_trusted",
            Verdict::Unsigned => "stripped_unsigned",
            Verdict::BadSignature => "stripped_bad_signature",
            Verdict::Expired => "stripped_expired",
            Verdict::Malformed => "stripped_malformed",
            Verdict::UnknownColour => "stripped_unknown_colour",
        }
    }

    pub fn accepted(self) -> bool {
        matches!(self, Verdict::Signed | Verdict::Trusted)
    }
}

/// The colour rule, ready to judge marks.
pub struct Judge {
    header: HeaderName,
    /// The accepted colours, each with the value forwarded for it.
    values: Vec<(Arc<str>, HeaderValue)>,
    key: Option<Vec<u8>>,
    max_age: u64,
    max_skew: u64,
    trusted: Networks,
}

impl Judge {
    /// `key` is the key's bytes (read from `key_file` by the caller, or `rule.key`).
    pub fn new(rule: &Rule, key: Option<Vec<u8>>) -> Result<Judge, String> {
        let header = HeaderName::from_bytes(rule.header.as_bytes())
            .map_err(|_| format!("colour.header: `{}` is not a header name", rule.header))?;
        let values = rule
            .values
            .iter()
            .map(|v| {
                HeaderValue::from_str(v)
                    .map(|h| (Arc::from(v.as_str()), h))
                    .map_err(|_| format!("colour.values: `{v}`"))
            })
            .collect::<Result<_, _>>()?;
        if key.as_ref().is_some_and(|k| k.len() < MIN_KEY_BYTES) {
            return Err(format!("colour.key: at least {MIN_KEY_BYTES} bytes"));
        }
        Ok(Judge {
            header,
            values,
            key,
            max_age: rule.max_age.as_secs(),
            max_skew: rule.max_skew.as_secs(),
            trusted: Networks::parse(&rule.trusted_networks)?,
        })
    }

    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// Judges a header's value from `client` at `now` (Unix seconds): the verdict, and the
    /// colour when it is believed.
    pub fn judge(
        &self,
        raw: &[u8],
        client: Option<IpAddr>,
        now: u64,
    ) -> (Verdict, Option<&(Arc<str>, HeaderValue)>) {
        let Some(mark) = Mark::parse(raw) else {
            return (Verdict::Malformed, None);
        };
        // Colours compare case-insensitively; the configured spelling goes on.
        let Some(colour) = self
            .values
            .iter()
            .find(|(v, _)| v.as_bytes().eq_ignore_ascii_case(mark.colour))
        else {
            return (Verdict::UnknownColour, None);
        };
        if client.is_some_and(|ip| self.trusted.contains(ip)) {
            return (Verdict::Trusted, Some(colour));
        }
        let (Some((t, sig)), Some(key)) = (mark.signed, &self.key) else {
            return (Verdict::Unsigned, None);
        };
        if t > now.saturating_add(self.max_skew) || now.saturating_sub(t) > self.max_age {
            return (Verdict::Expired, None);
        }
        // The signature is over the colour as sent: any other spelling is another message.
        let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
            Ok(m) => m,
            Err(_) => return (Verdict::BadSignature, None),
        };
        mac.update(mark.colour);
        mac.update(b":");
        mac.update(mark.t_text);
        // verify_slice compares in constant time (the subtle crate).
        match mac.verify_slice(&sig) {
            Ok(()) => (Verdict::Signed, Some(colour)),
            Err(_) => (Verdict::BadSignature, None),
        }
    }
}

/// A colour header, parsed.
struct Mark<'a> {
    colour: &'a [u8],
    /// The timestamp's digits as sent (they are what was signed), its value and the
    /// signature.
    t_text: &'a [u8],
    signed: Option<(u64, [u8; 32])>,
}

impl<'a> Mark<'a> {
    /// `COLOUR` or `COLOUR; t=DIGITS; sig=HEX64`, nothing else.
    fn parse(raw: &'a [u8]) -> Option<Mark<'a>> {
        if raw.len() > MAX_HEADER_BYTES {
            return None;
        }
        let trim = |s: &'a [u8]| -> &'a [u8] {
            let start = s.iter().position(|b| !matches!(b, b' ' | b'\t'));
            let end = s.iter().rposition(|b| !matches!(b, b' ' | b'\t'));
            match (start, end) {
                (Some(a), Some(b)) => &s[a..=b],
                _ => &[],
            }
        };
        let mut parts = raw.split(|b| *b == b';').map(trim);
        let colour = parts.next()?;
        if colour.is_empty()
            || colour.len() > MAX_VALUE_BYTES
            || !colour
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return None;
        }
        let Some(t) = parts.next() else {
            return Some(Mark {
                colour,
                t_text: &[],
                signed: None,
            });
        };
        let t_text = t.strip_prefix(b"t=")?;
        let sig = parts.next()?.strip_prefix(b"sig=")?;
        if parts.next().is_some()
            || t_text.is_empty()
            || t_text.len() > 12
            || !t_text.iter().all(u8::is_ascii_digit)
            || sig.len() != 64
        {
            return None;
        }
        let t = std::str::from_utf8(t_text).ok()?.parse().ok()?;
        let mut bytes = [0u8; 32];
        for (i, pair) in sig.chunks(2).enumerate() {
            bytes[i] = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
        }
        Some(Mark {
            colour,
            t_text,
            signed: Some((t, bytes)),
        })
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The signed form of a mark for `colour` at `t` (Unix seconds): what a drill sends.
pub fn sign(key: &[u8], colour: &str, t: u64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(format!("{colour}:{t}").as_bytes());
    let sig: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{colour}; t={t}; sig={sig}")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A route's colour judge and counts, shared by the route's copies, kept across reloads
/// while the rule is unchanged.
#[derive(Clone)]
pub struct ColourHandle(Arc<ColourShared>);

struct ColourShared {
    judge: Judge,
    verdicts: [AtomicU64; 7],
    /// Coloured requests' answers by class: 1xx..5xx, and no answer (a reset).
    classes: [AtomicU64; 6],
}

const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

impl ColourHandle {
    pub fn new(judge: Judge) -> ColourHandle {
        ColourHandle(Arc::new(ColourShared {
            judge,
            verdicts: Default::default(),
            classes: Default::default(),
        }))
    }
}

/// Judges the colour header of each request: believed marks go on normalised and as
/// [`Coloured`], others are removed (and counted).
#[derive(Clone)]
pub struct ColourLayer {
    handle: ColourHandle,
}

impl ColourLayer {
    pub fn new(handle: ColourHandle) -> ColourLayer {
        ColourLayer { handle }
    }
}

impl Protection for ColourLayer {
    fn status(&self, out: &mut Vec<(&'static str, serde_json::Value)>) {
        let s = &self.handle.0;
        let marks: serde_json::Map<_, _> = Verdict::ALL
            .iter()
            .zip(&s.verdicts)
            .map(|(v, n)| (v.as_str().to_string(), n.load(Ordering::Relaxed).into()))
            .collect();
        let answers: serde_json::Map<_, _> = CLASSES
            .iter()
            .zip(&s.classes)
            .map(|(c, n)| (c.to_string(), n.load(Ordering::Relaxed).into()))
            .collect();
        out.push((
            "colour",
            json(&serde_json::json!({
                "header": s.judge.header.as_str(),
                "marks": marks,
                "coloured_answers": answers,
            })),
        ));
    }

    fn samples(&self, out: &mut Vec<Sample>) {
        let s = &self.handle.0;
        for (v, n) in Verdict::ALL.iter().zip(&s.verdicts) {
            out.push(Sample {
                metric: "colour_marks",
                labels: vec![("result", v.as_str().into())],
                value: n.load(Ordering::Relaxed) as f64,
            });
        }
        for (c, n) in CLASSES.iter().zip(&s.classes) {
            out.push(Sample {
                metric: "coloured_requests",
                labels: vec![("class", (*c).into())],
                value: n.load(Ordering::Relaxed) as f64,
            });
        }
    }

    fn rejects(&self) -> &'static [RejectKind] {
        &[]
    }

    fn reads_headers(&self, out: &mut Vec<HeaderName>) {
        out.push(self.handle.0.judge.header.clone());
    }

    fn reads_client_addr(&self, req: &Request<Body>) -> bool {
        !self.handle.0.judge.trusted.is_empty()
            && req.headers().contains_key(&self.handle.0.judge.header)
    }
}

impl ProtectionLayer for ColourLayer {
    const METRICS: &'static [MetricDesc] = &[
        MetricDesc {
            name: "colour_marks",
            help: "Colour headers by what became of them (accepted_signed, accepted_trusted, stripped_*), by route",
            kind: MetricKind::Counter,
        },
        MetricDesc {
            name: "coloured_requests",
            help: "Coloured (drill) requests by the class of their answer, by route",
            kind: MetricKind::Counter,
        },
    ];

    fn fork(&self) -> Self {
        self.clone()
    }
}

impl<S> Layer<S> for ColourLayer {
    type Service = ColourService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ColourService {
            inner,
            handle: self.handle.clone(),
        }
    }
}

#[derive(Clone)]
pub struct ColourService<S> {
    inner: S,
    handle: ColourHandle,
}

impl<S> Service<Request<Body>> for ColourService<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = BoxError, Future = Answering>,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Answering;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Answering {
        let s = &self.handle.0;
        let header = &s.judge.header;
        // The common case: no mark, one lookup.
        let Some(raw) = req.headers().get(header) else {
            return self.inner.call(req);
        };
        let client = req.extensions().get::<ClientAddr>().map(|c| c.0.ip());
        let twice = req.headers().get_all(header).iter().nth(1).is_some();
        let (verdict, colour) = if twice {
            (Verdict::Malformed, None)
        } else {
            s.judge.judge(raw.as_bytes(), client, unix_now())
        };
        s.verdicts[verdict as usize].fetch_add(1, Ordering::Relaxed);
        let colour = colour.cloned();
        req.headers_mut().remove(header);
        let Some((name, value)) = colour else {
            tracing::debug!(verdict = verdict.as_str(), "colour mark stripped");
            return self.inner.call(req);
        };
        req.headers_mut().insert(header.clone(), value);
        req.extensions_mut().insert(Coloured(name));
        let call = self.inner.call(req);
        let handle = self.handle.clone();
        Box::pin(async move {
            let out = call.await;
            let class = match &out {
                Ok(r) => (r.status().as_u16() / 100).clamp(1, 5) as usize - 1,
                Err(e) if e.is::<super::fault::ResetConnection>() => 5,
                Err(e) => {
                    let status = match (super::find_rejected(e), e.downcast_ref::<UpstreamError>())
                    {
                        (Some(r), _) => r.status(),
                        (None, Some(u)) => u.status(),
                        (None, None) => http::StatusCode::BAD_GATEWAY,
                    };
                    (status.as_u16() / 100).clamp(1, 5) as usize - 1
                }
            };
            handle.0.classes[class].fetch_add(1, Ordering::Relaxed);
            out
        })
    }
}

/// The service coloured requests go to instead (the shadow upstream).
pub type Shadow = BoxCloneSyncService<Request<Body>, Response<Body>, BoxError>;

/// Sends coloured requests to the shadow service, the others on.
#[derive(Clone)]
pub struct ShadowLayer {
    shadow: Shadow,
    name: Arc<str>,
    sent: Arc<AtomicU64>,
}

impl ShadowLayer {
    /// `name` is the shadow's, for the status page.
    pub fn new(shadow: Shadow, name: &str, sent: Arc<AtomicU64>) -> ShadowLayer {
        ShadowLayer {
            shadow,
            name: name.into(),
            sent,
        }
    }
}

impl Protection for ShadowLayer {
    fn status(&self, out: &mut Vec<(&'static str, serde_json::Value)>) {
        out.push((
            "shadow",
            serde_json::json!({"upstream": &*self.name, "sent": self.sent.load(Ordering::Relaxed)}),
        ));
    }

    fn samples(&self, out: &mut Vec<Sample>) {
        out.push(Sample {
            metric: "shadow_requests",
            labels: vec![("shadow", self.name.to_string())],
            value: self.sent.load(Ordering::Relaxed) as f64,
        });
    }

    fn rejects(&self) -> &'static [RejectKind] {
        &[]
    }
}

impl ProtectionLayer for ShadowLayer {
    const METRICS: &'static [MetricDesc] = &[MetricDesc {
        name: "shadow_requests",
        help: "Coloured requests sent to the route's shadow upstream instead of its own, by route",
        kind: MetricKind::Counter,
    }];

    fn fork(&self) -> Self {
        self.clone()
    }
}

impl<S> Layer<S> for ShadowLayer {
    type Service = ShadowService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ShadowService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct ShadowService<S> {
    inner: S,
    layer: ShadowLayer,
}

impl<S> Service<Request<Body>> for ShadowService<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = BoxError, Future = Answering>,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Answering;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Answering {
        if req.extensions().get::<Coloured>().is_none() {
            return self.inner.call(req);
        }
        self.layer.sent.fetch_add(1, Ordering::Relaxed);
        Box::pin(self.layer.shadow.clone().oneshot(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn judge(trusted: &[&str]) -> Judge {
        let rule: Rule = toml::from_str(&format!(
            "trusted_networks = {:?}",
            trusted.iter().map(|s| s.to_string()).collect::<Vec<_>>()
        ))
        .unwrap();
        Judge::new(&rule, Some(KEY.to_vec())).unwrap()
    }

    #[test]
    fn signed_marks_within_their_validity_are_believed() {
        let j = judge(&[]);
        let now = 1_733_412_345;
        let mark = sign(KEY, "chaos", now - 10);
        let (v, c) = j.judge(mark.as_bytes(), None, now);
        assert_eq!((v, c.map(|c| &*c.0)), (Verdict::Signed, Some("chaos")));
        // Spaces around `;` are allowed, none elsewhere.
        let spaced = mark.replace("; ", " ;\t");
        assert_eq!(j.judge(spaced.as_bytes(), None, now).0, Verdict::Signed);
        assert_eq!(
            j.judge(mark.replace("t=", "t = ").as_bytes(), None, now).0,
            Verdict::Malformed
        );
        // Old, or from the future beyond the skew.
        assert_eq!(
            j.judge(sign(KEY, "chaos", now - 301).as_bytes(), None, now)
                .0,
            Verdict::Expired
        );
        assert_eq!(
            j.judge(sign(KEY, "chaos", now + 31).as_bytes(), None, now)
                .0,
            Verdict::Expired
        );
        assert_eq!(
            j.judge(sign(KEY, "chaos", now + 29).as_bytes(), None, now)
                .0,
            Verdict::Signed
        );
    }

    #[test]
    fn forged_malformed_and_unknown_marks_are_not() {
        let j = judge(&[]);
        let now = 1_733_412_345;
        let other = sign(b"another key of sixteen+ bytes", "chaos", now);
        assert_eq!(
            j.judge(other.as_bytes(), None, now).0,
            Verdict::BadSignature
        );
        // The timestamp is part of what is signed.
        let moved = sign(KEY, "chaos", now).replace(&now.to_string(), &(now - 1).to_string());
        assert_eq!(
            j.judge(moved.as_bytes(), None, now).0,
            Verdict::BadSignature
        );
        assert_eq!(j.judge(b"chaos", None, now).0, Verdict::Unsigned);
        assert_eq!(j.judge(b"calm", None, now).0, Verdict::UnknownColour);
        let bad = [
            &b""[..],
            b";",
            b"chaos;",
            b"chaos; t=1",
            b"chaos; sig=00; t=1",
            b"chaos; t=-1; sig=0000000000000000000000000000000000000000000000000000000000000000",
            b"chaos; t=1; sig=zz00000000000000000000000000000000000000000000000000000000000000",
            b"chaos; t=1; sig=00; x=1",
            b"cha os",
        ];
        for b in bad {
            assert_eq!(
                j.judge(b, None, now).0,
                Verdict::Malformed,
                "{}",
                String::from_utf8_lossy(b)
            );
        }
        let long = format!("chaos; t={now}; sig={}", "0".repeat(300));
        assert_eq!(j.judge(long.as_bytes(), None, now).0, Verdict::Malformed);
    }

    #[test]
    fn trusted_networks_need_no_signature() {
        let j = judge(&["10.0.0.0/8", "127.0.0.1"]);
        let ten: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(j.judge(b"CHAOS", Some(ten), 0).0, Verdict::Trusted);
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(j.judge(b"chaos", Some(mapped), 0).0, Verdict::Trusted);
        let out: IpAddr = "11.0.0.1".parse().unwrap();
        assert_eq!(j.judge(b"chaos", Some(out), 0).0, Verdict::Unsigned);
    }

    #[test]
    fn rule_problems() {
        let r: Rule = toml::from_str("key = \"short\"").unwrap();
        assert!(r.problems()[0].1.contains("at least 16"));
        let r: Rule = toml::from_str("").unwrap();
        assert!(r.problems()[0].1.contains("no request could be coloured"));
        let r: Rule =
            toml::from_str("trusted_networks = [\"10.0.0.0/33\"]\nvalues = [\"a b\"]").unwrap();
        let p = r.problems();
        assert_eq!(p.len(), 2, "{p:?}");
    }
}
