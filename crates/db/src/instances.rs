//! Member instances connected to an organisation (one per organisation), their OAuth
//! authorisations in progress, and the webhook deliveries they send.
//!
//! Secrets never sit in these tables: the access token, the OAuth client secret, the webhook
//! secret and a pending authorisation's PKCE verifier are sealed in `secrets` (see
//! [`crate::secrets`]) under the names [`token_secret_name`] and friends.

use std::time::Duration;

use guildhall_core::{OrgId, Timestamp};
use serde::Serialize;

use crate::audit::{append_made, AuditWith};
use crate::jobs::NewJob;
use crate::secrets::{delete_secret_in, put_secret_in, Keyring, SecretValue};
use crate::{on_pool, on_tx, sha256_hex, Db, DbError};

/// The job kind enqueued for each recorded webhook delivery (processed by issue 4's worker).
pub const WEBHOOK_JOB_KIND: &str = "mastodon.webhook";

/// The `secrets` name of an instance's access token.
pub fn token_secret_name(instance: i64) -> String {
    format!("instance:{instance}:token")
}

/// The `secrets` name of an instance's OAuth client secret.
pub fn client_secret_name(instance: i64) -> String {
    format!("instance:{instance}:client_secret")
}

/// The `secrets` name of an instance's webhook secret.
pub fn webhook_secret_name(instance: i64) -> String {
    format!("instance:{instance}:webhook")
}

fn pending_secret_name(state_hash: &str) -> String {
    format!("oauth_pending:{state_hash}")
}

/// How an instance was connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectMethod {
    /// The OAuth authorization-code flow (Guildhall registered an app).
    Oauth,
    /// A pasted token of a service account.
    Token,
}

impl ConnectMethod {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectMethod::Oauth => "oauth",
            ConnectMethod::Token => "token",
        }
    }
}

/// A connected (or formerly connected) instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Instance {
    /// Its id (also in its webhook URL).
    pub id: i64,
    /// The organisation it belongs to.
    pub org_id: OrgId,
    /// `https://social.example/`.
    pub base_url: String,
    /// How it was connected.
    pub method: ConnectMethod,
    /// The OAuth client id (OAuth connections only).
    pub client_id: Option<String>,
    /// The granted scopes, space-separated, when known.
    pub scopes: Option<String>,
    /// Whether a token is stored.
    pub connected: bool,
    /// The account the token belongs to (`@name`), when the token may read it.
    pub account: Option<String>,
    /// Whether the last check found everything Guildhall needs.
    pub check_ok: Option<bool>,
    /// Whether the last check found everything the moderation co-op needs (reports and
    /// accounts; domain blocks may still be missing).
    pub check_moderation_ok: Option<bool>,
    /// The last check's plain-words problems.
    pub check_problems: Vec<String>,
    /// When the last check ran.
    pub checked_at: Option<Timestamp>,
    /// Whether a webhook secret exists.
    pub webhook_secret_set: bool,
    /// When the current token was stored.
    pub connected_at: Option<Timestamp>,
    /// When the row was created.
    pub created_at: Timestamp,
}

/// What an access check found, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    /// Nothing Guildhall needs is known to be missing.
    pub ok: bool,
    /// Nothing the moderation co-op needs is known to be missing.
    pub moderation_ok: bool,
    /// The plain-words problems.
    pub problems: Vec<String>,
    /// The account the token belongs to (`@name`), when the check could read it.
    pub account: Option<String>,
}

/// What a connection stores.
#[derive(Debug, Clone)]
pub struct NewConnection {
    /// The instance's base URL.
    pub base_url: String,
    /// How it was connected.
    pub method: ConnectMethod,
    /// The OAuth client id and secret (OAuth only).
    pub client: Option<(String, SecretValue)>,
    /// The access token.
    pub token: SecretValue,
    /// The granted scopes (space-separated), when known.
    pub scopes: Option<String>,
}

/// An OAuth authorisation in progress (read back once by [`Db::take_oauth_pending`]).
#[derive(Debug, Clone)]
pub struct OAuthPending {
    /// The organisation connecting.
    pub org_id: OrgId,
    /// The browser session that started it.
    pub session_id: i64,
    /// The instance's base URL.
    pub base_url: String,
    /// The registered app's client id.
    pub client_id: String,
    /// Sealed extras: the client secret and the PKCE verifier (JSON), opaque to this crate.
    pub sealed: SecretValue,
}

/// A recorded webhook delivery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookDelivery {
    /// Its id (the job payload names it).
    pub id: i64,
    /// The instance that sent it.
    pub instance_id: i64,
    /// `report.created`, …
    pub event: String,
    /// The raw body as received.
    pub body: String,
    /// When it arrived.
    pub received_at: Timestamp,
}

const INSTANCE_COLUMNS: &str = "id, org_id, base_url, method, client_id, scopes, connected, \
     account, check_ok, check_problems, checked_at, webhook_secret_set, connected_at, created_at, \
     check_moderation_ok";

type InstanceRow = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    bool,
    Option<String>,
    Option<bool>,
    Option<String>,
    Option<i64>,
    bool,
    Option<i64>,
    i64,
    Option<bool>,
);

fn instance_from_row(r: InstanceRow) -> Result<Instance, DbError> {
    let method = match r.3.as_str() {
        "oauth" => ConnectMethod::Oauth,
        "token" => ConnectMethod::Token,
        other => {
            return Err(DbError::Corrupt(format!(
                "instances.method: unexpected value {other:?}"
            )))
        }
    };
    let check_problems = match &r.9 {
        None => Vec::new(),
        Some(s) => serde_json::from_str(s)
            .map_err(|e| DbError::Corrupt(format!("instances.check_problems: {e}")))?,
    };
    Ok(Instance {
        id: r.0,
        org_id: OrgId(r.1),
        base_url: r.2,
        method,
        client_id: r.4,
        scopes: r.5,
        connected: r.6,
        account: r.7,
        check_ok: r.8,
        check_moderation_ok: r.14,
        check_problems,
        checked_at: r.10.map(Timestamp),
        webhook_secret_set: r.11,
        connected_at: r.12.map(Timestamp),
        created_at: Timestamp(r.13),
    })
}

impl Db {
    /// The instance of an organisation, if it ever connected one.
    pub async fn instance_of_org(&self, org: OrgId) -> Result<Option<Instance>, DbError> {
        let sql = format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE org_id = $1");
        let row: Option<InstanceRow> =
            on_pool!(self, p => sqlx::query_as(&sql).bind(org.0).fetch_optional(p).await)?;
        row.map(instance_from_row).transpose()
    }

    /// The instance with this id.
    pub async fn instance(&self, id: i64) -> Result<Option<Instance>, DbError> {
        let sql = format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE id = $1");
        let row: Option<InstanceRow> =
            on_pool!(self, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await)?;
        row.map(instance_from_row).transpose()
    }

    /// Stores a connection for `org` (replacing an earlier one; the check result is reset) and
    /// seals its token (and client secret) under `keys`.
    pub async fn save_instance_connection(
        &self,
        keys: &Keyring,
        org: OrgId,
        new: &NewConnection,
    ) -> Result<Instance, DbError> {
        self.save_instance_connection_audited(keys, org, new, |_| None)
            .await
    }

    /// [`Db::save_instance_connection`], recording `audit`'s entry in the same transaction
    /// (the row, its secrets and the entry are stored together or not at all).
    pub async fn save_instance_connection_audited(
        &self,
        keys: &Keyring,
        org: OrgId,
        new: &NewConnection,
        audit: impl AuditWith<Instance>,
    ) -> Result<Instance, DbError> {
        let now = Timestamp::now();
        let sql = format!(
            "INSERT INTO instances (org_id, base_url, method, client_id, scopes, connected, \
             account, check_ok, check_problems, checked_at, connected_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, TRUE, NULL, NULL, NULL, NULL, $6, $6) \
             ON CONFLICT (org_id) DO UPDATE SET base_url = excluded.base_url, \
             method = excluded.method, client_id = excluded.client_id, scopes = excluded.scopes, \
             connected = TRUE, account = NULL, check_ok = NULL, check_moderation_ok = NULL, \
             check_problems = NULL, checked_at = NULL, connected_at = excluded.connected_at \
             RETURNING {INSTANCE_COLUMNS}"
        );
        let mut tx = self.begin().await?;
        let row: InstanceRow = on_tx!(&mut tx, c => sqlx::query_as(&sql)
            .bind(org.0)
            .bind(&new.base_url)
            .bind(new.method.as_str())
            .bind(new.client.as_ref().map(|(id, _)| id.as_str()))
            .bind(&new.scopes)
            .bind(now.0)
            .fetch_one(c).await)?;
        let inst = instance_from_row(row)?;
        put_secret_in(&mut tx, keys, &token_secret_name(inst.id), &new.token).await?;
        match &new.client {
            Some((_, secret)) => {
                put_secret_in(&mut tx, keys, &client_secret_name(inst.id), secret).await?
            }
            None => {
                delete_secret_in(&mut tx, &client_secret_name(inst.id)).await?;
            }
        }
        append_made(&mut tx, audit, &inst).await?;
        tx.commit().await?;
        Ok(inst)
    }

    /// Records the result of an access check that found everything (`ok`) or found something
    /// missing for every part of Guildhall alike.
    pub async fn record_instance_check(
        &self,
        id: i64,
        ok: bool,
        problems: &[String],
        account: Option<&str>,
    ) -> Result<(), DbError> {
        let check = CheckResult {
            ok,
            moderation_ok: ok,
            problems: problems.to_vec(),
            account: account.map(str::to_owned),
        };
        self.record_instance_check_audited(id, &check, |_| None)
            .await
    }

    /// Records the result of an access check, with `audit`'s entry in the same transaction.
    pub async fn record_instance_check_audited(
        &self,
        id: i64,
        check: &CheckResult,
        audit: impl AuditWith<()>,
    ) -> Result<(), DbError> {
        let text = serde_json::to_string(&check.problems).map_err(|e| DbError::Invalid {
            field: "check_problems",
            message: e.to_string(),
        })?;
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, c => sqlx::query(
            "UPDATE instances SET check_ok = $1, check_moderation_ok = $2, check_problems = $3, \
             checked_at = $4, account = COALESCE($5, account) WHERE id = $6")
            .bind(check.ok).bind(check.moderation_ok).bind(&text).bind(Timestamp::now().0)
            .bind(check.account.as_deref()).bind(id)
            .execute(c).await.map(|r| r.rows_affected()))?;
        append_made(&mut tx, audit, &()).await?;
        tx.commit().await
    }

    /// Records the account the instance's token belongs to (`@name`), learned from the
    /// instance's own answers, unless one is known already. Returns whether it was recorded.
    pub async fn learn_instance_account(&self, id: i64, account: &str) -> Result<bool, DbError> {
        let n = on_pool!(self, c => sqlx::query(
            "UPDATE instances SET account = $1 WHERE id = $2 AND account IS NULL")
            .bind(account).bind(id).execute(c).await.map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Forgets the token and client secret of an instance (the row and its webhook secret
    /// stay, so that reconnecting keeps the webhook's URL and secret).
    pub async fn disconnect_instance(&self, id: i64) -> Result<(), DbError> {
        self.disconnect_instance_audited(id, |_| None).await
    }

    /// [`Db::disconnect_instance`], recording `audit`'s entry in the same transaction.
    pub async fn disconnect_instance_audited(
        &self,
        id: i64,
        audit: impl AuditWith<()>,
    ) -> Result<(), DbError> {
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, c => sqlx::query(
            "UPDATE instances SET connected = FALSE, client_id = NULL, scopes = NULL, \
             check_ok = NULL, check_moderation_ok = NULL, check_problems = NULL, checked_at = NULL, \
             connected_at = NULL WHERE id = $1")
            .bind(id).execute(c).await.map(|r| r.rows_affected()))?;
        delete_secret_in(&mut tx, &token_secret_name(id)).await?;
        delete_secret_in(&mut tx, &client_secret_name(id)).await?;
        append_made(&mut tx, audit, &()).await?;
        tx.commit().await
    }

    /// Stores (replaces) the webhook secret of an instance.
    pub async fn set_webhook_secret(
        &self,
        keys: &Keyring,
        id: i64,
        secret: &SecretValue,
    ) -> Result<(), DbError> {
        self.set_webhook_secret_audited(keys, id, secret, |_| None)
            .await
    }

    /// [`Db::set_webhook_secret`], recording `audit`'s entry in the same transaction.
    pub async fn set_webhook_secret_audited(
        &self,
        keys: &Keyring,
        id: i64,
        secret: &SecretValue,
        audit: impl AuditWith<()>,
    ) -> Result<(), DbError> {
        let mut tx = self.begin().await?;
        put_secret_in(&mut tx, keys, &webhook_secret_name(id), secret).await?;
        on_tx!(&mut tx, c => sqlx::query("UPDATE instances SET webhook_secret_set = TRUE WHERE id = $1")
            .bind(id).execute(c).await.map(|r| r.rows_affected()))?;
        append_made(&mut tx, audit, &()).await?;
        tx.commit().await
    }

    /// Records a verified webhook delivery and enqueues its processing job in the same
    /// transaction. `Ok(None)` when the same delivery (same body, or same `event_key`) was
    /// recorded before: nothing is stored or enqueued again.
    pub async fn record_webhook_delivery(
        &self,
        instance_id: i64,
        event: &str,
        event_key: Option<&str>,
        body: &[u8],
    ) -> Result<Option<i64>, DbError> {
        let text = String::from_utf8_lossy(body).into_owned();
        let body_hash = sha256_hex(body);
        let mut tx = self.begin().await?;
        let id: Option<i64> = on_tx!(&mut tx, c => sqlx::query_scalar(
            "INSERT INTO webhook_deliveries (instance_id, body_hash, event_key, event, body, \
             received_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING id")
            .bind(instance_id).bind(&body_hash).bind(event_key).bind(event).bind(&text)
            .bind(Timestamp::now().0)
            .fetch_optional(c).await)?;
        let Some(id) = id else {
            return Ok(None);
        };
        let job = NewJob::new(
            WEBHOOK_JOB_KIND,
            serde_json::json!({ "delivery_id": id, "instance_id": instance_id, "event": event }),
        )
        .dedup(format!("webhook:{id}"));
        Db::enqueue_in(&mut tx, &job).await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    /// The deliveries recorded for an instance, oldest first.
    pub async fn webhook_deliveries(
        &self,
        instance_id: i64,
    ) -> Result<Vec<WebhookDelivery>, DbError> {
        let rows: Vec<(i64, i64, String, String, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT id, instance_id, event, body, received_at FROM webhook_deliveries \
             WHERE instance_id = $1 ORDER BY id")
            .bind(instance_id).fetch_all(p).await)?;
        Ok(rows
            .into_iter()
            .map(|r| WebhookDelivery {
                id: r.0,
                instance_id: r.1,
                event: r.2,
                body: r.3,
                received_at: Timestamp(r.4),
            })
            .collect())
    }

    /// Remembers an OAuth authorisation in progress under the hash of its `state`; `sealed`
    /// (client secret, PKCE verifier) is sealed in `secrets`. Expired ones are swept.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_oauth_pending(
        &self,
        keys: &Keyring,
        state: &str,
        org: OrgId,
        session_id: i64,
        base_url: &str,
        client_id: &str,
        sealed: &SecretValue,
        ttl: Duration,
    ) -> Result<(), DbError> {
        let now = Timestamp::now();
        let expired: Vec<String> = on_pool!(self, p => sqlx::query_scalar(
            "DELETE FROM instance_oauth_pending WHERE expires_at < $1 RETURNING state_hash")
            .bind(now.0).fetch_all(p).await)?;
        for h in expired {
            self.delete_secret(&pending_secret_name(&h)).await?;
        }
        let hash = sha256_hex(state.as_bytes());
        self.put_secret(keys, &pending_secret_name(&hash), sealed)
            .await?;
        on_pool!(self, p => sqlx::query(
            "INSERT INTO instance_oauth_pending (state_hash, org_id, session_id, base_url, \
             client_id, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&hash).bind(org.0).bind(session_id).bind(base_url).bind(client_id)
            .bind(now.plus(ttl).0)
            .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Takes (reads and deletes) the authorisation in progress with this `state`, if it exists
    /// and has not expired. A `state` can be used once.
    pub async fn take_oauth_pending(
        &self,
        keys: &Keyring,
        state: &str,
    ) -> Result<Option<OAuthPending>, DbError> {
        let hash = sha256_hex(state.as_bytes());
        let row: Option<(i64, i64, String, String, i64)> = on_pool!(self, p => sqlx::query_as(
            "DELETE FROM instance_oauth_pending WHERE state_hash = $1 \
             RETURNING org_id, session_id, base_url, client_id, expires_at")
            .bind(&hash).fetch_optional(p).await)?;
        let name = pending_secret_name(&hash);
        let sealed = self.get_secret(keys, &name).await?;
        self.delete_secret(&name).await?;
        let (Some(r), Some(sealed)) = (row, sealed) else {
            return Ok(None);
        };
        if r.4 < Timestamp::now().0 {
            return Ok(None);
        }
        Ok(Some(OAuthPending {
            org_id: OrgId(r.0),
            session_id: r.1,
            base_url: r.2,
            client_id: r.3,
            sealed,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::NewAccount;
    use crate::orgs::NewOrganisation;
    use crate::secrets::SecretKey;

    async fn org(db: &Db) -> OrgId {
        let a = db
            .create_account(&NewAccount {
                email: "a@x.example".parse().unwrap(),
                display_name: "A".parse().unwrap(),
                password: "correct horse battery".parse().unwrap(),
                site_admin: false,
            })
            .await
            .unwrap();
        db.create_organisation(&NewOrganisation::cooperative("O".parse().unwrap()), a.id)
            .await
            .unwrap()
            .id
    }

    crate::db_test!(
        a_connection_its_secrets_and_its_audit_entry_are_stored_together,
        |db| async move {
            let keys = Keyring::new(SecretKey::generate(), Vec::new());
            let o = org(&db).await;
            let conn = |token: &str| NewConnection {
                base_url: "https://social.example/".into(),
                method: ConnectMethod::Token,
                client: None,
                token: SecretValue::new(token.as_bytes().to_vec()),
                scopes: None,
            };
            let entry = |action: &str| crate::audit::NewAuditEntry {
                actor_id: None,
                actor: "tester".into(),
                action: action.into(),
                org_id: Some(o),
                before: None,
                after: None,
            };
            let inst = db
                .save_instance_connection_audited(&keys, o, &conn("tok-1"), |_| {
                    Some(entry("instance.connect"))
                })
                .await
                .unwrap();
            // Every audit append fails without the chain's head: nothing of a change is kept.
            on_pool!(&db, p => sqlx::query("DELETE FROM audit_head").execute(p).await
                .map(|r| r.rows_affected()))
            .unwrap();
            assert!(db
                .save_instance_connection_audited(&keys, o, &conn("tok-2"), |_| {
                    Some(entry("instance.connect"))
                })
                .await
                .is_err());
            assert!(db
                .disconnect_instance_audited(inst.id, |_| Some(entry("instance.disconnect")))
                .await
                .is_err());
            assert!(db
                .set_webhook_secret_audited(&keys, inst.id, &SecretValue::new("w"), |_| {
                    Some(entry("instance.webhook_secret"))
                })
                .await
                .is_err());
            let now = db.instance(inst.id).await.unwrap().unwrap();
            assert!(now.connected && !now.webhook_secret_set);
            let token = db.get_secret(&keys, &token_secret_name(inst.id)).await;
            assert_eq!(token.unwrap().unwrap().expose(), b"tok-1");
            let webhook = db.get_secret(&keys, &webhook_secret_name(inst.id)).await;
            assert!(webhook.unwrap().is_none());
        }
    );

    crate::db_test!(
        connection_is_sealed_and_deliveries_recorded_once,
        |db| async move {
            let keys = Keyring::new(SecretKey::generate(), Vec::new());
            let o = org(&db).await;
            let inst = db
                .save_instance_connection(
                    &keys,
                    o,
                    &NewConnection {
                        base_url: "https://social.example/".into(),
                        method: ConnectMethod::Token,
                        client: None,
                        token: SecretValue::new(b"tok-123".to_vec()),
                        scopes: None,
                    },
                )
                .await
                .unwrap();
            assert!(inst.connected);
            let t = db
                .get_secret(&keys, &token_secret_name(inst.id))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(t.expose(), b"tok-123");
            db.record_instance_check(inst.id, false, &["x".into()], Some("@mod"))
                .await
                .unwrap();
            let got = db.instance_of_org(o).await.unwrap().unwrap();
            assert_eq!(got.check_problems, vec!["x".to_owned()]);
            assert_eq!(got.account.as_deref(), Some("@mod"));

            let first = db
                .record_webhook_delivery(inst.id, "report.created", Some("k1"), b"{}")
                .await
                .unwrap();
            assert!(first.is_some());
            // Same body, or same event key: once.
            assert!(db
                .record_webhook_delivery(inst.id, "report.created", Some("k2"), b"{}")
                .await
                .unwrap()
                .is_none());
            assert!(db
                .record_webhook_delivery(inst.id, "report.created", Some("k1"), b"{ }")
                .await
                .unwrap()
                .is_none());
            assert_eq!(db.webhook_deliveries(inst.id).await.unwrap().len(), 1);

            db.disconnect_instance(inst.id).await.unwrap();
            assert!(db
                .get_secret(&keys, &token_secret_name(inst.id))
                .await
                .unwrap()
                .is_none());
            assert!(!db.instance(inst.id).await.unwrap().unwrap().connected);
        }
    );

    crate::db_test!(oauth_pending_is_taken_once, |db| async move {
        let keys = Keyring::new(SecretKey::generate(), Vec::new());
        let o = org(&db).await;
        let account = db.members(o).await.unwrap()[0].account_id;
        let (_, session) = db
            .create_session(account, Duration::from_secs(60))
            .await
            .unwrap();
        db.put_oauth_pending(
            &keys,
            "st",
            o,
            session.id,
            "https://s.example/",
            "cid",
            &SecretValue::new(b"{}".to_vec()),
            Duration::from_secs(600),
        )
        .await
        .unwrap();
        let p = db.take_oauth_pending(&keys, "st").await.unwrap().unwrap();
        assert_eq!((p.org_id, p.session_id), (o, session.id));
        assert!(db.take_oauth_pending(&keys, "st").await.unwrap().is_none());
        assert!(db
            .take_oauth_pending(&keys, "other")
            .await
            .unwrap()
            .is_none());
    });
}
