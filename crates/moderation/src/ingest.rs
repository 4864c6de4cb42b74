//! Storing reports: parsing one `Admin::Report` (from a sync page or a webhook) on its own, so
//! that a bad report is recorded as an error while the good ones are kept; upserting it by
//! (instance, report id); joining it to the open case of its target; and recomputing what the
//! queue sorts and filters on.

use std::collections::BTreeSet;

use guildhall_core::Timestamp;
use guildhall_db::{on_pool, on_tx, Db, Tx};
use guildhall_mastodon::models::AdminReport;
use serde::Serialize;
use serde_json::Value;

use crate::error::Result;
use crate::links::{domain_of, link_of};
use crate::model::{CaseState, Category, LinkSettings, Outcome};
use crate::sql::{stored, to_json};

/// A parsed report, ready to store.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub remote_id: String,
    pub remote_num: i64,
    pub category: Category,
    pub rule_ids: Vec<String>,
    pub comment: String,
    pub forwarded: bool,
    pub action_taken: bool,
    pub action_taken_at: Option<String>,
    pub assigned_acct: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub created_ms: i64,
    pub target_id: String,
    pub target_username: String,
    pub target_domain: Option<String>,
    pub reporter_id: String,
    pub reporter_acct: String,
    pub reporter_domain: Option<String>,
    pub statuses: Vec<ParsedStatus>,
}

#[derive(Debug, Clone)]
pub(crate) struct ParsedStatus {
    pub remote_id: String,
    pub url: Option<String>,
    pub content: String,
    pub spoiler_text: String,
    pub language: Option<String>,
    pub sensitive: bool,
    pub created_at: Option<String>,
    pub media: Vec<ParsedMedia>,
}

#[derive(Debug, Clone)]
pub(crate) struct ParsedMedia {
    pub remote_id: String,
    pub kind: String,
    pub url: Option<String>,
    pub preview_url: Option<String>,
    pub description: Option<String>,
}

/// Milliseconds of an RFC 3339 timestamp.
pub(crate) fn parse_time(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Parses one report. The error says which report (when its id is readable) and which field.
pub(crate) fn parse_report(
    v: &Value,
    now: Timestamp,
) -> std::result::Result<Parsed, (Option<String>, String)> {
    let id_hint = match v.get("id") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let fail = |m: String| (id_hint.clone(), m);
    if !v.is_object() {
        return Err(fail("a report must be a JSON object".into()));
    }
    let r: AdminReport = serde_json::from_value(v.clone()).map_err(|e| {
        fail(format!(
            "report {}: {e}",
            id_hint.as_deref().unwrap_or("(without id)")
        ))
    })?;
    if r.id.trim().is_empty() {
        return Err(fail("report without an id".into()));
    }
    if r.target_account.id.trim().is_empty() {
        return Err(fail(format!("report {}: target_account.id is empty", r.id)));
    }
    if r.target_account.username.trim().is_empty() {
        return Err(fail(format!(
            "report {}: target_account.username is empty",
            r.id
        )));
    }
    let raw_statuses = v.get("statuses").and_then(Value::as_array);
    let statuses = r
        .statuses
        .iter()
        .enumerate()
        .map(|(i, s)| ParsedStatus {
            remote_id: s.id.clone(),
            url: s.url.clone().or_else(|| s.uri.clone()),
            content: s.content.clone(),
            spoiler_text: s.spoiler_text.clone(),
            language: raw_statuses
                .and_then(|a| a.get(i))
                .and_then(|s| s.get("language"))
                .and_then(Value::as_str)
                .map(|l| l.trim().to_ascii_lowercase())
                .filter(|l| !l.is_empty() && l.len() <= 16),
            sensitive: s.sensitive,
            created_at: s.created_at.clone(),
            media: s
                .media_attachments
                .iter()
                .map(|m| ParsedMedia {
                    remote_id: m.id.clone(),
                    kind: if m.kind.is_empty() {
                        "unknown".into()
                    } else {
                        m.kind.clone()
                    },
                    url: m.url.clone().or_else(|| m.remote_url.clone()),
                    preview_url: m.preview_url.clone(),
                    description: m.description.clone(),
                })
                .collect(),
        })
        .collect();
    let created_ms = r
        .created_at
        .as_deref()
        .and_then(parse_time)
        .unwrap_or(now.0);
    Ok(Parsed {
        remote_num: r.id.parse().unwrap_or(0),
        category: Category::from_api(&r.category),
        rule_ids: r.rules.iter().map(|x| x.id.clone()).collect(),
        comment: r.comment.clone(),
        forwarded: r.forwarded,
        action_taken: r.action_taken,
        action_taken_at: r.action_taken_at.clone(),
        assigned_acct: r.assigned_account.as_ref().map(|a| a.acct()),
        created_at: r.created_at.clone(),
        updated_at: r.updated_at.clone(),
        created_ms,
        target_id: r.target_account.id.clone(),
        target_username: r.target_account.username.clone(),
        target_domain: r.target_account.domain.clone(),
        reporter_id: r.account.id.clone(),
        reporter_acct: r.account.acct(),
        reporter_domain: r.account.domain.clone(),
        statuses,
        remote_id: r.id,
    })
}

/// What ingestion needs to know about an instance.
#[derive(Debug, Clone)]
pub(crate) struct InstanceCtx {
    pub id: i64,
    pub domain: String,
    pub coop: Option<i64>,
    pub settings: LinkSettings,
}

pub(crate) async fn instance_ctx(db: &Db, instance_id: i64) -> Result<Option<InstanceCtx>> {
    let Some(inst) = db.instance(instance_id).await? else {
        return Ok(None);
    };
    let link = link_of(db, instance_id).await?;
    Ok(Some(InstanceCtx {
        id: inst.id,
        domain: domain_of(&inst.base_url),
        coop: link.as_ref().map(|l| l.coop.0),
        settings: link.map(|l| l.settings).unwrap_or_default(),
    }))
}

/// `user@domain`, lower-cased; local accounts get the instance's domain.
pub(crate) fn canonical_acct(
    username: &str,
    domain: Option<&str>,
    instance_domain: &str,
) -> String {
    format!(
        "{}@{}",
        username.trim(),
        domain.unwrap_or(instance_domain).trim()
    )
    .to_lowercase()
}

/// The outcome of storing one report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Stored {
    pub report_id: i64,
    pub case_id: i64,
    pub new_media: bool,
    pub changed: bool,
    /// The case the report left, if it moved.
    pub old_case: Option<i64>,
}

const ACTIVE: &str = "('open', 'awaiting_approval', 'escalated')";

/// The open case of (instance, target), created if none exists.
async fn open_case_for(tx: &mut Tx, ctx: &InstanceCtx, p: &Parsed, now: Timestamp) -> Result<i64> {
    let acct = canonical_acct(&p.target_username, p.target_domain.as_deref(), &ctx.domain);
    let remote = p
        .target_domain
        .as_deref()
        .is_some_and(|d| !d.eq_ignore_ascii_case(&ctx.domain));
    let inserted: Option<i64> = on_tx!(tx, c => sqlx::query_scalar(
        "INSERT INTO mod_cases (instance_id, coop_org_id, target_account_id, target_acct, target_remote, \
         state, category, severity, opened_at, last_report_at, sla_due_at, report_count, \
         open_report_count, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'open', $6, $7, $8, $8, $9, 0, 0, $10, $10) \
         ON CONFLICT DO NOTHING RETURNING id")
        .bind(ctx.id).bind(ctx.coop).bind(&p.target_id).bind(&acct).bind(remote)
        .bind(p.category.as_str()).bind(p.category.severity()).bind(p.created_ms)
        .bind(p.created_ms + ctx.settings.sla_hours.millis(p.category)).bind(now.0)
        .fetch_optional(c).await)?;
    if let Some(id) = inserted {
        return Ok(id);
    }
    let sql = format!(
        "SELECT id FROM mod_cases WHERE instance_id = $1 AND target_account_id = $2 AND state IN {ACTIVE}"
    );
    let id: i64 = on_tx!(tx, c => sqlx::query_scalar(&sql)
        .bind(ctx.id).bind(&p.target_id).fetch_one(c).await)?;
    Ok(id)
}

/// A closed case for a report that arrives already resolved (kept for the account's history).
async fn closed_case_for(
    tx: &mut Tx,
    ctx: &InstanceCtx,
    p: &Parsed,
    now: Timestamp,
) -> Result<i64> {
    let acct = canonical_acct(&p.target_username, p.target_domain.as_deref(), &ctx.domain);
    let remote = p
        .target_domain
        .as_deref()
        .is_some_and(|d| !d.eq_ignore_ascii_case(&ctx.domain));
    let id: i64 = on_tx!(tx, c => sqlx::query_scalar(
        "INSERT INTO mod_cases (instance_id, coop_org_id, target_account_id, target_acct, target_remote, \
         state, outcome, category, severity, opened_at, last_report_at, sla_due_at, report_count, \
         open_report_count, created_at, updated_at, closed_at) \
         VALUES ($1, $2, $3, $4, $5, 'closed', 'resolved_on_instance', $6, $7, $8, $8, $9, 0, 0, $10, $10, $10) \
         RETURNING id")
        .bind(ctx.id).bind(ctx.coop).bind(&p.target_id).bind(&acct).bind(remote)
        .bind(p.category.as_str()).bind(p.category.severity()).bind(p.created_ms)
        .bind(p.created_ms + ctx.settings.sla_hours.millis(p.category)).bind(now.0)
        .fetch_one(c).await)?;
    Ok(id)
}

type ExistingRow = (i64, i64, Option<String>, bool, String, Option<String>);

/// Stores (inserts or updates) one report and joins it to its case, in the caller's
/// transaction. The caller refreshes the cases it touched ([`refresh_case`]) once per batch.
pub(crate) async fn upsert_report(
    tx: &mut Tx,
    ctx: &InstanceCtx,
    p: &Parsed,
    now: Timestamp,
) -> Result<Stored> {
    let existing: Option<ExistingRow> = on_tx!(tx, c => sqlx::query_as(
        "SELECT r.id, r.case_id, r.remote_updated_at, r.action_taken, c.state, r.assigned_acct \
         FROM mod_reports r JOIN mod_cases c ON c.id = r.case_id \
         WHERE r.instance_id = $1 AND r.remote_id = $2")
        .bind(ctx.id).bind(&p.remote_id).fetch_optional(c).await)?;
    let target_acct = canonical_acct(&p.target_username, p.target_domain.as_deref(), &ctx.domain);
    let rule_ids = to_json(&p.rule_ids);
    let (report_id, case_id, old_case, changed) = match existing {
        Some((rid, case_id, updated, taken, state, assigned)) => {
            let state: CaseState = stored("mod_cases.state", &state)?;
            let changed =
                updated != p.updated_at || taken != p.action_taken || assigned != p.assigned_acct;
            // A report reopened on the instance (resolved before, open now) whose case is
            // closed joins the open case. A report still open under a closed case (its
            // decision is being delivered) stays where it is.
            let new_case = if taken && !p.action_taken && state == CaseState::Closed {
                open_case_for(tx, ctx, p, now).await?
            } else {
                case_id
            };
            on_tx!(tx, c => sqlx::query(
                "UPDATE mod_reports SET case_id = $1, category = $2, rule_ids = $3, comment = $4, \
                 forwarded = $5, action_taken = $6, action_taken_at = $7, assigned_acct = $8, \
                 remote_updated_at = $9, last_seen_at = $10 WHERE id = $11")
                .bind(new_case).bind(p.category.as_str()).bind(&rule_ids).bind(&p.comment)
                .bind(p.forwarded).bind(p.action_taken).bind(&p.action_taken_at)
                .bind(&p.assigned_acct).bind(&p.updated_at).bind(now.0).bind(rid)
                .execute(c).await.map(|r| r.rows_affected()))?;
            (
                rid,
                new_case,
                (new_case != case_id).then_some(case_id),
                changed,
            )
        }
        None => {
            let case_id = if p.action_taken {
                closed_case_for(tx, ctx, p, now).await?
            } else {
                open_case_for(tx, ctx, p, now).await?
            };
            let rid: i64 = on_tx!(tx, c => sqlx::query_scalar(
                "INSERT INTO mod_reports (instance_id, remote_id, remote_num, case_id, category, rule_ids, \
                 comment, forwarded, action_taken, action_taken_at, assigned_acct, remote_created_at, \
                 remote_updated_at, created_ms, target_account_id, target_acct, target_domain, \
                 reporter_account_id, reporter_acct, reporter_domain, first_seen_at, last_seen_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                 $18, $19, $20, $21, $21) RETURNING id")
                .bind(ctx.id).bind(&p.remote_id).bind(p.remote_num).bind(case_id)
                .bind(p.category.as_str()).bind(&rule_ids).bind(&p.comment).bind(p.forwarded)
                .bind(p.action_taken).bind(&p.action_taken_at).bind(&p.assigned_acct)
                .bind(&p.created_at).bind(&p.updated_at).bind(p.created_ms).bind(&p.target_id)
                .bind(&target_acct).bind(&p.target_domain).bind(&p.reporter_id)
                .bind(&p.reporter_acct).bind(&p.reporter_domain).bind(now.0)
                .fetch_one(c).await)?;
            (rid, case_id, None, true)
        }
    };
    // Statuses and media: the first copy is kept (the instance may delete them later).
    let mut new_media = false;
    for s in &p.statuses {
        let sid: Option<i64> = on_tx!(tx, c => sqlx::query_scalar(
            "INSERT INTO mod_statuses (report_id, remote_id, url, content, spoiler_text, language, \
             sensitive, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT DO NOTHING RETURNING id")
            .bind(report_id).bind(&s.remote_id).bind(&s.url).bind(&s.content)
            .bind(&s.spoiler_text).bind(&s.language).bind(s.sensitive).bind(&s.created_at)
            .fetch_optional(c).await)?;
        let Some(sid) = sid else { continue };
        for m in &s.media {
            let n = on_tx!(tx, c => sqlx::query(
                "INSERT INTO mod_media (status_id, remote_id, kind, url, preview_url, description, \
                 copy_state) VALUES ($1, $2, $3, $4, $5, $6, 'pending') ON CONFLICT DO NOTHING")
                .bind(sid).bind(&m.remote_id).bind(&m.kind).bind(&m.url).bind(&m.preview_url)
                .bind(&m.description).execute(c).await.map(|r| r.rows_affected()))?;
            new_media |= n > 0;
        }
    }
    Ok(Stored {
        report_id,
        case_id,
        new_media,
        changed: changed || old_case.is_some(),
        old_case,
    })
}

/// Recomputes a case's denormalised fields (category, severity, deadline, counts, language,
/// filter tags) from its reports, and closes it "resolved on instance" when it is active and
/// none of its reports is open any more.
pub(crate) async fn refresh_case(
    tx: &mut Tx,
    case_id: i64,
    settings: &LinkSettings,
    now: Timestamp,
) -> Result<()> {
    let rows: Vec<(String, i64, bool, String, i64)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT category, created_ms, action_taken, rule_ids, instance_id FROM mod_reports WHERE case_id = $1")
        .bind(case_id).fetch_all(c).await)?;
    if rows.is_empty() {
        return Ok(());
    }
    let open: Vec<&(String, i64, bool, String, i64)> = rows.iter().filter(|r| !r.2).collect();
    let basis: Vec<&(String, i64, bool, String, i64)> = if open.is_empty() {
        rows.iter().collect()
    } else {
        open.clone()
    };
    let mut best = Category::Other;
    let mut opened = i64::MAX;
    let mut due = i64::MAX;
    let mut last = i64::MIN;
    for r in &basis {
        let cat: Category = r.0.parse().unwrap_or(Category::Other);
        if cat.severity() > best.severity() {
            best = cat;
        }
        opened = opened.min(r.1);
        due = due.min(r.1.saturating_add(settings.sla_hours.millis(cat)));
    }
    for r in &rows {
        last = last.max(r.1);
    }
    let instance_id = rows[0].4;
    let mut tags: BTreeSet<String> = BTreeSet::new();
    tags.insert("all".to_owned());
    tags.insert(format!("cat:{}", best.as_str()));
    for r in &rows {
        let ids: Vec<String> = serde_json::from_str(&r.3).unwrap_or_default();
        for id in ids {
            tags.insert(format!("rule:{instance_id}:{id}"));
        }
    }
    let langs: Vec<(Option<String>,)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT s.language FROM mod_statuses s JOIN mod_reports r ON r.id = s.report_id \
         WHERE r.case_id = $1 ORDER BY s.id")
        .bind(case_id).fetch_all(c).await)?;
    let mut counts: Vec<(String, usize)> = Vec::new();
    for (l,) in langs.into_iter() {
        let Some(l) = l else { continue };
        tags.insert(format!("lang:{l}"));
        match counts.iter_mut().find(|(x, _)| *x == l) {
            Some(e) => e.1 += 1,
            None => counts.push((l, 1)),
        }
    }
    // The most frequent language (the first seen among equals).
    let mut language: Option<String> = None;
    let mut best_n = 0;
    for (l, n) in counts {
        if n > best_n {
            best_n = n;
            language = Some(l);
        }
    }
    let total = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    let open_n = i64::try_from(open.len()).unwrap_or(i64::MAX);
    let close_sql = format!(
        "UPDATE mod_cases SET category = $1, severity = $2, language = $3, opened_at = $4, \
         last_report_at = $5, sla_due_at = $6, report_count = $7, open_report_count = $8, updated_at = $9, \
         state = CASE WHEN $8 = 0 AND state IN {ACTIVE} THEN 'closed' ELSE state END, \
         outcome = CASE WHEN $8 = 0 AND state IN {ACTIVE} THEN 'resolved_on_instance' ELSE outcome END, \
         closed_at = CASE WHEN $8 = 0 AND state IN {ACTIVE} THEN $9 ELSE closed_at END, \
         claimed_by = CASE WHEN $8 = 0 AND state IN {ACTIVE} THEN NULL ELSE claimed_by END, \
         claim_expires_at = CASE WHEN $8 = 0 AND state IN {ACTIVE} THEN NULL ELSE claim_expires_at END \
         WHERE id = $10"
    );
    on_tx!(tx, c => sqlx::query(&close_sql)
        .bind(best.as_str()).bind(best.severity()).bind(&language).bind(opened).bind(last)
        .bind(due).bind(total).bind(open_n).bind(now.0).bind(case_id)
        .execute(c).await.map(|r| r.rows_affected()))?;
    if open_n == 0 {
        // Resolved on the instance while a decision waited for review: nothing will be sent.
        on_tx!(tx, c => sqlx::query(
            "UPDATE mod_decisions SET state = 'rejected', reviewed_at = $1, \
             review_note = 'every report was resolved on the instance before the review' \
             WHERE case_id = $2 AND state = 'awaiting_approval'")
            .bind(now.0).bind(case_id).execute(c).await.map(|r| r.rows_affected()))?;
    }
    let existing: Vec<(String,)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT tag FROM mod_case_tags WHERE case_id = $1")
        .bind(case_id).fetch_all(c).await)?;
    let existing: BTreeSet<String> = existing.into_iter().map(|t| t.0).collect();
    for t in existing.difference(&tags) {
        on_tx!(tx, c => sqlx::query("DELETE FROM mod_case_tags WHERE case_id = $1 AND tag = $2")
            .bind(case_id).bind(t).execute(c).await.map(|r| r.rows_affected()))?;
    }
    for t in tags.difference(&existing) {
        on_tx!(tx, c => sqlx::query("INSERT INTO mod_case_tags (case_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(case_id).bind(t).execute(c).await.map(|r| r.rows_affected()))?;
    }
    Ok(())
}

/// Records an ingestion error (a report or delivery that could not be read).
pub(crate) async fn record_error(
    db: &Db,
    instance_id: i64,
    source: &str,
    remote_id: Option<&str>,
    message: &str,
) -> Result<()> {
    let message: String = message.chars().take(2000).collect();
    on_pool!(db, p => sqlx::query(
        "INSERT INTO mod_ingest_errors (instance_id, source, remote_id, message, at) VALUES ($1, $2, $3, $4, $5)")
        .bind(instance_id).bind(source).bind(remote_id).bind(&message).bind(Timestamp::now().0)
        .execute(p).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// An ingestion error as shown to moderators and the instance's admins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngestError {
    /// Its id.
    pub id: i64,
    /// The instance.
    pub instance_id: i64,
    /// Where it came from: `sync`, or `webhook delivery N`.
    pub source: String,
    /// The report id, when readable.
    pub remote_id: Option<String>,
    /// What was wrong (names the report and field).
    pub message: String,
    /// When.
    pub at: Timestamp,
}

/// The most recent ingestion errors visible in `scope` (a co-op's linked instances, or the
/// instance's own), newest first.
pub async fn ingest_errors(db: &Db, scope: &crate::Scope, limit: u32) -> Result<Vec<IngestError>> {
    let (cond, v) = match scope.kind {
        crate::ScopeKind::Coop { org } => (
            "e.instance_id IN (SELECT instance_id FROM moderation_links WHERE coop_org_id = $1)",
            org.0,
        ),
        crate::ScopeKind::Instance { instance_id, .. } => {
            ("e.instance_id = $1", instance_id.unwrap_or(-1))
        }
    };
    let sql = format!(
        "SELECT e.id, e.instance_id, e.source, e.remote_id, e.message, e.at FROM mod_ingest_errors e \
         WHERE {cond} ORDER BY e.id DESC LIMIT $2"
    );
    let rows: Vec<(i64, i64, String, Option<String>, String, i64)> = on_pool!(db, p => sqlx::query_as(&sql)
        .bind(v).bind(i64::from(limit.min(1000))).fetch_all(p).await)?;
    Ok(rows
        .into_iter()
        .map(|r| IngestError {
            id: r.0,
            instance_id: r.1,
            source: r.2,
            remote_id: r.3,
            message: r.4,
            at: Timestamp(r.5),
        })
        .collect())
}

/// What is stored of some reports of an instance: remote id → (updated_at, resolved,
/// assigned), for telling known, unchanged reports apart in one query per page.
pub(crate) async fn stored_versions(
    db: &Db,
    instance_id: i64,
    remote_ids: &[String],
) -> Result<std::collections::HashMap<String, Version>> {
    let mut out = std::collections::HashMap::new();
    for chunk in remote_ids.chunks(200) {
        let mut p = crate::sql::Params::default();
        let inst = p.int(instance_id);
        let list: Vec<String> = chunk.iter().map(|r| p.text(r.clone())).collect();
        let sql = format!(
            "SELECT remote_id, remote_updated_at, action_taken, assigned_acct FROM mod_reports \
             WHERE instance_id = {inst} AND remote_id IN ({})",
            list.join(", ")
        );
        let rows: Vec<(String, Option<String>, bool, Option<String>)> = on_pool!(db, q =>
            crate::sql::bind_params!(sqlx::query_as(&sql), &p.0).fetch_all(q).await)?;
        for (id, u, t, a) in rows {
            out.insert(id, (u, t, a));
        }
    }
    Ok(out)
}

/// A stored report's version: (updated_at, resolved, assigned).
pub(crate) type Version = (Option<String>, bool, Option<String>);

/// Whether a parsed report equals its stored version.
pub(crate) fn unchanged(stored: Option<&Version>, p: &Parsed) -> bool {
    matches!(stored, Some((u, t, a)) if *u == p.updated_at && *t == p.action_taken && *a == p.assigned_acct)
}

/// Outcome tag for a closed case.
pub(crate) fn outcome_of(s: Option<&str>) -> Result<Option<Outcome>> {
    Ok(s.map(|s| stored("mod_cases.outcome", s)).transpose()?)
}
