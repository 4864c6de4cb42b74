//! Single-winner and simple methods: Schulze (winning votes, full ranking with ties),
//! instant runoff, approval and plurality.

use std::collections::HashMap;

use serde::Serialize;

use crate::ballot::Election;
use crate::stv::{break_tie, Lot};

/// The Schulze result: pairwise counts, strongest paths and the ranking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchulzeReport {
    /// Candidate names.
    pub candidates: Vec<String>,
    /// `d[x][y]`: weight of ballots ranking x above y (unranked tie below all ranked).
    pub pairwise: Vec<Vec<u64>>,
    /// `p[x][y]`: strength of the strongest path from x to y (winning votes).
    pub strongest_paths: Vec<Vec<u64>>,
    /// The ranking: groups of tied candidates, best first (withdrawn candidates omitted).
    pub ranking: Vec<Vec<usize>>,
    /// The Schulze winners (more than one = a tie, reported, not broken).
    pub winners: Vec<usize>,
    /// The Condorcet winner, if there is one.
    pub condorcet_winner: Option<usize>,
}

impl SchulzeReport {
    /// A human-readable report: the ranking and the pairwise wins of each winner.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        for (i, group) in self.ranking.iter().enumerate() {
            let names: Vec<&str> = group.iter().map(|&c| self.candidates[c].as_str()).collect();
            let tie = if group.len() > 1 { " (tied)" } else { "" };
            let _ = writeln!(s, "{}. {}{}", i + 1, names.join(" = "), tie);
        }
        if self.winners.len() > 1 {
            let _ = writeln!(s, "Tie for first place: {} winners", self.winners.len());
        }
        if let Some(c) = self.condorcet_winner {
            let _ = writeln!(s, "Condorcet winner: {}", self.candidates[c]);
        }
        for &w in &self.winners {
            for (y, name) in self.candidates.iter().enumerate() {
                if y != w && self.pairwise[w][y] + self.pairwise[y][w] > 0 {
                    let _ = writeln!(
                        s,
                        "  {} vs {}: {}–{}",
                        self.candidates[w], name, self.pairwise[w][y], self.pairwise[y][w]
                    );
                }
            }
        }
        s
    }
}

/// Counts an election by the Schulze method (winning votes). Ballots may have ties;
/// unranked candidates tie below all ranked ones. Identical ballots are merged first.
pub fn schulze(e: &Election) -> SchulzeReport {
    let n = e.candidates.len();
    let active: Vec<usize> = (0..n).filter(|c| !e.withdrawn.contains(c)).collect();
    // Merge identical ballots.
    let mut merged: HashMap<(&[usize], &[u32]), u64> = HashMap::new();
    for b in &e.ballots {
        let slot = merged
            .entry((b.prefs.as_slice(), b.ranks.as_slice()))
            .or_insert(0);
        *slot = slot.saturating_add(b.weight);
    }
    let mut d = vec![vec![0u64; n]; n];
    let mut level = vec![u32::MAX; n];
    for ((prefs, ranks), w) in merged {
        for (i, &c) in prefs.iter().enumerate() {
            level[c] = if ranks.is_empty() {
                u32::try_from(i).unwrap_or(u32::MAX - 1)
            } else {
                ranks[i]
            };
        }
        for &x in prefs.iter() {
            let lx = level[x];
            let row = &mut d[x];
            for &y in &active {
                if lx < level[y] {
                    row[y] = row[y].saturating_add(w);
                }
            }
        }
        for &c in prefs.iter() {
            level[c] = u32::MAX;
        }
    }
    let mut p = vec![vec![0u64; n]; n];
    for &x in &active {
        for &y in &active {
            if x != y && d[x][y] > d[y][x] {
                p[x][y] = d[x][y];
            }
        }
    }
    for &i in &active {
        for &j in &active {
            if i == j {
                continue;
            }
            let pji = p[j][i];
            if pji == 0 {
                continue;
            }
            for &k in &active {
                if k != i && k != j {
                    let via = pji.min(p[i][k]);
                    if via > p[j][k] {
                        p[j][k] = via;
                    }
                }
            }
        }
    }
    let mut remaining = active.clone();
    let mut ranking = Vec::new();
    while !remaining.is_empty() {
        let top: Vec<usize> = remaining
            .iter()
            .copied()
            .filter(|&x| remaining.iter().all(|&y| y == x || p[x][y] >= p[y][x]))
            .collect();
        // The Schulze relation is transitive, so `top` is never empty; guard anyway.
        let top = if top.is_empty() {
            remaining.clone()
        } else {
            top
        };
        remaining.retain(|c| !top.contains(c));
        ranking.push(top);
    }
    let winners = ranking.first().cloned().unwrap_or_default();
    let condorcet_winner = active
        .iter()
        .copied()
        .find(|&x| active.iter().all(|&y| y == x || d[x][y] > d[y][x]));
    SchulzeReport {
        candidates: e.candidates.clone(),
        pairwise: d,
        strongest_paths: p,
        ranking,
        winners,
        condorcet_winner,
    }
}

/// A tally of one round or a simple method: votes per candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Votes (or approvals) per candidate.
    pub votes: Vec<u64>,
    /// Candidates with the most votes (more than one = tie, reported).
    pub winners: Vec<usize>,
}

fn top(votes: &[u64], eligible: &[usize]) -> Vec<usize> {
    let best = eligible.iter().map(|&c| votes[c]).max().unwrap_or(0);
    eligible
        .iter()
        .copied()
        .filter(|&c| votes[c] == best)
        .collect()
}

fn eligible(e: &Election) -> Vec<usize> {
    (0..e.candidates.len())
        .filter(|c| !e.withdrawn.contains(c))
        .collect()
}

/// Plurality: each ballot's first preference (tied first preferences: the ballot is not
/// counted for anyone).
pub fn plurality(e: &Election) -> Tally {
    let mut votes = vec![0u64; e.candidates.len()];
    for b in &e.ballots {
        let firsts: Vec<usize> = b
            .prefs
            .iter()
            .enumerate()
            .filter(|(_, c)| !e.withdrawn.contains(c))
            .map(|(i, &c)| (b.level(i), c))
            .scan(None, |lvl, (l, c)| {
                let first = *lvl.get_or_insert(l);
                Some((l == first, c))
            })
            .take_while(|(same, _)| *same)
            .map(|(_, c)| c)
            .collect();
        if firsts.len() == 1 {
            votes[firsts[0]] = votes[firsts[0]].saturating_add(b.weight);
        }
    }
    let winners = top(&votes, &eligible(e));
    Tally { votes, winners }
}

/// Approval: every candidate a ballot ranks counts as approved.
pub fn approval(e: &Election) -> Tally {
    let mut votes = vec![0u64; e.candidates.len()];
    for b in &e.ballots {
        for &c in &b.prefs {
            votes[c] = votes[c].saturating_add(b.weight);
        }
    }
    let winners = top(&votes, &eligible(e));
    Tally { votes, winners }
}

/// The result of an instant-runoff count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IrvReport {
    /// Votes per candidate in each round.
    pub rounds: Vec<Vec<u64>>,
    /// The candidate excluded after each round but the last.
    pub excluded: Vec<usize>,
    /// The winner (None when no ballot names a continuing candidate).
    pub winner: Option<usize>,
    /// How ties were broken.
    pub notes: Vec<String>,
}

/// Instant runoff: repeatedly exclude the candidate with the fewest votes until one has a
/// majority of the continuing (non-exhausted) ballots. Ties for exclusion are broken by
/// earlier rounds, then by lot (`seed`). Preferences from a ballot's first tie on are ignored.
pub fn irv(e: &Election, seed: u64) -> IrvReport {
    let n = e.candidates.len();
    let mut out = vec![false; n];
    for &w in &e.withdrawn {
        out[w] = true;
    }
    let mut lot = Lot::new(seed);
    let mut rounds: Vec<Vec<u64>> = Vec::new();
    let mut excluded = Vec::new();
    let mut notes = Vec::new();
    loop {
        let mut votes = vec![0u64; n];
        for b in &e.ballots {
            for (i, &c) in b.prefs.iter().enumerate() {
                let tied = (i > 0 && b.level(i - 1) == b.level(i))
                    || (i + 1 < b.prefs.len() && b.level(i + 1) == b.level(i));
                if tied {
                    break;
                }
                if !out[c] {
                    votes[c] = votes[c].saturating_add(b.weight);
                    break;
                }
            }
        }
        let cont: Vec<usize> = (0..n).filter(|&c| !out[c]).collect();
        let total: u128 = votes.iter().map(|&v| u128::from(v)).sum();
        rounds.push(votes.clone());
        if cont.is_empty() || total == 0 {
            return IrvReport {
                rounds,
                excluded,
                winner: None,
                notes,
            };
        }
        if let Some(&w) = cont.iter().find(|&&c| u128::from(votes[c]) * 2 > total) {
            return IrvReport {
                rounds,
                excluded,
                winner: Some(w),
                notes,
            };
        }
        if cont.len() == 1 {
            return IrvReport {
                rounds,
                excluded,
                winner: Some(cont[0]),
                notes,
            };
        }
        let low = cont.iter().map(|&c| votes[c]).min().unwrap_or(0);
        let tied: Vec<usize> = cont.iter().copied().filter(|&c| votes[c] == low).collect();
        let (c, note) = break_tie(&tied, &rounds, false, &mut lot, &e.candidates);
        notes.extend(note);
        out[c] = true;
        excluded.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ballot::{read_preflib, Ballot};

    fn election(cands: usize, ballots: &[(u64, &[usize])]) -> Election {
        Election {
            candidates: (0..cands).map(|i| format!("C{i}")).collect(),
            seats: 1,
            ballots: ballots
                .iter()
                .map(|(w, p)| Ballot::strict(*w, p.to_vec()))
                .collect(),
            ..Election::default()
        }
    }

    #[test]
    fn schulze_wikipedia_example() {
        // The 45-voter example from Schulze's paper (A..E): winner E, ranking E > A > C > B > D.
        let e = election(
            5,
            &[
                (5, &[0, 2, 1, 4, 3]),
                (5, &[0, 3, 4, 2, 1]),
                (8, &[1, 4, 3, 0, 2]),
                (3, &[2, 0, 1, 4, 3]),
                (7, &[2, 0, 4, 1, 3]),
                (2, &[2, 1, 0, 3, 4]),
                (7, &[3, 2, 4, 1, 0]),
                (8, &[4, 1, 0, 3, 2]),
            ],
        );
        let r = schulze(&e);
        assert_eq!(r.ranking, vec![vec![4], vec![0], vec![2], vec![1], vec![3]]);
        assert_eq!(r.winners, vec![4]);
        assert_eq!(r.condorcet_winner, None);
        assert_eq!(r.strongest_paths[4][0], 25);
    }

    #[test]
    fn schulze_reports_ties() {
        let e = election(2, &[(1, &[0, 1]), (1, &[1, 0])]);
        let r = schulze(&e);
        assert_eq!(r.winners, vec![0, 1]);
        assert_eq!(r.ranking.len(), 1);
    }

    #[test]
    fn schulze_debian_2007_recorded_winner() {
        let text =
            std::fs::read_to_string("../../../shared/data/ballots/preflib/00002-00000005.soi")
                .unwrap();
        let e = read_preflib(&text, "debian").unwrap();
        assert_eq!(e.valid_weight(), 482);
        assert!(e.invalid.is_empty());
        let r = schulze(&e);
        let sam = e.candidate_index("Sam Hocevar").unwrap();
        let steve = e.candidate_index("Steve McIntyre").unwrap();
        let aj = e.candidate_index("Anthony Towns").unwrap();
        assert_eq!(r.winners, vec![sam]);
        assert_eq!(r.condorcet_winner, Some(sam));
        assert_eq!((r.pairwise[sam][steve], r.pairwise[steve][sam]), (243, 203));
        assert_eq!((r.pairwise[sam][aj], r.pairwise[aj][sam]), (270, 184));
    }

    #[test]
    fn irv_plurality_approval() {
        let e = election(3, &[(4, &[0]), (3, &[1, 2]), (3, &[2, 1])]);
        assert_eq!(plurality(&e).winners, vec![0]);
        let r = irv(&e, 0);
        assert_eq!(r.rounds[0], vec![4, 3, 3]);
        assert_eq!(r.winner.map(|w| w == 1 || w == 2), Some(true));
        assert_eq!(r.excluded.len(), 1);
        assert!(r.notes[0].contains("lot"));
        assert_eq!(approval(&e).votes, vec![4, 6, 6]);
        assert_eq!(approval(&e).winners, vec![1, 2]);
    }
}
