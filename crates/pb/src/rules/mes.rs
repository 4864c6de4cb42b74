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
use num_traits::{One, Signed, Zero};
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
    /// per distinct ballot: (project, score) with score > 0
    items: Vec<(u32, u32)>,
    /// ballot b's items are `items[items_at[b]..items_at[b + 1]]` (one contiguous array)
    items_at: Vec<u32>,
    /// per project: (ballot, score)
    inv: Vec<Vec<(u32, u32)>>,
    /// projects MES considers (positive cost and support)
    pub projects: Vec<usize>,
    /// supported projects of cost zero (selected up front, as pabutools does)
    pub free: Vec<usize>,
    init_entries: Vec<Vec<Entry>>,
    init_centries: Vec<(u32, u32, u32)>,
    init_prev: Vec<f64>,
}

/// Voters with equal budgets: budget = `n · factors[epoch] / d` (scaled money).
#[derive(Clone)]
struct Class {
    n: BigInt,
    epoch: u32,
    bf: f64,
    w: u64,
}

#[derive(Clone, Copy)]
struct Entry {
    class: u32,
    s: u32,
    w: u64,
}

/// What one round's class split did to the class structure. The class structure (classes,
/// their weights, the supporter lists, which class each ballot is in) depends only on the
/// sequence of winners, not on the endowment, so a later Add1 run whose winners so far agree
/// with an earlier run's can replay these records instead of walking the ballots again.
struct SplitLog {
    win: usize,
    /// `(project, entry index, weight moved out of that entry)`
    dec: Vec<(u32, u32, u64)>,
    /// new supporter-list entries, in push order: `(project, entry)`
    push: Vec<(u32, Entry)>,
    /// `(ballot, new class)`: ballots that moved to a new class
    moved: Vec<(u32, u32)>,
}

/// The structural record of an earlier MES run (one [`SplitLog`] per round).
#[derive(Default)]
pub struct Trace {
    rounds: Vec<SplitLog>,
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
    entries: Vec<Vec<Entry>>,
    centries: Vec<Vec<(u32, u32, u32)>>,
}

impl State {
    fn value(&self, c: usize) -> BigInt {
        let cl = &self.classes[c];
        let f = &self.factors[cl.epoch as usize];
        if f.is_one() {
            cl.n.clone()
        } else {
            &cl.n * f
        }
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
        Ok(Self {
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
            projects,
            free,
        })
    }

    fn ballot_items(&self, b: usize) -> &[(u32, u32)] {
        &self.items[self.items_at[b] as usize..self.items_at[b + 1] as usize]
    }

    /// One MES run with endowment `e0` per voter (currency units).
    pub fn run(&self, e0: &Q, ties: &TieOrder, detail: bool) -> MesRun {
        self.run_traced(e0, ties, detail, None)
    }

    /// One MES run; with a trace, the class splits of the rounds whose winners agree with the
    /// traced run's are replayed from it, and the trace is then updated to this run.
    pub fn run_traced(
        &self,
        e0: &Q,
        ties: &TieOrder,
        detail: bool,
        mut trace: Option<&mut Trace>,
    ) -> MesRun {
        let nb = self.prof.ballots.len();
        let weights: Vec<u64> = self.prof.ballots.iter().map(|b| b.weight).collect();
        let e0s = e0 * Q::from_integer(self.scale.clone());
        let mut st = State {
            d: e0s.denom().clone(),
            factors: vec![BigInt::one()],
            classes: vec![Class {
                n: e0s.numer().clone(),
                epoch: 0,
                bf: q_f64(&e0s),
                w: self.prof.n_voters,
            }],
            class_of: vec![0u32; nb],
            entries: self.init_entries.clone(),
            centries: vec![self.init_centries.clone()],
        };
        let mut prev = self.init_prev.clone();
        let mut active: Vec<usize> = self.projects.clone();
        let mut selected: Vec<usize> = self.free.clone();
        let mut rounds: Vec<Round> = Vec::new();
        let mut scratch: Vec<bool> = Vec::new();
        // rounds replayed from the trace so far (`usize::MAX` once the run has diverged)
        let mut synced_upto = 0usize;
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
                match self.price(p, &st, &mut scratch) {
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
            let r = rounds.len();
            let round = match trace.as_deref_mut() {
                None => self.apply(price, &mut st, &weights, detail, Split::Fresh(None)),
                Some(tr) => {
                    if synced_upto == r && tr.rounds.get(r).is_some_and(|l| l.win == win) {
                        synced_upto = r + 1;
                        self.apply(
                            price,
                            &mut st,
                            &weights,
                            detail,
                            Split::Replay(&tr.rounds[r]),
                        )
                    } else {
                        if synced_upto == r {
                            // first divergence: bring `class_of` up to date, drop the rest
                            for l in &tr.rounds[..r] {
                                for &(b, nc) in &l.moved {
                                    st.class_of[b as usize] = nc;
                                }
                            }
                            tr.rounds.truncate(r);
                            synced_upto = usize::MAX;
                        }
                        let mut log = SplitLog {
                            win,
                            dec: Vec::new(),
                            push: Vec::new(),
                            moved: Vec::new(),
                        };
                        let round = self.apply(
                            price,
                            &mut st,
                            &weights,
                            detail,
                            Split::Fresh(Some(&mut log)),
                        );
                        tr.rounds.push(log);
                        round
                    }
                }
            };
            rounds.push(round);
        }
        if let Some(tr) = trace {
            if synced_upto != usize::MAX {
                tr.rounds.truncate(synced_upto);
            }
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
        weights: &[u64],
        detail: bool,
        split_mode: Split<'_>,
    ) -> Round {
        let win = price.p;
        let denb = big(price.den);
        let num0 = self.num_of(&price, &st.d);
        let g = num_integer::Integer::gcd(&num0, &denb);
        let num = &num0 / &g;
        let den = denb / &g;
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
        let win_entries: Vec<Entry> = st.entries[win]
            .iter()
            .copied()
            .filter(|e| e.w > 0)
            .collect();
        let mut payments = Vec::new();
        // (old class, s) -> new class
        let mut split: Vec<(u32, u32, u32)> = Vec::new();
        let first_new = st.classes.len() as u32;
        let mut old_of: Vec<u32> = Vec::new();
        for en in &win_entries {
            let c = en.class as usize;
            let v = st.value(c);
            let ts = &num * BigInt::from(en.s);
            let nv = if v < ts { BigInt::zero() } else { &v - &ts };
            if detail {
                payments.push((en.w, Q::new(&v - &nv, dq.clone())));
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
                });
                st.centries.push(Vec::new());
                st.classes[c].w -= en.w;
                split.push((en.class, en.s, id));
                old_of.push(en.class);
            }
        }
        let round = Round {
            project: win,
            rho,
            t,
            payments,
        };
        if split.is_empty() {
            return round;
        }
        let mut log = match split_mode {
            Split::Replay(l) => {
                for &(q, idx, w) in &l.dec {
                    st.entries[q as usize][idx as usize].w -= w;
                }
                for &(q, en) in &l.push {
                    let idx = st.entries[q as usize].len() as u32;
                    st.entries[q as usize].push(en);
                    st.centries[en.class as usize].push((q, en.s, idx));
                }
                return round;
            }
            Split::Fresh(l) => l,
        };
        split.sort_unstable();
        // move ballots and gather the new classes' entries
        let k = split.len();
        // moved ballots grouped by new class (counting sort)
        let mut moved: Vec<(u32, u32)> = Vec::new(); // (local new class, ballot)
                                                     // first index in `split` of each split class
        let mut split_at: Vec<u32> = vec![u32::MAX; first_new as usize];
        for (i, x) in split.iter().enumerate().rev() {
            split_at[x.0 as usize] = i as u32;
        }
        for &(b, s) in &self.inv[win] {
            let old = st.class_of[b as usize];
            let mut i = split_at[old as usize] as usize;
            if i == u32::MAX as usize {
                continue;
            }
            while i < split.len() && split[i].0 == old {
                if split[i].1 == s {
                    let nc = split[i].2;
                    st.class_of[b as usize] = nc;
                    moved.push((nc - first_new, b));
                    if let Some(l) = log.as_deref_mut() {
                        l.moved.push((b, nc));
                    }
                    break;
                }
                i += 1;
            }
        }
        let mut start = vec![0usize; k + 1];
        for &(l, _) in &moved {
            start[l as usize + 1] += 1;
        }
        for i in 0..k {
            start[i + 1] += start[i];
        }
        let mut order = vec![0u32; moved.len()];
        let mut fill = start.clone();
        for &(l, b) in &moved {
            order[fill[l as usize]] = b;
            fill[l as usize] += 1;
        }
        let m = self.e.projects.len();
        let mut slot: Vec<u32> = vec![u32::MAX; m];
        let mut gathered: Vec<(u32, u32, u64)> = Vec::new(); // (project, s, w) of one class
        for l in 0..k {
            let nc = first_new + l as u32;
            gathered.clear();
            for &b in &order[start[l]..start[l + 1]] {
                let w = weights[b as usize];
                for &(q, sq) in self.ballot_items(b as usize) {
                    let sl = slot[q as usize];
                    if sl != u32::MAX && gathered[sl as usize].1 == sq {
                        gathered[sl as usize].2 += w;
                    } else if sl == u32::MAX {
                        slot[q as usize] = gathered.len() as u32;
                        gathered.push((q, sq, w));
                    } else {
                        // another score for the same project (cardinal utilities)
                        match gathered.iter_mut().find(|x| x.0 == q && x.1 == sq) {
                            Some(x) => x.2 += w,
                            None => gathered.push((q, sq, w)),
                        }
                    }
                }
            }
            for x in &gathered {
                slot[x.0 as usize] = u32::MAX;
            }
            gathered.sort_unstable_by_key(|x| (x.0, x.1));
            let old = old_of[l];
            // both `gathered` and the old class's entries are sorted by (project, score): merge
            let mut j = 0usize;
            for &(q, sq, w) in &gathered {
                let ce = &st.centries[old as usize];
                while j < ce.len() && (ce[j].0, ce[j].1) < (q, sq) {
                    j += 1;
                }
                if j < ce.len() && (ce[j].0, ce[j].1) == (q, sq) {
                    let idx = ce[j].2 as usize;
                    st.entries[q as usize][idx].w -= w;
                    if let Some(l) = log.as_deref_mut() {
                        l.dec.push((q, idx as u32, w));
                    }
                }
                let idx = st.entries[q as usize].len() as u32;
                let en = Entry {
                    class: nc,
                    s: sq,
                    w,
                };
                st.entries[q as usize].push(en);
                if let Some(l) = log.as_deref_mut() {
                    l.push.push((q, en));
                }
                st.centries[nc as usize].push((q, sq, idx));
            }
        }
        round
    }
}

/// How `apply` updates the class structure.
enum Split<'a> {
    /// Walk the winner's supporters (and record what was done, if asked).
    Fresh(Option<&'a mut SplitLog>),
    /// Replay a recorded split (the structure is known to be the recorded one).
    Replay(&'a SplitLog),
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
            // one trace per lane: lane i runs e + i·inc, e + (i + batch)·inc, …
            let mut traces: Vec<Trace> = (0..batch).map(|_| Trace::default()).collect();
            'outer: loop {
                let es: Vec<Q> = (0..batch)
                    .map(|i| &e0 + &opts.increment * Q::from_integer(i.into()))
                    .collect();
                let results: Vec<MesRun> = if batch == 1 {
                    vec![input.run_traced(&es[0], ties, false, Some(&mut traces[0]))]
                } else {
                    let input = &input;
                    let joined: Vec<Option<MesRun>> = std::thread::scope(|s| {
                        let hs: Vec<_> = es
                            .iter()
                            .zip(traces.iter_mut())
                            .map(|(x, tr)| {
                                s.spawn(move || input.run_traced(x, ties, false, Some(tr)))
                            })
                            .collect();
                        hs.into_iter().map(|h| h.join().ok()).collect()
                    });
                    joined
                        .into_iter()
                        .zip(&es)
                        .zip(traces.iter_mut())
                        .map(|((r, x), tr)| {
                            r.unwrap_or_else(|| {
                                // a panicked lane may have left its trace half-updated
                                tr.rounds.clear();
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
        for &(p, s) in items {
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
        for &(p, _) in items {
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
