//! `guildhall pb …`: the offline participatory-budgeting tool.

use crate::check::check_election;
use crate::number::parse_decimal;
use crate::reader::{read_file, read_file_for_count, Severity};
use crate::rules::{tally, Baseline, Completion, Rule, TallyOptions, Ties, Utility};
use anyhow::Context;
use std::io::Write;
use std::process::ExitCode;

fn parse_ties(s: &str) -> Result<Ties, String> {
    match s {
        "pabutools" | "lexico" => Ok(Ties::Pabutools),
        "file" => Ok(Ties::File),
        "equalshares" => Ok(Ties::Equalshares { seed: 0 }),
        _ => match s.strip_prefix("equalshares:") {
            Some(seed) => seed
                .parse()
                .map(|seed| Ties::Equalshares { seed })
                .map_err(|_| format!("bad seed {seed:?}")),
            None => Err("expected pabutools, file, equalshares or equalshares:SEED".into()),
        },
    }
}

/// The `guildhall pb` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Validate a Pabulib `.pb` file (pabulib-checker's checks, with line numbers).
    Check {
        /// The file to check.
        file: std::path::PathBuf,
        /// Print the findings as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Count a Pabulib `.pb` file with a rule.
    Tally {
        /// The file to count.
        file: std::path::PathBuf,
        /// The rule.
        #[arg(long, value_enum)]
        rule: Rule,
        /// Utilities (MES, max-welfare, greedy-utilitarian).
        #[arg(long, value_enum, default_value = "cost")]
        utility: Utility,
        /// MES completion.
        #[arg(long, value_enum, default_value = "none")]
        completion: Completion,
        /// MES comparison step with a greedy baseline (`votes`: by approval count, as the
        /// equalshares compute tool; `cardinality`: approvals ÷ cost, pabutools' recipe).
        #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "votes")]
        comparison: Option<Baseline>,
        /// Tie-breaking: pabutools (id as string), file (file order), equalshares[:SEED]
        /// (lowest cost, most votes, then a lot drawn from SEED).
        #[arg(long, default_value = "pabutools", value_parser = parse_ties)]
        ties: Ties,
        /// Add1 increment of the per-voter endowment (currency units).
        #[arg(long, default_value = "1")]
        increment: String,
        /// Start Add1 from floor(B/n).
        #[arg(long)]
        integral_start: bool,
        /// Print the whole count with its explanation as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs one `guildhall pb` subcommand.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let code = run_to(cmd, &mut out)?;
    out.flush()?;
    Ok(code)
}

/// Runs one subcommand, writing to `out`.
pub fn run_to(cmd: Command, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Check { file, json } => {
            let (e, mut issues) = read_file(&file)?;
            issues.extend(check_election(&e));
            let errors = issues
                .iter()
                .filter(|i| i.severity == Severity::Error)
                .count();
            if json {
                let v = serde_json::json!({
                    "file": file.display().to_string(),
                    "valid": errors == 0,
                    "errors": errors,
                    "warnings": issues.len() - errors,
                    "issues": issues,
                });
                serde_json::to_writer_pretty(&mut *out, &v)?;
                writeln!(out)?;
            } else {
                for i in &issues {
                    writeln!(out, "{}: {i}", file.display())?;
                }
                writeln!(
                    out,
                    "{}: {} ({errors} errors, {} warnings)",
                    file.display(),
                    if errors == 0 { "valid" } else { "invalid" },
                    issues.len() - errors
                )?;
            }
            Ok(if errors == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Tally {
            file,
            rule,
            utility,
            completion,
            comparison,
            ties,
            increment,
            integral_start,
            json,
        } => {
            let (e, issues) = read_file_for_count(&file)?;
            let errors: Vec<_> = issues
                .iter()
                .filter(|i| i.severity == Severity::Error)
                .collect();
            for i in errors.iter().take(20) {
                eprintln!("{}: {i}", file.display());
            }
            let increment = parse_decimal(&increment)
                .map_err(|_| anyhow::anyhow!("--increment {increment:?} is not a number"))?;
            let opts = TallyOptions {
                rule,
                utility,
                completion,
                comparison,
                ties,
                increment,
                integral_start,
            };
            let t =
                tally(&e, &opts, json).with_context(|| format!("counting {}", file.display()))?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &t)?;
                writeln!(out)?;
            } else {
                for id in &t.selected_ids {
                    writeln!(out, "{id}")?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
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

    fn data(name: &str) -> String {
        format!(
            "{}/../../../shared/data/pabulib/{name}",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    fn run_args(args: &[&str]) -> (ExitCode, String) {
        let t = T::try_parse_from(args).unwrap();
        let mut buf = Vec::new();
        let code = run_to(t.c, &mut buf).unwrap();
        (code, String::from_utf8(buf).unwrap())
    }

    #[test]
    fn tally_prints_ids_in_selection_order() {
        let f = data("Netherlands_Assen_2024.pb");
        let (code, out) = run_args(&["x", "tally", &f, "--rule", "mes", "--completion", "add1"]);
        assert_eq!(code, ExitCode::SUCCESS);
        let ids: Vec<&str> = out.lines().collect();
        // pabutools 1.2.3 selection order
        assert_eq!(ids, ["3", "9", "11", "2", "13", "14", "5", "6", "12"]);
    }

    #[test]
    fn tally_json_has_explanation() {
        let f = data("Netherlands_Assen_2024.pb");
        let (_, out) = run_args(&[
            "x",
            "tally",
            &f,
            "--rule",
            "mes",
            "--completion",
            "add1",
            "--json",
        ]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["selected_ids"].as_array().unwrap().len(), 9);
        let ex = &v["explanation"];
        assert_eq!(ex["voters"].as_array().unwrap().len(), 84);
        assert!(!ex["rounds"][0]["payments"].as_array().unwrap().is_empty());
        assert_eq!(ex["unfunded"].as_array().unwrap().len(), 14 - 9);
    }

    #[test]
    fn parses_options() {
        let t = T::try_parse_from([
            "x",
            "tally",
            "f.pb",
            "--rule",
            "mes",
            "--comparison",
            "--ties",
            "equalshares:7",
            "--completion",
            "add1-utilitarian",
        ])
        .unwrap();
        match t.c {
            Command::Tally {
                comparison,
                ties,
                completion,
                ..
            } => {
                assert_eq!(comparison, Some(Baseline::Votes));
                assert_eq!(ties, Ties::Equalshares { seed: 7 });
                assert_eq!(completion, Completion::Add1Utilitarian);
            }
            Command::Check { .. } => panic!("wrong command"),
        }
        assert!(T::try_parse_from(["x", "tally", "f.pb", "--rule", "nope"]).is_err());
        assert!(
            T::try_parse_from(["x", "tally", "f.pb", "--rule", "mes", "--ties", "dice"]).is_err()
        );
    }

    #[test]
    fn check_reports_bad_lines_with_numbers() {
        let dir = std::env::temp_dir().join(format!("pb-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("bad.pb");
        std::fs::write(
            &f,
            "META\nkey;value\ndescription;d\ncountry;c\nunit;u\ninstance;i\nnum_projects;2\nnum_votes;2\nbudget;100\nvote_type;approval\nrule;greedy\ndate_begin;2026\ndate_end;2026\nPROJECTS\nproject_id;cost\na;60\nb;50,5\nVOTES\nvoter_id;vote\n1;a,a\n2;a\n",
        )
        .unwrap();
        let (code, out) = run_args(&["x", "check", f.to_str().unwrap()]);
        assert_eq!(code, ExitCode::from(1));
        assert!(out.contains("line 17: error [comma-in-float]"), "{out}");
        assert!(out.contains("line 20: error [duplicate-in-vote]"), "{out}");
        assert!(out.contains("invalid"), "{out}");
        let (_, out) = run_args(&["x", "tally", f.to_str().unwrap(), "--rule", "greedy"]);
        assert_eq!(out, "a\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn check_reports_valid_file() {
        let f = data("Poland_Swiecie_2023.pb");
        let (code, out) = run_args(&["x", "check", &f]);
        assert_eq!(code, ExitCode::SUCCESS, "{out}");
        assert!(out.contains("valid (0 errors"));
    }
}
