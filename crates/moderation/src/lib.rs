//! The moderation co-op (issue 4): reports pulled and pushed from every member instance, cases
//! grouped by the reported account, one queue, claims, decisions citing the instance's rules,
//! and the jobs that make a decision take effect on the instance.
//!
//! # Model
//!
//! - **Tenancy.** A cooperative moderates the instances linked to it ([`link_instance`], granted
//!   by the instance's owner or admin; one co-op per instance). Every read and write takes a
//!   [`Scope`], made only by [`Scope::for_member`] from a membership: a co-op's moderators see
//!   the cases of its linked instances only; an instance's owners, admins and moderators see
//!   their own instance's cases and decisions.
//! - **Reports** are keyed by (instance, report id) and copied with their statuses and media
//!   (bytes too, by the `moderation.media` job, size-capped) so a case stays readable after the
//!   instance deletes them. They come from the `moderation.sync` job (scheduled per linked
//!   instance) and from recorded webhook deliveries (`mastodon.webhook`).
//! - **Cases**: one open case per (instance, reported account); reports against the same
//!   account on that instance join it. The case view shows the account's history across every
//!   instance the scope sees, matched by canonical `user@domain`.
//! - **Queue** ([`queue`]): filters (instance, category, rule, language, age, SLA state),
//!   ordered by SLA deadline then severity, with counts per filter value.
//! - **Claims** ([`claim`], [`release`], [`expire_claims`]): one atomic conditional update;
//!   mirrored on the instance with `assign_to_self`.
//! - **Decisions** ([`decide`], [`approve`], [`reject`], [`escalate`]): severe actions wait for a
//!   second moderator; otherwise the decision and its `moderation.apply` job are written in one
//!   transaction; the job delivers the account action (with `report_id`) and resolves each
//!   report, step by step, retried until done; a failure for good shows the server's message.
//!   A step that may have reached the instance without being recorded (an earlier attempt was
//!   counted) is first looked up on the instance and, when already in effect, recorded as
//!   delivered without being sent again (see the `effect` module). Linking needs a working
//!   admin connection; a changed sync interval moves the scheduled sync.
//! - **Audit**: link, claim, release, expiry, decision, approval, rejection, escalation,
//!   delivery, delivery confirmed on the instance and delivery failure are appended to the
//!   audit log.

use std::sync::Arc;

use guildhall_db::instances::WEBHOOK_JOB_KIND;
use guildhall_db::jobs::{Job, Registry};
use guildhall_db::secrets::Keyring;
use guildhall_db::Db;
use guildhall_mastodon::ClientConfig;

mod cases;
mod claims;
mod decisions;
mod effect;
mod error;
mod ingest;
mod links;
pub mod model;
mod queue;
mod scope;
mod sql;
mod sync;

pub use cases::{
    case, decisions, escalations, media, review_list, CaseView, DecisionView, EscalationView,
    HistoryEntry, MediaView, PendingReview, ReportView, StatusView, StepView,
};
pub use claims::{claim, expire_claims, release, Claim, ASSIGN_JOB_KIND};
pub use decisions::{
    approve, decide, escalate, reject, DecisionOutcome, NewDecision, APPLY_JOB_KIND,
};
pub use effect::{reconcile_dead_deliveries, retry_decision};
pub use error::{ModError, Result};
pub use ingest::{ingest_errors, IngestError};
pub use links::{
    connection_gap, link_instance, links, rules, schedule_syncs, sync_now, unlink_instance,
    update_settings, Link, SYNC_JOB_KIND,
};
pub use model::{
    Action, CaseState, Category, DecisionState, FilledNote, InstanceRule, LinkSettings,
    NoteTemplate, Outcome, SlaHours, SlaState, TemplateError,
};
pub use queue::{
    queue, CaseSummary, PageRequest, QueueCounts, QueueFilter, QueueResult, RuleRef, COUNT_CAP,
};
pub use scope::{Scope, ScopeKind};
pub use sync::{sync_instance, SyncReport, MEDIA_CAP_BYTES, MEDIA_JOB_KIND};

/// What the moderation jobs need: the database, the keyring that unseals instance tokens, and
/// the Mastodon client's settings. The binary builds it once and passes it to [`register_jobs`].
#[derive(Clone)]
pub struct Services {
    /// The database.
    pub db: Db,
    /// Unseals the instances' tokens.
    pub keyring: Arc<Keyring>,
    /// The Mastodon client's timeouts and retries.
    pub client: ClientConfig,
}

fn boxed(r: Result<()>) -> guildhall_db::jobs::HandlerResult {
    r.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
}

/// Registers the moderation job handlers: `moderation.sync` (pull reports), `mastodon.webhook`
/// (store a pushed report), `moderation.media` (copy media bytes), `moderation.assign` (mirror
/// claims), `moderation.apply` (make a decision take effect).
pub fn register_jobs(registry: &mut Registry, services: &Services) {
    let s = services.clone();
    registry.register(SYNC_JOB_KIND, move |job: Job| {
        let s = s.clone();
        async move { boxed(sync::sync_job_handler(s, job).await) }
    });
    let s = services.clone();
    registry.register(WEBHOOK_JOB_KIND, move |job: Job| {
        let s = s.clone();
        async move { boxed(sync::webhook_job_handler(s, job).await) }
    });
    let s = services.clone();
    registry.register(MEDIA_JOB_KIND, move |job: Job| {
        let s = s.clone();
        async move { boxed(sync::media_job_handler(s, job).await) }
    });
    let s = services.clone();
    registry.register(ASSIGN_JOB_KIND, move |job: Job| {
        let s = s.clone();
        async move { boxed(effect::assign_job_handler(s, job).await) }
    });
    let s = services.clone();
    registry.register(APPLY_JOB_KIND, move |job: Job| {
        let s = s.clone();
        async move { boxed(effect::apply_job_handler(s, job).await) }
    });
}
