//! Maximin: the distribution over feasible panels that maximises the smallest selection
//! probability (Flanigan et al., 2021), by column generation.
//!
//! People outside multi-person households who share every feature value are interchangeable:
//! averaging any distribution over permutations inside such a *type* keeps every panel
//! feasible and does not lower the smallest probability. So the optimum is computed over
//! *count panels* (how many of each type; a person in a household of two or more is a type of
//! their own), and every member of a type gets the same probability: `E[count]/size`.
//!
//! ```text
//! master (dual form):  minimise z  s.t.  Σ_t c_t(B)·u_t ≤ z  for every known count panel B;
//!                                         Σ_t size_t·u_t = 1;  u ≥ 0
//! pricing:             a feasible count panel maximising Σ_t u_t·c_t (integer program,
//!                      crate::mip); stop when none is worth more than z + EPS
//! final primal:        maximise ℓ  s.t.  Σ_B λ_B = 1, λ ≥ 0,  Σ_B λ_B·c_t(B) ≥ ℓ·size_t
//! ```
//! The master's value is at most the true optimum and the pricing value at least it, so on
//! stopping the smallest probability is within `EPS` (plus the branch and bound's pruning
//! tolerance, 1e-7) of optimal. The LP relaxation of the whole problem bounds the optimum
//! from above; column generation also stops within `EPS` of it.

use microlp::{ComparisonOp, OptimizationDirection, Problem, Variable};

use crate::mip::Model;
use crate::Error;

/// Stopping tolerance of column generation (on the smallest probability).
pub const EPS: f64 = 1e-8;

/// A probability distribution over feasible panels.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    /// One realisation of each panel (person indices, ascending). Members of a type are
    /// interchangeable: the ticket table ([`crate::lottery`]) rotates through them.
    pub panels: Vec<Vec<usize>>,
    /// The probability of each panel (sums to 1).
    pub weights: Vec<f64>,
    /// Each person's selection probability.
    pub probabilities: Vec<f64>,
    /// People who are in no feasible panel at all (probability 0 whatever the algorithm).
    pub uncoverable: Vec<usize>,
    /// Panels generated in total (before dropping those of weight 0).
    pub panels_generated: usize,
    /// The LP-relaxation bound: no distribution has a higher smallest probability.
    pub upper_bound: f64,
    /// Whether the smallest probability is proven optimal (within 2e-7). False only when the
    /// integer search hit its node limit; the result is then still valid, and `upper_bound`
    /// says how far from optimal it can be.
    pub proven_optimal: bool,
    /// The types: interchangeable people (indices, file order).
    pub types: Vec<Vec<usize>>,
    /// Each panel as counts per type: (type, how many).
    pub counts: Vec<Vec<(usize, u32)>>,
}

impl Distribution {
    /// The smallest selection probability over the whole pool.
    pub fn min_probability(&self) -> f64 {
        self.probabilities
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
    }

    /// Person panels for a sequence of panel indices: each type's members are taken in
    /// rotation (file order), continuing where the previous panel of the sequence stopped,
    /// so that over the sequence every member of a type is chosen equally often (±1).
    pub fn realise(&self, sequence: &[usize]) -> Vec<Vec<usize>> {
        let mut next = vec![0usize; self.types.len()];
        sequence
            .iter()
            .map(|&b| {
                let mut panel = Vec::new();
                for &(t, c) in &self.counts[b] {
                    let members = &self.types[t];
                    for _ in 0..c {
                        panel.push(members[next[t] % members.len()]);
                        next[t] += 1;
                    }
                }
                panel.sort_unstable();
                panel
            })
            .collect()
    }
}

fn lp_err(e: microlp::Error) -> Error {
    Error::Solver(format!("LP: {e}"))
}

fn counts_of(panel: &[usize]) -> Vec<(usize, u32)> {
    let mut out: Vec<(usize, u32)> = Vec::new();
    for &t in panel {
        match out.last_mut() {
            Some((u, c)) if *u == t => *c += 1,
            _ => out.push((t, 1)),
        }
    }
    out
}

/// The program over count panels: one unit per type of interchangeable people (same
/// categories, not in a household of two or more), with the type's size as its capacity.
/// Returns it with the types (person indices, file order). Banned people are left out.
pub(crate) fn type_model(model: &Model) -> (Model, Vec<Vec<usize>>) {
    let n = model.n();
    let mut in_household = vec![false; n];
    for h in &model.households {
        for &i in h {
            in_household[i] = true;
        }
    }
    let mut types: Vec<Vec<usize>> = Vec::new();
    let mut type_of = vec![0usize; n];
    let mut by_cats: std::collections::HashMap<&[usize], usize> = Default::default();
    for i in 0..n {
        if model.banned[i] {
            continue;
        }
        let t = if in_household[i] {
            None
        } else {
            by_cats.get(model.cats[i].as_slice()).copied()
        };
        let t = t.unwrap_or_else(|| {
            types.push(Vec::new());
            if !in_household[i] {
                by_cats.insert(model.cats[i].as_slice(), types.len() - 1);
            }
            types.len() - 1
        });
        types[t].push(i);
        type_of[i] = t;
    }
    let mut tm = Model::new(
        model.k,
        types.iter().map(|t| model.cats[t[0]].clone()).collect(),
        model.bounds.clone(),
        model
            .households
            .iter()
            .map(|h| {
                h.iter()
                    .filter(|&&i| !model.banned[i])
                    .map(|&i| type_of[i])
                    .collect::<Vec<usize>>()
            })
            .filter(|h| h.len() > 1)
            .collect(),
    );
    tm.cap = types.iter().map(|t| t.len() as u32).collect();
    tm.slack = model.slack.clone();
    (tm, types)
}

/// A person panel from a count panel (multiset of types): the first members of each type.
pub(crate) fn first_members(types: &[Vec<usize>], count_panel: &[usize]) -> Vec<usize> {
    let mut out: Vec<usize> = counts_of(count_panel)
        .into_iter()
        .flat_map(|(t, c)| types[t].iter().copied().take(c as usize))
        .collect();
    out.sort_unstable();
    out
}

/// Computes the maximin distribution. `Ok(None)` if no feasible panel exists.
pub(crate) fn maximin(model: &Model) -> Result<Option<Distribution>, Error> {
    let n = model.n();
    let (mut tm, types) = type_model(model);
    let nt = types.len();
    let size: Vec<f64> = types.iter().map(|t| t.len() as f64).collect();

    let mut panels: Vec<Vec<usize>> = Vec::new();
    let mut covered = vec![false; nt];
    let add = |panels: &mut Vec<Vec<usize>>, covered: &mut Vec<bool>, p: Vec<usize>| -> bool {
        if panels.contains(&p) {
            return false;
        }
        for &t in &p {
            covered[t] = true;
        }
        panels.push(p);
        true
    };
    // Initial panels by multiplicative weights: quick panels favouring rarely chosen types.
    let mut w = vec![1.0; nt];
    let rounds = (2 * nt / model.k.max(1)).clamp(5, 100);
    for _ in 0..rounds {
        let Some(found) = tm.solve(&w, f64::NEG_INFINITY, f64::NEG_INFINITY)?.0 else {
            return Ok(None);
        };
        for &t in &found.panel {
            w[t] *= 0.8;
        }
        let total: f64 = w.iter().sum();
        for v in &mut w {
            *v *= nt as f64 / total;
        }
        add(&mut panels, &mut covered, found.panel);
    }
    // A panel for every type not yet in one, or proof that none exists.
    let mut uncoverable_types = Vec::new();
    for t in 0..nt {
        if covered[t] {
            continue;
        }
        let mut e = vec![0.0; nt];
        e[t] = 1.0;
        match tm.solve(&e, 0.5, 0.5)? {
            (Some(found), _) => {
                add(&mut panels, &mut covered, found.panel);
            }
            (None, true) => uncoverable_types.push(t),
            (None, false) => {
                return Err(Error::Solver(format!(
                    "could not decide whether person #{} fits any panel",
                    types[t][0]
                )))
            }
        }
    }
    for &t in &uncoverable_types {
        tm.banned[t] = true;
    }

    // Column generation on the master LP.
    let mut master = Problem::new(OptimizationDirection::Minimize);
    let u: Vec<Variable> = (0..nt)
        .map(|t| {
            let hi = if covered[t] { f64::INFINITY } else { 0.0 };
            master.add_var(0.0, (0.0, hi))
        })
        .collect();
    let z = master.add_var(1.0, (0.0, f64::INFINITY));
    master.add_constraint(
        u.iter()
            .zip(&size)
            .map(|(&v, &s)| (v, s))
            .collect::<Vec<_>>(),
        ComparisonOp::Eq,
        1.0,
    );
    let row = |p: &[usize]| -> Vec<(Variable, f64)> {
        counts_of(p)
            .into_iter()
            .map(|(t, c)| (u[t], f64::from(c)))
            .chain(std::iter::once((z, -1.0)))
            .collect()
    };
    for p in &panels {
        master.add_constraint(row(p), ComparisonOp::Le, 0.0);
    }
    let mut sol = master.solve().map_err(lp_err)?;
    let ceiling = lp_bound(&tm, &covered, &size)?;
    let mut proven = true;
    loop {
        let zval = sol[z];
        if zval >= ceiling - EPS {
            break;
        }
        let weights: Vec<f64> = u.iter().map(|&v| sol[v].max(0.0)).collect();
        // Any panel worth more than z improves the master; take the first met (and any
        // others found on the way) rather than proving which is best.
        let search = tm.solve_all(&weights, zval + EPS, zval + EPS)?;
        if !search.complete && search.found.is_empty() {
            proven = false;
            break;
        }
        let mut any = false;
        for f in search.found {
            let r = row(&f.panel);
            if add(&mut panels, &mut covered, f.panel) {
                any = true;
                sol = sol
                    .add_constraint(r, ComparisonOp::Le, 0.0)
                    .map_err(lp_err)?;
            }
        }
        if !any {
            break;
        }
    }

    // Final primal: the panel probabilities.
    let counts: Vec<Vec<(usize, u32)>> = panels.iter().map(|p| counts_of(p)).collect();
    let mut primal = Problem::new(OptimizationDirection::Maximize);
    let lambda: Vec<Variable> = panels
        .iter()
        .map(|_| primal.add_var(0.0, (0.0, 1.0)))
        .collect();
    let ell = primal.add_var(1.0, (0.0, 1.0));
    primal.add_constraint(
        lambda.iter().map(|&v| (v, 1.0)).collect::<Vec<_>>(),
        ComparisonOp::Eq,
        1.0,
    );
    let mut containing: Vec<Vec<(usize, u32)>> = vec![Vec::new(); nt];
    for (b, cs) in counts.iter().enumerate() {
        for &(t, c) in cs {
            containing[t].push((b, c));
        }
    }
    for (t, bs) in containing.iter().enumerate() {
        if covered[t] && !tm.banned[t] {
            let mut lhs: Vec<(Variable, f64)> =
                bs.iter().map(|&(b, c)| (lambda[b], f64::from(c))).collect();
            lhs.push((ell, -size[t]));
            primal.add_constraint(lhs, ComparisonOp::Ge, 0.0);
        }
    }
    let psol = primal.solve().map_err(lp_err)?;
    let panels_generated = panels.len();
    let mut kept = Vec::new();
    let mut weights = Vec::new();
    for (b, cs) in counts.into_iter().enumerate() {
        let l = psol[lambda[b]];
        if l > 1e-12 {
            kept.push(cs);
            weights.push(l);
        }
    }
    let total: f64 = weights.iter().sum();
    for l in &mut weights {
        *l /= total;
    }
    let mut probabilities = vec![0.0; n];
    for (cs, &l) in kept.iter().zip(&weights) {
        for &(t, c) in cs {
            let share = l * f64::from(c) / size[t];
            for &i in &types[t] {
                probabilities[i] += share;
            }
        }
    }
    let mut uncoverable: Vec<usize> = uncoverable_types
        .iter()
        .flat_map(|&t| types[t].iter().copied())
        .chain((0..n).filter(|&i| model.banned[i]))
        .collect();
    uncoverable.sort_unstable();
    let mut dist = Distribution {
        panels: Vec::new(),
        weights,
        probabilities,
        uncoverable,
        panels_generated,
        upper_bound: ceiling,
        proven_optimal: proven,
        types,
        counts: kept,
    };
    dist.panels = dist.realise(&(0..dist.counts.len()).collect::<Vec<_>>());
    Ok(Some(dist))
}

/// The LP-relaxation bound on the smallest probability: maximise ℓ over fractional count
/// panels (quotas and households as in the integer program) with `c_t ≥ ℓ·size_t` for
/// covered types. No distribution over real panels can do better.
fn lp_bound(model: &Model, covered: &[bool], size: &[f64]) -> Result<f64, Error> {
    let mut lp = Problem::new(OptimizationDirection::Maximize);
    let nt = model.n();
    let c: Vec<Variable> = (0..nt)
        .map(|t| {
            let hi = if model.banned[t] { 0.0 } else { size[t] };
            lp.add_var(0.0, (0.0, hi))
        })
        .collect();
    let ell = lp.add_var(1.0, (0.0, 1.0));
    model.add_rows(&mut lp, &c);
    for t in 0..nt {
        if covered[t] && !model.banned[t] {
            lp.add_constraint([(c[t], 1.0), (ell, -size[t])], ComparisonOp::Ge, 0.0);
        }
    }
    let sol = lp.solve().map_err(lp_err)?;
    Ok(sol[ell])
}
