//! The consensus merge: FediBlockHole's algorithm exactly by default, plus trust weights, a
//! maximum severity per source, subdomain-aware coverage and an audit record per domain.
//!
//! Lists are folded in source order as they arrive ([`Merger::add`]), so a merge of hundreds of
//! large lists never holds more than one parsed list plus the per-domain accumulators.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use hashbrown::HashTable;
use thiserror::Error;

use crate::domain::{digest, parents};
use crate::hash;
use crate::read::Compact;
use crate::types::{BlockEntry, Blocklist, ObfuscatedEntry, Severity};

/// How overlapping blocks of one domain combine (FediBlockHole's `mergeplan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MergePlan {
    /// Highest severity; a flag is set if any list sets it (the default).
    #[default]
    Max,
    /// Lowest severity; a flag is set only if every list sets it.
    Min,
}

/// How the threshold is compared (FediBlockHole's `merge_threshold_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ThresholdType {
    /// The number of lists (or the sum of their weights) naming the domain.
    #[default]
    Count,
    /// The percentage of lists (or of the total weight) naming the domain.
    Pct,
}

/// A bad option value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OptionError {
    /// Not `max` or `min`.
    #[error("unknown mergeplan {0:?} (expected max or min)")]
    MergePlan(String),
    /// Not `count` or `pct`.
    #[error("unknown merge threshold type {0:?} (expected count or pct)")]
    ThresholdType(String),
    /// Not one of FediBlockHole's field names.
    #[error("unknown field {0:?} (expected public_comment, private_comment, reject_media, reject_reports or obfuscate)")]
    Field(String),
}

impl FromStr for MergePlan {
    type Err = OptionError;
    fn from_str(s: &str) -> Result<Self, OptionError> {
        match s {
            "max" => Ok(MergePlan::Max),
            "min" => Ok(MergePlan::Min),
            _ => Err(OptionError::MergePlan(s.to_string())),
        }
    }
}

impl FromStr for ThresholdType {
    type Err = OptionError;
    fn from_str(s: &str) -> Result<Self, OptionError> {
        match s {
            "count" => Ok(ThresholdType::Count),
            "pct" => Ok(ThresholdType::Pct),
            _ => Err(OptionError::ThresholdType(s.to_string())),
        }
    }
}

/// Which optional fields are imported from the sources (FediBlockHole's `import_fields`;
/// `domain` and `severity` always are). Fields not imported take their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportFields {
    /// Import `public_comment`.
    pub public_comment: bool,
    /// Import `private_comment`.
    pub private_comment: bool,
    /// Import `reject_media`.
    pub reject_media: bool,
    /// Import `reject_reports`.
    pub reject_reports: bool,
    /// Import `obfuscate`.
    pub obfuscate: bool,
}

impl ImportFields {
    /// Every field.
    pub fn all() -> ImportFields {
        ImportFields {
            public_comment: true,
            private_comment: true,
            reject_media: true,
            reject_reports: true,
            obfuscate: true,
        }
    }

    /// Adds one field by name (`domain`, `severity` and `id` are accepted and ignored).
    pub fn add(&mut self, name: &str) -> Result<(), OptionError> {
        match name {
            "public_comment" => self.public_comment = true,
            "private_comment" => self.private_comment = true,
            "reject_media" => self.reject_media = true,
            "reject_reports" => self.reject_reports = true,
            "obfuscate" => self.obfuscate = true,
            "domain" | "severity" | "id" => {}
            other => return Err(OptionError::Field(other.to_string())),
        }
        Ok(())
    }

    fn apply(self, e: &mut BlockEntry) {
        if !self.public_comment {
            e.public_comment.clear();
        }
        if !self.private_comment {
            e.private_comment.clear();
        }
        if !self.reject_media {
            e.reject_media = false;
        }
        if !self.reject_reports {
            e.reject_reports = false;
        }
        if !self.obfuscate {
            e.obfuscate = false;
        }
    }
}

/// Per-source settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceOptions {
    /// A name for the audit (URL or path).
    pub name: String,
    /// Trust weight (FediBlockHole: always 1). Must be finite and non-negative.
    pub weight: f64,
    /// Severities above this are clamped to it (FediBlockHole's per-source `max_severity`).
    pub max_severity: Severity,
    /// Fields imported from this source; `None` uses [`MergeOptions::import`].
    pub import: Option<ImportFields>,
}

impl SourceOptions {
    /// A source with weight 1, no severity cap and the global import fields.
    pub fn new(name: impl Into<String>) -> SourceOptions {
        SourceOptions {
            name: name.into(),
            weight: 1.0,
            max_severity: Severity::Suspend,
            import: None,
        }
    }
}

/// Merge settings. The default is FediBlockHole's default (`max`, threshold 0 by count,
/// `domain` and `severity` only).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MergeOptions {
    /// `max` or `min`.
    pub plan: MergePlan,
    /// Keep a domain when its level is `>=` this.
    pub threshold: f64,
    /// Count or percentage.
    pub threshold_type: ThresholdType,
    /// Fields imported from every source.
    pub import: ImportFields,
    /// Subdomain-aware coverage (not in FediBlockHole): a list blocking `example.com` also
    /// supports `a.example.com`; an allowlisted domain also allows its subdomains; a result
    /// covered by an included parent block at least as strict is left out (Mastodon's
    /// `rule_for` would refuse it).
    pub subdomains: bool,
    /// Leave [`MergeResult::audit`] empty (less work when no audit is written);
    /// [`MergeResult::domains_seen`] still counts the domains.
    pub no_audit: bool,
}

/// What happened to a domain in the merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// In the merged list.
    Included,
    /// Not enough support.
    BelowThreshold,
    /// Removed by an allowlist (or `-A`).
    Allowlisted,
    /// Left out: an included parent block already covers it.
    CoveredBy(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Included => f.write_str("included"),
            Outcome::BelowThreshold => f.write_str("below-threshold"),
            Outcome::Allowlisted => f.write_str("allowlisted"),
            Outcome::CoveredBy(p) => write!(f, "covered-by:{p}"),
        }
    }
}

/// The audit record of one domain: who listed it, how, and what the merge made of it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// The domain.
    pub domain: String,
    /// Lists naming it (FediBlockHole's `count`).
    pub count: u32,
    /// `count / n * 100` (FediBlockHole's `percent`).
    pub percent: f64,
    /// Share of the total trust weight supporting it, 0..=1 (with subdomain coverage, this
    /// counts lists blocking a parent too).
    pub score: f64,
    /// Each list naming it exactly, with its severity after the source's cap (packed; see
    /// [`SourceMark`] and [`AuditRecord::source_list`]).
    pub sources: Vec<SourceMark>,
    /// The merged severity (whether or not it was included).
    pub severity: Severity,
    /// What happened.
    pub outcome: Outcome,
}

/// One list's vote on a domain, packed in 32 bits: the source index and its severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceMark(u32);

impl SourceMark {
    /// The source's index in [`MergeResult::sources`].
    pub fn source(self) -> usize {
        (self.0 >> 2) as usize
    }

    /// The severity this source gave (after its cap).
    pub fn severity(self) -> Severity {
        code_sev(self.0)
    }
}

impl AuditRecord {
    /// `(source index, severity)` for each list naming the domain exactly, in source order.
    pub fn source_list(&self) -> Vec<(usize, Severity)> {
        self.sources
            .iter()
            .map(|m| (m.source(), m.severity()))
            .collect()
    }
}

/// The merge result.
#[derive(Debug, Clone, Default)]
pub struct MergeResult {
    /// The merged blocks, sorted by domain.
    pub entries: Vec<BlockEntry>,
    /// One record per domain seen, sorted by domain (empty with [`MergeOptions::no_audit`]).
    pub audit: Vec<AuditRecord>,
    /// The number of distinct domains seen.
    pub domains_seen: usize,
    /// The sources, in order.
    pub sources: Vec<SourceOptions>,
    /// Obfuscated rows skipped (no digest, or no known domain with that digest).
    pub obfuscated_skipped: usize,
    /// Obfuscated rows matched to a real domain by digest.
    pub digests_resolved: usize,
}

/// One domain's accumulator: the merged block so far (comments as interned ids).
#[derive(Clone, Copy, Default)]
struct Acc {
    weight: f64,
    /// Public comment (see [`STR`]).
    pc: u64,
    /// Private comment (see [`STR`]).
    pv: u64,
    severity: Severity,
    reject_media: bool,
    reject_reports: bool,
    obfuscate: bool,
}

/// How many leading bytes of a domain its [`Key`] holds.
const INLINE: usize = 24;

/// A domain's key in the merge's hash table: its index and its first bytes, so that a lookup
/// compares against the table slot itself (the whole text only for longer domains).
#[derive(Clone, Copy)]
struct Key {
    id: u32,
    len: u32,
    head: [u8; INLINE],
}

/// A slot of the merge's hash table: a domain's key and its accumulator in one cache line, so
/// that folding a row costs one cache miss.
#[derive(Clone, Copy)]
#[repr(align(64))]
struct Slot {
    key: Key,
    acc: Acc,
}

impl Key {
    fn new(id: u32, d: &str) -> Key {
        let mut head = [0u8; INLINE];
        let n = d.len().min(INLINE);
        head[..n].copy_from_slice(&d.as_bytes()[..n]);
        Key {
            id,
            len: d.len() as u32,
            head,
        }
    }

    /// Is this the key of `d`? (`doms`/`text`: where the whole domain is.)
    fn is(&self, d: &str, doms: &[(usize, usize)], text: &str) -> bool {
        let n = d.len();
        if self.len as usize != n || d.len() > u32::MAX as usize {
            return false;
        }
        if n <= INLINE {
            return &self.head[..n] == d.as_bytes();
        }
        self.head == d.as_bytes()[..INLINE] && {
            let s = doms[self.id as usize];
            &text[s.0..s.1] == d
        }
    }
}

/// [`Key::id`] of an empty [`Table`] slot.
const EMPTY: u32 = u32::MAX;

/// The merge's hash table: open addressing with linear probing over [`Slot`]s, at most half
/// full. Unlike a general-purpose table, the home slot of a hash is known without probing
/// ([`Table::touch`]), so that the slots of many rows can be loaded at once.
struct Table {
    slots: Vec<Slot>,
    len: usize,
}

impl Table {
    const VACANT: Slot = Slot {
        key: Key {
            id: EMPTY,
            len: 0,
            head: [0; INLINE],
        },
        acc: Acc {
            weight: 0.0,
            pc: 0,
            pv: 0,
            severity: Severity::Noop,
            reject_media: false,
            reject_reports: false,
            obfuscate: false,
        },
    };

    fn new() -> Table {
        Table {
            slots: vec![Table::VACANT; 16],
            len: 0,
        }
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// Loads the home slot of `h` (returns something from it, for `black_box`).
    fn touch(&self, h: u64) -> u32 {
        self.slots[h as usize & self.mask()].key.id
    }

    /// The slot holding `d` (`Ok`), or the empty slot where it would go (`Err`).
    fn probe(&self, h: u64, d: &str, doms: &[(usize, usize)], text: &str) -> Result<usize, usize> {
        let mask = self.mask();
        let mut i = h as usize & mask;
        loop {
            let k = &self.slots[i].key;
            if k.id == EMPTY {
                return Err(i);
            }
            if k.is(d, doms, text) {
                return Ok(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// Makes room for `more` new domains (`hashes`: every domain's hash, by index).
    fn reserve(&mut self, more: usize, hashes: &[u64]) {
        let need = (self.len + more) * 2;
        if need <= self.slots.len() {
            return;
        }
        let mut n = self.slots.len();
        while n < need {
            n *= 2;
        }
        let old = std::mem::replace(&mut self.slots, vec![Table::VACANT; n]);
        let mask = n - 1;
        for s in old.into_iter().filter(|s| s.key.id != EMPTY) {
            let mut i = hashes[s.key.id as usize] as usize & mask;
            while self.slots[i].key.id != EMPTY {
                i = (i + 1) & mask;
            }
            self.slots[i] = s;
        }
    }

    /// Inserts a domain not in the table (`hashes`: every domain's hash, by index).
    fn insert(&mut self, h: u64, slot: Slot, hashes: &[u64]) {
        self.reserve(1, hashes);
        let mask = self.mask();
        let mut i = h as usize & mask;
        while self.slots[i].key.id != EMPTY {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
        self.len += 1;
    }

    fn occupied(&self) -> impl Iterator<Item = &Slot> {
        self.slots.iter().filter(|s| s.key.id != EMPTY)
    }
}

/// Interned strings (comments): one copy of each distinct string, id 0 is `""`.
struct Interner {
    text: String,
    spans: Vec<(usize, usize)>,
    index: HashTable<u32>,
    /// Per comment: its non-empty `", "` tokens as a bit set over the first 64 distinct
    /// tokens (`None` unless they are pairwise distinct and all have a bit), and whether it
    /// has an empty token.
    masks: Vec<Option<(u64, bool)>>,
    /// Per comment: its non-empty tokens as a packed sequence (see [`STR`]) when `masks` has a
    /// bit set for it and they are at most [`SEQ_MAX`].
    toks: Vec<Option<u64>>,
    /// Per comment: how an accumulator holds it (see [`STR`]).
    reprs: Vec<u64>,
    tokens: hash::Map<String, u32>,
    /// Token bit -> token text.
    names: Vec<String>,
    /// `merge_comments(a, b)` by interned ids, computed once per distinct pair.
    merged: hash::Map<(u32, u32), u32>,
}

/// An accumulated comment is a `u64`: with `STR` set, an interned comment id; otherwise the
/// comment's tokens (pairwise distinct, none empty, each with a token bit) packed 6 bits each
/// after a 4-bit length, so that the comment is exactly the tokens joined with `", "`.
/// Folding a comment in then costs a few bit operations instead of building and interning a
/// string (`merge_comments_into` appends the new tokens not already present).
const STR: u64 = 1 << 63;
/// The most tokens a packed sequence holds (4 + 9 * 6 bits).
const SEQ_MAX: u64 = 9;

fn seq_len(s: u64) -> u64 {
    s & 15
}

fn seq_token(s: u64, k: u64) -> u64 {
    (s >> (4 + 6 * k)) & 63
}

fn seq_push(s: u64, t: u64) -> u64 {
    (s | (t << (4 + 6 * seq_len(s)))) + 1
}

fn seq_mask(s: u64) -> u64 {
    (0..seq_len(s)).fold(0, |m, k| m | (1 << seq_token(s, k)))
}

impl Interner {
    fn new() -> Interner {
        Interner {
            text: String::new(),
            spans: vec![(0, 0)],
            index: HashTable::new(),
            masks: vec![None],
            toks: vec![Some(0)],
            reprs: vec![0],
            tokens: hash::Map::default(),
            names: Vec::new(),
            merged: hash::Map::default(),
        }
    }

    fn get(&self, id: u32) -> &str {
        let s = self.spans[id as usize];
        &self.text[s.0..s.1]
    }

    /// The token bit set of a comment (see `masks`) and whether it has an empty token.
    fn token_mask(&mut self, c: &str) -> Option<(u64, bool)> {
        let mut mask = 0u64;
        let mut empty = false;
        for t in comma_split(c) {
            if t.is_empty() {
                empty = true;
                continue;
            }
            let next = self.tokens.len() as u32;
            let bit = match self.tokens.get(t) {
                Some(&b) => b,
                None => {
                    self.tokens.insert(t.to_string(), next);
                    if next < 64 {
                        self.names.push(t.to_string());
                    }
                    next
                }
            };
            if bit >= 64 || mask & (1 << bit) != 0 {
                return None;
            }
            mask |= 1 << bit;
        }
        Some((mask, empty))
    }

    fn intern(&mut self, c: &str) -> u32 {
        if c.is_empty() {
            return 0;
        }
        let h = hash::of(c);
        let (text, spans) = (&self.text, &self.spans);
        if let Some(&id) = self.index.find(h, |&i| {
            let s = spans[i as usize];
            &text[s.0..s.1] == c
        }) {
            return id;
        }
        let m = self.token_mask(c);
        let toks = m.and_then(|_| {
            let mut q = 0u64;
            for t in comma_split(c).filter(|t| !t.is_empty()) {
                if seq_len(q) == SEQ_MAX {
                    return None;
                }
                q = seq_push(q, u64::from(*self.tokens.get(t)?));
            }
            Some(q)
        });
        let id = self.spans.len() as u32;
        self.reprs.push(match (m, toks) {
            (Some((_, false)), Some(q)) => q,
            _ => STR | u64::from(id),
        });
        self.toks.push(toks);
        self.masks.push(m);
        let start = self.text.len();
        self.text.push_str(c);
        self.spans.push((start, self.text.len()));
        let (text, spans) = (&self.text, &self.spans);
        self.index.insert_unique(h, id, |&i| {
            let s = spans[i as usize];
            hash::of(&text[s.0..s.1])
        });
        id
    }

    /// The text of an accumulated comment (see [`STR`]).
    fn render(&self, r: u64) -> String {
        if r & STR != 0 {
            return self.get((r & !STR) as u32).to_string();
        }
        let tokens = || (0..seq_len(r)).map(|k| self.names[seq_token(r, k) as usize].as_str());
        // One allocation of the exact size.
        let len = tokens()
            .map(|t| t.len() + 2)
            .sum::<usize>()
            .saturating_sub(2);
        let mut out = String::with_capacity(len);
        for (k, t) in tokens().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            out.push_str(t);
        }
        out
    }
}

/// The fields of one block being folded in (comments as interned ids).
#[derive(Clone, Copy)]
struct Part {
    severity: Severity,
    reject_media: bool,
    reject_reports: bool,
    obfuscate: bool,
    pc: u32,
    pv: u32,
}

fn sev_code(s: Severity) -> u32 {
    match s {
        Severity::Noop => 0,
        Severity::Silence => 1,
        Severity::Suspend => 2,
    }
}

fn code_sev(c: u32) -> Severity {
    match c & 3 {
        0 => Severity::Noop,
        1 => Severity::Silence,
        _ => Severity::Suspend,
    }
}

/// `s.split(", ")` without the generic substring searcher (the merge's hottest loop).
fn comma_split(s: &str) -> impl Iterator<Item = &str> + Clone {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let s = rest?;
        let b = s.as_bytes();
        let mut i = 0;
        while i + 1 < b.len() {
            if b[i] == b',' && b[i + 1] == b' ' {
                rest = Some(&s[i + 2..]);
                return Some(&s[..i]);
            }
            i += 1;
        }
        rest = None;
        Some(s)
    })
}

/// FediBlockHole's `merge_comments`, exactly.
pub fn merge_comments(old: &str, new: &str) -> String {
    if old.is_empty() && new.is_empty() {
        return String::new();
    }
    if old == new || new.is_empty() {
        return old.to_string();
    }
    if old.is_empty() {
        return new.to_string();
    }
    let ot: Vec<&str> = comma_split(old).filter(|t| !t.is_empty()).collect();
    let mut nt: Vec<&str> = comma_split(new).filter(|t| !t.is_empty()).collect();
    for t in &ot {
        if let Some(i) = nt.iter().position(|x| x == t) {
            nt.remove(i);
        }
    }
    let mut all = ot;
    all.extend(nt);
    all.join(", ")
}

/// [`merge_comments`] in place: `acc = merge_comments(acc, new)`, allocating only when the
/// comment grows.
pub fn merge_comments_into(acc: &mut String, new: &str) {
    if new.is_empty() || acc == new {
        return;
    }
    if acc.is_empty() {
        acc.push_str(new);
        return;
    }
    // Fast path when `acc` has no empty token (so its tokens joined give `acc` back): the
    // result is `acc` plus the tokens of `new` left after removing, for each token of `acc`,
    // its first remaining occurrence in `new`.
    if comma_split(acc).any(str::is_empty) {
        *acc = merge_comments(acc, new);
        return;
    }
    let nt = || comma_split(new).filter(|t| !t.is_empty());
    let mut extra = String::new();
    for (j, t) in nt().enumerate() {
        let in_old = comma_split(acc).filter(|x| x == &t).count();
        let before = nt().take(j).filter(|x| x == &t).count();
        if before >= in_old {
            extra.push_str(", ");
            extra.push_str(t);
        }
    }
    acc.push_str(&extra);
}

/// FediBlockHole's `apply_mergeplan`: folds `new` into `acc`.
pub fn apply_mergeplan(acc: &mut BlockEntry, new: &BlockEntry, plan: MergePlan) {
    merge_comments_into(&mut acc.public_comment, &new.public_comment);
    merge_comments_into(&mut acc.private_comment, &new.private_comment);
    match plan {
        MergePlan::Max => {
            acc.severity = acc.severity.max(new.severity);
            acc.reject_media |= new.reject_media;
            acc.reject_reports |= new.reject_reports;
            acc.obfuscate |= new.obfuscate;
        }
        MergePlan::Min => {
            acc.severity = acc.severity.min(new.severity);
            acc.reject_media &= new.reject_media;
            acc.reject_reports &= new.reject_reports;
            acc.obfuscate &= new.obfuscate;
        }
    }
}

/// How many bits of a domain's hash choose its [`Shard`] (the top bits; the table slots use
/// the low ones).
const SHARD_BITS: u32 = 1;
/// The number of shards: each folds its share of every list, on its own thread in
/// [`Merger::add_compact_parallel`].
pub(crate) const SHARDS: usize = 1 << SHARD_BITS;

/// The shard of a domain hash.
pub(crate) fn shard_of(h: u64) -> usize {
    (h >> (64 - SHARD_BITS)) as usize
}

/// The domains of one shard (those whose hash has [`shard_of`] equal to its index), with their
/// accumulators and votes. A domain's whole history is in one shard, folded in list order.
struct Shard {
    /// The domains, one copy each.
    text: String,
    /// The domains' keys and accumulators, hashed by domain.
    index: Table,
    /// Each domain's text in `text`, by domain index (local to the shard).
    doms: Vec<(usize, usize)>,
    /// Each domain's hash, by domain index (for growing the table without rehashing text).
    hashes: Vec<u64>,
    /// The votes in fold order: `(domain index, (source index << 2) | severity)` (only of the
    /// lists for which [`Merger::records_votes`]).
    marks: Vec<(u32, u32)>,
    /// Where each domain was first seen, by domain index: `(source index << 32) | row`, the
    /// order in which one unsharded table would have numbered the domains.
    first: Vec<u64>,
    /// The comments of this shard's accumulators.
    comments: Interner,
}

/// What a shard needs to know of a list to fold it.
#[derive(Clone, Copy)]
struct ListJob {
    si: usize,
    weight: f64,
    plan: MergePlan,
    import: ImportFields,
    cap: Severity,
    record: bool,
}

/// A streaming merge: add lists in source order, then [`Merger::finish`].
pub struct Merger {
    opts: MergeOptions,
    sources: Vec<SourceOptions>,
    shards: Vec<Shard>,
    pending: Vec<(usize, BlockEntry, String)>,
    obfuscated_skipped: usize,
}

/// Applies a source's import fields and severity cap to a block.
fn prepare(import: ImportFields, cap: Severity, e: &mut BlockEntry) {
    import.apply(e);
    if e.severity > cap {
        e.severity = cap;
    }
}

/// Queues a list's obfuscated rows with a digest for [`Merger::finish`] (counts the others).
fn queue_obfuscated(
    pending: &mut Vec<(usize, BlockEntry, String)>,
    skipped: &mut usize,
    job: &ListJob,
    obfuscated: Vec<ObfuscatedEntry>,
) {
    for mut o in obfuscated {
        match o.digest {
            Some(d) => {
                prepare(job.import, job.cap, &mut o.entry);
                pending.push((job.si, o.entry, d));
            }
            None => *skipped += 1,
        }
    }
}

/// Where the shards' domains are in one numbering (shard `s`'s domain `i` is `off[s] + i`),
/// fixed once the lists are folded.
struct Ids {
    off: [usize; SHARDS + 1],
}

impl Ids {
    fn new(shards: &[Shard]) -> Ids {
        let mut off = [0; SHARDS + 1];
        for (s, sh) in shards.iter().enumerate() {
            off[s + 1] = off[s] + sh.doms.len();
        }
        Ids { off }
    }

    fn len(&self) -> usize {
        self.off[SHARDS]
    }

    /// `(shard, local index)` of a domain.
    fn locate(&self, g: usize) -> (usize, usize) {
        let s = self.off[1..].iter().take_while(|&&o| o <= g).count();
        (s, g - self.off[s])
    }
}

impl Merger {
    /// A merge with these options.
    pub fn new(opts: MergeOptions) -> Merger {
        Merger {
            opts,
            sources: Vec::new(),
            shards: (0..SHARDS).map(|_| Shard::new()).collect(),
            pending: Vec::new(),
            obfuscated_skipped: 0,
        }
    }

    /// A domain's text by its index in `ids`.
    fn dom(&self, ids: &Ids, g: usize) -> &str {
        let (s, i) = ids.locate(g);
        self.shards[s].dom(i)
    }

    /// A domain's index in `ids`.
    fn lookup(&self, ids: &Ids, d: &str) -> Option<usize> {
        let h = hash::of(d);
        let s = shard_of(h);
        let sh = &self.shards[s];
        let i = sh.index.probe(h, d, &sh.doms, &sh.text).ok()?;
        Some(ids.off[s] + sh.index.slots[i].key.id as usize)
    }
}

impl Shard {
    fn new() -> Shard {
        Shard {
            text: String::new(),
            index: Table::new(),
            doms: Vec::new(),
            hashes: Vec::new(),
            marks: Vec::new(),
            first: Vec::new(),
            comments: Interner::new(),
        }
    }

    fn dom(&self, i: usize) -> &str {
        let s = self.doms[i];
        &self.text[s.0..s.1]
    }
}

impl Interner {
    /// `merge_comments_into(acc, new)` on an accumulated comment and an interned one.
    fn merge_acc(&mut self, acc: u64, new: u32) -> u64 {
        if new == 0 {
            return acc;
        }
        if acc == 0 {
            return self.reprs[new as usize];
        }
        if acc & STR == 0 {
            if let Some(nt) = self.toks[new as usize] {
                let mut am = seq_mask(acc);
                let mut out = acc;
                let mut fits = true;
                for k in 0..seq_len(nt) {
                    let t = seq_token(nt, k);
                    if am & (1 << t) == 0 {
                        if seq_len(out) == SEQ_MAX {
                            fits = false;
                            break;
                        }
                        out = seq_push(out, t);
                        am |= 1 << t;
                    }
                }
                if fits {
                    return out;
                }
            }
        }
        let old = if acc & STR != 0 {
            (acc & !STR) as u32
        } else {
            let text = self.render(acc);
            self.intern(&text)
        };
        let m = self.merge_comment(old, new);
        self.reprs[m as usize]
    }

    /// `merge_comments_into` on interned comments.
    fn merge_comment(&mut self, old: u32, new: u32) -> u32 {
        if new == 0 || old == new {
            return old;
        }
        if old == 0 {
            return new;
        }
        // Both with distinct tokens and `old` without an empty one: `merge_comments_into`
        // appends the tokens of `new` not in `old`, so none new means no change.
        if let (Some((om, false)), Some((nm, _))) =
            (self.masks[old as usize], self.masks[new as usize])
        {
            if nm & !om == 0 {
                return old;
            }
        }
        if let Some(&m) = self.merged.get(&(old, new)) {
            return m;
        }
        let mut acc = self.get(old).to_string();
        merge_comments_into(&mut acc, self.get(new));
        let m = self.intern(&acc);
        self.merged.insert((old, new), m);
        m
    }
}

impl Shard {
    /// Folds one (prepared) block of list `job` (its `row`) into its domain's accumulator;
    /// returns the accumulator's index and the vote to record.
    fn fold(&mut self, job: &ListJob, row: usize, h: u64, domain: &str, p: Part) -> (u32, u32) {
        let code = ((job.si as u32) << 2) | sev_code(p.severity);
        if let Ok(i) = self.index.probe(h, domain, &self.doms, &self.text) {
            let slot = &mut self.index.slots[i];
            let acc = &mut slot.acc;
            acc.pc = self.comments.merge_acc(acc.pc, p.pc);
            acc.pv = self.comments.merge_acc(acc.pv, p.pv);
            match job.plan {
                MergePlan::Max => {
                    acc.severity = acc.severity.max(p.severity);
                    acc.reject_media |= p.reject_media;
                    acc.reject_reports |= p.reject_reports;
                    acc.obfuscate |= p.obfuscate;
                }
                MergePlan::Min => {
                    acc.severity = acc.severity.min(p.severity);
                    acc.reject_media &= p.reject_media;
                    acc.reject_reports &= p.reject_reports;
                    acc.obfuscate &= p.obfuscate;
                }
            }
            acc.weight += job.weight;
            return (slot.key.id, code);
        }
        let i = self.doms.len() as u32;
        let start = self.text.len();
        self.text.push_str(domain);
        self.doms.push((start, self.text.len()));
        self.hashes.push(h);
        self.first.push(((job.si as u64) << 32) | row as u64);
        let acc = Acc {
            weight: job.weight,
            pc: self.comments.reprs[p.pc as usize],
            pv: self.comments.reprs[p.pv as usize],
            severity: p.severity,
            reject_media: p.reject_media,
            reject_reports: p.reject_reports,
            obfuscate: p.obfuscate,
        };
        let key = Key::new(i, domain);
        self.index.insert(h, Slot { key, acc }, &self.hashes);
        (i, code)
    }

    /// Folds a prepared block of this shard (`h`: its domain's hash).
    fn fold_entry(&mut self, job: &ListJob, row: usize, h: u64, e: &BlockEntry) -> (u32, u32) {
        let p = Part {
            severity: e.severity,
            reject_media: e.reject_media,
            reject_reports: e.reject_reports,
            obfuscate: e.obfuscate,
            pc: self.comments.intern(&e.public_comment),
            pv: self.comments.intern(&e.private_comment),
        };
        self.fold(job, row, h, &e.domain, p)
    }

    /// Makes room for a list's `rows` (this shard's part of them).
    fn reserve(&mut self, rows: usize, record: bool) {
        // Room for a quarter of them as new domains.
        let grow = rows / 4;
        self.doms.reserve(grow);
        self.hashes.reserve(grow);
        if record {
            self.marks.reserve(rows);
        }
        self.index.reserve(grow, &self.hashes);
    }

    /// Folds the rows of `list` that belong to shard `me` (its part of them).
    fn add_rows(&mut self, me: usize, job: &ListJob, list: &Compact) {
        let rows = &list.rows[me];
        self.reserve(rows.len(), job.record);
        let import = job.import;
        // The list's comment ids in this shard's interner.
        let ids: Vec<u32> = (0..list.comments.len())
            .map(|c| self.comments.intern(list.comment(c as u32)))
            .collect();
        // The rows' slots are looked up (and so loaded) in batches before the updates look
        // them up again, so that their cache misses overlap.
        for batch in rows.chunks(64) {
            let mut touch = 0u32;
            for r in batch {
                touch ^= self.index.touch(r.hash);
            }
            std::hint::black_box(touch);
            for r in batch {
                let p = Part {
                    severity: r.severity.min(job.cap),
                    reject_media: r.reject_media && import.reject_media,
                    reject_reports: r.reject_reports && import.reject_reports,
                    obfuscate: r.obfuscate && import.obfuscate,
                    pc: if import.public_comment {
                        ids[r.pc as usize]
                    } else {
                        0
                    },
                    pv: if import.private_comment {
                        ids[r.pv as usize]
                    } else {
                        0
                    },
                };
                let m = self.fold(job, r.ord as usize, r.hash, list.str(r.dom), p);
                if job.record {
                    self.marks.push(m);
                }
            }
        }
    }

    fn entry(&self, a: &Acc, i: usize, severity: Severity) -> BlockEntry {
        BlockEntry {
            domain: self.dom(i).to_string(),
            severity,
            reject_media: a.reject_media,
            reject_reports: a.reject_reports,
            obfuscate: a.obfuscate,
            public_comment: self.comments.render(a.pc),
            private_comment: self.comments.render(a.pv),
        }
    }
}

/// Hands lists to the shards' threads (see [`Merger::add_compact_parallel`]).
pub(crate) struct Feed<'a> {
    opts: MergeOptions,
    sources: &'a mut Vec<SourceOptions>,
    pending: &'a mut Vec<(usize, BlockEntry, String)>,
    obfuscated_skipped: &'a mut usize,
    txs: Vec<std::sync::mpsc::SyncSender<(ListJob, Arc<Compact>)>>,
}

impl Feed<'_> {
    /// Adds the next list (in source order) in the reader's compact form.
    pub(crate) fn add_compact(&mut self, src: SourceOptions, mut list: Compact) {
        let job = ListJob {
            si: self.sources.len(),
            weight: src.weight,
            plan: self.opts.plan,
            import: src.import.unwrap_or(self.opts.import),
            cap: src.max_severity,
            record: records_votes(
                self.opts,
                list.obfuscated.iter().any(|o| o.digest.is_some()),
            ),
        };
        self.sources.push(src);
        let obfuscated = std::mem::take(&mut list.obfuscated);
        let list = Arc::new(list);
        for tx in &self.txs {
            // A shard thread stops early only by panicking, which the scope passes on.
            let _ = tx.send((job, Arc::clone(&list)));
        }
        queue_obfuscated(self.pending, self.obfuscated_skipped, &job, obfuscated);
    }
}

/// Whether a list's votes are to be recorded: when an audit or subdomain coverage needs
/// them, or for a list with digests (to tell whether it also names a domain in clear).
fn records_votes(opts: MergeOptions, has_digests: bool) -> bool {
    !opts.no_audit || opts.subdomains || has_digests
}

impl Merger {
    fn job(&self, si: usize) -> ListJob {
        let src = &self.sources[si];
        ListJob {
            si,
            weight: src.weight,
            plan: self.opts.plan,
            import: src.import.unwrap_or(self.opts.import),
            cap: src.max_severity,
            record: true,
        }
    }

    /// Folds a block of source `si` (prepared) into its shard; returns the shard and the vote.
    fn fold_entry(&mut self, job: &ListJob, row: usize, e: &BlockEntry) -> (usize, (u32, u32)) {
        let h = hash::of(e.domain.as_str());
        let s = shard_of(h);
        (s, self.shards[s].fold_entry(job, row, h, e))
    }

    /// Adds the next list (in source order).
    pub fn add(&mut self, src: SourceOptions, list: &Blocklist) {
        self.add_owned(src, list.clone());
    }

    /// Adds the next list (in source order), consuming it (no copies of its rows).
    pub fn add_owned(&mut self, src: SourceOptions, list: Blocklist) {
        let si = self.sources.len();
        self.sources.push(src);
        let job = ListJob {
            record: records_votes(
                self.opts,
                list.obfuscated.iter().any(|o| o.digest.is_some()),
            ),
            ..self.job(si)
        };
        for sh in &mut self.shards {
            sh.reserve(list.entries.len() / SHARDS, job.record);
        }
        for (row, mut e) in list.entries.into_iter().enumerate() {
            prepare(job.import, job.cap, &mut e);
            let (s, m) = self.fold_entry(&job, row, &e);
            if job.record {
                self.shards[s].marks.push(m);
            }
        }
        queue_obfuscated(
            &mut self.pending,
            &mut self.obfuscated_skipped,
            &job,
            list.obfuscated,
        );
    }

    /// Runs `feed` on this thread while each shard folds the lists it is given on a thread of
    /// its own, in the order given; returns what `feed` returns once every list is folded.
    pub(crate) fn add_compact_parallel<R>(&mut self, feed: impl FnOnce(&mut Feed<'_>) -> R) -> R {
        std::thread::scope(|scope| {
            let mut txs = Vec::with_capacity(SHARDS);
            for (me, shard) in self.shards.iter_mut().enumerate() {
                let (tx, rx) = std::sync::mpsc::sync_channel::<(ListJob, Arc<Compact>)>(4);
                txs.push(tx);
                scope.spawn(move || {
                    for (job, list) in rx {
                        shard.add_rows(me, &job, &list);
                    }
                });
            }
            let mut f = Feed {
                opts: self.opts,
                sources: &mut self.sources,
                pending: &mut self.pending,
                obfuscated_skipped: &mut self.obfuscated_skipped,
                txs,
            };
            feed(&mut f)
            // `f` (and so the senders) is dropped here: the shard threads finish their lists.
        })
    }

    fn entry(&self, ids: &Ids, a: &Acc, g: usize, severity: Severity) -> BlockEntry {
        let (s, i) = ids.locate(g);
        self.shards[s].entry(a, i, severity)
    }

    /// Finishes the merge: resolves digests, applies the threshold, the allowlist (exact
    /// domains, already normalised) and, with subdomain coverage, parent blocks.
    pub fn finish(mut self, allow: &hash::Set<String>) -> MergeResult {
        if self.opts.no_audit && !self.opts.subdomains && self.pending.is_empty() {
            return self.finish_lean(allow);
        }
        // Each domain's votes, if anything below reads them.
        let ids = Ids::new(&self.shards);
        let need_votes = !self.opts.no_audit || self.opts.subdomains || !self.pending.is_empty();
        // Every shard's votes in one numbering (a domain's votes are all in its shard).
        let mut marks: Vec<(u32, u32)> = Vec::new();
        if need_votes {
            marks.reserve(self.shards.iter().map(|s| s.marks.len()).sum());
            for (s, sh) in self.shards.iter_mut().enumerate() {
                let o = ids.off[s] as u32;
                marks.extend(sh.marks.iter().map(|&(i, c)| (o + i, c)));
                sh.marks = Vec::new();
            }
        }
        let mut votes = if need_votes {
            Votes::group(&marks, ids.len())
        } else {
            Votes::group(&[], 0)
        };
        let mut digests_resolved = 0;
        if !self.pending.is_empty() {
            // (domain, source) of the votes added here.
            let mut added: hash::Set<(usize, usize)> = hash::Set::default();
            let by_digest: hash::Map<String, String> = (0..ids.len())
                .map(|i| (digest(self.dom(&ids, i)), self.dom(&ids, i).to_string()))
                .collect();
            for (si, e, d) in std::mem::take(&mut self.pending) {
                let Some(domain) = by_digest.get(&d) else {
                    self.obfuscated_skipped += 1;
                    continue;
                };
                let Some(i) = self.lookup(&ids, domain) else {
                    continue;
                };
                if added.contains(&(i, si)) || votes.of(i).iter().any(|&c| (c >> 2) as usize == si)
                {
                    continue; // the same list also named it in clear
                }
                let e = BlockEntry {
                    domain: domain.clone(),
                    ..e
                };
                digests_resolved += 1;
                let job = self.job(si);
                // (The domain is known, so `row` is not recorded.)
                let (s, (li, c)) = self.fold_entry(&job, 0, &e);
                let g = ids.off[s] + li as usize;
                added.insert((g, si));
                marks.push((g as u32, c));
            }
            votes = Votes::group(&marks, ids.len());
        }
        drop(marks);
        // The accumulators by domain index.
        let mut accs = vec![Acc::default(); ids.len()];
        for (s, sh) in self.shards.iter().enumerate() {
            for slot in sh.index.occupied() {
                accs[ids.off[s] + slot.key.id as usize] = slot.acc;
            }
        }
        let n = self.sources.len();
        let total_w: f64 = self.sources.iter().map(|s| s.weight).sum();
        let opts = self.opts;
        // Effective support (weight) and severity per domain.
        let mut support: Vec<f64> = accs.iter().map(|a| a.weight).collect();
        let mut eff: Vec<Severity> = accs.iter().map(|a| a.severity).collect();
        if opts.subdomains {
            for i in 0..accs.len() {
                let own: hash::Set<u32> = votes.of(i).iter().map(|c| c >> 2).collect();
                let mut extra: hash::Set<u32> = hash::Set::default();
                for p in parents(self.dom(&ids, i)) {
                    if let Some(j) = self.lookup(&ids, p) {
                        for &c in votes.of(j) {
                            let s = c >> 2;
                            if !own.contains(&s) && extra.insert(s) {
                                support[i] += self.sources[s as usize].weight;
                                let sev = code_sev(c);
                                eff[i] = match opts.plan {
                                    MergePlan::Max => eff[i].max(sev),
                                    MergePlan::Min => eff[i].min(sev),
                                };
                            }
                        }
                    }
                }
            }
        }
        let level = |w: f64| match opts.threshold_type {
            ThresholdType::Count => w,
            ThresholdType::Pct => w / total_w * 100.0,
        };
        let mut outcome: Vec<Outcome> = Vec::with_capacity(accs.len());
        for (i, s) in support.iter().enumerate() {
            let d = self.dom(&ids, i);
            let allowed =
                allow.contains(d) || (opts.subdomains && parents(d).any(|p| allow.contains(p)));
            outcome.push(if level(*s) < opts.threshold {
                Outcome::BelowThreshold
            } else if allowed {
                Outcome::Allowlisted
            } else {
                Outcome::Included
            });
        }
        if opts.subdomains {
            // In the order the domains were first seen: a domain found covered here no longer
            // covers its own subdomains, so the order decides between parents.
            let mut seen: Vec<(u64, usize)> = Vec::with_capacity(accs.len());
            for (s, sh) in self.shards.iter().enumerate() {
                seen.extend(
                    sh.first
                        .iter()
                        .enumerate()
                        .map(|(i, &f)| (f, ids.off[s] + i)),
                );
            }
            seen.sort_unstable();
            for i in seen.into_iter().map(|(_, i)| i) {
                if outcome[i] != Outcome::Included {
                    continue;
                }
                let e = &accs[i];
                for p in parents(self.dom(&ids, i)) {
                    if let Some(j) = self.lookup(&ids, p) {
                        let pe = &accs[j];
                        if outcome[j] == Outcome::Included
                            && eff[j] >= eff[i]
                            && pe.reject_media >= e.reject_media
                            && pe.reject_reports >= e.reject_reports
                        {
                            outcome[i] = Outcome::CoveredBy(p.to_string());
                            break;
                        }
                    }
                }
            }
        }
        // Sorted by domain (without an audit, only the included ones): by the first 8 bytes as
        // a number (zero-padded, so in byte order), then by the whole text where those are equal.
        let mut order: Vec<(u64, usize)> = (0..accs.len())
            .filter(|&i| !opts.no_audit || outcome[i] == Outcome::Included)
            .map(|i| (sort_head(self.dom(&ids, i)), i))
            .collect();
        order.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| self.dom(&ids, a.1).cmp(self.dom(&ids, b.1)))
        });
        let mut entries = Vec::new();
        let mut audit = Vec::with_capacity(if opts.no_audit { 0 } else { order.len() });
        for (_, i) in order {
            if outcome[i] == Outcome::Included {
                entries.push(self.entry(&ids, &accs[i], i, eff[i]));
            }
            if opts.no_audit {
                continue;
            }
            let v = votes.of(i);
            let count = v.len() as u32;
            audit.push(AuditRecord {
                domain: self.dom(&ids, i).to_string(),
                count,
                percent: f64::from(count) / n as f64 * 100.0,
                score: if total_w > 0.0 {
                    support[i] / total_w
                } else {
                    0.0
                },
                sources: v.iter().map(|&c| SourceMark(c)).collect(),
                severity: eff[i],
                outcome: outcome[i].clone(),
            });
        }
        MergeResult {
            entries,
            audit,
            domains_seen: accs.len(),
            sources: self.sources,
            obfuscated_skipped: self.obfuscated_skipped,
            digests_resolved,
        }
    }
}

impl Merger {
    /// [`Merger::finish`] without an audit, subdomain coverage or digests to resolve: each
    /// domain's outcome depends on its accumulator alone, so each shard picks and sorts its
    /// included blocks on a thread of its own, and the sorted runs are merged.
    fn finish_lean(mut self, allow: &hash::Set<String>) -> MergeResult {
        let opts = self.opts;
        let total_w: f64 = self.sources.iter().map(|s| s.weight).sum();
        // As in `finish`: not below the threshold (a NaN level is not below it).
        let below = |w: f64| {
            let level = match opts.threshold_type {
                ThresholdType::Count => w,
                ThresholdType::Pct => w / total_w * 100.0,
            };
            level < opts.threshold
        };
        let pick = |sh: &Shard| -> Vec<(u64, BlockEntry)> {
            // The included slots, sorted (by the domain's sort head, its slot), before any
            // block is built: small items to sort, and the blocks built in output order.
            let mut keys: Vec<(u64, u32)> = Vec::new();
            for (at, s) in sh.index.slots.iter().enumerate() {
                if s.key.id == EMPTY || below(s.acc.weight) {
                    continue;
                }
                let d = sh.dom(s.key.id as usize);
                if !allow.contains(d) {
                    keys.push((sort_head(d), at as u32));
                }
            }
            let dom_at = |at: u32| sh.dom(sh.index.slots[at as usize].key.id as usize);
            keys.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| dom_at(a.1).cmp(dom_at(b.1))));
            keys.into_iter()
                .map(|(head, at)| {
                    let s = &sh.index.slots[at as usize];
                    (head, sh.entry(&s.acc, s.key.id as usize, s.acc.severity))
                })
                .collect()
        };
        let runs: Vec<Vec<(u64, BlockEntry)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = self.shards[1..]
                .iter()
                .map(|sh| scope.spawn(move || pick(sh)))
                .collect();
            let mut runs = vec![pick(&self.shards[0])];
            // A picking thread can only stop by panicking: pass the panic on.
            runs.extend(
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))),
            );
            runs
        });
        let mut entries = Vec::with_capacity(runs.iter().map(Vec::len).sum());
        // Each run reversed, so that its next block is its last.
        let mut runs = runs;
        for r in &mut runs {
            r.reverse();
        }
        loop {
            // The run whose next block sorts first (runs are few).
            let mut best: Option<usize> = None;
            for (k, r) in runs.iter().enumerate() {
                let Some(x) = r.last() else { continue };
                if best.is_none_or(|b| {
                    runs[b]
                        .last()
                        .is_none_or(|y| (x.0, &x.1.domain) < (y.0, &y.1.domain))
                }) {
                    best = Some(k);
                }
            }
            match best.and_then(|b| runs[b].pop()) {
                Some((_, e)) => entries.push(e),
                None => break,
            }
        }
        let domains_seen = self.shards.iter().map(|s| s.doms.len()).sum();
        // Unmapping the tables takes a few milliseconds: done off the caller's path (inline
        // if no thread can be started).
        let shards = std::mem::take(&mut self.shards);
        let _ = std::thread::Builder::new().spawn(move || drop(shards));
        MergeResult {
            entries,
            audit: Vec::new(),
            domains_seen,
            sources: self.sources,
            obfuscated_skipped: self.obfuscated_skipped,
            digests_resolved: 0,
        }
    }
}

/// The first 8 bytes of a domain as a number (zero-padded, so in byte order): sorting by it
/// and then by the whole text is sorting by the text.
fn sort_head(d: &str) -> u64 {
    let mut head = [0u8; 8];
    let d = d.as_bytes();
    let k = d.len().min(8);
    head[..k].copy_from_slice(&d[..k]);
    u64::from_be_bytes(head)
}

/// The votes grouped per domain, in fold order: domain `i`'s are `flat[start[i]..start[i + 1]]`.
struct Votes {
    start: Vec<usize>,
    flat: Vec<u32>,
}

impl Votes {
    /// Groups `(domain index, vote)` pairs for domains `0..n` (a counting sort, stable).
    fn group(marks: &[(u32, u32)], n: usize) -> Votes {
        let mut start = vec![0usize; n + 1];
        for &(i, _) in marks {
            start[i as usize + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut next = start.clone();
        let mut flat = vec![0u32; marks.len()];
        for &(i, c) in marks {
            let p = &mut next[i as usize];
            flat[*p] = c;
            *p += 1;
        }
        Votes { start, flat }
    }

    fn of(&self, i: usize) -> &[u32] {
        &self.flat[self.start[i]..self.start[i + 1]]
    }
}

/// Merges lists in one call (see [`Merger`]).
pub fn merge(
    lists: &[(SourceOptions, &Blocklist)],
    opts: MergeOptions,
    allow: &hash::Set<String>,
) -> MergeResult {
    let mut m = Merger::new(opts);
    for (s, l) in lists {
        m.add(s.clone(), l);
    }
    m.finish(allow)
}

/// The normalised domains of allowlists and extra allowed names (invalid names are skipped;
/// the allowlists' own problems are in their `problems`).
pub fn allow_set<'a>(
    lists: impl IntoIterator<Item = &'a Blocklist>,
    extra: &[String],
) -> hash::Set<String> {
    let mut s: hash::Set<String> = hash::Set::default();
    for l in lists {
        s.extend(l.entries.iter().map(|e| e.domain.clone()));
        // Obfuscated allowlist rows cannot match anything (FediBlockHole: same).
    }
    for d in extra {
        if let Ok(n) = crate::domain::normalize_domain(d) {
            s.insert(n.domain);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_merge_like_fediblockhole() {
        assert_eq!(merge_comments("", ""), "");
        assert_eq!(merge_comments("a", ""), "a");
        assert_eq!(merge_comments("", "b"), "b");
        assert_eq!(merge_comments("a, , b", "a, , b"), "a, , b");
        assert_eq!(
            merge_comments(
                "boring, lack of moderation, nazis, scrapers",
                "lack of moderation, scrapers"
            ),
            "boring, lack of moderation, nazis, scrapers"
        );
        assert_eq!(merge_comments("a, b", "b, c, a"), "a, b, c");
        assert_eq!(merge_comments("a,b", "b"), "a,b, b");
        assert_eq!(merge_comments("a, a", "a, x"), "a, a, x");
    }

    #[test]
    fn comma_split_is_split() {
        for x in [
            "",
            ",",
            ", ",
            "a",
            "a, b",
            "a,b, c",
            ", , ",
            "a, ",
            ", a",
            "a,  b",
            "é, ü,, x",
        ] {
            assert_eq!(
                comma_split(x).collect::<Vec<_>>(),
                x.split(", ").collect::<Vec<_>>(),
                "{x:?}"
            );
        }
    }

    #[test]
    fn in_place_comment_merge_matches_reference() {
        let samples = [
            "",
            "a",
            "b",
            "a, b",
            "b, a",
            "a, a",
            "a, , b",
            ", a",
            "a, ",
            "c, a, b, a",
            "a,b",
        ];
        for x in samples {
            for y in samples {
                let mut acc = x.to_string();
                merge_comments_into(&mut acc, y);
                assert_eq!(acc, merge_comments(x, y), "{x:?} + {y:?}");
            }
        }
    }

    #[test]
    fn packed_comment_merge_matches_reference() {
        // Token pools: a few, then more than the 64 token bits.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut comments = Interner::new();
        for round in 0..3000 {
            let pool = if round % 3 == 0 { 90 } else { 5 + round % 8 };
            let mut acc_ref = String::new();
            let mut acc = 0u64;
            for _ in 0..rnd(14) {
                let k = rnd(4);
                let toks: Vec<String> = (0..k)
                    .map(|_| match rnd(12) {
                        0 => String::new(),
                        1 => "a,b".to_string(),
                        _ => format!("t{}", rnd(pool)),
                    })
                    .collect();
                let c = toks.join(", ");
                let id = comments.intern(&c);
                acc_ref = merge_comments(&acc_ref, &c);
                acc = comments.merge_acc(acc, id);
                assert_eq!(comments.render(acc), acc_ref, "after {c:?}");
            }
        }
    }

    fn list(rows: &[(&str, Severity, bool)]) -> Blocklist {
        Blocklist {
            origin: "t".into(),
            entries: rows
                .iter()
                .map(|(d, s, rm)| BlockEntry {
                    reject_media: *rm,
                    public_comment: format!("c-{d}"),
                    ..BlockEntry::new(*d, *s)
                })
                .collect(),
            ..Blocklist::default()
        }
    }

    #[test]
    fn thresholds_plans_and_allowlists() {
        use Severity::*;
        let a = list(&[("x.com", Suspend, true), ("y.com", Silence, false)]);
        let b = list(&[("x.com", Silence, false), ("z.com", Noop, false)]);
        let c = list(&[("x.com", Suspend, true), ("y.com", Suspend, true)]);
        let src = |n: &str| SourceOptions::new(n);
        let lists = [(src("a"), &a), (src("b"), &b), (src("c"), &c)];
        let mut o = MergeOptions {
            import: ImportFields::all(),
            ..MergeOptions::default()
        };
        let r = merge(&lists, o, &hash::Set::default());
        let doms: Vec<&str> = r.entries.iter().map(|e| e.domain.as_str()).collect();
        assert_eq!(doms, ["x.com", "y.com", "z.com"]);
        assert_eq!(r.entries[0].severity, Suspend);
        assert!(r.entries[0].reject_media);
        o.plan = MergePlan::Min;
        o.threshold = 66.0;
        o.threshold_type = ThresholdType::Pct;
        let r = merge(&lists, o, &hash::Set::default());
        let doms: Vec<&str> = r.entries.iter().map(|e| e.domain.as_str()).collect();
        assert_eq!(doms, ["x.com", "y.com"]);
        assert_eq!(r.entries[0].severity, Silence);
        assert!(!r.entries[0].reject_media);
        assert_eq!(r.entries[1].severity, Silence);
        let allow: hash::Set<String> = ["y.com".to_string()].into_iter().collect();
        let r = merge(&lists, o, &allow);
        assert_eq!(r.entries.len(), 1);
        let y = r.audit.iter().find(|a| a.domain == "y.com").unwrap();
        assert_eq!(y.outcome, Outcome::Allowlisted);
        assert_eq!(y.count, 2);
        assert_eq!(y.source_list(), vec![(0, Silence), (2, Suspend)]);
    }

    #[test]
    fn digests_resolve_once_per_list_after_the_clear_votes() {
        use crate::types::{Location, ObfuscatedEntry};
        use Severity::*;
        let hidden = |sev: Severity| ObfuscatedEntry {
            entry: BlockEntry::new("sec***.example", sev),
            digest: Some(digest("secret.example")),
            location: Location::Item(0),
        };
        let mut a = list(&[("other.example", Suspend, false)]);
        a.obfuscated = vec![hidden(Silence), hidden(Suspend)];
        let b = list(&[("secret.example", Noop, false)]);
        let mut c = list(&[("secret.example", Silence, false)]);
        c.obfuscated = vec![hidden(Suspend)];
        let src = |n: &str| SourceOptions::new(n);
        let lists = [(src("a"), &a), (src("b"), &b), (src("c"), &c)];
        let r = merge(&lists, MergeOptions::default(), &hash::Set::default());
        assert_eq!(r.digests_resolved, 1);
        let s = r
            .audit
            .iter()
            .find(|x| x.domain == "secret.example")
            .unwrap();
        assert_eq!(s.count, 3);
        assert_eq!(s.source_list(), vec![(1, Noop), (2, Silence), (0, Silence)]);
        assert_eq!(s.severity, Silence);
    }

    #[test]
    fn without_audit_the_entries_are_the_same() {
        use crate::types::{Location, ObfuscatedEntry};
        use Severity::*;
        let mut a = list(&[
            ("x.com", Suspend, true),
            ("y.com", Silence, false),
            ("a.x.com", Silence, false),
        ]);
        a.obfuscated = vec![ObfuscatedEntry {
            entry: BlockEntry::new("z***.com", Silence),
            digest: Some(digest("z.com")),
            location: Location::Item(0),
        }];
        let b = list(&[("x.com", Silence, false), ("z.com", Noop, false)]);
        let c = list(&[("z.com", Suspend, true), ("y.com", Suspend, true)]);
        let src = |n: &str| SourceOptions::new(n);
        let lists = [(src("a"), &a), (src("b"), &b), (src("c"), &c)];
        for plan in [MergePlan::Max, MergePlan::Min] {
            for subdomains in [false, true] {
                for threshold in [0.0, 2.0, 3.0] {
                    let o = MergeOptions {
                        plan,
                        threshold,
                        subdomains,
                        import: ImportFields::all(),
                        ..MergeOptions::default()
                    };
                    let allow = hash::Set::default();
                    let full = merge(&lists, o, &allow);
                    let lean = merge(
                        &lists,
                        MergeOptions {
                            no_audit: true,
                            ..o
                        },
                        &allow,
                    );
                    assert_eq!(full.entries, lean.entries, "{o:?}");
                    assert!(lean.audit.is_empty());
                    assert_eq!(full.audit.len(), 4);
                    assert_eq!(lean.domains_seen, full.audit.len());
                    assert_eq!(lean.digests_resolved, full.digests_resolved);
                    assert_eq!(full.digests_resolved, 1);
                }
            }
        }
    }

    /// Synthetic CSV lists: overlapping domains (parents and subdomains among them), mixed
    /// severities, flags and comments; the last lists repeat a few rows.
    fn csv_lists(n: usize, rows: usize) -> Vec<String> {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        (0..n)
            .map(|_| {
                let mut t = String::from("domain,severity,reject_media,public_comment\n");
                for _ in 0..rows {
                    let d = rnd(300);
                    let dom = match rnd(3) {
                        0 => format!("d{d}.example"),
                        1 => format!("s{}.d{d}.example", rnd(3)),
                        _ => format!("x.s{}.d{d}.example", rnd(3)),
                    };
                    let sev = ["suspend", "silence", "noop"][rnd(3) as usize];
                    let c = ["", "spam", "spam, nazis", "nazis, spam", "a, , b"][rnd(5) as usize];
                    t.push_str(&format!("{dom},{sev},{},\"{c}\"\n", rnd(2) == 0));
                }
                t
            })
            .collect()
    }

    #[test]
    fn the_shards_each_get_a_share_of_the_domains() {
        let doms: Vec<String> = (0..1000).map(|i| format!("d{i}.example")).collect();
        let mut per = [0usize; SHARDS];
        for d in &doms {
            per[shard_of(hash::of(d.as_str()))] += 1;
        }
        for n in per {
            assert!(n > 1000 / SHARDS / 2, "{per:?}");
        }
    }

    #[test]
    fn folding_on_the_shard_threads_is_folding_in_order() {
        use crate::read::{read_compact, Format};
        let lists = csv_lists(12, 400);
        for subdomains in [false, true] {
            for no_audit in [false, true] {
                for plan in [MergePlan::Max, MergePlan::Min] {
                    let o = MergeOptions {
                        plan,
                        threshold: 25.0,
                        threshold_type: ThresholdType::Pct,
                        import: ImportFields::all(),
                        subdomains,
                        no_audit,
                    };
                    let allow: hash::Set<String> = ["d7.example".to_string()].into_iter().collect();
                    let mut seq = Merger::new(o);
                    let mut par = Merger::new(o);
                    par.add_compact_parallel(|feed| {
                        for (k, t) in lists.iter().enumerate() {
                            let src = SourceOptions::new(format!("l{k}"));
                            let read = || read_compact(t.as_bytes(), "l", Some(Format::Csv));
                            seq.add_owned(src.clone(), read().into_blocklist());
                            feed.add_compact(src, read());
                        }
                    });
                    let (a, b) = (seq.finish(&allow), par.finish(&allow));
                    assert_eq!(a.entries, b.entries, "{o:?}");
                    assert_eq!(a.audit, b.audit, "{o:?}");
                    assert_eq!(a.domains_seen, b.domains_seen);
                    assert!(!a.entries.is_empty());
                    if subdomains && !no_audit {
                        assert!(a
                            .audit
                            .iter()
                            .any(|r| matches!(r.outcome, Outcome::CoveredBy(_))));
                    }
                }
            }
        }
    }

    #[test]
    fn coverage_is_decided_in_the_order_domains_were_first_seen() {
        use crate::read::{read_compact, Format};
        use Severity::*;
        let o = MergeOptions {
            subdomains: true,
            ..MergeOptions::default()
        };
        let allow = hash::Set::default();
        // A domain found covered no longer covers its subdomains: seen first, `x.s.d.example`
        // is covered by `s.d.example` (itself covered later); seen after it, by `d.example`.
        for (rows, by) in [
            (["x.s.d.example", "s.d.example", "d.example"], "s.d.example"),
            (["s.d.example", "x.s.d.example", "d.example"], "d.example"),
        ] {
            let l = list(&rows.map(|d| (d, Suspend, false)));
            let r = merge(&[(SourceOptions::new("a"), &l)], o, &allow);
            let csv: String = std::iter::once("domain,severity\n".to_string())
                .chain(rows.iter().map(|d| format!("{d},suspend\n")))
                .collect();
            let mut m = Merger::new(o);
            m.add_compact_parallel(|feed| {
                let c = read_compact(csv.as_bytes(), "a", Some(Format::Csv));
                feed.add_compact(SourceOptions::new("a"), c);
            });
            for r in [r, m.finish(&allow)] {
                let x = r
                    .audit
                    .iter()
                    .find(|a| a.domain == "x.s.d.example")
                    .unwrap();
                assert_eq!(x.outcome, Outcome::CoveredBy(by.into()));
                assert_eq!(r.entries.len(), 1);
            }
        }
    }

    #[test]
    fn the_lean_finish_is_the_full_one_without_the_audit() {
        use crate::read::{read_compact, Format};
        let lists: Vec<Blocklist> = csv_lists(9, 500)
            .iter()
            .map(|t| read_compact(t.as_bytes(), "l", Some(Format::Csv)).into_blocklist())
            .collect();
        let mut heavy = SourceOptions::new("heavy");
        heavy.weight = 2.5;
        heavy.max_severity = Severity::Silence;
        for plan in [MergePlan::Max, MergePlan::Min] {
            for (threshold, threshold_type) in [
                (0.0, ThresholdType::Count),
                (3.0, ThresholdType::Count),
                (40.0, ThresholdType::Pct),
            ] {
                let o = MergeOptions {
                    plan,
                    threshold,
                    threshold_type,
                    import: ImportFields::all(),
                    ..MergeOptions::default()
                };
                let allow: hash::Set<String> = ["d1.example".to_string(), "d2.example".to_string()]
                    .into_iter()
                    .collect();
                let run = |o: MergeOptions| {
                    let mut m = Merger::new(o);
                    for (k, l) in lists.iter().enumerate() {
                        let src = if k == 2 {
                            heavy.clone()
                        } else {
                            SourceOptions::new(format!("l{k}"))
                        };
                        m.add(src, l);
                    }
                    m.finish(&allow)
                };
                let full = run(o);
                let lean = run(MergeOptions {
                    no_audit: true,
                    ..o
                });
                assert_eq!(full.entries, lean.entries, "{o:?}");
                assert_eq!(full.domains_seen, lean.domains_seen);
                assert_eq!(full.audit.len(), lean.domains_seen);
                assert!(!lean.entries.is_empty());
                assert!(lean.entries.len() < lean.domains_seen, "{o:?}");
            }
        }
    }

    #[test]
    fn table_probes_past_collisions_and_grows() {
        let mut t = Table::new();
        let (mut text, mut doms, mut hashes) = (String::new(), Vec::new(), Vec::new());
        let names: Vec<String> = (0..1000)
            .map(|i| match i % 3 {
                0 => format!("d{i}.example"),
                1 => format!("a-shared-prefix-longer-than-the-key-{i}.example"),
                _ => format!("{i}"),
            })
            .collect();
        // Seven home slots for a thousand domains: long probe runs, wrapping around.
        let h = |i: usize| ((i % 7) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for (i, d) in names.iter().enumerate() {
            assert!(t.probe(h(i), d, &doms, &text).is_err());
            let start = text.len();
            text.push_str(d);
            doms.push((start, text.len()));
            hashes.push(h(i));
            let slot = Slot {
                key: Key::new(i as u32, d),
                acc: Acc::default(),
            };
            t.insert(h(i), slot, &hashes);
        }
        for (i, d) in names.iter().enumerate() {
            let at = t.probe(h(i), d, &doms, &text).unwrap();
            assert_eq!(t.slots[at].key.id, i as u32);
        }
        assert!(t.probe(h(0), "missing.example", &doms, &text).is_err());
        assert_eq!(t.occupied().count(), names.len());
        assert!(t.slots.len() >= 2 * names.len());
    }

    #[test]
    fn weights_caps_and_subdomains() {
        use Severity::*;
        let a = list(&[
            ("example.com", Suspend, false),
            ("a.example.com", Suspend, false),
        ]);
        let b = list(&[("a.example.com", Suspend, false)]);
        let c = list(&[("b.example.com", Suspend, false)]);
        let mut heavy = SourceOptions::new("a");
        heavy.weight = 3.0;
        let mut capped = SourceOptions::new("c");
        capped.max_severity = Silence;
        let lists = [(heavy, &a), (SourceOptions::new("b"), &b), (capped, &c)];
        let o = MergeOptions {
            threshold: 50.0,
            threshold_type: ThresholdType::Pct,
            ..MergeOptions::default()
        };
        let r = merge(&lists, o, &hash::Set::default());
        // example.com: weight 3 of 5 = 60 %; a.example.com 4 of 5; b.example.com 1 of 5.
        let doms: Vec<&str> = r.entries.iter().map(|e| e.domain.as_str()).collect();
        assert_eq!(doms, ["a.example.com", "example.com"]);
        let sub = MergeOptions {
            subdomains: true,
            ..o
        };
        let r = merge(&lists, sub, &hash::Set::default());
        let doms: Vec<&str> = r.entries.iter().map(|e| e.domain.as_str()).collect();
        assert_eq!(doms, ["example.com"]);
        let b = r
            .audit
            .iter()
            .find(|a| a.domain == "b.example.com")
            .unwrap();
        assert_eq!(b.source_list(), vec![(2, Silence)]);
        assert!((b.score - 0.8).abs() < 1e-9);
        assert_eq!(b.outcome, Outcome::CoveredBy("example.com".into()));
        let allow: hash::Set<String> = ["example.com".to_string()].into_iter().collect();
        let r = merge(&lists, sub, &allow);
        assert!(r.entries.is_empty());
    }
}
