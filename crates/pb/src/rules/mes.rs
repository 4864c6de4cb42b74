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
use crate::number::{fmt_q, q_f64, Q};
use crate::profile::Profile;
use num_traits::{Signed, Zero};
use std::cmp::Ordering;

/// Static data of an MES computation.
pub struct MesInput<'a> {
    e: &'a Election,
    prof: &'a Profile,
    cost_f: Vec<f64>,
    /// utility of one score point of project p (its cost for cost utilities, else 1)
    unit: Vec<Q>,
    /// per distinct ballot: (project, score) with score > 0
    items: Vec<Vec<(u32, u32)>>,
    /// per project: (ballot, score)
    inv: Vec<Vec<(u32, u32)>>,
    /// projects MES considers (positive cost and support)
    pub projects: Vec<usize>,
    /// supported projects of cost zero (selected up front, as pabutools does)
    pub free: Vec<usize>,
}

#[derive(Clone)]
struct Class {
    b: Q,
    bf: f64,
    w: u64,
}

#[derive(Clone, Copy)]
struct Entry {
    class: u32,
    s: u32,
    w: u64,
}

/// One MES round.
#[derive(Debug, Clone)]
pub struct Round {
    /// The selected project.
    pub project: usize,
    /// Price per unit of utility (the "affordability" ρ).
    pub rho: Q,
    /// Payment per score point (`ρ × unit`).
    pub t: Q,
    /// `(voters, each paid)` for the supporters.
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

/// The best price so far: ρ, its `f64` shadow, and the tied projects with their `t`.
type Best = (Q, f64, Vec<(usize, Q)>);

fn cmp_fast(a: &Q, af: f64, b: &Q, bf: f64) -> Ordering {
    if af < bf * (1.0 - 1e-12) {
        Ordering::Less
    } else if af > bf * (1.0 + 1e-12) {
        Ordering::Greater
    } else {
        a.cmp(b)
    }
}

impl<'a> MesInput<'a> {
    /// Prepares MES for an election and a utility.
    pub fn new(e: &'a Election, prof: &'a Profile, u: Utility) -> Result<Self, RuleError> {
        let m = e.projects.len();
        if u == Utility::Cardinal && !prof.has_points {
            return Err(RuleError::NeedsPoints("cardinal"));
        }
        let mut items = Vec::with_capacity(prof.ballots.len());
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
            items.push(it);
        }
        let unit: Vec<Q> = (0..m)
            .map(|p| match u {
                Utility::Cost => e.projects[p].cost.clone(),
                _ => Q::from_integer(1.into()),
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
        Ok(Self {
            e,
            prof,
            cost_f: e.projects.iter().map(|p| q_f64(&p.cost)).collect(),
            unit,
            items,
            inv,
            projects,
            free,
        })
    }

    /// One MES run with endowment `e0` per voter.
    pub fn run(&self, e0: &Q, ties: &TieOrder, detail: bool) -> MesRun {
        let m = self.e.projects.len();
        let nb = self.prof.ballots.len();
        let weights: Vec<u64> = self.prof.ballots.iter().map(|b| b.weight).collect();
        let mut class_of = vec![0u32; nb];
        let mut classes = vec![Class {
            b: e0.clone(),
            bf: q_f64(e0),
            w: self.prof.n_voters,
        }];
        let mut entries: Vec<Vec<Entry>> = vec![Vec::new(); m];
        let mut centries: Vec<Vec<(u32, u32, u32)>> = vec![Vec::new()];
        let mut prev: Vec<(Q, f64)> = vec![(Q::zero(), 0.0); m];
        for &p in &self.projects {
            let mut by_s: Vec<(u32, u64)> = Vec::new();
            for &(b, s) in &self.inv[p] {
                match by_s.iter_mut().find(|x| x.0 == s) {
                    Some(x) => x.1 += weights[b as usize],
                    None => by_s.push((s, weights[b as usize])),
                }
            }
            by_s.sort_unstable();
            let mut total: u128 = 0;
            for (s, w) in by_s {
                total += u128::from(s) * u128::from(w);
                centries[0].push((p as u32, s, entries[p].len() as u32));
                entries[p].push(Entry { class: 0, s, w });
            }
            let rho0 = &self.e.projects[p].cost / (&self.unit[p] * Q::from_integer(total.into()));
            let f = q_f64(&rho0);
            prev[p] = (rho0, f);
        }
        centries[0].sort_unstable();
        let mut active: Vec<usize> = self.projects.clone();
        let mut selected: Vec<usize> = self.free.clone();
        let mut rounds: Vec<Round> = Vec::new();
        let mut scratch: Vec<bool> = Vec::new();
        loop {
            active.sort_by(|&a, &b| prev[a].1.total_cmp(&prev[b].1));
            let mut best: Option<Best> = None;
            let mut gone: Vec<usize> = Vec::new();
            for &p in &active {
                if let Some((_, bf, _)) = &best {
                    if prev[p].1 > bf * (1.0 + 1e-12) {
                        break;
                    }
                }
                match self.price(p, &classes, &entries[p], &mut scratch) {
                    None => gone.push(p),
                    Some(t) => {
                        let rho = &t / &self.unit[p];
                        let rf = q_f64(&rho);
                        let ord = match &best {
                            None => Ordering::Less,
                            Some((br, bf, _)) => cmp_fast(&rho, rf, br, *bf),
                        };
                        match ord {
                            Ordering::Less => best = Some((rho.clone(), rf, vec![(p, t)])),
                            Ordering::Equal => {
                                if let Some(b) = best.as_mut() {
                                    b.2.push((p, t))
                                }
                            }
                            Ordering::Greater => {}
                        }
                        prev[p] = (rho, rf);
                    }
                }
            }
            if !gone.is_empty() {
                active.retain(|p| !gone.contains(p));
            }
            let Some((rho, _, tied)) = best else { break };
            let tied_ids: Vec<usize> = tied.iter().map(|x| x.0).collect();
            let Some(win) = ties.first(&tied_ids) else {
                break;
            };
            let Some((_, t)) = tied.into_iter().find(|x| x.0 == win) else {
                break;
            };
            active.retain(|&p| p != win);
            selected.push(win);
            let payments = self.apply(
                win,
                &t,
                &mut classes,
                &mut class_of,
                &mut entries,
                &mut centries,
                &weights,
            );
            rounds.push(Round {
                project: win,
                rho,
                t,
                payments: if detail { payments } else { Vec::new() },
            });
        }
        let mut left_over = Vec::new();
        if detail {
            for &p in &self.projects {
                if selected.contains(&p) {
                    continue;
                }
                let mut s = Q::zero();
                for en in &entries[p] {
                    if en.w > 0 {
                        s += &classes[en.class as usize].b * Q::from_integer(en.w.into());
                    }
                }
                left_over.push((p, s));
            }
        }
        MesRun {
            endowment: e0.clone(),
            selected,
            rounds,
            left_over,
        }
    }

    /// Exact payment per score point at which the supporters of `p` can buy it, or `None`
    /// when they cannot afford it.
    fn price(
        &self,
        p: usize,
        classes: &[Class],
        ents: &[Entry],
        poor: &mut Vec<bool>,
    ) -> Option<Q> {
        let cf = self.cost_f[p];
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
                return self.price_exact(p, classes, ents);
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
            return self.price_exact(p, classes, ents);
        }
        // the partition must be clear of the boundary
        for en in ents {
            if en.w == 0 {
                continue;
            }
            let r = t_f * f64::from(en.s);
            if (classes[en.class as usize].bf - r).abs() <= 1e-9 * r {
                return self.price_exact(p, classes, ents);
            }
        }
        let mut paid = Q::zero();
        for (i, en) in ents.iter().enumerate() {
            if en.w > 0 && poor[i] {
                paid += &classes[en.class as usize].b * Q::from_integer(en.w.into());
            }
        }
        let t = (&self.e.projects[p].cost - paid) / Q::from_integer(den.into());
        let tf = q_f64(&t);
        if t.is_positive() && (tf - t_f).abs() <= 1e-10 * t_f {
            Some(t)
        } else {
            self.price_exact(p, classes, ents)
        }
    }

    /// The exact algorithm (supporters sorted by budget ÷ score).
    fn price_exact(&self, p: usize, classes: &[Class], ents: &[Entry]) -> Option<Q> {
        let c = &self.e.projects[p].cost;
        let mut v: Vec<(Q, &Entry)> = Vec::new();
        let mut total = Q::zero();
        for en in ents.iter().filter(|en| en.w > 0) {
            let b = &classes[en.class as usize].b;
            total += b * Q::from_integer(en.w.into());
            v.push((b / Q::from_integer(en.s.into()), en));
        }
        if &total < c {
            return None;
        }
        v.sort_by(|a, b| a.0.cmp(&b.0));
        let mut paid = Q::zero();
        let mut den: u128 = v
            .iter()
            .map(|(_, en)| u128::from(en.s) * u128::from(en.w))
            .sum();
        for (ratio, en) in &v {
            if den == 0 {
                break;
            }
            let t = (c - &paid) / Q::from_integer(den.into());
            if &t <= ratio {
                return Some(t);
            }
            paid += &classes[en.class as usize].b * Q::from_integer(en.w.into());
            den -= u128::from(en.s) * u128::from(en.w);
        }
        None
    }

    /// Charges the supporters of `win` and splits classes; returns `(voters, each paid)` groups.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        win: usize,
        t: &Q,
        classes: &mut Vec<Class>,
        class_of: &mut [u32],
        entries: &mut [Vec<Entry>],
        centries: &mut Vec<Vec<(u32, u32, u32)>>,
        weights: &[u64],
    ) -> Vec<(u64, Q)> {
        let win_entries: Vec<Entry> = entries[win].iter().copied().filter(|e| e.w > 0).collect();
        let mut payments = Vec::with_capacity(win_entries.len());
        // (old class, s) -> new class
        let mut split: Vec<(u32, u32, u32)> = Vec::new();
        let first_new = classes.len() as u32;
        let mut old_of: Vec<u32> = Vec::new();
        for en in &win_entries {
            let c = en.class as usize;
            let ts = t * Q::from_integer(en.s.into());
            let tsf = q_f64(&ts);
            let bf = classes[c].bf;
            let pay = if cmp_fast(&classes[c].b, bf, &ts, tsf) == Ordering::Less {
                classes[c].b.clone()
            } else {
                ts
            };
            let nb = &classes[c].b - &pay;
            payments.push((en.w, pay));
            if en.w == classes[c].w {
                classes[c].bf = q_f64(&nb);
                classes[c].b = nb;
            } else {
                let id = classes.len() as u32;
                classes.push(Class {
                    bf: q_f64(&nb),
                    b: nb,
                    w: en.w,
                });
                centries.push(Vec::new());
                classes[c].w -= en.w;
                split.push((en.class, en.s, id));
                old_of.push(en.class);
            }
        }
        if split.is_empty() {
            return payments;
        }
        split.sort_unstable();
        // move ballots and gather the new classes' entries
        let mut acc: Vec<(u32, u32, u32, u64)> = Vec::new(); // (new class, project, s, w)
        for &(b, s) in &self.inv[win] {
            let old = class_of[b as usize];
            if let Ok(i) = split.binary_search_by(|x| (x.0, x.1).cmp(&(old, s))) {
                let nc = split[i].2;
                class_of[b as usize] = nc;
                let w = weights[b as usize];
                for &(q, sq) in &self.items[b as usize] {
                    acc.push((nc, q, sq, w));
                }
            }
        }
        acc.sort_unstable_by_key(|x| (x.0, x.1, x.2));
        let mut i = 0;
        while i < acc.len() {
            let (nc, q, sq, _) = acc[i];
            let mut w = 0u64;
            while i < acc.len() && (acc[i].0, acc[i].1, acc[i].2) == (nc, q, sq) {
                w += acc[i].3;
                i += 1;
            }
            // find the old class of nc
            let old = old_of[(nc - first_new) as usize];
            let ce = &centries[old as usize];
            if let Ok(k) = ce.binary_search_by(|x| (x.0, x.1).cmp(&(q, sq))) {
                let idx = ce[k].2 as usize;
                entries[q as usize][idx].w -= w;
            }
            let idx = entries[q as usize].len() as u32;
            entries[q as usize].push(Entry {
                class: nc,
                s: sq,
                w,
            });
            centries[nc as usize].push((q, sq, idx));
        }
        payments
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
            let mut prev: Option<MesRun> = None;
            loop {
                runs += 1;
                let r = input.run(&e0, ties, false);
                if total_cost(e, &r.selected) > e.budget {
                    break match prev {
                        Some(p) => p,
                        None => MesRun {
                            endowment: e0.clone(),
                            selected: input.free.clone(),
                            rounds: Vec::new(),
                            left_over: Vec::new(),
                        },
                    };
                }
                if exhaustive(e, &r.selected, &input.projects) {
                    break r;
                }
                prev = Some(r);
                e0 += &opts.increment;
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
                "lowest price per unit of utility {} ({supporters} supporters; effective vote count {eff})",
                fmt_q(&r.rho)
            ),
            payments: groups
                .into_iter()
                .map(|(w, q)| PaymentGroup { voters: w, each: fmt_q(&q) })
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
                    Some(fmt_q(&short.clone().max(Q::zero()))),
                    format!(
                        "its {} supporters had {} left after paying for the selected projects",
                        prof.approvals[p],
                        fmt_q(left)
                    ),
                )
            }
            None => (None, "no voter gets utility from it".to_string()),
        };
        ex.unfunded.push(UnfundedExplanation {
            project: e.projects[p].id.clone(),
            cost: fmt_q(cost),
            shortfall,
            reason,
        });
    }
    // per voter: replay the rounds on each distinct ballot
    let mut budgets: Vec<Q> = vec![run.endowment.clone(); prof.ballots.len()];
    let mut bought: Vec<Vec<(String, String)>> = vec![Vec::new(); prof.ballots.len()];
    let mut score_of: Vec<u32> = vec![0; e.projects.len()];
    for (bi, items) in input.items.iter().enumerate() {
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
            bought[bi].push((e.projects[r.project].id.clone(), fmt_q(&pay)));
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
    let endow = fmt_q(&run.endowment);
    for (v, bi) in voters {
        ex.voters.push(VoterExplanation {
            voter: e.voters[v as usize].id.clone(),
            endowment: endow.clone(),
            spent: fmt_q(&(&run.endowment - &budgets[bi])),
            kept: fmt_q(&budgets[bi]),
            bought: bought[bi].clone(),
        });
    }
}
