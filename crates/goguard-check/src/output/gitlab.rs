//! GitLab's Code Quality report (the Code Climate JSON subset GitLab reads): an array of
//! issues, each with a description, the rule, a stable fingerprint, a severity and a place.
//! A merge request then shows the findings it adds and the ones it fixes.

use serde_json::{json, Value};

use super::display_path;
use crate::diagnostic::Severity;
use crate::engine::Report;

/// The report as GitLab's `codequality` artifact wants it.
pub fn to_value(report: &Report) -> Value {
    let issues: Vec<Value> = report
        .diagnostics
        .iter()
        .map(|d| {
            let path = display_path(&d.path);
            json!({
                "type": "issue",
                "check_name": format!("{} {}", d.rule, d.name),
                "description": format!("{}: {}", d.rule, d.message),
                "content": { "body": format!("{} Fix: {}", d.why, d.help) },
                "categories": ["Bug Risk"],
                "severity": match d.severity {
                    Severity::Error => "critical",
                    Severity::Warning => "major",
                    Severity::Info => "info",
                },
                // The same finding keeps its fingerprint when lines move above it: the rule,
                // the file and the code of the line, not the line number.
                "fingerprint": fingerprint(&[d.rule, &path, d.code.as_str()]),
                "location": {
                    "path": path,
                    "lines": { "begin": d.line, "end": d.end_line },
                },
            })
        })
        .collect();
    Value::Array(issues)
}

/// A 64-bit FNV-1a hash of the parts, in hex: stable across runs and versions.
fn fingerprint(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_stable_and_distinct() {
        assert_eq!(
            fingerprint(&["G106", "a.go", "ch <- v"]),
            fingerprint(&["G106", "a.go", "ch <- v"])
        );
        assert_ne!(
            fingerprint(&["G106", "a.go", "ch <- v"]),
            fingerprint(&["G106", "b.go", "ch <- v"])
        );
        // The separator keeps "ab"+"c" apart from "a"+"bc".
        assert_ne!(fingerprint(&["ab", "c"]), fingerprint(&["a", "bc"]));
    }
}
