//! `goguard chaos proxy`: TCP fault proxies for a service's own dependencies, with
//! toxiproxy's toxics switched at run time through an HTTP admin API.

use std::path::PathBuf;

use goguard_chaos::{ChaosConfig, ProxyConfig, ProxySet};

use crate::EXIT_CLEAN;

#[derive(clap::Args)]
pub struct ChaosArgs {
    #[command(subcommand)]
    command: ChaosCommand,
}

#[derive(clap::Subcommand)]
pub enum ChaosCommand {
    /// Run TCP fault proxies (`--config chaos.toml`, or one with `--listen` and
    /// `--upstream`); faults are added and removed through the admin API
    /// (`POST /proxies/NAME/toxics`, as toxiproxy's).
    Proxy(ProxyArgs),
}

#[derive(clap::Args)]
pub struct ProxyArgs {
    /// A chaos.toml: `admin = "127.0.0.1:8474"` and `[[proxy]]` tables with name, listen
    /// and upstream.
    #[arg(long, short, value_name = "FILE", conflicts_with_all = ["listen", "upstream", "name"])]
    config: Option<PathBuf>,
    /// Where one proxy listens (IP:PORT).
    #[arg(long, value_name = "ADDR", requires = "upstream")]
    listen: Option<String>,
    /// Where it forwards (HOST:PORT).
    #[arg(long, value_name = "ADDR", requires = "listen")]
    upstream: Option<String>,
    /// Its name in the admin API.
    #[arg(long, default_value = "proxy")]
    name: String,
    /// Where the admin API and /metrics listen [default: the config's, or 127.0.0.1:8474].
    #[arg(long, value_name = "ADDR")]
    admin: Option<String>,
    /// Log level (error, warn, info, debug) or a tracing filter.
    #[arg(long, default_value = "info", value_name = "FILTER")]
    log: String,
}

pub fn run(args: ChaosArgs) -> Result<u8, String> {
    match args.command {
        ChaosCommand::Proxy(p) => proxy(p),
    }
}

fn proxy(args: ProxyArgs) -> Result<u8, String> {
    let mut config = match (&args.config, &args.listen, &args.upstream) {
        (Some(file), _, _) => ChaosConfig::load(file)?,
        (None, Some(listen), Some(upstream)) => ChaosConfig {
            admin: goguard_chaos::config::DEFAULT_ADMIN.to_string(),
            proxies: vec![ProxyConfig {
                name: args.name.clone(),
                listen: listen.clone(),
                upstream: upstream.clone(),
            }],
        },
        _ => {
            return Err(
                "chaos proxy: give --config chaos.toml, or --listen ADDR --upstream ADDR".into(),
            )
        }
    };
    if let Some(admin) = &args.admin {
        config.admin = admin.clone();
    }
    config.check().map_err(|e| format!("chaos proxy: {e}"))?;
    crate::daemon::init_logs(&args.log, false)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async move {
        let set = ProxySet::start(config.proxies.clone())
            .await
            .map_err(|e| e.to_string())?;
        let admin = goguard_chaos::admin::bind(&config.admin)
            .await
            .map_err(|e| e.to_string())?;
        for p in &config.proxies {
            let at = set.listen_addr(&p.name).map(|a| a.to_string());
            eprintln!(
                "goguard chaos proxy: {} on {} -> {}",
                p.name,
                at.unwrap_or_default(),
                p.upstream
            );
        }
        eprintln!(
            "goguard chaos proxy: admin API and /metrics on http://{}",
            admin
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| config.admin.clone())
        );
        goguard_chaos::admin::serve(set.clone(), admin, crate::daemon::stop_signal()).await;
        set.close();
        Ok::<_, String>(())
    })?;
    Ok(EXIT_CLEAN)
}
