//! `chaos.toml`: the proxies of `goguard chaos proxy` and its admin address.
//!
//! ```toml
//! admin = "127.0.0.1:8474"
//!
//! [[proxy]]
//! name = "redis"
//! listen = "127.0.0.1:16379"
//! upstream = "127.0.0.1:6379"
//! ```

use std::path::Path;

use serde::Deserialize;

use crate::proxy::ProxyConfig;

/// The admin API's address when none is given: toxiproxy's port, on loopback.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:8474";

/// A checked `chaos.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChaosConfig {
    /// Where the admin API listens.
    #[serde(default = "default_admin")]
    pub admin: String,
    /// The proxies.
    #[serde(default, rename = "proxy")]
    pub proxies: Vec<ProxyConfig>,
}

fn default_admin() -> String {
    DEFAULT_ADMIN.to_string()
}

impl ChaosConfig {
    /// Reads and checks a file; the error is one line naming the file, and the field when
    /// one is wrong (`chaos.toml: proxy[1].upstream: ...`).
    pub fn load(path: &Path) -> Result<ChaosConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        ChaosConfig::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and checks the text of a `chaos.toml`.
    pub fn parse(text: &str) -> Result<ChaosConfig, String> {
        let c: ChaosConfig = toml::from_str(text).map_err(|e| one_line(&e.to_string()))?;
        c.check()?;
        Ok(c)
    }

    /// The checks beyond the types.
    pub fn check(&self) -> Result<(), String> {
        check_host_port(&self.admin).map_err(|e| format!("admin: {e}"))?;
        if self.proxies.is_empty() {
            return Err("no [[proxy]] (each with name, listen and upstream)".into());
        }
        let mut names = std::collections::HashSet::new();
        for (i, p) in self.proxies.iter().enumerate() {
            if !crate::toxic::valid_name(&p.name) {
                return Err(format!(
                    "proxy[{i}].name: `{}` must be 1 to 100 letters, digits, `-`, `_` or `.`",
                    p.name
                ));
            }
            if !names.insert(&p.name) {
                return Err(format!("proxy[{i}].name: `{}` is used twice", p.name));
            }
            check_host_port(&p.listen).map_err(|e| format!("proxy[{i}].listen: {e}"))?;
            check_host_port(&p.upstream).map_err(|e| format!("proxy[{i}].upstream: {e}"))?;
        }
        Ok(())
    }
}

/// `HOST:PORT` with a port number (IPv6 hosts in brackets).
pub fn check_host_port(s: &str) -> Result<(), String> {
    let bad = || format!("`{s}` is not HOST:PORT (like 127.0.0.1:6379)");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || host.contains(['/', ' ']) || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(())
}

/// toml's errors span several lines (the line, a caret); the first and the message are
/// enough for one line.
pub(crate) fn one_line(e: &str) -> String {
    let mut lines = e.lines().filter(|l| !l.trim().is_empty());
    let head = lines.next().unwrap_or_default().trim().to_string();
    let last = e
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_string();
    if last == head || last.is_empty() {
        head
    } else {
        format!("{head} {last}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_and_bad_files() {
        let c = ChaosConfig::parse(
            "[[proxy]]\nname = \"redis\"\nlisten = \"127.0.0.1:0\"\nupstream = \"localhost:6379\"\n",
        )
        .unwrap();
        assert_eq!(c.admin, DEFAULT_ADMIN);
        assert_eq!(c.proxies[0].upstream, "localhost:6379");
        let e = ChaosConfig::parse(
            "[[proxy]]\nname = \"redis\"\nlisten = \"127.0.0.1:0\"\nupstream = \"localhost\"\n",
        )
        .unwrap_err();
        assert_eq!(
            e,
            "proxy[0].upstream: `localhost` is not HOST:PORT (like 127.0.0.1:6379)"
        );
        let e = ChaosConfig::parse("[[proxy]]\nname = \"redis\"\n").unwrap_err();
        assert!(e.contains("missing field `listen`"), "{e}");
        let e = ChaosConfig::parse("admin = 1\n").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        assert_eq!(
            ChaosConfig::parse("").unwrap_err(),
            "no [[proxy]] (each with name, listen and upstream)"
        );
    }
}
