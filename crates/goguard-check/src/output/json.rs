//! `{"diagnostics": [...], "files_scanned": N, "errors": [...]}`; each diagnostic has its
//! `fix` (or `null`).

use serde_json::{json, Value};

use super::display_path;
use crate::engine::Report;
use crate::fix::{Fix, Fixed};

/// A fix: its applicability, message and edits (byte offsets into the file as it was
/// read, and 1-based line and character column).
pub fn fix_value(fix: &Fix) -> Value {
    let edits: Vec<Value> = fix
        .edits
        .iter()
        .map(|e| {
            let (start, end) = e.span.unwrap_or_default();
            json!({
                "start": {"line": start.line, "column": start.column},
                "end": {"line": end.line, "column": end.column},
                "start_byte": e.start,
                "end_byte": e.end,
                "content": e.content,
            })
        })
        .collect();
    json!({
        "applicability": fix.applicability,
        "message": fix.message,
        "edits": edits,
    })
}

/// What `--fix` applied, for the report's `fixed` list.
pub fn fixed_value(fixed: &[Fixed]) -> Value {
    Value::Array(
        fixed
            .iter()
            .map(|f| {
                json!({
                    "rule": f.rule,
                    "path": display_path(&f.path),
                    "line": f.line,
                    "applicability": f.applicability,
                    "message": f.message,
                })
            })
            .collect(),
    )
}

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
                "fix": d.fix.as_ref().map(fix_value),
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
