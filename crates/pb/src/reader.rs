//! Streaming Pabulib `.pb` reader.
//!
//! [`PbReader::new`] reads META and PROJECTS; the VOTES rows are then streamed one at a time
//! with [`PbReader::next_vote`] (or collected with [`read_election`]). Problems in single lines
//! are recorded as [`Issue`]s carrying the line number and the line is skipped; only structural
//! problems (missing sections or required columns, I/O errors) are fatal [`PbError`]s.

use crate::hash::{HashMap, HashSet, State};
use crate::model::{Election, Project, VoteType, Voter};
use crate::number::{parse_decimal, NumberError, Q};
use serde::Serialize;
use std::borrow::Cow;
use std::io::BufRead;

/// How bad an [`Issue`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The file does not follow the format (pabulib-checker error).
    Error,
    /// Suspicious but allowed (pabulib-checker warning).
    Warning,
}

/// One validation finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    /// Error or warning.
    pub severity: Severity,
    /// 1-based line number, when the finding is about one line.
    pub line: Option<usize>,
    /// Short machine-readable kind, e.g. `empty-line`, `duplicate-in-vote`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match self.line {
            Some(l) => write!(f, "line {l}: {sev} [{}]: {}", self.code, self.message),
            None => write!(f, "{sev} [{}]: {}", self.code, self.message),
        }
    }
}

/// A fatal reading error.
#[derive(Debug, thiserror::Error)]
pub enum PbError {
    /// The underlying reader failed.
    #[error("{source_name}: line {line}: read error: {err}")]
    Io {
        /// File name.
        source_name: String,
        /// Line being read.
        line: usize,
        /// The error.
        err: std::io::Error,
    },
    /// The file's structure is broken beyond recovery.
    #[error("{source_name}: line {line}: {message}")]
    Structure {
        /// File name.
        source_name: String,
        /// Line number (1-based; the last line read when at end of file).
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Splits one `;`-separated row, honouring `"…"` quoting with doubled inner quotes.
pub fn split_row(line: &str) -> Result<Vec<Cow<'_, str>>, &'static str> {
    if !line.contains('"') {
        return Ok(line.split(';').map(Cow::Borrowed).collect());
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut at_start = true;
    let mut in_quotes = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    in_quotes = false;
                }
            } else {
                cur.push(c);
            }
            continue;
        }
        match c {
            '"' if at_start => {
                in_quotes = true;
                was_quoted = true;
                at_start = false;
            }
            ';' => {
                out.push(Cow::Owned(std::mem::take(&mut cur)));
                at_start = true;
                was_quoted = false;
            }
            _ => {
                if was_quoted {
                    return Err("text after a closing quote");
                }
                cur.push(c);
                at_start = false;
            }
        }
    }
    if in_quotes {
        return Err("unterminated quoted field");
    }
    out.push(Cow::Owned(cur));
    Ok(out)
}

/// META and PROJECTS, read before the votes are streamed.
#[derive(Debug, Clone)]
pub struct Header {
    /// META rows in file order.
    pub meta: Vec<(String, String)>,
    /// META `budget` (0 when missing or invalid; an issue is recorded).
    pub budget: Q,
    /// META `vote_type` (approval when missing or invalid; an issue is recorded).
    pub vote_type: VoteType,
    /// PROJECTS header.
    pub project_columns: Vec<String>,
    /// Projects in file order.
    pub projects: Vec<Project>,
    /// VOTES header.
    pub vote_columns: Vec<String>,
}

struct Lines<R> {
    inner: R,
    buf: String,
    line_no: usize,
    source: String,
}

impl<R: BufRead> Lines<R> {
    /// Next line without its terminator; `None` at end.
    fn next(&mut self) -> Result<Option<&str>, PbError> {
        self.buf.clear();
        let n = self
            .inner
            .read_line(&mut self.buf)
            .map_err(|err| PbError::Io {
                source_name: self.source.clone(),
                line: self.line_no + 1,
                err,
            })?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        if self.buf.ends_with('\n') {
            self.buf.pop();
        }
        if self.buf.ends_with('\r') {
            self.buf.pop();
        }
        let s = if self.line_no == 1 {
            self.buf.strip_prefix('\u{feff}').unwrap_or(&self.buf)
        } else {
            &self.buf
        };
        Ok(Some(s))
    }
}

fn is_section(line: &str, name: &str) -> bool {
    line.trim().eq_ignore_ascii_case(name)
}

/// Streaming reader of one `.pb` file.
pub struct PbReader<R> {
    lines: Lines<R>,
    header: Header,
    issues: Vec<Issue>,
    ids: HashMap<String, u32>,
    col_voter: usize,
    col_vote: usize,
    col_points: Option<usize>,
    extra_cols: Vec<usize>,
    min_len: Option<usize>,
    max_len: Option<usize>,
    min_points: Option<Q>,
    max_points: Option<Q>,
    min_sum_points: Option<Q>,
    max_sum_points: Option<Q>,
    votes_read: usize,
    done: bool,
    keep_extra: bool,
    /// reused by `parse_cells`
    keep_buf: Vec<bool>,
}

fn meta_usize(meta: &[(String, String)], key: &str) -> Option<usize> {
    meta.iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
}
fn meta_q(meta: &[(String, String)], key: &str) -> Option<Q> {
    meta.iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| parse_decimal(v.trim()).ok())
}

impl<R: BufRead> PbReader<R> {
    /// Reads META and PROJECTS and the VOTES header; `source` names the input in messages.
    pub fn new(input: R, source: &str) -> Result<Self, PbError> {
        let mut lines = Lines {
            inner: input,
            buf: String::new(),
            line_no: 0,
            source: source.to_string(),
        };
        let mut issues = Vec::new();
        let structure = |line: usize, message: String| PbError::Structure {
            source_name: source.to_string(),
            line,
            message,
        };
        macro_rules! issue {
            ($sev:expr, $line:expr, $code:expr, $($arg:tt)*) => {
                issues.push(Issue { severity: $sev, line: $line, code: $code, message: format!($($arg)*) })
            };
        }
        // ---- META
        loop {
            let ln = lines.line_no + 1;
            match lines.next()? {
                None => return Err(structure(ln, "no META section".into())),
                Some(l) if l.trim().is_empty() => {
                    issue!(Severity::Error, Some(ln), "empty-line", "empty line")
                }
                Some(l) if is_section(l, "META") => break,
                Some(l) => {
                    return Err(structure(
                        ln,
                        format!("expected the META section title, found {:?}", clip(l)),
                    ))
                }
            }
        }
        let ln = lines.line_no + 1;
        match lines.next()? {
            Some(l) if l.trim() == "key;value" => {}
            Some(l) => issue!(
                Severity::Error,
                Some(ln),
                "meta-header",
                "META header must be `key;value`, found {:?}",
                clip(l)
            ),
            None => return Err(structure(ln, "file ends inside META".into())),
        }
        let mut meta: Vec<(String, String)> = Vec::new();
        loop {
            let ln = lines.line_no + 1;
            let Some(l) = lines.next()? else {
                return Err(structure(lines.line_no, "no PROJECTS section".into()));
            };
            if is_section(l, "PROJECTS") {
                break;
            }
            if l.trim().is_empty() {
                issue!(Severity::Error, Some(ln), "empty-line", "empty line");
                continue;
            }
            let cells = match split_row(l) {
                Ok(c) => c,
                Err(e) => {
                    issue!(Severity::Error, Some(ln), "csv", "{e}");
                    continue;
                }
            };
            if cells.len() < 2 {
                issue!(
                    Severity::Error,
                    Some(ln),
                    "meta-row",
                    "META row needs `key;value`"
                );
                continue;
            }
            let key = cells[0].to_string();
            let value = if cells.len() > 2 {
                // an unquoted `;` inside the value: keep it whole but report it
                issue!(
                    Severity::Error,
                    Some(ln),
                    "meta-row",
                    "META row `{key}` has {} fields (a `;` in a value must be quoted)",
                    cells.len()
                );
                cells[1..].join(";")
            } else {
                cells[1].to_string()
            };
            if key.trim() != key || value.trim() != value {
                issue!(
                    Severity::Error,
                    Some(ln),
                    "whitespace",
                    "leading or trailing whitespace in META `{}`",
                    key.trim()
                );
            }
            let key = key.trim().to_string();
            if meta.iter().any(|(k, _)| *k == key) {
                issue!(
                    Severity::Error,
                    Some(ln),
                    "meta-duplicate",
                    "META key `{key}` repeated"
                );
                continue;
            }
            check_meta_value(&key, value.trim(), ln, &mut issues);
            meta.push((key, value.trim().to_string()));
        }
        for req in [
            "description",
            "country",
            "unit",
            "instance",
            "num_projects",
            "num_votes",
            "budget",
            "vote_type",
            "rule",
            "date_begin",
            "date_end",
        ] {
            if !meta.iter().any(|(k, _)| k == req) {
                issue!(
                    Severity::Error,
                    None,
                    "meta-missing",
                    "required META key `{req}` is missing"
                );
            }
        }
        let budget = meta_q(&meta, "budget").unwrap_or_default();
        let vote_type = meta
            .iter()
            .find(|(k, _)| k == "vote_type")
            .and_then(|(_, v)| VoteType::parse(v))
            .unwrap_or(VoteType::Approval);
        // ---- PROJECTS
        let ln = lines.line_no + 1;
        let project_columns: Vec<String> = match lines.next()? {
            Some(l) => match split_row(l) {
                Ok(c) => c.iter().map(|s| s.trim().to_string()).collect(),
                Err(e) => return Err(structure(ln, format!("PROJECTS header: {e}"))),
            },
            None => return Err(structure(ln, "file ends after PROJECTS".into())),
        };
        let Some(col_id) = project_columns.iter().position(|c| c == "project_id") else {
            return Err(structure(ln, "PROJECTS header has no `project_id`".into()));
        };
        let Some(col_cost) = project_columns.iter().position(|c| c == "cost") else {
            return Err(structure(ln, "PROJECTS header has no `cost`".into()));
        };
        if col_id != 0 || col_cost != 1 {
            issue!(
                Severity::Warning,
                Some(ln),
                "field-order",
                "PROJECTS should start with `project_id;cost`"
            );
        }
        if project_columns.iter().any(|c| c == "target") {
            issue!(
                Severity::Error,
                Some(ln),
                "invalid-field",
                "PROJECTS column `target` was renamed `beneficiaries`"
            );
        }
        let mut projects: Vec<Project> = Vec::new();
        let mut ids: HashMap<String, u32> = HashMap::default();
        loop {
            let ln = lines.line_no + 1;
            let Some(l) = lines.next()? else {
                return Err(structure(lines.line_no, "no VOTES section".into()));
            };
            if is_section(l, "VOTES") {
                break;
            }
            if l.trim().is_empty() {
                issue!(Severity::Error, Some(ln), "empty-line", "empty line");
                continue;
            }
            let cells = match split_row(l) {
                Ok(c) => c,
                Err(e) => {
                    issue!(Severity::Error, Some(ln), "csv", "{e}");
                    continue;
                }
            };
            if cells.len() != project_columns.len() {
                issue!(
                    Severity::Error,
                    Some(ln),
                    "row-length",
                    "project row has {} fields, the header {}",
                    cells.len(),
                    project_columns.len()
                );
                if cells.len() <= col_id.max(col_cost) {
                    continue;
                }
            }
            for (i, c) in cells.iter().enumerate() {
                if c.trim() != c {
                    issue!(
                        Severity::Error,
                        Some(ln),
                        "whitespace",
                        "leading or trailing whitespace in `{}`",
                        project_columns.get(i).map(|s| s.as_str()).unwrap_or("?")
                    );
                }
            }
            let id = cells[col_id].trim().to_string();
            if id.is_empty() {
                issue!(Severity::Error, Some(ln), "project-id", "empty project_id");
                continue;
            }
            let cost = match parse_decimal(cells[col_cost].trim()) {
                Ok(c) if c >= Q::default() => c,
                Ok(_) => {
                    issue!(
                        Severity::Error,
                        Some(ln),
                        "cost",
                        "project {id}: negative cost"
                    );
                    continue;
                }
                Err(NumberError::Empty) => {
                    issue!(
                        Severity::Error,
                        Some(ln),
                        "cost",
                        "project {id} has no cost"
                    );
                    continue;
                }
                Err(NumberError::Comma) => {
                    issue!(
                        Severity::Error,
                        Some(ln),
                        "comma-in-float",
                        "project {id}: cost {:?} uses a comma; use `.`",
                        cells[col_cost].as_ref()
                    );
                    continue;
                }
                Err(NumberError::Invalid) => {
                    issue!(
                        Severity::Error,
                        Some(ln),
                        "cost",
                        "project {id}: cost {:?} is not a number",
                        cells[col_cost].as_ref()
                    );
                    continue;
                }
            };
            for (i, c) in cells.iter().enumerate() {
                let col = project_columns.get(i).map(|s| s.as_str()).unwrap_or("");
                check_project_cell(col, c.trim(), &id, ln, &mut issues);
            }
            if ids.contains_key(&id) {
                issue!(
                    Severity::Error,
                    Some(ln),
                    "project-duplicate",
                    "project id {id} repeated"
                );
                continue;
            }
            let idx = u32::try_from(projects.len())
                .map_err(|_| structure(ln, "too many projects".into()))?;
            ids.insert(id.clone(), idx);
            let mut cells: Vec<String> = cells.iter().map(|c| c.trim().to_string()).collect();
            cells.resize(project_columns.len(), String::new());
            projects.push(Project {
                id,
                cost,
                cells,
                line: ln,
            });
        }
        // ---- VOTES header
        let ln = lines.line_no + 1;
        let vote_columns: Vec<String> = match lines.next()? {
            Some(l) => match split_row(l) {
                Ok(c) => c.iter().map(|s| s.trim().to_string()).collect(),
                Err(e) => return Err(structure(ln, format!("VOTES header: {e}"))),
            },
            None => Vec::new(),
        };
        let mut col_voter = 0;
        let mut col_vote = 1;
        let mut col_points = None;
        if !vote_columns.is_empty() {
            col_voter = vote_columns
                .iter()
                .position(|c| c == "voter_id")
                .ok_or_else(|| structure(ln, "VOTES header has no `voter_id`".into()))?;
            col_vote = vote_columns
                .iter()
                .position(|c| c == "vote")
                .ok_or_else(|| structure(ln, "VOTES header has no `vote`".into()))?;
            col_points = vote_columns.iter().position(|c| c == "points");
            if vote_type.has_points() && col_points.is_none() {
                return Err(structure(
                    ln,
                    format!("vote_type {} needs a `points` column", vote_type.as_str()),
                ));
            }
        }
        let extra_cols = (0..vote_columns.len())
            .filter(|&i| i != col_voter && i != col_vote && Some(i) != col_points)
            .collect();
        let header = Header {
            meta,
            budget,
            vote_type,
            project_columns,
            projects,
            vote_columns,
        };
        let m = &header.meta;
        let done = header.vote_columns.is_empty();
        Ok(Self {
            min_len: meta_usize(m, "min_length"),
            max_len: meta_usize(m, "max_length"),
            min_points: meta_q(m, "min_points"),
            max_points: meta_q(m, "max_points"),
            min_sum_points: meta_q(m, "min_sum_points"),
            max_sum_points: meta_q(m, "max_sum_points"),
            lines,
            header,
            issues,
            ids,
            col_voter,
            col_vote,
            col_points,
            extra_cols,
            votes_read: 0,
            done,
            keep_extra: true,
            keep_buf: Vec::new(),
        })
    }
}

/// Whether `s` starts or ends with whitespace (i.e. `s.trim() != s`).
fn has_outer_space(s: &str) -> bool {
    s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace)
}

fn clip(s: &str) -> String {
    s.chars().take(60).collect()
}

impl<R: BufRead> PbReader<R> {
    /// META and PROJECTS.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Issues found so far.
    pub fn issues(&self) -> &[Issue] {
        &self.issues
    }

    /// Number of vote rows read so far (valid or not).
    pub fn votes_read(&self) -> usize {
        self.votes_read
    }

    fn issue(&mut self, line: usize, code: &'static str, message: String) {
        self.issues.push(Issue {
            severity: Severity::Error,
            line: Some(line),
            code,
            message,
        });
    }

    /// The next valid vote row; invalid rows are recorded as issues and skipped.
    pub fn next_vote(&mut self) -> Result<Option<Voter>, PbError> {
        loop {
            if self.done {
                return Ok(None);
            }
            let ln = self.lines.line_no + 1;
            let Some(l) = self.lines.next()? else {
                self.done = true;
                return Ok(None);
            };
            if l.trim().is_empty() {
                self.issue(ln, "empty-line", "empty line".into());
                continue;
            }
            self.votes_read += 1;
            let line = std::mem::take(&mut self.lines.buf);
            let parsed = self.parse_vote(line.strip_prefix('\u{feff}').unwrap_or(&line), ln);
            self.lines.buf = line;
            if let Some(v) = parsed {
                return Ok(Some(v));
            }
        }
    }

    fn parse_vote(&mut self, l: &str, ln: usize) -> Option<Voter> {
        if l.contains('"') {
            let cells = match split_row(l) {
                Ok(c) => c,
                Err(e) => {
                    self.issue(ln, "csv", e.into());
                    return None;
                }
            };
            let cells: Vec<&str> = cells.iter().map(|c| c.as_ref()).collect();
            return self.parse_cells(&cells, ln);
        }
        // no quoting: the cells are slices of the line (no allocation for up to 16 cells)
        let mut arr = [""; 16];
        let mut n = 0;
        for c in l.split(';') {
            if n == arr.len() {
                let cells: Vec<&str> = l.split(';').collect();
                return self.parse_cells(&cells, ln);
            }
            arr[n] = c;
            n += 1;
        }
        self.parse_cells(&arr[..n], ln)
    }

    fn parse_cells(&mut self, cells: &[&str], ln: usize) -> Option<Voter> {
        let mut keep = std::mem::take(&mut self.keep_buf);
        keep.clear();
        let v = self.parse_cells_with(cells, ln, &mut keep);
        self.keep_buf = keep;
        v
    }

    /// `keep`: per listed project, whether it is kept in the ballot (an empty buffer).
    fn parse_cells_with(
        &mut self,
        cells: &[&str],
        ln: usize,
        keep: &mut Vec<bool>,
    ) -> Option<Voter> {
        let ncols = self.header.vote_columns.len();
        if cells.len() != ncols {
            self.issue(
                ln,
                "row-length",
                format!("vote row has {} fields, the header {ncols}", cells.len()),
            );
            if cells.len() <= self.col_voter.max(self.col_vote) {
                return None;
            }
        }
        for (i, c) in cells.iter().enumerate() {
            if has_outer_space(c) {
                let col = self.header.vote_columns.get(i).cloned().unwrap_or_default();
                self.issue(
                    ln,
                    "whitespace",
                    format!("leading or trailing whitespace in `{col}`"),
                );
            }
        }
        let id = cells[self.col_voter].trim().to_string();
        if id.is_empty() {
            self.issue(ln, "voter-id", "empty voter_id".into());
        }
        let vote_cell = cells[self.col_vote];
        let mut ballot: Vec<u32> =
            Vec::with_capacity(vote_cell.bytes().filter(|&b| b == b',').count() + 1);
        if !vote_cell.trim().is_empty() {
            for item in vote_cell.split(',') {
                if has_outer_space(item) {
                    self.issue(
                        ln,
                        "list-whitespace",
                        format!("whitespace around a list separator in vote {vote_cell:?}"),
                    );
                }
                let item = item.trim();
                match self.ids.get(item) {
                    None => {
                        self.issue(
                            ln,
                            "unknown-project",
                            format!("vote names unknown project {item:?}"),
                        );
                        keep.push(false);
                    }
                    Some(&p) if ballot.contains(&p) => {
                        if self.header.vote_type == VoteType::Cumulative {
                            // pabulib-checker accepts repeated ids in cumulative votes (points add up)
                            self.issues.push(Issue {
                                severity: Severity::Warning,
                                line: Some(ln),
                                code: "duplicate-in-vote",
                                message: format!("project {item} listed twice in one cumulative vote (points are added)"),
                            });
                            ballot.push(p);
                            keep.push(true);
                        } else {
                            self.issue(
                                ln,
                                "duplicate-in-vote",
                                format!("project {item} listed twice in one vote"),
                            );
                            keep.push(false);
                        }
                    }
                    Some(&p) => {
                        ballot.push(p);
                        keep.push(true);
                    }
                }
            }
        }
        let mut points: Option<Vec<i64>> = None;
        if let Some(cp) = self.col_points {
            let cell = cells.get(cp).copied().unwrap_or("");
            let raw: Vec<&str> = if cell.trim().is_empty() {
                Vec::new()
            } else {
                cell.split(',').collect()
            };
            if raw.len() != keep.len() {
                self.issue(
                    ln,
                    "points-length",
                    format!("{} points for {} projects", raw.len(), keep.len()),
                );
                return None;
            }
            let mut pts = Vec::with_capacity(ballot.len());
            let mut sum = Q::default();
            for (r, k) in raw.iter().zip(keep.iter()) {
                if r.trim() != *r {
                    self.issue(
                        ln,
                        "list-whitespace",
                        format!("whitespace around a list separator in points {cell:?}"),
                    );
                }
                let q = match parse_decimal(r.trim()) {
                    Ok(q) => q,
                    Err(NumberError::Comma) => {
                        self.issue(ln, "comma-in-float", format!("points {r:?} use a comma"));
                        return None;
                    }
                    Err(_) => {
                        self.issue(ln, "points", format!("points {r:?} are not a number"));
                        return None;
                    }
                };
                if !q.is_integer() {
                    self.issue(
                        ln,
                        "points",
                        format!("points {r:?} are not an integer (unsupported)"),
                    );
                    return None;
                }
                if let Some(m) = &self.min_points {
                    if &q < m {
                        self.issue(ln, "points-range", format!("points {r} below min_points"));
                    }
                }
                if let Some(m) = &self.max_points {
                    if &q > m {
                        self.issue(ln, "points-range", format!("points {r} above max_points"));
                    }
                }
                sum += &q;
                if *k {
                    let v = num_traits::ToPrimitive::to_i64(&q.to_integer()).unwrap_or(i64::MAX);
                    pts.push(v);
                }
            }
            if let Some(m) = &self.min_sum_points {
                if &sum < m {
                    self.issue(
                        ln,
                        "points-sum",
                        "sum of points below min_sum_points".into(),
                    );
                }
            }
            if let Some(m) = &self.max_sum_points {
                if &sum > m {
                    self.issue(
                        ln,
                        "points-sum",
                        "sum of points above max_sum_points".into(),
                    );
                }
            }
            points = Some(pts);
        }
        let n = keep.len();
        let min_len = self.min_len.unwrap_or(1);
        if n < min_len {
            self.issue(
                ln,
                "vote-length",
                format!("vote has {n} projects, min_length is {min_len}"),
            );
        }
        let max_len = match self.header.vote_type {
            VoteType::Choose1 => Some(self.max_len.unwrap_or(1)),
            _ => self.max_len,
        };
        if let Some(m) = max_len {
            if n > m {
                self.issue(
                    ln,
                    "vote-length",
                    format!("vote has {n} projects, max_length is {m}"),
                );
            }
        }
        let extra = if !self.keep_extra {
            Vec::new()
        } else {
            self.extra_cols
                .iter()
                .map(|&i| {
                    cells
                        .get(i)
                        .map(|c| c.trim().to_string())
                        .unwrap_or_default()
                })
                .collect()
        };
        Some(Voter {
            id,
            ballot,
            points,
            extra,
            line: ln,
        })
    }

    /// Finishes reading: the header and all issues.
    pub fn finish(self) -> (Header, Vec<Issue>) {
        (self.header, self.issues)
    }

    /// The indices (in the VOTES header) of the metadata columns.
    pub fn extra_columns(&self) -> Vec<String> {
        self.extra_cols
            .iter()
            .map(|&i| self.header.vote_columns[i].clone())
            .collect()
    }
}

// one arm per key reads better than guards spread over the match
#[allow(clippy::collapsible_match)]
fn check_meta_value(key: &str, value: &str, ln: usize, issues: &mut Vec<Issue>) {
    let mut bad = |code: &'static str, message: String| {
        issues.push(Issue {
            severity: Severity::Error,
            line: Some(ln),
            code,
            message,
        })
    };
    match key {
        "budget"
        | "min_sum_cost"
        | "max_sum_cost"
        | "min_points"
        | "max_points"
        | "min_sum_points"
        | "max_sum_points"
        | "min_project_score_threshold"
        | "default_score"
        | "min_project_cost"
        | "max_project_cost"
        | "leftover_budget" => match parse_decimal(value) {
            Ok(_) => {}
            Err(NumberError::Comma) => bad(
                "comma-in-float",
                format!("`{key}` {value:?} uses a comma; use `.`"),
            ),
            Err(_) => bad(
                "invalid-field",
                format!("`{key}` {value:?} is not a number"),
            ),
        },
        "num_projects" | "num_votes" | "min_length" | "max_length" => {
            if value.parse::<u64>().is_err() {
                bad(
                    "invalid-field",
                    format!("`{key}` {value:?} is not a non-negative integer"),
                );
            }
        }
        "vote_type" => {
            if VoteType::parse(value).is_none() {
                bad("invalid-field", format!("unknown vote_type {value:?}"));
            }
        }
        "rule" => {
            const RULES: [&str; 11] = [
                "greedy",
                "greedy-no-skip",
                "greedy-threshold",
                "greedy-exclusive",
                "greedy-custom",
                "equalshares",
                "equalshares/add1",
                "equalshares-comparison",
                "equalshares/add1-comparison",
                "unknown",
                "utilitarian",
            ];
            if !RULES.contains(&value) {
                bad("invalid-field", format!("unknown rule {value:?}"));
            }
        }
        "date_begin" | "date_end" => {
            let ok = if value.len() == 4 {
                value.bytes().all(|b| b.is_ascii_digit())
            } else {
                let b = value.as_bytes();
                b.len() == 10
                    && b[2] == b'.'
                    && b[5] == b'.'
                    && b.iter()
                        .enumerate()
                        .all(|(i, c)| i == 2 || i == 5 || c.is_ascii_digit())
            };
            if !ok {
                bad(
                    "invalid-field",
                    format!("`{key}` {value:?} is not dd.mm.yyyy or yyyy"),
                );
            }
        }
        "fully_funded" | "experimental" => {
            if !matches!(value, "0" | "1") {
                bad(
                    "invalid-field",
                    format!("`{key}` must be 0 or 1, found {value:?}"),
                );
            }
        }
        "neighborhoods"
        | "subdistricts"
        | "categories"
        | "budget_per_category"
        | "budget_per_neighborhood" => {
            if value.split(',').any(|x| x.trim() != x) {
                bad(
                    "list-whitespace",
                    format!("whitespace around a list separator in `{key}`"),
                );
            }
        }
        _ => {}
    }
}

#[allow(clippy::collapsible_match)]
fn check_project_cell(col: &str, value: &str, id: &str, ln: usize, issues: &mut Vec<Issue>) {
    let mut bad = |code: &'static str, message: String| {
        issues.push(Issue {
            severity: Severity::Error,
            line: Some(ln),
            code,
            message,
        })
    };
    match col {
        "votes" | "score" if !value.is_empty() => match parse_decimal(value) {
            Ok(_) => {}
            Err(NumberError::Comma) => bad(
                "comma-in-float",
                format!("project {id}: `{col}` {value:?} uses a comma"),
            ),
            Err(_) => bad(
                "invalid-field",
                format!("project {id}: `{col}` {value:?} is not a number"),
            ),
        },
        "selected" if !value.is_empty() => {
            if !matches!(value, "0" | "1" | "2") {
                bad(
                    "invalid-field",
                    format!("project {id}: `selected` must be 0, 1 or 2, found {value:?}"),
                );
            }
        }
        "latitude" | "longitude" if !value.is_empty() => {
            if value.contains(',') {
                bad(
                    "comma-in-float",
                    format!("project {id}: `{col}` {value:?} uses a comma"),
                );
            } else if value.parse::<f64>().is_err() {
                bad(
                    "invalid-field",
                    format!("project {id}: `{col}` {value:?} is not a number"),
                );
            }
        }
        "category" | "beneficiaries" => {
            if value.split(',').any(|x| x.trim() != x) {
                bad(
                    "list-whitespace",
                    format!("project {id}: whitespace around a list separator in `{col}`"),
                );
            }
        }
        _ => {}
    }
}

/// Reads a whole election (see the module docs for the error policy).
pub fn read_election<R: BufRead>(
    input: R,
    source: &str,
) -> Result<(Election, Vec<Issue>), PbError> {
    read_election_with(input, source, true)
}

/// Reads a whole election; `keep_metadata = false` drops the voters' metadata columns (age,
/// district, …), which counting does not need.
pub fn read_election_with<R: BufRead>(
    input: R,
    source: &str,
    keep_metadata: bool,
) -> Result<(Election, Vec<Issue>), PbError> {
    use std::hash::BuildHasher;
    let mut r = PbReader::new(input, source)?;
    r.keep_extra = keep_metadata;
    let extra = if keep_metadata {
        r.extra_columns()
    } else {
        Vec::new()
    };
    // room for META `num_votes` voters (capped: the value is not trusted)
    let expect = meta_usize(&r.header.meta, "num_votes")
        .unwrap_or(0)
        .min(1 << 20);
    let mut voters: Vec<Voter> = Vec::with_capacity(expect);
    // voter-id hash -> first voter with it; ids whose hash collides with another id are
    // tracked exactly in `overflow`
    let hasher = State::default();
    let mut seen: HashMap<u64, u32> = HashMap::with_capacity_and_hasher(expect, Default::default());
    let mut overflow: HashSet<String> = HashSet::default();
    while let Some(v) = r.next_vote()? {
        let h = hasher.hash_one(&v.id);
        let dup = match seen.get(&h) {
            None => {
                seen.insert(h, voters.len() as u32);
                false
            }
            Some(&i) if voters[i as usize].id == v.id => true,
            Some(_) => !overflow.insert(v.id.clone()),
        };
        if dup {
            r.issue(
                v.line,
                "voter-duplicate",
                format!("voter id {} repeated", v.id),
            );
        }
        voters.push(v);
    }
    let (h, issues) = r.finish();
    Ok((
        Election {
            meta: h.meta,
            budget: h.budget,
            vote_type: h.vote_type,
            project_columns: h.project_columns,
            projects: h.projects,
            vote_extra_columns: extra,
            voters,
        },
        issues,
    ))
}

/// Reads a `.pb` file from disk without the voters' metadata columns.
pub fn read_file_for_count(path: &std::path::Path) -> Result<(Election, Vec<Issue>), PbError> {
    let name = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|err| PbError::Io {
        source_name: name.clone(),
        line: 0,
        err,
    })?;
    read_election_with(std::io::BufReader::with_capacity(1 << 16, f), &name, false)
}

/// Reads a `.pb` file from disk.
pub fn read_file(path: &std::path::Path) -> Result<(Election, Vec<Issue>), PbError> {
    let name = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|err| PbError::Io {
        source_name: name.clone(),
        line: 0,
        err,
    })?;
    read_election(std::io::BufReader::with_capacity(1 << 16, f), &name)
}
