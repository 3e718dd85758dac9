//! `goguard gate`: the stability gateway. For now, `goguard gate check` validates a
//! configuration and prints it with every default filled in.

use std::path::PathBuf;

use crate::{EXIT_CLEAN, EXIT_FINDINGS};

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

pub fn run(cmd: GateCommand) -> Result<u8, String> {
    match cmd {
        GateCommand::Check { file, json } => match goguard_gate::load(&file) {
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
        },
    }
}
