//! Guildhall storage: one [`Db`] type over SQLite and PostgreSQL (sqlx's native drivers, one pool
//! per backend), the migrations of both, and every query, written once for both backends.
//!
//! - Timestamps are stored as milliseconds since the Unix epoch (`BIGINT`) on both backends
//!   ([`guildhall_core::Timestamp`]).
//! - SQL text uses `$1, $2, …` placeholders, which both drivers accept, so one string serves both
//!   pools; the few statements that must differ (job claiming) say so.
//! - Tokens (sessions, invitations, API tokens) are random 256-bit values; only their SHA-256 is
//!   stored.
//!
//! Modules: [`accounts`], [`orgs`] (organisations and memberships), [`sessions`],
//! [`invitations`], [`tokens`] (API tokens), [`audit`], [`jobs`], [`secrets`], and
//! [`testing`] (fresh databases for tests on both backends).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub mod accounts;
pub mod audit;
pub mod instances;
pub mod invitations;
pub mod jobs;
pub mod orgs;
pub mod secrets;
pub mod sessions;
pub mod testing;
pub mod tokens;

pub use guildhall_core as core;

/// Runs the same expression against whichever pool a [`Db`] holds. The expression is compiled
/// once per backend, so it may use sqlx's generic query API with either pool.
///
/// ```ignore
/// let n: i64 = on_pool!(db, pool => sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
///     .fetch_one(pool).await)?;
/// ```
#[macro_export]
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::Db::Sqlite($pool) => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}

/// Like [`on_pool!`], for a [`Tx`]: binds `$conn` to the transaction's connection
/// (`&mut *transaction`).
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::Tx::Sqlite(t) => {
                let $conn = &mut **t;
                $body
            }
            $crate::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}

/// The database: SQLite (a file; the zero-setup default) or PostgreSQL (for several replicas).
/// Cloning is cheap (the pools are shared).
#[derive(Clone)]
pub enum Db {
    /// An SQLite database file in WAL mode, foreign keys on, with a busy timeout.
    Sqlite(SqlitePool),
    /// A PostgreSQL database.
    Postgres(PgPool),
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the URL: it may carry a password.
        match self {
            Db::Sqlite(_) => f.write_str("Db::Sqlite"),
            Db::Postgres(_) => f.write_str("Db::Postgres"),
        }
    }
}

/// A transaction on either backend. Commit with [`Tx::commit`]; dropping it rolls back.
pub enum Tx {
    /// An SQLite transaction.
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    /// A PostgreSQL transaction.
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    /// Commits the transaction.
    pub async fn commit(self) -> Result<(), DbError> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }
}

/// Which backend a [`Db`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long to wait for a free connection (and, on SQLite, for a lock) before failing.
    pub acquire_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(30),
        }
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database failed or refused a statement.
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL is neither `sqlite:` nor `postgres:`/`postgresql:`.
    #[error("unsupported database URL (scheme {0:?}): expected sqlite://FILE or postgres://…")]
    UnsupportedUrl(String),
    /// A unique value (e-mail, domain, membership, dedup key …) is already taken.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The thing asked for does not exist (or is not visible to the caller).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The invitation's time ran out.
    #[error("the invitation has expired")]
    InvitationExpired,
    /// The invitation was accepted already.
    #[error("the invitation has already been used")]
    InvitationUsed,
    /// The invitation was revoked.
    #[error("the invitation was revoked")]
    InvitationRevoked,
    /// The change would leave an organisation without an owner.
    #[error("an organisation must keep at least one owner")]
    LastOwner,
    /// A value given to a query function is not acceptable; the message names the field.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The field that was wrong.
        field: &'static str,
        /// What was wrong with it.
        message: String,
    },
    /// A stored value could not be read back (names the table and column).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Hashing or checking a password failed.
    #[error("password hashing failed: {0}")]
    PasswordHash(String),
    /// Encrypting or decrypting a stored secret failed.
    #[error(transparent)]
    Secret(#[from] secrets::SecretError),
}

impl DbError {
    /// Turns a unique-constraint violation into [`DbError::Conflict`]; other errors pass through.
    pub(crate) fn conflict(what: &'static str) -> impl FnOnce(sqlx::Error) -> DbError {
        move |e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => DbError::Conflict(what),
            _ => DbError::Sqlx(e),
        }
    }
}

/// The SQLite migrations (crates/db/migrations/sqlite), embedded in the binary.
pub static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
/// The PostgreSQL migrations (crates/db/migrations/postgres), embedded in the binary.
pub static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Db {
    /// Connects with default [`DbOptions`]. See [`Db::connect_with`].
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        Db::connect_with(url, &DbOptions::default()).await
    }

    /// Connects to `sqlite://PATH` (the file is created if missing; WAL, foreign keys on, busy
    /// timeout = `acquire_timeout`) or `postgres://…`/`postgresql://…`. Does not migrate.
    pub async fn connect_with(url: &str, opts: &DbOptions) -> Result<Db, DbError> {
        let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => {
                let co = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(opts.acquire_timeout);
                let pool = SqlitePoolOptions::new()
                    .max_connections(opts.max_connections.max(1))
                    .acquire_timeout(opts.acquire_timeout)
                    .connect_with(co)
                    .await?;
                Ok(Db::Sqlite(pool))
            }
            "postgres" | "postgresql" => {
                let co = PgConnectOptions::from_str(url)?;
                let pool = PgPoolOptions::new()
                    .max_connections(opts.max_connections.max(1))
                    .acquire_timeout(opts.acquire_timeout)
                    .connect_with(co)
                    .await?;
                Ok(Db::Postgres(pool))
            }
            _ => Err(DbError::UnsupportedUrl(scheme)),
        }
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies every pending migration (safe to run from several processes at once on
    /// PostgreSQL: sqlx takes an advisory lock).
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self {
            Db::Sqlite(p) => SQLITE_MIGRATOR.run(p).await?,
            Db::Postgres(p) => POSTGRES_MIGRATOR.run(p).await?,
        }
        Ok(())
    }

    /// Checks that the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), DbError> {
        let one: i64 =
            on_pool!(self, p => sqlx::query_scalar("SELECT CAST(1 AS BIGINT)").fetch_one(p).await)?;
        if one == 1 {
            Ok(())
        } else {
            Err(DbError::Corrupt("SELECT 1 did not return 1".into()))
        }
    }

    /// Starts a transaction. On SQLite it is `BEGIN IMMEDIATE`: it takes the single write lock
    /// at once (waiting up to the busy timeout), so a transaction that reads and then writes
    /// cannot fail half-way because another connection wrote in between.
    pub async fn begin(&self) -> Result<Tx, DbError> {
        Ok(match self {
            Db::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// Closes every connection of the pool (waits for connections in use to be returned).
    pub async fn close(&self) {
        on_pool!(self, p => p.close().await)
    }
}

/// A random token as handed to a person (session cookie, invitation link, API token). Its
/// `Debug` is redacted; only its SHA-256 is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken(String);

impl SecretToken {
    /// A new random token: `prefix` followed by 64 hex digits (256 random bits).
    pub(crate) fn generate(prefix: &str) -> SecretToken {
        SecretToken(format!("{prefix}{}", random_hex(32)))
    }

    /// Wraps a token received from a client (cookie, header, URL).
    pub fn from_client(s: &str) -> SecretToken {
        SecretToken(s.trim().to_owned())
    }

    /// The token text, to hand to the client.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The stored form: SHA-256, hex.
    pub(crate) fn hash(&self) -> String {
        sha256_hex(self.0.as_bytes())
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretToken(<redacted>)")
    }
}

/// `n` random bytes from the OS, hex-encoded.
pub(crate) fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// SHA-256 of `data`, hex-encoded.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Reads an enumerated value stored as text, naming the column if it is not valid.
pub(crate) fn parse_stored<T: FromStr>(column: &'static str, s: &str) -> Result<T, DbError> {
    s.parse()
        .map_err(|_| DbError::Corrupt(format!("{column}: unexpected value {s:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_match_between_backends() {
        let sqlite: Vec<_> = SQLITE_MIGRATOR
            .iter()
            .map(|m| (m.version, m.description.to_string()))
            .collect();
        let pg: Vec<_> = POSTGRES_MIGRATOR
            .iter()
            .map(|m| (m.version, m.description.to_string()))
            .collect();
        assert!(!sqlite.is_empty());
        assert_eq!(
            sqlite, pg,
            "migrations/sqlite and migrations/postgres differ"
        );
    }

    #[tokio::test]
    async fn unsupported_url_is_refused_without_echoing_it() {
        let err = Db::connect("mysql://root:hunter2@db/x").await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("mysql") && !msg.contains("hunter2"), "{msg}");
    }

    #[test]
    fn token_debug_is_redacted() {
        let t = SecretToken::generate("gh_");
        assert!(t.expose().starts_with("gh_") && t.expose().len() == 67);
        assert!(!format!("{t:?}").contains(&t.expose()[3..]));
    }

    crate::db_test!(ping_and_migrate_twice, |db| async move {
        db.ping().await.unwrap();
        db.migrate().await.unwrap();
    });
}
