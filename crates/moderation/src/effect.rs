//! Making decisions take effect: the `moderation.apply` job walks a decision's delivery steps
//! in order — the account action (with the report's id and the note), then resolving each
//! report — marking each step delivered as soon as the instance confirms it, so a retry (or a
//! restarted worker) never repeats a step that succeeded. A failure that will not recover (the
//! server refused, or the last attempt failed) marks the decision failed with the server's own
//! message. The `moderation.assign` job mirrors claims on the instance.

use guildhall_core::Timestamp;
use guildhall_db::audit::{append_in, NewAuditEntry};
use guildhall_db::jobs::Job;
use guildhall_db::{on_pool, on_tx, Db};
use guildhall_mastodon::models::AccountAction;
use serde_json::Value;

use crate::error::{ModError, Result};
use crate::model::Action;
use crate::sql::stored;
use crate::sync::client_for;
use crate::Services;

#[derive(sqlx::FromRow)]
struct DecisionRow {
    case_id: i64,
    instance_id: i64,
    action: String,
    user_note: Option<String>,
    notify_user: bool,
    state: String,
    target_account_id: String,
    coop_org_id: Option<i64>,
}

async fn audit_system(db: &Db, org: Option<i64>, action: &str, after: Value) -> Result<()> {
    let mut tx = db.begin().await?;
    append_in(
        &mut tx,
        &NewAuditEntry {
            actor_id: None,
            actor: "worker".into(),
            action: action.into(),
            org_id: org.map(guildhall_core::OrgId),
            before: None,
            after: Some(after),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn fail_decision(
    db: &Db,
    decision_id: i64,
    step_id: i64,
    message: &str,
    org: Option<i64>,
    case_id: i64,
) -> Result<()> {
    let now = Timestamp::now();
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, c => sqlx::query(
        "UPDATE mod_delivery_steps SET state = 'failed', last_error = $1, updated_at = $2 WHERE id = $3")
        .bind(message).bind(now.0).bind(step_id).execute(c).await.map(|r| r.rows_affected()))?;
    on_tx!(&mut tx, c => sqlx::query(
        "UPDATE mod_decisions SET state = 'failed', failure = $1 WHERE id = $2 AND state = 'pending'")
        .bind(message).bind(decision_id).execute(c).await.map(|r| r.rows_affected()))?;
    append_in(
        &mut tx,
        &NewAuditEntry {
            actor_id: None,
            actor: "worker".into(),
            action: "moderation.delivery_failed".into(),
            org_id: org.map(guildhall_core::OrgId),
            before: None,
            after: Some(serde_json::json!({ "decision_id": decision_id, "case_id": case_id, "error": message })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The `moderation.apply` handler.
pub(crate) async fn apply_job_handler(services: Services, job: Job) -> Result<()> {
    let db = &services.db;
    let decision_id = job
        .payload
        .get("decision_id")
        .and_then(Value::as_i64)
        .ok_or_else(|| ModError::invalid("payload", "moderation.apply job without decision_id"))?;
    let d: Option<DecisionRow> = on_pool!(db, p => sqlx::query_as(
        "SELECT d.case_id, d.instance_id, d.action, d.user_note, d.notify_user, d.state, c.target_account_id, c.coop_org_id \
         FROM mod_decisions d JOIN mod_cases c ON c.id = d.case_id WHERE d.id = $1")
        .bind(decision_id).fetch_optional(p).await)?;
    let Some(d) = d else { return Ok(()) };
    if d.state != "pending" {
        return Ok(());
    }
    let action: Action = stored("mod_decisions.action", &d.action)?;
    let steps: Vec<(i64, String, String, String)> = on_pool!(db, p => sqlx::query_as(
        "SELECT s.id, s.kind, s.state, r.remote_id FROM mod_delivery_steps s JOIN mod_reports r ON r.id = s.report_id \
         WHERE s.decision_id = $1 ORDER BY s.position")
        .bind(decision_id).fetch_all(p).await)?;
    let last_attempt = job.attempts >= job.max_attempts;
    let client = match client_for(&services, d.instance_id).await {
        Ok(c) => c,
        Err(e) => {
            let msg = e.to_string();
            if last_attempt {
                if let Some((sid, ..)) = steps.iter().find(|s| s.2 != "delivered") {
                    fail_decision(db, decision_id, *sid, &msg, d.coop_org_id, d.case_id).await?;
                }
            }
            return Err(e);
        }
    };
    for (step_id, kind, state, remote_id) in &steps {
        if state == "delivered" {
            continue;
        }
        on_pool!(db, p => sqlx::query("UPDATE mod_delivery_steps SET attempts = attempts + 1, updated_at = $1 WHERE id = $2")
            .bind(Timestamp::now().0).bind(*step_id).execute(p).await.map(|r| r.rows_affected()))?;
        let result = if kind == "action" {
            let mut a = AccountAction::new(action.api_type()).for_report(remote_id.clone());
            a.text = d.user_note.clone();
            a.send_email_notification = Some(d.notify_user);
            client.account_action(&d.target_account_id, &a).await
        } else {
            client.resolve_report(remote_id, None).await.map(|_| ())
        };
        match result {
            Ok(()) => {
                on_pool!(db, p => sqlx::query(
                    "UPDATE mod_delivery_steps SET state = 'delivered', last_error = NULL, updated_at = $1 WHERE id = $2")
                    .bind(Timestamp::now().0).bind(*step_id).execute(p).await.map(|r| r.rows_affected()))?;
                if kind == "resolve" {
                    on_pool!(db, p => sqlx::query(
                        "UPDATE mod_reports SET action_taken = TRUE WHERE instance_id = $1 AND remote_id = $2")
                        .bind(d.instance_id).bind(remote_id).execute(p).await.map(|r| r.rows_affected()))?;
                }
            }
            Err(e) => {
                let msg = e.to_string();
                on_pool!(db, p => sqlx::query(
                    "UPDATE mod_delivery_steps SET last_error = $1, updated_at = $2 WHERE id = $3")
                    .bind(&msg).bind(Timestamp::now().0).bind(*step_id).execute(p).await.map(|r| r.rows_affected()))?;
                if !e.is_transient() || last_attempt {
                    fail_decision(db, decision_id, *step_id, &msg, d.coop_org_id, d.case_id)
                        .await?;
                    if !e.is_transient() {
                        // Retrying cannot help: the failure is recorded; the job ends.
                        return Ok(());
                    }
                }
                return Err(e.into());
            }
        }
    }
    let now = Timestamp::now();
    let n = on_pool!(db, p => sqlx::query(
        "UPDATE mod_decisions SET state = 'delivered', delivered_at = $1, failure = NULL WHERE id = $2 AND state = 'pending'")
        .bind(now.0).bind(decision_id).execute(p).await.map(|r| r.rows_affected()))?;
    if n > 0 {
        audit_system(db, d.coop_org_id, "moderation.delivered", serde_json::json!({
            "decision_id": decision_id, "case_id": d.case_id, "instance_id": d.instance_id, "action": action })).await?;
    }
    Ok(())
}

/// Whether the case's reports should be assigned on the instance now (a live claim on an open
/// case).
async fn claim_is_live(db: &Db, case_id: i64) -> Result<bool> {
    let row: Option<(String, Option<i64>, Option<i64>)> = on_pool!(db, p => sqlx::query_as(
        "SELECT state, claimed_by, claim_expires_at FROM mod_cases WHERE id = $1")
        .bind(case_id).fetch_optional(p).await)?;
    let now = Timestamp::now().0;
    Ok(matches!(row, Some((s, Some(_), Some(t))) if s == "open" && t >= now))
}

/// The `moderation.assign` handler: makes the instance show the case's current claim — its open
/// reports assigned to the service account while a claim is live, unassigned otherwise. It
/// reads the claim again after the calls and repeats if it changed meanwhile, so jobs that run
/// out of order still leave the instance matching the claim. Servers without these endpoints
/// (GoToSocial: 404) are skipped.
pub(crate) async fn assign_job_handler(services: Services, job: Job) -> Result<()> {
    let db = &services.db;
    let case_id = job
        .payload
        .get("case_id")
        .and_then(Value::as_i64)
        .ok_or_else(|| ModError::invalid("payload", "moderation.assign job without case_id"))?;
    let rows: Vec<(i64, String)> = on_pool!(db, p => sqlx::query_as(
        "SELECT instance_id, remote_id FROM mod_reports WHERE case_id = $1 AND action_taken = FALSE ORDER BY id")
        .bind(case_id).fetch_all(p).await)?;
    let Some(instance_id) = rows.first().map(|r| r.0) else {
        return Ok(());
    };
    let client = client_for(&services, instance_id).await?;
    for _ in 0..3 {
        let assign = claim_is_live(db, case_id).await?;
        for (_, rid) in &rows {
            let r = if assign {
                client.assign_report_to_self(rid).await
            } else {
                client.unassign_report(rid).await
            };
            match r {
                Ok(_) => {}
                Err(e) if !e.is_transient() => {
                    tracing::info!(case = case_id, report = %rid, error = %e, "claim not mirrored on the instance");
                }
                Err(e) => return Err(e.into()),
            }
        }
        if claim_is_live(db, case_id).await? == assign {
            break;
        }
    }
    Ok(())
}

/// Marks failed the pending decisions whose apply job died without recording it (its lease ran
/// out on the last attempt: the worker was lost), with the job's last error. Run by each sync
/// job. Returns how many.
pub async fn reconcile_dead_deliveries(db: &Db) -> Result<u64> {
    let rows: Vec<(i64, i64, Option<i64>, Option<String>)> = on_pool!(db, p => sqlx::query_as(
        "SELECT d.id, d.case_id, c.coop_org_id, j.last_error FROM mod_decisions d \
         JOIN mod_cases c ON c.id = d.case_id \
         JOIN jobs j ON j.kind = 'moderation.apply' AND j.state = 'dead' \
         AND j.dedup_key = 'mod-apply:' || CAST(d.id AS TEXT) \
         WHERE d.state = 'pending'")
        .fetch_all(p).await)?;
    let n = rows.len() as u64;
    for (decision_id, case_id, coop, err) in rows {
        let step: Option<(i64,)> = on_pool!(db, p => sqlx::query_as(
            "SELECT id FROM mod_delivery_steps WHERE decision_id = $1 AND state <> 'delivered' ORDER BY position LIMIT 1")
            .bind(decision_id).fetch_optional(p).await)?;
        let msg = err.unwrap_or_else(|| "the delivery job failed".to_owned());
        if let Some((sid,)) = step {
            fail_decision(db, decision_id, sid, &msg, coop, case_id).await?;
        }
    }
    Ok(n)
}

/// Tries a failed decision again (for example after the instance's admin fixed the service
/// account's permissions): its failed steps become pending and a new apply job is queued, in
/// one transaction. Co-op moderators, or the instance's owners and admins, may do it. Audited
/// (`moderation.retry`).
pub async fn retry_decision(db: &Db, scope: &crate::Scope, decision_id: i64) -> Result<()> {
    let row: Option<(i64, i64, Option<i64>, String)> = on_pool!(db, p => sqlx::query_as(
        "SELECT d.case_id, d.instance_id, c.coop_org_id, d.state FROM mod_decisions d \
         JOIN mod_cases c ON c.id = d.case_id WHERE d.id = $1")
        .bind(decision_id).fetch_optional(p).await)?;
    let Some((case_id, instance_id, coop, state)) = row else {
        return Err(ModError::NotFound("decision"));
    };
    if !scope.sees(instance_id, coop) {
        return Err(ModError::NotFound("decision"));
    }
    if let crate::ScopeKind::Instance { admin: false, .. } = scope.kind {
        return Err(ModError::Forbidden(
            "only the instance's owners and admins, or the co-op, retry deliveries".into(),
        ));
    }
    if state != "failed" {
        return Err(ModError::invalid(
            "decision",
            "only a failed decision can be retried",
        ));
    }
    let now = Timestamp::now();
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, c => sqlx::query(
        "UPDATE mod_delivery_steps SET state = 'pending', updated_at = $1 WHERE decision_id = $2 AND state = 'failed'")
        .bind(now.0).bind(decision_id).execute(c).await.map(|r| r.rows_affected()))?;
    on_tx!(&mut tx, c => sqlx::query(
        "UPDATE mod_decisions SET state = 'pending', failure = NULL WHERE id = $1 AND state = 'failed'")
        .bind(decision_id).execute(c).await.map(|r| r.rows_affected()))?;
    Db::enqueue_in(
        &mut tx,
        &guildhall_db::jobs::NewJob::new(
            crate::APPLY_JOB_KIND,
            serde_json::json!({ "decision_id": decision_id }),
        )
        .dedup(format!("mod-apply:{decision_id}"))
        .max_attempts(20),
    )
    .await?;
    crate::claims::audit(
        &mut tx,
        scope,
        "moderation.retry",
        serde_json::json!({
        "decision_id": decision_id, "case_id": case_id, "instance_id": instance_id }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
