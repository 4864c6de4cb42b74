//! The panel integer program, solved by branch and bound over `microlp` LP relaxations.
//!
//! ```text
//! x_i ∈ {0,1};  Σ_i x_i = k
//! for each category c:   min_c − r_c ≤ Σ_{i has c} x_i ≤ max_c + s_c
//! for each household h:  Σ_{i∈h} x_i ≤ 1
//! maximise Σ_i w_i x_i − Σ_c (p_c r_c + s_c)
//! ```
//!
//! The slacks `r, s` exist only in relaxation mode (see [`crate::relax`]). People who are
//! not in a household of two or more and have the same categories are interchangeable except
//! for their weight: they form a *type*, and the search branches on how many of a type are
//! chosen (an integer), not on single people, which removes the symmetry that makes plain
//! branch and bound slow on large pools. When every type count is integral the LP optimum
//! takes the best-weighted members of each type, so the panel is read off directly.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use microlp::{ComparisonOp, OptimizationDirection, Problem, Solution, Variable};

use crate::Error;

/// Numerical tolerance for integrality and pruning.
const TOL: f64 = 1e-7;
/// Branch-and-bound nodes before giving up on one integer program.
const NODE_LIMIT: usize = 200_000;

/// Slack costs of one category in relaxation mode.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slack {
    /// Cost of lowering the minimum by one.
    pub min_cost: f64,
    /// How far the minimum may be lowered.
    pub min_room: f64,
    /// Cost of raising the maximum by one.
    pub max_cost: f64,
    /// How far the maximum may be raised.
    pub max_room: f64,
}

/// The fixed part of the panel program: pool, quotas, households.
#[derive(Debug, Clone)]
pub(crate) struct Model {
    /// Panel size.
    pub k: usize,
    /// Each person's categories.
    pub cats: Vec<Vec<usize>>,
    /// Quota bounds per category.
    pub bounds: Vec<(u32, u32)>,
    /// Households of two or more.
    pub households: Vec<Vec<usize>>,
    /// Slacks per category (relaxation mode only).
    pub slack: Option<Vec<Slack>>,
    /// People who may not be chosen.
    pub banned: Vec<bool>,
    /// How many times each unit may be chosen (1 for people; a type's size when the units
    /// are types, see [`crate::maximin`]). Panels are then multisets of units.
    pub cap: Vec<u32>,
    /// Types: groups of interchangeable people.
    types: Vec<Vec<usize>>,
}

/// A panel found by [`Model::solve`].
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// Chosen people, ascending.
    pub panel: Vec<usize>,
    /// Objective value.
    pub value: f64,
    /// Per category: (minimum lowered by, maximum raised by), relaxation mode only.
    pub slacks: Vec<(u32, u32)>,
}

/// A branching step: type, direction, bound on the type's count.
type Branch = (usize, ComparisonOp, f64);

/// The outcome of one branch-and-bound search.
#[derive(Debug, Clone)]
pub(crate) struct Search {
    /// Improving panels found, best last.
    pub found: Vec<Found>,
    /// False if the node limit stopped the search early.
    pub complete: bool,
}

impl Model {
    /// Builds the model; `bounds` per category.
    pub fn new(
        k: usize,
        cats: Vec<Vec<usize>>,
        bounds: Vec<(u32, u32)>,
        households: Vec<Vec<usize>>,
    ) -> Model {
        let n = cats.len();
        let mut in_household = vec![false; n];
        for h in &households {
            for &i in h {
                in_household[i] = true;
            }
        }
        let mut by_cats: HashMap<&[usize], usize> = HashMap::new();
        let mut types: Vec<Vec<usize>> = Vec::new();
        for i in 0..n {
            if in_household[i] {
                types.push(vec![i]);
            } else if let Some(&t) = by_cats.get(cats[i].as_slice()) {
                types[t].push(i);
            } else {
                by_cats.insert(cats[i].as_slice(), types.len());
                types.push(vec![i]);
            }
        }
        Model {
            k,
            banned: vec![false; n],
            cap: vec![1; n],
            cats,
            bounds,
            households,
            slack: None,
            types,
        }
    }

    /// Number of people.
    pub fn n(&self) -> usize {
        self.cats.len()
    }

    /// Whether `panel` satisfies size, quotas and households (ignoring slacks).
    pub fn is_valid(&self, panel: &[usize]) -> bool {
        if panel.len() != self.k {
            return false;
        }
        let mut count = vec![0u32; self.bounds.len()];
        for &i in panel {
            for &c in &self.cats[i] {
                count[c] += 1;
            }
        }
        let quotas_ok = count
            .iter()
            .zip(&self.bounds)
            .all(|(&n, &(lo, hi))| lo <= n && n <= hi);
        let mut chosen = vec![0u32; self.n()];
        for &i in panel {
            chosen[i] += 1;
        }
        quotas_ok
            && chosen.iter().zip(&self.cap).all(|(c, cap)| c <= cap)
            && self
                .households
                .iter()
                .all(|h| h.iter().map(|&i| chosen[i]).sum::<u32>() <= 1)
    }

    /// Finds a panel maximising `Σ w_i x_i` (minus slack costs) whose value exceeds `cutoff`;
    /// returns as soon as one worth at least `stop_at` is found. `Ok(None)`: no panel beats
    /// `cutoff` (or none exists at all).
    /// The flag is false when the search stopped at its node limit without finishing.
    pub fn solve(
        &self,
        w: &[f64],
        cutoff: f64,
        stop_at: f64,
    ) -> Result<(Option<Found>, bool), Error> {
        let mut s = self.solve_all(w, cutoff, stop_at)?;
        Ok((s.found.pop(), s.complete))
    }

    /// Like [`Model::solve`], but returns every improving panel met on the way, best last.
    pub fn solve_all(&self, w: &[f64], cutoff: f64, stop_at: f64) -> Result<Search, Error> {
        match catch_unwind(AssertUnwindSafe(|| self.solve_inner(w, cutoff, stop_at))) {
            Ok(r) => r,
            Err(_) => Err(Error::Solver(
                "the LP solver failed (numerical trouble)".into(),
            )),
        }
    }

    fn solve_inner(&self, w: &[f64], cutoff: f64, stop_at: f64) -> Result<Search, Error> {
        let n = self.n();
        let mut lp = Problem::new(OptimizationDirection::Maximize);
        let x: Vec<Variable> = (0..n)
            .map(|i| {
                let hi = if self.banned[i] {
                    0.0
                } else {
                    f64::from(self.cap[i])
                };
                lp.add_var(w[i], (0.0, hi))
            })
            .collect();
        let mut slack_vars = Vec::new();
        if let Some(slack) = &self.slack {
            for s in slack {
                let r = lp.add_var(-s.min_cost, (0.0, s.min_room));
                let t = lp.add_var(-s.max_cost, (0.0, s.max_room));
                slack_vars.push((r, t));
            }
        }
        self.add_rows_with_slack(&mut lp, &x, &slack_vars);
        let root = match lp.solve() {
            Ok(s) => s,
            Err(microlp::Error::Infeasible) => {
                return Ok(Search {
                    found: Vec::new(),
                    complete: true,
                })
            }
            Err(e) => return Err(Error::Solver(e.to_string())),
        };
        // Members of each type, best weight first.
        let types: Vec<Vec<usize>> = self
            .types
            .iter()
            .map(|t| {
                let mut t: Vec<usize> = t.iter().copied().filter(|&i| !self.banned[i]).collect();
                t.sort_by(|&a, &b| w[b].total_cmp(&w[a]).then(a.cmp(&b)));
                t
            })
            .filter(|t| !t.is_empty())
            .collect();
        let mut found_all: Vec<Found> = Vec::new();
        let mut stack: Vec<(Solution, Option<Branch>)> = vec![(root, None)];
        let mut nodes = 0usize;
        while let Some((sol, branch)) = stack.pop() {
            nodes += 1;
            if nodes > NODE_LIMIT {
                return Ok(Search {
                    found: found_all,
                    complete: false,
                });
            }
            let sol = match branch {
                None => sol,
                Some((t, op, rhs)) => {
                    let expr: Vec<(Variable, f64)> =
                        types[t].iter().map(|&i| (x[i], 1.0)).collect();
                    match sol.add_constraint(expr, op, rhs) {
                        Ok(s) => s,
                        Err(microlp::Error::Infeasible) => continue,
                        Err(e) => return Err(Error::Solver(e.to_string())),
                    }
                }
            };
            let bar = found_all.last().map_or(cutoff, |b| b.value.max(cutoff));
            if sol.objective() <= bar + TOL {
                continue;
            }
            // Most fractional type count.
            let mut pick: Option<(usize, f64)> = None;
            let mut worst = TOL * 10.0;
            for (t, members) in types.iter().enumerate() {
                let c: f64 = members.iter().map(|&i| sol[x[i]]).sum();
                let frac = (c - c.round()).abs();
                if frac > worst {
                    worst = frac;
                    pick = Some((t, c));
                }
            }
            match pick {
                Some((t, c)) => {
                    stack.push((sol.clone(), Some((t, ComparisonOp::Le, c.floor()))));
                    stack.push((sol, Some((t, ComparisonOp::Ge, c.ceil()))));
                }
                None => {
                    let mut panel = Vec::with_capacity(self.k);
                    for members in &types {
                        let c: f64 = members.iter().map(|&i| sol[x[i]]).sum();
                        let mut left = c.round().max(0.0) as u32;
                        for &i in members {
                            let take = left.min(self.cap[i]);
                            panel.extend(std::iter::repeat_n(i, take as usize));
                            left -= take;
                        }
                    }
                    panel.sort_unstable();
                    if let Some(found) = self.evaluate(panel, w) {
                        if found.value > bar {
                            let done = found.value >= stop_at;
                            found_all.push(found);
                            if done {
                                break;
                            }
                        }
                    }
                }
            }
        }
        Ok(Search {
            found: found_all,
            complete: true,
        })
    }

    /// Adds the size, quota and household rows over the person variables `x`.
    pub fn add_rows(&self, lp: &mut Problem, x: &[Variable]) {
        self.add_rows_with_slack(lp, x, &[]);
    }

    fn add_rows_with_slack(
        &self,
        lp: &mut Problem,
        x: &[Variable],
        slack_vars: &[(Variable, Variable)],
    ) {
        let ncat = self.bounds.len();
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); ncat];
        for (i, cs) in self.cats.iter().enumerate() {
            for &c in cs {
                members[c].push(i);
            }
        }
        lp.add_constraint(
            x.iter().map(|&v| (v, 1.0)).collect::<Vec<_>>(),
            ComparisonOp::Eq,
            self.k as f64,
        );
        for (c, &(lo, hi)) in self.bounds.iter().enumerate() {
            let mut lhs: Vec<(Variable, f64)> = members[c].iter().map(|&i| (x[i], 1.0)).collect();
            if let Some(&(r, _)) = slack_vars.get(c) {
                lhs.push((r, 1.0));
            }
            if lo > 0 {
                lp.add_constraint(lhs, ComparisonOp::Ge, f64::from(lo));
            }
            let room: u32 = members[c].iter().map(|&i| self.cap[i]).sum();
            if hi < room {
                let mut lhs: Vec<(Variable, f64)> =
                    members[c].iter().map(|&i| (x[i], 1.0)).collect();
                if let Some(&(_, t)) = slack_vars.get(c) {
                    lhs.push((t, -1.0));
                }
                lp.add_constraint(lhs, ComparisonOp::Le, f64::from(hi));
            }
        }
        for h in &self.households {
            lp.add_constraint(
                h.iter().map(|&i| (x[i], 1.0)).collect::<Vec<_>>(),
                ComparisonOp::Le,
                1.0,
            );
        }
    }

    /// The objective value of an integral panel, with the cheapest slacks that fit it;
    /// `None` if the panel breaks a rule that slacks cannot cover.
    fn evaluate(&self, panel: Vec<usize>, w: &[f64]) -> Option<Found> {
        if panel.len() != self.k {
            return None;
        }
        let mut count = vec![0u32; self.bounds.len()];
        for &i in &panel {
            for &c in &self.cats[i] {
                count[c] += 1;
            }
        }
        let mut value: f64 = panel.iter().map(|&i| w[i]).sum();
        let mut slacks = vec![(0, 0); self.bounds.len()];
        for (c, &(lo, hi)) in self.bounds.iter().enumerate() {
            let under = lo.saturating_sub(count[c]);
            let over = count[c].saturating_sub(hi);
            if under > 0 || over > 0 {
                let s = self.slack.as_ref()?.get(c)?;
                if f64::from(under) > s.min_room + TOL || f64::from(over) > s.max_room + TOL {
                    return None;
                }
                value -= s.min_cost * f64::from(under) + s.max_cost * f64::from(over);
                slacks[c] = (under, over);
            }
        }
        let mut chosen = vec![0u32; self.n()];
        for &i in &panel {
            chosen[i] += 1;
        }
        if chosen.iter().zip(&self.cap).any(|(c, cap)| c > cap)
            || self
                .households
                .iter()
                .any(|h| h.iter().map(|&i| chosen[i]).sum::<u32>() > 1)
        {
            return None;
        }
        Some(Found {
            panel,
            value,
            slacks,
        })
    }
}
