//! The web layer's view of the audit log and the jobs table: thin adapters over
//! `guildhall_db` (audit before/after as JSON values, job states with field-level parse errors).

use guildhall_core::{AccountId, JobId, OrgId, Timestamp};
use serde::Serialize;

use crate::error::AppError;
use crate::AppState;

/// One audit entry as shown.
#[derive(Debug, Clone, Serialize)]
pub struct AuditView {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When.
    pub at: Timestamp,
    /// Who (account id), when a person did it.
    pub actor_id: Option<AccountId>,
    /// Who (as recorded).
    pub actor: String,
    /// What.
    pub action: String,
    /// Which organisation.
    pub org_id: Option<OrgId>,
    /// Before.
    pub before: Option<serde_json::Value>,
    /// After.
    pub after: Option<serde_json::Value>,
}

/// The state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStateView {
    /// Waiting to run.
    Queued,
    /// Claimed by a worker.
    Running,
    /// Finished.
    Done,
    /// Out of attempts.
    Dead,
}

impl JobStateView {
    /// Every state.
    pub const ALL: [JobStateView; 4] = [
        JobStateView::Queued,
        JobStateView::Running,
        JobStateView::Done,
        JobStateView::Dead,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStateView::Queued => "queued",
            JobStateView::Running => "running",
            JobStateView::Done => "done",
            JobStateView::Dead => "dead",
        }
    }

    /// Parses a stored name; the error names the field `state`.
    pub fn parse(s: &str) -> Result<JobStateView, AppError> {
        JobStateView::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                AppError::invalid("state", "must be one of: queued, running, done, dead")
            })
    }
}

/// A job as shown.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    /// Its id.
    pub id: JobId,
    /// What kind of work.
    pub kind: String,
    /// Its state.
    pub state: JobStateView,
    /// Attempts made.
    pub attempts: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// The last failure.
    pub last_error: Option<String>,
    /// Last change.
    pub updated_at: Timestamp,
}

fn job_view(j: guildhall_db::jobs::Job) -> JobView {
    use guildhall_db::jobs::JobState as S;
    JobView {
        id: j.id,
        kind: j.kind,
        state: match j.state {
            S::Queued => JobStateView::Queued,
            S::Running => JobStateView::Running,
            S::Done => JobStateView::Done,
            S::Dead => JobStateView::Dead,
        },
        attempts: j.attempts,
        max_attempts: j.max_attempts,
        last_error: j.last_error,
        updated_at: j.updated_at,
    }
}

fn db_state(s: JobStateView) -> guildhall_db::jobs::JobState {
    use guildhall_db::jobs::JobState as S;
    match s {
        JobStateView::Queued => S::Queued,
        JobStateView::Running => S::Running,
        JobStateView::Done => S::Done,
        JobStateView::Dead => S::Dead,
    }
}

fn parse_json(text: Option<String>) -> Option<serde_json::Value> {
    text.map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t)))
}

/// The newest `limit` audit entries (of one organisation, or all), newest first.
pub async fn audit_entries(
    st: &AppState,
    org: Option<OrgId>,
    limit: u32,
) -> Result<Vec<AuditView>, AppError> {
    Ok(st
        .db
        .audit_entries(org, None, limit)
        .await?
        .into_iter()
        .map(|e| AuditView {
            seq: e.seq.0,
            at: e.at,
            actor_id: e.actor_id,
            actor: e.actor,
            action: e.action,
            org_id: e.org_id,
            before: parse_json(e.before_json),
            after: parse_json(e.after_json),
        })
        .collect())
}

/// Verifies the chain: `Ok(Ok(n))` when intact after `n` entries, `Ok(Err(why))` naming the
/// first broken link.
pub async fn verify_audit(st: &AppState) -> Result<Result<u64, String>, AppError> {
    let v = st.db.verify_audit().await?;
    Ok(match v.first_broken {
        None => Ok(v.entries),
        Some(b) => Err(format!("entry #{}: {}", b.seq, b.reason)),
    })
}

/// Job counts by state (every state, zeros included).
pub async fn job_counts(st: &AppState) -> Result<Vec<(JobStateView, i64)>, AppError> {
    let counts = st.db.job_counts().await?;
    Ok(JobStateView::ALL
        .iter()
        .map(|s| {
            let n = counts
                .iter()
                .find(|(d, _)| *d == db_state(*s))
                .map(|(_, n)| *n)
                .unwrap_or(0);
            (*s, n)
        })
        .collect())
}

/// Jobs in a state, most recently changed first.
pub async fn jobs_in_state(
    st: &AppState,
    state: JobStateView,
    limit: u32,
) -> Result<Vec<JobView>, AppError> {
    Ok(st
        .db
        .jobs_in_state(db_state(state), limit)
        .await?
        .into_iter()
        .map(job_view)
        .collect())
}

/// One job.
pub async fn job(st: &AppState, id: JobId) -> Result<Option<JobView>, AppError> {
    Ok(st.db.job(id).await?.map(job_view))
}
