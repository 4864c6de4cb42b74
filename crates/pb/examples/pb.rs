//! `guildhall pb …` without the rest of the binary (benchmarks build only this crate):
//! `cargo run --release -p guildhall-pb --example pb -- tally FILE --rule mes …`.

use clap::Parser;

#[derive(clap::Parser)]
struct Args {
    #[command(subcommand)]
    cmd: guildhall_pb::cli::Command,
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    guildhall_pb::cli::run(Args::parse().cmd)
}
