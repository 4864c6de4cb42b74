//! Reading cases: the case view (reports with copied statuses and media, decisions with their
//! delivery state, escalations, the account's history across every instance of the co-op),
//! media bytes, the second-review list, escalations, an instance's decisions.

use guildhall_core::{AccountId, Timestamp};
use guildhall_db::{on_pool, Db};
use serde::Serialize;

use crate::error::{ModError, Result};
use crate::links::{link_of, stored_rules};
use crate::model::{
    Action, Category, CopyState, DecisionState, InstanceRule, LinkSettings, StepKind, StepState,
};
use crate::queue::{summaries, CaseSummary};
use crate::scope::{Scope, ScopeKind};
use crate::sql::{stored, stored_json, Params};

/// A copied media item (its bytes are served by [`media`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MediaView {
    /// Its id (for [`media`]).
    pub id: i64,
    /// `image`, `video`, `gifv`, `audio`, `unknown`.
    pub kind: String,
    /// The URL on the instance when copied.
    pub url: Option<String>,
    /// The preview URL.
    pub preview_url: Option<String>,
    /// Alt text.
    pub description: Option<String>,
    /// How far the bytes were copied.
    pub copy_state: CopyState,
    /// Why copying failed.
    pub copy_error: Option<String>,
    /// The stored size in bytes.
    pub size: Option<i64>,
}

/// A reported status as copied when the report arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusView {
    /// The status id on the instance.
    pub remote_id: String,
    /// Its URL.
    pub url: Option<String>,
    /// Its HTML content (as sent by the instance: escape or sanitise before showing).
    pub content: String,
    /// Its content warning.
    pub spoiler_text: String,
    /// Its language.
    pub language: Option<String>,
    /// Marked sensitive.
    pub sensitive: bool,
    /// When it was posted.
    pub created_at: Option<String>,
    /// Its media.
    pub media: Vec<MediaView>,
}

/// A report of a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportView {
    /// Its id here.
    pub id: i64,
    /// Its id on the instance.
    pub remote_id: String,
    /// Its category.
    pub category: Category,
    /// The rules it cites.
    pub rule_ids: Vec<String>,
    /// The reporter's comment.
    pub comment: String,
    /// Forwarded flag.
    pub forwarded: bool,
    /// The reporter (`user` or `user@domain`; for forwarded reports the remote instance actor).
    pub reporter_acct: String,
    /// The reporter's domain when remote ("forwarded from").
    pub reporter_domain: Option<String>,
    /// Resolved on the instance.
    pub resolved: bool,
    /// Who it is assigned to on the instance.
    pub assigned_acct: Option<String>,
    /// Filed at (instance's time).
    pub created_at: Option<String>,
    /// Last changed at (instance's time).
    pub updated_at: Option<String>,
    /// The reported statuses.
    pub statuses: Vec<StatusView>,
}

/// One delivery step of a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepView {
    /// The account action or resolving a report.
    pub kind: StepKind,
    /// The report (id on the instance).
    pub report_remote_id: String,
    /// Its state.
    pub state: StepState,
    /// Attempts made.
    pub attempts: i64,
    /// The last error (the server's message).
    pub last_error: Option<String>,
}

/// A decision and how far it reached the instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionView {
    /// Its id.
    pub id: i64,
    /// The case.
    pub case_id: i64,
    /// The instance it applies on.
    pub instance_id: i64,
    /// The action.
    pub action: Action,
    /// The cited rules.
    pub rule_ids: Vec<String>,
    /// The note sent to the user.
    pub user_note: Option<String>,
    /// The template it came from.
    pub template: Option<String>,
    /// The private note (co-op and the instance's admins).
    pub private_note: String,
    /// Who decided.
    pub decided_by: Option<AccountId>,
    /// When.
    pub decided_at: Timestamp,
    /// Its state (pending/delivered/failed show the delivery).
    pub state: DecisionState,
    /// Who approved or rejected it.
    pub reviewed_by: Option<AccountId>,
    /// When.
    pub reviewed_at: Option<Timestamp>,
    /// The rejection note.
    pub review_note: Option<String>,
    /// The server's message when delivery failed for good.
    pub failure: Option<String>,
    /// When the delivery finished.
    pub delivered_at: Option<Timestamp>,
    /// The delivery steps.
    pub steps: Vec<StepView>,
}

/// An escalation to the instance's own moderators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EscalationView {
    /// Its id.
    pub id: i64,
    /// The case.
    pub case_id: i64,
    /// The instance.
    pub instance_id: i64,
    /// The note.
    pub note: String,
    /// Who escalated.
    pub escalated_by: Option<AccountId>,
    /// When.
    pub escalated_at: Timestamp,
}

/// Another case about the same account (canonical `user@domain`) on any instance visible in
/// the scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    /// The case.
    pub case: CaseSummary,
    /// Its decisions, newest first.
    pub decisions: Vec<DecisionView>,
}

/// Everything about one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseView {
    /// The case.
    pub case: CaseSummary,
    /// Its reports, newest first.
    pub reports: Vec<ReportView>,
    /// Its decisions, newest first.
    pub decisions: Vec<DecisionView>,
    /// Its escalations.
    pub escalations: Vec<EscalationView>,
    /// Earlier and other cases about the same account, across the scope's instances
    /// (open ones first, then newest).
    pub history: Vec<HistoryEntry>,
    /// The actions a decision may take for this target.
    pub allowed_actions: Vec<Action>,
    /// Actions that need a second moderator on this instance.
    pub second_review: Vec<Action>,
    /// The instance's rules (a decision cites at least one).
    pub rules: Vec<InstanceRule>,
    /// The instance's note templates.
    pub settings: LinkSettings,
}

type MediaRow = (
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<i64>,
);
type MediaBytesRow = (i64, Option<i64>, Option<String>, Option<Vec<u8>>);

pub(crate) async fn decisions_where(
    db: &Db,
    where_sql: &str,
    params: &Params,
    with_private: bool,
    limit: u32,
) -> Result<Vec<DecisionView>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: i64,
        case_id: i64,
        instance_id: i64,
        action: String,
        rule_ids: String,
        user_note: Option<String>,
        template: Option<String>,
        private_note: String,
        decided_by: Option<i64>,
        decided_at: i64,
        state: String,
        reviewed_by: Option<i64>,
        reviewed_at: Option<i64>,
        review_note: Option<String>,
        failure: Option<String>,
        delivered_at: Option<i64>,
    }
    let sql = format!(
        "SELECT d.id, d.case_id, d.instance_id, d.action, d.rule_ids, d.user_note, d.template, d.private_note, \
         d.decided_by, d.decided_at, d.state, d.reviewed_by, d.reviewed_at, d.review_note, d.failure, d.delivered_at \
         FROM mod_decisions d JOIN mod_cases c ON c.id = d.case_id WHERE {where_sql} ORDER BY d.id DESC LIMIT {limit}"
    );
    let rows: Vec<Row> = on_pool!(db, p => crate::sql::bind_params!(sqlx::query_as(&sql), &params.0).fetch_all(p).await)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let steps: Vec<(String, String, String, i64, Option<String>)> = on_pool!(db, p => sqlx::query_as(
            "SELECT s.kind, r.remote_id, s.state, s.attempts, s.last_error FROM mod_delivery_steps s \
             JOIN mod_reports r ON r.id = s.report_id WHERE s.decision_id = $1 ORDER BY s.position")
            .bind(r.id).fetch_all(p).await)?;
        out.push(DecisionView {
            id: r.id,
            case_id: r.case_id,
            instance_id: r.instance_id,
            action: stored("mod_decisions.action", &r.action)?,
            rule_ids: stored_json("mod_decisions.rule_ids", &r.rule_ids)?,
            user_note: r.user_note,
            template: r.template,
            private_note: if with_private {
                r.private_note
            } else {
                String::new()
            },
            decided_by: r.decided_by.map(AccountId),
            decided_at: Timestamp(r.decided_at),
            state: stored("mod_decisions.state", &r.state)?,
            reviewed_by: r.reviewed_by.map(AccountId),
            reviewed_at: r.reviewed_at.map(Timestamp),
            review_note: r.review_note,
            failure: r.failure,
            delivered_at: r.delivered_at.map(Timestamp),
            steps: steps
                .into_iter()
                .map(|s| {
                    Ok(StepView {
                        kind: stored("mod_delivery_steps.kind", &s.0)?,
                        report_remote_id: s.1,
                        state: stored("mod_delivery_steps.state", &s.2)?,
                        attempts: s.3,
                        last_error: s.4,
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        });
    }
    Ok(out)
}

fn private_visible(scope: &Scope) -> bool {
    match scope.kind {
        ScopeKind::Coop { .. } => true,
        ScopeKind::Instance { admin, .. } => admin,
    }
}

/// The case `case_id` as seen in `scope` ([`ModError::NotFound`] when it is not visible
/// there): its reports with the copied statuses and media, decisions and their delivery,
/// escalations, and the account's history on every instance the scope sees (a co-op: all its
/// linked instances; an instance: its own).
pub async fn case(db: &Db, scope: &Scope, case_id: i64) -> Result<CaseView> {
    let mut p = Params::default();
    let cond = scope.case_condition(&mut p);
    let id = p.int(case_id);
    let mut found = summaries(db, &format!("{cond} AND c.id = {id}"), &p).await?;
    let summary = found.pop().ok_or(ModError::NotFound("case"))?;

    // Reports, statuses, media.
    #[derive(sqlx::FromRow)]
    struct ReportRow {
        id: i64,
        remote_id: String,
        category: String,
        rule_ids: String,
        comment: String,
        forwarded: bool,
        reporter_acct: String,
        reporter_domain: Option<String>,
        action_taken: bool,
        assigned_acct: Option<String>,
        remote_created_at: Option<String>,
        remote_updated_at: Option<String>,
    }
    let reports: Vec<ReportRow> = on_pool!(db, q => sqlx::query_as(
        "SELECT id, remote_id, category, rule_ids, comment, forwarded, reporter_acct, reporter_domain, \
         action_taken, assigned_acct, remote_created_at, remote_updated_at FROM mod_reports \
         WHERE case_id = $1 ORDER BY remote_num DESC, id DESC")
        .bind(case_id).fetch_all(q).await)?;
    let mut report_views = Vec::with_capacity(reports.len());
    for r in reports {
        #[derive(sqlx::FromRow)]
        struct StatusRow {
            id: i64,
            remote_id: String,
            url: Option<String>,
            content: String,
            spoiler_text: String,
            language: Option<String>,
            sensitive: bool,
            created_at: Option<String>,
        }
        let statuses: Vec<StatusRow> = on_pool!(db, q => sqlx::query_as(
            "SELECT id, remote_id, url, content, spoiler_text, language, sensitive, created_at \
             FROM mod_statuses WHERE report_id = $1 ORDER BY id")
            .bind(r.id).fetch_all(q).await)?;
        let mut sv = Vec::with_capacity(statuses.len());
        for s in statuses {
            let media: Vec<MediaRow> = on_pool!(db, q => sqlx::query_as(
                    "SELECT id, kind, url, preview_url, description, copy_state, copy_error, size \
                     FROM mod_media WHERE status_id = $1 ORDER BY id")
                    .bind(s.id).fetch_all(q).await)?;
            sv.push(StatusView {
                remote_id: s.remote_id,
                url: s.url,
                content: s.content,
                spoiler_text: s.spoiler_text,
                language: s.language,
                sensitive: s.sensitive,
                created_at: s.created_at,
                media: media
                    .into_iter()
                    .map(|m| {
                        Ok(MediaView {
                            id: m.0,
                            kind: m.1,
                            url: m.2,
                            preview_url: m.3,
                            description: m.4,
                            copy_state: stored("mod_media.copy_state", &m.5)?,
                            copy_error: m.6,
                            size: m.7,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
            });
        }
        report_views.push(ReportView {
            id: r.id,
            remote_id: r.remote_id,
            category: stored("mod_reports.category", &r.category)?,
            rule_ids: stored_json("mod_reports.rule_ids", &r.rule_ids)?,
            comment: r.comment,
            forwarded: r.forwarded,
            reporter_acct: r.reporter_acct,
            reporter_domain: r.reporter_domain,
            resolved: r.action_taken,
            assigned_acct: r.assigned_acct,
            created_at: r.remote_created_at,
            updated_at: r.remote_updated_at,
            statuses: sv,
        });
    }
    let with_private = private_visible(scope);
    let mut dp = Params::default();
    let w = format!("d.case_id = {}", dp.int(case_id));
    let decisions = decisions_where(db, &w, &dp, with_private, 500).await?;
    let escalations = escalations_where(db, "e.case_id = $1", case_id).await?;

    // History: the same account on every instance visible in the scope.
    let mut hp = Params::default();
    let hcond = scope.case_condition(&mut hp);
    let acct = hp.text(summary.target_acct.clone());
    let me = hp.int(case_id);
    let mut others = summaries(
        db,
        &format!("{hcond} AND c.target_acct = {acct} AND c.id <> {me} ORDER BY CASE WHEN c.state = 'closed' THEN 1 ELSE 0 END, c.id DESC LIMIT 100"),
        &hp,
    )
    .await?;
    let mut history = Vec::with_capacity(others.len());
    for c in others.drain(..) {
        let mut dp = Params::default();
        let w = format!("d.case_id = {}", dp.int(c.id));
        let decisions = decisions_where(db, &w, &dp, with_private, 500).await?;
        history.push(HistoryEntry { case: c, decisions });
    }
    let link = link_of(db, summary.instance_id).await?;
    let settings = link.map(|l| l.settings).unwrap_or_default();
    Ok(CaseView {
        allowed_actions: Action::allowed_for(summary.target_remote).to_vec(),
        second_review: settings.second_review.clone(),
        rules: stored_rules(db, summary.instance_id).await?,
        settings,
        case: summary,
        reports: report_views,
        decisions,
        escalations,
        history,
    })
}

async fn escalations_where(db: &Db, where_sql: &str, v: i64) -> Result<Vec<EscalationView>> {
    let sql = format!(
        "SELECT e.id, e.case_id, e.instance_id, e.note, e.escalated_by, e.escalated_at FROM mod_escalations e \
         WHERE {where_sql} ORDER BY e.id DESC LIMIT 500"
    );
    let rows: Vec<(i64, i64, i64, String, Option<i64>, i64)> =
        on_pool!(db, p => sqlx::query_as(&sql).bind(v).fetch_all(p).await)?;
    Ok(rows
        .into_iter()
        .map(|r| EscalationView {
            id: r.0,
            case_id: r.1,
            instance_id: r.2,
            note: r.3,
            escalated_by: r.4.map(AccountId),
            escalated_at: Timestamp(r.5),
        })
        .collect())
}

/// The bytes of a copied media item visible in `scope`: (content type, bytes). `NotFound`
/// when it is not visible or its bytes were not copied.
pub async fn media(db: &Db, scope: &Scope, media_id: i64) -> Result<(Option<String>, Vec<u8>)> {
    let row: Option<MediaBytesRow> = on_pool!(db, p => sqlx::query_as(
        "SELECT c.instance_id, c.coop_org_id, m.content_type, m.bytes FROM mod_media m \
         JOIN mod_statuses s ON s.id = m.status_id JOIN mod_reports r ON r.id = s.report_id \
         JOIN mod_cases c ON c.id = r.case_id WHERE m.id = $1")
        .bind(media_id).fetch_optional(p).await)?;
    match row {
        Some((instance, coop, ct, Some(bytes))) if scope.sees(instance, coop) => Ok((ct, bytes)),
        _ => Err(ModError::NotFound("media")),
    }
}

/// A decision waiting for a second moderator, with its case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingReview {
    /// The decision.
    pub decision: DecisionView,
    /// Its case.
    pub case: CaseSummary,
}

/// The second-review list of a co-op: decisions awaiting approval, oldest first. Each can be
/// approved or rejected by anyone in the co-op except its decider.
pub async fn review_list(db: &Db, scope: &Scope) -> Result<Vec<PendingReview>> {
    let coop = scope.require_worker()?;
    let mut p = Params::default();
    let w = format!(
        "c.coop_org_id = {} AND d.state = 'awaiting_approval'",
        p.int(coop.0)
    );
    let mut ds = decisions_where(db, &w, &p, true, 1000).await?;
    ds.reverse();
    let mut out = Vec::with_capacity(ds.len());
    for d in ds {
        let mut cp = Params::default();
        let w = format!("c.id = {}", cp.int(d.case_id));
        if let Some(case) = summaries(db, &w, &cp).await?.pop() {
            out.push(PendingReview { decision: d, case });
        }
    }
    Ok(out)
}

/// Escalated cases visible in `scope` (an instance's own moderators and admins see theirs; a
/// co-op sees those it escalated), newest first, with their escalation notes.
pub async fn escalations(db: &Db, scope: &Scope) -> Result<Vec<(EscalationView, CaseSummary)>> {
    let mut p = Params::default();
    let cond = scope.case_condition(&mut p);
    let cases = summaries(
        db,
        &format!("{cond} AND c.state = 'escalated' ORDER BY c.id DESC LIMIT 500"),
        &p,
    )
    .await?;
    let mut out = Vec::new();
    for c in cases {
        if let Some(e) = escalations_where(db, "e.case_id = $1", c.id)
            .await?
            .into_iter()
            .next()
        {
            out.push((e, c));
        }
    }
    Ok(out)
}

/// Decisions on the cases visible in `scope`, newest first (an instance admin's view of what
/// the co-op decided and whether it reached the instance; failures carry the server's
/// message). At most `limit`.
pub async fn decisions(
    db: &Db,
    scope: &Scope,
    state: Option<DecisionState>,
    limit: u32,
) -> Result<Vec<DecisionView>> {
    let mut p = Params::default();
    let mut w = scope.case_condition(&mut p);
    if let Some(s) = state {
        w.push_str(&format!(" AND d.state = {}", p.text(s.as_str())));
    }
    decisions_where(db, &w, &p, private_visible(scope), limit.clamp(1, 1000)).await
}
