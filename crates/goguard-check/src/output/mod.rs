//! Report formats: rustc-style text for people, JSON for scripts, SARIF for code scanning,
//! GitHub workflow commands for annotations, GitLab's Code Quality report for merge requests.

pub mod github;
pub mod gitlab;
pub mod json;
pub mod sarif;
pub mod text;

use std::path::Path;

/// A path as printed: forward slashes, no leading `./`.
pub fn display_path(p: &Path) -> String {
    let s = p.to_string_lossy().replace('\\', "/");
    s.strip_prefix("./").map(str::to_string).unwrap_or(s)
}
