//! `guildhall blocklist` as a stand-alone binary, for the benchmark scripts in bench/blocklist/
//! (the same code path as the `guildhall` binary, without building the whole server).

use std::process::ExitCode;

use clap::Parser;

/// The `guildhall blocklist` subcommands.
#[derive(Parser)]
#[command(name = "guildhall-blocklist")]
struct Cli {
    #[command(subcommand)]
    command: guildhall_blocklist::cli::Command,
}

fn main() -> ExitCode {
    match guildhall_blocklist::cli::run(Cli::parse().command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("guildhall blocklist: {err:#}");
            ExitCode::FAILURE
        }
    }
}
