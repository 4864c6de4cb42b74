//! Infeasible quotas: the smallest relaxation that makes them feasible.
//!
//! One integer program (as in `sortition-algorithms`): choose a panel of `k` and lower some
//! minimums / raise some maximums so that the panel meets them, minimising the total cost,
//! where lowering a minimum `m` by one costs `1 + 2/m` (small minimums are precious) and
//! raising a maximum by one costs 1. `min_flex`/`max_flex` bound how far each may move.

use crate::input::{Features, Quota};
use crate::mip::{Model, Slack};
use crate::Error;

/// One quota that the relaxation changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaChange {
    /// The feature.
    pub feature: String,
    /// The value.
    pub value: String,
    /// The quota before.
    pub old: Quota,
    /// The quota after.
    pub new: Quota,
}

impl std::fmt::Display for QuotaChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}: ", self.feature, self.value)?;
        if self.new.min != self.old.min {
            write!(f, "lower min {} → {}", self.old.min, self.new.min)?;
        }
        if self.new.max != self.old.max {
            if self.new.min != self.old.min {
                write!(f, ", ")?;
            }
            write!(f, "raise max {} → {}", self.old.max, self.new.max)?;
        }
        Ok(())
    }
}

/// The cheapest change of quotas that admits a panel.
#[derive(Debug, Clone, PartialEq)]
pub struct Relaxation {
    /// The quotas that change (unchanged ones are not listed).
    pub changes: Vec<QuotaChange>,
    /// All features with the relaxed quotas.
    pub relaxed: Features,
    /// The total cost (see the module docs).
    pub cost: f64,
    /// One panel (person indices) that meets the relaxed quotas.
    pub witness: Vec<usize>,
}

/// Finds the cheapest relaxation. `Ok(None)` if no relaxation within the flex bounds helps
/// (e.g. fewer people or households than seats).
pub(crate) fn relax(features: &Features, model: &Model) -> Result<Option<Relaxation>, Error> {
    let quotas = features.quotas();
    let k = model.k as u32;
    let slack: Vec<Slack> = quotas
        .iter()
        .map(|q| Slack {
            min_cost: if q.min > 0 {
                1.0 + 2.0 / f64::from(q.min)
            } else {
                1.0
            },
            min_room: f64::from(q.min - q.min_flex.min(q.min)),
            max_cost: 1.0,
            max_room: f64::from(q.max_flex.min(k.max(q.max)) - q.max),
        })
        .collect();
    let mut m = model.clone();
    m.slack = Some(slack);
    let (m, types) = crate::maximin::type_model(&m);
    let zero = vec![0.0; m.n()];
    let (found, complete) = m.solve(&zero, f64::NEG_INFINITY, f64::INFINITY)?;
    let Some(found) = found else {
        if complete {
            return Ok(None);
        }
        return Err(Error::Solver(
            "the relaxation search hit its node limit".into(),
        ));
    };
    let mut relaxed = features.clone();
    let mut changes = Vec::new();
    let mut cat = 0;
    for feat in &mut relaxed.features {
        for (v, q) in feat.quotas.iter_mut().enumerate() {
            let (under, over) = found.slacks[cat];
            if under > 0 || over > 0 {
                let old = *q;
                q.min -= under;
                q.max += over;
                changes.push(QuotaChange {
                    feature: feat.name.clone(),
                    value: feat.values[v].clone(),
                    old,
                    new: *q,
                });
            }
            cat += 1;
        }
    }
    Ok(Some(Relaxation {
        changes,
        relaxed,
        cost: -found.value,
        witness: crate::maximin::first_members(&types, &found.panel),
    }))
}
