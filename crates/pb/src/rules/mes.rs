//! The Method of Equal Shares (pabutools `method_of_equal_shares`), its Add1 completions and
//! the comparison step.
//!
//! Voters are kept in *budget classes*: voters whose utilities agree on every project selected so
//! far have paid the same and so hold the same (exact) budget. A class is split when a selected
//! project is supported by part of it. Each project keeps the list of classes supporting it, so a
//! price computation touches classes, not voters. Prices `t` (money per unit of score) and
//! budgets are exact rationals; an `f64` shadow of every budget is used to find the poor/rich
//! partition quickly, and the exact price is accepted only when the partition is provably right
//! (otherwise the exact sorted algorithm runs).

use super::basic::{greedy_utilitarian, total_utility};
use super::{
    popularity, total_cost, Baseline, Completion, Explanation, PaymentGroup, RoundExplanation,
    RuleError, TallyOptions, TieOrder, UnfundedExplanation, Utility, VoterExplanation,
};
use crate::model::Election;
use crate::number::{fmt_money, fmt_q, q_f64, ratio_f64, Q};
use crate::profile::Profile;
use num_bigint::BigInt;
use num_traits::{One, Signed, ToPrimitive, Zero};
use std::cmp::Ordering;

/// Static data of an MES computation. Money is scaled by `scale` so that every cost and the
/// budget are integers.
pub struct MesInput<'a> {
    e: &'a Election,
    prof: &'a Profile,
    scale: BigInt,
    cost_i: Vec<BigInt>,
    cost_f: Vec<f64>,
    /// utility of one score point of project p (its scaled cost for cost utilities, else 1)
    unit_i: Vec<BigInt>,
    unit_f: Vec<f64>,
    /// the projects with score > 0 of every distinct ballot, in one array: ballot b's are
    /// `items[items_at[b]..items_at[b + 1]]` (2 bytes each when the indices fit, so that the
    /// ballots walked in a class split stay in the processor's cache)
    items: ItemProjects,
    /// the scores, parallel to `items`; `None` when every score is 1
    item_scores: Option<Vec<u32>>,
    items_at: Vec<u32>,
    /// per project: (ballot, score)
    inv: Vec<Vec<(u32, u32)>>,
    /// per distinct ballot: its number of voters
    weights: Vec<u64>,
    /// projects MES considers (positive cost and support)
    pub projects: Vec<usize>,
    /// supported projects of cost zero (selected up front, as pabutools does)
    pub free: Vec<usize>,
    init_entries: Vec<Vec<Entry>>,
    init_centries: Vec<(u32, u32, u32)>,
    init_prev: Vec<f64>,
}

/// Project indices of ballot items.
enum ItemProjects {
    Small(Vec<u16>),
    Large(Vec<u32>),
}

/// Voters with equal budgets: budget = `n · factors[epoch] / d` (scaled money).
#[derive(Clone)]
struct Class {
    n: BigInt,
    epoch: u32,
    bf: f64,
    w: u64,
    /// the class's supporter-list entries are `State::cent[cent_at .. cent_at + cent_len]`
    cent_at: u32,
    cent_len: u32,
}

#[derive(Clone, Copy)]
struct Entry {
    class: u32,
    s: u32,
    w: u64,
}

/// What one round's class split did to the class structure: the round's records are
/// `Lane::dec[..dec_end]`, `Lane::push[..push_end]` and `Lane::moved[..moved_end]` after the
/// previous round's ends.
#[derive(Clone, Copy)]
struct SplitLog {
    win: usize,
    dec_end: usize,
    push_end: usize,
    moved_end: usize,
}

/// One Add1 lane: the structural record of its previous MES run, and buffers kept from run to
/// run (so a run does not allocate them again).
///
/// The class structure (classes, their weights, the supporter lists, which class each ballot is
/// in) depends only on the sequence of winners, not on the endowment, so a later run whose
/// winners so far agree with an earlier run's replays the records instead of walking the
/// ballots again.
#[derive(Default)]
pub struct Lane {
    rounds: Vec<SplitLog>,
    /// `(project, entry index, weight moved out of that entry)`
    dec: Vec<(u32, u32, u64)>,
    /// new supporter-list entries, in push order (grouped by class): `(project, entry)`
    push: Vec<(u32, Entry)>,
    /// `(ballot, new class)`: ballots that moved to a new class
    moved: Vec<(u32, u32)>,
    /// per round, `words` words: the projects left out of the new lists as unaffordable (a
    /// round is replayed only in a run where all of them are unaffordable too)
    gone: Vec<u64>,
    words: usize,
    /// rounds replayed so far (all runs)
    replayed: usize,
    bufs: Option<Buffers>,
}

/// The vectors of a [`State`] and the scratch space of a class split, kept between runs.
#[derive(Default)]
struct Buffers {
    class_of: Vec<u32>,
    entries: Vec<Vec<Entry>>,
    cent: Vec<(u32, u32, u32)>,
    classes: Vec<Class>,
    sc: Scratch,
}

/// Scratch space of a class split.
#[derive(Default)]
struct Scratch {
    /// per project: index in `gathered` of its first entry, or `u32::MAX`
    slot: Vec<u32>,
    gathered: Vec<Gathered>,
    split: Vec<(u32, u32, u32)>,
    old_of: Vec<u32>,
    split_at: Vec<u32>,
    moved: Vec<(u32, u32)>,
    start: Vec<usize>,
    fill: Vec<usize>,
    order: Vec<u32>,
}

/// An entry of the class being split, and the weight of its moving ballots.
#[derive(Clone, Copy)]
struct Gathered {
    q: u32,
    s: u32,
    /// index of the old class's entry in `entries[q]`
    idx: u32,
    w: u64,
}

/// One MES round.
#[derive(Debug, Clone)]
pub struct Round {
    /// The selected project.
    pub project: usize,
    /// Price per unit of utility (the "affordability" ρ); only filled in detailed runs.
    pub rho: Q,
    /// Payment per score point (`ρ × unit`, currency); only filled in detailed runs.
    pub t: Q,
    /// `(voters, each paid)` for the supporters; only filled in detailed runs.
    pub payments: Vec<(u64, Q)>,
}

/// The result of one MES run with a fixed endowment.
#[derive(Debug, Clone)]
pub struct MesRun {
    /// Endowment per voter.
    pub endowment: Q,
    /// Selected projects in order (cost-zero supported projects first).
    pub selected: Vec<usize>,
    /// The rounds.
    pub rounds: Vec<Round>,
    /// For every MES project not selected: money its supporters had left at the end.
    pub left_over: Vec<(usize, Q)>,
}

/// A candidate price: `t = num / (d · den)` (scaled money per score point) and `ρ ≈ rf`.
#[derive(Clone)]
struct Price {
    p: usize,
    /// `None`: nobody is short, `num = cost · d`
    num: Option<BigInt>,
    den: u128,
    rf: f64,
}

struct State {
    d: BigInt,
    factors: Vec<BigInt>,
    classes: Vec<Class>,
    class_of: Vec<u32>,
    /// per project: its supporters as `(class, score, weight)` (weight 0: moved away)
    entries: Vec<Vec<Entry>>,
    /// per class (see `Class::cent_at`): `(project, score, index in entries[project])`, sorted,
    /// without the projects selected when the class was made
    cent: Vec<(u32, u32, u32)>,
    /// left out of new classes' supporter lists: selected so far, or found unaffordable so far
    /// (not in detailed runs, which report what the supporters of these have left)
    left_out: Vec<bool>,
    /// `is_gone` as a bit set
    gone_bits: Vec<u64>,
    sc: Scratch,
}

impl State {
    fn value(&self, c: usize) -> BigInt {
        class_value(&self.classes, &self.factors, c)
    }
}

/// The budget numerator (over `State::d`) of class `c`.
fn class_value(classes: &[Class], factors: &[BigInt], c: usize) -> BigInt {
    let cl = &classes[c];
    let f = &factors[cl.epoch as usize];
    if f.is_one() {
        cl.n.clone()
    } else {
        &cl.n * f
    }
}

fn big(x: u128) -> BigInt {
    BigInt::from(x)
}

impl<'a> MesInput<'a> {
    /// Prepares MES for an election and a utility.
    pub fn new(e: &'a Election, prof: &'a Profile, u: Utility) -> Result<Self, RuleError> {
        let m = e.projects.len();
        if u == Utility::Cardinal && !prof.has_points {
            return Err(RuleError::NeedsPoints("cardinal"));
        }
        let mut items: Vec<(u32, u32)> = Vec::new();
        let mut items_at: Vec<u32> = Vec::with_capacity(prof.ballots.len() + 1);
        items_at.push(0);
        let mut inv: Vec<Vec<(u32, u32)>> = vec![Vec::new(); m];
        for (bi, b) in prof.ballots.iter().enumerate() {
            let mut it = Vec::with_capacity(b.items.len());
            for &(p, pts) in &b.items {
                let s = match u {
                    Utility::Cardinal => {
                        if pts < 0 {
                            return Err(RuleError::NegativePoints);
                        }
                        u32::try_from(pts).map_err(|_| RuleError::NegativePoints)?
                    }
                    _ => 1,
                };
                if s > 0 {
                    it.push((p, s));
                    inv[p as usize].push((bi as u32, s));
                }
            }
            items.extend_from_slice(&it);
            items_at.push(items.len() as u32);
        }
        let mut scale = e.budget.denom().clone();
        for p in &e.projects {
            scale = num_integer::Integer::lcm(&scale, p.cost.denom());
        }
        let sq = Q::from_integer(scale.clone());
        let cost_i: Vec<BigInt> = e
            .projects
            .iter()
            .map(|p| (&p.cost * &sq).to_integer())
            .collect();
        let unit_i: Vec<BigInt> = (0..m)
            .map(|p| match u {
                Utility::Cost => cost_i[p].clone(),
                _ => BigInt::one(),
            })
            .collect();
        let mut projects = Vec::new();
        let mut free = Vec::new();
        for (p, ip) in inv.iter().enumerate() {
            if ip.is_empty() {
                continue;
            }
            if e.projects[p].cost.is_zero() {
                // pabutools: total satisfaction > 0 and cost 0: selected up front (for cost
                // utilities the satisfaction is 0, so such projects are ignored)
                if u != Utility::Cost {
                    free.push(p);
                }
            } else {
                projects.push(p);
            }
        }
        let mut init_entries: Vec<Vec<Entry>> = vec![Vec::new(); m];
        let mut init_centries = Vec::new();
        let mut init_prev = vec![0.0; m];
        for &p in &projects {
            let mut by_s: Vec<(u32, u64)> = Vec::new();
            for &(b, s) in &inv[p] {
                let w = prof.ballots[b as usize].weight;
                match by_s.iter_mut().find(|x| x.0 == s) {
                    Some(x) => x.1 += w,
                    None => by_s.push((s, w)),
                }
            }
            by_s.sort_unstable();
            let mut total: u128 = 0;
            for (s, w) in by_s {
                total += u128::from(s) * u128::from(w);
                init_centries.push((p as u32, s, init_entries[p].len() as u32));
                init_entries[p].push(Entry { class: 0, s, w });
            }
            // a lower bound of ρ: everybody pays in proportion to utility
            init_prev[p] = ratio_f64(&cost_i[p], &(big(total) * &unit_i[p])) * (1.0 - 1e-9);
        }
        init_centries.sort_unstable();
        let item_scores = if items.iter().all(|x| x.1 == 1) {
            None
        } else {
            Some(items.iter().map(|x| x.1).collect())
        };
        let items = if m <= 1 << 16 {
            ItemProjects::Small(items.iter().map(|x| x.0 as u16).collect())
        } else {
            ItemProjects::Large(items.iter().map(|x| x.0).collect())
        };
        Ok(Self {
            item_scores,
            init_entries,
            init_centries,
            init_prev,
            e,
            prof,
            cost_f: cost_i
                .iter()
                .map(|c| ratio_f64(c, &BigInt::one()))
                .collect(),
            unit_f: unit_i
                .iter()
                .map(|c| ratio_f64(c, &BigInt::one()))
                .collect(),
            scale,
            cost_i,
            unit_i,
            items,
            items_at,
            inv,
            weights: prof.ballots.iter().map(|b| b.weight).collect(),
            projects,
            free,
        })
    }

    /// Ballot b's `(project, score)` items.
    fn ballot_items(&self, b: usize) -> Vec<(u32, u32)> {
        let r = self.items_at[b] as usize..self.items_at[b + 1] as usize;
        let ps: Vec<u32> = match &self.items {
            ItemProjects::Small(v) => v[r.clone()].iter().map(|&p| u32::from(p)).collect(),
            ItemProjects::Large(v) => v[r.clone()].to_vec(),
        };
        match &self.item_scores {
            None => ps.into_iter().map(|p| (p, 1)).collect(),
            Some(sc) => ps.into_iter().zip(sc[r].iter().copied()).collect(),
        }
    }

    /// One MES run with endowment `e0` per voter (currency units).
    pub fn run(&self, e0: &Q, ties: &TieOrder, detail: bool) -> MesRun {
        self.run_lane(e0, ties, detail, &mut Lane::default())
    }

    /// One MES run in a lane: the class splits of the rounds whose winners agree with the
    /// lane's previous run are replayed from its record, and the record is then updated to this
    /// run.
    pub fn run_lane(&self, e0: &Q, ties: &TieOrder, detail: bool, lane: &mut Lane) -> MesRun {
        let nb = self.prof.ballots.len();
        let m = self.e.projects.len();
        let e0s = e0 * Q::from_integer(self.scale.clone());
        let mut bufs = lane.bufs.take().unwrap_or_default();
        bufs.class_of.clear();
        bufs.class_of.resize(nb, 0);
        bufs.entries.resize_with(m, Vec::new);
        for (en, init) in bufs.entries.iter_mut().zip(&self.init_entries) {
            en.clear();
            en.extend_from_slice(init);
        }
        bufs.cent.clear();
        bufs.cent.extend_from_slice(&self.init_centries);
        bufs.classes.clear();
        bufs.sc.slot.clear();
        bufs.sc.slot.resize(m, u32::MAX);
        bufs.classes.push(Class {
            n: e0s.numer().clone(),
            epoch: 0,
            bf: q_f64(&e0s),
            w: self.prof.n_voters,
            cent_at: 0,
            cent_len: self.init_centries.len() as u32,
        });
        let mut left_out = vec![false; m];
        for &p in &self.free {
            left_out[p] = true;
        }
        let mut st = State {
            d: e0s.denom().clone(),
            factors: vec![BigInt::one()],
            classes: bufs.classes,
            class_of: bufs.class_of,
            entries: bufs.entries,
            cent: bufs.cent,
            left_out,
            gone_bits: vec![0; m.div_ceil(64)],
            sc: bufs.sc,
        };
        lane.words = m.div_ceil(64);
        let mut prev = self.init_prev.clone();
        let mut active: Vec<usize> = self.projects.clone();
        let mut selected: Vec<usize> = self.free.clone();
        let mut rounds: Vec<Round> = Vec::new();
        // rounds replayed from the record so far (`usize::MAX` once the run has diverged)
        let mut synced_upto = 0usize;
        let mut poor: Vec<bool> = Vec::new();
        loop {
            active.sort_by(|&a, &b| prev[a].total_cmp(&prev[b]));
            let mut best: Option<(Price, Vec<Price>)> = None;
            let mut gone: Vec<usize> = Vec::new();
            for &p in &active {
                if let Some((b, _)) = &best {
                    if prev[p] > b.rf * (1.0 + 1e-12) {
                        break;
                    }
                }
                match self.price(p, &st, &mut poor) {
                    None => gone.push(p),
                    Some((num, den)) => {
                        let rf = match &num {
                            Some(n) => ratio_f64(n, &(&st.d * big(den))) / self.unit_f[p],
                            None => self.cost_f[p] / (den as f64 * self.unit_f[p]),
                        };
                        let cand = Price { p, num, den, rf };
                        let ord = match &best {
                            None => Ordering::Less,
                            Some((b, _)) => self.cmp_price(&cand, b, &st.d),
                        };
                        prev[p] = rf * (1.0 - 1e-12);
                        match ord {
                            Ordering::Less => best = Some((cand.clone(), vec![cand])),
                            Ordering::Equal => {
                                if let Some(b) = best.as_mut() {
                                    b.1.push(cand)
                                }
                            }
                            Ordering::Greater => {}
                        }
                    }
                }
            }
            if !gone.is_empty() {
                active.retain(|p| !gone.contains(p));
                if !detail {
                    for &p in &gone {
                        st.left_out[p] = true;
                        st.gone_bits[p / 64] |= 1 << (p % 64);
                    }
                }
            }
            let Some((_, tied)) = best else { break };
            let tied_ids: Vec<usize> = tied.iter().map(|x| x.p).collect();
            let Some(win) = ties.first(&tied_ids) else {
                break;
            };
            let Some(price) = tied.into_iter().find(|x| x.p == win) else {
                break;
            };
            active.retain(|&p| p != win);
            selected.push(win);
            st.left_out[win] = true;
            let r = rounds.len();
            let replay = synced_upto == r
                && lane.rounds.get(r).is_some_and(|l| l.win == win)
                && lane.gone[r * lane.words..(r + 1) * lane.words]
                    .iter()
                    .zip(&st.gone_bits)
                    .all(|(rec, now)| rec & !now == 0);
            let round = if replay {
                synced_upto = r + 1;
                lane.replayed += 1;
                self.apply(price, &mut st, detail, lane, Split::Replay(r))
            } else {
                if synced_upto == r {
                    // first divergence: bring `class_of` up to date, drop the rest
                    let moved_end = if r == 0 {
                        0
                    } else {
                        lane.rounds[r - 1].moved_end
                    };
                    for &(b, nc) in &lane.moved[..moved_end] {
                        st.class_of[b as usize] = nc;
                    }
                    lane.truncate(r);
                    synced_upto = usize::MAX;
                }
                self.apply(price, &mut st, detail, lane, Split::Fresh)
            };
            rounds.push(round);
        }
        if synced_upto != usize::MAX {
            lane.truncate(synced_upto);
        }
        let mut left_over = Vec::new();
        if detail {
            let dq = &st.d * &self.scale;
            for &p in &self.projects {
                if selected.contains(&p) {
                    continue;
                }
                let mut s = BigInt::zero();
                for en in &st.entries[p] {
                    if en.w > 0 {
                        s += st.value(en.class as usize) * BigInt::from(en.w);
                    }
                }
                left_over.push((p, Q::new(s, dq.clone())));
            }
        }
        lane.bufs = Some(Buffers {
            class_of: st.class_of,
            entries: st.entries,
            cent: st.cent,
            classes: st.classes,
            sc: st.sc,
        });
        MesRun {
            endowment: e0.clone(),
            selected,
            rounds,
            left_over,
        }
    }

    /// Exact comparison of two prices' ρ (`ρ = num / (d · den · unit)`; same `d`).
    fn num_of(&self, a: &Price, d: &BigInt) -> BigInt {
        match &a.num {
            Some(n) => n.clone(),
            None => &self.cost_i[a.p] * d,
        }
    }

    fn cmp_price(&self, a: &Price, b: &Price, d: &BigInt) -> Ordering {
        if a.rf < b.rf * (1.0 - 1e-12) {
            return Ordering::Less;
        }
        if a.rf > b.rf * (1.0 + 1e-12) {
            return Ordering::Greater;
        }
        let l = self.num_of(a, d) * big(b.den) * &self.unit_i[b.p];
        let r = self.num_of(b, d) * big(a.den) * &self.unit_i[a.p];
        l.cmp(&r)
    }

    /// Exact payment per score point `t = num / (d · den)` at which the supporters of `p` can
    /// buy it, or `None` when they cannot afford it.
    fn price(&self, p: usize, st: &State, poor: &mut Vec<bool>) -> Option<(Option<BigInt>, u128)> {
        let ents = &st.entries[p];
        let classes = &st.classes;
        let cf = self.cost_f[p];
        {
            let mut den: u128 = 0;
            let mut min_r = f64::INFINITY;
            for en in ents {
                if en.w == 0 {
                    continue;
                }
                den += u128::from(en.s) * u128::from(en.w);
                let r = classes[en.class as usize].bf / f64::from(en.s);
                if r < min_r {
                    min_r = r;
                }
            }
            if den == 0 {
                return self.price_exact(p, st).map(|(n, d)| (Some(n), d));
            }
            if min_r > cf / den as f64 * (1.0 + 1e-9) {
                return Some((None, den));
            }
        }
        poor.clear();
        poor.resize(ents.len(), false);
        let mut den: u128 = 0;
        for en in ents {
            den += u128::from(en.s) * u128::from(en.w);
        }
        let mut den_f = den as f64;
        let mut paid_f = 0.0f64;
        let mut t_f;
        loop {
            if den == 0 {
                return self.price_exact(p, st).map(|(n, d)| (Some(n), d));
            }
            t_f = (cf - paid_f) / den_f;
            let mut changed = false;
            for (i, en) in ents.iter().enumerate() {
                if en.w == 0 || poor[i] {
                    continue;
                }
                let bf = classes[en.class as usize].bf;
                if bf < t_f * f64::from(en.s) {
                    poor[i] = true;
                    paid_f += en.w as f64 * bf;
                    den -= u128::from(en.s) * u128::from(en.w);
                    den_f = den as f64;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        if t_f.is_nan() || t_f <= 0.0 {
            return self.price_exact(p, st).map(|(n, d)| (Some(n), d));
        }
        // the partition must be clear of the boundary
        for en in ents {
            if en.w == 0 {
                continue;
            }
            let r = t_f * f64::from(en.s);
            if (classes[en.class as usize].bf - r).abs() <= 1e-9 * r {
                return self.price_exact(p, st).map(|(n, d)| (Some(n), d));
            }
        }
        let mut paid = BigInt::zero();
        for (i, en) in ents.iter().enumerate() {
            if en.w > 0 && poor[i] {
                paid += st.value(en.class as usize) * BigInt::from(en.w);
            }
        }
        let num = &self.cost_i[p] * &st.d - paid;
        if num.is_positive() {
            let tf = ratio_f64(&num, &(&st.d * big(den)));
            if (tf - t_f).abs() <= 1e-10 * t_f {
                return Some((Some(num), den));
            }
        }
        self.price_exact(p, st).map(|(n, d)| (Some(n), d))
    }

    /// The exact algorithm (supporters sorted by budget ÷ score).
    fn price_exact(&self, p: usize, st: &State) -> Option<(BigInt, u128)> {
        // clearly unaffordable (float sum of positive terms, relative error far below 1e-7)
        let total_f: f64 = st.entries[p]
            .iter()
            .filter(|en| en.w > 0)
            .map(|en| en.w as f64 * st.classes[en.class as usize].bf)
            .sum();
        if total_f < self.cost_f[p] * (1.0 - 1e-7) {
            return None;
        }
        let cd = &self.cost_i[p] * &st.d;
        let mut v: Vec<(BigInt, Entry)> = Vec::new();
        let mut total = BigInt::zero();
        for en in st.entries[p].iter().filter(|en| en.w > 0) {
            let b = st.value(en.class as usize);
            total += &b * BigInt::from(en.w);
            v.push((b, *en));
        }
        if total < cd {
            return None;
        }
        // by budget ÷ score: b_i s_j < b_j s_i
        v.sort_by(|a, b| (&a.0 * BigInt::from(b.1.s)).cmp(&(&b.0 * BigInt::from(a.1.s))));
        let mut paid = BigInt::zero();
        let mut den: u128 = v
            .iter()
            .map(|(_, en)| u128::from(en.s) * u128::from(en.w))
            .sum();
        for (b, en) in &v {
            if den == 0 {
                break;
            }
            let num = &cd - &paid;
            // t·s <= b with t = num / (d·den) and b = value / d
            if &num * BigInt::from(en.s) <= b * big(den) {
                return Some((num, den));
            }
            paid += b * BigInt::from(en.w);
            den -= u128::from(en.s) * u128::from(en.w);
        }
        None
    }

    /// Charges the supporters of the winner and splits classes.
    fn apply(
        &self,
        price: Price,
        st: &mut State,
        detail: bool,
        lane: &mut Lane,
        split_mode: Split,
    ) -> Round {
        let win = price.p;
        let num0 = self.num_of(&price, &st.d);
        // gcd(num0, den) = gcd(den, num0 mod den), all in u128
        let rem = (num0.magnitude() % price.den.max(1)).to_u128().unwrap_or(0);
        let g = num_integer::Integer::gcd(&price.den, &rem);
        let (num, den) = if g > 1 {
            (num0 / big(g), big(price.den / g))
        } else {
            (num0, big(price.den))
        };
        if !den.is_one() {
            st.d *= &den;
            for f in st.factors.iter_mut() {
                *f *= &den;
            }
            st.factors.push(BigInt::one());
        }
        let now = (st.factors.len() - 1) as u32;
        let dq = &st.d * &self.scale;
        let (rho, t) = if detail {
            let t = Q::new(num.clone(), dq.clone());
            let rho = Q::new(num.clone(), &st.d * &self.unit_i[win]);
            (rho, t)
        } else {
            (Q::zero(), Q::zero())
        };
        let mut payments = Vec::new();
        let sc = &mut st.sc;
        // (old class, s) -> new class
        sc.split.clear();
        sc.old_of.clear();
        let first_new = st.classes.len() as u32;
        for en in st.entries[win].iter().filter(|e| e.w > 0) {
            let c = en.class as usize;
            let mut nv = class_value(&st.classes, &st.factors, c);
            let ts_s;
            let ts = if en.s == 1 {
                &num
            } else {
                ts_s = &num * BigInt::from(en.s);
                &ts_s
            };
            // pays t·s, or everything when that is less
            let paid = if nv < *ts {
                let all = std::mem::take(&mut nv);
                detail.then_some(all)
            } else {
                nv -= ts;
                detail.then(|| ts.clone())
            };
            if let Some(paid) = paid {
                payments.push((en.w, Q::new(paid, dq.clone())));
            }
            let bf = ratio_f64(&nv, &st.d);
            if en.w == st.classes[c].w {
                let cl = &mut st.classes[c];
                cl.n = nv;
                cl.epoch = now;
                cl.bf = bf;
            } else {
                let id = st.classes.len() as u32;
                st.classes.push(Class {
                    n: nv,
                    epoch: now,
                    bf,
                    w: en.w,
                    cent_at: 0,
                    cent_len: 0,
                });
                st.classes[c].w -= en.w;
                sc.split.push((en.class, en.s, id));
                sc.old_of.push(en.class);
            }
        }
        let round = Round {
            project: win,
            rho,
            t,
            payments,
        };
        let r = match split_mode {
            Split::Replay(r) => r,
            Split::Fresh => {
                let r = lane.rounds.len();
                self.split(st, lane, win, first_new);
                lane.gone.extend_from_slice(&st.gone_bits);
                lane.rounds.push(SplitLog {
                    win,
                    dec_end: lane.dec.len(),
                    push_end: lane.push.len(),
                    moved_end: lane.moved.len(),
                });
                debug_assert_eq!(r + 1, lane.rounds.len());
                return round;
            }
        };
        // replay round `r` of the lane's record
        let (dec_from, push_from) = match r.checked_sub(1) {
            Some(q) => (lane.rounds[q].dec_end, lane.rounds[q].push_end),
            None => (0, 0),
        };
        let log = lane.rounds[r];
        for &(q, idx, w) in &lane.dec[dec_from..log.dec_end] {
            st.entries[q as usize][idx as usize].w -= w;
        }
        for &(q, en) in &lane.push[push_from..log.push_end] {
            let cl = &mut st.classes[en.class as usize];
            if cl.cent_len == 0 {
                cl.cent_at = st.cent.len() as u32;
            }
            cl.cent_len += 1;
            let idx = st.entries[q as usize].len() as u32;
            st.entries[q as usize].push(en);
            st.cent.push((q, en.s, idx));
        }
        round
    }

    /// Adds the weight of each ballot in `order` to the `gathered` entry of each of its
    /// `(project, score)` items (`slot`: the first entry of each project, or `u32::MAX`).
    fn gather<T: Copy + Into<u32>>(
        &self,
        items: &[T],
        order: &[u32],
        slot: &[u32],
        gathered: &mut [Gathered],
    ) {
        let Some(scores) = &self.item_scores else {
            // every score is 1: at most one entry per project
            for &b in order {
                let w = self.weights[b as usize];
                let r = self.items_at[b as usize] as usize..self.items_at[b as usize + 1] as usize;
                for &q in &items[r] {
                    let q: u32 = q.into();
                    // u32::MAX (left out): past the end
                    if let Some(g) = gathered.get_mut(slot[q as usize] as usize) {
                        g.w += w;
                    }
                }
            }
            return;
        };
        for &b in order {
            let w = self.weights[b as usize];
            let r = self.items_at[b as usize] as usize..self.items_at[b as usize + 1] as usize;
            for (k, &q) in items[r.clone()].iter().enumerate() {
                let q: u32 = q.into();
                let sq = scores[r.start + k];
                // u32::MAX (left out): past the end
                let mut i = slot[q as usize] as usize;
                while i < gathered.len() && gathered[i].q == q {
                    if gathered[i].s == sq {
                        gathered[i].w += w;
                        break;
                    }
                    i += 1;
                }
            }
        }
    }

    /// Moves the winner's supporters in split classes to their new classes (`st.sc.split`:
    /// `(old class, score, new class)`; `st.sc.old_of`: the old class of each new class from
    /// `first_new` on) and gives the new classes their supporter lists, recording what it did
    /// in the lane. Selected and unaffordable projects are left out of the new lists.
    fn split(&self, st: &mut State, lane: &mut Lane, win: usize, first_new: u32) {
        let State {
            classes,
            class_of,
            entries,
            cent,
            left_out,
            sc,
            ..
        } = st;
        let k = sc.split.len();
        if k == 0 {
            return;
        }
        sc.split.sort_unstable();
        // first index in `split` of each split class
        sc.split_at.clear();
        sc.split_at.resize(first_new as usize, u32::MAX);
        for (i, x) in sc.split.iter().enumerate().rev() {
            sc.split_at[x.0 as usize] = i as u32;
        }
        // move ballots; `moved`: (local new class, ballot)
        sc.moved.clear();
        for &(b, s) in &self.inv[win] {
            let old = class_of[b as usize];
            let Some(&at) = sc.split_at.get(old as usize) else {
                continue;
            };
            let mut i = at as usize;
            while i < k && sc.split[i].0 == old {
                if sc.split[i].1 == s {
                    let nc = sc.split[i].2;
                    class_of[b as usize] = nc;
                    sc.moved.push((nc - first_new, b));
                    lane.moved.push((b, nc));
                    break;
                }
                i += 1;
            }
        }
        // moved ballots grouped by new class (counting sort)
        sc.start.clear();
        sc.start.resize(k + 1, 0);
        for &(l, _) in &sc.moved {
            sc.start[l as usize + 1] += 1;
        }
        for i in 0..k {
            sc.start[i + 1] += sc.start[i];
        }
        sc.order.clear();
        sc.order.resize(sc.moved.len(), 0);
        sc.fill.clear();
        sc.fill.extend_from_slice(&sc.start);
        for &(l, b) in &sc.moved {
            sc.order[sc.fill[l as usize]] = b;
            sc.fill[l as usize] += 1;
        }
        for l in 0..k {
            let nc = first_new + l as u32;
            let old = &classes[sc.old_of[l] as usize];
            let (ca, cl) = (old.cent_at as usize, old.cent_len as usize);
            // the old class's entries (sorted by project and score), minus selected projects
            sc.gathered.clear();
            for &(q, s, idx) in &cent[ca..ca + cl] {
                if left_out[q as usize] {
                    continue;
                }
                if sc.slot[q as usize] == u32::MAX {
                    sc.slot[q as usize] = sc.gathered.len() as u32;
                }
                sc.gathered.push(Gathered { q, s, idx, w: 0 });
            }
            let order = &sc.order[sc.start[l]..sc.start[l + 1]];
            match &self.items {
                ItemProjects::Small(v) => self.gather(v, order, &sc.slot, &mut sc.gathered),
                ItemProjects::Large(v) => self.gather(v, order, &sc.slot, &mut sc.gathered),
            }
            let at = cent.len();
            for g in &sc.gathered {
                sc.slot[g.q as usize] = u32::MAX;
                if g.w == 0 {
                    continue;
                }
                let list = &mut entries[g.q as usize];
                list[g.idx as usize].w -= g.w;
                lane.dec.push((g.q, g.idx, g.w));
                let en = Entry {
                    class: nc,
                    s: g.s,
                    w: g.w,
                };
                cent.push((g.q, g.s, list.len() as u32));
                list.push(en);
                lane.push.push((g.q, en));
            }
            let c = &mut classes[nc as usize];
            c.cent_at = at as u32;
            c.cent_len = (cent.len() - at) as u32;
        }
    }
}

/// How `apply` updates the class structure.
enum Split {
    /// Walk the winner's supporters (and record what was done in the lane).
    Fresh,
    /// Replay round `r` of the lane's record (the structure is known to be the recorded one).
    Replay(usize),
}

impl Lane {
    /// Keeps the first `r` rounds of the record.
    fn truncate(&mut self, r: usize) {
        self.rounds.truncate(r);
        let (d, p, m) = match self.rounds.last() {
            Some(l) => (l.dec_end, l.push_end, l.moved_end),
            None => (0, 0, 0),
        };
        self.dec.truncate(d);
        self.push.truncate(p);
        self.moved.truncate(m);
        self.gone.truncate(r * self.words);
    }
}

fn exhaustive(e: &Election, sel: &[usize], candidates: &[usize]) -> bool {
    let left = &e.budget - total_cost(e, sel);
    !candidates
        .iter()
        .any(|p| !sel.contains(p) && e.projects[*p].cost <= left)
}

/// MES with the completion and comparison of `opts`.
pub fn mes_full(
    e: &Election,
    prof: &Profile,
    opts: &TallyOptions,
    ties: &TieOrder,
    explain: bool,
    ex: &mut Explanation,
) -> Result<Vec<usize>, RuleError> {
    let input = MesInput::new(e, prof, opts.utility)?;
    if prof.n_voters == 0 {
        return Ok(Vec::new());
    }
    if !opts.increment.is_positive() && opts.completion != Completion::None {
        return Err(RuleError::BadIncrement);
    }
    let n = Q::from_integer(prof.n_voters.into());
    let mut e0 = &e.budget / &n;
    if opts.integral_start {
        e0 = e0.floor();
    }
    let start = e0.clone();
    let mut runs = 0usize;
    let run = match opts.completion {
        Completion::None => {
            runs = 1;
            input.run(&e0, ties, explain)
        }
        Completion::Add1 | Completion::Add1Utilitarian => {
            // The runs for e, e + inc, … are independent: compute a batch of them on all cores
            // and take the first decisive one in order (at most `batch - 1` runs are wasted).
            let batch = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .clamp(1, 4);
            let mut prev: Option<MesRun> = None;
            // lane i runs e + i·inc, e + (i + batch)·inc, …
            let mut lanes: Vec<Lane> = (0..batch).map(|_| Lane::default()).collect();
            'outer: loop {
                let es: Vec<Q> = (0..batch)
                    .map(|i| &e0 + &opts.increment * Q::from_integer(i.into()))
                    .collect();
                let results: Vec<MesRun> = if batch == 1 {
                    vec![input.run_lane(&es[0], ties, false, &mut lanes[0])]
                } else {
                    let input = &input;
                    let joined: Vec<Option<MesRun>> = std::thread::scope(|s| {
                        let hs: Vec<_> = es
                            .iter()
                            .zip(lanes.iter_mut())
                            .map(|(x, lane)| s.spawn(move || input.run_lane(x, ties, false, lane)))
                            .collect();
                        hs.into_iter().map(|h| h.join().ok()).collect()
                    });
                    joined
                        .into_iter()
                        .zip(&es)
                        .zip(lanes.iter_mut())
                        .map(|((r, x), lane)| {
                            r.unwrap_or_else(|| {
                                // a panicked lane may have left its record half-updated
                                *lane = Lane::default();
                                input.run(x, ties, false)
                            })
                        })
                        .collect()
                };
                for r in results {
                    runs += 1;
                    if total_cost(e, &r.selected) > e.budget {
                        break 'outer match prev {
                            Some(p) => p,
                            None => MesRun {
                                endowment: r.endowment.clone(),
                                selected: input.free.clone(),
                                rounds: Vec::new(),
                                left_over: Vec::new(),
                            },
                        };
                    }
                    if exhaustive(e, &r.selected, &input.projects) {
                        break 'outer r;
                    }
                    prev = Some(r);
                }
                e0 = &es[batch - 1] + &opts.increment;
            }
        }
    };
    let run = if explain && opts.completion != Completion::None {
        input.run(&run.endowment, ties, true)
    } else {
        run
    };
    let mut sel = run.selected.clone();
    ex.notes.push(format!(
        "Method of Equal Shares, {:?} utilities: start endowment {} per voter ({} voters); final endowment {} after {runs} run(s)",
        opts.utility,
        fmt_q(&start),
        prof.n_voters,
        fmt_q(&run.endowment)
    ));
    if explain {
        explain_run(e, prof, &input, &run, ex);
    }
    if opts.completion == Completion::Add1Utilitarian {
        let mut gex = Explanation::default();
        sel = greedy_utilitarian(e, prof, Utility::Cost, &sel, ties, &mut gex)?;
        ex.notes.push(format!(
            "utilitarian completion added {} project(s)",
            gex.rounds.len()
        ));
        for r in gex.rounds {
            ex.rounds.push(RoundExplanation {
                reason: format!("utilitarian completion: {}", r.reason),
                ..r
            });
        }
        ex.unfunded
            .retain(|u| !sel.iter().any(|&p| e.projects[p].id == u.project));
    }
    if let Some(base) = opts.comparison {
        let u = match base {
            Baseline::Votes => Utility::Cost,
            Baseline::Cardinality => Utility::Approval,
        };
        let mut gex = Explanation::default();
        let g = greedy_utilitarian(e, prof, u, &[], ties, &mut gex)?;
        let (pm, pg) = popularity(prof, &sel, &g);
        let switch = pg > pm;
        ex.notes.push(format!(
            "comparison step ({base:?} greedy): {pm} voters prefer MES, {pg} prefer greedy: {}",
            if switch {
                "greedy outcome adopted"
            } else {
                "MES outcome kept"
            }
        ));
        if switch {
            sel = g;
            ex.rounds = gex.rounds;
            ex.voters.clear();
            ex.unfunded = gex.unfunded;
        }
    }
    let _ = total_utility;
    Ok(sel)
}

fn explain_run(
    e: &Election,
    prof: &Profile,
    input: &MesInput<'_>,
    run: &MesRun,
    ex: &mut Explanation,
) {
    for &p in &input.free {
        ex.rounds.push(RoundExplanation {
            project: e.projects[p].id.clone(),
            cost: "0".into(),
            reason: "costs nothing and has supporters".into(),
            rho: None,
            payments: Vec::new(),
        });
    }
    for r in &run.rounds {
        let p = r.project;
        let supporters: u64 = r.payments.iter().map(|x| x.0).sum();
        let mut groups: Vec<(u64, Q)> = Vec::new();
        for (w, pay) in &r.payments {
            match groups.iter_mut().find(|g| &g.1 == pay) {
                Some(g) => g.0 += w,
                None => groups.push((*w, pay.clone())),
            }
        }
        groups.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
        let eff = if r.rho.is_zero() {
            "infinite".to_string()
        } else {
            format!("{:.4}", q_f64(&(Q::from_integer(1.into()) / &r.rho)))
        };
        ex.rounds.push(RoundExplanation {
            project: e.projects[p].id.clone(),
            cost: fmt_q(&e.projects[p].cost),
            reason: format!(
                "lowest price per unit of utility, ≈{:.6e} ({supporters} supporters; effective vote count {eff})",
                q_f64(&r.rho)
            ),
            rho: Some(fmt_q(&r.rho)),
            payments: groups
                .into_iter()
                .map(|(w, q)| PaymentGroup {
                    voters: w,
                    each: fmt_money(&q),
                    exact: fmt_q(&q),
                })
                .collect(),
        });
    }
    let selected: Vec<usize> = run.selected.clone();
    for p in 0..e.projects.len() {
        if selected.contains(&p) {
            continue;
        }
        let cost = &e.projects[p].cost;
        let (shortfall, reason) = match run.left_over.iter().find(|x| x.0 == p) {
            Some((_, left)) => {
                let short = cost - left;
                (
                    Some(short.clone().max(Q::zero())),
                    format!(
                        "its {} supporters had {} left after paying for the selected projects",
                        prof.approvals[p],
                        fmt_money(left)
                    ),
                )
            }
            None => (None, "no voter gets utility from it".to_string()),
        };
        ex.unfunded.push(UnfundedExplanation {
            project: e.projects[p].id.clone(),
            cost: fmt_q(cost),
            shortfall: shortfall.as_ref().map(fmt_money),
            shortfall_exact: shortfall.as_ref().map(fmt_q),
            reason,
        });
    }
    // per voter: replay the rounds on each distinct ballot
    let mut budgets: Vec<Q> = vec![run.endowment.clone(); prof.ballots.len()];
    let mut bought: Vec<Vec<(String, String)>> = vec![Vec::new(); prof.ballots.len()];
    let mut score_of: Vec<u32> = vec![0; e.projects.len()];
    for bi in 0..prof.ballots.len() {
        let items = input.ballot_items(bi);
        for &(p, s) in &items {
            score_of[p as usize] = s;
        }
        for r in &run.rounds {
            let s = score_of[r.project];
            if s == 0 {
                continue;
            }
            let ts = &r.t * Q::from_integer(s.into());
            let pay = if budgets[bi] < ts {
                budgets[bi].clone()
            } else {
                ts
            };
            budgets[bi] -= &pay;
            bought[bi].push((e.projects[r.project].id.clone(), fmt_money(&pay)));
        }
        for &(p, _) in &items {
            score_of[p as usize] = 0;
        }
    }
    let mut voters: Vec<(u32, usize)> = Vec::new();
    for (bi, b) in prof.ballots.iter().enumerate() {
        for &v in &b.voters {
            voters.push((v, bi));
        }
    }
    voters.sort_unstable();
    let endow = fmt_money(&run.endowment);
    for (v, bi) in voters {
        ex.voters.push(VoterExplanation {
            voter: e.voters[v as usize].id.clone(),
            endowment: endow.clone(),
            spent: fmt_money(&(&run.endowment - &budgets[bi])),
            kept: fmt_money(&budgets[bi]),
            bought: bought[bi].clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_election;
    use crate::rules::Ties;

    /// A random election with many voters and popular and unpopular projects.
    fn random_election(seed: u64, voters: usize, m: usize) -> Election {
        let mut x = seed;
        let mut next = |n: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % n
        };
        let costs: Vec<u64> = (0..m).map(|_| 100 * (1 + next(40))).collect();
        let budget = costs.iter().sum::<u64>() / 3;
        let mut s = format!("META\nkey;value\ndescription;r\ncountry;x\nunit;x\ninstance;x\nnum_projects;{m}\nnum_votes;{voters}\nbudget;{budget}\nvote_type;approval\nrule;unknown\ndate_begin;2026\ndate_end;2026\nPROJECTS\nproject_id;cost\n");
        for (j, c) in costs.iter().enumerate() {
            s += &format!("p{j};{c}\n");
        }
        s += "VOTES\nvoter_id;vote\n";
        for i in 0..voters {
            let k = 1 + next(5) as usize;
            let mut chosen: Vec<u64> = Vec::new();
            while chosen.len() < k {
                // skewed popularity: low indices are chosen more often
                let p = next(m as u64).min(next(m as u64));
                if !chosen.contains(&p) {
                    chosen.push(p);
                }
            }
            let ids: Vec<String> = chosen.iter().map(|p| format!("p{p}")).collect();
            s += &format!("v{i};{}\n", ids.join(","));
        }
        read_election(s.as_bytes(), "r").unwrap().0
    }

    /// Lanes replay recorded class splits and leave selected and unaffordable projects out of
    /// the supporter lists; the outcome of every run must be the one of a fresh run without
    /// record, and of a detailed run (which keeps every list).
    #[test]
    fn lane_runs_equal_fresh_and_detailed_runs() {
        for seed in 0..6u64 {
            let e = random_election(seed, 1500, 30);
            let prof = Profile::new(&e);
            let ties = TieOrder::new(&e, &prof, Ties::Pabutools);
            for u in [Utility::Cost, Utility::Approval] {
                let input = MesInput::new(&e, &prof, u).unwrap();
                let n = Q::from_integer(prof.n_voters.into());
                let e0 = &e.budget / &n;
                let inc = Q::new(1.into(), 7.into());
                let mut lane = Lane::default();
                let mut unaffordable = 0;
                for i in 0..25 {
                    let x = &e0 + &inc * Q::from_integer(i.into());
                    let a = input.run_lane(&x, &ties, false, &mut lane);
                    let b = input.run(&x, &ties, false);
                    let c = input.run(&x, &ties, true);
                    assert_eq!(a.selected, b.selected, "seed {seed} {u:?} run {i}");
                    assert_eq!(a.selected, c.selected, "seed {seed} {u:?} run {i}");
                    unaffordable += c
                        .left_over
                        .iter()
                        .filter(|(p, left)| *left < e.projects[*p].cost)
                        .count();
                }
                assert!(lane.replayed > 0 && unaffordable > 0);
            }
        }
    }
}
