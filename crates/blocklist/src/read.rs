//! Readers for every blocklist format, with automatic detection and an explicit override.
//!
//! Bad rows never abort a read: each is reported as a [`Problem`] with its line (or JSON item)
//! and the rest of the input is kept.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use hashbrown::hash_table::Entry;
use hashbrown::HashTable;
use serde_json::Value;
use thiserror::Error;

use crate::domain::{is_canary, normalize_domain_ref};
use crate::hash;
use crate::merge::{shard_of, SHARDS};
use crate::types::{
    parse_bool, BlockEntry, Blocklist, Level, Location, ObfuscatedEntry, Problem, Severity,
};

/// The input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Mastodon's export CSV (`#domain,#severity,…`).
    MastodonCsv,
    /// FediBlockHole CSV: a header naming the columns (`domain` required), any order.
    Csv,
    /// One domain per line, no header (Mastodon's bare import list, plain text, RapidBlock CSV).
    /// Lines starting with `#` or `!` are comments.
    DomainList,
    /// Mastodon admin API JSON (`GET /api/v1/admin/domain_blocks`).
    AdminJson,
    /// Mastodon public API JSON (`GET /api/v1/instance/domain_blocks`), with digests.
    PublicJson,
    /// RapidBlock JSON: `{"blocks": {domain: {"isBlocked": bool, "reason": str}}}`.
    RapidBlockJson,
}

impl Format {
    /// The canonical name (FediBlockHole's where it has one).
    pub fn name(self) -> &'static str {
        match self {
            Format::MastodonCsv => "mastodon_csv",
            Format::Csv => "csv",
            Format::DomainList => "rapidblock.csv",
            Format::AdminJson => "json",
            Format::PublicJson => "mastodon_api_public",
            Format::RapidBlockJson => "rapidblock.json",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown format name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown blocklist format {0:?} (expected csv, mastodon_csv, json, mastodon_api_public, rapidblock.csv, rapidblock.json, text)")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Format, UnknownFormat> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "csv" | "fediblockhole" | "fbh" => Format::Csv,
            "mastodon_csv" | "mastodon" => Format::MastodonCsv,
            "json" | "admin_json" | "mastodon_api_admin" => Format::AdminJson,
            "mastodon_api_public" | "public_json" => Format::PublicJson,
            "rapidblock.csv" | "text" | "txt" | "domains" | "plain" => Format::DomainList,
            "rapidblock.json" => Format::RapidBlockJson,
            _ => return Err(UnknownFormat(s.to_string())),
        })
    }
}

/// An input that could not be read at all.
#[derive(Debug, Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

fn strip_bom(b: &[u8]) -> &[u8] {
    b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b)
}

/// Detects the format of an input from its first bytes.
pub fn detect(bytes: &[u8]) -> Format {
    let b = strip_bom(bytes);
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let b = &b[start..];
    match b.first() {
        Some(b'[') => {
            // Public API entries carry `comment` and `digest`; admin ones `public_comment`.
            let head = &b[..b.len().min(4096)];
            let has = |k: &[u8]| head.windows(k.len()).any(|w| w == k);
            if has(b"\"public_comment\"") || has(b"\"reject_media\"") || has(b"\"id\"") {
                Format::AdminJson
            } else if has(b"\"digest\"") || has(b"\"comment\"") {
                Format::PublicJson
            } else {
                Format::AdminJson
            }
        }
        Some(b'{') => Format::RapidBlockJson,
        _ => {
            let end = b.iter().position(|&c| c == b'\n').unwrap_or(b.len());
            let line = String::from_utf8_lossy(&b[..end]);
            let line = line.trim();
            if line
                .get(..7)
                .is_some_and(|p| p.eq_ignore_ascii_case("#domain"))
            {
                Format::MastodonCsv
            } else if line.starts_with('#') {
                Format::DomainList
            } else if line.contains(',') && !line.split(',').next().unwrap_or("").contains('.') {
                // A header row without a `domain` column: read as CSV, which reports it.
                Format::Csv
            } else if line
                .split(',')
                .any(|f| f.trim().trim_matches('"').eq_ignore_ascii_case("domain"))
            {
                Format::Csv
            } else {
                Format::DomainList
            }
        }
    }
}

/// Reads a blocklist from bytes. `format` `None` detects it. Never fails: problems (including
/// an unreadable whole input) are in the returned list's `problems`.
pub fn read_bytes(bytes: &[u8], origin: &str, format: Option<Format>) -> Blocklist {
    read_compact(bytes, origin, format).into_blocklist()
}

/// Reads a blocklist into the compact form the merge folds (no allocation per row).
pub(crate) fn read_compact(bytes: &[u8], origin: &str, format: Option<Format>) -> Compact {
    let format = format.unwrap_or_else(|| detect(bytes));
    let mut b = Builder::new(origin);
    let bytes = strip_bom(bytes);
    match format {
        Format::MastodonCsv | Format::Csv => {
            if !fast_csv(bytes, &mut b) {
                b = Builder::new(origin);
                read_csv(bytes, &mut b);
            }
        }
        Format::DomainList => read_domain_list(bytes, &mut b),
        Format::AdminJson | Format::PublicJson => read_api_json(bytes, &mut b),
        Format::RapidBlockJson => read_rapidblock_json(bytes, &mut b),
    }
    b.finish()
}

/// Reads a CSV input with the full (`csv` crate) reader only, never the fast path: the
/// reference the fast path is tested against.
#[doc(hidden)]
pub fn read_csv_full(bytes: &[u8], origin: &str) -> Blocklist {
    let mut b = Builder::new(origin);
    read_csv(strip_bom(bytes), &mut b);
    b.finish().into_blocklist()
}

/// Reads a blocklist file (see [`read_bytes`]).
pub fn read_path(path: &Path, format: Option<Format>) -> Result<Blocklist, ReadError> {
    let bytes = std::fs::read(path).map_err(|source| ReadError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(read_bytes(&bytes, &path.display().to_string(), format))
}

/// One row as read, before normalisation.
#[derive(Default, Debug, PartialEq)]
struct RawRow<'a> {
    domain: &'a str,
    severity: Option<Severity>,
    reject_media: bool,
    reject_reports: bool,
    obfuscate: bool,
    public_comment: &'a str,
    private_comment: &'a str,
    digest: Option<&'a str>,
}

/// A text span `start..end` in a [`Compact`]'s arena.
pub(crate) type Span = (usize, usize);

/// One block in compact form: spans and ids into its list's arena.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row {
    /// The normalised domain.
    pub dom: Span,
    /// Keyed hash of the domain ([`hash::of`]) (computed once, reused by the merge).
    pub hash: u64,
    /// Public comment id (into [`Compact::comments`]; 0 is the empty comment).
    pub pc: u32,
    /// Private comment id.
    pub pv: u32,
    /// The row's place among the list's rows (order of first appearance).
    pub ord: u32,
    pub severity: Severity,
    pub reject_media: bool,
    pub reject_reports: bool,
    pub obfuscate: bool,
}

/// A parsed list without a `String` per row: domains and distinct comments in one arena.
pub(crate) struct Compact {
    pub origin: String,
    pub text: String,
    /// Distinct comments (id 0 is the empty comment).
    pub comments: Vec<Span>,
    comment_index: HashTable<u32>,
    /// The valid blocks, one per domain (last row wins), split by the merge shard of their
    /// domain ([`shard_of`] its hash), each part in order of first appearance: each shard's
    /// thread reads only its own part.
    pub rows: [Vec<Row>; SHARDS],
    pub obfuscated: Vec<ObfuscatedEntry>,
    pub problems: Vec<Problem>,
}

impl Compact {
    pub fn str(&self, s: Span) -> &str {
        &self.text[s.0..s.1]
    }

    pub fn comment(&self, id: u32) -> &str {
        self.str(self.comments[id as usize])
    }

    fn intern_comment(&mut self, c: &str) -> u32 {
        if c.is_empty() {
            return 0;
        }
        let h = hash::of(c);
        // Compared as bytes: no character-boundary checks.
        let (text, comments) = (self.text.as_bytes(), &self.comments);
        if let Some(&id) = self.comment_index.find(h, |&i| {
            let s = comments[i as usize];
            text.get(s.0..s.1) == Some(c.as_bytes())
        }) {
            return id;
        }
        let start = self.text.len();
        self.text.push_str(c);
        let id = self.comments.len() as u32;
        self.comments.push((start, self.text.len()));
        let (text, comments) = (&self.text, &self.comments);
        self.comment_index.insert_unique(h, id, |&i| {
            let s = comments[i as usize];
            hash::of(&text[s.0..s.1])
        });
        id
    }

    /// The rows in order of first appearance.
    fn ordered(&self) -> Vec<&Row> {
        let mut all: Vec<&Row> = self.rows.iter().flatten().collect();
        all.sort_unstable_by_key(|r| r.ord);
        all
    }

    /// The rows as [`BlockEntry`] values.
    pub fn entries(&self) -> Vec<BlockEntry> {
        self.ordered()
            .into_iter()
            .map(|r| BlockEntry {
                domain: self.str(r.dom).to_string(),
                severity: r.severity,
                reject_media: r.reject_media,
                reject_reports: r.reject_reports,
                obfuscate: r.obfuscate,
                public_comment: self.comment(r.pc).to_string(),
                private_comment: self.comment(r.pv).to_string(),
            })
            .collect()
    }

    pub fn into_blocklist(self) -> Blocklist {
        Blocklist {
            entries: self.entries(),
            origin: self.origin,
            obfuscated: self.obfuscated,
            problems: self.problems,
        }
    }
}

struct Builder {
    list: Compact,
    /// Rows by [`Builder::at`] (`index * SHARDS + part`), hashed by domain (no second
    /// copy of each domain).
    index: HashTable<u32>,
    /// The line (or item) of each entry's first appearance.
    first: Vec<u64>,
}

impl Builder {
    fn new(origin: &str) -> Builder {
        Builder {
            list: Compact {
                origin: origin.to_string(),
                text: String::new(),
                comments: vec![(0, 0)],
                comment_index: HashTable::new(),
                rows: Default::default(),
                obfuscated: Vec::new(),
                problems: Vec::new(),
            },
            index: HashTable::new(),
            first: Vec::new(),
        }
    }

    /// The row an [`Builder::index`] value names.
    fn at(rows: &[Vec<Row>; SHARDS], v: u32) -> &Row {
        &rows[v as usize % SHARDS][(v as usize) / SHARDS]
    }

    fn reserve(&mut self, n: usize) {
        for part in &mut self.list.rows {
            // A part's share, with room for an uneven split.
            part.reserve(n / SHARDS + n / 16);
        }
        self.first.reserve(n);
        self.list.text.reserve(n * 16);
        let rows = &self.list.rows;
        self.index.reserve(n, |&v| Builder::at(rows, v).hash);
    }

    fn problem(&mut self, location: Location, level: Level, message: String) {
        self.list.problems.push(Problem {
            origin: self.list.origin.clone(),
            location,
            level,
            message,
        });
    }

    fn push(&mut self, loc: Location, row: RawRow<'_>) {
        let n = match normalize_domain_ref(row.domain) {
            Ok(n) => n,
            Err(e) => {
                self.problem(loc, Level::Error, format!("{e}; row dropped"));
                return;
            }
        };
        let severity = row.severity.unwrap_or(Severity::Suspend);
        if n.obfuscated {
            let entry = BlockEntry {
                domain: n.domain.into_owned(),
                severity,
                reject_media: row.reject_media,
                reject_reports: row.reject_reports,
                obfuscate: row.obfuscate,
                public_comment: row.public_comment.to_string(),
                private_comment: row.private_comment.to_string(),
            };
            let digest = row
                .digest
                .map(|d| d.trim().to_ascii_lowercase())
                .filter(|d| d.len() == 64 && d.bytes().all(|c| c.is_ascii_hexdigit()));
            self.list.obfuscated.push(ObfuscatedEntry {
                entry,
                digest,
                location: loc,
            });
            return;
        }
        let domain: &str = &n.domain;
        if is_canary(domain) {
            let m = format!("canary row {domain} dropped");
            self.problem(loc, Level::Info, m);
            return;
        }
        if n.had_leading_dot {
            // `.tk`: how Mastodon treats it is unknown; merging it as the TLD `tk` would block
            // a whole country. Quarantined for review, not merged (reference §2).
            let m = format!(
                "leading dot in {:?}: quarantined for review, not merged",
                row.domain.trim()
            );
            self.problem(loc, Level::Warning, m);
            return;
        }
        if n.changed && domain != row.domain.trim() {
            let m = format!("domain {:?} normalised to {:?}", row.domain, domain);
            self.problem(loc, Level::Info, m);
        }
        let line = match loc {
            Location::Line(l) | Location::Item(l) => l,
            Location::File => 0,
        };
        let pc = self.list.intern_comment(row.public_comment);
        let pv = self.list.intern_comment(row.private_comment);
        let h = hash::of(domain);
        let part = shard_of(h);
        let (rows, text) = (&self.list.rows, self.list.text.as_bytes());
        // One probe: a new domain's value is that of the row about to be pushed.
        let next = (rows[part].len() * SHARDS + part) as u32;
        let found = match self.index.entry(
            h,
            |&v| {
                let s = Builder::at(rows, v).dom;
                text.get(s.0..s.1) == Some(domain.as_bytes())
            },
            |&v| Builder::at(rows, v).hash,
        ) {
            Entry::Occupied(o) => Some(*o.get()),
            Entry::Vacant(v) => {
                v.insert(next);
                None
            }
        };
        let mut r = Row {
            dom: (0, 0),
            hash: h,
            pc,
            pv,
            ord: self.first.len() as u32,
            severity,
            reject_media: row.reject_media,
            reject_reports: row.reject_reports,
            obfuscate: row.obfuscate,
        };
        if let Some(v) = found {
            let old = *Builder::at(&self.list.rows, v);
            let first = self.first[old.ord as usize];
            let m = format!("{domain} repeats line/item {first}; the last row wins");
            self.problem(loc, Level::Warning, m);
            r.dom = old.dom;
            r.ord = old.ord;
            self.list.rows[part][v as usize / SHARDS] = r;
        } else {
            let start = self.list.text.len();
            self.list.text.push_str(domain);
            r.dom = (start, self.list.text.len());
            self.list.rows[part].push(r);
            self.first.push(line);
        }
    }

    fn finish(self) -> Compact {
        self.list
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Col {
    Domain,
    Severity,
    RejectMedia,
    RejectReports,
    Obfuscate,
    PublicComment,
    PrivateComment,
    Digest,
    Other,
}

fn column(name: &str) -> Col {
    match name
        .trim()
        .trim_start_matches('#')
        .to_ascii_lowercase()
        .as_str()
    {
        "domain" => Col::Domain,
        "severity" => Col::Severity,
        "reject_media" => Col::RejectMedia,
        "reject_reports" => Col::RejectReports,
        "obfuscate" => Col::Obfuscate,
        "public_comment" | "comment" => Col::PublicComment,
        "private_comment" => Col::PrivateComment,
        "digest" => Col::Digest,
        _ => Col::Other,
    }
}

/// Where each known column is, for a header naming each at most once (the usual case): a row
/// is then read straight from these positions instead of column by column.
#[derive(Clone, Copy)]
struct Layout {
    domain: usize,
    severity: Option<usize>,
    /// `reject_media`, `reject_reports`, `obfuscate`.
    flags: [Option<usize>; 3],
    public_comment: Option<usize>,
    private_comment: Option<usize>,
    digest: Option<usize>,
}

impl Layout {
    fn of(cols: &[Col]) -> Option<Layout> {
        let at = |c: Col| {
            let mut it = cols.iter().enumerate().filter(|&(_, &x)| x == c);
            match (it.next(), it.next()) {
                (first, None) => Ok(first.map(|(i, _)| i)),
                _ => Err(()),
            }
        };
        Some(Layout {
            domain: at(Col::Domain).ok()??,
            severity: at(Col::Severity).ok()?,
            flags: [
                at(Col::RejectMedia).ok()?,
                at(Col::RejectReports).ok()?,
                at(Col::Obfuscate).ok()?,
            ],
            public_comment: at(Col::PublicComment).ok()?,
            private_comment: at(Col::PrivateComment).ok()?,
            digest: at(Col::Digest).ok()?,
        })
    }

    /// The row, or `None` unless its severity and booleans are spelt exactly as Mastodon
    /// writes them (`suspend`, `silence`, `noop` or empty; `true`, `false`): the caller then
    /// goes column by column, which reads the other spellings and reports bad values in order.
    /// `raw(i)` is field `i`'s bytes, `field(i)` the same as text.
    fn row<'a>(
        &self,
        field: impl Fn(usize) -> Option<&'a str>,
        raw: impl Fn(usize) -> Option<&'a [u8]>,
    ) -> Option<RawRow<'a>> {
        let severity = match self.severity {
            Some(i) => Some(exact_severity(raw(i).unwrap_or(b""))?),
            None => None,
        };
        let mut flags = [false; 3];
        for (f, &at) in flags.iter_mut().zip(&self.flags) {
            if let Some(i) = at {
                *f = exact_bool(raw(i).unwrap_or(b""))?;
            }
        }
        let text = |i: usize| field(i).unwrap_or("");
        Some(RawRow {
            domain: text(self.domain),
            severity,
            reject_media: flags[0],
            reject_reports: flags[1],
            obfuscate: flags[2],
            public_comment: self.public_comment.map_or("", text),
            private_comment: self.private_comment.map_or("", text),
            digest: self.digest.and_then(&field),
        })
    }
}

/// The first `K` bytes of `v` as a number (0 if `v` is shorter).
#[inline(always)]
fn head<const K: usize>(v: &[u8]) -> u64 {
    v.get(..K).map_or(0, |h| {
        let mut w = [0u8; 8];
        w[..K].copy_from_slice(h);
        u64::from_le_bytes(w)
    })
}

/// `K` bytes as [`head`] reads them.
const fn word<const K: usize>(s: &[u8; K]) -> u64 {
    let mut w = 0u64;
    let mut i = K;
    while i > 0 {
        i -= 1;
        w = (w << 8) | s[i] as u64;
    }
    w
}

/// `true` or `false` exactly. Which one it is decides no branch: in a list, the values of a
/// column look random to the branch predictor.
#[inline]
fn exact_bool(v: &[u8]) -> Option<bool> {
    let n = v.len();
    let t = (n == 4) & (head::<4>(v) == word(b"true"));
    let f = (n == 5) & (head::<5>(v) == word(b"false"));
    (t | f).then_some(t)
}

/// `suspend`, `silence`, `noop` or empty exactly, without a branch on which (see
/// [`exact_bool`]).
#[inline]
fn exact_severity(v: &[u8]) -> Option<Severity> {
    let n = v.len();
    let h7 = head::<7>(v);
    let suspend = (n == 7) & (h7 == word(b"suspend"));
    let silence = (n == 7) & (h7 == word(b"silence"));
    let noop = (n == 0) | ((n == 4) & (head::<4>(v) == word(b"noop")));
    const BY_CODE: [Severity; 3] = [Severity::Noop, Severity::Silence, Severity::Suspend];
    let code = 2 * usize::from(suspend) + usize::from(silence);
    (suspend | silence | noop).then_some(BY_CODE[code])
}

/// Does a public comment hold a boolean (a sign of a mislabelled header)?
#[inline]
fn bool_comment(c: &str) -> bool {
    // Shorter than `true` (trimming only shortens): not one. Starting and ending with ASCII
    // other than whitespace: nothing to trim.
    if c.len() < 4 {
        return false;
    }
    let solid = |b: Option<&u8>| b.is_some_and(|c| c.is_ascii() && !c.is_ascii_whitespace());
    let t = if solid(c.as_bytes().first()) && solid(c.as_bytes().last()) {
        c
    } else {
        c.trim()
    };
    t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false")
}

/// The state of a CSV read across records (shared by the fast path and the full reader).
#[derive(Default)]
struct CsvState {
    cols: Vec<Col>,
    layout: Option<Layout>,
    header_seen: bool,
    bool_errors: [usize; 3],
    bool_comments: usize,
    rows: usize,
}

/// Handles one CSV record of `nf` fields (`field(i)`, valid UTF-8) at `line`. Returns false
/// when the rest of the file is not to be read (no `domain` column).
fn csv_record<'a>(
    b: &mut Builder,
    st: &mut CsvState,
    line: u64,
    nf: usize,
    field: impl Fn(usize) -> Option<&'a str>,
    raw: impl Fn(usize) -> Option<&'a [u8]>,
) -> bool {
    if !st.header_seen {
        st.header_seen = true;
        let names: Vec<&str> = (0..nf).filter_map(&field).collect();
        st.cols = names.iter().map(|f| column(f)).collect();
        st.layout = Layout::of(&st.cols);
        if !st.cols.contains(&Col::Domain) {
            let m = format!(
                "no `domain` column in header {:?}; file not read",
                names.join(",")
            );
            b.problem(Location::Line(line), Level::Error, m);
            return false;
        }
        return true;
    }
    st.rows += 1;
    let cols = &st.cols;
    if nf > cols.len() && (cols.len()..nf).any(|i| !field(i).unwrap_or("").trim().is_empty()) {
        let m = format!(
            "{nf} fields, header has {}; extra fields ignored",
            cols.len()
        );
        b.problem(Location::Line(line), Level::Warning, m);
    }
    if let Some(row) = st.layout.as_ref().and_then(|l| l.row(&field, raw)) {
        if bool_comment(row.public_comment) {
            st.bool_comments += 1;
        }
        b.push(Location::Line(line), row);
        return true;
    }
    if let Some(row) = row_by_columns(b, st, line, field) {
        b.push(Location::Line(line), row);
    }
    true
}

/// A record read column by column (any header), each bad value reported in column order;
/// `None` if one was bad.
fn row_by_columns<'a>(
    b: &mut Builder,
    st: &mut CsvState,
    line: u64,
    field: impl Fn(usize) -> Option<&'a str>,
) -> Option<RawRow<'a>> {
    let mut row = RawRow::default();
    let mut ok = true;
    for (i, col) in st.cols.iter().enumerate() {
        let v = field(i);
        let v_or_empty = v.unwrap_or("");
        let which = match col {
            Col::Domain => {
                row.domain = v_or_empty;
                continue;
            }
            Col::Severity => {
                match Severity::parse(v_or_empty) {
                    Some(s) => row.severity = Some(s),
                    None => {
                        let m = format!("invalid severity {v_or_empty:?}; row dropped");
                        b.problem(Location::Line(line), Level::Error, m);
                        ok = false;
                    }
                }
                continue;
            }
            Col::PublicComment => {
                if bool_comment(v_or_empty) {
                    st.bool_comments += 1;
                }
                row.public_comment = v_or_empty;
                continue;
            }
            Col::PrivateComment => {
                row.private_comment = v_or_empty;
                continue;
            }
            Col::Digest => {
                row.digest = v;
                continue;
            }
            Col::Other => continue,
            Col::RejectMedia => 0,
            Col::RejectReports => 1,
            Col::Obfuscate => 2,
        };
        match parse_bool(v_or_empty) {
            Some(x) => match which {
                0 => row.reject_media = x,
                1 => row.reject_reports = x,
                _ => row.obfuscate = x,
            },
            None => {
                st.bool_errors[which] += 1;
                let name = ["reject_media", "reject_reports", "obfuscate"][which];
                let m = format!("{name} is {v_or_empty:?}, not a boolean; row dropped");
                b.problem(Location::Line(line), Level::Error, m);
                ok = false;
            }
        }
    }
    ok.then_some(row)
}

/// The whole-file heuristics after the last record.
fn csv_finish(b: &mut Builder, st: &CsvState) {
    // Whole-file heuristics need enough rows to say anything.
    const MIN_ROWS: usize = 10;
    let rows = st.rows;
    if rows >= MIN_ROWS && st.bool_comments * 2 > rows {
        let m = format!(
            "{} of {rows} rows hold a boolean in public_comment: the header is probably mislabelled",
            st.bool_comments
        );
        b.problem(Location::File, Level::Error, m);
    }
    for (which, &n) in st.bool_errors.iter().enumerate() {
        if rows >= MIN_ROWS && n * 2 >= rows {
            let name = ["reject_media", "reject_reports", "obfuscate"][which];
            let m = format!(
                "{n} of {rows} rows hold a non-boolean in {name}: the header is probably mislabelled"
            );
            b.problem(Location::File, Level::Error, m);
        }
    }
}

/// Bit `k` of the first mask set where `blk[k]` is `,`, `"`, `\r` or `\n`, of the second where
/// it is `,`. Written so that the compiler turns the comparisons into vector compares (one flag
/// byte per input byte), then gathers each eight flag bytes into eight bits with one
/// multiplication: flag byte `k` of `v` lands on bit `56 + k` of `v * 0x0102_0408_1020_4080`,
/// and no two partial products overlap or carry.
#[inline(always)]
fn stops_mask(blk: &[u8; 64]) -> (u64, u64) {
    let mut flags = [0u8; 64];
    let mut commas = [0u8; 64];
    for ((f, m), &c) in flags.iter_mut().zip(commas.iter_mut()).zip(blk) {
        *m = u8::from(c == b',');
        *f = *m | u8::from((c == b'"') | (c == b'\r') | (c == b'\n'));
    }
    (gather(&flags), gather(&commas))
}

/// Bit `k` set where `flags[k]` is 1 (each flag byte is 0 or 1; see [`stops_mask`]).
#[inline(always)]
fn gather(flags: &[u8; 64]) -> u64 {
    let mut m = 0u64;
    for (j, w) in flags.chunks_exact(8).enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        let v = u64::from_le_bytes(word);
        m |= (v.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * j);
    }
    m
}

/// The positions of the CSV stop bytes (`,` `"` `\r` `\n`) of a buffer, in order, found 64
/// bytes at a time: the loop over a record's fields then has no data-dependent loop exits
/// (a field's length does not decide a branch), and whether a stop is a comma is known without
/// reading it again.
struct Stops<'a> {
    bytes: &'a [u8],
    /// Start of the current 64-byte block (always `< bytes.len()`, or 0).
    base: usize,
    /// The stops of the current block not yet returned (bit `k`: `bytes[base + k]`).
    mask: u64,
    /// The commas of the current block.
    commas: u64,
}

impl<'a> Stops<'a> {
    fn new(bytes: &'a [u8]) -> Stops<'a> {
        let (mask, commas) = Stops::block(bytes, 0);
        Stops {
            bytes,
            base: 0,
            mask,
            commas,
        }
    }

    fn block(bytes: &[u8], base: usize) -> (u64, u64) {
        match bytes
            .get(base..base + 64)
            .and_then(|s| <&[u8; 64]>::try_from(s).ok())
        {
            Some(blk) => stops_mask(blk),
            None => {
                // The last, partial block, padded with zero bytes (not stops).
                let mut blk = [0u8; 64];
                let s = bytes.get(base..).unwrap_or(&[]);
                blk[..s.len()].copy_from_slice(s);
                stops_mask(&blk)
            }
        }
    }

    /// The position of the next stop (each is returned once), or `bytes.len()` after the last.
    #[inline]
    fn next(&mut self) -> usize {
        while self.mask == 0 {
            if self.base + 64 >= self.bytes.len() {
                return self.bytes.len();
            }
            self.base += 64;
            (self.mask, self.commas) = Stops::block(self.bytes, self.base);
        }
        let p = self.base + self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        p
    }

    /// Whether `p`, the stop [`Stops::next`] just returned, is a comma (false after the end).
    #[inline]
    fn is_comma(&self, p: usize) -> bool {
        p.wrapping_sub(self.base) < 64 && (self.commas >> (p - self.base)) & 1 == 1
    }
}

/// The common case of CSV in one pass over one buffer: valid UTF-8, `\n` or `\r\n` line ends,
/// fields either unquoted without `"` or wholly quoted without `"`, `\r` or `\n` inside.
/// Gives exactly what the full reader gives on such input (tested against it). Returns false,
/// having possibly pushed some rows into `b`, at the first thing outside that case: the
/// caller then reads the whole input again with the full reader.
fn fast_csv(bytes: &[u8], b: &mut Builder) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    b.reserve(bytes.len() / 48);
    let n = bytes.len();
    let mut st = CsvState::default();
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(16);
    // Every stop before `i` has been taken from `stops`, none at or after it.
    let mut stops = Stops::new(bytes);
    let mut i = 0usize;
    let mut line = 0u64;
    while i < n {
        line += 1;
        spans.clear();
        // One record: fields up to `\n`, `\r\n` or the end.
        loop {
            // The stop ending this field (or, at `i`, its opening quote).
            let mut k = stops.next();
            if stops.is_comma(k) {
                // The common case: an unquoted field ending in a comma.
                spans.push((i, k));
                i = k + 1;
                continue;
            }
            if k == i && k < n && bytes[k] == b'"' {
                // Quoted: commas inside are data; the closing quote must be followed by a
                // stop other than `"` (or the end).
                let j = loop {
                    let j = stops.next();
                    if j >= n {
                        return false;
                    }
                    match bytes[j] {
                        b',' => {}
                        b'"' => break j,
                        _ => return false,
                    }
                };
                spans.push((i + 1, j));
                k = stops.next();
                if k != j + 1 || (k < n && bytes[k] == b'"') {
                    return false;
                }
            } else {
                if k < n && bytes[k] == b'"' {
                    return false;
                }
                spans.push((i, k));
            }
            if k >= n {
                i = n;
                break;
            }
            match bytes[k] {
                b',' => i = k + 1,
                b'\n' => {
                    i = k + 1;
                    break;
                }
                _ => {
                    // `\r`: only as part of `\r\n` (whose `\n` is the next stop).
                    if k + 1 < n && bytes[k + 1] == b'\n' {
                        stops.next();
                        i = k + 2;
                        break;
                    }
                    return false;
                }
            }
        }
        let field = |k: usize| spans.get(k).map(|&(s, e)| &text[s..e]);
        if spans
            .iter()
            .all(|&(s, e)| bytes[s..e].iter().all(u8::is_ascii_whitespace))
        {
            continue;
        }
        let raw = |k: usize| spans.get(k).map(|&(s, e)| &bytes[s..e]);
        if !csv_record(b, &mut st, line, spans.len(), field, raw) {
            return true;
        }
    }
    csv_finish(b, &st);
    true
}

fn read_csv(bytes: &[u8], b: &mut Builder) {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    b.reserve(bytes.len() / 48);
    let mut rec = csv::ByteRecord::new();
    let mut st = CsvState::default();
    let (mut counted_to, mut counted_line) = (0usize, 1u64);
    loop {
        let line = rdr.position().line();
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                b.problem(
                    Location::Line(line),
                    Level::Error,
                    format!("unreadable CSV: {e}"),
                );
                break;
            }
        }
        // The csv crate counts a CRLF record's `\n` into the next record; count lines here.
        let mut off = rec
            .position()
            .map_or(0, |p| p.byte() as usize)
            .min(bytes.len());
        if off < counted_to {
            off = counted_to;
        }
        counted_line += bytes[counted_to..off]
            .iter()
            .filter(|&&c| c == b'\n')
            .count() as u64;
        while off < bytes.len() && (bytes[off] == b'\r' || bytes[off] == b'\n') {
            if bytes[off] == b'\n' {
                counted_line += 1;
            }
            off += 1;
        }
        counted_to = off;
        let line = if rec.position().is_some() {
            counted_line
        } else {
            line
        };
        if rec.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        // One UTF-8 check per row; fields are sliced from it without allocating.
        let Ok(row_str) = std::str::from_utf8(rec.as_slice()) else {
            let m = "invalid UTF-8; row dropped".to_string();
            b.problem(Location::Line(line), Level::Error, m);
            continue;
        };
        let nf = rec.len();
        let field = |i: usize| rec.range(i).and_then(|r| row_str.get(r));
        if (0..nf).any(|i| field(i).is_none()) {
            let m = "invalid UTF-8; row dropped".to_string();
            b.problem(Location::Line(line), Level::Error, m);
            continue;
        }
        if !csv_record(b, &mut st, line, nf, field, |i| rec.get(i)) {
            return;
        }
    }
    csv_finish(b, &st);
}

fn read_domain_list(bytes: &[u8], b: &mut Builder) {
    for (i, raw) in bytes.split(|&c| c == b'\n').enumerate() {
        let line = i as u64 + 1;
        let Ok(text) = std::str::from_utf8(raw) else {
            let m = "invalid UTF-8; line dropped".to_string();
            b.problem(Location::Line(line), Level::Error, m);
            continue;
        };
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') || text.starts_with('!') {
            continue;
        }
        // A single-column CSV (`domain,`): the domain is the first field.
        let domain = text
            .split(',')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"');
        if domain.is_empty() {
            continue;
        }
        let row = RawRow {
            domain,
            ..RawRow::default()
        };
        b.push(Location::Line(line), row);
    }
}

fn json_error(b: &mut Builder, e: &serde_json::Error) {
    let m = format!("invalid JSON: {e}; input not read");
    b.problem(Location::Line(e.line() as u64), Level::Error, m);
}

fn read_api_json(bytes: &[u8], b: &mut Builder) {
    let v: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return json_error(b, &e),
    };
    let Value::Array(items) = v else {
        let m = "expected a JSON array of domain blocks; input not read".to_string();
        b.problem(Location::File, Level::Error, m);
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let loc = Location::Item(i as u64);
        let Value::Object(o) = item else {
            b.problem(loc, Level::Error, "not a JSON object; dropped".into());
            continue;
        };
        let text = |k: &str| o.get(k).and_then(Value::as_str);
        let Some(domain) = text("domain") else {
            b.problem(loc, Level::Error, "no string `domain`; dropped".into());
            continue;
        };
        let severity = match o.get("severity") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match Severity::parse(s) {
                Some(s) => Some(s),
                None => {
                    b.problem(
                        loc,
                        Level::Error,
                        format!("invalid severity {s:?}; dropped"),
                    );
                    continue;
                }
            },
            Some(other) => {
                let m = format!("invalid severity {other}; dropped");
                b.problem(loc, Level::Error, m);
                continue;
            }
        };
        let mut flags = [false; 3];
        let mut ok = true;
        for (j, k) in ["reject_media", "reject_reports", "obfuscate"]
            .iter()
            .enumerate()
        {
            flags[j] = match o.get(*k) {
                None | Some(Value::Null) => false,
                Some(Value::Bool(x)) => *x,
                Some(Value::String(s)) if parse_bool(s).is_some() => parse_bool(s) == Some(true),
                Some(other) => {
                    b.problem(loc, Level::Error, format!("{k} is {other}, not a boolean"));
                    ok = false;
                    false
                }
            };
        }
        if !ok {
            continue;
        }
        let row = RawRow {
            domain,
            severity,
            reject_media: flags[0],
            reject_reports: flags[1],
            obfuscate: flags[2],
            public_comment: text("public_comment").or(text("comment")).unwrap_or(""),
            private_comment: text("private_comment").unwrap_or(""),
            digest: text("digest"),
        };
        b.push(loc, row);
    }
}

fn read_rapidblock_json(bytes: &[u8], b: &mut Builder) {
    let v: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return json_error(b, &e),
    };
    let Some(blocks) = v.get("blocks").and_then(Value::as_object) else {
        let m = "no `blocks` object: not RapidBlock JSON; input not read".to_string();
        b.problem(Location::File, Level::Error, m);
        return;
    };
    for (i, (domain, attrs)) in blocks.iter().enumerate() {
        let loc = Location::Item(i as u64);
        let blocked = match attrs.get("isBlocked") {
            Some(Value::Bool(x)) => *x,
            other => {
                let m = format!("isBlocked is {other:?}, not a boolean; dropped");
                b.problem(loc, Level::Error, m);
                continue;
            }
        };
        let row = RawRow {
            domain,
            severity: Some(if blocked {
                Severity::Suspend
            } else {
                Severity::Noop
            }),
            public_comment: attrs.get("reason").and_then(Value::as_str).unwrap_or(""),
            ..RawRow::default()
        };
        b.push(loc, row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The shortcuts of [`bool_comment`] give what trimming and comparing gives.
        #[test]
        fn bool_comment_is_a_trimmed_boolean(
            c in "[ \t\u{a0}\u{2003}]{0,2}(true|TRUE|false|FaLsE|tru|fals|spam|x|)[ \t\u{a0}\u{2003}e]{0,2}"
        ) {
            let t = c.trim();
            let expected = t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false");
            proptest::prop_assert_eq!(bool_comment(&c), expected);
        }
    }

    #[test]
    fn exact_spellings_only() {
        for v in [
            "", "t", "tru", "true", "truee", "True", "false", "fals", "falsee", "FALSE", "noop",
            "noo", "noopy", "suspend", "suspen", "suspends", "silence", "Silence", "limit",
            "silencE", " true",
        ] {
            let b = v.as_bytes();
            let bool_want = match v {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            };
            assert_eq!(exact_bool(b), bool_want, "{v:?}");
            let sev_want = match v {
                "suspend" => Some(Severity::Suspend),
                "silence" => Some(Severity::Silence),
                "noop" | "" => Some(Severity::Noop),
                _ => None,
            };
            assert_eq!(exact_severity(b), sev_want, "{v:?}");
        }
    }

    #[test]
    fn a_row_by_layout_is_the_row_by_columns() {
        let values = [
            "",
            "a.example",
            "true",
            "false",
            "TRUE",
            " true",
            "yes",
            "0",
            "suspend",
            "silence",
            "noop",
            "Suspend",
            "limit",
            "x, y",
            "bogus",
        ];
        let header = [
            "domain",
            "severity",
            "reject_media",
            "reject_reports",
            "obfuscate",
            "public_comment",
            "private_comment",
            "digest",
            "other",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut quick = 0;
        for _ in 0..20_000 {
            // A header of distinct columns in any order (some left out), with `domain`.
            let mut names: Vec<&str> = header.iter().copied().filter(|_| rnd(3) > 0).collect();
            names.push("domain");
            names.dedup();
            for i in (1..names.len()).rev() {
                names.swap(i, rnd(i as u64 + 1) as usize);
            }
            let cols: Vec<Col> = names.iter().map(|n| column(n)).collect();
            let Some(layout) = Layout::of(&cols) else {
                continue;
            };
            let nf = rnd(names.len() as u64 + 2) as usize;
            let fields: Vec<&str> = (0..nf)
                .map(|_| values[rnd(values.len() as u64) as usize])
                .collect();
            let field = |i: usize| fields.get(i).copied();
            let raw = |i: usize| fields.get(i).map(|f| f.as_bytes());
            let mut b = Builder::new("t");
            let mut st = CsvState {
                cols,
                ..CsvState::default()
            };
            let by_columns = row_by_columns(&mut b, &mut st, 1, field);
            if let Some(row) = layout.row(field, raw) {
                quick += 1;
                assert_eq!(Some(row), by_columns, "{names:?} {fields:?}");
                assert!(b.list.problems.is_empty());
            }
        }
        assert!(quick > 100, "{quick}");
    }

    #[test]
    fn stops_are_every_stop_byte_in_order() {
        let alphabet = b"a,\"\r\n\x01\x81\xff\x2b\x2d\x21";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..5_000 {
            let len = rnd(if round % 4 == 0 { 400 } else { 130 }) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    if rnd(3) == 0 {
                        alphabet[rnd(alphabet.len() as u64) as usize]
                    } else {
                        rnd(256) as u8
                    }
                })
                .collect();
            let naive: Vec<usize> = (0..len)
                .filter(|&k| b",\"\r\n".contains(&bytes[k]))
                .collect();
            let mut stops = Stops::new(&bytes);
            let mut commas = Vec::new();
            let got: Vec<usize> = std::iter::from_fn(|| {
                let p = stops.next();
                commas.push(stops.is_comma(p));
                Some(p).filter(|&p| p < len)
            })
            .collect();
            assert_eq!(got, naive, "{bytes:?}");
            let naive_commas: Vec<bool> = got.iter().map(|&p| bytes[p] == b',').collect();
            assert_eq!(commas[..got.len()], naive_commas[..], "{bytes:?}");
            assert!(!commas[got.len()], "the end is not a comma");
            // After the last stop, the end, again and again.
            assert_eq!(stops.next(), len);
            assert_eq!(stops.next(), len);
        }
    }
}
