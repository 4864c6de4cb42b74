//! API tokens for the JSON API: `gh_` + 64 hex digits, shown once; stored as SHA-256 with
//! their scopes; revocable; the last time each was used is recorded.

use std::time::Duration;

use guildhall_core::{AccountId, ApiTokenId, Name, Scope, Timestamp};
use serde::Serialize;

use crate::audit::{append_made, AuditWith};
use crate::{on_pool, on_tx, Db, DbError, SecretToken};

/// An API token (without the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    /// Its id.
    pub id: ApiTokenId,
    /// Whose it is: requests made with it act as this account.
    pub account_id: AccountId,
    /// A label chosen by its owner.
    pub name: String,
    /// What it may be used for.
    pub scopes: Vec<Scope>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// When it was last used.
    pub last_used_at: Option<Timestamp>,
}

type TokRow = (
    i64,
    i64,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);
const TOK_COLUMNS: &str =
    "id, account_id, name, scopes, created_at, expires_at, revoked_at, last_used_at";

fn tok_from_row(r: TokRow) -> Result<ApiToken, DbError> {
    Ok(ApiToken {
        id: ApiTokenId(r.0),
        account_id: AccountId(r.1),
        name: r.2,
        scopes: Scope::parse_list(&r.3)
            .map_err(|e| DbError::Corrupt(format!("api_tokens.scopes: {e}")))?,
        created_at: Timestamp(r.4),
        expires_at: r.5.map(Timestamp),
        revoked_at: r.6.map(Timestamp),
        last_used_at: r.7.map(Timestamp),
    })
}

impl Db {
    /// Creates a token for `account` with `scopes` (at least one), valid for `ttl` (or until
    /// revoked when `None`). Returns the token text (shown once).
    pub async fn create_api_token(
        &self,
        account: AccountId,
        name: &Name,
        scopes: &[Scope],
        ttl: Option<Duration>,
    ) -> Result<(SecretToken, ApiToken), DbError> {
        self.create_api_token_audited(account, name, scopes, ttl, |_| None)
            .await
    }

    /// [`Db::create_api_token`], recording `audit`'s entry in the same transaction.
    pub async fn create_api_token_audited(
        &self,
        account: AccountId,
        name: &Name,
        scopes: &[Scope],
        ttl: Option<Duration>,
        audit: impl AuditWith<ApiToken>,
    ) -> Result<(SecretToken, ApiToken), DbError> {
        if scopes.is_empty() {
            return Err(DbError::Invalid {
                field: "scopes",
                message: "choose at least one scope".into(),
            });
        }
        let token = SecretToken::generate("gh_");
        let now = Timestamp::now();
        let sql = format!(
            "INSERT INTO api_tokens (account_id, name, token_hash, scopes, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {TOK_COLUMNS}"
        );
        let mut tx = self.begin().await?;
        let row: TokRow = on_tx!(&mut tx, c => sqlx::query_as(&sql)
            .bind(account.0)
            .bind(name.as_str())
            .bind(token.hash())
            .bind(Scope::format_list(scopes))
            .bind(now.millis())
            .bind(ttl.map(|t| now.plus(t).millis()))
            .fetch_one(c).await)?;
        let tok = tok_from_row(row)?;
        append_made(&mut tx, audit, &tok).await?;
        tx.commit().await?;
        Ok((token, tok))
    }

    /// Authenticates a request's token: returns it if it exists, is not revoked and has not
    /// expired, and records the time of use.
    pub async fn authenticate_api_token(
        &self,
        token: &SecretToken,
    ) -> Result<Option<ApiToken>, DbError> {
        let now = Timestamp::now();
        let sql = format!(
            "UPDATE api_tokens SET last_used_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $1) RETURNING {TOK_COLUMNS}"
        );
        let row: Option<TokRow> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(now.millis()).bind(token.hash()).fetch_optional(p).await)?;
        row.map(tok_from_row).transpose()
    }

    /// An account's tokens, newest first (revoked ones included).
    pub async fn api_tokens(&self, account: AccountId) -> Result<Vec<ApiToken>, DbError> {
        let sql =
            format!("SELECT {TOK_COLUMNS} FROM api_tokens WHERE account_id = $1 ORDER BY id DESC");
        let rows: Vec<TokRow> =
            on_pool!(self, p => sqlx::query_as(&sql).bind(account.0).fetch_all(p).await)?;
        rows.into_iter().map(tok_from_row).collect()
    }

    /// Revokes one of `account`'s tokens. Returns whether a live token was revoked.
    pub async fn revoke_api_token(
        &self,
        account: AccountId,
        id: ApiTokenId,
    ) -> Result<bool, DbError> {
        self.revoke_api_token_audited(account, id, |_| None).await
    }

    /// [`Db::revoke_api_token`], recording `audit`'s entry (made from whether one was revoked)
    /// in the same transaction.
    pub async fn revoke_api_token_audited(
        &self,
        account: AccountId,
        id: ApiTokenId,
        audit: impl AuditWith<bool>,
    ) -> Result<bool, DbError> {
        let mut tx = self.begin().await?;
        let done = on_tx!(&mut tx, c => sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND account_id = $3 AND revoked_at IS NULL")
            .bind(Timestamp::now().millis()).bind(id.0).bind(account.0).execute(c).await.map(|r| r.rows_affected()))?;
        let revoked = done > 0;
        append_made(&mut tx, audit, &revoked).await?;
        tx.commit().await?;
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db_test;
    use crate::orgs::tests::account;

    db_test!(api_tokens_hashed_scoped_revocable, |db| async move {
        let ada = account(&db, "ada@example.org").await;
        let bob = account(&db, "bob@example.org").await;
        let name: Name = "ci".parse().unwrap();
        assert!(db.create_api_token(ada, &name, &[], None).await.is_err());
        let (token, t) = db
            .create_api_token(ada, &name, &[Scope::Write, Scope::Read], None)
            .await
            .unwrap();
        assert!(token.expose().starts_with("gh_"));
        assert_eq!(t.scopes, vec![Scope::Read, Scope::Write]);
        assert_eq!(t.last_used_at, None);
        let stored: String =
            on_pool!(&db, p => sqlx::query_scalar("SELECT token_hash FROM api_tokens")
            .fetch_one(p).await)
            .unwrap();
        assert!(!stored.contains(&token.expose()[3..]));
        let used = db.authenticate_api_token(&token).await.unwrap().unwrap();
        assert_eq!(used.id, t.id);
        assert!(used.last_used_at.is_some());
        assert_eq!(
            db.authenticate_api_token(&SecretToken::from_client("gh_00"))
                .await
                .unwrap(),
            None
        );
        // Someone else cannot revoke it.
        assert!(!db.revoke_api_token(bob, t.id).await.unwrap());
        assert!(db.revoke_api_token(ada, t.id).await.unwrap());
        assert_eq!(db.authenticate_api_token(&token).await.unwrap(), None);
        let (expired, _) = db
            .create_api_token(ada, &name, &[Scope::Read], Some(Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(db.authenticate_api_token(&expired).await.unwrap(), None);
        assert_eq!(db.api_tokens(ada).await.unwrap().len(), 2);
    });
}
