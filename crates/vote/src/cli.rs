//! `guildhall stv|schulze|delegate …`: the offline election and delegation tools.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::ballot::{read_path, Election};
use crate::stv::{count, Rule};

/// The election subcommands, flattened into the top level of `guildhall`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Count a single transferable vote election (BLT, PrefLib .soi/.toi or CSV).
    ///
    /// Without --json or --report: the elected names, one per line, in order of election.
    Stv {
        /// The ballot file (format by extension: .blt, .soi, .toi, .csv).
        file: PathBuf,
        /// The counting rule.
        #[arg(long, value_enum, default_value = "scottish")]
        rule: Rule,
        /// Print the full stage-by-stage report as JSON.
        #[arg(long)]
        json: bool,
        /// Print the full stage-by-stage report as text.
        #[arg(long, conflicts_with = "json")]
        report: bool,
        /// Override the number of seats (PrefLib and CSV files do not carry it).
        #[arg(long)]
        seats: Option<usize>,
        /// Seed of the lot for ties that no earlier stage resolves.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Rank the candidates by the Schulze method (winning votes).
    Schulze {
        /// The ballot file (format by extension: .blt, .soi, .toi, .csv).
        file: PathBuf,
        /// Print the report (pairwise counts, strongest paths, ranking) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Count a board with stakeholder classes (reserved seats) and open seats.
    ///
    /// Reserved seats are counted first, class by class in the order given, each on its own
    /// class's ballots; then the open seats on everyone's ballots, with those already
    /// elected withdrawn.
    Stakeholder {
        /// A class as NAME:SEATS:FILE (repeatable, in counting order). Candidates marked
        /// withdrawn in FILE are not eligible for the class's seats.
        #[arg(long = "class", required = true)]
        classes: Vec<String>,
        /// Number of open seats.
        #[arg(long, default_value_t = 0)]
        open: usize,
        /// Ballots of the open electorate (default: all classes' ballots together).
        #[arg(long)]
        open_ballots: Option<PathBuf>,
        /// The counting rule.
        #[arg(long, value_enum, default_value = "scottish")]
        rule: Rule,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Seed of the lot for ties that no earlier stage resolves.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Liquid delegation.
    Delegate {
        /// What to do.
        #[command(subcommand)]
        action: DelegateCommand,
    },
}

/// `guildhall delegate …`
#[derive(Debug, clap::Subcommand)]
pub enum DelegateCommand {
    /// Resolve delegations for one issue: each direct voter's weight and every voter's chain.
    Resolve {
        /// Delegations CSV: `truster,scope,target,trustee` (scope unit|area|issue; target
        /// the unit, area or issue id; empty trustee = explicit "no delegation").
        #[arg(long)]
        delegations: PathBuf,
        /// Direct voters: one voter id per line.
        #[arg(long)]
        voters: PathBuf,
        /// The issue being decided.
        #[arg(long)]
        issue: String,
        /// The unit the area belongs to (unit rows naming another unit are ignored; without
        /// this option every unit row applies).
        #[arg(long)]
        unit: Option<String>,
        /// The area the issue belongs to.
        #[arg(long)]
        area: String,
        /// Explain this voter's chain (repeatable).
        #[arg(long)]
        explain: Vec<String>,
        /// Print the resolution as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs one election subcommand.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    run_to(cmd, &mut out)
}

fn load(file: &Path) -> anyhow::Result<Election> {
    let e = read_path(file).with_context(|| format!("reading {}", file.display()))?;
    for bad in &e.invalid {
        eprintln!(
            "{}:{}: invalid ballot ({} paper(s)): {}",
            file.display(),
            bad.line,
            bad.weight,
            bad.reason
        );
    }
    Ok(e)
}

/// Runs one subcommand, writing its output to `out`.
pub fn run_to(cmd: Command, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Stv {
            file,
            rule,
            json,
            report,
            seats,
            seed,
        } => {
            let mut e = load(&file)?;
            if let Some(s) = seats {
                e.seats = s;
            }
            let r =
                count(&e, rule, seed).with_context(|| format!("counting {}", file.display()))?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &r)?;
                writeln!(out)?;
            } else if report {
                write!(out, "{}", r.to_text())?;
            } else {
                for name in r.elected_names() {
                    writeln!(out, "{name}")?;
                }
            }
        }
        Command::Schulze { file, json } => {
            let e = load(&file)?;
            let r = crate::methods::schulze(&e);
            if json {
                serde_json::to_writer_pretty(&mut *out, &r)?;
                writeln!(out)?;
            } else {
                write!(out, "{}", r.to_text())?;
            }
        }
        Command::Stakeholder {
            classes,
            open,
            open_ballots,
            rule,
            json,
            seed,
        } => {
            let mut parsed = Vec::new();
            for spec in &classes {
                let mut it = spec.splitn(3, ':');
                let (Some(name), Some(seats), Some(file)) = (it.next(), it.next(), it.next())
                else {
                    anyhow::bail!("--class {spec:?}: expected NAME:SEATS:FILE");
                };
                let seats: usize = seats
                    .parse()
                    .with_context(|| format!("--class {spec:?}: seats {seats:?}"))?;
                parsed.push((name.to_string(), seats, load(Path::new(file))?));
            }
            let open_e = match &open_ballots {
                Some(f) => Some(load(f)?),
                None => None,
            };
            let se = crate::stakeholder::from_elections("board", &parsed, open, open_e.as_ref());
            let r = crate::stakeholder::count_stakeholder(&se, rule, seed)?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &r)?;
                writeln!(out)?;
            } else {
                write!(out, "{}", r.to_text())?;
            }
        }
        Command::Delegate { action } => match action {
            DelegateCommand::Resolve {
                delegations,
                voters,
                issue,
                unit,
                area,
                explain,
                json,
            } => crate::delegate::cli_resolve(
                &delegations,
                unit.as_deref(),
                &voters,
                &issue,
                &area,
                &explain,
                json,
                out,
            )?,
        },
    }
    Ok(ExitCode::SUCCESS)
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

    fn data(rel: &str) -> String {
        format!("../../../shared/data/ballots/{rel}")
    }

    fn run_args(args: &[&str]) -> String {
        let t = T::try_parse_from(args).unwrap();
        let mut out = Vec::new();
        run_to(t.c, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn stv_prints_elected_names_in_order() {
        let f = data("scotland-2017/shetland_2017_ward6.blt");
        let out = run_args(&["t", "stv", &f, "--rule", "scottish"]);
        assert_eq!(
            out,
            "Malcolm John BELL (Ind)\nStephen Arthur LEASK (Ind)\nJohn Finlay Sinclair FRASER (Ind)\n"
        );
        let out = run_args(&["t", "stv", &f, "--rule", "meek"]);
        assert_eq!(out.lines().count(), 3);
    }

    #[test]
    fn stv_json_has_stages() {
        let f = data("scotland-2017/glasgow_2017_ward22.blt");
        let out = run_args(&["t", "stv", &f, "--rule", "wigm", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["rule"], "wigm");
        assert_eq!(v["elected"].as_array().unwrap().len(), 3);
        assert!(v["stages"].as_array().unwrap().len() >= 3);
        let out = run_args(&["t", "stv", &f, "--report"]);
        assert!(out.contains("Stage 7"), "{out}");
    }

    #[test]
    fn rejects_unknown_rule_and_reports_missing_file() {
        assert!(T::try_parse_from(["t", "stv", "x.blt", "--rule", "borda"]).is_err());
        let t = T::try_parse_from(["t", "stv", "/nonexistent.blt"]).unwrap();
        let err = run_to(t.c, &mut Vec::new()).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent.blt"));
    }

    #[test]
    fn stakeholder_counts_classes_then_open() {
        let dir = std::env::temp_dir().join(format!("vote-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let w = dir.join("w.blt");
        let d = dir.join("d.blt");
        std::fs::write(&w, "3 1\n-3\n5 1 2 0\n3 2 0\n0\nAnn\nBob\nCy\nw\n").unwrap();
        std::fs::write(&d, "2 1\n4 2 1 0\n0\nCy\nDee\nd\n").unwrap();
        let wc = format!("workers:1:{}", w.display());
        let dc = format!("donors:1:{}", d.display());
        let out = run_args(&[
            "t",
            "stakeholder",
            "--class",
            &wc,
            "--class",
            &dc,
            "--open",
            "1",
        ]);
        assert!(
            out.contains("Board:\n  Ann (workers)\n  Dee (donors)\n  Bob (open)\n"),
            "{out}"
        );
        let t = T::try_parse_from(["t", "stakeholder", "--class", "bad"]).unwrap();
        assert!(run_to(t.c, &mut Vec::new()).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn delegate_resolve_explains_chains() {
        let dir = std::env::temp_dir().join(format!("vote-del-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dl = dir.join("d.csv");
        let vs = dir.join("v.txt");
        std::fs::write(
            &dl,
            "truster,scope,target,trustee\nann,unit,,bob\nbob,area,a1,cy\ncy,issue,i1,\ncy,unit,,ann\ndan,unit,,eve\neve,unit,,dan\n",
        )
        .unwrap();
        std::fs::write(&vs, "cy\n").unwrap();
        let (d, v) = (dl.display().to_string(), vs.display().to_string());
        let args = [
            "t",
            "delegate",
            "resolve",
            "--delegations",
            &d,
            "--voters",
            &v,
            "--issue",
            "i1",
            "--area",
            "a1",
            "--explain",
            "ann",
            "--explain",
            "dan",
        ];
        let out = run_args(&args);
        assert!(
            out.contains(
                "1 direct, 2 delegated, 0 abstained, 0 lost at dead ends, 2 lost in cycles"
            ),
            "{out}"
        );
        assert!(out.contains("cy\t3\n"), "{out}");
        assert!(
            out.contains("bob delegates (area delegation) to cy"),
            "{out}"
        );
        assert!(
            out.contains("not cast: the chain runs into a cycle"),
            "{out}"
        );
        let mut json_args = args.to_vec();
        json_args.push("--json");
        let v: serde_json::Value = serde_json::from_str(&run_args(&json_args)).unwrap();
        assert_eq!(v["summary"]["cycle"], 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stv_reads_csv_with_seats_override_and_skips_invalid_rows() {
        let dir = std::env::temp_dir().join(format!("vote-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("b.csv");
        std::fs::write(&f, "weight,Ann,Bob,Cy\n5,1,2,\n4,,1,2\n3,2,,1\n9,x,1,\n").unwrap();
        let p = f.display().to_string();
        let out = run_args(&["t", "stv", &p, "--seats", "2", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["seats"], 2);
        assert_eq!(v["valid_ballots"], 12);
        assert_eq!(v["invalid_ballots"], 9);
        assert_eq!(v["elected"].as_array().unwrap().len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn flattens_into_a_top_level_command_cleanly() {
        use clap::CommandFactory;
        #[derive(clap::Parser)]
        struct Top {
            #[command(subcommand)]
            c: TopCmd,
        }
        #[derive(clap::Subcommand)]
        enum TopCmd {
            #[command(flatten)]
            Vote(Command),
            Serve,
        }
        Top::command().debug_assert();
        let t = Top::try_parse_from([
            "guildhall",
            "delegate",
            "resolve",
            "--delegations",
            "d",
            "--voters",
            "v",
            "--issue",
            "i",
            "--area",
            "a",
        ]);
        assert!(matches!(
            t.map(|t| t.c),
            Ok(TopCmd::Vote(Command::Delegate { .. }))
        ));
        T::command().debug_assert();
    }

    #[test]
    fn schulze_prints_ranking() {
        let f = data("preflib/00002-00000005.soi");
        let out = run_args(&["t", "schulze", &f]);
        assert!(out.starts_with("1. Sam Hocevar\n"), "{out}");
    }
}
