//! Background jobs: rows in the `jobs` table, claimed by workers under a lease.
//!
//! - Claiming: `FOR UPDATE SKIP LOCKED` on PostgreSQL (many workers, no blocking); one atomic
//!   `UPDATE … RETURNING` under SQLite's single writer.
//! - A claimed job is `running` with `lease_until`; a worker extends the lease while it works. If
//!   the worker dies, the lease runs out and the job is claimed again (counting as an attempt).
//! - A failed attempt is retried after an exponential backoff (`base · 2^(attempts−1)`, capped)
//!   until `max_attempts`; then the job is `dead`, listed for admins, and can be retried.
//! - A `dedup_key` is unique among live (queued or running) jobs: enqueueing a duplicate is a
//!   no-op.
//! - [`Db::enqueue_in`] writes a job in the caller's transaction (outbox).
//!
//! [`run_worker`] is the worker loop: a [`Registry`] of handlers by kind, several concurrent
//! slots, lease heartbeats, and graceful shutdown (stops claiming, finishes what it holds).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use guildhall_core::{JobId, Timestamp};
use serde::Serialize;

use crate::audit::{append_made, AuditWith};
use crate::{on_pool, on_tx, parse_stored, Backend, Db, DbError, Tx};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for `run_at`.
    Queued,
    /// Claimed by a worker, under a lease.
    Running,
    /// Finished successfully.
    Done,
    /// Failed `max_attempts` times; waits for a person.
    Dead,
}

impl JobState {
    /// Every state.
    pub const ALL: [JobState; 4] = [
        JobState::Queued,
        JobState::Running,
        JobState::Done,
        JobState::Dead,
    ];

    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Dead => "dead",
        }
    }
}

impl std::str::FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|j| j.as_str() == s)
            .ok_or_else(|| format!("unknown job state {s:?}"))
    }
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Which handler runs it (`mastodon.push_action`, …).
    pub kind: String,
    /// Its input.
    pub payload: serde_json::Value,
    /// Not before this time (`None`: now).
    pub run_at: Option<Timestamp>,
    /// How many attempts before it is dead (at least 1).
    pub max_attempts: u32,
    /// If set, no other live job with the same key may exist: enqueueing is then a no-op.
    pub dedup_key: Option<String>,
}

impl NewJob {
    /// A job of `kind` with `payload`, to run now, 10 attempts, no dedup key.
    pub fn new(kind: impl Into<String>, payload: serde_json::Value) -> NewJob {
        NewJob {
            kind: kind.into(),
            payload,
            run_at: None,
            max_attempts: 10,
            dedup_key: None,
        }
    }

    /// Sets the dedup key.
    pub fn dedup(mut self, key: impl Into<String>) -> NewJob {
        self.dedup_key = Some(key.into());
        self
    }

    /// Sets the maximum number of attempts.
    pub fn max_attempts(mut self, n: u32) -> NewJob {
        self.max_attempts = n;
        self
    }

    /// Sets the earliest run time.
    pub fn run_at(mut self, at: Timestamp) -> NewJob {
        self.run_at = Some(at);
        self
    }
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// Which handler runs it.
    pub kind: String,
    /// Its input.
    pub payload: serde_json::Value,
    /// Its state.
    pub state: JobState,
    /// Attempts started so far.
    pub attempts: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// Earliest (next) run time.
    pub run_at: Timestamp,
    /// While running: until when the current worker holds it.
    pub lease_until: Option<Timestamp>,
    /// While running: which worker holds it.
    pub locked_by: Option<String>,
    /// Its dedup key.
    pub dedup_key: Option<String>,
    /// The error of the last failed attempt.
    pub last_error: Option<String>,
    /// When it was enqueued.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

type JobRow = (
    i64,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
);
const JOB_COLUMNS: &str = "id, kind, payload, state, attempts, max_attempts, run_at, lease_until, \
                           locked_by, dedup_key, last_error, created_at, updated_at";

fn job_from_row(r: JobRow) -> Result<Job, DbError> {
    Ok(Job {
        id: JobId(r.0),
        kind: r.1,
        payload: serde_json::from_str(&r.2)
            .map_err(|e| DbError::Corrupt(format!("jobs.payload of job {}: {e}", r.0)))?,
        state: parse_stored("jobs.state", &r.3)?,
        attempts: r.4,
        max_attempts: r.5,
        run_at: Timestamp(r.6),
        lease_until: r.7.map(Timestamp),
        locked_by: r.8,
        dedup_key: r.9,
        last_error: r.10,
        created_at: Timestamp(r.11),
        updated_at: Timestamp(r.12),
    })
}

/// Retry timing.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Delay after the first failure.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(5),
            max: Duration::from_secs(3600),
        }
    }
}

impl Backoff {
    /// The delay after the `attempts`-th failed attempt: `base · 2^(attempts−1)`, capped.
    pub fn delay(&self, attempts: i64) -> Duration {
        let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        self.base.saturating_mul(1u32 << exp).min(self.max)
    }
}

const INSERT_JOB: &str = "INSERT INTO jobs (kind, payload, state, attempts, max_attempts, run_at, \
     dedup_key, created_at, updated_at) VALUES ($1, $2, 'queued', 0, $3, $4, $5, $6, $6) \
     ON CONFLICT DO NOTHING RETURNING id";

fn validate(new: &NewJob) -> Result<String, DbError> {
    if new.kind.trim().is_empty() {
        return Err(DbError::Invalid {
            field: "kind",
            message: "must not be empty".into(),
        });
    }
    if new.max_attempts == 0 {
        return Err(DbError::Invalid {
            field: "max_attempts",
            message: "must be at least 1".into(),
        });
    }
    serde_json::to_string(&new.payload).map_err(|e| DbError::Invalid {
        field: "payload",
        message: e.to_string(),
    })
}

impl Db {
    /// Enqueues a job. `Ok(None)` when a live job with the same dedup key exists.
    pub async fn enqueue(&self, new: &NewJob) -> Result<Option<JobId>, DbError> {
        let payload = validate(new)?;
        let now = Timestamp::now();
        let id: Option<i64> = on_pool!(self, p => sqlx::query_scalar(INSERT_JOB)
            .bind(&new.kind)
            .bind(&payload)
            .bind(i64::from(new.max_attempts))
            .bind(new.run_at.unwrap_or(now).0)
            .bind(&new.dedup_key)
            .bind(now.0)
            .fetch_optional(p).await)?;
        Ok(id.map(JobId))
    }

    /// Enqueues a job inside the caller's transaction (outbox: the job exists if and only if the
    /// change that causes it is committed).
    pub async fn enqueue_in(tx: &mut Tx, new: &NewJob) -> Result<Option<JobId>, DbError> {
        let payload = validate(new)?;
        let now = Timestamp::now();
        let id: Option<i64> = on_tx!(tx, c => sqlx::query_scalar(INSERT_JOB)
            .bind(&new.kind)
            .bind(&payload)
            .bind(i64::from(new.max_attempts))
            .bind(new.run_at.unwrap_or(now).0)
            .bind(&new.dedup_key)
            .bind(now.0)
            .fetch_optional(c).await)?;
        Ok(id.map(JobId))
    }

    /// Claims the next job due (queued and `run_at` reached, or running with an expired lease)
    /// among `kinds` for `worker`, leasing it for `lease`. Running jobs whose lease ran out on
    /// their last attempt are made dead first.
    pub async fn claim_job(
        &self,
        worker: &str,
        kinds: &[String],
        lease: Duration,
    ) -> Result<Option<Job>, DbError> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let now = Timestamp::now();
        on_pool!(self, p => sqlx::query(
            "UPDATE jobs SET state = 'dead', lease_until = NULL, locked_by = NULL, updated_at = $1, \
             last_error = COALESCE(last_error || ' / ', '') || 'lease expired on the last attempt (worker lost)' \
             WHERE state = 'running' AND lease_until < $1 AND attempts >= max_attempts")
            .bind(now.0).execute(p).await.map(|r| r.rows_affected()))?;
        let kind_params: Vec<String> = (0..kinds.len()).map(|i| format!("${}", i + 4)).collect();
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $1, \
             locked_by = $2, updated_at = $3 \
             WHERE id = (SELECT id FROM jobs \
                 WHERE ((state = 'queued' AND run_at <= $3) OR (state = 'running' AND lease_until < $3)) \
                 AND kind IN ({}) ORDER BY run_at, id LIMIT 1{lock}) \
             RETURNING {JOB_COLUMNS}",
            kind_params.join(", ")
        );
        let row: Option<JobRow> = on_pool!(self, p => {
            let mut q = sqlx::query_as(&sql).bind(now.plus(lease).0).bind(worker).bind(now.0);
            for k in kinds {
                q = q.bind(k);
            }
            q.fetch_optional(p).await
        })?;
        row.map(job_from_row).transpose()
    }

    /// Extends the lease of a job `worker` holds. `false` if it no longer holds it.
    pub async fn extend_lease(
        &self,
        id: JobId,
        worker: &str,
        lease: Duration,
    ) -> Result<bool, DbError> {
        let now = Timestamp::now();
        let n = on_pool!(self, p => sqlx::query(
            "UPDATE jobs SET lease_until = $1, updated_at = $2 \
             WHERE id = $3 AND state = 'running' AND locked_by = $4")
            .bind(now.plus(lease).0).bind(now.0).bind(id.0).bind(worker)
            .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Marks a job `worker` holds as done. `false` if it no longer held it (its lease ran out
    /// and someone else took it).
    pub async fn complete_job(&self, id: JobId, worker: &str) -> Result<bool, DbError> {
        let n = on_pool!(self, p => sqlx::query(
            "UPDATE jobs SET state = 'done', lease_until = NULL, locked_by = NULL, updated_at = $1 \
             WHERE id = $2 AND state = 'running' AND locked_by = $3")
            .bind(Timestamp::now().0).bind(id.0).bind(worker)
            .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Records a failed attempt of a job `worker` holds: queued again after the backoff, or dead
    /// when it has used all its attempts. Returns the new state (`None` if the worker no longer
    /// held it).
    pub async fn fail_job(
        &self,
        id: JobId,
        worker: &str,
        error: &str,
        backoff: &Backoff,
    ) -> Result<Option<JobState>, DbError> {
        let now = Timestamp::now();
        let error: String = error.chars().take(4000).collect();
        let mut tx = self.begin().await?;
        let attempts: Option<(i64, i64)> = on_tx!(&mut tx, c => sqlx::query_as(
            "UPDATE jobs SET updated_at = $1 WHERE id = $2 AND state = 'running' AND locked_by = $3 \
             RETURNING attempts, max_attempts")
            .bind(now.0).bind(id.0).bind(worker).fetch_optional(c).await)?;
        let Some((attempts, max_attempts)) = attempts else {
            return Ok(None);
        };
        let (state, run_at) = if attempts >= max_attempts {
            (JobState::Dead, now)
        } else {
            (JobState::Queued, now.plus(backoff.delay(attempts)))
        };
        on_tx!(&mut tx, c => sqlx::query(
            "UPDATE jobs SET state = $1, run_at = $2, last_error = $3, lease_until = NULL, \
             locked_by = NULL WHERE id = $4")
            .bind(state.as_str()).bind(run_at.0).bind(&error).bind(id.0)
            .execute(c).await.map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(Some(state))
    }

    /// A job by id.
    pub async fn job(&self, id: JobId) -> Result<Option<Job>, DbError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        let row: Option<JobRow> =
            on_pool!(self, p => sqlx::query_as(&sql).bind(id.0).fetch_optional(p).await)?;
        row.map(job_from_row).transpose()
    }

    /// Jobs in `state`, most recently changed first, at most `limit`.
    pub async fn jobs_in_state(&self, state: JobState, limit: u32) -> Result<Vec<Job>, DbError> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE state = $1 ORDER BY updated_at DESC, id DESC LIMIT $2"
        );
        let rows: Vec<JobRow> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(state.as_str()).bind(i64::from(limit)).fetch_all(p).await)?;
        rows.into_iter().map(job_from_row).collect()
    }

    /// Dead jobs (for the admins' page), most recent first.
    pub async fn dead_jobs(&self, limit: u32) -> Result<Vec<Job>, DbError> {
        self.jobs_in_state(JobState::Dead, limit).await
    }

    /// Queues a dead job again with fresh attempts. `Ok(false)` if it is not dead;
    /// [`DbError::Conflict`] if a live job with its dedup key exists.
    pub async fn retry_job(&self, id: JobId) -> Result<bool, DbError> {
        self.retry_job_audited(id, |_| None).await
    }

    /// [`Db::retry_job`], recording `audit`'s entry (made from whether the job was requeued)
    /// in the same transaction.
    pub async fn retry_job_audited(
        &self,
        id: JobId,
        audit: impl AuditWith<bool>,
    ) -> Result<bool, DbError> {
        let now = Timestamp::now();
        let mut tx = self.begin().await?;
        let n = on_tx!(&mut tx, c => sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $1, updated_at = $1 \
             WHERE id = $2 AND state = 'dead'")
            .bind(now.0).bind(id.0).execute(c).await.map(|r| r.rows_affected()))
        .map_err(DbError::conflict("a live job with the same dedup key"))?;
        let requeued = n > 0;
        append_made(&mut tx, audit, &requeued).await?;
        tx.commit().await?;
        Ok(requeued)
    }

    /// How many jobs are in each state (every state listed, zeros included): for `/metrics`.
    pub async fn job_counts(&self) -> Result<Vec<(JobState, i64)>, DbError> {
        let rows: Vec<(String, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT state, COUNT(*) FROM jobs GROUP BY state").fetch_all(p).await)?;
        let mut out: Vec<(JobState, i64)> = JobState::ALL.iter().map(|s| (*s, 0)).collect();
        for (s, n) in rows {
            let s: JobState = parse_stored("jobs.state", &s)?;
            if let Some(slot) = out.iter_mut().find(|(x, _)| *x == s) {
                slot.1 = n;
            }
        }
        Ok(out)
    }
}

/// What a handler returns: `Err` makes the attempt fail (retried with backoff).
pub type HandlerResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

type HandlerFn =
    Arc<dyn Fn(Job) -> Pin<Box<dyn Future<Output = HandlerResult> + Send>> + Send + Sync>;

/// Job handlers by kind.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<String, HandlerFn>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("kinds", &self.kinds())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers the handler for `kind` (replacing any earlier one).
    pub fn register<F, Fut>(&mut self, kind: impl Into<String>, handler: F)
    where
        F: Fn(Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.handlers
            .insert(kind.into(), Arc::new(move |job| Box::pin(handler(job))));
    }

    /// The kinds with a handler, sorted.
    pub fn kinds(&self) -> Vec<String> {
        let mut v: Vec<String> = self.handlers.keys().cloned().collect();
        v.sort();
        v
    }
}

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// This worker's name, unique among workers (recorded in `locked_by`).
    pub name: String,
    /// How many jobs it runs at once.
    pub concurrency: usize,
    /// How long to wait before looking again when there was nothing to do.
    pub poll_interval: Duration,
    /// How long a claim lasts without a heartbeat (heartbeats come every third of it).
    pub lease: Duration,
    /// Retry timing.
    pub backoff: Backoff,
}

impl WorkerConfig {
    /// Defaults: a name from the host's process id and random bits, 4 slots, 1 s poll, 60 s lease.
    pub fn new() -> WorkerConfig {
        WorkerConfig {
            name: format!("worker-{}-{}", std::process::id(), crate::random_hex(3)),
            concurrency: 4,
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            backoff: Backoff::default(),
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig::new()
    }
}

/// Runs jobs until `shutdown` completes; then stops claiming, lets the jobs it holds finish,
/// and returns. Database errors are logged and retried after the poll interval.
pub async fn run_worker<S>(db: Db, registry: Registry, config: WorkerConfig, shutdown: S)
where
    S: Future<Output = ()> + Send,
{
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let registry = Arc::new(registry);
    let config = Arc::new(config);
    let mut slots = tokio::task::JoinSet::new();
    for slot in 0..config.concurrency.max(1) {
        let db = db.clone();
        let registry = registry.clone();
        let config = config.clone();
        let mut stop = stop_rx.clone();
        slots.spawn(async move {
            tracing::debug!(worker = %config.name, slot, "job slot started");
            let kinds = registry.kinds();
            loop {
                if *stop.borrow() {
                    break;
                }
                match db.claim_job(&config.name, &kinds, config.lease).await {
                    Ok(Some(job)) => run_one(&db, &registry, &config, job).await,
                    Ok(None) => {
                        tokio::select! {
                            _ = tokio::time::sleep(config.poll_interval) => {}
                            _ = stop.changed() => {}
                        }
                    }
                    Err(e) => {
                        tracing::warn!(worker = %config.name, error = %e, "claiming a job failed");
                        tokio::select! {
                            _ = tokio::time::sleep(config.poll_interval) => {}
                            _ = stop.changed() => {}
                        }
                    }
                }
            }
        });
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    while slots.join_next().await.is_some() {}
}

async fn run_one(db: &Db, registry: &Registry, config: &WorkerConfig, job: Job) {
    let id = job.id;
    let kind = job.kind.clone();
    let Some(handler) = registry.handlers.get(&kind).cloned() else {
        // Cannot happen: only registered kinds are claimed.
        let _ = db
            .fail_job(
                id,
                &config.name,
                "no handler for this kind",
                &config.backoff,
            )
            .await;
        return;
    };
    // The handler runs in its own task so that a panic is caught and counted as a failure.
    let mut task = tokio::spawn(handler(job));
    let beat = (config.lease / 3).max(Duration::from_millis(10));
    let outcome = loop {
        tokio::select! {
            r = &mut task => break r,
            _ = tokio::time::sleep(beat) => {
                match db.extend_lease(id, &config.name, config.lease).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(job = %id, "lost the lease of a running job"),
                    Err(e) => tracing::warn!(job = %id, error = %e, "extending a lease failed"),
                }
            }
        }
    };
    let result = match outcome {
        Ok(Ok(())) => db.complete_job(id, &config.name).await.map(|_| ()),
        Ok(Err(e)) => {
            tracing::warn!(job = %id, kind = %kind, error = %e, "job attempt failed");
            db.fail_job(id, &config.name, &e.to_string(), &config.backoff)
                .await
                .map(|_| ())
        }
        Err(join) => {
            tracing::warn!(job = %id, kind = %kind, "job handler panicked");
            db.fail_job(
                id,
                &config.name,
                &format!("handler panicked: {join}"),
                &config.backoff,
            )
            .await
            .map(|_| ())
        }
    };
    if let Err(e) = result {
        tracing::warn!(job = %id, error = %e, "recording a job's outcome failed");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::db_test;
    use serde_json::json;

    fn kinds(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    const NO_WAIT: Backoff = Backoff {
        base: Duration::ZERO,
        max: Duration::ZERO,
    };

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff {
            base: Duration::from_secs(2),
            max: Duration::from_secs(60),
        };
        let d: Vec<u64> = (1..=7).map(|a| b.delay(a).as_secs()).collect();
        assert_eq!(d, vec![2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.delay(1000).as_secs(), 60);
    }

    db_test!(jobs_claim_complete_fail_dead_retry, |db| async move {
        let a = db
            .enqueue(&NewJob::new("k", json!({"n": 1})).max_attempts(2))
            .await
            .unwrap()
            .unwrap();
        // Other kinds are not claimed.
        assert_eq!(
            db.claim_job("w1", &kinds(&["other"]), Duration::from_secs(60))
                .await
                .unwrap(),
            None
        );
        let j = db
            .claim_job("w1", &kinds(&["k"]), Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((j.id, j.state, j.attempts), (a, JobState::Running, 1));
        assert_eq!(j.payload, json!({"n": 1}));
        // Nothing else is due; another worker cannot take it while leased.
        assert_eq!(
            db.claim_job("w2", &kinds(&["k"]), Duration::from_secs(60))
                .await
                .unwrap(),
            None
        );
        // A worker that does not hold it cannot finish it.
        assert!(!db.complete_job(a, "w2").await.unwrap());
        let backoff = Backoff {
            base: Duration::from_secs(3600),
            max: Duration::from_secs(3600),
        };
        assert_eq!(
            db.fail_job(a, "w1", "boom", &backoff).await.unwrap(),
            Some(JobState::Queued)
        );
        let j = db.job(a).await.unwrap().unwrap();
        assert_eq!(j.last_error.as_deref(), Some("boom"));
        assert!(
            j.run_at.0 >= Timestamp::now().0 + 3_500_000,
            "backoff not applied"
        );
        // Not due yet.
        assert_eq!(
            db.claim_job("w1", &kinds(&["k"]), Duration::from_secs(60))
                .await
                .unwrap(),
            None
        );
        // Make it due, fail the last attempt: dead.
        on_pool!(&db, p => sqlx::query("UPDATE jobs SET run_at = 0").execute(p).await.map(|r| r.rows_affected())).unwrap();
        let j = db
            .claim_job("w1", &kinds(&["k"]), Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(j.attempts, 2);
        assert_eq!(
            db.fail_job(a, "w1", "boom again", &backoff).await.unwrap(),
            Some(JobState::Dead)
        );
        let dead = db.dead_jobs(10).await.unwrap();
        assert_eq!(dead.iter().map(|j| j.id).collect::<Vec<_>>(), vec![a]);
        let counts = db.job_counts().await.unwrap();
        assert!(counts.contains(&(JobState::Dead, 1)) && counts.contains(&(JobState::Queued, 0)));
        // Retry from dead: claimable again with fresh attempts, then done.
        assert!(db.retry_job(a).await.unwrap());
        assert!(!db.retry_job(a).await.unwrap());
        let j = db
            .claim_job("w1", &kinds(&["k"]), Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(j.attempts, 1);
        assert!(db.complete_job(a, "w1").await.unwrap());
        assert_eq!(db.job(a).await.unwrap().unwrap().state, JobState::Done);
    });

    db_test!(jobs_dedup_among_live_jobs, |db| async move {
        let a = db
            .enqueue(&NewJob::new("k", json!(null)).dedup("x"))
            .await
            .unwrap();
        assert!(a.is_some());
        assert_eq!(
            db.enqueue(&NewJob::new("k", json!(null)).dedup("x"))
                .await
                .unwrap(),
            None
        );
        let j = db
            .claim_job("w", &kinds(&["k"]), Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            db.enqueue(&NewJob::new("k", json!(null)).dedup("x"))
                .await
                .unwrap(),
            None
        );
        assert!(db.complete_job(j.id, "w").await.unwrap());
        // Once done, the key is free again.
        assert!(db
            .enqueue(&NewJob::new("k", json!(null)).dedup("x"))
            .await
            .unwrap()
            .is_some());
        // Outbox: a job enqueued in a rolled-back transaction does not exist.
        let mut tx = db.begin().await.unwrap();
        assert!(Db::enqueue_in(&mut tx, &NewJob::new("k", json!(1)))
            .await
            .unwrap()
            .is_some());
        drop(tx);
        assert_eq!(db.job_counts().await.unwrap()[0], (JobState::Queued, 1));
    });

    db_test!(expired_lease_is_claimed_again_or_dead, |db| async move {
        let a = db
            .enqueue(&NewJob::new("k", json!(null)).max_attempts(2))
            .await
            .unwrap()
            .unwrap();
        let j = db
            .claim_job("crashed", &kinds(&["k"]), Duration::ZERO)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(j.id, a);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let j = db
            .claim_job("w2", &kinds(&["k"]), Duration::ZERO)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (j.id, j.attempts, j.locked_by.as_deref()),
            (a, 2, Some("w2"))
        );
        // The crashed worker's late report is ignored.
        assert!(!db.complete_job(a, "crashed").await.unwrap());
        tokio::time::sleep(Duration::from_millis(5)).await;
        // Its lease ran out on the last attempt: dead, not claimed.
        assert_eq!(
            db.claim_job("w3", &kinds(&["k"]), Duration::ZERO)
                .await
                .unwrap(),
            None
        );
        assert_eq!(db.job(a).await.unwrap().unwrap().state, JobState::Dead);
    });

    db_test!(
        worker_loop_runs_each_job_once_and_shuts_down,
        |db| async move {
            let runs = Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
            let failures = Arc::new(AtomicUsize::new(0));
            let mut registry = Registry::new();
            let r = runs.clone();
            registry.register("record", move |job: Job| {
                let r = r.clone();
                async move {
                    r.lock().unwrap().push(job.id.0);
                    Ok(())
                }
            });
            let f = failures.clone();
            registry.register("flaky", move |_job: Job| {
                let f = f.clone();
                async move {
                    // Fails twice, then succeeds.
                    if f.fetch_add(1, Ordering::SeqCst) < 2 {
                        Err("not yet".into())
                    } else {
                        Ok(())
                    }
                }
            });
            registry.register("panics", |_job: Job| async move {
                if true {
                    panic!("handler bug");
                }
                Ok(())
            });
            let mut ids = Vec::new();
            for n in 0..40 {
                ids.push(
                    db.enqueue(&NewJob::new("record", json!(n)))
                        .await
                        .unwrap()
                        .unwrap()
                        .0,
                );
            }
            let flaky = db
                .enqueue(&NewJob::new("flaky", json!(null)))
                .await
                .unwrap()
                .unwrap();
            let panics = db
                .enqueue(&NewJob::new("panics", json!(null)).max_attempts(1))
                .await
                .unwrap()
                .unwrap();
            let mut workers = Vec::new();
            for w in 0..2 {
                let config = WorkerConfig {
                    name: format!("w{w}"),
                    concurrency: 3,
                    poll_interval: Duration::from_millis(20),
                    lease: Duration::from_secs(30),
                    backoff: NO_WAIT,
                };
                workers.push((db.clone(), registry.clone(), config));
            }
            let (tx2, rx2) = tokio::sync::watch::channel(false);
            let mut handles = Vec::new();
            for (db, registry, config) in workers {
                let mut rx = rx2.clone();
                handles.push(tokio::spawn(run_worker(db, registry, config, async move {
                    let _ = rx.wait_for(|v| *v).await;
                })));
            }
            // Wait (bounded) until everything has settled.
            for _ in 0..500 {
                let c = db.job_counts().await.unwrap();
                if c.iter()
                    .filter(|(s, _)| matches!(s, JobState::Queued | JobState::Running))
                    .all(|(_, n)| *n == 0)
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = tx2.send(true);
            for h in handles {
                h.await.unwrap();
            }
            let mut seen = runs.lock().unwrap().clone();
            seen.sort();
            assert_eq!(seen, ids, "each job exactly once");
            let fj = db.job(flaky).await.unwrap().unwrap();
            assert_eq!((fj.state, fj.attempts), (JobState::Done, 3));
            let pj = db.job(panics).await.unwrap().unwrap();
            assert_eq!(pj.state, JobState::Dead);
            assert!(pj.last_error.unwrap().contains("panicked"));
        }
    );

    db_test!(
        heartbeats_keep_a_long_job_from_being_taken_twice,
        |db| async move {
            // The job takes several leases' time; the heartbeat must keep the other worker off it.
            let runs = Arc::new(AtomicUsize::new(0));
            let mut registry = Registry::new();
            let r = runs.clone();
            registry.register("slow", move |_job: Job| {
                let r = r.clone();
                async move {
                    r.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(1200)).await;
                    Ok(())
                }
            });
            let id = db
                .enqueue(&NewJob::new("slow", json!(null)))
                .await
                .unwrap()
                .unwrap();
            let (stop, rx) = tokio::sync::watch::channel(false);
            let mut handles = Vec::new();
            for w in 0..2 {
                let config = WorkerConfig {
                    name: format!("w{w}"),
                    concurrency: 1,
                    poll_interval: Duration::from_millis(20),
                    lease: Duration::from_millis(300),
                    backoff: NO_WAIT,
                };
                let mut rx = rx.clone();
                handles.push(tokio::spawn(run_worker(
                    db.clone(),
                    registry.clone(),
                    config,
                    async move {
                        let _ = rx.wait_for(|v| *v).await;
                    },
                )));
            }
            for _ in 0..500 {
                if db.job(id).await.unwrap().unwrap().state == JobState::Done {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = stop.send(true);
            for h in handles {
                h.await.unwrap();
            }
            let j = db.job(id).await.unwrap().unwrap();
            assert_eq!((j.state, j.attempts), (JobState::Done, 1));
            assert_eq!(runs.load(Ordering::SeqCst), 1);
        }
    );
}
