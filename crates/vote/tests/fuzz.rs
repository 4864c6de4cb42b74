//! Property tests: the readers never panic, writers and readers round-trip, a malformed
//! ballot line is reported by line and the rest is kept, and the counts keep their
//! invariants on random profiles.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use guildhall_vote::ballot::{
    read_blt, read_csv, read_preflib, write_blt, write_csv, write_preflib, Ballot, Election,
};
use guildhall_vote::methods::schulze;
use guildhall_vote::stv::{count, Rule};
use proptest::prelude::*;

/// A ballot over `n` candidates: a random order prefix, optionally with ties (tie groups
/// sorted by candidate so every format writes them the same way).
fn ballot(n: usize, ties: bool) -> impl Strategy<Value = Ballot> {
    (
        1u64..1000,
        Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
        1..=n,
        proptest::collection::vec(any::<bool>(), n),
    )
        .prop_map(move |(w, order, len, tie)| {
            let prefs: Vec<usize> = order[..len].to_vec();
            let mut ranks = Vec::with_capacity(len);
            let mut level = 0u32;
            for (i, &t) in tie.iter().enumerate().take(len) {
                if i > 0 && !(ties && t) {
                    level += 1;
                }
                ranks.push(level);
            }
            let mut pairs: Vec<(u32, usize)> = ranks.iter().copied().zip(prefs).collect();
            pairs.sort_unstable();
            let prefs: Vec<usize> = pairs.iter().map(|p| p.1).collect();
            let ranks: Vec<u32> = pairs.iter().map(|p| p.0).collect();
            let tied = ranks.windows(2).any(|w| w[0] == w[1]);
            Ballot {
                weight: w,
                prefs,
                ranks: if tied { ranks } else { Vec::new() },
            }
        })
}

fn election(ties: bool) -> impl Strategy<Value = Election> {
    (1usize..8).prop_flat_map(move |n| {
        (
            proptest::collection::vec("[A-Za-z][A-Za-z .()]{0,10}[A-Za-z]", n),
            0..=n,
            proptest::collection::vec(ballot(n, ties), 0..25),
            "[A-Za-z][A-Za-z0-9 ]{0,12}[A-Za-z0-9]",
            proptest::collection::vec(any::<bool>(), n),
        )
            .prop_map(|(names, seats, ballots, title, wd)| {
                let mut candidates: Vec<String> = Vec::new();
                for (i, name) in names.into_iter().enumerate() {
                    candidates.push(format!("{name} {i}"));
                }
                let withdrawn: Vec<usize> = (0..candidates.len())
                    .filter(|&i| wd[i] && i % 3 == 0)
                    .collect();
                Election {
                    title,
                    candidates,
                    seats,
                    withdrawn,
                    ballots,
                    invalid: Vec::new(),
                }
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn readers_never_panic_on_arbitrary_text(text in "(?s).{0,400}") {
        let _ = read_blt(&text, "fuzz.blt");
        let _ = read_preflib(&text, "fuzz.soi");
        let _ = read_csv(&text, "fuzz.csv");
    }

    #[test]
    fn readers_never_panic_on_number_soup(text in "[0-9 \\-=\n\"a,:{}#]{0,300}") {
        if let Ok(e) = read_blt(&text, "fuzz.blt") {
            for b in &e.ballots {
                prop_assert!(b.prefs.iter().all(|&c| c < e.candidates.len()));
                prop_assert!(b.weight > 0);
            }
        }
        if let Ok(e) = read_preflib(&text, "fuzz.soi") {
            for b in &e.ballots {
                prop_assert!(b.prefs.iter().all(|&c| c < e.candidates.len()));
            }
        }
    }

    #[test]
    fn blt_round_trips(e in election(true)) {
        let text = write_blt(&e);
        let back = read_blt(&text, "rt.blt").unwrap();
        prop_assert_eq!(back, e);
    }

    #[test]
    fn preflib_round_trips(e in election(true)) {
        let back = read_preflib(&write_preflib(&e), "rt.toi").unwrap();
        prop_assert_eq!(&back.ballots, &e.ballots);
        prop_assert_eq!(&back.candidates, &e.candidates);
        prop_assert_eq!(&back.title, &e.title);
    }

    #[test]
    fn csv_round_trips(e in election(true)) {
        let back = read_csv(&write_csv(&e), "rt.csv").unwrap();
        prop_assert_eq!(&back.ballots, &e.ballots);
        prop_assert_eq!(&back.candidates, &e.candidates);
    }

    #[test]
    fn a_malformed_blt_line_is_reported_at_its_line_and_the_rest_kept(
        e in election(false),
        at in 0usize..30,
        junk in prop_oneof![
            Just("7 x 0".to_string()),
            Just("3 1 1 0".to_string()),
            Just("2 99 0".to_string()),
            Just("4 1 2".to_string()),
            Just("abc".to_string()),
            Just("5 0".to_string()),
        ],
    ) {
        let text = write_blt(&e);
        let mut lines: Vec<&str> = text.lines().collect();
        let first_ballot = if e.withdrawn.is_empty() { 1 } else { 2 };
        let pos = first_ballot + at.min(e.ballots.len());
        lines.insert(pos, &junk);
        let back = read_blt(&lines.join("\n"), "bad.blt").unwrap();
        prop_assert_eq!(&back.ballots, &e.ballots);
        prop_assert_eq!(back.invalid.len(), 1);
        prop_assert_eq!(back.invalid[0].line, pos + 1);
    }

    #[test]
    fn stv_counts_keep_their_invariants(e in election(false), seed in 0u64..4) {
        prop_assume!(e.seats > 0 && e.valid_weight() > 0);
        let available = e.candidates.len() - e.withdrawn.len();
        for rule in [Rule::Scottish, Rule::Wigm, Rule::Meek] {
            let r = count(&e, rule, seed).unwrap();
            prop_assert_eq!(r.elected.len(), e.seats.min(available));
            let mut seen = r.elected.clone();
            seen.sort_unstable();
            seen.dedup();
            prop_assert_eq!(seen.len(), r.elected.len());
            prop_assert!(r.elected.iter().all(|c| !e.withdrawn.contains(c)));
            let valid = e.valid_weight() as f64;
            for s in &r.stages {
                let sum: f64 = s.votes.iter().sum::<f64>()
                    + s.non_transferable_total
                    + s.fractions_lost_total;
                prop_assert!((sum - valid).abs() < 1e-6 * valid.max(1.0), "{:?} stage {}: {} vs {}", rule, s.number, sum, valid);
            }
            // Same input, same seed: same count.
            prop_assert_eq!(count(&e, rule, seed).unwrap(), r);
        }
    }

    #[test]
    fn schulze_winners_are_unbeaten(e in election(true)) {
        let r = schulze(&e);
        for &w in &r.winners {
            for c in 0..e.candidates.len() {
                prop_assert!(r.strongest_paths[w][c] >= r.strongest_paths[c][w]);
            }
        }
        if let Some(cw) = r.condorcet_winner {
            prop_assert_eq!(&r.winners, &vec![cw]);
        }
    }
}
