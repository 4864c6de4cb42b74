//! Accounts: people who sign in. Passwords are hashed with Argon2id (PHC string stored).

use guildhall_core::{AccountId, Email, Name, Password, Timestamp};
use serde::Serialize;

use crate::audit::{append_made, AuditWith};
use crate::{on_pool, on_tx, parse_stored, Db, DbError};

/// An account as stored (without its password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    /// Its id.
    pub id: AccountId,
    /// Its sign-in address (unique).
    pub email: Email,
    /// The name shown to others.
    pub display_name: String,
    /// Whether this person runs this Guildhall (may create organisations). The first owner
    /// (`guildhall admin create-owner`, or the setup page) is one.
    pub site_admin: bool,
    /// When it was created.
    pub created_at: Timestamp,
}

/// What is needed to create an account.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Sign-in address.
    pub email: Email,
    /// Name shown to others.
    pub display_name: Name,
    /// The password (hashed before it is stored).
    pub password: Password,
    /// See [`Account::site_admin`].
    pub site_admin: bool,
}

type AccountRow = (i64, String, String, bool, i64);

const ACCOUNT_COLUMNS: &str = "id, email, display_name, site_admin, created_at";

fn account_from_row(r: AccountRow) -> Result<Account, DbError> {
    Ok(Account {
        id: AccountId(r.0),
        email: parse_stored("accounts.email", &r.1)?,
        display_name: r.2,
        site_admin: r.3,
        created_at: Timestamp(r.4),
    })
}

/// Hashes a password with Argon2id and a random salt (PHC string). CPU-heavy: runs on the
/// blocking pool.
pub async fn hash_password(password: &Password) -> Result<String, DbError> {
    let pw = password.expose().to_owned();
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
        let salt = SaltString::generate(&mut OsRng);
        argon2::Argon2::default()
            .hash_password(pw.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| DbError::PasswordHash(e.to_string()))
    })
    .await
    .map_err(|e| DbError::PasswordHash(e.to_string()))?
}

/// Checks `password` against a stored PHC hash. CPU-heavy: runs on the blocking pool.
pub async fn verify_password(password: &str, phc: &str) -> Result<bool, DbError> {
    let pw = password.to_owned();
    let phc = phc.to_owned();
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        let parsed = PasswordHash::new(&phc)
            .map_err(|e| DbError::Corrupt(format!("accounts.password_hash: {e}")))?;
        Ok(argon2::Argon2::default()
            .verify_password(pw.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| DbError::PasswordHash(e.to_string()))?
}

/// A valid Argon2id hash of a password nobody knows, checked when an e-mail is unknown so that
/// a failed login takes as long either way.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3QlTeH0HtQ8h8x0vb0GJvhKmhbYHMVcC8eQ0y1bJc0o";

impl Db {
    /// Whether any account exists yet (while none does, the setup page is open).
    pub async fn any_account_exists(&self) -> Result<bool, DbError> {
        let n: i64 = on_pool!(self, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM accounts LIMIT 1) AS t")
            .fetch_one(p).await)?;
        Ok(n > 0)
    }

    /// Creates an account. [`DbError::Conflict`] if the e-mail is taken.
    pub async fn create_account(&self, new: &NewAccount) -> Result<Account, DbError> {
        self.create_account_audited(new, |_| None).await
    }

    /// [`Db::create_account`], recording `audit`'s entry in the same transaction.
    pub async fn create_account_audited(
        &self,
        new: &NewAccount,
        audit: impl AuditWith<Account>,
    ) -> Result<Account, DbError> {
        let hash = hash_password(&new.password).await?;
        let now = Timestamp::now();
        let sql = format!(
            "INSERT INTO accounts (email, display_name, password_hash, site_admin, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {ACCOUNT_COLUMNS}"
        );
        let mut tx = self.begin().await?;
        let row: AccountRow = on_tx!(&mut tx, c => sqlx::query_as(&sql)
            .bind(new.email.as_str())
            .bind(new.display_name.as_str())
            .bind(&hash)
            .bind(new.site_admin)
            .bind(now.millis())
            .fetch_one(c).await)
        .map_err(DbError::conflict("an account with this e-mail"))?;
        let account = account_from_row(row)?;
        append_made(&mut tx, audit, &account).await?;
        tx.commit().await?;
        Ok(account)
    }

    /// The account with this id.
    pub async fn account(&self, id: AccountId) -> Result<Option<Account>, DbError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1");
        let row: Option<AccountRow> =
            on_pool!(self, p => sqlx::query_as(&sql).bind(id.0).fetch_optional(p).await)?;
        row.map(account_from_row).transpose()
    }

    /// The account with this e-mail.
    pub async fn account_by_email(&self, email: &Email) -> Result<Option<Account>, DbError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE email = $1");
        let row: Option<AccountRow> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(email.as_str()).fetch_optional(p).await)?;
        row.map(account_from_row).transpose()
    }

    /// Checks an e-mail and password. `Ok(None)` when either is wrong (the same time is spent
    /// whether or not the e-mail is known).
    pub async fn check_login(
        &self,
        email: &Email,
        password: &str,
    ) -> Result<Option<Account>, DbError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS}, password_hash FROM accounts WHERE email = $1");
        let row: Option<(i64, String, String, bool, i64, String)> = on_pool!(self, p =>
            sqlx::query_as(&sql).bind(email.as_str()).fetch_optional(p).await)?;
        match row {
            None => {
                let _ = verify_password(password, DUMMY_HASH).await;
                Ok(None)
            }
            Some((id, email, name, admin, created, hash)) => {
                if verify_password(password, &hash).await? {
                    Ok(Some(account_from_row((id, email, name, admin, created))?))
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// Sets a new password.
    pub async fn set_password(&self, id: AccountId, password: &Password) -> Result<(), DbError> {
        let hash = hash_password(password).await?;
        let done = on_pool!(self, p => sqlx::query(
            "UPDATE accounts SET password_hash = $1 WHERE id = $2")
            .bind(&hash).bind(id.0).execute(p).await.map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(DbError::NotFound("account"));
        }
        Ok(())
    }

    /// Every account, by e-mail.
    pub async fn list_accounts(&self) -> Result<Vec<Account>, DbError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY email");
        let rows: Vec<AccountRow> = on_pool!(self, p => sqlx::query_as(&sql).fetch_all(p).await)?;
        rows.into_iter().map(account_from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db_test;

    pub(crate) fn new_account(email: &str, site_admin: bool) -> NewAccount {
        NewAccount {
            email: email.parse().unwrap(),
            display_name: "Someone".parse().unwrap(),
            password: "correct horse battery".parse().unwrap(),
            site_admin,
        }
    }

    #[tokio::test]
    async fn dummy_hash_is_valid() {
        assert!(!verify_password("x", DUMMY_HASH).await.unwrap());
    }

    db_test!(accounts_create_and_login, |db| async move {
        assert!(!db.any_account_exists().await.unwrap());
        let a = db
            .create_account(&new_account("Ada@Example.org", true))
            .await
            .unwrap();
        assert!(db.any_account_exists().await.unwrap());
        assert_eq!(a.email.as_str(), "ada@example.org");
        assert!(a.site_admin);
        assert_eq!(db.account(a.id).await.unwrap(), Some(a.clone()));
        let email: Email = "ada@example.org".parse().unwrap();
        assert_eq!(
            db.check_login(&email, "correct horse battery")
                .await
                .unwrap(),
            Some(a.clone())
        );
        assert_eq!(
            db.check_login(&email, "wrong horse battery").await.unwrap(),
            None
        );
        let nobody: Email = "nobody@example.org".parse().unwrap();
        assert_eq!(
            db.check_login(&nobody, "correct horse battery")
                .await
                .unwrap(),
            None
        );
        // The stored hash is not the password.
        let stored: String =
            on_pool!(&db, p => sqlx::query_scalar("SELECT password_hash FROM accounts")
            .fetch_one(p).await)
            .unwrap();
        assert!(stored.starts_with("$argon2id$") && !stored.contains("horse"));
        // E-mails are unique.
        let err = db
            .create_account(&new_account("ada@example.org", false))
            .await
            .unwrap_err();
        assert!(matches!(err, DbError::Conflict(_)), "{err}");
        db.set_password(a.id, &"another good one".parse().unwrap())
            .await
            .unwrap();
        assert!(db
            .check_login(&email, "another good one")
            .await
            .unwrap()
            .is_some());
    });
}
