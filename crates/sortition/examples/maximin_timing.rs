//! Times maximin on one pool and prints one JSON line (used by bench/sortition/compare.sh):
//! `{"n":..,"k":..,"min_probability":..,"upper_bound":..,"panels":..,"seconds":..,"cpu_seconds":..}`
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

/// CPU time of this process (user + system) from /proc/self/stat, in seconds; 0 elsewhere.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses): state is field 3; utime and
    // stime are fields 14 and 15, in clock ticks (100 per second on Linux).
    let Some(rest) = stat.rsplit(')').next() else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
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
    let cpu_start = cpu_seconds();
    let dist = find_maximin(&features, &pool, k)?.ok_or("the quotas admit no panel")?;
    let seconds = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    println!(
        "{{\"n\": {}, \"k\": {k}, \"min_probability\": {:.12}, \"upper_bound\": {:.12}, \"proven_optimal\": {}, \"panels\": {}, \"seconds\": {seconds:.3}, \"cpu_seconds\": {cpu:.2}}}",
        pool.people.len(),
        dist.min_probability(),
        dist.upper_bound,
        dist.proven_optimal,
        dist.panels.len()
    );
    Ok(())
}
