//! `goguard scale`: scaling decisions (5.4). `goguard scale --config scale.toml` evaluates
//! the reference's tree every `every`, sends actions to the configured hook, verifies them,
//! and serves `/metrics` and `/admin/status` on `--admin`; `--once` evaluates once, prints
//! the decision and exits (for CI and cron); `--dry-run` prints what it would do.

use std::path::PathBuf;

use crate::{EXIT_CLEAN, EXIT_FINDINGS};

#[derive(clap::Args)]
pub struct ScaleArgs {
    /// The scale.toml: inputs (Prometheus queries or gateway figures), thresholds,
    /// stabilisation, verification and hooks.
    #[arg(long, short, value_name = "FILE")]
    config: PathBuf,
    /// Decide and print what would be done; run no hook. The size is counted as if each
    /// action had been taken.
    #[arg(long)]
    dry_run: bool,
    /// Evaluate once, print the decision and exit: 0 when decided (acted or kept), 1 when an
    /// input had no data or the hook failed.
    #[arg(long)]
    once: bool,
    /// Keep the size and the stabilisation's memory (windows, policies, cooldown) in this
    /// JSON file between runs: what makes --once from cron as steady as the loop.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// How --once prints the decision.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Where to serve /metrics, /admin/status and /healthz (not with --once).
    #[arg(long, default_value = "127.0.0.1:9095", value_name = "ADDR")]
    admin: String,
    /// Log level (error, warn, info, debug), or a tracing filter such as
    /// `goguard_scale=debug` [default: info; error with --once, which prints the decision].
    #[arg(long, value_name = "FILTER")]
    log: Option<String>,
    /// Logs as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

pub fn run(args: ScaleArgs) -> Result<u8, String> {
    let config = goguard_scale::load(&args.config).map_err(|e| match e {
        // Each problem is already `file:line: field: problem`.
        goguard_scale::ConfigError::Invalid(p) if p.len() == 1 => p[0].clone(),
        goguard_scale::ConfigError::Invalid(p) => {
            format!("{} problems:\n{}", p.len(), p.join("\n"))
        }
        other => other.to_string(),
    })?;
    let default_log = if args.once { "error" } else { "info" };
    crate::daemon::init_logs(args.log.as_deref().unwrap_or(default_log), args.log_json)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async move {
        let mut scaler = goguard_scale::Scaler::new(config, args.dry_run);
        if let Some(path) = &args.state {
            scaler = scaler.with_state(path)?;
        }
        if args.once {
            let d = scaler.evaluate().await;
            match args.format {
                Format::Text => println!("{}", d.text()),
                Format::Json => print!(
                    "{}",
                    crate::pretty(&serde_json::to_value(&d).map_err(|e| e.to_string())?)
                ),
            }
            let failed = d.no_data || d.hook.as_ref().is_some_and(|h| !h.ok);
            return Ok(if failed { EXIT_FINDINGS } else { EXIT_CLEAN });
        }
        let listener = goguard_scale::admin::bind(&args.admin).await?;
        let admin = listener
            .local_addr()
            .map_err(|e| format!("--admin {}: {e}", args.admin))?;
        tokio::spawn(goguard_scale::admin::serve(listener, scaler.board()));
        tracing::info!(
            config = %args.config.display(),
            admin = %admin,
            dry_run = args.dry_run,
            "goguard scale is running"
        );
        scaler.run(crate::daemon::stop_signal()).await;
        Ok(EXIT_CLEAN)
    })
}
