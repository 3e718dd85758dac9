//! What the gateway checks and settles in a client's request before anything uses it, so that
//! the route, the limits' keys and the client's address are taken from the request exactly
//! as the upstream will receive it:
//!
//! - **Host** (RFC 9112 3.2, 3.2.2; RFC 9113 8.3.1): an HTTP/1.1 request has exactly one,
//!   valid; a request with an authority in its target (absolute form, HTTP/2's `:authority`)
//!   is routed on that authority and sent with it as its Host. An HTTP/2 Host that names
//!   another authority is refused.
//! - **Path** (RFC 3986 6.2.2): routed and forwarded normalised as a Go service would serve
//!   it: unreserved characters percent-decoded, other escapes in upper case, dot segments
//!   removed, repeated slashes merged. A malformed escape is refused.
//! - **Headers named in `Connection`** go with the hop-by-hop ones, except the end-to-end
//!   headers the gateway relies on (Host, the forwarding headers, credentials, and every
//!   header the configuration routes or keys on), which a client cannot have removed.
//! - **Forwarding headers a client could forge** (`X-Real-IP`, `True-Client-IP`,
//!   `X-Forwarded-Port`, ...) are dropped unless the peer is a trusted proxy, and their
//!   underscore spellings (`X_Forwarded_For`, which some frameworks read as the dashed one)
//!   always.

use std::borrow::Cow;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Uri, Version};

/// Why a request is refused before routing: a 400 (or 431) with this text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub status: http::StatusCode,
    pub reason: &'static str,
}

fn bad(reason: &'static str) -> Refused {
    Refused {
        status: http::StatusCode::BAD_REQUEST,
        reason,
    }
}

/// Headers a client may not have removed by naming them in `Connection`.
const ALWAYS_KEPT: [HeaderName; 9] = [
    header::HOST,
    header::AUTHORIZATION,
    header::COOKIE,
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::FORWARDED,
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-host"),
];

/// Forwarding headers believed only from a trusted proxy; the gateway sets
/// `X-Forwarded-For`, `-Proto`, `-Host` and `Forwarded` itself ([`crate::proxy::set_forwarded`]).
const FORGEABLE: [&str; 7] = [
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-original-forwarded-for",
];

/// Headers that describe one connection, not the message (RFC 9110 7.6.1), and `Upgrade`
/// (the gateway does not tunnel).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The request checks of one configuration: which headers it relies on.
#[derive(Debug, Clone, Default)]
pub struct Inbound {
    /// Header names the configuration routes, limits or names users on.
    relied_on: Vec<HeaderName>,
    /// `server.max_header_bytes` when hyper's own limit (at least 8 KiB) is above it.
    small_head_limit: Option<usize>,
}

impl Inbound {
    pub fn new(relied_on: Vec<HeaderName>, max_header_bytes: u64) -> Inbound {
        Inbound {
            relied_on,
            small_head_limit: (max_header_bytes < 8192).then_some(max_header_bytes as usize),
        }
    }

    fn kept(&self, name: &HeaderName) -> bool {
        ALWAYS_KEPT.contains(name) || self.relied_on.contains(name)
    }

    /// Checks and settles `req` (see the module's documentation); `trusted_peer` says
    /// whether its forwarding headers are believed.
    pub fn admit<B>(&self, req: &mut Request<B>, trusted_peer: bool) -> Result<(), Refused> {
        if let Some(limit) = self.small_head_limit {
            if head_size(req) > limit {
                return Err(Refused {
                    status: http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    reason: "the request head is over server.max_header_bytes",
                });
            }
        }
        settle_host(req)?;
        if let Some(path) = normalize_path(req.uri().path())? {
            set_path(req.uri_mut(), &path)?;
        }
        self.strip_hop_by_hop(req.headers_mut());
        strip_forgeable(req.headers_mut(), trusted_peer);
        Ok(())
    }

    /// Removes hop-by-hop headers and those `Connection` names, except the ones the gateway
    /// relies on. `TE: trailers` survives (gRPC needs it end to end).
    pub fn strip_hop_by_hop(&self, headers: &mut HeaderMap) {
        strip_hop_by_hop_except(headers, |n| self.kept(n));
    }
}

/// Removes the hop-by-hop headers and those `Connection` names, but for the named ones
/// `kept` says stay; `TE: trailers` survives (gRPC needs it end to end). Used for requests
/// ([`Inbound::strip_hop_by_hop`]) and answers ([`crate::proxy::strip_hop_by_hop`]).
pub fn strip_hop_by_hop_except(headers: &mut HeaderMap, kept: impl Fn(&HeaderName) -> bool) {
    // Most messages carry none: one look at each name, no removal by name (which hashes).
    if !headers.keys().any(|n| HOP_BY_HOP.contains(n)) {
        return;
    }
    let named: Vec<HeaderName> = crate::codec::connection_tokens(headers)
        .filter_map(|n| HeaderName::from_bytes(n).ok())
        .filter(|n| !kept(n))
        .collect();
    let trailers = headers
        .get_all(header::TE)
        .iter()
        .any(|v| crate::codec::value_has_token(v.as_bytes(), "trailers"));
    for n in named {
        headers.remove(n);
    }
    for n in &HOP_BY_HOP {
        headers.remove(n);
    }
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// The request line and headers as they would take room on the wire.
fn head_size<B>(req: &Request<B>) -> usize {
    let uri = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    req.method().as_str().len()
        + uri
        + 12
        + req
            .headers()
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum::<usize>()
}

fn strip_forgeable(headers: &mut HeaderMap, trusted_peer: bool) {
    // One pass over the names decides whether anything needs removing (almost never); a
    // name is looked up in the list only when it could be in it.
    let forged = |n: &HeaderName| {
        let s = n.as_str();
        let b = s.as_bytes();
        (!trusted_peer && b.len() >= 9 && matches!(b[0], b'x' | b't') && FORGEABLE.contains(&s))
            || (b.contains(&b'_') && underscore_forwarding(s))
    };
    if !headers.keys().any(forged) {
        return;
    }
    let names: Vec<HeaderName> = headers.keys().filter(|n| forged(n)).cloned().collect();
    for n in names {
        headers.remove(n);
    }
}

/// Whether a name with underscores spells a forwarding header (`x_forwarded_for`,
/// `X-Real_IP`).
fn underscore_forwarding(name: &str) -> bool {
    let dashed = name.replace('_', "-");
    dashed == "forwarded"
        || dashed.starts_with("x-forwarded-")
        || FORGEABLE.contains(&dashed.as_str())
}

/// Settles the request's Host (see the module's documentation).
fn settle_host<B>(req: &mut Request<B>) -> Result<(), Refused> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(bad("more than one Host header"));
    }
    if let Some(h) = host {
        if !valid_host(h.as_bytes()) {
            return Err(bad("the Host header is not a valid host[:port]"));
        }
    }
    match req.uri().authority() {
        Some(authority) => {
            let a = authority.as_str().as_bytes();
            if !valid_host(a) {
                return Err(bad(
                    "the request target's authority is not a valid host[:port]",
                ));
            }
            if req.version() == Version::HTTP_11 && host.is_none() {
                return Err(bad("an HTTP/1.1 request without a Host header"));
            }
            if req.version() == Version::HTTP_2
                && host.is_some_and(|h| !h.as_bytes().eq_ignore_ascii_case(a))
            {
                return Err(bad("the Host header differs from :authority"));
            }
            // The target's authority is the request's host (RFC 9112 3.2.2).
            let value = HeaderValue::from_bytes(a).map_err(|_| bad("invalid authority"))?;
            req.headers_mut().insert(header::HOST, value);
            Ok(())
        }
        None if host.is_none() && req.version() == Version::HTTP_11 => {
            Err(bad("an HTTP/1.1 request without a Host header"))
        }
        None => Ok(()),
    }
}

/// `uri-host [":" port]` (RFC 3986 3.2.2): an IP literal in brackets, or a name of
/// unreserved characters, sub-delimiters and percent escapes; a port of digits. Not empty,
/// no userinfo, no path, no spaces. One pass over the bytes (it runs on every request).
pub fn valid_host(h: &[u8]) -> bool {
    let (host, port) = if h.first() == Some(&b'[') {
        let Some(end) = h.iter().position(|&b| b == b']') else {
            return false;
        };
        let inside = &h[1..end];
        if inside.is_empty()
            || !inside
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match &h[end + 1..] {
            [] => (None, None),
            [b':', port @ ..] => (None, Some(port)),
            _ => return false,
        }
    } else {
        match h.iter().rposition(|&b| b == b':') {
            Some(i) => (Some(&h[..i]), Some(&h[i + 1..])),
            None => (Some(h), None),
        }
    };
    let name_ok = host.is_none_or(|name| !name.is_empty() && reg_name(name));
    let port_ok = port.is_none_or(|p| p.len() <= 5 && p.iter().all(u8::is_ascii_digit));
    name_ok && port_ok
}

/// Unreserved characters, sub-delimiters and `%XX` escapes.
fn reg_name(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => i += 1,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => i += 1,
            b'%' if name.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && name.get(i + 2).is_some_and(u8::is_ascii_hexdigit) =>
            {
                i += 3
            }
            _ => return false,
        }
    }
    true
}

/// The host a route matches: the Host header without its port or a trailing dot (a name
/// and its fully qualified spelling are the same name); compared case-insensitively.
pub fn route_host(headers: &HeaderMap) -> &str {
    let h = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let name = if h.starts_with('[') {
        h.find(']').map_or(h, |i| &h[..=i])
    } else {
        h.rsplit_once(':').map_or(h, |(name, _)| name)
    };
    name.strip_suffix('.').unwrap_or(name)
}

/// The path normalised (see the module's documentation), `None` when it already is.
pub fn normalize_path(path: &str) -> Result<Option<String>, Refused> {
    let b = path.as_bytes();
    // The usual path needs nothing: no escape, no repeated slash, no dot segment.
    let needs = b.contains(&b'%')
        || b.windows(2).any(|w| w == b"//" || w == b"/.")
        || path == "."
        || path == "..";
    if !needs || !path.starts_with('/') {
        return Ok(None);
    }
    let decoded = decode_unreserved(b)?;
    let out = remove_dot_segments(&decoded);
    Ok((out != path).then_some(out))
}

/// Percent-escapes of unreserved characters decoded, the others upper-cased.
fn decode_unreserved(b: &[u8]) -> Result<Cow<'_, str>, Refused> {
    if !b.contains(&b'%') {
        return Ok(Cow::Borrowed(std::str::from_utf8(b).unwrap_or_default()));
    }
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            out.push(b[i] as char);
            i += 1;
            continue;
        }
        let hex = |j: usize| b.get(j).copied().filter(u8::is_ascii_hexdigit);
        let (Some(h), Some(l)) = (hex(i + 1), hex(i + 2)) else {
            return Err(bad("the path has a malformed percent-escape"));
        };
        let value = (hex_value(h) << 4) | hex_value(l);
        if value.is_ascii_alphanumeric() || b"-._~".contains(&value) {
            out.push(value as char);
        } else {
            out.push('%');
            out.push(h.to_ascii_uppercase() as char);
            out.push(l.to_ascii_uppercase() as char);
        }
        i += 3;
    }
    Ok(Cow::Owned(out))
}

fn hex_value(d: u8) -> u8 {
    match d {
        b'0'..=b'9' => d - b'0',
        b'a'..=b'f' => d - b'a' + 10,
        _ => d - b'A' + 10,
    }
}

/// RFC 3986 5.2.4 on an absolute path, with empty segments (repeated slashes) merged as
/// Go's `path.Clean` does; a trailing slash is kept.
fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    let last = parts.len().saturating_sub(1);
    let mut trailing = false;
    for (i, seg) in parts.iter().enumerate() {
        match *seg {
            "." => trailing = i == last,
            ".." => {
                segments.pop();
                trailing = i == last;
            }
            "" => trailing = i == last,
            s => {
                segments.push(s);
                trailing = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing || out.is_empty() {
        out.push('/');
    }
    out
}

/// Replaces the path of `uri`, keeping its scheme, authority and query.
fn set_path(uri: &mut Uri, path: &str) -> Result<(), Refused> {
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut parts = std::mem::take(uri).into_parts();
    parts.path_and_query = Some(pq.parse().map_err(|_| bad("the path is not valid"))?);
    *uri = Uri::from_parts(parts).map_err(|_| bad("the path is not valid"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for ok in [
            &b"shop"[..],
            b"shop:8080",
            b"Shop.Example.COM.",
            b"127.0.0.1:80",
            b"[::1]",
            b"[::1]:8080",
            b"xn--bcher-kva.example",
            b"a%2Db",
        ] {
            assert!(valid_host(ok), "{}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &b""[..],
            b":80",
            b"evil.com/../x?y",
            b"a @b",
            b"user@host",
            b"host:port",
            b"host:123456",
            b"[::1",
            b"[zz]",
            b"[::1]x",
            b"a%2",
            b"a%zz",
            b"a\tb",
        ] {
            assert!(!valid_host(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    fn request(version: Version, target: &str, hosts: &[&str]) -> Request<()> {
        let mut b = Request::builder().version(version).uri(target);
        for h in hosts {
            b = b.header("host", *h);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn host_rules() {
        let admit = |mut r: Request<()>| {
            Inbound::default().admit(&mut r, false).map(|()| {
                r.headers()
                    .get("host")
                    .map(|h| h.to_str().unwrap().to_string())
            })
        };
        let h11 = Version::HTTP_11;
        assert_eq!(
            admit(request(h11, "/x", &["shop"])),
            Ok(Some("shop".into()))
        );
        assert!(admit(request(h11, "/x", &[])).is_err());
        assert!(admit(request(h11, "/x", &["a", "b"])).is_err());
        assert!(admit(request(h11, "/x", &[""])).is_err());
        assert!(admit(request(h11, "/x", &["evil.com/../x?y"])).is_err());
        assert_eq!(
            admit(request(h11, "http://admin.example/x", &["public.example"])),
            Ok(Some("admin.example".into())),
            "the target's authority replaces Host"
        );
        assert!(admit(request(h11, "http://u@admin.example/x", &["a"])).is_err());
        assert_eq!(admit(request(Version::HTTP_10, "/x", &[])), Ok(None));
        assert_eq!(
            admit(request(Version::HTTP_2, "http://a.example/x", &[])),
            Ok(Some("a.example".into()))
        );
        assert!(admit(request(
            Version::HTTP_2,
            "http://a.example/x",
            &["b.example"]
        ))
        .is_err());
    }

    #[test]
    fn route_hosts_drop_port_and_trailing_dot() {
        let host = |h: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, HeaderValue::from_str(h).unwrap());
            route_host(&m).to_string()
        };
        assert_eq!(host("Shop.Example.:8080"), "Shop.Example");
        assert_eq!(host("[::1]:80"), "[::1]");
        assert_eq!(host("shop"), "shop");
    }

    #[test]
    fn paths_are_normalised_as_a_go_service_sees_them() {
        let n = |p: &str| normalize_path(p).map(|o| o.unwrap_or_else(|| p.to_string()));
        assert_eq!(n("/orders/1").unwrap(), "/orders/1");
        assert_eq!(n("/%6Frders/1").unwrap(), "/orders/1");
        assert_eq!(n("//orders/1").unwrap(), "/orders/1");
        assert_eq!(n("/x/../orders/1").unwrap(), "/orders/1");
        assert_eq!(n("/x/%2e%2E/orders/./1").unwrap(), "/orders/1");
        assert_eq!(n("/../../orders").unwrap(), "/orders");
        assert_eq!(n("/orders/").unwrap(), "/orders/");
        assert_eq!(n("/orders//").unwrap(), "/orders/");
        assert_eq!(n("/a/b/..").unwrap(), "/a/");
        assert_eq!(
            n("/a%2fb").unwrap(),
            "/a%2Fb",
            "an escaped slash stays escaped"
        );
        assert_eq!(n("/a%20b").unwrap(), "/a%20b");
        assert!(n("/a%2").is_err());
        assert!(n("/a%zz").is_err());
        assert_eq!(n("*").unwrap(), "*");
    }

    #[test]
    fn connection_cannot_remove_what_the_gateway_relies_on() {
        let inbound = Inbound::new(vec![HeaderName::from_static("x-api-key")], 65536);
        let mut h = HeaderMap::new();
        for (k, v) in [
            (
                "connection",
                "host, x-forwarded-for, authorization, x-api-key, x-hop",
            ),
            ("host", "shop"),
            ("x-forwarded-for", "1.2.3.4"),
            ("authorization", "Bearer t"),
            ("x-api-key", "k1"),
            ("x-hop", "1"),
            ("te", "trailers"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        inbound.strip_hop_by_hop(&mut h);
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "authorization",
                "host",
                "te",
                "x-api-key",
                "x-forwarded-for"
            ]
        );
    }

    #[test]
    fn forgeable_forwarding_headers_go_unless_trusted() {
        let make = || {
            let mut h = HeaderMap::new();
            for k in [
                "x-real-ip",
                "true-client-ip",
                "x_forwarded_for",
                "x-forwarded-port",
            ] {
                h.insert(
                    HeaderName::from_static(k),
                    HeaderValue::from_static("6.6.6.6"),
                );
            }
            h.insert(
                HeaderName::from_static("x-user"),
                HeaderValue::from_static("u"),
            );
            h
        };
        let mut h = make();
        strip_forgeable(&mut h, false);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-user"]);
        let mut h = make();
        strip_forgeable(&mut h, true);
        assert_eq!(
            h.len(),
            4,
            "a trusted proxy's stay, but never the underscore spelling"
        );
        assert!(!h.contains_key("x_forwarded_for"));
    }
}
