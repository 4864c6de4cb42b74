//! Test support: fresh, migrated databases on both backends, and [`db_test!`](crate::db_test)
//! to run one test body on each.
//!
//! ```ignore
//! use guildhall_db::{db_test, Db};
//!
//! db_test!(creates_accounts, |db: Db| async move {
//!     assert!(!db.any_account_exists().await.unwrap());
//! });
//! ```
//!
//! expands to two `#[tokio::test]`s, `creates_accounts_sqlite` and `creates_accounts_postgres`,
//! each on its own fresh database (a temporary SQLite file; a new PostgreSQL database created on
//! the server named by `GUILDHALL_TEST_POSTGRES`, dropped afterwards). The PostgreSQL variant
//! fails — never skips — when `GUILDHALL_TEST_POSTGRES` is unset. The calling crate needs
//! `tokio` (features `macros`, `rt-multi-thread`) as a dev-dependency. The body may return `()`
//! or a `Result<(), E: Debug>` (an `Err` fails the test).

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Connection;

use crate::{Db, DbOptions};

#[doc(hidden)]
pub use paste;

/// The environment variable naming the PostgreSQL server for tests.
pub const POSTGRES_ENV: &str = "GUILDHALL_TEST_POSTGRES";

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique_name() -> String {
    format!(
        "guildhall_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        crate::random_hex(4)
    )
}

/// The URL of the PostgreSQL server for tests. Panics with instructions when unset.
pub fn postgres_server_url() -> String {
    match std::env::var(POSTGRES_ENV) {
        Ok(u) if !u.trim().is_empty() => u,
        _ => panic!(
            "{POSTGRES_ENV} is not set, so the PostgreSQL variant of this test cannot run. \
             Run the tests with `scripts/test` (it starts a throwaway PostgreSQL by itself), or \
             set {POSTGRES_ENV}=postgres://USER@HOST:PORT/DB for a server whose user may \
             CREATE DATABASE."
        ),
    }
}

/// A URL for a new, empty SQLite file in the temporary directory (not yet created).
pub fn fresh_sqlite_url() -> String {
    let dir = std::env::temp_dir().join("guildhall-tests");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("cannot create {}: {e}", dir.display());
    }
    format!(
        "sqlite://{}",
        dir.join(format!("{}.db", unique_name())).display()
    )
}

/// Creates a new, empty PostgreSQL database on the test server and returns its URL. Panics
/// with instructions when `GUILDHALL_TEST_POSTGRES` is unset.
pub async fn fresh_postgres_url() -> String {
    let server = postgres_server_url();
    let name = unique_name();
    let mut conn = match sqlx::PgConnection::connect(&server).await {
        Ok(c) => c,
        Err(e) => panic!("cannot connect to {POSTGRES_ENV}: {e}"),
    };
    if let Err(e) = sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
    {
        panic!("cannot create test database {name}: {e}");
    }
    let _ = conn.close().await;
    replace_database(&server, &name)
}

/// `url` with its database name replaced by `name`.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    // postgres://user@host:port/db → keep everything up to the path.
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

async fn connect_migrated(url: &str) -> Db {
    let db = match Db::connect_with(url, &DbOptions::default()).await {
        Ok(db) => db,
        Err(e) => panic!("cannot open test database: {e}"),
    };
    if let Err(e) = db.migrate().await {
        panic!("cannot migrate test database: {e}");
    }
    db
}

/// A fresh, migrated SQLite database in a temporary file.
pub async fn fresh_sqlite() -> Db {
    connect_migrated(&fresh_sqlite_url()).await
}

/// A fresh, migrated PostgreSQL database on the `GUILDHALL_TEST_POSTGRES` server. Panics with
/// instructions (how to run `scripts/test`) when that variable is unset.
pub async fn fresh_postgres() -> Db {
    connect_migrated(&fresh_postgres_url().await).await
}

/// The URL of a test database made by [`fresh_sqlite`] or [`fresh_postgres`] (for handing to
/// a `guildhall` process). Panics for PostgreSQL when `GUILDHALL_TEST_POSTGRES` is unset.
pub fn url_of(db: &Db) -> String {
    match db {
        Db::Sqlite(p) => format!("sqlite://{}", p.connect_options().get_filename().display()),
        Db::Postgres(p) => replace_database(
            &postgres_server_url(),
            p.connect_options().get_database().unwrap_or("postgres"),
        ),
    }
}

/// Closes `db` and removes it: deletes the SQLite file (and its WAL files) or drops the
/// PostgreSQL database. Errors are ignored (the test's outcome is what matters).
pub async fn dispose(db: Db) {
    match &db {
        Db::Sqlite(pool) => {
            let file = pool.connect_options().get_filename().to_path_buf();
            pool.close().await;
            for suffix in ["", "-wal", "-shm"] {
                let mut p = file.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
        Db::Postgres(pool) => {
            let name = pool.connect_options().get_database().map(str::to_owned);
            pool.close().await;
            if let (Some(name), Ok(server)) = (name, std::env::var(POSTGRES_ENV)) {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&server).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                }
            }
        }
    }
}

/// The job kind used by the multi-process tests (`guildhall serve`/`worker` register it only
/// when `GUILDHALL_TEST_JOBS` is set): [`run_test_job`].
pub const TEST_JOB_KIND: &str = "guildhall.test.record";

/// Creates the `test_job_runs` table (job id, worker, attempt) if missing. Test support only: it
/// is not part of the migrations.
pub async fn create_test_job_runs(db: &Db) -> Result<(), crate::DbError> {
    crate::on_pool!(db, p => sqlx::query(
        "CREATE TABLE IF NOT EXISTS test_job_runs \
         (job_id BIGINT NOT NULL, worker TEXT NOT NULL, attempt BIGINT NOT NULL)")
        .execute(p).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// The test job: on its first attempt sleeps `sleep_ms` from the payload (so that a test can
/// kill the worker in the middle), then records (job id, worker, attempt) in `test_job_runs`.
pub async fn run_test_job(db: &Db, job: &crate::jobs::Job) -> crate::jobs::HandlerResult {
    let sleep_ms = job
        .payload
        .get("sleep_ms")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    if job.attempts == 1 && sleep_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(sleep_ms)).await;
    }
    crate::on_pool!(db, p => sqlx::query(
        "INSERT INTO test_job_runs (job_id, worker, attempt) VALUES ($1, $2, $3)")
        .bind(job.id.0)
        .bind(job.locked_by.clone().unwrap_or_default())
        .bind(job.attempts)
        .execute(p).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Every row of `test_job_runs`: (job id, worker, attempt), by job id.
pub async fn test_job_runs(db: &Db) -> Result<Vec<(i64, String, i64)>, crate::DbError> {
    Ok(crate::on_pool!(db, p => sqlx::query_as(
        "SELECT job_id, worker, attempt FROM test_job_runs ORDER BY job_id, attempt")
        .fetch_all(p).await)?)
}

/// Simulates an attacker with full database access: drops the audit log's append-only triggers
/// and rewrites entry `seq`'s after-JSON (for tests of `verify-audit`).
pub async fn tamper_audit_entry(db: &Db, seq: i64, after_json: &str) -> Result<(), crate::DbError> {
    let drop_trigger = match db.backend() {
        crate::Backend::Sqlite => "DROP TRIGGER IF EXISTS audit_log_no_update",
        crate::Backend::Postgres => "DROP TRIGGER IF EXISTS audit_log_no_update ON audit_log",
    };
    crate::on_pool!(db, p => sqlx::query(drop_trigger).execute(p).await.map(|r| r.rows_affected()))?;
    crate::on_pool!(db, p => sqlx::query("UPDATE audit_log SET after_json = $1 WHERE seq = $2")
        .bind(after_json).bind(seq).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// What a [`db_test!`](crate::db_test) body may return.
pub trait TestOutcome {
    /// Panics if the outcome is a failure.
    fn check(self);
}

impl TestOutcome for () {
    fn check(self) {}
}

impl<E: std::fmt::Debug> TestOutcome for Result<(), E> {
    fn check(self) {
        if let Err(e) = self {
            panic!("test body returned an error: {e:?}");
        }
    }
}

/// Defines one async test body as two `#[tokio::test]`s, `NAME_sqlite` and `NAME_postgres`,
/// each given a fresh migrated [`Db`](crate::Db) (multi-threaded runtime, 2 workers). See the
/// [module docs](crate::testing).
#[macro_export]
macro_rules! db_test {
    ($(#[$meta:meta])* $name:ident, |$db:ident $(: $ty:ty)?| async move $body:block $(,)?) => {
        $crate::testing::paste::paste! {
            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn [<$name _sqlite>]() {
                let db = $crate::testing::fresh_sqlite().await;
                let run = |$db: $crate::Db| async move $body;
                $crate::testing::TestOutcome::check(run(db.clone()).await);
                $crate::testing::dispose(db).await;
            }

            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn [<$name _postgres>]() {
                let db = $crate::testing::fresh_postgres().await;
                let run = |$db: $crate::Db| async move $body;
                $crate::testing::TestOutcome::check(run(db.clone()).await);
                $crate::testing::dispose(db).await;
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_database_name() {
        assert_eq!(
            replace_database("postgres://g@127.0.0.1:55432/postgres", "x"),
            "postgres://g@127.0.0.1:55432/x"
        );
        assert_eq!(
            replace_database("postgres://g@h/postgres?sslmode=disable", "x"),
            "postgres://g@h/x?sslmode=disable"
        );
        assert_eq!(replace_database("postgres://g@h", "x"), "postgres://g@h/x");
    }
}
