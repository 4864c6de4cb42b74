//! Maximin: the distribution over feasible panels that maximises the smallest selection
//! probability (Flanigan et al., 2021), by column generation.
//!
//! ```text
//! master (dual form):  minimise z  s.t.  Σ_{i∈B} y_i ≤ z  for every known panel B;
//!                                         Σ_i y_i = 1;  y ≥ 0
//! pricing:             a feasible panel B maximising Σ_{i∈B} y_i (integer program, crate::mip)
//!                      stop when its value ≤ z + EPS, else add B
//! final primal:        maximise ℓ  s.t.  Σ_B λ_B = 1, λ ≥ 0,  Σ_{B∋i} λ_B ≥ ℓ  (covered i)
//! ```
//! The master's value is at most the true optimum and the pricing value at least it, so on
//! stopping the smallest probability is within `EPS` of optimal.

use microlp::{ComparisonOp, OptimizationDirection, Problem, Variable};

use crate::mip::Model;
use crate::Error;

/// Stopping tolerance of column generation (on the smallest probability).
pub const EPS: f64 = 1e-9;

/// A probability distribution over feasible panels.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    /// The panels (person indices, ascending).
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
    /// Whether the smallest probability is proven optimal (within 1e-9). False only when the
    /// integer search hit its node limit; the result is then still valid, and `upper_bound`
    /// says how far from optimal it can be.
    pub proven_optimal: bool,
}

impl Distribution {
    /// The smallest selection probability over the whole pool.
    pub fn min_probability(&self) -> f64 {
        self.probabilities
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
    }
}

fn lp_err(e: microlp::Error) -> Error {
    Error::Solver(format!("LP: {e}"))
}

/// Computes the maximin distribution. `Ok(None)` if no feasible panel exists.
pub(crate) fn maximin(model: &Model) -> Result<Option<Distribution>, Error> {
    let n = model.n();
    let mut panels: Vec<Vec<usize>> = Vec::new();
    let mut covered = vec![false; n];
    let add = |panels: &mut Vec<Vec<usize>>, covered: &mut Vec<bool>, p: Vec<usize>| -> bool {
        if panels.contains(&p) {
            return false;
        }
        for &i in &p {
            covered[i] = true;
        }
        panels.push(p);
        true
    };
    // Initial panels by multiplicative weights: quick panels favouring people chosen rarely.
    let mut w = vec![1.0; n];
    let rounds = (2 * n / model.k.max(1)).clamp(5, 200);
    for _ in 0..rounds {
        let Some(found) = model.solve(&w, f64::NEG_INFINITY, f64::NEG_INFINITY)?.0 else {
            return Ok(None);
        };
        for &i in &found.panel {
            w[i] *= 0.8;
        }
        let total: f64 = w.iter().sum();
        for v in &mut w {
            *v *= n as f64 / total;
        }
        add(&mut panels, &mut covered, found.panel);
    }
    // A panel for every person not yet in one, or proof that none exists.
    let mut uncoverable = Vec::new();
    for i in 0..n {
        if covered[i] {
            continue;
        }
        let mut e = vec![0.0; n];
        e[i] = 1.0;
        match model.solve(&e, 0.5, 0.5)? {
            (Some(found), _) => {
                add(&mut panels, &mut covered, found.panel);
            }
            (None, true) => uncoverable.push(i),
            (None, false) => {
                return Err(Error::Solver(format!(
                    "could not decide whether person #{i} fits any panel"
                )))
            }
        }
    }
    let mut pricing_model = model.clone();
    for &i in &uncoverable {
        pricing_model.banned[i] = true;
    }
    // Column generation on the master LP.
    let mut master = Problem::new(OptimizationDirection::Minimize);
    let y: Vec<Variable> = (0..n)
        .map(|i| {
            let hi = if covered[i] { f64::INFINITY } else { 0.0 };
            master.add_var(0.0, (0.0, hi))
        })
        .collect();
    let z = master.add_var(1.0, (0.0, f64::INFINITY));
    master.add_constraint(
        y.iter().map(|&v| (v, 1.0)).collect::<Vec<_>>(),
        ComparisonOp::Eq,
        1.0,
    );
    let row = |p: &[usize]| -> Vec<(Variable, f64)> {
        p.iter()
            .map(|&i| (y[i], 1.0))
            .chain(std::iter::once((z, -1.0)))
            .collect()
    };
    for p in &panels {
        master.add_constraint(row(p), ComparisonOp::Le, 0.0);
    }
    let mut sol = master.solve().map_err(lp_err)?;
    let ceiling = lp_bound(&pricing_model, &covered)?;
    let mut proven = true;
    loop {
        let weights: Vec<f64> = y.iter().map(|&v| sol[v].max(0.0)).collect();
        let zval = sol[z];
        if zval >= ceiling - EPS {
            break;
        }
        // Any panel worth more than z improves the master; take the first met (and any
        // others found on the way) rather than proving which is best.
        let search = pricing_model.solve_all(&weights, zval + EPS, zval + EPS)?;
        if !search.complete && search.found.is_empty() {
            proven = false;
            break;
        }
        let new_panels: Vec<Vec<usize>> = search.found.into_iter().map(|f| f.panel).collect();
        let mut any = false;
        for p in new_panels {
            let r = row(&p);
            if add(&mut panels, &mut covered, p) {
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
    let mut containing: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (b, p) in panels.iter().enumerate() {
        for &i in p {
            containing[i].push(b);
        }
    }
    for (i, bs) in containing.iter().enumerate() {
        if covered[i] {
            let mut lhs: Vec<(Variable, f64)> = bs.iter().map(|&b| (lambda[b], 1.0)).collect();
            lhs.push((ell, -1.0));
            primal.add_constraint(lhs, ComparisonOp::Ge, 0.0);
        }
    }
    let psol = primal.solve().map_err(lp_err)?;
    let panels_generated = panels.len();
    let mut kept = Vec::new();
    let mut weights = Vec::new();
    for (b, p) in panels.into_iter().enumerate() {
        let l = psol[lambda[b]];
        if l > 1e-12 {
            kept.push(p);
            weights.push(l);
        }
    }
    let total: f64 = weights.iter().sum();
    for l in &mut weights {
        *l /= total;
    }
    let mut probabilities = vec![0.0; n];
    for (p, &l) in kept.iter().zip(&weights) {
        for &i in p {
            probabilities[i] += l;
        }
    }
    Ok(Some(Distribution {
        panels: kept,
        weights,
        probabilities,
        uncoverable,
        panels_generated,
        upper_bound: ceiling,
        proven_optimal: proven,
    }))
}

/// The LP-relaxation bound on the smallest probability: maximise ℓ over fractional panels
/// `x` (quotas and households as in the integer program) with `x_i ≥ ℓ` for covered people.
/// No distribution over real panels can do better, so column generation may stop on reaching it.
fn lp_bound(model: &Model, covered: &[bool]) -> Result<f64, Error> {
    let mut lp = Problem::new(OptimizationDirection::Maximize);
    let n = model.n();
    let x: Vec<Variable> = (0..n)
        .map(|i| {
            let hi = if model.banned[i] { 0.0 } else { 1.0 };
            lp.add_var(0.0, (0.0, hi))
        })
        .collect();
    let ell = lp.add_var(1.0, (0.0, 1.0));
    model.add_rows(&mut lp, &x);
    for i in 0..n {
        if covered[i] {
            lp.add_constraint([(x[i], 1.0), (ell, -1.0)], ComparisonOp::Ge, 0.0);
        }
    }
    let sol = lp.solve().map_err(lp_err)?;
    Ok(sol[ell])
}
