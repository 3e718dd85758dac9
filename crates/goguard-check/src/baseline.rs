//! Baselines for adopting goguard in an existing codebase: record today's findings, then
//! report only new ones. Findings are matched by rule, path and the trimmed source line, not
//! by line number, so edits above a finding do not resurface it.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::diagnostic::Diagnostic;
use crate::output::display_path;

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, Hash, Clone)]
struct Entry {
    rule: String,
    path: String,
    code: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct File {
    version: u32,
    findings: Vec<Entry>,
}

fn entry(d: &Diagnostic) -> Entry {
    Entry {
        rule: d.rule.to_string(),
        path: display_path(&d.path),
        code: d.code.clone(),
    }
}

/// A baseline error, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct BaselineError {
    pub path: String,
    pub message: String,
}

/// Writes the findings as a baseline.
pub fn write(path: &Path, diags: &[Diagnostic]) -> Result<(), BaselineError> {
    let mut findings: Vec<Entry> = diags.iter().map(entry).collect();
    findings.sort_by(|a, b| (&a.path, &a.rule, &a.code).cmp(&(&b.path, &b.rule, &b.code)));
    let text = serde_json::to_string_pretty(&File {
        version: 1,
        findings,
    })
    .map_err(|e| BaselineError {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    std::fs::write(path, text + "\n").map_err(|e| BaselineError {
        path: path.display().to_string(),
        message: format!("cannot write: {e}"),
    })
}

/// Removes the findings the baseline records (each entry absorbs one finding).
pub fn filter(path: &Path, diags: &mut Vec<Diagnostic>) -> Result<usize, BaselineError> {
    let err = |message: String| BaselineError {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let file: File =
        serde_json::from_str(&text).map_err(|e| err(format!("not a goguard baseline: {e}")))?;
    let mut budget: HashMap<Entry, usize> = HashMap::new();
    for e in file.findings {
        *budget.entry(e).or_default() += 1;
    }
    let before = diags.len();
    diags.retain(|d| match budget.get_mut(&entry(d)) {
        Some(n) if *n > 0 => {
            *n -= 1;
            false
        }
        _ => true,
    });
    Ok(before - diags.len())
}
