//! `goguard lab`: reproduce and measure each failure of the reference on this machine.

use std::fmt::Write as _;
use std::path::PathBuf;

use goguard_lab::{LabReport, Options};

use crate::dump_cmd::{emit, DumpFormat};
use crate::{pretty, EXIT_CLEAN, EXIT_FINDINGS};

#[derive(clap::Args)]
pub struct LabArgs {
    /// Cases to run (ids or prefixes: ch2, ch4-done-twice); all by default.
    cases: Vec<String>,
    /// Fewer repetitions and shorter waits (for CI).
    #[arg(long)]
    quick: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: DumpFormat,
    /// Write the report to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Keep the generated Go module in this directory (to read or rerun the programs).
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
}

pub fn run(args: LabArgs) -> Result<u8, String> {
    if let Some(dir) = &args.keep {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let options = Options {
        only: args.cases.clone(),
        quick: args.quick,
        keep: args.keep.clone(),
    };
    let report = goguard_lab::run(&options, |line| eprintln!("lab: {line}"))?;
    let rendered = match args.format {
        DumpFormat::Json => pretty(&serde_json::to_value(&report).map_err(|e| e.to_string())?),
        DumpFormat::Text => text(&report),
        DumpFormat::Html => html(&report),
    };
    emit(&rendered, args.output.as_deref())?;
    // The lab fails when goguard itself is wrong: a rule that misses the bug or flags the fix.
    let wrong = report.cases.iter().any(|c| !c.static_ok);
    Ok(if wrong { EXIT_FINDINGS } else { EXIT_CLEAN })
}

fn yes(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    }
}

fn text(r: &LabReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "goguard lab on {}{}\n",
        r.go_version,
        if r.quick { " (--quick)" } else { "" }
    );
    let _ = writeln!(
        out,
        "{:<20} {:<10} {:<9} {:<11} {:<11} claim holds",
        "case", "bug", "fix clean", "static", "dump"
    );
    for c in &r.cases {
        let static_col = match c.static_rule {
            Some(rule) => format!("{rule} {}", if c.static_ok { "ok" } else { "WRONG" }),
            None => (if c.static_ok { "ok" } else { "WRONG" }).to_string(),
        };
        let _ = writeln!(
            out,
            "{:<20} {:<10} {:<9} {:<11} {:<11} {}",
            c.id,
            yes(c.bug_reproduced),
            yes(c.fix_clean),
            static_col,
            c.dump_ok.map_or("-", |d| if d { "ok" } else { "differs" }),
            yes(c.claim_holds)
        );
    }
    for c in &r.cases {
        let _ = writeln!(out, "\n{} (chapter {}): {}", c.id, c.chapter, c.claim);
        let _ = writeln!(out, "    measured: {}", c.measured);
        if !c.note.is_empty() {
            let _ = writeln!(out, "    {}", c.note);
        }
    }
    out
}

fn html(r: &LabReport) -> String {
    use goguard_dump::html::{escape, page_start};
    let mut out = page_start(&format!("goguard lab on {}", r.go_version));
    out.push_str("<table id=\"cases\"><thead><tr><th>case</th><th>claim</th><th>bug reproduced</th><th>fix clean</th><th>static rule</th><th>dump</th><th>claim holds</th><th>measured</th></tr></thead><tbody>");
    for c in &r.cases {
        let _ = write!(
            out,
            "<tr class=\"case\"><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td><td><b>{}</b></td><td><details><summary>numbers</summary><pre>{}</pre></details>{}</td></tr>",
            c.id,
            escape(c.claim),
            yes(c.bug_reproduced),
            yes(c.fix_clean),
            c.static_rule.unwrap_or("-"),
            if c.static_ok { "ok" } else { "WRONG" },
            c.dump_ok.map_or("-", |d| if d { "ok" } else { "differs" }),
            yes(c.claim_holds),
            escape(&serde_json::to_string_pretty(&c.measured).unwrap_or_default()),
            if c.note.is_empty() {
                String::new()
            } else {
                format!("<p>{}</p>", escape(&c.note))
            }
        );
    }
    out.push_str(
        "</tbody></table><script>document.body.dataset.ready = '1';</script></body></html>\n",
    );
    out
}
