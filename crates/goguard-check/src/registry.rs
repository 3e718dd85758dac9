//! The rule registry: every rule listed once, with its id, name, severity and docs.
//! Selection, configuration, suppressions and the docs all go through it.

use crate::checker::Checker;
use crate::diagnostic::Severity;

/// One static check. The `code` is a contract: users write it in suppressions and
/// configuration, so a rule is never renumbered.
pub struct Rule {
    pub code: &'static str,
    pub name: &'static str,
    pub severity: Severity,
    /// One line for `goguard rules` and the README table.
    pub summary: &'static str,
    /// Why it is a bug, in one sentence; printed with every finding.
    pub why: &'static str,
    /// The full documentation (Markdown): what it does, why it is bad, example, use
    /// instead, known limits, references. Printed by `goguard explain`.
    pub doc: &'static str,
    /// Words a file must contain for the rule to report in it (its package's import path,
    /// its method or keyword; `go func` matches any blank between the words). Files with
    /// none of any rule's words are not parsed: see `engine::prefilter`.
    pub needs: &'static [&'static str],
    /// What a goroutine dump or a crash shows when this bug happens at run time: a blocked
    /// goroutine's wait reason (`chan send`) or a fatal error's first line. `goguard dump`
    /// and `goguard run` name the rule that finds the cause statically through these.
    pub symptoms: &'static [&'static str],
    /// What `--fix` can do for its findings, for the rules table: "safe / unsafe" (safe in
    /// the shapes the rule's doc names, unsafe in others), "unsafe", or "" (no fix).
    pub fix: &'static str,
    pub check: fn(&mut Checker),
}

/// Every rule, in id order.
pub fn all() -> &'static [Rule] {
    crate::rules::RULES
}

/// Looks a rule up by id (`G301`, case-insensitive) or by name (`waitgroup-add-after-go`).
pub fn find(key: &str) -> Option<&'static Rule> {
    all()
        .iter()
        .find(|r| r.code.eq_ignore_ascii_case(key) || r.name == key)
}

/// The rule whose bug shows at run time as `symptom` (see [`Rule::symptoms`]).
pub fn explaining(symptom: &str) -> Option<&'static Rule> {
    all().iter().find(|r| r.symptoms.contains(&symptom))
}

/// Every rule's [`Rule::needs`] words, once each.
pub fn needed_words() -> &'static [&'static str] {
    static WORDS: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    WORDS.get_or_init(|| {
        let mut words: Vec<&'static str> = all().iter().flat_map(|r| r.needs).copied().collect();
        words.sort_unstable();
        words.dedup();
        words
    })
}

/// True when `selector` (an id prefix such as `G3`, `G30`, `G301`, `ALL`, or a rule name)
/// selects `rule`.
pub fn selects(selector: &str, rule: &Rule) -> bool {
    let s = selector.trim();
    s.eq_ignore_ascii_case("all")
        || s == rule.name
        || (!s.is_empty()
            && rule.code.len() >= s.len()
            && rule.code[..s.len()].eq_ignore_ascii_case(s))
}

/// True when a selector names at least one rule (used to reject typos in flags and config).
pub fn is_known_selector(selector: &str) -> bool {
    all().iter().any(|r| selects(selector, r))
}

/// The Markdown table of rules, as in the README (generated, checked by a test).
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| id | name | default severity | what it reports | fix |\n|---|---|---|---|---|\n",
    );
    for r in all() {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.code,
            r.name,
            r.severity.as_str(),
            r.summary,
            r.fix
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_docs_complete() {
        let mut seen = std::collections::HashSet::new();
        for r in all() {
            assert!(seen.insert(r.code), "duplicate id {}", r.code);
            assert!(
                r.doc.starts_with(&format!("# {} {}", r.code, r.name)),
                "{}: doc title",
                r.code
            );
            for section in [
                "## What it does",
                "## Why is this bad?",
                "## Example",
                "## Use instead",
                "## Known limits",
                "## References",
            ] {
                assert!(r.doc.contains(section), "{}: missing {section}", r.code);
            }
        }
    }

    /// A rule with a fix says in its documentation what the fix does and when it is safe.
    #[test]
    fn fixes_are_documented() {
        for r in all() {
            assert_eq!(
                !r.fix.is_empty(),
                r.doc.contains("\n## Fix\n"),
                "{}: the fix column and the doc's Fix section disagree",
                r.code
            );
        }
    }

    #[test]
    fn symptoms_name_one_rule_each() {
        let mut seen = std::collections::HashMap::new();
        for r in all() {
            assert!(!r.needs.is_empty(), "{}: no needed words", r.code);
            for s in r.symptoms {
                assert!(seen.insert(*s, r.code).is_none(), "{s}: two rules");
            }
        }
        assert_eq!(explaining("chan send").map(|r| r.code), Some("G106"));
        assert!(explaining("IO wait").is_none());
    }

    #[test]
    fn selectors_match_prefixes_and_names() {
        let g301 = find("G301").unwrap();
        assert!(selects("G3", g301) && selects("g30", g301) && selects("ALL", g301));
        assert!(selects("waitgroup-add-after-go", g301));
        assert!(!selects("G4", g301));
        assert!(!is_known_selector("G9"));
    }
}
