//! Core value types: severities, block entries, parsed lists and the problems found in them.

use std::fmt;

/// How severe a domain block is (Mastodon's `severity`), ordered `Noop < Silence < Suspend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Severity {
    /// `noop`: a record without limitation (FediBlockHole also reads the empty string so).
    Noop,
    /// `silence` (Mastodon calls it "limit").
    Silence,
    /// `suspend`: the default for a row without a severity column.
    #[default]
    Suspend,
}

impl Severity {
    /// The name Mastodon and FediBlockHole write.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Noop => "noop",
            Severity::Silence => "silence",
            Severity::Suspend => "suspend",
        }
    }

    /// Parses a severity as FediBlockHole does (`""`/`noop`, `silence`, `suspend`), but
    /// tolerating surrounding whitespace and case, as Mastodon's import does.
    /// Mastodon's UI name `limit` is read as `silence`.
    #[inline]
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "suspend" => Some(Severity::Suspend),
            "silence" => Some(Severity::Silence),
            "noop" | "" => Some(Severity::Noop),
            _ => Severity::parse_loose(s),
        }
    }

    /// [`Severity::parse`] of anything but the exact lower-case names.
    fn parse_loose(s: &str) -> Option<Severity> {
        let t = s.trim();
        if t.is_empty() || t.eq_ignore_ascii_case("noop") || t.eq_ignore_ascii_case("none") {
            Some(Severity::Noop)
        } else if t.eq_ignore_ascii_case("silence") || t.eq_ignore_ascii_case("limit") {
            Some(Severity::Silence)
        } else if t.eq_ignore_ascii_case("suspend") {
            Some(Severity::Suspend)
        } else {
            None
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a boolean as both Mastodon (`ActiveModel::Type::Boolean`: `off`) and FediBlockHole
/// (`str2bool`: `t`, `y`, `yes`, `1`, …) accept it, case-insensitively. `None` for anything else.
#[inline]
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "false" => Some(false),
        "true" => Some(true),
        _ => parse_bool_loose(s),
    }
}

/// [`parse_bool`] of anything but exactly `true` or `false`.
fn parse_bool_loose(s: &str) -> Option<bool> {
    let t = s.trim();
    const TRUE: [&str; 6] = ["true", "t", "1", "y", "yes", "on"];
    const FALSE: [&str; 6] = ["false", "f", "0", "n", "no", "off"];
    if t.is_empty() {
        return Some(false);
    }
    if TRUE.iter().any(|v| t.eq_ignore_ascii_case(v)) {
        Some(true)
    } else if FALSE.iter().any(|v| t.eq_ignore_ascii_case(v)) {
        Some(false)
    } else {
        None
    }
}

/// One domain block: the fields Mastodon's domain-block API and FediBlockHole know.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlockEntry {
    /// The normalised domain (lower case, IDNA ASCII form, no trailing dot).
    pub domain: String,
    /// The block's severity.
    pub severity: Severity,
    /// Reject media files from the domain.
    pub reject_media: bool,
    /// Reject reports from the domain.
    pub reject_reports: bool,
    /// Obfuscate the domain name in the public list.
    pub obfuscate: bool,
    /// The public comment, as published (not lower-cased).
    pub public_comment: String,
    /// The private comment.
    pub private_comment: String,
}

impl BlockEntry {
    /// A bare block of `domain` with Mastodon's defaults (suspend, all flags false).
    pub fn new(domain: impl Into<String>, severity: Severity) -> BlockEntry {
        BlockEntry {
            domain: domain.into(),
            severity,
            ..BlockEntry::default()
        }
    }
}

/// A row whose domain is obfuscated (contains `*`), e.g. `ap.***.st`. Never merged as a domain;
/// matched to a real domain through its SHA-256 digest when the source gave one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObfuscatedEntry {
    /// The block, with the obfuscated pattern (lower-cased) as its domain.
    pub entry: BlockEntry,
    /// Lower-case hex SHA-256 of the real domain, when known (Mastodon's public API gives it).
    pub digest: Option<String>,
    /// Where the row was.
    pub location: Location,
}

/// Where in an input a problem is: a 1-based line, a JSON array item, or the whole file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Location {
    /// The whole input.
    File,
    /// A 1-based line number.
    Line(u64),
    /// A 0-based item of a JSON array (or key index of a RapidBlock JSON object).
    Item(u64),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File => Ok(()),
            Location::Line(n) => write!(f, ":{n}"),
            Location::Item(n) => write!(f, " item {n}"),
        }
    }
}

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Informational: the row was handled as designed (e.g. a canary dropped).
    Info,
    /// The row was kept but changed or is suspicious.
    Warning,
    /// The row (or file) could not be used and was dropped.
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        })
    }
}

/// A problem found while reading an input. The rest of the input is still read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The input's name (file path or URL).
    pub origin: String,
    /// Where in the input.
    pub location: Location,
    /// How bad.
    pub level: Level,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}: {}: {}",
            self.origin, self.location, self.level, self.message
        )
    }
}

/// A parsed blocklist: the good rows, the obfuscated rows apart, and every problem found.
#[derive(Debug, Clone, Default)]
pub struct Blocklist {
    /// Where it came from (file path or URL).
    pub origin: String,
    /// The valid blocks, one per normalised domain (the last row of a duplicated domain wins),
    /// in the order of each domain's first appearance.
    pub entries: Vec<BlockEntry>,
    /// Rows with an obfuscated (`*`) domain.
    pub obfuscated: Vec<ObfuscatedEntry>,
    /// Everything noticed while reading, in input order.
    pub problems: Vec<Problem>,
}

impl Blocklist {
    /// The number of problems at `Error` level (rows or whole input dropped).
    pub fn error_count(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.level == Level::Error)
            .count()
    }
}
