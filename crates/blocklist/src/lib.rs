//! Guildhall blocklist engine: a pure library (no database, no network) and its command-line tool.

pub mod cli;
