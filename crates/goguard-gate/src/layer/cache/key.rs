//! A cache key's template: text with `{host}`, `{method}`, `{path}`, `{query}` (the whole
//! query string), `{query.NAME}` and `{header.NAME}` in it, parsed once and filled per
//! request. What the template leaves out does not tell answers apart: `{path}` alone serves
//! `/items/1?utm=x` and `/items/1` the same answer.

use http::{HeaderName, Request};

/// The default: one entry per host, path and query, as nginx's `$scheme$proxy_host$request_uri`.
pub const DEFAULT: &str = "{host}{path}?{query}";

/// Ends each value taken from the request within a key (see [`KeyTemplate::key`]): a
/// control byte, which a URI (checked by the HTTP parser) and a header value (RFC 9110 5.5)
/// cannot contain.
const SEPARATOR: char = '\u{1f}';

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    parts: Vec<Part>,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Host,
    Method,
    Path,
    Query,
    QueryParam(String),
    Header(HeaderName),
}

impl std::str::FromStr for KeyTemplate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("`{s}`: a `{{` without its `}}`"))?;
            parts.push(Part::of(&rest[open + 1..open + close], s)?);
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("`{s}`: a `}}` without its `{{`"));
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        if !parts.iter().any(|p| !matches!(p, Part::Text(_))) {
            return Err(format!(
                "`{s}`: names nothing of the request: every request would get one answer"
            ));
        }
        Ok(KeyTemplate {
            parts,
            text: s.to_string(),
        })
    }
}

impl Part {
    fn of(name: &str, template: &str) -> Result<Part, String> {
        Ok(match name {
            "host" => Part::Host,
            "method" => Part::Method,
            "path" => Part::Path,
            "query" => Part::Query,
            _ => match name.split_once('.') {
                Some(("query", p)) if !p.is_empty() => Part::QueryParam(p.to_string()),
                Some(("header", h)) => Part::Header(
                    HeaderName::from_bytes(h.as_bytes())
                        .map_err(|_| format!("`{template}`: `{h}` is not a header name"))?,
                ),
                _ => {
                    return Err(format!(
                        "`{template}`: unknown `{{{name}}}` (host, method, path, query, query.NAME, header.NAME)"
                    ))
                }
            },
        })
    }
}

impl std::fmt::Display for KeyTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

crate::layer::string_serde!(KeyTemplate);

impl Default for KeyTemplate {
    fn default() -> Self {
        DEFAULT.parse().expect("the default template parses")
    }
}

impl KeyTemplate {
    /// The request's key.
    pub fn key<B>(&self, req: &Request<B>) -> String {
        let mut out = String::with_capacity(64);
        for (i, p) in self.parts.iter().enumerate() {
            // A value from the request ends with a byte no path, query or header value can
            // hold, unless it ends the key: else `{path}{header.x}` would make "/a" with
            // `x: b/c` and "/ab/c" without it one key, and one client could choose the
            // answer another gets (cache poisoning).
            if i > 0 && !matches!(self.parts[i - 1], Part::Text(_)) {
                out.push(SEPARATOR);
            }
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Host => out.push_str(
                    req.uri()
                        .host()
                        .or_else(|| {
                            req.headers()
                                .get(http::header::HOST)
                                .and_then(|h| h.to_str().ok())
                        })
                        .unwrap_or(""),
                ),
                Part::Method => out.push_str(req.method().as_str()),
                Part::Path => out.push_str(req.uri().path()),
                Part::Query => out.push_str(req.uri().query().unwrap_or("")),
                Part::QueryParam(name) => {
                    let value = req.uri().query().and_then(|q| {
                        q.split('&')
                            .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
                            .find(|(k, _)| k == name)
                            .map(|(_, v)| v)
                    });
                    out.push_str(value.unwrap_or(""));
                }
                Part::Header(name) => {
                    // Every value, in order: two requests differing in any one differ.
                    for (i, v) in req.headers().get_all(name).iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(&String::from_utf8_lossy(v.as_bytes()));
                    }
                }
            }
        }
        out
    }

    /// The headers the key reads.
    pub fn headers(&self) -> impl Iterator<Item = &HeaderName> {
        self.parts.iter().filter_map(|p| match p {
            Part::Header(h) => Some(h),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn templates_fill_from_the_request() {
        let r = req(
            "/items/7?id=7&utm=x",
            &[("host", "shop.example"), ("accept-language", "de")],
        );
        let key = |t: &str| t.parse::<KeyTemplate>().unwrap().key(&r);
        // Each value from the request but the last is followed by the separator (\x1f).
        assert_eq!(key(DEFAULT), "shop.example\x1f/items/7\x1f?id=7&utm=x");
        assert_eq!(key("{path}|{query.id}"), "/items/7\x1f|7");
        assert_eq!(key("{path}"), "/items/7");
        assert_eq!(
            key("{method} {path} {header.Accept-Language}"),
            "GET\x1f /items/7\x1f de"
        );
        assert_eq!(key("{query.missing}{path}"), "\x1f/items/7");
    }

    #[test]
    fn one_client_cannot_make_anothers_key() {
        // With values run together, "/a" with `x-tenant: b/c` and "/ab/c" without it would
        // be one key: whoever asks first would choose what the other is answered.
        let t: KeyTemplate = "{path}{header.x-tenant}".parse().unwrap();
        let attacker = t.key(&req("/a", &[("x-tenant", "b/c")]));
        let victim = t.key(&req("/ab/c", &[]));
        assert_ne!(attacker, victim);
    }

    #[test]
    fn bad_templates_say_why() {
        let err = |t: &str| t.parse::<KeyTemplate>().unwrap_err();
        assert!(err("{path").contains("without its"), "{}", err("{path"));
        assert!(err("{pth}").contains("unknown `{pth}`"), "{}", err("{pth}"));
        assert!(err("{header.a b}").contains("not a header name"));
        assert!(err("static").contains("names nothing"));
    }
}
