//! Stakeholder seats: one board election with several classes (for example workers, member
//! instances, donors), each with its own electorate and reserved seats, plus open seats
//! for everyone.
//!
//! Counting order (shown in every report as [`StakeholderReport::counting_order`]):
//!
//! 1. The reserved seats, class by class in the order the classes are given. Each class
//!    counts its reserved seats by the chosen STV rule on **its own electorate's ballots
//!    only** (so its own quota), among the candidates eligible for that class; a candidate
//!    already elected for an earlier class is treated as withdrawn.
//! 2. The open seats, by the same rule, on the open electorate's ballots (by default every
//!    class's ballots together: each member's one ballot counts in their class and in the
//!    open count), with every candidate elected to a reserved seat treated as withdrawn, so
//!    their ballots pass to the next preference.
//!
//! A class with fewer eligible candidates than reserved seats leaves those seats unfilled
//! (reported); they are not moved to the open count.

use serde::Serialize;

use crate::ballot::{Ballot, Election};
use crate::stv::{count, Rule, StvError, StvReport};

/// One stakeholder class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    /// The class name (e.g. "workers").
    pub name: String,
    /// Seats reserved for the class.
    pub seats: usize,
    /// The ballots of the class's electorate (candidate indices into the election's list).
    pub ballots: Vec<Ballot>,
    /// Candidates eligible for the class's seats (`None` = every candidate).
    pub eligible: Option<Vec<usize>>,
}

/// A stakeholder election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StakeholderElection {
    /// The title.
    pub title: String,
    /// All candidates.
    pub candidates: Vec<String>,
    /// The classes, in counting order.
    pub classes: Vec<Class>,
    /// Open seats, for everyone.
    pub open_seats: usize,
    /// Ballots of the open electorate (`None` = all the classes' ballots together).
    pub open_ballots: Option<Vec<Ballot>>,
}

/// One of the counts making up a stakeholder election.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Part {
    /// The class name, or "open".
    pub name: String,
    /// Seats counted here.
    pub seats: usize,
    /// Candidates withdrawn from this count (ineligible or already elected).
    pub withdrawn: Vec<usize>,
    /// The full STV report of this count (absent when there was nothing to count).
    pub report: Option<StvReport>,
    /// Candidates elected here, in order.
    pub elected: Vec<usize>,
}

/// The result of a stakeholder election.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StakeholderReport {
    /// The counting order, step by step.
    pub counting_order: Vec<String>,
    /// Candidate names.
    pub candidates: Vec<String>,
    /// The counts, in the order made.
    pub parts: Vec<Part>,
    /// Everyone elected, with the seat they fill (class name or "open"), in order.
    pub elected: Vec<(usize, String)>,
}

impl StakeholderReport {
    /// A human-readable summary: the counting order, then each part's result.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::from("Counting order:\n");
        for (i, step) in self.counting_order.iter().enumerate() {
            let _ = writeln!(s, "  {}. {step}", i + 1);
        }
        for p in &self.parts {
            let _ = writeln!(s, "\n== {} ({} seat(s)) ==", p.name, p.seats);
            match &p.report {
                Some(r) => s.push_str(&r.to_text()),
                None => s.push_str("nothing to count\n"),
            }
        }
        let _ = writeln!(s, "\nBoard:");
        for (c, seat) in &self.elected {
            let _ = writeln!(s, "  {} ({seat})", self.candidates[*c]);
        }
        s
    }
}

fn run_part(
    se: &StakeholderElection,
    name: &str,
    seats: usize,
    ballots: Vec<Ballot>,
    withdrawn: Vec<usize>,
    rule: Rule,
    seed: u64,
) -> Result<Part, StvError> {
    let available = se.candidates.len() - withdrawn.len();
    if seats == 0 || available == 0 || ballots.is_empty() {
        return Ok(Part {
            name: name.to_string(),
            seats,
            withdrawn,
            report: None,
            elected: Vec::new(),
        });
    }
    let e = Election {
        title: format!("{} — {name}", se.title),
        candidates: se.candidates.clone(),
        seats,
        withdrawn: withdrawn.clone(),
        ballots,
        invalid: Vec::new(),
    };
    let r = count(&e, rule, seed)?;
    Ok(Part {
        name: name.to_string(),
        seats,
        withdrawn,
        elected: r.elected.clone(),
        report: Some(r),
    })
}

/// Counts a stakeholder election (see the module documentation for the order).
pub fn count_stakeholder(
    se: &StakeholderElection,
    rule: Rule,
    seed: u64,
) -> Result<StakeholderReport, StvError> {
    let n = se.candidates.len();
    let mut order = Vec::new();
    for c in &se.classes {
        order.push(format!(
            "reserved seats for {}: {} seat(s) by {} STV on the {} class's own ballots, among its eligible candidates not yet elected",
            c.name,
            c.seats,
            rule.name(),
            c.name
        ));
    }
    order.push(format!(
        "open seats: {} seat(s) by {} STV on {}, with everyone elected above withdrawn",
        se.open_seats,
        rule.name(),
        if se.open_ballots.is_some() {
            "the open electorate's ballots"
        } else {
            "all classes' ballots together"
        }
    ));
    let mut elected: Vec<(usize, String)> = Vec::new();
    let mut parts = Vec::new();
    for class in &se.classes {
        let mut withdrawn: Vec<usize> = (0..n)
            .filter(|c| {
                class.eligible.as_ref().is_some_and(|el| !el.contains(c))
                    || elected.iter().any(|(e, _)| e == c)
            })
            .collect();
        withdrawn.sort_unstable();
        let part = run_part(
            se,
            &class.name,
            class.seats,
            class.ballots.clone(),
            withdrawn,
            rule,
            seed,
        )?;
        elected.extend(part.elected.iter().map(|&c| (c, class.name.clone())));
        parts.push(part);
    }
    let open_ballots = match &se.open_ballots {
        Some(b) => b.clone(),
        None => se
            .classes
            .iter()
            .flat_map(|c| c.ballots.iter().cloned())
            .collect(),
    };
    let mut withdrawn: Vec<usize> = elected.iter().map(|(c, _)| *c).collect();
    withdrawn.sort_unstable();
    let part = run_part(
        se,
        "open",
        se.open_seats,
        open_ballots,
        withdrawn,
        rule,
        seed,
    )?;
    elected.extend(part.elected.iter().map(|&c| (c, "open".to_string())));
    parts.push(part);
    Ok(StakeholderReport {
        counting_order: order,
        candidates: se.candidates.clone(),
        parts,
        elected,
    })
}

/// Builds a stakeholder election from one ballot file per class (its withdrawn candidates
/// are the ones not eligible for the class) and an optional open-electorate file.
/// Candidates are matched across files by name.
pub fn from_elections(
    title: &str,
    classes: &[(String, usize, Election)],
    open_seats: usize,
    open: Option<&Election>,
) -> StakeholderElection {
    let mut candidates: Vec<String> = Vec::new();
    let all = classes.iter().map(|(_, _, e)| e).chain(open);
    for e in all {
        for c in &e.candidates {
            if !candidates.contains(c) {
                candidates.push(c.clone());
            }
        }
    }
    let map = |e: &Election| -> Vec<usize> {
        e.candidates
            .iter()
            .map(|c| candidates.iter().position(|x| x == c).unwrap_or(0))
            .collect()
    };
    let remap = |e: &Election, m: &[usize]| -> Vec<Ballot> {
        e.ballots
            .iter()
            .map(|b| Ballot {
                weight: b.weight,
                prefs: b.prefs.iter().map(|&p| m[p]).collect(),
                ranks: b.ranks.clone(),
            })
            .collect()
    };
    let classes = classes
        .iter()
        .map(|(name, seats, e)| {
            let m = map(e);
            let eligible: Vec<usize> = (0..e.candidates.len())
                .filter(|c| !e.withdrawn.contains(c))
                .map(|c| m[c])
                .collect();
            Class {
                name: name.clone(),
                seats: *seats,
                ballots: remap(e, &m),
                eligible: Some(eligible),
            }
        })
        .collect();
    let open_ballots = open.map(|e| remap(e, &map(e)));
    StakeholderElection {
        title: title.to_string(),
        candidates,
        classes,
        open_seats,
        open_ballots,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ballot::read_blt;

    fn b(w: u64, p: &[usize]) -> Ballot {
        Ballot::strict(w, p.to_vec())
    }

    #[test]
    fn reserved_then_open_with_own_electorates() {
        // Candidates: 0 W1 (worker), 1 W2 (worker), 2 D1 (donor), 3 X (anyone), 4 Y.
        let se = StakeholderElection {
            title: "board".into(),
            candidates: ["W1", "W2", "D1", "X", "Y"].map(String::from).to_vec(),
            classes: vec![
                Class {
                    name: "workers".into(),
                    seats: 1,
                    ballots: vec![b(6, &[1, 0]), b(4, &[0]), b(5, &[3])],
                    eligible: Some(vec![0, 1]),
                },
                Class {
                    name: "donors".into(),
                    seats: 1,
                    ballots: vec![b(3, &[2]), b(30, &[3, 4])],
                    eligible: Some(vec![2]),
                },
            ],
            open_seats: 2,
            open_ballots: None,
        };
        let r = count_stakeholder(&se, Rule::Scottish, 0).unwrap();
        assert_eq!(r.parts.len(), 3);
        // Workers: X's 5 ballots have no eligible preference; W2 wins 6–4.
        assert_eq!(r.parts[0].elected, vec![1]);
        // Donors: only D1 eligible, elected although few donors rank them.
        assert_eq!(r.parts[1].elected, vec![2]);
        // Open: everyone's ballots, W2 and D1 withdrawn: X (35) and then W1 / Y.
        assert_eq!(r.parts[2].withdrawn, vec![1, 2]);
        assert_eq!(r.parts[2].elected[0], 3);
        assert_eq!(r.elected.len(), 4);
        assert_eq!(r.elected[0], (1, "workers".to_string()));
        assert!(r.counting_order[0].contains("workers"));
        assert!(r.to_text().contains("Counting order"));
        let open = r.parts[2].report.as_ref().unwrap();
        assert_eq!(open.valid_ballots, 48);
    }

    #[test]
    fn class_without_candidates_leaves_seat_unfilled() {
        let se = StakeholderElection {
            title: "t".into(),
            candidates: ["A", "B"].map(String::from).to_vec(),
            classes: vec![Class {
                name: "instances".into(),
                seats: 1,
                ballots: vec![b(2, &[0])],
                eligible: Some(vec![]),
            }],
            open_seats: 1,
            open_ballots: Some(vec![b(2, &[1]), b(1, &[0])]),
        };
        let r = count_stakeholder(&se, Rule::Meek, 0).unwrap();
        assert!(r.parts[0].report.is_none());
        assert_eq!(r.elected, vec![(1, "open".to_string())]);
    }

    #[test]
    fn from_files_matches_names_and_uses_withdrawn_as_ineligible() {
        let w = read_blt(
            "3 1\n-3\n5 1 2 0\n3 2 0\n0\nAnn\nBob\nCy\n\"workers\"\n",
            "w",
        )
        .unwrap();
        let d = read_blt("2 1\n4 2 1 0\n0\nCy\nDee\n\"donors\"\n", "d").unwrap();
        let se = from_elections(
            "t",
            &[("workers".into(), 1, w), ("donors".into(), 1, d)],
            1,
            None,
        );
        assert_eq!(se.candidates, vec!["Ann", "Bob", "Cy", "Dee"]);
        assert_eq!(se.classes[0].eligible, Some(vec![0, 1]));
        assert_eq!(se.classes[1].ballots[0].prefs, vec![3, 2]);
        let r = count_stakeholder(&se, Rule::Scottish, 0).unwrap();
        let names: Vec<&str> = r
            .elected
            .iter()
            .map(|(c, _)| se.candidates[*c].as_str())
            .collect();
        assert_eq!(names, vec!["Ann", "Dee", "Bob"]);
    }
}
