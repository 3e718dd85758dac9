//! What a rule reports.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::source::Position;

/// How serious a finding is. Ordered: `Info < Warning < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A performance note or a version-dependent nuance; hidden unless asked for.
    Info,
    /// A bug on some paths or under some conditions.
    Warning,
    /// A bug that hangs, leaks or crashes whenever the code runs.
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        match text.to_ascii_lowercase().as_str() {
            "info" | "note" => Some(Severity::Info),
            "warning" | "warn" => Some(Severity::Warning),
            "error" => Some(Severity::Error),
            _ => None,
        }
    }
}

/// One finding, located and explained.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnostic {
    pub rule: &'static str,
    pub name: &'static str,
    pub severity: Severity,
    /// The path as the user would open it.
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    /// What is wrong here, naming the code involved.
    pub message: String,
    /// Why it is a bug, in one sentence.
    pub why: String,
    /// The concrete fix.
    pub help: String,
    /// The trimmed source line of the finding, used by baselines to match findings
    /// across edits that move lines.
    #[serde(skip)]
    pub code: String,
    /// The whole source line of the start, for rendering a caret under it.
    #[serde(skip)]
    pub source_line: String,
    #[serde(skip)]
    pub start_byte: usize,
    #[serde(skip)]
    pub end_byte: usize,
    /// The edit the rule offers, if the finding has a mechanical fix (see [`crate::fix`]).
    #[serde(skip)]
    pub fix: Option<crate::fix::Fix>,
}

impl Diagnostic {
    pub fn start(&self) -> Position {
        Position {
            line: self.line,
            column: self.column,
        }
    }
}

/// A problem with an input that is not a concurrency finding.
#[derive(Debug, Clone, Serialize)]
pub struct InputError {
    pub path: PathBuf,
    /// `io`, `encoding`, `too-large`, `internal`, `config`.
    pub kind: &'static str,
    pub message: String,
}

/// A file that parsed with syntax errors: analysed where it parsed.
#[derive(Debug, Clone, Serialize)]
pub struct PartialFile {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub error_count: usize,
}
