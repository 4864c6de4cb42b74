//! Deciding a case: the action (only what the target allows), the instance's rules it cites,
//! the note to the user from one of the instance's templates, a private note. Severe actions
//! wait for a second moderator; otherwise (or on approval) the decision and the job that makes
//! it take effect are written in one transaction. Or the case is escalated to the instance's
//! own moderators.

use guildhall_core::Timestamp;
use guildhall_db::jobs::NewJob;
use guildhall_db::{on_pool, on_tx, Db, Tx};
use serde::Serialize;

use crate::claims::{audit, enqueue_assign};
use crate::error::{ModError, Result};
use crate::links::{link_of, stored_rules};
use crate::model::{Action, CaseState, DecisionState, FilledNote};
use crate::scope::Scope;
use crate::sql::{stored, to_json};

/// The job kind that applies a decision on the instance.
pub const APPLY_JOB_KIND: &str = "moderation.apply";

/// A decision as the moderator makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDecision {
    /// The action.
    pub action: Action,
    /// The instance's rules the decision cites (at least one; ids as the instance gives them).
    pub rule_ids: Vec<String>,
    /// The note sent to the user (filled from one of the instance's templates), if any.
    pub user_note: Option<FilledNote>,
    /// A note for moderators and the instance's admins only.
    pub private_note: String,
    /// Whether the instance e-mails the user about the action.
    pub notify_user: bool,
}

/// What [`decide`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DecisionOutcome {
    /// The decision's id.
    pub decision_id: i64,
    /// [`DecisionState::AwaitingApproval`] (a second moderator must approve) or
    /// [`DecisionState::Pending`] (being delivered).
    pub state: DecisionState,
}

/// Whether an error is PostgreSQL's deadlock or serialization failure (the trigger-kept counts
/// are hot rows; two transactions may meet in opposite orders): safe to run again.
fn is_retryable(e: &ModError) -> bool {
    let db_err = match e {
        ModError::Sqlx(sqlx::Error::Database(d)) => Some(d),
        ModError::Db(guildhall_db::DbError::Sqlx(sqlx::Error::Database(d))) => Some(d),
        _ => None,
    };
    db_err.is_some_and(|d| matches!(d.code().as_deref(), Some("40P01" | "40001")))
}

/// Runs a state-changing operation again (up to three times) when the database reports a
/// deadlock; the operation's transaction was rolled back, so nothing was half done.
async fn retry_deadlock<T, F, Fut>(mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Err(e) if attempt < 2 && is_retryable(&e) => attempt += 1,
            r => return r,
        }
    }
}

fn apply_job(decision_id: i64) -> NewJob {
    NewJob::new(
        APPLY_JOB_KIND,
        serde_json::json!({ "decision_id": decision_id }),
    )
    .dedup(format!("mod-apply:{decision_id}"))
    .max_attempts(20)
}

/// Writes the delivery steps (the action with the first open report's id, then resolving each
/// open report) and enqueues the apply job, in the caller's transaction.
async fn schedule_delivery(
    tx: &mut Tx,
    decision_id: i64,
    case_id: i64,
    now: Timestamp,
) -> Result<()> {
    let reports: Vec<(i64,)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT id FROM mod_reports WHERE case_id = $1 AND action_taken = FALSE ORDER BY remote_num DESC, id DESC")
        .bind(case_id).fetch_all(c).await)?;
    let mut reports: Vec<i64> = reports.into_iter().map(|r| r.0).collect();
    if reports.is_empty() {
        // Every report was resolved meanwhile; the action still cites the newest report.
        let newest: Option<(i64,)> = on_tx!(tx, c => sqlx::query_as(
            "SELECT id FROM mod_reports WHERE case_id = $1 ORDER BY remote_num DESC, id DESC LIMIT 1")
            .bind(case_id).fetch_optional(c).await)?;
        reports.extend(newest.map(|r| r.0));
    }
    let Some(first) = reports.first().copied() else {
        return Err(ModError::NotFound("report of the case"));
    };
    let mut steps: Vec<(&str, i64)> = vec![("action", first)];
    steps.extend(reports.iter().map(|r| ("resolve", *r)));
    for (pos, (kind, rid)) in steps.into_iter().enumerate() {
        on_tx!(tx, c => sqlx::query(
            "INSERT INTO mod_delivery_steps (decision_id, position, kind, report_id, state, updated_at) \
             VALUES ($1, $2, $3, $4, 'pending', $5)")
            .bind(decision_id).bind(i64::try_from(pos).unwrap_or(i64::MAX)).bind(kind).bind(rid).bind(now.0)
            .execute(c).await.map(|r| r.rows_affected()))?;
    }
    Db::enqueue_in(tx, &apply_job(decision_id)).await?;
    Ok(())
}

/// Decides a case the caller holds (claimed, not expired). Checks that the action is allowed
/// for the target ([`Action::allowed_for`]), that at least one rule is cited and every rule is
/// one of the instance's stored rules, and that the note comes from one of the instance's
/// templates. If the instance's settings put the action under second review, the decision waits
/// ([`DecisionState::AwaitingApproval`], case `awaiting_approval`) and nothing is sent;
/// otherwise the case is closed and, in the same transaction, the delivery steps and the apply
/// job are written. The claim ends either way. Audited (`moderation.decide`).
pub async fn decide(
    db: &Db,
    scope: &Scope,
    case_id: i64,
    d: &NewDecision,
) -> Result<DecisionOutcome> {
    retry_deadlock(|| decide_once(db, scope, case_id, d)).await
}

async fn decide_once(
    db: &Db,
    scope: &Scope,
    case_id: i64,
    d: &NewDecision,
) -> Result<DecisionOutcome> {
    let coop = scope.require_worker()?;
    let row: Option<(i64, bool, String)> = on_pool!(db, p => sqlx::query_as(
        "SELECT instance_id, target_remote, state FROM mod_cases WHERE id = $1 AND coop_org_id = $2")
        .bind(case_id).bind(coop.0).fetch_optional(p).await)?;
    let (instance_id, remote, state) = row.ok_or(ModError::NotFound("case"))?;
    let state: CaseState = stored("mod_cases.state", &state)?;
    if state != CaseState::Open {
        return Err(ModError::WrongState(state));
    }
    if !Action::allowed_for(remote).contains(&d.action) {
        return Err(ModError::invalid(
            "action",
            format!(
                "{} is not available for a {} account (allowed: {})",
                d.action,
                if remote { "remote" } else { "local" },
                Action::allowed_for(remote)
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if d.rule_ids.is_empty() {
        return Err(ModError::invalid(
            "rule_ids",
            "cite at least one of the instance's rules",
        ));
    }
    let rules = stored_rules(db, instance_id).await?;
    let unknown: Vec<&str> = d
        .rule_ids
        .iter()
        .filter(|r| !rules.iter().any(|x| &x.id == *r))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(ModError::invalid(
            "rule_ids",
            format!("not rules of this instance: {}", unknown.join(", ")),
        ));
    }
    let link = link_of(db, instance_id)
        .await?
        .ok_or(ModError::NotFound("link"))?;
    if let Some(n) = &d.user_note {
        let t = link
            .settings
            .template(n.template())
            .ok_or_else(|| crate::model::TemplateError::NoSuchTemplate(n.template().to_owned()))?;
        // The note must be a filling of the instance's current template.
        let _ = t.placeholders()?;
    }
    let review = link.settings.second_review.contains(&d.action);
    let now = Timestamp::now();
    let mut tx = db.begin().await?;
    let new_state = if review {
        "awaiting_approval"
    } else {
        "closed"
    };
    let n = on_tx!(&mut tx, c => sqlx::query(
        "UPDATE mod_cases SET state = $1, outcome = CASE WHEN $1 = 'closed' THEN 'decided' ELSE NULL END, \
         closed_at = CASE WHEN $1 = 'closed' THEN $2 ELSE NULL END, \
         claimed_by = NULL, claimed_at = NULL, claim_expires_at = NULL, updated_at = $2 \
         WHERE id = $3 AND coop_org_id = $4 AND state = 'open' AND claimed_by = $5 AND claim_expires_at >= $2")
        .bind(new_state).bind(now.0).bind(case_id).bind(coop.0).bind(scope.account.0)
        .execute(c).await.map(|r| r.rows_affected()))?;
    if n == 0 {
        return Err(ModError::NotClaimed);
    }
    let state = if review {
        DecisionState::AwaitingApproval
    } else {
        DecisionState::Pending
    };
    let decision_id: i64 = on_tx!(&mut tx, c => sqlx::query_scalar(
        "INSERT INTO mod_decisions (case_id, instance_id, action, rule_ids, user_note, template, private_note, \
         decided_by, decided_at, state, notify_user) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id")
        .bind(case_id).bind(instance_id).bind(d.action.as_str()).bind(to_json(&d.rule_ids))
        .bind(d.user_note.as_ref().map(|n| n.text().to_owned()))
        .bind(d.user_note.as_ref().map(|n| n.template().to_owned()))
        .bind(&d.private_note).bind(scope.account.0).bind(now.0).bind(state.as_str())
        .bind(d.notify_user)
        .fetch_one(c).await)?;
    if !review {
        schedule_delivery(&mut tx, decision_id, case_id, now).await?;
    }
    audit(
        &mut tx,
        scope,
        "moderation.decide",
        serde_json::json!({
        "case_id": case_id, "decision_id": decision_id, "instance_id": instance_id,
        "action": d.action, "rule_ids": d.rule_ids, "awaiting_approval": review }),
    )
    .await?;
    tx.commit().await?;
    Ok(DecisionOutcome { decision_id, state })
}

/// Loads (decision's case, instance, decider, state) checking the scope.
async fn decision_for_review(
    db: &Db,
    scope: &Scope,
    decision_id: i64,
) -> Result<(i64, i64, Option<i64>)> {
    let coop = scope.require_worker()?;
    let row: Option<(i64, i64, Option<i64>, String)> = on_pool!(db, p => sqlx::query_as(
        "SELECT d.case_id, d.instance_id, d.decided_by, d.state FROM mod_decisions d \
         JOIN mod_cases c ON c.id = d.case_id WHERE d.id = $1 AND c.coop_org_id = $2")
        .bind(decision_id).bind(coop.0).fetch_optional(p).await)?;
    let (case_id, instance_id, decided_by, state) = row.ok_or(ModError::NotFound("decision"))?;
    if state != DecisionState::AwaitingApproval.as_str() {
        return Err(ModError::NotAwaitingApproval);
    }
    if decided_by == Some(scope.account.0) {
        return Err(ModError::SelfReview);
    }
    Ok((case_id, instance_id, decided_by))
}

/// Approves a decision awaiting second review, by a moderator other than its decider: the
/// case closes and, in the same transaction, the delivery steps and the apply job are written.
/// Audited (`moderation.approve`).
pub async fn approve(db: &Db, scope: &Scope, decision_id: i64) -> Result<()> {
    retry_deadlock(|| approve_once(db, scope, decision_id)).await
}

async fn approve_once(db: &Db, scope: &Scope, decision_id: i64) -> Result<()> {
    let (case_id, instance_id, _) = decision_for_review(db, scope, decision_id).await?;
    let now = Timestamp::now();
    let mut tx = db.begin().await?;
    let n = on_tx!(&mut tx, c => sqlx::query(
        "UPDATE mod_decisions SET state = 'pending', reviewed_by = $1, reviewed_at = $2 \
         WHERE id = $3 AND state = 'awaiting_approval' AND (decided_by IS NULL OR decided_by <> $1)")
        .bind(scope.account.0).bind(now.0).bind(decision_id)
        .execute(c).await.map(|r| r.rows_affected()))?;
    if n == 0 {
        return Err(ModError::NotAwaitingApproval);
    }
    let n = on_tx!(&mut tx, c => sqlx::query(
        "UPDATE mod_cases SET state = 'closed', outcome = 'decided', closed_at = $1, updated_at = $1 \
         WHERE id = $2 AND state = 'awaiting_approval'")
        .bind(now.0).bind(case_id).execute(c).await.map(|r| r.rows_affected()))?;
    if n == 0 {
        return Err(ModError::WrongState(CaseState::Closed));
    }
    schedule_delivery(&mut tx, decision_id, case_id, now).await?;
    audit(
        &mut tx,
        scope,
        "moderation.approve",
        serde_json::json!({
        "case_id": case_id, "decision_id": decision_id, "instance_id": instance_id }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Rejects a decision awaiting second review (by a moderator other than its decider), with a
/// note: nothing is sent, the case goes back to the queue. Audited (`moderation.reject`).
pub async fn reject(db: &Db, scope: &Scope, decision_id: i64, note: &str) -> Result<()> {
    retry_deadlock(|| reject_once(db, scope, decision_id, note)).await
}

async fn reject_once(db: &Db, scope: &Scope, decision_id: i64, note: &str) -> Result<()> {
    let (case_id, instance_id, _) = decision_for_review(db, scope, decision_id).await?;
    let now = Timestamp::now();
    let mut tx = db.begin().await?;
    let n = on_tx!(&mut tx, c => sqlx::query(
        "UPDATE mod_decisions SET state = 'rejected', reviewed_by = $1, reviewed_at = $2, review_note = $3 \
         WHERE id = $4 AND state = 'awaiting_approval'")
        .bind(scope.account.0).bind(now.0).bind(note).bind(decision_id)
        .execute(c).await.map(|r| r.rows_affected()))?;
    if n == 0 {
        return Err(ModError::NotAwaitingApproval);
    }
    on_tx!(&mut tx, c => sqlx::query(
        "UPDATE mod_cases SET state = 'open', updated_at = $1 WHERE id = $2 AND state = 'awaiting_approval'")
        .bind(now.0).bind(case_id).execute(c).await.map(|r| r.rows_affected()))?;
    audit(
        &mut tx,
        scope,
        "moderation.reject",
        serde_json::json!({
        "case_id": case_id, "decision_id": decision_id, "instance_id": instance_id, "note": note }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Escalates a case the caller holds to the instance's in-house moderators with a note
/// (required): the case leaves the co-op's queue (state `escalated`), the claim ends and the
/// reports are unassigned on the instance. Audited (`moderation.escalate`).
pub async fn escalate(db: &Db, scope: &Scope, case_id: i64, note: &str) -> Result<i64> {
    retry_deadlock(|| escalate_once(db, scope, case_id, note)).await
}

async fn escalate_once(db: &Db, scope: &Scope, case_id: i64, note: &str) -> Result<i64> {
    let coop = scope.require_worker()?;
    if note.trim().is_empty() {
        return Err(ModError::invalid("note", "say why the case is escalated"));
    }
    let now = Timestamp::now();
    let mut tx = db.begin().await?;
    let row: Option<(i64,)> = on_tx!(&mut tx, c => sqlx::query_as(
        "UPDATE mod_cases SET state = 'escalated', claimed_by = NULL, claimed_at = NULL, claim_expires_at = NULL, \
         updated_at = $1 WHERE id = $2 AND coop_org_id = $3 AND state = 'open' AND claimed_by = $4 \
         AND claim_expires_at >= $1 RETURNING instance_id")
        .bind(now.0).bind(case_id).bind(coop.0).bind(scope.account.0)
        .fetch_optional(c).await)?;
    let Some((instance_id,)) = row else {
        return Err(ModError::NotClaimed);
    };
    let id: i64 = on_tx!(&mut tx, c => sqlx::query_scalar(
        "INSERT INTO mod_escalations (case_id, instance_id, note, escalated_by, escalated_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id")
        .bind(case_id).bind(instance_id).bind(note).bind(scope.account.0).bind(now.0)
        .fetch_one(c).await)?;
    enqueue_assign(&mut tx, case_id, false, now.0).await?;
    audit(
        &mut tx,
        scope,
        "moderation.escalate",
        serde_json::json!({
        "case_id": case_id, "instance_id": instance_id, "escalation_id": id, "note": note }),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}
