//! Published outputs of a list: Mastodon CSV (Mastodon's exact export header), FediBlockHole
//! CSV, JSON, and the change feed — all with an ETag that changes exactly when the list's
//! sequence number does. Only published changes appear; held ones never do.
//!
//! The change feed ([`feed`]) is a snapshot when no cursor is given (the published entries and
//! the cursor they correspond to), else the published changes after the cursor, retractions
//! included, ascending, with the new cursor. Replaying from cursor 0 rebuilds the list.

use guildhall_blocklist::write::{write_fbh_csv, write_json, write_mastodon_csv};
use guildhall_blocklist::BlockEntry;
use guildhall_core::OrgId;
use guildhall_db::{on_pool, Db, DbError};
use serde::{Deserialize, Serialize};

use crate::lists::{list_row, published_entries, ListRow};
use crate::model::{opt_json, sha256_hex, ChangeOp, Entry, ListsError, Result};

/// Who reads a published output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access<'a> {
    /// A signed-in member of an organisation (the owner sees its own lists; others see public
    /// lists only).
    Org(OrgId),
    /// A bearer of the list's feed token (for token-protected lists).
    Token(&'a str),
    /// Anyone (public lists only).
    Anonymous,
}

fn allowed(l: &ListRow, access: Access<'_>) -> bool {
    if l.public {
        return true;
    }
    match access {
        Access::Org(o) => o.0 == l.org_id,
        Access::Token(t) => l.token_hash.as_deref().is_some_and(|h| {
            constant_time_eq(h.as_bytes(), sha256_hex(t.trim().as_bytes()).as_bytes())
        }),
        Access::Anonymous => false,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `access` may read list `id` (public, the owner's organisation, or the feed token).
pub async fn can_read(db: &Db, access: Access<'_>, id: i64) -> Result<bool> {
    match list_row(db, id).await {
        Ok(l) => Ok(allowed(&l, access)),
        Err(ListsError::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

async fn readable(db: &Db, access: Access<'_>, id: i64) -> Result<ListRow> {
    let l = list_row(db, id).await?;
    if !allowed(&l, access) {
        return Err(ListsError::NotFound("list"));
    }
    Ok(l)
}

/// The formats a list is published in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// Mastodon's import CSV: header `#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate`.
    MastodonCsv,
    /// FediBlockHole's CSV (`domain,severity,reject_media,reject_reports,public_comment,obfuscate`, CRLF).
    FediBlockHoleCsv,
    /// A JSON array in the shape of Mastodon's admin API.
    Json,
}

impl OutputFormat {
    /// The `Content-Type` to serve it with.
    pub fn content_type(self) -> &'static str {
        match self {
            OutputFormat::MastodonCsv | OutputFormat::FediBlockHoleCsv => "text/csv; charset=utf-8",
            OutputFormat::Json => "application/json",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            OutputFormat::MastodonCsv => "mastodon_csv",
            OutputFormat::FediBlockHoleCsv => "fbh_csv",
            OutputFormat::Json => "json",
        }
    }
}

/// A rendered output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The strong ETag (quoted), from the list id, the sequence number and the format.
    pub etag: String,
    /// The sequence number it reflects.
    pub seq: i64,
    /// The body.
    pub body: Vec<u8>,
}

/// The ETag of a list output: a quoted hash of the list id, its sequence number and `what`
/// (a format, or `feed:<cursor>`). Serve 304 when `If-None-Match` equals it.
pub fn etag(list: i64, seq: i64, what: &str) -> String {
    let h = sha256_hex(format!("guildhall-list:{list}:{seq}:{what}").as_bytes());
    format!("\"{}\"", &h[..32])
}

/// Renders a list's published entries in `format` for `access` (non-public lists need the
/// owner's organisation or the feed token; otherwise [`ListsError::NotFound`]).
pub async fn output(db: &Db, access: Access<'_>, id: i64, format: OutputFormat) -> Result<Output> {
    readable(db, access, id).await?;
    let (entries, seq) = published_entries(db, id).await?;
    let blocks: Vec<BlockEntry> = entries.iter().map(Into::into).collect();
    let mut body = Vec::with_capacity(blocks.len() * 48 + 128);
    let io = |e: std::io::Error| ListsError::Fetch(format!("rendering the list failed: {e}"));
    match format {
        OutputFormat::MastodonCsv => write_mastodon_csv(&mut body, &blocks).map_err(io)?,
        OutputFormat::FediBlockHoleCsv => {
            let extra: Vec<String> = [
                "reject_media",
                "reject_reports",
                "public_comment",
                "obfuscate",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            write_fbh_csv(&mut body, &blocks, &extra).map_err(io)?
        }
        OutputFormat::Json => write_json(&mut body, &blocks).map_err(io)?,
    }
    Ok(Output {
        content_type: format.content_type(),
        etag: etag(id, seq, format.tag()),
        seq,
        body,
    })
}

/// One published change in the feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedChange {
    /// Its sequence number (the cursor after it).
    pub seq: i64,
    /// The domain.
    pub domain: String,
    /// `add`, `change` or `remove` (a retraction).
    pub op: ChangeOp,
    /// The entry after (absent for a removal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<Entry>,
}

/// A change-feed document (served as JSON; read back by feed sources of other Guildhalls).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedDocument {
    /// The list.
    pub list_id: i64,
    /// Its name.
    pub name: String,
    /// The cursor to ask from next (`?since=`).
    pub cursor: i64,
    /// The published entries at `cursor`, when no cursor was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Vec<Entry>>,
    /// The changes after the given cursor, ascending.
    #[serde(default)]
    pub changes: Vec<FeedChange>,
    /// Whether more changes follow (ask again from `cursor`).
    #[serde(default)]
    pub more: bool,
    /// The document's ETag.
    #[serde(default)]
    pub etag: String,
}

/// The change feed of a list for `access`: with `since` `None`, a snapshot at the current
/// cursor; with `Some(c)`, up to `limit` (1–10 000) published changes with sequence numbers
/// above `c`, ascending, retractions included, and the new cursor. `Some(0)` replays from the
/// start. A cursor above the list's is [`ListsError::Invalid`].
pub async fn feed(
    db: &Db,
    access: Access<'_>,
    id: i64,
    since: Option<i64>,
    limit: u32,
) -> Result<FeedDocument> {
    let l = readable(db, access, id).await?;
    let limit = limit.clamp(1, 10_000);
    match since {
        None => {
            let (entries, seq) = published_entries(db, id).await?;
            Ok(FeedDocument {
                list_id: id,
                name: l.name,
                cursor: seq,
                snapshot: Some(entries),
                changes: Vec::new(),
                more: false,
                etag: etag(id, seq, "feed:snapshot"),
            })
        }
        Some(c) => {
            if c < 0 || c > l.seq {
                return Err(ListsError::invalid(
                    "since",
                    format!("cursor {c} is not between 0 and {}", l.seq),
                ));
            }
            type Row = (Option<i64>, String, String, Option<String>);
            let rows: Vec<Row> = on_pool!(db, p => sqlx::query_as(
                "SELECT seq, domain, op, after_json FROM lists_changes \
                 WHERE list_id = $1 AND status = 'published' AND seq > $2 ORDER BY seq LIMIT $3")
                .bind(id).bind(c).bind(i64::from(limit) + 1).fetch_all(p).await)
            .map_err(DbError::from)?;
            let more = rows.len() > limit as usize;
            let mut changes = Vec::with_capacity(rows.len().min(limit as usize));
            for (seq, domain, op, after) in rows.into_iter().take(limit as usize) {
                changes.push(FeedChange {
                    seq: seq.unwrap_or(0),
                    domain,
                    op: ChangeOp::parse(&op)?,
                    entry: opt_json("lists_changes.after_json", &after)?,
                });
            }
            let cursor = changes.last().map(|c| c.seq).unwrap_or(c);
            Ok(FeedDocument {
                list_id: id,
                name: l.name,
                cursor,
                snapshot: None,
                changes,
                more,
                etag: etag(id, cursor, &format!("feed:{c}:{limit}")),
            })
        }
    }
}

/// Rebuilds a list's entries from a feed document sequence (snapshot, then changes): what a
/// consumer does. Exposed for tests and for the web layer's self-checks.
pub fn replay(docs: &[FeedDocument]) -> Vec<Entry> {
    let mut state: std::collections::BTreeMap<String, Entry> = std::collections::BTreeMap::new();
    for d in docs {
        if let Some(s) = &d.snapshot {
            state = s.iter().map(|e| (e.domain.clone(), e.clone())).collect();
        }
        for c in &d.changes {
            match (&c.op, &c.entry) {
                (ChangeOp::Remove, _) | (_, None) => {
                    state.remove(&c.domain);
                }
                (_, Some(e)) => {
                    state.insert(c.domain.clone(), e.clone());
                }
            }
        }
    }
    state.into_values().collect()
}
