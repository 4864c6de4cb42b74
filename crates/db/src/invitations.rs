//! Invitations by link: an admin creates one for a role in an organisation; whoever opens the
//! link (signed in, or after creating an account) accepts it once, before it expires.

use std::time::Duration;

use guildhall_core::{AccountId, Email, InvitationId, OrgId, Role, Timestamp};
use serde::Serialize;

use crate::audit::{append_made, AuditWith};
use crate::orgs::insert_membership;
use crate::{on_pool, on_tx, parse_stored, Db, DbError, SecretToken};

/// An invitation (its token is shown only once, when created).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invitation {
    /// Its id.
    pub id: InvitationId,
    /// The organisation it is for.
    pub org_id: OrgId,
    /// The role it grants.
    pub role: Role,
    /// The address it was sent to, if any (informational; not enforced).
    pub email: Option<Email>,
    /// Who created it.
    pub invited_by: Option<AccountId>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops being usable.
    pub expires_at: Timestamp,
    /// When it was accepted, if it was.
    pub accepted_at: Option<Timestamp>,
    /// Who accepted it.
    pub accepted_by: Option<AccountId>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

impl Invitation {
    /// Whether it can still be accepted at `now`.
    pub fn is_open(&self, now: Timestamp) -> bool {
        self.accepted_at.is_none() && self.revoked_at.is_none() && self.expires_at > now
    }
}

/// What is needed to create an invitation.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    /// The organisation.
    pub org_id: OrgId,
    /// The role it grants.
    pub role: Role,
    /// Who it is for (optional).
    pub email: Option<Email>,
    /// Who creates it.
    pub invited_by: AccountId,
    /// How long it stays open.
    pub ttl: Duration,
}

type InvRow = (
    i64,
    i64,
    String,
    Option<String>,
    Option<i64>,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);
const INV_COLUMNS: &str = "id, org_id, role, email, invited_by, created_at, expires_at, accepted_at, accepted_by, revoked_at";

fn inv_from_row(r: InvRow) -> Result<Invitation, DbError> {
    Ok(Invitation {
        id: InvitationId(r.0),
        org_id: OrgId(r.1),
        role: parse_stored("invitations.role", &r.2)?,
        email: r
            .3
            .map(|e| parse_stored("invitations.email", &e))
            .transpose()?,
        invited_by: r.4.map(AccountId),
        created_at: Timestamp(r.5),
        expires_at: Timestamp(r.6),
        accepted_at: r.7.map(Timestamp),
        accepted_by: r.8.map(AccountId),
        revoked_at: r.9.map(Timestamp),
    })
}

impl Db {
    /// Creates an invitation. Returns the token for the link (shown once).
    pub async fn create_invitation(
        &self,
        new: &NewInvitation,
    ) -> Result<(SecretToken, Invitation), DbError> {
        self.create_invitation_audited(new, |_| None).await
    }

    /// [`Db::create_invitation`], recording `audit`'s entry in the same transaction.
    pub async fn create_invitation_audited(
        &self,
        new: &NewInvitation,
        audit: impl AuditWith<Invitation>,
    ) -> Result<(SecretToken, Invitation), DbError> {
        let token = SecretToken::generate("inv_");
        let now = Timestamp::now();
        let sql = format!(
            "INSERT INTO invitations (org_id, token_hash, role, email, invited_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {INV_COLUMNS}"
        );
        let mut tx = self.begin().await?;
        let row: InvRow = on_tx!(&mut tx, c => sqlx::query_as(&sql)
            .bind(new.org_id.0)
            .bind(token.hash())
            .bind(new.role.as_str())
            .bind(new.email.as_ref().map(|e| e.as_str()))
            .bind(new.invited_by.0)
            .bind(now.millis())
            .bind(now.plus(new.ttl).millis())
            .fetch_one(c).await)?;
        let inv = inv_from_row(row)?;
        append_made(&mut tx, audit, &inv).await?;
        tx.commit().await?;
        Ok((token, inv))
    }

    /// The invitation behind a link's token (open or not).
    pub async fn invitation_by_token(
        &self,
        token: &SecretToken,
    ) -> Result<Option<Invitation>, DbError> {
        let sql = format!("SELECT {INV_COLUMNS} FROM invitations WHERE token_hash = $1");
        let row: Option<InvRow> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(token.hash()).fetch_optional(p).await)?;
        row.map(inv_from_row).transpose()
    }

    /// The invitations of an organisation, newest first.
    pub async fn invitations(&self, org: OrgId) -> Result<Vec<Invitation>, DbError> {
        let sql =
            format!("SELECT {INV_COLUMNS} FROM invitations WHERE org_id = $1 ORDER BY id DESC");
        let rows: Vec<InvRow> =
            on_pool!(self, p => sqlx::query_as(&sql).bind(org.0).fetch_all(p).await)?;
        rows.into_iter().map(inv_from_row).collect()
    }

    /// Revokes an open invitation of `org`. Returns whether one was revoked.
    pub async fn revoke_invitation(&self, org: OrgId, id: InvitationId) -> Result<bool, DbError> {
        self.revoke_invitation_audited(org, id, |_| None).await
    }

    /// [`Db::revoke_invitation`], recording `audit`'s entry (made from whether one was revoked)
    /// in the same transaction.
    pub async fn revoke_invitation_audited(
        &self,
        org: OrgId,
        id: InvitationId,
        audit: impl AuditWith<bool>,
    ) -> Result<bool, DbError> {
        let mut tx = self.begin().await?;
        let done = on_tx!(&mut tx, c => sqlx::query(
            "UPDATE invitations SET revoked_at = $1 \
             WHERE id = $2 AND org_id = $3 AND revoked_at IS NULL AND accepted_at IS NULL")
            .bind(Timestamp::now().millis()).bind(id.0).bind(org.0).execute(c).await.map(|r| r.rows_affected()))?;
        let revoked = done > 0;
        append_made(&mut tx, audit, &revoked).await?;
        tx.commit().await?;
        Ok(revoked)
    }

    /// Accepts an invitation for `account`: makes it a member with the invitation's role (one
    /// transaction; the invitation can be used once). Errors: [`DbError::NotFound`],
    /// [`DbError::InvitationExpired`], [`DbError::InvitationUsed`],
    /// [`DbError::InvitationRevoked`], [`DbError::Conflict`] (already a member).
    pub async fn accept_invitation(
        &self,
        token: &SecretToken,
        account: AccountId,
    ) -> Result<Invitation, DbError> {
        self.accept_invitation_audited(token, account, |_| None)
            .await
    }

    /// [`Db::accept_invitation`], recording `audit`'s entry in the same transaction.
    pub async fn accept_invitation_audited(
        &self,
        token: &SecretToken,
        account: AccountId,
        audit: impl AuditWith<Invitation>,
    ) -> Result<Invitation, DbError> {
        let now = Timestamp::now();
        let mut tx = self.begin().await?;
        // Claim it with one conditional UPDATE (the write comes first, so it serialises).
        let sql = format!(
            "UPDATE invitations SET accepted_at = $1, accepted_by = $2 \
             WHERE token_hash = $3 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $1 \
             RETURNING {INV_COLUMNS}"
        );
        let row: Option<InvRow> = on_tx!(&mut tx, c => sqlx::query_as(&sql)
            .bind(now.millis()).bind(account.0).bind(token.hash()).fetch_optional(c).await)?;
        let Some(row) = row else {
            drop(tx);
            return Err(match self.invitation_by_token(token).await? {
                None => DbError::NotFound("invitation"),
                Some(i) if i.accepted_at.is_some() => DbError::InvitationUsed,
                Some(i) if i.revoked_at.is_some() => DbError::InvitationRevoked,
                Some(_) => DbError::InvitationExpired,
            });
        };
        let inv = inv_from_row(row)?;
        insert_membership(&mut tx, inv.org_id, account, inv.role, now).await?;
        append_made(&mut tx, audit, &inv).await?;
        tx.commit().await?;
        Ok(inv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db_test;
    use crate::orgs::tests::account;
    use crate::orgs::NewOrganisation;

    db_test!(invitations_are_single_use, |db| async move {
        let ada = account(&db, "ada@example.org").await;
        let bob = account(&db, "bob@example.org").await;
        let cy = account(&db, "cy@example.org").await;
        let org = db
            .create_organisation(&NewOrganisation::cooperative("Co-op".parse().unwrap()), ada)
            .await
            .unwrap();
        let new = NewInvitation {
            org_id: org.id,
            role: Role::Moderator,
            email: Some("bob@example.org".parse().unwrap()),
            invited_by: ada,
            ttl: Duration::from_secs(3600),
        };
        let (token, inv) = db.create_invitation(&new).await.unwrap();
        assert!(inv.is_open(Timestamp::now()));
        assert_eq!(
            db.invitation_by_token(&token).await.unwrap(),
            Some(inv.clone())
        );
        let accepted = db.accept_invitation(&token, bob).await.unwrap();
        assert_eq!(accepted.accepted_by, Some(bob));
        assert_eq!(
            db.role_of(bob, org.id).await.unwrap(),
            Some(Role::Moderator)
        );
        assert!(matches!(
            db.accept_invitation(&token, cy).await.unwrap_err(),
            DbError::InvitationUsed
        ));
        assert_eq!(db.role_of(cy, org.id).await.unwrap(), None);

        let (expired, _) = db
            .create_invitation(&NewInvitation {
                ttl: Duration::ZERO,
                ..new.clone()
            })
            .await
            .unwrap();
        assert!(matches!(
            db.accept_invitation(&expired, cy).await.unwrap_err(),
            DbError::InvitationExpired
        ));

        let (revoked, r) = db.create_invitation(&new).await.unwrap();
        assert!(db.revoke_invitation(org.id, r.id).await.unwrap());
        assert!(matches!(
            db.accept_invitation(&revoked, cy).await.unwrap_err(),
            DbError::InvitationRevoked
        ));

        let unknown = SecretToken::from_client("inv_nope");
        assert!(matches!(
            db.accept_invitation(&unknown, cy).await.unwrap_err(),
            DbError::NotFound(_)
        ));

        // Accepting while already a member fails and leaves the invitation open.
        let (again, _) = db.create_invitation(&new).await.unwrap();
        assert!(matches!(
            db.accept_invitation(&again, bob).await.unwrap_err(),
            DbError::Conflict(_)
        ));
        assert!(db
            .invitation_by_token(&again)
            .await
            .unwrap()
            .unwrap()
            .is_open(Timestamp::now()));
        assert_eq!(db.invitations(org.id).await.unwrap().len(), 4);
    });
}
