//! Timing harness for bench/vote (run with `--release`):
//!
//! - `vote_bench stv RULE FILE` — read, count, print the elected (sorted) and the times;
//! - `vote_bench report RULE FILE` — the text stage-by-stage report;
//! - `vote_bench schulze FILE` — Schulze ranking and times;
//! - `vote_bench delegate VOTERS DEPTH` — a synthetic delegation graph (chains `DEPTH`
//!   long, mixed scopes, some explicit "no delegation", some cycles) resolved and timed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Instant;

use guildhall_vote::ballot::read_path;
use guildhall_vote::delegate::{Delegation, Resolver, Scope, Subject};
use guildhall_vote::methods::schulze;
use guildhall_vote::stv::{count, Rule};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("stv") => {
            let rule = match args[2].as_str() {
                "scottish" => Rule::Scottish,
                "meek" => Rule::Meek,
                _ => Rule::Wigm,
            };
            let t0 = Instant::now();
            let e = read_path(Path::new(&args[3])).unwrap();
            let t1 = Instant::now();
            let r = count(&e, rule, 0).unwrap();
            let t2 = Instant::now();
            let mut names = r.elected_names();
            names.sort_unstable();
            println!("elected\t{}", names.join("|"));
            println!(
                "lines\t{}\tballots\t{}\tstages\t{}",
                e.ballots.len(),
                e.valid_weight(),
                r.stages.len()
            );
            println!(
                "read_s\t{:.3}\tcount_s\t{:.3}",
                (t1 - t0).as_secs_f64(),
                (t2 - t1).as_secs_f64()
            );
        }
        Some("report") => {
            let rule = match args[2].as_str() {
                "scottish" => Rule::Scottish,
                "meek" => Rule::Meek,
                _ => Rule::Wigm,
            };
            let e = read_path(Path::new(&args[3])).unwrap();
            print!("{}", count(&e, rule, 0).unwrap().to_text());
        }
        Some("schulze") => {
            let t0 = Instant::now();
            let e = read_path(Path::new(&args[2])).unwrap();
            let t1 = Instant::now();
            let r = schulze(&e);
            let t2 = Instant::now();
            let w: Vec<&str> = r
                .winners
                .iter()
                .map(|&c| e.candidates[c].as_str())
                .collect();
            println!("winners\t{}", w.join("|"));
            println!(
                "read_s\t{:.3}\tcount_s\t{:.3}",
                (t1 - t0).as_secs_f64(),
                (t2 - t1).as_secs_f64()
            );
        }
        Some("delegate") => {
            let n: u32 = args[2].parse().unwrap();
            let depth: u32 = args[3].parse().unwrap();
            let mut ds = Vec::with_capacity(n as usize + n as usize / 10);
            // Chains of `depth` voters: i delegates to i + 1; the last of each chain votes
            // directly. Every 7th voter delegates by area (overriding a unit delegation to a
            // random-ish other voter), every 101st chain is closed into a cycle with nobody
            // voting, and every 13th voter sets "no delegation" for another area (ignored).
            let mut direct = Vec::new();
            for i in 0..n {
                let chain = i / depth;
                let last = i % depth == depth - 1 || i == n - 1;
                if last {
                    if chain % 101 == 100 {
                        ds.push(Delegation {
                            truster: i,
                            scope: Scope::Unit(0),
                            trustee: Some(chain * depth),
                        });
                    } else {
                        direct.push(i);
                    }
                    continue;
                }
                if i % 7 == 0 {
                    ds.push(Delegation {
                        truster: i,
                        scope: Scope::Unit(0),
                        trustee: Some((i.wrapping_mul(2_654_435_761)) % n),
                    });
                    ds.push(Delegation {
                        truster: i,
                        scope: Scope::Area(1),
                        trustee: Some(i + 1),
                    });
                } else {
                    ds.push(Delegation {
                        truster: i,
                        scope: Scope::Unit(0),
                        trustee: Some(i + 1),
                    });
                }
                if i % 13 == 0 {
                    ds.push(Delegation {
                        truster: i,
                        scope: Scope::Area(2),
                        trustee: None,
                    });
                }
            }
            let t0 = Instant::now();
            let subject = Subject {
                unit: 0,
                area: 1,
                issue: 1,
            };
            let r = Resolver::resolve(n as usize, &ds, subject, &direct);
            let t1 = Instant::now();
            let s = r.summary;
            println!(
                "voters\t{n}\tdepth\t{depth}\tdelegations\t{}\tdirect\t{}\tdelegated\t{}\tcycle\t{}\tdead_end\t{}",
                ds.len(),
                s.direct,
                s.delegated,
                s.cycle,
                s.dead_end
            );
            println!(
                "max_weight\t{}",
                r.weights.iter().max().copied().unwrap_or(0)
            );
            println!("resolve_s\t{:.3}", (t1 - t0).as_secs_f64());
        }
        _ => {
            eprintln!("usage: vote_bench stv RULE FILE | schulze FILE | delegate VOTERS DEPTH");
            std::process::exit(2);
        }
    }
}
