//! Sources: where block entries come from (a URL in any format the engine reads, a member
//! instance's admin or public list, an uploaded file, another Guildhall's change feed), their
//! refreshes (conditional GET), their current state and the history of their changes.
//!
//! Every refresh is recorded ([`Refresh`]); a refresh that finds differences stores them as
//! [`SourceChange`]s (added, changed with before/after, removed) under its id. A failed refresh
//! (network, HTTP status, unreadable input) keeps the last good state and records the error as
//! the source's health; a partly bad input keeps its good rows and records the problems with
//! their line numbers.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use guildhall_blocklist::{read_bytes, Blocklist, Format, Level, Location, ObfuscatedEntry};
use guildhall_core::{OrgId, Timestamp};
use guildhall_db::audit::append_in;
use guildhall_db::jobs::NewJob;
use guildhall_db::secrets::{Keyring, SecretValue};
use guildhall_db::{on_pool, on_tx, Db, Tx};
use guildhall_mastodon::{net, Client, Secret};
use serde::{Deserialize, Serialize};

use crate::feed::FeedDocument;
use crate::model::{
    corrupt, from_json, now, opt_json, to_json, Actor, ChangeOp, Entry, ListsError, Result,
};
use crate::Services;

/// The job kind that refreshes one source.
pub const REFRESH_JOB: &str = "lists.refresh";
/// The job kind that rebuilds one list (enqueued when one of its sources changed).
pub const REBUILD_JOB: &str = "lists.rebuild";

/// The largest source body accepted (bytes).
pub const MAX_SOURCE_BYTES: usize = 256 * 1024 * 1024;

/// The shortest refresh interval accepted.
pub const MIN_REFRESH: Duration = Duration::from_secs(60);

/// What kind of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A URL serving a blocklist in any format the engine reads.
    Url,
    /// A member instance's domain blocks (admin API with its stored token, or the public list).
    Instance,
    /// A file uploaded by a person ([`upload_source`]).
    Upload,
    /// Another Guildhall's published change feed (snapshot, then changes since a cursor).
    Feed,
    /// The built-in source of a list holding coordinated-defederation outcomes.
    Decisions,
}

impl SourceKind {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Url => "url",
            SourceKind::Instance => "instance",
            SourceKind::Upload => "upload",
            SourceKind::Feed => "feed",
            SourceKind::Decisions => "decisions",
        }
    }

    fn parse(s: &str) -> Result<SourceKind> {
        Ok(match s {
            "url" => SourceKind::Url,
            "instance" => SourceKind::Instance,
            "upload" => SourceKind::Upload,
            "feed" => SourceKind::Feed,
            "decisions" => SourceKind::Decisions,
            other => return Err(corrupt("lists_sources.kind", other)),
        })
    }
}

/// How to reach a new source.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// A URL (http or https). `format`: a format name the engine knows (`csv`, `mastodon_csv`,
    /// `json`, `mastodon_api_public`, `rapidblock.csv`, `rapidblock.json`, `text`), or `None`
    /// to detect it. `bearer`: a token sent as `Authorization: Bearer`, stored sealed.
    Url {
        /// The URL.
        url: String,
        /// The format, or `None` to detect.
        format: Option<String>,
        /// An optional bearer credential (sealed in the secrets store).
        bearer: Option<String>,
    },
    /// A connected member instance (by instance id). `admin`: read
    /// `GET /api/v1/admin/domain_blocks` with the instance's stored token; otherwise the public
    /// `GET /api/v1/instance/domain_blocks`.
    Instance {
        /// The instance id (`guildhall_db::instances::Instance::id`).
        instance_id: i64,
        /// Use the admin API (full, unobfuscated list) rather than the public list.
        admin: bool,
    },
    /// Entries given by [`upload_source`]; `format` as for `Url`.
    Upload {
        /// The format, or `None` to detect.
        format: Option<String>,
    },
    /// Another Guildhall's change feed URL (as served from [`crate::feed`]); `token` for a
    /// token-protected list (sent as `Authorization: Bearer`, stored sealed).
    Feed {
        /// The feed URL.
        url: String,
        /// The list's feed token, if it is not public.
        token: Option<String>,
    },
}

/// A source to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSource {
    /// Shown name (1–200 characters).
    pub name: String,
    /// Where it comes from.
    pub spec: SourceSpec,
    /// How often it is refreshed (at least [`MIN_REFRESH`]; ignored for uploads).
    pub refresh_every: Duration,
}

/// A source's health, from its last refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Never refreshed yet.
    New,
    /// The last refresh succeeded without dropped rows.
    Ok,
    /// The last refresh succeeded but dropped bad rows (see [`Source::problems`]).
    Warnings,
    /// The last refresh failed (see [`Source::last_error`]); the last good state is kept.
    Error,
}

impl Health {
    fn as_str(self) -> &'static str {
        match self {
            Health::New => "new",
            Health::Ok => "ok",
            Health::Warnings => "warnings",
            Health::Error => "error",
        }
    }

    fn parse(s: &str) -> Result<Health> {
        Ok(match s {
            "new" => Health::New,
            "ok" => Health::Ok,
            "warnings" => Health::Warnings,
            "error" => Health::Error,
            other => return Err(corrupt("lists_sources.health", other)),
        })
    }
}

/// A problem the engine found in a source's input (the row was dropped or changed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemRecord {
    /// Where: `line 12`, `item 3`, or empty for the whole input.
    pub location: String,
    /// `info`, `warning` or `error` (error: the row was dropped).
    pub level: String,
    /// What is wrong.
    pub message: String,
}

/// A source as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Source {
    /// Its id.
    pub id: i64,
    /// The organisation owning it.
    pub org_id: OrgId,
    /// Shown name.
    pub name: String,
    /// Kind.
    pub kind: SourceKind,
    /// The URL (url and feed kinds).
    pub url: Option<String>,
    /// The instance (instance kind).
    pub instance_id: Option<i64>,
    /// Whether the instance's admin list is read (else its public list).
    pub instance_admin: bool,
    /// The format override, if any.
    pub format: Option<String>,
    /// Refresh interval in seconds.
    pub refresh_secs: i64,
    /// The ETag of the last good fetch.
    pub etag: Option<String>,
    /// The Last-Modified of the last good fetch.
    pub last_modified: Option<String>,
    /// The change-feed cursor reached (feed kind).
    pub feed_cursor: Option<i64>,
    /// Entries in the current state.
    pub entry_count: i64,
    /// Health.
    pub health: Health,
    /// The last refresh's error, when it failed.
    pub last_error: Option<String>,
    /// Problems of the last successful read.
    pub problems: Vec<ProblemRecord>,
    /// When a refresh was last attempted.
    pub last_attempt_at: Option<Timestamp>,
    /// When a refresh last succeeded.
    pub last_success_at: Option<Timestamp>,
    /// When the state last changed.
    pub last_change_at: Option<Timestamp>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// How a refresh ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshOutcome {
    /// New state stored with its changes.
    Changed,
    /// Read, but identical to the stored state (no changes stored).
    Unchanged,
    /// The server answered 304 Not Modified (no changes stored).
    NotModified,
    /// Failed; the last good state is kept.
    Failed,
}

impl RefreshOutcome {
    fn as_str(self) -> &'static str {
        match self {
            RefreshOutcome::Changed => "changed",
            RefreshOutcome::Unchanged => "unchanged",
            RefreshOutcome::NotModified => "not_modified",
            RefreshOutcome::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<RefreshOutcome> {
        Ok(match s {
            "changed" => RefreshOutcome::Changed,
            "unchanged" => RefreshOutcome::Unchanged,
            "not_modified" => RefreshOutcome::NotModified,
            "failed" => RefreshOutcome::Failed,
            other => return Err(corrupt("lists_source_refreshes.outcome", other)),
        })
    }
}

/// One refresh of a source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refresh {
    /// Its id (the changes it stored carry it).
    pub id: i64,
    /// The source.
    pub source_id: i64,
    /// When.
    pub at: Timestamp,
    /// How it ended.
    pub outcome: RefreshOutcome,
    /// Entries added.
    pub added: i64,
    /// Entries changed.
    pub changed: i64,
    /// Entries removed.
    pub removed: i64,
    /// The error (failed refreshes).
    pub error: Option<String>,
    /// The input's problems (line numbers), when it was read.
    pub problems: Vec<ProblemRecord>,
}

/// One stored change of a source's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceChange {
    /// Its id (increasing).
    pub id: i64,
    /// The refresh that found it.
    pub refresh_id: i64,
    /// The domain.
    pub domain: String,
    /// What happened.
    pub op: ChangeOp,
    /// The entry before (change, remove).
    pub before: Option<Entry>,
    /// The entry after (add, change).
    pub after: Option<Entry>,
}

/// The stored state of a source: its entries and its obfuscated rows (kept for digest
/// matching in the merge).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    #[serde(default, rename = "e")]
    pub entries: Vec<Entry>,
    #[serde(default, rename = "o")]
    pub obfuscated: Vec<(Entry, Option<String>)>,
}

impl Snapshot {
    pub(crate) fn of(list: &Blocklist) -> Snapshot {
        Snapshot {
            entries: list.entries.iter().map(Entry::from).collect(),
            obfuscated: list
                .obfuscated
                .iter()
                .map(|o| (Entry::from(&o.entry), o.digest.clone()))
                .collect(),
        }
    }

    pub(crate) fn parse(text: &str) -> Result<Snapshot> {
        if text.is_empty() {
            return Ok(Snapshot::default());
        }
        from_json("lists_sources.snapshot", text)
    }

    pub(crate) fn to_blocklist(&self, origin: &str) -> Blocklist {
        Blocklist {
            origin: origin.to_string(),
            entries: self.entries.iter().map(Into::into).collect(),
            obfuscated: self
                .obfuscated
                .iter()
                .map(|(e, d)| ObfuscatedEntry {
                    entry: e.into(),
                    digest: d.clone(),
                    location: Location::File,
                })
                .collect(),
            problems: Vec::new(),
        }
    }
}

#[derive(sqlx::FromRow)]
struct SourceRow {
    id: i64,
    org_id: i64,
    name: String,
    kind: String,
    url: Option<String>,
    instance_id: Option<i64>,
    instance_admin: bool,
    format: Option<String>,
    refresh_secs: i64,
    etag: Option<String>,
    last_modified: Option<String>,
    feed_cursor: Option<i64>,
    entry_count: i64,
    health: String,
    last_error: Option<String>,
    problems: Option<String>,
    last_attempt_at: Option<i64>,
    last_success_at: Option<i64>,
    last_change_at: Option<i64>,
    created_at: i64,
}

const SOURCE_COLUMNS: &str = "id, org_id, name, kind, url, instance_id, instance_admin, format, \
    refresh_secs, etag, last_modified, feed_cursor, entry_count, health, last_error, problems, \
    last_attempt_at, last_success_at, last_change_at, created_at";

fn source_from_row(r: SourceRow) -> Result<Source> {
    Ok(Source {
        id: r.id,
        org_id: OrgId(r.org_id),
        name: r.name,
        kind: SourceKind::parse(&r.kind)?,
        url: r.url,
        instance_id: r.instance_id,
        instance_admin: r.instance_admin,
        format: r.format,
        refresh_secs: r.refresh_secs,
        etag: r.etag,
        last_modified: r.last_modified,
        feed_cursor: r.feed_cursor,
        entry_count: r.entry_count,
        health: Health::parse(&r.health)?,
        last_error: r.last_error,
        problems: opt_json("lists_sources.problems", &r.problems)?.unwrap_or_default(),
        last_attempt_at: r.last_attempt_at.map(Timestamp),
        last_success_at: r.last_success_at.map(Timestamp),
        last_change_at: r.last_change_at.map(Timestamp),
        created_at: Timestamp(r.created_at),
    })
}

/// The `secrets` name of a source's credential (bearer token or feed token).
pub fn credential_secret_name(source: i64) -> String {
    format!("lists:source:{source}:credential")
}

fn check_format(f: &Option<String>) -> Result<Option<String>> {
    match f {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => Format::from_str(s)
            .map(|_| Some(s.trim().to_string()))
            .map_err(|e| ListsError::invalid("format", e.to_string())),
    }
}

fn check_url(field: &'static str, u: &str) -> Result<String> {
    let parsed = reqwest::Url::parse(u.trim())
        .map_err(|e| ListsError::invalid(field, format!("{u:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ListsError::invalid(field, "must be an http or https URL"));
    }
    Ok(parsed.to_string())
}

pub(crate) fn check_name(name: &str) -> Result<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 200 {
        return Err(ListsError::invalid("name", "must have 1 to 200 characters"));
    }
    Ok(n.to_string())
}

fn refresh_job(source: i64, gen: Option<i64>, at: Option<Timestamp>) -> NewJob {
    let key = match gen {
        Some(g) => format!("{REFRESH_JOB}:{source}:{g}"),
        None => format!("{REFRESH_JOB}:{source}:now"),
    };
    let mut j = NewJob::new(
        REFRESH_JOB,
        serde_json::json!({ "source_id": source, "gen": gen }),
    )
    .dedup(key)
    .max_attempts(3);
    if let Some(at) = at {
        j = j.run_at(at);
    }
    j
}

/// Creates a source of `org` and, except for uploads, enqueues its first refresh (which then
/// re-schedules itself every `refresh_every`). Credentials are sealed with `keys`.
/// Audit: `lists.source.create`.
pub async fn create_source(
    db: &Db,
    keys: &Keyring,
    org: OrgId,
    actor: &Actor,
    new: &NewSource,
) -> Result<Source> {
    let name = check_name(&new.name)?;
    if new.refresh_every < MIN_REFRESH {
        return Err(ListsError::invalid(
            "refresh_every",
            format!("must be at least {} seconds", MIN_REFRESH.as_secs()),
        ));
    }
    let (kind, url, instance, admin, format, credential) = match &new.spec {
        SourceSpec::Url {
            url,
            format,
            bearer,
        } => (
            SourceKind::Url,
            Some(check_url("url", url)?),
            None,
            false,
            check_format(format)?,
            bearer.clone(),
        ),
        SourceSpec::Instance { instance_id, admin } => {
            let inst = db
                .instance(*instance_id)
                .await?
                .ok_or(ListsError::NotFound("instance"))?;
            // The admin list is read with the instance's stored token: only its own
            // organisation or its moderation co-op may do that. Anyone else gets the same
            // answer as for a missing instance, so its existence is not revealed.
            if *admin && !may_read_admin_list(db, org, &inst).await? {
                return Err(ListsError::NotFound("instance"));
            }
            (
                SourceKind::Instance,
                Some(inst.base_url),
                Some(*instance_id),
                *admin,
                None,
                None,
            )
        }
        SourceSpec::Upload { format } => (
            SourceKind::Upload,
            None,
            None,
            false,
            check_format(format)?,
            None,
        ),
        SourceSpec::Feed { url, token } => (
            SourceKind::Feed,
            Some(check_url("url", url)?),
            None,
            false,
            None,
            token.clone(),
        ),
    };
    let secs = i64::try_from(new.refresh_every.as_secs()).unwrap_or(i64::MAX);
    let mut tx = db.begin().await?;
    let id: i64 = on_tx!(&mut tx, c => sqlx::query_scalar(
        "INSERT INTO lists_sources (org_id, name, kind, url, instance_id, instance_admin, format, \
         refresh_secs, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id")
        .bind(org.0).bind(&name).bind(kind.as_str()).bind(&url).bind(instance).bind(admin)
        .bind(&format).bind(secs).bind(now())
        .fetch_one(c).await)?;
    if kind != SourceKind::Upload {
        Db::enqueue_in(&mut tx, &refresh_job(id, Some(0), None)).await?;
    }
    append_in(
        &mut tx,
        &actor.audit(
            "lists.source.create",
            Some(org),
            serde_json::json!({"source_id": id, "name": name, "kind": kind.as_str(), "url": url,
                "instance_id": instance, "admin": admin}),
        ),
    )
    .await?;
    tx.commit().await?;
    if let Some(cred) = credential.filter(|c| !c.trim().is_empty()) {
        db.put_secret(
            keys,
            &credential_secret_name(id),
            &SecretValue::new(cred.trim().as_bytes().to_vec()),
        )
        .await?;
    }
    source(db, org, id).await
}

/// Whether `org` may read `inst`'s admin domain-block list: the instance belongs to `org`, or
/// `org` is the co-op the instance is linked to for moderation (`moderation_links`).
async fn may_read_admin_list(
    db: &Db,
    org: OrgId,
    inst: &guildhall_db::instances::Instance,
) -> Result<bool> {
    if inst.org_id == org {
        return Ok(true);
    }
    let linked: i64 = on_pool!(db, p => sqlx::query_scalar(
        "SELECT COUNT(*) FROM moderation_links WHERE instance_id = $1 AND coop_org_id = $2")
        .bind(inst.id).bind(org.0)
        .fetch_one(p).await)
    .map_err(guildhall_db::DbError::from)?;
    Ok(linked > 0)
}

pub(crate) async fn source_any(db: &Db, id: i64) -> Result<Source> {
    let sql = format!("SELECT {SOURCE_COLUMNS} FROM lists_sources WHERE id = $1");
    let row: Option<SourceRow> =
        on_pool!(db, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await)
            .map_err(guildhall_db::DbError::from)?;
    source_from_row(row.ok_or(ListsError::NotFound("source"))?)
}

/// A source of `org` (another organisation's source is [`ListsError::NotFound`]).
pub async fn source(db: &Db, org: OrgId, id: i64) -> Result<Source> {
    let s = source_any(db, id).await?;
    if s.org_id != org {
        return Err(ListsError::NotFound("source"));
    }
    Ok(s)
}

/// The sources of `org`, by id (built-in decisions sources included).
pub async fn sources(db: &Db, org: OrgId) -> Result<Vec<Source>> {
    let sql = format!("SELECT {SOURCE_COLUMNS} FROM lists_sources WHERE org_id = $1 ORDER BY id");
    let rows: Vec<SourceRow> =
        on_pool!(db, p => sqlx::query_as(&sql).bind(org.0).fetch_all(p).await)
            .map_err(guildhall_db::DbError::from)?;
    rows.into_iter().map(source_from_row).collect()
}

/// Deletes a source of `org` (its history goes with it; lists using it are rebuilt without
/// it). Audit: `lists.source.delete`.
pub async fn delete_source(db: &Db, org: OrgId, actor: &Actor, id: i64) -> Result<()> {
    let s = source(db, org, id).await?;
    let mut tx = db.begin().await?;
    mark_lists_dirty(&mut tx, id).await?;
    on_tx!(&mut tx, c => sqlx::query("DELETE FROM lists_sources WHERE id = $1")
        .bind(id).execute(c).await.map(|r| r.rows_affected()))
    .map_err(guildhall_db::DbError::from)?;
    append_in(
        &mut tx,
        &actor.audit(
            "lists.source.delete",
            Some(org),
            serde_json::json!({"source_id": id, "name": s.name}),
        ),
    )
    .await?;
    tx.commit().await?;
    db.delete_secret(&credential_secret_name(id)).await?;
    Ok(())
}

/// Asks for a refresh of a source of `org` now (a job; `false` if one is already queued).
pub async fn request_refresh(db: &Db, org: OrgId, id: i64) -> Result<bool> {
    let s = source(db, org, id).await?;
    if matches!(s.kind, SourceKind::Upload | SourceKind::Decisions) {
        return Err(ListsError::invalid(
            "source",
            "uploaded and decisions sources change only when given new entries",
        ));
    }
    Ok(db.enqueue(&refresh_job(id, None, None)).await?.is_some())
}

/// The current entries of a source of `org`, by domain.
pub async fn source_entries(db: &Db, org: OrgId, id: i64) -> Result<Vec<Entry>> {
    source(db, org, id).await?;
    let mut e = load_snapshot(db, id).await?.entries;
    e.sort_by(|a, b| a.domain.cmp(&b.domain));
    Ok(e)
}

pub(crate) async fn load_snapshot(db: &Db, id: i64) -> Result<Snapshot> {
    let text: Option<String> = on_pool!(db, p => sqlx::query_scalar(
        "SELECT snapshot FROM lists_sources WHERE id = $1").bind(id).fetch_optional(p).await)
    .map_err(guildhall_db::DbError::from)?;
    Snapshot::parse(&text.ok_or(ListsError::NotFound("source"))?)
}

#[derive(sqlx::FromRow)]
struct RefreshRow {
    id: i64,
    source_id: i64,
    at: i64,
    outcome: String,
    added: i64,
    changed: i64,
    removed: i64,
    error: Option<String>,
    problems: Option<String>,
}

fn refresh_from_row(r: RefreshRow) -> Result<Refresh> {
    Ok(Refresh {
        id: r.id,
        source_id: r.source_id,
        at: Timestamp(r.at),
        outcome: RefreshOutcome::parse(&r.outcome)?,
        added: r.added,
        changed: r.changed,
        removed: r.removed,
        error: r.error,
        problems: opt_json("lists_source_refreshes.problems", &r.problems)?.unwrap_or_default(),
    })
}

/// The refreshes of a source of `org`, newest first, at most `limit`.
pub async fn refreshes(db: &Db, org: OrgId, id: i64, limit: u32) -> Result<Vec<Refresh>> {
    source(db, org, id).await?;
    let rows: Vec<RefreshRow> = on_pool!(db, p => sqlx::query_as(
        "SELECT id, source_id, at, outcome, added, changed, removed, error, problems \
         FROM lists_source_refreshes WHERE source_id = $1 ORDER BY id DESC LIMIT $2")
        .bind(id).bind(i64::from(limit)).fetch_all(p).await)
    .map_err(guildhall_db::DbError::from)?;
    rows.into_iter().map(refresh_from_row).collect()
}

/// The stored changes of a source of `org`: of one refresh (`refresh`), or all, oldest first,
/// with ids above `after` (for paging), at most `limit`.
pub async fn source_changes(
    db: &Db,
    org: OrgId,
    id: i64,
    refresh: Option<i64>,
    after: Option<i64>,
    limit: u32,
) -> Result<Vec<SourceChange>> {
    source(db, org, id).await?;
    type Row = (i64, i64, String, String, Option<String>, Option<String>);
    let rows: Vec<Row> = on_pool!(db, p => sqlx::query_as(
        "SELECT id, refresh_id, domain, op, before_json, after_json FROM lists_source_changes \
         WHERE source_id = $1 AND ($2 IS NULL OR refresh_id = $2) AND id > $3 \
         ORDER BY id LIMIT $4")
        .bind(id).bind(refresh).bind(after.unwrap_or(0)).bind(i64::from(limit))
        .fetch_all(p).await)
    .map_err(guildhall_db::DbError::from)?;
    rows.into_iter()
        .map(|r| {
            Ok(SourceChange {
                id: r.0,
                refresh_id: r.1,
                domain: r.2,
                op: ChangeOp::parse(&r.3)?,
                before: opt_json("lists_source_changes.before_json", &r.4)?,
                after: opt_json("lists_source_changes.after_json", &r.5)?,
            })
        })
        .collect()
}

fn problems_of(list: &Blocklist) -> Vec<ProblemRecord> {
    list.problems
        .iter()
        .map(|p| ProblemRecord {
            location: match p.location {
                Location::File => String::new(),
                Location::Line(n) => format!("line {n}"),
                Location::Item(n) => format!("item {n}"),
            },
            level: p.level.to_string(),
            message: p.message.clone(),
        })
        .collect()
}

/// Gives an upload source of `org` new contents: read by the engine (format as configured or
/// detected), diffed against the stored state, changes stored. A partly bad file keeps its
/// good rows; the problems (with line numbers) are in the returned refresh and the source's
/// health. A file with no usable row at all is refused as a failed refresh.
pub async fn upload_source(
    db: &Db,
    org: OrgId,
    actor: &Actor,
    id: i64,
    bytes: &[u8],
) -> Result<Refresh> {
    let s = source(db, org, id).await?;
    if s.kind != SourceKind::Upload {
        return Err(ListsError::invalid("source", "not an upload source"));
    }
    let format = s.format.as_deref().and_then(|f| Format::from_str(f).ok());
    let list = read_bytes(bytes, &s.name, format);
    store_read(db, &s, list, None, None, None, Some(actor)).await
}

/// The audit entry of an upload by `actor`: what the refresh `rid` found.
fn upload_entry(
    actor: &Actor,
    s: &Source,
    rid: i64,
    outcome: RefreshOutcome,
    (added, changed, removed): (i64, i64, i64),
    problems: usize,
) -> guildhall_db::audit::NewAuditEntry {
    actor.audit(
        "lists.source.upload",
        Some(s.org_id),
        serde_json::json!({"source_id": s.id, "refresh_id": rid, "outcome": outcome,
            "added": added, "changed": changed, "removed": removed, "problems": problems}),
    )
}

enum Fetched {
    NotModified,
    List {
        list: Blocklist,
        etag: Option<String>,
        last_modified: Option<String>,
        cursor: Option<i64>,
    },
}

/// Refreshes one source now (what the `lists.refresh` job runs; no tenant check). A failure
/// is recorded (health `error`, last good state kept) and returned as a `Failed` refresh, not
/// as an `Err`; `Err` is for database failures.
pub async fn refresh_source(svc: &Services, id: i64) -> Result<Refresh> {
    let s = source_any(&svc.db, id).await?;
    let fetched = match s.kind {
        SourceKind::Url => fetch_url(svc, &s).await,
        SourceKind::Instance => fetch_instance(svc, &s).await,
        SourceKind::Feed => fetch_feed(svc, &s).await,
        SourceKind::Upload | SourceKind::Decisions => {
            return Err(ListsError::invalid(
                "source",
                "uploaded and decisions sources are not fetched",
            ))
        }
    };
    match fetched {
        Ok(Fetched::NotModified) => record_not_modified(&svc.db, &s).await,
        Ok(Fetched::List {
            list,
            etag,
            last_modified,
            cursor,
        }) => store_read(&svc.db, &s, list, etag, last_modified, cursor, None).await,
        Err(message) => record_failure(&svc.db, &s, &message, None).await,
    }
}

async fn credential(svc: &Services, id: i64) -> Result<Option<String>> {
    Ok(svc
        .db
        .get_secret(&svc.keyring, &credential_secret_name(id))
        .await?
        .and_then(|v| v.expose_str().map(str::to_owned)))
}

/// The client for URL and feed sources, with the outbound guard of `svc.client.outbound`.
fn http_client(svc: &Services) -> std::result::Result<reqwest::Client, String> {
    let builder = reqwest::Client::builder()
        .timeout(svc.client.timeout)
        .connect_timeout(svc.client.connect_timeout)
        .user_agent(svc.client.user_agent.clone());
    net::apply(builder, svc.client.outbound)
        .build()
        .map_err(|e| format!("could not set up the HTTP client: {e}"))
}

/// The pre-flight check of a user-typed URL (IP literals; names are checked on resolution).
fn check_outbound(svc: &Services, url: &reqwest::Url) -> std::result::Result<(), String> {
    net::check_url(url, svc.client.outbound).map_err(|e| format!("{url}: {e}"))
}

async fn read_body(url: &str, mut resp: reqwest::Response) -> std::result::Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_SOURCE_BYTES {
                    return Err(format!("{url}: larger than {MAX_SOURCE_BYTES} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(format!("{url}: reading the body failed: {e}")),
        }
    }
}

async fn fetch_url(svc: &Services, s: &Source) -> std::result::Result<Fetched, String> {
    let url = s.url.clone().unwrap_or_default();
    let client = http_client(svc)?;
    let parsed = reqwest::Url::parse(&url).map_err(|e| format!("{url}: {e}"))?;
    check_outbound(svc, &parsed)?;
    let mut req = client.get(parsed);
    if let Some(e) = &s.etag {
        req = req.header(reqwest::header::IF_NONE_MATCH, e);
    }
    if let Some(m) = &s.last_modified {
        req = req.header(reqwest::header::IF_MODIFIED_SINCE, m);
    }
    if let Some(tok) = credential(svc, s.id).await.map_err(|e| e.to_string())? {
        req = req.bearer_auth(tok);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("{url}: request failed: {}", net::describe(&e)))?;
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(Fetched::NotModified);
    }
    if !status.is_success() {
        return Err(format!("{url}: HTTP status {status}"));
    }
    let header = |name: reqwest::header::HeaderName| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let etag = header(reqwest::header::ETAG);
    let last_modified = header(reqwest::header::LAST_MODIFIED);
    let body = read_body(&url, resp).await?;
    let format = s.format.as_deref().and_then(|f| Format::from_str(f).ok());
    Ok(Fetched::List {
        list: read_bytes(&body, &url, format),
        etag,
        last_modified,
        cursor: None,
    })
}

async fn fetch_instance(svc: &Services, s: &Source) -> std::result::Result<Fetched, String> {
    let inst_id = s
        .instance_id
        .ok_or_else(|| "the instance was removed".to_string())?;
    let inst = svc
        .db
        .instance(inst_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "the instance was removed".to_string())?;
    let origin = format!(
        "{} ({})",
        inst.base_url,
        if s.instance_admin { "admin" } else { "public" }
    );
    let bytes = if s.instance_admin {
        // Consent is checked again on every refresh: a co-op unlinked since (or a source made
        // before the check existed) no longer reads the admin list.
        if !may_read_admin_list(&svc.db, s.org_id, &inst)
            .await
            .map_err(|e| e.to_string())?
        {
            return Err("the instance was removed".to_string());
        }
        let token = svc
            .db
            .get_secret(
                &svc.keyring,
                &guildhall_db::instances::token_secret_name(inst.id),
            )
            .await
            .map_err(|e| e.to_string())?
            .and_then(|v| v.expose_str().map(str::to_owned))
            .ok_or_else(|| format!("{origin}: the instance is not connected (no token)"))?;
        let client = Client::new(&inst.base_url, Some(Secret::new(token)), svc.client.clone())
            .map_err(|e| e.to_string())?;
        let blocks = client
            .all_domain_blocks()
            .await
            .map_err(|e| e.to_string())?;
        serde_json::to_vec(&blocks).map_err(|e| e.to_string())?
    } else {
        let client =
            Client::new(&inst.base_url, None, svc.client.clone()).map_err(|e| e.to_string())?;
        let blocks = client
            .public_domain_blocks()
            .await
            .map_err(|e| e.to_string())?;
        serde_json::to_vec(&blocks).map_err(|e| e.to_string())?
    };
    let format = if s.instance_admin {
        Format::AdminJson
    } else {
        Format::PublicJson
    };
    let mut list = read_bytes(&bytes, &origin, Some(format));
    // The instance's moderators' notes are theirs: never stored or shown to the source's owner.
    for e in &mut list.entries {
        e.private_comment.clear();
    }
    for o in &mut list.obfuscated {
        o.entry.private_comment.clear();
    }
    Ok(Fetched::List {
        list,
        etag: None,
        last_modified: None,
        cursor: None,
    })
}

async fn fetch_feed(svc: &Services, s: &Source) -> std::result::Result<Fetched, String> {
    let base = s.url.clone().unwrap_or_default();
    let client = http_client(svc)?;
    let token = credential(svc, s.id).await.map_err(|e| e.to_string())?;
    let mut state: BTreeMap<String, Entry> = if s.feed_cursor.is_some() {
        load_snapshot(&svc.db, s.id)
            .await
            .map_err(|e| e.to_string())?
            .entries
            .into_iter()
            .map(|e| (e.domain.clone(), e))
            .collect()
    } else {
        BTreeMap::new()
    };
    let mut cursor = s.feed_cursor;
    for _page in 0..10_000 {
        let mut url = reqwest::Url::parse(&base).map_err(|e| format!("{base}: {e}"))?;
        if let Some(c) = cursor {
            url.query_pairs_mut().append_pair("since", &c.to_string());
        }
        check_outbound(svc, &url)?;
        let mut req = client.get(url.clone());
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{url}: request failed: {}", net::describe(&e)))?;
        if !resp.status().is_success() {
            return Err(format!("{url}: HTTP status {}", resp.status()));
        }
        let body = read_body(url.as_str(), resp).await?;
        let doc: FeedDocument = serde_json::from_slice(&body)
            .map_err(|e| format!("{url}: not a Guildhall change feed: {e}"))?;
        if let Some(snap) = doc.snapshot {
            state = snap.into_iter().map(|e| (e.domain.clone(), e)).collect();
        }
        for ch in doc.changes {
            match (ch.op, ch.entry) {
                (ChangeOp::Remove, _) => {
                    state.remove(&ch.domain);
                }
                (_, Some(e)) => {
                    state.insert(ch.domain.clone(), e);
                }
                (_, None) => {
                    return Err(format!(
                        "{url}: change {} of {} has no entry",
                        ch.seq, ch.domain
                    ))
                }
            }
        }
        cursor = Some(doc.cursor);
        if !doc.more {
            break;
        }
    }
    // Re-read through the engine's JSON reader: the same normalisation as every other source.
    let entries: Vec<guildhall_blocklist::BlockEntry> = state.values().map(Into::into).collect();
    let mut json = Vec::new();
    guildhall_blocklist::write::write_json(&mut json, &entries).map_err(|e| e.to_string())?;
    Ok(Fetched::List {
        list: read_bytes(&json, &base, Some(Format::AdminJson)),
        etag: None,
        last_modified: None,
        cursor,
    })
}

pub(crate) async fn insert_refresh(
    tx: &mut Tx,
    source: i64,
    outcome: RefreshOutcome,
    counts: (i64, i64, i64),
    error: Option<&str>,
    problems: Option<&str>,
) -> Result<i64> {
    Ok(on_tx!(tx, c => sqlx::query_scalar(
        "INSERT INTO lists_source_refreshes (source_id, at, outcome, added, changed, removed, \
         error, problems) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id")
        .bind(source).bind(now()).bind(outcome.as_str()).bind(counts.0).bind(counts.1)
        .bind(counts.2).bind(error).bind(problems)
        .fetch_one(c).await)
    .map_err(guildhall_db::DbError::from)?)
}

async fn record_not_modified(db: &Db, s: &Source) -> Result<Refresh> {
    let mut tx = db.begin().await?;
    let id = insert_refresh(
        &mut tx,
        s.id,
        RefreshOutcome::NotModified,
        (0, 0, 0),
        None,
        None,
    )
    .await?;
    let t = now();
    on_tx!(&mut tx, c => sqlx::query(
        "UPDATE lists_sources SET last_attempt_at = $1, last_success_at = $1, last_error = NULL, \
         health = CASE WHEN health = 'error' OR health = 'new' THEN 'ok' ELSE health END \
         WHERE id = $2")
        .bind(t).bind(s.id).execute(c).await.map(|r| r.rows_affected()))
    .map_err(guildhall_db::DbError::from)?;
    tx.commit().await?;
    one_refresh(db, id).await
}

/// Records a failed refresh (`upload`: the person whose upload failed, audited with it).
async fn record_failure(
    db: &Db,
    s: &Source,
    message: &str,
    upload: Option<&Actor>,
) -> Result<Refresh> {
    let mut tx = db.begin().await?;
    let id = insert_refresh(
        &mut tx,
        s.id,
        RefreshOutcome::Failed,
        (0, 0, 0),
        Some(message),
        None,
    )
    .await?;
    on_tx!(&mut tx, c => sqlx::query(
        "UPDATE lists_sources SET last_attempt_at = $1, health = 'error', last_error = $2 \
         WHERE id = $3")
        .bind(now()).bind(message).bind(s.id).execute(c).await.map(|r| r.rows_affected()))
    .map_err(guildhall_db::DbError::from)?;
    append_in(
        &mut tx,
        &Actor::worker().audit(
            "lists.source.refresh_failed",
            Some(s.org_id),
            serde_json::json!({"source_id": s.id, "name": s.name, "error": message}),
        ),
    )
    .await?;
    if let Some(actor) = upload {
        let entry = upload_entry(actor, s, id, RefreshOutcome::Failed, (0, 0, 0), 0);
        append_in(&mut tx, &entry).await?;
    }
    tx.commit().await?;
    one_refresh(db, id).await
}

async fn one_refresh(db: &Db, id: i64) -> Result<Refresh> {
    let row: RefreshRow = on_pool!(db, p => sqlx::query_as(
        "SELECT id, source_id, at, outcome, added, changed, removed, error, problems \
         FROM lists_source_refreshes WHERE id = $1")
        .bind(id).fetch_one(p).await)
    .map_err(guildhall_db::DbError::from)?;
    refresh_from_row(row)
}

/// Marks every list using `source` as needing a rebuild and enqueues the rebuilds.
pub(crate) async fn mark_lists_dirty(tx: &mut Tx, source: i64) -> Result<()> {
    let lists: Vec<(i64, i64)> = on_tx!(tx, c => sqlx::query_as(
        "UPDATE lists_lists SET dirty_gen = dirty_gen + 1 WHERE id IN \
         (SELECT list_id FROM lists_list_sources WHERE source_id = $1) RETURNING id, dirty_gen")
        .bind(source).fetch_all(c).await)
    .map_err(guildhall_db::DbError::from)?;
    for (l, gen) in lists {
        Db::enqueue_in(tx, &rebuild_job(l, gen)).await?;
    }
    Ok(())
}

/// The rebuild job for generation `gen` of a list's inputs (one live job per generation; a
/// job whose generation was already built does nothing).
pub(crate) fn rebuild_job(list: i64, gen: i64) -> NewJob {
    NewJob::new(REBUILD_JOB, serde_json::json!({ "list_id": list }))
        .dedup(format!("{REBUILD_JOB}:{list}:{gen}"))
}

/// The differences between two states, by domain.
pub(crate) fn diff_states(
    old: &[Entry],
    new: &[Entry],
) -> Vec<(String, ChangeOp, Option<Entry>, Option<Entry>)> {
    let old: BTreeMap<&str, &Entry> = old.iter().map(|e| (e.domain.as_str(), e)).collect();
    let new_map: BTreeMap<&str, &Entry> = new.iter().map(|e| (e.domain.as_str(), e)).collect();
    let mut out = Vec::new();
    for (d, n) in &new_map {
        match old.get(d) {
            None => out.push((d.to_string(), ChangeOp::Add, None, Some((*n).clone()))),
            Some(o) if o != n => out.push((
                d.to_string(),
                ChangeOp::Change,
                Some((*o).clone()),
                Some((*n).clone()),
            )),
            Some(_) => {}
        }
    }
    for (d, o) in &old {
        if !new_map.contains_key(d) {
            out.push((d.to_string(), ChangeOp::Remove, Some((*o).clone()), None));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Stores the result of a read: a failed refresh if nothing usable came out of an input with
/// errors; else the diff against the stored state as a refresh with its changes.
async fn store_read(
    db: &Db,
    s: &Source,
    list: Blocklist,
    etag: Option<String>,
    last_modified: Option<String>,
    cursor: Option<i64>,
    upload: Option<&Actor>,
) -> Result<Refresh> {
    let problems = problems_of(&list);
    if list.entries.is_empty() && list.obfuscated.is_empty() && list.error_count() > 0 {
        let first = list
            .problems
            .iter()
            .find(|p| p.level == Level::Error)
            .map(|p| p.to_string())
            .unwrap_or_default();
        return record_failure(db, s, &format!("no usable entry: {first}"), upload).await;
    }
    let old = load_snapshot(db, s.id).await?;
    let snap = Snapshot::of(&list);
    let changes = diff_states(&old.entries, &snap.entries);
    let obfuscated_changed = {
        let a: Vec<_> = old.obfuscated.iter().map(|(e, d)| (&e.domain, d)).collect();
        let b: Vec<_> = snap
            .obfuscated
            .iter()
            .map(|(e, d)| (&e.domain, d))
            .collect();
        a != b
    };
    let counts = changes.iter().fold((0, 0, 0), |acc, c| match c.1 {
        ChangeOp::Add => (acc.0 + 1, acc.1, acc.2),
        ChangeOp::Change => (acc.0, acc.1 + 1, acc.2),
        ChangeOp::Remove => (acc.0, acc.1, acc.2 + 1),
    });
    let outcome = if changes.is_empty() && !obfuscated_changed {
        RefreshOutcome::Unchanged
    } else {
        RefreshOutcome::Changed
    };
    let problems_json = if problems.is_empty() {
        None
    } else {
        Some(to_json(&problems)?)
    };
    let health = if list.error_count() > 0 {
        Health::Warnings
    } else {
        Health::Ok
    };
    let snapshot_text = to_json(&snap)?;
    let mut tx = db.begin().await?;
    let rid = insert_refresh(
        &mut tx,
        s.id,
        outcome,
        counts,
        None,
        problems_json.as_deref(),
    )
    .await?;
    insert_source_changes(&mut tx, s.id, rid, &changes).await?;
    let t = now();
    // An upload keeps the fetch validators of the source's URL, if it had one.
    let (etag, last_modified) = if upload.is_some() {
        (s.etag.clone(), s.last_modified.clone())
    } else {
        (etag, last_modified)
    };
    on_tx!(&mut tx, c => sqlx::query(
        "UPDATE lists_sources SET snapshot = CASE WHEN $1 THEN $2 ELSE snapshot END, \
         entry_count = $3, health = $4, last_error = NULL, problems = $5, last_attempt_at = $6, \
         last_success_at = $6, last_change_at = CASE WHEN $1 THEN $6 ELSE last_change_at END, \
         etag = $7, last_modified = $8, feed_cursor = COALESCE($9, feed_cursor) WHERE id = $10")
        .bind(outcome == RefreshOutcome::Changed).bind(&snapshot_text)
        .bind(i64::try_from(snap.entries.len()).unwrap_or(i64::MAX)).bind(health.as_str())
        .bind(&problems_json).bind(t).bind(&etag).bind(&last_modified).bind(cursor).bind(s.id)
        .execute(c).await.map(|r| r.rows_affected()))
    .map_err(guildhall_db::DbError::from)?;
    if outcome == RefreshOutcome::Changed {
        mark_lists_dirty(&mut tx, s.id).await?;
    }
    if let Some(actor) = upload {
        let entry = upload_entry(actor, s, rid, outcome, counts, problems.len());
        append_in(&mut tx, &entry).await?;
    }
    tx.commit().await?;
    one_refresh(db, rid).await
}

pub(crate) async fn insert_source_changes(
    tx: &mut Tx,
    source: i64,
    refresh: i64,
    changes: &[(String, ChangeOp, Option<Entry>, Option<Entry>)],
) -> Result<()> {
    const CHUNK: usize = 64;
    for chunk in changes.chunks(CHUNK) {
        let mut rows = Vec::with_capacity(chunk.len());
        for (d, op, b, a) in chunk {
            rows.push((
                d.as_str(),
                op.as_str(),
                b.as_ref().map(to_json).transpose()?,
                a.as_ref().map(to_json).transpose()?,
            ));
        }
        let mut sql = String::from(
            "INSERT INTO lists_source_changes (source_id, refresh_id, domain, op, before_json, \
             after_json) VALUES ",
        );
        for i in 0..rows.len() {
            let b = i * 4 + 3;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "($1, $2, ${}, ${}, ${}, ${})",
                b,
                b + 1,
                b + 2,
                b + 3
            ));
        }
        on_tx!(tx, c => {
            let mut q = sqlx::query(&sql).bind(source).bind(refresh);
            for r in &rows {
                q = q.bind(r.0).bind(r.1).bind(r.2.as_deref()).bind(r.3.as_deref());
            }
            q.execute(c).await.map(|r| r.rows_affected())
        })
        .map_err(guildhall_db::DbError::from)?;
    }
    Ok(())
}

/// The `lists.refresh` job: refreshes the source; a scheduled run (with a generation) then
/// schedules the next one after the source's interval. A run whose generation is stale (the
/// schedule was restarted) does nothing.
pub(crate) async fn run_refresh_job(svc: &Services, payload: &serde_json::Value) -> Result<()> {
    let id = payload
        .get("source_id")
        .and_then(|v| v.as_i64())
        .ok_or_else(|| ListsError::invalid("payload", "no source_id"))?;
    let gen = payload.get("gen").and_then(|v| v.as_i64());
    let s = match source_any(&svc.db, id).await {
        Ok(s) => s,
        Err(ListsError::NotFound(_)) => return Ok(()), // deleted meanwhile
        Err(e) => return Err(e),
    };
    if let Some(g) = gen {
        let current: i64 = on_pool!(&svc.db, p => sqlx::query_scalar(
            "SELECT schedule_gen FROM lists_sources WHERE id = $1").bind(id).fetch_one(p).await)
        .map_err(guildhall_db::DbError::from)?;
        if current != g {
            return Ok(());
        }
    }
    refresh_source(svc, s.id).await?;
    if let Some(g) = gen {
        let mut tx = svc.db.begin().await?;
        let n = on_tx!(&mut tx, c => sqlx::query(
            "UPDATE lists_sources SET schedule_gen = $1 WHERE id = $2 AND schedule_gen = $3")
            .bind(g + 1).bind(id).bind(g).execute(c).await.map(|r| r.rows_affected()))
        .map_err(guildhall_db::DbError::from)?;
        if n == 1 {
            let at = Timestamp::now().plus(Duration::from_secs(
                u64::try_from(s.refresh_secs).unwrap_or(3600),
            ));
            Db::enqueue_in(&mut tx, &refresh_job(id, Some(g + 1), Some(at))).await?;
        }
        tx.commit().await?;
    }
    Ok(())
}
