//! Guildhall sortition engine: a pure library (no database, no network) and its command-line tool.
//!
//! Panels by lot with quotas, after Flanigan et al., "Fair algorithms for selecting citizens'
//! assemblies" (Nature, 2021), reading the CSV layout of the PyPI package
//! `sortition-algorithms`:
//!
//! * [`input`]: the features (quotas) CSV and the people CSV, errors by line;
//! * [`select`]: the *maximin* distribution over feasible panels (column generation, with
//!   an LP/MIP solver in pure Rust) or the *legacy* one-panel algorithm;
//! * [`lottery`]: the published ticket table and the draw from a public seed;
//! * [`relax`]: when the quotas admit no panel, the cheapest relaxation that does.
//!
//! Every panel the engine returns has exactly the panel size, meets every quota, and has at
//! most one person per household when the household rule is on ([`check_panel`]).
//!
//! Compatibility with `sortition-algorithms`: the same CSV columns (`category,name` accepted
//! for `feature,value`); feature values are matched exactly after trimming spaces; household
//! addresses are compared case-insensitively. Its settings TOML is not read: the id column,
//! columns to keep and household columns are given as [`Settings`] (command-line flags).

pub mod cli;
pub mod input;
mod legacy;
pub mod lottery;
pub mod maximin;
mod mip;
pub mod relax;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

pub use input::{Features, LineError, Person, Pool, Quota, Settings};
pub use maximin::Distribution;
pub use relax::{QuotaChange, Relaxation};

/// Errors of the sortition engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A CSV file is malformed at a line.
    #[error("{file}:{line}: {message}")]
    Csv {
        /// The file.
        file: String,
        /// The line.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A CSV file's header lacks a needed column.
    #[error("{file}: header: {message}")]
    Header {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// No panel is possible even with relaxed quotas (too few people or households).
    #[error("no panel is possible: {0}")]
    Impossible(String),
    /// The legacy algorithm failed every attempt (the quotas themselves are feasible).
    #[error("the legacy algorithm found no panel in {0} attempts (try maximin)")]
    LegacyFailed(usize),
    /// The LP/MIP solver failed.
    #[error("solver: {0}")]
    Solver(String),
}

/// The selection algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Maximin probabilities over all feasible panels, then the lottery.
    Maximin,
    /// The legacy step-by-step algorithm (one panel, no probability guarantee).
    Legacy,
}

/// What to select.
#[derive(Debug, Clone)]
pub struct Request {
    /// Panel size.
    pub panel: usize,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The public seed (any text).
    pub seed: String,
    /// Number of lottery tickets (maximin).
    pub tickets: usize,
    /// Attempts of the legacy algorithm.
    pub max_attempts: usize,
}

impl Request {
    /// A request with the defaults: 1000 tickets, 100 legacy attempts.
    pub fn new(panel: usize, algorithm: Algorithm, seed: &str) -> Request {
        Request {
            panel,
            algorithm,
            seed: seed.into(),
            tickets: 1000,
            max_attempts: 100,
        }
    }
}

/// The result of a selection.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// The selected people (indices into the pool), ascending.
    pub panel: Vec<usize>,
    /// The maximin distribution (none for legacy).
    pub distribution: Option<Distribution>,
    /// The distribution panel of each ticket (maximin).
    pub tickets: Vec<usize>,
    /// The ticket table: the person panel of each ticket (maximin).
    pub ticket_panels: Vec<Vec<usize>>,
    /// The drawn ticket (maximin).
    pub ticket: Option<usize>,
}

/// Either a panel or, when the quotas admit none, the cheapest relaxation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A panel was selected.
    Selected(Selection),
    /// The quotas are infeasible; here is the smallest relaxation that makes them feasible.
    Infeasible(Relaxation),
}

/// Builds the panel program of a pool.
fn model(features: &Features, pool: &Pool, k: usize) -> mip::Model {
    mip::Model::new(
        k,
        pool.people.iter().map(|p| p.categories.clone()).collect(),
        features.quotas().iter().map(|q| (q.min, q.max)).collect(),
        pool.households.clone(),
    )
}

/// A problem with a panel, as found by [`check_panel`].
pub fn check_panel(features: &Features, pool: &Pool, k: usize, panel: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    if panel.len() != k {
        out.push(format!("the panel has {} people, not {k}", panel.len()));
    }
    let mut seen = std::collections::HashSet::new();
    for &i in panel {
        if i >= pool.people.len() {
            out.push(format!("person #{i} is not in the pool"));
            return out;
        }
        if !seen.insert(i) {
            out.push(format!("{} is chosen twice", pool.people[i].id));
        }
    }
    let counts = category_counts(features, pool, panel);
    for (c, q) in features.quotas().iter().enumerate() {
        if counts[c] < q.min || counts[c] > q.max {
            out.push(format!(
                "{}: {} chosen, quota {}..={}",
                features.label(c),
                counts[c],
                q.min,
                q.max
            ));
        }
    }
    for h in &pool.households {
        let chosen: Vec<&str> = h
            .iter()
            .filter(|i| seen.contains(*i))
            .map(|&i| pool.people[i].id.as_str())
            .collect();
        if chosen.len() > 1 {
            out.push(format!(
                "one household, several chosen: {}",
                chosen.join(", ")
            ));
        }
    }
    out
}

/// How many of `people` are in each category.
pub fn category_counts(features: &Features, pool: &Pool, people: &[usize]) -> Vec<u32> {
    let mut counts = vec![0u32; features.num_categories()];
    for &i in people {
        for &c in &pool.people[i].categories {
            counts[c] += 1;
        }
    }
    counts
}

/// Maximin probabilities for panels of `k`; `Ok(None)` if no panel meets the quotas.
pub fn find_maximin(
    features: &Features,
    pool: &Pool,
    k: usize,
) -> Result<Option<Distribution>, Error> {
    maximin::maximin(&model(features, pool, k))
}

/// The cheapest relaxation of the quotas that admits a panel of `k`; `Ok(None)` if none does.
pub fn find_relaxation(
    features: &Features,
    pool: &Pool,
    k: usize,
) -> Result<Option<Relaxation>, Error> {
    relax::relax(features, &model(features, pool, k))
}

fn seeded_rng(seed: &str) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key.copy_from_slice(&Sha256::digest(seed.as_bytes()));
    ChaCha8Rng::from_seed(key)
}

/// Selects a panel, or explains the smallest relaxation when the quotas admit none.
pub fn select(features: &Features, pool: &Pool, req: &Request) -> Result<Outcome, Error> {
    let k = req.panel;
    if k == 0 {
        return Err(Error::Impossible("the panel size is 0".into()));
    }
    if k > pool.people.len() {
        return Err(Error::Impossible(format!(
            "{k} seats but only {} people in the pool",
            pool.people.len()
        )));
    }
    let m = model(features, pool, k);
    let zero = vec![0.0; m.n()];
    if m.solve(&zero, f64::NEG_INFINITY, f64::NEG_INFINITY)?
        .0
        .is_none()
    {
        return match relax::relax(features, &m)? {
            Some(r) => Ok(Outcome::Infeasible(r)),
            None => Err(Error::Impossible(format!(
                "no relaxation of the quotas admits a panel of {k} (too few people or households)"
            ))),
        };
    }
    match req.algorithm {
        Algorithm::Legacy => {
            let mut rng = seeded_rng(&req.seed);
            let panel = legacy::legacy(&m, &mut rng, req.max_attempts)
                .ok_or(Error::LegacyFailed(req.max_attempts))?;
            Ok(Outcome::Selected(Selection {
                panel,
                distribution: None,
                tickets: Vec::new(),
                ticket_panels: Vec::new(),
                ticket: None,
            }))
        }
        Algorithm::Maximin => {
            let Some(dist) = maximin::maximin(&m)? else {
                return Err(Error::Solver("no panel found after all".into()));
            };
            let tickets = lottery::tickets(&dist, req.tickets);
            let ticket = lottery::draw_ticket(&req.seed, tickets.len());
            let ticket_panels = lottery::ticket_table(&dist, &tickets);
            let panel = ticket_panels[ticket].clone();
            Ok(Outcome::Selected(Selection {
                panel,
                distribution: Some(dist),
                tickets,
                ticket_panels,
                ticket: Some(ticket),
            }))
        }
    }
}
