//! `guildhall stv|schulze|delegate …`: the offline election and delegation tools.

use std::process::ExitCode;

/// The election subcommands, flattened into the top level of `guildhall`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Count a single transferable vote election.
    Stv {
        /// The ballot file (BLT).
        file: std::path::PathBuf,
    },
}

/// Runs one election subcommand.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Stv { file } => anyhow::bail!("stv {}: not built yet", file.display()),
    }
}
