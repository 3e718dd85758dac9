//! What the long-running commands (`gate`, `scale`, `chaos proxy`, `drill`) share: logs on
//! standard error, and stopping on SIGTERM or SIGINT.

/// Logs to standard error through `tracing`, filtered by `filter` (`--log`), as JSON lines
/// with `json`; colours only on a terminal.
pub(crate) fn init_logs(filter: &str, json: bool) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| format!("--log `{filter}`: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    result.map_err(|e| e.to_string())
}

/// Resolves on SIGTERM or SIGINT, saying which.
pub(crate) async fn stop_signal_named() -> String {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "interrupted (SIGTERM)".to_string(),
        _ = int.recv() => "interrupted (SIGINT)".to_string(),
    }
}

/// Resolves on SIGTERM or SIGINT, and logs which.
pub(crate) async fn stop_signal() {
    let why = stop_signal_named().await;
    tracing::info!("{why}: stopping");
}
