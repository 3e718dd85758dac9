//! The goguard command line: a thin layer over the analysis crates.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
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
const EXIT_CLEAN: u8 = 0;
const EXIT_FINDINGS: u8 = 1;
const EXIT_ERROR: u8 = 2;

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
    Dump(DumpArgs),
    /// Print a rule's full documentation.
    Explain {
        /// A rule id (G301) or name (waitgroup-add-after-go).
        rule: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum DumpFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct DumpArgs {
    /// The dump: a file, - for standard input, or the URL of a service with net/http/pprof
    /// (`http://127.0.0.1:6060` fetches /debug/pprof/goroutine?debug=2). Give two to diff
    /// them (before, after).
    #[arg(required = true, num_args = 1..=2)]
    files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: DumpFormat,
    /// Show at most this many groups in text output (all are in JSON).
    #[arg(long, default_value = "10")]
    top: usize,
    /// Exit 1 when a leak suspect is found (for CI).
    #[arg(long)]
    fail_on_suspect: bool,
    /// With two dumps: exit 1 when a group grew by at least N goroutines (for CI).
    #[arg(long, value_name = "N")]
    fail_on_growth: Option<i64>,
    /// An HTTP header for URL sources, e.g. "Authorization: Bearer TOKEN" (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// When the input holds several dumps (a log with repeated SIGQUITs), analyse only the
    /// Nth (1-based). By default the last is analysed and the others are counted.
    #[arg(long, value_name = "N")]
    which: Option<usize>,
    /// How long to wait for a URL source, in seconds.
    #[arg(long, default_value = "10", value_name = "SECONDS")]
    timeout: u64,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
    Sarif,
    Github,
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
    /// Report `//goguard:ignore` comments that suppress nothing.
    #[arg(long)]
    report_unused_suppressions: bool,
    /// Report only findings not recorded in this baseline file.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Record the current findings as a baseline file and exit 0.
    #[arg(long, conflicts_with = "baseline")]
    write_baseline: Option<PathBuf>,
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
        Command::Dump(args) => match dump(args) {
            Ok(code) => ExitCode::from(code),
            Err(message) => {
                eprintln!("goguard: {message}");
                ExitCode::from(EXIT_ERROR)
            }
        },
        Command::Check(args) => match check(args) {
            Ok(code) => ExitCode::from(code),
            Err(message) => {
                eprintln!("goguard: {message}");
                ExitCode::from(EXIT_ERROR)
            }
        },
    }
}

fn check(args: CheckArgs) -> Result<u8, String> {
    for sel in args.select.iter().flatten().chain(&args.ignore) {
        if !registry::is_known_selector(sel) {
            return Err(format!("`{sel}` names no rule (see `goguard rules`)"));
        }
    }
    let opts = Options {
        select: args.select.clone(),
        ignore: args.ignore.clone(),
        include_vendor: args.include_vendor,
        include_testdata: args.include_testdata,
        show_info: args.show_info,
        config: match (&args.config, args.isolated) {
            (Some(f), _) => ConfigChoice::File(f.clone()),
            (None, true) => ConfigChoice::Isolated,
            (None, false) => ConfigChoice::Discover,
        },
    };
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
    let rendered = match args.format {
        Format::Text => output::text::render_report(&report, args.report_unused_suppressions),
        Format::Json => pretty(&output::json::to_value(&report)),
        Format::Sarif => pretty(&output::sarif::to_value(&report, env!("CARGO_PKG_VERSION"))),
        Format::Github => output::github::render(&report),
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
    let fail_on = args
        .fail_on
        .or(report.config_fail_on)
        .unwrap_or(Severity::Warning);
    let failing = report.diagnostics.iter().any(|d| d.severity >= fail_on)
        || (args.report_unused_suppressions && !report.unused_suppressions.is_empty());
    Ok(if !report.errors.is_empty() {
        EXIT_ERROR
    } else if failing {
        EXIT_FINDINGS
    } else {
        EXIT_CLEAN
    })
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

/// Reads and analyses one dump file (or standard input for `-`).
fn read_dump(
    path: &std::path::Path,
    headers: &[String],
    timeout: u64,
    which: Option<usize>,
) -> Result<(goguard_dump::Analysis, goguard_dump::ParseStats), String> {
    use std::io::BufRead;
    let name = path.display().to_string();
    let reader: Box<dyn BufRead> = if name == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else if name.starts_with("http://") || name.starts_with("https://") {
        fetch_dump(&name, headers, timeout)?
    } else {
        let f = std::fs::File::open(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
        Box::new(std::io::BufReader::new(f))
    };
    let reader =
        goguard_dump::decompressing(reader).map_err(|e| format!("{name}: cannot read: {e}"))?;
    // One grouper per dump of the input; keep the one asked for (the last by default).
    let mut groupers: Vec<goguard_dump::analyze::Grouper> = Vec::new();
    let stats = goguard_dump::parse_dump(reader, |g| {
        while groupers.len() <= g.dump {
            groupers.push(Default::default());
        }
        groupers[g.dump].add(g)
    })
    .map_err(|e| format!("{name}: {e}"))?;
    if groupers.is_empty() {
        // A leak profile that found no leak.
        groupers.push(Default::default());
    }
    let index = match which {
        Some(n) if n == 0 || n > groupers.len() => {
            return Err(format!(
                "{name}: --which {n}: the input holds {} dump(s)",
                groupers.len()
            ));
        }
        Some(n) => n - 1,
        None => groupers.len() - 1,
    };
    let grouper = groupers.swap_remove(index);
    Ok((grouper.finish(&stats), stats))
}

fn dump(args: DumpArgs) -> Result<u8, String> {
    if let [before, after] = args.files.as_slice() {
        return dump_diff(&args, before, after);
    }
    let (analysis, stats) = read_dump(&args.files[0], &args.headers, args.timeout, args.which)?;
    let rendered = match args.format {
        DumpFormat::Json => {
            let mut v = serde_json::to_value(&analysis).map_err(|e| e.to_string())?;
            v["format"] = stats.format.into();
            v["dumps"] = stats.dumps.into();
            pretty(&v)
        }
        DumpFormat::Text => render_dump(&analysis, args.top, &stats),
    };
    let _ = anstream::stdout().write_all(rendered.as_bytes());
    let suspects = analysis.groups.iter().any(|g| g.suspect);
    Ok(if args.fail_on_suspect && suspects {
        EXIT_FINDINGS
    } else {
        EXIT_CLEAN
    })
}

fn dump_diff(
    args: &DumpArgs,
    before: &std::path::Path,
    after: &std::path::Path,
) -> Result<u8, String> {
    use std::fmt::Write as _;
    let (a, _) = read_dump(before, &args.headers, args.timeout, args.which)?;
    let (b, _) = read_dump(after, &args.headers, args.timeout, args.which)?;
    let groups = goguard_dump::diff(&a, &b);
    let rendered = match args.format {
        DumpFormat::Json => pretty(&serde_json::json!({
            "format": "diff",
            "total": {"before": a.total, "after": b.total},
            "groups": groups,
        })),
        DumpFormat::Text => {
            let mut out = String::new();
            let _ = writeln!(
                out,
                "{} goroutines -> {} ({:+})",
                a.total,
                b.total,
                b.total as i64 - a.total as i64
            );
            for d in groups.iter().take(args.top) {
                let at = d
                    .group
                    .top_frame
                    .as_ref()
                    .map(|f| format!("{} ({}:{})", f.function, f.file, f.line))
                    .unwrap_or_default();
                let tag = match (d.before, d.after) {
                    (0, _) => " new",
                    (_, 0) => " gone",
                    _ => "",
                };
                let _ = writeln!(
                    out,
                    "{:>+7}  {:>6} -> {:<6} [{}]{tag} {at}",
                    d.delta, d.before, d.after, d.group.state
                );
            }
            out
        }
    };
    let _ = anstream::stdout().write_all(rendered.as_bytes());
    let grew = args
        .fail_on_growth
        .is_some_and(|n| groups.iter().any(|d| d.delta >= n));
    Ok(if grew { EXIT_FINDINGS } else { EXIT_CLEAN })
}

fn render_dump(a: &goguard_dump::Analysis, top: usize, stats: &goguard_dump::ParseStats) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let suspects = a.groups.iter().filter(|g| g.suspect).count();
    let _ = writeln!(
        out,
        "{} goroutines in {} groups; {} leak suspect group{}{}",
        a.total,
        a.groups.len(),
        suspects,
        if suspects == 1 { "" } else { "s" },
        if a.truncated {
            " (the dump is cut: the last goroutine is incomplete)"
        } else {
            ""
        }
    );
    if stats.dumps > 1 {
        let _ = writeln!(
            out,
            "the input holds {} dumps; this is one of them (--which N picks another)",
            stats.dumps
        );
    }
    if let Some(f) = &a.fatal {
        let _ = writeln!(out, "the program crashed: {f}");
    }
    for g in a.groups.iter().take(top) {
        let wait = g
            .wait_minutes
            .map(|[lo, hi]| {
                if lo == hi {
                    format!(", {lo} min")
                } else {
                    format!(", {lo}-{hi} min")
                }
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "\n{:>6} x [{}{}]{}",
            g.count,
            g.state,
            wait,
            if g.suspect { "  SUSPECT" } else { "" }
        );
        if let Some(f) = &g.top_frame {
            let _ = writeln!(out, "         at {} ({}:{})", f.function, f.file, f.line);
        }
        if let Some(c) = &g.created_by {
            let _ = writeln!(
                out,
                "         created by {} ({}:{})",
                c.function, c.file, c.line
            );
        }
        for (k, values) in &g.labels {
            let list: Vec<String> = values.iter().map(|(v, n)| format!("{v}={n}")).collect();
            let _ = writeln!(out, "         label {k}: {}", list.join(", "));
        }
        if !g.reason.is_empty() {
            let rule = g
                .rule
                .map(|r| format!(" [likely {r}: goguard explain {r}]"))
                .unwrap_or_default();
            let _ = writeln!(out, "         {}{rule}", g.reason);
        }
    }
    if a.groups.len() > top {
        let _ = writeln!(
            out,
            "\n... {} more groups (--top N, or --format json for all)",
            a.groups.len() - top
        );
    }
    if stats.other_lines > 0 {
        let _ = writeln!(
            out,
            "\n({} lines that were not part of a goroutine were skipped)",
            stats.other_lines
        );
    }
    out
}

/// Fetches a goroutine dump from a net/http/pprof endpoint. A bare service address gets the
/// debug=2 goroutine path.
fn fetch_dump(
    url: &str,
    headers: &[String],
    timeout: u64,
) -> Result<Box<dyn std::io::BufRead>, String> {
    let url = match url.split_once("://").map(|(_, rest)| rest.contains('/')) {
        Some(true) => url.to_string(),
        _ => format!(
            "{}/debug/pprof/goroutine?debug=2",
            url.trim_end_matches('/')
        ),
    };
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(timeout)))
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let mut request = agent.get(&url);
    for h in headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("--header `{h}`: expected NAME: VALUE"))?;
        request = request.header(name.trim(), value.trim());
    }
    let response = request.call().map_err(|e| match e {
        ureq::Error::StatusCode(404) => format!(
            "{url}: HTTP 404: no pprof endpoint here (is net/http/pprof imported and served?)"
        ),
        ureq::Error::StatusCode(code) => format!("{url}: HTTP {code}"),
        other => format!("{url}: {other}"),
    })?;
    Ok(Box::new(std::io::BufReader::new(
        response.into_body().into_reader(),
    )))
}
