//! Subscriptions of member instances to lists, and pushing to them safely (FediCheck's
//! practice, reference blocklists.md §6, §6.1).
//!
//! - Guildhall records the blocks it manages on each instance ([`managed_blocks`]: domain,
//!   remote block id, what it set). The engine's ownership diff decides every write: a block the
//!   admin made is never changed or removed; a domain the admin locked ([`lock_domain`]) is left
//!   alone; a managed block an admin edited or deleted is handed over to the admin; a
//!   retraction removes only a managed block. Managed blocks carry the private comment
//!   `managed by Guildhall list <name>`.
//! - A plan ([`plan_instance`], job `lists.plan`) compares what the instance's subscriptions
//!   want with the instance's current blocks and records the steps BEFORE any is attempted
//!   ([`Push`], [`PushStep`]). Changes from a subscription in automatic mode with at most its
//!   limit of changes form a push that runs at once; the rest wait in one push with status
//!   `awaiting` (the previewed diff) until the instance's admin approves or rejects it.
//! - A push ([`run_push`], job `lists.push`) works through its pending steps in order and marks
//!   each done right after the instance accepted it; stopped halfway (outage, crash), the next
//!   run resumes at the first pending step. A create that finds a block Guildhall already made
//!   (its stamp) adopts it instead of failing, so no change is applied twice.
//! - One writer per instance: a push run and a plan of the same instance hold the instance's
//!   lease ([`InstanceLease`], a row in `lists_leases` with its holder and expiry, taken
//!   by one atomic upsert, renewed between steps, released at the end, and expiring on its
//!   own if the holder dies). A second run of the same push waits for it and then finds nothing
//!   pending; two pushes of one instance run one after the other. Decisions (approve, reject) and
//!   the plan's final transaction are serialised on the instance's organisation row
//!   (`FOR NO KEY UPDATE` on PostgreSQL; SQLite's single writer), and the plan re-checks in that
//!   transaction that no push was decided meanwhile, so an approval racing a plan never leaves
//!   the same change in two pushes.
//! - Follower guard: before suspending a domain, the instance is asked how many follow
//!   relationships its local accounts have with accounts on that domain ([`current_follows`]);
//!   if any, the step is held for the admin (approve with `force_followed`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use guildhall_blocklist::diff::{diff, DiffOptions, Ownership, Pushed, SkipReason};
use guildhall_blocklist::{normalize_domain, BlockEntry, Severity};
use guildhall_core::{OrgId, OrgKind, Timestamp};
use guildhall_db::audit::append_in;
use guildhall_db::jobs::NewJob;
use guildhall_db::{on_pool, on_tx, Db, DbError, Tx};
use guildhall_mastodon::models::{DomainBlock, DomainBlockParams, MeasureQuery};
use guildhall_mastodon::{Client, Secret};
use serde::{Deserialize, Serialize};

use crate::feed::Access;
use crate::lists::list_row;
use crate::model::{
    corrupt, from_json, now, opt_json, to_json, utc_date, Actor, Entry, ListsError, Result,
};
use crate::Services;

/// The job kind that plans the pushes of one instance organisation.
pub const PLAN_JOB: &str = "lists.plan";
/// The job kind that runs one push.
pub const PUSH_JOB: &str = "lists.push";
/// The prefix of the private comment on every block Guildhall manages.
pub const STAMP_PREFIX: &str = "managed by Guildhall list ";
/// The first day of the follower guard's measure: before Mastodon's first release, so the
/// period covers every follow that exists.
pub const FOLLOWS_SINCE: &str = "2016-03-01";

pub(crate) fn plan_job(org: OrgId) -> NewJob {
    NewJob::new(PLAN_JOB, serde_json::json!({ "org_id": org.0 }))
        .dedup(format!("{PLAN_JOB}:{}", org.0))
        .max_attempts(5)
}

fn push_job(push: i64) -> NewJob {
    NewJob::new(PUSH_JOB, serde_json::json!({ "push_id": push }))
        .dedup(format!("{PUSH_JOB}:{push}"))
        .max_attempts(20)
}

/// How long an instance lease lasts unless renewed (a push renews it between steps).
const LEASE_FOR: Duration = Duration::from_secs(15 * 60);
/// A renewal within this long of the last one is skipped (one write per minute at most, not
/// one per step).
const RENEW_EVERY: Duration = Duration::from_secs(60);
/// How long a run or plan waits for a busy instance before giving up ([`ListsError::Busy`]; the
/// job is retried).
const LEASE_WAIT: Duration = Duration::from_secs(30);

/// The lease on one instance: while held, nobody else runs a push or a plan for it.
pub struct InstanceLease {
    db: Db,
    org: OrgId,
    holder: String,
    renewed: std::sync::Mutex<Instant>,
}

impl InstanceLease {
    /// Takes the lease of `org`, waiting up to 30 s while another holder has it
    /// ([`ListsError::Busy`] then). An expired lease (its holder died) is taken over.
    pub async fn take(db: &Db, org: OrgId) -> Result<InstanceLease> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let holder = format!(
            "{}:{}:{}",
            std::process::id(),
            Timestamp::now().0,
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let deadline = Instant::now() + LEASE_WAIT;
        loop {
            let t = Timestamp::now();
            // One statement: on PostgreSQL a concurrent upsert waits for this one and then
            // re-checks the condition; SQLite has a single writer.
            let n = on_pool!(db, c => sqlx::query(
                "INSERT INTO lists_leases (org_id, holder, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (org_id) DO UPDATE SET holder = excluded.holder, \
                 expires_at = excluded.expires_at WHERE lists_leases.expires_at < $4")
                .bind(org.0).bind(&holder).bind(t.plus(LEASE_FOR).0).bind(t.0)
                .execute(c).await.map(|r| r.rows_affected()))
            .map_err(DbError::from)?;
            if n == 1 {
                return Ok(InstanceLease {
                    db: db.clone(),
                    org,
                    holder,
                    renewed: std::sync::Mutex::new(Instant::now()),
                });
            }
            if Instant::now() >= deadline {
                return Err(ListsError::Busy(
                    "another push or plan of this instance is running".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Renews the lease (at most once a minute; sooner calls do nothing);
    /// [`ListsError::Busy`] if it was lost (it expired and another holder took it): the caller
    /// must stop writing.
    pub async fn renew(&self) -> Result<()> {
        if self
            .renewed
            .lock()
            .map(|t| t.elapsed() < RENEW_EVERY)
            .unwrap_or(false)
        {
            return Ok(());
        }
        let n = on_pool!(&self.db, c => sqlx::query(
            "UPDATE lists_leases SET expires_at = $1 WHERE org_id = $2 AND holder = $3")
            .bind(Timestamp::now().plus(LEASE_FOR).0).bind(self.org.0).bind(&self.holder)
            .execute(c).await.map(|r| r.rows_affected()))
        .map_err(DbError::from)?;
        if n == 1 {
            if let Ok(mut t) = self.renewed.lock() {
                *t = Instant::now();
            }
            Ok(())
        } else {
            Err(ListsError::Busy(
                "the instance lease expired and was taken over".into(),
            ))
        }
    }

    /// Releases the lease (if still held).
    pub async fn release(self) -> Result<()> {
        on_pool!(&self.db, c => sqlx::query(
            "DELETE FROM lists_leases WHERE org_id = $1 AND holder = $2")
            .bind(self.org.0).bind(&self.holder)
            .execute(c).await.map(|r| r.rows_affected()))
        .map_err(DbError::from)?;
        Ok(())
    }
}

/// Runs `f` holding the lease of `org`, and releases it whatever `f` returned.
async fn with_lease<T, F, Fut>(db: &Db, org: OrgId, f: F) -> Result<T>
where
    F: FnOnce(InstanceLease) -> Fut,
    Fut: std::future::Future<Output = (InstanceLease, Result<T>)>,
{
    let lease = InstanceLease::take(db, org).await?;
    let (lease, r) = f(lease).await;
    let released = lease.release().await;
    let v = r?;
    released?;
    Ok(v)
}

/// Serialises a decision or a plan's final transaction on the organisation row of `org`
/// (PostgreSQL; SQLite's `BEGIN IMMEDIATE` already holds the single write lock).
async fn lock_org_in(tx: &mut Tx, org: OrgId) -> Result<()> {
    if let Tx::Postgres(t) = tx {
        sqlx::query("SELECT id FROM organisations WHERE id = $1 FOR NO KEY UPDATE")
            .bind(org.0)
            .fetch_optional(&mut **t)
            .await
            .map_err(DbError::from)?;
    }
    Ok(())
}

/// The private comment stamped on blocks pushed for `list`.
pub fn stamp(list: &str) -> String {
    format!("{STAMP_PREFIX}{list}")
}

/// How a subscription applies changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Every change waits for the admin's approval of a previewed diff.
    Review,
    /// A batch of at most `auto_limit` changes is applied at once; larger batches are held.
    Automatic,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Review => "review",
            Mode::Automatic => "automatic",
        }
    }

    fn parse(s: &str) -> Result<Mode> {
        match s {
            "review" => Ok(Mode::Review),
            "automatic" => Ok(Mode::Automatic),
            other => Err(corrupt("lists_subscriptions.mode", other)),
        }
    }
}

/// An instance's subscription to a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subscription {
    /// Its id.
    pub id: i64,
    /// The instance organisation.
    pub org_id: OrgId,
    /// The list.
    pub list_id: i64,
    /// The list's name.
    pub list_name: String,
    /// Review or automatic.
    pub mode: Mode,
    /// Automatic mode: the largest batch applied without approval.
    pub auto_limit: i64,
    /// When it was made.
    pub created_at: Timestamp,
}

/// Subscribes the instance organisation `org` to a list it may read (a public list, its own,
/// or a token-protected one with `token`), or changes the mode of an existing subscription.
/// A plan is enqueued. Audit: `lists.subscription.set`.
pub async fn subscribe(
    db: &Db,
    org: OrgId,
    actor: &Actor,
    list_id: i64,
    mode: Mode,
    auto_limit: u32,
    token: Option<&str>,
) -> Result<Subscription> {
    let o = db
        .organisation(org)
        .await?
        .ok_or(ListsError::NotFound("organisation"))?;
    if o.kind != OrgKind::Instance {
        return Err(ListsError::invalid(
            "org",
            "only an instance organisation can subscribe to a list",
        ));
    }
    let l = list_row(db, list_id).await?;
    let by_token = match token {
        Some(t) => crate::feed::can_read(db, Access::Token(t), list_id).await?,
        None => false,
    };
    if !(by_token || crate::feed::can_read(db, Access::Org(org), list_id).await?) {
        return Err(ListsError::NotFound("list"));
    }
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO lists_subscriptions (org_id, list_id, mode, auto_limit, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id, list_id) DO UPDATE SET \
         mode = excluded.mode, auto_limit = excluded.auto_limit")
        .bind(org.0).bind(list_id).bind(mode.as_str()).bind(i64::from(auto_limit)).bind(now())
        .execute(c).await.map(|r| r.rows_affected()))
    .map_err(DbError::from)?;
    Db::enqueue_in(&mut tx, &plan_job(org)).await?;
    append_in(
        &mut tx,
        &actor.audit(
            "lists.subscription.set",
            Some(org),
            serde_json::json!({"list_id": list_id, "list": l.name, "mode": mode.as_str(),
                "auto_limit": auto_limit}),
        ),
    )
    .await?;
    tx.commit().await?;
    subscriptions(db, org)
        .await?
        .into_iter()
        .find(|s| s.list_id == list_id)
        .ok_or(ListsError::NotFound("subscription"))
}

/// Ends a subscription of `org`. The next plan proposes retracting the blocks Guildhall
/// pushed for that list only (admin-made and locked ones stay); with no subscription left to
/// decide the mode, those retractions wait for the admin's approval. Audit:
/// `lists.subscription.delete`.
pub async fn unsubscribe(db: &Db, org: OrgId, actor: &Actor, list_id: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    let n = on_tx!(&mut tx, c => sqlx::query(
        "DELETE FROM lists_subscriptions WHERE org_id = $1 AND list_id = $2")
        .bind(org.0).bind(list_id).execute(c).await.map(|r| r.rows_affected()))
    .map_err(DbError::from)?;
    if n == 0 {
        return Err(ListsError::NotFound("subscription"));
    }
    Db::enqueue_in(&mut tx, &plan_job(org)).await?;
    append_in(
        &mut tx,
        &actor.audit(
            "lists.subscription.delete",
            Some(org),
            serde_json::json!({"list_id": list_id}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The subscriptions of the instance organisation `org`, by id.
pub async fn subscriptions(db: &Db, org: OrgId) -> Result<Vec<Subscription>> {
    type Row = (i64, i64, i64, String, String, i64, i64);
    let rows: Vec<Row> = on_pool!(db, p => sqlx::query_as(
        "SELECT s.id, s.org_id, s.list_id, l.name, s.mode, s.auto_limit, s.created_at \
         FROM lists_subscriptions s JOIN lists_lists l ON l.id = s.list_id \
         WHERE s.org_id = $1 ORDER BY s.id")
        .bind(org.0).fetch_all(p).await)
    .map_err(DbError::from)?;
    rows.into_iter()
        .map(|r| {
            Ok(Subscription {
                id: r.0,
                org_id: OrgId(r.1),
                list_id: r.2,
                list_name: r.3,
                mode: Mode::parse(&r.4)?,
                auto_limit: r.5,
                created_at: Timestamp(r.6),
            })
        })
        .collect()
}

/// A domain the admin locked: Guildhall never writes it on this instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lock {
    /// The domain.
    pub domain: String,
    /// Who locked it.
    pub created_by: String,
    /// When.
    pub created_at: Timestamp,
}

fn norm(domain: &str) -> Result<String> {
    normalize_domain(domain)
        .map(|n| n.domain)
        .map_err(|e| ListsError::invalid("domain", e.to_string()))
}

/// Locks a domain on the instance of `org`. Audit: `lists.lock`.
pub async fn lock_domain(db: &Db, org: OrgId, actor: &Actor, domain: &str) -> Result<Lock> {
    let d = norm(domain)?;
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO lists_locks (org_id, domain, created_by, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (org_id, domain) DO NOTHING")
        .bind(org.0).bind(&d).bind(&actor.name).bind(now())
        .execute(c).await.map(|r| r.rows_affected()))
    .map_err(DbError::from)?;
    append_in(
        &mut tx,
        &actor.audit("lists.lock", Some(org), serde_json::json!({"domain": d})),
    )
    .await?;
    tx.commit().await?;
    locks(db, org)
        .await?
        .into_iter()
        .find(|l| l.domain == d)
        .ok_or(ListsError::NotFound("lock"))
}

/// Unlocks a domain on the instance of `org` (a plan is enqueued). Audit: `lists.unlock`.
pub async fn unlock_domain(db: &Db, org: OrgId, actor: &Actor, domain: &str) -> Result<()> {
    let d = norm(domain)?;
    let mut tx = db.begin().await?;
    let n = on_tx!(&mut tx, c => sqlx::query(
        "DELETE FROM lists_locks WHERE org_id = $1 AND domain = $2")
        .bind(org.0).bind(&d).execute(c).await.map(|r| r.rows_affected()))
    .map_err(DbError::from)?;
    if n == 0 {
        return Err(ListsError::NotFound("lock"));
    }
    Db::enqueue_in(&mut tx, &plan_job(org)).await?;
    append_in(
        &mut tx,
        &actor.audit("lists.unlock", Some(org), serde_json::json!({"domain": d})),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The locks of `org`, by domain.
pub async fn locks(db: &Db, org: OrgId) -> Result<Vec<Lock>> {
    let rows: Vec<(String, String, i64)> = on_pool!(db, p => sqlx::query_as(
        "SELECT domain, created_by, created_at FROM lists_locks WHERE org_id = $1 ORDER BY domain")
        .bind(org.0).fetch_all(p).await)
    .map_err(DbError::from)?;
    Ok(rows
        .into_iter()
        .map(|r| Lock {
            domain: r.0,
            created_by: r.1,
            created_at: Timestamp(r.2),
        })
        .collect())
}

/// A block Guildhall manages on an instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ManagedBlock {
    /// The domain.
    pub domain: String,
    /// The instance's block id.
    pub remote_id: Option<String>,
    /// What Guildhall last set.
    pub pushed: Pushed,
    /// The list it came from.
    pub list_id: Option<i64>,
    /// That list's name.
    pub list_name: String,
    /// When it was last written.
    pub updated_at: Timestamp,
}

/// The blocks Guildhall manages on the instance of `org`, by domain.
pub async fn managed_blocks(db: &Db, org: OrgId) -> Result<Vec<ManagedBlock>> {
    type Row = (String, Option<String>, String, Option<i64>, String, i64);
    let rows: Vec<Row> = on_pool!(db, p => sqlx::query_as(
        "SELECT domain, remote_id, pushed, list_id, list_name, updated_at FROM lists_managed \
         WHERE org_id = $1 ORDER BY domain")
        .bind(org.0).fetch_all(p).await)
    .map_err(DbError::from)?;
    rows.into_iter()
        .map(|r| {
            Ok(ManagedBlock {
                domain: r.0,
                remote_id: r.1,
                pushed: from_json("lists_managed.pushed", &r.2)?,
                list_id: r.3,
                list_name: r.4,
                updated_at: Timestamp(r.5),
            })
        })
        .collect()
}

/// Where a push stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushStatus {
    /// Waiting for the instance admin's approval (the previewed diff).
    Awaiting,
    /// Approved or automatic; a job will run it.
    Pending,
    /// A job is working through it.
    Running,
    /// Every step was attempted (some may be held, skipped or failed: see the steps).
    Done,
    /// The admin rejected it.
    Rejected,
    /// Replaced by a newer plan before anyone decided.
    Superseded,
}

impl PushStatus {
    fn as_str(self) -> &'static str {
        match self {
            PushStatus::Awaiting => "awaiting",
            PushStatus::Pending => "pending",
            PushStatus::Running => "running",
            PushStatus::Done => "done",
            PushStatus::Rejected => "rejected",
            PushStatus::Superseded => "superseded",
        }
    }

    fn parse(s: &str) -> Result<PushStatus> {
        Ok(match s {
            "awaiting" => PushStatus::Awaiting,
            "pending" => PushStatus::Pending,
            "running" => PushStatus::Running,
            "done" => PushStatus::Done,
            "rejected" => PushStatus::Rejected,
            "superseded" => PushStatus::Superseded,
            other => return Err(corrupt("lists_pushes.status", other)),
        })
    }
}

/// What a step writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOp {
    /// `POST /api/v1/admin/domain_blocks`.
    Create,
    /// `PUT /api/v1/admin/domain_blocks/:id`.
    Update,
    /// `DELETE /api/v1/admin/domain_blocks/:id` (a retraction of a managed block).
    Delete,
}

impl StepOp {
    fn as_str(self) -> &'static str {
        match self {
            StepOp::Create => "create",
            StepOp::Update => "update",
            StepOp::Delete => "delete",
        }
    }

    fn parse(s: &str) -> Result<StepOp> {
        Ok(match s {
            "create" => StepOp::Create,
            "update" => StepOp::Update,
            "delete" => StepOp::Delete,
            other => return Err(corrupt("lists_push_steps.op", other)),
        })
    }
}

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Not attempted yet (or interrupted: attempted again on the next run).
    Pending,
    /// The instance accepted it (or already had exactly this).
    Done,
    /// Held: local accounts follow accounts on the domain (see `note`); approve with force.
    Held,
    /// Not written, on purpose (see `note`: admin block appeared, covered by a parent, …).
    Skipped,
    /// The instance refused it (see `note`).
    Failed,
}

impl StepState {
    fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Done => "done",
            StepState::Held => "held",
            StepState::Skipped => "skipped",
            StepState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<StepState> {
        Ok(match s {
            "pending" => StepState::Pending,
            "done" => StepState::Done,
            "held" => StepState::Held,
            "skipped" => StepState::Skipped,
            "failed" => StepState::Failed,
            other => return Err(corrupt("lists_push_steps.state", other)),
        })
    }
}

/// One recorded step of a push.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PushStep {
    /// Its id.
    pub id: i64,
    /// Its place in the push (steps run in this order).
    pub position: i64,
    /// What it writes.
    pub op: StepOp,
    /// The domain.
    pub domain: String,
    /// The instance's block before (update, delete).
    pub before: Option<Entry>,
    /// The block wanted (create, update).
    pub desired: Option<Entry>,
    /// The list it comes from.
    pub list_id: Option<i64>,
    /// That list's name.
    pub list_name: String,
    /// Where it stands.
    pub state: StepState,
    /// Whether the admin forced it past the follower guard.
    pub forced: bool,
    /// The instance's block id, once known.
    pub remote_id: Option<String>,
    /// Why it is held, skipped or failed; the last transient error of a pending step.
    pub note: Option<String>,
    /// When it was done.
    pub done_at: Option<Timestamp>,
}

/// A push to one instance: a plan of steps recorded before any is attempted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Push {
    /// Its id.
    pub id: i64,
    /// The instance organisation.
    pub org_id: OrgId,
    /// Where it stands.
    pub status: PushStatus,
    /// Why it exists (automatic / waiting for approval, with the lists and counts).
    pub reason: String,
    /// When it was planned.
    pub created_at: Timestamp,
    /// When the admin approved or rejected it.
    pub decided_at: Option<Timestamp>,
    /// Who did.
    pub decided_by: Option<String>,
    /// When its last step was attempted.
    pub finished_at: Option<Timestamp>,
    /// The last transient error (it will be retried).
    pub error: Option<String>,
    /// Steps by state: pending, done, held, skipped, failed.
    pub counts: StepCounts,
}

/// Step counts of a push.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StepCounts {
    /// Pending.
    pub pending: i64,
    /// Done.
    pub done: i64,
    /// Held (followed domains).
    pub held: i64,
    /// Skipped.
    pub skipped: i64,
    /// Failed.
    pub failed: i64,
}

type PushRow = (
    i64,
    i64,
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
);

const PUSH_COLUMNS: &str =
    "id, org_id, status, reason, created_at, decided_at, decided_by, finished_at, error";

/// How many steps of a push are in each state.
const STEP_COUNTS: &str =
    "SELECT state, COUNT(*) FROM lists_push_steps WHERE push_id = $1 GROUP BY state";

/// [`StepCounts`] from the rows of [`STEP_COUNTS`].
fn step_counts(rows: Vec<(String, i64)>) -> Result<StepCounts> {
    let mut c = StepCounts::default();
    for (s, n) in rows {
        match StepState::parse(&s)? {
            StepState::Pending => c.pending = n,
            StepState::Done => c.done = n,
            StepState::Held => c.held = n,
            StepState::Skipped => c.skipped = n,
            StepState::Failed => c.failed = n,
        }
    }
    Ok(c)
}

async fn push_from_row(db: &Db, r: PushRow) -> Result<Push> {
    let rows: Vec<(String, i64)> =
        on_pool!(db, p => sqlx::query_as(STEP_COUNTS).bind(r.0).fetch_all(p).await)
            .map_err(DbError::from)?;
    let c = step_counts(rows)?;
    Ok(Push {
        id: r.0,
        org_id: OrgId(r.1),
        status: PushStatus::parse(&r.2)?,
        reason: r.3,
        created_at: Timestamp(r.4),
        decided_at: r.5.map(Timestamp),
        decided_by: r.6,
        finished_at: r.7.map(Timestamp),
        error: r.8,
        counts: c,
    })
}

async fn push_any(db: &Db, id: i64) -> Result<Push> {
    let sql = format!("SELECT {PUSH_COLUMNS} FROM lists_pushes WHERE id = $1");
    let row: Option<PushRow> =
        on_pool!(db, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await)
            .map_err(DbError::from)?;
    push_from_row(db, row.ok_or(ListsError::NotFound("push"))?).await
}

/// A push of `org` (another organisation's is `NotFound`).
pub async fn push(db: &Db, org: OrgId, id: i64) -> Result<Push> {
    let p = push_any(db, id).await?;
    if p.org_id != org {
        return Err(ListsError::NotFound("push"));
    }
    Ok(p)
}

/// The pushes of `org`, newest first, at most `limit` (the push history).
pub async fn pushes(db: &Db, org: OrgId, limit: u32) -> Result<Vec<Push>> {
    let sql = format!(
        "SELECT {PUSH_COLUMNS} FROM lists_pushes WHERE org_id = $1 ORDER BY id DESC LIMIT $2"
    );
    let rows: Vec<PushRow> = on_pool!(db, p => sqlx::query_as(&sql)
        .bind(org.0).bind(i64::from(limit)).fetch_all(p).await)
    .map_err(DbError::from)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(push_from_row(db, r).await?);
    }
    Ok(out)
}

type StepRow = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    String,
    String,
    bool,
    Option<String>,
    Option<String>,
    Option<i64>,
);

fn step_from_row(r: StepRow) -> Result<PushStep> {
    Ok(PushStep {
        id: r.0,
        position: r.1,
        op: StepOp::parse(&r.2)?,
        domain: r.3,
        before: opt_json("lists_push_steps.before_json", &r.4)?,
        desired: opt_json("lists_push_steps.desired", &r.5)?,
        list_id: r.6,
        list_name: r.7,
        state: StepState::parse(&r.8)?,
        forced: r.9,
        remote_id: r.10,
        note: r.11,
        done_at: r.12.map(Timestamp),
    })
}

async fn steps_any(db: &Db, push: i64) -> Result<Vec<PushStep>> {
    let rows: Vec<StepRow> = on_pool!(db, p => sqlx::query_as(
        "SELECT id, position, op, domain, before_json, desired, list_id, list_name, state, forced, \
         remote_id, note, done_at FROM lists_push_steps WHERE push_id = $1 ORDER BY position")
        .bind(push).fetch_all(p).await)
    .map_err(DbError::from)?;
    rows.into_iter().map(step_from_row).collect()
}

/// The steps of a push of `org`, in order (the preview of an awaiting push; the record of a
/// done one).
pub async fn push_steps(db: &Db, org: OrgId, id: i64) -> Result<Vec<PushStep>> {
    push(db, org, id).await?;
    steps_any(db, id).await
}

/// The push of `org` waiting for approval, if any (the previewed diff).
pub async fn awaiting_push(db: &Db, org: OrgId) -> Result<Option<Push>> {
    let id: Option<i64> = on_pool!(db, p => sqlx::query_scalar(
        "SELECT id FROM lists_pushes WHERE org_id = $1 AND status = 'awaiting' ORDER BY id DESC LIMIT 1")
        .bind(org.0).fetch_optional(p).await)
    .map_err(DbError::from)?;
    match id {
        Some(id) => Ok(Some(push_any(db, id).await?)),
        None => Ok(None),
    }
}

/// Approves a push of `org`: an awaiting push becomes pending and runs. With
/// `force_followed`, steps held by the follower guard (in this push, whatever its status) are
/// made pending again and run without the guard. Audit: `lists.push.approve`.
pub async fn approve_push(
    db: &Db,
    org: OrgId,
    actor: &Actor,
    id: i64,
    force_followed: bool,
) -> Result<Push> {
    let p = push(db, org, id).await?;
    let mut tx = db.begin().await?;
    match p.status {
        PushStatus::Awaiting => {}
        PushStatus::Done | PushStatus::Pending | PushStatus::Running
            if force_followed && p.counts.held > 0 => {}
        s => {
            return Err(ListsError::Conflict(format!(
                "push {id} is {}, nothing to approve",
                s.as_str()
            )))
        }
    }
    lock_org_in(&mut tx, org).await?;
    // Conditional on the status read above: a plan that superseded the push (or another
    // decision) meanwhile wins, and this approval is refused rather than applied twice.
    let n = on_tx!(&mut tx, c => sqlx::query(
        "UPDATE lists_pushes SET status = 'pending', decided_at = $1, decided_by = $2 \
         WHERE id = $3 AND status = $4")
        .bind(now()).bind(&actor.name).bind(id).bind(p.status.as_str())
        .execute(c).await.map(|r| r.rows_affected()))
    .map_err(DbError::from)?;
    if n == 0 {
        return Err(ListsError::Conflict(format!(
            "push {id} changed meanwhile (replaced by a newer plan or decided): reload and try again"
        )));
    }
    if force_followed {
        on_tx!(&mut tx, c => sqlx::query(
            "UPDATE lists_push_steps SET forced = TRUE, \
             state = CASE WHEN state = 'held' THEN 'pending' ELSE state END WHERE push_id = $1")
            .bind(id).execute(c).await.map(|r| r.rows_affected()))
        .map_err(DbError::from)?;
    }
    // Its own job even while an earlier run of this push is finishing (the lease keeps runs
    // apart; that run may no longer see these steps).
    Db::enqueue_in(
        &mut tx,
        &push_job(id).dedup(format!("{PUSH_JOB}:{id}:approved:{}", now())),
    )
    .await?;
    append_in(
        &mut tx,
        &actor.audit(
            "lists.push.approve",
            Some(org),
            serde_json::json!({"push_id": id, "force_followed": force_followed}),
        ),
    )
    .await?;
    tx.commit().await?;
    push(db, org, id).await
}

/// Rejects an awaiting push of `org`: its changes are not proposed again as long as the lists
/// want exactly the same. Audit: `lists.push.reject`.
pub async fn reject_push(db: &Db, org: OrgId, actor: &Actor, id: i64) -> Result<Push> {
    let p = push(db, org, id).await?;
    if p.status != PushStatus::Awaiting {
        return Err(ListsError::Conflict(format!(
            "push {id} is {}, not awaiting approval",
            p.status.as_str()
        )));
    }
    let mut tx = db.begin().await?;
    lock_org_in(&mut tx, org).await?;
    let n = on_tx!(&mut tx, c => sqlx::query(
        "UPDATE lists_pushes SET status = 'rejected', decided_at = $1, decided_by = $2 \
         WHERE id = $3 AND status = 'awaiting'")
        .bind(now()).bind(&actor.name).bind(id).execute(c).await.map(|r| r.rows_affected()))
    .map_err(DbError::from)?;
    if n == 0 {
        return Err(ListsError::Conflict(format!(
            "push {id} changed meanwhile (replaced by a newer plan or decided): reload and try again"
        )));
    }
    append_in(
        &mut tx,
        &actor.audit(
            "lists.push.reject",
            Some(org),
            serde_json::json!({"push_id": id}),
        ),
    )
    .await?;
    tx.commit().await?;
    push(db, org, id).await
}

/// Asks for a new plan for the instance of `org` (a `lists.plan` job; `false` if one is
/// already queued). Use after connecting an instance, or to refresh the previewed diff.
pub async fn request_plan(db: &Db, org: OrgId) -> Result<bool> {
    Ok(db.enqueue(&plan_job(org)).await?.is_some())
}

/// What a plan did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PlanSummary {
    /// The push that runs at once (automatic changes), if any.
    pub automatic: Option<i64>,
    /// The push waiting for approval, if any (kept if unchanged).
    pub awaiting: Option<i64>,
    /// Domains not written, with why (admin-made, locked, handed over, covered).
    pub skipped: Vec<(String, String)>,
    /// True when a push was still running: planning waits for it (it plans again when done).
    pub deferred: bool,
}

async fn instance_client(svc: &Services, org: OrgId) -> Result<Client> {
    let inst = svc
        .db
        .instance_of_org(org)
        .await?
        .ok_or(ListsError::NotFound("instance"))?;
    let token = svc
        .db
        .get_secret(
            &svc.keyring,
            &guildhall_db::instances::token_secret_name(inst.id),
        )
        .await?
        .and_then(|v| v.expose_str().map(str::to_owned))
        .ok_or_else(|| ListsError::Conflict("the instance is not connected".into()))?;
    Ok(Client::new(
        &inst.base_url,
        Some(Secret::new(token)),
        svc.client.clone(),
    )?)
}

fn block_entry(b: &DomainBlock) -> BlockEntry {
    use guildhall_mastodon::models::Severity as S;
    BlockEntry {
        domain: normalize_domain(&b.domain)
            .map(|n| n.domain)
            .unwrap_or_else(|_| b.domain.to_ascii_lowercase()),
        severity: match b.effective_severity() {
            S::Noop => Severity::Noop,
            S::Silence => Severity::Silence,
            S::Suspend | S::Unknown => Severity::Suspend,
        },
        reject_media: b.reject_media.unwrap_or(false),
        reject_reports: b.reject_reports.unwrap_or(false),
        obfuscate: b.obfuscate,
        public_comment: b.public_comment.clone().unwrap_or_default(),
        private_comment: b.private_comment.clone().unwrap_or_default(),
    }
}

/// What the subscriptions of `org` want: per domain the strictest entry among its lists (the
/// first subscription wins a tie), with the list it comes from.
async fn desired_for(db: &Db, org: OrgId) -> Result<BTreeMap<String, (Entry, i64, String)>> {
    type Row = (i64, String, String);
    let rows: Vec<Row> = on_pool!(db, p => sqlx::query_as(
        "SELECT s.list_id, l.name, e.entry FROM lists_subscriptions s \
         JOIN lists_lists l ON l.id = s.list_id JOIN lists_entries e ON e.list_id = s.list_id \
         WHERE s.org_id = $1 ORDER BY s.id, e.domain")
        .bind(org.0).fetch_all(p).await)
    .map_err(DbError::from)?;
    let mut out: BTreeMap<String, (Entry, i64, String)> = BTreeMap::new();
    for (list_id, name, e) in rows {
        let mut e: Entry = from_json("lists_entries.entry", &e)?;
        e.private_comment = stamp(&name);
        match out.get(&e.domain) {
            Some((old, _, _)) if old.severity >= e.severity => {}
            _ => {
                out.insert(e.domain.clone(), (e, list_id, name));
            }
        }
    }
    Ok(out)
}

struct PlannedStep {
    op: StepOp,
    domain: String,
    before: Option<Entry>,
    desired: Option<Entry>,
    list_id: Option<i64>,
    list_name: String,
    remote_id: Option<String>,
}

impl PlannedStep {
    fn key(&self) -> Result<(String, String, Option<String>)> {
        Ok((
            self.op.as_str().to_string(),
            self.domain.clone(),
            self.desired.as_ref().map(to_json).transpose()?,
        ))
    }
}

/// Plans the pushes of the instance organisation `org` now (what the `lists.plan` job runs):
/// fetches the instance's blocks, diffs them with what its subscriptions want under the
/// ownership rules, records the steps, and enqueues the automatic push. See the module docs.
/// It holds the instance's lease (no push runs meanwhile), and its final transaction re-checks
/// that no push was approved, rejected or forced since it started (else [`ListsError::Busy`]:
/// the job plans again later).
///
/// When the lease stays busy (a long push is running), the plan is deferred rather than
/// failed: that push plans again when it is done.
pub async fn plan_instance(svc: &Services, org: OrgId) -> Result<PlanSummary> {
    let lease = match InstanceLease::take(&svc.db, org).await {
        Ok(l) => l,
        Err(ListsError::Busy(_)) => {
            return Ok(PlanSummary {
                deferred: true,
                ..PlanSummary::default()
            })
        }
        Err(e) => return Err(e),
    };
    let r = plan_leased(svc, org).await;
    let released = lease.release().await;
    let v = r?;
    released?;
    Ok(v)
}

/// What decisions change, per instance: awaiting, active and rejected pushes, held steps. A
/// plan compares it at its start and in its final transaction.
type Decisions = (i64, i64, i64, i64);

const DECISIONS_SQL: &str = "SELECT \
    (SELECT COUNT(*) FROM lists_pushes WHERE org_id = $1 AND status = 'awaiting'), \
    (SELECT COUNT(*) FROM lists_pushes WHERE org_id = $1 AND status IN ('pending', 'running')), \
    (SELECT COUNT(*) FROM lists_pushes WHERE org_id = $1 AND status = 'rejected'), \
    (SELECT COUNT(*) FROM lists_push_steps st JOIN lists_pushes p ON p.id = st.push_id \
     WHERE p.org_id = $1 AND st.state = 'held')";

async fn plan_leased(svc: &Services, org: OrgId) -> Result<PlanSummary> {
    let db = &svc.db;
    let decisions: Decisions = on_pool!(db, p => sqlx::query_as(DECISIONS_SQL)
        .bind(org.0).fetch_one(p).await)
    .map_err(DbError::from)?;
    if decisions.1 > 0 {
        return Ok(PlanSummary {
            deferred: true,
            ..PlanSummary::default()
        });
    }
    let client = instance_client(svc, org).await?;
    let remote = client.all_domain_blocks().await?;
    let mut ids: HashMap<String, String> = HashMap::new();
    let current: Vec<BlockEntry> = remote
        .iter()
        .map(|b| {
            let e = block_entry(b);
            ids.insert(e.domain.clone(), b.id.clone());
            e
        })
        .collect();
    let desired = desired_for(db, org).await?;
    let wanted: Vec<BlockEntry> = desired.values().map(|(e, _, _)| e.into()).collect();
    let managed = managed_blocks(db, org).await?;
    let mut own = Ownership::default();
    let mut managed_list: HashMap<String, (Option<i64>, String)> = HashMap::new();
    for m in &managed {
        own.managed.insert(m.domain.clone(), m.pushed.clone());
        managed_list.insert(m.domain.clone(), (m.list_id, m.list_name.clone()));
    }
    for l in locks(db, org).await? {
        own.locked.insert(l.domain);
    }
    let d = diff(&wanted, &current, &own, DiffOptions::default());
    let mut summary = PlanSummary::default();
    let mut handovers: Vec<String> = Vec::new();
    for (dom, why) in &d.skipped {
        if matches!(why, SkipReason::AdminEdited | SkipReason::AdminDeleted) {
            handovers.push(dom.clone());
        }
        summary.skipped.push((dom.clone(), why.to_string()));
    }
    let mut planned: Vec<PlannedStep> = Vec::new();
    let from = |dom: &str| -> (Option<i64>, String) {
        desired
            .get(dom)
            .map(|(_, id, n)| (Some(*id), n.clone()))
            .or_else(|| managed_list.get(dom).cloned())
            .unwrap_or((None, String::new()))
    };
    for c in &d.creates {
        let (list_id, list_name) = from(&c.domain);
        let mut want = Entry::from(c);
        want.private_comment = stamp(&list_name);
        planned.push(PlannedStep {
            op: StepOp::Create,
            domain: c.domain.clone(),
            before: None,
            desired: Some(want),
            list_id,
            list_name,
            remote_id: None,
        });
    }
    for (cur, want) in &d.updates {
        let (list_id, list_name) = from(&cur.domain);
        let mut w = Entry::from(want);
        w.private_comment = stamp(&list_name);
        planned.push(PlannedStep {
            op: StepOp::Update,
            domain: cur.domain.clone(),
            before: Some(Entry::from(cur)),
            desired: Some(w),
            list_id,
            list_name,
            remote_id: ids.get(&cur.domain).cloned(),
        });
    }
    for r in &d.removals {
        let (list_id, list_name) = managed_list
            .get(&r.domain)
            .cloned()
            .unwrap_or((None, String::new()));
        planned.push(PlannedStep {
            op: StepOp::Delete,
            domain: r.domain.clone(),
            before: Some(Entry::from(r)),
            desired: None,
            list_id,
            list_name,
            remote_id: ids.get(&r.domain).cloned(),
        });
    }
    // Steps held by the follower guard or rejected by the admin are not proposed again while
    // the lists want exactly the same; held steps no longer wanted are dropped.
    type Key = (String, String, Option<String>);
    let held_rows: Vec<(i64, String, String, Option<String>)> = on_pool!(db, p => sqlx::query_as(
        "SELECT st.id, st.op, st.domain, st.desired FROM lists_push_steps st \
         JOIN lists_pushes p ON p.id = st.push_id WHERE p.org_id = $1 AND st.state = 'held'")
        .bind(org.0).fetch_all(p).await)
    .map_err(DbError::from)?;
    let rejected_rows: Vec<(String, String, Option<String>)> = on_pool!(db, p => sqlx::query_as(
        "SELECT st.op, st.domain, st.desired FROM lists_push_steps st \
         JOIN lists_pushes p ON p.id = st.push_id WHERE p.org_id = $1 AND p.status = 'rejected'")
        .bind(org.0).fetch_all(p).await)
    .map_err(DbError::from)?;
    let all_keys: HashSet<Key> = planned.iter().map(|s| s.key()).collect::<Result<_>>()?;
    let mut excluded: HashSet<Key> = rejected_rows.into_iter().collect();
    let mut stale_held: Vec<i64> = Vec::new();
    for (id, op, dom, want) in held_rows {
        let k = (op, dom, want);
        if all_keys.contains(&k) {
            excluded.insert(k);
        } else {
            stale_held.push(id);
        }
    }
    let mut kept = Vec::with_capacity(planned.len());
    for s in planned {
        if !excluded.contains(&s.key()?) {
            kept.push(s);
        }
    }
    // Automatic or for review, per subscription.
    let subs: HashMap<i64, (Mode, i64)> = subscriptions(db, org)
        .await?
        .into_iter()
        .map(|s| (s.list_id, (s.mode, s.auto_limit)))
        .collect();
    let mut per_list: HashMap<Option<i64>, i64> = HashMap::new();
    for s in &kept {
        *per_list.entry(s.list_id).or_default() += 1;
    }
    let (auto, review): (Vec<PlannedStep>, Vec<PlannedStep>) = kept.into_iter().partition(|s| {
        s.list_id
            .and_then(|l| subs.get(&l))
            .is_some_and(|(mode, limit)| {
                *mode == Mode::Automatic && per_list.get(&s.list_id).copied().unwrap_or(0) <= *limit
            })
    });
    let mut tx = svc.db.begin().await?;
    lock_org_in(&mut tx, org).await?;
    let now_decisions: Decisions = on_tx!(&mut tx, c => sqlx::query_as(DECISIONS_SQL)
        .bind(org.0).fetch_one(c).await)
    .map_err(DbError::from)?;
    if now_decisions != decisions {
        return Err(ListsError::Busy(
            "a push of this instance was decided while planning: planning again".into(),
        ));
    }
    for dom in &handovers {
        on_tx!(&mut tx, c => sqlx::query("DELETE FROM lists_managed WHERE org_id = $1 AND domain = $2")
            .bind(org.0).bind(dom).execute(c).await.map(|r| r.rows_affected()))
        .map_err(DbError::from)?;
    }
    for id in stale_held {
        on_tx!(&mut tx, c => sqlx::query(
            "UPDATE lists_push_steps SET state = 'skipped', note = $1 WHERE id = $2")
            .bind("no longer wanted by the subscribed lists").bind(id)
            .execute(c).await.map(|r| r.rows_affected()))
        .map_err(DbError::from)?;
    }
    if !auto.is_empty() {
        let reason = format!(
            "automatic: {} change(s) within the subscriptions' limits",
            auto.len()
        );
        let id = insert_push(&mut tx, org, PushStatus::Pending, &reason, &auto).await?;
        Db::enqueue_in(&mut tx, &push_job(id)).await?;
        summary.automatic = Some(id);
    }
    // The awaiting push: kept if it has exactly these steps, else replaced.
    let awaiting: Option<i64> = on_tx!(&mut tx, c => sqlx::query_scalar(
        "SELECT id FROM lists_pushes WHERE org_id = $1 AND status = 'awaiting' ORDER BY id DESC LIMIT 1")
        .bind(org.0).fetch_optional(c).await)
    .map_err(DbError::from)?;
    let review_keys: Vec<Key> = review.iter().map(|s| s.key()).collect::<Result<_>>()?;
    let same = match awaiting {
        Some(a) => {
            let rows: Vec<(String, String, Option<String>)> = on_tx!(&mut tx, c => sqlx::query_as(
                "SELECT op, domain, desired FROM lists_push_steps WHERE push_id = $1 ORDER BY position")
                .bind(a).fetch_all(c).await)
            .map_err(DbError::from)?;
            rows == review_keys
        }
        None => review.is_empty(),
    };
    if same {
        summary.awaiting = awaiting;
    } else {
        if let Some(a) = awaiting {
            on_tx!(&mut tx, c => sqlx::query(
                "UPDATE lists_pushes SET status = 'superseded', decided_at = $1 WHERE id = $2")
                .bind(now()).bind(a).execute(c).await.map(|r| r.rows_affected()))
            .map_err(DbError::from)?;
        }
        if !review.is_empty() {
            let mut lists: Vec<&str> = review.iter().map(|s| s.list_name.as_str()).collect();
            lists.sort_unstable();
            lists.dedup();
            let reason = format!(
                "waiting for approval: {} change(s) from {}",
                review.len(),
                lists.join(", ")
            );
            summary.awaiting =
                Some(insert_push(&mut tx, org, PushStatus::Awaiting, &reason, &review).await?);
        }
    }
    if summary.automatic.is_some() || (!same && summary.awaiting.is_some()) {
        append_in(
            &mut tx,
            &Actor::worker().audit(
                "lists.push.plan",
                Some(org),
                serde_json::json!({"automatic": summary.automatic, "awaiting": summary.awaiting,
                    "automatic_steps": auto.len(), "awaiting_steps": review.len()}),
            ),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(summary)
}

async fn insert_push(
    tx: &mut Tx,
    org: OrgId,
    status: PushStatus,
    reason: &str,
    steps: &[PlannedStep],
) -> Result<i64> {
    let id: i64 = on_tx!(tx, c => sqlx::query_scalar(
        "INSERT INTO lists_pushes (org_id, status, reason, created_at) VALUES ($1, $2, $3, $4) \
         RETURNING id")
        .bind(org.0).bind(status.as_str()).bind(reason).bind(now()).fetch_one(c).await)
    .map_err(DbError::from)?;
    for (ci, chunk) in steps.chunks(64).enumerate() {
        let mut sql = String::from(
            "INSERT INTO lists_push_steps (push_id, state, position, op, domain, before_json, \
             desired, list_id, list_name, remote_id) VALUES ",
        );
        let mut rows = Vec::with_capacity(chunk.len());
        for (i, s) in chunk.iter().enumerate() {
            let b = i * 8 + 2;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "($1, 'pending', ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                b,
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7
            ));
            rows.push((
                i64::try_from(ci * 64 + i).unwrap_or(i64::MAX),
                s.op.as_str(),
                s.domain.as_str(),
                s.before.as_ref().map(to_json).transpose()?,
                s.desired.as_ref().map(to_json).transpose()?,
                s.list_id,
                s.list_name.as_str(),
                s.remote_id.as_deref(),
            ));
        }
        on_tx!(tx, c => {
            let mut q = sqlx::query(&sql).bind(id);
            for r in &rows {
                q = q.bind(r.0).bind(r.1).bind(r.2).bind(r.3.as_deref()).bind(r.4.as_deref())
                    .bind(r.5).bind(r.6).bind(r.7);
            }
            q.execute(c).await.map(|r| r.rows_affected())
        })
        .map_err(DbError::from)?;
    }
    Ok(id)
}

/// How many follow relationships local accounts of the instance have with accounts on
/// `domain` now: Mastodon's `instance_follows` measure over a period from [`FOLLOWS_SINCE`]
/// to today. The measure counts rows of `follows` made within the period, and Mastodon deletes
/// a row when the follow ends, so over all time it is the number of follows that exist now.
/// (FediBlockHole asks without a period, i.e. for recent follows only, which misses old
/// relationships.)
pub async fn current_follows(client: &Client, domain: &str) -> Result<i64> {
    let q = MeasureQuery {
        keys: vec!["instance_follows".into()],
        start_at: FOLLOWS_SINCE.into(),
        end_at: utc_date(Timestamp::now().plus(std::time::Duration::from_secs(86_400))),
        domain: Some(domain.to_string()),
    };
    let m = client.measures(&q).await?;
    Ok(m.iter()
        .find(|m| m.key == "instance_follows")
        .and_then(|m| m.total_value())
        .unwrap_or(0))
}

/// How many proposed suspends a preview asks the instance about at most.
pub const PREVIEW_FOLLOW_LIMIT: usize = 50;

/// The follower check shown with a previewed diff: for each proposed suspend (the first
/// [`PREVIEW_FOLLOW_LIMIT`]), the same measure the push asks before suspending
/// ([`current_follows`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FollowPreview {
    /// The proposed suspends checked, in step order, with their follow relationships.
    pub checked: Vec<DomainFollows>,
    /// Proposed suspends not checked: beyond the limit, or after the instance could not be
    /// asked.
    pub unchecked: usize,
    /// Why the instance could not be asked, if it could not.
    pub error: Option<String>,
}

/// Follow relationships of local accounts with accounts on one domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DomainFollows {
    /// The domain a step proposes to suspend.
    pub domain: String,
    /// How many follow relationships local accounts have with it now.
    pub follows: i64,
}

impl FollowPreview {
    /// Nothing checked because the instance cannot be asked (`why`).
    pub fn not_asked(steps: &[PushStep], why: impl Into<String>) -> FollowPreview {
        let n = steps.iter().filter(|s| proposes_suspend(s)).count();
        FollowPreview {
            checked: Vec::new(),
            unchecked: n,
            error: (n > 0).then(|| why.into()),
        }
    }

    /// The follows counted for `domain`, if it was checked.
    pub fn follows_of(&self, domain: &str) -> Option<i64> {
        self.checked
            .iter()
            .find(|d| d.domain == domain)
            .map(|d| d.follows)
    }
}

/// Whether a step (not yet done) would suspend its domain where it is not suspended now: the
/// steps the follower guard checks when the push runs.
pub fn proposes_suspend(s: &PushStep) -> bool {
    if !matches!(s.state, StepState::Pending | StepState::Held) {
        return false;
    }
    let suspends = s
        .desired
        .as_ref()
        .is_some_and(|d| d.severity == Severity::Suspend);
    match s.op {
        StepOp::Create => suspends,
        StepOp::Update => {
            suspends
                && s.before
                    .as_ref()
                    .is_none_or(|b| b.severity != Severity::Suspend)
        }
        StepOp::Delete => false,
    }
}

/// How many follow look-ups a preview has in flight at once.
pub const PREVIEW_FOLLOW_CONCURRENCY: usize = 8;

/// Follow counts a preview asked for recently, per organisation, instance and domain, so that
/// viewing a preview again within the cache's lifetime asks the instance nothing: each count
/// costs one request of the instance's API rate limit, which the push itself needs. Only
/// previews read it; the push's follower guard always asks the instance. Cloning shares it.
#[derive(Clone)]
pub struct FollowCache {
    inner: std::sync::Arc<std::sync::Mutex<FollowCacheInner>>,
}

/// A cached count's key: the asking organisation, the instance's base URL and the domain.
type FollowKey = (OrgId, String, String);

struct FollowCacheInner {
    ttl: Duration,
    capacity: usize,
    counts: HashMap<FollowKey, (i64, Instant)>,
}

impl FollowCache {
    /// A cache keeping each count for `ttl`, holding at most `capacity` counts.
    pub fn new(ttl: Duration, capacity: usize) -> FollowCache {
        FollowCache {
            inner: std::sync::Arc::new(std::sync::Mutex::new(FollowCacheInner {
                ttl,
                capacity,
                counts: HashMap::new(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FollowCacheInner> {
        // A panic while holding the lock leaves a map that is still valid.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The count for `key` if it was asked within the lifetime.
    fn get(&self, key: &FollowKey) -> Option<i64> {
        let c = self.lock();
        c.counts
            .get(key)
            .filter(|(_, at)| at.elapsed() < c.ttl)
            .map(|(n, _)| *n)
    }

    /// How many counts it holds (expired ones included until they are dropped).
    pub fn len(&self) -> usize {
        self.lock().counts.len()
    }

    /// Forgets every count (the next preview asks the instance again).
    pub fn clear(&self) {
        self.lock().counts.clear();
    }

    /// Whether it holds no count.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records a count just asked. When full, expired counts are dropped first, then (if it is
    /// still full) the oldest one.
    fn put(&self, key: FollowKey, n: i64) {
        let mut c = self.lock();
        if c.counts.len() >= c.capacity && !c.counts.contains_key(&key) {
            let ttl = c.ttl;
            c.counts.retain(|_, (_, at)| at.elapsed() < ttl);
            if c.counts.len() >= c.capacity {
                let oldest = c
                    .counts
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    c.counts.remove(&k);
                }
            }
        }
        if c.capacity > 0 {
            c.counts.insert(key, (n, Instant::now()));
        }
    }
}

impl Default for FollowCache {
    /// Five minutes, 10,000 counts.
    fn default() -> FollowCache {
        FollowCache::new(Duration::from_secs(300), 10_000)
    }
}

impl std::fmt::Debug for FollowCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = self.lock();
        f.debug_struct("FollowCache")
            .field("ttl", &c.ttl)
            .field("capacity", &c.capacity)
            .field("len", &c.counts.len())
            .finish()
    }
}

/// The follower check of a previewed diff (see [`FollowPreview`]). It never fails: when the
/// instance cannot be asked (not connected, unreachable, refusing), the reason is in `error`
/// and the remaining suspends count as unchecked. Counts in `cache` are used as they are; the
/// others are asked [`PREVIEW_FOLLOW_CONCURRENCY`] at a time and cached.
pub async fn preview_follows(
    svc: &Services,
    cache: &FollowCache,
    org: OrgId,
    steps: &[PushStep],
) -> FollowPreview {
    use futures_util::stream::{self, StreamExt};
    let suspends: Vec<&PushStep> = steps.iter().filter(|s| proposes_suspend(s)).collect();
    if suspends.is_empty() {
        return FollowPreview::default();
    }
    let client = match instance_client(svc, org).await {
        Ok(c) => c,
        Err(e) => return FollowPreview::not_asked(steps, e.to_string()),
    };
    let base = client.base_url().to_string();
    // Collected first: a lazy `map` inside the future trips the compiler's `Send` check of
    // the handlers awaiting it.
    let asked: Vec<_> = suspends
        .iter()
        .take(PREVIEW_FOLLOW_LIMIT)
        .map(|s| cached_follows(&client, cache, (org, base.clone(), s.domain.clone())))
        .collect();
    // In step order; the first failure ends the check (the look-ups still in flight are
    // dropped).
    let mut counts = stream::iter(asked).buffered(PREVIEW_FOLLOW_CONCURRENCY);
    let mut out = FollowPreview::default();
    while let Some(r) = counts.next().await {
        let i = out.checked.len();
        match r {
            Ok(n) => out.checked.push(DomainFollows {
                domain: suspends[i].domain.clone(),
                follows: n,
            }),
            Err(e) => {
                out.error = Some(e.to_string());
                out.unchecked = suspends.len() - i;
                return out;
            }
        }
    }
    out.unchecked = suspends.len() - out.checked.len();
    out
}

/// [`current_follows`] through `cache` (`key`: organisation, instance base URL, domain).
async fn cached_follows(client: &Client, cache: &FollowCache, key: FollowKey) -> Result<i64> {
    if let Some(n) = cache.get(&key) {
        return Ok(n);
    }
    let n = current_follows(client, &key.2).await?;
    cache.put(key, n);
    Ok(n)
}

fn params_of(e: &Entry) -> DomainBlockParams {
    use guildhall_mastodon::models::Severity as S;
    DomainBlockParams {
        severity: Some(match e.severity {
            Severity::Noop => S::Noop,
            Severity::Silence => S::Silence,
            Severity::Suspend => S::Suspend,
        }),
        reject_media: Some(e.reject_media),
        reject_reports: Some(e.reject_reports),
        private_comment: Some(e.private_comment.clone()),
        public_comment: Some(e.public_comment.clone()),
        obfuscate: Some(e.obfuscate),
    }
}

enum StepResult {
    Done(Option<String>),
    Skipped(String, bool),
    Held(String),
    Failed(String),
}

async fn guard(client: &Client, domain: &str) -> std::result::Result<Option<String>, ListsError> {
    match current_follows(client, domain).await {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(format!(
            "{n} follow relationship(s) of local accounts with accounts on {domain}: suspending would cut them"
        ))),
        Err(ListsError::Instance(e)) if e.is_transient() => Err(ListsError::Instance(e)),
        Err(e) => Ok(Some(format!("the follower check failed ({e}); held to be safe"))),
    }
}

async fn execute(client: &Client, s: &PushStep) -> std::result::Result<StepResult, ListsError> {
    use guildhall_mastodon::Error as E;
    match s.op {
        StepOp::Create => {
            let Some(want) = &s.desired else {
                return Ok(StepResult::Failed("no desired block recorded".into()));
            };
            if want.severity == Severity::Suspend && !s.forced {
                if let Some(why) = guard(client, &s.domain).await? {
                    return Ok(StepResult::Held(why));
                }
            }
            match client
                .create_domain_block(&s.domain, &params_of(want))
                .await
            {
                Ok(b) => Ok(StepResult::Done(Some(b.id))),
                Err(E::StricterBlockExists { existing, .. }) => {
                    if existing.domain != s.domain {
                        return Ok(StepResult::Skipped(
                            format!("covered by the block on {}", existing.domain),
                            false,
                        ));
                    }
                    let ours = existing
                        .private_comment
                        .as_deref()
                        .is_some_and(|c| c.starts_with(STAMP_PREFIX));
                    if !ours {
                        return Ok(StepResult::Skipped(
                            "an admin-made block exists on the instance: not touched".into(),
                            false,
                        ));
                    }
                    // Made by an earlier, interrupted attempt: adopt it (and finish it).
                    let have = Entry::from(&block_entry(&existing));
                    if Pushed::of(&(&have).into()) != Pushed::of(&want.into()) {
                        match client
                            .update_domain_block(&existing.id, &params_of(want))
                            .await
                        {
                            Ok(_) => {}
                            Err(e) if e.is_transient() => return Err(e.into()),
                            Err(e) => return Ok(StepResult::Failed(e.to_string())),
                        }
                    }
                    Ok(StepResult::Done(Some(existing.id.clone())))
                }
                Err(e) if e.is_transient() => Err(e.into()),
                Err(e) => Ok(StepResult::Failed(e.to_string())),
            }
        }
        StepOp::Update => {
            let (Some(want), Some(id)) = (&s.desired, &s.remote_id) else {
                return Ok(StepResult::Failed("no block id recorded".into()));
            };
            let raising = want.severity == Severity::Suspend
                && s.before
                    .as_ref()
                    .is_none_or(|b| b.severity != Severity::Suspend);
            if raising && !s.forced {
                if let Some(why) = guard(client, &s.domain).await? {
                    return Ok(StepResult::Held(why));
                }
            }
            match client.update_domain_block(id, &params_of(want)).await {
                Ok(b) => Ok(StepResult::Done(Some(b.id))),
                Err(E::NotFound { .. }) => Ok(StepResult::Skipped(
                    "deleted by an admin meanwhile: deletion respected".into(),
                    true,
                )),
                Err(e) if e.is_transient() => Err(e.into()),
                Err(e) => Ok(StepResult::Failed(e.to_string())),
            }
        }
        StepOp::Delete => {
            let Some(id) = &s.remote_id else {
                return Ok(StepResult::Done(None));
            };
            match client.delete_domain_block(id).await {
                Ok(()) | Err(E::NotFound { .. }) => Ok(StepResult::Done(None)),
                Err(e) if e.is_transient() => Err(e.into()),
                Err(e) => Ok(StepResult::Failed(e.to_string())),
            }
        }
    }
}

/// Runs a push now (what the `lists.push` job runs; no tenant check): its pending steps in
/// order, each marked done right after the instance accepted it (the managed-block record is
/// written just before; a crash in between leaves the step pending and the next run adopts
/// the block). A transient failure (outage, rate limit beyond the
/// client's patience) leaves the step pending and returns the error, so the job retries and
/// resumes there. When every step was attempted the push is done and a new plan is enqueued.
/// The whole run holds the instance's lease: a concurrent run of the same push (or of another
/// push of the same instance) waits, then finds only what is still pending; after 30 s it
/// gives up with [`ListsError::Busy`].
pub async fn run_push(svc: &Services, id: i64) -> Result<Push> {
    let p = push_any(&svc.db, id).await?;
    if !matches!(p.status, PushStatus::Pending | PushStatus::Running) {
        return Ok(p);
    }
    let done = with_lease(&svc.db, p.org_id, |lease| async move {
        let r = run_leased(svc, &lease, id).await;
        (lease, r)
    })
    .await?;
    Ok(done)
}

/// [`run_push`] holding the instance's lease: the push and its steps are read afresh here, so
/// a run that waited for another finds the steps that one did already done.
async fn run_leased(svc: &Services, lease: &InstanceLease, id: i64) -> Result<Push> {
    let db = &svc.db;
    let p = push_any(db, id).await?;
    if !matches!(p.status, PushStatus::Pending | PushStatus::Running) {
        return Ok(p);
    }
    on_pool!(db, x => sqlx::query("UPDATE lists_pushes SET status = 'running' WHERE id = $1")
        .bind(id).execute(x).await.map(|r| r.rows_affected()))
    .map_err(DbError::from)?;
    let client = instance_client(svc, p.org_id).await?;
    loop {
        let steps = steps_any(db, id).await?;
        for s in steps.iter().filter(|s| s.state == StepState::Pending) {
            lease.renew().await?;
            run_step(db, &client, p.org_id, id, s).await?;
        }
        // Done unless a step became pending meanwhile (an approval with force): then another
        // pass runs it.
        let mut tx = db.begin().await?;
        let n = on_tx!(&mut tx, c => sqlx::query(
            "UPDATE lists_pushes SET status = 'done', finished_at = $1, error = NULL WHERE id = $2 \
             AND NOT EXISTS (SELECT 1 FROM lists_push_steps WHERE push_id = $2 AND state = 'pending')")
            .bind(now()).bind(id).execute(c).await.map(|r| r.rows_affected()))
        .map_err(DbError::from)?;
        if n == 0 {
            continue;
        }
        Db::enqueue_in(&mut tx, &plan_job(p.org_id)).await?;
        // The push's end and its audit entry are stored together.
        let rows: Vec<(String, i64)> =
            on_tx!(&mut tx, c => sqlx::query_as(STEP_COUNTS).bind(id).fetch_all(c).await)
                .map_err(DbError::from)?;
        let entry = Actor::worker().audit(
            "lists.push.done",
            Some(p.org_id),
            serde_json::json!({"push_id": id, "counts": step_counts(rows)?}),
        );
        append_in(&mut tx, &entry).await?;
        tx.commit().await?;
        break;
    }
    push_any(db, id).await
}

/// Attempts one pending step and records its outcome. A transient failure leaves the step
/// pending (with the error as its note), sets the push back to pending and is returned.
async fn run_step(db: &Db, client: &Client, org: OrgId, id: i64, s: &PushStep) -> Result<()> {
    let r = match execute(client, s).await {
        Ok(r) => r,
        Err(e) => {
            let msg = e.to_string();
            on_pool!(db, x => sqlx::query("UPDATE lists_push_steps SET note = $1 WHERE id = $2")
                .bind(&msg).bind(s.id).execute(x).await.map(|r| r.rows_affected()))
            .map_err(DbError::from)?;
            on_pool!(db, x => sqlx::query(
                "UPDATE lists_pushes SET status = 'pending', error = $1 WHERE id = $2")
                .bind(&msg).bind(id).execute(x).await.map(|r| r.rows_affected()))
            .map_err(DbError::from)?;
            return Err(e);
        }
    };
    // Two autocommitted writes, ownership first: a crash between them leaves the step
    // pending with its block recorded, and the next run adopts the block (idempotent).
    let t = now();
    match &r {
        StepResult::Done(remote) => {
            match (&s.op, &s.desired) {
                (StepOp::Delete, _) | (_, None) => {
                    on_pool!(db, c => sqlx::query(
                        "DELETE FROM lists_managed WHERE org_id = $1 AND domain = $2")
                        .bind(org.0).bind(&s.domain).execute(c).await.map(|r| r.rows_affected()))
                    .map_err(DbError::from)?;
                }
                (_, Some(want)) => {
                    let pushed = to_json(&Pushed::of(&want.into()))?;
                    on_pool!(db, c => sqlx::query(
                        "INSERT INTO lists_managed (org_id, domain, remote_id, pushed, list_id, \
                         list_name, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (org_id, domain) DO UPDATE SET remote_id = excluded.remote_id, \
                         pushed = excluded.pushed, list_id = excluded.list_id, \
                         list_name = excluded.list_name, updated_at = excluded.updated_at")
                        .bind(org.0).bind(&s.domain).bind(remote.as_deref()).bind(&pushed)
                        .bind(s.list_id).bind(&s.list_name).bind(t)
                        .execute(c).await.map(|r| r.rows_affected()))
                    .map_err(DbError::from)?;
                }
            }
            on_pool!(db, c => sqlx::query(
                "UPDATE lists_push_steps SET state = 'done', remote_id = COALESCE($1, remote_id), \
                 note = NULL, done_at = $2 WHERE id = $3")
                .bind(remote.as_deref()).bind(t).bind(s.id).execute(c).await.map(|r| r.rows_affected()))
            .map_err(DbError::from)?;
        }
        StepResult::Skipped(note, handover) => {
            if *handover {
                on_pool!(db, c => sqlx::query(
                    "DELETE FROM lists_managed WHERE org_id = $1 AND domain = $2")
                    .bind(org.0).bind(&s.domain).execute(c).await.map(|r| r.rows_affected()))
                .map_err(DbError::from)?;
            }
            set_step(db, s.id, StepState::Skipped, note).await?;
        }
        StepResult::Held(note) => set_step(db, s.id, StepState::Held, note).await?,
        StepResult::Failed(note) => set_step(db, s.id, StepState::Failed, note).await?,
    }
    Ok(())
}

async fn set_step(db: &Db, id: i64, state: StepState, note: &str) -> Result<()> {
    on_pool!(db, c => sqlx::query("UPDATE lists_push_steps SET state = $1, note = $2 WHERE id = $3")
        .bind(state.as_str()).bind(note).bind(id).execute(c).await.map(|r| r.rows_affected()))
    .map_err(DbError::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(org: i64, d: &str) -> FollowKey {
        (OrgId(org), "https://inst.example".into(), d.into())
    }

    #[test]
    fn a_full_follow_cache_drops_expired_counts_then_the_oldest() {
        let c = FollowCache::new(Duration::from_secs(300), 2);
        c.put(key(1, "a.example"), 1);
        std::thread::sleep(Duration::from_millis(2));
        c.put(key(1, "b.example"), 2);
        std::thread::sleep(Duration::from_millis(2));
        c.put(key(1, "c.example"), 3);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&key(1, "a.example")), None, "the oldest went");
        assert_eq!(c.get(&key(1, "b.example")), Some(2));
        assert_eq!(c.get(&key(1, "c.example")), Some(3));
        // Replacing a count does not evict another.
        c.put(key(1, "c.example"), 4);
        assert_eq!(c.get(&key(1, "b.example")), Some(2));
        assert_eq!(c.get(&key(1, "c.example")), Some(4));
        // Keyed by organisation too.
        assert_eq!(c.get(&key(2, "c.example")), None);

        let expiring = FollowCache::new(Duration::from_millis(1), 2);
        expiring.put(key(1, "a.example"), 1);
        expiring.put(key(1, "b.example"), 2);
        std::thread::sleep(Duration::from_millis(3));
        assert_eq!(expiring.get(&key(1, "a.example")), None, "expired");
        expiring.put(key(1, "c.example"), 3);
        assert_eq!(expiring.len(), 1, "both expired counts dropped");

        let none = FollowCache::new(Duration::from_secs(300), 0);
        none.put(key(1, "a.example"), 1);
        assert!(none.is_empty());
    }
}
