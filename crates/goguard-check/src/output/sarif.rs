//! SARIF 2.1.0 for GitHub code scanning and other viewers.

use serde_json::{json, Value};

use super::display_path;
use crate::diagnostic::Severity;
use crate::engine::Report;
use crate::fix::Fix;
use crate::registry;

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// A fix as SARIF's `fix` object (3.55): one artifact change with a replacement per edit, each
/// a deleted region (empty for an insertion) and the text inserted there. Whether it is
/// safe goes in the property bag.
fn fix_value(fix: &Fix, uri: &str) -> Value {
    let replacements: Vec<Value> = fix
        .edits
        .iter()
        .map(|e| {
            let (start, end) = e.span.unwrap_or_default();
            json!({
                "deletedRegion": {
                    "startLine": start.line,
                    "startColumn": start.column,
                    "endLine": end.line,
                    "endColumn": end.column,
                },
                "insertedContent": {"text": e.content},
            })
        })
        .collect();
    json!({
        "description": {"text": fix.message},
        "artifactChanges": [{
            "artifactLocation": {"uri": uri, "uriBaseId": "%SRCROOT%"},
            "replacements": replacements,
        }],
        "properties": {"applicability": fix.applicability},
    })
}

/// The report as a SARIF log with one run, rule metadata for every rule.
pub fn to_value(report: &Report, version: &str) -> Value {
    let rules: Vec<Value> = registry::all()
        .iter()
        .map(|r| {
            json!({
                "id": r.code,
                "name": r.name,
                "shortDescription": {"text": r.summary},
                "fullDescription": {"text": r.why},
                "help": {"text": r.doc, "markdown": r.doc},
                "defaultConfiguration": {"level": level(r.severity)},
                "properties": {"tags": ["concurrency"]},
            })
        })
        .collect();
    let index_of = |code: &str| {
        registry::all()
            .iter()
            .position(|r| r.code == code)
            .unwrap_or(0)
    };
    let results: Vec<Value> = report
        .diagnostics
        .iter()
        .map(|d| {
            let mut result = json!({
                "ruleId": d.rule,
                "ruleIndex": index_of(d.rule),
                "level": level(d.severity),
                "message": {"text": format!("{} {} Fix: {}", d.message, d.why, d.help)},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": display_path(&d.path), "uriBaseId": "%SRCROOT%"},
                        "region": {
                            "startLine": d.line,
                            "startColumn": d.column,
                            "endLine": d.end_line,
                            "endColumn": d.end_column,
                        }
                    }
                }],
                "partialFingerprints": {"goguard/v1": format!("{}:{}:{}", d.rule, display_path(&d.path), d.code)},
            });
            if let Some(fix) = &d.fix {
                result["fixes"] = json!([fix_value(fix, &display_path(&d.path))]);
            }
            result
        })
        .collect();
    let notifications: Vec<Value> = report
        .errors
        .iter()
        .map(|e| {
            json!({
                "level": "error",
                "message": {"text": format!("{}: {}", display_path(&e.path), e.message)},
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "goguard",
                "version": version,
                "rules": rules,
            }},
            "results": results,
            "invocations": [{
                "executionSuccessful": report.errors.is_empty(),
                "toolExecutionNotifications": notifications,
            }],
        }]
    })
}
