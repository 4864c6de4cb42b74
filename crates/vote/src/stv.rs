//! Single transferable vote: Scottish STV (SSI 2007/42 rules 45–52), weighted inclusive
//! Gregory (WIGM) and Meek STV, with a stage-by-stage report.
//!
//! Scottish STV and WIGM share one counter in fixed-point decimal arithmetic: Scottish uses
//! five decimals, the integer Droop quota `floor(valid/(seats+1)) + 1` and "elected at ≥
//! quota"; WIGM uses nine decimals, the exact Droop quota `valid/(seats+1)` (truncated to
//! nine decimals) and "elected when above the quota". Both transfer the whole of a surplus
//! candidate's papers at `truncate(surplus × value / votes)` (rule 48(3)), exclude one
//! candidate per stage with all their papers at the value received (rule 50), break ties by
//! the most recent preceding stage at which the tied candidates differed and then by lot
//! (rules 49, 51; the lot is a seeded generator, so a count is reproducible), and elect the
//! remaining continuing candidates without further transfer once they are no more than the
//! vacancies left (rule 52).
//!
//! Meek STV is counted in `f64` (see [`count_meek`]).
//!
//! A ballot with tied preferences counts only up to (not including) its first tied level.

use serde::Serialize;

use crate::ballot::Election;

/// The STV counting rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// Scottish STV (SSI 2007/42 rules 45–52): 5-decimal truncation.
    Scottish,
    /// Meek STV (keep values, shrinking quota).
    Meek,
    /// Weighted inclusive Gregory method with 9-decimal arithmetic and the exact Droop quota.
    Wigm,
}

impl Rule {
    /// The rule's name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Scottish => "scottish",
            Rule::Meek => "meek",
            Rule::Wigm => "wigm",
        }
    }
}

/// Why a count could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StvError {
    /// No seats to fill.
    #[error("the election has no seats to fill")]
    NoSeats,
    /// No valid ballots.
    #[error("there are no valid ballots")]
    NoBallots,
    /// More candidates than the counter supports.
    #[error("{0} candidates: at most 65535 are supported")]
    TooManyCandidates(usize),
    /// The vote total overflows the fixed-point arithmetic.
    #[error("the ballot weights are too large for the arithmetic")]
    Overflow,
}

/// What a stage did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Stage 1: first preferences counted.
    FirstPreferences,
    /// A surplus was transferred (rules 48, 49).
    Surplus {
        /// The candidate whose surplus moved.
        candidate: usize,
        /// The surplus.
        surplus: f64,
        /// The distinct transfer values used (one per value at which papers were received).
        transfer_values: Vec<f64>,
    },
    /// A candidate was excluded and their papers transferred (rules 50, 51).
    Exclusion {
        /// The excluded candidate.
        candidate: usize,
    },
    /// A Meek round: keep values iterated to convergence.
    MeekRound {
        /// Iterations used.
        iterations: usize,
        /// Candidate excluded at the start of this round, if any.
        excluded: Option<usize>,
    },
}

/// One stage of the count: the state at its end.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stage {
    /// 1-based stage number (stage 1 = first preferences).
    pub number: usize,
    /// What happened in this stage.
    pub action: Action,
    /// The quota in force.
    pub quota: f64,
    /// Each candidate's change of votes in this stage.
    pub transfers: Vec<f64>,
    /// Each candidate's votes at the end of this stage.
    pub votes: Vec<f64>,
    /// Value of papers that became non-transferable (exhausted) in this stage.
    pub non_transferable: f64,
    /// Value of non-transferable papers so far.
    pub non_transferable_total: f64,
    /// Value lost so far to the truncation of transfer values (fixed-point rules only), so
    /// that votes + non-transferable + lost = valid ballots at every stage.
    pub fractions_lost_total: f64,
    /// Candidates elected at the end of this stage, in order.
    pub elected: Vec<usize>,
    /// Meek keep values at the end of this stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_values: Option<Vec<f64>>,
    /// Explanations: why a candidate was elected or excluded, how ties were broken.
    pub notes: Vec<String>,
}

/// The full result of an STV count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StvReport {
    /// The rule used.
    pub rule: Rule,
    /// The election title.
    pub title: String,
    /// Candidate names.
    pub candidates: Vec<String>,
    /// Seats to fill.
    pub seats: usize,
    /// Total weight of valid ballots.
    pub valid_ballots: u64,
    /// Total weight of invalid ballot lines (excluded from the count).
    pub invalid_ballots: u64,
    /// The quota at stage 1.
    pub quota: f64,
    /// Decimal places of the arithmetic (`None` for floating point).
    pub decimals: Option<u32>,
    /// The seed of the lot used to break ties that no earlier stage resolves.
    pub lot_seed: u64,
    /// Elected candidates in order of election.
    pub elected: Vec<usize>,
    /// The stages.
    pub stages: Vec<Stage>,
    /// Notes on the whole count (ballots with ties, unfilled seats, …).
    pub notes: Vec<String>,
}

impl StvReport {
    /// The names of the elected candidates in order of election.
    pub fn elected_names(&self) -> Vec<&str> {
        self.elected
            .iter()
            .map(|&c| self.candidates[c].as_str())
            .collect()
    }

    /// A human-readable stage-by-stage report.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let d = self.decimals.unwrap_or(5) as usize;
        let mut s = String::new();
        let _ = writeln!(s, "Election: {}", self.title);
        let _ = writeln!(
            s,
            "Rule: {}; seats {}; valid ballots {}; invalid {}; quota {:.*}; lot seed {}",
            self.rule.name(),
            self.seats,
            self.valid_ballots,
            self.invalid_ballots,
            d,
            self.quota,
            self.lot_seed
        );
        for n in &self.notes {
            let _ = writeln!(s, "Note: {n}");
        }
        let width = self
            .candidates
            .iter()
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(10)
            .max(16);
        let mut elected: Vec<usize> = Vec::new();
        let mut excluded: Vec<usize> = Vec::new();
        for st in &self.stages {
            let what = match &st.action {
                Action::FirstPreferences => "first preferences".to_string(),
                Action::Surplus {
                    candidate,
                    surplus,
                    transfer_values,
                } => format!(
                    "surplus of {} ({:.*}) at transfer value(s) {}",
                    self.candidates[*candidate],
                    d,
                    surplus,
                    transfer_values
                        .iter()
                        .map(|v| format!("{v:.d$}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Action::Exclusion { candidate } => {
                    format!("exclusion of {}", self.candidates[*candidate])
                }
                Action::MeekRound {
                    iterations,
                    excluded,
                } => match excluded {
                    Some(c) => format!(
                        "exclusion of {}, keep values iterated {} times",
                        self.candidates[*c], iterations
                    ),
                    None => format!("keep values iterated {iterations} times"),
                },
            };
            let _ = writeln!(
                s,
                "\nStage {}: {}  (quota {:.*})",
                st.number, what, d, st.quota
            );
            match &st.action {
                Action::Exclusion { candidate }
                | Action::MeekRound {
                    excluded: Some(candidate),
                    ..
                } => excluded.push(*candidate),
                _ => {}
            }
            elected.extend(st.elected.iter().copied());
            for (c, name) in self.candidates.iter().enumerate() {
                let mark = if elected.contains(&c) {
                    "elected"
                } else if excluded.contains(&c) {
                    "excluded"
                } else {
                    ""
                };
                let _ = write!(
                    s,
                    "  {:<width$} {:>+14.d$} {:>14.d$} {mark}",
                    name, st.transfers[c], st.votes[c]
                );
                while s.ends_with(' ') {
                    s.pop();
                }
                if let Some(k) = &st.keep_values {
                    let _ = write!(s, "  keep {:.9}", k[c]);
                }
                s.push('\n');
            }
            let _ = writeln!(
                s,
                "  {:<width$} {:>+14.d$} {:>14.d$}",
                "non-transferable", st.non_transferable, st.non_transferable_total
            );
            if st.fractions_lost_total > 0.0 {
                let _ = writeln!(
                    s,
                    "  {:<width$} {:>14} {:>14.d$}",
                    "lost to fractions", "", st.fractions_lost_total
                );
            }
            for n in &st.notes {
                let _ = writeln!(s, "  * {n}");
            }
        }
        let _ = writeln!(s, "\nElected: {}", self.elected_names().join("; "));
        s
    }
}

/// Counts an election by the given rule. `seed` drives the lot for ties that no earlier
/// stage resolves.
pub fn count(e: &Election, rule: Rule, seed: u64) -> Result<StvReport, StvError> {
    match rule {
        Rule::Scottish => count_wigm(e, 5, true, seed, Rule::Scottish),
        Rule::Wigm => count_wigm(e, 9, false, seed, Rule::Wigm),
        Rule::Meek => count_meek(e, seed),
    }
}

/// A small deterministic generator (SplitMix64) for the lot.
#[derive(Debug, Clone)]
pub(crate) struct Lot(u64);

impl Lot {
    pub(crate) fn new(seed: u64) -> Self {
        Lot(seed)
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z % (n.max(1) as u64)) as usize
    }
}

/// Breaks a tie among `tied` (all equal now) by the most recent preceding stage at which
/// they differed, narrowing to the highest (or lowest) there and going further back while
/// several remain; then by lot. Returns the chosen candidate and an explanation.
pub(crate) fn break_tie<T: PartialOrd + Copy>(
    tied: &[usize],
    history: &[Vec<T>],
    highest: bool,
    lot: &mut Lot,
    names: &[String],
) -> (usize, Option<String>) {
    if tied.len() == 1 {
        return (tied[0], None);
    }
    let list = |set: &[usize]| {
        set.iter()
            .map(|&c| names[c].as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut set: Vec<usize> = tied.to_vec();
    // history's last entry is the current stage; look at the ones before it.
    for (i, stage) in history.iter().enumerate().rev().skip(1) {
        let mut best = stage[set[0]];
        for &c in &set[1..] {
            let v = stage[c];
            if (highest && v > best) || (!highest && v < best) {
                best = v;
            }
        }
        let next: Vec<usize> = set.iter().copied().filter(|&c| stage[c] == best).collect();
        if next.len() < set.len() {
            set = next;
            if set.len() == 1 {
                return (
                    set[0],
                    Some(format!(
                        "tie between {} broken by the votes at stage {}: {}",
                        list(tied),
                        i + 1,
                        names[set[0]]
                    )),
                );
            }
        }
    }
    set.sort_unstable();
    let pick = set[lot.below(set.len())];
    (
        pick,
        Some(format!(
            "tie between {} equal at every stage, broken by lot: {}",
            list(tied),
            names[pick]
        )),
    )
}

/// Ballots flattened for counting: usable (non-withdrawn, strict) preferences.
pub(crate) struct Flat {
    pub(crate) weights: Vec<u64>,
    pub(crate) offsets: Vec<usize>,
    pub(crate) prefs: Vec<u16>,
    pub(crate) tied_ballots: u64,
}

pub(crate) fn flatten(e: &Election) -> Result<Flat, StvError> {
    if e.candidates.len() > usize::from(u16::MAX) {
        return Err(StvError::TooManyCandidates(e.candidates.len()));
    }
    let mut f = Flat {
        weights: Vec::with_capacity(e.ballots.len()),
        offsets: Vec::with_capacity(e.ballots.len() + 1),
        prefs: Vec::new(),
        tied_ballots: 0,
    };
    f.offsets.push(0);
    for b in &e.ballots {
        let mut stop = b.prefs.len();
        if b.has_ties() {
            f.tied_ballots += b.weight;
            // Keep only the levels before the first tied level.
            for i in 0..b.prefs.len() {
                let l = b.level(i);
                let same = (i > 0 && b.level(i - 1) == l)
                    || (i + 1 < b.prefs.len() && b.level(i + 1) == l);
                if same {
                    stop = i;
                    break;
                }
            }
        }
        for &c in &b.prefs[..stop] {
            if !e.withdrawn.contains(&c) {
                f.prefs.push(u16::try_from(c).unwrap_or(u16::MAX));
            }
        }
        f.weights.push(b.weight);
        f.offsets.push(f.prefs.len());
    }
    Ok(f)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Hopeful,
    Elected,
    Excluded,
    Withdrawn,
}

#[derive(Debug, Clone, Copy)]
struct Parcel {
    ballot: u32,
    pos: u32,
    value: i64,
}

fn checks(e: &Election) -> Result<u64, StvError> {
    if e.seats == 0 {
        return Err(StvError::NoSeats);
    }
    let valid = e.valid_weight();
    if valid == 0 {
        return Err(StvError::NoBallots);
    }
    Ok(valid)
}

fn report_notes(e: &Election, flat: &Flat) -> Vec<String> {
    let mut notes = Vec::new();
    if !e.invalid.is_empty() {
        notes.push(format!(
            "{} invalid ballot line(s) ({} papers) not counted",
            e.invalid.len(),
            e.invalid_weight()
        ));
    }
    if flat.tied_ballots > 0 {
        notes.push(format!(
            "{} ballot(s) with tied preferences count only up to their first tie",
            flat.tied_ballots
        ));
    }
    for &w in &e.withdrawn {
        notes.push(format!(
            "{} withdrawn: skipped on every ballot",
            e.candidates[w]
        ));
    }
    notes
}

/// The fixed-point WIGM counter behind Scottish STV (`decimals` 5, integer quota, elected at
/// ≥ quota) and generic WIGM (`decimals` 9, exact quota, elected above the quota).
fn count_wigm(
    e: &Election,
    decimals: u32,
    integer_quota: bool,
    seed: u64,
    rule: Rule,
) -> Result<StvReport, StvError> {
    let valid = checks(e)?;
    let flat = flatten(e)?;
    let n = e.candidates.len();
    let scale: i64 = 10i64.pow(decimals);
    let to_f = |u: i64| u as f64 / scale as f64;
    let total_u = i64::try_from(valid)
        .ok()
        .and_then(|v| v.checked_mul(scale))
        .ok_or(StvError::Overflow)?;
    // More seats than candidates only leaves seats unfilled; cap to keep the quota sane.
    let seats = e.seats.min(e.candidates.len().max(1)) as i64;
    let quota_u = if integer_quota {
        (valid as i64 / (seats + 1) + 1) * scale
    } else {
        total_u / (seats + 1)
    };
    let has_quota = |v: i64| {
        if integer_quota {
            v >= quota_u
        } else {
            v > quota_u
        }
    };
    let mut status = vec![Status::Hopeful; n];
    for &w in &e.withdrawn {
        status[w] = Status::Withdrawn;
    }
    let mut lot = Lot::new(seed);
    let mut piles: Vec<Vec<Parcel>> = vec![Vec::new(); n];
    let mut votes = vec![0i64; n];
    let mut nt_total = 0i64;
    let mut lost_total = 0i64;
    let next_hopeful = |status: &[Status], b: usize, from: usize| -> Option<(usize, usize)> {
        let (lo, hi) = (flat.offsets[b], flat.offsets[b + 1]);
        (lo + from..hi)
            .map(|i| (i - lo, usize::from(flat.prefs[i])))
            .find(|&(_, c)| status[c] == Status::Hopeful)
    };
    // Stage 1 (rule 45).
    let mut nt = 0i64;
    let mut transfers = vec![0i64; n];
    for b in 0..flat.weights.len() {
        let w = flat.weights[b] as i64;
        match next_hopeful(&status, b, 0) {
            Some((pos, c)) => {
                piles[c].push(Parcel {
                    ballot: b as u32,
                    pos: pos as u32,
                    value: scale,
                });
                votes[c] += w * scale;
                transfers[c] += w * scale;
            }
            None => nt += w * scale,
        }
    }
    nt_total += nt;
    let mut history: Vec<Vec<i64>> = vec![votes.clone()];
    let mut stages: Vec<Stage> = Vec::new();
    let mut elected_order: Vec<usize> = Vec::new();
    let mut surplus_done = vec![false; n];
    let mut action = Action::FirstPreferences;
    let mut stage_notes: Vec<String> = Vec::new();
    loop {
        // Elect everyone at the quota (rule 47), highest first.
        let mut newly: Vec<usize> = (0..n)
            .filter(|&c| status[c] == Status::Hopeful && has_quota(votes[c]))
            .collect();
        newly.sort_by_key(|&c| std::cmp::Reverse(votes[c]));
        for &c in &newly {
            if elected_order.len() < e.seats {
                status[c] = Status::Elected;
                elected_order.push(c);
                stage_notes.push(format!(
                    "{} elected with {:.*} votes (quota {:.*})",
                    e.candidates[c],
                    decimals as usize,
                    to_f(votes[c]),
                    decimals as usize,
                    to_f(quota_u)
                ));
            }
        }
        let mut elected_now: Vec<usize> = newly
            .into_iter()
            .filter(|c| status[*c] == Status::Elected)
            .collect();
        // Rule 52: last vacancies.
        let seats_left = e.seats - elected_order.len();
        let hopeful: Vec<usize> = (0..n).filter(|&c| status[c] == Status::Hopeful).collect();
        let finished = seats_left == 0 || hopeful.len() <= seats_left;
        if finished && seats_left > 0 {
            let mut rest = hopeful.clone();
            rest.sort_by_key(|&c| std::cmp::Reverse(votes[c]));
            for c in rest {
                status[c] = Status::Elected;
                elected_order.push(c);
                elected_now.push(c);
                stage_notes.push(format!(
                    "{} elected: continuing candidates no more than vacancies (rule 52)",
                    e.candidates[c]
                ));
            }
        }
        stages.push(Stage {
            number: stages.len() + 1,
            action: action.clone(),
            quota: to_f(quota_u),
            transfers: transfers.iter().map(|&t| to_f(t)).collect(),
            votes: votes.iter().map(|&v| to_f(v)).collect(),
            non_transferable: to_f(nt),
            non_transferable_total: to_f(nt_total),
            fractions_lost_total: to_f(lost_total),
            elected: elected_now,
            keep_values: None,
            notes: std::mem::take(&mut stage_notes),
        });
        if finished {
            break;
        }
        transfers = vec![0i64; n];
        nt = 0;
        // Rules 48, 49: the largest untransferred surplus.
        let pending: Vec<usize> = (0..n)
            .filter(|&c| status[c] == Status::Elected && !surplus_done[c] && votes[c] > quota_u)
            .collect();
        if let Some(&first) = pending.first() {
            let high = pending
                .iter()
                .map(|&c| votes[c])
                .max()
                .unwrap_or(votes[first]);
            let tied: Vec<usize> = pending
                .iter()
                .copied()
                .filter(|&c| votes[c] == high)
                .collect();
            let (c, note) = break_tie(&tied, &history, true, &mut lot, &e.candidates);
            stage_notes.extend(note);
            surplus_done[c] = true;
            let surplus = votes[c] - quota_u;
            let total = votes[c];
            let mut tvs: Vec<i64> = Vec::new();
            let mut moved = 0i64;
            for p in std::mem::take(&mut piles[c]) {
                let tv =
                    i64::try_from(i128::from(surplus) * i128::from(p.value) / i128::from(total))
                        .map_err(|_| StvError::Overflow)?;
                if !tvs.contains(&tv) {
                    tvs.push(tv);
                }
                let w = flat.weights[p.ballot as usize] as i64;
                moved += w * tv;
                match next_hopeful(&status, p.ballot as usize, p.pos as usize + 1) {
                    Some((pos, to)) => {
                        piles[to].push(Parcel {
                            ballot: p.ballot,
                            pos: pos as u32,
                            value: tv,
                        });
                        votes[to] += w * tv;
                        transfers[to] += w * tv;
                    }
                    None => nt += w * tv,
                }
            }
            // Value lost to truncation (rule 48(3): "any remainder being ignored").
            lost_total += surplus - moved;
            nt_total += nt;
            votes[c] = quota_u;
            transfers[c] = -surplus;
            tvs.sort_unstable_by(|a, b| b.cmp(a));
            action = Action::Surplus {
                candidate: c,
                surplus: to_f(surplus),
                transfer_values: tvs.into_iter().map(to_f).collect(),
            };
        } else {
            // Rules 50, 51: exclude the lowest continuing candidate.
            let low = hopeful.iter().map(|&c| votes[c]).min().unwrap_or(0);
            let tied: Vec<usize> = hopeful
                .iter()
                .copied()
                .filter(|&c| votes[c] == low)
                .collect();
            let (c, note) = break_tie(&tied, &history, false, &mut lot, &e.candidates);
            stage_notes.extend(note);
            stage_notes.push(format!(
                "{} excluded with the fewest votes ({:.*})",
                e.candidates[c],
                decimals as usize,
                to_f(votes[c])
            ));
            status[c] = Status::Excluded;
            for p in std::mem::take(&mut piles[c]) {
                let w = flat.weights[p.ballot as usize] as i64;
                match next_hopeful(&status, p.ballot as usize, p.pos as usize + 1) {
                    Some((pos, to)) => {
                        piles[to].push(Parcel {
                            ballot: p.ballot,
                            pos: pos as u32,
                            value: p.value,
                        });
                        votes[to] += w * p.value;
                        transfers[to] += w * p.value;
                    }
                    None => nt += w * p.value,
                }
            }
            transfers[c] = -votes[c];
            votes[c] = 0;
            nt_total += nt;
            action = Action::Exclusion { candidate: c };
        }
        history.push(votes.clone());
    }
    let mut notes = report_notes(e, &flat);
    if elected_order.len() < e.seats {
        notes.push(format!(
            "only {} candidate(s) for {} seats: {} seat(s) unfilled",
            elected_order.len(),
            e.seats,
            e.seats - elected_order.len()
        ));
    }
    Ok(StvReport {
        rule,
        title: e.title.clone(),
        candidates: e.candidates.clone(),
        seats: e.seats,
        valid_ballots: valid,
        invalid_ballots: e.invalid_weight(),
        quota: to_f(quota_u),
        decimals: Some(decimals),
        lot_seed: seed,
        elected: elected_order,
        stages,
        notes,
    })
}

/// Meek STV in `f64`.
///
/// Each round: count every ballot with the keep values (a candidate keeps `k` of the value
/// reaching them and passes the rest on; hopeful candidates keep all), the quota is
/// `(valid − exhausted)/(seats + 1)`, and elected candidates' keep values are scaled by
/// `quota / votes` until the total surplus is below `1e-9 × valid` (or a hopeful reaches
/// the quota). Hopefuls above the quota are then elected together; if none is, the hopeful
/// with the fewest votes is excluded (keep value 0; ties by earlier rounds, then lot).
pub fn count_meek(e: &Election, seed: u64) -> Result<StvReport, StvError> {
    let valid = checks(e)?;
    let flat = flatten(e)?;
    let n = e.candidates.len();
    let total = valid as f64;
    let eps = 1e-10 * total.max(1.0);
    let omega = 1e-9 * total.max(1.0);
    let mut status = vec![Status::Hopeful; n];
    let mut keep = vec![1.0f64; n];
    for &w in &e.withdrawn {
        status[w] = Status::Withdrawn;
        keep[w] = 0.0;
    }
    let weights: Vec<f64> = flat.weights.iter().map(|&w| w as f64).collect();
    let mut votes = vec![0.0f64; n];
    let tally = |keep: &[f64], status: &[Status], votes: &mut Vec<f64>| -> f64 {
        votes.iter_mut().for_each(|v| *v = 0.0);
        let mut excess = 0.0;
        for (b, &w) in weights.iter().enumerate() {
            let mut r = 1.0f64;
            for &c in &flat.prefs[flat.offsets[b]..flat.offsets[b + 1]] {
                let c = usize::from(c);
                let k = keep[c];
                if k == 0.0 {
                    continue;
                }
                if status[c] == Status::Hopeful {
                    votes[c] += w * r;
                    r = 0.0;
                    break;
                }
                votes[c] += w * r * k;
                r *= 1.0 - k;
                if r == 0.0 {
                    break;
                }
            }
            excess += w * r;
        }
        excess
    };
    let mut lot = Lot::new(seed);
    let mut history: Vec<Vec<f64>> = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut elected_order: Vec<usize> = Vec::new();
    let mut prev_votes = vec![0.0f64; n];
    let mut first_quota = 0.0;
    let mut excluded_now: Option<usize> = None;
    let mut notes_now: Vec<String> = Vec::new();
    loop {
        // Iterate keep values to convergence.
        let mut iterations = 0;
        let mut excess;
        let mut quota;
        let mut last_surplus = f64::INFINITY;
        loop {
            iterations += 1;
            excess = tally(&keep, &status, &mut votes);
            quota = (total - excess) / (e.seats.min(n.max(1)) as f64 + 1.0);
            let any_hopeful =
                (0..n).any(|c| status[c] == Status::Hopeful && votes[c] > quota + eps);
            let surplus: f64 = (0..n)
                .filter(|&c| status[c] == Status::Elected)
                .map(|c| (votes[c] - quota).max(0.0))
                .sum();
            if any_hopeful || surplus < omega || iterations >= 1000 || surplus >= last_surplus {
                break;
            }
            last_surplus = surplus;
            for c in 0..n {
                if status[c] == Status::Elected && votes[c] > 0.0 {
                    keep[c] = (keep[c] * quota / votes[c]).min(1.0);
                }
            }
        }
        if stages.is_empty() {
            first_quota = quota;
        }
        history.push(votes.clone());
        let mut newly: Vec<usize> = (0..n)
            .filter(|&c| status[c] == Status::Hopeful && votes[c] > quota + eps)
            .collect();
        newly.sort_by(|&a, &b| votes[b].total_cmp(&votes[a]));
        let mut elected_now = Vec::new();
        for c in newly {
            if elected_order.len() < e.seats {
                status[c] = Status::Elected;
                elected_order.push(c);
                elected_now.push(c);
                notes_now.push(format!(
                    "{} elected with {:.5} votes (quota {:.5})",
                    e.candidates[c], votes[c], quota
                ));
            }
        }
        let seats_left = e.seats - elected_order.len();
        let hopeful: Vec<usize> = (0..n).filter(|&c| status[c] == Status::Hopeful).collect();
        let finished = seats_left == 0 || hopeful.len() <= seats_left;
        if finished && seats_left > 0 {
            let mut rest = hopeful.clone();
            rest.sort_by(|&a, &b| votes[b].total_cmp(&votes[a]));
            for c in rest {
                status[c] = Status::Elected;
                elected_order.push(c);
                elected_now.push(c);
                notes_now.push(format!(
                    "{} elected: hopeful candidates no more than vacancies",
                    e.candidates[c]
                ));
            }
        }
        let nt = total - votes.iter().sum::<f64>();
        let prev_nt = stages
            .last()
            .map(|s| s.non_transferable_total)
            .unwrap_or(0.0);
        stages.push(Stage {
            number: stages.len() + 1,
            action: if stages.is_empty() {
                Action::FirstPreferences
            } else {
                Action::MeekRound {
                    iterations,
                    excluded: excluded_now,
                }
            },
            quota,
            transfers: (0..n).map(|c| votes[c] - prev_votes[c]).collect(),
            votes: votes.clone(),
            non_transferable: nt - prev_nt,
            non_transferable_total: nt,
            fractions_lost_total: 0.0,
            elected: elected_now.clone(),
            keep_values: Some(keep.clone()),
            notes: std::mem::take(&mut notes_now),
        });
        prev_votes.clone_from(&votes);
        excluded_now = None;
        if finished {
            break;
        }
        if elected_now.is_empty() {
            let low = hopeful
                .iter()
                .map(|&c| votes[c])
                .fold(f64::INFINITY, f64::min);
            let tied: Vec<usize> = hopeful
                .iter()
                .copied()
                .filter(|&c| votes[c] <= low + eps)
                .collect();
            // Compare earlier rounds at six decimals, so float noise is not a difference.
            let rounded: Vec<Vec<i64>> = history
                .iter()
                .map(|h| h.iter().map(|v| (v * 1e6).round() as i64).collect())
                .collect();
            let (c, note) = break_tie(&tied, &rounded, false, &mut lot, &e.candidates);
            notes_now.extend(note);
            notes_now.push(format!(
                "{} excluded with the fewest votes ({:.5})",
                e.candidates[c], votes[c]
            ));
            status[c] = Status::Excluded;
            keep[c] = 0.0;
            excluded_now = Some(c);
        }
    }
    let mut notes = report_notes(e, &flat);
    if elected_order.len() < e.seats {
        notes.push(format!(
            "only {} candidate(s) for {} seats",
            elected_order.len(),
            e.seats
        ));
    }
    Ok(StvReport {
        rule: Rule::Meek,
        title: e.title.clone(),
        candidates: e.candidates.clone(),
        seats: e.seats,
        valid_ballots: valid,
        invalid_ballots: e.invalid_weight(),
        quota: first_quota,
        decimals: None,
        lot_seed: seed,
        elected: elected_order,
        stages,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ballot::{read_blt, Ballot};

    fn election(cands: usize, seats: usize, ballots: &[(u64, &[usize])]) -> Election {
        Election {
            title: "t".into(),
            candidates: (0..cands).map(|i| format!("C{i}")).collect(),
            seats,
            ballots: ballots
                .iter()
                .map(|(w, p)| Ballot::strict(*w, p.to_vec()))
                .collect(),
            ..Election::default()
        }
    }

    #[test]
    fn scottish_worked_example_stage_two() {
        let text = std::fs::read_to_string(
            "../../../shared/data/ballots/scotland-2017/shetland_2017_ward6.blt",
        )
        .unwrap();
        let e = read_blt(&text, "shetland").unwrap();
        let r = count(&e, Rule::Scottish, 0).unwrap();
        assert_eq!(r.quota, 249.0);
        let s2 = &r.stages[1];
        assert_eq!(
            s2.action,
            Action::Surplus {
                candidate: 0,
                surplus: 466.0,
                transfer_values: vec![0.65174]
            }
        );
        assert!((s2.transfers[2] - 207.25332).abs() < 1e-9);
        assert!((s2.votes[2] - 337.25332).abs() < 1e-9);
        assert!((s2.non_transferable - 110.14406).abs() < 1e-9);
        assert!((s2.fractions_lost_total - 0.0059).abs() < 1e-9);
    }

    #[test]
    fn exclusion_tie_broken_by_earlier_stage_then_lot() {
        // C2 and C3 tie at stage 2 but C3 had fewer at stage 1.
        let e = election(
            4,
            1,
            &[
                (10, &[0]),
                (4, &[1]),
                (3, &[2]),
                (2, &[3]),
                (1, &[1, 3]),
                (1, &[0, 2]),
            ],
        );
        // Stage 1: C0 11, C1 5, C2 3, C3 2 -> C3 excluded (no transfer: nothing after 3).
        let r = count(&e, Rule::Scottish, 1).unwrap();
        assert_eq!(r.elected, vec![0]);
        let e2 = election(3, 1, &[(3, &[0]), (2, &[1]), (2, &[2])]);
        let r2 = count(&e2, Rule::Scottish, 7).unwrap();
        let lot_note = r2.stages[1].notes.iter().any(|n| n.contains("by lot"));
        assert!(lot_note, "{:?}", r2.stages[1].notes);
        let e3 = election(
            3,
            1,
            &[(6, &[0]), (3, &[1]), (2, &[2]), (1, &[0, 2]), (1, &[2, 1])],
        );
        // C1 3, C2 3 at stage 1 with nothing earlier -> lot; result reproducible by seed.
        let a = count(&e3, Rule::Scottish, 3).unwrap();
        let b = count(&e3, Rule::Scottish, 3).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn prior_stage_tie_break_picks_lower_history() {
        let names: Vec<String> = (0..3).map(|i| format!("C{i}")).collect();
        let history = vec![vec![5, 4, 6], vec![7, 7, 7]];
        let (c, note) = break_tie(&[0, 1, 2], &history, false, &mut Lot::new(0), &names);
        assert_eq!(c, 1);
        assert!(note.unwrap().contains("stage 1"));
        let (c, _) = break_tie(&[0, 1, 2], &history, true, &mut Lot::new(0), &names);
        assert_eq!(c, 2);
    }

    #[test]
    fn rule_52_elects_remaining_without_transfer() {
        let e = election(3, 2, &[(10, &[0, 1]), (4, &[1]), (3, &[2])]);
        let r = count(&e, Rule::Scottish, 0).unwrap();
        // Quota 5; C0 elected with surplus 5; after transfer C1 has 4+5 → elected.
        assert_eq!(r.elected, vec![0, 1]);
        let e = election(2, 2, &[(10, &[0]), (4, &[1])]);
        let r = count(&e, Rule::Scottish, 0).unwrap();
        assert_eq!(r.stages.len(), 1);
        assert_eq!(r.elected.len(), 2);
    }

    #[test]
    fn meek_and_wigm_agree_on_simple_profile_and_conserve_votes() {
        let e = election(
            4,
            2,
            &[(40, &[0, 1]), (25, &[2]), (20, &[3, 1]), (15, &[1, 3])],
        );
        let m = count(&e, Rule::Meek, 0).unwrap();
        let w = count(&e, Rule::Wigm, 0).unwrap();
        let mut a = m.elected.clone();
        let mut b = w.elected.clone();
        a.sort();
        b.sort();
        assert_eq!(a, b);
        for s in m.stages.iter().chain(w.stages.iter()) {
            let sum: f64 =
                s.votes.iter().sum::<f64>() + s.non_transferable_total + s.fractions_lost_total;
            assert!((sum - 100.0).abs() < 1e-6, "{sum}");
        }
    }

    #[test]
    fn errors_for_no_seats_or_ballots() {
        let e = election(2, 0, &[(1, &[0])]);
        assert_eq!(count(&e, Rule::Scottish, 0), Err(StvError::NoSeats));
        let e = election(2, 1, &[]);
        assert_eq!(count(&e, Rule::Meek, 0), Err(StvError::NoBallots));
    }

    #[test]
    fn huge_weights_and_seats_do_not_panic() {
        let e = election(2, usize::MAX, &[(u64::MAX, &[0]), (u64::MAX, &[1])]);
        assert_eq!(count(&e, Rule::Scottish, 0), Err(StvError::Overflow));
        let r = count(&e, Rule::Meek, 0).unwrap();
        assert_eq!(r.elected.len(), 2);
        let e = election(2, usize::MAX, &[(3, &[0]), (1, &[1])]);
        assert_eq!(count(&e, Rule::Wigm, 0).unwrap().elected, vec![0, 1]);
        assert_eq!(crate::methods::irv(&e, 0).winner, Some(0));
        let big = election(2, 1, &[(u64::MAX, &[0]), (u64::MAX, &[1, 0])]);
        assert_eq!(crate::methods::approval(&big).votes[0], u64::MAX);
        let _ = crate::methods::irv(&big, 0);
        let _ = crate::methods::schulze(&big);
        let _ = crate::methods::plurality(&big);
    }

    #[test]
    fn withdrawn_candidates_are_skipped() {
        let mut e = election(3, 1, &[(5, &[0, 1]), (4, &[1]), (3, &[2])]);
        e.withdrawn = vec![0];
        let r = count(&e, Rule::Scottish, 0).unwrap();
        assert_eq!(r.elected, vec![1]);
        assert_eq!(r.stages[0].votes[0], 0.0);
    }
}
