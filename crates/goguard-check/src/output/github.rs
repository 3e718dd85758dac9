//! GitHub Actions workflow commands (`::error file=...,line=...::message`).

use super::display_path;
use crate::diagnostic::Severity;
use crate::engine::Report;

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_prop(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// One annotation line per finding and per input error.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for d in &report.diagnostics {
        let level = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        out.push_str(&format!(
            "::{level} file={},line={},col={},endLine={},endColumn={},title={}::{}\n",
            escape_prop(&display_path(&d.path)),
            d.line,
            d.column,
            d.end_line,
            d.end_column,
            escape_prop(&format!("{} {}", d.rule, d.name)),
            escape_data(&format!("{} Why: {} Fix: {}", d.message, d.why, d.help)),
        ));
    }
    for e in &report.errors {
        out.push_str(&format!(
            "::error file={},title=goguard input error::{}\n",
            escape_prop(&display_path(&e.path)),
            escape_data(&e.message)
        ));
    }
    out
}
