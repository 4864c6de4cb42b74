//! From a distribution over panels to one panel, in two public steps.
//!
//! 1. **The ticket table** ([`tickets`]): the distribution is rounded to `m` tickets, each
//!    naming one panel. Panel `B` of probability `λ_B` gets `⌊m·λ_B⌋` tickets; the tickets
//!    left over go one each to the panels with the largest remainders `m·λ_B − ⌊m·λ_B⌋`
//!    (ties: the earlier panel in the distribution's order). Panels keep the distribution's
//!    order, so ticket numbers are `0..m` in that order. The table depends only on the
//!    inputs, never on the seed, so it can be published before the seed is known.
//! 2. **The draw** ([`draw_ticket`]): the ticket is `SHA-256(seed) mod m`, reading the
//!    32-byte digest of the seed's UTF-8 bytes as one big-endian number. In Python:
//!    `int(hashlib.sha256(seed.encode()).hexdigest(), 16) % m`.
//!
//! Each panel's chance under the table differs from its exact probability by less than
//! `1/m`. Interchangeable people (same feature values, no housemates) are taken in rotation
//! over the tickets, in file order ([`ticket_table`]); [`ticket_probabilities`] gives each
//! person's chance under the table.

use sha2::{Digest, Sha256};

use crate::Distribution;

/// `m` tickets: the panel index (into the distribution's panels) of each ticket.
pub fn tickets(dist: &Distribution, m: usize) -> Vec<usize> {
    let m = m.max(1);
    let mut counts: Vec<usize> = Vec::with_capacity(dist.weights.len());
    let mut rema: Vec<(f64, usize)> = Vec::with_capacity(dist.weights.len());
    for (b, &l) in dist.weights.iter().enumerate() {
        let exact = l * m as f64;
        let floor = exact.floor().max(0.0);
        counts.push(floor as usize);
        rema.push((exact - floor, b));
    }
    let given: usize = counts.iter().sum();
    let left = m.saturating_sub(given);
    rema.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, b) in rema.iter().take(left) {
        counts[b] += 1;
    }
    let mut out = Vec::with_capacity(m);
    for (b, &c) in counts.iter().enumerate() {
        out.extend(std::iter::repeat_n(b, c));
    }
    out.truncate(m);
    out
}

/// The SHA-256 digest of the seed, in lowercase hex.
pub fn seed_digest(seed: &str) -> String {
    Sha256::digest(seed.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The drawn ticket: `SHA-256(seed)` as a big-endian integer, modulo `m`.
pub fn draw_ticket(seed: &str, m: usize) -> usize {
    let m = m.max(1) as u128;
    let mut r: u128 = 0;
    for &byte in Sha256::digest(seed.as_bytes()).iter() {
        r = (r * 256 + u128::from(byte)) % m;
    }
    r as usize
}

/// The ticket table: the person panel of each ticket. Each ticket's panel has the counts per
/// type of its distribution panel; the members of a type are taken in rotation over the
/// tickets (see [`Distribution::realise`]).
pub fn ticket_table(dist: &Distribution, tickets: &[usize]) -> Vec<Vec<usize>> {
    dist.realise(tickets)
}

/// Each person's chance of selection under the ticket table (`n` people).
pub fn ticket_probabilities(table: &[Vec<usize>], n: usize) -> Vec<f64> {
    let mut p = vec![0.0; n];
    if table.is_empty() {
        return p;
    }
    let share = 1.0 / table.len() as f64;
    for panel in table {
        for &i in panel {
            p[i] += share;
        }
    }
    p
}
