//! Which co-op moderates which instance: [`link_instance`] (granted by the instance's owner or
//! admin), with the per-instance [`LinkSettings`], and the instance's stored rules.

use guildhall_core::{AccountId, OrgId, OrgKind, Role, Timestamp};
use guildhall_db::audit::{append_in, NewAuditEntry};
use guildhall_db::{on_pool, on_tx, Db};
use serde::Serialize;

use crate::error::{ModError, Result};
use crate::model::{InstanceRule, LinkSettings};
use crate::scope::{Scope, ScopeKind};
use crate::sql::{stored_json, to_json};

/// A link: `coop` moderates `instance_id` with `settings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    /// The instance (its `instances` id).
    pub instance_id: i64,
    /// The instance's base URL.
    pub base_url: String,
    /// The instance's domain (from its base URL).
    pub domain: String,
    /// The instance organisation.
    pub instance_org: OrgId,
    /// The co-op.
    pub coop: OrgId,
    /// The per-instance settings.
    pub settings: LinkSettings,
    /// When the link was made.
    pub created_at: Timestamp,
    /// Whether the instance has a working admin connection (a token stored, and its last
    /// check, if one ran, found nothing missing). Without one the co-op cannot pull the
    /// instance's reports or deliver decisions to it.
    pub connected: bool,
}

/// The host of a base URL, lower-cased (`https://Social.Example/` → `social.example`).
pub(crate) fn domain_of(base_url: &str) -> String {
    url::Url::parse(base_url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_owned(),
            })
        })
        .unwrap_or_else(|| base_url.to_owned())
        .to_ascii_lowercase()
}

type LinkRow = (i64, String, i64, i64, String, i64, bool, Option<bool>);
const LINK_SQL: &str = "SELECT l.instance_id, i.base_url, i.org_id, l.coop_org_id, l.settings, \
     l.created_at, i.connected, i.check_moderation_ok FROM moderation_links l JOIN instances i ON i.id = l.instance_id";

fn link_from_row(r: LinkRow) -> Result<Link> {
    Ok(Link {
        instance_id: r.0,
        domain: domain_of(&r.1),
        base_url: r.1,
        instance_org: OrgId(r.2),
        coop: OrgId(r.3),
        settings: stored_json("moderation_links.settings", &r.4)?,
        created_at: Timestamp(r.5),
        connected: r.6 && r.7 != Some(false),
    })
}

/// Why an instance cannot be linked yet, or `None` when its admin connection works for the
/// moderation co-op: no token stored, or the last check of the connection found something
/// missing that moderation needs (those problems named). What only the blocklists need (domain
/// blocks) does not stop a link.
pub fn connection_gap(inst: &guildhall_db::instances::Instance) -> Option<String> {
    if !inst.connected {
        return Some(format!(
            "{} is not connected: no admin access token is stored, so a co-op could not pull \
             its reports or deliver decisions. Connect the instance first (Instance page), then \
             link it",
            domain_of(&inst.base_url)
        ));
    }
    if inst.check_moderation_ok == Some(false) {
        // The problems about what moderation needs (all of them if none names it: a check
        // that could not run).
        let purposes: Vec<&str> =
            guildhall_mastodon::access::purposes(guildhall_mastodon::Area::Moderation).collect();
        let ours: Vec<&str> = inst
            .check_problems
            .iter()
            .map(String::as_str)
            .filter(|p| purposes.iter().any(|w| p.contains(w)))
            .collect();
        let problems = match (ours.is_empty(), inst.check_problems.is_empty()) {
            (false, _) => ours.join(" "),
            (true, false) => inst.check_problems.join(" "),
            (true, true) => "the check failed".to_owned(),
        };
        return Some(format!(
            "the admin connection of {} does not work: {problems} Fix the connection (Instance \
             page), then link the instance",
            domain_of(&inst.base_url)
        ));
    }
    None
}

/// The link of an instance, if a co-op moderates it (no scope check: internal and jobs).
pub(crate) async fn link_of(db: &Db, instance_id: i64) -> Result<Option<Link>> {
    let sql = format!("{LINK_SQL} WHERE l.instance_id = $1");
    let row: Option<LinkRow> =
        on_pool!(db, p => sqlx::query_as(&sql).bind(instance_id).fetch_optional(p).await)?;
    row.map(link_from_row).transpose()
}

/// The job kind that pulls an instance's reports (see [`crate::sync`]).
pub const SYNC_JOB_KIND: &str = "moderation.sync";

/// The dedup key of an instance's sync job in `slot` (0 or 1).
fn sync_key(instance_id: i64, slot: u8) -> String {
    format!("mod-sync:{instance_id}:{slot}")
}

/// The sync job for an instance in one of two alternating dedup slots (a running sync
/// schedules the next one in the other slot).
pub(crate) fn sync_job(
    instance_id: i64,
    slot: u8,
    run_at: Option<Timestamp>,
) -> guildhall_db::jobs::NewJob {
    let mut j = guildhall_db::jobs::NewJob::new(
        SYNC_JOB_KIND,
        serde_json::json!({ "instance_id": instance_id, "slot": slot }),
    )
    .dedup(sync_key(instance_id, slot))
    .max_attempts(10);
    if let Some(t) = run_at {
        j = j.run_at(t);
    }
    j
}

/// Makes sure every linked instance has a scheduled sync (enqueues one due now for each
/// instance that has none queued or running). Cheap and idempotent: the binary may call it at
/// start-up, so a sync chain that died (its job dead after repeated database errors) resumes.
/// Returns how many were enqueued.
pub async fn schedule_syncs(db: &Db) -> Result<u64> {
    let ids: Vec<(i64,)> = on_pool!(db, p => sqlx::query_as(
        "SELECT l.instance_id FROM moderation_links l WHERE NOT EXISTS (SELECT 1 FROM jobs j \
         WHERE j.kind = 'moderation.sync' AND j.state IN ('queued', 'running') \
         AND j.dedup_key IN ('mod-sync:' || CAST(l.instance_id AS TEXT) || ':0', \
                             'mod-sync:' || CAST(l.instance_id AS TEXT) || ':1'))")
        .fetch_all(p).await)?;
    let mut n = 0;
    for (id,) in ids {
        if db.enqueue(&sync_job(id, 0, None)).await?.is_some() {
            n += 1;
        }
    }
    Ok(n)
}

/// Asks for a sync of a linked instance now (a "sync now" button): the scheduled sync job is
/// moved to now, or one is enqueued. Allowed for the co-op's scopes and the instance's own
/// owners and admins. Returns whether a job was moved or enqueued.
pub async fn sync_now(db: &Db, scope: &Scope, instance_id: i64) -> Result<bool> {
    let link = link_of(db, instance_id).await?;
    let Some(link) = link else {
        return Err(ModError::NotFound("link"));
    };
    if !scope.sees(instance_id, Some(link.coop.0)) {
        return Err(ModError::NotFound("link"));
    }
    if let ScopeKind::Instance { admin: false, .. } = scope.kind {
        return Err(ModError::Forbidden(
            "only the co-op and the instance's owners and admins start a sync".into(),
        ));
    }
    let now = Timestamp::now();
    let moved = on_pool!(db, p => sqlx::query(
        "UPDATE jobs SET run_at = $1, updated_at = $1 WHERE kind = 'moderation.sync' AND state = 'queued' \
         AND dedup_key IN ($2, $3)")
        .bind(now.0).bind(sync_key(instance_id, 0)).bind(sync_key(instance_id, 1))
        .execute(p).await.map(|r| r.rows_affected()))?;
    if moved > 0 {
        return Ok(true);
    }
    Ok(db.enqueue(&sync_job(instance_id, 0, None)).await?.is_some())
}

/// Links `instance_id` to the co-op `coop` with `settings`, as granted by `by`, who must be an
/// owner or admin of the instance's organisation; `coop` must be a cooperative. An instance is
/// moderated by at most one co-op: linking again replaces the co-op and the settings (the
/// instance's cases move with it). The instance must have a working admin connection
/// ([`ModError::ConnectionNeeded`] naming what is missing otherwise: no token stored, or the
/// problems its last check found). The first sync is enqueued at once; the grant is audited.
pub async fn link_instance(
    db: &Db,
    by: AccountId,
    coop: OrgId,
    instance_id: i64,
    settings: &LinkSettings,
) -> Result<Link> {
    settings
        .validate()
        .map_err(|(f, m)| ModError::invalid(f, m))?;
    let inst = db
        .instance(instance_id)
        .await?
        .ok_or(ModError::NotFound("instance"))?;
    match db.role_of(by, inst.org_id).await? {
        Some(Role::Owner | Role::Admin) => {}
        _ => {
            return Err(ModError::Forbidden(
                "only the instance's owners and admins can grant a co-op moderation".into(),
            ))
        }
    }
    let co = db
        .organisation(coop)
        .await?
        .ok_or(ModError::NotFound("co-op"))?;
    if co.kind != OrgKind::Cooperative {
        return Err(ModError::invalid("coop", "is not a cooperative"));
    }
    if let Some(gap) = connection_gap(&inst) {
        return Err(ModError::ConnectionNeeded(gap));
    }
    let now = Timestamp::now();
    let json = to_json(settings);
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO moderation_links (instance_id, coop_org_id, settings, created_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (instance_id) DO UPDATE SET \
         coop_org_id = excluded.coop_org_id, settings = excluded.settings, updated_at = excluded.updated_at")
        .bind(instance_id).bind(coop.0).bind(&json).bind(by.0).bind(now.0)
        .execute(c).await.map(|r| r.rows_affected()))?;
    on_tx!(&mut tx, c => sqlx::query("UPDATE mod_cases SET coop_org_id = $1 WHERE instance_id = $2")
        .bind(coop.0).bind(instance_id).execute(c).await.map(|r| r.rows_affected()))?;
    Db::enqueue_in(&mut tx, &sync_job(instance_id, 0, None)).await?;
    let actor = db
        .account(by)
        .await?
        .map(|a| a.email.to_string())
        .unwrap_or_default();
    append_in(
        &mut tx,
        &NewAuditEntry {
            actor_id: Some(by),
            actor,
            action: "moderation.link".into(),
            org_id: Some(inst.org_id),
            before: None,
            after: Some(serde_json::json!({
                "instance_id": instance_id, "coop_org_id": coop.0, "settings": settings })),
        },
    )
    .await?;
    tx.commit().await?;
    link_of(db, instance_id)
        .await?
        .ok_or(ModError::NotFound("link"))
}

/// Replaces the settings of an instance's link, as changed by `by`, who must be an owner or
/// admin of the instance's organisation (the co-op's moderators cannot change them). The
/// settings are validated first (the error names the field); the change and its audit entry
/// (`moderation.settings`, before and after) are written in one transaction. A changed
/// `sync_minutes` moves the already-scheduled sync, in the same transaction, to the new
/// interval counted from when it was scheduled (the end of the last sync), or to now when
/// that moment has passed; a sync due now (just linked, or "sync now") stays due.
pub async fn update_settings(
    db: &Db,
    by: AccountId,
    instance_id: i64,
    settings: &LinkSettings,
) -> Result<Link> {
    let inst = db
        .instance(instance_id)
        .await?
        .ok_or(ModError::NotFound("instance"))?;
    match db.role_of(by, inst.org_id).await? {
        Some(Role::Owner | Role::Admin) => {}
        _ => {
            return Err(ModError::Forbidden(
                "only the instance's owners and admins change its moderation settings".into(),
            ))
        }
    }
    settings
        .validate()
        .map_err(|(f, m)| ModError::invalid(f, m))?;
    let before = link_of(db, instance_id)
        .await?
        .ok_or(ModError::NotFound("link"))?;
    let now = Timestamp::now();
    let json = to_json(settings);
    let mut tx = db.begin().await?;
    let n = on_tx!(&mut tx, c => sqlx::query(
        "UPDATE moderation_links SET settings = $1, updated_at = $2 WHERE instance_id = $3")
        .bind(&json).bind(now.0).bind(instance_id)
        .execute(c).await.map(|r| r.rows_affected()))?;
    if n == 0 {
        return Err(ModError::NotFound("link"));
    }
    if settings.sync_minutes != before.settings.sync_minutes {
        let interval = i64::from(settings.sync_minutes) * 60_000;
        on_tx!(&mut tx, c => sqlx::query(
            "UPDATE jobs SET run_at = CASE WHEN created_at + $1 < $2 THEN $2 ELSE created_at + $1 END, \
             updated_at = $2 WHERE kind = 'moderation.sync' AND state = 'queued' AND run_at > $2 \
             AND dedup_key IN ($3, $4)")
            .bind(interval).bind(now.0)
            .bind(sync_key(instance_id, 0)).bind(sync_key(instance_id, 1))
            .execute(c).await.map(|r| r.rows_affected()))?;
    }
    let actor = db
        .account(by)
        .await?
        .map(|a| a.email.to_string())
        .unwrap_or_default();
    append_in(
        &mut tx,
        &NewAuditEntry {
            actor_id: Some(by),
            actor,
            action: "moderation.settings".into(),
            org_id: Some(inst.org_id),
            before: Some(serde_json::json!({
                "instance_id": instance_id, "coop_org_id": before.coop.0,
                "settings": before.settings })),
            after: Some(serde_json::json!({
                "instance_id": instance_id, "coop_org_id": before.coop.0, "settings": settings })),
        },
    )
    .await?;
    tx.commit().await?;
    link_of(db, instance_id)
        .await?
        .ok_or(ModError::NotFound("link"))
}

/// Ends a co-op's moderation of an instance (by its owner or admin). Its cases stay, visible
/// to the instance only; the scheduled sync stops at its next run.
pub async fn unlink_instance(db: &Db, by: AccountId, instance_id: i64) -> Result<()> {
    let inst = db
        .instance(instance_id)
        .await?
        .ok_or(ModError::NotFound("instance"))?;
    match db.role_of(by, inst.org_id).await? {
        Some(Role::Owner | Role::Admin) => {}
        _ => {
            return Err(ModError::Forbidden(
                "only the instance's owners and admins can end a co-op's moderation".into(),
            ))
        }
    }
    let mut tx = db.begin().await?;
    let n = on_tx!(&mut tx, c => sqlx::query("DELETE FROM moderation_links WHERE instance_id = $1")
        .bind(instance_id).execute(c).await.map(|r| r.rows_affected()))?;
    if n == 0 {
        return Err(ModError::NotFound("link"));
    }
    on_tx!(&mut tx, c => sqlx::query(
        "UPDATE mod_cases SET coop_org_id = NULL, claimed_by = NULL, claimed_at = NULL, \
         claim_expires_at = NULL WHERE instance_id = $1")
        .bind(instance_id).execute(c).await.map(|r| r.rows_affected()))?;
    let actor = db
        .account(by)
        .await?
        .map(|a| a.email.to_string())
        .unwrap_or_default();
    append_in(
        &mut tx,
        &NewAuditEntry {
            actor_id: Some(by),
            actor,
            action: "moderation.unlink".into(),
            org_id: Some(inst.org_id),
            before: None,
            after: Some(serde_json::json!({ "instance_id": instance_id })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The links visible in a scope: a co-op's instances, or an instance's own link.
pub async fn links(db: &Db, scope: &Scope) -> Result<Vec<Link>> {
    let (cond, v) = match scope.kind {
        ScopeKind::Coop { org } => ("l.coop_org_id = $1", org.0),
        ScopeKind::Instance { instance_id, .. } => {
            ("l.instance_id = $1", instance_id.unwrap_or(-1))
        }
    };
    let sql = format!("{LINK_SQL} WHERE {cond} ORDER BY l.instance_id");
    let rows: Vec<LinkRow> = on_pool!(db, p => sqlx::query_as(&sql).bind(v).fetch_all(p).await)?;
    rows.into_iter().map(link_from_row).collect()
}

/// The stored rules of an instance visible in `scope` (fetched by each sync), in the
/// instance's order.
pub async fn rules(db: &Db, scope: &Scope, instance_id: i64) -> Result<Vec<InstanceRule>> {
    let link = link_of(db, instance_id).await?;
    if !scope.sees(instance_id, link.as_ref().map(|l| l.coop.0)) {
        return Err(ModError::NotFound("instance"));
    }
    stored_rules(db, instance_id).await
}

pub(crate) async fn stored_rules(db: &Db, instance_id: i64) -> Result<Vec<InstanceRule>> {
    let rows: Vec<(String, String, String)> = on_pool!(db, p => sqlx::query_as(
        "SELECT rule_id, text, hint FROM mod_rules WHERE instance_id = $1 ORDER BY position")
        .bind(instance_id).fetch_all(p).await)?;
    Ok(rows
        .into_iter()
        .map(|(id, text, hint)| InstanceRule { id, text, hint })
        .collect())
}

/// Replaces the stored rules of an instance.
pub(crate) async fn store_rules(db: &Db, instance_id: i64, rules: &[InstanceRule]) -> Result<()> {
    let now = Timestamp::now();
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, c => sqlx::query("DELETE FROM mod_rules WHERE instance_id = $1")
        .bind(instance_id).execute(c).await.map(|r| r.rows_affected()))?;
    for (i, r) in rules.iter().enumerate() {
        on_tx!(&mut tx, c => sqlx::query(
            "INSERT INTO mod_rules (instance_id, rule_id, text, hint, position, fetched_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING")
            .bind(instance_id).bind(&r.id).bind(&r.text).bind(&r.hint)
            .bind(i64::try_from(i).unwrap_or(i64::MAX)).bind(now.0)
            .execute(c).await.map(|r| r.rows_affected()))?;
    }
    tx.commit().await?;
    Ok(())
}
