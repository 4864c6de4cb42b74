//! Shared blocklists as a service (issue 6): sources refreshed on a schedule, consensus lists
//! over them, published feeds, and safe pushes to subscribed member instances.
//!
//! The public API, by module (every function takes the caller's organisation where tenancy
//! applies; another tenant's rows are `NotFound`):
//!
//! - [`sources`]: create/list/delete sources (url, instance, upload, feed), upload contents,
//!   refresh (conditional GET), health, refresh history and stored changes.
//! - [`lists`]: create lists (policy over sources: mergeplan, threshold, trust weights, max
//!   severity, allowlists, holds), rebuild, published entries with per-domain audit records,
//!   changes, held changes and their approval or rejection, visibility and feed tokens.
//! - [`feed`]: the published outputs (Mastodon CSV, FediBlockHole CSV, JSON) and the change
//!   feed, with ETags, for public or token-protected lists.
//! - [`push`]: subscriptions (review or automatic), locks, managed blocks, push plans (the
//!   previewed diff), approval, the push history, and the push runner (resumable).
//! - [`defed`]: coordinated defederation proposals, votes and outcomes.
//!
//! Jobs ([`register_jobs`]): `lists.refresh`, `lists.rebuild`, `lists.plan`, `lists.push`,
//! `lists.defed.close`. Every function a job runs is public too, so that tests and tools can
//! run the steps directly.

use std::sync::Arc;

use guildhall_core::OrgId;
use guildhall_db::jobs::{HandlerResult, Job, Registry};
use guildhall_db::secrets::Keyring;
use guildhall_db::Db;
use guildhall_mastodon::ClientConfig;

pub mod defed;
pub mod feed;
pub mod lists;
mod model;
pub mod push;
pub mod sources;

pub use guildhall_blocklist::Severity;
pub use model::{parse_severity, severity_serde, Actor, ChangeOp, Entry, ListsError, Result};

/// What the blocklist jobs need: the database, the keyring that unseals instance tokens, and
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

/// Every job kind this crate handles.
pub const JOB_KINDS: [&str; 5] = [
    sources::REFRESH_JOB,
    sources::REBUILD_JOB,
    push::PLAN_JOB,
    push::PUSH_JOB,
    defed::CLOSE_JOB,
];

fn payload_i64(job: &Job, key: &str) -> Result<i64> {
    job.payload
        .get(key)
        .and_then(|v| v.as_i64())
        .ok_or_else(|| ListsError::Invalid {
            field: "payload",
            message: format!("job {} has no {key}", job.id.0),
        })
}

/// Runs one job of this crate's kinds (what the registered handlers do). Rows deleted
/// meanwhile end a job quietly; a plan for an instance that is not connected does nothing
/// (connecting plans again); other errors are returned, so the job is retried.
pub async fn run_job(svc: &Services, job: &Job) -> Result<()> {
    let r = match job.kind.as_str() {
        sources::REFRESH_JOB => sources::run_refresh_job(svc, &job.payload).await,
        sources::REBUILD_JOB => lists::rebuild_list(&svc.db, payload_i64(job, "list_id")?)
            .await
            .map(|_| ()),
        push::PLAN_JOB => {
            match push::plan_instance(svc, OrgId(payload_i64(job, "org_id")?)).await {
                Err(ListsError::Conflict(_)) => Ok(()),
                r => r.map(|_| ()),
            }
        }
        push::PUSH_JOB => push::run_push(svc, payload_i64(job, "push_id")?)
            .await
            .map(|_| ()),
        defed::CLOSE_JOB => defed::close_proposal(&svc.db, payload_i64(job, "proposal_id")?)
            .await
            .map(|_| ()),
        other => Err(ListsError::Invalid {
            field: "kind",
            message: format!("not a lists job: {other}"),
        }),
    };
    match r {
        Err(ListsError::NotFound(_)) => Ok(()),
        r => r,
    }
}

/// Registers the blocklist job handlers (source refreshes, list rebuilds, push plans, pushes,
/// defederation deadlines): each runs [`run_job`].
pub fn register_jobs(registry: &mut Registry, services: &Services) {
    for kind in JOB_KINDS {
        let s = services.clone();
        registry.register(kind, move |job: Job| {
            let s = s.clone();
            async move {
                let r: HandlerResult = match run_job(&s, &job).await {
                    Ok(()) => Ok(()),
                    Err(e) => Err(Box::new(e)),
                };
                r
            }
        });
    }
}
