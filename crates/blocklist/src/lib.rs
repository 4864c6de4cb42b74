//! Guildhall blocklist engine: a pure library (no database, no network) and its command-line tool.
//!
//! - [`read`]: every blocklist format in, with detection, normalisation and per-line problems;
//! - [`merge`]: FediBlockHole's consensus merge exactly, plus trust weights, per-source maximum
//!   severity, subdomain-aware coverage and an audit record per domain;
//! - [`write`]: Mastodon CSV, FediBlockHole CSV, JSON and the audit CSV;
//! - [`diff`]: the creates, updates and removals for an instance, honouring ownership.

pub mod cli;
pub mod diff;
pub mod domain;
pub mod hash;
pub mod merge;
pub mod read;
pub mod types;
pub mod write;

pub use domain::{normalize_domain, DomainError};
pub use read::{detect, read_bytes, read_path, Format};
pub use types::{BlockEntry, Blocklist, Level, Location, ObfuscatedEntry, Problem, Severity};
