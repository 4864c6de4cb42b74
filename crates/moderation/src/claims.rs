//! Claims: a moderator holds a case so that no one else works it. Claiming is one conditional
//! `UPDATE` (never read-then-write); a claim expires after the link's `claim_minutes` unless
//! renewed (claiming again renews it). Claims are mirrored on the instance with
//! `assign_to_self` / `unassign` (the `moderation.assign` job) and audited.

use guildhall_core::{AccountId, Timestamp};
use guildhall_db::audit::{append_in, NewAuditEntry};
use guildhall_db::jobs::NewJob;
use guildhall_db::{on_pool, on_tx, Db, Tx};
use serde::Serialize;

use crate::error::{ModError, Result};
use crate::links::link_of;
use crate::model::CaseState;
use crate::scope::Scope;
use crate::sql::stored;

/// The job kind that mirrors a claim on the instance.
pub const ASSIGN_JOB_KIND: &str = "moderation.assign";

/// A claim held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Claim {
    /// The case.
    pub case_id: i64,
    /// The moderator holding it.
    pub moderator: AccountId,
    /// Until when (claim again to renew).
    pub expires_at: Timestamp,
}

/// Enqueues the job that assigns (or unassigns) the case's open reports on the instance.
pub(crate) async fn enqueue_assign(
    tx: &mut Tx,
    case_id: i64,
    assign: bool,
    seq: i64,
) -> Result<()> {
    let op = if assign { "assign" } else { "unassign" };
    Db::enqueue_in(
        tx,
        &NewJob::new(
            ASSIGN_JOB_KIND,
            serde_json::json!({ "case_id": case_id, "op": op }),
        )
        .dedup(format!("mod-assign:{case_id}:{op}:{seq}"))
        .max_attempts(8),
    )
    .await?;
    Ok(())
}

pub(crate) async fn audit(
    tx: &mut Tx,
    scope: &Scope,
    action: &str,
    after: serde_json::Value,
) -> Result<()> {
    append_in(
        tx,
        &NewAuditEntry {
            actor_id: Some(scope.account),
            actor: scope.actor.clone(),
            action: action.into(),
            org_id: Some(scope.org()),
            before: None,
            after: Some(after),
        },
    )
    .await?;
    Ok(())
}

/// Claims an open case for the scope's moderator, atomically: succeeds only if nobody holds
/// it, its claim expired, or the caller already holds it (then the claim is renewed). Two
/// moderators claiming at the same moment: exactly one gets it, the other gets
/// [`ModError::ClaimedByOther`]. The claim is mirrored on the instance (`assign_to_self`) and
/// audited (`moderation.claim`).
pub async fn claim(db: &Db, scope: &Scope, case_id: i64) -> Result<Claim> {
    let coop = scope.require_worker()?;
    let instance_id: Option<(i64, String)> = on_pool!(db, p => sqlx::query_as(
        "SELECT instance_id, state FROM mod_cases WHERE id = $1 AND coop_org_id = $2")
        .bind(case_id).bind(coop.0).fetch_optional(p).await)?;
    let Some((instance_id, state)) = instance_id else {
        return Err(ModError::NotFound("case"));
    };
    let state: CaseState = stored("mod_cases.state", &state)?;
    if state != CaseState::Open {
        return Err(ModError::WrongState(state));
    }
    let minutes = link_of(db, instance_id)
        .await?
        .map(|l| l.settings.claim_duration())
        .unwrap_or(std::time::Duration::from_secs(1800));
    let now = Timestamp::now();
    let until = now.plus(minutes);
    let mut tx = db.begin().await?;
    let got: Option<(Option<i64>,)> = on_tx!(&mut tx, c => sqlx::query_as(
        "UPDATE mod_cases SET claimed_by = $1, claimed_at = $2, claim_expires_at = $3, updated_at = $2 \
         WHERE id = $4 AND coop_org_id = $5 AND state = 'open' \
         AND (claimed_by IS NULL OR claimed_by = $1 OR claim_expires_at < $2) RETURNING claimed_by")
        .bind(scope.account.0).bind(now.0).bind(until.0).bind(case_id).bind(coop.0)
        .fetch_optional(c).await)?;
    if got.is_none() {
        drop(tx);
        let holder: Option<(Option<i64>, Option<i64>, String)> = on_pool!(db, p => sqlx::query_as(
            "SELECT claimed_by, claim_expires_at, state FROM mod_cases WHERE id = $1")
            .bind(case_id).fetch_optional(p).await)?;
        return match holder {
            Some((Some(by), Some(t), s)) if s == "open" => Err(ModError::ClaimedByOther {
                by: AccountId(by),
                until: Timestamp(t),
            }),
            Some((_, _, s)) => Err(ModError::WrongState(stored("mod_cases.state", &s)?)),
            None => Err(ModError::NotFound("case")),
        };
    }
    enqueue_assign(&mut tx, case_id, true, now.0).await?;
    audit(
        &mut tx,
        scope,
        "moderation.claim",
        serde_json::json!({
        "case_id": case_id, "instance_id": instance_id, "expires_at": until.0 }),
    )
    .await?;
    tx.commit().await?;
    Ok(Claim {
        case_id,
        moderator: scope.account,
        expires_at: until,
    })
}

/// Releases the caller's claim on a case (unassigned on the instance; audited
/// `moderation.release`). [`ModError::NotClaimed`] if the caller does not hold it.
pub async fn release(db: &Db, scope: &Scope, case_id: i64) -> Result<()> {
    let coop = scope.require_worker()?;
    let now = Timestamp::now();
    let mut tx = db.begin().await?;
    let n = on_tx!(&mut tx, c => sqlx::query(
        "UPDATE mod_cases SET claimed_by = NULL, claimed_at = NULL, claim_expires_at = NULL, updated_at = $1 \
         WHERE id = $2 AND coop_org_id = $3 AND claimed_by = $4")
        .bind(now.0).bind(case_id).bind(coop.0).bind(scope.account.0)
        .execute(c).await.map(|r| r.rows_affected()))?;
    if n == 0 {
        return Err(ModError::NotClaimed);
    }
    enqueue_assign(&mut tx, case_id, false, now.0).await?;
    audit(
        &mut tx,
        scope,
        "moderation.release",
        serde_json::json!({ "case_id": case_id }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Ends every claim whose time ran out: clears it, unassigns on the instance, and audits
/// `moderation.claim_expired` (actor `system`). Returns how many expired. Run by each sync job;
/// claiming does not depend on it (an expired claim can be taken at once).
pub async fn expire_claims(db: &Db) -> Result<u64> {
    let now = Timestamp::now();
    let mut tx = db.begin().await?;
    let candidates: Vec<(i64, Option<i64>, Option<i64>)> = on_tx!(&mut tx, c => sqlx::query_as(
        "SELECT id, claimed_by, coop_org_id FROM mod_cases \
         WHERE claimed_by IS NOT NULL AND claim_expires_at < $1")
        .bind(now.0).fetch_all(c).await)?;
    let mut rows = Vec::new();
    for (case_id, by, coop) in candidates {
        // Conditional: a claim renewed in the meantime is left alone.
        let n = on_tx!(&mut tx, c => sqlx::query(
            "UPDATE mod_cases SET claimed_by = NULL, claimed_at = NULL, claim_expires_at = NULL, \
             updated_at = $1 WHERE id = $2 AND claimed_by IS NOT NULL AND claim_expires_at < $1")
            .bind(now.0).bind(case_id).execute(c).await.map(|r| r.rows_affected()))?;
        if n > 0 {
            rows.push((case_id, by, coop));
        }
    }
    for (case_id, by, coop) in &rows {
        enqueue_assign(&mut tx, *case_id, false, now.0).await?;
        append_in(
            &mut tx,
            &NewAuditEntry {
                actor_id: None,
                actor: "system".into(),
                action: "moderation.claim_expired".into(),
                org_id: coop.map(guildhall_core::OrgId),
                before: Some(serde_json::json!({ "claimed_by": by })),
                after: Some(serde_json::json!({ "case_id": case_id })),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(rows.len() as u64)
}
