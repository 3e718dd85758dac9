//! `goguard drill SCENARIO.toml`: switches faults (chaos proxy toxics, gateway route
//! faults), watches the service, and prints when each fault was detected and recovered
//! from, against the scenario's targets. Every fault it set is removed at the end, also on
//! Ctrl-C or an error.

use std::path::PathBuf;

use clap::ValueEnum;
use goguard_chaos::drill::{self, Scenario};

use crate::{EXIT_CLEAN, EXIT_ERROR, EXIT_FINDINGS};

#[derive(Clone, Copy, ValueEnum)]
enum DrillFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
pub struct DrillArgs {
    /// The scenario: what to watch, the fault targets, and the steps.
    scenario: PathBuf,
    /// Output format of the report on standard output.
    #[arg(long, value_enum, default_value = "text")]
    format: DrillFormat,
    /// Also write the report as a self-contained HTML page (with a timeline).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Only check the scenario file: exit 0 when it is valid.
    #[arg(long)]
    check: bool,
    /// Log level of the progress lines on stderr (error, warn, info, debug).
    #[arg(long, default_value = "info", value_name = "FILTER")]
    log: String,
}

/// Exit 0 when every step met its targets, 1 when one was missed, 2 when the drill could
/// not run or was interrupted (the report is still printed, and faults removed).
pub fn run(args: DrillArgs) -> Result<u8, String> {
    let scenario = Scenario::load(&args.scenario)?;
    if args.check {
        eprintln!(
            "goguard: {}: valid ({} step(s))",
            args.scenario.display(),
            scenario.steps.len()
        );
        return Ok(EXIT_CLEAN);
    }
    crate::daemon::init_logs(&args.log, false)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let report = rt.block_on(drill::run(&scenario, crate::daemon::stop_signal_named()));
    let out = match args.format {
        DrillFormat::Text => drill::render_text(&report),
        DrillFormat::Json => drill::render_json(&report),
    };
    print!("{out}");
    if let Some(path) = &args.html {
        std::fs::write(path, drill::render_html(&report))
            .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
    }
    if let Some(why) = &report.interrupted {
        eprintln!("goguard: drill stopped: {why}");
        return Ok(EXIT_ERROR);
    }
    if !report.cleanup_failed.is_empty() {
        return Ok(EXIT_ERROR);
    }
    Ok(if report.passed {
        EXIT_CLEAN
    } else {
        EXIT_FINDINGS
    })
}
