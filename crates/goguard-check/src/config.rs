//! `goguard.toml`: rule selection, per-path ignores, severity overrides, excluded globs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use crate::diagnostic::Severity;
use crate::registry;

/// The file name looked for, walking up from each analysed path.
pub const CONFIG_FILE: &str = "goguard.toml";

/// The configuration file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawConfig {
    /// Rule ids, prefixes (`G3`) or names to enable; default: all.
    pub select: Option<Vec<String>>,
    /// Rule ids, prefixes or names to disable.
    #[serde(default)]
    pub ignore: Vec<String>,
    /// Findings at or above this severity make the exit code 1.
    pub fail_on: Option<String>,
    /// Globs (relative to the config file's directory) of files not to analyse.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Glob -> rule selectors ignored under it.
    #[serde(default)]
    pub per_path_ignores: BTreeMap<String, Vec<String>>,
    /// Rule id -> severity.
    #[serde(default)]
    pub severity: BTreeMap<String, String>,
}

/// A configuration error, naming the file and the problem.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: PathBuf,
    pub message: String,
}

/// The validated configuration.
#[derive(Debug, Default, Clone)]
pub struct Config {
    /// The directory globs are relative to.
    pub root: PathBuf,
    pub source: Option<PathBuf>,
    pub select: Option<Vec<String>>,
    pub ignore: Vec<String>,
    pub fail_on: Option<Severity>,
    pub exclude: Option<GlobSet>,
    pub per_path_ignores: Vec<(GlobSet, Vec<String>)>,
    pub severity: BTreeMap<String, Severity>,
    /// A hash of the file and where it is (0: no file): part of the result cache's keys.
    fingerprint: u64,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let err = |message: String| ConfigError {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let raw: RawConfig = toml::from_str(&text).map_err(|e| err(toml_message(&text, &e)))?;
        let root = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut config = Config::from_raw(raw, root, Some(path.to_path_buf())).map_err(err)?;
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(path.as_os_str().as_encoded_bytes());
        h.update(&[0]);
        h.update(text.as_bytes());
        config.fingerprint = h.digest();
        Ok(config)
    }

    /// What tells this configuration apart from another in the result cache's keys.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    fn from_raw(raw: RawConfig, root: PathBuf, source: Option<PathBuf>) -> Result<Config, String> {
        let check_selectors = |what: &str, list: &[String]| -> Result<(), String> {
            match list.iter().find(|s| !registry::is_known_selector(s)) {
                Some(bad) => Err(format!(
                    "{what}: `{bad}` names no rule (see `goguard rules`)"
                )),
                None => Ok(()),
            }
        };
        if let Some(sel) = &raw.select {
            check_selectors("select", sel)?;
        }
        check_selectors("ignore", &raw.ignore)?;
        let fail_on = match &raw.fail_on {
            Some(s) => Some(
                Severity::parse(s)
                    .ok_or_else(|| format!("fail-on: `{s}` is not one of info, warning, error"))?,
            ),
            None => None,
        };
        let exclude = if raw.exclude.is_empty() {
            None
        } else {
            Some(globs(&raw.exclude)?)
        };
        let mut per_path_ignores = Vec::new();
        for (glob, rules) in &raw.per_path_ignores {
            check_selectors(&format!("per-path-ignores.\"{glob}\""), rules)?;
            per_path_ignores.push((globs(std::slice::from_ref(glob))?, rules.clone()));
        }
        let mut severity = BTreeMap::new();
        for (rule, sev) in &raw.severity {
            let r = registry::find(rule)
                .ok_or_else(|| format!("severity: `{rule}` is not a rule id"))?;
            let s = Severity::parse(sev).ok_or_else(|| {
                format!("severity.{rule}: `{sev}` is not one of info, warning, error")
            })?;
            severity.insert(r.code.to_string(), s);
        }
        Ok(Config {
            root,
            source,
            select: raw.select,
            ignore: raw.ignore,
            fail_on,
            exclude,
            per_path_ignores,
            severity,
            fingerprint: 0,
        })
    }

    /// Finds `goguard.toml` at or above `start` (a file or directory).
    pub fn discover(start: &Path) -> Option<PathBuf> {
        let abs = std::fs::canonicalize(start).ok()?;
        let mut dir = if abs.is_dir() {
            Some(abs.as_path())
        } else {
            abs.parent()
        };
        while let Some(d) = dir {
            let candidate = d.join(CONFIG_FILE);
            if candidate.is_file() {
                return Some(candidate);
            }
            dir = d.parent();
        }
        None
    }

    /// The path relative to the config root, for glob matching.
    fn relative<'p>(&self, abs: &'p Path) -> &'p Path {
        abs.strip_prefix(&self.root).unwrap_or(abs)
    }

    /// True when the file is excluded by an `exclude` glob.
    pub fn is_excluded(&self, abs: &Path) -> bool {
        self.exclude
            .as_ref()
            .is_some_and(|g| g.is_match(self.relative(abs)))
    }

    /// Rule selectors ignored for this file by `per-path-ignores`.
    pub fn ignored_for(&self, abs: &Path) -> Vec<&str> {
        let rel = self.relative(abs);
        self.per_path_ignores
            .iter()
            .filter(|(g, _)| g.is_match(rel))
            .flat_map(|(_, rules)| rules.iter().map(String::as_str))
            .collect()
    }
}

fn globs(patterns: &[String]) -> Result<GlobSet, String> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).map_err(|e| format!("bad glob `{p}`: {e}"))?);
        // `dir/` and `dir` also exclude everything below.
        let below = format!("{}/**", p.trim_end_matches('/'));
        b.add(Glob::new(&below).map_err(|e| format!("bad glob `{p}`: {e}"))?);
    }
    b.build().map_err(|e| e.to_string())
}

/// A one-line TOML error with its line number.
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {msg}")
        }
        None => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        Config::from_raw(raw, PathBuf::from("/p"), None)
    }

    #[test]
    fn accepts_a_full_config() {
        let c = parse(
            r#"
select = ["G1", "G3"]
ignore = ["G105"]
fail-on = "error"
exclude = ["gen"]
[per-path-ignores]
"legacy/**" = ["G3"]
[severity]
G201 = "warning"
"#,
        )
        .unwrap();
        assert_eq!(c.fail_on, Some(Severity::Error));
        assert!(c.is_excluded(Path::new("/p/gen/x.go")));
        assert!(!c.is_excluded(Path::new("/p/src/x.go")));
        assert_eq!(c.ignored_for(Path::new("/p/legacy/a/b.go")), vec!["G3"]);
        assert_eq!(c.severity.get("G201"), Some(&Severity::Warning));
    }

    #[test]
    fn rejects_unknown_rules_and_keys() {
        assert!(parse("ignore = [\"G999\"]").unwrap_err().contains("G999"));
        assert!(parse("selct = [\"G1\"]").is_err());
        assert!(parse("fail-on = \"fatal\"").unwrap_err().contains("fatal"));
    }
}
