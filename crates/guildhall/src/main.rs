//! The `guildhall` binary: the server, its workers, and the offline tools.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod config;
mod server;

/// Guildhall: moderation, shared blocklists, funding and governance for Fediverse instances.
#[derive(Debug, Parser)]
#[command(name = "guildhall", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (HTTP, and the job worker unless --no-worker). With no configuration it
    /// uses sqlite://guildhall.db in the working directory and listens on 127.0.0.1:8080.
    Serve(server::ServeArgs),
    /// Run a job worker only.
    Worker(server::CommonArgs),
    /// Apply database migrations and exit.
    Migrate(server::CommonArgs),
    /// Administration: create the first owner, verify the audit log, rotate the secret key.
    #[command(subcommand)]
    Admin(server::AdminCommand),
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
    let mut out = std::io::stdout();
    let result = match cli.command {
        Command::Serve(args) => server::serve(args, &mut out),
        Command::Worker(args) => server::worker(args, &mut out),
        Command::Migrate(args) => server::migrate(args, &mut out),
        Command::Admin(cmd) => server::admin(cmd, &mut out),
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

    #[test]
    fn server_commands_parse() {
        let c = Cli::try_parse_from([
            "guildhall",
            "serve",
            "--no-worker",
            "--listen",
            "127.0.0.1:0",
        ])
        .unwrap();
        assert!(matches!(c.command, Command::Serve(_)));
        let c = Cli::try_parse_from([
            "guildhall",
            "admin",
            "create-owner",
            "--email",
            "a@b.example",
        ])
        .unwrap();
        assert!(matches!(
            c.command,
            Command::Admin(server::AdminCommand::CreateOwner { .. })
        ));
        assert!(Cli::try_parse_from(["guildhall", "admin", "create-owner"]).is_err());
        for cmd in [
            &["admin", "verify-audit"][..],
            &["admin", "rotate-key", "--drop-old"],
            &["worker"],
            &["migrate"],
        ] {
            let mut args = vec!["guildhall"];
            args.extend_from_slice(cmd);
            assert!(Cli::try_parse_from(args).is_ok(), "{cmd:?}");
        }
    }
}
