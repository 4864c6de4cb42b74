//! The in-memory form of a Pabulib election.

use crate::number::Q;
use serde::Serialize;

/// The `vote_type` META value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VoteType {
    /// Approval ballots: the approved project ids.
    Approval,
    /// Ordinal ballots: ids from most to least preferred.
    Ordinal,
    /// Cumulative ballots: ids plus `points` summing to at most `max_sum_points`.
    Cumulative,
    /// Scoring ballots: ids plus `points`.
    Scoring,
    /// One approved project per voter.
    Choose1,
}

impl VoteType {
    /// Parses the META value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "approval" => Self::Approval,
            "ordinal" => Self::Ordinal,
            "cumulative" => Self::Cumulative,
            "scoring" => Self::Scoring,
            "choose-1" => Self::Choose1,
            _ => return None,
        })
    }
    /// The META spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approval => "approval",
            Self::Ordinal => "ordinal",
            Self::Cumulative => "cumulative",
            Self::Scoring => "scoring",
            Self::Choose1 => "choose-1",
        }
    }
    /// Whether ballots carry a `points` column.
    pub fn has_points(self) -> bool {
        matches!(self, Self::Cumulative | Self::Scoring)
    }
}

/// One row of the PROJECTS section.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    /// `project_id`.
    pub id: String,
    /// `cost`, exact.
    pub cost: Q,
    /// All cells of the row, in the order of the PROJECTS header (including id and cost).
    pub cells: Vec<String>,
    /// Line number in the file (1-based; 0 for elections built in memory).
    pub line: usize,
}

/// One row of the VOTES section.
#[derive(Debug, Clone, PartialEq)]
pub struct Voter {
    /// `voter_id`.
    pub id: String,
    /// Project indices (into `Election::projects`) in the order of the `vote` cell.
    pub ballot: Vec<u32>,
    /// `points`, parallel to `ballot` (cumulative and scoring ballots).
    pub points: Option<Vec<i64>>,
    /// The other cells of the row (voter metadata), in the order of `Election::vote_extra_columns`.
    pub extra: Vec<String>,
    /// Line number in the file (1-based; 0 for elections built in memory).
    pub line: usize,
}

/// A whole Pabulib election.
#[derive(Debug, Clone, PartialEq)]
pub struct Election {
    /// META rows in file order (`key`, `value`).
    pub meta: Vec<(String, String)>,
    /// META `budget`.
    pub budget: Q,
    /// META `vote_type`.
    pub vote_type: VoteType,
    /// The PROJECTS header.
    pub project_columns: Vec<String>,
    /// The projects in file order.
    pub projects: Vec<Project>,
    /// VOTES header cells other than `voter_id`, `vote` and `points`.
    pub vote_extra_columns: Vec<String>,
    /// The voters in file order.
    pub voters: Vec<Voter>,
}

impl Election {
    /// A META value.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.meta
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Index of a PROJECTS column.
    pub fn project_column(&self, name: &str) -> Option<usize> {
        self.project_columns.iter().position(|c| c == name)
    }

    /// A project cell by column name.
    pub fn project_cell(&self, p: usize, name: &str) -> Option<&str> {
        let c = self.project_column(name)?;
        self.projects[p].cells.get(c).map(|s| s.as_str())
    }

    /// Index of the project with this id.
    pub fn project_index(&self, id: &str) -> Option<usize> {
        self.projects.iter().position(|p| p.id == id)
    }

    /// Number of voters who listed each project (recomputed from the ballots).
    pub fn vote_counts(&self) -> Vec<u64> {
        let mut v = vec![0u64; self.projects.len()];
        for voter in &self.voters {
            for &p in &voter.ballot {
                v[p as usize] += 1;
            }
        }
        v
    }

    /// The `selected` column: projects with value 1 (the official outcome), in file order.
    pub fn official_selected(&self) -> Option<Vec<usize>> {
        let c = self.project_column("selected")?;
        Some(
            self.projects
                .iter()
                .enumerate()
                .filter(|(_, p)| p.cells.get(c).map(|s| s.trim()) == Some("1"))
                .map(|(i, _)| i)
                .collect(),
        )
    }
}
