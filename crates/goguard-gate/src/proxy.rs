//! What a reverse proxy does to a request and its answer besides forwarding them: drop
//! hop-by-hop headers, say who the client is (`X-Forwarded-For`, `Forwarded`) believing only
//! trusted proxies, and choose the route.

use std::net::{IpAddr, SocketAddr};

use bytes::{BufMut, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Request;

use crate::config::Route;

/// An address or a network (`10.0.0.0/8`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (a, p) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("`{s}`: not an IP address or CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if p.is_empty() {
            max
        } else {
            p.parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix must be 0..={max}"))?
        };
        Ok(Cidr { addr, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn parse(list: &[String]) -> Result<TrustedProxies, String> {
        list.iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client's address: the peer, or, when the peer is a trusted proxy, the rightmost
    /// address in `X-Forwarded-For` that is not itself a trusted proxy. Anything to the left
    /// of that was written by the client and proves nothing.
    pub fn client_addr(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        if !self.trusts(peer.ip()) {
            return peer;
        }
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) if self.trusts(ip) => continue,
                Ok(ip) => return SocketAddr::new(ip, 0),
                Err(_) => break,
            }
        }
        peer
    }
}

/// Removes the hop-by-hop headers of an upstream's answer, and those its `Connection` names.
/// (A client's request goes through [`crate::inbound::Inbound::strip_hop_by_hop`], which
/// keeps the headers the gateway relies on.)
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    crate::inbound::strip_hop_by_hop_except(headers, |_| false);
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// A client connection's peer, with its address written out once for the forwarding headers
/// of every request on the connection.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// Shared by the connection's requests: a request carries it through the layers of its
    /// route, and a pointer moves and clones for less than the two values.
    written: std::sync::Arc<Written>,
}

#[derive(Debug)]
struct Written {
    /// The address as `X-Forwarded-For` writes it.
    xff: HeaderValue,
    /// `Forwarded`'s `for=` parameter (an IPv6 address in quotes and brackets).
    forwarded_for: HeaderValue,
}

impl Peer {
    pub fn new(addr: SocketAddr) -> Peer {
        let ip = addr.ip();
        let forwarded_for = match ip {
            IpAddr::V4(v4) => format!("for={v4}"),
            IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
        };
        Peer {
            addr,
            written: std::sync::Arc::new(Written {
                xff: HeaderValue::try_from(ip.to_string())
                    .expect("an IP address is a header value"),
                forwarded_for: HeaderValue::try_from(forwarded_for)
                    .expect("an IP address is a header value"),
            }),
        }
    }
}

/// Writes `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` and `Forwarded` for the
/// upstream. A trusted peer's headers are extended with the peer; an untrusted peer's are
/// replaced, so a client cannot pass itself off as someone else.
pub fn set_forwarded(headers: &mut HeaderMap, peer: &Peer, trusted: &TrustedProxies) {
    let keep = trusted.trusts(peer.addr.ip());
    let host = headers.get(header::HOST).cloned();
    // The previous hops, kept only from a trusted proxy, then this one.
    let host_len = host.as_ref().map_or(0, |h| h.len());
    let chain = |headers: &HeaderMap, name: &HeaderName, last: &HeaderValue| -> BytesMut {
        // Room for the usual case at once: this hop, `;proto=http;host="..."`.
        let mut out = BytesMut::with_capacity(last.len() + host_len + 24);
        if keep {
            for v in headers.get_all(name) {
                out.put_slice(v.as_bytes());
                out.put_slice(b", ");
            }
        }
        out.put_slice(last.as_bytes());
        out
    };
    let xff = if keep && headers.contains_key(&X_FORWARDED_FOR) {
        HeaderValue::from_maybe_shared(chain(headers, &X_FORWARDED_FOR, &peer.written.xff).freeze())
            .ok()
    } else {
        Some(peer.written.xff.clone())
    };
    let mut fwd = chain(headers, &header::FORWARDED, &peer.written.forwarded_for);
    fwd.put_slice(b";proto=http");
    if let Some(h) = &host {
        if h.as_bytes()
            .iter()
            .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            fwd.put_slice(b";host=\"");
            fwd.put_slice(h.as_bytes());
            fwd.put_slice(b"\"");
        }
    }
    let fwd = HeaderValue::from_maybe_shared(fwd.freeze()).ok();
    for (name, value) in [(X_FORWARDED_FOR, xff), (header::FORWARDED, fwd)] {
        match value {
            Some(v) => {
                headers.insert(name, v);
            }
            None => {
                headers.remove(name);
            }
        }
    }
    if !keep || !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    if !keep || !headers.contains_key(&X_FORWARDED_HOST) {
        match host {
            Some(h) => {
                headers.insert(X_FORWARDED_HOST, h);
            }
            None => {
                headers.remove(X_FORWARDED_HOST);
            }
        }
    }
}

/// How specific a route is: the longest path prefix first, then a host, methods, headers.
fn specificity(r: &Route) -> (usize, bool, bool, usize) {
    (
        r.path_prefix.len(),
        r.host.is_some(),
        !r.methods.is_empty(),
        r.headers.len(),
    )
}

/// The route for a request (its path normalised and its Host settled: [`crate::inbound`]):
/// among those whose path prefix, host, methods and headers match, the most specific (longest path prefix, then the most conditions; ties go to the first in the
/// file).
pub fn match_route<'a, B>(
    routes: impl IntoIterator<Item = &'a Route>,
    req: &Request<B>,
) -> Option<(usize, &'a Route)> {
    // The Host is settled by the time a request is routed (crate::inbound): the target's
    // authority when it had one.
    let host = crate::inbound::route_host(req.headers());
    let path = req.uri().path();
    let mut best: Option<(usize, &Route)> = None;
    for (i, r) in routes.into_iter().enumerate() {
        let host_ok = r.host.as_ref().is_none_or(|h| match h.strip_prefix("*.") {
            // `*.example.com`: any name ending in `.example.com`.
            Some(suffix) => {
                host.len() > suffix.len() + 1
                    && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
            None => h.strip_suffix('.').unwrap_or(h).eq_ignore_ascii_case(host),
        });
        let method_ok = r.methods.is_empty()
            || r.methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(req.method().as_str()));
        let headers_ok = r.headers.iter().all(|(k, v)| {
            req.headers()
                .get(k.as_str())
                .is_some_and(|got| got.as_bytes() == v.as_bytes())
        });
        if host_ok && method_ok && headers_ok && r.prefix_match.matches(&r.path_prefix, path) {
            let better = best.is_none_or(|(_, b)| specificity(r) > specificity(b));
            if better {
                best = Some((i, r));
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::tests::headers;

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn cidrs() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("::1"
            .parse::<Cidr>()
            .unwrap()
            .contains("::1".parse().unwrap()));
        assert!("0.0.0.0/0"
            .parse::<Cidr>()
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn an_untrusted_client_cannot_claim_an_address() {
        let t = trusted(&["10.0.0.0/8"]);
        let peer: SocketAddr = "203.0.113.9:4000".parse().unwrap();
        let mut h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("forwarded", "for=1.2.3.4"),
            ("host", "shop"),
        ]);
        assert_eq!(t.client_addr(peer, &h), peer);
        set_forwarded(&mut h, &Peer::new(peer), &t);
        assert_eq!(h["x-forwarded-for"], "203.0.113.9");
        assert_eq!(h["forwarded"], "for=203.0.113.9;proto=http;host=\"shop\"");
        assert_eq!(h["x-forwarded-host"], "shop");
    }

    #[test]
    fn a_trusted_proxy_chain_is_extended() {
        let t = trusted(&["10.0.0.0/8"]);
        let peer: SocketAddr = "10.0.0.2:4000".parse().unwrap();
        let mut h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.9")]);
        assert_eq!(
            t.client_addr(peer, &h).ip(),
            "198.51.100.7".parse::<IpAddr>().unwrap(),
            "the rightmost untrusted hop, not the client's own claim"
        );
        set_forwarded(&mut h, &Peer::new(peer), &t);
        assert_eq!(
            h["x-forwarded-for"],
            "6.6.6.6, 198.51.100.7, 10.0.0.9, 10.0.0.2"
        );
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = headers(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers, deflate"),
            ("upgrade", "websocket"),
            ("x-user-id", "u1"),
        ]);
        strip_hop_by_hop(&mut h);
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, ["te", "x-user-id"]);
        assert_eq!(h["te"], "trailers");
    }

    #[test]
    fn routes_match_by_longest_prefix_host_method_and_header() {
        let text = r#"
[upstreams.u]
targets = ["127.0.0.1:1"]
[[routes]]
name = "all"
upstream = "u"
[[routes]]
name = "orders"
path_prefix = "/orders"
upstream = "u"
[[routes]]
name = "orders-admin"
path_prefix = "/orders"
host = "admin.example.com"
methods = ["DELETE"]
headers = { x-role = "admin" }
upstream = "u"
"#;
        let c = crate::config::parse(text, "t").unwrap();
        let name = |method: &str, uri: &str, h: &[(&str, &str)]| {
            let mut b = Request::builder().method(method).uri(uri);
            for (k, v) in h {
                b = b.header(*k, *v);
            }
            match_route(&c.routes, &b.body(()).unwrap()).map(|(_, r)| r.name.clone())
        };
        assert_eq!(name("GET", "/x", &[]).as_deref(), Some("all"));
        assert_eq!(name("GET", "/orders/1", &[]).as_deref(), Some("orders"));
        let admin = [("host", "admin.example.com:8080"), ("x-role", "admin")];
        assert_eq!(
            name("DELETE", "/orders/1", &admin).as_deref(),
            Some("orders-admin")
        );
        assert_eq!(name("GET", "/orders/1", &admin).as_deref(), Some("orders"));
        assert_eq!(
            name("DELETE", "/orders/1", &admin[..1]).as_deref(),
            Some("orders")
        );
    }
}
