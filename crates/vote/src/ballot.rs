//! Ranked ballots and their file formats: BLT, PrefLib `.soi`/`.toi` and a CSV of rankings.
//!
//! Every reader keeps the good part of its input: a malformed ballot line is recorded in
//! [`Election::invalid`] with its line number and reason (and its weight is counted as
//! invalid), never silently dropped. Only structural damage (no header, missing candidate
//! names) is an error.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

/// A reader error: the file (if known), the 1-based line and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The input is structurally broken at a line.
    #[error("{file}:{line}: {msg}")]
    Syntax {
        /// The file name, or `<input>` when read from memory.
        file: String,
        /// The 1-based line number.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// The file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The file name.
        file: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// One ballot line: a weight (how many identical papers) and the ranking.
///
/// `prefs` lists candidate indices (0-based) from most to least preferred. `ranks` is empty
/// for a strict ranking; otherwise `ranks[i]` is the preference level of `prefs[i]`
/// (non-decreasing; equal levels are ties, as in PrefLib `.toi` or BLT `2=3`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ballot {
    /// How many identical papers this line stands for.
    pub weight: u64,
    /// Candidate indices, most preferred first.
    pub prefs: Vec<usize>,
    /// Preference levels (empty = strict order).
    pub ranks: Vec<u32>,
}

impl Ballot {
    /// A strict ranking with the given weight.
    pub fn strict(weight: u64, prefs: Vec<usize>) -> Self {
        Ballot {
            weight,
            prefs,
            ranks: Vec::new(),
        }
    }

    /// Whether the ballot has tied preferences.
    pub fn has_ties(&self) -> bool {
        self.ranks.windows(2).any(|w| w[0] == w[1])
    }

    /// The preference level of position `i` (0 = first).
    pub fn level(&self, i: usize) -> u32 {
        if self.ranks.is_empty() {
            u32::try_from(i).unwrap_or(u32::MAX)
        } else {
            self.ranks[i]
        }
    }
}

/// A ballot line that could not be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidBallot {
    /// The 1-based line number in the input.
    pub line: usize,
    /// How many papers the line stood for (1 when the weight itself was unreadable).
    pub weight: u64,
    /// Why it is invalid.
    pub reason: String,
}

/// An election read from a file: candidates, seats, valid and invalid ballots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Election {
    /// The title (BLT last line, PrefLib `TITLE`).
    pub title: String,
    /// Candidate names, in file order.
    pub candidates: Vec<String>,
    /// Number of seats (1 when the format does not say).
    pub seats: usize,
    /// Withdrawn candidates (0-based indices): skipped in every count.
    pub withdrawn: Vec<usize>,
    /// The valid ballots.
    pub ballots: Vec<Ballot>,
    /// The malformed ballot lines, reported by line.
    pub invalid: Vec<InvalidBallot>,
}

impl Election {
    /// Total weight of the valid ballots.
    pub fn valid_weight(&self) -> u64 {
        self.ballots
            .iter()
            .fold(0u64, |a, b| a.saturating_add(b.weight))
    }

    /// Total weight of the invalid ballot lines.
    pub fn invalid_weight(&self) -> u64 {
        self.invalid
            .iter()
            .fold(0u64, |a, b| a.saturating_add(b.weight))
    }

    /// Index of the candidate with this name.
    pub fn candidate_index(&self, name: &str) -> Option<usize> {
        self.candidates.iter().position(|c| c == name)
    }
}

/// The supported file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ERS/OpenSTV ballot format.
    Blt,
    /// PrefLib strict orders, incomplete.
    Soi,
    /// PrefLib orders with ties, incomplete.
    Toi,
    /// CSV: a header of candidate names (optionally a `weight` column), one row of ranks per ballot.
    Csv,
}

impl Format {
    /// Guess the format from a file extension (BLT when unknown).
    pub fn from_path(path: &Path) -> Format {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("soi") | Some("soc") => Format::Soi,
            Some("toi") | Some("toc") => Format::Toi,
            Some("csv") => Format::Csv,
            _ => Format::Blt,
        }
    }
}

/// Reads an election from a file, choosing the reader by extension.
pub fn read_path(path: &Path) -> Result<Election, FormatError> {
    let file = path.display().to_string();
    let text = std::fs::read(path).map_err(|source| FormatError::Io {
        file: file.clone(),
        source,
    })?;
    let text = String::from_utf8_lossy(&text);
    match Format::from_path(path) {
        Format::Blt => read_blt(&text, &file),
        Format::Soi | Format::Toi => read_preflib(&text, &file),
        Format::Csv => read_csv(&text, &file),
    }
}

fn syntax(file: &str, line: usize, msg: impl Into<String>) -> FormatError {
    FormatError::Syntax {
        file: file.to_string(),
        line,
        msg: msg.into(),
    }
}

/// Strips one pair of surrounding double quotes, if present.
fn unquote(s: &str) -> String {
    let t = s.trim();
    if t.len() >= 2 && t.starts_with('"') && t.ends_with('"') {
        t[1..t.len() - 1].to_string()
    } else {
        t.to_string()
    }
}

/// Parses one BLT ballot line (`weight p1 p2 … 0`, `=` joins tied preferences).
fn parse_blt_ballot(line: &str, ncand: usize) -> Result<Ballot, (u64, String)> {
    let mut toks = line.split_whitespace();
    // Optional ballot id in parentheses, as some BLT writers emit.
    let mut first = toks.next().unwrap_or("");
    if first.starts_with('(') && first.ends_with(')') {
        first = toks.next().unwrap_or("");
    }
    let weight: u64 = first
        .parse()
        .map_err(|_| (1, format!("weight {first:?} is not a whole number")))?;
    let mut prefs = Vec::new();
    let mut ranks = Vec::new();
    let mut tied = false;
    let mut ended = false;
    for (level, tok) in toks.enumerate() {
        if ended {
            return Err((weight, format!("text after the closing 0: {tok:?}")));
        }
        if tok == "0" {
            ended = true;
            continue;
        }
        for part in tok.split('=') {
            let c: usize = part.parse().map_err(|_| {
                (
                    weight,
                    format!("preference {part:?} is not a candidate number"),
                )
            })?;
            if c == 0 || c > ncand {
                return Err((
                    weight,
                    format!("candidate {c} is not between 1 and {ncand}"),
                ));
            }
            if prefs.contains(&(c - 1)) {
                return Err((weight, format!("candidate {c} is ranked twice")));
            }
            prefs.push(c - 1);
            ranks.push(u32::try_from(level).unwrap_or(u32::MAX));
        }
        if tok.contains('=') {
            tied = true;
        }
    }
    if !ended {
        return Err((weight, "the ballot does not end with 0".to_string()));
    }
    if weight == 0 {
        return Err((0, "the weight is 0".to_string()));
    }
    if prefs.is_empty() {
        return Err((weight, "no preference is marked".to_string()));
    }
    if !tied {
        ranks.clear();
    }
    Ok(Ballot {
        weight,
        prefs,
        ranks,
    })
}

/// Reads a BLT file (weights, withdrawn candidates, quoted or unquoted names).
///
/// `file` names the input in messages.
pub fn read_blt(text: &str, file: &str) -> Result<Election, FormatError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let (hline, header) = lines
        .next()
        .ok_or_else(|| syntax(file, 1, "empty file: expected `candidates seats`"))?;
    let nums: Vec<&str> = header.split_whitespace().collect();
    let parse_n = |s: &str, what: &str| -> Result<usize, FormatError> {
        s.parse::<usize>()
            .map_err(|_| syntax(file, hline, format!("{what} {s:?} is not a whole number")))
    };
    if nums.len() != 2 {
        return Err(syntax(
            file,
            hline,
            "the first line must be `candidates seats`",
        ));
    }
    let ncand = parse_n(nums[0], "candidate count")?;
    let seats = parse_n(nums[1], "seat count")?;
    if ncand == 0 || ncand > 100_000 {
        return Err(syntax(file, hline, "the candidate count must be 1..100000"));
    }
    let mut e = Election {
        seats,
        ..Election::default()
    };
    let mut last_line = hline;
    let mut ended = false;
    for (ln, line) in lines.by_ref() {
        last_line = ln;
        if line == "0" {
            ended = true;
            break;
        }
        if line.starts_with('-') {
            // Withdrawn candidates: `-3` or `-3 -4`.
            for tok in line.split_whitespace() {
                match tok.strip_prefix('-').and_then(|t| t.parse::<usize>().ok()) {
                    Some(c) if (1..=ncand).contains(&c) => {
                        if !e.withdrawn.contains(&(c - 1)) {
                            e.withdrawn.push(c - 1)
                        }
                    }
                    _ => {
                        return Err(syntax(
                            file,
                            ln,
                            format!("withdrawn candidate {tok:?} is not -1..-{ncand}"),
                        ))
                    }
                }
            }
            continue;
        }
        match parse_blt_ballot(line, ncand) {
            Ok(b) => e.ballots.push(b),
            Err((weight, reason)) => e.invalid.push(InvalidBallot {
                line: ln,
                weight,
                reason,
            }),
        }
    }
    if !ended {
        return Err(syntax(
            file,
            last_line,
            "the ballots are not closed by a line `0`",
        ));
    }
    for i in 0..ncand {
        match lines.next() {
            Some((_, name)) => e.candidates.push(unquote(name)),
            None => {
                return Err(syntax(
                    file,
                    last_line,
                    format!("expected {ncand} candidate names, found {i}"),
                ))
            }
        }
    }
    if let Some((_, title)) = lines.next() {
        e.title = unquote(title);
    }
    Ok(e)
}

fn quote_name(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "'"))
}

/// Writes an election as BLT (names quoted, tied preferences joined by `=`).
pub fn write_blt(e: &Election) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{} {}", e.candidates.len(), e.seats);
    if !e.withdrawn.is_empty() {
        let w: Vec<String> = e.withdrawn.iter().map(|c| format!("-{}", c + 1)).collect();
        let _ = writeln!(s, "{}", w.join(" "));
    }
    for b in &e.ballots {
        let _ = write!(s, "{}", b.weight);
        for (i, c) in b.prefs.iter().enumerate() {
            let sep = if i > 0 && b.level(i) == b.level(i - 1) {
                "="
            } else {
                " "
            };
            let _ = write!(s, "{sep}{}", c + 1);
        }
        s.push_str(" 0\n");
    }
    s.push_str("0\n");
    for c in &e.candidates {
        let _ = writeln!(s, "{}", quote_name(c));
    }
    let _ = writeln!(s, "{}", quote_name(&e.title));
    s
}

/// Reads a PrefLib `.soi` or `.toi` file (`count: a,{b,c},d`; 1-based alternatives).
pub fn read_preflib(text: &str, file: &str) -> Result<Election, FormatError> {
    let mut e = Election {
        seats: 1,
        ..Election::default()
    };
    let mut names: Vec<(usize, String)> = Vec::new();
    let mut nalt: Option<usize> = None;
    let mut pending: Vec<(usize, &str)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let ln = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(meta) = line.strip_prefix('#') {
            let meta = meta.trim();
            if let Some((key, value)) = meta.split_once(':') {
                let key = key.trim().to_ascii_uppercase();
                let value = value.trim();
                if key == "TITLE" {
                    e.title = value.to_string();
                } else if key == "NUMBER ALTERNATIVES" {
                    nalt = Some(value.parse().map_err(|_| {
                        syntax(
                            file,
                            ln,
                            format!("NUMBER ALTERNATIVES {value:?} is not a number"),
                        )
                    })?);
                } else if let Some(num) = key.strip_prefix("ALTERNATIVE NAME ") {
                    let n: usize = num.trim().parse().map_err(|_| {
                        syntax(
                            file,
                            ln,
                            format!("alternative number {num:?} is not a number"),
                        )
                    })?;
                    names.push((n, value.to_string()));
                }
            }
            continue;
        }
        pending.push((ln, line));
    }
    let n = nalt.unwrap_or_else(|| names.iter().map(|(i, _)| *i).max().unwrap_or(0));
    if n == 0 || n > 100_000 {
        return Err(syntax(
            file,
            1,
            "no `# NUMBER ALTERNATIVES` (or alternative names) header",
        ));
    }
    e.candidates = (1..=n).map(|i| format!("Alternative {i}")).collect();
    for (i, name) in names {
        if (1..=n).contains(&i) {
            e.candidates[i - 1] = name;
        }
    }
    for (ln, line) in pending {
        match parse_preflib_line(line, n) {
            Ok(b) => e.ballots.push(b),
            Err((weight, reason)) => e.invalid.push(InvalidBallot {
                line: ln,
                weight,
                reason,
            }),
        }
    }
    Ok(e)
}

fn parse_preflib_line(line: &str, n: usize) -> Result<Ballot, (u64, String)> {
    let (count, order) = line
        .split_once(':')
        .ok_or((1, "expected `count: a,b,c`".to_string()))?;
    let weight: u64 = count
        .trim()
        .parse()
        .map_err(|_| (1, format!("count {:?} is not a whole number", count.trim())))?;
    if weight == 0 {
        return Err((0, "the count is 0".to_string()));
    }
    let mut prefs = Vec::new();
    let mut ranks = Vec::new();
    let mut level = 0u32;
    let mut in_group = false;
    let mut tied = false;
    let mut token = String::new();
    let push = |tok: &str,
                prefs: &mut Vec<usize>,
                ranks: &mut Vec<u32>,
                level: u32|
     -> Result<(), (u64, String)> {
        let t = tok.trim();
        if t.is_empty() {
            return Ok(());
        }
        let c: usize = t
            .parse()
            .map_err(|_| (weight, format!("alternative {t:?} is not a number")))?;
        if c == 0 || c > n {
            return Err((weight, format!("alternative {c} is not between 1 and {n}")));
        }
        if prefs.contains(&(c - 1)) {
            return Err((weight, format!("alternative {c} is ranked twice")));
        }
        prefs.push(c - 1);
        ranks.push(level);
        Ok(())
    };
    for ch in order.chars() {
        match ch {
            '{' if !in_group => {
                if !token.trim().is_empty() {
                    return Err((weight, "missing comma before `{`".to_string()));
                }
                in_group = true;
                tied = true;
            }
            '}' if in_group => {
                push(&token, &mut prefs, &mut ranks, level)?;
                token.clear();
                in_group = false;
            }
            ',' => {
                push(&token, &mut prefs, &mut ranks, level)?;
                token.clear();
                if !in_group {
                    level += 1;
                }
            }
            '{' | '}' => return Err((weight, format!("unbalanced `{ch}`"))),
            _ => token.push(ch),
        }
    }
    if in_group {
        return Err((weight, "unclosed `{`".to_string()));
    }
    push(&token, &mut prefs, &mut ranks, level)?;
    if prefs.is_empty() {
        return Err((weight, "no alternative is ranked".to_string()));
    }
    // Renumber levels densely (a `,` right after `}` advanced the level already).
    let mut dense = Vec::with_capacity(ranks.len());
    let mut cur = 0u32;
    for (i, r) in ranks.iter().enumerate() {
        if i > 0 && *r != ranks[i - 1] {
            cur += 1;
        }
        dense.push(cur);
    }
    if !tied || !dense.windows(2).any(|w| w[0] == w[1]) {
        dense.clear();
    }
    Ok(Ballot {
        weight,
        prefs,
        ranks: dense,
    })
}

/// Writes an election as PrefLib (`.toi` when any ballot has ties, else `.soi`).
pub fn write_preflib(e: &Election) -> String {
    let ties = e.ballots.iter().any(Ballot::has_ties);
    let mut s = String::new();
    let _ = writeln!(s, "# TITLE: {}", e.title);
    let _ = writeln!(s, "# DATA TYPE: {}", if ties { "toi" } else { "soi" });
    let _ = writeln!(s, "# NUMBER ALTERNATIVES: {}", e.candidates.len());
    let _ = writeln!(s, "# NUMBER VOTERS: {}", e.valid_weight());
    let _ = writeln!(s, "# NUMBER UNIQUE ORDERS: {}", e.ballots.len());
    for (i, c) in e.candidates.iter().enumerate() {
        let _ = writeln!(s, "# ALTERNATIVE NAME {}: {}", i + 1, c);
    }
    for b in &e.ballots {
        let _ = write!(s, "{}: ", b.weight);
        let mut i = 0;
        let mut first = true;
        while i < b.prefs.len() {
            let mut j = i + 1;
            while j < b.prefs.len() && b.level(j) == b.level(i) {
                j += 1;
            }
            if !first {
                s.push(',');
            }
            first = false;
            let group: Vec<String> = b.prefs[i..j].iter().map(|c| (c + 1).to_string()).collect();
            if group.len() > 1 {
                let _ = write!(s, "{{{}}}", group.join(","));
            } else {
                s.push_str(&group[0]);
            }
            i = j;
        }
        s.push('\n');
    }
    s
}

/// Reads a CSV of rankings: a header row of candidate names (an optional first column
/// named `weight`), then one row per ballot giving each candidate's rank (1 = first;
/// blank = unranked; equal numbers = tie). Seats are 1 (set them from the command line).
pub fn read_csv(text: &str, file: &str) -> Result<Election, FormatError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut records = rdr.records();
    let header = match records.next() {
        Some(Ok(h)) => h,
        Some(Err(err)) => return Err(syntax(file, 1, err.to_string())),
        None => {
            return Err(syntax(
                file,
                1,
                "empty file: expected a header of candidate names",
            ))
        }
    };
    let has_weight = header
        .get(0)
        .is_some_and(|h| h.eq_ignore_ascii_case("weight"));
    let skip = usize::from(has_weight);
    let candidates: Vec<String> = header.iter().skip(skip).map(str::to_string).collect();
    if candidates.is_empty() || candidates.iter().any(String::is_empty) {
        return Err(syntax(file, 1, "the header must name every candidate"));
    }
    let mut e = Election {
        seats: 1,
        candidates,
        ..Election::default()
    };
    for rec in records {
        let rec = match rec {
            Ok(r) => r,
            Err(err) => {
                let line = err
                    .position()
                    .map(|p| usize::try_from(p.line()).unwrap_or(0))
                    .unwrap_or(0);
                e.invalid.push(InvalidBallot {
                    line,
                    weight: 1,
                    reason: err.to_string(),
                });
                continue;
            }
        };
        let line = rec
            .position()
            .map(|p| usize::try_from(p.line()).unwrap_or(0))
            .unwrap_or(0);
        if rec.iter().all(str::is_empty) {
            continue;
        }
        match parse_csv_row(&rec, has_weight, e.candidates.len()) {
            Ok(b) => e.ballots.push(b),
            Err((weight, reason)) => e.invalid.push(InvalidBallot {
                line,
                weight,
                reason,
            }),
        }
    }
    Ok(e)
}

fn parse_csv_row(
    rec: &csv::StringRecord,
    has_weight: bool,
    ncand: usize,
) -> Result<Ballot, (u64, String)> {
    let weight = if has_weight {
        let w = rec.get(0).unwrap_or("");
        w.parse::<u64>()
            .map_err(|_| (1, format!("weight {w:?} is not a whole number")))?
    } else {
        1
    };
    if weight == 0 {
        return Err((0, "the weight is 0".to_string()));
    }
    let cells: Vec<&str> = rec.iter().skip(usize::from(has_weight)).collect();
    if cells.len() > ncand {
        return Err((
            weight,
            format!("{} rank cells for {ncand} candidates", cells.len()),
        ));
    }
    let mut ranked: Vec<(u32, usize)> = Vec::new();
    for (c, cell) in cells.iter().enumerate() {
        if cell.is_empty() {
            continue;
        }
        let r: u32 = cell.parse().map_err(|_| {
            (
                weight,
                format!(
                    "rank {cell:?} for candidate {} is not a whole number",
                    c + 1
                ),
            )
        })?;
        if r == 0 {
            return Err((weight, format!("rank 0 for candidate {}", c + 1)));
        }
        ranked.push((r, c));
    }
    if ranked.is_empty() {
        return Err((weight, "no candidate is ranked".to_string()));
    }
    ranked.sort_unstable();
    let prefs: Vec<usize> = ranked.iter().map(|(_, c)| *c).collect();
    let tied = ranked.windows(2).any(|w| w[0].0 == w[1].0);
    let mut ranks = Vec::new();
    if tied {
        let mut cur = 0;
        for (i, (r, _)) in ranked.iter().enumerate() {
            if i > 0 && *r != ranked[i - 1].0 {
                cur += 1;
            }
            ranks.push(cur);
        }
    }
    Ok(Ballot {
        weight,
        prefs,
        ranks,
    })
}

/// Writes an election as a CSV of rankings (with a `weight` column).
pub fn write_csv(e: &Election) -> String {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    let mut header = vec!["weight".to_string()];
    header.extend(e.candidates.iter().cloned());
    let _ = w.write_record(&header);
    for b in &e.ballots {
        let mut row = vec![String::new(); e.candidates.len() + 1];
        row[0] = b.weight.to_string();
        for (i, c) in b.prefs.iter().enumerate() {
            if let Some(cell) = row.get_mut(c + 1) {
                *cell = (b.level(i) + 1).to_string();
            }
        }
        let _ = w.write_record(&row);
    }
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blt_reads_weights_withdrawn_quoted_and_unquoted_names() {
        let text = "3 2\n-2\n4 1 2 0\n2 3=1 0\n1 2 0\n0\n\"Ann A\"\nBob B (Ind)\n\"Cy\"\n\"Title\"";
        let e = read_blt(text, "t.blt").unwrap();
        assert_eq!(e.candidates, vec!["Ann A", "Bob B (Ind)", "Cy"]);
        assert_eq!(e.withdrawn, vec![1]);
        assert_eq!(e.seats, 2);
        assert_eq!(e.ballots.len(), 3);
        assert_eq!(e.ballots[1].prefs, vec![2, 0]);
        assert!(e.ballots[1].has_ties());
        assert!(!e.ballots[0].has_ties());
        assert_eq!(e.title, "Title");
        let again = read_blt(&write_blt(&e), "w.blt").unwrap();
        assert_eq!(again, e);
    }

    #[test]
    fn blt_malformed_lines_are_reported_by_line_and_rest_kept() {
        let text = "3 1\n2 1 2 0\nx 1 0\n3 1 4 0\n1 1 1 0\n5 2 3\n0 1 0\n4 3 0\n0\nA\nB\nC\n";
        let e = read_blt(text, "t.blt").unwrap();
        assert_eq!(e.valid_weight(), 6);
        let lines: Vec<usize> = e.invalid.iter().map(|i| i.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6, 7]);
        assert_eq!(e.invalid_weight(), 1 + 3 + 1 + 5);
        assert!(e.invalid[1].reason.contains("candidate 4"));
    }

    #[test]
    fn blt_structural_errors_name_file_and_line() {
        let err = read_blt("3 1\n1 1 0\n", "f.blt").unwrap_err().to_string();
        assert!(err.starts_with("f.blt:2:"), "{err}");
        let err = read_blt("3 1\n0\nA\n", "f.blt").unwrap_err().to_string();
        assert!(err.contains("expected 3 candidate names"), "{err}");
        let err = read_blt("x\n", "f.blt").unwrap_err().to_string();
        assert!(err.starts_with("f.blt:1:"), "{err}");
    }

    #[test]
    fn preflib_toi_reads_ties_and_round_trips() {
        let text = "# TITLE: T\n# NUMBER ALTERNATIVES: 4\n# ALTERNATIVE NAME 1: A\n\
                    # ALTERNATIVE NAME 2: B\n3: 1,{2,3},4\n2: 4\nbad\n1: 5\n";
        let e = read_preflib(text, "t.toi").unwrap();
        assert_eq!(e.candidates[0], "A");
        assert_eq!(e.candidates[2], "Alternative 3");
        assert_eq!(e.ballots[0].prefs, vec![0, 1, 2, 3]);
        assert_eq!(e.ballots[0].ranks, vec![0, 1, 1, 2]);
        assert_eq!(e.ballots[1].ranks, Vec::<u32>::new());
        assert_eq!(e.invalid.len(), 2);
        assert_eq!(e.invalid[0].line, 7);
        let again = read_preflib(&write_preflib(&e), "w.toi").unwrap();
        assert_eq!(again.ballots, e.ballots);
        assert_eq!(again.candidates, e.candidates);
    }

    #[test]
    fn csv_reads_ranks_and_round_trips() {
        let text = "weight,A,B,C\n2,1,2,\n1,,1,1\n3,x,1,\n";
        let e = read_csv(text, "t.csv").unwrap();
        assert_eq!(e.candidates, vec!["A", "B", "C"]);
        assert_eq!(e.ballots[0], Ballot::strict(2, vec![0, 1]));
        assert!(e.ballots[1].has_ties());
        assert_eq!(e.invalid.len(), 1);
        assert_eq!(e.invalid[0].line, 4);
        assert_eq!(e.invalid[0].weight, 3);
        let again = read_csv(&write_csv(&e), "w.csv").unwrap();
        assert_eq!(again.ballots, e.ballots);
    }
}
