//! Fixes: edits a rule offers with a finding, and applying them (`goguard check --fix`).
//!
//! Modelled on ruff: a [`Fix`] is a set of [`Edit`]s (byte ranges of one file and their
//! replacement) with an [`Applicability`]. Safe fixes keep the behaviour of a correct program
//! and are applied by `--fix`; unsafe ones may change it (or need a person to look) and are
//! applied only with `--unsafe-fixes`. The edits of one fix never overlap. When two fixes of
//! a file overlap, or belong to the same isolation group (two fixes that would each declare
//! `timer` in one function), the first is applied and the other waits for the next pass:
//! [`fix_paths`] re-checks and applies again until nothing changes, at most
//! [`MAX_PASSES`] times.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;
use tree_sitter::Node;

use crate::config::ConfigError;
use crate::diagnostic::{Diagnostic, InputError};
use crate::engine::{self, Options, Report};
use crate::source::SourceFile;

/// How far a fix can be trusted. Ordered: `Unsafe < Safe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Applicability {
    /// May change what a correct program does, or needs a person to check (shown as a
    /// suggestion; applied by `--fix --unsafe-fixes`).
    Unsafe,
    /// Keeps the behaviour of correct programs (applied by `--fix`).
    Safe,
}

impl Applicability {
    pub fn as_str(self) -> &'static str {
        match self {
            Applicability::Unsafe => "unsafe",
            Applicability::Safe => "safe",
        }
    }
}

/// Replace the bytes `start..end` of the file with `content` (an insertion when they are
/// equal, a deletion when `content` is empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edit {
    pub start: usize,
    pub end: usize,
    pub content: String,
    /// Where `start` and `end` are as users count (1-based line and character column),
    /// filled in when the finding is reported.
    #[serde(skip)]
    pub span: Option<(crate::source::Position, crate::source::Position)>,
}

impl Edit {
    pub fn insert(at: usize, content: impl Into<String>) -> Edit {
        Edit::replace(at, at, content)
    }

    pub fn replace(start: usize, end: usize, content: impl Into<String>) -> Edit {
        Edit {
            start,
            end,
            content: content.into(),
            span: None,
        }
    }

    pub fn delete(start: usize, end: usize) -> Edit {
        Edit::replace(start, end, "")
    }

    /// Whether two edits touch: overlapping ranges, or an insertion at the other's edge
    /// (their order would be ambiguous).
    fn conflicts(&self, other: &Edit) -> bool {
        self.start < other.end && other.start < self.end
            || self.start == other.start
            || (self.start == self.end && (self.start == other.end))
            || (other.start == other.end && other.start == self.end)
    }
}

/// What a rule offers to change for one finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fix {
    pub applicability: Applicability,
    /// What the fix does, in the imperative ("Defer `wg.Done()` at the goroutine's start").
    pub message: String,
    /// Sorted by start, never overlapping.
    pub edits: Vec<Edit>,
    /// Fixes with the same group are not applied in the same pass (each would declare the
    /// same name in one function, say); the others wait for the next pass.
    #[serde(skip)]
    pub isolation: Option<usize>,
}

impl Fix {
    pub fn new(applicability: Applicability, message: impl Into<String>, edits: Vec<Edit>) -> Fix {
        let mut edits = edits;
        edits.sort_by_key(|e| (e.start, e.end));
        Fix {
            applicability,
            message: message.into(),
            edits,
            isolation: None,
        }
    }

    pub fn safe(message: impl Into<String>, edits: Vec<Edit>) -> Fix {
        Fix::new(Applicability::Safe, message, edits)
    }

    pub fn unsafe_(message: impl Into<String>, edits: Vec<Edit>) -> Fix {
        Fix::new(Applicability::Unsafe, message, edits)
    }

    /// Only one fix of `group` per pass (see [`Fix::isolation`]).
    pub fn isolated(mut self, group: usize) -> Fix {
        self.isolation = Some(group);
        self
    }

    /// Whether the edits are well formed: in bounds, on character boundaries, not
    /// overlapping one another.
    pub fn is_valid_for(&self, text: &str) -> bool {
        self.edits.iter().all(|e| {
            e.start <= e.end
                && e.end <= text.len()
                && text.is_char_boundary(e.start)
                && text.is_char_boundary(e.end)
        }) && self.edits.windows(2).all(|w| w[0].end <= w[1].start)
    }
}

/// Applies the fixes that do not conflict with an earlier one (in order of their first edit);
/// returns the new text and the indexes of the fixes applied.
pub fn apply(text: &str, fixes: &[&Fix]) -> (String, Vec<usize>) {
    let mut order: Vec<usize> = (0..fixes.len()).collect();
    order.sort_by_key(|&i| fixes[i].edits.first().map(|e| (e.start, e.end)));
    let mut taken: Vec<&Edit> = Vec::new();
    let mut groups: Vec<usize> = Vec::new();
    let mut applied = Vec::new();
    for i in order {
        let fix = fixes[i];
        if fix.edits.is_empty() || !fix.is_valid_for(text) {
            continue;
        }
        if fix.isolation.is_some_and(|g| groups.contains(&g)) {
            continue;
        }
        // The same fix offered by two findings (a parameter and its call) is applied once.
        if applied.iter().any(|&j: &usize| fixes[j] == fix) {
            applied.push(i);
            continue;
        }
        if fix
            .edits
            .iter()
            .any(|e| taken.iter().any(|t| t.conflicts(e)))
        {
            continue;
        }
        taken.extend(&fix.edits);
        groups.extend(fix.isolation);
        applied.push(i);
    }
    taken.sort_by_key(|e| (e.start, e.end));
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for e in taken {
        out.push_str(&text[at..e.start]);
        out.push_str(&e.content);
        at = e.end;
    }
    out.push_str(&text[at..]);
    (out, applied)
}

/// At most this many rounds of check-and-apply (ruff stops at 100; goguard's fixes settle in
/// two or three).
pub const MAX_PASSES: usize = 10;

/// One finding whose fix was applied.
#[derive(Debug, Clone, Serialize)]
pub struct Fixed {
    pub rule: &'static str,
    pub path: PathBuf,
    /// Where the finding was, in the text the fix was applied to.
    pub line: usize,
    pub applicability: Applicability,
    pub message: String,
}

/// What `--fix` (or `--diff`) would do: the files it changes, what it fixed, and the report
/// of what remains.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Per changed file: its text on disk and its text with the fixes.
    pub files: BTreeMap<PathBuf, (String, String)>,
    pub fixed: Vec<Fixed>,
    /// The findings left after the last pass.
    pub report: Report,
}

/// Checks `paths`, applies the fixes of the findings left by `keep` (the caller's baseline
/// or changed-lines filter; safe fixes, unsafe ones too with `unsafe_fixes`) in memory,
/// re-checks, and repeats until no fix applies. Nothing is written: the caller writes
/// [`Outcome::files`] (see [`write`]) or prints their diff.
pub fn fix_paths(
    paths: &[PathBuf],
    opts: &Options,
    unsafe_fixes: bool,
    keep: &dyn Fn(&mut Vec<Diagnostic>),
) -> Result<Outcome, ConfigError> {
    let min = if unsafe_fixes {
        Applicability::Unsafe
    } else {
        Applicability::Safe
    };
    let mut overlay: HashMap<PathBuf, String> = HashMap::new();
    let mut originals: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut fixed = Vec::new();
    let mut broken: Vec<InputError> = Vec::new();
    let mut report;
    let mut pass = 0;
    loop {
        report = engine::check_paths_with(paths, opts, &overlay)?;
        keep(&mut report.diagnostics);
        pass += 1;
        if pass > MAX_PASSES {
            break;
        }
        let mut by_file: BTreeMap<&Path, Vec<&Diagnostic>> = BTreeMap::new();
        for d in &report.diagnostics {
            if d.fix.as_ref().is_some_and(|f| f.applicability >= min) {
                by_file.entry(d.path.as_path()).or_default().push(d);
            }
        }
        let mut changed = false;
        for (path, diags) in by_file {
            let text = match overlay.get(path) {
                Some(t) => t.clone(),
                None => match engine::read_source(path) {
                    Ok(t) => t,
                    Err(_) => continue,
                },
            };
            let fixes: Vec<&Fix> = diags.iter().filter_map(|d| d.fix.as_ref()).collect();
            let (new_text, applied) = apply(&text, &fixes);
            if applied.is_empty() || new_text == text {
                continue;
            }
            // A fix must not break the file: keep the text if it parses worse than before.
            if parse_errors(path, &new_text) > parse_errors(path, &text) {
                broken.push(InputError {
                    path: path.to_path_buf(),
                    kind: "internal",
                    message: format!(
                        "the fixes of {} would leave a syntax error; not applied (please report it)",
                        applied
                            .iter()
                            .map(|&i| diags[i].rule)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
                continue;
            }
            for &i in &applied {
                let d = diags[i];
                let Some(f) = &d.fix else { continue };
                fixed.push(Fixed {
                    rule: d.rule,
                    path: d.path.clone(),
                    line: d.line,
                    applicability: f.applicability,
                    message: f.message.clone(),
                });
            }
            originals
                .entry(path.to_path_buf())
                .or_insert_with(|| text.clone());
            overlay.insert(path.to_path_buf(), new_text);
            changed = true;
        }
        if !changed {
            break;
        }
    }
    report.errors.extend(broken);
    let files = originals
        .into_iter()
        .filter_map(|(p, old)| {
            let new = overlay.remove(&p)?;
            (new != old).then_some((p, (old, new)))
        })
        .collect();
    Ok(Outcome {
        files,
        fixed,
        report,
    })
}

/// Writes the fixed files. Every file is checked first (still as it was read, writable), so
/// that an error leaves all of them untouched; the error names the file and the cause.
pub fn write(outcome: &Outcome) -> Result<(), String> {
    for (path, (old, _)) in &outcome.files {
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("{}: cannot write the fixes: {e}", path.display()))?;
        if meta.permissions().readonly() {
            return Err(format!(
                "{}: cannot write the fixes: the file is read-only (nothing was changed)",
                path.display()
            ));
        }
        if std::fs::read_to_string(path).ok().as_deref() != Some(old.as_str()) {
            return Err(format!(
                "{}: changed while goguard was fixing it; nothing was written",
                path.display()
            ));
        }
    }
    for (path, (_, new)) in &outcome.files {
        std::fs::write(path, new)
            .map_err(|e| format!("{}: cannot write the fixes: {e}", path.display()))?;
    }
    Ok(())
}

fn parse_errors(path: &Path, text: &str) -> usize {
    SourceFile::parse(path, text.to_string()).map_or(usize::MAX, |f| f.syntax_errors().len())
}

/// A unified diff of `old` and `new` (3 lines of context), as `diff -u` and `git apply` read
/// it; empty when they are equal.
pub fn unified_diff(path: &str, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let a: Vec<&str> = old.split_inclusive('\n').collect();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    let ops = line_ops(&a, &b);
    // Hunks: runs of changes with up to 3 lines of context around them, merged when close.
    const CONTEXT: usize = 3;
    let mut out = format!("--- a/{path}\n+++ b/{path}\n");
    let changes: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| !matches!(o, Op::Same(..)))
        .map(|(i, _)| i)
        .collect();
    let mut k = 0;
    while k < changes.len() {
        let first = changes[k];
        let mut last = first;
        while k + 1 < changes.len() && changes[k + 1] <= last + 2 * CONTEXT + 1 {
            k += 1;
            last = changes[k];
        }
        k += 1;
        let from = first.saturating_sub(CONTEXT);
        let to = (last + CONTEXT + 1).min(ops.len());
        let (mut a_start, mut b_start) = (None, None);
        let (mut a_len, mut b_len) = (0, 0);
        let mut body = String::new();
        for op in &ops[from..to] {
            let (prefix, line) = match *op {
                Op::Same(i, j) => {
                    a_start.get_or_insert(i);
                    b_start.get_or_insert(j);
                    a_len += 1;
                    b_len += 1;
                    (' ', a[i])
                }
                Op::Del(i, j) => {
                    a_start.get_or_insert(i);
                    b_start.get_or_insert(j);
                    a_len += 1;
                    ('-', a[i])
                }
                Op::Add(i, j) => {
                    a_start.get_or_insert(i);
                    b_start.get_or_insert(j);
                    b_len += 1;
                    ('+', b[j])
                }
            };
            body.push(prefix);
            body.push_str(line);
            if !line.ends_with('\n') {
                body.push_str("\n\\ No newline at end of file\n");
            }
        }
        // A range of no lines is written as the line before it, as diff does.
        let head = |start: Option<usize>, len: usize| {
            let s = start.unwrap_or(0);
            if len == 0 {
                format!("{},0", s)
            } else {
                format!("{},{}", s + 1, len)
            }
        };
        out.push_str(&format!(
            "@@ -{} +{} @@\n",
            head(a_start, a_len),
            head(b_start, b_len)
        ));
        out.push_str(&body);
    }
    out
}

/// One line of a diff: kept (index in old, index in new), deleted, added. Each carries the
/// position it stands at in both texts.
#[derive(Debug, Clone, Copy)]
enum Op {
    Same(usize, usize),
    Del(usize, usize),
    Add(usize, usize),
}

/// The line operations turning `a` into `b`: the common prefix and suffix, and a longest
/// common subsequence of what lies between (fixes change a few places of a file; past a
/// size bound, the middle is shown as replaced whole).
fn line_ops(a: &[&str], b: &[&str]) -> Vec<Op> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut ops: Vec<Op> = (0..prefix).map(|i| Op::Same(i, i)).collect();
    let (n, m) = (ma.len(), mb.len());
    if n * m <= 16_000_000 {
        // lcs[i][j]: the LCS length of ma[i..] and mb[j..].
        let mut lcs = vec![0u32; (n + 1) * (m + 1)];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                lcs[i * (m + 1) + j] = if ma[i] == mb[j] {
                    lcs[(i + 1) * (m + 1) + j + 1] + 1
                } else {
                    lcs[(i + 1) * (m + 1) + j].max(lcs[i * (m + 1) + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && ma[i] == mb[j] {
                ops.push(Op::Same(prefix + i, prefix + j));
                i += 1;
                j += 1;
            } else if i < n && (j == m || lcs[(i + 1) * (m + 1) + j] >= lcs[i * (m + 1) + j + 1]) {
                // Deletions before additions, as diff prints a change.
                ops.push(Op::Del(prefix + i, prefix + j));
                i += 1;
            } else {
                ops.push(Op::Add(prefix + i, prefix + j));
                j += 1;
            }
        }
    } else {
        ops.extend((0..n).map(|i| Op::Del(prefix + i, prefix)));
        ops.extend((0..m).map(|j| Op::Add(prefix + n, prefix + j)));
    }
    ops.extend((0..suffix).map(|k| Op::Same(prefix + n + k, prefix + m + k)));
    ops
}

/// Helpers rules use to build edits that keep gofmt's layout (tabs, one statement a line).
pub mod build {
    use super::*;

    /// The start of the line holding byte `at`.
    pub fn line_start(src: &str, at: usize) -> usize {
        src[..at].rfind('\n').map_or(0, |i| i + 1)
    }

    /// The end of the line holding byte `at`, past its newline.
    pub fn line_end(src: &str, at: usize) -> usize {
        src[at..].find('\n').map_or(src.len(), |i| at + i + 1)
    }

    /// The blanks that start the line holding `node`, when the node is the first thing on
    /// its line.
    pub fn indent_of(src: &str, node: Node) -> Option<String> {
        let start = line_start(src, node.start_byte());
        let lead = &src[start..node.start_byte()];
        lead.chars()
            .all(|c| c == '\t' || c == ' ')
            .then(|| lead.to_string())
    }

    /// Deletes statement `stmt`, which must stand alone on its line (a comment after it
    /// stays, where gofmt keeps it). `None` for a statement sharing its line with code.
    pub fn delete_statement(src: &str, stmt: Node) -> Option<Edit> {
        indent_of(src, stmt)?;
        let end = stmt.end_byte();
        let eol = src[end..].find('\n').map_or(src.len(), |i| end + i);
        let rest = src[end..eol].trim_end_matches('\r');
        if rest.trim().is_empty() {
            let start = line_start(src, stmt.start_byte());
            return Some(Edit::delete(start, (eol + 1).min(src.len())));
        }
        let after = rest.trim_start();
        if after.starts_with("//") {
            // `wg.Done() // note`: the comment stays on its own line, indented.
            let comment = end + (rest.len() - after.len());
            return Some(Edit::delete(stmt.start_byte(), comment));
        }
        None
    }

    /// Inserts `lines` (one statement each, without indentation) on new lines before
    /// statement `stmt`, indented as it is.
    pub fn insert_before(src: &str, stmt: Node, lines: &[String]) -> Option<Edit> {
        let indent = indent_of(src, stmt)?;
        let text: String = lines.iter().map(|l| indent_block(l, &indent)).collect();
        Some(Edit::insert(line_start(src, stmt.start_byte()), text))
    }

    /// Inserts `lines` on new lines before the line of `at`, indented as `like` is (a
    /// labelled loop: the label stands out of the statements' indentation, the loop not).
    pub fn insert_before_as(src: &str, at: Node, like: Node, lines: &[String]) -> Option<Edit> {
        let indent = indent_of(src, like)?;
        let text: String = lines.iter().map(|l| indent_block(l, &indent)).collect();
        Some(Edit::insert(line_start(src, at.start_byte()), text))
    }

    /// Inserts `lines` on new lines after statement `stmt` (which must end its line, a
    /// trailing comment allowed), indented as it is.
    pub fn insert_after(src: &str, stmt: Node, lines: &[String]) -> Option<Edit> {
        let indent = indent_of(src, stmt)?;
        let end = stmt.end_byte();
        let eol = src[end..].find('\n').map(|i| end + i)?;
        let rest = src[end..eol].trim();
        if !(rest.is_empty() || rest.starts_with("//")) {
            return None;
        }
        let text: String = lines.iter().map(|l| indent_block(l, &indent)).collect();
        Some(Edit::insert(eol + 1, text))
    }

    /// Inserts `lines` as the first statements of `block` (a `{ ... }` spanning lines),
    /// indented one tab deeper than the line of its `{`.
    pub fn insert_at_block_start(src: &str, block: Node, lines: &[String]) -> Option<Edit> {
        let open = block.start_byte();
        if !src[open..].starts_with('{') {
            return None;
        }
        let eol = src[open..].find('\n').map(|i| open + i)?;
        if eol >= block.end_byte() || !src[open + 1..eol].trim().is_empty() {
            return None; // a one-line block, or code after `{`
        }
        let ls = line_start(src, open);
        let base: String = src[ls..]
            .chars()
            .take_while(|c| *c == '\t' || *c == ' ')
            .collect();
        let indent = format!("{base}\t");
        let text: String = lines.iter().map(|l| indent_block(l, &indent)).collect();
        Some(Edit::insert(eol + 1, text))
    }

    /// Indents every line of `text` (one or more lines, `\n`-separated, relative tabs kept)
    /// by `indent`, ending with a newline.
    pub fn indent_block(text: &str, indent: &str) -> String {
        text.lines()
            .map(|l| {
                if l.is_empty() {
                    "\n".to_string()
                } else {
                    format!("{indent}{l}\n")
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_fixes_apply_the_first_and_leave_the_other() {
        let text = "abcdef";
        let a = Fix::safe("a", vec![Edit::replace(1, 3, "X")]);
        let b = Fix::safe("b", vec![Edit::replace(2, 4, "Y")]);
        let c = Fix::safe("c", vec![Edit::insert(5, "Z")]);
        let (out, applied) = apply(text, &[&b, &a, &c]);
        assert_eq!(out, "aXdeZf");
        assert_eq!(applied, vec![1, 2]);
        // Two insertions at one place: their order is unknown, so only one goes in.
        let d = Fix::safe("d", vec![Edit::insert(0, "1")]);
        let e = Fix::safe("e", vec![Edit::insert(0, "2")]);
        assert_eq!(apply(text, &[&d, &e]).0, "1abcdef");
        // The same fix offered twice is applied once.
        assert_eq!(
            apply(text, &[&d, &d.clone()]),
            ("1abcdef".into(), vec![0, 1])
        );
        // One fix per isolation group per pass.
        let f = Fix::safe("f", vec![Edit::insert(1, "F")]).isolated(7);
        let g = Fix::safe("g", vec![Edit::insert(4, "G")]).isolated(7);
        assert_eq!(apply(text, &[&f, &g]).0, "aFbcdef");
    }

    #[test]
    fn malformed_fixes_are_not_applied() {
        let bad = Fix::safe("x", vec![Edit::replace(2, 9, "")]);
        assert_eq!(apply("abc", &[&bad]).1, Vec::<usize>::new());
    }

    #[test]
    fn unified_diff_has_hunks_with_context() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n";
        let new = "1\n2\nthree\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n";
        let d = unified_diff("x.go", old, new);
        assert_eq!(
            d,
            "--- a/x.go\n+++ b/x.go\n@@ -1,6 +1,6 @@\n 1\n 2\n-3\n+three\n 4\n 5\n 6\n@@ -10,3 +10,4 @@\n 10\n 11\n 12\n+13\n"
        );
        assert_eq!(unified_diff("x.go", old, old), "");
        let ins = unified_diff("y.go", "a\nb\n", "a\nx\nb\n");
        assert_eq!(ins, "--- a/y.go\n+++ b/y.go\n@@ -1,2 +1,3 @@\n a\n+x\n b\n");
    }
}
