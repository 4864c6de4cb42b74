//! The `guildhall` binary: the server, its workers, and the offline tools.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Guildhall: moderation, shared blocklists, funding and governance for Fediverse instances.
#[derive(Debug, Parser)]
#[command(name = "guildhall", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Blocklists offline: merge (FediBlockHole-compatible), diff, check.
    #[command(subcommand)]
    Blocklist(guildhall_blocklist::cli::Command),
    /// Participatory budgeting offline: tally and check Pabulib files.
    #[command(subcommand)]
    Pb(guildhall_pb::cli::Command),
    #[command(flatten)]
    Vote(guildhall_vote::cli::Command),
    /// Select a panel by lot with quotas.
    Sortition(guildhall_sortition::cli::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Blocklist(cmd) => guildhall_blocklist::cli::run(cmd),
        Command::Pb(cmd) => guildhall_pb::cli::run(cmd),
        Command::Vote(cmd) => guildhall_vote::cli::run(cmd),
        Command::Sortition(args) => guildhall_sortition::cli::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("guildhall: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
