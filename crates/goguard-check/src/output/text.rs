//! rustc-style diagnostics with the source line and a caret underline.

use std::fmt::Write;

use anstyle::{AnsiColor, Style};

use super::display_path;
use crate::diagnostic::{Diagnostic, Severity};
use crate::engine::Report;
use crate::fix::{Applicability, Fixed};

fn sev_style(s: Severity) -> Style {
    let c = match s {
        Severity::Error => AnsiColor::Red,
        Severity::Warning => AnsiColor::Yellow,
        Severity::Info => AnsiColor::Cyan,
    };
    Style::new().fg_color(Some(c.into())).bold()
}

/// Renders one diagnostic. Styles are always emitted; the caller's stream (anstream)
/// strips them when the output is not a terminal or `NO_COLOR` is set.
pub fn render(d: &Diagnostic) -> String {
    render_with(d, false)
}

/// Renders one diagnostic with its fix: a safe one always (`[*]`, as ruff marks what
/// `--fix` applies), an unsafe one when `unsafe_fixes` (`--unsafe-fixes`) asks to see them.
pub fn render_with(d: &Diagnostic, unsafe_fixes: bool) -> String {
    let bold = Style::new().bold();
    let blue = Style::new().fg_color(Some(AnsiColor::Blue.into())).bold();
    let sev = sev_style(d.severity);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{sev}{}[{}]{sev:#}{bold}: {}{bold:#}",
        d.severity.as_str(),
        d.rule,
        d.message
    );
    let width = d.line.to_string().len();
    let pad = " ".repeat(width);
    let _ = writeln!(
        out,
        "{pad}{blue}-->{blue:#} {}:{}:{}",
        display_path(&d.path),
        d.line,
        d.column
    );
    let _ = writeln!(out, "{pad} {blue}|{blue:#}");
    let line = d.source_line.replace('\t', "    ");
    let _ = writeln!(out, "{blue}{}{blue:#} {blue}|{blue:#} {line}", d.line);
    // Caret under the span (to the end of the line for multi-line spans).
    let prefix: String = d
        .source_line
        .chars()
        .take(d.column.saturating_sub(1))
        .collect();
    let start = prefix.replace('\t', "    ").chars().count();
    let len = if d.end_line == d.line {
        d.end_column.saturating_sub(d.column).max(1)
    } else {
        line.chars().count().saturating_sub(start).max(1)
    };
    let _ = writeln!(
        out,
        "{pad} {blue}|{blue:#} {}{sev}{}{sev:#}",
        " ".repeat(start),
        "^".repeat(len)
    );
    let _ = writeln!(out, "{pad} {blue}={blue:#} {bold}why{bold:#}: {}", d.why);
    let _ = writeln!(out, "{pad} {blue}={blue:#} {bold}help{bold:#}: {}", d.help);
    match &d.fix {
        Some(f) if f.applicability == Applicability::Safe => {
            let _ = writeln!(
                out,
                "{pad} {blue}={blue:#} {bold}fix{bold:#} [*]: {}",
                f.message
            );
        }
        Some(f) if unsafe_fixes => {
            let _ = writeln!(
                out,
                "{pad} {blue}={blue:#} {bold}suggested fix{bold:#} (unsafe): {}",
                f.message
            );
        }
        _ => {}
    }
    out
}

/// The whole report: diagnostics, input problems, and a summary line.
pub fn render_report(report: &Report, show_unused: bool) -> String {
    render_report_with(report, show_unused, false)
}

/// [`render_report`], showing unsafe fixes as suggestions when `unsafe_fixes`.
pub fn render_report_with(report: &Report, show_unused: bool, unsafe_fixes: bool) -> String {
    let mut out = String::new();
    for d in &report.diagnostics {
        out.push_str(&render_with(d, unsafe_fixes));
        out.push('\n');
    }
    let warn = Style::new().fg_color(Some(AnsiColor::Yellow.into())).bold();
    for p in &report.partial {
        let _ = writeln!(
            out,
            "{warn}note{warn:#}: {}:{}:{}: syntax error; analysed where it parsed ({} error node{})",
            display_path(&p.path),
            p.line,
            p.column,
            p.error_count,
            if p.error_count == 1 { "" } else { "s" }
        );
    }
    if show_unused {
        for u in &report.unused_suppressions {
            let _ = writeln!(
                out,
                "{warn}warning{warn:#}: {}:{}:{}: unused suppression `//goguard:ignore {}`",
                display_path(&u.path),
                u.line,
                u.column,
                u.rules.join(",")
            );
        }
    }
    let red = Style::new().fg_color(Some(AnsiColor::Red.into())).bold();
    for e in &report.errors {
        let _ = writeln!(
            out,
            "{red}error{red:#}: {}: {}",
            display_path(&e.path),
            e.message
        );
    }
    let count = |s| {
        report
            .diagnostics
            .iter()
            .filter(|d| d.severity == s)
            .count()
    };
    let (e, w, i) = (
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info),
    );
    let bold = Style::new().bold();
    let _ = writeln!(
        out,
        "{bold}goguard:{bold:#} {} finding{} ({e} error{}, {w} warning{}{}) in {} file{}{}",
        report.diagnostics.len(),
        plural(report.diagnostics.len()),
        plural(e),
        plural(w),
        if i > 0 {
            format!(", {i} info")
        } else {
            String::new()
        },
        report.files_scanned,
        plural(report.files_scanned),
        if report.errors.is_empty() {
            String::new()
        } else {
            format!(
                "; {} input error{}",
                report.errors.len(),
                plural(report.errors.len())
            )
        }
    );
    out.push_str(&fixable_line(report, unsafe_fixes));
    out
}

/// `[*] 3 fixable with --fix (2 more with --fix --unsafe-fixes)`, as ruff's summary says it;
/// empty when no finding has a fix.
pub fn fixable_line(report: &Report, unsafe_fixes: bool) -> String {
    let count = |a| {
        report
            .diagnostics
            .iter()
            .filter(|d| d.fix.as_ref().is_some_and(|f| f.applicability == a))
            .count()
    };
    let (safe, risky) = (count(Applicability::Safe), count(Applicability::Unsafe));
    match (safe, risky) {
        (0, 0) => String::new(),
        _ if unsafe_fixes => format!(
            "[*] {} fixable with --fix --unsafe-fixes ({safe} safe, {risky} unsafe)\n",
            safe + risky
        ),
        (0, n) => format!(
            "{n} unsafe fix{} available with --fix --unsafe-fixes\n",
            if n == 1 { "" } else { "es" }
        ),
        (s, 0) => format!("[*] {s} fixable with --fix\n"),
        (s, n) => format!("[*] {s} fixable with --fix ({n} more with --fix --unsafe-fixes)\n"),
    }
}

/// What `--fix` applied: one line per fix, then how many in how many files.
pub fn render_fixed(fixed: &[Fixed], files: usize) -> String {
    let green = Style::new().fg_color(Some(AnsiColor::Green.into())).bold();
    let mut out = String::new();
    for f in fixed {
        let _ = writeln!(
            out,
            "{green}fixed{green:#}[{}]: {}:{}: {}{}",
            f.rule,
            display_path(&f.path),
            f.line,
            f.message,
            if f.applicability == Applicability::Unsafe {
                " (unsafe)"
            } else {
                ""
            }
        );
    }
    let bold = Style::new().bold();
    let _ = writeln!(
        out,
        "{bold}goguard:{bold:#} fixed {} finding{} in {files} file{}",
        fixed.len(),
        plural(fixed.len()),
        plural(files)
    );
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
