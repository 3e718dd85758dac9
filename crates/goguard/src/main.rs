//! The goguard command line: a thin layer over the analysis crates.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
mod chaos_cmd;
mod daemon;
mod drill_cmd;
mod dump_cmd;
mod gate_cmd;
mod lab_cmd;
mod run_cmd;
mod scale_cmd;
mod server_cmd;
mod trace_cmd;
mod watch_cmd;

use goguard_check::{baseline, engine, output, registry, ConfigChoice, Options, Severity};

// mimalloc for Rust and for tree-sitter's C allocations: parsing allocates a node per token,
// and glibc's malloc costs a tenth of the run (measured in bench/check-vs-vet).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn use_mimalloc_for_tree_sitter() {
    // SAFETY: called once at start-up, before any tree-sitter object exists, with functions
    // that have the C allocator signatures.
    unsafe {
        tree_sitter::set_allocator(
            Some(libmimalloc_sys::mi_malloc),
            Some(libmimalloc_sys::mi_calloc),
            Some(libmimalloc_sys::mi_realloc),
            Some(libmimalloc_sys::mi_free),
        );
    }
}

/// Exit codes CI can rely on.
pub(crate) const EXIT_CLEAN: u8 = 0;
pub(crate) const EXIT_FINDINGS: u8 = 1;
pub(crate) const EXIT_ERROR: u8 = 2;

#[derive(Parser)]
#[command(
    name = "goguard",
    version,
    about = "Find goroutine leaks, deadlocks, select/timer traps and sync misuse in Go code",
    long_about = "goguard finds goroutine leaks, deadlocks, select/timer traps and sync misuse in Go \
source before they ship.\n\nStart with `goguard check ./...`; `goguard rules` lists the rules and \
`goguard explain G301` documents one."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Analyse Go files and directories (default ".", "./..." accepted).
    Check(CheckArgs),
    /// List every rule: id, name, default severity, summary.
    Rules {
        /// Print the Markdown table used in the README.
        #[arg(long)]
        markdown: bool,
    },
    /// Analyse a goroutine dump (debug=2 text, runtime.Stack, a panic or SIGQUIT traceback):
    /// groups, wait states, leak suspects.
    Dump(dump_cmd::DumpArgs),
    /// Poll a live service's goroutines and call a leak when a group keeps growing
    /// (`goguard watch http://127.0.0.1:6060 --interval 10s --duration 30m`).
    Watch(watch_cmd::WatchArgs),
    /// Read GODEBUG=schedtrace=N[,scheddetail=1] and gctrace=1 output from a log: series,
    /// a summary, and the anomalies (growing heap, GC CPU, blocked goroutines, run queues).
    Trace(trace_cmd::TraceArgs),
    /// Run a Go program under the scheduler/GC traces, the race detector and goroutine
    /// dumps, and report races, deadlocks, leaks and anomalies
    /// (`goguard run --race --timeout 30s -- go test ./...`). Exit 3 when one is found.
    Run(run_cmd::RunArgs),
    /// Reproduce each failure of the reference on your Go toolchain, buggy next to fixed,
    /// measured, and check goguard's own rules against them.
    Lab(lab_cmd::LabArgs),
    /// The stability gateway for a Go service (chapter 5): `goguard gate --config gate.toml`
    /// runs it, `goguard gate check gate.toml` validates a configuration.
    Gate(gate_cmd::GateArgs),
    /// Scaling decisions (5.4): the reference's tree on Prometheus or gateway figures,
    /// stabilised as the HPA does, acted on through a hook and verified
    /// (`goguard scale --config scale.toml [--dry-run] [--once]`).
    Scale(scale_cmd::ScaleArgs),
    /// TCP fault proxies for a service's dependencies (5.3): `goguard chaos proxy --config
    /// chaos.toml`, faults switched at run time through a toxiproxy-style admin API.
    Chaos(chaos_cmd::ChaosArgs),
    /// Run a chaos drill (5.3): switch faults, measure detection and recovery against the
    /// scenario's targets (`goguard drill redis-down.toml --html report.html`).
    Drill(drill_cmd::DrillArgs),
    /// The language server (LSP over standard input and output): findings as you type,
    /// hover with the rule's documentation, fixes and suppressions as code actions.
    Server(server_cmd::ServerArgs),
    /// Print a rule's full documentation.
    Explain {
        /// A rule id (G301) or name (waitgroup-add-after-go).
        rule: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
    Sarif,
    Github,
    /// GitLab's Code Quality report (a `codequality` artifact).
    Gitlab,
}

#[derive(clap::Args)]
struct CheckArgs {
    /// Files or directories; directories are walked recursively, honouring .gitignore.
    #[arg(default_value = ".")]
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Only these rules (ids, prefixes like G3, or names), comma-separated.
    #[arg(long, value_delimiter = ',')]
    select: Option<Vec<String>>,
    /// Skip these rules (ids, prefixes or names), comma-separated.
    #[arg(long, value_delimiter = ',')]
    ignore: Vec<String>,
    /// Exit 1 when a finding is at or above this severity [default: warning, or the config's].
    #[arg(long, value_parser = parse_severity)]
    fail_on: Option<Severity>,
    /// Also show `info` findings (performance notes; hidden by default).
    #[arg(long)]
    show_info: bool,
    /// Use this goguard.toml instead of discovering one.
    #[arg(long, conflicts_with = "isolated")]
    config: Option<PathBuf>,
    /// Ignore every goguard.toml.
    #[arg(long)]
    isolated: bool,
    /// Analyse vendor/ directories too.
    #[arg(long)]
    include_vendor: bool,
    /// Analyse testdata/ directories too.
    #[arg(long)]
    include_testdata: bool,
    /// Report findings in generated files (`// Code generated ... DO NOT EDIT.`) too.
    #[arg(long)]
    include_generated: bool,
    /// Keep each package's results here between runs, keyed by its files' content
    /// [default: $GOGUARD_CACHE_DIR, else .goguard_cache in the current directory].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Analyse every package again, reading and writing no cached results.
    #[arg(long)]
    no_cache: bool,
    /// Report `//goguard:ignore` comments that suppress nothing.
    #[arg(long)]
    report_unused_suppressions: bool,
    /// Report only findings not recorded in this baseline file.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Record the current findings as a baseline file and exit 0.
    #[arg(long, conflicts_with = "baseline")]
    write_baseline: Option<PathBuf>,
    /// Report only findings on lines added or changed since this git revision (and in
    /// files git does not track yet), as golangci-lint's option of that name.
    #[arg(long, value_name = "REV", conflicts_with = "write_baseline")]
    new_from_rev: Option<String>,
    /// Apply the safe fixes (the unsafe ones too with --unsafe-fixes), write the files, and
    /// report what remains.
    #[arg(long, conflicts_with_all = ["write_baseline", "diff"])]
    fix: bool,
    /// With --fix, apply unsafe fixes too; without it, show them as suggestions.
    #[arg(long)]
    unsafe_fixes: bool,
    /// Print a unified diff of what --fix would change and write nothing (exit 1 when it
    /// would change something).
    #[arg(long, conflicts_with = "write_baseline")]
    diff: bool,
    /// Write the report to this file instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::parse(s).ok_or_else(|| format!("`{s}` is not one of info, warning, error"))
}

fn main() -> ExitCode {
    // A crash inside one rule is caught and reported per file; keep the default panic
    // message off the user's terminal.
    std::panic::set_hook(Box::new(|_| {}));
    use_mimalloc_for_tree_sitter();
    let cli = Cli::parse();
    match cli.command {
        Command::Rules { markdown } => {
            if markdown {
                print!("{}", registry::markdown_table());
            } else {
                for r in registry::all() {
                    println!(
                        "{}  {:<42} {:<8} {}",
                        r.code,
                        r.name,
                        r.severity.as_str(),
                        r.summary
                    );
                }
            }
            ExitCode::from(EXIT_CLEAN)
        }
        Command::Explain { rule } => match registry::find(&rule) {
            Some(r) => {
                print!("{}", r.doc);
                ExitCode::from(EXIT_CLEAN)
            }
            None => {
                eprintln!("goguard: no rule `{rule}` (see `goguard rules`)");
                ExitCode::from(EXIT_ERROR)
            }
        },
        Command::Dump(args) => exit_code(dump_cmd::run(args)),
        Command::Gate(cmd) => exit_code(gate_cmd::run(cmd)),
        Command::Scale(args) => exit_code(scale_cmd::run(args)),
        Command::Chaos(args) => exit_code(chaos_cmd::run(args)),
        Command::Drill(args) => exit_code(drill_cmd::run(args)),
        Command::Lab(args) => exit_code(lab_cmd::run(args)),
        Command::Run(args) => exit_code(run_cmd::run(args)),
        Command::Trace(args) => exit_code(trace_cmd::run(args)),
        Command::Watch(args) => exit_code(watch_cmd::run(args)),
        Command::Check(args) => exit_code(check(args)),
        Command::Server(args) => exit_code(server_cmd::run(args)),
    }
}

/// A subcommand's outcome as the process exit code; an error is one line on stderr.
fn exit_code(result: Result<u8, String>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("goguard: {message}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn check(args: CheckArgs) -> Result<u8, String> {
    for sel in args.select.iter().flatten().chain(&args.ignore) {
        if !registry::is_known_selector(sel) {
            return Err(format!("`{sel}` names no rule (see `goguard rules`)"));
        }
    }
    let mut opts = Options {
        select: args.select.clone(),
        ignore: args.ignore.clone(),
        include_vendor: args.include_vendor,
        include_testdata: args.include_testdata,
        include_generated: args.include_generated,
        show_info: args.show_info,
        config: match (&args.config, args.isolated) {
            (Some(f), _) => ConfigChoice::File(f.clone()),
            (None, true) => ConfigChoice::Isolated,
            (None, false) => ConfigChoice::Discover,
        },
        cache: None,
        session: None,
    };
    opts.cache = result_cache(&args, &opts);
    if args.fix || args.diff {
        return fix(&args, &opts);
    }
    let mut report = engine::check_paths(&args.paths, &opts).map_err(|e| e.to_string())?;
    if let Some(path) = &args.write_baseline {
        baseline::write(path, &report.diagnostics).map_err(|e| e.to_string())?;
        eprintln!(
            "goguard: recorded {} finding(s) in {}",
            report.diagnostics.len(),
            path.display()
        );
        return Ok(if report.errors.is_empty() {
            EXIT_CLEAN
        } else {
            EXIT_ERROR
        });
    }
    if let Some(path) = &args.baseline {
        baseline::filter(path, &mut report.diagnostics).map_err(|e| e.to_string())?;
    }
    if let Some(rev) = &args.new_from_rev {
        let at = args
            .paths
            .first()
            .map(PathBuf::as_path)
            .unwrap_or(Path::new("."));
        let changed = goguard_check::changed::since(at, rev)?;
        report
            .diagnostics
            .retain(|d| changed.contains(&d.path, d.line));
    }
    let rendered = match args.format {
        Format::Text => output::text::render_report_with(
            &report,
            args.report_unused_suppressions,
            args.unsafe_fixes,
        ),
        Format::Json => pretty(&output::json::to_value(&report)),
        Format::Sarif => pretty(&output::sarif::to_value(&report, env!("CARGO_PKG_VERSION"))),
        Format::Github => output::github::render(&report),
        Format::Gitlab => pretty(&output::gitlab::to_value(&report)),
    };
    match &args.output {
        Some(path) => {
            let plain = anstream::adapter::strip_str(&rendered).to_string();
            std::fs::write(path, plain)
                .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
        }
        None => {
            let mut out = anstream::stdout();
            // A closed pipe (`| head`) is not an error worth reporting.
            let _ = out.write_all(rendered.as_bytes());
        }
    }
    if let Some(times) = engine::timings::report() {
        for (code, ms) in times {
            eprintln!("goguard: timing {code} {ms} ms");
        }
    }
    Ok(check_exit(&args, &report))
}

/// `check --fix` and `check --diff`: apply the fixes in memory (see goguard_check::fix),
/// then write the files and report what remains, or print the diff.
fn fix(args: &CheckArgs, opts: &Options) -> Result<u8, String> {
    if let Some(path) = &args.baseline {
        baseline::filter(path, &mut Vec::new()).map_err(|e| e.to_string())?;
    }
    let changed = match &args.new_from_rev {
        Some(rev) => {
            let at = args.paths.first().map(PathBuf::as_path);
            Some(goguard_check::changed::since(
                at.unwrap_or(Path::new(".")),
                rev,
            )?)
        }
        None => None,
    };
    let keep = |diags: &mut Vec<goguard_check::Diagnostic>| {
        if let Some(path) = &args.baseline {
            let _ = baseline::filter(path, diags);
        }
        if let Some(c) = &changed {
            diags.retain(|d| c.contains(&d.path, d.line));
        }
    };
    let outcome = goguard_check::fix::fix_paths(&args.paths, opts, args.unsafe_fixes, &keep)
        .map_err(|e| e.to_string())?;
    let report = &outcome.report;
    if args.diff {
        let mut out = String::new();
        for (path, (old, new)) in &outcome.files {
            let shown = output::display_path(path);
            out.push_str(&goguard_check::fix::unified_diff(&shown, old, new));
        }
        emit_check_output(args, &out)?;
        eprintln!(
            "goguard: would fix {} finding{} in {} file{}",
            outcome.fixed.len(),
            if outcome.fixed.len() == 1 { "" } else { "s" },
            outcome.files.len(),
            if outcome.files.len() == 1 { "" } else { "s" },
        );
        return Ok(if !report.errors.is_empty() {
            EXIT_ERROR
        } else if outcome.files.is_empty() {
            EXIT_CLEAN
        } else {
            EXIT_FINDINGS
        });
    }
    goguard_check::fix::write(&outcome)?;
    let rendered = match args.format {
        Format::Text => {
            output::text::render_fixed(&outcome.fixed, outcome.files.len())
                + &output::text::render_report_with(
                    report,
                    args.report_unused_suppressions,
                    args.unsafe_fixes,
                )
        }
        Format::Json => {
            let mut v = output::json::to_value(report);
            v["fixed"] = output::json::fixed_value(&outcome.fixed);
            pretty(&v)
        }
        Format::Sarif => pretty(&output::sarif::to_value(report, env!("CARGO_PKG_VERSION"))),
        Format::Github => output::github::render(report),
        Format::Gitlab => pretty(&output::gitlab::to_value(report)),
    };
    emit_check_output(args, &rendered)?;
    Ok(check_exit(args, report))
}

/// Check's exit code: an input error, findings at or above `--fail-on` (or the
/// configuration's, or `warning`), or clean.
fn check_exit(args: &CheckArgs, report: &goguard_check::engine::Report) -> u8 {
    let fail_on = args
        .fail_on
        .or(report.config_fail_on)
        .unwrap_or(Severity::Warning);
    let failing = report.diagnostics.iter().any(|d| d.severity >= fail_on)
        || (args.report_unused_suppressions && !report.unused_suppressions.is_empty());
    if !report.errors.is_empty() {
        EXIT_ERROR
    } else if failing {
        EXIT_FINDINGS
    } else {
        EXIT_CLEAN
    }
}

/// Check's output to `--output FILE` (without colour) or standard output.
fn emit_check_output(args: &CheckArgs, rendered: &str) -> Result<(), String> {
    match &args.output {
        Some(path) => {
            let plain = anstream::adapter::strip_str(rendered).to_string();
            std::fs::write(path, plain)
                .map_err(|e| format!("{}: cannot write: {e}", path.display()))
        }
        None => {
            let _ = anstream::stdout().write_all(rendered.as_bytes());
            Ok(())
        }
    }
}

/// The result cache `check` uses, if any. Timing the rules (`GOGUARD_TIMINGS`) and
/// making one crash (`GOGUARD_INJECT_PANIC`, for tests) need every package analysed. A cache
/// that cannot be created costs only time: said once, and the run goes on without.
fn result_cache(args: &CheckArgs, opts: &Options) -> Option<goguard_check::cache::ResultCache> {
    let off = |var| std::env::var_os(var).is_some_and(|v| !v.is_empty());
    if args.no_cache || off("GOGUARD_TIMINGS") || off("GOGUARD_INJECT_PANIC") {
        return None;
    }
    let dir = args
        .cache_dir
        .clone()
        .or_else(|| std::env::var_os("GOGUARD_CACHE_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(".goguard_cache"));
    match goguard_check::cache::ResultCache::open(&dir, &opts.fingerprint()) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("goguard: warning: no result cache ({e}); analysing everything");
            None
        }
    }
}

pub(crate) fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}
