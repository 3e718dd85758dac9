//! `goguard server`: the language server, over standard input and output.

use crate::EXIT_CLEAN;

#[derive(clap::Args)]
pub struct ServerArgs {
    /// Accepted for editors that always pass it: standard input and output are the only
    /// transport.
    #[arg(long)]
    stdio: bool,
}

pub fn run(args: ServerArgs) -> Result<u8, String> {
    let _ = args.stdio;
    goguard_server::run_stdio().map_err(|e| format!("server: {e}"))?;
    Ok(EXIT_CLEAN)
}
