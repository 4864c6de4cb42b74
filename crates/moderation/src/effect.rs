//! Making decisions take effect: the `moderation.apply` job walks a decision's delivery steps
//! in order — the account action (with the report's id and the note), then resolving each
//! report — marking each step delivered as soon as the instance confirms it, so a retry (or a
//! restarted worker) never repeats a step that succeeded. A failure that will not recover (the
//! server refused, or the last attempt failed) marks the decision failed with the server's own
//! message. The `moderation.assign` job mirrors claims on the instance.
//!
//! # Exactly once across a crash
//!
//! Each attempt at a step is counted (`attempts`) in its own committed write *before* the
//! request goes out. So a step that is still pending with `attempts > 0` may have reached the
//! instance even though it was never marked delivered (the worker died, the answer was lost,
//! or the write that records it failed). Before sending such a step again the job asks the
//! instance about the report (`GET /api/v1/admin/reports/:id`) and, when the step is already in
//! effect there, marks it delivered without sending it again (audited as
//! `moderation.delivery_confirmed`, "confirmed on the instance"). An account action is in
//! effect when the target account shows it (suspended, silenced, sensitized, disabled); a
//! warning (`none`), which changes no account state, when the report is resolved — by the
//! service account, when Guildhall knows which account its token belongs to (from the
//! connection check, or learned from the report of its first delivered action). A resolve step is
//! in effect when the report is resolved; a resolve the server refuses is also checked that
//! way, so an already-resolved report does not fail the decision.
//!
//! When the report cannot be read (deleted, or the token may not read reports), an account
//! action is looked for on the account itself (`GET /api/v1/admin/accounts/:id`). A warning
//! leaves no trace there, so it is not sent again without knowing: every action records a
//! strike on the account and may email the user, and a second warning for one decision would
//! be a wrong done to them. The decision fails instead, saying why, for a moderator to check
//! on the instance. A resolve, which the user never sees, is sent again.

use guildhall_core::Timestamp;
use guildhall_db::audit::{append_in, NewAuditEntry};
use guildhall_db::jobs::Job;
use guildhall_db::{on_pool, on_tx, Db};
use guildhall_mastodon::models::{AccountAction, AdminAccount, AdminReport};
use guildhall_mastodon::Client;
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

/// What the step helpers of one apply job share.
struct StepCtx<'a> {
    db: &'a Db,
    d: &'a DecisionRow,
    decision_id: i64,
    action: Action,
    /// The account the instance's token belongs to (`name`), when known.
    service_acct: Option<&'a str>,
}

impl StepCtx<'_> {
    /// Marks a step delivered (and a resolved report resolved in the copy).
    async fn delivered(&self, step_id: i64, kind: &str, remote_id: &str) -> Result<()> {
        let db = self.db;
        on_pool!(db, p => sqlx::query(
            "UPDATE mod_delivery_steps SET state = 'delivered', last_error = NULL, updated_at = $1 WHERE id = $2")
            .bind(Timestamp::now().0).bind(step_id).execute(p).await.map(|r| r.rows_affected()))?;
        if kind == "resolve" {
            on_pool!(db, p => sqlx::query(
                "UPDATE mod_reports SET action_taken = TRUE WHERE instance_id = $1 AND remote_id = $2")
                .bind(self.d.instance_id).bind(remote_id).execute(p).await.map(|r| r.rows_affected()))?;
        }
        Ok(())
    }

    /// Marks a step delivered that the instance shows in effect already, without sending it
    /// again; audited (`moderation.delivery_confirmed`).
    async fn confirmed(&self, step_id: i64, kind: &str, remote_id: &str) -> Result<()> {
        self.delivered(step_id, kind, remote_id).await?;
        audit_system(
            self.db,
            self.d.coop_org_id,
            "moderation.delivery_confirmed",
            serde_json::json!({
                "decision_id": self.decision_id, "case_id": self.d.case_id,
                "instance_id": self.d.instance_id, "step": kind, "report": remote_id,
                "action": self.action, "outcome": "confirmed on the instance" }),
        )
        .await
    }

    /// Records a step's last error.
    async fn note_error(&self, step_id: i64, msg: &str) -> Result<()> {
        let db = self.db;
        on_pool!(db, p => sqlx::query(
            "UPDATE mod_delivery_steps SET last_error = $1, updated_at = $2 WHERE id = $3")
            .bind(msg).bind(Timestamp::now().0).bind(step_id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Records a step's error and, when `fail` (the last attempt, or a failure retrying cannot
    /// help), fails the decision with it.
    async fn note_failure(&self, step_id: i64, msg: &str, fail: bool) -> Result<()> {
        self.note_error(step_id, msg).await?;
        if fail {
            let d = self.d;
            fail_decision(
                self.db,
                self.decision_id,
                step_id,
                msg,
                d.coop_org_id,
                d.case_id,
            )
            .await?;
        }
        Ok(())
    }
}

/// Whether the instance's report shows the step in effect already (see the module doc).
fn report_shows(
    report: &AdminReport,
    kind: &str,
    action: Action,
    service_acct: Option<&str>,
) -> bool {
    if kind != "action" {
        return report.action_taken;
    }
    account_shows(&report.target_account, action).unwrap_or_else(|| {
        // A warning changes no account state; with a report id it resolves that report.
        report.action_taken
            && match (service_acct, &report.action_taken_by_account) {
                (Some(me), Some(by)) => by.acct().eq_ignore_ascii_case(me),
                (Some(_), None) => false,
                (None, _) => true,
            }
    })
}

/// Whether the account shows the action in effect; `None` for a warning, which changes no
/// account state.
fn account_shows(t: &AdminAccount, action: Action) -> Option<bool> {
    match action {
        Action::Sensitive => Some(t.sensitized),
        Action::Disable => Some(t.disabled == Some(true)),
        Action::Silence => Some(t.silenced),
        Action::Suspend => Some(t.suspended),
        Action::None => None,
    }
}

/// Asks the instance whether a step is in effect already.
async fn in_effect(
    client: &Client,
    ctx: &StepCtx<'_>,
    kind: &str,
    remote_id: &str,
) -> std::result::Result<bool, guildhall_mastodon::Error> {
    let report = client.report(remote_id).await?;
    Ok(report_shows(&report, kind, ctx.action, ctx.service_acct))
}

/// Asks the instance whether the target account shows the decision's action; `None` for a
/// warning, which leaves no state on the account.
async fn action_on_account(
    client: &Client,
    ctx: &StepCtx<'_>,
) -> std::result::Result<Option<bool>, guildhall_mastodon::Error> {
    if ctx.action == Action::None {
        return Ok(None);
    }
    let account = client.admin_account(&ctx.d.target_account_id).await?;
    Ok(account_shows(&account, ctx.action))
}

/// Learns which account the instance's token acts as from the report our action just
/// resolved (its `action_taken_by_account`), when no check could read it (`read:accounts` is
/// not among the scopes Guildhall asks for). A later retry of a warning then tells our own
/// resolution from another moderator's (see the module doc). Best effort: a failure only means
/// it is learned from a later action.
async fn learn_service_account(client: &Client, db: &Db, instance_id: i64, remote_id: &str) {
    let learned = match client.report(remote_id).await {
        Ok(r) => match r.action_taken_by_account {
            Some(by) => db
                .learn_instance_account(instance_id, &format!("@{}", by.acct()))
                .await
                .map_err(|e| e.to_string()),
            None => Ok(false),
        },
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = learned {
        tracing::debug!(instance = instance_id, error = %e, "could not learn the service account");
    }
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
    let steps: Vec<(i64, String, String, String, i64)> = on_pool!(db, p => sqlx::query_as(
        "SELECT s.id, s.kind, s.state, r.remote_id, s.attempts FROM mod_delivery_steps s \
         JOIN mod_reports r ON r.id = s.report_id WHERE s.decision_id = $1 ORDER BY s.position")
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
    let service_acct = services
        .db
        .instance(d.instance_id)
        .await?
        .and_then(|i| i.account)
        .map(|a| a.trim_start_matches('@').to_owned());
    let step_ctx = StepCtx {
        db,
        d: &d,
        decision_id,
        action,
        service_acct: service_acct.as_deref(),
    };
    for (step_id, kind, state, remote_id, attempts) in &steps {
        if state == "delivered" {
            continue;
        }
        if *attempts > 0 {
            // An earlier attempt may have reached the instance without being recorded: look
            // before sending again.
            match in_effect(&client, &step_ctx, kind, remote_id).await {
                Ok(true) => {
                    step_ctx.confirmed(*step_id, kind, remote_id).await?;
                    continue;
                }
                Ok(false) => {}
                Err(e) if e.is_transient() => {
                    step_ctx
                        .note_failure(*step_id, &e.to_string(), last_attempt)
                        .await?;
                    return Err(e.into());
                }
                Err(e) if kind == "action" => {
                    // The report cannot be read: look at the account (see the module doc).
                    let unknown = match action_on_account(&client, &step_ctx).await {
                        Ok(Some(true)) => {
                            step_ctx.confirmed(*step_id, kind, remote_id).await?;
                            continue;
                        }
                        Ok(Some(false)) => None,
                        Ok(None) => Some(format!(
                            "an earlier attempt at this warning may have reached the instance, \
                             which would not show report {remote_id} ({e}); not sent again, so \
                             as not to warn the user twice: check the account on the instance"
                        )),
                        Err(ae) if ae.is_transient() => {
                            step_ctx
                                .note_failure(*step_id, &ae.to_string(), last_attempt)
                                .await?;
                            return Err(ae.into());
                        }
                        Err(ae) => Some(format!(
                            "an earlier attempt at this action may have reached the instance, \
                             which would show neither report {remote_id} ({e}) nor the account \
                             ({ae}); not sent again, so as not to act on the user twice: check \
                             the account on the instance"
                        )),
                    };
                    if let Some(msg) = unknown {
                        step_ctx.note_failure(*step_id, &msg, true).await?;
                        return Ok(());
                    }
                }
                Err(e) => {
                    tracing::warn!(decision = decision_id, step = *step_id, error = %e,
                        "could not ask the instance whether an earlier resolve took effect; resolving again");
                }
            }
        }
        // The attempt is recorded (committed) before the request goes out.
        on_pool!(db, p => sqlx::query("UPDATE mod_delivery_steps SET attempts = attempts + 1, updated_at = $1 WHERE id = $2")
            .bind(Timestamp::now().0).bind(*step_id).execute(p).await.map(|r| r.rows_affected()))?;
        let result = if kind == "action" {
            let mut a = AccountAction::new(action.api_type()).for_report(remote_id.clone());
            a.text = d.user_note.clone();
            a.send_email_notification = Some(d.notify_user);
            client.account_action(&d.target_account_id, &a).await
        } else {
            match client.resolve_report(remote_id, None).await {
                Ok(_) => Ok(()),
                // A server that refuses to resolve a report that is resolved already: that is
                // the outcome the step wants.
                Err(e) if !e.is_transient() => {
                    match in_effect(&client, &step_ctx, kind, remote_id).await {
                        Ok(true) => {
                            step_ctx.confirmed(*step_id, kind, remote_id).await?;
                            continue;
                        }
                        _ => Err(e),
                    }
                }
                Err(e) => Err(e),
            }
        };
        match result {
            Ok(()) => {
                step_ctx.delivered(*step_id, kind, remote_id).await?;
                if kind == "action" && step_ctx.service_acct.is_none() {
                    learn_service_account(&client, db, d.instance_id, remote_id).await;
                }
            }
            Err(e) => {
                let transient = e.is_transient();
                step_ctx
                    .note_failure(*step_id, &e.to_string(), !transient || last_attempt)
                    .await?;
                if !transient {
                    // Retrying cannot help: the failure is recorded; the job ends.
                    return Ok(());
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
