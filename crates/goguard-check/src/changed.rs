//! The lines changed since a git revision (`goguard check --new-from-rev REV`), as
//! golangci-lint's option of that name reads them: what `git diff REV` adds or changes in the
//! work tree, and every line of files git does not track yet. Findings elsewhere are old and
//! are not reported, so a check can be switched on in CI for new code first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Changed lines per file (absolute, canonical paths); `None` for a whole file.
#[derive(Debug, Default)]
pub struct ChangedLines {
    files: HashMap<PathBuf, Option<Vec<(usize, usize)>>>,
}

impl ChangedLines {
    /// Whether line `line` (1-based) of `path` is new or changed.
    pub fn contains(&self, path: &Path, line: usize) -> bool {
        let Ok(path) = path.canonicalize() else {
            return false;
        };
        match self.files.get(&path) {
            Some(None) => true,
            Some(Some(ranges)) => ranges.iter().any(|&(a, b)| a <= line && line <= b),
            None => false,
        }
    }
}

/// The lines changed since `rev` in the repository holding `at` (a file or directory).
pub fn since(at: &Path, rev: &str) -> Result<ChangedLines, String> {
    let dir = if at.is_dir() {
        at.to_path_buf()
    } else {
        at.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    };
    let top = git(&dir, &["rev-parse", "--show-toplevel"]).map_err(|e| {
        format!(
            "--new-from-rev: {} is not in a git work tree ({e})",
            dir.display()
        )
    })?;
    let top = PathBuf::from(top.trim());
    // `REV^{commit}` fails cleanly for a name that is not a commit.
    git(
        &top,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ],
    )
    .map_err(|_| {
        format!(
            "--new-from-rev: `{rev}` is not a commit of {}",
            top.display()
        )
    })?;
    let diff = git(
        &top,
        &[
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--unified=0",
            rev,
            "--",
        ],
    )?;
    let mut changed = ChangedLines::default();
    for (file, ranges) in parse_diff(&diff) {
        if let Ok(p) = top.join(file).canonicalize() {
            changed.files.insert(p, Some(ranges));
        }
    }
    let untracked = git(&top, &["ls-files", "--others", "--exclude-standard"])?;
    for file in untracked.lines().filter(|l| !l.is_empty()) {
        if let Ok(p) = top.join(file).canonicalize() {
            changed.files.insert(p, None);
        }
    }
    Ok(changed)
}

fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().next().unwrap_or("git failed").to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The new-side line ranges of a `git diff --unified=0`, per file (as git names it, from
/// the top of the repository). Deleted files and pure deletions add no range.
fn parse_diff(diff: &str) -> Vec<(String, Vec<(usize, usize)>)> {
    let mut out: Vec<(String, Vec<(usize, usize)>)> = Vec::new();
    for line in diff.lines() {
        if let Some(name) = line.strip_prefix("+++ ") {
            // `+++ b/path`, or `+++ /dev/null` for a deleted file.
            match name.strip_prefix("b/") {
                Some(path) => out.push((path.to_string(), Vec::new())),
                None => out.push((String::new(), Vec::new())),
            }
        } else if let Some(hunk) = line.strip_prefix("@@ ") {
            // `@@ -a,b +c,d @@`: d lines from c (d is 1 when absent; 0 is a deletion).
            let Some(new) = hunk.split(' ').find_map(|p| p.strip_prefix('+')) else {
                continue;
            };
            let (start, count) = match new.split_once(',') {
                Some((s, c)) => (s.parse().unwrap_or(0), c.parse().unwrap_or(0)),
                None => (new.parse().unwrap_or(0), 1),
            };
            if let (Some((_, ranges)), true) = (out.last_mut(), count > 0) {
                ranges.push((start, start + count - 1));
            }
        }
    }
    out.retain(|(f, _)| !f.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_new_side_of_each_hunk() {
        let diff = "diff --git a/a.go b/a.go\n--- a/a.go\n+++ b/a.go\n@@ -3,0 +4,2 @@ func f() {\n+\tx\n+\ty\n@@ -10 +12 @@\n-a\n+b\n@@ -20,3 +22,0 @@\n-gone\ndiff --git a/old.go b/old.go\n--- a/old.go\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-x\n";
        assert_eq!(
            parse_diff(diff),
            vec![("a.go".to_string(), vec![(4, 5), (12, 12)])]
        );
    }
}
