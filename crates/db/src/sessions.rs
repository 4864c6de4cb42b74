//! Sign-in sessions, stored in the database so that every replica sees them. The cookie holds
//! a random token; only its SHA-256 is stored. Each session has its own CSRF secret.

use std::time::Duration;

use guildhall_core::{AccountId, OrgId, Timestamp};

use crate::{on_pool, random_hex, Db, DbError, SecretToken};

/// A live session.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// Its row id.
    pub id: i64,
    /// Who is signed in.
    pub account_id: AccountId,
    /// The per-session CSRF secret (64 hex digits): forms carry a token derived from or equal
    /// to it. Not shown by `Debug`.
    pub csrf_secret: String,
    /// The organisation chosen in the switcher, if any.
    pub current_org: Option<OrgId>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops being valid.
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("account_id", &self.account_id)
            .field("csrf_secret", &"<redacted>")
            .field("current_org", &self.current_org)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

type SessionRow = (i64, i64, String, Option<i64>, i64, i64);
const SESSION_COLUMNS: &str = "id, account_id, csrf_secret, current_org, created_at, expires_at";

fn session_from_row(r: SessionRow) -> Session {
    Session {
        id: r.0,
        account_id: AccountId(r.1),
        csrf_secret: r.2,
        current_org: r.3.map(OrgId),
        created_at: Timestamp(r.4),
        expires_at: Timestamp(r.5),
    }
}

impl Db {
    /// Starts a session for `account`, valid for `ttl`. Returns the token for the cookie.
    pub async fn create_session(
        &self,
        account: AccountId,
        ttl: Duration,
    ) -> Result<(SecretToken, Session), DbError> {
        let token = SecretToken::generate("");
        let now = Timestamp::now();
        let sql = format!(
            "INSERT INTO sessions (token_hash, account_id, csrf_secret, current_org, created_at, expires_at) \
             VALUES ($1, $2, $3, NULL, $4, $5) RETURNING {SESSION_COLUMNS}"
        );
        let row: SessionRow = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(token.hash())
            .bind(account.0)
            .bind(random_hex(32))
            .bind(now.millis())
            .bind(now.plus(ttl).millis())
            .fetch_one(p).await)?;
        Ok((token, session_from_row(row)))
    }

    /// The session for a cookie's token, if it exists and has not expired.
    pub async fn session(&self, token: &SecretToken) -> Result<Option<Session>, DbError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE token_hash = $1 AND expires_at > $2"
        );
        let row: Option<SessionRow> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(token.hash()).bind(Timestamp::now().millis()).fetch_optional(p).await)?;
        Ok(row.map(session_from_row))
    }

    /// Chooses the current organisation of a session (the switcher).
    pub async fn set_session_org(
        &self,
        session_id: i64,
        org: Option<OrgId>,
    ) -> Result<(), DbError> {
        on_pool!(self, p => sqlx::query("UPDATE sessions SET current_org = $1 WHERE id = $2")
            .bind(org.map(|o| o.0)).bind(session_id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Ends a session (logout). Returns whether it existed.
    pub async fn delete_session(&self, token: &SecretToken) -> Result<bool, DbError> {
        let done = on_pool!(self, p => sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token.hash()).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(done > 0)
    }

    /// Ends every session of an account (after a password change, say). Returns how many.
    pub async fn delete_sessions_of(&self, account: AccountId) -> Result<u64, DbError> {
        let done = on_pool!(self, p => sqlx::query("DELETE FROM sessions WHERE account_id = $1")
            .bind(account.0).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(done)
    }

    /// Removes expired sessions. Returns how many.
    pub async fn delete_expired_sessions(&self) -> Result<u64, DbError> {
        let done = on_pool!(self, p => sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(Timestamp::now().millis()).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::db_test;
    use crate::orgs::tests::account;

    db_test!(sessions_round_trip_and_expire, |db| async move {
        let ada = account(&db, "ada@example.org").await;
        let (token, s) = db
            .create_session(ada, Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(s.csrf_secret.len(), 64);
        assert!(!format!("{s:?}").contains(&s.csrf_secret));
        let found = db.session(&token).await.unwrap().unwrap();
        assert_eq!(found, s);
        // The token itself is not stored.
        let stored: String =
            on_pool!(&db, p => sqlx::query_scalar("SELECT token_hash FROM sessions")
            .fetch_one(p).await)
            .unwrap();
        assert_ne!(stored, token.expose());
        assert_eq!(
            db.session(&SecretToken::from_client("nope")).await.unwrap(),
            None
        );
        // An expired session is not returned, and is cleaned up.
        let (old, _) = db.create_session(ada, Duration::ZERO).await.unwrap();
        assert_eq!(db.session(&old).await.unwrap(), None);
        assert_eq!(db.delete_expired_sessions().await.unwrap(), 1);
        assert!(db.delete_session(&token).await.unwrap());
        assert_eq!(db.session(&token).await.unwrap(), None);
    });
}
