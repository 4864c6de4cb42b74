//! `guildhall sortition …`: the offline panel-selection tool.

use std::process::ExitCode;

/// Arguments of `guildhall sortition`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The features (quotas) CSV.
    #[arg(long)]
    pub features: std::path::PathBuf,
}

/// Runs `guildhall sortition`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("sortition {}: not built yet", args.features.display())
}
