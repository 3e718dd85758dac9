//! Fetching goroutine dumps from a live service's `net/http/pprof` endpoint.

use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

/// How to reach a pprof endpoint.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub timeout: Duration,
    /// `Name: value` headers sent with every request (authentication).
    pub headers: Vec<String>,
    /// A PEM file of extra root certificates for `https://` endpoints with a private CA.
    pub ca_cert: Option<std::path::PathBuf>,
    /// Ask `/debug/pprof/goroutineleak` first (Go 1.26+): the same debug=2 dump with the
    /// goroutines Go proves leaked marked `(leaked)`. It runs a GC cycle on the service.
    pub leak_profile: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            timeout: Duration::from_secs(10),
            headers: Vec::new(),
            ca_cert: None,
            leak_profile: true,
        }
    }
}

/// A client for one or more fetches from pprof endpoints.
pub struct Fetcher {
    agent: ureq::Agent,
    headers: Vec<(String, String)>,
    leak_profile: bool,
}

/// The profiles tried, in order, for a bare service address: the richest first, then the
/// forms an older or restricted server may still serve.
const ENDPOINTS: &[(&str, bool)] = &[
    ("goroutineleak?debug=2", true),
    ("goroutine?debug=2", false),
    ("goroutine?debug=1", false),
    ("goroutine", false),
];

impl Fetcher {
    pub fn new(options: &FetchOptions) -> Result<Fetcher, String> {
        let mut headers = Vec::new();
        for h in &options.headers {
            let (name, value) = h
                .split_once(':')
                .filter(|(n, _)| !n.trim().is_empty())
                .ok_or_else(|| format!("--header `{h}`: expected NAME: VALUE"))?;
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(options.timeout))
            // A non-2xx answer is read like any other so the fallback can look at it.
            .http_status_as_error(false);
        if let Some(path) = &options.ca_cert {
            config = config.tls_config(tls_with_roots(path)?);
        }
        Ok(Fetcher {
            agent: ureq::Agent::new_with_config(config.build()),
            headers,
            leak_profile: options.leak_profile,
        })
    }

    /// Fetches a dump. A bare service address (`http://host:6060`, or one ending in
    /// `/debug/pprof/`) tries the goroutine endpoints from the richest form down; a full URL
    /// is fetched as given. Returns the URL that answered and its body, streamed.
    pub fn fetch(&self, url: &str) -> Result<(String, Box<dyn BufRead + Send>), String> {
        let Some(base) = service_base(url) else {
            return self.get(url).map(|body| (url.to_string(), body));
        };
        let mut tried = Vec::new();
        for (endpoint, leak) in ENDPOINTS {
            if *leak && !self.leak_profile {
                continue;
            }
            let full = format!("{base}/debug/pprof/{endpoint}");
            match self.get(&full) {
                Ok(body) => return Ok((full, body)),
                Err(e) if e.contains("HTTP 404") => tried.push(endpoint.to_string()),
                Err(e) => return Err(e),
            }
        }
        Err(format!(
            "{url}: no pprof goroutine endpoint here (tried /debug/pprof/{}; is net/http/pprof imported and served?)",
            tried.join(", ")
        ))
    }

    fn get(&self, url: &str) -> Result<Box<dyn BufRead + Send>, String> {
        let mut request = self.agent.get(url);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let response = request.call().map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            let hint = match status.as_u16() {
                401 | 403 => " (the endpoint wants credentials: --header 'Authorization: ...')",
                404 => " (not found)",
                _ => "",
            };
            return Err(format!("{url}: HTTP {}{hint}", status.as_u16()));
        }
        Ok(Box::new(std::io::BufReader::new(
            response.into_body().into_reader(),
        )))
    }
}

/// `http://host:port`, `http://host:port/` or `.../debug/pprof[/]` -> `http://host:port`;
/// `None` for a URL naming an endpoint.
fn service_base(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let path = path.trim_end_matches('/');
    (path.is_empty() || path == "debug/pprof").then(|| format!("{scheme}://{host}"))
}

fn tls_with_roots(path: &Path) -> Result<ureq::tls::TlsConfig, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(format!(
            "{}: no PEM certificate in the file",
            path.display()
        ));
    }
    Ok(ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_addresses_get_the_endpoint_chain() {
        assert_eq!(
            service_base("http://127.0.0.1:6060").as_deref(),
            Some("http://127.0.0.1:6060")
        );
        assert_eq!(
            service_base("https://svc:6060/debug/pprof/").as_deref(),
            Some("https://svc:6060")
        );
        assert_eq!(
            service_base("http://svc:6060/debug/pprof/goroutine?debug=1"),
            None
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        let options = FetchOptions {
            headers: vec!["no colon".into()],
            ..FetchOptions::default()
        };
        assert!(Fetcher::new(&options).is_err());
    }
}
