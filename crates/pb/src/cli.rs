//! `guildhall pb …`: the offline participatory-budgeting tool.

use std::process::ExitCode;

/// The `guildhall pb` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Validate a Pabulib `.pb` file.
    Check {
        /// The file to check.
        file: std::path::PathBuf,
    },
}

/// Runs one `guildhall pb` subcommand.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Check { file } => anyhow::bail!("pb check {}: not built yet", file.display()),
    }
}
