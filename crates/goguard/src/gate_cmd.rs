//! `goguard gate`: the stability gateway. `goguard gate --config gate.toml` runs it;
//! `goguard gate check gate.toml` validates a configuration and prints it with every default
//! filled in.

use std::path::PathBuf;
use std::time::Duration;

use crate::{EXIT_CLEAN, EXIT_FINDINGS};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct GateArgs {
    /// Run the gateway with this configuration. It is watched: a valid change is swapped in
    /// atomically, an invalid one is refused with its file, line and field (also on SIGHUP
    /// and POST /admin/reload).
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// How often the configuration file is checked for changes (0 to only reload on SIGHUP
    /// or POST /admin/reload).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    watch_every: Duration,
    /// Log level (error, warn, info, debug, trace), or a tracing filter such as
    /// `goguard_gate=debug`.
    #[arg(long, default_value = "info", value_name = "FILTER")]
    log: String,
    /// Logs as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
    /// Serving threads, each with its own single-threaded runtime (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Option<GateCommand>,
}

#[derive(clap::Subcommand)]
pub enum GateCommand {
    /// Validate a gate.toml and print the effective configuration (defaults filled in);
    /// exit 1 with the file, line and field of each problem.
    Check {
        /// The configuration file.
        file: PathBuf,
        /// Print the effective configuration as JSON instead of TOML.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: GateArgs) -> Result<u8, String> {
    match (args.command, &args.config) {
        (Some(GateCommand::Check { file, json }), _) => check(&file, json),
        (None, Some(config)) => serve(
            config.clone(),
            args.watch_every,
            &args.log,
            args.log_json,
            args.threads,
        ),
        (None, None) => {
            Err("gate: give --config FILE to run the gateway, or `goguard gate check FILE`".into())
        }
    }
}

fn check(file: &std::path::Path, json: bool) -> Result<u8, String> {
    match goguard_gate::load(file) {
        Ok(config) => {
            let text = if json {
                crate::pretty(&serde_json::to_value(&config).map_err(|e| e.to_string())?)
            } else {
                toml::to_string_pretty(&config).map_err(|e| e.to_string())?
            };
            print!("{text}");
            eprintln!("goguard: {}: valid", file.display());
            Ok(EXIT_CLEAN)
        }
        Err(goguard_gate::ConfigError::Invalid(problems)) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!(
                "goguard: {}: {} problem(s); nothing was changed",
                file.display(),
                problems.len()
            );
            Ok(EXIT_FINDINGS)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Runs the gateway until SIGTERM or SIGINT, then drains and returns 0.
///
/// Each serving thread runs its own single-threaded runtime and accepts on its own socket
/// on the listen address (`SO_REUSEPORT`: the kernel spreads the connections), as nginx
/// runs a worker per core: a request, its upstream connection and their tasks stay on one
/// thread, with no work stealing between them (measured on `bench/gate`: about 8% more
/// requests per second than one multi-threaded runtime). The first thread also runs the admin listener, the reloads, the
/// health checks and the event sinks.
fn serve(
    config: PathBuf,
    watch_every: Duration,
    log: &str,
    log_json: bool,
    threads: Option<usize>,
) -> Result<u8, String> {
    crate::daemon::init_logs(log, log_json)?;
    let threads = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let rt = runtime()?;
    let workers = rt.block_on(async move {
        let gateway = goguard_gate::Gateway::from_file(&config)?;
        let stack = gateway.stack();
        let (listener, admin) =
            goguard_gate::server::bind_shared(&stack.config, threads > 1).await?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot listen: {e}"))?;
        let mut workers = Vec::new();
        for i in 1..threads {
            let (listening, started) = tokio::sync::oneshot::channel();
            workers.push(worker(
                i,
                addr,
                gateway.clone(),
                stopped.clone(),
                listening,
            )?);
            started
                .await
                .map_err(|_| format!("serving thread {i} did not start"))??;
        }
        tracing::info!(
            listen = %stack.config.listen,
            admin = %stack.config.admin,
            config = %config.display(),
            routes = stack.config.routes.len(),
            threads,
            "goguard gate is running"
        );
        drop(stack);
        let every = (!watch_every.is_zero()).then_some(watch_every);
        tokio::spawn(gateway.clone().watch(every));
        let shutdown = async move {
            crate::daemon::stop_signal().await;
            let _ = stop.send(true);
        };
        gateway.serve(listener, admin, shutdown).await;
        Ok::<_, String>(workers)
    })?;
    for w in workers {
        if w.join().is_err() {
            return Err("a serving thread panicked".into());
        }
    }
    Ok(EXIT_CLEAN)
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// Serving thread `i`: its own runtime and socket on `addr` (whether it could listen is
/// sent on `listening`), accepting until the stop is sent.
fn worker(
    i: usize,
    addr: std::net::SocketAddr,
    gateway: goguard_gate::Gateway,
    mut stopped: tokio::sync::watch::Receiver<bool>,
    listening: tokio::sync::oneshot::Sender<Result<(), String>>,
) -> Result<std::thread::JoinHandle<()>, String> {
    let rt = runtime()?;
    std::thread::Builder::new()
        .name(format!("goguard-serve-{i}"))
        .spawn(move || {
            goguard_gate::connections::set_worker(i);
            rt.block_on(async move {
                let listener = match goguard_gate::server::listen_beside(addr) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = listening.send(Err(e));
                        return;
                    }
                };
                let _ = listening.send(Ok(()));
                let shutdown = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                gateway.serve_worker(listener, shutdown).await;
            });
        })
        .map_err(|e| format!("cannot start serving thread {i}: {e}"))
}
