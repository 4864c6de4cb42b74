//! `guildhall blocklist …`: the offline blocklist tool.

use std::process::ExitCode;

/// The `guildhall blocklist` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Validate a blocklist file and list its problems by line.
    Check {
        /// The file to check.
        file: std::path::PathBuf,
    },
}

/// Runs one `guildhall blocklist` subcommand.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Check { file } => {
            anyhow::bail!("blocklist check {}: not built yet", file.display())
        }
    }
}
