//! Participatory-budgeting rules. Every decision (order, fit, price, tie) is taken on exact
//! rationals; floating point is used only to skip work whose exact outcome is certain.

mod basic;
pub mod mes;

pub use basic::{
    greedy, greedy_utilitarian, max_welfare, phragmen, GreedyKey, GreedyVariant, UnfundedReason,
};

use crate::model::Election;
use crate::number::{fmt_q, Q};
use crate::profile::Profile;
use num_traits::Zero;
use serde::Serialize;

/// A rule error (the election cannot be counted with these options).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RuleError {
    /// The utility does not apply to this vote type.
    #[error("utility `{0}` needs ballots with points (cumulative or scoring)")]
    NeedsPoints(&'static str),
    /// Sequential Phragmén needs approval-like ballots.
    #[error("sequential Phragmén needs approval or choose-1 ballots")]
    NeedsApproval,
    /// Points must be non-negative for utilities.
    #[error("negative points cannot be utilities")]
    NegativePoints,
    /// Numbers too large for the exact knapsack.
    #[error("maximum welfare: costs or utilities too large for the exact knapsack")]
    KnapsackTooLarge,
    /// The knapsack search exceeded its node limit.
    #[error("maximum welfare: search exceeded {0} nodes")]
    KnapsackLimit(u64),
    /// A voter count of zero.
    #[error("the election has no voters")]
    NoVoters,
    /// The threshold META key is missing.
    #[error("greedy-threshold needs META `min_project_score_threshold`")]
    NoThreshold,
    /// The increment for Add1 must be positive.
    #[error("the endowment increment must be positive")]
    BadIncrement,
}

/// How a voter's satisfaction with a project is measured (MES, welfare, utilitarian greedy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Utility {
    /// `u_i(p) = c(p)` if `i` lists `p` (pabutools `Cost_Sat`; equalshares.net standard).
    Cost,
    /// `u_i(p) = 1` if `i` lists `p` (pabutools `Cardinality_Sat`).
    Approval,
    /// `u_i(p)` = the voter's points (pabutools `Additive_Cardinal_Sat`; cumulative/scoring).
    Cardinal,
}

/// Completion of MES.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Completion {
    /// Plain MES with endowment `B/n`.
    None,
    /// Raise the endowment by the increment while the outcome fits and is not exhaustive.
    Add1,
    /// Add1, then add remaining projects by utilitarian greedy (cost utilities) while they fit.
    #[value(name = "add1-utilitarian")]
    Add1Utilitarian,
}

/// The greedy baseline of the comparison step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Baseline {
    /// Greedy by approval count (equalshares compute tool `comparisonStep`).
    Votes,
    /// Greedy by approvals ÷ cost (pabutools' documented Wieliczka recipe, `Cardinality_Sat`).
    Cardinality,
}

/// Tie-breaking between projects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Ties {
    /// pabutools' default: project id as a string, ascending (`"p10" < "p2"`).
    Pabutools,
    /// Order of the PROJECTS section.
    File,
    /// equalshares.net: lowest cost, then most votes, then a lot drawn from `seed`.
    Equalshares {
        /// Seed of the pre-drawn lot.
        seed: u64,
    },
}

/// The order in which ties are broken: `rank[p]` (lower wins) and the order itself.
#[derive(Debug, Clone)]
pub struct TieOrder {
    /// Position of every project in the tie order.
    pub rank: Vec<usize>,
    /// Project indices from first to last.
    pub order: Vec<usize>,
    /// For equalshares ties: the pre-drawn lot (project indices).
    pub lot: Option<Vec<usize>>,
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniformly random permutation of `0..n` from `seed` (Fisher–Yates on SplitMix64).
pub fn lot(n: usize, seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut s = seed;
    for i in (1..n).rev() {
        let j = (splitmix(&mut s) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

impl TieOrder {
    /// Builds the order for an election.
    pub fn new(e: &Election, prof: &Profile, ties: Ties) -> Self {
        let m = e.projects.len();
        let mut order: Vec<usize> = (0..m).collect();
        let mut lot_order = None;
        match ties {
            Ties::File => {}
            Ties::Pabutools => order.sort_by(|&a, &b| e.projects[a].id.cmp(&e.projects[b].id)),
            Ties::Equalshares { seed } => {
                let l = lot(m, seed);
                let mut lot_rank = vec![0usize; m];
                for (i, &p) in l.iter().enumerate() {
                    lot_rank[p] = i;
                }
                order.sort_by(|&a, &b| {
                    e.projects[a]
                        .cost
                        .cmp(&e.projects[b].cost)
                        .then(prof.approvals[b].cmp(&prof.approvals[a]))
                        .then(lot_rank[a].cmp(&lot_rank[b]))
                });
                lot_order = Some(l);
            }
        }
        let mut rank = vec![0usize; m];
        for (i, &p) in order.iter().enumerate() {
            rank[p] = i;
        }
        Self {
            rank,
            order,
            lot: lot_order,
        }
    }

    /// The winner among tied projects.
    pub fn first(&self, tied: &[usize]) -> Option<usize> {
        tied.iter().copied().min_by_key(|&p| self.rank[p])
    }
}

/// The rules `guildhall pb tally` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// Pabulib `greedy`: by the `score` column (else `votes`), skip what does not fit.
    Greedy,
    /// Pabulib `greedy-no-skip`: stop at the first project that does not fit.
    GreedyNoSkip,
    /// Pabulib `greedy-threshold`: greedy over projects with key ≥ `min_project_score_threshold`.
    GreedyThreshold,
    /// pabutools `greedy_utilitarian_welfare`: by total utility ÷ cost.
    GreedyUtilitarian,
    /// Maximum utilitarian welfare (exact knapsack).
    MaxWelfare,
    /// Method of Equal Shares.
    Mes,
    /// Sequential Phragmén.
    Phragmen,
}

/// Everything that determines a count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TallyOptions {
    /// The rule.
    pub rule: Rule,
    /// Utilities (MES, max welfare, utilitarian greedy).
    pub utility: Utility,
    /// MES completion.
    pub completion: Completion,
    /// MES comparison step against a greedy baseline.
    pub comparison: Option<Baseline>,
    /// Tie-breaking.
    pub ties: Ties,
    /// Add1 endowment increment per voter (currency units).
    #[serde(serialize_with = "ser_q")]
    pub increment: Q,
    /// Start Add1 from `floor(B/n)` instead of `B/n` (compute tool "integral endowments").
    pub integral_start: bool,
}

fn ser_q<S: serde::Serializer>(q: &Q, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&fmt_q(q))
}

impl Default for TallyOptions {
    fn default() -> Self {
        Self {
            rule: Rule::Mes,
            utility: Utility::Cost,
            completion: Completion::None,
            comparison: None,
            ties: Ties::Pabutools,
            increment: Q::from_integer(1.into()),
            integral_start: false,
        }
    }
}

/// One group of supporters that paid the same amount in a round.
#[derive(Debug, Clone, Serialize)]
pub struct PaymentGroup {
    /// Number of voters.
    pub voters: u64,
    /// What each paid (rounded to cents when not exact).
    pub each: String,
    /// What each paid, exact.
    pub exact: String,
}

/// One selection step.
#[derive(Debug, Clone, Serialize)]
pub struct RoundExplanation {
    /// Project id.
    pub project: String,
    /// Its cost.
    pub cost: String,
    /// Why it was chosen now (the key: votes, score, density, price, load).
    pub reason: String,
    /// MES: the exact price per unit of utility ρ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rho: Option<String>,
    /// MES: supporters' payments grouped by amount (largest groups first).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub payments: Vec<PaymentGroup>,
}

/// What one voter had and bought (MES).
#[derive(Debug, Clone, Serialize)]
pub struct VoterExplanation {
    /// `voter_id`.
    pub voter: String,
    /// Initial endowment (rounded to cents when not exact; exact in the notes).
    pub endowment: String,
    /// Money spent (rounded to cents when not exact).
    pub spent: String,
    /// Money left (rounded to cents when not exact).
    pub kept: String,
    /// `(project id, payment)` in selection order (rounded to cents when not exact; the exact
    /// payments are in the rounds).
    pub bought: Vec<(String, String)>,
}

/// Why a project was not funded.
#[derive(Debug, Clone, Serialize)]
pub struct UnfundedExplanation {
    /// Project id.
    pub project: String,
    /// Its cost.
    pub cost: String,
    /// How far short it fell (money, rounded to cents when not exact), when meaningful.
    pub shortfall: Option<String>,
    /// The shortfall, exact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shortfall_exact: Option<String>,
    /// Why.
    pub reason: String,
}

/// A readable account of a count.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Explanation {
    /// Notes on the whole count (endowment, Add1 runs, comparison).
    pub notes: Vec<String>,
    /// Per selection step.
    pub rounds: Vec<RoundExplanation>,
    /// Per voter (MES only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub voters: Vec<VoterExplanation>,
    /// Per unfunded project.
    pub unfunded: Vec<UnfundedExplanation>,
}

/// The result of a count.
#[derive(Debug, Clone, Serialize)]
pub struct Tally {
    /// The options used.
    pub options: TallyOptions,
    /// Selected project indices in selection order.
    #[serde(skip)]
    pub selected: Vec<usize>,
    /// Selected project ids in selection order.
    pub selected_ids: Vec<String>,
    /// Their total cost.
    pub total_cost: String,
    /// The budget.
    pub budget: String,
    /// The tie order used (project ids, first wins).
    pub tie_order: Vec<String>,
    /// The pre-drawn lot (equalshares ties), project ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lot: Option<Vec<String>>,
    /// Arithmetic used for decisions.
    pub arithmetic: &'static str,
    /// The explanation (when requested).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
}

/// Total cost of a set of projects.
pub fn total_cost(e: &Election, sel: &[usize]) -> Q {
    let mut t = Q::zero();
    for &p in sel {
        t += &e.projects[p].cost;
    }
    t
}

/// The greedy keys taken from the file columns (`score`, else `votes`, else recomputed).
pub fn basic_keys(e: &Election, prof: &Profile) -> Vec<Q> {
    basic::greedy_keys(e, prof, GreedyKey::FileColumns)
}

/// Number of voters (weighted) preferring `a` to `b` and `b` to `a` by count of listed projects won.
pub fn popularity(prof: &Profile, a: &[usize], b: &[usize]) -> (u64, u64) {
    let m = prof.n_projects;
    let mut in_a = vec![false; m];
    let mut in_b = vec![false; m];
    for &p in a {
        in_a[p] = true;
    }
    for &p in b {
        in_b[p] = true;
    }
    let (mut pa, mut pb) = (0u64, 0u64);
    for bal in &prof.ballots {
        let sa = bal.items.iter().filter(|(p, _)| in_a[*p as usize]).count();
        let sb = bal.items.iter().filter(|(p, _)| in_b[*p as usize]).count();
        if sa > sb {
            pa += bal.weight;
        } else if sb > sa {
            pb += bal.weight;
        }
    }
    (pa, pb)
}

/// Counts an election.
pub fn tally(e: &Election, opts: &TallyOptions, explain: bool) -> Result<Tally, RuleError> {
    let prof = Profile::new(e);
    tally_with(e, &prof, opts, explain)
}

/// Counts an election whose profile is already built.
pub fn tally_with(
    e: &Election,
    prof: &Profile,
    opts: &TallyOptions,
    explain: bool,
) -> Result<Tally, RuleError> {
    let ties = TieOrder::new(e, prof, opts.ties);
    let mut ex = Explanation::default();
    let selected = match opts.rule {
        Rule::Greedy | Rule::GreedyNoSkip | Rule::GreedyThreshold => {
            let v = match opts.rule {
                Rule::Greedy => GreedyVariant::Skip,
                Rule::GreedyNoSkip => GreedyVariant::NoSkip,
                _ => GreedyVariant::Threshold,
            };
            greedy(e, prof, v, GreedyKey::FileColumns, &ties, &mut ex)?
        }
        Rule::GreedyUtilitarian => greedy_utilitarian(e, prof, opts.utility, &[], &ties, &mut ex)?,
        Rule::MaxWelfare => max_welfare(e, prof, opts.utility, &mut ex)?,
        Rule::Phragmen => phragmen(e, prof, &ties, &mut ex)?,
        Rule::Mes => mes::mes_full(e, prof, opts, &ties, explain, &mut ex)?,
    };
    let arithmetic = "exact rationals (f64 used only as a filter whose outcome is checked exactly)";
    Ok(Tally {
        options: opts.clone(),
        selected_ids: selected.iter().map(|&p| e.projects[p].id.clone()).collect(),
        total_cost: fmt_q(&total_cost(e, &selected)),
        budget: fmt_q(&e.budget),
        selected,
        tie_order: ties
            .order
            .iter()
            .map(|&p| e.projects[p].id.clone())
            .collect(),
        lot: ties
            .lot
            .as_ref()
            .map(|l| l.iter().map(|&p| e.projects[p].id.clone()).collect()),
        arithmetic,
        explanation: explain.then_some(ex),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_election;

    fn election(projects: &str, votes: &str, budget: u32) -> Election {
        let n = votes.lines().count();
        let m = projects.lines().count();
        let text = format!(
            "META\nkey;value\ndescription;t\ncountry;x\nunit;x\ninstance;x\nnum_projects;{m}\nnum_votes;{n}\nbudget;{budget}\nvote_type;approval\nrule;unknown\ndate_begin;2026\ndate_end;2026\nPROJECTS\nproject_id;cost\n{projects}VOTES\nvoter_id;vote\n{votes}"
        );
        read_election(text.as_bytes(), "t").unwrap().0
    }

    #[test]
    fn equalshares_ties_lowest_cost_then_votes_then_lot() {
        // p2 and p10 cost the same, p10 has more votes; p3 is dearer
        let e = election(
            "p2;100\np10;100\np3;200\np4;100\n",
            "1;p2,p10\n2;p10\n3;p3\n4;p4\n",
            500,
        );
        let prof = Profile::new(&e);
        let es = TieOrder::new(&e, &prof, Ties::Equalshares { seed: 9 });
        let pos = |id: &str| es.rank[e.project_index(id).unwrap()];
        assert!(pos("p10") < pos("p2") && pos("p10") < pos("p4"));
        assert!(pos("p2").max(pos("p4")) < pos("p3"));
        // p2 and p4 tie on cost and votes: the lot decides, and differs between seeds
        let lots: std::collections::BTreeSet<bool> = (0..32)
            .map(|seed| {
                let t = TieOrder::new(&e, &prof, Ties::Equalshares { seed });
                t.rank[0] < t.rank[3]
            })
            .collect();
        assert_eq!(lots.len(), 2);
        // pabutools: by id as a string
        let lex = TieOrder::new(&e, &prof, Ties::Pabutools);
        let ids: Vec<&str> = lex
            .order
            .iter()
            .map(|&p| e.projects[p].id.as_str())
            .collect();
        assert_eq!(ids, ["p10", "p2", "p3", "p4"]);
        let lot_a = lot(50, 1);
        let mut sorted = lot_a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(lot_a, lot(50, 2));
    }

    #[test]
    fn mes_tie_is_broken_by_the_chosen_rule() {
        // two projects with identical support and cost, budget for one
        let e = election("b;100\na;100\n", "1;a,b\n2;a,b\n", 100);
        let opts = TallyOptions {
            rule: Rule::Mes,
            ..TallyOptions::default()
        };
        let t = tally(&e, &opts, true).unwrap();
        assert_eq!(t.selected_ids, ["a"]);
        let t = tally(
            &e,
            &TallyOptions {
                ties: Ties::File,
                ..opts
            },
            true,
        )
        .unwrap();
        assert_eq!(t.selected_ids, ["b"]);
        let ex = t.explanation.unwrap();
        assert_eq!(ex.rounds[0].payments[0].voters, 2);
        assert_eq!(ex.rounds[0].payments[0].each, "50");
        assert_eq!(ex.voters[0].kept, "0");
        assert_eq!(ex.unfunded[0].project, "a");
        assert_eq!(ex.unfunded[0].shortfall.as_deref(), Some("100"));
    }

    #[test]
    fn phragmen_stops_at_first_project_that_does_not_fit() {
        // round 1: x 60/3 = 20 < z 70/2 = 35 < y 40/1; round 2: y 40 < z (20+20+70)/2 = 55;
        // round 3: z (55) does not fit into 120 - 100: stop, although nothing else is left
        let e = election("x;60\ny;40\nz;70\n", "1;x,z\n2;x,z\n3;x\n4;y\n", 120);
        let opts = TallyOptions {
            rule: Rule::Phragmen,
            ..TallyOptions::default()
        };
        let t = tally(&e, &opts, false).unwrap();
        assert_eq!(t.selected_ids, ["x", "y"]);
        // w (30/1) comes before y in round 2; then y (40) does not fit into 120 - 90: stop,
        let e = election(
            "x;60\ny;40\nz;70\nw;30\n",
            "1;x,z\n2;x,z\n3;x\n4;y\n5;w\n",
            120,
        );
        let t = tally(&e, &opts, false).unwrap();
        assert_eq!(t.selected_ids, ["x", "w"]);
    }
}
