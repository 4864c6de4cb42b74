//! Guildhall pb engine: a pure library (no database, no network) and its command-line tool.
//!
//! - [`reader`] / [`writer`]: Pabulib `.pb` files (streaming, with line-numbered issues);
//! - [`check`]: pabulib-checker style validation;
//! - [`rules`]: greedy family, maximum welfare, Method of Equal Shares with completions and the
//!   comparison step, sequential Phragmén — exact rational arithmetic in every decision.

pub mod check;
pub mod cli;
mod hash;
pub mod model;
pub mod number;
pub mod profile;
pub mod reader;
pub mod rules;
pub mod writer;

pub use model::{Election, Project, VoteType, Voter};
pub use reader::{read_election, read_file, Issue, PbError, PbReader, Severity};
