//! Inline suppressions: `//goguard:ignore G301[,G302] reason` on the line of a finding or
//! on the line above it.

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
}

const MARKER: &str = "//goguard:ignore";

/// Finds the suppression comments of a file.
pub fn parse(text: &str) -> Vec<Suppression> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
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
        });
    }
    out
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
    fn parses_rules_and_reason() {
        let s =
            parse("x := 1 //goguard:ignore G301,G302 started by the caller\n//goguard:ignorex\n");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].rules, vec!["G301", "G302"]);
        assert_eq!(s[0].reason, "started by the caller");
        assert_eq!(s[0].line, 1);
    }
}
