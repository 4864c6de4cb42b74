//! Lists: a consensus policy over chosen sources, its published state, every change with its
//! sequence number (the change-feed cursor) and the per-domain audit record, and review holds.
//!
//! A rebuild ([`rebuild_list`], job `lists.rebuild`, enqueued whenever one of the list's
//! sources changed or its policy changed) runs the engine's merge over the sources' current
//! states, diffs the result against the published state, and for each difference either
//! publishes it at once (the next sequence number) or, when the policy holds that kind of
//! change ([`HoldKind`]), stores it as `held` until a person approves ([`approve_change`]) or
//! rejects ([`reject_change`]) it. A rejected change is not proposed again until the merge
//! result for that domain differs from it.

use std::collections::{BTreeMap, HashMap};

use guildhall_blocklist::merge::{
    allow_set, ImportFields, MergeOptions, MergePlan, Merger, Outcome, SourceOptions, ThresholdType,
};
use guildhall_blocklist::{Blocklist, Severity};
use guildhall_core::{OrgId, Timestamp};
use guildhall_db::audit::append_in;
use guildhall_db::{on_pool, on_tx, Db, DbError, Tx};
use serde::{Deserialize, Serialize};

use crate::model::{
    corrupt, from_json, now, opt_json, severity_serde, to_json, Actor, ChangeOp, Entry, ListsError,
    Result,
};
use crate::sources::{check_name, diff_states, rebuild_job, Snapshot, SourceKind};

/// How overlapping blocks of one domain combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    /// Highest severity; flags OR-ed (FediBlockHole's default).
    #[default]
    Max,
    /// Lowest severity; flags AND-ed.
    Min,
}

/// How the threshold is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdKind {
    /// Sum of the trust weights of the sources naming the domain (count when all weights are 1).
    #[default]
    Count,
    /// Percentage of the total trust weight.
    Pct,
}

/// A kind of change a list may hold for a person's approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldKind {
    /// Any new domain.
    Add,
    /// Any change that makes a domain suspended (new suspend or raise to suspend).
    Suspend,
    /// A lowered severity.
    Downgrade,
    /// Any removal (retraction).
    Removal,
    /// Every change.
    Any,
}

impl HoldKind {
    fn matches(self, op: ChangeOp, before: Option<&Entry>, after: Option<&Entry>) -> bool {
        match self {
            HoldKind::Any => true,
            HoldKind::Add => op == ChangeOp::Add,
            HoldKind::Removal => op == ChangeOp::Remove,
            HoldKind::Suspend => {
                after.is_some_and(|a| a.severity == Severity::Suspend)
                    && before.is_none_or(|b| b.severity != Severity::Suspend)
            }
            HoldKind::Downgrade => {
                matches!((before, after), (Some(b), Some(a)) if a.severity < b.severity)
            }
        }
    }
}

/// A list's consensus policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Policy {
    /// `max` or `min`.
    #[serde(default)]
    pub plan: Plan,
    /// Keep a domain when its support is `>=` this (0 keeps everything).
    #[serde(default)]
    pub threshold: f64,
    /// Count (sum of weights) or percentage of the total weight.
    #[serde(default)]
    pub threshold_type: ThresholdKind,
    /// Subdomain-aware coverage (a parent block supports and covers its subdomains).
    #[serde(default)]
    pub subdomains: bool,
    /// Kinds of change held for approval.
    #[serde(default)]
    pub holds: Vec<HoldKind>,
}

/// One source of a list with its trust settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListSource {
    /// The source (of the list's organisation).
    pub source_id: i64,
    /// Trust weight (finite, ≥ 0).
    pub weight: f64,
    /// Severities above this are clamped to it.
    #[serde(with = "severity_serde")]
    pub max_severity: Severity,
    /// Used as an allowlist: its domains are removed from the result.
    pub allowlist: bool,
}

impl ListSource {
    /// A block source with weight 1 and no severity cap.
    pub fn new(source_id: i64) -> ListSource {
        ListSource {
            source_id,
            weight: 1.0,
            max_severity: Severity::Suspend,
            allowlist: false,
        }
    }
}

/// A list to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewList {
    /// Name, unique within the organisation.
    pub name: String,
    /// Description.
    pub description: String,
    /// Public (anyone may read its outputs and subscribe) or token-protected.
    pub public: bool,
    /// The policy.
    pub policy: Policy,
    /// Its sources, in merge order.
    pub sources: Vec<ListSource>,
}

/// A list as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct List {
    /// Its id.
    pub id: i64,
    /// The owning organisation.
    pub org_id: OrgId,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Public or token-protected.
    pub public: bool,
    /// Whether a feed token is set.
    pub has_token: bool,
    /// The policy.
    pub policy: Policy,
    /// Its sources, in merge order (the built-in decisions source excluded).
    pub sources: Vec<ListSource>,
    /// The last published sequence number (the change-feed cursor).
    pub seq: i64,
    /// Entries published.
    pub size: i64,
    /// Changes held for approval.
    pub held: i64,
    /// When it was last rebuilt.
    pub last_built_at: Option<Timestamp>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// Where a change stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeStatus {
    /// Published (it has a sequence number).
    Published,
    /// Waiting for a person's approval.
    Held,
    /// Rejected by a person.
    Rejected,
    /// Replaced by a newer change of the same domain before anyone decided.
    Superseded,
}

impl ChangeStatus {
    fn as_str(self) -> &'static str {
        match self {
            ChangeStatus::Published => "published",
            ChangeStatus::Held => "held",
            ChangeStatus::Rejected => "rejected",
            ChangeStatus::Superseded => "superseded",
        }
    }

    fn parse(s: &str) -> Result<ChangeStatus> {
        Ok(match s {
            "published" => ChangeStatus::Published,
            "held" => ChangeStatus::Held,
            "rejected" => ChangeStatus::Rejected,
            "superseded" => ChangeStatus::Superseded,
            other => return Err(corrupt("lists_changes.status", other)),
        })
    }
}

/// One source's vote on a domain, in an audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditSource {
    /// The source id.
    pub source_id: i64,
    /// Its name.
    pub name: String,
    /// The severity it gave (after its cap).
    #[serde(with = "severity_serde")]
    pub severity: Severity,
}

/// A coordinated-defederation outcome behind an entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRef {
    /// The proposal.
    pub proposal_id: i64,
    /// Votes for.
    pub yes: i64,
    /// Votes against.
    pub no: i64,
    /// Abstentions.
    pub abstain: i64,
    /// The evidence text.
    pub evidence: String,
    /// Evidence links.
    pub links: Vec<String>,
}

/// The per-domain audit record: which sources, which severities, the score; the evidence a
/// reviewer sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainAudit {
    /// Sources naming the domain.
    pub count: u32,
    /// `count / sources * 100`.
    pub percent: f64,
    /// Share of the total trust weight supporting it (0..=1).
    pub score: f64,
    /// The merged severity.
    #[serde(with = "severity_serde")]
    pub severity: Severity,
    /// What the merge made of it (`included`, …).
    pub outcome: String,
    /// Each source naming it.
    pub sources: Vec<AuditSource>,
    /// The defederation decision, when the entry comes from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionRef>,
}

/// A published entry with its audit record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListEntry {
    /// The entry.
    pub entry: Entry,
    /// Why it is there.
    pub audit: Option<DomainAudit>,
}

/// A change of a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListChange {
    /// Its id.
    pub id: i64,
    /// The list.
    pub list_id: i64,
    /// Its sequence number once published.
    pub seq: Option<i64>,
    /// The domain.
    pub domain: String,
    /// What it does.
    pub op: ChangeOp,
    /// The published entry before.
    pub before: Option<Entry>,
    /// The entry after.
    pub after: Option<Entry>,
    /// The audit record (evidence) at the time.
    pub audit: Option<DomainAudit>,
    /// Where it stands.
    pub status: ChangeStatus,
    /// Why it was held, rejected or superseded.
    pub reason: Option<String>,
    /// When it was computed.
    pub created_at: Timestamp,
    /// When a person (or the rebuild) decided it.
    pub decided_at: Option<Timestamp>,
    /// Who decided it.
    pub decided_by: Option<String>,
}

/// What a rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RebuildSummary {
    /// Changes published.
    pub published: usize,
    /// Changes newly held.
    pub held: usize,
    /// Held changes superseded.
    pub superseded: usize,
    /// The sequence number after.
    pub seq: i64,
}

fn check_policy(p: &Policy, sources: &[ListSource]) -> Result<()> {
    if !p.threshold.is_finite() || p.threshold < 0.0 {
        return Err(ListsError::invalid("threshold", "must be a number ≥ 0"));
    }
    if p.threshold_type == ThresholdKind::Pct && p.threshold > 100.0 {
        return Err(ListsError::invalid(
            "threshold",
            "a percentage is at most 100",
        ));
    }
    for s in sources {
        if !s.weight.is_finite() || s.weight < 0.0 {
            return Err(ListsError::invalid(
                "weight",
                format!("source {}: must be a number ≥ 0", s.source_id),
            ));
        }
    }
    let mut ids: Vec<i64> = sources.iter().map(|s| s.source_id).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(ListsError::invalid("sources", "a source is listed twice"));
    }
    Ok(())
}

async fn check_sources_owned(tx: &mut Tx, org: OrgId, sources: &[ListSource]) -> Result<()> {
    for s in sources {
        let owner: Option<(i64, String)> = on_tx!(tx, c => sqlx::query_as(
            "SELECT org_id, kind FROM lists_sources WHERE id = $1")
            .bind(s.source_id).fetch_optional(c).await)
        .map_err(DbError::from)?;
        match owner {
            Some((o, kind)) if o == org.0 && kind != "decisions" => {}
            _ => return Err(ListsError::NotFound("source")),
        }
    }
    Ok(())
}

async fn write_list_sources(tx: &mut Tx, list: i64, sources: &[ListSource]) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "DELETE FROM lists_list_sources WHERE list_id = $1 AND source_id NOT IN \
         (SELECT id FROM lists_sources WHERE kind = 'decisions')")
        .bind(list).execute(c).await.map(|r| r.rows_affected()))
    .map_err(DbError::from)?;
    for (i, s) in sources.iter().enumerate() {
        on_tx!(tx, c => sqlx::query(
            "INSERT INTO lists_list_sources (list_id, source_id, weight, max_severity, allowlist, \
             position) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(list).bind(s.source_id).bind(s.weight).bind(s.max_severity.as_str())
            .bind(s.allowlist).bind(i64::try_from(i).unwrap_or(0))
            .execute(c).await.map(|r| r.rows_affected()))
        .map_err(DbError::from)?;
    }
    Ok(())
}

/// Creates a list of `org` over sources of `org` and enqueues its first rebuild.
/// Audit: `lists.list.create`.
pub async fn create_list(db: &Db, org: OrgId, actor: &Actor, new: &NewList) -> Result<List> {
    let name = check_name(&new.name)?;
    check_policy(&new.policy, &new.sources)?;
    let policy = to_json(&new.policy)?;
    let mut tx = db.begin().await?;
    check_sources_owned(&mut tx, org, &new.sources).await?;
    let id: i64 = on_tx!(&mut tx, c => sqlx::query_scalar(
        "INSERT INTO lists_lists (org_id, name, description, public, policy, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id")
        .bind(org.0).bind(&name).bind(new.description.trim()).bind(new.public).bind(&policy)
        .bind(now()).fetch_one(c).await)
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            ListsError::Conflict(format!("a list named {name:?} exists"))
        }
        _ => ListsError::Db(DbError::from(e)),
    })?;
    write_list_sources(&mut tx, id, &new.sources).await?;
    Db::enqueue_in(&mut tx, &rebuild_job(id, 0)).await?;
    append_in(
        &mut tx,
        &actor.audit(
            "lists.list.create",
            Some(org),
            serde_json::json!({"list_id": id, "name": name, "public": new.public,
                "policy": new.policy, "sources": new.sources}),
        ),
    )
    .await?;
    tx.commit().await?;
    list(db, Some(org), id).await
}

/// Changes a list's policy and sources (owner only); the list is rebuilt. Audit:
/// `lists.list.policy` with before and after.
pub async fn update_list(
    db: &Db,
    org: OrgId,
    actor: &Actor,
    id: i64,
    policy: &Policy,
    sources: &[ListSource],
) -> Result<List> {
    let before = owned_list(db, org, id).await?;
    check_policy(policy, sources)?;
    let mut tx = db.begin().await?;
    check_sources_owned(&mut tx, org, sources).await?;
    let gen: i64 = on_tx!(&mut tx, c => sqlx::query_scalar(
        "UPDATE lists_lists SET policy = $1, dirty_gen = dirty_gen + 1 WHERE id = $2 \
         RETURNING dirty_gen")
        .bind(to_json(policy)?).bind(id).fetch_one(c).await)
    .map_err(DbError::from)?;
    write_list_sources(&mut tx, id, sources).await?;
    Db::enqueue_in(&mut tx, &rebuild_job(id, gen)).await?;
    let mut entry = actor.audit(
        "lists.list.policy",
        Some(org),
        serde_json::json!({"list_id": id, "policy": policy, "sources": sources}),
    );
    entry.before = Some(
        serde_json::json!({"list_id": id, "policy": before.policy, "sources": before.sources}),
    );
    append_in(&mut tx, &entry).await?;
    tx.commit().await?;
    list(db, Some(org), id).await
}

/// Makes a list public or token-protected (owner only). Audit: `lists.list.visibility`.
pub async fn set_list_public(
    db: &Db,
    org: OrgId,
    actor: &Actor,
    id: i64,
    public: bool,
) -> Result<List> {
    owned_list(db, org, id).await?;
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, c => sqlx::query("UPDATE lists_lists SET public = $1 WHERE id = $2")
        .bind(public).bind(id).execute(c).await.map(|r| r.rows_affected()))
    .map_err(DbError::from)?;
    append_in(
        &mut tx,
        &actor.audit(
            "lists.list.visibility",
            Some(org),
            serde_json::json!({"list_id": id, "public": public}),
        ),
    )
    .await?;
    tx.commit().await?;
    list(db, Some(org), id).await
}

/// Creates (replacing any earlier one) the list's feed token, returned once; only its SHA-256
/// is stored. Readers of a token-protected list present it (see [`crate::feed::Access`]).
/// Audit: `lists.list.token`.
pub async fn new_feed_token(db: &Db, org: OrgId, actor: &Actor, id: i64) -> Result<String> {
    owned_list(db, org, id).await?;
    let token = format!(
        "ghl_{}",
        guildhall_mastodon::random_token().map_err(ListsError::Instance)?
    );
    let hash = crate::model::sha256_hex(token.as_bytes());
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, c => sqlx::query("UPDATE lists_lists SET token_hash = $1 WHERE id = $2")
        .bind(&hash).bind(id).execute(c).await.map(|r| r.rows_affected()))
    .map_err(DbError::from)?;
    append_in(
        &mut tx,
        &actor.audit(
            "lists.list.token",
            Some(org),
            serde_json::json!({"list_id": id}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(token)
}

/// Deletes a list of `org` (its changes, subscriptions and decisions source go with it).
/// Audit: `lists.list.delete`.
pub async fn delete_list(db: &Db, org: OrgId, actor: &Actor, id: i64) -> Result<()> {
    let l = owned_list(db, org, id).await?;
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, c => sqlx::query(
        "DELETE FROM lists_sources WHERE kind = 'decisions' AND id IN \
         (SELECT source_id FROM lists_list_sources WHERE list_id = $1)")
        .bind(id).execute(c).await.map(|r| r.rows_affected()))
    .map_err(DbError::from)?;
    on_tx!(&mut tx, c => sqlx::query("DELETE FROM lists_lists WHERE id = $1")
        .bind(id).execute(c).await.map(|r| r.rows_affected()))
    .map_err(DbError::from)?;
    append_in(
        &mut tx,
        &actor.audit(
            "lists.list.delete",
            Some(org),
            serde_json::json!({"list_id": id, "name": l.name}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
pub(crate) struct ListRow {
    pub id: i64,
    pub org_id: i64,
    pub name: String,
    pub description: String,
    pub public: bool,
    pub token_hash: Option<String>,
    pub policy: String,
    pub seq: i64,
    pub last_built_at: Option<i64>,
    pub created_at: i64,
}

const LIST_COLUMNS: &str =
    "id, org_id, name, description, public, token_hash, policy, seq, last_built_at, created_at";

pub(crate) async fn list_row(db: &Db, id: i64) -> Result<ListRow> {
    let sql = format!("SELECT {LIST_COLUMNS} FROM lists_lists WHERE id = $1");
    let row: Option<ListRow> =
        on_pool!(db, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await)
            .map_err(DbError::from)?;
    row.ok_or(ListsError::NotFound("list"))
}

async fn list_from_row(db: &Db, r: ListRow) -> Result<List> {
    type SrcRow = (i64, f64, String, bool);
    let srcs: Vec<SrcRow> = on_pool!(db, p => sqlx::query_as(
        "SELECT ls.source_id, ls.weight, ls.max_severity, ls.allowlist FROM lists_list_sources ls \
         JOIN lists_sources s ON s.id = ls.source_id \
         WHERE ls.list_id = $1 AND s.kind <> 'decisions' ORDER BY ls.position")
        .bind(r.id).fetch_all(p).await)
    .map_err(DbError::from)?;
    let (size, held): (i64, i64) = on_pool!(db, p => sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM lists_entries WHERE list_id = $1), \
         (SELECT COUNT(*) FROM lists_changes WHERE list_id = $1 AND status = 'held')")
        .bind(r.id).fetch_one(p).await)
    .map_err(DbError::from)?;
    Ok(List {
        id: r.id,
        org_id: OrgId(r.org_id),
        name: r.name,
        description: r.description,
        public: r.public,
        has_token: r.token_hash.is_some(),
        policy: from_json("lists_lists.policy", &r.policy)?,
        sources: srcs
            .into_iter()
            .map(|s| {
                Ok(ListSource {
                    source_id: s.0,
                    weight: s.1,
                    max_severity: Severity::parse(&s.2)
                        .ok_or_else(|| corrupt("lists_list_sources.max_severity", &s.2))?,
                    allowlist: s.3,
                })
            })
            .collect::<Result<_>>()?,
        seq: r.seq,
        size,
        held,
        last_built_at: r.last_built_at.map(Timestamp),
        created_at: Timestamp(r.created_at),
    })
}

/// A list as seen by `viewer`: its owner sees it; other organisations and anonymous readers
/// see it only if it is public. Otherwise [`ListsError::NotFound`].
pub async fn list(db: &Db, viewer: Option<OrgId>, id: i64) -> Result<List> {
    let r = list_row(db, id).await?;
    if !(r.public || viewer == Some(OrgId(r.org_id))) {
        return Err(ListsError::NotFound("list"));
    }
    list_from_row(db, r).await
}

/// A list owned by `org` (for changes): another organisation's list is `NotFound`, even a
/// public one.
pub(crate) async fn owned_list(db: &Db, org: OrgId, id: i64) -> Result<List> {
    let r = list_row(db, id).await?;
    if r.org_id != org.0 {
        return Err(ListsError::NotFound("list"));
    }
    list_from_row(db, r).await
}

/// The lists of `org`, by id.
pub async fn lists(db: &Db, org: OrgId) -> Result<Vec<List>> {
    let sql = format!("SELECT {LIST_COLUMNS} FROM lists_lists WHERE org_id = $1 ORDER BY id");
    let rows: Vec<ListRow> = on_pool!(db, p => sqlx::query_as(&sql).bind(org.0).fetch_all(p).await)
        .map_err(DbError::from)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(list_from_row(db, r).await?);
    }
    Ok(out)
}

/// Every public list (of any organisation), by id.
pub async fn public_lists(db: &Db) -> Result<Vec<List>> {
    let sql = format!("SELECT {LIST_COLUMNS} FROM lists_lists WHERE public ORDER BY id");
    let rows: Vec<ListRow> =
        on_pool!(db, p => sqlx::query_as(&sql).fetch_all(p).await).map_err(DbError::from)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(list_from_row(db, r).await?);
    }
    Ok(out)
}

/// The published entries of a list visible to `viewer` (see [`list`]), by domain, with their
/// audit records.
pub async fn list_entries(db: &Db, viewer: Option<OrgId>, id: i64) -> Result<Vec<ListEntry>> {
    list(db, viewer, id).await?;
    let rows: Vec<(String, Option<String>)> = on_pool!(db, p => sqlx::query_as(
        "SELECT entry, audit FROM lists_entries WHERE list_id = $1 ORDER BY domain")
        .bind(id).fetch_all(p).await)
    .map_err(DbError::from)?;
    rows.into_iter()
        .map(|(e, a)| {
            Ok(ListEntry {
                entry: from_json("lists_entries.entry", &e)?,
                audit: opt_json("lists_entries.audit", &a)?,
            })
        })
        .collect()
}

pub(crate) async fn published_entries(db: &Db, id: i64) -> Result<(Vec<Entry>, i64)> {
    // One statement: the entries and the sequence number from the same snapshot.
    let rows: Vec<(Option<String>, i64)> = on_pool!(db, p => sqlx::query_as(
        "SELECT e.entry, l.seq FROM lists_lists l LEFT JOIN lists_entries e ON e.list_id = l.id \
         WHERE l.id = $1 ORDER BY e.domain")
        .bind(id).fetch_all(p).await)
    .map_err(DbError::from)?;
    let seq = rows.first().map(|r| r.1).unwrap_or(0);
    let mut out = Vec::with_capacity(rows.len());
    for (e, _) in rows {
        if let Some(e) = e {
            out.push(from_json("lists_entries.entry", &e)?);
        }
    }
    Ok((out, seq))
}

type ChangeRow = (
    i64,
    i64,
    Option<i64>,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    i64,
    Option<i64>,
    Option<String>,
);

const CHANGE_COLUMNS: &str = "id, list_id, seq, domain, op, before_json, after_json, audit, \
    status, reason, created_at, decided_at, decided_by";

fn change_from_row(r: ChangeRow) -> Result<ListChange> {
    Ok(ListChange {
        id: r.0,
        list_id: r.1,
        seq: r.2,
        domain: r.3,
        op: ChangeOp::parse(&r.4)?,
        before: opt_json("lists_changes.before_json", &r.5)?,
        after: opt_json("lists_changes.after_json", &r.6)?,
        audit: opt_json("lists_changes.audit", &r.7)?,
        status: ChangeStatus::parse(&r.8)?,
        reason: r.9,
        created_at: Timestamp(r.10),
        decided_at: r.11.map(Timestamp),
        decided_by: r.12,
    })
}

/// Changes of a list visible to `viewer`, newest first: with `status` (or all), ids below
/// `before` (paging), at most `limit`. Held, rejected and superseded changes are shown to the
/// owner only.
pub async fn list_changes(
    db: &Db,
    viewer: Option<OrgId>,
    id: i64,
    status: Option<ChangeStatus>,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<ListChange>> {
    let l = list(db, viewer, id).await?;
    let owner = viewer == Some(l.org_id);
    let status = match (status, owner) {
        (s, true) => s,
        (None | Some(ChangeStatus::Published), false) => Some(ChangeStatus::Published),
        (Some(_), false) => return Ok(Vec::new()),
    };
    let sql = format!(
        "SELECT {CHANGE_COLUMNS} FROM lists_changes WHERE list_id = $1 \
         AND ($2 IS NULL OR status = $2) AND id < $3 ORDER BY id DESC LIMIT $4"
    );
    let rows: Vec<ChangeRow> = on_pool!(db, p => sqlx::query_as(&sql)
        .bind(id).bind(status.map(|s| s.as_str())).bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit)).fetch_all(p).await)
    .map_err(DbError::from)?;
    rows.into_iter().map(change_from_row).collect()
}

/// The changes of a list of `org` waiting for approval, by domain.
pub async fn held_changes(db: &Db, org: OrgId, id: i64) -> Result<Vec<ListChange>> {
    owned_list(db, org, id).await?;
    let sql = format!(
        "SELECT {CHANGE_COLUMNS} FROM lists_changes WHERE list_id = $1 AND status = 'held' \
         ORDER BY domain"
    );
    let rows: Vec<ChangeRow> = on_pool!(db, p => sqlx::query_as(&sql).bind(id).fetch_all(p).await)
        .map_err(DbError::from)?;
    rows.into_iter().map(change_from_row).collect()
}

async fn change_row(db: &Db, change: i64) -> Result<ListChange> {
    let sql = format!("SELECT {CHANGE_COLUMNS} FROM lists_changes WHERE id = $1");
    let row: Option<ChangeRow> =
        on_pool!(db, p => sqlx::query_as(&sql).bind(change).fetch_optional(p).await)
            .map_err(DbError::from)?;
    change_from_row(row.ok_or(ListsError::NotFound("change"))?)
}

/// Approves a held change of a list of `org`: it is published with the next sequence number.
/// If the published entry moved on since it was held, the change is superseded instead
/// ([`ListsError::Conflict`]) and the list rebuilt. Audit: `lists.change.approve`.
pub async fn approve_change(db: &Db, org: OrgId, actor: &Actor, change: i64) -> Result<ListChange> {
    let c = change_row(db, change).await?;
    owned_list(db, org, c.list_id).await?;
    if c.status != ChangeStatus::Held {
        return Err(ListsError::Conflict(format!(
            "change {change} is {}, not held",
            c.status.as_str()
        )));
    }
    let mut tx = db.begin().await?;
    let current: Option<String> = on_tx!(&mut tx, x => sqlx::query_scalar(
        "SELECT entry FROM lists_entries WHERE list_id = $1 AND domain = $2")
        .bind(c.list_id).bind(&c.domain).fetch_optional(x).await)
    .map_err(DbError::from)?;
    let current: Option<Entry> = opt_json("lists_entries.entry", &current)?;
    if current != c.before {
        on_tx!(&mut tx, x => sqlx::query(
            "UPDATE lists_changes SET status = 'superseded', reason = $1, decided_at = $2 \
             WHERE id = $3")
            .bind("the published entry changed before approval").bind(now()).bind(change)
            .execute(x).await.map(|r| r.rows_affected()))
        .map_err(DbError::from)?;
        let gen: i64 = on_tx!(&mut tx, x => sqlx::query_scalar(
            "UPDATE lists_lists SET dirty_gen = dirty_gen + 1 WHERE id = $1 RETURNING dirty_gen")
            .bind(c.list_id).fetch_one(x).await)
        .map_err(DbError::from)?;
        Db::enqueue_in(&mut tx, &rebuild_job(c.list_id, gen)).await?;
        tx.commit().await?;
        return Err(ListsError::Conflict(
            "the list changed since this change was held; it will be proposed again".into(),
        ));
    }
    let seq: i64 = on_tx!(&mut tx, x => sqlx::query_scalar(
        "UPDATE lists_lists SET seq = seq + 1 WHERE id = $1 RETURNING seq")
        .bind(c.list_id).fetch_one(x).await)
    .map_err(DbError::from)?;
    let audit = c.audit.as_ref().map(to_json).transpose()?;
    apply_entry(
        &mut tx,
        c.list_id,
        &c.domain,
        c.after.as_ref(),
        audit.as_deref(),
    )
    .await?;
    on_tx!(&mut tx, x => sqlx::query(
        "UPDATE lists_changes SET status = 'published', seq = $1, decided_at = $2, \
         decided_by = $3 WHERE id = $4")
        .bind(seq).bind(now()).bind(&actor.name).bind(change)
        .execute(x).await.map(|r| r.rows_affected()))
    .map_err(DbError::from)?;
    enqueue_plans(&mut tx, c.list_id).await?;
    append_in(
        &mut tx,
        &actor.audit(
            "lists.change.approve",
            Some(org),
            serde_json::json!({"list_id": c.list_id, "change_id": change, "seq": seq,
                "domain": c.domain, "op": c.op, "after": c.after}),
        ),
    )
    .await?;
    tx.commit().await?;
    change_row(db, change).await
}

/// Rejects a held change of a list of `org` (with a reason). It is not proposed again unless
/// the merge result for the domain changes. Audit: `lists.change.reject`.
pub async fn reject_change(
    db: &Db,
    org: OrgId,
    actor: &Actor,
    change: i64,
    reason: &str,
) -> Result<ListChange> {
    let c = change_row(db, change).await?;
    owned_list(db, org, c.list_id).await?;
    if c.status != ChangeStatus::Held {
        return Err(ListsError::Conflict(format!(
            "change {change} is {}, not held",
            c.status.as_str()
        )));
    }
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, x => sqlx::query(
        "UPDATE lists_changes SET status = 'rejected', reason = $1, decided_at = $2, \
         decided_by = $3 WHERE id = $4")
        .bind(reason.trim()).bind(now()).bind(&actor.name).bind(change)
        .execute(x).await.map(|r| r.rows_affected()))
    .map_err(DbError::from)?;
    append_in(
        &mut tx,
        &actor.audit(
            "lists.change.reject",
            Some(org),
            serde_json::json!({"list_id": c.list_id, "change_id": change, "domain": c.domain,
                "op": c.op, "reason": reason.trim()}),
        ),
    )
    .await?;
    tx.commit().await?;
    change_row(db, change).await
}

async fn apply_entry(
    tx: &mut Tx,
    list: i64,
    domain: &str,
    after: Option<&Entry>,
    audit: Option<&str>,
) -> Result<()> {
    match after {
        Some(e) => {
            on_tx!(tx, x => sqlx::query(
                "INSERT INTO lists_entries (list_id, domain, entry, audit) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (list_id, domain) DO UPDATE SET entry = excluded.entry, \
                 audit = excluded.audit")
                .bind(list).bind(domain).bind(to_json(e)?).bind(audit)
                .execute(x).await.map(|r| r.rows_affected()))
            .map_err(DbError::from)?;
        }
        None => {
            on_tx!(tx, x => sqlx::query(
                "DELETE FROM lists_entries WHERE list_id = $1 AND domain = $2")
                .bind(list).bind(domain).execute(x).await.map(|r| r.rows_affected()))
            .map_err(DbError::from)?;
        }
    }
    Ok(())
}

/// Enqueues a push plan for every instance subscribed to `list`.
pub(crate) async fn enqueue_plans(tx: &mut Tx, list: i64) -> Result<()> {
    let orgs: Vec<i64> = on_tx!(tx, x => sqlx::query_scalar(
        "SELECT org_id FROM lists_subscriptions WHERE list_id = $1")
        .bind(list).fetch_all(x).await)
    .map_err(DbError::from)?;
    for o in orgs {
        Db::enqueue_in(tx, &crate::push::plan_job(OrgId(o))).await?;
    }
    Ok(())
}

struct Merged {
    desired: BTreeMap<String, (Entry, DomainAudit)>,
}

async fn compute(db: &Db, l: &ListRow) -> Result<Merged> {
    let policy: Policy = from_json("lists_lists.policy", &l.policy)?;
    type Row = (i64, f64, String, bool, String, String, String);
    let rows: Vec<Row> = on_pool!(db, p => sqlx::query_as(
        "SELECT ls.source_id, ls.weight, ls.max_severity, ls.allowlist, s.kind, s.name, s.snapshot \
         FROM lists_list_sources ls JOIN lists_sources s ON s.id = ls.source_id \
         WHERE ls.list_id = $1 ORDER BY ls.position, ls.source_id")
        .bind(l.id).fetch_all(p).await)
    .map_err(DbError::from)?;
    let opts = MergeOptions {
        plan: match policy.plan {
            Plan::Max => MergePlan::Max,
            Plan::Min => MergePlan::Min,
        },
        threshold: policy.threshold,
        threshold_type: match policy.threshold_type {
            ThresholdKind::Count => ThresholdType::Count,
            ThresholdKind::Pct => ThresholdType::Pct,
        },
        import: ImportFields {
            public_comment: true,
            private_comment: false,
            reject_media: true,
            reject_reports: true,
            obfuscate: true,
        },
        subdomains: policy.subdomains,
        ..MergeOptions::default()
    };
    let mut merger = Merger::new(opts);
    let mut ids: Vec<(i64, String)> = Vec::new();
    let mut allow: Vec<Blocklist> = Vec::new();
    let mut decisions: Vec<Entry> = Vec::new();
    for (sid, weight, max_sev, is_allow, kind, name, snap) in rows {
        let snap = Snapshot::parse(&snap)?;
        if kind == SourceKind::Decisions.as_str() {
            decisions.extend(snap.entries);
            continue;
        }
        let bl = snap.to_blocklist(&name);
        if is_allow {
            allow.push(bl);
            continue;
        }
        let max_severity = Severity::parse(&max_sev)
            .ok_or_else(|| corrupt("lists_list_sources.max_severity", &max_sev))?;
        merger.add_owned(
            SourceOptions {
                name: name.clone(),
                weight,
                max_severity,
                import: None,
            },
            bl,
        );
        ids.push((sid, name));
    }
    let allow = allow_set(allow.iter(), &[]);
    let result = merger.finish(&allow);
    let mut audits: HashMap<&str, &guildhall_blocklist::merge::AuditRecord> = HashMap::new();
    for a in &result.audit {
        if a.outcome == Outcome::Included {
            audits.insert(a.domain.as_str(), a);
        }
    }
    let mut desired = BTreeMap::new();
    for e in &result.entries {
        let audit = match audits.get(e.domain.as_str()) {
            Some(a) => DomainAudit {
                count: a.count,
                percent: a.percent,
                score: a.score,
                severity: a.severity,
                outcome: a.outcome.to_string(),
                sources: a
                    .source_list()
                    .into_iter()
                    .filter_map(|(i, sev)| {
                        ids.get(i).map(|(sid, name)| AuditSource {
                            source_id: *sid,
                            name: name.clone(),
                            severity: sev,
                        })
                    })
                    .collect(),
                decision: None,
            },
            None => DomainAudit {
                count: 0,
                percent: 0.0,
                score: 0.0,
                severity: e.severity,
                outcome: "included".into(),
                sources: Vec::new(),
                decision: None,
            },
        };
        let mut entry = Entry::from(e);
        entry.private_comment.clear();
        desired.insert(e.domain.clone(), (entry, audit));
    }
    if !decisions.is_empty() {
        let refs = crate::defed::decision_refs(db, l.id).await?;
        for e in decisions {
            let decision = refs.get(&e.domain).cloned();
            let prev = desired.remove(&e.domain);
            let audit = DomainAudit {
                outcome: "decision".into(),
                severity: e.severity,
                decision,
                ..prev.map(|p| p.1).unwrap_or(DomainAudit {
                    count: 0,
                    percent: 0.0,
                    score: 0.0,
                    severity: e.severity,
                    outcome: String::new(),
                    sources: Vec::new(),
                    decision: None,
                })
            };
            desired.insert(e.domain.clone(), (e, audit));
        }
    }
    Ok(Merged { desired })
}

/// Rebuilds a list now (what the `lists.rebuild` job runs; no tenant check): merge, diff
/// against the published state, publish or hold each change. Runs again if a source changed
/// meanwhile. Subscribed instances get a push plan when something was published.
pub async fn rebuild_list(db: &Db, id: i64) -> Result<RebuildSummary> {
    let mut total = RebuildSummary::default();
    for _round in 0..5 {
        let l = list_row(db, id).await?;
        let (gen, built): (i64, i64) = on_pool!(db, p => sqlx::query_as(
            "SELECT dirty_gen, built_gen FROM lists_lists WHERE id = $1").bind(id).fetch_one(p).await)
        .map_err(DbError::from)?;
        if built >= gen {
            total.seq = l.seq;
            break; // an earlier run already built these inputs
        }
        let merged = compute(db, &l).await?;
        let s = store_rebuild(db, &l, merged, gen).await?;
        total.published += s.published;
        total.held += s.held;
        total.superseded += s.superseded;
        total.seq = s.seq;
        let after: i64 = on_pool!(db, p => sqlx::query_scalar(
            "SELECT dirty_gen FROM lists_lists WHERE id = $1").bind(id).fetch_one(p).await)
        .map_err(DbError::from)?;
        if after == gen {
            break;
        }
    }
    Ok(total)
}

async fn store_rebuild(db: &Db, l: &ListRow, merged: Merged, gen: i64) -> Result<RebuildSummary> {
    let policy: Policy = from_json("lists_lists.policy", &l.policy)?;
    let mut tx = db.begin().await?;
    // Lock the list's row (PostgreSQL; SQLite's write lock is already held) and read the
    // sequence number inside the transaction: approvals and other rebuilds serialise here.
    let start_seq: i64 = on_tx!(&mut tx, x => sqlx::query_scalar(
        "UPDATE lists_lists SET seq = seq WHERE id = $1 RETURNING seq")
        .bind(l.id).fetch_one(x).await)
    .map_err(DbError::from)?;
    let cur_rows: Vec<(String, String, Option<String>)> = on_tx!(&mut tx, x => sqlx::query_as(
        "SELECT domain, entry, audit FROM lists_entries WHERE list_id = $1")
        .bind(l.id).fetch_all(x).await)
    .map_err(DbError::from)?;
    let mut current: Vec<Entry> = Vec::with_capacity(cur_rows.len());
    let mut cur_audit: HashMap<String, Option<String>> = HashMap::new();
    for (d, e, a) in cur_rows {
        current.push(from_json("lists_entries.entry", &e)?);
        cur_audit.insert(d, a);
    }
    let held_rows: Vec<(i64, String, String, Option<String>)> = on_tx!(&mut tx, x => sqlx::query_as(
        "SELECT id, domain, op, after_json FROM lists_changes WHERE list_id = $1 AND status = 'held'")
        .bind(l.id).fetch_all(x).await)
    .map_err(DbError::from)?;
    let mut held: HashMap<String, (i64, String, Option<String>)> = HashMap::new();
    for (cid, d, op, after) in held_rows {
        held.insert(d, (cid, op, after));
    }
    let rejected_rows: Vec<(i64, String, String, Option<String>)> = on_tx!(&mut tx, x => sqlx::query_as(
        "SELECT id, domain, op, after_json FROM lists_changes WHERE list_id = $1 AND status = 'rejected' \
         ORDER BY id")
        .bind(l.id).fetch_all(x).await)
    .map_err(DbError::from)?;
    let mut rejected: HashMap<String, (String, Option<String>)> = HashMap::new();
    for (_, d, op, after) in rejected_rows {
        rejected.insert(d, (op, after));
    }
    let desired: Vec<Entry> = merged.desired.values().map(|(e, _)| e.clone()).collect();
    let diffs = diff_states(&current, &desired);
    let mut summary = RebuildSummary::default();
    let mut seq = start_seq;
    let t = now();
    let mut touched: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut published_rows: Vec<PublishedRow> = Vec::new();
    let mut upserts: Vec<(String, String, Option<String>)> = Vec::new();
    let mut deletes: Vec<String> = Vec::new();
    for (domain, op, before, after) in &diffs {
        touched.insert(domain.clone());
        let audit = merged
            .desired
            .get(domain)
            .map(|(_, a)| to_json(a))
            .transpose()?;
        let audit = match (&audit, op) {
            (None, ChangeOp::Remove) => cur_audit.get(domain).cloned().flatten(),
            _ => audit,
        };
        let after_json = after.as_ref().map(to_json).transpose()?;
        let before_json = before.as_ref().map(to_json).transpose()?;
        let hold = policy
            .holds
            .iter()
            .any(|h| h.matches(*op, before.as_ref(), after.as_ref()));
        let existing = held.get(domain);
        if hold {
            if let Some((_, hop, hafter)) = existing {
                if hop == op.as_str() && *hafter == after_json {
                    continue; // already held as is
                }
            }
            if let Some((rop, rafter)) = rejected.get(domain) {
                if rop == op.as_str() && *rafter == after_json {
                    if let Some((cid, _, _)) = existing {
                        supersede(&mut tx, *cid, "superseded by the rebuild").await?;
                        summary.superseded += 1;
                    }
                    continue; // rejected before: not proposed again
                }
            }
            if let Some((cid, _, _)) = existing {
                supersede(&mut tx, *cid, "a newer merge result replaced it").await?;
                summary.superseded += 1;
            }
            let reason = policy
                .holds
                .iter()
                .filter(|h| h.matches(*op, before.as_ref(), after.as_ref()))
                .map(|h| format!("{h:?}").to_lowercase())
                .collect::<Vec<_>>()
                .join(", ");
            on_tx!(&mut tx, x => sqlx::query(
                "INSERT INTO lists_changes (list_id, seq, domain, op, before_json, after_json, audit, \
                 status, reason, created_at) VALUES ($1, NULL, $2, $3, $4, $5, $6, 'held', $7, $8)")
                .bind(l.id).bind(domain).bind(op.as_str()).bind(&before_json).bind(&after_json)
                .bind(&audit).bind(format!("held for review ({reason})")).bind(t)
                .execute(x).await.map(|r| r.rows_affected()))
            .map_err(DbError::from)?;
            summary.held += 1;
        } else {
            if let Some((cid, _, _)) = existing {
                supersede(
                    &mut tx,
                    *cid,
                    "published without review after a policy change",
                )
                .await?;
                summary.superseded += 1;
            }
            seq += 1;
            match after {
                Some(e) => upserts.push((domain.clone(), to_json(e)?, audit.clone())),
                None => deletes.push(domain.clone()),
            }
            published_rows.push((seq, domain.clone(), *op, before_json, after_json, audit));
            summary.published += 1;
        }
    }
    // Held changes whose domain no longer differs.
    for (domain, (cid, _, _)) in &held {
        if !touched.contains(domain) {
            supersede(&mut tx, *cid, "the merge result no longer differs").await?;
            summary.superseded += 1;
        }
    }
    // Audit records of unchanged entries that moved (scores, sources).
    for (domain, (_, audit)) in &merged.desired {
        if touched.contains(domain) {
            continue;
        }
        let a = to_json(audit)?;
        if cur_audit.get(domain).and_then(|x| x.as_ref()) != Some(&a) {
            on_tx!(&mut tx, x => sqlx::query(
                "UPDATE lists_entries SET audit = $1 WHERE list_id = $2 AND domain = $3")
                .bind(&a).bind(l.id).bind(domain).execute(x).await.map(|r| r.rows_affected()))
            .map_err(DbError::from)?;
        }
    }
    insert_published(&mut tx, l.id, &published_rows, t).await?;
    upsert_entries(&mut tx, l.id, &upserts).await?;
    for d in &deletes {
        on_tx!(&mut tx, x => sqlx::query("DELETE FROM lists_entries WHERE list_id = $1 AND domain = $2")
            .bind(l.id).bind(d).execute(x).await.map(|r| r.rows_affected()))
        .map_err(DbError::from)?;
    }
    on_tx!(&mut tx, x => sqlx::query(
        "UPDATE lists_lists SET seq = $1, built_gen = CASE WHEN built_gen > $2 THEN built_gen ELSE $2 END, \
         last_built_at = $3 WHERE id = $4")
        .bind(seq).bind(gen).bind(t).bind(l.id).execute(x).await.map(|r| r.rows_affected()))
    .map_err(DbError::from)?;
    if summary.published > 0 {
        enqueue_plans(&mut tx, l.id).await?;
    }
    if summary.published > 0 || summary.held > 0 {
        append_in(
            &mut tx,
            &Actor::worker().audit(
                "lists.list.rebuild",
                Some(OrgId(l.org_id)),
                serde_json::json!({"list_id": l.id, "published": summary.published,
                    "held": summary.held, "superseded": summary.superseded, "seq": seq}),
            ),
        )
        .await?;
    }
    tx.commit().await?;
    summary.seq = seq;
    Ok(summary)
}

async fn supersede(tx: &mut Tx, change: i64, reason: &str) -> Result<()> {
    on_tx!(tx, x => sqlx::query(
        "UPDATE lists_changes SET status = 'superseded', reason = $1, decided_at = $2 WHERE id = $3")
        .bind(reason).bind(now()).bind(change).execute(x).await.map(|r| r.rows_affected()))
    .map_err(DbError::from)?;
    Ok(())
}

type PublishedRow = (
    i64,
    String,
    ChangeOp,
    Option<String>,
    Option<String>,
    Option<String>,
);

async fn insert_published(tx: &mut Tx, list: i64, rows: &[PublishedRow], t: i64) -> Result<()> {
    for chunk in rows.chunks(64) {
        let mut sql = String::from(
            "INSERT INTO lists_changes (list_id, created_at, decided_at, status, seq, domain, op, \
             before_json, after_json, audit) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = i * 6 + 3;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "($1, $2, $2, 'published', ${}, ${}, ${}, ${}, ${}, ${})",
                b,
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5
            ));
        }
        on_tx!(tx, x => {
            let mut q = sqlx::query(&sql).bind(list).bind(t);
            for r in chunk {
                q = q.bind(r.0).bind(r.1.as_str()).bind(r.2.as_str()).bind(r.3.as_deref())
                    .bind(r.4.as_deref()).bind(r.5.as_deref());
            }
            q.execute(x).await.map(|r| r.rows_affected())
        })
        .map_err(DbError::from)?;
    }
    Ok(())
}

async fn upsert_entries(
    tx: &mut Tx,
    list: i64,
    rows: &[(String, String, Option<String>)],
) -> Result<()> {
    for chunk in rows.chunks(100) {
        let mut sql =
            String::from("INSERT INTO lists_entries (list_id, domain, entry, audit) VALUES ");
        for i in 0..chunk.len() {
            let b = i * 3 + 2;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("($1, ${}, ${}, ${})", b, b + 1, b + 2));
        }
        sql.push_str(
            " ON CONFLICT (list_id, domain) DO UPDATE SET entry = excluded.entry, audit = excluded.audit",
        );
        on_tx!(tx, x => {
            let mut q = sqlx::query(&sql).bind(list);
            for r in chunk {
                q = q.bind(r.0.as_str()).bind(r.1.as_str()).bind(r.2.as_deref());
            }
            q.execute(x).await.map(|r| r.rows_affected())
        })
        .map_err(DbError::from)?;
    }
    Ok(())
}
