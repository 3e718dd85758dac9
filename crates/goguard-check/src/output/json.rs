//! `{"diagnostics": [...], "files_scanned": N, "errors": [...]}`.

use serde_json::{json, Value};

use super::display_path;
use crate::engine::Report;

/// The report as one JSON value.
pub fn to_value(report: &Report) -> Value {
    let diags: Vec<Value> = report
        .diagnostics
        .iter()
        .map(|d| {
            json!({
                "rule": d.rule,
                "name": d.name,
                "severity": d.severity,
                "path": display_path(&d.path),
                "line": d.line,
                "column": d.column,
                "end_line": d.end_line,
                "end_column": d.end_column,
                "message": d.message,
                "why": d.why,
                "help": d.help,
            })
        })
        .collect();
    let errors: Vec<Value> = report
        .errors
        .iter()
        .map(|e| json!({"path": display_path(&e.path), "kind": e.kind, "message": e.message}))
        .collect();
    let partial: Vec<Value> = report
        .partial
        .iter()
        .map(|p| json!({"path": display_path(&p.path), "line": p.line, "column": p.column, "error_count": p.error_count}))
        .collect();
    let unused: Vec<Value> = report
        .unused_suppressions
        .iter()
        .map(|u| json!({"path": display_path(&u.path), "line": u.line, "column": u.column, "rules": u.rules}))
        .collect();
    json!({
        "diagnostics": diags,
        "files_scanned": report.files_scanned,
        "errors": errors,
        "partially_analysed": partial,
        "unused_suppressions": unused,
    })
}
