//! The Go language version that governs a file: the `go` directive of the nearest `go.mod`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A Go language version (`go 1.22` in go.mod). Patch levels do not change semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct GoVersion {
    pub major: u32,
    pub minor: u32,
}

impl GoVersion {
    pub const fn new(major: u32, minor: u32) -> Self {
        GoVersion { major, minor }
    }

    /// The version assumed when no go.mod governs a file: the newest Go this release knows.
    pub const LATEST: GoVersion = GoVersion::new(1, 27);
    /// Unreferenced timers and tickers are collected; timer channels are unbuffered.
    pub const TIMERS_COLLECTED: GoVersion = GoVersion::new(1, 23);
    /// `sync.WaitGroup.Go` exists.
    pub const WAITGROUP_GO: GoVersion = GoVersion::new(1, 25);

    /// Parses `1.22`, `1.22.3`, `1.21rc1`, `go1.22`.
    pub fn parse(text: &str) -> Option<GoVersion> {
        let t = text.trim().trim_start_matches("go");
        let mut parts = t.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor_part = parts.next().unwrap_or("0");
        let digits: String = minor_part
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        let minor = digits.parse().ok()?;
        Some(GoVersion { major, minor })
    }

    pub fn at_least(self, other: GoVersion) -> bool {
        self >= other
    }
}

impl fmt::Display for GoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Where a file's Go version came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    pub version: GoVersion,
    /// The go.mod that declared it, or `None` when no go.mod was found (then
    /// `version` is [`GoVersion::LATEST`]).
    pub go_mod: Option<PathBuf>,
}

impl ModuleInfo {
    /// Words for messages: "go 1.22 (go.mod)" or "go 1.27 (no go.mod; current Go assumed)".
    pub fn describe(&self) -> String {
        match &self.go_mod {
            Some(_) => format!("go {} per go.mod", self.version),
            None => format!("go {}, assumed: no go.mod found", self.version),
        }
    }
}

/// Reads the `go` directive from go.mod text.
pub fn go_directive(go_mod: &str) -> Option<GoVersion> {
    go_mod.lines().find_map(|line| {
        let line = line.split("//").next()?.trim();
        let rest = line.strip_prefix("go")?;
        if !rest.starts_with([' ', '\t']) {
            return None;
        }
        GoVersion::parse(rest)
    })
}

/// Reads the `module` directive from go.mod text (`module example.com/app`, quoted or not).
pub fn module_path(go_mod: &str) -> Option<String> {
    go_mod.lines().find_map(|line| {
        let line = line.split("//").next()?.trim();
        let rest = line.strip_prefix("module")?;
        if !rest.starts_with([' ', '\t']) {
            return None;
        }
        let path = rest.trim().trim_matches('"');
        (!path.is_empty()).then(|| path.to_string())
    })
}

/// Finds and caches the governing go.mod of directories.
#[derive(Default)]
pub struct ModuleResolver {
    cache: HashMap<PathBuf, ModuleInfo>,
}

impl ModuleResolver {
    /// The module info for a directory: the nearest go.mod at or above it.
    pub fn for_dir(&mut self, dir: &Path) -> ModuleInfo {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        self.lookup(&abs)
    }

    fn lookup(&mut self, dir: &Path) -> ModuleInfo {
        if let Some(info) = self.cache.get(dir) {
            return info.clone();
        }
        let candidate = dir.join("go.mod");
        let info = match std::fs::read_to_string(&candidate) {
            Ok(text) => ModuleInfo {
                // A go.mod without a directive means go 1.16 to the go command.
                version: go_directive(&text).unwrap_or(GoVersion::new(1, 16)),
                go_mod: Some(candidate),
            },
            Err(_) => match dir.parent() {
                Some(parent) => self.lookup(parent),
                None => ModuleInfo {
                    version: GoVersion::LATEST,
                    go_mod: None,
                },
            },
        };
        self.cache.insert(dir.to_path_buf(), info.clone());
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_paths() {
        assert_eq!(
            module_path("// c\nmodule example.com/app // x\n\ngo 1.22\n").as_deref(),
            Some("example.com/app")
        );
        assert_eq!(module_path("module \"a/b\"\n").as_deref(), Some("a/b"));
        assert_eq!(module_path("modules x\ngo 1.22\n"), None);
    }

    #[test]
    fn parses_directives() {
        assert_eq!(
            go_directive("module x\n\ngo 1.22.3\n"),
            Some(GoVersion::new(1, 22))
        );
        assert_eq!(
            go_directive("module x\ngo\t1.21rc1 // pinned\n"),
            Some(GoVersion::new(1, 21))
        );
        assert_eq!(go_directive("module x\ngodebug x=1\n"), None);
        assert_eq!(go_directive("module x\ntoolchain go1.25.0\n"), None);
    }

    #[test]
    fn orders_versions() {
        assert!(GoVersion::new(1, 23).at_least(GoVersion::TIMERS_COLLECTED));
        assert!(!GoVersion::new(1, 9).at_least(GoVersion::new(1, 10)));
    }
}
