//! `guildhall sortition …`: the offline panel-selection tool.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::input::{read_features, read_people, Settings};
use crate::{
    category_counts, check_panel, lottery, select, Algorithm, Features, Outcome, Pool, Request,
};

/// The selection algorithm on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AlgorithmArg {
    /// Maximin probabilities, then a lottery over panels.
    Maximin,
    /// The legacy step-by-step algorithm (one panel, no probability guarantee).
    Legacy,
}

/// Arguments of `guildhall sortition`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The features (quotas) CSV: feature,value,min,max[,min_flex,max_flex].
    #[arg(long)]
    pub features: PathBuf,
    /// The people CSV: one row per volunteer.
    #[arg(long)]
    pub people: PathBuf,
    /// Panel size.
    #[arg(long)]
    pub panel: usize,
    /// The algorithm.
    #[arg(long, value_enum, default_value = "maximin")]
    pub algorithm: AlgorithmArg,
    /// The public seed (any text), published after the ticket table.
    #[arg(long)]
    pub seed: String,
    /// Write the selected people here.
    #[arg(long)]
    pub selected: Option<PathBuf>,
    /// Write the people not selected here (without housemates of the selected, under the
    /// household rule).
    #[arg(long)]
    pub remaining: Option<PathBuf>,
    /// Write each person's selection probability here.
    #[arg(long)]
    pub probabilities: Option<PathBuf>,
    /// Write the ticket table (ticket number → panel) here (maximin). The table does not
    /// depend on the seed: publish it before the seed is drawn.
    #[arg(long)]
    pub tickets_out: Option<PathBuf>,
    /// Number of lottery tickets (maximin).
    #[arg(long, default_value_t = 1000)]
    pub tickets: usize,
    /// The id column of the people CSV.
    #[arg(long, default_value = "id")]
    pub id_column: String,
    /// Columns of the people CSV to copy to the output (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub keep: Vec<String>,
    /// At most one person per household, a household being the people whose given address
    /// columns (comma-separated) are all equal.
    #[arg(long, value_delimiter = ',')]
    pub household: Vec<String>,
    /// Attempts of the legacy algorithm.
    #[arg(long, default_value_t = 100)]
    pub max_attempts: usize,
    /// Go on without the rows of the people CSV that have errors (they are still listed).
    #[arg(long)]
    pub skip_bad_rows: bool,
}

/// Runs `guildhall sortition`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    run_to(&args, &mut out)
}

fn open(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))
}

/// Runs the command, writing the report to `out`.
pub fn run_to(args: &Args, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let fname = args.features.display().to_string();
    let (features, ferrs) = read_features(&fname, open(&args.features)?)?;
    let settings = Settings {
        id_column: args.id_column.clone(),
        columns_to_keep: args.keep.clone(),
        check_same_address: !args.household.is_empty(),
        check_same_address_columns: args.household.clone(),
    };
    let pname = args.people.display().to_string();
    let (pool, perrs) = read_people(&pname, open(&args.people)?, &features, &settings)?;
    for e in ferrs.iter().chain(&perrs) {
        writeln!(out, "error: {e}")?;
    }
    if !ferrs.is_empty() {
        writeln!(
            out,
            "{} error(s) in the features file: nothing selected",
            ferrs.len()
        )?;
        return Ok(ExitCode::from(1));
    }
    if !perrs.is_empty() && !args.skip_bad_rows {
        writeln!(
            out,
            "{} bad row(s) in the people file: nothing selected (--skip-bad-rows to go on without them)",
            perrs.len()
        )?;
        return Ok(ExitCode::from(1));
    }
    for problem in features.check_panel_size(args.panel) {
        writeln!(out, "warning: {problem}")?;
    }
    let algorithm = match args.algorithm {
        AlgorithmArg::Maximin => Algorithm::Maximin,
        AlgorithmArg::Legacy => Algorithm::Legacy,
    };
    let mut req = Request::new(args.panel, algorithm, &args.seed);
    req.tickets = args.tickets;
    req.max_attempts = args.max_attempts;
    let selection = match select(&features, &pool, &req)? {
        Outcome::Infeasible(r) => {
            writeln!(
                out,
                "The quotas admit no panel of {}. The smallest relaxation (cost {:.3}; lowering a minimum m by one costs 1 + 2/m, raising a maximum costs 1):",
                args.panel, r.cost
            )?;
            for c in &r.changes {
                writeln!(out, "  {c}")?;
            }
            writeln!(out, "Nothing selected: change the quotas and run again.")?;
            return Ok(ExitCode::from(2));
        }
        Outcome::Selected(s) => s,
    };
    let problems = check_panel(&features, &pool, args.panel, &selection.panel);
    if !problems.is_empty() {
        anyhow::bail!(
            "internal error: the panel breaks rules: {}",
            problems.join("; ")
        );
    }
    write_summary(out, args, &features, &pool, &selection)?;
    if let Some(path) = &args.selected {
        write_people(path, &pool, &selection.panel)?;
    }
    if let Some(path) = &args.remaining {
        let mut gone = vec![false; pool.people.len()];
        for &i in &selection.panel {
            gone[i] = true;
        }
        for h in &pool.households {
            if h.iter().any(|&i| gone[i]) {
                for &i in h {
                    gone[i] = true;
                }
            }
        }
        let rest: Vec<usize> = (0..pool.people.len()).filter(|&i| !gone[i]).collect();
        write_people(path, &pool, &rest)?;
    }
    if let Some(path) = &args.probabilities {
        write_probabilities(path, &pool, &selection)?;
    }
    if let Some(path) = &args.tickets_out {
        let mut w =
            csv::Writer::from_path(path).with_context(|| format!("writing {}", path.display()))?;
        w.write_record(["ticket", "panel_members"])?;
        for (t, panel) in selection.ticket_panels.iter().enumerate() {
            let ids: Vec<&str> = panel.iter().map(|&i| pool.people[i].id.as_str()).collect();
            w.write_record([t.to_string(), ids.join(" ")])?;
        }
        w.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

fn write_summary(
    out: &mut dyn Write,
    args: &Args,
    features: &Features,
    pool: &Pool,
    sel: &crate::Selection,
) -> anyhow::Result<()> {
    writeln!(
        out,
        "pool: {} people, {} household(s) of two or more; panel: {}",
        pool.people.len(),
        pool.households.len(),
        args.panel
    )?;
    let expected: Option<Vec<f64>> = sel.distribution.as_ref().map(|d| {
        let mut e = vec![0.0; features.num_categories()];
        for (i, p) in d.probabilities.iter().enumerate() {
            for &c in &pool.people[i].categories {
                e[c] += p;
            }
        }
        e
    });
    if let Some(d) = &sel.distribution {
        writeln!(
            out,
            "maximin: smallest selection probability {:.9} (LP bound {:.9}{}), {} panels in the distribution",
            d.min_probability(),
            d.upper_bound,
            if d.proven_optimal { ", optimal" } else { ", NOT proven optimal" },
            d.panels.len()
        )?;
        if !d.uncoverable.is_empty() {
            writeln!(
                out,
                "{} person(s) fit no panel and cannot be selected",
                d.uncoverable.len()
            )?;
        }
        let m = sel.tickets.len();
        let t = sel.ticket.unwrap_or(0);
        writeln!(
            out,
            "draw: {m} tickets; SHA-256(seed {:?}) = {}; ticket = that number mod {m} = {t}",
            args.seed,
            lottery::seed_digest(&args.seed)
        )?;
    } else {
        writeln!(
            out,
            "legacy: one panel, drawn with the seed {:?}",
            args.seed
        )?;
    }
    let counts = category_counts(features, pool, &sel.panel);
    let in_pool = category_counts(features, pool, &(0..pool.people.len()).collect::<Vec<_>>());
    writeln!(out, "quota\tmin\tmax\tpool\tselected\texpected")?;
    for (c, q) in features.quotas().iter().enumerate() {
        let exp = expected
            .as_ref()
            .map_or("-".to_string(), |e| format!("{:.2}", e[c]));
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}",
            features.label(c),
            q.min,
            q.max,
            in_pool[c],
            counts[c],
            exp
        )?;
    }
    let ids: Vec<&str> = sel
        .panel
        .iter()
        .map(|&i| pool.people[i].id.as_str())
        .collect();
    writeln!(out, "selected: {}", ids.join(" "))?;
    Ok(())
}

fn write_people(path: &Path, pool: &Pool, who: &[usize]) -> anyhow::Result<()> {
    let mut w =
        csv::Writer::from_path(path).with_context(|| format!("writing {}", path.display()))?;
    let mut header = vec![pool.id_column.clone()];
    header.extend(pool.kept_columns.iter().cloned());
    header.extend(pool.feature_columns.iter().cloned());
    w.write_record(&header)?;
    for &i in who {
        let p = &pool.people[i];
        let mut row = vec![p.id.clone()];
        row.extend(p.kept.iter().cloned());
        row.extend(p.feature_text.iter().cloned());
        w.write_record(&row)?;
    }
    w.flush()?;
    Ok(())
}

fn write_probabilities(path: &Path, pool: &Pool, sel: &crate::Selection) -> anyhow::Result<()> {
    let mut w =
        csv::Writer::from_path(path).with_context(|| format!("writing {}", path.display()))?;
    let Some(dist) = &sel.distribution else {
        w.write_record([pool.id_column.as_str(), "selected"])?;
        for (i, p) in pool.people.iter().enumerate() {
            let s = u8::from(sel.panel.contains(&i));
            w.write_record([p.id.clone(), s.to_string()])?;
        }
        w.flush()?;
        return Ok(());
    };
    let by_ticket = lottery::ticket_probabilities(&sel.ticket_panels, pool.people.len());
    w.write_record([
        pool.id_column.as_str(),
        "probability",
        "ticket_probability",
        "selected",
    ])?;
    for (i, p) in pool.people.iter().enumerate() {
        let s = u8::from(sel.panel.contains(&i));
        w.write_record([
            p.id.clone(),
            format!("{:.9}", dist.probabilities[i]),
            format!("{:.9}", by_ticket[i]),
            s.to_string(),
        ])?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct T {
        #[command(subcommand)]
        c: Command,
    }

    #[derive(clap::Subcommand)]
    enum Command {
        Sortition(Args),
    }

    #[test]
    fn parses_the_documented_command_line() {
        let t = T::try_parse_from([
            "guildhall",
            "sortition",
            "--features",
            "f.csv",
            "--people",
            "p.csv",
            "--panel",
            "22",
            "--algorithm",
            "legacy",
            "--seed",
            "s",
            "--selected",
            "sel.csv",
            "--remaining",
            "rem.csv",
            "--probabilities",
            "prob.csv",
            "--household",
            "address,postcode",
        ])
        .unwrap();
        let Command::Sortition(a) = t.c;
        assert_eq!(a.panel, 22);
        assert_eq!(a.algorithm, AlgorithmArg::Legacy);
        assert_eq!(a.household, vec!["address", "postcode"]);
        assert_eq!(a.selected.as_deref(), Some(Path::new("sel.csv")));
        assert!(T::try_parse_from(["guildhall", "sortition", "--features", "f.csv"]).is_err());
    }
}
