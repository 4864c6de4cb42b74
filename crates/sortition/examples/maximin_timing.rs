//! Times maximin on one pool and prints one JSON line (used by bench/sortition/compare.sh):
//! `{"n":..,"k":..,"min_probability":..,"upper_bound":..,"panels":..,"seconds":..}`
//!
//! Usage: `maximin_timing FEATURES.csv PEOPLE.csv K [--households]` (households by the
//! generator's `address,postcode` columns). Reading the CSVs is not timed.

use std::process::ExitCode;

use guildhall_sortition::input::{read_features, read_people};
use guildhall_sortition::{find_maximin, Settings};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("maximin_timing: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        return Err("usage: maximin_timing FEATURES.csv PEOPLE.csv K [--households]".into());
    }
    let (features, ferrs) = read_features(&args[1], std::fs::File::open(&args[1])?)?;
    let mut settings = Settings::default();
    if args.iter().any(|a| a == "--households") {
        settings.check_same_address = true;
        settings.check_same_address_columns = vec!["address".into(), "postcode".into()];
    }
    let (pool, perrs) = read_people(
        &args[2],
        std::fs::File::open(&args[2])?,
        &features,
        &settings,
    )?;
    if let Some(e) = ferrs.iter().chain(&perrs).next() {
        return Err(e.to_string().into());
    }
    let k: usize = args[3].parse()?;
    let start = std::time::Instant::now();
    let dist = find_maximin(&features, &pool, k)?.ok_or("the quotas admit no panel")?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{{\"n\": {}, \"k\": {k}, \"min_probability\": {:.12}, \"upper_bound\": {:.12}, \"proven_optimal\": {}, \"panels\": {}, \"seconds\": {seconds:.3}}}",
        pool.people.len(),
        dist.min_probability(),
        dist.upper_bound,
        dist.proven_optimal,
        dist.panels.len()
    );
    Ok(())
}
