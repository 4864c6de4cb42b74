//! Organisations (cooperatives and instances) and memberships (one role per person per
//! organisation).

use guildhall_core::{AccountId, Domain, Email, Name, OrgId, OrgKind, Role, Timestamp};
use serde::Serialize;

use crate::audit::{append_made, AuditWith};
use crate::{on_pool, on_tx, parse_stored, Db, DbError, Tx};

/// An organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Organisation {
    /// Its id.
    pub id: OrgId,
    /// Its name.
    pub name: String,
    /// Cooperative or instance.
    pub kind: OrgKind,
    /// The instance's domain (instances only; unique).
    pub domain: Option<Domain>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// What is needed to create an organisation. Use [`NewOrganisation::cooperative`] or
/// [`NewOrganisation::instance`]: an instance always has a domain, a cooperative never.
#[derive(Debug, Clone)]
pub struct NewOrganisation {
    name: Name,
    kind: OrgKind,
    domain: Option<Domain>,
}

impl NewOrganisation {
    /// A cooperative.
    pub fn cooperative(name: Name) -> Self {
        NewOrganisation {
            name,
            kind: OrgKind::Cooperative,
            domain: None,
        }
    }

    /// An instance with its domain.
    pub fn instance(name: Name, domain: Domain) -> Self {
        NewOrganisation {
            name,
            kind: OrgKind::Instance,
            domain: Some(domain),
        }
    }
}

/// A member of an organisation, with the account's details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// The account.
    pub account_id: AccountId,
    /// Its e-mail.
    pub email: Email,
    /// Its display name.
    pub display_name: String,
    /// The role in this organisation.
    pub role: Role,
    /// When they joined.
    pub joined_at: Timestamp,
}

type OrgRow = (i64, String, String, Option<String>, i64);
const ORG_COLUMNS: &str = "o.id, o.name, o.kind, o.domain, o.created_at";

fn org_from_row(r: OrgRow) -> Result<Organisation, DbError> {
    Ok(Organisation {
        id: OrgId(r.0),
        name: r.1,
        kind: parse_stored("organisations.kind", &r.2)?,
        domain: r
            .3
            .map(|d| parse_stored("organisations.domain", &d))
            .transpose()?,
        created_at: Timestamp(r.4),
    })
}

/// Inserts a membership inside a transaction (used by organisation creation and invitations).
pub(crate) async fn insert_membership(
    tx: &mut Tx,
    org: OrgId,
    account: AccountId,
    role: Role,
    now: Timestamp,
) -> Result<(), DbError> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO memberships (org_id, account_id, role, created_at) VALUES ($1, $2, $3, $4)")
        .bind(org.0).bind(account.0).bind(role.as_str()).bind(now.millis())
        .execute(c).await.map(|r| r.rows_affected()))
    .map_err(DbError::conflict("this membership"))?;
    Ok(())
}

impl Db {
    /// Creates an organisation with `owner` as its first owner (one transaction).
    /// [`DbError::Conflict`] if an instance with this domain exists.
    pub async fn create_organisation(
        &self,
        new: &NewOrganisation,
        owner: AccountId,
    ) -> Result<Organisation, DbError> {
        self.create_organisation_audited(new, owner, |_| None).await
    }

    /// [`Db::create_organisation`], recording `audit`'s entry in the same transaction.
    pub async fn create_organisation_audited(
        &self,
        new: &NewOrganisation,
        owner: AccountId,
        audit: impl AuditWith<Organisation>,
    ) -> Result<Organisation, DbError> {
        let now = Timestamp::now();
        let mut tx = self.begin().await?;
        let sql =
            "INSERT INTO organisations (name, kind, domain, created_at) VALUES ($1, $2, $3, $4) \
                   RETURNING id, name, kind, domain, created_at";
        let row: OrgRow = on_tx!(&mut tx, c => sqlx::query_as(sql)
            .bind(new.name.as_str())
            .bind(new.kind.as_str())
            .bind(new.domain.as_ref().map(|d| d.as_str()))
            .bind(now.millis())
            .fetch_one(c).await)
        .map_err(DbError::conflict("an organisation with this domain"))?;
        let org = org_from_row(row)?;
        insert_membership(&mut tx, org.id, owner, Role::Owner, now).await?;
        append_made(&mut tx, audit, &org).await?;
        tx.commit().await?;
        Ok(org)
    }

    /// The organisation with this id.
    pub async fn organisation(&self, id: OrgId) -> Result<Option<Organisation>, DbError> {
        let sql = format!("SELECT {ORG_COLUMNS} FROM organisations o WHERE o.id = $1");
        let row: Option<OrgRow> =
            on_pool!(self, p => sqlx::query_as(&sql).bind(id.0).fetch_optional(p).await)?;
        row.map(org_from_row).transpose()
    }

    /// Renames an organisation.
    pub async fn rename_organisation(&self, id: OrgId, name: &Name) -> Result<(), DbError> {
        let done = on_pool!(self, p => sqlx::query("UPDATE organisations SET name = $1 WHERE id = $2")
            .bind(name.as_str()).bind(id.0).execute(p).await.map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(DbError::NotFound("organisation"));
        }
        Ok(())
    }

    /// Deletes an organisation (memberships, invitations go with it).
    pub async fn delete_organisation(&self, id: OrgId) -> Result<(), DbError> {
        let done = on_pool!(self, p => sqlx::query("DELETE FROM organisations WHERE id = $1")
            .bind(id.0).execute(p).await.map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(DbError::NotFound("organisation"));
        }
        Ok(())
    }

    /// Every organisation, by name.
    pub async fn list_organisations(&self) -> Result<Vec<Organisation>, DbError> {
        let sql = format!("SELECT {ORG_COLUMNS} FROM organisations o ORDER BY o.name, o.id");
        let rows: Vec<OrgRow> = on_pool!(self, p => sqlx::query_as(&sql).fetch_all(p).await)?;
        rows.into_iter().map(org_from_row).collect()
    }

    /// The organisations `account` belongs to, with its role in each, by name (for the
    /// organisation switcher).
    pub async fn organisations_of(
        &self,
        account: AccountId,
    ) -> Result<Vec<(Organisation, Role)>, DbError> {
        let sql = format!(
            "SELECT {ORG_COLUMNS}, m.role FROM organisations o \
             JOIN memberships m ON m.org_id = o.id WHERE m.account_id = $1 ORDER BY o.name, o.id"
        );
        let rows: Vec<(i64, String, String, Option<String>, i64, String)> =
            on_pool!(self, p => sqlx::query_as(&sql).bind(account.0).fetch_all(p).await)?;
        rows.into_iter()
            .map(|r| {
                let role = parse_stored("memberships.role", &r.5)?;
                Ok((org_from_row((r.0, r.1, r.2, r.3, r.4))?, role))
            })
            .collect()
    }

    /// `account`'s role in `org`, or `None` if not a member.
    pub async fn role_of(&self, account: AccountId, org: OrgId) -> Result<Option<Role>, DbError> {
        let role: Option<String> = on_pool!(self, p => sqlx::query_scalar(
            "SELECT role FROM memberships WHERE account_id = $1 AND org_id = $2")
            .bind(account.0).bind(org.0).fetch_optional(p).await)?;
        role.map(|r| parse_stored("memberships.role", &r))
            .transpose()
    }

    /// The members of `org`, by display name.
    pub async fn members(&self, org: OrgId) -> Result<Vec<Member>, DbError> {
        let rows: Vec<(i64, String, String, String, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT a.id, a.email, a.display_name, m.role, m.created_at FROM memberships m \
             JOIN accounts a ON a.id = m.account_id WHERE m.org_id = $1 \
             ORDER BY a.display_name, a.id")
            .bind(org.0).fetch_all(p).await)?;
        rows.into_iter()
            .map(|r| {
                Ok(Member {
                    account_id: AccountId(r.0),
                    email: parse_stored("accounts.email", &r.1)?,
                    display_name: r.2,
                    role: parse_stored("memberships.role", &r.3)?,
                    joined_at: Timestamp(r.4),
                })
            })
            .collect()
    }

    /// Adds `account` to `org` with `role`. [`DbError::Conflict`] if already a member.
    pub async fn add_member(
        &self,
        org: OrgId,
        account: AccountId,
        role: Role,
    ) -> Result<(), DbError> {
        let mut tx = self.begin().await?;
        insert_membership(&mut tx, org, account, role, Timestamp::now()).await?;
        tx.commit().await
    }

    /// Changes a member's role. [`DbError::LastOwner`] if that would leave no owner.
    pub async fn set_role(
        &self,
        org: OrgId,
        account: AccountId,
        role: Role,
    ) -> Result<(), DbError> {
        self.set_role_audited(org, account, role, |_| None).await
    }

    /// [`Db::set_role`], recording `audit`'s entry in the same transaction.
    pub async fn set_role_audited(
        &self,
        org: OrgId,
        account: AccountId,
        role: Role,
        audit: impl AuditWith<()>,
    ) -> Result<(), DbError> {
        let mut tx = self.begin().await?;
        let done = on_tx!(&mut tx, c => sqlx::query(
            "UPDATE memberships SET role = $1 WHERE org_id = $2 AND account_id = $3")
            .bind(role.as_str()).bind(org.0).bind(account.0).execute(c).await.map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(DbError::NotFound("membership"));
        }
        ensure_an_owner(&mut tx, org).await?;
        append_made(&mut tx, audit, &()).await?;
        tx.commit().await
    }

    /// Removes a member. [`DbError::LastOwner`] if that would leave no owner.
    pub async fn remove_member(&self, org: OrgId, account: AccountId) -> Result<(), DbError> {
        self.remove_member_audited(org, account, |_| None).await
    }

    /// [`Db::remove_member`], recording `audit`'s entry in the same transaction.
    pub async fn remove_member_audited(
        &self,
        org: OrgId,
        account: AccountId,
        audit: impl AuditWith<()>,
    ) -> Result<(), DbError> {
        let mut tx = self.begin().await?;
        let done = on_tx!(&mut tx, c => sqlx::query(
            "DELETE FROM memberships WHERE org_id = $1 AND account_id = $2")
            .bind(org.0).bind(account.0).execute(c).await.map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(DbError::NotFound("membership"));
        }
        ensure_an_owner(&mut tx, org).await?;
        append_made(&mut tx, audit, &()).await?;
        tx.commit().await
    }
}

/// Fails with [`DbError::LastOwner`] (rolling back) when `org` has no owner left. The write that
/// precedes it holds the row lock (PostgreSQL) or the write lock (SQLite), and the owners'
/// rows are locked here on PostgreSQL, so two concurrent demotions cannot both pass.
async fn ensure_an_owner(tx: &mut Tx, org: OrgId) -> Result<(), DbError> {
    let owners: Vec<i64> = match tx {
        Tx::Sqlite(t) => {
            sqlx::query_scalar(
                "SELECT account_id FROM memberships WHERE org_id = $1 AND role = 'owner'",
            )
            .bind(org.0)
            .fetch_all(&mut **t)
            .await?
        }
        Tx::Postgres(t) => sqlx::query_scalar(
            "SELECT account_id FROM memberships WHERE org_id = $1 AND role = 'owner' FOR UPDATE",
        )
        .bind(org.0)
        .fetch_all(&mut **t)
        .await?,
    };
    if owners.is_empty() {
        return Err(DbError::LastOwner);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::accounts::NewAccount;
    use crate::db_test;

    pub(crate) async fn account(db: &Db, email: &str) -> AccountId {
        db.create_account(&NewAccount {
            email: email.parse().unwrap(),
            display_name: email.split('@').next().unwrap().parse().unwrap(),
            password: "correct horse battery".parse().unwrap(),
            site_admin: false,
        })
        .await
        .unwrap()
        .id
    }

    db_test!(organisations_and_members, |db| async move {
        let ada = account(&db, "ada@example.org").await;
        let bob = account(&db, "bob@example.org").await;
        let coop = db
            .create_organisation(
                &NewOrganisation::cooperative("Mod Co-op".parse().unwrap()),
                ada,
            )
            .await
            .unwrap();
        assert_eq!(coop.kind, OrgKind::Cooperative);
        assert_eq!(coop.domain, None);
        let inst = db
            .create_organisation(
                &NewOrganisation::instance(
                    "Social".parse().unwrap(),
                    "social.example".parse().unwrap(),
                ),
                bob,
            )
            .await
            .unwrap();
        assert_eq!(
            inst.domain.as_ref().map(|d| d.as_str()),
            Some("social.example")
        );
        // Domains are unique.
        let dup = db
            .create_organisation(
                &NewOrganisation::instance(
                    "Other".parse().unwrap(),
                    "SOCIAL.example".parse().unwrap(),
                ),
                ada,
            )
            .await
            .unwrap_err();
        assert!(matches!(dup, DbError::Conflict(_)), "{dup}");
        assert_eq!(db.role_of(ada, coop.id).await.unwrap(), Some(Role::Owner));
        assert_eq!(db.role_of(ada, inst.id).await.unwrap(), None);
        db.add_member(inst.id, ada, Role::Moderator).await.unwrap();
        assert!(matches!(
            db.add_member(inst.id, ada, Role::Member).await.unwrap_err(),
            DbError::Conflict(_)
        ));
        let mine = db.organisations_of(ada).await.unwrap();
        assert_eq!(
            mine.iter().map(|(o, r)| (o.id, *r)).collect::<Vec<_>>(),
            vec![(coop.id, Role::Owner), (inst.id, Role::Moderator)]
        );
        let members = db.members(inst.id).await.unwrap();
        assert_eq!(members.len(), 2);
        // The last owner can be neither demoted nor removed.
        assert!(matches!(
            db.set_role(inst.id, bob, Role::Admin).await.unwrap_err(),
            DbError::LastOwner
        ));
        assert!(matches!(
            db.remove_member(inst.id, bob).await.unwrap_err(),
            DbError::LastOwner
        ));
        assert_eq!(db.role_of(bob, inst.id).await.unwrap(), Some(Role::Owner));
        db.set_role(inst.id, ada, Role::Owner).await.unwrap();
        db.set_role(inst.id, bob, Role::Admin).await.unwrap();
        db.remove_member(inst.id, bob).await.unwrap();
        assert_eq!(db.role_of(bob, inst.id).await.unwrap(), None);
        db.rename_organisation(coop.id, &"Renamed".parse().unwrap())
            .await
            .unwrap();
        assert_eq!(
            db.organisation(coop.id).await.unwrap().unwrap().name,
            "Renamed"
        );
        db.delete_organisation(coop.id).await.unwrap();
        assert_eq!(db.organisation(coop.id).await.unwrap(), None);
        assert_eq!(db.list_organisations().await.unwrap().len(), 1);
    });
}
