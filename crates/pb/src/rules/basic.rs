//! Greedy family, utilitarian greedy, maximum welfare (exact knapsack), sequential Phragmén.

use super::{Explanation, RoundExplanation, RuleError, TieOrder, UnfundedExplanation, Utility};
use crate::model::{Election, VoteType};
use crate::number::{fmt_q, parse_decimal, Q};
use crate::profile::Profile;
use num_traits::{ToPrimitive, Zero};
use std::cmp::Ordering;

/// Which greedy variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GreedyVariant {
    /// Skip what does not fit.
    Skip,
    /// Stop at the first project that does not fit.
    NoSkip,
    /// Skip, over projects whose key reaches META `min_project_score_threshold`.
    Threshold,
}

/// Where the greedy key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GreedyKey {
    /// The `score` column where present, else `votes`, else recomputed from the ballots.
    FileColumns,
    /// Recomputed: points (cumulative/scoring), ordinal score, else approvals.
    Recomputed,
}

/// Why a project was left out (for explanations and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnfundedReason {
    /// Below the threshold.
    BelowThreshold,
    /// Did not fit into what was left.
    DidNotFit,
    /// The count had stopped.
    Stopped,
}

fn recomputed_key(e: &Election, prof: &Profile, p: usize) -> Q {
    let v = if prof.has_points {
        prof.points[p]
    } else if e.vote_type == VoteType::Ordinal {
        prof.ordinal_score[p]
    } else {
        prof.approvals[p] as i64
    };
    Q::from_integer(v.into())
}

/// The greedy key of every project.
pub fn greedy_keys(e: &Election, prof: &Profile, key: GreedyKey) -> Vec<Q> {
    (0..e.projects.len())
        .map(|p| {
            if key == GreedyKey::FileColumns {
                for col in ["score", "votes"] {
                    if let Some(v) = e.project_cell(p, col) {
                        if let Ok(q) = parse_decimal(v) {
                            return q;
                        }
                    }
                }
            }
            recomputed_key(e, prof, p)
        })
        .collect()
}

/// Pabulib greedy rules (`greedy`, `greedy-no-skip`, `greedy-threshold`).
pub fn greedy(
    e: &Election,
    prof: &Profile,
    variant: GreedyVariant,
    key: GreedyKey,
    ties: &TieOrder,
    ex: &mut Explanation,
) -> Result<Vec<usize>, RuleError> {
    let keys = greedy_keys(e, prof, key);
    let threshold = if variant == GreedyVariant::Threshold {
        Some(
            e.meta("min_project_score_threshold")
                .and_then(|v| parse_decimal(v).ok())
                .ok_or(RuleError::NoThreshold)?,
        )
    } else {
        None
    };
    let mut order: Vec<usize> = (0..e.projects.len()).collect();
    order.sort_by(|&a, &b| keys[b].cmp(&keys[a]).then(ties.rank[a].cmp(&ties.rank[b])));
    let mut spent = Q::zero();
    let mut sel = Vec::new();
    let mut stopped_at: Option<usize> = None;
    for &p in &order {
        let cost = &e.projects[p].cost;
        if let Some(t) = &threshold {
            if &keys[p] < t {
                ex.unfunded.push(UnfundedExplanation {
                    project: e.projects[p].id.clone(),
                    cost: fmt_q(cost),
                    shortfall: None,
                    shortfall_exact: None,
                    reason: format!(
                        "key {} is below the threshold {}",
                        fmt_q(&keys[p]),
                        fmt_q(t)
                    ),
                });
                continue;
            }
        }
        if let Some(s) = stopped_at {
            ex.unfunded.push(UnfundedExplanation {
                project: e.projects[p].id.clone(),
                cost: fmt_q(cost),
                shortfall: None,
                shortfall_exact: None,
                reason: format!(
                    "the count stopped at project {} (greedy without skipping)",
                    e.projects[s].id
                ),
            });
            continue;
        }
        let left = &e.budget - &spent;
        if cost <= &left {
            spent += cost;
            sel.push(p);
            ex.rounds.push(RoundExplanation {
                project: e.projects[p].id.clone(),
                cost: fmt_q(cost),
                reason: format!(
                    "key {}; budget left after: {}",
                    fmt_q(&keys[p]),
                    fmt_q(&(&e.budget - &spent))
                ),
                rho: None,
                payments: Vec::new(),
            });
        } else {
            ex.unfunded.push(UnfundedExplanation {
                project: e.projects[p].id.clone(),
                cost: fmt_q(cost),
                shortfall: Some(fmt_q(&(cost - &left))),
                shortfall_exact: None,
                reason: format!(
                    "key {}; did not fit into the {} left",
                    fmt_q(&keys[p]),
                    fmt_q(&left)
                ),
            });
            if variant == GreedyVariant::NoSkip {
                stopped_at = Some(p);
            }
        }
    }
    Ok(sel)
}

/// Utility of a project to one listing with `points`.
fn check_utility(e: &Election, prof: &Profile, u: Utility) -> Result<(), RuleError> {
    if u == Utility::Cardinal {
        if !prof.has_points {
            return Err(RuleError::NeedsPoints("cardinal"));
        }
        if prof
            .ballots
            .iter()
            .any(|b| b.items.iter().any(|&(_, s)| s < 0))
        {
            return Err(RuleError::NegativePoints);
        }
    }
    let _ = e;
    Ok(())
}

/// Total utility of project `p` (exact).
pub fn total_utility(e: &Election, prof: &Profile, u: Utility, p: usize) -> Q {
    match u {
        Utility::Cost => &e.projects[p].cost * Q::from_integer(prof.approvals[p].into()),
        Utility::Approval => Q::from_integer(prof.approvals[p].into()),
        Utility::Cardinal => Q::from_integer(prof.points[p].into()),
    }
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Density {
    Finite(Q),
    Infinite,
}

/// pabutools `greedy_utilitarian_welfare` (additive): projects by total utility ÷ cost
/// (descending; ties by the tie order), each added if it fits, after `initial`.
pub fn greedy_utilitarian(
    e: &Election,
    prof: &Profile,
    u: Utility,
    initial: &[usize],
    ties: &TieOrder,
    ex: &mut Explanation,
) -> Result<Vec<usize>, RuleError> {
    check_utility(e, prof, u)?;
    let m = e.projects.len();
    let dens: Vec<Density> = (0..m)
        .map(|p| {
            let t = total_utility(e, prof, u, p);
            let c = &e.projects[p].cost;
            if t > Q::zero() {
                if c > &Q::zero() {
                    Density::Finite(t / c)
                } else {
                    Density::Infinite
                }
            } else {
                Density::Finite(Q::zero())
            }
        })
        .collect();
    let mut order: Vec<usize> = (0..m).filter(|p| !initial.contains(p)).collect();
    order.sort_by(|&a, &b| dens[b].cmp(&dens[a]).then(ties.rank[a].cmp(&ties.rank[b])));
    let mut sel: Vec<usize> = initial.to_vec();
    let mut left = &e.budget - super::total_cost(e, initial);
    for p in order {
        let c = &e.projects[p].cost;
        let d = match &dens[p] {
            Density::Finite(q) => fmt_q(q),
            Density::Infinite => "infinite".into(),
        };
        if c <= &left {
            left -= c;
            sel.push(p);
            ex.rounds.push(RoundExplanation {
                project: e.projects[p].id.clone(),
                cost: fmt_q(c),
                reason: format!(
                    "utility per unit of cost {d}; budget left after: {}",
                    fmt_q(&left)
                ),
                rho: None,
                payments: Vec::new(),
            });
        } else {
            ex.unfunded.push(UnfundedExplanation {
                project: e.projects[p].id.clone(),
                cost: fmt_q(c),
                shortfall: Some(fmt_q(&(c - &left))),
                shortfall_exact: None,
                reason: format!(
                    "utility per unit of cost {d}; did not fit into the {} left",
                    fmt_q(&left)
                ),
            });
        }
    }
    Ok(sel)
}

/// Maximum utilitarian welfare: a set maximising total utility within the budget, by an exact
/// branch and bound (integers after scaling). Among optimal sets the one found first is returned.
pub fn max_welfare(
    e: &Election,
    prof: &Profile,
    u: Utility,
    ex: &mut Explanation,
) -> Result<Vec<usize>, RuleError> {
    check_utility(e, prof, u)?;
    let m = e.projects.len();
    // common denominator of costs and budget, and of utilities
    let mut den = e.budget.denom().clone();
    for p in &e.projects {
        den = num_integer::Integer::lcm(&den, p.cost.denom());
    }
    let to_u128 = |q: &Q, d: &num_bigint::BigInt| -> Result<u128, RuleError> {
        (q * Q::from_integer(d.clone()))
            .to_integer()
            .to_u128()
            .filter(|&x| x < (1u128 << 100))
            .ok_or(RuleError::KnapsackTooLarge)
    };
    let cap = to_u128(&e.budget, &den)?;
    let utils: Vec<Q> = (0..m).map(|p| total_utility(e, prof, u, p)).collect();
    let mut uden = num_bigint::BigInt::from(1);
    for q in &utils {
        uden = num_integer::Integer::lcm(&uden, q.denom());
    }
    let mut sel = Vec::new();
    let mut items: Vec<(usize, u128, u128)> = Vec::new();
    for (p, up) in utils.iter().enumerate() {
        let w = to_u128(&e.projects[p].cost, &den)?;
        let v = to_u128(up, &uden)?;
        if v == 0 {
            continue;
        }
        if w == 0 {
            sel.push(p);
        } else if w <= cap {
            items.push((p, w, v));
        }
    }
    // density order, exact: v_a / w_a > v_b / w_b  <=>  v_a w_b > v_b w_a  (each < 2^100·2^100? use checked)
    let cmp = |a: &(usize, u128, u128), b: &(usize, u128, u128)| -> Ordering {
        let l = num_bigint::BigUint::from(a.2) * b.1;
        let r = num_bigint::BigUint::from(b.2) * a.1;
        r.cmp(&l).then(a.0.cmp(&b.0))
    };
    items.sort_by(cmp);
    let n = items.len();
    let limit: u64 = 20_000_000;
    let mut nodes = 0u64;
    let mut best_val: u128 = 0;
    let mut best_set: Vec<bool> = vec![false; n];
    let mut cur: Vec<bool> = vec![false; n];
    // greedy lower bound first
    {
        let mut c = 0u128;
        let mut v = 0u128;
        for (i, it) in items.iter().enumerate() {
            if c + it.1 <= cap {
                c += it.1;
                v += it.2;
                best_set[i] = true;
            }
        }
        best_val = best_val.max(v);
    }
    // upper bound: fractional relaxation from i with remaining capacity; returns (num, den) bound on extra value
    fn bound(
        items: &[(usize, u128, u128)],
        i: usize,
        mut room: u128,
    ) -> (num_bigint::BigUint, u128) {
        let mut v = num_bigint::BigUint::from(0u32);
        for it in &items[i..] {
            if it.1 <= room {
                room -= it.1;
                v += it.2;
            } else {
                // v + it.2 * room / it.1
                let num = v * it.1 + num_bigint::BigUint::from(it.2) * room;
                return (num, it.1);
            }
        }
        (v, 1)
    }
    #[allow(clippy::too_many_arguments)]
    fn dfs(
        items: &[(usize, u128, u128)],
        i: usize,
        room: u128,
        val: u128,
        cur: &mut Vec<bool>,
        best_val: &mut u128,
        best_set: &mut Vec<bool>,
        nodes: &mut u64,
        limit: u64,
    ) -> bool {
        *nodes += 1;
        if *nodes > limit {
            return false;
        }
        if val > *best_val {
            *best_val = val;
            best_set.clone_from(cur);
        }
        if i == items.len() {
            return true;
        }
        let (bn, bd) = bound(items, i, room);
        // prune if val + bn/bd <= best  <=>  bn <= (best - val) * bd
        if *best_val >= val {
            let need = num_bigint::BigUint::from(*best_val - val) * bd;
            if bn <= need {
                return true;
            }
        }
        let it = items[i];
        if it.1 <= room {
            cur[i] = true;
            if !dfs(
                items,
                i + 1,
                room - it.1,
                val + it.2,
                cur,
                best_val,
                best_set,
                nodes,
                limit,
            ) {
                return false;
            }
            cur[i] = false;
        }
        dfs(
            items,
            i + 1,
            room,
            val,
            cur,
            best_val,
            best_set,
            nodes,
            limit,
        )
    }
    if !dfs(
        &items,
        0,
        cap,
        0,
        &mut cur,
        &mut best_val,
        &mut best_set,
        &mut nodes,
        limit,
    ) {
        return Err(RuleError::KnapsackLimit(limit));
    }
    let mut chosen: Vec<usize> = items
        .iter()
        .zip(&best_set)
        .filter(|(_, &b)| b)
        .map(|(it, _)| it.0)
        .collect();
    chosen.sort_unstable();
    sel.extend(chosen);
    let welfare: Q = sel
        .iter()
        .map(|&p| utils[p].clone())
        .fold(Q::zero(), |a, b| a + b);
    ex.notes.push(format!(
        "maximum total utility {} (exact branch and bound, {nodes} nodes)",
        fmt_q(&welfare)
    ));
    let mut in_sel = vec![false; m];
    for &p in &sel {
        in_sel[p] = true;
        ex.rounds.push(RoundExplanation {
            project: e.projects[p].id.clone(),
            cost: fmt_q(&e.projects[p].cost),
            reason: format!(
                "part of the welfare-maximising set (utility {})",
                fmt_q(&utils[p])
            ),
            rho: None,
            payments: Vec::new(),
        });
    }
    for p in (0..m).filter(|&p| !in_sel[p]) {
        ex.unfunded.push(UnfundedExplanation {
            project: e.projects[p].id.clone(),
            cost: fmt_q(&e.projects[p].cost),
            shortfall: None,
            shortfall_exact: None,
            reason: "not in the welfare-maximising set".into(),
        });
    }
    Ok(sel)
}

/// Sequential Phragmén (pabutools `sequential_phragmen`): the project minimising the new maximal
/// load `(Σ supporters' loads + cost) / supporters` is added; the count stops as soon as a
/// project with the minimal load does not fit.
pub fn phragmen(
    e: &Election,
    prof: &Profile,
    ties: &TieOrder,
    ex: &mut Explanation,
) -> Result<Vec<usize>, RuleError> {
    if !matches!(e.vote_type, VoteType::Approval | VoteType::Choose1) {
        return Err(RuleError::NeedsApproval);
    }
    let m = e.projects.len();
    let mut remaining: Vec<usize> = (0..m).filter(|&p| e.projects[p].cost <= e.budget).collect();
    let nb = prof.ballots.len();
    // load of a ballot = load set in round last[b] (0 = never); loads[0] = 0
    let mut last = vec![0usize; nb];
    let mut loads: Vec<Q> = vec![Q::zero()];
    // cnt[p][r]: weight of supporters of p whose load was set in round r
    let mut cnt: Vec<Vec<u64>> = (0..m).map(|p| vec![prof.approvals[p]]).collect();
    let mut inv: Vec<Vec<u32>> = vec![Vec::new(); m];
    for (b, bal) in prof.ballots.iter().enumerate() {
        for &(p, _) in &bal.items {
            inv[p as usize].push(b as u32);
        }
    }
    let mut sel = Vec::new();
    let mut cost = Q::zero();
    loop {
        if remaining.is_empty() {
            break;
        }
        let mut best: Option<Q> = None; // None = infinite
        let mut tied: Vec<usize> = Vec::new();
        let mut first = true;
        for &p in &remaining {
            let a = prof.approvals[p];
            let nl = if a == 0 {
                None
            } else {
                let mut s = e.projects[p].cost.clone();
                for (r, &w) in cnt[p].iter().enumerate() {
                    if w > 0 && r > 0 {
                        s += &loads[r] * Q::from_integer(w.into());
                    }
                }
                Some(s / Q::from_integer(a.into()))
            };
            let ord = if first {
                Ordering::Less
            } else {
                match (&nl, &best) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Greater,
                    (Some(_), None) => Ordering::Less,
                    (Some(x), Some(y)) => x.cmp(y),
                }
            };
            first = false;
            match ord {
                Ordering::Less => {
                    best = nl;
                    tied = vec![p];
                }
                Ordering::Equal => tied.push(p),
                Ordering::Greater => {}
            }
        }
        let load_txt = best
            .as_ref()
            .map(fmt_q)
            .unwrap_or_else(|| "infinite".into());
        if let Some(&p) = tied
            .iter()
            .find(|&&p| &cost + &e.projects[p].cost > e.budget)
        {
            ex.notes.push(format!(
                "stopped: project {} (new maximal load {load_txt}) does not fit",
                e.projects[p].id
            ));
            break;
        }
        let Some(p) = ties.first(&tied) else { break };
        cost += &e.projects[p].cost;
        sel.push(p);
        remaining.retain(|&q| q != p);
        let r = loads.len();
        loads.push(best.clone().unwrap_or_default());
        for c in cnt.iter_mut() {
            c.push(0);
        }
        for &b in &inv[p] {
            let b = b as usize;
            let w = prof.ballots[b].weight;
            let old = last[b];
            for &(q, _) in &prof.ballots[b].items {
                cnt[q as usize][old] -= w;
                cnt[q as usize][r] += w;
            }
            last[b] = r;
        }
        ex.rounds.push(RoundExplanation {
            project: e.projects[p].id.clone(),
            cost: fmt_q(&e.projects[p].cost),
            reason: format!(
                "lowest new maximal load {load_txt} of its {} supporters",
                prof.approvals[p]
            ),
            rho: None,
            payments: Vec::new(),
        });
    }
    for &p in &remaining {
        ex.unfunded.push(UnfundedExplanation {
            project: e.projects[p].id.clone(),
            cost: fmt_q(&e.projects[p].cost),
            shortfall: None,
            shortfall_exact: None,
            reason: "not reached before the count stopped".into(),
        });
    }
    Ok(sel)
}
