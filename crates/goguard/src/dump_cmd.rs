//! `goguard dump`: analyse goroutine dumps and profiles, or diff two.

use std::io::Write;
use std::path::PathBuf;

use clap::ValueEnum;
use goguard_dump::fetch::{FetchOptions, Fetcher};

use crate::{pretty, EXIT_CLEAN, EXIT_FINDINGS};

#[derive(Clone, Copy, ValueEnum)]
pub enum DumpFormat {
    Text,
    Json,
    /// One self-contained page: summary, sortable groups, stacks, charts.
    Html,
}

#[derive(clap::Args)]
pub struct DumpArgs {
    /// The dump: a file (text or protobuf, gzipped or not), - for standard input, or the URL
    /// of a service with net/http/pprof (`http://127.0.0.1:6060` asks goroutineleak?debug=2,
    /// then goroutine?debug=2, ?debug=1 and the protobuf). Give two to diff them (before,
    /// after).
    #[arg(required = true, num_args = 1..=2)]
    files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: DumpFormat,
    /// Write the report to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// The program's source checkout: frames are mapped to it (module path to directory),
    /// suspect groups show their source lines, and the static rules run on the functions
    /// in their stacks.
    #[arg(long, value_name = "DIR")]
    source: Option<PathBuf>,
    /// Show at most this many groups in text output (all are in JSON).
    #[arg(long, default_value = "10")]
    top: usize,
    /// Exit 1 when a leak suspect is found (for CI).
    #[arg(long)]
    fail_on_suspect: bool,
    /// With two dumps: exit 1 when a group grew by at least N goroutines (for CI).
    #[arg(long, value_name = "N")]
    fail_on_growth: Option<i64>,
    /// When the input holds several dumps (a log with repeated SIGQUITs), analyse only the
    /// Nth (1-based). By default the last is analysed and the others are counted.
    #[arg(long, value_name = "N")]
    which: Option<usize>,
    #[command(flatten)]
    pub grouping: GroupArgs,
    #[command(flatten)]
    pub endpoint: EndpointArgs,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SimilarityArg {
    /// Same state, frames, creator and pprof labels.
    Exact,
    /// Same state, frames (function, file, line) and creator.
    Lines,
    /// Same state and functions, whatever the lines.
    Function,
}

/// How goroutines are grouped and which are left out (shared by dump and watch).
#[derive(clap::Args)]
pub struct GroupArgs {
    /// How alike goroutines must be to share a group.
    #[arg(long, value_enum, default_value = "lines")]
    pub similarity: SimilarityArg,
    /// Leave out goroutines whose top frame is this function (`pkg.F`, or a prefix ending
    /// in `*`); repeatable. Like goleak's IgnoreTopFunction.
    #[arg(long, value_name = "FUNC")]
    pub ignore_top: Vec<String>,
    /// Leave out goroutines with this function anywhere in their stack; repeatable.
    #[arg(long, value_name = "FUNC")]
    pub ignore_any: Vec<String>,
    /// Leave out goroutines started by this function; repeatable.
    #[arg(long, value_name = "FUNC")]
    pub ignore_creator: Vec<String>,
}

impl GroupArgs {
    pub fn options(&self) -> goguard_dump::analyze::GroupOptions {
        use goguard_dump::analyze::Similarity;
        goguard_dump::analyze::GroupOptions {
            similarity: match self.similarity {
                SimilarityArg::Exact => Similarity::Exact,
                SimilarityArg::Lines => Similarity::Lines,
                SimilarityArg::Function => Similarity::Function,
            },
            ignore_top: self.ignore_top.clone(),
            ignore_any: self.ignore_any.clone(),
            ignore_creator: self.ignore_creator.clone(),
        }
    }
}

/// How to reach a live service's pprof endpoint (shared by dump and watch).
#[derive(clap::Args)]
pub struct EndpointArgs {
    /// An HTTP header for URL sources, e.g. "Authorization: Bearer TOKEN" (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// How long to wait for a URL source, in seconds.
    #[arg(long, default_value = "10", value_name = "SECONDS")]
    pub timeout: u64,
    /// A PEM file of root certificates for an https:// endpoint signed by a private CA.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Do not ask /debug/pprof/goroutineleak (Go 1.26+) first; that endpoint marks proven
    /// leaks but runs a GC cycle on the service.
    #[arg(long)]
    pub no_leak_profile: bool,
}

impl EndpointArgs {
    pub fn fetcher(&self) -> Result<Fetcher, String> {
        Fetcher::new(&FetchOptions {
            timeout: std::time::Duration::from_secs(self.timeout),
            headers: self.headers.clone(),
            ca_cert: self.ca_cert.clone(),
            leak_profile: !self.no_leak_profile,
        })
    }
}

/// Reads and analyses one dump file (or standard input for `-`).
/// One dump read and analysed.
pub struct Loaded {
    pub analysis: goguard_dump::Analysis,
    pub stats: goguard_dump::ParseStats,
    /// The file, or the URL that answered.
    pub source: String,
}

pub fn read_dump(
    path: &std::path::Path,
    fetcher: &Fetcher,
    options: &goguard_dump::analyze::GroupOptions,
    which: Option<usize>,
) -> Result<Loaded, String> {
    use std::io::BufRead;
    let mut name = path.display().to_string();
    let reader: Box<dyn BufRead> = if name == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else if name.starts_with("http://") || name.starts_with("https://") {
        let (url, body) = fetcher.fetch(&name)?;
        name = url;
        body
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
            groupers.push(goguard_dump::analyze::Grouper::new(options.clone()));
        }
        groupers[g.dump].add(g)
    })
    .map_err(|e| format!("{name}: {e}"))?;
    if groupers.is_empty() {
        // A leak profile that found no leak.
        groupers.push(goguard_dump::analyze::Grouper::new(options.clone()));
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
    // The crash message and the cut of the dump chosen, not of the first one.
    let mut stats = stats.for_dump(index);
    // The leak endpoint ran Go's leak detector even when it marked nothing.
    stats.leak_checked |= name.contains("/debug/pprof/goroutineleak");
    Ok(Loaded {
        analysis: grouper.finish(&stats),
        stats,
        source: name,
    })
}

pub fn run(args: DumpArgs) -> Result<u8, String> {
    if let [before, after] = args.files.as_slice() {
        return dump_diff(&args, before, after);
    }
    let fetcher = args.endpoint.fetcher()?;
    let Loaded {
        mut analysis,
        stats,
        source,
    } = read_dump(
        &args.files[0],
        &fetcher,
        &args.grouping.options(),
        args.which,
    )?;
    if let Some(dir) = &args.source {
        let map = goguard_dump::source::SourceMap::new(dir)?;
        goguard_dump::source::attach(&mut analysis, &map)?;
    }
    let rendered = match args.format {
        DumpFormat::Json => {
            // Streamed: a dump of 500,000 distinct stacks must not be built as a JSON tree
            // in memory first.
            let report = goguard_dump::analyze::Report {
                analysis: &analysis,
                format: stats.format,
                dumps: stats.dumps,
                carriers: &stats.carriers,
                thread_stacks: stats.thread_stacks,
                source: &source,
            };
            emit_json(
                |w| serde_json::to_writer_pretty(w, &report),
                args.output.as_deref(),
            )?;
            return Ok(exit_code(&args, &analysis));
        }
        DumpFormat::Text => render_dump(&analysis, args.top, &stats),
        DumpFormat::Html => {
            let suspects = analysis.groups.iter().filter(|g| g.suspect).count();
            let mut summary = vec![
                ("source".to_string(), source.clone()),
                ("format".to_string(), stats.format.to_string()),
                ("goroutines".to_string(), analysis.total.to_string()),
                ("groups".to_string(), analysis.groups.len().to_string()),
                ("leak suspect groups".to_string(), suspects.to_string()),
            ];
            if analysis.truncated {
                summary.push(("truncated".into(), cut_note(&stats).into()));
            }
            if !stats.carriers.is_empty() {
                summary.push(("read through".into(), stats.carriers.join(", ")));
            }
            if stats.thread_stacks > 0 {
                summary.push((
                    "per-thread stacks (not counted)".into(),
                    stats.thread_stacks.to_string(),
                ));
            }
            if analysis.ignored > 0 {
                summary.push((
                    "left out by --ignore-*".into(),
                    analysis.ignored.to_string(),
                ));
            }
            goguard_dump::html::render(&goguard_dump::html::Page {
                title: format!("goguard dump: {source}"),
                summary,
                analysis: Some(&analysis),
                rows: analysis
                    .groups
                    .iter()
                    .map(|group| goguard_dump::html::Row {
                        group,
                        series: None,
                        note: None,
                    })
                    .collect(),
                totals: None,
            })
        }
    };
    emit(&rendered, args.output.as_deref())?;
    Ok(exit_code(&args, &analysis))
}

fn exit_code(args: &DumpArgs, analysis: &goguard_dump::Analysis) -> u8 {
    let suspects = analysis.groups.iter().any(|g| g.suspect);
    if args.fail_on_suspect && suspects {
        EXIT_FINDINGS
    } else {
        EXIT_CLEAN
    }
}

/// Writes JSON (`to_json` serializes it), streamed to the file or to standard output (a closed pipe
/// is not an error).
pub fn emit_json(
    to_json: impl Fn(&mut dyn Write) -> serde_json::Result<()>,
    output: Option<&std::path::Path>,
) -> Result<(), String> {
    let write = |w: &mut dyn Write| -> std::io::Result<()> {
        let mut w = std::io::BufWriter::with_capacity(1 << 16, w);
        to_json(&mut w)?;
        w.write_all(b"\n")?;
        w.flush()
    };
    match output {
        Some(path) => {
            let mut f = std::fs::File::create(path)
                .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
            write(&mut f).map_err(|e| format!("{}: cannot write: {e}", path.display()))
        }
        None => {
            let _ = write(&mut std::io::stdout().lock());
            Ok(())
        }
    }
}

fn dump_diff(
    args: &DumpArgs,
    before: &std::path::Path,
    after: &std::path::Path,
) -> Result<u8, String> {
    use std::fmt::Write as _;
    let fetcher = args.endpoint.fetcher()?;
    let options = args.grouping.options();
    let first = read_dump(before, &fetcher, &options, args.which)?;
    let mut second = read_dump(after, &fetcher, &options, args.which)?;
    if let Some(dir) = &args.source {
        let map = goguard_dump::source::SourceMap::new(dir)?;
        goguard_dump::source::attach(&mut second.analysis, &map)?;
    }
    let (a, b) = (&first.analysis, &second.analysis);
    // Dumps in different formats share only their program frames: match on those.
    let base = |f: &str| f.split(" (").next().unwrap_or(f).to_string();
    let across = base(first.stats.format) != base(second.stats.format);
    let groups = if across {
        goguard_dump::diff_across_formats(a, b)
    } else {
        goguard_dump::diff(a, b)
    };
    let matched_on = if across {
        format!(
            "the program's frames (function and line) only: the dumps are in different formats ({} and {})",
            first.stats.format, second.stats.format
        )
    } else {
        "state, frames and creator".to_string()
    };
    // Growth per minute, when both dumps say when they were taken.
    let minutes = match (first.stats.time_unix_nanos, second.stats.time_unix_nanos) {
        (Some(t0), Some(t1)) if t1 > t0 => Some((t1 - t0) as f64 / 60e9),
        _ => None,
    };
    let per_minute = |delta: i64| minutes.map(|m| (delta as f64 / m * 10.0).round() / 10.0);
    let rendered = match args.format {
        DumpFormat::Json => {
            let mut list = serde_json::to_value(&groups).map_err(|e| e.to_string())?;
            if let Some(items) = list.as_array_mut() {
                for (item, d) in items.iter_mut().zip(&groups) {
                    item["per_minute"] = per_minute(d.delta).into();
                }
            }
            pretty(&serde_json::json!({
                "format": "diff",
                "total": {"before": a.total, "after": b.total},
                "minutes_between": minutes,
                "matched_on": matched_on,
                "groups": list,
            }))
        }
        DumpFormat::Html => goguard_dump::html::render(&goguard_dump::html::Page {
            title: format!("goguard dump: {} -> {}", first.source, second.source),
            summary: vec![
                (
                    "before".into(),
                    format!("{} ({} goroutines)", first.source, a.total),
                ),
                (
                    "after".into(),
                    format!("{} ({} goroutines)", second.source, b.total),
                ),
                (
                    "grew".into(),
                    groups.iter().filter(|d| d.delta > 0).count().to_string() + " groups",
                ),
            ],
            analysis: Some(b),
            rows: groups
                .iter()
                .map(|d| goguard_dump::html::Row {
                    group: &d.group,
                    series: Some(vec![d.before, d.after]),
                    note: None,
                })
                .collect(),
            // The chart names its two points; their paths (long, and printed over each
            // other under the axis) are in the summary above it.
            totals: Some(vec![("before".into(), a.total), ("after".into(), b.total)]),
        }),
        DumpFormat::Text => {
            let mut out = String::new();
            let _ = writeln!(
                out,
                "{} goroutines -> {} ({:+})",
                a.total,
                b.total,
                b.total as i64 - a.total as i64
            );
            if across {
                let _ = writeln!(out, "groups matched on {matched_on}");
            }
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
                let rate = per_minute(d.delta)
                    .filter(|_| d.delta != 0)
                    .map(|r| format!(" ({r:+}/min)"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{:>+7}  {:>6} -> {:<6} [{}]{tag}{rate} {at}",
                    d.delta, d.before, d.after, d.group.state
                );
            }
            out
        }
    };
    emit(&rendered, args.output.as_deref())?;
    let grew = args
        .fail_on_growth
        .is_some_and(|n| groups.iter().any(|d| d.delta >= n));
    Ok(if grew { EXIT_FINDINGS } else { EXIT_CLEAN })
}

fn render_dump(a: &goguard_dump::Analysis, top: usize, stats: &goguard_dump::ParseStats) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let suspects = a.groups.iter().filter(|g| g.suspect).count();
    if a.total == 0 && (a.crash.is_some() || !a.races.is_empty()) {
        let _ = writeln!(out, "no goroutine dump in the input");
    } else {
        let _ = writeln!(
            out,
            "{} goroutines in {} groups; {} leak suspect group{}{}",
            a.total,
            a.groups.len(),
            suspects,
            if suspects == 1 { "" } else { "s" },
            if a.truncated {
                format!(" ({})", cut_note(stats))
            } else {
                String::new()
            }
        );
    }
    if a.ignored > 0 {
        let _ = writeln!(
            out,
            "{} goroutines left out by the --ignore-* options",
            a.ignored
        );
    }
    if stats.dumps > 1 {
        let list: Vec<String> = stats
            .dump_info
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let from = if d.source.is_empty() {
                    String::new()
                } else {
                    format!(" from {}", d.source)
                };
                let mark = if i == stats.chosen { " (this one)" } else { "" };
                format!("{}: {} goroutines{from}{mark}", i + 1, d.goroutines)
            })
            .collect();
        let _ = writeln!(
            out,
            "the input holds {} dumps ({}); --which N picks another",
            stats.dumps,
            list.join(", ")
        );
    }
    if !stats.carriers.is_empty() {
        let _ = writeln!(out, "read through {}", stats.carriers.join(", "));
    }
    if stats.thread_stacks > 0 {
        let _ = writeln!(
            out,
            "{} per-thread stacks of the crash report (GOTRACEBACK=crash) are not counted as goroutines",
            stats.thread_stacks
        );
    }
    if let Some(c) = &a.crash {
        let _ = writeln!(out, "\nthe program crashed: {}", c.message);
        if let Some(f) = &c.at {
            let _ = writeln!(
                out,
                "         in goroutine {} at {} ({}:{})",
                c.goroutine.unwrap_or(0),
                f.function,
                f.file,
                f.line
            );
        }
        if !c.explanation.is_empty() {
            let _ = writeln!(out, "         {}{}", c.explanation, rule_hint(c.rule));
        }
    }
    for r in &a.races {
        let times = if r.count > 1 {
            format!(" (reported {} times)", r.count)
        } else {
            String::new()
        };
        let _ = writeln!(out, "\nDATA RACE{times}");
        for access in &r.race.accesses {
            let by = access
                .goroutine
                .map_or("the main goroutine".to_string(), |g| {
                    format!("goroutine {g}")
                });
            let at = goguard_dump::analyze::user_frame(&access.frames)
                .map(|f| format!("{} ({}:{})", f.function, f.file, f.line))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "         {} by {by} at {at}",
                access.kind.to_lowercase()
            );
        }
        for o in &r.race.goroutines {
            if let Some(f) = goguard_dump::analyze::user_frame(&o.created_at) {
                let _ = writeln!(
                    out,
                    "         goroutine {} created at {} ({}:{})",
                    o.goroutine, f.function, f.file, f.line
                );
            }
        }
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
        // The representative stack, cut to the program's own frames (the first is above).
        let own: Vec<_> = g
            .frames
            .iter()
            .filter(|f| !goguard_dump::analyze::is_std_frame(f))
            .skip(1)
            .take(4)
            .collect();
        for f in own {
            let _ = writeln!(out, "         from {} ({}:{})", f.function, f.file, f.line);
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
            let _ = writeln!(out, "         {}{}", g.reason, rule_hint(g.rule));
        }
        for l in &g.source {
            let mark = if l.target { ">" } else { " " };
            let _ = writeln!(out, "       {mark} {:>5} | {}", l.line, l.text);
        }
        for f in &g.findings {
            let _ = writeln!(out, "         {}", finding_line(f));
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

/// What a cut dump is missing.
fn cut_note(stats: &goguard_dump::ParseStats) -> &'static str {
    if stats.cut_at_cap {
        "the dump is cut at 64 MiB, where Go's debug=2 endpoint stops writing: the goroutines after that point are missing"
    } else {
        "the dump is cut: the last goroutine is incomplete"
    }
}

/// Writes a report to the file, or to standard output (a closed pipe is not an error).
pub fn emit(rendered: &str, output: Option<&std::path::Path>) -> Result<(), String> {
    match output {
        Some(path) => std::fs::write(path, anstream::adapter::strip_str(rendered).to_string())
            .map_err(|e| format!("{}: cannot write: {e}", path.display())),
        None => {
            let _ = anstream::stdout().write_all(rendered.as_bytes());
            Ok(())
        }
    }
}

/// ` [likely G106: goguard explain G106]`, or nothing without a rule.
pub fn rule_hint(rule: Option<&str>) -> String {
    rule.map(|r| format!(" [likely {r}: goguard explain {r}]"))
        .unwrap_or_default()
}

/// One static finding attached to runtime evidence, as a report line (without indent).
pub fn finding_line(f: &goguard_dump::analyze::StaticFinding) -> String {
    format!(
        "goguard check: {} {}:{}: {}",
        f.rule, f.file, f.line, f.message
    )
}
