//! Inline suppressions: `//goguard:ignore G301[,G302] reason` on the line of a finding or
//! on the line above it; and golangci-lint's `//nolint`, `//nolint:all` and
//! `//nolint:goguard` (with or without `// reason`) in the same places, for code that
//! already carries them. A `//nolint` naming other linters only is not goguard's.

use crate::diagnostic::Diagnostic;
use crate::registry;

/// One `//goguard:ignore` comment.
#[derive(Debug, Clone)]
pub struct Suppression {
    /// 1-based line of the comment.
    pub line: usize,
    pub column: usize,
    /// Rule selectors it names (ids, prefixes or names).
    pub rules: Vec<String>,
    pub reason: String,
    pub used: bool,
    /// A golangci-lint `//nolint`: shared with other linters, so never reported as unused.
    pub nolint: bool,
}

const MARKER: &str = "//goguard:ignore";

/// Finds the suppression comments of a file.
pub fn parse(text: &str) -> Vec<Suppression> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(s) = nolint(i, line) {
            out.push(s);
        }
        let Some(at) = line.find(MARKER) else {
            continue;
        };
        let rest = &line[at + MARKER.len()..];
        if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
            continue;
        }
        let rest = rest.trim();
        let (list, reason) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
        let rules = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        out.push(Suppression {
            line: i + 1,
            column: line[..at].chars().count() + 1,
            rules,
            reason: reason.trim().to_string(),
            used: false,
            nolint: false,
        });
    }
    out
}

/// golangci-lint's `//nolint[:linters] [// reason]` when it covers goguard: no list, or a
/// list with `all` or `goguard`.
fn nolint(i: usize, line: &str) -> Option<Suppression> {
    const NOLINT: &str = "//nolint";
    let at = line.find(NOLINT)?;
    let rest = &line[at + NOLINT.len()..];
    let covers = match rest.strip_prefix(':') {
        Some(list) => {
            let list = list.split([' ', '\t']).next().unwrap_or("");
            list.split(',')
                .any(|l| l.eq_ignore_ascii_case("all") || l.eq_ignore_ascii_case("goguard"))
        }
        None => rest.is_empty() || rest.starts_with([' ', '\t']),
    };
    if !covers {
        return None;
    }
    let reason = rest.split_once("//").map_or("", |(_, r)| r.trim());
    Some(Suppression {
        line: i + 1,
        column: line[..at].chars().count() + 1,
        rules: vec!["all".to_string()],
        reason: reason.to_string(),
        used: false,
        nolint: true,
    })
}

/// Removes suppressed diagnostics, marking the suppressions that were used.
pub fn apply(diags: &mut Vec<Diagnostic>, sups: &mut [Suppression]) {
    if sups.is_empty() {
        return;
    }
    diags.retain(|d| {
        let rule = registry::find(d.rule);
        let mut keep = true;
        for s in sups.iter_mut() {
            if s.line != d.line && s.line + 1 != d.line {
                continue;
            }
            if s.rules
                .iter()
                .any(|sel| rule.is_some_and(|r| registry::selects(sel, r)))
            {
                s.used = true;
                keep = false;
            }
        }
        keep
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn honours_golangci_nolint_for_goguard_only() {
        let rules = |t: &str| {
            parse(t)
                .into_iter()
                .map(|s| (s.rules, s.nolint))
                .collect::<Vec<_>>()
        };
        let all = vec![(vec!["all".to_string()], true)];
        assert_eq!(rules("x() //nolint\n"), all);
        assert_eq!(rules("x() //nolint:all\n"), all);
        assert_eq!(
            rules("x() //nolint:errcheck,goguard // started by the caller\n"),
            all
        );
        assert_eq!(parse("x() //nolint:goguard // why\n")[0].reason, "why");
        assert!(rules("x() //nolint:errcheck // why\n").is_empty());
        assert!(rules("x() //nolintx\n").is_empty());
    }

    #[test]
    fn parses_rules_and_reason() {
        let s =
            parse("x := 1 //goguard:ignore G301,G302 started by the caller\n//goguard:ignorex\n");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].rules, vec!["G301", "G302"]);
        assert_eq!(s[0].reason, "started by the caller");
        assert_eq!(s[0].line, 1);
    }
}
