//! Ballots grouped by content (a "multiprofile"), the form every rule works on.

use crate::hash::HashMap;
use crate::model::{Election, VoteType};

/// One distinct ballot and how many voters cast it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistinctBallot {
    /// `(project index, points)` sorted by project; points are 1 for ballots without points.
    pub items: Vec<(u32, i64)>,
    /// Number of voters with this ballot.
    pub weight: u64,
    /// Index (into `Election::voters`) of every voter with this ballot.
    pub voters: Vec<u32>,
}

/// The voters of an election grouped by identical ballots.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Number of projects.
    pub n_projects: usize,
    /// Distinct ballots in order of first appearance.
    pub ballots: Vec<DistinctBallot>,
    /// Total number of voters.
    pub n_voters: u64,
    /// Per project: voters who listed it (approval score).
    pub approvals: Vec<u64>,
    /// Per project: sum of points (for ballots with points), else the approval score.
    pub points: Vec<i64>,
    /// Per project: ordinal score `Σ (ballot length − position)` (ordinal ballots only).
    pub ordinal_score: Vec<i64>,
    /// Whether ballots carry points.
    pub has_points: bool,
}

impl Profile {
    /// Groups the voters of `e`.
    pub fn new(e: &Election) -> Self {
        let m = e.projects.len();
        let has_points = e.vote_type.has_points();
        let mut map: HashMap<Vec<(u32, i64)>, usize> = HashMap::default();
        let mut ballots: Vec<DistinctBallot> = Vec::new();
        let mut approvals = vec![0u64; m];
        let mut points = vec![0i64; m];
        let mut ordinal_score = vec![0i64; m];
        let mut items: Vec<(u32, i64)> = Vec::new();
        for (vi, v) in e.voters.iter().enumerate() {
            items.clear();
            match &v.points {
                Some(pts) => items.extend(v.ballot.iter().copied().zip(pts.iter().copied())),
                None => items.extend(v.ballot.iter().map(|&p| (p, 1))),
            }
            let len = items.len() as i64;
            for (pos, &(p, pt)) in items.iter().enumerate() {
                points[p as usize] = points[p as usize].saturating_add(pt);
                if e.vote_type == VoteType::Ordinal {
                    ordinal_score[p as usize] += len - pos as i64;
                }
            }
            items.sort_unstable();
            // repeated ids (cumulative votes only): one item with the points added
            items.dedup_by(|later, first| {
                if later.0 == first.0 {
                    first.1 = first.1.saturating_add(later.1);
                    true
                } else {
                    false
                }
            });
            for &(p, _) in &items {
                approvals[p as usize] += 1;
            }
            match map.get(items.as_slice()) {
                Some(&i) => {
                    ballots[i].weight += 1;
                    ballots[i].voters.push(vi as u32);
                }
                None => {
                    map.insert(items.clone(), ballots.len());
                    ballots.push(DistinctBallot {
                        items: std::mem::take(&mut items),
                        weight: 1,
                        voters: vec![vi as u32],
                    });
                }
            }
        }
        Self {
            n_projects: m,
            ballots,
            n_voters: e.voters.len() as u64,
            approvals,
            points,
            ordinal_score,
            has_points,
        }
    }
}
