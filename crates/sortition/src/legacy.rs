//! The legacy algorithm (the Sortition Foundation's method before 2020): one panel, built
//! person by person, with no guarantee on anyone's selection probability.
//!
//! Each step takes the category with the highest `(min − selected) / remaining` (the most
//! urgent), picks a uniformly random remaining person in it, removes that person's housemates,
//! and removes everyone in a category that is now full. A failed attempt is retried.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::mip::Model;

/// Runs up to `max_attempts` attempts; the first panel that meets every rule is returned.
pub(crate) fn legacy(
    model: &Model,
    rng: &mut ChaCha8Rng,
    max_attempts: usize,
) -> Option<Vec<usize>> {
    (0..max_attempts.max(1)).find_map(|_| attempt(model, rng))
}

fn attempt(model: &Model, rng: &mut ChaCha8Rng) -> Option<Vec<usize>> {
    let n = model.n();
    let ncat = model.bounds.len();
    let mut alive: Vec<bool> = model.banned.iter().map(|b| !b).collect();
    let mut remaining = vec![0u32; ncat];
    let mut selected = vec![0u32; ncat];
    let mut house_of = vec![usize::MAX; n];
    for (h, members) in model.households.iter().enumerate() {
        for &i in members {
            house_of[i] = h;
        }
    }
    let remove = |i: usize, alive: &mut Vec<bool>, remaining: &mut Vec<u32>| {
        if alive[i] {
            alive[i] = false;
            for &c in &model.cats[i] {
                remaining[c] -= 1;
            }
        }
    };
    for (i, cats) in model.cats.iter().enumerate() {
        if alive[i] {
            for &c in cats {
                remaining[c] += 1;
            }
        }
    }
    // Nobody from a category whose maximum is 0.
    for i in 0..n {
        if model.cats[i].iter().any(|&c| model.bounds[c].1 == 0) {
            remove(i, &mut alive, &mut remaining);
        }
    }
    let mut panel = Vec::with_capacity(model.k);
    for _ in 0..model.k {
        let mut best: Option<(f64, usize)> = None;
        for c in 0..ncat {
            let need = model.bounds[c].0.saturating_sub(selected[c]);
            if remaining[c] < need {
                return None;
            }
            if remaining[c] == 0 || selected[c] >= model.bounds[c].1 {
                continue;
            }
            let ratio = f64::from(need) / f64::from(remaining[c]);
            if best.is_none_or(|(r, _)| ratio > r) {
                best = Some((ratio, c));
            }
        }
        let (_, c) = best?;
        let pick = rng.random_range(0..remaining[c]);
        let person = (0..n)
            .filter(|&i| alive[i] && model.cats[i].contains(&c))
            .nth(pick as usize)?;
        remove(person, &mut alive, &mut remaining);
        panel.push(person);
        for &pc in &model.cats[person] {
            selected[pc] += 1;
        }
        if house_of[person] != usize::MAX {
            for &j in &model.households[house_of[person]] {
                remove(j, &mut alive, &mut remaining);
            }
        }
        for &pc in &model.cats[person] {
            if selected[pc] >= model.bounds[pc].1 {
                for j in 0..n {
                    if alive[j] && model.cats[j].contains(&pc) {
                        remove(j, &mut alive, &mut remaining);
                    }
                }
            }
        }
    }
    panel.sort_unstable();
    model.is_valid(&panel).then_some(panel)
}
