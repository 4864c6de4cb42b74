#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `guildhall sortition` command, run through `cli::run_to` on files in a temp dir.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use guildhall_sortition::cli::{run_to, Args};
use guildhall_sortition::lottery;

#[derive(clap::Parser)]
struct T {
    #[command(subcommand)]
    c: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    Sortition(Args),
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("guildhall-sortition-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// 60 people, gender × age, one in six sharing an address with the person before.
fn write_pool(d: &Path, features: &str) {
    std::fs::write(d.join("features.csv"), features).unwrap();
    let mut s = String::from("id,first_name,address,gender,age\n");
    let mut x: u64 = 7;
    for i in 0..60 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let g = ["female", "male", "female", "male", "other"][((x >> 33) % 5) as usize];
        let a = ["young", "middle", "old"][((x >> 40) % 3) as usize];
        let addr = if i % 6 == 5 { i - 1 } else { i };
        s.push_str(&format!("p{i},name{i},{addr} Mill Street,{g},{a}\n"));
    }
    std::fs::write(d.join("people.csv"), s).unwrap();
}

const FEATURES: &str = "feature,value,min,max\n\
    gender,female,3,5\ngender,male,3,5\ngender,other,0,2\n\
    age,young,2,4\nage,middle,2,4\nage,old,2,4\n";

fn run(d: &Path, extra: &[&str]) -> (ExitCode, String) {
    let f = d.join("features.csv");
    let p = d.join("people.csv");
    let mut argv: Vec<String> = vec![
        "guildhall".into(),
        "sortition".into(),
        "--features".into(),
        f.display().to_string(),
        "--people".into(),
        p.display().to_string(),
        "--panel".into(),
        "9".into(),
        "--keep".into(),
        "first_name".into(),
    ];
    argv.extend(extra.iter().map(|s| s.to_string()));
    let Command::Sortition(args) = T::try_parse_from(argv).unwrap().c;
    let mut out = Vec::new();
    let code = run_to(&args, &mut out).unwrap();
    (code, String::from_utf8(out).unwrap())
}

fn read_csv(path: &Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    r.records()
        .map(|x| x.unwrap().iter().map(String::from).collect())
        .collect()
}

#[test]
fn maximin_writes_selected_remaining_probabilities_and_tickets() {
    let d = dir("maximin");
    write_pool(&d, FEATURES);
    let s = |n: &str| d.join(n).display().to_string();
    let (code, out) = run(
        &d,
        &[
            "--seed",
            "town hall 2026",
            "--selected",
            &s("sel.csv"),
            "--remaining",
            &s("rem.csv"),
            "--probabilities",
            &s("prob.csv"),
            "--tickets-out",
            &s("tickets.csv"),
        ],
    );
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
    let sel = read_csv(&d.join("sel.csv"));
    let rem = read_csv(&d.join("rem.csv"));
    let prob = read_csv(&d.join("prob.csv"));
    let tickets = read_csv(&d.join("tickets.csv"));
    assert_eq!(sel.len(), 9);
    assert_eq!(sel[0].len(), 4, "id, kept column, two features");
    assert_eq!(sel.len() + rem.len(), 60);
    assert_eq!(prob.len(), 60);
    let total: f64 = prob.iter().map(|r| r[1].parse::<f64>().unwrap()).sum();
    assert!((total - 9.0).abs() < 1e-6);
    let chosen: usize = prob.iter().map(|r| r[3].parse::<usize>().unwrap()).sum();
    assert_eq!(chosen, 9);
    // The published check: ticket = SHA-256(seed) mod m, and that ticket's panel is the panel.
    assert_eq!(tickets.len(), 1000);
    let t = lottery::draw_ticket("town hall 2026", 1000);
    assert!(
        out.contains(&format!("ticket = that number mod 1000 = {t}")),
        "{out}"
    );
    let mut from_table: Vec<&str> = tickets[t][1].split(' ').collect();
    let mut selected: Vec<&str> = sel.iter().map(|r| r[0].as_str()).collect();
    from_table.sort_unstable();
    selected.sort_unstable();
    assert_eq!(from_table, selected);
    // The quota report lists every quota.
    for q in ["gender=female", "gender=other", "age=old"] {
        assert!(out.contains(q), "{out}");
    }
    // Same seed, same panel.
    let (_, again) = run(&d, &["--seed", "town hall 2026"]);
    let line = |o: &str| {
        o.lines()
            .find(|l| l.starts_with("selected:"))
            .unwrap()
            .to_string()
    };
    assert_eq!(line(&out), line(&again));
}

#[test]
fn households_and_legacy() {
    let d = dir("households");
    write_pool(&d, FEATURES);
    let s = |n: &str| d.join(n).display().to_string();
    for algorithm in ["maximin", "legacy"] {
        let (code, out) = run(
            &d,
            &[
                "--seed",
                "x",
                "--algorithm",
                algorithm,
                "--household",
                "address",
                "--selected",
                &s("sel.csv"),
                "--remaining",
                &s("rem.csv"),
            ],
        );
        assert_eq!(code, ExitCode::SUCCESS, "{out}");
        let people = read_csv(&d.join("people.csv"));
        let sel = read_csv(&d.join("sel.csv"));
        let rem = read_csv(&d.join("rem.csv"));
        let address = |id: &str| people.iter().find(|r| r[0] == id).unwrap()[2].clone();
        let mut seen = std::collections::HashSet::new();
        for r in &sel {
            assert!(
                seen.insert(address(&r[0])),
                "two selected from one household"
            );
        }
        // Housemates of the selected are not in the remaining list.
        for r in &rem {
            assert!(!seen.contains(&address(&r[0])));
        }
    }
}

#[test]
fn infeasible_quotas_print_the_relaxation() {
    let d = dir("infeasible");
    write_pool(
        &d,
        "feature,value,min,max\ngender,female,6,6\ngender,male,6,6\ngender,other,0,0\n\
         age,young,3,3\nage,middle,3,3\nage,old,3,3\n",
    );
    let sel = d.join("sel.csv");
    let (code, out) = run(
        &d,
        &["--seed", "x", "--selected", &sel.display().to_string()],
    );
    assert_eq!(code, ExitCode::from(2), "{out}");
    assert!(out.contains("smallest relaxation"), "{out}");
    assert!(out.contains("lower min 6 →"), "{out}");
    assert!(!sel.exists());
}

#[test]
fn bad_rows_are_listed_by_line_and_stop_the_run_unless_skipped() {
    let d = dir("bad");
    write_pool(&d, FEATURES);
    let mut people = std::fs::read_to_string(d.join("people.csv")).unwrap();
    people.push_str("q1,n,1 Elm,femme,young\nq2,n,2 Elm,male,\n");
    std::fs::write(d.join("people.csv"), people).unwrap();
    let (code, out) = run(&d, &["--seed", "x"]);
    assert_eq!(code, ExitCode::from(1));
    assert!(
        out.contains("people.csv:62: unknown value \"femme\""),
        "{out}"
    );
    assert!(out.contains("people.csv:63: missing value"), "{out}");
    let (code, out) = run(&d, &["--seed", "x", "--skip-bad-rows"]);
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
}
